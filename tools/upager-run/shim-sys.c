// SPDX-License-Identifier: MIT
/*
 * System calls on paged memory where the kernel cannot resolve a fault on
 * it: fast mode, the sigsegv backend, and userfaultfd limited to user-mode
 * faults (unprivileged, vm.unprivileged_userfaultfd=0). There a system
 * call whose buffer has an evicted or not yet touched page fails with
 * EFAULT (or stops short). In those modes only (shim_wrap_syscalls):
 *
 *  - the libc calls that take user buffers are wrapped: the buffer's
 *    pages in the heap or the arena are pinned (upager_pin: resident,
 *    mapped and never evicted) for the duration of the call. A buffer too
 *    big to pin at once (pins are limited to half the budget) is done in
 *    pieces: reads return after the first piece (a short read, which
 *    every caller of read must handle), writes go on piece after piece.
 *  - memory that glibc allocates for itself (stdio buffers, DIR streams,
 *    ...) stays glibc's: malloc called from inside libc.so returns glibc
 *    memory, because glibc fills those buffers with its internal system
 *    calls, which cannot be wrapped.
 *
 * What cannot be covered is listed in the README ("Running programs"):
 * system calls made with syscall(2) or inline assembly, futexes of
 * mutexes and condition variables that live in paged memory (glibc
 * aborts on EFAULT from futex), io_uring and AIO buffers, and the calls
 * not wrapped here.
 */
#include "config.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/select.h>
#include <sys/auxv.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim.h"

static size_t chunk = 1u << 20; /* largest piece pinned at once */
/* The code of libc and of the dynamic loader: calls from there are told
 * apart by their return address. */
struct code_range {
	const char *name; /* an object whose path contains it, or */
	uintptr_t base;   /* the one loaded here */
	uintptr_t lo, hi;
};

static struct code_range libc_code = { .name = "/libc.so" };
/* The dynamic loader allocates link maps, symbol scopes and TLS blocks of
 * libraries opened with dlopen() through the program's malloc. Those must
 * not be paged: the pager's own threads walk them when they bind a symbol
 * lazily (the evictor's first io_uring call in ruby, which dlopen()s its
 * extensions, faulted on an evicted scope and waited for itself). */
static struct code_range rtld_code;

static int find_code(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct code_range *c = arg;

	(void)size;
	if (c->name ? !strstr(info->dlpi_name, c->name) : info->dlpi_addr != c->base)
		return 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
			c->lo = info->dlpi_addr + ph->p_vaddr;
			c->hi = c->lo + ph->p_memsz;
			return 1;
		}
	}
	return 0;
}

static bool in_code(const struct code_range *c, const void *ret)
{
	return (uintptr_t)ret - c->lo < c->hi - c->lo;
}

void sys_init(size_t budget)
{
	chunk = budget / 8 & ~(size_t)0xfff; /* whole pages: O_DIRECT pieces stay aligned */
	if (chunk < (64u << 10))
		chunk = 64u << 10;
	if (shim_wrap_syscalls)
		dl_iterate_phdr(find_code, &libc_code);
	rtld_code.base = (uintptr_t)getauxval(AT_BASE);
	if (rtld_code.base)
		dl_iterate_phdr(find_code, &rtld_code);
}

bool shim_called_from_libc(const void *ret)
{
	return in_code(&libc_code, ret);
}

bool shim_called_from_rtld(const void *ret)
{
	return in_code(&rtld_code, ret);
}

static inline bool is_paged(const void *p)
{
	return shim_paged(p);
}

/* Up to 8 pinned ranges per call. */
struct pins {
	int n;
	const void *addr[8];
	size_t len[8];
};

/* Callers pin only where shim_wrap_syscalls is set, or for O_DIRECT. */
static void pin(struct pins *ps, const void *addr, size_t len, int write)
{
	if (!len || !is_paged(addr) || ps->n == 8)
		return;
	shim_enter();
	if (upager_pin(shim_pager, (void *)addr, len, write) == 0) {
		ps->addr[ps->n] = addr;
		ps->len[ps->n++] = len;
	}
	shim_leave();
}

