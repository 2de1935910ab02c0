// SPDX-License-Identifier: MIT
/*
 * CAR, Clock with Adaptive Replacement (Bansal and Modha, FAST 2004).
 *
 * ARC's structure with clocks instead of LRU lists, so a hit only sets a
 * bit, which is all a pager can afford (and all the live pager can see:
 * references arrive as sampled accessed bits).
 *
 *   T1: clock of resident pages seen once       B1: ghosts evicted from T1
 *   T2: clock of resident pages seen again      B2: ghosts evicted from T2
 *   p:  target size of T1, adapted as in ARC by hits in B1 and B2
 *
 * Hit: set the page's referenced bit. Nothing moves.
 *
 * Victim (the clocks turn):
 *   if |T1| >= max(1, p): look at T1's hand page. Bit clear: it is the
 *       victim and its key goes to B1. Bit set: clear it and move the
 *       page to T2's tail (it was used again).
 *   else: look at T2's hand page. Bit clear: victim, key to B2. Bit
 *       set: clear it, move it to T2's tail (second chance).
 *
 *   hand -> [old] [ ] [ ] ... [new] <- tail (new pages enter here)
 *
 * Miss on x (after the victim is gone, if the cache was full):
 *   x in no ghost list: if |T1| + |B1| = c drop B1's oldest ghost, else if
 *       |T1|+|T2|+|B1|+|B2| = 2c drop B2's oldest; x enters T1's tail.
 *   x in B1: p += max(1, |B2|/|B1|) (at most c); x enters T2's tail.
 *   x in B2: p -= max(1, |B1|/|B2|) (at least 0); x enters T2's tail.
 * New pages start with the bit clear. As in ARC's paper, the quotient is
 * real and so is p; arc:intdelta=1's variant (step rounded down, p whole)
 * is car:intdelta=1.
 *
 * Clearing a bit calls env->age(), so the live pager unmaps the page and
 * its next access comes back as a reference.
 */
#include "internal.h"
#include "keymap.h"
#include "policy.h"

#include <errno.h>
#include <stdlib.h>

enum { NONE, T1, T2 };
enum { B1 = 1, B2 = 2 };

struct car {
	const struct policy_env *env;
	uint32_t c;
	double p;                    /* target size of T1, real as in the paper */
	bool intdelta;               /* round the adaptation step down (a variant) */
	struct plist t1, t2, b1, b2; /* clocks: tail = hand, head = newest */
	struct plink *link;
	uint8_t *where, *ref;
	uint64_t *key;
	struct ghosts g;
};

static void car_destroy(void *state)
{
	struct car *r = state;

	free(r->link);
	free(r->where);
	free(r->ref);
	free(r->key);
	ghosts_free(&r->g);
	free(r);
}

static int car_create(const struct policy_env *env, const char *params, void **state)
{
	static const char *const keys[] = { "intdelta", NULL };
	struct car *r;
	uint64_t intdelta;
	int err = policy_params_check(params, keys);

	if (!err)
		err = policy_param_range("car", params, "intdelta", 0, 0, 1, &intdelta);
	if (err)
		return err;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->env = env;
	r->intdelta = intdelta;
	r->c = env->nframes;
	r->link = calloc(r->c, sizeof(*r->link));
	r->where = calloc(r->c, 1);
	r->ref = calloc(r->c, 1);
	r->key = calloc(r->c, sizeof(*r->key));
	if (!r->link || !r->where || !r->ref || !r->key || ghosts_init(&r->g, 2 * r->c + 1)) {
		car_destroy(r);
		return -ENOMEM;
	}
	plist_init(&r->t1);
	plist_init(&r->t2);
	plist_init(&r->b1);
	plist_init(&r->b2);
	*state = r;
	return 0;
}

static struct plist *list_of(struct car *r, uint8_t where)
{
	return where == T1 ? &r->t1 : &r->t2;
}

