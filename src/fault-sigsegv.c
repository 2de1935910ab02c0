// SPDX-License-Identifier: MIT
/*
 * The SIGSEGV backend: page faults as protection faults.
 *
 * Where userfaultfd is refused (containers, unprivileged users, other
 * kernels), a page's presence and its accessed and dirty bits are
 * emulated with mprotect on the application view:
 *
 *   page state                       protection    next access
 *   not in a frame, or sampled       PROT_NONE     SIGSEGV: fill or map
 *   in a frame, clean                PROT_READ     a write: SIGSEGV (dirty bit)
 *   in a frame, dirty                READ|WRITE    none
 *
 * The faulting thread resolves its own fault in the SIGSEGV handler, like
 * the userfaultfd backend's fast mode; a system call that touches an
 * inaccessible page fails with EFAULT (pin the buffer first). Contents are
 * written into the memfd with pwrite(), never through a mapping, so that
 * they become visible only when the protection opens, whole.
 *
 * Finding the region of a fault address is libsigsegv's dispatcher (its
 * AVL tree of areas); the handler itself is installed with the shared
 * signal-ownership code (signals.c), not with libsigsegv's single global
 * handler, which a program using libsigsegv itself would replace.
 *
 * The mapping limit: every run of pages with one protection is a mapping
 * of its own, and vm.max_map_count (65530 by default) caps them. A pager
 * never has more than its budget mapped, so it needs at most two mappings
 * per frame plus a few per region. Open reserves that much against the
 * limit, process-wide. Where the limit leaves less, the pager caps how
 * many pages it keeps mapped (p->map_cap): all of the budget stays
 * resident, and a fault that would map one page too many first unmaps a
 * batch of others, which merges their mappings back; they return with a
 * minor fault. Open refuses only a configuration that leaves no room to
 * work at all, saying what to do. If the process's other mappings eat the
 * margin anyway, an mprotect that meets ENOMEM sheds mapped pages and
 * retries, rather than fail inside a fault.
 */
#include "internal.h"
#include "fault.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sigsegv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#define MAPS_PER_REGION 4                   /* application view, pager view, edges */
#define MAPS_MARGIN 2048                    /* libraries, threads, malloc arenas */
#define MIN_MAPPED_PAGES 512                /* below this, paging would be all minor faults */
#define REGIONS_ROOM (64 * MAPS_PER_REGION) /* kept free for regions */

struct segv {
	long reserved;     /* mappings reserved against vm.max_map_count */
	long region_room;  /* the part of reserved kept for regions */
	long region_used;  /* of region_room */
	long region_extra; /* reserved for regions beyond region_room */
};

static pthread_rwlock_t areas_lock = PTHREAD_RWLOCK_INITIALIZER;
static sigsegv_dispatcher areas;
static bool areas_ready;
static pthread_mutex_t reserve_lock = PTHREAD_MUTEX_INITIALIZER;
static long maps_reserved;

/* The fault being dispatched, for the area handler. */
struct dispatch {
	bool write;
	enum fault_result res;
	int err;
	struct region *r;
};
static __thread struct dispatch *current_dispatch;

/*
 * /proc files are read with open() and read(), not stdio: fopen() mallocs
 * its FILE, and in a program with an allocator of its own (rustc's
 * jemalloc under upager-run) that memory may be paged. A fault there, with
 * a pager lock held for writing (a snapshot's view is attached under
 * cow_lock), would be served by this thread against its own lock.
 */
static long read_long(const char *path)
{
	char buf[32];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	char *end;
	long v;

	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	v = strtol(buf, &end, 10);
	return end == buf ? -1 : v;
}

static long count_maps(void)
{
	char buf[4096];
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	long lines = 0;
	ssize_t n;

	if (fd < 0)
		return 0;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		for (ssize_t i = 0; i < n; i++)
			lines += buf[i] == '\n';
	close(fd);
	return lines;
}

#define NO_MAP_LIMIT LONG_MAX

/* Mappings left under vm.max_map_count for us (negative when even the
 * margin is gone), or NO_MAP_LIMIT. Called with reserve_lock held. */
static long maps_available(long *limit_out, long *in_use_out)
{
	long limit = read_long("/proc/sys/vm/max_map_count");
	long in_use = count_maps();

	*limit_out = limit;
	*in_use_out = in_use;
	if (limit <= 0)
		return NO_MAP_LIMIT;
	return limit - MAPS_MARGIN - in_use - maps_reserved;
}

/* Reserves mappings for a pager: two per page it may map, and room for
 * its regions (a budget that takes every mapping left would otherwise
 * leave none for a region made later, once the process's own mappings
 * have grown: a fork's snapshot in a program that loaded libraries
 * since). Sets p->map_cap when the whole budget cannot be mapped at once.
 * 0, or UPAGER_EMAPCOUNT with a message that says what to do. */
