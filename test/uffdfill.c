// SPDX-License-Identifier: MIT
/*
 * The userfaultfd backend's fills are all or nothing (white-box, the
 * backend's install() and map() called directly). A fill of several pages
 * whose third page is already there fills two, then the kernel says
 * EAGAIN with the bytes done: the backend goes on after them (not from
 * the start, which would fail on the first page), meets the page that is
 * there (EEXIST), and takes the two back, so that filling the first page
 * alone, as the core then does, works and gives that page its contents.
 * For UFFDIO_COPY, UFFDIO_ZEROPAGE and UFFDIO_CONTINUE, in both modes.
 */
#include "testutil.h"
#include "internal.h"
#include "fault.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PS 4096u
#define PAGES 16u

static void body(const struct test_backend *b, void *arg)
{
	upager_config_t cfg;
	upager_t *p;
	unsigned char *a;
	static unsigned char buf[4 * PS] __attribute__((aligned(4096)));
	static unsigned char junk[PS];

	(void)arg;
	test_config(&cfg, b);
	cfg.ram_bytes = 64 * PS;
	CHECK_OK(upager_open(&cfg, &p));
	if (strcmp(upager_backend(p, NULL), "uffd")) {
		printf("  %s: not userfaultfd, nothing to check\n", b->label);
		upager_close(p);
		return;
	}
	CHECK_OK(upager_map(p, PAGES * PS, 0, (void **)&a));
	struct region *r = upager__region_at(p, a);
	const struct fault_backend *be = p->backend;
	CHECK(r);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)(i * 7 + 3);
	memset(junk, 0xee, sizeof(junk));

	/* UFFDIO_COPY over pages 0..3, page 2 already in the memfd. */
	CHECK_EQ(pwrite(r->memfd, junk, PS, 2 * PS), PS);
	CHECK_ERR(be->install(r, 0, 4, buf, true), -EEXIST);
	CHECK_OK(be->install(r, 0, 1, buf, true));
	CHECK_EQ(memcmp(a, buf, PS), 0);
	CHECK_OK(be->install(r, 1, 1, buf + PS, false));
	CHECK_EQ(memcmp(a + PS, buf + PS, PS), 0);

	/* UFFDIO_ZEROPAGE over pages 4..6, page 6 already there. */
	CHECK_EQ(pwrite(r->memfd, junk, PS, 6 * PS), PS);
	CHECK_ERR(be->install(r, 4, 3, NULL, true), -EEXIST);
	CHECK_OK(be->install(r, 4, 1, NULL, true));
	CHECK_OK(be->install(r, 5, 1, NULL, true));
	for (size_t i = 4 * PS; i < 6 * PS; i++)
		CHECK_EQ(a[i], 0);

	/* UFFDIO_CONTINUE over pages 8..11 of the memfd, page 10 mapped. */
	for (unsigned pg = 8; pg < 12; pg++)
		CHECK_EQ(pwrite(r->memfd, buf + (pg - 8) * PS, PS, (off_t)pg * PS), PS);
	CHECK_OK(be->map(r, 10, 1, false));
	CHECK_ERR(be->map(r, 8, 4, false), -EEXIST);
	CHECK_OK(be->map(r, 8, 1, true));
	CHECK_OK(be->map(r, 9, 1, false));
	CHECK_EQ(memcmp(a + 8 * PS, buf, 3 * PS), 0);
	/* Several pages that are all missing still go in with one call. */
	CHECK_OK(be->install(r, 12, 4, buf, false));
	CHECK_EQ(memcmp(a + 12 * PS, buf, 4 * PS), 0);

	/* The page table knows none of this: empty the memfd and the view
	 * before the region goes. */
	CHECK_OK(upager__punch(r, 0, PAGES));
	madvise(a, PAGES * PS, MADV_DONTNEED);
	CHECK_OK(upager_unmap(p, a));
	CHECK_OK(upager_close(p));
	printf("  %s: ok\n", b->label);
}

int main(void)
{
	return for_each_backend(body, NULL);
}
