// SPDX-License-Identifier: MIT
/*
 * Heap shadow model: several threads allocate, write, reallocate and free
 * blocks of 16 B to 4 MiB in an upager heap with four times the RAM budget
 * live, and every block's bytes are checked against the pattern its seed
 * (kept outside the heap) gives: before every realloc and free, after every
 * realloc, and all of them at the end. Some blocks are handed to another
 * thread, which checks and frees them. Every backend and mode.
 *
 * UPAGER_TEST_LONG=1 (make check-long) runs 2.1 million operations,
 * millions of blocks, mostly small; UPAGER_TEST_OPS=N sets the number of
 * operations per thread.
 */
#include "testutil.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#define BUDGET (8u << 20)
#define LIVE_TARGET (4 * (size_t)BUDGET)
#define THREADS 3
#define SLOTS 4096
#define XQ 256

struct block {
	unsigned char *p;
	size_t size;
	uint64_t seed;
};

struct run {
	upager_heap_t *h;
	const char *label;
	unsigned ops;
	/* Blocks handed between threads: a small locked ring. */
	pthread_mutex_t xlock;
	struct block xq[XQ];
	unsigned xhead, xcount;
	_Atomic size_t live, peak;
	_Atomic uint64_t checked_bytes, cross_frees, reallocs;
};

static inline uint64_t word_at(uint64_t seed, size_t i)
{
	uint64_t x = seed + i * 0x9E3779B97F4A7C15ULL;
	x ^= x >> 29;
	return x * 0xBF58476D1CE4E5B9ULL;
}

/* Writes the pattern of seed into bytes [from, to) of p. */
static void fill(unsigned char *p, size_t from, size_t to, uint64_t seed)
{
	size_t i = from;

	for (; i < to && (i & 7); i++)
		p[i] = (unsigned char)(word_at(seed, i / 8) >> (8 * (i & 7)));
	for (; i + 8 <= to; i += 8) {
		uint64_t w = word_at(seed, i / 8);
		memcpy(p + i, &w, 8);
	}
	for (; i < to; i++)
		p[i] = (unsigned char)(word_at(seed, i / 8) >> (8 * (i & 7)));
}

static void check(struct run *run, const unsigned char *p, size_t len, uint64_t seed,
		  const char *when)
{
	size_t i = 0;

	for (; i + 8 <= len; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		if (w != word_at(seed, i / 8))
			break;
	}
	for (; i < len; i++)
		if (p[i] != (unsigned char)(word_at(seed, i / 8) >> (8 * (i & 7))))
			FAILF("%s: block %p (%zu bytes) byte %zu is %#x, expected %#x (%s)",
			      run->label, (void *)p, len, i, p[i],
			      (unsigned char)(word_at(seed, i / 8) >> (8 * (i & 7))), when);
	run->checked_bytes += len;
}

/* Mostly small blocks, some medium, a few up to 4 MiB. The long run
 * makes millions of blocks, so it draws far fewer large ones (its I/O
 * would otherwise be tens of GB). */
static bool long_run;

static size_t pick_size(uint64_t *s)
{
	uint64_t r = rng_next(s);
	unsigned k = r % 1000;

	r >>= 10;
	if (long_run) {
		if (k < 970)
			return 16 + r % 1024;
		if (k < 999)
			return 1024 + r % (64u << 10);
		return (64u << 10) + r % (4032u << 10);
	}
	if (k < 700)
		return 16 + r % 1024;
	if (k < 930)
		return 1024 + r % (64u << 10);
	if (k < 990)
		return (64u << 10) + r % (960u << 10);
	return (1u << 20) + r % (3u << 20);
}

static void new_block(struct run *run, struct block *b, uint64_t *s)
{
	b->size = pick_size(s);
	b->seed = rng_next(s);
	b->p = upager_malloc(run->h, b->size);
	if (!b->p)
		FAILF("%s: upager_malloc(%zu) failed: errno %d", run->label, b->size, errno);
	if ((uintptr_t)b->p % 16)
		FAILF("%s: block %p not 16-byte aligned", run->label, (void *)b->p);
	CHECK(upager_malloc_usable_size(run->h, b->p) >= b->size);
	fill(b->p, 0, b->size, b->seed);
	size_t now = run->live += b->size;
	if (now > run->peak)
		run->peak = now; /* racy max: good enough for a lower bound */
}

