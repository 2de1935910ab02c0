// SPDX-License-Identifier: MIT
/* Large anonymous mmap, munmap (whole, parts, twice), mremap and madvise(DONTNEED/FREE) under upager-run (test/runner.sh). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "runner-util.h"

#define MiB (1UL << 20)

static void fill(unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i += 512)
		p[i] = (unsigned char)(seed + i / 512);
}

static void check(const unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i += 512)
		if (p[i] != (unsigned char)(seed + i / 512))
			FAILF("byte %zu is %u, expected %u", i, p[i],
			      (unsigned char)(seed + i / 512));
}

static void check_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i += 256)
		if (p[i])
			FAILF("byte %zu is %u, expected 0", i, p[i]);
}

int main(void)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	unsigned char *a, *b, *c;

	/* A big private anonymous mapping is paged, zeroed, usable. */
	a = mmap(NULL, 64 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(a != MAP_FAILED);
	expect_paged(a, "mmap(64 MiB)");
	check_zero(a, 64 * MiB);
	fill(a, 64 * MiB, 1);
	check(a, 64 * MiB, 1);

	/* A small one, a shared one and a file one stay the kernel's. */
	b = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(b != MAP_FAILED);
	CHECK(!is_paged(b));
	CHECK_EQ(munmap(b, 8192), 0);
	b = mmap(NULL, 8 * MiB, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(b != MAP_FAILED);
	CHECK(!is_paged(b));
	CHECK_EQ(munmap(b, 8 * MiB), 0);

	/* madvise(DONTNEED) and MADV_FREE: the range reads as zero, the
	 * rest keeps its data. */
	CHECK_EQ(madvise(a + 4 * MiB, 4 * MiB, MADV_DONTNEED), 0);
	check_zero(a + 4 * MiB, 4 * MiB);
	check(a, 4 * MiB, 1);
	check(a + 8 * MiB, 8 * MiB, (unsigned)(1 + 8 * MiB / 512));
	if (madvise(a + 16 * MiB, MiB, MADV_FREE) == 0) {
		/* MADV_FREE may keep or drop; either zero or the old data. */
		CHECK(a[16 * MiB] == 0 || a[16 * MiB] == (unsigned char)(1 + 16 * MiB / 512));
	}
	CHECK_EQ(madvise(a, MiB, MADV_WILLNEED), 0);
	CHECK_EQ(madvise(a, MiB, MADV_HUGEPAGE) == 0 || errno == EINVAL, 1);

	/* Partial munmap: head and tail trimmed (an aligned allocation). */
	CHECK_EQ(munmap(a, 2 * MiB), 0);
	CHECK_EQ(munmap(a + 60 * MiB, 4 * MiB), 0);
	CHECK_EQ(munmap(a + 60 * MiB, 4 * MiB), 0); /* twice is fine */
	check(a + 8 * MiB, 8 * MiB, (unsigned)(1 + 8 * MiB / 512));
	errno = 0;
	CHECK_EQ(munmap(a + 1, pg), -1);
	CHECK_EQ(errno, EINVAL);

	/* mremap: grow (moves or not), contents kept; shrink in place. */
	c = mmap(NULL, 4 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(c != MAP_FAILED);
	fill(c, 4 * MiB, 7);
	unsigned char *c2 = mremap(c, 4 * MiB, 32 * MiB, MREMAP_MAYMOVE);
	CHECK(c2 != MAP_FAILED);
	check(c2, 4 * MiB, 7);
	check_zero(c2 + 4 * MiB, 28 * MiB);
	fill(c2, 32 * MiB, 9);
	unsigned char *c3 = mremap(c2, 32 * MiB, 2 * MiB, 0);
	CHECK(c3 == c2);
	check(c3, 2 * MiB, 9);
	/* Growing without MAYMOVE either grows in place or fails ENOMEM. */
	unsigned char *c4 = mremap(c3, 2 * MiB, 3 * MiB, 0);
	if (c4 == MAP_FAILED)
		CHECK_EQ(errno, ENOMEM);
	else
		CHECK(c4 == c3);

	/* mprotect: read-only then back. */
	CHECK_EQ(mprotect(c3, MiB, PROT_READ), 0);
	check(c3, MiB, 9);
	CHECK_EQ(mprotect(c3, MiB, PROT_READ | PROT_WRITE), 0);
	c3[0] = 1;
	CHECK_EQ(munmap(c3, c4 == MAP_FAILED ? 2 * MiB : 3 * MiB), 0);
	CHECK_EQ(munmap(a + 2 * MiB, 58 * MiB), 0);

	/* Many mappings: reuse after free reads as zero. */
	unsigned char *m[64];
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 64; i++) {
			m[i] = mmap(NULL, MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				    -1, 0);
			CHECK(m[i] != MAP_FAILED);
			check_zero(m[i], MiB);
			fill(m[i], MiB, (unsigned)i);
		}
		for (int i = 0; i < 64; i++) {
			check(m[i], MiB, (unsigned)i);
			CHECK_EQ(munmap(m[i], MiB), 0);
		}
	}
	printf("mmap family: ok\n");
	return 0;
}
