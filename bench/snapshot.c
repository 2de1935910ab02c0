// SPDX-License-Identifier: MIT
/*
 * snapshot: what a copy-on-write snapshot costs in upager, next to what
 * the kernel charges for the same thing through fork() (the way Redis
 * snapshots its data set), measured in the same run, interleaved.
 *
 *   take   upager_snapshot() of a region whose --size bytes are all
 *          resident and dirty, against fork() of a process that holds
 *          --size bytes of dirty anonymous memory (4 KiB pages: THP off,
 *          as Redis advises and as upager's pages are). The fork is timed
 *          in the parent until fork() returns there.
 *   cow    the first write to a page shared with a snapshot (a
 *          copy-on-write fault), per page, against a plain write-protect
 *          fault on the same pages (the pages of a freed snapshot stay
 *          write-protected, with nothing to copy) plus one 4 KiB memcpy
 *          measured in the same repetition. The goal is cow <= 2 x
 *          (wp + copy).
 *   kernel the kernel's own copy-on-write fault (the parent writes after
 *          fork() while the child lives) and its write-protect fault
 *          (the same parent writes after the child has exited: the page
 *          is reused, not copied), as a second anchor for the ratio.
 *
 * The kernel side runs in a helper process forked before the pager is
 * opened, so that the fork copies the anchor's memory and nothing of the
 * benchmark's (upager's regions are MADV_DONTFORK, but its page tables
 * and frame records are not). The helper and its children die with the
 * benchmark (PR_SET_PDEATHSIG, and a pipe that closes).
 *
 * Per repetition and configuration, in this order: upager take, kernel
 * fork + cow + wp, upager wp + copy + cow. Both sides make their memory
 * writable and dirty again before each repetition (upager_touch() for
 * writing; MADV_POPULATE_WRITE), untimed: a snapshot, like a fork, leaves
 * the pages write-protected, and both cost less over pages that already
 * are. Figures are medians over --reps. upager's counters confirm that
 * every timed write was the fault intended (faults_wp, faults_cow), and
 * that nothing was evicted.
 *
 *   snapshot [--size 1G] [--cow-pages 8192] [--reps 5] [--quick]
 *            [--backend uffd|sigsegv|all] [--mode fast|transparent|both]
 *            [--csv FILE] [--verbose]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "upager.h"
#include "bench.h"

#define PAGE 4096ull
#define MAX_REPS 64
#define MAX_CONFIGS 4
/* Every stored word differs from zero, so that no page can be dropped
 * as a zero page behind the benchmark's back. */
#define TAG 0x5a5a000000000000ull

static uint64_t size_bytes = 1ull << 30;
static uint64_t npages;
static uint64_t cow_pages = 8192;
static unsigned reps = 5;
static bool verbose;

static pid_t helper_pid = -1;
static int helper_cmd = -1, helper_res = -1;

static void helper_stop(void)
{
	if (helper_pid <= 0)
		return;
	/* Its fork child, if any, is waiting on a pipe the helper holds: it
	 * sees end of file when the helper dies, and PR_SET_PDEATHSIG too. */
	kill(helper_pid, SIGKILL);
	while (waitpid(helper_pid, NULL, 0) < 0 && errno == EINTR)
		;
	helper_pid = -1;
	close(helper_cmd);
	close(helper_res);
}

static void die(const char *what, int err)
{
	fprintf(stderr, "snapshot: %s: %s", what,
		err <= -10000 ? upager_strerror(err) : strerror(-err));
	if (err <= -10000 || *upager_last_error())
		fprintf(stderr, " (%s)", upager_last_error());
	fprintf(stderr, "\n");
	helper_stop();
	exit(1);
}

static void fail(const char *msg)
{
	fprintf(stderr, "snapshot: %s\n", msg);
	helper_stop();
	exit(1);
}

