// SPDX-License-Identifier: MIT
/*
 * exec, posix_spawn, system() and popen() with arguments in paged memory.
 *
 * The kernel reads the path, the argument and environment strings and the
 * arrays that hold them. Two cases need help:
 *
 *  - a forked child whose copy of the paged memory is still at the parent
 *    (shim-fork.c): the memory is a placeholder, the kernel's read fails
 *    with EFAULT and raises no signal that would fetch the copy. The
 *    Erlang VM's child exec()s erl_child_setup with a path built on the
 *    heap. shim_paged() fetches the copy; the memory is then ordinary.
 *  - the wrapped modes (fast mode, the sigsegv backend): an evicted page
 *    fails the same way, also from glibc's posix_spawn(), system() and
 *    popen(), whose child shares the parent's memory. The strings and
 *    arrays are copied for the call into memory of their own, mapped with
 *    the raw system call (glibc's malloc is not safe in a vfork child).
 *
 * Nothing is done when no argument is in paged memory.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim.h"

extern char **environ;

static bool vec_paged(char *const v[])
{
	if (!v)
		return false;
	if (shim_paged(v))
		return true;
	for (size_t i = 0; v[i]; i++)
		if (shim_paged(v[i]))
			return true;
	return false;
}

/* True when the call must be given copies: in the wrapped modes, with an
 * argument in paged memory. (In a forked child the first paged argument
 * fetches the whole copy, after which none is needed.) */
static bool needs_copies(const char *path, char *const argv[], char *const envp[])
{
	return (shim_paged(path) || vec_paged(argv) || vec_paged(envp)) && shim_wrap_syscalls;
}

struct copies {
	void *block;
	size_t bytes;
	const char *path;
	char **argv, **envp;
};

static size_t vec_count(char *const v[])
{
	size_t n = 0;

	while (v && v[n])
		n++;
	return n;
}

static char **copy_vec(char *const v[], char ***slots, char **strings)
{
	char **out = *slots;

	if (!v)
		return NULL;
	for (size_t i = 0; v[i]; i++) {
		size_t n = strlen(v[i]) + 1;
		memcpy(*strings, v[i], n);
		out[i] = *strings;
		*strings += n;
	}
	out[vec_count(v)] = NULL;
	*slots += vec_count(v) + 1;
	return out;
}

