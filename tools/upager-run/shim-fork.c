// SPDX-License-Identifier: MIT
/*
 * fork(): the child gets a private copy of the paged memory as it was at
 * the fork, made only if the child uses it; fork() followed by exec()
 * copies nothing.
 *
 * Regions are MAP_SHARED memfd mappings marked MADV_DONTFORK, and the
 * pager's threads do not survive fork(), so the child cannot share the
 * parent's pager. Instead:
 *
 *   parent, in fork():  close the allocation gate (wait for the malloc
 *                       calls in flight, hold new ones), upager_snapshot()
 *                       every region (one write-protection pass over the
 *                       resident pages, nothing copied), fork, open the
 *                       gate; a server thread waits on a socket shared
 *                       with the child.
 *   child:              the regions' address ranges are reserved with
 *                       PROT_NONE placeholders; new allocations go to
 *                       glibc. The first free/realloc of a paged block, or
 *                       the first access to paged memory (a SIGSEGV on a
 *                       placeholder, caught by a handler installed with the
 *                       raw system call ahead of the others), asks the
 *                       parent for the copy: the child opens a pager of its
 *                       own, with the same budget, whose regions take the
 *                       placeholders' addresses, and the parent streams the
 *                       snapshot's non-zero pieces into them
 *                       (upager_snapshot_read), loaded as resident dirty
 *                       pages that the child's pager evicts to its own swap
 *                       as the budget requires. Where that pager cannot
 *                       start, the placeholders become ordinary anonymous
 *                       memory instead. A child with a pager forks as its
 *                       parent does.
 *   parent:             when the copy is sent, or the child's end of the
 *                       socket closes (exec: it is close-on-exec; exit),
 *                       the snapshots are freed.
 *
 * Cost: fork+exec, system(), popen() and posix_spawn() (the last three use
 * clone(CLONE_VFORK) in glibc and never come here) pay the snapshot pass
 * and its copy-on-write faults in the parent while the child lives until
 * exec. A child that uses the heap pays a full copy of the used part of
 * the paged memory through a socket, written to its swap where it does
 * not fit its budget. See the README's "Running programs".
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <langinfo.h>
#include <locale.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim.h"

#define MAX_REGIONS 8
#define PIECE (64u << 10)

struct range {
	uintptr_t base;
	size_t len;  /* the region */
	size_t used; /* the part worth copying */
	upager_snapshot_t *snap;
	bool paged; /* in a child: a region of the child's own pager */
};

static pthread_mutex_t regions_lock = PTHREAD_MUTEX_INITIALIZER;
static struct range regions[MAX_REGIONS];
static int nregions;

/* ---- which regions exist: every upager_map() of the shim and the heap ---- */

int __wrap_upager_map(upager_t *p, size_t len, int flags, void **addr);
int __real_upager_map(upager_t *p, size_t len, int flags, void **addr);
int __wrap_upager_unmap(upager_t *p, void *addr);
int __real_upager_unmap(upager_t *p, void *addr);
int __wrap_upager_advise(upager_t *p, void *addr, size_t len, int advice);
int __real_upager_advise(upager_t *p, void *addr, size_t len, int advice);

int __wrap_upager_map(upager_t *p, size_t len, int flags, void **addr)
{
	int err = __real_upager_map(p, len, flags, addr);

	if (err == 0 && p == shim_pager) {
		pthread_mutex_lock(&regions_lock);
		if (nregions < MAX_REGIONS) {
			regions[nregions].base = (uintptr_t)*addr;
			regions[nregions].len = len;
			nregions++;
		}
		pthread_mutex_unlock(&regions_lock);
	}
	return err;
}

int __wrap_upager_unmap(upager_t *p, void *addr)
{
	pthread_mutex_lock(&regions_lock);
	for (int i = 0; i < nregions; i++)
		if (regions[i].base == (uintptr_t)addr)
			regions[i] = regions[--nregions];
	pthread_mutex_unlock(&regions_lock);
	return __real_upager_unmap(p, addr);
}

/* 1 in a forked child: the pager shim_pager was opened by the parent. */
int shim_in_child;
#define in_child shim_in_child
/* A forked child's own pager, once its copy is fetched; NULL before, or
 * if it could not start (then the copy is ordinary memory). */
static upager_t *child_pager;

bool shim_child_unpaged(void)
{
	return in_child && !child_pager;
}

