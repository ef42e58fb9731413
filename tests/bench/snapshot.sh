#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# `make bench`, third part: snapshots. For trees of 10 000 and 100 000 small files (100 per
# directory, two levels), in one run: the time of `cairn snapshot` after 10 files changed
# (the ratio between the two sizes should stay near 1: a snapshot costs what changed, not
# the tree), and the time to list a whole snapshot with `find` (kernel caches cold: the
# snapshot is read through a fresh mount) against `find` over the same tree on local disk
# (page cache dropped when /proc/sys/vm/drop_caches is writable). Then browsing, each cold
# (fresh mount, caches dropped) against the same command on local disk: `ls -lR` of the
# snapshot, `cp -a` out of it to local disk, `diff -r` between the two snapshots (local: the
# tree and a copy with the same 10 changes). Timings are reported, never judged. Environment: top_builddir (default .), BENCH_DIR scratch directory (default a new
# one under /var/tmp, removed at the end), BENCH_SNAP_SIZES (default "10000 100000").
set -euo pipefail

top_builddir=${top_builddir:-$(pwd)}
export PATH=$top_builddir/tools:$PATH
export CAIRN_PASSPHRASE=bench CAIRN_KDF=interactive
sizes=${BENCH_SNAP_SIZES:-10000 100000}
work=${BENCH_DIR:-$(mktemp -d /var/tmp/cairn-snap-bench.XXXXXX)}
mkdir -p "$work"
mnt=$work/mnt

cleanup()
{
	mountpoint -q "$mnt" 2>/dev/null && cairn umount "$mnt" >/dev/null 2>&1
	mountpoint -q "$mnt" 2>/dev/null && fusermount3 -u "$mnt" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

secs()
{
	local t0 t1
	t0=$(date +%s.%N)
	"$@" >/dev/null
	t1=$(date +%s.%N)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
}

drop_caches()
{
	sync
	[ -w /proc/sys/vm/drop_caches ] && echo 3 >/proc/sys/vm/drop_caches || true
}

# make_tree DIR N: N files of 100-300 bytes, 100 per directory, 10 directories per top one.
make_tree()
{
	awk -v dir="$1" -v n="$2" 'BEGIN {
		for (i = 0; i < n; i++) {
			d = sprintf("%s/d%03d/e%02d", dir, int(i / 1000), int(i / 100) % 10)
			if (i % 100 == 0)
				system("mkdir -p " d)
			f = sprintf("%s/f%05d", d, i)
			printf "file %d %s\n", i, substr("abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz", 1, 100 + i % 200) > f
			close(f)
		}
	}'
}

# diff exits 1 when the trees differ, as they do here.
diff_r()
{
	diff -r "$1" "$2" >/dev/null || [ $? = 1 ]
}

# cold CMD...: remount (the daemon's caches go too), drop the kernel's caches, time CMD.
cold()
{
	cairn umount "$mnt"
	drop_caches
	mount.cairn "$repo" "$mnt" -o cachedir="$cache"
	secs "$@"
}

browse=()
printf '%-8s %14s %14s %12s %12s %7s\n' files "snapshot s" "1st snap s" "find cairn s" "find local s" ratio
for n in $sizes; do
	repo=$work/repo-$n
	cache=$work/cache-$n
	local_tree=$work/local-$n
	make_tree "$local_tree" "$n"
	cp -a "$local_tree" "$work/local2-$n"
	mkfs.cairn -q "$repo"
	mkdir -p "$mnt"
	mount.cairn "$repo" "$mnt" -o cachedir="$work/cache-$n"
	rsync -a "$local_tree/" "$mnt/current/"
	first=$(secs cairn snapshot "$mnt" base)
	for k in 1 2 3 4 5 6 7 8 9 10; do
		printf -v f '%s/current/d000/e%02d/f%05d' "$mnt" $((k % 10)) $((k % 10 * 100 + k))
		[ -f "$f" ] || {
			echo "no $f to change" >&2
			exit 1
		}
		echo "changed $k" >>"$f"
		echo "changed $k" >>"$work/local2-$n/${f#"$mnt/current/"}"
	done
	snap=$(secs cairn snapshot "$mnt" after-10-changes)
	cairn umount "$mnt"
	mount.cairn "$repo" "$mnt" -o cachedir="$work/cache-$n"
	find_cairn=$(secs find "$mnt/after-10-changes")
	drop_caches
	find_local=$(secs find "$local_tree")
	count=$(find "$mnt/after-10-changes" -type f | wc -l)
	[ "$count" = "$n" ] || {
		echo "snapshot lists $count files, expected $n" >&2
		exit 1
	}
	printf '%-8s %14.3f %14.3f %12.3f %12.3f %7.2f\n' "$n" "$snap" "$first" "$find_cairn" \
		"$find_local" "$(awk -v a="$find_cairn" -v b="$find_local" 'BEGIN { print a / b }')"

	s=$mnt/after-10-changes
	ls_c=$(cold ls -lR "$s")
	drop_caches
	ls_l=$(secs ls -lR "$work/local2-$n")
	cp_c=$(cold cp -a "$s" "$work/out-cairn")
	drop_caches
	cp_l=$(secs cp -a "$work/local2-$n" "$work/out-local")
	diff -r "$work/out-cairn" "$work/local2-$n" >/dev/null || {
		echo "cp -a out of the snapshot differs from the tree" >&2
		exit 1
	}
	diff_c=$(cold diff_r "$mnt/base" "$s")
	drop_caches
	diff_l=$(secs diff_r "$local_tree" "$work/local2-$n")
	cairn umount "$mnt"
	browse+=("$(printf '%-8s %9.3f %9.3f %6.2f %9.3f %9.3f %6.2f %9.3f %9.3f %6.2f' "$n" \
		"$ls_c" "$ls_l" "$(awk -v a="$ls_c" -v b="$ls_l" 'BEGIN { print a / b }')" \
		"$cp_c" "$cp_l" "$(awk -v a="$cp_c" -v b="$cp_l" 'BEGIN { print a / b }')" \
		"$diff_c" "$diff_l" "$(awk -v a="$diff_c" -v b="$diff_l" 'BEGIN { print a / b }')")")
	rm -rf "$local_tree" "$work/local2-$n" "$work/out-cairn" "$work/out-local" "$repo" "$cache"
done
echo "snapshot s: cairn snapshot after 10 files changed; 1st snap s: the first snapshot after"
echo "the rsync (includes storing the tree); find: listing the whole snapshot, fresh mount."
echo
printf '%-8s %9s %9s %6s %9s %9s %6s %9s %9s %6s\n' files "ls-lR c" "ls-lR l" ratio \
	"cp-a c" "cp-a l" ratio "diff-r c" "diff-r l" ratio
printf '%s\n' "${browse[@]}"
echo "c: out of / between snapshots through a fresh mount; l: the same on local disk."
