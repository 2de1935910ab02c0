// SPDX-License-Identifier: MIT
/*
 * Eviction: freeing frames.
 *
 * upager__reclaim() evicts a batch of victims. It asks the policy for
 * victims under the policy lock and claims each with a trylock on its page
 * (a page whose lock is busy is being faulted on, so it counts as
 * referenced and the policy is asked again; see choose_victims()). Pinned
 * pages are not in the policy at all (region.c). Then, with only the
 * victims' page locks held:
 *
 *   1. writes are stopped: a writable mapping is write-protected, so the
 *      contents cannot change under the write (reads may go on);
 *   2. each victim is sorted into one of three fates:
 *        clean with a valid swap copy  -> dropped, no write ("clean")
 *        only zeros                    -> dropped, reads as zero ("zero")
 *        dirty                         -> written to a fresh slot
 *      A dirty anonymous page's bytes are copied out of the memfd into
 *      the ring's bounce buffer, where the zero check and the write read
 *      them (stage_victims()). Victims are in page order when slots are
 *      handed out, so neighbouring pages get neighbouring slots and one
 *      write;
 *   3. all writes of the batch go out in one io_uring submission;
 *   4. each victim whose write succeeded (or needed none) is punched out
 *      of its memfd, its entry becomes SWAPPED or NONE, its frame is
 *      freed and its page unlocked; a fault waiting on it then reads it
 *      back. A victim whose write failed stays resident and dirty, its
 *      slot is retired as bad, and nothing is lost.
 *
 * The background evictor (the pager's kswapd) runs the same function
 * whenever free frames drop below a low watermark, until they are above
 * the high one, so that a fault rarely has to wait for a frame. A miss
 * that reads its page in does that batch itself instead, while its read
 * is on the way (upager__evict_meanwhile).
 *
 * Aging: when a policy consumes a referenced bit during victim selection
 * it calls env->age(); the frames wait in an age queue (sample.c) until
 * the policy lock is dropped.
 */
#include "internal.h"
#include "fault.h"
#include "policy.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* Inline: only the header is needed, nothing to link. */
#define XXH_INLINE_ALL
#include <xxhash.h>

#define MAX_BATCH 1024

/* FATE_UNPUNCHED: written (or needing no write) but its memory could not
 * be freed, so it keeps its frame. */
/* FATE_FILE: dirty in a shared file region, written to its file. */
enum fate { FATE_WRITE, FATE_CLEAN, FATE_ZERO, FATE_FAILED, FATE_UNPUNCHED, FATE_FILE };

struct victim {
	struct region *r;
	struct upte *e;
	uint64_t pg;
	uint32_t frame;
	enum fate fate;
	uint64_t slot; /* slot + 1 for FATE_WRITE */
	/* Where its write takes the bytes from: a copy in the ring's
	 * bounce buffer, or the pager view (which maps the page then). NULL
	 * for a page whose copy is still to be made (stage_victims). */
	const char *data;
	bool in_pview; /* data is the pager view: the view must let it go */
};

unsigned upager__shed_mappings(struct upager *p, unsigned n)
{
	unsigned done = 0;

	/* Announce ourselves before reading any frame record: a region's
	 * teardown frees its frames, then waits for shedders to leave
	 * before it frees the page table an old record points into. */
	atomic_fetch_add(&p->shedders, 1);
	atomic_thread_fence(memory_order_seq_cst);
	for (uint32_t i = 0; i < p->nframes && done < n; i++) {
		uint32_t f = atomic_fetch_add_explicit(&p->shed_hand, 1, memory_order_relaxed) %
			     p->nframes;
		struct frame *fr = &p->frames.frames[f];
		struct upte *e = atomic_load_explicit(&fr->pte, memory_order_relaxed);

		if (!e || !(atomic_load_explicit(&e->flags, memory_order_relaxed) & PTE_MAPPED) ||
		    !upager__pte_trylock(e))
			continue;
		/* Under the page's lock its frame record is stable. */
		uint32_t fl = pte_flags(e);
		if (pte_state(fl) == PTE_RESIDENT && e->frame == f && (fl & PTE_MAPPED) &&
		    fr->pte == e && !fr->region->dying && !atomic_load(&fr->pins) &&
		    p->backend->unmap(fr->region, fr->pg, 1) == 0) {
			pte_clear_mapped(p, e);
			done++;
		}
		upager__pte_unlock(e);
	}
	atomic_fetch_sub(&p->shedders, 1);
	return done;
}

