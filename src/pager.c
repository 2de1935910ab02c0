// SPDX-License-Identifier: MIT
/*
 * The pager core: opening and closing a pager, its statistics, and the
 * fault path that every backend calls (regions are in region.c).
 *
 * The fault path, for one page, under that page's lock:
 *
 *   state      access  action                                  counted as
 *   NONE       any     map a zero page (read: write-protected)  zero
 *   SWAPPED    any     read the slot, map it (read: clean,      major
 *                      the slot stays as the page's copy)
 *   RESIDENT,  any     map it again (write: dirty)              minor
 *   unmapped
 *   RESIDENT,  write   lift the write protection, mark dirty,   wp
 *   write-             drop the now stale swap copy
 *   protected
 *   POISONED   any     SIGBUS                                   -
 *
 * Whatever the fault said, the action follows the page's state as it is
 * once the lock is held: a fault that raced with another thread's
 * resolution, or with an eviction, finds the page in its new state and
 * does what that state needs.
 */
#include "internal.h"
#include "fault.h"
#include "policy.h"
#include "trace.h"

#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- policy calls, under the policy lock ---- */

void upager__policy_insert(struct upager *p, uint32_t frame, uint64_t key, bool write)
{
	pthread_mutex_lock(&p->policy_lock);
	p->policy->ops->insert(p->policy->state, frame, key, write);
	pthread_mutex_unlock(&p->policy_lock);
}

/* A pinned frame is not in the policy (region.c, pin_page()): a reference
 * or removal of one is not the policy's business. The caller holds the
 * page lock, under which pins change. */
void upager__policy_reference(struct upager *p, uint32_t frame, bool write)
{
	if (atomic_load_explicit(&p->frames.frames[frame].pins, memory_order_relaxed))
		return;
	pthread_mutex_lock(&p->policy_lock);
	p->policy->ops->reference(p->policy->state, frame, write);
	pthread_mutex_unlock(&p->policy_lock);
}

void upager__policy_remove(struct upager *p, uint32_t frame, upager_policy_reason_t why)
{
	if (atomic_load_explicit(&p->frames.frames[frame].pins, memory_order_relaxed))
		return;
	pthread_mutex_lock(&p->policy_lock);
	p->policy->ops->remove(p->policy->state, frame, why);
	pthread_mutex_unlock(&p->policy_lock);
}

/* ---- frames ---- */

/* A free frame for a fault, evicting if none is free. */
int64_t upager__get_frame(struct upager *p)
{
	return upager__get_frame_for(p, false);
}

/* Below the low watermark the background evictor is woken, unless the
 * caller is about to read a page in: it then evicts for itself while its
 * read is on the way (evict.c, upager__evict_meanwhile). */
int64_t upager__get_frame_for(struct upager *p, bool reading)
{
	unsigned waited_ms = 0;
	int last_err = -EBUSY;

	for (;;) {
		int64_t idx = frames_alloc(&p->frames);
		if (idx >= 0) {
			if (!reading && atomic_load_explicit(&p->frames.nfree,
							     memory_order_relaxed) < p->free_low)
				upager__evictor_kick(p);
			return idx;
		}
		upager__evictor_kick(p);
		STAT_INC(p, direct_reclaims);
		int n = upager__reclaim(p, p->cfg.evict_batch < 32 ? p->cfg.evict_batch : 32);
		if (n > 0)
			continue;
		if (n < 0 && n != -EAGAIN)
			last_err = n;
		/* Nothing could be freed right now: every victim was busy, or
		 * its write failed. Give the others a moment, but never wait
		 * forever inside a fault. */
		if (waited_ms >= 5000)
			return last_err;
		if (n < 0 && n != -EAGAIN && waited_ms >= 200)
			return last_err; /* a persistent error, not just contention */
		frames_wait(&p->frames, 10);
		waited_ms += 10;
	}
}

/* How a fault stands with copy-on-write. */
#define COW_SHARED 1u /* a snapshot shares the page: keep it write-protected */
#define COW_PUSHED 2u /* this write gave the snapshot its own copy: a COW fault */

/* A backend that could map the page only writable (ret > 0, an older
 * kernel) where it must stay read-only: protect it after all. */
static int keep_read_only(struct region *r, uint64_t pg, int ret, unsigned cow)
{
	if (ret <= 0 || !((cow & COW_SHARED) || r->readonly || r->file_ro))
		return ret;
	if (r->readonly) /* the mapping itself is read-only */
		return 0;
	return r->p->backend->wrprotect(r, pg, 1) == 0 ? 0 : ret;
}

/*
 * A page read back from swap for a read is mapped read-only, so that it
 * stays clean (its swap copy stays valid) unless the program writes it.
 * Many programs write what they have just read (a reference count, a
 * hash table's probe then update, a sort's merge), and each such page
 * then costs a second fault. So the pager counts how many of the pages it
 * mapped read-only were written while still clean; when enough were, a
 * read's page is mapped writable at once, and so is a window read with it
 * (prefetch.c), one in 32 still read-only to keep measuring.
 *
 * Such a page keeps its swap copy and a checksum of what was read
 * (PTE_GUESSED): if the program never writes it, eviction finds it
 * unchanged and drops it without a write (evict.c). A wrong guess costs
 * two checksums, under 1 us; the fault it saves costs a few us in fast
 * mode and 25-30 us in transparent mode, a hand-off to a handler thread.
 * Hence the low thresholds. (Before the checksums a wrong guess cost a
 * write, and the thresholds were 75% and 33%: sqlite3, python3 and
 * memcached under upager-run now take 7-9% fewer faults.)
 */