/* The heap drops freed blocks with upager_advise(DONTNEED), naming the
 * parent's pager, whose copy the heap's records are. In a child the
 * child's pager does that, or for a copy in ordinary memory the kernel's
 * madvise. */
int __wrap_upager_advise(upager_t *p, void *addr, size_t len, int advice)
{
	if (in_child) {
		if (child_pager) {
			int err = __real_upager_advise(child_pager, addr, len, advice);
			if (err != UPAGER_ENOREGION)
				return err;
		}
		if (advice == UPAGER_ADVICE_DONTNEED)
			syscall(SYS_madvise, addr, len, MADV_DONTNEED);
		return 0;
	}
	return __real_upager_advise(p, addr, len, advice);
}

/* ---- the allocation gate ---- */

static _Atomic int gate_active, gate_closed;
/* Only the outermost call on a thread passes the gate (realloc calls
 * malloc and free). */
static __thread int gate_depth TLS_IE;

void fork_gate_enter(void)
{
	if (gate_depth++)
		return;
	for (;;) {
		atomic_fetch_add(&gate_active, 1);
		if (!atomic_load(&gate_closed))
			return;
		atomic_fetch_sub(&gate_active, 1);
		while (atomic_load(&gate_closed))
			sched_yield();
	}
}

void fork_gate_leave(void)
{
	if (--gate_depth == 0)
		atomic_fetch_sub(&gate_active, 1);
}

/* ---- the parent's side ---- */

struct server {
	int sock;
	int n;
	struct range r[MAX_REGIONS];
	struct server *next;
};

