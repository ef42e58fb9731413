#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# `rsync -aHAX` into current/ round-trips byte- and metadata-exact (DESIGN.md, "What the user
# sees"): a generated tree of the hard cases (hard links across directories, absolute,
# relative and dangling symlinks, user xattrs, POSIX ACLs, a sparse file, fifos, device
# nodes, nanosecond and pre-1970 times, odd names, empty files and directories, setuid,
# setgid, sticky and 000 modes, foreign owners, a 1 GiB file of semi-compressible data) plus a
# copy of a real tree. A checksumming dry-run rsync must find nothing to do right after the
# copy, after a remount, and after a remount with the local cache deleted (everything read
# back from the repository); hard links keep one inode and their link count throughout.
# Every unmount must report the daemon's last checkpoint stored (exit 0), with no sanitizer
# report in its log. CAIRN_TEST_REAL_MIB (250) sizes the real tree.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

require_fuse
require_cmd rsync getfattr setfattr

export CAIRN_PASSPHRASE="integration test passphrase"
repo=$T/repo
mnt=$T/mnt
src=$T/src
root=false
[ "$(id -u)" = 0 ] && root=true

# --- the generated cases ------------------------------------------------------------------
g=$src/gen
mkdir -p "$g"

# Hard links: three names in two directories.
mkdir -p "$g/links/a" "$g/links/b"
echo "one inode, three names" >"$g/links/a/one"
ln "$g/links/a/one" "$g/links/a/two"
ln "$g/links/a/one" "$g/links/b/three"

# Symlinks: absolute, relative, dangling, to a directory, a long target.
mkdir -p "$g/symlinks"
ln -s /etc/passwd "$g/symlinks/absolute"
ln -s ../links/a/one "$g/symlinks/relative"
ln -s "no such file" "$g/symlinks/dangling"
ln -s ../links "$g/symlinks/to-dir"
ln -s "$(printf 'x/%.0s' $(seq 1 1000))end" "$g/symlinks/long-target"

# Extended attributes (user namespace): text, empty, binary, a larger value, on a directory.
mkdir -p "$g/xattrs/dir"
echo "has xattrs" >"$g/xattrs/file"
setfattr -n user.colour -v blue "$g/xattrs/file"
setfattr -n user.empty "$g/xattrs/file"
setfattr -n user.binary -v 0x00ff00fe0a00 "$g/xattrs/file"
setfattr -n user.large -v "$(head -c 1500 /dev/zero | tr '\0' 'v')" "$g/xattrs/file"
setfattr -n user.on-a-directory -v yes "$g/xattrs/dir"

# POSIX ACLs: an access ACL on a file, access and default ACLs on a directory.
if command -v setfacl >/dev/null 2>&1 && setfacl -m u:1234:r "$g/xattrs/file" 2>/dev/null; then
	setfacl -x u:1234 "$g/xattrs/file"
	mkdir -p "$g/acls/dir"
	echo "has an acl" >"$g/acls/file"
	setfacl -m u:1234:rw-,g:5678:r--,m::rw- "$g/acls/file"
	setfacl -m u:1234:rwx,g:5678:r-x "$g/acls/dir"
	setfacl -d -m u:1234:rwx,g::r-x,o::--- "$g/acls/dir"
	echo "inherits the default acl" >"$g/acls/dir/inherited"
else
	echo "note: no setfacl or no ACL support here; not testing ACLs"
fi

# A sparse file: 100 MiB with a few islands of data, and one that ends in a hole.
truncate -s 100M "$g/sparse"
for off in 0 4097 52428800 104857000; do
	printf 'island at %d' "$off" | dd of="$g/sparse" bs=1 seek="$off" conv=notrunc status=none
done
printf 'data, then a hole' >"$g/sparse-tail"
truncate -s 5M "$g/sparse-tail"

# Fifos, and device nodes (as root).
mkdir -p "$g/special"
mkfifo "$g/special/fifo"
mkfifo -m 0620 "$g/special/fifo-0620"
if $root; then
	mknod "$g/special/null-like" c 1 3
	mknod -m 0640 "$g/special/block" b 7 200
	mknod "$g/special/big-numbers" c 4095 1048575
fi

# Names.
mkdir -p "$g/names/empty dir" "$g/names/ünïcødé dïr"
for n in "with space" " leading space" "trailing space " "Grüße, 日本語, ñ, ☃" \
	"-starts-with-dash" "back\\slash" "star*?[brackets]" "quote'\"" "tab	in it" \
	"$(printf 'new\nline')" "$(printf '%0255d' 0)" ".hidden" "..."; do
	printf '%s\n' "$n" >"$g/names/$n"
done
ln -s "Grüße, 日本語, ñ, ☃" "$g/names/ünïcødé dïr/link to ünïcødé"

# Empty files and an empty directory.
mkdir -p "$g/empty/dir"
: >"$g/empty/file"
: >"$g/empty/another"

