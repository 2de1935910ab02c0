// SPDX-License-Identifier: MIT
/*
 * A library opened with RTLD_DEEPBIND (as PHP opens its extensions) frees
 * the program's blocks and the program frees the library's, of every
 * size class, with their bytes checked on both sides: under upager-run
 * both must use the same malloc (glibc's free of a paged block aborts
 * with "double free or corruption"). The library is named with $ORIGIN,
 * which dlopen expands against the object that called it: under
 * upager-run that must still be this program, not the preload library.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <stdint.h>

#include "runner-util.h"

#define NBLOCKS 96

static size_t size_of(int i)
{
	static const size_t sizes[] = { 1, 24, 100, 4000, 4096, 70000, 300000, 3 << 20 };
	return sizes[i % 8] + (size_t)i;
}

static void check_fill(const unsigned char *p, size_t n, int fill)
{
	for (size_t j = 0; j < n; j += 509)
		CHECK_EQ(p[j], (unsigned char)fill);
	CHECK_EQ(p[n - 1], (unsigned char)fill);
}

int main(void)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	/* The sanitizers' runtimes refuse RTLD_DEEPBIND outright. */
	puts("built with a sanitizer, which refuses RTLD_DEEPBIND: skipped");
	return 77;
#endif
	void *lib = dlopen("$ORIGIN/.libs/librunner-deep.so",
			   RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
	if (!lib)
		FAILF("dlopen: %s", dlerror());
	void *(*deep_alloc)(size_t, int) = (void *(*)(size_t, int))dlsym(lib, "deep_alloc");
	void (*deep_free)(void *) = (void (*)(void *))dlsym(lib, "deep_free");
	void *(*deep_realloc)(void *, size_t) = (void *(*)(void *, size_t))dlsym(lib,
										 "deep_realloc");
	size_t (*deep_usable)(void *) = (size_t(*)(void *))dlsym(lib, "deep_usable");
	CHECK(deep_alloc && deep_free && deep_realloc && deep_usable);

	unsigned char *mine[NBLOCKS], *theirs[NBLOCKS];
	uint64_t sum = 0;

	for (int i = 0; i < NBLOCKS; i++) {
		size_t n = size_of(i);
		mine[i] = malloc(n);
		CHECK(mine[i] != NULL);
		memset(mine[i], i + 1, n);
		theirs[i] = deep_alloc(n, 200 - i);
		CHECK(theirs[i] != NULL);
		CHECK_CMP(deep_usable(mine[i]), >=, n);
		CHECK_EQ(deep_usable(theirs[i]), malloc_usable_size(theirs[i]));
	}
	expect_paged(theirs[7], "the library's 3 MiB block");
	expect_paged(theirs[3], "the library's small block");
	/* Grown by the other side, then freed by it. */
	for (int i = 0; i < NBLOCKS; i++) {
		size_t n = size_of(i);
		check_fill(mine[i], n, i + 1);
		check_fill(theirs[i], n, 200 - i);
		mine[i] = deep_realloc(mine[i], 2 * n + 1);
		CHECK(mine[i] != NULL);
		check_fill(mine[i], n, i + 1);
		theirs[i] = realloc(theirs[i], n / 2 + 1);
		CHECK(theirs[i] != NULL);
		check_fill(theirs[i], n / 2 + 1, 200 - i);
		sum += mine[i][n / 2] + theirs[i][n / 4];
	}
	for (int i = 0; i < NBLOCKS; i++) {
		deep_free(mine[i]);
		free(theirs[i]);
	}
	printf("%d blocks each way, checksum %llu\n", NBLOCKS, (unsigned long long)sum);
	dlclose(lib);
	return 0;
}
