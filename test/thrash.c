// SPDX-License-Identifier: MIT
/*
 * The working set estimate, the miss phases and the thrashing report, on
 * real faults: a cyclic pattern over twice the budget thrashes (the flag
 * is set, the estimate is near the pattern's pages, the callback and the
 * warning come once), one that fits does not. Contents are checked after
 * every pass; the figures get generous bounds and nothing is timed.
 */
#include "testutil.h"

#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define BUDGET_PAGES 512
#define WORD(m, pg) ((volatile uint64_t *)((char *)(m) + (size_t)(pg)*PAGE))

/* Written by the callback on a pager thread or in a signal handler (so
 * no lock: the count is published after the copy), read by the test. */
static atomic_int thrash_calls;
static upager_thrash_info_t last_info;

static bool on_thrash(void *arg, const upager_thrash_info_t *info)
{
	(void)arg;
	last_info = *info;
	atomic_fetch_add_explicit(&thrash_calls, 1, memory_order_release);
	return true; /* ask for the warning line */
}

static int calls_so_far(upager_thrash_info_t *info)
{
	int n = atomic_load_explicit(&thrash_calls, memory_order_acquire);
	if (info)
		*info = last_info;
	return n;
}

static void reset_calls(void)
{
	atomic_store(&thrash_calls, 0);
}

static uint64_t hist_count(const upager_stats_t *s, int phase)
{
	uint64_t n = 0;
	for (int k = 0; k < UPAGER_LATENCY_BUCKETS; k++)
		n += s->phase_hist[phase][k];
	return n;
}

/* The stats once the handlers are done with the last miss: in
 * transparent mode the program runs on as soon as its page is mapped,
 * while the handler thread still records that miss's phases, so a
 * snapshot can count a major fault whose phases are not in yet. The
 * program makes no more faults here, so the counts settle. */
static void settled_stats(upager_t *p, upager_stats_t *s)
{
	upager_stats_t prev;
	CHECK_OK(upager_stats(p, s));
	for (int tries = 0; tries < 200; tries++) {
		prev = *s;
		usleep(5000);
		CHECK_OK(upager_stats(p, s));
		if (!memcmp(prev.phase_hist, s->phase_hist, sizeof(s->phase_hist)))
			return;
	}
	FAILF("phase counts still moving after a second without faults");
}

/* One read-modify-write of every page of m, in the same order every
 * pass (a stride, so that no readahead guesses it); checks each page's
 * counter on the way. npages is a power of two. */
static void cyclic_pass(char *m, uint64_t npages, uint64_t pass)
{
	for (uint64_t i = 0; i < npages; i++) {
		uint64_t pg = i * 7919 % npages;
		uint64_t v = *WORD(m, pg);
		if (v != pg * 1000 + pass)
			FAILF("page %llu holds %llu after %llu passes, expected %llu",
			      (unsigned long long)pg, (unsigned long long)v,
			      (unsigned long long)pass, (unsigned long long)(pg * 1000 + pass));
		*WORD(m, pg) = v + 1;
	}
}

static upager_t *open_pager(const struct test_backend *b)
{
	upager_config_t cfg;
	upager_t *p;

	test_config(&cfg, b);
	cfg.ram_bytes = BUDGET_PAGES * PAGE;
	cfg.page_size = PAGE;
	cfg.print_stats = 0;
	cfg.on_thrash = on_thrash;
	CHECK_OK(upager_open(&cfg, &p));
	return p;
}

