// SPDX-License-Identifier: MIT
/*
 * Replays the API fuzzer's inputs (fuzz/interp.c) as a regression test:
 * every file in test/fuzz-corpus/, or the files named on the command line,
 * each in a child process with a fresh pager. A file whose name starts
 * with "xfail-" reproduces a known bug that is not fixed yet: it must
 * still fail (when it passes, the bug is gone and the prefix should go).
 * Subdirectories are not replayed: flaky/ holds reproducers of known bugs
 * that fail only some of the time (see its README).
 * The other files run as the fuzzer ran them, stepping around the known
 * bugs (fuzz_interp_avoid_known_bugs); UPAGER_FUZZ_AVOID=0 or 1 decides
 * that for every file instead. UPAGER_FUZZ_LOG=1 prints every operation.
 */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../fuzz/interp.h"

static unsigned char *slurp(const char *path, size_t *size)
{
	FILE *f = fopen(path, "rb");
	size_t cap = 4096, n = 0;
	unsigned char *buf = malloc(cap);

	if (!f || !buf)
		FAILF("%s: %s", path, strerror(errno));
	for (;;) {
		size_t got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (n < cap)
			break;
		buf = realloc(buf, cap *= 2);
		CHECK(buf);
	}
	fclose(f);
	*size = n;
	return buf;
}

/* 0 passed, 1 failed (a mismatch, a crash or a hang), 77 no pager. */
static int replay(const char *path)
{
	const char *v = getenv("UPAGER_FUZZ_LOG");
	size_t size;
	unsigned char *data = slurp(path, &size);
	int status;

	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0)
		FAILF("fork: %s", strerror(errno));
	if (pid == 0) {
		alarm(120); /* a deadlock is a failure too */
		_exit(fuzz_interp_run(data, size, v && *v && *v != '0' ? stdout : NULL));
	}
	free(data);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && (WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == TEST_SKIP))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		fprintf(stderr, "  %s: killed by signal %d (%s)\n", path, WTERMSIG(status),
			strsignal(WTERMSIG(status)));
	return 1;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
	const char *srcdir = getenv("srcdir");
	char dir[4096], path[8192];
	char **names = NULL;
	size_t n = 0;
	unsigned passed = 0, xfailed = 0, skipped = 0, bad = 0;

	const char *avoid = getenv("UPAGER_FUZZ_AVOID");
	if (argc > 1) {
		names = argv + 1;
		n = (size_t)argc - 1;
		dir[0] = '\0';
	} else {
		snprintf(dir, sizeof(dir), "%s/test/fuzz-corpus", srcdir ? srcdir : ".");
		DIR *d = opendir(dir);
		struct dirent *de;
		if (!d)
			FAILF("%s: %s", dir, strerror(errno));
		while ((de = readdir(d))) {
			struct stat sb;
			snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
			/* Subdirectories (flaky/) are for the fuzzer only. */
			if (de->d_name[0] == '.' || !strcmp(de->d_name, "README") ||
			    stat(path, &sb) < 0 || !S_ISREG(sb.st_mode))
				continue;
			names = realloc(names, (n + 1) * sizeof(*names));
			CHECK(names);
			names[n++] = strdup(de->d_name);
		}
		closedir(d);
		qsort(names, n, sizeof(*names), by_name);
		CHECK_CMP(n, >, 0);
	}
	for (size_t i = 0; i < n; i++) {
		const char *base = strrchr(names[i], '/') ? strrchr(names[i], '/') + 1 : names[i];
		bool xfail = !strncmp(base, "xfail-", 6);
		snprintf(path, sizeof(path), "%s%s%s", dir, dir[0] ? "/" : "", names[i]);
		fuzz_interp_avoid_known_bugs = avoid && *avoid ? *avoid != '0' : !xfail;
		int r = replay(path);
		if (r == TEST_SKIP) {
			printf("SKIP  %s: no pager could be opened\n", base);
			skipped++;
		} else if (r == 0 && !xfail) {
			printf("ok    %s\n", base);
			passed++;
		} else if (r != 0 && xfail) {
			printf("xfail %s (a known bug, still there)\n", base);
			xfailed++;
		} else if (xfail) {
			printf("XPASS %s: the bug it reproduces is gone; drop the xfail- prefix\n",
			       base);
			bad++;
		} else {
			printf("FAIL  %s (rerun: UPAGER_FUZZ_LOG=1 test/fuzz-replay %s)\n", base,
			       path);
			bad++;
		}
		fflush(stdout);
	}
	printf("%u passed, %u expected failures, %u skipped, %u failed\n", passed, xfailed, skipped,
	       bad);
	if (argc <= 1) {
		for (size_t i = 0; i < n; i++)
			free(names[i]);
		free(names);
	}
	if (bad)
		return 1;
	return passed + xfailed ? 0 : TEST_SKIP;
}
