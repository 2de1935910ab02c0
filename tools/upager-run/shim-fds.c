// SPDX-License-Identifier: MIT
/*
 * close, close_range, closefrom, dup2 and dup3 keep off the pager's own
 * descriptors (src/fds.c: moved above the program's numbers and noted).
 * A program closes or reuses numbers it did not open: helpers close every
 * descriptor above 2 at startup, a shell's `exec 3>file` is a dup2()
 * onto 3. Without this the pager lost its userfaultfd or a region's
 * memfd, and the program's memory silently read as zeros.
 *
 *  - close() of a pager descriptor succeeds without closing it;
 *  - close_range() and closefrom() close the ranges around them;
 *  - dup2()/dup3() onto one fails with EBUSY (as Linux does for a number
 *    being opened): the program gets an error, not a broken pager.
 *
 * A forked child (which has no pager) and the pager's own closes
 * (upager__fd_close releases first) pass through.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#include "shim.h"

static bool guarded(int fd)
{
	/* A forked child forgets its parent's (shim-fork.c). */
	return upager__fd_owned(fd);
}

SHIM_API int close(int fd)
{
	REAL(close, 0);
	if (guarded(fd))
		return 0;
	return real_close(fd);
}

/* The real close_range over [first, last] minus the pager's. */
static int close_around(int (*real)(unsigned, unsigned, int), unsigned first, unsigned last,
			int flags)
{
	/* Setting close-on-exec does no harm: the pager's already are. */
	if (flags & CLOSE_RANGE_CLOEXEC)
		return real(first, last, flags);
	unsigned from = first;
	while (from <= last) {
		int next = upager__fd_next_owned(from > INT_MAX ? INT_MAX : (int)from);
		if (next < 0 || (unsigned)next > last)
			return real(from, last, flags);
		if ((unsigned)next > from && real(from, (unsigned)next - 1, flags) < 0)
			return -1;
		if ((unsigned)next == UINT_MAX)
			break;
		from = (unsigned)next + 1;
	}
	return 0;
}

SHIM_API int close_range(unsigned first, unsigned last, int flags)
{
	REAL(close_range, 0);
	if (first > last) {
		errno = EINVAL;
		return -1;
	}
	return close_around(real_close_range, first, last, flags);
}

SHIM_API void closefrom(int lowfd)
{
	REAL(close_range, 0);
	close_around(real_close_range, lowfd < 0 ? 0 : (unsigned)lowfd, UINT_MAX, 0);
}

SHIM_API int dup2(int oldfd, int newfd)
{
	REAL(dup2, 0);
	if (oldfd != newfd && guarded(newfd)) {
		errno = EBUSY;
		return -1;
	}
	return real_dup2(oldfd, newfd);
}

SHIM_API int dup3(int oldfd, int newfd, int flags)
{
	REAL(dup3, 0);
	if (oldfd != newfd && guarded(newfd)) {
		errno = EBUSY;
		return -1;
	}
	return real_dup3(oldfd, newfd, flags);
}