static int by_page(const void *a, const void *b)
{
	const struct victim *x = a, *y = b;

	if (x->r != y->r)
		return x->r->id < y->r->id ? -1 : 1;
	return x->pg < y->pg ? -1 : x->pg > y->pg;
}

bool upager__is_zero(const void *buf, size_t len)
{
	const uint64_t *w = buf;
	size_t words = len / 8, i = 0;

	for (; i + 8 <= words; i += 8) {
		if (w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] |
		    w[i + 7])
			return false;
	}
	for (; i < words; i++)
		if (w[i])
			return false;
	for (size_t b = words * 8; b < len; b++)
		if (((const char *)buf)[b])
			return false;
	return true;
}

/* XXH3: some 0.2 us for 4 KiB here, against the 10-15 us of writing the
 * page in a batch. 128 bits, so that a changed page passes for unchanged
 * with a probability of 2^-128. */
void upager__page_sum(const struct upager *p, const void *page, uint64_t sum[2])
{
	XXH128_hash_t h = XXH3_128bits_withSeed(page, p->page_size, p->sum_seed);

	sum[0] = h.low64;
	sum[1] = h.high64;
}

/*
 * A busy frame (its page lock held by a fault, or, defensively, pinned)
 * cannot be a victim now. It is first reported as referenced, which moves
 * it on in policies that order by recency. A policy that ignores
 * references (FIFO, 2Q's A1in) or moves it where it is named again (ARC
 * or CAR with it alone in T2) names it a second time: then it is taken
 * out of the policy until the selection ends, so the policy names its
 * next candidate. All of this happens under the policy lock, so no other
 * hook sees the frame missing, and its frame record is stable while the
 * policy tracks it (the key for putting it back).
 */
struct held {
	uint32_t frame;
	uint64_t key;
};

#define MAX_SEEN 64
#define MAX_HELD (MAX_BATCH + 64)

/* Claims up to want victims; returns how many. */
static unsigned choose_victims(struct upager *p, struct victim *v, unsigned want,
			       struct age_queue *q, struct held *held)
{
	struct policy *pol = p->policy;
	unsigned n = 0, busy = 0, nseen = 0, nheld = 0;
	uint32_t seen[MAX_SEEN];

	pthread_mutex_lock(&p->policy_lock);
	upager__age_queue_open(q);
	while (n < want && busy < want + 64) {
		int64_t f = pol->ops->victim(pol->state);
		if (f < 0)
			break;
		if (f >= p->nframes) {
			/* A broken policy: report it once, evict nothing. */
			if (!p->policy_broken) {
				p->policy_broken = true;
				/* On the fault path, maybe in a signal handler:
				 * no stdio. */
				char buf[200];
				struct asbuf b = { buf, 0, sizeof(buf) };
				as_puts(&b, "upager: policy ");
				as_puts(&b, pol->ops->name);
				as_puts(&b, " named frame ");
				as_dec(&b, (uint64_t)f);
				as_puts(&b, " as its victim; there are ");
				as_dec(&b, p->nframes);
				as_puts(&b, " frames\n");
				upager__as_write(buf);
			}
			break;
		}
		struct frame *fr = &p->frames.frames[f];
		struct upte *e = atomic_load_explicit(&fr->pte, memory_order_relaxed);
		if (e && upager__pte_trylock(e)) {
			if (pte_state(pte_flags(e)) == PTE_RESIDENT && e->frame == (uint32_t)f &&
			    !atomic_load_explicit(&fr->pins, memory_order_relaxed)) {
				pol->ops->remove(pol->state, (uint32_t)f, POLICY_EVICTED);
				atomic_fetch_add_explicit(&fr->region->refs, 1,
							  memory_order_acquire);
				v[n++] = (struct victim){ .r = fr->region,
							  .e = e,
							  .pg = fr->pg,
							  .frame = (uint32_t)f,
							  .fate = FATE_WRITE };
				continue;
			}
			/* Pinned (pinned frames leave the policy, so not
			 * expected), or not this frame's page (cannot happen
			 * while the record and the entry change together under
			 * the page lock): keep it. */
			upager__pte_unlock(e);
		}
		busy++;
		unsigned i = 0;
		while (i < nseen && seen[i] != (uint32_t)f)
			i++;
		if (i == nseen && nseen < MAX_SEEN) {
			seen[nseen++] = (uint32_t)f;
			pol->ops->reference(pol->state, (uint32_t)f, false);
		} else if (fr->region && nheld < MAX_HELD) {
			held[nheld++] = (struct held){ (uint32_t)f,
						       region_page_key(fr->region, fr->pg) };
			pol->ops->remove(pol->state, (uint32_t)f, POLICY_FREED);
		} else {
			break; /* cannot happen: a tracked frame has a record */
		}
	}
	for (unsigned i = 0; i < nheld; i++)
		pol->ops->insert(pol->state, held[i].frame, held[i].key, false);
	upager__age_queue_close();
	pthread_mutex_unlock(&p->policy_lock);
	return n;
}

