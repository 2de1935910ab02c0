// SPDX-License-Identifier: MIT
/*
 * The published policies against brute-force references written from
 * their papers' pseudocode: ARC (Megiddo and Modha, FAST 2003, Fig. 4),
 * 2Q (Johnson and Shasha, VLDB 1994, the full version), CAR (Bansal and
 * Modha, FAST 2004, Fig. 2), S3-FIFO (Yang et al., SOSP 2023, Algorithm 1)
 * and SIEVE (Zhang et al., NSDI 2024, Algorithm 1). On every LIRS trace in
 * test/data and at several cache sizes the simulator's hit count must
 * equal the reference's, to the request.
 *
 * The references share nothing with src/ but the trace reader: pages are
 * renamed by sorting, every list is a plain array (oldest first) searched
 * from end to end, and each step is the paper's step in the paper's order.
 * Slow (O(cache size) per request) and obvious on purpose.
 *
 * With arguments, "paperref POLICY TRACE SIZE" prints the reference's hit
 * count for one run (test/sim-cli.sh checks upager-sim against it).
 */
#include "testutil.h"
#include "internal.h"
#include "sim.h"
#include "trace.h"

#include <string.h>

/* ---- a list as an array, oldest (LRU) first, newest (MRU) last ---- */

struct lst {
	uint32_t *v;
	uint32_t n;
};

static struct lst lst_new(uint32_t cap)
{
	struct lst l = { calloc((size_t)cap + 2, sizeof(uint32_t)), 0 };

	CHECK(l.v);
	return l;
}

static bool lst_has(const struct lst *l, uint32_t x)
{
	for (uint32_t i = 0; i < l->n; i++)
		if (l->v[i] == x)
			return true;
	return false;
}

static uint32_t lst_take(struct lst *l, uint32_t i)
{
	uint32_t x = l->v[i];

	memmove(l->v + i, l->v + i + 1, (size_t)(l->n - i - 1) * sizeof(*l->v));
	l->n--;
	return x;
}

static void lst_remove(struct lst *l, uint32_t x)
{
	for (uint32_t i = 0; i < l->n; i++)
		if (l->v[i] == x) {
			lst_take(l, i);
			return;
		}
	FAILF("reference: %u not on the list", x);
}

static void lst_push(struct lst *l, uint32_t x)
{
	l->v[l->n++] = x;
}

static uint32_t lst_pop_oldest(struct lst *l)
{
	CHECK(l->n > 0);
	return lst_take(l, 0);
}

/* ---- ARC, Fig. 4 of the FAST 2003 paper ---- */

/* REPLACE(x, p): T1's LRU page to B1's MRU end if T1 is not empty and
 * either |T1| exceeds p or x is in B2 and |T1| = p; else T2's LRU page to
 * B2's MRU end. */
static void arc_replace(struct lst *t1, struct lst *t2, struct lst *b1, struct lst *b2, double p,
			bool x_in_b2)
{
	if (t1->n >= 1 && ((x_in_b2 && (double)t1->n == p) || (double)t1->n > p))
		lst_push(b1, lst_pop_oldest(t1));
	else
		lst_push(b2, lst_pop_oldest(t2));
}

/* The paper's delta is the real quotient; intdelta rounds it down (the
 * variant arc:intdelta=1). */
static double arc_delta(uint32_t hit, uint32_t other, bool intdelta)
{
	if (hit >= other)
		return 1.0;
	return intdelta ? (double)(other / hit) : (double)other / (double)hit;
}

static uint64_t ref_arc(const uint32_t *ids, size_t n, uint32_t c, bool intdelta)
{
	struct lst t1 = lst_new(2 * c), t2 = lst_new(2 * c), b1 = lst_new(2 * c),
		   b2 = lst_new(2 * c);
	double p = 0;
	uint64_t hits = 0;

	for (size_t i = 0; i < n; i++) {
		uint32_t x = ids[i];
		if (lst_has(&t1, x) || lst_has(&t2, x)) { /* Case I */
			lst_remove(lst_has(&t1, x) ? &t1 : &t2, x);
			lst_push(&t2, x);
			hits++;
		} else if (lst_has(&b1, x)) { /* Case II */
			double q = p + arc_delta(b1.n, b2.n, intdelta);
			p = q < c ? q : c;
			arc_replace(&t1, &t2, &b1, &b2, p, false);
			lst_remove(&b1, x);
			lst_push(&t2, x);
		} else if (lst_has(&b2, x)) { /* Case III */
			double q = p - arc_delta(b2.n, b1.n, intdelta);
			p = q > 0 ? q : 0;
			arc_replace(&t1, &t2, &b1, &b2, p, true);
			lst_remove(&b2, x);
			lst_push(&t2, x);
		} else { /* Case IV */
			uint32_t l1 = t1.n + b1.n, l2 = t2.n + b2.n;
			if (l1 == c) {
				if (t1.n < c) {
					lst_pop_oldest(&b1);
					arc_replace(&t1, &t2, &b1, &b2, p, false);
				} else {
					lst_pop_oldest(&t1);
				}
			} else if (l1 < c && l1 + l2 >= c) {
				if (l1 + l2 == 2 * c)
					lst_pop_oldest(&b2);
				arc_replace(&t1, &t2, &b1, &b2, p, false);
			}
			lst_push(&t1, x);
		}
		CHECK(t1.n + t2.n <= c && t1.n + b1.n <= c && t1.n + t2.n + b1.n + b2.n <= 2 * c);
	}
	free(t1.v);
	free(t2.v);
	free(b1.v);
	free(b2.v);
	return hits;
}

