// SPDX-License-Identifier: MIT
/* Every malloc-family call with glibc's results and errno, run plain and under upager-run (test/runner.sh). */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runner-util.h"

/* Under AddressSanitizer (the CI build runs this test plain): failures
 * return NULL as glibc's do, and glibc's own leniencies (memalign with an
 * alignment that is not a power of two) are not checked. */
#ifdef __SANITIZE_ADDRESS__
#define GLIBC_ONLY 0
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "allocator_may_return_null=1";
}
#else
#define GLIBC_ONLY 1
#endif

/* Set by test/librunner-early.so's constructor, which runs before the
 * shim's (when preloaded after it): blocks from before the pager. */
extern void **runner_early_blocks(size_t *n) __attribute__((weak));

/* A constructor of the program: the pager is up, so this is paged. */
static char *ctor_block;
static void __attribute__((constructor)) ctor(void)
{
	ctor_block = malloc(3 << 20);
	if (ctor_block)
		memset(ctor_block, 0x5c, 3 << 20);
}

static void fill(void *p, size_t n, unsigned seed)
{
	unsigned char *c = p;
	for (size_t i = 0; i < n; i++)
		c[i] = (unsigned char)(seed + i * 7);
}

static void check_fill(const void *p, size_t n, unsigned seed)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i++)
		if (c[i] != (unsigned char)(seed + i * 7))
			FAILF("byte %zu of a block is %u, expected %u", i, c[i],
			      (unsigned char)(seed + i * 7));
}

