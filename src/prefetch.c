// SPDX-License-Identifier: MIT
/*
 * Bringing in more than the faulting page: readahead, fault-around and
 * upager_advise().
 *
 * A fault that continues a sequential run (it lands on the page after the
 * last one the region brought in) takes a window of the following pages
 * with it. The window starts at 4 pages and doubles on each fault that
 * continues the run, up to 1 MiB with the faulting page (255 pages of
 * 4 KiB; half that for zero-fill); a fault elsewhere closes it. For a page in swap the window's
 * pages are read in the same io_uring submission as the faulting page
 * (neighbouring slots merge into one request) and mapped read-only and
 * clean in one call; for a first touch they are zero-filled and mapped
 * writable in one call. Either way the program runs through the window
 * without faulting, which is where a user-space pager can beat the
 * kernel's page-at-a-time swap-in.
 *
 * The window holds only pages that are in the same state as the faulting
 * one, whose lock can be taken without waiting (pages are claimed in
 * address order with trylock, so there is no lock-order problem), and for
 * which a frame is free right now: readahead never evicts.
 *
 * UPAGER_ADVICE_SEQUENTIAL opens the whole window at once, RANDOM keeps it
 * shut, and so does recording a trace (every first access must fault); WILLNEED reads a range in with the same machinery, DONTNEED drops
 * contents and swap copies.
 */
#include "internal.h"
#include "fault.h"
#include "policy.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>

#define WINDOW_START 4

size_t upager__prefetch_scratch_bytes(void)
{
	return sizeof(struct window) + (WINDOW_MAX + 1) * sizeof(struct io_req);
}

unsigned upager__window_max(struct upager *p, bool zero)
{
	/* The faulting page and its window in WINDOW_MAX_BYTES: large
	 * enough that a sequential reader gets several large reads in
	 * flight (io_ring_run splits a window into vectored requests). */
	size_t pages = WINDOW_MAX_BYTES >> p->page_shift;
	unsigned max = WINDOW_MAX;

	if (pages < 1)
		pages = 1;
	if (pages - 1 < max)
		max = (unsigned)pages - 1;
	return zero ? max / 2 : max;
}

unsigned upager__window_size(struct region *r, uint64_t pg, bool zero)
{
	/* A zero page mapped writable ahead of its first write would skip
	 * the copy-on-write decision (snapshot.c): no fault-around where
	 * pages are shared. Readahead maps read-only, so it stays. */
	if (zero && (r->chain || r->backing || r->self))
		return 0;
	unsigned max = upager__window_max(r->p, zero);
	int advice = atomic_load_explicit(&r->advice, memory_order_relaxed);
	unsigned win = atomic_load_explicit(&r->seq_window, memory_order_relaxed);

	if (advice == UPAGER_ADVICE_RANDOM ||
	    atomic_load_explicit(&r->p->trace, memory_order_relaxed))
		win = 0; /* a trace must see every first access fault */
	else if (advice == UPAGER_ADVICE_SEQUENTIAL)
		win = max;
	else if (pg == atomic_load_explicit(&r->seq_next, memory_order_relaxed))
		win = win ? 2 * win : WINDOW_START;
	else
		win = 0;
	if (win > max)
		win = max;
	atomic_store_explicit(&r->seq_window, win, memory_order_relaxed);
	return win;
}

void upager__window_claim(struct region *r, struct window *w, uint64_t first, uint32_t state,
			  unsigned want)
{
	struct upager *p = r->p;
	/* Only pages the program may use as the faulting one: the window is
	 * installed in one call, which must not cross from one protection
	 * (one VMA of the view) into another. */
	uint32_t refuse = PTE_NOACCESS | PTE_NOWRITE;

	w->first = first;
	w->n = 0;
	if (want > WINDOW_MAX)
		want = WINDOW_MAX;
	while (w->n < want && first + w->n < r->npages) {
		struct upte *e = pt_get(&r->pt, first + w->n);
		uint32_t f;

		if (!e)
			break;
		f = atomic_load_explicit(&e->flags, memory_order_relaxed);
		if (pte_state(f) != state || (f & refuse) || !upager__pte_trylock(e))
			break;
		f = pte_flags(e);
		if (pte_state(f) != state || (f & refuse)) {
			upager__pte_unlock(e);
			break;
		}
		int64_t frame = frames_alloc(&p->frames);
		if (frame < 0) {
			upager__pte_unlock(e);
			break;
		}
		w->e[w->n] = e;
		w->frame[w->n] = (uint32_t)frame;
		w->n++;
	}
	if (w->n && atomic_load_explicit(&p->frames.nfree, memory_order_relaxed) < p->free_low)
		upager__evictor_kick(p);
}

