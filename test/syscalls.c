// SPDX-License-Identifier: MIT
/*
 * System calls on region memory: read(2) into and write(2) from buffers
 * whose pages are evicted or were never touched. In transparent mode they
 * work as they are; in fast mode the kernel answers EFAULT for a page that
 * is not mapped (checked here, because the README states it), and works
 * after upager_touch().
 */
#include "testutil.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PS 4096u
#define BUDGET_PAGES 64u
#define REGION_PAGES (8 * BUDGET_PAGES)

static unsigned char pattern(size_t i)
{
	return (unsigned char)((i * 131) ^ (i >> 12) ^ 0x5a);
}

/* The last pages of the region are never touched but by the test of
 * read(2) into fresh pages. Before them a gap no fault-around window
 * reaches (64 pages: at most 32 are zero-filled around a first touch):
 * evict_first() faults in sequence, and with enough free frames (the
 * background evictor ahead of the test, under load) its last window
 * used to take the first fresh pages in, mapped, so that a read(2)
 * expected to fail with EFAULT read 32 KiB. */
#define FRESH_PAGES 32u
#define GAP_PAGES 64u

/* Touches enough other pages to push pages [0, n) out of their frames. */
static void evict_first(unsigned char *a, size_t n_pages)
{
	for (size_t pg = n_pages; pg < REGION_PAGES - FRESH_PAGES - GAP_PAGES; pg++)
		a[pg * PS] = 1;
}

static int tmpfile_fd(void)
{
	int fd = memfd_create("upager-test-file", MFD_CLOEXEC);
	CHECK(fd >= 0);
	return fd;
}

static void body(const struct test_backend *b, void *arg)
{
	upager_config_t cfg;
	upager_t *p;
	unsigned char *a;
	upager_stats_t st;
	bool fast;             /* system calls need pins (fast mode, sigsegv backend) */
	size_t span = 16 * PS; /* the buffer the system calls use */
	unsigned char *expect = malloc(span);

	test_config(&cfg, b);
	cfg.ram_bytes = BUDGET_PAGES * PS;
	CHECK_OK(upager_open(&cfg, &p));
	CHECK_OK(upager_map(p, REGION_PAGES * PS, 0, (void **)&a));
	fast = needs_pins(p);

	/* write(2) from evicted pages. */
	for (size_t i = 0; i < span; i++)
		a[i] = expect[i] = pattern(i);
	evict_first(a, span / PS);
	CHECK_OK(upager_stats(p, &st));
	CHECK_CMP(st.writebacks, >=, span / PS);
	int fd = tmpfile_fd();
	if (fast) {
		/* Without touch the kernel cannot fault the evicted pages
		 * in: the write stops short at the first one (a page the
		 * policy kept resident may come before it). */
		errno = 0;
		ssize_t got = write(fd, a, span);
		CHECK(got == -1 ? errno == EFAULT : (size_t)got < span);
		CHECK_EQ(lseek(fd, 0, SEEK_SET), 0);
		CHECK_OK(upager_pin(p, a, span, 0));
	}
	CHECK_EQ(write(fd, a, span), span);
	if (fast)
		CHECK_OK(upager_unpin(p, a, span));
	unsigned char *back = malloc(span);
	CHECK_EQ(pread(fd, back, span, 0), span);
	CHECK(memcmp(back, expect, span) == 0);

	/* read(2) into pages never touched (the end of the region). */
	unsigned char *fresh = a + (REGION_PAGES - FRESH_PAGES) * PS;
	if (fast) {
		errno = 0;
		CHECK_EQ(pread(fd, fresh, span, 0), -1);
		CHECK_EQ(errno, EFAULT);
		CHECK_OK(upager_pin(p, fresh, span, 1));
	}
	CHECK_EQ(pread(fd, fresh, span, 0), span);
	if (fast)
		CHECK_OK(upager_unpin(p, fresh, span));
	CHECK(memcmp(fresh, expect, span) == 0);

	/* read(2) into evicted pages, then read them back after another
	 * eviction: the data the kernel wrote must have been marked dirty. */
	for (size_t i = 0; i < span; i++)
		expect[i] = (unsigned char)~pattern(i);
	CHECK_EQ(pwrite(fd, expect, span, 0), span);
	evict_first(a, span / PS);
	if (fast)
		CHECK_OK(upager_pin(p, a, span, 1));
	CHECK_EQ(pread(fd, a, span, 0), span);
	if (fast)
		CHECK_OK(upager_unpin(p, a, span));
	evict_first(a, span / PS);
	CHECK(memcmp(a, expect, span) == 0);
	/* Unaligned, page-crossing syscall buffer. */
	unsigned char *odd = a + 3 * PS - 100;
	evict_first(a, 16);
	if (fast)
		CHECK_OK(upager_pin(p, odd, 300, 0));
	CHECK_EQ(pwrite(fd, odd, 300, 0), 300);
	if (fast)
		CHECK_OK(upager_unpin(p, odd, 300));

	CHECK_EQ(pread(fd, back, 300, 0), 300);
	for (int i = 0; i < 300; i++)
		if (back[i] != expect[3 * PS - 100 + i])
			FAILF("%s: byte %d written from a page-crossing buffer is %#x, region has %#x, expected %#x",
			      b->label, i, back[i], odd[i], expect[3 * PS - 100 + i]);

	/* Touch (no pin) and retry on EFAULT or a short write: the
	 * documented fallback. Between the touch and the call the evictor
	 * may take a page back, or its clock hand may unmap one to sample
	 * it; under load that can hit the first page of a 16-page range on
	 * every try (seen: 100 tries without progress). So after a try
	 * without progress the next ones touch and write one page only,
	 * which leaves the evictor a window of one page just faulted in. */
	evict_first(a, 16);
	size_t done = 0, chunk = span;
	for (int tries = 0; tries < 1000 && done < span; tries++) {
		size_t len = chunk < span - done ? chunk : span - done;
		if (fast)
			CHECK_OK(upager_touch(p, a + done, len, 0));
		ssize_t w = pwrite(fd, a + done, len, (off_t)done);
		CHECK(w >= 0 || errno == EFAULT);
		if (w > 0)
			done += (size_t)w;
		else
			chunk = PS;
	}
	CHECK_EQ(done, span);
	CHECK_EQ(pread(fd, back, span, 0), span);
	CHECK(memcmp(back, expect, span) == 0);

	close(fd);
	free(back);
	free(expect);
	CHECK_OK(upager_close(p));
}

int main(void)
{
	return for_each_backend(body, NULL);
}
