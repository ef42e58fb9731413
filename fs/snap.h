/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Snapshots in the mount root: the read-only view of the trees a commit names beside
 * current/ (fs module internal, used by fsops.c and checkpoint.c).
 *
 * Node ids: a snapshot gets a slot for the life of the mount (kept across renames, so a
 * rotation does not change the nodes the kernel knows), and an inode `ino` of its tree is
 * node SNAP_NODE_BIT | slot << SNAP_SLOT_SHIFT | ino. The snapshot's top directory is its
 * root tree's own inode (number 1, as current/). Inode numbers, link counts and attributes
 * are the tree's, so hard links within a snapshot share one node; the top directory's mtime
 * is the snapshot's time.
 *
 * Trees are read on demand and kept decoded in a small LRU; every entry seen is indexed by
 * its inode number (slot, ino -> tree, index), so a node the kernel names resolves without a
 * path. The index only grows while mounted (about 60 bytes per entry browsed). The kernel's
 * lookup counts are not needed: nothing of a snapshot is ever deleted while mounted.
 *
 * Every function returns 0 or -errno; changes are refused by the callers with -EROFS.
 * Thread safety: all functions may be called from many threads (one mutex inside).
 */
#pragma once

#include "commit.h"
#include "fsops.h"
#include "meta.h"

#define SNAP_NODE_BIT (1ull << 62)
#define SNAP_SLOT_SHIFT 40
#define SNAP_INO_MAX ((1ull << SNAP_SLOT_SHIFT) - 1)

struct snaps;

static inline bool snap_is_node(uint64_t node)
{
	return (node & SNAP_NODE_BIT) != 0;
}

int snaps_new(struct store *s, struct snaps **ret);
void snaps_free(struct snaps *sn);
/* Take the snapshot list of commit c (at mount, after every commit that changes it). */
int snaps_update(struct snaps *sn, const struct commit *c);

/* The mount root's part: the number of snapshots, a lookup by name, and entry k of the
 * listing (0-based, in commit order; -ENOENT past the end). */
size_t snaps_count(struct snaps *sn);
/* Append one line per snapshot, in order: name TAB time (ns since the epoch) TAB host. */
int snaps_list(struct snaps *sn, struct buf *ret);
int snaps_root_lookup(struct snaps *sn, const char *name, struct fs_entry *ret);
int snaps_root_entry(struct snaps *sn, size_t k, char **ret_name, struct fs_entry *ret);

int snaps_getattr(struct snaps *sn, uint64_t node, struct stat *ret);
int snaps_lookup(struct snaps *sn, uint64_t parent, const char *name, struct fs_entry *ret);
int snaps_readdir(struct snaps *sn, uint64_t node, uint64_t cookie,
		  int (*fn)(uint64_t cookie, const char *name, const struct fs_entry *e, void *ud),
		  void *ud);
int snaps_readlink(struct snaps *sn, uint64_t node, char **ret);
/* A regular file's size and extents (malloc'd), for fs_data_read_extents. */
int snaps_extents(struct snaps *sn, uint64_t node, uint64_t *ret_size, struct meta_extent **ret,
		  size_t *ret_n);
ssize_t snaps_getxattr(struct snaps *sn, uint64_t node, const char *name, void *buf, size_t size);
ssize_t snaps_listxattr(struct snaps *sn, uint64_t node, char *buf, size_t size);
