// SPDX-License-Identifier: MIT
/*
 * examples/kvstore: a hash table of string keys and variable-size values
 * (64 B to 4 KiB) built and queried with the upager heap, several times
 * larger than the RAM budget, walked with plain pointers. Every value read
 * is checked against the pattern its key gives.
 *
 *   examples/kvstore [--alloc upager|glibc] [--budget 64M] [--factor 4]
 *                    [--queries N] [--update-pct P]
 *
 * --alloc glibc runs the same code on malloc: that is the comparison with
 * the kernel's swap, run by bench/kvstore inside a memory cgroup with the
 * same budget. Prints one key=value line.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "upager.h"

struct entry {
	struct entry *next;
	uint64_t hash;
	uint32_t klen, vlen;
	uint64_t version; /* bumped by each update: part of the pattern */
	char data[];      /* key, then value */
};

static upager_heap_t *heap; /* NULL: glibc malloc */

static void *xalloc(size_t n)
{
	void *p = heap ? upager_malloc(heap, n) : malloc(n);
	if (!p) {
		fprintf(stderr, "kvstore: out of memory allocating %zu bytes\n", n);
		exit(1);
	}
	return p;
}

static void xfree(void *p)
{
	if (heap)
		upager_free(heap, p);
	else
		free(p);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	return x ^ (x >> 33);
}

static uint64_t hash_str(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
	return h;
}

static size_t value_len(uint64_t id, uint64_t version)
{
	return 64 + mix(id * 31 + version) % 4033;
}

static void fill_value(unsigned char *v, size_t n, uint64_t id, uint64_t version)
{
	uint64_t seed = mix(id ^ (version << 40));
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t w = seed + i * 0x9E3779B97F4A7C15ULL;
		memcpy(v + i, &w, 8);
	}
	for (; i < n; i++)
		v[i] = (unsigned char)(seed >> (i % 8));
}

static int check_value(const unsigned char *v, size_t n, uint64_t id, uint64_t version)
{
	uint64_t seed = mix(id ^ (version << 40));
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, v + i, 8);
		if (w != seed + i * 0x9E3779B97F4A7C15ULL)
			return -1;
	}
	for (; i < n; i++)
		if (v[i] != (unsigned char)(seed >> (i % 8)))
			return -1;
	return 0;
}

static struct entry **table;
static size_t nbuckets;

static struct entry *make_entry(uint64_t id, uint64_t version)
{
	char key[32];
	int klen = snprintf(key, sizeof(key), "key:%llu", (unsigned long long)id);
	size_t vlen = value_len(id, version);
	struct entry *e = xalloc(sizeof(*e) + (size_t)klen + vlen);

	e->next = NULL;
	e->hash = hash_str(key, (size_t)klen);
	e->klen = (uint32_t)klen;
	e->vlen = (uint32_t)vlen;
	e->version = version;
	memcpy(e->data, key, (size_t)klen);
	fill_value((unsigned char *)e->data + klen, vlen, id, version);
	return e;
}

static struct entry **lookup(const char *key, size_t klen, uint64_t h)
{
	struct entry **pp = &table[h % nbuckets];
	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->hash == h && (*pp)->klen == klen && !memcmp((*pp)->data, key, klen))
			return pp;
	return pp;
}

