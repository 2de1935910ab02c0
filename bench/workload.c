// SPDX-License-Identifier: MIT
/*
 * workload: one access pattern over one kind of memory, timed, with the
 * kernel's and the pager's view of what it cost. It is the program that
 * bench/run drives; every line it prints can be reproduced by running it
 * alone with the same arguments (bench/run -v prints them).
 *
 * Systems (--system):
 *   upager  an upager region; the budget is --ram, enforced by upager
 *           (--mode fast|transparent picks the fault mode)
 *   kswap   anonymous memory (MAP_PRIVATE|MAP_ANONYMOUS) paged by the
 *           kernel to its swap; the budget is the memory cgroup the
 *           program runs in (bench/run sets one up, with a swap file)
 *   kmmap   a MAP_SHARED mapping of the file --file; the budget is the
 *           memory cgroup, the backing store is the file itself
 *   upfile  an upager file region (upager_map_file, UPAGER_MAP_SHARED) of
 *           the file --file: what kmmap does, paged by upager within --ram
 *
 * Patterns (--pattern, a comma-separated list run in order over the same
 * memory, one output line each):
 *   seq-write  write every 8-byte word, front to back
 *   seq-read   read every word front to back (and check it when the
 *              previous pass was a seq-write of this process)
 *   rand-rmw   --ops atomic 8-byte increments at uniformly random words
 *   zipf-rmw   --zipf-ops (default --ops) increments on pages drawn from a Zipf(--alpha)
 *              distribution (the ranks scattered over the region by a
 *              fixed permutation), at a uniform word in the page
 *   rand-read, zipf-read  the same draws, 8-byte reads instead of increments
 *   rand-update  rand-rmw, then the whole region synced to its file inside
 *              the timed part (kmmap: msync(MS_SYNC); upfile: upager_sync;
 *              nothing for the anonymous systems)
 * With --threads N, a sequential pass gives each thread a contiguous
 * 1/N of the region and a random pass gives each thread --ops/N
 * operations. A random pass first runs --warmup-ops untimed operations
 * (to reach its steady state: a resident set of its own pages, dirty
 * victims to write back). A random or seq-read pass stops after
 * --seconds, if given (a seq-read pass then reads the front part of each
 * thread's share).
 *
 * Before the first pass, if it reads data (everything but seq-write), an
 * untimed setup pass writes the whole region (upager, kswap); for kmmap
 * and upfile, the file is written only if it is shorter than the region,
 * and its page cache is dropped (fdatasync + POSIX_FADV_DONTNEED).
 * --prepare only does that to --file, and exits. A kmmap seq-write
 * that comes first truncates the file, so it writes into a fresh, sparse
 * file. Between passes nothing is reset: every system carries its
 * resident set from one pass to the next, the same way.
 *
 * Output: one line per pass, "key=value ..." (see bench/README.md).
 * ops is pages (4 KiB) for a sequential pass, increments for a random one;
 * mb_per_s is bytes touched per second (8 bytes an increment).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "upager.h"
#include "bench.h"

#define PAGE 4096ull
#define WORDS_PER_PAGE (PAGE / 8)
#define GEN 0x5a5a5a5a00000000ull /* seq-write stores word i ^ GEN: never a zero page */

enum sys { SYS_UPAGER, SYS_KSWAP, SYS_KMMAP, SYS_UPFILE, NSYS };
static const char *const sys_names[] = { "upager", "kswap", "kmmap", "upfile" };

enum pat {
	PAT_SEQ_WRITE,
	PAT_SEQ_READ,
	PAT_RAND_RMW,
	PAT_ZIPF_RMW,
	PAT_RAND_READ,
	PAT_ZIPF_READ,
	PAT_RAND_UPDATE,
	NPAT
};
static const char *const pat_names[] = { "seq-write", "seq-read",  "rand-rmw",   "zipf-rmw",
					 "rand-read", "zipf-read", "rand-update" };

static bool pat_random(enum pat p)
{
	return p != PAT_SEQ_WRITE && p != PAT_SEQ_READ;
}

static bool pat_skewed(enum pat p)
{
	return p == PAT_ZIPF_RMW || p == PAT_ZIPF_READ;
}

static bool pat_reads_only(enum pat p)
{
	return p == PAT_SEQ_READ || p == PAT_RAND_READ || p == PAT_ZIPF_READ;
}

#define MAX_PASSES 16
#define MAX_THREADS 64

