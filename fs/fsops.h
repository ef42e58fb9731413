/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Filesystem semantics on inode numbers, free of FUSE so they can be unit-tested without a
 * mount. fuse_ops.c decodes requests, calls these, and sends exactly one reply.
 *
 * Node ids: the mount root is FSOPS_ROOT (1) and holds "current" (the writable working
 * tree) and the snapshots (read-only, fs/snap.h: their nodes have bit 62 set). A
 * working-tree inode `ino` (fs/meta.h) has node id ino + 1, so current/ itself is node 2;
 * st_ino is the node id, unique in the mount.
 *
 * Data: writes go to a staging file per inode in the cache directory and are recorded as
 * dirty ranges; reads merge staged bytes, stored chunks and holes. A flush turns dirty
 * ranges into chunks (content-defined, re-chunking only around the change), stores them,
 * and updates the extents. Checkpoints flush everything and commit the tree.
 *
 * Lifetime: an inode row dies when its link count, kernel lookup count and open handles are
 * all zero (fsops_forget, fsops_release).
 *
 * Every function returns 0 or -errno (the FUSE edge flips the sign).
 * Thread safety: all functions may be called from many threads at once.
 */
#pragma once

#include <sys/stat.h>
#include <sys/statvfs.h>

#include "store.h"

#define FSOPS_ROOT 1
#define FSOPS_CURRENT 2

struct fs;

struct fs_options {
	unsigned checkpoint_interval; /* seconds; 0: 300 */
	unsigned flush_threads;	      /* 0: number of cores */
	uint64_t staging_limit;	      /* bytes of staged data before writers wait; 0: 1 GiB */
	uint64_t read_cache_bytes;    /* in-memory cache of decoded chunks; 0: 64 MiB */
	double flush_delay;	      /* seconds after the last close; 0: 1.0 */
};

/*
 * Open the working tree of an opened store: its metadata in <cache>/meta.db, staged data in
 * <cache>/staging/. A missing or stale meta.db is rebuilt from the latest commit. Starts the
 * flush and checkpoint threads. Returns 0 or -errno (logged). Does not take ownership of s.
 */
int fs_open(struct store *s, const struct fs_options *o, struct fs **ret);
/* Flush everything, write a final checkpoint, stop the threads, close the metadata. A
 * negative return means the last checkpoint failed; staged data stays in the cache for the
 * next mount. */
int fs_close(struct fs *fs);
/* The kernel keeps written files' mtime/ctime itself (FUSE writeback cache). */
void fs_set_kernel_times(struct fs *fs, bool on);
/* Flush all dirty files and commit the working tree now (if anything changed). */
int fs_checkpoint(struct fs *fs);
/* Checkpoint and record the working tree as snapshot name, in one commit. -EINVAL for a
 * name snapshot_name_check refuses, -EEXIST when the name is taken. */
int fs_snapshot(struct fs *fs, const char *name);
/* rsnapshot's rotation in one commit (store/rotate.h, snapshot_rotate): lower NULL freezes
 * current/ as INTERVAL.0, else LOWER.(lower_keep-1) is promoted. -ENOENT: nothing to
 * promote; on any error nothing is shifted. */
int fs_rotate(struct fs *fs, const char *interval, unsigned keep, const char *lower,
	      unsigned lower_keep);
/* Drop the snapshots named in names ('\n'-separated lines NAME or NAME TAB TIME_NS), all in
 * one commit or none: -ENOENT if one is missing, -ESTALE if one's time differs (renamed by a
 * rotation since the caller looked), -EPERM if none would be left. Their blobs stay until
 * expire. */
int fs_forget(struct fs *fs, const char *names);

/*
 * Names of the mount root (the snapshots) change meaning: a rotation makes hourly.0 another
 * snapshot. The kernel may keep such a name FSOPS_ROOT_NAME_TIMEOUT seconds, so browsing a
 * snapshot does not cost a lookup of its name per path walk. No reply naming the old
 * meaning is in flight after a commit changed the list: the front end brackets each lookup
 * and listing of the mount root, from reading the list to replying, with
 * fsops_root_names_begin/end, and the commit waits them out. getxattr user.cairn.settled on
 * the mount root then returns only once FSOPS_ROOT_SETTLE_NS have passed since the last such
 * change, the timeout with a margin for a requester slow to take our reply: the tools call
 * it before they exit, so once `cairn rotate` returns, every name means its new snapshot.
 * (Telling the kernel to forget the names instead, notify_inval_entry, takes the root's
 * lock: a daemon killed while a request held it would hang in the kernel for good.)
 */
