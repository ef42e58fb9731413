#!/bin/sh
# Lint test: the layering and dependency rules of STYLE.md, checked by grepping the sources.
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Rules, for every *.c/*.h under store/ fs/ tools/ (tests/ may use anything):
#   - store/ includes nothing from fs/ or tools/ and no FUSE header; fs/ nothing from tools/;
#   - each third-party header has one home: libfuse in fs/fuse_ops.c, fs/main.c and
#     fs/uring.c, liburing.h and linux/fuse.h in fs/uring.c,
#     curl/ in store/backend_s3*.c, lz4 in store/codec.c, sodium in store/codec.c and
#     store/keys.c, sqlite3.h in store/index.c, fs/meta*.c and fs/meta_internal.h;
#   - store/ never prints to stdout and never exits; stderr only in store/util.c (log_msg);
#   - no file longer than 1500 lines;
#   - banned functions (as in git's banned.h): strcpy strcat sprintf vsprintf gets strtok.
# Comments and string literals are blanked before the call checks, so prose does not count.
# Exit 0 clean, 1 with one "file:line: rule" line per violation.

here=$(cd "$(dirname "$0")" && pwd) || exit 99
: "${top_srcdir:=$(cd "$here/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
MAX_LINES=1500

cd "$top_srcdir" || exit 99

list_files()
{
	# git ls-files only when top_srcdir is itself the top of a git checkout; else find.
	if [ "$(git rev-parse --show-toplevel 2>/dev/null)" = "$(pwd -P)" ] &&
		git ls-files -- store fs tools 2>/dev/null; then
		return 0
	fi
	find store fs tools -type f \( -name '*.c' -o -name '*.h' \) 2>/dev/null | LC_ALL=C sort
}

# File names in this tree have no spaces or newlines.
files=
for f in $(list_files | grep -E '^(store|fs|tools)/.*\.[ch]$'); do
	[ -f "$f" ] && files="$files $f"
done
if [ -z "$files" ]; then
	echo "layering: no C files under store/ fs/ tools/"
	exit 0
fi

# Header basenames per layer, to catch `#include "fsops.h"` from store/ via an -I path.
headers()
{
	for f in $files; do
		case $f in "$1"/*.h) printf '%s ' "${f##*/}" ;; esac
	done
}

# shellcheck disable=SC2086 # $files is a word list on purpose
LC_ALL=C awk -v max_lines="$MAX_LINES" \
	-v store_h="$(headers store)" -v fs_h="$(headers fs)" -v tools_h="$(headers tools)" '
function set_of(list, arr,    n, i, a) {
	n = split(list, a, " ")
	for (i = 1; i <= n; i++)
		arr[a[i]] = 1
}

BEGIN {
	set_of(store_h, in_store)
	set_of(fs_h, in_fs)
	set_of(tools_h, in_tools)
	nviol = 0
	nfiles = 0
}

function report(line, msg) {
	printf "%s:%d: %s\n", FILENAME, line, msg
	nviol++
}

