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
#include "iheap.h"
#include "internal.h"
#include "policy.h"

#include <errno.h>
#include <stdlib.h>

/* The resident frames in an indexed heap (iheap.h) keyed by (use count,
 * last use): k1 is the count, k2 the tick of the last use. */
struct lfu {
	struct iheap h;
	uint64_t tick, decay, since_decay;
	uint32_t max;
};

/* Halves every count and rebuilds the heap. */
static void lfu_age(struct lfu *l)
{
	for (uint32_t i = 0; i < l->h.n; i++)
		l->h.k1[l->h.at[i]] = (l->h.k1[l->h.at[i]] + 1) / 2;
	iheap_rebuild(&l->h);
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

	iheap_free(&l->h);
	free(l);
}

static int lfu_create(const struct policy_env *env, const char *params, void **state)
{
	static const char *const keys[] = { "decay", "max", NULL };
	uint64_t decay, max;
	struct lfu *l;
	int err = policy_params_check(params, keys);

	if (!err)
		err = policy_param_range("lfu", params, "decay", 8ULL * env->nframes, 0, UINT64_MAX,
					 &decay);
	if (!err)
		err = policy_param_range("lfu", params, "max", 65535, 1, UINT32_MAX, &max);
	if (err)
		return err;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	if (iheap_init(&l->h, env->nframes)) {
		free(l);
		return -ENOMEM;
	}
	l->decay = decay;
	l->max = (uint32_t)max;
	*state = l;
	return 0;
}

static void lfu_insert(void *state, uint32_t frame, uint64_t key, bool write)
{
	struct lfu *l = state;

	l->h.k1[frame] = 1;
	l->h.k2[frame] = ++l->tick;
	if (iheap_has(&l->h, frame))
		iheap_fix(&l->h, frame);
	else
		iheap_push(&l->h, frame);
	lfu_event(l);
}

static void lfu_reference(void *state, uint32_t frame, bool write)
{
	struct lfu *l = state;

	if (!iheap_has(&l->h, frame))
		return;
	if (l->h.k1[frame] < l->max)
		l->h.k1[frame]++;
	l->h.k2[frame] = ++l->tick;
	iheap_fix(&l->h, frame);
	lfu_event(l);
}

static void lfu_remove(void *state, uint32_t frame, enum policy_remove_reason why)
{
	struct lfu *l = state;

	iheap_remove(&l->h, frame);
}

static int64_t lfu_victim(void *state)
{
	struct lfu *l = state;
	uint32_t top = iheap_top(&l->h);

	return top == PNIL ? -1 : (int64_t)top;
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
