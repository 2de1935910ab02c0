/* SPDX-License-Identifier: MIT */
/*
 * The replacement-policy interface. A policy decides, the core acts: a
 * policy is told when a page enters a frame, when a reference to it is
 * seen and when it leaves; when asked, it names a victim frame. It never
 * does I/O, never touches page contents and never allocates after
 * create(): per-frame state lives in arrays sized at create().
 *
 * The same policy file runs in the live pager and in the simulator. Frames
 * are numbered 0..nframes-1; a key names the page a frame holds (stable
 * for as long as the page exists, so ghost lists can remember it).
 *
 * Locking: every hook is called with the policy lock held, so a policy
 * needs no locking of its own. insert, reference and remove are also
 * called with the page's lock held. A hook must not call into the pager,
 * except env->age().
 */
#ifndef UPAGER_POLICY_H
#define UPAGER_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Why a page left its frame. */
enum policy_remove_reason {
	POLICY_EVICTED = 0, /* the policy's own victim (ARC keeps a ghost) */
	POLICY_FREED = 1,   /* the page was unmapped or discarded */
};

/* What the host (pager or simulator) offers a policy. */
struct policy_env {
	uint32_t nframes;
	/*
	 * The policy consumed a frame's referenced bit (a clock hand cleared
	 * it): the host arranges that the next access to that page is seen
	 * and reported through reference(). In the live pager this unmaps the
	 * page (a minor fault follows); the simulator reports every access
	 * anyway, so there it does nothing.
	 */
	void (*age)(void *host, uint32_t frame);
	void *host;
	uint64_t seed; /* for randomised policies */
};

struct policy_ops {
	const char *name;
	const char *summary; /* one line for listings */
	/* params: "key=value,..." or "" */
	int (*create)(const struct policy_env *env, const char *params, void **state);
	void (*destroy)(void *state);
	void (*insert)(void *state, uint32_t frame, uint64_t key, bool write);
	void (*reference)(void *state, uint32_t frame, bool write);
	void (*remove)(void *state, uint32_t frame, enum policy_remove_reason why);
	/* A frame to evict, or -1 if the policy tracks none. The core then
	 * either evicts it (remove(POLICY_EVICTED)) or, if the page is busy,
	 * reports a reference to it and asks again. */
	int64_t (*victim)(void *state);
};

struct policy {
	const struct policy_ops *ops;
	void *state;
	struct policy_env env;
};

/* Looks up "name[:params]" and creates the policy. Returns 0 or
 * UPAGER_EPOLICY (with a message). */
int policy_create(const char *spec, uint32_t nframes, void (*age)(void *, uint32_t), void *host,
		  struct policy **out);
void policy_destroy(struct policy *pol);
const struct policy_ops *policy_find(const char *name, size_t len);

/* Parses one "key=value" parameter out of a params string; helpers for
 * policies. Return true and set *out if key is present and valid. */
bool policy_param_double(const char *params, const char *key, double *out);
bool policy_param_u64(const char *params, const char *key, uint64_t *out);
/* Rejects parameters other than the listed keys (NULL-terminated). */
int policy_params_check(const char *params, const char *const *keys);

extern const struct policy_ops upager__policy_clock;

#endif /* UPAGER_POLICY_H */
