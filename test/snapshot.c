// SPDX-License-Identifier: MIT
/*
 * Snapshots and clones against a shadow model, on every backend and mode.
 *
 * Every writable region or clone has a shadow copy outside the pager that
 * every write goes to as well; every snapshot has the shadow saved at the
 * moment it was taken. The regions are four times the budget, so the
 * pages that a region shares with its snapshots and clones are evicted
 * and read back through every path: copy-on-write faults on resident and
 * on swapped pages, views faulting in shared pages, clones reading
 * through a snapshot, restore. Around that: DONTNEED and WILLNEED on
 * shared pages, pins across a snapshot, stores to a view (SIGSEGV), and
 * bad arguments.
 *
 * The race: two threads store 8-byte words into their own pages, logging
 * each store, while the main thread takes two snapshots. A snapshot is one
 * instant: what it holds is the initial contents plus a prefix of each
 * thread's log (a store to a page the snapshot has not yet protected is in
 * it; the first store that meets the protection waits for the snapshot to
 * complete, and every later store of that thread comes after it). The
 * prefix must also lie between the stores published before the call and
 * those published after it returned. The snapshots are read while the
 * stores go on, and must read the same afterwards.
 */
#include "testutil.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#define PS 4096u
#define FRAMES 128u /* 512 KiB budget */
#define PAGES 512u  /* 2 MiB regions: four times the budget */
#define LEN ((size_t)PAGES * PS)

static const struct test_backend *current;

/*
 * The shadows in play, by name: a page that holds the wrong bytes is
 * reported with the shadows it matches instead, which tells a stale copy
 * (another version of the page) from garbage.
 */
#define MAX_KNOWN 16
static struct {
	const char *name;
	const unsigned char *data;
} known[MAX_KNOWN];
static unsigned nknown;

static void know(const char *name, const unsigned char *data)
{
	CHECK(nknown < MAX_KNOWN);
	known[nknown].name = name;
	known[nknown].data = data;
	nknown++;
}

static unsigned char *dup_shadow(const unsigned char *src)
{
	unsigned char *d = malloc(LEN);
	CHECK(d);
	memcpy(d, src, LEN);
	return d;
}

/* got holds the bytes [off, off+len) of an object whose shadow is want
 * (want is indexed like got, not by off). */
static void expect_same(const char *what, size_t off, const unsigned char *got,
			const unsigned char *want, size_t len)
{
	static const unsigned char zeros[PS];
	size_t bad = 0, first_bad = SIZE_MAX;
	char matches[256];

	if (memcmp(got, want, len) == 0)
		return;
	/* Page by page, in the object's page numbering. */
	for (size_t i = 0; i < len;) {
		size_t pg = (off + i) / PS;
		size_t n = (pg + 1) * PS - (off + i);
		if (n > len - i)
			n = len - i;
		if (memcmp(got + i, want + i, n) == 0) {
			i += n;
			continue;
		}
		bad++;
		if (first_bad == SIZE_MAX)
			first_bad = pg;
		if (bad <= 4) {
			size_t j = 0;
			while (got[i + j] == want[i + j])
				j++;
			matches[0] = '\0';
			for (unsigned k = 0; k < nknown; k++)
				if (memcmp(got + i, known[k].data + off + i, n) == 0)
					snprintf(matches + strlen(matches),
						 sizeof(matches) - strlen(matches), " %s",
						 known[k].name);
			if (memcmp(got + i, zeros, n) == 0)
				snprintf(matches + strlen(matches),
					 sizeof(matches) - strlen(matches), " zeros");
			fprintf(stderr,
				"  %s: page %zu differs from byte %zu (offset %zu): %#x, expected %#x;"
				" the page's bytes here match:%s\n",
				what, pg, (off + i + j) % PS, off + i + j, got[i + j], want[i + j],
				matches[0] ? matches : " no known version");
		}
		i += n;
	}
	FAILF("%s, %s: %zu page(s) differ, the first is page %zu", current->label, what, bad,
	      first_bad);
}

/* Random stores over the whole object, mostly small, some crossing pages;
 * the shadow first so that it never lags behind. */
static void scribble(unsigned char *a, unsigned char *shadow, unsigned ops, uint64_t *s)
{
	unsigned char buf[2 * PS];

	for (unsigned op = 0; op < ops; op++) {
		size_t len = rng_next(s) % 8 ? 1 + rng_next(s) % 64 : 1 + rng_next(s) % sizeof(buf);
		size_t off = rng_next(s) % (LEN - len + 1);
		for (size_t i = 0; i < len; i += 8) {
			uint64_t v = rng_next(s);
			memcpy(buf + i, &v, len - i < 8 ? len - i : 8);
		}
		memcpy(shadow + off, buf, len);
		memcpy(a + off, buf, len);
	}
}

static unsigned char *view_of(upager_snapshot_t *s)
{
	void *v, *again;

	CHECK_OK(upager_snapshot_map(s, &v));
	CHECK_OK(upager_snapshot_map(s, &again));
	CHECK(v == again);
	CHECK(v != NULL && (uintptr_t)v % PS == 0);
	return v;
}

/* The snapshot through upager_snapshot_read(): all of it in chunks of
 * random sizes, then random ranges across page boundaries. */
