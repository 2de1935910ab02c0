// SPDX-License-Identifier: MIT
/*
 * What a forked child of upager-run builds its copy with (white-box):
 * upager__map_at() puts a region over an address range reserved with a
 * PROT_NONE placeholder, and upager__load_pages() makes pages of it
 * resident and dirty from a buffer, without a fault, several times the
 * budget: every page reads back as loaded after the budget evicted most
 * of them, pages loaded as zeros stay untouched, and a page already in
 * use, a range that is not whole pages or not in a region, and a second
 * region over the first are refused.
 */
#include "testutil.h"
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#define PS 4096u
#define PAGES 256u  /* 1 MiB ... */
#define BUDGET 32u  /* ... under 128 KiB */
#define CHUNK 16u   /* pages per load, as the child gathers pieces */

static unsigned char pattern(unsigned pg, unsigned i)
{
	return (unsigned char)(pg * 7 + i / 512 + 1);
}

static void body(const struct test_backend *b, void *arg)
{
	upager_config_t cfg;
	upager_t *p;
	upager_stats_t st;
	static unsigned char buf[CHUNK * PS];

	(void)arg;
	test_config(&cfg, b);
	cfg.ram_bytes = BUDGET * PS;
	CHECK_OK(upager_open(&cfg, &p));
	if (strcmp(upager_backend(p, NULL), "uffd")) {
		printf("  %s: not userfaultfd, nothing to check\n", b->label);
		upager_close(p);
		return;
	}
	unsigned char *a = mmap(NULL, PAGES * PS, PROT_NONE,
				MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	CHECK(a != MAP_FAILED);
	CHECK_ERR(upager__map_at(p, a + 1, PAGES * PS - PS), -EINVAL);
	CHECK_OK(upager__map_at(p, a, PAGES * PS));

	/* Every fifth page is left zero in the buffer: it stays untouched. */
	for (unsigned first = 0; first < PAGES; first += CHUNK) {
		for (unsigned k = 0; k < CHUNK; k++) {
			unsigned pg = first + k;
			for (unsigned i = 0; i < PS; i++)
				buf[k * PS + i] = pg % 5 == 0 ? 0 : pattern(pg, i);
		}
		CHECK_OK(upager__load_pages(p, a + first * PS, buf, CHUNK * PS));
	}
	st.size = sizeof(st);
	CHECK_OK(upager_stats(p, &st));
	CHECK_CMP(st.resident_pages, <=, BUDGET);
	CHECK_CMP(st.writebacks, >=, PAGES * 4 / 5 - BUDGET);

	/* Loaded over: a page in use (resident or in swap) is refused. */
	memset(buf, 0xab, PS);
	CHECK_ERR(upager__load_pages(p, a + PS, buf, PS), -EEXIST);
	CHECK_ERR(upager__load_pages(p, a + (PAGES - 2) * PS, buf, PS), -EEXIST);
	CHECK_ERR(upager__load_pages(p, a + 10, buf, PS), -EINVAL);
	CHECK_ERR(upager__load_pages(p, a + PAGES * PS, buf, PS), UPAGER_ENOREGION);
	/* A second region over the first one's pages is refused before
	 * anything is mapped there. */
	CHECK_ERR(upager__map_at(p, a + 3 * PS, PS), -EEXIST);

	for (unsigned pg = 0; pg < PAGES; pg++)
		for (unsigned i = 0; i < PS; i += 512)
			if (a[pg * PS + i] != (pg % 5 == 0 ? 0 : pattern(pg, i)))
				FAILF("page %u byte %u: %u", pg, i, a[pg * PS + i]);
	CHECK_OK(upager_unmap(p, a));
	CHECK_OK(upager_close(p));
	printf("  %s: %u pages loaded under a %u-page budget, read back: ok\n", b->label, PAGES,
	       BUDGET);
}

int main(void)
{
	return for_each_backend(body, NULL);
}
