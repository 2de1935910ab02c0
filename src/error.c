// SPDX-License-Identifier: MIT
/*
 * Error codes, messages and the small async-signal-safe formatter the fault
 * path uses: a fault that cannot be resolved is reported from a signal
 * handler or a pager thread, where stdio and malloc are off limits.
 */
#include "internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static __thread char last_error[1024];

int upager__fail(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	return err;
}

void upager__clear_error(void)
{
	last_error[0] = '\0';
}

UPAGER_API const char *upager_last_error(void)
{
	return last_error;
}

#define STR_(x) #x
#define STR(x) STR_(x)

UPAGER_API const char *upager_version(void)
{
	return STR(UPAGER_VERSION_MAJOR) "." STR(UPAGER_VERSION_MINOR) "." STR(
		UPAGER_VERSION_PATCH);
}

UPAGER_API const char *upager_strerror(int err)
{
	switch (err) {
	case 0:
		return "success";
	case UPAGER_EPAGESIZE:
		return "page size must be a power of two from 4 KiB to 2 MiB";
	case UPAGER_EBUDGET:
		return "RAM budget too small (at least 16 pages)";
	case UPAGER_ESWAPPATH:
		return "swap path cannot be opened for reading and writing";
	case UPAGER_EPOLICY:
		return "unknown eviction policy or bad policy parameters";
	case UPAGER_EBACKEND:
		return "unknown fault backend, or the backend asked for cannot run here";
	case UPAGER_EMODE:
		return "unknown fault mode (transparent or fast)";
	case UPAGER_EENV:
		return "an UPAGER_* environment variable has a bad value";
	case UPAGER_ESWAPFULL:
		return "swap full: no free slot for a dirty page";
	case UPAGER_ENOREGION:
		return "address is not in a region of this pager";
	case UPAGER_ECONFIG:
		return "configuration value out of range";
	case UPAGER_EMAPCOUNT:
		return "configuration would exceed vm.max_map_count";
	case UPAGER_EPOISON:
		return "page lost to an earlier I/O error";
	case UPAGER_EORIGIN:
		return "the snapshot's region has been unmapped";
	case UPAGER_ESNAPSHOT:
		return "the address is a snapshot's view: use the upager_snapshot_* calls";
	}
	if (err < 0 && err > -4096) {
		const char *s = strerrordesc_np(-err);
		if (s)
			return s;
	}
	return "unknown error";
}

void as_puts(struct asbuf *b, const char *s)
{
	while (*s && b->len + 1 < b->cap)
		b->buf[b->len++] = *s++;
	b->buf[b->len] = '\0';
}

void as_hex(struct asbuf *b, uint64_t v)
{
	char tmp[19];
	int i = sizeof(tmp) - 1;

	tmp[i] = '\0';
	do {
		tmp[--i] = "0123456789abcdef"[v & 15];
		v >>= 4;
	} while (v);
	tmp[--i] = 'x';
	tmp[--i] = '0';
	as_puts(b, tmp + i);
}

void as_dec(struct asbuf *b, uint64_t v)
{
	char tmp[21];
	int i = sizeof(tmp) - 1;

	tmp[i] = '\0';
	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	as_puts(b, tmp + i);
}

/* Heap sort: qsort() may call malloc (glibc's merge sort does for
 * arrays over a few KiB), which a fault in a signal handler must not. */
static void sort_swap(char *a, char *b, size_t size)
{
	/* The callers' records are structs of whole words: swapping them a
	 * word at a time, not a byte, is what keeps the evictor's sort of a
	 * batch off its profile. */
	if (!(size % 8) && !((uintptr_t)a % 8) && !((uintptr_t)b % 8)) {
		uint64_t *x = (uint64_t *)a, *y = (uint64_t *)b;

		for (size_t i = 0; i < size / 8; i++) {
			uint64_t t = x[i];
			x[i] = y[i];
			y[i] = t;
		}
		return;
	}
	while (size--) {
		char t = *a;
		*a++ = *b;
		*b++ = t;
	}
}

static void sort_sift(char *base, size_t root, size_t n, size_t size,
		      int (*cmp)(const void *, const void *))
{
	for (;;) {
		size_t child = 2 * root + 1;
		if (child >= n)
			return;
		if (child + 1 < n && cmp(base + child * size, base + (child + 1) * size) < 0)
			child++;
		if (cmp(base + root * size, base + child * size) >= 0)
			return;
		sort_swap(base + root * size, base + child * size, size);
		root = child;
	}
}

void upager__sort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
	char *b = base;
	size_t i = 1;

	/* Victims and aged pages of a sequential pass come in page order
	 * already; a heap sort would still take n log n steps on them. */
	while (i < n && cmp(b + (i - 1) * size, b + i * size) <= 0)
		i++;
	if (i >= n)
		return;
	for (size_t k = n / 2; k-- > 0;)
		sort_sift(b, k, n, size, cmp);
	for (size_t end = n; end > 1; end--) {
		sort_swap(b, b + (end - 1) * size, size);
		sort_sift(b, 0, end - 1, size, cmp);
	}
}

void upager__as_write(const char *s)
{
	size_t len = 0, off = 0;

	while (s[len])
		len++;
	while (off < len) {
		ssize_t w = write(STDERR_FILENO, s + off, len - off);
		if (w <= 0)
			return;
		off += (size_t)w;
	}
}

static const char *fault_cause(int err)
{
	switch (err) {
	case UPAGER_ESWAPFULL:
		return "swap full: no free slot to evict a dirty page into";
	case UPAGER_EPOISON:
		return "page lost to an earlier swap I/O error";
	case -ENOMEM:
		return "out of memory for page-table metadata";
	case -EIO:
		return "swap I/O error (EIO)";
	case -ENOSPC:
		return "swap device out of space (ENOSPC)";
	case -EBUSY:
		return "no frame could be freed (every resident page is busy)";
	}
	return upager_strerror(err);
}

void upager__report_fault_error(struct region *r, uintptr_t addr, int err)
{
	struct upager *p = r->p;
	char buf[320];
	struct asbuf b = { buf, 0, sizeof(buf) };
	uint64_t off = (addr - r->base) & ~((uint64_t)p->page_size - 1);
	const char *cause = fault_cause(err);

	/* A file region's page comes from its file, or (private, written)
	 * from swap; the error does not say which. */
	if (err == -EIO && region_file_page(r, off >> p->page_shift))
		cause = "I/O error (EIO) reading the page from the region's file or swap";

	if (p->cfg.on_error) {
		upager_error_info_t info = {
			.err = err,
			.region = (void *)r->base,
			.region_len = r->len,
			.page_offset = off,
			.fault_addr = (void *)addr,
			.cause = cause,
		};
		p->cfg.on_error(p->cfg.on_error_arg, &info);
	}
	as_puts(&b, "upager: SIGBUS at ");
	as_hex(&b, addr);
	as_puts(&b, ": region ");
	as_hex(&b, r->base);
	as_puts(&b, " (");
	as_dec(&b, r->len);
	as_puts(&b, " bytes), page offset ");
	as_hex(&b, off);
	as_puts(&b, ": ");
	as_puts(&b, cause);
	as_puts(&b, "\n");
	ssize_t unused = write(STDERR_FILENO, buf, b.len);
	(void)unused;
}

uint64_t upager__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void upager__record_latency(struct upager *p, uint64_t ns)
{
	unsigned k = ns ? 63 - (unsigned)__builtin_clzll(ns) : 0;

	if (k >= UPAGER_LATENCY_BUCKETS)
		k = UPAGER_LATENCY_BUCKETS - 1;
	STAT_INC(p, latency_hist[k]);
}
