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
 * A run that has reached the largest window also has the stretch after
 * the window read asynchronously, several windows in flight at once (see
 * "asynchronous readahead" below), from the file or from swap.
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
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

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
	else if (pg == atomic_load_explicit(&r->seq_next_other, memory_order_relaxed)) {
		/* The other run goes on: the two trade places. (The window
		 * is shared: it stays open while both runs go on.) */
		atomic_store_explicit(&r->seq_next_other,
				      atomic_load_explicit(&r->seq_next, memory_order_relaxed),
				      memory_order_relaxed);
		win = win ? 2 * win : WINDOW_START;
	} else {
		atomic_store_explicit(&r->seq_next_other,
				      atomic_load_explicit(&r->seq_next, memory_order_relaxed),
				      memory_order_relaxed);
		win = 0;
	}
	if (win > max)
		win = max;
	atomic_store_explicit(&r->seq_window, win, memory_order_relaxed);
	return win;
}

/* Takes e's lock and a free frame for it if it is in state, with no
 * protection of the program's, and its lock is free. Returns the frame;
 * -1 if the page cannot be taken, -2 if no frame is free (readahead never
 * evicts). Only pages the program may use as a faulting one: pages read
 * ahead are installed in one call, which must not cross from one
 * protection (one VMA of the view) into another. */
static int64_t page_claim(struct upager *p, struct upte *e, uint32_t state)
{
	const uint32_t refuse = PTE_NOACCESS | PTE_NOWRITE;
	uint32_t f;

	if (!e)
		return -1;
	f = atomic_load_explicit(&e->flags, memory_order_relaxed);
	if (pte_state(f) != state || (f & refuse) || !upager__pte_trylock(e))
		return -1;
	f = pte_flags(e);
	if (pte_state(f) != state || (f & refuse)) {
		upager__pte_unlock(e);
		return -1;
	}
	int64_t frame = frames_alloc(&p->frames);
	if (frame < 0) {
		upager__pte_unlock(e);
		return -2;
	}
	return frame;
}

