// SPDX-License-Identifier: MIT
/*
 * The swap area: a file or block device cut into page-sized slots.
 *
 * Which file: none given -> an unnamed file (O_TMPFILE, or created and
 * unlinked at once) with mode 0600 in $TMPDIR; a directory -> an unnamed
 * file there; a block device -> the device; anything else -> that file,
 * created if missing and truncated to zero when the pager closes.
 *
 * Capacity: swap_max if given, else the device's size or the file
 * system's free space at open. The slot tables are reserved for that
 * capacity with MAP_NORESERVE, so only the part in use costs memory.
 *
 * Allocation is next-fit from a cursor: victims written together get
 * adjacent slots, so a batch becomes few large writes. The cursor wraps
 * early (wrap_slot) so that the file stays near the size of what it
 * holds. A two-level bitmap
 * (a bit per slot, and a bit per full 64-slot word) keeps the search
 * short when the area is fragmented. Every slot has a reference count for
 * pages shared copy-on-write; a slot whose write failed stays marked used
 * forever, like a bad block.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define GROW_CHUNK (64ULL << 20)
#define BAD_SLOT_REFS UINT32_MAX

static int open_unnamed(const char *dir, bool direct, bool *got_direct)
{
	int flags = O_RDWR | O_CLOEXEC;
	int fd;

	for (int attempt = 0; attempt < 2; attempt++) {
		bool want_direct = direct && attempt == 0;
		int f = flags | (want_direct ? O_DIRECT : 0);

		fd = open(dir, f | O_TMPFILE, 0600);
		if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == ENOENT)) {
			/* No O_TMPFILE here: create a named file and unlink it at once. */
			char tmpl[4096];
			int n = snprintf(tmpl, sizeof(tmpl), "%s/upager-swap-XXXXXX", dir);
			if (n < 0 || (size_t)n >= sizeof(tmpl))
				return -ENAMETOOLONG;
			fd = mkostemp(tmpl, O_CLOEXEC | (want_direct ? O_DIRECT : 0));
			if (fd >= 0)
				unlink(tmpl);
		}
		if (fd >= 0) {
			*got_direct = want_direct;
			return fd;
		}
		if (errno != EINVAL || !want_direct)
			break; /* EINVAL with O_DIRECT: try again buffered */
	}
	return -errno;
}

static int open_path(const char *path, bool direct, bool *got_direct)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | (direct ? O_DIRECT : 0), 0600);

	*got_direct = direct;
	if (fd < 0 && direct && errno == EINVAL) {
		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		*got_direct = false;
	}
	return fd < 0 ? -errno : fd;
}

