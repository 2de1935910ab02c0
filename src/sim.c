// SPDX-License-Identifier: MIT
/*
 * The simulator: replays a reference string through a policy.
 *
 * The host here plays the pager's part with every reference visible: a
 * cache of `frames` frames, empty at the start. For each reference:
 *
 *   resident -> a hit: reference(frame)
 *   else     -> a miss: miss(key) if the policy has it; a free frame if
 *               any, else victim() and remove(victim, EVICTED); then
 *               insert(frame, key)
 *
 * Pages are renamed to dense ids when the trace is loaded, so the host
 * finds a page's frame with one array lookup and a policy sees a stable
 * key (the id) for each page. The age() callback does nothing: there is
 * no hidden accessed bit to re-arm.
 *
 * OPT (Belady's MIN) needs the future: one backwards pass gives each
 * reference the position of the next reference to the same page, and the
 * resident pages sit in a heap keyed by that position, farthest on top.
 * On a hit the page's key moves to its next use; on a miss with a full
 * cache the heap's top (farthest next use, or never used again) is
 * evicted. Demand paging:
 * the missing page is always brought in. "opt:bypass=1" is the variant of
 * cache simulators that may decline to cache the missing page when it is
 * used no sooner than every resident one (Caffeine's Clairvoyant policy
 * counts it so); it can only score higher.
 */
#include "iheap.h"
#include "internal.h"
#include "policy.h"
#include "sim.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void sim_trace_init(struct sim_trace *t)
{
	memset(t, 0, sizeof(*t));
}

void sim_trace_free(struct sim_trace *t)
{
	free(t->ref);
	free(t->key);
	keymap_free(&t->map);
	memset(t, 0, sizeof(*t));
}

static int grow_map(struct sim_trace *t)
{
	struct keymap bigger;
	uint64_t max = t->map.keys ? (uint64_t)(t->map.mask + 1) : 1024;

	if (keymap_init(&bigger, max))
		return -ENOMEM;
	for (uint32_t id = 0; id < t->nids; id++)
		keymap_put(&bigger, t->key[id], id);
	keymap_free(&t->map);
	t->map = bigger;
	return 0;
}

int sim_trace_add(struct sim_trace *t, uint64_t key, int write)
{
	uint32_t id;

	if (!t->map.keys || (uint64_t)t->map.count * 2 + 2 > (uint64_t)t->map.mask + 1)
		if (grow_map(t))
			return -ENOMEM;
	id = keymap_get(&t->map, key);
	if (id == PNIL) {
		if (t->nids == SIM_WRITE - 1)
			return -E2BIG;
		if (t->nids == t->key_cap) {
			uint32_t cap = t->key_cap ? t->key_cap * 2 : 1024;
			uint64_t *k = realloc(t->key, (size_t)cap * sizeof(*k));
			if (!k)
				return -ENOMEM;
			t->key = k;
			t->key_cap = cap;
		}
		id = t->nids++;
		t->key[id] = key;
		keymap_put(&t->map, key, id);
	}
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 4096;
		uint32_t *r;
		if (cap > UINT32_MAX)
			return -E2BIG;
		r = realloc(t->ref, cap * sizeof(*r));
		if (!r)
			return -ENOMEM;
		t->ref = r;
		t->cap = cap;
	}
	t->ref[t->n++] = id | (write ? SIM_WRITE : 0);
	return 0;
}

static void no_age(void *host, uint32_t frame)
{
}

int sim_run(const char *spec, uint32_t frames, const struct sim_trace *t, upager_sim_result_t *out)
{
	struct policy *pol;
	uint32_t *frame_of, *id_of, used = 0;
	upager_sim_result_t r = { 0 };
	int err;

	if (!frames)
		return upager__fail(-EINVAL, "a cache needs at least one frame");
	err = policy_create(spec, frames, no_age, NULL, &pol);
	if (err)
		return err;
	frame_of = malloc(((size_t)t->nids + 1) * sizeof(*frame_of));
	id_of = malloc((size_t)frames * sizeof(*id_of));
	if (!frame_of || !id_of) {
		err = -ENOMEM;
		goto out;
	}
	memset(frame_of, 0xff, ((size_t)t->nids + 1) * sizeof(*frame_of));

	const struct policy_ops *ops = pol->ops;
	void *st = pol->state;
	for (size_t i = 0; i < t->n; i++) {
		uint32_t id = SIM_ID(t->ref[i]);
		bool w = t->ref[i] & SIM_WRITE;
		uint32_t f = frame_of[id];

		r.writes += w;
		if (f != PNIL) {
			r.hits++;
			ops->reference(st, f, w);
			continue;
		}
		if (ops->miss)
			ops->miss(st, id, w);
		if (used < frames) {
			f = used++;
		} else {
			int64_t v = ops->victim(st);
			if (v < 0 || v >= frames) {
				err = upager__fail(
					-EPROTO,
					"policy %s named no valid victim (%lld) with a full cache at request %zu",
					ops->name, (long long)v, i);
				goto out;
			}
			f = (uint32_t)v;
			frame_of[id_of[f]] = PNIL;
			ops->remove(st, f, POLICY_EVICTED);
			r.evictions++;
		}
		frame_of[id] = f;
		id_of[f] = id;
		ops->insert(st, f, id, w);
	}
	r.requests = t->n;
	*out = r;
out:
	free(frame_of);
	free(id_of);
	policy_destroy(pol);
	return err;
}

