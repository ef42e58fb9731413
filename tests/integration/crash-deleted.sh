#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Kill -9 right after fsynced files are deleted (DESIGN.md, safety rule 2; fs/data.c:
# fs_data_mark_clean). An fsync makes a file's staged bytes durable in the local cache, named by
# the durable meta, while a deletion is only in the open batch until the next sync. So the
# staging file must outlive the deletion until that sync: after the kill and a remount, each
# deleted file is either gone (a sync made its deletion durable) or back whole; never back
# with other bytes (it came back as zeros while the staging file went at once).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

require_fuse
require_cmd getfattr cmp

export CAIRN_PASSPHRASE="integration test passphrase"
repo=$T/repo
mnt=$T/mnt
for k in $(seq 1 8); do
	head -c $((1500 + k * 100))k /dev/urandom >"$T/data$k" || fail "making data$k"
done
mkfs.cairn -q "$repo" || fail "mkfs.cairn"
cairn_mount "$repo" "$mnt"

# A periodic sync (every 2 s) between the deletions and the kill makes them durable, and
# then there is nothing to see: try again, a few times at most.
for attempt in 1 2 3; do
	mkdir "$mnt/current/a$attempt" || fail "mkdir a$attempt"
	for k in $(seq 1 8); do
		dd if="$T/data$k" of="$mnt/current/a$attempt/f$k" bs=1M conv=fsync status=none ||
			fail "writing a$attempt/f$k"
	done
	pid=$(daemon_pid "$mnt")
	rm "$mnt/current/a$attempt/"f* || fail "rm, attempt $attempt"
	kill -9 "$pid"
	detach_killed "$pid" "$mnt"
	cairn_mount "$repo" "$mnt" # breaks the dead daemon's lock by itself (crash.sh)
	back=0 gone=0
	for k in $(seq 1 8); do
		f=$mnt/current/a$attempt/f$k
		if [ ! -e "$f" ]; then
			gone=$((gone + 1))
			continue
		fi
		cmp -s "$f" "$T/data$k" || fail "a$attempt/f$k came back, but not as it was written"
		back=$((back + 1))
	done
	echo "attempt $attempt: after the remount, $back deleted files back whole, $gone gone"
	[ "$back" = 0 ] || break
done
[ "$back" -gt 0 ] || fail "every deletion was durable before the kill: the test did not test"
cairn_umount "$mnt"
exit 0
