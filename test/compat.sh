#!/bin/bash
# SPDX-License-Identifier: MIT
# Many real programs under upager-run, each with a budget well below its
# plain peak RSS: stdout, stderr and exit status must be byte-identical to
# a plain run, and peak RSS must stay near the budget. Programs not
# installed are skipped with a message. Run from the build tree:
#
#   test/compat.sh [--quick] [--combos "uffd:transparent uffd:fast ..."]
#                  [--only REGEX] [--keep]
#
# --quick: small inputs and only the default backend and mode (the subset
# make check runs through test/runner.sh is separate). Every run has a
# timeout: a hang is a failure. Prints one line per run and a closing
# "N passed, N failed, N skipped" line; exits 1 if a run failed.
set -u
top=$(pwd)
srcdir=$(cd "$(dirname "$0")/.." && pwd)
run=$top/tools/upager-run/upager-run
[ -x "$run" ] || { echo "no $run (run from the build tree)"; exit 1; }

quick=0 only= keep=0
combos="default uffd:fast sigsegv:transparent"
while [ $# -gt 0 ]; do
	case $1 in
	--quick) quick=1 ;;
	--combos) combos=$2; shift ;;
	--only) only=$2; shift ;;
	--keep) keep=1 ;;
	*) echo "usage: $0 [--quick] [--combos LIST] [--only REGEX] [--keep]"; exit 2 ;;
	esac
	shift
done
[ $quick = 1 ] && combos=default
if ldd "$top/tools/upager-run/.libs/libupager-preload.so" 2>/dev/null | grep -q 'lib[at]san'; then
	echo "the preload library is built with a sanitizer: skipped"
	exit 77
fi

w=$(mktemp -d "${TMPDIR:-/tmp}/upager-compat.XXXXXX") || exit 1
cleanup() { [ $keep = 1 ] && echo "kept $w" || rm -rf "$w"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
D=$w/data
mkdir -p "$D"
export D LC_ALL=C TZ=UTC

# Usable backend/mode pairs.
ok_combos=
for c in $combos; do
	if [ "$c" = default ]; then ok_combos="$ok_combos $c"; continue; fi
	if "$run" --backend "${c%%:*}" --mode "${c##*:}" true 2>/dev/null; then
		ok_combos="$ok_combos $c"
	else
		echo "SKIP: $c not usable here"
	fi
done

# ---- data ----
if [ $quick = 1 ]; then n=40000; else n=150000; fi
awk -v n=$n 'BEGIN { srand(42); for (i = 0; i < n; i++)
	printf "%08x %d w%d %s\n", int(rand() * 2147483647), i, int(rand() * 5000),
		substr("abcdefghijklmnopqrstuvwxyz", 1 + int(rand() * 20), 6) }' >"$D/text"
mkdir -p "$D/tree"
for i in $(seq 1 40); do
	mkdir -p "$D/tree/d$i"
	for j in $(seq 1 25); do head -c $((i * j * 37)) "$D/text" >"$D/tree/d$i/f$j"; done
done
touch -d '2020-01-01 00:00:00' $(find "$D/tree")
# A C file with many functions for gcc.
awk -v n=$((quick ? 300 : 1500)) 'BEGIN { print "#include <stdio.h>";
	for (i = 0; i < n; i++) {
		printf "static int f%d(int x) { int a[64]; for (int k = 0; k < 64; k++) a[k] = x * k + %d;", i, i
		printf " int s = 0; for (int k = 0; k < 64; k++) s += a[k] %% (k + 1); return s; }\n" }
	print "int main(void) { long s = 0;";
	for (i = 0; i < n; i++) printf "s += f%d(%d);\n", i, i;
	print "printf(\"%ld\\n\", s); return 0; }" }' >"$D/big.c"

pass=0 failn=0 skip=0
have() { command -v "$1" >/dev/null 2>&1; }
# The interpreter itself, not a version manager's shell wrapper.
PY=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null)
export PY

