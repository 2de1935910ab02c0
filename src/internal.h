/* SPDX-License-Identifier: MIT */
/*
 * Shared by the library's own files and nobody else: the page-table entry,
 * the frame record, regions and the pager itself, plus the small helpers
 * every subsystem uses (page locks, statistics, errors).
 *
 * Lock order, outermost first (a thread never blocks on an earlier lock
 * while holding a later one):
 *
 *   registry rwlock -> cow_lock -> page lock -> policy lock -> frame-pool lock,
 *                                                               swap lock
 *
 * The reclaim path takes page locks *after* the policy lock, but only with
 * a trylock, so it never waits in the wrong order. Two page locks: a
 * region's page before the same page of its newest snapshot; any other
 * second page lock is a trylock (snapshot.c).
 */
#ifndef UPAGER_INTERNAL_H
#define UPAGER_INTERNAL_H

#include "config.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "upager.h"

/* The public structs as version 2 laid them out (upager 0.1.0, the first
 * published layout): what the plain symbols upager_config_init() and
 * upager_stats() fill for programs built before their sized variants.
 * Fields are only ever added at the end, so these never change. */
#define UPAGER__ROUND8(n) (((n) + 7) & ~(size_t)7)
#define UPAGER__CONFIG_V2_SIZE UPAGER__ROUND8(offsetof(upager_config_t, env_error) + 120)
#define UPAGER__STATS_V2_SIZE UPAGER__ROUND8(offsetof(upager_stats_t, backend_why) + 400)
/* Below this a caller's struct does not even hold size and version. */
#define UPAGER__STRUCT_MIN_SIZE 8

/* The defaults and the UPAGER_* environment into a whole config (config.c). */
void upager__config_defaults(upager_config_t *cfg);

/* The pager's own descriptors (fds.c): moved above the program's numbers
 * and noted, so that upager-run keeps a program's close/dup2 off them.
 * keep returns the descriptor to use from then on; close releases and
 * closes; next_owned finds the first noted one at or above from (-1:
 * none). */
int upager__fd_keep(int fd);
void upager__fd_release(int fd);
int upager__fd_close(int fd);
bool upager__fd_owned(int fd);
void upager__fd_forget_all(void);
int upager__fd_next_owned(int from);

#define UPAGER_MIN_FRAMES 16
#define UPAGER_MIN_PAGE_SIZE 4096UL
#define UPAGER_MAX_PAGE_SIZE (2UL << 20)

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

struct upager;
struct region;
struct io_ring;
struct policy;

/*
 * A page-table entry: 16 bytes for every page of a touched 512-page block.
 *
 * flags holds the page lock (a futex word) and the page's state. Only the
 * lock holder changes the state bits; other threads may set PTE_WAITERS.
 * frame is meaningful in PTE_RESIDENT, slot (swap slot + 1, 0 = none) in
 * PTE_RESIDENT (a still-valid swap copy of a clean page) and PTE_SWAPPED.
 * The upper bits of slot can carry a file offset for file-backed regions.
 */
struct upte {
	_Atomic uint32_t flags;
	uint32_t frame;
	uint64_t slot;
};

#define PTE_LOCKED (1u << 0)
#define PTE_WAITERS (1u << 1)
#define PTE_STATE_SHIFT 2
#define PTE_STATE_MASK (3u << PTE_STATE_SHIFT)
#define PTE_NONE (0u << PTE_STATE_SHIFT)     /* never written, or zero again: reads as zero */
#define PTE_RESIDENT (1u << PTE_STATE_SHIFT) /* in a frame */
#define PTE_SWAPPED (2u << PTE_STATE_SHIFT)  /* only in swap */
#define PTE_POISONED (3u << PTE_STATE_SHIFT) /* lost to an I/O error: SIGBUS */
#define PTE_MAPPED (1u << 4)                 /* the application view maps it */
#define PTE_WRITABLE (1u << 5)               /* ... without write protection */
#define PTE_DIRTY (1u << 6)                  /* frame differs from its swap copy (or has none) */
#define PTE_NOWRITE (1u << 8)                /* upager_protect(): the program may not write */
#define PTE_NOACCESS (1u << 9)               /* upager_protect(): the program may not touch it */
#define PTE_SAMPLED (1u << 7)                /* unmapped to sample its referenced bit */
/* In a snapshot's or a clone's page table (snapshot.c): the page holds
 * the region's own version. Without it, the page reads through to the
 * region it was made from. */
#define PTE_OWNED (1u << 10)
/* Left its frame by eviction: frame holds the low 32 bits of the
 * eviction count at that moment, for the refault distance (observe.c). */
#define PTE_EVICTED (1u << 11)
/* Mapped by readahead, not yet passed by the sampling hand: the program
 * is likely about to read it, and a sample now would only cost it a
 * minor fault. The hand clears it on its first pass (sample.c). */
#define PTE_FRESH (1u << 12)
/* Read with a neighbour's miss and left unmapped (prefetch.c, read-around):
 * the program's first touch is a minor fault that counts a hit. */
#define PTE_AROUND (1u << 13)
/* Read from swap and mapped writable before any write, on the guess that
 * the program will write it (pager.c, write_likely): dirty to everyone
 * else, but its slot still holds what was read, and its frame record a
 * checksum of that. Eviction writes it only if the checksum differs
 * (evict.c), as the kernel writes only what the MMU's dirty bit saw. */
#define PTE_GUESSED (1u << 14)

static inline uint32_t pte_state(uint32_t f)
{
	return f & PTE_STATE_MASK;
}

/* The page lock (pagetable.c): a bit in the entry's flags, slept on with
 * a futex. */
void upager__pte_lock(struct upte *e);
bool upager__pte_trylock(struct upte *e);
void upager__pte_unlock(struct upte *e);

/* *at = max(*at, v), for a high-water mark read by the statistics
 * (relaxed; one writer at a time). */
static inline void store_max(size_t *at, size_t v)
{
	if (v > __atomic_load_n(at, __ATOMIC_RELAXED))
		__atomic_store_n(at, v, __ATOMIC_RELAXED);
}

