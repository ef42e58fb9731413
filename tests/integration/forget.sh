#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# cairn forget on a mount (the policy tables themselves are tests/unit/test-forget.c): a
# dry run changes nothing; --keep-last 2 drops all but the two newest in one commit, the
# survivors keep their content and survive a remount with the cache wiped; a policy that
# keeps nothing and bad arguments are refused with one line and drop nothing.
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
cairn_umount "$mnt"
exit 0
