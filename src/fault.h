/* SPDX-License-Identifier: MIT */
/*
 * The fault backend: turns a hardware page fault on a region into a call to
 * upager__fault(), and changes what the application view maps when the
 * core asks. The core never includes a backend's own headers.
 *
 * Rules every backend keeps:
 *
 * - Addresses and lengths given to the operations are page aligned (the
 *   pager's page size, which may be larger than the MMU's).
 * - The core calls every operation with the lock of each page concerned
 *   held, so a backend never sees two changes to one page at once.
 * - Operations may run in signal context (fast mode, the SIGSEGV backend):
 *   they use system calls only, never malloc or stdio.
 * - The application view is the only mapping a backend changes. Contents
 *   are written by the core through the pager view (or given to
 *   install(), which copies them in atomically), never through the
 *   application view.
 * - A page becomes visible only complete: install() and map() make the
 *   whole page accessible in one step once its contents are in place.
 * - install() and map() of several pages are all or nothing: on failure
 *   none of the pages is left filled (the core then fills the faulting
 *   page alone, which must not find it there).
 * - A fault that the core answers with FAULT_NOT_OURS goes to whatever
 *   handled that signal before upager (or the default action); one
 *   answered with FAULT_SIGBUS ends in SIGBUS for the faulting thread.
 */
#ifndef UPAGER_FAULT_H
#define UPAGER_FAULT_H

#include "internal.h"

struct fault_backend {
	const char *name;
	/* Does punching a page out of the memfd also take it away from the
	 * application view (the next access faults)? If not, eviction
	 * unmaps a mapped victim first. */
	bool punch_unmaps;
	/* Is unmap() a plain MADV_DONTNEED of the view, so that the core may
	 * zap many ranges in one call (upager__zap)? */
	bool unmap_zaps;
	/* Can this backend run here, now? 0, or a negative code and a
	 * one-line reason in why[]. */
	int (*probe)(const upager_config_t *cfg, char *why, size_t whylen);
	int (*init)(struct upager *p);
	void (*fini)(struct upager *p);
	/* Start and stop catching faults on a region's application view. */
	int (*attach)(struct region *r);
	void (*detach)(struct region *r);
	/* Map n pages at pg with the given contents (src, n pages long, or
	 * zeros when src is NULL). Writable or write-protected. */
	int (*install)(struct region *r, uint64_t pg, uint64_t n, const void *src, bool writable);
	/* Map n pages whose contents are already in the region's memfd. */
	int (*map)(struct region *r, uint64_t pg, uint64_t n, bool writable);
	/* Let writes through to a mapped, write-protected page. */
	int (*unprotect)(struct region *r, uint64_t pg);
	/* Write-protect mapped pages (writes fault, reads go on). */
	int (*wrprotect)(struct region *r, uint64_t pg, uint64_t n);
	/* Take pages away from the application view; the memfd keeps them. */
	int (*unmap)(struct region *r, uint64_t pg, uint64_t n);
	/* The pages' memfd contents are gone (evicted): make sure the next
	 * access faults rather than reading a hole. */
	void (*evicted)(struct region *r, uint64_t pg, uint64_t n);
	/* Wake threads waiting for a fault on the page (no change made). */
	void (*wake)(struct region *r, uint64_t pg);
	/* The program's access rights on n pages changed (upager_protect);
	 * the core has already unmapped or write-protected the pages that
	 * the new rights forbid. NULL if the core's work is all it takes. */
	int (*set_access)(struct region *r, uint64_t pg, uint64_t n, int prot);
};

#ifdef HAVE_LINUX_USERFAULTFD_H
extern const struct fault_backend upager__fault_uffd;
#endif
extern const struct fault_backend upager__fault_sigsegv;

/* Picks and initialises the backend named by the configuration. */
int upager__fault_select(struct upager *p);

/* Was the fault a signal handler got (its third argument) a write? Where
 * the context does not say, true: a read taken for a write only costs a
 * needless writeback. */
bool upager__fault_is_write(void *ucontext);

#endif /* UPAGER_FAULT_H */
