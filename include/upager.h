/* SPDX-License-Identifier: MIT */
/*
 * upager: a pager in user space.
 *
 * A program asks upager for a region of memory and uses it with ordinary
 * loads and stores. The pages of a region live in a bounded pool of frames
 * (the RAM budget); the MMU raises real page faults on the region and
 * upager resolves them like a kernel would: zero-fill on demand, swap-in
 * from a swap file written and read with io_uring, eviction of victims
 * chosen by a replaceable policy.
 *
 * Conventions: every function that can fail returns 0 (or a non-negative
 * value) on success and a negative code on failure: either -errno or one
 * of the UPAGER_E* codes below. upager_strerror() explains any of them and
 * upager_last_error() gives the detailed message of the last failure on
 * the calling thread. Nothing here sets errno.
 *
 * Threads. A process may open any number of pagers; every call below may
 * be made from any thread, with these exceptions and rules:
 *   - upager_close(p) is the last call on p: no other thread may be inside
 *     a call on p, or touch p's regions, snapshots or clones, while it
 *     runs or after.
 *   - On one pager, map, unmap, touch, pin, unpin, protect, advise,
 *     backend, stats, stats_print, trace_start and trace_stop may run
 *     concurrently with each other and with faults (per-page locks, a
 *     pager-wide lock for the list of regions). A call on a range whose
 *     region another thread is unmapping is safe (the region is freed
 *     after it): it returns 0 or an error (UPAGER_ENOREGION, -EAGAIN) and
 *     leaves nothing behind. Touching the memory of a region after its
 *     upager_unmap() is the program's bug (SIGSEGV).
 *   - upager_snapshot, upager_clone, upager_snapshot_restore,
 *     upager_snapshot_free and upager_unmap take the pager's
 *     copy-on-write lock for writing: they run one at a time per pager
 *     and wait for the faults in flight. upager_snapshot_restore() also
 *     needs that no other thread reads or writes the region while it runs.
 *   - A snapshot handle may be used by several threads at once
 *     (upager_snapshot_map, upager_snapshot_read), but not after, or
 *     concurrently with, its upager_snapshot_free().
 *   - upager_config_init() reads the environment: not safe against a
 *     concurrent setenv(). upager_strerror() returns constant strings;
 *     upager_last_error() is per thread; upager_parse_size() and
 *     upager_sim_run() keep no shared state; upager_policy_register() and
 *     upager_policy_list() take the registry's lock.
 *   - No call is async-signal-safe. Do not call upager from a signal
 *     handler, from the on_error callback, or from a policy hook: these
 *     may run inside the pager's fault path, which holds its locks.
 *   - After fork() the child has none of the parent's regions (they are
 *     MADV_DONTFORK) nor its pager threads: it must not use a pager
 *     opened by the parent.
 *
 * Signals. libupager defines sigaction() and signal() itself, and a
 * program linked with -lupager calls these instead of the C library's.
 * Why: a backend that resolves faults in a signal handler (the sigsegv
 * backend's SIGSEGV handler; the uffd backend's SIGBUS handler in fast
 * mode) must see every fault on its regions first, without taking the
 * signal away from the program. While a pager with such a backend is open
 * the library owns that signal: the handler it found when it took the
 * signal, and any handler the program (or a library such as libsigsegv)
 * installs later through sigaction() or signal(), is recorded as the
 * chained handler instead of replacing upager's, and is called, with the
 * original siginfo and context, for every fault that is not upager's; the
 * old handler reported to the caller is the chained one. With the default
 * action chained, such a fault kills the process with the same signal, as
 * without upager. For signals the library does not own, and when no pager
 * owns any, both calls go straight to the C library. When the last pager
 * using the signal closes, the chained handler is installed for real.
 * To turn it off, set UPAGER_SIGNAL_CHAIN=0 in the environment (read at
 * the first sigaction() or signal() call): both calls then go straight to
 * the C library, and a handler the program installs later replaces
 * upager's. Such a program must then pass every fault it does not own to
 * the handler sigaction() reported as the old one (upager's), and put
 * that handler back before the pager closes; otherwise faults on regions
 * reach the program as SIGSEGV. The uffd backend in transparent mode
 * owns no signal and needs neither. A program linked
 * statically against the library gets no interposition: it keeps
 * whatever SIGSEGV or SIGBUS handler it installs last.
 */
#ifndef UPAGER_H
#define UPAGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define UPAGER_API __attribute__((visibility("default")))
#else
#define UPAGER_API
#endif

/* The version of this header; upager_version() gives the library's. */
#define UPAGER_VERSION_MAJOR 0
#define UPAGER_VERSION_MINOR 1
#define UPAGER_VERSION_PATCH 0

/*
 * Layout versions of the public structs that can grow. A struct only ever
 * grows at its end; each one carries its size, so that a program built
 * against an older, smaller copy keeps working with a newer library:
 *
 *   upager_config_t  upager_config_init() fills at most the caller's
 *                    sizeof and stores it in ->size; upager_open() reads
 *                    only ->size bytes and gives every field beyond them
 *                    the default upager_config_init() would give it (the
 *                    built-in default, then the UPAGER_* environment).
 *   upager_stats_t   upager_stats() fills at most the caller's sizeof and
 *                    sets ->size to the bytes it filled; fields beyond it
 *                    were not written.
 *
 * Both are macros that pass sizeof(*ptr) to a sized function; a program
 * built before they existed calls the plain symbol, which fills the
 * layout of version 2 (the first published one) and never more.
 */
