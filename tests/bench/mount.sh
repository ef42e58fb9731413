#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# `make bench`, second part: the mount benchmark. One real source tree (default: the first
# 1.6 GiB of /usr/lib plus all of /usr/share/doc), copied once into a scratch directory on the
# same disk as every target, is backed up in one run by
#   rsync-local  rsync -aHAX into a plain directory (the baseline),
#   fuse-floor   rsync -aHAX into tests/bench/fuse-floor, a FUSE file system that keeps only
#                names and attributes and talks to the kernel as cairn does: what any FUSE
#                file system pays here for these requests before doing work of its own
#                (its times have no sync or unmount part: it has nothing to make durable),
#   cairn        rsync -aHAX into a cairn mount, `cairn umount` included,
#   borg         borg 1.2, repokey encryption, --compression lz4,
#   restic       restic 0.14,
# each an initial backup and then one with nothing changed. For rsync-local and cairn it also
# reads the whole tree back (tar -cf - . | cat > /dev/null, page cache dropped before each
# read when /proc/sys/vm/drop_caches is writable) and creates 50 000 small files (fuse-floor
# too; its files read back as zeros); for cairn it
# reports the daemon's peak RSS (VmHWM, sampled before every unmount). Every backup time ends
# with sync -f, so each contender is timed until its data is durable; the sync and umount
# parts are printed on their own lines. Timings are reported, never judged: the machine is
# shared and noisy. The exit status is 0 unless something failed (an error, a timeout or a
# difference in the data read back), never because something was slow.
#
# Environment: top_builddir (default .), BENCH_TREE colon-separated source directories
# (default /usr/lib:/usr/share/doc), BENCH_LIMIT bytes taken at most from each of them, in
# path order (default 1717986918, 1.6 GiB), BENCH_DIR scratch directory (default a new one
# under /var/tmp; removed at the end either way), BENCH_TIMEOUT seconds any one step may take
# (default 3600), BENCH_PERF a directory: record `perf record -g` of the cairn daemon during
# each cairn phase there (slows cairn down; for finding out why, not for the table), with
# BENCH_PERF_RECORD as perf record's options (default -g; e.g. "-F 499 --call-graph dwarf"),
# BENCH_URING on (default) or off: the fuse module's enable_uring for the run, so that cairn
# serves its requests over io_uring or over /dev/fuse (fs/uring.c); restored at the end. The
# transport cairn used is printed with the results. BENCH_HALTPOLL nanoseconds: in a KVM
# guest with the haltpoll cpuidle driver, how long an idle vCPU polls before it halts
# (guest_halt_poll_ns) for the run, restored at the end; unset, the machine's setting is
# used. Each FUSE request wakes a sleeping thread, often on the other vCPU: waking a halted
# vCPU costs the host a reschedule, so this setting weighs on cairn and not on the others.
# The value in force is printed with the results.
# shellcheck disable=SC2015,SC2317 # "timed A && timed B || true" on purpose; trap/timed call
set -euo pipefail

top_builddir=${top_builddir:-$(pwd)}
mkfs=$top_builddir/tools/mkfs.cairn
mount_cairn=$top_builddir/tools/mount.cairn
fuse_floor=$top_builddir/tests/bench/fuse-floor
cairn=$top_builddir/tools/cairn
trees=${BENCH_TREE:-/usr/lib:/usr/share/doc}
limit=${BENCH_LIMIT:-1717986918}
step_timeout=${BENCH_TIMEOUT:-3600}
perf_dir=${BENCH_PERF:-}
uring=${BENCH_URING:-on}
uring_param=/sys/module/fuse/parameters/enable_uring
haltpoll=${BENCH_HALTPOLL:-}
haltpoll_param=/sys/module/haltpoll/parameters/guest_halt_poll_ns
nfiles=50000
export CAIRN_PASSPHRASE=bench CAIRN_KDF=interactive

for tool in "$mkfs" "$mount_cairn" "$cairn" "$fuse_floor"; do
	[ -x "$tool" ] || {
		echo "mount.sh: $tool is not built (top_builddir=$top_builddir)" >&2
		exit 1
	}
done
for cmd in rsync tar getfattr fusermount3; do
	command -v "$cmd" >/dev/null || {
		echo "mount.sh: $cmd is not installed" >&2
		exit 1
	}
