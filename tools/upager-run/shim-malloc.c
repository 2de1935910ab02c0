// SPDX-License-Identifier: MIT
/*
 * The malloc family, replaced as glibc's manual says a replacement malloc
 * must be ("Replacing malloc": malloc, free, calloc, realloc; and for
 * glibc's other entry points aligned_alloc, malloc_usable_size, memalign,
 * posix_memalign, pvalloc, valloc, plus reallocarray and cfree), with
 * glibc 2.36's behaviour for the edge cases: malloc(0) is a unique
 * pointer, realloc(p, 0) frees p and returns NULL, realloc(NULL, n) is
 * malloc(n), calloc and reallocarray fail with ENOMEM on an overflowing
 * product, memalign rounds an alignment that is not a power of two up to
 * one, aligned_alloc is memalign (the power-of-two check came in 2.38),
 * posix_memalign returns EINVAL for an alignment that is not a power of
 * two multiple of sizeof(void *), pvalloc rounds up to whole pages
 * (pvalloc(0) is memalign(page, 0), as in glibc).
 *
 * Three kinds of block, told apart by address at free, realloc and
 * malloc_usable_size time:
 *  - big blocks (at least shim_big_min bytes, 1 MiB): their own extent of
 *    the arena, with a 32-byte header in front; realloc grows them in
 *    place when the pages behind are free and gives back the tail when
 *    they shrink, so a buffer that grows by doubling is not copied;
 *  - heap blocks: the paged heap (shim-heap.c);
 *  - glibc blocks: everything allocated before the pager was up or from
 *    inside the library (shim.h). realloc of one after the pager is up
 *    moves it into paged memory.
 */
#include "config.h"

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"

#define BIG_MAGIC 0x7570616765726267ULL /* "upagerbg" */
#define MIN_ALIGN 16

struct big {
	uint64_t magic; /* BIG_MAGIC ^ the user pointer */
	size_t ext_len; /* the extent's length in bytes */
	size_t offset;  /* user pointer - extent base */
	size_t unused;
};

_Static_assert(sizeof(struct big) == 32, "big header keeps 16-byte alignment");

static inline bool paged(void)
{
	return shim_inside == 0 && atomic_load_explicit(&shim_ready, memory_order_acquire);
}

static struct big *big_hdr(const void *p)
{
	struct big *b = (struct big *)((uintptr_t)p - sizeof(struct big));

	if (((uintptr_t)p & (MIN_ALIGN - 1)) || b->magic != (BIG_MAGIC ^ (uintptr_t)p))
		return NULL;
	return b;
}

static void *big_alloc(size_t n, size_t align)
{
	size_t pg = arena_page(), off, len;
	char *ext;
	void *user;
	struct big *b;

	if (align < MIN_ALIGN)
		align = MIN_ALIGN;
	off = align > sizeof(struct big) ? align : sizeof(struct big);
	if (n > SIZE_MAX / 2 - off - pg)
		return NULL;
	len = (off + n + pg - 1) & ~(pg - 1);
	if (align > pg) /* the extent itself is only page aligned */
		len += align;
	ext = arena_alloc(len);
	if (!ext)
		return NULL;
	/* ext is page aligned, off a multiple of any alignment up to a page. */
	user = ext + off;
	if (align > pg)
		user = (void *)(((uintptr_t)ext + sizeof(struct big) + align - 1) & ~(align - 1));
	b = (struct big *)((char *)user - sizeof(struct big));
	b->magic = BIG_MAGIC ^ (uintptr_t)user;
	b->ext_len = len;
	b->offset = (size_t)((char *)user - ext);
	atomic_fetch_add_explicit(&shim_big_allocs, 1, memory_order_relaxed);
	return user;
}

static void big_free(void *p)
{
	struct big *b = big_hdr(p);
	char *ext;
	size_t len;

	if (!b)
		shim_bad_pointer("free", p);
	ext = (char *)p - b->offset;
	len = b->ext_len;
	b->magic = 0;
	arena_free(ext, len);
}

static size_t big_usable(const void *p)
{
	struct big *b = big_hdr(p);

	if (!b)
		shim_bad_pointer("malloc_usable_size", p);
	return b->ext_len - b->offset;
}

/* Any alignment that is a power of two, at least MIN_ALIGN. */
static void *alloc(size_t n, size_t align)
{
	void *p;

	if (n > PTRDIFF_MAX) {
		errno = ENOMEM;
		return NULL;
	}
	if (!paged()) {
		p = align <= MIN_ALIGN ? __libc_malloc(n) : __libc_memalign(align, n);
		return p;
	}
	fork_gate_enter();
	shim_enter();
	if (n >= shim_big_min)
		p = big_alloc(n, align);
	else
		p = heap_alloc(n, align);
	shim_leave();
	fork_gate_leave();
	if (!p)
		errno = ENOMEM;
	return p;
}

