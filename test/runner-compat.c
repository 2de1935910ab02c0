// SPDX-License-Identifier: MIT
/*
 * What real programs did that broke under upager-run (found by
 * test/compat.sh), each reduced to a few lines; test/runner.sh runs this
 * plain and under upager-run and compares the outputs:
 *  - a mapping made read-only and then unmapped came back read-only when
 *    the next mmap reused its pages (SIGSEGV on the first write);
 *  - a JIT's buffer: written, then made executable (mprotect failed);
 *  - perl forks with every signal blocked and its child touches the heap
 *    before it unblocks them: the SIGSEGV that fetches the child's copy
 *    of the paged memory was blocked, so the child died; git's child
 *    also sets every signal's handler to the default first;
 *  - ruby dlopen()s its extensions: the dynamic loader put their link
 *    maps and the global symbol scope in paged memory, and the pager's
 *    evictor, binding its first io_uring call lazily, walked that scope,
 *    faulted on a page it was evicting itself and hung;
 *  - rustc's linker child died of SIGSEGV in jemalloc's fork handler,
 *    which ran before the shim's set-up of the child (see
 *    fork_handler_touches_heap());
 *  - md5sum's 32 KiB fread() into a heap buffer failed with EFAULT in
 *    the wrapped modes: stdio reads and writes blocks larger than its
 *    buffer straight into the program's (see stdio_big_buffers());
 *  - mlockall(MCL_CURRENT | MCL_FUTURE) (memcached -k) would have the
 *    kernel fault in and lock the whole 64 GiB arena (see
 *    lock_everything());
 *  - zstd installs its crash handler with __sysv_signal() (signal() under
 *    strict ISO C), which went to the kernel: in fast mode it took every
 *    SIGBUS of the pager (see other_signal_calls());
 *  - a shell script's `exec 3>file` (a dup2() onto 3) and the Erlang VM's
 *    erl_child_setup (closefrom(3) at startup) closed the pager's
 *    userfaultfd and memfds: the memory read back as zeros (see
 *    close_everything()).
 * With the argument `coroutines`, only coroutines with stacks on the heap
 * (see coroutines(); test/runner.sh runs it in transparent mode only).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#include "runner-util.h"

#define MiB (1u << 20)

static void dlopen_then_evict(void)
{
	void *lib = dlopen("libm.so.6", RTLD_NOW | RTLD_GLOBAL);
	size_t n = 4096, blk = 16384; /* 64 MiB: four times runner.sh's budget */
	unsigned char **b = malloc(n * sizeof(*b));
	unsigned long long sum = 0;

	CHECK(lib != NULL);
	double (*fn_sqrt)(double) = (double (*)(double))dlsym(lib, "sqrt");
	CHECK(fn_sqrt != NULL);
	CHECK(b != NULL);
	for (size_t i = 0; i < n; i++) {
		b[i] = malloc(blk);
		CHECK(b[i] != NULL);
		memset(b[i], (int)(i * 7 + 1), blk);
	}
	for (size_t i = 0; i < n; i++) {
		sum += b[i][i % blk];
		free(b[i]);
	}
	free(b);
	printf("dlopen then evict: sqrt %.1f, sum %llu\n", fn_sqrt(1764.0), sum);
	CHECK_EQ(dlclose(lib), 0);
}

static void protect_then_unmap(void)
{
	for (int k = 0; k < 4; k++) {
		size_t len = MiB + (size_t)k * 4096;
		unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
					MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		CHECK(p != MAP_FAILED);
		expect_paged(p, "1 MiB mapping");
		for (size_t i = 0; i < len; i += 4096)
			CHECK_EQ(p[i], 0);
		memset(p, k + 1, len);
		/* Read-only, inaccessible or read-write again, then gone. */
		CHECK_EQ(mprotect(p, len / 2, k % 2 ? PROT_READ : PROT_NONE), 0);
		if (k == 3) {
			CHECK_EQ(mprotect(p, len / 2, PROT_READ | PROT_WRITE), 0);
			p[0] = 9;
			CHECK_EQ(p[0], 9);
		}
		CHECK_EQ(p[len - 1], k + 1);
		CHECK_EQ(munmap(p, len), 0);
	}
	/* A malloc'd big block (the arena too) over those pages. */
	unsigned char *b = malloc(3 * MiB);
	CHECK(b != NULL);
	memset(b, 5, 3 * MiB);
	CHECK_EQ(b[3 * MiB - 1], 5);
	free(b);
	printf("protect then unmap: ok\n");
}