/* Changes state bits of a page whose lock the caller holds. */
static inline void pte_update(struct upte *e, uint32_t clear, uint32_t set)
{
	uint32_t f = atomic_load_explicit(&e->flags, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(&e->flags, &f, (f & ~clear) | set,
						      memory_order_release, memory_order_relaxed))
		;
}

static inline uint32_t pte_flags(struct upte *e)
{
	return atomic_load_explicit(&e->flags, memory_order_acquire);
}

struct upager;
static inline void pager_mapped_add(struct upager *p, int64_t n);

/* The application view now maps the locked page (writable adds
 * PTE_WRITABLE | PTE_DIRTY); keeps the pager's count of mapped pages. */
static inline void pte_set_mapped(struct upager *p, struct upte *e, bool writable)
{
	if (!(pte_flags(e) & PTE_MAPPED))
		pager_mapped_add(p, 1);
	pte_update(e, PTE_SAMPLED, PTE_MAPPED | (writable ? PTE_WRITABLE | PTE_DIRTY : 0));
}

/* The application view no longer maps the locked page. */
static inline void pte_clear_mapped(struct upager *p, struct upte *e)
{
	if (pte_flags(e) & PTE_MAPPED)
		pager_mapped_add(p, -1);
	pte_update(e, PTE_MAPPED | PTE_WRITABLE, 0);
}

/* ---- page table (pagetable.c) ---- */

/*
 * A radix tree of 9-bit levels over a region's page numbers. Nodes come
 * from a private arena of mmap'ed chunks (never the process's malloc, which
 * may itself live in a region), are zero when allocated (a zero entry is
 * PTE_NONE, unlocked) and are only freed with the whole table.
 */
struct pagetable {
	unsigned levels;
	void *_Atomic root;
	pthread_mutex_t arena_lock;
	char *chunk; /* current arena chunk */
	size_t chunk_used;
	void *chunks;               /* list of all chunks, linked through their first word */
	void *free_leaf, *free_dir; /* nodes that lost a publication race */
	_Atomic size_t bytes;
};

int pt_init(struct pagetable *pt, uint64_t npages);
void pt_destroy(struct pagetable *pt);
/* The entry of page pg, or NULL if its leaf was never allocated. */
/* Entries come in leaves of PT_FANOUT consecutive pages: the entry of
 * page pg + i is pt_lookup(pg)[i] for pg a multiple of PT_FANOUT. */
#define PT_BITS 9
#define PT_FANOUT (1u << PT_BITS)
struct upte *pt_lookup(struct pagetable *pt, uint64_t pg);
/* The entry of page pg, allocating its leaf; NULL only when out of memory. */
struct upte *pt_get(struct pagetable *pt, uint64_t pg);
/* Calls fn on every entry of every allocated leaf, in page order, until
 * fn returns true. */
void pt_for_each(struct pagetable *pt, bool (*fn)(uint64_t pg, struct upte *e, void *arg),
		 void *arg);

/* ---- frames (frames.c) ---- */

/*
 * A frame is one page of the RAM budget. Its contents live in the memfd of
 * the region that owns it; the record says which page holds it. A record
 * changes only under the lock of that page.
 */
struct frame {
	struct region *region;    /* NULL while free */
	struct upte *_Atomic pte; /* atomic: hands scanning the pool read it unlocked */
	uint64_t pg;
	uint32_t next_free;
	_Atomic uint32_t pins; /* upager_pin(): neither evicted nor sampled */
	uint64_t read_sum[2];  /* PTE_GUESSED: checksum of the bytes read */
};

struct frame_pool {
	struct frame *frames;
	uint32_t nframes;
	pthread_mutex_t lock;
	pthread_cond_t freed;
	uint32_t free_head;
	/* Frames from fresh on were never handed out: free without being
	 * on the list, so that opening a pager with a large budget does
	 * not write every frame record (a 12 GiB budget has 96 MiB). */
	uint32_t fresh;
	_Atomic uint32_t nfree;
	uint32_t waiters;
	_Atomic uint64_t frees; /* ever: debug.c bounds its page count with it */
};

int frames_init(struct frame_pool *fp, uint32_t nframes);
void frames_destroy(struct frame_pool *fp);
/* A free frame's index, or -1 when none is free. */
int64_t frames_alloc(struct frame_pool *fp);
void frames_free(struct frame_pool *fp, uint32_t idx);
/* Waits up to timeout_ms for a frame to be freed. */
void frames_wait(struct frame_pool *fp, unsigned timeout_ms);

/* ---- swap slots (swap.c) ---- */

struct swap {
	int fd;
	bool direct;  /* opened with O_DIRECT */
	bool unnamed; /* removed when closed */
	bool is_blockdev;
	char *path; /* as given, for messages */
	size_t page_size;
	uint64_t nslots;
	uint64_t *used;    /* one bit per slot: holds data or is bad */
	uint64_t *summary; /* one bit per word of used: that word is full */
	uint32_t *refs;    /* sharers of a slot (copy-on-write) */
	uint64_t nwords;
	uint64_t cursor; /* next-fit: where the last allocation ended */
	uint64_t in_use;
	uint64_t file_size; /* grown in chunks ahead of the highest slot */
	pthread_mutex_t lock;
	size_t map_bytes;
};

int swap_open(struct swap *s, const char *path, uint64_t max_bytes, size_t page_size,
	      bool direct_io);
void swap_close(struct swap *s);
/* Allocates up to n slots, contiguous where possible, into out[]; returns
 * how many it got (0 when the swap is full) or -errno. */
int swap_alloc(struct swap *s, unsigned n, uint64_t *out);
void swap_get(struct swap *s, uint64_t slot);
void swap_put(struct swap *s, uint64_t slot);
/* A slot whose write failed: never handed out again. */
void swap_mark_bad(struct swap *s, uint64_t slot);
uint64_t swap_used(struct swap *s);

/* ---- io_uring engine (io.c) ---- */

enum io_op { IO_READ, IO_WRITE };