static struct {
	enum sys sys;
	int mode; /* upager_mode_t, or -1 */
	unsigned threads;
	uint64_t size, ram, ops, zipf_ops; /* zipf_ops: 0 = ops */
	uint64_t warmup; /* random passes: untimed operations before the timed ones */
	double seconds, alpha;
	const char *file, *swap;
	uint64_t seed;
	bool verbose, prepare_only, advise;
	enum pat passes[MAX_PASSES];
	unsigned npasses;
} o = {
	.sys = SYS_UPAGER,
	.mode = -1, /* the library's default (UPAGER_MODE or transparent) */
	.threads = 1,
	.size = 1ull << 30,
	.ram = 256ull << 20,
	.ops = 200000,
	.alpha = 0.99,
	.seed = 1,
};

static uint64_t *mem;
static uint64_t nwords, npages;
static upager_t *pager;
static int file_fd = -1;
static bool data_known; /* every word holds i ^ GEN */
static double deadline; /* random and seq-read passes stop here (0: no limit) */

/* ---- Zipf sampling: rejection-inversion (Hoermann and Derflinger, 1996),
 * as in Apache Commons RNG: O(1) memory and a few logs per draw, so it
 * works over millions of pages without a table. Draws k in [1, n] with
 * P(k) proportional to k^-s. ---- */

struct zipf {
	double n, s, h_x1, h_n, thr;
};

static double helper1(double x) /* log1p(x)/x */
{
	return fabs(x) > 1e-8 ? log1p(x) / x : 1 - x * (0.5 - x * (1.0 / 3 - 0.25 * x));
}

static double helper2(double x) /* expm1(x)/x */
{
	return fabs(x) > 1e-8 ? expm1(x) / x : 1 + x * 0.5 * (1 + x * (1.0 / 3) * (1 + 0.25 * x));
}

static double zipf_h(const struct zipf *z, double x)
{
	return exp(-z->s * log(x));
}

static double zipf_H(const struct zipf *z, double x)
{
	double lx = log(x);

	return helper2((1 - z->s) * lx) * lx;
}

static double zipf_Hinv(const struct zipf *z, double x)
{
	double t = x * (1 - z->s);

	if (t < -1)
		t = -1;
	return exp(helper1(t) * x);
}

static void zipf_init(struct zipf *z, uint64_t n, double s)
{
	z->n = (double)n;
	z->s = s;
	z->h_x1 = zipf_H(z, 1.5) - 1;
	z->h_n = zipf_H(z, z->n + 0.5);
	z->thr = 2 - zipf_Hinv(z, zipf_H(z, 2.5) - zipf_h(z, 2));
}

static uint64_t zipf_draw(const struct zipf *z, uint64_t *rng)
{
	for (;;) {
		double u = z->h_n + bench_rand_unit(rng) * (z->h_x1 - z->h_n);
		double x = zipf_Hinv(z, u);
		double k = floor(x + 0.5);

		if (k < 1)
			k = 1;
		else if (k > z->n)
			k = z->n;
		if (k - x <= z->thr || u >= zipf_H(z, k + 0.5) - zipf_h(z, k))
			return (uint64_t)k;
	}
}

static struct zipf zipf;
static uint64_t zipf_mult; /* rank -> page: (rank * mult) mod npages, a bijection */

/* The pattern's true working set, in pages: the pages it draws from
 * (sequential and uniform passes: all of them; Zipf: the most popular
 * pages that take ZIPF_WS_MASS of the accesses, where a budget stops
 * paying off). */
#define ZIPF_WS_MASS 0.9
static uint64_t zipf_ws_pages;

static uint64_t zipf_mass_pages(uint64_t n, double s, double mass)
{
	double total = 0, sum = 0;

	for (uint64_t k = 1; k <= n; k++)
		total += pow((double)k, -s);
	for (uint64_t k = 1; k <= n; k++) {
		sum += pow((double)k, -s);
		if (sum >= mass * total)
			return k;
	}
	return n;
}

static uint64_t gcd(uint64_t a, uint64_t b)
{
	while (b) {
		uint64_t t = a % b;
		a = b;
		b = t;
	}
	return a;
}

/* ---- the passes ---- */

struct worker {
	pthread_t tid;
	unsigned id;
	enum pat pat;
	uint64_t lo, hi; /* words, sequential passes */
	uint64_t ops;    /* random passes */
	uint64_t warmup; /* random passes: untimed operations first */
	uint64_t rng;
	uint64_t done, errors, sum;
	pthread_barrier_t *warm, *go;
};

