// SPDX-License-Identifier: MIT
/*
 * The I/O engine: every page read and write goes through io_uring.
 *
 * A pool of rings, at most one per thread that may do I/O at once (handler
 * threads, the evictor, faulting threads in fast mode), made as they are
 * first needed. A thread borrows a ring for one operation and gives it
 * back; rings are never shared while in use, so submission needs no lock.
 * Each ring has a bounce buffer, aligned for O_DIRECT, that swap-ins read
 * into before the fault backend copies the page into place atomically,
 * and that eviction copies victims into before writing them.
 *
 * io_ring_run() turns a list of page requests into as few submissions as
 * the ring's depth allows, and merges requests whose file offsets touch
 * (adjacent swap slots) into one vectored request, so a batch of victims
 * written to adjacent slots becomes one large write.
 */
#include "internal.h"

#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>

#define MAX_IOV 64

struct io_ring {
	struct io_uring ring;
	void *bounce;
	size_t bounce_used; /* the most of it ever used (atomic) */
	void *scratch;
	unsigned depth;
	struct iovec *iov;     /* depth * MAX_IOV, one array per group */
	unsigned *group_first; /* first request of each in-flight group */
	unsigned *group_len;
	struct io_ring *next;
	bool ready;
};

/* Sets up ring i's io_uring and bounce buffer: system calls only, no
 * malloc, since a fault in fast mode may be what asks for it, in a
 * signal handler. Returns 0 or a negative code (what was made is freed
 * by io_pool_destroy). */
static int ring_create(struct io_pool *pool, unsigned i)
{
	struct io_ring *r = &pool->rings[i];
	int err = io_uring_queue_init(pool->depth, &r->ring, 0);

	if (err < 0)
		return err;
	r->ready = true;
	/* liburing reaches the ring through these two; the mappings are
	 * already made. */
	r->ring.ring_fd = r->ring.enter_ring_fd = upager__fd_keep(r->ring.ring_fd);
	r->bounce = mmap(NULL, pool->bounce_bytes, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (r->bounce == MAP_FAILED) {
		r->bounce = NULL;
		return -ENOMEM;
	}
	return 0;
}

/*
 * The first ring is made now, so that a system without io_uring fails
 * the open; the others when more threads want one at once than there are
 * rings (io_ring_get): most programs never use more than two or three,
 * and each costs an io_uring instance to set up and to tear down.
 */
int io_pool_init(struct io_pool *pool, unsigned nrings, unsigned depth, size_t bounce_bytes,
		 size_t scratch_bytes)
{
	int err;

	memset(pool, 0, sizeof(*pool));
	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->cond, NULL);
	pool->rings = calloc(nrings, sizeof(*pool->rings));
	if (!pool->rings)
		return -ENOMEM;
	pool->nrings = nrings;
	pool->depth = depth;
	pool->bounce_bytes = bounce_bytes;
	pool->scratch_bytes = scratch_bytes;
	for (unsigned i = 0; i < nrings; i++) {
		struct io_ring *r = &pool->rings[i];

		r->depth = depth;
		r->scratch = malloc(scratch_bytes);
		r->iov = calloc((size_t)depth * MAX_IOV, sizeof(*r->iov));
		r->group_first = calloc(depth, sizeof(unsigned));
		r->group_len = calloc(depth, sizeof(unsigned));
		if (!r->scratch || !r->iov || !r->group_first || !r->group_len) {
			io_pool_destroy(pool);
			return -ENOMEM;
		}
	}
	err = ring_create(pool, 0);
	if (err < 0) {
		err = upager__fail(err, "io_uring_queue_init: %s", upager_strerror(err));
		io_pool_destroy(pool);
		return err;
	}
	pool->created = 1;
	pool->free = &pool->rings[0];
	return 0;
}

void io_pool_destroy(struct io_pool *pool)
{
	for (unsigned i = 0; pool->rings && i < pool->nrings; i++) {
		struct io_ring *r = &pool->rings[i];
		if (r->ready) {
			/* liburing's close must reach the descriptor. */
			upager__fd_release(r->ring.ring_fd);
			io_uring_queue_exit(&r->ring);
		}
		if (r->bounce)
			munmap(r->bounce, pool->bounce_bytes);
		free(r->scratch);
		free(r->iov);
		free(r->group_first);
		free(r->group_len);
	}
	free(pool->rings);
	pool->rings = NULL;
	pthread_mutex_destroy(&pool->lock);
	pthread_cond_destroy(&pool->cond);
}

static struct io_ring *ring_take(struct io_pool *pool, bool wait)
{
	struct io_ring *r;

