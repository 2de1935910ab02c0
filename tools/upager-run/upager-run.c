// SPDX-License-Identifier: MIT
/*
 * upager-run: runs an unmodified program with its memory paged by upager.
 *
 *   upager-run [--ram SIZE] [--swap PATH] [--policy SPEC] [--backend B]
 *              [--mode M] [--page-size SIZE] [--stats] [--no-children]
 *              [--] PROGRAM [ARGS...]
 *
 * Every option becomes the UPAGER_* variable the library reads, and the
 * preload shim (libupager-preload.so, next to this binary in the build
 * tree or in pkglibdir once installed) is appended to LD_PRELOAD. Before
 * the program runs, the launcher opens (and closes) a pager with the same
 * configuration, so a bad size, policy, backend, mode or swap path is a
 * one-line error here rather than a warning inside the program.
 *
 * The launcher forks and waits rather than exec'ing the program itself:
 * that way its exit status is the program's, or 128+N when signal N
 * killed it, whoever runs it (a shell reports the same number; a harness
 * that calls waitpid() directly would otherwise see the signal). Signals
 * sent to the launcher with kill() are passed on to the program.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "upager.h"

#define PRELOAD_NAME "libupager-preload.so"

/* Exit statuses of the launcher's own failures, as env(1) and timeout(1)
 * use them. */
#define EXIT_LAUNCHER 125
#define EXIT_NOEXEC 126
#define EXIT_NOTFOUND 127

/* The smallest budget the runner starts with: the library's own minimum
 * is 16 pages, but a heap of a few pages would spend all its time in
 * swap; below this the user almost surely mistyped a unit. */
#define MIN_RAM (2u << 20)

static void usage(FILE *f)
{
	fputs("usage: upager-run [--ram SIZE] [--swap PATH] [--policy SPEC] [--backend B]\n"
	      "                  [--mode M] [--page-size SIZE] [--stats] [--no-children]\n"
	      "                  [--] PROGRAM [ARGS...]\n"
	      "Runs PROGRAM with its heap and large anonymous mappings paged by upager\n"
	      "under a RAM budget (see upager-run(1)).\n",
	      f);
}

static void die(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void die(int status, const char *fmt, ...)
{
	va_list ap;

	fputs("upager-run: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(status);
}

struct opt {
	const char *name;
	const char *env;
	int has_arg;
};

static const struct opt opts[] = {
	{ "ram", "UPAGER_RAM", 1 },       { "swap", "UPAGER_SWAP", 1 },
	{ "policy", "UPAGER_POLICY", 1 }, { "backend", "UPAGER_BACKEND", 1 },
	{ "mode", "UPAGER_MODE", 1 },     { "page-size", "UPAGER_PAGE_SIZE", 1 },
	{ "stats", "UPAGER_STATS", 0 },   { "no-children", "UPAGER_RUN_CHILDREN", 0 },
};

/* Parses the options into the environment; returns the index of PROGRAM. */
static int parse_args(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *val = NULL;
		size_t k, nlen;

		if (!strcmp(a, "--")) {
			i++;
			break;
		}
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			exit(0);
		}
		if (a[0] != '-')
			break;
		if (a[1] != '-')
			die(EXIT_LAUNCHER, "unknown option '%s' (try --help)", a);
		a += 2;
		nlen = strcspn(a, "=");
		for (k = 0; k < sizeof(opts) / sizeof(opts[0]); k++)
			if (strlen(opts[k].name) == nlen && !strncmp(opts[k].name, a, nlen))
				break;
		if (k == sizeof(opts) / sizeof(opts[0]))
			die(EXIT_LAUNCHER, "unknown option '%s' (try --help)", argv[i]);
		if (!opts[k].has_arg) {
			if (a[nlen])
				die(EXIT_LAUNCHER, "option --%s takes no value", opts[k].name);
			/* --stats sets UPAGER_STATS=1; --no-children sets
			 * UPAGER_RUN_CHILDREN=0. */
			setenv(opts[k].env, !strcmp(opts[k].name, "stats") ? "1" : "0", 1);
			continue;
		}
		if (a[nlen] == '=')
			val = a + nlen + 1;
		else if (i + 1 < argc)
			val = argv[++i];
		else
			die(EXIT_LAUNCHER, "option --%s needs a value", opts[k].name);
		if (!*val)
			die(EXIT_LAUNCHER, "option --%s needs a non-empty value", opts[k].name);
		setenv(opts[k].env, val, 1);
	}
	if (i >= argc)
		die(EXIT_LAUNCHER, "no program to run (try --help)");
	return i;
}

