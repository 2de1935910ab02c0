// SPDX-License-Identifier: MIT
/*
 * The API fuzzer's interpreter: an input is a small program of pager
 * calls, run against a real pager and, step by step, against a shadow
 * model: a malloc'ed copy of every region, clone and snapshot, the
 * protection and pin count of every page. Any difference (a byte that
 * reads differently, a call that succeeds where the model says it must
 * fail or the other way round, a gauge that drifts) ends the run with a
 * description of what differed.
 *
 * The budget is tiny (16 to 24 frames of 4 KiB) and regions are up to 48
 * pages, so nearly every access evicts something: copy-on-write, restore
 * and clone run on pages that are in swap as often as on resident ones.
 *
 * Input format (every byte string is a valid program):
 *   byte 0    the pager: bits 0-1 backend and mode (uffd/transparent,
 *             uffd/fast, sigsegv, auto/transparent), bits 2-3 the budget
 *             (16, 16, 20, 24 frames), bits 4-7 the policy (policies[])
 *   then      operations: an opcode byte (modulo the number of
 *             operations) and its argument bytes; reading past the end
 *             gives zeros. At most MAX_OPS operations run.
 *
 * The interpreter never does what would crash by design: stores to pages
 * protected against writing or to a snapshot's view, loads from PROT_NONE
 * pages. It checks instead that upager_touch() and upager_pin() refuse
 * such accesses with -EACCES.
 */
#define _GNU_SOURCE
#include "interp.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "upager.h"

#define PS 4096u
#define MAX_OBJ 6
#define MAX_SNAP 6
#define MAX_PAGES 48
#define MAX_OPS 256
#define MAX_RANGE (3 * PS)

#define PROT_RW (UPAGER_PROT_READ | UPAGER_PROT_WRITE)

bool fuzz_interp_avoid_known_bugs;

/* A region or a clone: writable memory the program owns. */
struct obj {
	bool live;
	unsigned id; /* never reused, so a snapshot can tell its region is gone */
	unsigned char *base;
	size_t npages;
	unsigned char *shadow;
	uint8_t prot[MAX_PAGES];
	unsigned pins[MAX_PAGES];
};

struct snap {
	bool live;
	unsigned id; /* from the same counter as the objects' */
	upager_snapshot_t *s;
	unsigned char *view;
	size_t npages;
	unsigned origin; /* id of the object it was taken of; 0 once that is unmapped */
	unsigned char *shadow;
	unsigned pins[MAX_PAGES];
};

/* What an operation works on: an object or a snapshot's view. */
struct target {
	unsigned char *base;
	size_t npages;
	unsigned char *shadow;
	unsigned *pins;
	const uint8_t *prot; /* NULL for a view: read-only */
	struct obj *obj;
	struct snap *snap;
	char name[16];
};

struct state {
	upager_t *p;
	const uint8_t *in;
	size_t n, pos;
	unsigned op;
	const char *opname;
	FILE *log;
	unsigned frames;
	const char *policy;
	unsigned next_id;
	struct obj obj[MAX_OBJ];
	struct snap snap[MAX_SNAP];
	unsigned char buf[MAX_RANGE];
};

static uint8_t get8(struct state *st)
{
	return st->pos < st->n ? st->in[st->pos++] : 0;
}

static unsigned get16(struct state *st)
{
	unsigned lo = get8(st);
	return lo | (unsigned)get8(st) << 8;
}