static void jit(void)
{
#if defined(__x86_64__)
	size_t len = MiB;
	unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
				0);
	static const unsigned char code[] = { 0xb8, 42, 0, 0, 0, 0xc3 }; /* mov eax, 42; ret */
	const char *backend = getenv("UPAGER_BACKEND");

	CHECK(p != MAP_FAILED);
	memcpy(p + 8192, code, sizeof(code));
	if (mprotect(p, len, PROT_READ | PROT_EXEC) != 0) {
		/* The documented limit: no executable paged memory on the
		 * sigsegv backend. */
		CHECK(getenv("UPAGER_RUN_ROOT") && backend && !strcmp(backend, "sigsegv"));
		CHECK_EQ(errno, EACCES);
	} else {
		int (*f)(void) = (int (*)(void))(void *)(p + 8192);
		CHECK_EQ(f(), 42);
		/* Writable again (W^X), patched, executable again. */
		CHECK_EQ(mprotect(p, len, PROT_READ | PROT_WRITE), 0);
		p[8193] = 43;
		CHECK_EQ(mprotect(p, len, PROT_READ | PROT_EXEC), 0);
		CHECK_EQ(f(), 43);
	}
	CHECK_EQ(munmap(p, len), 0);
	/* The pages come back writable and not executable-only. */
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(p != MAP_FAILED);
	memset(p, 1, len);
	CHECK_EQ(munmap(p, len), 0);
#endif
	printf("jit: ok\n");
}

/* fork() with every signal blocked; the child uses the heap first. */
static void fork_blocked(int use_pthread)
{
	size_t n = 24 * MiB;
	unsigned char *a = malloc(n);
	sigset_t all, old;
	pid_t pid;
	int st;

	CHECK(a != NULL);
	for (size_t i = 0; i < n; i += 512)
		a[i] = (unsigned char)(i / 512);
	sigfillset(&all);
	if (use_pthread)
		CHECK_EQ(pthread_sigmask(SIG_SETMASK, &all, &old), 0);
	else
		CHECK_EQ(sigprocmask(SIG_SETMASK, &all, &old), 0);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		unsigned sum = 0;
		struct sigaction dfl;

		/* git's child: every handler back to the default first. */
		memset(&dfl, 0, sizeof(dfl));
		dfl.sa_handler = SIG_DFL;
		for (int sig = 1; sig < 32; sig++)
			if (sig != SIGKILL && sig != SIGSTOP)
				sigaction(sig, &dfl, NULL);

		for (size_t i = 0; i < n; i += 512) {
			if (a[i] != (unsigned char)(i / 512))
				_exit(2);
			a[i] ^= 0xff;
			sum += a[i];
		}
		/* Blocking again while the copy is in place is harmless. */
		sigprocmask(SIG_BLOCK, &all, NULL);
		free(a);
		_exit(sum % 200 + 10);
	}
	CHECK_EQ(sigprocmask(SIG_SETMASK, &old, NULL), 0);
	CHECK_EQ(waitpid(pid, &st, 0), pid);
	CHECK(WIFEXITED(st));
	unsigned sum = 0;
	for (size_t i = 0; i < n; i += 512) {
		CHECK_EQ(a[i], (unsigned char)(i / 512));
		sum += (unsigned char)(a[i] ^ 0xff);
	}
	CHECK_EQ(WEXITSTATUS(st), sum % 200 + 10);
	free(a);
	printf("fork with signals blocked (%s): ok\n",
	       use_pthread ? "pthread_sigmask" : "sigprocmask");
}

/* rustc (jemalloc inside it, its chunks paged) reinitialises its locks
 * in a pthread_atfork() child handler, in paged memory: the child died of
 * SIGSEGV there, before the shim had put its copy of the paged memory in
 * place. A child handler here writes to and reads a heap block. */
static unsigned char *atfork_block;
static volatile unsigned atfork_seen;

static void atfork_child_touches_heap(void)
{
	atfork_seen = atfork_block[4096] + atfork_block[(8u << 20) - 1];
	memset(atfork_block, 0x5a, 4096); /* as jemalloc resets its mutexes */
}

static void fork_handler_touches_heap(void)
{
	size_t n = 8u << 20;
	int st;

	atfork_block = malloc(n);
	CHECK(atfork_block);
	for (size_t i = 0; i < n; i++)
		atfork_block[i] = (unsigned char)(i * 7);
	CHECK_EQ(pthread_atfork(NULL, NULL, atfork_child_touches_heap), 0);
	fflush(stdout);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		unsigned want = (unsigned char)(4096 * 7) + (unsigned char)(((8u << 20) - 1) * 7);
		int bad = atfork_seen != want || atfork_block[0] != 0x5a ||
			  atfork_block[4096] != (unsigned char)(4096 * 7);
		_exit(bad ? 1 : 0);
	}
	CHECK_EQ(waitpid(pid, &st, 0), pid);
	CHECK(WIFEXITED(st));
	CHECK_EQ(WEXITSTATUS(st), 0);
	for (size_t i = 0; i < n; i += 4093)
		CHECK_EQ(atfork_block[i], (unsigned char)(i * 7));
	printf("fork handler touching the heap: ok\n");
}