static int write_all(int fd, const void *buf, size_t n)
{
	const char *c = buf;

	while (n) {
		ssize_t w = syscall(SYS_write, fd, c, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

static int read_all(int fd, void *buf, size_t n)
{
	char *c = buf;

	while (n) {
		ssize_t r = syscall(SYS_read, fd, c, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		c += r;
		n -= (size_t)r;
	}
	return 0;
}

struct piece_hdr {
	uint64_t addr;
	uint64_t len; /* 0: end */
};

static void free_snapshots(struct range *r, int n)
{
	for (int i = 0; i < n; i++)
		if (r[i].snap)
			upager_snapshot_free(r[i].snap);
}

/* A child asked for its copy (or went away: exec, exit). */
static void serve_child(struct server *sv, char *buf)
{
	char req;

	if (read_all(sv->sock, &req, 1) == 0 && req == 'C') {
		for (int i = 0; i < sv->n; i++) {
			if (!sv->r[i].snap)
				continue;
			for (size_t off = 0; off < sv->r[i].used; off += PIECE) {
				size_t n = sv->r[i].used - off < PIECE ? sv->r[i].used - off
								       : PIECE;
				struct piece_hdr h = { sv->r[i].base + off, n };

				if (upager_snapshot_read(sv->r[i].snap, off, buf, n) < 0)
					goto out;
				if (upager__is_zero(buf, n))
					continue;
				if (write_all(sv->sock, &h, sizeof(h)) < 0 ||
				    write_all(sv->sock, buf, n) < 0)
					goto out;
			}
		}
		struct piece_hdr end = { 0, 0 };
		write_all(sv->sock, &end, sizeof(end));
	}
out:
	free_snapshots(sv->r, sv->n);
	upager__fd_close(sv->sock);
	__libc_free(sv);
}

/*
 * One server thread for all children, made at start-up. A thread made at
 * fork time would get its vector of TLS blocks from the program's malloc:
 * paged memory, in a program with an allocator of its own. A detached
 * thread reads that vector as it exits, with every signal blocked, and a
 * fault there kills the process (fast mode, sigsegv backend).
 */
static pthread_mutex_t jobs_lock = PTHREAD_MUTEX_INITIALIZER;
static struct server *jobs;
static int jobs_wake[2] = { -1, -1 };
static _Atomic bool server_up;
static char *server_buf;
static struct pollfd *server_fds;
static struct server **server_who;
#define SERVER_CAP 16

static void *server_main(void *arg)
{
	size_t cap = SERVER_CAP;
	char *buf = server_buf;
	struct pollfd *fds = server_fds;
	struct server **who = server_who;
	int wake_fd = jobs_wake[0];

	(void)arg;
	shim_inside = 1;
	for (;;) {
		size_t n = 1;

		pthread_mutex_lock(&jobs_lock);
		for (struct server *sv = jobs; sv; sv = sv->next)
			n++;
		if (n > cap) { /* else the first cap - 1 children now, the rest later */
			struct pollfd *f = __libc_realloc(fds, n * 2 * sizeof(*f));
			struct server **w = f ? __libc_realloc(who, n * 2 * sizeof(*w)) : NULL;
			if (f)
				fds = f;
			if (w) {
				who = w;
				cap = n * 2;
			}
		}
		n = 1;
		fds[0] = (struct pollfd){ .fd = wake_fd, .events = POLLIN };
		for (struct server *sv = jobs; sv && n < cap; sv = sv->next) {
			who[n] = sv;
			fds[n++] = (struct pollfd){ .fd = sv->sock, .events = POLLIN };
		}
		pthread_mutex_unlock(&jobs_lock);

		if (syscall(SYS_poll, fds, n, -1) < 0)
			continue;
		if (fds[0].revents & POLLNVAL) {
			/* The program closed the pipe: new children get no
			 * server (fork() says so), queued ones still do. */
			server_up = false;
			wake_fd = -1;
		} else if (fds[0].revents) {
			char drain[64];
			while (syscall(SYS_read, wake_fd, drain, sizeof(drain)) > 0)
				;
		}
		for (size_t i = 1; i < n; i++) {
			if (!fds[i].revents)
				continue;
			pthread_mutex_lock(&jobs_lock);
			for (struct server **pp = &jobs; *pp; pp = &(*pp)->next)
				if (*pp == who[i]) {
					*pp = who[i]->next;
					break;
				}
			pthread_mutex_unlock(&jobs_lock);
			serve_child(who[i], buf);
		}
	}
	return NULL;
}

static void server_start(void)
{
	pthread_t th;
	pthread_attr_t a;

	server_buf = __libc_malloc(PIECE);
	server_fds = __libc_malloc(SERVER_CAP * sizeof(*server_fds));
	server_who = __libc_malloc(SERVER_CAP * sizeof(*server_who));
	if (!server_buf || !server_fds || !server_who ||
	    syscall(SYS_pipe2, jobs_wake, O_CLOEXEC | O_NONBLOCK) < 0)
		return; /* fork() then frees what it would have queued */
	jobs_wake[0] = upager__fd_keep(jobs_wake[0]);
	jobs_wake[1] = upager__fd_keep(jobs_wake[1]);
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&a, 256u << 10);
	server_up = true;
	if (pthread_create(&th, &a, server_main, NULL) == 0) {
		pthread_setname_np(th, "upager-fork");
	} else {
		server_up = false;
		upager__fd_close(jobs_wake[0]);
		upager__fd_close(jobs_wake[1]);
	}
	pthread_attr_destroy(&a);
}

/* Hands a child's socket and snapshots to the server; false if there
 * is none (the caller frees them). */
static bool server_queue(struct server *sv)
{
	char one = 1;

	if (!server_up)
		return false;
	pthread_mutex_lock(&jobs_lock);
	sv->next = jobs;
	jobs = sv;
	pthread_mutex_unlock(&jobs_lock);
	syscall(SYS_write, jobs_wake[1], &one, 1);
	return true;
}

/* ---- the child's side ---- */

static int child_sock = -1;
static int child_n;
static struct range child_r[MAX_REGIONS];
static _Atomic int copy_state; /* 0 none pending, 1 pending, 2 copying */
static struct sigaction old_segv;

static struct range *range_of(uintptr_t a)
{
	for (int i = 0; i < child_n; i++)
		if (a - child_r[i].base < child_r[i].len)
			return &child_r[i];
	return NULL;
}

static bool in_ranges(uintptr_t a)
{
	return range_of(a) != NULL;
}

/*
 * Whether the child may open a pager: not while glibc's fork is still
 * under way in it. Its writes to the heap before the fork handlers run
 * (see early_child()) come in the middle of reclaim_stacks(), and a
 * pthread_create() there takes a stack glibc is still putting back: a
 * stress-ng child spun on a lock its pager never took. A copy fetched
 * then is ordinary memory.
 */
static _Atomic bool pager_allowed;

/* Pieces for a paged range are gathered into whole pages (a page may
 * be larger than a piece) in `window`, loaded when the next piece is
 * outside it. */
static size_t child_page;
static char *window;
static size_t window_size;
static uintptr_t window_base; /* 0: empty */
static struct range *window_range;

/*
 * Opening a pager calls the C library, which may read state the program
 * keeps in paged memory, still a placeholder here: its environment (perl
 * moves it to its heap), a locale it loaded (glibc's number parsing reads
 * it). Those found are avoided (shim_open_child_pager(), ncpus()); any
 * other such fault while the pager opens returns here (on_segv()), and
 * the copy goes to ordinary memory as if there were no pager.
 */
static sigjmp_buf opening_jmp;
static _Atomic pid_t opening_tid;
/* The opening thread's own locale, while the probe below has it on the
 * global one. A per-thread locale (perl's) is on the heap too: switching
 * back reads it, so after a fault that waits until the copy is in. */
static locale_t opening_locale;
static bool locale_switched;

/*
 * Every thread glibc starts reads the global locale's data (__ctype_init()
 * in start_thread()), and a program that loaded a locale (bash, with
 * LANG=C.UTF-8) keeps that data on its heap: the pager's threads would
 * die of that fault, out of reach of the jump above. So the opening
 * thread reads the same items of the global locale first, and a fault
 * there stops the pager before it has a thread.
 */
static void probe_thread_start(void)
{
	const char *volatile seen;

	opening_locale = uselocale(LC_GLOBAL_LOCALE);
	locale_switched = true;
	seen = nl_langinfo(_NL_CTYPE_CLASS);
	seen = nl_langinfo(_NL_CTYPE_TOUPPER);
	seen = nl_langinfo(_NL_CTYPE_TOLOWER);
	(void)seen;
	uselocale(opening_locale);
	locale_switched = false;
}

static int open_guarded(void)
{
	sigset_t segv;
	int err;

	if (sigsetjmp(opening_jmp, 1)) {
		atomic_store(&opening_tid, 0);
		return -EFAULT;
	}
	atomic_store(&opening_tid, (pid_t)syscall(SYS_gettid));
	/* This may run in on_segv(), whose SIGSEGV is blocked. */
	sigemptyset(&segv);
	sigaddset(&segv, SIGSEGV);
	syscall(SYS_rt_sigprocmask, SIG_UNBLOCK, &segv, NULL, _NSIG / 8);
	probe_thread_start();
	err = shim_open_child_pager(&child_pager);
	atomic_store(&opening_tid, 0);
	return err;
}

/*
 * The child's own pager, its regions at the placeholders' addresses.
 * Ranges it cannot take become ordinary memory. The parent's regions
 * and descriptors were forgotten by child_setup().
 */
static void child_pager_open(void)
{
	upager_stats_t st;
	sigset_t mask;

	syscall(SYS_rt_sigprocmask, SIG_BLOCK, NULL, &mask, _NSIG / 8);
	int err = open_guarded();
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &mask, NULL, _NSIG / 8);

	if (err < 0) {
		/* A fallback the program cannot tell from the paged copy but
		 * for its RSS: said only where statistics are asked for. */
		if (shim_stats_asked())
			shim_msg("fork: the child's pager could not start (%s); its copy of the "
				 "paged memory is ordinary memory",
				 err == -EFAULT ? "it needed the program's memory"
						: upager_strerror(err));
		child_pager = NULL;
		return;
	}
	st.size = sizeof(st);
	upager_stats(child_pager, &st);
	child_page = st.page_size;
	for (int i = 0; i < child_n; i++) {
		struct range *r = &child_r[i];
		if (!r->snap)
			continue;
		err = upager__map_at(child_pager, (void *)r->base, r->len);
		r->paged = err == 0;
		/* Closed to the child's other threads until its pages are in:
		 * they would fault in zero pages where the copy goes. Their
		 * SIGSEGV waits in on_segv() for the copy, as before. */
		if (r->paged)
			syscall(SYS_mprotect, r->base, r->len, PROT_NONE);
		if (err < 0 && shim_stats_asked())
			shim_msg("fork: the child's pager could not take the paged memory at %p "
				 "(%s); its copy there is ordinary memory",
				 (void *)r->base, upager_strerror(err));
	}
}

static int window_flush(void)
{
	int err = 0;

	if (window_base) {
		uintptr_t end = window_range->base + window_range->len;
		size_t n = end - window_base < window_size ? end - window_base : window_size;
		err = upager__load_pages(child_pager, (void *)window_base, window, n);
		memset(window, 0, window_size);
		window_base = 0;
	}
	return err;
}

static int receive_piece(struct range *hr, const struct piece_hdr *h)
{
	if (!hr->paged)
		return read_all(child_sock, (void *)h->addr, h->len);
	uintptr_t at = hr->base + ((h->addr - hr->base) & ~(uintptr_t)(window_size - 1));
	if (at != window_base) {
		if (window_flush() < 0)
			return -1;
		window_base = at;
		window_range = hr;
	}
	if (h->addr + h->len > at + window_size)
		return -1;
	return read_all(child_sock, window + (h->addr - at), h->len);
}

/*
 * The child's pager is now the one its own forks use, and, where it took
 * every region, the one its new allocations come from, as in the parent:
 * the heap's and the arena's records are the parent's at the fork, when
 * no allocation was in flight (the gate), and the heap's mutexes and
 * mimalloc's heaps work from any thread. Before the copy, new blocks
 * came from glibc, so that a child that only execs copies nothing.
 */
int upager__readahead_start(struct upager *p);

static void child_adopt(void)
{
	bool all = true;

	shim_pager = child_pager;
	pthread_mutex_lock(&regions_lock);
	nregions = 0;
	for (int i = 0; i < child_n; i++) {
		if (child_r[i].paged)
			regions[nregions++] = (struct range){ .base = child_r[i].base,
							      .len = child_r[i].len };
		else
			all = false;
	}
	pthread_mutex_unlock(&regions_lock);
	server_start();
	/* Before any allocation is paged: see open_all(). */
	upager__readahead_start(child_pager);
	if (all)
		atomic_store(&shim_ready, 1);
}

/* Fetches the copy from the parent. It may run from the SIGSEGV handler:
 * the parts that can (the ordinary-memory copy) use raw system calls;
 * the child's pager is opened with the program stopped in a fault on
 * paged memory, where it holds no lock of libc's. */
static void child_copy(void)
{
	int expect = 1;
	struct piece_hdr h;
	char req = 'C';

	if (!atomic_compare_exchange_strong(&copy_state, &expect, 2)) {
		while (atomic_load(&copy_state) == 2)
			sched_yield();
		return;
	}
	shim_inside++;
	/* Opening a pager starts threads, and glibc gets a new thread's
	 * TLS vector from the program's malloc: a malloc of the program's
	 * own keeps its state in paged memory, here still a placeholder, and
	 * a fault on it now could not be served. Such a child's copy is
	 * ordinary memory. */
	if (shim_child_pagers && !shim_own_malloc && atomic_load(&pager_allowed))
		child_pager_open();
	/* Over the placeholder, or where a region that failed was. */
	for (int i = 0; i < child_n; i++)
		if (child_r[i].snap && !child_r[i].paged)
			syscall(SYS_mmap, child_r[i].base, child_r[i].len, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
	if (child_pager) {
		window_size = child_page > PIECE ? child_page : PIECE;
		window = (char *)syscall(SYS_mmap, NULL, window_size, PROT_READ | PROT_WRITE,
					 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (window == MAP_FAILED)
			goto fail;
	}
	if (write_all(child_sock, &req, 1) < 0)
		goto fail;
	for (;;) {
		if (read_all(child_sock, &h, sizeof(h)) < 0)
			goto fail;
		if (h.len == 0)
			break;
		struct range *hr = range_of(h.addr);
		if (!hr || !hr->snap || h.len > PIECE || h.addr + h.len > hr->base + hr->len ||
		    receive_piece(hr, &h) < 0)
			goto fail;
	}
	if (locale_switched) {
		uselocale(opening_locale);
		locale_switched = false;
	}
	if (child_pager) {
		if (window_flush() < 0)
			goto fail;
		syscall(SYS_munmap, window, window_size);
		for (int i = 0; i < child_n; i++)
			if (child_r[i].paged)
				syscall(SYS_mprotect, child_r[i].base, child_r[i].len,
					PROT_READ | PROT_WRITE);
		child_adopt();
	}
	close(child_sock);
	child_sock = -1;
	shim_inside--;
	atomic_store(&copy_state, 0);
	return;
fail:
	shim_msg("fork: the child's copy of the paged memory could not be fetched%s%s",
		 child_pager && *upager_last_error() ? ": " : "",
		 child_pager ? upager_last_error() : "");
	_exit(127);
}

void fork_child_copy(const void *p)
{
	if (in_child && atomic_load(&copy_state) && in_ranges((uintptr_t)p))
		child_copy();
}

static void raw_sigaction(int sig, const struct sigaction *sa, struct sigaction *old)
{
	/* The kernel's, not the library's interposed sigaction(). */
	extern int __sigaction(int, const struct sigaction *, struct sigaction *);
	__sigaction(sig, sa, old);
}

/* The library's signal ownership (src/signals.c): while the child owns
 * SIGSEGV, the program's sigaction() calls for it are recorded as the
 * chained handler instead of replacing on_segv (git's child resets every
 * handler to the default between fork and exec). */
int upager__signal_own(int sig, void (*handler)(int, siginfo_t *, void *));
void upager__signal_release(int sig);
void upager__signal_pass_on(int sig, siginfo_t *si, void *uc);
static bool child_owns_segv;

static bool early_child(void);
static void child_setup_pending(void);

static void on_segv(int sig, siginfo_t *si, void *uc)
{
	if (atomic_load(&opening_tid) && in_ranges((uintptr_t)si->si_addr) &&
	    atomic_load(&opening_tid) == (pid_t)syscall(SYS_gettid))
		siglongjmp(opening_jmp, 1);
	if (early_child())
		child_setup_pending();
	struct range *r = range_of((uintptr_t)si->si_addr);

	if (r && !r->snap) {
		shim_msg("fork: the child used paged memory at %p of which the parent "
			 "could take no snapshot; stopping it",
			 si->si_addr);
		_exit(127);
	}
	if (atomic_load(&copy_state) && r) {
		child_copy();
		return; /* the access is retried on the copy */
	}
	if (child_owns_segv || !in_child) {
		/* In the parent, armed around fork() (see fork()). */
		upager__signal_pass_on(sig, si, uc);
	} else if (old_segv.sa_flags & SA_SIGINFO) {
		old_segv.sa_sigaction(sig, si, uc);
	} else if (old_segv.sa_handler == SIG_DFL || old_segv.sa_handler == SIG_IGN) {
		struct sigaction dfl;

		/* Retried with the default action: the process dies of it. */
		memset(&dfl, 0, sizeof(dfl));
		dfl.sa_handler = SIG_DFL;
		raw_sigaction(sig, &dfl, NULL);
	} else {
		old_segv.sa_handler(sig);
	}
}

/* The pid child_setup() ran in: a child with a pager of its own forks
 * grandchildren that need theirs too. */
static pid_t setup_pid;

static bool set_up_here(void)
{
	return setup_pid == (pid_t)syscall(SYS_getpid);
}

static void child_setup(int sock, struct range *r, int n)
{
	struct sigaction sa;

	setup_pid = (pid_t)syscall(SYS_getpid);
	in_child = 1;
	atomic_store(&pager_allowed, false);
	/* What the parent's pager (or server) had is the parent's: its
	 * regions are not here (MADV_DONTFORK), its threads are gone, and a
	 * lock one of them held at the fork would never be released. */
	child_pager = NULL;
	upager__registry_forget_all();
	upager__fd_forget_all();
	pthread_mutex_init(&regions_lock, NULL);
	pthread_mutex_init(&jobs_lock, NULL);
	jobs = NULL;
	server_up = false;
	atomic_store(&shim_ready, 0); /* new blocks from glibc, mmaps from the kernel */
	shim_wrap_syscalls = 0;
	child_sock = sock;
	child_n = n;
	memcpy(child_r, r, sizeof(*r) * (size_t)n);
	for (int i = 0; i < n; i++) {
		child_r[i].paged = false;
		syscall(SYS_mmap, r[i].base, r[i].len, PROT_NONE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
	}
	atomic_store(&copy_state, 1);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_segv;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	/* Owned through the library where the parent's pager did not own
	 * SIGSEGV already (there, the program's calls are recorded anyway). */
	child_owns_segv = upager__signal_own(SIGSEGV, on_segv) == 0;
	if (!child_owns_segv)
		raw_sigaction(SIGSEGV, &sa, &old_segv);
	/* Programs fork with every signal blocked (perl does) and touch
	 * memory before they unblock: a blocked SIGSEGV would kill the child
	 * instead of fetching the copy. See sigprocmask() below. */
	sigset_t segv;
	sigemptyset(&segv);
	sigaddset(&segv, SIGSEGV);
	syscall(SYS_rt_sigprocmask, SIG_UNBLOCK, &segv, NULL, _NSIG / 8);
}

/* The signal mask, as glibc sets it (its two internal signals, used for
 * thread cancellation and set*id, are never blocked), except that a
 * forked child whose copy is still to be fetched never blocks SIGSEGV:
 * the fetch starts from that signal. Raw system calls, so that this works
 * before anything is set up. */
static int set_mask(int how, const sigset_t *set, sigset_t *old)
{
	sigset_t local;

	if (set && how != SIG_UNBLOCK) {
		local = *set;
		/* glibc's SIGCANCEL and SIGSETXID, 32 and 33 (sigdelset()
		 * refuses them): bits 31 and 32 of the first word. */
		local.__val[0] &= ~(3UL << 31);
		if (in_child && atomic_load(&copy_state))
			sigdelset(&local, SIGSEGV);
		/* The pager's faults are signals on the sigsegv backend
		 * (SIGSEGV) and in fast mode on userfaultfd (SIGBUS): a program
		 * that blocks every signal (perl around fork) and then touches
		 * an evicted page would be killed by the kernel. Blocking
		 * them for a fault is undefined in POSIX anyway. */
		if (!in_child && shim_pager) {
			sigdelset(&local, SIGSEGV);
			sigdelset(&local, SIGBUS);
		}
		set = &local;
	}
	return (int)syscall(SYS_rt_sigprocmask, how, set, old, _NSIG / 8) < 0 ? errno : 0;
}

SHIM_API int sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
	int err = set_mask(how, set, old);

	if (err) {
		errno = err;
		return -1;
	}
	return 0;
}

SHIM_API int pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
	int saved = errno, err = set_mask(how, set, old);

	errno = saved;
	return err;
}

/* ---- fork ---- */

static void report_no_snapshot(uintptr_t base)
{
	static _Atomic int reported;

	if (!atomic_exchange(&reported, 1))
		shim_msg("fork: no copy-on-write snapshot of the paged memory at %p (%s); "
			 "a child that uses it before exec() is stopped",
			 (void *)base, upager_last_error());
}

static void report_no_server(void)
{
	static _Atomic int reported;

	if (!atomic_exchange(&reported, 1))
		shim_msg("fork: no thread to send children their copy of the paged memory "
			 "(its pipe was closed); a child that uses it before exec() is stopped");
}

/* The part of a region worth copying: the arena up to its top, the heap
 * up to the end of its highest page in use (plus its alignment slack). */
static size_t used_bytes(uintptr_t base, size_t len)
{
	void *ab;
	size_t alen, used;
	uint64_t u = 0, span = 0;

	arena_range(&ab, &alen);
	if ((uintptr_t)ab == base) {
		arena_stats(&u, &span);
		used = (size_t)span;
	} else {
		used = heap_used_span() + (64u << 20);
	}
	return used < len ? used : len;
}

/*
 * The child's placeholders and SIGSEGV handler must be in place before
 * any of the program's fork handlers runs in the child: an allocator
 * whose chunks are paged (jemalloc inside rustc) reinitialises its locks
 * there, in paged memory, and without a placeholder that is a SIGSEGV no
 * one can serve (the regions are MADV_DONTFORK). Child handlers run in
 * the order they were registered, so the shim registers its own before
 * anyone else's: from fork_init(), or from the first __register_atfork()
 * call (pthread_atfork() is that call) if a constructor comes first. The
 * handler does the setup fork() prepared in pending_*; fork() does it
 * itself after the fact if the handler did not run.
 */
static pthread_mutex_t fork_lock = PTHREAD_MUTEX_INITIALIZER;
static struct range pending_r[MAX_REGIONS];
static int pending_n, pending_sock = -1;
static pthread_t pending_thread; /* not another thread's fork inside libc */
static _Atomic int fork_pending;

typedef int (*register_atfork_fn)(void (*)(void), void (*)(void), void (*)(void), void *);
extern void *__dso_handle;

/*
 * Before the fork handlers run, a child's glibc writes to memory the
 * program's malloc gave it, which is paged and not mapped in the child:
 * reclaim_stacks() clears the second-level blocks of every other thread's
 * thread-specific data (pthread_setspecific() callocs them for keys from
 * 32 on), and the NSS state is reset. So fork() arms on_segv() in the
 * parent for its length, and the child inherits it: a fault there does
 * the child's setup first (stress-ng's and gdb's children died of this).
 */
static pid_t fork_parent_pid;

static bool early_child(void)
{
	return !set_up_here() && atomic_load(&fork_pending) &&
	       (pid_t)syscall(SYS_getpid) != fork_parent_pid;
}

static void child_setup_pending(void)
{
	child_setup(pending_sock, pending_r, pending_n);
}

static void atfork_child(void)
{
	if (atomic_load(&fork_pending) && !set_up_here() &&
	    pthread_equal(pthread_self(), pending_thread))
		child_setup_pending();
	/* glibc's own part of the fork is over (this handler runs first). */
	if (set_up_here())
		atomic_store(&pager_allowed, true);
}

static register_atfork_fn real_register_atfork(void)
{
	static register_atfork_fn real;
	static _Atomic int ours;

	if (!real) {
		shim_enter();
		real = (register_atfork_fn)dlsym(RTLD_NEXT, "__register_atfork");
		shim_leave();
	}
	if (real && !atomic_exchange(&ours, 1))
		real(NULL, NULL, atfork_child, &__dso_handle);
	return real;
}

int __register_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void), void *dso);
SHIM_API int __register_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void),
			       void *dso)
{
	register_atfork_fn real = real_register_atfork();

	return real ? real(prepare, parent, child, dso) : ENOMEM;
}

