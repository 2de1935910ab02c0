/* SPDX-License-Identifier: MIT */
/*
 * The simulator's core, shared by upager_sim_run() and the upager-sim
 * tool: a reference string with its pages renamed to dense ids, a host
 * that runs any policy over it exactly as the pager would (but seeing
 * every reference), and Belady's OPT.
 */
#ifndef UPAGER_SIM_H
#define UPAGER_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keymap.h"
#include "upager.h"

#define SIM_WRITE 0x80000000u
#define SIM_ID(r) ((r)&0x7fffffffu)

/* A reference string: ref[i] = page id | SIM_WRITE; ids are 0..nids-1 in
 * order of first appearance; key[id] is the page's original key. */
struct sim_trace {
	uint32_t *ref;
	size_t n, cap;
	uint64_t *key;
	uint32_t nids, key_cap;
	struct keymap map; /* key -> id while building */
};

void sim_trace_init(struct sim_trace *t);
/* Appends one reference. Returns 0 or -ENOMEM (or -E2BIG past 2^31 pages
 * or 2^32 references). */
int sim_trace_add(struct sim_trace *t, uint64_t key, int write);
void sim_trace_free(struct sim_trace *t);

/* Runs policy spec (not "opt") with frames frames over t from an empty
 * cache. Returns 0, UPAGER_EPOLICY, -ENOMEM, or -EPROTO if the policy
 * broke the contract (message in upager_last_error()). */
int sim_run(const char *spec, uint32_t frames, const struct sim_trace *t, upager_sim_result_t *out);
/* Belady's OPT: on a miss with a full cache, evict the resident page
 * whose next use is farthest away (never used again counts as farthest).
 * With bypass, a missing page used no sooner than every resident page is
 * not brought in at all. Returns 0 or -ENOMEM. */
int sim_run_opt(uint32_t frames, const struct sim_trace *t, bool bypass, upager_sim_result_t *out);
/* Either of the above, by spec. */
int sim_run_spec(const char *spec, uint32_t frames, const struct sim_trace *t,
		 upager_sim_result_t *out);

#endif /* UPAGER_SIM_H */
