#!/bin/sh
# Lint test: every tracked C file under store/ fs/ tools/ tests/ is clang-format clean.
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Run by `make check` (automake sets top_srcdir/top_builddir); also runs by hand from anywhere.
# Exit 0 clean, 1 with one "format: FILE" line per offending file (and its diff), 77 when no
# clang-format is installed or the tree has no .clang-format. CLANG_FORMAT=... picks a binary.
# The rules in .clang-format are written for clang-format 14 (Debian 12, what CI runs).

here=$(cd "$(dirname "$0")" && pwd) || exit 99
: "${top_srcdir:=$(cd "$here/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"

if [ -n "${CLANG_FORMAT:-}" ]; then
	cf=$CLANG_FORMAT
elif command -v clang-format-14 >/dev/null 2>&1; then
	cf=clang-format-14
elif command -v clang-format >/dev/null 2>&1; then
	cf=clang-format
else
	echo "SKIP: clang-format is not installed (apt-get install clang-format)"
	exit 77
fi
if ! command -v "$cf" >/dev/null 2>&1; then
	echo "SKIP: $cf not found"
	exit 77
fi
if [ ! -f "$top_srcdir/.clang-format" ]; then
	echo "SKIP: $top_srcdir/.clang-format is missing"
	exit 77
fi
version=$("$cf" --version 2>/dev/null)
echo "using $cf: $version"

cd "$top_srcdir" || exit 99

list_files()
{
	# Only when top_srcdir is itself the top of a git checkout (not a tarball unpacked
	# inside some other repository); otherwise, or if git refuses, fall back to find.
	if [ "$(git rev-parse --show-toplevel 2>/dev/null)" = "$(pwd -P)" ] &&
		git ls-files -- store fs tools tests 2>/dev/null; then
		return 0
	fi
	find store fs tools tests -type f \( -name '*.c' -o -name '*.h' \) 2>/dev/null |
		LC_ALL=C sort
}

files=$(list_files | grep -E '\.[ch]$') || true
if [ -z "$files" ]; then
	echo "no C files found under $top_srcdir"
	exit 0
fi

bad=
nfiles=0
# File names in this tree have no spaces or newlines (the layering lint assumes the same).
for f in $files; do
	[ -f "$f" ] || continue # tracked but deleted in the working tree
	nfiles=$((nfiles + 1))
	if ! "$cf" --style=file --dry-run --Werror "$f" >/dev/null 2>&1; then
		bad="$bad $f"
	fi
done

if [ -z "$bad" ]; then
	echo "format: $nfiles files clean"
	exit 0
fi

for f in $bad; do
	echo "format: $f: not clang-format clean"
done
echo
echo "Fix with: (cd $top_srcdir && $cf -i$bad)"
case $version in
*" version 14."*) ;;
*) echo "note: CI uses clang-format 14; other versions may format differently" ;;
esac
for f in $bad; do
	echo
	"$cf" --style=file "$f" | diff -u "$f" - | head -n 60
done
exit 1
