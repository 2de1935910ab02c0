// SPDX-License-Identifier: MIT
/*
 * LFU with aging: evict the least frequently used page.
 *
 * Every resident page has a use count: 1 when it comes in, +1 for each
 * reference seen (saturating at max). The victim is the page with the
 * smallest count; among equal counts, the one referenced least recently.
 * The pages sit in a binary min-heap ordered by (count, last use), so
 * every hook is O(log n).
 *
 * Pure LFU never forgets: a page that was hot an hour ago keeps its large
 * count and squats in memory. Aging fixes that: every `decay` events
 * (insertions plus references) all counts are halved, so a count measures
 * recent frequency with a half-life of `decay` events. Halving keeps the
 * counts' order but not the tie-breaks, so the heap is rebuilt (O(n), once
 * every decay >= n events: O(1) amortised).
 *
 *          (1,t3)            count, last use
 *         /      \
 *     (2,t9)    (1,t7)       victim = root
 *
 * Parameters: decay=N (default 8 x frames; 0 = no aging, plain in-cache
 * LFU), max=N (count ceiling, default 65535). Counts are forgotten when a
 * page leaves (no history of evicted pages).
 */
#include "internal.h"
#include "keymap.h"
#include "policy.h"

#include <errno.h>
#include <stdlib.h>

struct lfu {
	uint32_t *heap; /* frames */
	uint32_t *hpos; /* per frame: index in heap, or PNIL */
	uint32_t *count;
	uint64_t *stamp;
	uint32_t n;
	uint64_t tick, decay, since_decay;
	uint32_t max;
};

static bool lfu_less(const struct lfu *l, uint32_t a, uint32_t b)
{
	if (l->count[a] != l->count[b])
		return l->count[a] < l->count[b];
	return l->stamp[a] < l->stamp[b];
}

static void heap_set(struct lfu *l, uint32_t i, uint32_t frame)
{
	l->heap[i] = frame;
	l->hpos[frame] = i;
}

static void sift_up(struct lfu *l, uint32_t i)
{
	uint32_t f = l->heap[i];

	while (i > 0) {
		uint32_t parent = (i - 1) / 2;
		if (!lfu_less(l, f, l->heap[parent]))
			break;
		heap_set(l, i, l->heap[parent]);
		i = parent;
	}
	heap_set(l, i, f);
}

static void sift_down(struct lfu *l, uint32_t i)
{
	uint32_t f = l->heap[i];

	for (;;) {
		uint32_t c = 2 * i + 1;
		if (c >= l->n)
			break;
		if (c + 1 < l->n && lfu_less(l, l->heap[c + 1], l->heap[c]))
			c++;
		if (!lfu_less(l, l->heap[c], f))
			break;
		heap_set(l, i, l->heap[c]);
		i = c;
	}
	heap_set(l, i, f);
}

/* Halves every count and rebuilds the heap. */
static void lfu_age(struct lfu *l)
{
	for (uint32_t i = 0; i < l->n; i++)
		l->count[l->heap[i]] = (l->count[l->heap[i]] + 1) / 2;
	for (uint32_t i = l->n / 2; i-- > 0;)
		sift_down(l, i);
	l->since_decay = 0;
}

static void lfu_event(struct lfu *l)
{
	if (l->decay && ++l->since_decay >= l->decay)
		lfu_age(l);
}

static void lfu_destroy(void *state)
{
	struct lfu *l = state;

	free(l->heap);
	free(l->hpos);
	free(l->count);
	free(l->stamp);
	free(l);
}

static int lfu_create(const struct policy_env *env, const char *params, void **state)
{
	static const char *const keys[] = { "decay", "max", NULL };
	uint64_t decay, max;
	struct lfu *l;
	int err = policy_params_check(params, keys);

	if (!err)
		err = policy_param_range("lfu", params, "decay", 8ULL * env->nframes, 0,
					 UINT64_MAX, &decay);
	if (!err)
		err = policy_param_range("lfu", params, "max", 65535, 1, UINT32_MAX, &max);
	if (err)
		return err;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->heap = calloc(env->nframes, sizeof(*l->heap));
	l->hpos = malloc(env->nframes * sizeof(*l->hpos));
	l->count = calloc(env->nframes, sizeof(*l->count));
	l->stamp = calloc(env->nframes, sizeof(*l->stamp));
	if (!l->heap || !l->hpos || !l->count || !l->stamp) {
		lfu_destroy(l);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < env->nframes; i++)
		l->hpos[i] = PNIL;
	l->decay = decay;
	l->max = (uint32_t)max;
	*state = l;
	return 0;
}

static void lfu_insert(void *state, uint32_t frame, uint64_t key, bool write)
{
	struct lfu *l = state;

	l->count[frame] = 1;
	l->stamp[frame] = ++l->tick;
	if (l->hpos[frame] == PNIL) {
		heap_set(l, l->n++, frame);
		sift_up(l, l->n - 1);
	} else {
		sift_up(l, l->hpos[frame]);
		sift_down(l, l->hpos[frame]);
	}
	lfu_event(l);
}

static void lfu_reference(void *state, uint32_t frame, bool write)
{
	struct lfu *l = state;

	if (l->hpos[frame] == PNIL)
		return;
	if (l->count[frame] < l->max)
		l->count[frame]++;
	l->stamp[frame] = ++l->tick;
	sift_down(l, l->hpos[frame]); /* its key only grew */
	lfu_event(l);
}

static void lfu_remove(void *state, uint32_t frame, enum policy_remove_reason why)
{
	struct lfu *l = state;
	uint32_t i = l->hpos[frame];

	if (i == PNIL)
		return;
	l->hpos[frame] = PNIL;
	if (i == --l->n)
		return;
	uint32_t moved = l->heap[l->n];
	heap_set(l, i, moved);
	sift_up(l, i);
	sift_down(l, l->hpos[moved]);
}

static int64_t lfu_victim(void *state)
{
	struct lfu *l = state;

	return l->n ? (int64_t)l->heap[0] : -1;
}

const struct policy_ops upager__policy_lfu = {
	.abi = UPAGER_POLICY_ABI,
	.size = sizeof(struct policy_ops),
	.name = "lfu",
	.summary = "least frequently used, counts halved every decay=N events (max=N)",
	.create = lfu_create,
	.destroy = lfu_destroy,
	.insert = lfu_insert,
	.reference = lfu_reference,
	.remove = lfu_remove,
	.victim = lfu_victim,
};
