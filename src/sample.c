// SPDX-License-Identifier: MIT
/*
 * Seeing references: sampling and recording.
 *
 * The MMU's accessed bits are out of reach from user space, so the pager
 * samples instead: it takes a resident page away from the application's
 * view (keeping its frame), and the next access to it is a cheap minor
 * fault that reports the reference to the policy. Two sources of samples:
 *
 *   - the policy's own: a clock hand that clears a referenced bit calls
 *     env->age() and the page is unmapped (evict.c);
 *   - the core's: the evictor unmaps sample_rate pages per page evicted
 *     (by itself or by faults that reclaimed directly), with a hand that
 *     walks the regions' pages in address order. Policies that never call
 *     age() (LRU, 2Q, ARC) learn about references only this way.
 *
 * The hand unmaps runs of neighbouring pages in one call: the cost of
 * unmapping is mostly the TLB shootdown, paid once per call, not per page.
 *
 * A policy's own hand ages frames while the reclaimer holds the policy
 * lock: they wait in an age queue and are unmapped together, in page
 * order, once the lock is dropped.
 *
 * Recording writes what the fault path sees to a trace (trace.c). In the
 * dense mode the evictor also unmaps the whole resident set every
 * interval, so the first access to each page in each interval shows up.
 */
#include "internal.h"
#include "fault.h"
#include "policy.h"
#include "trace.h"

#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/uio.h>

/* Pages unmapped in one call at most; also the page locks held at once. */
#define RUN_MAX 64
/* Where the backend's unmap is a zap, runs are gathered into one call
 * (upager__zap): on two CPUs each call costs a TLB shootdown, far more
 * than the pages it unmaps. */
#define BATCH_RUNS 64
#define BATCH_PAGES 512
/* Samples owed to evictions are taken once this many are (or budget/16). */
#define SAMPLE_BATCH 128

struct run {
	struct region *r;
	uint64_t first; /* the run being built: pages first.. */
	unsigned n;
	unsigned nruns, total; /* runs closed into the batch, their pages */
	uint64_t run_first[BATCH_RUNS];
	unsigned run_n[BATCH_RUNS];
	struct upte *e[BATCH_PAGES]; /* the batch's pages, then the run's */
};

uint64_t upager__sample_done(struct upager *p, struct upte **e, unsigned n, bool unmapped)
{
	for (unsigned i = 0; i < n; i++) {
		if (unmapped) {
			pte_clear_mapped(p, e[i]);
			pte_update(e[i], 0, PTE_SAMPLED);
		}
		upager__pte_unlock(e[i]);
	}
	return unmapped ? n : 0;
}

uint64_t upager__sample_run(struct upager *p, struct region *r, uint64_t first, unsigned n,
			    struct upte **e)
{
	if (!n)
		return 0;
	return upager__sample_done(p, e, n, p->backend->unmap(r, first, n) == 0);
}

/* Unmaps the batch's runs in one call and marks their pages sampled. */
static uint64_t batch_flush(struct upager *p, struct run *run)
{
	struct iovec iov[BATCH_RUNS];
	struct zap_list z = { .iov = iov };
	unsigned total = run->total;
	int ret;

	if (!total)
		return 0;
	for (unsigned i = 0; i < run->nruns; i++)
		upager__zap_add(p, &z, run->r, run->run_first[i], run->run_n[i], false);
	ret = upager__zap_list(p, &z);
	run->nruns = run->total = 0;
	return upager__sample_done(p, run->e, total, ret == 0);
}

/* Ends the run being built: unmapped now, or added to the batch. */
static uint64_t run_flush(struct upager *p, struct run *run)
{
	unsigned n = run->n;

	if (!n)
		return 0;
	run->n = 0;
	if (!p->backend->unmap_zaps)
		return upager__sample_run(p, run->r, run->first, n, run->e);
	run->run_first[run->nruns] = run->first;
	run->run_n[run->nruns++] = n;
	run->total += n;
	if (run->nruns == BATCH_RUNS || run->total + RUN_MAX > BATCH_PAGES)
		return batch_flush(p, run);
	return 0;
}

/* Locks the page if it is resident, mapped and not pinned. */
static bool claim(struct upager *p, struct upte *e)
{
	uint32_t f = atomic_load_explicit(&e->flags, memory_order_relaxed);

	if (pte_state(f) != PTE_RESIDENT || !(f & PTE_MAPPED))
		return false;
	if (!upager__pte_trylock(e))
		return false; /* being faulted on: referenced anyway */
	f = pte_flags(e);
	if (f & PTE_FRESH) {
		pte_update(e, PTE_FRESH, 0); /* next time */
		f = 0;
	}
	if (pte_state(f) == PTE_RESIDENT && (f & PTE_MAPPED) &&
	    !atomic_load_explicit(&p->frames.frames[e->frame].pins, memory_order_relaxed))
		return true;
	upager__pte_unlock(e);
	return false;
}

