// SPDX-License-Identifier: MIT
/*
 * Reference sampling and trace recording in a live pager, on every
 * backend:
 *
 *   - sampling: with the default rate an LRU pager (a policy that never
 *     asks for samples itself) unmaps pages and sees references through
 *     the minor faults that follow; with rate 0 it sees none. The data
 *     stays intact either way, and also where batched unmaps fall back
 *     to one madvise() per range (kernels before 6.13). A Clock pager
 *     gets only its own agings, at any rate. Samples owed to evictions
 *     wait until a batch's worth is owed.
 *   - recording, faults mode: the trace holds, in order, one zero-fill
 *     record per first touch, and as many zero, major and minor/sample
 *     records as the statistics count faults.
 *   - recording, dense mode: after a sweep, the first read of each page is
 *     recorded as a sample, in the order of the reads.
 *   - errors: bad paths, a second trace, stopping none, bad rates.
 */
#include "testutil.h"
#include "../src/internal.h"
#include "../src/trace.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096

struct rec {
	uint64_t key;
	unsigned kind;
	bool write;
};

/* Reads a whole upager-format trace. */
static struct rec *read_trace(const char *path, size_t *n)
{
	struct trace_reader *tr;
	struct rec *v = NULL;
	size_t cap = 0;
	uint64_t key;
	unsigned flags;
	int ret;

	*n = 0;
	CHECK_OK(trace_open(path, TRACE_UPAGER, 12, &tr));
	while ((ret = trace_next(tr, &key, &flags)) == 1) {
		if (*n == cap) {
			cap = cap ? 2 * cap : 1024;
			v = realloc(v, cap * sizeof(*v));
			CHECK(v);
		}
		v[(*n)++] = (struct rec){ key, TRACE_KIND(flags), flags & TRACE_WRITE };
	}
	CHECK_EQ(ret, 0);
	trace_close(tr);
	return v;
}

/* A sweep may unmap a page between the fault that brought it in and the
 * access that faulted, which then faults again: the same reference twice
 * in a row. Folds such repeats into the first record. */
static size_t fold_repeats(struct rec *v, size_t n)
{
	size_t out = 0;

	for (size_t i = 0; i < n; i++) {
		if (out && v[i].key == v[out - 1].key && v[i].kind == TRACE_SAMPLE &&
		    v[i].write == v[out - 1].write)
			continue;
		v[out++] = v[i];
	}
	return out;
}

static void temp_path(char *buf, size_t len)
{
	snprintf(buf, len, "%s/upager-sampling-%d-%ld.trace",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid(), random());
}

/* ---- sampling ---- */

/* A pager of 64 frames with the policy and sampling rate given. */
#define SAMPLING_FRAMES 64
static upager_t *open_sampling(const struct test_backend *b, const char *policy, double rate)
{
	upager_config_t cfg;
	upager_t *p;

	test_config(&cfg, b);
	cfg.ram_bytes = SAMPLING_FRAMES * PAGE;
	cfg.page_size = PAGE;
	cfg.policy = policy;
	cfg.sample_rate = rate;
	CHECK_OK(upager_open(&cfg, &p));
	return p;
}

static void sampling_run(const struct test_backend *b, const char *policy, double rate,
			 bool per_range, upager_stats_t *st)
{
	enum { FRAMES = SAMPLING_FRAMES, PAGES = 4 * FRAMES, ROUNDS = 6 };
	upager_t *p = open_sampling(b, policy, rate);
	unsigned char *a;

	if (per_range) /* as upager__zap() does when process_madvise() refuses */
		atomic_store(&p->self_pidfd, -1);
	CHECK_OK(upager_map(p, PAGES * PAGE, 0, (void **)&a));
	/* A hot eighth read between every few cold pages written. */
	for (unsigned round = 0; round < ROUNDS; round++) {
		for (unsigned pg = 0; pg < PAGES; pg++) {
			a[pg * PAGE + round] = (unsigned char)(pg + round);
			unsigned hot = pg % (FRAMES / 2);
			CHECK_EQ(a[hot * PAGE], (unsigned char)hot);
		}
	}
	for (unsigned pg = 0; pg < PAGES; pg++)
		for (unsigned round = 0; round < ROUNDS; round++)
			if (a[pg * PAGE + round] != (unsigned char)(pg + round))
				FAILF("%s: page %u byte %u lost", b->label, pg, round);
	CHECK_OK(upager_stats(p, st));
	CHECK_OK(upager_close(p));
}

