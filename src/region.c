// SPDX-License-Identifier: MIT
/*
 * Regions: mapping and unmapping them, and the calls that act on a range
 * of one (touch, pin, unpin, protect).
 *
 * A region is a sparse memfd mapped twice: the application view (shared,
 * registered with the fault backend, the only address the program sees)
 * and the pager view (shared, never registered, the only address the
 * pager reads and writes page contents through). A page's frame is its
 * page in the memfd; evicting it writes it out through the pager view and
 * punches it out of the memfd (upager__punch, here too).
 *
 * A region lives on its pager's list (map, unmap, close) and in the
 * process-wide registry (registry.c) that the fault handlers look
 * addresses up in. Unmapping takes it off both, then waits until no fault
 * or evictor holds a reference before it frees the pages and the memory.
 */
#include "internal.h"
#include "fault.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int upager__page_discard(struct region *r, uint64_t pg, struct upte *e)
{
	struct upager *p = r->p;
	uint32_t f = pte_flags(e);
	int ret;

	if (pte_state(f) == PTE_RESIDENT) {
		if (atomic_load(&p->frames.frames[e->frame].pins))
			return -EBUSY;
		if ((f & PTE_MAPPED) && !p->backend->punch_unmaps) {
			if ((ret = p->backend->unmap(r, pg, 1)) < 0)
				return ret;
			pte_clear_mapped(p, e);
		}
		/* A page whose memory stays keeps its frame and contents. */
		if ((ret = upager__punch(r, pg, 1)) < 0)
			return ret;
		upager__policy_remove(p, e->frame, UPAGER_POLICY_FREED);
		p->backend->evicted(r, pg, 1);
		frames_free(&p->frames, e->frame);
	}
	pte_drop_swap_copy(p, e);
	pte_clear_mapped(p, e);
	/* A page lost to an I/O error is whole again: zero, like new. */
	pte_update(e, PTE_STATE_MASK | PTE_DIRTY | PTE_SAMPLED | PTE_EVICTED | PTE_AROUND,
		   PTE_NONE);
	return 0;
}

int upager__punch(struct region *r, uint64_t pg, uint64_t n)
{
	struct upager *p = r->p;
	off_t off = (off_t)(pg << p->page_shift), len = (off_t)(n << p->page_shift);
	unsigned inject = 0;
	int err;

	for (int left = atomic_load_explicit(&p->punch_fail, memory_order_relaxed); left > 0;)
		if (atomic_compare_exchange_weak(&p->punch_fail, &left, left - 1)) {
			inject = atomic_load(&p->punch_fail_how);
			break;
		}
	for (int tries = 0;; tries++) {
		if (inject & PUNCH_FAIL_FALLOCATE)
			err = -EIO;
		else if (fallocate(r->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off,
				   len) == 0)
			return 0;
		else
			err = -errno;
		if (err != -EINTR || tries >= 3)
			break;
	}
	STAT_ADD(p, punch_failures, n);
	/* The same hole by another way in (shmem: madvise_remove ->
	 * vfs_fallocate), which also frees what the first call may have
	 * done part of. */
	if (inject & PUNCH_FAIL_REMOVE)
		return err;
	if (madvise(region_pview(r, pg), (size_t)len, MADV_REMOVE) == 0)
		return 0;
	return err;
}

struct release_ctx {
	struct region *r;
};

static bool release_page(uint64_t pg, struct upte *e, void *arg)
{
	struct region *r = ((struct release_ctx *)arg)->r;
	struct upager *p = r->p;
	uint32_t f;

	if (!atomic_load_explicit(&e->flags, memory_order_relaxed) && !e->slot)
		return false; /* never touched */
	upager__pte_lock(e);
	f = pte_flags(e);
	if (pte_state(f) == PTE_RESIDENT) {
		if (atomic_load(&p->frames.frames[e->frame].pins))
			atomic_fetch_sub(&p->pinned, 1); /* unmapped while pinned */
		upager__policy_remove(p, e->frame, UPAGER_POLICY_FREED);
		frames_free(&p->frames, e->frame);
	}
	pte_drop_swap_copy(p, e);
	pte_clear_mapped(p, e);
	pte_update(e, PTE_STATE_MASK | PTE_DIRTY | PTE_NOWRITE | PTE_NOACCESS | PTE_EVICTED,
		   PTE_NONE);
	upager__pte_unlock(e);
	return false;
}