void fork_init(void)
{
	real_register_atfork();
	server_start();
}

SHIM_API pid_t fork(void)
{
	static pid_t (*real_fork)(void);
	struct range r[MAX_REGIONS];
	struct server *sv = NULL;
	int n = 0, sv_pair[2] = { -1, -1 };
	pid_t pid;

	if (!real_fork) {
		shim_enter();
		real_fork = (pid_t(*)(void))dlsym(RTLD_NEXT, "fork");
		shim_leave();
	}
	/* A child forks as its parent does once it has a pager of its own;
	 * before, its grandchildren get what it has, placeholders included. */
	if (in_child ? !child_pager : !shim_pager || !atomic_load(&shim_ready))
		return real_fork();

	atomic_fetch_add(&shim_forks, 1);
	pthread_mutex_lock(&fork_lock); /* one fork at a time: pending_* */
	atomic_store(&gate_closed, 1);
	while (atomic_load(&gate_active) > 0)
		sched_yield();

	shim_enter();
	pthread_mutex_lock(&regions_lock);
	for (int i = 0; i < nregions; i++) {
		r[n] = regions[i];
		r[n].used = used_bytes(r[n].base, r[n].len);
		if (upager_snapshot(shim_pager, (void *)r[n].base, &r[n].snap) < 0) {
			/* The child still gets the placeholder, so that its
			 * access dies with a message instead of landing in the
			 * parent's fault handler, whose pager is not there. */
			r[n].snap = NULL;
			report_no_snapshot(r[n].base);
		}
		n++;
	}
	pthread_mutex_unlock(&regions_lock);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv_pair) < 0)
		sv_pair[0] = sv_pair[1] = -1;
	sv_pair[0] = upager__fd_keep(sv_pair[0]); /* the parent's end */
	shim_leave();

	memcpy(pending_r, r, sizeof(*r) * (size_t)n);
	pending_n = n;
	pending_sock = sv_pair[1];
	pending_thread = pthread_self();
	fork_parent_pid = (pid_t)syscall(SYS_getpid);
	bool armed = upager__signal_own(SIGSEGV, on_segv) == 0;
	atomic_store(&fork_pending, 1);
	pid = real_fork();
	atomic_store(&fork_pending, 0);
	if (pid != 0 && armed)
		upager__signal_release(SIGSEGV);
	if (pid == 0) {
		pthread_mutex_init(&fork_lock, NULL);
		upager__fd_close(sv_pair[0]);
		if (!set_up_here())
			child_setup(sv_pair[1], r, n);
		atomic_store(&pager_allowed, true);
		atomic_store(&gate_closed, 0);
		atomic_store(&gate_active, 0);
		return 0;
	}
	pthread_mutex_unlock(&fork_lock);
	atomic_store(&gate_closed, 0);
	shim_enter();
	close(sv_pair[1]);
	sv = __libc_malloc(sizeof(*sv));
	if (sv) {
		sv->sock = sv_pair[0];
		sv->n = n;
		memcpy(sv->r, r, sizeof(*r) * (size_t)n);
	}
	if (pid > 0 && sv && sv_pair[0] >= 0 && !server_up)
		report_no_server();
	if (pid < 0 || !sv || sv_pair[0] < 0 || !server_queue(sv)) {
		free_snapshots(r, n);
		upager__fd_close(sv_pair[0]);
		__libc_free(sv);
	}
	shim_leave();
	return pid;
}