/* Gives a victim that could not be evicted back to the policy. */
static void keep_resident(struct upager *p, struct victim *v)
{
	pthread_mutex_lock(&p->policy_lock);
	p->policy->ops->insert(p->policy->state, v->frame, region_page_key(v->r, v->pg), false);
	pthread_mutex_unlock(&p->policy_lock);
}

/* The kernel's default fault_around_bytes. */
#define FAULT_AROUND_BYTES ((uintptr_t)64 << 10)

static bool zap_takes(struct victim *x, bool pager_view)
{
	return pager_view ? x->fate != FATE_FAILED && x->in_pview
			  : (pte_flags(x->e) & PTE_MAPPED) != 0;
}

/*
 * Zaps runs of neighbouring victims from the application view (the mapped
 * ones, which then count as unmapped) or from the pager view (those
 * leaving that were read through it), in one upager__zap() call. If it
 * fails, nothing is assumed: the slower per-page paths follow.
 */
static void zap_victims(struct upager *p, struct victim *v, unsigned n, struct iovec *iov,
			bool pager_view)
{
	struct zap_list z = { .iov = iov };
	struct region *last_r = NULL;
	uint64_t last_end = 0;

	for (unsigned i = 0; i < n; i++) {
		if (!zap_takes(&v[i], pager_view))
			continue;
		struct region *r = v[i].r;
		uint64_t first = v[i].pg, end = v[i].pg + 1;
		if (pager_view) {
			/* The pager view's zero checks and writes are read
			 * faults there, and the kernel maps a read fault's
			 * resident neighbours with it (fault-around, a 64 KiB
			 * block): pages that stay resident would stay mapped
			 * in both views, counted twice in the RSS. So the
			 * zap takes the victims' whole blocks. */
			uintptr_t base = (uintptr_t)r->pview;
			uintptr_t at = (uintptr_t)region_pview(r, v[i].pg);
			uintptr_t lo = at & ~(uintptr_t)(FAULT_AROUND_BYTES - 1);
			uintptr_t hi = (at + p->page_size + FAULT_AROUND_BYTES - 1) &
				       ~(uintptr_t)(FAULT_AROUND_BYTES - 1);
			first = lo < base ? 0 : (lo - base) >> p->page_shift;
			end = (hi - base + p->page_size - 1) >> p->page_shift;
			if (end > r->npages)
				end = r->npages;
			if (r == last_r && first < last_end)
				first = last_end;
			if (first >= end)
				continue;
			last_r = r;
			last_end = end;
		}
		upager__zap_add(p, &z, r, first, end - first, pager_view);
	}
	if (!z.n || upager__zap_list(p, &z) < 0 || pager_view)
		return;
	for (unsigned i = 0; i < n; i++)
		pte_clear_mapped(p, v[i].e);
}

/* The next run of neighbouring victims at or after *i, failed ones
 * skipped: returns its first victim (n if none is left) and moves *i
 * past it. */
static unsigned next_run(struct victim *v, unsigned *i, unsigned n)
{
	while (*i < n && v[*i].fate == FATE_FAILED)
		(*i)++;
	unsigned first = *i;
	if (first < n) {
		unsigned j = first + 1;
		while (j < n && v[j].fate != FATE_FAILED && v[j].r == v[first].r &&
		       v[j].pg == v[j - 1].pg + 1)
			j++;
		*i = j;
	}
	return first;
}

/*
 * All the runs punched in one process_madvise(MADV_REMOVE) through the
 * pager view, where the kernel allows it: a batch of random victims is
 * a run per page, and a fallocate() per run cost 3.2 us a page here
 * against 1.0 us a page in one call. False if that could not be done
 * (then nothing is assumed, and punch_runs() goes run by run); injected
 * punch failures (test/punchfail) always go run by run.
 */