struct io_req {
	enum io_op op;
	void *buf;
	size_t len;
	uint64_t off;
	int res; /* bytes moved or -errno, after io_ring_run() */
};

struct io_ring;

struct io_pool {
	struct io_ring *rings;
	unsigned nrings, depth;
	unsigned created;   /* rings made so far (under lock), the first ones */
	bool create_failed; /* one could not be made: no more tries */
	size_t bounce_bytes, scratch_bytes;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct io_ring *free;
	/* Test hook, set by tests while I/O threads run (hence atomic): fail I/O
	 * with fault_inject (-errno) if its op's bit (1 << IO_READ/IO_WRITE) is set. */
	_Atomic int fault_inject;
	_Atomic unsigned fault_inject_ops;
};

int io_pool_init(struct io_pool *pool, unsigned nrings, unsigned depth, size_t bounce_bytes,
		 size_t scratch_bytes);
void io_pool_destroy(struct io_pool *pool);
struct io_ring *io_ring_get(struct io_pool *pool);
/* A ring if one is free or can be made now, NULL if not: for work that
 * is worth doing only if it need not wait (a thread that already holds a
 * ring must never wait for a second one). */
struct io_ring *io_ring_tryget(struct io_pool *pool);
void io_ring_put(struct io_pool *pool, struct io_ring *r);
/* The ring's bounce buffer (pool->bounce_bytes), of which the caller
 * will use the first `bytes`: the pool counts what was ever used, the
 * part that takes RAM (io_pool_bounce_used). */
void *io_ring_bounce(struct io_ring *r, size_t bytes);
size_t io_pool_bounce_used(struct io_pool *pool);
/* Working memory for whoever holds the ring (the reclaim batch), so that
 * the fault path, which may run in a signal handler on a small stack,
 * keeps its stack use small. */
void *io_ring_scratch(struct io_ring *r);
unsigned io_ring_depth(struct io_ring *r);
/* Runs n requests against fd in as few submits as the ring allows and
 * waits for all; each req->res gets its result. Returns the number of
 * io_uring_enter calls made, or -errno if the ring itself failed. */
int io_ring_run(struct io_pool *pool, struct io_ring *r, int fd, struct io_req *reqs, unsigned n);
/* The same, calling meanwhile(arg) once the first requests are on their
 * way and before waiting for them: CPU work that overlaps the I/O. */
int io_ring_run_while(struct io_pool *pool, struct io_ring *r, int fd, struct io_req *reqs,
		      unsigned n, void (*meanwhile)(void *), void *arg);

/* ---- fault backends (fault.h has the interface) ---- */

struct fault_backend;

/* ---- policy (policy.h has the interface) ---- */

struct policy_ops;

/* ---- regions ---- */

#define RA_MARKERS 4 /* readahead markers a region keeps (prefetch.c) */

struct region {
	struct upager *p;
	uintptr_t base;
	size_t len; /* rounded up to the page size */
	uint64_t npages;
	int memfd;
	char *pview; /* the pager's own mapping of memfd */
	struct pagetable pt;
	_Atomic int refs;   /* pins against freeing while the evictor uses it */
	_Atomic bool dying; /* set by teardown, read by faults racing with it */
	uint32_t id;
	void *backend_data;
	struct region *next; /* the pager's list of regions */
	/* Sequential detection (prefetch.c): the page after the last one
	 * brought in, the window that did it, upager_advise()'s advice;
	 * seq_next_other: where the run before it goes on (two threads
	 * reading a region each in its own run). */
	_Atomic uint64_t seq_next;
	_Atomic uint64_t seq_next_other;
	/* The region's readahead markers (prefetch.c): page + 1 of the
	 * latest stretches' first pages, left unmapped so that the program's
	 * fault on one asks for a stretch further on; 0 for none. */
	_Atomic uint64_t ra_markers[RA_MARKERS];
	_Atomic unsigned ra_marker_at; /* where the next marker goes */
	_Atomic bool ra_marker_swap;   /* the stretches are read from swap */
	_Atomic unsigned seq_window;
	_Atomic uint64_t last_miss; /* read-around: the last miss's page + 1 */
	_Atomic int advice;
	/* Copy-on-write (snapshot.c); changed only under p->cow_lock held
	 * for writing, read under it held for reading (every fault). */
	struct snap_chain *chain;        /* this region's snapshots, or NULL */
	struct upager_snapshot *backing; /* a clone: where the pages it does not own come from */
	struct upager_snapshot *self;    /* a snapshot's view: its snapshot */
	bool readonly;                   /* a snapshot's view: writes are the program's error */
	/* A file region (file.c): page pg < file_pages is read from file_fd
	 * at file_off + pg * page_size when it is neither resident nor in
	 * swap; in a shared region its dirty contents go back there. Pages
	 * past file_pages (past the file's end) are anonymous. */
	bool is_file, file_shared, file_ro, file_direct;
	int file_fd;          /* the region's own descriptor (reopened) */
	uint64_t file_off;    /* file offset of page 0 */
	uint64_t file_bytes;  /* file bytes behind the region, as at map time */
	uint64_t file_pages;  /* pages that hold some of them */
	_Atomic int file_err; /* first write-back error of an eviction, for upager_sync */
};

/* Does r own its pages alone and may they be written: no snapshot or
 * clone shares them (copy-on-write rules apply to such pages), and it is
 * no snapshot's read-only view? Readahead brings such regions' pages in
 * on its own terms. */
static inline bool region_plain(const struct region *r)
{
	return !r->chain && !r->backing && !r->self && !r->readonly;
}

/* Is page pg of r backed by its file? */
static inline bool region_file_page(struct region *r, uint64_t pg)
{
	return r->is_file && pg < r->file_pages;
}

/* A request for page pg of a file region to or from buf: its file offset,
 * and its length clipped to the file's end (file.c). */
void upager__file_req(struct region *r, uint64_t pg, struct io_req *q, enum io_op op, void *buf);
/* Writes the dirty pages of [first, end) of a shared file region to the
 * file (they stay resident, clean); 0 or the first error. */
