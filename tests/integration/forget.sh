#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# cairn forget on a mount (the policy tables themselves are tests/unit/test-forget.c): a
# dry run changes nothing; --keep-last 2 drops all but the two newest in one commit, the
# survivors keep their content and survive a remount with the cache wiped; a policy that
# keeps nothing and bad arguments are refused with one line and drop nothing; a request
# whose snapshot was renamed since the plan (its time differs) drops nothing; a list longer
# than one 64 KiB attribute (pages of 100) is listed and forgotten whole.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"
require_fuse

export CAIRN_PASSPHRASE="forget test"
repo=$T/repo
mnt=$T/mnt
mkfs.cairn -q "$repo" || fail "mkfs"
cairn_mount "$repo" "$mnt"
for k in 1 2 3 4 5; do
	echo "state $k" >"$mnt/current/stamp"
	cairn snapshot "$mnt" "snap-$k" || fail "snapshot $k"
done
ls "$mnt" >"$T/before"

cairn forget "$mnt" --keep-last 2 --dry-run >"$T/plan" || fail "dry run"
grep -q "3 of 5 snapshots would be dropped" "$T/plan" || fail "dry run plan: $(cat "$T/plan")"
ls "$mnt" | cmp -s - "$T/before" || fail "a dry run changed the snapshots"

expect_fail 2 cairn forget "$mnt"
expect_stderr_match "refusing to drop every snapshot"
expect_fail 2 cairn forget "$mnt" --keep-within 2x
expect_fail 2 cairn forget "$mnt" --keep-daily -1
ls "$mnt" | cmp -s - "$T/before" || fail "a refused forget changed the snapshots"

cairn forget "$mnt" --keep-last 2 >"$T/plan" || fail "cairn forget --keep-last 2"
[ "$(ls "$mnt" | tr '\n' ' ')" = "current snap-4 snap-5 " ] ||
	fail "after forget: $(ls "$mnt" | tr '\n' ' ')"
[ "$(cat "$mnt/snap-4/stamp")" = "state 4" ] || fail "snap-4 content"
cairn_umount "$mnt"
rm -rf "$T/cache"
cairn_mount "$repo" "$mnt"
[ "$(ls "$mnt" | tr '\n' ' ')" = "current snap-4 snap-5 " ] ||
	fail "after a remount: $(ls "$mnt" | tr '\n' ' ')"
[ "$(cat "$mnt/snap-5/stamp")" = "state 5" ] || fail "snap-5 content after a remount"

# The daemon checks each name's time: a plan made before a rotation renamed things fails.
ls "$mnt" >"$T/before"
if setfattr -n user.cairn.forget -v "$(printf 'snap-4\t1')" "$mnt" 2>"$T/stderr"; then
	fail "a forget naming snap-4 with the wrong time was accepted"
fi
ls "$mnt" | cmp -s - "$T/before" || fail "a refused stale forget changed the snapshots"

# More snapshots than one page of the list; names near the 255-byte limit.
long=$(printf 'x%.0s' $(seq 240))
for k in $(seq 1 230); do
	cairn snapshot "$mnt" "$long-$k" || fail "snapshot $k of 230"
done
cairn list "$mnt" >"$T/list" || fail "cairn list of 232 snapshots"
[ "$(grep -c "^$long-" "$T/list")" = 230 ] || fail "cairn list shows $(grep -c "^$long-" "$T/list") of 230"
cairn forget "$mnt" --keep-last 3 >"$T/plan" || fail "forget --keep-last 3 of 232"
grep -q "229 of 232 snapshots dropped" "$T/plan" || fail "forget 229 of 232: $(tail -1 "$T/plan")"
[ "$(ls "$mnt" | tr '\n' ' ')" = "current $long-228 $long-229 $long-230 " ] ||
	fail "after forget of 229: $(ls "$mnt" | wc -l) names"
cairn_umount "$mnt"
exit 0