static int write_full(int fd, const void *buf, size_t len)
{
	const char *b = buf;

	while (len) {
		ssize_t n = write(fd, b, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EPIPE;
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

/* 0, -EPIPE at end of file, or -errno. */
static int read_full(int fd, void *buf, size_t len)
{
	char *b = buf;

	while (len) {
		ssize_t n = read(fd, b, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EPIPE;
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

static long minor_faults(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt;
}

/* ns per page to store one word into each of n pages, from page first. */
static double write_pages(char *a, uint64_t first, uint64_t n, uint64_t val)
{
	uint64_t t0 = bench_now_ns();

	for (uint64_t i = first; i < first + n; i++)
		*(volatile uint64_t *)(a + i * PAGE) = val ^ i;
	return (double)(bench_now_ns() - t0) / (double)n;
}

/* ---- the kernel's side: a helper process holding --size of memory ---- */

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/*
 * Makes every page of the anchor present, writable and dirty again. A
 * store per page would take a write fault per page still write-protected
 * from the last fork (seconds per GiB in this guest, where entering the
 * kernel is slow); MADV_POPULATE_WRITE (Linux 5.14) takes the same write
 * faults inside one system call. Writable matters: fork() of writable
 * pages costs over twice as much as of pages already write-protected,
 * because it write-protects each one.
 */
static void redirty(char *mem, uint64_t first, uint64_t n, uint64_t val)
{
	if (madvise(mem + first * PAGE, n * PAGE, MADV_POPULATE_WRITE) < 0)
		write_pages(mem, first, n, val); /* an older kernel: fault by fault */
}

enum { CMD_FORK = 1, CMD_QUIT = 2 };

struct kres {
	int err;         /* 0 or -errno */
	char what[32];   /* the call that failed */
	double fork_ns;  /* fork() until it returned in the parent */
	double cow_ns;   /* per page: write while the child lives */
	double wp_ns;    /* per page: write after the child exited */
	long cow_faults; /* minor faults the kernel counted for them */
	long wp_faults;
};

static void helper_reply(const struct kres *r)
{
	if (write_full(helper_res, r, sizeof(*r)) < 0)
		_exit(1);
}

static void helper_fail(struct kres *r, const char *what, int err)
{
	r->err = err;
	snprintf(r->what, sizeof(r->what), "%s", what);
	helper_reply(r);
}

/*
 * One fork, as Redis does it: the child lives on (here it only waits)
 * while the parent keeps writing, so the parent's first writes are
 * copy-on-write faults. Then the child exits, and the parent's next
 * writes to pages still write-protected are the kernel's plain
 * write-protect faults (the page is reused). Every page ends writable and
 * dirty again, ready for the next fork.
 */
static int helper_fork(char *mem, struct kres *r)
{
	int hold[2];
	uint64_t t0, t1;
	long f0;
	pid_t pid;
	int status;

	memset(r, 0, sizeof(*r));
	snprintf(r->what, sizeof(r->what), "pipe2");
	if (pipe2(hold, O_CLOEXEC) < 0)
		return -errno;
	t0 = bench_now_ns();
	pid = fork();
	t1 = bench_now_ns();
	if (pid == 0) {
		char c;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(hold[1]);
		close(helper_cmd);
		close(helper_res);
		while (read(hold[0], &c, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	close(hold[0]);
	if (pid < 0) {
		int err = -errno;
		close(hold[1]);
		snprintf(r->what, sizeof(r->what), "fork");
		return err;
	}
	r->fork_ns = (double)(t1 - t0);

	f0 = minor_faults();
	r->cow_ns = write_pages(mem, 0, cow_pages, TAG | 1);
	r->cow_faults = minor_faults() - f0;

	close(hold[1]);
	snprintf(r->what, sizeof(r->what), "waitpid");
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		return -ECHILD;

	f0 = minor_faults();
	r->wp_ns = write_pages(mem, cow_pages, cow_pages, TAG | 2);
	r->wp_faults = minor_faults() - f0;
	redirty(mem, 2 * cow_pages, npages - 2 * cow_pages, TAG | 3);
	r->what[0] = '\0';
	return 0;
}

static void helper_main(pid_t parent)
{
	struct kres r = { 0 };
	char *mem;
	int cmd;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
	mem = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		helper_fail(&r, "mmap", -errno);
		_exit(1);
	}
	if (madvise(mem, npages * PAGE, MADV_NOHUGEPAGE) < 0) {
		helper_fail(&r, "madvise(MADV_NOHUGEPAGE)", -errno);
		_exit(1);
	}
	redirty(mem, 0, npages, TAG);
	write_pages(mem, 0, npages, TAG); /* real contents, and no fault left */
	helper_reply(&r);                 /* ready */
	while (read_full(helper_cmd, &cmd, sizeof(cmd)) == 0 && cmd == CMD_FORK) {
		r.err = helper_fork(mem, &r);
		helper_reply(&r);
	}
	_exit(0);
}

/* Forks the helper before anything else exists, and waits until its
 * memory is all written. */
static void helper_start(void)
{
	int cmd[2], res[2];
	pid_t parent = getpid();
	struct kres r;
	int err;

	if (pipe2(cmd, O_CLOEXEC) < 0 || pipe2(res, O_CLOEXEC) < 0)
		die("pipe2", -errno);
	helper_pid = fork();
	if (helper_pid < 0)
		die("fork (helper)", -errno);
	if (helper_pid == 0) {
		close(cmd[1]);
		close(res[0]);
		helper_cmd = cmd[0];
		helper_res = res[1];
		helper_main(parent);
	}
	close(cmd[0]);
	close(res[1]);
	helper_cmd = cmd[1];
	helper_res = res[0];
	err = read_full(helper_res, &r, sizeof(r));
	if (err < 0)
		die("helper start", err);
	if (r.err < 0)
		die(r.what, r.err);
}

static void kernel_fork(struct kres *r)
{
	int cmd = CMD_FORK, err;

	err = write_full(helper_cmd, &cmd, sizeof(cmd));
	if (err == 0)
		err = read_full(helper_res, r, sizeof(*r));
	if (err < 0)
		die("helper (it died?)", err);
	if (r->err < 0) {
		char what[64];
		snprintf(what, sizeof(what), "helper: %s", r->what);
		die(what, r->err);
	}
}

/* ---- upager's side ---- */

struct result {
	char backend[16], mode[16];
	char why[400];
	double snap_ms, free_ms, fork_ms;
	double wp_ns, copy_ns, cow_ns, kcow_ns, kwp_ns;
	uint64_t wp_counted, cow_counted, stray_cow, expected;
	uint64_t copied, shared, evictions;
	long kcow_counted, kwp_counted;
};

static void stats(upager_t *p, upager_stats_t *st)
{
	int err = upager_stats(p, st);

	if (err < 0)
		die("upager_stats", err);
}

static char *map_region(upager_t *p, uint64_t pages)
{
	void *a;
	int err = upager_map(p, pages * PAGE, 0, &a);

	if (err < 0)
		die("upager_map", err);
	return a;
}

static void unmap_region(upager_t *p, char *a)
{
	int err = upager_unmap(p, a);

	if (err < 0)
		die("upager_unmap", err);
}

static upager_snapshot_t *take(upager_t *p, char *a)
{
	upager_snapshot_t *s;
	int err = upager_snapshot(p, a, &s);

	if (err < 0)
		die("upager_snapshot", err);
	return s;
}

static void drop(upager_snapshot_t *s)
{
	int err = upager_snapshot_free(s);

	if (err < 0)
		die("upager_snapshot_free", err);
}

/* The snapshot must still hold what page pg held when it was taken. */
static void check_snapshot(upager_snapshot_t *s, uint64_t pg, uint64_t want)
{
	uint64_t got;
	int err = upager_snapshot_read(s, pg * PAGE, &got, sizeof(got));
	char msg[160];

	if (err < 0)
		die("upager_snapshot_read", err);
	if (got != want) {
		snprintf(msg, sizeof(msg), "snapshot page %llu holds %#llx, not %#llx",
			 (unsigned long long)pg, (unsigned long long)got, (unsigned long long)want);
		fail(msg);
	}
}

static char *anon(uint64_t pages)
{
	char *a = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		       0);

	if (a == MAP_FAILED)
		die("mmap", -errno);
	if (madvise(a, pages * PAGE, MADV_NOHUGEPAGE) < 0)
		die("madvise(MADV_NOHUGEPAGE)", -errno);
	memset(a, 0x5a, pages * PAGE);
	return a;
}

/* ns per page to copy cow_pages pages between two buffers too large for
 * the caches, as a copy-on-write fault copies a frame it has not touched
 * lately. */
static double copy_cost(char *dst, const char *src)
{
	uint64_t t0 = bench_now_ns();

	for (uint64_t i = 0; i < cow_pages; i++)
		memcpy(dst + i * PAGE, src + i * PAGE, PAGE);
	__asm__ volatile("" : : "r"(dst) : "memory");
	return (double)(bench_now_ns() - t0) / (double)cow_pages;
}

static struct result results[MAX_CONFIGS];
static int nresults;

/* Returns false when the configuration duplicates one already measured
 * (the sigsegv backend always runs in fast mode) or, for "all", when the
 * backend cannot run here. */
static bool run_config(const char *backend, upager_mode_t mode, bool required, char *src, char *dst)
{
	double snap[MAX_REPS], frees[MAX_REPS], forks[MAX_REPS];
	double wp[MAX_REPS], copy[MAX_REPS], cow[MAX_REPS], kcow[MAX_REPS], kwp[MAX_REPS];
	struct result *res = &results[nresults];
	upager_config_t cfg;
	upager_stats_t st, s0, s1;
	upager_t *p;
	int err;

	memset(res, 0, sizeof(*res));
	upager_config_init(&cfg);
	cfg.backend = backend;
	cfg.mode = mode;
	cfg.page_size = PAGE; /* the kernel's anchor pages are 4 KiB */
	/* Everything resident: the region, the small region, the copies the
	 * snapshot takes, and room above the evictor's low-water mark. */
	cfg.ram_bytes = size_bytes + 2 * cow_pages * PAGE + (64ull << 20);
	err = upager_open(&cfg, &p);
	if (err == UPAGER_EBACKEND && !required) {
		printf("# backend %s: unusable here, skipped (%s)\n", backend, upager_last_error());
		return false;
	}
	if (err < 0)
		die("upager_open", err);
	stats(p, &st);
	for (int i = 0; i < nresults; i++)
		if (!strcmp(results[i].backend, st.backend) && !strcmp(results[i].mode, st.mode)) {
			printf("# backend %s, mode %s asked: runs as %s, already measured\n",
			       backend, mode == UPAGER_MODE_FAST ? "fast" : "transparent", st.mode);
			err = upager_close(p);
			if (err < 0)
				die("upager_close", err);
			return false;
		}
	snprintf(res->backend, sizeof(res->backend), "%s", st.backend);
	snprintf(res->mode, sizeof(res->mode), "%s", st.mode);
	snprintf(res->why, sizeof(res->why), "%s", st.backend_why);
	fprintf(stderr, "snapshot: %s %s: ", res->backend, res->mode);
	uint64_t evictions0 = st.evictions;

	/* The region of --size, every page written: resident and dirty. */
	double ph = bench_now();
	char *big = map_region(p, npages);
	write_pages(big, 0, npages, TAG);
	if (verbose)
		fprintf(stderr, "\n  region written in %.2f s", bench_now() - ph);

	for (unsigned rep = 0; rep < reps; rep++) {
		uint64_t val = TAG | (uint64_t)(rep + 1) << 32;
		upager_snapshot_t *s;
		struct kres k;
		uint64_t t0;
		char *a;

		/* upager: take a snapshot of --size, all resident and dirty.
		 * The last repetition's snapshot left every page clean and
		 * write-protected: upager_touch() for writing makes them
		 * writable and dirty again in one call, where stores would
		 * take a fault each. */
		double ph0 = bench_now();
		if (rep > 0) {
			stats(p, &s0);
			err = upager_touch(p, big, npages * PAGE, 1);
			if (err < 0)
				die("upager_touch", err);
			stats(p, &s1);
			if (s1.faults_wp + s1.faults_minor - s0.faults_wp - s0.faults_minor <
			    npages)
				fail("upager_touch did not make every page writable again");
		}
		double ph1 = bench_now();
		stats(p, &s0);
		if (s0.resident_pages < npages)
			fail("the region is not all resident: budget too small?");
		t0 = bench_now_ns();
		s = take(p, big);
		snap[rep] = (double)(bench_now_ns() - t0) / 1e6;
		stats(p, &s1);
		if (s1.snapshots != s0.snapshots + 1)
			fail("the snapshots gauge did not count the snapshot");
		t0 = bench_now_ns();
		drop(s);
		frees[rep] = (double)(bench_now_ns() - t0) / 1e6;

		/* kernel: fork of the same amount of dirty memory, then its
		 * copy-on-write and write-protect faults */
		double ph2 = bench_now();
		kernel_fork(&k);
		double ph3 = bench_now();
		forks[rep] = k.fork_ns / 1e6;
		kcow[rep] = k.cow_ns;
		kwp[rep] = k.wp_ns;
		res->kcow_counted += k.cow_faults;
		res->kwp_counted += k.wp_faults;

		/* upager: write-protect fault, page copy, copy-on-write fault,
		 * on a small region that stays mapped whatever the backend's
		 * mapping cap */
		a = map_region(p, cow_pages);
		write_pages(a, 0, cow_pages, val);
		copy[rep] = copy_cost(dst, src);
		/* Taken and freed, the snapshot leaves every page clean and
		 * write-protected, with nothing left to copy. */
		drop(take(p, a));
		stats(p, &s0);
		wp[rep] = write_pages(a, 0, cow_pages, val + 1);
		stats(p, &s1);
		res->wp_counted += s1.faults_wp - s0.faults_wp;
		res->stray_cow += s1.faults_cow - s0.faults_cow;

		s = take(p, a);
		stats(p, &s0);
		cow[rep] = write_pages(a, 0, cow_pages, val + 2);
		stats(p, &s1);
		res->cow_counted += s1.faults_cow - s0.faults_cow;
		res->copied += s1.pages_copied - s0.pages_copied;
		res->shared += s1.pages_shared - s0.pages_shared;
		check_snapshot(s, 0, (val + 1) ^ 0);
		check_snapshot(s, cow_pages - 1, (val + 1) ^ (cow_pages - 1));
		if (*(volatile uint64_t *)(a + PAGE) != ((val + 2) ^ 1))
			fail("the region lost a write made after the snapshot");
		drop(s);
		unmap_region(p, a);
		res->expected += cow_pages;
		if (verbose)
			fprintf(stderr,
				"\n  rep %u: re-dirtied in %.2f s, snapshot %.2f ms, "
				"fork %.2f ms; kernel side %.2f s, fault tests %.2f s",
				rep + 1, ph1 - ph0, snap[rep], forks[rep], ph3 - ph2,
				bench_now() - ph3);
		else
			fprintf(stderr, "%u ", rep + 1);
	}
	fprintf(stderr, "\n");
	unmap_region(p, big);

	stats(p, &st);
	if (st.snapshots != 0)
		fail("the snapshots gauge is not 0 after every snapshot was freed");
	res->evictions = st.evictions - evictions0;
	err = upager_close(p);
	if (err < 0)
		die("upager_close", err);

	res->snap_ms = bench_median(snap, reps);
	res->free_ms = bench_median(frees, reps);
	res->fork_ms = bench_median(forks, reps);
	res->wp_ns = bench_median(wp, reps);
	res->copy_ns = bench_median(copy, reps);
	res->cow_ns = bench_median(cow, reps);
	res->kcow_ns = bench_median(kcow, reps);
	res->kwp_ns = bench_median(kwp, reps);
	printf("bench=snapshot backend=%s mode=%s size_mb=%llu reps=%u cow_pages=%llu "
	       "snapshot_ms=%.3f snapshot_free_ms=%.3f fork_ms=%.3f fork_over_snapshot=%.2f "
	       "wp_ns=%.0f copy_ns=%.0f cow_ns=%.0f cow_over_wp_copy=%.2f "
	       "kernel_cow_ns=%.0f kernel_wp_ns=%.0f kernel_cow_over_wp_copy=%.2f "
	       "up_wp_counted=%llu up_cow_counted=%llu up_stray_cow=%llu expected=%llu "
	       "pages_copied=%llu pages_shared=%llu evictions=%llu "
	       "kernel_cow_counted=%ld kernel_wp_counted=%ld\n",
	       res->backend, res->mode, (unsigned long long)(size_bytes >> 20), reps,
	       (unsigned long long)cow_pages, res->snap_ms, res->free_ms, res->fork_ms,
	       res->fork_ms / res->snap_ms, res->wp_ns, res->copy_ns, res->cow_ns,
	       res->cow_ns / (res->wp_ns + res->copy_ns), res->kcow_ns, res->kwp_ns,
	       res->kcow_ns / (res->kwp_ns + res->copy_ns), (unsigned long long)res->wp_counted,
	       (unsigned long long)res->cow_counted, (unsigned long long)res->stray_cow,
	       (unsigned long long)res->expected, (unsigned long long)res->copied,
	       (unsigned long long)res->shared, (unsigned long long)res->evictions,
	       res->kcow_counted, res->kwp_counted);
	fflush(stdout);
	nresults++;
	return true;
}

static void print_table(void)
{
	printf("\nsnapshot of %llu MiB (all resident, dirty) against fork() of a process with "
	       "the same; faults per 4 KiB page over %llu pages; medians of %u\n",
	       (unsigned long long)(size_bytes >> 20), (unsigned long long)cow_pages, reps);
	printf("%-8s %-12s %11s %9s %9s %9s | %7s %7s %7s %13s | %9s %9s %13s\n", "backend", "mode",
	       "snapshot ms", "free ms", "fork ms", "fork/snap", "wp us", "copy us", "cow us",
	       "cow/(wp+copy)", "k cow us", "k wp us", "k cow/(wp+cp)");
	for (int i = 0; i < nresults; i++) {
		const struct result *r = &results[i];
		printf("%-8s %-12s %11.2f %9.2f %9.2f %9.2f | %7.2f %7.2f %7.2f %13.2f | %9.2f %9.2f "
		       "%13.2f\n",
		       r->backend, r->mode, r->snap_ms, r->free_ms, r->fork_ms,
		       r->fork_ms / r->snap_ms, r->wp_ns / 1e3, r->copy_ns / 1e3, r->cow_ns / 1e3,
		       r->cow_ns / (r->wp_ns + r->copy_ns), r->kcow_ns / 1e3, r->kwp_ns / 1e3,
		       r->kcow_ns / (r->kwp_ns + r->copy_ns));
	}
	printf("fork/snap > 1: the snapshot is faster (goal). cow/(wp+copy) <= 2 (goal). "
	       "k: the kernel's copy-on-write after fork() and its write-protect fault.\n");
	for (int i = 0; i < nresults; i++) {
		const struct result *r = &results[i];
		bool exact = r->wp_counted == r->expected && r->cow_counted == r->expected &&
			     !r->stray_cow;
		printf("%s %s: counted %llu wp and %llu cow faults of %llu timed writes%s; "
		       "%llu pages copied, %llu shared, %llu evictions; kernel counted %ld cow and "
		       "%ld wp faults; backend: %s\n",
		       r->backend, r->mode, (unsigned long long)r->wp_counted,
		       (unsigned long long)r->cow_counted, (unsigned long long)r->expected,
		       exact ? "" : " (MISMATCH)", (unsigned long long)r->copied,
		       (unsigned long long)r->shared, (unsigned long long)r->evictions,
		       r->kcow_counted, r->kwp_counted, r->why);
	}
}

static void write_csv(const char *path)
{
	FILE *f = fopen(path, "w");

	if (!f)
		die(path, -errno);
	fprintf(f, "backend,mode,size_mb,reps,cow_pages,snapshot_ms,snapshot_free_ms,fork_ms,"
		   "fork_over_snapshot,wp_ns,copy_ns,cow_ns,cow_over_wp_copy,kernel_cow_ns,"
		   "kernel_wp_ns,kernel_cow_over_wp_copy,up_wp_counted,up_cow_counted,"
		   "up_stray_cow,expected,pages_copied,pages_shared,evictions\n");
	for (int i = 0; i < nresults; i++) {
		const struct result *r = &results[i];
		fprintf(f,
			"%s,%s,%llu,%u,%llu,%.3f,%.3f,%.3f,%.3f,%.0f,%.0f,%.0f,%.3f,%.0f,%.0f,"
			"%.3f,%llu,%llu,%llu,%llu,%llu,%llu,%llu\n",
			r->backend, r->mode, (unsigned long long)(size_bytes >> 20), reps,
			(unsigned long long)cow_pages, r->snap_ms, r->free_ms, r->fork_ms,
			r->fork_ms / r->snap_ms, r->wp_ns, r->copy_ns, r->cow_ns,
			r->cow_ns / (r->wp_ns + r->copy_ns), r->kcow_ns, r->kwp_ns,
			r->kcow_ns / (r->kwp_ns + r->copy_ns), (unsigned long long)r->wp_counted,
			(unsigned long long)r->cow_counted, (unsigned long long)r->stray_cow,
			(unsigned long long)r->expected, (unsigned long long)r->copied,
			(unsigned long long)r->shared, (unsigned long long)r->evictions);
	}
	if (fclose(f) != 0)
		die(path, -errno);
}

static void usage(FILE *out)
{
	fprintf(out, "usage: snapshot [--size 1G] [--cow-pages 8192] [--reps 5] [--quick]\n"
		     "                [--backend uffd|sigsegv|all] [--mode fast|transparent|both]\n"
		     "                [--csv FILE] [--verbose]\n"
		     "  --quick: --size 256M --cow-pages 4096 --reps 3 (options after it win)\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "cow-pages", required_argument, NULL, 'c' },
		{ "reps", required_argument, NULL, 'r' },
		{ "quick", no_argument, NULL, 'q' },
		{ "backend", required_argument, NULL, 'b' },
		{ "mode", required_argument, NULL, 'm' },
		{ "csv", required_argument, NULL, 'o' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *backends = "all", *modes = "both", *csv = NULL;
	int c;

	while ((c = getopt_long(argc, argv, "hv", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			size_bytes = bench_size_arg("--size", optarg);
			break;
		case 'c':
			cow_pages = bench_size_arg("--cow-pages", optarg);
			break;
		case 'r':
			reps = (unsigned)atoi(optarg);
			break;
		case 'q':
			size_bytes = 256ull << 20;
			cow_pages = 4096;
			reps = 3;
			break;
		case 'b':
			backends = optarg;
			break;
		case 'm':
			modes = optarg;
			break;
		case 'o':
			csv = optarg;
			break;
		case 'v':
			verbose = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	npages = size_bytes / PAGE;
	if (strcmp(backends, "uffd") && strcmp(backends, "sigsegv") && strcmp(backends, "all")) {
		fprintf(stderr, "snapshot: --backend is uffd, sigsegv or all\n");
		return 2;
	}
	if (strcmp(modes, "fast") && strcmp(modes, "transparent") && strcmp(modes, "both")) {
		fprintf(stderr, "snapshot: --mode is fast, transparent or both\n");
		return 2;
	}
	if (reps < 1 || reps > MAX_REPS || cow_pages < 16 || 2 * cow_pages > npages) {
		fprintf(stderr,
			"snapshot: --reps 1..%d, --cow-pages at least 16 and at most half "
			"of --size in pages\n",
			MAX_REPS);
		return 2;
	}
	/* A dead helper must show as an error from write(), not kill us. */
	signal(SIGPIPE, SIG_IGN);

	fprintf(stderr, "snapshot: writing %llu MiB in the kernel's anchor process\n",
		(unsigned long long)(size_bytes >> 20));
	helper_start();
	char *src = anon(cow_pages), *dst = anon(cow_pages);

	static const char *const backend_list[] = { "uffd", "sigsegv" };
	static const upager_mode_t mode_list[] = { UPAGER_MODE_FAST, UPAGER_MODE_TRANSPARENT };
	for (int b = 0; b < 2; b++) {
		if (strcmp(backends, "all") && strcmp(backends, backend_list[b]))
			continue;
		for (int m = 0; m < 2; m++) {
			if (strcmp(modes, "both") &&
			    strcmp(modes,
				   mode_list[m] == UPAGER_MODE_FAST ? "fast" : "transparent"))
				continue;
			run_config(backend_list[b], mode_list[m], strcmp(backends, "all") != 0, src,
				   dst);
		}
	}
	helper_stop();
	munmap(src, cow_pages * PAGE);
	munmap(dst, cow_pages * PAGE);
	print_table();
	if (csv)
		write_csv(csv);
	return 0;
}
