#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A backend that fails under a live mount loses nothing that was accepted (DESIGN.md, safety
# rule 6). The repository lives on a bind mount of its own that the test turns read-only
# under the running daemon (every put then fails with EROFS), then writable again. While it
# fails, in two rounds (small changes that fit in the packs the store keeps in memory, so a
# checkpoint gets as far as the trees and the commit; then more data than those packs hold,
# so the store must refuse blobs): writes, in-place writes, appends, truncation, renames,
# deletions, symlinks, modes and times are accepted into the local staging area (an fsync
# may fail, cleanly, with the backend's error); `cairn checkpoint` fails every time it is
# asked, not only the first, and no commit appears; mount.log names the pack it could not
# upload and why; every file, old and new, reads back right and the tree equals a plain
# copy. Once the backend works again: `cairn checkpoint` commits at once, the unmount exits
# 0, and a remount with the cache deleted (everything read from the repository) has every
# accepted byte. Last, an unmount while the backend fails: it exits non-zero, keeps the packs
# it could not upload in the cache, and the next mount uploads them, so that every accepted
# byte is there again, with the cache and without; and one where the cache cannot keep them
# either, after which the tree is that of the last sync and every file reads. Needs root
# (mount --bind); skipped otherwise.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

require_fuse
require_cmd rsync getfattr md5sum
[ "$(id -u)" = 0 ] || skip "not root: cannot make the repository's file system fail"

export CAIRN_PASSPHRASE="integration test passphrase"
store=$T/store
repo=$store/repo
mnt=$T/mnt
want=$T/want
mkdir -p "$store" "$want"

# The repository's own mount, so that its read-only flag is one the daemon's open
# descriptors see. Cleaned up at exit whatever happens (registered before any cairn mount,
# so it runs after the mount is gone).
mount --bind "$store" "$store" || skip "cannot bind-mount $store"
on_exit umount -l "$store"
backend_ro()
{
	# A remount to read-only is refused (EBUSY) while a file on it is open for writing,
	# which the daemon's uploaders may have for an instant: try again a little later.
	_i=0
	until mount -o remount,bind,ro "$store" 2>"$T/mount.err"; do
		_i=$((_i + 1))
		[ "$_i" -lt 100 ] || fail "cannot make $store read-only: $(cat "$T/mount.err")"
		sleep 0.1
	done
	if touch "$repo/probe" 2>/dev/null; then
		fail "$repo is still writable after the read-only remount"
	fi
}
backend_rw()
{
	mount -o remount,bind,rw "$store" || fail "cannot make $store writable again"
}
# Undo a read-only flag before the mount's own cleanup: a daemon ending at exit then stores
# what it can rather than failing.
on_exit mount -o remount,bind,rw "$store"

head_seq()
{
	bounded 60 cairn info --cache-dir "$T/info-cache" "$repo" |
		awk '$1 == "commit" { print $2 }'
}
# Every file of $want reads back the same through the mount.
check_reads()
{
	(cd "$want" && find . -type f -print0 | sort -z | xargs -0 md5sum) >"$T/sums" ||
		fail "checksums of $want"
	(cd "$mnt/current" && bounded 300 md5sum --quiet -c "$T/sums") >&2 ||
		fail "a file reads back wrong or not at all ($1)"
}
# Write a file through the mount and into $want alike. The writes and the close must be
# accepted (the data goes to the local staging area), then the file is fsynced: with a
# working backend that must succeed; while the backend fails, an fsync may fail, but only
# cleanly and with the backend's error (the daemon's fsync also stores what is staged).
put()
{
	bounded 120 dd of="$mnt/current/$1" status=none "${@:3}" <"$2" ||
		fail "writing $1 was not accepted ($phase)"
	dd of="$want/$1" status=none "${@:3}" <"$2" || fail "writing $want/$1"
	_rc=0
	bounded 120 sync "$mnt/current/$1" 2>"$T/stderr" || _rc=$?
	if [ "$_rc" != 0 ]; then
		[ "$backend_failing" = true ] || fail "fsync of $1: $(cat "$T/stderr") ($phase)"
		case $_rc in 124 | 137) fail "fsync of $1 hung ($phase)" ;; esac
		expect_stderr_match "(Permission denied|Read-only file system|Input/output error)"
		fsync_failed=$((fsync_failed + 1))
	fi
}
backend_failing=false
fsync_failed=0
# cairn umount while the backend fails: it must exit non-zero, end, and log /$1/.
umount_failing()
{
	cache=$(cache_of "$mnt")
	_rc=0
	bounded 300 cairn umount "$mnt" 2>"$T/stderr" || _rc=$?
	case $_rc in
	0) fail "cairn umount exited 0 although its last checkpoint failed ($phase)" ;;
	124 | 137) fail "cairn umount hung with the backend failing ($phase)" ;;
	esac
	expect_stderr_match "checkpoint failed"
	wait_for 300 "the daemon did not end after cairn umount ($phase)" eval '! is_mounted "$mnt"'
	grep -Eq "$1" "$cache/mount.log" || {
		tail -n 20 "$cache/mount.log" >&2
		fail "mount.log has no line /$1/ ($phase)"
	}
}
data()
{
	head -c "$2" /dev/urandom >"$T/data.$1"
	echo "$T/data.$1"
}

