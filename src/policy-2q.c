// SPDX-License-Identifier: MIT
/*
 * 2Q (Johnson and Shasha, VLDB 1994, the full version).
 *
 * A page seen once is not yet worth a place in the main LRU list. New
 * pages go to A1in, a FIFO of at most about Kin pages. When A1in is over
 * Kin, its oldest page is evicted and its key goes to A1out, a FIFO of
 * remembered keys (no frames) bounded by Kout. A page that faults again
 * while its key is in A1out has shown a reuse distance shorter than the
 * queue, so it goes straight into Am, an LRU list of the proven pages.
 * References to a page in A1in change nothing (correlated references in a
 * burst are not reuse); references in Am move the page to Am's head.
 *
 *   new page -> [A1in FIFO] --evict--> [A1out keys] --fault again--> Am
 *                                                  [Am LRU] -> evict
 *
 * The victim is A1in's oldest page while |A1in| > Kin, else Am's LRU page
 * (then nothing is remembered). A scan of pages used once only ever
 * churns A1in, so the pages in Am survive it.
 *
 * The paper decides where a faulting page goes before reclaimfor() makes
 * room: a page whose key is in A1out goes to Am even if making room
 * pushes A1out's oldest key out. So miss() takes the key off A1out first
 * and remembers the verdict for insert(); without miss() (the live pager
 * evicts ahead of time) insert() looks the key up itself.
 *
 * Parameters: kin=F (A1in's share of the frames, default 0.25), kout=F
 * (A1out's size as a share of the frames, default 0.5).
 */
#include "internal.h"
#include "keymap.h"
#include "policy.h"

#include <errno.h>
#include <stdlib.h>

enum { NONE, A1IN, AM };

struct twoq {
	uint32_t kin, kout;
	struct plist a1in, am, a1out;
	struct plink *link;
	uint8_t *where;
	uint64_t *key;
	struct ghosts g;
	/* miss() found this key in A1out (and forgot it): it goes to Am. */
	bool pending_am;
	uint64_t pending_key;
};

static void twoq_destroy(void *state)
{
	struct twoq *q = state;

	free(q->link);
	free(q->where);
	free(q->key);
	ghosts_free(&q->g);
	free(q);
}

static int twoq_create(const struct policy_env *env, const char *params, void **state)
{
	static const char *const keys[] = { "kin", "kout", NULL };
	double kin, kout;
	struct twoq *q;
	int err = policy_params_check(params, keys);

	if (!err)
		err = policy_param_fraction("2q", params, "kin", 0.25, 0.0, 1.0, &kin);
	if (!err)
		err = policy_param_fraction("2q", params, "kout", 0.5, 0.0, 16.0, &kout);
	if (err)
		return err;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->kin = (uint32_t)(kin * env->nframes);
	q->kout = (uint32_t)(kout * env->nframes);
	if (q->kout < 1)
		q->kout = 1;
	q->link = calloc(env->nframes, sizeof(*q->link));
	q->where = calloc(env->nframes, 1);
	q->key = calloc(env->nframes, sizeof(*q->key));
	if (!q->link || !q->where || !q->key || ghosts_init(&q->g, q->kout)) {
		twoq_destroy(q);
		return -ENOMEM;
	}
	plist_init(&q->a1in);
	plist_init(&q->am);
	plist_init(&q->a1out);
	*state = q;
	return 0;
}

static void unlink_frame(struct twoq *q, uint32_t frame)
{
	if (q->where[frame] == A1IN)
		plist_del(&q->a1in, q->link, frame);
	else if (q->where[frame] == AM)
		plist_del(&q->am, q->link, frame);
	q->where[frame] = NONE;
}

static void twoq_insert(void *state, uint32_t frame, uint64_t key, bool write)
{
	struct twoq *q = state;
	uint32_t g = ghost_find(&q->g, key);
	bool to_am = g != PNIL || (q->pending_am && q->pending_key == key);

	unlink_frame(q, frame);
	q->key[frame] = key;
	q->pending_am = false;
	if (to_am) {
		if (g != PNIL)
			ghost_drop(&q->g, &q->a1out, g);
		plist_push_head(&q->am, q->link, frame);
		q->where[frame] = AM;
	} else {
		plist_push_head(&q->a1in, q->link, frame);
		q->where[frame] = A1IN;
	}
}

static void twoq_miss(void *state, uint64_t key, bool write)
{
	struct twoq *q = state;
	uint32_t g = ghost_find(&q->g, key);

	q->pending_am = g != PNIL;
	q->pending_key = key;
	if (g != PNIL)
		ghost_drop(&q->g, &q->a1out, g);
}

static void twoq_reference(void *state, uint32_t frame, bool write)
{
	struct twoq *q = state;

	if (q->where[frame] == AM)
		plist_to_head(&q->am, q->link, frame);
}

static void twoq_remove(void *state, uint32_t frame, enum policy_remove_reason why)
{
	struct twoq *q = state;
	bool was_a1in = q->where[frame] == A1IN;

	unlink_frame(q, frame);
	if (why != POLICY_EVICTED || !was_a1in)
		return;
	if (q->a1out.len >= q->kout)
		ghost_drop_oldest(&q->g, &q->a1out);
	ghost_add(&q->g, &q->a1out, 0, q->key[frame]);
}

static int64_t twoq_victim(void *state)
{
	struct twoq *q = state;

	if ((q->a1in.len > q->kin || q->am.len == 0) && q->a1in.len)
		return q->a1in.tail;
	return q->am.tail == PNIL ? -1 : (int64_t)q->am.tail;
}

const struct policy_ops upager__policy_2q = {
	.abi = UPAGER_POLICY_ABI,
	.size = sizeof(struct policy_ops),
	.name = "2q",
	.summary = "2Q: FIFO probation (kin=F), remembered keys (kout=F), LRU for reused pages",
	.create = twoq_create,
	.destroy = twoq_destroy,
	.insert = twoq_insert,
	.reference = twoq_reference,
	.remove = twoq_remove,
	.victim = twoq_victim,
	.miss = twoq_miss,
};