static void check_read(const char *what, upager_snapshot_t *s, const unsigned char *want,
		       uint64_t *seed)
{
	unsigned char *buf = malloc(3 * PS);
	char label[96];

	CHECK(buf);
	snprintf(label, sizeof(label), "%s (read in chunks)", what);
	for (size_t off = 0; off < LEN;) {
		size_t len = 1 + rng_next(seed) % (3 * PS);
		if (len > LEN - off)
			len = LEN - off;
		CHECK_OK(upager_snapshot_read(s, off, buf, len));
		expect_same(label, off, buf, want + off, len);
		off += len;
	}
	snprintf(label, sizeof(label), "%s (random ranges)", what);
	for (int i = 0; i < 200; i++) {
		size_t len = 1 + rng_next(seed) % (3 * PS);
		/* Every tenth range ends at the last byte. */
		size_t off = i % 10 ? rng_next(seed) % (LEN - len + 1) : LEN - len;
		memset(buf, 0xa5, len);
		CHECK_OK(upager_snapshot_read(s, off, buf, len));
		expect_same(label, off, buf, want + off, len);
	}
	free(buf);
}

static void check_view(const char *what, upager_snapshot_t *s, const unsigned char *want)
{
	char label[96];

	snprintf(label, sizeof(label), "%s (view)", what);
	expect_same(label, 0, view_of(s), want, LEN);
}

static void print_stats(upager_t *p, const char *what)
{
	upager_stats_t st;

	CHECK_OK(upager_stats(p, &st));
	printf("  %-18s %-10s cow %llu copied %llu shared %llu snapshots %llu major %llu evict %llu"
	       " (written %llu)\n",
	       current->label, what, (unsigned long long)st.faults_cow,
	       (unsigned long long)st.pages_copied, (unsigned long long)st.pages_shared,
	       (unsigned long long)st.snapshots, (unsigned long long)st.faults_major,
	       (unsigned long long)st.evictions, (unsigned long long)st.writebacks);
	fflush(stdout);
}

static upager_t *open_pager(size_t frames)
{
	upager_config_t cfg;
	upager_t *p;

	test_config(&cfg, current);
	cfg.page_size = PS;
	cfg.ram_bytes = frames * PS;
	CHECK_OK(upager_open(&cfg, &p));
	return p;
}

static void bad_arguments(upager_t *p, unsigned char *r, upager_snapshot_t *s)
{
	unsigned char *v = view_of(s);
	upager_snapshot_t *t;
	upager_stats_t before, after;
	unsigned char buf[32];
	void *c, *a;
	int err;

	CHECK_OK(upager_stats(p, &before));
	CHECK_ERR(upager_snapshot(NULL, r, &t), -EINVAL);
	CHECK_ERR(upager_snapshot(p, r, NULL), -EINVAL);
	err = upager_snapshot(p, NULL, &t);
	if (err != UPAGER_ENOREGION && err != -EINVAL)
		FAILF("upager_snapshot(p, NULL): %d (%s)", err, upager_strerror(err));
	CHECK_ERR(upager_snapshot(p, r + PS, &t), UPAGER_ENOREGION);
	CHECK_ERR(upager_snapshot(p, r + 8, &t), UPAGER_ENOREGION);
	CHECK_ERR(upager_snapshot(p, buf, &t), UPAGER_ENOREGION);
	CHECK_ERR(upager_snapshot(p, v, &t), UPAGER_ESNAPSHOT);

	CHECK_ERR(upager_clone(NULL, r, &c), -EINVAL);
	CHECK_ERR(upager_clone(p, r, NULL), -EINVAL);
	CHECK_ERR(upager_clone(p, r + PS, &c), UPAGER_ENOREGION);
	CHECK_ERR(upager_clone(p, v + PS, &c), UPAGER_ENOREGION);
	CHECK_ERR(upager_clone(p, buf, &c), UPAGER_ENOREGION);

	CHECK_ERR(upager_unmap(p, v), UPAGER_ESNAPSHOT);

	CHECK_ERR(upager_snapshot_map(NULL, &a), -EINVAL);
	CHECK_ERR(upager_snapshot_map(s, NULL), -EINVAL);

	CHECK_ERR(upager_snapshot_read(NULL, 0, buf, 1), -EINVAL);
	CHECK_ERR(upager_snapshot_read(s, 0, NULL, 1), -EINVAL);
	CHECK_ERR(upager_snapshot_read(s, LEN - 10, buf, 11), -EINVAL);
	CHECK_ERR(upager_snapshot_read(s, LEN, buf, 1), -EINVAL);
	CHECK_ERR(upager_snapshot_read(s, SIZE_MAX, buf, 2), -EINVAL);
	CHECK_ERR(upager_snapshot_read(s, 8, buf, SIZE_MAX), -EINVAL);
	CHECK_ERR(upager_snapshot_read(s, SIZE_MAX - 3, buf, 8), -EINVAL);
	CHECK_OK(upager_snapshot_read(s, LEN - 1, buf, 1));

	CHECK_ERR(upager_snapshot_restore(NULL), -EINVAL);
	CHECK_ERR(upager_snapshot_free(NULL), -EINVAL);

	/* Nothing was made or lost by the failed calls. */
	CHECK_OK(upager_stats(p, &after));
	CHECK_EQ(after.snapshots, before.snapshots);
	CHECK_EQ(after.regions, before.regions);
	CHECK_EQ(after.region_bytes, before.region_bytes);
	CHECK(view_of(s) == v);
}

