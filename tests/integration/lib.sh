# Shell helpers for the integration tests; sourced, not run:  . "$(dirname "$0")/lib.sh"
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Sets: top_srcdir, top_builddir (from the environment, as `make check` exports them, or
# derived from this file's location), PATH with $top_builddir/tools first, CAIRN_KDF=test
# (cheap key derivation) unless already set, and T, a scratch directory removed on exit
# (kept, and its name printed, when CAIRN_KEEP_TMP=1).
# Exit codes follow automake: 0 pass, 1 fail, 77 skip, 99 hard error.
#
# Helpers:
#   fail MSG...                 print "FAIL: MSG" to stderr, exit 1
#   skip WHY...                 print "SKIP: WHY", exit 77
#   require_cmd CMD...          skip unless every CMD is on PATH
#   require_fuse                skip unless /dev/fuse is usable and fusermount3 exists
#   on_exit CMD...              run CMD at exit (before T is removed; last added runs first),
#                               e.g. on_exit fusermount3 -u "$T/mnt"
#   expect_fail CODE CMD...     run CMD, stderr into $T/stderr; fail unless it exits CODE
#   expect_stderr_match REGEX   fail unless $T/stderr matches the extended REGEX
#   check_sanitizer_log FILE... fail if a FILE holds an ASan/UBSan/LSan report (a FILE that
#                               does not exist counts as clean)
#   cairn_mount REPO MNT [OPT...]
#                               mount.cairn REPO MNT -o cachedir=$T/cache[,OPT...] (a later
#                               cachedir= wins); fail unless it exits 0 and MNT/current shows
#                               within 20 s. At exit a mount still up is detached and its
#                               daemon given 30 s to end (then killed). With
#                               CAIRN_TEST_URING=1 the mount must serve requests over io_uring
#                               within 2 s (fs/uring.c; tests/integration/fuse-uring.sh).
#                               The array CAIRN_MOUNT_ENV (NAME=VALUE...) is set in
#                               mount.cairn's environment alone, e.g. an LD_PRELOAD
#   prefixes_only SRC DIR MIN   every file under DIR reads back as a prefix of the file of
#                               its name in SRC; at least MIN of them whole
#   over_uring MNT              true once the daemon of MNT has logged that it serves
#                               requests over io_uring
#   cairn_umount MNT            `cairn umount MNT` must exit 0 within $CAIRN_UMOUNT_TIMEOUT
#                               (300 s): everything stored, the daemon exited 0; then
#                               check_sanitizer_log on the daemon's mount.log
#   daemon_pid MNT              print the pid of the daemon serving MNT
#   cache_of MNT                print the repository's cache directory of the mount at MNT
#   is_mounted MNT              true while a file system is mounted at MNT (an absolute path)
#   wait_for TRIES MSG CMD...   run CMD every 0.1 s until it succeeds; fail with MSG after
#                               TRIES tries
#   detach_killed PID MNT       after a kill -9 of MNT's daemon PID: wait until it is gone
#                               (20 s at most), then detach its dead mount (10 s at most)
#   tree_compare SRC DST        fail unless `rsync -aHAX --delete -c --modify-window=-1
#                               --dry-run --itemize-changes SRC/ DST/` prints nothing: the
#                               trees are byte- and metadata-equal (times to the nanosecond),
#                               DST has nothing more. (Copy with --modify-window=-1 too: by
#                               default rsync leaves a time alone that differs by less than a
#                               second, e.g. of a directory it created in the same second.)
#   copy_real_tree DIR MIB      copy /usr/share/doc, then files of /usr/lib, into DIR until
#                               about MIB MiB (a real tree: many small files, symlinks)
#   bounded SECS CMD...         run CMD, killed after SECS seconds (a hung FUSE request must
#                               not hang the test)

set -eu

# --- where we are -------------------------------------------------------------------------
# bash knows the file being sourced; other shells fall back to the test script's own path
# (tests live next to this file).
# shellcheck disable=SC2128,SC3028 # BASH_SOURCE (bash only) as a scalar: the sourced file
_cairn_lib_dir=$(cd "$(dirname "${BASH_SOURCE:-$0}")" && pwd)
top_srcdir=${top_srcdir:-$(cd "$_cairn_lib_dir/../.." && pwd)}
top_builddir=${top_builddir:-$top_srcdir}
export top_srcdir top_builddir

PATH="$top_builddir/tools:$PATH"
export PATH
CAIRN_KDF=${CAIRN_KDF:-test}
export CAIRN_KDF

# --- scratch directory and cleanup --------------------------------------------------------
T=$(mktemp -d "${TMPDIR:-/tmp}/cairn-test.XXXXXX") || {
	echo "ERROR: mktemp failed" >&2
	exit 99
}
export T
_cairn_on_exit=

on_exit()
{
	# Stored as one quoted command line per entry; run newest first.
	_cairn_cmd=
	for _cairn_arg in "$@"; do
		_cairn_cmd="$_cairn_cmd '$(printf '%s' "$_cairn_arg" | sed "s/'/'\\\\''/g")'"
	done
	_cairn_on_exit="$_cairn_cmd
$_cairn_on_exit"
}

_cairn_cleanup()
{
	_cairn_rc=$?
	set +e
	while IFS= read -r _cairn_cmd; do
		[ -n "$_cairn_cmd" ] && eval "$_cairn_cmd"
	done <<EOF
$_cairn_on_exit
EOF
	if [ "${CAIRN_KEEP_TMP:-0}" = 1 ]; then
		echo "keeping scratch directory $T" >&2
	elif [ -d "$T" ]; then
		# A mount left behind under $T is not ours to delete through: lazily detach it, and
		# never let rm cross into another file system.
		if [ -r /proc/self/mounts ]; then
			awk -v t="$T/" 'index($2, t) == 1 { print $2 }' /proc/self/mounts |
				while IFS= read -r _cairn_mnt; do
					fusermount3 -u -z "$_cairn_mnt" 2>/dev/null ||
						umount -l "$_cairn_mnt" 2>/dev/null
				done
		fi
		rm -rf --one-file-system "$T" ||
			echo "warning: could not remove all of $T" >&2
	fi
	exit "$_cairn_rc"
}
trap _cairn_cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# --- results ------------------------------------------------------------------------------
fail()
{
	echo "FAIL: $*" >&2
	exit 1
}

skip()
{
	echo "SKIP: $*"
	exit 77
}

require_cmd()
{
	for _cairn_c in "$@"; do
		command -v "$_cairn_c" >/dev/null 2>&1 || skip "$_cairn_c is not installed"
	done
}

require_fuse()
{
	[ -c /dev/fuse ] || skip "no /dev/fuse"
	require_cmd fusermount3
	# Present is not enough in a container: it must open.
	{ : </dev/fuse; } 2>/dev/null || skip "/dev/fuse cannot be opened"
}

# --- assertions ---------------------------------------------------------------------------
expect_fail()
{
	[ $# -ge 2 ] || {
		echo "ERROR: usage: expect_fail CODE CMD..." >&2
		exit 99
	}
	_cairn_want=$1
	shift
	_cairn_got=0
	"$@" 2>"$T/stderr" || _cairn_got=$?
	if [ "$_cairn_got" != "$_cairn_want" ]; then
		echo "--- stderr of: $*" >&2
		cat "$T/stderr" >&2
		echo "---" >&2
		fail "expected exit $_cairn_want, got $_cairn_got: $*"
	fi
}

expect_stderr_match()
{
	[ -f "$T/stderr" ] || fail "expect_stderr_match: no \$T/stderr (run expect_fail first)"
	if ! grep -Eq -- "$1" "$T/stderr"; then
		echo "--- stderr:" >&2
		cat "$T/stderr" >&2
		echo "---" >&2
		fail "stderr does not match /$1/"
	fi
}

check_sanitizer_log()
{
	for _cairn_log in "$@"; do
		[ -f "$_cairn_log" ] || continue
		if grep -Eq 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' \
			"$_cairn_log"; then
			echo "--- sanitizer report in $_cairn_log:" >&2
			cat "$_cairn_log" >&2
			echo "---" >&2
			fail "sanitizer report in $_cairn_log"
		fi
	done
}

# --- mounts -------------------------------------------------------------------------------
bounded()
{
	_cairn_secs=$1
	shift
	timeout -k 5 "$_cairn_secs" "$@"
}

is_mounted()
{
	awk -v m="$1" '$2 == m { found = 1 } END { exit !found }' /proc/self/mounts
}

wait_for()
{
	_cairn_tries=$1 _cairn_msg=$2 _cairn_i=0
	shift 2
	until "$@"; do
		_cairn_i=$((_cairn_i + 1))
		[ "$_cairn_i" -lt "$_cairn_tries" ] || fail "$_cairn_msg"
		sleep 0.1
	done
}

_cairn_gone()
{
	! kill -0 "$1" 2>/dev/null
}

_cairn_unmounted()
{
	! is_mounted "$1"
}

detach_killed()
{
	# A killed process stays a zombie until its parent (init) reaps it.
	wait_for 200 "the killed daemon $1 did not go away in 20 s" _cairn_gone "$1"
	fusermount3 -u -z "$2" || fail "lazy unmount of the dead mount $2"
	wait_for 100 "the dead mount $2 did not go away in 10 s" _cairn_unmounted "$2"
}

daemon_pid()
{
	bounded 10 getfattr --absolute-names -n user.cairn.pid --only-values "$1" ||
		fail "$1: no daemon pid (not a cairn mount?)"
}

over_uring()
{
	grep -q "FUSE requests go over io_uring" "$(cache_of "$1")/mount.log"
}

cache_of()
{
	bounded 10 getfattr --absolute-names -n user.cairn.cachedir --only-values "$1" ||
		fail "$1: no cache directory (not a cairn mount?)"
}

# True while PID is a live (not zombie) process whose command line names MNT: never wait for
# or kill a process that merely reuses the pid of a daemon gone long ago.
_cairn_is_daemon()
{
	[ -r "/proc/$2/cmdline" ] && ! grep -q '^State:.*Z' "/proc/$2/status" 2>/dev/null &&
		tr '\0' '\n' <"/proc/$2/cmdline" 2>/dev/null | grep -qxF -- "$1"
}

# At exit: detach a mount still up and let its daemon end; never leave one running on $T.
_cairn_reap()
{
	if is_mounted "$1"; then
		fusermount3 -u -z "$1" 2>/dev/null || umount -l "$1" 2>/dev/null
	fi
	[ -n "$2" ] || return 0
	_cairn_i=0
	while _cairn_is_daemon "$1" "$2" && [ "$_cairn_i" -lt 300 ]; do
		sleep 0.1
		_cairn_i=$((_cairn_i + 1))
	done
	if _cairn_is_daemon "$1" "$2"; then
		echo "warning: the daemon of $1 (pid $2) did not end; killing it" >&2
		kill -9 "$2" 2>/dev/null
	fi
	return 0
}

cairn_mount()
{
	[ $# -ge 2 ] || {
		echo "ERROR: usage: cairn_mount REPO MNT [OPTION...]" >&2
		exit 99
	}
	_cairn_repo=$1
	_cairn_mnt=$2
	shift 2
	_cairn_opts="cachedir=$T/cache"
	for _cairn_o in "$@"; do
		_cairn_opts="$_cairn_opts,$_cairn_o"
	done
	mkdir -p "$_cairn_mnt"
	if ! bounded 60 env "${CAIRN_MOUNT_ENV[@]}" mount.cairn "$_cairn_repo" "$_cairn_mnt" \
		-o "$_cairn_opts"; then
		for _cairn_log in "$T"/cache/*/mount.log; do
			[ -f "$_cairn_log" ] && tail -n 20 "$_cairn_log" >&2
		done
		fail "mount.cairn $_cairn_repo $_cairn_mnt -o $_cairn_opts failed"
	fi
	_cairn_i=0
	until bounded 5 test -d "$_cairn_mnt/current"; do
		_cairn_i=$((_cairn_i + 1))
		[ "$_cairn_i" -lt 40 ] || fail "$_cairn_mnt/current did not show within 20 s"
		sleep 0.5
	done
	_cairn_pid=$(daemon_pid "$_cairn_mnt") || exit 1
	on_exit _cairn_reap "$_cairn_mnt" "$_cairn_pid"
	[ "${CAIRN_TEST_URING:-0}" = 1 ] || return 0
	# The daemon logs the first request it serves over a ring; daemon_pid made some.
	wait_for 20 "$_cairn_mnt: requests do not go over io_uring" over_uring "$_cairn_mnt"
}

cairn_umount()
{
	_cairn_cache=$(cache_of "$1") || exit 1
	_cairn_urc=0
	bounded "${CAIRN_UMOUNT_TIMEOUT:-300}" cairn umount "$1" || _cairn_urc=$?
	if [ "$_cairn_urc" != 0 ]; then
		echo "--- end of $_cairn_cache/mount.log:" >&2
		tail -n 30 "$_cairn_cache/mount.log" >&2
		echo "---" >&2
		fail "cairn umount $1: exit $_cairn_urc"
	fi
	! is_mounted "$1" || fail "$1 is still mounted after cairn umount"
	check_sanitizer_log "$_cairn_cache/mount.log"
}

# --- trees --------------------------------------------------------------------------------
tree_compare()
{
	bounded 600 rsync -aHAX --delete --modify-window=-1 --dry-run --itemize-changes -c \
		"$1/" "$2/" >"$T/compare" ||
		fail "rsync compare of $1 and $2 failed"
	if [ -s "$T/compare" ]; then
		echo "--- differences between $1 and $2:" >&2
		head -n 50 "$T/compare" >&2
		echo "---" >&2
		fail "$2 differs from $1 ($(wc -l <"$T/compare") lines)"
	fi
}

# prefixes_only SRC DIR MIN: every file under DIR, named as one in the flat directory SRC,
# must read back as a prefix of it (all of it, some of it, or nothing: never other bytes, which
# a later rsync would not notice under the same size and time), and at least MIN whole.
prefixes_only()
{
	declare -A _cairn_want
	while read -r _cairn_sum _cairn_name; do
		_cairn_want[$_cairn_name]=$_cairn_sum
	done < <(cd "$1" && md5sum -- *)
	(cd "$2" && find . -type f -exec md5sum -- {} +) >"$T/got" || fail "reading $2 back"
	_cairn_whole=0 _cairn_part=0 _cairn_empty=0
	while read -r _cairn_sum _cairn_path; do
		_cairn_f=$2/${_cairn_path#./}
		_cairn_w=$1/$(basename "$_cairn_path")
		if [ "$_cairn_sum" = "${_cairn_want[$(basename "$_cairn_path")]}" ]; then
			_cairn_whole=$((_cairn_whole + 1))
			continue
		fi
		_cairn_n=$(stat -c %s "$_cairn_f")
		[ "$_cairn_n" -le "$(stat -c %s "$_cairn_w")" ] ||
			fail "$_cairn_f: $_cairn_n bytes, more than written"
		cmp -s -n "$_cairn_n" "$_cairn_f" "$_cairn_w" ||
			fail "$_cairn_f: its $_cairn_n bytes are not what was written"
		if [ "$_cairn_n" = 0 ]; then
			_cairn_empty=$((_cairn_empty + 1))
		else
			_cairn_part=$((_cairn_part + 1))
		fi
	done <"$T/got"
	echo "read back: $_cairn_whole files whole, $_cairn_part cut short, $_cairn_empty empty"
	# Durable syncs happened during the writes, so files written before them must be there.
	[ "$_cairn_whole" -ge "$3" ] ||
		fail "only $_cairn_whole files came back whole: the test did not test"
}

copy_real_tree()
{
	mkdir -p "$1"
	# Whole files in find's order until the budget is spent; tar keeps the hard links and
	# symlinks among them. Names are taken verbatim (a name may begin with '-').
	find /usr/share/doc /usr/lib -xdev \( -type f -o -type l \) -printf '%s %p\n' 2>/dev/null |
		awk -v left=$(($2 * 1048576)) \
			'left <= 0 { exit } { left -= $1; sub(/^[0-9]+ \//, ""); print }' >"$T/copy-list"
	tar -C / --no-recursion --verbatim-files-from -cf - -T "$T/copy-list" |
		tar -C "$1" -xf - || fail "copying a real tree into $1 failed"
}
