// SPDX-License-Identifier: MIT
/*
 * Every built-in policy on small hand-made reference strings whose right
 * answers are worked out in the comments, run through the simulator's
 * host (upager_sim_run) and, where the order of victims matters, through
 * the policy's hooks directly; then a randomised contract check of every
 * policy with frees, busy victims and re-inserts, as the live pager calls
 * them.
 */
#include "testutil.h"
#include "internal.h"
#include "policy.h"

#include <string.h>

/* Faults (misses) of spec with frames frames on keys[0..n-1]. */
static uint64_t faults(const char *spec, uint32_t frames, const uint64_t *keys, size_t n)
{
	upager_sim_result_t r;

	CHECK_OK(upager_sim_run(spec, frames, keys, NULL, n, &r));
	CHECK_EQ(r.requests, n);
	return r.requests - r.hits;
}

#define FAULTS(spec, frames, arr) faults(spec, frames, arr, ARRAY_SIZE(arr))

/* The textbook string (Silberschatz et al.): with 3 frames FIFO has 15
 * faults, LRU 12 and OPT 9. */
static const uint64_t textbook[] = { 7, 0, 1, 2, 0, 3, 0, 4, 2, 3, 0, 3, 2, 1, 2, 0, 1, 7, 0, 1 };

static void test_fifo_lru_opt(void)
{
	/* Belady's anomaly under FIFO: 1,2,3,4,1,2,5,1,2,3,4,5.
	 * 3 frames: 1 2 3 4(-1) 1(-2) 2(-3) 5(-4) 1h 2h 3(-1) 4(-2) 5h
	 *           = 9 faults.
	 * 4 frames: 1 2 3 4 1h 2h 5(-1) 1(-2) 2(-3) 3(-4) 4(-5) 5(-1)
	 *           = 10 faults: more frames, more faults. */
	static const uint64_t anomaly[] = { 1, 2, 3, 4, 1, 2, 5, 1, 2, 3, 4, 5 };
	CHECK_EQ(FAULTS("fifo", 3, anomaly), 9);
	CHECK_EQ(FAULTS("fifo", 4, anomaly), 10);
	/* LRU and OPT are stack algorithms: never worse with more frames.
	 * LRU: 3 frames 10 faults, 4 frames 8; OPT: 7 and 6. */
	CHECK_EQ(FAULTS("lru", 3, anomaly), 10);
	CHECK_EQ(FAULTS("lru", 4, anomaly), 8);
	CHECK_EQ(FAULTS("opt", 3, anomaly), 7);
	CHECK_EQ(FAULTS("opt", 4, anomaly), 6);

	CHECK_EQ(FAULTS("fifo", 3, textbook), 15);
	CHECK_EQ(FAULTS("lru", 3, textbook), 12);
	CHECK_EQ(FAULTS("opt", 3, textbook), 9);
	/* 1,2,1 with one frame: demand OPT must bring 2 in, so 1 misses
	 * again (3 faults); the bypass variant leaves 2 uncached (2). */
	static const uint64_t aba[] = { 1, 2, 1 };
	CHECK_EQ(FAULTS("opt", 1, aba), 3);
	CHECK_EQ(FAULTS("opt:bypass=1", 1, aba), 2);
	/* On the textbook string demand OPT evicts 0 (next used at request
	 * 10) to bring in 4 at request 7, which is never used again; the
	 * bypass variant leaves 4 uncached, and 0 hits at request 10: 8. */
	CHECK_EQ(FAULTS("opt:bypass=1", 3, textbook), 8);

	/* A loop over n + 1 pages with n frames: LRU always evicts the page
	 * needed next, so every one of the 10 x 9 references misses; FIFO
	 * too. OPT keeps n - 1 pages in place and faults about once per
	 * n references after the warm-up. */
	uint64_t loop[90];
	for (unsigned i = 0; i < 90; i++)
		loop[i] = i % 9;
	CHECK_EQ(FAULTS("lru", 8, loop), 90);
	CHECK_EQ(FAULTS("fifo", 8, loop), 90);
	CHECK_CMP(FAULTS("opt", 8, loop), <=, 9 + 90 / 8 + 1);
	/* With n + 1 frames everything stays: 9 cold misses only. */
	CHECK_EQ(FAULTS("lru", 9, loop), 9);
}