int main(void)
{
	/* Sizes no allocator can give, hidden from the compiler's checks. */
	volatile size_t huge = SIZE_MAX - 4096, half = SIZE_MAX / 2;
	size_t sizes[] = { 0,       1,       15,    16,     17,      100,
			   4096,    65535,   65536, 200000, 1 << 20, (1 << 20) + 1,
			   5 << 20, 40 << 20 };
	long pg = sysconf(_SC_PAGESIZE);
	void *p, *q;
	size_t i;
	int r;

	/* malloc of every size: distinct, aligned, usable, writable. */
	void *blocks[sizeof(sizes) / sizeof(sizes[0])];
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		p = malloc(sizes[i]);
		CHECK(p != NULL);
		CHECK_EQ((uintptr_t)p % 16, 0);
		CHECK_CMP(malloc_usable_size(p), >=, sizes[i]);
		fill(p, sizes[i], (unsigned)i);
		blocks[i] = p;
		for (size_t j = 0; j < i; j++)
			CHECK(blocks[j] != p);
	}
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		check_fill(blocks[i], sizes[i], (unsigned)i);
		free(blocks[i]);
	}
	/* Large blocks are paged. */
	p = malloc(8 << 20);
	CHECK(p);
	expect_paged(p, "malloc(8 MiB)");
	free(p);

	/* free(NULL), malloc_usable_size(NULL). */
	free(NULL);
	CHECK_EQ(malloc_usable_size(NULL), 0);

	/* Failures: ENOMEM. */
	errno = 0;
	CHECK(malloc(huge) == NULL);
	CHECK_EQ(errno, ENOMEM);
	errno = 0;
	CHECK(calloc(half, 3) == NULL);
	CHECK_EQ(errno, ENOMEM);
	errno = 0;
	CHECK(reallocarray(NULL, half, 3) == NULL);
	CHECK_EQ(errno, ENOMEM);
	p = malloc(10);
	errno = 0;
	CHECK(realloc(p, huge) == NULL);
	CHECK_EQ(errno, ENOMEM);
	free(p); /* still valid after a failed realloc */

	/* calloc zeroes, also a block that reuses freed memory. */
	for (int round = 0; round < 2; round++) {
		for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			unsigned char *c = calloc(1, sizes[i]);
			CHECK(c);
			for (size_t j = 0; j < sizes[i]; j++)
				if (c[j])
					FAILF("calloc(%zu) byte %zu is %u", sizes[i], j, c[j]);
			memset(c, 0xff, sizes[i]);
			free(c);
		}
	}

	/* realloc: NULL is malloc, 0 frees, growth keeps contents, small
	 * to big to small. */
	p = realloc(NULL, 100);
	CHECK(p);
	fill(p, 100, 1);
	size_t steps[] = {
		200, 5000, 70000, 1 << 20, 3 << 20, 17 << 20, 2 << 20, 900000, 3000, 50
	};
	size_t have = 100;
	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		q = realloc(p, steps[i]);
		CHECK(q);
		size_t keep = have < steps[i] ? have : steps[i];
		check_fill(q, keep, 1);
		fill(q, steps[i], 1);
		have = steps[i];
		p = q;
	}
	errno = 0;
	CHECK(realloc(p, 0) == NULL); /* glibc: frees, returns NULL */
	p = reallocarray(NULL, 10, 10);
	CHECK(p);
	CHECK_CMP(malloc_usable_size(p), >=, 100);
	free(p);

	/* Alignment calls. */
	size_t aligns[] = { 8, 16, 32, 64, 256, 4096, 8192, 1 << 16, 2 << 20 };
	for (i = 0; i < sizeof(aligns) / sizeof(aligns[0]); i++) {
		size_t ns[] = { 1, 100, 5000, 3 << 20 };
		for (size_t k = 0; k < 4; k++) {
			p = memalign(aligns[i], ns[k]);
			CHECK(p);
			CHECK_EQ((uintptr_t)p % aligns[i], 0);
			fill(p, ns[k], 3);
			check_fill(p, ns[k], 3);
			free(p);
			/* glibc takes any size; ASan wants a multiple (C11). */
			if (GLIBC_ONLY || ns[k] % aligns[i] == 0) {
				p = aligned_alloc(aligns[i], ns[k]);
				CHECK(p);
				CHECK_EQ((uintptr_t)p % aligns[i], 0);
				free(p);
			}
			p = NULL;
			r = posix_memalign(&p, aligns[i], ns[k]);
			CHECK_EQ(r, 0);
			CHECK_EQ((uintptr_t)p % aligns[i], 0);
			CHECK_CMP(malloc_usable_size(p), >=, ns[k]);
			free(p);
		}
	}
	/* memalign rounds a non-power-of-two alignment up. */
	if (GLIBC_ONLY) {
		p = memalign(48, 10);
		CHECK(p);
		CHECK_EQ((uintptr_t)p % 64, 0);
		free(p);
	}
	/* posix_memalign: EINVAL without touching errno or *out. */
	p = (void *)0x1234;
	errno = 0;
	CHECK_EQ(posix_memalign(&p, 24, 10), EINVAL);
	CHECK_EQ(posix_memalign(&p, 4, 10), EINVAL);
	CHECK_EQ(posix_memalign(&p, 0, 10), EINVAL);
	CHECK_EQ(errno, 0);
	CHECK(p == (void *)0x1234);
	CHECK_EQ(posix_memalign(&p, 64, huge), ENOMEM);
	errno = 0;
	CHECK(memalign((size_t)1 << 63 | 1, 10) == NULL);
	if (GLIBC_ONLY)
		CHECK_EQ(errno, EINVAL);
	errno = 0;
	CHECK(memalign(64, huge) == NULL);
	CHECK_EQ(errno, ENOMEM);

	/* valloc, pvalloc. */
	p = valloc(10);
	CHECK(p);
	CHECK_EQ((uintptr_t)p % (uintptr_t)pg, 0);
	free(p);
	p = pvalloc(0);
	CHECK(p);
	CHECK_EQ((uintptr_t)p % (uintptr_t)pg, 0);
	free(p);
	p = pvalloc((size_t)pg + 1);
	CHECK(p);
	CHECK_CMP(malloc_usable_size(p), >=, 2 * (size_t)pg);
	fill(p, 2 * (size_t)pg, 9);
	free(p);
	errno = 0;
	CHECK(pvalloc(huge + 4086) == NULL);
	CHECK_EQ(errno, ENOMEM);

	/* free() keeps errno. */
	p = malloc(5 << 20);
	errno = 1234;
	free(p);
	CHECK_EQ(errno, 1234);

	/* strdup, asprintf, getline: libc's own allocations, freed by us. */
	char *s = strdup("a string from libc");
	CHECK(s && !strcmp(s, "a string from libc"));
	free(s);
	CHECK(asprintf(&s, "%d-%s", 42, "x") == 4);
	CHECK(!strcmp(s, "42-x"));
	free(s);

	/* The constructor's block. */
	CHECK(ctor_block);
	for (i = 0; i < (3 << 20); i += 4096)
		CHECK_EQ((unsigned char)ctor_block[i], 0x5c);
	expect_paged(ctor_block, "a constructor's 3 MiB block");
	free(ctor_block);

	/* Blocks from before the pager was up (librunner-early.so). */
	if (runner_early_blocks) {
		size_t n;
		void **eb = runner_early_blocks(&n);
		for (i = 0; i < n; i++) {
			unsigned char *c = eb[i];
			size_t sz = 100 + i * 1000;
			CHECK_CMP(malloc_usable_size(c), >=, sz);
			for (size_t j = 0; j < sz; j++)
				if (c[j] != (unsigned char)(j + i))
					FAILF("early block %zu byte %zu changed", i, j);
			if (i % 2) {
				free(c);
			} else {
				/* realloc moves it into paged memory */
				c = realloc(c, sz + (4 << 20));
				CHECK(c);
				for (size_t j = 0; j < sz; j++)
					if (c[j] != (unsigned char)(j + i))
						FAILF("early block %zu byte %zu lost in realloc", i,
						      j);
				free(c);
			}
		}
		printf("early blocks: %zu freed after the pager came up\n", n);
	}
	printf("malloc family: ok\n");
	return 0;
}
