// SPDX-License-Identifier: MIT
/*
 * The out-of-core heap: malloc, free and friends whose blocks live in a
 * paged region.
 *
 * The allocator is mimalloc (2.0.9 as Debian 12 ships it), given the
 * region as an exclusive arena: mi_manage_os_memory_ex() over the region
 * (committed, zero, exclusive), and mi_heap_new_in_arena() heaps that take
 * segments from that arena only and return NULL when it is full. We write
 * no allocator; this file is the glue that makes mimalloc's model fit a
 * library heap that any thread may use and that can be closed.
 *
 * mimalloc's model: a mi_heap belongs to the thread that created it, lives
 * in that thread's data (tld), and at thread exit its pages are handed to
 * the thread's backing heap and then abandoned into a global list that
 * other threads' allocations walk. That does not fit here: a heap must be
 * closable (its memory unmapped) while the threads that used it live on,
 * and a thread that exits must not leave segments of a closed heap in a
 * global list. So:
 *
 *   shard 0 .. shard N-1     each: a host thread, a mutex, one mi_heap
 *      |                     created by the host thread (so it lives in
 *      |                     the host's tld, which lives as long as the
 *      |                     heap), used by any thread under the mutex
 *   app thread k  --------> shard k % N for its mallocs
 *   free(p)       --------> the shard that allocated p's segment
 *                           (a byte per 32 MiB segment, set by malloc)
 *
 * Every owner-side mimalloc call on a shard's heap (malloc, and free,
 * which takes mimalloc's local path when the caller is the thread that
 * created the segment) runs under the shard's mutex, so the heap and its
 * tld are never used by two threads at once. mimalloc's cross-thread free
 * is lock-free by design and is safe under the mutex too. Closing tells
 * each host thread to mi_heap_destroy() its heap on its own thread (every
 * block freed, every segment back in the arena or mimalloc's segment
 * cache), then mi_collect(true) empties the cache, then the region is
 * unmapped: nothing in mimalloc points into it any more.
 *
 * What paging changes:
 *   - mimalloc may decommit or reset memory it holds (mmap PROT_NONE over
 *     it with MAP_FIXED, or madvise): over a region that would replace the
 *     pager's mapping. The arena is registered as committed, which makes
 *     its segments "pinned" (never decommitted), and the allow_decommit and
 *     page_reset options are turned off for the process.
 *   - Segment headers and free-list links live in the arena, that is in
 *     paged memory: a free writes into the freed block and may fault it
 *     back in (bench/heap measures it). mimalloc's own metadata (mi_heap_t,
 *     tld, arena bitmaps) is OS memory, never in a region; so is this
 *     file's.
 *   - A freed block of 256 KiB or more has its whole pages inside it
 *     dropped with upager_advise(DONTNEED) before mimalloc gets it back, so
 *     dead data is not written to swap.
 *
 * mimalloc keeps at most 64 arenas per process and cannot forget one. A
 * closed heap's arena, empty, is kept for a new heap whose region lands at
 * the same address with the same size (usual when heaps of one size are
 * opened and closed in turn); otherwise each upager_heap_open() registers
 * a new arena, and after 64 of them it fails with -ENOSPC.
 */
#include "internal.h"

#include <errno.h>
#include <mimalloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SEG_SHIFT 25 /* mimalloc 2.0.x: 32 MiB segments and arena blocks */
#define SEG_SIZE ((uint64_t)1 << SEG_SHIFT)
#define NO_SHARD 0xff
#define MAX_SHARDS 16
#define DONTNEED_MIN (256u << 10)
#define DEFAULT_MAX_BYTES ((uint64_t)64 << 30)
#define MIN_ALIGN 16
#define MI_ALIGN_MAX (SEG_SIZE / 2) /* mimalloc 2.0.9 aligns up to this */

struct shard {
	pthread_mutex_t lock;
	mi_heap_t *mh;
	pthread_t host;
	bool host_started;
	struct upager_heap *h;
	/* Under lock. */
	uint64_t requested, live_bytes, live_blocks, mallocs, frees, failed;
} __attribute__((aligned(64)));

