// SPDX-License-Identifier: MIT
/*
 * A replacement policy written outside the library, against the public
 * header only: GCLOCK (generalised clock). It is registered by name, runs
 * a live pager under a skewed workload, and then replays that workload's
 * page references in the simulator next to the built-ins and OPT.
 *
 * GCLOCK gives each resident page a counter instead of Clock's single
 * bit: a new page starts at 1, each reference seen adds 1 (up to max).
 * The hand sweeps the frames; a page with a count above zero loses one and
 * is passed over, the first page found at zero is the victim. Pages used
 * often survive several sweeps. Every decrement consumes reference
 * information, so it calls env->age(): the live pager then unmaps the
 * page and its next access comes back through reference().
 *
 *   build:  make examples/custom-policy
 *   run:    ./examples/custom-policy            (parameter: max=N)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "upager.h"

struct gclock {
	const upager_policy_env_t *env;
	uint32_t n, hand, resident;
	uint8_t *count;   /* per frame */
	uint8_t *present; /* per frame */
	uint8_t max;
};

static int gc_create(const upager_policy_env_t *env, const char *params, void **state)
{
	struct gclock *g;
	unsigned max = 3;

	/* Parameters: "" or "max=N", anything else is rejected. */
	if (params[0]) {
		char *end;
		if (strncmp(params, "max=", 4))
			return -EINVAL;
		max = (unsigned)strtoul(params + 4, &end, 10);
		if (*end || max < 1 || max > 255)
			return -EINVAL;
	}
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	/* All memory is allocated here: the hooks below never allocate. */
	g->count = calloc(env->nframes, 1);
	g->present = calloc(env->nframes, 1);
	if (!g->count || !g->present) {
		free(g->count);
		free(g->present);
		free(g);
		return -ENOMEM;
	}
	g->env = env;
	g->n = env->nframes;
	g->max = (uint8_t)max;
	*state = g;
	return 0;
}

static void gc_destroy(void *state)
{
	struct gclock *g = state;

	free(g->count);
	free(g->present);
	free(g);
}

static void gc_insert(void *state, uint32_t frame, uint64_t key, bool write)
{
	struct gclock *g = state;

	if (!g->present[frame])
		g->resident++;
	g->present[frame] = 1;
	g->count[frame] = 1;
}

static void gc_reference(void *state, uint32_t frame, bool write)
{
	struct gclock *g = state;

	if (g->present[frame] && g->count[frame] < g->max)
		g->count[frame]++;
}

static void gc_remove(void *state, uint32_t frame, upager_policy_reason_t why)
{
	struct gclock *g = state;

	if (g->present[frame])
		g->resident--;
	g->present[frame] = 0;
	g->count[frame] = 0;
}

static int64_t gc_victim(void *state)
{
	struct gclock *g = state;

	if (!g->resident)
		return -1;
	/* At most max + 1 turns: every turn lowers every count. */
	for (uint64_t steps = 0; steps <= (uint64_t)(g->max + 1) * g->n; steps++) {
		uint32_t f = g->hand;
		g->hand = f + 1 == g->n ? 0 : f + 1;
		if (!g->present[f])
			continue;
		if (g->count[f] == 0)
			return f;
		g->count[f]--;
		g->env->age(g->env->host, f);
	}
	return -1;
}

static const upager_policy_ops_t gclock_ops = {
	.abi = UPAGER_POLICY_ABI,
	.size = sizeof(upager_policy_ops_t),
	.name = "gclock",
	.summary = "generalised clock: a use counter per page (max=N), the hand decrements",
	.create = gc_create,
	.destroy = gc_destroy,
	.insert = gc_insert,
	.reference = gc_reference,
	.remove = gc_remove,
	.victim = gc_victim,
};

#define PAGE 4096
#define FRAMES 256
#define PAGES (4 * FRAMES)
#define ACCESSES 60000

static uint64_t rng(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* The workload: 80% of the accesses go to a hot eighth of the region,
 * the rest anywhere, with a sequential scan of the whole region every
 * 20,000 accesses. Records the page of every access in refs. */
static int workload(const char *policy, uint64_t *refs, uint8_t *writes)
{
	upager_config_t cfg;
	upager_stats_t st;
	upager_t *p;
	uint64_t *mem, s = 12345, sum = 0;
	size_t words_per_page = PAGE / sizeof(uint64_t), n = 0;
	int err;

	upager_config_init(&cfg);
	cfg.ram_bytes = FRAMES * PAGE;
	cfg.page_size = PAGE;
	cfg.policy = policy;
	err = upager_open(&cfg, &p);
	if (err) {
		fprintf(stderr, "upager_open(%s): %s\n", policy, upager_last_error());
		return err;
	}
	err = upager_map(p, (size_t)PAGES * PAGE, 0, (void **)&mem);
	if (err) {
		fprintf(stderr, "upager_map: %s\n", upager_strerror(err));
		upager_close(p);
		return err;
	}
	while (n < ACCESSES) {
		if (n % 20000 == 19999) {
			for (uint64_t pg = 0; pg < PAGES && n < ACCESSES; pg++) {
				sum += mem[pg * words_per_page];
				refs[n] = pg;
				writes[n++] = 0;
			}
			continue;
		}
		uint64_t r = rng(&s);
		uint64_t pg = r % 10 < 8 ? (r >> 8) % (PAGES / 8) : (r >> 8) % PAGES;
		uint64_t w = pg * words_per_page + (r >> 32) % words_per_page;
		if (r & (1ULL << 60)) {
			mem[w] = r;
			writes[n] = 1;
		} else {
			sum += mem[w];
			writes[n] = 0;
		}
		refs[n++] = pg;
	}
	upager_stats(p, &st);
	printf("  live %-8s  zero-fill %6llu  minor %6llu  major %6llu  evictions %6llu  writebacks %6llu\n",
	       policy, (unsigned long long)st.faults_zero, (unsigned long long)st.faults_minor,
	       (unsigned long long)st.faults_major, (unsigned long long)st.evictions,
	       (unsigned long long)st.writebacks);
	upager_unmap(p, mem);
	upager_close(p);
	return sum == 42 ? 1 : 0; /* keep the reads */
}

int main(void)
{
	static uint64_t refs[ACCESSES];
	static uint8_t writes[ACCESSES];
	static const char *const sims[] = {
		"gclock", "gclock:max=7", "clock", "lru", "arc", "opt"
	};
	int err = upager_policy_register(&gclock_ops);

	if (err) {
		fprintf(stderr, "upager_policy_register: %s\n", upager_strerror(err));
		return 1;
	}
	printf("A %d-page region through a %d-frame pager, %d accesses:\n", PAGES, FRAMES,
	       ACCESSES);
	if (workload("gclock", refs, writes) < 0 || workload("clock", refs, writes) < 0)
		return 1;

	/* The same reference string, every access visible, from an empty
	 * cache of the same size. */
	printf("The same page references in the simulator, %d frames:\n", FRAMES);
	for (size_t i = 0; i < sizeof(sims) / sizeof(sims[0]); i++) {
		upager_sim_result_t r;
		err = upager_sim_run(sims[i], FRAMES, refs, writes, ACCESSES, &r);
		if (err) {
			fprintf(stderr, "upager_sim_run(%s): %s\n", sims[i], upager_last_error());
			return 1;
		}
		printf("  sim  %-13s hit ratio %6.2f%%  (%llu of %llu)\n", sims[i],
		       100.0 * (double)r.hits / (double)r.requests, (unsigned long long)r.hits,
		       (unsigned long long)r.requests);
	}
	return 0;
}
