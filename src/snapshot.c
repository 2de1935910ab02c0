// SPDX-License-Identifier: MIT
/*
 * Copy-on-write snapshots and clones.
 *
 * A snapshot is a region of its own (a read-only view, a memfd, a page
 * table) whose pages start out borrowed: a page without PTE_OWNED reads
 * through to the version the snapshot was taken from. A region's
 * snapshots form a chain, oldest to newest, ending at the region itself
 * (the origin). What snapshot S sees of page pg is the first owned copy in
 * S, the snapshots newer than S, then the origin's page.
 *
 * The origin keeps that true with one rule: before its page pg changes
 * (a write, DONTNEED, a restore, its unmapping), the newest snapshot gets
 * its own copy if it has none. Every older snapshot that borrowed the page
 * now finds it there. So taking a snapshot copies nothing: it only
 * write-protects the origin's writable pages, so that the first write to
 * each one faults and hands the old version over (a COW fault).
 *
 * Handing a version over costs as little as the page allows: a zero page
 * is a flag, a swapped page (or a clean resident page, whose swap copy is
 * valid) shares its swap slot, which is reference-counted; only a dirty
 * resident page is copied into a frame of the receiver.
 *
 * A clone is a writable region that borrows from a snapshot (a hidden one
 * when it is cloned from a live region); its first access to a page makes
 * the page its own, then it is an ordinary page. A clone is an origin in
 * turn when it has snapshots, and a chain whose origin is unmapped ends in
 * what the origin borrowed from (its `fallback`), or in zero.
 *
 * A file region's page that is in no frame or slot (PTE_NONE) is its
 * file's. Its chain keeps a descriptor of the file (a duplicate, so that
 * it outlives the origin's unmapping), and a version found there, at the
 * origin or past an origin that is gone, is read from the file into a
 * frame of the receiver: never left as a reference to the file, since a
 * shared origin's later writes reach the file. A restore gives a shared
 * file region dirty resident pages (never a shared slot), which is how
 * they reach the file. A clone of a file region is anonymous.
 *
 * Freeing snapshot S hands the pages it owns to the next older snapshot,
 * which was reading through S, unless that one has its own. Memory comes
 * back when the last page table that names a frame or slot lets go.
 *
 * Locking: every fault holds p->cow_lock for reading; the operations here
 * that change chains (taking, freeing, restoring, cloning, unmapping) hold
 * it for writing, so the structure is stable for faults and the writers
 * see no fault in flight. Between faults, page locks go origin first,
 * then its newest snapshot (a push); a fault reading through a chain
 * takes the pages it passes with trylock and starts over when one is
 * busy, because it already holds its own page lock, out of that order.
 * Teardown of a region waits for faults holding it, so regions are torn
 * down only after cow_lock is released.
 */
#include "internal.h"
#include "fault.h"
#include "policy.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct snap_chain {
	struct region *origin; /* NULL once unmapped */
	struct upager_snapshot *oldest, *newest;
	struct upager_snapshot *fallback; /* origin unmapped: what it borrowed from */
	/* The origin is a file region: where the chain ends, a page the
	 * origin holds in no frame or slot (PTE_NONE, file_pages of them)
	 * is its file's. A descriptor of the chain's own, so that it
	 * outlives the origin's unmapping; -1 for other origins. */
	int file_fd;
	uint64_t file_off, file_bytes, file_pages;
};

struct upager_snapshot {
	struct upager *p;
	struct region *view;
	struct snap_chain *chain;
	struct upager_snapshot *older, *newer;
	struct upager_snapshot *next_all; /* p->snaps */
	unsigned readers;                 /* clones and chains that read through it */
	bool freed;                       /* released by the program (or never given to it) */
};

typedef struct upager_snapshot snap_t;

/* Regions to tear down once cow_lock is released. */
struct doomed {
	struct region *list;
};

static void snap_put(snap_t *s, struct doomed *d);

/* Off the pager's list now, torn down once cow_lock is released. */
static void doom(struct doomed *d, struct region *r)
{
	upager__region_unlist(r);
	r->dying = true;
	r->next = d->list;
	d->list = r;
}

/* ---- handing a version over ---- */

static void share_slot(struct upager *p, struct upte *from, struct upte *to)
{
	swap_get(&p->swap, from->slot - 1);
	to->slot = from->slot;
}

/* Page pg of chain c's file into a frame of dst, as the empty, locked
 * page `to`: always a copy, never a reference to the file, because a
 * shared origin's own writes reach the file later. */
