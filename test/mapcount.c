// SPDX-License-Identifier: MIT
/*
 * The SIGSEGV backend under vm.max_map_count. Every run of pages with one
 * protection is a mapping, and random access to a budget of 65,536 pages
 * of 4 KiB could need twice the default limit (65,530). Such a pager must
 * work — keeping fewer pages mapped than resident — with the process's
 * mapping count under the limit all along; and a configuration with no
 * room to work must be refused at open with a message saying what to do.
 */
#include "testutil.h"

#include <string.h>
#include <sys/mman.h>

#define PS 4096u

static long map_count(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	long n = 0;
	int c;

	while ((c = getc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

static long max_map_count(void)
{
	FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
	long v = 0;

	if (!f || fscanf(f, "%ld", &v) != 1)
		v = 0;
	if (f)
		fclose(f);
	return v;
}

int main(void)
{
	upager_config_t cfg;
	upager_t *p;
	upager_stats_t st;
	uint32_t *a;
	long limit = max_map_count();
	const char *want = getenv("UPAGER_BACKEND");

	if (want && *want && strcmp(want, "sigsegv")) {
		printf("UPAGER_BACKEND=%s: this test is about the sigsegv backend: skipped\n",
		       want);
		return TEST_SKIP;
	}
	if (limit <= 0 || limit > 1 << 20) {
		printf("vm.max_map_count is %ld: nothing to test against\n", limit);
		return TEST_SKIP;
	}
	upager_config_init(&cfg);
	cfg.backend = "sigsegv";
	cfg.page_size = PS;
	cfg.ram_bytes = (size_t)limit * PS; /* twice as many mappings as allowed */
	CHECK_OK(upager_open(&cfg, &p));
	const char *why;
	upager_backend(p, &why);
	printf("budget %zu pages; backend: %s\n", cfg.ram_bytes / PS, why);
	CHECK(strstr(why, "mapped at once"));

	/* Random first touches of most of the budget: no I/O, all resident,
	 * scattered protections. */
	size_t npages = 2 * (cfg.ram_bytes / PS);
	size_t touches = (size_t)limit * 9 / 10;
	CHECK_OK(upager_map(p, npages * PS, 0, (void **)&a));
	uint64_t s = tu_rng(42);
	long worst = 0;
	uint32_t *order = malloc(touches * sizeof(*order));
	for (size_t i = 0; i < touches; i++) {
		size_t pg = rng_next(&s) % npages;
		order[i] = (uint32_t)pg;
		a[pg * (PS / 4)] = (uint32_t)pg + 1;
		if (i % 4096 == 0) {
			long n = map_count();
			worst = n > worst ? n : worst;
		}
	}
	CHECK_CMP(worst, <, limit);
	for (size_t i = 0; i < touches; i++)
		CHECK_EQ(a[order[i] * (PS / 4)], order[i] + 1);
	CHECK_OK(upager_stats(p, &st));
	printf("mappings at most %ld of %ld; resident %llu, minor faults %llu, evictions %llu\n",
	       worst, limit, (unsigned long long)st.resident_pages,
	       (unsigned long long)st.faults_minor, (unsigned long long)st.evictions);
	CHECK_CMP(st.faults_minor, >, 0); /* shed pages came back */

	/* The process's own mappings grow after open (libraries loaded,
	 * threads started), then a region is made: a snapshot's view, as
	 * upager-run's fork() takes. The room kept for regions at open is
	 * still there (it used to be eaten by the growth, and the snapshot
	 * failed with "no room for another region"). */
	const long grow = 600;
	char *more = mmap(NULL, (size_t)grow * 2 * PS, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1,
			  0);
	CHECK(more != MAP_FAILED);
	for (long i = 0; i < grow / 2; i++)
		mprotect(more + (i * 2 + 1) * PS, PS, PROT_NONE);
	upager_snapshot_t *snap;
	CHECK_OK(upager_snapshot(p, a, &snap));
	for (size_t i = 0; i < touches; i += touches / 97) {
		uint32_t v;
		CHECK_OK(upager_snapshot_read(snap, (uint64_t)order[i] * PS, &v, sizeof(v)));
		CHECK_EQ(v, order[i] + 1);
	}
	a[order[0] * (PS / 4)] = 7; /* the live region still writes */
	CHECK_OK(upager_snapshot_free(snap));
	CHECK_EQ(a[order[0] * (PS / 4)], 7);
	munmap(more, (size_t)grow * 2 * PS);
	free(order);
	CHECK_OK(upager_close(p));

	/* No room to work: eat the limit with mappings of our own first,
	 * leaving enough for the pager's rings and threads but not for the
	 * backend's reservation. */
	long eat = limit - map_count() - 1000;
	char *block = mmap(NULL, (size_t)eat * 2 * PS, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1,
			   0);
	CHECK(block != MAP_FAILED);
	for (long i = 1; i < eat / 2; i++)
		mprotect(block + i * 2 * PS, PS, PROT_NONE); /* two mappings more each */
	printf("mappings in use before opening: %ld of %ld\n", map_count(), limit);
	upager_config_init(&cfg);
	cfg.backend = "sigsegv";
	cfg.ram_bytes = 64u << 20;
	int err = upager_open(&cfg, &p);
	CHECK_ERR(err, UPAGER_EMAPCOUNT);
	printf("refused: %s\n", upager_last_error());
	CHECK(strstr(upager_last_error(), "vm.max_map_count"));
	CHECK(strstr(upager_last_error(), "sysctl vm.max_map_count="));
	CHECK(strstr(upager_last_error(), "uffd backend"));
	munmap(block, (size_t)eat * 2 * PS);
	return 0;
}
