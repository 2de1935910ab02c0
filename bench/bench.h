/* SPDX-License-Identifier: MIT */
/*
 * Small helpers shared by the benchmark programs: clocks, sizes, readings
 * from /proc, and the "key=value" output line. Header-only, so that every
 * program stays one file plus this.
 */
#ifndef UPAGER_BENCH_H
#define UPAGER_BENCH_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline double bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* "4096", "64K", "512M", "4G" (binary units). Returns 0 or -EINVAL. */
static inline int bench_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'k':
	case 'K':
		v <<= 10;
		end++;
		break;
	case 'm':
	case 'M':
		v <<= 20;
		end++;
		break;
	case 'g':
	case 'G':
		v <<= 30;
		end++;
		break;
	case 't':
	case 'T':
		v <<= 40;
		end++;
		break;
	default:
		break;
	}
	if (*end == 'i' || *end == 'B')
		end++;
	if (*end == 'B')
		end++;
	if (*end)
		return -EINVAL;
	*out = v;
	return 0;
}

static inline uint64_t bench_size_arg(const char *opt, const char *s)
{
	uint64_t v;

	if (bench_parse_size(s, &v) < 0) {
		fprintf(stderr, "%s: not a size: %s\n", opt, s);
		exit(2);
	}
	return v;
}

/* splitmix64: small, fast, good enough to pick addresses. */
static inline uint64_t bench_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in [0, n). */
static inline uint64_t bench_rand_below(uint64_t *state, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)bench_rand(state) * n) >> 64);
}

/* Uniform in [0, 1). */
static inline double bench_rand_unit(uint64_t *state)
{
	return (double)(bench_rand(state) >> 11) * 0x1.0p-53;
}

/* A field "Key:   value kB" of /proc/self/status, in KiB (-1 if absent). */
static inline long bench_status_kb(const char *key)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	size_t klen = strlen(key);
	long v = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, klen) && line[klen] == ':') {
			v = strtol(line + klen + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

/* A "key value" line of a /proc file such as /proc/vmstat or
 * /proc/self/io ("key: value"), or -1. */
static inline long long bench_proc_value(const char *path, const char *key)
{
	FILE *f = fopen(path, "r");
	char line[256];
	size_t klen = strlen(key);
	long long v = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, klen) && (line[klen] == ' ' || line[klen] == ':')) {
			v = strtoll(line + klen + 1 + (line[klen] == ':'), NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

/* Resets the process's peak RSS (VmHWM) so that the next reading is the
 * peak of what follows (Linux 4.0, "5" in clear_refs). */
static inline void bench_reset_peak_rss(void)
{
	FILE *f = fopen("/proc/self/clear_refs", "w");

	if (f) {
		fputs("5", f);
		fclose(f);
	}
}

static int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Median of n values (sorts them). */
static inline double bench_median(double *v, size_t n)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), bench_cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#endif /* UPAGER_BENCH_H */