static void note_upgrade(struct region *r, uint64_t pg, struct upte *e)
{
	if (e->slot && !region_file_page(r, pg))
		atomic_fetch_add_explicit(&r->p->ro_upgrades, 1, memory_order_relaxed);
}

bool upager__write_likely(struct region *r, uint64_t pg, uint32_t f)
{
	struct upager *p = r->p;

	if (region_file_page(r, pg) || !region_plain(r) || r->file_ro ||
	    (f & (PTE_NOWRITE | PTE_NOACCESS)) ||
	    atomic_load_explicit(&p->trace, memory_order_relaxed))
		return false;
	uint32_t fills = atomic_load_explicit(&p->ro_fills, memory_order_relaxed);
	uint32_t upgrades = atomic_load_explicit(&p->ro_upgrades, memory_order_relaxed);
	/* The share of pages written, in percent, from which it pays. */
	unsigned pays = p->transparent ? 5 : 15;
	if (fills < 32 || (uint64_t)upgrades * 100 < (uint64_t)fills * pays)
		return false;
	return atomic_fetch_add_explicit(&p->fill_probe, 1, memory_order_relaxed) % 32 != 0;
}

/* The page is in a frame. */
static int fault_resident(struct region *r, uint64_t pg, struct upte *e, uint32_t f, bool write,
			  unsigned cow)
{
	struct upager *p = r->p;
	const struct fault_backend *be = p->backend;
	int ret;

	if (f & PTE_MAPPED) {
		if (!write || (f & PTE_WRITABLE)) {
			/* Already resolved by another thread. */
			be->wake(r, pg);
			return 0;
		}
		/* Counted first: the call that resolves the fault may wake
		 * the faulting thread, which may read the statistics. */
		if (!(cow & COW_PUSHED))
			STAT_INC(p, faults_wp);
		note_upgrade(r, pg, e);
		upager__trace(p, region_page_key(r, pg), TRACE_FLAGS(TRACE_WP, true));
		ret = be->unprotect(r, pg);
		if (ret < 0)
			return ret;
		pte_drop_swap_copy(p, e);
		pte_update(e, 0, PTE_WRITABLE | PTE_DIRTY);
		return 0;
	}
	/* A dirty page may be mapped writable at once, unless the program
	 * made it read-only or a snapshot shares it. */
	bool writable = write || ((f & PTE_DIRTY) && !(f & PTE_NOWRITE) && !(cow & COW_SHARED) &&
				  !r->readonly && !r->file_ro);
	if (f & PTE_AROUND) { /* read around a miss (prefetch.c) */
		pte_update(e, PTE_AROUND, 0);
		upager__readaround_hit(p);
	}
	STAT_INC(p, faults_minor);
	if (f & PTE_SAMPLED)
		STAT_INC(p, sample_faults);
	if (write && !(f & PTE_DIRTY) && !(cow & COW_PUSHED)) {
		STAT_INC(p, faults_wp);
		note_upgrade(r, pg, e);
	}
	/* Recorded before the fault is resolved: once it is, the program
	 * runs on and its next fault may be recorded by another thread. */
	upager__trace(p, region_page_key(r, pg),
		      TRACE_FLAGS((f & PTE_SAMPLED) ? TRACE_SAMPLE : TRACE_MINOR, write));
	ret = keep_read_only(r, pg, be->map(r, pg, 1, writable), writable ? 0 : cow);
	if (ret < 0)
		return ret;
	if (ret > 0) /* the backend could only map it writable */
		writable = true;
	if (writable && !(f & PTE_DIRTY))
		pte_drop_swap_copy(p, e);
	pte_set_mapped(p, e, writable);
	upager__policy_reference(p, e->frame, write);
	upager__readahead_marker(r, pg);
	return 0;
}

void upager__fill_done(struct region *r, uint64_t pg, struct upte *e, uint32_t frame, bool write,
		       bool guessed)
{
	struct upager *p = r->p;

	guessed = guessed && write && e->slot;
	if (write && !guessed)
		pte_drop_swap_copy(p, e);
	frame_bind(p, frame, r, pg, e);
	pte_update(e, PTE_STATE_MASK | PTE_MAPPED | PTE_WRITABLE | PTE_DIRTY | PTE_FRESH | PTE_GUESSED,
		   PTE_RESIDENT | (guessed ? PTE_GUESSED : 0));
	pte_set_mapped(p, e, write);
	upager__policy_insert(p, frame, region_page_key(r, pg), write);
}

void upager__page_install_unmapped(struct region *r, uint64_t pg, struct upte *e, uint32_t frame,
				   uint32_t extra_flags)
{
	struct upager *p = r->p;

	frame_bind(p, frame, r, pg, e);
	pte_update(e, PTE_STATE_MASK | PTE_MAPPED | PTE_WRITABLE | PTE_SAMPLED,
		   PTE_RESIDENT | PTE_DIRTY | extra_flags);
	upager__policy_insert(p, frame, region_page_key(r, pg), false);
}

