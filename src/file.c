// SPDX-License-Identifier: MIT
/*
 * File regions: upager_map_file() and upager_sync().
 *
 * A file region is an ordinary region (region.c) whose pages have a home
 * in a file. The page table needs no new state for that:
 *
 *   NONE       a file page is read from the file on its first access
 *              (pager.c: fault_fill -> prefetch.c: upager__read_in, the
 *              same path and readahead window as a swap-in); past the
 *              file's end it is a zero page, as in an anonymous region
 *   RESIDENT   clean: dropped without a write on eviction, back to NONE
 *              (its copy is the file); dirty: a shared region writes it
 *              to its place in the file and it goes back to NONE; a
 *              private region writes it to swap like an anonymous page
 *   SWAPPED    only in a private region: a page the program wrote, read
 *              from swap from then on, never from the file
 *
 * The region reads and writes the file through a descriptor of its own,
 * reopened through /proc/self/fd with O_DIRECT where the file system takes
 * it (the caller's descriptor and its flags are left alone), closed when
 * the region is unmapped. The file's size is taken once, at map time:
 * pages past it read as zero and are never written to the file (it does
 * not grow), and the part of the last page past the end is not written
 * either, as with mmap(). If the file shrinks later, a page not resident
 * whose place is now past the end reads short, which is an I/O error:
 * SIGBUS, as the kernel gives for a mapping past the end of its file; and
 * what a shared region writes back is cut at the file's end as it is then
 * (one fstat() a page written), so the file does not grow back.
 *
 * upager_sync() writes a range's dirty pages back in io_uring batches
 * (stopping writes to each page first, so what reaches the file is what
 * the page held), then fdatasync()s, and reports the first error once:
 * its own, or else one an eviction met since the last call.
 */
#include "internal.h"
#include "fault.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define SYNC_BATCH 64

void upager__file_req(struct region *r, uint64_t pg, struct io_req *q, enum io_op op, void *buf)
{
	uint64_t at = pg << r->p->page_shift;
	uint64_t len = r->p->page_size;

	if (at + len > r->file_bytes)
		len = r->file_bytes > at ? r->file_bytes - at : 0;
	if (op == IO_WRITE) {
		/* The file may have shrunk since the map: what is past its end
		 * now is not written, which would grow it again (the kernel
		 * drops a shared mapping's pages past a truncation). A write
		 * of nothing succeeds. O_DIRECT writes whole pages only: a
		 * page the new end cuts is written whole. */
		struct stat st;
		uint64_t end = r->file_off + at + len;
		if (fstat(r->file_fd, &st) == 0 && (uint64_t)st.st_size < end) {
			uint64_t keep = (uint64_t)st.st_size > r->file_off + at
						? (uint64_t)st.st_size - r->file_off - at
						: 0;
			if (!r->file_direct || !(keep & (r->p->page_size - 1)))
				len = keep;
		}
	}
	*q = (struct io_req){ .op = op, .buf = buf, .len = len, .off = r->file_off + at };
}

/* Writes back the n locked pages of a batch; each whose write went out
 * is clean (unless pinned: then writes were never stopped). Unlocks them
 * all. Returns 0 or the first error. */
static int flush_batch(struct region *r, struct io_ring *ring, struct io_req *reqs, struct upte **e,
		       bool *pinned, unsigned n)
{
	struct upager *p = r->p;
	int err = 0;

	if (!n)
		return 0;
	int enters = io_ring_run(&p->io, ring, r->file_fd, reqs, n);
	if (enters > 0)
		STAT_ADD(p, io_submits, (uint64_t)enters);
	for (unsigned i = 0; i < n; i++) {
		int res = enters < 0 ? enters : reqs[i].res;
		if (res == (int)reqs[i].len) {
			if (!pinned[i])
				pte_update(e[i], PTE_DIRTY, 0);
			STAT_INC(p, writebacks);
			STAT_ADD(p, bytes_written, reqs[i].len);
		} else {
			STAT_INC(p, io_errors);
			if (!err)
				err = res < 0 ? res : -EIO;
		}
		upager__pte_unlock(e[i]);
	}
	return err;
}