static bool punch_together(struct upager *p, struct victim *v, unsigned n, struct iovec *iov)
{
	unsigned k = 0, first;

	if (atomic_load_explicit(&p->punch_fail, memory_order_relaxed))
		return false;
	for (unsigned i = 0; (first = next_run(v, &i, n)) < n;)
		iov[k++] = (struct iovec){ region_pview(v[first].r, v[first].pg),
					   (size_t)(i - first) << p->page_shift };
	if (k < 2 || upager__advise_ranges(p, iov, k, MADV_REMOVE) < 0)
		return false;
	for (unsigned i = 0; (first = next_run(v, &i, n)) < n;)
		p->backend->evicted(v[first].r, v[first].pg, i - first);
	return true;
}

/* Punches runs of neighbouring victims out of their memfd, one call
 * for all where it can. */
static void punch_runs(struct upager *p, struct victim *v, unsigned n, struct iovec *iov)
{
	unsigned first;

	if (punch_together(p, v, n, iov))
		return;
	for (unsigned i = 0; (first = next_run(v, &i, n)) < n;) {
		if (upager__punch(v[first].r, v[first].pg, i - first) == 0)
			p->backend->evicted(v[first].r, v[first].pg, i - first);
		else
			for (unsigned k = first; k < i; k++)
				v[k].fate = FATE_UNPUNCHED;
	}
}

/* The reclaim batch's working memory, in the scratch area of the ring
 * the reclaimer holds. */
struct reclaim_scratch {
	struct age_queue q;
	struct held held[MAX_HELD];
	struct victim v[MAX_BATCH];
	struct io_req reqs[MAX_BATCH];
	uint64_t slots[MAX_BATCH];
	struct iovec iov[MAX_BATCH];
	uint64_t zap_ns, punch_ns; /* this batch's, for the phase statistics */
};

size_t upager__reclaim_scratch_bytes(void)
{
	return sizeof(struct reclaim_scratch);
}

/* Steps 1 and 2: stops writes to the (sorted) victims, then decides each
 * one's fate. Where an unmap is a zap, the mapped victims leave the view
 * in one call (one TLB shootdown) instead of one write-protection each.
 * Returns how many need a write. */
static unsigned stop_writes(struct upager *p, struct reclaim_scratch *sc, unsigned n)
{
	struct victim *v = sc->v;
	unsigned nwrite = 0;

	if (p->backend->unmap_zaps)
		zap_victims(p, v, n, sc->iov, false);
	for (unsigned i = 0; i < n; i++) {
		struct victim *x = &v[i];
		uint32_t f = pte_flags(x->e);

		if ((f & PTE_MAPPED) && !p->backend->punch_unmaps) {
			/* Punching will not take the page from the application
			 * view: do it now, or a reader would see the hole. */
			if (p->backend->unmap(x->r, x->pg, 1) == 0)
				pte_clear_mapped(p, x->e);
			else {
				x->fate = FATE_FAILED;
				continue;
			}
		} else if ((f & PTE_WRITABLE) && p->backend->wrprotect(x->r, x->pg, 1) == 0) {
			pte_update(x->e, PTE_WRITABLE, 0);
		} else if (f & PTE_WRITABLE) {
			x->fate = FATE_FAILED; /* cannot stop writes: keep it */
			continue;
		}
		x->data = NULL;
		x->in_pview = false;
		if (!(f & PTE_DIRTY)) {
			x->fate = x->e->slot ? FATE_CLEAN : FATE_ZERO; /* a file page: reread */
			continue;
		}
		nwrite++;
		if (region_file_page(x->r, x->pg)) {
			/* Private: even a page of zeros differs from the file.
			 * Written from the pager view (file.c's requests). */
			x->fate = x->r->file_shared ? FATE_FILE : FATE_WRITE;
			x->data = region_pview(x->r, x->pg);
			x->in_pview = true;
		} else {
			x->fate = FATE_WRITE; /* or FATE_ZERO: stage_victims looks */
		}
	}
	return nwrite;
}

/*
 * Step 2, continued: copies the bytes of the anonymous pages to write
 * into the ring's bounce buffer, with one pread() of the memfd per run of
 * neighbours, and drops the ones that hold only zeros. Reading through
 * the pager view instead would map the pages there, each fault mapping
 * its resident neighbours too (fault-around), all of which the view then
 * has to let go of with a TLB shootdown: a copy is cheaper. Pages beyond
 * the bounce buffer, or whose copy fails, are read through the view.
 * Returns how many victims still need a write.
 */
