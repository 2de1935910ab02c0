/* SPDX-License-Identifier: MIT */
/*
 * The API fuzzer's interpreter, shared by the libFuzzer target
 * (fuzz/api-fuzz.c) and the replay test (test/fuzz-replay.c), so that
 * every input the fuzzer found runs again in `make check`.
 */
#ifndef UPAGER_FUZZ_INTERP_H
#define UPAGER_FUZZ_INTERP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * Runs one input against a pager opened for it and a shadow model of every
 * region, clone and snapshot, then frees everything and closes the pager.
 * With log not NULL, every operation is written to it as it runs.
 * Returns 0 when the pager agreed with the model throughout, 1 on the
 * first disagreement (described on stderr), 77 when no pager could be
 * opened.
 */
int fuzz_interp_run(const uint8_t *data, size_t size, FILE *log);

/*
 * Set by the fuzzer: step around the known bugs (each has a reproducer in
 * test/fuzz-corpus/xfail-*), so that fuzzing finds new ones instead of the
 * same one again. The replay test leaves it false.
 */
extern bool fuzz_interp_avoid_known_bugs;

#endif