/* Snapshots, restore, clones and their combinations, single-threaded. */
static void cow_scenario(void)
{
	uint64_t seed = tu_rng(0x5eed0001u);
	upager_t *p = open_pager(FRAMES);
	unsigned char *r, *c1, *c2, *c3, *c4, *c5;
	upager_snapshot_t *s1, *s2, *s3, *s4;
	upager_stats_t st, st2;

	nknown = 0;
	CHECK_OK(upager_map(p, LEN, 0, (void **)&r));
	unsigned char *live = calloc(1, LEN);
	CHECK(live);
	know("region", live);

	/* Every fifth page stays untouched, so snapshots share zero pages too. */
	for (size_t pg = 0; pg < PAGES; pg++) {
		if (pg % 5 == 4)
			continue;
		for (size_t i = 0; i < PS; i += 8) {
			uint64_t v = rng_next(&seed);
			memcpy(live + pg * PS + i, &v, 8);
		}
		memcpy(r + pg * PS, live + pg * PS, PS);
	}

	/* Three snapshots at different moments, writes between them. */
	CHECK_OK(upager_snapshot(p, r, &s1));
	unsigned char *sh1 = dup_shadow(live);
	know("snapshot 1", sh1);
	CHECK_OK(upager_stats(p, &st));
	CHECK_EQ(st.snapshots, 1);
	scribble(r, live, 750, &seed);
	CHECK_OK(upager_snapshot(p, r, &s2));
	unsigned char *sh2 = dup_shadow(live);
	know("snapshot 2", sh2);
	scribble(r, live, 750, &seed);
	CHECK(view_of(s1) != view_of(s2));
	CHECK(view_of(s1) != (void *)r);

	CHECK_OK(upager_snapshot(p, r, &s3));
	unsigned char *sh3 = dup_shadow(live);
	know("snapshot 3", sh3);
	CHECK_OK(upager_stats(p, &st));
	CHECK_EQ(st.snapshots, 3);
	scribble(r, live, 750, &seed);
	expect_same("region after three snapshots", 0, r, live, LEN);
	check_view("snapshot 3", s3, sh3);
	check_read("snapshot 2", s2, sh2, &seed);
	check_view("snapshot 1", s1, sh1);
	check_read("snapshot 3", s3, sh3, &seed);
	print_stats(p, "3 snaps");
	CHECK_OK(upager_stats(p, &st));
	CHECK_CMP(st.faults_cow, >, 0);
	CHECK_CMP(st.pages_shared, >, 0);
	CHECK_CMP(st.pages_copied, >, 0);
	CHECK_CMP(st.evictions, >, 0);
	CHECK_CMP(st.faults_major, >, 0);
	CHECK_CMP(st.resident_pages, <=, st.frames_total);

	/* Copy out of a snapshot into its own region: each store into the
	 * region may be a copy-on-write fault that hands the old page to
	 * the snapshot being read. */
	for (int i = 0; i < 60; i++) {
		size_t len = 1 + rng_next(&seed) % (3 * PS);
		size_t from = rng_next(&seed) % (LEN - len + 1);
		size_t to = rng_next(&seed) % (LEN - len + 1);
		upager_snapshot_t *s = i % 2 ? s1 : s3;
		CHECK_OK(upager_snapshot_read(s, from, r + to, len));
		memcpy(live + to, (i % 2 ? sh1 : sh3) + from, len);
	}
	expect_same("region after reading snapshots into it", 0, r, live, LEN);
	check_view("snapshot 3 after reads into the region", s3, sh3);
	check_view("snapshot 1 after reads into the region", s1, sh1);

	/* Restore: the region goes back, the other snapshots stay. */
	CHECK_OK(upager_snapshot_restore(s2));
	memcpy(live, sh2, LEN);
	expect_same("region restored to snapshot 2", 0, r, live, LEN);
	scribble(r, live, 750, &seed);
	expect_same("region written after restore", 0, r, live, LEN);
	check_view("snapshot 1 after restore and writes", s1, sh1);
	check_view("snapshot 2 after restore and writes", s2, sh2);
	check_view("snapshot 3 after restore and writes", s3, sh3);
	/* Forward to a newer one, then back to the same older one again. */
	CHECK_OK(upager_snapshot_restore(s3));
	memcpy(live, sh3, LEN);
	expect_same("region restored to snapshot 3", 0, r, live, LEN);
	scribble(r, live, 250, &seed);
	CHECK_OK(upager_snapshot_restore(s2));
	memcpy(live, sh2, LEN);
	scribble(r, live, 250, &seed);
	expect_same("region restored to 2 again and written", 0, r, live, LEN);
	check_view("snapshot 2 after restoring it twice", s2, sh2);
	CHECK_OK(upager_stats(p, &st));
	CHECK_EQ(st.snapshots, 3);
	print_stats(p, "restore");

	bad_arguments(p, r, s1);

	/* A clone of the region: both sides written, each keeps its own. */
	CHECK_OK(upager_stats(p, &st));
	CHECK_OK(upager_clone(p, r, (void **)&c1));
	CHECK(c1 != r);
	unsigned char *cs1 = dup_shadow(live);
	know("clone 1", cs1);
	CHECK_OK(upager_stats(p, &st2));
	/* (Snapshot views count in the gauge too, so no exact number.) */
	CHECK_CMP(st2.regions, >, st.regions);
	CHECK_CMP(st2.snapshots, >=, 3);
	for (int round = 0; round < 3; round++) {
		scribble(r, live, 250, &seed);
		scribble(c1, cs1, 250, &seed);
	}
	expect_same("region after writes on both sides of its clone", 0, r, live, LEN);
	expect_same("clone of the region", 0, c1, cs1, LEN);
	check_view("snapshot 1 with a clone of its region", s1, sh1);
	CHECK_OK(upager_stats(p, &st2));
	CHECK_CMP(st2.pages_copied + st2.pages_shared, >, st.pages_copied + st.pages_shared);
	CHECK_CMP(st2.faults_cow, >, st.faults_cow);

	/* Restoring the region leaves its clone alone. */
	CHECK_OK(upager_snapshot_restore(s1));
	memcpy(live, sh1, LEN);
	expect_same("region restored to snapshot 1 after cloning", 0, r, live, LEN);
	expect_same("clone after its origin was restored", 0, c1, cs1, LEN);

	/* A clone of a snapshot: writing it must not reach the snapshot. */
	CHECK_OK(upager_clone(p, view_of(s2), (void **)&c2));
	unsigned char *cs2 = dup_shadow(sh2);
	know("clone 2", cs2);
	scribble(c2, cs2, 750, &seed);
	expect_same("clone of snapshot 2", 0, c2, cs2, LEN);
	check_view("snapshot 2 after writes to its clone", s2, sh2);

	/* A clone of that clone, whose pages are still mostly borrowed. */
	CHECK_OK(upager_clone(p, c2, (void **)&c4));
	unsigned char *cs4 = dup_shadow(cs2);
	know("clone 4", cs4);
	scribble(c2, cs2, 250, &seed);
	scribble(c4, cs4, 250, &seed);
	expect_same("clone 4 (of clone 2)", 0, c4, cs4, LEN);
	expect_same("clone 2 after it was cloned", 0, c2, cs2, LEN);

	/* A snapshot of a clone, a clone of that snapshot, restore of it. */
	CHECK_OK(upager_snapshot(p, c1, &s4));
	unsigned char *sh4 = dup_shadow(cs1);
	know("snapshot 4", sh4);
	scribble(c1, cs1, 500, &seed);
	CHECK_OK(upager_clone(p, view_of(s4), (void **)&c3));
	unsigned char *cs3 = dup_shadow(sh4);
	know("clone 3", cs3);
	scribble(c3, cs3, 500, &seed);
	scribble(r, live, 250, &seed);
	expect_same("clone 1 after its snapshot", 0, c1, cs1, LEN);
	check_view("snapshot 4 (of clone 1)", s4, sh4);
	expect_same("clone 3 (of snapshot 4)", 0, c3, cs3, LEN);
	CHECK_OK(upager_snapshot_restore(s4));
	memcpy(cs1, sh4, LEN);
	expect_same("clone 1 restored to snapshot 4", 0, c1, cs1, LEN);
	scribble(c1, cs1, 250, &seed);
	expect_same("clone 1 written after restore", 0, c1, cs1, LEN);

	/* Everyone, once more, after all of that paging. */
	expect_same("region at the end", 0, r, live, LEN);
	expect_same("clone 2 at the end", 0, c2, cs2, LEN);
	check_view("snapshot 1 at the end", s1, sh1);
	check_view("snapshot 2 at the end", s2, sh2);
	check_read("snapshot 3 at the end", s3, sh3, &seed);
	check_view("snapshot 4 at the end", s4, sh4);
	print_stats(p, "clones");
	CHECK_OK(upager_stats(p, &st));
	CHECK_CMP(st.regions, >=, 4);
	CHECK_CMP(st.snapshots, >=, 4);
	CHECK_EQ(st.io_errors, 0);
	CHECK_CMP(st.resident_pages, <=, st.frames_total);

	CHECK_OK(upager_snapshot_free(s2));
	CHECK_OK(upager_unmap(p, r));
	/* The region is gone: its snapshots keep their contents, can be
	 * cloned, and cannot be restored. */
	check_view("snapshot 3 after its region was unmapped", s3, sh3);
	CHECK_ERR(upager_snapshot_restore(s3), UPAGER_EORIGIN);
	CHECK_OK(upager_clone(p, view_of(s3), (void **)&c5));
	unsigned char *cs5 = dup_shadow(sh3);
	know("clone 5", cs5);
	scribble(c5, cs5, 250, &seed);
	expect_same("clone 5 (of snapshot 3, region gone)", 0, c5, cs5, LEN);
	check_view("snapshot 1 after its region was unmapped", s1, sh1);
	CHECK_OK(upager_snapshot_free(s4));
	CHECK_OK(upager_unmap(p, c1));
	expect_same("clone 3 after its origins were freed", 0, c3, cs3, LEN);
	CHECK_OK(upager_snapshot_free(s1));
	CHECK_OK(upager_unmap(p, c3));
	CHECK_OK(upager_unmap(p, c2));
	expect_same("clone 4 after clone 2 was unmapped", 0, c4, cs4, LEN);
	CHECK_OK(upager_unmap(p, c4));
	CHECK_OK(upager_snapshot_free(s3));
	expect_same("clone 5 after snapshot 3 was freed", 0, c5, cs5, LEN);
	CHECK_OK(upager_unmap(p, c5));
	CHECK_OK(upager_stats(p, &st));
	CHECK_EQ(st.regions, 0);
	CHECK_EQ(st.snapshots, 0);
	CHECK_EQ(st.resident_pages, 0);
	CHECK_EQ(st.swap_slots_used, 0);
	CHECK_OK(upager_close(p));
	free(live);
	free(sh1);
	free(sh2);
	free(sh3);
	free(sh4);
	free(cs1);
	free(cs2);
	free(cs3);
	free(cs4);
	free(cs5);
	nknown = 0;
}

