// SPDX-License-Identifier: MIT
/*
 * A small budget still evicts in whole batches. With the automatic
 * watermarks, a budget of 1024 frames keeps free_low at 8 frames; free_high
 * must still leave room for an evict_batch between them, or every batch
 * (a TLB shootdown, a punch and a write each) would take a handful of
 * pages. Writing 8 times the budget in order must evict at least 24
 * pages a batch on average (twice free_low as free_high gave about 20),
 * and every page must come back as written.
 */
#include "testutil.h"

#include <string.h>

#define BUDGET (4u << 20)
#define REGION (8 * (size_t)BUDGET)

static void body(const struct test_backend *b, void *arg)
{
	upager_config_t cfg;
	upager_t *p;
	unsigned char *a;
	upager_stats_t st;

	(void)arg;
	test_config(&cfg, b);
	cfg.ram_bytes = BUDGET;
	CHECK_OK(upager_open(&cfg, &p));
	CHECK_OK(upager_map(p, REGION, 0, (void **)&a));
	/* Not zero (zero pages leave without a write), one value per page. */
	for (size_t i = 0; i < REGION; i += 4096)
		memset(a + i, (int)(i >> 12) % 251 + 1, 4096);
	CHECK_OK(upager_stats(p, &st));
	/* Every batch is punched once: its count is the punch phase's. */
	uint64_t batches = 0;
	for (int k = 0; k < UPAGER_LATENCY_BUCKETS; k++)
		batches += st.phase_hist[UPAGER_PHASE_PUNCH][k];
	printf("  %s: %llu pages evicted in %llu batches, %llu written back in %llu submissions\n",
	       b->label, (unsigned long long)st.evictions, (unsigned long long)batches,
	       (unsigned long long)st.writebacks, (unsigned long long)st.io_submits);
	CHECK_CMP(st.writebacks, >=, (REGION - 2 * BUDGET) / 4096);
	CHECK_CMP(batches, >, 0);
	CHECK_CMP(st.evictions, >=, 24 * batches);
	for (size_t i = 0; i < REGION; i += 4096) {
		unsigned char want = (unsigned char)((i >> 12) % 251 + 1);
		if (a[i] != want || a[i + 2048] != want || a[i + 4095] != want)
			FAILF("page %zu reads %u, written %u", i >> 12, a[i], want);
	}
	CHECK_OK(upager_close(p));
}

int main(void)
{
	return for_each_backend(body, NULL);
}