static void seq_write(struct worker *w)
{
	uint64_t *m = mem;

	for (uint64_t i = w->lo; i < w->hi; i++)
		m[i] = i ^ GEN;
	w->done = (w->hi - w->lo) / WORDS_PER_PAGE;
}

/* Checked every 64 pages against the deadline. */
#define SEQ_STEP (64 * WORDS_PER_PAGE)

static void seq_read(struct worker *w)
{
	const uint64_t *m = mem;
	uint64_t bad = 0, sum = 0, i;

	for (i = w->lo; i < w->hi;) {
		uint64_t end = w->hi - i < SEQ_STEP ? w->hi : i + SEQ_STEP;
		if (data_known) {
			for (; i < end; i++)
				bad += m[i] != (i ^ GEN);
		} else {
			for (; i < end; i++)
				sum += m[i];
		}
		if (deadline > 0 && bench_now() >= deadline)
			break;
	}
	w->errors = bad;
	w->sum = sum;
	w->done = (i - w->lo) / WORDS_PER_PAGE;
}

static uint64_t random_ops(struct worker *w, bool skewed, bool write, uint64_t ops, bool timed)
{
	uint64_t rng = w->rng;
	uint64_t done = 0, sum = 0;

	while (done < ops) {
		uint64_t chunk = ops - done < 1024 ? ops - done : 1024;
		for (uint64_t k = 0; k < chunk; k++) {
			uint64_t i;
			if (skewed) {
				uint64_t rank = zipf_draw(&zipf, &rng) - 1;
				uint64_t pg = (uint64_t)(((unsigned __int128)rank * zipf_mult) %
							 npages);
				i = pg * WORDS_PER_PAGE + bench_rand_below(&rng, WORDS_PER_PAGE);
			} else {
				i = bench_rand_below(&rng, nwords);
			}
			/* One locked add: a single write fault on a missing
			 * page, as "x[i] += 1" compiles to on x86. */
			if (write)
				__atomic_fetch_add(&mem[i], 1, __ATOMIC_RELAXED);
			else
				sum += ((volatile uint64_t *)mem)[i];
		}
		done += chunk;
		if (timed && deadline > 0 && bench_now() >= deadline)
			break;
	}
	w->rng = rng;
	w->sum += sum;
	return done;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	bool random = pat_random(w->pat);
	bool skewed = pat_skewed(w->pat), write = !pat_reads_only(w->pat);

	/* Independent streams per thread and pattern: splitmix64's state
	 * advances by its own increment, so seeds that differ by a multiple
	 * of it would give the same sequence shifted by a few draws. */
	uint64_t s = (o.seed + 1) * 0xd1342543de82ef95ull ^ ((uint64_t)w->id << 32) ^ w->pat;
	w->rng = bench_rand(&s) ^ (w->id * 0xc6a4a7935bd1e995ull);
	/* Warm-up: the same operations, untimed, so that the timed ones see
	 * the steady state (resident set full of pages of this pattern,
	 * dirty victims to write back) rather than what the last pass left. */
	if (random && w->warmup)
		random_ops(w, skewed, write, w->warmup, false);
	pthread_barrier_wait(w->warm);
	pthread_barrier_wait(w->go);
	switch (w->pat) {
	case PAT_SEQ_WRITE:
		seq_write(w);
		break;
	case PAT_SEQ_READ:
		seq_read(w);
		break;
	default:
		w->done = random_ops(w, skewed, write, w->ops, true);
		break;
	}
	return NULL;
}

struct pass_result {
	double elapsed;
	uint64_t ops, errors;
};

struct counters;
static void read_counters(struct counters *c);
static void sync_file(void);
static void give_advice(enum pat pat);

/* Runs a pass on o.threads threads: the warm-up, then counters a, the
 * timed part, counters b. */
static struct pass_result run_threads(enum pat pat, uint64_t warmup, struct counters *a,
				      struct counters *b)
{
	struct worker w[MAX_THREADS];
	pthread_barrier_t warm, go;
	struct pass_result res = { 0, 0, 0 };
	uint64_t pages_per = npages / o.threads;

