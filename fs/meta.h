/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The working tree's metadata, in SQLite (meta.db in the repository's cache directory):
 * inodes, directory entries, xattrs, file extents (which chunk holds which bytes), the dirty
 * ranges of files whose new data is staged locally, and which directories changed since the
 * last checkpoint.
 *
 * Durability: changes are batched in one open write transaction that is committed by
 * meta_sync() (called on fsync, at checkpoints, and every few hundred milliseconds by the
 * daemon). A crash loses at most what was not synced, like a local filesystem without fsync.
 * If SQLite rolls the batch back itself (disk full, I/O error), every later write and sync
 * fails with -EIO: what the batch held is lost as in a crash, and the caller, which acted
 * on it, must start again from the last sync (a remount).
 *
 * Schema, version 2 (a version 1 database gains inodes.stage when opened):
 *   meta(key TEXT PRIMARY KEY, value)        'version', 'repo-id', 'next-ino', 'base-commit'
 *   inodes(ino INTEGER PRIMARY KEY, mode, uid, gid, nlink, size, rdev,
 *          atime, mtime, ctime (ns since the epoch), target BLOB (symlinks),
 *          tree BLOB (directories: id of the last checkpointed tree, NULL when dirty),
 *          flags (unused, 0), stage (generation of the staging file, fs/data.c))
 *   dentries(id INTEGER PRIMARY KEY, parent, name BLOB, ino, UNIQUE(parent, name))
 *   xattrs(ino, name BLOB, value BLOB, PRIMARY KEY(ino, name))
 *   extents(ino, off, len, blob BLOB, PRIMARY KEY(ino, off))   whole chunks, no overlap
 *   dirty(ino, off, len, PRIMARY KEY(ino, off))                staged ranges, no overlap
 *
 * Inode 1 is the root of the working tree (current/). Inode numbers are never reused within
 * a repository (next-ino only grows), so they are stable across remounts and snapshots.
 *
 * Errors: -ENOENT, -EEXIST, -ENOTEMPTY, -ENOSPC (disk full), -ENOMEM, -EIO (other SQLite
 * failures, logged), -EBADMSG (not a cairn database, or corrupt); entry names must be
 * 1..META_NAME_MAX bytes without '/' (-EINVAL, -ENAMETOOLONG).
 * Thread safety: every call may come from any thread; calls are serialised inside.
 * Callbacks (fn) run without the lock, on rows read in small batches: they may call back
 * into meta, and rows changed during the walk may or may not be seen.
 */
#pragma once

#include "codec.h"
#include "keys.h"

#define META_ROOT_INO 1
#define META_NAME_MAX 255

struct meta;

struct meta_inode {
	uint64_t ino;
	uint32_t mode; /* type and permission bits, as st_mode */
	uint32_t uid, gid;
	uint32_t nlink;
	uint64_t size;
	uint64_t rdev;
	int64_t atime, mtime, ctime; /* ns since the epoch */
};

struct meta_extent {
	uint64_t off;
	uint32_t len;
	struct blob_id blob;
};

/* Open or create. A new database has a root directory (mode 0755, owned by root, times
 * now). -EXDEV if it belongs to another repository. */
int meta_open(const char *path, const uint8_t repo_id[REPO_ID_SIZE], struct meta **ret);
/* Whether SQLite rolled a batch back (see Durability above): what the caller holds in memory
 * may no longer match meta. */
bool meta_lost(struct meta *m);
/* fn(ud) runs under meta's lock just before each commit of a batch: what the batch names
 * outside meta (staged bytes) must be durable first. While it runs no statement can join the
 * batch. If it fails, the batch is never committed: it is rolled back as by SQLite (see
 * Durability above). */
void meta_set_precommit(struct meta *m, int (*fn)(void *ud), void *ud);
/* Something the batch names could not be made durable: roll the batch back as by SQLite
 * (see Durability above), logging why. */
void meta_abandon(struct meta *m, const char *why);
/* For tests: let the database grow by at most this many pages (PRAGMA max_page_count), so
 * that it fills up. */
int meta_test_limit_growth(struct meta *m, unsigned pages);
/* Sync and close. */
int meta_close(struct meta *m);
/* Close without committing the open batch, as a crash would. */
void meta_discard(struct meta *m);
/* Commit the open write transaction (durable once this returns). */
int meta_sync(struct meta *m);

/* Key/value settings in the meta table (e.g. "base-commit"). -ENOENT if unset; set refuses
 * the keys meta maintains itself ('version', 'repo-id', 'next-ino') with -EINVAL. */
int meta_get_u64(struct meta *m, const char *key, uint64_t *ret);
int meta_set_u64(struct meta *m, const char *key, uint64_t value);

/* Inodes. create assigns a fresh number (ret ino) from i (i->ino ignored). */
int meta_inode_get(struct meta *m, uint64_t ino, struct meta_inode *ret);
int meta_inode_create(struct meta *m, const struct meta_inode *i, uint64_t *ret_ino);
/* Insert with a given number (restore from a checkpoint); next-ino is raised past it. */
int meta_inode_insert(struct meta *m, const struct meta_inode *i);
/* Every column but size: the size belongs to the file's data path, which changes it under
 * the file's own lock (set_size, extend), while a stale copy may be written back here. */
int meta_inode_update(struct meta *m, const struct meta_inode *i);
int meta_inode_set_size(struct meta *m, uint64_t ino, uint64_t size);
/* After a write ending at end: raise size to end if smaller and, when mtime is not 0, set
 * mtime and ctime to it. Touches no other column, so it cannot undo a concurrent change of
 * links or mode made from a stale copy of the row. */
