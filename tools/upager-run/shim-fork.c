// SPDX-License-Identifier: MIT
/*
 * fork(). Regions are MAP_SHARED memfd mappings marked MADV_DONTFORK, so
 * a plain fork() leaves the child without the paged memory at all.
 * (Work in progress: see the README's "Running programs".)
 */
#include "config.h"

#include "shim.h"

void fork_init(void)
{
}
