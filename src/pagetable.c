// SPDX-License-Identifier: MIT
/*
 * The page table: a radix tree over a region's page numbers, 9 bits per
 * level, like an x86-64 page table. Leaves hold 512 entries of 16 bytes
 * (8 KiB), directories 512 pointers (4 KiB). Nothing is allocated for a
 * 512-page block until one of its pages is touched, so an untouched region
 * costs one root pointer.
 *
 * Nodes come from an arena of mmap'ed chunks that belongs to the table and
 * is unmapped with it: the fault path never calls the process's malloc
 * (the preload runner puts malloc itself in a region), and freeing a
 * region's table is one munmap per chunk.
 *
 * Lookups are lock-free: a missing node is allocated and published with a
 * compare-and-swap; the loser of a race returns its node to a free list.
 *
 * Each entry carries its page's lock: a bit in its flags word, taken with
 * a compare-and-swap, spun on briefly, then slept on with a futex.
 */
#include "internal.h"

#include <errno.h>
#include <linux/futex.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PT_CHUNK (1u << 20)
#define LEAF_BYTES (PT_FANOUT * sizeof(struct upte))
#define DIR_BYTES (PT_FANOUT * sizeof(void *))

/* A node that lost a publication race, linked through its first word. */
struct free_node {
	struct free_node *next;
};

int pt_init(struct pagetable *pt, uint64_t npages)
{
	unsigned bits = 0;

	memset(pt, 0, sizeof(*pt));
	while (bits < 64 && (1ULL << bits) < npages)
		bits++;
	pt->levels = bits <= PT_BITS ? 1 : (bits + PT_BITS - 1) / PT_BITS;
	atomic_init(&pt->root, NULL);
	pthread_mutex_init(&pt->arena_lock, NULL);
	return 0;
}