mkfs.cairn -q "$repo" || fail "mkfs.cairn"
cairn_mount "$repo" "$mnt"
cache=$(cache_of "$mnt")

# --- before: committed files, and files fsynced but not committed --------------------------
phase="before the failure"
mkdir -p "$mnt/current/old" "$want/old"
put old/committed-small "$(data a 1000)"
put old/committed-5M "$(data b 5M)" bs=1M
put old/overwritten "$(data c 3M)" bs=1M
put old/appended "$(data d 1500k)" bs=64k
put old/truncated "$(data e 2M)" bs=1M
put old/renamed "$(data f 40000)"
put old/deleted "$(data g 3000)"
bounded 120 cairn checkpoint "$mnt" || fail "cairn checkpoint before the failure"
put old/fsynced-only "$(data h 7M)" bs=1M
put old/fsynced-small "$(data i 10)"
check_reads "before the failure"
seq_before=$(head_seq)
case $seq_before in
'' | *[!0-9]*) fail "no commit before the failure (cairn info: '$seq_before')" ;;
esac

# --- the backend fails -----------------------------------------------------------------------
# Every checkpoint asked for while it fails must fail, however often it is asked: a commit
# that was not written is never reported as done.
checkpoints_fail()
{
	for _attempt in 1 2 3; do
		_rc=0
		bounded 300 cairn checkpoint "$mnt" 2>"$T/stderr" || _rc=$?
		case $_rc in
		0) fail "cairn checkpoint exited 0 with a read-only repository (attempt" \
			"$_attempt, $1): head is still commit $(head_seq)" ;;
		124 | 137) fail "cairn checkpoint hung (attempt $_attempt, $1)" ;;
		esac
		echo "checkpoint attempt $_attempt ($1): exit $_rc: $(cat "$T/stderr")"
		check_reads "while the backend fails, after checkpoint attempt $_attempt ($1)"
	done
	[ "$(head_seq)" = "$seq_before" ] || fail "a commit appeared in a read-only repository"
}

backend_ro
backend_failing=true
phase="while the backend fails"
log_at=$(wc -l <"$cache/mount.log")

# Small changes first: all of them fit in the packs the store keeps in memory, so the
# checkpoint gets as far as writing the trees and the commit.
mkdir -p "$mnt/current/new/sub" "$want/new/sub"
put new/small "$(data j 777)"
: >"$mnt/current/new/empty"
: >"$want/new/empty"
for t in "$mnt/current" "$want"; do
	mv "$t/old/renamed" "$t/new/sub/renamed" || fail "rename in $t ($phase)"
	rm "$t/old/deleted" || fail "rm in $t ($phase)"
	ln -s ../old/committed-small "$t/new/link" || fail "symlink in $t ($phase)"
	chmod 0600 "$t/old/committed-5M" || fail "chmod in $t ($phase)"
done
check_reads "while the backend fails, small changes"
sleep 3 # the flush threads and the periodic sync (every 2 s) try, and fail
checkpoints_fail "small changes"

# Then more than the packs in flight the store holds in memory (4 x 16 MiB by default): the
# store must refuse blobs it cannot take, and the data stay staged.
for k in 1 2 3; do
	put "new/big$k" "$(data "big$k" 30M)" bs=1M
done
put new/sub/medium "$(data k 300k)" bs=64k
put old/overwritten "$(data l 100000)" bs=1000 seek=700 conv=notrunc
put old/appended "$(data m 123457)" oflag=append conv=notrunc
for t in "$mnt/current" "$want"; do
	truncate -s 777777 "$t/old/truncated" || fail "truncate in $t ($phase)"
done
check_reads "while the backend fails, large changes"
sleep 3
check_reads "while the backend fails, after the background flushes"
# Metadata changes are accepted too: take $want's times (same sizes, so no data is copied),
# then the trees must be equal in every byte and attribute.
bounded 300 rsync -aHAX --size-only --modify-window=-1 "$want/" "$mnt/current/" ||
	fail "setting times and modes ($phase)"
tree_compare "$want" "$mnt/current"
checkpoints_fail "large changes"

tail -n "+$((log_at + 1))" "$cache/mount.log" >"$T/log"
for want_line in "uploading pack .*: (Permission denied|Read-only file system)" \
	"checkpoint failed: (Permission denied|Read-only file system)"; do
	grep -Eq "$want_line" "$T/log" || {
		cat "$T/log" >&2
		fail "mount.log has no line /$want_line/"
	}
