// SPDX-License-Identifier: MIT
/*
 * CLOCK-Pro (Jiang, Chen and Zhang, USENIX ATC 2005).
 *
 * LIRS's idea, reuse distance instead of recency, on a clock. Pages are
 * hot (short reuse distance) or cold; a cold page gets a "test period"
 * when it comes in, and if it is used again within that period its reuse
 * distance was short enough for it to become hot. To judge that for pages
 * already evicted, cold pages in their test period stay on the clock as
 * non-resident entries (keys only).
 *
 * All entries sit on one circular list in order of last movement: newer
 * at the head. Three hands sweep it from the oldest end towards the head:
 *
 *   HANDcold finds a victim. At a resident cold page: bit clear -> evict
 *       it (it stays on the list as non-resident if still in its test
 *       period); bit set and in test -> it becomes hot (cold target +1),
 *       moves to the head; bit set, not in test -> a new test period, to
 *       the head. Other entries are passed over.
 *   HANDhot keeps the hot set within (frames - cold target). At a hot
 *       page: bit set -> clear it, move it to the head; bit clear -> it
 *       becomes cold (stays put). At a cold entry it ends the test period
 *       (removing a non-resident entry from the list).
 *   HANDtest runs when there are more non-resident entries than `nonres`
 *       x frames: it ends test periods, removing non-resident entries.
 *
 *   A test period that ends without a reuse lowers the cold target by 1;
 *   a reuse within one raises it by 1, so the split between hot and cold
 *   pages adapts to the workload (within mincold..maxcold of the frames).
 *
 *          head (new)  ->  [H] [c*] [n] [H] [c] [n] [H]  ->  tail (old)
 *          H hot, c resident cold (* = in test), n non-resident cold
 *
 * A miss on a key found as a non-resident entry is a reuse within the
 * test period: the page comes back hot. Any other miss brings it in cold,
 * in its test period (until the clock first fills up new pages are hot).
 * A hit only sets the referenced bit; the hands clear bits through
 * env->age(), so the live pager sees the next access.
 *
 * Parameters: mincold=F and maxcold=F bound the cold target (shares of the
 * frames, defaults 0.01 and 0.99), nonres=F bounds non-resident entries
 * (share of the frames, default 1.0).
 */
#include "internal.h"
#include "keymap.h"
#include "policy.h"

#include <errno.h>
#include <stdlib.h>

enum { FREE, HOT, COLD, NONRES };

struct cpro {
	const struct policy_env *env;
	uint32_t c, m; /* frames; non-resident capacity */
	uint32_t nhot, ncold, nnonres;
	uint32_t mc, minc, maxc; /* cold target and its bounds */
	bool pressure;           /* a victim was ever asked for */
	struct plist clk;
	struct plink *link; /* nodes 0..c-1 frames, c..c+m-1 non-resident */
	uint8_t *status, *test, *ref;
	uint64_t *key;
	struct keymap map; /* key -> non-resident node */
	uint32_t *free;    /* free non-resident nodes */
	uint32_t nfree;
	uint32_t hand_hot, hand_cold, hand_test;
};

static void cp_destroy(void *state)
{
	struct cpro *p = state;

	free(p->link);
	free(p->status);
	free(p->test);
	free(p->ref);
	free(p->key);
	free(p->free);
	keymap_free(&p->map);
	free(p);
}

