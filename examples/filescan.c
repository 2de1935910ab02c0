// SPDX-License-Identifier: MIT
/*
 * filescan: sums, searches and updates a file through an upager file
 * region whose RAM budget is a fraction of the file, or (--mmap) through
 * mmap() of the same file; both print the same lines.
 *
 *   filescan [--mmap] [--budget BYTES] [--passes N] [--byte V] [--update STEP] FILE
 *
 * Each pass sums the file as little-endian 64-bit words (the tail byte
 * by byte) and counts the bytes equal to V (default 0). --update STEP
 * then adds 1 to every STEP-th byte, syncs (upager_sync or msync) and
 * scans once more, so the file changes the same way in both modes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "upager.h"

static void scan(const unsigned char *d, size_t size, int byte, int pass)
{
	uint64_t sum = 0, count = 0;
	size_t i = 0;

	for (; i + 8 <= size; i += 8) {
		uint64_t w;
		memcpy(&w, d + i, 8);
		sum += w;
		for (int k = 0; k < 8; k++)
			count += d[i + k] == byte;
	}
	for (; i < size; i++) {
		sum += (uint64_t)d[i] << (8 * (i % 8));
		count += d[i] == byte;
	}
	printf("pass %d: sum %016" PRIx64 ", bytes equal to %d: %" PRIu64 "\n", pass, sum, byte,
	       count);
}

static void usage(void)
{
	fprintf(stderr, "usage: filescan [--mmap] [--budget BYTES] [--passes N] [--byte V] "
			"[--update STEP] FILE\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int use_mmap = 0, passes = 1, byte = 0;
	size_t budget = 0, step = 0;
	const char *file = NULL;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--mmap"))
			use_mmap = 1;
		else if (!strcmp(argv[i], "--budget") && i + 1 < argc)
			budget = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--passes") && i + 1 < argc)
			passes = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--byte") && i + 1 < argc)
			byte = (int)strtol(argv[++i], NULL, 0) & 0xff;
		else if (!strcmp(argv[i], "--update") && i + 1 < argc)
			step = strtoull(argv[++i], NULL, 0);
		else if (argv[i][0] != '-' && !file)
			file = argv[i];
		else
			usage();
	}
	if (!file)
		usage();
	int fd = open(file, step ? O_RDWR : O_RDONLY);
	if (fd < 0) {
		perror(file);
		return 1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || st.st_size == 0) {
		fprintf(stderr, "%s: empty or unreadable\n", file);
		return 1;
	}
	size_t size = (size_t)st.st_size;
	unsigned char *d;
	upager_t *p = NULL;
	int err;

	if (use_mmap) {
		d = mmap(NULL, size, step ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
		if (d == MAP_FAILED) {
			perror("mmap");
			return 1;
		}
	} else {
		upager_config_t cfg;
		upager_config_init(&cfg);
		/* A quarter of the file unless told: the file does not fit. */
		cfg.ram_bytes = budget ? budget : size / 4;
		if (cfg.ram_bytes < (1u << 20))
			cfg.ram_bytes = 1u << 20;
		if ((err = upager_open(&cfg, &p)) < 0 ||
		    (err = upager_map_file(p, fd, 0, size,
					   UPAGER_MAP_SHARED | (step ? 0 : UPAGER_MAP_RDONLY),
					   (void **)&d)) < 0) {
			fprintf(stderr, "filescan: %s: %s\n", upager_strerror(err),
				upager_last_error());
			return 1;
		}
	}
	for (int pass = 1; pass <= passes; pass++)
		scan(d, size, byte, pass);
	if (step) {
		for (size_t i = 0; i < size; i += step)
			d[i]++;
		err = use_mmap ? (msync(d, size, MS_SYNC) < 0 ? -errno : 0)
			       : upager_sync(p, d, size);
		if (err < 0) {
			fprintf(stderr, "filescan: sync: %s\n", strerror(-err));
			return 1;
		}
		scan(d, size, byte, passes + 1);
	}
	if (use_mmap) {
		munmap(d, size);
	} else {
		upager_stats_t s;
		if (getenv("FILESCAN_STATS") && upager_stats(p, &s) == 0)
			fprintf(stderr,
				"major faults %" PRIu64 ", readahead pages %" PRIu64
				", writebacks %" PRIu64 "\n",
				s.faults_major, s.readahead_pages, s.writebacks);
		if ((err = upager_unmap(p, d)) < 0 || (err = upager_close(p)) < 0) {
			fprintf(stderr, "filescan: %s\n", upager_strerror(err));
			return 1;
		}
	}
	close(fd);
	return 0;
}
