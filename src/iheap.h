/* SPDX-License-Identifier: MIT */
/*
 * An indexed binary min-heap over items 0..cap-1: each item has a key of
 * two parts, compared as (k1, k2), and the heap knows every item's
 * position, so an item's key can change (or the item can leave) in
 * O(log n) without a search. LFU keeps its pages in one (k1 = use count,
 * k2 = last use), the simulator's OPT its resident pages (k1 = how far the
 * next use is, inverted so the farthest is on top).
 *
 * The keys live in the heap (k1[item], k2[item]): set them, then call
 * iheap_push() for a new item or iheap_fix() for one whose key changed.
 */
#ifndef UPAGER_IHEAP_H
#define UPAGER_IHEAP_H

#include <stdbool.h>
#include <stdint.h>

#include "keymap.h" /* PNIL */

struct iheap {
	uint32_t *at;  /* heap position -> item */
	uint32_t *pos; /* item -> heap position, or PNIL if not in the heap */
	uint64_t *k1, *k2;
	uint32_t n, cap;
};

/* Room for items 0..cap-1, none in the heap, keys 0. Returns 0 or
 * -ENOMEM (then nothing needs freeing). */
int iheap_init(struct iheap *h, uint32_t cap);
void iheap_free(struct iheap *h);
/* Adds item (not in the heap) with the keys it has now. */
void iheap_push(struct iheap *h, uint32_t item);
/* Restores the order after item's key changed, either way. */
void iheap_fix(struct iheap *h, uint32_t item);
/* Takes item out of the heap; nothing if it is not in it. */
void iheap_remove(struct iheap *h, uint32_t item);
/* Restores the order after many keys changed, in O(n). */
void iheap_rebuild(struct iheap *h);

/* The item with the smallest key, or PNIL if the heap is empty. */
static inline uint32_t iheap_top(const struct iheap *h)
{
	return h->n ? h->at[0] : PNIL;
}

static inline bool iheap_has(const struct iheap *h, uint32_t item)
{
	return h->pos[item] != PNIL;
}

#endif /* UPAGER_IHEAP_H */