/* Twice the budget, cyclically: every access misses. */
static void thrashing(const struct test_backend *b)
{
	const uint64_t npages = 2 * BUDGET_PAGES;
	upager_t *p = open_pager(b);
	upager_stats_t s;
	char *m;

	CHECK_OK(upager_map(p, npages * PAGE, 0, (void **)&m));
	for (uint64_t pg = 0; pg < npages; pg++)
		*WORD(m, pg) = pg * 1000;
	/* Only first touches so far: misses, none of them a refault. */
	settled_stats(p, &s);
	CHECK_EQ(s.refaults, 0);
	CHECK_EQ(s.thrash_windows, 0);
	CHECK_EQ(s.thrashing, 0);
	/* One per zero-fill fault (a write fills a window around it). */
	CHECK_EQ(hist_count(&s, UPAGER_PHASE_MISS), s.faults_zero);

	/* The warning goes to stderr: into a file, to count it. */
	char path[] = "/tmp/upager-thrash-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	unlink(path);
	fflush(stderr);
	int saved = dup(2);
	CHECK(saved >= 0);
	CHECK(dup2(fd, 2) == 2);

	reset_calls();
	uint64_t pass = 0;
	/* Until the flag is up (a window is judged every half second of
	 * misses); the bound only stops a broken judge. */
	for (; pass < 300; pass++) {
		cyclic_pass(m, npages, pass);
		CHECK_OK(upager_stats(p, &s));
		if (getenv("UPAGER_TEST_VERBOSE") && pass % 10 == 0)
			fprintf(stdout,
				"pass %llu major %llu refaults %llu recent %llu ws %llu stall %.3f windows %llu t %.3f\n",
				(unsigned long long)pass, (unsigned long long)s.faults_major,
				(unsigned long long)s.refaults,
				(unsigned long long)s.refaults_recent,
				(unsigned long long)s.workingset_pages, s.stall_ns / 1e9,
				(unsigned long long)s.thrash_windows,
				(double)clock() / CLOCKS_PER_SEC),
				fflush(stdout);
		if (s.thrashing && pass >= 2)
			break;
	}
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	settled_stats(p, &s);
	if (getenv("UPAGER_TEST_VERBOSE"))
		upager_stats_print(p, 1);

	printf("  %llu passes: %llu major faults, %llu refaults (%llu recent), working set %llu "
	       "pages (true %llu, budget %u), stalled %.2f s, %llu thrashing windows\n",
	       (unsigned long long)pass + 1, (unsigned long long)s.faults_major,
	       (unsigned long long)s.refaults, (unsigned long long)s.refaults_recent,
	       (unsigned long long)s.workingset_pages, (unsigned long long)npages, BUDGET_PAGES,
	       s.stall_ns / 1e9, (unsigned long long)s.thrash_windows);
	CHECK_EQ(s.thrashing, 1);
	CHECK_CMP(s.thrash_windows, >=, 1);
	/* Every miss after the first pass is a refault of a page evicted
	 * less than a budget's worth of evictions before. */
	CHECK_CMP(s.refaults, >=, (uint64_t)pass * npages * 9 / 10);
	/* ... about one budget before: the boundary of a "recent" one. */
	CHECK_CMP(s.refaults_recent, >, 0);
	CHECK_CMP(s.workingset_pages, >=, npages * 7 / 10);
	CHECK_CMP(s.workingset_pages, <=, npages * 13 / 10);
	CHECK_CMP(s.stall_ns, >, 0);
	/* The phases of those misses. */
	uint64_t misses = hist_count(&s, UPAGER_PHASE_MISS);
	CHECK_CMP(misses, >=, s.faults_major);
	CHECK_CMP(hist_count(&s, UPAGER_PHASE_LOCK), ==, misses);
	CHECK_CMP(hist_count(&s, UPAGER_PHASE_FRAME), ==, misses);
	CHECK_CMP(hist_count(&s, UPAGER_PHASE_IO), >=, s.faults_major);
	CHECK_CMP(hist_count(&s, UPAGER_PHASE_MAP), ==, misses);
	CHECK_CMP(hist_count(&s, UPAGER_PHASE_ENTRY), ==, misses);
	CHECK_CMP(s.phase_ns[UPAGER_PHASE_MISS], >=, s.phase_ns[UPAGER_PHASE_IO]);
	CHECK_CMP(hist_count(&s, UPAGER_PHASE_ZAP), >, 0);
	CHECK_CMP(hist_count(&s, UPAGER_PHASE_PUNCH), >, 0);
	CHECK_CMP(hist_count(&s, UPAGER_PHASE_WRITE), >, 0);

	/* One callback, one warning line naming a budget. */
	upager_thrash_info_t info;
	CHECK_EQ(calls_so_far(&info), 1);
	CHECK_EQ(s.thrash_warnings, 1);
	CHECK_EQ(info.budget_pages, BUDGET_PAGES);
	CHECK_CMP(info.refaults * 2, >, info.misses);
	char text[4096];
	ssize_t got = pread(fd, text, sizeof(text) - 1, 0);
	CHECK(got > 0);
	text[got] = '\0';
	close(fd);
	int lines = 0;
	for (char *q = text; (q = strstr(q, "upager: thrashing")); q++)
		lines++;
	if (lines != 1 || !strstr(text, "(UPAGER_RAM) would stop it"))
		FAILF("expected one thrashing warning, got %d in: %s", lines, text);
	printf("  %s", text);

	/* The contents survived all of it. */
	for (uint64_t pg = 0; pg < npages; pg++)
		CHECK_EQ(*WORD(m, pg), pg * 1000 + pass + 1);
	CHECK_OK(upager_close(p));
}

/* Half the budget, cyclically: it all stays resident. */
static void fitting(const struct test_backend *b)
{
	const uint64_t npages = BUDGET_PAGES / 2;
	upager_t *p = open_pager(b);
	upager_stats_t s;
	char *m;

	CHECK_OK(upager_map(p, npages * PAGE, 0, (void **)&m));
	for (uint64_t pg = 0; pg < npages; pg++)
		*WORD(m, pg) = pg * 1000;
	reset_calls();
	for (uint64_t pass = 0; pass < 200; pass++)
		cyclic_pass(m, npages, pass);
	CHECK_OK(upager_stats(p, &s));
	printf("  fitting: working set %llu pages (true %llu), %llu refaults, %llu misses\n",
	       (unsigned long long)s.workingset_pages, (unsigned long long)npages,
	       (unsigned long long)s.refaults,
	       (unsigned long long)hist_count(&s, UPAGER_PHASE_MISS));
	CHECK_EQ(s.thrashing, 0);
	CHECK_EQ(s.thrash_windows, 0);
	CHECK_EQ(s.refaults, 0);
	CHECK_EQ(s.faults_major, 0);
	CHECK_EQ(calls_so_far(NULL), 0);
	CHECK_CMP(s.workingset_pages, >=, npages * 7 / 10);
	CHECK_CMP(s.workingset_pages, <=, npages * 13 / 10);
	CHECK_OK(upager_close(p));
}

static void body(const struct test_backend *b, void *arg)
{
	(void)arg;
	fitting(b);
	thrashing(b);
}

int main(void)
{
	return for_each_backend(body, NULL);
}