/*
 * Advice on shared pages. DONTNEED empties exactly the range it is given:
 * the region's snapshot and clone keep the old pages, and a clone's range
 * reads as zero afterwards, whether or not the clone had touched it (an
 * untouched clone page still reads through to its source). WILLNEED
 * brings pages in without changing what anyone sees.
 */
static void advice_scenario(void)
{
	uint64_t seed = tu_rng(0x5eed0003u);
	upager_t *p = open_pager(FRAMES);
	unsigned char *r, *c, *v;
	upager_snapshot_t *s;
	upager_stats_t st;

	nknown = 0;
	CHECK_OK(upager_map(p, LEN, 0, (void **)&r));
	unsigned char *live = malloc(LEN);
	CHECK(live);
	know("region", live);
	for (size_t i = 0; i < LEN; i += 8) {
		uint64_t x = rng_next(&seed);
		memcpy(live + i, &x, 8);
	}
	memcpy(r, live, LEN);
	CHECK_OK(upager_snapshot(p, r, &s));
	unsigned char *sh = dup_shadow(live);
	know("snapshot", sh);
	CHECK_OK(upager_clone(p, r, (void **)&c));
	unsigned char *cs = dup_shadow(live);
	know("clone", cs);
	v = view_of(s);

	CHECK_OK(upager_advise(p, r + 10 * PS, 20 * PS, UPAGER_ADVICE_DONTNEED));
	memset(live + 10 * PS, 0, 20 * PS);
	CHECK_OK(upager_advise(p, c + 100 * PS, 40 * PS, UPAGER_ADVICE_DONTNEED));
	memset(cs + 100 * PS, 0, 40 * PS);
	for (size_t pg = 200; pg < 220; pg++)
		CHECK_EQ(((volatile unsigned char *)c)[pg * PS + 3], cs[pg * PS + 3]);
	CHECK_OK(upager_advise(p, c + 200 * PS, 20 * PS, UPAGER_ADVICE_DONTNEED));
	memset(cs + 200 * PS, 0, 20 * PS);
	expect_same("clone after DONTNEED", 0, c, cs, LEN);
	expect_same("region after DONTNEED", 0, r, live, LEN);
	check_view("snapshot after DONTNEED on its region and the clone", s, sh);

	/* The emptied pages take writes like any other. */
	scribble(r, live, 250, &seed);
	scribble(c, cs, 250, &seed);

	CHECK_OK(upager_advise(p, r, LEN, UPAGER_ADVICE_WILLNEED));
	CHECK_OK(upager_advise(p, c, LEN, UPAGER_ADVICE_WILLNEED));
	CHECK_OK(upager_advise(p, v, LEN, UPAGER_ADVICE_WILLNEED));
	/* A view stays as it is. */
	CHECK(upager_advise(p, v, PS, UPAGER_ADVICE_DONTNEED) < 0);
	CHECK(upager_protect(p, v, PS, UPAGER_PROT_READ | UPAGER_PROT_WRITE) < 0);
	expect_same("region after WILLNEED", 0, r, live, LEN);
	expect_same("clone after WILLNEED", 0, c, cs, LEN);
	check_view("snapshot after WILLNEED", s, sh);

	CHECK_OK(upager_unmap(p, c));
	CHECK_OK(upager_snapshot_free(s));
	CHECK_OK(upager_unmap(p, r));
	CHECK_OK(upager_stats(p, &st));
	CHECK_EQ(st.snapshots, 0);
	CHECK_EQ(st.resident_pages, 0);
	CHECK_EQ(st.swap_slots_used, 0);
	CHECK_OK(upager_close(p));
	free(live);
	free(sh);
	free(cs);
	nknown = 0;
}