#define UPAGER_CONFIG_VERSION 3 /* 3: on_thrash */
#define UPAGER_STATS_VERSION 6  /* 3: punch_failures; 4: phases, thrashing; 5: read-around;
				 * 6: unchanged_drops */

/* Library error codes, below the errno range. */
#define UPAGER_EPAGESIZE (-10001) /* page size not a power of two in [4 KiB, 2 MiB] */
#define UPAGER_EBUDGET (-10002)   /* RAM budget below the minimum number of frames */
#define UPAGER_ESWAPPATH (-10003) /* swap path cannot be opened for reading and writing */
#define UPAGER_EPOLICY (-10004)   /* unknown policy or bad policy parameters */
#define UPAGER_EBACKEND (-10005)  /* unknown fault backend, or the one asked for is unusable */
#define UPAGER_EMODE (-10006)     /* unknown fault mode */
#define UPAGER_EENV (-10007)      /* an UPAGER_* environment variable has a bad value */
#define UPAGER_ESWAPFULL (-10008) /* no free swap slot for a dirty page */
#define UPAGER_ENOREGION (-10009) /* address is not inside (or not the base of) a region */
#define UPAGER_ECONFIG (-10010)   /* another configuration field is out of range */
#define UPAGER_EMAPCOUNT (-10011) /* the configuration would exceed vm.max_map_count */
#define UPAGER_EPOISON (-10012)   /* page lost to an earlier I/O error */
#define UPAGER_EORIGIN (-10013)   /* the snapshot's region is gone (restore) */
#define UPAGER_ESNAPSHOT (-10014) /* the address is a snapshot's view: use the snapshot calls */

typedef struct upager upager_t;

/* How faults are resolved (see README, "Fault modes"). */
typedef enum upager_mode {
	/* A handler thread resolves faults; system calls that touch region
	 * memory (read(2) into a region buffer, ...) just work. */
	UPAGER_MODE_TRANSPARENT = 0,
	/* The faulting thread resolves its own fault in a signal handler.
	 * Faster, but a system call that touches a page that is not mapped
	 * fails with EFAULT: call upager_touch() on its buffer first. */
	UPAGER_MODE_FAST = 1,
} upager_mode_t;

/* What the error callback is told when a fault cannot be resolved. */
typedef struct upager_error_info {
	int err;            /* -errno or UPAGER_E* code */
	void *region;       /* base address of the region */
	size_t region_len;  /* its length */
	size_t page_offset; /* offset of the failing page in the region */
	void *fault_addr;   /* the address that faulted (page aligned if unknown) */
	const char *cause;  /* one line: what failed */
} upager_error_info_t;

/*
 * Called from the fault path (possibly in a signal handler, possibly on a
 * pager thread) before the faulting thread gets SIGBUS. Keep it short and
 * async-signal-safe.
 */
typedef void (*upager_error_fn)(void *arg, const upager_error_info_t *info);

/* What the thrashing callback is told (see upager_thrash_fn). */
typedef struct upager_thrash_info {
	uint64_t window_ns;        /* the window these figures cover */
	uint64_t misses;           /* zero-fill and major faults in it */
	uint64_t refaults;         /* ... of pages evicted shortly before (fewer
				    * than 4 budgets' worth of evictions) */
	uint64_t stall_ns;         /* time at least one thread was stalled on a miss */
	uint64_t workingset_pages; /* the working set estimate */
	uint64_t budget_pages;     /* the RAM budget */
	uint64_t page_size;
} upager_thrash_info_t;

/*
 * Called when the pager starts thrashing (most misses refault pages
 * evicted shortly before, and misses stall the program most of the time),
 * at most once a minute, from the fault path (possibly in a signal
 * handler). Return true to have the one-line warning written to stderr
 * (UPAGER_STATS=1 writes it anyway). Keep it short and
 * async-signal-safe, as the error callback.
 */
typedef bool (*upager_thrash_fn)(void *arg, const upager_thrash_info_t *info);

/*
 * Configuration. Fill it with upager_config_init() (defaults, then the
 * UPAGER_* environment), change fields, pass it to upager_open(). Strings
 * are copied by upager_open().
 */
