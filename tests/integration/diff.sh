#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# cairn diff between two snapshots, through the mount and on the unmounted repository:
# every kind of change (content, same-size content, mode, mtime, xattr, symlink target,
# type changes both ways, nested additions and removals, a new hard link, data changed
# through a hard link) gives exactly the expected lines, in tree order, the same in both
# modes; what did not change is not listed (a subtree, atime, the link count of the other
# names of a new hard link); a snapshot against itself and against the working tree it
# equals is empty; -0 ends lines with NUL; unknown snapshots and bad names are refused.
# Through the mount this runs without the daemon's user.cairn.id where it has none
# (every directory walked, bytes compared) and with it where it has (unchanged subtrees
# skipped); the output must be the same either way.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"
require_fuse
require_cmd setfattr

export CAIRN_PASSPHRASE="diff test"
repo=$T/repo
mnt=$T/mnt
mkfs.cairn -q "$repo" || fail "mkfs"
cairn_mount "$repo" "$mnt"

c=$mnt/current
mkdir -p "$c/keep/deep" "$c/gone/sub" "$c/dir2link" "$c/meta-dir" || fail "mkdir"
echo same >"$c/keep/deep/file"
seq 1 100000 >"$c/keep/numbers"
echo hello >"$c/content"
echo abcde >"$c/samesize"
echo m >"$c/chmod"
echo t >"$c/mtime"
echo x >"$c/xattr"
echo a >"$c/atime"
ln -s target-a "$c/link"
echo f >"$c/file2dir"
echo i >"$c/dir2link/inside"
echo a >"$c/gone/a"
echo b >"$c/gone/sub/b"
echo hard >"$c/hl1" && ln "$c/hl1" "$c/hl2" || fail "hard link hl"
echo shared >"$c/hd1" && ln "$c/hd1" "$c/hd2" || fail "hard link hd"
echo f >"$c/meta-dir/f"
: >"$c/file2fifo"
# One time for everything, so that only what the changes below touch differs.
find "$c" -mindepth 1 -exec touch -h -d '2020-02-02 02:02:02' {} + || fail "touch"
cairn snapshot "$mnt" A || fail "snapshot A"

echo "hello, world" >"$c/content"
echo abcdX >"$c/samesize"
touch -d '2020-02-02 02:02:02' "$c/samesize" # same size and mtime: only the bytes differ
chmod 600 "$c/chmod"
touch -d '2021-03-03 03:03:03' "$c/mtime"
setfattr -n user.x -v v "$c/xattr" || fail "setfattr"
cat "$c/atime" >/dev/null
touch -a -d '2022-01-01' "$c/atime"
ln -sfn target-b "$c/link"
rm "$c/file2dir" && mkdir "$c/file2dir" && echo n >"$c/file2dir/new" || fail "file2dir"
rm -r "$c/dir2link" && ln -s elsewhere "$c/dir2link" || fail "dir2link"
rm -r "$c/gone" || fail "rm gone"
mkdir -p "$c/new/deeper" && echo f >"$c/new/deeper/f" && echo g >"$c/new/g" &&
	echo s >"$c/new/with space" || fail "new"
ln "$c/hl1" "$c/hl3" || fail "hard link hl3"
echo changed >"$c/hd1"
chmod 700 "$c/meta-dir"
rm "$c/file2fifo" && mkfifo "$c/file2fifo" || fail "fifo"
cairn snapshot "$mnt" B || fail "snapshot B"

cat >"$T/want" <<'WANT'
U chmod
M content
T dir2link
- dir2link/inside
T file2dir
+ file2dir/new
T file2fifo
- gone
- gone/a
- gone/sub
- gone/sub/b
M hd1
M hd2
+ hl3
M link
U meta-dir
U mtime
+ new
+ new/deeper
+ new/deeper/f
+ new/g
+ new/with space
M samesize
U xattr
WANT

check_diff()
{
	# $1: what is compared, for the message; the rest: the command.
	_what=$1
	shift
	_rc=0
	"$@" >"$T/got" 2>"$T/stderr" || _rc=$?
	if [ "$_rc" != 0 ]; then
		cat "$T/stderr" >&2
		fail "$_what: exit $_rc"
	fi
	if ! cmp -s "$T/want" "$T/got"; then
		diff -u "$T/want" "$T/got" >&2
		fail "$_what: unexpected output"
	fi
	[ ! -s "$T/stderr" ] || fail "$_what: stderr not empty: $(cat "$T/stderr")"
}

# Through the mount.
check_diff "mounted diff A B" cairn diff "$mnt" A B
cairn diff -0 "$mnt" A B | tr '\0' '\n' | cmp -s - "$T/want" || fail "-0 output differs"
cairn diff "$mnt" A A >"$T/got" || fail "diff A A"
[ ! -s "$T/got" ] || fail "a snapshot against itself: $(cat "$T/got")"
cairn diff "$mnt" B current >"$T/got" || fail "diff B current"
[ ! -s "$T/got" ] || fail "B against the unchanged working tree: $(head "$T/got")"
expect_fail 1 cairn diff "$mnt" A nosuch
expect_stderr_match "no snapshot named 'nosuch'"
expect_fail 2 cairn diff "$mnt" A ../etc
expect_fail 2 cairn diff "$mnt" A
expect_fail 2 cairn diff --bogus "$mnt" A B

# The same on the repository, unmounted, with a cache directory of its own (rebuilt from
# the backend).
cairn_umount "$mnt"
check_diff "repository diff A B" cairn diff --cache-dir "$T/cache-diff" "$repo" A B
cairn diff --cache-dir "$T/cache-diff" "$repo" B current >"$T/got" ||
	fail "repository diff B current"
[ ! -s "$T/got" ] || fail "repository: B against the committed working tree: $(head "$T/got")"
expect_fail 1 cairn diff --cache-dir "$T/cache-diff" "$repo" nosuch B
expect_stderr_match "no snapshot named 'nosuch'"
CAIRN_PASSPHRASE=wrong expect_fail 1 cairn diff --cache-dir "$T/cache-diff" "$repo" A B
expect_fail 1 cairn diff --cache-dir "$T/cache-diff" "$T/no-repo" A B
exit 0