/* One fwrite of 24 MiB of heap (1.5x the budget) to a file, read back
 * with one fread into another heap buffer, and a 3 MiB string through
 * fputs and back through fgets. */
static void stdio_big_buffers(void)
{
	size_t len = 24 * MiB, slen = 3 * MiB;
	unsigned char *out = malloc(len), *in = malloc(len);
	char *str = malloc(slen + 2), *back = malloc(slen + 2);
	FILE *f = tmpfile();

	CHECK(out && in && str && back && f);
	for (size_t i = 0; i < len; i++)
		out[i] = (unsigned char)(i * 31 + (i >> 12));
	for (size_t i = 0; i < slen; i++)
		str[i] = (char)('a' + (i * 7 + (i >> 10)) % 26);
	str[slen] = '\n';
	str[slen + 1] = 0;
	memset(in, 0, len);
	CHECK_EQ(fwrite(out, 1, len, f), len);
	CHECK_EQ(fwrite_unlocked(out, 4096, len / 4096, f), len / 4096);
	CHECK(fputs(str, f) >= 0);
	CHECK_EQ(fflush(f), 0);
	rewind(f);
	CHECK_EQ(fread(in, 1, len, f), len);
	CHECK(memcmp(in, out, len) == 0);
	memset(in, 0, len);
	CHECK_EQ(fread_unlocked(in, 4096, len / 4096, f), len / 4096);
	CHECK(memcmp(in, out, len) == 0);
	CHECK(fgets(back, (int)slen + 2, f) != NULL);
	CHECK(strcmp(back, str) == 0);
	fclose(f);
	free(out);
	free(in);
	free(str);
	free(back);
	printf("stdio with buffers larger than the budget: ok\n");
}

static volatile sig_atomic_t stray_signals;

static void count_stray(int sig)
{
	(void)sig;
	stray_signals++;
}

sighandler_t bsd_signal(int sig, sighandler_t handler);

/* Crash handlers installed through every other name glibc has, then a
 * heap four times the budget written and read back: none of the pager's
 * faults may reach them. */
