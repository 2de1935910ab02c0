#!/bin/sh
# SPDX-License-Identifier: MIT
# examples/filescan through an upager file region (budget a quarter of the
# file) and through mmap() must print the same sums and counts, and its
# --update must leave the two copies of the file identical, on each
# backend and mode that can run here. The file's size is not a multiple
# of the page size.
set -u
scan=./examples/filescan
tmp=$(mktemp -d "${TMPDIR:-/tmp}/upager-filescan.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

[ -x "$scan" ] || fail "$scan not built"
head -c 4194427 /dev/urandom > "$tmp/orig" || fail "cannot make the test file"
cp "$tmp/orig" "$tmp/m"
"$scan" --mmap --passes 2 --byte 65 --update 4099 "$tmp/m" > "$tmp/mmap.out" 2> "$tmp/err" ||
	fail "filescan --mmap: $(cat "$tmp/err")"
[ "$(wc -l < "$tmp/mmap.out")" -eq 3 ] || fail "filescan --mmap printed: $(cat "$tmp/mmap.out")"
cmp -s "$tmp/orig" "$tmp/m" && fail "--update did not change the file"
ran=0
for backend in uffd sigsegv; do
	for mode in fast transparent; do
		cp "$tmp/orig" "$tmp/u"
		if ! UPAGER_BACKEND=$backend UPAGER_MODE=$mode "$scan" --budget 1048576 --passes 2 \
			--byte 65 --update 4099 "$tmp/u" > "$tmp/u.out" 2> "$tmp/err"; then
			# A backend this machine does not offer is skipped, not failed.
			grep -qi backend "$tmp/err" && [ "$backend" = uffd ] && continue
			fail "filescan ($backend/$mode): $(cat "$tmp/err")"
		fi
		cmp "$tmp/mmap.out" "$tmp/u.out" ||
			fail "$backend/$mode printed $(cat "$tmp/u.out"), mmap printed $(cat "$tmp/mmap.out")"
		cmp "$tmp/m" "$tmp/u" || fail "$backend/$mode: the updated files differ"
		echo "$backend/$mode: same output and file as mmap"
		ran=$((ran + 1))
	done
done
[ "$ran" -gt 0 ] || fail "no backend ran"
exit 0