int upager__load_pages(struct upager *p, void *addr, const void *buf, size_t len)
{
	uintptr_t a = (uintptr_t)addr;
	struct region *r;
	int err = 0;

	upager__clear_error();
	if (((a | len) & (p->page_size - 1)) || len == 0)
		return upager__fail(-EINVAL, "upager__load_pages: %p, %zu bytes: not whole pages",
				    addr, len);
	r = upager__range_region(p, addr, len, "upager__load_pages");
	if (!r)
		return UPAGER_ENOREGION;
	for (size_t off = 0; off < len; off += p->page_size) {
		const char *src = (const char *)buf + off;
		uint64_t pg = (a + off - r->base) >> p->page_shift;

		if (upager__is_zero(src, p->page_size))
			continue;
		struct upte *e = pt_get(&r->pt, pg);
		if (!e) {
			err = upager__fail(-ENOMEM, "upager__load_pages: no page table for %p",
					   (void *)(a + off));
			break;
		}
		upager__pte_lock(e);
		if (pte_state(pte_flags(e)) != PTE_NONE || e->slot) {
			upager__pte_unlock(e);
			err = upager__fail(-EEXIST, "upager__load_pages: the page at %p is in use",
					   (void *)(a + off));
			break;
		}
		int64_t frame = upager__get_frame(p);
		if (frame < 0) {
			upager__pte_unlock(e);
			err = upager__fail((int)frame, "upager__load_pages: no frame: %s",
					   upager_strerror((int)frame));
			break;
		}
		/* Into the memfd, not through a view: a store there would
		 * fault the page in first (see give_version()). */
		ssize_t put = pwrite(r->memfd, src, p->page_size, (off_t)(pg << p->page_shift));
		if (put != (ssize_t)p->page_size) {
			err = put < 0 ? -errno : -EIO;
			frames_free(&p->frames, (uint32_t)frame);
			upager__pte_unlock(e);
			upager__fail(err, "upager__load_pages: writing the page at %p: %s",
				     (void *)(a + off), strerror(-err));
			break;
		}
		upager__page_install_unmapped(r, pg, e, (uint32_t)frame, 0);
		upager__pte_unlock(e);
	}
	upager__region_put(r);
	return err;
}

/* The page is not in a frame: zero-fill it or read it back from swap,
 * with a window of the pages after it if the faults run sequentially
 * (prefetch.c). */
static int fault_fill(struct region *r, uint64_t pg, struct upte *e, uint32_t f, bool write,
		      unsigned cow)
{
	struct upager *p = r->p;
	const struct fault_backend *be = p->backend;
	struct miss_clock *mc = &upager__mc;
	bool guessed = false; /* mapped writable for a read: PTE_GUESSED */
	int ret;

	mc->miss = true;
	/* From the handler's first sight of the fault, where known. */
	upager__stall_begin(p, mc->entry && mc->entry <= mc->start ? mc->entry : mc->start);
	upager__refault_check(p, e);
	int64_t frame = upager__get_frame_for(p,
					      pte_state(f) != PTE_NONE || region_file_page(r, pg));
	mc->frame = upager__now_ns();
	if (frame < 0)
		return (int)frame;

	if (pte_state(f) == PTE_NONE && !region_file_page(r, pg)) {
		/* Fault-around only for writes: a program that reads memory
		 * it never wrote is not filling it, and each zero page mapped
		 * ahead would take a frame. */
		unsigned win = write ? upager__window_size(r, pg, true) : 0;
		struct io_ring *ring = NULL;
		struct window *w = NULL;

		STAT_INC(p, faults_zero);
		/* Recorded before the fault is resolved: once it is, the
		 * program runs on and its next fault may be recorded by
		 * another thread. */
		upager__trace(p, region_page_key(r, pg), TRACE_FLAGS(TRACE_ZERO, write));
		if (win) {
			ring = io_ring_get(&p->io);
			w = io_ring_scratch(ring);
			upager__window_claim(r, w, pg + 1, PTE_NONE, win);
			/* Counted first, like the fault itself. */
			STAT_ADD(p, faultaround_pages, w->n);
		}
		/* Before the install wakes the program (see upager__read_in). */
		upager__window_done(r, pg, w ? w->n : 0);
		ret = be->install(r, pg, 1 + (w ? w->n : 0), NULL, write);
		mc->mapped = upager__now_ns();
		if (w && w->n && ret < 0) {
			/* As in upager__read_in(): the faulting page alone. */
			STAT_ADD(p, faultaround_pages, -(uint64_t)w->n);
			upager__window_discard(r, w, NULL);
			ret = be->install(r, pg, 1, NULL, write);
		}
		if (w) {
			if (w->n && ret >= 0)
				upager__window_commit(r, w, true, false);
			io_ring_put(&p->io, ring);
		}
	} else {
		unsigned win = upager__window_size(r, pg, false);

		STAT_INC(p, faults_major);
		upager__trace(p, region_page_key(r, pg), TRACE_FLAGS(TRACE_MAJOR, write));
		bool was_read = !write;
		if (was_read && pte_state(f) == PTE_SWAPPED && upager__write_likely(r, pg, f))
			write = guessed = true;
		ret = upager__read_in(r, pg, e, write,
				      guessed ? p->frames.frames[frame].read_sum : NULL, win);
		if (was_read && !write && ret == 0 && !region_file_page(r, pg))
			pager_note_ro_fills(p, 1);
	}
	if (!write)
		ret = keep_read_only(r, pg, ret, cow);
	if (ret < 0)
		goto out_free;
	if (ret > 0)
		write = true; /* mapped writable regardless: treat as dirty */
	upager__fill_done(r, pg, e, (uint32_t)frame, write, guessed);
	return 0;

out_free:
	frames_free(&p->frames, (uint32_t)frame);
	return ret;
}

enum fault_result upager__fault(struct region *r, uintptr_t addr, bool write, int *err)
{
	struct upager *p = r->p;
	struct miss_clock *mc = &upager__mc;
	uint64_t t0 = upager__now_ns();
	uint64_t pg = (addr - r->base) >> p->page_shift;
	struct upte *e;
	int ret;

