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
 * Trees are read on demand and kept decoded in an LRU bounded in count and bytes; every
 * node the kernel holds a reference to (a lookup, an entry of readdirplus) is indexed by its
 * inode number (slot, ino -> tree, index), so it resolves without a path. The kernel's
 * lookup counts are kept (snaps_ref, snaps_forget), and a record goes when the kernel forgets
 * its node: memory follows the kernel's inode cache, not the size of what was browsed.
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
/* Lines per page of the list (user.cairn.snapshots.K): 100 of at most 534 bytes fit the
 * kernel's 64 KiB limit on an attribute's value. */
#define SNAPS_PER_PAGE 100

struct snaps;

static inline bool snap_is_node(uint64_t node)
{
	return (node & SNAP_NODE_BIT) != 0;
}

int snaps_new(struct store *s, struct snaps **ret);
void snaps_free(struct snaps *sn);
/* Take the snapshot list of commit c (at mount, after every commit that changes it). If
 * stale is not NULL, append to it each name of the old list that now means another
 * snapshot or none (NUL-terminated), for the kernel to forget. */
int snaps_update(struct snaps *sn, const struct commit *c, struct buf *stale);

/* The mount root's part. Snapshots are listed in commit order, which is slot order (a new
 * snapshot gets a new slot, a renamed one keeps its own). */
size_t snaps_count(struct snaps *sn);
/* The seq of the commit the list is from. */
uint64_t snaps_seq(struct snaps *sn);
/* Append "seq N\n" (the commit the list is from), then one line per snapshot k, first <= k <
 * first + max, in order: name TAB time (ns since the epoch) TAB host. */
int snaps_list(struct snaps *sn, size_t first, size_t max, struct buf *ret);
/* Append "seq N\n", then "logical TAB unique\n" (fs/usage.h) for snapshots first <= k <
 * first + max of the list of commit N. Computed on first use after each change of the list
 * (one load of every distinct tree), then kept. */
int snaps_usage(struct snaps *sn, size_t first, size_t max, struct buf *ret);
/* A lookup by name; takes a kernel reference. */
int snaps_root_lookup(struct snaps *sn, const char *name, struct fs_entry *ret);
/* The snapshot in the lowest slot >= from that has a name (-ENOENT: none): its slot, name
 * (malloc'd) and entry. Slots make stable readdir cookies: one dropped while the root is
 * being listed does not make the listing skip another. */
int snaps_root_next(struct snaps *sn, size_t from, size_t *ret_slot, char **ret_name,
		    struct fs_entry *ret);

/* The kernel took a reference without a lookup (readdirplus), or dropped nlookup of them. */
void snaps_ref(struct snaps *sn, uint64_t node);
void snaps_forget(struct snaps *sn, uint64_t node, uint64_t nlookup);

int snaps_getattr(struct snaps *sn, uint64_t node, struct stat *ret);
/* Takes a kernel reference. */
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
