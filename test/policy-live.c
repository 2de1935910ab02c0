// SPDX-License-Identifier: MIT
/*
 * Every policy (built-in and one registered from outside) drives a live
 * pager under a shadow-model workload: random reads and writes of random
 * lengths over a region four times the budget, each byte compared with a
 * copy kept outside the region, then the whole region verified. Skewed
 * towards a hot quarter so the policies' choices differ. The default
 * backend and mode (UPAGER_BACKEND / UPAGER_MODE pick others), 4 KiB
 * pages, 32 frames.
 */
#include "testutil.h"

#include <string.h>

#define FRAMES 32
#define PAGE 4096
#define OPS 2500
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static void run(const char *policy)
{
	upager_config_t cfg;
	upager_t *p;
	upager_stats_t st;
	unsigned char *region, *shadow, buf[2 * PAGE];
	size_t len = 4 * FRAMES * PAGE;
	uint64_t s = tu_rng(0x1234 + strlen(policy));

	upager_config_init(&cfg);
	cfg.ram_bytes = FRAMES * PAGE;
	cfg.page_size = PAGE;
	cfg.policy = policy;
	CHECK_OK(upager_open(&cfg, &p));
	CHECK_OK(upager_map(p, len, 0, (void **)&region));
	shadow = calloc(1, len);
	CHECK(shadow);

	for (unsigned op = 0; op < OPS; op++) {
		size_t n = 1 + rng_next(&s) % sizeof(buf);
		/* Three quarters of the operations in the first quarter. */
		size_t span = rng_next(&s) % 4 ? len / 4 : len;
		size_t off = rng_next(&s) % (span - n + 1);
		if (rng_next(&s) % 2) {
			for (size_t i = 0; i < n; i++)
				buf[i] = (unsigned char)rng_next(&s);
			memcpy(shadow + off, buf, n);
			memcpy(region + off, buf, n);
		} else if (memcmp(region + off, shadow + off, n)) {
			FAILF("%s: op %u: bytes at %zu differ from the shadow", policy, op, off);
		}
	}
	for (size_t off = 0; off < len; off += PAGE)
		if (memcmp(region + off, shadow + off, PAGE))
			FAILF("%s: page %zu differs from the shadow at the end", policy,
			      off / PAGE);

	CHECK_OK(upager_stats(p, &st));
	printf("  %-10s zero %llu minor %llu major %llu evict %llu written %llu\n", st.policy,
	       (unsigned long long)st.faults_zero, (unsigned long long)st.faults_minor,
	       (unsigned long long)st.faults_major, (unsigned long long)st.evictions,
	       (unsigned long long)st.writebacks);
	CHECK(!strncmp(st.policy, policy, strcspn(policy, ":")));
	CHECK_CMP(st.resident_pages, <=, FRAMES);
	CHECK_CMP(st.evictions, >, 0);
	CHECK_CMP(st.faults_major, >, 0);
	CHECK_EQ(st.io_errors, 0);
	CHECK_OK(upager_unmap(p, region));
	CHECK_OK(upager_close(p));
	free(shadow);
}

/* The built-in policies as of this test: more may be added, none may go. */
static const char *const builtin[] = {
	"fifo", "random", "clock", "lru", "lfu", "2q", "arc", "car", "s3fifo", "sieve", "clockpro",
};

int main(void)
{
	const upager_policy_ops_t *ops[128];
	size_t n = upager_policy_list(ops, 128);
	upager_config_t cfg;
	upager_t *p;

	/* Can a pager run here at all? */
	upager_config_init(&cfg);
	cfg.ram_bytes = FRAMES * PAGE;
	int err = upager_open(&cfg, &p);
	if (err == UPAGER_EBACKEND) {
		printf("no usable fault backend: skipped (%s)\n", upager_last_error());
		return TEST_SKIP;
	}
	CHECK_OK(err);
	CHECK_OK(upager_close(p));

	CHECK_CMP(n, >=, NELEM(builtin));
	CHECK_CMP(n, <=, NELEM(ops));
	for (size_t b = 0; b < NELEM(builtin); b++) {
		size_t i = 0;
		while (i < n && strcmp(ops[i]->name, builtin[b]))
			i++;
		if (i == n)
			FAILF("built-in policy '%s' is not listed", builtin[b]);
	}
	for (size_t i = 0; i < n; i++)
		run(ops[i]->name);
	/* Parameters reach the policy through the configuration string. */
	run("s3fifo:small=0.25");
	run("lfu:decay=64");
	printf("policy-live: all checks passed\n");
	return 0;
}