/* The field comments below are aligned by hand. */
/* clang-format off */
typedef struct upager_config {
	uint32_t size;        /* bytes of this struct the caller has: set by
			       * upager_config_init(), read by upager_open() */
	uint32_t version;     /* UPAGER_CONFIG_VERSION, set by upager_config_init() */
	size_t ram_bytes;     /* UPAGER_RAM: the RAM budget (resident pages), default 256M */
	size_t page_size;     /* UPAGER_PAGE_SIZE: power of two, 4K..2M, default 4K */
	const char *swap_path; /* UPAGER_SWAP: NULL = unnamed file in $TMPDIR;
				* a directory = unnamed file in it; a file or
				* block device = used as it is */
	uint64_t swap_max;    /* UPAGER_SWAP_MAX: swap capacity in bytes; 0 = the
			       * device size, or the file system's free space */
	const char *backend;  /* UPAGER_BACKEND: "auto" (default: uffd where the
			       * kernel allows it, else sigsegv), "uffd", "sigsegv" */
	const char *policy;   /* UPAGER_POLICY: "name[:key=value,...]", default "clock" */
	upager_mode_t mode;   /* UPAGER_MODE: "transparent" (default) or "fast" */
	unsigned handler_threads; /* UPAGER_THREADS: transparent mode, 0 = one per CPU
				   * (pinned to it on up to 4 CPUs) */
	int direct_io;        /* UPAGER_DIRECT_IO: 1 = O_DIRECT where possible (default) */
	unsigned evict_batch; /* UPAGER_EVICT_BATCH: victims per batch, 0 = automatic
			       * (budget/128 pages, 64 to 256) */
	unsigned free_low;    /* UPAGER_FREE_LOW: background eviction starts below
			       * this many free frames (0 = automatic) */
	unsigned free_high;   /* UPAGER_FREE_HIGH: ... and stops above this many */
	int print_stats;      /* UPAGER_STATS=1: print statistics to stderr at close */
	/* UPAGER_SAMPLE: pages whose referenced bit is sampled per page
	 * evicted, 0 to 64, default 1. A sampled page is unmapped, keeping
	 * its frame; its next access is a minor fault that reports the
	 * reference to the policy. 0: only the samples the policy asks for
	 * itself through env->age(). A policy that ages every page itself
	 * (UPAGER_POLICY_AGES_ALL: Clock) gets no other samples. */
	double sample_rate;
	/* UPAGER_TRACE: record page references to this file (upager trace
	 * format, docs/trace-format.md) from upager_open() to upager_close();
	 * see upager_trace_start(). */
	const char *trace_path;
	unsigned trace_interval_us; /* UPAGER_TRACE_INTERVAL: 0 = faults only */
	upager_error_fn on_error; /* optional, see upager_error_fn */
	void *on_error_arg;
	/* Set by upager_config_init() when an UPAGER_* variable did not
	 * parse; upager_open() then fails with UPAGER_EENV. */
	char env_error[120];
	/* Version 3. */
	upager_thrash_fn on_thrash; /* optional, see upager_thrash_fn */
	void *on_thrash_arg;
} upager_config_t;

#define UPAGER_LATENCY_BUCKETS 32

/*
 * The phases of a miss (a zero-fill or major fault) and of an eviction
 * batch, timed by the pager: phase_hist[phase] is a latency histogram
 * like latency_hist, phase_ns[phase] the total time. Miss phases count
 * once per miss that went through them; eviction phases once per batch
 * (divide phase_ns by evictions for a cost per page).
 */
enum upager_phase {
	/* From the handler getting the fault (signal handler entered,
	 * handler thread woken) to the pager's resolver; the kernel's part
	 * before it carries no timestamp and is not seen. */
	UPAGER_PHASE_ENTRY = 0,
	UPAGER_PHASE_LOCK = 1,  /* waiting for the page lock (and copy-on-write lock) */
	UPAGER_PHASE_FRAME = 2, /* getting a free frame, evicting for one if none is free */
	UPAGER_PHASE_IO = 3,    /* swap or file read, submit to completion */
	/* Installing the page in the view (UFFDIO_COPY, UFFDIO_CONTINUE,
	 * UFFDIO_ZEROPAGE; pwrite and mprotect). In transparent mode this
	 * call also wakes the faulting thread. */
	UPAGER_PHASE_MAP = 4,
	/* After the page is mapped: bookkeeping, the policy, unlocking and
	 * waking the threads that waited for the page. */
	UPAGER_PHASE_WAKE = 5,
	UPAGER_PHASE_MISS = 6,  /* the whole miss, from the resolver's start */
	UPAGER_PHASE_ZAP = 7,   /* eviction: unmapping, write-protecting, sorting the victims */
	UPAGER_PHASE_PUNCH = 8, /* eviction: freeing their memory (hole punch) */
	UPAGER_PHASE_WRITE = 9, /* eviction: writing the dirty ones, submit to completion */
};
#define UPAGER_PHASES 16 /* room for more phases; unused ones stay zero */

/*
 * Statistics. Counters only grow, except the gauges marked as such.
 * latency_hist[k] counts faults resolved in [2^k, 2^(k+1)) nanoseconds.
 */
