// SPDX-License-Identifier: MIT
/*
 * The RAM budget holds: while four times the budget is written, read
 * back in order and then at random, the process's peak RSS stays within what it was before, plus the
 * budget, plus the page table (16 bytes per touched page), plus the fixed
 * overhead the README states (UPAGER_FIXED_OVERHEAD below).
 */
#include "testutil.h"

#include <string.h>

#define BUDGET (32u << 20)
#define REGION (4 * (size_t)BUDGET)
/* Stated in the README: I/O rings and their buffers, frame records,
 * thread stacks. */
#define UPAGER_FIXED_OVERHEAD_KB (8u << 10)

static void body(const struct test_backend *b, void *arg)
{
	upager_config_t cfg;
	upager_t *p;
	unsigned char *a;
	upager_stats_t st;
	uint64_t before;
	FILE *f = fopen("/proc/self/clear_refs", "w");

	/* Reset the peak so each backend is measured on its own. */
	CHECK(f);
	fputs("5", f);
	fclose(f);
	before = proc_status_kb("VmHWM");

	test_config(&cfg, b);
	cfg.ram_bytes = BUDGET;
	CHECK_OK(upager_open(&cfg, &p));
	CHECK_OK(upager_map(p, REGION, 0, (void **)&a));
	for (size_t i = 0; i < REGION; i += 4096)
		memset(a + i, (int)(i >> 12) | 1, 4096);
	for (size_t i = 0; i < REGION; i += 4096)
		if (a[i] != (unsigned char)((i >> 12) | 1) || a[i + 4095] != a[i])
			FAILF("page %zu lost", i >> 12);
	/* Random refills: the pager view's zero checks and writes must not
	 * leave the victims' resident neighbours mapped there too. */
	uint64_t seed = 0x5eed;
	for (size_t k = 0; k < 2 * REGION / 4096; k++) {
		size_t i = (size_t)(rng_next(&seed) % (REGION / 4096)) * 4096;
		if (a[i] != (unsigned char)((i >> 12) | 1))
			FAILF("page %zu lost (random pass)", i >> 12);
		if (k % 3 == 0)
			a[i + 1] = a[i]; /* dirty: it is written when it goes */
	}
	CHECK_OK(upager_stats(p, &st));
	uint64_t peak = proc_status_kb("VmHWM");
	uint64_t pt_kb = (REGION / 4096) * 16 / 1024;
	/* The readahead threads' buffers (budget/16), which the sequential
	 * read pass uses. */
	uint64_t bound = before + BUDGET / 1024 + pt_kb + UPAGER_FIXED_OVERHEAD_KB +
			 BUDGET / 16 / 1024;
#if defined(__SANITIZE_ADDRESS__)
	/* ASan's shadow memory (1/8 of what is touched) of the application
	 * view (the test's loads and stores) and of the pager view (the
	 * library's zero check), and its allocator's quarantine. */
	bound += 2 * (REGION / 8 / 1024) + (16u << 10);
#endif
	printf("  %s: peak RSS %llu KiB = before %llu + %llu; bound %llu (budget %u KiB)\n",
	       b->label, (unsigned long long)peak, (unsigned long long)before,
	       (unsigned long long)(peak - before), (unsigned long long)bound, BUDGET / 1024);
	CHECK_CMP(st.writebacks, >=, (REGION - BUDGET) / 4096 / 2);
#if defined(__SANITIZE_THREAD__)
	/* TSan's shadow is several times the memory the test touched and never
	 * shrinks, so a peak measured under it says nothing about upager. */
	printf("  peak RSS not bounded under ThreadSanitizer\n");
#else
	CHECK_CMP(peak, <=, bound);
#endif
	CHECK_OK(upager_close(p));
}

int main(void)
{
	return for_each_backend(body, NULL);
}