/* Where the system calls are wrapped, glibc's own buffers (stdio, DIR
 * streams) stay glibc's: glibc fills them with its internal system calls,
 * which cannot be wrapped (shim-sys.c). */
#define FROM_LIBC() (shim_wrap_syscalls && shim_called_from_libc(__builtin_return_address(0)))
/* The dynamic loader's memory stays glibc's on every backend and mode
 * (shim-sys.c says why). */
#define FROM_RTLD() shim_called_from_rtld(__builtin_return_address(0))

SHIM_API void *malloc(size_t n)
{
	if (FROM_LIBC() || FROM_RTLD())
		return __libc_malloc(n);
	return alloc(n, MIN_ALIGN);
}

void shim_free(void *p)
{
	int saved;

	if (!p)
		return;
	saved = errno; /* free never changes errno (POSIX 2024, glibc 2.33) */
	if (arena_owns(p)) {
		fork_child_copy(p);
		fork_gate_enter();
		shim_enter();
		big_free(p);
		shim_leave();
		fork_gate_leave();
	} else if (heap_owns(p)) {
		fork_child_copy(p);
		fork_gate_enter();
		shim_enter();
		heap_free(p);
		shim_leave();
		fork_gate_leave();
	} else {
		__libc_free(p);
	}
	errno = saved;
}

SHIM_API void free(void *p)
{
	shim_free(p);
}

void cfree(void *p);
SHIM_API void cfree(void *p)
{
	shim_free(p);
}