static void other_signal_calls(void)
{
	size_t n = 4096, blk = 16384;
	unsigned char **b = malloc(n * sizeof(*b));
	unsigned long long sum = 0, want = 0;

	CHECK(b != NULL);
	CHECK(__sysv_signal(SIGBUS, count_stray) != SIG_ERR);
	CHECK(sysv_signal(SIGSEGV, count_stray) != SIG_ERR);
	for (size_t i = 0; i < n; i++) {
		b[i] = malloc(blk);
		CHECK(b[i] != NULL);
		memset(b[i], (int)(i * 3 + 1), blk);
		want += (unsigned char)(i * 3 + 1);
	}
	CHECK(bsd_signal(SIGBUS, count_stray) == count_stray);
	/* Obsolescent, but programs still call it. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
	CHECK(sigset(SIGSEGV, count_stray) == count_stray);
#pragma GCC diagnostic pop
	for (size_t i = 0; i < n; i++) {
		sum += b[i][(i * 97) % blk];
		free(b[i]);
	}
	free(b);
	CHECK_EQ(stray_signals, 0);
	CHECK_EQ(sum, want);
	signal(SIGBUS, SIG_DFL);
	signal(SIGSEGV, SIG_DFL);
	printf("handlers from __sysv_signal, sysv_signal, bsd_signal, sigset: ok\n");
}

static long vm_rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

/* mlockall and mlock with a heap three times the budget before and after;
 * under upager-run the paged memory must stay paged (not locked), and the
 * pager's sparse tables must not be filled. */
static void lock_everything(void)
{
	size_t n = 24 * MiB;
	unsigned char *a = malloc(n), *b;
	unsigned long long sum = 0;

	CHECK(a != NULL);
	memset(a, 0x5a, n);
	if (mlockall(MCL_CURRENT | MCL_FUTURE) < 0) {
		/* Without the privilege, or over RLIMIT_MEMLOCK. */
		CHECK(geteuid() != 0 && (errno == ENOMEM || errno == EPERM));
		free(a);
		printf("mlockall: ok\n");
		return;
	}
	b = malloc(n);
	CHECK(b != NULL);
	memset(b, 0xa5, n);
	CHECK_EQ(mlock(b + 12345, 2 * MiB), 0);
	for (size_t i = 0; i < n; i += 4096)
		sum += a[i] + b[n - 1 - i];
	CHECK_EQ(sum, (0x5aULL + 0xa5) * (n / 4096));
	/* Both blocks would be resident if they were locked. */
	if (getenv("UPAGER_RUN_ROOT"))
		CHECK_CMP(vm_rss_kib(), <, (long)(2 * n >> 10));
	CHECK_EQ(munlockall(), 0);
	free(a);
	free(b);
	printf("mlockall: ok\n");
}

/* Closes and reuses every descriptor number above 2 the way helpers and
 * shells do, then reads back a heap four times the budget. */
static void close_everything(void)
{
	size_t n = 4096, blk = 16384;
	unsigned char **b = malloc(n * sizeof(*b));
	unsigned long long sum = 0, want = 0;
	int devnull = open("/dev/null", O_WRONLY);

	CHECK(b != NULL && devnull >= 0);
	for (size_t i = 0; i < n; i++) {
		b[i] = malloc(blk);
		CHECK(b[i] != NULL);
		memset(b[i], (int)(i * 13 + 5), blk);
		want += (unsigned char)(i * 13 + 5) * 2ULL;
	}
	/* dup2 onto the low numbers a script uses, then close them all. */
	for (int fd = 3; fd < 64; fd++)
		if (fd != devnull)
			dup2(devnull, fd);
	for (int fd = 3; fd < 1024; fd++)
		close(fd);
	closefrom(3);
	close_range(3, ~0U, 0);
	for (size_t i = 0; i < n; i++) {
		sum += b[i][i % blk] + b[i][blk - 1];
		free(b[i]);
	}
	free(b);
	CHECK_EQ(sum, want);
	printf("close every descriptor, then read back: ok\n");
}

/*
 * Coroutines whose stacks are heap blocks (makecontext), switched among
 * while a heap 4x the budget of test/runner.sh pushes their stacks out:
 * in transparent mode a fault on the running stack is the kernel's to
 * hold. (Not in the wrapped modes: the fault's signal would have no stack
 * to run on; README, "What cannot be covered".)
 */
#define COROUTINES 64
#define COROUTINE_STACK (256u << 10)
static ucontext_t main_ctx, co_ctx[COROUTINES];
static long co_sum[COROUTINES];

static void co_body(int i)
{
	volatile char buf[64u << 10]; /* on the coroutine's own stack */

	for (int round = 0; round < 20; round++) {
		for (size_t k = 0; k < sizeof(buf); k += 512)
			buf[k] = (char)(i + round + k / 512);
		long s = 0;
		for (size_t k = 0; k < sizeof(buf); k += 512)
			s += buf[k];
		co_sum[i] += s;
		swapcontext(&co_ctx[i], &main_ctx);
	}
}

/* Apart from coroutines(): nothing here lives across its swapcontext(). */
static void coroutines_report(unsigned char *big, size_t big_len)
{
	long total = 0, check = 0;

	for (int i = 0; i < COROUTINES; i++) {
		total += co_sum[i];
		free(co_ctx[i].uc_stack.ss_sp);
	}
	for (size_t k = 0; k < big_len; k += 4096)
		check += big[k];
	free(big);
	printf("coroutines: %ld %ld\n", total, check);
}

static int coroutines(void)
{
	size_t big_len = 64u << 20;
	unsigned char *big = malloc(big_len);

	CHECK(big != NULL);
	memset(big, 1, big_len);
	for (int i = 0; i < COROUTINES; i++) {
		CHECK_EQ(getcontext(&co_ctx[i]), 0);
		co_ctx[i].uc_stack.ss_sp = malloc(COROUTINE_STACK);
		CHECK(co_ctx[i].uc_stack.ss_sp != NULL);
		co_ctx[i].uc_stack.ss_size = COROUTINE_STACK;
		co_ctx[i].uc_link = &main_ctx;
		makecontext(&co_ctx[i], (void (*)(void))co_body, 1, i);
	}
	for (int round = 0; round < 21; round++)
		for (int i = 0; i < COROUTINES; i++) {
			CHECK_EQ(swapcontext(&main_ctx, &co_ctx[i]), 0);
			big[(size_t)(round * COROUTINES + i) * 4096 % big_len]++;
		}
	coroutines_report(big, big_len);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "coroutines"))
		return coroutines();
	dlopen_then_evict();
	protect_then_unmap();
	jit();
	fork_blocked(0);
	fork_blocked(1);
	fork_handler_touches_heap();
	stdio_big_buffers();
	other_signal_calls();
	lock_everything();
	close_everything(); /* last: the test's own descriptors go too */
	return 0;
}