# case NAME TIMEOUT NEEDS 'COMMAND' : COMMAND runs with sh -c in a fresh
# directory, plain and then under upager-run with a budget of half
# (1/RAM_DIV) the plain run's peak RSS, at least 4 MiB.
# A fifth argument "unpaged" skips the RSS check for a program whose
# memory upager-run cannot page (README: Java's and V8's heaps are
# reservations committed later with MAP_FIXED or mprotect), or whose peak
# RSS is mostly code (rustc and its linker: libLLVM and librustc_driver
# are over 200 MiB of mapped libraries).
div=${RAM_DIV:-2}
case_() {
	name=$1 tmo=$2 needs=$3 cmd=$4 unpaged=${5:-}
	if [ -n "$only" ] && ! echo "$name" | grep -Eq "$only"; then return; fi
	for p in $needs; do
		if ! have "$p"; then
			echo "SKIP: $name: $p not installed"
			skip=$((skip + 1))
			return
		fi
	done
	d=$w/run-$name
	rm -rf "$d.plain"
	mkdir -p "$d.plain"
	(cd "$d.plain" && /usr/bin/time -f %M -o ../rss.plain timeout -k 5 "$tmo" \
		sh -c "$cmd" >../out.plain 2>../err.plain)
	st_plain=$?
	rss_plain=$(tail -1 "$w/rss.plain")
	if [ "$st_plain" = 124 ] || [ "$st_plain" = 137 ]; then
		echo "SKIP: $name: plain run timed out"
		skip=$((skip + 1))
		return
	fi
	ram=$((rss_plain / 1024 / div))
	[ $ram -lt 4 ] && ram=4
	ram=${ram}M
	for c in $ok_combos; do
		opts=
		[ "$c" != default ] && opts="--backend ${c%%:*} --mode ${c##*:}"
		rm -rf "$d.up"
		mkdir -p "$d.up"
		t0=$(date +%s.%N)
		# shellcheck disable=SC2086
		(cd "$d.up" && /usr/bin/time -f %M -o ../rss.up timeout -k 5 "$tmo" \
			"$run" --ram "$ram" $opts -- sh -c "$cmd" >../out.up 2>../err.up)
		st=$?
		secs=$(echo "$(date +%s.%N) - $t0" | bc)
		rss=$(tail -1 "$w/rss.up")
		why=
		[ "$st" = "$st_plain" ] || why="status $st, plain $st_plain"
		cmp -s "$w/out.plain" "$w/out.up" || why="$why stdout differs"
		cmp -s "$w/err.plain" "$w/err.up" || why="$why stderr differs"
		[ "$st" = 124 ] && why="timed out after $tmo s"
		# RSS: near the budget (plus the unpaged part: code, stacks,
		# metadata), or at least well below the plain run's.
		ramk=$(numfmt --from=iec "${ram}" 2>/dev/null)
		ramk=$((ramk / 1024))
		if [ -z "$unpaged" ] && [ "$rss" -gt $((ramk * 103 / 100 + 32768)) ] &&
			[ "$rss" -gt $((rss_plain * 3 / 4)) ]; then
			why="$why rss ${rss}K over budget"
		fi
		printf '%-4s %-22s %-20s ram %-5s rss %6d/%6d KiB %6.1fs %s\n' \
			"$([ -z "$why" ] && echo ok || echo FAIL)" "$name" "$c" "$ram" \
			$((rss)) $((rss_plain)) "$secs" "$why"
		if [ -n "$why" ]; then
			failn=$((failn + 1))
			diff "$w/out.plain" "$w/out.up" | head -5 | sed 's/^/    out: /'
			diff "$w/err.plain" "$w/err.up" | head -8 | sed 's/^/    err: /'
		else
			pass=$((pass + 1))
		fi
	done
}

