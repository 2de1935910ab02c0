// SPDX-License-Identifier: MIT
/*
 * rollback: all-or-nothing batches of updates on a data structure larger
 * than its RAM budget, with upager snapshots as the undo log.
 *
 * The structure is an open-addressing hash table of account balances
 * (linear probing, 16-byte slots) that fills an upager region of --size
 * bytes under a budget of --ram. Each batch of --ops transfers between
 * random accounts (now and then into a newly opened account) runs like
 * this:
 *
 *   1. take a snapshot of the region: nothing is copied; pages the batch
 *      writes are copied on their first write (faults_cow);
 *   2. apply the batch. Every --fail-every'th batch fails halfway, the
 *      way a process dies between the two writes of a transfer: money
 *      leaves one account and reaches none;
 *   3. validate the invariant over the whole table: the total of the
 *      balances is what it was at the start and the number of accounts
 *      matches the header;
 *   4. if it holds, commit (free the snapshot); if not, roll back with
 *      upager_snapshot_restore(), check that the table's checksum is the
 *      one computed before the batch, and free the snapshot.
 *
 * The checksum and the totals come from scanning the table itself, not
 * from the snapshot, so a restore that missed a page shows up. The
 * program exits 1 if any check fails: a failing batch that validation
 * did not catch, a correct one that it rejected, a rollback that did not
 * give the same table back. It ends with the copy-on-write counters and
 * upager's statistics. With the table four times the budget, most pages
 * a batch writes are in swap or clean, so the snapshot gets their old
 * version by sharing the swap slot (pages_shared), not by a copy
 * (pages_copied); with a budget larger than the table it is the other
 * way round.
 *
 *   rollback [--ram SIZE] [--size SIZE] [--batches N] [--ops N]
 *            [--fail-every K] [--seed N] [--fast]
 *
 * Any UPAGER_* variable (UPAGER_BACKEND, UPAGER_POLICY, ...) applies too.
 */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "upager.h"

#define MAGIC 0x6c6c6f626b636172ull
#define OPENING_BALANCE 1000

/* The table's first page: part of the region, so a rollback also takes
 * back the accounts a failed batch opened. */
struct header {
	uint64_t magic;
	uint64_t capacity; /* slots, a power of two */
	uint64_t accounts; /* occupied slots */
	uint64_t opened;   /* accounts opened after the initial fill */
};

struct slot {
	uint64_t key; /* account number; 0: empty */
	int64_t balance;
};

struct digest {
	int64_t total;
	uint64_t accounts;
	uint64_t checksum;
};