static void unpin(struct pins *ps)
{
	int saved = errno;

	shim_enter();
	while (ps->n > 0) {
		ps->n--;
		upager_unpin(shim_pager, (void *)ps->addr[ps->n], ps->len[ps->n]);
	}
	shim_leave();
	errno = saved;
}

#define PIN_SIMPLE(ret_t, name, params, args, buf, len, write, type) \
	SHIM_API ret_t name params                                   \
	{                                                            \
		struct pins ps = { 0 };                              \
		ret_t r;                                             \
		REAL(name, type);                                    \
		if (!is_paged(buf) || !shim_wrap_syscalls)           \
			return real_##name args;                     \
		pin(&ps, buf, len, write);                           \
		r = real_##name args;                                \
		unpin(&ps);                                          \
		return r;                                            \
	}

/* read-like: a buffer bigger than a piece is read piece by piece while
 * each piece comes in full from a regular file or a block device (which
 * would have given it all at once); from anything else (a pipe, a
 * socket, a terminal) the first piece is all: a short read, which every
 * reader of those must handle, rather than a read that could block. */
static bool seekable(int fd)
{
	struct stat st;

	return syscall(SYS_fstat, fd, &st) == 0 && (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode));
}

/*
 * O_DIRECT reads are pinned in every mode. The device writes their data
 * into the buffer's pages while the kernel holds them, not through the
 * page tables, so no fault tells the pager the page is in use: a page
 * evicted meanwhile (a zero page dropped, or one written out and
 * punched) left the read's data in a page nobody has any more, and the
 * program later read back the old contents (test/runner-odirect). One
 * fcntl() per read into paged memory finds them.
 */
static bool direct_io_fd(int fd)
{
	long fl = syscall(SYS_fcntl, fd, F_GETFL);

	return fl >= 0 && (fl & O_DIRECT);
}

#define CALL_READ(b, l) (fd, b, l)
#define CALL_PREAD(b, l) (fd, b, l, off)
#define CALL_RECV(b, l) (fd, b, l, flags)
#define CALL_RECVFROM(b, l) (fd, b, l, flags, sa, sl)

#define PIN_READ(name, params, call, buf, advance, may_loop, may_be_direct)          \
	SHIM_API ssize_t name params                                                 \
	{                                                                            \
		struct pins ps = { 0 };                                              \
		ssize_t r, done = 0;                                                 \
		bool loop;                                                           \
		REAL(name, 0);                                                       \
		if (!is_paged(buf) ||                                                \
		    (!shim_wrap_syscalls && !((may_be_direct) && direct_io_fd(fd)))) \
			return real_##name call(buf, n);                             \
		loop = n > chunk && (may_loop) && seekable(fd);                      \
		while (n > 0) {                                                      \
			size_t piece = n > chunk ? chunk : n;                        \
			pin(&ps, (char *)buf + done, piece, 1);                      \
			r = real_##name call((char *)buf + done, piece);             \
			unpin(&ps);                                                  \
			if (r < 0)                                                   \
				return done ? done : r;                              \
			done += r;                                                   \
			n -= (size_t)r;                                              \
			advance;                                                     \
			if ((size_t)r < piece || !loop)                              \
				break;                                               \
		}                                                                    \
		return done;                                                         \
	}

/* Sockets are never O_DIRECT: recv and recvfrom skip the fcntl(). */
PIN_READ(read, (int fd, void *buf, size_t n), CALL_READ, buf, (void)0, 1, 1)
PIN_READ(pread, (int fd, void *buf, size_t n, off_t off), CALL_PREAD, buf, off += r, 1, 1)
PIN_READ(pread64, (int fd, void *buf, size_t n, off_t off), CALL_PREAD, buf, off += r, 1, 1)
PIN_READ(recv, (int fd, void *buf, size_t n, int flags), CALL_RECV, buf, (void)0, 0, 0)
PIN_READ(recvfrom, (int fd, void *buf, size_t n, int flags, struct sockaddr *sa, socklen_t *sl),
	 CALL_RECVFROM, buf, (void)0, 0, 0)

