// SPDX-License-Identifier: MIT
/*
 * upager__sort (white-box): the heap sort the evictor and the sampler use
 * in place of qsort. Records of whole words (swapped a word at a time) and
 * of odd sizes (a byte at a time), input already in order (returned as
 * is), reversed, random with repeats, and short arrays all come out in
 * order, with the same records as went in.
 */
#include "testutil.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>

struct rec {
	uint64_t key;
	uint64_t tag; /* which record it was: a swap must move both words */
	uint64_t pad[5];
};

struct odd {
	uint32_t key;
	char tag[3]; /* 7 bytes: swapped byte by byte */
} __attribute__((packed));

static int by_key(const void *a, const void *b)
{
	const struct rec *x = a, *y = b;

	return x->key < y->key ? -1 : x->key > y->key;
}

static int odd_by_key(const void *a, const void *b)
{
	uint32_t x, y;

	memcpy(&x, a, sizeof(x));
	memcpy(&y, b, sizeof(y));
	return x < y ? -1 : x > y;
}

static uint64_t rng_state;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

enum order { ORDERED, REVERSED, RANDOM, FEW_KEYS, LAST_OUT };

static uint64_t key_for(enum order o, size_t i, size_t n)
{
	switch (o) {
	case ORDERED:
		return i;
	case REVERSED:
		return n - i;
	case FEW_KEYS:
		return rnd() % 3;
	case LAST_OUT: /* in order but the last: the check must not stop early */
		return i + 1 == n ? 0 : i + 1;
	default:
		return rnd() % 1000;
	}
}

static void check_recs(size_t n, enum order o)
{
	struct rec *a = calloc(n + 1, sizeof(*a));
	unsigned char *seen = calloc(n + 1, 1);
	uint64_t key_sum = 0;

	for (size_t i = 0; i < n; i++) {
		a[i].key = key_for(o, i, n);
		a[i].tag = i;
		for (int k = 0; k < 5; k++)
			a[i].pad[k] = a[i].key * 31 + i + (uint64_t)k;
		key_sum += a[i].key;
	}
	upager__sort(a, n, sizeof(*a), by_key);
	for (size_t i = 0; i < n; i++) {
		if (i)
			CHECK_CMP(a[i - 1].key, <=, a[i].key);
		CHECK_CMP(a[i].tag, <, n);
		CHECK(!seen[a[i].tag]);
		seen[a[i].tag] = 1;
		for (int k = 0; k < 5; k++) /* each record moved whole */
			CHECK_EQ(a[i].pad[k], a[i].key * 31 + a[i].tag + (uint64_t)k);
		key_sum -= a[i].key;
	}
	CHECK_EQ(key_sum, 0);
	free(a);
	free(seen);
}

static void check_odd(size_t n, enum order o)
{
	/* One byte in: the records are not word-aligned either. */
	char *raw = calloc(n + 1, sizeof(struct odd) + 1);
	struct odd *a = (struct odd *)(raw + 1);

	for (size_t i = 0; i < n; i++) {
		uint32_t key = (uint32_t)key_for(o, i, n);
		memcpy(&a[i].key, &key, sizeof(key));
		a[i].tag[0] = (char)(key * 7);
		a[i].tag[1] = (char)(key * 11);
		a[i].tag[2] = (char)(key * 13);
	}
	upager__sort(a, n, sizeof(*a), odd_by_key);
	for (size_t i = 0; i < n; i++) {
		uint32_t key;

		memcpy(&key, &a[i].key, sizeof(key));
		if (i) {
			uint32_t before;
			memcpy(&before, &a[i - 1].key, sizeof(before));
			CHECK_CMP(before, <=, key);
		}
		CHECK_EQ(a[i].tag[0], (char)(key * 7));
		CHECK_EQ(a[i].tag[1], (char)(key * 11));
		CHECK_EQ(a[i].tag[2], (char)(key * 13));
	}
	free(raw);
}

int main(void)
{
	static const size_t sizes[] = { 0, 1, 2, 3, 7, 64, 255, 1024 };

	rng_state = tu_rng(0x50f7);
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++)
		for (enum order o = ORDERED; o <= LAST_OUT; o++) {
			check_recs(sizes[s], o);
			check_odd(sizes[s], o);
		}
	printf("sort: all checks passed\n");
	return 0;
}