/* ---- 2Q, the full version (VLDB 1994, Fig. "2Q, full version") ----
 *
 *   X in Am:    move X to Am's head
 *   X in A1out: reclaimfor(X), X to Am's head
 *   X in A1in:  nothing
 *   otherwise:  reclaimfor(X), X to A1in's head
 *   reclaimfor: a free slot if any; else if |A1in| > Kin page out A1in's
 *               tail Y, Y's identifier to A1out's head, and A1out's tail
 *               forgotten if |A1out| > Kout; else page out Am's tail.
 *
 * X leaves A1out when it moves to Am (a page is on one queue). Kin and
 * Kout are the paper's recommended 25% and 50% of the frames. */
static uint64_t ref_2q(const uint32_t *ids, size_t n, uint32_t c)
{
	uint32_t kin = (uint32_t)(0.25 * c), kout = (uint32_t)(0.5 * c);
	struct lst am = lst_new(c), a1in = lst_new(c), a1out = lst_new(kout + c + 1);
	uint64_t hits = 0;

	if (kout < 1)
		kout = 1;
	for (size_t i = 0; i < n; i++) {
		uint32_t x = ids[i];
		bool to_am;
		if (lst_has(&am, x)) {
			lst_remove(&am, x);
			lst_push(&am, x);
			hits++;
			continue;
		}
		if (lst_has(&a1in, x)) {
			hits++;
			continue;
		}
		to_am = lst_has(&a1out, x);
		if (to_am)
			lst_remove(&a1out, x);
		if (am.n + a1in.n == c) { /* reclaimfor(X) */
			if (a1in.n > kin) {
				lst_push(&a1out, lst_pop_oldest(&a1in));
				if (a1out.n > kout)
					lst_pop_oldest(&a1out);
			} else {
				lst_pop_oldest(&am);
			}
		}
		lst_push(to_am ? &am : &a1in, x);
	}
	free(am.v);
	free(a1in.v);
	free(a1out.v);
	return hits;
}

/* ---- CAR, Fig. 2 of the FAST 2004 paper ----
 * T1 and T2 are clocks: index 0 is the head (where the hand looks), the
 * end is the tail (where pages enter). B1 and B2 are LRU lists. */
static uint64_t ref_car(const uint32_t *ids, size_t n, uint32_t nids, uint32_t c, bool intdelta)
{
	struct lst t1 = lst_new(2 * c), t2 = lst_new(2 * c), b1 = lst_new(2 * c),
		   b2 = lst_new(2 * c);
	uint8_t *bit = calloc(nids, 1);
	double p = 0;
	uint64_t hits = 0;

	CHECK(bit);
	for (size_t i = 0; i < n; i++) {
		uint32_t x = ids[i];
		if (lst_has(&t1, x) || lst_has(&t2, x)) {
			bit[x] = 1;
			hits++;
			continue;
		}
		if (t1.n + t2.n == c) {
			/* replace() */
			for (;;) {
				if ((double)t1.n >= (p > 1 ? p : 1)) {
					uint32_t h = lst_pop_oldest(&t1);
					if (!bit[h]) {
						lst_push(&b1, h);
						break;
					}
					bit[h] = 0;
					lst_push(&t2, h);
				} else {
					uint32_t h = lst_pop_oldest(&t2);
					if (!bit[h]) {
						lst_push(&b2, h);
						break;
					}
					bit[h] = 0;
					lst_push(&t2, h);
				}
			}
			/* cache directory replacement */
			bool in_b = lst_has(&b1, x) || lst_has(&b2, x);
			if (!in_b && t1.n + b1.n == c)
				lst_pop_oldest(&b1);
			else if (t1.n + t2.n + b1.n + b2.n == 2 * c && !in_b)
				lst_pop_oldest(&b2);
		}
		if (lst_has(&b1, x)) {
			double q = p + arc_delta(b1.n, b2.n, intdelta);
			p = q < c ? q : c;
			lst_remove(&b1, x);
			lst_push(&t2, x);
		} else if (lst_has(&b2, x)) {
			double q = p - arc_delta(b2.n, b1.n, intdelta);
			p = q > 0 ? q : 0;
			lst_remove(&b2, x);
			lst_push(&t2, x);
		} else {
			lst_push(&t1, x);
		}
		bit[x] = 0;
		CHECK(t1.n + t2.n <= c && t1.n + t2.n + b1.n + b2.n <= 2 * c);
	}
	free(t1.v);
	free(t2.v);
	free(b1.v);
	free(b2.v);
	free(bit);
	return hits;
}