/* write-like: piece after piece while each is written in full. */
#define PIN_WRITE(name, params, call, buf, advance, type)                      \
	SHIM_API ssize_t name params                                           \
	{                                                                      \
		struct pins ps = { 0 };                                        \
		ssize_t r, done = 0;                                           \
		REAL(name, type);                                              \
		if (!is_paged(buf) || !shim_wrap_syscalls)                     \
			return real_##name call(buf, n);                       \
		while (n > 0) {                                                \
			size_t piece = n > chunk ? chunk : n;                  \
			pin(&ps, (const char *)buf + done, piece, 0);          \
			r = real_##name call((const char *)buf + done, piece); \
			unpin(&ps);                                            \
			if (r < 0)                                             \
				return done ? done : r;                        \
			done += r;                                             \
			n -= (size_t)r;                                        \
			advance;                                               \
			if ((size_t)r < piece)                                 \
				break;                                         \
		}                                                              \
		return done;                                                   \
	}

#define CALL_WRITE(b, l) (fd, b, l)
#define CALL_PWRITE(b, l) (fd, b, l, off)
#define CALL_SEND(b, l) (fd, b, l, flags)
#define CALL_SENDTO(b, l) (fd, b, l, flags, sa, sl)

PIN_WRITE(write, (int fd, const void *buf, size_t n), CALL_WRITE, buf, (void)0,
	  ssize_t (*)(int, const void *, size_t))
PIN_WRITE(pwrite, (int fd, const void *buf, size_t n, off_t off), CALL_PWRITE, buf, off += r,
	  ssize_t (*)(int, const void *, size_t, off_t))
PIN_WRITE(pwrite64, (int fd, const void *buf, size_t n, off_t off), CALL_PWRITE, buf, off += r,
	  ssize_t (*)(int, const void *, size_t, off_t))
PIN_WRITE(send, (int fd, const void *buf, size_t n, int flags), CALL_SEND, buf, (void)0,
	  ssize_t (*)(int, const void *, size_t, int))
PIN_WRITE(sendto,
	  (int fd, const void *buf, size_t n, int flags, const struct sockaddr *sa, socklen_t sl),
	  CALL_SENDTO, buf, (void)0,
	  ssize_t (*)(int, const void *, size_t, int, const struct sockaddr *, socklen_t))

/* Vectored calls: every piece pinned (up to 7 pieces in paged memory and
 * the array itself); more than that is rare enough to fall back to
 * touching. */
static void pin_iov(struct pins *ps, const struct iovec *iov, int cnt, int write)
{
	pin(ps, iov, sizeof(*iov) * (size_t)cnt, 0);
	for (int i = 0; i < cnt; i++) {
		if (!is_paged(iov[i].iov_base))
			continue;
		if (ps->n < 8 && iov[i].iov_len <= chunk) {
			pin(ps, iov[i].iov_base, iov[i].iov_len, write);
		} else {
			shim_enter();
			upager_touch(shim_pager, iov[i].iov_base, iov[i].iov_len, write);
			shim_leave();
		}
	}
}

static bool iov_paged(const struct iovec *iov, int cnt)
{
	if (is_paged(iov))
		return true;
	for (int i = 0; i < cnt; i++)
		if (is_paged(iov[i].iov_base))
			return true;
	return false;
}

#define PIN_IOV(name, params, args, iov, cnt, write, type)                            \
	SHIM_API ssize_t name params                                                  \
	{                                                                             \
		struct pins ps = { 0 };                                               \
		ssize_t r;                                                            \
		REAL(name, type);                                                     \
		bool paged_ = iov_paged(iov, cnt);                                    \
		if (!paged_ || (!shim_wrap_syscalls && !(write && direct_io_fd(fd)))) \
			return real_##name args;                                      \
		pin_iov(&ps, iov, cnt, write);                                        \
		r = real_##name args;                                                 \
		unpin(&ps);                                                           \
		return r;                                                             \
	}