static int give_file_page(struct snap_chain *c, struct region *dst, uint64_t pg, struct upte *to)
{
	struct upager *p = dst->p;
	uint64_t at = pg << p->page_shift;
	size_t len = c->file_bytes - at < p->page_size ? (size_t)(c->file_bytes - at)
						       : p->page_size;
	int64_t frame = upager__get_frame(p);
	int ret;

	if (frame < 0)
		return (int)frame;
	ret = upager__file_read_page(p, c->file_fd, c->file_off + at, len, dst, pg);
	if (ret < 0) {
		frames_free(&p->frames, (uint32_t)frame);
		return ret;
	}
	upager__page_install_unmapped(dst, pg, to, (uint32_t)frame, PTE_OWNED);
	STAT_INC(p, pages_copied);
	return 0;
}

/* The chain whose file holds the pages origin r has in no frame or slot
 * (NULL: r is no file region's origin). */
static struct snap_chain *file_chain(struct region *r)
{
	return !r->self && r->chain && r->chain->file_fd >= 0 ? r->chain : NULL;
}

/*
 * Makes the empty, locked page `to` (page pg of dst) an owned copy of the
 * locked page `from` of src (NULL: a page never touched, so zero, or if
 * fc is a file region's chain, what the file holds there).
 * will_read: the copy is about to be read, so a resident page is copied
 * into a frame even where its swap slot could be shared.
 */
static int give_version(struct region *src, struct upte *from, struct snap_chain *fc,
			struct region *dst, uint64_t pg, struct upte *to, bool will_read)
{
	struct upager *p = dst->p;
	uint32_t f = from ? pte_flags(from) : 0;
	bool clean;
	int64_t frame;

	switch (pte_state(f)) {
	case PTE_NONE:
		if (fc && fc->file_fd >= 0 && pg < fc->file_pages)
			return give_file_page(fc, dst, pg, to);
		pte_update(to, PTE_STATE_MASK, PTE_NONE | PTE_OWNED);
		STAT_INC(p, pages_shared);
		return 0;
	case PTE_POISONED:
		pte_update(to, PTE_STATE_MASK, PTE_POISONED | PTE_OWNED);
		return 0;
	case PTE_SWAPPED:
		share_slot(p, from, to);
		pte_update(to, PTE_STATE_MASK, PTE_SWAPPED | PTE_OWNED);
		STAT_INC(p, pages_shared);
		return 0;
	}
	clean = from->slot && !(f & PTE_DIRTY);
	frame = clean && !will_read ? -1 : upager__get_frame(p);
	if (frame < 0) {
		if (!clean)
			return (int)frame;
		share_slot(p, from, to);
		pte_update(to, PTE_STATE_MASK, PTE_SWAPPED | PTE_OWNED);
		STAT_INC(p, pages_shared);
		return 0;
	}
	/* pwrite rather than a store through the pager view: the page is
	 * new to dst's memfd, and a store would first take a page fault on
	 * the view (most of a copy's cost on this kind of machine). */
	ssize_t put = pwrite(dst->memfd, region_pview(src, pg), p->page_size,
			     (off_t)(pg << p->page_shift));
	if (put != (ssize_t)p->page_size) {
		frames_free(&p->frames, (uint32_t)frame);
		return put < 0 ? -errno : -EIO;
	}
	upager__page_install_unmapped(dst, pg, to, (uint32_t)frame, PTE_OWNED);
	if (clean) {
		/* The copy is as clean as its source: same swap copy. */
		share_slot(p, from, to);
		pte_update(to, PTE_DIRTY, 0);
	}
	STAT_INC(p, pages_copied);
	return 0;
}

/* ---- the origin's side ---- */

bool upager__cow_shared(struct region *r, uint64_t pg)
{
	snap_t *n = r->chain ? r->chain->newest : NULL;
	struct upte *ne;

	if (!n)
		return false;
	/* Stable under r's page lock: only a push from r, or a read through
	 * to r's page (which needs that lock), makes it owned. */
	ne = pt_lookup(&n->view->pt, pg);
	return !ne || !(pte_flags(ne) & PTE_OWNED);
}

/*
 * Gives page pg of dst (a snapshot's view) its own copy of the locked page
 * `from` of src, unless it has one; dst's page lock is taken here, after
 * src's (a push's order). poison_on_failure: src's copy is going away, so
 * a page that could not be given is lost (SIGBUS on a read rather than
 * wrong bytes). Returns 1 if it gave, 0 if dst had its own, or a negative
 * code.
 */
static int give_unless_owned(struct region *src, struct upte *from, struct region *dst, uint64_t pg,
			     bool poison_on_failure)
{
	struct upte *to = pt_get(&dst->pt, pg);
	int ret = 0;

	if (!to)
		return -ENOMEM;
	upager__pte_lock(to);
	if (!(pte_flags(to) & PTE_OWNED)) {
		ret = give_version(src, from, file_chain(src), dst, pg, to, false);
		if (ret == 0)
			ret = 1;
		else if (poison_on_failure)
			pte_update(to, PTE_STATE_MASK, PTE_POISONED | PTE_OWNED);
	}
	upager__pte_unlock(to);
	return ret;
}