struct upager_heap {
	upager_t *p;
	void *region;   /* the upager region (arena plus alignment slack) */
	uintptr_t base; /* the arena: SEG_SIZE aligned */
	uint64_t len;
	mi_arena_id_t arena;
	unsigned nshards;
	struct shard *shards;
	_Atomic uint8_t *seg_shard; /* per arena segment: the shard that allocated there */
	_Atomic uint64_t bad_frees;
	/* Blocks aligned beyond what mimalloc aligns (16 MiB): over-allocated,
	 * and the aligned pointer remembered with the block it lies in. */
	pthread_mutex_t big_lock;
	struct bigalign {
		uintptr_t aligned;
		void *raw;
	} * big;
	size_t nbig_cap;
	_Atomic size_t nbig;
	pthread_mutex_t host_lock;
	pthread_cond_t host_cond;
	unsigned hosts_ready;
	bool closing;
};

static pthread_once_t options_once = PTHREAD_ONCE_INIT;

/*
 * Arenas of closed heaps. mimalloc cannot forget an arena, but an empty
 * one can serve a new heap whose region lands at the same address with the
 * same size, which is common: the kernel tends to put a mapping in the
 * hole the last one of that size left. That stretches the 64-arena limit
 * for programs that open and close heaps in a loop.
 */
#define MAX_RETIRED 64
static pthread_mutex_t retired_lock = PTHREAD_MUTEX_INITIALIZER;
static struct retired {
	uintptr_t start;
	uint64_t len;
	mi_arena_id_t id;
} retired[MAX_RETIRED];
static unsigned nretired;

static bool take_retired(uintptr_t start, uint64_t len, mi_arena_id_t *id)
{
	bool found = false;

	pthread_mutex_lock(&retired_lock);
	for (unsigned i = 0; i < nretired; i++) {
		if (retired[i].start == start && retired[i].len == len) {
			*id = retired[i].id;
			retired[i] = retired[--nretired];
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&retired_lock);
	return found;
}

static void put_retired(uintptr_t start, uint64_t len, mi_arena_id_t id)
{
	pthread_mutex_lock(&retired_lock);
	if (nretired < MAX_RETIRED)
		retired[nretired++] = (struct retired){ start, len, id };
	pthread_mutex_unlock(&retired_lock);
}
static _Atomic unsigned thread_seq;
static __thread unsigned my_seq; /* 0: not numbered yet */

static void set_options(void)
{
	/* Never decommit or reset arena memory (see the top of the file). */
	mi_option_set(mi_option_allow_decommit, 0);
	mi_option_set(mi_option_page_reset, 0);
	mi_option_set(mi_option_abandoned_page_decommit, 0);
}

static void *host_main(void *arg)
{
	struct shard *s = arg;
	struct upager_heap *h = s->h;
	sigset_t all;

	/* Signals sent to the process are for the program's threads; the
	 * fault signals stay open (fast mode resolves a fault in the
	 * faulting thread's SIGBUS or SIGSEGV handler, and this thread
	 * touches the arena when it destroys its heap). */
	sigfillset(&all);
	sigdelset(&all, SIGSEGV);
	sigdelset(&all, SIGBUS);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	mi_heap_t *mh = mi_heap_new_in_arena(h->arena);

	pthread_mutex_lock(&h->host_lock);
	s->mh = mh;
	h->hosts_ready++;
	pthread_cond_broadcast(&h->host_cond);
	while (!h->closing)
		pthread_cond_wait(&h->host_cond, &h->host_lock);
	pthread_mutex_unlock(&h->host_lock);
	/* On the heap's own thread, as mimalloc requires. */
	if (mh)
		mi_heap_destroy(mh);
	return NULL;
}

static void stop_hosts(struct upager_heap *h)
{
	pthread_mutex_lock(&h->host_lock);
	h->closing = true;
	pthread_cond_broadcast(&h->host_cond);
	pthread_mutex_unlock(&h->host_lock);
	for (unsigned i = 0; i < h->nshards; i++)
		if (h->shards[i].host_started)
			pthread_join(h->shards[i].host, NULL);
}

static void free_heap(struct upager_heap *h)
{
	if (h->shards) {
		for (unsigned i = 0; i < h->nshards; i++)
			pthread_mutex_destroy(&h->shards[i].lock);
		free(h->shards);
	}
	free((void *)h->seg_shard);
	free(h->big);
	pthread_mutex_destroy(&h->big_lock);
	pthread_mutex_destroy(&h->host_lock);
	pthread_cond_destroy(&h->host_cond);
	free(h);
}

/*
 * Two shards per CPU, at most MAX_SHARDS; but each shard holds whole
 * 32 MiB segments, so a small heap gets fewer: one per 128 MiB of address
 * space (a 64 MiB heap has one shard and all its space in it).
 */
static unsigned shard_count(uint64_t len)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	uint64_t by_space = len / (4 * SEG_SIZE);

	if (n < 1)
		n = 1;
	n *= 2;
	if ((uint64_t)n > by_space)
		n = (long)by_space;
	if (n < 1)
		n = 1;
	return n > MAX_SHARDS ? MAX_SHARDS : (unsigned)n;
}

