// SPDX-License-Identifier: MIT
/* Test helpers; see testutil.h. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const struct test_backend all_backends[] = {
	{ "uffd", UPAGER_MODE_TRANSPARENT, "uffd/transparent" },
	{ "uffd", UPAGER_MODE_FAST, "uffd/fast" },
	{ "sigsegv", UPAGER_MODE_FAST, "sigsegv" },
	/* Only when UPAGER_BACKEND=auto: whatever auto picks here. */
	{ "auto", UPAGER_MODE_TRANSPARENT, "auto/transparent" },
	{ "auto", UPAGER_MODE_FAST, "auto/fast" },
};

void test_config(upager_config_t *cfg, const struct test_backend *b)
{
	upager_config_init(cfg);
	cfg->backend = b->backend;
	cfg->mode = b->mode;
}

static bool usable(const struct test_backend *b, char *why, size_t whylen)
{
	upager_config_t cfg;
	upager_t *p;

	test_config(&cfg, b);
	cfg.ram_bytes = 1 << 20;
	cfg.page_size = 4096;
	int err = upager_open(&cfg, &p);
	if (err == 0) {
		const char *reason;
		const char *name = upager_backend(p, &reason);
		snprintf(why, whylen, "%s (%s)", name, reason);
		upager_close(p);
		return true;
	}
	snprintf(why, whylen, "%s: %s", upager_strerror(err), upager_last_error());
	return false;
}

int for_each_backend(void (*body)(const struct test_backend *b, void *arg), void *arg)
{
	const char *want_backend = getenv("UPAGER_BACKEND");
	const char *want_mode = getenv("UPAGER_MODE");
	int ran = 0;

	if (want_backend && !*want_backend)
		want_backend = NULL;
	for (size_t i = 0; i < sizeof(all_backends) / sizeof(all_backends[0]); i++) {
		const struct test_backend *b = &all_backends[i];
		char why[600];

		/* Unset: every backend by name. Set: that one (or auto). */
		if (want_backend ? strcmp(want_backend, b->backend) : !strcmp(b->backend, "auto"))
			continue;
		if (want_mode && *want_mode && strcmp(b->backend, "sigsegv") &&
		    strcmp(want_mode, b->mode == UPAGER_MODE_FAST ? "fast" : "transparent"))
			continue;
		if (!usable(b, why, sizeof(why))) {
			printf("backend %-18s skipped: %s\n", b->label, why);
			continue;
		}
		printf("backend %-18s running: %s\n", b->label, why);
		fflush(stdout);
		body(b, arg);
		printf("backend %-18s passed\n", b->label);
		fflush(stdout);
		ran++;
	}
	if (!ran) {
		printf("no usable backend: skipped\n");
		return TEST_SKIP;
	}
	return 0;
}