int upager__cow_push(struct region *r, uint64_t pg, struct upte *e)
{
	return give_unless_owned(r, e, r->chain->newest->view, pg, false);
}

/* ---- the borrower's side ---- */

#define HELD_MAX 4

struct held {
	struct upte *e[HELD_MAX];
	unsigned n;
};

static void held_release(struct held *h)
{
	while (h->n)
		upager__pte_unlock(h->e[--h->n]);
}

static bool held_try(struct held *h, struct upte *e)
{
	if (h->n == HELD_MAX || !upager__pte_trylock(e))
		return false;
	h->e[h->n++] = e;
	return true;
}

/*
 * Finds the page pg that a reader of chain c sees, starting at snapshot s
 * (NULL: past the newest). own is the reader's own page, locked by the
 * caller (the newest snapshot's, when the reader is that snapshot). On 0,
 * *vr and *ve are the version's region and page, locked (ve NULL: zero);
 * *vc is the chain whose end it is (an origin's page, or past an origin
 * that was unmapped), whose file holds it if it is in no frame or slot,
 * or NULL if it is a snapshot's own.
 */
static int find_version(struct snap_chain *c, snap_t *s, uint64_t pg, struct upte *own,
			struct held *h, struct region **vr, struct upte **ve,
			struct snap_chain **vc)
{
	*vc = NULL;
	for (;;) {
		for (; s; s = s->newer) {
			struct upte *se;
			if (s->newer) {
				/* Only the newest receives pushes; an older one
				 * gains a page only by reading through, which
				 * gives it the same version. */
				se = pt_lookup(&s->view->pt, pg);
				if (!se || !(pte_flags(se) & PTE_OWNED))
					continue;
			} else {
				/* The newest is held, owned or not, so that no
				 * push can change the origin's page under us. */
				se = pt_get(&s->view->pt, pg);
				if (!se)
					return -ENOMEM;
			}
			if (se != own && !held_try(h, se))
				return COW_RETRY;
			if (pte_flags(se) & PTE_OWNED) {
				*vr = s->view;
				*ve = se;
				return 0;
			}
		}
		struct region *o = c->origin;
		if (o) {
			struct upte *oe = pt_lookup(&o->pt, pg);
			if (oe && oe != own && !held_try(h, oe))
				return COW_RETRY;
			if (!o->backing || (oe && (pte_flags(oe) & PTE_OWNED))) {
				*vr = o;
				*ve = oe;
				*vc = c;
				return 0;
			}
			s = o->backing;
		} else {
			s = c->fallback;
		}
		if (!s) {
			*vr = NULL;
			*ve = NULL;
			*vc = c;
			return 0;
		}
		/* A snapshot's view never changes: what was passed on the
		 * way here no longer matters. */
		held_release(h);
		c = s->chain;
	}
}

int upager__cow_read_through(struct region *r, uint64_t pg, struct upte *e, bool write)
{
	struct held h = { .n = 0 };
	struct snap_chain *vc;
	struct region *vr;
	struct upte *ve;
	int ret;

	if (r->self)
		ret = find_version(r->self->chain, r->self->newer, pg, e, &h, &vr, &ve, &vc);
	else
		ret = find_version(r->backing->chain, r->backing, pg, e, &h, &vr, &ve, &vc);
	if (ret == 0) {
		if (write)
			STAT_INC(r->p, faults_cow);
		ret = give_version(vr, ve, vc, r, pg, e, true);
	}
	held_release(&h);
	return ret;
}

/* ---- taking a snapshot ---- */

/* protect_writable()'s working arrays, kept by the pager from its first
 * snapshot on: fresh memory would cost a page fault per 4 KiB in every
 * snapshot. Frames are sorted by the page they hold. */
struct wp_scratch {
	uint32_t *frames, *tmp;
	uint32_t count[1 << 16];
};

static struct wp_scratch *wp_scratch(struct upager *p)
{
	if (!p->cow_scratch) {
		struct wp_scratch *w = malloc(sizeof(*w) +
					      2 * (size_t)p->nframes * sizeof(uint32_t));
		if (!w)
			return NULL;
		w->frames = (uint32_t *)(w + 1);
		w->tmp = w->frames + p->nframes;
		p->cow_scratch = w;
	}
	return p->cow_scratch;
}

/* Sorts n frame numbers by the page they hold (their records are stable:
 * the caller holds those pages' locks). Radix sort, 16 bits a pass, as
 * few passes as the region's page numbers need. */