	give_advice(pat);
	pthread_barrier_init(&warm, NULL, o.threads + 1);
	pthread_barrier_init(&go, NULL, o.threads + 1);
	for (unsigned t = 0; t < o.threads; t++) {
		w[t] = (struct worker){ .id = t, .pat = pat, .warm = &warm, .go = &go };
		w[t].warmup = warmup / o.threads + (t < warmup % o.threads);
		w[t].lo = t * pages_per * WORDS_PER_PAGE;
		w[t].hi = t + 1 == o.threads ? nwords : (t + 1) * pages_per * WORDS_PER_PAGE;
		uint64_t ops = pat_skewed(pat) && o.zipf_ops ? o.zipf_ops : o.ops;
		w[t].ops = ops / o.threads + (t < ops % o.threads);
		int err = pthread_create(&w[t].tid, NULL, worker_main, &w[t]);
		if (err) {
			fprintf(stderr, "workload: pthread_create: %s\n", strerror(err));
			exit(1);
		}
	}
	pthread_barrier_wait(&warm);
	/* The timed part's sync writes what the timed part dirtied, not
	 * what the warm-up left. */
	if (pat == PAT_RAND_UPDATE)
		sync_file();
	bench_reset_peak_rss();
	read_counters(a);
	double t0 = bench_now();
	deadline = o.seconds > 0 && pat != PAT_SEQ_WRITE ? t0 + o.seconds : 0;
	pthread_barrier_wait(&go);
	for (unsigned t = 0; t < o.threads; t++) {
		pthread_join(w[t].tid, NULL);
		res.ops += w[t].done;
		res.errors += w[t].errors;
	}
	/* An update is done when it is on the file, as after msync(). */
	if (pat == PAT_RAND_UPDATE)
		sync_file();
	res.elapsed = bench_now() - t0;
	read_counters(b);
	pthread_barrier_destroy(&warm);
	pthread_barrier_destroy(&go);
	return res;
}

/* ---- counters around a pass ---- */

struct counters {
	struct rusage ru;
	upager_stats_t up;
	long long io_read, io_write; /* bytes, from the source named by io_src() */
};

static const char *io_src(void)
{
	switch (o.sys) {
	case SYS_UPAGER:
	case SYS_UPFILE:
		return "upager_stats";
	case SYS_KSWAP:
		return "vmstat_pswp"; /* system-wide; bench/run's swap file is the only swap */
	default:
		return "proc_self_io";
	}
}

static void read_counters(struct counters *c)
{
	getrusage(RUSAGE_SELF, &c->ru);
	switch (o.sys) {
	case SYS_UPAGER:
	case SYS_UPFILE:
		upager_stats(pager, &c->up);
		c->io_read = (long long)c->up.bytes_read;
		c->io_write = (long long)c->up.bytes_written;
		break;
	case SYS_KSWAP:
		c->io_read = bench_proc_value("/proc/vmstat", "pswpin") * (long long)PAGE;
		c->io_write = bench_proc_value("/proc/vmstat", "pswpout") * (long long)PAGE;
		break;
	case SYS_KMMAP:
	default:
		c->io_read = bench_proc_value("/proc/self/io", "read_bytes");
		c->io_write = bench_proc_value("/proc/self/io", "write_bytes");
		break;
	}
}

/* The limit of the memory cgroup (v1) this process is in, in bytes; 0 if
 * none or no limit. */
static uint64_t cgroup_limit(void)
{
	FILE *f = fopen("/proc/self/cgroup", "r");
	char line[512], path[1024];
	uint64_t limit = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		char *c = strstr(line, ":memory:");
		if (!c)
			continue;
		c += strlen(":memory:");
		c[strcspn(c, "\n")] = 0;
		snprintf(path, sizeof(path), "/sys/fs/cgroup/memory%s/memory.limit_in_bytes", c);
		FILE *l = fopen(path, "r");
		if (l) {
			unsigned long long v;
			if (fscanf(l, "%llu", &v) == 1 && v < (1ull << 60))
				limit = v;
			fclose(l);
		}
		break;
	}
	fclose(f);
	return limit;
}

static uint64_t budget_bytes;
static char mode_name[16] = "-";

/* What upager's own statistics say about the pass: its working set
 * estimate and thrashing, and where a miss's time went (microseconds per
 * miss, per evicted page for the evictor's phases). */
