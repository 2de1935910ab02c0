#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Lists the functions outside the library that a page fault can reach, and
# fails if one of them is not async-signal-safe (stdio, the printf family,
# malloc and friends, qsort, syslog, ...). In fast mode and on the sigsegv
# backend a fault is resolved inside a signal handler, which may have
# interrupted the program in the middle of any of those.
#
# How: the library's sources are compiled once more with GCC's
# -fcallgraph-info, which writes each file's call graph (after inlining,
# with calls through pointers shown as __indirect_call). The graphs are
# joined and walked from the fault entry points. A function that calls
# through a pointer is taken to reach every hook of the backend and policy
# tables that the fault path calls (the *_install, *_map, ... of fault-*.c,
# the insert/reference/remove/victim/miss of policy-*.c) and the policy
# environment's age().
#
# Usage: tools/fault-path-calls.sh [-v]   (-v: every external call with
#        one path to it). Run from the build directory (config.h); srcdir
#        may name the source tree. CC defaults to gcc. Exit 0 clean,
#        1 a forbidden call, 77 when the compiler or python3 is missing.
set -uo pipefail

verbose=0
[ "${1:-}" = "-v" ] && verbose=1
top=$(cd "$(dirname "$0")/.." && pwd)
src=${srcdir:-$top}
[ -f "$src/src/pager.c" ] || src=$top
build=$(pwd)
[ -f "$build/config.h" ] || build=$top
cc=${FAULT_PATH_CC:-gcc}