# ---- the programs ----
T=$D/text
case_ sort 300 sort "sort -S 100M $T | md5sum; sort -n -k2 -r $T | tail -3"
case_ sort-parallel 300 sort "sort --parallel=2 -S 60M -k3,3 -k1,1 $T | md5sum"
case_ uniq 300 "sort uniq" "cut -d' ' -f3 $T | sort | uniq -c | sort -rn | head -5"
case_ tac 300 tac "tac $T | md5sum"
case_ shuf 300 shuf "shuf --random-source=$T $T | sha256sum"
case_ cut-tr 300 "cut tr" "cut -d' ' -f2,4 $T | tr a-z A-Z | sha256sum"
case_ base64 300 base64 "base64 $T | base64 -d | cmp - $T && echo same"
case_ gzip 300 gzip "gzip -c $T | gzip -dc | md5sum"
case_ bzip2 300 bzip2 "bzip2 -c $T | bzip2 -dc | md5sum"
case_ xz 300 xz "xz -6 -c $T | xz -dc | md5sum"
case_ xz-threads 300 xz "xz -T2 -3 -c $T | xz -T2 -dc | md5sum"
case_ zstd 300 zstd "zstd -q -T2 --long=26 -c $T | zstd -q -d --long=26 -c | md5sum"
case_ pigz 300 pigz "pigz -p 2 -c $T | pigz -dc | md5sum"
case_ gawk 300 gawk "gawk '{ n[\$3]++; s[\$4] = s[\$4] \$2 } END { for (k in n) c++; m = 0; for (k in s) m += length(s[k]); print c, m }' $T"
case_ gawk-recursion 300 gawk "gawk 'function f(n) { return n ? f(n - 1) + 1 : 0 } BEGIN { print f(200000) }'"
case_ mawk 300 mawk "mawk '{ n[\$3]++; t[NR] = \$1 } END { for (k in n) c++; print c, length(t), t[NR / 2] }' $T"
case_ perl-hash 300 perl "perl -e 'my %h; \$h{\$_} = \$_ * 2 for 1 .. 400000; my \$s = 0; \$s += \$h{\$_} for keys %h; my @a = sort { \$a <=> \$b } values %h; print \"\$s \$a[-1] \", scalar(@a), \"\\n\"'"
case_ perl-lines 300 perl "perl -ne 'push @l, \$_; END { print scalar(@l), \" \", (sort @l)[100], (reverse @l)[0] }' $T"
case_ perl-fork 300 perl "perl -e 'my @a = (1 .. 300000); my \$pid = fork; if (!\$pid) { \$_++ for @a; my \$s = 0; \$s += \$_ for @a; print \"child \$s\\n\"; exit 3 } waitpid(\$pid, 0); my \$s = 0; \$s += \$_ for @a; print \"parent \$s \", \$? >> 8, \"\\n\"'"
case_ python-dict 300 python3 "$PY -c '
d = {i: str(i) * 3 for i in range(400000)}
l = [x * 2 for x in range(800000)]
print(sum(len(v) for v in d.values()), sum(l), len(set(l)))'"
case_ python-threads 300 python3 "$PY -c '
import threading, hashlib
out = [None] * 4
def work(k):
    b = [bytes([k]) * 1000 for _ in range(20000)]
    out[k] = hashlib.sha256(b\"\".join(b)).hexdigest()
ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
print(out)'"
case_ python-mp 300 python3 "$PY -c '
import multiprocessing as mp
big = list(range(300000))
def f(k): return sum(big[k::7])
if __name__ == \"__main__\":
    with mp.get_context(\"fork\").Pool(2) as p: print(p.map(f, range(7)))'"
case_ python-subprocess 300 python3 "$PY -c '
import subprocess, os
data = b\"\".join(b\"%d\\n\" % i for i in range(300000))
r = subprocess.run([\"sort\", \"-n\", \"-r\"], input=data, capture_output=True)
print(len(r.stdout), r.stdout[:20], os.popen(\"echo hi\").read())'"
case_ python-sort 300 python3 "$PY -c '
import sys
lines = open(sys.argv[1]).read().split(\"\\n\")
lines.sort(key=lambda s: s[::-1])
print(len(lines), lines[len(lines)//2])' $T"
case_ sqlite 300 sqlite3 "sqlite3 :memory: 'create table t(a integer primary key, b text, c int);
with recursive r(x) as (select 1 union all select x + 1 from r where x < 100000)
insert into t select x, printf(\"%08d\", x * 7919 % 300007), x % 1000 from r;
create index tb on t(b); create index tc on t(c, b);
select count(*), sum(c), min(b), max(b) from t;
select c, count(*) from t group by c order by 2 desc, 1 limit 3;
pragma integrity_check;'"
case_ sqlite-file 300 sqlite3 "sqlite3 db 'pragma journal_mode=wal; create table t(a, b);
with recursive r(x) as (select 1 union all select x + 1 from r where x < 200000)
insert into t select x, printf(\"%x\", x * 31) from r; create index tb on t(b);
select count(*), max(b) from t; pragma integrity_check;'"
case_ bc 300 bc "echo 'scale=3000; 4*a(1)' | bc -l | md5sum; echo '2^300000 % 1000007' | bc"
case_ grep 300 grep "grep -E -c 'w(12|34)[0-9] [a-f]+' $T; grep -c -F abc $T"
case_ grep-pcre 300 grep "grep -P -c '^[0-9a-f]{8} \\d+7 w\\d+ (?:abc|bcd)' $T"
case_ find-tar-cpio 300 "find tar cpio" "cd $D && find tree | sort | md5sum && tar cf - tree | tar tvf - | md5sum && find tree | sort | cpio -o -H newc 2>/dev/null | cpio -it 2>/dev/null | md5sum"
case_ git 300 git "export GIT_AUTHOR_DATE=2020-01-01T00:00:00Z GIT_COMMITTER_DATE=2020-01-01T00:00:00Z GIT_AUTHOR_NAME=a GIT_AUTHOR_EMAIL=a@b GIT_COMMITTER_NAME=a GIT_COMMITTER_EMAIL=a@b HOME=\$PWD
git init -q r && cp -r $D/tree r/ && cd r && git add . && git commit -qm one && head -c 3000000 $T >big && git add big && git commit -qm two && git log --stat | md5sum && git gc -q && git fsck --strict && git count-objects -v | grep -v size && git rev-parse HEAD"
case_ gcc 600 gcc "gcc -O2 -o prog $D/big.c && ./prog"
case_ openssl 300 openssl "openssl enc -aes-256-cbc -pbkdf2 -pass pass:x -S 0102030405060708 -in $T | openssl enc -d -aes-256-cbc -pbkdf2 -pass pass:x | md5sum; openssl dgst -sha512 -r $T"
case_ tclsh 300 tclsh "echo 'set l {}; for {set i 0} {\$i < 300000} {incr i} {lappend l [expr {\$i * 7 % 1000}]}; set d [dict create]; foreach x \$l {dict incr d \$x}; puts \"[llength \$l] [dict size \$d] [lindex [lsort -integer \$l] 150000]\"' | tclsh"
case_ lua 300 lua5.4 "lua5.4 -e 'local t = {} for i = 1, 500000 do t[i] = tostring(i) .. \"x\" end local h = {} for i, v in ipairs(t) do h[v] = i end local s = 0 for k, v in pairs(h) do s = s + v end print(#t, s) collectgarbage() print(collectgarbage(\"count\") > 0)'"
case_ ruby 300 ruby "ruby -e 'h = {}; 300000.times { |i| h[i.to_s] = [i] * 3 }; puts h.size, h.values.map(&:sum).sum; def f(n) f(n + 1) end; begin f(0) rescue SystemStackError; puts \"stack\" end'"
case_ node 300 node "node -e 'const a = []; for (let i = 0; i < 500000; i++) a.push({i, s: String(i)}); const m = new Map(a.map(o => [o.s, o.i])); let s = 0; for (const v of m.values()) s += v; console.log(a.length, s, JSON.stringify(a).length)'" unpaged
case_ make 300 make "printf 'all: \$(patsubst %%,t%%,\$(shell seq 1 60))\\nt%%:\\n\\t@echo \$@ | md5sum > \$@\\n' >Makefile && make -s -j2 && cat t* | sort | md5sum"
case_ bash-popen 300 bash "bash -c 'for i in \$(seq 1 100); do echo \$i | md5sum; done | sort | md5sum; x=\$(for i in \$(seq 1 20000); do echo \$i; done); echo \${#x}'"
# stress-ng's stressors are forked children (never paged: README, fork);
# its parent has threads with thread-specific data, which a child's glibc
# clears before any fork handler runs.
case_ stress-ng 300 stress-ng "stress-ng -q --vm 1 --vm-bytes 32M --vm-ops 20 --vm-method all --verify --malloc 1 --malloc-ops 2000 --fork 1 --fork-ops 100 --pthread 1 --pthread-ops 200 --timeout 60; echo status \$?" unpaged
case_ cc-segv 300 gcc "printf '%s\\n' '#include <signal.h>' '#include <setjmp.h>' '#include <stdio.h>' '#include <stdlib.h>' '#include <string.h>' \
'static sigjmp_buf jb; static volatile int n;' \
'static void h(int s) { (void)s; n++; siglongjmp(jb, 1); }' \
'int main(void) { stack_t ss = { .ss_sp = malloc(1 << 16), .ss_size = 1 << 16 }; sigaltstack(&ss, 0);' \
'struct sigaction sa; memset(&sa, 0, sizeof sa); sa.sa_handler = h; sa.sa_flags = SA_ONSTACK; sigaction(SIGSEGV, &sa, 0);' \
'char *big = malloc(64 << 20); memset(big, 7, 64 << 20); long s = 0;' \
'for (int i = 0; i < 100; i++) if (!sigsetjmp(jb, 1)) *(volatile int *)(i * 8) = 1;' \
'for (long i = 0; i < (64 << 20); i += 4096) s += big[i]; printf(\"%d %ld\\n\", n, s); return 0; }' >s.c && gcc -o s s.c && ./s"
case_ go 300 go "export HOME=\$PWD GOCACHE=\$PWD/gocache GOFLAGS=-mod=mod CGO_ENABLED=1; printf 'package main\\nimport \"fmt\"\\nfunc main() { m := map[int]string{}; for i := 0; i < 300000; i++ { m[i] = fmt.Sprint(i) }; s := 0; for _, v := range m { s += len(v) }; fmt.Println(len(m), s) }\\n' >m.go && go run m.go"
case_ rust 600 rustc "printf 'use std::collections::HashMap; fn main() { let mut m = HashMap::new(); for i in 0..300000u64 { m.insert(i, i.to_string()); } let h: Vec<_> = (0..4).map(|k| std::thread::spawn(move || (0..1000000u64).map(|x| x * k).sum::<u64>())).collect(); let s: u64 = h.into_iter().map(|t| t.join().unwrap()).sum(); println!(\"{} {}\", m.len(), s); }\\n' >m.rs && rustc -O m.rs && ./m" unpaged

case_ xz-zstd-test 300 "xz zstd" "xz -1 -c $T >t.xz && xz -t t.xz && echo xz ok; zstd -q -3 -c $T >t.zst && zstd -q -t t.zst && echo zstd ok; xz -dc t.xz | md5sum; zstd -q -dc t.zst | md5sum"
case_ python-dev 300 python3 "$PY -X dev -c '
import hashlib, json, sqlite3
d = {str(i): [i, str(i) * 3] for i in range($((n / 2)))}
s = json.dumps(d); d2 = json.loads(s)
db = sqlite3.connect(\":memory:\"); db.execute(\"create table t(a, b)\")
db.executemany(\"insert into t values (?, ?)\", ((k, v[1]) for k, v in d2.items()))
print(hashlib.sha256(s.encode()).hexdigest(), db.execute(\"select count(*), max(b) from t\").fetchone(), len(d2))'"
# redis: jemalloc's own chunks (through the shim's malloc), a BGSAVE child
# that reads the whole dataset, the dump checked and the values read back.
case_ redis 300 "redis-server redis-cli redis-check-rdb" "redis-server --port 0 --unixsocket \$PWD/sock --save '' --appendonly no --dir \$PWD --loglevel warning --enable-debug-command yes >log 2>&1 &
for i in \$(seq 100); do redis-cli -s sock ping >/dev/null 2>&1 && break; sleep 0.1; done
awk -v n=$((n / 2)) 'BEGIN { for (i = 0; i < n; i++) printf \"SET key:%d %0100d\\r\\n\", i, i * 7; for (i = 0; i < n / 10; i++) printf \"RPUSH l:%d a%d b%d\\r\\nHSET h:%d f%d %d\\r\\n\", i % 100, i, i, i % 1000, i, i }' | redis-cli -s sock --pipe | tail -1
redis-cli -s sock dbsize; redis-cli -s sock bgsave >/dev/null
for i in \$(seq 600); do redis-cli -s sock info persistence | grep -q rdb_bgsave_in_progress:0 && break; sleep 0.1; done
redis-cli -s sock info persistence | grep rdb_last_bgsave_status
redis-check-rdb dump.rdb | grep -E 'keys read|RDB looks OK' | sed 's/^\[[^]]*\] //'
redis-cli -s sock debug digest
awk -v n=$((n / 2)) 'BEGIN { for (i = 0; i < n; i += 3) printf \"GET key:%d\\n\", i; for (i = 0; i < 100; i++) printf \"LRANGE l:%d 0 -1\\n\", i }' | redis-cli -s sock | md5sum
redis-cli -s sock shutdown nosave; wait"
# java: the JVM's heap is a PROT_NONE reservation committed with MAP_FIXED
# (not paged, README); its SIGSEGV handlers and threads must still work.
case_ java 300 java "printf 'import java.util.*;\\npublic class Big { public static void main(String[] a) { HashMap<Integer, String> m = new HashMap<>(); for (int i = 0; i < 300000; i++) m.put(i, \"v\" + (i * 7919L %% 1000003)); long s = 0; for (int i = 0; i < 300000; i++) s = s * 31 + m.get(i).hashCode(); List<String> l = new ArrayList<>(m.values()); Collections.sort(l); System.out.println(s + \" \" + l.get(150000)); } }\\n' >Big.java && java -Xmx256m Big.java" unpaged
# Runtimes with their own collectors and allocators: Boehm GC (guile),
# SBCL (its own SIGSEGV handling; its dynamic space is an executable
# fixed-address mapping, not paged), OCaml's major heap, the BEAM's
# allocators and schedulers and its erl_child_setup helper (closes every
# descriptor), PHP (RTLD_DEEPBIND extensions, the Zend allocator's 2 MiB
# chunks), ffmpeg's and ImageMagick's threads.
case_ guile 300 guile "guile -c '(define h (make-hash-table)) (let loop ((i 0)) (when (< i 200000) (hash-set! h i (number->string i)) (loop (+ i 1)))) (define l (hash-map->list (lambda (k v) (string-length v)) h)) (display (list (length l) (apply + l))) (newline) (gc) (display (> (assoc-ref (gc-stats) (quote heap-size)) 0)) (newline)'"
case_ sbcl 300 sbcl "sbcl --noinform --non-interactive --no-userinit --eval '(let ((h (make-hash-table))) (dotimes (i 300000) (setf (gethash i h) (format nil \"~D\" i))) (let ((s 0)) (maphash (lambda (k v) (incf s (length v))) h) (print (list (hash-table-count h) s))) (sb-ext:gc :full t) (print (length (sort (loop for i below 200000 collect (mod (* i 7919) 100003)) (function <)))) (terpri))'" unpaged
case_ ocaml 300 ocaml "printf 'let () = let h = Hashtbl.create 16 in for i = 0 to 299999 do Hashtbl.replace h i (string_of_int i) done; let s = Hashtbl.fold (fun _ v a -> a + String.length v) h 0 in let l = List.sort compare (List.init 200000 (fun i -> i * 7919 mod 100003)) in Gc.full_major (); Printf.printf \"%%d %%d %%d\\\\n\" (Hashtbl.length h) s (List.nth l 100000)\\n' >m.ml && ocamlfind ocamlopt -package str m.ml -o m 2>/dev/null || ocamlopt m.ml -o m && ./m"
case_ erlang 300 erl "erl -noshell -eval 'M = maps:from_list([{I, integer_to_list(I)} || I <- lists:seq(1, 300000)]), S = lists:sum([length(V) || V <- maps:values(M)]), P = [spawn_link(fun() -> ok end) || _ <- lists:seq(1, 1000)], L = lists:sort([(I * 7919) rem 100003 || I <- lists:seq(1, 200000)]), io:format(\"~p ~p ~p ~p~n\", [maps:size(M), S, length(P), lists:nth(100000, L)]), halt().'"
case_ php 300 php "php -d memory_limit=-1 -r '\$a = []; for (\$i = 0; \$i < 300000; \$i++) \$a[\"k\$i\"] = str_repeat(\"x\", \$i % 50); \$s = 0; foreach (\$a as \$v) \$s += strlen(\$v); \$b = range(1, 200000); shuffle(\$b); sort(\$b); echo count(\$a), \" \", \$s, \" \", \$b[100000], \" \", md5(serialize(array_slice(\$a, 0, 1000))), \"\\n\";'"
case_ jq 300 jq "jq -n '[range(300000) | {k: tostring, v: (. * 7)}] | (map(.v) | add), (group_by(.v % 97) | length), (map(.k) | sort | .[150000])'"
case_ ffmpeg 300 ffmpeg "ffmpeg -v error -f lavfi -i testsrc2=size=640x360:rate=25 -t 4 -c:v mpeg4 -threads 2 -f rawvideo -y out.raw && ffmpeg -v error -f lavfi -i testsrc2=size=640x360:rate=25 -t 4 -f framemd5 - | md5sum"
case_ imagemagick 300 convert "convert -size 2000x1500 gradient:red-blue -swirl 120 -blur 0x2 -resize 60% -depth 8 rgb:- | md5sum; convert -size 1200x900 xc:white -fill black -draw 'circle 600,450 600,100' -format '%[fx:mean] %wx%h' info:"
echo "compat: $pass passed, $failn failed, $skip skipped"
[ $failn = 0 ]
