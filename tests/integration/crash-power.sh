#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A power cut while files are being written and never fsynced (DESIGN.md, safety rule 2;
# fs/data.c, "Durable staged bytes"). Meta names staged bytes, and the periodic syncs make
# meta durable; what the kernel had not yet written of a staging file is gone after a power
# cut. A durable meta that named such bytes would read them back as zeros under the file's
# size and time, which a later rsync takes as unchanged.
#
# The cut is modelled: the daemon runs with powercut.so, which copies each staging file at
# every successful fsync or fdatasync; after kill -9, every staging file is put back to its
# last copy, or emptied if it never had one (meta.db is SQLite's, synced at each commit:
# the kill leaves it as a power cut would). After the remount each file must read back as a
# prefix of what was written to it (all of it, some of it, or nothing), never other bytes.
# Then the same library makes fdatasync fail, as a failed write-back would.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

require_fuse
require_cmd getfattr cmp md5sum
shim=$top_builddir/tests/integration/powercut.so
[ -f "$shim" ] || fail "$shim is not built (make check builds it)"

export CAIRN_PASSPHRASE="integration test passphrase"
repo=$T/repo
mnt=$T/mnt
src=$T/src
shadow=$T/shadow
mkdir -p "$src" "$shadow"
# 120 files of 1 byte to 200 KiB (staged in memory until a sync writes them out), and 30
# of 1.2 to 3 MiB (staged in files from the start).
head -c $((4 * 1024 * 1024)) /dev/urandom >"$T/pool"
for k in $(seq 1 150); do
	size=$(((k * 7919) % (200 * 1024) + 1)) skip=$((k * 4099))
	[ $((k % 5)) != 0 ] || size=$((1200 * 1024 + k * 12345)) skip=$((k * 100))
	dd if="$T/pool" of="$src/f$k" bs=64k iflag=skip_bytes,count_bytes skip=$skip \
		count=$size status=none || fail "making f$k"
done

# The library goes into the daemon alone (under ASan it does not come first, which ASan
# accepts only when told). Sets pid and cache.
mount_preloaded()
{
	local CAIRN_MOUNT_ENV=(POWERCUT_DIR="$T/cache" POWERCUT_SHADOW="$shadow"
		POWERCUT_EIO="$T/eio" LD_PRELOAD="$shim"
		ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0")
	cairn_mount "$repo" "$mnt"
	pid=$(daemon_pid "$mnt")
	cache=$(cache_of "$mnt")
}

mkfs.cairn -q "$repo" || fail "mkfs.cairn"
mount_preloaded
staging=$cache/staging
grep -q "powercut.so" "/proc/$pid/maps" || fail "the daemon did not load $shim"

# Rounds of copies for 7 s: three or more periodic syncs (every 2 s) fall among them.
end=$(($(date +%s) + 7))
round=0
while [ "$(date +%s)" -lt "$end" ]; do
	round=$((round + 1))
	cp -r "$src" "$mnt/current/r$round" || fail "copy, round $round"
	sleep 0.2
done
kill -9 "$pid"
detach_killed "$pid" "$mnt"

# The power cut: each staging file as of its last sync, or empty.
reverted=0 emptied=0
for f in "$staging"/*; do
	[ -f "$f" ] && [ -s "$f" ] || continue
	name=$(basename "$f")
	if [ -f "$shadow/$name" ]; then
		cmp -s "$f" "$shadow/$name" || reverted=$((reverted + 1))
		cp "$shadow/$name" "$f" || fail "putting $name back"
	else
		emptied=$((emptied + 1))
		: >"$f"
	fi
done
echo "killed after $round rounds of 150 files; staging files put back: $reverted," \
	"emptied: $emptied, synced copies: $(find "$shadow" -type f | wc -l)"

cairn_mount "$repo" "$mnt" # breaks the dead daemon's lock by itself (crash.sh)

prefixes_only "$src" "$mnt/current" 150
cairn_umount "$mnt"

# A write-back that fails (EIO from fdatasync) may have lost the bytes for good: the batch
# that names them is never committed, the working tree takes no more changes, and after a
# remount it is back at the last sync.
mount_preloaded
cp "$src/f5" "$mnt/current/kept" && sync "$mnt/current/kept" || fail "writing kept"
touch "$T/eio"
exec 3>"$mnt/current/open" # open (not stored by a sync): its bytes must be synced
head -c $((3 * 1024 * 1024)) "$T/pool" >&3 || fail "writing open"
sync -f "$mnt/current/open" # the kernel hands the bytes to the daemon; no fsync
wait_for 100 "no failed sync within 10 s: $(tail -3 "$cache/mount.log")" \
	grep -q "staged data could not be made durable" "$cache/mount.log"
exec 3>&-
grep -q "inode [0-9]*: staged data could not be made durable: Input/output error" \
	"$cache/mount.log" || fail "the failure does not name the inode: $(tail -3 "$cache/mount.log")"
if { echo more >"$mnt/current/late"; } 2>/dev/null; then
	fail "a change succeeded after staged bytes were lost"
fi
rc=0
bounded 120 cairn umount "$mnt" 2>"$T/stderr" || rc=$?
[ "$rc" = 1 ] || fail "cairn umount after the loss: exit $rc, $(cat "$T/stderr")"
! is_mounted "$mnt" || fail "still mounted after the failed unmount"
check_sanitizer_log "$cache/mount.log"
rm -f "$T/eio"
cairn_mount "$repo" "$mnt"
cmp -s "$mnt/current/kept" "$src/f5" || fail "kept is not as fsynced before the failure"
[ ! -s "$mnt/current/open" ] || fail "open came back with bytes no durable sync covered"
echo "a failed fdatasync: changes refused, unmount exit 1, back at the last sync"
cairn_umount "$mnt"
exit 0
