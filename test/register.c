// SPDX-License-Identifier: MIT
/*
 * The public policy API: registering a policy written against upager.h
 * only, the errors registration and selection give (-EEXIST, -EINVAL,
 * UPAGER_EPOLICY with a message), listing, and running the registered
 * policy in the simulator (upager_sim_run) and in a live pager.
 */
#include "testutil.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

/* A policy from outside the library: most recently inserted first out
 * (a bad policy, but an easy one to predict). */
struct lifo {
	uint32_t n;
	uint32_t *stack; /* frames in insertion order */
	uint32_t len;
	unsigned creates;
};

static unsigned live_states;

static int lifo_create(const upager_policy_env_t *env, const char *params, void **state)
{
	struct lifo *l;

	if (params[0] && strcmp(params, "ok=1"))
		return -EINVAL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->n = env->nframes;
	l->stack = calloc(env->nframes, sizeof(*l->stack));
	if (!l->stack) {
		free(l);
		return -ENOMEM;
	}
	live_states++;
	*state = l;
	return 0;
}

static void lifo_destroy(void *state)
{
	struct lifo *l = state;

	live_states--;
	free(l->stack);
	free(l);
}

static void lifo_insert(void *state, uint32_t frame, uint64_t key, bool write)
{
	struct lifo *l = state;

	l->stack[l->len++] = frame;
}

static void lifo_reference(void *state, uint32_t frame, bool write)
{
}

static void lifo_remove(void *state, uint32_t frame, upager_policy_reason_t why)
{
	struct lifo *l = state;

	for (uint32_t i = 0; i < l->len; i++)
		if (l->stack[i] == frame) {
			memmove(l->stack + i, l->stack + i + 1,
				(l->len - i - 1) * sizeof(*l->stack));
			l->len--;
			return;
		}
}

static int64_t lifo_victim(void *state)
{
	struct lifo *l = state;

	return l->len ? (int64_t)l->stack[l->len - 1] : -1;
}

static const upager_policy_ops_t lifo_ops = {
	.abi = UPAGER_POLICY_ABI,
	.size = sizeof(upager_policy_ops_t),
	.name = "lifo",
	.summary = "last in, first out (test)",
	.create = lifo_create,
	.destroy = lifo_destroy,
	.insert = lifo_insert,
	.reference = lifo_reference,
	.remove = lifo_remove,
	.victim = lifo_victim,
};