done

if [ -n "$haltpoll" ]; then
	case $haltpoll in
	*[!0-9]*)
		echo "mount.sh: BENCH_HALTPOLL must be a number of nanoseconds" >&2
		exit 2
		;;
	esac
	if [ ! -w "$haltpoll_param" ]; then
		echo "mount.sh: BENCH_HALTPOLL: $haltpoll_param is missing or not writable" >&2
		exit 2
	fi
fi

work=${BENCH_DIR:-$(mktemp -d /var/tmp/cairn-mount-bench.XXXXXX)}
mkdir -p "$work/log"
mnt=$work/mnt
floor_mnt=$work/floor-mnt
src=$work/src # the source tree, copied once
daemon=     # pid of the cairn daemon while mounted
perf_pid=   # pid of a perf record we started
failed=0
uring_old=
haltpoll_old=
if [ -w "$uring_param" ]; then
	uring_old=$(cat "$uring_param")
	case $uring in
	on) echo Y >"$uring_param" ;;
	off) echo N >"$uring_param" ;;
	*)
		echo "mount.sh: BENCH_URING must be on or off" >&2
		exit 2
		;;
	esac
fi

cleanup()
{
	local rc=$?
	set +e
	if [ -n "$perf_pid" ]; then
		kill -INT "$perf_pid" 2>/dev/null
		wait "$perf_pid" 2>/dev/null
	fi
	if is_mounted; then
		timeout 600 "$cairn" umount "$mnt" ||
			fusermount3 -u -z "$mnt" 2>/dev/null
	fi
	is_mounted "$floor_mnt" && fusermount3 -u -z "$floor_mnt" 2>/dev/null
	if [ -n "$daemon" ] && kill -0 "$daemon" 2>/dev/null; then
		sleep 5
		kill "$daemon" 2>/dev/null
	fi
	rm -rf --one-file-system "$work"
	[ -z "$uring_old" ] || echo "$uring_old" >"$uring_param"
	[ -z "$haltpoll_old" ] || echo "$haltpoll_old" >"$haltpoll_param"
	exit "$rc"
}
trap cleanup EXIT
if [ -n "$haltpoll" ]; then # after the trap, which puts the machine's value back
	haltpoll_old=$(cat "$haltpoll_param")
	echo "$haltpoll" >"$haltpoll_param"
fi
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

is_mounted() { awk -v m="${1:-$mnt}" '$2 == m { f = 1 } END { exit !f }' /proc/self/mounts; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v z="$2" 'BEGIN { printf "%.2f", z - a }'; }

declare -A res # results by key; "FAIL" for a step that failed

# timed KEY CMD...: run CMD under the step timeout, output into log/KEY.log, time into res.
timed()
{
	local key=$1 t0 t1 rc=0
	shift
	t0=$(now)
	# timeout(1) runs programs; a shell function of ours runs in a child bash.
	if [ "$(type -t "$1")" = function ]; then
		set -- bash -c '"$@"' "$1" "$@"
	fi
	timeout "$step_timeout" "$@" >"$work/log/$key.log" 2>&1 || rc=$?
	t1=$(now)
	if [ "$rc" != 0 ]; then
		res[$key]=FAIL
		failed=1
		echo "FAILED (exit $rc$([ "$rc" = 124 ] && echo ", timeout ${step_timeout}s")):" \
			"$key: $*" >&2
		tail -n 20 "$work/log/$key.log" | sed 's/^/  | /' >&2
		return 1
	fi
	res[$key]=$(elapsed "$t0" "$t1")
}

# sum KEY A B: res[KEY] = res[A] + res[B], or FAIL.
sum()
{
	if [ "${res[$2]:-FAIL}" = FAIL ] || [ "${res[$3]:-FAIL}" = FAIL ]; then
		res[$1]=FAIL
	else
		res[$1]=$(awk -v a="${res[$2]}" -v b="${res[$3]}" 'BEGIN { printf "%.2f", a + b }')
	fi
}

durable() { sync -f "$work"; }