/*
 * A page pinned for writing stays writable for system calls (upager_pin),
 * also once a snapshot or a clone shares it: the kernel writing into it
 * must not fail with EFAULT in fast mode, and the snapshot must still
 * keep the old bytes.
 */
static void pin_scenario(void)
{
	upager_t *p = open_pager(16);
	unsigned char *r, *c;
	upager_snapshot_t *s;
	int fd[2];

	CHECK_OK(upager_map(p, 64 * PS, 0, (void **)&r));
	for (size_t pg = 0; pg < 64; pg++)
		memset(r + pg * PS, 0x40 + (int)pg, PS);
	CHECK_OK(upager_pin(p, r + 3 * PS, 2 * PS, 1));
	CHECK_OK(upager_snapshot(p, r, &s));
	CHECK_OK(upager_clone(p, r, (void **)&c));
	CHECK_EQ(pipe(fd), 0);
	CHECK_EQ(write(fd[1], "pinned", 6), 6);
	ssize_t n = read(fd[0], r + 4 * PS - 3, 6); /* across both pinned pages */
	if (n != 6)
		FAILF("%s: read(2) into pages pinned for writing, after a snapshot: %zd (%s)",
		      current->label, n, n < 0 ? strerror(errno) : "short");
	CHECK(memcmp(r + 4 * PS - 3, "pinned", 6) == 0);
	unsigned char *v = view_of(s);
	CHECK_EQ(v[4 * PS - 1], 0x43);
	CHECK_EQ(v[4 * PS], 0x44);
	CHECK_EQ(c[4 * PS - 1], 0x43);
	CHECK_EQ(c[4 * PS], 0x44);
	CHECK_OK(upager_unpin(p, r + 3 * PS, 2 * PS));
	close(fd[0]);
	close(fd[1]);
	CHECK_OK(upager_unmap(p, c));
	CHECK_OK(upager_snapshot_free(s));
	CHECK_OK(upager_close(p));
}

