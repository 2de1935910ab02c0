/* SPDX-License-Identifier: MIT */
/*
 * Test helpers: assertions that print both sides and file:line, a runner
 * that runs one test body on every usable backend and fault mode, death
 * tests in a child process, and memory readings from /proc.
 *
 * Exit codes follow automake: 0 pass, 1 fail, 77 skip.
 */
#ifndef UPAGER_TESTUTIL_H
#define UPAGER_TESTUTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memfd_create, pthread_barrier, ... */
#endif

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "upager.h"

#define TEST_SKIP 77

/*
 * The seed of this run's random choices: UPAGER_TEST_SEED when set
 * (decimal, or hex with 0x), else a fresh one from getrandom(2) (the
 * clock if that fails). The first call prints it, so that any run can be
 * repeated; after that a failure prints the command that reruns the test
 * with the same seed. Thread-safe.
 */
uint64_t tu_seed(void);

/*
 * A nonzero state for rng_next(), one per stream of random choices in a
 * test: the run's seed mixed with a constant that names the stream (two
 * streams with different constants are unrelated).
 */
uint64_t tu_rng(uint64_t stream);

/* Prints "rerun: [UPAGER_TEST_SEED=n] make check TESTS=test/<name>" to
 * stderr; the failure macros call it before exiting. */
void tu_rerun_hint(void);

#define FAILF(...)                                                   \
	do {                                                         \
		fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
		fprintf(stderr, __VA_ARGS__);                        \
		fprintf(stderr, "\n");                               \
		tu_rerun_hint();                                     \
		exit(1);                                             \
	} while (0)

#define CHECK(cond)                                       \
	do {                                              \
		if (!(cond))                              \
			FAILF("check failed: %s", #cond); \
	} while (0)

#define CHECK_EQ(a, b)                                                     \
	do {                                                               \
		long long va_ = (long long)(a), vb_ = (long long)(b);      \
		if (va_ != vb_)                                            \
			FAILF("%s == %s: %lld != %lld", #a, #b, va_, vb_); \
	} while (0)

#define CHECK_CMP(a, op, b)                                                     \
	do {                                                                    \
		long long va_ = (long long)(a), vb_ = (long long)(b);           \
		if (!(va_ op vb_))                                              \
			FAILF("%s %s %s: %lld vs %lld", #a, #op, #b, va_, vb_); \
	} while (0)

/* An upager call that must succeed. */
#define CHECK_OK(expr)                                                                           \
	do {                                                                                     \
		int err_ = (expr);                                                               \
		if (err_ < 0)                                                                    \
			FAILF("%s: %s (%s)", #expr, upager_strerror(err_), upager_last_error()); \
	} while (0)

/* An upager call that must fail with a given code. */
#define CHECK_ERR(expr, code)                                                             \
	do {                                                                              \
		int err_ = (expr);                                                        \
		if (err_ != (code))                                                       \
			FAILF("%s returned %d (%s), expected %d (%s)", #expr, err_,       \
			      upager_strerror(err_), (int)(code), upager_strerror(code)); \
	} while (0)

/* One way of running the pager: a backend and a fault mode. */
struct test_backend {
	const char *backend;
	upager_mode_t mode;
	const char *label;
};

/*
 * Runs body once per usable backend and mode (respecting UPAGER_BACKEND
 * and UPAGER_MODE when set) and prints which ones ran. Returns the exit
 * code for main: 0, 1, or 77 when no backend could run.
 */
int for_each_backend(void (*body)(const struct test_backend *b, void *arg), void *arg);

/* upager_config_init(), then the backend and mode of b. */
void test_config(upager_config_t *cfg, const struct test_backend *b);

/* Do system calls on region memory need pins with this pager? */
static inline bool needs_pins(upager_t *p)
{
	upager_stats_t st;
	return upager_stats(p, &st) == 0 && !st.syscalls_transparent;
}

/* Runs fn in a child; returns its wait status and what it wrote to
 * stderr (malloc'ed, NUL-terminated) in *err_out if not NULL. */
int run_child(void (*fn)(void *arg), void *arg, char **err_out);

/*
 * Did a child die of signal sig? Under AddressSanitizer a fatal SIGSEGV or
 * SIGBUS is reported by ASan's handler, which exits with status 1 after
 * naming the signal; that counts too.
 */
bool died_of(int status, const char *child_stderr, int sig);

/* /proc/self/status fields, in KiB. */
uint64_t proc_status_kb(const char *field);

/* Renames a trace's keys to 0..d-1 (d distinct keys, stored in *nids),
 * by sorting rather than with the simulator's hash table, so that the
 * brute-force references check the simulator with a method of their own.
 * Returns a malloc'ed array of n ids. */
uint32_t *tu_dense_ids(const uint64_t *keys, size_t n, uint32_t *nids);

/*
 * A scratch data file for the file-region tests, "<name>-<pid>.dat" in the
 * current directory (the build tree: a real file system, so O_DIRECT is
 * tried), removed at exit also when a check fails. Each call recreates it
 * with `bytes` random bytes drawn from *rng, copied to shadow. Returns an
 * O_RDWR descriptor; *path (if path is not NULL) is the file's name.
 */
int tu_data_file(const char *name, unsigned char *shadow, size_t bytes, uint64_t *rng,
		 const char **path);

/* Fails, naming the first wrong byte, unless the file behind fd is exactly
 * want[0..bytes). */
void tu_expect_file(int fd, const unsigned char *want, size_t bytes, const char *label,
		    const char *what);

/* A pager with the backend's configuration and a budget of budget_bytes
 * for the file-region tests: buffered file I/O unless UPAGER_DIRECT_IO is
 * set, since each O_DIRECT page I/O can cost milliseconds on a busy shared
 * disk (the tests that need O_DIRECT ask for it themselves). */
upager_t *tu_file_pager(const struct test_backend *b, size_t budget_bytes);

/* A pager of `frames` 4 KiB pages with the backend's configuration and
 * policy (NULL: the default) that keeps 40 to 60 frames free, since
 * readahead windows and read-around take free frames only; a region of
 * `pages` pages mapped in it at *a. */
upager_t *tu_prefetch_pager(const struct test_backend *b, unsigned frames, const char *policy,
			    size_t pages, unsigned char **a);

/* The statistics once the pager's background threads (the evictor, the
 * readahead threads) have stopped moving them, so that counters updated
 * one after the other agree: a batch under way has taken its swap slots
 * and counted some of its pages, not yet all. Not timed: fails after
 * three seconds of movement. */
void tu_stats_when_still(upager_t *p, upager_stats_t *s);

/* A fast deterministic generator. */
static inline uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

#endif
