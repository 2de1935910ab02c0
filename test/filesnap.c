// SPDX-License-Identifier: MIT
/*
 * Snapshots and clones of file regions, shared and private, on every
 * backend and mode, with a file 4x the budget and changes to more pages
 * than the budget between each step (so that the region's, the views'
 * and the clones' pages are evicted and come back from the file or swap):
 * - a snapshot's view and upager_snapshot_read() give the bytes the region
 *   held when it was taken, also after the region is unmapped;
 * - a clone of the region or of a snapshot starts as its source; its
 *   writes go to swap, never to the file;
 * - upager_snapshot_restore() gives the region the snapshot's bytes, and
 *   (shared) they reach the file at upager_sync() and upager_unmap();
 *   a page of zeros comes back as zeros, not as the file's bytes;
 * - a private region's file never changes; upager_close() with snapshots
 *   and clones alive loses nothing of a shared region;
 * - a snapshot that cannot get a descriptor for the file fails clearly;
 *   a page a snapshot cannot read from the file is an error for
 *   upager_snapshot_read() and readable once the disk is well again
 *   (injected, white-box).
 */
#include "testutil.h"
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define PS 4096u
#define BUDGET_PAGES 32u
#define FILE_PAGES (4 * BUDGET_PAGES)
#define BYTES ((size_t)FILE_PAGES * PS)

static const struct test_backend *current;
static uint64_t rng;


static int make_file(unsigned char *shadow)
{
	return tu_data_file("filesnap-test", shadow, BYTES, &rng, NULL);
}

/* what: the mode or case, and the step of it being checked. */
static void check_file(int fd, const unsigned char *want, const char *what, const char *step)
{
	char label[160];

	snprintf(label, sizeof(label), "%s: %s", current->label, what);
	tu_expect_file(fd, want, BYTES, label, step);
}

/* Every byte of a region or view, page by page in a random order (so
 * that the reads evict each other), against want. */
