// SPDX-License-Identifier: MIT
/* fork() under upager-run: a child that changes every page of a heap bigger than the budget sees its own copy, the parent's is unchanged; fork+exec, system(), popen(); exec arguments and system call buffers on the heap, used by a child before it touches the heap; with glibc-state, a child whose glibc writes to the heap before the fork handlers run (test/runner.sh). */
#define _GNU_SOURCE
#include <locale.h>
#include <pthread.h>
#include <pwd.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runner-util.h"

#define SMALL 3000 /* bytes per small block */

static size_t nsmall;
static unsigned char **small;
static unsigned char *big;
static size_t big_len;
static unsigned char *map;
static size_t map_len;

static void fill_all(unsigned seed)
{
	for (size_t i = 0; i < nsmall; i++)
		for (size_t j = 0; j < SMALL; j += 64)
			small[i][j] = (unsigned char)(seed + i + j / 64);
	for (size_t j = 0; j < big_len; j += 512)
		big[j] = (unsigned char)(seed * 3 + j / 512);
	for (size_t j = 0; j < map_len; j += 512)
		map[j] = (unsigned char)(seed * 5 + j / 512);
}

static int check_all(unsigned seed)
{
	for (size_t i = 0; i < nsmall; i++)
		for (size_t j = 0; j < SMALL; j += 64)
			if (small[i][j] != (unsigned char)(seed + i + j / 64)) {
				fprintf(stderr, "small block %zu byte %zu: %u != %u\n", i, j,
					small[i][j], (unsigned char)(seed + i + j / 64));
				return 0;
			}
	for (size_t j = 0; j < big_len; j += 512)
		if (big[j] != (unsigned char)(seed * 3 + j / 512)) {
			fprintf(stderr, "big block byte %zu differs\n", j);
			return 0;
		}
	for (size_t j = 0; j < map_len; j += 512)
		if (map[j] != (unsigned char)(seed * 5 + j / 512)) {
			fprintf(stderr, "mapping byte %zu differs\n", j);
			return 0;
		}
	return 1;
}

static char **heap_vec(const char *a, const char *b, const char *c)
{
	char **v = malloc(4 * sizeof(*v));

	CHECK(v != NULL);
	v[0] = strdup(a);
	v[1] = b ? strdup(b) : NULL;
	v[2] = c ? strdup(c) : NULL;
	v[3] = NULL;
	return v;
}

/* The process's peak resident set (VmHWM), in KiB. */
static long peak_rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmHWM: %ld", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

static int exited(pid_t pid)
{
	int st;

	CHECK_EQ(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* fork(), then exec of `sh -c script` in the child: its exit status. */
static int fork_exec_sh(const char *script)
{
	pid_t pid = fork();

	CHECK(pid >= 0);
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", script, (char *)NULL);
		_exit(127);
	}
	return exited(pid);
}

/*
 * The kernel reads exec's path, argv and envp, and a write()'s buffer;
 * a forked child that has not touched the heap yet has only placeholders
 * there (it failed with EFAULT: the Erlang VM's child). In the wrapped
 * modes the same holds for evicted pages, also through system(), popen()
 * and posix_spawn(). The strings were allocated early, so that the big
 * heap has evicted them since.
 */
static void heap_arguments(char *path, char **sh5, char **env, char **sh6, char *msg,
			   size_t msg_len)
{
	pid_t pid;
	int fds[2];

	for (int variant = 0; variant < 6; variant++) {
		pid = fork();
		CHECK(pid >= 0);
		if (pid == 0) {
			switch (variant) {
			case 0:
				execve(path, sh5, env);
				break;
			case 1:
				execvpe(sh5[0], sh5, env);
				break;
			case 2:
				execle(path, sh5[0], sh5[1], sh5[2], (char *)NULL, env);
				break;
			case 3:
				execv(path, sh6);
				break;
			case 4:
				execvp(sh6[0], sh6);
				break;
			case 5:
				execl(path, sh6[0], sh6[1], sh6[2], (char *)NULL);
				break;
			}
			_exit(99);
		}
		int want = variant < 3 ? 5 : 6, got = exited(pid);
		if (got != want)
			FAILF("exec variant %d with its arguments on the heap: status %d, not %d",
			      variant, got, want);
	}
	CHECK_EQ(pipe(fds), 0);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0)
		_exit(write(fds[1], msg, msg_len) == (ssize_t)msg_len ? 0 : 1);
	close(fds[1]);
	char got[4096];
	size_t n = 0;
	ssize_t r;
	while (n < msg_len && (r = read(fds[0], got + n, msg_len - n)) > 0)
		n += (size_t)r;
	close(fds[0]);
	CHECK_EQ(exited(pid), 0);
	CHECK_EQ(n, msg_len);
	CHECK(memcmp(got, msg, msg_len) == 0);
	CHECK_EQ(system(sh6[2]) >> 8, 6);
	FILE *f = popen(sh6[2], "r");
	CHECK(f);
	CHECK_EQ(pclose(f) >> 8, 6);
	CHECK_EQ(posix_spawn(&pid, path, NULL, NULL, sh5, env), 0);
	CHECK_EQ(exited(pid), 5);
	printf("exec, write, system, popen, posix_spawn with heap arguments: ok\n");
}