void upager__region_release_pages(struct region *r)
{
	struct release_ctx ctx = { r };

	pt_for_each(&r->pt, release_page, &ctx);
}

void upager__region_destroy(struct region *r)
{
	if (r->base)
		munmap((void *)r->base, r->len);
	if (r->pview)
		munmap(r->pview, r->len);
	upager__fd_close(r->memfd);
	if (r->is_file)
		upager__fd_close(r->file_fd);
	pt_destroy(&r->pt);
	free(r);
}

/* Reserves len bytes of address space aligned to align, then maps the
 * memfd over it. */
static void *map_aligned(int fd, size_t len, size_t align)
{
	size_t span = len + (align > 4096 ? align : 0);
	char *res = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (res == MAP_FAILED)
		return MAP_FAILED;
	uintptr_t start = ((uintptr_t)res + align - 1) & ~(uintptr_t)(align - 1);
	if (start > (uintptr_t)res)
		munmap(res, start - (uintptr_t)res);
	uintptr_t end = start + len;
	if ((uintptr_t)res + span > end)
		munmap((void *)end, (uintptr_t)res + span - end);
	void *m = mmap((void *)start, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
	if (m == MAP_FAILED)
		munmap((void *)start, len);
	return m;
}

static int region_new_at(struct upager *p, void *at, size_t len, struct region **out)
{
	struct region *r;
	int err;

	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->p = p;
	r->memfd = -1;
	r->len = len;
	r->npages = len >> p->page_shift;
	pt_init(&r->pt, r->npages);

	r->memfd = upager__fd_keep(memfd_create("upager-region", MFD_CLOEXEC));
	if (r->memfd < 0 || ftruncate(r->memfd, (off_t)len) < 0) {
		err = upager__fail(-errno, "memfd for a %zu-byte region: %s", len, strerror(errno));
		goto fail;
	}
	void *app = at ? mmap(at, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, r->memfd, 0)
		       : map_aligned(r->memfd, len, p->page_size);
	if (app == MAP_FAILED) {
		err = upager__fail(-errno, "mapping a %zu-byte region: %s", len, strerror(errno));
		goto fail;
	}
	r->base = (uintptr_t)app;
	r->pview = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, r->memfd, 0);
	if (r->pview == MAP_FAILED) {
		r->pview = NULL;
		err = upager__fail(-errno, "mapping the pager view: %s", strerror(errno));
		goto fail;
	}
	/* A forked child must not see (or fill) the memfd behind the
	 * pager's back: regions are not inherited across fork(). */
	madvise(app, len, MADV_DONTFORK);
	madvise(r->pview, len, MADV_DONTFORK);

	pthread_mutex_lock(&p->regions_lock);
	r->id = ++p->next_region_id;
	pthread_mutex_unlock(&p->regions_lock);
	*out = r;
	return 0;

fail:
	upager__region_destroy(r);
	return err;
}

int upager__region_new(struct upager *p, size_t len, struct region **out)
{
	return region_new_at(p, NULL, len, out);
}