	/* The backend's stamp of the fault's arrival, then a clean clock. */
	*mc = (struct miss_clock){ .entry = upager__entry_ns, .start = t0 };
	upager__entry_ns = 0;

	if (addr < r->base || addr >= r->base + r->len)
		return FAULT_NOT_OURS;
	e = pt_get(&r->pt, pg);
	if (!e) {
		*err = -ENOMEM;
		return FAULT_SIGBUS;
	}
again:
	pthread_rwlock_rdlock(&p->cow_lock);
	upager__pte_lock(e);
	mc->locked = upager__now_ns();
	if (r->dying) {
		/* A fault racing with upager_unmap(): the program is using
		 * memory it is unmapping. Let it go; it will fault again on
		 * the unregistered mapping or its absence. */
		p->backend->wake(r, pg);
		upager__pte_unlock(e);
		pthread_rwlock_unlock(&p->cow_lock);
		return FAULT_DONE;
	}
	uint32_t f = pte_flags(e);
	if ((f & PTE_NOACCESS) || (write && ((f & PTE_NOWRITE) || r->readonly || r->file_ro))) {
		/* The program's own protection forbids it (or it wrote to a
		 * snapshot): a real violation, for the program's SIGSEGV
		 * handler or the default action. */
		upager__pte_unlock(e);
		pthread_rwlock_unlock(&p->cow_lock);
		return FAULT_NOT_OURS;
	}
	unsigned cow = 0;
	if (unlikely((r->self || r->backing) && !(f & PTE_OWNED))) {
		ret = upager__cow_read_through(r, pg, e, write);
		if (ret == COW_RETRY) {
			/* Another fault holds a page this one needs, and may be
			 * waiting for ours. */
			upager__pte_unlock(e);
			pthread_rwlock_unlock(&p->cow_lock);
			sched_yield();
			goto again;
		}
		if (ret < 0)
			goto out;
		f = pte_flags(e);
	}
	if (unlikely(r->chain)) {
		if (write) {
			ret = upager__cow_push(r, pg, e);
			if (ret < 0)
				goto out;
			if (ret > 0) {
				STAT_INC(p, faults_cow);
				cow = COW_PUSHED;
				f = pte_flags(e);
			}
		} else if (upager__cow_shared(r, pg)) {
			cow = COW_SHARED;
		}
	}
	if (p->map_cap && !(f & PTE_MAPPED) &&
	    (uint64_t)atomic_load_explicit(&p->mapped, memory_order_relaxed) >= p->map_cap)
		upager__shed_mappings(p, 64);
	switch (pte_state(f)) {
	case PTE_RESIDENT:
		ret = fault_resident(r, pg, e, f, write, cow);
		break;
	case PTE_POISONED:
		ret = UPAGER_EPOISON;
		break;
	default:
		ret = fault_fill(r, pg, e, f, write, cow);
		break;
	}
out:
	upager__debug_check_pte(r, pg, e);
	upager__pte_unlock(e);
	pthread_rwlock_unlock(&p->cow_lock);
	uint64_t t_end = upager__now_ns();
	upager__record_latency(p, t_end - t0);
	if (mc->miss)
		upager__miss_done(p, mc, t_end);
	upager__debug_after_fault(p);
	if (ret < 0 && r->dying) {
		/* Torn down while this fault was under way, past the check
		 * above: the backend refused the fill because the region is
		 * no longer registered (uffd says ENOENT). As above: let the
		 * thread go. */
		p->backend->wake(r, pg);
		return FAULT_DONE;
	}
	if (ret < 0) {
		*err = ret;
		return FAULT_SIGBUS;
	}
	return FAULT_DONE;
}

UPAGER_API const char *upager_backend(upager_t *p, const char **why)
{
	if (why)
		*why = p->backend_why;
	return p->backend->name;
}

/* ---- open and close ---- */

static int validate(struct upager *p)
{
	upager_config_t *c = &p->cfg;

	if (c->env_error[0])
		return upager__fail(UPAGER_EENV, "%s", c->env_error);
	if (c->page_size < UPAGER_MIN_PAGE_SIZE || c->page_size > UPAGER_MAX_PAGE_SIZE ||
	    (c->page_size & (c->page_size - 1)))
		return upager__fail(UPAGER_EPAGESIZE,
				    "page size %zu is not a power of two from 4096 to 2097152",
				    c->page_size);
	if (c->ram_bytes / c->page_size < UPAGER_MIN_FRAMES)
		return upager__fail(
			UPAGER_EBUDGET,
			"RAM budget %zu bytes holds %zu pages of %zu bytes; at least %d are needed",
			c->ram_bytes, c->ram_bytes / c->page_size, c->page_size, UPAGER_MIN_FRAMES);
	if (c->ram_bytes / c->page_size > UINT32_MAX - 1)
		return upager__fail(UPAGER_EBUDGET, "RAM budget of %zu pages is too many",
				    c->ram_bytes / c->page_size);
	if (c->mode != UPAGER_MODE_TRANSPARENT && c->mode != UPAGER_MODE_FAST)
		return upager__fail(UPAGER_EMODE, "fault mode %d is neither transparent nor fast",
				    (int)c->mode);
	if (c->evict_batch > 1024)
		return upager__fail(UPAGER_ECONFIG,
				    "evict_batch %u is not in 0..1024 (0: automatic)",
				    c->evict_batch);
	if (!(c->sample_rate >= 0 && c->sample_rate <= 64)) /* NaN too */
		return upager__fail(UPAGER_ECONFIG, "sample_rate %g is not in 0..64",
				    c->sample_rate);
	if (c->handler_threads > 64)
		return upager__fail(UPAGER_ECONFIG, "handler_threads %u is more than 64",
				    c->handler_threads);
	if (c->free_high && c->free_low > c->free_high)
		return upager__fail(UPAGER_ECONFIG, "free_low %u is above free_high %u",
				    c->free_low, c->free_high);
	return 0;
}