/*
 * What a forked child's glibc writes before any fork handler runs, in
 * memory the program's malloc gave it: every other thread's second-level
 * block of thread-specific data (keys from 32 on) is cleared, and the NSS
 * state is reset. stress-ng's and gdb's children died there.
 */
static pthread_barrier_t keys_barrier;
static pthread_key_t keys[40];

static void *key_holder(void *arg)
{
	CHECK_EQ(pthread_setspecific(keys[39], arg), 0); /* a calloc'd block */
	pthread_barrier_wait(&keys_barrier);
	pthread_barrier_wait(&keys_barrier); /* until the forks are done */
	return NULL;
}

static int glibc_state(void)
{
	pthread_t th;
	int st;
	char *data = malloc(100000);

	CHECK(data != NULL);
	for (int i = 0; i < 100000; i++)
		data[i] = (char)(i % 251);
	for (int i = 0; i < 40; i++)
		CHECK_EQ(pthread_key_create(&keys[i], NULL), 0);
	CHECK_EQ(pthread_barrier_init(&keys_barrier, NULL, 2), 0);
	CHECK_EQ(pthread_create(&th, NULL, key_holder, data), 0);
	pthread_barrier_wait(&keys_barrier);
	CHECK(getpwuid(0) != NULL); /* the NSS state, malloc'd */

	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		for (int i = 0; i < 100000; i++)
			if (data[i] != (char)(i % 251))
				_exit(2);
		data[0] = 1; /* its own copy */
		_exit(getpwuid(0) ? 0 : 3);
	}
	CHECK_EQ(waitpid(pid, &st, 0), pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		FAILF("child failed: status %#x", st);
	CHECK_EQ(data[0], 0);
	CHECK_EQ(fork_exec_sh("exit 7"), 7);
	pthread_barrier_wait(&keys_barrier);
	CHECK_EQ(pthread_join(th, NULL), 0);
	free(data);
	printf("fork with other threads' thread-specific data and NSS state: ok\n");
	return 0;
}

static void *count_bytes(void *arg)
{
	const char *s = arg;
	size_t n = 0;

	while (s[n])
		n++;
	return (void *)n;
}

/* A program that loaded a locale (its data then lives on the heap, which
 * every new thread reads) forks a child that uses the heap and starts a
 * thread: the child's copy must be there for both (bash with
 * LANG=C.UTF-8 lost its command substitutions when the child's pager
 * started threads before the copy). The forking thread has a locale of
 * its own on the heap too, as perl's has (its child died switching back
 * to it before the copy was in). */
