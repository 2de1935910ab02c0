// SPDX-License-Identifier: MIT
/*
 * Snapshots, clones and regions freed in every order. Four objects share
 * pages: a region, a snapshot of it, a clone of the region and a clone of
 * the snapshot, with more data than the budget so that some shared pages
 * are in frames, some in swap slots and some zero. They are freed in each
 * of the 24 orders; after every free the survivors take more writes and
 * must then read back exactly, and at the end the pager must hold nothing:
 * a page's frame or slot leaks if no sharer's free lets go of it, and is
 * reused too early (a survivor reads garbage) if one lets go too soon.
 * Then a longer chain (clone of a snapshot of a clone of a snapshot ...)
 * is freed front to back, back to front and in shuffled orders; a few
 * orders again with 64 KiB pages; frees while other threads read a
 * snapshot and a clone that survive them; and a pager closed with
 * everything still alive.
 */
#include "testutil.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#define FRAMES 32u /* the minimum is 16 */
#define PAGES 48u  /* per object; four objects' versions are several budgets */
#define MAX_PS 65536u
#define CHAIN 6

static const struct test_backend *current;
static size_t ps; /* the page size of the pager being tested */
#define LEN ((size_t)PAGES * ps)

enum kind { REGION, SNAPSHOT };

struct obj {
	enum kind kind;
	const char *name;
	bool alive;
	unsigned char *addr; /* region base, or the snapshot's view */
	upager_snapshot_t *snap;
	unsigned char *shadow;
};

static void check_obj(struct obj *o, const char *when)
{
	static unsigned char buf[MAX_PS + 100];

	if (!o->alive)
		return;
	for (size_t pg = 0; pg < PAGES; pg++) {
		const unsigned char *a = o->addr + pg * ps, *want = o->shadow + pg * ps;
		if (memcmp(a, want, ps) != 0) {
			size_t i = 0;
			while (a[i] == want[i])
				i++;
			FAILF("%s, page size %zu, %s, %s: page %zu byte %zu is %#x, expected %#x",
			      current->label, ps, when, o->name, pg, i, a[i], want[i]);
		}
		if (o->kind != SNAPSHOT)
			continue;
		/* The other way in, straddling the page just read (resident
		 * now, mostly) and its neighbours (often not). */
		size_t off = pg ? pg * ps - 50 : 0;
		size_t len = LEN - off < ps + 100 ? LEN - off : ps + 100;
		CHECK_OK(upager_snapshot_read(o->snap, off, buf, len));
		if (memcmp(buf, o->shadow + off, len) != 0)
			FAILF("%s, page size %zu, %s, %s: upager_snapshot_read differs in [%zu, +%zu)",
			      current->label, ps, when, o->name, off, len);
	}
}

/* Writes one word in each of the chosen pages, shadow first. */
static void write_pages(struct obj *o, uint64_t *s, unsigned every, unsigned phase)
{
	for (size_t pg = phase; pg < PAGES; pg += every) {
		size_t off = pg * ps + rng_next(s) % (ps / 8) * 8;
		uint64_t v = rng_next(s);
		memcpy(o->shadow + off, &v, 8);
		memcpy(o->addr + off, &v, 8);
	}
}

static upager_t *open_pager(void)
{
	upager_config_t cfg;
	upager_t *p;

	test_config(&cfg, current);
	cfg.page_size = ps;
	cfg.ram_bytes = FRAMES * ps;
	CHECK_OK(upager_open(&cfg, &p));
	return p;
}

static void new_region(upager_t *p, struct obj *o, const char *name, uint64_t *s)
{
	o->kind = REGION;
	o->name = name;
	o->alive = true;
	o->snap = NULL;
	CHECK_OK(upager_map(p, LEN, 0, (void **)&o->addr));
	memset(o->shadow, 0, LEN);
	/* Every fourth page left zero. */
	for (size_t pg = 0; pg < PAGES; pg++) {
		if (pg % 4 == 3)
			continue;
		for (size_t i = 0; i < ps; i += 8) {
			uint64_t v = rng_next(s);
			memcpy(o->shadow + pg * ps + i, &v, 8);
		}
		memcpy(o->addr + pg * ps, o->shadow + pg * ps, ps);
	}
}

