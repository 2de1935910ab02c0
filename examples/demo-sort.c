// SPDX-License-Identifier: MIT
/*
 * demo-sort: sorts an array far larger than its RAM budget, out of core,
 * with nothing but ordinary loads and stores on upager memory.
 *
 *   1. fill region A (--data bytes) with pseudo-random 64-bit keys;
 *   2. sort A in runs of half the budget with qsort (each run fits);
 *   3. merge the runs into region B with a small heap;
 *   4. check that B is sorted and holds the same keys (sum and xor).
 *
 * A and B together are 2 x data, by default 8 times the budget: the pager
 * writes and reads them through its swap file the whole time. The program
 * ends with upager's statistics.
 *
 *   demo-sort [--ram SIZE] [--data SIZE] [--page-size SIZE] [--fast]
 *
 * Any UPAGER_* variable (UPAGER_POLICY, UPAGER_BACKEND, ...) applies too.
 */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "upager.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* A min-heap of run heads for the merge, in ordinary memory. */
struct head {
	uint64_t key;
	size_t pos, end;
};

static void sift_down(struct head *h, size_t n, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < n && h[l].key < h[m].key)
			m = l;
		if (r < n && h[r].key < h[m].key)
			m = r;
		if (m == i)
			return;
		struct head t = h[i];
		h[i] = h[m];
		h[m] = t;
		i = m;
	}
}

static void usage(const char *argv0)
{
	fprintf(stderr, "usage: %s [--ram SIZE] [--data SIZE] [--page-size SIZE] [--fast]\n",
		argv0);
	exit(2);
}

static uint64_t size_arg(const char *argv0, const char *opt, const char *v)
{
	uint64_t n;
	if (!v || upager_parse_size(v, &n) < 0) {
		fprintf(stderr, "%s: %s needs a size like 64M, got '%s'\n", argv0, opt, v ? v : "");
		usage(argv0);
	}
	return n;
}

int main(int argc, char **argv)
{
	upager_config_t cfg;
	upager_t *p;
	uint64_t *a, *b;
	uint64_t data = 0;
	int err;

	upager_config_init(&cfg);
	if (!getenv("UPAGER_RAM"))
		cfg.ram_bytes = 64u << 20;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--ram"))
			cfg.ram_bytes = size_arg(argv[0], argv[i], argv[i + 1]), i++;
		else if (!strcmp(argv[i], "--data"))
			data = size_arg(argv[0], argv[i], argv[i + 1]), i++;
		else if (!strcmp(argv[i], "--page-size"))
			cfg.page_size = size_arg(argv[0], argv[i], argv[i + 1]), i++;
		else if (!strcmp(argv[i], "--fast"))
			cfg.mode = UPAGER_MODE_FAST;
		else
			usage(argv[0]);
	}
	if (!data)
		data = 4 * (uint64_t)cfg.ram_bytes;
	size_t n = data / sizeof(uint64_t);
	size_t run = cfg.ram_bytes / 2 / sizeof(uint64_t);
	if (n == 0 || run == 0) {
		fprintf(stderr, "demo-sort: nothing to sort\n");
		return 2;
	}

	err = upager_open(&cfg, &p);
	if (err) {
		fprintf(stderr, "demo-sort: upager_open: %s: %s\n", upager_strerror(err),
			upager_last_error());
		return 1;
	}
	if ((err = upager_map(p, n * sizeof(uint64_t), 0, (void **)&a)) ||
	    (err = upager_map(p, n * sizeof(uint64_t), 0, (void **)&b))) {
		fprintf(stderr, "demo-sort: upager_map: %s: %s\n", upager_strerror(err),
			upager_last_error());
		return 1;
	}
	printf("demo-sort: %zu keys (%.0f MiB) in runs of %.0f MiB; RAM budget %.0f MiB; "
	       "working set (input + output) %.1fx the budget\n",
	       n, data / 1048576.0, run * 8 / 1048576.0, cfg.ram_bytes / 1048576.0,
	       2.0 * data / cfg.ram_bytes);
	fflush(stdout);

	double t0 = now();
	uint64_t s = 0x9e3779b97f4a7c15ULL, sum = 0, xor = 0;
	for (size_t i = 0; i < n; i++) {
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		a[i] = s;
		sum += s;
		xor ^= s;
	}
	double t1 = now();
	size_t nruns = (n + run - 1) / run;
	for (size_t r = 0; r < nruns; r++) {
		size_t len = r + 1 == nruns ? n - r * run : run;
		qsort(a + r * run, len, sizeof(uint64_t), cmp_u64);
	}
	double t2 = now();
	struct head *heap = calloc(nruns, sizeof(*heap));
	size_t hn = 0;
	for (size_t r = 0; r < nruns; r++) {
		size_t start = r * run, end = r + 1 == nruns ? n : start + run;
		heap[hn++] = (struct head){ a[start], start, end };
	}
	for (size_t i = hn; i-- > 0;)
		sift_down(heap, hn, i);
	for (size_t out = 0; out < n; out++) {
		b[out] = heap[0].key;
		if (++heap[0].pos < heap[0].end)
			heap[0].key = a[heap[0].pos];
		else
			heap[0] = heap[--hn];
		sift_down(heap, hn, 0);
	}
	free(heap);
	double t3 = now();
	uint64_t sum2 = 0, xor2 = 0;
	size_t disorder = 0;
	for (size_t i = 0; i < n; i++) {
		sum2 += b[i];
		xor2 ^= b[i];
		if (i && b[i - 1] > b[i])
			disorder++;
	}
	double t4 = now();
	bool ok = !disorder && sum == sum2 && xor == xor2;
	printf("demo-sort: fill %.1fs, sort %zu runs %.1fs, merge %.1fs, verify %.1fs: %s\n",
	       t1 - t0, nruns, t2 - t1, t3 - t2, t4 - t3, ok ? "sorted, same keys: OK" : "WRONG");
	if (!ok)
		fprintf(stderr, "demo-sort: %zu pairs out of order, sum %s, xor %s\n", disorder,
			sum == sum2 ? "same" : "differs", xor == xor2 ? "same" : "differs");
	fflush(stdout);
	upager_stats_print(p, STDOUT_FILENO);
	upager_close(p);
	return ok ? 0 : 1;
}