int upager__file_writeback(struct region *r, uint64_t first, uint64_t end)
{
	struct upager *p = r->p;
	struct io_req reqs[SYNC_BATCH];
	struct upte *locked[SYNC_BATCH];
	bool pinned[SYNC_BATCH];
	unsigned n = 0;
	int err = 0, ret;

	if (!r->is_file || !r->file_shared || r->file_ro)
		return 0;
	if (end > r->file_pages)
		end = r->file_pages;
	if (first >= end)
		return 0;
	struct io_ring *ring = io_ring_get(&p->io);
	for (uint64_t pg = first; pg < end; pg++) {
		struct upte *e = pt_lookup(&r->pt, pg & ~(uint64_t)(PT_FANOUT - 1));
		if (!e) {
			pg |= PT_FANOUT - 1; /* a leaf never allocated: never touched */
			continue;
		}
		e += pg & (PT_FANOUT - 1);
		/* A locked page may be one a fault is still finishing: the
		 * backend wakes the program (whose store may be done) before
		 * the entry says dirty. Only an unlocked entry is final. */
		uint32_t f = pte_flags(e);
		if (!(f & PTE_LOCKED) && (pte_state(f) != PTE_RESIDENT || !(f & PTE_DIRTY)))
			continue;
		/* Page locks in address order, the second and later with a
		 * trylock (internal.h's rule): a busy one ends the batch. */
		if (n && !upager__pte_trylock(e)) {
			if ((ret = flush_batch(r, ring, reqs, locked, pinned, n)) && !err)
				err = ret;
			n = 0;
		}
		if (!n)
			upager__pte_lock(e);
		f = pte_flags(e);
		if (pte_state(f) != PTE_RESIDENT || !(f & PTE_DIRTY)) {
			upager__pte_unlock(e);
			continue;
		}
		bool pin = atomic_load(&p->frames.frames[e->frame].pins) != 0;
		/* Writes stop before the write goes out, so that a store after
		 * it faults and makes the page dirty again. A pinned page must
		 * not fault: it is written as it is and stays dirty. */
		if (!pin && (f & PTE_MAPPED) && (f & PTE_WRITABLE)) {
			if (p->backend->wrprotect(r, pg, 1) == 0) {
				pte_update(e, PTE_WRITABLE, 0);
			} else if (p->backend->unmap(r, pg, 1) == 0) {
				pte_clear_mapped(p, e);
			} else {
				upager__pte_unlock(e);
				if (!err)
					err = -EIO;
				continue;
			}
		}
		upager__file_req(r, pg, &reqs[n], IO_WRITE, region_pview(r, pg));
		locked[n] = e;
		pinned[n] = pin;
		if (++n == SYNC_BATCH) {
			if ((ret = flush_batch(r, ring, reqs, locked, pinned, n)) && !err)
				err = ret;
			n = 0;
		}
	}
	if ((ret = flush_batch(r, ring, reqs, locked, pinned, n)) && !err)
		err = ret;
	io_ring_put(&p->io, ring);
	return err;
}

int upager__file_read_page(struct upager *p, int fd, uint64_t off, size_t len, struct region *dst,
			   uint64_t pg)
{
	struct io_ring *ring = io_ring_get(&p->io);
	char *buf = io_ring_bounce(ring, p->page_size);
	struct io_req q = { .op = IO_READ, .buf = buf, .len = len, .off = off };
	int ret = io_ring_run(&p->io, ring, fd, &q, 1);

	if (ret > 0)
		STAT_ADD(p, io_submits, (uint64_t)ret);
	if (ret >= 0)
		ret = q.res == (int)len ? 0 : q.res < 0 ? q.res : -EIO;
	if (ret == 0) {
		STAT_ADD(p, bytes_read, len);
		memset(buf + len, 0, p->page_size - len);
		ssize_t put = pwrite(dst->memfd, buf, p->page_size, (off_t)(pg << p->page_shift));
		if (put != (ssize_t)p->page_size)
			ret = put < 0 ? -errno : -EIO;
	} else {
		STAT_INC(p, io_errors);
	}
	io_ring_put(&p->io, ring);
	return ret;
}

UPAGER_API int upager_sync(upager_t *p, void *addr, size_t len)
{
	struct region *r;
	int err;

	upager__clear_error();
	if (!p)
		return -EINVAL;
	if (len == 0)
		return 0;
	r = upager__range_region(p, addr, len, "upager_sync");
	if (!r)
		return UPAGER_ENOREGION;
	if (!r->is_file || !r->file_shared || r->file_ro) {
		upager__region_put(r); /* nothing of it goes to a file */
		return 0;
	}
	uint64_t first = ((uintptr_t)addr - r->base) >> p->page_shift;
	uint64_t end = ((uintptr_t)addr + len - r->base + p->page_size - 1) >> p->page_shift;
	err = upager__file_writeback(r, first, end);
	if (fdatasync(r->file_fd) < 0 && !err)
		err = -errno;
	/* Reported once, like msync(): an eviction's error counts too. */
	int old = atomic_exchange(&r->file_err, 0);
	if (!err)
		err = old;
	upager__region_put(r);
	if (err)
		upager__fail(err, "upager_sync: writing [%p, +%zu) back to its file: %s", addr, len,
			     upager_strerror(err));
	return err;
}

/* The region's own descriptor for the file behind fd: reopened, with
 * O_DIRECT if asked and the file system takes it (a test read shows),
 * else a duplicate. *direct says which. */