UPAGER_API int upager_heap_open(upager_t *p, uint64_t max_bytes, upager_heap_t **out)
{
	struct upager_heap *h;
	upager_stats_t st;
	pthread_attr_t attr;
	int err;

	upager__clear_error();
	if (!p || !out)
		return -EINVAL;
	pthread_once(&options_once, set_options);
	if (max_bytes == 0) {
		err = upager_stats(p, &st);
		if (err)
			return err;
		max_bytes = st.swap_slots_total * st.page_size + st.frames_total * st.page_size;
		if (max_bytes > DEFAULT_MAX_BYTES)
			max_bytes = DEFAULT_MAX_BYTES;
	}
	if (max_bytes > ((uint64_t)1 << 46))
		return upager__fail(-EINVAL, "heap of %llu bytes: at most 64 TiB",
				    (unsigned long long)max_bytes);
	/* Whole arena blocks, at least one. */
	max_bytes = (max_bytes + SEG_SIZE - 1) & ~(SEG_SIZE - 1);
	if (max_bytes == 0)
		max_bytes = SEG_SIZE;

	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->p = p;
	h->len = max_bytes;
	pthread_mutex_init(&h->host_lock, NULL);
	pthread_cond_init(&h->host_cond, NULL);
	pthread_mutex_init(&h->big_lock, NULL);
	h->nshards = shard_count(max_bytes);
	h->shards = calloc(h->nshards, sizeof(*h->shards));
	h->seg_shard = malloc(max_bytes >> SEG_SHIFT);
	if (!h->shards || !h->seg_shard) {
		err = -ENOMEM;
		goto out_free;
	}
	memset((void *)h->seg_shard, NO_SHARD, max_bytes >> SEG_SHIFT);
	for (unsigned i = 0; i < h->nshards; i++) {
		pthread_mutex_init(&h->shards[i].lock, NULL);
		h->shards[i].h = h;
	}

	/* mimalloc wants the arena aligned to its segment size: map one
	 * segment more and start at the first aligned address. The slack is
	 * never touched, so it costs address space only. */
	err = upager_map(p, max_bytes + SEG_SIZE, 0, &h->region);
	if (err)
		goto out_free;
	h->base = ((uintptr_t)h->region + SEG_SIZE - 1) & ~(uintptr_t)(SEG_SIZE - 1);
	if (!take_retired(h->base, max_bytes, &h->arena) &&
	    !mi_manage_os_memory_ex((void *)h->base, max_bytes, true /* committed */,
				    false /* large */, true /* zero */, -1, true /* exclusive */,
				    &h->arena)) {
		err = upager__fail(
			-ENOSPC,
			"mimalloc refused the heap's arena (it keeps at most 64 per process, and cannot forget those of closed heaps)");
		goto out_unmap;
	}

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256u << 10);
	for (unsigned i = 0; i < h->nshards; i++) {
		if (pthread_create(&h->shards[i].host, &attr, host_main, &h->shards[i])) {
			err = upager__fail(-EAGAIN, "cannot start the heap's host threads");
			pthread_attr_destroy(&attr);
			goto out_stop;
		}
		h->shards[i].host_started = true;
		pthread_setname_np(h->shards[i].host, "upager-heap");
	}
	pthread_attr_destroy(&attr);
	pthread_mutex_lock(&h->host_lock);
	while (h->hosts_ready < h->nshards)
		pthread_cond_wait(&h->host_cond, &h->host_lock);
	pthread_mutex_unlock(&h->host_lock);
	for (unsigned i = 0; i < h->nshards; i++) {
		if (!h->shards[i].mh) {
			err = upager__fail(-ENOMEM, "mi_heap_new_in_arena failed");
			goto out_stop;
		}
	}
	*out = h;
	return 0;

