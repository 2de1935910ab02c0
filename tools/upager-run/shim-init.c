// SPDX-License-Identifier: MIT
/*
 * The preload shim's start and end: opening the pager from the UPAGER_*
 * environment in a constructor, statistics when the process ends, and the
 * allocations of the library itself.
 *
 * The library is linked into the shim with --wrap for malloc, free,
 * calloc, realloc, strdup, pthread_create and the mmap family
 * (Makefile.am), so that its own calls land in the __wrap_ functions
 * below instead of the program's (replaced) malloc and the interposed
 * mmap: the pager's metadata never lives in paged memory, and its own
 * mappings are never taken for the program's. Threads the library starts
 * are marked for life (shim_inside), so whatever they call in libc that
 * allocates also gets glibc's memory; the fault path is marked while it
 * runs (--wrap=upager__fault), as the fault handler can run on any thread
 * in fast mode and on the sigsegv backend.
 *
 * The pager is never closed: atexit handlers and destructors that run
 * after ours may still use the heap, and the kernel takes everything back
 * when the process is gone. Statistics are printed from a destructor
 * (exit() from any thread, return from main) and from handlers of the
 * terminating signals the program left at their default action.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim.h"

__thread int shim_inside TLS_IE;
upager_t *shim_pager;
_Atomic int shim_ready;
int shim_wrap_syscalls;
int shim_page_mmaps = 1;
int shim_own_malloc;
int shim_child_pagers = 1;
int shim_backend_uffd;
size_t shim_mmap_min = 256u << 10;
size_t shim_big_min = 1u << 20;
_Atomic uint64_t shim_mmaps, shim_mmap_bytes, shim_big_allocs, shim_forks;
_Atomic uint64_t shim_deepbind_cleared;

static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
/* stderr as it was at start: programs close theirs at exit (gnulib's
 * close_stdout closes stderr too) before our destructor prints. */
static int stats_fd = 2;
static int init_done;
static int print_stats;

bool shim_stats_asked(void)
{
	return print_stats;
}

void shim_msg(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	n = snprintf(buf, sizeof(buf), "upager-run: ");
	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	if (write(2, buf, (size_t)n) < 0)
		return;
}

void shim_bad_pointer(const char *what, const void *p)
{
	shim_msg("%s(): invalid pointer %p", what, p);
	abort();
}

/* glibc's usable size of a block from its own allocator: the chunk's
 * size field minus its header (two words for an mmapped chunk, whose
 * IS_MMAPPED bit is 0x2). This is glibc's musable() without memory
 * tagging, which Debian does not enable. */
size_t shim_libc_usable(void *p)
{
	size_t sz = ((size_t *)p)[-1];

	if (sz & 2)
		return (sz & ~(size_t)7) - 2 * sizeof(size_t);
	return (sz & ~(size_t)7) - sizeof(size_t);
}

/* ---- the library's own allocations and mappings (--wrap) ---- */

void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);
char *__wrap_strdup(const char *s);
int __wrap_posix_memalign(void **out, size_t align, size_t n);
void *__wrap_aligned_alloc(size_t align, size_t n);

void *__wrap_malloc(size_t n)
{
	return __libc_malloc(n);
}
void *__wrap_calloc(size_t n, size_t m)
{
	return __libc_calloc(n, m);
}
void *__wrap_realloc(void *p, size_t n)
{
	return __libc_realloc(p, n);
}
void __wrap_free(void *p)
{
	/* The library frees only what it allocated, but it may be handed
	 * a block by libc (getline, ...) called on the program's side:
	 * let the real free sort it out. */
	if (p && (heap_owns(p) || arena_owns(p)))
		shim_free(p);
	else
		__libc_free(p);
}
char *__wrap_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = __libc_malloc(n);

	if (d)
		memcpy(d, s, n);
	return d;
}
int __wrap_posix_memalign(void **out, size_t align, size_t n)
{
	void *p = __libc_memalign(align, n);

	if (!p)
		return ENOMEM;
	*out = p;
	return 0;
}
void *__wrap_aligned_alloc(size_t align, size_t n)
{
	return __libc_memalign(align, n);
}

void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int __wrap_munmap(void *addr, size_t len);
int __wrap_madvise(void *addr, size_t len, int advice);
int __wrap_mprotect(void *addr, size_t len, int prot);
void *__wrap_mremap(void *old, size_t oldlen, size_t newlen, int flags, ...);

