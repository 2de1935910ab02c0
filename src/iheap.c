// SPDX-License-Identifier: MIT
/*
 * The indexed binary heap (iheap.h): the array at[] is a binary min-heap
 * of items ordered by (k1, k2); pos[] is its inverse, kept up to date by
 * every move, so an item is found in O(1) and re-sifted in O(log n).
 */
#include "iheap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int iheap_init(struct iheap *h, uint32_t cap)
{
	memset(h, 0, sizeof(*h));
	h->at = malloc((size_t)(cap ? cap : 1) * sizeof(*h->at));
	h->pos = malloc((size_t)(cap ? cap : 1) * sizeof(*h->pos));
	h->k1 = calloc(cap ? cap : 1, sizeof(*h->k1));
	h->k2 = calloc(cap ? cap : 1, sizeof(*h->k2));
	if (!h->at || !h->pos || !h->k1 || !h->k2) {
		iheap_free(h);
		return -ENOMEM;
	}
	memset(h->pos, 0xff, (size_t)(cap ? cap : 1) * sizeof(*h->pos));
	h->cap = cap;
	return 0;
}

void iheap_free(struct iheap *h)
{
	free(h->at);
	free(h->pos);
	free(h->k1);
	free(h->k2);
	memset(h, 0, sizeof(*h));
}

static bool less(const struct iheap *h, uint32_t a, uint32_t b)
{
	if (h->k1[a] != h->k1[b])
		return h->k1[a] < h->k1[b];
	return h->k2[a] < h->k2[b];
}

static void place(struct iheap *h, uint32_t i, uint32_t item)
{
	h->at[i] = item;
	h->pos[item] = i;
}

/* Moves the item at i towards the root while it is smaller than its
 * parent; returns where it ended. */
static uint32_t sift_up(struct iheap *h, uint32_t i)
{
	uint32_t item = h->at[i];

	while (i > 0) {
		uint32_t parent = (i - 1) / 2;
		if (!less(h, item, h->at[parent]))
			break;
		place(h, i, h->at[parent]);
		i = parent;
	}
	place(h, i, item);
	return i;
}

static void sift_down(struct iheap *h, uint32_t i)
{
	uint32_t item = h->at[i];

	for (;;) {
		uint32_t c = 2 * i + 1;
		if (c >= h->n)
			break;
		if (c + 1 < h->n && less(h, h->at[c + 1], h->at[c]))
			c++;
		if (!less(h, h->at[c], item))
			break;
		place(h, i, h->at[c]);
		i = c;
	}
	place(h, i, item);
}

void iheap_push(struct iheap *h, uint32_t item)
{
	place(h, h->n++, item);
	sift_up(h, h->n - 1);
}

void iheap_fix(struct iheap *h, uint32_t item)
{
	uint32_t i = h->pos[item];

	if (sift_up(h, i) == i)
		sift_down(h, i);
}

void iheap_remove(struct iheap *h, uint32_t item)
{
	uint32_t i = h->pos[item], last;

	if (i == PNIL)
		return;
	h->pos[item] = PNIL;
	last = h->at[--h->n];
	if (i == h->n)
		return;
	place(h, i, last);
	iheap_fix(h, last);
}

void iheap_rebuild(struct iheap *h)
{
	for (uint32_t i = h->n / 2; i-- > 0;)
		sift_down(h, i);
}