/* ---- the race: snapshots while two threads store words ---- */

#define RACE_CAP 400000 /* stores per thread, at most */
#define RACE_SNAP1 4000 /* stores per thread before the first snapshot */
#define RACE_GAP 4000   /* ... between the snapshots, and after the second */

struct store {
	uint32_t off;
	uint64_t val;
};

struct writer {
	unsigned char *region;
	unsigned id; /* owns the pages pg with pg % 2 == id */
	uint64_t seed;
	struct store *log;
	_Atomic size_t done;
	atomic_bool finished;
	atomic_bool *stop;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	uint64_t s = w->seed;
	size_t n = 0;

	while (n < RACE_CAP && !atomic_load_explicit(w->stop, memory_order_relaxed)) {
		/* A burst in one page, so that stores meet the snapshot both on
		 * resident pages and on pages being faulted in. */
		size_t pg = 2 * (rng_next(&s) % (PAGES / 2)) + w->id;
		unsigned burst = 1 + rng_next(&s) % 32;
		for (unsigned i = 0; i < burst && n < RACE_CAP; i++) {
			size_t off = pg * PS + rng_next(&s) % (PS / 8) * 8;
			uint64_t v = rng_next(&s);
			/* One store: the unit that a snapshot must not split. */
			__atomic_store_n((uint64_t *)(w->region + off), v, __ATOMIC_RELAXED);
			w->log[n] = (struct store){ (uint32_t)off, v };
			atomic_store_explicit(&w->done, ++n, memory_order_release);
		}
	}
	atomic_store(&w->finished, true);
	return NULL;
}

static void wait_for(struct writer *w, size_t n)
{
	while (atomic_load_explicit(&w->done, memory_order_acquire) < n &&
	       !atomic_load(&w->finished))
		usleep(200);
}

static bool word_eq(const unsigned char *a, const unsigned char *b, size_t off)
{
	return memcmp(a + off, b + off, 8) == 0;
}

/*
 * The length of the prefix of w's log that, applied to base, gives snap on
 * w's pages. Fails, naming the words that differ at the closest prefix, if
 * there is none.
 */
static size_t prefix_in(const char *what, const unsigned char *base, const unsigned char *snap,
			const struct writer *w, unsigned char *model)
{
	size_t n = atomic_load(&w->done), mism = 0, best = SIZE_MAX, best_k = 0;

	memcpy(model, base, LEN);
	for (size_t pg = w->id; pg < PAGES; pg += 2)
		for (size_t off = pg * PS; off < (pg + 1) * PS; off += 8)
			mism += !word_eq(model, snap, off);
	for (size_t k = 0;; k++) {
		if (mism == 0)
			return k;
		if (mism < best) {
			best = mism;
			best_k = k;
		}
		if (k == n)
			break;
		size_t off = w->log[k].off;
		bool was = word_eq(model, snap, off);
		memcpy(model + off, &w->log[k].val, 8);
		mism += (size_t)was - (size_t)word_eq(model, snap, off);
	}

	/* No prefix: show the closest one's differences. */
	memcpy(model, base, LEN);
	for (size_t k = 0; k < best_k; k++)
		memcpy(model + w->log[k].off, &w->log[k].val, 8);
	unsigned shown = 0;
	for (size_t pg = w->id; pg < PAGES && shown < 6; pg += 2) {
		for (size_t off = pg * PS; off < (pg + 1) * PS && shown < 6; off += 8) {
			if (word_eq(model, snap, off))
				continue;
			uint64_t got, want;
			memcpy(&got, snap + off, 8);
			memcpy(&want, model + off, 8);
			long written_at = -1;
			for (size_t k = 0; k < n; k++)
				if (w->log[k].off == off && w->log[k].val == got) {
					written_at = (long)k;
					break;
				}
			fprintf(stderr,
				"  %s, thread %u: page %zu word %zu is %#llx, expected %#llx;"
				" that value is store %ld of the thread's log%s\n",
				what, w->id, pg, off % PS / 8, (unsigned long long)got,
				(unsigned long long)want, written_at,
				written_at < 0 ? " (none: not a value the thread stored there)"
					       : "");
			shown++;
		}
	}
	FAILF("%s, %s, thread %u: no prefix of the thread's %zu stores gives the snapshot;"
	      " closest: %zu stores with %zu words wrong",
	      current->label, what, w->id, n, best_k, best);
	return 0;
}