static void sort_frames(struct upager *p, struct wp_scratch *w, size_t n, uint64_t npages)
{
	struct frame *frames = p->frames.frames;
	uint32_t *a = w->frames, *tmp = w->tmp;

	for (unsigned shift = 0; shift < 64 && (npages - 1) >> shift; shift += 16) {
		memset(w->count, 0, sizeof(w->count));
		for (size_t i = 0; i < n; i++)
			w->count[(frames[a[i]].pg >> shift) & 0xffff]++;
		uint32_t sum = 0;
		for (size_t d = 0; d < (1 << 16); d++) {
			uint32_t c = w->count[d];
			w->count[d] = sum;
			sum += c;
		}
		for (size_t i = 0; i < n; i++)
			tmp[w->count[(frames[a[i]].pg >> shift) & 0xffff]++] = a[i];
		uint32_t *t = a;
		a = tmp;
		tmp = t;
	}
	if (a != w->frames)
		memcpy(w->frames, a, n * sizeof(*a));
}

/*
 * Write-protects r's writable pages so that their next write faults. The
 * walk is over the frames, not the region: its cost follows the resident
 * set, whatever the region's size. Pages are locked while they are
 * collected and protected in runs of consecutive pages, one call a run.
 * A page pinned for writing must stay writable (upager_pin's promise):
 * the new snapshot, view, gets its copy at once instead.
 */
static int protect_writable(struct region *r, struct region *view)
{
	struct upager *p = r->p;
	struct wp_scratch *w = wp_scratch(p);
	struct frame *frames = p->frames.frames;
	size_t n = 0;
	int err = 0;

	if (!w)
		return -ENOMEM;
	/* A region being torn down waits for shedders before it frees the
	 * page table a stale frame record points into. */
	atomic_fetch_add(&p->shedders, 1);
	atomic_thread_fence(memory_order_seq_cst);
	for (uint32_t i = 0; i < p->nframes; i++) {
		struct frame *fr = &frames[i];
		struct upte *e = atomic_load_explicit(&fr->pte, memory_order_relaxed);
		if (!e || !(atomic_load_explicit(&e->flags, memory_order_relaxed) & PTE_WRITABLE))
			continue;
		upager__pte_lock(e);
		uint32_t f = pte_flags(e);
		if (pte_state(f) != PTE_RESIDENT || !(f & PTE_WRITABLE) || e->frame != i ||
		    fr->pte != e || fr->region != r) {
			upager__pte_unlock(e);
			continue;
		}
		if (!atomic_load(&fr->pins)) {
			w->frames[n++] = i;
			continue;
		}
		int ret = give_unless_owned(r, e, view, fr->pg, false);
		if (ret < 0 && !err)
			err = upager__fail(ret, "copying a pinned page for a snapshot: %s",
					   upager_strerror(ret));
		upager__pte_unlock(e);
	}
	sort_frames(p, w, n, r->npages);
	for (size_t i = 0; i < n;) {
		size_t j = i + 1;
		while (j < n && frames[w->frames[j]].pg == frames[w->frames[j - 1]].pg + 1)
			j++;
		int ret = p->backend->wrprotect(r, frames[w->frames[i]].pg, j - i);
		if (ret < 0 && !err)
			err = upager__fail(ret, "write-protecting %zu pages for a snapshot: %s",
					   j - i, upager_strerror(ret));
		for (; i < j; i++) {
			struct upte *e = frames[w->frames[i]].pte;
			if (ret == 0)
				pte_update(e, PTE_WRITABLE, 0);
			upager__pte_unlock(e);
		}
	}
	atomic_fetch_sub(&p->shedders, 1);
	return err;
}

static void chain_free(struct snap_chain *c)
{
	upager__fd_close(c->file_fd);
	free(c);
}

static void snap_list_remove(struct upager *p, snap_t *s)
{
	snap_t **pp;

	for (pp = &p->snaps; *pp; pp = &(*pp)->next_all) {
		if (*pp == s) {
			*pp = s->next_all;
			break;
		}
	}
	atomic_fetch_sub(&p->nsnapshots, 1);
}