static void new_snapshot(upager_t *p, struct obj *o, const char *name, struct obj *of)
{
	o->kind = SNAPSHOT;
	o->name = name;
	o->alive = true;
	CHECK_OK(upager_snapshot(p, of->addr, &o->snap));
	CHECK_OK(upager_snapshot_map(o->snap, (void **)&o->addr));
	memcpy(o->shadow, of->shadow, LEN);
}

static void new_clone(upager_t *p, struct obj *o, const char *name, struct obj *of)
{
	o->kind = REGION;
	o->name = name;
	o->alive = true;
	o->snap = NULL;
	CHECK_OK(upager_clone(p, of->addr, (void **)&o->addr));
	memcpy(o->shadow, of->shadow, LEN);
}

static void free_obj(upager_t *p, struct obj *o)
{
	if (o->kind == SNAPSHOT)
		CHECK_OK(upager_snapshot_free(o->snap));
	else
		CHECK_OK(upager_unmap(p, o->addr));
	o->alive = false;
}

static void expect_empty(upager_t *p, const char *when)
{
	upager_stats_t st;

	CHECK_OK(upager_stats(p, &st));
	if (st.resident_pages || st.swap_slots_used || st.snapshots || st.regions ||
	    st.region_bytes)
		FAILF("%s, page size %zu, %s: left resident %llu, swap slots %llu, snapshots %llu,"
		      " regions %llu (%llu bytes)",
		      current->label, ps, when, (unsigned long long)st.resident_pages,
		      (unsigned long long)st.swap_slots_used, (unsigned long long)st.snapshots,
		      (unsigned long long)st.regions, (unsigned long long)st.region_bytes);
}

/* o[0] region, o[1] its snapshot, o[2] clone of the region, o[3] clone of
 * the snapshot; freed in the order given. */
static void one_order(upager_t *p, struct obj *o, const unsigned order[4], uint64_t *s)
{
	static const char *const names[4] = { "region", "snapshot", "clone of the region",
					      "clone of the snapshot" };
	char when[160];
	int len = snprintf(when, sizeof(when), "freeing");

	for (unsigned i = 0; i < 4; i++)
		len += snprintf(when + len, sizeof(when) - (size_t)len, "%s %s", i ? "," : "",
				names[order[i]]);

	new_region(p, &o[0], names[0], s);
	new_snapshot(p, &o[1], names[1], &o[0]);
	write_pages(&o[0], s, 2, 0); /* copy-on-write on half the pages */
	/* Half the snapshot read through its view: some of its pages get
	 * frames of their own, the rest still share the region's. */
	for (size_t pg = 0; pg < PAGES; pg += 2)
		CHECK_EQ(o[1].addr[pg * ps + 5], o[1].shadow[pg * ps + 5]);
	new_clone(p, &o[2], names[2], &o[0]);
	new_clone(p, &o[3], names[3], &o[1]);
	write_pages(&o[0], s, 3, 1);
	write_pages(&o[2], s, 3, 2);
	write_pages(&o[3], s, 5, 0);
	for (unsigned i = 0; i < 4; i++)
		check_obj(&o[i], when);

	for (unsigned step = 0; step < 4; step++) {
		char after[220];
		free_obj(p, &o[order[step]]);
		snprintf(after, sizeof(after), "%s: after freeing the %s", when,
			 names[order[step]]);
		if (!o[0].alive && o[1].alive)
			CHECK_ERR(upager_snapshot_restore(o[1].snap), UPAGER_EORIGIN);
		/* Survivors keep working (copies on write, evictions), and
		 * then hold exactly their shadows: a page let go too early
		 * shows as garbage here, in the half not written too. */
		for (unsigned i = 0; i < 4; i++)
			if (o[i].alive && o[i].kind == REGION)
				write_pages(&o[i], s, 2, (step + i) % 2);
		for (unsigned i = 0; i < 4; i++)
			check_obj(&o[(i + step) % 4], after);
		upager_stats_t st;
		CHECK_OK(upager_stats(p, &st));
		CHECK_CMP(st.resident_pages, <=, st.frames_total);
	}
	expect_empty(p, when);
}