/* ---- S3-FIFO, Algorithm 1 of the SOSP 2023 paper ----
 * S is 10% of the frames (at least one), M the rest, G remembers as many
 * keys as 90% of the frames. A hit raises a 2-bit counter. To evict: if S
 * has pages and M is within its share, evictS: S's oldest page moves to
 * M's head (counter cleared) if it was used since it came in, else it is
 * evicted and its key joins G; repeat until a page is evicted or S is
 * empty. Then, if nothing was evicted, evictM: M's oldest page goes back
 * to M's head one count lower if its count is not 0, else it is evicted.
 * A miss whose key is in G enters M, any other S.
 *
 * One deviation from the listing, the one the authors' simulator makes
 * too: the listing's "if M is full then evictM()" inside evictS would
 * free a second frame for the same miss; the simulator's host takes one
 * victim per miss, so M may run over its share until the next miss. */
static uint64_t ref_s3fifo(const uint32_t *ids, size_t n, uint32_t nids, uint32_t c)
{
	uint32_t small = (uint32_t)(0.1 * c), gcap = (uint32_t)(0.9 * c);
	struct lst s = lst_new(c), m = lst_new(c), g = lst_new(gcap + 1);
	uint8_t *freq = calloc(nids, 1);
	uint64_t hits = 0;

	CHECK(freq);
	if (small < 1)
		small = 1;
	for (size_t i = 0; i < n; i++) {
		uint32_t x = ids[i];
		if (lst_has(&s, x) || lst_has(&m, x)) {
			if (freq[x] < 3)
				freq[x]++;
			hits++;
			continue;
		}
		if (s.n + m.n == c) {
			bool evicted = false;
			if (s.n && m.n <= c - small) { /* evictS */
				while (!evicted && s.n) {
					uint32_t t = lst_pop_oldest(&s);
					if (freq[t] >= 1) {
						freq[t] = 0;
						lst_push(&m, t);
					} else {
						if (gcap) {
							if (g.n == gcap)
								lst_pop_oldest(&g);
							lst_push(&g, t);
						}
						evicted = true;
					}
				}
			}
			while (!evicted) { /* evictM */
				uint32_t t = lst_pop_oldest(&m);
				if (freq[t]) {
					freq[t]--;
					lst_push(&m, t);
				} else {
					evicted = true;
				}
			}
		}
		freq[x] = 0;
		if (lst_has(&g, x)) {
			lst_remove(&g, x);
			lst_push(&m, x);
		} else {
			lst_push(&s, x);
		}
	}
	free(s.v);
	free(m.v);
	free(g.v);
	free(freq);
	return hits;
}

/* ---- SIEVE, Algorithm 1 of the NSDI 2024 paper ----
 * The queue is an array, tail (oldest) at index 0, head (newest) last;
 * the hand is a key (or none) and "prev" is the next newer entry. */
static uint64_t ref_sieve(const uint32_t *ids, size_t n, uint32_t nids, uint32_t c)
{
	struct lst q = lst_new(c);
	uint8_t *visited = calloc(nids, 1);
	int64_t hand = -1;
	uint64_t hits = 0;

	CHECK(visited);
	for (size_t i = 0; i < n; i++) {
		uint32_t x = ids[i];
		if (lst_has(&q, x)) {
			visited[x] = 1;
			hits++;
			continue;
		}
		if (q.n == c) {
			uint32_t o = 0; /* index of the hand's entry */
			if (hand >= 0)
				while (q.v[o] != (uint32_t)hand)
					o++;
			while (visited[q.v[o]]) {
				visited[q.v[o]] = 0;
				o = o + 1 < q.n ? o + 1 : 0;
			}
			hand = o + 1 < q.n ? (int64_t)q.v[o + 1] : -1;
			lst_take(&q, o);
		}
		lst_push(&q, x);
		visited[x] = 0;
	}
	free(q.v);
	free(visited);
	return hits;
}