int upager__file_writeback(struct region *r, uint64_t first, uint64_t end);
/* Reads len bytes (at most a page) of fd from off, zeros after them,
 * into page pg of region dst's memfd, through a ring's bounce buffer (an
 * O_DIRECT descriptor needs an aligned one): how a snapshot or a clone of
 * a file region gets a page it reads through to the file (snapshot.c).
 * 0 or a negative code. */
int upager__file_read_page(struct upager *p, int fd, uint64_t off, size_t len, struct region *dst,
			   uint64_t pg);

static inline void *region_page_addr(struct region *r, uint64_t pg);
static inline char *region_pview(struct region *r, uint64_t pg);

/* ---- statistics ---- */

struct stats {
	_Atomic uint64_t faults_zero, faults_minor, faults_major, faults_wp, faults_cow;
	_Atomic uint64_t evictions, writebacks, clean_drops, zero_drops;
	_Atomic uint64_t bytes_read, bytes_written, io_submits, io_errors;
	_Atomic uint64_t direct_reclaims, samples, sample_faults, sample_ns;
	_Atomic uint64_t readahead_pages, faultaround_pages, pages_copied, pages_shared;
	_Atomic uint64_t punch_failures;
	_Atomic uint64_t readaround_pages, readaround_watched, readaround_hits;
	_Atomic uint64_t unchanged_drops;
	_Atomic uint64_t latency_hist[UPAGER_LATENCY_BUCKETS];
	/* observe.c */
	_Atomic uint64_t phase_ns[UPAGER_PHASES];
	_Atomic uint64_t phase_hist[UPAGER_PHASES][UPAGER_LATENCY_BUCKETS];
	_Atomic uint64_t refaults, refaults_recent, stall_ns, thrash_windows, thrash_warnings;
};

#define STAT_ADD(p, field, n) \
	atomic_fetch_add_explicit(&(p)->stats.field, (n), memory_order_relaxed)
#define STAT_INC(p, field) STAT_ADD(p, field, 1)

/* The working set and thrashing state of a pager (observe.c). */
struct observe {
	uint64_t t_base; /* stall times are microseconds since this */
	/* (start_us << 16) | threads stalled: start_us is when the count
	 * last rose above zero. */
	_Atomic uint64_t stall_word;
	_Atomic uint64_t misses;
	_Atomic uint64_t refaults_near; /* distance below NEAR_BUDGETS budgets */
	_Atomic uint64_t dist_ewma;     /* refault distance, scaled by 2^EWMA_SCALE */
	_Atomic uint64_t last_refault_ns;
	/* The current window: its start and the counters then. */
	_Atomic uint64_t win_start;
	_Atomic uint64_t win_misses, win_refaults, win_stall;
	_Atomic uint64_t win_end; /* end of the last window judged */
	_Atomic bool thrashing;
	_Atomic uint64_t last_warn; /* 0: never */
};

/* ---- the pager ---- */

struct upager {
	upager_config_t cfg;
	char *swap_path, *backend_name, *policy_spec;
	size_t page_size;
	unsigned page_shift;
	uint32_t nframes;

	const struct fault_backend *backend;
	void *backend_data;
	char backend_why[400];  /* why "auto" picked the backend it did */
	bool transparent;       /* system calls on unmapped pages are served */
	bool handlers_auto;     /* handler_threads was 0: the backend chooses */
	char backend_note[200]; /* set by the backend's init: a detail worth reporting */

	struct frame_pool frames;
	struct swap swap;
	struct io_pool io;

	pthread_mutex_t policy_lock;
	struct policy *policy;

	pthread_mutex_t regions_lock; /* the list below; map/unmap/close */
	struct region *regions;
	uint32_t next_region_id;
	uint64_t region_bytes; /* changed under regions_lock, read without it (__atomic) */
	unsigned nregions;

	/* background evictor (evict.c) */
	pthread_t evictor;
	bool evictor_running;
	pthread_mutex_t evictor_lock;
	pthread_cond_t evictor_cond;
	_Atomic bool evictor_stop;
	bool evictor_started_ra;        /* the readahead threads, once swap is used */
	_Atomic unsigned frames_coming; /* victims of batches under way */
	unsigned free_low, free_high;

	_Atomic uint64_t pinned; /* pages with pins > 0 */

	/* Pages the application views map. A backend with a mapping limit
	 * (sigsegv) sets map_cap; a fault that would map more first sheds
	 * some with a hand over the frames. Teardown waits for shedders to
	 * leave before it frees a page table they may be reading. */
	_Atomic int64_t mapped;
	uint64_t map_cap; /* 0: no cap */
	_Atomic int shedders;
	_Atomic uint32_t shed_hand;

	/* Sampling (sample.c): the rate, what is owed to the next round,
	 * and where the hand over the regions' pages stands. */
	double sample_rate;
	double sample_owed;
	_Atomic uint64_t evicted_unsampled;
	uint32_t sample_region;
	uint64_t sample_pg;
	bool policy_broken; /* it named a frame that does not exist */

	/* Recording (sample.c): faults record while trace_users counts them,
	 * so that upager_trace_stop() can wait for them to leave. */
	struct trace_writer *_Atomic trace;
	_Atomic int trace_users;
	_Atomic unsigned trace_interval_us;
	_Atomic uint64_t trace_last_sweep_ns;   /* the evictor; reset by trace start */
	pthread_mutex_t trace_lock;             /* start/stop */
	uint64_t trace_recorded, trace_dropped; /* of the traces closed so far */

	/* Copy-on-write (snapshot.c). Every fault holds cow_lock for reading
	 * from before it takes its page lock until it is done; taking,
	 * freeing and restoring snapshots, cloning, and unmapping a region
	 * that shares pages hold it for writing, so they see no fault half
	 * done and may take page locks in any order. */
	pthread_rwlock_t cow_lock;
	struct upager_snapshot *snaps; /* every snapshot record, hidden ones too */
	void *cow_scratch;             /* taking a snapshot's working arrays */
	_Atomic uint64_t nsnapshots;   /* changed under cow_lock, read without */