PIN_IOV(readv, (int fd, const struct iovec *iov, int cnt), (fd, iov, cnt), iov, cnt, 1,
	ssize_t (*)(int, const struct iovec *, int))
PIN_IOV(writev, (int fd, const struct iovec *iov, int cnt), (fd, iov, cnt), iov, cnt, 0,
	ssize_t (*)(int, const struct iovec *, int))
PIN_IOV(preadv, (int fd, const struct iovec *iov, int cnt, off_t off), (fd, iov, cnt, off), iov,
	cnt, 1, ssize_t (*)(int, const struct iovec *, int, off_t))
PIN_IOV(pwritev, (int fd, const struct iovec *iov, int cnt, off_t off), (fd, iov, cnt, off), iov,
	cnt, 0, ssize_t (*)(int, const struct iovec *, int, off_t))

static void pin_msg(struct pins *ps, const struct msghdr *m, int write)
{
	pin(ps, m, sizeof(*m), write);
	pin(ps, m->msg_name, m->msg_namelen, write);
	pin(ps, m->msg_control, m->msg_controllen, write);
	pin_iov(ps, m->msg_iov, (int)m->msg_iovlen, write);
}

static bool msg_paged(const struct msghdr *m)
{
	return m && (is_paged(m) || is_paged(m->msg_name) || is_paged(m->msg_control) ||
		     iov_paged(m->msg_iov, (int)m->msg_iovlen));
}

SHIM_API ssize_t recvmsg(int fd, struct msghdr *m, int flags)
{
	struct pins ps = { 0 };
	ssize_t r;

	REAL(recvmsg, ssize_t(*)(int, struct msghdr *, int));
	if (!msg_paged(m) || !shim_wrap_syscalls)
		return real_recvmsg(fd, m, flags);
	pin_msg(&ps, m, 1);
	r = real_recvmsg(fd, m, flags);
	unpin(&ps);
	return r;
}

SHIM_API ssize_t sendmsg(int fd, const struct msghdr *m, int flags)
{
	struct pins ps = { 0 };
	ssize_t r;

	REAL(sendmsg, ssize_t(*)(int, const struct msghdr *, int));
	if (!msg_paged(m) || !shim_wrap_syscalls)
		return real_sendmsg(fd, m, flags);
	pin_msg(&ps, m, 0);
	r = real_sendmsg(fd, m, flags);
	unpin(&ps);
	return r;
}

/* Calls that fill a small structure or array. */
PIN_SIMPLE(int, stat, (const char *path, struct stat *st), (path, st), st, sizeof(*st), 1,
	   int (*)(const char *, struct stat *))
PIN_SIMPLE(int, lstat, (const char *path, struct stat *st), (path, st), st, sizeof(*st), 1,
	   int (*)(const char *, struct stat *))
PIN_SIMPLE(int, fstat, (int fd, struct stat *st), (fd, st), st, sizeof(*st), 1,
	   int (*)(int, struct stat *))
PIN_SIMPLE(int, stat64, (const char *path, struct stat64 *st), (path, st), st, sizeof(*st), 1,
	   int (*)(const char *, struct stat *))
PIN_SIMPLE(int, lstat64, (const char *path, struct stat64 *st), (path, st), st, sizeof(*st), 1,
	   int (*)(const char *, struct stat *))
PIN_SIMPLE(int, fstat64, (int fd, struct stat64 *st), (fd, st), st, sizeof(*st), 1,
	   int (*)(int, struct stat *))
PIN_SIMPLE(int, fstatat, (int dfd, const char *path, struct stat *st, int fl), (dfd, path, st, fl),
	   st, sizeof(*st), 1, int (*)(int, const char *, struct stat *, int))
