// SPDX-License-Identifier: MIT
/*
 * Punches that fail (white-box, injected in upager__punch): when
 * fallocate() fails the madvise(MADV_REMOVE) fallback frees the memory;
 * when both fail the page keeps its frame and its contents. Either way
 * no byte is lost, every failure is counted, and the memfd never holds
 * more pages than the budget has frames.
 */
#include "testutil.h"
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#define PS 4096u
#define BUDGET_PAGES 32u
#define PAGES 160u

static unsigned char value(size_t pg, unsigned round)
{
	return (unsigned char)(pg * 7 + round * 13 + 1);
}

/* Pages the region's memfd holds: the frames' real memory. */
static uint64_t memfd_pages(void *base)
{
	struct region *r = upager__region_find((uintptr_t)base);
	struct stat st;

	CHECK(r != NULL);
	CHECK_EQ(fstat(r->memfd, &st), 0);
	upager__region_put(r);
	return (uint64_t)st.st_blocks * 512 / PS;
}

static void run(const struct test_backend *b, unsigned how, int fails)
{
	upager_config_t cfg;
	upager_stats_t st;
	upager_t *p;
	unsigned char *a;
	uint64_t most = 0;

	test_config(&cfg, b);
	cfg.ram_bytes = BUDGET_PAGES * PS;
	cfg.page_size = PS;
	cfg.policy = "fifo";
	CHECK_OK(upager_open(&cfg, &p));
	CHECK_OK(upager_map(p, PAGES * PS, 0, (void **)&a));
	atomic_store(&p->punch_fail_how, how);
	atomic_store(&p->punch_fail, fails);
	for (unsigned round = 0; round < 3; round++) {
		for (size_t pg = 0; pg < PAGES; pg++) {
			if (round)
				CHECK_EQ(a[pg * PS + round - 1], value(pg, round - 1));
			a[pg * PS + round] = value(pg, round);
			uint64_t held = memfd_pages(a);
			if (held > most)
				most = held;
		}
	}
	for (size_t pg = 0; pg < PAGES; pg++)
		for (unsigned round = 0; round < 3; round++)
			if (a[pg * PS + round] != value(pg, round))
				FAILF("%s: page %zu byte %u: %u, expected %u", b->label, pg, round,
				      a[pg * PS + round], value(pg, round));
	CHECK_OK(upager_stats(p, &st));
	printf("  %s, %s: %llu punch failures, %llu evictions, memfd at most %llu pages\n",
	       b->label, how & PUNCH_FAIL_REMOVE ? "both fail" : "fallocate fails",
	       (unsigned long long)st.punch_failures, (unsigned long long)st.evictions,
	       (unsigned long long)most);
	CHECK_EQ(atomic_load(&p->punch_fail), 0); /* every injected failure was met */
	CHECK_CMP(st.punch_failures, >=, fails);
	CHECK_CMP(st.evictions, >, 0);
	CHECK_CMP(most, <=, BUDGET_PAGES);
	CHECK_CMP(memfd_pages(a), <=, st.resident_pages);

	/* DONTNEED whose punch fails: refused, the page keeps its contents. */
	size_t pg = PAGES - 1; /* written last: resident */
	CHECK_EQ(a[pg * PS], value(pg, 0));
	atomic_store(&p->punch_fail_how, PUNCH_FAIL_FALLOCATE | PUNCH_FAIL_REMOVE);
	atomic_store(&p->punch_fail, 1);
	int err = upager_advise(p, a + pg * PS, PS, UPAGER_ADVICE_DONTNEED);
	atomic_store(&p->punch_fail, 0);
	if (err == -EIO) {
		CHECK_EQ(a[pg * PS + 2], value(pg, 2));
		CHECK_OK(upager_advise(p, a + pg * PS, PS, UPAGER_ADVICE_DONTNEED));
	} else {
		/* The page had left (the evictor) before the advice. */
		CHECK_OK(err);
		printf("  %s: DONTNEED found the page gone\n", b->label);
	}
	CHECK_EQ(a[pg * PS + 2], 0);
	CHECK_OK(upager_close(p));
}

static void body(const struct test_backend *b, void *arg)
{
	(void)arg;
	run(b, PUNCH_FAIL_FALLOCATE, 8);
	run(b, PUNCH_FAIL_FALLOCATE | PUNCH_FAIL_REMOVE, 8);
}

int main(void)
{
	return for_each_backend(body, NULL);
}
