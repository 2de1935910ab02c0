// SPDX-License-Identifier: MIT
/*
 * Seeing where a miss's time goes, how large the working set is, and
 * whether the pager thrashes.
 *
 * Phases. The fault path stamps the moments of a miss into the thread's
 * miss clock (internal.h); upager__miss_done() turns the stamps into one
 * histogram entry per phase. The evictor times its batches itself.
 *
 * Working set, from refault distances (the idea of Linux's
 * mm/workingset.c): an evicted page's table entry keeps the eviction count
 * of the moment it left (in its frame field, unused while it is not
 * resident). When the page faults back in, the evictions since then are
 * its refault distance: the number of pages that left after it. Had the
 * budget been larger by that many frames it would still be resident, so
 * the resident pages plus a typical recent distance estimate the memory
 * the program keeps coming back to. A distance below the budget makes a
 * "recent" refault: the page left only moments ago.
 *
 * Stall: the time during which at least one thread waits on a miss (the
 * kernel's PSI "some"). One atomic word holds how many threads wait and
 * since when the count has been above zero.
 *
 * Thrashing: every half second of misses the last window is judged:
 * most misses recent refaults, and stalled more than half of its wall
 * time. Then, at most once a minute, the callback is asked and a line
 * names the budget that would stop it. All of it runs on the fault path,
 * maybe in a signal handler: no allocation, no stdio.
 */
#include "internal.h"


__thread struct miss_clock upager__mc;
__thread uint64_t upager__entry_ns;

#define WINDOW_NS 500000000ull          /* thrashing is judged over this */
#define WINDOW_MIN_MISSES 32            /* ... if it had at least so many misses */
#define WARN_EVERY_NS 60000000000ull    /* at most one warning a minute */
#define RECENT_REFAULT_NS 5000000000ull /* the distance estimate counts this long */
/* A refault is "near" (the page was evicted shortly before) when fewer
 * than this many budgets' worth of pages were evicted after it: a budget
 * that many times larger would have kept it. A cyclic pattern over twice
 * the budget refaults at about one budget. */
#define NEAR_BUDGETS 4
#define EWMA_SHIFT 5 /* weight 1/32 for each new distance */
#define EWMA_SCALE 4 /* distances kept times 16 */


void upager__observe_init(struct upager *p)
{
	struct observe *o = &p->obs;

	o->t_base = upager__now_ns();
	atomic_init(&o->win_start, o->t_base);
}

void upager__phase(struct upager *p, unsigned phase, uint64_t ns)
{
	unsigned k = ns ? 63 - (unsigned)__builtin_clzll(ns) : 0;

	if (k >= UPAGER_LATENCY_BUCKETS)
		k = UPAGER_LATENCY_BUCKETS - 1;
	STAT_ADD(p, phase_ns[phase], ns);
	STAT_INC(p, phase_hist[phase][k]);
}

#define STALL_COUNT(w) ((w)&0xffff)
#define STALL_START(w) ((w) >> 16)

void upager__stall_begin(struct upager *p, uint64_t t)
{
	struct observe *o = &p->obs;
	uint64_t us = (t - o->t_base) / 1000;
	uint64_t w = atomic_load_explicit(&o->stall_word, memory_order_relaxed), nw;

	do {
		nw = STALL_COUNT(w) ? w + 1 : (us << 16) | 1;
	} while (!atomic_compare_exchange_weak_explicit(&o->stall_word, &w, nw,
							memory_order_relaxed,
							memory_order_relaxed));
}

static void stall_end(struct upager *p, uint64_t t)
{
	struct observe *o = &p->obs;
	uint64_t us = (t - o->t_base) / 1000;
	uint64_t w = atomic_load_explicit(&o->stall_word, memory_order_relaxed), nw;

	do {
		nw = w - 1;
	} while (!atomic_compare_exchange_weak_explicit(&o->stall_word, &w, nw,
							memory_order_relaxed,
							memory_order_relaxed));
	if (STALL_COUNT(nw) == 0 && us > STALL_START(w))
		STAT_ADD(p, stall_ns, (us - STALL_START(w)) * 1000);
}