static char *dup_or_null(const char *s, int *err)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*err = -ENOMEM;
	return d;
}

/* Read once per process: glibc parses a sysfs file for it with the
 * program's locale, which in a forked child of upager-run may still be in
 * paged memory it has not fetched when its pager opens (shim-fork.c). */
static unsigned ncpus(void)
{
	static _Atomic long cached;
	long n = atomic_load_explicit(&cached, memory_order_relaxed);

	if (n <= 0) {
		n = sysconf(_SC_NPROCESSORS_ONLN);
		if (n <= 0)
			n = 1;
		atomic_store_explicit(&cached, n, memory_order_relaxed);
	}
	return (unsigned)n;
}

UPAGER_API int upager_open(const upager_config_t *cfg, upager_t **out)
{
	struct upager *p;
	upager_config_t full;
	int err = 0;

	upager__clear_error();
	if (!out)
		return -EINVAL;
	/* The fields the caller's struct has, over the defaults for those it
	 * is too old to have: what upager_config_init() would have given.
	 * A complete struct reads no environment here (a forked child of
	 * upager-run opens its pager before its environ is back). */
	if (!cfg || cfg->size < sizeof(full))
		upager__config_defaults(&full);
	if (cfg) {
		if (cfg->size < UPAGER__STRUCT_MIN_SIZE)
			return upager__fail(
				-EINVAL,
				"upager_open: cfg->size is %u; fill the configuration with upager_config_init()",
				(unsigned)cfg->size);
		memcpy(&full, cfg, cfg->size < sizeof(full) ? cfg->size : sizeof(full));
		full.size = sizeof(full);
		full.version = UPAGER_CONFIG_VERSION;
	}
	cfg = &full;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->cfg = full;
	p->swap.fd = -1;
	pthread_mutex_init(&p->policy_lock, NULL);
	pthread_mutex_init(&p->regions_lock, NULL);
	/* Writers first: a snapshot waits only for the faults in flight,
	 * not for every fault that arrives while it waits. */
	pthread_rwlockattr_t rwa;
	pthread_rwlockattr_init(&rwa);
	pthread_rwlockattr_setkind_np(&rwa, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&p->cow_lock, &rwa);
	pthread_rwlockattr_destroy(&rwa);

	err = validate(p);
	if (err)
		goto fail_early;
	p->swap_path = dup_or_null(cfg->swap_path, &err);
	p->backend_name = dup_or_null(cfg->backend ? cfg->backend : "auto", &err);
	p->policy_spec = dup_or_null(cfg->policy ? cfg->policy : "clock", &err);
	if (err)
		goto fail_early;
	p->cfg.swap_path = p->swap_path;
	p->cfg.backend = p->backend_name;
	p->cfg.policy = p->policy_spec;

	p->cfg.trace_path = NULL; /* used by upager_open() only */
	p->sample_rate = cfg->sample_rate;

	p->page_size = cfg->page_size;
	p->page_shift = (unsigned)__builtin_ctzll(p->page_size);
	p->nframes = (uint32_t)(cfg->ram_bytes / cfg->page_size);
	p->handlers_auto = !p->cfg.handler_threads;
	if (p->handlers_auto)
		p->cfg.handler_threads = ncpus();

	if (!p->cfg.evict_batch) {
		/* Each batch is a TLB shootdown and a punch on its own, which
		 * a large budget can spread over more pages (bench/README.md,
		 * "Eviction batches sized to the budget": a third less time
		 * getting a frame per miss at 128 MiB); at a small one the
		 * frames kept free for a batch are frames the program misses. */
		unsigned batch = p->nframes / 128;
		p->cfg.evict_batch = batch < 64 ? 64 : batch > 256 ? 256 : batch;
	}
	p->free_low = cfg->free_low;
	p->free_high = cfg->free_high;
	if (!p->free_low) {
		p->free_low = p->nframes / 128;
		if (p->free_low < 2)
			p->free_low = 2;
		if (p->free_low > 4096)
			p->free_low = 4096;
	}
	if (!p->free_high) {
		/* Room for a whole evict_batch between the two: at a small
		 * budget twice free_low is a few frames, and each batch (a
		 * TLB shootdown, a punch, a write) would take only those. Not
		 * more than a sixteenth of the budget kept free for it. */
		unsigned batch_room = p->cfg.evict_batch;
		if (batch_room > p->nframes / 16)
			batch_room = p->nframes / 16;
		p->free_high = p->free_low * 2;
		if (p->free_high < p->free_low + batch_room)
			p->free_high = p->free_low + batch_room;
	}
	if (p->free_high >= p->nframes / 2) {
		p->free_high = p->nframes / 4;
		if (p->free_low > p->free_high)
			p->free_low = p->free_high;
	}

	err = policy_create(p->policy_spec, p->nframes, upager__age_frame, p, &p->policy);
	if (err)
		goto fail_early;
	err = frames_init(&p->frames, p->nframes);
	if (err) {
		upager__fail(err, "frame pool of %u frames: %s", p->nframes, upager_strerror(err));
		goto fail_policy;
	}
	err = swap_open(&p->swap, p->swap_path, cfg->swap_max, p->page_size, cfg->direct_io);
	if (err)
		goto fail_frames;
	/* A ring for each thread that may do I/O at once: handler threads,
	 * the evictor, and faulting threads in fast mode. */
	unsigned nrings = p->cfg.handler_threads + 1 + 2 * ncpus() + 2;
	/* A readahead window that fits its ring's bounce buffer is copied
	 * into place; a larger one is read into its frames through the
	 * pager view, each of whose pages is then allocated, zeroed and
	 * faulted in there (about 25% slower sequential reads at 1 MiB
	 * windows). The largest window (1 MiB) fits from a 128 MiB budget
	 * on; smaller budgets keep the buffers at 1/128 of the budget. */
	size_t bounce = (size_t)(cfg->ram_bytes / 128) & ~(size_t)(p->page_size - 1);
	if (bounce < (256u << 10))
		bounce = 256u << 10;
	if (bounce > (1024u << 10))
		bounce = 1024u << 10;
	if (bounce < p->page_size)
		bounce = p->page_size;
	size_t scratch = upager__reclaim_scratch_bytes();
	if (scratch < upager__prefetch_scratch_bytes())
		scratch = upager__prefetch_scratch_bytes();
	err = io_pool_init(&p->io, nrings, 128, bounce, scratch);
	if (err)
		goto fail_swap;
	p->self_pid = getpid();
	if (getrandom(&p->sum_seed, sizeof(p->sum_seed), GRND_NONBLOCK) != sizeof(p->sum_seed))
		p->sum_seed = upager__now_ns() ^ ((uint64_t)p->self_pid << 40) ^ (uintptr_t)p;
	p->self_pidfd_open = upager__fd_keep((int)syscall(SYS_pidfd_open, p->self_pid, 0u));
	atomic_store(&p->self_pidfd, p->self_pidfd_open);
	upager__observe_init(p);
	err = upager__fault_select(p);
	if (err)
		goto fail_io;
	err = upager__trace_open_config(p, cfg->trace_path);
	if (err)
		goto fail_trace;
	err = upager__evictor_start(p);
	if (err)
		goto fail_trace;
	*out = p;
	return 0;

fail_trace:
	upager__trace_close(p);
	p->backend->fini(p);
fail_io:
	upager__fd_close(p->self_pidfd_open);
	io_pool_destroy(&p->io);
fail_swap:
	swap_close(&p->swap);
fail_frames:
	frames_destroy(&p->frames);
fail_policy:
	policy_destroy(p->policy);
fail_early:
	free(p->swap_path);
	free(p->backend_name);
	free(p->policy_spec);
	pthread_mutex_destroy(&p->policy_lock);
	pthread_mutex_destroy(&p->regions_lock);
	pthread_rwlock_destroy(&p->cow_lock);
	free(p);
	return err;
}

