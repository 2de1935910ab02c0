// SPDX-License-Identifier: MIT
/*
 * A debug build (--enable-debug) catches a broken page table: an entry
 * corrupted behind the pager's back (white-box) makes the next check
 * abort with a message that names the rule. Skipped in other builds.
 */
#include "testutil.h"
#include "internal.h"

#include <signal.h>
#include <string.h>
#include <sys/wait.h>

#define PS 4096u

#ifdef UPAGER_DEBUG
static upager_t *open_one(unsigned char **a)
{
	upager_config_t cfg;
	upager_t *p;

	upager_config_init(&cfg);
	cfg.ram_bytes = 32 * PS;
	cfg.page_size = PS;
	CHECK_OK(upager_open(&cfg, &p));
	CHECK_OK(upager_map(p, 64 * PS, 0, (void **)a));
	return p;
}

/* A dirty page that claims a swap copy: caught at close. */
static void stale_slot(void *arg)
{
	unsigned char *a;
	upager_t *p = open_one(&a);

	(void)arg;
	a[0] = 1;
	struct region *r = upager__region_find((uintptr_t)a);
	struct upte *e = pt_lookup(&r->pt, 0);
	upager__region_put(r);
	upager__pte_lock(e);
	e->slot = 7;
	upager__pte_unlock(e);
	upager_close(p);
	_exit(3);
}

/* A frame record that names another page: caught by a fault's walk. */
static void wrong_frame(void *arg)
{
	unsigned char *a;
	upager_t *p = open_one(&a);

	(void)arg;
	/* Pinned: an eviction would free the frame and its record. */
	CHECK_OK(upager_pin(p, a, PS, 1));
	CHECK_OK(upager_advise(p, a, 64 * PS, UPAGER_ADVICE_RANDOM));
	struct region *r = upager__region_find((uintptr_t)a);
	struct upte *e = pt_lookup(&r->pt, 0);
	upager__region_put(r);
	upager__pte_lock(e);
	p->frames.frames[e->frame].pg = 5;
	upager__pte_unlock(e);
	/* Enough faults for a periodic walk, on pages other than page 0. */
	for (unsigned i = 0; i < 4096; i++) {
		unsigned char *page = a + (1 + i % 63) * PS;
		CHECK_OK(upager_advise(p, page, PS, UPAGER_ADVICE_DONTNEED));
		page[0] = (unsigned char)i;
	}
	upager_close(p);
	_exit(3);
}

static void expect_abort(void (*fn)(void *), const char *needle)
{
	char *err = NULL;
	int status = run_child(fn, NULL, &err);

	if (!died_of(status, err, SIGABRT) && !(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT))
		FAILF("child did not abort (status %#x): %s", status, err ? err : "");
	if (!strstr(err, "invariant broken") || !strstr(err, needle))
		FAILF("message does not name '%s': %s", needle, err);
	printf("  caught: %s", strstr(err, "upager: invariant"));
	free(err);
}
#endif

int main(void)
{
#ifdef UPAGER_DEBUG
	expect_abort(stale_slot, "stale swap copy");
	expect_abort(wrong_frame, "frame record does not name");
	return 0;
#else
	printf("not a debug build (configure --enable-debug): nothing to check\n");
	return TEST_SKIP;
#endif
}