static void *arena_alloc(struct pagetable *pt, size_t bytes)
{
	void **free_list = bytes == LEAF_BYTES ? &pt->free_leaf : &pt->free_dir;
	void *node = NULL;

	pthread_mutex_lock(&pt->arena_lock);
	if (*free_list) {
		struct free_node *n = *free_list;
		*free_list = n->next;
		n->next = NULL; /* nodes must be all zero */
		node = n;
		goto out;
	}
	if (!pt->chunk || pt->chunk_used + bytes > PT_CHUNK) {
		char *c = mmap(NULL, PT_CHUNK, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (c == MAP_FAILED)
			goto out;
		*(void **)c = pt->chunks;
		pt->chunks = c;
		pt->chunk = c;
		pt->chunk_used = 4096; /* the link word's page; nodes stay 4 KiB aligned */
	}
	node = pt->chunk + pt->chunk_used;
	pt->chunk_used += bytes;
	atomic_fetch_add_explicit(&pt->bytes, bytes, memory_order_relaxed);
out:
	pthread_mutex_unlock(&pt->arena_lock);
	return node;
}

static void arena_unalloc(struct pagetable *pt, void *node, size_t bytes)
{
	void **free_list = bytes == LEAF_BYTES ? &pt->free_leaf : &pt->free_dir;
	struct free_node *n = node;

	pthread_mutex_lock(&pt->arena_lock);
	n->next = *free_list;
	*free_list = n;
	pthread_mutex_unlock(&pt->arena_lock);
}

void pt_destroy(struct pagetable *pt)
{
	void *c = pt->chunks;

	while (c) {
		void *next = *(void **)c;
		munmap(c, PT_CHUNK);
		c = next;
	}
	pt->chunks = NULL;
	pt->chunk = NULL;
	atomic_store(&pt->root, NULL);
	pthread_mutex_destroy(&pt->arena_lock);
}

static inline unsigned level_index(uint64_t pg, unsigned level)
{
	return (unsigned)(pg >> (level * PT_BITS)) & (PT_FANOUT - 1);
}

static struct upte *walk(struct pagetable *pt, uint64_t pg, bool alloc)
{
	void *_Atomic *slot = &pt->root;

	for (unsigned level = pt->levels; level > 0; level--) {
		size_t bytes = level == 1 ? LEAF_BYTES : DIR_BYTES;
		void *node = atomic_load_explicit(slot, memory_order_acquire);

		if (!node) {
			void *expected = NULL;

			if (!alloc)
				return NULL;
			node = arena_alloc(pt, bytes);
			if (!node)
				return NULL;
			if (!atomic_compare_exchange_strong_explicit(slot, &expected, node,
								     memory_order_acq_rel,
								     memory_order_acquire)) {
				arena_unalloc(pt, node, bytes);
				node = expected;
			}
		}
		if (level == 1)
			return (struct upte *)node + level_index(pg, 0);
		slot = (void *_Atomic *)node + level_index(pg, level - 1);
	}
	return NULL;
}

struct upte *pt_lookup(struct pagetable *pt, uint64_t pg)
{
	return walk(pt, pg, false);
}

struct upte *pt_get(struct pagetable *pt, uint64_t pg)
{
	return walk(pt, pg, true);
}

static bool for_each(void *node, unsigned level, uint64_t base,
		     bool (*fn)(uint64_t, struct upte *, void *), void *arg)
{
	if (!node)
		return false;
	if (level == 1) {
		struct upte *leaf = node;
		for (unsigned i = 0; i < PT_FANOUT; i++)
			if (fn(base + i, &leaf[i], arg))
				return true;
		return false;
	}
	void *_Atomic *dir = node;
	for (unsigned i = 0; i < PT_FANOUT; i++) {
		void *child = atomic_load_explicit(&dir[i], memory_order_acquire);
		if (for_each(child, level - 1, base + ((uint64_t)i << ((level - 1) * PT_BITS)), fn,
			     arg))
			return true;
	}
	return false;
}

void pt_for_each(struct pagetable *pt, bool (*fn)(uint64_t pg, struct upte *e, void *arg),
		 void *arg)
{
	for_each(atomic_load_explicit(&pt->root, memory_order_acquire), pt->levels, 0, fn, arg);
}

/* ---- page locks: a bit in the entry's flags, waited on with a futex ---- */

static long futex(_Atomic uint32_t *addr, int op, uint32_t val)
{
	return syscall(SYS_futex, (uint32_t *)addr, op | FUTEX_PRIVATE_FLAG, val, NULL, NULL, 0);
}

bool upager__pte_trylock(struct upte *e)
{
	uint32_t f = atomic_load_explicit(&e->flags, memory_order_relaxed);

	while (!(f & PTE_LOCKED))
		if (atomic_compare_exchange_weak_explicit(&e->flags, &f, f | PTE_LOCKED,
							  memory_order_acquire,
							  memory_order_relaxed))
			return true;
	return false;
}

void upager__pte_lock(struct upte *e)
{
	uint32_t f;
	int spins = 0;

	for (;;) {
		f = atomic_load_explicit(&e->flags, memory_order_relaxed);
		if (!(f & PTE_LOCKED)) {
			/* A thread that has slept keeps WAITERS set: others may
			 * still be asleep behind it. */
			uint32_t want = f | PTE_LOCKED | (spins > 100 ? PTE_WAITERS : 0);
			if (atomic_compare_exchange_weak_explicit(&e->flags, &f, want,
								  memory_order_acquire,
								  memory_order_relaxed))
				return;
			continue;
		}
		if (++spins < 100) {
			__builtin_ia32_pause();
			continue;
		}
		if (!(f & PTE_WAITERS) &&
		    !atomic_compare_exchange_weak_explicit(&e->flags, &f, f | PTE_WAITERS,
							   memory_order_relaxed,
							   memory_order_relaxed))
			continue;
		futex(&e->flags, FUTEX_WAIT, f | PTE_WAITERS);
	}
}

void upager__pte_unlock(struct upte *e)
{
	uint32_t old = atomic_fetch_and_explicit(&e->flags, ~(PTE_LOCKED | PTE_WAITERS),
						 memory_order_release);
	if (old & PTE_WAITERS)
		futex(&e->flags, FUTEX_WAKE, INT32_MAX);
}
