// SPDX-License-Identifier: MIT
/*
 * LRU: evict the least recently used page.
 *
 * One list in recency order. A page enters at the head; every reference
 * seen moves it back to the head; the victim is the tail.
 *
 *   insert, reference -> [MRU] ... [LRU] -> victim
 *
 * In the simulator every reference is reported, so this is exact LRU. In
 * the live pager a resident, mapped page's accesses are invisible; only
 * the core's sampling (unmap, then a minor fault reports the access)
 * moves it, so LRU there is the best approximation that sampling allows.
 */
#include "internal.h"
#include "keymap.h"
#include "policy.h"

#include <errno.h>
#include <stdlib.h>

struct lru {
	struct plist l;
	struct plink *link;
	uint8_t *in;
};

static void lru_destroy(void *state)
{
	struct lru *l = state;

	free(l->link);
	free(l->in);
	free(l);
}

static int lru_create(const struct policy_env *env, const char *params, void **state)
{
	struct lru *l;
	int err = policy_params_check(params, NULL);

	if (err)
		return err;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->link = calloc(env->nframes, sizeof(*l->link));
	l->in = calloc(env->nframes, 1);
	if (!l->link || !l->in) {
		lru_destroy(l);
		return -ENOMEM;
	}
	plist_init(&l->l);
	*state = l;
	return 0;
}

static void lru_insert(void *state, uint32_t frame, uint64_t key, bool write)
{
	struct lru *l = state;

	if (l->in[frame])
		plist_to_head(&l->l, l->link, frame);
	else
		plist_push_head(&l->l, l->link, frame);
	l->in[frame] = 1;
}

static void lru_reference(void *state, uint32_t frame, bool write)
{
	struct lru *l = state;

	if (l->in[frame])
		plist_to_head(&l->l, l->link, frame);
}

static void lru_remove(void *state, uint32_t frame, enum policy_remove_reason why)
{
	struct lru *l = state;

	if (l->in[frame])
		plist_del(&l->l, l->link, frame);
	l->in[frame] = 0;
}

static int64_t lru_victim(void *state)
{
	struct lru *l = state;

	return l->l.tail == PNIL ? -1 : (int64_t)l->l.tail;
}

const struct policy_ops upager__policy_lru = {
	.abi = UPAGER_POLICY_ABI,
	.size = sizeof(struct policy_ops),
	.name = "lru",
	.summary = "least recently used (exact in the simulator, sampled in the pager)",
	.create = lru_create,
	.destroy = lru_destroy,
	.insert = lru_insert,
	.reference = lru_reference,
	.remove = lru_remove,
	.victim = lru_victim,
};
