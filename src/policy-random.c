// SPDX-License-Identifier: MIT
/*
 * Random: evict a resident page chosen uniformly at random.
 *
 * The resident frames sit in a dense array with each frame's position
 * remembered, so insert, remove (swap with the last element) and victim
 * are all O(1). References are ignored. The generator is seeded from the
 * host's seed, or from the parameter seed=N, so runs are reproducible.
 */
#include "internal.h"
#include "keymap.h"
#include "policy.h"

#include <errno.h>
#include <stdlib.h>

struct rnd {
	uint32_t *res; /* resident frames, dense */
	uint32_t *pos; /* per frame: index in res, or PNIL */
	uint32_t n;
	uint64_t s;
};

static void rnd_destroy(void *state)
{
	struct rnd *r = state;

	free(r->res);
	free(r->pos);
	free(r);
}

static int rnd_create(const struct policy_env *env, const char *params, void **state)
{
	static const char *const keys[] = { "seed", NULL };
	struct rnd *r;
	uint64_t seed;
	int err = policy_params_check(params, keys);

	if (!err)
		err = policy_param_range("random", params, "seed", env->seed, 0, UINT64_MAX, &seed);
	if (err)
		return err;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->res = calloc(env->nframes, sizeof(*r->res));
	r->pos = malloc(env->nframes * sizeof(*r->pos));
	if (!r->res || !r->pos) {
		rnd_destroy(r);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < env->nframes; i++)
		r->pos[i] = PNIL;
	r->s = seed ? seed : 0x9e3779b97f4a7c15ULL;
	*state = r;
	return 0;
}

static void rnd_insert(void *state, uint32_t frame, uint64_t key, bool write)
{
	struct rnd *r = state;

	if (r->pos[frame] != PNIL)
		return;
	r->pos[frame] = r->n;
	r->res[r->n++] = frame;
}

static void rnd_reference(void *state, uint32_t frame, bool write)
{
}

static void rnd_remove(void *state, uint32_t frame, enum policy_remove_reason why)
{
	struct rnd *r = state;
	uint32_t i = r->pos[frame], last;

	if (i == PNIL)
		return;
	last = r->res[--r->n];
	r->res[i] = last;
	r->pos[last] = i;
	r->pos[frame] = PNIL;
}

static int64_t rnd_victim(void *state)
{
	struct rnd *r = state;

	if (!r->n)
		return -1;
	return r->res[policy_rand(&r->s) % r->n];
}

const struct policy_ops upager__policy_random = {
	.abi = UPAGER_POLICY_ABI,
	.size = sizeof(struct policy_ops),
	.name = "random",
	.summary = "evict a uniformly random resident page (param seed=N)",
	.create = rnd_create,
	.destroy = rnd_destroy,
	.insert = rnd_insert,
	.reference = rnd_reference,
	.remove = rnd_remove,
	.victim = rnd_victim,
};
