// SPDX-License-Identifier: MIT
/*
 * The swap slot allocator (white-box): next-fit hands out adjacent slots,
 * freed slots come back after a wrap, shared slots are freed by their last
 * sharer, bad slots are never reused, and a full area says so.
 */
#include "testutil.h"
#include "internal.h"

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
	printf("swapslots: all checks passed\n");
	return 0;
}