typedef struct upager_stats {
	uint32_t size;    /* bytes upager_stats() filled: the smaller of the
			   * caller's sizeof and the library's */
	uint32_t version; /* UPAGER_STATS_VERSION of the library that filled it */
	uint64_t faults_zero;  /* first touch of a page: zero-filled */
	uint64_t faults_minor; /* page still in a frame: mapped again (reference) */
	uint64_t faults_major; /* page read back from swap */
	uint64_t faults_wp;    /* first write to a clean page (dirty bit) */
	uint64_t faults_cow;   /* first write to a page shared with a snapshot */
	uint64_t evictions;    /* pages that left their frame */
	uint64_t writebacks;   /* evictions that wrote the page to swap */
	uint64_t clean_drops;  /* evictions without a write: swap copy still valid */
	uint64_t zero_drops;   /* evictions of pages that held only zeros */
	uint64_t bytes_read;   /* swap I/O */
	uint64_t bytes_written;
	uint64_t io_submits;   /* io_uring_enter calls that submitted I/O */
	uint64_t io_errors;
	uint64_t direct_reclaims; /* faults that had to evict for a frame themselves */
	uint64_t samples;      /* pages unmapped to sample their referenced bit */
	uint64_t sample_faults; /* minor faults on sampled pages: the references
				 * sampling saw, and its cost in faults */
	uint64_t sample_ns;     /* time spent unmapping pages for sampling */
	uint64_t trace_records; /* references written to the trace */
	uint64_t trace_dropped; /* references lost to a trace write error */
	uint64_t readahead_pages;   /* swapped pages read in ahead of a fault
				     * (sequential runs, UPAGER_ADVICE_WILLNEED) */
	uint64_t faultaround_pages; /* pages zero-filled along with a faulting one */
	uint64_t pages_copied; /* copy-on-write: page contents copied between
				* a region and its snapshots or clones */
	uint64_t pages_shared; /* copy-on-write: pages handed to another sharer
				* without a copy (a swap slot or a zero page) */
	uint64_t snapshots;    /* gauge: live snapshots, including the hidden
				* ones that clones of a region read through */
	uint64_t pinned_pages; /* gauge: pages held by upager_pin() */
	uint64_t resident_pages; /* gauge: pages in frames */
	uint64_t frames_total;   /* gauge: the RAM budget in pages */
	uint64_t swap_slots_used;  /* gauge */
	uint64_t swap_slots_total; /* gauge */
	uint64_t regions;        /* gauge: live regions and clones (not snapshots) */
	uint64_t region_bytes;   /* gauge: their total size */
	uint64_t metadata_bytes; /* gauge: page tables, frame records, I/O buffers used */
	uint64_t page_size;
	uint64_t latency_hist[UPAGER_LATENCY_BUCKETS];
	uint64_t syscalls_transparent; /* 1: system calls on region memory
					* need no pin (transparent mode, full
					* userfaultfd) */
	char backend[16]; /* "uffd" or "sigsegv" */
	char mode[16];    /* "transparent" or "fast": the mode in effect */
	char policy[32];
	char backend_why[400]; /* why this backend: see upager_backend() */
	/* Version 3. */
	uint64_t punch_failures; /* pages whose memory fallocate() could not
				  * free; a fallback may have, else the page
				  * kept its frame */
	/* Version 4. */
	uint64_t phase_ns[UPAGER_PHASES]; /* see enum upager_phase */
	uint64_t phase_hist[UPAGER_PHASES][UPAGER_LATENCY_BUCKETS];
	uint64_t refaults;        /* misses on pages that were evicted before */
	uint64_t refaults_recent; /* ... less than frames_total evictions before:
				   * with twice the budget they would have hit */
	uint64_t workingset_pages; /* gauge: estimate of the pages the program
				    * keeps using (resident pages plus the
				    * recent refault distance) */
	uint64_t stall_ns;        /* time at least one thread was stalled on a
				   * miss (like the kernel's PSI "some") */
	uint64_t thrashing;       /* gauge: 1 while the last window judged thrashed
				   * (judged every 0.5 s of misses; 0 after a
				   * second without a miss) */
	uint64_t thrash_windows;  /* windows (about 0.5 s) that thrashed */
	uint64_t thrash_warnings; /* warnings written (at most one a minute) */
	/* Version 5. */
	uint64_t readaround_pages;   /* swapped pages read with a miss outside a
				      * sequential run, from around it */
	uint64_t readaround_watched; /* ... of them left unmapped, so that their
				      * use is seen */
	uint64_t readaround_hits;    /* ... of those, the ones the program used */
	/* Version 6. */
	uint64_t unchanged_drops; /* clean_drops of pages mapped writable when
				   * read (a guess that the program would write
				   * them) whose checksum showed no change */
} upager_stats_t;
/* clang-format on */

/*
 * Fills *cfg with defaults, then applies the UPAGER_* environment; writes
 * no more than size bytes (at least 8: size and version) and sets
 * cfg->size to what it wrote. Use the macro upager_config_init(cfg),
 * which passes sizeof(*cfg).
 */
UPAGER_API void upager_config_init_sized(upager_config_t *cfg, size_t size);
UPAGER_API void upager_config_init(upager_config_t *cfg); /* fills version 2's layout */
#define upager_config_init(cfg) upager_config_init_sized((cfg), sizeof(*(cfg)))

/*
 * Opens a pager: creates the frame pool, the swap file and the fault
 * backend. cfg may be NULL (defaults and environment). Only the first
 * cfg->size bytes of *cfg are read (-EINVAL if cfg->size is below 8);
 * the fields after them take the defaults of upager_config_init(),
 * environment included. Returns 0 and sets *out, or a negative code;
 * upager_last_error() says why.
 */
UPAGER_API int upager_open(const upager_config_t *cfg, upager_t **out);

/* Unmaps every region, stops the pager's threads, removes an unnamed swap
 * file. Returns 0 or a negative code. The last call on p: nothing else
 * may use p or its memory meanwhile or afterwards. */
UPAGER_API int upager_close(upager_t *p);

/*
 * Maps a new region of len bytes (rounded up to the page size). Its pages
 * read as zero until written. flags must be 0 (reserved). Returns 0 and
 * sets *addr (aligned to the page size), or a negative code.
 * Thread-safe: concurrent with any call on p except upager_close().
 */
UPAGER_API int upager_map(upager_t *p, size_t len, int flags, void **addr);

/* Unmaps the region based at addr, freeing its frames and swap slots.
 * Returns 0, or UPAGER_ENOREGION if addr is not a region's base.
 * Thread-safe; waits for the faults in flight. No thread may touch the
 * region's memory afterwards. */
UPAGER_API int upager_unmap(upager_t *p, void *addr);

/*
 * File regions: a region whose pages are read from a file (fd, from a
 * page-aligned offset) on first access, as with mmap() of the file.
 * Exactly one of SHARED (written pages go back to their place in the file
 * on eviction, upager_sync(), upager_unmap() and upager_close(); the file
 * never grows) or PRIVATE (written pages stay private, paged to swap);
 * RDONLY makes stores a SIGSEGV. Pages past the file's end read as zero.
 * The caller's fd is not changed and may be closed after the call.
 * Returns 0 and sets *addr, or -EINVAL (flags, offset, len), -EBADF (fd),
 * -EACCES (fd not open for reading, or not for writing with a writable
 * SHARED map), -ENODEV (not a regular file), or another negative code.
 * upager_snapshot() and upager_clone() of a file region give -ENOTSUP.
 */
