// SPDX-License-Identifier: MIT
/*
 * Owning SIGSEGV and SIGBUS without taking them from the program.
 *
 * A fault backend that resolves faults in a signal handler (the SIGSEGV
 * backend; the userfaultfd backend in fast mode) must see every fault on
 * its regions first, and nothing else. So when it takes a signal:
 *
 * - the handler that was there before (the program's, a sanitizer's,
 *   libsigsegv's, or the default action) becomes the "chained" handler,
 *   and every fault that is not upager's is passed to it, with the
 *   original siginfo and context;
 * - a program that installs a handler for that signal later, with
 *   sigaction() or signal(), directly or through a library such as
 *   libsigsegv, does not replace upager's: libupager exports sigaction()
 *   and signal(), which for an owned signal just record the new handler
 *   as the chained one (and report the chained one as the old one);
 *   every other call goes to the C library's. This is how Android's
 *   libsigchain keeps a runtime's handler first.
 * - a fault passed to the default action ends as it would without
 *   upager: the disposition is reset and the access, retried, kills the
 *   process with the same signal and core dump.
 *
 * The interposition needs libupager to be a shared library found before
 * libc, which is what linking with -lupager gives. A program linked
 * statically keeps whatever handler it installs last.
 *
 * UPAGER_SIGNAL_CHAIN=0 in the environment turns the interposition off:
 * both calls then go straight to the C library, for programs (or
 * runtimes) that chain handlers themselves and must see every fault
 * first. Such a program's handler has to pass the faults it does not own
 * to the handler sigaction() reported as the old one, which may be
 * upager's.
 */
#include "internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);

/* See the interposed entry points below. */
#define NOT_INSTRUMENTED __attribute__((no_sanitize("address", "thread", "undefined")))

struct owned {
	int users;                /* backends that need the signal */
	struct sigaction chained; /* what the program would have had */
	void (*handler)(int, siginfo_t *, void *);
};

static pthread_mutex_t owned_lock = PTHREAD_MUTEX_INITIALIZER;
static struct owned owned[2]; /* [0] SIGSEGV, [1] SIGBUS */
/* Read lock-free in the handler: set before the real handler goes in. */
static _Atomic bool owned_flag[2];

static NOT_INSTRUMENTED int slot(int sig)
{
	return sig == SIGSEGV ? 0 : sig == SIGBUS ? 1 : -1;
}

/*
 * The interposed entry points run before anything else is ready: a
 * sanitizer's runtime installs its own handlers through sigaction() while
 * it starts up. So they are not instrumented, and they reach the C
 * library without dlsym where it exports its implementation (glibc's
 * __sigaction).
 */
#ifdef HAVE___SIGACTION
extern int __sigaction(int, const struct sigaction *, struct sigaction *);
#endif

static NOT_INSTRUMENTED sigaction_fn libc_sigaction(void)
{
#ifdef HAVE___SIGACTION
	return __sigaction;
#else
	static _Atomic(sigaction_fn) real;
	sigaction_fn f = atomic_load_explicit(&real, memory_order_acquire);

	if (!f) {
		f = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
		atomic_store_explicit(&real, f, memory_order_release);
	}
	return f;
#endif
}

int upager__signal_own(int sig, void (*handler)(int, siginfo_t *, void *))
{
	int i = slot(sig), err = 0;
	sigaction_fn real = libc_sigaction();

	if (i < 0 || !real)
		return -EINVAL;
	pthread_mutex_lock(&owned_lock);
	if (owned[i].users++ == 0) {
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = handler;
		/* No SA_ONSTACK: an alternate signal stack (sanitizers and
		 * some language runtimes install small ones) may be too small
		 * for a fault that evicts. Nothing may interrupt the handler
		 * while it holds page locks. */
		sa.sa_flags = SA_SIGINFO | SA_RESTART;
		sigfillset(&sa.sa_mask);
		owned[i].handler = handler;
		atomic_store(&owned_flag[i], true);
		if (real(sig, &sa, &owned[i].chained) < 0) {
			err = -errno;
			atomic_store(&owned_flag[i], false);
			owned[i].users--;
		}
	} else if (owned[i].handler != handler) {
		owned[i].users--;
		err = -EBUSY; /* one handler per signal */
	}
	pthread_mutex_unlock(&owned_lock);
	return err;
}

void upager__signal_release(int sig)
{
	int i = slot(sig);

	if (i < 0)
		return;
	pthread_mutex_lock(&owned_lock);
	if (owned[i].users > 0 && --owned[i].users == 0) {
		atomic_store(&owned_flag[i], false);
		libc_sigaction()(sig, &owned[i].chained, NULL);
	}
	pthread_mutex_unlock(&owned_lock);
}

