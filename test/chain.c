// SPDX-License-Identifier: MIT
/*
 * Signal chaining: a program with its own SIGSEGV handler, installed
 * before or after the pager opens, with sigaction(), signal() or
 * libsigsegv's sigsegv_install_handler(), gets every fault outside the
 * pager's regions and none of the faults the pager resolves, on every
 * backend, while the pager is busy paging. The program's handler does
 * what such handlers do: it makes the faulting page accessible and
 * returns, and the wild access then completes.
 */
#include "testutil.h"

#include <signal.h>
#include <sigsegv.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PS 4096u
#define PAGES 256u

static const struct test_backend *current;
static char *wild;        /* a PROT_NONE page of the program's own */
static volatile int seen; /* faults the program's handler saw */
static void *volatile seen_addr;

static int fix_wild(void *addr)
{
	if ((char *)addr < wild || (char *)addr >= wild + PS)
		return 0; /* not ours either: crash, as without upager */
	seen++;
	seen_addr = addr;
	mprotect(wild, PS, PROT_READ | PROT_WRITE);
	return 1;
}

static void on_segv_info(int sig, siginfo_t *si, void *uc)
{
	if (!fix_wild(si->si_addr))
		abort();
}

static void on_segv_plain(int sig)
{
	/* signal()-style handlers do not get the address: the wild page is
	 * the only thing that can fault for the program here. */
	seen++;
	mprotect(wild, PS, PROT_READ | PROT_WRITE);
}

static int on_segv_libsigsegv(void *addr, int serious)
{
	return fix_wild(addr);
}

enum how { BY_SIGACTION, BY_SIGNAL, BY_LIBSIGSEGV };
static const char *const how_names[] = { "sigaction", "signal", "libsigsegv" };

static void install(enum how how)
{
	struct sigaction sa;

	switch (how) {
	case BY_SIGACTION:
		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = on_segv_info;
		sa.sa_flags = SA_SIGINFO;
		CHECK_EQ(sigaction(SIGSEGV, &sa, NULL), 0);
		break;
	case BY_SIGNAL:
		CHECK(signal(SIGSEGV, on_segv_plain) != SIG_ERR);
		break;
	case BY_LIBSIGSEGV:
		CHECK_EQ(sigsegv_install_handler(on_segv_libsigsegv), 0);
		break;
	}
}

static void uninstall(enum how how)
{
	if (how == BY_LIBSIGSEGV)
		sigsegv_deinstall_handler();
	else
		signal(SIGSEGV, SIG_DFL);
}

static void one(enum how how, bool before)
{
	upager_config_t cfg;
	upager_t *p;
	unsigned char *a;

	wild = mmap(NULL, PS, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(wild != MAP_FAILED);
	seen = 0;
	if (before)
		install(how);
	test_config(&cfg, current);
	cfg.ram_bytes = 32 * PS;
	CHECK_OK(upager_open(&cfg, &p));
	CHECK_OK(upager_map(p, PAGES * PS, 0, (void **)&a));
	if (!before)
		install(how);
	/* Heavy paging: none of these faults may reach the handler. */
	for (int round = 0; round < 2; round++)
		for (size_t pg = 0; pg < PAGES; pg++)
			a[pg * PS + round] = (unsigned char)pg;
	CHECK_EQ(seen, 0);
	/* The wild access: exactly one fault for the program. */
	((volatile char *)wild)[100] = 5; /* volatile: keep it before the check */
	CHECK_EQ(seen, 1);
	CHECK_EQ(((volatile char *)wild)[100], 5);
	if (how != BY_SIGNAL && seen_addr != wild + 100)
		FAILF("%s, %s %s open: handler saw %p, expected %p", current->label, how_names[how],
		      before ? "before" : "after", seen_addr, (void *)(wild + 100));
	for (size_t pg = 0; pg < PAGES; pg++)
		CHECK_EQ(a[pg * PS + 1], (unsigned char)pg);
	CHECK_EQ(seen, 1);
	CHECK_OK(upager_close(p));
	uninstall(how);
	munmap(wild, PS);
	printf("  %s: handler by %s, installed %s open: 1 fault seen, paging unseen\n",
	       current->label, how_names[how], before ? "before" : "after");
}

static void body(const struct test_backend *b, void *arg)
{
	current = b;
	for (int how = BY_SIGACTION; how <= BY_LIBSIGSEGV; how++) {
		one((enum how)how, true);
		one((enum how)how, false);
	}
}

int main(void)
{
	return for_each_backend(body, NULL);
}