PIN_SIMPLE(int, fstatat64, (int dfd, const char *path, struct stat64 *st, int fl),
	   (dfd, path, st, fl), st, sizeof(*st), 1, int (*)(int, const char *, struct stat *, int))
PIN_SIMPLE(int, statx, (int dfd, const char *path, int fl, unsigned mask, struct statx *st),
	   (dfd, path, fl, mask, st), st, sizeof(*st), 1,
	   int (*)(int, const char *, int, unsigned, struct statx *))
PIN_SIMPLE(ssize_t, getdents64, (int fd, void *buf, size_t n), (fd, buf, n), buf,
	   n > chunk ? chunk : n, 1, ssize_t (*)(int, void *, size_t))
PIN_SIMPLE(int, epoll_wait, (int efd, struct epoll_event *ev, int max, int to), (efd, ev, max, to),
	   ev, sizeof(*ev) * (size_t)(max > 0 ? max : 0), 1,
	   int (*)(int, struct epoll_event *, int, int))
PIN_SIMPLE(int, poll, (struct pollfd * fds, nfds_t n, int to), (fds, n, to), fds, sizeof(*fds) * n,
	   1, int (*)(struct pollfd *, nfds_t, int))
PIN_SIMPLE(int, epoll_ctl, (int efd, int op, int fd, struct epoll_event *ev), (efd, op, fd, ev), ev,
	   sizeof(*ev), 0, int (*)(int, int, int, struct epoll_event *))

/* ppoll, select and pselect take up to four structures. */
static bool any_paged(const void *a, const void *b, const void *c, const void *d)
{
	return is_paged(a) || is_paged(b) || is_paged(c) || is_paged(d);
}

SHIM_API int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *to, const sigset_t *mask)
{
	struct pins ps = { 0 };
	int r;

	REAL(ppoll, 0);
	if (!any_paged(fds, to, mask, NULL) || !shim_wrap_syscalls)
		return real_ppoll(fds, n, to, mask);
	pin(&ps, fds, sizeof(*fds) * n, 1);
	pin(&ps, to, sizeof(*to), 0);
	pin(&ps, mask, sizeof(*mask), 0);
	r = real_ppoll(fds, n, to, mask);
	unpin(&ps);
	return r;
}

static void pin_fd_sets(struct pins *ps, fd_set *rd, fd_set *wr, fd_set *ex)
{
	pin(ps, rd, sizeof(*rd), 1);
	pin(ps, wr, sizeof(*wr), 1);
	pin(ps, ex, sizeof(*ex), 1);
}

SHIM_API int select(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, struct timeval *to)
{
	struct pins ps = { 0 };
	int r;

	REAL(select, 0);
	if (!any_paged(rd, wr, ex, to) || !shim_wrap_syscalls)
		return real_select(nfds, rd, wr, ex, to);
	pin_fd_sets(&ps, rd, wr, ex);
	pin(&ps, to, sizeof(*to), 1);
	r = real_select(nfds, rd, wr, ex, to);
	unpin(&ps);
	return r;
}

SHIM_API int pselect(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, const struct timespec *to,
		     const sigset_t *mask)
{
	struct pins ps = { 0 };
	int r;

	REAL(pselect, 0);
	if (!any_paged(rd, wr, ex, to) || !shim_wrap_syscalls)
		return real_pselect(nfds, rd, wr, ex, to, mask);
	pin_fd_sets(&ps, rd, wr, ex);
	pin(&ps, to, sizeof(*to), 0);
	r = real_pselect(nfds, rd, wr, ex, to, mask);
	unpin(&ps);
	return r;
}
PIN_SIMPLE(ssize_t, getrandom, (void *buf, size_t n, unsigned fl), (buf, n, fl), buf,
	   n > chunk ? chunk : n, 1, ssize_t (*)(void *, size_t, unsigned))
PIN_SIMPLE(int, pipe, (int fds[2]), (fds), fds, 2 * sizeof(int), 1, int (*)(int *))
PIN_SIMPLE(int, pipe2, (int fds[2], int fl), (fds, fl), fds, 2 * sizeof(int), 1,
	   int (*)(int *, int))
