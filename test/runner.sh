#!/bin/sh
# SPDX-License-Identifier: MIT
# upager-run: the launcher's errors and exit statuses, and the runner-*
# test programs under it (each plain first, then under upager-run on every
# usable backend and mode with a small budget), outputs compared.
set -u
top=$(pwd)
run=$top/tools/upager-run/upager-run
early=$top/test/.libs/librunner-early.so
[ -x "$run" ] || { echo "no $run"; exit 1; }
# A sanitizer build's preload library needs its runtime loaded first,
# which a program that is not itself built with it does not have.
if ldd "$top/tools/upager-run/.libs/libupager-preload.so" 2>/dev/null | grep -q 'lib[at]san'; then
	echo "the preload library is built with a sanitizer: skipped"
	exit 77
fi
status=0
fail() { echo "FAIL: $*"; status=1; }

expect_status() { # want, command...
	want=$1; shift
	"$@" >/tmp/runner-out.$$ 2>/tmp/runner-err.$$
	got=$?
	if [ "$got" != "$want" ]; then
		fail "'$*' exited $got, expected $want ($(head -c 300 /tmp/runner-err.$$))"
	fi
}

echo "== launcher"
expect_status 0 "$run" true
expect_status 7 "$run" sh -c 'exit 7'
expect_status 143 "$run" sh -c 'kill -TERM $$'
expect_status 137 "$run" sh -c 'kill -KILL $$'
expect_status 125 "$run" --bogus true
expect_status 125 "$run" --ram
expect_status 125 "$run" --ram 12Q true
expect_status 125 "$run" --ram 4K true
expect_status 125 "$run" --policy no-such-policy true
expect_status 125 "$run" --backend no-such-backend true
expect_status 125 "$run" --mode sideways true
expect_status 125 "$run" --page-size 3000 true
expect_status 125 "$run" --swap /nonexistent-dir/swap true
expect_status 125 "$run"
expect_status 127 "$run" no-such-program-anywhere
expect_status 127 "$run" ./no/such/path
expect_status 126 "$run" /etc/passwd
# One line, and the program never ran.
"$run" --ram 1K sh -c 'echo ran' >/tmp/runner-out.$$ 2>/tmp/runner-err.$$
[ -s /tmp/runner-out.$$ ] && fail "program ran despite a bad budget"
[ "$(wc -l </tmp/runner-err.$$)" = 1 ] || fail "error is not one line: $(cat /tmp/runner-err.$$)"
# Options reach the program as UPAGER_* variables; -- ends the options.
out=$("$run" --ram 32M --policy fifo --mode fast --page-size 4096 -- sh -c 'echo "$UPAGER_RAM $UPAGER_POLICY $UPAGER_MODE $UPAGER_PAGE_SIZE"')
[ "$out" = "32M fifo fast 4096" ] || fail "options not passed: '$out'"
out=$("$run" --ram=16M -- sh -c 'echo "$UPAGER_RAM"')
[ "$out" = "16M" ] || fail "--opt=value not passed: '$out'"
# --stats: the mode picked, and the statistics at exit.
"$run" --stats --ram 32M true 2>/tmp/runner-err.$$ || fail "--stats run"
grep -q "backend .*mode" /tmp/runner-err.$$ || fail "--stats does not say the mode"
grep -q "runner_mmaps" /tmp/runner-err.$$ || fail "--stats printed no statistics at exit"
# ... also when a terminating signal kills the program.
"$run" --stats --ram 32M "$top/test/runner-threads" sigterm >/dev/null 2>/tmp/runner-err.$$
[ $? = 143 ] || fail "runner-threads sigterm: not 143"
grep -q "runner_mmaps" /tmp/runner-err.$$ || fail "--stats printed nothing on SIGTERM"

# A pager that cannot map its arena is closed, threads and all: a region
# left registered made the exit of a program under valgrind (one thread
# at a time) wait forever for a pager thread to note an unmapping.
out=$(UPAGER_RUN_ARENA=1 "$run" --ram 16M grep Threads /proc/self/status 2>/tmp/runner-err.$$)
[ "$out" = "$(printf 'Threads:\t1')" ] || fail "without an arena: $out"
grep -q "running without the pager" /tmp/runner-err.$$ || fail "without an arena: no message"

# Which backends and modes can run here.
combos="uffd:transparent uffd:fast sigsegv:transparent"
for c in $combos; do
	b=${c%%:*} m=${c##*:}
	if ! "$run" --backend "$b" --mode "$m" true 2>/dev/null; then
		echo "-- $b/$m not usable here: skipped"
		continue
	fi
	ok_combos="${ok_combos:-} $c"
done

prog() { # name args...
	name=$1; shift
	"$top/test/$name" "$@" >/tmp/runner-plain.$$ 2>&1 || { fail "$name plain: $(tail -3 /tmp/runner-plain.$$)"; return; }
	for c in ${ok_combos:-}; do
		b=${c%%:*} m=${c##*:}
		echo "== $name $* under upager-run --backend $b --mode $m --ram 16M"
		# A hang is a failure (the timeout's status), not a stuck make check.
		if ! timeout -k 5 120 "$run" --backend "$b" --mode "$m" --ram 16M "$top/test/$name" "$@" \
			>/tmp/runner-out.$$ 2>/tmp/runner-err.$$; then
			fail "$name under $b/$m: $(tail -5 /tmp/runner-err.$$)"
			continue
		fi
		cmp -s /tmp/runner-plain.$$ /tmp/runner-out.$$ ||
			fail "$name under $b/$m: output differs: $(diff /tmp/runner-plain.$$ /tmp/runner-out.$$ | head -5)"
	done
}

prog runner-malloc
prog runner-mmap
prog runner-threads
prog runner-threads exit-from-thread
prog runner-fork
prog runner-fork glibc-state
prog runner-fork locale
prog runner-segv
prog runner-compat
prog runner-odirect
prog runner-ownmalloc
prog runner-deepbind

# Coroutine stacks on the heap: the default (transparent) mode only.
case " ${ok_combos:-} " in
*" uffd:transparent "*)
	all_combos=$ok_combos ok_combos=uffd:transparent
	prog runner-compat coroutines
	ok_combos=$all_combos
	;;
esac

# Blocks from before the pager was up: a constructor that runs before
# the shim's (a preload listed after it is initialised first).
if [ -f "$early" ]; then
	echo "== runner-malloc with blocks allocated before the pager"
	LD_PRELOAD=$early "$run" --ram 16M "$top/test/runner-malloc" >/tmp/runner-out.$$ 2>/tmp/runner-err.$$ ||
		fail "early blocks: $(tail -5 /tmp/runner-err.$$)"
	grep -q "early blocks: 8 freed" /tmp/runner-out.$$ || fail "early library not used"
fi

rm -f /tmp/runner-out.$$ /tmp/runner-err.$$ /tmp/runner-plain.$$
exit $status
