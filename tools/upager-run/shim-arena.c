// SPDX-License-Identifier: MIT
/*
 * The arena: one big upager region carved into page-granular extents for
 * the program's large anonymous mmaps and its largest malloc blocks.
 *
 * Why one region and not one per mmap: every region costs a memfd (a file
 * descriptor for as long as it lives) and two VMAs; Python alone maps an
 * arena per MiB of small objects, which would run into the descriptor
 * limit at a few GiB. One region reserved once (64 GiB of address space
 * by default, UPAGER_RUN_ARENA, halved until the kernel accepts it) costs
 * one descriptor whatever the program does.
 *
 * Extents are taken first-fit from an address-ordered list of free
 * extents, else from the top; a freed extent is dropped with
 * upager_advise(DONTNEED) (its frames and swap slots are freed and it
 * reads as zero again, as a fresh mmap must) and merged with its free
 * neighbours. A bitmap of allocated pages makes a free idempotent page by
 * page, so munmap of a part, of a range twice, or of a range that
 * straddles extents behaves as the kernel's does. All bookkeeping lives in
 * glibc's memory and in a kernel anonymous mapping, never in the region.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim.h"

struct fext {
	size_t start, len; /* in pages */
	struct fext *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uintptr_t base;
static size_t npages, page, top, used_pages;
static unsigned shift;
static uint64_t *bits;  /* 1 = allocated */
static uint64_t *pbits; /* 1 = mprotect()ed to other than read-write */
static struct fext *freelist;

static bool bit_in(const uint64_t *map, size_t i)
{
	return map[i / 64] >> (i % 64) & 1;
}

static bool bit(size_t i)
{
	return bit_in(bits, i);
}

static void set_bits_in(uint64_t *map, size_t start, size_t n, bool on)
{
	size_t i;

	for (i = start; i < start + n; i++) {
		if (on)
			map[i / 64] |= 1ULL << (i % 64);
		else
			map[i / 64] &= ~(1ULL << (i % 64));
	}
}

static void set_bits(size_t start, size_t n, bool on)
{
	set_bits_in(bits, start, n, on);
}

