// SPDX-License-Identifier: MIT
/*
 * The userfaultfd handler threads of transparent mode, and where they run:
 *
 *   - left to the pager (handler_threads 0) on a process allowed at most 4
 *     CPUs: one handler per allowed CPU, each pinned to its own;
 *   - the same with the process restricted to one CPU when the pager
 *     opens: one handler, on that CPU;
 *   - an explicit handler_threads: that many, not pinned;
 *   - on each allowed CPU in turn, a thread pinned there writes a region
 *     twice the budget and reads it back (zero-fill, eviction to swap,
 *     major faults), and a system call reads from a pipe into pages that
 *     were evicted; then one such thread per CPU at once, on pages of
 *     their own. Every byte is checked.
 *
 * Skips where transparent userfaultfd is not available.
 */
#include "testutil.h"

#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#define PAGE 4096
#define BUDGET_PAGES 256
#define REGION_PAGES (2 * BUDGET_PAGES)

static upager_t *open_transparent(unsigned handler_threads)
{
	upager_config_t cfg;
	upager_t *p;

	upager_config_init(&cfg);
	cfg.backend = "uffd";
	cfg.mode = UPAGER_MODE_TRANSPARENT;
	cfg.ram_bytes = BUDGET_PAGES * PAGE;
	cfg.handler_threads = handler_threads;
	CHECK_OK(upager_open(&cfg, &p));
	return p;
}

/* The handler threads' CPU masks; returns how many there are. */
static unsigned handler_masks(cpu_set_t *masks, unsigned max)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	unsigned n = 0;

	CHECK(d);
	while ((e = readdir(d))) {
		/* Room for any d_name, not only a task id: no truncation. */
		char path[sizeof("/proc/self/task//comm") + sizeof(e->d_name)], comm[32] = "";
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue; /* the thread has just exited */
		if (!fgets(comm, sizeof(comm), f))
			comm[0] = '\0';
		fclose(f);
		if (strcmp(comm, "upager-fault\n"))
			continue;
		CHECK(n < max);
		CHECK_EQ(sched_getaffinity(atoi(e->d_name), sizeof(masks[n]), &masks[n]), 0);
		n++;
	}
	closedir(d);
	return n;
}

static void check_pinned_one_per_cpu(const cpu_set_t *allowed)
{
	cpu_set_t masks[8], seen;
	unsigned n = handler_masks(masks, 8);

	CHECK_EQ(n, CPU_COUNT(allowed));
	CPU_ZERO(&seen);
	for (unsigned i = 0; i < n; i++) {
		CHECK_EQ(CPU_COUNT(&masks[i]), 1);
		cpu_set_t both;
		CPU_AND(&both, &masks[i], allowed);
		CHECK_EQ(CPU_COUNT(&both), 1); /* an allowed CPU */
		CPU_AND(&both, &masks[i], &seen);
		CHECK_EQ(CPU_COUNT(&both), 0); /* not taken by another handler */
		CPU_OR(&seen, &seen, &masks[i]);
	}
}

static void check_unpinned(unsigned want, const cpu_set_t *allowed)
{
	cpu_set_t masks[8];
	unsigned n = handler_masks(masks, 8);

	CHECK_EQ(n, want);
	for (unsigned i = 0; i < n; i++)
		CHECK(CPU_EQUAL(&masks[i], allowed));
}

struct worker {
	upager_t *p;
	unsigned char *base;
	size_t first, pages; /* the pages of the region this worker owns */
	int cpu;
	uint64_t seed;
};

static unsigned char byte_at(uint64_t seed, size_t page, size_t i)
{
	return (unsigned char)(seed * 31 + page * 7 + i * 13);
}

/* On its CPU: writes its pages, reads them back after they have been
 * evicted (the region is twice the budget), then has read(2) fill the
 * first of them again from a pipe and checks that too. */
