// SPDX-License-Identifier: MIT
/*
 * upager-sim: replays a page reference trace through replacement policies
 * and Belady's OPT over a list of cache sizes.
 *
 *   upager-sim --trace FILE --format lirs|addr|range|upager
 *              --policies lru,arc,opt,... --sizes 1000,2000,...
 *              --csv OUT.csv [--plot OUT.svg]
 *
 * Prints a table of hit ratios (percent, two decimals; a row per size, a
 * column per policy), writes the CSV "policy,size,requests,hits,hit_ratio"
 * and, with --plot, the miss-ratio curves as SVG. Every run starts from an
 * empty cache and counts every request; a hit is a request whose page is
 * resident. The policies are the library's own (the same files the pager
 * runs) plus "opt".
 *
 * A policy may carry parameters: --policies lru,s3fifo:small=0.2,arc. An
 * item with '=' but no ':' continues the previous policy's parameters
 * (lfu:decay=100,max=15 is one policy).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "plot.h"
#include "policy.h"
#include "sim.h"
#include "trace.h"
#include "upager.h"

static void die(int code, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));

static void die(int code, const char *fmt, ...)
{
	va_list ap;

	fputs("upager-sim: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (code == 2)
		fputs("Try 'upager-sim --help'.\n", stderr);
	exit(code);
}

static void usage(FILE *f)
{
	const upager_policy_ops_t *ops[64];
	size_t n = upager_policy_list(ops, 64);

	fprintf(f,
		"usage: upager-sim --trace FILE --format lirs|addr|range|upager\n"
		"                  --policies P1,P2,... --sizes N1,N2,... --csv OUT.csv\n"
		"                  [--plot OUT.svg] [--page-shift N] [--limit N] [--speed] [--quiet]\n"
		"       upager-sim --trace FILE --format F --write-trace OUT.upt\n"
		"\n"
		"  --trace FILE     the trace; .gz and .zst are read directly\n"
		"  --format F       lirs: a block number per line ('*' lines skipped)\n"
		"                   addr: 'l|s 0xADDR n' per line, page = ADDR >> page shift\n"
		"                   range: 'start count ...' per line = count pages from start\n"
		"                   upager: upager's binary trace (docs/trace-format.md)\n"
		"  --policies LIST  comma-separated, name[:key=value,...]; 'opt' = Belady's OPT\n"
		"  --sizes LIST     cache sizes in pages, comma-separated\n"
		"  --csv FILE       write policy,size,requests,hits,hit_ratio\n"
		"  --plot FILE      draw the miss-ratio curves as SVG\n"
		"  --page-shift N   addr format: address bits below the page (default 12)\n"
		"  --limit N        replay only the first N references\n"
		"  --speed          print one key=value line per run with references/second\n"
		"  --write-trace F  convert the trace to upager's format in F (give it with\n"
		"                   --trace and --format only)\n"
		"  --quiet          no table on standard output\n"
		"\npolicies:\n  %-9s Belady's optimum (evicts the page used farthest in the future;\n"
		"            opt:bypass=1 may also decline to cache the missing page)\n",
		"opt");
	for (size_t i = 0; i < n && i < 64; i++)
		fprintf(f, "  %-9s %s\n", ops[i]->name, ops[i]->summary ? ops[i]->summary : "");
}

/* Splits the policy list (see the top of the file). */
static size_t split_policies(char *list, char ***out)
{
	size_t n = 0, cap = 8;
	char **v = malloc(cap * sizeof(*v));
	char *save = NULL;

	if (!v)
		die(1, "out of memory");
	for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (strchr(tok, '=') && !strchr(tok, ':') && n) {
			size_t len = strlen(v[n - 1]) + strlen(tok) + 2;
			char *joined = malloc(len);
			if (!joined)
				die(1, "out of memory");
			snprintf(joined, len, "%s,%s", v[n - 1], tok);
			free(v[n - 1]);
			v[n - 1] = joined;
			continue;
		}
		if (n == cap) {
			cap *= 2;
			v = realloc(v, cap * sizeof(*v));
			if (!v)
				die(1, "out of memory");
		}
		v[n] = strdup(tok);
		if (!v[n++])
			die(1, "out of memory");
	}
	*out = v;
	return n;
}

static size_t parse_sizes(char *list, uint32_t **out)
{
	size_t n = 0, cap = 8;
	uint32_t *v = malloc(cap * sizeof(*v));
	char *save = NULL;

	if (!v)
		die(1, "out of memory");
	for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *end;
		errno = 0;
		unsigned long long s = strtoull(tok, &end, 10);
		if (tok[0] < '0' || tok[0] > '9' || *end || errno || s == 0 || s > 0x7fffffffULL)
			die(2, "bad cache size '%s' (expected a positive number of pages)", tok);
		if (n == cap) {
			cap *= 2;
			v = realloc(v, cap * sizeof(*v));
			if (!v)
				die(1, "out of memory");
		}
		v[n++] = (uint32_t)s;
	}
	*out = v;
	return n;
}