/* Stalled time so far, counting the stall still going on. */
static uint64_t stall_total(struct upager *p, uint64_t now)
{
	struct observe *o = &p->obs;
	uint64_t w = atomic_load_explicit(&o->stall_word, memory_order_relaxed);
	uint64_t total = atomic_load_explicit(&p->stats.stall_ns, memory_order_relaxed);
	uint64_t us = (now - o->t_base) / 1000;

	if (STALL_COUNT(w) && us > STALL_START(w))
		total += (us - STALL_START(w)) * 1000;
	return total;
}

static uint64_t workingset(struct upager *p, uint64_t now)
{
	struct observe *o = &p->obs;
	uint64_t resident = p->nframes - atomic_load(&p->frames.nfree);
	uint64_t last = atomic_load_explicit(&o->last_refault_ns, memory_order_relaxed);

	if (!last || now - last > RECENT_REFAULT_NS)
		return resident;
	return resident + (atomic_load_explicit(&o->dist_ewma, memory_order_relaxed) >> EWMA_SCALE);
}

static void note_refault(struct upager *p, uint64_t dist, uint64_t now)
{
	struct observe *o = &p->obs;
	uint64_t old = atomic_load_explicit(&o->dist_ewma, memory_order_relaxed);
	uint64_t last = atomic_load_explicit(&o->last_refault_ns, memory_order_relaxed);
	int64_t d = (int64_t)(dist << EWMA_SCALE);

	STAT_INC(p, refaults);
	if (dist < p->nframes)
		STAT_INC(p, refaults_recent);
	if (dist < NEAR_BUDGETS * (uint64_t)p->nframes)
		atomic_fetch_add_explicit(&o->refaults_near, 1, memory_order_relaxed);
	/* A lost update between racing misses only blurs an estimate. A
	 * stale average (no refault for a while) starts over. */
	if (!last || now - last > RECENT_REFAULT_NS)
		old = (uint64_t)d;
	else
		old = (uint64_t)((int64_t)old + ((d - (int64_t)old) >> EWMA_SHIFT));
	atomic_store_explicit(&o->dist_ewma, old, memory_order_relaxed);
	atomic_store_explicit(&o->last_refault_ns, now, memory_order_relaxed);
}

static void as_mib(struct asbuf *b, uint64_t pages, uint64_t page_size)
{
	as_dec(b, (pages * page_size + (1u << 20) - 1) >> 20);
	as_puts(b, " MiB");
}

static void warn(struct upager *p, const upager_thrash_info_t *t)
{
	char buf[400];
	struct asbuf b = { buf, 0, sizeof(buf) - 1 };
	/* The budget that would hold the working set, with a tenth to spare. */
	uint64_t want = t->workingset_pages + t->workingset_pages / 10;

	as_puts(&b, "upager: thrashing: ");
	as_dec(&b, t->misses ? t->refaults * 100 / t->misses : 0);
	as_puts(&b, "% of ");
	as_dec(&b, t->misses);
	as_puts(&b, " misses in ");
	as_dec(&b, t->window_ns / 1000000);
	as_puts(&b, " ms refaulted pages evicted moments before, stalled ");
	as_dec(&b, t->window_ns ? t->stall_ns * 100 / t->window_ns : 0);
	as_puts(&b, "% of the time; working set about ");
	as_mib(&b, t->workingset_pages, t->page_size);
	as_puts(&b, ", budget ");
	as_mib(&b, t->budget_pages, t->page_size);
	as_puts(&b, ": a budget of ");
	as_mib(&b, want, t->page_size);
	as_puts(&b, " (UPAGER_RAM) would stop it\n");
	buf[b.len < sizeof(buf) ? b.len : sizeof(buf) - 1] = '\0';
	upager__as_write(buf);
}

/* Judges the window that ends at now, if it is due and this thread
 * claims it. */