#define UPAGER_MAP_SHARED 0x1
#define UPAGER_MAP_PRIVATE 0x2
#define UPAGER_MAP_RDONLY 0x4
UPAGER_API int upager_map_file(upager_t *p, int fd, uint64_t offset, size_t len, int flags,
			       void **addr);
/* As msync(MS_SYNC): the dirty pages of [addr, addr+len) of a shared file
 * region are written to the file, then the file is synced. Returns 0 or
 * the first write error since the last call (once). 0 for other regions. */
UPAGER_API int upager_sync(upager_t *p, void *addr, size_t len);

/*
 * Makes [addr, addr+len) resident and accessible (writable if write != 0).
 * In fast mode a system call that touches an unmapped page fails with
 * EFAULT; touching first makes that unlikely but not impossible, because
 * the pager may evict or sample the pages again at any time (another
 * thread's fault, the background evictor). Touch right before the call
 * and retry both on EFAULT, or use upager_pin() for a guarantee. Returns 0
 * or a negative code (UPAGER_ENOREGION if the range is not inside one
 * region of p). Thread-safe.
 */
UPAGER_API int upager_touch(upager_t *p, void *addr, size_t len, int write);

/*
 * Like upager_touch(), and the pages stay resident and mapped (writable if
 * write) until upager_unpin(): they are never evicted or sampled. Pins
 * nest. At most half the budget may be pinned at once (-ENOMEM beyond).
 * Wrap a system call on region memory in fast mode with pin and unpin;
 * pin for writing when the kernel writes into the buffer (read(2)).
 * Returns 0 or a negative code; on failure nothing stays pinned.
 * Thread-safe; a pin taken on one thread may be dropped on another.
 */
UPAGER_API int upager_pin(upager_t *p, void *addr, size_t len, int write);

/* Drops one pin from each page of [addr, addr+len). Returns 0 or a
 * negative code. Thread-safe. */
UPAGER_API int upager_unpin(upager_t *p, void *addr, size_t len);

#define UPAGER_PROT_NONE 0x0 /* same values as PROT_NONE, PROT_READ, PROT_WRITE */
#define UPAGER_PROT_READ 0x1
#define UPAGER_PROT_WRITE 0x2

/*
 * Sets the program's access rights on [addr, addr+len) (page aligned,
 * inside one region): UPAGER_PROT_NONE (guard pages), UPAGER_PROT_READ
 * (read-only) or UPAGER_PROT_READ|UPAGER_PROT_WRITE (the default). Pages
 * keep their contents and are paged as before. An access the protection
 * forbids is a real violation: the thread gets an ordinary SIGSEGV with
 * si_addr set, on every backend. Returns 0 or a negative code (-EINVAL
 * for a bad prot or an unaligned range, UPAGER_ENOREGION, UPAGER_ESNAPSHOT
 * for a snapshot's view). Thread-safe.
 */
UPAGER_API int upager_protect(upager_t *p, void *addr, size_t len, int prot);

/* The fault backend in use ("uffd" or "sigsegv"), and in *why (if not
 * NULL) why it was chosen: asked for by name, or what "auto" found.
 * Both strings live as long as p. Thread-safe; p must not be NULL. */
UPAGER_API const char *upager_backend(upager_t *p, const char **why);

/*
 * Copies the pager's statistics into *out, at most size bytes, and sets
 * out->size to the bytes filled (the smaller of size and the library's
 * sizeof(upager_stats_t)). Returns 0, or -EINVAL if p or out is NULL or
 * size is below 8 (the size and version fields). Use the macro
 * upager_stats(p, out), which passes sizeof(*out).
 */
UPAGER_API int upager_stats_sized(upager_t *p, upager_stats_t *out, size_t size);
UPAGER_API int upager_stats(upager_t *p, upager_stats_t *out); /* fills version 2's layout */
#define upager_stats(p, out) upager_stats_sized((p), (out), sizeof(*(out)))

/* Writes the statistics as readable lines ("key: value") to the file
 * descriptor fd. Returns 0 or a negative code (-EIO if a write fails).
 * Thread-safe. */
UPAGER_API int upager_stats_print(upager_t *p, int fd);

/* The library's version, "MAJOR.MINOR.PATCH": compare it with the
 * UPAGER_VERSION_* macros of the header a program was built with.
 * Thread-safe: the string is constant. */
UPAGER_API const char *upager_version(void);

/* Explains an error code returned by any upager function. Never NULL.
 * Thread-safe: the strings are constant. */
UPAGER_API const char *upager_strerror(int err);

/* The detailed message of the last failing call on this thread ("" if
 * none). Valid until the next upager call on the same thread. Each thread
 * has its own. */
UPAGER_API const char *upager_last_error(void);

/* Parses a size such as "4096", "64K", "512M", "2G" (binary units).
 * Returns 0 and sets *out, or -EINVAL. Thread-safe (no state). */
UPAGER_API int upager_parse_size(const char *s, uint64_t *out);

/*
 * Advice about how a range (inside one region) will be used, as
 * madvise(2) gives the kernel:
 *   NORMAL      readahead and fault-around grow with sequential faults
 *   SEQUENTIAL  always bring in the largest window after a fault
 *   RANDOM      never bring in more than the faulting page
 *   WILLNEED    read the range's swapped pages in now, in batches, mapped
 *               read-only (their first read does not fault)
 *   DONTNEED    drop the contents and the swap copies: the range reads as
 *               zero afterwards, its frames and slots are free
 * NORMAL, SEQUENTIAL and RANDOM apply to the whole region that holds the
 * range. Returns 0, -EINVAL (unknown advice), UPAGER_ENOREGION, -EBUSY
 * (DONTNEED on a pinned page, which is kept; the rest is dropped), -EACCES
 * (DONTNEED on a snapshot's view, which never changes), or the error of a
 * read (WILLNEED; the page is then lost, as on a fault). On a region with
 * snapshots, DONTNEED first gives them their copy of each page.
 * Thread-safe.
 */