static void sampling(const struct test_backend *b, void *arg)
{
	upager_stats_t on, off, fallback;

	(void)arg;
	sampling_run(b, "lru", 1, false, &on);
	sampling_run(b, "lru", 0, false, &off);
	sampling_run(b, "lru", 1, true, &fallback);
	CHECK_CMP(fallback.samples, >, 0);
	CHECK_CMP(fallback.sample_faults, >, 0);
	CHECK_CMP(fallback.evictions, >, 0);
	printf("  %s: rate 1: %llu sampled, %llu seen again, %.2f ms; rate 0: %llu sampled\n",
	       b->label, (unsigned long long)on.samples, (unsigned long long)on.sample_faults,
	       on.sample_ns / 1e6, (unsigned long long)off.samples);
	CHECK_CMP(on.evictions, >, 0);
	CHECK_CMP(on.samples, >, 0);
	CHECK_CMP(on.sample_faults, >, 0);
	CHECK_CMP(on.sample_faults, <=, on.faults_minor);
	CHECK_CMP(on.sample_ns, >, 0);
	CHECK_EQ(off.samples, 0); /* LRU never asks for samples itself */
	CHECK_EQ(off.sample_faults, 0);
}

/* The samples the pager takes of its own for `evicted` evictions, in a pager
 * whose pages are all resident and mapped (white-box: the evictor, which
 * would make that call after its evictions, sleeps meanwhile; its lock
 * is held for the call, as it would hold nothing else). */
static uint64_t owed_samples(const struct test_backend *b, const char *policy, unsigned evicted)
{
	enum { PAGES = SAMPLING_FRAMES / 2 };
	upager_stats_t s0, s1;
	upager_t *p = open_sampling(b, policy, 1);
	unsigned char *a;

	CHECK_OK(upager_map(p, PAGES * PAGE, 0, (void **)&a));
	for (unsigned pg = 0; pg < PAGES; pg++)
		a[pg * PAGE] = (unsigned char)pg;
	CHECK_OK(upager_stats(p, &s0));
	pthread_mutex_lock(&p->evictor_lock);
	atomic_store(&p->evicted_unsampled, evicted);
	upager__sample_owed(p);
	pthread_mutex_unlock(&p->evictor_lock);
	CHECK_OK(upager_stats(p, &s1));
	for (unsigned pg = 0; pg < PAGES; pg++)
		CHECK_EQ(a[pg * PAGE], (unsigned char)pg);
	CHECK_OK(upager_close(p));
	return s1.samples - s0.samples;
}

/* Clock ages every page itself (UPAGER_POLICY_AGES_ALL): the pager takes
 * no samples of its own for it. LRU gets them, in batches of at least
 * budget/16 (4 pages here): two evictions owe too few. */
static void no_samples_for_clock(const struct test_backend *b, void *arg)
{
	(void)arg;
	uint64_t lru = owed_samples(b, "lru", 100), clock = owed_samples(b, "clock", 100);
	uint64_t few = owed_samples(b, "lru", 2);
	printf("  %s: owed samples taken: lru %llu, clock %llu; lru after 2 evictions %llu\n",
	       b->label, (unsigned long long)lru, (unsigned long long)clock,
	       (unsigned long long)few);
	CHECK_CMP(lru, >, 0);
	CHECK_EQ(clock, 0);
	CHECK_EQ(few, 0);
}

/* ---- recording ---- */