static void window_check(struct upager *p, uint64_t now)
{
	struct observe *o = &p->obs;
	uint64_t start = atomic_load_explicit(&o->win_start, memory_order_relaxed);

	if (now - start < WINDOW_NS ||
	    !atomic_compare_exchange_strong_explicit(&o->win_start, &start, now,
						     memory_order_relaxed, memory_order_relaxed))
		return;
	uint64_t misses = atomic_load_explicit(&o->misses, memory_order_relaxed);
	uint64_t refaults = atomic_load_explicit(&o->refaults_near, memory_order_relaxed);
	uint64_t stall = stall_total(p, now);
	upager_thrash_info_t t = {
		.window_ns = now - start,
		.misses = misses - atomic_exchange(&o->win_misses, misses),
		.refaults = refaults - atomic_exchange(&o->win_refaults, refaults),
		.stall_ns = stall - atomic_exchange(&o->win_stall, stall),
		.budget_pages = p->nframes,
		.page_size = p->page_size,
	};
	bool thrash = t.misses >= WINDOW_MIN_MISSES && t.refaults * 2 > t.misses &&
		      t.stall_ns * 2 > t.window_ns;

	atomic_store_explicit(&o->thrashing, thrash, memory_order_relaxed);
	atomic_store_explicit(&o->win_end, now, memory_order_relaxed);
	if (!thrash)
		return;
	STAT_INC(p, thrash_windows);
	uint64_t last = atomic_load_explicit(&o->last_warn, memory_order_relaxed);
	if ((last && now - last < WARN_EVERY_NS) ||
	    !atomic_compare_exchange_strong(&o->last_warn, &last, now))
		return;
	t.workingset_pages = workingset(p, now);
	/* No more than the regions hold (read without their lock: a
	 * region mapped or unmapped meanwhile only shifts the estimate). */
	uint64_t region_pages = __atomic_load_n(&p->region_bytes, __ATOMIC_RELAXED) / p->page_size;
	if (t.workingset_pages > region_pages)
		t.workingset_pages = region_pages;
	bool print = p->cfg.print_stats;
	if (p->cfg.on_thrash && p->cfg.on_thrash(p->cfg.on_thrash_arg, &t))
		print = true;
	if (print) {
		STAT_INC(p, thrash_warnings);
		warn(p, &t);
	}
}

void upager__miss_done(struct upager *p, const struct miss_clock *mc, uint64_t end)
{
	struct observe *o = &p->obs;

	if (mc->entry && mc->entry <= mc->start)
		upager__phase(p, UPAGER_PHASE_ENTRY, mc->start - mc->entry);
	upager__phase(p, UPAGER_PHASE_LOCK, mc->locked - mc->start);
	if (mc->frame)
		upager__phase(p, UPAGER_PHASE_FRAME, mc->frame - mc->locked + mc->overlap);
	if (mc->io1)
		upager__phase(p, UPAGER_PHASE_IO, mc->io1 - mc->io0 - mc->overlap);
	if (mc->mapped) {
		uint64_t from = mc->io1 ? mc->io1 : mc->frame ? mc->frame : mc->locked;
		if (mc->mapped >= from)
			upager__phase(p, UPAGER_PHASE_MAP, mc->mapped - from);
		upager__phase(p, UPAGER_PHASE_WAKE, end - mc->mapped);
	}
	upager__phase(p, UPAGER_PHASE_MISS, end - mc->start);
	if (mc->refault)
		note_refault(p, mc->refault - 1, end);
	atomic_fetch_add_explicit(&o->misses, 1, memory_order_relaxed);
	stall_end(p, end);
	window_check(p, end);
}

void upager__observe_fill(struct upager *p, upager_stats_t *out)
{
	struct observe *o = &p->obs;
	uint64_t now = upager__now_ns();

	out->workingset_pages = workingset(p, now);
	out->stall_ns = stall_total(p, now);
	/* No miss for two windows: whatever was judged last is over. */
	uint64_t end = atomic_load_explicit(&o->win_end, memory_order_relaxed);
	out->thrashing = atomic_load_explicit(&o->thrashing, memory_order_relaxed) &&
			 now - end < 2 * WINDOW_NS;
}