/* The kernel's calls, never the interposed ones. */
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}
int __wrap_munmap(void *addr, size_t len)
{
	return (int)syscall(SYS_munmap, addr, len);
}
int __wrap_madvise(void *addr, size_t len, int advice)
{
	return (int)syscall(SYS_madvise, addr, len, advice);
}
int __wrap_mprotect(void *addr, size_t len, int prot)
{
	return (int)syscall(SYS_mprotect, addr, len, prot);
}
void *__wrap_mremap(void *old, size_t oldlen, size_t newlen, int flags, ...)
{
	va_list ap;
	void *newaddr = NULL;

	if (flags & MREMAP_FIXED) {
		va_start(ap, flags);
		newaddr = va_arg(ap, void *);
		va_end(ap);
	}
	return (void *)syscall(SYS_mremap, old, oldlen, newlen, flags, newaddr);
}

struct tramp {
	void *(*fn)(void *);
	void *arg;
};

static void *thread_tramp(void *a)
{
	struct tramp t = *(struct tramp *)a;

	__libc_free(a);
	shim_inside = 1; /* a pager thread, for life */
	return t.fn(t.arg);
}

int __wrap_pthread_create(pthread_t *th, const pthread_attr_t *attr, void *(*fn)(void *),
			  void *arg);
int __real_pthread_create(pthread_t *th, const pthread_attr_t *attr, void *(*fn)(void *),
			  void *arg);

int __wrap_pthread_create(pthread_t *th, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
	struct tramp *t = __libc_malloc(sizeof(*t));
	int err;

	if (!t)
		return EAGAIN;
	t->fn = fn;
	t->arg = arg;
	err = __real_pthread_create(th, attr, thread_tramp, t);
	if (err)
		__libc_free(t);
	return err;
}

int upager__readahead_start(struct upager *p);

/* Whether the malloc everyone calls is another than the shim's: the
 * program's executable defines one (rustc links jemalloc), or another
 * preload library listed first. */
static bool foreign_malloc(void)
{
	Dl_info mine, theirs;
	bool foreign = false;

	shim_enter();
	void *m = dlsym(RTLD_DEFAULT, "malloc");
	if (m && dladdr((void *)foreign_malloc, &mine) && dladdr(m, &theirs))
		foreign = mine.dli_fbase != theirs.dli_fbase;
	shim_leave();
	return foreign;
}

/* A Go program built with cgo (Debian's go tool is one): the Go runtime
 * reaches its mmaps through libc, but makes its other system calls and
 * installs its SIGSEGV and SIGBUS handlers with raw system calls, which
 * no wrapper sees: in fast mode its goroutine stacks read back as zeros
 * and the pager's fault signals went to the runtime's handler. */
static bool go_runtime(void)
{
	shim_enter();
	bool go = dlsym(RTLD_DEFAULT, "_cgo_topofstack") != NULL;
	shim_leave();
	return go;
}

/* The fault path: whatever it calls allocates from glibc. */
struct region;
int __wrap_upager__fault(struct region *r, void *addr, bool write, int *err);
int __real_upager__fault(struct region *r, void *addr, bool write, int *err);

int __wrap_upager__fault(struct region *r, void *addr, bool write, int *err)
{
	int saved = errno, ret;

	shim_inside++;
	ret = __real_upager__fault(r, addr, write, err);
	shim_inside--;
	errno = saved;
	return ret;
}

/* ---- statistics ---- */

static void print_all(void)
{
	upager_stats_t st;
	char buf[400];
	int n;

	if (!shim_pager)
		return;
	shim_enter();
	st.size = sizeof(st);
	if (upager_stats(shim_pager, &st) == 0) {
		n = snprintf(buf, sizeof(buf),
			     "upager-run: pid %d, backend %s, mode %s, system calls %s\n",
			     (int)getpid(), st.backend, st.mode,
			     shim_wrap_syscalls ? "wrapped" : "transparent");
		if (write(stats_fd, buf, (size_t)n) < 0)
			goto out;
	}
	upager_stats_print(shim_pager, stats_fd);
	heap_print_stats(stats_fd);
	{
		uint64_t used = 0, span = 0;

		arena_stats(&used, &span);
		n = snprintf(buf, sizeof(buf),
			     "runner_mmaps: %llu\nrunner_mmap_bytes: %llu\n"
			     "runner_big_allocs: %llu\nrunner_arena_bytes_used: %llu\n"
			     "runner_arena_bytes_span: %llu\nrunner_forks: %llu\n"
			     "runner_deepbind_cleared: %llu\n",
			     (unsigned long long)shim_mmaps, (unsigned long long)shim_mmap_bytes,
			     (unsigned long long)shim_big_allocs, (unsigned long long)used,
			     (unsigned long long)span, (unsigned long long)shim_forks,
			     (unsigned long long)shim_deepbind_cleared);
		if (write(stats_fd, buf, (size_t)n) < 0)
			goto out;
	}
out:
	shim_leave();
}

static _Atomic int printed;