static void record_faults(const struct test_backend *b, void *arg)
{
	enum { FRAMES = 32, PAGES = 3 * FRAMES };
	upager_config_t cfg;
	upager_stats_t st;
	upager_t *p;
	unsigned char *a;
	char path[256];
	size_t n;

	(void)arg;
	temp_path(path, sizeof(path));
	test_config(&cfg, b);
	cfg.ram_bytes = FRAMES * PAGE;
	cfg.page_size = PAGE;
	cfg.trace_path = path;
	CHECK_OK(upager_open(&cfg, &p));
	CHECK_OK(upager_map(p, PAGES * PAGE, 0, (void **)&a));
	for (unsigned pg = 0; pg < PAGES; pg++)
		memset(a + pg * PAGE, (int)(pg + 1), PAGE);
	for (unsigned pass = 0; pass < 2; pass++)
		for (unsigned pg = 0; pg < PAGES; pg++)
			CHECK_EQ(a[pg * PAGE + pass], (unsigned char)(pg + 1));
	CHECK_OK(upager_trace_stop(p));
	CHECK_OK(upager_stats(p, &st));
	CHECK_OK(upager_close(p));

	struct rec *v = read_trace(path, &n);
	unlink(path);
	CHECK_EQ(n, st.trace_records);
	CHECK_EQ(st.trace_dropped, 0);
	CHECK_CMP(n, >=, PAGES);
	/* The first touches, in order and written. Sampling may slip a
	 * reference in between (a page unmapped in mid-memset), and a page
	 * evicted before the memset stored into it is dropped as a zero page
	 * and zero-filled again. */
	uint64_t next = 0;
	for (size_t i = 0; i < n; i++) {
		if (v[i].kind != TRACE_ZERO)
			continue;
		uint64_t pg = v[i].key - v[0].key;
		if (!v[i].write || (pg != next && pg + 1 != next))
			FAILF("%s: record %zu: zero-fill, write %d, of page %lld; expected a write of page %llu",
			      b->label, i, v[i].write, (long long)pg, (unsigned long long)next);
		next = pg + 1;
	}
	CHECK_EQ(next, PAGES);
	CHECK_EQ(v[0].kind, TRACE_ZERO);
	uint64_t count[8] = { 0 };
	for (size_t i = 0; i < n; i++) {
		CHECK_CMP(v[i].key - v[0].key, <, PAGES);
		count[v[i].kind & 7]++;
	}
	printf("  %s: %zu records: zero %llu major %llu minor %llu sample %llu wp %llu\n", b->label,
	       n, (unsigned long long)count[TRACE_ZERO], (unsigned long long)count[TRACE_MAJOR],
	       (unsigned long long)count[TRACE_MINOR], (unsigned long long)count[TRACE_SAMPLE],
	       (unsigned long long)count[TRACE_WP]);
	CHECK_EQ(count[TRACE_ZERO], st.faults_zero);
	CHECK_EQ(count[TRACE_MAJOR], st.faults_major);
	CHECK_CMP(count[TRACE_MAJOR], >, 0);
	CHECK_EQ(count[TRACE_MINOR] + count[TRACE_SAMPLE], st.faults_minor);
	CHECK_EQ(count[TRACE_SAMPLE], st.sample_faults);
	free(v);
}

/* Stopping ends the sweeps and the recording; a second trace on the same
 * pager records, and upager_close() closes it. */
static void record_restart(const struct test_backend *b, void *arg)
{
	enum { PAGES = 16 };
	upager_config_t cfg;
	upager_stats_t st, later;
	upager_t *p;
	unsigned char *a, *c;
	char path[256], path2[256];
	size_t n;

	(void)arg;
	temp_path(path, sizeof(path));
	temp_path(path2, sizeof(path2));
	test_config(&cfg, b);
	cfg.ram_bytes = 4 * PAGES * PAGE; /* no evictions */
	cfg.page_size = PAGE;
	CHECK_OK(upager_open(&cfg, &p));
	CHECK_OK(upager_map(p, PAGES * PAGE, 0, (void **)&a));
	CHECK_OK(upager_trace_start(p, path, 2000));
	for (unsigned pg = 0; pg < PAGES; pg++)
		a[pg * PAGE] = (unsigned char)(pg + 7);
	for (int ms = 0;; ms++) {
		CHECK_OK(upager_stats(p, &st));
		if (st.samples >= PAGES)
			break;
		if (ms > 20000)
			FAILF("%s: no sweep in 20 s (%llu samples)", b->label,
			      (unsigned long long)st.samples);
		usleep(1000);
	}
	CHECK_OK(upager_trace_stop(p));
	for (unsigned pg = 0; pg < PAGES; pg++)
		CHECK_EQ(a[pg * PAGE], (unsigned char)(pg + 7));
	CHECK_OK(upager_stats(p, &st));
	usleep(20000);
	CHECK_OK(upager_stats(p, &later));
	CHECK_EQ(later.samples, st.samples); /* no more sweeps */

	CHECK_OK(upager_trace_start(p, path2, 0));
	CHECK_OK(upager_map(p, PAGES * PAGE, 0, (void **)&c));
	for (unsigned pg = 0; pg < PAGES; pg++)
		c[pg * PAGE] = 1;
	CHECK_OK(upager_close(p));

	/* The first trace: the writes only, not the reads after the stop. */
	struct rec *v = read_trace(path, &n);
	unlink(path);
	n = fold_repeats(v, n);
	CHECK_EQ(n, PAGES);
	for (unsigned i = 0; i < n; i++)
		CHECK(v[i].kind == TRACE_ZERO && v[i].write && v[i].key - v[0].key == i);
	free(v);
	/* The second: the other region's first touches. */
	v = read_trace(path2, &n);
	unlink(path2);
	CHECK_EQ(n, PAGES);
	for (unsigned i = 0; i < n; i++)
		CHECK(v[i].kind == TRACE_ZERO && v[i].key - v[0].key == i);
	free(v);
}