static bool next_permutation(unsigned *a, unsigned n)
{
	unsigned i = n - 1, j = n - 1;

	while (i > 0 && a[i - 1] >= a[i])
		i--;
	if (i == 0)
		return false;
	while (a[j] <= a[i - 1])
		j--;
	unsigned t = a[i - 1];
	a[i - 1] = a[j];
	a[j] = t;
	for (j = n - 1; i < j; i++, j--) {
		t = a[i];
		a[i] = a[j];
		a[j] = t;
	}
	return true;
}

/*
 * region -> snapshot -> clone -> snapshot -> clone -> clone: each object
 * reads through the one before it.
 */
static void chain(upager_t *p, struct obj *o, const unsigned *order, const char *how, uint64_t *s)
{
	char when[96];

	new_region(p, &o[0], "chain region", s);
	new_snapshot(p, &o[1], "chain snapshot 1", &o[0]);
	write_pages(&o[0], s, 2, 1);
	new_clone(p, &o[2], "chain clone of snapshot 1", &o[1]);
	write_pages(&o[2], s, 3, 0);
	new_snapshot(p, &o[3], "chain snapshot of the clone", &o[2]);
	write_pages(&o[2], s, 2, 0);
	new_clone(p, &o[4], "chain clone of snapshot 2", &o[3]);
	write_pages(&o[4], s, 4, 1);
	new_clone(p, &o[5], "chain clone of that clone", &o[4]);
	write_pages(&o[5], s, 3, 1);
	write_pages(&o[4], s, 3, 2);
	for (unsigned i = 0; i < CHAIN; i++)
		check_obj(&o[i], how);
	for (unsigned step = 0; step < CHAIN; step++) {
		free_obj(p, &o[order[step]]);
		snprintf(when, sizeof(when), "chain freed %s, step %u", how, step);
		for (unsigned i = 0; i < CHAIN; i++)
			if (o[i].alive && o[i].kind == REGION)
				write_pages(&o[i], s, 5, step % 5);
		for (unsigned i = 0; i < CHAIN; i++)
			check_obj(&o[i], when);
	}
	snprintf(when, sizeof(when), "chain freed %s", how);
	expect_empty(p, when);
}

/* ---- frees while other threads read the survivors ---- */

struct reader {
	struct obj *o; /* nobody writes it while the reader runs */
	uint64_t seed;
	atomic_bool *stop;
	unsigned long reads;
};

static void *reader_main(void *arg)
{
	struct reader *rd = arg;
	uint64_t s = rd->seed;

	/* At least a few reads, however fast the main thread is. */
	while (rd->reads < 64 || !atomic_load(rd->stop)) {
		size_t pg = rng_next(&s) % PAGES;
		if (memcmp(rd->o->addr + pg * ps, rd->o->shadow + pg * ps, ps) != 0)
			FAILF("%s, page size %zu: %s read by another thread while its relatives"
			      " were freed: page %zu differs",
			      current->label, ps, rd->o->name, pg);
		rd->reads++;
	}
	return NULL;
}

/*
 * A snapshot and a clone of it are read by two threads while the main
 * thread writes the region (pushing old pages into the snapshot), takes
 * and frees another snapshot, clones the region, and finally unmaps it:
 * every one of those changes the chains that the readers' faults walk.
 */
