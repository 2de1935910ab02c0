// SPDX-License-Identifier: MIT
/*
 * libFuzzer target over the public API: each input is a program for the
 * interpreter in interp.c, run against a fresh pager and a shadow model.
 * A disagreement aborts, which libFuzzer reports as a crash and saves.
 * `make fuzz` builds and runs it; UPAGER_FUZZ_LOG=1 prints every
 * operation (useful when running one saved input).
 */
#include "interp.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int logging = -1;

	if (logging < 0) {
		fuzz_interp_avoid_known_bugs = true;
		const char *v = getenv("UPAGER_FUZZ_LOG");
		logging = v && *v && *v != '0';
	}
	if (fuzz_interp_run(data, size, logging ? stderr : NULL) != 0)
		abort();
	return 0;
}