UPAGER_API int upager_close(upager_t *p)
{
	struct region *r;
	int close_err = 0;

	upager__clear_error();
	if (!p)
		return -EINVAL;
	if (p->cfg.print_stats)
		upager_stats_print(p, STDERR_FILENO);
	upager__evictor_stop(p);
	upager__readahead_stop(p);
	upager__trace_close(p);
	upager__debug_at_close(p);
	pthread_mutex_lock(&p->regions_lock);
	while ((r = p->regions)) {
		p->regions = r->next;
		if (r->is_file) {
			/* Nothing written through a shared file region is lost. */
			pthread_mutex_unlock(&p->regions_lock);
			int werr = upager__file_writeback(r, 0, r->npages);
			if (werr < 0 && !close_err)
				close_err = werr;
			pthread_mutex_lock(&p->regions_lock);
		}
		if (!r->readonly) {
			p->nregions--;
			__atomic_fetch_sub(&p->region_bytes, r->len, __ATOMIC_RELAXED);
		}
		pthread_mutex_unlock(&p->regions_lock);
		upager__region_teardown(r);
		pthread_mutex_lock(&p->regions_lock);
	}
	pthread_mutex_unlock(&p->regions_lock);
	upager__cow_close(p);
	p->backend->fini(p);
	upager__fd_close(p->self_pidfd_open);
	io_pool_destroy(&p->io);
	swap_close(&p->swap);
	frames_destroy(&p->frames);
	policy_destroy(p->policy);
	free(p->swap_path);
	free(p->backend_name);
	free(p->policy_spec);
	pthread_mutex_destroy(&p->policy_lock);
	pthread_mutex_destroy(&p->regions_lock);
	pthread_rwlock_destroy(&p->cow_lock);
	free(p);
	return close_err;
}

/* ---- statistics ---- */

#define LOAD(field) atomic_load_explicit(&p->stats.field, memory_order_relaxed)