/* ---- OPT ---- */

/* The resident pages sit in slots 0..frames-1 of an indexed min-heap
 * (iheap.h) keyed by how far away their next use is, inverted: k1 =
 * UINT32_MAX - next, so the page used farthest away (or never, next =
 * UINT32_MAX, k1 = 0) is on top. */
static void opt_key(struct iheap *h, uint32_t s, uint32_t next)
{
	h->k1[s] = UINT32_MAX - (uint64_t)next;
}

int sim_run_opt(uint32_t frames, const struct sim_trace *t, bool bypass, upager_sim_result_t *out)
{
	uint32_t *next = NULL, *last = NULL, *slot_of = NULL, *id_of = NULL, used = 0;
	struct iheap h = { 0 };
	upager_sim_result_t r = { 0 };
	int err = -ENOMEM;

	if (!frames)
		return upager__fail(-EINVAL, "a cache needs at least one frame");
	next = malloc((t->n + 1) * sizeof(*next));
	last = malloc(((size_t)t->nids + 1) * sizeof(*last));
	slot_of = malloc(((size_t)t->nids + 1) * sizeof(*slot_of));
	id_of = malloc((size_t)frames * sizeof(*id_of));
	if (!next || !last || !slot_of || !id_of || iheap_init(&h, frames))
		goto out;
	/* Next use of each reference's page; UINT32_MAX = never again. */
	memset(last, 0xff, ((size_t)t->nids + 1) * sizeof(*last));
	for (size_t i = t->n; i-- > 0;) {
		uint32_t id = SIM_ID(t->ref[i]);
		next[i] = last[id];
		last[id] = (uint32_t)i;
	}
	memset(slot_of, 0xff, ((size_t)t->nids + 1) * sizeof(*slot_of));
	for (size_t i = 0; i < t->n; i++) {
		uint32_t id = SIM_ID(t->ref[i]);
		uint32_t s = slot_of[id];

		r.writes += !!(t->ref[i] & SIM_WRITE);
		if (s != PNIL) {
			r.hits++;
			opt_key(&h, s, next[i]); /* later than i: farther away */
			iheap_fix(&h, s);
			continue;
		}
		if (used < frames) {
			s = used++;
			opt_key(&h, s, next[i]);
			iheap_push(&h, s);
		} else {
			s = iheap_top(&h);
			if (bypass && UINT32_MAX - (uint64_t)next[i] <= h.k1[s])
				continue; /* used no sooner than any resident page */
			slot_of[id_of[s]] = PNIL;
			opt_key(&h, s, next[i]);
			iheap_fix(&h, s);
			r.evictions++;
		}
		slot_of[id] = s;
		id_of[s] = id;
	}
	r.requests = t->n;
	*out = r;
	err = 0;
out:
	free(next);
	free(last);
	free(slot_of);
	free(id_of);
	iheap_free(&h);
	return err;
}

int sim_run_spec(const char *spec, uint32_t frames, const struct sim_trace *t,
		 upager_sim_result_t *out)
{
	if (!strcmp(spec, "opt"))
		return sim_run_opt(frames, t, false, out);
	if (!strcmp(spec, "opt:bypass=1"))
		return sim_run_opt(frames, t, true, out);
	if (!strncmp(spec, "opt:", 4))
		return upager__fail(UPAGER_EPOLICY, "opt takes one parameter: opt:bypass=1");
	return sim_run(spec, frames, t, out);
}

UPAGER_API int upager_sim_run(const char *spec, uint32_t frames, const uint64_t *keys,
			      const uint8_t *writes, size_t n, upager_sim_result_t *out)
{
	struct sim_trace t;
	int err = 0;

	if (!spec || !out || (n && !keys))
		return -EINVAL;
	sim_trace_init(&t);
	for (size_t i = 0; i < n && !err; i++)
		err = sim_trace_add(&t, keys[i], writes && writes[i]);
	if (!err)
		err = sim_run_spec(spec, frames, &t, out);
	sim_trace_free(&t);
	return err;
}
