// SPDX-License-Identifier: MIT
/*
 * The mmap family. A private anonymous read-write mapping of at least
 * shim_mmap_min bytes (256 KiB, UPAGER_RUN_MMAP_MIN), asked for without
 * an address, is served from the arena: Python's object arenas, a
 * program's own big buffers, other allocators' chunks. munmap, mremap,
 * madvise and mprotect on arena addresses are done by the arena and the
 * pager; everything else goes to the kernel unchanged.
 *
 * Stays the kernel's: file mappings, MAP_SHARED memory, mappings with an
 * address (hint or MAP_FIXED), PROT_NONE reservations and anything
 * executable, MAP_STACK / MAP_GROWSDOWN / MAP_HUGETLB / MAP_32BIT, and
 * whatever glibc maps for itself (thread stacks, its own malloc's chunks:
 * it calls its internal __mmap, which is not interposable).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim.h"

static void *kmmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	long r = syscall(SYS_mmap, addr, len, prot, flags, fd, off);

	return (void *)r;
}

static bool wanted(void *addr, size_t len, int prot, int flags, int fd)
{
	const int other = MAP_FIXED | MAP_FIXED_NOREPLACE | MAP_STACK | MAP_GROWSDOWN |
			  MAP_HUGETLB | MAP_32BIT | MAP_SHARED;

	(void)fd;
	return !addr && len >= shim_mmap_min && prot == (PROT_READ | PROT_WRITE) &&
	       (flags & MAP_ANONYMOUS) && (flags & MAP_PRIVATE) && !(flags & other) &&
	       shim_inside == 0 && shim_page_mmaps &&
	       atomic_load_explicit(&shim_ready, memory_order_acquire);
}

SHIM_API void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	if (wanted(addr, len, prot, flags, fd)) {
		void *p;

		fork_gate_enter();
		shim_enter();
		p = arena_alloc(len);
		shim_leave();
		fork_gate_leave();
		if (p) {
			atomic_fetch_add_explicit(&shim_mmaps, 1, memory_order_relaxed);
			atomic_fetch_add_explicit(&shim_mmap_bytes, len, memory_order_relaxed);
			return p;
		}
		/* The arena is full: the kernel's memory is better than
		 * failing. */
	}
	return kmmap(addr, len, prot, flags, fd, off);
}

SHIM_API void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return mmap(addr, len, prot, flags, fd, off);
}

SHIM_API int munmap(void *addr, size_t len)
{
	if (arena_owns(addr)) {
		if ((uintptr_t)addr & ((size_t)sysconf(_SC_PAGESIZE) - 1) || len == 0) {
			errno = EINVAL;
			return -1;
		}
		fork_gate_enter();
		shim_enter();
		arena_free(addr, len);
		shim_leave();
		fork_gate_leave();
		return 0;
	}
	return (int)syscall(SYS_munmap, addr, len);
}

static void *arena_mremap(void *old, size_t oldlen, size_t newlen, int flags);

SHIM_API void *mremap(void *old, size_t oldlen, size_t newlen, int flags, ...)
{
	void *newaddr = NULL, *q;
	va_list ap;

	if (flags & MREMAP_FIXED) {
		va_start(ap, flags);
		newaddr = va_arg(ap, void *);
		va_end(ap);
	}
	if (!arena_owns(old))
		return (void *)syscall(SYS_mremap, old, oldlen, newlen, flags, newaddr);
	if ((flags & (MREMAP_FIXED | MREMAP_DONTUNMAP)) || newlen == 0 || oldlen == 0) {
		errno = EINVAL;
		return MAP_FAILED;
	}
	fork_child_copy(old);
	fork_gate_enter();
	q = arena_mremap(old, oldlen, newlen, flags);
	fork_gate_leave();
	return q;
}

static void *arena_mremap(void *old, size_t oldlen, size_t newlen, int flags)
{
	void *q;

	shim_enter();
	if (newlen <= oldlen) {
		size_t pg = arena_page();
		size_t keep = (newlen + pg - 1) & ~(pg - 1);

		if (keep < oldlen)
			arena_free((char *)old + keep, oldlen - keep);
		shim_leave();
		return old;
	}
	if (arena_grow(old, oldlen, newlen)) {
		shim_leave();
		return old;
	}
	if (!(flags & MREMAP_MAYMOVE)) {
		shim_leave();
		errno = ENOMEM;
		return MAP_FAILED;
	}
	q = arena_alloc(newlen);
	shim_leave();
	if (!q) {
		errno = ENOMEM;
		return MAP_FAILED;
	}
	memcpy(q, old, oldlen);
	shim_enter();
	arena_free(old, oldlen);
	shim_leave();
	return q;
}

SHIM_API int madvise(void *addr, size_t len, int advice)
{
	int err = 0;

	if (arena_owns(addr))
		fork_child_copy(addr);
	if (!arena_owns(addr) || shim_child_unpaged())
		return (int)syscall(SYS_madvise, addr, len, advice);
	shim_enter();
	switch (advice) {
	case MADV_DONTNEED:
	case MADV_FREE:
	case MADV_REMOVE:
		/* Page-aligned part of the range: MADV_DONTNEED needs an
		 * aligned start, the length is rounded up. */
		len = (len + arena_page() - 1) & ~(arena_page() - 1);
		err = upager_advise(shim_pager, addr, len, UPAGER_ADVICE_DONTNEED);
		if (err == -EBUSY) /* a pinned page keeps its contents */
			err = 0;
		break;
	case MADV_WILLNEED:
		err = upager_advise(shim_pager, addr, len, UPAGER_ADVICE_WILLNEED);
		break;
	default:
		/* Hints about the kernel's own paging (huge pages, KSM,
		 * fork behaviour, ...): accepted and ignored. */
		break;
	}
	shim_leave();
	if (err < 0) {
		errno = err > -4096 ? -err : EINVAL;
		return -1;
	}
	return 0;
}

