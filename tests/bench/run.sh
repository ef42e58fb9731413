#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# `make bench`: the store ingest benchmark. Pushes a real tree (default: the first 1.5 GiB of
# /usr/lib) through chunk, hash, compress, encrypt, pack and write into a local repository,
# with one thread and with every core, then re-ingests it, and reports each next to the raw
# speed of reading the same files (cat > /dev/null) measured in the same run. Timings are
# reported, never judged: the machine is shared and noisy.
#
# Environment: BENCH_TREE (default /usr/lib), BENCH_LIMIT bytes (default 1610612736),
# BENCH_DIR scratch directory (default a new one under /var/tmp, removed at the end).
set -euo pipefail

top_builddir=${top_builddir:-$(pwd)}
ingest=$top_builddir/tests/bench/bench-ingest
mkfs=$top_builddir/tools/mkfs.cairn
tree=${BENCH_TREE:-/usr/lib}
limit=${BENCH_LIMIT:-1610612736}
cores=$(nproc)
export CAIRN_PASSPHRASE=bench CAIRN_KDF=interactive

if [ -n "${BENCH_DIR:-}" ]; then
	work=$BENCH_DIR
	mkdir -p "$work"
else
	work=$(mktemp -d /var/tmp/cairn-bench.XXXXXX)
	trap 'rm -rf --one-file-system "$work"' EXIT
fi

field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2"; }

echo "cairn store ingest benchmark: $tree (up to $limit bytes), $cores cores, scratch $work"
"$ingest" --list-out "$work/files" --limit "$limit" "$tree" >"$work/list.out"
files=$(field files "$(cat "$work/list.out")")
bytes=$(field bytes "$(cat "$work/list.out")")
echo "input: $files files, $bytes bytes"

# Warm the page cache so every run below reads from memory alike.
xargs -0 cat <"$work/files" >/dev/null 2>&1 || true

t0=$(date +%s.%N)
xargs -0 cat <"$work/files" >/dev/null 2>&1 || true
t1=$(date +%s.%N)
cat_mbps=$(awk -v b="$bytes" -v a="$t0" -v z="$t1" 'BEGIN { printf "%.1f", b / 1e6 / (z - a) }')

read_1=$("$ingest" --read --list "$work/files" --threads 1)
read_n=$("$ingest" --read --list "$work/files" --threads "$cores")

"$mkfs" -q "$work/repo1"
one=$("$ingest" --repo "$work/repo1" --cache "$work/cache1" --list "$work/files" --threads 1)
rm -rf --one-file-system "$work/repo1" "$work/cache1"

"$mkfs" -q "$work/repoN"
all=$("$ingest" --repo "$work/repoN" --cache "$work/cacheN" --list "$work/files" \
	--threads "$cores")
again=$("$ingest" --repo "$work/repoN" --cache "$work/cacheN" --list "$work/files" \
	--threads "$cores")
repo_bytes=$(du -sb "$work/repoN" | cut -f1)

new=$(field new_bytes "$all")
sealed=$(field sealed_bytes "$all")
putb=$(field bytes "$all")
awk -v cat="$cat_mbps" -v r1="$(field mbps "$read_1")" -v rn="$(field mbps "$read_n")" \
	-v one="$(field mbps "$one")" -v all="$(field mbps "$all")" \
	-v again="$(field mbps "$again")" -v new="$new" -v sealed="$sealed" -v input="$putb" \
	-v new2="$(field new_bytes "$again")" -v repo="$repo_bytes" -v cores="$cores" '
BEGIN {
	printf "\n%-44s %10s %8s\n", "measurement", "MB/s", "vs cat"
	printf "%-44s %10.1f %8s\n", "cat > /dev/null (baseline, warm cache)", cat, "1.00"
	printf "%-44s %10.1f %8.2f\n", "read only, 1 thread", r1, r1 / cat
	printf "%-44s %10.1f %8.2f\n", "read only, " cores " threads", rn, rn / cat
	printf "%-44s %10.1f %8.2f\n", "ingest, 1 thread", one, one / cat
	printf "%-44s %10.1f %8.2f\n", "ingest, " cores " threads", all, all / cat
	printf "%-44s %10.1f %8.2f\n", "re-ingest unchanged, " cores " threads", again, again / cat
	printf "\ndedup ratio (input / unique):      %.3f\n", input / new
	printf "compression ratio (unique / sealed): %.3f\n", new / sealed
	printf "repository size on disk:           %d bytes (%.1f%% of input)\n", repo, 100 * repo / input
	printf "new bytes on re-ingest:            %d (%.4f%% of input)\n", new2, 100 * new2 / input
}'
