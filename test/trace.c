// SPDX-License-Identifier: MIT
/*
 * Trace readers and writer: each format, plain, gzip and zstd, with its
 * special lines ('*' markers, comments, range expansion, l/s write bits,
 * the page shift), errors that name the line, a real LIRS trace from
 * test/data, and the upager writer -> reader round trip, also with two
 * threads recording at once.
 */
#include "testutil.h"
#include "internal.h"
#include "trace.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

static char dir[] = "/tmp/upager-trace-XXXXXX";

enum comp { PLAIN, GZ, ZST };

/* Writes text to dir/name, compressed as asked; returns the path. */
static const char *put(const char *name, enum comp c, const void *data, size_t len)
{
	static char path[256];

	snprintf(path, sizeof(path), "%s/%s%s", dir, name,
		 c == GZ    ? ".gz"
		 : c == ZST ? ".zst"
			    : "");
	if (c == GZ) {
		gzFile g = gzopen(path, "wb");
		CHECK(g);
		CHECK_EQ(gzwrite(g, data, (unsigned)len), (int)len);
		CHECK_EQ(gzclose(g), Z_OK);
		return path;
	}
	const void *out = data;
	size_t outlen = len;
	void *z = NULL;
	if (c == ZST) {
		z = malloc(ZSTD_compressBound(len));
		CHECK(z);
		outlen = ZSTD_compress(z, ZSTD_compressBound(len), data, len, 3);
		CHECK(!ZSTD_isError(outlen));
		out = z;
	}
	FILE *f = fopen(path, "wb");
	CHECK(f);
	CHECK_EQ(fwrite(out, 1, outlen, f), outlen);
	CHECK_EQ(fclose(f), 0);
	free(z);
	return path;
}

/* Reads the whole file: keys and flags into the arrays, returns count. */
static size_t read_all(const char *path, enum trace_format fmt, unsigned shift, uint64_t *keys,
		       unsigned *flags, size_t max)
{
	struct trace_reader *r;
	size_t n = 0;
	uint64_t k;
	unsigned f;
	int ret;

	CHECK_OK(trace_open(path, fmt, shift, &r));
	while ((ret = trace_next(r, &k, &f)) == 1) {
		CHECK_CMP(n, <, max);
		keys[n] = k;
		flags[n++] = f;
	}
	if (ret < 0)
		FAILF("%s: %s", path, upager_last_error());
	trace_close(r);
	return n;
}

/* Expects reading to fail with a message containing want. */
static void read_fails(const char *path, enum trace_format fmt, const char *want)
{
	struct trace_reader *r;
	uint64_t k;
	unsigned f;
	int ret;

	ret = trace_open(path, fmt, 12, &r);
	if (ret == 0) {
		while ((ret = trace_next(r, &k, &f)) == 1)
			;
		trace_close(r);
	}
	CHECK_CMP(ret, <, 0);
	if (!strstr(upager_last_error(), want))
		FAILF("error '%s' does not mention '%s'", upager_last_error(), want);
}

