/* SPDX-License-Identifier: MIT */
/*
 * Small fixed-capacity containers for policies and the simulator, none of
 * which allocates after its init:
 *
 *   plist   a doubly linked list threaded through an array of links, so a
 *           policy keeps its lists in per-frame arrays sized at create();
 *           head is the newest end, tail the oldest;
 *   keymap  a key -> 32-bit value hash table, open addressing with linear
 *           probing and backward-shift deletion;
 *   ghosts  a bounded pool of remembered keys (pages evicted but still
 *           watched), each on one of the policy's lists and findable by
 *           key: ARC's B1 and B2, 2Q's A1out, S3-FIFO's G.
 */
#ifndef UPAGER_KEYMAP_H
#define UPAGER_KEYMAP_H

#include <stdbool.h>
#include <stdint.h>

#define PNIL UINT32_MAX

struct plink {
	uint32_t prev, next; /* prev: towards head (newer), next: towards tail */
};

struct plist {
	uint32_t head, tail, len;
};

static inline void plist_init(struct plist *l)
{
	l->head = l->tail = PNIL;
	l->len = 0;
}

static inline void plist_push_head(struct plist *l, struct plink *n, uint32_t i)
{
	n[i].prev = PNIL;
	n[i].next = l->head;
	if (l->head != PNIL)
		n[l->head].prev = i;
	else
		l->tail = i;
	l->head = i;
	l->len++;
}

static inline void plist_push_tail(struct plist *l, struct plink *n, uint32_t i)
{
	n[i].next = PNIL;
	n[i].prev = l->tail;
	if (l->tail != PNIL)
		n[l->tail].next = i;
	else
		l->head = i;
	l->tail = i;
	l->len++;
}

static inline void plist_del(struct plist *l, struct plink *n, uint32_t i)
{
	if (n[i].prev != PNIL)
		n[n[i].prev].next = n[i].next;
	else
		l->head = n[i].next;
	if (n[i].next != PNIL)
		n[n[i].next].prev = n[i].prev;
	else
		l->tail = n[i].prev;
	n[i].prev = n[i].next = PNIL;
	l->len--;
}

/* Moves i (on l) to the head of l. */
static inline void plist_to_head(struct plist *l, struct plink *n, uint32_t i)
{
	if (l->head == i)
		return;
	plist_del(l, n, i);
	plist_push_head(l, n, i);
}

struct keymap {
	uint64_t *keys;
	uint32_t *vals; /* PNIL marks an empty slot */
	uint32_t mask;
	unsigned shift;
	uint32_t count;
};

/* Sizes the table for at most max entries (load factor 1/2 or less).
 * Returns 0 or -ENOMEM. */
int keymap_init(struct keymap *m, uint64_t max);
void keymap_free(struct keymap *m);

static inline uint32_t keymap_slot(const struct keymap *m, uint64_t key)
{
	return (uint32_t)((key * 0x9e3779b97f4a7c15ULL) >> m->shift);
}

/* The value stored for key, or PNIL. */
static inline uint32_t keymap_get(const struct keymap *m, uint64_t key)
{
	for (uint32_t i = keymap_slot(m, key);; i = (i + 1) & m->mask) {
		if (m->vals[i] == PNIL)
			return PNIL;
		if (m->keys[i] == key)
			return m->vals[i];
	}
}

/* Stores key -> val (val != PNIL), replacing an old value. The caller
 * keeps the count within the max given to keymap_init(). */
void keymap_put(struct keymap *m, uint64_t key, uint32_t val);
/* Removes key; returns its value or PNIL. */
uint32_t keymap_del(struct keymap *m, uint64_t key);

struct ghosts {
	struct keymap map; /* key -> ghost index */
	uint64_t *key;
	struct plink *link;
	uint8_t *list;  /* which of the policy's lists holds it */
	uint32_t *free; /* stack of unused indexes */
	uint32_t nfree, cap;
};

/* Room for cap ghosts. Returns 0 or -ENOMEM. */
int ghosts_init(struct ghosts *g, uint32_t cap);
void ghosts_free(struct ghosts *g);

static inline uint32_t ghost_find(const struct ghosts *g, uint64_t key)
{
	return g->cap ? keymap_get(&g->map, key) : PNIL;
}

/* Remembers key at the head of l (tagged listid). Returns its index, or
 * PNIL when the pool is full (callers trim their lists first). */
uint32_t ghost_add(struct ghosts *g, struct plist *l, uint8_t listid, uint64_t key);
/* Forgets ghost i, which is on l. */
void ghost_drop(struct ghosts *g, struct plist *l, uint32_t i);
/* Forgets the oldest ghost of l, if any. */
void ghost_drop_oldest(struct ghosts *g, struct plist *l);

#endif /* UPAGER_KEYMAP_H */