#define FSOPS_ROOT_NAME_TIMEOUT 1.0
#define FSOPS_ROOT_SETTLE_NS (1500 * 1000000ll)
void fsops_root_names_begin(struct fs *fs);
void fsops_root_names_end(struct fs *fs);

struct fs_entry {
	uint64_t node;
	struct stat attr;
};

int fsops_lookup(struct fs *fs, uint64_t parent, const char *name, struct fs_entry *ret);
/* The kernel took a reference without a lookup (an entry of readdirplus). */
void fsops_ref(struct fs *fs, uint64_t node);
void fsops_forget(struct fs *fs, uint64_t node, uint64_t nlookup);
int fsops_getattr(struct fs *fs, uint64_t node, struct stat *ret);
/* to_set: FUSE_SET_ATTR_* style bits (FSOPS_SET_*). */
#define FSOPS_SET_MODE (1 << 0)
#define FSOPS_SET_UID (1 << 1)
#define FSOPS_SET_GID (1 << 2)
#define FSOPS_SET_SIZE (1 << 3)
#define FSOPS_SET_ATIME (1 << 4)
#define FSOPS_SET_MTIME (1 << 5)
#define FSOPS_SET_ATIME_NOW (1 << 7)
#define FSOPS_SET_MTIME_NOW (1 << 8)
#define FSOPS_SET_CTIME (1 << 10)
int fsops_setattr(struct fs *fs, uint64_t node, const struct stat *attr, int to_set,
		  struct stat *ret);
int fsops_readlink(struct fs *fs, uint64_t node, char **ret);
/* mknod (regular files, fifos, sockets, devices), mkdir, symlink, link. uid/gid: the
 * caller's. umask: the caller's, applied here unless the directory has a default ACL (which
 * then gives the new inode its ACL and mode instead, as POSIX says). */
int fsops_mknod(struct fs *fs, uint64_t parent, const char *name, mode_t mode, dev_t rdev,
		uid_t uid, gid_t gid, mode_t umask, struct fs_entry *ret);
int fsops_mkdir(struct fs *fs, uint64_t parent, const char *name, mode_t mode, uid_t uid, gid_t gid,
		mode_t umask, struct fs_entry *ret);
int fsops_symlink(struct fs *fs, uint64_t parent, const char *name, const char *target, uid_t uid,
		  gid_t gid, struct fs_entry *ret);
int fsops_link(struct fs *fs, uint64_t node, uint64_t new_parent, const char *new_name,
	       struct fs_entry *ret);
int fsops_unlink(struct fs *fs, uint64_t parent, const char *name);
int fsops_rmdir(struct fs *fs, uint64_t parent, const char *name);
/* flags: RENAME_NOREPLACE, RENAME_EXCHANGE. */
int fsops_rename(struct fs *fs, uint64_t parent, const char *name, uint64_t new_parent,
		 const char *new_name, unsigned flags);

/* Open handles: open/create count the handle; release drops it. */
int fsops_open(struct fs *fs, uint64_t node, int flags);
int fsops_create(struct fs *fs, uint64_t parent, const char *name, mode_t mode, uid_t uid,
		 gid_t gid, mode_t umask, int flags, struct fs_entry *ret);
int fsops_release(struct fs *fs, uint64_t node);
/* Read up to len bytes at off into buf; returns the number of bytes (short at EOF). */
ssize_t fsops_read(struct fs *fs, uint64_t node, void *buf, size_t len, uint64_t off);
ssize_t fsops_write(struct fs *fs, uint64_t node, const void *buf, size_t len, uint64_t off);
/* Durable in the local cache (staging fsynced, metadata synced). */
int fsops_fsync(struct fs *fs, uint64_t node, bool datasync);
int fsops_fallocate(struct fs *fs, uint64_t node, int mode, uint64_t off, uint64_t len);

/* readdir: fn gets each entry with the cookie to resume after it; a return >0 stops. */
int fsops_readdir(struct fs *fs, uint64_t node, uint64_t cookie,
		  int (*fn)(uint64_t cookie, const char *name, const struct fs_entry *e, void *ud),
		  void *ud);
int fsops_statfs(struct fs *fs, struct statvfs *ret);

int fsops_setxattr(struct fs *fs, uint64_t node, const char *name, const void *value, size_t len,
		   int flags);
/* Returns the value's length; copies it when size >= length (size 0: just the length). */
ssize_t fsops_getxattr(struct fs *fs, uint64_t node, const char *name, void *buf, size_t size);
ssize_t fsops_listxattr(struct fs *fs, uint64_t node, char *buf, size_t size);
int fsops_removexattr(struct fs *fs, uint64_t node, const char *name);
