// SPDX-License-Identifier: MIT
/*
 * Shadow-model integrity: random reads and writes of random lengths over a
 * region four times the budget, every byte compared with a copy kept
 * outside the region; 1 and 2 threads, 4 KiB and 64 KiB pages, every
 * backend and fault mode.
 *
 * With two threads the region is cut into stripes of a few pages dealt out
 * alternately, so the threads fault on neighbouring pages (shared page-
 * table leaves, shared eviction batches) without writing the same bytes;
 * at the end both threads verify the whole region at once, faulting on
 * the same pages at the same time.
 */
#include "testutil.h"

#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

#define STRIPE_PAGES 3

struct run {
	const struct test_backend *b;
	size_t page_size;
	unsigned threads;
	const char *policy;
	upager_t *p;
	unsigned char *region;
	unsigned char *shadow;
	size_t len;
	unsigned ops;
	/* No descriptor left once the region is mapped: the pager cannot
	 * make more io_uring instances than it made at open, and its threads
	 * share those. */
	bool no_fds_left;
	pthread_barrier_t done_writing;
};

/* Lowers the descriptor limit to the lowest free descriptor, so that no
 * new one can be made (those above stay usable); returns the old limit. */
static struct rlimit no_more_fds(void)
{
	struct rlimit old, now;
	int lowest_free = 0;

	CHECK_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
	while (fcntl(lowest_free, F_GETFD) >= 0)
		lowest_free++;
	now = old;
	now.rlim_cur = (rlim_t)lowest_free;
	CHECK_EQ(setrlimit(RLIMIT_NOFILE, &now), 0);
	return old;
}

struct worker {
	struct run *run;
	unsigned id;
	uint64_t seed;
};

