/* SPDX-License-Identifier: MIT */
/*
 * Helpers for the programs test/runner.sh runs under upager-run (and
 * plain, for comparison): is an address in upager's paged memory?
 */
#ifndef RUNNER_UTIL_H
#define RUNNER_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAILF(...)                                                   \
	do {                                                         \
		fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
		fprintf(stderr, __VA_ARGS__);                        \
		fprintf(stderr, "\n");                               \
		exit(1);                                             \
	} while (0)
#define CHECK(c)                                       \
	do {                                           \
		if (!(c))                              \
			FAILF("check failed: %s", #c); \
	} while (0)
#define CHECK_EQ(a, b)                                                     \
	do {                                                               \
		long long va_ = (long long)(a), vb_ = (long long)(b);      \
		if (va_ != vb_)                                            \
			FAILF("%s == %s: %lld != %lld", #a, #b, va_, vb_); \
	} while (0)
#define CHECK_CMP(a, op, b)                                                                      \
	do {                                                                                     \
		unsigned long long va_ = (unsigned long long)(a), vb_ = (unsigned long long)(b); \
		if (!(va_ op vb_))                                                               \
			FAILF("%s %s %s: %llu vs %llu", #a, #op, #b, va_, vb_);                  \
	} while (0)

/* Under upager-run (UPAGER_RUN_ROOT is set by the launcher): is addr in
 * a mapping of a upager region's memfd? */
static inline int is_paged(const void *addr)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int found = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && (unsigned long)addr >= lo &&
		    (unsigned long)addr < hi) {
			found = strstr(line, "upager-region") != NULL;
			break;
		}
	}
	fclose(f);
	return found;
}

static inline void expect_paged(const void *addr, const char *what)
{
	if (getenv("UPAGER_RUN_ROOT") && !is_paged(addr))
		FAILF("%s at %p is not in upager's memory", what, addr);
}

#endif
