// SPDX-License-Identifier: MIT
/*
 * The simulator's LRU and OPT against an independent brute-force count on
 * the LIRS traces in test/data: every hit count must agree to the request.
 *
 * The brute force shares nothing with the simulator but the trace reader:
 * LRU is an array of resident pages with last-use times, scanned for the
 * oldest on every eviction; OPT scans the future from the current request
 * on every eviction and evicts the resident page seen last (or never).
 */
#include "testutil.h"
#include "internal.h"
#include "sim.h"
#include "trace.h"

#include <string.h>

static uint64_t brute_lru(const uint64_t *keys, size_t n, uint32_t c)
{
	uint64_t *res = calloc(c, sizeof(*res)), *used = calloc(c, sizeof(*used)), hits = 0;
	uint32_t nres = 0;

	CHECK(res && used);
	for (size_t i = 0; i < n; i++) {
		uint32_t j;
		for (j = 0; j < nres && res[j] != keys[i]; j++)
			;
		if (j < nres) {
			hits++;
		} else if (nres < c) {
			j = nres++;
			res[j] = keys[i];
		} else {
			j = 0;
			for (uint32_t k = 1; k < nres; k++)
				if (used[k] < used[j])
					j = k;
			res[j] = keys[i];
		}
		used[j] = i + 1;
	}
	free(res);
	free(used);
	return hits;
}


static uint64_t brute_opt(const uint32_t *ids, size_t n, uint32_t nids, uint32_t c)
{
	uint32_t *res = calloc(c, sizeof(*res)), nres = 0;
	int64_t *slot = malloc(nids * sizeof(*slot)); /* id -> index in res, or -1 */
	uint64_t *mark = calloc(nids, sizeof(*mark)), hits = 0, evictions = 0;

	CHECK(res && slot && mark);
	for (uint32_t i = 0; i < nids; i++)
		slot[i] = -1;
	for (size_t i = 0; i < n; i++) {
		uint32_t id = ids[i];
		if (slot[id] >= 0) {
			hits++;
			continue;
		}
		if (nres < c) {
			slot[id] = nres;
			res[nres++] = id;
			continue;
		}
		/* Walk the future until every resident page but one has been
		 * seen: that one is used farthest away (or never). */
		uint32_t unseen = nres;
		evictions++;
		for (size_t k = i + 1; k < n && unseen > 1; k++) {
			uint32_t f = ids[k];
			if (slot[f] >= 0 && mark[f] != evictions) {
				mark[f] = evictions;
				unseen--;
			}
		}
		uint32_t v = 0;
		while (mark[res[v]] == evictions)
			v++;
		slot[res[v]] = -1;
		res[v] = id;
		slot[id] = v;
	}
	free(res);
	free(slot);
	free(mark);
	return hits;
}

static void one_trace(const char *dir, const char *name, const uint32_t *sizes, size_t nsizes)
{
	char path[1024];
	struct trace_reader *r;
	struct sim_trace t;
	uint64_t key, *keys = NULL;
	size_t n = 0, cap = 0;
	unsigned flags;
	int ret;

	snprintf(path, sizeof(path), "%s/%s.trace.gz", dir, name);
	CHECK_OK(trace_open(path, TRACE_LIRS, 12, &r));
	sim_trace_init(&t);
	while ((ret = trace_next(r, &key, &flags)) == 1) {
		if (n == cap) {
			cap = cap ? 2 * cap : 4096;
			keys = realloc(keys, cap * sizeof(*keys));
			CHECK(keys);
		}
		keys[n++] = key;
		CHECK_OK(sim_trace_add(&t, key, 0));
	}
	CHECK_OK(ret);
	trace_close(r);
	CHECK_CMP(n, >, 1000);
	uint32_t nids, *ids = tu_dense_ids(keys, n, &nids);
	CHECK_EQ(nids, t.nids);

	for (size_t i = 0; i < nsizes; i++) {
		upager_sim_result_t lru, opt;
		CHECK_OK(sim_run_spec("lru", sizes[i], &t, &lru));
		CHECK_OK(sim_run_spec("opt", sizes[i], &t, &opt));
		uint64_t blru = brute_lru(keys, n, sizes[i]);
		uint64_t bopt = brute_opt(ids, n, nids, sizes[i]);
		printf("%-7s %5u pages: %zu requests, lru %llu hits (brute %llu), opt %llu (brute %llu)\n",
		       name, sizes[i], n, (unsigned long long)lru.hits, (unsigned long long)blru,
		       (unsigned long long)opt.hits, (unsigned long long)bopt);
		CHECK_EQ(lru.requests, n);
		CHECK_EQ(opt.requests, n);
		CHECK_EQ(lru.hits, blru);
		CHECK_EQ(opt.hits, bopt);
		CHECK_CMP(opt.hits, >=, lru.hits);
	}
	sim_trace_free(&t);
	free(keys);
	free(ids);
}

int main(void)
{
	static const char *const traces[] = { "cpp", "cs", "gli", "ps", "backf", "multi1" };
	static const uint32_t sizes[] = { 1, 10, 50, 100, 250, 500, 1000 };
	const char *srcdir = getenv("srcdir");
	char dir[512];

	snprintf(dir, sizeof(dir), "%s/test/data", srcdir ? srcdir : ".");
	for (size_t i = 0; i < ARRAY_SIZE(traces); i++)
		one_trace(dir, traces[i], sizes, ARRAY_SIZE(sizes));
	printf("simexact: all checks passed\n");
	return 0;
}
