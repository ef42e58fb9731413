#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# rsnapshot's rotation (DESIGN.md, "What the user sees"): over simulated days, hourly,
# daily and weekly rotations of a mounted cairn give the same snapshot names with the same
# contents as the same rotations done rsnapshot's way on plain directories (rm the oldest,
# mv N to N+1, cp -a current to .0 or mv the lower interval's oldest to .0). A promotion
# whose source does not exist fails with one line and changes nothing. `cairn list` shows
# every snapshot. Then a kill -9 of the daemon while rotations run: after a remount the
# names are the set before some rotation or after it, never a mix, and every snapshot's
# content is one the model had under that name.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"
require_fuse

export CAIRN_PASSPHRASE="rotate test"
repo=$T/repo
mnt=$T/mnt
model=$T/model
mkfs.cairn -q "$repo" || fail "mkfs"
cairn_mount "$repo" "$mnt"
mkdir -p "$model/current"
step=0

# The tree changes before every hourly run: a stamp naming the step, plus some shared data.
change()
{
	step=$((step + 1))
	echo "state $step" >"$mnt/current/stamp"
	echo "state $step" >"$model/current/stamp"
	seq 1 $((step * 100)) >"$mnt/current/numbers"
	seq 1 $((step * 100)) >"$model/current/numbers"
}

# rsnapshot on the model: INTERVAL KEEP [LOWER LOWER_KEEP]; returns 1 when there is nothing
# to promote (and then changes nothing).
model_rotate()
{
	local int=$1 keep=$2 lower=${3:-} lkeep=${4:-} n
	if [ -n "$lower" ] && [ ! -d "$model/$lower.$((lkeep - 1))" ]; then
		return 1
	fi
	rm -rf "$model/$int.$((keep - 1))"
	for ((n = keep - 2; n >= 0; n--)); do
		[ -d "$model/$int.$n" ] && mv "$model/$int.$n" "$model/$int.$((n + 1))"
	done
	if [ -n "$lower" ]; then
		mv "$model/$lower.$((lkeep - 1))" "$model/$int.0"
	else
		cp -a "$model/current" "$model/$int.0"
	fi
	return 0
}

# Names and each snapshot's stamp must equal the model's. The stamps are read first by the
# model's names, before anything lists the mount root (a listing refreshes the kernel's
# names by itself): a name the kernel kept from before the rotation must not show the
# snapshot it meant then.
compare_model()
{
	(cd "$model" && for s in *; do
		[ "$s" = current ] || echo "$s $(cat "$s/stamp")"
	done) | sort >"$T/want"
	(cd "$model" && for s in *; do
		[ "$s" = current ] || echo "$s $(cat "$mnt/$s/stamp" 2>&1)"
	done) | sort >"$T/got"
	if ! cmp -s "$T/want" "$T/got"; then
		diff "$T/want" "$T/got" >&2
		fail "after $1: snapshots read by name differ from rsnapshot's"
	fi
	(cd "$mnt" && for s in *; do
		[ "$s" = current ] || echo "$s $(cat "$s/stamp")"
	done) | sort >"$T/got"
	if ! cmp -s "$T/want" "$T/got"; then
		diff "$T/want" "$T/got" >&2
		fail "after $1: snapshots differ from rsnapshot's"
	fi
}

