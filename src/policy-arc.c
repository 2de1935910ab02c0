// SPDX-License-Identifier: MIT
/*
 * ARC, the Adaptive Replacement Cache (Megiddo and Modha, FAST 2003).
 *
 * ARC keeps c resident pages in two LRU lists and remembers the keys of
 * up to c recently evicted pages in two ghost lists:
 *
 *   T1: resident pages seen once recently      B1: ghosts evicted from T1
 *   T2: resident pages seen at least twice     B2: ghosts evicted from T2
 *
 *        B1 ghosts        T1          |         T2        B2 ghosts
 *   [LRU ......... MRU][LRU ... MRU]  |  [MRU ... LRU][MRU ......... LRU]
 *                          <---- p ---|---- c - p ---->
 *
 * p is the target size of T1 and moves with the workload: a miss whose
 * key is in B1 means T1 was too small (p grows by max(1, |B2|/|B1|)); a
 * miss in B2 means T2 was too small (p shrinks by max(1, |B1|/|B2|)).
 * As in the paper (Fig. 4, "ADAPTATION"), the step is a real quotient and
 * p a real number in [0, c]: REPLACE compares the whole |T1| with it, so
 * |T1| = p holds only while p is whole. Rounding the step down instead
 * (what Caffeine's simulator and many ports do, with p an integer) moves
 * hit ratios by about 0.1 percentage point either way; it stays available
 * as arc:intdelta=1.
 *
 * On a request for x:
 *   I   x in T1 or T2 (hit): move x to the MRU end of T2.
 *   II  x in B1: adapt p upwards, REPLACE, move x to T2's MRU end.
 *   III x in B2: adapt p downwards, REPLACE, move x to T2's MRU end.
 *   IV  x nowhere:
 *       if |T1| + |B1| = c:  if |T1| < c, drop B1's LRU ghost and REPLACE;
 *                            else evict T1's LRU page, remembering nothing;
 *       else if |T1|+|T2|+|B1|+|B2| >= c: if that total is 2c, drop B2's
 *                            LRU ghost; REPLACE;
 *       then put x at T1's MRU end.
 *   REPLACE: if |T1| >= 1 and (|T1| > p or (x in B2 and |T1| = p)), move
 *   T1's LRU page to B1's MRU end, else T2's LRU page to B2's MRU end.
 *
 * So |T1| + |B1| <= c and |T1| + |T2| + |B1| + |B2| <= 2c always.
 *
 * Fitting the paper to the host's hooks: the host calls miss(x) before the
 * victim() and insert() a miss causes (the simulator always does), and
 * miss() does the case analysis, adapts p and drops ghosts; victim() then
 * applies REPLACE (or case IV's "evict T1's LRU") and remove(EVICTED)
 * moves the victim to its ghost list. That is the paper to the request.
 * Without miss() (the live pager evicts ahead of time, in batches)
 * insert() adapts p and trims the ghost lists itself, and victim() assumes
 * x is not in B2: the same policy, decided a little earlier.
 */
#include "internal.h"
#include "keymap.h"
#include "policy.h"

#include <errno.h>
#include <stdlib.h>

enum { NONE, T1, T2 };
enum { B1 = 1, B2 = 2 };

struct arc {
	uint32_t c;
	double p;      /* target size of T1, real as in the paper */
	bool intdelta; /* round the adaptation step down (a variant) */
	struct plist t1, t2, b1, b2;
	struct plink *link;
	uint8_t *where;
	uint64_t *key;
	struct ghosts g;
	/* What miss() decided for the page about to come in. */
	bool pending, x_in_b2, evict_t1_plain;
	uint64_t pending_key;
};

static void arc_destroy(void *state)
{
	struct arc *a = state;

	free(a->link);
	free(a->where);
	free(a->key);
	ghosts_free(&a->g);
	free(a);
}

static int arc_create(const struct policy_env *env, const char *params, void **state)
{
	static const char *const keys[] = { "intdelta", NULL };
	struct arc *a;
	uint64_t intdelta;
	int err = policy_params_check(params, keys);

	if (!err)
		err = policy_param_range("arc", params, "intdelta", 0, 0, 1, &intdelta);
	if (err)
		return err;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->c = env->nframes;
	a->intdelta = intdelta;
	a->link = calloc(a->c, sizeof(*a->link));
	a->where = calloc(a->c, 1);
	a->key = calloc(a->c, sizeof(*a->key));
	/* Ghosts: at most 2c - (resident pages), plus the victim that joins
	 * B1 or B2 before x leaves it. */
	if (!a->link || !a->where || !a->key || ghosts_init(&a->g, 2 * a->c + 1)) {
		arc_destroy(a);
		return -ENOMEM;
	}
	plist_init(&a->t1);
	plist_init(&a->t2);
	plist_init(&a->b1);
	plist_init(&a->b2);
	*state = a;
	return 0;
}

static struct plist *ghost_list(struct arc *a, uint32_t g)
{
	return a->g.list[g] == B1 ? &a->b1 : &a->b2;
}

/* The paper's delta: 1 if the list hit is at least as long as the other,
 * else the ratio of their lengths (the hit list is not empty: x is in it). */
