/* SPDX-License-Identifier: MIT */
/*
 * The preload shim's shared state (libupager-preload.so, loaded into the
 * program by upager-run). One file per job: shim-init.c (the pager, the
 * environment, statistics at exit, the library's own allocations),
 * shim-malloc.c (the malloc family), shim-arena.c (page-granular extents
 * in one big region), shim-mmap.c (the mmap family), shim-sys.c (system
 * call wrappers for the modes where the kernel cannot fault in paged
 * memory), shim-fork.c (fork).
 *
 * Who allocates where:
 *  - the program, once the pager is up: paged memory (the heap, the
 *    arena);
 *  - everything else: glibc's own allocator, reached through its exported
 *    __libc_malloc family. That is the bootstrap allocator (the dynamic
 *    loader, dlsym, constructors that run before the pager is up), the
 *    library's own metadata (its objects are linked with --wrap=malloc
 *    and friends, see Makefile.am), the pager's threads (every thread the
 *    library creates is marked), and any code that runs inside the
 *    library or inside the fault path (a thread-local depth counter).
 *  Free tells the two apart by address: the heap and the arena are each
 *  one contiguous range.
 */
#ifndef UPAGER_SHIM_H
#define UPAGER_SHIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdatomic.h>

#include "upager.h"

#define SHIM_API __attribute__((visibility("default")))
#define TLS_IE __attribute__((tls_model("initial-exec")))

/* > 0: this thread is inside the library, on the fault path, or is one
 * of the pager's threads; its allocations go to glibc. */
extern __thread int shim_inside TLS_IE;

/* The pager and whether the paged heap is ready for the program. */
extern upager_t *shim_pager;
extern _Atomic int shim_ready;
/* 1 when system calls on paged memory need the runner's help (fast mode,
 * sigsegv backend, or userfaultfd without kernel-fault handling). */
extern int shim_wrap_syscalls;
/* 0: anonymous mmaps stay the kernel's (shim-init.c says when). */
extern int shim_page_mmaps;
/* The program brings a malloc of its own (another than the shim's). */
extern int shim_own_malloc;
/* 0 (UPAGER_RUN_CHILD_PAGER=0): a forked child's copy of the paged memory
 * is ordinary memory, never a pager of its own. */
extern int shim_child_pagers;
/* --stats was given: say more about what was done. */
bool shim_stats_asked(void);
/* 1 on the userfaultfd backend, where the pager leaves a mapping's
 * protection alone (an execute right survives faults and evictions). */
extern int shim_backend_uffd;
/* Large private anonymous mmaps at least this long go to the arena. */
extern size_t shim_mmap_min;
/* malloc requests at least this long go to the arena instead of the heap. */
extern size_t shim_big_min;

/* Counters for --stats. */
extern _Atomic uint64_t shim_mmaps, shim_mmap_bytes, shim_big_allocs, shim_forks;
/* dlopen() calls whose RTLD_DEEPBIND was cleared (shim-malloc.c). */
extern _Atomic uint64_t shim_deepbind_cleared __attribute__((visibility("hidden")));

static inline void shim_enter(void)
{
	shim_inside++;
}
static inline void shim_leave(void)
{
	shim_inside--;
}

/* glibc's allocator (bootstrap and internal memory). */
void *__libc_malloc(size_t);
void *__libc_calloc(size_t, size_t);
void *__libc_realloc(void *, size_t);
void *__libc_memalign(size_t, size_t);
void __libc_free(void *);
size_t shim_libc_usable(void *p);
/* The program's free (any kind of block). */
void shim_free(void *p);

/* Prints a one-line message to stderr without allocating. */
void shim_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Reports a bad free/realloc pointer as glibc does, and aborts. */
void shim_bad_pointer(const char *what, const void *p) __attribute__((noreturn));

/* Opens the pager if not done yet (constructor, or first allocation). */
void shim_init(void);

