// SPDX-License-Identifier: MIT
/*
 * A program built against older, smaller copies of upager_config_t and
 * upager_stats_t: nothing after its structs is written, and the config
 * fields it does not have take their defaults (environment included).
 */
#include "testutil.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define PAGE 4096
#define GUARD 0xa5

/* upager_config_t as an older program had it: the fields up to policy. */
struct old_config {
	uint32_t size, version;
	size_t ram_bytes, page_size;
	const char *swap_path;
	uint64_t swap_max;
	const char *backend;
	const char *policy;
};

/* ... and one that knew only the budget. */
struct tiny_config {
	uint32_t size, version;
	size_t ram_bytes, page_size;
};

/* upager_stats_t with only its first counters. */
struct old_stats {
	uint32_t size, version;
	uint64_t faults_zero, faults_minor, faults_major, faults_wp, faults_cow;
	uint64_t evictions, writebacks;
};

/* upager_stats_t exactly as version 2 (upager 0.1.0) laid it out: what a
 * program built before upager_stats_sized() passes to upager_stats(). */
struct stats_v2 {
	uint32_t size, version;
	uint64_t faults_zero, faults_minor, faults_major, faults_wp, faults_cow;
	uint64_t evictions, writebacks, clean_drops, zero_drops, bytes_read, bytes_written;
	uint64_t io_submits, io_errors, direct_reclaims, samples, sample_faults, sample_ns;
	uint64_t trace_records, trace_dropped, readahead_pages, faultaround_pages;
	uint64_t pages_copied, pages_shared, snapshots, pinned_pages, resident_pages;
	uint64_t frames_total, swap_slots_used, swap_slots_total, regions, region_bytes;
	uint64_t metadata_bytes, page_size;
	uint64_t latency_hist[32];
	uint64_t syscalls_transparent;
	char backend[16], mode[16], policy[32], backend_why[400];
};

/* upager_config_t exactly as version 2 laid it out. */
struct config_v2 {
	uint32_t size, version;
	size_t ram_bytes, page_size;
	const char *swap_path;
	uint64_t swap_max;
	const char *backend, *policy;
	upager_mode_t mode;
	unsigned handler_threads;
	int direct_io;
	unsigned evict_batch, free_low, free_high;
	int print_stats;
	double sample_rate;
	const char *trace_path;
	unsigned trace_interval_us;
	upager_error_fn on_error;
	void *on_error_arg;
	char env_error[120];
};

#define WITH_GUARD(type)                  \
	struct {                          \
		type s;                   \
		unsigned char guard[256]; \
	}

static void check_guard(const unsigned char *g, size_t n, const char *what)
{
	for (size_t i = 0; i < n; i++)
		if (g[i] != GUARD)
			FAILF("%s: byte %zu after the caller's struct was overwritten (%#x)", what,
			      i, g[i]);
}

/* Writes and reads pages enough to evict and to sample. */
static void churn(upager_t *p)
{
	enum { PAGES = 256 };
	unsigned char *a;

	CHECK_OK(upager_map(p, PAGES * PAGE, 0, (void **)&a));
	for (unsigned round = 0; round < 4; round++)
		for (unsigned pg = 0; pg < PAGES; pg++) {
			a[pg * PAGE + round] = (unsigned char)(pg + round);
			CHECK_EQ(a[(pg % 16) * PAGE], (unsigned char)(pg % 16));
		}
	for (unsigned pg = 0; pg < PAGES; pg++)
		CHECK_EQ(a[pg * PAGE + 3], (unsigned char)(pg + 3));
	CHECK_OK(upager_unmap(p, a));
}

/* Opens with the older config, which lacks sample_rate, evict_batch and
 * mode; returns the samples the run took. */
static uint64_t run_old_config(const struct test_backend *b)
{
	WITH_GUARD(struct old_config) w;
	WITH_GUARD(struct old_stats) st;
	upager_t *p;

	memset(&w, GUARD, sizeof(w));
	upager_config_init_sized((upager_config_t *)&w.s, sizeof(w.s));
	check_guard(w.guard, sizeof(w.guard), "upager_config_init_sized");
	CHECK_EQ(w.s.size, sizeof(w.s));
	CHECK_EQ(w.s.version, UPAGER_CONFIG_VERSION);
	w.s.backend = b->backend;
	w.s.ram_bytes = 64 * PAGE;
	w.s.page_size = PAGE;
	w.s.policy = "lru";
	/* The fields it lacks take their defaults (evict_batch automatic). */
	CHECK_OK(upager_open((upager_config_t *)&w.s, &p));
	churn(p);

	memset(&st, GUARD, sizeof(st));
	CHECK_OK(upager_stats_sized(p, (upager_stats_t *)&st.s, sizeof(st.s)));
	check_guard(st.guard, sizeof(st.guard), "upager_stats_sized");
	CHECK_EQ(st.s.size, sizeof(st.s));
	CHECK_EQ(st.s.version, UPAGER_STATS_VERSION);
	CHECK_CMP(st.s.faults_zero, >, 0);
	CHECK_CMP(st.s.evictions, >, 0);

	upager_stats_t all;
	CHECK_OK(upager_stats(p, &all));
	CHECK_EQ(all.size, sizeof(all));
	CHECK_EQ(all.faults_zero, st.s.faults_zero);
	CHECK(!strcmp(all.policy, "lru"));
	/* mode is beyond the old struct: the default, unless the
	 * environment says fast. */
	upager_config_t ref;
	upager_config_init(&ref);
	if (ref.mode == UPAGER_MODE_FAST)
		CHECK(!strcmp(all.mode, "fast"));
	CHECK_OK(upager_close(p));
	return all.samples;
}