SHIM_API void *calloc(size_t n, size_t m)
{
	size_t total;
	void *p;

	if (__builtin_mul_overflow(n, m, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	if (!paged() || FROM_LIBC() || FROM_RTLD())
		return __libc_calloc(n, m);
	p = alloc(total, MIN_ALIGN);
	/* Arena extents are fresh or were dropped to zero when freed. */
	if (p && !arena_owns(p))
		memset(p, 0, total);
	return p;
}

SHIM_API size_t malloc_usable_size(void *p)
{
	size_t n;

	if (!p)
		return 0;
	if (arena_owns(p) || heap_owns(p))
		fork_child_copy(p);
	if (arena_owns(p))
		return big_usable(p);
	if (heap_owns(p)) {
		shim_enter();
		n = heap_usable(p);
		shim_leave();
		return n;
	}
	return shim_libc_usable(p);
}

/* Moves a block to a new one of n bytes. */
static void *move(void *p, size_t old_usable, size_t n)
{
	void *q = alloc(n, MIN_ALIGN);

	if (!q)
		return NULL;
	memcpy(q, p, old_usable < n ? old_usable : n);
	shim_free(p);
	return q;
}

static void *big_realloc(void *p, size_t n)
{
	struct big *b = big_hdr(p);
	size_t usable, pg = arena_page(), keep;
	char *ext;

	if (!b)
		shim_bad_pointer("realloc", p);
	usable = b->ext_len - b->offset;
	ext = (char *)p - b->offset;
	if (n <= usable) {
		/* Shrinking: give back whole pages beyond what is kept,
		 * unless the block would then be a heap block. */
		if (n < shim_big_min && paged())
			return move(p, usable, n);
		keep = (b->offset + n + pg - 1) & ~(pg - 1);
		if (b->ext_len - keep >= (shim_big_min >> 1)) {
			shim_enter();
			arena_free(ext + keep, b->ext_len - keep);
			shim_leave();
			b->ext_len = keep;
		}
		return p;
	}
	if (n > PTRDIFF_MAX - b->offset - pg) {
		errno = ENOMEM;
		return NULL;
	}
	/* Growing: in place if the pages behind are free; a buffer that
	 * keeps growing gets a quarter more than asked, as the kernel's
	 * mremap would let it grow freely. */
	keep = (b->offset + n + n / 4 + pg - 1) & ~(pg - 1);
	shim_enter();
	if (arena_grow(ext, b->ext_len, keep)) {
		b->ext_len = keep;
		shim_leave();
		return p;
	}
	shim_leave();
	return move(p, usable, n);
}

static void *paged_realloc(void *p, size_t n);

SHIM_API void *realloc(void *p, size_t n)
{
	void *q;

	if (FROM_RTLD() && !arena_owns(p) && !heap_owns(p))
		return __libc_realloc(p, n);
	if (!p)
		return alloc(n, MIN_ALIGN);
	if (n == 0) {
		shim_free(p);
		return NULL;
	}
	if (arena_owns(p) || heap_owns(p)) {
		fork_child_copy(p);
		fork_gate_enter();
		q = paged_realloc(p, n);
		fork_gate_leave();
		return q;
	}
	/* A glibc block: stays in glibc until the pager is up. */
	if (!paged())
		return __libc_realloc(p, n);
	return move(p, shim_libc_usable(p), n);
}

static void *paged_realloc(void *p, size_t n)
{
	bool to_big = n >= shim_big_min && paged();
	size_t u;
	void *q;

	if (arena_owns(p))
		return big_realloc(p, n);
	shim_enter();
	u = heap_usable(p);
	if (n <= u && n >= u / 2) {
		shim_leave();
		return p;
	}
	if (!to_big) {
		q = heap_realloc(p, n);
		shim_leave();
		return q;
	}
	shim_leave();
	return move(p, u, n);
}

SHIM_API void *reallocarray(void *p, size_t n, size_t m)
{
	size_t total;

	if (__builtin_mul_overflow(n, m, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc(p, total);
}

SHIM_API void *memalign(size_t align, size_t n)
{
	if (align <= MIN_ALIGN)
		return alloc(n, MIN_ALIGN);
	if (align > SIZE_MAX / 2 + 1) {
		errno = EINVAL;
		return NULL;
	}
	if (align & (align - 1)) /* glibc rounds up to a power of two */
		align = (size_t)1 << (64 - __builtin_clzl(align));
	return alloc(n, align);
}

SHIM_API void *aligned_alloc(size_t align, size_t n)
{
	return memalign(align, n);
}

SHIM_API int posix_memalign(void **out, size_t align, size_t n)
{
	int saved = errno;
	void *p;

	if (align % sizeof(void *) || (align & (align - 1)) || align == 0)
		return EINVAL;
	p = memalign(align, n);
	if (!p) {
		errno = saved;
		return ENOMEM;
	}
	errno = saved;
	*out = p;
	return 0;
}

SHIM_API void *valloc(size_t n)
{
	return memalign((size_t)sysconf(_SC_PAGESIZE), n);
}

SHIM_API void *pvalloc(size_t n)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE), r;

	if (__builtin_add_overflow(n, pg - 1, &r)) {
		errno = ENOMEM;
		return NULL;
	}
	r &= ~(pg - 1);
	return memalign(pg, r);
}

/*
 * dlopen(RTLD_DEEPBIND) binds the opened library's symbols to its own
 * dependencies, libc among them, before the global scope: its malloc and
 * free would be glibc's, not these, and a block allocated on one side and
 * freed on the other corrupts glibc's heap (PHP opens its extensions that
 * way: "double free or corruption" at startup). The flag is cleared, as
 * other malloc replacements and the sanitizers' runtimes require.
 *
 * dlopen finds the object that called it (whose RUNPATH and $ORIGIN it
 * uses, and its namespace) from its own return address, so the wrapper
 * must not be a new caller: on x86-64 it is a few instructions that end
 * in a jump to glibc's dlopen; elsewhere a tail call.
 */
#include <dlfcn.h>

__attribute__((visibility("hidden"))) void *(*shim_real_dlopen)(const char *, int);
__attribute__((visibility("hidden"))) void *shim_dlopen_resolve(void);

__attribute__((visibility("hidden"), used)) void *shim_dlopen_resolve(void)
{
	if (!shim_real_dlopen) {
		shim_enter();
		shim_real_dlopen = (void *(*)(const char *, int))dlsym(RTLD_NEXT, "dlopen");
		shim_leave();
	}
	return (void *)shim_real_dlopen;
}

#define SHIM_STR_(x) #x
#define SHIM_STR(x) SHIM_STR_(x)

#if defined(__x86_64__)
/* %esi: mode. The slow path keeps the arguments and the stack's 16-byte
 * alignment around the call that finds glibc's dlopen. */
__asm__(".text\n"
	".globl dlopen\n"
	".type dlopen, @function\n"
	"dlopen:\n"
#ifdef __CET__
	"	endbr64\n"
#endif
	"	testl $" SHIM_STR(
		RTLD_DEEPBIND) ", %esi\n"
			       "	jz 1f\n"
			       "	andl $~" SHIM_STR(
				       RTLD_DEEPBIND) ", %esi\n"
						      "	lock incq shim_deepbind_cleared(%rip)\n"
						      "1:	movq shim_real_dlopen(%rip), %rax\n"
						      "	testq %rax, %rax\n"
						      "	jz 2f\n"
						      "	jmp *%rax\n"
						      "2:	pushq %rdi\n"
						      "	pushq %rsi\n"
						      "	subq $8, %rsp\n"
						      "	call shim_dlopen_resolve\n"
						      "	addq $8, %rsp\n"
						      "	popq %rsi\n"
						      "	popq %rdi\n"
						      "	jmp *%rax\n"
						      ".size dlopen, .-dlopen\n");
#else
SHIM_API void *dlopen(const char *file, int mode)
{
	if (mode & RTLD_DEEPBIND) {
		atomic_fetch_add(&shim_deepbind_cleared, 1);
		mode &= ~RTLD_DEEPBIND;
	}
	return ((void *(*)(const char *, int))shim_dlopen_resolve())(file, mode);
}
#endif
