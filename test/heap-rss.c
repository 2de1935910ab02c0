// SPDX-License-Identifier: MIT
/*
 * The heap keeps the RAM budget: while four times the budget is live in
 * blocks of mixed sizes, written and read back twice, the process's peak
 * RSS stays within what it was before, plus the budget, plus the page
 * table (16 bytes per touched page), plus the pager's fixed overhead and
 * the heap's (both stated in the README).
 */
#include "testutil.h"

#include <string.h>

#define BUDGET (32u << 20)
#define LIVE (4 * (size_t)BUDGET)
#define UPAGER_FIXED_OVERHEAD_KB (8u << 10)
/* The heap's own: per shard a host thread's stack and mimalloc's thread
 * data, the segment table, mimalloc's arena record. */
#define HEAP_OVERHEAD_KB (3u << 10)
#define MAXBLOCKS (1u << 17)

static void body(const struct test_backend *b, void *arg)
{
	static unsigned char *blk[MAXBLOCKS];
	static uint32_t len[MAXBLOCKS];
	upager_config_t cfg;
	upager_t *p;
	upager_heap_t *h;
	upager_stats_t st;
	uint64_t s = 42, before, total = 0;
	unsigned n = 0;
	FILE *f = fopen("/proc/self/clear_refs", "w");

	(void)arg;
	CHECK(f);
	fputs("5", f);
	fclose(f);
	before = proc_status_kb("VmHWM");

	test_config(&cfg, b);
	cfg.ram_bytes = BUDGET;
	CHECK_OK(upager_open(&cfg, &p));
	CHECK_OK(upager_heap_open(p, 512u << 20, &h));
	while (total < LIVE) {
		uint64_t r = rng_next(&s);
		size_t sz = r % 8 ? 16 + (r >> 8) % 4000 : 4096 + (r >> 8) % (500u << 10);
		CHECK(n < MAXBLOCKS);
		blk[n] = upager_malloc(h, sz);
		CHECK(blk[n]);
		memset(blk[n], (int)(n * 13 + 1), sz);
		len[n++] = (uint32_t)sz;
		total += sz;
	}
	for (unsigned pass = 0; pass < 2; pass++)
		for (unsigned i = 0; i < n; i++)
			if (blk[i][0] != (unsigned char)(i * 13 + 1) ||
			    blk[i][len[i] - 1] != (unsigned char)(i * 13 + 1) ||
			    blk[i][len[i] / 2] != (unsigned char)(i * 13 + 1))
				FAILF("block %u lost its contents", i);
	CHECK_OK(upager_stats(p, &st));
	uint64_t peak = proc_status_kb("VmHWM");
	uint64_t pt_kb = (1024u << 20) / 4096 * 16 / 1024 / 2; /* generous: 512 MiB touched */
	uint64_t bound = before + BUDGET / 1024 + pt_kb + UPAGER_FIXED_OVERHEAD_KB +
			 HEAP_OVERHEAD_KB;
#if defined(__SANITIZE_ADDRESS__)
	/* ASan's shadow of what the test and the library touched, and its
	 * quarantine. */
	bound += 2 * (LIVE / 8 / 1024) + (16u << 10);
#endif
	printf("  %s: %u blocks, %llu MiB live; peak RSS %llu KiB = before %llu + %llu; bound %llu\n",
	       b->label, n, (unsigned long long)(total >> 20), (unsigned long long)peak,
	       (unsigned long long)before, (unsigned long long)(peak - before),
	       (unsigned long long)bound);
	CHECK_CMP(st.writebacks, >, 0);
#if defined(__SANITIZE_THREAD__)
	printf("  peak RSS not bounded under ThreadSanitizer\n");
#else
	CHECK_CMP(peak, <=, bound);
#endif
	CHECK_OK(upager_heap_close(h));
	CHECK_OK(upager_close(p));
}

int main(void)
{
	return for_each_backend(body, NULL);
}