static void test_lfu(void)
{
	/* 1,1,1,2,2,3,4,1,2 with 3 frames, no aging. After 3 comes in, the
	 * counts are 1:3 2:2 3:1; 4 evicts the least used page, 3, so 1 and
	 * 2 hit at the end: 4 faults. LRU evicts 1 (least recent) for 4,
	 * then 2 for 1, then 3 for 2: 6 faults. */
	static const uint64_t s[] = { 1, 1, 1, 2, 2, 3, 4, 1, 2 };
	CHECK_EQ(FAULTS("lfu:decay=0", 3, s), 4);
	CHECK_EQ(FAULTS("lru", 3, s), 6);

	/* Aging. Page 1 is used 50 times, then 2 and 3 alternate 40 times
	 * each with 2 frames. Without aging 1 keeps its count of 50 forever
	 * and 2 and 3 evict each other: 1 + 80 = 81 faults. With counts
	 * halved every 4 events, 1's count falls to 1 within a few dozen
	 * references, it is evicted, and 2 and 3 then both stay: far fewer
	 * faults. */
	uint64_t a[130];
	for (unsigned i = 0; i < 50; i++)
		a[i] = 1;
	for (unsigned i = 50; i < 130; i++)
		a[i] = 2 + (i % 2);
	CHECK_EQ(FAULTS("lfu:decay=0", 2, a), 81);
	CHECK_CMP(FAULTS("lfu:decay=4", 2, a), <, 40);
}

static void test_scan_resistance(void)
{
	uint64_t s[2048];
	size_t n = 0;

	/* ARC, CAR with 4 frames: 1,1,2,2 puts 1 and 2 in T2 (2 faults).
	 * A scan of 20 pages used once only cycles through T1 (p stays 0:
	 * no ghost is ever hit), so 1 and 2 hit afterwards: 22 faults. LRU
	 * loses 1 and 2 to the scan: 24 faults. */
	s[n++] = 1, s[n++] = 1, s[n++] = 2, s[n++] = 2;
	for (unsigned i = 0; i < 20; i++)
		s[n++] = 10 + i;
	s[n++] = 1, s[n++] = 2;
	CHECK_EQ(faults("arc", 4, s, n), 22);
	CHECK_EQ(faults("car", 4, s, n), 22);
	CHECK_EQ(faults("lru", 4, s, n), 24);

	/* 2Q with 8 frames (Kin = 2, Kout = 4). 1,2,3,4,100..105 fills the
	 * cache through A1in; 104 and 105 push 1 and 2 out to A1out. Then
	 * 1,2,3,4 fault again: each evicts A1in's oldest (3, 4, 100, 101)
	 * and, found in A1out, enters Am. So far 14 faults. A scan of 1000
	 * new pages only churns A1in (|A1in| = 4 > Kin), and the final
	 * 1,2,3,4 all hit: 1014 faults of 1018. LRU misses all 1018. */
	n = 0;
	for (unsigned i = 1; i <= 4; i++)
		s[n++] = i;
	for (unsigned i = 100; i <= 105; i++)
		s[n++] = i;
	for (unsigned i = 1; i <= 4; i++)
		s[n++] = i;
	for (unsigned i = 0; i < 1000; i++)
		s[n++] = 1000 + i;
	for (unsigned i = 1; i <= 4; i++)
		s[n++] = i;
	CHECK_EQ(faults("2q", 8, s, n), 1014);
	CHECK_EQ(faults("lru", 8, s, n), 1018);
}

