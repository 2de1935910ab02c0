/* SPDX-License-Identifier: MIT */
/*
 * The replacement-policy interface, internal side. The types and the
 * contract are public (include/upager.h, "replacement policies"): a policy
 * is told when a page enters a frame, when a reference to it is seen and
 * when it leaves; when asked, it names a victim frame. It never does I/O,
 * never touches page contents and never allocates after create().
 *
 * The same policy file runs in the live pager and in the simulator. Frames
 * are numbered 0..nframes-1; a key names the page a frame holds (stable
 * for as long as the page exists, so ghost lists can remember it).
 *
 * Locking: every hook is called with the policy lock held, so a policy
 * needs no locking of its own. insert, reference and remove are also
 * called with the page's lock held. A hook must not call into the pager,
 * except env->age().
 *
 * The core (pager.c, evict.c) and the built-in policies use the short
 * internal names below; they are the public types under another name.
 */
#ifndef UPAGER_POLICY_H
#define UPAGER_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "upager.h"

#define policy_ops upager_policy_ops
#define policy_env upager_policy_env
#define policy_remove_reason upager_policy_reason
#define POLICY_EVICTED UPAGER_POLICY_EVICTED
#define POLICY_FREED UPAGER_POLICY_FREED

struct policy {
	const struct policy_ops *ops;
	void *state;
	struct policy_env env;
};

/* Looks up "name[:params]" among the built-in and registered policies and
 * creates it for nframes frames. Returns 0 or UPAGER_EPOLICY (with a
 * message), -ENOMEM, or the policy's own create() error. */
int policy_create(const char *spec, uint32_t nframes, void (*age)(void *, uint32_t), void *host,
		  struct policy **out);
void policy_destroy(struct policy *pol);
/* The policy called name[0..len), built-in or registered, or NULL. */
const struct policy_ops *policy_find(const char *name, size_t len);

/* ops->flags, or 0 for a policy built before there were flags. */
static inline uint32_t policy_flags(const struct policy_ops *ops)
{
	return ops->size >= offsetof(struct policy_ops, flags) + sizeof(ops->flags) ? ops->flags
										    : 0;
}

/* Rejects parameters other than the listed keys (NULL-terminated) and
 * items that are not key=value. Returns 0 or UPAGER_EPOLICY. */
int policy_params_check(const char *params, const char *const *keys);
/* A fraction parameter in [lo, hi] (default def if absent). Returns 0 or
 * UPAGER_EPOLICY with a message naming the policy and key. */
int policy_param_fraction(const char *policy, const char *params, const char *key, double def,
			  double lo, double hi, double *out);
/* An integer parameter in [lo, hi] (default def if absent). */
int policy_param_range(const char *policy, const char *params, const char *key, uint64_t def,
		       uint64_t lo, uint64_t hi, uint64_t *out);

/* A small generator for randomised policies (xorshift64*). */
static inline uint64_t policy_rand(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

/* The built-in policies, one file each (policy-<name>.c). */
extern const struct policy_ops upager__policy_fifo;
extern const struct policy_ops upager__policy_random;
extern const struct policy_ops upager__policy_clock;
extern const struct policy_ops upager__policy_lru;
extern const struct policy_ops upager__policy_lfu;
extern const struct policy_ops upager__policy_2q;
extern const struct policy_ops upager__policy_arc;
extern const struct policy_ops upager__policy_car;
extern const struct policy_ops upager__policy_s3fifo;
extern const struct policy_ops upager__policy_sieve;
extern const struct policy_ops upager__policy_clockpro;

#endif /* UPAGER_POLICY_H */