int run_child(void (*fn)(void *arg), void *arg, char **err_out)
{
	int pipefd[2];
	int status = 0;
	pid_t pid;

	if (pipe(pipefd) < 0)
		FAILF("pipe: %s", strerror(errno));
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		FAILF("fork: %s", strerror(errno));
	if (pid == 0) {
		close(pipefd[0]);
		dup2(pipefd[1], STDERR_FILENO);
		close(pipefd[1]);
		/* No core files from expected deaths. */
		struct rlimit no_core = { 0, 0 };
		setrlimit(RLIMIT_CORE, &no_core);
		fn(arg);
		_exit(0);
	}
	close(pipefd[1]);
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	for (;;) {
		if (len + 1 >= cap)
			buf = realloc(buf, cap *= 2);
		ssize_t n = read(pipefd[0], buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	close(pipefd[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (err_out)
		*err_out = buf;
	else
		free(buf);
	return status;
}

bool died_of(int status, const char *child_stderr, int sig)
{
	if (WIFSIGNALED(status))
		return WTERMSIG(status) == sig;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	/* The sanitizers catch the deadly signal themselves, report it and
	 * exit (ASan with 1, TSan with 66). */
	if (WIFEXITED(status) && WEXITSTATUS(status) != 0 && child_stderr) {
		const char *name = sig == SIGBUS ? "Sanitizer: BUS" : "Sanitizer: SEGV";
		return strstr(child_stderr, name) != NULL;
	}
#endif
	return false;
}

uint64_t proc_status_kb(const char *field)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	size_t flen = strlen(field);
	uint64_t kb = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, field, flen) && line[flen] == ':') {
			kb = strtoull(line + flen + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return kb;
}

/* ---- seeds ---- */

static pthread_once_t seed_once = PTHREAD_ONCE_INIT;
static uint64_t run_seed;
static atomic_bool seed_drawn;

static void seed_init(void)
{
	const char *env = getenv("UPAGER_TEST_SEED");
	char *end;

	if (env && *env) {
		errno = 0;
		run_seed = strtoull(env, &end, 0);
		if (errno || *end) {
			fprintf(stderr, "UPAGER_TEST_SEED=%s: not a number\n", env);
			exit(1);
		}
	} else if (getrandom(&run_seed, sizeof(run_seed), 0) != sizeof(run_seed)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		run_seed = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	}
	printf("seed: UPAGER_TEST_SEED=%llu%s\n", (unsigned long long)run_seed,
	       env && *env ? " (from the environment)" : "");
	fflush(stdout);
	atomic_store(&seed_drawn, true);
}

uint64_t tu_seed(void)
{
	pthread_once(&seed_once, seed_init);
	return run_seed;
}

uint64_t tu_rng(uint64_t stream)
{
	/* splitmix64's finaliser: nearby seeds and streams give unrelated states. */
	uint64_t z = tu_seed() + 0x9e3779b97f4a7c15ULL * (stream + 1);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	z ^= z >> 31;
	return z ? z : 1; /* xorshift stays at 0 forever */
}

void tu_rerun_hint(void)
{
	const char *name = program_invocation_short_name;

	/* libtool runs an uninstalled program as .libs/lt-<name>. */
	if (!strncmp(name, "lt-", 3))
		name += 3;
	if (atomic_load(&seed_drawn))
		fprintf(stderr, "rerun: UPAGER_TEST_SEED=%llu make check TESTS=test/%s\n",
			(unsigned long long)run_seed, name);
	else
		fprintf(stderr, "rerun: make check TESTS=test/%s\n", name);
}

/* Renames keys to 0..d-1 by sorting (not the simulator's hash table). */
struct kpos {
	uint64_t key;
	size_t pos;
};

static int by_key(const void *a, const void *b)
{
	const struct kpos *x = a, *y = b;
	return x->key < y->key ? -1 : x->key > y->key;
}

uint32_t *tu_dense_ids(const uint64_t *keys, size_t n, uint32_t *nids)
{
	struct kpos *v = malloc(n * sizeof(*v));
	uint32_t *ids = malloc(n * sizeof(*ids)), d = 0;

	CHECK(v && ids);
	for (size_t i = 0; i < n; i++)
		v[i] = (struct kpos){ keys[i], i };
	qsort(v, n, sizeof(*v), by_key);
	for (size_t i = 0; i < n; i++) {
		if (i && v[i].key != v[i - 1].key)
			d++;
		ids[v[i].pos] = d;
	}
	*nids = n ? d + 1 : 0;
	free(v);
	return ids;
}

static char data_file_path[4096];

static void remove_data_file(void)
{
	if (data_file_path[0])
		unlink(data_file_path);
}

int tu_data_file(const char *name, unsigned char *shadow, size_t bytes, uint64_t *rng,
		 const char **path)
{
	if (!data_file_path[0]) {
		snprintf(data_file_path, sizeof(data_file_path), "%s-%d.dat", name, (int)getpid());
		atexit(remove_data_file);
	}
	int fd = open(data_file_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	for (size_t i = 0; i < bytes; i++)
		shadow[i] = (unsigned char)rng_next(rng);
	CHECK_EQ(pwrite(fd, shadow, bytes, 0), (ssize_t)bytes);
	if (path)
		*path = data_file_path;
	return fd;
}

void tu_expect_file(int fd, const unsigned char *want, size_t bytes, const char *label,
		    const char *what)
{
	unsigned char *got = malloc(bytes + 1);
	struct stat st;

	CHECK(got);
	CHECK_EQ(fstat(fd, &st), 0);
	CHECK_EQ(st.st_size, bytes);
	CHECK_EQ(pread(fd, got, bytes, 0), (ssize_t)bytes);
	for (size_t i = 0; i < bytes; i++)
		if (got[i] != want[i])
			FAILF("%s: %s: file byte %zu (page %zu) is %#x, expected %#x", label, what,
			      i, i / 4096, got[i], want[i]);
	free(got);
}

upager_t *tu_file_pager(const struct test_backend *b, size_t budget_bytes)
{
	upager_config_t cfg;
	upager_t *p;

	test_config(&cfg, b);
	cfg.ram_bytes = budget_bytes;
	if (!getenv("UPAGER_DIRECT_IO"))
		cfg.direct_io = 0;
	CHECK_OK(upager_open(&cfg, &p));
	return p;
}

upager_t *tu_prefetch_pager(const struct test_backend *b, unsigned frames, const char *policy,
			    size_t pages, unsigned char **a)
{
	upager_config_t cfg;
	upager_t *p;

	test_config(&cfg, b);
	if (policy)
		cfg.policy = policy;
	cfg.ram_bytes = (size_t)frames * 4096;
	cfg.page_size = 4096;
	cfg.free_low = 40;
	cfg.free_high = 60;
	CHECK_OK(upager_open(&cfg, &p));
	CHECK_OK(upager_map(p, pages * 4096, 0, (void **)a));
	return p;
}

void tu_stats_when_still(upager_t *p, upager_stats_t *s)
{
	upager_stats_t prev;
	int still = 0;

	CHECK_OK(upager_stats(p, s));
	for (int tries = 0; tries < 300 && still < 3; tries++) {
		prev = *s;
		usleep(10000);
		CHECK_OK(upager_stats(p, s));
		still = prev.readahead_pages == s->readahead_pages &&
					prev.evictions == s->evictions &&
					prev.writebacks == s->writebacks &&
					prev.zero_drops == s->zero_drops &&
					prev.clean_drops == s->clean_drops &&
					prev.swap_slots_used == s->swap_slots_used
				? still + 1
				: 0;
	}
	if (still < 3)
		FAILF("readahead or eviction still going after three seconds without faults");
}
