#!/bin/sh
# SPDX-License-Identifier: MIT
# References per second of upager-sim, per policy, on a large synthetic
# trace: 60% skewed reuse over 20,000 pages, 20% a loop over 50,000 pages,
# 20% uniform over a million. One key=value line per policy (the time to
# replay the trace once at one cache size, trace already loaded).
#
#   bench/sim-speed.sh [REFERENCES] [CACHE_PAGES]    (defaults 4000000 10000)
#
# Run from the build directory (or set SIM to the upager-sim binary).
set -eu
sim=${SIM:-./tools/upager-sim/upager-sim}
refs=${1:-4000000}
size=${2:-10000}
policies=${POLICIES:-fifo random clock lru lfu 2q arc car s3fifo sieve clockpro opt}
tmp=$(mktemp -d /tmp/upager-sim-speed.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

[ -x "$sim" ] || { echo "sim-speed: $sim not found (make first, or set SIM)" >&2; exit 1; }
awk -v n="$refs" 'BEGIN {
	srand(1)
	for (i = 0; i < n; i++) {
		r = rand()
		if (r < 0.6) print int(rand() * rand() * 20000)
		else if (r < 0.8) print 100000 + i % 50000
		else print 200000 + int(rand() * 1000000)
	}
}' > "$tmp/trace.lirs"
for p in $policies; do
	"$sim" --trace "$tmp/trace.lirs" --format lirs --policies "$p" --sizes "$size" \
		--csv "$tmp/out.csv" --speed --quiet |
		sed 's/^/bench=sim-speed /'
done
