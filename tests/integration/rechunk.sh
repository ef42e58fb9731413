#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A small write into the middle of a large file re-chunks only around it: after a 4 KiB
# overwrite in the middle of a 256 MiB file, the next checkpoint stores a few chunks, not
# the file again (the repository grows by a few MiB at most), and the file reads back right.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"
require_fuse

export CAIRN_PASSPHRASE="rechunk test"
repo=$T/repo
mnt=$T/mnt
mkdir -p "$mnt"
mkfs.cairn -q "$repo" || fail "mkfs"
cairn_mount "$repo" "$mnt"

# Incompressible data, so every re-stored chunk shows in the repository's size.
head -c $((256 << 20)) /dev/urandom >"$T/big"
cp "$T/big" "$mnt/current/big" || fail "copy"
cairn checkpoint "$mnt" || fail "first checkpoint"
before=$(du -sb "$repo" | cut -f1)

# 4 KiB into the middle, in place (no truncation), then commit again.
head -c 4096 /dev/urandom >"$T/patch"
dd if="$T/patch" of="$T/big" bs=4096 seek=$((128 << 8)) conv=notrunc status=none
dd if="$T/patch" of="$mnt/current/big" bs=4096 seek=$((128 << 8)) conv=notrunc status=none ||
	fail "patch"
cairn checkpoint "$mnt" || fail "second checkpoint"
after=$(du -sb "$repo" | cut -f1)
grew=$((after - before))
echo "repository grew by $grew bytes for a 4 KiB write into a 256 MiB file"
# Chunks average 1 MiB and are at most 4 MiB: re-chunking around the write stores one or
# two of them, plus trees, an index segment and a commit. Re-storing the file would be 256 MiB.
[ "$grew" -lt $((12 << 20)) ] || fail "a 4 KiB write stored $grew bytes: the file was re-chunked"
cmp "$T/big" "$mnt/current/big" || fail "content differs after the patch"
cairn_umount "$mnt"
cairn_mount "$repo" "$mnt"
cmp "$T/big" "$mnt/current/big" || fail "content differs after a remount"
cairn_umount "$mnt"
exit 0
