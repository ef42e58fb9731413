#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The snapshot commands on a repository that is not mounted: cairn snapshot, rotate, forget
# and list take the repository's lock themselves and do what the daemon would. A mounted
# repository is refused with one line; a wrong passphrase too; state a killed daemon left
# in the local cache (an fsynced file not yet committed) is in the snapshot taken offline;
# with the local cache wiped the working tree is rebuilt from the latest commit; everything
# done offline shows in the next mount. cairn list's sizes agree mounted and offline. A
# local cache made stale by a command run with another cache keeps its staged data aside.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"
require_fuse

export CAIRN_PASSPHRASE="offline test"
repo=$T/repo
mnt=$T/mnt
c=(--cache-dir "$T/cache")
mkfs.cairn -q "$repo" || fail "mkfs"
cairn_mount "$repo" "$mnt"
mkdir "$mnt/current/dir"
echo one >"$mnt/current/dir/file"

# Mounted: the repository is refused (its daemon holds the lock), nothing changes.
expect_fail 1 cairn snapshot "${c[@]}" "$repo" refused
expect_stderr_match "in use"
[ "$(wc -l <"$T/stderr")" = 1 ] || fail "more than one line: $(cat "$T/stderr")"
cairn_umount "$mnt"
cairn list "$repo" >"$T/list" || fail "cairn list REPO"
grep -q refused "$T/list" && fail "a refused snapshot was taken"

# Unmounted: snapshot, rotate (lowest and promoted), list, forget.
cairn snapshot "${c[@]}" "$repo" first || fail "cairn snapshot REPO first"
for k in 1 2 3 4; do
	echo "hour $k" >"$T/stamp"
	cairn rotate "${c[@]}" "$repo" hourly 3 || fail "cairn rotate REPO hourly 3 (run $k)"
done
cairn rotate "${c[@]}" "$repo" daily 2 --from hourly:3 || fail "cairn rotate REPO daily"
expect_fail 1 cairn rotate "${c[@]}" "$repo" daily 2 --from hourly:3
expect_stderr_match "hourly.2 does not exist"
cairn list "$repo" | awk 'NR > 1 { print $1 }' | sort | tr '\n' ' ' >"$T/names"
[ "$(cat "$T/names")" = "daily.0 first hourly.0 hourly.1 " ] ||
	fail "after rotations: $(cat "$T/names")"
cairn forget "$repo" --keep-last 1 --dry-run >"$T/plan" || fail "forget --dry-run REPO"
grep -q "3 of 4 snapshots would be dropped" "$T/plan" || fail "dry run: $(cat "$T/plan")"
cairn forget "${c[@]}" "$repo" --keep-last 3 >"$T/plan" || fail "forget REPO --keep-last 3"
cairn list "$repo" | awk 'NR > 1 { print $1 }' | sort | tr '\n' ' ' >"$T/names"
[ "$(cat "$T/names")" = "daily.0 hourly.0 hourly.1 " ] || fail "after forget: $(cat "$T/names")"

# A wrong passphrase: one line, nothing done.
CAIRN_PASSPHRASE=wrong expect_fail 1 cairn snapshot "${c[@]}" "$repo" wrong
[ "$(wc -l <"$T/stderr")" = 1 ] || fail "wrong passphrase, more than one line: $(cat "$T/stderr")"

# A daemon killed after an fsync: the offline snapshot has what the local cache holds.
cairn_mount "$repo" "$mnt"
echo two >"$mnt/current/dir/synced"
sync "$mnt/current/dir/synced"
kill -9 "$(daemon_pid "$mnt")"
fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
sleep 0.5
cairn snapshot "${c[@]}" "$repo" after-crash || fail "cairn snapshot REPO after a crash"

# A wiped cache: the working tree comes back from the latest commit.
rm -rf "$T/cache"
cairn snapshot "${c[@]}" "$repo" fresh || fail "cairn snapshot REPO with no local cache"

cairn_mount "$repo" "$mnt"
for s in daily.0 hourly.0 hourly.1; do
	[ "$(cat "$mnt/$s/dir/file")" = one ] || fail "$s/dir/file"
done
[ "$(cat "$mnt/after-crash/dir/synced")" = two ] || fail "the fsynced file is not in after-crash"
[ "$(cat "$mnt/fresh/dir/synced")" = two ] || fail "the fsynced file is not in fresh"
[ "$(cat "$mnt/current/dir/synced")" = two ] || fail "the fsynced file is not in current"

# cairn list's sizes, from the daemon and computed offline: a 3 MiB file (two hard links)
# in one snapshot only is its unique bytes and counted once in its size; the data of a
# file current/ still holds is unique to no snapshot.
head -c 3145728 /dev/urandom >"$mnt/current/big"
ln "$mnt/current/big" "$mnt/current/big-link"
head -c 1048576 /dev/urandom >"$mnt/current/kept"
cairn snapshot "$mnt" with-big || fail "snapshot with-big"
rm "$mnt/current/big" "$mnt/current/big-link"
cairn snapshot "$mnt" without-big || fail "snapshot without-big"
sizes()
{
	cairn list "$1" | awk -v n="$2" '$1 == n { print $(NF - 1), $NF }'
}
for where in "$mnt" "$repo"; do
	[ "$(sizes "$where" with-big)" = "4.0M 3.0M" ] ||
		fail "cairn list $where: with-big: $(sizes "$where" with-big)"
	[ "$(sizes "$where" without-big)" = "1.0M 0B" ] ||
		fail "cairn list $where: without-big: $(sizes "$where" without-big)"
	[ "$where" = "$mnt" ] && cairn_umount "$mnt"
done

# A command run with another cache directory commits a tree rebuilt from the repository;
# the local cache of the killed mount is then stale. Its staged data is moved aside, never
# deleted, when the next mount rebuilds the working tree.
cairn_mount "$repo" "$mnt"
head -c 100000 /dev/urandom >"$T/staged-src"
cp "$T/staged-src" "$mnt/current/staged"
sync "$mnt/current/staged"
kill -9 "$(daemon_pid "$mnt")"
fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
sleep 0.5
# holding: the staged copies of the file under DIR (staging files are named by inode)
holding()
{
	find "$T/cache" -path "$1" -type f -size +0 -exec cmp -s "$T/staged-src" {} \; -print
}
[ -n "$(holding "*/staging/*")" ] || skip_staged=1
cairn snapshot --cache-dir "$T/other-cache" "$repo" elsewhere || fail "snapshot, other cache"
cairn_mount "$repo" "$mnt"
if [ -z "${skip_staged:-}" ]; then
	[ -n "$(holding "*/staging.stale.*/*")" ] ||
		fail "the stale working tree's staged data was not kept aside"
else
	echo "note: the daemon had stored the file before the kill; nothing was staged"
fi
cairn_umount "$mnt"
exit 0
