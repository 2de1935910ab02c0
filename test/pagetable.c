// SPDX-License-Identifier: MIT
/*
 * The page table (white-box): entries exist only once touched, distinct
 * pages get distinct entries at every tree height, concurrent lookups of
 * one new leaf agree, and the walk visits allocated leaves in page order.
 */
#include "testutil.h"
#include "internal.h"

#include <pthread.h>

static struct pagetable shared_pt;
static struct upte *seen[4];

static void *grab(void *arg)
{
	seen[(uintptr_t)arg] = pt_get(&shared_pt, 777777);
	return NULL;
}

struct walk {
	uint64_t last, count, marked;
};

static bool visit(uint64_t pg, struct upte *e, void *arg)
{
	struct walk *w = arg;

	if (w->count)
		CHECK_CMP(pg, >, w->last);
	w->last = pg;
	w->count++;
	if (e->slot) {
		CHECK_EQ(e->slot, pg + 1);
		w->marked++;
	}
	return false;
}

int main(void)
{
	static const uint64_t sizes[] = { 1, 512, 513, 1ULL << 20, 1ULL << 36 };

	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		struct pagetable pt;
		uint64_t n = sizes[k];
		uint64_t probes[] = { 0, n / 2, n - 1, n > 1000 ? 1000 : 0 };

		pt_init(&pt, n);
		for (int i = 0; i < 4; i++)
			CHECK(pt_lookup(&pt, probes[i]) == NULL);
		for (int i = 0; i < 4; i++) {
			struct upte *e = pt_get(&pt, probes[i]);
			CHECK(e);
			CHECK(pt_lookup(&pt, probes[i]) == e);
			CHECK_EQ(pte_flags(e), 0);
			e->slot = probes[i] + 1;
		}
		for (int i = 0; i < 4; i++)
			for (int j = 0; j < 4; j++)
				if (probes[i] != probes[j])
					CHECK(pt_get(&pt, probes[i]) != pt_get(&pt, probes[j]));
		struct walk w = { 0, 0, 0 };
		pt_for_each(&pt, visit, &w);
		CHECK_CMP(w.marked, >=, 1);
		/* Every allocated leaf is visited whole: a multiple of 512. */
		CHECK_EQ(w.count % 512, 0);
		/* A touched page costs one 8 KiB leaf, plus directories. */
		CHECK_CMP(atomic_load(&pt.bytes), <=, 4 * (8192 + 3 * 4096));
		pt_destroy(&pt);
	}

	pt_init(&shared_pt, 1ULL << 30);
	pthread_t t[4];
	for (uintptr_t i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, grab, (void *)i);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	for (int i = 1; i < 4; i++)
		CHECK(seen[i] == seen[0]);
	pt_destroy(&shared_pt);
	printf("pagetable: all checks passed\n");
	return 0;
}
