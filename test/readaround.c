// SPDX-License-Identifier: MIT
/*
 * Read-around (prefetch.c): a miss outside a sequential run also reads
 * the swapped pages next to it when the program has been using them. On
 * every backend, with a region eight times the budget:
 *
 *   - misses in pairs, a page then the one before it (an object that
 *     spans two pages, met from its end): the pager starts reading
 *     around, the second page of most pairs is then a hit, not a miss,
 *     and the pairs take at least a fifth fewer misses than the same
 *     pairs in a region advised RANDOM (which never reads around);
 *   - uniform random misses read nothing around, and once they follow
 *     the pairs, the pager soon stops reading around;
 *   - every page reads back what was last written to it, also the pages
 *     that were read around, written, evicted and read again.
 */
#include "testutil.h"

#include <string.h>

#define PS 4096u
#define FRAMES 128u
#define PAGES (8 * FRAMES)
#define PAIRS 600u
#define RANDOM_MISSES 600u

static unsigned char version[PAGES];

static unsigned char value(size_t pg, size_t i)
{
	return (unsigned char)(pg * 7 + i * 13 + 1 + version[pg] * 31);
}

static void write_page(unsigned char *a, size_t pg)
{
	version[pg]++;
	for (size_t i = 0; i < PS; i += 512)
		a[pg * PS + i] = value(pg, i);
}

static void check_page(const char *label, const unsigned char *a, size_t pg)
{
	for (size_t i = 0; i < PS; i += 512)
		if (a[pg * PS + i] != value(pg, i))
			FAILF("%s: page %zu byte %zu: %u, expected %u", label, pg, i,
			      a[pg * PS + i], value(pg, i));
}

static uint64_t lcg = 12345;

/* A page from 1 to PAGES - 1, far from sequential. */
static size_t random_page(void)
{
	lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
	return 1 + (size_t)((lcg >> 33) % (PAGES - 1));
}

static upager_t *open_pager(const struct test_backend *b, unsigned char **a)
{
	upager_t *p = tu_prefetch_pager(b, FRAMES, NULL, PAGES, a);

	memset(version, 0, sizeof(version));
	for (size_t pg = 0; pg < PAGES; pg++)
		write_page(*a, pg);
	return p;
}

/* Pairs of misses, each a page then the one before it; the second is
 * written after it is checked. Returns the major faults they took. */
static uint64_t pairs(const char *label, upager_t *p, unsigned char *a, upager_stats_t *after)
{
	upager_stats_t before;

	CHECK_OK(upager_stats(p, &before));
	for (unsigned n = 0; n < PAIRS; n++) {
		size_t pg = random_page();

		check_page(label, a, pg);
		check_page(label, a, pg - 1);
		write_page(a, pg - 1);
	}
	CHECK_OK(upager_stats(p, after));
	return after->faults_major - before.faults_major;
}

static void random_misses(const char *label, unsigned char *a)
{
	for (unsigned n = 0; n < RANDOM_MISSES; n++) {
		size_t pg = random_page();

		check_page(label, a, pg);
		if (n % 2)
			write_page(a, pg);
	}
}

static void check_all(const char *label, const unsigned char *a)
{
	for (size_t pg = 0; pg < PAGES; pg++)
		check_page(label, a, pg);
}

static void body(const struct test_backend *b, void *arg)
{
	(void)arg;
	unsigned char *a;
	upager_stats_t s, s2;
	upager_t *p;

	/* Advised RANDOM: the same pairs, nothing read around. */
	p = open_pager(b, &a);
	CHECK_OK(upager_advise(p, a, PAGES * PS, UPAGER_ADVICE_RANDOM));
	lcg = 12345;
	uint64_t random_majors = pairs(b->label, p, a, &s);
	CHECK_EQ(s.readaround_pages, 0);
	check_all(b->label, a);
	CHECK_OK(upager_close(p));

	p = open_pager(b, &a);
	lcg = 12345;
	uint64_t around_majors = pairs(b->label, p, a, &s);
	printf("%s: %u pairs: %llu misses advised RANDOM, %llu with read-around "
	       "(%llu pages read around, %llu of %llu watched used)\n",
	       b->label, PAIRS, (unsigned long long)random_majors,
	       (unsigned long long)around_majors, (unsigned long long)s.readaround_pages,
	       (unsigned long long)s.readaround_hits, (unsigned long long)s.readaround_watched);
	CHECK(s.readaround_pages > 0);
	CHECK(s.readaround_watched > 0 && s.readaround_watched <= s.readaround_pages);
	CHECK(s.readaround_hits * 3 > s.readaround_watched);
	CHECK(around_majors * 5 < random_majors * 4);

	/* Random misses after the pairs: the hits stop, so does reading. */
	random_misses(b->label, a);
	CHECK_OK(upager_stats(p, &s));
	random_misses(b->label, a);
	CHECK_OK(upager_stats(p, &s2));
	printf("%s: random misses after the pairs: %llu, then %llu pages read around\n", b->label,
	       (unsigned long long)s.readaround_pages,
	       (unsigned long long)(s2.readaround_pages - s.readaround_pages));
	CHECK_EQ(s2.readaround_pages, s.readaround_pages);
	check_all(b->label, a);
	CHECK_OK(upager_close(p));

	/* Random misses alone never start it. */
	p = open_pager(b, &a);
	random_misses(b->label, a);
	random_misses(b->label, a);
	CHECK_OK(upager_stats(p, &s));
	CHECK_EQ(s.readaround_pages, 0);
	check_all(b->label, a);
	CHECK_OK(upager_close(p));
}

int main(void)
{
	return for_each_backend(body, NULL);
}