SHIM_API int mprotect(void *addr, size_t len, int prot)
{
	int err, uprot;

	if (arena_owns(addr))
		fork_child_copy(addr);
	if (!arena_owns(addr) || shim_child_unpaged())
		return (int)syscall(SYS_mprotect, addr, len, prot);
	/* Executable paged memory (a JIT's code buffer) only on userfaultfd:
	 * the sigsegv backend sets every page's protection itself. */
	if ((prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC)) ||
	    ((prot & PROT_EXEC) && !shim_backend_uffd)) {
		errno = EACCES;
		return -1;
	}
	uprot = (prot & PROT_WRITE)  ? (UPAGER_PROT_READ | UPAGER_PROT_WRITE)
		: (prot & PROT_READ) ? UPAGER_PROT_READ
				     : UPAGER_PROT_NONE;
	len = (len + arena_page() - 1) & ~(arena_page() - 1);
	shim_enter();
	err = upager_protect(shim_pager, addr, len, uprot);
	if (err == 0 && (prot & PROT_EXEC) && syscall(SYS_mprotect, addr, len, prot) < 0)
		err = -errno;
	if (err == 0)
		arena_protected(addr, len, prot != (PROT_READ | PROT_WRITE));
	shim_leave();
	if (err < 0) {
		errno = err > -4096 ? -err : EINVAL;
		return -1;
	}
	return 0;
}

/*
 * mlock and mlockall. Locking paged memory would have the kernel fault in
 * and pin every page of the regions it covers: the arena alone reserves
 * 64 GiB, so mlockall(MCL_CURRENT) (memcached -k) would fill RAM, and
 * MCL_FUTURE would do the same to every region mapped later (a fork's
 * snapshot view). The pager decides what of its memory is resident: its
 * mappings (the memfds named upager-region) are left out, the rest is
 * locked as it is faulted in (MLOCK_ONFAULT: the library's tables are
 * sparse reservations sized for the whole swap area, which locking
 * outright would fill), and MCL_FUTURE is not passed on (README).
 */
static int lock_unpaged(uintptr_t lo, uintptr_t hi, unsigned flags)
{
	static const char tag[] = "upager-region";
	char buf[8192];
	size_t have = 0;
	int fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/maps", O_RDONLY | O_CLOEXEC);
	int err = 0;

	if (fd < 0)
		return -errno;
	for (;;) {
		long n = syscall(SYS_read, fd, buf + have, sizeof(buf) - 1 - have);
		if (n <= 0)
			break;
		have += (size_t)n;
		buf[have] = 0;
		char *line = buf, *nl;
		while ((nl = strchr(line, '\n'))) {
			*nl = 0;
			char *end;
			unsigned long a = strtoul(line, &end, 16), b = 0;
			if (*end == '-')
				b = strtoul(end + 1, NULL, 16);
			/* Reservations (PROT_NONE) and the vsyscall page are
			 * not locked, as the kernel's mlockall leaves them. */
			bool skip = (*end == '-' && !strncmp(strchr(end, ' ') ?: "", " ---", 4)) ||
				    strstr(line, "[vsyscall]") || strstr(line, tag);
			if (b > a && !skip) {
				uintptr_t from = a > lo ? a : lo, to = b < hi ? b : hi;
				if (from < to && syscall(SYS_mlock2, from, to - from, flags) < 0 &&
				    !err)
					err = -errno;
			}
			line = nl + 1;
		}
		have = (size_t)(buf + have - line);
		memmove(buf, line, have);
	}
	syscall(SYS_close, fd);
	return err;
}

static int lock_result(int err)
{
	if (err) {
		errno = -err;
		return -1;
	}
	return 0;
}

SHIM_API int mlockall(int flags)
{
	if (!shim_pager || shim_child_unpaged())
		return (int)syscall(SYS_mlockall, flags);
	if (flags & ~(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) ||
	    !(flags & (MCL_CURRENT | MCL_FUTURE))) {
		errno = EINVAL;
		return -1;
	}
	if (!(flags & MCL_CURRENT))
		return 0;
	return lock_result(lock_unpaged(0, UINTPTR_MAX, MLOCK_ONFAULT));
}

static int lock_range(const void *addr, size_t len, unsigned flags)
{
	uintptr_t lo = (uintptr_t)addr & ~(uintptr_t)4095, hi = (uintptr_t)addr + len;

	if (hi < lo) {
		errno = EINVAL;
		return -1;
	}
	return lock_result(lock_unpaged(lo, hi, flags));
}

SHIM_API int mlock(const void *addr, size_t len)
{
	if (!shim_pager || shim_child_unpaged() ||
	    !(shim_paged(addr) || shim_paged((char *)addr + len - 1)))
		return (int)syscall(SYS_mlock, addr, len);
	return lock_range(addr, len, MLOCK_ONFAULT);
}

SHIM_API int mlock2(const void *addr, size_t len, unsigned flags)
{
	if (!shim_pager || shim_child_unpaged() ||
	    !(shim_paged(addr) || shim_paged((char *)addr + len - 1)))
		return (int)syscall(SYS_mlock2, addr, len, flags);
	return lock_range(addr, len, flags | MLOCK_ONFAULT);
}