/* Takes a snapshot of r; cow_lock held for writing. */
static int snap_take(struct region *r, bool for_program, snap_t **out, struct doomed *d)
{
	struct upager *p = r->p;
	struct region *view;
	snap_t *s;
	int err;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	if (!r->chain) {
		struct snap_chain *c = calloc(1, sizeof(*c));
		if (!c) {
			free(s);
			return -ENOMEM;
		}
		c->origin = r;
		c->file_fd = -1;
		if (r->is_file) {
			c->file_fd = upager__fd_keep(fcntl(r->file_fd, F_DUPFD_CLOEXEC, 0));
			if (c->file_fd < 0) {
				err = upager__fail(
					-errno,
					"a snapshot of file region %p needs a descriptor of its own: %s",
					(void *)r->base, strerror(errno));
				free(c);
				free(s);
				return err;
			}
			c->file_off = r->file_off;
			c->file_bytes = r->file_bytes;
			c->file_pages = r->file_pages;
		}
		r->chain = c;
	}
	err = upager__region_new(p, r->len, &view);
	if (err < 0)
		goto fail;
	view->readonly = true;
	view->self = s;
	err = upager__region_publish(view);
	if (err < 0) {
		upager__region_destroy(view);
		goto fail;
	}
	/* The kernel refuses writes to the view before any fault. */
	if (p->backend->set_access)
		err = p->backend->set_access(view, 0, view->npages, UPAGER_PROT_READ);
	if (err == 0)
		err = protect_writable(r, view);
	if (err < 0) {
		doom(d, view);
		goto fail;
	}
	s->p = p;
	s->view = view;
	s->freed = !for_program;
	s->chain = r->chain;
	s->older = r->chain->newest;
	if (s->older)
		s->older->newer = s;
	else
		r->chain->oldest = s;
	r->chain->newest = s;
	s->next_all = p->snaps;
	p->snaps = s;
	atomic_fetch_add(&p->nsnapshots, 1);
	*out = s;
	return 0;

fail:
	if (!r->chain->newest) {
		chain_free(r->chain);
		r->chain = NULL;
	}
	free(s);
	return err;
}

UPAGER_API int upager_snapshot(upager_t *p, void *region, upager_snapshot_t **out)
{
	struct doomed d = { NULL };
	struct region *r;
	int err;

	upager__clear_error();
	if (!p || !out)
		return -EINVAL;
	pthread_rwlock_wrlock(&p->cow_lock);
	r = upager__region_at(p, region);
	if (!r)
		err = upager__fail(UPAGER_ENOREGION,
				   "upager_snapshot: %p is not the base of a region", region);
	else if (r->self)
		err = upager__fail(
			UPAGER_ESNAPSHOT,
			"upager_snapshot: %p is a snapshot's view, which never changes; use the snapshot",
			region);
	else
		err = snap_take(r, true, out, &d);
	pthread_rwlock_unlock(&p->cow_lock);
	upager__cow_teardown(d.list);
	return err;
}

UPAGER_API int upager_snapshot_map(upager_snapshot_t *s, void **addr)
{
	upager__clear_error();
	if (!s || !addr)
		return -EINVAL;
	*addr = (void *)s->view->base;
	return 0;
}

/* ---- reading a snapshot ---- */

UPAGER_API int upager_snapshot_read(upager_snapshot_t *s, size_t off, void *buf, size_t len)
{
	struct region *v;
	struct upager *p;
	char *page;
	int err = 0;

	upager__clear_error();
	if (!s || (!buf && len))
		return -EINVAL;
	v = s->view;
	p = s->p;
	if (off > v->len || len > v->len - off)
		return upager__fail(
			-EINVAL,
			"upager_snapshot_read: [%zu, +%zu) is not inside the %zu-byte snapshot",
			off, len, v->len);
	/* Copied through a page of our own: buf may be in a region, and a
	 * fault on it must not wait for a lock this thread holds. */
	page = malloc(p->page_size);
	if (!page)
		return -ENOMEM;
	while (len && !err) {
		uint64_t pg = off >> p->page_shift;
		size_t in = off & (p->page_size - 1);
		size_t n = p->page_size - in < len ? p->page_size - in : len;
		struct upte *e = pt_get(&v->pt, pg);
		bool copied = false;

		if (!e) {
			err = -ENOMEM;
			break;
		}
		for (int tries = 0; !copied && tries < 1000; tries++) {
			upager__pte_lock(e);
			uint32_t f = pte_flags(e);
			if ((f & PTE_OWNED) && pte_state(f) == PTE_RESIDENT) {
				/* pread, not a load through the pager view: that
				 * would map the frame there too, and the RSS would
				 * count it twice (once more where the view's
				 * mapping has it) until its eviction. */
				ssize_t got = pread(v->memfd, page, n,
						    (off_t)((pg << p->page_shift) + in));
				if (got != (ssize_t)n)
					err = got < 0 ? -errno : -EIO;
				else
					copied = true;
			} else if ((f & PTE_OWNED) && pte_state(f) == PTE_NONE && !e->slot) {
				memset(page, 0, n);
				copied = true;
			}
			upager__pte_unlock(e);
			if (copied || err)
				break;
			/* Make it the snapshot's own without mapping it: a
			 * page nobody wrote becomes an owned zero page with no
			 * frame (a fault would zero-fill a frame, and its
			 * fault-around more, for every such page of a mostly
			 * empty range: upager-run's fork reads the heap's
			 * used span plus 64 MiB for a child). A busy page is
			 * waited for, as the fault path waits. */
			if (!(f & PTE_OWNED)) {
				int ret;
				do {
					pthread_rwlock_rdlock(&p->cow_lock);
					upager__pte_lock(e);
					ret = 0;
					if (!(pte_flags(e) & PTE_OWNED))
						ret = upager__cow_read_through(v, pg, e, false);
					upager__pte_unlock(e);
					pthread_rwlock_unlock(&p->cow_lock);
					if (ret == COW_RETRY)
						sched_yield();
				} while (ret == COW_RETRY);
				if (ret < 0) {
					err = ret;
					break;
				}
				continue;
			}
			/* A swapped page: bring it in, as a read of the view
			 * would. */
			if (upager__fault(v, v->base + (pg << p->page_shift), false, &err) !=
			    FAULT_DONE) {
				if (!err)
					err = -EFAULT;
				break;
			}
		}
		if (!copied) {
			if (!err)
				err = -EAGAIN;
			upager__fail(err, "upager_snapshot_read: page %llu: %s",
				     (unsigned long long)pg, upager_strerror(err));
			break;
		}
		memcpy((char *)buf, page, n);
		buf = (char *)buf + n;
		off += n;
		len -= n;
	}
	free(page);
	return err;
}

