// SPDX-License-Identifier: MIT
/*
 * The userfaultfd backend.
 *
 * A region's application view is registered for three kinds of fault:
 * MISSING (no page in the memfd: resolved with UFFDIO_COPY or
 * UFFDIO_ZEROPAGE, which fill and map the page in one step), MINOR (the
 * page is in the memfd but not mapped: UFFDIO_CONTINUE maps it) and WP
 * (a write to a write-protected page: UFFDIO_WRITEPROTECT lifts it). MINOR
 * faults are the emulated accessed bit, WP faults the dirty bit.
 *
 * Two ways to get the faults:
 *
 * - transparent: handler threads read fault messages from the uffd and
 *   resolve them while the faulting thread sleeps in the kernel. A system
 *   call that touches a missing page waits the same way, so read(2) into a
 *   region buffer just works. The cost is a thread hand-off per fault.
 * - fast (UFFD_FEATURE_SIGBUS): the kernel raises SIGBUS in the faulting
 *   thread, whose handler resolves its own fault. No hand-off, but a
 *   system call that touches a missing page fails with EFAULT.
 *
 * A fault that cannot be resolved ends in SIGBUS for the faulting thread:
 * in fast mode the handler passes the signal on; in transparent mode the
 * page gets a poison marker (UFFDIO_POISON, Linux 6.6) so the retried
 * access raises a real SIGBUS with its address, or, on older kernels, the
 * thread is sent SIGBUS with tgkill.
 */
#include "internal.h"
#include "fault.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

/* Newer than the linux-libc-dev of Debian 12 (6.1); the kernel decides. */
#ifndef UFFDIO_CONTINUE_MODE_WP
#define UFFDIO_CONTINUE_MODE_WP ((__u64)1 << 1)
#endif
#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON (1 << 14)
#endif
#ifndef UFFDIO_POISON
struct uffdio_poison {
	struct uffdio_range range;
	__u64 mode;
	__s64 updated;
};
#define _UFFDIO_POISON (0x08)
#define UFFDIO_POISON _IOWR(UFFDIO, _UFFDIO_POISON, struct uffdio_poison)
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

#define NEEDED_FEATURES                                               \
	(UFFD_FEATURE_MINOR_SHMEM | UFFD_FEATURE_WP_HUGETLBFS_SHMEM | \
	 UFFD_FEATURE_PAGEFAULT_FLAG_WP)

struct uffd {
	int fd;
	bool fast;
	bool sigbus_owned;
	bool has_poison;
	_Atomic bool continue_wp, copy_wp; /* cleared if the kernel refuses them */
	void *zero;                        /* page_size bytes of zeros to copy from */
	int stop_fd;
	pthread_t *threads;
	unsigned nthreads;
	bool pinned; /* one handler per CPU, each fault wakes all of them */
	struct upager *p;
};

static inline struct uffd *U(struct region *r)
{
	return r->p->backend_data;
}

/*
 * Opens a userfaultfd: the system call, else /dev/userfaultfd. With
 * user_only_ok, falls back to a user-mode-only uffd, which is what an
 * unprivileged user gets under vm.unprivileged_userfaultfd=0: it catches
 * the program's own accesses but not the kernel's (a system call gets
 * EFAULT), so it serves fast mode only.
 */
static int uffd_open(bool user_only_ok, char *why, size_t whylen)
{
	int flags = O_CLOEXEC | O_NONBLOCK;

	why[0] = '\0';
	int fd = (int)syscall(SYS_userfaultfd, flags);
	int err = errno;

	if (fd >= 0)
		return fd;
	int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev >= 0) {
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
		close(dev);
		if (fd >= 0)
			return fd;
	}
	if (user_only_ok && err == EPERM) {
		fd = (int)syscall(SYS_userfaultfd, flags | UFFD_USER_MODE_ONLY);
		if (fd >= 0) {
			snprintf(why, whylen, "user-mode-only userfaultfd (unprivileged)");
			return fd;
		}
	}
	snprintf(
		why, whylen, "userfaultfd refused: %s%s", strerror(err),
		err != EPERM ? ""
		: user_only_ok
			? " (needs CAP_SYS_PTRACE, vm.unprivileged_userfaultfd=1 or access to /dev/userfaultfd)"
			: " for kernel accesses, which transparent mode needs (CAP_SYS_PTRACE, vm.unprivileged_userfaultfd=1 or access to /dev/userfaultfd)");
	return -err;
}