int swap_open(struct swap *s, const char *path, uint64_t max_bytes, size_t page_size,
	      bool direct_io)
{
	struct stat st;
	uint64_t capacity;
	int err;

	memset(s, 0, sizeof(*s));
	s->fd = -1;
	s->page_size = page_size;
	pthread_mutex_init(&s->lock, NULL);

	if (!path) {
		const char *tmp = getenv("TMPDIR");
		path = tmp && *tmp ? tmp : "/tmp";
		s->unnamed = true;
	} else if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		s->unnamed = true;
	}
	s->path = strdup(path);
	if (!s->path)
		return -ENOMEM;

	if (s->unnamed)
		s->fd = open_unnamed(path, direct_io, &s->direct);
	else
		s->fd = open_path(path, direct_io, &s->direct);
	s->fd = upager__fd_keep(s->fd);
	if (s->fd < 0) {
		err = s->fd;
		s->fd = -1;
		err = upager__fail(UPAGER_ESWAPPATH, "cannot open swap %s '%s': %s",
				   s->unnamed ? "file in directory" : "file", path,
				   upager_strerror(err));
		goto fail_msg;
	}
	if (fstat(s->fd, &st) < 0) {
		err = -errno;
		goto fail;
	}
	if (S_ISBLK(st.st_mode)) {
		uint64_t dev_bytes = 0;
		s->is_blockdev = true;
		if (ioctl(s->fd, BLKGETSIZE64, &dev_bytes) < 0) {
			err = -errno;
			goto fail;
		}
		capacity = dev_bytes;
	} else if (S_ISREG(st.st_mode)) {
		struct statvfs vfs;
		if (!s->unnamed && ftruncate(s->fd, 0) < 0) {
			err = -errno;
			goto fail;
		}
		if (fstatvfs(s->fd, &vfs) < 0) {
			err = -errno;
			goto fail;
		}
		capacity = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	} else {
		err = upager__fail(
			UPAGER_ESWAPPATH,
			"swap '%s' is neither a regular file, a directory nor a block device",
			path);
		goto fail_msg;
	}
	/* A file may be allowed more than today's free space (writes then
	 * fail with ENOSPC and are reported); a device cannot grow. */
	if (max_bytes)
		capacity = s->is_blockdev && capacity < max_bytes ? capacity : max_bytes;
	s->nslots = capacity / page_size;
	if (s->nslots == 0) {
		err = upager__fail(UPAGER_ESWAPPATH, "swap '%s' has room for no page", path);
		goto fail_msg;
	}
	if (s->nslots > UINT32_MAX)
		s->nslots = UINT32_MAX; /* slot numbers stay below 2^32 */

	s->nwords = (s->nslots + 63) / 64;
	size_t used_bytes = s->nwords * 8;
	size_t summary_bytes = ((s->nwords + 63) / 64) * 8;
	size_t refs_bytes = s->nslots * sizeof(uint32_t);
	s->map_bytes = used_bytes + summary_bytes + refs_bytes;
	char *m = mmap(NULL, s->map_bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED) {
		err = -errno;
		goto fail;
	}
	s->used = (uint64_t *)m;
	s->summary = (uint64_t *)(m + used_bytes);
	s->refs = (uint32_t *)(m + used_bytes + summary_bytes);
	/* Slots past nslots in the last word are never free. */
	if (s->nslots % 64)
		s->used[s->nwords - 1] = ~0ULL << (s->nslots % 64);
	return 0;

fail:
	err = upager__fail(UPAGER_ESWAPPATH, "swap '%s': %s", path, upager_strerror(err));
fail_msg:
	swap_close(s);
	return err;
}

void swap_close(struct swap *s)
{
	if (s->fd >= 0) {
		if (!s->unnamed && !s->is_blockdev) {
			int unused = ftruncate(s->fd, 0);
			(void)unused;
		}
		upager__fd_close(s->fd);
	}
	s->fd = -1;
	if (s->used)
		munmap(s->used, s->map_bytes);
	s->used = NULL;
	free(s->path);
	s->path = NULL;
	pthread_mutex_destroy(&s->lock);
}

static void mark_used(struct swap *s, uint64_t slot)
{
	uint64_t w = slot / 64;

	s->used[w] |= 1ULL << (slot % 64);
	if (s->used[w] == ~0ULL)
		s->summary[w / 64] |= 1ULL << (w % 64);
}

static void mark_free(struct swap *s, uint64_t slot)
{
	uint64_t w = slot / 64;

	s->used[w] &= ~(1ULL << (slot % 64));
	s->summary[w / 64] &= ~(1ULL << (w % 64));
}

/* The first word at or after w with a free slot, or nwords. */
static uint64_t next_word_with_room(struct swap *s, uint64_t w)
{
	while (w < s->nwords) {
		uint64_t sw = w / 64;
		uint64_t full = s->summary[sw] | ((1ULL << (w % 64)) - 1);
		if (full != ~0ULL) {
			uint64_t cand = sw * 64 + (uint64_t)__builtin_ctzll(~full);
			return cand < s->nwords ? cand : s->nwords;
		}
		w = (sw + 1) * 64;
	}
	return s->nwords;
}