static void drop_block(struct run *run, struct block *b, const char *when)
{
	check(run, b->p, b->size, b->seed, when);
	upager_free(run->h, b->p);
	run->live -= b->size;
	b->p = NULL;
}

static void check_mapping(const void *ptr);

static void *worker(void *arg)
{
	struct run *run = ((void **)arg)[0];
	uint64_t s = (uintptr_t)((void **)arg)[1];
	struct block *slots = calloc(SLOTS, sizeof(*slots));

	CHECK(slots);
	for (unsigned op = 0; op < run->ops; op++) {
		struct block *b = &slots[rng_next(&s) % SLOTS];
		unsigned what = rng_next(&s) % 16;

		if (!b->p) {
			if (run->live < LIVE_TARGET)
				new_block(run, b, &s);
			continue;
		}
		if (what < 3) {
			/* Realloc: old bytes kept, new ones written. */
			/* Grow by half, or a fresh size (16 B to 4 MiB, and when
			 * the live set is at its target). */
			size_t old = b->size, n = old + old / 2 + 1;
			if (what == 0 || n > (4u << 20) || run->live > LIVE_TARGET)
				n = pick_size(&s);
			check(run, b->p, old, b->seed, "before realloc");
			unsigned char *q = upager_realloc(run->h, b->p, n);
			if (!q) {
				upager_heap_stats_t hs = { .size = sizeof(hs) };
				upager_heap_stats(run->h, &hs);
				FAILF("%s: upager_realloc(%zu -> %zu) failed; heap: %llu blocks, %llu live, "
				      "%llu held, %llu reserved, %llu address space used of %llu",
				      run->label, old, n, (unsigned long long)hs.blocks_live,
				      (unsigned long long)hs.bytes_live,
				      (unsigned long long)hs.bytes_held,
				      (unsigned long long)hs.bytes_reserved,
				      (unsigned long long)hs.address_space_used,
				      (unsigned long long)hs.max_bytes);
			}
			b->p = q;
			check(run, q, old < n ? old : n, b->seed, "after realloc");
			if (n > old)
				fill(q, old, n, b->seed);
			b->size = n;
			run->live += n - old;
			run->reallocs++;
		} else if (what < 5) {
			/* Hand it to another thread. */
			pthread_mutex_lock(&run->xlock);
			if (run->xcount < XQ) {
				run->xq[(run->xhead + run->xcount++) % XQ] = *b;
				b->p = NULL;
			}
			pthread_mutex_unlock(&run->xlock);
		} else if (what < 7) {
			/* Free one another thread handed over. */
			struct block x = { 0 };
			pthread_mutex_lock(&run->xlock);
			if (run->xcount) {
				x = run->xq[run->xhead];
				run->xhead = (run->xhead + 1) % XQ;
				run->xcount--;
			}
			pthread_mutex_unlock(&run->xlock);
			if (x.p) {
				drop_block(run, &x, "cross-thread free");
				run->cross_frees++;
			}
		} else if (what < 11 || run->live > LIVE_TARGET) {
			drop_block(run, b, "free");
		} else {
			check(run, b->p, b->size, b->seed, "read");
		}
	}
	/* The survivors: checked, then half freed here, half left to close. */
	for (unsigned i = 0; i < SLOTS; i++) {
		if (!slots[i].p)
			continue;
		check(run, slots[i].p, slots[i].size, slots[i].seed, "end");
		if (i % 16 == 0)
			check_mapping(slots[i].p);
		if (i % 2)
			drop_block(run, &slots[i], "end");
	}
	free(slots);
	return NULL;
}

/*
 * mimalloc must never have decommitted or reset arena memory: its
 * decommit maps anonymous PROT_NONE memory over the range, which would
 * silently replace the region. Every live block must still be inside the
 * region's memfd mapping.
 */