	/* upager__zap(): a pidfd of this process for process_madvise(), or
	 * -1 where the kernel refuses it (one madvise per range then). */
	_Atomic int self_pidfd;
	int self_pidfd_open; /* closed at close */
	pid_t self_pid;

	/* Test hook, like io.fault_inject: the next punch_fail punches
	 * fail with -EIO, the fallocate() alone (PUNCH_FAIL_FALLOCATE) or
	 * its madvise(MADV_REMOVE) fallback too (| PUNCH_FAIL_REMOVE). */
	_Atomic int punch_fail;
	_Atomic unsigned punch_fail_how;

	_Atomic uint64_t debug_faults; /* debug.c: when to walk everything */

	struct stats stats;
	struct observe obs;

	/* Of the pages read from swap and mapped read-only, how many the
	 * program wrote soon after (pager.c, write_likely()): decayed
	 * counts, approximate under races. */
	_Atomic uint32_t ro_fills, ro_upgrades, fill_probe;
	/* Seeds the checksums of PTE_GUESSED pages: random per pager, so
	 * that no program can aim at a collision. */
	uint64_t sum_seed;

	/* Read-around (prefetch.c): its level (0-3); the pages it read and
	 * left unmapped, and the hits among them, since the level was last
	 * judged; at level 0, the misses and those near the one before; the
	 * misses at levels 2 and 3, for the probes. Approximate under races. */
	_Atomic uint32_t around_level, around_sent, around_hits, around_misses, around_near;
	_Atomic uint32_t around_probe;

	/* Asynchronous readahead (prefetch.c): started by the first
	 * upager_map_file() or by the evictor once it has used swap,
	 * stopped at close. */
	struct readahead *_Atomic ra;
};

#define PUNCH_FAIL_FALLOCATE 1u
#define PUNCH_FAIL_REMOVE 2u

static inline void pager_mapped_add(struct upager *p, int64_t n)
{
	atomic_fetch_add_explicit(&p->mapped, n, memory_order_relaxed);
}

/* Pages read from swap and mapped read-only, for write_likely(). */
static inline void pager_note_ro_fills(struct upager *p, unsigned n)
{
	/* Halved now and then, so that the counts follow the program's
	 * phases. */
	if (atomic_fetch_add_explicit(&p->ro_fills, n, memory_order_relaxed) > 1024) {
		atomic_store_explicit(&p->ro_fills, 512, memory_order_relaxed);
		atomic_store_explicit(&p->ro_upgrades,
				      atomic_load_explicit(&p->ro_upgrades, memory_order_relaxed) /
					      2,
				      memory_order_relaxed);
	}
}

/* The locked page no longer needs its swap copy (it is being written). */
static inline void pte_drop_swap_copy(struct upager *p, struct upte *e)
{
	if (e->slot) {
		swap_put(&p->swap, e->slot - 1);
		e->slot = 0;
	}
	if (pte_flags(e) & PTE_GUESSED)
		pte_update(e, PTE_GUESSED, 0);
}

static inline void *region_page_addr(struct region *r, uint64_t pg)
{
	return (void *)(r->base + (pg << r->p->page_shift));
}

static inline char *region_pview(struct region *r, uint64_t pg)
{
	return r->pview + (pg << r->p->page_shift);
}

/* The page's name for policies and traces. */
static inline uint64_t region_page_key(struct region *r, uint64_t pg)
{
	return ((uint64_t)r->id << 44) | pg;
}

/* Frame `frame` now holds page pg of r, whose locked entry is e. */
static inline void frame_bind(struct upager *p, uint32_t frame, struct region *r, uint64_t pg,
			      struct upte *e)
{
	struct frame *fr = &p->frames.frames[frame];

	fr->region = r;
	fr->pte = e;
	fr->pg = pg;
	e->frame = frame;
	if (pte_flags(e) & PTE_EVICTED) /* brought in ahead: no longer an eviction's mark */
		pte_update(e, PTE_EVICTED, 0);
}

/* ---- the fault path (pager.c) ---- */

enum fault_result {
	FAULT_DONE,     /* the access can be retried and will succeed (or fault again, benignly) */
	FAULT_NOT_OURS, /* the address is in no region */
	FAULT_SIGBUS,   /* the page cannot be provided: deliver SIGBUS */
};

/*
 * Resolves an access to addr (write or read) in region r: after it, the
 * page is mapped in the application view (writable if write). ring may be
 * NULL; a ring is then taken from the pool when I/O is needed. On
 * FAULT_SIGBUS, *err says why.
 */
enum fault_result upager__fault(struct region *r, uintptr_t addr, bool write, int *err);

/* Region registry (registry.c): address -> region for every pager in the
 * process. Lookups take a reference that upager__region_put() drops. */
int upager__registry_add(struct region *r);
void upager__registry_remove(struct region *r);
void upager__registry_forget_all(void);
/* Is any byte of [base, base+len) in a registered region? */
bool upager__registry_overlaps(uintptr_t base, size_t len);
struct region *upager__region_find(uintptr_t addr);
void upager__region_put(struct region *r);

/* Reports a fault that cannot be resolved: the error callback, then a
 * message on stderr. Async-signal-safe. */
void upager__report_fault_error(struct region *r, uintptr_t addr, int err);

/* Eviction (evict.c). */
/* Are the len bytes at buf all zero? (A page that is goes nowhere.) */
bool upager__is_zero(const void *buf, size_t len);
/* A page's checksum (128 bits, seeded per pager), for PTE_GUESSED. */
void upager__page_sum(const struct upager *p, const void *page, uint64_t sum[2]);
int upager__reclaim(struct upager *p, unsigned want);
/* As upager__reclaim, from a thread that holds a ring already: -EAGAIN
 * when no other ring is free (waiting for one could wait forever). */
int upager__reclaim_try(struct upager *p, unsigned want);
/* Called by a miss while its read is out (upager__read_in): evicts a
 * batch below the low watermark, on the missing thread's CPU. */
