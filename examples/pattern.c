// SPDX-License-Identifier: MIT
/*
 * pattern: writes a pattern to every page of a region much larger than
 * the RAM budget, reads every page back and verifies every word, then
 * prints the statistics. It is the core's acceptance check:
 *
 *   /usr/bin/time -v ./examples/pattern --region 4G --ram 512M
 *
 * (peak RSS stays under the budget plus the stated overhead), and under
 * `strace -f -c` the page I/O shows up as io_uring_enter, not pread/pwrite.
 *
 *   pattern [--region SIZE] [--ram SIZE] [--page-size SIZE] [--fast]
 *           [--threads N]
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "upager.h"

static uint64_t *region;
static size_t words;
static unsigned nthreads = 1;
static _Atomic size_t bad_words;

static inline uint64_t pattern(size_t i)
{
	uint64_t x = i * 0x9e3779b97f4a7c15ULL;
	return x ^ (x >> 29) ^ 0x5555aaaa5555aaaaULL;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *writer(void *arg)
{
	size_t t = (uintptr_t)arg, chunk = words / nthreads;
	size_t end = t + 1 == nthreads ? words : (t + 1) * chunk;

	for (size_t i = t * chunk; i < end; i++)
		region[i] = pattern(i);
	return NULL;
}

static void *reader(void *arg)
{
	size_t t = (uintptr_t)arg, chunk = words / nthreads;
	size_t end = t + 1 == nthreads ? words : (t + 1) * chunk;
	size_t bad = 0;

	for (size_t i = t * chunk; i < end; i++)
		if (region[i] != pattern(i) && bad++ < 5)
			fprintf(stderr, "pattern: word %zu (byte %zu) is %#llx, expected %#llx\n",
				i, i * 8, (unsigned long long)region[i],
				(unsigned long long)pattern(i));
	bad_words += bad;
	return NULL;
}

static void run(void *(*fn)(void *))
{
	pthread_t t[64];
	for (uintptr_t i = 0; i < nthreads; i++)
		pthread_create(&t[i], NULL, fn, (void *)i);
	for (unsigned i = 0; i < nthreads; i++)
		pthread_join(t[i], NULL);
}

static uint64_t size_arg(const char *opt, const char *v)
{
	uint64_t n;
	if (!v || upager_parse_size(v, &n) < 0) {
		fprintf(stderr, "pattern: %s needs a size like 4G, got '%s'\n", opt, v ? v : "");
		exit(2);
	}
	return n;
}

int main(int argc, char **argv)
{
	upager_config_t cfg;
	upager_t *p;
	uint64_t len = 1ULL << 30;
	int err;

	upager_config_init(&cfg);
	if (!getenv("UPAGER_RAM"))
		cfg.ram_bytes = 256u << 20;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--region"))
			len = size_arg(argv[i], argv[i + 1]), i++;
		else if (!strcmp(argv[i], "--ram"))
			cfg.ram_bytes = size_arg(argv[i], argv[i + 1]), i++;
		else if (!strcmp(argv[i], "--page-size"))
			cfg.page_size = size_arg(argv[i], argv[i + 1]), i++;
		else if (!strcmp(argv[i], "--fast"))
			cfg.mode = UPAGER_MODE_FAST;
		else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			nthreads = (unsigned)atoi(argv[++i]);
		else {
			fprintf(stderr,
				"usage: %s [--region SIZE] [--ram SIZE] [--page-size SIZE] [--fast] [--threads N]\n",
				argv[0]);
			return 2;
		}
	}
	if (nthreads < 1 || nthreads > 64) {
		fprintf(stderr, "pattern: --threads must be 1..64\n");
		return 2;
	}
	err = upager_open(&cfg, &p);
	if (!err)
		err = upager_map(p, len, 0, (void **)&region);
	if (err) {
		fprintf(stderr, "pattern: %s: %s\n", upager_strerror(err), upager_last_error());
		return 1;
	}
	words = len / 8;
	printf("pattern: region %.0f MiB, budget %.0f MiB, page %zu, %u thread(s)\n",
	       len / 1048576.0, cfg.ram_bytes / 1048576.0, cfg.page_size, nthreads);
	fflush(stdout);
	double t0 = now();
	run(writer);
	double t1 = now();
	run(reader);
	double t2 = now();
	printf("pattern: write %.1fs (%.0f MB/s), read+verify %.1fs (%.0f MB/s): %s\n", t1 - t0,
	       len / 1e6 / (t1 - t0), t2 - t1, len / 1e6 / (t2 - t1),
	       bad_words ? "MISMATCH" : "every word verified");
	fflush(stdout);
	upager_stats_print(p, STDOUT_FILENO);
	upager_close(p);
	return bad_words ? 1 : 0;
}