static int reopen_file(int fd, bool rw, bool want_direct, size_t page_size, uint64_t off,
		       bool *direct)
{
	char path[64];
	int mode = (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC;
	int nfd;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	*direct = false;
	if (want_direct) {
		nfd = open(path, mode | O_DIRECT);
		if (nfd >= 0) {
			void *buf = mmap(NULL, page_size, PROT_READ | PROT_WRITE,
					 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			bool ok = buf != MAP_FAILED &&
				  pread(nfd, buf, page_size, (off_t)off) == (ssize_t)page_size;
			if (buf != MAP_FAILED)
				munmap(buf, page_size);
			if (ok) {
				*direct = true;
				return nfd;
			}
			close(nfd);
		}
	}
	nfd = open(path, mode);
	if (nfd >= 0)
		return nfd;
	/* Reopening may be refused where the descriptor itself works (a
	 * mode changed since, no /proc): share the caller's open file.
	 * Page I/O gives its offsets, so the caller's file position stays. */
	nfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	return nfd < 0 ? -errno : nfd;
}

UPAGER_API int upager_map_file(upager_t *p, int fd, uint64_t offset, size_t len, int flags,
			       void **addr)
{
	const int known = UPAGER_MAP_SHARED | UPAGER_MAP_PRIVATE | UPAGER_MAP_RDONLY;
	struct region *r;
	struct stat st;
	int err, acc;

	upager__clear_error();
	if (!p || !addr)
		return -EINVAL;
	if ((flags & ~known) || !(flags & UPAGER_MAP_SHARED) == !(flags & UPAGER_MAP_PRIVATE))
		return upager__fail(
			-EINVAL,
			"upager_map_file: flags %#x: exactly one of SHARED and PRIVATE, and RDONLY, are allowed",
			flags);
	if (offset & (p->page_size - 1))
		return upager__fail(
			-EINVAL,
			"upager_map_file: offset %llu is not a multiple of the page size (%zu)",
			(unsigned long long)offset, p->page_size);
	if (len == 0)
		return upager__fail(-EINVAL, "upager_map_file: zero length");
	if (len > (1ULL << 46))
		return upager__fail(-ENOMEM, "upager_map_file: %zu bytes is more than 64 TiB", len);
	if (offset > INT64_MAX - (1ULL << 47))
		return upager__fail(-EOVERFLOW, "upager_map_file: offset %llu is too large",
				    (unsigned long long)offset);
	bool writes = (flags & UPAGER_MAP_SHARED) && !(flags & UPAGER_MAP_RDONLY);
	acc = fcntl(fd, F_GETFL);
	if (acc < 0)
		return upager__fail(-errno, "upager_map_file: descriptor %d: %s", fd,
				    strerror(errno));
	acc &= O_ACCMODE;
	if (acc == O_WRONLY)
		return upager__fail(-EACCES,
				    "upager_map_file: descriptor %d is open for writing only", fd);
	if (writes && acc != O_RDWR)
		return upager__fail(
			-EACCES,
			"upager_map_file: a writable shared map needs descriptor %d open for reading and writing",
			fd);
	if (fstat(fd, &st) < 0)
		return upager__fail(-errno, "upager_map_file: descriptor %d: %s", fd,
				    strerror(errno));
	if (!S_ISREG(st.st_mode))
		return upager__fail(-ENODEV, "upager_map_file: descriptor %d is not a regular file",
				    fd);
	len = (len + p->page_size - 1) & ~(p->page_size - 1);
	uint64_t size = (uint64_t)st.st_size;
	uint64_t bytes = size > offset ? size - offset : 0;
	if (bytes > len)
		bytes = len;
	if (bytes) {
		char c;
		if (pread(fd, &c, 1, (off_t)offset) < 0)
			return upager__fail(-errno, "upager_map_file: reading descriptor %d: %s",
					    fd, strerror(errno));
	}

	err = upager__region_new(p, len, &r);
	if (err < 0)
		return err;
	r->is_file = true;
	r->file_shared = (flags & UPAGER_MAP_SHARED) != 0;
	r->file_ro = (flags & UPAGER_MAP_RDONLY) != 0;
	r->file_off = offset;
	r->file_bytes = bytes;
	r->file_pages = (bytes + p->page_size - 1) >> p->page_shift;
	/* O_DIRECT moves whole pages only: not for a file whose end cuts a
	 * page (its last page would read or write short). */
	bool direct = p->cfg.direct_io && bytes >= p->page_size && !(bytes & (p->page_size - 1));
	r->file_fd = upager__fd_keep(
		reopen_file(fd, writes, direct, p->page_size, offset, &r->file_direct));
	if (r->file_fd < 0) {
		err = upager__fail(r->file_fd, "upager_map_file: reopening descriptor %d: %s", fd,
				   upager_strerror(r->file_fd));
		r->is_file = false;
		upager__region_destroy(r);
		return err;
	}
	/* Read-only as upager_protect(READ) makes a range: where a backend
	 * needs the view's protection changed for that (userfaultfd: the
	 * kernel then gives SIGSEGV itself), change it before any access. */
	if (r->file_ro && p->backend->set_access &&
	    (err = p->backend->set_access(r, 0, r->npages, UPAGER_PROT_READ)) < 0) {
		upager__region_destroy(r);
		return err;
	}
	err = upager__region_publish(r);
	if (err < 0) {
		upager__region_destroy(r);
		return err;
	}
	/* Without its thread, readahead stays synchronous: not an error. */
	upager__readahead_start(p);
	*addr = (void *)r->base;
	return 0;
}