static void *work(void *arg)
{
	struct worker *w = arg;
	cpu_set_t one;

	CPU_ZERO(&one);
	CPU_SET(w->cpu, &one);
	CHECK_EQ(pthread_setaffinity_np(pthread_self(), sizeof(one), &one), 0);
	for (size_t pg = w->first; pg < w->first + w->pages; pg++)
		for (size_t i = 0; i < PAGE; i += 64)
			w->base[pg * PAGE + i] = byte_at(w->seed, pg, i);
	for (size_t pg = w->first; pg < w->first + w->pages; pg++)
		for (size_t i = 0; i < PAGE; i += 64)
			if (w->base[pg * PAGE + i] != byte_at(w->seed, pg, i))
				FAILF("cpu %d: page %zu byte %zu is %u, wrote %u", w->cpu, pg, i,
				      w->base[pg * PAGE + i], byte_at(w->seed, pg, i));

	int fds[2];
	unsigned char msg[PAGE];
	CHECK_EQ(pipe(fds), 0);
	for (size_t i = 0; i < PAGE; i++)
		msg[i] = (unsigned char)(i ^ w->seed);
	CHECK_EQ(write(fds[1], msg, PAGE), PAGE);
	CHECK_EQ(read(fds[0], w->base + w->first * PAGE, PAGE), PAGE);
	CHECK(!memcmp(w->base + w->first * PAGE, msg, PAGE));
	close(fds[0]);
	close(fds[1]);
	return NULL;
}

static void run_workers(upager_t *p, const int *cpus, unsigned n, uint64_t seed)
{
	unsigned char *base;
	struct worker w[8];
	pthread_t t[8];

	CHECK_OK(upager_map(p, REGION_PAGES * PAGE, 0, (void **)&base));
	for (unsigned i = 0; i < n; i++) {
		w[i] = (struct worker){ p,       base,    i * (REGION_PAGES / n), REGION_PAGES / n,
					cpus[i], seed + i };
		CHECK_EQ(pthread_create(&t[i], NULL, work, &w[i]), 0);
	}
	for (unsigned i = 0; i < n; i++)
		CHECK_EQ(pthread_join(t[i], NULL), 0);
	CHECK_OK(upager_unmap(p, base));
}

int main(void)
{
	cpu_set_t allowed;
	int cpus[8];
	unsigned ncpus = 0;
	upager_t *p;
	upager_stats_t st;

	CHECK_EQ(sched_getaffinity(0, sizeof(allowed), &allowed), 0);
	for (int c = 0; c < CPU_SETSIZE && ncpus < 8; c++)
		if (CPU_ISSET(c, &allowed))
			cpus[ncpus++] = c;

	upager_config_t probe;
	upager_config_init(&probe);
	probe.backend = "uffd";
	probe.mode = UPAGER_MODE_TRANSPARENT;
	probe.ram_bytes = BUDGET_PAGES * PAGE;
	if (upager_open(&probe, &p) < 0) {
		printf("SKIP: transparent userfaultfd is not available: %s\n", upager_last_error());
		return TEST_SKIP;
	}
	upager_close(p);

	/* Left to the pager. */
	p = open_transparent(0);
	if (CPU_COUNT(&allowed) <= 4)
		check_pinned_one_per_cpu(&allowed);
	else
		check_unpinned((unsigned)sysconf(_SC_NPROCESSORS_ONLN), &allowed);
	uint64_t seed = tu_seed();
	for (unsigned i = 0; i < ncpus; i++)
		run_workers(p, &cpus[i], 1, seed + 100 * i);
	run_workers(p, cpus, ncpus, seed + 1000);
	CHECK_OK(upager_stats(p, &st));
	/* Each pass over a region twice the budget wrote out and read back
	 * at least the half that did not fit. */
	CHECK_CMP(st.writebacks, >=, (ncpus + 1) * (REGION_PAGES - BUDGET_PAGES));
	CHECK_CMP(st.faults_major, >, 0);
	printf("pinned: %u CPU(s), %llu pages written out, %llu major faults, all bytes right\n",
	       ncpus, (unsigned long long)st.writebacks, (unsigned long long)st.faults_major);
	upager_close(p);

	/* Restricted to one CPU when the pager opens: one handler there. */
	cpu_set_t last;
	CPU_ZERO(&last);
	CPU_SET(cpus[ncpus - 1], &last);
	CHECK_EQ(sched_setaffinity(0, sizeof(last), &last), 0);
	p = open_transparent(0);
	check_pinned_one_per_cpu(&last);
	run_workers(p, &cpus[ncpus - 1], 1, seed + 2000);
	upager_close(p);
	CHECK_EQ(sched_setaffinity(0, sizeof(allowed), &allowed), 0);

	/* An explicit count: that many, unpinned. */
	p = open_transparent(3);
	check_unpinned(3, &allowed);
	run_workers(p, cpus, ncpus, seed + 3000);
	upager_close(p);
	printf("one CPU: 1 pinned handler; explicit 3: unpinned\n");
	return 0;
}
