// SPDX-License-Identifier: MIT
/*
 * File regions (upager_map_file, upager_sync), on every backend and mode:
 * - shared: random read-modify-write of a file 4x the budget through the
 *   region, then sync and unmap; the file equals a shadow copy;
 *   upager_close() alone writes back too;
 * - private: the program reads its own writes back after eviction, the
 *   file does not change;
 * - the file's end: the last partial page and pages past the end read as
 *   zero, the file keeps its size; a file that shrank gives SIGBUS, and
 *   a shared region writes nothing back past its new end;
 * - bad arguments give their documented codes; RDONLY stores give SIGSEGV;
 * - injected I/O errors (white-box): upager_sync() reports a failed write
 *   once and loses nothing, a failed read is SIGBUS with a message;
 * - a sequential scan is read ahead, WILLNEED reads file pages in.
 */
#include "testutil.h"
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PS 4096u
#define BUDGET_PAGES 32u
#define FILE_PAGES (4 * BUDGET_PAGES)

static const struct test_backend *current;
static const char *path;


static int make_file(size_t bytes, unsigned char *shadow, uint64_t seed)
{
	return tu_data_file("filemap-test", shadow, bytes, &seed, &path);
}

static void check_file(int fd, const unsigned char *shadow, size_t bytes, const char *what)
{
	tu_expect_file(fd, shadow, bytes, current->label, what);
}

static upager_t *open_pager(void)
{
	return tu_file_pager(current, BUDGET_PAGES * PS);
}

static void shared_rmw(void)
{
	size_t bytes = FILE_PAGES * PS;
	unsigned char *shadow = malloc(bytes);
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	unsigned char *a;
	upager_stats_t st;

	CHECK(shadow);
	int fd = make_file(bytes, shadow, 1);
	upager_t *p = open_pager();
	CHECK_OK(upager_map_file(p, fd, 0, bytes, UPAGER_MAP_SHARED, (void **)&a));
	/* Every page as the file has it. */
	for (size_t i = 0; i < bytes; i += 509)
		if (a[i] != shadow[i])
			FAILF("%s: byte %zu reads %#x, file has %#x", current->label, i, a[i],
			      shadow[i]);
	for (int round = 0; round < 3; round++) {
		for (int k = 0; k < 3000; k++) {
			size_t i = rng_next(&seed) % (bytes - 8);
			uint64_t v;
			memcpy(&v, a + i, 8);
			v = v * 31 + (uint64_t)k;
			memcpy(a + i, &v, 8);
			memcpy(shadow + i, &v, 8);
		}
		/* A page of zeros must reach the file too. */
		size_t zp = rng_next(&seed) % FILE_PAGES;
		memset(a + zp * PS, 0, PS);
		memset(shadow + zp * PS, 0, PS);
		if (round == 1)
			CHECK_OK(upager_sync(p, a, bytes));
	}
	/* The region reads what was written, after evictions. */
	for (size_t i = 0; i < bytes; i += 61)
		if (a[i] != shadow[i])
			FAILF("%s: byte %zu reads %#x, wrote %#x", current->label, i, a[i],
			      shadow[i]);
	/* DONTNEED keeps what was written: it reads back from the file. */
	a[3 * PS + 11] ^= 0xff;
	shadow[3 * PS + 11] ^= 0xff;
	CHECK_OK(upager_advise(p, a + 3 * PS, PS, UPAGER_ADVICE_DONTNEED));
	CHECK_EQ(a[3 * PS + 11], shadow[3 * PS + 11]);
	CHECK_OK(upager_sync(p, a + PS, bytes - 2 * PS));
	CHECK_OK(upager_stats(p, &st));
	CHECK_CMP(st.writebacks, >, 0);
	CHECK_CMP(st.faults_major, >, FILE_PAGES); /* pages came back from the file */
	for (int k = 0; k < 500; k++) {            /* dirty again, left for unmap */
		size_t i = rng_next(&seed) % bytes;
		a[i] ^= 0x5a;
		shadow[i] ^= 0x5a;
	}
	CHECK_OK(upager_unmap(p, a));
	check_file(fd, shadow, bytes, "after sync and unmap");

	/* upager_close() without unmap writes back too. */
	CHECK_OK(upager_map_file(p, fd, PS, bytes - PS, UPAGER_MAP_SHARED, (void **)&a));
	CHECK_EQ(a[0], shadow[PS]); /* offset: page 1 of the file */
	for (size_t pg = 0; pg < FILE_PAGES - 1; pg += 3) {
		a[pg * PS + 7] = (unsigned char)pg;
		shadow[PS + pg * PS + 7] = (unsigned char)pg;
	}
	CHECK_OK(upager_close(p));
	check_file(fd, shadow, bytes, "after close");
	close(fd);
	free(shadow);
}

