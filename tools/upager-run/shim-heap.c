// SPDX-License-Identifier: MIT
/*
 * The program's small and medium blocks: the thin interface shim-malloc.c
 * allocates through (heap_open, heap_alloc, heap_free, heap_usable,
 * heap_owns).
 *
 * INTERIM: the paged heap of issue 12 (upager_heap_open, upager_malloc,
 * ...) is being written on another branch. Until it is merged here, blocks
 * below shim_big_min stay in glibc's allocator (not paged, not counted in
 * the budget), and shim_big_min is lowered to 64 KiB so that every block
 * of 64 KiB or more is paged in the arena. heap_owns() is false, so a
 * block from here is freed by glibc, as the bootstrap blocks are.
 */
#include "config.h"

#include "shim.h"

int heap_open(upager_t *p)
{
	(void)p;
	if (shim_big_min > (64u << 10))
		shim_big_min = 64u << 10;
	return 0;
}

bool heap_owns(const void *addr)
{
	(void)addr;
	return false;
}

void *heap_alloc(size_t n, size_t align)
{
	return align <= 16 ? __libc_malloc(n) : __libc_memalign(align, n);
}

void heap_free(void *ptr)
{
	__libc_free(ptr);
}

size_t heap_usable(const void *ptr)
{
	return shim_libc_usable((void *)ptr);
}

void heap_print_stats(int fd)
{
	(void)fd;
}
