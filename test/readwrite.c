// SPDX-License-Identifier: MIT
/*
 * Pages read back from swap and written soon after (pager.c,
 * upager__write_likely), on every backend and mode:
 * - a program that writes what it reads stops paying a write-protect
 *   fault for most such pages, and what it wrote reads back after
 *   eviction;
 * - pages mapped writable that are then only read leave and come back
 *   unchanged (nothing is lost by mapping them writable);
 * - where a tenth of the pages read are written, transparent mode maps
 *   them writable (its write-protect fault costs more than the checksums
 *   of a wrong guess), fast mode does not;
 * - a page the program made read-only stays read-only: a store to it is
 *   SIGSEGV.
 */
#include "testutil.h"

#include <signal.h>
#include <string.h>
#include <sys/mman.h>

#define PS 4096u
#define BUDGET_PAGES 64u
#define PAGES (8 * BUDGET_PAGES)

static const struct test_backend *current;

static upager_t *open_pager(void)
{
	upager_config_t cfg;
	upager_t *p;

	test_config(&cfg, current);
	cfg.ram_bytes = BUDGET_PAGES * PS;
	CHECK_OK(upager_open(&cfg, &p));
	return p;
}

static uint64_t *word(unsigned char *a, size_t pg, size_t k)
{
	return (uint64_t *)(a + pg * PS) + k;
}

/* Reads a random page, then writes it (as a reference count does), or
 * only one page in `every`. */
static void read_then_write_some(unsigned char *a, uint64_t *shadow, uint64_t *seed, int n,
				 int every)
{
	for (int i = 0; i < n; i++) {
		size_t pg = rng_next(seed) % PAGES, k = rng_next(seed) % (PS / 8);
		uint64_t v = *(volatile uint64_t *)word(a, pg, k);
		if (v != shadow[pg * (PS / 8) + k])
			FAILF("%s: page %zu word %zu reads %#llx, wrote %#llx", current->label, pg,
			      k, (unsigned long long)v,
			      (unsigned long long)shadow[pg * (PS / 8) + k]);
		if (i % every)
			continue;
		*word(a, pg, 0) = v + 1;
		shadow[pg * (PS / 8)] = v + 1;
	}
}

static void read_then_write(unsigned char *a, uint64_t *shadow, uint64_t *seed, int n)
{
	read_then_write_some(a, shadow, seed, n, 1);
}

static void check_all(unsigned char *a, const uint64_t *shadow, const char *what)
{
	for (size_t pg = 0; pg < PAGES; pg++)
		if (memcmp(a + pg * PS, shadow + pg * (PS / 8), PS))
			FAILF("%s: %s: page %zu differs", current->label, what, pg);
}

/* A region of PAGES random pages (no readahead: each read below is a
 * miss of its own), most of them out in swap. */
static unsigned char *filled_region(upager_t *p, uint64_t *shadow, uint64_t *seed)
{
	unsigned char *a;

	CHECK_OK(upager_map(p, PAGES * PS, 0, (void **)&a));
	CHECK_OK(upager_advise(p, a, PAGES * PS, UPAGER_ADVICE_RANDOM));
	for (size_t i = 0; i < PAGES * (PS / 8); i++)
		shadow[i] = rng_next(seed);
	memcpy(a, shadow, PAGES * PS);
	return a;
}

/* The pager learns from 500 reads (one in `every` followed by a write),
 * then the misses and write-protect faults of 3000 more are counted;
 * *after holds the statistics at the end. */
static void learn_then_count(upager_t *p, unsigned char *a, uint64_t *shadow, uint64_t *seed,
			     int every, const char *what, uint64_t *majors, uint64_t *wp,
			     upager_stats_t *after)
{
	upager_stats_t before;

	read_then_write_some(a, shadow, seed, 500, every);
	CHECK_OK(upager_stats(p, &before));
	read_then_write_some(a, shadow, seed, 3000, every);
	CHECK_OK(upager_stats(p, after));
	*majors = after->faults_major - before.faults_major;
	*wp = after->faults_wp - before.faults_wp;
	if (getenv("UPAGER_TEST_VERBOSE"))
		printf("  %s: %s: %llu major, %llu write-protect\n", current->label, what,
		       (unsigned long long)*majors, (unsigned long long)*wp);
	CHECK_CMP(*majors, >, 1000);
}