static void verify_range(struct run *run, size_t off, size_t len)
{
	if (memcmp(run->region + off, run->shadow + off, len) != 0) {
		for (size_t i = off; i < off + len; i++)
			if (run->region[i] != run->shadow[i])
				FAILF("%s, page %zu, %u thread(s): byte %zu (page %zu + %zu) is %#x, expected %#x",
				      run->b->label, run->page_size, run->threads, i,
				      i / run->page_size, i % run->page_size, run->region[i],
				      run->shadow[i]);
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct run *run = w->run;
	size_t stripe = STRIPE_PAGES * run->page_size;
	size_t nstripes = run->len / stripe;
	uint64_t s = w->seed;
	unsigned char buf[3 * 65536];

	for (unsigned op = 0; op < run->ops; op++) {
		/* A random stripe of this thread's, a random span inside it. */
		size_t k = (rng_next(&s) % (nstripes / run->threads)) * run->threads + w->id;
		size_t len = 1 + rng_next(&s) % (stripe < sizeof(buf) ? stripe : sizeof(buf));
		size_t off = k * stripe + rng_next(&s) % (stripe - len + 1);

		if (rng_next(&s) % 2) {
			for (size_t i = 0; i < len; i += 8) {
				uint64_t v = rng_next(&s);
				memcpy(buf + i, &v, len - i < 8 ? len - i : 8);
			}
			memcpy(run->shadow + off, buf,
			       len); /* shadow first: never read back stale */
			memcpy(run->region + off, buf, len);
		} else {
			verify_range(run, off, len);
		}
	}
	/* Everyone checks everything, at the same time. */
	pthread_barrier_wait(&run->done_writing);
	for (size_t off = 0; off < run->len; off += run->page_size)
		verify_range(run, off, run->page_size);
	return NULL;
}

static void one_run(struct run *run)
{
	upager_config_t cfg;
	pthread_t tids[2];
	struct worker w[2];
	upager_stats_t st;

	test_config(&cfg, run->b);
	cfg.page_size = run->page_size;
	cfg.ram_bytes = 32 * run->page_size > (2u << 20) ? 32 * run->page_size : (2u << 20);
	if (run->policy)
		cfg.policy = run->policy;
	run->len = 4 * cfg.ram_bytes;
	run->len -= run->len % (STRIPE_PAGES * run->page_size * run->threads);
	/* Bytes moved, not operations, bound the test's I/O. */
	run->ops = run->page_size == 4096 ? 12000 : 1500;

	CHECK_OK(upager_open(&cfg, &run->p));
	CHECK_OK(upager_map(run->p, run->len, 0, (void **)&run->region));
	run->shadow = calloc(1, run->len);
	CHECK(run->shadow);

	struct rlimit fds_before = { 0, 0 };
	if (run->no_fds_left)
		fds_before = no_more_fds();
	pthread_barrier_init(&run->done_writing, NULL, run->threads);
	for (unsigned t = 0; t < run->threads; t++) {
		w[t] = (struct worker){ run, t, tu_rng(0x1234567ULL * (t + 1) + run->page_size) };
		CHECK_EQ(pthread_create(&tids[t], NULL, worker_main, &w[t]), 0);
	}
	for (unsigned t = 0; t < run->threads; t++)
		pthread_join(tids[t], NULL);
	pthread_barrier_destroy(&run->done_writing);
	if (run->no_fds_left)
		CHECK_EQ(setrlimit(RLIMIT_NOFILE, &fds_before), 0);

	CHECK_OK(upager_stats(run->p, &st));
	printf("  %-18s page %6zu threads %u: zero %llu minor %llu major %llu wp %llu evict %llu (written %llu clean %llu zero %llu)\n",
	       run->b->label, run->page_size, run->threads, (unsigned long long)st.faults_zero,
	       (unsigned long long)st.faults_minor, (unsigned long long)st.faults_major,
	       (unsigned long long)st.faults_wp, (unsigned long long)st.evictions,
	       (unsigned long long)st.writebacks, (unsigned long long)st.clean_drops,
	       (unsigned long long)st.zero_drops);
	/* The run must have paged for real: evicted, written, read back. */
	CHECK_CMP(st.resident_pages, <=, st.frames_total);
	CHECK_CMP(st.writebacks, >, 0);
	CHECK_CMP(st.faults_major, >, 0);
	CHECK_CMP(st.clean_drops, >, 0);
	CHECK_EQ(st.io_errors, 0);

	CHECK_OK(upager_unmap(run->p, run->region));
	CHECK_OK(upager_stats(run->p, &st));
	CHECK_EQ(st.resident_pages, 0);
	CHECK_EQ(st.swap_slots_used, 0);
	CHECK_OK(upager_close(run->p));
	free(run->shadow);
}

/*
 * Dirty pages that hold only zeros leave without a write (zero drops);
 * a page with one byte set at its very end, or its very start, is written.
 * With 4 KiB pages the evictor copies a batch out through its bounce
 * buffer; with 64 KiB pages most of a batch does not fit there and is
 * read through the pager view: both ways are checked.
 */
static void zero_pages(const struct test_backend *b, size_t page_size)
{
	upager_config_t cfg;
	upager_t *p;
	upager_stats_t st;
	unsigned char *m;

	test_config(&cfg, b);
	cfg.page_size = page_size;
	cfg.ram_bytes = 32 * page_size;
	const size_t npages = 8 * 32;
	CHECK_OK(upager_open(&cfg, &p));
	CHECK_OK(upager_map(p, npages * page_size, 0, (void **)&m));
	/* The I/O buffers count in the metadata once they are used. */
	CHECK_OK(upager_stats(p, &st));
	uint64_t metadata_before = st.metadata_bytes;
	for (size_t pg = 0; pg < npages; pg++) {
		unsigned char *page = m + pg * page_size;
		memset(page, 0xa5, page_size); /* dirty first, in every case */
		switch (pg % 4) {
		case 0: /* zeros again */
			memset(page, 0, page_size);
			break;
		case 1: /* one byte at the end */
			memset(page, 0, page_size - 1);
			break;
		case 2: /* one byte at the start */
			memset(page + 1, 0, page_size - 1);
			break;
		default: /* all 0xa5 */
			break;
		}
	}
	tu_stats_when_still(p, &st);
	uint64_t evicted = st.evictions;
	CHECK_CMP(evicted, >=, npages / 2);
	/* About a quarter of those held only zeros. */
	CHECK_CMP(st.zero_drops, >=, evicted / 8);
	CHECK_CMP(st.writebacks, >=, evicted / 2);
	CHECK_CMP(st.zero_drops + st.writebacks, ==, evicted);
	CHECK_CMP(st.metadata_bytes, >=, metadata_before + page_size);
	for (size_t pg = 0; pg < npages; pg++) {
		const unsigned char *page = m + pg * page_size;
		for (size_t i = 0; i < page_size; i++) {
			unsigned char want = pg % 4 == 3                         ? 0xa5
					     : pg % 4 == 1 && i == page_size - 1 ? 0xa5
					     : pg % 4 == 2 && i == 0             ? 0xa5
										 : 0;
			if (page[i] != want)
				FAILF("%s, %zu-byte pages: page %zu byte %zu is %#x, expected %#x",
				      b->label, page_size, pg, i, page[i], want);
		}
	}
	printf("  %-18s page %6zu: %llu evicted, %llu zero drops, %llu written\n", b->label,
	       page_size, (unsigned long long)evicted, (unsigned long long)st.zero_drops,
	       (unsigned long long)st.writebacks);
	CHECK_OK(upager_close(p));
}

static void change_one_byte(unsigned char *m, unsigned char *shadow, size_t page_size,
			    size_t pg, unsigned salt)
{
	size_t at = salt % 3 == 0 ? 0 : salt % 3 == 1 ? page_size / 2 : page_size - 1;
	unsigned char x = (unsigned char)(0x11 * (salt % 15 + 1));

	((volatile unsigned char *)m)[pg * page_size + at] ^= x;
	shadow[pg * page_size + at] ^= x;
}

static void compare_pages(const struct test_backend *b, size_t page_size, const unsigned char *m,
			  const unsigned char *want, size_t npages, const char *what)
{
	for (size_t pg = 0; pg < npages; pg++) {
		const unsigned char *x = m + pg * page_size, *y = want + pg * page_size;
		if (memcmp(x, y, page_size)) {
			size_t i = 0;
			while (x[i] == y[i])
				i++;
			FAILF("%s, %zu-byte pages, %s: page %zu byte %zu is %#x, expected %#x",
			      b->label, page_size, what, pg, i, x[i], y[i]);
		}
	}
}

/*
 * Pages read back for a read are mapped writable at once, on a guess,
 * once the program writes enough of what it reads; eviction then writes
 * only those whose checksum changed. Passes over a region eight times the
 * budget, in page order (readahead windows) and shuffled (single misses,
 * read-around), read every page and change one byte (first, middle or
 * last) in seven pages of eight. Right after them, with guessed pages
 * still in frames, a snapshot; the region's pages in frames are written
 * first (their old contents go to the snapshot), then two more passes.
 * Every byte of the region must read back as last written (a changed page
 * taken for unchanged would read back as before), the snapshot must hold
 * the region as it was, and unchanged pages must have left without a
 * write.
 */
static void guessed_pages(const struct test_backend *b, size_t page_size)
{
	upager_config_t cfg;
	upager_t *p;
	upager_stats_t st;
	upager_snapshot_t *snap;
	unsigned char *m;
	const size_t npages = 8 * 32;
	size_t order[8 * 32];
	uint64_t rng = tu_rng(7);

	test_config(&cfg, b);
	cfg.page_size = page_size;
	cfg.ram_bytes = 32 * page_size;
	unsigned char *shadow = malloc(npages * page_size), *frozen = malloc(npages * page_size);
	unsigned char *in_core = malloc(npages * page_size / 4096);
	CHECK(shadow != NULL && frozen != NULL && in_core != NULL);
	CHECK_OK(upager_open(&cfg, &p));
	CHECK_OK(upager_map(p, npages * page_size, 0, (void **)&m));
	for (size_t i = 0; i < npages * page_size; i++)
		shadow[i] = (unsigned char)rng_next(&rng);
	memcpy(m, shadow, npages * page_size);
	unsigned sum = 0;
	for (unsigned pass = 0; pass < 6; pass++) {
		for (size_t i = 0; i < npages; i++)
			order[i] = i;
		if (pass % 2) { /* shuffled */
			for (size_t i = npages - 1; i > 0; i--) {
				size_t j = rng_next(&rng) % (i + 1), t = order[i];
				order[i] = order[j];
				order[j] = t;
			}
		}
		for (size_t i = 0; i < npages; i++) {
			size_t pg = order[i];

			sum += ((volatile unsigned char *)m)[pg * page_size + page_size / 3];
			if ((pg + pass) % 8)
				change_one_byte(m, shadow, page_size, pg, (unsigned)(pg + pass));
		}
	}

	memcpy(frozen, shadow, npages * page_size);
	CHECK_OK(upager_snapshot(p, m, &snap));
	/* The memfd's pages, which mincore() sees, are the pages in frames. */
	CHECK_EQ(mincore(m, npages * page_size, in_core), 0);
	unsigned resident = 0;
	for (size_t pg = 0; pg < npages; pg++)
		if (in_core[pg * page_size / 4096] & 1) {
			resident++;
			change_one_byte(m, shadow, page_size, pg, (unsigned)pg + 7);
		}
	CHECK_CMP(resident, >, 0);
	for (unsigned pass = 0; pass < 2; pass++)
		for (size_t pg = 0; pg < npages; pg++) {
			sum += ((volatile unsigned char *)m)[pg * page_size + page_size / 3];
			if ((pg + pass) % 4 == 0)
				change_one_byte(m, shadow, page_size, pg, (unsigned)(pg + pass + 11));
		}

	tu_stats_when_still(p, &st);
	compare_pages(b, page_size, m, shadow, npages, "the region");
	for (size_t pg = 0; pg < npages; pg++) {
		CHECK_OK(upager_snapshot_read(snap, pg * page_size, shadow + pg * page_size,
					      page_size));
	}
	compare_pages(b, page_size, shadow, frozen, npages, "the snapshot");
	printf("  %-18s page %6zu: %llu evicted, %llu written, %llu clean, %llu of them unchanged "
	       "(sum %u)\n",
	       b->label, page_size, (unsigned long long)st.evictions,
	       (unsigned long long)st.writebacks, (unsigned long long)st.clean_drops,
	       (unsigned long long)st.unchanged_drops, sum);
	CHECK_CMP(st.unchanged_drops, >, 0);
	CHECK_CMP(st.unchanged_drops, <=, st.clean_drops);
	CHECK_OK(upager_snapshot_restore(snap));
	compare_pages(b, page_size, m, frozen, npages, "the restored region");
	CHECK_OK(upager_snapshot_free(snap));
	CHECK_OK(upager_close(p));
	free(in_core);
	free(frozen);
	free(shadow);
}

static void body(const struct test_backend *b, void *arg)
{
	static const size_t page_sizes[] = { 4096, 65536 };
	const char *policy = arg;

	if (!policy) {
		zero_pages(b, 4096);
		zero_pages(b, 65536);
		guessed_pages(b, 4096);
		guessed_pages(b, 65536);
		struct run run = { .b = b, .page_size = 4096, .threads = 2, .no_fds_left = true };
		one_run(&run);
	}

	for (unsigned i = 0; i < 2; i++) {
		for (unsigned threads = 1; threads <= 2; threads++) {
			struct run run = { .b = b,
					   .page_size = page_sizes[i],
					   .threads = threads,
					   .policy = policy };
			one_run(&run);
		}
	}
}

int main(int argc, char **argv)
{
	/* An optional policy name lets the policy suite reuse this body. */
	return for_each_backend(body, argc > 1 ? argv[1] : NULL);
}
