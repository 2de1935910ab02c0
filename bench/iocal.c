// SPDX-License-Identifier: MIT
/*
 * iocal: what the disk under $TMPDIR gives, measured the way upager uses
 * it (io_uring, O_DIRECT), so that the pager's I/O can be read as a
 * fraction of the device. bench/run runs it before and after the suite
 * and flags the run when the two disagree (the host throttles this disk
 * after tens of GB of sustained I/O).
 *
 * On an unnamed file (O_TMPFILE, else created and unlinked at once, so
 * that nothing is left behind even if it is killed) of --size bytes:
 *   seqwrite  1 MiB writes front to back at queue depth --seq-qd, then
 *             fdatasync (the file is fallocated first)
 *   seqread   1 MiB reads front to back, same depth
 *   randread  4 KiB reads at uniform random offsets, for --seconds or
 *             --max-ops I/Os (default 50000), whichever comes first, at
 *             each depth of --depths (1: a fault; 32, 64, 128: batches)
 *   randwrite 4 KiB writes at random offsets, depth 64 (an eviction batch)
 * One line per test: "bench=iocal test=... bs= qd= ops= elapsed_s= iops=
 * mb_per_s= lat_us=" (lat_us: mean completion latency).
 *
 *   iocal [--dir DIR] [--size BYTES] [--seconds S] [--depths 1,32,64,128]
 *         [--seq-qd N] [--max-ops N]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

#define MAX_QD 256

static int fd = -1;
static uint64_t file_size = 256ull << 20;
static uint64_t max_ops = 50000; /* random tests: at most this many I/Os */

static void die(const char *what, int err)
{
	fprintf(stderr, "iocal: %s: %s\n", what, strerror(err));
	exit(1);
}

static int open_unnamed(const char *dir)
{
	char path[4096];
	int f = open(dir, O_TMPFILE | O_RDWR | O_DIRECT | O_CLOEXEC, 0600);

	if (f >= 0)
		return f;
	snprintf(path, sizeof(path), "%s/upager-bench-iocal-%d", dir, (int)getpid());
	f = open(path, O_CREAT | O_EXCL | O_RDWR | O_DIRECT | O_CLOEXEC, 0600);
	if (f < 0)
		die(path, errno);
	unlink(path);
	return f;
}

struct result {
	uint64_t ops;
	double elapsed, lat_sum;
};

/*
 * Keeps qd requests of bs bytes in flight. Sequential: offsets front to
 * back until the file ends. Random: uniform offsets until seconds pass.
 */
static struct result run(bool write, size_t bs, unsigned qd, bool seq, double seconds)
{
	struct io_uring ring;
	char *bufs;
	uint64_t started[MAX_QD];
	uint64_t next_off = 0, rng = 42 + qd + write, nblocks = file_size / bs;
	unsigned inflight = 0;
	bool stop = false;
	struct result res = { 0, 0, 0 };
	int err;

	if (qd > MAX_QD)
		qd = MAX_QD;
	err = io_uring_queue_init(qd, &ring, 0);
	if (err < 0)
		die("io_uring_queue_init", -err);
	if (posix_memalign((void **)&bufs, 4096, (size_t)qd * bs))
		die("posix_memalign", ENOMEM);
	memset(bufs, 0x5a, (size_t)qd * bs);
	memset(started, 0, sizeof(started));