static struct header *hdr;
static struct slot *table;
static uint64_t mask;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t rng(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* The hash of an account number: splitmix64's finalizer, a bijection. */
#define M1 0xbf58476d1ce4e5b9ull
#define M2 0x94d049bb133111ebull
static uint64_t inv1, inv2;

static uint64_t mix(uint64_t x)
{
	x = (x ^ (x >> 30)) * M1;
	x = (x ^ (x >> 27)) * M2;
	return x ^ (x >> 31);
}

/* Inverse of an odd number modulo 2^64 (Newton: each step doubles the
 * correct low bits). */
static uint64_t inverse(uint64_t a)
{
	uint64_t x = a;
	for (int i = 0; i < 6; i++)
		x *= 2 - a * x;
	return x;
}

static uint64_t unshift(uint64_t x, int k)
{
	for (int s = k; s < 64; s += k)
		x ^= x >> s;
	return x;
}

/* The account number whose hash is h. Building the table front to back
 * needs it: the initial accounts are chosen so that each lands in its
 * home slot, and the fill is one sequential pass instead of millions of
 * random inserts into a table four times the budget. */
static uint64_t unmix(uint64_t h)
{
	h = unshift(h, 31) * inv2;
	h = unshift(h, 27) * inv1;
	return unshift(h, 30);
}

static struct slot *find(uint64_t key)
{
	for (uint64_t i = mix(key) & mask;; i = (i + 1) & mask) {
		if (table[i].key == key)
			return &table[i];
		if (!table[i].key)
			return NULL;
	}
}

static struct slot *insert(uint64_t key)
{
	uint64_t i = mix(key) & mask;
	while (table[i].key)
		i = (i + 1) & mask;
	table[i].key = key;
	table[i].balance = 0;
	hdr->accounts++;
	return &table[i];
}

/* A random existing account: the first occupied slot from a random one. */
static uint64_t random_account(uint64_t *s)
{
	uint64_t i = rng(s) & mask;
	while (!table[i].key)
		i = (i + 1) & mask;
	return table[i].key;
}

static void fill(uint64_t *s)
{
	int bits = __builtin_ctzll(hdr->capacity);

	for (uint64_t i = 0; i <= mask; i++) {
		if (rng(s) & 1) {
			table[i].key = 0;
			continue;
		}
		/* The slot decides only the hash's low bits; random high ones
		 * (an odd tag, so never 0, the empty key) make the number. */
		uint64_t tag = (rng(s) | 1) << bits;
		table[i].key = unmix(i | tag);
		table[i].balance = OPENING_BALANCE;
		hdr->accounts++;
	}
}

/* Reads the whole table. The checksum depends on which account sits in
 * which slot with which balance, and on the header. */
static struct digest scan(void)
{
	struct digest d = { 0, 0, mix(hdr->magic ^ mix(hdr->accounts ^ mix(hdr->opened))) };

	for (uint64_t i = 0; i <= mask; i++) {
		if (!table[i].key)
			continue;
		d.total += table[i].balance;
		d.accounts++;
		d.checksum += mix(i ^ mix(table[i].key ^ mix((uint64_t)table[i].balance)));
	}
	return d;
}

/*
 * ops transfers; with fail set, the batch dies halfway through a
 * transfer: the debit is written, the credit never is. Returns the
 * transfers done.
 */
static uint64_t apply_batch(uint64_t *s, uint64_t ops, bool fail, uint64_t *opened)
{
	uint64_t done = 0;

	for (uint64_t op = 0; op < ops; op++) {
		struct slot *from = find(random_account(s)), *to;
		int64_t amount = 1 + (int64_t)(rng(s) % 100);

		if (rng(s) % 32 == 0 && hdr->accounts < hdr->capacity / 4 * 3) {
			uint64_t key;
			do
				key = rng(s);
			while (!key || find(key));
			to = insert(key);
			hdr->opened++;
			(*opened)++;
			/* from stays valid: linear probing never moves an entry. */
		} else {
			to = find(random_account(s));
		}
		if (from == to || from->balance < amount)
			continue;
		from->balance -= amount;
		if (fail && op >= ops / 2)
			return done; /* the credit is lost */
		to->balance += amount;
		done++;
	}
	return done;
}

static void usage(const char *argv0)
{
	fprintf(stderr,
		"usage: %s [--ram SIZE] [--size SIZE] [--batches N] [--ops N] [--fail-every K]\n"
		"          [--seed N] [--fast]\n",
		argv0);
	exit(2);
}

static uint64_t size_arg(const char *argv0, const char *opt, const char *v)
{
	uint64_t n;
	if (!v || upager_parse_size(v, &n) < 0) {
		fprintf(stderr, "%s: %s needs a size like 64M, got '%s'\n", argv0, opt, v ? v : "");
		usage(argv0);
	}
	return n;
}

static int check(int err, const char *what)
{
	if (err < 0) {
		fprintf(stderr, "rollback: %s: %s: %s\n", what, upager_strerror(err),
			upager_last_error());
		exit(1);
	}
	return err;
}

int main(int argc, char **argv)
{
	upager_config_t cfg;
	upager_stats_t st0, st1;
	upager_t *p;
	uint64_t size = 64u << 20, batches = 6, ops = 2000, fail_every = 3, seed = 1;
	void *region;

	upager_config_init(&cfg);
	if (!getenv("UPAGER_RAM"))
		cfg.ram_bytes = 16u << 20;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--ram"))
			cfg.ram_bytes = size_arg(argv[0], argv[i], argv[i + 1]), i++;
		else if (!strcmp(argv[i], "--size"))
			size = size_arg(argv[0], argv[i], argv[i + 1]), i++;
		else if (!strcmp(argv[i], "--batches"))
			batches = size_arg(argv[0], argv[i], argv[i + 1]), i++;
		else if (!strcmp(argv[i], "--ops"))
			ops = size_arg(argv[0], argv[i], argv[i + 1]), i++;
		else if (!strcmp(argv[i], "--fail-every"))
			fail_every = size_arg(argv[0], argv[i], argv[i + 1]), i++;
		else if (!strcmp(argv[i], "--seed"))
			seed = size_arg(argv[0], argv[i], argv[i + 1]), i++;
		else if (!strcmp(argv[i], "--fast"))
			cfg.mode = UPAGER_MODE_FAST;
		else
			usage(argv[0]);
	}
	uint64_t capacity = 1;
	while (capacity * 2 * sizeof(struct slot) <= size)
		capacity *= 2;
	if (capacity < 1024) {
		fprintf(stderr, "rollback: --size too small for a table\n");
		return 2;
	}
	mask = capacity - 1;
	inv1 = inverse(M1);
	inv2 = inverse(M2);
	for (uint64_t x = 1; x < 1000; x++)
		if (unmix(mix(x * 0x123456789ull)) != x * 0x123456789ull) {
			fprintf(stderr, "rollback: the hash does not invert\n");
			return 1;
		}

	check(upager_open(&cfg, &p), "upager_open");
	/* The header gets a page of its own; the table follows. */
	long page = sysconf(_SC_PAGESIZE);
	size_t table_off = cfg.page_size > (size_t)page ? cfg.page_size : (size_t)page;
	check(upager_map(p, table_off + capacity * sizeof(struct slot), 0, &region), "upager_map");
	hdr = region;
	table = (struct slot *)((char *)region + table_off);
	printf("rollback: %llu slots (%.0f MiB) in a %.0f MiB budget, %llu batches of %llu "
	       "transfers, every %llu%s batch fails halfway\n",
	       (unsigned long long)capacity, capacity * sizeof(struct slot) / 1048576.0,
	       cfg.ram_bytes / 1048576.0, (unsigned long long)batches, (unsigned long long)ops,
	       (unsigned long long)fail_every,
	       fail_every == 1   ? "st"
	       : fail_every == 2 ? "nd"
	       : fail_every == 3 ? "rd"
				 : "th");
	fflush(stdout);

	double t0 = now();
	uint64_t s = seed;
	hdr->magic = MAGIC;
	hdr->capacity = capacity;
	fill(&s);
	struct digest before = scan();
	const int64_t total = before.total;
	printf("rollback: %llu accounts, total balance %lld, filled and scanned in %.1f s\n",
	       (unsigned long long)before.accounts, (long long)total, now() - t0);
	fflush(stdout);

	uint64_t committed = 0, rolled_back = 0, failures = 0;
	check(upager_stats(p, &st0), "upager_stats");
	for (uint64_t b = 1; b <= batches; b++) {
		bool fail = fail_every && b % fail_every == 0;
		upager_stats_t c0, c1;
		upager_snapshot_t *snap;
		uint64_t opened = 0;
		const char *verdict;
		double tb = now();

		check(upager_stats(p, &c0), "upager_stats");
		check(upager_snapshot(p, region, &snap), "upager_snapshot");
		uint64_t done = apply_batch(&s, ops, fail, &opened);
		struct digest after = scan();
		bool valid = after.total == total && after.accounts == hdr->accounts;

		if (valid) {
			verdict = "committed";
			committed++;
			before = after;
			if (fail) {
				fprintf(stderr,
					"rollback: batch %llu failed, validation missed it\n",
					(unsigned long long)b);
				failures++;
			}
		} else {
			check(upager_snapshot_restore(snap), "upager_snapshot_restore");
			struct digest again = scan();
			rolled_back++;
			verdict = "rolled back";
			if (again.total != before.total || again.accounts != before.accounts ||
			    again.checksum != before.checksum) {
				fprintf(stderr,
					"rollback: batch %llu: after the restore the table differs from "
					"before the batch: total %lld (was %lld), %llu accounts (was "
					"%llu), checksum %016llx (was %016llx)\n",
					(unsigned long long)b, (long long)again.total,
					(long long)before.total, (unsigned long long)again.accounts,
					(unsigned long long)before.accounts,
					(unsigned long long)again.checksum,
					(unsigned long long)before.checksum);
				failures++;
				verdict = "rolled back, WRONG";
			}
			if (!fail) {
				fprintf(stderr,
					"rollback: batch %llu was correct, validation rejected it "
					"(total %lld, %llu accounts, header says %llu)\n",
					(unsigned long long)b, (long long)after.total,
					(unsigned long long)after.accounts,
					(unsigned long long)hdr->accounts);
				failures++;
			}
		}
		check(upager_snapshot_free(snap), "upager_snapshot_free");
		check(upager_stats(p, &c1), "upager_stats");
		printf("batch %3llu: %5llu transfers, %3llu accounts opened%s: %-11s "
		       "(cow faults +%llu, pages copied +%llu, shared +%llu) %.2f s\n",
		       (unsigned long long)b, (unsigned long long)done, (unsigned long long)opened,
		       fail ? ", failed halfway" : "", verdict,
		       (unsigned long long)(c1.faults_cow - c0.faults_cow),
		       (unsigned long long)(c1.pages_copied - c0.pages_copied),
		       (unsigned long long)(c1.pages_shared - c0.pages_shared), now() - tb);
		fflush(stdout);
	}

	check(upager_stats(p, &st1), "upager_stats");
	if (st1.snapshots != 0) {
		fprintf(stderr, "rollback: %llu snapshots still live after every one was freed\n",
			(unsigned long long)st1.snapshots);
		failures++;
	}
	struct digest last = scan();
	if (last.total != total || last.checksum != before.checksum) {
		fprintf(stderr, "rollback: the final table is not the last committed one\n");
		failures++;
	}
	printf("rollback: %llu batches committed, %llu rolled back; %s\n",
	       (unsigned long long)committed, (unsigned long long)rolled_back,
	       failures ? "VERIFICATION FAILED" : "every check passed");
	printf("copy-on-write: faults_cow %llu, pages_copied %llu, pages_shared %llu\n",
	       (unsigned long long)(st1.faults_cow - st0.faults_cow),
	       (unsigned long long)(st1.pages_copied - st0.pages_copied),
	       (unsigned long long)(st1.pages_shared - st0.pages_shared));
	fflush(stdout);
	check(upager_stats_print(p, STDOUT_FILENO), "upager_stats_print");
	check(upager_close(p), "upager_close");
	return failures ? 1 : 0;
}