static void race_scenario(void)
{
	upager_t *p = open_pager(FRAMES);
	unsigned char *r;
	uint64_t seed = tu_rng(0x5eed0002u);
	atomic_bool stop = false;
	struct writer w[2];
	pthread_t tid[2];
	upager_snapshot_t *snap[2];
	size_t lo[2][2], hi[2][2];

	CHECK_OK(upager_map(p, LEN, 0, (void **)&r));
	unsigned char *base = malloc(LEN);
	unsigned char *model = malloc(LEN);
	unsigned char *got = malloc(LEN);
	CHECK(base && model && got);
	for (size_t i = 0; i < LEN; i += 8) {
		uint64_t v = rng_next(&seed);
		memcpy(base + i, &v, 8);
	}
	memcpy(r, base, LEN);

	for (unsigned t = 0; t < 2; t++) {
		w[t].region = r;
		w[t].id = t;
		w[t].seed = tu_rng(0x9e3779b97f4a7c15ULL * (t + 1));
		w[t].log = malloc(RACE_CAP * sizeof(struct store));
		CHECK(w[t].log);
		atomic_init(&w[t].done, 0);
		atomic_init(&w[t].finished, false);
		w[t].stop = &stop;
	}
	for (unsigned t = 0; t < 2; t++)
		CHECK_EQ(pthread_create(&tid[t], NULL, writer_main, &w[t]), 0);

	for (unsigned i = 0; i < 2; i++) {
		for (unsigned t = 0; t < 2; t++)
			wait_for(&w[t], (i ? hi[0][t] : 0) + (i ? RACE_GAP : RACE_SNAP1));
		for (unsigned t = 0; t < 2; t++)
			lo[i][t] = atomic_load_explicit(&w[t].done, memory_order_acquire);
		CHECK_OK(upager_snapshot(p, r, &snap[i]));
		for (unsigned t = 0; t < 2; t++)
			hi[i][t] = atomic_load_explicit(&w[t].done, memory_order_acquire);
	}
	/* Both snapshots read while the stores go on: the view's faults and
	 * upager_snapshot_read() walk the chain while stores push pages
	 * into it. */
	unsigned char *during[2] = { malloc(LEN), malloc(LEN) };
	CHECK(during[0] && during[1]);
	size_t before_reads = atomic_load(&w[0].done) + atomic_load(&w[1].done);
	memcpy(during[0], view_of(snap[0]), LEN);
	CHECK_OK(upager_snapshot_read(snap[1], 0, during[1], LEN));
	size_t during_reads = atomic_load(&w[0].done) + atomic_load(&w[1].done) - before_reads;
	for (unsigned t = 0; t < 2; t++)
		wait_for(&w[t], hi[1][t] + RACE_GAP);
	atomic_store(&stop, true);
	for (unsigned t = 0; t < 2; t++) {
		CHECK_EQ(pthread_join(tid[t], NULL), 0);
		if (atomic_load(&w[t].done) == RACE_CAP)
			FAILF("%s: thread %u ran out of log before the snapshots were done",
			      current->label, t);
	}

	size_t k[2][2];
	for (unsigned i = 0; i < 2; i++) {
		char what[64];
		snprintf(what, sizeof(what), "snapshot %u taken during stores", i + 1);
		CHECK_OK(upager_snapshot_read(snap[i], 0, got, LEN));
		expect_same(what, 0, during[i], got, LEN);
		if (i == 1)
			expect_same(what, 0, view_of(snap[i]), got, LEN);
		for (unsigned t = 0; t < 2; t++) {
			k[i][t] = prefix_in(what, base, got, &w[t], model);
			/* Published before the call: in. Stored after the call
			 * returned: out (a store may precede its publication). */
			if (k[i][t] < lo[i][t] || k[i][t] > hi[i][t] + 1)
				FAILF("%s, %s, thread %u: holds the first %zu stores, but %zu were"
				      " published before the call and %zu when it returned",
				      current->label, what, t, k[i][t], lo[i][t], hi[i][t]);
		}
	}
	for (unsigned t = 0; t < 2; t++)
		CHECK_CMP(k[0][t], <=, k[1][t]);
	printf("  %-18s race: snapshot 1 holds %zu+%zu stores (published %zu..%zu, %zu..%zu),"
	       " snapshot 2 %zu+%zu; %zu+%zu stores in all, %zu while reading the snapshots\n",
	       current->label, k[0][0], k[0][1], lo[0][0], hi[0][0], lo[0][1], hi[0][1], k[1][0],
	       k[1][1], atomic_load(&w[0].done), atomic_load(&w[1].done), during_reads);

	/* The region has every store; a restore brings back snapshot 1. */
	memcpy(model, base, LEN);
	for (unsigned t = 0; t < 2; t++)
		for (size_t i = 0; i < atomic_load(&w[t].done); i++)
			memcpy(model + w[t].log[i].off, &w[t].log[i].val, 8);
	nknown = 0;
	know("initial", base);
	expect_same("region after the racing stores", 0, r, model, LEN);
	CHECK_OK(upager_snapshot_read(snap[0], 0, got, LEN));
	CHECK_OK(upager_snapshot_restore(snap[0]));
	expect_same("region restored to the racing snapshot 1", 0, r, got, LEN);
	print_stats(p, "race");

	upager_stats_t st;
	CHECK_OK(upager_stats(p, &st));
	CHECK_CMP(st.faults_cow, >, 0);
	CHECK_CMP(st.evictions, >, 0);
	CHECK_OK(upager_snapshot_free(snap[0]));
	CHECK_OK(upager_snapshot_free(snap[1]));
	CHECK_OK(upager_unmap(p, r));
	CHECK_OK(upager_stats(p, &st));
	CHECK_EQ(st.snapshots, 0);
	CHECK_EQ(st.resident_pages, 0);
	CHECK_EQ(st.swap_slots_used, 0);
	CHECK_OK(upager_close(p));
	for (unsigned t = 0; t < 2; t++)
		free(w[t].log);
	free(base);
	free(model);
	free(got);
	free(during[0]);
	free(during[1]);
	nknown = 0;
}