static void private_map(void)
{
	size_t bytes = FILE_PAGES * PS;
	unsigned char *shadow = malloc(bytes), *mine = malloc(bytes);
	uint64_t seed = 12345;
	unsigned char *a;

	CHECK(shadow && mine);
	int fd = make_file(bytes, shadow, 2);
	memcpy(mine, shadow, bytes);
	upager_t *p = open_pager();
	CHECK_OK(upager_map_file(p, fd, 0, bytes, UPAGER_MAP_PRIVATE, (void **)&a));
	for (int k = 0; k < 4000; k++) {
		size_t i = rng_next(&seed) % bytes;
		a[i] += 1;
		mine[i] += 1;
	}
	memset(a + 5 * PS, 0, PS); /* zeros, not the file's page, come back */
	memset(mine + 5 * PS, 0, PS);
	for (int pass = 0; pass < 2; pass++) /* each pass evicts the others */
		for (size_t i = 0; i < bytes; i += 37)
			if (a[i] != mine[i])
				FAILF("%s: private byte %zu reads %#x, wrote %#x (pass %d)",
				      current->label, i, a[i], mine[i], pass);
	CHECK_OK(upager_sync(p, a, bytes)); /* nothing to do */
	CHECK_OK(upager_unmap(p, a));
	check_file(fd, shadow, bytes, "private map");
	CHECK_OK(upager_close(p));
	close(fd);
	free(shadow);
	free(mine);
}

static void file_end(void)
{
	size_t bytes = 2 * PS + 1000; /* the last page is partial */
	unsigned char shadow[3 * PS];
	unsigned char *a;

	int fd = make_file(bytes, shadow, 3);
	upager_t *p = open_pager();
	CHECK_OK(upager_map_file(p, fd, 0, 6 * PS, UPAGER_MAP_SHARED, (void **)&a));
	CHECK_EQ(memcmp(a, shadow, bytes), 0);
	for (size_t i = bytes; i < 6 * PS; i++)
		if (a[i])
			FAILF("%s: byte %zu past the end reads %#x", current->label, i, a[i]);
	a[100] = 0xab;
	shadow[100] = 0xab;
	a[bytes - 1] = 0xcd; /* the file's last byte */
	shadow[bytes - 1] = 0xcd;
	a[bytes + 5] = 0xee;  /* past the end, in its last page */
	a[4 * PS + 9] = 0x77; /* a page wholly past the end: anonymous */
	CHECK_OK(upager_sync(p, a, 6 * PS));
	check_file(fd, shadow, bytes, "end, after sync"); /* and it did not grow */
	CHECK_EQ(a[4 * PS + 9], 0x77);
	CHECK_OK(upager_unmap(p, a));
	check_file(fd, shadow, bytes, "end, after unmap");
	CHECK_OK(upager_close(p));
	close(fd);
}

/* A shared region's writes past the end of a file that shrank are not
 * written back: the file keeps its new size. Buffered (the cut page is
 * written up to the new end) and O_DIRECT (whole pages: a truncation at
 * a page boundary). */
