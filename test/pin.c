// SPDX-License-Identifier: MIT
/*
 * Pins: pinned pages stay resident and mapped through heavy eviction
 * pressure (checked with system calls, which fail with EFAULT in fast mode
 * on any page that is not mapped), pins nest, at most half the budget can
 * be pinned, and unpinned pages are evicted again. Under every built-in
 * policy, a pinned page does not stop eviction (FIFO and 2Q once named it
 * as their victim forever). Freeing a snapshot drops the pins on its
 * view, also while a clone still reads through it.
 */
#include "testutil.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PS 4096u
#define BUDGET_PAGES 64u

static void body(const struct test_backend *b, void *arg)
{
	upager_config_t cfg;
	upager_t *p;
	unsigned char *a;
	upager_stats_t st;
	size_t pinned_len = 8 * PS;
	int fd = memfd_create("pin-test", MFD_CLOEXEC);

	test_config(&cfg, b);
	cfg.ram_bytes = BUDGET_PAGES * PS;
	CHECK_OK(upager_open(&cfg, &p));
	CHECK_OK(upager_map(p, 16 * BUDGET_PAGES * PS, 0, (void **)&a));
	memset(a, 0xab, pinned_len);
	CHECK_OK(upager_pin(p, a, pinned_len, 1));
	CHECK_OK(upager_pin(p, a, PS, 0)); /* nested on the first page */
	CHECK_OK(upager_stats(p, &st));
	CHECK_EQ(st.pinned_pages, 8);
	/* Churn through the rest of the region, several times over. */
	for (int round = 0; round < 3; round++)
		for (size_t off = pinned_len; off < 16 * BUDGET_PAGES * PS; off += PS)
			a[off] = (unsigned char)round;
	CHECK_OK(upager_stats(p, &st));
	CHECK_CMP(st.evictions, >, 3 * 15 * BUDGET_PAGES);
	/* Still mapped and writable: the kernel can read into them. */
	unsigned char buf[8 * 4096];
	memset(buf, 0x5c, sizeof(buf));
	CHECK_EQ(pwrite(fd, buf, sizeof(buf), 0), sizeof(buf));
	CHECK_EQ(pread(fd, a, pinned_len, 0), pinned_len);
	CHECK(memcmp(a, buf, pinned_len) == 0);

	/* More than half the budget cannot be pinned; nothing is left
	 * pinned by the refused call. */
	CHECK_ERR(upager_pin(p, a + pinned_len, (BUDGET_PAGES / 2) * PS, 0), -ENOMEM);
	CHECK_OK(upager_stats(p, &st));
	CHECK_EQ(st.pinned_pages, 8);
	CHECK_ERR(upager_pin(p, a - PS, PS, 0), UPAGER_ENOREGION);

	CHECK_OK(upager_unpin(p, a, pinned_len));
	CHECK_OK(upager_stats(p, &st));
	CHECK_EQ(st.pinned_pages, 1); /* the nested pin remains */
	CHECK_OK(upager_unpin(p, a, PS));
	CHECK_OK(upager_stats(p, &st));
	CHECK_EQ(st.pinned_pages, 0);
	uint64_t writebacks = st.writebacks;
	for (size_t off = pinned_len; off < 16 * BUDGET_PAGES * PS; off += PS)
		a[off] = 9;
	CHECK_OK(upager_stats(p, &st));
	CHECK_CMP(st.writebacks, >, writebacks);
	/* Unpinned pages leave like the others and come back intact. */
	for (size_t i = 0; i < pinned_len; i++)
		if (a[i] != 0x5c)
			FAILF("%s: byte %zu of the once-pinned range is %#x", b->label, i, a[i]);
	close(fd);
	CHECK_OK(upager_close(p));
}

/* 17 pages through 16 frames with the first pinned, under each policy:
 * every policy must name victims other than the pinned page. */
static void pinned_under_every_policy(const struct test_backend *b)
{
	const upager_policy_ops_t *pols[32];
	size_t n = upager_policy_list(pols, 32);
	int fd = memfd_create("pin-policy", MFD_CLOEXEC);

	CHECK(fd >= 0);
	for (size_t i = 0; i < n && i < 32; i++) {
		upager_config_t cfg;
		upager_t *p;
		unsigned char *a;
		upager_stats_t st;

		test_config(&cfg, b);
		cfg.ram_bytes = 16 * PS;
		cfg.policy = pols[i]->name;
		CHECK_OK(upager_open(&cfg, &p));
		CHECK_OK(upager_map(p, 17 * PS, 0, (void **)&a));
		memset(a, 0x11, PS);
		CHECK_OK(upager_pin(p, a, PS, 1));
		for (int round = 0; round < 4; round++)
			for (size_t pg = 1; pg < 17; pg++)
				a[pg * PS] = (unsigned char)(round + pg);
		for (size_t pg = 1; pg < 17; pg++)
			if (a[pg * PS] != (unsigned char)(3 + pg))
				FAILF("%s, %s: page %zu reads %#x", b->label, pols[i]->name, pg,
				      a[pg * PS]);
		CHECK_OK(upager_stats(p, &st));
		CHECK_CMP(st.evictions, >, 0);
		CHECK_EQ(st.pinned_pages, 1);
		/* Still mapped: the kernel can write into it. */
		CHECK_EQ(pwrite(fd, a, PS, 0), PS);
		CHECK_OK(upager_unpin(p, a, PS));
		/* Back in the policy: it can leave now and come back intact. */
		for (size_t pg = 1; pg < 17; pg++)
			a[pg * PS] = 0;
		for (size_t j = 0; j < PS; j++)
			if (a[j] != 0x11)
				FAILF("%s, %s: byte %zu of the once-pinned page is %#x", b->label,
				      pols[i]->name, j, a[j]);
		CHECK_OK(upager_close(p));
	}
	close(fd);
}

/* A pin on a snapshot's view goes with upager_snapshot_free(), with and
 * without a clone that reads through the snapshot. */
static void pin_on_freed_view(const struct test_backend *b)
{
	for (int with_clone = 0; with_clone < 2; with_clone++) {
		upager_config_t cfg;
		upager_t *p;
		unsigned char *a, *view, *c = NULL;
		upager_snapshot_t *s;
		upager_stats_t st;

		test_config(&cfg, b);
		cfg.ram_bytes = 16 * PS;
		CHECK_OK(upager_open(&cfg, &p));
		CHECK_OK(upager_map(p, 4 * PS, 0, (void **)&a));
		memset(a, 0x42, 4 * PS);
		CHECK_OK(upager_snapshot(p, a, &s));
		CHECK_OK(upager_snapshot_map(s, (void **)&view));
		if (with_clone)
			CHECK_OK(upager_clone(p, view, (void **)&c));
		CHECK_OK(upager_pin(p, view, 2 * PS, 0));
		CHECK_OK(upager_stats(p, &st));
		CHECK_EQ(st.pinned_pages, 2);
		CHECK_OK(upager_snapshot_free(s));
		CHECK_OK(upager_stats(p, &st));
		CHECK_EQ(st.pinned_pages, 0);
		memset(a, 0x43, 4 * PS);
		if (c) {
			for (size_t i = 0; i < 4 * PS; i++)
				if (c[i] != 0x42)
					FAILF("%s: byte %zu of the clone is %#x", b->label, i,
					      c[i]);
			CHECK_OK(upager_unmap(p, c));
		}
		CHECK_OK(upager_close(p));
	}
}

static void all(const struct test_backend *b, void *arg)
{
	body(b, arg);
	pinned_under_every_policy(b);
	pin_on_freed_view(b);
}

int main(void)
{
	return for_each_backend(all, NULL);
}
