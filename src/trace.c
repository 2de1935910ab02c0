// SPDX-License-Identifier: MIT
/*
 * Trace readers and the upager-format writer (formats: trace.h and
 * docs/trace-format.md).
 *
 * Reading: the input layer sniffs the first four bytes. The zstd magic
 * (28 b5 2f fd) selects libzstd's streaming decoder; anything else goes
 * through zlib's gzread, which inflates gzip and passes plain files
 * through. On top sits a buffered byte reader, then one parser per
 * format, each yielding one page reference at a time.
 *
 * Writing: the writer lives in one anonymous mapping (never in the
 * process heap, which the preload runner may have moved into a region),
 * holds a spinlock while it appends a varint to its buffer, and flushes
 * with write(2): all of which is allowed in a signal handler.
 */
#include "internal.h"
#include "trace.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

static const char *const format_names[] = {
	[TRACE_LIRS] = "lirs",
	[TRACE_ADDR] = "addr",
	[TRACE_RANGE] = "range",
	[TRACE_UPAGER] = "upager",
};

int trace_format_parse(const char *name, enum trace_format *out)
{
	for (unsigned i = 0; i < ARRAY_SIZE(format_names); i++)
		if (name && !strcmp(name, format_names[i])) {
			*out = (enum trace_format)i;
			return 0;
		}
	return -EINVAL;
}

const char *trace_format_name(enum trace_format f)
{
	return (unsigned)f < ARRAY_SIZE(format_names) ? format_names[f] : "?";
}

/* ---- input: plain, gzip or zstd ---- */

#define INBUF (1u << 17)
#define LINE_MAX_LEN 4096

struct trace_reader {
	enum trace_format fmt;
	unsigned page_shift;
	char path[256];
	int fd;
	gzFile gz;
	ZSTD_DStream *zs;
	ZSTD_inBuffer zin;
	unsigned char *zraw; /* compressed input for zstd */
	bool raw_eof;
	unsigned char buf[INBUF];
	size_t pos, len;
	bool eof;
	uint64_t line;
	/* range: pages still to yield from the current line */
	uint64_t range_next, range_left;
	/* upager */
	uint64_t prev_key;
	char text[LINE_MAX_LEN + 2];
};

static int fail_at(struct trace_reader *r, int err, const char *what)
{
	return upager__fail(err, "%s:%llu: %s", r->path, (unsigned long long)r->line, what);
}

/* Decompresses more zstd input into buf; returns bytes or -errno. */
static ssize_t zstd_fill(struct trace_reader *r, unsigned char *dst, size_t cap)
{
	ZSTD_outBuffer out = { dst, cap, 0 };

	while (out.pos == 0) {
		if (r->zin.pos == r->zin.size) {
			if (r->raw_eof)
				return 0;
			ssize_t n = read(r->fd, r->zraw, ZSTD_DStreamInSize());
			if (n < 0) {
				if (errno == EINTR)
					continue;
				return -errno;
			}
			if (n == 0) {
				r->raw_eof = true;
				continue;
			}
			r->zin = (ZSTD_inBuffer){ r->zraw, (size_t)n, 0 };
		}
		size_t ret = ZSTD_decompressStream(r->zs, &out, &r->zin);
		if (ZSTD_isError(ret))
			return upager__fail(-EBADMSG, "%s: zstd: %s", r->path,
					    ZSTD_getErrorName(ret));
	}
	return (ssize_t)out.pos;
}

/* Refills buf; returns false at the end or on error (*err set). */
static bool refill(struct trace_reader *r, int *err)
{
	ssize_t n;

	if (r->eof)
		return false;
	if (r->zs) {
		n = zstd_fill(r, r->buf, sizeof(r->buf));
	} else {
		int got = gzread(r->gz, r->buf, sizeof(r->buf));
		if (got < 0) {
			int zerr;
			const char *msg = gzerror(r->gz, &zerr);
			n = upager__fail(-EBADMSG, "%s: %s", r->path, msg);
		} else {
			n = got;
		}
	}
	if (n < 0) {
		*err = (int)n;
		r->eof = true;
		return false;
	}
	if (n == 0) {
		r->eof = true;
		return false;
	}
	r->pos = 0;
	r->len = (size_t)n;
	return true;
}