static void report_upager(const struct pass_result *r, const upager_stats_t *x,
			  const upager_stats_t *y)
{
	static const char *const names[] = { "entry", "lock", "frame", "io",    "map",
					     "wake",  "miss", "zap",   "punch", "write" };
	double mb = 1024.0 * 1024.0;
	uint64_t misses = 0;
	uint64_t evictions = y->evictions - x->evictions;

	for (int k = 0; k < UPAGER_LATENCY_BUCKETS; k++)
		misses += y->phase_hist[UPAGER_PHASE_MISS][k] - x->phase_hist[UPAGER_PHASE_MISS][k];
	printf(" up_ws_mb=%.1f up_refaults=%llu up_refaults_recent=%llu up_stall_s=%.3f "
	       "up_thrashing=%llu up_thrash_windows=%llu up_misses=%llu",
	       (double)(y->workingset_pages * y->page_size) / mb,
	       (unsigned long long)(y->refaults - x->refaults),
	       (unsigned long long)(y->refaults_recent - x->refaults_recent),
	       (double)(y->stall_ns - x->stall_ns) / 1e9, (unsigned long long)y->thrashing,
	       (unsigned long long)(y->thrash_windows - x->thrash_windows),
	       (unsigned long long)misses);
	for (int ph = 0; ph < (int)(sizeof(names) / sizeof(names[0])); ph++) {
		uint64_t per = ph >= UPAGER_PHASE_ZAP ? evictions : misses;
		double ns = (double)(y->phase_ns[ph] - x->phase_ns[ph]);
		printf(" up_ph_%s_us=%.2f", names[ph], per ? ns / 1e3 / (double)per : 0.0);
	}
	/* The program's wall time per miss, all threads together: what the
	 * pager's phases leave of it is the kernel's part (the trap, the
	 * hand-off to a handler thread and back) and the program's own work. */
	printf(" up_wall_per_miss_us=%.2f",
	       misses ? r->elapsed * 1e6 * o.threads / (double)misses : 0.0);
}

static void report(enum pat pat, const struct pass_result *r, const struct counters *a,
		   const struct counters *b)
{
	double mb = 1024.0 * 1024.0;
	bool seq = !pat_random(pat);
	double bytes = seq ? (double)r->ops * PAGE : (double)r->ops * 8;
	long hwm = bench_status_kb("VmHWM");

	printf("workload=%s system=%s mode=%s threads=%u ws_mb=%.0f budget_mb=%.0f ops=%llu "
	       "warmup_ops=%llu elapsed_s=%.3f ops_per_s=%.1f mb_per_s=%.2f peak_rss_mb=%.1f "
	       "major_faults=%ld minor_faults=%ld io_read_mb=%.1f io_write_mb=%.1f io_src=%s",
	       pat_names[pat], sys_names[o.sys], mode_name, o.threads, (double)o.size / mb,
	       (double)budget_bytes / mb, (unsigned long long)r->ops,
	       seq ? 0ull : (unsigned long long)o.warmup, r->elapsed, (double)r->ops / r->elapsed,
	       bytes / r->elapsed / mb, hwm / 1024.0, b->ru.ru_majflt - a->ru.ru_majflt,
	       b->ru.ru_minflt - a->ru.ru_minflt, (double)(b->io_read - a->io_read) / mb,
	       (double)(b->io_write - a->io_write) / mb, io_src());
	if (pat == PAT_SEQ_READ)
		printf(" check=%s", data_known ? (r->errors ? "FAILED" : "ok") : "-");
	printf(" ws_true_mb=%.1f", (double)(pat_skewed(pat) ? zipf_ws_pages : npages) * PAGE / mb);
	if (o.sys == SYS_UPAGER || o.sys == SYS_UPFILE)
		report_upager(r, &a->up, &b->up);
	if (o.sys == SYS_UPAGER || o.sys == SYS_UPFILE) {
		const upager_stats_t *x = &a->up, *y = &b->up;
#define D(f) (unsigned long long)(y->f - x->f)
		printf(" up_zero=%llu up_minor=%llu up_major=%llu up_wp=%llu up_evictions=%llu "
		       "up_writebacks=%llu up_clean_drops=%llu up_zero_drops=%llu "
		       "up_io_submits=%llu up_direct_reclaims=%llu up_samples=%llu "
		       "up_readaround=%llu up_readaround_watched=%llu up_readaround_hits=%llu",
		       D(faults_zero), D(faults_minor), D(faults_major), D(faults_wp), D(evictions),
		       D(writebacks), D(clean_drops), D(zero_drops), D(io_submits),
		       D(direct_reclaims), D(samples), D(readaround_pages), D(readaround_watched),
		       D(readaround_hits));
		/* What sampling referenced bits cost (issue 14: at most 5% of
		 * the run): the unmapping, in whichever thread did it, and the
		 * minor faults that report the references. */
		printf(" up_sample_ms=%.1f up_sample_faults=%llu", (double)D(sample_ns) / 1e6,
		       D(sample_faults));
		/* Gauges at the end of the pass: what upager holds, as opposed
		 * to RSS, which counts a page mapped in both of a region's
		 * views twice. */
		printf(" up_resident_mb=%.1f up_metadata_mb=%.1f",
		       (double)(y->resident_pages * y->page_size) / mb,
		       (double)y->metadata_bytes / mb);
#undef D
	}
	printf("\n");
	fflush(stdout);
	if (pat == PAT_SEQ_READ && data_known && r->errors) {
		fprintf(stderr, "workload: seq-read found %llu wrong words\n",
			(unsigned long long)r->errors);
		exit(1);
	}
}

