// SPDX-License-Identifier: MIT
/*
 * Pins: pinned pages stay resident and mapped through heavy eviction
 * pressure (checked with system calls, which fail with EFAULT in fast mode
 * on any page that is not mapped), pins nest, at most half the budget can
 * be pinned, and unpinned pages are evicted again.
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

int main(void)
{
	return for_each_backend(body, NULL);
}
