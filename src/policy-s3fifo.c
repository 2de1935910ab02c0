// SPDX-License-Identifier: MIT
/*
 * S3-FIFO (Yang et al., SOSP 2023): three static FIFO queues.
 *
 *   S (small, ~10% of frames): every new page starts here
 *   M (main, the rest):        pages that proved themselves
 *   G (ghost, keys only):      pages recently evicted from S
 *
 * Each resident page has a 2-bit use counter (0..3), bumped by each
 * reference seen. Most pages are used once and never again ("one-hit
 * wonders"); S filters them out quickly, before they can push anything
 * out of M.
 *
 *   new ----> [ S FIFO ] --freq >= promote--> [ M FIFO ] --+
 *    |           |  used less: evict, key -> [ G ]         |
 *    |           v                                          |
 *    +--key in G--------------------------------> M   freq>0: freq--,
 *                                                       back to M's head
 *
 * Victim: if S has pages and M is within its share (the frames S does not
 * claim), search S: its oldest page, if used at least `promote` times since
 * it came in, moves to M's head with its counter cleared and the search
 * goes on in S; else it is the victim (its key is remembered in G). If S
 * runs out, or M was over its share, search M: its oldest page, if its
 * counter is not 0, is decremented and goes back to M's head; else it is
 * the victim. A page that faults while its key is in G goes straight to M.
 *
 * The paper's Algorithm 1 has "if M is full then evictM()" inside the S
 * search, which can free two frames for one miss; the host takes one
 * victim per miss, so, as in the authors' simulator (libCacheSim's
 * S3FIFOv0, the one behind the paper's results), pages moved into M only
 * let M run over its share, and the next victim comes from M. Leaving S
 * as soon as a move takes it below its share instead scores within 0.1
 * point on most LIRS traces and worse on some (backf at 500 pages: 31.8%
 * against 38.9%, cs at 1000: 32.0% against 32.5%).
 *
 * Clearing or decrementing a counter consumes reference information, so
 * it calls env->age() (in the live pager the page is unmapped and its next
 * access is seen).
 *
 * Parameters: small=F (S's share, default 0.1), ghost=F (G's size as a
 * share of the frames, default 0.9, the size of M), promote=N (uses needed
 * to leave S for M, default 1).
 */
#include "internal.h"
#include "keymap.h"
#include "policy.h"

#include <errno.h>
#include <stdlib.h>

enum { NONE, S, M };

struct s3 {
	const struct policy_env *env;
	uint32_t nframes, small_target, ghost_cap, promote;
	struct plist s, m, gq;
	struct plink *link;
	uint8_t *where, *freq;
	uint64_t *key;
	struct ghosts g;
};

static void s3_destroy(void *state)
{
	struct s3 *q = state;

	free(q->link);
	free(q->where);
	free(q->freq);
	free(q->key);
	ghosts_free(&q->g);
	free(q);
}

static int s3_create(const struct policy_env *env, const char *params, void **state)
{
	static const char *const keys[] = { "small", "ghost", "promote", NULL };
	double small, ghost;
	uint64_t promote;
	struct s3 *q;
	int err = policy_params_check(params, keys);

	if (!err)
		err = policy_param_fraction("s3fifo", params, "small", 0.1, 0.0, 1.0, &small);
	if (!err)
		err = policy_param_fraction("s3fifo", params, "ghost", 0.9, 0.0, 16.0, &ghost);
	if (!err)
		err = policy_param_range("s3fifo", params, "promote", 1, 1, 3, &promote);
	if (err)
		return err;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->env = env;
	q->nframes = env->nframes;
	q->small_target = (uint32_t)(small * env->nframes);
	if (q->small_target < 1)
		q->small_target = 1;
	q->ghost_cap = (uint32_t)(ghost * env->nframes);
	q->promote = (uint32_t)promote;
	q->link = calloc(env->nframes, sizeof(*q->link));
	q->where = calloc(env->nframes, 1);
	q->freq = calloc(env->nframes, 1);
	q->key = calloc(env->nframes, sizeof(*q->key));
	if (!q->link || !q->where || !q->freq || !q->key || ghosts_init(&q->g, q->ghost_cap)) {
		s3_destroy(q);
		return -ENOMEM;
	}
	plist_init(&q->s);
	plist_init(&q->m);
	plist_init(&q->gq);
	*state = q;
	return 0;
}

static void unlink_frame(struct s3 *q, uint32_t frame)
{
	if (q->where[frame] == S)
		plist_del(&q->s, q->link, frame);
	else if (q->where[frame] == M)
		plist_del(&q->m, q->link, frame);
	q->where[frame] = NONE;
}

static void s3_insert(void *state, uint32_t frame, uint64_t key, bool write)
{
	struct s3 *q = state;
	uint32_t g = ghost_find(&q->g, key);

	unlink_frame(q, frame);
	q->key[frame] = key;
	q->freq[frame] = 0;
	if (g != PNIL) {
		ghost_drop(&q->g, &q->gq, g);
		plist_push_head(&q->m, q->link, frame);
		q->where[frame] = M;
	} else {
		plist_push_head(&q->s, q->link, frame);
		q->where[frame] = S;
	}
}

static void s3_reference(void *state, uint32_t frame, bool write)
{
	struct s3 *q = state;

	if (q->where[frame] != NONE && q->freq[frame] < 3)
		q->freq[frame]++;
}

static void s3_remove(void *state, uint32_t frame, enum policy_remove_reason why)
{
	struct s3 *q = state;
	bool from_s = q->where[frame] == S;

	unlink_frame(q, frame);
	if (why != POLICY_EVICTED || !from_s || !q->ghost_cap)
		return;
	if (q->gq.len >= q->ghost_cap)
		ghost_drop_oldest(&q->g, &q->gq);
	ghost_add(&q->g, &q->gq, 0, q->key[frame]);
}

static int64_t s3_victim(void *state)
{
	struct s3 *q = state;
	uint64_t limit = 8ULL * (q->s.len + q->m.len) + 8;
	/* S is searched if it has pages and M is within its share. */
	bool from_s = q->s.len && q->m.len <= q->nframes - q->small_target;

	if (q->s.len + q->m.len == 0)
		return -1;
	for (uint64_t step = 0; step < limit; step++) {
		if (from_s && q->s.len) {
			uint32_t t = q->s.tail;
			if (q->freq[t] < q->promote)
				return t;
			plist_del(&q->s, q->link, t);
			plist_push_head(&q->m, q->link, t);
			q->where[t] = M;
			q->freq[t] = 0;
			q->env->age(q->env->host, t);
		} else {
			uint32_t t = q->m.tail;
			if (!q->freq[t])
				return t;
			q->freq[t]--;
			plist_to_head(&q->m, q->link, t);
			q->env->age(q->env->host, t);
		}
	}
	return q->m.len ? q->m.tail : q->s.tail;
}

const struct policy_ops upager__policy_s3fifo = {
	.abi = UPAGER_POLICY_ABI,
	.size = sizeof(struct policy_ops),
	.name = "s3fifo",
	.summary =
		"S3-FIFO: small probation FIFO, main FIFO, ghost keys (small=F,ghost=F,promote=N)",
	.create = s3_create,
	.destroy = s3_destroy,
	.insert = s3_insert,
	.reference = s3_reference,
	.remove = s3_remove,
	.victim = s3_victim,
};