/* ---- freeing ---- */

void upager__cow_teardown(struct region *doomed)
{
	struct region *r;

	while ((r = doomed)) {
		doomed = r->next;
		r->next = NULL;
		upager__region_teardown(r);
	}
}

struct handover {
	struct region *from;
	struct region *to;
	int err;
};

/* Gives `to` (a snapshot's view) the pages `from` owns that `to` does not. */
static bool hand_page(uint64_t pg, struct upte *e, void *arg)
{
	struct handover *h = arg;
	uint32_t f;

	if (!atomic_load_explicit(&e->flags, memory_order_relaxed) && !e->slot)
		return false;
	upager__pte_lock(e);
	f = pte_flags(e);
	/* A page `from` borrows is the same for `to`; so is a zero page of
	 * a region that borrows from nothing. */
	bool own = (f & PTE_OWNED) || !(h->from->self || h->from->backing);
	if (own && (pte_state(f) != PTE_NONE || e->slot || h->from->self || h->from->backing)) {
		int ret = give_unless_owned(h->from, e, h->to, pg, true);
		if (ret < 0 && !h->err)
			h->err = ret;
	}
	upager__pte_unlock(e);
	return false;
}

static void chain_drop(struct snap_chain *c, struct doomed *d)
{
	if (c->origin)
		c->origin->chain = NULL;
	else if (c->fallback)
		snap_put(c->fallback, d);
	chain_free(c);
}

/* Unlinks s from its chain and tears it down; cow_lock held for writing. */
static void snap_destroy(snap_t *s, struct doomed *d)
{
	struct upager *p = s->p;
	struct snap_chain *c = s->chain;

	if (s->older) {
		struct handover h = { s->view, s->older->view, 0 };
		pt_for_each(&s->view->pt, hand_page, &h);
	}
	if (s->older)
		s->older->newer = s->newer;
	else
		c->oldest = s->newer;
	if (s->newer)
		s->newer->older = s->older;
	else
		c->newest = s->older;
	if (!c->oldest)
		chain_drop(c, d);
	snap_list_remove(p, s);
	s->view->self = NULL;
	doom(d, s->view);
	free(s);
}

/* A reader (clone, chain) of s lets go. */
static void snap_put(snap_t *s, struct doomed *d)
{
	if (--s->readers == 0 && s->freed)
		snap_destroy(s, d);
}

/* Takes cow_lock for writing if s is still the program's; else an error
 * naming `who`. */
static int lock_live(snap_t *s, const char *who)
{
	upager__clear_error();
	if (!s)
		return -EINVAL;
	pthread_rwlock_wrlock(&s->p->cow_lock);
	if (s->freed) {
		pthread_rwlock_unlock(&s->p->cow_lock);
		return upager__fail(-EINVAL, "%s: the snapshot was freed", who);
	}
	return 0;
}

/* Drops every pin on a page of the view, as unmapping a region drops its
 * pins: once freed, the view is no longer the program's to unpin, even
 * while a clone still reads through it. The page goes back to the policy
 * (pinned pages are out of it). cow_lock held for writing. */