static int reserve_for_pager(struct upager *p, struct segv *s)
{
	long limit, in_use, avail, want = 2L * p->nframes;
	long *reserved = &s->reserved;
	int err = 0;

	pthread_mutex_lock(&reserve_lock);
	avail = maps_available(&limit, &in_use);
	if (avail != NO_MAP_LIMIT)
		avail -= REGIONS_ROOM;
	if (avail >= want) {
		*reserved = avail == NO_MAP_LIMIT ? 0 : want;
		p->map_cap = 0;
	} else if (avail / 2 >= MIN_MAPPED_PAGES) {
		/* Keep all of the budget resident, but only this much
		 * mapped: the rest comes back with minor faults. */
		*reserved = avail / 2 * 2;
		p->map_cap = (uint64_t)avail / 2;
	} else {
		/* The smallest page size at which the budget fits whole, if
		 * any does with the mappings left. */
		size_t ps = p->page_size;
		while (ps < UPAGER_MAX_PAGE_SIZE && (long)(p->cfg.ram_bytes / ps) * 2 > avail)
			ps *= 2;
		char page_hint[80] = "";
		if ((long)(p->cfg.ram_bytes / ps) * 2 <= avail && ps != p->page_size)
			snprintf(page_hint, sizeof(page_hint),
				 "a larger page size (UPAGER_PAGE_SIZE=%zuK), ", ps >> 10);
		err = upager__fail(
			UPAGER_EMAPCOUNT,
			"the sigsegv backend needs a mapping for every run of pages with one protection: "
			"up to %ld for a budget of %u pages of %zu bytes, and at least %d to work at all, "
			"but vm.max_map_count is %ld with %ld in use and %ld reserved by other pagers. "
			"Use %sa smaller budget, fewer mappings elsewhere in the process, the uffd backend, "
			"or raise the limit (sysctl vm.max_map_count=%ld)",
			want, p->nframes, p->page_size, 2 * MIN_MAPPED_PAGES, limit, in_use,
			maps_reserved, page_hint, in_use + maps_reserved + want + 2 * MAPS_MARGIN);
	}
	if (!err && avail != NO_MAP_LIMIT) {
		s->region_room = REGIONS_ROOM;
		*reserved += REGIONS_ROOM;
	}
	if (!err)
		maps_reserved += *reserved;
	pthread_mutex_unlock(&reserve_lock);
	return err;
}

/* Reserves the mappings of a new region: from its pager's room, or
 * beyond it from what the limit leaves. */
static int reserve_for_region(struct segv *s)
{
	long limit, in_use, avail;
	int err = 0;

	pthread_mutex_lock(&reserve_lock);
	if (s->region_used + MAPS_PER_REGION <= s->region_room) {
		s->region_used += MAPS_PER_REGION;
		goto out;
	}
	avail = maps_available(&limit, &in_use);
	if (avail < MAPS_PER_REGION) {
		err = upager__fail(
			UPAGER_EMAPCOUNT,
			"no room for another region under vm.max_map_count (%ld, %ld in use, %ld reserved)",
			limit, in_use, maps_reserved);
	} else {
		maps_reserved += MAPS_PER_REGION;
		s->region_extra += MAPS_PER_REGION;
	}
out:
	pthread_mutex_unlock(&reserve_lock);
	return err;
}

static void unreserve_for_region(struct segv *s)
{
	pthread_mutex_lock(&reserve_lock);
	if (s->region_extra) {
		s->region_extra -= MAPS_PER_REGION;
		maps_reserved -= MAPS_PER_REGION;
	} else {
		s->region_used -= MAPS_PER_REGION;
	}
	pthread_mutex_unlock(&reserve_lock);
}

static void unreserve_maps(long n)
{
	pthread_mutex_lock(&reserve_lock);
	maps_reserved -= n;
	pthread_mutex_unlock(&reserve_lock);
}

/* mprotect, and on ENOMEM (out of mappings) unmap some pages and retry. */
static int protect(struct region *r, uint64_t pg, uint64_t n, int prot)
{
	void *a = region_page_addr(r, pg);
	size_t len = n << r->p->page_shift;

	for (int tries = 0; tries < 4; tries++) {
		if (mprotect(a, len, prot) == 0)
			return 0;
		if (errno != ENOMEM || prot == PROT_NONE)
			break;
		upager__shed_mappings(r->p, 256);
	}
	return -errno;
}

/* ---- the handler ---- */

static int area_handler(void *fault_address, void *user_arg)
{
	struct dispatch *d = current_dispatch;
	struct region *r = user_arg;

	/* Pinned under the areas lock: unmap cannot free it under us. */
	atomic_fetch_add_explicit(&r->refs, 1, memory_order_acquire);
	d->r = r;
	return 1;
}