/* Samples up to budget pages of r from page *pg on; leaves *pg where it
 * stopped (r->npages when it reached the end). */
static uint64_t walk_region(struct upager *p, struct region *r, uint64_t *pg, uint64_t budget)
{
	struct run run = { .r = r };
	uint64_t done = 0, at = *pg;

	while (at < r->npages && done + run.total + run.n < budget && !r->dying) {
		uint64_t leaf_pg = at & ~(uint64_t)(PT_FANOUT - 1);
		struct upte *leaf = pt_lookup(&r->pt, leaf_pg);
		uint64_t end = leaf_pg + PT_FANOUT < r->npages ? leaf_pg + PT_FANOUT : r->npages;

		if (!leaf) {
			done += run_flush(p, &run);
			at = end;
			continue;
		}
		for (; at < end && done + run.total + run.n < budget; at++) {
			struct upte *e = &leaf[at - leaf_pg];

			if (!claim(p, e)) {
				done += run_flush(p, &run);
				continue;
			}
			if (!run.n)
				run.first = at;
			run.e[run.total + run.n++] = e;
			if (run.n == RUN_MAX)
				done += run_flush(p, &run);
		}
	}
	done += run_flush(p, &run);
	done += batch_flush(p, &run);
	*pg = at;
	return done;
}

/* The live region with the smallest id >= id, or failing that the smallest
 * id; referenced. NULL if there is none. */
static struct region *region_from(struct upager *p, uint32_t id)
{
	struct region *best = NULL, *first = NULL;

	pthread_mutex_lock(&p->regions_lock);
	for (struct region *r = p->regions; r; r = r->next) {
		if (r->dying)
			continue;
		if (!first || r->id < first->id)
			first = r;
		if (r->id >= id && (!best || r->id < best->id))
			best = r;
	}
	if (!best)
		best = first;
	if (best)
		atomic_fetch_add_explicit(&best->refs, 1, memory_order_acquire);
	pthread_mutex_unlock(&p->regions_lock);
	return best;
}

uint64_t upager__sample(struct upager *p, uint64_t budget)
{
	uint64_t t0 = upager__now_ns(), done = 0;
	unsigned visits;

	pthread_mutex_lock(&p->regions_lock);
	visits = p->nregions + 1;
	pthread_mutex_unlock(&p->regions_lock);

	/* Each visit ends a region or the budget: every page is looked at
	 * at most once per call. */
	while (done < budget && visits--) {
		struct region *r = region_from(p, p->sample_region);

		if (!r)
			break;
		uint64_t pg = r->id == p->sample_region ? p->sample_pg : 0;
		done += walk_region(p, r, &pg, budget - done);
		if (pg >= r->npages) {
			p->sample_region = r->id + 1;
			p->sample_pg = 0;
		} else {
			p->sample_region = r->id;
			p->sample_pg = pg;
		}
		upager__region_put(r);
	}
	STAT_ADD(p, samples, done);
	STAT_ADD(p, sample_ns, upager__now_ns() - t0);
	return done;
}

uint64_t upager__sample_all(struct upager *p)
{
	uint64_t t0 = upager__now_ns(), done = 0;
	uint32_t id = 0;
	struct region *r;

	/* Regions in id order, each from its first page, until the ids wrap. */
	while ((r = region_from(p, id)) && r->id >= id) {
		uint64_t pg = 0;

		done += walk_region(p, r, &pg, UINT64_MAX);
		id = r->id + 1;
		upager__region_put(r);
		r = NULL;
		if (id == 0)
			break;
	}
	if (r)
		upager__region_put(r);
	STAT_ADD(p, samples, done);
	STAT_ADD(p, sample_ns, upager__now_ns() - t0);
	return done;
}

void upager__sample_owed(struct upager *p)
{
	double rate = p->sample_rate;
	uint64_t evicted = atomic_exchange_explicit(&p->evicted_unsampled, 0, memory_order_relaxed);

	/* A policy that ages every page itself (Clock) has every bit a sample
	 * could find: pages still mapped were referenced or brought in since
	 * their last aging, and have their bits set. A sample would cost a
	 * TLB shootdown and the program a minor fault, for nothing (Zipf:
	 * the same misses, 20% more throughput without them). */
	if (policy_flags(p->policy->ops) & UPAGER_POLICY_AGES_ALL)
		return;
	if (rate <= 0 || !evicted)
		return;
	p->sample_owed += rate * (double)evicted;
	/* Owed samples are taken in batches: each unmapping call costs a
	 * TLB shootdown on the CPUs running the program, whatever it takes
	 * away (memcached under upager-run, which misses 5k times a second:
	 * 0.9-1.0 s of sampling instead of 1.2 s). */
	double least = p->nframes / 16 < SAMPLE_BATCH ? (double)(p->nframes / 16) : SAMPLE_BATCH;
	if (p->sample_owed < 1 || p->sample_owed < least)
		return;
	uint64_t n = (uint64_t)p->sample_owed;
	p->sample_owed -= (double)n;
	upager__sample(p, n);
}