int upager__region_publish(struct region *r)
{
	struct upager *p = r->p;
	int err;

	err = p->backend->attach(r);
	if (err < 0)
		return err;
	err = upager__registry_add(r);
	if (err < 0) {
		p->backend->detach(r);
		return err;
	}
	pthread_mutex_lock(&p->regions_lock);
	r->next = p->regions;
	p->regions = r;
	if (!r->readonly) { /* a snapshot's view counts as a snapshot */
		p->nregions++;
		__atomic_fetch_add(&p->region_bytes, r->len, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&p->regions_lock);
	return 0;
}

UPAGER_API int upager_map(upager_t *p, size_t len, int flags, void **addr)
{
	struct region *r;
	int err;

	upager__clear_error();
	if (!p || !addr)
		return -EINVAL;
	if (flags != 0)
		return upager__fail(-EINVAL, "upager_map: unknown flags %#x", flags);
	if (len == 0)
		return upager__fail(-EINVAL, "upager_map: zero length");
	if (len > (1ULL << 46))
		return upager__fail(-ENOMEM, "upager_map: %zu bytes is more than 64 TiB", len);
	len = (len + p->page_size - 1) & ~(p->page_size - 1);

	err = upager__region_new(p, len, &r);
	if (err < 0)
		return err;
	err = upager__region_publish(r);
	if (err < 0) {
		upager__region_destroy(r);
		return err;
	}
	*addr = (void *)r->base;
	return 0;
}

int upager__map_at(struct upager *p, void *at, size_t len)
{
	struct region *r;
	int err;

	upager__clear_error();
	if (!p || !at || ((uintptr_t)at | len) & (p->page_size - 1) || len == 0)
		return upager__fail(-EINVAL, "upager__map_at: %p, %zu bytes: not whole pages", at,
				    len);
	/* Checked before the mapping goes in: MAP_FIXED would replace a
	 * region's pages there. */
	if (upager__registry_overlaps((uintptr_t)at, len))
		return upager__fail(-EEXIST, "upager__map_at: [%p, +%zu) overlaps a region", at,
				    len);
	err = region_new_at(p, at, len, &r);
	if (err < 0)
		return err;
	err = upager__region_publish(r);
	if (err < 0)
		upager__region_destroy(r); /* unmaps [at, +len) */
	return err;
}

void upager__region_teardown(struct region *r)
{
	struct upager *p = r->p;

	/* Detached before it leaves the registry: a fault the backend
	 * raises for the region until then finds it, dying, and retries
	 * (into the unregistered mapping). Gone from the registry first, an
	 * uffd fast-mode SIGBUS in between would find no region and kill
	 * the thread. */
	r->dying = true;
	p->backend->detach(r);
	upager__registry_remove(r);
	upager__region_release_pages(r);
	/* The evictor may still hold a pin taken before the release, and a
	 * shedding hand may have read a frame record of this region. */
	atomic_thread_fence(memory_order_seq_cst);
	while (atomic_load(&r->refs) > 0 || atomic_load(&p->shedders) > 0)
		usleep(100);
	upager__region_destroy(r);
}

struct region *upager__region_at(struct upager *p, void *base)
{
	struct region *r;

	pthread_mutex_lock(&p->regions_lock);
	for (r = p->regions; r && (void *)r->base != base; r = r->next)
		;
	pthread_mutex_unlock(&p->regions_lock);
	return r;
}

bool upager__region_unlist(struct region *r)
{
	struct upager *p = r->p;
	struct region **pp;
	bool found = false;

	pthread_mutex_lock(&p->regions_lock);
	for (pp = &p->regions; *pp; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			if (!r->readonly) {
				p->nregions--;
				__atomic_fetch_sub(&p->region_bytes, r->len, __ATOMIC_RELAXED);
			}
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&p->regions_lock);
	return found;
}

UPAGER_API int upager_unmap(upager_t *p, void *addr)
{
	struct region *r = NULL;

	upager__clear_error();
	if (!p)
		return -EINVAL;
	/* A shared file region's writes reach its file first; if they
	 * cannot, the region stays (nothing is lost) and the caller hears. */
	r = upager__region_find((uintptr_t)addr);
	if (r) {
		int err = 0;
		if (r->p == p && r->base == (uintptr_t)addr && r->is_file)
			err = upager__file_writeback(r, 0, r->npages);
		upager__region_put(r);
		r = NULL;
		if (err < 0)
			return upager__fail(
				err,
				"upager_unmap: writing %p back to its file: %s; the region stays mapped",
				addr, upager_strerror(err));
	}
	/* Under cow_lock: a snapshot or clone may be reading through the
	 * region's pages until they are handed over. */
	pthread_rwlock_wrlock(&p->cow_lock);
	r = upager__region_at(p, addr);
	if (!r) {
		pthread_rwlock_unlock(&p->cow_lock);
		return upager__fail(UPAGER_ENOREGION,
				    "upager_unmap: %p is not the base of a region", addr);
	}
	if (r->self) {
		pthread_rwlock_unlock(&p->cow_lock);
		return upager__fail(
			UPAGER_ESNAPSHOT,
			"upager_unmap: %p is a snapshot's view; free it with upager_snapshot_free",
			addr);
	}
	struct region *doomed = NULL;
	upager__region_unlist(r);
	if (r->chain || r->backing)
		doomed = upager__cow_region_leaving(r);
	r->dying = true;
	pthread_rwlock_unlock(&p->cow_lock);
	upager__region_teardown(r);
	upager__cow_teardown(doomed);
	return 0;
}

/* The region of p that holds all of [addr, addr+len), pinned, or NULL. */
struct region *upager__range_region(struct upager *p, void *addr, size_t len, const char *who)
{
	uintptr_t a = (uintptr_t)addr, end = a + len;
	struct region *r = upager__region_find(a);

	if (!r || r->p != p || end > r->base + r->len || end < a) {
		if (r)
			upager__region_put(r);
		upager__fail(UPAGER_ENOREGION,
			     "%s: [%p, +%zu) is not inside one region of this pager", who, addr,
			     len);
		return NULL;
	}
	return r;
}

/*
 * The opening the range calls share: a pager, a non-empty range, the one
 * region that holds it. Returns 1 with *out referenced, 0 for an empty
 * range (nothing to do), or a negative code with the message set.
 */
static int range_begin(upager_t *p, void *addr, size_t len, const char *who, struct region **out)
{
	upager__clear_error();
	if (!p)
		return -EINVAL;
	if (len == 0)
		return 0;
	*out = upager__range_region(p, addr, len, who);
	return *out ? 1 : UPAGER_ENOREGION;
}

/* The first and last page of [addr, addr+len) in r (len > 0). */
static void range_pages(struct region *r, void *addr, size_t len, uint64_t *first, uint64_t *last)
{
	unsigned shift = r->p->page_shift;

	*first = ((uintptr_t)addr - r->base) >> shift;
	*last = ((uintptr_t)addr + len - 1 - r->base) >> shift;
}

UPAGER_API int upager_touch(upager_t *p, void *addr, size_t len, int write)
{
	uintptr_t a = (uintptr_t)addr, end = a + len;
	struct region *r;
	int err = 0;

	if ((err = range_begin(p, addr, len, "upager_touch", &r)) <= 0)
		return err;
	err = 0;
	for (uintptr_t pa = a & ~(uintptr_t)(p->page_size - 1); pa < end; pa += p->page_size) {
		struct upte *e = pt_lookup(&r->pt, (pa - r->base) >> p->page_shift);
		uint32_t f = e ? pte_flags(e) : 0;
		if ((f & PTE_MAPPED) && (!write || (f & PTE_WRITABLE)))
			continue;
		enum fault_result res = upager__fault(r, pa, write, &err);
		if (res == FAULT_NOT_OURS)
			err = -EACCES; /* upager_protect() forbids it */
		if (res != FAULT_DONE) {
			upager__fail(err, "upager_touch: page at %p: %s", (void *)pa,
				     upager_strerror(err));
			break;
		}
		err = 0;
	}
	upager__region_put(r);
	return err;
}

/* Pins one page that upager__fault() just resolved; false if it moved
 * on before the lock was taken (evicted or sampled again). */
static bool pin_page(struct upager *p, struct region *r, uint64_t pg, bool write)
{
	struct upte *e = pt_lookup(&r->pt, pg);
	bool pinned = false;

	if (!e)
		return false;
	upager__pte_lock(e);
	uint32_t f = pte_flags(e);
	if (pte_state(f) == PTE_RESIDENT && (f & PTE_MAPPED) && (!write || (f & PTE_WRITABLE))) {
		_Atomic uint32_t *pins = &p->frames.frames[e->frame].pins;
		if (!atomic_load(pins)) {
			/* A pinned page cannot be a victim: it leaves the
			 * policy until its last unpin, so that the policy never
			 * names it (a policy that ignores references would name
			 * it again and again). Removed before the pin counts:
			 * the call skips pinned frames. */
			upager__policy_remove(p, e->frame, UPAGER_POLICY_FREED);
			atomic_fetch_add(&p->pinned, 1);
		}
		atomic_fetch_add(pins, 1);
		pinned = true;
	}
	upager__pte_unlock(e);
	return pinned;
}

static void unpin_page(struct upager *p, struct region *r, uint64_t pg)
{
	struct upte *e = pt_lookup(&r->pt, pg);

	if (!e)
		return;
	upager__pte_lock(e);
	if (pte_state(pte_flags(e)) == PTE_RESIDENT) {
		_Atomic uint32_t *pins = &p->frames.frames[e->frame].pins;
		if (atomic_load(pins) && atomic_fetch_sub(pins, 1) == 1) {
			/* Back in the policy, as a page just brought in. */
			upager__policy_insert(p, e->frame, region_page_key(r, pg), false);
			atomic_fetch_sub(&p->pinned, 1);
		}
	}
	upager__pte_unlock(e);
}

UPAGER_API int upager_pin(upager_t *p, void *addr, size_t len, int write)
{
	struct region *r;
	uint64_t first, last, pg;
	int err = 0;

	if ((err = range_begin(p, addr, len, "upager_pin", &r)) <= 0)
		return err;
	err = 0;
	range_pages(r, addr, len, &first, &last);
	if (atomic_load(&p->pinned) + (last - first + 1) > p->nframes / 2) {
		upager__region_put(r);
		return upager__fail(
			-ENOMEM,
			"upager_pin: %llu more pages would pin more than half the budget (%u frames)",
			(unsigned long long)(last - first + 1), p->nframes);
	}
	for (pg = first; pg <= last; pg++) {
		int tries = 0;
		while (!pin_page(p, r, pg, write)) {
			uintptr_t pa = r->base + (pg << p->page_shift);
			enum fault_result res = upager__fault(r, pa, write, &err);
			if (res == FAULT_NOT_OURS)
				err = -EACCES; /* upager_protect() forbids it */
			if (res != FAULT_DONE || ++tries > 100) {
				if (!err)
					err = -EAGAIN;
				upager__fail(err, "upager_pin: page at %p: %s", (void *)pa,
					     upager_strerror(err));
				goto undo;
			}
			err = 0;
		}
	}
	upager__region_put(r);
	return 0;
undo:
	while (pg-- > first)
		unpin_page(p, r, pg);
	upager__region_put(r);
	return err;
}

UPAGER_API int upager_unpin(upager_t *p, void *addr, size_t len)
{
	struct region *r;
	uint64_t first, last;
	int err;

	if ((err = range_begin(p, addr, len, "upager_unpin", &r)) <= 0)
		return err;
	range_pages(r, addr, len, &first, &last);
	for (uint64_t pg = first; pg <= last; pg++)
		unpin_page(p, r, pg);
	upager__region_put(r);
	return 0;
}

UPAGER_API int upager_protect(upager_t *p, void *addr, size_t len, int prot)
{
	struct region *r;
	uint32_t bits;
	int err = 0;

	upager__clear_error();
	if (!p)
		return -EINVAL;
	if (prot == UPAGER_PROT_NONE)
		bits = PTE_NOACCESS | PTE_NOWRITE;
	else if (prot == UPAGER_PROT_READ)
		bits = PTE_NOWRITE;
	else if (prot == (UPAGER_PROT_READ | UPAGER_PROT_WRITE))
		bits = 0;
	else
		return upager__fail(-EINVAL,
				    "upager_protect: prot %#x is not NONE, READ or READ|WRITE",
				    prot);
	if (((uintptr_t)addr | len) & (p->page_size - 1))
		return upager__fail(
			-EINVAL, "upager_protect: [%p, +%zu) is not aligned to the page size (%zu)",
			addr, len, p->page_size);
	if ((err = range_begin(p, addr, len, "upager_protect", &r)) <= 0)
		return err;
	err = 0;
	if (r->readonly) {
		upager__region_put(r);
		return upager__fail(
			UPAGER_ESNAPSHOT,
			"upager_protect: [%p, +%zu) is in a snapshot's view, which stays read-only",
			addr, len);
	}
	uint64_t first = ((uintptr_t)addr - r->base) >> p->page_shift;
	uint64_t n = len >> p->page_shift;
	for (uint64_t pg = first; pg < first + n; pg++) {
		/* Rights are remembered even for pages never touched. */
		struct upte *e = pt_get(&r->pt, pg);
		if (!e) {
			err = -ENOMEM;
			break;
		}
		upager__pte_lock(e);
		uint32_t f = pte_flags(e);
		if ((bits & PTE_NOACCESS) && (f & PTE_MAPPED)) {
			if (p->backend->unmap(r, pg, 1) == 0)
				pte_clear_mapped(p, e);
			else
				err = -EIO;
		} else if ((bits & PTE_NOWRITE) && (f & PTE_WRITABLE)) {
			if (p->backend->wrprotect(r, pg, 1) == 0)
				pte_update(e, PTE_WRITABLE, 0);
			else
				err = -EIO;
		}
		pte_update(e, PTE_NOWRITE | PTE_NOACCESS, bits);
		upager__pte_unlock(e);
		if (err)
			break;
	}
	if (!err && p->backend->set_access)
		err = p->backend->set_access(r, first, n, prot);
	upager__region_put(r);
	if (err && !upager_last_error()[0])
		upager__fail(err, "upager_protect: %s", upager_strerror(err));
	return err;
}