static void shrink_shared(bool direct)
{
	size_t bytes = 4 * PS, cut = direct ? 2 * PS : PS + 100;
	unsigned char shadow[4 * PS];
	unsigned char *a;
	upager_config_t cfg;
	upager_t *p;
	struct stat st;

	int fd = make_file(bytes, shadow, 8);
	test_config(&cfg, current);
	cfg.ram_bytes = BUDGET_PAGES * PS;
	cfg.direct_io = direct;
	CHECK_OK(upager_open(&cfg, &p));
	CHECK_OK(upager_map_file(p, fd, 0, bytes, UPAGER_MAP_SHARED, (void **)&a));
	for (size_t pg = 0; pg < 4; pg++) {
		a[pg * PS + 50] = (unsigned char)(0x30 + pg);
		shadow[pg * PS + 50] = (unsigned char)(0x30 + pg);
	}
	a[PS + 99] = 0x99;
	shadow[PS + 99] = 0x99;
	CHECK_EQ(ftruncate(fd, (off_t)cut), 0);
	CHECK_OK(upager_sync(p, a, bytes));
	CHECK_EQ(fstat(fd, &st), 0);
	CHECK_EQ(st.st_size, cut);
	check_file(fd, shadow, cut, "shrunk, after sync");
	a[3 * PS + 1] = 1; /* dirty again, past the end: unmap drops it too */
	CHECK_OK(upager_unmap(p, a));
	CHECK_EQ(fstat(fd, &st), 0);
	CHECK_EQ(st.st_size, cut);
	check_file(fd, shadow, cut, "shrunk, after unmap");
	CHECK_OK(upager_close(p));
	close(fd);
}

static void bad_arguments(void)
{
	unsigned char shadow[4 * PS];
	void *a;
	int fd = make_file(sizeof(shadow), shadow, 4);
	upager_t *p = open_pager();

	CHECK_ERR(upager_map_file(p, -1, 0, PS, UPAGER_MAP_SHARED, &a), -EBADF);
	int closed = dup(fd);
	close(closed);
	CHECK_ERR(upager_map_file(p, closed, 0, PS, UPAGER_MAP_PRIVATE, &a), -EBADF);
	CHECK_ERR(upager_map_file(p, fd, 0, PS, 0, &a), -EINVAL);
	CHECK_ERR(upager_map_file(p, fd, 0, PS, UPAGER_MAP_RDONLY, &a), -EINVAL);
	CHECK_ERR(upager_map_file(p, fd, 0, PS, UPAGER_MAP_SHARED | UPAGER_MAP_PRIVATE, &a),
		  -EINVAL);
	CHECK_ERR(upager_map_file(p, fd, 0, PS, UPAGER_MAP_SHARED | 0x100, &a), -EINVAL);
	CHECK_ERR(upager_map_file(p, fd, 100, PS, UPAGER_MAP_SHARED, &a), -EINVAL);
	CHECK_ERR(upager_map_file(p, fd, 0, 0, UPAGER_MAP_SHARED, &a), -EINVAL);
	CHECK(strstr(upager_last_error(), "zero length"));

	int ro = open(path, O_RDONLY | O_CLOEXEC);
	CHECK(ro >= 0);
	CHECK_ERR(upager_map_file(p, ro, 0, PS, UPAGER_MAP_SHARED, &a), -EACCES);
	CHECK(strstr(upager_last_error(), "reading and writing"));
	/* Read-only uses of a read-only descriptor are fine. */
	CHECK_OK(upager_map_file(p, ro, 0, 4 * PS, UPAGER_MAP_SHARED | UPAGER_MAP_RDONLY, &a));
	CHECK_EQ(memcmp(a, shadow, 4 * PS), 0);
	CHECK_OK(upager_unmap(p, a));
	CHECK_OK(upager_map_file(p, ro, 0, 4 * PS, UPAGER_MAP_PRIVATE, &a));
	((unsigned char *)a)[1] = (unsigned char)(shadow[1] + 1);
	CHECK_EQ(((unsigned char *)a)[0], shadow[0]);
	CHECK_OK(upager_unmap(p, a));
	close(ro);
	int wo = open(path, O_WRONLY | O_CLOEXEC);
	CHECK(wo >= 0);
	CHECK_ERR(upager_map_file(p, wo, 0, PS, UPAGER_MAP_PRIVATE, &a), -EACCES);
	close(wo);
	int dir = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(dir >= 0);
	CHECK_ERR(upager_map_file(p, dir, 0, PS, UPAGER_MAP_PRIVATE, &a), -ENODEV);
	close(dir);
	CHECK_OK(upager_close(p));
	check_file(fd, shadow, sizeof(shadow), "bad arguments");
	close(fd);
}