int meta_inode_extend(struct meta *m, uint64_t ino, uint64_t end, int64_t mtime);
/* Delete an inode and its xattrs, extents and dirty ranges. */
int meta_inode_delete(struct meta *m, uint64_t ino);
/* Symlink target (malloc'd, NUL-terminated). get: -EINVAL if ino has none. */
int meta_symlink_set(struct meta *m, uint64_t ino, const char *target);
int meta_symlink_get(struct meta *m, uint64_t ino, char **ret);

/* Directory entries. */
int meta_lookup(struct meta *m, uint64_t parent, const char *name, uint64_t *ret_ino);
/* meta_lookup and meta_inode_get of what it finds, in one statement. -ENOENT if none. */
int meta_lookup_inode(struct meta *m, uint64_t parent, const char *name, struct meta_inode *ret);
int meta_link(struct meta *m, uint64_t parent, const char *name, uint64_t ino); /* -EEXIST */
int meta_unlink(struct meta *m, uint64_t parent, const char *name);		/* -ENOENT */
/* Point an existing entry at another inode (rename over an existing name). */
int meta_relink(struct meta *m, uint64_t parent, const char *name, uint64_t ino);
/* Move an entry (rename); the destination must not exist. */
int meta_move(struct meta *m, uint64_t parent, const char *name, uint64_t new_parent,
	      const char *new_name);
/* >0 if the directory has entries, 0 if empty. */
int meta_dir_has_entries(struct meta *m, uint64_t dir);
/*
 * List entries after cookie (0: from the start) in a stable order; fn gets the entry's
 * cookie (>0, to resume after it), name and inode; a return >0 from fn stops without error
 * (the reply buffer is full), <0 stops and is returned.
 */
int meta_readdir(struct meta *m, uint64_t dir, uint64_t cookie,
		 int (*fn)(uint64_t cookie, const char *name, uint64_t ino, void *ud), void *ud);
/* Every directory holding an entry for ino (hard links: several). fn as above. */
int meta_parents(struct meta *m, uint64_t ino, int (*fn)(uint64_t parent, void *ud), void *ud);

/* Extended attributes. get: -ENODATA if absent; the value is malloc'd. */
int meta_xattr_get(struct meta *m, uint64_t ino, const char *name, void **ret, size_t *ret_len);
/* flags: XATTR_CREATE (-EEXIST if present), XATTR_REPLACE (-ENODATA if absent), or 0. */
int meta_xattr_set(struct meta *m, uint64_t ino, const char *name, const void *value, size_t len,
		   int flags);
int meta_xattr_remove(struct meta *m, uint64_t ino, const char *name); /* -ENODATA */
/* Names, each NUL-terminated, appended to ret (the listxattr format). */
int meta_xattr_list(struct meta *m, uint64_t ino, struct buf *ret);

/* Extents overlapping [off, off+len), in order. fn's return as in meta_readdir. */
int meta_extents(struct meta *m, uint64_t ino, uint64_t off, uint64_t len,
		 int (*fn)(const struct meta_extent *e, void *ud), void *ud);
/* Replace every extent that starts in [off, off+len) by the given ones (which must lie in
 * that range, sorted, not overlapping). */
int meta_extents_replace(struct meta *m, uint64_t ino, uint64_t off, uint64_t len,
			 const struct meta_extent *e, size_t n);

/* Dirty (staged) ranges: add merges with neighbours; clear removes [off, off+len). */
int meta_dirty_add(struct meta *m, uint64_t ino, uint64_t off, uint64_t len);
int meta_dirty_clear(struct meta *m, uint64_t ino, uint64_t off, uint64_t len);
int meta_dirty_ranges(struct meta *m, uint64_t ino, int (*fn)(uint64_t off, uint64_t len, void *ud),
		      void *ud);
/* Cut a file to size in one step, all or nothing: its extents from cut on go (cut is where
 * the chunk holding size starts, or size), its dirty ranges past size go, [cut, cut + keep)
 * becomes dirty (the staged prefix of a chunk cut in two), and, when stage is not 0, its
 * staging generation becomes stage. -ENOENT if there is no such inode. */
int meta_truncate(struct meta *m, uint64_t ino, uint64_t size, uint64_t cut, uint64_t keep,
		  uint64_t stage);
/* The generation of ino's staging file (data.c names the file by it); -ENOENT. */
int meta_stage_get(struct meta *m, uint64_t ino, uint64_t *ret);
int meta_stage_set(struct meta *m, uint64_t ino, uint64_t stage);
/* Every inode with dirty ranges (after a crash: files to flush). */
int meta_dirty_inodes(struct meta *m, int (*fn)(uint64_t ino, void *ud), void *ud);
/* Every inode with no links left: unlinked while open, then the daemon stopped (a crash).
 * Nothing references them any more after a restart; they are to be deleted. */
int meta_orphans(struct meta *m, int (*fn)(uint64_t ino, void *ud), void *ud);

/* Checkpoint bookkeeping for directories: the tree id of the last checkpoint, cleared
 * (dirty) whenever the directory or anything below it changes. get: -ENOENT when dirty. */
int meta_tree_get(struct meta *m, uint64_t dir, struct blob_id *ret);
int meta_tree_set(struct meta *m, uint64_t dir, const struct blob_id *id);
/* Mark dir and every ancestor up to the root dirty (stops early at an already dirty one).
 * Touching the same directory again before any tree is set runs no statement. */
int meta_tree_invalidate(struct meta *m, uint64_t dir);
/* meta_tree_invalidate on every directory holding ino; again, as cheap. A new parent of ino
 * (link, rename) must be invalidated by the operation that made it one. */
int meta_touch_parents(struct meta *m, uint64_t ino);

/* For statfs: number of inodes and the sum of file sizes. */
int meta_usage(struct meta *m, uint64_t *ret_inodes, uint64_t *ret_bytes);