void upager__evict_meanwhile(void *p);
/* Whether free frames are below the low watermark, counting the batches
 * under way: upager__evict_meanwhile() would evict. */
bool upager__evict_due(struct upager *p);
size_t upager__reclaim_scratch_bytes(void);
int upager__evictor_start(struct upager *p);
void upager__evictor_stop(struct upager *p);
void upager__evictor_kick(struct upager *p);

/* Unmaps up to n mapped, unpinned pages from their application views
 * (they stay resident and come back with a minor fault): how a backend
 * with a mapping limit stays under it. Returns how many. */
unsigned upager__shed_mappings(struct upager *p, unsigned n);

/* ---- the fault path's helpers (pager.c) ---- */

/* The policy's hooks, each under the policy lock (the page's lock held). */
void upager__policy_insert(struct upager *p, uint32_t frame, uint64_t key, bool write);
void upager__policy_reference(struct upager *p, uint32_t frame, bool write);
void upager__policy_remove(struct upager *p, uint32_t frame, upager_policy_reason_t why);

/* A free frame, evicting if none is free; or a negative code. */
int64_t upager__get_frame(struct upager *p);
/* The same for a fault that will read its page in (and evict meanwhile). */
int64_t upager__get_frame_for(struct upager *p, bool reading);
/* The locked page e (page pg of r) was installed in frame, mapped
 * writable (and so dirty) if write: record it and tell the policy. */
/* guessed: mapped writable for a read, its checksum in the frame record
 * (PTE_GUESSED). */
void upager__fill_done(struct region *r, uint64_t pg, struct upte *e, uint32_t frame, bool write,
		       bool guessed);
/* The region holding [addr, addr+len), referenced; NULL with a message
 * naming `who` if there is none. */
struct region *upager__range_region(struct upager *p, void *addr, size_t len, const char *who);

/* ---- readahead and fault-around (prefetch.c) ---- */

/* The largest window in pages, and in bytes (for large pages). */
#define WINDOW_MAX 256
#define WINDOW_MAX_BYTES (1u << 20)

/* Pages after a faulting one, claimed (locked, each with a free frame). */
struct window {
	uint64_t first;
	unsigned n;
	struct upte *e[WINDOW_MAX];
	uint32_t frame[WINDOW_MAX];
};

/* The largest window for a zero-fill or a swap-in. */
unsigned upager__window_max(struct upager *p, bool zero);
/* How many pages after pg a fault on pg should bring in (0: none). */
unsigned upager__window_size(struct region *r, uint64_t pg, bool zero);
/* Claims up to want pages from first on that are in state, stopping at
 * the first that is not, is busy, or finds no free frame. */
void upager__window_claim(struct region *r, struct window *w, uint64_t first, uint32_t state,
			  unsigned want);
/* Gives back the window's pages from index `from` on, untouched. */
void upager__window_release(struct region *r, struct window *w, unsigned from);
/* The window's pages were installed and mapped: record, insert, unlock. */
/* guessed: mapped writable without a write, the checksums of what was
 * read in the frame records (PTE_GUESSED). */
void upager__window_commit(struct region *r, struct window *w, bool writable, bool guessed);
/* The window could not be installed: remove what reached the memfd or
 * the view, give the pages back. If the memory cannot be freed, the
 * pages stay resident (unmapped) with src's contents (the window's
 * pages in a row, which may be their own frames in the pager view when
 * they were read in place; NULL: zeros). */
void upager__window_discard(struct region *r, struct window *w, const char *src);
/* A fault on pg brought n more pages: where a sequential run goes on. */
void upager__window_done(struct region *r, uint64_t pg, unsigned n);
/* Reads the locked, swapped page pg (and a window of up to `window`
 * pages after it, or without a window some swapped pages around it) in
 * and installs it, writable if write. With sum, write is a guess: the
 * page's checksum goes there before it is mapped (PTE_GUESSED). Returns what
 * install() does (> 0: mapped writable regardless), or a negative code;
 * on a read error the page is POISONED. */
int upager__read_in(struct region *r, uint64_t pg, struct upte *e, bool write, uint64_t *sum,
		    unsigned window);
bool upager__write_likely(struct region *r, uint64_t pg, uint32_t f);
/* The scratch a fault needs in its ring. */
size_t upager__prefetch_scratch_bytes(void);
/* The readahead threads: started once (from a normal call, not a fault:
 * a file region's map, or the evictor once it has used swap), stopped
 * before the regions go. */
int upager__readahead_start(struct upager *p);
/* A fault on page pg of r: if it is a readahead marker, a stretch
 * further on is asked for (prefetch.c). */
void upager__readahead_marker(struct region *r, uint64_t pg);
/* The program touched page pg, read around a miss (PTE_AROUND, which the
 * caller holds the lock of and clears): counts the hit. */
void upager__readaround_hit(struct upager *p);
void upager__readahead_stop(struct upager *p);
/* The part of the readahead threads' buffers ever used (statistics). */
size_t upager__readahead_bytes(struct upager *p);

/* ---- sampling and recording (sample.c) ---- */

/* Unmaps a page from the application view so that its next access is a
 * minor fault that reports a reference. Called by policies through their
 * environment, under the policy lock: inside a reclaim the frame waits in
 * the reclaim's age queue, outside one it is unmapped at once. */
void upager__age_frame(void *pager, uint32_t frame);

#define AGE_QUEUE 256
struct aged {
	struct region *r;
	struct upte *e;
	uint64_t pg;
	uint32_t frame;
};

/* A reclaim's queue of aged frames (in its ring's scratch). */
struct age_queue {
	struct aged items[AGE_QUEUE];
	unsigned n;
	/* upager__age_queue_drain()'s batch, here rather than on a fault's stack */
	struct iovec iov[AGE_QUEUE];
	struct upte *locked[AGE_QUEUE];
};

/* Frames aged on this thread go to q until upager__age_queue_close()
 * (the reclaimer, under the policy lock). */
