#!/bin/sh
# SPDX-License-Identifier: MIT
# upager-sim's command line: a run on a LIRS trace checked against hit
# counts computed independently (LRU and OPT: 6307 and 7465 hits of 9047
# on cpp at 100 pages, the brute-force counts test/simexact checks; ARC:
# asked here of test/paperref's reference written from the paper's
# pseudocode), the CSV header, the table and the SVG; then bad arguments
# must fail with a message.
set -u
srcdir=${srcdir:-.}
sim=./tools/upager-sim/upager-sim
trace=$srcdir/test/data/cpp.trace.gz
tmp=$(mktemp -d /tmp/upager-sim-test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

[ -x "$sim" ] || fail "$sim not built"
ref=./test/paperref
[ -x "$ref" ] || fail "$ref not built"
arc_hits=$("$ref" arc "$trace" 100) || fail "reference ARC run"
case $arc_hits in '' | *[!0-9]*) fail "reference ARC gave '$arc_hits'" ;; esac
arc_ratio=$(awk -v h="$arc_hits" 'BEGIN { printf "%.2f", 100 * h / 9047 }')
arc_re=$(echo "$arc_ratio" | sed 's/\./\\./')

"$sim" --trace "$trace" --format lirs --policies lru,arc,opt,s3fifo:small=0.2 \
	--sizes 100,500 --csv "$tmp/out.csv" --plot "$tmp/out.svg" > "$tmp/table" 2> "$tmp/err" ||
	fail "upager-sim failed: $(cat "$tmp/err")"
cat "$tmp/table"

[ "$(head -n 1 "$tmp/out.csv")" = "policy,size,requests,hits,hit_ratio" ] || fail "CSV header: $(head -n 1 "$tmp/out.csv")"
grep -qx 'lru,100,9047,6307,69.71' "$tmp/out.csv" || fail "lru row: $(grep ^lru, "$tmp/out.csv")"
grep -qx 'opt,100,9047,7465,82.51' "$tmp/out.csv" || fail "opt row: $(grep ^opt, "$tmp/out.csv")"
grep -qx "arc,100,9047,$arc_hits,$arc_ratio" "$tmp/out.csv" || fail "arc row: $(grep ^arc, "$tmp/out.csv")"
grep -q '^s3fifo:small=0.2,500,9047,' "$tmp/out.csv" || fail "parametrised policy missing"
[ "$(wc -l < "$tmp/out.csv")" -eq 9 ] || fail "expected 8 rows"
# The table: a row per size with the hit ratios.
grep -Eq "^ +100 +69\\.71 +$arc_re +82\\.51 " "$tmp/table" || fail "table row for 100"
# The plot: an SVG with a line per policy and the legend.
grep -q '<svg' "$tmp/out.svg" || fail "no SVG"
[ "$(grep -c '<polyline' "$tmp/out.svg")" -eq 4 ] || fail "expected 4 curves"
grep -q '>arc</text>' "$tmp/out.svg" || fail "no legend"
grep -q 'miss ratio (%)' "$tmp/out.svg" || fail "no axis label"

# The same references in the range format (one page per line) and in
# upager's binary format, zstd-compressed, give the same counts.
zcat "$trace" | awk '$0 != "*" && $0 != "" { print $1, 1 }' > "$tmp/r.txt"
"$sim" --trace "$tmp/r.txt" --format range --policies lru --sizes 100 --csv "$tmp/r.csv" --quiet ||
	fail "range run"
grep -qx 'lru,100,9047,6307,69.71' "$tmp/r.csv" || fail "range lru row"
"$sim" --trace "$trace" --format lirs --write-trace "$tmp/cpp.upt" 2> "$tmp/e" || fail "convert: $(cat "$tmp/e")"
grep -q 'wrote 9047 references' "$tmp/e" || fail "convert count: $(cat "$tmp/e")"
if command -v zstd > /dev/null; then
	zstd -q "$tmp/cpp.upt" -o "$tmp/cpp.upt.zst" || fail "zstd"
	up="$tmp/cpp.upt.zst"
else
	gzip -c "$tmp/cpp.upt" > "$tmp/cpp.upt.gz" || fail "gzip"
	up="$tmp/cpp.upt.gz"
fi
"$sim" --trace "$up" --format upager --policies lru,opt --sizes 100 --csv "$tmp/u.csv" --quiet ||
	fail "upager run"
grep -qx 'lru,100,9047,6307,69.71' "$tmp/u.csv" || fail "upager lru row"
grep -qx 'opt,100,9047,7465,82.51' "$tmp/u.csv" || fail "upager opt row"

# Bad arguments: non-zero exit and a message naming the problem.
expect_fail() {
	want=$1
	shift
	if "$sim" "$@" > "$tmp/o" 2> "$tmp/e"; then
		fail "succeeded: $*"
	fi
	grep -q -- "$want" "$tmp/e" || fail "message for '$*' lacks '$want': $(cat "$tmp/e")"
}
expect_fail "unknown trace format 'csv'" --trace "$trace" --format csv --policies lru --sizes 10 --csv "$tmp/x"
expect_fail "unknown policy 'nosuch'" --trace "$trace" --format lirs --policies lru,nosuch --sizes 10 --csv "$tmp/x"
expect_fail "unknown policy parameter" --trace "$trace" --format lirs --policies arc:p=3 --sizes 10 --csv "$tmp/x"
expect_fail "bad cache size '0'" --trace "$trace" --format lirs --policies lru --sizes 10,0 --csv "$tmp/x"
expect_fail "bad cache size 'ten'" --trace "$trace" --format lirs --policies lru --sizes ten --csv "$tmp/x"
expect_fail "cannot open trace" --trace "$tmp/none.gz" --format lirs --policies lru --sizes 10 --csv "$tmp/x"
expect_fail "required" --trace "$trace" --format lirs --policies lru --sizes 10
expect_fail "expected 'l' or 's'" --trace "$trace" --format addr --policies lru --sizes 10 --csv "$tmp/x"
expect_fail "converts only" --trace "$trace" --format lirs --policies lru --sizes 10 --csv "$tmp/x" --write-trace "$tmp/y"
expect_fail "not an upager trace" --trace "$trace" --format upager --policies lru --sizes 10 --csv "$tmp/x"
"$sim" --help | grep -q clockpro || fail "--help does not list the policies"
echo "sim-cli: all checks passed"