int main(void)
{
	upager_policy_ops_t bad = lifo_ops;
	const upager_policy_ops_t *list[64];
	upager_sim_result_t r;
	upager_config_t cfg;
	upager_t *p;

	/* Registration and its errors. */
	CHECK_OK(upager_policy_register(&lifo_ops));
	CHECK_ERR(upager_policy_register(&lifo_ops), -EEXIST);
	bad.name = "lru";
	CHECK_ERR(upager_policy_register(&bad), -EEXIST);
	bad.name = "opt";
	CHECK_ERR(upager_policy_register(&bad), -EEXIST);
	bad.name = "Bad Name";
	CHECK_ERR(upager_policy_register(&bad), -EINVAL);
	bad.name = "a:b";
	CHECK_ERR(upager_policy_register(&bad), -EINVAL);
	bad.name = "";
	CHECK_ERR(upager_policy_register(&bad), -EINVAL);
	bad = lifo_ops;
	bad.name = "lifo2";
	bad.abi = UPAGER_POLICY_ABI + 1;
	CHECK_ERR(upager_policy_register(&bad), -EINVAL);
	bad.abi = UPAGER_POLICY_ABI;
	bad.victim = NULL;
	CHECK_ERR(upager_policy_register(&bad), -EINVAL);
	CHECK_ERR(upager_policy_register(NULL), -EINVAL);
	/* Built against a header without ops->flags: accepted, no flags;
	 * anything shorter is refused. */
	static upager_policy_ops_t before_flags;
	before_flags = lifo_ops;
	before_flags.name = "lifo-old";
	before_flags.size = offsetof(upager_policy_ops_t, flags);
	bad = before_flags;
	bad.name = "lifo-short";
	bad.size = offsetof(upager_policy_ops_t, miss);
	CHECK_ERR(upager_policy_register(&bad), -EINVAL);
	CHECK_OK(upager_policy_register(&before_flags));

	/* Listing: the eleven built-ins, then ours. */
	size_t n = upager_policy_list(list, 64);
	CHECK_EQ(n, 13);
	CHECK_EQ(upager_policy_list(NULL, 0), 13);
	CHECK(!strcmp(list[11]->name, "lifo"));
	CHECK(!strcmp(list[12]->name, "lifo-old"));
	static const char *const builtins[] = { "fifo",   "random", "clock",   "lru",
						"lfu",    "2q",     "arc",     "car",
						"s3fifo", "sieve",  "clockpro" };
	for (size_t i = 0; i < 11; i++)
		CHECK(!strcmp(list[i]->name, builtins[i]));

	/* The simulator: 1,2,3,4,1,2,3,4 with 3 frames. LIFO keeps 1 and 2
	 * for good and cycles 3 and 4 through the third frame: misses 1 2 3
	 * 4(-3), hits 1 2, miss 3(-4), miss 4(-3) = 6 misses, 2 hits. */
	static const uint64_t keys[] = { 1, 2, 3, 4, 1, 2, 3, 4 };
	static const uint8_t writes[] = { 0, 1, 0, 1, 0, 0, 0, 0 };
	CHECK_OK(upager_sim_run("lifo", 3, keys, writes, 8, &r));
	CHECK_EQ(r.requests, 8);
	CHECK_EQ(r.hits, 2);
	CHECK_EQ(r.writes, 2);
	CHECK_EQ(r.evictions, 3);
	CHECK_OK(upager_sim_run("lifo:ok=1", 3, keys, NULL, 8, &r));
	CHECK_OK(upager_sim_run("lifo-old", 3, keys, NULL, 8, &r));
	CHECK_EQ(r.hits, 2);
	CHECK_OK(upager_sim_run("opt", 3, keys, NULL, 8, &r));
	CHECK_EQ(r.hits, 3); /* OPT: 1 2 3 4(-3) 1h 2h 3(-1 or -2) 4h */
	CHECK_EQ(live_states, 0);

	/* Selection errors carry a message. */
	CHECK_ERR(upager_sim_run("lifo:bogus=1", 3, keys, NULL, 8, &r), UPAGER_EPOLICY);
	CHECK(strstr(upager_last_error(), "lifo"));
	CHECK_ERR(upager_sim_run("nosuch", 3, keys, NULL, 8, &r), UPAGER_EPOLICY);
	CHECK(strstr(upager_last_error(), "unknown policy 'nosuch'"));
	CHECK_ERR(upager_sim_run("s3fifo:smal=0.1", 3, keys, NULL, 8, &r), UPAGER_EPOLICY);
	CHECK(strstr(upager_last_error(), "smal"));
	CHECK_ERR(upager_sim_run("s3fifo:small=2", 3, keys, NULL, 8, &r), UPAGER_EPOLICY);
	CHECK(strstr(upager_last_error(), "small"));
	CHECK_ERR(upager_sim_run("lru:x", 3, keys, NULL, 8, &r), UPAGER_EPOLICY);
	CHECK_ERR(upager_sim_run("opt:x=1", 3, keys, NULL, 8, &r), UPAGER_EPOLICY);
	CHECK_ERR(upager_sim_run("lru", 0, keys, NULL, 8, &r), -EINVAL);

	/* The pager: unknown parameters fail upager_open with a message;
	 * the registered policy runs and is named in the statistics. */
	upager_config_init(&cfg);
	cfg.ram_bytes = 16 * 4096;
	cfg.policy = "arc:bogus=1";
	CHECK_ERR(upager_open(&cfg, &p), UPAGER_EPOLICY);
	CHECK(strstr(upager_last_error(), "bogus"));
	/* ... and so does the environment. */
	setenv("UPAGER_POLICY", "lifo:bogus=1", 1);
	upager_config_init(&cfg);
	cfg.ram_bytes = 16 * 4096;
	CHECK_ERR(upager_open(&cfg, &p), UPAGER_EPOLICY);
	CHECK(strstr(upager_last_error(), "lifo"));
	setenv("UPAGER_POLICY", "lifo", 1);
	upager_config_init(&cfg);
	cfg.ram_bytes = 16 * 4096;
	int err = upager_open(&cfg, &p); /* copies the policy string */
	unsetenv("UPAGER_POLICY");
	if (err == UPAGER_EBACKEND) {
		printf("register: no usable fault backend, live part skipped\n");
		return 0;
	}
	CHECK_OK(err);
	unsigned char *m;
	size_t len = 64 * 4096;
	CHECK_OK(upager_map(p, len, 0, (void **)&m));
	for (size_t i = 0; i < len; i++)
		m[i] = (unsigned char)(i * 7 + 1);
	for (size_t i = 0; i < len; i++)
		CHECK_EQ(m[i], (unsigned char)(i * 7 + 1));
	upager_stats_t st;
	CHECK_OK(upager_stats(p, &st));
	CHECK(!strcmp(st.policy, "lifo"));
	CHECK_CMP(st.evictions, >, 0);
	CHECK_OK(upager_close(p));
	CHECK_EQ(live_states, 0);
	printf("register: all checks passed\n");
	return 0;
}