out_stop:
	stop_hosts(h);
	/* The arena stays registered (mimalloc cannot forget it) but empty. */
	mi_collect(true);
	put_retired(h->base, h->len, h->arena);
out_unmap:
	upager_unmap(p, h->region);
out_free:
	free_heap(h);
	return err;
}

/* Is ptr inside the heap's arena? */
static inline bool in_arena(const struct upager_heap *h, const void *ptr)
{
	return (uintptr_t)ptr - h->base < h->len;
}

static void report_bad(struct upager_heap *h, const char *what, const void *ptr)
{
	char msg[160];

	atomic_fetch_add_explicit(&h->bad_frees, 1, memory_order_relaxed);
	snprintf(msg, sizeof(msg), "%s of %p, which heap %p (%p..%p) does not own: ignored", what,
		 ptr, (void *)h, (void *)h->base, (void *)(h->base + h->len));
	upager__fail(-EINVAL, "%s", msg);
	if (h->p->cfg.on_error) {
		upager_error_info_t info = {
			.err = -EINVAL,
			.region = h->region,
			.region_len = h->len + SEG_SIZE,
			.page_offset = 0,
			.fault_addr = (void *)ptr,
			.cause = msg,
		};
		h->p->cfg.on_error(h->p->cfg.on_error_arg, &info);
	}
	fprintf(stderr, "upager: %s\n", msg);
}

/* The shard a pointer's segment was allocated by, or NULL for a pointer
 * that no block of this heap can have (outside the arena, misaligned, in
 * a segment never used). */
static inline struct shard *shard_of(struct upager_heap *h, const void *ptr)
{
	if (!in_arena(h, ptr) || ((uintptr_t)ptr & (MIN_ALIGN - 1)))
		return NULL;
	unsigned k = atomic_load_explicit(&h->seg_shard[((uintptr_t)ptr - h->base) >> SEG_SHIFT],
					  memory_order_relaxed);
	return k < h->nshards ? &h->shards[k] : NULL;
}

static inline struct shard *my_shard(struct upager_heap *h)
{
	unsigned seq = my_seq;

	if (__builtin_expect(seq == 0, 0))
		seq = my_seq = atomic_fetch_add_explicit(&thread_seq, 1, memory_order_relaxed) + 1;
	return &h->shards[(seq - 1) % h->nshards];
}

/* Records which shard owns the segment of a block just allocated: every
 * later free of the block reads it (the free happens after the malloc that
 * returned the block, so it sees the store). */
static inline void note_segment(struct upager_heap *h, struct shard *s, void *ptr)
{
	size_t i = ((uintptr_t)ptr - h->base) >> SEG_SHIFT;
	uint8_t k = (uint8_t)(s - h->shards);

	if (atomic_load_explicit(&h->seg_shard[i], memory_order_relaxed) != k)
		atomic_store_explicit(&h->seg_shard[i], k, memory_order_relaxed);
}

enum alloc_kind { ALLOC_PLAIN, ALLOC_ZERO, ALLOC_ALIGNED };

/* One allocation attempt in shard s, with s's lock held. */
static inline void *shard_alloc(struct upager_heap *h, struct shard *s, size_t size, size_t asked,
				size_t align, enum alloc_kind kind)
{
	void *ptr;

	switch (kind) {
	case ALLOC_ZERO:
		ptr = mi_heap_zalloc(s->mh, size);
		break;
	case ALLOC_ALIGNED:
		ptr = mi_heap_malloc_aligned(s->mh, size, align);
		break;
	default:
		ptr = mi_heap_malloc(s->mh, size);
		break;
	}
	if (__builtin_expect(ptr != NULL, 1)) {
		note_segment(h, s, ptr);
		s->requested += asked;
		s->live_bytes += mi_usable_size(ptr);
		s->live_blocks++;
		s->mallocs++;
	}
	return ptr;
}