int arena_open(upager_t *p, size_t want)
{
	upager_stats_t st;
	void *addr = NULL;
	int err = -ENOMEM;

	st.size = sizeof(st);
	upager_stats(p, &st);
	page = (size_t)st.page_size;
	shift = (unsigned)__builtin_ctzl(page);
	shim_enter();
	for (; want >= (64u << 20); want /= 2) {
		err = upager_map(p, want, 0, &addr);
		if (err == 0)
			break;
	}
	shim_leave();
	if (err < 0)
		return err;
	base = (uintptr_t)addr;
	npages = want >> shift;
	bits = (void *)syscall(SYS_mmap, NULL, (npages + 63) / 64 * 8 * 2, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (bits == MAP_FAILED) {
		bits = NULL;
		return -ENOMEM;
	}
	pbits = bits + (npages + 63) / 64;
	return 0;
}

void arena_forget(void)
{
	if (bits)
		syscall(SYS_munmap, bits, (npages + 63) / 64 * 8 * 2);
	bits = pbits = NULL;
	freelist = NULL;
	base = 0;
	npages = top = used_pages = 0;
}

bool arena_owns(const void *addr)
{
	return (uintptr_t)addr - base < (npages << shift) && base;
}

size_t arena_page(void)
{
	return page;
}

void arena_range(void **b, size_t *len)
{
	*b = (void *)base;
	*len = npages << shift;
}

void arena_stats(uint64_t *bytes_used, uint64_t *bytes_span)
{
	pthread_mutex_lock(&lock);
	*bytes_used = (uint64_t)used_pages << shift;
	*bytes_span = (uint64_t)top << shift;
	pthread_mutex_unlock(&lock);
}

void *arena_alloc(size_t len)
{
	size_t n = (len + page - 1) >> shift, start;
	struct fext **pp, *f;

	if (!base || n == 0 || len > (npages << shift))
		return NULL;
	pthread_mutex_lock(&lock);
	for (pp = &freelist; (f = *pp); pp = &f->next) {
		if (f->len >= n) {
			start = f->start;
			f->start += n;
			f->len -= n;
			if (!f->len) {
				*pp = f->next;
				__libc_free(f);
			}
			goto got;
		}
	}
	if (top + n > npages) {
		pthread_mutex_unlock(&lock);
		return NULL;
	}
	start = top;
	top += n;
got:
	set_bits(start, n, true);
	used_pages += n;
	pthread_mutex_unlock(&lock);
	return (void *)(base + (start << shift));
}

/* Puts pages [start, start+n) (all allocated until now) on the free
 * list, merging with neighbours and with the top. Lock held. */
static void put_free(size_t start, size_t n)
{
	struct fext **pp = &freelist, *f, *prev = NULL;

	while ((f = *pp) && f->start < start) {
		prev = f;
		pp = &f->next;
	}
	if (prev && prev->start + prev->len == start) {
		prev->len += n;
		if (f && prev->start + prev->len == f->start) {
			prev->len += f->len;
			prev->next = f->next;
			__libc_free(f);
		}
		f = prev;
	} else if (f && start + n == f->start) {
		f->start = start;
		f->len += n;
	} else {
		struct fext *nf = __libc_malloc(sizeof(*nf));

		if (!nf)
			return; /* leaked address space, not memory */
		nf->start = start;
		nf->len = n;
		nf->next = f;
		*pp = nf;
		f = nf;
	}
	/* The last free extent touching the top goes back to it. */
	if (f->start + f->len == top && !f->next) {
		top = f->start;
		for (pp = &freelist; *pp != f; pp = &(*pp)->next)
			;
		*pp = NULL;
		__libc_free(f);
	}
}

void arena_protected(const void *addr, size_t len, bool on)
{
	size_t first = ((uintptr_t)addr - base) >> shift;
	size_t end = (((uintptr_t)addr - base) + len + page - 1) >> shift;

	if (end > npages)
		end = npages;
	pthread_mutex_lock(&lock);
	set_bits_in(pbits, first, end - first, on);
	pthread_mutex_unlock(&lock);
}

/* A freed extent must come back read-write, as a fresh mmap does: the
 * program may have made pages of it read-only, inaccessible or
 * executable before unmapping it. Called with the lock held. */
static void reset_protection(size_t start, size_t n)
{
	size_t i, j;

	for (i = start; i < start + n;) {
		if (!bit_in(pbits, i)) {
			i++;
			continue;
		}
		for (j = i; j < start + n && bit_in(pbits, j); j++)
			;
		/* On userfaultfd this also drops an execute right. */
		upager_protect(shim_pager, (void *)(base + (i << shift)), (j - i) << shift,
			       UPAGER_PROT_READ | UPAGER_PROT_WRITE);
		set_bits_in(pbits, i, j - i, false);
		i = j;
	}
}

void arena_free(void *addr, size_t len)
{
	size_t first, end, i;

	if (!arena_owns(addr))
		return;
	first = ((uintptr_t)addr - base) >> shift;
	end = (((uintptr_t)addr - base) + len + page - 1) >> shift;
	if (end > npages)
		end = npages;
	pthread_mutex_lock(&lock);
	for (i = first; i < end;) {
		size_t j;

		if (!bit(i)) {
			i++;
			continue;
		}
		for (j = i; j < end && bit(j); j++)
			;
		shim_enter();
		reset_protection(i, j - i);
		upager_advise(shim_pager, (void *)(base + (i << shift)), (j - i) << shift,
			      UPAGER_ADVICE_DONTNEED);
		shim_leave();
		set_bits(i, j - i, false);
		used_pages -= j - i;
		put_free(i, j - i);
		i = j;
	}
	pthread_mutex_unlock(&lock);
}

bool arena_grow(void *addr, size_t oldlen, size_t newlen)
{
	size_t start = ((uintptr_t)addr - base) >> shift;
	size_t oldn = (oldlen + page - 1) >> shift, newn = (newlen + page - 1) >> shift;
	size_t from = start + oldn, need = newn - oldn;
	struct fext **pp, *f;
	bool ok = false;

	if (!arena_owns(addr) || newn <= oldn)
		return newn <= oldn;
	pthread_mutex_lock(&lock);
	if (from == top) {
		if (top + need <= npages) {
			top += need;
			ok = true;
		}
	} else {
		for (pp = &freelist; (f = *pp) && f->start < from; pp = &f->next)
			;
		if (f && f->start == from && f->len >= need) {
			f->start += need;
			f->len -= need;
			if (!f->len) {
				*pp = f->next;
				__libc_free(f);
			}
			ok = true;
		}
	}
	if (ok) {
		set_bits(from, need, true);
		used_pages += need;
	}
	pthread_mutex_unlock(&lock);
	return ok;
}