#define UPAGER_ADVICE_NORMAL 0
#define UPAGER_ADVICE_SEQUENTIAL 1
#define UPAGER_ADVICE_RANDOM 2
#define UPAGER_ADVICE_WILLNEED 3
#define UPAGER_ADVICE_DONTNEED 4
UPAGER_API int upager_advise(upager_t *p, void *addr, size_t len, int advice);

/*
 * Records the page references this pager sees to path (created or
 * truncated) in upager's trace format, for upager-sim --format upager.
 * Keys are region_id << 44 | page. What is recorded:
 *
 *   dense_interval_us == 0: faults only. Every zero-fill, major, minor and
 *     write-protect fault, and the references sampling reports. This is
 *     the stream the policy saw, already filtered by the policy that ran:
 *     a hot page that stays mapped is seen once.
 *   dense_interval_us > 0: faults, and every dense_interval_us the whole
 *     resident set is unmapped, so the first access to each page in each
 *     interval is recorded (kind "sample"). Replaying this approximates
 *     the program's page reference string at that time resolution, with
 *     repeats within one interval collapsed; it costs one minor fault per
 *     resident page touched per interval.
 *
 * Returns 0, -EBUSY if a trace is being recorded, -EINVAL, or the -errno of
 * creating the file (with a message in upager_last_error()).
 * Thread-safe: one trace at a time per pager.
 */
UPAGER_API int upager_trace_start(upager_t *p, const char *path, unsigned dense_interval_us);
/* Stops recording and closes the file. Returns 0, -ENOENT if no trace is
 * being recorded, or the first write error (references were dropped).
 * Thread-safe; waits for the faults that are recording. */
UPAGER_API int upager_trace_stop(upager_t *p);

/* ---- snapshots and clones (copy-on-write) ----
 *
 * upager_snapshot() freezes a region's contents at this moment without
 * copying them: the region's pages become shared with the snapshot, and
 * the first write to a shared page (a copy-on-write fault) first gives the
 * old contents to the snapshot. Its cost is one write-protection pass over
 * the region's resident pages, whatever the region's size or how much of
 * it is in swap. A region may have any number of live snapshots.
 *
 * A snapshot's contents are read through upager_snapshot_map() (a
 * read-only view paged like a region: a write to it is an ordinary
 * SIGSEGV) or copied out with upager_snapshot_read(). Reading a page that
 * is still shared copies it into the snapshot's own frame if it is
 * resident, or shares its swap slot if it is not.
 *
 * upager_snapshot_restore() makes the region's contents the snapshot's
 * again; the region's later snapshots keep theirs. No other thread may
 * touch the region while it runs.
 *
 * upager_clone() makes a new writable region (unmapped with upager_unmap)
 * that starts as a copy of a region, or of a snapshot named by the address
 * upager_snapshot_map() gave; the two share their pages until either
 * writes one. Snapshots, clones and regions may be freed in any order:
 * a page's frame and swap slot are freed when its last sharer lets go.
 *
 * Errors: UPAGER_ENOREGION (not a region's base), UPAGER_ESNAPSHOT
 * (upager_snapshot or upager_unmap given a snapshot's view), UPAGER_EORIGIN
 * (restore of a snapshot whose region was unmapped), -EINVAL, -ENOMEM.
 *
 * Threads: snapshot, clone, restore and free run one at a time per pager
 * and wait for the faults in flight; map and read may run on several
 * threads at once. A snapshot handle must not be used after, or during,
 * its upager_snapshot_free().
 */
typedef struct upager_snapshot upager_snapshot_t;
UPAGER_API int upager_snapshot(upager_t *p, void *region, upager_snapshot_t **out);
/* The snapshot's read-only view; the same address on every call. */
UPAGER_API int upager_snapshot_map(upager_snapshot_t *s, void **addr);
/* Copies len bytes from offset off of the snapshot into buf; -EINVAL if
 * the range is not inside the region. buf may be anywhere, in a region too. */
UPAGER_API int upager_snapshot_read(upager_snapshot_t *s, size_t off, void *buf, size_t len);
UPAGER_API int upager_snapshot_restore(upager_snapshot_t *s);
/* Releases the snapshot and its view; clones made from it live on. Pins
 * on view pages are dropped, as upager_unmap() drops a region's pins: the
 * view is no longer the program's to unpin, even while a clone still
 * reads through the snapshot. */
UPAGER_API int upager_snapshot_free(upager_snapshot_t *s);
UPAGER_API int upager_clone(upager_t *p, void *region, void **new_region);