static int uffd_api(int fd, uint64_t want, uint64_t *have)
{
	struct uffdio_api api = { .api = UFFD_API, .features = want };

	if (ioctl(fd, UFFDIO_API, &api) < 0)
		return -errno;
	if (have)
		*have = api.features;
	return 0;
}

static int uffd_probe(const upager_config_t *cfg, char *why, size_t whylen)
{
	uint64_t have = 0;
	int fd = uffd_open(cfg->mode == UPAGER_MODE_FAST, why, whylen);
	int err;

	if (fd < 0)
		return fd;
	err = uffd_api(fd, 0, &have);
	close(fd);
	if (err < 0) {
		snprintf(why, whylen, "UFFDIO_API failed: %s", strerror(-err));
		return err;
	}
	uint64_t need = NEEDED_FEATURES | (cfg->mode == UPAGER_MODE_FAST ? UFFD_FEATURE_SIGBUS
									 : UFFD_FEATURE_THREAD_ID);
	if ((have & need) != need) {
		snprintf(
			why, whylen,
			"kernel userfaultfd lacks features %#llx (shmem minor faults and write protection need Linux 5.19)",
			(unsigned long long)(need & ~have));
		return -ENOTSUP;
	}
	return 0;
}

/* ---- fast mode: the faulting thread's SIGBUS handler ---- */

/* The address of this thread's last SIGBUS that found no region. */
static __thread uintptr_t unowned_sigbus_addr;

static void sigbus_handler(int sig, siginfo_t *si, void *uc)
{
	int saved_errno = errno;
	uint64_t entered = upager__now_ns();
	uintptr_t addr = (uintptr_t)si->si_addr;
	struct region *r = upager__region_find(addr);
	int err = 0;

	if (!r && si->si_code > 0 && unowned_sigbus_addr != addr) {
		/* The kernel may have raised it for a region torn down before
		 * this handler ran (unregistered, then gone from the
		 * registry). Once more: the access then meets whatever is
		 * there now. A fault's SIGBUS that is not ours comes again at
		 * the same address and is passed on then; one sent with
		 * kill() (si_code <= 0) is passed on at once. */
		unowned_sigbus_addr = addr;
		errno = saved_errno;
		return;
	}
	unowned_sigbus_addr = 0;
	/* The backend first: a sigsegv pager's backend_data is another
	 * struct, and a SIGBUS on its region is not ours to serve. */
	if (!r || r->p->backend != &upager__fault_uffd || !U(r)->fast) {
		if (r)
			upager__region_put(r);
		upager__signal_pass_on(sig, si, uc);
		errno = saved_errno;
		return;
	}
	upager__entry_ns = entered;
	if (upager__fault(r, addr, upager__fault_is_write(uc), &err) == FAULT_SIGBUS) {
		upager__report_fault_error(r, addr, err);
		upager__region_put(r);
		upager__signal_pass_on(sig, si, uc);
		errno = saved_errno;
		return;
	}
	upager__region_put(r);
	errno = saved_errno;
}

/* ---- transparent mode: handler threads ---- */