static void run_pass(enum pat pat, bool timed)
{
	struct counters a, b;
	struct pass_result r;

	if (o.verbose)
		fprintf(stderr, "workload: %s pass: %s\n", timed ? "timed" : "setup",
			pat_names[pat]);
	r = run_threads(pat, timed && pat_random(pat) ? o.warmup : 0, &a, &b);
	if (timed)
		report(pat, &r, &a, &b);
	if (pat == PAT_SEQ_WRITE)
		data_known = true;
	else if (!pat_reads_only(pat))
		data_known = false;
	else if (data_known && r.errors) {
		fprintf(stderr, "workload: setup read found %llu wrong words\n",
			(unsigned long long)r.errors);
		exit(1);
	}
}

/* ---- memory ---- */

static void die(const char *what, int err)
{
	fprintf(stderr, "workload: %s: %s\n", what, strerror(err));
	exit(1);
}

static void die_up(const char *what, int err)
{
	fprintf(stderr, "workload: %s: %s (%s)\n", what, upager_strerror(err), upager_last_error());
	exit(1);
}

/* Writes the file's first o.size bytes with the seq-write contents. */
static void prepare_file(int fd)
{
	size_t chunk = 1 << 20;
	uint64_t *buf = malloc(chunk);

	if (!buf)
		die("malloc", ENOMEM);
	for (uint64_t off = 0; off < o.size; off += chunk) {
		size_t n = o.size - off < chunk ? o.size - off : chunk;
		for (size_t j = 0; j < n / 8; j++)
			buf[j] = (off / 8 + j) ^ GEN;
		if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n)
			die("writing the data file", errno ? errno : EIO);
	}
	free(buf);
	data_known = true;
}

/* Opens --file for kmmap and upfile: written with the seq-write
 * contents if shorter than --size (truncated instead when the first pass
 * is seq-write), and out of the page cache, so that every system starts
 * cold. */
static void open_data_file(void)
{
	struct stat st;
	bool fresh = !o.prepare_only && o.passes[0] == PAT_SEQ_WRITE;

	if (!o.file) {
		fprintf(stderr, "workload: --system %s and --prepare need --file PATH\n",
			sys_names[o.sys]);
		exit(2);
	}
	file_fd = open(o.file, O_RDWR | O_CREAT | O_CLOEXEC | (fresh ? O_TRUNC : 0), 0600);
	if (file_fd < 0)
		die(o.file, errno);
	if (fstat(file_fd, &st) < 0)
		die("fstat", errno);
	if (!fresh && (uint64_t)st.st_size < o.size) {
		if (o.verbose)
			fprintf(stderr, "workload: preparing %s\n", o.file);
		prepare_file(file_fd);
	}
	if (ftruncate(file_fd, (off_t)o.size) < 0)
		die("ftruncate", errno);
	if (!fresh) {
		fdatasync(file_fd);
		posix_fadvise(file_fd, 0, 0, POSIX_FADV_DONTNEED);
	}
}

static void open_pager(void)
{
	upager_config_t cfg;
	upager_stats_t st;
	int err;

	upager_config_init(&cfg);
	cfg.ram_bytes = o.ram;
	if ((int)o.mode >= 0)
		cfg.mode = (upager_mode_t)o.mode;
	if (o.swap)
		cfg.swap_path = o.swap;
	err = upager_open(&cfg, &pager);
	if (err < 0)
		die_up("upager_open", err);
	upager_stats(pager, &st);
	snprintf(mode_name, sizeof(mode_name), "%s", st.mode);
	budget_bytes = o.ram;
}