/* All of the statistics, into a whole struct of ours. */
static void stats_fill(upager_t *p, upager_stats_t *out)
{
	struct region *r;
	uint64_t pt_bytes = 0;

	memset(out, 0, sizeof(*out));
	out->size = sizeof(*out);
	out->version = UPAGER_STATS_VERSION;
	out->faults_zero = LOAD(faults_zero);
	out->faults_minor = LOAD(faults_minor);
	out->faults_major = LOAD(faults_major);
	out->faults_wp = LOAD(faults_wp);
	out->faults_cow = LOAD(faults_cow);
	out->evictions = LOAD(evictions);
	out->writebacks = LOAD(writebacks);
	out->clean_drops = LOAD(clean_drops);
	out->zero_drops = LOAD(zero_drops);
	out->bytes_read = LOAD(bytes_read);
	out->bytes_written = LOAD(bytes_written);
	out->io_submits = LOAD(io_submits);
	out->io_errors = LOAD(io_errors);
	out->direct_reclaims = LOAD(direct_reclaims);
	out->samples = LOAD(samples);
	out->sample_faults = LOAD(sample_faults);
	out->sample_ns = LOAD(sample_ns);
	out->readahead_pages = LOAD(readahead_pages);
	out->faultaround_pages = LOAD(faultaround_pages);
	out->pages_copied = LOAD(pages_copied);
	out->pages_shared = LOAD(pages_shared);
	out->punch_failures = LOAD(punch_failures);
	out->readaround_pages = LOAD(readaround_pages);
	out->readaround_watched = LOAD(readaround_watched);
	out->readaround_hits = LOAD(readaround_hits);
	out->unchanged_drops = LOAD(unchanged_drops);
	for (int ph = 0; ph < UPAGER_PHASES; ph++) {
		out->phase_ns[ph] = LOAD(phase_ns[ph]);
		for (int i = 0; i < UPAGER_LATENCY_BUCKETS; i++)
			out->phase_hist[ph][i] = LOAD(phase_hist[ph][i]);
	}
	out->refaults = LOAD(refaults);
	out->refaults_recent = LOAD(refaults_recent);
	out->thrash_windows = LOAD(thrash_windows);
	out->thrash_warnings = LOAD(thrash_warnings);
	upager__observe_fill(p, out);
	upager__trace_counts(p, &out->trace_records, &out->trace_dropped);
	out->pinned_pages = atomic_load(&p->pinned);
	for (int i = 0; i < UPAGER_LATENCY_BUCKETS; i++)
		out->latency_hist[i] = LOAD(latency_hist[i]);
	out->frames_total = p->nframes;
	out->resident_pages = p->nframes - atomic_load(&p->frames.nfree);
	out->swap_slots_used = swap_used(&p->swap);
	out->swap_slots_total = p->swap.nslots;
	out->page_size = p->page_size;
	pthread_mutex_lock(&p->regions_lock);
	out->regions = p->nregions;
	out->snapshots = atomic_load_explicit(&p->nsnapshots, memory_order_relaxed);
	out->region_bytes = __atomic_load_n(&p->region_bytes, __ATOMIC_RELAXED);
	for (r = p->regions; r; r = r->next)
		pt_bytes += atomic_load(&r->pt.bytes);
	pthread_mutex_unlock(&p->regions_lock);
	/* No more pages than the regions have. */
	if (out->workingset_pages > out->region_bytes / p->page_size)
		out->workingset_pages = out->region_bytes / p->page_size;
	out->metadata_bytes = pt_bytes + (uint64_t)p->nframes * sizeof(struct frame) +
			      io_pool_bounce_used(&p->io) + upager__readahead_bytes(p);
	snprintf(out->backend, sizeof(out->backend), "%s", p->backend->name);
	/* The mode in effect: the sigsegv backend, and a user-mode-only
	 * userfaultfd, always resolve faults in the faulting thread. */
	snprintf(out->mode, sizeof(out->mode), "%s", p->transparent ? "transparent" : "fast");
	snprintf(out->policy, sizeof(out->policy), "%s", p->policy->ops->name);
	snprintf(out->backend_why, sizeof(out->backend_why), "%s", p->backend_why);
	out->syscalls_transparent = p->transparent;
}

UPAGER_API int upager_stats_sized(upager_t *p, upager_stats_t *out, size_t size)
{
	upager_stats_t full;

	if (!p || !out || size < UPAGER__STRUCT_MIN_SIZE)
		return -EINVAL;
	/* The caller's struct may be older and smaller than ours. */
	stats_fill(p, &full);
	if (size > sizeof(full))
		size = sizeof(full);
	full.size = (uint32_t)size;
	memcpy(out, &full, size);
	return 0;
}

/* The symbol that programs built before upager_stats_sized() call:
 * their struct is at least version 2's. */
#undef upager_stats
UPAGER_API int upager_stats(upager_t *p, upager_stats_t *out)
{
	return upager_stats_sized(p, out, UPAGER__STATS_V2_SIZE);
}

/* One histogram line, in groups of 4x from 1 us. */
static void stats_print_hist(char *buf, size_t cap, int *n, const char *label, const uint64_t *hist)
{
	static const char *const labels[] = { "<1",     "1-4",    "4-16",  "16-64",
					      "64-256", "256-1k", "1k-4k", ">4k" };
	uint64_t groups[8] = { 0 };

	for (int k = 0; k < UPAGER_LATENCY_BUCKETS; k++) {
		int g = k < 10 ? 0 : (k - 10) / 2 + 1; /* 2^10 ns ~ 1 us, then x4 per group */
		groups[g > 7 ? 7 : g] += hist[k];
	}
	if ((size_t)*n < cap)
		*n += snprintf(buf + *n, cap - (size_t)*n, "%s", label);
	for (int g = 0; g < 8; g++)
		if ((size_t)*n < cap)
			*n += snprintf(buf + *n, cap - (size_t)*n, "%s%s:%llu", g ? " " : "",
				       labels[g], (unsigned long long)groups[g]);
	if ((size_t)*n < cap)
		*n += snprintf(buf + *n, cap - (size_t)*n, "\n");
}

