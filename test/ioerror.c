// SPDX-License-Identifier: MIT
/*
 * Swap I/O errors, injected below the io_uring engine (white-box):
 * - a failed read of a page's only copy loses that page: the faulting
 *   thread dies of SIGBUS with a message, later accesses too, and the
 *   other pages are untouched;
 * - failed writes lose nothing: victims stay resident and dirty, the
 *   thread that needed a frame gets the error, and once the device works
 *   again every byte is still there.
 */
#include "testutil.h"
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>

#define PS 4096u
#define BUDGET_PAGES 32u
#define PAGES 128u

static const struct test_backend *current;

static upager_t *open_filled(unsigned char **a)
{
	upager_config_t cfg;
	upager_t *p;

	test_config(&cfg, current);
	cfg.ram_bytes = BUDGET_PAGES * PS;
	CHECK_OK(upager_open(&cfg, &p));
	CHECK_OK(upager_map(p, PAGES * PS, 0, (void **)a));
	for (size_t pg = 0; pg < PAGES; pg++)
		memset(*a + pg * PS, (int)pg + 1, PS);
	return p;
}

static void read_error_child(void *arg)
{
	unsigned char *a;
	upager_t *p = open_filled(&a);

	/* Most pages are in swap now (32 frames for 128 pages): reading
	 * them all must hit one whose read fails. */
	p->io.fault_inject_ops = 1u << IO_READ;
	p->io.fault_inject = -EIO;
	for (size_t pg = 0; pg < PAGES; pg++) {
		volatile unsigned char c = a[pg * PS];
		(void)c;
	}
	_exit(3);
}

static void write_error_child(void *arg)
{
	unsigned char *a;
	upager_t *p = open_filled(&a);

	p->io.fault_inject_ops = 1u << IO_WRITE;
	p->io.fault_inject = -EIO;
	/* Reading the early pages back needs frames; every resident page is
	 * dirty and cannot be written: SIGBUS. */
	for (size_t pg = 0; pg < PAGES; pg++)
		((volatile unsigned char *)a)[pg * PS]++;
	_exit(3);
}

static void expect_sigbus(void (*fn)(void *), const char *cause)
{
	char *err;
	int status = run_child(fn, NULL, &err);

	if (!died_of(status, err, SIGBUS))
		FAILF("%s: child status %#x, expected SIGBUS; stderr:\n%s", current->label, status,
		      err);
	if (!strstr(err, cause) || !strstr(err, "page offset 0x"))
		FAILF("%s: message does not name '%s' and the page:\n%s", current->label, cause,
		      err);
	printf("  %s: %s", current->label, strstr(err, "upager:"));
	free(err);
}

static void in_process(void)
{
	unsigned char *a;
	upager_t *p = open_filled(&a);
	upager_stats_t st;

	/* Write errors: touching pages for writing keeps every resident
	 * page dirty, so soon no frame can be freed and the touch fails;
	 * nothing is lost. (Read-only touches would make clean pages, which
	 * leave without a write: the pager would carry on.) */
	p->io.fault_inject_ops = 1u << IO_WRITE;
	p->io.fault_inject = -EIO;
	int err = 0;
	for (size_t pg = 0; pg < PAGES && !err; pg++)
		err = upager_touch(p, a + pg * PS, PS, 1);
	CHECK_ERR(err, -EIO);
	CHECK(strstr(upager_last_error(), "page at"));
	p->io.fault_inject = 0;
	for (size_t pg = 0; pg < PAGES; pg++)
		for (size_t i = 0; i < PS; i += 256)
			if (a[pg * PS + i] != (unsigned char)(pg + 1))
				FAILF("%s: page %zu byte %zu lost after write errors",
				      current->label, pg, i);
	CHECK_OK(upager_stats(p, &st));
	CHECK_CMP(st.io_errors, >, 0);

	/* Read errors: the first page whose read fails is lost for good
	 * (poisoned); the others are not. */
	p->io.fault_inject_ops = 1u << IO_READ;
	p->io.fault_inject = -EIO;
	size_t lost = PAGES;
	for (size_t pg = 0; pg < PAGES && lost == PAGES; pg++)
		if (upager_touch(p, a + pg * PS, 1, 0) == -EIO)
			lost = pg;
	CHECK_CMP(lost, <, PAGES);
	p->io.fault_inject = 0;
	CHECK_ERR(upager_touch(p, a + lost * PS, 1, 0), UPAGER_EPOISON);
	for (size_t pg = 0; pg < PAGES; pg++)
		if (pg != lost)
			CHECK_EQ(a[pg * PS + 100], pg + 1);
	CHECK_OK(upager_stats(p, &st));
	CHECK_CMP(st.io_errors, >=, 2);
	CHECK_OK(upager_close(p));
}

static void body(const struct test_backend *b, void *arg)
{
	current = b;
	expect_sigbus(read_error_child, "swap I/O error");
	expect_sigbus(write_error_child, "swap I/O error");
	in_process();
}

int main(void)
{
	return for_each_backend(body, NULL);
}