static unsigned stage_victims(struct upager *p, struct io_ring *ring, struct reclaim_scratch *sc,
			      unsigned n, unsigned nwrite)
{
	struct victim *v = sc->v;
	size_t room = p->io.bounce_bytes >> p->page_shift, used = 0;
	char *bounce = io_ring_bounce(ring, (nwrite < room ? nwrite : room) << p->page_shift);

	for (unsigned i = 0; i < n;) {
		if (v[i].fate != FATE_WRITE || v[i].data) {
			i++;
			continue;
		}
		unsigned j = i + 1;
		while (j < n && used + (j - i) < room && v[j].fate == FATE_WRITE && !v[j].data &&
		       v[j].r == v[i].r && v[j].pg == v[j - 1].pg + 1)
			j++;
		if (used + (j - i) > room) {
			/* The bounce buffer is full: the rest from the view. */
			for (; i < j; i++) {
				v[i].data = region_pview(v[i].r, v[i].pg);
				v[i].in_pview = true;
			}
			continue;
		}
		char *to = bounce + (used << p->page_shift);
		size_t len = (size_t)(j - i) << p->page_shift;
		bool copied = pread(v[i].r->memfd, to, len, (off_t)(v[i].pg << p->page_shift)) ==
			      (ssize_t)len;
		for (unsigned k = i; k < j; k++) {
			if (copied) {
				v[k].data = to + ((size_t)(k - i) << p->page_shift);
			} else {
				v[k].data = region_pview(v[k].r, v[k].pg);
				v[k].in_pview = true;
			}
		}
		if (copied)
			used += j - i;
		i = j;
	}
	for (unsigned i = 0; i < n; i++) {
		struct victim *x = &v[i];

		if (x->fate != FATE_WRITE)
			continue;
		bool file = region_file_page(x->r, x->pg);
		if (!file && upager__is_zero(x->data, p->page_size)) {
			x->fate = FATE_ZERO;
			nwrite--;
		} else if (pte_flags(x->e) & PTE_GUESSED) {
			/* Mapped writable at its read: written since? (Never
			 * a file page's guess; the slot would go if it were.) */
			const uint64_t *was = p->frames.frames[x->frame].read_sum;
			uint64_t now[2];

			upager__page_sum(p, x->data, now);
			if (!file && now[0] == was[0] && now[1] == was[1]) {
				x->fate = FATE_CLEAN;
				STAT_INC(p, unchanged_drops);
				nwrite--;
			} else {
				pte_drop_swap_copy(p, x->e);
			}
		}
	}
	return nwrite;
}

/* Step 3, for shared file regions: each run of one region's FATE_FILE
 * victims goes to that region's file in one submission. A victim whose
 * write failed is FATE_FAILED (it stays dirty; upager_sync() will report
 * the error). Returns how many victims were FATE_FILE. */
static unsigned nfile_write(struct upager *p, struct io_ring *ring, struct reclaim_scratch *sc,
			    unsigned n, int *err)
{
	struct victim *v = sc->v;
	struct io_req *reqs = sc->reqs;
	unsigned total = 0;

	for (unsigned i = 0; i < n;) {
		if (v[i].fate != FATE_FILE) {
			i++;
			continue;
		}
		struct region *r = v[i].r;
		unsigned j = i, k = 0;
		for (; j < n && v[j].r == r; j++)
			if (v[j].fate == FATE_FILE)
				upager__file_req(r, v[j].pg, &reqs[k++], IO_WRITE,
						 region_pview(r, v[j].pg));
		total += k;
		int enters = io_ring_run(&p->io, ring, r->file_fd, reqs, k);
		if (enters > 0)
			STAT_ADD(p, io_submits, (uint64_t)enters);
		k = 0;
		for (unsigned m = i; m < j; m++) {
			if (v[m].fate != FATE_FILE)
				continue;
			int res = enters < 0 ? enters : reqs[k].res;
			if (res != (int)reqs[k].len) {
				res = res < 0 ? res : -EIO;
				v[m].fate = FATE_FAILED;
				*err = res;
				int none = 0;
				atomic_compare_exchange_strong(&r->file_err, &none, res);
				STAT_INC(p, io_errors);
			} else {
				STAT_ADD(p, bytes_written, reqs[k].len);
			}
			k++;
		}
		i = j;
	}
	return total;
}

