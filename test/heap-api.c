// SPDX-License-Identifier: MIT
/*
 * Heap semantics: the program's own malloc is still glibc's with mimalloc
 * linked in; malloc(0), free(NULL), realloc edge cases, calloc overflow and
 * zeroing, alignment, aligned_alloc, ENOMEM when the heap is full, frees of
 * pointers the heap does not own, blocks of an exited thread, several heaps
 * in one pager and in two pagers, closing with live blocks, the stats size
 * field.
 */
#include "testutil.h"

#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <string.h>

static void check_glibc_malloc(void)
{
	void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
	void *mi = dlopen("libmimalloc.so.2", RTLD_NOW | RTLD_NOLOAD);
	void *def = dlsym(RTLD_DEFAULT, "malloc");

	CHECK(libc);
	CHECK(mi); /* linked through libupager */
	CHECK(def);
	/* libmimalloc.so exports malloc too: it must not be the one used. */
	CHECK(def != dlsym(mi, "malloc"));
	CHECK(dlsym(RTLD_DEFAULT, "free") != dlsym(mi, "free"));
#if !defined(__SANITIZE_ADDRESS__)
	/* (Under ASan the default malloc is ASan's.) */
	CHECK(def == dlsym(libc, "malloc"));
	struct mallinfo2 before = mallinfo2();
	void *p = malloc(100000);
	struct mallinfo2 after = mallinfo2();
	CHECK(p);
	CHECK(after.hblkhd + after.uordblks > before.hblkhd + before.uordblks);
	CHECK(malloc_usable_size(p) >= 100000);
	free(p);
#endif
	dlclose(libc);
	dlclose(mi);
	printf("  malloc is not mimalloc's\n");
}

static int callback_calls;
static void on_error(void *arg, const upager_error_info_t *info)
{
	(void)arg;
	CHECK_EQ(info->err, -EINVAL);
	callback_calls++;
}

struct exited {
	upager_heap_t *h;
	unsigned char *blocks[1000];
};

static void *allocate_and_exit(void *arg)
{
	struct exited *e = arg;

	for (unsigned i = 0; i < 1000; i++) {
		e->blocks[i] = upager_malloc(e->h, 100 + i * 7);
		CHECK(e->blocks[i]);
		memset(e->blocks[i], (int)(i & 0xff), 100 + i * 7);
	}
	return NULL;
}