/* ---- driver ---- */


/* The reference named spec ("arc", "arc:intdelta=1", ...). */
static uint64_t reference(const char *spec, const uint32_t *ids, size_t n, uint32_t nids,
			  uint32_t c)
{
	if (!strcmp(spec, "arc"))
		return ref_arc(ids, n, c, false);
	if (!strcmp(spec, "arc:intdelta=1"))
		return ref_arc(ids, n, c, true);
	if (!strcmp(spec, "2q"))
		return ref_2q(ids, n, c);
	if (!strcmp(spec, "car"))
		return ref_car(ids, n, nids, c, false);
	if (!strcmp(spec, "car:intdelta=1"))
		return ref_car(ids, n, nids, c, true);
	if (!strcmp(spec, "s3fifo"))
		return ref_s3fifo(ids, n, nids, c);
	if (!strcmp(spec, "sieve"))
		return ref_sieve(ids, n, nids, c);
	FAILF("no reference for '%s'", spec);
	return 0;
}

static uint64_t *read_trace(const char *path, size_t *np, struct sim_trace *t)
{
	struct trace_reader *r;
	uint64_t key, *keys = NULL;
	size_t n = 0, cap = 0;
	unsigned flags;
	int ret;

	CHECK_OK(trace_open(path, TRACE_LIRS, 12, &r));
	while ((ret = trace_next(r, &key, &flags)) == 1) {
		if (n == cap) {
			cap = cap ? 2 * cap : 4096;
			keys = realloc(keys, cap * sizeof(*keys));
			CHECK(keys);
		}
		keys[n++] = key;
		if (t)
			CHECK_OK(sim_trace_add(t, key, 0));
	}
	CHECK_OK(ret);
	trace_close(r);
	*np = n;
	return keys;
}

static const char *const policies[] = {
	"arc", "arc:intdelta=1", "2q", "car", "car:intdelta=1", "s3fifo", "sieve",
};

static void one_trace(const char *dir, const char *name, const uint32_t *sizes, size_t nsizes)
{
	char path[1024];
	struct sim_trace t;
	size_t n;
	uint32_t nids;

	snprintf(path, sizeof(path), "%s/%s.trace.gz", dir, name);
	sim_trace_init(&t);
	uint64_t *keys = read_trace(path, &n, &t);
	CHECK_CMP(n, >, 1000);
	uint32_t *ids = tu_dense_ids(keys, n, &nids);
	CHECK_EQ(nids, t.nids);

	for (size_t s = 0; s < nsizes; s++) {
		printf("%-7s %5u pages:", name, sizes[s]);
		for (size_t k = 0; k < ARRAY_SIZE(policies); k++) {
			upager_sim_result_t r;
			CHECK_OK(sim_run_spec(policies[k], sizes[s], &t, &r));
			uint64_t want = reference(policies[k], ids, n, nids, sizes[s]);
			printf(" %s %llu", policies[k], (unsigned long long)r.hits);
			fflush(stdout);
			if (r.hits != want)
				FAILF("%s on %s at %u pages: simulator %llu hits, paper %llu",
				      policies[k], name, sizes[s], (unsigned long long)r.hits,
				      (unsigned long long)want);
			CHECK_EQ(r.requests, n);
		}
		printf("\n");
	}
	sim_trace_free(&t);
	free(keys);
	free(ids);
}

int main(int argc, char **argv)
{
	static const char *const traces[] = { "cpp", "cs", "gli", "ps", "backf", "multi1" };
	static const uint32_t sizes[] = { 1, 2, 7, 20, 50, 100, 200, 500, 1000 };
	const char *srcdir = getenv("srcdir");
	char dir[512];

	if (argc == 4) { /* paperref POLICY TRACE SIZE: one reference run */
		size_t n;
		uint32_t nids, c = (uint32_t)strtoul(argv[3], NULL, 10);
		uint64_t *keys = read_trace(argv[2], &n, NULL);
		uint32_t *ids = tu_dense_ids(keys, n, &nids);
		CHECK(c > 0);
		printf("%llu\n", (unsigned long long)reference(argv[1], ids, n, nids, c));
		free(keys);
		free(ids);
		return 0;
	}
	if (argc != 1) {
		fprintf(stderr, "usage: %s [POLICY LIRS-TRACE SIZE]\n", argv[0]);
		return 1;
	}
	snprintf(dir, sizeof(dir), "%s/test/data", srcdir ? srcdir : ".");
	for (size_t i = 0; i < ARRAY_SIZE(traces); i++)
		one_trace(dir, traces[i], sizes, ARRAY_SIZE(sizes));
	printf("paperref: all checks passed\n");
	return 0;
}