static void deliver_sigbus(struct uffd *u, struct region *r, uintptr_t addr, pid_t tid)
{
	uintptr_t page = addr & ~(uintptr_t)(r->p->page_size - 1);

	if (u->has_poison) {
		struct uffdio_poison po = { .range = { page, r->p->page_size }, .mode = 0 };
		if (ioctl(u->fd, UFFDIO_POISON, &po) == 0)
			return;
		if (errno == EEXIST) {
			/* An evicted page that was write-protected keeps a
			 * uffd-wp marker in its PTE, and POISON wants the PTE
			 * empty. Resolving write protection drops the marker. */
			struct uffdio_writeprotect wp = {
				.range = { page, r->p->page_size },
				.mode = UFFDIO_WRITEPROTECT_MODE_DONTWAKE,
			};
			ioctl(u->fd, UFFDIO_WRITEPROTECT, &wp);
			po.updated = 0;
			if (ioctl(u->fd, UFFDIO_POISON, &po) == 0)
				return;
		}
	}
	/* No poison: signal the thread; it leaves the fault to take it. */
	syscall(SYS_tgkill, getpid(), tid, SIGBUS);
}

static void handle_message(struct uffd *u, struct uffd_msg *m, uint64_t woken)
{
	if (m->event != UFFD_EVENT_PAGEFAULT)
		return;
	uintptr_t addr = (uintptr_t)m->arg.pagefault.address;
	bool write = (m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE) != 0;
	struct region *r = upager__region_find(addr);
	int err = 0;

	if (!r) {
		/* The region went away under the fault: let the thread retry. */
		struct uffdio_range range = { addr & ~4095UL, 4096 };
		ioctl(u->fd, UFFDIO_WAKE, &range);
		return;
	}
	upager__entry_ns = woken;
	switch (upager__fault(r, addr, write, &err)) {
	case FAULT_SIGBUS:
		upager__report_fault_error(r, addr, err);
		deliver_sigbus(u, r, addr, (pid_t)m->arg.pagefault.feat.ptid);
		break;
	case FAULT_NOT_OURS: {
		/* upager_protect() is changing this page's rights: the
		 * retried access meets the mapping's new protection. */
		struct uffdio_range range = { addr & ~(uintptr_t)(r->p->page_size - 1),
					      r->p->page_size };
		ioctl(u->fd, UFFDIO_WAKE, &range);
		break;
	}
	default:
		break;
	}
	upager__region_put(r);
}

/*
 * Which handler takes a fault matters more than how many are woken. The
 * faulting thread sleeps in the kernel until a handler has resolved its
 * fault; a handler on another CPU must first be woken there (an
 * interrupt, and on a virtual machine a wake-up of an idle vCPU: 25-60 us
 * here), while a handler on the faulting thread's own CPU runs as soon as
 * that thread sleeps, and its wake-up of the thread is local too.
 * bench/faults, transparent minor fault: 39-45 us with one unpinned
 * handler woken per fault, 28-33 us with the pinned handlers below (22 us
 * when the program's thread is pinned too, so that it never wakes up on
 * the other CPU).
 *
 * The kernel cannot be asked to wake the handler on the faulting CPU:
 * EPOLLEXCLUSIVE wakes the first idle waiter in a fixed order. So where
 * the process runs on few CPUs (PINNED_HANDLERS_MAX), there is one
 * handler pinned to each, and every fault wakes them all: the one on the
 * faulting CPU reads the message first, the others find nothing and
 * sleep again. On more CPUs that herd costs more than it saves, and the
 * handlers are unpinned with one woken per fault (EPOLLEXCLUSIVE). An
 * explicit handler_threads also gets the latter.
 */
#define PINNED_HANDLERS_MAX 4

/* The handler threads' wait for a fault, in an epoll instance of each
 * thread's own (with poll() every thread would be woken, pinned or
 * not). Without epoll, poll(). Returns true for a fault to read, false to
 * stop. */
static bool wait_for_fault(struct uffd *u, int ep)
{
	for (;;) {
		if (ep >= 0) {
			struct epoll_event got[2];
			int n = epoll_wait(ep, got, 2, -1);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return false;
			for (int i = 0; i < n; i++)
				if (got[i].data.fd == u->stop_fd)
					return false;
			return true;
		}
		struct pollfd pfd[2] = { { u->fd, POLLIN, 0 }, { u->stop_fd, POLLIN, 0 } };
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		return !pfd[1].revents;
	}
}

