// SPDX-License-Identifier: MIT
/*
 * The region registry: which region, of which pager, holds an address.
 * A fault arrives as an address, and signals are process-wide, so the
 * registry is too. It is a sorted array searched by bisection under a
 * read lock; map and unmap take the write lock and rebuild the array
 * outside the fault path.
 *
 * A lookup pins the region (refs) so that it cannot be freed while the
 * fault is being resolved; unmap removes the region here first, then
 * waits for the pins to go.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static pthread_rwlock_t registry_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct region **sorted;
static size_t count, capacity;

int upager__registry_add(struct region *r)
{
	size_t i;

	pthread_rwlock_wrlock(&registry_lock);
	if (count == capacity) {
		size_t ncap = capacity ? capacity * 2 : 16;
		struct region **n = realloc(sorted, ncap * sizeof(*n));
		if (!n) {
			pthread_rwlock_unlock(&registry_lock);
			return -ENOMEM;
		}
		sorted = n;
		capacity = ncap;
	}
	for (i = count; i > 0 && sorted[i - 1]->base > r->base; i--)
		sorted[i] = sorted[i - 1];
	sorted[i] = r;
	count++;
	pthread_rwlock_unlock(&registry_lock);
	return 0;
}

/* In a forked child, which has only the thread that forked: the parent's
 * regions are not mapped there (MADV_DONTFORK) and their pagers' threads
 * are gone, so a pager the child opens must not find them. A thread of
 * the parent may have held the lock at the fork: it is made anew. The
 * parent's array is left to the child's copy of the parent's memory. */
void upager__registry_forget_all(void)
{
	pthread_rwlock_init(&registry_lock, NULL);
	sorted = NULL;
	count = capacity = 0;
}

bool upager__registry_overlaps(uintptr_t base, size_t len)
{
	bool overlaps = false;

	pthread_rwlock_rdlock(&registry_lock);
	for (size_t i = 0; i < count && !overlaps; i++)
		overlaps = sorted[i]->base < base + len && base < sorted[i]->base + sorted[i]->len;
	pthread_rwlock_unlock(&registry_lock);
	return overlaps;
}

void upager__registry_remove(struct region *r)
{
	pthread_rwlock_wrlock(&registry_lock);
	for (size_t i = 0; i < count; i++) {
		if (sorted[i] == r) {
			memmove(&sorted[i], &sorted[i + 1], (count - i - 1) * sizeof(*sorted));
			count--;
			break;
		}
	}
	if (count == 0) {
		free(sorted);
		sorted = NULL;
		capacity = 0;
	}
	pthread_rwlock_unlock(&registry_lock);
}

struct region *upager__region_find(uintptr_t addr)
{
	struct region *found = NULL;
	size_t lo = 0, hi;

	pthread_rwlock_rdlock(&registry_lock);
	hi = count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		struct region *r = sorted[mid];
		if (addr < r->base)
			hi = mid;
		else if (addr >= r->base + r->len)
			lo = mid + 1;
		else {
			found = r;
			atomic_fetch_add_explicit(&r->refs, 1, memory_order_acquire);
			break;
		}
	}
	pthread_rwlock_unlock(&registry_lock);
	return found;
}

void upager__region_put(struct region *r)
{
	atomic_fetch_sub_explicit(&r->refs, 1, memory_order_release);
}