static int child_fd;

static void rdonly_store_child(void *arg)
{
	unsigned char *a;
	upager_t *p = open_pager();

	(void)arg;
	CHECK_OK(upager_map_file(p, child_fd, 0, 4 * PS, UPAGER_MAP_SHARED | UPAGER_MAP_RDONLY,
				 (void **)&a));
	volatile unsigned char c = a[PS]; /* reads work */
	(void)c;
	((volatile unsigned char *)a)[PS + 1] = 1;
	fprintf(stderr, "the store went through\n");
	_exit(3);
}

static void read_error_child(void *arg)
{
	unsigned char *a;
	upager_t *p = open_pager();

	(void)arg;
	CHECK_OK(upager_map_file(p, child_fd, 0, 4 * PS, UPAGER_MAP_SHARED, (void **)&a));
	p->io.fault_inject_ops = 1u << IO_READ;
	p->io.fault_inject = -EIO;
	volatile unsigned char c = a[2 * PS];
	(void)c;
	upager_stats_t st;
	upager_stats(p, &st);
	fprintf(stderr, "read went through: major %llu zero %llu minor %llu\n",
		(unsigned long long)st.faults_major, (unsigned long long)st.faults_zero,
		(unsigned long long)st.faults_minor);
	_exit(3);
}

static void shrunk_child(void *arg)
{
	unsigned char *a;
	upager_t *p = open_pager();

	(void)arg;
	CHECK_OK(upager_map_file(p, child_fd, 0, 4 * PS, UPAGER_MAP_PRIVATE, (void **)&a));
	/* No readahead: page 3 must still be in the file when it shrinks. */
	CHECK_OK(upager_advise(p, a, 4 * PS, UPAGER_ADVICE_RANDOM));
	volatile unsigned char c = a[0];
	CHECK_EQ(ftruncate(child_fd, PS), 0);
	c = a[3 * PS]; /* its place is past the new end */
	(void)c;
	_exit(3);
}

static void expect_death(void (*fn)(void *), int sig, const char *msg)
{
	char *err;
	int status = run_child(fn, NULL, &err);

	if (!died_of(status, err, sig))
		FAILF("%s: child status %#x, expected signal %d; stderr:\n%s", current->label,
		      status, sig, err);
	if (msg && (!strstr(err, msg) || !strstr(err, "page offset 0x")))
		FAILF("%s: message does not name '%s' and the page:\n%s", current->label, msg, err);
	free(err);
}

static void deaths(void)
{
	unsigned char shadow[4 * PS];

	child_fd = make_file(sizeof(shadow), shadow, 5);
	expect_death(rdonly_store_child, SIGSEGV, NULL);
	expect_death(read_error_child, SIGBUS, "I/O error");
	expect_death(shrunk_child, SIGBUS, "I/O error");
	close(child_fd);
}