static bool drop_view_pin(uint64_t pg, struct upte *e, void *arg)
{
	struct region *view = arg;
	struct upager *p = view->p;

	if (pte_state(atomic_load_explicit(&e->flags, memory_order_relaxed)) != PTE_RESIDENT)
		return false;
	upager__pte_lock(e);
	if (pte_state(pte_flags(e)) == PTE_RESIDENT &&
	    atomic_exchange(&p->frames.frames[e->frame].pins, 0)) {
		atomic_fetch_sub(&p->pinned, 1);
		upager__policy_insert(p, e->frame, region_page_key(view, pg), false);
	}
	upager__pte_unlock(e);
	return false;
}

UPAGER_API int upager_snapshot_free(upager_snapshot_t *s)
{
	struct doomed d = { NULL };
	int err = lock_live(s, "upager_snapshot_free");

	if (err)
		return err;
	struct upager *p = s->p;
	pt_for_each(&s->view->pt, drop_view_pin, s->view);
	s->freed = true;
	if (s->readers == 0)
		snap_destroy(s, &d);
	pthread_rwlock_unlock(&p->cow_lock);
	upager__cow_teardown(d.list);
	return 0;
}

struct region *upager__cow_region_leaving(struct region *r)
{
	struct doomed d = { NULL };
	struct snap_chain *c = r->chain;

	if (c) {
		struct handover h = { r, c->newest->view, 0 };
		pt_for_each(&r->pt, hand_page, &h);
		c->origin = NULL;
		c->fallback = r->backing; /* its reference moves to the chain */
		r->backing = NULL;
		r->chain = NULL;
	}
	if (r->backing) {
		snap_put(r->backing, &d);
		r->backing = NULL;
	}
	return d.list;
}

void upager__cow_close(struct upager *p)
{
	snap_t *s;

	/* A chain goes with its newest snapshot, and only then. */
	for (s = p->snaps; s; s = s->next_all)
		if (s->chain->newest != s)
			s->chain = NULL;
	while ((s = p->snaps)) {
		p->snaps = s->next_all;
		if (s->chain)
			chain_free(s->chain);
		free(s);
	}
	free(p->cow_scratch);
	p->cow_scratch = NULL;
	atomic_store(&p->nsnapshots, 0);
}

/* ---- restore ---- */

struct restore {
	snap_t *from;  /* the snapshot being restored */
	snap_t *owner; /* the snapshot whose pages are being walked */
	struct region *origin;
	int err;
};

/* Puts the bytes of the locked page ve of vr (a snapshot's own: in a
 * frame, in swap, or zero) into dst, a page of a pager view. */
static int version_bytes(struct upager *p, struct region *vr, uint64_t pg, struct upte *ve,
			 char *dst)
{
	uint32_t vf = pte_flags(ve);

	if (pte_state(vf) == PTE_RESIDENT) {
		memcpy(dst, region_pview(vr, pg), p->page_size);
	} else if (pte_state(vf) == PTE_SWAPPED) {
		ssize_t got = pread(p->swap.fd, dst, p->page_size,
				    (off_t)((ve->slot - 1) * p->page_size));
		if (got != (ssize_t)p->page_size)
			return got < 0 ? -errno : -EIO;
		STAT_ADD(p, bytes_read, p->page_size);
	} else {
		memset(dst, 0, p->page_size);
	}
	return 0;
}

/* Makes the origin's locked page oe the contents of the locked page ve. */
static int restore_page(struct region *o, uint64_t pg, struct upte *oe, struct region *vr,
			struct upte *ve)
{
	struct upager *p = o->p;
	uint32_t vf = pte_flags(ve), of = pte_flags(oe);
	uint32_t own = o->backing ? PTE_OWNED : 0;
	int ret;

	if (pte_state(of) == PTE_RESIDENT && pte_state(vf) != PTE_POISONED) {
		/* In place: the frame stays, pinned or not. */
		ret = version_bytes(p, vr, pg, ve, region_pview(o, pg));
		if (ret < 0)
			return ret;
		pte_drop_swap_copy(p, oe);
		pte_update(oe, 0, PTE_DIRTY | own);
		return 0;
	}
	if (region_file_page(o, pg) && (o->file_shared || pte_state(vf) == PTE_NONE) &&
	    pte_state(vf) != PTE_POISONED) {
		/* A shared file region's page comes back resident and dirty,
		 * never as a shared swap slot: only a dirty resident page is
		 * written to the file (at eviction, sync or unmap). So does a
		 * private one's page of zeros: left PTE_NONE, it would read
		 * as the file. (Evicted, it goes to swap: upager__is_zero() drops
		 * no file page.) */
		int64_t frame = upager__get_frame(p);
		if (frame < 0)
			return (int)frame;
		ret = upager__page_discard(o, pg, oe);
		if (ret == 0)
			ret = version_bytes(p, vr, pg, ve, region_pview(o, pg));
		if (ret < 0) {
			upager__punch(o, pg, 1);
			frames_free(&p->frames, (uint32_t)frame);
			return ret;
		}
		upager__page_install_unmapped(o, pg, oe, (uint32_t)frame, 0);
		return 0;
	}
	ret = upager__page_discard(o, pg, oe);
	if (ret < 0)
		return ret;
	/* A snapshot's own page is never left to the file (give_file_page),
	 * so its NONE is a zero page: no file chain here. */
	ret = give_version(vr, ve, NULL, o, pg, oe, false);
	if (ret == 0 && !own)
		pte_update(oe, PTE_OWNED, 0);
	return ret;
}