static void test_s3fifo(void)
{
	uint64_t s[256];
	size_t n = 0;

	/* 10 frames, S = 1 frame's share. 1..5 are each used twice (a miss
	 * and a hit), then 100 one-hit wonders arrive. The first victim
	 * search finds 1..5 at S's tail with a use each: they move to M;
	 * from then on every victim is the newest wonder's predecessor in
	 * S, never a page of M. 1..5 hit at the end: faults = 5 + 100 = 105
	 * of 115. LRU and FIFO lose 1..5: 110. */
	for (unsigned i = 1; i <= 5; i++)
		s[n++] = i, s[n++] = i;
	for (unsigned i = 0; i < 100; i++)
		s[n++] = 100 + i;
	for (unsigned i = 1; i <= 5; i++)
		s[n++] = i;
	CHECK_EQ(faults("s3fifo", 10, s, n), 105);
	CHECK_EQ(faults("lru", 10, s, n), 110);
	CHECK_EQ(faults("fifo", 10, s, n), 110);
	/* promote=2 wants two uses in S: 1..5 have one, so they go the way
	 * of the wonders (to G). */
	CHECK_EQ(faults("s3fifo:promote=2", 10, s, n), 110);
	/* A page evicted from S whose key is in G comes back into M. 60 new
	 * pages through 10 frames: each evicts S's oldest, so 100..149 were
	 * evicted and G remembers the last 9 (141..149); 150..159 are
	 * resident. 145 faults, is found in G and enters M; 20 more new
	 * pages only evict from S, and 145 hits at the end: 81 faults of 82.
	 * LRU has evicted 145 by then: 82. */
	n = 0;
	for (unsigned i = 0; i < 60; i++)
		s[n++] = 100 + i;
	s[n++] = 145;
	for (unsigned i = 0; i < 20; i++)
		s[n++] = 500 + i;
	s[n++] = 145;
	CHECK_EQ(faults("s3fifo", 10, s, n), 81);
	CHECK_EQ(faults("lru", 10, s, n), 82);
}

static unsigned nage;
static void count_age(void *host, uint32_t frame)
{
	nage++;
}

static void test_sieve(void)
{
	/* 3 frames: 1,2,3 miss; 1 hits (visited). 4: the hand starts at the
	 * tail (1): visited -> cleared, step to 2: not visited -> victim 2;
	 * the hand stays at 3. 5: 3 is not visited -> victim 3, hand at 4.
	 * 1 hits. 6: hand at 4, not visited -> victim. 1 hits.
	 * 1,2,3,1,4,5,1,6,1: 3 hits, 6 faults. FIFO: 2 hits (7 faults). */
	static const uint64_t s[] = { 1, 2, 3, 1, 4, 5, 1, 6, 1 };
	CHECK_EQ(FAULTS("sieve", 3, s), 6);
	CHECK_EQ(FAULTS("fifo", 3, s), 7);

	/* The same steps through the hooks: frames 0,1,2 hold 1,2,3. */
	struct policy *pol;
	CHECK_OK(policy_create("sieve", 3, count_age, NULL, &pol));
	const struct policy_ops *o = pol->ops;
	o->insert(pol->state, 0, 1, false);
	o->insert(pol->state, 1, 2, false);
	o->insert(pol->state, 2, 3, false);
	o->reference(pol->state, 0, false);
	nage = 0;
	CHECK_EQ(o->victim(pol->state), 1); /* page 2 */
	CHECK_EQ(nage, 1);                  /* page 1's bit was consumed */
	/* Busy: the host reports a reference and asks again; the hand moves
	 * on to 3 (frame 2). */
	o->reference(pol->state, 1, false);
	CHECK_EQ(o->victim(pol->state), 2);
	o->remove(pol->state, 2, POLICY_EVICTED);
	/* Page 3 was the newest, so the hand passes the head and wraps to the
	 * tail: page 1 (frame 0), whose bit the first sweep cleared. */
	CHECK_EQ(o->victim(pol->state), 0);
	policy_destroy(pol);
}