static void sync_error(void)
{
	size_t bytes = 8 * PS;
	unsigned char shadow[8 * PS];
	unsigned char *a;

	int fd = make_file(bytes, shadow, 6);
	upager_t *p = open_pager();
	CHECK_OK(upager_map_file(p, fd, 0, bytes, UPAGER_MAP_SHARED, (void **)&a));
	for (size_t pg = 0; pg < 8; pg++) {
		a[pg * PS + 3] = (unsigned char)(0x40 + pg);
		shadow[pg * PS + 3] = (unsigned char)(0x40 + pg);
	}
	p->io.fault_inject_ops = 1u << IO_WRITE;
	p->io.fault_inject = -EIO;
	CHECK_ERR(upager_sync(p, a + 2 * PS, 3 * PS), -EIO);
	CHECK(strstr(upager_last_error(), "upager_sync"));
	p->io.fault_inject = 0;
	/* Reported once; the pages stayed dirty and go out now. */
	CHECK_OK(upager_sync(p, a + 2 * PS, 3 * PS));
	unsigned char mid[3 * PS];
	CHECK_EQ(pread(fd, mid, sizeof(mid), 2 * PS), (ssize_t)sizeof(mid));
	CHECK_EQ(memcmp(mid, shadow + 2 * PS, sizeof(mid)), 0);
	CHECK_OK(upager_unmap(p, a));
	check_file(fd, shadow, bytes, "after a failed sync");
	CHECK_OK(upager_close(p));
	close(fd);
}

static void sequential_scan(void)
{
	size_t bytes = FILE_PAGES * PS;
	unsigned char *shadow = malloc(bytes);
	unsigned char *a;
	upager_stats_t st;

	CHECK(shadow);
	int fd = make_file(bytes, shadow, 7);
	upager_t *p = open_pager();
	CHECK_OK(upager_map_file(p, fd, 0, bytes, UPAGER_MAP_PRIVATE | UPAGER_MAP_RDONLY,
				 (void **)&a));
	uint64_t sum = 0, want = 0;
	for (size_t i = 0; i < bytes; i += 64) {
		sum += a[i];
		want += shadow[i];
	}
	CHECK_EQ(sum, want);
	CHECK_OK(upager_stats(p, &st));
	CHECK_CMP(st.readahead_pages, >, 0);
	CHECK_CMP(st.faults_major, <, FILE_PAGES); /* the windows saved faults */
	/* WILLNEED reads file pages that are not resident (dropped first:
	 * which pages the scan left resident is the policy's choice; so is
	 * whether they stay until the program reads them, at this budget). */
	CHECK_OK(upager_advise(p, a, 8 * PS, UPAGER_ADVICE_DONTNEED));
	CHECK_OK(upager_stats(p, &st));
	uint64_t before = st.readahead_pages;
	CHECK_OK(upager_advise(p, a, 8 * PS, UPAGER_ADVICE_WILLNEED));
	CHECK_OK(upager_stats(p, &st));
	CHECK_CMP(st.readahead_pages, >=, before + 8);
	CHECK_EQ(memcmp(a, shadow, 8 * PS), 0);
	CHECK_OK(upager_close(p));
	close(fd);
	free(shadow);
}

/* A run at the largest window has the stretch after it read by the
 * readahead thread: pages beyond what the program touched and its window
 * become resident without a fault, with the file's contents. */
/* Pages read_start() reads in order: enough for the largest window. */
#define STARTED_PAGES 400

/* A read-only private region of a new file of `pages` pages (contents
 * from seed, copied to *shadow), in a pager with room for windows and
 * readahead stretches, whose first STARTED_PAGES pages have been read in
 * order. Returns the file's descriptor. */
static int read_start(size_t pages, uint64_t seed, unsigned char **shadow, unsigned char **a,
		      upager_t **p)
{
	const size_t bytes = pages * PS;
	upager_config_t cfg;

	*shadow = malloc(bytes);
	CHECK(*shadow);
	int fd = make_file(bytes, *shadow, seed);
	test_config(&cfg, current);
	cfg.ram_bytes = 4 * bytes;
	CHECK_OK(upager_open(&cfg, p));
	CHECK_OK(upager_map_file(*p, fd, 0, bytes, UPAGER_MAP_PRIVATE | UPAGER_MAP_RDONLY,
				 (void **)a));
	uint64_t sum = 0;
	for (size_t pg = 0; pg < STARTED_PAGES; pg++)
		sum += ((volatile unsigned char *)*a)[pg * PS];
	(void)sum;
	return fd;
}

