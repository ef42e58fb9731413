#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A stale local cache is never trusted over the repository (DESIGN.md, "Local state"; see
# open_meta() in fs/checkpoint.c): a meta.db older than the repository's latest commit is set
# aside as meta.db.stale (byte for byte the old file) and the working tree is rebuilt from
# that commit, with one warning in mount.log. The cases:
#   - a cache dir restored from a copy taken at commit N while the repository is at N+1
#     (files changed in place, appended to, added, deleted, renamed, a directory removed,
#     modes and xattrs changed): the tree shows N+1, not N, and works on normally after;
#   - the complement: a remount with its own up-to-date cache, and one with no cache at all,
#     set nothing aside and keep (or rebuild) the right tree;
#   - a cache left dirty by a daemon killed after commit N, while a mount with another cache
#     directory committed N+1 on top of N: that N+1 is someone else's, so the dirty local
#     tree is stale too and N+1's changes must show (not vanish at the next commit). A's
#     uncommitted change is then only in meta.db.stale: one of the two histories has to be
#     set aside, and the rule says it is the local one, never a commit.
# Every tree is compared byte- and metadata-exact with a plain directory changed the same way.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

require_fuse
require_cmd rsync getfattr setfattr cmp

export CAIRN_PASSPHRASE="integration test passphrase"
repo=$T/repo
mnt=$T/mnt
want=$T/want
mkdir -p "$mnt"

# The repository's latest commit number, as cairn info says it.
head_seq()
{
	bounded 60 cairn info --cache-dir "$T/info-cache" "$repo" |
		awk '$1 == "commit" { print $2 }'
}
# Lines mount.log gained since log_mark: the daemon's story of the last mount.
log_mark()
{
	if [ -f "$cache/mount.log" ]; then
		log_at=$(wc -l <"$cache/mount.log")
	else
		log_at=0
	fi
}
log_new()
{
	tail -n "+$((log_at + 1))" "$cache/mount.log"
}
# current/ must equal the plain directory $want, byte for byte and in metadata.
sync_times()
{
	# Same changes in both trees, different times: take want's, then nothing may differ.
	bounded 600 rsync -aHAX --modify-window=-1 --delete "$want/" "$mnt/current/" ||
		fail "rsync $want into current/"
}

# --- commit N: a tree of files of several sizes, a symlink, a hard link, xattrs -----------
mkdir -p "$want/dir/sub" "$want/gone-dir/deeper"
head -c 3M /dev/urandom >"$want/big"
head -c 200k /dev/urandom >"$want/dir/medium"
head -c 1M /dev/urandom >"$want/dir/appended"
echo "unchanged throughout" >"$want/dir/sub/unchanged"
echo "to be deleted" >"$want/deleted"
echo "to be renamed" >"$want/dir/old-name"
echo "in a directory that goes" >"$want/gone-dir/deeper/file"
: >"$want/empty"
ln -s dir/sub/unchanged "$want/link"
ln "$want/dir/sub/unchanged" "$want/hardlink"
setfattr -n user.state -v N "$want/dir/medium"
chmod 0640 "$want/dir/medium"

mkfs.cairn -q "$repo" || fail "mkfs.cairn"
cairn_mount "$repo" "$mnt"
cache=$(cache_of "$mnt")
case $cache in
"$T/cache/"*) ;;
*) fail "the cache directory $cache is not under $T/cache" ;;
esac
sync_times
tree_compare "$want" "$mnt/current"
cairn_umount "$mnt"
seq_n=$(head_seq)
case $seq_n in
'' | *[!0-9]*) fail "no commit after the first unmount (cairn info: '$seq_n')" ;;
esac
[ -f "$cache/meta.db" ] || fail "no $cache/meta.db after an unmount"
cp -a "$T/cache" "$T/cache-at-N" || fail "copying the cache aside"
cp -a "$want" "$T/want-at-N"

# --- the complement: a remount with its own up-to-date cache sets nothing aside ----------
log_mark
cairn_mount "$repo" "$mnt"
[ ! -e "$cache/meta.db.stale" ] || fail "an up-to-date meta.db was set aside"
if log_new | grep -E "older than commit|rebuilding" >&2; then
	fail "a remount with an up-to-date cache rebuilt the working tree"
fi
tree_compare "$want" "$mnt/current"

# --- commit N+1: change everything that can change ------------------------------------------
head -c 70000 /dev/urandom >"$T/patch"
head -c 300000 /dev/urandom >"$T/tail"
head -c 2M /dev/urandom >"$T/new-big"
for t in "$want" "$mnt/current"; do
	dd if="$T/patch" of="$t/big" bs=1000 seek=1500 conv=notrunc status=none ||
		fail "in-place write into $t/big"
	cat "$T/tail" >>"$t/dir/appended" || fail "append to $t/dir/appended"
	rm "$t/deleted" || fail "rm $t/deleted"
	rm -r "$t/gone-dir" || fail "rm -r $t/gone-dir"
	mv "$t/dir/old-name" "$t/dir/sub/new-name" || fail "mv in $t"
	cp "$T/new-big" "$t/new-big" || fail "cp into $t"
	echo "new at N+1" >"$t/dir/new-small"
	mkdir "$t/new-dir" || fail "mkdir $t/new-dir"
	ln -s ../big "$t/new-dir/link-to-big"
	setfattr -n user.state -v N+1 "$t/dir/medium" || fail "setfattr in $t"
	chmod 0600 "$t/dir/medium" || fail "chmod in $t"
	truncate -s 100k "$t/dir/medium" || fail "truncate in $t"
	rm "$t/hardlink" || fail "rm $t/hardlink"