/* Finds the program as execvp() would: a name with a slash is used as
 * it is, others are searched in PATH (execvp's default when PATH is
 * unset). Returns 0, EXIT_NOTFOUND or EXIT_NOEXEC. */
static int find_program(const char *name)
{
	struct stat st;
	const char *path, *p;
	char buf[PATH_MAX];
	int seen_noexec = 0;

	if (!*name)
		return EXIT_NOTFOUND;
	if (strchr(name, '/')) {
		if (stat(name, &st) < 0)
			return EXIT_NOTFOUND;
		if (S_ISDIR(st.st_mode) || access(name, X_OK) < 0)
			return EXIT_NOEXEC;
		return 0;
	}
	path = getenv("PATH");
	if (!path)
		path = "/bin:/usr/bin";
	for (p = path;; p++) {
		const char *end = strchrnul(p, ':');
		int dlen = (int)(end - p);

		/* An empty element is the current directory. */
		if (snprintf(buf, sizeof(buf), "%.*s%s%s", dlen, p, dlen ? "/" : "", name) <
		    (int)sizeof(buf)) {
			if (stat(buf, &st) == 0 && !S_ISDIR(st.st_mode)) {
				if (access(buf, X_OK) == 0)
					return 0;
				seen_noexec = 1;
			}
		}
		if (!*end)
			break;
		p = end;
	}
	return seen_noexec ? EXIT_NOEXEC : EXIT_NOTFOUND;
}

static int is_file(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The preload library: UPAGER_RUN_PRELOAD, else next to this binary in
 * the build tree (libtool keeps it in .libs), else the installed one. */
static const char *find_preload(char *buf, size_t size)
{
	const char *env = getenv("UPAGER_RUN_PRELOAD");
	char self[PATH_MAX];
	ssize_t n;

	if (env && *env) {
		if (!is_file(env))
			die(EXIT_LAUNCHER, "UPAGER_RUN_PRELOAD=%s is not a file", env);
		return env;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		char *slash;

		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			if (snprintf(buf, size, "%s/.libs/%s", self, PRELOAD_NAME) < (int)size &&
			    is_file(buf))
				return buf;
			if (snprintf(buf, size, "%s/%s", self, PRELOAD_NAME) < (int)size &&
			    is_file(buf))
				return buf;
		}
	}
	snprintf(buf, size, "%s/%s", PKGLIBDIR, PRELOAD_NAME);
	if (is_file(buf))
		return buf;
	die(EXIT_LAUNCHER, "cannot find %s (looked next to this program and in %s)", PRELOAD_NAME,
	    PKGLIBDIR);
}

/* Opens a pager with the configuration the program will get, to fail
 * here on anything it would refuse; says which backend and mode the
 * program will run with when --stats is given. */
static void check_config(void)
{
	upager_config_t cfg;
	upager_stats_t st;
	upager_t *p;
	const char *why = "";
	int err;

	upager_config_init(&cfg);
	if (cfg.env_error[0])
		die(EXIT_LAUNCHER, "%s", cfg.env_error);
	if (cfg.ram_bytes < MIN_RAM)
		die(EXIT_LAUNCHER, "RAM budget %zu bytes is too small to start (at least %u)",
		    cfg.ram_bytes, MIN_RAM);
	cfg.print_stats = 0; /* the program prints its own */
	err = upager_open(&cfg, &p);
	if (err < 0) {
		const char *msg = upager_last_error();
		die(EXIT_LAUNCHER, "cannot start a pager: %s%s%s", upager_strerror(err),
		    *msg ? ": " : "", msg);
	}
	st.size = sizeof(st);
	if (upager_stats(p, &st) == 0 && getenv("UPAGER_STATS") &&
	    !strcmp(getenv("UPAGER_STATS"), "1")) {
		upager_backend(p, &why);
		fprintf(stderr,
			"upager-run: backend %s, mode %s, budget %zu MiB: system calls on paged "
			"memory %s\n",
			st.backend, st.mode, cfg.ram_bytes >> 20,
			st.syscalls_transparent ? "work as they are (transparent)"
						: "are wrapped by the runner (see upager-run(1))");
	}
	upager_close(p);
}

