// SPDX-License-Identifier: MIT
/*
 * A fault outside every region behaves as it would without upager: a NULL
 * dereference, or a pointer into an unmapped region, kills the program
 * with SIGSEGV, whatever the backend and mode.
 */
#include "testutil.h"

#include <signal.h>
#include <string.h>
#include <sys/wait.h>

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

static void expect_segv(void (*fn)(void *), const char *what)
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
	expect_segv(null_deref, "NULL dereference");
	expect_segv(after_unmap, "access after upager_unmap");
}

int main(void)
{
	return for_each_backend(body, NULL);
}