rotate_both()
{
	local what="$*" rc=0 mrc=0
	if [ $# -eq 2 ]; then
		cairn rotate "$mnt" "$1" "$2" 2>"$T/stderr" || rc=$?
		model_rotate "$1" "$2" || mrc=$?
	else
		cairn rotate "$mnt" "$1" "$2" --from "$3:$4" 2>"$T/stderr" || rc=$?
		model_rotate "$1" "$2" "$3" "$4" || mrc=$?
	fi
	if [ "$mrc" = 0 ]; then
		[ "$rc" = 0 ] || fail "cairn rotate $what: exit $rc ($(cat "$T/stderr"))"
	else
		[ "$rc" = 1 ] || fail "cairn rotate $what: exit $rc, expected a refusal (1)"
		[ "$(wc -l <"$T/stderr")" = 1 ] || fail "cairn rotate $what: not one line of error"
		grep -q "does not exist" "$T/stderr" || fail "refusal does not say why: $(cat "$T/stderr")"
	fi
	compare_model "rotate $what"
}

# Ten days of 3 hourly runs, a daily with 2 kept, a weekly every third day. Weekly runs
# before the dailies have filled up, so the first ones are refusals.
for day in $(seq 1 10); do
	for h in 1 2 3; do
		change
		rotate_both hourly 3
	done
	rotate_both daily 2 hourly 3
	[ $((day % 3)) = 0 ] || [ "$day" = 1 ] && rotate_both weekly 2 daily 2
done
[ -d "$mnt/weekly.1" ] || fail "the simulation never filled weekly"

# Refusals that change nothing: no such lower interval; bad arguments.
ls "$mnt" >"$T/before"
expect_fail 1 cairn rotate "$mnt" monthly 3 --from nonesuch:4
expect_stderr_match "does not exist"
expect_fail 2 cairn rotate "$mnt" hourly 0
expect_fail 2 cairn rotate "$mnt" hourly 3 --from hourly:3
expect_fail 2 cairn rotate "$mnt" "a/b" 3
ls "$mnt" | cmp -s - "$T/before" || fail "a refused rotation changed the snapshots"

# cairn list: every snapshot, one line each after the header.
cairn list "$mnt" >"$T/list" || fail "cairn list"
[ "$(($(wc -l <"$T/list") - 1))" = "$(($(ls "$mnt" | wc -l) - 1))" ] ||
	fail "cairn list shows $(($(wc -l <"$T/list") - 1)) snapshots"
grep -q "^hourly.0 " "$T/list" || fail "cairn list lacks hourly.0"

# Survives a remount with the cache wiped.
cairn_umount "$mnt"
rm -rf "$T/cache"
cairn_mount "$repo" "$mnt"
compare_model "a remount without the cache"

# kill -9 while rotations run: after remounting, the names are some model state's.
for kill_after in 0.05 0.2 0.5; do
	(cd "$mnt" && ls | sort | tr '\n' ' ') >"$T/state.0"
	i=0
	(
		for r in 1 2 3 4 5 6; do
			echo "crash $r" >"$mnt/current/stamp" || exit 0
			cairn rotate "$mnt" hourly 3 2>/dev/null || exit 0
		done
	) &
	worker=$!
	sleep "$kill_after"
	kill -9 "$(daemon_pid "$mnt")" 2>/dev/null
	wait "$worker" 2>/dev/null
	fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null
	cairn_mount "$repo" "$mnt"
	names=$(cd "$mnt" && ls | sort | tr '\n' ' ')
	# Every hourly.N present must be a whole state: names other than hourly.* unchanged,
	# hourly.0..k consecutive, each stamp readable.
	others_before=$(tr ' ' '\n' <"$T/state.0" | grep -v -e '^hourly\.' -e '^$' | tr '\n' ' ')
	others_after=$(echo "$names" | tr ' ' '\n' | grep -v -e '^hourly\.' -e '^$' | tr '\n' ' ')
	[ "$others_before" = "$others_after" ] ||
		fail "kill -9 after $kill_after s: other snapshots changed: [$others_before] -> [$others_after]"
	for n in 0 1 2; do
		[ -d "$mnt/hourly.$n" ] || fail "kill -9 after $kill_after s: hourly.$n missing ($names)"
		cat "$mnt/hourly.$n/stamp" >/dev/null || fail "hourly.$n unreadable after kill -9"
	done
	[ ! -e "$mnt/hourly.3" ] || fail "kill -9 after $kill_after s: hourly.3 exists"
	rm -f "$T"/state.*
done
cairn_umount "$mnt"
exit 0