done
# A failing write is the backend's, never a crash of the daemon.
is_mounted "$mnt" || fail "the mount went away while the backend failed"
kill -0 "$(daemon_pid "$mnt")" || fail "the daemon died while the backend failed"

# --- the backend works again ------------------------------------------------------------------
echo "fsyncs that failed while the backend failed: $fsync_failed"
backend_rw
backend_failing=false
phase="after the backend came back"
bounded 300 cairn checkpoint "$mnt" || {
	tail -n 20 "$cache/mount.log" >&2
	fail "cairn checkpoint after the backend came back"
}
seq_after=$(head_seq)
[ "$seq_after" -gt "$seq_before" ] ||
	fail "the checkpoint after the backend came back made no commit (still $seq_after)"
check_reads "after the backend came back"
tree_compare "$want" "$mnt/current"
cairn_umount "$mnt"

# Everything accepted is in the repository: a remount without the cache has it all.
rm -rf "$T/cache"
cairn_mount "$repo" "$mnt"
check_reads "remounted without the cache"
tree_compare "$want" "$mnt/current"

# --- an unmount while the backend fails ------------------------------------------------------
# The last checkpoint fails, and the unmount says so; but the working tree it leaves names
# chunks of packs the backend refused (put by the flushers before the unmount), so those
# packs must be kept locally and uploaded by the next mount, or these files would come
# back naming data that exists nowhere.
backend_ro
backend_failing=true
phase="unmounting while the backend fails"
put new/at-umount-big "$(data n 9M)" bs=1M
put new/at-umount-small "$(data o 5000)"
put old/committed-small "$(data p 1200)"
put old/appended "$(data q 3333)" oflag=append conv=notrunc
bounded 300 rsync -aHAX --size-only --modify-window=-1 "$want/" "$mnt/current/" ||
	fail "setting times ($phase)"
tree_compare "$want" "$mnt/current"
sleep 3 # flushed, put into packs that cannot be uploaded
umount_failing "packs not uploaded are kept in .*/outbox"
backend_rw
backend_failing=false
phase="after an unmount with the backend failing"
cairn_mount "$repo" "$mnt"
check_reads "$phase"
tree_compare "$want" "$mnt/current"
cairn_umount "$mnt"
rm -rf "$T/cache"
cairn_mount "$repo" "$mnt"
check_reads "$phase, remounted without the cache"
tree_compare "$want" "$mnt/current"

# --- and when the cache cannot keep those packs either ---------------------------------------
# Then the working tree's last batch is dropped, as in a crash: the next mount shows the tree
# of the last sync, which names no data that is missing. What changed since is there whole,
# cut short, or not at all (a sync may have recorded part of it while it was staged), and
# everything else is as it was.
backend_ro
backend_failing=true
phase="unmounting while neither the backend nor the cache can keep the packs"
mkdir "$mnt/current/doomed" || fail "mkdir ($phase)"
for k in 1 2 3; do
	bounded 120 dd if="$(data "doomed$k" $((k * 1500))k)" of="$mnt/current/doomed/f$k" bs=64k \
		status=none || fail "writing doomed/f$k was not accepted ($phase)"
done
sleep 3
cache=$(cache_of "$mnt")
rm -rf "$cache/outbox" && : >"$cache/outbox" || fail "blocking $cache/outbox"
umount_failing "cannot keep the packs not uploaded in .*/outbox"
backend_rw
backend_failing=false
rm -f "$cache/outbox"
phase="after an unmount that could keep nothing"
cairn_mount "$repo" "$mnt"
find "$mnt/current" -type f -print0 | bounded 300 xargs -0 cat >/dev/null 2>"$T/stderr" || {
	cat "$T/stderr" >&2
	fail "a file of the tree cannot be read ($phase)"
}
bounded 600 rsync -aHAX --delete --modify-window=-1 --dry-run --itemize-changes -c \
	--exclude=/doomed "$want/" "$mnt/current/" >"$T/compare.all" ||
	fail "rsync compare ($phase)"
grep -v '^\.d\.\.t\.\.\.\.\.\. \./$' "$T/compare.all" >"$T/compare" || true
[ ! -s "$T/compare" ] || {
	cat "$T/compare" >&2
	fail "the tree outside doomed/ changed ($phase)"
}
for k in 1 2 3; do
	f=$mnt/current/doomed/f$k
	[ -e "$f" ] || continue
	cmp -n "$(stat -c %s "$f")" "$f" "$T/data.doomed$k" ||
		fail "doomed/f$k is neither whole nor cut short ($phase)"
done
cairn_umount "$mnt"
exit 0