static void no_age(void *host, uint32_t frame)
{
}

/* Fails early, before the trace is read, on an unknown policy or bad
 * parameters. */
static void check_policy(const char *spec)
{
	struct policy *pol;
	int err;

	if (!strcmp(spec, "opt") || !strcmp(spec, "opt:bypass=1"))
		return;
	if (!strncmp(spec, "opt:", 4))
		die(2, "policy 'opt' takes one parameter: opt:bypass=1");
	err = policy_create(spec, 64, no_age, NULL, &pol);
	if (err == UPAGER_EPOLICY)
		die(2, "policy '%s': %s (see --help for the list)", spec, upager_last_error());
	if (err)
		die(1, "policy '%s': %s", spec, upager_strerror(err));
	policy_destroy(pol);
}

static int col_width(const char *name)
{
	size_t len = strlen(name);
	return len > 10 ? (int)len : 10;
}

/* Copies a trace into upager's format. */
static int convert(const char *in, enum trace_format fmt, unsigned page_shift,
		   unsigned long long limit, const char *out)
{
	struct trace_reader *rd;
	struct trace_writer *w;
	unsigned long long n = 0;
	uint64_t key;
	unsigned flags;
	int err = trace_open(in, fmt, page_shift, &rd);

	if (err)
		die(1, "%s", upager_last_error());
	err = trace_writer_open(out, page_shift, &w);
	if (err)
		die(1, "%s", upager_last_error()[0] ? upager_last_error() : strerror(-err));
	while ((err = trace_next(rd, &key, &flags)) == 1 && (!limit || n < limit)) {
		if (trace_writer_ref(w, key, flags))
			break;
		n++;
	}
	if (err < 0)
		die(1, "%s", upager_last_error());
	trace_close(rd);
	err = trace_writer_close(w);
	if (err)
		die(1, "cannot write %s: %s", out, strerror(-err));
	fprintf(stderr, "upager-sim: wrote %llu references to %s\n", n, out);
	return 0;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "trace", required_argument, NULL, 't' },
		{ "format", required_argument, NULL, 'f' },
		{ "policies", required_argument, NULL, 'p' },
		{ "sizes", required_argument, NULL, 's' },
		{ "csv", required_argument, NULL, 'c' },
		{ "plot", required_argument, NULL, 'g' },
		{ "page-shift", required_argument, NULL, 'P' },
		{ "limit", required_argument, NULL, 'l' },
		{ "speed", no_argument, NULL, 'S' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "write-trace", required_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *trace_path = NULL, *format = NULL, *csv_path = NULL, *plot_path = NULL;
	const char *write_path = NULL;
	char *policy_list = NULL, *size_list = NULL;
	unsigned page_shift = 12;
	unsigned long long limit = 0;
	bool speed = false, quiet = false;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		char *end;
		switch (c) {
		case 't':
			trace_path = optarg;
			break;
		case 'f':
			format = optarg;
			break;
		case 'p':
			policy_list = optarg;
			break;
		case 's':
			size_list = optarg;
			break;
		case 'c':
			csv_path = optarg;
			break;
		case 'g':
			plot_path = optarg;
			break;
		case 'P':
			page_shift = (unsigned)strtoul(optarg, &end, 10);
			if (*end || !*optarg || page_shift > 40)
				die(2, "bad --page-shift '%s' (0..40)", optarg);
			break;
		case 'l':
			limit = strtoull(optarg, &end, 10);
			if (*end || !*optarg || !limit)
				die(2, "bad --limit '%s'", optarg);
			break;
		case 'S':
			speed = true;
			break;
		case 'q':
			quiet = true;
			break;
		case 'w':
			write_path = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			die(2, "bad arguments");
		}
	}
	if (optind < argc)
		die(2, "unexpected argument '%s'", argv[optind]);
	bool convert_only = write_path && !policy_list && !size_list && !csv_path;
	if (write_path && !convert_only)
		die(2, "--write-trace converts only: give it without --policies, --sizes, --csv");
	if (!trace_path || !format || (!convert_only && (!policy_list || !size_list || !csv_path)))
		die(2, "--trace, --format, --policies, --sizes and --csv are required");

	enum trace_format fmt;
	if (trace_format_parse(format, &fmt))
		die(2, "unknown trace format '%s' (lirs, addr, range or upager)", format);
	if (convert_only)
		return convert(trace_path, fmt, page_shift, limit, write_path);
	char **policies;
	size_t npol = split_policies(policy_list, &policies);
	if (!npol)
		die(2, "no policies given");
	for (size_t i = 0; i < npol; i++)
		check_policy(policies[i]);
	uint32_t *sizes;
	size_t nsizes = parse_sizes(size_list, &sizes);
	if (!nsizes)
		die(2, "no cache sizes given");

	/* Load the whole trace once, pages renamed to dense ids. */
	struct trace_reader *rd;
	struct sim_trace t;
	uint64_t key;
	unsigned flags;
	int err = trace_open(trace_path, fmt, page_shift, &rd);
	if (err)
		die(1, "%s", upager_last_error()[0] ? upager_last_error() : upager_strerror(err));
	sim_trace_init(&t);
	double t0 = now();
	while ((err = trace_next(rd, &key, &flags)) == 1) {
		if (sim_trace_add(&t, key, flags & TRACE_WRITE))
			die(1, "trace too large for memory");
		if (limit && t.n >= limit)
			break;
	}
	if (err < 0)
		die(1, "%s", upager_last_error());
	trace_close(rd);
	if (!t.n)
		die(1, "%s: no references in this trace (is --format %s right?)", trace_path,
		    format);
	double load_s = now() - t0;

	FILE *csv = fopen(csv_path, "w");
	if (!csv)
		die(1, "cannot write %s: %s", csv_path, strerror(errno));
	fprintf(csv, "policy,size,requests,hits,hit_ratio\n");

	double *hit = calloc(npol * nsizes, sizeof(*hit));
	if (!hit)
		die(1, "out of memory");
	for (size_t p = 0; p < npol; p++) {
		for (size_t s = 0; s < nsizes; s++) {
			upager_sim_result_t r;
			double t1 = now();
			err = sim_run_spec(policies[p], sizes[s], &t, &r);
			double dt = now() - t1;
			if (err)
				die(1, "%s at size %u: %s", policies[p], sizes[s],
				    upager_last_error()[0] ? upager_last_error()
							   : upager_strerror(err));
			hit[p * nsizes + s] = 100.0 * (double)r.hits / (double)r.requests;
			fprintf(csv, "%s,%u,%llu,%llu,%.2f\n", policies[p], sizes[s],
				(unsigned long long)r.requests, (unsigned long long)r.hits,
				hit[p * nsizes + s]);
			if (speed)
				printf("policy=%s size=%u requests=%llu seconds=%.4f refs_per_sec=%.0f\n",
				       policies[p], sizes[s], (unsigned long long)r.requests, dt,
				       dt > 0 ? (double)r.requests / dt : 0.0);
		}
	}
	if (fclose(csv))
		die(1, "cannot write %s: %s", csv_path, strerror(errno));

	if (!quiet) {
		printf("trace %s (%s): %zu requests, %u distinct pages, loaded in %.2f s\n",
		       trace_path, format, t.n, t.nids, load_s);
		printf("hit ratio (%%)\n%10s", "size");
		for (size_t p = 0; p < npol; p++)
			printf(" %*s", col_width(policies[p]), policies[p]);
		putchar('\n');
		for (size_t s = 0; s < nsizes; s++) {
			printf("%10u", sizes[s]);
			for (size_t p = 0; p < npol; p++)
				printf(" %*.2f", col_width(policies[p]), hit[p * nsizes + s]);
			putchar('\n');
		}
	}
	if (plot_path) {
		struct plot_series *series = calloc(npol, sizeof(*series));
		double *miss = calloc(npol * nsizes, sizeof(*miss));
		char title[300];
		const char *base = strrchr(trace_path, '/');
		if (!series || !miss)
			die(1, "out of memory");
		for (size_t i = 0; i < npol * nsizes; i++)
			miss[i] = 100.0 - hit[i];
		for (size_t p = 0; p < npol; p++)
			series[p] = (struct plot_series){ policies[p], miss + p * nsizes };
		snprintf(title, sizeof(title), "miss ratio: %s (%zu requests, %u pages)",
			 base ? base + 1 : trace_path, t.n, t.nids);
		err = plot_svg(plot_path, title, sizes, nsizes, series, npol);
		if (err)
			die(1, "cannot write %s: %s", plot_path, strerror(-err));
		free(series);
		free(miss);
	}
	free(hit);
	sim_trace_free(&t);
	for (size_t p = 0; p < npol; p++)
		free(policies[p]);
	free(policies);
	free(sizes);
	return 0;
}