static void readers_during_frees(upager_t *p, struct obj *o, uint64_t *s)
{
	struct obj *r = &o[0], *snap = &o[1], *cs = &o[2], *s2 = &o[3], *cr = &o[4];
	atomic_bool stop = false;
	struct reader rd[2] = { { snap, tu_rng(0x1111), &stop, 0 },
				{ cs, tu_rng(0x2222), &stop, 0 } };
	pthread_t tid[2];

	new_region(p, r, "region", s);
	new_snapshot(p, snap, "snapshot (read concurrently)", r);
	new_clone(p, cs, "clone of the snapshot (read concurrently)", snap);
	for (unsigned t = 0; t < 2; t++)
		CHECK_EQ(pthread_create(&tid[t], NULL, reader_main, &rd[t]), 0);

	write_pages(r, s, 2, 0);
	new_snapshot(p, s2, "second snapshot", r);
	write_pages(r, s, 2, 1);
	new_clone(p, cr, "clone of the region", r);
	write_pages(cr, s, 1, 0);
	write_pages(r, s, 3, 0);
	free_obj(p, s2);
	check_obj(cr, "clone of the region, with readers");
	free_obj(p, cr);
	write_pages(r, s, 1, 0);
	free_obj(p, r);

	atomic_store(&stop, true);
	for (unsigned t = 0; t < 2; t++)
		CHECK_EQ(pthread_join(tid[t], NULL), 0);
	check_obj(snap, "after the concurrent frees");
	check_obj(cs, "after the concurrent frees");
	free_obj(p, cs);
	free_obj(p, snap);
	expect_empty(p, "after the concurrent frees");
}

static void run(upager_t *p, struct obj *o, bool every_order, uint64_t *seed)
{
	unsigned order[CHAIN];

	for (unsigned i = 0; i < 4; i++)
		order[i] = i;
	if (every_order) {
		do
			one_order(p, o, order, seed);
		while (next_permutation(order, 4));
	} else {
		one_order(p, o, order, seed);
		for (unsigned i = 0; i < 4; i++)
			order[i] = 3 - i;
		one_order(p, o, order, seed);
	}

	for (unsigned i = 0; i < CHAIN; i++)
		order[i] = i;
	chain(p, o, order, "front to back", seed);
	for (unsigned i = 0; i < CHAIN; i++)
		order[i] = CHAIN - 1 - i;
	chain(p, o, order, "back to front", seed);
	for (int round = 0; round < (every_order ? 2 : 1); round++) {
		char how[32];
		for (unsigned i = CHAIN - 1; i > 0; i--) {
			unsigned j = (unsigned)(rng_next(seed) % (i + 1)), t = order[i];
			order[i] = order[j];
			order[j] = t;
		}
		snprintf(how, sizeof(how), "shuffled %u%u%u%u%u%u", order[0], order[1], order[2],
			 order[3], order[4], order[5]);
		chain(p, o, order, how, seed);
	}
	for (int round = 0; round < (every_order ? 3 : 1); round++)
		readers_during_frees(p, o, seed);

	/* The frames and slots that came back work: a region larger than
	 * the budget, written and read back. */
	new_region(p, &o[0], "region after all the frees", seed);
	check_obj(&o[0], "after all the frees");
	free_obj(p, &o[0]);
	expect_empty(p, "after all the frees");
}

static void body(const struct test_backend *b, void *arg)
{
	struct obj o[CHAIN];
	uint64_t seed = tu_rng(0xf4ee);
	upager_t *p;

	current = b;
	for (unsigned i = 0; i < CHAIN; i++) {
		o[i].shadow = malloc((size_t)PAGES * MAX_PS);
		CHECK(o[i].shadow);
	}

	ps = 4096;
	p = open_pager();
	CHECK_ERR(upager_snapshot_free(NULL), -EINVAL);
	run(p, o, true, &seed);
	CHECK_OK(upager_close(p));

	ps = 65536;
	p = open_pager();
	run(p, o, false, &seed);
	CHECK_OK(upager_close(p));

	/* Closing the pager frees whatever is still alive (the leak checker
	 * of a sanitizer build sees it if not): two snapshots of one
	 * region, a hidden one behind a clone, a clone of a snapshot. */
	ps = 4096;
	p = open_pager();
	new_region(p, &o[0], "region", &seed);
	new_snapshot(p, &o[1], "snapshot", &o[0]);
	write_pages(&o[0], &seed, 2, 0);
	new_snapshot(p, &o[2], "second snapshot", &o[0]);
	new_clone(p, &o[3], "clone of the region", &o[0]);
	new_clone(p, &o[4], "clone of the snapshot", &o[1]);
	check_obj(&o[4], "before closing");
	CHECK_OK(upager_close(p));

	for (unsigned i = 0; i < CHAIN; i++)
		free(o[i].shadow);
}

int main(void)
{
	return for_each_backend(body, NULL);
}