static void check_mapping(const void *ptr)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	bool found = false;

	CHECK(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx", &lo, &hi) != 2 || (uintptr_t)ptr < lo ||
		    (uintptr_t)ptr >= hi)
			continue;
		found = true;
		if (!strstr(line, "upager-region"))
			FAILF("block %p is no longer in the region's mapping: %s", ptr, line);
	}
	fclose(f);
	CHECK(found);
}

static void body(const struct test_backend *b, void *arg)
{
	const char *long_env = getenv("UPAGER_TEST_LONG");
	const char *ops_env = getenv("UPAGER_TEST_OPS");
	upager_config_t cfg;
	upager_t *p;
	struct run run = { .label = b->label };
	pthread_t tids[THREADS];
	void *args[THREADS][2];
	upager_stats_t st;
	upager_heap_stats_t hs = { .size = sizeof(hs) };

	(void)arg;
	long_run = long_env && *long_env == '1';
	run.ops = long_run ? 700000 : 5000;
	if (ops_env && *ops_env)
		run.ops = (unsigned)strtoul(ops_env, NULL, 0);
	pthread_mutex_init(&run.xlock, NULL);
	test_config(&cfg, b);
	cfg.ram_bytes = BUDGET;
	CHECK_OK(upager_open(&cfg, &p));
	CHECK_OK(upager_heap_open(p, 128u << 20, &run.h));
	for (unsigned t = 0; t < THREADS; t++) {
		args[t][0] = &run;
		args[t][1] = (void *)(uintptr_t)(0x9876543210ULL * (t + 1) + 77);
		CHECK_EQ(pthread_create(&tids[t], NULL, worker, args[t]), 0);
	}
	for (unsigned t = 0; t < THREADS; t++)
		pthread_join(tids[t], NULL);
	/* Blocks still in the hand-over ring: checked, then left to close. */
	for (unsigned i = 0; i < run.xcount; i++) {
		struct block *x = &run.xq[(run.xhead + i) % XQ];
		check(&run, x->p, x->size, x->seed, "ring at end");
		check_mapping(x->p);
		check_mapping(x->p + x->size - 1);
	}
	CHECK_OK(upager_heap_stats(run.h, &hs));
	CHECK_OK(upager_stats(p, &st));
	printf("  %s: %u threads x %u ops, %llu blocks allocated, %llu MiB checked, %llu reallocs, %llu cross-thread frees; "
	       "heap: %llu live blocks, %llu MiB live, %llu MiB held, %llu MiB address space; "
	       "peak live %zu MiB; pager: %llu major faults, %llu writebacks\n",
	       b->label, THREADS, run.ops, (unsigned long long)hs.mallocs,
	       (unsigned long long)(run.checked_bytes >> 20), (unsigned long long)run.reallocs,
	       (unsigned long long)run.cross_frees, (unsigned long long)hs.blocks_live,
	       (unsigned long long)(hs.bytes_live >> 20), (unsigned long long)(hs.bytes_held >> 20),
	       (unsigned long long)(hs.address_space_used >> 20), (size_t)(run.peak >> 20),
	       (unsigned long long)st.faults_major, (unsigned long long)st.writebacks);
	CHECK_EQ(hs.size, sizeof(hs));
	CHECK_CMP(run.peak, >=, 3 * (size_t)BUDGET);
	CHECK_EQ(hs.bad_frees, 0);
	CHECK_EQ(hs.failed, 0);
	CHECK_CMP(hs.bytes_held, >=, hs.bytes_live);
	CHECK_CMP(hs.mallocs - hs.frees, ==, hs.blocks_live);
	/* It must really have paged. */
	CHECK_CMP(st.writebacks, >, 0);
	CHECK_CMP(st.faults_major, >, 0);
	CHECK_EQ(st.io_errors, 0);
	CHECK_OK(upager_heap_close(run.h));
	CHECK_OK(upager_stats(p, &st));
	CHECK_EQ(st.regions, 0);
	CHECK_EQ(st.swap_slots_used, 0);
	CHECK_OK(upager_close(p));
	pthread_mutex_destroy(&run.xlock);
}

int main(void)
{
	return for_each_backend(body, NULL);
}