/* The dense mode's promise: zero-fills, then one sample per page read. */
static void record_dense_reads(const struct test_backend *b, void *arg)
{
	enum { PAGES = 16 };
	upager_config_t cfg;
	upager_stats_t st;
	upager_t *p;
	unsigned char *a;
	char path[256];
	size_t n;

	(void)arg;
	temp_path(path, sizeof(path));
	test_config(&cfg, b);
	cfg.ram_bytes = 4 * PAGES * PAGE;
	cfg.page_size = PAGE;
	cfg.sample_rate = 0;
	CHECK_OK(upager_open(&cfg, &p));
	CHECK_OK(upager_map(p, PAGES * PAGE, 0, (void **)&a));
	CHECK_OK(upager_trace_start(p, path, 1000));
	for (unsigned pg = 0; pg < PAGES; pg++)
		a[pg * PAGE] = (unsigned char)(pg + 3);
	for (int ms = 0;; ms++) {
		CHECK_OK(upager_stats(p, &st));
		if (st.samples >= PAGES)
			break;
		if (ms > 20000)
			FAILF("%s: no sweep in 20 s", b->label);
		usleep(1000);
	}
	/* The count has been seen to reach PAGES with the last page still
	 * mapped (once, sigsegv backend under ASan on a loaded machine: that
	 * page was then read without a fault). Sweeps come every
	 * millisecond and take every page still mapped: give them time. */
	usleep(50000);
	/* Read each page once: the first access after the sweep is
	 * recorded whatever sweeps follow, and only the first. */
	for (unsigned pg = 0; pg < PAGES; pg++)
		CHECK_EQ(a[pg * PAGE], (unsigned char)(pg + 3));
	CHECK_OK(upager_trace_stop(p));
	CHECK_OK(upager_close(p));

	struct rec *v = read_trace(path, &n);
	unlink(path);
	n = fold_repeats(v, n);
	if (n != 2 * PAGES) {
		for (size_t i = 0; i < n; i++)
			fprintf(stderr, "  record %zu: kind %u write %d page %lld\n", i, v[i].kind,
				v[i].write, (long long)(v[i].key - v[0].key));
		FAILF("%s: %zu records, expected %u", b->label, n, 2 * PAGES);
	}
	for (unsigned i = 0; i < n; i++) {
		unsigned pg = i % PAGES;
		bool zero = i < PAGES;
		if (v[i].kind != (zero ? TRACE_ZERO : TRACE_SAMPLE) || v[i].write != zero ||
		    v[i].key - v[0].key != pg)
			FAILF("%s: record %u: kind %u write %d page %lld; expected %s of page %u",
			      b->label, i, v[i].kind, v[i].write, (long long)(v[i].key - v[0].key),
			      zero ? "a zero-fill write" : "a sampled read", pg);
	}
	free(v);
}

/* ---- errors ---- */

static void errors(void)
{
	upager_config_t cfg;
	upager_t *p;
	char path[256];

	upager_config_init(&cfg);
	cfg.ram_bytes = 64 * PAGE;
	cfg.sample_rate = 65;
	CHECK_ERR(upager_open(&cfg, &p), UPAGER_ECONFIG);
	cfg.sample_rate = -1;
	CHECK_ERR(upager_open(&cfg, &p), UPAGER_ECONFIG);

	setenv("UPAGER_SAMPLE", "often", 1);
	upager_config_init(&cfg);
	cfg.ram_bytes = 64 * PAGE;
	CHECK_ERR(upager_open(&cfg, &p), UPAGER_EENV);
	CHECK(strstr(upager_last_error(), "UPAGER_SAMPLE"));
	unsetenv("UPAGER_SAMPLE");

	upager_config_init(&cfg);
	cfg.ram_bytes = 64 * PAGE;
	cfg.trace_path = "/nonexistent-upager-dir/x.trace";
	CHECK_ERR(upager_open(&cfg, &p), -ENOENT);
	CHECK(strstr(upager_last_error(), "/nonexistent-upager-dir/x.trace"));

	cfg.trace_path = NULL;
	CHECK_OK(upager_open(&cfg, &p));
	CHECK_ERR(upager_trace_stop(p), -ENOENT);
	CHECK_ERR(upager_trace_start(p, "/nonexistent-upager-dir/x.trace", 0), -ENOENT);
	CHECK_ERR(upager_trace_start(p, "", 0), -EINVAL);
	temp_path(path, sizeof(path));
	CHECK_OK(upager_trace_start(p, path, 0));
	CHECK_ERR(upager_trace_start(p, path, 0), -EBUSY);
	CHECK_OK(upager_trace_stop(p));
	CHECK_ERR(upager_trace_stop(p), -ENOENT);
	CHECK_OK(upager_close(p));
	unlink(path);
}

static void all(const struct test_backend *b, void *arg)
{
	sampling(b, arg);
	no_samples_for_clock(b, arg);
	record_faults(b, arg);
	record_restart(b, arg);
	record_dense_reads(b, arg);
}

int main(void)
{
	srandom((unsigned)time(NULL));
	errors();
	return for_each_backend(all, NULL);
}
