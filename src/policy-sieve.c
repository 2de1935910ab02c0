// SPDX-License-Identifier: MIT
/*
 * SIEVE (Zhang et al., NSDI 2024).
 *
 * One FIFO queue, new pages at the head, and a hand that walks from the
 * tail (oldest) towards the head. Each page has a visited bit, set by a
 * reference. To evict, the hand looks at its page: visited -> clear the
 * bit and step towards the head; not visited -> that is the victim, and
 * the hand stays just past it (at the next newer page) for next time.
 * When the hand passes the head it starts again at the tail.
 *
 *   head (new)                                tail (old)
 *     [E] [D:1] [C:0] [B:1] [A:0]
 *                 ^hand moves this way <--- starts at the tail
 *
 * Unlike Clock, a surviving page is not moved: pages that stay popular
 * settle in the old part of the queue, and new pages that are never used
 * again are swept out soon after the hand passes them.
 *
 * Clearing a bit calls env->age(), so the live pager unmaps the page and
 * its next access is seen.
 */
#include "internal.h"
#include "keymap.h"
#include "policy.h"

#include <errno.h>
#include <stdlib.h>

struct sieve {
	const struct policy_env *env;
	struct plist q;
	struct plink *link;
	uint8_t *in, *visited;
	uint32_t hand; /* PNIL: start at the tail */
};

static void sieve_destroy(void *state)
{
	struct sieve *s = state;

	free(s->link);
	free(s->in);
	free(s->visited);
	free(s);
}

static int sieve_create(const struct policy_env *env, const char *params, void **state)
{
	struct sieve *s;
	int err = policy_params_check(params, NULL);

	if (err)
		return err;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->env = env;
	s->link = calloc(env->nframes, sizeof(*s->link));
	s->in = calloc(env->nframes, 1);
	s->visited = calloc(env->nframes, 1);
	if (!s->link || !s->in || !s->visited) {
		sieve_destroy(s);
		return -ENOMEM;
	}
	plist_init(&s->q);
	s->hand = PNIL;
	*state = s;
	return 0;
}

static void sieve_unlink(struct sieve *s, uint32_t frame)
{
	if (!s->in[frame])
		return;
	if (s->hand == frame)
		s->hand = s->link[frame].prev; /* the next newer page, or PNIL */
	plist_del(&s->q, s->link, frame);
	s->in[frame] = 0;
}

static void sieve_insert(void *state, uint32_t frame, uint64_t key, bool write)
{
	struct sieve *s = state;

	sieve_unlink(s, frame);
	plist_push_head(&s->q, s->link, frame);
	s->in[frame] = 1;
	s->visited[frame] = 0;
}

static void sieve_reference(void *state, uint32_t frame, bool write)
{
	struct sieve *s = state;

	if (s->in[frame])
		s->visited[frame] = 1;
}

static void sieve_remove(void *state, uint32_t frame, enum policy_remove_reason why)
{
	sieve_unlink(state, frame);
}

static int64_t sieve_victim(void *state)
{
	struct sieve *s = state;
	uint32_t h = s->hand;

	if (!s->q.len)
		return -1;
	for (uint64_t step = 0; step <= 2ULL * s->q.len; step++) {
		if (h == PNIL)
			h = s->q.tail;
		if (!s->visited[h])
			break;
		s->visited[h] = 0;
		s->env->age(s->env->host, h);
		h = s->link[h].prev;
	}
	if (h == PNIL)
		h = s->q.tail;
	s->hand = h;
	return h;
}

const struct policy_ops upager__policy_sieve = {
	.abi = UPAGER_POLICY_ABI,
	.size = sizeof(struct policy_ops),
	.name = "sieve",
	.summary = "SIEVE: FIFO with a visited bit and a hand that sweeps old to new",
	.create = sieve_create,
	.destroy = sieve_destroy,
	.insert = sieve_insert,
	.reference = sieve_reference,
	.remove = sieve_remove,
	.victim = sieve_victim,
};