/* Step 3: slots for the nwrite victims to write, in page order, and the
 * writes in one submission. A victim without a slot, or whose write
 * failed, is FATE_FAILED (its slot retired). Returns 0 or the last
 * error. */
static int write_victims(struct upager *p, struct io_ring *ring, struct reclaim_scratch *sc,
			 unsigned n, unsigned nwrite)
{
	struct victim *v = sc->v;
	struct io_req *reqs = sc->reqs;
	uint64_t *slots = sc->slots;
	unsigned k = 0, r = 0, nswap = 0;
	int err = 0;

	for (unsigned i = 0; i < n; i++)
		nswap += v[i].fate == FATE_WRITE;
	int got = nswap ? swap_alloc(&p->swap, nswap, slots) : 0;
	if (nfile_write(p, ring, sc, n, &err) == nwrite)
		return err;
	if (got < 0)
		got = 0;
	for (unsigned i = 0; i < n; i++) {
		if (v[i].fate != FATE_WRITE)
			continue;
		if (k >= (unsigned)got) {
			v[i].fate = FATE_FAILED;
			err = UPAGER_ESWAPFULL;
			continue;
		}
		v[i].slot = slots[k++] + 1;
		reqs[r++] = (struct io_req){
			.op = IO_WRITE,
			.buf = (void *)v[i].data,
			.len = p->page_size,
			.off = (v[i].slot - 1) * p->page_size,
		};
	}
	if (!r)
		return err;
	int enters = io_ring_run(&p->io, ring, p->swap.fd, reqs, r);
	if (enters > 0)
		STAT_ADD(p, io_submits, (uint64_t)enters);
	k = 0;
	for (unsigned i = 0; i < n; i++) {
		if (v[i].fate != FATE_WRITE)
			continue;
		int res = enters < 0 ? enters : reqs[k].res;
		k++;
		if (res == (int)p->page_size)
			continue;
		/* The slot is suspect: retire it. The page keeps its frame
		 * and its dirty contents. */
		swap_mark_bad(&p->swap, v[i].slot - 1);
		v[i].slot = 0;
		v[i].fate = FATE_FAILED;
		err = res < 0 ? res : -EIO;
		STAT_INC(p, io_errors);
	}
	return err;
}

/* A victim that stays: back to the policy, unlocked, its region let go. */
static void victim_stays(struct upager *p, struct victim *x)
{
	if (x->fate == FATE_UNPUNCHED && x->slot) {
		/* Its write went out: the slot is the clean copy of what the
		 * frame still holds (writes were stopped). */
		x->e->slot = x->slot;
		pte_update(x->e, PTE_DIRTY, 0);
		STAT_INC(p, writebacks);
		STAT_ADD(p, bytes_written, p->page_size);
	}
	keep_resident(p, x);
	upager__pte_unlock(x->e);
	upager__region_put(x->r);
}

/* A victim that left: its entry becomes SWAPPED or NONE, its frame free. */
static void victim_leaves(struct upager *p, struct victim *x)
{
	uint32_t state = PTE_SWAPPED;

	switch (x->fate) {
	case FATE_WRITE:
		x->e->slot = x->slot;
		STAT_INC(p, writebacks);
		STAT_ADD(p, bytes_written, p->page_size);
		break;
	case FATE_CLEAN:
		STAT_INC(p, clean_drops);
		break;
	case FATE_FILE: /* its copy is the file now */
		STAT_INC(p, writebacks);
		state = PTE_NONE;
		break;
	default:
		pte_drop_swap_copy(p, x->e);
		state = PTE_NONE;
		if (region_file_page(x->r, x->pg))
			STAT_INC(p, clean_drops); /* read from the file again */
		else
			STAT_INC(p, zero_drops);
		break;
	}
	pte_clear_mapped(p, x->e); /* the punch took it from the view */
	pte_update(x->e, PTE_STATE_MASK | PTE_DIRTY | PTE_AROUND | PTE_GUESSED, state);
	upager__evicted_mark(p, x->e);
	frames_free(&p->frames, x->frame);
	upager__pte_unlock(x->e);
	upager__region_put(x->r);
	STAT_INC(p, evictions);
}