void upager__age_queue_open(struct age_queue *q);
void upager__age_queue_close(void);
/* Unmaps the queued frames' pages (policy lock not held), neighbours in
 * one call, and empties the queue. */
void upager__age_queue_drain(struct upager *p, struct age_queue *q);

/* Unmaps up to budget resident, mapped pages for sampling, walking the
 * regions' pages from where the last call stopped; returns how many.
 * Called by the evictor thread with no page lock held. */
uint64_t upager__sample(struct upager *p, uint64_t budget);
/* Unmaps pages first..first+n-1 of r, whose entries e[] the caller
 * locked, marks them sampled and unlocks them; returns how many. */
uint64_t upager__sample_run(struct upager *p, struct region *r, uint64_t first, unsigned n,
			    struct upte **e);
/* The n locked pages e[] were unmapped for sampling (if unmapped is
 * true; else the unmap failed and they stay as they were): marks them
 * and unlocks them. Returns how many were sampled. */
uint64_t upager__sample_done(struct upager *p, struct upte **e, unsigned n, bool unmapped);
/* Unmaps every resident, mapped page (a dense trace's sweep). */
uint64_t upager__sample_all(struct upager *p);
/* The samples the configured rate asks for, for the pages evicted since
 * the last call (evicted_unsampled). Evictor thread only. */
void upager__sample_owed(struct upager *p);
/* The evictor's periodic work: a dense trace's sweep when it is due.
 * Returns the nanoseconds until the next one (0: none pending). */
uint64_t upager__sample_tick(struct upager *p);
/* Starts the trace the configuration asks for (path may be NULL). */
int upager__trace_open_config(struct upager *p, const char *path);
void upager__trace_close(struct upager *p);
void upager__trace_slow(struct upager *p, uint64_t key, unsigned flags);
/* References recorded and dropped, over all traces of this pager. */
void upager__trace_counts(struct upager *p, uint64_t *recorded, uint64_t *dropped);

/* Records a reference if a trace is being recorded. */
static inline void upager__trace(struct upager *p, uint64_t key, unsigned flags)
{
	if (atomic_load_explicit(&p->trace, memory_order_relaxed))
		upager__trace_slow(p, key, flags);
}

/* Signals owned by a backend (signals.c). */
int upager__signal_own(int sig, void (*handler)(int, siginfo_t *, void *));
void upager__signal_release(int sig);
/* Passes a fault that is not upager's to the handler the program had. */
void upager__signal_pass_on(int sig, siginfo_t *si, void *uc);
/* Ends a fault that cannot be resolved in SIGBUS for the calling thread,
 * as the kernel would: the program's SIGBUS handler, or death. */
void upager__signal_raise_sigbus(uintptr_t addr, void *uc);

/* Frees every frame and swap slot of a region (unmap, close). */
void upager__region_release_pages(struct region *r);
/* A new region of len bytes (a multiple of the page size), not yet
 * visible; upager__region_publish() attaches and lists it. */
int upager__region_new(struct upager *p, size_t len, struct region **out);
/* upager_map() at a given page-aligned address, over whatever is mapped
 * there (MAP_FIXED): a forked child's pager takes over its parent's
 * regions' addresses (tools/upager-run/shim-fork.c). */
int upager__map_at(struct upager *p, void *at, size_t len);
/* Puts len bytes from buf (whole pages) into the pages at addr, which
 * must all be in one region and never touched, as their contents:
 * resident and dirty, not mapped, with no fault. Pages of buf that are
 * all zero are left as they are (they read as zero). For a forked
 * child's copy of its parent's memory. 0 or a negative code. */
int upager__load_pages(struct upager *p, void *addr, const void *buf, size_t len);
int upager__region_publish(struct region *r);
/* Frees a region that was never published. */
void upager__region_destroy(struct region *r);
/* The listed region based at base, or NULL. Not referenced: only for
 * callers that exclude unmapping (cow_lock held for writing). */
struct region *upager__region_at(struct upager *p, void *base);
/* Takes a region off the pager's list; false if it was not on it. */
bool upager__region_unlist(struct region *r);
/* Frees an unlisted region and its pages, once no fault holds it (so
 * never with cow_lock held). */
void upager__region_teardown(struct region *r);
/* Empties the locked page e (page pg of r): frees its frame and swap
 * copy; it reads as zero. -EBUSY if it is pinned. */
int upager__page_discard(struct region *r, uint64_t pg, struct upte *e);
/* Frees the memfd pages behind pages pg..pg+n-1 of r (their frames'
 * memory) and so takes them from every view: fallocate(PUNCH_HOLE),
 * retried on EINTR, else madvise(MADV_REMOVE) on the pager view. Every
 * page whose fallocate() failed counts in punch_failures. Returns 0, or
 * -errno when the memory is still allocated: the caller must then keep
 * the pages in their frames (the budget must not count them free). */
int upager__punch(struct region *r, uint64_t pg, uint64_t n);
/* Puts the locked, empty page e in frame, resident and dirty but not
 * mapped (its contents are already in the memfd), and tells the policy. */
void upager__page_install_unmapped(struct region *r, uint64_t pg, struct upte *e, uint32_t frame,
				   uint32_t extra_flags);

/* ---- copy-on-write (snapshot.c) ---- */

/* Returned by upager__cow_read_through(): a page it needed was busy; the
 * fault lets go of everything and tries again. */
#define COW_RETRY 1
/* Does the newest snapshot of r still share page pg with r (so that r's
 * page must not be written before it has its own copy)? Page lock held. */
bool upager__cow_shared(struct region *r, uint64_t pg);
/* Gives the newest snapshot of r its own copy of the locked page e
 * before e changes, unless it has one: 1 if it gave (a COW fault), 0 if
 * not, or a negative code. */
int upager__cow_push(struct region *r, uint64_t pg, struct upte *e);
/* Makes the locked, unowned page e of a snapshot or a clone its own:
 * the version it reads through to, copied or shared. 0, COW_RETRY, or a
 * negative code. */