void upager__window_release(struct region *r, struct window *w, unsigned from)
{
	for (unsigned i = from; i < w->n; i++) {
		frames_free(&r->p->frames, w->frame[i]);
		upager__pte_unlock(w->e[i]);
	}
	if (from < w->n)
		w->n = from;
}

/* The window's pages, now resident, go to the policy, then their locks. */
static void window_publish(struct upager *p, struct region *r, struct window *w)
{
	pthread_mutex_lock(&p->policy_lock);
	for (unsigned i = 0; i < w->n; i++)
		p->policy->ops->insert(p->policy->state, w->frame[i],
				       region_page_key(r, w->first + i), false);
	pthread_mutex_unlock(&p->policy_lock);
	for (unsigned i = 0; i < w->n; i++)
		upager__pte_unlock(w->e[i]);
}

void upager__window_commit(struct region *r, struct window *w, bool writable)
{
	struct upager *p = r->p;

	for (unsigned i = 0; i < w->n; i++) {
		struct upte *e = w->e[i];

		frame_bind(p, w->frame[i], r, w->first + i, e);
		if (writable && e->slot) {
			swap_put(&p->swap, e->slot - 1);
			e->slot = 0;
		}
		pte_update(e, PTE_STATE_MASK | PTE_MAPPED | PTE_WRITABLE | PTE_DIRTY, PTE_RESIDENT);
		pte_set_mapped(p, e, writable);
	}
	window_publish(p, r, w);
}

void upager__window_discard(struct region *r, struct window *w, const char *src)
{
	struct upager *p = r->p;

	if (!w->n)
		return;
	if (upager__punch(r, w->first, w->n) == 0) {
		if (!p->backend->punch_unmaps)
			p->backend->unmap(r, w->first, w->n);
		upager__window_release(r, w, 0);
		return;
	}
	/* The memfd keeps whatever the failed install left there, so the
	 * pages keep their frames: the budget must not count them free.
	 * They become resident, unmapped, with what they should hold. */
	p->backend->unmap(r, w->first, w->n);
	for (unsigned i = 0; i < w->n; i++) {
		struct upte *e = w->e[i];

		char *dst = region_pview(r, w->first + i);
		const char *from = src ? src + ((size_t)i << p->page_shift) : NULL;

		if (!from)
			memset(dst, 0, p->page_size);
		else if (from != dst) /* not read in place */
			memcpy(dst, from, p->page_size);
		frame_bind(p, w->frame[i], r, w->first + i, e);
		/* A swapped page's slot stays its clean copy. */
		pte_update(e, PTE_STATE_MASK | PTE_MAPPED | PTE_WRITABLE | PTE_DIRTY | PTE_SAMPLED,
			   PTE_RESIDENT | (e->slot ? 0 : PTE_DIRTY));
	}
	window_publish(p, r, w);
	w->n = 0;
}

void upager__window_done(struct region *r, uint64_t pg, unsigned n)
{
	atomic_store_explicit(&r->seq_next, pg + 1 + n, memory_order_relaxed);
}

