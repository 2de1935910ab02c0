// SPDX-License-Identifier: MIT
/* Threads allocating and freeing across each other, read()/write() on heap buffers, atexit handlers using the heap, exit() from a thread (test/runner.sh). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runner-util.h"

#define THREADS 8
#define SLOTS 512

/* Blocks handed between threads: allocated by one, freed by another. */
static void *_Atomic handoff[SLOTS];

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void *exit_thread(void *arg)
{
	(void)arg;
	exit(0);
}

static void *worker(void *arg)
{
	uint64_t s = (uintptr_t)arg * 2654435761u + 1;

	for (int it = 0; it < 20000; it++) {
		size_t slot = rnd(&s) % SLOTS;
		size_t sz = (rnd(&s) % 8 == 0) ? 100000 + rnd(&s) % 3000000 : 16 + rnd(&s) % 2000;
		unsigned char *p = malloc(sz);
		CHECK(p);
		memcpy(p, &sz, 8);
		p[sz - 1] = (unsigned char)(sz >> 3);
		unsigned char *old = atomic_exchange(&handoff[slot], p);
		if (old) {
			size_t osz;
			memcpy(&osz, old, 8);
			CHECK_CMP(malloc_usable_size(old), >=, osz);
			CHECK_EQ(old[osz - 1], (unsigned char)(osz >> 3));
			free(old);
		}
	}
	return NULL;
}

/* atexit: the heap still works after main returns. */
static char *at_exit_block;
static void at_exit_handler(void)
{
	char *p = malloc(2 << 20);
	if (!p || strcmp(at_exit_block, "kept until exit")) {
		fprintf(stderr, "FAIL: heap unusable in an atexit handler\n");
		_exit(1);
	}
	memset(p, 1, 2 << 20);
	free(p);
	free(at_exit_block);
	printf("atexit: ok\n");
	fflush(stdout);
}

int main(int argc, char **argv)
{
	pthread_t th[THREADS];
	char path[] = "/tmp/runner-threads-XXXXXX";
	size_t n = 6 << 20;
	int fd;

	at_exit_block = malloc(3 << 20);
	strcpy(at_exit_block, "kept until exit");
	atexit(at_exit_handler);

	for (uintptr_t i = 0; i < THREADS; i++)
		CHECK_EQ(pthread_create(&th[i], NULL, worker, (void *)(i + 1)), 0);
	for (int i = 0; i < THREADS; i++)
		CHECK_EQ(pthread_join(th[i], NULL), 0);
	for (int i = 0; i < SLOTS; i++)
		free(handoff[i]);
	printf("threads: ok\n");

	/* write() from and read() into paged heap buffers; stat into one. */
	unsigned char *src = malloc(n), *dst = malloc(n);
	struct stat *st = malloc(sizeof(*st) + (2 << 20));
	CHECK(src && dst && st);
	expect_paged(src, "a 6 MiB buffer");
	for (size_t i = 0; i < n; i++)
		src[i] = (unsigned char)(i * 13 + 5);
	fd = mkstemp(path);
	CHECK(fd >= 0);
	unlink(path);
	CHECK_EQ(write(fd, src, n), (long long)n);
	CHECK_EQ(fstat(fd, st), 0);
	CHECK_EQ(st->st_size, (long long)n);
	CHECK_EQ(pread(fd, dst, n, 0), (long long)n);
	CHECK(memcmp(src, dst, n) == 0);
	memset(dst, 0, n);
	CHECK_EQ(lseek(fd, 0, SEEK_SET), 0);
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, dst + got, n - got);
		CHECK(r > 0);
		got += (size_t)r;
	}
	CHECK(memcmp(src, dst, n) == 0);
	close(fd);
	free(src);
	free(dst);
	free(st);
	printf("syscalls: ok\n");
	fflush(stdout);

	if (argc > 1 && !strcmp(argv[1], "sigterm")) {
		/* Killed by a signal: the stats still print (--stats). */
		raise(SIGTERM);
	}
	if (argc > 1 && !strcmp(argv[1], "exit-from-thread")) {
		/* exit() from another thread: atexit handlers and the stats
		 * still run. */
		pthread_t t;
		CHECK_EQ(pthread_create(&t, NULL, exit_thread, NULL), 0);
		pthread_join(t, NULL);
	}
	return 0;
}