static void test_text_formats(void)
{
	static const char lirs[] = "# comment\n5\n*\n  7 \n\n*\n123456789012\n5\r\n";
	static const char addr[] =
		"l 0x1fffff50 1\ns 0x1fffff58 1\nl 0x2000 6\nL 0xFFF 2\ns 12345 0\n";
	static const char range[] = "100 3 extra fields\n7 1\n\n0x10 2 x\n5 0\n";
	uint64_t k[16];
	unsigned f[16];

	for (enum comp c = PLAIN; c <= ZST; c++) {
		/* lirs: '*' lines, blank lines and comments skipped. */
		size_t n = read_all(put("l", c, lirs, strlen(lirs)), TRACE_LIRS, 12, k, f, 16);
		CHECK_EQ(n, 4);
		CHECK_EQ(k[0], 5);
		CHECK_EQ(k[1], 7);
		CHECK_EQ(k[2], 123456789012ULL);
		CHECK_EQ(k[3], 5);
		CHECK_EQ(f[0], TRACE_FLAGS(TRACE_REF, false));

		/* addr: page = address >> 12; s = write. */
		n = read_all(put("a", c, addr, strlen(addr)), TRACE_ADDR, 12, k, f, 16);
		CHECK_EQ(n, 5);
		CHECK_EQ(k[0], 0x1fffff50ULL >> 12);
		CHECK_EQ(f[0] & TRACE_WRITE, 0);
		CHECK_EQ(f[1] & TRACE_WRITE, TRACE_WRITE);
		CHECK_EQ(k[2], 2);
		CHECK_EQ(k[3], 0);
		CHECK_EQ(k[4], 0x12345 >> 12);
		/* ... or another page size. */
		n = read_all(put("a", c, addr, strlen(addr)), TRACE_ADDR, 16, k, f, 16);
		CHECK_EQ(k[0], 0x1fffff50ULL >> 16);

		/* range: 100 3 -> 100,101,102; 7 1 -> 7; 0x10 2 -> 16,17;
		 * 5 0 -> nothing. */
		n = read_all(put("r", c, range, strlen(range)), TRACE_RANGE, 12, k, f, 16);
		CHECK_EQ(n, 6);
		CHECK_EQ(k[0], 100);
		CHECK_EQ(k[1], 101);
		CHECK_EQ(k[2], 102);
		CHECK_EQ(k[3], 7);
		CHECK_EQ(k[4], 16);
		CHECK_EQ(k[5], 17);
	}

	/* Bad input names the file and line. */
	read_fails(put("bad1", PLAIN, "1\n2\nx3\n", 7), TRACE_LIRS,
		   ":3: expected one block number");
	read_fails(put("bad2", GZ, "l 0x10 1\nq 0x20 1\n", 18), TRACE_ADDR,
		   ":2: expected 'l' or 's'");
	read_fails(put("bad3", ZST, "1 2\n3\n", 6), TRACE_RANGE, ":2: expected 'start count'");
	read_fails(put("bad4", PLAIN, "l 0xZZ 1\n", 9), TRACE_ADDR, "bad address");
	read_fails("/nonexistent/trace", TRACE_LIRS, "cannot open trace");
	read_fails(put("bad5", PLAIN, "not a trace at all", 18), TRACE_UPAGER, "bad magic");
	/* A damaged zstd stream is an error, not an early end. */
	static const unsigned char junk[] = { 0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3, 4, 5, 6, 7, 8 };
	read_fails(put("bad6", PLAIN, junk, sizeof(junk)), TRACE_LIRS, "zstd");

	enum trace_format fmt;
	CHECK_EQ(trace_format_parse("range", &fmt), 0);
	CHECK_EQ(fmt, TRACE_RANGE);
	CHECK_EQ(trace_format_parse("csv", &fmt), -EINVAL);
}

static void test_lirs_file(void)
{
	const char *srcdir = getenv("srcdir");
	char path[512];
	static uint64_t k[10000];
	static unsigned f[10000];

	/* cpp: 9047 references; the first are 0..4. */
	snprintf(path, sizeof(path), "%s/test/data/cpp.trace.gz", srcdir ? srcdir : ".");
	size_t n = read_all(path, TRACE_LIRS, 12, k, f, 10000);
	CHECK_EQ(n, 9047);
	for (unsigned i = 0; i < 5; i++)
		CHECK_EQ(k[i], i);
}

/* The writer: random keys (large jumps both ways, region-like keys) with
 * every kind and the write bit, read back exactly. */