/* max(1, other/hit), the quotient real unless intdelta (hit is not 0:
 * the key was found on that list). */
static double delta(const struct car *r, uint32_t hit, uint32_t other)
{
	if (hit >= other)
		return 1.0;
	return r->intdelta ? (double)(other / hit) : (double)other / (double)hit;
}

static void car_insert(void *state, uint32_t frame, uint64_t key, bool write)
{
	struct car *r = state;
	uint32_t g = ghost_find(&r->g, key);
	uint32_t total = r->t1.len + r->t2.len + r->b1.len + r->b2.len;

	if (r->where[frame] != NONE) {
		plist_del(list_of(r, r->where[frame]), r->link, frame);
		r->where[frame] = NONE;
	}
	r->key[frame] = key;
	r->ref[frame] = 0;
	if (g == PNIL) {
		if (r->t1.len + r->b1.len >= r->c && r->b1.len)
			ghost_drop_oldest(&r->g, &r->b1);
		else if (total >= 2 * r->c && r->b2.len)
			ghost_drop_oldest(&r->g, &r->b2);
		plist_push_head(&r->t1, r->link, frame);
		r->where[frame] = T1;
		return;
	}
	if (r->g.list[g] == B1) {
		double p = r->p + delta(r, r->b1.len, r->b2.len);
		r->p = p < r->c ? p : r->c;
		ghost_drop(&r->g, &r->b1, g);
	} else {
		double p = r->p - delta(r, r->b2.len, r->b1.len);
		r->p = p > 0 ? p : 0;
		ghost_drop(&r->g, &r->b2, g);
	}
	plist_push_head(&r->t2, r->link, frame);
	r->where[frame] = T2;
}

static void car_reference(void *state, uint32_t frame, bool write)
{
	struct car *r = state;

	if (r->where[frame] != NONE)
		r->ref[frame] = 1;
}

static void car_remove(void *state, uint32_t frame, enum policy_remove_reason why)
{
	struct car *r = state;
	uint8_t from = r->where[frame];

	if (from == NONE)
		return;
	plist_del(list_of(r, from), r->link, frame);
	r->where[frame] = NONE;
	if (why != POLICY_EVICTED)
		return;
	if (!r->g.nfree) /* cannot happen within CAR's bounds; be safe */
		ghost_drop_oldest(&r->g, r->b2.len ? &r->b2 : &r->b1);
	if (from == T1)
		ghost_add(&r->g, &r->b1, B1, r->key[frame]);
	else
		ghost_add(&r->g, &r->b2, B2, r->key[frame]);
}

static int64_t car_victim(void *state)
{
	struct car *r = state;
	uint64_t limit = 4ULL * r->c + 4;

	if (r->t1.len + r->t2.len == 0)
		return -1;
	for (uint64_t step = 0; step < limit; step++) {
		bool from_t1 = (double)r->t1.len >= (r->p > 1 ? r->p : 1);
		if (from_t1 ? !r->t1.len : !r->t2.len)
			from_t1 = !from_t1;
		uint32_t f = from_t1 ? r->t1.tail : r->t2.tail;
		if (!r->ref[f])
			return f;
		r->ref[f] = 0;
		r->env->age(r->env->host, f);
		plist_del(from_t1 ? &r->t1 : &r->t2, r->link, f);
		plist_push_head(&r->t2, r->link, f);
		r->where[f] = T2;
	}
	return r->t2.len ? r->t2.tail : r->t1.tail;
}

const struct policy_ops upager__policy_car = {
	.abi = UPAGER_POLICY_ABI,
	.size = sizeof(struct policy_ops),
	.name = "car",
	.summary =
		"CAR: ARC's adaptation on two clocks, hits only set a bit (Bansal & Modha; intdelta=1)",
	.create = car_create,
	.destroy = car_destroy,
	.insert = car_insert,
	.reference = car_reference,
	.remove = car_remove,
	.victim = car_victim,
};