static void semantics(const struct test_backend *b, void *arg)
{
	upager_config_t cfg;
	upager_t *p, *p2;
	upager_heap_t *h, *h2, *h3;
	upager_heap_stats_t st = { .size = sizeof(st) };
	unsigned char *a, *c;
	void *q, *r;
	int stackvar = 0;

	(void)arg;
	test_config(&cfg, b);
	cfg.ram_bytes = 16u << 20;
	cfg.on_error = on_error;
	CHECK_OK(upager_open(&cfg, &p));
	CHECK_ERR(upager_heap_open(NULL, 0, &h), -EINVAL);
	CHECK_OK(upager_heap_open(p, 64u << 20, &h));

	/* malloc(0): unique pointers; free(NULL): nothing. */
	q = upager_malloc(h, 0);
	r = upager_malloc(h, 0);
	CHECK(q && r && q != r);
	CHECK(upager_heap_owns(h, q));
	upager_free(h, q);
	upager_free(h, r);
	upager_free(h, NULL);

	/* Alignment at least 16 for every small size. */
	void *v[300];
	for (unsigned i = 0; i < 300; i++) {
		v[i] = upager_malloc(h, i);
		CHECK(v[i]);
		CHECK_EQ((uintptr_t)v[i] % 16, 0);
		CHECK_CMP(upager_malloc_usable_size(h, v[i]), >=, i);
		memset(v[i], 0x5a, i);
	}
	for (unsigned i = 0; i < 300; i++)
		upager_free(h, v[i]);

	/* realloc(NULL, n) is malloc; realloc keeps contents; realloc(p, 0)
	 * frees and returns NULL. */
	a = upager_realloc(h, NULL, 100);
	CHECK(a);
	for (unsigned i = 0; i < 100; i++)
		a[i] = (unsigned char)i;
	a = upager_realloc(h, a, 100000);
	CHECK(a);
	for (unsigned i = 0; i < 100; i++)
		CHECK_EQ(a[i], i);
	a = upager_realloc(h, a, 10);
	CHECK(a);
	for (unsigned i = 0; i < 10; i++)
		CHECK_EQ(a[i], i);
	CHECK_OK(upager_heap_stats(h, &st));
	uint64_t live = st.blocks_live;
	errno = 0;
	CHECK(upager_realloc(h, a, 0) == NULL);
	CHECK_OK(upager_heap_stats(h, &st));
	CHECK_EQ(st.blocks_live, live - 1);

	/* calloc: overflow, and zeroed memory even where dirty blocks were. */
	errno = 0;
	CHECK(upager_calloc(h, SIZE_MAX / 2, 3) == NULL);
	CHECK_EQ(errno, ENOMEM);
	for (unsigned round = 0; round < 3; round++) {
		unsigned char *d[64];
		for (unsigned i = 0; i < 64; i++) {
			d[i] = upager_malloc(h, 3000);
			memset(d[i], 0xee, 3000);
		}
		for (unsigned i = 0; i < 64; i++)
			upager_free(h, d[i]);
		for (unsigned i = 0; i < 64; i++) {
			d[i] = upager_calloc(h, 1000, 3);
			CHECK(d[i]);
			for (unsigned k = 0; k < 3000; k++)
				if (d[i][k])
					FAILF("calloc byte %u is %#x", k, d[i][k]);
		}
		for (unsigned i = 0; i < 64; i++)
			upager_free(h, d[i]);
	}

	/* aligned_alloc: any power of two, below and beyond the page size. */
	for (unsigned k = 0; k <= 24; k++) {
		size_t align = (size_t)1 << k;
		c = upager_aligned_alloc(h, align, 100 + k);
		if (!c)
			FAILF("aligned_alloc(%zu) failed: errno %d", align, errno);
		CHECK_EQ((uintptr_t)c % align, 0);
		CHECK_EQ((uintptr_t)c % 16, 0);
		memset(c, 1, 100 + k);
		upager_free(h, c);
	}
	/* Beyond what mimalloc aligns (16 MiB), in a heap of their own. */
	CHECK_OK(upager_heap_open(p, 256u << 20, &h2));
	for (unsigned k = 25; k <= 26; k++) {
		size_t align = (size_t)1 << k;
		c = upager_aligned_alloc(h2, align, 5000);
		if (!c)
			FAILF("aligned_alloc(%zu) failed: errno %d", align, errno);
		CHECK_EQ((uintptr_t)c % align, 0);
		CHECK(upager_heap_owns(h2, c));
		CHECK_CMP(upager_malloc_usable_size(h2, c), >=, 5000);
		memset(c, 7, 5000);
		if (k == 26) {
			c = upager_realloc(h2, c, 9000);
			CHECK(c);
			CHECK_EQ(c[4999], 7);
		}
		upager_free(h2, c);
	}
	CHECK_OK(upager_heap_stats(h2, &st));
	CHECK_EQ(st.blocks_live, 0);
	CHECK_EQ(st.bad_frees, 0);
	CHECK_OK(upager_heap_close(h2));
	errno = 0;
	CHECK(upager_aligned_alloc(h, 48, 10) == NULL);
	CHECK_EQ(errno, EINVAL);

	/* Out of memory: NULL and ENOMEM, and the heap still works after. */
	errno = 0;
	CHECK(upager_malloc(h, SIZE_MAX) == NULL);
	CHECK_EQ(errno, ENOMEM);
	errno = 0;
	CHECK(upager_malloc(h, 128u << 20) == NULL);
	CHECK_EQ(errno, ENOMEM);
	void *big[200];
	unsigned nbig = 0;
	for (;;) {
		CHECK_CMP(nbig, <, 200);
		errno = 0;
		big[nbig] = upager_malloc(h, 1u << 20);
		if (!big[nbig])
			break;
		nbig++;
	}
	CHECK_EQ(errno, ENOMEM);
	printf("  %s: %u blocks of 1 MiB fit in a 64 MiB heap\n", b->label, nbig);
	CHECK_CMP(nbig, >=, 48);
	CHECK_OK(upager_heap_stats(h, &st));
	CHECK_CMP(st.failed, >, 0);
	for (unsigned i = 0; i < nbig; i++)
		upager_free(h, big[i]);
	q = upager_malloc(h, 4u << 20);
	CHECK(q);
	upager_free(h, q);

	/* Pointers the heap does not own: reported, ignored. */
	void *gl = malloc(64);
	CHECK_OK(upager_heap_stats(h, &st));
	uint64_t bad0 = st.bad_frees;
	callback_calls = 0;
	CHECK(!upager_heap_owns(h, &stackvar));
	CHECK(!upager_heap_owns(h, gl));
	upager_free(h, &stackvar);
	CHECK(strstr(upager_last_error(), "does not own"));
	upager_free(h, gl);
	q = upager_malloc(h, 64);
	upager_free(h, (char *)q + 8); /* misaligned: cannot be a block */
	CHECK(upager_realloc(h, gl, 10) == NULL);
	CHECK_EQ(upager_malloc_usable_size(h, gl), 0);
	CHECK_OK(upager_heap_stats(h, &st));
	CHECK_EQ(st.bad_frees, bad0 + 4);
	CHECK_EQ(callback_calls, 4);
	upager_free(h, q);
	free(gl);

	/* Blocks of a thread that has exited stay valid and are freed here;
	 * a new thread allocates again. */
	struct exited e = { .h = h };
	pthread_t t;
	CHECK_EQ(pthread_create(&t, NULL, allocate_and_exit, &e), 0);
	pthread_join(t, NULL);
	for (unsigned i = 0; i < 1000; i++) {
		for (unsigned k = 0; k < 100 + i * 7; k++)
			if (e.blocks[i][k] != (unsigned char)i)
				FAILF("block %u of an exited thread: byte %u changed", i, k);
		upager_free(h, e.blocks[i]);
	}
	CHECK_EQ(pthread_create(&t, NULL, allocate_and_exit, &e), 0);
	pthread_join(t, NULL);
	for (unsigned i = 0; i < 1000; i += 2)
		upager_free(h, e.blocks[i]); /* the rest: freed by close */

	/* Several heaps in a pager, and a second pager with its own. */
	CHECK_OK(upager_heap_open(p, 0, &h2));
	test_config(&cfg, b);
	cfg.ram_bytes = 4u << 20;
	CHECK_OK(upager_open(&cfg, &p2));
	CHECK_OK(upager_heap_open(p2, 32u << 20, &h3));
	CHECK_OK(upager_heap_stats(h2, &st));
	printf("  %s: default max_bytes %llu MiB\n", b->label,
	       (unsigned long long)(st.max_bytes >> 20));
	CHECK_CMP(st.max_bytes, >=, 32u << 20);
	a = upager_malloc(h2, 1000);
	c = upager_malloc(h3, 1000);
	q = upager_malloc(h, 1000);
	CHECK(a && c && q);
	CHECK(upager_heap_owns(h2, a) && !upager_heap_owns(h, a) && !upager_heap_owns(h3, a));
	CHECK(upager_heap_owns(h3, c) && !upager_heap_owns(h2, c));
	memset(a, 2, 1000);
	memset(c, 3, 1000);
	memset(q, 4, 1000);
	CHECK_EQ(a[999] + c[999] + ((unsigned char *)q)[999], 9);
	upager_free(h, a); /* wrong heap: reported, not freed */
	CHECK_EQ(a[0], 2);
	upager_free(h2, a);
	CHECK_OK(upager_heap_close(h3)); /* with c live */
	CHECK_OK(upager_close(p2));
	CHECK_OK(upager_heap_close(h2));

	/* The stats size field: a short struct gets a short answer. */
	upager_heap_stats_t small;
	memset(&small, 0xff, sizeof(small));
	small.size = 16;
	CHECK_OK(upager_heap_stats(h, &small));
	CHECK_EQ(small.size, 16);
	CHECK_EQ(small.version, UPAGER_HEAP_STATS_VERSION);
	CHECK_EQ(small.max_bytes, 64u << 20);
	CHECK_EQ(small.bytes_requested, UINT64_MAX); /* untouched */
	small.size = 4;
	CHECK_ERR(upager_heap_stats(h, &small), -EINVAL);

	/* Close with live blocks frees them all with the region. */
	CHECK_OK(upager_heap_close(h));
	upager_stats_t ps;
	CHECK_OK(upager_stats(p, &ps));
	CHECK_EQ(ps.regions, 0);
	CHECK_OK(upager_close(p));
}

/* mimalloc keeps at most 64 arenas, but a closed heap's arena serves a
 * new heap of the same size at the same address: opening and closing a
 * heap in a loop must not run out. */
static void reopen_loop(void)
{
	upager_config_t cfg;
	upager_t *p;
	upager_heap_t *h;

	upager_config_init(&cfg);
	cfg.ram_bytes = 4u << 20;
	CHECK_OK(upager_open(&cfg, &p));
	for (unsigned i = 0; i < 100; i++) {
		int err = upager_heap_open(p, 64u << 20, &h);
		if (err)
			FAILF("heap open number %u: %s (%s)", i, upager_strerror(err),
			      upager_last_error());
		unsigned char *c = upager_calloc(h, 1, 5000);
		CHECK(c);
		for (unsigned k = 0; k < 5000; k++)
			CHECK_EQ(c[k], 0);
		memset(c, 9, 5000);
		CHECK_OK(upager_heap_close(h));
	}
	CHECK_OK(upager_close(p));
	printf("  100 heaps opened and closed in a loop\n");
}

int main(void)
{
	check_glibc_malloc();
	reopen_loop();
	return for_each_backend(semantics, NULL);
}