static void old_config(const struct test_backend *b, void *arg)
{
	const char *env = getenv("UPAGER_SAMPLE");
	char *saved = env ? strdup(env) : NULL;
	upager_config_t ref;

	(void)arg;
	upager_config_init(&ref);
	uint64_t samples = run_old_config(b);
	printf("  %s: sample_rate default %g: %llu samples\n", b->label, ref.sample_rate,
	       (unsigned long long)samples);
	if (ref.sample_rate > 0)
		CHECK_CMP(samples, >, 0);
	else
		CHECK_EQ(samples, 0);

	/* The missing field follows the environment, as
	 * upager_config_init() would have for a newer program. */
	setenv("UPAGER_SAMPLE", "0", 1);
	samples = run_old_config(b);
	CHECK_EQ(samples, 0);
	if (saved) {
		setenv("UPAGER_SAMPLE", saved, 1);
		free(saved);
	} else {
		unsetenv("UPAGER_SAMPLE");
	}
}

/* Programs built against version 2 call the plain symbols. */
static void version2_symbols(void)
{
	WITH_GUARD(struct config_v2) c;
	WITH_GUARD(struct stats_v2) s;
	upager_t *p;

	memset(&c, GUARD, sizeof(c));
	(upager_config_init)((upager_config_t *)&c.s);
	check_guard(c.guard, sizeof(c.guard), "upager_config_init (version 2)");
	CHECK_EQ(c.s.size, sizeof(c.s));
	CHECK_EQ(c.s.evict_batch, 0); /* written: automatic */
	c.s.ram_bytes = 32 * PAGE;
	c.s.page_size = PAGE;
	CHECK_OK(upager_open((upager_config_t *)&c.s, &p));

	memset(&s, GUARD, sizeof(s));
	CHECK_OK((upager_stats)(p, (upager_stats_t *)&s.s));
	check_guard(s.guard, sizeof(s.guard), "upager_stats (version 2)");
	CHECK_EQ(s.s.size, sizeof(s.s));
	CHECK_EQ(s.s.frames_total, 32);
	CHECK_EQ(s.s.page_size, PAGE);
	CHECK(s.s.backend[0] != '\0');
	CHECK_OK(upager_close(p));
}

/* A config that knew only the budget: backend, policy and the rest take
 * their defaults. */
static void tiny_config(void)
{
	WITH_GUARD(struct tiny_config) w;
	upager_config_t ref;
	upager_stats_t st;
	upager_t *p;

	upager_config_init(&ref);
	memset(&w, GUARD, sizeof(w));
	upager_config_init_sized((upager_config_t *)&w.s, sizeof(w.s));
	check_guard(w.guard, sizeof(w.guard), "upager_config_init_sized (tiny)");
	CHECK_EQ(w.s.ram_bytes, ref.ram_bytes);
	w.s.ram_bytes = 32 * PAGE;
	w.s.page_size = PAGE;
	int err = upager_open((upager_config_t *)&w.s, &p);
	if (err == UPAGER_EBACKEND || err == UPAGER_EENV) {
		printf("  tiny config: cannot open with the environment's defaults: %s\n",
		       upager_last_error());
		return;
	}
	CHECK_OK(err);
	CHECK_OK(upager_stats(p, &st));
	size_t n = strcspn(ref.policy, ":");
	if (strncmp(st.policy, ref.policy, n) || st.policy[n])
		FAILF("policy %s, expected the default %.*s", st.policy, (int)n, ref.policy);
	if (strcmp(ref.backend, "auto"))
		CHECK(!strcmp(upager_backend(p, NULL), ref.backend));
	CHECK_OK(upager_close(p));
}

static void bad_sizes(void)
{
	upager_config_t cfg;
	upager_stats_t st;
	upager_t *p;
	unsigned char big[sizeof(upager_stats_t) + 64];

	upager_config_init(&cfg);
	cfg.ram_bytes = 32 * PAGE;
	cfg.page_size = PAGE;
	CHECK_OK(upager_open(&cfg, &p));
	CHECK_ERR(upager_stats_sized(p, &st, 0), -EINVAL);
	CHECK_ERR(upager_stats_sized(p, &st, 7), -EINVAL);
	CHECK_ERR(upager_stats_sized(p, NULL, sizeof(st)), -EINVAL);
	/* Exactly size and version. */
	memset(&st, GUARD, sizeof(st));
	CHECK_OK(upager_stats_sized(p, &st, 8));
	CHECK_EQ(st.size, 8);
	CHECK_EQ(st.faults_zero, 0xa5a5a5a5a5a5a5a5ull);
	/* A newer program's bigger struct: ours is filled, the rest left. */
	memset(big, GUARD, sizeof(big));
	CHECK_OK(upager_stats_sized(p, (upager_stats_t *)big, sizeof(big)));
	CHECK_EQ(((upager_stats_t *)big)->size, sizeof(upager_stats_t));
	check_guard(big + sizeof(upager_stats_t), 64, "upager_stats_sized (bigger struct)");
	CHECK_OK(upager_close(p));

	upager_config_init(&cfg);
	cfg.size = 4;
	CHECK_ERR(upager_open(&cfg, &p), -EINVAL);
}

static void version(void)
{
	char want[32];

	snprintf(want, sizeof(want), "%d.%d.%d", UPAGER_VERSION_MAJOR, UPAGER_VERSION_MINOR,
		 UPAGER_VERSION_PATCH);
	if (strcmp(upager_version(), want))
		FAILF("upager_version() %s, header %s", upager_version(), want);
}

int main(void)
{
	version();
	bad_sizes();
	version2_symbols();
	tiny_config();
	return for_each_backend(old_config, NULL);
}
