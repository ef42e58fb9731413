#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# mount.cairn's refusals, each one clear line and exit 1, and none of them doing any damage
# (the repository's objects, the lock and the refused mount point stay as they were): a
# missing repository, a wrong passphrase, a mount point that is missing, not empty or a
# file, a second mount of a repository that is mounted (with the same and with another cache
# directory) naming the holder, and a cache directory on a full file system. The mount root
# itself is read-only for the user. A mount point cannot be used while it is refused, and
# the repository mounts fine afterwards with everything written before. A relative cache
# directory works from anywhere.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

require_fuse
require_cmd getfattr

export CAIRN_PASSPHRASE="integration test passphrase"
repo=$T/repo
mnt=$T/mnt
mkdir -p "$mnt" "$T/mnt2"

# What the repository holds, object by object (the lock included).
repo_state()
{
	(cd "$repo" && find . -type f -print0 | sort -z | xargs -0 md5sum) >"$T/state.$1"
}
same_state()
{
	repo_state now
	cmp -s "$T/state.$1" "$T/state.now" || {
		diff "$T/state.$1" "$T/state.now" >&2
		fail "the repository changed: $2"
	}
}
one_line()
{
	check_sanitizer_log "$T/stderr"
	[ "$(wc -l <"$T/stderr")" = 1 ] || fail "$1: not one line: $(cat "$T/stderr")"
}
not_mounted()
{
	! is_mounted "$1" || fail "$1 is mounted after a refused mount"
}

mkfs.cairn -q "$repo" || fail "mkfs.cairn"
cairn_mount "$repo" "$mnt"
echo "written before the errors" >"$mnt/current/before"
mkdir "$mnt/current/dir"
echo "in a directory" >"$mnt/current/dir/file"
cairn_umount "$mnt"
repo_state before

# --- the repository -----------------------------------------------------------------------
expect_fail 1 mount.cairn "$T/nowhere" "$mnt" -o cachedir="$T/cache"
expect_stderr_match "nowhere"
expect_stderr_match "no such repository"
one_line "missing repository"
[ ! -e "$T/nowhere" ] || fail "a mount of a missing repository created it"
not_mounted "$mnt"

CAIRN_PASSPHRASE=wrong expect_fail 1 mount.cairn "$repo" "$mnt" -o cachedir="$T/cache"
expect_stderr_match "wrong passphrase"
one_line "wrong passphrase"
not_mounted "$mnt"
same_state before "a mount with a wrong passphrase"

# --- the mount point ----------------------------------------------------------------------
expect_fail 1 mount.cairn "$repo" "$T/no-such-dir" -o cachedir="$T/cache"
expect_stderr_match "no-such-dir"
one_line "missing mount point"
[ ! -e "$T/no-such-dir" ] || fail "a mount created its missing mount point"

mkdir "$T/full" && echo "keep me" >"$T/full/file"
expect_fail 1 mount.cairn "$repo" "$T/full" -o cachedir="$T/cache"
expect_stderr_match "not empty"
one_line "mount point not empty"
not_mounted "$T/full"
[ "$(cat "$T/full/file")" = "keep me" ] || fail "a refused mount touched the mount point"

echo "a file" >"$T/plainfile"
expect_fail 1 mount.cairn "$repo" "$T/plainfile" -o cachedir="$T/cache"
expect_stderr_match "not a directory"
one_line "mount point is a file"
[ "$(cat "$T/plainfile")" = "a file" ] || fail "a refused mount touched the file"
same_state before "refused mount points"

# --- one writer ---------------------------------------------------------------------------
cairn_mount "$repo" "$mnt"
pid=$(daemon_pid "$mnt")
repo_state mounted
for cache in "$T/cache" "$T/cache2"; do
	expect_fail 1 mount.cairn "$repo" "$T/mnt2" -o cachedir="$cache"
	expect_stderr_match "in use by another writer"
	expect_stderr_match "host $(hostname)"
	expect_stderr_match "pid ${pid}[,) ]"
	one_line "second mount, cache $cache"
	not_mounted "$T/mnt2"
	same_state mounted "a refused second mount (cache $cache) changed the lock"
done
# The first mount works on, with everything it had.
[ "$(cat "$mnt/current/dir/file")" = "in a directory" ] || fail "the first mount lost a file"
echo "written after the refusals" >"$mnt/current/after"
[ "$(cat "$mnt/current/after")" = "written after the refusals" ] || fail "write after refusal"

# --- the mount root is read-only for the user --------------------------------------------
for cmd in "touch $mnt/x" "mkdir $mnt/y" "ln -s current $mnt/z" "mkfifo $mnt/p" \
	"rmdir $mnt/current" "mv $mnt/current $mnt/moved" "chmod 700 $mnt" \
	"setfattr -n user.x -v 1 $mnt"; do
	if $cmd 2>"$T/stderr"; then
		fail "the mount root accepted: $cmd"
	fi
done
[ "$(ls -A "$mnt")" = current ] || fail "the mount root holds: $(ls -A "$mnt")"
[ "$(cat "$mnt/current/before")" = "written before the errors" ] || fail "current/ damaged"
cairn_umount "$mnt"

# After all the refusals: a mount takes the lock without a word, and has everything.
mount.cairn "$repo" "$mnt" -o cachedir="$T/cache" 2>"$T/stderr" || fail "mount after refusals"
on_exit _cairn_reap "$mnt" "$(daemon_pid "$mnt")"
[ ! -s "$T/stderr" ] || fail "the mount after the refusals said: $(cat "$T/stderr")"
[ "$(cat "$mnt/current/after")" = "written after the refusals" ] || fail "lost 'after'"
cairn_umount "$mnt"

