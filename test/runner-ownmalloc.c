// SPDX-License-Identifier: MIT
/*
 * A program with an allocator of its own in the executable (as rustc has
 * jemalloc), so that every library in the process (libc, libsigsegv)
 * allocates from it, and its chunks are anonymous mappings that
 * upager-run pages. Every allocation starts on a fresh page, so each one
 * made while a pager lock is held is a first-touch fault on paged memory:
 * the pager's own code must never reach it (on the sigsegv backend, fork's
 * snapshot registered its view with libsigsegv, which called malloc, with
 * the lock held that the fault then needed). Then fork() with a heap
 * several times the budget: children change it, the parent's copy stays.
 * In the wrapped modes (fast, sigsegv) upager-run leaves such a program's
 * memory to the kernel, and the same checks must pass.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runner-util.h"

/* A sanitizer's runtime owns malloc itself: nothing to test there
 * (test/runner.sh skips the preload library built with one anyway). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

#define PAGE 4096u
#define CHUNK (8u << 20)
#define HDR 16u

#if !SANITIZED
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char *chunk;
static size_t chunk_left;

/* A block: its usable size in the 8 bytes before it. Nothing is reused:
 * free() is a no-op, which is all this test needs. */
static void *bump(size_t n, size_t align)
{
	size_t need, off;
	char *slot;

	if (align < HDR)
		align = HDR;
	if (n > SIZE_MAX / 2 || align > PAGE) {
		errno = ENOMEM;
		return NULL;
	}
	off = align > HDR ? align : HDR;
	need = (off + n + PAGE - 1) & ~(size_t)(PAGE - 1);
	pthread_mutex_lock(&lock);
	if (need > chunk_left) {
		size_t len = need > CHUNK ? need : CHUNK;
		void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
			       0);
		if (m == MAP_FAILED) {
			pthread_mutex_unlock(&lock);
			errno = ENOMEM;
			return NULL;
		}
		chunk = m;
		chunk_left = len;
	}
	slot = chunk;
	chunk += need;
	chunk_left -= need;
	pthread_mutex_unlock(&lock);
	((size_t *)(slot + off))[-1] = n; /* the first touch of the page */
	return slot + off;
}

void *malloc(size_t n)
{
	return bump(n, HDR);
}

void free(void *p)
{
	(void)p;
}

void *calloc(size_t n, size_t m)
{
	if (m && n > SIZE_MAX / m) {
		errno = ENOMEM;
		return NULL;
	}
	return bump(n * m, HDR); /* fresh pages are zero */
}

size_t malloc_usable_size(void *p)
{
	return p ? ((size_t *)p)[-1] : 0;
}

void *realloc(void *p, size_t n)
{
	void *q = bump(n, HDR);
	size_t old = malloc_usable_size(p);

	if (q && p)
		memcpy(q, p, old < n ? old : n);
	return q;
}

void *memalign(size_t align, size_t n)
{
	return bump(n, align);
}

void *aligned_alloc(size_t align, size_t n)
{
	return bump(n, align);
}

int posix_memalign(void **out, size_t align, size_t n)
{
	void *p = bump(n, align);

	if (!p)
		return ENOMEM;
	*out = p;
	return 0;
}

void *valloc(size_t n)
{
	return bump(n, PAGE);
}

void *pvalloc(size_t n)
{
	return bump((n + PAGE - 1) & ~(size_t)(PAGE - 1), PAGE);
}

/* From here on, chunks are mapped after the pager is up. */
static void paged_chunks_from_now(void)
{
	pthread_mutex_lock(&lock);
	chunk_left = 0;
	pthread_mutex_unlock(&lock);
}
#else
static void paged_chunks_from_now(void)
{
}
#endif /* !SANITIZED */

/* ---- the test ---- */

#define HEAP (64u << 20) /* 4x upager-run's --ram 16M in test/runner.sh */

static void fill(unsigned char *b, unsigned seed)
{
	for (size_t j = 0; j < HEAP; j += 256)
		b[j] = (unsigned char)(seed + j / 256 * 7);
}

static size_t first_bad(const unsigned char *b, unsigned seed)
{
	for (size_t j = 0; j < HEAP; j += 256)
		if (b[j] != (unsigned char)(seed + j / 256 * 7))
			return j;
	return SIZE_MAX;
}

int main(void)
{
	if (SANITIZED) {
		puts("built with a sanitizer, which replaces malloc itself: skipped");
		return 77;
	}
	paged_chunks_from_now();

	unsigned char *heap = malloc(HEAP);
	CHECK(heap != NULL);
	if (getenv("UPAGER_RUN_ROOT")) {
		/* Paged in transparent mode only: in the wrapped modes libc's
		 * stdio buffers would live in this allocator's chunks, and
		 * libc writes them out with system calls no wrapper sees. */
		const char *mode = getenv("UPAGER_MODE"), *backend = getenv("UPAGER_BACKEND");
		bool wrapped = (mode && !strcmp(mode, "fast")) ||
			       (backend && !strcmp(backend, "sigsegv"));
		CHECK(wrapped ? !is_paged(heap) : is_paged(heap));
	}
	fill(heap, 1);

	for (unsigned round = 0; round < 4; round++) {
		pid_t pid = fork();

		CHECK(pid >= 0);
		if (pid == 0) {
			size_t bad = first_bad(heap, 1 + round);
			if (bad != SIZE_MAX) {
				fprintf(stderr, "child %u: byte %zu is not the parent's\n", round,
					bad);
				_exit(2);
			}
			fill(heap, 100 + round);
			char *s = malloc(100); /* the child's allocator works too */
			if (!s)
				_exit(3);
			snprintf(s, 100, "child %u", round);
			if (first_bad(heap, 100 + round) != SIZE_MAX || s[6] != (char)('0' + round))
				_exit(4);
			_exit(0);
		}
		int st;
		CHECK(waitpid(pid, &st, 0) == pid);
		CHECK(WIFEXITED(st));
		CHECK_EQ(WEXITSTATUS(st), 0);
		size_t bad = first_bad(heap, 1 + round);
		if (bad != SIZE_MAX)
			FAILF("round %u: the parent's byte %zu changed", round, bad);
		fill(heap, 2 + round); /* the next child checks this */
	}

	/* fork and exec, with the parent's allocations going on meanwhile. */
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		execl("/bin/true", "true", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200; i++)
		CHECK(malloc(10) != NULL);
	int st;
	CHECK(waitpid(pid, &st, 0) == pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK(first_bad(heap, 5) == SIZE_MAX);
	puts("ownmalloc: 4 children changed their copies, the parent's did not change");
	return 0;
}