/* Step 4: frees what left. The pager view maps the pages written from
 * it: gone in one call, the punches have nothing left to shoot down. A
 * victim whose punch failed keeps its frame. Returns how many left. */
static unsigned free_victims(struct upager *p, struct reclaim_scratch *sc, unsigned n)
{
	struct victim *v = sc->v;
	unsigned freed = 0;

	uint64_t t0 = upager__now_ns();
	/* The pager view is a plain shared mapping on every backend. */
	zap_victims(p, v, n, sc->iov, true);
	uint64_t t1 = upager__now_ns();
	punch_runs(p, v, n, sc->iov);
	sc->zap_ns += t1 - t0;
	sc->punch_ns = upager__now_ns() - t1;
	for (unsigned i = 0; i < n; i++) {
		if (v[i].fate == FATE_FAILED || v[i].fate == FATE_UNPUNCHED) {
			victim_stays(p, &v[i]);
		} else {
			victim_leaves(p, &v[i]);
			freed++;
		}
	}
	return freed;
}

static int reclaim_with(struct upager *p, struct io_ring *ring, unsigned want)
{
	struct reclaim_scratch *sc = io_ring_scratch(ring);
	unsigned n, nwrite, freed;
	int err = 0;

	if (want > MAX_BATCH)
		want = MAX_BATCH;
	n = choose_victims(p, sc->v, want, &sc->q, sc->held);
	upager__age_queue_drain(p, &sc->q);
	if (n == 0) {
		io_ring_put(&p->io, ring);
		return -EAGAIN;
	}
	atomic_fetch_add_explicit(&p->frames_coming, n, memory_order_relaxed);
	upager__sort(sc->v, n, sizeof(sc->v[0]), by_page);
	uint64_t t0 = upager__now_ns();
	nwrite = stop_writes(p, sc, n); /* 1, 2 */
	uint64_t t1 = upager__now_ns();
	sc->zap_ns = t1 - t0;
	if (nwrite)
		nwrite = stage_victims(p, ring, sc, n, nwrite);
	if (nwrite) {
		err = write_victims(p, ring, sc, n, nwrite); /* 3 */
		upager__phase(p, UPAGER_PHASE_WRITE, upager__now_ns() - t1);
	}
	freed = free_victims(p, sc, n); /* 4 */
	atomic_fetch_sub_explicit(&p->frames_coming, n, memory_order_relaxed);
	upager__phase(p, UPAGER_PHASE_ZAP, sc->zap_ns);
	upager__phase(p, UPAGER_PHASE_PUNCH, sc->punch_ns);
	io_ring_put(&p->io, ring);
	if (freed)
		atomic_fetch_add_explicit(&p->evicted_unsampled, freed, memory_order_relaxed);
	return freed ? (int)freed : (err ? err : -EAGAIN);
}

int upager__reclaim(struct upager *p, unsigned want)
{
	return reclaim_with(p, io_ring_get(&p->io), want);
}

/* The same, only if a ring is free at once (-EAGAIN if not). */
int upager__reclaim_try(struct upager *p, unsigned want)
{
	struct io_ring *ring = io_ring_tryget(&p->io);

	return ring ? reclaim_with(p, ring, want) : -EAGAIN;
}

/*
 * Free frames, counting those of batches under way. The evictor and
 * missing threads each top the free frames up to free_high; counted
 * without the others' batches, each would evict the whole shortfall,
 * and at a small budget the pager would evict most of what it holds
 * (test/prefetch once found 12 of 128 frames in use after a read of 16
 * pages, its own pages among the evicted).
 */
static unsigned free_soon(struct upager *p)
{
	return atomic_load_explicit(&p->frames.nfree, memory_order_relaxed) +
	       atomic_load_explicit(&p->frames_coming, memory_order_relaxed);
}

/* A batch towards free_high from nfree (below it), at most evict_batch. */
static unsigned batch_for(struct upager *p, unsigned nfree)
{
	unsigned want = p->free_high - nfree;

	return want < p->cfg.evict_batch ? want : p->cfg.evict_batch;
}

bool upager__evict_due(struct upager *p)
{
	return free_soon(p) < p->free_low;
}

/*
 * While a miss's read is on its way, the missing thread frees frames for
 * the misses to come, in the time it would otherwise sleep. The work then
 * runs on the CPU whose misses need the frames: left to the background
 * evictor on another CPU, each of its unmappings interrupts this one (a
 * TLB shootdown, 25-60 us on a guest), and the wake-ups go back and forth
 * between CPUs. (bench/run, uniform random misses at one thread: about
 * 15% more of them per second.) The evictor still serves the faults that
 * read nothing (zero fills) and a thread that cannot get a second ring.
 */