/* Next byte, or -1 at the end; *err set on error. */
static inline int next_byte(struct trace_reader *r, int *err)
{
	if (r->pos == r->len && !refill(r, err))
		return -1;
	return r->buf[r->pos++];
}

int trace_open(const char *path, enum trace_format fmt, unsigned page_shift,
	       struct trace_reader **out)
{
	unsigned char magic[4] = { 0 };
	struct trace_reader *r;
	int err = 0;

	if ((unsigned)fmt >= ARRAY_SIZE(format_names))
		return upager__fail(-EINVAL, "unknown trace format");
	if (page_shift > 40)
		return upager__fail(-EINVAL, "page shift %u is out of range (0..40)", page_shift);
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->fmt = fmt;
	r->page_shift = page_shift;
	snprintf(r->path, sizeof(r->path), "%s", path);
	r->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (r->fd < 0) {
		err = upager__fail(-errno, "cannot open trace %s: %s", path, strerror(errno));
		goto fail;
	}
	if (pread(r->fd, magic, sizeof(magic), 0) == 4 && magic[0] == 0x28 && magic[1] == 0xb5 &&
	    magic[2] == 0x2f && magic[3] == 0xfd) {
		r->zs = ZSTD_createDStream();
		r->zraw = malloc(ZSTD_DStreamInSize());
		if (!r->zs || !r->zraw) {
			err = -ENOMEM;
			goto fail;
		}
		ZSTD_initDStream(r->zs);
	} else {
		int fd2 = dup(r->fd);
		if (fd2 < 0) {
			err = -errno;
			goto fail;
		}
		r->gz = gzdopen(fd2, "rb");
		if (!r->gz) {
			close(fd2);
			err = -ENOMEM;
			goto fail;
		}
		gzbuffer(r->gz, 1 << 17);
	}
	if (fmt == TRACE_UPAGER) {
		unsigned char h[TRACE_HEADER_SIZE];
		for (unsigned i = 0; i < sizeof(h); i++) {
			int c = next_byte(r, &err);
			if (c < 0) {
				if (!err)
					err = upager__fail(-EINVAL,
							   "%s: too short for an upager trace",
							   path);
				goto fail;
			}
			h[i] = (unsigned char)c;
		}
		if (memcmp(h, TRACE_MAGIC, 8)) {
			err = upager__fail(-EINVAL, "%s: not an upager trace (bad magic)", path);
			goto fail;
		}
		if (h[8] != TRACE_VERSION) {
			err = upager__fail(-EINVAL, "%s: upager trace version %u, expected %u",
					   path, h[8], TRACE_VERSION);
			goto fail;
		}
	}
	*out = r;
	return 0;
fail:
	trace_close(r);
	return err;
}

void trace_close(struct trace_reader *r)
{
	if (!r)
		return;
	if (r->gz)
		gzclose(r->gz);
	if (r->zs)
		ZSTD_freeDStream(r->zs);
	free(r->zraw);
	if (r->fd >= 0)
		close(r->fd);
	free(r);
}

uint64_t trace_position(const struct trace_reader *r)
{
	return r->line;
}

/* Reads one line into r->text (without the newline). Returns 1, 0 at the
 * end, or a negative code. */
static int read_line(struct trace_reader *r)
{
	size_t n = 0;
	int err = 0, c;

	for (;;) {
		c = next_byte(r, &err);
		if (c < 0)
			break;
		if (c == '\n')
			break;
		if (n == LINE_MAX_LEN) {
			r->line++;
			return fail_at(r, -EINVAL, "line too long");
		}
		r->text[n++] = (char)c;
	}
	if (err)
		return err;
	if (c < 0 && n == 0)
		return 0;
	if (n && r->text[n - 1] == '\r')
		n--;
	r->text[n] = '\0';
	r->line++;
	return 1;
}