/* ---- the arena: page-granular extents of one big region ---- */
int arena_open(upager_t *p, size_t want);
/* Forgets the arena when the pager that holds its region is closed. */
void arena_forget(void);
bool arena_owns(const void *addr);
/* An extent of len bytes (page multiple) reading as zero, or NULL. */
void *arena_alloc(size_t len);
/* Returns [addr, addr+len) to the arena (idempotent per page). */
void arena_free(void *addr, size_t len);
/* Grows [addr, addr+oldlen) to newlen in place if the pages after it are
 * free; returns true if it did. */
bool arena_grow(void *addr, size_t oldlen, size_t newlen);
size_t arena_page(void);
/* [addr, addr+len) was mprotect()ed to something other than read-write
 * (on), or back (off): a free resets it. */
void arena_protected(const void *addr, size_t len, bool on);
void arena_stats(uint64_t *bytes_used, uint64_t *bytes_span);
/* The arena region's base and length (fork). */
void arena_range(void **base, size_t *len);

/* ---- the heap: small and medium blocks ---- */
int heap_open(upager_t *p);
bool heap_owns(const void *addr);
void *heap_alloc(size_t n, size_t align);
void *heap_realloc(void *ptr, size_t n);
void heap_free(void *ptr);
size_t heap_usable(const void *ptr);
void heap_print_stats(int fd);

/* ---- system call wrappers (shim-sys.c) ---- */
/* After the pager is open: the piece size, and libc's code range. */
void sys_init(size_t budget);
/* Is ret (a return address) inside libc.so's code? Only known when the
 * system calls are wrapped. */
bool shim_called_from_libc(const void *ret);
/* Is ret inside the dynamic loader's code? (Always known.) */
bool shim_called_from_rtld(const void *ret);

size_t heap_used_span(void);

/* ---- the pager's own descriptors (src/fds.c, shim-fds.c) ---- */
int upager__fd_keep(int fd);
int upager__fd_close(int fd);
bool upager__fd_owned(int fd);
int upager__fd_next_owned(int from);
void upager__fd_forget_all(void);

/* ---- a forked child's own pager (src/region.c, src/pager.c) ---- */
void upager__registry_forget_all(void);
int upager__map_at(upager_t *p, void *at, size_t len);
int upager__load_pages(upager_t *p, void *addr, const void *buf, size_t len);
bool upager__is_zero(const void *buf, size_t len);
/* Opens the pager of a forked child that uses its copy of the paged
 * memory (shim-init.c). */
int shim_open_child_pager(upager_t **out);

/* ---- fork (shim-fork.c) ---- */
void fork_init(void);
/* 1 in a child forked without exec: shim_pager is the parent's until the
 * child's copy of the paged memory is fetched into a pager of its own. */
extern int shim_in_child;
/* In a forked child whose paged memory is not (or not yet) its own
 * pager's: the kernel's calls apply to it. */
bool shim_child_unpaged(void);
/* Around every call that uses the heap or the arena: fork() waits for the
 * calls in flight and holds new ones while it snapshots. */
void fork_gate_enter(void);
void fork_gate_leave(void);
/* In a forked child: fetch the copy of the paged memory before p (a
 * paged address) is used. */
void fork_child_copy(const void *p);

/* In paged memory (the heap or the arena). In a forked child whose copy
 * of the paged memory is still at the parent, the copy is fetched here,
 * before the system call the caller is about to make: the kernel's
 * access to a placeholder fails with EFAULT and raises no signal that
 * would fetch it (execve of a path built on the heap failed so in the
 * Erlang VM's child). Every wrapper of a call that takes a pointer asks
 * this first. */
static inline bool shim_paged(const void *p)
{
	if (!p || !(heap_owns(p) || arena_owns(p)))
		return false;
	fork_child_copy(p);
	return true;
}

/* The next definition of name (libc's), found once. The type argument is
 * for the reader; the declaration in libc's header gives the real one. */
#define REAL(name, type)                                                  \
	static __typeof__(&name) real_##name;                             \
	if (!real_##name) {                                               \
		shim_enter();                                             \
		real_##name = (__typeof__(&name))dlsym(RTLD_NEXT, #name); \
		shim_leave();                                             \
	}

#endif
