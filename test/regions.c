// SPDX-License-Identifier: MIT
/*
 * Several regions share one budget; several pagers live in one process;
 * unmapping a region gives back its frames and swap slots at once, while
 * the other regions keep their bytes; map/unmap cycles leak nothing.
 */
#include "testutil.h"

#include <string.h>

#define PS 4096u

static void fill(unsigned char *a, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i += 64)
		a[i] = (unsigned char)(seed + i / 64 * 7);
}

static void verify(unsigned char *a, size_t len, unsigned seed, const char *what)
{
	for (size_t i = 0; i < len; i += 64)
		if (a[i] != (unsigned char)(seed + i / 64 * 7))
			FAILF("%s: byte %zu is %#x, expected %#x", what, i, a[i],
			      (unsigned char)(seed + i / 64 * 7));
}

static void body(const struct test_backend *b, void *arg)
{
	upager_config_t cfg;
	upager_t *p, *q;
	unsigned char *r1, *r2, *r3, *qr;
	upager_stats_t st;

	test_config(&cfg, b);
	cfg.ram_bytes = 256 * PS;
	CHECK_OK(upager_open(&cfg, &p));
	CHECK_OK(upager_open(&cfg, &q));
	CHECK_OK(upager_map(p, 512 * PS, 0, (void **)&r1));
	CHECK_OK(upager_map(p, 300 * PS + 5, 0, (void **)&r2));
	CHECK_OK(upager_map(p, 700 * PS, 0, (void **)&r3));
	CHECK_OK(upager_map(q, 600 * PS, 0, (void **)&qr));
	fill(r1, 512 * PS, 1);
	fill(r2, 300 * PS, 2);
	fill(qr, 600 * PS, 4);
	fill(r3, 700 * PS, 3);

	CHECK_OK(upager_stats(p, &st));
	CHECK_EQ(st.regions, 3);
	CHECK_CMP(st.resident_pages, <=, 256);
	CHECK_CMP(st.swap_slots_used, >, 0);
	uint64_t slots_before = st.swap_slots_used;

	/* Unmapping the middle region frees its pages, at once. */
	CHECK_OK(upager_unmap(p, r2));
	CHECK_OK(upager_stats(p, &st));
	CHECK_EQ(st.regions, 2);
	CHECK_CMP(st.swap_slots_used, <, slots_before);
	verify(r1, 512 * PS, 1, "region 1 after unmapping region 2");
	verify(r3, 700 * PS, 3, "region 3 after unmapping region 2");
	verify(qr, 600 * PS, 4, "second pager's region");
	CHECK_OK(upager_unmap(p, r1));
	CHECK_OK(upager_unmap(p, r3));
	CHECK_OK(upager_stats(p, &st));
	CHECK_EQ(st.regions, 0);
	CHECK_EQ(st.resident_pages, 0);
	CHECK_EQ(st.swap_slots_used, 0);

	/* Map/unmap cycles return everything. */
	for (int i = 0; i < 20; i++) {
		unsigned char *t;
		CHECK_OK(upager_map(p, 400 * PS, 0, (void **)&t));
		fill(t, 400 * PS, (unsigned)i);
		verify(t, 400 * PS, (unsigned)i, "cycled region");
		CHECK_OK(upager_unmap(p, t));
	}
	CHECK_OK(upager_stats(p, &st));
	CHECK_EQ(st.resident_pages, 0);
	CHECK_EQ(st.swap_slots_used, 0);

	/* Closing with a region still mapped unmaps it. */
	CHECK_OK(upager_map(p, 400 * PS, 0, (void **)&r1));
	fill(r1, 400 * PS, 9);
	CHECK_OK(upager_close(p));
	verify(qr, 600 * PS, 4, "second pager's region after closing the first");
	CHECK_OK(upager_close(q));
}

int main(void)
{
	return for_each_backend(body, NULL);
}
