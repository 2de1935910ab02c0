// SPDX-License-Identifier: MIT
/*
 * System calls on paged memory in the modes where the kernel cannot
 * resolve a fault on it (fast mode, the sigsegv backend, userfaultfd
 * restricted to user-mode faults). (Work in progress.)
 */
#include "config.h"

#include "shim.h"

int shim_pin(const void *addr, size_t len, int write)
{
	(void)addr;
	(void)len;
	(void)write;
	return 0;
}

void shim_unpin(const void *addr, size_t len)
{
	(void)addr;
	(void)len;
}