static int cp_create(const struct policy_env *env, const char *params, void **state)
{
	static const char *const keys[] = { "mincold", "maxcold", "nonres", NULL };
	double minc, maxc, nonres;
	struct cpro *p;
	uint32_t n;
	int err = policy_params_check(params, keys);

	if (!err)
		err = policy_param_fraction("clockpro", params, "mincold", 0.01, 0.0, 1.0, &minc);
	if (!err)
		err = policy_param_fraction("clockpro", params, "maxcold", 0.99, 0.0, 1.0, &maxc);
	if (!err)
		err = policy_param_fraction("clockpro", params, "nonres", 1.0, 0.0, 16.0, &nonres);
	if (err)
		return err;
	if (minc > maxc)
		return upager__fail(UPAGER_EPOLICY, "policy clockpro: mincold > maxcold");
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->env = env;
	p->c = env->nframes;
	p->m = (uint32_t)(nonres * p->c);
	p->minc = (uint32_t)(minc * p->c);
	p->maxc = (uint32_t)(maxc * p->c);
	if (p->minc < 1)
		p->minc = 1;
	if (p->maxc < p->minc)
		p->maxc = p->minc;
	p->mc = p->minc;
	n = p->c + p->m;
	p->link = calloc(n, sizeof(*p->link));
	p->status = calloc(n, 1);
	p->test = calloc(n, 1);
	p->ref = calloc(n, 1);
	p->key = calloc(n, sizeof(*p->key));
	p->free = calloc(p->m ? p->m : 1, sizeof(*p->free));
	if (!p->link || !p->status || !p->test || !p->ref || !p->key || !p->free ||
	    keymap_init(&p->map, p->m)) {
		cp_destroy(p);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < p->m; i++)
		p->free[p->nfree++] = n - 1 - i;
	plist_init(&p->clk);
	p->hand_hot = p->hand_cold = p->hand_test = PNIL;
	*state = p;
	return 0;
}

/* The next entry a hand visits: towards the head, wrapping to the tail. */
static uint32_t step(const struct cpro *p, uint32_t i)
{
	uint32_t n = p->link[i].prev;
	return n == PNIL ? p->clk.tail : n;
}

static uint32_t at(const struct cpro *p, uint32_t hand)
{
	return hand == PNIL ? p->clk.tail : hand;
}

/* Takes i off the list; hands on it move on to the next entry. */
static void detach(struct cpro *p, uint32_t i)
{
	uint32_t next = step(p, i);

	if (next == i)
		next = PNIL;
	if (p->hand_hot == i)
		p->hand_hot = next;
	if (p->hand_cold == i)
		p->hand_cold = next;
	if (p->hand_test == i)
		p->hand_test = next;
	plist_del(&p->clk, p->link, i);
}

static void to_head(struct cpro *p, uint32_t i)
{
	detach(p, i);
	plist_push_head(&p->clk, p->link, i);
}

static void adjust(struct cpro *p, int d)
{
	if (d > 0 && p->mc < p->maxc)
		p->mc++;
	else if (d < 0 && p->mc > p->minc)
		p->mc--;
}

static void drop_nonres(struct cpro *p, uint32_t i)
{
	detach(p, i);
	keymap_del(&p->map, p->key[i]);
	p->status[i] = FREE;
	p->test[i] = 0;
	p->free[p->nfree++] = i;
	p->nnonres--;
}

/* Ends i's test period; a non-resident entry leaves the clock. Returns
 * true if i was removed (hands on it have moved on). */
static bool end_test(struct cpro *p, uint32_t i)
{
	if (!p->test[i])
		return false;
	p->test[i] = 0;
	adjust(p, p->ref[i] ? 1 : -1);
	if (p->status[i] == NONRES) {
		drop_nonres(p, i);
		return true;
	}
	return false;
}

/* HANDhot: turns one hot page cold. Returns false if it found none. */
static bool run_hand_hot(struct cpro *p)
{
	uint64_t limit = 2ULL * (p->c + p->m) + 4;

	for (uint64_t s = 0; s < limit && p->nhot; s++) {
		uint32_t h = at(p, p->hand_hot);
		if (p->status[h] == HOT) {
			if (p->ref[h]) {
				p->ref[h] = 0;
				p->env->age(p->env->host, h);
				to_head(p, h);
				continue;
			}
			p->status[h] = COLD;
			p->nhot--;
			p->ncold++;
			p->hand_hot = step(p, h);
			return true;
		}
		if (!end_test(p, h))
			p->hand_hot = step(p, h);
	}
	return false;
}

/* HANDtest: ends test periods until at most limit entries are
 * non-resident. */
static void run_hand_test(struct cpro *p, uint32_t max_nonres)
{
	uint64_t limit = 2ULL * (p->c + p->m) + 4;

	for (uint64_t s = 0; s < limit && p->nnonres > max_nonres; s++) {
		uint32_t h = at(p, p->hand_test);
		if (!end_test(p, h))
			p->hand_test = step(p, h);
	}
}

static void balance_hot(struct cpro *p)
{
	while (p->nhot > p->c - p->mc && run_hand_hot(p))
		;
}