uint64_t upager__sample_tick(struct upager *p)
{
	uint64_t interval = (uint64_t)atomic_load(&p->trace_interval_us) * 1000;
	uint64_t now, due;

	if (!interval || !atomic_load_explicit(&p->trace, memory_order_relaxed))
		return 0;
	now = upager__now_ns();
	due = atomic_load(&p->trace_last_sweep_ns) + interval;
	if (now < due)
		return due - now;
	upager__sample_all(p);
	atomic_store(&p->trace_last_sweep_ns, now);
	return interval;
}

/* ---- recording ---- */

void upager__trace_slow(struct upager *p, uint64_t key, unsigned flags)
{
	/* Announce ourselves before looking: upager_trace_stop() takes the
	 * writer away, then waits until nobody is inside. */
	atomic_fetch_add(&p->trace_users, 1);
	struct trace_writer *w = atomic_load(&p->trace);
	if (w)
		trace_writer_ref(w, key, flags);
	atomic_fetch_sub(&p->trace_users, 1);
}

static int trace_start_locked(struct upager *p, const char *path, unsigned interval_us)
{
	struct trace_writer *w;
	int err;

	if (atomic_load(&p->trace))
		return upager__fail(-EBUSY,
				    "upager_trace_start: a trace is already being recorded");
	err = trace_writer_open(path, p->page_shift, &w);
	if (err)
		return upager__fail(err, "upager_trace_start: cannot create %s: %s", path,
				    strerror(-err));
	atomic_store(&p->trace_interval_us, interval_us);
	atomic_store(&p->trace_last_sweep_ns, 0);
	atomic_store(&p->trace, w);
	if (interval_us)
		upager__evictor_kick(p); /* it sleeps until the first sweep is due */
	return 0;
}

UPAGER_API int upager_trace_start(upager_t *p, const char *path, unsigned dense_interval_us)
{
	int err;

	upager__clear_error();
	if (!p || !path || !*path)
		return upager__fail(-EINVAL, "upager_trace_start: no pager or no path");
	pthread_mutex_lock(&p->trace_lock);
	err = trace_start_locked(p, path, dense_interval_us);
	pthread_mutex_unlock(&p->trace_lock);
	return err;
}

UPAGER_API int upager_trace_stop(upager_t *p)
{
	struct trace_writer *w;
	uint64_t recorded, dropped;
	int err;

	upager__clear_error();
	if (!p)
		return -EINVAL;
	pthread_mutex_lock(&p->trace_lock);
	w = atomic_exchange(&p->trace, NULL);
	if (!w) {
		pthread_mutex_unlock(&p->trace_lock);
		return upager__fail(-ENOENT, "upager_trace_stop: no trace is being recorded");
	}
	atomic_store(&p->trace_interval_us, 0);
	while (atomic_load(&p->trace_users))
		sched_yield();
	trace_writer_counts(w, &recorded, &dropped);
	p->trace_recorded += recorded;
	p->trace_dropped += dropped;
	err = trace_writer_close(w);
	pthread_mutex_unlock(&p->trace_lock);
	if (err)
		return upager__fail(
			err,
			"upager_trace_stop: writing the trace failed: %s; %llu references dropped",
			strerror(-err), (unsigned long long)dropped);
	return 0;
}

int upager__trace_open_config(struct upager *p, const char *path)
{
	int err = 0;

	pthread_mutex_init(&p->trace_lock, NULL);
	if (path) {
		pthread_mutex_lock(&p->trace_lock);
		err = trace_start_locked(p, path, p->cfg.trace_interval_us);
		pthread_mutex_unlock(&p->trace_lock);
	}
	return err;
}

void upager__trace_close(struct upager *p)
{
	if (atomic_load(&p->trace))
		upager_trace_stop(p);
	pthread_mutex_destroy(&p->trace_lock);
}

void upager__trace_counts(struct upager *p, uint64_t *recorded, uint64_t *dropped)
{
	struct trace_writer *w;

	pthread_mutex_lock(&p->trace_lock);
	*recorded = p->trace_recorded;
	*dropped = p->trace_dropped;
	w = atomic_load(&p->trace);
	if (w) {
		uint64_t r, d;

		trace_writer_counts(w, &r, &d);
		*recorded += r;
		*dropped += d;
	}
	pthread_mutex_unlock(&p->trace_lock);
}

