#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Kill -9 of the daemon in the middle of a large rsync (DESIGN.md, safety rule 2): files
# fsynced before the kill (new, overwritten in place, appended to, one fsynced the instant
# before the kill) are intact after a remount; the remount takes over the dead daemon's
# lock by itself (same machine, process gone: no break_lock needed) and says so in one
# line; rsync then completes, a checksumming dry-run finds nothing to do, and after a clean
# unmount the same holds with the local cache deleted (all of it is in the repository).
# CAIRN_TEST_REAL_MIB (300) sizes the tree, CAIRN_TEST_CRASH_DELAY (2 s) is the time from
# the start of the rsync to the kill, CAIRN_TEST_CRASH_OPTS adds mount options (e.g.
# checkpoint_interval=1 for a kill in the middle of a checkpoint).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

require_fuse
require_cmd rsync getfattr

export CAIRN_PASSPHRASE="integration test passphrase"
repo=$T/repo
mnt=$T/mnt
src=$T/src
copy_real_tree "$src" "${CAIRN_TEST_REAL_MIB:-300}"

mkfs.cairn -q "$repo" || fail "mkfs.cairn"
# shellcheck disable=SC2086 # options, word-split on purpose
cairn_mount "$repo" "$mnt" ${CAIRN_TEST_CRASH_OPTS:-}
pid=$(daemon_pid "$mnt")
echo "committed before the crash" >"$mnt/current/committed"
bounded 120 cairn checkpoint "$mnt" || fail "cairn checkpoint"

# Files fsynced before the crash, and what they must read afterwards.
f=$mnt/current/fsynced
mkdir -p "$f" "$T/want"
put()
{
	dd of="$f/$1" conv=fsync status=none "${@:2}" || fail "fsynced write of $1"
}
: | put empty
head -c 100 /dev/urandom | put small
head -c 3M /dev/urandom | put 3M bs=1M
head -c 20M /dev/urandom | put 20M bs=1M
head -c 2M /dev/urandom | put overwritten bs=1M
head -c 5000 /dev/urandom >"$T/patch"
put overwritten bs=1000 seek=1000 conv=notrunc <"$T/patch"
head -c 1M /dev/urandom | put appended bs=64k
head -c 12345 /dev/urandom | put appended oflag=append conv=notrunc
(cd "$f" && md5sum -- *) >"$T/sums" || fail "checksums of the fsynced files"

# The crash: a large rsync under way, one more file fsynced, kill -9.
bounded 600 rsync -aHAX --modify-window=-1 "$src/" "$mnt/current/tree/" \
	>"$T/rsync.out" 2>&1 &
rsync_job=$!
sleep "${CAIRN_TEST_CRASH_DELAY:-2}"
head -c 1M /dev/urandom >"$T/last"
dd if="$T/last" of="$f/last" bs=64k conv=fsync status=none || fail "fsync just before the kill"
kill -9 "$pid"
rc=0
wait "$rsync_job" || rc=$?
if [ "$rc" = 0 ]; then
	echo "note: rsync was done before the kill (a slow machine or a small tree)"
else
	echo "rsync died with the daemon (exit $rc), as it should"
fi
detach_killed "$pid" "$mnt"

# The remount breaks the lock of the dead daemon by itself, with one line saying so.
rc=0
bounded 60 mount.cairn "$repo" "$mnt" -o "cachedir=$T/cache" 2>"$T/stderr" || rc=$?
[ "$rc" = 0 ] || fail "remount after the crash (exit $rc): $(cat "$T/stderr")"
on_exit _cairn_reap "$mnt" "$(daemon_pid "$mnt")"
[ "$(wc -l <"$T/stderr")" -le 1 ] || fail "remount said more than one line: $(cat "$T/stderr")"
[ ! -s "$T/stderr" ] || expect_stderr_match "breaking the lock.*pid $pid.*no longer runs"
echo "remount: $(cat "$T/stderr")"

check_fsynced()
{
	(cd "$mnt/current/fsynced" && md5sum --quiet -c "$T/sums") ||
		fail "a file fsynced before the crash is damaged ($1)"
	cmp "$T/last" "$mnt/current/fsynced/last" ||
		fail "the file fsynced just before the kill is damaged ($1)"
}
check_fsynced "after the crash"

bounded 600 rsync -aHAX --modify-window=-1 --delete "$src/" "$mnt/current/tree/" ||
	fail "rsync after the crash"
tree_compare "$src" "$mnt/current/tree"
check_fsynced "after the second rsync"
cairn_umount "$mnt"

rm -rf "$T/cache"
cairn_mount "$repo" "$mnt"
tree_compare "$src" "$mnt/current/tree"
check_fsynced "after a remount without the cache"
[ "$(cat "$mnt/current/committed")" = "committed before the crash" ] || fail "lost 'committed'"
cairn_umount "$mnt"
exit 0