command -v python3 >/dev/null 2>&1 || { echo "SKIP: python3 not found"; exit 77; }
command -v "$cc" >/dev/null 2>&1 || { echo "SKIP: $cc not found"; exit 77; }
[ -f "$build/config.h" ] || { echo "SKIP: no config.h (run from the build directory)"; exit 77; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo 'int x;' > "$tmp/probe.c"
if ! "$cc" -fcallgraph-info -c "$tmp/probe.c" -o "$tmp/probe.o" 2>/dev/null; then
	echo "SKIP: $cc has no -fcallgraph-info (GCC 10 or later)"
	exit 77
fi

# The library's sources (the policies and the simulator too: a policy's
# hooks run under a fault).
uring_cflags=$(pkg-config --cflags liburing 2>/dev/null || true)
for f in "$src"/src/*.c; do
	base=$(basename "$f" .c)
	# -O2 as the library is built: what is inlined is what runs.
	if ! "$cc" -std=gnu11 -O2 -pthread -fcallgraph-info -I"$build" -I"$src/include" \
		-I"$src/src" $uring_cflags -c "$f" -o "$tmp/$base.o" 2>"$tmp/$base.err"; then
		if grep -q "HAVE_LINUX_USERFAULTFD_H\|linux/userfaultfd.h" "$tmp/$base.err"; then
			continue # not built here
		fi
		cat "$tmp/$base.err" >&2
		echo "FAIL: $f does not compile for the call graph"
		exit 1
	fi
done

python3 - "$tmp" "$src/src" "$verbose" <<'EOF'
import glob, os, re, sys

tmp, srcdir, verbose = sys.argv[1], sys.argv[2], sys.argv[3] == "1"

# Where a fault starts: the core's resolver, the backends' signal
# handlers and handler thread, and the reports on the way to SIGBUS.
ROOTS = ["upager__fault", "upager__report_fault_error", "upager__signal_pass_on",
         "upager__signal_raise_sigbus",
         "fault-uffd.c:sigbus_handler", "fault-uffd.c:handle_message",
         "fault-sigsegv.c:segv_handler", "fault-sigsegv.c:area_handler"]
# Hooks called through pointers on the fault path.
BACKEND_HOOKS = {"install", "map", "unprotect", "wrprotect", "unmap", "evicted", "wake"}
POLICY_HOOKS = {"insert", "reference", "remove", "victim", "miss"}
EXTRA_INDIRECT = ["upager__age_frame"]

# Not async-signal-safe (POSIX's list, glibc's manual): a signal handler
# may have interrupted the very call, holding its lock or half through
# its heap update.
DENY = re.compile(r"^(_*(v?[fsd]?n?printf|printf_chk|.*printf_chk)|puts|fputs|fputc|putc|putchar|"
                  r"fwrite|fread|fflush|fopen|fdopen|fclose|fgets|getline|perror|"
                  r"malloc|calloc|realloc|reallocarray|free|strdup|strndup|asprintf|"
                  r"vasprintf|posix_memalign|aligned_alloc|memalign|valloc|"
                  r"qsort|qsort_r|bsearch_r|syslog|vsyslog|openlog|strerror|strerror_r|"
                  r"strsignal|localtime|gmtime|ctime|asctime|getenv|setenv|"
                  r"exit|atexit|dlopen|dlsym|pthread_create|pthread_join|"
                  r"__(fprintf|printf|snprintf|vsnprintf|sprintf|vfprintf)_chk)$")

nodes, edges, defined = {}, {}, set()
node_re = re.compile(r'node: \{ title: "([^"]+)" label: "([^"\\]+)\\n([^"]*)"( shape : ellipse)?')
edge_re = re.compile(r'edge: \{ sourcename: "([^"]+)" targetname: "([^"]+)" label: "([^"]+)"')
for ci in glob.glob(os.path.join(tmp, "*.ci")):
    for line in open(ci):
        m = node_re.match(line)
        if m:
            title = m.group(1)
            if not m.group(4):
                defined.add(title)
            continue
        m = edge_re.match(line)
        if m:
            edges.setdefault(m.group(1), []).append((m.group(2), m.group(3)))

def short(title):
    return re.sub(r"^.*/", "", title)

# The functions the ops tables name for the hooks above.
indirect = list(EXTRA_INDIRECT)
hook_re = re.compile(r"^\s*\.(\w+)\s*=\s*(\w+),")
for path in glob.glob(os.path.join(srcdir, "*.c")):
    name = os.path.basename(path)
    hooks = BACKEND_HOOKS if name.startswith("fault-") else \
            POLICY_HOOKS if name.startswith("policy") else set()
    for line in open(path):
        m = hook_re.match(line)
        if m and m.group(1) in hooks:
            fn = m.group(2)
            indirect.append(name + ":" + fn if (name + ":" + fn) in
                            {short(d) for d in defined} else fn)

full = {}
for d in defined:
    full[short(d)] = d
    full.setdefault(d, d)

def resolve(t):
    return full.get(short(t), full.get(t, t))

via = {}
todo = []
for r in ROOTS + indirect:
    t = resolve(r)
    if t in defined and t not in via:
        via[t] = None
        todo.append(t)
    elif t not in defined and r in ROOTS and not r.startswith("fault-uffd.c"):
        print("note: entry point %s not found" % r)
external = {}
while todo:
    f = todo.pop()
    for t, where in edges.get(f, []):
        if t == "__indirect_call":
            continue # the hook tables above are roots already
        rt = resolve(t)
        if rt in defined:
            if rt not in via:
                via[rt] = f
                todo.append(rt)
        elif t not in external:
            external[t] = (f, short(where))

def path(f):
    p = []
    while f:
        p.append(short(f).split(":")[-1])
        f = via[f]
    return " <- ".join(p)

bad = 0
for name in sorted(external):
    f, where = external[name]
    forbidden = bool(DENY.match(name))
    bad += forbidden
    if verbose or forbidden:
        print("%-28s %s at %s: %s" % (name, "FORBIDDEN" if forbidden else "ok", where, path(f)))
print("%d functions reachable from a fault (%d hooks called through pointers), "
      "%d external calls, %d forbidden" % (len(via), len(indirect), len(external), bad))
if not verbose:
    print("external calls: " + " ".join(sorted(external)))
sys.exit(1 if bad else 0)
EOF
