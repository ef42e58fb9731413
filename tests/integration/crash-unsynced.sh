#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Kill -9 while small files are being written and never fsynced (DESIGN.md, safety rule 2;
# fs/data.c: small files stage in memory). The periodic syncs during the writes make meta
# durable several times; memory does not survive the kill, so a durable meta must never
# have named bytes held only there. After the remount each file reads back as a prefix of
# what was written to it (all of it, some of it, or nothing): never zeros or other bytes
# where data was, which a later rsync would not notice (same size and time).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

require_fuse
require_cmd getfattr cmp

export CAIRN_PASSPHRASE="integration test passphrase"
repo=$T/repo
mnt=$T/mnt
src=$T/src
mkdir -p "$src"
# 400 files of 1 byte to 200 KiB, under the memory limit (1 MiB), and 8 over it.
head -c $((2 * 1024 * 1024)) /dev/urandom >"$T/pool"
for k in $(seq 1 400); do
	size=$(((k * 7919) % (200 * 1024) + 1)) skip=$((k * 4099))
	[ $((k % 50)) != 0 ] || size=$((1200 * 1024 + k)) skip=$((k * 100))
	dd if="$T/pool" of="$src/f$k" bs=64k iflag=skip_bytes,count_bytes skip=$skip \
		count=$size status=none || fail "making f$k"
done

mkfs.cairn -q "$repo" || fail "mkfs.cairn"
cairn_mount "$repo" "$mnt"
pid=$(daemon_pid "$mnt")

# Rounds of copies for 7 s: three or more periodic syncs (every 2 s) fall among them.
end=$(($(date +%s) + 7))
round=0
while [ "$(date +%s)" -lt "$end" ]; do
	round=$((round + 1))
	cp -r "$src" "$mnt/current/r$round" || fail "copy, round $round"
	sleep 0.3 # enough rounds, not too many files to check
done
kill -9 "$pid"
detach_killed "$pid" "$mnt"
echo "killed after $round rounds of 400 files"

cairn_mount "$repo" "$mnt" # breaks the dead daemon's lock by itself (crash.sh)

prefixes_only "$src" "$mnt/current" 400
cairn_umount "$mnt"
exit 0