void upager__evict_meanwhile(void *arg)
{
	struct upager *p = arg;
	unsigned nfree = free_soon(p);

	if (nfree >= p->free_low)
		return;
	unsigned want = batch_for(p, nfree);
	uint64_t t0 = upager__now_ns();
	/* No ring to spare (this thread holds one already): the evictor. */
	if (upager__reclaim_try(p, want) == -EAGAIN)
		upager__evictor_kick(p);
	upager__mc.overlap += upager__now_ns() - t0;
}

/* ---- the background evictor ---- */

static void *evictor_main(void *arg)
{
	struct upager *p = arg;
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	pthread_mutex_lock(&p->evictor_lock);
	while (!p->evictor_stop) {
		/* Not under the lock: faults that kick us must not wait for a
		 * sweep. */
		pthread_mutex_unlock(&p->evictor_lock);
		upager__sample_owed(p);
		uint64_t sweep_in_ns = upager__sample_tick(p);
		pthread_mutex_lock(&p->evictor_lock);
		if (p->evictor_stop)
			break;
		if (free_soon(p) >= p->free_low) {
			if (!sweep_in_ns) {
				pthread_cond_wait(&p->evictor_cond, &p->evictor_lock);
				continue;
			}
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			uint64_t ns = (uint64_t)ts.tv_nsec + sweep_in_ns;
			ts.tv_sec += (time_t)(ns / 1000000000);
			ts.tv_nsec = (long)(ns % 1000000000);
			pthread_cond_timedwait(&p->evictor_cond, &p->evictor_lock, &ts);
			continue;
		}
		pthread_mutex_unlock(&p->evictor_lock);
		unsigned nfree;
		while (!p->evictor_stop && (nfree = free_soon(p)) < p->free_high) {
			/* A few frames short of free_high, above free_low: they
			 * wait for the next round. A batch of their own would
			 * cost a whole batch's shootdown, punch and write. */
			if (nfree >= p->free_low && p->free_high - nfree < p->cfg.evict_batch / 4)
				break;
			int freed = upager__reclaim(p, batch_for(p, nfree));
			if (freed <= 0) {
				/* Nothing to free now (all busy, or errors the
				 * faulting threads will report): back off. */
				struct timespec ts = { 0, 1000000 };
				nanosleep(&ts, NULL);
				break;
			}
			upager__sample_owed(p);
		}
		/* Pages in swap can now be read back in runs (prefetch.c):
		 * started here, not by a fault, which may be in a signal
		 * handler. */
		if (!p->evictor_started_ra &&
		    atomic_load_explicit(&p->stats.writebacks, memory_order_relaxed)) {
			p->evictor_started_ra = true;
			upager__readahead_start(p);
		}
		pthread_mutex_lock(&p->evictor_lock);
	}
	pthread_mutex_unlock(&p->evictor_lock);
	return NULL;
}

int upager__evictor_start(struct upager *p)
{
	int err;

	pthread_mutex_init(&p->evictor_lock, NULL);
	pthread_cond_init(&p->evictor_cond, NULL);
	p->evictor_stop = false;
	err = pthread_create(&p->evictor, NULL, evictor_main, p);
	if (err)
		return upager__fail(-err, "cannot start the evictor thread: %s", strerror(err));
	pthread_setname_np(p->evictor, "upager-evict");
	p->evictor_running = true;
	return 0;
}

void upager__evictor_stop(struct upager *p)
{
	if (!p->evictor_running)
		return;
	pthread_mutex_lock(&p->evictor_lock);
	p->evictor_stop = true;
	pthread_cond_signal(&p->evictor_cond);
	pthread_mutex_unlock(&p->evictor_lock);
	pthread_join(p->evictor, NULL);
	p->evictor_running = false;
	pthread_mutex_destroy(&p->evictor_lock);
	pthread_cond_destroy(&p->evictor_cond);
}

void upager__evictor_kick(struct upager *p)
{
	if (!p->evictor_running)
		return;
	pthread_mutex_lock(&p->evictor_lock);
	pthread_cond_signal(&p->evictor_cond);
	pthread_mutex_unlock(&p->evictor_lock);
}