PIN_SIMPLE(int, socketpair, (int d, int t, int p, int fds[2]), (d, t, p, fds), fds, 2 * sizeof(int),
	   1, int (*)(int, int, int, int *))
PIN_SIMPLE(ssize_t, readlink, (const char *path, char *buf, size_t n), (path, buf, n), buf, n, 1,
	   ssize_t (*)(const char *, char *, size_t))
PIN_SIMPLE(char *, getcwd, (char *buf, size_t n), (buf, n), buf, n, 1, char *(*)(char *, size_t))

/*
 * stdio moves data larger than its buffer straight between the program's
 * buffer and the file, with its internal read and write, which no
 * wrapper sees: md5sum's 32 KiB fread_unlocked() into a heap buffer
 * failed with EFAULT in fast mode, and ld read its archives so. The
 * buffer is pinned for the call, in pieces of whole items.
 */
#define PIN_STDIO(name, ptr_t, write)                                     \
	SHIM_API size_t name(ptr_t ptr, size_t size, size_t n, FILE *f)   \
	{                                                                 \
		struct pins ps = { 0 };                                   \
		size_t done = 0;                                          \
		REAL(name, 0);                                            \
		if (!size || !n || !is_paged(ptr) || !shim_wrap_syscalls) \
			return real_##name(ptr, size, n, f);              \
		size_t per = size >= chunk ? 1 : chunk / size;            \
		while (done < n) {                                        \
			size_t k = n - done < per ? n - done : per;       \
			char *at = (char *)(uintptr_t)ptr + done * size;  \
			pin(&ps, at, k *size, write);                     \
			size_t got = real_##name(at, size, k, f);         \
			unpin(&ps);                                       \
			done += got;                                      \
			if (got < k)                                      \
				break;                                    \
		}                                                         \
		return done;                                              \
	}

/* glibc's header may define these two as macros when optimizing. */
#undef fread_unlocked
#undef fwrite_unlocked
PIN_STDIO(fread, void *, 1)
PIN_STDIO(fread_unlocked, void *, 1)
PIN_STDIO(fwrite, const void *, 0)
PIN_STDIO(fwrite_unlocked, const void *, 0)

/* The fortified freads (_FORTIFY_SOURCE): the same once the size checks
 * out; glibc's own reports an overflow. */
size_t __fread_chk(void *ptr, size_t ptrlen, size_t size, size_t n, FILE *f);
size_t __fread_unlocked_chk(void *ptr, size_t ptrlen, size_t size, size_t n, FILE *f);
#define PIN_FREAD_CHK(name, plain)                                                     \
	SHIM_API size_t name(void *ptr, size_t ptrlen, size_t size, size_t n, FILE *f) \
	{                                                                              \
		size_t bytes;                                                          \
		REAL(name, 0);                                                         \
		if (__builtin_mul_overflow(size, n, &bytes) || bytes > ptrlen)         \
			return real_##name(ptr, ptrlen, size, n, f);                   \
		return plain(ptr, size, n, f);                                         \
	}

PIN_FREAD_CHK(__fread_chk, fread)
PIN_FREAD_CHK(__fread_unlocked_chk, fread_unlocked)

#define PIN_PUTS(name, params, args) PIN_SIMPLE(int, name, params, args, s, strlen(s), 0, 0)

PIN_PUTS(fputs, (const char *s, FILE *f), (s, f))
PIN_PUTS(fputs_unlocked, (const char *s, FILE *f), (s, f))
PIN_PUTS(puts, (const char *s), (s))

/* Paths in paged memory: the kernel reads them. strlen() faults the
 * string in, the pin keeps it there for the call. */
static void pin_path(struct pins *ps, const char *path)
{
	if (is_paged(path) && shim_wrap_syscalls)
		pin(ps, path, strlen(path) + 1, 0);
}

