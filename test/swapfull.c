// SPDX-License-Identifier: MIT
/*
 * A swap file too small for the data: the pager must not turn the pages
 * it cannot write into zeros. The faulting thread dies of SIGBUS with a
 * message naming the region, the page offset and the cause, and the error
 * callback is called first. Before that point every byte is intact.
 */
#include "testutil.h"

#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define PS 4096u

static const struct test_backend *current;
static volatile int callback_calls;
static int callback_err;

static void on_error(void *arg, const upager_error_info_t *info)
{
	callback_calls++;
	callback_err = info->err;
	static const char msg[] = "callback: error reported\n";
	ssize_t unused = write(STDERR_FILENO, msg, sizeof(msg) - 1);
	(void)unused;
}

static void child(void *arg)
{
	upager_config_t cfg;
	upager_t *p;
	unsigned char *a;

	test_config(&cfg, current);
	cfg.ram_bytes = 16 * PS;
	cfg.swap_max = 48 * PS; /* room for 48 pages: 64 fit in all */
	cfg.on_error = on_error;
	CHECK_OK(upager_open(&cfg, &p));
	CHECK_OK(upager_map(p, 1024 * PS, 0, (void **)&a));
	/* 48 + 16 pages fit: write them, read them back intact. */
	for (size_t pg = 0; pg < 56; pg++)
		memset(a + pg * PS, (int)(pg + 1), PS);
	for (size_t pg = 0; pg < 56; pg++)
		for (size_t i = 0; i < PS; i += 512)
			if (a[pg * PS + i] != (unsigned char)(pg + 1))
				FAILF("page %zu byte %zu lost before the swap filled up", pg, i);
	fprintf(stderr, "child: first pages intact\n");
	/* Keep going until there is no room: this must end in SIGBUS. */
	for (size_t pg = 56; pg < 1024; pg++)
		memset(a + pg * PS, (int)(pg + 1), PS);
	fprintf(stderr, "child: survived a full swap\n");
	_exit(3);
}

static void body(const struct test_backend *b, void *arg)
{
	char *err;
	int status;

	current = b;
	status = run_child(child, NULL, &err);
	if (!died_of(status, err, SIGBUS))
		FAILF("%s: child status %#x, expected death by SIGBUS; stderr:\n%s", b->label,
		      status, err);
	CHECK(strstr(err, "child: first pages intact"));
	CHECK(strstr(err, "callback: error reported"));
	CHECK(strstr(err, "upager: SIGBUS at 0x"));
	CHECK(strstr(err, "region 0x"));
	CHECK(strstr(err, "page offset 0x"));
	CHECK(strstr(err, "swap full"));
	printf("  %s: %s", b->label, strstr(err, "upager: SIGBUS"));
	free(err);
}

int main(void)
{
	return for_each_backend(body, NULL);
}