void upager__window_claim(struct region *r, struct window *w, uint64_t first, uint32_t state,
			  unsigned want)
{
	struct upager *p = r->p;

	w->first = first;
	w->n = 0;
	if (want > WINDOW_MAX)
		want = WINDOW_MAX;
	while (w->n < want && first + w->n < r->npages) {
		struct upte *e = pt_get(&r->pt, first + w->n);
		int64_t frame = page_claim(p, e, state);

		if (frame < 0)
			break;
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

/* Before a window read from swap is mapped writable on a guess (pager.c,
 * write_likely): the checksums of what was read, from src, where the
 * window's pages lie in a row. */
static void window_sum(struct upager *p, struct window *w, const char *src)
{
	for (unsigned i = 0; i < w->n; i++)
		upager__page_sum(p, src + ((size_t)i << p->page_shift),
				 p->frames.frames[w->frame[i]].read_sum);
}

/* Installs the window's pages from src, writable if write: then on the
 * guess, so their checksums come first. */
static int window_install(struct region *r, struct window *w, const char *src, bool write)
{
	if (write)
		window_sum(r->p, w, src);
	return r->p->backend->install(r, w->first, w->n, src, write);
}

void upager__window_commit(struct region *r, struct window *w, bool writable, bool guessed)
{
	struct upager *p = r->p;

	for (unsigned i = 0; i < w->n; i++) {
		struct upte *e = w->e[i];
		bool keep = writable && guessed && e->slot;

		frame_bind(p, w->frame[i], r, w->first + i, e);
		if (writable && !keep)
			pte_drop_swap_copy(p, e);
		pte_update(e, PTE_STATE_MASK | PTE_MAPPED | PTE_WRITABLE | PTE_DIRTY | PTE_GUESSED,
			   PTE_RESIDENT | PTE_FRESH | (keep ? PTE_GUESSED : 0));
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

/* The request that reads page pg of r (entry e) into to: from the file,
 * whose part past the file's end reads as zero, or from its swap slot. */
static void page_read_req(struct region *r, uint64_t pg, struct upte *e, bool from_file,
			  struct io_req *q, char *to)
{
	size_t ps = r->p->page_size;

	if (from_file) {
		upager__file_req(r, pg, q, IO_READ, to);
		if (q->len < ps)
			memset(to + q->len, 0, ps - q->len);
		return;
	}
	*q = (struct io_req){ .op = IO_READ, .buf = to, .len = ps, .off = (e->slot - 1) * ps };
}

/* ---- asynchronous readahead ----
 *
 * A fault that reads a window at its largest size (a run the program
 * keeps following) hands the stretches after that window to the readahead
 * threads: the stretches' file pages for a file page, their swapped pages
 * for a swapped one. A thread reads a stretch as several windows in one
 * submission, so the device sees several large reads in flight, and
 * installs each window as a fault's window would be: the program runs
 * into the pages without faulting. Two threads take stretches from one
 * queue, so that one installs while the other's reads are on the device,
 * which is what keeps a sequential reader at the device's bandwidth.
 *
 * Only the program's own fault waits for a read; a thread never blocks
 * anything it would have to wait for: it gives a request up when cow_lock
 * is busy (a snapshot or an unmap is in progress), when the region is
 * going, and skips pages that are not in the state it reads (resident, or
 * read by a fault meanwhile). A read that fails leaves its pages as they
 * were: the program's own fault reads them again and reports the error.
 * The queue holds a reference on the region of each request, so the
 * region waits for the threads at unmap.
 *
 * Stretches keep ahead of the program by markers (as the kernel's
 * PG_readahead): each stretch's first page is read with the rest but left
 * unmapped, so the program faults on it as it enters the stretch (a minor
 * fault), and that fault asks for the stretch RA_AHEAD stretches on. A run
 * starts with RA_AHEAD stretches asked for at once.
 *
 * File regions start the threads when they are mapped; for swap the
 * evictor starts them once it has written a page there, so that a pager
 * that never swaps never pays for them.
 */
#define RA_BYTES (4u << 20) /* a stretch, at most */
#define RA_QUEUE 8
#define RA_THREADS 2
#define RA_AHEAD 2

struct ra_req {
	struct region *r;
	uint64_t first, end;
	bool swap; /* the stretch's swapped pages, not its file pages */
};

/* A thread and what it reads into. */
struct ra_worker {
	pthread_t thread;
	struct upager *p;
	struct readahead *ra;
	struct window *w;    /* nchunks windows */
	struct io_req *reqs; /* nchunks * chunk_pages */
	char *buf;           /* as many pages, page-aligned for O_DIRECT */
	size_t buf_used;     /* the most of buf ever used (atomic) */
	bool started;
};

struct readahead {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;
	struct ra_req q[RA_QUEUE];
	unsigned head, len;
	struct region *last_r; /* the last request queued: a repeat is not queued again */
	uint64_t last_first, last_end;
	bool last_swap;
	unsigned nchunks, chunk_pages;
	size_t buf_bytes;
	struct ra_worker workers[RA_THREADS];
};

static pthread_mutex_t ra_start_lock = PTHREAD_MUTEX_INITIALIZER;

static unsigned ra_pages(struct upager *p)
{
	uint64_t n = RA_BYTES >> p->page_shift;

	/* A small budget keeps most of its frames for the program, and the
	 * threads' buffers (one stretch each) stay within budget/16. */
	if (n > p->nframes / (16 * RA_THREADS))
		n = p->nframes / (16 * RA_THREADS);
	return (unsigned)n;
}

static void readahead_request(struct region *r, uint64_t first, bool swap);

/* Page pg of r is a stretch's marker: the program reaching it asks for
 * the stretch RA_AHEAD on. */
static void ra_set_marker(struct region *r, uint64_t pg, bool swap)
{
	unsigned at = atomic_fetch_add_explicit(&r->ra_marker_at, 1, memory_order_relaxed);

	atomic_store_explicit(&r->ra_marker_swap, swap, memory_order_relaxed);
	atomic_store_explicit(&r->ra_markers[at % RA_MARKERS], pg + 1, memory_order_release);
}

void upager__readahead_marker(struct region *r, uint64_t pg)
{
	for (unsigned i = 0; i < RA_MARKERS; i++) {
		uint64_t marker = pg + 1;

		if (atomic_load_explicit(&r->ra_markers[i], memory_order_acquire) == marker &&
		    atomic_compare_exchange_strong(&r->ra_markers[i], &marker, 0)) {
			readahead_request(r, pg + (uint64_t)RA_AHEAD * ra_pages(r->p),
					  atomic_load_explicit(&r->ra_marker_swap,
							       memory_order_relaxed));
			return;
		}
	}
}

/* Page pg of r (entry e, locked, with its frame), read into src, goes to
 * the frame: resident, clean (its copy in the file or in swap stays) and
 * unmapped, with the flags `extra`; still locked, not yet in the policy.
 * False if it could not be written there: what reached the frame is
 * punched, and the frame and lock are still the caller's. */
static bool page_place_unmapped(struct region *r, uint64_t pg, struct upte *e, uint32_t frame,
				const char *src, uint32_t extra)
{
	struct upager *p = r->p;

	if (pwrite(r->memfd, src, p->page_size, (off_t)(pg << p->page_shift)) !=
	    (ssize_t)p->page_size) {
		upager__punch(r, pg, 1);
		return false;
	}
	frame_bind(p, frame, r, pg, e);
	pte_update(e,
		   PTE_STATE_MASK | PTE_MAPPED | PTE_WRITABLE | PTE_DIRTY | PTE_SAMPLED | PTE_FRESH,
		   PTE_RESIDENT | extra);
	return true;
}

/* The marker page, read: into its frame, resident but unmapped. */
static bool ra_place_marker(struct upager *p, struct region *r, struct window *w, const char *src)
{
	if (!page_place_unmapped(r, w->first, w->e[0], w->frame[0], src, 0)) {
		upager__window_release(r, w, 0);
		return false;
	}
	STAT_INC(p, readahead_pages);
	window_publish(p, r, w);
	return true;
}

/* Claims windows of [*pg, end) of r while frames are free. Returns how
 * many; *pg moves past what they hold and the pages skipped. */
static unsigned ra_claim(struct ra_worker *wk, struct region *r, uint64_t *pg, uint64_t end,
			 uint64_t marker_pg, bool swap)
{
	unsigned n = 0;

	while (*pg < end && n < wk->ra->nchunks) {
		struct window *w = &wk->w[n];
		uint64_t k = end - *pg < wk->ra->chunk_pages ? end - *pg : wk->ra->chunk_pages;

		if (*pg == marker_pg)
			k = 1;
		upager__window_claim(r, w, *pg, swap ? PTE_SWAPPED : PTE_NONE, (unsigned)k);
		if (!w->n) {
			if (!atomic_load_explicit(&wk->p->frames.nfree, memory_order_relaxed))
				break; /* no frame */
			(*pg)++;       /* resident, or busy: the next one */
			continue;
		}
		*pg += w->n;
		n++;
	}
	return n;
}

/* What a readahead thread evicts while its reads are out: frames for the
 * pages of its stretch still to be claimed. */
struct ra_evict {
	struct upager *p;
	uint64_t want;   /* frames to have free: free_low and those pages */
	bool holds_ring; /* the thread's reads hold a ring: evict only with a spare one */
};

static void ra_evict(struct ra_evict *ev)
{
	struct upager *p = ev->p;

	for (int tries = 0; tries < 8; tries++) {
		uint32_t nfree = atomic_load_explicit(&p->frames.nfree, memory_order_relaxed);
		if (nfree >= ev->want)
			break;
		unsigned n = ev->want - nfree > 1024 ? 1024 : (unsigned)(ev->want - nfree);
		if ((ev->holds_ring ? upager__reclaim_try(p, n) : upager__reclaim(p, n)) <= 0)
			break;
	}
}

static void ra_evict_meanwhile(void *arg)
{
	struct ra_evict *ev = arg;

	ev->holds_ring = true;
	ra_evict(ev);
	ev->holds_ring = false;
}

/* Reads the n claimed windows and installs them, evicting for what is
 * left of the stretch (ev) while the reads are out. */
static void ra_read_install(struct ra_worker *wk, struct region *r, unsigned n, uint64_t marker_pg,
			    bool swap, struct ra_evict *ev)
{
	struct upager *p = wk->p;
	struct readahead *ra = wk->ra;
	unsigned total = 0;

	for (unsigned c = 0; c < n; c++) {
		struct window *w = &wk->w[c];
		char *to = wk->buf + ((size_t)c * ra->chunk_pages << p->page_shift);

		for (unsigned i = 0; i < w->n; i++, total++)
			page_read_req(r, w->first + i, w->e[i], !swap, &wk->reqs[total],
				      to + ((size_t)i << p->page_shift));
	}
	store_max(&wk->buf_used, ((size_t)(n - 1) * ra->chunk_pages + wk->w[n - 1].n)
					 << p->page_shift);
	struct io_ring *ring = io_ring_get(&p->io);
	int ret = io_ring_run_while(&p->io, ring, swap ? p->swap.fd : r->file_fd, wk->reqs, total,
				    ev ? ra_evict_meanwhile : NULL, ev);
	io_ring_put(&p->io, ring);
	if (ret > 0)
		STAT_ADD(p, io_submits, (uint64_t)ret);
	total = 0;
	for (unsigned c = 0; c < n; c++) {
		struct window *w = &wk->w[c];
		char *src = wk->buf + ((size_t)c * ra->chunk_pages << p->page_shift);
		unsigned ok = 0, claimed = w->n;

		while (ret >= 0 && ok < w->n &&
		       wk->reqs[total + ok].res == (int)wk->reqs[total + ok].len)
			ok++;
		total += claimed;
		upager__window_release(r, w, ok); /* a failed read and the rest */
		if (!w->n)
			continue;
		STAT_ADD(p, bytes_read, (uint64_t)w->n << p->page_shift);
		if (w->first == marker_pg) {
			if (!ra_place_marker(p, r, w, src))
				continue;
		} else {
			/* Swapped pages the program is likely to write are
			 * mapped writable, as a fault's window is
			 * (upager__read_in). */
			bool write = swap && upager__write_likely(r, w->first, 0);
			int iret = window_install(r, w, src, write);
			if (iret < 0) {
				upager__window_discard(r, w, src);
				continue;
			}
			STAT_ADD(p, readahead_pages, w->n);
			upager__window_commit(r, w, iret > 0 || write, write);
			if (swap && !write && !iret)
				pager_note_ro_fills(p, w->n);
		}
		/* The run this stretch continues (whichever of the two it
		 * is) now goes on after it. */
		uint64_t at = w->first;
		if (!atomic_compare_exchange_strong(&r->seq_next, &at, w->first + w->n)) {
			at = w->first;
			atomic_compare_exchange_strong(&r->seq_next_other, &at, w->first + w->n);
		}
	}
}

/* How many pages of [first, end) of r are in state. One page-table walk
 * a leaf: ra_fill() counts again at each round of a stretch. */
static uint64_t ra_count(struct region *r, uint64_t first, uint64_t end, uint32_t state)
{
	uint64_t n = 0;

	for (uint64_t pg = first; pg < end;) {
		uint64_t leaf_end = (pg | (PT_FANOUT - 1)) + 1;
		if (leaf_end > end)
			leaf_end = end;
		struct upte *leaf = pt_lookup(&r->pt, pg & ~(uint64_t)(PT_FANOUT - 1));
		if (!leaf) /* never allocated: every page of it is PTE_NONE */
			n += state == PTE_NONE ? leaf_end - pg : 0;
		else
			for (; pg < leaf_end; pg++)
				n += pte_state(pte_flags(&leaf[pg & (PT_FANOUT - 1)])) == state;
		pg = leaf_end;
	}
	return n;
}

/* Reads and installs what can be of [first, end) of r: its file pages,
 * or its swapped ones. */
static void ra_fill(struct ra_worker *wk, struct region *r, uint64_t first, uint64_t end, bool swap)
{
	struct upager *p = wk->p;
	uint64_t limit = swap ? r->npages : r->file_pages;
	uint32_t state = swap ? PTE_SWAPPED : PTE_NONE;

	if (end > limit)
		end = limit;
	if (first >= end)
		return;
	uint64_t todo = ra_count(r, first, end, state);
	if (!todo)
		return;
	/*
	 * Frames for the stretch's pages, as a fault gets its own: evicting,
	 * here, ahead of the program, so that its faults find frames free.
	 * Only the first window's before the first read; the rest are
	 * evicted while the reads are out, so that the device starts on the
	 * stretch at once and the eviction's work overlaps it.
	 */
	struct ra_evict ev = {
		p, p->free_low + (todo < wk->ra->chunk_pages ? todo : wk->ra->chunk_pages), false
	};
	ra_evict(&ev);
	if (pthread_rwlock_tryrdlock(&p->cow_lock))
		return;
	/* A snapshot taken since the request shares the region's pages: they
	 * are its faults' to bring in, with the copy-on-write rules. */
	if (!region_plain(r)) {
		pthread_rwlock_unlock(&p->cow_lock);
		return;
	}
	/* The marker, set before the reads: the program may be there first
	 * (its fault then reads the page and asks for the stretch on). The
	 * first window is the marker page alone. */
	uint64_t marker_pg = UINT64_MAX;
	if (end - first > 1) {
		marker_pg = first;
		ra_set_marker(r, first, swap);
	}
	uint64_t pg = first;
	for (int round = 0; pg < end && round < 8; round++) {
		unsigned n = ra_claim(wk, r, &pg, end, marker_pg, swap);
		if (r->dying) { /* being unmapped: its pages are not wanted */
			for (; n; n--)
				upager__window_release(r, &wk->w[n - 1], 0);
			break;
		}
		if (!n && pg >= end) /* the rest is resident or being read */
			break;
		if (!n) { /* no frame free: evict for the next window */
			ev.want = p->free_low + wk->ra->chunk_pages;
			ra_evict(&ev);
			if (!atomic_load_explicit(&p->frames.nfree, memory_order_relaxed))
				break;
			continue;
		}
		ev.want = p->free_low + ra_count(r, pg, end, state);
		ra_read_install(wk, r, n, marker_pg, swap, &ev);
	}
	pthread_rwlock_unlock(&p->cow_lock);
}

static void *readahead_main(void *arg)
{
	struct ra_worker *wk = arg;
	struct readahead *ra = wk->ra;
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	pthread_mutex_lock(&ra->lock);
	for (;;) {
		while (!ra->len && !ra->stop)
			pthread_cond_wait(&ra->cond, &ra->lock);
		if (ra->stop)
			break;
		struct ra_req q = ra->q[ra->head];
		ra->head = (ra->head + 1) % RA_QUEUE;
		ra->len--;
		pthread_mutex_unlock(&ra->lock);
		ra_fill(wk, q.r, q.first, q.end, q.swap);
		upager__region_put(q.r);
		pthread_mutex_lock(&ra->lock);
	}
	pthread_mutex_unlock(&ra->lock);
	return NULL;
}

/* From a fault (perhaps in a signal handler, as the evictor's kick is):
 * queues [first, first + ra_pages) of r, unless it is queued already or
 * the queue is full. */
static void readahead_request(struct region *r, uint64_t first, bool swap)
{
	struct upager *p = r->p;
	struct readahead *ra = atomic_load_explicit(&p->ra, memory_order_acquire);
	unsigned pages = ra_pages(p);

	if (!ra || !pages || first >= (swap ? r->npages : r->file_pages))
		return;
	uint64_t end = first + pages;
	pthread_mutex_lock(&ra->lock);
	bool repeat = ra->last_r == r && ra->last_swap == swap && first >= ra->last_first &&
		      first < ra->last_end;
	if (!ra->stop && ra->len < RA_QUEUE && !repeat) {
		atomic_fetch_add_explicit(&r->refs, 1, memory_order_acquire);
		ra->q[(ra->head + ra->len) % RA_QUEUE] = (struct ra_req){ r, first, end, swap };
		ra->len++;
		ra->last_r = r;
		ra->last_first = first;
		ra->last_end = end;
		ra->last_swap = swap;
		pthread_cond_signal(&ra->cond);
	}
	pthread_mutex_unlock(&ra->lock);
}

/* Stops and frees what was started of ra. */
static void ra_free(struct readahead *ra)
{
	pthread_mutex_lock(&ra->lock);
	ra->stop = true;
	pthread_cond_broadcast(&ra->cond);
	pthread_mutex_unlock(&ra->lock);
	for (unsigned i = 0; i < RA_THREADS; i++) {
		struct ra_worker *wk = &ra->workers[i];

		if (wk->started)
			pthread_join(wk->thread, NULL);
		if (wk->buf)
			munmap(wk->buf, ra->buf_bytes);
		free(wk->w);
		free(wk->reqs);
	}
	/* What was still queued lets its regions go. */
	for (; ra->len; ra->len--, ra->head = (ra->head + 1) % RA_QUEUE)
		upager__region_put(ra->q[ra->head].r);
	pthread_mutex_destroy(&ra->lock);
	pthread_cond_destroy(&ra->cond);
	free(ra);
}

int upager__readahead_start(struct upager *p)
{
	int err = 0;

	if (atomic_load_explicit(&p->ra, memory_order_acquire))
		return 0;
	pthread_mutex_lock(&ra_start_lock);
	if (atomic_load_explicit(&p->ra, memory_order_acquire) || !ra_pages(p))
		goto out;
	struct readahead *ra = calloc(1, sizeof(*ra));
	if (!ra) {
		err = -ENOMEM;
		goto out;
	}
	pthread_mutex_init(&ra->lock, NULL);
	pthread_cond_init(&ra->cond, NULL);
	ra->chunk_pages = upager__window_max(p, false) + 1;
	if (ra->chunk_pages > WINDOW_MAX)
		ra->chunk_pages = WINDOW_MAX;
	/* One more window: the marker page is one by itself. */
	ra->nchunks = (ra_pages(p) + ra->chunk_pages - 1) / ra->chunk_pages + 1;
	ra->buf_bytes = (size_t)ra->nchunks * ra->chunk_pages << p->page_shift;
	for (unsigned i = 0; i < RA_THREADS; i++) {
		struct ra_worker *wk = &ra->workers[i];

		wk->p = p;
		wk->ra = ra;
		wk->w = calloc(ra->nchunks, sizeof(*wk->w));
		wk->reqs = calloc((size_t)ra->nchunks * ra->chunk_pages, sizeof(*wk->reqs));
		wk->buf = mmap(NULL, ra->buf_bytes, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (wk->buf == MAP_FAILED)
			wk->buf = NULL;
		if (!wk->w || !wk->reqs || !wk->buf) {
			ra_free(ra);
			err = -ENOMEM;
			goto out;
		}
	}
	/* Published first: the threads find it there. */
	atomic_store_explicit(&p->ra, ra, memory_order_release);
	for (unsigned i = 0; i < RA_THREADS; i++) {
		int perr = pthread_create(&ra->workers[i].thread, NULL, readahead_main,
					  &ra->workers[i]);
		if (perr) {
			atomic_store(&p->ra, NULL);
			ra_free(ra);
			err = -perr;
			goto out;
		}
		ra->workers[i].started = true;
		pthread_setname_np(ra->workers[i].thread, "upager-ahead");
	}
out:
	pthread_mutex_unlock(&ra_start_lock);
	return err;
}

size_t upager__readahead_bytes(struct upager *p)
{
	struct readahead *ra = atomic_load_explicit(&p->ra, memory_order_acquire);
	size_t total = 0;

	for (unsigned i = 0; ra && i < RA_THREADS; i++)
		total += __atomic_load_n(&ra->workers[i].buf_used, __ATOMIC_RELAXED);
	return total;
}

void upager__readahead_stop(struct upager *p)
{
	struct readahead *ra = atomic_load(&p->ra);

	if (!ra)
		return;
	atomic_store(&p->ra, NULL);
	ra_free(ra);
}

/* ---- read-around ----
 *
 * A miss outside any sequential run may still have its neighbours used
 * soon after: an object larger than a page (sqlite3 keeps each 4 KiB page
 * of its cache with a header, so each spans two pages, and a B-tree
 * search touches the second just after the first), a scan that takes a
 * few steps out of order. The kernel reads such neighbours with the
 * missing page (its swap readahead). So does the pager: the swapped pages
 * just before and after a miss are read in the same submission, into free
 * frames (sqlite3 under upager-run: 11.7k misses instead of 23.4k, the
 * kernel's swap 12-18k).
 *
 * How many follows their use, pager-wide: a level from 0 (none) to 3 (2
 * pages before, 5 after). To see the use, the pages are left unmapped
 * (PTE_AROUND), so that the program's first touch of one is a minor
 * fault, which counts a hit; the level goes up when more than half of
 * them were used, down when fewer than a third were. At levels 2 and 3,
 * where most are used, only one miss in AROUND_PROBE leaves its pages
 * unmapped to measure; the others map theirs at once, as a readahead
 * window is mapped, which saves the minor faults (a hand-off each in
 * transparent mode: sqlite3 3.0-4.8 s against 4.2-4.8 s, python3 7.0-8.6 s
 * against 8.1-10.1 s, alternated on a noisy machine).
 *
 * Level 0 reads nothing, so it cannot count hits; it watches instead how
 * many misses land next to the region's miss before (what level 1 would
 * have read), and goes to level 1 when a quarter of them do. (Reading one
 * page each side of every 16th miss to find out cost Zipf misses 9% in
 * bench/workload: the pages pushed out hot ones.) Uniform random misses
 * use a neighbour about as often as any other page (the resident
 * fraction), so below half their working set they read nothing around.
 * A region advised RANDOM, shared with a snapshot, or a pager recording a
 * trace, reads nothing around either.
 */
#define AROUND_MAX 7
#define AROUND_JUDGE 64 /* pages read around, or misses at level 0, per judgement */
#define AROUND_PROBE 4  /* at levels 2 and 3, one miss in this many is a probe */

static const unsigned char around_before[] = { 0, 1, 1, 2 };
static const unsigned char around_after[] = { 0, 1, 3, 5 };

struct around {
	unsigned n;
	bool map;                /* map the pages (not a probe at level 2 or 3) */
	uint64_t pg[AROUND_MAX]; /* in address order */
	struct upte *e[AROUND_MAX];
	uint32_t frame[AROUND_MAX];
};

/* The level for a miss on page pg of r, after judging the last
 * AROUND_JUDGE pages' hits, or at level 0 misses. */
static unsigned around_level(struct upager *p, struct region *r, uint64_t pg)
{
	unsigned level = atomic_load_explicit(&p->around_level, memory_order_relaxed);
	uint64_t last = atomic_exchange_explicit(&r->last_miss, pg + 1, memory_order_relaxed);

	if (!level) {
		bool near = last && last - 1 + around_after[1] >= pg &&
			    pg + around_before[1] >= last - 1;
		if (near)
			atomic_fetch_add_explicit(&p->around_near, 1, memory_order_relaxed);
		if (atomic_fetch_add_explicit(&p->around_misses, 1, memory_order_relaxed) + 1 <
		    AROUND_JUDGE)
			return 0;
		atomic_store_explicit(&p->around_misses, 0, memory_order_relaxed);
		if (4 * atomic_exchange_explicit(&p->around_near, 0, memory_order_relaxed) <
		    AROUND_JUDGE)
			return 0;
		level = 1;
	} else if (atomic_load_explicit(&p->around_sent, memory_order_relaxed) >= AROUND_JUDGE) {
		uint32_t sent = atomic_exchange_explicit(&p->around_sent, 0, memory_order_relaxed);
		uint32_t hits = atomic_exchange_explicit(&p->around_hits, 0, memory_order_relaxed);

		if (sent < AROUND_JUDGE) /* judged by another thread meanwhile */
			return level;
		if (2 * hits > sent && level < 3)
			level++;
		else if (3 * hits < sent)
			level--;
	} else {
		return level;
	}
	atomic_store_explicit(&p->around_level, level, memory_order_relaxed);
	return level;
}

void upager__readaround_hit(struct upager *p)
{
	atomic_fetch_add_explicit(&p->around_hits, 1, memory_order_relaxed);
	STAT_INC(p, readaround_hits);
}

/* Claims page q for a, if it is swapped and free to take; returns what
 * page_claim() does (-2: no frame is free, claim no more). */
static int64_t around_take(struct region *r, uint64_t q, struct around *a)
{
	struct upte *e = pt_lookup(&r->pt, q);
	int64_t frame = page_claim(r->p, e, PTE_SWAPPED);

	if (frame < 0)
		return frame;
	a->pg[a->n] = q;
	a->e[a->n] = e;
	a->frame[a->n] = (uint32_t)frame;
	a->n++;
	return frame;
}

/* Claims the swapped pages around the missing page pg that this miss
 * reads with it (pg's lock is held; the others are only tried, so the
 * order does not matter). */
static void around_claim(struct region *r, uint64_t pg, struct around *a)
{
	struct upager *p = r->p;

	a->n = 0;
	if (!region_plain(r) ||
	    atomic_load_explicit(&r->advice, memory_order_relaxed) == UPAGER_ADVICE_RANDOM ||
	    atomic_load_explicit(&p->trace, memory_order_relaxed))
		return;
	unsigned level = around_level(p, r, pg);
	unsigned before = around_before[level] < pg ? around_before[level] : (unsigned)pg;
	int64_t got = 0;
	for (unsigned i = before; i >= 1 && got != -2; i--)
		got = around_take(r, pg - i, a);
	for (uint64_t i = 1; i <= around_after[level] && pg + i < r->npages && got != -2; i++)
		got = around_take(r, pg + i, a);
	a->map = level >= 2 &&
		 atomic_fetch_add_explicit(&p->around_probe, 1, memory_order_relaxed) %
			 AROUND_PROBE;
	if (!a->map)
		atomic_fetch_add_explicit(&p->around_sent, a->n, memory_order_relaxed);
}

/* How many pages right after pg a holds: a sequential run that goes on
 * past them continues from there (upager__window_size). */
static unsigned around_run_after(const struct around *a, uint64_t pg)
{
	unsigned run = 0;

	for (unsigned i = 0; i < a->n; i++)
		if (a->pg[i] == pg + run + 1)
			run++;
	return run;
}

/* Gives page i of a back untouched: it stays in swap. */
static void around_give_back(struct upager *p, struct around *a, unsigned i)
{
	frames_free(&p->frames, a->frame[i]);
	upager__pte_unlock(a->e[i]);
}

static void around_release(struct upager *p, struct around *a)
{
	for (unsigned i = 0; i < a->n; i++)
		around_give_back(p, a, i);
	a->n = 0;
}

/* Page i of a, read into src, goes to its frame unmapped: the program's
 * first touch counts a hit. */
static bool around_keep(struct region *r, struct around *a, unsigned i, const char *src)
{
	struct upager *p = r->p;
	struct upte *e = a->e[i];

	if (!page_place_unmapped(r, a->pg[i], e, a->frame[i], src, PTE_AROUND)) {
		around_give_back(p, a, i);
		return false;
	}
	pthread_mutex_lock(&p->policy_lock);
	p->policy->ops->insert(p->policy->state, a->frame[i], region_page_key(r, a->pg[i]), false);
	pthread_mutex_unlock(&p->policy_lock);
	upager__pte_unlock(e);
	return true;
}

/* Pages i to i + n - 1 of a, neighbours read into src, are mapped in one
 * call as a readahead window is (w, the ring's, is free to hold them). */
static unsigned around_map(struct region *r, struct around *a, unsigned i, unsigned n,
			   const char *src, struct window *w)
{
	struct upager *p = r->p;
	bool write = upager__write_likely(r, a->pg[i], 0);

	w->first = a->pg[i];
	w->n = n;
	for (unsigned k = 0; k < n; k++) {
		w->e[k] = a->e[i + k];
		w->frame[k] = a->frame[i + k];
	}
	int ret = window_install(r, w, src, write);
	if (ret < 0) {
		upager__window_discard(r, w, src);
		return 0;
	}
	upager__window_commit(r, w, ret > 0 || write, write);
	if (!write && !ret)
		pager_note_ro_fills(p, n);
	w->n = 0;
	return n;
}

/* The pages were read (or not) into src by reqs: each one read is kept
 * in its frame, mapped or not (a->map); the others stay in swap. */
static void around_place(struct region *r, struct around *a, const struct io_req *reqs,
			 const char *src, struct window *w)
{
	struct upager *p = r->p;
	unsigned placed = 0;

	for (unsigned i = 0; i < a->n;) {
		const char *from = src + ((size_t)i << p->page_shift);
		unsigned n = 1;

		if (reqs[i].res != (int)reqs[i].len) {
			around_give_back(p, a, i++);
			continue;
		}
		if (!a->map) {
			placed += around_keep(r, a, i++, from);
			continue;
		}
		while (i + n < a->n && a->pg[i + n] == a->pg[i] + n &&
		       reqs[i + n].res == (int)reqs[i + n].len)
			n++;
		placed += around_map(r, a, i, n, from, w);
		i += n;
	}
	a->n = 0;
	STAT_ADD(p, bytes_read, (uint64_t)placed << p->page_shift);
	STAT_ADD(p, readaround_pages, placed);
	if (!a->map)
		STAT_ADD(p, readaround_watched, placed);
}

/* ---- the miss's read ---- */

int upager__read_in(struct region *r, uint64_t pg, struct upte *e, bool write, uint64_t *sum,
		    unsigned window)
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
	/* Outside a run, the swapped pages around it (read-around). */
	struct around around = { .n = 0 };
	if (!w->n && !from_file &&
	    ((size_t)(1 + AROUND_MAX) << p->page_shift) <= p->io.bounce_bytes)
		around_claim(r, pg, &around);
	/* A window larger than the bounce buffer is read straight into its
	 * frames through the pager view and mapped from there: no copy,
	 * but the pager view must let go of the pages afterwards (one TLB
	 * shootdown for the window, cheaper than copying more than a
	 * bounce buffer's worth of pages). The application view cannot see
	 * the pages before they are mapped: their locks are held. */
	unsigned claimed = w->n;
	bool in_place = ((size_t)(1 + w->n) << p->page_shift) > p->io.bounce_bytes;
	buf = in_place ? region_pview(r, pg)
		       : io_ring_bounce(ring, (size_t)(1 + w->n + around.n) << p->page_shift);
	for (unsigned i = 0; i <= w->n; i++)
		page_read_req(r, pg + i, i ? w->e[i - 1] : e, from_file, &reqs[i],
			      buf + ((size_t)i << p->page_shift));
	/* (Read-around only without a window: after the faulting page.) */
	struct io_req *around_reqs = &reqs[1];
	char *around_buf = buf + p->page_size;
	for (unsigned i = 0; i < around.n; i++)
		page_read_req(r, around.pg[i], around.e[i], false, &around_reqs[i],
			      around_buf + ((size_t)i << p->page_shift));
	struct miss_clock *mc = &upager__mc;
	mc->io0 = upager__now_ns();
	/* Submitted and waited for in one call unless there is a batch to
	 * evict meanwhile: a system call less for most misses. */
	ret = io_ring_run_while(&p->io, ring, from_file ? r->file_fd : p->swap.fd, reqs,
				1 + w->n + around.n,
				upager__evict_due(p) ? upager__evict_meanwhile : NULL, p);
	mc->io1 = upager__now_ns();
	if (ret > 0)
		STAT_ADD(p, io_submits, (uint64_t)ret);
	if (ret >= 0 && reqs[0].res != (int)reqs[0].len)
		ret = reqs[0].res < 0 ? reqs[0].res : -EIO;
	if (ret < 0) {
		/* What the read put in the frames goes. */
		if (in_place)
			upager__punch(r, pg, 1 + w->n);
		upager__window_release(r, w, 0);
		around_release(p, &around);
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
	/* Before the install: it wakes the program, whose next fault (on
	 * another handler thread, in transparent mode) must find the run
	 * already moved on, or it would close the window. */
	upager__window_done(r, pg, w->n ? w->n : around_run_after(&around, pg));
	/* Where the program writes most pages it has read, the window is
	 * mapped writable (dirty) at once (pager.c, upager__write_likely). */
	bool window_write = w->n && !from_file && upager__write_likely(r, w->first, 0);
	/* Before the map, which lets the program write (in place, into
	 * the very bytes summed). */
	if (sum && !from_file)
		upager__page_sum(p, buf, sum);
	if (window_write)
		window_sum(p, w, buf + p->page_size);
	if (w->n && write == window_write) {
		/* Faulting page and window in one call, alike. */
		ret = window_ret = in_place ? be->map(r, pg, 1 + w->n, write)
					    : be->install(r, pg, 1 + w->n, buf, write);
		if (ret < 0) {
			/* The view may be split where the page table does
			 * not say so (a protection changed and changed back):
			 * the faulting page alone. */
			upager__window_discard(r, w, buf + p->page_size);
			ret = in_place ? be->map(r, pg, 1, write)
				       : be->install(r, pg, 1, buf, write);
		}
	} else {
		ret = in_place ? be->map(r, pg, 1, write) : be->install(r, pg, 1, buf, write);
		if (ret >= 0 && w->n) {
			window_ret = in_place ? be->map(r, pg + 1, w->n, window_write)
					      : be->install(r, pg + 1, w->n, buf + p->page_size,
							    window_write);
			if (window_ret < 0)
				upager__window_discard(r, w, buf + p->page_size);
		}
	}
	mc->mapped = upager__now_ns();
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
		around_release(p, &around);
		io_ring_put(&p->io, ring);
		return ret;
	}
	/* Pages a snapshot shares, or a snapshot's own, must stay
	 * read-only where a backend could only map them writable. */
	if (w->n && window_ret > 0 && (r->chain || r->readonly) &&
	    be->wrprotect(r, pg + 1, w->n) == 0)
		window_ret = 0;
	if (w->n) /* mapped writable regardless (> 0): they are dirty */
		upager__window_commit(r, w, window_ret > 0 || window_write, window_write);
	if (w->n && window_ret <= 0 && !window_write && !from_file)
		pager_note_ro_fills(p, w->n);
	/* A plain region's run at the largest window: the stretches after
	 * it are read asynchronously. (Whether or not frames were free for
	 * the whole window: a readahead thread evicts for its stretch.) */
	bool ahead = w->n && window >= upager__window_max(p, false) && region_plain(r);
	uint64_t next = pg + 1 + w->n;
	/* After the install, which let the program go on; w is free. */
	around_place(r, &around, around_reqs, around_buf, w);
	io_ring_put(&p->io, ring);
	if (ahead)
		for (unsigned i = 0; i < RA_AHEAD; i++)
			readahead_request(r, next + (uint64_t)i * ra_pages(p), !from_file);
	upager__readahead_marker(r, pg);
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
	int64_t frame = upager__get_frame_for(p, true);
	if (frame < 0) {
		upager__pte_unlock(e);
		return (int)frame;
	}
	unsigned window = upager__window_max(p, false);
	if (end - pg - 1 < window)
		window = (unsigned)(end - pg - 1);
	/* Brought in mapped read-only, like a readahead page: the program's
	 * first read of it does not fault. */
	ret = upager__read_in(r, pg, e, false, NULL, window);
	if (ret < 0) {
		frames_free(&p->frames, (uint32_t)frame);
		upager__pte_unlock(e);
		return ret;
	}
	upager__fill_done(r, pg, e, (uint32_t)frame, ret > 0, false);
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
