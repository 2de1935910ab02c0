// SPDX-License-Identifier: MIT
/*
 * upager_protect(): read-only ranges and guard pages on every backend. A
 * write to a read-only page, or any access to a guard page, reaches the
 * program as an ordinary SIGSEGV with si_addr set to the address; without
 * a handler the child dies of SIGSEGV. Protected pages keep their
 * contents and are paged like the others (evicted and read back while
 * protected), and are writable again once the protection is lifted.
 */
#include "testutil.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define PS 4096u
#define PAGES 512u /* 8 times the budget */

static const struct test_backend *current;
static sigjmp_buf escape;
static void *volatile caught_addr;
static volatile int caught;

static void on_segv(int sig, siginfo_t *si, void *uc)
{
	caught_addr = si->si_addr;
	caught++;
	siglongjmp(escape, 1);
}

static upager_t *open_filled(unsigned char **a)
{
	upager_config_t cfg;
	upager_t *p;

	test_config(&cfg, current);
	cfg.ram_bytes = 64 * PS;
	CHECK_OK(upager_open(&cfg, &p));
	CHECK_OK(upager_map(p, PAGES * PS, 0, (void **)a));
	for (size_t pg = 0; pg < PAGES; pg++)
		memset(*a + pg * PS, (int)(pg & 0xff) | 1, PS);
	return p;
}

/* Expects the access to fault with si_addr == addr. */
static void expect_violation(volatile unsigned char *addr, bool write, const char *what)
{
	caught = 0;
	caught_addr = NULL;
	if (sigsetjmp(escape, 1) == 0) {
		if (write)
			*addr = 0x77;
		else
			(void)*addr;
		FAILF("%s, %s: the access went through", current->label, what);
	}
	CHECK_EQ(caught, 1);
	if (caught_addr != (void *)addr)
		FAILF("%s, %s: si_addr %p, expected %p", current->label, what, caught_addr,
		      (void *)addr);
}

static void with_handler(void)
{
	unsigned char *a;
	upager_t *p = open_filled(&a);
	struct sigaction sa, old;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_segv;
	sa.sa_flags = SA_SIGINFO;
	CHECK_EQ(sigaction(SIGSEGV, &sa, &old), 0);

	/* Pages 10-19 read-only, 30-31 guard pages. */
	CHECK_OK(upager_protect(p, a + 10 * PS, 10 * PS, UPAGER_PROT_READ));
	CHECK_OK(upager_protect(p, a + 30 * PS, 2 * PS, UPAGER_PROT_NONE));
	expect_violation(a + 12 * PS + 123, true, "write to a read-only page");
	expect_violation(a + 30 * PS + 5, false, "read of a guard page");
	expect_violation(a + 31 * PS + 4000, true, "write to a guard page");
	/* Reads of read-only pages and accesses next to them are fine. */
	CHECK_EQ(a[12 * PS + 123], 12 | 1);
	a[9 * PS] = 9;
	a[20 * PS] = 20;
	/* Paged while protected: push them all out and read them back. */
	for (size_t pg = 40; pg < PAGES; pg++)
		a[pg * PS] ^= 1;
	for (size_t pg = 10; pg < 20; pg++)
		for (size_t i = 0; i < PS; i += 512)
			CHECK_EQ(a[pg * PS + i], (pg & 0xff) | 1);
	expect_violation(a + 15 * PS, true, "write to an evicted read-only page");
	expect_violation(a + 30 * PS, false, "read of an evicted guard page");
	/* Lift the protection: writable, contents intact. */
	CHECK_OK(upager_protect(p, a + 10 * PS, 22 * PS, UPAGER_PROT_READ | UPAGER_PROT_WRITE));
	a[12 * PS + 123] = 0x42;
	CHECK_EQ(a[12 * PS + 123], 0x42);
	CHECK_EQ(a[30 * PS + 5], 30 | 1);
	CHECK_EQ(caught, 1); /* nothing new was caught */

	/* Bad arguments. */
	CHECK_ERR(upager_protect(p, a + 1, PS, UPAGER_PROT_READ), -EINVAL);
	CHECK_ERR(upager_protect(p, a, PS, UPAGER_PROT_WRITE), -EINVAL);
	CHECK_ERR(upager_protect(p, a, PS, 0x10), -EINVAL);
	CHECK_ERR(upager_protect(p, a + PAGES * PS, PS, UPAGER_PROT_READ), UPAGER_ENOREGION);
	/* A pin that needs write access to a read-only page is refused. */
	CHECK_OK(upager_protect(p, a, PS, UPAGER_PROT_READ));
	CHECK_ERR(upager_pin(p, a, PS, 1), -EACCES);
	CHECK_OK(upager_pin(p, a, PS, 0));
	CHECK_OK(upager_unpin(p, a, PS));

	CHECK_EQ(sigaction(SIGSEGV, &old, NULL), 0);
	CHECK_OK(upager_close(p));
}

static void die_writing_read_only(void *arg)
{
	unsigned char *a;
	upager_t *p = open_filled(&a);

	CHECK_OK(upager_protect(p, a + PS, PS, UPAGER_PROT_READ));
	a[PS + 7] = 1;
	_exit(3);
}

static void die_reading_guard(void *arg)
{
	unsigned char *a;
	upager_t *p = open_filled(&a);

	CHECK_OK(upager_protect(p, a, PS, UPAGER_PROT_NONE));
	volatile unsigned char c = a[100];
	(void)c;
	_exit(3);
}

static void expect_death(void (*fn)(void *), const char *what)
{
	char *err;
	int status = run_child(fn, NULL, &err);

	if (!died_of(status, err, SIGSEGV))
		FAILF("%s, %s: child status %#x, expected SIGSEGV; stderr:\n%s", current->label,
		      what, status, err);
	free(err);
}

static void body(const struct test_backend *b, void *arg)
{
	current = b;
	with_handler();
	expect_death(die_writing_read_only, "write to a read-only page, no handler");
	expect_death(die_reading_guard, "read of a guard page, no handler");
}

int main(void)
{
	return for_each_backend(body, NULL);
}