UPAGER_API int upager_stats_print(upager_t *p, int fd)
{
	upager_stats_t s;
	char buf[8192];
	int n = 0, err;

	err = upager_stats_sized(p, &s, sizeof(s));
	if (err)
		return err;
#define OUT(...) n += snprintf(buf + n, sizeof(buf) - (size_t)n, __VA_ARGS__)
	OUT("upager statistics (backend %s, %s mode, policy %s, page size %llu)\n", s.backend,
	    s.mode, s.policy, (unsigned long long)s.page_size);
	OUT("  backend chosen:     %s\n", s.backend_why);
	OUT("  budget:             %llu frames (%llu MiB), %llu resident\n",
	    (unsigned long long)s.frames_total,
	    (unsigned long long)(s.frames_total * s.page_size >> 20),
	    (unsigned long long)s.resident_pages);
	OUT("  regions:            %llu (%llu MiB)\n", (unsigned long long)s.regions,
	    (unsigned long long)(s.region_bytes >> 20));
	OUT("  zero-fill faults:   %llu\n", (unsigned long long)s.faults_zero);
	OUT("  minor faults:       %llu\n", (unsigned long long)s.faults_minor);
	OUT("  major faults:       %llu\n", (unsigned long long)s.faults_major);
	OUT("  write-protect:      %llu\n", (unsigned long long)s.faults_wp);
	if (s.snapshots || s.faults_cow || s.pages_copied || s.pages_shared)
		OUT("  copy-on-write:      %llu faults, %llu pages copied, %llu shared, %llu snapshots\n",
		    (unsigned long long)s.faults_cow, (unsigned long long)s.pages_copied,
		    (unsigned long long)s.pages_shared, (unsigned long long)s.snapshots);
	OUT("  evictions:          %llu (written %llu, clean %llu, zero %llu)\n",
	    (unsigned long long)s.evictions, (unsigned long long)s.writebacks,
	    (unsigned long long)s.clean_drops, (unsigned long long)s.zero_drops);
	if (s.unchanged_drops)
		OUT("  unchanged:          %llu of the clean ones were mapped writable at their read "
		    "and found unchanged\n",
		    (unsigned long long)s.unchanged_drops);
	OUT("  swap I/O:           %.1f MiB read, %.1f MiB written, %llu submits, %llu errors\n",
	    s.bytes_read / 1048576.0, s.bytes_written / 1048576.0, (unsigned long long)s.io_submits,
	    (unsigned long long)s.io_errors);
	OUT("  swap slots:         %llu used of %llu\n", (unsigned long long)s.swap_slots_used,
	    (unsigned long long)s.swap_slots_total);
	OUT("  direct reclaims:    %llu\n", (unsigned long long)s.direct_reclaims);
	OUT("  prefetch:           %llu pages read ahead, %llu zero-filled around a fault, "
	    "%llu read around a miss (%llu of %llu watched used)\n",
	    (unsigned long long)s.readahead_pages, (unsigned long long)s.faultaround_pages,
	    (unsigned long long)s.readaround_pages, (unsigned long long)s.readaround_hits,
	    (unsigned long long)s.readaround_watched);
	OUT("  sampling:           %llu pages unmapped in %.1f ms, %llu references seen\n",
	    (unsigned long long)s.samples, s.sample_ns / 1e6, (unsigned long long)s.sample_faults);
	if (s.trace_records || s.trace_dropped)
		OUT("  trace:              %llu references recorded, %llu dropped\n",
		    (unsigned long long)s.trace_records, (unsigned long long)s.trace_dropped);
	if (s.punch_failures)
		OUT("  punch failures:     %llu pages\n", (unsigned long long)s.punch_failures);
	OUT("  metadata:           %.1f MiB\n", s.metadata_bytes / 1048576.0);
	OUT("  working set:        about %llu pages (%.1f MiB); %llu refaults, %llu of pages "
	    "evicted less than a budget before\n",
	    (unsigned long long)s.workingset_pages,
	    (double)(s.workingset_pages * s.page_size) / 1048576.0, (unsigned long long)s.refaults,
	    (unsigned long long)s.refaults_recent);
	OUT("  stalled on misses:  %.3f s; thrashing: %s (%llu windows, %llu warnings)\n",
	    s.stall_ns / 1e9, s.thrashing ? "yes" : "no", (unsigned long long)s.thrash_windows,
	    (unsigned long long)s.thrash_warnings);
	stats_print_hist(buf, sizeof(buf), &n, "  fault latency (us): ", s.latency_hist);
	static const char *const phase_names[] = { "entry", "lock", "frame", "io",    "map",
						   "wake",  "miss", "zap",   "punch", "write" };
	OUT("  phases, mean us (count): ");
	for (int ph = 0; ph < (int)ARRAY_SIZE(phase_names); ph++) {
		uint64_t cnt = 0;
		for (int k = 0; k < UPAGER_LATENCY_BUCKETS; k++)
			cnt += s.phase_hist[ph][k];
		OUT("%s%s %.1f (%llu)", ph ? ", " : "", phase_names[ph],
		    cnt ? s.phase_ns[ph] / 1e3 / (double)cnt : 0.0, (unsigned long long)cnt);
	}
	OUT("\n");
	for (int ph = 0; ph < (int)ARRAY_SIZE(phase_names); ph++) {
		char label[32];
		snprintf(label, sizeof(label), "  %-6s (us):       ", phase_names[ph]);
		stats_print_hist(buf, sizeof(buf), &n, label, s.phase_hist[ph]);
	}
#undef OUT
	if (n > (int)sizeof(buf))
		n = sizeof(buf);
	for (int off = 0; off < n;) {
		ssize_t w = write(fd, buf + off, (size_t)(n - off));
		if (w <= 0)
			return -EIO;
		off += (int)w;
	}
	return 0;
}