static bool restore_one(uint64_t pg, struct upte *ke, void *arg)
{
	struct restore *rs = arg;
	struct region *o = rs->origin;
	snap_t *n = rs->from->chain->newest;

	if (!(atomic_load_explicit(&ke->flags, memory_order_relaxed) & PTE_OWNED))
		return false;
	/* Restored already, from an older owner. */
	for (snap_t *j = rs->from; j != rs->owner; j = j->newer) {
		struct upte *je = pt_lookup(&j->view->pt, pg);
		if (je && (pte_flags(je) & PTE_OWNED))
			return false;
	}
	struct upte *oe = pt_get(&o->pt, pg);
	if (!oe) {
		rs->err = -ENOMEM;
		return true;
	}
	int ret = 0;
	upager__pte_lock(oe);
	/* A clone's borrowed page first becomes its own, so that it can be
	 * handed on. The evictor may hold a page on the way: try again. */
	while (o->backing && !(pte_flags(oe) & PTE_OWNED) &&
	       (ret = upager__cow_read_through(o, pg, oe, false)) == COW_RETRY) {
		upager__pte_unlock(oe);
		sched_yield();
		upager__pte_lock(oe);
	}
	upager__pte_lock(ke);
	/* The newest snapshot keeps what the origin holds now (the owner,
	 * whose page is locked above, has its own already). */
	if (ret == 0 && n != rs->owner)
		ret = upager__cow_push(o, pg, oe);
	if (ret >= 0)
		ret = restore_page(o, pg, oe, rs->owner->view, ke);
	upager__pte_unlock(ke);
	upager__pte_unlock(oe);
	if (ret < 0) {
		rs->err = upager__fail(ret, "upager_snapshot_restore: page %llu: %s",
				       (unsigned long long)pg, upager_strerror(ret));
		return true;
	}
	return false;
}

UPAGER_API int upager_snapshot_restore(upager_snapshot_t *s)
{
	struct restore rs = { 0 };
	int err = lock_live(s, "upager_snapshot_restore");

	if (err)
		return err;
	struct upager *p = s->p;
	rs.from = s;
	rs.origin = s->chain->origin;
	if (!rs.origin) {
		pthread_rwlock_unlock(&p->cow_lock);
		return upager__fail(
			UPAGER_EORIGIN,
			"upager_snapshot_restore: the snapshot's region has been unmapped");
	}
	for (rs.owner = s; rs.owner && !rs.err; rs.owner = rs.owner->newer)
		pt_for_each(&rs.owner->view->pt, restore_one, &rs);
	pthread_rwlock_unlock(&p->cow_lock);
	return rs.err;
}

/* ---- clones ---- */

UPAGER_API int upager_clone(upager_t *p, void *region, void **new_region)
{
	struct doomed d = { NULL };
	struct region *r, *c;
	snap_t *src;
	int err;

	upager__clear_error();
	if (!p || !new_region)
		return -EINVAL;
	pthread_rwlock_wrlock(&p->cow_lock);
	r = upager__region_at(p, region);
	if (!r) {
		err = upager__fail(
			UPAGER_ENOREGION,
			"upager_clone: %p is not the base of a region or a snapshot's view",
			region);
		goto out;
	}
	if (r->self) {
		src = r->self;
	} else {
		err = snap_take(r, false, &src, &d);
		if (err < 0)
			goto out;
	}
	err = upager__region_new(p, r->len, &c);
	if (err == 0) {
		c->backing = src;
		err = upager__region_publish(c);
		if (err < 0)
			upager__region_destroy(c);
		else
			src->readers++;
	}
	if (err < 0) {
		if (src->freed && !src->readers)
			snap_destroy(src, &d);
		goto out;
	}
	*new_region = (void *)c->base;
out:
	pthread_rwlock_unlock(&p->cow_lock);
	upager__cow_teardown(d.list);
	return err;
}
