#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Snapshots beside current/ (DESIGN.md, "What the user sees"): `cairn snapshot MNT NAME`
# freezes current/ in one commit; the snapshot is a byte- and metadata-exact copy of the
# tree at that instant (rsync -aHAX -c finds nothing to do against a copy saved then), hard
# links share one inode within it, its directory's mtime is the snapshot time, every kind
# of change into it fails with EROFS, later changes to current/ do not show in it, and it
# survives a remount and a remount with the local cache wiped. Bad names are refused with
# one line, and so is a name that is taken.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"
require_fuse
require_cmd setfacl

export CAIRN_PASSPHRASE="snapshot test"
repo=$T/repo
mnt=$T/mnt
mkfs.cairn -q "$repo" || fail "mkfs"
cairn_mount "$repo" "$mnt"

# A small tree of the usual hard cases, under data/ (the snapshot's own directory carries
# the snapshot time, so the comparisons look one level down).
d=$mnt/current/data
mkdir -p "$d/sub/deeper" "$d/empty" || fail "mkdir"
head -c 3000000 /dev/urandom >"$d/random" || fail "random"
seq 1 200000 >"$d/sub/numbers" || fail "numbers"
ln "$d/sub/numbers" "$d/hardlink" || fail "link"
ln -s sub/numbers "$d/symlink" || fail "symlink"
mkfifo "$d/fifo" || fail "fifo"
truncate -s 50M "$d/sparse" && echo island | dd of="$d/sparse" bs=1 seek=20000000 \
	conv=notrunc status=none || fail "sparse"
setfattr -n user.colour -v blue "$d/random" || fail "xattr"
setfacl -m u:1234:r "$d/sub/numbers" || fail "acl"
touch -d '2001-02-03 04:05:06.123456789' "$d/sub/deeper" "$d/empty"
: >"$d/empty-file"
# (nanosecond compare: rsync otherwise skips setting times equal to the second)
rsync -aHAX --modify-window=-1 "$d/" "$T/saved/" || fail "saving a copy"

before=$(date +%s)
cairn snapshot "$mnt" first || fail "cairn snapshot first"
after=$(date +%s)
[ -d "$mnt/first" ] || fail "first/ does not show in the mount root"
ls "$mnt" >"$T/root"
printf 'current\nfirst\n' | cmp -s - "$T/root" || fail "mount root: $(tr '\n' ' ' <"$T/root")"
tree_compare "$T/saved" "$mnt/first/data"

# Inode identity: hard links share one inode within the snapshot.
[ "$(stat -c %i "$mnt/first/data/hardlink")" = "$(stat -c %i "$mnt/first/data/sub/numbers")" ] ||
	fail "hard links in the snapshot have different inodes"
[ "$(stat -c %h "$mnt/first/data/hardlink")" = 2 ] || fail "link count in the snapshot"
t=$(stat -c %Y "$mnt/first")
[ "$t" -ge "$before" ] && [ "$t" -le "$after" ] ||
	fail "snapshot directory mtime $t not in [$before, $after]"

# Later changes to current/ do not show in the snapshot.
echo changed >"$d/sub/numbers"
rm "$d/random"
touch "$d/new-file"
tree_compare "$T/saved" "$mnt/first/data"

# Every kind of change into the snapshot: EROFS (reported as "Read-only file system").
s=$mnt/first/data
erofs()
{
	"$@" 2>"$T/stderr" && fail "changed a snapshot: $*"
	grep -q "Read-only file system" "$T/stderr" || fail "not EROFS: $* ($(cat "$T/stderr"))"
}
erofs sh -c "echo x >'$s/new'"
erofs sh -c "echo x >>'$s/sub/numbers'"
erofs sh -c "echo x >'$s/sub/numbers'"
erofs truncate -s 0 "$s/random"
erofs mkdir "$s/newdir"
erofs rmdir "$s/empty"
erofs rm "$s/random"
erofs mv "$s/random" "$s/renamed"
erofs ln "$s/random" "$s/another-link"
erofs ln -s x "$s/another-symlink"
erofs mkfifo "$s/another-fifo"
erofs chmod 600 "$s/random"
erofs chown 1:1 "$s/random"
erofs touch -d 2000-01-01 "$s/random"
erofs setfattr -n user.x -v y "$s/random"
erofs setfattr -x user.colour "$s/random"
erofs setfacl -m u:99:r "$s/random"
tree_compare "$T/saved" "$mnt/first/data"

# user.cairn.* is reserved: the daemon answers user.cairn.id in snapshots itself.
if setfattr -n user.cairn.id -v x "$d/sub/numbers" 2>"$T/stderr"; then
	fail "set a reserved attribute user.cairn.id in current/"
fi
[ "$(getfattr --absolute-names -n user.cairn.id --only-values "$s/sub/numbers" | wc -c)" = 64 ] ||
	fail "user.cairn.id of a snapshot file is not 64 hex digits"
getfattr --absolute-names -d -m - "$s/sub/numbers" 2>/dev/null | grep -q "^user.cairn" &&
	fail "user.cairn.id is listed"

# Names: refused with one line before anything is done.
for bad in current . .. a/b .hidden ""; do
	expect_fail 2 cairn snapshot "$mnt" "$bad"
	[ "$(wc -l <"$T/stderr")" = 1 ] || fail "more than one line for name '$bad'"
done
expect_fail 1 cairn snapshot "$mnt" first
expect_stderr_match "exists already"

# A second snapshot shares the unchanged subtree and shows the new state.
rsync -aHAX --modify-window=-1 --delete "$d/" "$T/saved2/" || fail "saving the second copy"
cairn snapshot "$mnt" "second one" || fail "cairn snapshot 'second one'"
tree_compare "$T/saved2" "$mnt/second one/data"
tree_compare "$T/saved" "$mnt/first/data"

# The daemon forgets a snapshot's nodes when the kernel does: after the kernel drops its
# caches, browsing again resolves every name afresh and sees the same content.
if sync && echo 2 >/proc/sys/vm/drop_caches 2>/dev/null; then
	tree_compare "$T/saved" "$mnt/first/data"
	tree_compare "$T/saved2" "$mnt/second one/data"
fi

# Snapshots survive a remount, and a remount with the local cache wiped.
cairn_umount "$mnt"
cairn_mount "$repo" "$mnt"
tree_compare "$T/saved" "$mnt/first/data"
tree_compare "$T/saved2" "$mnt/second one/data"
cairn_umount "$mnt"
rm -rf "$T/cache"
cairn_mount "$repo" "$mnt"
tree_compare "$T/saved" "$mnt/first/data"
tree_compare "$T/saved2" "$mnt/second one/data"
tree_compare "$T/saved2" "$mnt/current/data"
cairn_umount "$mnt"
exit 0