	pthread_mutex_lock(&pool->lock);
	/* All busy: another ring, if one can be made; if not (out of
	 * memory), the rings there are will do. */
	while (!pool->free && pool->created < pool->nrings && !pool->create_failed) {
		unsigned i = pool->created;
		if (ring_create(pool, i) == 0) {
			pool->created++;
			pthread_mutex_unlock(&pool->lock);
			return &pool->rings[i];
		}
		pool->create_failed = true;
	}
	while (!pool->free && wait)
		pthread_cond_wait(&pool->cond, &pool->lock);
	r = pool->free;
	if (r)
		pool->free = r->next;
	pthread_mutex_unlock(&pool->lock);
	return r;
}

struct io_ring *io_ring_get(struct io_pool *pool)
{
	return ring_take(pool, true);
}

struct io_ring *io_ring_tryget(struct io_pool *pool)
{
	return ring_take(pool, false);
}

void io_ring_put(struct io_pool *pool, struct io_ring *r)
{
	pthread_mutex_lock(&pool->lock);
	r->next = pool->free;
	pool->free = r;
	pthread_cond_signal(&pool->cond);
	pthread_mutex_unlock(&pool->lock);
}

void *io_ring_bounce(struct io_ring *r, size_t bytes)
{
	store_max(&r->bounce_used, bytes);
	return r->bounce;
}

size_t io_pool_bounce_used(struct io_pool *pool)
{
	size_t total = 0;

	for (unsigned i = 0; i < pool->nrings; i++)
		total += __atomic_load_n(&pool->rings[i].bounce_used, __ATOMIC_RELAXED);
	return total;
}

void *io_ring_scratch(struct io_ring *r)
{
	return r->scratch;
}

unsigned io_ring_depth(struct io_ring *r)
{
	return r->depth;
}

/* How many requests from i on can go out as one vectored request. */
static unsigned group_size(struct io_req *reqs, unsigned i, unsigned n)
{
	unsigned k = 1;

	while (i + k < n && k < MAX_IOV && reqs[i + k].op == reqs[i].op &&
	       reqs[i + k].off == reqs[i + k - 1].off + reqs[i + k - 1].len)
		k++;
	return k;
}

int io_ring_run(struct io_pool *pool, struct io_ring *r, int fd, struct io_req *reqs, unsigned n)
{
	return io_ring_run_while(pool, r, fd, reqs, n, NULL, NULL);
}

int io_ring_run_while(struct io_pool *pool, struct io_ring *r, int fd, struct io_req *reqs,
		      unsigned n, void (*meanwhile)(void *), void *arg)
{
	unsigned next = 0, inflight = 0, done = 0;
	int enters = 0;

	while (done < n) {
		/* Fill the submission queue with whole groups. */
		while (next < n && inflight < r->depth) {
			int injected = atomic_load_explicit(&pool->fault_inject,
							    memory_order_relaxed);

			if (injected &&
			    (atomic_load_explicit(&pool->fault_inject_ops, memory_order_relaxed) &
			     (1u << reqs[next].op))) {
				reqs[next].res = injected;
				done++;
				next++;
				continue;
			}
			unsigned k = group_size(reqs, next, n);
			struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
			if (!sqe)
				break;
			unsigned slot = 0;
			while (slot < r->depth && r->group_len[slot])
				slot++;
			struct iovec *iov = &r->iov[(size_t)slot * MAX_IOV];
			for (unsigned j = 0; j < k; j++) {
				iov[j].iov_base = reqs[next + j].buf;
				iov[j].iov_len = reqs[next + j].len;
			}
			if (reqs[next].op == IO_READ)
				io_uring_prep_readv(sqe, fd, iov, k, reqs[next].off);
			else
				io_uring_prep_writev(sqe, fd, iov, k, reqs[next].off);
			io_uring_sqe_set_data64(sqe, slot);
			r->group_first[slot] = next;
			r->group_len[slot] = k;
			next += k;
			inflight++;
		}
		if (!inflight)
			continue; /* only injected failures were left */
		int ret;
		if (meanwhile) {
			do {
				ret = io_uring_submit(&r->ring);
			} while (ret == -EINTR);
			if (ret < 0)
				return ret;
			enters++;
			meanwhile(arg);
			meanwhile = NULL;
		}
		do {
			ret = io_uring_submit_and_wait(&r->ring, 1);
		} while (ret == -EINTR);
		if (ret < 0)
			return ret;
		enters++;
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&r->ring, head, cqe)
		{
			unsigned slot = (unsigned)io_uring_cqe_get_data64(cqe);
			unsigned first = r->group_first[slot], k = r->group_len[slot];
			size_t want = 0;
			for (unsigned j = 0; j < k; j++)
				want += reqs[first + j].len;
			int res = cqe->res;
			/* A short transfer of a page is an error: the page is
			 * either all there or not. */
			for (unsigned j = 0; j < k; j++)
				reqs[first + j].res = res < 0 ? res
						      : (size_t)res == want
							      ? (int)reqs[first + j].len
							      : -EIO;
			r->group_len[slot] = 0;
			inflight--;
			done += k;
			seen++;
		}
		io_uring_cq_advance(&r->ring, seen);
	}
	return enters;
}