static void cp_insert(void *state, uint32_t frame, uint64_t key, bool write)
{
	struct cpro *p = state;
	uint32_t g = p->m ? keymap_get(&p->map, key) : PNIL;

	if (p->status[frame] != FREE) /* re-inserted without a remove */
		return;
	p->key[frame] = key;
	p->ref[frame] = 0;
	p->test[frame] = 0;
	if (g != PNIL) {
		/* Reused within its test period: its reuse distance is short. */
		adjust(p, 1);
		drop_nonres(p, g);
		p->status[frame] = HOT;
		p->nhot++;
		plist_push_head(&p->clk, p->link, frame);
		balance_hot(p);
		return;
	}
	if (!p->pressure && p->nhot < p->c - p->mc) {
		p->status[frame] = HOT;
		p->nhot++;
	} else {
		p->status[frame] = COLD;
		p->test[frame] = 1;
		p->ncold++;
	}
	plist_push_head(&p->clk, p->link, frame);
}

static void cp_reference(void *state, uint32_t frame, bool write)
{
	struct cpro *p = state;

	if (p->status[frame] == HOT || p->status[frame] == COLD)
		p->ref[frame] = 1;
}

static void cp_remove(void *state, uint32_t frame, enum policy_remove_reason why)
{
	struct cpro *p = state;
	uint8_t st = p->status[frame];

	if (st != HOT && st != COLD)
		return;
	if (st == HOT)
		p->nhot--;
	else
		p->ncold--;
	if (why == POLICY_EVICTED && st == COLD && p->test[frame] && p->m) {
		/* Stays on the clock, in its place, as a non-resident entry. */
		if (!p->nfree)
			run_hand_test(p, p->m - 1);
		if (p->nfree) {
			uint32_t g = p->free[--p->nfree];
			/* Link g just after frame (towards the tail), so a hand
			 * on frame moves on to the next entry, not onto g. */
			struct plink *l = p->link;
			l[g].prev = frame;
			l[g].next = l[frame].next;
			if (l[frame].next != PNIL)
				l[l[frame].next].prev = g;
			else
				p->clk.tail = g;
			l[frame].next = g;
			p->clk.len++;
			p->status[g] = NONRES;
			p->test[g] = 1;
			p->ref[g] = 0;
			p->key[g] = p->key[frame];
			keymap_put(&p->map, p->key[g], g);
			p->nnonres++;
		}
	}
	detach(p, frame);
	p->status[frame] = FREE;
	p->test[frame] = 0;
	p->ref[frame] = 0;
	run_hand_test(p, p->m);
}

static int64_t cp_victim(void *state)
{
	struct cpro *p = state;
	uint64_t limit = 4ULL * (p->c + p->m) + 16;

	if (!p->nhot && !p->ncold)
		return -1;
	p->pressure = true;
	for (uint64_t s = 0; s < limit; s++) {
		if (!p->ncold && !run_hand_hot(p))
			break;
		uint32_t h = at(p, p->hand_cold);
		if (p->status[h] != COLD) {
			p->hand_cold = step(p, h);
			continue;
		}
		if (!p->ref[h]) {
			p->hand_cold = h;
			return h;
		}
		p->ref[h] = 0;
		p->env->age(p->env->host, h);
		if (p->test[h]) {
			/* Used again within its test period: promote. */
			p->test[h] = 0;
			adjust(p, 1);
			p->status[h] = HOT;
			p->ncold--;
			p->nhot++;
			to_head(p, h);
			balance_hot(p);
		} else {
			p->test[h] = 1;
			to_head(p, h);
		}
	}
	/* Every bit kept getting set again (a busy host): any resident page. */
	for (uint32_t i = p->clk.tail; i != PNIL; i = p->link[i].prev)
		if (p->status[i] == HOT || p->status[i] == COLD)
			return i;
	return -1;
}

const struct policy_ops upager__policy_clockpro = {
	.abi = UPAGER_POLICY_ABI,
	.size = sizeof(struct policy_ops),
	.name = "clockpro",
	.summary = "CLOCK-Pro: hot/cold pages by reuse distance, test periods, three hands",
	.create = cp_create,
	.destroy = cp_destroy,
	.insert = cp_insert,
	.reference = cp_reference,
	.remove = cp_remove,
	.victim = cp_victim,
};