static double delta(const struct arc *a, uint32_t hit, uint32_t other)
{
	if (hit >= other)
		return 1.0;
	return a->intdelta ? (double)(other / hit) : (double)other / (double)hit;
}

static void adapt(struct arc *a, uint8_t hit_in)
{
	uint32_t b1 = a->b1.len, b2 = a->b2.len;

	if (hit_in == B1) {
		double p = a->p + delta(a, b1, b2);
		a->p = p < a->c ? p : a->c;
	} else {
		double p = a->p - delta(a, b2, b1);
		a->p = p > 0 ? p : 0;
	}
}

static uint32_t total(const struct arc *a)
{
	return a->t1.len + a->t2.len + a->b1.len + a->b2.len;
}

static void arc_miss(void *state, uint64_t key, bool write)
{
	struct arc *a = state;
	uint32_t g = ghost_find(&a->g, key);

	a->pending = true;
	a->pending_key = key;
	a->x_in_b2 = false;
	a->evict_t1_plain = false;
	if (g != PNIL) { /* cases II and III */
		a->x_in_b2 = a->g.list[g] == B2;
		adapt(a, a->g.list[g]);
		return;
	}
	/* Case IV. */
	if (a->t1.len + a->b1.len >= a->c) {
		if (a->t1.len < a->c)
			ghost_drop_oldest(&a->g, &a->b1);
		else
			a->evict_t1_plain = true;
	} else if (total(a) >= a->c) {
		if (total(a) >= 2 * a->c)
			ghost_drop_oldest(&a->g, &a->b2);
	}
}

static void arc_insert(void *state, uint32_t frame, uint64_t key, bool write)
{
	struct arc *a = state;
	uint32_t g = ghost_find(&a->g, key);

	if (a->where[frame] == T1)
		plist_del(&a->t1, a->link, frame);
	else if (a->where[frame] == T2)
		plist_del(&a->t2, a->link, frame);
	if (a->pending && a->pending_key == key) {
		a->pending = false;
	} else if (g != PNIL) {
		adapt(a, a->g.list[g]);
	} else {
		/* Case IV decided late: keep the directory within bounds. */
		if (a->t1.len + a->b1.len >= a->c && a->b1.len)
			ghost_drop_oldest(&a->g, &a->b1);
		if (total(a) >= 2 * a->c) {
			if (a->b2.len)
				ghost_drop_oldest(&a->g, &a->b2);
			else
				ghost_drop_oldest(&a->g, &a->b1);
		}
	}
	a->key[frame] = key;
	if (g != PNIL) {
		ghost_drop(&a->g, ghost_list(a, g), g);
		plist_push_head(&a->t2, a->link, frame);
		a->where[frame] = T2;
	} else {
		plist_push_head(&a->t1, a->link, frame);
		a->where[frame] = T1;
	}
}

static void arc_reference(void *state, uint32_t frame, bool write)
{
	struct arc *a = state;

	if (a->where[frame] == T1) {
		plist_del(&a->t1, a->link, frame);
		plist_push_head(&a->t2, a->link, frame);
		a->where[frame] = T2;
	} else if (a->where[frame] == T2) {
		plist_to_head(&a->t2, a->link, frame);
	}
}

static void arc_remove(void *state, uint32_t frame, enum policy_remove_reason why)
{
	struct arc *a = state;
	uint8_t from = a->where[frame];

	if (from == T1)
		plist_del(&a->t1, a->link, frame);
	else if (from == T2)
		plist_del(&a->t2, a->link, frame);
	else
		return;
	a->where[frame] = NONE;
	if (why != POLICY_EVICTED)
		return;
	if (from == T1 && a->pending && a->evict_t1_plain) {
		a->evict_t1_plain = false; /* case IV with |T1| = c: no ghost */
		return;
	}
	if (!a->g.nfree) /* only without miss(): make room */
		ghost_drop_oldest(&a->g, a->b2.len ? &a->b2 : &a->b1);
	if (from == T1) {
		ghost_add(&a->g, &a->b1, B1, a->key[frame]);
		if (a->t1.len + a->b1.len > a->c)
			ghost_drop_oldest(&a->g, &a->b1);
	} else {
		ghost_add(&a->g, &a->b2, B2, a->key[frame]);
	}
}

static int64_t arc_victim(void *state)
{
	struct arc *a = state;
	uint32_t t1 = a->t1.len;

	if (t1 + a->t2.len == 0)
		return -1;
	if (a->pending && a->evict_t1_plain && t1)
		return a->t1.tail;
	/* REPLACE */
	if (t1 >= 1 && ((double)t1 > a->p || (a->pending && a->x_in_b2 && (double)t1 == a->p)))
		return a->t1.tail;
	return a->t2.len ? a->t2.tail : a->t1.tail;
}

const struct policy_ops upager__policy_arc = {
	.abi = UPAGER_POLICY_ABI,
	.size = sizeof(struct policy_ops),
	.name = "arc",
	.summary =
		"ARC: recency and frequency lists balanced by ghost hits (Megiddo & Modha; intdelta=1)",
	.create = arc_create,
	.destroy = arc_destroy,
	.insert = arc_insert,
	.reference = arc_reference,
	.remove = arc_remove,
	.victim = arc_victim,
	.miss = arc_miss,
};