static void logf_(struct state *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(struct state *st, const char *fmt, ...)
{
	va_list ap;

	if (!st->log)
		return;
	va_start(ap, fmt);
	fprintf(st->log, "op %3u %-10s ", st->op, st->opname);
	vfprintf(st->log, fmt, ap);
	fputc('\n', st->log);
	fflush(st->log);
	va_end(ap);
}

static int mismatch(struct state *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int mismatch(struct state *st, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "upager fuzz: MISMATCH at op %u (%s): ", st->op, st->opname);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n  last error: %s\n", upager_last_error());
	va_end(ap);
	return 1;
}

/* A call's result against the model's; want_any_error: any code < 0 will do. */
static int expect(struct state *st, const char *call, int got, int want)
{
	logf_(st, "%s -> %d", call, got);
	if (got == want)
		return 0;
	return mismatch(st, "%s returned %d (%s), the model expects %d (%s)", call, got,
			upager_strerror(got), want, want ? upager_strerror(want) : "success");
}

static unsigned count_objs(struct state *st)
{
	unsigned n = 0;
	for (unsigned i = 0; i < MAX_OBJ; i++)
		n += st->obj[i].live;
	return n;
}

static unsigned count_snaps(struct state *st)
{
	unsigned n = 0;
	for (unsigned i = 0; i < MAX_SNAP; i++)
		n += st->snap[i].live;
	return n;
}

/* The k-th live object or snapshot (k modulo how many there are). */
static struct obj *nth_obj(struct state *st, unsigned k)
{
	unsigned n = count_objs(st);
	if (!n)
		return NULL;
	k %= n;
	for (unsigned i = 0; i < MAX_OBJ; i++)
		if (st->obj[i].live && k-- == 0)
			return &st->obj[i];
	return NULL;
}

static struct snap *nth_snap(struct state *st, unsigned k)
{
	unsigned n = count_snaps(st);
	if (!n)
		return NULL;
	k %= n;
	for (unsigned i = 0; i < MAX_SNAP; i++)
		if (st->snap[i].live && k-- == 0)
			return &st->snap[i];
	return NULL;
}

static void target_obj(struct target *t, struct obj *o)
{
	memset(t, 0, sizeof(*t));
	t->base = o->base;
	t->npages = o->npages;
	t->shadow = o->shadow;
	t->pins = o->pins;
	t->prot = o->prot;
	t->obj = o;
	snprintf(t->name, sizeof(t->name), "obj%u", o->id);
}

static void target_snap(struct target *t, struct snap *s)
{
	memset(t, 0, sizeof(*t));
	t->base = s->view;
	t->npages = s->npages;
	t->shadow = s->shadow;
	t->pins = s->pins;
	t->snap = s;
	snprintf(t->name, sizeof(t->name), "snap%u", s->id);
}

/* Reads a selector byte: an object, or (odd selector, views allowed) a
 * snapshot's view. False when there is nothing to pick. */
static bool pick(struct state *st, bool views, struct target *t)
{
	uint8_t b = get8(st);
	if (views && (b & 1) && count_snaps(st)) {
		target_snap(t, nth_snap(st, b >> 1));
		return true;
	}
	struct obj *o = nth_obj(st, b >> 1);
	if (!o)
		return false;
	target_obj(t, o);
	return true;
}

/* A byte range inside t, at most max bytes. */
static void range(struct state *st, const struct target *t, size_t max, size_t *off, size_t *len)
{
	size_t size = t->npages * PS;
	size_t o = get16(st) % size;
	size_t room = size - o < max ? size - o : max;
	*off = o;
	*len = 1 + get16(st) % room;
}

/* May the program access [off, off+len) of t this way without a fault
 * that upager_protect() (or a view's read-only mapping) turns into SIGSEGV? */
static bool allowed(const struct target *t, size_t off, size_t len, bool write)
{
	if (!t->prot)
		return !write;
	for (size_t pg = off / PS; pg <= (off + len - 1) / PS; pg++)
		if (write ? t->prot[pg] != PROT_RW : t->prot[pg] == UPAGER_PROT_NONE)
			return false;
	return true;
}

static unsigned model_pinned(struct state *st)
{
	unsigned n = 0;
	for (unsigned i = 0; i < MAX_OBJ; i++)
		for (size_t pg = 0; st->obj[i].live && pg < st->obj[i].npages; pg++)
			n += st->obj[i].pins[pg] > 0;
	for (unsigned i = 0; i < MAX_SNAP; i++)
		for (size_t pg = 0; st->snap[i].live && pg < st->snap[i].npages; pg++)
			n += st->snap[i].pins[pg] > 0;
	return n;
}

/* got (read from the pager) against want (the shadow), both at offset off of t. */
static int compare(struct state *st, const struct target *t, size_t off, const unsigned char *got,
		   const unsigned char *want, size_t len, const char *how)
{
	if (memcmp(got, want, len) == 0)
		return 0;
	size_t i = 0;
	while (got[i] == want[i])
		i++;
	size_t bad = 0;
	for (size_t j = i; j < len; j++)
		bad += got[j] != want[j];
	return mismatch(
		st,
		"%s %s [%zu, +%zu): byte %zu (page %zu, offset %zu in it) is %#x, the model has %#x;"
		" %zu bytes differ",
		how, t->name, off, len, off + i, (off + i) / PS, (off + i) % PS, got[i], want[i],
		bad);
}

/* Every page of t that may be read, against the model. */
static int check_all(struct state *st, const struct target *t, const char *how)
{
	for (size_t pg = 0; pg < t->npages; pg++) {
		if (t->prot && t->prot[pg] == UPAGER_PROT_NONE)
			continue;
		if (compare(st, t, pg * PS, t->base + pg * PS, t->shadow + pg * PS, PS, how))
			return 1;
	}
	return 0;
}

static int check_stats(struct state *st)
{
	upager_stats_t s;
	int err = upager_stats(st->p, &s);

	if (err)
		return mismatch(st, "upager_stats: %s", upager_strerror(err));
	if (s.pinned_pages != model_pinned(st))
		return mismatch(st, "pinned_pages is %llu, the model has %u pinned pages",
				(unsigned long long)s.pinned_pages, model_pinned(st));
	if (s.regions != count_objs(st))
		return mismatch(st,
				"the regions gauge is %llu, the model has %u regions and clones",
				(unsigned long long)s.regions, count_objs(st));
	if (s.snapshots < count_snaps(st))
		return mismatch(st, "the snapshots gauge is %llu, the program holds %u",
				(unsigned long long)s.snapshots, count_snaps(st));
	if (s.resident_pages > s.frames_total)
		return mismatch(st, "%llu pages resident in a budget of %llu",
				(unsigned long long)s.resident_pages,
				(unsigned long long)s.frames_total);
	return 0;
}

static struct obj *new_obj(struct state *st, unsigned char *base, size_t npages)
{
	for (unsigned i = 0; i < MAX_OBJ; i++) {
		struct obj *o = &st->obj[i];
		if (o->live)
			continue;
		memset(o, 0, sizeof(*o));
		o->live = true;
		o->id = ++st->next_id;
		o->base = base;
		o->npages = npages;
		o->shadow = calloc(npages, PS);
		if (!o->shadow)
			abort();
		memset(o->prot, PROT_RW, sizeof(o->prot));
		return o;
	}
	return NULL;
}

static void drop_obj(struct state *st, struct obj *o)
{
	for (unsigned i = 0; i < MAX_SNAP; i++)
		if (st->snap[i].live && st->snap[i].origin == o->id)
			st->snap[i].origin = 0;
	free(o->shadow);
	o->shadow = NULL;
	o->live = false;
}

static void drop_snap(struct snap *s)
{
	free(s->shadow);
	s->shadow = NULL;
	s->live = false;
}

/* ---- the operations ---- */

static int op_map(struct state *st)
{
	size_t npages = 1 + get8(st) % MAX_PAGES;
	size_t len = npages * PS - get16(st) % PS; /* rounded up by the pager */
	void *a = NULL;

	if (count_objs(st) == MAX_OBJ)
		return 0;
	if (expect(st, "upager_map", upager_map(st->p, len, 0, &a), 0))
		return 1;
	if (!a || (uintptr_t)a % PS)
		return mismatch(st, "upager_map gave %p, not page aligned", a);
	struct obj *o = new_obj(st, a, npages);
	logf_(st, "obj%u = %p, %zu pages (asked for %zu bytes)", o->id, a, npages, len);
	return 0;
}

static int op_unmap(struct state *st)
{
	uint8_t how = get8(st);
	struct target t;

	if (how % 4 == 1 && count_snaps(st)) {
		target_snap(&t, nth_snap(st, how >> 2));
		return expect(st, "upager_unmap(view)", upager_unmap(st->p, t.base),
			      UPAGER_ESNAPSHOT);
	}
	struct obj *o = nth_obj(st, how >> 2);
	if (!o)
		return 0;
	if (how % 4 == 2 && o->npages > 1)
		return expect(st, "upager_unmap(base + page)", upager_unmap(st->p, o->base + PS),
			      UPAGER_ENOREGION);
	logf_(st, "obj%u", o->id);
	if (expect(st, "upager_unmap", upager_unmap(st->p, o->base), 0))
		return 1;
	drop_obj(st, o);
	return 0;
}

static int op_store(struct state *st)
{
	struct target t;
	size_t off, len;

	if (!pick(st, false, &t))
		return 0;
	range(st, &t, MAX_RANGE, &off, &len);
	uint8_t kind = get8(st);
	if (kind % 4 == 0) {
		memset(st->buf, 0, len); /* zero pages are special to the pager */
	} else {
		uint64_t x = (uint64_t)kind * 0x9e3779b97f4a7c15ULL + st->op + 1;
		for (size_t i = 0; i < len; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			st->buf[i] = (unsigned char)x;
		}
	}
	if (!allowed(&t, off, len, true)) {
		logf_(st, "%s [%zu, +%zu): skipped, protected", t.name, off, len);
		return 0;
	}
	logf_(st, "%s [%zu, +%zu) kind %u", t.name, off, len, kind);
	memcpy(t.shadow + off, st->buf, len);
	memcpy(t.base + off, st->buf, len);
	return 0;
}

static int op_load(struct state *st)
{
	struct target t;
	size_t off, len;

	if (!pick(st, true, &t))
		return 0;
	range(st, &t, MAX_RANGE, &off, &len);
	if (!allowed(&t, off, len, false)) {
		logf_(st, "%s [%zu, +%zu): skipped, PROT_NONE", t.name, off, len);
		return 0;
	}
	logf_(st, "%s [%zu, +%zu)", t.name, off, len);
	memcpy(st->buf, t.base + off, len);
	return compare(st, &t, off, st->buf, t.shadow + off, len, "load of");
}

static int op_touch(struct state *st)
{
	struct target t;
	size_t off, len;

	if (!pick(st, true, &t))
		return 0;
	range(st, &t, MAX_RANGE, &off, &len);
	int write = get8(st) & 1;
	logf_(st, "%s [%zu, +%zu) write %d", t.name, off, len, write);
	return expect(st, "upager_touch", upager_touch(st->p, t.base + off, len, write),
		      allowed(&t, off, len, write) ? 0 : -EACCES);
}

static int op_pin(struct state *st)
{
	struct target t;
	size_t off, len;

	if (!pick(st, true, &t))
		return 0;
	range(st, &t, 4 * PS, &off, &len);
	int write = get8(st) & 1;
	size_t first = off / PS, last = (off + len - 1) / PS;
	int want = 0;
	if (model_pinned(st) + (last - first + 1) > st->frames / 2)
		want = -ENOMEM;
	else if (!allowed(&t, off, len, write))
		want = -EACCES;
	logf_(st, "%s [%zu, +%zu) write %d", t.name, off, len, write);
	if (expect(st, "upager_pin", upager_pin(st->p, t.base + off, len, write), want))
		return 1;
	for (size_t pg = first; !want && pg <= last; pg++)
		t.pins[pg]++;
	return 0;
}

static int op_unpin(struct state *st)
{
	struct target t;
	size_t off, len;

	if (!pick(st, true, &t))
		return 0;
	range(st, &t, 4 * PS, &off, &len);
	logf_(st, "%s [%zu, +%zu)", t.name, off, len);
	if (expect(st, "upager_unpin", upager_unpin(st->p, t.base + off, len), 0))
		return 1;
	for (size_t pg = off / PS; pg <= (off + len - 1) / PS; pg++)
		if (t.pins[pg])
			t.pins[pg]--;
	return 0;
}

static int op_protect(struct state *st)
{
	static const int prots[] = { UPAGER_PROT_NONE, UPAGER_PROT_READ, PROT_RW };
	struct target t;
	uint8_t how;

	if (!pick(st, true, &t))
		return 0;
	size_t first = get8(st) % t.npages;
	size_t n = 1 + get8(st) % (t.npages - first);
	how = get8(st);
	int prot = prots[how % 3];
	logf_(st, "%s pages [%zu, +%zu) prot %d", t.name, first, n, prot);
	if (!t.prot)
		return expect(st, "upager_protect(view)",
			      upager_protect(st->p, t.base + first * PS, n * PS, prot),
			      UPAGER_ESNAPSHOT);
	if (how / 3 % 8 == 7) /* now and then an unaligned length */
		return expect(st, "upager_protect(unaligned)",
			      upager_protect(st->p, t.base + first * PS, n * PS - 1, prot),
			      -EINVAL);
	if (expect(st, "upager_protect", upager_protect(st->p, t.base + first * PS, n * PS, prot),
		   0))
		return 1;
	for (size_t pg = first; pg < first + n; pg++)
		t.obj->prot[pg] = (uint8_t)prot;
	return 0;
}

static int op_advise(struct state *st)
{
	struct target t;
	size_t off, len;

	if (!pick(st, true, &t))
		return 0;
	range(st, &t, 8 * PS, &off, &len);
	int advice = get8(st) % 5;
	int want = 0;
	size_t first = off / PS, last = (off + len - 1) / PS;

	logf_(st, "%s [%zu, +%zu) advice %d", t.name, off, len, advice);
	if (advice == UPAGER_ADVICE_DONTNEED) {
		if (!t.prot) {
			want = -EACCES;
		} else {
			/* Whole pages, the pinned ones kept. */
			for (size_t pg = first; pg <= last; pg++) {
				if (t.pins[pg])
					want = -EBUSY;
				else
					memset(t.shadow + pg * PS, 0, PS);
			}
		}
	}
	return expect(st, "upager_advise", upager_advise(st->p, t.base + off, len, advice), want);
}

static int op_snapshot(struct state *st)
{
	struct target t;
	upager_snapshot_t *s = NULL;
	void *view = NULL, *again = NULL;

	if (!pick(st, true, &t))
		return 0;
	if (!t.prot)
		return expect(st, "upager_snapshot(view)", upager_snapshot(st->p, t.base, &s),
			      UPAGER_ESNAPSHOT);
	struct snap *sn = NULL;
	for (unsigned i = 0; i < MAX_SNAP && !sn; i++)
		if (!st->snap[i].live)
			sn = &st->snap[i];
	if (!sn)
		return 0;
	logf_(st, "of %s", t.name);
	if (expect(st, "upager_snapshot", upager_snapshot(st->p, t.base, &s), 0) ||
	    expect(st, "upager_snapshot_map", upager_snapshot_map(s, &view), 0) ||
	    expect(st, "upager_snapshot_map", upager_snapshot_map(s, &again), 0))
		return 1;
	if (view != again || !view || (uintptr_t)view % PS)
		return mismatch(st, "upager_snapshot_map gave %p, then %p", view, again);
	memset(sn, 0, sizeof(*sn));
	sn->live = true;
	sn->id = ++st->next_id;
	sn->s = s;
	sn->view = view;
	sn->npages = t.npages;
	sn->origin = t.obj->id;
	sn->shadow = malloc(t.npages * PS);
	if (!sn->shadow)
		abort();
	memcpy(sn->shadow, t.shadow, t.npages * PS);
	logf_(st, "snap%u = view %p of obj%u", sn->id, view, t.obj->id);
	return 0;
}

static int op_restore(struct state *st)
{
	struct snap *s = nth_snap(st, get8(st));

	if (!s)
		return 0;
	logf_(st, "snap%u into obj%u", s->id, s->origin);
	if (!s->origin)
		return expect(st, "upager_snapshot_restore", upager_snapshot_restore(s->s),
			      UPAGER_EORIGIN);
	if (expect(st, "upager_snapshot_restore", upager_snapshot_restore(s->s), 0))
		return 1;
	for (unsigned i = 0; i < MAX_OBJ; i++)
		if (st->obj[i].live && st->obj[i].id == s->origin)
			memcpy(st->obj[i].shadow, s->shadow, s->npages * PS);
	return 0;
}

static int op_clone(struct state *st)
{
	struct target t;
	void *c = NULL;

	if (!pick(st, true, &t) || count_objs(st) == MAX_OBJ)
		return 0;
	if (expect(st, "upager_clone", upager_clone(st->p, t.base, &c), 0))
		return 1;
	if (!c || (uintptr_t)c % PS)
		return mismatch(st, "upager_clone gave %p", c);
	struct obj *o = new_obj(st, c, t.npages);
	memcpy(o->shadow, t.shadow, t.npages * PS);
	logf_(st, "obj%u = %p, clone of %s", o->id, c, t.name);
	return 0;
}

static int op_snap_free(struct state *st)
{
	struct snap *s = nth_snap(st, get8(st));

	if (!s)
		return 0;
	logf_(st, "snap%u", s->id);
	if (expect(st, "upager_snapshot_free", upager_snapshot_free(s->s), 0))
		return 1;
	drop_snap(s);
	return 0;
}

static int op_snap_read(struct state *st)
{
	struct snap *s = nth_snap(st, get8(st));
	struct target t, dst;
	size_t off, len;

	if (!s)
		return 0;
	target_snap(&t, s);
	range(st, &t, MAX_RANGE, &off, &len);
	uint8_t how = get8(st);
	if (how % 8 == 7) /* past the end */
		return expect(st, "upager_snapshot_read(past the end)",
			      upager_snapshot_read(s->s, t.npages * PS - len + 1, st->buf, len),
			      -EINVAL);
	/* Into a region (a store the library makes, maybe a COW fault on
	 * the snapshot's own origin), or into plain memory. */
	if (how % 2 && pick(st, false, &dst) && dst.npages * PS >= len) {
		size_t to = get16(st) % (dst.npages * PS - len + 1);
		if (allowed(&dst, to, len, true)) {
			logf_(st, "%s [%zu, +%zu) into %s at %zu", t.name, off, len, dst.name, to);
			if (expect(st, "upager_snapshot_read",
				   upager_snapshot_read(s->s, off, dst.base + to, len), 0))
				return 1;
			memcpy(dst.shadow + to, s->shadow + off, len);
			return compare(st, &dst, to, dst.base + to, dst.shadow + to, len,
				       "snapshot_read into");
		}
	}
	logf_(st, "%s [%zu, +%zu)", t.name, off, len);
	memset(st->buf, 0xa5, len);
	if (expect(st, "upager_snapshot_read", upager_snapshot_read(s->s, off, st->buf, len), 0))
		return 1;
	return compare(st, &t, off, st->buf, s->shadow + off, len, "snapshot_read of");
}

static int op_check(struct state *st)
{
	struct target t;

	if (!pick(st, true, &t))
		return 0;
	logf_(st, "%s", t.name);
	return check_all(st, &t, "check of");
}

/* Append only: saved inputs name an operation by its index here. */
static const struct {
	const char *name;
	int (*fn)(struct state *st);
} ops[] = {
	{ "map", op_map },
	{ "unmap", op_unmap },
	{ "store", op_store },
	{ "load", op_load },
	{ "touch", op_touch },
	{ "pin", op_pin },
	{ "unpin", op_unpin },
	{ "protect", op_protect },
	{ "advise", op_advise },
	{ "snapshot", op_snapshot },
	{ "restore", op_restore },
	{ "clone", op_clone },
	{ "snap_free", op_snap_free },
	{ "snap_read", op_snap_read },
	{ "check", op_check },
	{ "store", op_store },
	{ "load", op_load },
};
#define NOPS (sizeof(ops) / sizeof(ops[0]))

/* Everything against the model once more, then everything freed: the
 * pager must be empty again. */
static int finish(struct state *st)
{
	struct target t;
	upager_stats_t s;

	st->opname = "finish";
	for (unsigned i = 0; i < MAX_OBJ; i++) {
		struct obj *o = &st->obj[i];
		if (!o->live)
			continue;
		target_obj(&t, o);
		if (expect(st, "upager_protect(all)",
			   upager_protect(st->p, o->base, o->npages * PS, PROT_RW), 0))
			return 1;
		memset(o->prot, PROT_RW, sizeof(o->prot));
		if (check_all(st, &t, "final check of"))
			return 1;
	}
	for (unsigned i = 0; i < MAX_SNAP; i++) {
		if (!st->snap[i].live)
			continue;
		target_snap(&t, &st->snap[i]);
		if (check_all(st, &t, "final check of"))
			return 1;
	}
	/* Snapshots first or regions first, as the input's length says. */
	for (int round = 0; round < 2; round++) {
		bool snaps = (round == 0) == (st->n % 2 == 0);
		for (unsigned i = 0; snaps && i < MAX_SNAP; i++) {
			if (!st->snap[i].live)
				continue;
			if (expect(st, "upager_snapshot_free", upager_snapshot_free(st->snap[i].s),
				   0))
				return 1;
			drop_snap(&st->snap[i]);
		}
		for (unsigned i = 0; !snaps && i < MAX_OBJ; i++) {
			if (!st->obj[i].live)
				continue;
			if (expect(st, "upager_unmap", upager_unmap(st->p, st->obj[i].base), 0))
				return 1;
			drop_obj(st, &st->obj[i]);
		}
	}
	if (expect(st, "upager_stats", upager_stats(st->p, &s), 0))
		return 1;
	if (s.regions || s.snapshots || s.resident_pages || s.swap_slots_used || s.pinned_pages)
		return mismatch(
			st,
			"all freed, yet regions %llu snapshots %llu resident %llu swap slots %llu"
			" pinned %llu",
			(unsigned long long)s.regions, (unsigned long long)s.snapshots,
			(unsigned long long)s.resident_pages, (unsigned long long)s.swap_slots_used,
			(unsigned long long)s.pinned_pages);
	if (s.io_errors)
		return mismatch(st, "%llu I/O errors", (unsigned long long)s.io_errors);
	return 0;
}

/* Append only: saved inputs name the policy by its index here. */
static const char *const policies[16] = {
	"clock", "fifo",     "lru",    "lfu",   "2q",  "arc", "car",   "s3fifo",
	"sieve", "clockpro", "random", "clock", "lru", "arc", "sieve", "clock",
};

static int open_pager(struct state *st, uint8_t how)
{
	static const struct {
		const char *backend;
		upager_mode_t mode;
	} ways[] = {
		{ "uffd", UPAGER_MODE_TRANSPARENT },
		{ "uffd", UPAGER_MODE_FAST },
		{ "sigsegv", UPAGER_MODE_FAST },
		{ "auto", UPAGER_MODE_TRANSPARENT },
	};
	static const unsigned budgets[] = { 16, 16, 20, 24 };
	upager_config_t cfg;

	upager_config_init(&cfg);
	cfg.page_size = PS;
	st->frames = budgets[(how >> 2) & 3];
	cfg.ram_bytes = (size_t)st->frames * PS;
	cfg.backend = ways[how & 3].backend;
	cfg.mode = ways[how & 3].mode;
	cfg.policy = policies[how >> 4];
	st->policy = cfg.policy;
	int err = upager_open(&cfg, &st->p);
	if (err == UPAGER_EPOLICY) {
		/* Not in this build: the default. */
		cfg.policy = st->policy = "clock";
		err = upager_open(&cfg, &st->p);
	}
	if (err == UPAGER_EBACKEND) {
		/* This machine lacks that backend: whatever it has. */
		cfg.backend = "auto";
		err = upager_open(&cfg, &st->p);
	}
	if (st->log)
		fprintf(st->log, "pager: %s/%s, %u frames, policy %s: %s\n", cfg.backend,
			cfg.mode == UPAGER_MODE_FAST ? "fast" : "transparent", st->frames,
			cfg.policy, err ? upager_strerror(err) : "open");
	if (err)
		fprintf(stderr, "upager fuzz: upager_open: %s (%s)\n", upager_strerror(err),
			upager_last_error());
	return err;
}

int fuzz_interp_run(const uint8_t *data, size_t size, FILE *log)
{
	struct state *st = calloc(1, sizeof(*st));
	int ret = 0;

	if (!st)
		abort();
	st->in = data;
	st->n = size;
	st->log = log;
	if (open_pager(st, get8(st))) {
		free(st);
		return 77;
	}
	for (st->op = 0; st->pos < st->n && st->op < MAX_OPS && !ret; st->op++) {
		unsigned k = get8(st) % NOPS;
		st->opname = ops[k].name;
		ret = ops[k].fn(st);
		if (!ret)
			ret = check_stats(st);
	}
	if (!ret)
		ret = finish(st);
	if (ret) {
		/* Leave the pager as it is: the process is about to report
		 * the failure, and the pager's state is suspect. */
		return 1;
	}
	if (expect(st, "upager_close", upager_close(st->p), 0))
		return 1;
	free(st);
	return 0;
}