static void test_clockpro(void)
{
	struct policy *pol;

	/* 4 frames, cold target 1 (mincold's 1% rounds up to one page):
	 * the first 3 pages come in hot, the 4th cold in its test period.
	 * The victim is the cold page even though it is the newest, and a
	 * set referenced bit on it buys it a promotion instead. */
	CHECK_OK(policy_create("clockpro", 4, count_age, NULL, &pol));
	const struct policy_ops *o = pol->ops;
	void *s = pol->state;
	for (uint32_t f = 0; f < 4; f++)
		o->insert(s, f, 10 + f, false);
	CHECK_EQ(o->victim(s), 3);
	o->remove(s, 3, POLICY_EVICTED); /* key 13 stays as non-resident */
	/* Key 13 faults again within its test period: it comes back hot; to
	 * keep a cold page, the hot hand demotes the oldest hot page with a
	 * clear bit (key 10 in frame 0), which is the next victim. */
	o->insert(s, 3, 13, false);
	CHECK_EQ(o->victim(s), 0);
	o->remove(s, 0, POLICY_EVICTED);
	/* That promotion raised the cold target to 2, so the hot hand had
	 * demoted two hot pages, 10 and 11, leaving 12 and 13 hot. A new key
	 * 20 comes into frame 0, cold, in its test period, and is used. The
	 * cold hand reaches 11 (frame 1) first: demoted, bit clear, so it is
	 * the victim, and no bit had to be consumed. */
	o->insert(s, 0, 20, false);
	o->reference(s, 0, false);
	nage = 0;
	CHECK_EQ(o->victim(s), 1);
	CHECK_EQ(nage, 0);
	/* Busy: the host reports a reference to 11 and asks again. Now both
	 * cold pages have their bits set: both are consumed (two agings), 11
	 * gets a new test period and 20 (used within its test period) is
	 * promoted; whatever is chosen then is a resident frame. */
	o->reference(s, 1, false);
	int64_t v = o->victim(s);
	CHECK(v >= 0 && v < 4);
	CHECK_CMP(nage, >=, 2);
	policy_destroy(pol);

	/* A loop over 12 pages with 10 frames defeats LRU (no hit at all);
	 * CLOCK-Pro keeps most of the loop resident as hot pages. */
	uint64_t loop[600];
	for (unsigned i = 0; i < 600; i++)
		loop[i] = i % 12;
	CHECK_EQ(FAULTS("lru", 10, loop), 600);
	uint64_t opt = FAULTS("opt", 10, loop), cp = FAULTS("clockpro", 10, loop);
	printf("loop of 12 in 10 frames: opt %llu faults, clockpro %llu\n", (unsigned long long)opt,
	       (unsigned long long)cp);
	CHECK_CMP(cp, <, 300);
}

static void test_random(void)
{
	static const uint64_t s[] = { 1, 2, 3, 4, 1, 2, 5, 1, 2, 3, 4, 5 };
	uint64_t a = FAULTS("random:seed=7", 3, s), b = FAULTS("random:seed=7", 3, s);

	/* Reproducible with a seed; between OPT's 7 and all 12. */
	CHECK_EQ(a, b);
	CHECK_CMP(a, >=, 7);
	CHECK_CMP(a, <=, 12);
	/* Roughly uniform: 4 resident frames, 40000 draws. */
	struct policy *pol;
	unsigned hist[4] = { 0 };
	CHECK_OK(policy_create("random", 4, count_age, NULL, &pol));
	for (uint32_t f = 0; f < 4; f++)
		pol->ops->insert(pol->state, f, f, false);
	for (unsigned i = 0; i < 40000; i++) {
		int64_t v = pol->ops->victim(pol->state);
		CHECK(v >= 0 && v < 4);
		hist[v]++;
	}
	for (unsigned f = 0; f < 4; f++)
		CHECK(hist[f] > 9000 && hist[f] < 11000);
	policy_destroy(pol);
}

/*
 * Every policy as the live pager drives it: frames filled and freed in
 * any order, victims that turn out busy (reference, ask again), failed
 * evictions given back with insert, ghosts of pages that never return.
 * The host checks every victim is a frame it filled.
 */
