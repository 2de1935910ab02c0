// SPDX-License-Identifier: MIT
/*
 * A fault outside every region behaves as it would without upager: a NULL
 * dereference, or a pointer into an unmapped region, kills the program
 * with SIGSEGV, whatever the backend and mode.
 */
#include "testutil.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const struct test_backend *current;

static upager_t *open_and_use(unsigned char **a)
{
	upager_config_t cfg;
	upager_t *p;

	test_config(&cfg, current);
	cfg.ram_bytes = 1 << 20;
	CHECK_OK(upager_open(&cfg, &p));
	CHECK_OK(upager_map(p, 4 << 20, 0, (void **)a));
	for (size_t i = 0; i < (4u << 20); i += 4096)
		(*a)[i] = 7; /* paging is under way when the bad access comes */
	return p;
}

static void null_deref(void *arg)
{
	unsigned char *a;
	open_and_use(&a);
	/* A field of a NULL struct pointer (arg is NULL): the MMU's fault,
	 * not a sanitizer's null check, is what this test is about. */
	*(volatile int *)((char *)arg + 16) = 1;
	_exit(3);
}

static void after_unmap(void *arg)
{
	unsigned char *a;
	upager_t *p = open_and_use(&a);
	CHECK_OK(upager_unmap(p, a));
	a[4096] = 1;
	_exit(3);
}

static unsigned char *racing_area;

/* Reads pages of the region in a scattered order, for ever: nearly every
 * read is a miss served from swap. */
static void *read_for_ever(void *arg)
{
	uint64_t rng = (uintptr_t)arg | 1, sum = 0;
	for (;;)
		sum += ((volatile unsigned char *)racing_area)[(rng_next(&rng) % 1024) * 4096];
	return (void *)(uintptr_t)sum;
}

/*
 * A thread faults on the region while another unmaps it (odd arg) or
 * closes the pager (even arg): the program's bug. An unmap must end as it
 * would without upager, in SIGSEGV once the memory is gone. A close may
 * also end in SIGBUS: a fault's SIGBUS that the kernel raised while the
 * region was registered reaches the program's handler (here, the default
 * action) if the thread runs again only after the close gave the signal
 * back. Either way upager reports no failed fault: one it took while the
 * region went away is not one.
 */
static void unmap_while_faulting(void *arg)
{
	upager_config_t cfg;
	upager_t *p;
	pthread_t t;

	test_config(&cfg, current);
	cfg.ram_bytes = 256 << 10;
	CHECK_OK(upager_open(&cfg, &p));
	CHECK_OK(upager_map(p, 4 << 20, 0, (void **)&racing_area));
	for (size_t i = 0; i < (4u << 20); i += 4096)
		racing_area[i] = 7;
	CHECK(pthread_create(&t, NULL, read_for_ever, arg) == 0);
	usleep(200 + (uintptr_t)arg % 3000);
	if ((uintptr_t)arg & 1)
		CHECK_OK(upager_unmap(p, racing_area));
	else
		CHECK_OK(upager_close(p));
	pthread_join(t, NULL);
	_exit(3);
}

static void expect_death(void (*fn)(void *), void *arg, const char *what, bool or_sigbus)
{
	char *err;
	int status = run_child(fn, arg, &err);
	bool died = died_of(status, err, SIGSEGV) || (or_sigbus && died_of(status, err, SIGBUS));

	if (!died || strstr(err, "upager:"))
		FAILF("%s, %s: child status %#x, expected SIGSEGV%s and no report from upager; "
		      "stderr:\n%s",
		      current->label, what, status, or_sigbus ? " or SIGBUS" : "", err);
	free(err);
}

static void body(const struct test_backend *b, void *arg)
{
	current = b;
	expect_death(null_deref, NULL, "NULL dereference", false);
	expect_death(after_unmap, NULL, "access after upager_unmap", false);
	/* The race is narrow: many tries, each at another time. */
	for (uintptr_t seed = 1; seed <= 40; seed++) {
		bool unmap = seed & 1;
		expect_death(unmap_while_faulting, (void *)(seed * 7919),
			     unmap ? "unmap while faulting" : "close while faulting", !unmap);
	}
}

int main(void)
{
	return for_each_backend(body, NULL);
}