static int handler_epoll(struct uffd *u)
{
	int ep = upager__fd_keep(epoll_create1(EPOLL_CLOEXEC));
	struct epoll_event fault = { .events = EPOLLIN | (u->pinned ? 0 : EPOLLEXCLUSIVE),
				     .data.fd = u->fd };
	struct epoll_event stop = { .events = EPOLLIN, .data.fd = u->stop_fd };

	if (ep >= 0 && (epoll_ctl(ep, EPOLL_CTL_ADD, u->fd, &fault) < 0 ||
			epoll_ctl(ep, EPOLL_CTL_ADD, u->stop_fd, &stop) < 0)) {
		upager__fd_close(ep);
		ep = -1;
	}
	return ep;
}

static void *handler_main(void *arg)
{
	struct uffd *u = arg;
	struct uffd_msg msgs[32];
	sigset_t all;
	int ep = handler_epoll(u);

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	while (wait_for_fault(u, ep)) {
		uint64_t woken = upager__now_ns();
		/* A pinned handler takes one fault at a time: the others
		 * were woken too and take the next, in parallel. */
		ssize_t n = read(u->fd, msgs, u->pinned ? sizeof(msgs[0]) : sizeof(msgs));
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			break;
		}
		for (size_t i = 0; i < (size_t)n / sizeof(msgs[0]); i++)
			handle_message(u, &msgs[i], woken);
	}
	upager__fd_close(ep);
	return NULL;
}

/* ---- init and fini ---- */

static void uffd_fini(struct upager *p)
{
	struct uffd *u = p->backend_data;

	if (!u)
		return;
	if (u->threads) {
		uint64_t one = 1;
		ssize_t unused = write(u->stop_fd, &one, sizeof(one));
		(void)unused;
		for (unsigned i = 0; i < u->nthreads; i++)
			pthread_join(u->threads[i], NULL);
		free(u->threads);
	}
	if (u->sigbus_owned)
		upager__signal_release(SIGBUS);
	upager__fd_close(u->stop_fd);
	upager__fd_close(u->fd);
	if (u->zero)
		munmap(u->zero, p->page_size);
	free(u);
	p->backend_data = NULL;
}

/* The CPUs to pin one handler each to (see PINNED_HANDLERS_MAX): those
 * the process may run on, when handler_threads was left to the pager and
 * they are few. Returns how many, 0 for unpinned handlers. */
static unsigned handler_cpus(struct upager *p, int cpus[PINNED_HANDLERS_MAX])
{
	cpu_set_t allowed;
	unsigned n = 0;

	if (!p->handlers_auto || sched_getaffinity(0, sizeof(allowed), &allowed) < 0 ||
	    CPU_COUNT(&allowed) > PINNED_HANDLERS_MAX)
		return 0;
	for (int c = 0; c < CPU_SETSIZE && n < PINNED_HANDLERS_MAX; c++)
		if (CPU_ISSET(c, &allowed))
			cpus[n++] = c;
	return n;
}