/* Everything in one private mapping: the arrays, then the strings. */
static bool make_copies(struct copies *c, const char *path, char *const argv[], char *const envp[])
{
	size_t na = vec_count(argv), ne = vec_count(envp);
	size_t bytes = (na + 1 + ne + 1) * sizeof(char *) + (path ? strlen(path) + 1 : 0);

	for (size_t i = 0; i < na; i++)
		bytes += strlen(argv[i]) + 1;
	for (size_t i = 0; i < ne; i++)
		bytes += strlen(envp[i]) + 1;
	void *m = (void *)syscall(SYS_mmap, NULL, bytes, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return false;
	char **slots = m;
	char *strings = (char *)m + (na + 1 + ne + 1) * sizeof(char *);

	c->block = m;
	c->bytes = bytes;
	c->argv = copy_vec(argv, &slots, &strings);
	c->envp = copy_vec(envp, &slots, &strings);
	c->path = NULL;
	if (path) {
		memcpy(strings, path, strlen(path) + 1);
		c->path = strings;
	}
	return true;
}

static void drop_copies(struct copies *c)
{
	int saved = errno;

	syscall(SYS_munmap, c->block, c->bytes);
	errno = saved;
}

/* Calls `call` (which uses p_, a_ and e_) with the arguments as given, or
 * with copies when they need them. (A failed copy leaves the originals:
 * the call may then fail with EFAULT, as it would have.) */
#define UNUSED_OK __attribute__((unused))
#define WITH_ARGS(P, A, E, call)                                            \
	do {                                                                \
		struct copies c_;                                           \
		if (!needs_copies(P, A, E) || !make_copies(&c_, P, A, E)) { \
			UNUSED_OK const char *p_ = (P);                     \
			UNUSED_OK char *const *a_ = (A), *const *e_ = (E);  \
			return call;                                        \
		}                                                           \
		UNUSED_OK const char *p_ = c_.path;                         \
		UNUSED_OK char *const *a_ = c_.argv, *const *e_ = c_.envp;  \
		__typeof__(call) r_ = call;                                 \
		drop_copies(&c_);                                           \
		return r_;                                                  \
	} while (0)

static int do_execve(const char *path, char *const argv[], char *const envp[])
{
	REAL(execve, 0);
	WITH_ARGS(path, argv, envp, real_execve(p_, a_, e_));
}

static int do_execvpe(const char *file, char *const argv[], char *const envp[])
{
	REAL(execvpe, 0);
	WITH_ARGS(file, argv, envp, real_execvpe(p_, a_, e_));
}

SHIM_API int execve(const char *path, char *const argv[], char *const envp[])
{
	return do_execve(path, argv, envp);
}

SHIM_API int execv(const char *path, char *const argv[])
{
	return do_execve(path, argv, environ);
}

SHIM_API int execvpe(const char *file, char *const argv[], char *const envp[])
{
	return do_execvpe(file, argv, envp);
}

SHIM_API int execvp(const char *file, char *const argv[])
{
	return do_execvpe(file, argv, environ);
}

SHIM_API int fexecve(int fd, char *const argv[], char *const envp[])
{
	REAL(fexecve, 0);
	WITH_ARGS(NULL, argv, envp, real_fexecve(fd, a_, e_));
}

SHIM_API int execveat(int dirfd, const char *path, char *const argv[], char *const envp[],
		      int flags)
{
	REAL(execveat, 0);
	WITH_ARGS(path, argv, envp, real_execveat(dirfd, p_, a_, e_, flags));
}

/* The execl family: the variable arguments become an array on the stack,
 * as glibc does it. */
#define GATHER_ARGS(arg0, argv)             \
	size_t n_ = 1;                      \
	va_list ap_;                        \
	va_start(ap_, arg0);                \
	while (va_arg(ap_, const char *))   \
		n_++;                       \
	va_end(ap_);                        \
	const char *argv[n_ + 1];           \
	argv[0] = arg0;                     \
	va_start(ap_, arg0);                \
	for (size_t i_ = 1; i_ <= n_; i_++) \
		argv[i_] = va_arg(ap_, const char *);

SHIM_API int execl(const char *path, const char *arg0, ...)
{
	GATHER_ARGS(arg0, argv);
	va_end(ap_);
	return do_execve(path, (char *const *)argv, environ);
}

SHIM_API int execlp(const char *file, const char *arg0, ...)
{
	GATHER_ARGS(arg0, argv);
	va_end(ap_);
	return do_execvpe(file, (char *const *)argv, environ);
}

SHIM_API int execle(const char *path, const char *arg0, ...)
{
	GATHER_ARGS(arg0, argv);
	char *const *envp = va_arg(ap_, char *const *);
	va_end(ap_);
	return do_execve(path, (char *const *)argv, envp);
}

SHIM_API int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
			 const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	REAL(posix_spawn, 0);
	WITH_ARGS(path, argv, envp, real_posix_spawn(pid, p_, fa, attr, a_, e_));
}

SHIM_API int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
			  const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	REAL(posix_spawnp, 0);
	WITH_ARGS(file, argv, envp, real_posix_spawnp(pid, p_, fa, attr, a_, e_));
}

/* system() and popen(): the command; the shell's other arguments and the
 * environment are glibc's own. */
SHIM_API int system(const char *command)
{
	REAL(system, 0);
	WITH_ARGS(command, NULL, NULL, real_system(p_));
}

SHIM_API FILE *popen(const char *command, const char *mode)
{
	REAL(popen, 0);
	WITH_ARGS(command, NULL, NULL, real_popen(p_, mode));
}