static void segv_handler(int sig, siginfo_t *si, void *uc)
{
	int saved_errno = errno;
	uint64_t entered = upager__now_ns();
	uintptr_t addr = (uintptr_t)si->si_addr;
	struct dispatch d = { .write = upager__fault_is_write(uc) };

	current_dispatch = &d;
	pthread_rwlock_rdlock(&areas_lock);
	if (areas_ready)
		sigsegv_dispatch(&areas, (void *)addr);
	pthread_rwlock_unlock(&areas_lock);
	current_dispatch = NULL;

	if (!d.r) {
		upager__signal_pass_on(sig, si, uc);
		errno = saved_errno;
		return;
	}
	upager__entry_ns = entered;
	d.res = upager__fault(d.r, addr, d.write, &d.err);
	if (d.res == FAULT_SIGBUS)
		upager__report_fault_error(d.r, addr, d.err);
	upager__region_put(d.r);
	if (d.res == FAULT_NOT_OURS)
		upager__signal_pass_on(sig, si, uc); /* a real violation */
	else if (d.res == FAULT_SIGBUS)
		upager__signal_raise_sigbus(addr, uc);
	errno = saved_errno;
}

/* ---- backend operations ---- */

static int segv_probe(const upager_config_t *cfg, char *why, size_t whylen)
{
	return 0; /* mprotect and SIGSEGV work everywhere we build */
}

static int segv_init(struct upager *p)
{
	struct segv *s = calloc(1, sizeof(*s));
	int err;

	if (!s)
		return -ENOMEM;
	p->backend_data = s;
	p->transparent = false;
	err = reserve_for_pager(p, s);
	if (err)
		goto fail;
	pthread_rwlock_wrlock(&areas_lock);
	if (!areas_ready) {
		sigsegv_init(&areas);
		areas_ready = true;
	}
	pthread_rwlock_unlock(&areas_lock);
	err = upager__signal_own(SIGSEGV, segv_handler);
	if (err) {
		upager__fail(err, "installing the SIGSEGV handler: %s", strerror(-err));
		goto fail;
	}
	return 0;
fail:
	unreserve_maps(s->reserved);
	free(s);
	p->backend_data = NULL;
	return err;
}

static void segv_fini(struct upager *p)
{
	struct segv *s = p->backend_data;

	if (!s)
		return;
	upager__signal_release(SIGSEGV);
	unreserve_maps(s->reserved + s->region_extra);
	free(s);
	p->backend_data = NULL;
}

static int segv_attach(struct region *r)
{
	struct segv *s = r->p->backend_data;
	int err = reserve_for_region(s);

	if (err)
		return err;
	if (mprotect((void *)r->base, r->len, PROT_NONE) < 0) {
		err = upager__fail(-errno, "mprotect of a new region: %s", strerror(errno));
		unreserve_for_region(s);
		return err;
	}
	pthread_rwlock_wrlock(&areas_lock);
	r->backend_data = sigsegv_register(&areas, (void *)r->base, r->len, area_handler, r);
	pthread_rwlock_unlock(&areas_lock);
	if (!r->backend_data) {
		unreserve_for_region(s);
		return upager__fail(-ENOMEM, "sigsegv_register failed");
	}
	return 0;
}

static void segv_detach(struct region *r)
{
	pthread_rwlock_wrlock(&areas_lock);
	if (r->backend_data)
		sigsegv_unregister(&areas, r->backend_data);
	r->backend_data = NULL;
	pthread_rwlock_unlock(&areas_lock);
	unreserve_for_region(r->p->backend_data);
}

static int segv_install(struct region *r, uint64_t pg, uint64_t n, const void *src, bool writable)
{
	size_t len = n << r->p->page_shift;
	off_t off = (off_t)(pg << r->p->page_shift);

	/* A hole in the memfd reads as zero: zero pages need no write. */
	if (src) {
		for (size_t done = 0; done < len;) {
			ssize_t w = pwrite(r->memfd, (const char *)src + done, len - done,
					   off + (off_t)done);
			if (w < 0) {
				if (errno == EINTR)
					continue;
				return -errno;
			}
			done += (size_t)w;
		}
	}
	return protect(r, pg, n, writable ? PROT_READ | PROT_WRITE : PROT_READ);
}

static int segv_map(struct region *r, uint64_t pg, uint64_t n, bool writable)
{
	return protect(r, pg, n, writable ? PROT_READ | PROT_WRITE : PROT_READ);
}

static int segv_unprotect(struct region *r, uint64_t pg)
{
	return protect(r, pg, 1, PROT_READ | PROT_WRITE);
}

static int segv_wrprotect(struct region *r, uint64_t pg, uint64_t n)
{
	return protect(r, pg, n, PROT_READ);
}

static int segv_unmap(struct region *r, uint64_t pg, uint64_t n)
{
	return protect(r, pg, n, PROT_NONE);
}

static void segv_evicted(struct region *r, uint64_t pg, uint64_t n)
{
	/* Already PROT_NONE: eviction unmaps before it punches. */
}

static void segv_wake(struct region *r, uint64_t pg)
{
	/* The faulting thread is the one resolving: nobody to wake. */
}

const struct fault_backend upager__fault_sigsegv = {
	.name = "sigsegv",
	.punch_unmaps = false,
	.probe = segv_probe,
	.init = segv_init,
	.fini = segv_fini,
	.attach = segv_attach,
	.detach = segv_detach,
	.install = segv_install,
	.map = segv_map,
	.unprotect = segv_unprotect,
	.wrprotect = segv_wrprotect,
	.unmap = segv_unmap,
	.evicted = segv_evicted,
	.wake = segv_wake,
};