static void check_mem(const unsigned char *a, const unsigned char *want, const char *what,
		      const char *step)
{
	unsigned order[FILE_PAGES];

	for (unsigned i = 0; i < FILE_PAGES; i++)
		order[i] = i;
	for (unsigned i = FILE_PAGES - 1; i > 0; i--) {
		unsigned j = (unsigned)(rng_next(&rng) % (i + 1)), t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	for (unsigned k = 0; k < FILE_PAGES; k++) {
		size_t off = (size_t)order[k] * PS;
		if (memcmp(a + off, want + off, PS) == 0)
			continue;
		for (size_t i = off; i < off + PS; i++)
			if (a[i] != want[i])
				FAILF("%s: %s: %s: byte %zu (page %zu) reads %#x, expected %#x",
				      current->label, what, step, i, i / PS, a[i], want[i]);
	}
}

/* Random bytes at random offsets of a (and of its shadow), touching
 * about twice the budget's pages, and two whole pages. */
static void scribble(unsigned char *a, unsigned char *shadow)
{
	for (unsigned k = 0; k < 2 * BUDGET_PAGES * 3; k++) {
		size_t len = 1 + rng_next(&rng) % 64;
		size_t off = rng_next(&rng) % (BYTES - len);
		for (size_t i = 0; i < len; i++)
			a[off + i] = shadow[off + i] = (unsigned char)rng_next(&rng);
	}
	for (int k = 0; k < 2; k++) {
		size_t pg = rng_next(&rng) % FILE_PAGES;
		unsigned char v = (unsigned char)rng_next(&rng);
		memset(a + pg * PS, v, PS);
		memset(shadow + pg * PS, v, PS);
	}
}

/* O_DIRECT where asked, unless UPAGER_DIRECT_IO says: on a busy shared
 * disk each of the thousands of page I/Os of a pass costs milliseconds
 * with it, so the passes use the page cache and the error checks (which
 * read through a snapshot to the file) O_DIRECT. */
static upager_t *open_pager(bool direct)
{
	upager_config_t cfg;
	upager_t *p;

	test_config(&cfg, current);
	cfg.ram_bytes = BUDGET_PAGES * PS;
	if (!getenv("UPAGER_DIRECT_IO"))
		cfg.direct_io = direct;
	CHECK_OK(upager_open(&cfg, &p));
	return p;
}

struct shadows {
	unsigned char *orig, *cur, *s1, *c1, *c2;
};

static void one_mode(int mode, bool direct, struct shadows *sh)
{
	bool shared = mode == UPAGER_MAP_SHARED;
	const char *m = shared ? "shared" : "private";
	unsigned char *a, *view, *c1, *c2;
	upager_snapshot_t *s1;
	upager_stats_t st;

	int fd = make_file(sh->orig);
	memcpy(sh->cur, sh->orig, BYTES);
	upager_t *p = open_pager(direct);
	CHECK_OK(upager_map_file(p, fd, 0, BYTES, mode, (void **)&a));
	scribble(a, sh->cur);

	/* S1: what the region holds now; then more than the budget changes. */
	CHECK_OK(upager_snapshot(p, a, &s1));
	CHECK_OK(upager_snapshot_map(s1, (void **)&view));
	memcpy(sh->s1, sh->cur, BYTES);
	scribble(a, sh->cur);
	/* DONTNEED: shared pages come back from the file as written, private
	 * ones as the file has them. */
	CHECK_OK(upager_advise(p, a + 10 * PS, 6 * PS, UPAGER_ADVICE_DONTNEED));
	if (!shared)
		memcpy(sh->cur + 10 * PS, sh->orig + 10 * PS, 6 * PS);
	check_mem(view, sh->s1, m, "snapshot view");
	check_mem(a, sh->cur, m, "region after the snapshot");
	unsigned char buf[3 * PS];
	for (int k = 0; k < 8; k++) {
		size_t len = 1 + rng_next(&rng) % sizeof(buf);
		size_t off = rng_next(&rng) % (BYTES - len);
		CHECK_OK(upager_snapshot_read(s1, off, buf, len));
		if (memcmp(buf, sh->s1 + off, len))
			FAILF("%s: %s: upager_snapshot_read(%zu, %zu) differs", current->label, m,
			      off, len);
	}

	/* C1, a clone of S1, and C2, a clone of the region: copies whose
	 * writes are theirs alone. */
	CHECK_OK(upager_clone(p, view, (void **)&c1));
	memcpy(sh->c1, sh->s1, BYTES);
	CHECK_OK(upager_clone(p, a, (void **)&c2));
	memcpy(sh->c2, sh->cur, BYTES);
	scribble(c1, sh->c1);
	scribble(a, sh->cur);
	scribble(c2, sh->c2);
	check_mem(c1, sh->c1, m, "clone of the snapshot");
	check_mem(c2, sh->c2, m, "clone of the region");
	check_mem(a, sh->cur, m, "region beside its clones");
	check_mem(view, sh->s1, m, "snapshot view beside the clones");
	CHECK_OK(upager_sync(p, a, BYTES));
	check_file(fd, shared ? sh->cur : sh->orig, m, "file after sync");

	/* Restore: the region holds S1's bytes, and so does the file once
	 * synced (shared). */
	CHECK_OK(upager_snapshot_restore(s1));
	memcpy(sh->cur, sh->s1, BYTES);
	check_mem(a, sh->cur, m, "region after restore");
	check_mem(c2, sh->c2, m, "clone of the region after restore");
	CHECK_OK(upager_sync(p, a, BYTES));
	check_file(fd, shared ? sh->cur : sh->orig, m, "file after restore and sync");
	/* Changes after the restore, left for unmap to write. */
	scribble(a, sh->cur);
	CHECK_OK(upager_unmap(p, a));
	check_file(fd, shared ? sh->cur : sh->orig, m, "file after unmap");

	/* The region is gone: what the snapshot and clones borrowed from it
	 * now comes from what it handed over, or from the file. */
	check_mem(view, sh->s1, m, "snapshot view after unmap");
	scribble(c2, sh->c2);
	check_mem(c2, sh->c2, m, "clone of the region after unmap");
	CHECK_OK(upager_snapshot_free(s1));
	check_mem(c1, sh->c1, m, "clone of the freed snapshot");
	CHECK_OK(upager_stats(p, &st));
	CHECK_CMP(st.evictions, >, 4 * FILE_PAGES);
	CHECK_CMP(st.pages_copied, >, 0);
	CHECK_OK(upager_unmap(p, c1));
	CHECK_OK(upager_unmap(p, c2));
	check_file(fd, shared ? sh->cur : sh->orig, m, "file after the clones");

	/* upager_close() with a snapshot and a clone alive loses nothing. */
	if (shared) /* what the file holds now, and the region will */
		memcpy(sh->orig, sh->cur, BYTES);
	else
		memcpy(sh->cur, sh->orig, BYTES);
	CHECK_OK(upager_map_file(p, fd, 0, BYTES, mode, (void **)&a));
	CHECK_OK(upager_snapshot(p, a, &s1));
	CHECK_OK(upager_clone(p, a, (void **)&c1));
	scribble(a, sh->cur);
	scribble(c1, sh->c2);
	CHECK_OK(upager_close(p));
	check_file(fd, shared ? sh->cur : sh->orig, m, "file after close");
	close(fd);
}

/* A snapshot that cannot have a descriptor of its own fails, clearly;
 * a file page it cannot read fails upager_snapshot_read() and reads
 * once the error is gone. */
static void errors(struct shadows *sh)
{
	unsigned char *a, buf[PS];
	upager_snapshot_t *s;
	struct rlimit old, low;

	int fd = make_file(sh->orig);
	upager_t *p = open_pager(true);
	CHECK_OK(upager_map_file(p, fd, 0, BYTES, UPAGER_MAP_SHARED, (void **)&a));
	a[5] = 1;
	sh->orig[5] = 1;

	int lowest = dup(fd);
	CHECK(lowest >= 0);
	close(lowest);
	CHECK_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = (rlim_t)lowest;
	CHECK_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
	int err = upager_snapshot(p, a, &s);
	CHECK_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
	CHECK_ERR(err, -EMFILE);
	CHECK(strstr(upager_last_error(), "descriptor of its own"));
	void *clone;
	CHECK_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
	err = upager_clone(p, a, &clone);
	CHECK_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
	CHECK_ERR(err, -EMFILE);

	CHECK_OK(upager_snapshot(p, a, &s));
	p->io.fault_inject_ops = 1u << IO_READ;
	p->io.fault_inject = -EIO;
	CHECK_ERR(upager_snapshot_read(s, 7 * PS, buf, PS), -EIO);
	p->io.fault_inject = 0;
	CHECK_OK(upager_snapshot_read(s, 7 * PS, buf, PS));
	CHECK_EQ(memcmp(buf, sh->orig + 7 * PS, PS), 0);
	CHECK_OK(upager_snapshot_read(s, 0, buf, PS));
	CHECK_EQ(memcmp(buf, sh->orig, PS), 0);
	CHECK_OK(upager_snapshot_free(s));
	CHECK_OK(upager_close(p));
	check_file(fd, sh->orig, "errors", "the file");
	close(fd);
}

/* A page the program filled with zeros, snapshotted, then changed: the
 * snapshot's copy, evicted, is a zero page, and a restore gives the
 * region zeros, not the file's bytes (a private region once read its
 * file there). */
static void zero_page_restore(int mode, struct shadows *sh)
{
	bool shared = mode == UPAGER_MAP_SHARED;
	const char *m = shared ? "shared, zero page" : "private, zero page";
	unsigned char *a, *view;
	upager_snapshot_t *s;

	int fd = make_file(sh->orig);
	memcpy(sh->cur, sh->orig, BYTES);
	upager_t *p = open_pager(false);
	CHECK_OK(upager_map_file(p, fd, 0, BYTES, mode, (void **)&a));
	memset(a + 3 * PS, 0, PS);
	memset(sh->cur + 3 * PS, 0, PS);
	CHECK_OK(upager_snapshot(p, a, &s));
	CHECK_OK(upager_snapshot_map(s, (void **)&view));
	memcpy(sh->s1, sh->cur, BYTES);
	memset(a + 3 * PS, 0xab, PS); /* the snapshot gets its copy */
	memset(sh->cur + 3 * PS, 0xab, PS);
	/* Every page, twice: the snapshot's copy of page 3 is evicted. */
	check_mem(a, sh->cur, m, "region after the change");
	check_mem(a, sh->cur, m, "region after the change");
	check_mem(view, sh->s1, m, "snapshot view");
	CHECK_OK(upager_snapshot_restore(s));
	memcpy(sh->cur, sh->s1, BYTES);
	check_mem(a, sh->cur, m, "region after restore");
	CHECK_OK(upager_sync(p, a, BYTES));
	check_file(fd, shared ? sh->cur : sh->orig, m, "file after restore and sync");
	CHECK_OK(upager_snapshot_free(s));
	CHECK_OK(upager_close(p));
	close(fd);
}

static void body(const struct test_backend *b, void *arg)
{
	struct shadows *sh = arg;

	current = b;
	one_mode(UPAGER_MAP_SHARED, false, sh);
	one_mode(UPAGER_MAP_PRIVATE, false, sh);
	zero_page_restore(UPAGER_MAP_SHARED, sh);
	zero_page_restore(UPAGER_MAP_PRIVATE, sh);
	errors(sh);
	printf("  %s: ok\n", b->label);
}

int main(void)
{
	struct shadows sh;

	rng = tu_rng(0xf11e5aa9);
	sh.orig = malloc(BYTES);
	sh.cur = malloc(BYTES);
	sh.s1 = malloc(BYTES);
	sh.c1 = malloc(BYTES);
	sh.c2 = malloc(BYTES);
	CHECK(sh.orig && sh.cur && sh.s1 && sh.c1 && sh.c2);
	int ret = for_each_backend(body, &sh);
	free(sh.orig);
	free(sh.cur);
	free(sh.s1);
	free(sh.c1);
	free(sh.c2);
	return ret;
}