static void readahead_thread(void)
{
	const size_t pages = 2048, bytes = pages * PS, touched = STARTED_PAGES;
	unsigned char *shadow, *a;
	upager_stats_t st;
	upager_t *p;
	int fd = read_start(pages, 11, &shadow, &a, &p);

	/* The thread works in the background: wait for it (not timed). */
	for (int i = 0; i < 500; i++) {
		CHECK_OK(upager_stats(p, &st));
		if (st.resident_pages > touched + 2 * WINDOW_MAX)
			break;
		usleep(10000);
	}
	CHECK_CMP(st.resident_pages, >, touched + 2 * WINDOW_MAX);
	uint64_t majors = st.faults_major;
	CHECK_EQ(memcmp(a, shadow, bytes), 0);
	CHECK_OK(upager_stats(p, &st));
	CHECK_CMP(st.faults_major, <, majors + (pages - touched) / 8);
	CHECK_OK(upager_close(p));
	close(fd);
	free(shadow);
}

/* The first page in [from, n) of the region that is not in memory; n if
 * all are. */
static size_t resident_end(unsigned char *a, size_t from, size_t n)
{
	static unsigned char vec[8192];

	CHECK(n <= sizeof(vec));
	CHECK_EQ(mincore(a, n * PS, vec), 0);
	while (from < n && (vec[from] & 1))
		from++;
	return from;
}

/* resident_end() once it has stopped moving: the readahead threads are
 * done with what was asked for (not timed). */
static size_t settled_end(unsigned char *a, size_t from, size_t n)
{
	size_t end = resident_end(a, from, n), prev;
	int still = 0;

	for (int i = 0; i < 300 && still < 3; i++) {
		usleep(10000);
		prev = end;
		end = resident_end(a, from, n);
		still = end == prev ? still + 1 : 0;
	}
	return end;
}

/* The first page of each stretch the readahead threads read is left
 * unmapped, a marker: the program's minor fault on it asks for a stretch
 * further on. So a program that reads what came in has the next
 * stretches come in ahead of it, without a major fault. */
static void readahead_marker(void)
{
	const size_t pages = 8192, bytes = pages * PS;
	unsigned char *shadow, *a;
	upager_stats_t st0, st1;
	upager_t *p;
	uint64_t sum = 0;
	int fd = read_start(pages, 12, &shadow, &a, &p);

	/* The stretches the run asked for, and no more. */
	size_t end = settled_end(a, STARTED_PAGES, pages);
	CHECK_CMP(end, >, STARTED_PAGES + 2 * WINDOW_MAX);
	CHECK_CMP(end, <, pages);
	CHECK_OK(upager_stats(p, &st0));
	for (size_t pg = STARTED_PAGES; pg < end; pg++)
		sum += ((volatile unsigned char *)a)[pg * PS];
	size_t later = settled_end(a, end, pages);
	CHECK_OK(upager_stats(p, &st1));
	CHECK_CMP(later, >, end + WINDOW_MAX);
	CHECK_EQ(st1.faults_major, st0.faults_major);
	CHECK_CMP(st1.faults_minor, >, st0.faults_minor);
	printf("  %s: stretches read up to page %zu, then (markers) to %zu\n", current->label, end,
	       later);
	(void)sum;
	/* What came in is the file's. */
	CHECK_EQ(memcmp(a, shadow, bytes), 0);
	CHECK_OK(upager_close(p));
	close(fd);
	free(shadow);
}

static void body(const struct test_backend *b, void *arg)
{
	(void)arg;
	current = b;
	shared_rmw();
	private_map();
	file_end();
	shrink_shared(false);
	shrink_shared(true);
	bad_arguments();
	deaths();
	sync_error();
	sequential_scan();
	readahead_thread();
	readahead_marker();
	printf("  %s: ok\n", b->label);
}

int main(void)
{
	return for_each_backend(body, NULL);
}