static int uffd_init(struct upager *p)
{
	struct uffd *u = calloc(1, sizeof(*u));
	uint64_t have = 0;
	char why[200];
	int err;

	if (!u)
		return -ENOMEM;
	p->backend_data = u;
	u->p = p;
	u->stop_fd = -1;
	u->fast = p->cfg.mode == UPAGER_MODE_FAST;
	atomic_init(&u->continue_wp, true);
	atomic_init(&u->copy_wp, true);
	u->fd = upager__fd_keep(uffd_open(u->fast, why, sizeof(why)));
	if (u->fd < 0) {
		err = upager__fail(UPAGER_EBACKEND, "%s", why);
		goto fail;
	}
	if (why[0])
		snprintf(p->backend_note, sizeof(p->backend_note), "%s", why);
	/* Ask for what we need, plus poison where the kernel has it. */
	int probe = uffd_open(u->fast, why, sizeof(why));
	if (probe >= 0) {
		uffd_api(probe, 0, &have);
		close(probe);
	}
	uint64_t want = NEEDED_FEATURES | (u->fast ? UFFD_FEATURE_SIGBUS : UFFD_FEATURE_THREAD_ID) |
			(have & UFFD_FEATURE_POISON);
	err = uffd_api(u->fd, want, NULL);
	if (err < 0) {
		err = upager__fail(UPAGER_EBACKEND, "UFFDIO_API: %s", strerror(-err));
		goto fail;
	}
	u->has_poison = (have & UFFD_FEATURE_POISON) != 0;
	/* Never touched, so it reads from the kernel's zero page: no RSS. */
	u->zero = mmap(NULL, p->page_size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (u->zero == MAP_FAILED) {
		u->zero = NULL;
		err = -ENOMEM;
		goto fail;
	}
	if (u->fast) {
		err = upager__signal_own(SIGBUS, sigbus_handler);
		if (err < 0) {
			err = upager__fail(err, "installing the SIGBUS handler: %s",
					   strerror(-err));
			goto fail;
		}
		u->sigbus_owned = true;
		return 0;
	}
	p->transparent = true;
	int cpus[PINNED_HANDLERS_MAX];
	unsigned nthreads = handler_cpus(p, cpus);
	u->pinned = nthreads > 0;
	if (!u->pinned)
		nthreads = p->cfg.handler_threads;
	u->stop_fd = upager__fd_keep(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
	u->threads = calloc(nthreads, sizeof(pthread_t));
	if (u->stop_fd < 0 || !u->threads) {
		err = -ENOMEM;
		goto fail;
	}
	for (unsigned i = 0; i < nthreads; i++) {
		pthread_attr_t attr;
		pthread_attr_init(&attr);
		if (u->pinned) {
			cpu_set_t one;
			CPU_ZERO(&one);
			CPU_SET(cpus[i], &one);
			pthread_attr_setaffinity_np(&attr, sizeof(one), &one);
		}
		err = pthread_create(&u->threads[i], &attr, handler_main, u);
		if (err == EINVAL && u->pinned) /* the CPU has just gone away */
			err = pthread_create(&u->threads[i], NULL, handler_main, u);
		pthread_attr_destroy(&attr);
		if (err) {
			err = upager__fail(-err, "cannot start a fault handler thread: %s",
					   strerror(err));
			goto fail;
		}
		pthread_setname_np(u->threads[i], "upager-fault");
		u->nthreads++;
	}
	return 0;
fail:
	uffd_fini(p);
	return err;
}

/* ---- region operations ---- */

static int uffd_attach(struct region *r)
{
	struct uffdio_register reg = {
		.range = { r->base, r->len },
		.mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP |
			UFFDIO_REGISTER_MODE_MINOR,
	};

	if (ioctl(U(r)->fd, UFFDIO_REGISTER, &reg) < 0)
		return upager__fail(-errno, "UFFDIO_REGISTER of a %zu-byte region: %s", r->len,
				    strerror(errno));
	return 0;
}

static void uffd_detach(struct region *r)
{
	struct uffdio_range range = { r->base, r->len };

	ioctl(U(r)->fd, UFFDIO_UNREGISTER, &range);
}

/*
 * Runs a uffd fill ioctl (COPY, ZEROPAGE, CONTINUE) over the range its
 * argument holds at *start and *len (and *src, for COPY), retrying while
 * it says EAGAIN. The kernel may fill part of the range and then return
 * EAGAIN with the bytes it filled in *done (a later page failed, or the
 * address space was changing): the next try starts after them, because a
 * try over pages already filled fails with EEXIST (they are there), which
 * would pass for a failure of the whole range. Returns 0 or a negative
 * code; *filled is how many bytes from the start are filled (all of them
 * on 0, the pages before the one that failed otherwise).
 */
static int fill_ioctl(int fd, unsigned long req, void *arg, __u64 *start, __u64 *len, __u64 *src,
		      __s64 *done, uint64_t *filled)
{
	int stalls = 0;

	*filled = 0;
	for (;;) {
		*done = 0;
		if (ioctl(fd, req, arg) == 0) {
			*filled += *len;
			return 0;
		}
		if (errno != EAGAIN)
			return -errno;
		if (*done > 0) {
			uint64_t d = (uint64_t)*done < *len ? (uint64_t)*done : *len;
			*filled += d;
			*start += d;
			*len -= d;
			if (src)
				*src += d;
			if (!*len)
				return 0;
			stalls = 0;
			continue;
		}
		if (++stalls >= 1000)
			return -EAGAIN;
	}
}

/*
 * The end of a fill of pages pg..pg+n-1: a failed fill leaves none of
 * them filled (the backend's rule: all or nothing), since the caller
 * takes none for filled and would fill the faulting page again, which
 * fails on a page that is there. Filled pages are punched (install: the
 * memfd got them) or unmapped (map). A deferred wake happens last, so
 * that no thread woken by the fill runs on a page taken back.
 */
static int fill_end(struct region *r, uint64_t pg, uint64_t n, int err, uint64_t filled, bool punch,
		    bool wake)
{
	uint64_t k = filled >> r->p->page_shift;
	struct uffdio_range range = { (uintptr_t)region_page_addr(r, pg), n << r->p->page_shift };

	if (err < 0 && k) {
		if (punch)
			upager__punch(r, pg, k);
		else
			madvise(region_page_addr(r, pg), k << r->p->page_shift, MADV_DONTNEED);
	}
	if (wake)
		ioctl(U(r)->fd, UFFDIO_WAKE, &range);
	return err;
}

static int uffd_install(struct region *r, uint64_t pg, uint64_t n, const void *src, bool writable)
{
	struct uffd *u = U(r);
	uintptr_t dst = (uintptr_t)region_page_addr(r, pg);
	size_t len = n << r->p->page_shift;
	/* Several pages: threads waiting on them (transparent mode) are
	 * woken once all are in, or none (fill_end). */
	bool defer_wake = !u->fast && n > 1;
	uint64_t filled, more;
	int err;

	if (!src && writable) {
		struct uffdio_zeropage z = { .range = { dst, len },
					     .mode = defer_wake ? UFFDIO_ZEROPAGE_MODE_DONTWAKE
								: 0 };
		err = fill_ioctl(u->fd, UFFDIO_ZEROPAGE, &z, &z.range.start, &z.range.len, NULL,
				 &z.zeropage, &filled);
		return fill_end(r, pg, n, err, filled, true, defer_wake);
	}
	if (!src)
		src = u->zero; /* n is 1 for zero pages */
	bool wp = !writable && atomic_load_explicit(&u->copy_wp, memory_order_relaxed);
	struct uffdio_copy c = { .dst = dst,
				 .src = (uintptr_t)src,
				 .len = len,
				 .mode = (wp ? UFFDIO_COPY_MODE_WP : 0) |
					 (defer_wake ? UFFDIO_COPY_MODE_DONTWAKE : 0) };
	err = fill_ioctl(u->fd, UFFDIO_COPY, &c, &c.dst, &c.len, &c.src, &c.copy, &filled);
	if (err == -EINVAL && wp) {
		/* A kernel without write-protected copies: mapped writable,
		 * which the caller must hear (> 0). Goes on where it stopped. */
		atomic_store(&u->copy_wp, false);
		wp = false;
		c.mode &= ~(__u64)UFFDIO_COPY_MODE_WP;
		err = fill_ioctl(u->fd, UFFDIO_COPY, &c, &c.dst, &c.len, &c.src, &c.copy, &more);
		filled += more;
	}
	err = fill_end(r, pg, n, err, filled, true, defer_wake);
	if (err < 0)
		return err;
	return writable || wp ? 0 : 1;
}

static int uffd_map(struct region *r, uint64_t pg, uint64_t n, bool writable)
{
	struct uffd *u = U(r);
	bool wp = !writable && atomic_load_explicit(&u->continue_wp, memory_order_relaxed);
	bool defer_wake = !u->fast && n > 1;
	struct uffdio_continue c = {
		.range = { (uintptr_t)region_page_addr(r, pg), n << r->p->page_shift },
		.mode = (wp ? UFFDIO_CONTINUE_MODE_WP : 0) |
			(defer_wake ? UFFDIO_CONTINUE_MODE_DONTWAKE : 0),
	};
	uint64_t filled, more;
	int err = fill_ioctl(u->fd, UFFDIO_CONTINUE, &c, &c.range.start, &c.range.len, NULL,
			     &c.mapped, &filled);

	if (err == -EINVAL && wp) {
		atomic_store(&u->continue_wp, false);
		wp = false;
		c.mode &= ~(__u64)UFFDIO_CONTINUE_MODE_WP;
		err = fill_ioctl(u->fd, UFFDIO_CONTINUE, &c, &c.range.start, &c.range.len, NULL,
				 &c.mapped, &more);
		filled += more;
	}
	err = fill_end(r, pg, n, err, filled, false, defer_wake);
	if (err < 0)
		return err;
	return writable || wp ? 0 : 1;
}

static int uffd_unprotect(struct region *r, uint64_t pg)
{
	struct uffdio_writeprotect wp = {
		.range = { (uintptr_t)region_page_addr(r, pg), r->p->page_size },
		.mode = 0,
	};

	return ioctl(U(r)->fd, UFFDIO_WRITEPROTECT, &wp) < 0 ? -errno : 0;
}

static int uffd_wrprotect(struct region *r, uint64_t pg, uint64_t n)
{
	struct uffdio_writeprotect wp = {
		.range = { (uintptr_t)region_page_addr(r, pg), n << r->p->page_shift },
		.mode = UFFDIO_WRITEPROTECT_MODE_WP,
	};

	return ioctl(U(r)->fd, UFFDIO_WRITEPROTECT, &wp) < 0 ? -errno : 0;
}

static int uffd_unmap(struct region *r, uint64_t pg, uint64_t n)
{
	/* The mapping is shared: dropping the PTEs keeps the memfd pages. */
	return madvise(region_page_addr(r, pg), n << r->p->page_shift, MADV_DONTNEED) < 0 ? -errno
											  : 0;
}

static void uffd_evicted(struct region *r, uint64_t pg, uint64_t n)
{
	/* Punching the memfd already removed the PTEs; the next access is a
	 * MISSING fault. */
}

static void uffd_wake(struct region *r, uint64_t pg)
{
	struct uffdio_range range = { (uintptr_t)region_page_addr(r, pg), r->p->page_size };

	if (!U(r)->fast)
		ioctl(U(r)->fd, UFFDIO_WAKE, &range);
}

static int uffd_set_access(struct region *r, uint64_t pg, uint64_t n, int prot)
{
	/* The kernel checks a mapping's protection before it looks for a
	 * userfaultfd: a forbidden access is an ordinary SIGSEGV. */
	if (mprotect(region_page_addr(r, pg), n << r->p->page_shift, prot) < 0)
		return upager__fail(-errno, "mprotect: %s", strerror(errno));
	return 0;
}

const struct fault_backend upager__fault_uffd = {
	.name = "uffd",
	.punch_unmaps = true,
	.unmap_zaps = true,
	.probe = uffd_probe,
	.init = uffd_init,
	.fini = uffd_fini,
	.attach = uffd_attach,
	.detach = uffd_detach,
	.install = uffd_install,
	.map = uffd_map,
	.unprotect = uffd_unprotect,
	.wrprotect = uffd_wrprotect,
	.unmap = uffd_unmap,
	.evicted = uffd_evicted,
	.wake = uffd_wake,
	.set_access = uffd_set_access,
};
