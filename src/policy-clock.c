// SPDX-License-Identifier: MIT
/*
 * Clock (second chance).
 *
 * The frames form a circle with a hand. Every frame has a referenced bit,
 * set when the page is brought in and whenever a reference to it is seen.
 * To find a victim the hand sweeps forward: a frame whose bit is set loses
 * the bit and is skipped (its second chance); the first frame found with
 * the bit clear is the victim. After one full turn every bit is clear, so
 * the sweep ends within two turns.
 *
 *          hand
 *           v
 *     [1] [0] [1] [1] [0] ...     1 = referenced: clear it, move on
 *                                  0 = not referenced since last pass: evict
 *
 * In the live pager a page's references are invisible while it is mapped,
 * so clearing the bit is not enough: the policy tells the host (env->age)
 * and the host unmaps the page, making its next access a minor fault that
 * sets the bit again. That is the hardware accessed bit, emulated.
 */
#include "internal.h"
#include "policy.h"

#include <errno.h>
#include <stdlib.h>

struct clock {
	const struct policy_env *env;
	uint32_t n, hand, resident;
	uint8_t *bits; /* per frame: 1 = resident, 2 = referenced */
};

#define RESIDENT 1
#define REFERENCED 2

static int clock_create(const struct policy_env *env, const char *params, void **state)
{
	struct clock *c;
	int err = policy_params_check(params, NULL);

	if (err)
		return err;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->bits = calloc(env->nframes, 1);
	if (!c->bits) {
		free(c);
		return -ENOMEM;
	}
	c->env = env;
	c->n = env->nframes;
	*state = c;
	return 0;
}

static void clock_destroy(void *state)
{
	struct clock *c = state;

	free(c->bits);
	free(c);
}

static void clock_insert(void *state, uint32_t frame, uint64_t key, bool write)
{
	struct clock *c = state;

	c->bits[frame] = RESIDENT | REFERENCED;
	c->resident++;
}

static void clock_reference(void *state, uint32_t frame, bool write)
{
	struct clock *c = state;

	if (c->bits[frame] & RESIDENT)
		c->bits[frame] |= REFERENCED;
}

static void clock_remove(void *state, uint32_t frame, enum policy_remove_reason why)
{
	struct clock *c = state;

	if (c->bits[frame] & RESIDENT)
		c->resident--;
	c->bits[frame] = 0;
}

static int64_t clock_victim(void *state)
{
	struct clock *c = state;

	if (!c->resident)
		return -1;
	for (uint64_t steps = 0; steps <= 2ULL * c->n; steps++) {
		uint32_t f = c->hand;

		c->hand = f + 1 == c->n ? 0 : f + 1;
		if (!(c->bits[f] & RESIDENT))
			continue;
		if (c->bits[f] & REFERENCED) {
			c->bits[f] &= (uint8_t)~REFERENCED;
			c->env->age(c->env->host, f);
			continue;
		}
		return f;
	}
	return -1;
}

const struct policy_ops upager__policy_clock = {
	.abi = UPAGER_POLICY_ABI,
	.size = sizeof(struct policy_ops),
	.flags = UPAGER_POLICY_AGES_ALL,
	.name = "clock",
	.summary = "second chance: a hand sweeps the frames, clearing referenced bits",
	.create = clock_create,
	.destroy = clock_destroy,
	.insert = clock_insert,
	.reference = clock_reference,
	.remove = clock_remove,
	.victim = clock_victim,
};