static void print_once(void)
{
	int zero = 0;

	if (print_stats && !shim_in_child && atomic_compare_exchange_strong(&printed, &zero, 1))
		print_all();
}

static void __attribute__((destructor)) shim_fini(void)
{
	print_once();
}

static const int term_sigs[] = { SIGHUP,  SIGINT,  SIGQUIT, SIGTERM, SIGABRT,  SIGUSR1,
				 SIGUSR2, SIGALRM, SIGPIPE, SIGXCPU, SIGVTALRM };

/* A terminating signal the program does not handle: print, then die of
 * the same signal. */
static void on_term(int sig)
{
	signal(sig, SIG_DFL);
	print_once();
	raise(sig);
}

static void install_term_handlers(void)
{
	size_t k;

	for (k = 0; k < sizeof(term_sigs) / sizeof(term_sigs[0]); k++) {
		struct sigaction old, sa;

		if (sigaction(term_sigs[k], NULL, &old) < 0 || old.sa_handler != SIG_DFL ||
		    (old.sa_flags & SA_SIGINFO))
			continue;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_term;
		sigemptyset(&sa.sa_mask);
		sa.sa_flags = SA_RESTART;
		sigaction(term_sigs[k], &sa, NULL);
	}
}

/* ---- start ---- */

static size_t env_size(const char *var, size_t def)
{
	const char *v = getenv(var);
	uint64_t n;

	if (v && upager_parse_size(v, &n) == 0)
		return (size_t)n;
	return def;
}

/* UPAGER_RUN_CHILDREN=0: programs this one execs run without the shim. */
static void drop_from_ld_preload(void)
{
	const char *v = getenv("LD_PRELOAD");
	char *copy, *out, *tok, *save = NULL;
	size_t n;

	if (!v)
		return;
	n = strlen(v) + 1;
	copy = __libc_malloc(n);
	out = __libc_malloc(n);
	if (!copy || !out)
		goto done;
	memcpy(copy, v, n);
	out[0] = '\0';
	for (tok = strtok_r(copy, ": ", &save); tok; tok = strtok_r(NULL, ": ", &save)) {
		if (strstr(tok, "libupager-preload"))
			continue;
		if (out[0])
			strcat(out, ":");
		strcat(out, tok);
	}
	if (out[0])
		setenv("LD_PRELOAD", out, 1);
	else
		unsetenv("LD_PRELOAD");
done:
	__libc_free(copy);
	__libc_free(out);
}

/* The directory path names: itself if it is one, else the file's. */
static const char *swap_dir(const char *path, char *buf, size_t size)
{
	struct stat st;
	char *slash;

	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return path;
	snprintf(buf, size, "%s", path);
	slash = strrchr(buf, '/');
	if (!slash)
		return ".";
	if (slash == buf)
		slash[1] = '\0';
	else
		*slash = '\0';
	return buf;
}

/* A swap file named by path is the first process's: the programs it
 * starts (and forked children that keep running) get an unnamed file in
 * the same directory instead. */
static const char *swap_for_me(const char *path, char *buf, size_t size)
{
	const char *root = getenv("UPAGER_RUN_ROOT");

	if (!path || (root && atoi(root) == (int)getpid()))
		return path;
	return swap_dir(path, buf, size);
}

/*
 * A forked child's pager (shim-fork.c): the program's configuration, in
 * transparent mode, since the child's system calls are not wrapped, on
 * userfaultfd, where its parent took the snapshots the child's copy
 * comes from, with an unnamed swap file and no trace of its own.
 *
 * Made at start-up, every string in glibc's memory: the child opens its
 * pager before its copy is in, and a program may have moved its
 * environment into its heap (perl does), which is a placeholder then.
 */
static upager_config_t child_cfg;
static bool child_cfg_made;

static const char *libc_strdup(const char *s)
{
	return s ? __wrap_strdup(s) : NULL;
}

static void make_child_config(const upager_config_t *cfg)
{
	char dir[4096];
	const char *swap = cfg->swap_path;

	child_cfg = *cfg;
	child_cfg.print_stats = 0;
	child_cfg.mode = UPAGER_MODE_TRANSPARENT;
	child_cfg.backend = "uffd";
	child_cfg.trace_path = NULL;
	child_cfg.on_error = NULL;
	child_cfg.on_thrash = NULL;
	/* Named here: left NULL, the child's pager would read TMPDIR. */
	if (!swap) {
		const char *tmp = getenv("TMPDIR");
		swap = tmp && *tmp ? tmp : "/tmp";
	} else {
		swap = swap_dir(swap, dir, sizeof(dir));
	}
	child_cfg.swap_path = libc_strdup(swap);
	child_cfg.policy = libc_strdup(cfg->policy);
	child_cfg_made = child_cfg.swap_path && (!cfg->policy || child_cfg.policy);
}