cold=no
drop_caches()
{
	sync
	if { echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null; then
		cold=yes
	fi
}

# Every backup starts with the source in the page cache, whatever ran before it.
warm_source() { tar -C "$src" -cf - . | cat >/dev/null; }

read_tree() { tar -C "$1" -cf - . | cat >/dev/null; }

# The same builtin-only loop (no process per file) on every target.
make_files()
{
	local d i
	for ((d = 0; d < nfiles / 1000; d++)); do
		mkdir -p "$1/small/d$d"
		for ((i = 0; i < 1000; i++)); do
			printf 'small file %d/%d\n' "$d" "$i" >"$1/small/d$d/f$i"
		done
	done
}

export -f durable warm_source read_tree make_files
export nfiles work src

# --- cairn helpers --------------------------------------------------------------------
mount_log() { find "$work/cairn-cache" -name mount.log -exec cat {} + 2>/dev/null; }

cairn_failed()
{
	echo "cairn: $1; the end of mount.log:" >&2
	mount_log | tail -n 30 | sed 's/^/  | /' >&2
}

cairn_mount()
{
	if ! timeout 120 "$mount_cairn" "$work/cairn-repo" "$mnt" \
		-o cachedir="$work/cairn-cache" >>"$work/log/mount.log" 2>&1; then
		cat "$work/log/mount.log" >&2
		cairn_failed "mount.cairn failed"
		return 1
	fi
	daemon=$(getfattr -n user.cairn.pid --only-values "$mnt" 2>/dev/null) || daemon=
	if [ -z "$daemon" ]; then
		cairn_failed "no daemon pid on $mnt"
		return 1
	fi
}

hwm=0 # the largest VmHWM in KiB over every mount
hwm_list=
cpu_list=
tck=$(getconf CLK_TCK)
# sample_rss WHEN: note the daemon's VmHWM so far, and the CPU time it has used.
sample_rss()
{
	local kb cpu
	kb=$(awk '/^VmHWM:/ { print $2 }' "/proc/$daemon/status" 2>/dev/null) || kb=
	[ -n "$kb" ] || return 0
	hwm_list="$hwm_list $1=$((kb / 1024))MiB"
	[ "$kb" -le "$hwm" ] || hwm=$kb
	# utime and stime, fields 14 and 15, counted after the ")" that ends the command name.
	cpu=$(sed 's/.*) //' "/proc/$daemon/stat" 2>/dev/null |
		awk -v t="$tck" '{ printf "%.1f", ($12 + $13) / t }') || cpu=
	cpu_list="$cpu_list $1=${cpu}s"
}

# cairn_umount KEY: sample the RSS, then time `cairn umount` (and the sync after it).
cairn_umount()
{
	sample_rss "$1"
	perf_stop_at_exit "$1"
	# shellcheck disable=SC2016 # expanded by the child bash
	if ! timed "$1" bash -c '"$1" umount "$2" && sync -f "$3"' umount "$cairn" "$mnt" \
		"$work"; then
		cairn_failed "cairn umount failed"
		return 1
	fi
	daemon=
}

# perf_start NAME: profile the daemon until perf_stop (or the daemon's exit).
perf_start()
{
	[ -n "$perf_dir" ] || return 0
	perf_stop
	mkdir -p "$perf_dir"
	# shellcheck disable=SC2086 # BENCH_PERF_RECORD is a word list on purpose
	perf record ${BENCH_PERF_RECORD:--g} -q -p "$daemon" -o "$perf_dir/$1.data" >"$perf_dir/$1.record.log" 2>&1 &
	perf_pid=$!
	sleep 1 # perf needs a moment before it counts
}

perf_stop()
{
	[ -n "$perf_pid" ] || return 0
	kill -INT "$perf_pid" 2>/dev/null || true
	timeout 120 tail --pid="$perf_pid" -f /dev/null || true
	wait "$perf_pid" 2>/dev/null || true
	perf_pid=
}

# A profile that ends with the daemon: perf record stops on its own when the target exits.
perf_stop_at_exit()
{
	[ -n "$perf_pid" ] || return 0
	perf_stop
	perf_start "$1"
}

perf_reports()
{
	[ -n "$perf_dir" ] || return 0
	local f
	for f in "$perf_dir"/*.data; do
		[ -s "$f" ] || continue
		perf report -i "$f" --no-children --stdio --percent-limit 1.5 \
			--sort dso,symbol -g none 2>/dev/null >"${f%.data}.txt" || continue
		echo
		echo "--- perf profile of the cairn daemon: $(basename "${f%.data}") (self time)"
		grep -v -e '^#' -e '^$' "${f%.data}.txt" | sed 's/[ -]*$//' | head -n 20 || true
	done
}

# --- the source tree ------------------------------------------------------------------
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "cairn mount benchmark: $trees (up to $limit bytes of each), $(nproc) cores," \
	"scratch $work"
: >"$work/files"
IFS=: read -r -a tree_list <<<"$trees"
for t in "${tree_list[@]}"; do
	taken=0
	while IFS=' ' read -r -d '' size path; do
		[ $((taken + size)) -le "$limit" ] || break
		taken=$((taken + size))
		printf '%s\0' "${path#/}"
	done < <(find "$t" -xdev ! -type d -printf '%s %p\0' | LC_ALL=C sort -z -t ' ' -k2) \
		>>"$work/files"
done
mkdir -p "$src"
rsync -aHAX --from0 --files-from="$work/files" / "$src/"
files=$(find "$src" ! -type d | wc -l)
bytes=$(du -sb --apparent-size "$src" | cut -f1)
echo "input: $files files and links, $bytes bytes"

# --- rsync into a plain local directory -----------------------------------------------
local_dir=$work/local
echo "rsync-local ..."
warm_source
timed local-init-rsync rsync -aHAX -i "$src/" "$local_dir/" &&
	timed local-init-sync durable || true
sum local-init local-init-rsync local-init-sync
warm_source
timed local-again-rsync rsync -aHAX -i "$src/" "$local_dir/" &&
	timed local-again-sync durable || true
sum local-again local-again-rsync local-again-sync
drop_caches
timed local-read read_tree "$local_dir" || true
timed local-files make_files "$local_dir" || true

# --- the FUSE floor -------------------------------------------------------------------
run_floor()
{
	local i pid
	mkdir -p "$floor_mnt"
	echo "fuse-floor ..."
	"$fuse_floor" "$floor_mnt" >"$work/log/floor-daemon.log" 2>&1 &
	pid=$!
	for ((i = 0; i < 100; i++)); do
		! is_mounted "$floor_mnt" || break
		sleep 0.1
	done
	if ! is_mounted "$floor_mnt"; then
		echo "fuse-floor did not mount:" >&2
		sed 's/^/  | /' "$work/log/floor-daemon.log" >&2
		return 1
	fi
	warm_source
	timed floor-init rsync -aHAX -i "$src/" "$floor_mnt/" || true
	warm_source
	timed floor-again rsync -aHAX -i "$src/" "$floor_mnt/" || true
	drop_caches
	timed floor-read read_tree "$floor_mnt" || true
	timed floor-files make_files "$floor_mnt" || true
	fusermount3 -u "$floor_mnt"
	wait "$pid"
}
run_floor || failed=1

# --- cairn ----------------------------------------------------------------------------
# Stops at the first failure; the caller goes on with the other contenders.
run_cairn()
{
	mkdir -p "$mnt"
	echo "cairn ..."
	"$mkfs" -q "$work/cairn-repo" || { cairn_failed "mkfs.cairn failed"; return 1; }

	cairn_mount || return 1
	perf_start init
	warm_source
	timed cairn-init-rsync rsync -aHAX -i "$src/" "$mnt/current/" ||
		{ cairn_failed "the initial rsync failed"; return 1; }
	cairn_umount cairn-init-umount || return 1
	sum cairn-init cairn-init-rsync cairn-init-umount

	cairn_mount || return 1
	perf_start unchanged
	warm_source
	timed cairn-again-rsync rsync -aHAX -i "$src/" "$mnt/current/" ||
		{ cairn_failed "the unchanged rsync failed"; return 1; }
	cairn_umount cairn-again-umount || return 1
	sum cairn-again cairn-again-rsync cairn-again-umount

	cairn_mount || return 1
	drop_caches
	perf_start read
	timed cairn-read read_tree "$mnt/current" ||
		{ cairn_failed "reading the tree back failed"; return 1; }
	perf_stop
	sample_rss after-read
	# Not timed: is what we read back what we wrote? (-c compares every byte's checksum.)
	if ! timed cairn-verify rsync -aHAXnc -i --delete "$src/" "$mnt/current/"; then
		cairn_failed "verifying the tree failed"
		return 1
	fi
	if [ -s "$work/log/cairn-verify.log" ]; then
		failed=1
		echo "cairn: the tree read back differs from the source" \
			"($(wc -l <"$work/log/cairn-verify.log") entries):" >&2
		head -n 20 "$work/log/cairn-verify.log" | sed 's/^/  | /' >&2
	fi
	sample_rss after-verify
	perf_start files
	timed cairn-files make_files "$mnt/current" ||
		{ cairn_failed "creating $nfiles files failed"; return 1; }
	cairn_umount cairn-files-umount || return 1
	perf_stop
}
if ! run_cairn; then
	failed=1
	perf_stop
	if is_mounted; then
		sample_rss failed
		timeout 600 "$cairn" umount "$mnt" || fusermount3 -u -z "$mnt" || true
	fi
fi

# --- borg 1.2 -------------------------------------------------------------------------
if command -v borg >/dev/null; then
	echo "borg ..."
	export BORG_PASSPHRASE=bench BORG_BASE_DIR=$work/borg-base BORG_DISPLAY_PASSPHRASE=no
	borg_repo=$work/borg-repo
	if borg init -e repokey "$borg_repo" >"$work/log/borg-init.log" 2>&1; then
		warm_source
		timed borg-init-create /usr/bin/time -f %M -o "$work/borg-rss-1" \
			borg create --compression lz4 "$borg_repo::initial" "$src" &&
			timed borg-init-sync durable || true
		sum borg-init borg-init-create borg-init-sync
		warm_source
		timed borg-again-create /usr/bin/time -f %M -o "$work/borg-rss-2" \
			borg create --compression lz4 "$borg_repo::unchanged" "$src" &&
			timed borg-again-sync durable || true
		sum borg-again borg-again-create borg-again-sync
	else
		failed=1
		cat "$work/log/borg-init.log" >&2
	fi
	rm -rf --one-file-system "$borg_repo" "$BORG_BASE_DIR"
else
	echo "borg is not installed (apt-get install -y borgbackup): skipped" >&2
fi

# --- restic 0.14 ----------------------------------------------------------------------
if command -v restic >/dev/null; then
	echo "restic ..."
	export RESTIC_PASSWORD=bench RESTIC_REPOSITORY=$work/restic-repo
	export RESTIC_CACHE_DIR=$work/restic-cache
	if restic init >"$work/log/restic-init.log" 2>&1; then
		warm_source
		timed restic-init-backup /usr/bin/time -f %M -o "$work/restic-rss-1" \
			restic backup -q "$src" &&
			timed restic-init-sync durable || true
		sum restic-init restic-init-backup restic-init-sync
		warm_source
		timed restic-again-backup /usr/bin/time -f %M -o "$work/restic-rss-2" \
			restic backup -q "$src" &&
			timed restic-again-sync durable || true
		sum restic-again restic-again-backup restic-again-sync
	else
		failed=1
		cat "$work/log/restic-init.log" >&2
	fi
else
	echo "restic is not installed (apt-get install -y restic): skipped" >&2
fi
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# --- the table ------------------------------------------------------------------------
max_rss() # the larger of /usr/bin/time's KiB figures, in MiB
{
	cat "$@" 2>/dev/null | awk '/^[0-9]+$/ { if ($1 > m) m = $1 } END {
		if (m) printf "%d", m / 1024; else printf "-" }'
}
floor_transport()
{
	if grep -q "FUSE requests go over io_uring" "$work/log/floor-daemon.log" 2>/dev/null; then
		echo "io_uring"
	else
		echo "/dev/fuse"
	fi
}
resent() { grep -c '^[<>ch.]f' "$work/log/$1.log" 2>/dev/null || true; }

cairn_rss=-
[ "$hwm" = 0 ] || cairn_rss=$((hwm / 1024))
row()
{
	awk -v name="$1" -v i="$2" -v u="$3" -v r="$4" -v f="$5" -v rss="$6" -v bi="${res[local-init]:-FAIL}" \
		-v bu="${res[local-again]:-FAIL}" -v br="${res[local-read]:-FAIL}" -v bytes="$bytes" '
	function num(x) { return x ~ /^[0-9.]+$/ }
	function secs(x) { return x == "" ? "-" : x }
	function ratio(x, base) { return num(x) && num(base) && base > 0 ? sprintf("%.2f", x / base) : "-" }
	BEGIN {
		mbps = num(r) && r > 0 ? sprintf("%.1f", bytes / 1e6 / r) : (r == "" ? "-" : r)
		bmbps = num(br) && br > 0 ? bytes / 1e6 / br : 0
		printf "%-14s %10s %6s %12s %6s %10s %6s %12s %9s\n", name, secs(i), ratio(i, bi),
			secs(u), ratio(u, bu), mbps, num(mbps) && bmbps ? sprintf("%.2f", mbps / bmbps) : "-",
			secs(f), rss
	}'
}

echo
echo "load average before: $load_before; after: $load_after"
echo "input: $files files and links, $bytes bytes ($trees, up to $limit bytes of each)"
echo "read-back: tar -cf - . | cat > /dev/null; page cache dropped before each read: $cold"
if mount_log | grep -q "FUSE requests go over io_uring"; then
	waiting=$(mount_log | sed -n 's/.*FUSE requests go over io_uring.*, waiting as //p' | tail -n 1)
	echo "cairn's FUSE requests: over io_uring (BENCH_URING=$uring), ring threads waiting as ${waiting:-?}"
else
	echo "cairn's FUSE requests: over /dev/fuse (BENCH_URING=$uring; io_uring needs Linux 6.14+ and $uring_param)"
fi
if [ -r "$haltpoll_param" ]; then
	echo "idle vCPUs poll $(cat "$haltpoll_param") ns before they halt (guest_halt_poll_ns${haltpoll:+, BENCH_HALTPOLL})"
fi
printf "\n%-14s %10s %6s %12s %6s %10s %6s %12s %9s\n" contender "initial s" ratio \
	"unchanged s" ratio "read MB/s" ratio "${nfiles} files s" "RSS MiB"
row rsync-local "${res[local-init]:-}" "${res[local-again]:-}" "${res[local-read]:-}" \
	"${res[local-files]:-}" -
row fuse-floor "${res[floor-init]:-}" "${res[floor-again]:-}" "${res[floor-read]:-}" \
	"${res[floor-files]:-}" -
row cairn "${res[cairn-init]:-}" "${res[cairn-again]:-}" "${res[cairn-read]:-}" \
	"${res[cairn-files]:-}" "$cairn_rss"
row "borg $(borg --version 2>/dev/null | cut -d' ' -f2)" "${res[borg-init]:-}" \
	"${res[borg-again]:-}" "" "" "$(max_rss "$work"/borg-rss-*)"
row "restic $(restic version 2>/dev/null | cut -d' ' -f2)" "${res[restic-init]:-}" \
	"${res[restic-again]:-}" "" "" "$(max_rss "$work"/restic-rss-*)"
cat <<EOF

Every backup time ends with sync -f (durable); ratios are to rsync-local's.
  rsync-local  initial: rsync ${res[local-init-rsync]:--} + sync ${res[local-init-sync]:--} s; unchanged: rsync ${res[local-again-rsync]:--} + sync ${res[local-again-sync]:--} s
  fuse-floor   rsync only: nothing to make durable; its transport: $(floor_transport)
  cairn        initial: rsync ${res[cairn-init-rsync]:--} + umount ${res[cairn-init-umount]:--} s; unchanged: rsync ${res[cairn-again-rsync]:--} + umount ${res[cairn-again-umount]:--} s
  cairn        umount after the read-back and ${nfiles} files: ${res[cairn-files-umount]:--} s
  cairn        files rsync sent again when nothing changed: $(resent cairn-again-rsync) (rsync-local: $(resent local-again-rsync))
  cairn        differences found reading back (rsync -c): $([ -f "$work/log/cairn-verify.log" ] && wc -l <"$work/log/cairn-verify.log" || echo -)
  cairn        daemon VmHWM so far, before each unmount and in the third mount:${hwm_list:- -}
  cairn        daemon CPU time (user + system) so far, at the same points:${cpu_list:- -}
  borg         repository: --encryption repokey, --compression lz4; restic: defaults
EOF
perf_reports
[ "$failed" = 0 ] || echo "mount.sh: some steps failed (see above)" >&2
exit "$failed"