/*
 * The arena is shared by the shards, but a shard keeps the segments it
 * took (empty pages are retired lazily), so one shard can run dry while
 * another holds free space. Before saying ENOMEM, every shard, starting
 * with the caller's, gives its empty pages and segments back
 * (mi_heap_collect) and is asked for the block.
 */
static void *alloc_slow(struct upager_heap *h, struct shard *mine, size_t size, size_t asked,
			size_t align, enum alloc_kind kind)
{
	unsigned first = (unsigned)(mine - h->shards);
	void *ptr = NULL;

	for (unsigned i = 0; i < h->nshards && !ptr; i++) {
		struct shard *s = &h->shards[(first + i) % h->nshards];
		pthread_mutex_lock(&s->lock);
		mi_heap_collect(s->mh, true);
		ptr = shard_alloc(h, s, size, asked, align, kind);
		pthread_mutex_unlock(&s->lock);
	}
	if (!ptr) {
		pthread_mutex_lock(&mine->lock);
		mine->failed++;
		pthread_mutex_unlock(&mine->lock);
		errno = ENOMEM;
	}
	return ptr;
}

static void *alloc(struct upager_heap *h, size_t size, size_t align, enum alloc_kind kind)
{
	struct shard *s;
	size_t asked = size;
	void *ptr;

	if (!h) {
		errno = EINVAL;
		return NULL;
	}
	if (size > h->len) {
		errno = ENOMEM;
		return NULL;
	}
	/* Every block 16-byte aligned: mimalloc's size classes up to 128
	 * bytes include multiples of 8 only, so round those up. */
	size = size ? (size + MIN_ALIGN - 1) & ~(size_t)(MIN_ALIGN - 1) : MIN_ALIGN;
	s = my_shard(h);
	pthread_mutex_lock(&s->lock);
	ptr = shard_alloc(h, s, size, asked, align, kind);
	pthread_mutex_unlock(&s->lock);
	if (__builtin_expect(ptr == NULL, 0))
		ptr = alloc_slow(h, s, size, asked, align, kind);
	return ptr;
}

UPAGER_API void *upager_malloc(upager_heap_t *h, size_t size)
{
	return alloc(h, size, 0, ALLOC_PLAIN);
}