static void map_memory(void)
{
	int err;

	switch (o.sys) {
	case SYS_UPAGER:
		open_pager();
		err = upager_map(pager, o.size, 0, (void **)&mem);
		if (err < 0)
			die_up("upager_map", err);
		break;
	case SYS_UPFILE:
		open_data_file();
		open_pager();
		err = upager_map_file(pager, file_fd, 0, o.size, UPAGER_MAP_SHARED, (void **)&mem);
		if (err < 0)
			die_up("upager_map_file", err);
		break;
	case SYS_KSWAP:
		mem = mmap(NULL, o.size, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (mem == MAP_FAILED)
			die("mmap", errno);
		/* 4 KiB pages, like upager's: no transparent huge pages. */
		madvise(mem, o.size, MADV_NOHUGEPAGE);
		budget_bytes = cgroup_limit();
		if (bench_proc_value("/proc/meminfo", "SwapTotal") <= 0)
			fprintf(stderr, "workload: warning: no swap is enabled\n");
		break;
	case SYS_KMMAP:
		open_data_file();
		mem = mmap(NULL, o.size, PROT_READ | PROT_WRITE, MAP_SHARED, file_fd, 0);
		if (mem == MAP_FAILED)
			die("mmap", errno);
		budget_bytes = cgroup_limit();
		break;
	default:
		break;
	}
	if ((o.sys == SYS_KSWAP || o.sys == SYS_KMMAP) && !budget_bytes)
		fprintf(stderr, "workload: warning: not in a memory cgroup with a limit: "
				"the kernel may use all the RAM\n");
}

/* --advise: the file systems are told the pattern of each pass, as a
 * program that knows it would (kmmap: madvise; upfile: upager_advise),
 * random for the random passes, normal for the sequential ones, before
 * the pass's warm-up. */
static void give_advice(enum pat pat)
{
	bool random = pat_random(pat);
	int err;

	if (!o.advise)
		return;
	switch (o.sys) {
	case SYS_UPFILE:
		err = upager_advise(pager, mem, o.size,
				    random ? UPAGER_ADVICE_RANDOM : UPAGER_ADVICE_NORMAL);
		if (err < 0)
			die_up("upager_advise", err);
		break;
	case SYS_KMMAP:
		if (madvise(mem, o.size, random ? MADV_RANDOM : MADV_NORMAL) < 0)
			die("madvise", errno);
		break;
	default:
		break;
	}
}

/* rand-update's end, inside its timed part: the region's dirty pages on
 * the file and the file synced. */
static void sync_file(void)
{
	int err;

	switch (o.sys) {
	case SYS_UPFILE:
		err = upager_sync(pager, mem, o.size);
		if (err < 0)
			die_up("upager_sync", err);
		break;
	case SYS_KMMAP:
		if (msync(mem, o.size, MS_SYNC) < 0)
			die("msync", errno);
		break;
	default:
		break; /* anonymous memory has no file to sync */
	}
}

static void unmap_memory(void)
{
	switch (o.sys) {
	case SYS_UPAGER:
	case SYS_UPFILE: {
		int err = upager_close(pager);
		if (err < 0)
			die_up("upager_close", err);
		if (file_fd >= 0)
			close(file_fd);
		break;
	}
	case SYS_KSWAP:
		munmap(mem, o.size);
		break;
	default:
		munmap(mem, o.size);
		close(file_fd);
		break;
	}
}

/* ---- options ---- */

static void usage(int status)
{
	fprintf(status ? stderr : stdout,
		"usage: workload [--system upager|kswap|kmmap|upfile] [--mode fast|transparent]\n"
		"                [--pattern seq-write,seq-read,rand-rmw,zipf-rmw,rand-read,zipf-read,\n"
		"                 rand-update] [--threads N]\n"
		"                [--size BYTES] [--ram BYTES] [--ops N] [--zipf-ops N] [--warmup-ops N]\n"
		"                [--seconds S]\n"
		"                [--alpha A] [--file PATH] [--swap PATH] [--seed N] [--prepare]\n"
		"                [--advise] [-v]\n"
		"  --size   working set (default 1G); --ram upager's budget (default 256M);\n"
		"           kswap and kmmap get theirs from the memory cgroup they run in\n"
		"  --ops    operations of a random pass, all threads together (default 200000);\n"
		"           --zipf-ops overrides it for zipf-rmw; --warmup-ops untimed ones first\n"
		"  --seconds a random or seq-read pass stops after S seconds\n"
		"  --file   the data file of kmmap and upfile; --swap upager's swap path\n"
		"           (default $TMPDIR); --prepare writes --file for them, and exits\n"
		"  --advise kmmap and upfile are told each pass's pattern (madvise, upager_advise)\n");
	exit(status);
}

static void parse_patterns(const char *s)
{
	char *copy = strdup(s), *save = NULL;

	o.npasses = 0;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		unsigned k;
		for (k = 0; k < NPAT && strcmp(t, pat_names[k]); k++)
			;
		if (k == NPAT || o.npasses == MAX_PASSES) {
			fprintf(stderr, "workload: unknown pattern or too many: %s\n", t);
			exit(2);
		}
		o.passes[o.npasses++] = (enum pat)k;
	}
	free(copy);
	if (!o.npasses)
		usage(2);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "system", required_argument, NULL, 'S' },
		{ "mode", required_argument, NULL, 'm' },
		{ "pattern", required_argument, NULL, 'p' },
		{ "threads", required_argument, NULL, 't' },
		{ "size", required_argument, NULL, 's' },
		{ "ram", required_argument, NULL, 'r' },
		{ "ops", required_argument, NULL, 'n' },
		{ "zipf-ops", required_argument, NULL, 'z' },
		{ "warmup-ops", required_argument, NULL, 'W' },
		{ "seconds", required_argument, NULL, 'T' },
		{ "alpha", required_argument, NULL, 'a' },
		{ "file", required_argument, NULL, 'f' },
		{ "swap", required_argument, NULL, 'w' },
		{ "seed", required_argument, NULL, 'e' },
		{ "prepare", no_argument, NULL, 'P' },
		{ "advise", no_argument, NULL, 'A' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	parse_patterns("seq-write");
	while ((c = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'S': {
			unsigned k;
			for (k = 0; k < NSYS && strcmp(optarg, sys_names[k]); k++)
				;
			if (k == NSYS)
				usage(2);
			o.sys = (enum sys)k;
			break;
		}
		case 'm':
			if (!strcmp(optarg, "fast"))
				o.mode = UPAGER_MODE_FAST;
			else if (!strcmp(optarg, "transparent"))
				o.mode = UPAGER_MODE_TRANSPARENT;
			else
				usage(2);
			break;
		case 'p':
			parse_patterns(optarg);
			break;
		case 't':
			o.threads = (unsigned)atoi(optarg);
			if (o.threads < 1 || o.threads > MAX_THREADS)
				usage(2);
			break;
		case 's':
			o.size = bench_size_arg("--size", optarg);
			break;
		case 'r':
			o.ram = bench_size_arg("--ram", optarg);
			break;
		case 'n':
			o.ops = bench_size_arg("--ops", optarg);
			break;
		case 'W':
			o.warmup = bench_size_arg("--warmup-ops", optarg);
			break;
		case 'z':
			o.zipf_ops = bench_size_arg("--zipf-ops", optarg);
			break;
		case 'T':
			o.seconds = atof(optarg);
			break;
		case 'a':
			o.alpha = atof(optarg);
			break;
		case 'f':
			o.file = optarg;
			break;
		case 'w':
			o.swap = optarg;
			break;
		case 'e':
			o.seed = bench_size_arg("--seed", optarg);
			break;
		case 'P':
			o.prepare_only = true;
			break;
		case 'A':
			o.advise = true;
			break;
		case 'v':
			o.verbose = true;
			break;
		case 'h':
			usage(0);
			break;
		default:
			usage(2);
		}
	}
	if (optind < argc)
		usage(2);
	o.size = (o.size + PAGE - 1) / PAGE * PAGE;
	npages = o.size / PAGE;
	nwords = o.size / 8;
	if (npages < o.threads) {
		fprintf(stderr, "workload: --size too small\n");
		exit(2);
	}
	zipf_init(&zipf, npages, o.alpha);
	zipf_ws_pages = zipf_mass_pages(npages, o.alpha, ZIPF_WS_MASS);
	zipf_mult = 0x9e3779b97f4a7c15ull % npages;
	if (!zipf_mult)
		zipf_mult = 1;
	while (gcd(zipf_mult, npages) != 1)
		zipf_mult++;

	if (o.prepare_only) {
		open_data_file();
		close(file_fd);
		return 0;
	}
	map_memory();
	if (o.passes[0] != PAT_SEQ_WRITE && (o.sys == SYS_UPAGER || o.sys == SYS_KSWAP))
		run_pass(PAT_SEQ_WRITE, false);
	for (unsigned i = 0; i < o.npasses; i++)
		run_pass(o.passes[i], true);
	unmap_memory();
	return 0;
}
