// SPDX-License-Identifier: MIT
/*
 * Readahead, fault-around and upager_advise(), on every backend, with a
 * region eight times the budget so that everything goes through swap:
 *
 *   - a sequential write pass zero-fills pages around the faults, a
 *     sequential read pass reads pages ahead; both take far fewer faults
 *     than pages, and every byte reads back;
 *   - RANDOM keeps the window shut, SEQUENTIAL opens it at once;
 *   - WILLNEED reads a swapped range in: reading it then takes no major
 *     fault; DONTNEED drops a range: it reads as zero, its swap slots and
 *     frames come back, the pages around it are intact;
 *   - a window never crosses into pages of another protection, even after
 *     the protection was changed back;
 *   - errors: unknown advice, an address outside any region, DONTNEED on a
 *     pinned page.
 */
#include "testutil.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#define PS 4096u
#define FRAMES 128u
#define PAGES (8 * FRAMES)

static unsigned char value(size_t pg, size_t i)
{
	return (unsigned char)(pg * 7 + i * 13 + 1);
}

static void write_pass(unsigned char *a, size_t from, size_t to)
{
	for (size_t pg = from; pg < to; pg++)
		for (size_t i = 0; i < PS; i += 512)
			a[pg * PS + i] = value(pg, i);
}

static void check_pass(const char *label, const unsigned char *a, size_t from, size_t to)
{
	for (size_t pg = from; pg < to; pg++)
		for (size_t i = 0; i < PS; i += 512)
			if (a[pg * PS + i] != value(pg, i))
				FAILF("%s: page %zu byte %zu: %u, expected %u", label, pg, i,
				      a[pg * PS + i], value(pg, i));
}

static upager_t *open_policy(const struct test_backend *b, unsigned char **a, const char *policy)
{
	return tu_prefetch_pager(b, FRAMES, policy, PAGES, a);
}

static upager_t *open_pager(const struct test_backend *b, unsigned char **a)
{
	return open_policy(b, a, NULL);
}

static void sequential(const struct test_backend *b)
{
	unsigned char *a;
	upager_t *p = open_pager(b, &a);
	upager_stats_t w, r;

	write_pass(a, 0, PAGES);
	CHECK_OK(upager_stats(p, &w));
	check_pass(b->label, a, 0, PAGES);
	CHECK_OK(upager_stats(p, &r));
	printf("  %s: write: %llu zero faults, %llu around; read: %llu major, %llu ahead\n",
	       b->label, (unsigned long long)w.faults_zero, (unsigned long long)w.faultaround_pages,
	       (unsigned long long)(r.faults_major - w.faults_major),
	       (unsigned long long)(r.readahead_pages - w.readahead_pages));
	CHECK_CMP(w.faults_zero + w.faultaround_pages, >=,
		  PAGES); /* + zero pages evicted unwritten */
	CHECK_CMP(w.faults_zero, <, PAGES / 4);
	CHECK_CMP(r.readahead_pages - w.readahead_pages, >, 0);
	CHECK_CMP(r.faults_major - w.faults_major, <, PAGES / 4);
	CHECK_OK(upager_close(p));
}

static void advice_random_sequential(const struct test_backend *b)
{
	unsigned char *a;
	upager_t *p = open_pager(b, &a);
	upager_stats_t s0, s1, s2;

	CHECK_OK(upager_advise(p, a, PAGES * PS, UPAGER_ADVICE_RANDOM));
	write_pass(a, 0, PAGES);
	check_pass(b->label, a, 0, PAGES);
	CHECK_OK(upager_stats(p, &s0));
	CHECK_EQ(s0.faultaround_pages, 0);
	CHECK_EQ(s0.readahead_pages, 0);
	CHECK_CMP(s0.faults_zero, >=, PAGES); /* zero pages evicted unwritten come back */

	/* SEQUENTIAL: the largest window from the first fault on. Pages
	 * 0..FRAMES are in swap now; read 64 of them. */
	CHECK_OK(upager_advise(p, a, PAGES * PS, UPAGER_ADVICE_SEQUENTIAL));
	check_pass(b->label, a, 0, 64);
	tu_stats_when_still(p, &s1);
	CHECK_CMP(s1.faults_major - s0.faults_major, <=, 8);
	CHECK_CMP(s1.readahead_pages - s0.readahead_pages, >=, 56);

	/* NORMAL again: a random page brings only itself. */
	CHECK_OK(upager_advise(p, a, PS, UPAGER_ADVICE_NORMAL));
	check_pass(b->label, a, 300, 301);
	CHECK_OK(upager_stats(p, &s2));
	CHECK_EQ(s2.faults_major - s1.faults_major, 1);
	CHECK_EQ(s2.readahead_pages, s1.readahead_pages);
	CHECK_OK(upager_close(p));
}