static void writes_follow_reads(void)
{
	uint64_t *shadow = malloc(PAGES * PS), seed = 0x77;
	unsigned char *a;
	upager_stats_t after;

	CHECK(shadow);
	upager_t *p = open_pager();
	a = filled_region(p, shadow, &seed);

	uint64_t majors, wp;
	learn_then_count(p, a, shadow, &seed, 1, "all written", &majors, &wp, &after);
	/* One read in 32 is still mapped read-only to keep measuring. */
	CHECK_CMP(wp, <, majors / 4);
	check_all(a, shadow, "after read-then-write");

	/* Now only reads: pages mapped writable at once go out (unchanged,
	 * without a write) and come back as they were. */
	for (int i = 0; i < 3000; i++) {
		size_t pg = rng_next(&seed) % PAGES;
		if (*(volatile uint64_t *)word(a, pg, 5) != shadow[pg * (PS / 8) + 5])
			FAILF("%s: page %zu changed", current->label, pg);
	}
	check_all(a, shadow, "after reads");
	CHECK_OK(upager_close(p));
	free(shadow);
}

/* In a child of its own (a fork of a process whose pager threads run
 * could inherit a page lock one of them held): a page the program made
 * read-only and that comes back from swap while the pager maps such
 * reads writable stays read-only, and a store to it is SIGSEGV. */
static void store_to_read_only(void *arg)
{
	uint64_t *shadow = malloc(PAGES * PS), seed = 0x99;

	(void)arg;
	CHECK(shadow);
	upager_t *p = open_pager();
	unsigned char *a = filled_region(p, shadow, &seed);
	read_then_write(a, shadow, &seed, 2000);
	size_t first_ro = PAGES - 16;
	CHECK_OK(upager_protect(p, a + first_ro * PS, 16 * PS, PROT_READ));
	for (size_t pg = 0; pg < first_ro; pg++) /* pushes the read-only pages out */
		*(volatile unsigned char *)(a + pg * PS +
					    1) = ((unsigned char *)shadow)[pg * PS + 1];
	for (size_t pg = first_ro; pg < PAGES; pg++)
		CHECK_EQ(*(volatile uint64_t *)word(a, pg, 0), shadow[pg * (PS / 8)]);
	check_all(a, shadow, "read-only pages");
	((volatile unsigned char *)a)[(PAGES - 1) * PS + 7] = 1;
	fprintf(stderr, "the store went through\n");
	_exit(3);
}

static void read_only_stays(void)
{
	char *err;
	int status = run_child(store_to_read_only, NULL, &err);

	if (!died_of(status, err, SIGSEGV))
		FAILF("%s: a store to a read-only page read from swap: status %#x\n%s",
		      current->label, status, err);
	free(err);
}

/* A tenth of the pages read are written: in transparent mode, where a
 * write-protect fault is a hand-off to a handler thread, mapping them
 * writable at once pays, and the pager does; in fast mode, where the
 * fault costs a few us, it pays only from about one in seven, and the
 * pager does not. */
static void tenth_written(void)
{
	uint64_t *shadow = malloc(PAGES * PS), seed = 0x55;
	upager_stats_t after;

	CHECK(shadow);
	upager_t *p = open_pager();
	unsigned char *a = filled_region(p, shadow, &seed);
	uint64_t majors, wp;
	learn_then_count(p, a, shadow, &seed, 10, "a tenth written", &majors, &wp, &after);
	if (!strcmp(after.mode, "transparent"))
		CHECK_CMP(wp, <, majors / 40);
	else
		CHECK_CMP(wp, >, majors / 20);
	check_all(a, shadow, "after a tenth written");
	CHECK_OK(upager_close(p));
	free(shadow);
}

static void body(const struct test_backend *b, void *arg)
{
	(void)arg;
	current = b;
	writes_follow_reads();
	tenth_written();
	read_only_stays();
	printf("  %s: ok\n", b->label);
}

int main(void)
{
	return for_each_backend(body, NULL);
}