# Modes and owners.
mkdir -p "$g/modes"
for m in 4755 2755 6711 0000 0444 0200 1644; do
	echo "mode $m" >"$g/modes/file-$m"
done
mkdir -p "$g/modes/sticky" "$g/modes/setgid-dir" "$g/modes/dir-000"
echo inside >"$g/modes/dir-000/file"
if $root; then
	chown 1234:5678 "$g/modes/file-4755" "$g/modes/file-6711" "$g/modes/dir-000/file"
	chown -h 4321:8765 "$g/symlinks/relative"
	chown 65534:65534 "$g/modes/sticky"
	chown 4000000000:4000000001 "$g/modes/file-0444"
fi
# chown clears setuid/setgid: set the modes after the owners.
for m in 4755 2755 6711 0000 0444 0200 1644; do
	chmod "$m" "$g/modes/file-$m"
done
chmod 1777 "$g/modes/sticky"
chmod 2770 "$g/modes/setgid-dir"

# A large file of semi-compressible data that does not deduplicate (every line differs):
# 1 GiB, or 200 MiB under the sanitizers (ASan makes the store path several times slower);
# $CAIRN_BIG_FILE (a head -c size) overrides.
big=1G
if ldd "$top_builddir/tools/mount.cairn" 2>/dev/null | grep -q libasan; then
	big=200M
fi
big=${CAIRN_BIG_FILE:-$big}
awk 'BEGIN { srand(42); for (i = 0; ; i++)
	printf "%09d %08x %08x the quick brown fox %d\n", i, rand() * 4294967295,
		rand() * 4294967295, i % 977 }' | head -c "$big" >"$g/semi-compressible"

# Times: nanoseconds, before 1970, far future; on files, symlinks and directories (last,
# since filling a directory changes its mtime).
touch -d '2001-02-03 04:05:06.123456789' "$g/links/a/one" "$g/sparse"
touch -d '1969-12-31 23:59:58.5' "$g/empty/file"
touch -d '1901-12-14 00:00:00' "$g/empty/another"
touch -d '2200-01-01 00:00:00.000000001' "$g/names/.hidden"
touch -h -d '2010-10-10 10:10:10.987654321' "$g/symlinks/absolute"
touch -d '1999-09-09 09:09:09.999999999' "$g/names/empty dir" "$g/modes/sticky"

# --- a real tree --------------------------------------------------------------------------
copy_real_tree "$src/real" "${CAIRN_TEST_REAL_MIB:-250}"
echo "source: $(du -sh --apparent-size "$src" | cut -f1) apparent, $(find "$src" | wc -l) names"

# The three names of one inode: same inode number, link count 3.
check_links()
{
	stat -c '%i %h' "$1/gen/links/a/one" "$1/gen/links/a/two" "$1/gen/links/b/three" \
		>"$T/links" || fail "stat of the hard links in $1"
	[ "$(sort -u "$T/links" | wc -l)" = 1 ] || fail "hard links in $1: $(cat "$T/links")"
	[ "$(cut -d' ' -f2 "$T/links" | head -n 1)" = 3 ] ||
		fail "hard links in $1: link count $(cat "$T/links")"
	# and a name outside is another inode
	[ "$(stat -c %i "$1/gen/empty/file")" != "$(head -n 1 "$T/links" | cut -d' ' -f1)" ] ||
		fail "an unrelated file shares the inode of the hard links in $1"
}

# Beyond rsync's view: the sparse file reads the same, and the xattrs list the same.
check_extra()
{
	cmp "$src/gen/sparse" "$1/gen/sparse" || fail "the sparse file differs in $1"
	getfattr --absolute-names -d -m '^user\.' -e hex "$src/gen/xattrs/file" | sed 1d >"$T/x.src"
	getfattr --absolute-names -d -m '^user\.' -e hex "$1/gen/xattrs/file" | sed 1d >"$T/x.mnt"
	cmp "$T/x.src" "$T/x.mnt" || fail "xattrs differ in $1: $(cat "$T/x.mnt")"
}

check_all()
{
	tree_compare "$src" "$mnt/current"
	check_links "$mnt/current"
	check_extra "$mnt/current"
}

# --- copy, compare, remount, compare, drop the cache, compare -----------------------------
mkfs.cairn -q "$repo" || fail "mkfs.cairn"

t0=$(date +%s)
cairn_mount "$repo" "$mnt"
bounded 600 rsync -aHAX --modify-window=-1 "$src/" "$mnt/current/" ||
	fail "rsync into the mount"
echo "rsync: $(($(date +%s) - t0)) s"
check_all
cairn_umount "$mnt"
echo "first mount: $(($(date +%s) - t0)) s"

cairn_mount "$repo" "$mnt"
check_all
cairn_umount "$mnt"
echo "after a remount: $(($(date +%s) - t0)) s"

rm -rf "$T/cache"
cairn_mount "$repo" "$mnt"
check_all
cairn_umount "$mnt"
echo "after a remount without the cache: $(($(date +%s) - t0)) s"
exit 0
