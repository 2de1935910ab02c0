// SPDX-License-Identifier: MIT
/*
 * Many threads fault on the same pages at the same moment, while the
 * budget is tight enough that those pages are being evicted under them:
 * each page must come in once, whole, and never be seen half filled. Each
 * page holds its own number in every word, so a torn or stale page shows.
 */
#include "testutil.h"

#include <pthread.h>
#include <string.h>

#define PS 4096u
#define PAGES 256u
#define THREADS 4
#define ROUNDS 6

static uint64_t *region;
static pthread_barrier_t start;

static void *reader(void *arg)
{
	uint64_t s = tu_rng((uintptr_t)arg);

	pthread_barrier_wait(&start);
	for (int round = 0; round < ROUNDS; round++) {
		/* Everyone walks the same pages in the same order: faults
		 * on one page pile up. */
		for (size_t pg = 0; pg < PAGES; pg++) {
			uint64_t *w = region + pg * (PS / 8);
			size_t i = rng_next(&s) % (PS / 8);
			if (w[i] != pg * 1000003u)
				FAILF("page %zu word %zu is %llu", pg, i, (unsigned long long)w[i]);
		}
	}
	return NULL;
}

static void body(const struct test_backend *b, void *arg)
{
	upager_config_t cfg;
	upager_t *p;
	pthread_t t[THREADS];
	upager_stats_t st;

	test_config(&cfg, b);
	cfg.ram_bytes = 64 * PS;
	CHECK_OK(upager_open(&cfg, &p));
	CHECK_OK(upager_map(p, PAGES * PS, 0, (void **)&region));
	for (size_t pg = 0; pg < PAGES; pg++)
		for (size_t i = 0; i < PS / 8; i++)
			region[pg * (PS / 8) + i] = pg * 1000003u;
	pthread_barrier_init(&start, NULL, THREADS);
	for (uintptr_t i = 0; i < THREADS; i++)
		CHECK_EQ(pthread_create(&t[i], NULL, reader, (void *)i), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&start);
	CHECK_OK(upager_stats(p, &st));
	printf("  %s: major %llu minor %llu evictions %llu\n", b->label,
	       (unsigned long long)st.faults_major, (unsigned long long)st.faults_minor,
	       (unsigned long long)st.evictions);
	CHECK_CMP(st.faults_major, >, 0);
	CHECK_OK(upager_close(p));
}

int main(void)
{
	return for_each_backend(body, NULL);
}
