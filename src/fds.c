// SPDX-License-Identifier: MIT
/*
 * The pager's own file descriptors: userfaultfds, memfds, the swap file,
 * io_uring instances, epoll and event descriptors.
 *
 * A program that does not know the library is in its process reuses or
 * closes descriptor numbers it did not open: a shell script's
 * `exec 3>file` is a dup2() onto 3, and helpers such as the Erlang VM's
 * erl_child_setup close every descriptor above 2 at startup. Either one
 * took the pager's userfaultfd or memfd away; the regions were then left
 * without a handler, or the kernel served their faults from the memfd
 * (evicted pages read as zeros).
 *
 * So each descriptor the library keeps is moved at creation above the
 * numbers programs use (below the soft RLIMIT_NOFILE, at most 8192: the
 * kernel sizes a process's descriptor table by its highest number) and
 * noted here; upager-run's close, close_range, closefrom, dup2 and dup3
 * leave noted descriptors alone (tools/upager-run/shim-fds.c).
 */
#include "internal.h"

#include <fcntl.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <unistd.h>

#define TRACKED 65536
#define HIGHEST_BASE 8192
#define ROOM 256 /* descriptors kept above the base */

static _Atomic uint64_t owned[TRACKED / 64];

static int high_base(void)
{
	static _Atomic int base;
	int b = atomic_load_explicit(&base, memory_order_relaxed);

	if (b)
		return b;
	struct rlimit rl;
	rlim_t limit = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 1024;
	if (limit > HIGHEST_BASE)
		limit = HIGHEST_BASE;
	b = limit >= 2 * ROOM ? (int)(limit - ROOM) : (int)(limit / 2);
	if (b < 3)
		b = 3;
	atomic_store_explicit(&base, b, memory_order_relaxed);
	return b;
}

int upager__fd_keep(int fd)
{
	if (fd < 0)
		return fd;
	if (fd < high_base()) {
		int moved = fcntl(fd, F_DUPFD_CLOEXEC, high_base());
		if (moved >= 0) {
			close(fd);
			fd = moved;
		}
		/* else (the limit was lowered, or the table is full): it
		 * stays where it is, still noted. */
	}
	if (fd < TRACKED)
		atomic_fetch_or(&owned[fd / 64], 1ULL << (fd % 64));
	return fd;
}

void upager__fd_release(int fd)
{
	if (fd >= 0 && fd < TRACKED)
		atomic_fetch_and(&owned[fd / 64], ~(1ULL << (fd % 64)));
}

int upager__fd_close(int fd)
{
	if (fd < 0)
		return 0;
	upager__fd_release(fd);
	return close(fd);
}

/* In a forked child: the descriptors noted are the parent's pagers',
 * which are of no use there (their regions are not inherited), so the
 * program may close them; a pager the child opens notes its own. */
void upager__fd_forget_all(void)
{
	for (size_t w = 0; w < TRACKED / 64; w++)
		atomic_store_explicit(&owned[w], 0, memory_order_relaxed);
}

bool upager__fd_owned(int fd)
{
	return fd >= 0 && fd < TRACKED &&
	       (atomic_load_explicit(&owned[fd / 64], memory_order_relaxed) >> (fd % 64) & 1);
}

int upager__fd_next_owned(int from)
{
	if (from < 0)
		from = 0;
	for (int w = from / 64; w < TRACKED / 64; w++) {
		uint64_t bits = atomic_load_explicit(&owned[w], memory_order_relaxed);
		if (w == from / 64)
			bits &= ~0ULL << (from % 64);
		if (bits)
			return w * 64 + __builtin_ctzll(bits);
	}
	return -1;
}
