// SPDX-License-Identifier: MIT
/*
 * The frame pool: the RAM budget as a fixed array of frame records, made
 * once at open. A frame's contents are the memfd page of the region that
 * holds it; the record only says which page that is. The pool's size is
 * hard: a fault that finds no free frame evicts before it fills, so the
 * pager never holds more pages than the budget.
 *
 * Free frames form a stack threaded through next_free; the stack's lock
 * is a leaf lock held for a handful of instructions.
 */
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define NO_FRAME UINT32_MAX

int frames_init(struct frame_pool *fp, uint32_t nframes)
{
	size_t bytes = (size_t)nframes * sizeof(struct frame);

	memset(fp, 0, sizeof(*fp));
	fp->frames = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (fp->frames == MAP_FAILED) {
		fp->frames = NULL;
		return -ENOMEM;
	}
	fp->nframes = nframes;
	fp->free_head = NO_FRAME;
	fp->fresh = 0;
	atomic_init(&fp->nfree, nframes);
	pthread_mutex_init(&fp->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&fp->freed, &ca);
	pthread_condattr_destroy(&ca);
	return 0;
}

void frames_destroy(struct frame_pool *fp)
{
	if (fp->frames)
		munmap(fp->frames, (size_t)fp->nframes * sizeof(struct frame));
	fp->frames = NULL;
	pthread_mutex_destroy(&fp->lock);
	pthread_cond_destroy(&fp->freed);
}

int64_t frames_alloc(struct frame_pool *fp)
{
	int64_t idx = -1;

	pthread_mutex_lock(&fp->lock);
	if (fp->free_head != NO_FRAME) {
		idx = fp->free_head;
		fp->free_head = fp->frames[idx].next_free;
	} else if (fp->fresh < fp->nframes) {
		idx = fp->fresh++;
	}
	if (idx >= 0) {
		fp->frames[idx].next_free = NO_FRAME;
		atomic_fetch_sub_explicit(&fp->nfree, 1, memory_order_relaxed);
	}
	pthread_mutex_unlock(&fp->lock);
	return idx;
}

void frames_free(struct frame_pool *fp, uint32_t idx)
{
	struct frame *f = &fp->frames[idx];

	f->region = NULL;
	f->pte = NULL;
	atomic_store_explicit(&f->pins, 0, memory_order_relaxed);
	pthread_mutex_lock(&fp->lock);
	f->next_free = fp->free_head;
	fp->free_head = idx;
	atomic_fetch_add_explicit(&fp->nfree, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&fp->frees, 1, memory_order_relaxed);
	if (fp->waiters)
		pthread_cond_broadcast(&fp->freed);
	pthread_mutex_unlock(&fp->lock);
}

void frames_wait(struct frame_pool *fp, unsigned timeout_ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	ts.tv_sec += timeout_ms / 1000 + ts.tv_nsec / 1000000000L;
	ts.tv_nsec %= 1000000000L;
	pthread_mutex_lock(&fp->lock);
	if (fp->free_head == NO_FRAME && fp->fresh == fp->nframes) {
		fp->waiters++;
		pthread_cond_timedwait(&fp->freed, &fp->lock, &ts);
		fp->waiters--;
	}
	pthread_mutex_unlock(&fp->lock);
}
