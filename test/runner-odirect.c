// SPDX-License-Identifier: MIT
/*
 * O_DIRECT reads into paged memory while other memory is being evicted
 * (test/runner.sh): the device writes the data into the buffer's pages
 * while the kernel holds them pinned, not through the page tables, so a
 * page the pager evicted during the read would lose what the read put
 * there. A buffer three times the runner's budget takes 2 MiB reads at
 * random places, a second thread writes pages all over another 48 MiB
 * meanwhile, and every read is checked right after it returns. Prints the
 * same lines plain and under upager-run; where the file system refuses
 * O_DIRECT it says so and checks buffered reads instead.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FILE_BYTES (32u << 20)
#define BUF_BYTES (48u << 20)
#define CHURN_BYTES (48u << 20)
#define CHUNK (2u << 20)
#define READS 60

static atomic_bool stop;
static char path[64];

static unsigned char file_byte(uint64_t off)
{
	return (unsigned char)((off * 2654435761u) >> 13);
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void *churn(void *arg)
{
	unsigned char *m = malloc(CHURN_BYTES);
	uint64_t s = 88172645463325252ull;

	(void)arg;
	if (!m)
		abort();
	while (!atomic_load(&stop))
		m[(rnd(&s) % (CHURN_BYTES / 4096)) * 4096] = (unsigned char)s;
	free(m);
	return NULL;
}

static void cleanup(void)
{
	unlink(path);
}

int main(void)
{
	unsigned char *block = malloc(1 << 20), *buf;
	snprintf(path, sizeof(path), "runner-odirect-%d.dat", (int)getpid());
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || !block) {
		perror(path);
		return 1;
	}
	atexit(cleanup);
	for (uint64_t off = 0; off < FILE_BYTES; off += 1 << 20) {
		for (unsigned i = 0; i < 1 << 20; i++)
			block[i] = file_byte(off + i);
		if (pwrite(fd, block, 1 << 20, (off_t)off) != 1 << 20) {
			perror("pwrite");
			return 1;
		}
	}
	free(block);
	fsync(fd);
	close(fd);
	fd = open(path, O_RDONLY | O_DIRECT);
	if (fd < 0) {
		fd = open(path, O_RDONLY);
		printf("no O_DIRECT here: buffered reads\n");
	}
	if (fd < 0 || posix_memalign((void **)&buf, 4096, BUF_BYTES)) {
		perror("open or posix_memalign");
		return 1;
	}
	memset(buf, 0, BUF_BYTES);

	pthread_t t;
	pthread_create(&t, NULL, churn, NULL);
	uint64_t s = 12345;
	long wrong = 0;
	for (int i = 0; i < READS; i++) {
		uint64_t off = (rnd(&s) % (FILE_BYTES / CHUNK)) * CHUNK;
		size_t at = (rnd(&s) % (BUF_BYTES / CHUNK)) * CHUNK;
		if (pread(fd, buf + at, CHUNK, (off_t)off) != CHUNK) {
			perror("pread");
			return 1;
		}
		for (size_t b = 0; b < CHUNK; b += 256)
			if (buf[at + b] != file_byte(off + b) && wrong++ < 3)
				fprintf(stderr, "read %d: byte %zu is %u, the file has %u\n", i, b,
					buf[at + b], file_byte(off + b));
	}
	atomic_store(&stop, true);
	pthread_join(t, NULL);
	close(fd);
	printf("%d reads of %u KiB checked, %ld bytes wrong\n", READS, CHUNK >> 10, wrong);
	return wrong != 0;
}