static const char *skip_space(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

static bool is_end(const char *s)
{
	s = skip_space(s);
	return *s == '\0';
}

/* Parses an unsigned number (decimal, or hex with 0x when hex_ok or
 * base 16). Returns the end, or NULL. */
static const char *parse_u64(const char *s, int base, uint64_t *out)
{
	uint64_t v = 0;
	int digits = 0;

	s = skip_space(s);
	if ((base == 16 || base == 0) && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		s += 2;
		base = 16;
	}
	if (base == 0)
		base = 10;
	for (;; s++, digits++) {
		int d;
		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = *s - 'a' + 10;
		else if (base == 16 && *s >= 'A' && *s <= 'F')
			d = *s - 'A' + 10;
		else
			break;
		if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base)
			return NULL;
		v = v * (uint64_t)base + (uint64_t)d;
	}
	if (!digits)
		return NULL;
	*out = v;
	return s;
}

static bool skippable(const char *s)
{
	s = skip_space(s);
	return *s == '\0' || *s == '#';
}

static int next_text(struct trace_reader *r, uint64_t *key, unsigned *flags)
{
	for (;;) {
		if (r->fmt == TRACE_RANGE && r->range_left) {
			*key = r->range_next++;
			*flags = TRACE_FLAGS(TRACE_REF, false);
			r->range_left--;
			return 1;
		}
		int ret = read_line(r);
		if (ret <= 0)
			return ret;
		const char *s = r->text, *end;
		if (skippable(s))
			continue;
		switch (r->fmt) {
		case TRACE_LIRS: {
			const char *t = skip_space(s);
			if (t[0] == '*' && is_end(t + 1))
				continue;
			end = parse_u64(t, 10, key);
			if (!end || !is_end(end))
				return fail_at(r, -EINVAL, "expected one block number");
			*flags = TRACE_FLAGS(TRACE_REF, false);
			return 1;
		}
		case TRACE_ADDR: {
			const char *t = skip_space(s);
			uint64_t addr;
			bool write;
			if ((t[0] == 'l' || t[0] == 'L') && (t[1] == ' ' || t[1] == '\t'))
				write = false;
			else if ((t[0] == 's' || t[0] == 'S') && (t[1] == ' ' || t[1] == '\t'))
				write = true;
			else
				return fail_at(r, -EINVAL,
					       "expected 'l' or 's', an address, a count");
			end = parse_u64(t + 1, 16, &addr);
			if (!end || (*end != '\0' && *end != ' ' && *end != '\t'))
				return fail_at(r, -EINVAL, "bad address (expected hexadecimal)");
			*key = addr >> r->page_shift;
			*flags = TRACE_FLAGS(TRACE_REF, write);
			return 1;
		}
		case TRACE_RANGE: {
			uint64_t start, count;
			end = parse_u64(s, 0, &start);
			if (end && (*end == ' ' || *end == '\t'))
				end = parse_u64(end, 0, &count);
			else
				end = NULL;
			if (!end || (*end != '\0' && *end != ' ' && *end != '\t' && *end != ','))
				return fail_at(r, -EINVAL, "expected 'start count'");
			if (count > UINT64_MAX - start)
				return fail_at(r, -EINVAL, "range wraps around");
			r->range_next = start;
			r->range_left = count; /* a count of 0 yields nothing */
			continue;
		}
		default:
			return fail_at(r, -EINVAL, "not a text format");
		}
	}
}

static int next_upager(struct trace_reader *r, uint64_t *key, unsigned *flags)
{
	unsigned __int128 v = 0;
	int err = 0;

	for (unsigned shift = 0;; shift += 7) {
		int c = next_byte(r, &err);
		if (c < 0) {
			if (err)
				return err;
			if (shift == 0)
				return 0;
			return fail_at(r, -EINVAL, "truncated record");
		}
		if (shift >= 70)
			return fail_at(r, -EINVAL, "record longer than 10 bytes");
		v |= (unsigned __int128)(c & 0x7f) << shift;
		if (!(c & 0x80))
			break;
	}
	if (v >> 68)
		return fail_at(r, -EINVAL, "record out of range");
	r->line++;
	uint64_t zz = (uint64_t)(v >> 4);
	int64_t delta = (int64_t)(zz >> 1) ^ -(int64_t)(zz & 1);
	r->prev_key += (uint64_t)delta;
	*key = r->prev_key;
	*flags = (unsigned)(v & 0xf);
	return 1;
}