int upager__read_in(struct region *r, uint64_t pg, struct upte *e, bool write, unsigned window)
{
	struct upager *p = r->p;
	const struct fault_backend *be = p->backend;
	struct io_ring *ring;
	struct window *w;
	struct io_req *reqs;
	char *buf;
	int ret;

	/* The window and the requests live in the ring's scratch area: a
	 * fault may run on a small signal stack. */
	ring = io_ring_get(&p->io);
	w = io_ring_scratch(ring);
	reqs = (struct io_req *)(w + 1);
	/* A file region's page that is in neither a frame nor swap is read
	 * from its file, with a window of file pages (file.c). */
	bool from_file = pte_state(pte_flags(e)) == PTE_NONE;
	if (from_file && window > r->file_pages - pg - 1)
		window = (unsigned)(r->file_pages - pg - 1);
	upager__window_claim(r, w, pg + 1, from_file ? PTE_NONE : PTE_SWAPPED, window);
	/* A window larger than the bounce buffer is read straight into its
	 * frames through the pager view and mapped from there: no copy,
	 * but the pager view must let go of the pages afterwards (one TLB
	 * shootdown for the window, cheaper than copying more than a
	 * bounce buffer's worth of pages). The application view cannot see
	 * the pages before they are mapped: their locks are held. */
	unsigned claimed = w->n;
	bool in_place = ((size_t)(1 + w->n) << p->page_shift) > p->io.bounce_bytes;
	buf = in_place ? region_pview(r, pg) : io_ring_bounce(ring);
	for (unsigned i = 0; i <= w->n; i++) {
		struct upte *x = i ? w->e[i - 1] : e;
		char *to = buf + ((size_t)i << p->page_shift);

		if (from_file) {
			upager__file_req(r, pg + i, &reqs[i], IO_READ, to);
			/* The last page's part past the file's end reads as zero. */
			if (reqs[i].len < p->page_size)
				memset(to + reqs[i].len, 0, p->page_size - reqs[i].len);
			continue;
		}
		reqs[i] = (struct io_req){
			.op = IO_READ,
			.buf = to,
			.len = p->page_size,
			.off = (x->slot - 1) * p->page_size,
		};
	}
	ret = io_ring_run(&p->io, ring, from_file ? r->file_fd : p->swap.fd, reqs, 1 + w->n);
	if (ret > 0)
		STAT_ADD(p, io_submits, (uint64_t)ret);
	if (ret >= 0 && reqs[0].res != (int)reqs[0].len)
		ret = reqs[0].res < 0 ? reqs[0].res : -EIO;
	if (ret < 0) {
		/* What the read put in the frames goes. */
		if (in_place)
			upager__punch(r, pg, 1 + w->n);
		upager__window_release(r, w, 0);
		io_ring_put(&p->io, ring);
		STAT_INC(p, io_errors);
		/* The page's only copy cannot be read: it is lost, as a page
		 * on a failed disk is for the kernel. (A file page is whole
		 * again once upager_advise(DONTNEED) empties it.) */
		if (!from_file)
			swap_put(&p->swap, e->slot - 1);
		e->slot = 0;
		pte_update(e, PTE_STATE_MASK, PTE_POISONED);
		if (in_place)
			madvise(buf, (size_t)(1 + claimed) << p->page_shift, MADV_DONTNEED);
		return ret;
	}
	/* A window page that did not read stays in swap, and so do the
	 * ones after it: the window must stay contiguous. */
	for (unsigned i = 0; i < w->n; i++) {
		if (reqs[i + 1].res != (int)reqs[i + 1].len) {
			if (in_place)
				upager__punch(r, w->first + i, w->n - i);
			upager__window_release(r, w, i);
			break;
		}
	}
	STAT_ADD(p, bytes_read, (uint64_t)(1 + w->n) << p->page_shift);
	/* Counted before the install wakes the faulting thread. */
	STAT_ADD(p, readahead_pages, w->n);
	unsigned counted = w->n;
	int window_ret = 0;
	if (w->n && !write) {
		/* Faulting page and window in one call, all read-only. */
		ret = window_ret = in_place ? be->map(r, pg, 1 + w->n, false)
					    : be->install(r, pg, 1 + w->n, buf, false);
		if (ret < 0) {
			/* The view may be split where the page table does
			 * not say so (a protection changed and changed back):
			 * the faulting page alone. */
			upager__window_discard(r, w, buf + p->page_size);
			ret = in_place ? be->map(r, pg, 1, false)
				       : be->install(r, pg, 1, buf, false);
		}
	} else {
		ret = in_place ? be->map(r, pg, 1, write) : be->install(r, pg, 1, buf, write);
		if (ret >= 0 && w->n) {
			window_ret = in_place ? be->map(r, pg + 1, w->n, false)
					      : be->install(r, pg + 1, w->n, buf + p->page_size,
							    false);
			if (window_ret < 0)
				upager__window_discard(r, w, buf + p->page_size);
		}
	}
	if (ret < 0) {
		upager__window_discard(r, w, buf + p->page_size);
		if (in_place) /* the page stays in swap; its frame goes */
			upager__punch(r, pg, 1);
	}
	if (in_place)
		madvise(buf, (size_t)(1 + claimed) << p->page_shift, MADV_DONTNEED);
	if (w->n < counted)
		STAT_ADD(p, readahead_pages, -(uint64_t)(counted - w->n));
	if (ret < 0) {
		io_ring_put(&p->io, ring);
		return ret;
	}
	/* Pages a snapshot shares, or a snapshot's own, must stay
	 * read-only where a backend could only map them writable. */
	if (w->n && window_ret > 0 && (r->chain || r->readonly) &&
	    be->wrprotect(r, pg + 1, w->n) == 0)
		window_ret = 0;
	if (w->n) /* mapped writable regardless (> 0): they are dirty */
		upager__window_commit(r, w, window_ret > 0);
	/* Before the ring goes back: the window lives in its scratch. */
	upager__window_done(r, pg, w->n);
	io_ring_put(&p->io, ring);
	return ret;
}

/* ---- upager_advise() ---- */

static int dontneed_page(struct region *r, uint64_t pg)
{
	struct upte *e = pt_lookup(&r->pt, pg);
	int ret = 0;

	/* A clone's untouched page is its source's, not zero. */
	if (!e && r->backing)
		e = pt_get(&r->pt, pg);
	if (!e)
		return r->backing ? -ENOMEM : 0;
	upager__pte_lock(e);
	uint32_t f = pte_flags(e);
	/* A clone's page reads through to its source unless it is its
	 * own, so an emptied one must stay its own: a zero page. */
	uint32_t own = (r->backing || r->self) ? PTE_OWNED : 0;
	if (pte_state(f) == PTE_NONE && !e->slot && (f & PTE_OWNED) == own) {
		upager__pte_unlock(e);
		return 0;
	}
	/* A snapshot that shares the page keeps what it holds now. */
	if (r->chain)
		ret = upager__cow_push(r, pg, e);
	if (ret >= 0)
		ret = upager__page_discard(r, pg, e);
	if (ret == 0)
		pte_update(e, 0, own);
	upager__pte_unlock(e);
	return ret;
}

