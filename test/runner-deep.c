// SPDX-License-Identifier: MIT
/* librunner-deep.so: opened by test/runner-deepbind with RTLD_DEEPBIND; its
 * malloc family must be the program's (the shim's under upager-run). */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

void *deep_alloc(size_t n, int fill);
void deep_free(void *p);
void *deep_realloc(void *p, size_t n);
size_t deep_usable(void *p);

void *deep_alloc(size_t n, int fill)
{
	char *p = malloc(n);

	if (p)
		memset(p, fill, n);
	return p;
}

void deep_free(void *p)
{
	free(p);
}

void *deep_realloc(void *p, size_t n)
{
	return realloc(p, n);
}

size_t deep_usable(void *p)
{
	return malloc_usable_size(p);
}
