#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# FUSE requests over io_uring (fs/uring.c). The kernel offers it only when the fuse module's
# enable_uring is Y, which is off by default, so the rest of the suite runs over /dev/fuse.
# This test switches it on (root, Linux 6.14+ built with CONFIG_FUSE_IO_URING; else skip),
# restores the old value at exit, and checks that:
#  - with enable_uring N the daemon logs how to switch it on;
#  - a mount with -o nouring stays on /dev/fuse, and one without it serves over io_uring
#    (the daemon logs which), and files written over it read back after a remount;
#  - the ring threads wait as SCHED_IDLE, and no other thread of the daemon is ever that;
#    a daemon without CAP_SYS_NICE (which could not leave SCHED_IDLE again) waits as
#    SCHED_OTHER and still serves;
#  - the exerciser, the kill -9 crash test and the rsync round trip pass again with every
#    one of their mounts required to serve over io_uring (CAIRN_TEST_URING=1, lib.sh).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

require_fuse
param=/sys/module/fuse/parameters/enable_uring
[ -e "$param" ] || skip "$param does not exist (a kernel without FUSE over io_uring)"
old=$(cat "$param")
echo N 2>/dev/null >"$param" || skip "$param is not writable (needs root)"
on_exit eval "echo $old >$param"

export CAIRN_PASSPHRASE="io_uring passphrase"
repo=$T/repo
mnt=$T/mnt
mkfs.cairn -q "$repo" || fail "mkfs.cairn"
cairn_mount "$repo" "$mnt"
grep -q "can pass them over io_uring.* is N" "$(cache_of "$mnt")/mount.log" ||
	fail "enable_uring N: no hint in the log"
! over_uring "$mnt" || fail "enable_uring N: requests went over io_uring"
cairn_umount "$mnt"
echo Y >"$param" || fail "cannot set $param"
cairn_mount "$repo" "$mnt" nouring
echo "over /dev/fuse" >"$mnt/current/a"
! over_uring "$mnt" || fail "-o nouring: requests went over io_uring"
cairn_umount "$mnt"

# Threads of PID whose scheduling policy (field 41 of stat) is SCHED_IDLE (5).
idle_threads()
{
	cat /proc/"$1"/task/*/stat 2>/dev/null | sed 's/^.*) //' | awk '$39 == 5' | wc -l
}
# One ring thread per possible CPU and request in service (UR_PER_CPU in fs/uring.c).
rings=$(($(awk -F'[-,]' '{ print $NF + 1 }' /sys/devices/system/cpu/possible) * 4))

CAIRN_TEST_URING=1 cairn_mount "$repo" "$mnt"
grep -q "waiting as SCHED_IDLE" "$(cache_of "$mnt")/mount.log" ||
	fail "ring threads do not wait as SCHED_IDLE (as root)"
pid=$(daemon_pid "$mnt")
# A ring thread is SCHED_OTHER for a moment each second (its wait times out): look again.
for i in 1 2 3 4 5 6 7 8 9 10; do
	n=$(idle_threads "$pid")
	[ "$n" = "$rings" ] && break
	sleep 0.2
done
[ "$n" = "$rings" ] || fail "$n SCHED_IDLE threads in a quiet daemon, expected the $rings ring threads"
for i in $(seq 1 200); do
	printf 'file %s\n' "$i" >"$mnt/current/f$i"
done
dd if=/dev/urandom of="$T/big" bs=1M count=8 status=none
cp "$T/big" "$mnt/current/big"
cmp "$T/big" "$mnt/current/big" || fail "a file written over io_uring reads back different"
cairn_umount "$mnt"
CAIRN_TEST_URING=1 cairn_mount "$repo" "$mnt"
[ "$(cat "$mnt/current/a")" = "over /dev/fuse" ] || fail "a: wrong content after remount"
[ "$(cat "$mnt/current/f200")" = "file 200" ] || fail "f200: wrong content after remount"
cmp "$T/big" "$mnt/current/big" || fail "big: wrong content after remount"
cairn_umount "$mnt"

# Without CAP_SYS_NICE (and RLIMIT_NICE 0) a thread cannot leave SCHED_IDLE: wait as before.
mkdir -p "$T/bin"
printf '#!/bin/sh\nexec prlimit --nice=0:0 setpriv --bounding-set=-sys_nice %s "$@"\n' \
	"$(command -v mount.cairn)" >"$T/bin/mount.cairn"
chmod +x "$T/bin/mount.cairn"
PATH=$T/bin:$PATH CAIRN_TEST_URING=1 cairn_mount "$repo" "$mnt"
grep "FUSE requests go over io_uring" "$(cache_of "$mnt")/mount.log" | tail -n 1 |
	grep -q "waiting as SCHED_OTHER" || fail "without CAP_SYS_NICE: not waiting as SCHED_OTHER"
[ "$(idle_threads "$(daemon_pid "$mnt")")" = 0 ] || fail "without CAP_SYS_NICE: SCHED_IDLE threads"
cmp "$T/big" "$mnt/current/big" || fail "big: wrong content without CAP_SYS_NICE"
cairn_umount "$mnt"

for t in exerciser crash mount-rsync; do
	rc=0
	CAIRN_TEST_URING=1 bash "$top_srcdir/tests/integration/$t.sh" || rc=$?
	[ "$rc" = 0 ] || fail "$t.sh over io_uring: exit $rc"
done