/* ---- a store to a view is an ordinary SIGSEGV ---- */

enum view_state {
	VIEW_UNTOUCHED, /* never read through the view: its page is in swap */
	VIEW_READ,      /* read through the view just before */
	VIEW_OWN_COPY,  /* the region wrote the page: the snapshot holds the old one */
	VIEW_ZERO,      /* a page nobody wrote */
};

static void store_to_view(void *arg)
{
	enum view_state how = *(enum view_state *)arg;
	upager_t *p = open_pager(16);
	unsigned char *a, *v;
	upager_snapshot_t *s;

	CHECK_OK(upager_map(p, 64 * PS, 0, (void **)&a));
	for (size_t pg = 0; pg < 63; pg++)
		memset(a + pg * PS, (int)pg + 1, PS);
	CHECK_OK(upager_snapshot(p, a, &s));
	CHECK_OK(upager_snapshot_map(s, (void **)&v));
	size_t pg = how == VIEW_ZERO ? 63 : 5;
	if (how == VIEW_READ)
		CHECK_EQ(v[pg * PS + 9], pg + 1);
	if (how == VIEW_OWN_COPY) {
		a[pg * PS] = 0xee;
		CHECK_EQ(v[pg * PS + 9], pg + 1);
	}
	((volatile unsigned char *)v)[pg * PS + 1] = 0x55;
	_exit(3);
}

static void expect_view_segv(enum view_state how, const char *what)
{
	char *err;
	int status = run_child(store_to_view, &how, &err);

	if (!died_of(status, err, SIGSEGV))
		FAILF("%s, store to a snapshot view (%s): child status %#x, expected SIGSEGV;"
		      " stderr:\n%s",
		      current->label, what, status, err);
	free(err);
}

/*
 * Reading a snapshot of a mostly empty region with upager_snapshot_read()
 * (how upager-run's fork copies its 64 GiB arena to a child) costs no
 * frame for the pages nobody wrote: they read as zeros without being
 * zero-filled, mapped or evicted.
 */
static void sparse_read_scenario(void)
{
	const size_t pages = 16 * PAGES; /* 64 times the budget */
	upager_t *p = open_pager(FRAMES);
	unsigned char *r, *buf = malloc(16 * PS);
	upager_snapshot_t *s;
	upager_stats_t before, after;

	CHECK(buf);
	CHECK_OK(upager_map(p, pages * PS, 0, (void **)&r));
	for (size_t pg = 0; pg < pages; pg += 1000)
		memset(r + pg * PS + 5, (int)(pg / 1000 + 1), 100);
	CHECK_OK(upager_snapshot(p, r, &s));
	/* Written after the snapshot: the snapshot keeps the zeros. */
	r[3 * PS] = 9;
	CHECK_OK(upager_stats(p, &before));
	for (size_t off = 0; off < pages * PS; off += 16 * PS) {
		CHECK_OK(upager_snapshot_read(s, off, buf, 16 * PS));
		for (size_t i = 0; i < 16 * PS; i++) {
			size_t pg = (off + i) / PS, in = (off + i) % PS;
			unsigned char want = pg % 1000 == 0 && in >= 5 && in < 105
						     ? (unsigned char)(pg / 1000 + 1)
						     : 0;
			if (buf[i] != want)
				FAILF("%s: sparse snapshot byte %zu is %u, expected %u",
				      current->label, off + i, buf[i], want);
		}
	}
	CHECK_OK(upager_stats(p, &after));
	if (after.faults_zero != before.faults_zero || after.zero_drops != before.zero_drops ||
	    after.faultaround_pages != before.faultaround_pages)
		FAILF("%s: reading a sparse snapshot zero-filled %llu pages (%llu around), dropped %llu"
		      " zero pages",
		      current->label, (unsigned long long)(after.faults_zero - before.faults_zero),
		      (unsigned long long)(after.faultaround_pages - before.faultaround_pages),
		      (unsigned long long)(after.zero_drops - before.zero_drops));
	CHECK_OK(upager_snapshot_free(s));
	CHECK_OK(upager_unmap(p, r));
	CHECK_OK(upager_close(p));
	free(buf);
}

static void body(const struct test_backend *b, void *arg)
{
	current = b;
	cow_scenario();
	advice_scenario();
	pin_scenario();
	sparse_read_scenario();
	race_scenario();
	expect_view_segv(VIEW_UNTOUCHED, "page never read");
	expect_view_segv(VIEW_READ, "page read before");
	expect_view_segv(VIEW_OWN_COPY, "page copied on write");
	expect_view_segv(VIEW_ZERO, "zero page");
}

int main(void)
{
	return for_each_backend(body, NULL);
}