static int willneed_page(struct region *r, uint64_t pg, uint64_t end)
{
	struct upager *p = r->p;
	struct upte *e = pt_lookup(&r->pt, pg);
	int ret = 0;

	/* A file page not yet read is brought in like a swapped one. */
	uint32_t want = region_file_page(r, pg) ? PTE_NONE : PTE_SWAPPED;

	if (!e && want == PTE_NONE)
		e = pt_get(&r->pt, pg);
	if (!e || pte_state(atomic_load_explicit(&e->flags, memory_order_relaxed)) != want)
		return 1;
	upager__pte_lock(e);
	if (pte_state(pte_flags(e)) != want || r->dying) {
		upager__pte_unlock(e);
		return 1;
	}
	int64_t frame = upager__get_frame(p);
	if (frame < 0) {
		upager__pte_unlock(e);
		return (int)frame;
	}
	unsigned window = upager__window_max(p, false);
	if (end - pg - 1 < window)
		window = (unsigned)(end - pg - 1);
	/* Brought in mapped read-only, like a readahead page: the program's
	 * first read of it does not fault. */
	ret = upager__read_in(r, pg, e, false, window);
	if (ret < 0) {
		frames_free(&p->frames, (uint32_t)frame);
		upager__pte_unlock(e);
		return ret;
	}
	upager__fill_done(r, pg, e, (uint32_t)frame, ret > 0);
	upager__pte_unlock(e);
	STAT_INC(p, readahead_pages);
	return 1;
}

UPAGER_API int upager_advise(upager_t *p, void *addr, size_t len, int advice)
{
	uintptr_t a = (uintptr_t)addr;
	struct region *r;
	int err = 0;

	upager__clear_error();
	if (!p)
		return -EINVAL;
	if (advice < UPAGER_ADVICE_NORMAL || advice > UPAGER_ADVICE_DONTNEED)
		return upager__fail(-EINVAL, "upager_advise: unknown advice %d", advice);
	if (len == 0)
		return 0;
	r = upager__range_region(p, addr, len, "upager_advise");
	if (!r)
		return UPAGER_ENOREGION;
	uint64_t first = (a - r->base) >> p->page_shift;
	uint64_t end = (a + len - r->base + p->page_size - 1) >> p->page_shift;

	if (advice == UPAGER_ADVICE_DONTNEED && r->readonly) {
		upager__region_put(r);
		return upager__fail(
			-EACCES,
			"upager_advise: DONTNEED on a snapshot's view, which is read-only");
	}
	/* A shared file region's dropped pages are read from the file
	 * again: what was written to them goes there first, as with
	 * MADV_DONTNEED on a shared mapping of a file. */
	if (advice == UPAGER_ADVICE_DONTNEED && (err = upager__file_writeback(r, first, end)) < 0) {
		upager__region_put(r);
		return upager__fail(err, "upager_advise: writing back before DONTNEED: %s",
				    upager_strerror(err));
	}
	/* Snapshots and clones read through these pages: they must not
	 * change while a page is handed over (snapshot.c). */
	pthread_rwlock_rdlock(&p->cow_lock);
	switch (advice) {
	case UPAGER_ADVICE_NORMAL:
	case UPAGER_ADVICE_SEQUENTIAL:
	case UPAGER_ADVICE_RANDOM:
		atomic_store(&r->advice, advice);
		atomic_store(&r->seq_window, 0u);
		break;
	case UPAGER_ADVICE_WILLNEED:
		for (uint64_t pg = first; pg < end && !err; pg++) {
			int n = willneed_page(r, pg, end);
			if (n < 0)
				err = upager__fail(n, "upager_advise: reading page %llu: %s",
						   (unsigned long long)pg, upager_strerror(n));
		}
		break;
	case UPAGER_ADVICE_DONTNEED:
		for (uint64_t pg = first; pg < end; pg++) {
			int n = dontneed_page(r, pg);
			if (n < 0 && !err)
				err = upager__fail(n, "upager_advise: page %llu: %s",
						   (unsigned long long)pg,
						   n == -EBUSY ? "pinned, kept"
							       : upager_strerror(n));
		}
		break;
	}
	pthread_rwlock_unlock(&p->cow_lock);
	upager__region_put(r);
	return err;
}
