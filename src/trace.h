/* SPDX-License-Identifier: MIT */
/*
 * Page reference traces: readers for the formats upager-sim replays and a
 * writer for upager's own compact format (docs/trace-format.md).
 *
 *   lirs    one decimal block number per line; a line holding only '*'
 *           (a checkpoint marker of the LIRS simulator) is skipped
 *   addr    "l|s 0xADDRESS [n]": load or store of a byte address; the page
 *           is address >> page_shift; further fields are ignored
 *   range   "start count [...]": count consecutive pages from start, one
 *           reference each; further fields are ignored
 *   upager  binary: a 16-byte header, then one varint per reference
 *
 * In the text formats blank lines and lines starting with '#' are skipped.
 * Any file may be gzip- or zstd-compressed: the reader looks at the first
 * bytes, not at the name.
 */
#ifndef UPAGER_TRACE_H
#define UPAGER_TRACE_H

#include <stdbool.h>
#include <stdint.h>

enum trace_format { TRACE_LIRS, TRACE_ADDR, TRACE_RANGE, TRACE_UPAGER };

/* Reference flags: bit 0 is the write bit, bits 1-3 say what was seen. */
#define TRACE_WRITE 0x1u
enum trace_kind {
	TRACE_REF = 0,    /* a reference (converted traces, unspecified) */
	TRACE_ZERO = 1,   /* first-touch fault, zero-filled */
	TRACE_MINOR = 2,  /* fault on a page still in its frame */
	TRACE_MAJOR = 3,  /* fault that read the page back from swap */
	TRACE_WP = 4,     /* first write to a clean page */
	TRACE_SAMPLE = 5, /* a reference seen by sampling the accessed bit */
};
#define TRACE_FLAGS(kind, write) ((unsigned)(kind) << 1 | ((write) ? TRACE_WRITE : 0))
#define TRACE_KIND(flags) (((flags) >> 1) & 7u)

#define TRACE_MAGIC "UPAGETRC"
#define TRACE_VERSION 1
#define TRACE_HEADER_SIZE 16

/* "lirs", "addr", "range" or "upager". Returns 0 or -EINVAL. */
int trace_format_parse(const char *name, enum trace_format *out);
const char *trace_format_name(enum trace_format f);

struct trace_reader;

/*
 * Opens path (plain, .gz or .zst) for reading in format fmt. page_shift is
 * the addr format's address-to-page shift (12 for 4 KiB pages). Returns 0
 * and sets *out, or -errno / -EINVAL with a message in upager_last_error().
 */
int trace_open(const char *path, enum trace_format fmt, unsigned page_shift,
	       struct trace_reader **out);
/* The next reference: returns 1 and sets *key and *flags, 0 at the end,
 * or a negative code with a message naming the file and line. */
int trace_next(struct trace_reader *r, uint64_t *key, unsigned *flags);
/* How many lines (text) or records (upager) were read so far. */
uint64_t trace_position(const struct trace_reader *r);
void trace_close(struct trace_reader *r);

struct trace_writer;

/*
 * Creates (or truncates) path and writes the upager-format header.
 * page_shift is recorded in the header for readers. All memory the writer
 * needs is mapped here; nothing is allocated afterwards. Returns 0 and sets
 * *out, or -errno.
 */
int trace_writer_open(const char *path, unsigned page_shift, struct trace_writer **out);
/*
 * Records one reference (flags: TRACE_FLAGS(kind, write)). Thread-safe and
 * async-signal-safe: callable from the fault path and from a SIGBUS
 * handler; it takes a spinlock, copies a few bytes into the writer's
 * buffer, and write(2)s the buffer when it is full. It must not be
 * re-entered on one thread (a signal handler that records must not
 * interrupt a recording on the same thread). errno is preserved. Returns 0,
 * or the sticky -errno of an earlier failed write (the record is dropped).
 */
int trace_writer_ref(struct trace_writer *w, uint64_t key, unsigned flags);
/* Writes out what is buffered. Returns 0 or -errno. */
int trace_writer_flush(struct trace_writer *w);
/* References recorded and dropped (after a write error) so far. */
void trace_writer_counts(struct trace_writer *w, uint64_t *recorded, uint64_t *dropped);
/* Flushes, closes the file and frees the writer. Returns 0 or the first
 * error seen. */
int trace_writer_close(struct trace_writer *w);

#endif /* UPAGER_TRACE_H */
