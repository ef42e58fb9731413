#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Random operations on a real mount against a plain directory: the exerciser
# (tests/integration/exerciser.c) runs the same seeded operations on $T/plain/sSEED and on
# MNT/current/ex/sSEED and stops at the first result or tree that differs. The seeds run
# concurrently while the mount checkpoints every second, and `cairn checkpoint` runs after
# them; one more seed remounts before each of its tree compares. Then the trees must still
# agree after a remount from the cache and after a remount with the cache wiped (rebuilt
# from the repository's last commit). Every unmount must succeed, and the daemon's log must
# hold no sanitizer report and no error.
# Seeds: 1 2 3, and $CAIRN_SEED too when set; $CAIRN_EXERCISER_OPS operations each (3000).
# A failure prints how to replay it (`exerciser -v SEED N DIR_A DIR_B` on two empty trees).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

require_fuse
exerciser=$top_builddir/tests/integration/exerciser
[ -x "$exerciser" ] || {
	echo "ERROR: $exerciser is not built (make check builds it)" >&2
	exit 99
}

export CAIRN_PASSPHRASE="exerciser passphrase"
repo=$T/repo
mnt=$T/mnt
nops=${CAIRN_EXERCISER_OPS:-3000}
seeds="1 2 3"
case " $seeds " in
*" ${CAIRN_SEED:-1} "*) ;;
*) seeds="$seeds $CAIRN_SEED" ;;
esac

# The exerciser finishes a seed in seconds; the bound only keeps a hung mount from hanging
# make check.
exercise()
{
	bounded 600 "$exerciser" "$@" || fail "exerciser $* (exit $?)"
}

# Unmount, and nothing the daemon logged may be an error (a failed checkpoint or flush).
umount_clean()
{
	log=$(cache_of "$mnt")/mount.log
	cairn_umount "$mnt"
	if grep -Ei 'error|failed' "$log" >"$T/errors"; then
		echo "--- errors in $log:" >&2
		head -n 20 "$T/errors" >&2
		echo "---" >&2
		fail "the daemon logged $(wc -l <"$T/errors") errors"
	fi
}

mkfs.cairn -q "$repo" || fail "mkfs.cairn failed"
cairn_mount "$repo" "$mnt" checkpoint_interval=1
mkdir "$T/plain" "$mnt/current/ex" || fail "mkdir"
# The seeds run at once, each in its own directory: the daemon serves them concurrently.
start=$(date +%s)
for seed in $seeds; do
	mkdir "$T/plain/s$seed" "$mnt/current/ex/s$seed" || fail "mkdir s$seed"
	bounded 600 "$exerciser" "$seed" "$nops" "$T/plain/s$seed" "$mnt/current/ex/s$seed" \
		>"$T/seed-$seed.log" 2>&1 &
	echo $! >"$T/seed-$seed.pid"
done
failed=
for seed in $seeds; do
	rc=0
	wait "$(cat "$T/seed-$seed.pid")" || rc=$?
	cat "$T/seed-$seed.log"
	[ "$rc" = 0 ] || failed="$failed, seed $seed (exit $rc)"
done
[ -z "$failed" ] || fail "exerciser failed:${failed#,}"
echo "seeds $seeds: $nops operations each in $(($(date +%s) - start)) s"
bounded 300 cairn checkpoint "$mnt" || fail "cairn checkpoint"
exercise --compare "$T/plain" "$mnt/current/ex"

# One more seed that remounts before each full compare (every 300 operations), so that what
# the daemon stored is compared, not what the kernel's caches remember.
mkdir "$T/plain/remount" "$mnt/current/ex/remount" || fail "mkdir remount"
start=$(date +%s)
exercise -k 300 -R "cairn umount '$mnt' && mount.cairn '$repo' '$mnt' \
	-o 'cachedir=$T/cache,checkpoint_interval=1'" 100 $((nops / 2)) "$T/plain/remount" \
	"$mnt/current/ex/remount"
echo "seed 100 with remounts: $((nops / 2)) operations in $(($(date +%s) - start)) s"
umount_clean

# From the cache: the same trees.
cairn_mount "$repo" "$mnt"
exercise --compare "$T/plain" "$mnt/current/ex"
umount_clean

# With the cache wiped: rebuilt from the repository alone.
rm -rf --one-file-system "$T/cache"
cairn_mount "$repo" "$mnt"
exercise --compare "$T/plain" "$mnt/current/ex"
umount_clean
exit 0