	double t0 = bench_now(), end = t0 + seconds;
	for (;;) {
		/* Refill the ring. */
		while (!stop && inflight < qd) {
			uint64_t off;
			if (seq) {
				if (next_off >= file_size) {
					stop = true;
					break;
				}
				off = next_off;
				next_off += bs;
			} else {
				off = bench_rand_below(&rng, nblocks) * bs;
			}
			unsigned slot; /* a free buffer */
			for (slot = 0; slot < qd && started[slot]; slot++)
				;
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
			if (write)
				io_uring_prep_write(sqe, fd, bufs + (size_t)slot * bs, (unsigned)bs,
						    off);
			else
				io_uring_prep_read(sqe, fd, bufs + (size_t)slot * bs, (unsigned)bs,
						   off);
			io_uring_sqe_set_data64(sqe, slot);
			started[slot] = bench_now_ns();
			inflight++;
		}
		if (!inflight)
			break;
		err = io_uring_submit_and_wait(&ring, 1);
		if (err < 0 && err != -EINTR)
			die("io_uring_submit_and_wait", -err);
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		uint64_t now = bench_now_ns();
		io_uring_for_each_cqe(&ring, head, cqe)
		{
			unsigned slot = (unsigned)io_uring_cqe_get_data64(cqe);
			if (cqe->res != (int)bs)
				die(write ? "write" : "read", cqe->res < 0 ? -cqe->res : EIO);
			res.lat_sum += (double)(now - started[slot]) / 1e3;
			started[slot] = 0;
			res.ops++;
			inflight--;
			n++;
		}
		io_uring_cq_advance(&ring, n);
		if (!seq && (bench_now() >= end || res.ops + inflight >= max_ops))
			stop = true;
	}
	if (write && seq && fdatasync(fd) < 0)
		die("fdatasync", errno);
	res.elapsed = bench_now() - t0;
	io_uring_queue_exit(&ring);
	free(bufs);
	return res;
}

static void print(const char *test, size_t bs, unsigned qd, struct result r)
{
	printf("bench=iocal test=%s bs=%zu qd=%u ops=%llu elapsed_s=%.3f iops=%.0f mb_per_s=%.1f "
	       "lat_us=%.1f\n",
	       test, bs, qd, (unsigned long long)r.ops, r.elapsed, (double)r.ops / r.elapsed,
	       (double)r.ops * (double)bs / r.elapsed / 1048576.0, r.lat_sum / (double)r.ops);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "size", required_argument, NULL, 's' },
		{ "seconds", required_argument, NULL, 'T' },
		{ "depths", required_argument, NULL, 'q' },
		{ "seq-qd", required_argument, NULL, 'Q' },
		{ "max-ops", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	const char *depths = "1,32,64,128";
	double seconds = 2;
	unsigned seq_qd = 4;
	int c;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 's':
			file_size = bench_size_arg("--size", optarg);
			break;
		case 'T':
			seconds = atof(optarg);
			break;
		case 'q':
			depths = optarg;
			break;
		case 'n':
			max_ops = bench_size_arg("--max-ops", optarg);
			break;
		case 'Q':
			seq_qd = (unsigned)atoi(optarg);
			break;
		case 'h':
			printf("usage: iocal [--dir DIR] [--size BYTES] [--seconds S] "
			       "[--depths 1,32,64,128] [--seq-qd N] [--max-ops N]\n");
			return 0;
		default:
			return 2;
		}
	}
	file_size = file_size / (1 << 20) * (1 << 20);
	if (file_size < (1 << 20) || seq_qd < 1 || seq_qd > MAX_QD) {
		fprintf(stderr, "iocal: --size must be at least 1M, --seq-qd 1..%d\n", MAX_QD);
		return 2;
	}
	fd = open_unnamed(dir);
	if (fallocate(fd, 0, 0, (off_t)file_size) < 0)
		die("fallocate", errno);

	print("seqwrite", 1 << 20, seq_qd, run(true, 1 << 20, seq_qd, true, 0));
	print("seqread", 1 << 20, seq_qd, run(false, 1 << 20, seq_qd, true, 0));
	char *copy = strdup(depths), *save = NULL;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		unsigned qd = (unsigned)atoi(t);
		if (qd < 1 || qd > MAX_QD) {
			fprintf(stderr, "iocal: bad depth %s\n", t);
			return 2;
		}
		print("randread", 4096, qd, run(false, 4096, qd, false, seconds));
	}
	free(copy);
	print("randwrite", 4096, 64, run(true, 4096, 64, false, seconds));
	close(fd);
	return 0;
}