/* ---- replacement policies ----
 *
 * A policy decides which page leaves the frame pool; the pager acts on the
 * verdict. It is a struct of callbacks plus private state, registered by
 * name with upager_policy_register() and chosen with the configuration's
 * policy string or UPAGER_POLICY=name[:key=value,...]. The same policy
 * runs in a live pager and in the simulator (upager_sim_run, upager-sim).
 *
 * The host (pager or simulator) numbers its frames 0..nframes-1 and tells
 * the policy about them:
 *
 *   insert(frame, key, write)  a page entered the frame: it was filled
 *                              (zero, swap-in) or taken back after a failed
 *                              eviction. key names the page for as long as
 *                              it exists, so ghost lists can remember it.
 *   reference(frame, write)    a reference to the resident page was seen: a
 *                              minor fault after sampling in the pager, every
 *                              hit in the simulator. Also called when a
 *                              victim turned out to be busy.
 *   remove(frame, why)         the page left the frame: UPAGER_POLICY_EVICTED
 *                              (it was the policy's own victim) or
 *                              UPAGER_POLICY_FREED (unmapped, discarded,
 *                              or pinned: a pinned page is out of the
 *                              policy until its last upager_unpin(), which
 *                              inserts it again).
 *   victim()                   name a frame to evict, or -1 if none is
 *                              tracked. victim() must not forget the frame:
 *                              the host either evicts it, calling
 *                              remove(frame, EVICTED), or, when the page is
 *                              busy, calls reference(frame) and asks again.
 *                              Named again while still busy, the frame is
 *                              removed (FREED) until the host has its
 *                              victims, then inserted again.
 *   miss(key, write)           optional: a host that knows which page is
 *                              about to come in (the simulator always) says
 *                              so before the victim() and insert() it
 *                              causes. Adaptive policies (ARC) use it to
 *                              pick that victim exactly as their paper does;
 *                              without it they adapt in insert().
 *
 * Contract:
 *   - Every hook is called with the pager's policy lock held, so a policy
 *     needs no lock of its own; insert, reference and remove are also
 *     called with the page's lock held. Hooks run on the fault path
 *     (possibly in a signal handler): no allocation after create(), no
 *     I/O, no sleeping, no calls into the pager other than env->age().
 *     Size per-frame state and bounded ghost lists in create().
 *   - env->age(env->host, frame): the policy consumed the frame's
 *     referenced bit (a clock hand cleared it). The pager then unmaps the
 *     page so that its next access is reported through reference(); the
 *     simulator reports every access anyway and ignores it.
 *   - create() gets the parameters after the ':' of the policy string
 *     ("" if none) and must reject keys it does not know (-EINVAL or
 *     UPAGER_EPOLICY): upager_open() then fails with UPAGER_EPOLICY.
 */

/* The version of upager_policy_ops_t and its contract; register() refuses
 * any other. */
#define UPAGER_POLICY_ABI 1

typedef enum upager_policy_reason {
	UPAGER_POLICY_EVICTED = 0, /* the policy's own victim (a ghost may remember it) */
	UPAGER_POLICY_FREED = 1,   /* the page was unmapped or discarded */
} upager_policy_reason_t;

/* What the host offers a policy; valid from create() to destroy(). */
typedef struct upager_policy_env {
	uint32_t nframes; /* frames are 0..nframes-1 */
	void (*age)(void *host, uint32_t frame);
	void *host;
	uint64_t seed; /* for randomised policies */
} upager_policy_env_t;

typedef struct upager_policy_ops {
	uint32_t abi;        /* UPAGER_POLICY_ABI */
	uint32_t size;       /* sizeof(upager_policy_ops_t) */
	const char *name;    /* [a-z0-9_-]+, unique */
	const char *summary; /* one line for listings */
	/* params: "key=value,..." or "". Returns 0 and sets *state, or a
	 * negative code. */
	int (*create)(const upager_policy_env_t *env, const char *params, void **state);
	void (*destroy)(void *state);
	void (*insert)(void *state, uint32_t frame, uint64_t key, bool write);
	void (*reference)(void *state, uint32_t frame, bool write);
	void (*remove)(void *state, uint32_t frame, upager_policy_reason_t why);
	int64_t (*victim)(void *state);
	void (*miss)(void *state, uint64_t key, bool write); /* optional, may be NULL */
	/* A policy built against a header without this field has a
	 * smaller size, and no flags. */
	uint32_t flags; /* UPAGER_POLICY_* below */
} upager_policy_ops_t;

/* In flags: every page the policy tracks is aged (env->age()) after its
 * insert and before it can be its victim, and every aging is followed by
 * reference() on the page's next access (Clock: insert sets the bit, the
 * hand clears it with an aging before it evicts). The pager's own samples
 * (upager_config_t's sample_rate) would then find only bits the policy
 * already has: such a policy gets none. */
#define UPAGER_POLICY_AGES_ALL 0x1u

/*
 * Registers a policy by name for every pager opened afterwards in this
 * process. ops must stay valid (usually a static const struct). Returns 0,
 * -EEXIST if the name is taken (built-in or registered), -EINVAL if ops is
 * malformed (ABI, size, name, a missing mandatory hook), -ENOSPC when the
 * table of registered policies is full. Thread-safe.
 */
UPAGER_API int upager_policy_register(const upager_policy_ops_t *ops);

/*
 * Lists the built-in and registered policies: fills out[0..max-1] and
 * returns how many there are in all (may exceed max; out may be NULL when
 * max is 0). Thread-safe.
 */
UPAGER_API size_t upager_policy_list(const upager_policy_ops_t **out, size_t max);

/* ---- simulation ----
 *
 * Replays a reference string through a policy hosted exactly as the pager
 * hosts it, but with every reference reported: a cache of `frames` pages,
 * starting empty. A reference to a resident page is a hit; any other
 * reference is a miss (cold misses count) that brings the page in,
 * evicting the policy's victim when the cache is full.
 */
typedef struct upager_sim_result {
	uint64_t requests;
	uint64_t hits;
	uint64_t writes; /* requests with the write bit */
	uint64_t evictions;
} upager_sim_result_t;

