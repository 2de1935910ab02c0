// SPDX-License-Identifier: MIT
/*
 * faults: what one fault costs, per 4 KiB page, in upager and in the
 * kernel, measured in the same process one right after the other. No
 * eviction and no I/O: the budget is twice the pages touched.
 *
 *   zero-seq    first write to each page of a fresh region, in order
 *               (upager: zero-fill fault; kernel: anonymous first touch)
 *   zero-rand   the same in a random page order
 *   minor       upager: read of a page that is resident but unmapped (the
 *               emulated accessed bit). The pages are first written, then
 *               taken away from the application view through the backend
 *               under their page locks, 64 at a time, exactly as the
 *               evictor's sampling does (arm_page() in src/evict.c).
 *               Extra anchor: the kernel's own minor fault on the same
 *               kind of memory (memfd pages dropped from the page table
 *               with MADV_DONTNEED, then read).
 *   wp          upager: first write to pages that were read first (they
 *               are mapped write-protected and clean: the emulated dirty
 *               bit). Extra anchor: the kernel's write after read on
 *               anonymous memory (a copy-on-write of the zero page).
 *
 * Each upager figure is printed next to the kernel's anonymous first
 * touch in the same order (sequential or random), measured just before
 * it in every repetition; the figures are medians over --reps. The
 * pager's own counters confirm that every timed access was the intended
 * fault (up_counted). This program links the internal library: the minor
 * fault needs pages resident but unmapped, which the public API cannot
 * ask for.
 *
 *   faults [--pages N] [--reps R] [--mode fast|transparent|both]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "internal.h"
#include "fault.h"
#include "bench.h"

#define PAGE 4096ull
#define MAX_REPS 64

static uint64_t npages = 16384;
static unsigned reps = 5;
static uint64_t *perm; /* a random page order */

static void die(const char *what, int err)
{
	fprintf(stderr, "faults: %s: %s (%s)\n", what,
		err <= -10000 ? upager_strerror(err) : strerror(-err), upager_last_error());
	exit(1);
}

/* ns per page to touch every page once, in order or in perm's order. */
static double touch(char *a, const uint64_t *order, bool write)
{
	double t0 = bench_now();

	for (uint64_t i = 0; i < npages; i++) {
		volatile char *x = a + (order ? order[i] : i) * PAGE;
		if (write)
			*x = 1;
		else
			(void)*x;
	}
	return (bench_now() - t0) / (double)npages * 1e9;
}

static char *anon(void)
{
	char *a = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (a == MAP_FAILED)
		die("mmap", -errno);
	madvise(a, npages * PAGE, MADV_NOHUGEPAGE);
	return a;
}

/* The kernel's anonymous first-touch write fault, ns per page. */
static double kernel_first_touch(const uint64_t *order)
{
	char *a = anon();
	double ns = touch(a, order, true);

	munmap(a, npages * PAGE);
	return ns;
}

static long minor_faults(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt;
}

/* The kernel's write after read: zero page, then copy-on-write. Some
 * kernels have no zero page (pvm_no_zero_page=1 on this machine's
 * command line): the read then maps a real page and the write does not
 * fault at all; that returns -1. */
static double kernel_cow(void)
{
	char *a = anon();
	touch(a, NULL, false);
	long f0 = minor_faults();
	double ns = touch(a, NULL, true);
	long faults = minor_faults() - f0;

	munmap(a, npages * PAGE);
	return faults >= (long)npages / 2 ? ns : -1;
}

/* The kernel's minor fault: a shmem page in the page cache, not mapped. */
static double kernel_shmem_minor(void)
{
	int fd = memfd_create("faults-bench", MFD_CLOEXEC);

	if (fd < 0 || ftruncate(fd, (off_t)(npages * PAGE)) < 0)
		die("memfd", -errno);
	char *a = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (a == MAP_FAILED)
		die("mmap", -errno);
	madvise(a, npages * PAGE, MADV_NOHUGEPAGE);
	touch(a, NULL, true);
	madvise(a, npages * PAGE, MADV_DONTNEED);
	double ns = touch(a, NULL, false);
	munmap(a, npages * PAGE);
	close(fd);
	return ns;
}

/*
 * Takes every page of the region at a out of the application view while
 * its frame stays: the next access is a minor fault. Mirrors arm_page()
 * in src/evict.c, 64 pages per backend call, under the page locks.
 */
static void unmap_resident(upager_t *p, char *a)
{
	struct region *r = upager__region_find((uintptr_t)a);

	if (!r)
		die("upager__region_find", UPAGER_ENOREGION);
	for (uint64_t pg = 0; pg < npages; pg += 64) {
		uint64_t n = npages - pg < 64 ? npages - pg : 64;
		struct upte *e[64];
		for (uint64_t i = 0; i < n; i++) {
			e[i] = pt_lookup(&r->pt, pg + i);
			if (!e[i])
				die("pt_lookup", -ENOENT);
			upager__pte_lock(e[i]);
			uint32_t f = pte_flags(e[i]);
			if (pte_state(f) != PTE_RESIDENT || !(f & PTE_MAPPED) ||
			    atomic_load(&p->frames.frames[e[i]->frame].pins)) {
				fprintf(stderr, "faults: page %llu not resident and mapped\n",
					(unsigned long long)(pg + i));
				exit(1);
			}
		}
		int err = p->backend->unmap(r, pg, n);
		if (err < 0)
			die("backend unmap", err);
		for (uint64_t i = 0; i < n; i++) {
			pte_update(e[i], PTE_MAPPED | PTE_WRITABLE, 0);
			upager__pte_unlock(e[i]);
		}
	}
	upager__region_put(r);
}