int trace_next(struct trace_reader *r, uint64_t *key, unsigned *flags)
{
	if (r->fmt == TRACE_UPAGER)
		return next_upager(r, key, flags);
	return next_text(r, key, flags);
}

/* ---- the writer ---- */

#define WBUF (64u * 1024)

struct trace_writer {
	atomic_flag lock;
	int fd;
	int err; /* sticky -errno */
	uint64_t prev_key;
	uint64_t recorded, dropped;
	size_t len;
	size_t map_len;
	unsigned char buf[WBUF];
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

static void w_lock(struct trace_writer *w)
{
	unsigned spins = 0;

	while (atomic_flag_test_and_set_explicit(&w->lock, memory_order_acquire)) {
		if (++spins % 128 == 0)
			sched_yield();
		else
			cpu_relax();
	}
}

static void w_unlock(struct trace_writer *w)
{
	atomic_flag_clear_explicit(&w->lock, memory_order_release);
}

static int write_all(int fd, const unsigned char *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Under the lock. */
static int w_flush_locked(struct trace_writer *w)
{
	if (w->len && !w->err) {
		w->err = write_all(w->fd, w->buf, w->len);
		w->len = 0;
	}
	return w->err;
}

int trace_writer_open(const char *path, unsigned page_shift, struct trace_writer **out)
{
	size_t len = (sizeof(struct trace_writer) + 4095) & ~(size_t)4095;
	unsigned char header[TRACE_HEADER_SIZE] = { 0 };
	struct trace_writer *w;
	int err;

	w = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (w == MAP_FAILED)
		return -errno;
	atomic_flag_clear(&w->lock);
	w->map_len = len;
	w->fd = upager__fd_keep(open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
	if (w->fd < 0) {
		err = upager__fail(-errno, "cannot create trace %s: %s", path, strerror(errno));
		munmap(w, len);
		return err;
	}
	memcpy(header, TRACE_MAGIC, 8);
	header[8] = TRACE_VERSION;
	header[9] = (unsigned char)page_shift;
	err = write_all(w->fd, header, sizeof(header));
	if (err) {
		upager__fd_close(w->fd);
		munmap(w, len);
		return err;
	}
	*out = w;
	return 0;
}

int trace_writer_ref(struct trace_writer *w, uint64_t key, unsigned flags)
{
	unsigned char rec[10];
	unsigned n = 0;
	int saved_errno = errno, ret;

	w_lock(w);
	if (w->err) {
		w->dropped++;
		ret = w->err;
		goto out;
	}
	int64_t delta = (int64_t)(key - w->prev_key);
	uint64_t zz = ((uint64_t)delta << 1) ^ (uint64_t)(delta >> 63);
	unsigned __int128 v = (unsigned __int128)zz << 4 | (flags & 0xf);
	do {
		unsigned char b = (unsigned char)(v & 0x7f);
		v >>= 7;
		rec[n++] = v ? (unsigned char)(b | 0x80) : b;
	} while (v);
	if (w->len + n > sizeof(w->buf) && w_flush_locked(w)) {
		w->dropped++;
		ret = w->err;
		goto out;
	}
	memcpy(w->buf + w->len, rec, n);
	w->len += n;
	w->prev_key = key;
	w->recorded++;
	ret = 0;
out:
	w_unlock(w);
	errno = saved_errno;
	return ret;
}

int trace_writer_flush(struct trace_writer *w)
{
	int ret;

	w_lock(w);
	ret = w_flush_locked(w);
	w_unlock(w);
	return ret;
}

void trace_writer_counts(struct trace_writer *w, uint64_t *recorded, uint64_t *dropped)
{
	w_lock(w);
	*recorded = w->recorded;
	*dropped = w->dropped;
	w_unlock(w);
}

int trace_writer_close(struct trace_writer *w)
{
	int ret;

	if (!w)
		return 0;
	ret = trace_writer_flush(w);
	if (upager__fd_close(w->fd) && !ret)
		ret = -errno;
	munmap(w, w->map_len);
	return ret;
}
