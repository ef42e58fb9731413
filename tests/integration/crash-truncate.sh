#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Kill -9 right after an fsynced file is cut short (DESIGN.md, safety rule 2; fs/data.c:
# stage_switch). An fsync makes a file's staged bytes durable in the local cache, named by
# the durable meta, while the truncation is only in the open batch until the next sync. Cutting
# the staging file itself at once brought the file back at its old length with zeros (or the
# rewrite's bytes, then zeros) where the fsynced bytes had been. Now the file is either back as
# it was fsynced, or cut (and rewritten) as far as a sync got; never anything else.
# Also: the staging file a truncation replaces goes once a sync made the cut durable.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

require_fuse
require_cmd getfattr cmp truncate

export CAIRN_PASSPHRASE="integration test passphrase"
repo=$T/repo
mnt=$T/mnt
head -c 3000000 /dev/urandom >"$T/old" || fail "making old"
head -c 1000000 /dev/urandom >"$T/new" || fail "making new"
mkfs.cairn -q "$repo" || fail "mkfs.cairn"
cairn_mount "$repo" "$mnt"

# is_prefix FILE OF: FILE is no longer than OF and equals its first bytes.
is_prefix()
{
	local n
	n=$(stat -c %s "$1") || return 1
	[ "$n" -le "$(stat -c %s "$2")" ] && cmp -s -n "$n" "$1" "$2"
}

# crash_after WHAT: write old fsynced to f<attempt>, change it (WHAT), kill -9, remount.
# Prints "old" when the file came back as fsynced, else "cut".
crash_after()
{
	local f=$mnt/current/$2
	dd if="$T/old" of="$f" bs=1M conv=fsync status=none || fail "writing $2"
	local pid
	pid=$(daemon_pid "$mnt")
	case $1 in
	rewrite) dd if="$T/new" of="$f" bs=1M status=none || fail "rewriting $2" ;;
	shrink) truncate -s 1234567 "$f" || fail "truncating $2" ;;
	esac
	kill -9 "$pid"
	detach_killed "$pid" "$mnt"
	cairn_mount "$repo" "$mnt" # breaks the dead daemon's lock by itself (crash.sh)
	[ -e "$f" ] || fail "$2 is gone after the kill ($1)"
	if cmp -s "$f" "$T/old"; then
		echo old
		return
	fi
	case $1 in
	rewrite) is_prefix "$f" "$T/new" ||
		fail "$2 came back neither as fsynced nor rewritten: $(stat -c %s "$f") bytes" ;;
	shrink) [ "$(stat -c %s "$f")" = 1234567 ] && is_prefix "$f" "$T/old" ||
		fail "$2 came back neither as fsynced nor cut: $(stat -c %s "$f") bytes" ;;
	esac
	echo cut
}

# A periodic sync (every 2 s) between the change and the kill makes it durable, and then the
# old bytes are not at stake: try again, a few times at most.
for what in rewrite shrink; do
	for attempt in 1 2 3 4; do
		got=$(crash_after $what "$what$attempt") || exit 1
		echo "$what, attempt $attempt: the file came back $got"
		[ "$got" = old ] && break
	done
	[ "$got" = old ] || fail "$what: every change was durable before the kill: the test did not test"
done

# No leftovers: after a cut made durable (fsync) the replaced staging file is gone, and after
# an unmount only spares stay in the staging directory.
cache=$(cache_of "$mnt")
f=$mnt/current/kept
dd if="$T/old" of="$f" bs=1M conv=fsync status=none || fail "writing kept"
truncate -s 2000000 "$f" || fail "truncating kept"
ino=$(($(stat -c %i "$f") - 1)) # st_ino is the inode number + 1 (fs/fsops.c)
sync "$f" ||
	fail "fsync of kept"
n=$(find "$cache/staging" -name "$ino" -o -name "$ino.*" | wc -l)
[ "$n" -le 1 ] || fail "kept: $n staging files after the cut was synced: $(ls "$cache/staging")"
cmp -s -n 2000000 "$f" "$T/old" && [ "$(stat -c %s "$f")" = 2000000 ] ||
	fail "kept: not the first 2000000 bytes after the cut"
cairn_umount "$mnt"
left=$(find "$cache/staging" -mindepth 1 ! -name 'spare.*' -printf '%f ')
[ -z "$left" ] || fail "staging files left after the unmount: $left"
cairn_mount "$repo" "$mnt"
f=$mnt/current/kept
cmp -s -n 2000000 "$f" "$T/old" && [ "$(stat -c %s "$f")" = 2000000 ] ||
	fail "kept: not the first 2000000 bytes after a remount"
cairn_umount "$mnt"
exit 0