/* The kernel reads the path up to its NUL. */
#define PIN_PATH(ret_t, name, params, args, path, type) \
	PIN_SIMPLE(ret_t, name, params, args, path, strlen(path) + 1, 0, type)

PIN_PATH(int, access, (const char *path, int mode), (path, mode), path, int (*)(const char *, int))
PIN_PATH(int, unlink, (const char *path), (path), path, int (*)(const char *))
PIN_PATH(int, mkdir, (const char *path, mode_t m), (path, m), path, int (*)(const char *, mode_t))
PIN_PATH(int, chdir, (const char *path), (path), path, int (*)(const char *))
PIN_PATH(FILE *, fopen, (const char *path, const char *mode), (path, mode), path,
	 FILE *(*)(const char *, const char *))
PIN_PATH(FILE *, fopen64, (const char *path, const char *mode), (path, mode), path,
	 FILE *(*)(const char *, const char *))
PIN_PATH(DIR *, opendir, (const char *path), (path), path, DIR *(*)(const char *))

SHIM_API int rename(const char *a, const char *b)
{
	struct pins ps = { 0 };
	int r;

	REAL(rename, int (*)(const char *, const char *));
	if ((!is_paged(a) && !is_paged(b)) || !shim_wrap_syscalls)
		return real_rename(a, b);
	pin_path(&ps, a);
	pin_path(&ps, b);
	r = real_rename(a, b);
	unpin(&ps);
	return r;
}

#define OPEN_LIKE(name, params, args)                        \
	SHIM_API int name params                             \
	{                                                    \
		struct pins ps = { 0 };                      \
		mode_t mode = 0;                             \
		va_list ap;                                  \
		int r;                                       \
		REAL(name, int (*)(const char *, int, ...)); \
		va_start(ap, flags);                         \
		if (flags & (O_CREAT | O_TMPFILE))           \
			mode = va_arg(ap, mode_t);           \
		va_end(ap);                                  \
		pin_path(&ps, path);                         \
		r = real_##name args;                        \
		unpin(&ps);                                  \
		return r;                                    \
	}

OPEN_LIKE(open, (const char *path, int flags, ...), (path, flags, mode))
OPEN_LIKE(open64, (const char *path, int flags, ...), (path, flags, mode))
OPEN_LIKE(openat, (int dfd, const char *path, int flags, ...), (dfd, path, flags, mode))
OPEN_LIKE(openat64, (int dfd, const char *path, int flags, ...), (dfd, path, flags, mode))

/* An alternate signal stack in paged memory must stay mapped: the kernel
 * writes the signal frame there, and a fault while it does kills the
 * process. It stays pinned until it is replaced or disabled. */
SHIM_API int sigaltstack(const stack_t *ss, stack_t *old)
{
	stack_t prev;
	int r, pinned = 0;

	REAL(sigaltstack, 0);
	if (!shim_wrap_syscalls) {
		/* A forked child's copy is fetched: the kernel writes signal
		 * frames there. */
		if (ss && !(ss->ss_flags & SS_DISABLE))
			(void)is_paged(ss->ss_sp);
		return real_sigaltstack(ss, old);
	}
	if (real_sigaltstack(NULL, &prev) < 0)
		prev.ss_flags = SS_DISABLE;
	if (ss && !(ss->ss_flags & SS_DISABLE) && is_paged(ss->ss_sp) && ss->ss_size) {
		shim_enter();
		pinned = upager_pin(shim_pager, ss->ss_sp, ss->ss_size, 1) == 0;
		shim_leave();
	}
	r = real_sigaltstack(ss, old);
	shim_enter();
	if (r < 0 && pinned)
		upager_unpin(shim_pager, ss->ss_sp, ss->ss_size);
	else if (r == 0 && ss && !(prev.ss_flags & SS_DISABLE) && is_paged(prev.ss_sp))
		upager_unpin(shim_pager, prev.ss_sp, prev.ss_size);
	shim_leave();
	return r;
}