static int grow_file(struct swap *s, uint64_t slot)
{
	uint64_t need = (slot + 1) * s->page_size;

	if (s->is_blockdev || need <= s->file_size)
		return 0;
	uint64_t target = (need + GROW_CHUNK - 1) / GROW_CHUNK * GROW_CHUNK;
	uint64_t limit = s->nslots * s->page_size;
	if (target > limit)
		target = limit;
	if (ftruncate(s->fd, (off_t)target) < 0)
		return -errno;
	s->file_size = target;
	return 0;
}

/*
 * How far the cursor may go before it wraps. Left to roam the whole
 * capacity (by default the file system's free space), a next-fit cursor
 * would leave a trail of written blocks behind it, nearly all of them
 * stale: a long random run filled 1.4 GB of disk in 25 s for 384 MiB of
 * pages in swap. So it wraps within the file as it is, or within twice
 * the slots in use plus a growth chunk if that is more: the file holds
 * at most about twice what is in swap, and a write there overwrites
 * blocks the file system has already allocated, which takes less time
 * than one that must allocate (and that io_uring hands to a worker).
 */
static uint64_t wrap_slot(struct swap *s)
{
	uint64_t end = s->file_size / s->page_size;
	uint64_t reach = 2 * s->in_use + GROW_CHUNK / s->page_size;

	if (s->is_blockdev || reach >= s->nslots)
		return s->nslots;
	return end > reach ? end : reach;
}

/* Next-fit over [0, end), from *cursor, wrapping once. */
static unsigned alloc_within(struct swap *s, uint64_t end, uint64_t *cursor, unsigned n,
			     uint64_t *out, int *err)
{
	unsigned got = 0;
	uint64_t slot = *cursor;

	for (unsigned wrapped = 0; got < n && wrapped < 2;) {
		if (slot >= end) {
			slot = 0;
			wrapped++;
			continue;
		}
		uint64_t w = slot / 64;
		uint64_t free_bits = ~s->used[w] & (~0ULL << (slot % 64));
		if (!free_bits) {
			w = next_word_with_room(s, w + 1);
			if (w >= s->nwords) {
				slot = end;
				continue;
			}
			free_bits = ~s->used[w];
		}
		slot = w * 64 + (uint64_t)__builtin_ctzll(free_bits);
		if (slot >= end)
			continue;
		*err = grow_file(s, slot);
		if (*err)
			break;
		mark_used(s, slot);
		s->refs[slot] = 1;
		s->in_use++;
		out[got++] = slot;
		slot++;
	}
	*cursor = slot;
	return got;
}

int swap_alloc(struct swap *s, unsigned n, uint64_t *out)
{
	int err = 0;

	pthread_mutex_lock(&s->lock);
	uint64_t end = wrap_slot(s);
	uint64_t cursor = s->cursor < end ? s->cursor : 0;
	unsigned got = alloc_within(s, end, &cursor, n, out, &err);
	/* Full within the bound: beyond it, as far as the capacity goes. */
	if (got < n && !err && end < s->nslots) {
		cursor = end;
		got += alloc_within(s, s->nslots, &cursor, n - got, out + got, &err);
	}
	s->cursor = cursor;
	pthread_mutex_unlock(&s->lock);
	return got ? (int)got : err;
}

void swap_get(struct swap *s, uint64_t slot)
{
	pthread_mutex_lock(&s->lock);
	s->refs[slot]++;
	pthread_mutex_unlock(&s->lock);
}

void swap_put(struct swap *s, uint64_t slot)
{
	pthread_mutex_lock(&s->lock);
	if (s->refs[slot] != BAD_SLOT_REFS && --s->refs[slot] == 0) {
		mark_free(s, slot);
		s->in_use--;
	}
	pthread_mutex_unlock(&s->lock);
}

void swap_mark_bad(struct swap *s, uint64_t slot)
{
	pthread_mutex_lock(&s->lock);
	s->refs[slot] = BAD_SLOT_REFS;
	pthread_mutex_unlock(&s->lock);
}

uint64_t swap_used(struct swap *s)
{
	pthread_mutex_lock(&s->lock);
	uint64_t n = s->in_use;
	pthread_mutex_unlock(&s->lock);
	return n;
}