/* ---- the age queue: frames a policy's hand aged during a reclaim ---- */

/* The queue of the reclaim that holds the policy lock on this thread
 * (NULL outside one). */
static __thread struct age_queue *current_age_queue;

void upager__age_queue_open(struct age_queue *q)
{
	q->n = 0;
	current_age_queue = q;
}

void upager__age_queue_close(void)
{
	current_age_queue = NULL;
}

/* Locks the aged page if it still holds the frame and may be unmapped. */
static bool claim_aged(struct upager *p, struct aged *a)
{
	struct upte *e = a->e;

	if (!upager__pte_trylock(e))
		return false; /* busy: being faulted on, so referenced anyway */
	uint32_t f = pte_flags(e);
	if (pte_state(f) == PTE_RESIDENT && e->frame == a->frame && (f & PTE_MAPPED) &&
	    !a->r->dying &&
	    !atomic_load_explicit(&p->frames.frames[a->frame].pins, memory_order_relaxed))
		return true;
	upager__pte_unlock(e);
	return false;
}

void upager__age_frame(void *pager, uint32_t frame)
{
	struct upager *p = pager;
	struct frame *fr = &p->frames.frames[frame];
	struct age_queue *q = current_age_queue;

	/* Under the policy lock a frame the policy tracks belongs to a live
	 * region: unmap releases frames through the policy first. */
	if (!fr->region)
		return;
	/* A full queue is unmapped now, in one call, rather than this page
	 * alone: a hand's first sweep may age the whole pool. */
	if (q && q->n == AGE_QUEUE)
		upager__age_queue_drain(p, q);
	if (q) {
		atomic_fetch_add_explicit(&fr->region->refs, 1, memory_order_acquire);
		q->items[q->n++] = (struct aged){ fr->region, fr->pte, fr->pg, frame };
		return;
	}
	/* Outside a reclaim: now, alone. */
	struct aged a = { fr->region, fr->pte, fr->pg, frame };
	uint64_t t0 = upager__now_ns();
	if (claim_aged(p, &a))
		STAT_ADD(p, samples, upager__sample_run(p, a.r, a.pg, 1, &a.e));
	STAT_ADD(p, sample_ns, upager__now_ns() - t0);
}

static int aged_by_page(const void *x, const void *y)
{
	const struct aged *a = x, *b = y;

	if (a->r != b->r)
		return a->r->id < b->r->id ? -1 : 1;
	return a->pg < b->pg ? -1 : a->pg > b->pg;
}

/* Unmaps the queued (sorted) pages in one upager__zap() call, runs of
 * neighbours as one range; drops the queue's region references. */
static uint64_t zap_aged(struct upager *p, struct age_queue *q)
{
	struct zap_list z = { .iov = q->iov };
	unsigned nl = 0;

	for (unsigned i = 0; i < q->n; i++) {
		struct aged *a = &q->items[i];

		if (!claim_aged(p, a))
			continue;
		q->locked[nl++] = a->e;
		upager__zap_add(p, &z, a->r, a->pg, 1, false);
	}
	uint64_t done = upager__sample_done(p, q->locked, nl, upager__zap_list(p, &z) == 0);
	for (unsigned i = 0; i < q->n; i++)
		upager__region_put(q->items[i].r);
	return done;
}

/* Unmaps the queued pages in page order, neighbours in one call: one TLB
 * shootdown per run instead of one per page (one per queue where the
 * backend's unmap is a zap). */
void upager__age_queue_drain(struct upager *p, struct age_queue *q)
{
	struct upte *run[64];
	unsigned n = 0;
	uint64_t t0 = upager__now_ns(), done = 0;
	struct aged *first = NULL;

	upager__sort(q->items, q->n, sizeof(q->items[0]), aged_by_page);
	if (p->backend->unmap_zaps) {
		done = zap_aged(p, q);
		q->n = 0;
		STAT_ADD(p, samples, done);
		STAT_ADD(p, sample_ns, upager__now_ns() - t0);
		return;
	}
	for (unsigned i = 0; i < q->n; i++) {
		struct aged *a = &q->items[i];

		if (n && (a->r != first->r || a->pg != first->pg + n || n == 64)) {
			done += upager__sample_run(p, first->r, first->pg, n, run);
			n = 0;
		}
		if (!claim_aged(p, a))
			continue;
		if (!n)
			first = a;
		run[n++] = a->e;
	}
	if (n)
		done += upager__sample_run(p, first->r, first->pg, n, run);
	/* Only now: the regions must live until their pages are done. */
	for (unsigned i = 0; i < q->n; i++)
		upager__region_put(q->items[i].r);
	q->n = 0;
	STAT_ADD(p, samples, done);
	STAT_ADD(p, sample_ns, upager__now_ns() - t0);
}
