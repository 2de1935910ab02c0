// SPDX-License-Identifier: MIT
/* A program's own SIGSEGV handler, on a sigaltstack that lives on the heap, still gets its faults under upager-run (test/runner.sh). */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "runner-util.h"

static sigjmp_buf env;
static volatile void *fault_addr;
static volatile int faults;

static void handler(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	faults++;
	fault_addr = si->si_addr;
	siglongjmp(env, sig);
}

int main(void)
{
	struct sigaction sa;
	stack_t ss;
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);

	/* The alternate stack on the heap (paged under upager-run). */
	ss.ss_size = 1 << 20;
	ss.ss_sp = malloc(ss.ss_size);
	ss.ss_flags = 0;
	CHECK(ss.ss_sp);
	memset(ss.ss_sp, 0, ss.ss_size);
	expect_paged(ss.ss_sp, "the signal stack");
	CHECK_EQ(sigaltstack(&ss, NULL), 0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = handler;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	CHECK_EQ(sigaction(SIGSEGV, &sa, NULL), 0);
	CHECK_EQ(sigaction(SIGBUS, &sa, NULL), 0);

	/* A guard page of the kernel's, and one in paged memory. */
	char *guard = mmap(NULL, pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(guard != MAP_FAILED);
	char *big = mmap(NULL, 4 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(big != MAP_FAILED);
	memset(big, 7, 4 << 20);
	CHECK_EQ(mprotect(big + pg, pg, PROT_NONE), 0);
	char *targets[] = { guard, big + pg, (char *)16 };
	for (int round = 0; round < 50; round++) {
		for (int i = 0; i < 3; i++) {
			volatile char *t = targets[i];
			if (sigsetjmp(env, 1) == 0) {
				*t = 1;
				FAILF("no fault at %p", (void *)t);
			}
			if (fault_addr != (void *)t)
				FAILF("fault at %p reported as %p", (void *)t, (void *)fault_addr);
		}
		/* Paged memory around keeps working between faults. */
		for (size_t j = 2 * pg; j < (4u << 20); j += pg)
			CHECK_EQ(big[j], 7);
	}
	ss.ss_flags = SS_DISABLE;
	CHECK_EQ(sigaltstack(&ss, NULL), 0);
	free(ss.ss_sp);
	munmap(big, 4 << 20);
	munmap(guard, pg);
	printf("own SIGSEGV handler: %d faults caught\n", faults);
	return 0;
}
