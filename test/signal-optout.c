// SPDX-License-Identifier: MIT
/*
 * UPAGER_SIGNAL_CHAIN=0 turns the sigaction() interposition off: a handler
 * the program installs after the pager opened replaces upager's and sees
 * every fault first; passing them on to the old handler keeps the pager
 * working (contents checked under eviction). Without the switch the same
 * program's handler would see none of the pager's faults.
 */
#include "testutil.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct sigaction upagers;
static volatile sig_atomic_t seen;

static void first(int sig, siginfo_t *si, void *uc)
{
	seen++;
	upagers.sa_sigaction(sig, si, uc);
}

static unsigned run(int expect_first)
{
	upager_config_t cfg;
	upager_t *p;
	unsigned char *a;
	const size_t len = 8u << 20;
	struct sigaction mine;

	upager_config_init(&cfg);
	cfg.backend = "sigsegv";
	cfg.ram_bytes = 1u << 20;
	CHECK_OK(upager_open(&cfg, &p));
	CHECK_OK(upager_map(p, len, 0, (void **)&a));

	memset(&mine, 0, sizeof(mine));
	mine.sa_sigaction = first;
	mine.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&mine.sa_mask);
	CHECK(sigaction(SIGSEGV, &mine, &upagers) == 0);
	if (expect_first) /* upager's own handler came back as the old one */
		CHECK(upagers.sa_flags & SA_SIGINFO);
	seen = 0;

	for (size_t i = 0; i < len; i += 4096)
		a[i] = (unsigned char)(i >> 12) | 1;
	for (size_t i = 0; i < len; i += 4096)
		CHECK_EQ(a[i], (unsigned char)((i >> 12) | 1));

	unsigned faults = (unsigned)seen;
	/* Put upager's handler back before the pager closes, as the
	 * documentation asks of a program that opts out. */
	struct sigaction back;
	CHECK(sigaction(SIGSEGV, &upagers, &back) == 0);
	CHECK_OK(upager_close(p));
	if (expect_first)
		CHECK(faults > 0); /* fault-around maps several pages per fault */
	else
		CHECK_EQ(faults, 0u);
	return faults;
}

int main(int argc, char **argv)
{
	const char *v = getenv("UPAGER_SIGNAL_CHAIN");

	if (!v || strcmp(v, "0") != 0) {
		/* The switch is read at the first sigaction() call, which a
		 * sanitizer's start-up may make before main: run once with
		 * the interposition on, then again with it off. */
		run(0);
		setenv("UPAGER_SIGNAL_CHAIN", "0", 1);
		execv("/proc/self/exe", argv);
		FAILF("execv: %s", strerror(errno));
	}
	(void)argc;
	unsigned faults = run(1);
	printf("UPAGER_SIGNAL_CHAIN=0: the program's handler saw %u faults first\n", faults);
	return 0;
}
