// SPDX-License-Identifier: MIT
/* librunner-early.so: allocates in a constructor that runs before the preload shim's (test/runner.sh). */
#include <stdlib.h>

#define N 8
static void *blocks[N];

void **runner_early_blocks(size_t *n);
void **runner_early_blocks(size_t *n)
{
	*n = N;
	return blocks;
}

static void __attribute__((constructor)) early(void)
{
	for (size_t i = 0; i < N; i++) {
		size_t sz = 100 + i * 1000;
		unsigned char *c = malloc(sz);
		if (!c)
			abort();
		for (size_t j = 0; j < sz; j++)
			c[j] = (unsigned char)(j + i);
		blocks[i] = c;
	}
}
