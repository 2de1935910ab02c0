// SPDX-License-Identifier: MIT
/*
 * The fixed-capacity containers of keymap.h: a key -> value hash table
 * and a pool of ghost entries built on it. Everything is allocated in the
 * init functions; the operations the fault path uses never allocate.
 */
#include "internal.h"
#include "keymap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int keymap_init(struct keymap *m, uint64_t max)
{
	uint64_t cap = 16;
	unsigned bits = 4;

	while (cap < 2 * max) {
		cap <<= 1;
		bits++;
	}
	if (cap > (1ULL << 31))
		return -ENOMEM;
	m->keys = malloc(cap * sizeof(*m->keys));
	m->vals = malloc(cap * sizeof(*m->vals));
	if (!m->keys || !m->vals) {
		free(m->keys);
		free(m->vals);
		m->keys = NULL;
		m->vals = NULL;
		return -ENOMEM;
	}
	memset(m->vals, 0xff, cap * sizeof(*m->vals));
	m->mask = (uint32_t)(cap - 1);
	m->shift = 64 - bits;
	m->count = 0;
	return 0;
}

void keymap_free(struct keymap *m)
{
	free(m->keys);
	free(m->vals);
	m->keys = NULL;
	m->vals = NULL;
}

void keymap_put(struct keymap *m, uint64_t key, uint32_t val)
{
	for (uint32_t i = keymap_slot(m, key);; i = (i + 1) & m->mask) {
		if (m->vals[i] == PNIL) {
			m->keys[i] = key;
			m->vals[i] = val;
			m->count++;
			return;
		}
		if (m->keys[i] == key) {
			m->vals[i] = val;
			return;
		}
	}
}

uint32_t keymap_del(struct keymap *m, uint64_t key)
{
	uint32_t i = keymap_slot(m, key), old;

	for (;; i = (i + 1) & m->mask) {
		if (m->vals[i] == PNIL)
			return PNIL;
		if (m->keys[i] == key)
			break;
	}
	old = m->vals[i];
	m->count--;
	/* Backward shift: pull later entries of the probe run into the hole
	 * unless their home slot lies cyclically in (hole, j]. */
	for (uint32_t j = (i + 1) & m->mask;; j = (j + 1) & m->mask) {
		if (m->vals[j] == PNIL)
			break;
		uint32_t home = keymap_slot(m, m->keys[j]);
		bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
		if (stays)
			continue;
		m->keys[i] = m->keys[j];
		m->vals[i] = m->vals[j];
		i = j;
	}
	m->vals[i] = PNIL;
	return old;
}

int ghosts_init(struct ghosts *g, uint32_t cap)
{
	memset(g, 0, sizeof(*g));
	if (keymap_init(&g->map, cap))
		return -ENOMEM;
	g->key = calloc(cap ? cap : 1, sizeof(*g->key));
	g->link = calloc(cap ? cap : 1, sizeof(*g->link));
	g->list = calloc(cap ? cap : 1, 1);
	g->free = calloc(cap ? cap : 1, sizeof(*g->free));
	if (!g->key || !g->link || !g->list || !g->free) {
		ghosts_free(g);
		return -ENOMEM;
	}
	g->cap = cap;
	for (uint32_t i = 0; i < cap; i++)
		g->free[i] = cap - 1 - i;
	g->nfree = cap;
	return 0;
}

void ghosts_free(struct ghosts *g)
{
	keymap_free(&g->map);
	free(g->key);
	free(g->link);
	free(g->list);
	free(g->free);
	memset(g, 0, sizeof(*g));
}

uint32_t ghost_add(struct ghosts *g, struct plist *l, uint8_t listid, uint64_t key)
{
	uint32_t i;

	if (!g->nfree)
		return PNIL;
	i = g->free[--g->nfree];
	g->key[i] = key;
	g->list[i] = listid;
	plist_push_head(l, g->link, i);
	keymap_put(&g->map, key, i);
	return i;
}

void ghost_drop(struct ghosts *g, struct plist *l, uint32_t i)
{
	plist_del(l, g->link, i);
	keymap_del(&g->map, g->key[i]);
	g->free[g->nfree++] = i;
}

void ghost_drop_oldest(struct ghosts *g, struct plist *l)
{
	if (l->tail != PNIL)
		ghost_drop(g, l, l->tail);
}