UPAGER_API void *upager_calloc(upager_heap_t *h, size_t n, size_t size)
{
	size_t total;

	if (__builtin_mul_overflow(n, size, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	return alloc(h, total, 0, ALLOC_ZERO);
}

/* The block a big-aligned pointer lies in, or NULL. Only pointers
 * aligned to 32 MiB can be such, and only while some exist. */
static void *big_raw(struct upager_heap *h, const void *ptr, bool remove)
{
	void *raw = NULL;

	if (((uintptr_t)ptr & (SEG_SIZE - 1)) ||
	    !atomic_load_explicit(&h->nbig, memory_order_relaxed))
		return NULL;
	pthread_mutex_lock(&h->big_lock);
	size_t n = atomic_load_explicit(&h->nbig, memory_order_relaxed);
	for (size_t i = 0; i < n; i++) {
		if (h->big[i].aligned == (uintptr_t)ptr) {
			raw = h->big[i].raw;
			if (remove) {
				h->big[i] = h->big[n - 1];
				atomic_store_explicit(&h->nbig, n - 1, memory_order_relaxed);
			}
			break;
		}
	}
	pthread_mutex_unlock(&h->big_lock);
	return raw;
}

static void *big_aligned_alloc(struct upager_heap *h, size_t align, size_t size)
{
	if (size > h->len - align) {
		errno = ENOMEM;
		return NULL;
	}
	void *raw = alloc(h, size + align, 0, ALLOC_PLAIN);
	if (!raw)
		return NULL;
	uintptr_t a = ((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1);
	pthread_mutex_lock(&h->big_lock);
	size_t n = atomic_load_explicit(&h->nbig, memory_order_relaxed);
	if (n == h->nbig_cap) {
		size_t cap = h->nbig_cap ? 2 * h->nbig_cap : 8;
		struct bigalign *b = realloc(h->big, cap * sizeof(*b));
		if (!b) {
			pthread_mutex_unlock(&h->big_lock);
			upager_free(h, raw);
			errno = ENOMEM;
			return NULL;
		}
		h->big = b;
		h->nbig_cap = cap;
	}
	h->big[n] = (struct bigalign){ a, raw };
	atomic_store_explicit(&h->nbig, n + 1, memory_order_relaxed);
	pthread_mutex_unlock(&h->big_lock);
	return (void *)a;
}

UPAGER_API void *upager_aligned_alloc(upager_heap_t *h, size_t align, size_t size)
{
	if (align == 0 || (align & (align - 1))) {
		errno = EINVAL;
		return NULL;
	}
	if (align <= MIN_ALIGN)
		return alloc(h, size, 0, ALLOC_PLAIN);
	if (h && align > h->len) {
		errno = ENOMEM;
		return NULL;
	}
	if (h && align > MI_ALIGN_MAX)
		return big_aligned_alloc(h, align, size);
	return alloc(h, size, align, ALLOC_ALIGNED);
}

UPAGER_API void upager_free(upager_heap_t *h, void *ptr)
{
	struct shard *s;
	size_t usable;

	if (!ptr || !h)
		return;
	s = shard_of(h, ptr);
	if (__builtin_expect(((uintptr_t)ptr & (SEG_SIZE - 1)) == 0, 0)) {
		void *raw = big_raw(h, ptr, true);
		if (raw) {
			ptr = raw;
			s = shard_of(h, ptr);
		}
	}
	if (__builtin_expect(!s, 0)) {
		report_bad(h, "upager_free", ptr);
		return;
	}
	usable = mi_usable_size(ptr);
	if (usable >= DONTNEED_MIN) {
		/* Drop the dead contents of the block's whole pages (not the
		 * first, where mimalloc links the free block) while the block
		 * is still ours: freed memory then costs no frame and no swap
		 * write. */
		size_t pg = h->p->page_size;
		uintptr_t a = ((uintptr_t)ptr + pg) & ~(uintptr_t)(pg - 1);
		uintptr_t b = ((uintptr_t)ptr + usable) & ~(uintptr_t)(pg - 1);
		if (b > a)
			upager_advise(h->p, (void *)a, b - a, UPAGER_ADVICE_DONTNEED);
	}
	pthread_mutex_lock(&s->lock);
	s->live_bytes -= usable;
	s->live_blocks--;
	s->frees++;
	mi_free(ptr);
	pthread_mutex_unlock(&s->lock);
}

UPAGER_API size_t upager_malloc_usable_size(upager_heap_t *h, const void *ptr)
{
	void *raw;

	if (!ptr || !h)
		return 0;
	if ((raw = big_raw(h, ptr, false)))
		return mi_usable_size(raw) - (size_t)((uintptr_t)ptr - (uintptr_t)raw);
	if (!shard_of(h, ptr))
		return 0;
	return mi_usable_size(ptr);
}

UPAGER_API void *upager_realloc(upager_heap_t *h, void *ptr, size_t size)
{
	struct shard *s;
	size_t usable;
	void *n;

	if (!ptr)
		return upager_malloc(h, size);
	if (!h) {
		errno = EINVAL;
		return NULL;
	}
	s = shard_of(h, ptr);
	if (big_raw(h, ptr, false)) {
		/* A big-aligned block moves to a plain one. */
		if (size == 0) {
			upager_free(h, ptr);
			return NULL;
		}
		usable = upager_malloc_usable_size(h, ptr);
		n = upager_malloc(h, size);
		if (!n)
			return NULL;
		memcpy(n, ptr, size < usable ? size : usable);
		upager_free(h, ptr);
		return n;
	}
	if (!s) {
		report_bad(h, "upager_realloc", ptr);
		errno = EINVAL;
		return NULL;
	}
	if (size == 0) {
		/* As glibc: the block is freed and NULL returned. */
		upager_free(h, ptr);
		return NULL;
	}
	usable = mi_usable_size(ptr);
	/* Same rule as mimalloc's own realloc: keep the block when the new
	 * size fits and wastes at most half of it. */
	if (size <= usable && size >= usable / 2) {
		pthread_mutex_lock(&s->lock);
		s->requested += size;
		pthread_mutex_unlock(&s->lock);
		return ptr;
	}
	n = upager_malloc(h, size);
	if (!n)
		return NULL; /* ptr untouched, errno ENOMEM */
	memcpy(n, ptr, size < usable ? size : usable);
	upager_free(h, ptr);
	return n;
}

UPAGER_API bool upager_heap_owns(upager_heap_t *h, const void *ptr)
{
	return h && ptr && in_arena(h, ptr);
}

struct visit {
	uint64_t held, reserved, end;
};

static bool visit_area(const mi_heap_t *heap, const mi_heap_area_t *area, void *block,
		       size_t block_size, void *arg)
{
	struct visit *v = arg;
	(void)heap;
	(void)block_size;
	if (block == NULL && area) {
		uint64_t end = (uintptr_t)area->blocks + area->reserved;
		v->held += area->committed;
		v->reserved += area->reserved;
		if (end > v->end)
			v->end = end;
	}
	return true;
}

UPAGER_API int upager_heap_stats(upager_heap_t *h, upager_heap_stats_t *out)
{
	upager_heap_stats_t st;
	struct visit v = { 0, 0, 0 };
	size_t n;

	upager__clear_error();
	if (!h || !out || out->size < 2 * sizeof(uint32_t))
		return -EINVAL;
	n = out->size < sizeof(st) ? out->size : sizeof(st);
	memset(&st, 0, sizeof(st));
	st.size = (uint32_t)n;
	st.version = UPAGER_HEAP_STATS_VERSION;
	st.max_bytes = h->len;
	st.shards = h->nshards;
	for (unsigned i = 0; i < h->nshards; i++) {
		struct shard *s = &h->shards[i];
		pthread_mutex_lock(&s->lock);
		st.bytes_requested += s->requested;
		st.bytes_live += s->live_bytes;
		st.blocks_live += s->live_blocks;
		st.mallocs += s->mallocs;
		st.frees += s->frees;
		st.failed += s->failed;
		/* The pages mimalloc holds for blocks; reads page headers
		 * (in paged memory) under the shard's lock. */
		mi_heap_visit_blocks(s->mh, false, visit_area, &v);
		pthread_mutex_unlock(&s->lock);
	}
	st.bytes_held = v.held;
	st.bytes_reserved = v.reserved;
	st.address_space_used = v.end > h->base ? v.end - h->base : 0;
	st.bad_frees = atomic_load_explicit(&h->bad_frees, memory_order_relaxed);
	memcpy(out, &st, n);
	return 0;
}

static void print_stats(struct upager_heap *h)
{
	upager_heap_stats_t st = { .size = sizeof(st) };
	char buf[1024];
	int n;

	if (upager_heap_stats(h, &st))
		return;
	n = snprintf(
		buf, sizeof(buf),
		"upager heap %p: max_bytes %llu, shards %u\n"
		"  mallocs %llu frees %llu failed %llu bad_frees %llu\n"
		"  bytes_requested %llu (all calls)\n"
		"  blocks_live %llu bytes_live %llu bytes_held %llu bytes_reserved %llu address_space_used %llu\n",
		(void *)h, (unsigned long long)st.max_bytes, st.shards,
		(unsigned long long)st.mallocs, (unsigned long long)st.frees,
		(unsigned long long)st.failed, (unsigned long long)st.bad_frees,
		(unsigned long long)st.bytes_requested, (unsigned long long)st.blocks_live,
		(unsigned long long)st.bytes_live, (unsigned long long)st.bytes_held,
		(unsigned long long)st.bytes_reserved, (unsigned long long)st.address_space_used);
	if (n > 0) {
		ssize_t unused = write(STDERR_FILENO, buf,
				       (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
		(void)unused;
	}
}

UPAGER_API int upager_heap_close(upager_heap_t *h)
{
	int err;

	upager__clear_error();
	if (!h)
		return -EINVAL;
	if (h->p->cfg.print_stats)
		print_stats(h);
	/* Each host thread destroys its heap (every block, every page). */
	stop_hosts(h);
	/* Freed segments may sit in mimalloc's global segment cache: send
	 * them back to their arenas before their memory goes away. */
	mi_collect(true);
	put_retired(h->base, h->len, h->arena);
	err = upager_unmap(h->p, h->region);
	free_heap(h);
	return err;
}