int shim_open_child_pager(upager_t **out)
{
	if (!child_cfg_made)
		return -ENOMEM;
	return upager_open(&child_cfg, out);
}

/*
 * Running without the pager after all: it is closed, so that no region
 * stays registered with a userfaultfd that no thread may read. Under
 * valgrind, which runs one thread at a time, the program's exit then
 * waited forever for the pager to take note of an unmapping.
 */
static void give_up(void)
{
	arena_forget();
	shim_enter();
	upager_close(shim_pager);
	shim_leave();
	shim_pager = NULL;
	shim_wrap_syscalls = 0;
}

/* Opens the pager, the heap and the arena; with shim_ready set, the
 * program's allocations go to paged memory. Called once. */
static void open_all(void)
{
	upager_config_t cfg;
	upager_stats_t st;
	char swapdir[4096];
	const char *v;
	int err;

	upager_config_init(&cfg);
	print_stats = cfg.print_stats;
	cfg.print_stats = 0; /* printed here, the pager is never closed */
	cfg.swap_path = swap_for_me(cfg.swap_path, swapdir, sizeof(swapdir));
	err = upager_open(&cfg, &shim_pager);
	if (err < 0) {
		shim_msg("cannot start the pager (%s%s%s); running without it",
			 upager_strerror(err), *upager_last_error() ? ": " : "",
			 upager_last_error());
		shim_pager = NULL;
		return;
	}
	st.size = sizeof(st);
	upager_stats(shim_pager, &st);
	shim_wrap_syscalls = !st.syscalls_transparent;
	shim_own_malloc = foreign_malloc();
	if (shim_wrap_syscalls && shim_own_malloc) {
		/* Its allocator's chunks are anonymous mmaps, and libc keeps
		 * its stdio buffers and DIR streams in them, which it fills
		 * and writes out with internal system calls that cannot be
		 * wrapped: a flush at exit failed with EFAULT and the output
		 * was lost. Only transparent mode can page such a program. */
		shim_page_mmaps = 0;
		if (print_stats)
			shim_msg("the program brings its own malloc: in %s mode its memory is not "
				 "paged (only the default transparent mode can)",
				 st.mode);
	}
	if (shim_wrap_syscalls && go_runtime()) {
		/* Nothing paged: shim_ready stays 0. */
		if (print_stats)
			shim_msg("a Go program: in %s mode its memory is not paged (only the "
				 "default transparent mode can)",
				 st.mode);
		return;
	}
	shim_backend_uffd = !strcmp(st.backend, "uffd");
	make_child_config(&cfg);
	sys_init(cfg.ram_bytes);
	shim_mmap_min = env_size("UPAGER_RUN_MMAP_MIN", shim_mmap_min);
	shim_big_min = env_size("UPAGER_RUN_BIG_MIN", shim_big_min);
	if (shim_mmap_min < (size_t)st.page_size)
		shim_mmap_min = (size_t)st.page_size;
	err = arena_open(shim_pager, env_size("UPAGER_RUN_ARENA", (size_t)64 << 30));
	if (err < 0) {
		shim_msg("cannot map the arena (%s); running without the pager",
			 upager_strerror(err));
		give_up();
		return;
	}
	err = heap_open(shim_pager);
	if (err < 0) {
		shim_msg("cannot open the heap (%s); running without the pager",
			 upager_strerror(err));
		give_up();
		return;
	}
	/* The readahead threads now, not when the evictor first wants them:
	 * pthread_create() gets a thread's TLS vector from the program's
	 * malloc, which in a program with an allocator of its own hands out
	 * paged memory once the pager is up, and the evictor, with every
	 * signal blocked, would fault on it (test/runner-ownmalloc). */
	upager__readahead_start(shim_pager);
	fork_init();
	v = getenv("UPAGER_RUN_CHILD_PAGER");
	if (v && !strcmp(v, "0"))
		shim_child_pagers = 0;
	v = getenv("UPAGER_RUN_CHILDREN");
	if (v && !strcmp(v, "0"))
		drop_from_ld_preload();
	if (print_stats) {
		int fd = upager__fd_keep(fcntl(2, F_DUPFD_CLOEXEC, 100));

		if (fd >= 0)
			stats_fd = fd;
		install_term_handlers();
	}
	atomic_store(&shim_ready, 1);
}

void shim_init(void)
{
	if (init_done)
		return;
	shim_enter();
	pthread_mutex_lock(&init_lock);
	if (!init_done) {
		open_all();
		init_done = 1;
	}
	pthread_mutex_unlock(&init_lock);
	shim_leave();
}

/* Early (priority 101), so the program's own constructors already
 * allocate from the pager. */
static void __attribute__((constructor(101))) shim_ctor(void)
{
	shim_init();
}