static pid_t child;

/* Passes signals sent to the launcher on to the program. A signal from
 * the terminal (SI_KERNEL) already went to the whole process group, so
 * it is not sent twice. */
static void forward(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (child > 0 && si->si_code != SI_KERNEL)
		kill(child, sig);
}

int main(int argc, char **argv)
{
	char preload_buf[PATH_MAX];
	const char *preload, *old;
	char *ld;
	int first, st, fpipe[2];
	static const int fwd[] = { SIGHUP,  SIGINT,  SIGQUIT,  SIGTERM, SIGUSR1,
				   SIGUSR2, SIGALRM, SIGWINCH, SIGCONT, SIGTSTP };
	struct sigaction sa;
	size_t k;

	first = parse_args(argc, argv);
	/* The default policy here is LRU, not the library's Clock: Clock
	 * unmaps every resident page once per turn of its hand to read its
	 * reference bit, LRU needs one sample per eviction, and in the
	 * default transparent mode each minor fault that follows an unmap
	 * is a hand-off to a handler thread. bench/programs --quick: 10-45%
	 * fewer minor faults, memcached 11.6-12.9 s against 12.4-16.8,
	 * sqlite3 and sort 5-10% faster, the fork program 7% slower. */
	setenv("UPAGER_POLICY", "lru", 0);
	st = find_program(argv[first]);
	if (st == EXIT_NOTFOUND)
		die(st, "%s: command not found", argv[first]);
	if (st == EXIT_NOEXEC)
		die(st, "%s: not an executable file", argv[first]);
	preload = find_preload(preload_buf, sizeof(preload_buf));
	check_config();

	old = getenv("LD_PRELOAD");
	if (old && *old) {
		if (asprintf(&ld, "%s:%s", old, preload) < 0)
			die(EXIT_LAUNCHER, "out of memory");
	} else {
		ld = strdup(preload);
	}
	setenv("LD_PRELOAD", ld, 1);
	free(ld);

	/* The exec'd program tells its own exec failure back through a
	 * close-on-exec pipe. */
	if (pipe2(fpipe, O_CLOEXEC) < 0)
		die(EXIT_LAUNCHER, "pipe: %s", strerror(errno));
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = forward;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	for (k = 0; k < sizeof(fwd) / sizeof(fwd[0]); k++)
		sigaction(fwd[k], &sa, NULL);

	child = fork();
	if (child < 0)
		die(EXIT_LAUNCHER, "fork: %s", strerror(errno));
	if (child == 0) {
		char pid[24];
		int e;

		signal(SIGTSTP, SIG_DFL);
		for (k = 0; k < sizeof(fwd) / sizeof(fwd[0]); k++)
			signal(fwd[k], SIG_DFL);
		close(fpipe[0]);
		/* The shim's way to know it is the program itself and not
		 * one of its exec'd children (they must not share a named
		 * swap file). */
		snprintf(pid, sizeof(pid), "%d", (int)getpid());
		setenv("UPAGER_RUN_ROOT", pid, 1);
		execvp(argv[first], argv + first);
		e = errno;
		if (write(fpipe[1], &e, sizeof(e)) < 0)
			_exit(EXIT_LAUNCHER);
		_exit(e == ENOENT ? EXIT_NOTFOUND : EXIT_NOEXEC);
	}
	close(fpipe[1]);
	{
		int e;
		ssize_t n;

		do
			n = read(fpipe[0], &e, sizeof(e));
		while (n < 0 && errno == EINTR);
		if (n == (ssize_t)sizeof(e))
			fprintf(stderr, "upager-run: %s: %s\n", argv[first], strerror(e));
		close(fpipe[0]);
	}
	for (;;) {
		pid_t w = waitpid(child, &st, WUNTRACED);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			die(EXIT_LAUNCHER, "waitpid: %s", strerror(errno));
		}
		if (WIFSTOPPED(st)) {
			/* The program stopped (Ctrl-Z): stop too, so the
			 * shell sees a stopped job; continue it with us. */
			raise(SIGSTOP);
			kill(child, SIGCONT);
			continue;
		}
		break;
	}
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return WEXITSTATUS(st);
}