static void contract(const char *name)
{
	enum { N = 64 };
	struct policy *pol;
	bool used[N] = { false };
	unsigned nused = 0;
	uint64_t seed = tu_rng(0x5eed ^ (uint64_t)strlen(name)), next_key = 1;

	CHECK_OK(policy_create(name, N, count_age, NULL, &pol));
	const struct policy_ops *o = pol->ops;
	void *s = pol->state;
	CHECK_EQ(o->victim(s), -1);
	for (unsigned step = 0; step < 20000; step++) {
		unsigned r = (unsigned)(rng_next(&seed) % 100);
		uint32_t f = (uint32_t)(rng_next(&seed) % N);
		if (r < 40) { /* fault: a free frame or an eviction */
			if (nused == N) {
				int64_t v = o->victim(s);
				if (v < 0 || v >= N || !used[v])
					FAILF("%s: victim %lld with a full pool", name,
					      (long long)v);
				if (rng_next(&seed) % 8 == 0) { /* busy */
					o->reference(s, (uint32_t)v, false);
					continue;
				}
				o->remove(s, (uint32_t)v, POLICY_EVICTED);
				if (rng_next(&seed) % 16 == 0) { /* write failed */
					o->insert(s, (uint32_t)v, next_key++, true);
					continue;
				}
				f = (uint32_t)v;
			} else {
				while (used[f])
					f = (f + 1) % N;
				used[f] = true;
				nused++;
			}
			/* Mostly new keys, sometimes a recent one (ghost hits). */
			uint64_t key = rng_next(&seed) % 3
					       ? next_key++
					       : next_key - 1 - rng_next(&seed) % (2 * N);
			if (o->miss && rng_next(&seed) % 2)
				o->miss(s, key, false);
			o->insert(s, f, key, rng_next(&seed) % 2);
		} else if (r < 90) {
			if (used[f])
				o->reference(s, f, rng_next(&seed) % 2);
		} else if (used[f]) { /* unmapped */
			o->remove(s, f, POLICY_FREED);
			used[f] = false;
			nused--;
		}
		if (nused) {
			if (step % 7 == 0) {
				int64_t v = o->victim(s);
				if (v < 0 || v >= N || !used[v])
					FAILF("%s: victim %lld, not a filled frame", name,
					      (long long)v);
				o->reference(s, (uint32_t)v, false);
			}
		} else {
			CHECK_EQ(o->victim(s), -1);
		}
	}
	policy_destroy(pol);
}

/* 2Q with 2 frames: Kin = 0, Kout = 1. On 1,2,3,1,4,5,1: 3 pushes 1 out
 * (A1out = {1}); 1 faults while in A1out, so it belongs in Am, even though
 * making room for it pushes 2 into A1out and so 1's own key out of it
 * (A1out holds one key). In Am it survives 4 and 5 passing through A1in:
 * 6 faults. Had the lost key sent 1 to A1in, 5 would push it out: 7. */
static void test_2q_a1out(void)
{
	static const uint64_t s[] = { 1, 2, 3, 1, 4, 5, 1 };

	CHECK_EQ(FAULTS("2q", 2, s), 6);
}

/* Parameters: one parser for integers and reals, defaults when absent,
 * a range check, and a clear refusal of anything else. */
static void test_params(void)
{
	static const char *const good[] = {
		"s3fifo:promote=0x2", "s3fifo:small=0.25,promote=3", "arc:intdelta=1",
		"car:intdelta=0",     "2q:kin=1e-1,kout=2",          "clockpro:nonres=16",
	};
	static const char *const bad[] = {
		"s3fifo:promote=-1", "s3fifo:promote=2.5",
		"s3fifo:promote=4",  "s3fifo:promote=99999999999999999999999",
		"s3fifo:small=",     "s3fifo:small=0.1x",
		"s3fifo:small=nan",  "arc:intdelta=2",
		"car:intdelta=yes",  "2q:kout=17",
	};
	uint64_t k[] = { 1, 2, 3 };
	upager_sim_result_t r;

	for (size_t i = 0; i < ARRAY_SIZE(good); i++)
		if (upager_sim_run(good[i], 2, k, NULL, 3, &r))
			FAILF("'%s' refused: %s", good[i], upager_last_error());
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		CHECK_ERR(upager_sim_run(bad[i], 2, k, NULL, 3, &r), UPAGER_EPOLICY);
		CHECK(strstr(upager_last_error(), "must be"));
	}
}

int main(void)
{
	const upager_policy_ops_t *ops[32];
	size_t n = upager_policy_list(ops, 32);

	test_fifo_lru_opt();
	test_lfu();
	test_scan_resistance();
	test_s3fifo();
	test_sieve();
	test_clockpro();
	test_random();
	test_2q_a1out();
	test_params();
	CHECK_CMP(n, >=, 11);
	CHECK_CMP(n, <=, ARRAY_SIZE(ops));
	for (size_t i = 0; i < n; i++) {
		contract(ops[i]->name);
		printf("contract: %s ok\n", ops[i]->name);
	}
	printf("policies: all checks passed\n");
	return 0;
}
