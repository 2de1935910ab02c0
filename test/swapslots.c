// SPDX-License-Identifier: MIT
/*
 * The swap slot allocator (white-box): next-fit hands out adjacent slots,
 * freed slots come back after a wrap, shared slots are freed by their last
 * sharer, bad slots are never reused, a full area says so, and the cursor
 * wraps early so that the file stays near the size of what it holds.
 */
#include "testutil.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>

int main(void)
{
	struct swap s;
	uint64_t out[300];

	CHECK_OK(swap_open(&s, NULL, 200 * 4096, 4096, true));
	CHECK_EQ(s.nslots, 200);
	CHECK_EQ(swap_alloc(&s, 10, out), 10);
	for (int i = 0; i < 10; i++)
		CHECK_EQ(out[i], i);
	swap_put(&s, 3);
	swap_put(&s, 4);
	CHECK_EQ(swap_used(&s), 8);
	/* Next-fit: continues after the last allocation. */
	CHECK_EQ(swap_alloc(&s, 2, out), 2);
	CHECK_EQ(out[0], 10);
	CHECK_EQ(out[1], 11);
	/* Shared slot: freed by the last sharer only. */
	swap_get(&s, 10);
	swap_put(&s, 10);
	CHECK_EQ(swap_used(&s), 10);
	swap_put(&s, 10);
	CHECK_EQ(swap_used(&s), 9);
	/* A bad slot stays used. */
	swap_mark_bad(&s, 11);
	swap_put(&s, 11);
	CHECK_EQ(swap_used(&s), 9);
	/* Fill up: 200 - 9 = 191 left, found across the wrap. */
	int got = swap_alloc(&s, 250, out);
	CHECK_EQ(got, 191);
	bool saw3 = false, saw11 = false;
	for (int i = 0; i < got; i++) {
		CHECK_CMP(out[i], <, 200);
		saw3 |= out[i] == 3;
		saw11 |= out[i] == 11;
	}
	CHECK(saw3);
	CHECK(!saw11);
	CHECK_EQ(swap_alloc(&s, 1, out), 0);
	CHECK_EQ(swap_used(&s), 200);
	swap_put(&s, 150);
	CHECK_EQ(swap_alloc(&s, 5, out), 1);
	CHECK_EQ(out[0], 150);
	swap_close(&s);

	/* A capacity that is not a multiple of 64 slots. */
	CHECK_OK(swap_open(&s, NULL, 70 * 4096, 4096, false));
	CHECK_EQ(swap_alloc(&s, 100, out), 70);
	for (int i = 0; i < 70; i++)
		CHECK_EQ(out[i], i);
	swap_close(&s);

	/* A long run of evictions and refaults keeps the file near twice
	 * what it holds: the cursor wraps within the 64 MiB growth chunk
	 * past twice the slots in use instead of walking the whole
	 * capacity (1 GiB here), which would leave stale written blocks
	 * all along the file. */
	enum { HELD = 1000, CHUNK = (64 << 20) / 4096 };
	static uint64_t held[HELD];
	uint64_t highest = 0;
	CHECK_OK(swap_open(&s, NULL, 1ULL << 30, 4096, false));
	CHECK_EQ(swap_alloc(&s, HELD, held), HELD);
	srand(7);
	for (int round = 0; round < 200000; round++) {
		int i = rand() % HELD;
		swap_put(&s, held[i]);
		CHECK_EQ(swap_alloc(&s, 1, &held[i]), 1);
		if (held[i] > highest)
			highest = held[i];
	}
	CHECK_EQ(swap_used(&s), HELD);
	CHECK_CMP(highest, >=, 2 * HELD + CHUNK - 64); /* the slack was used */
	CHECK_CMP(highest, <, 2 * CHUNK);              /* and no more */
	CHECK_CMP(s.file_size, <=, 2ULL * CHUNK * 4096);
	swap_close(&s);
	printf("swapslots: all checks passed\n");
	return 0;
}
