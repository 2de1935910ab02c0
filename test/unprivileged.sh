#!/bin/sh
# SPDX-License-Identifier: MIT
# The suite as an unprivileged user (nobody), with the backend left to
# "auto": it must pass on whatever auto picks (userfaultfd in user-mode-only
# form for fast mode, the SIGSEGV backend for transparent mode, under
# vm.unprivileged_userfaultfd=0). Needs root to switch users; skipped
# otherwise.
if [ "$(id -u)" != 0 ]; then
	echo "not root: cannot run tests as another user; skipped"
	exit 77
fi
if ! command -v setpriv >/dev/null 2>&1 || ! id nobody >/dev/null 2>&1; then
	echo "no setpriv or no user nobody; skipped"
	exit 77
fi
echo "vm.unprivileged_userfaultfd = $(cat /proc/sys/vm/unprivileged_userfaultfd 2>/dev/null)"
status=0
for t in integrity syscalls pin protect chain segv regions swapfull; do
	echo "== test/$t as nobody, UPAGER_BACKEND=auto"
	if ! setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups \
		env UPAGER_BACKEND=auto TMPDIR=/tmp ./test/$t; then
		echo "FAIL: test/$t as nobody"
		status=1
	fi
done
exit $status