int upager__cow_read_through(struct region *r, uint64_t pg, struct upte *e, bool write);
/* Frees every snapshot record (upager_close, after the regions). */
void upager__cow_close(struct upager *p);
/* Before a region that shares pages is unmapped: hands its pages to its
 * newest snapshot, lets go of what it read through. cow_lock held for
 * writing. Returns the snapshots' views that went with it, for
 * upager__cow_teardown() once cow_lock is released. */
struct region *upager__cow_region_leaving(struct region *r);
void upager__cow_teardown(struct region *doomed);

/* ---- zapping ranges of the views (fault.c) ---- */

/* Drops the page-table entries of n address ranges of this process (the
 * views' mappings keep their memfd pages): in one process_madvise() call
 * where the kernel allows it, so one TLB shootdown serves them all,
 * which on two CPUs is most of what an unmap costs. iov may be changed.
 * Returns 0 or -errno. */
struct iovec;
int upager__zap(struct upager *p, struct iovec *iov, unsigned n);
/* The same with another advice: MADV_REMOVE on pager-view ranges punches
 * them out of their memfds, one system call for all. */
int upager__advise_ranges(struct upager *p, struct iovec *iov, unsigned n, int advice);

/* The ranges of one upager__zap() call, gathered page run by page run:
 * a run that starts where the last one ended (same region and view)
 * extends its range. The caller gives iov room for one range per run. */
struct zap_list {
	struct iovec *iov;
	unsigned n;
	struct region *r; /* the last run's region, view and end */
	uint64_t next_pg;
	bool pager_view;
};
/* Adds pages pg..pg+n-1 of r's application view (or pager view). */
void upager__zap_add(struct upager *p, struct zap_list *z, struct region *r, uint64_t pg,
		     uint64_t n, bool pager_view);
/* Zaps the list's ranges and empties it: 0 or -errno (0 if empty). */
int upager__zap_list(struct upager *p, struct zap_list *z);

/* ---- errors and messages (error.c) ---- */

/* Records a detailed message for upager_last_error() and returns err. */
int upager__fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void upager__clear_error(void);

/* Async-signal-safe formatting into a fixed buffer. */
struct asbuf {
	char *buf;
	size_t len, cap;
};
void as_puts(struct asbuf *b, const char *s);
void as_hex(struct asbuf *b, uint64_t v);
void as_dec(struct asbuf *b, uint64_t v);
/* Writes s to stderr with write(2) alone. */
void upager__as_write(const char *s);
/* Sorts n elements of size bytes in place, as qsort() does but without
 * allocating: safe on the fault path. Not stable. */
void upager__sort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *));

/* ---- invariant checks (debug.c, configure --enable-debug) ---- */

#ifdef UPAGER_DEBUG
/* The rules of the locked entry e (page pg of r); aborts on a violation. */
void upager__debug_check_pte(struct region *r, uint64_t pg, struct upte *e);
/* After a fault, no lock held: every so many faults, walks the frame pool
 * and the regions' page tables. */
void upager__debug_after_fault(struct upager *p);
/* At close, with no fault running: the same walk, strictly. */
void upager__debug_at_close(struct upager *p);
#else
static inline void upager__debug_check_pte(struct region *r, uint64_t pg, struct upte *e)
{
	(void)r, (void)pg, (void)e;
}
static inline void upager__debug_after_fault(struct upager *p)
{
	(void)p;
}
static inline void upager__debug_at_close(struct upager *p)
{
	(void)p;
}
#endif

/* ---- time ---- */
uint64_t upager__now_ns(void);
void upager__record_latency(struct upager *p, uint64_t ns);

/* ---- observability (observe.c) ----
 *
 * The fault path leaves timestamps of its phases in the thread's miss
 * clock; upager__fault() turns them into the phase histograms when the
 * fault was a miss. A few clock reads per miss, none on a hit (a hit
 * takes no fault). */
struct miss_clock {
	uint64_t entry;    /* upager__entry_ns at the fault's start; 0: unknown */
	uint64_t start;    /* upager__fault()'s start */
	uint64_t locked;   /* page lock taken */
	uint64_t frame;    /* free frame in hand */
	uint64_t io0, io1; /* read submitted, completed (0: no read) */
	uint64_t overlap;  /* of io1 - io0, evicting while the read was out */
	uint64_t mapped;   /* installed in the view */
	bool miss;         /* went through fault_fill */
	uint64_t refault;  /* refault distance + 1, 0: not a refault */
};
extern __thread struct miss_clock upager__mc;
/* When the backend got the fault, set just before upager__fault(). */
extern __thread uint64_t upager__entry_ns;

/* Adds one occurrence of a phase that took ns. */
void upager__phase(struct upager *p, unsigned phase, uint64_t ns);
/* A miss starts stalling the program at t (upager__mc.start). */
void upager__stall_begin(struct upager *p, uint64_t t);
/* The miss that began at mc->start ended at end: phases, stall, and the
 * thrashing window. */
void upager__miss_done(struct upager *p, const struct miss_clock *mc, uint64_t end);
/* The locked page e, about to be filled: if it was evicted, note the
 * refault (its distance) in upager__mc and clear the mark. */
static inline void upager__refault_check(struct upager *p, struct upte *e)
{
	if (pte_flags(e) & PTE_EVICTED) {
		uint32_t now = (uint32_t)atomic_load_explicit(&p->stats.evictions,
							      memory_order_relaxed);
		upager__mc.refault = (uint64_t)(uint32_t)(now - e->frame) + 1;
		pte_update(e, PTE_EVICTED, 0);
	}
}
/* The locked page e leaves its frame by eviction: mark it. */
static inline void upager__evicted_mark(struct upager *p, struct upte *e)
{
	e->frame = (uint32_t)atomic_load_explicit(&p->stats.evictions, memory_order_relaxed);
	pte_update(e, 0, PTE_EVICTED);
}
void upager__observe_init(struct upager *p);
/* The estimate behind workingset_pages; thrashing as last judged. */
void upager__observe_fill(struct upager *p, upager_stats_t *out);

#endif /* UPAGER_INTERNAL_H */
