// SPDX-License-Identifier: MIT
/*
 * The program's small and medium blocks (below shim_big_min): the paged
 * heap of issue 12 (upager_heap_open, upager_malloc, ...: mimalloc with a
 * region as its arena), behind the thin interface shim-malloc.c uses.
 *
 * The heap's address space is UPAGER_RUN_HEAP bytes (default 0: the
 * library's default, the swap capacity plus the budget, at most 64 GiB).
 * Every call runs with shim_inside set (shim-malloc.c), so whatever the
 * heap and mimalloc allocate or map for themselves is glibc's or the
 * kernel's memory.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "shim.h"

static upager_heap_t *heap;

int heap_open(upager_t *p)
{
	const char *v = getenv("UPAGER_RUN_HEAP");
	uint64_t max = 0;

	if (v && upager_parse_size(v, &max) < 0)
		max = 0;
	return upager_heap_open(p, max, &heap);
}

bool heap_owns(const void *addr)
{
	return heap && upager_heap_owns(heap, addr);
}

void *heap_alloc(size_t n, size_t align)
{
	if (align <= 16)
		return upager_malloc(heap, n);
	return upager_aligned_alloc(heap, align, n);
}

void *heap_realloc(void *ptr, size_t n)
{
	return upager_realloc(heap, ptr, n);
}

void heap_free(void *ptr)
{
	upager_free(heap, ptr);
}

size_t heap_usable(const void *ptr)
{
	return upager_malloc_usable_size(heap, ptr);
}

void heap_print_stats(int fd)
{
	upager_heap_stats_t st;
	char buf[512];
	int n;

	if (!heap)
		return;
	st.size = sizeof(st);
	if (upager_heap_stats(heap, &st) < 0)
		return;
	n = snprintf(buf, sizeof(buf),
		     "heap_bytes_live: %llu\nheap_blocks_live: %llu\nheap_bytes_held: %llu\n"
		     "heap_address_space_used: %llu\nheap_mallocs: %llu\nheap_frees: %llu\n"
		     "heap_failed: %llu\nheap_bad_frees: %llu\n",
		     (unsigned long long)st.bytes_live, (unsigned long long)st.blocks_live,
		     (unsigned long long)st.bytes_held, (unsigned long long)st.address_space_used,
		     (unsigned long long)st.mallocs, (unsigned long long)st.frees,
		     (unsigned long long)st.failed, (unsigned long long)st.bad_frees);
	if (write(fd, buf, (size_t)n) < 0)
		return;
}

size_t heap_used_span(void)
{
	upager_heap_stats_t st;

	st.size = sizeof(st);
	if (!heap || upager_heap_stats(heap, &st) < 0)
		return 0;
	return (size_t)st.address_space_used;
}