static int locale_fork(void)
{
	if (!setlocale(LC_ALL, "C.UTF-8")) {
		printf("locale fork: C.UTF-8 not available, skipped\n");
		return 0;
	}
	locale_t own = newlocale(LC_ALL_MASK, "C.UTF-8", (locale_t)0);
	CHECK(own != (locale_t)0);
	CHECK(uselocale(own) != (locale_t)0);
	char *text = malloc(200000);
	CHECK(text != NULL);
	for (int i = 0; i < 199999; i++)
		text[i] = (char)('a' + i % 26);
	text[199999] = '\0';
	for (int round = 0; round < 3; round++) {
		pid_t pid = fork();
		CHECK(pid >= 0);
		if (pid == 0) {
			pthread_t th;
			void *n;
			if (text[12345] != (char)('a' + 12345 % 26))
				_exit(2);
			if (pthread_create(&th, NULL, count_bytes, text) || pthread_join(th, &n))
				_exit(3);
			_exit((size_t)n == 199999 ? 0 : 4);
		}
		CHECK_EQ(exited(pid), 0);
	}
	free(text);
	uselocale(LC_GLOBAL_LOCALE);
	freelocale(own);
	printf("fork after setlocale: ok\n");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "glibc-state"))
		return glibc_state();
	if (argc > 1 && !strcmp(argv[1], "locale"))
		return locale_fork();
	/* Total: argv[1] MiB (default 64: 4x the 16 MiB budget of runner.sh);
	 * argv[2] --fork-only leaves out the exec checks after it. */
	size_t total = (size_t)(argc > 1 ? atoi(argv[1]) : 64) << 20;
	int st;
	/* Allocated first: evicted by the time they are used. */
	char *path = strdup("/bin/sh");
	char **sh5 = heap_vec("sh", "-c", "test \"$RUNNER_T\" = heap-env && exit 5");
	char **env = heap_vec("RUNNER_T=heap-env", NULL, NULL);
	char **sh6 = heap_vec("sh", "-c", "exit 6");
	char *msg = malloc(3000);
	CHECK(msg != NULL);
	for (int i = 0; i < 3000; i++)
		msg[i] = (char)('a' + i % 26);

	nsmall = total / 2 / SMALL;
	big_len = total / 4;
	map_len = total / 4;
	small = malloc(nsmall * sizeof(*small));
	CHECK(small);
	for (size_t i = 0; i < nsmall; i++) {
		small[i] = malloc(SMALL);
		CHECK(small[i]);
	}
	big = malloc(big_len);
	CHECK(big);
	map = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(map != MAP_FAILED);
	expect_paged(big, "the big block");
	fill_all(1);

	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		/* The child: the parent's data, then its own. */
		if (!check_all(1))
			_exit(2);
		/* Its copy is paged by a pager of its own, on userfaultfd. */
		const char *backend = getenv("UPAGER_BACKEND");
		bool own_pager = is_paged(big);
		if (getenv("UPAGER_RUN_ROOT") && backend && !strcmp(backend, "uffd") && !own_pager) {
			fprintf(stderr, "child: its copy is not paged\n");
			_exit(8);
		}
		fill_all(2);
		if (!check_all(2))
			_exit(3);
		/* A grandchild gets its own copy in turn. */
		pid_t grandchild = fork();
		if (grandchild < 0)
			_exit(9);
		if (grandchild == 0) {
			if (!check_all(2))
				_exit(2);
			fill_all(4);
			_exit(check_all(4) ? 0 : 3);
		}
		if (exited(grandchild) != 0) {
			fprintf(stderr, "grandchild failed\n");
			_exit(10);
		}
		if (!check_all(2))
			_exit(11);
		/* It keeps using the heap: frees, allocates, reallocates. */
		for (size_t i = 0; i < nsmall; i += 2) {
			free(small[i]);
			small[i] = malloc(SMALL);
			if (!small[i])
				_exit(4);
			memset(small[i], 0, SMALL);
		}
		big = realloc(big, big_len * 2);
		if (!big)
			_exit(5);
		for (size_t j = 0; j < big_len; j += 512)
			if (big[j] != (unsigned char)(2 * 3 + j / 512))
				_exit(6);
		free(big);
		munmap(map, map_len);
		/* What it uses stays within its pager's budget: far below the
		 * heap it copied (the plain run's size). */
		long peak = peak_rss_kib();
		if (own_pager && peak > (long)(total >> 10) * 3 / 4) {
			fprintf(stderr, "child: peak RSS %ld KiB for a %zu MiB heap\n", peak,
				total >> 20);
			_exit(12);
		}
		_exit(0);
	}
	CHECK_EQ(waitpid(pid, &st, 0), pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		FAILF("child failed: status %#x", st);
	/* The parent's copy did not change. */
	CHECK(check_all(1));
	fill_all(3);
	CHECK(check_all(3));
	printf("fork with a %zu MiB heap: ok\n", total >> 20);

	/* fork + exec, system(), popen(): cheap, and the heap survives. */
	for (int i = 0; i < 20; i++)
		CHECK_EQ(fork_exec_sh("exit 3"), 3);
	CHECK_EQ(system("exit 4") >> 8, 4);
	FILE *f = popen("echo from-popen", "r");
	CHECK(f);
	char line[64] = "";
	CHECK(fgets(line, sizeof(line), f) != NULL);
	CHECK(!strcmp(line, "from-popen\n"));
	CHECK_EQ(pclose(f), 0);
	CHECK(check_all(3));
	printf("fork+exec, system, popen: ok\n");
	/* bench/programs times the fork above, the program, alone. */
	if (argc < 3 || strcmp(argv[2], "--fork-only"))
		heap_arguments(path, sh5, env, sh6, msg, 3000);
	char **vecs[] = { sh5, env, sh6 };
	for (int v = 0; v < 3; v++) {
		for (int i = 0; vecs[v][i]; i++)
			free(vecs[v][i]);
		free(vecs[v]);
	}
	free(path);
	free(msg);
	return 0;
}