done
sync_times
tree_compare "$want" "$mnt/current"
cairn_umount "$mnt"
seq_n1=$(head_seq)
[ "$seq_n1" = $((seq_n + 1)) ] || fail "the second unmount made commit $seq_n1, not $((seq_n + 1))"

# --- the stale cache: restore the copy taken at N, mount at N+1 ----------------------------
rm -rf "$T/cache"
cp -a "$T/cache-at-N" "$T/cache" || fail "restoring the cache copy"
log_mark
cairn_mount "$repo" "$mnt"
[ "$(cache_of "$mnt")" = "$cache" ] || fail "the restored cache is not the one in use"
log_new >"$T/log"
grep -Fq "$cache/meta.db is older than commit $seq_n1; rebuilding the working tree" "$T/log" || {
	cat "$T/log" >&2
	fail "no warning that the stale meta.db (base $seq_n, head $seq_n1) is set aside"
}
[ "$(grep -c "older than commit" "$T/log")" = 1 ] || fail "more than one stale warning"
[ -f "$cache/meta.db.stale" ] || fail "no meta.db.stale beside meta.db"
cmp "$T/cache-at-N/${cache##*/}/meta.db" "$cache/meta.db.stale" ||
	fail "meta.db.stale is not the old meta.db as it was"
[ -f "$cache/meta.db" ] || fail "no new meta.db"
! cmp -s "$cache/meta.db" "$cache/meta.db.stale" || fail "meta.db is still the stale one"
tree_compare "$want" "$mnt/current"
# Not a tree that merely looks new: the old contents are nowhere.
if [ -e "$mnt/current/deleted" ] || [ -e "$mnt/current/gone-dir" ]; then
	fail "current/ still holds files deleted at N+1"
fi
! cmp -s "$T/want-at-N/big" "$mnt/current/big" || fail "current/big has its N contents"

# The rebuilt tree works on normally: a change, a remount with this cache (nothing set aside
# now), a remount with no cache at all (rebuilt, nothing set aside either).
echo "written after the rebuild" >"$want/after-rebuild"
echo "written after the rebuild" >"$mnt/current/after-rebuild"
sync_times
cairn_umount "$mnt"
[ "$(head_seq)" = $((seq_n1 + 1)) ] || fail "no commit after the rebuilt mount"
rm "$cache/meta.db.stale"
log_mark
cairn_mount "$repo" "$mnt"
[ ! -e "$cache/meta.db.stale" ] || fail "the rebuilt, up-to-date meta.db was set aside"
if log_new | grep -E "older than commit|rebuilding" >&2; then
	fail "a remount after the rebuild rebuilt again"
fi
tree_compare "$want" "$mnt/current"
cairn_umount "$mnt"

rm -rf "$T/cache"
log_mark
cairn_mount "$repo" "$mnt"
[ ! -e "$cache/meta.db.stale" ] || fail "a mount with no cache set something aside"
log_new >"$T/log"
if grep "older than commit" "$T/log" >&2; then
	fail "a mount with no meta.db called it stale"
fi
grep -q "rebuilding the working tree from commit $((seq_n1 + 1))" "$T/log" ||
	fail "a mount with no meta.db did not say it rebuilt from the latest commit"
tree_compare "$want" "$mnt/current"

# --- a dirty cache left by a crash, with another writer's commit on top of its base --------
# Cache A (this one) commits, then holds a change fsynced but not committed when its
# daemon is killed. A mount with cache B commits on top of A's last commit. A's meta.db is
# then older than the latest commit, which A did not write: it must be set aside, and B's
# change must show.
bounded 120 cairn checkpoint "$mnt" || fail "cairn checkpoint"
seq_a=$(head_seq)
printf 'fsynced in cache A, never committed\n' |
	dd of="$mnt/current/dirty-in-a" conv=fsync status=none || fail "fsynced write in A"
sleep 3 # past the daemon's periodic sync (2 s): the dirty tree is in A's meta.db
pid=$(daemon_pid "$mnt")
kill -9 "$pid"
detach_killed "$pid" "$mnt"
[ "$(head_seq)" = "$seq_a" ] || fail "a commit after the last checkpoint before the kill"

cairn_mount "$repo" "$mnt" "cachedir=$T/cache-b"
[ ! -e "$mnt/current/dirty-in-a" ] || fail "cache B shows A's uncommitted file"
tree_compare "$want" "$mnt/current"
echo "committed through cache B" >"$want/from-b"
echo "committed through cache B" >"$mnt/current/from-b"
rm "$want/dir/new-small" "$mnt/current/dir/new-small"
sync_times
cairn_umount "$mnt"
seq_b=$(head_seq)
[ "$seq_b" = $((seq_a + 1)) ] || fail "cache B's unmount made commit $seq_b, not $((seq_a + 1))"

log_mark
cairn_mount "$repo" "$mnt"
log_new >"$T/log"
if ! grep -Fq "$cache/meta.db is older than commit $seq_b; rebuilding the working tree" \
	"$T/log" || [ ! -f "$cache/meta.db.stale" ] ||
	[ ! -e "$mnt/current/from-b" ]; then
	cat "$T/log" >&2
	ls -l "$mnt/current" >&2
	fail "cache A's dirty meta.db (base $seq_a) was kept over commit $seq_b of another" \
		"cache: commit $seq_b's changes are gone from current/"
fi
tree_compare "$want" "$mnt/current"
cairn_umount "$mnt"

# Whatever the mounts did, the repository's latest commit is what current/ showed.
rm -rf "$T/cache"
cairn_mount "$repo" "$mnt"
tree_compare "$want" "$mnt/current"
cairn_umount "$mnt"
exit 0
