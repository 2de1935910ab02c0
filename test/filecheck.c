// SPDX-License-Identifier: MIT
/*
 * The file-region check as an outside program would make it, on every
 * backend and mode, with this run's seed (UPAGER_TEST_SEED repeats one):
 * - a file 4x the budget mapped UPAGER_MAP_SHARED is changed at random
 *   through the region (random bytes at random offsets, some across a
 *   page boundary, on more pages than the budget holds, so dirty pages
 *   are evicted to the file), by one thread and then by two at once;
 *   upager_sync(), upager_unmap(): the file equals a shadow copy;
 * - mapped UPAGER_MAP_PRIVATE and changed the same way, the region reads
 *   its own writes and the file does not change;
 * - upager_close() without upager_unmap() loses nothing.
 * FILECHECK_ROUNDS=n repeats it n times (stress runs, see bench/README.md).
 */
#include "testutil.h"

#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PS 4096u
#define BUDGET_PAGES 32u
#define FILE_PAGES (4 * BUDGET_PAGES)
#define BYTES ((size_t)FILE_PAGES * PS)
#define WRITES 1200

static const struct test_backend *current;
static unsigned char shadow[BYTES];

static int make_file(uint64_t *rng)
{
	return tu_data_file("filecheck-test", shadow, BYTES, rng, NULL);
}

static void check_file(int fd, const char *what)
{
	tu_expect_file(fd, shadow, BYTES, current->label, what);
}

static upager_t *open_pager(void)
{
	return tu_file_pager(current, BUDGET_PAGES * PS);
}

/* A writer: random bytes at random offsets of a and the shadow, on the
 * pages whose number is `which` modulo `of` (two writers never share a
 * page, so the shadow is what the file must hold whatever their order). */
struct writer {
	unsigned char *a;
	uint64_t rng;
	unsigned which, of, writes;
};

static void *write_random(void *arg)
{
	struct writer *w = arg;
	unsigned char bytes[300];

	for (unsigned k = 0; k < w->writes; k++) {
		size_t len = 1 + rng_next(&w->rng) % (w->of == 1 ? sizeof(bytes) : 64);
		size_t pg = rng_next(&w->rng) % FILE_PAGES;
		pg -= pg % w->of;
		pg += w->which;
		if (pg >= FILE_PAGES)
			pg = w->which;
		size_t off = pg * PS + rng_next(&w->rng) % PS;
		if (w->of > 1 && off % PS + len > PS) /* stay on the page */
			off = pg * PS + PS - len;
		if (off + len > BYTES)
			off = BYTES - len;
		for (size_t i = 0; i < len; i++)
			bytes[i] = (unsigned char)rng_next(&w->rng);
		memcpy(w->a + off, bytes, len);
		memcpy(shadow + off, bytes, len);
	}
	return NULL;
}

static void change(unsigned char *a, uint64_t *rng, unsigned threads)
{
	pthread_t t[2];
	struct writer w[2];

	for (unsigned i = 0; i < threads; i++) {
		w[i] = (struct writer){ a, tu_rng(rng_next(rng)), i, threads, WRITES / threads };
		if (threads == 1)
			write_random(&w[i]);
		else
			CHECK_EQ(pthread_create(&t[i], NULL, write_random, &w[i]), 0);
	}
	if (threads > 1)
		for (unsigned i = 0; i < threads; i++)
			CHECK_EQ(pthread_join(t[i], NULL), 0);
}

static void check_region(const unsigned char *a, const char *what)
{
	for (size_t i = 0; i < BYTES; i += PS)
		if (memcmp(a + i, shadow + i, PS))
			for (size_t j = i; j < i + PS; j++)
				if (a[j] != shadow[j])
					FAILF("%s: %s: byte %zu (page %zu) reads %#x, wrote %#x",
					      current->label, what, j, j / PS, a[j], shadow[j]);
}

static void body(const struct test_backend *b, void *arg)
{
	uint64_t *rng = arg;
	unsigned char *a;
	upager_stats_t st;

	current = b;
	/* Shared, one writer then two: sync, unmap, the file is the shadow. */
	int fd = make_file(rng);
	upager_t *p = open_pager();
	CHECK_OK(upager_map_file(p, fd, 0, BYTES, UPAGER_MAP_SHARED, (void **)&a));
	change(a, rng, 1);
	change(a, rng, 2);
	CHECK_OK(upager_stats(p, &st));
	CHECK_CMP(st.writebacks, >, 0); /* dirty pages went to the file */
	CHECK_OK(upager_sync(p, a, BYTES));
	check_file(fd, "shared, after sync");
	change(a, rng, 2);
	CHECK_OK(upager_sync(p, a, BYTES));
	CHECK_OK(upager_unmap(p, a));
	check_file(fd, "shared, after sync and unmap");

	/* Private: the region reads its writes, the file stays. */
	unsigned char *file_copy = malloc(BYTES);
	CHECK(file_copy);
	memcpy(file_copy, shadow, BYTES);
	CHECK_OK(upager_map_file(p, fd, 0, BYTES, UPAGER_MAP_PRIVATE, (void **)&a));
	change(a, rng, 1);
	change(a, rng, 2);
	check_region(a, "private");
	CHECK_OK(upager_unmap(p, a));
	memcpy(shadow, file_copy, BYTES);
	free(file_copy);
	check_file(fd, "private, after unmap");

	/* Shared again, and upager_close() without unmap. */
	CHECK_OK(upager_map_file(p, fd, 0, BYTES, UPAGER_MAP_SHARED, (void **)&a));
	change(a, rng, 2);
	CHECK_OK(upager_close(p));
	check_file(fd, "shared, after close");
	close(fd);
}

int main(void)
{
	const char *r = getenv("FILECHECK_ROUNDS");
	int rounds = r ? atoi(r) : 1, ret = 0;
	uint64_t rng = tu_rng(0xf11ec4ec);

	for (int i = 0; i < rounds && ret == 0; i++)
		ret = for_each_backend(body, &rng);
	return ret;
}