void upager__signal_pass_on(int sig, siginfo_t *si, void *uc)
{
	int i = slot(sig);
	struct sigaction prev = owned[i].chained;

	if (prev.sa_handler == SIG_DFL || prev.sa_handler == SIG_IGN) {
		/* The default action, when the access is retried. An ignored
		 * fault signal is fatal anyway (the kernel forces it). */
		struct sigaction dfl;
		memset(&dfl, 0, sizeof(dfl));
		dfl.sa_handler = SIG_DFL;
		libc_sigaction()(sig, &dfl, NULL);
		return;
	}
	/* Run it as the kernel would: with its mask added, once if it asked
	 * for SA_RESETHAND. */
	sigset_t old;
	pthread_sigmask(SIG_BLOCK, &prev.sa_mask, &old);
	if (prev.sa_flags & SA_RESETHAND) {
		pthread_mutex_lock(&owned_lock);
		owned[i].chained.sa_handler = SIG_DFL;
		owned[i].chained.sa_flags &= ~SA_SIGINFO;
		pthread_mutex_unlock(&owned_lock);
	}
	if (prev.sa_flags & SA_SIGINFO)
		prev.sa_sigaction(sig, si, uc);
	else
		prev.sa_handler(sig);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void upager__signal_raise_sigbus(uintptr_t addr, void *uc)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	si.si_signo = SIGBUS;
	si.si_code = BUS_ADRERR;
	si.si_addr = (void *)addr;
	if (atomic_load(&owned_flag[1])) {
		upager__signal_pass_on(SIGBUS, &si, uc);
		if (owned[1].chained.sa_handler != SIG_DFL)
			return;
	} else {
		struct sigaction cur;
		libc_sigaction()(SIGBUS, NULL, &cur);
		if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction) {
			cur.sa_sigaction(SIGBUS, &si, uc);
			return;
		}
		if (cur.sa_handler != SIG_DFL && cur.sa_handler != SIG_IGN) {
			cur.sa_handler(SIGBUS);
			return;
		}
	}
	/* Nobody handles SIGBUS: die of it, now. */
	struct sigaction dfl;
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	libc_sigaction()(SIGBUS, &dfl, NULL);
	sigset_t bus;
	sigemptyset(&bus);
	sigaddset(&bus, SIGBUS);
	pthread_sigmask(SIG_UNBLOCK, &bus, NULL);
	raise(SIGBUS);
}

/* ---- the interposed C library entry points ---- */

/* -1 until the first call reads UPAGER_SIGNAL_CHAIN; then 1 (chain) or 0. */
static _Atomic int chain_signals = -1;

static NOT_INSTRUMENTED bool chaining(void)
{
	int on = atomic_load_explicit(&chain_signals, memory_order_relaxed);

	if (on < 0) {
		/* Read once: sigaction() may be called from a signal handler,
		 * and the environment does not change under a running program
		 * in a way this switch should follow. */
		const char *v = getenv("UPAGER_SIGNAL_CHAIN");
		on = !(v && v[0] == '0' && v[1] == '\0');
		atomic_store_explicit(&chain_signals, on, memory_order_relaxed);
	}
	return on;
}

NOT_INSTRUMENTED UPAGER_API int sigaction(int sig, const struct sigaction *act,
					  struct sigaction *old)
{
	int i = slot(sig);

	if (i >= 0 && atomic_load_explicit(&owned_flag[i], memory_order_acquire) && chaining()) {
		pthread_mutex_lock(&owned_lock);
		if (owned[i].users > 0) {
			if (old)
				*old = owned[i].chained;
			if (act)
				owned[i].chained = *act;
			pthread_mutex_unlock(&owned_lock);
			return 0;
		}
		pthread_mutex_unlock(&owned_lock);
	}
	sigaction_fn real = libc_sigaction();
	if (!real) {
		errno = ENOSYS;
		return -1;
	}
	return real(sig, act, old);
}

/* Every way glibc has to install a handler comes through sigaction(),
 * where the pager's ownership sees it: signal(), System V's one-shot
 * signal() (what signal() is under strict ISO C: zstd's crash handler
 * for SIGBUS took every fast-mode fault when it went to the kernel),
 * BSD's, and sigset(). */
sighandler_t bsd_signal(int sig, sighandler_t handler);

static NOT_INSTRUMENTED sighandler_t install(int sig, sighandler_t handler, int flags,
					     bool block_self)
{
	struct sigaction sa, old;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handler;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	if (block_self && sig > 0 && sig < NSIG)
		sigaddset(&sa.sa_mask, sig);
	if (sigaction(sig, &sa, &old) < 0)
		return SIG_ERR;
	return old.sa_handler;
}

NOT_INSTRUMENTED UPAGER_API sighandler_t signal(int sig, sighandler_t handler)
{
	/* glibc's signal(): BSD semantics. */
	return install(sig, handler, SA_RESTART, true);
}

NOT_INSTRUMENTED UPAGER_API sighandler_t __sysv_signal(int sig, sighandler_t handler)
{
	return install(sig, handler, SA_RESETHAND | SA_NODEFER, false);
}

NOT_INSTRUMENTED UPAGER_API sighandler_t sysv_signal(int sig, sighandler_t handler)
{
	return install(sig, handler, SA_RESETHAND | SA_NODEFER, false);
}

NOT_INSTRUMENTED UPAGER_API sighandler_t bsd_signal(int sig, sighandler_t handler)
{
	return install(sig, handler, SA_RESTART, true);
}

/* sigset(): SIG_HOLD blocks the signal and leaves the handler; anything
 * else installs it and unblocks the signal. Returns SIG_HOLD if the
 * signal was blocked before. */
NOT_INSTRUMENTED UPAGER_API sighandler_t sigset(int sig, sighandler_t disp)
{
	sigset_t one, was;
	struct sigaction cur;

	if (sig <= 0 || sig >= NSIG) {
		errno = EINVAL;
		return SIG_ERR;
	}
	sigemptyset(&one);
	sigaddset(&one, sig);
	if (disp == SIG_HOLD) {
		if (sigaction(sig, NULL, &cur) < 0 || pthread_sigmask(SIG_BLOCK, &one, &was))
			return SIG_ERR;
		return sigismember(&was, sig) ? SIG_HOLD : cur.sa_handler;
	}
	sighandler_t old = install(sig, disp, 0, false);
	if (old == SIG_ERR || pthread_sigmask(SIG_UNBLOCK, &one, &was))
		return SIG_ERR;
	return sigismember(&was, sig) ? SIG_HOLD : old;
}