int main(int argc, char **argv)
{
	const char *alloc = "upager";
	uint64_t budget = 64u << 20, queries = 200000;
	double factor = 4;
	unsigned update_pct = 10;
	upager_t *p = NULL;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--alloc") && i + 1 < argc)
			alloc = argv[++i];
		else if (!strcmp(argv[i], "--budget") && i + 1 < argc) {
			if (upager_parse_size(argv[++i], &budget))
				goto usage;
		} else if (!strcmp(argv[i], "--factor") && i + 1 < argc)
			factor = atof(argv[++i]);
		else if (!strcmp(argv[i], "--queries") && i + 1 < argc)
			queries = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--update-pct") && i + 1 < argc)
			update_pct = (unsigned)atoi(argv[++i]);
		else
			goto usage;
	}
	if (strcmp(alloc, "upager") && strcmp(alloc, "glibc"))
		goto usage;

	uint64_t data_bytes = (uint64_t)((double)budget * factor);
	/* Entries average about 2.1 KiB with their header. */
	uint64_t nkeys = data_bytes / 2100;
	if (!strcmp(alloc, "upager")) {
		upager_config_t cfg;
		upager_config_init(&cfg);
		cfg.ram_bytes = budget;
		int err = upager_open(&cfg, &p);
		if (!err)
			err = upager_heap_open(p, data_bytes * 2 + (256u << 20), &heap);
		if (err) {
			fprintf(stderr, "kvstore: %s: %s\n", upager_strerror(err),
				upager_last_error());
			return 1;
		}
	}
	nbuckets = nkeys * 2 + 1; /* short chains: each link may be a fault */
	/* The bucket array lives in the heap too. */
	table = heap ? upager_calloc(heap, nbuckets, sizeof(*table))
		     : calloc(nbuckets, sizeof(*table));
	if (!table)
		return 1;

	double t0 = now();
	uint64_t stored = 0;
	for (uint64_t id = 0; id < nkeys; id++) {
		struct entry *e = make_entry(id, 0);
		struct entry **pp = lookup(e->data, e->klen, e->hash);
		e->next = *pp;
		*pp = e;
		stored += sizeof(*e) + e->klen + e->vlen;
	}
	double t_build = now() - t0;

	/* Random queries; some replace the value with one of a new size. */
	uint64_t s = 0x5eed, verified = 0, updates = 0, vbytes = 0;
	t0 = now();
	for (uint64_t q = 0; q < queries; q++) {
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		uint64_t id = s % nkeys;
		char key[32];
		int klen = snprintf(key, sizeof(key), "key:%llu", (unsigned long long)id);
		uint64_t h = hash_str(key, (size_t)klen);
		struct entry **pp = lookup(key, (size_t)klen, h), *e = *pp;
		if (!e) {
			fprintf(stderr, "kvstore: key %s lost\n", key);
			return 1;
		}
		if (check_value((unsigned char *)e->data + e->klen, e->vlen, id, e->version)) {
			fprintf(stderr, "kvstore: value of %s corrupt\n", key);
			return 1;
		}
		verified++;
		vbytes += e->vlen;
		if ((s >> 40) % 100 < update_pct) {
			struct entry *n = make_entry(id, e->version + 1);
			n->next = e->next;
			*pp = n;
			stored += n->vlen - (uint64_t)e->vlen;
			xfree(e);
			updates++;
		}
	}
	double t_query = now() - t0;

	printf("example=kvstore alloc=%s budget=%llu keys=%llu data_bytes=%llu build_s=%.2f "
	       "build_keys_per_s=%.0f queries=%llu updates=%llu query_s=%.2f query_ops_per_s=%.0f "
	       "verified=%llu verified_bytes=%llu",
	       alloc, (unsigned long long)budget, (unsigned long long)nkeys,
	       (unsigned long long)stored, t_build, (double)nkeys / t_build,
	       (unsigned long long)queries, (unsigned long long)updates, t_query,
	       (double)queries / t_query, (unsigned long long)verified, (unsigned long long)vbytes);
	if (p) {
		upager_stats_t st;
		upager_stats(p, &st);
		printf(" major_faults=%llu writebacks=%llu backend=%s mode=%s",
		       (unsigned long long)st.faults_major, (unsigned long long)st.writebacks,
		       st.backend, st.mode);
	}
	printf("\n");
	if (heap) {
		upager_heap_close(heap);
		upager_close(p);
	}
	return 0;
usage:
	fprintf(stderr, "usage: kvstore [--alloc upager|glibc] [--budget SIZE] [--factor F] "
			"[--queries N] [--update-pct P]\n");
	return 2;
}