# Blank comments (across lines) and the contents of string and character literals, keeping
# columns and line numbers. On #include lines the header name is kept.
function strip(s,    out, i, n, c, c2, q, inc) {
	if (!in_comment && s !~ /[\/"\047]/)
		return s
	inc = !in_comment && s ~ /^[ \t]*#[ \t]*include/
	out = ""
	n = length(s)
	i = 1
	while (i <= n) {
		c = substr(s, i, 1)
		c2 = substr(s, i, 2)
		if (in_comment) {
			if (c2 == "*/") {
				in_comment = 0
				out = out "  "
				i += 2
			} else {
				out = out " "
				i++
			}
			continue
		}
		if (c2 == "/*") {
			in_comment = 1
			out = out "  "
			i += 2
			continue
		}
		if (c2 == "//")
			break
		if (!inc && (c == "\"" || c == "\047")) {
			q = c
			out = out q
			i++
			while (i <= n) {
				c = substr(s, i, 1)
				if (c == "\\") {
					i += 2
					continue
				}
				if (c == q)
					break
				i++
			}
			out = out q
			i++
			continue
		}
		out = out c
		i++
	}
	return out
}

# A call of name: not part of a longer identifier, not a member (.name( or ->name().
function calls(s, name) {
	return s ~ ("(^|[^A-Za-z0-9_.>])" name "[ \t]*\\(")
}

function has_word(s, word) {
	return s ~ ("(^|[^A-Za-z0-9_])" word "($|[^A-Za-z0-9_])")
}

function check_include(hdr, quoted,    base, layer, f, libfuse) {
	f = FILENAME
	layer = f
	sub(/\/.*/, "", layer)
	base = hdr
	sub(/.*\//, "", base)
	libfuse = hdr ~ /^(fuse3\/)?(fuse|fuse_lowlevel|fuse_common|fuse_opt|fuse_log)\.h$/

	if (layer == "store") {
		if (hdr ~ /(^|\/)(fs|tools)\// ||
		    (quoted && (base in in_fs || base in in_tools) && !(base in in_store)))
			report(FNR, "store/ must not include from fs/ or tools/ (" hdr ")")
		if (libfuse)
			report(FNR, "store/ must not use FUSE (" hdr ")")
	} else if (layer == "fs") {
		if (hdr ~ /(^|\/)tools\// ||
		    (quoted && base in in_tools && !(base in in_fs) && !(base in in_store)))
			report(FNR, "fs/ must not include from tools/ (" hdr ")")
	}
	if (libfuse && layer != "store" && f != "fs/fuse_ops.c" && f != "fs/main.c" &&
	    f != "fs/uring.c")
		report(FNR, hdr " only in fs/fuse_ops.c, fs/main.c and fs/uring.c")
	if ((hdr == "liburing.h" || hdr == "linux/fuse.h") && f != "fs/uring.c")
		report(FNR, hdr " only in fs/uring.c")
	if (hdr ~ /^curl\// && f !~ /^store\/backend_s3[^\/]*\.c$/)
		report(FNR, hdr " only in store/backend_s3*.c")
	if (hdr ~ /^lz4(hc|frame)?\.h$/ && f != "store/codec.c")
		report(FNR, hdr " only in store/codec.c")
	if ((hdr == "sodium.h" || hdr ~ /^sodium\//) && f != "store/codec.c" && f != "store/keys.c")
		report(FNR, hdr " only in store/codec.c and store/keys.c")
	if (hdr == "sqlite3.h" && f != "store/index.c" && f !~ /^fs\/meta[^\/]*\.c$/ &&
	    f != "fs/meta_internal.h")
		report(FNR, hdr " only in store/index.c, fs/meta*.c and fs/meta_internal.h")
	if (hdr == "meta_internal.h" && f !~ /^fs\/meta[^\/]*\.c$/)
		report(FNR, hdr " only in fs/meta*.c")
}

FNR == 1 {
	in_comment = 0
	files[++nfiles] = FILENAME
}

{
	nlines[FILENAME] = FNR
	t = strip($0)

	if (t ~ /^[ \t]*#[ \t]*include[ \t]*[<"]/) {
		if (match(t, /[<"][^<>"]*[>"]/))
			check_include(substr(t, RSTART + 1, RLENGTH - 2),
				      substr(t, RSTART, 1) == "\"")
		next
	}

	if (calls(t, "strcpy"))
		report(FNR, "banned function strcpy() (use memcpy with a known length, or strdup)")
	if (calls(t, "strcat"))
		report(FNR, "banned function strcat() (use a struct buf or snprintf)")
	if (calls(t, "sprintf"))
		report(FNR, "banned function sprintf() (use snprintf)")
	if (calls(t, "vsprintf"))
		report(FNR, "banned function vsprintf() (use vsnprintf)")
	if (calls(t, "gets"))
		report(FNR, "banned function gets() (use fgets or getline)")
	if (calls(t, "strtok"))
		report(FNR, "banned function strtok() (use strtok_r or strsep)")

	if (FILENAME ~ /^store\//) {
		if (calls(t, "printf") || calls(t, "vprintf") || calls(t, "puts") ||
		    calls(t, "putchar") || has_word(t, "stdout"))
			report(FNR, "store/ must not print to stdout (use log_*())")
		if (calls(t, "exit") || calls(t, "_exit") || calls(t, "_Exit"))
			report(FNR, "store/ must not exit (return -errno)")
		if (FILENAME != "store/util.c" && has_word(t, "stderr"))
			report(FNR, "store/ writes to stderr only in store/util.c (use log_*())")
	}
}

END {
	for (i = 1; i <= nfiles; i++)
		if (nlines[files[i]] > max_lines) {
			printf "%s:%d: longer than %d lines (%d lines): split the module\n",
			       files[i], max_lines + 1, max_lines, nlines[files[i]]
			nviol++
		}
	if (nviol) {
		printf "layering: %d violation(s) in %d files checked", nviol, nfiles
		print " (rules: STYLE.md, tests/lint/layering.sh)"
		exit 1
	}
	printf "layering: %d files clean\n", nfiles
	exit 0
}
' $files
rc=$?
# awk itself failing (2) is a hard error of the test, not a violation.
[ "$rc" -le 1 ] || exit 99
exit "$rc"