static void willneed_dontneed(const struct test_backend *b)
{
	unsigned char *a;
	/* FIFO: the pages read in are the newest, the last to be evicted. */
	upager_t *p = open_policy(b, &a, "fifo");
	upager_stats_t s0, s1, s2, s3;
	const size_t wn = 200, wn_len = 16; /* in swap after the pass */
	const size_t dn = 500, dn_len = 40;

	write_pass(a, 0, PAGES);
	CHECK_OK(upager_stats(p, &s0));
	CHECK_OK(upager_advise(p, a + wn * PS, wn_len * PS, UPAGER_ADVICE_WILLNEED));
	CHECK_OK(upager_stats(p, &s1));
	CHECK_EQ(s1.readahead_pages - s0.readahead_pages, wn_len);
	CHECK_EQ(s1.faults_major, s0.faults_major);
	check_pass(b->label, a, wn, wn + wn_len);
	tu_stats_when_still(p, &s2);
	CHECK_EQ(s2.faults_major, s1.faults_major); /* read in and mapped */

	/* DONTNEED over pages in swap, and over ten made resident just now. */
	CHECK_OK(upager_advise(p, a + dn * PS, dn_len * PS, UPAGER_ADVICE_DONTNEED));
	tu_stats_when_still(p, &s3);
	/* The evictor may write other pages out meanwhile: each write
	 * takes a slot. */
	CHECK_CMP(s3.swap_slots_used, <=,
		  s2.swap_slots_used - dn_len + (s3.writebacks - s2.writebacks));
	check_pass(b->label, a, PAGES - 10, PAGES);
	CHECK_OK(upager_stats(p, &s2));
	CHECK_OK(upager_advise(p, a + (PAGES - 10) * PS, 10 * PS, UPAGER_ADVICE_DONTNEED));
	CHECK_OK(upager_stats(p, &s3));
	CHECK_CMP(s3.resident_pages, <=, s2.resident_pages - 10);
	for (size_t pg = dn; pg < dn + dn_len; pg++)
		for (size_t i = 0; i < PS; i++)
			if (a[pg * PS + i])
				FAILF("%s: page %zu byte %zu not zero after DONTNEED", b->label, pg,
				      i);
	for (size_t pg = PAGES - 10; pg < PAGES; pg++)
		CHECK_EQ(a[pg * PS], 0);
	check_pass(b->label, a, 0, dn);
	check_pass(b->label, a, dn + dn_len, PAGES - 10);
	/* And they can be written again. */
	write_pass(a, dn, dn + dn_len);
	check_pass(b->label, a, dn, dn + dn_len);
	CHECK_OK(upager_close(p));
}

static void protection_boundary(const struct test_backend *b)
{
	unsigned char *a;
	upager_t *p = open_pager(b, &a);

	/* Split the view at 100 and 102, then give the pages back. */
	CHECK_OK(upager_protect(p, a + 100 * PS, 2 * PS, UPAGER_PROT_READ));
	CHECK_OK(upager_protect(p, a + 300 * PS, 2 * PS, UPAGER_PROT_NONE));
	CHECK_OK(upager_protect(p, a + 300 * PS, 2 * PS, UPAGER_PROT_READ | UPAGER_PROT_WRITE));
	write_pass(a, 0, 100);
	write_pass(a, 102, PAGES);
	CHECK_OK(upager_protect(p, a + 100 * PS, 2 * PS, UPAGER_PROT_READ | UPAGER_PROT_WRITE));
	write_pass(a, 100, 102);
	check_pass(b->label, a, 0, PAGES);
	check_pass(b->label, a, 0, PAGES);
	CHECK_OK(upager_close(p));
}

static void errors(const struct test_backend *b)
{
	unsigned char *a;
	upager_t *p = open_pager(b, &a);
	static char outside[PS];

	CHECK_ERR(upager_advise(p, a, PS, 99), -EINVAL);
	CHECK_ERR(upager_advise(p, a, PS, -1), -EINVAL);
	CHECK_ERR(upager_advise(p, outside, PS, UPAGER_ADVICE_WILLNEED), UPAGER_ENOREGION);
	CHECK_ERR(upager_advise(p, a + PAGES * PS - PS, 2 * PS, UPAGER_ADVICE_DONTNEED),
		  UPAGER_ENOREGION);
	CHECK_OK(upager_advise(p, a, 0, UPAGER_ADVICE_DONTNEED));

	memset(a, 0x5a, 3 * PS);
	CHECK_OK(upager_pin(p, a + PS, PS, 1));
	CHECK_ERR(upager_advise(p, a, 3 * PS, UPAGER_ADVICE_DONTNEED), -EBUSY);
	CHECK(strstr(upager_last_error(), "pinned"));
	CHECK_EQ(a[0], 0);
	CHECK_EQ(a[PS], 0x5a); /* kept */
	CHECK_EQ(a[2 * PS], 0);
	CHECK_OK(upager_unpin(p, a + PS, PS));
	CHECK_OK(upager_close(p));
}

static void body(const struct test_backend *b, void *arg)
{
	(void)arg;
	sequential(b);
	advice_random_sequential(b);
	willneed_dontneed(b);
	protection_boundary(b);
	errors(b);
}

int main(void)
{
	return for_each_backend(body, NULL);
}