# --- a cache directory on a full file system ----------------------------------------------
# What happens (and must keep happening): on a file system with no space at all, the mount
# fails with one line naming the cause; with a little space it mounts, writes that do not
# fit fail with ENOSPC (at the latest at fsync), the unmount says the last checkpoint failed
# (exit 1), and nothing written earlier is lost: with space again, a remount has it all.
if [ "$(id -u)" != 0 ]; then
	echo "note: not root; not testing a cache on a full file system"
	exit 0
fi
mkdir "$T/small"
mount -t tmpfs -o size=2m,mode=0700 tmpfs "$T/small" || skip "cannot mount a tmpfs"
on_exit umount -l "$T/small"
dd if=/dev/zero of="$T/small/reserve" bs=64k count=12 status=none # 768 KiB freed later
dd if=/dev/zero of="$T/small/fill" bs=64k status=none 2>/dev/null || true
[ "$(df --output=avail -k "$T/small" | tail -n 1 | tr -d ' ')" = 0 ] || fail "tmpfs not full"
small=$T/small/cache

repo_state before.full
expect_fail 1 mount.cairn "$repo" "$mnt" -o cachedir="$small"
expect_stderr_match "No space left on device|disk is full"
one_line "cache on a full file system"
not_mounted "$mnt"
same_state before.full "a mount with a full cache"

rm "$T/small/reserve"
cairn_mount "$repo" "$mnt" "cachedir=$small"
[ "$(cat "$mnt/current/after")" = "written after the refusals" ] || fail "lost 'after' (small)"
printf 'fsynced while the cache had room\n' |
	dd of="$mnt/current/fsynced" conv=fsync status=none || fail "a small fsynced write failed"
# A truncation moves a file's fsynced staged bytes to a new staging file (fs/data.c): with no
# room for them it must fail cleanly (ENOSPC, the file as it was) or store them first and cut.
head -c 204800 /dev/urandom >"$T/cut.want"
dd if="$T/cut.want" of="$mnt/current/cut" bs=64k conv=fsync status=none ||
	fail "a 200 KiB fsynced write failed"
dd if=/dev/zero of="$T/small/fill2" bs=4k status=none 2>/dev/null || true
if truncate -s 50000 "$mnt/current/cut" 2>"$T/stderr"; then
	echo "truncate with a full cache: done"
	head -c 50000 "$T/cut.want" >"$T/cut.short" && mv "$T/cut.short" "$T/cut.want"
else
	echo "truncate with a full cache: refused"
	expect_stderr_match "No space left on device"
fi
cmp -s "$mnt/current/cut" "$T/cut.want" ||
	fail "cut: neither cut nor as it was after a truncate with a full cache"
rm "$T/small/fill2"
rc=0
dd if=/dev/urandom of="$mnt/current/too-big" bs=64k count=128 conv=fsync status=none \
	2>"$T/stderr" || rc=$?
[ "$rc" != 0 ] || fail "8 MiB into a cache with less than 1 MiB free did not fail"
expect_stderr_match "No space left on device"
# The final checkpoint cannot be stored: the unmount must say so.
cache=$(cache_of "$mnt")
rc=0
bounded 120 cairn umount "$mnt" 2>"$T/stderr" || rc=$?
[ "$rc" = 1 ] || fail "cairn umount with a full cache: exit $rc, $(cat "$T/stderr")"
not_mounted "$mnt"
check_sanitizer_log "$cache/mount.log"

# With room again, nothing written before is lost, with or without this cache.
rm "$T/small/fill"
cairn_mount "$repo" "$mnt" "cachedir=$small"
[ "$(cat "$mnt/current/before")" = "written before the errors" ] || fail "lost 'before'"
[ "$(cat "$mnt/current/after")" = "written after the refusals" ] || fail "lost 'after'"
[ "$(cat "$mnt/current/fsynced")" = "fsynced while the cache had room" ] ||
	fail "lost a file fsynced before the cache filled up"
cmp -s "$mnt/current/cut" "$T/cut.want" || fail "cut: not as the truncate left it (small)"
cairn_umount "$mnt"
cairn_mount "$repo" "$mnt" "cachedir=$T/cache3"
[ "$(cat "$mnt/current/dir/file")" = "in a directory" ] || fail "lost 'dir/file' (new cache)"
[ "$(cat "$mnt/current/fsynced")" = "fsynced while the cache had room" ] ||
	fail "lost 'fsynced' (new cache)"
cmp -s "$mnt/current/cut" "$T/cut.want" || fail "cut: not as the truncate left it (new cache)"
cairn_umount "$mnt"

# A relative cache directory is taken from where mount.cairn ran: cairn umount, run from
# anywhere, still finds the daemon's outcome there.
mkdir -p "$T/here"
(cd "$T/here" && bounded 60 mount.cairn "$repo" "$mnt" -o cachedir=relcache) ||
	fail "mount.cairn with a relative cachedir"
on_exit _cairn_reap "$mnt" "$(daemon_pid "$mnt")"
case $(cache_of "$mnt") in
"$T/here/relcache/"*) ;;
*) fail "the cache directory shown is $(cache_of "$mnt"), not under $T/here/relcache" ;;
esac
[ "$(cat "$mnt/current/fsynced")" = "fsynced while the cache had room" ] ||
	fail "lost 'fsynced' (relative cache)"
(cd / && cairn_umount "$mnt")
exit 0