/*
 * Runs policy spec ("name[:params]" of any built-in or registered policy,
 * or "opt" for Belady's optimum) over keys[0..n-1]; writes[i] != 0 marks a
 * write (writes may be NULL). Returns 0 and fills *out, UPAGER_EPOLICY for
 * an unknown policy or bad parameters, -EINVAL for frames == 0, -ENOMEM,
 * or -EPROTO when the policy broke the contract (named no victim with a
 * full cache, or a frame that holds no page). Thread-safe: each run has
 * its own state (the policy's hooks run on the calling thread).
 */
UPAGER_API int upager_sim_run(const char *spec, uint32_t frames, const uint64_t *keys,
			      const uint8_t *writes, size_t n, upager_sim_result_t *out);

/* ---- the out-of-core heap ----
 *
 * malloc-style calls whose blocks live in a region of the pager, so a
 * program can build a hash table, a tree or a graph many times larger
 * than the RAM budget and walk it with plain pointers. The allocator is
 * mimalloc, given the region as its arena (see README, "Heap").
 *
 * upager_heap_open() reserves max_bytes of address space in a region of p
 * (0: the pager's swap capacity plus its RAM budget, at most 64 GiB;
 * rounded up to 32 MiB). Only what is written costs frames or swap.
 * Returns 0 and sets *out, -EINVAL, -ENOMEM, -ENOSPC (mimalloc keeps at
 * most 64 arenas per process; a closed heap's is reused only by a heap of
 * the same size whose region lands at the same address), or the error of
 * upager_map(). Close every heap before its pager.
 *
 * upager_heap_close() frees every block and unmaps the region. No other
 * thread may use the heap while it runs. Returns 0 or a negative code.
 *
 * The allocation calls follow C and glibc, and like them set errno:
 * malloc(0) returns a unique pointer; free(NULL) does nothing;
 * realloc(NULL, n) is malloc(n); realloc(p, 0) frees p and returns NULL;
 * a failed realloc leaves the block as it was; calloc checks n * size for
 * overflow; every block is aligned to at least 16 bytes; aligned_alloc
 * takes any power of two (beyond the page size too; EINVAL otherwise).
 * Failure returns NULL with errno ENOMEM. Any thread may allocate, and any
 * thread may free a block another thread allocated.
 *
 * upager_free() and upager_realloc() of a pointer the heap cannot own
 * (outside its address range, not 16-byte aligned, or in a part of the
 * range the heap never allocated from) do nothing else than report it:
 * a line on stderr, the pager's error callback (err -EINVAL, fault_addr
 * the pointer), upager_last_error(), and the bad_frees counter. A pointer
 * inside a live part of the range that is not a live block (a double
 * free, an interior pointer) is not detected: that is undefined, as with
 * malloc.
 *
 * In fast mode a system call that writes into a heap block needs
 * upager_touch() or upager_pin() first, as for any region memory.
 */
typedef struct upager_heap upager_heap_t;
UPAGER_API int upager_heap_open(upager_t *p, uint64_t max_bytes, upager_heap_t **out);
UPAGER_API int upager_heap_close(upager_heap_t *h);
UPAGER_API void *upager_malloc(upager_heap_t *h, size_t size);
UPAGER_API void *upager_calloc(upager_heap_t *h, size_t n, size_t size);
UPAGER_API void *upager_realloc(upager_heap_t *h, void *ptr, size_t size);
UPAGER_API void *upager_aligned_alloc(upager_heap_t *h, size_t align, size_t size);
UPAGER_API void upager_free(upager_heap_t *h, void *ptr);
/* The usable size of a block (at least what was asked), 0 for NULL or a
 * pointer the heap does not own. */
UPAGER_API size_t upager_malloc_usable_size(upager_heap_t *h, const void *ptr);
/* Is ptr inside the heap's address range? Cheap (two compares); true for
 * any address in the range, a block's interior or freed memory too. */
UPAGER_API bool upager_heap_owns(upager_heap_t *h, const void *ptr);

#define UPAGER_HEAP_STATS_VERSION 1

/* Heap statistics. Set size to sizeof(upager_heap_stats_t) before the
 * call; the library fills at most that many bytes and sets size to what
 * it filled. */
typedef struct upager_heap_stats {
	uint32_t size;
	uint32_t version;
	uint64_t max_bytes;          /* the heap's address space */
	uint64_t bytes_requested;    /* sum of the sizes asked for, every call so far */
	uint64_t bytes_live;         /* gauge: usable bytes of the live blocks */
	uint64_t blocks_live;        /* gauge: live blocks */
	uint64_t bytes_held;         /* gauge: bytes of the pages the allocator has
				   * carved into blocks (live or free) */
	uint64_t bytes_reserved;     /* gauge: bytes of those pages' address space */
	uint64_t address_space_used; /* gauge: from the heap's start to the end
				      * of its highest page in use */
	uint64_t mallocs;   /* blocks handed out (malloc, calloc, realloc, aligned_alloc) */
	uint64_t frees;     /* blocks given back */
	uint64_t failed;    /* allocations that returned NULL (heap full) */
	uint64_t bad_frees; /* free or realloc of a pointer the heap does not own */
	uint32_t shards;    /* allocator instances (mutex + mimalloc heap each) */
	uint32_t reserved0;
} upager_heap_stats_t;
/* Fills *out (see above). Returns 0 or -EINVAL. UPAGER_STATS=1 prints
 * these at upager_heap_close(). */
UPAGER_API int upager_heap_stats(upager_heap_t *h, upager_heap_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif /* UPAGER_H */