static void test_roundtrip(void)
{
	enum { N = 50000 };
	static uint64_t keys[N], rk[N + 1];
	static unsigned flags[N], rf[N + 1];
	char path[256];
	struct trace_writer *w;
	uint64_t s = tu_rng(42), rec, drop;

	snprintf(path, sizeof(path), "%s/rt.upt", dir);
	CHECK_OK(trace_writer_open(path, 12, &w));
	for (size_t i = 0; i < N; i++) {
		uint64_t r = rng_next(&s);
		switch (r % 4) {
		case 0:
			keys[i] = i ? keys[i - 1] + 1 : 0;
			break; /* sequential */
		case 1:
			keys[i] = ((r >> 8) % 16) << 44 | ((r >> 20) % 4096);
			break; /* regions */
		case 2:
			keys[i] = r;
			break; /* anything */
		default:
			keys[i] = i ? keys[i - 1] - (r >> 60) : 7;
			break; /* backwards */
		}
		if (i >= N - 3) /* the extremes of the delta */
			keys[i] = i == N - 2 ? UINT64_MAX : 0;
		flags[i] = TRACE_FLAGS((r >> 3) % 6, (r >> 7) & 1);
		CHECK_OK(trace_writer_ref(w, keys[i], flags[i]));
	}
	trace_writer_counts(w, &rec, &drop);
	CHECK_EQ(rec, N);
	CHECK_EQ(drop, 0);
	CHECK_OK(trace_writer_close(w));

	size_t n = read_all(path, TRACE_UPAGER, 12, rk, rf, N + 1);
	CHECK_EQ(n, N);
	for (size_t i = 0; i < N; i++) {
		if (rk[i] != keys[i] || rf[i] != flags[i])
			FAILF("record %zu: read %llx/%u, wrote %llx/%u", i,
			      (unsigned long long)rk[i], rf[i], (unsigned long long)keys[i],
			      flags[i]);
	}
	CHECK_EQ(rk[N - 2], UINT64_MAX);
	/* Compact: a sequential key with its flags fits in one byte. */
	CHECK_OK(trace_writer_open(path, 12, &w));
	for (uint64_t i = 0; i < 1000; i++)
		CHECK_OK(trace_writer_ref(w, i, TRACE_FLAGS(TRACE_MINOR, 1)));
	CHECK_OK(trace_writer_close(w));
	FILE *fp = fopen(path, "rb");
	CHECK(fp);
	fseek(fp, 0, SEEK_END);
	CHECK_EQ(ftell(fp), TRACE_HEADER_SIZE + 1000);
	fclose(fp);
	/* A truncated record is reported. */
	CHECK_EQ(truncate(path, TRACE_HEADER_SIZE + 999), 0);
	fp = fopen(path, "ab");
	fputc(0x80, fp);
	fclose(fp);
	read_fails(path, TRACE_UPAGER, "truncated record");
}

struct wthread {
	struct trace_writer *w;
	uint64_t base;
};

static void *writer_thread(void *arg)
{
	struct wthread *t = arg;

	for (uint64_t i = 0; i < 100000; i++)
		CHECK_OK(trace_writer_ref(t->w, t->base + i, TRACE_FLAGS(TRACE_SAMPLE, i & 1)));
	return NULL;
}

/* Two threads at once: every record arrives whole, none lost. */
static void test_threads(void)
{
	static uint64_t k[200001];
	static unsigned f[200001];
	char path[256];
	pthread_t tid[2];
	struct wthread t[2];
	struct trace_writer *w;

	snprintf(path, sizeof(path), "%s/mt.upt", dir);
	CHECK_OK(trace_writer_open(path, 12, &w));
	for (int i = 0; i < 2; i++) {
		t[i] = (struct wthread){ w, (uint64_t)i << 40 };
		CHECK_EQ(pthread_create(&tid[i], NULL, writer_thread, &t[i]), 0);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(tid[i], NULL);
	CHECK_OK(trace_writer_close(w));
	size_t n = read_all(path, TRACE_UPAGER, 12, k, f, 200001);
	CHECK_EQ(n, 200000);
	/* Each thread's keys appear in its own order, all of them. */
	uint64_t next[2] = { 0, 0 };
	for (size_t i = 0; i < n; i++) {
		int th = (int)(k[i] >> 40);
		CHECK(th == 0 || th == 1);
		CHECK_EQ(k[i] & ((1ULL << 40) - 1), next[th]);
		CHECK_EQ(TRACE_KIND(f[i]), TRACE_SAMPLE);
		next[th]++;
	}
	CHECK_EQ(next[0], 100000);
	CHECK_EQ(next[1], 100000);
}

int main(void)
{
	CHECK(mkdtemp(dir));
	test_text_formats();
	test_lirs_file();
	test_roundtrip();
	test_threads();
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK_EQ(system(cmd), 0);
	printf("trace: all checks passed\n");
	return 0;
}