static char *up_map(upager_t *p)
{
	char *a;
	int err = upager_map(p, npages * PAGE, 0, (void **)&a);

	if (err < 0)
		die("upager_map", err);
	return a;
}

static uint64_t counter(upager_t *p, int which)
{
	upager_stats_t st;

	upager_stats(p, &st);
	switch (which) {
	case 0:
		return st.faults_zero;
	case 1:
		return st.faults_minor;
	default:
		return st.faults_wp;
	}
}

enum test { T_ZERO_SEQ, T_ZERO_RAND, T_MINOR, T_WP, NTESTS };
static const char *const test_names[] = { "zero-seq", "zero-rand", "minor", "wp" };

static void run_mode(upager_mode_t mode)
{
	upager_config_t cfg;
	upager_t *p;
	double up[NTESTS][MAX_REPS], k[NTESTS][MAX_REPS], extra[NTESTS][MAX_REPS];
	uint64_t counted[NTESTS] = { 0 };
	int err;

	upager_config_init(&cfg);
	cfg.mode = mode;
	cfg.ram_bytes = 2 * npages * PAGE; /* no eviction */
	err = upager_open(&cfg, &p);
	if (err < 0)
		die("upager_open", err);

	for (unsigned rep = 0; rep < reps; rep++) {
		char *a;
		uint64_t c0;

		/* zero-fill, in order */
		k[T_ZERO_SEQ][rep] = kernel_first_touch(NULL);
		a = up_map(p);
		c0 = counter(p, 0);
		up[T_ZERO_SEQ][rep] = touch(a, NULL, true);
		counted[T_ZERO_SEQ] = counter(p, 0) - c0;
		upager_unmap(p, a);

		/* zero-fill, random order */
		k[T_ZERO_RAND][rep] = kernel_first_touch(perm);
		a = up_map(p);
		c0 = counter(p, 0);
		up[T_ZERO_RAND][rep] = touch(a, perm, true);
		counted[T_ZERO_RAND] = counter(p, 0) - c0;
		upager_unmap(p, a);

		/* minor: resident, unmapped, read */
		k[T_MINOR][rep] = kernel_first_touch(NULL);
		extra[T_MINOR][rep] = kernel_shmem_minor();
		a = up_map(p);
		touch(a, NULL, true);
		unmap_resident(p, a);
		c0 = counter(p, 1);
		up[T_MINOR][rep] = touch(a, NULL, false);
		counted[T_MINOR] = counter(p, 1) - c0;
		upager_unmap(p, a);

		/* write protect: read first (clean, write-protected), then write */
		k[T_WP][rep] = kernel_first_touch(NULL);
		extra[T_WP][rep] = kernel_cow();
		a = up_map(p);
		touch(a, NULL, false);
		c0 = counter(p, 2);
		up[T_WP][rep] = touch(a, NULL, true);
		counted[T_WP] = counter(p, 2) - c0;
		upager_unmap(p, a);
	}

	upager_stats_t st;
	upager_stats(p, &st);
	for (int t = 0; t < NTESTS; t++) {
		double u = bench_median(up[t], reps), kn = bench_median(k[t], reps);
		printf("bench=faults test=%s mode=%s backend=%s pages=%llu reps=%u upager_ns=%.0f "
		       "kernel_ns=%.0f ratio=%.2f up_counted=%llu",
		       test_names[t], st.mode, st.backend, (unsigned long long)npages, reps, u, kn,
		       u / kn, (unsigned long long)counted[t]);
		if (t == T_MINOR)
			printf(" kernel_shmem_minor_ns=%.0f", bench_median(extra[t], reps));
		if (t == T_WP) {
			double cow = bench_median(extra[t], reps);
			if (cow < 0)
				printf(" kernel_cow_ns=-"); /* no zero page: no fault */
			else
				printf(" kernel_cow_ns=%.0f", cow);
		}
		printf("\n");
		fflush(stdout);
	}
	err = upager_close(p);
	if (err < 0)
		die("upager_close", err);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "pages", required_argument, NULL, 'n' },
		{ "reps", required_argument, NULL, 'r' },
		{ "mode", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *modes = "both";
	int c;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			npages = bench_size_arg("--pages", optarg);
			break;
		case 'r':
			reps = (unsigned)atoi(optarg);
			break;
		case 'm':
			modes = optarg;
			break;
		case 'h':
			printf("usage: faults [--pages N] [--reps R] [--mode fast|transparent|both]\n");
			return 0;
		default:
			return 2;
		}
	}
	if (npages < 64 || reps < 1 || reps > MAX_REPS) {
		fprintf(stderr, "faults: --pages at least 64, --reps 1..%d\n", MAX_REPS);
		return 2;
	}
	perm = malloc(npages * sizeof(*perm));
	if (!perm)
		die("malloc", -ENOMEM);
	uint64_t rng = 7;
	for (uint64_t i = 0; i < npages; i++)
		perm[i] = i;
	for (uint64_t i = npages - 1; i > 0; i--) {
		uint64_t j = bench_rand_below(&rng, i + 1), t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
	if (!strcmp(modes, "fast") || !strcmp(modes, "both"))
		run_mode(UPAGER_MODE_FAST);
	if (!strcmp(modes, "transparent") || !strcmp(modes, "both"))
		run_mode(UPAGER_MODE_TRANSPARENT);
	free(perm);
	return 0;
}
