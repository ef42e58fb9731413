#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The working tree's database fills up (fs/meta.h, "Durability"; DESIGN.md safety rule 2).
# SQLite then rolls back the whole open batch. The daemon must not go on as if what that batch
# held were durable: it used to count the next sync as done and delete staging files the
# database still named. Now every later change and read of file data fails (EIO), the unmount
# says the last checkpoint failed, and a remount is back at the last sync: files fsynced before
# are whole, and the working tree takes changes again.
# CAIRN_TEST_META_GROWTH=N (tests only) lets meta.db grow by N pages in that mount.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

require_fuse
require_cmd cmp

export CAIRN_PASSPHRASE="integration test passphrase"
repo=$T/repo
mnt=$T/mnt
head -c 2000000 /dev/urandom >"$T/a" || fail "making a"
head -c 1500000 /dev/urandom >"$T/b" || fail "making b"
mkfs.cairn -q "$repo" || fail "mkfs.cairn"
cairn_mount "$repo" "$mnt"
dd if="$T/a" of="$mnt/current/a" bs=1M conv=fsync status=none || fail "writing a"
cairn_umount "$mnt"

CAIRN_TEST_META_GROWTH=30 cairn_mount "$repo" "$mnt"
cache=$(cache_of "$mnt")
grep -q "CAIRN_TEST_META_GROWTH" "$cache/mount.log" || fail "the growth limit was not applied"
dd if="$T/b" of="$mnt/current/b" bs=1M conv=fsync status=none || fail "writing b"
n=0
while [ $n -lt 20000 ] && { echo "file $n" >"$mnt/current/n$n"; } 2>/dev/null; do
	n=$((n + 1))
done
[ $n -lt 20000 ] || fail "20000 files fitted into 30 pages: the limit did not work"
echo "the database filled up after $n files"
grep -q "the write transaction was rolled back" "$cache/mount.log" ||
	fail "no rollback in mount.log: $(tail -3 "$cache/mount.log")"
# Nothing the daemon holds in memory can be trusted against the database now.
if cat "$mnt/current/a" >/dev/null 2>"$T/stderr"; then
	fail "a read of file data succeeded after the batch was lost"
fi
grep -q "Input/output error" "$T/stderr" || fail "read after the loss: $(cat "$T/stderr")"
if { echo more >"$mnt/current/late"; } 2>/dev/null; then
	fail "a change succeeded after the batch was lost"
fi
sleep 3 # a periodic sync or two: each must fail, quietly
[ "$(grep -c "periodic sync failed" "$cache/mount.log")" = 0 ] ||
	fail "the periodic sync complains every time after the loss"
rc=0
bounded 120 cairn umount "$mnt" 2>"$T/stderr" || rc=$?
[ "$rc" = 1 ] || fail "cairn umount after the loss: exit $rc, $(cat "$T/stderr")"
grep -q "last checkpoint failed" "$T/stderr" || fail "cairn umount: $(cat "$T/stderr")"
! is_mounted "$mnt" || fail "still mounted after the failed unmount"
check_sanitizer_log "$cache/mount.log"

# Back at the last sync, as after a crash: the fsynced files whole, changes taken again.
cairn_mount "$repo" "$mnt"
cmp -s "$mnt/current/a" "$T/a" || fail "a is not as fsynced before the capped mount"
cmp -s "$mnt/current/b" "$T/b" || fail "b is not as fsynced before the database filled"
echo again >"$mnt/current/again" || fail "no change after the remount"
cairn_umount "$mnt"
cairn_mount "$repo" "$mnt" "cachedir=$T/cache2"
cmp -s "$mnt/current/b" "$T/b" || fail "b is not in the repository"
[ "$(cat "$mnt/current/again")" = again ] || fail "'again' is not in the repository"
cairn_umount "$mnt"
exit 0
