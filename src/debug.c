// SPDX-License-Identifier: MIT
/*
 * Invariant checks of a debug build (configure --enable-debug, which
 * defines UPAGER_DEBUG); without it this file is empty.
 *
 * What must hold:
 *
 *   page table   a RESIDENT page names a frame whose record names it back
 *                (same entry, region and page); only a RESIDENT page is
 *                MAPPED; WRITABLE implies MAPPED and DIRTY; a DIRTY page
 *                is RESIDENT with no swap copy; a SWAPPED page has a slot.
 *   frame pool   the free list has exactly nfree frames, no cycle, and
 *                none of them is bound to a page; a bound frame's page is
 *                RESIDENT in that frame; no more pages are resident than
 *                frames are in use.
 *
 * When: the faulted page after every fault, under its lock; the whole
 * pool and every region's table every CHECK_EVERY faults, once the fault
 * has let go of its locks (pages busy at that moment are skipped: their
 * lock holder is changing them); everything at close, strictly.
 *
 * The checks run on the fault path, so in a signal handler: no stdio, no
 * malloc. A violation prints what broke and aborts.
 */
#include "internal.h"

#ifdef UPAGER_DEBUG

#include <stdlib.h>
#include <unistd.h>

#define CHECK_EVERY 1024

static void broken(const char *what, struct region *r, uint64_t pg, struct upte *e, uint64_t frame)
{
	char buf[400];
	struct asbuf b = { buf, 0, sizeof(buf) };

	as_puts(&b, "upager: invariant broken: ");
	as_puts(&b, what);
	if (r) {
		as_puts(&b, ": region ");
		as_hex(&b, r->base);
		as_puts(&b, " page ");
		as_dec(&b, pg);
	}
	if (e) {
		as_puts(&b, " flags ");
		as_hex(&b, pte_flags(e));
		as_puts(&b, " frame ");
		as_dec(&b, e->frame);
		as_puts(&b, " slot ");
		as_dec(&b, e->slot);
	} else {
		as_puts(&b, " frame ");
		as_dec(&b, frame);
	}
	as_puts(&b, "\n");
	upager__as_write(buf);
	abort();
}

/* The rules of one locked entry. */
static void check_entry(struct region *r, uint64_t pg, struct upte *e)
{
	struct upager *p = r->p;
	uint32_t f = pte_flags(e);
	uint32_t st = pte_state(f);

	if (st == PTE_RESIDENT) {
		if (e->frame >= p->nframes)
			broken("resident page names no frame", r, pg, e, 0);
		struct frame *fr = &p->frames.frames[e->frame];
		if (atomic_load_explicit(&fr->pte, memory_order_relaxed) != e || fr->region != r ||
		    fr->pg != pg)
			broken("frame record does not name its resident page", r, pg, e, 0);
	}
	if ((f & PTE_MAPPED) && st != PTE_RESIDENT)
		broken("mapped page not resident", r, pg, e, 0);
	if ((f & PTE_WRITABLE) && (!(f & PTE_MAPPED) || !(f & PTE_DIRTY)))
		broken("writable page not mapped or not dirty", r, pg, e, 0);
	if ((f & PTE_DIRTY) && (st != PTE_RESIDENT || (e->slot && !(f & PTE_GUESSED))))
		broken("dirty page not resident, or with a stale swap copy", r, pg, e, 0);
	if ((f & PTE_GUESSED) && (!(f & PTE_DIRTY) || !e->slot))
		broken("guessed-dirty page not dirty, or without its swap copy", r, pg, e, 0);
	if (st == PTE_SWAPPED && !e->slot)
		broken("swapped page without a slot", r, pg, e, 0);
}

void upager__debug_check_pte(struct region *r, uint64_t pg, struct upte *e)
{
	check_entry(r, pg, e);
}

struct walk {
	struct region *r;
	uint64_t resident;
};

static bool walk_entry(uint64_t pg, struct upte *e, void *arg)
{
	struct walk *w = arg;

	if (!atomic_load_explicit(&e->flags, memory_order_relaxed) && !e->slot)
		return false;
	if (!upager__pte_trylock(e))
		return false; /* busy: its holder is changing it */
	check_entry(w->r, pg, e);
	if (pte_state(pte_flags(e)) == PTE_RESIDENT)
		w->resident++;
	upager__pte_unlock(e);
	return false;
}

/* The free list, under the pool's lock: returns its length, with the
 * frames never handed out. */
static uint32_t check_free_list(struct upager *p)
{
	struct frame_pool *fp = &p->frames;
	uint32_t n = 0;

	pthread_mutex_lock(&fp->lock);
	for (uint32_t i = fp->free_head; i < fp->nframes; i = fp->frames[i].next_free) {
		if (++n > fp->nframes)
			broken("free list has a cycle", NULL, 0, NULL, i);
		if (fp->frames[i].region || atomic_load(&fp->frames[i].pte))
			broken("free frame bound to a page", NULL, 0, NULL, i);
	}
	for (uint32_t i = fp->fresh; i < fp->nframes; i++) {
		if (fp->frames[i].region || atomic_load(&fp->frames[i].pte))
			broken("fresh frame bound to a page", NULL, 0, NULL, i);
		n++;
	}
	if (n != atomic_load(&fp->nfree))
		broken("free list length is not nfree", NULL, 0, NULL, n);
	pthread_mutex_unlock(&fp->lock);
	return n;
}

/* Every bound frame's page, where its lock is free. */
static void check_bound_frames(struct upager *p)
{
	for (uint32_t f = 0; f < p->nframes; f++) {
		struct frame *fr = &p->frames.frames[f];
		struct upte *e = atomic_load_explicit(&fr->pte, memory_order_relaxed);

		if (!e || !upager__pte_trylock(e))
			continue;
		/* Under the page's lock its frame record is stable. */
		if (atomic_load_explicit(&fr->pte, memory_order_relaxed) == e &&
		    (pte_state(pte_flags(e)) != PTE_RESIDENT || e->frame != f))
			broken("bound frame's page is not resident in it", fr->region, fr->pg, e,
			       f);
		upager__pte_unlock(e);
	}
}

static void check_all(struct upager *p, bool strict)
{
	uint64_t resident = 0;

	uint32_t nfree = check_free_list(p);
	check_bound_frames(p);
	uint64_t frees_before = atomic_load_explicit(&p->frames.frees, memory_order_relaxed);
	pthread_mutex_lock(&p->regions_lock);
	for (struct region *r = p->regions; r; r = r->next) {
		struct walk w = { r, 0 };

		if (r->dying)
			continue;
		pt_for_each(&r->pt, walk_entry, &w);
		resident += w.resident;
	}
	pthread_mutex_unlock(&p->regions_lock);
	/* Loosely while faults run: frames are taken before their pages
	 * become resident and freed after they stop being, and a frame freed
	 * from a page the walk has counted may be counted again at the page
	 * it goes to. */
	uint64_t recycled = atomic_load_explicit(&p->frames.frees, memory_order_relaxed) -
			    frees_before;
	if (resident > p->nframes - (strict ? nfree : 0) + (strict ? 0 : recycled))
		broken("more pages resident than frames in use", NULL, 0, NULL, resident);
}

void upager__debug_after_fault(struct upager *p)
{
	if (atomic_fetch_add_explicit(&p->debug_faults, 1, memory_order_relaxed) % CHECK_EVERY ==
	    CHECK_EVERY - 1)
		check_all(p, false);
}

void upager__debug_at_close(struct upager *p)
{
	check_all(p, true);
}

#endif /* UPAGER_DEBUG */
