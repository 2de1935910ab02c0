#!/bin/sh
# SPDX-License-Identifier: MIT
# The man pages: every function that include/upager.h declares with
# UPAGER_API has a page in man/man3 (its own, or a one-line ".so" alias
# to a page that names it), and every page formats without a warning
# under groff -ww. Run by make check; exit 0 pass, 1 fail, 77 skip.
srcdir=${srcdir:-.}
man="$srcdir/man"
header="$srcdir/include/upager.h"
status=0

[ -f "$header" ] || { echo "no $header"; exit 1; }

# The names declared with UPAGER_API: from each such line (not the
# #define) up to the first '(', the identifier just before it.
funcs=$(awk '
	/UPAGER_API/ && !/#[ \t]*define/ { decl = ""; on = 1 }
	on { decl = decl " " $0
	     if (index(decl, "(")) {
		s = substr(decl, 1, index(decl, "(") - 1)
		sub(/[ \t]+$/, "", s)
		n = split(s, w, /[^A-Za-z0-9_]+/)
		print w[n]
		on = 0
	     } }' "$header" | sort -u)
[ -n "$funcs" ] || { echo "FAIL: found no UPAGER_API declarations in $header"; exit 1; }

# The NAME section of a page: the line(s) after .SH NAME up to the next .SH.
names_of() {
	awk '/^\.SH/ { on = ($2 == "NAME") ; next } on' "$1"
}

n=0
for f in $funcs; do
	n=$((n + 1))
	page="$man/man3/$f.3"
	if [ ! -f "$page" ]; then
		echo "FAIL: $f is declared in include/upager.h but has no man page: add man/man3/$f.3 (or a .so alias to the page that documents it) and list it in Makefile.am"
		status=1
		continue
	fi
	target=$page
	so=$(sed -n 's/^\.so[ \t][ \t]*//p' "$page" | head -1)
	if [ -n "$so" ]; then
		target="$man/$so"
		if [ ! -f "$target" ]; then
			echo "FAIL: man/man3/$f.3 is an alias to $so, which does not exist"
			status=1
			continue
		fi
	fi
	if ! names_of "$target" | grep -qw -- "$f"; then
		echo "FAIL: the NAME section of ${target#"$srcdir"/} does not name $f"
		status=1
	fi
done
echo "$n functions declared with UPAGER_API, each checked for a page"

# Every page is installed: listed in Makefile.am.
if [ -f "$srcdir/Makefile.am" ]; then
	for page in "$man"/man1/*.1 "$man"/man3/*.3 "$man"/man7/*.7; do
		[ -f "$page" ] || continue
		rel=${page#"$srcdir"/}
		if ! grep -q "$rel" "$srcdir/Makefile.am"; then
			echo "FAIL: $rel is not listed in Makefile.am (dist_man1_MANS or dist_man3_MANS)"
			status=1
		fi
	done
fi

# Every page (aliases resolve to a page that is linted itself).
if ! command -v groff >/dev/null 2>&1; then
	echo "groff not installed: formatting not checked"
	[ $status = 0 ] && exit 77
	exit $status
fi
pages=0
for page in "$man"/man1/*.1 "$man"/man3/*.3 "$man"/man7/*.7; do
	[ -f "$page" ] || continue
	grep -q '^\.so' "$page" && continue
	pages=$((pages + 1))
	# -ww: all warnings; -z: no output. Warnings go to stderr.
	out=$(cd "$man" && groff -ww -man -z "${page#"$man"/}" 2>&1)
	if [ -n "$out" ]; then
		echo "FAIL: groff warnings in ${page#"$srcdir"/}:"
		echo "$out"
		status=1
	fi
done
echo "$pages pages formatted by groff -ww -man: $([ $status = 0 ] && echo clean || echo see above)"
exit $status
