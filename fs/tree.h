/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Trees: one directory serialized as a blob (type BLOB_TREE), content-addressed like data,
 * so an unchanged subtree is shared by every checkpoint and snapshot that contains it.
 *
 * Tree format, version 1 (all integers little-endian; str = le32 length | bytes):
 *     "CTR\x01"
 *     self:    the directory's own record (see below, with an empty name)
 *     le32 n:  number of entries, then n records sorted by name (bytewise, no duplicates)
 *   record:
 *     str name | le64 ino | le32 mode | le32 uid | le32 gid | le32 nlink | le64 size
 *     | le64 rdev | le64 atime | le64 mtime | le64 ctime        (times: ns since the epoch)
 *     | le32 nxattr | nxattr x (str name | str value)           sorted by name
 *     | then by type:  directory: subtree id[32] (absent in self)
 *                      symlink:   str target
 *                      regular:   le32 next | next x (le64 off | le32 len | id[32])
 *                      others:    nothing
 * Every entry carries its full attributes (directories too), so listing a directory needs
 * only its own tree. Hard links are entries of the same ino; nlink is the inode's.
 * Limits checked on decode: names 1..255 bytes without '/' or NUL, not "." or ".." (self:
 * empty), ino not 0, a known file type and no mode bits beyond it and 07777, self a directory,
 * xattr names 1..255 bytes, sorted, unique, at most 64 KiB per xattr value, symlink targets
 * 1..4096 bytes, extents not empty, sorted, not overlapping, within size.
 *
 * Thread safety: encode/decode are reentrant. tree_checkpoint and tree_restore must not run
 * concurrently with changes to the same meta (the caller holds the filesystem's lock).
 */
#pragma once

#include "meta.h"
#include "store.h"

#define TREE_XATTR_VALUE_MAX (64u * 1024)
#define TREE_TARGET_MAX 4096

struct tree_xattr {
	char *name;
	uint8_t *value;
	size_t len;
};

struct tree_entry {
	char *name; /* NULL in self */
	struct meta_inode inode;
	struct tree_xattr *xattrs;
	size_t n_xattrs;
	struct blob_id subtree;	     /* directories */
	char *target;		     /* symlinks */
	struct meta_extent *extents; /* regular files */
	size_t n_extents;
};

struct tree {
	struct tree_entry self;
	struct tree_entry *entries;
	size_t n_entries;
};

void tree_release(struct tree *t);
/* Serialize (entries must be sorted by name), appending to ret. Every decode limit is checked
 * first, so no tree is written that would not read back. Returns 0, -EINVAL, -ENOMEM. */
int tree_encode(const struct tree *t, struct buf *ret);
/* Parse and check every limit above. Returns 0, -EBADMSG, or -ENOMEM. */
int tree_decode(const void *data, size_t len, struct tree *ret);
/* Read and decode the tree blob id. Errors are logged naming the tree. */
int tree_load(struct store *s, const struct blob_id *id, struct tree *ret);

/*
 * Write every directory of the working tree whose tree id is unset (dirty) as a tree blob,
 * deepest first, record each new id with meta_tree_set, and return the root's id. Cost is
 * proportional to the dirty directories and their sizes. File data must be flushed first:
 * a file with dirty ranges is -EAGAIN (the caller flushes and retries). -EBADMSG (logged)
 * for an inconsistent working tree: an extent past its file's size, a directory cycle.
 */
int tree_checkpoint(struct meta *m, struct store *s, struct blob_id *ret_root);

/*
 * Fill a new, empty working tree from the tree rooted at root: every inode keeps its
 * number, hard links become one inode with several entries, and every directory's tree id
 * is set (so nothing is dirty afterwards). Returns 0, a meta error, or a store error
 * (-EBADMSG for a corrupt or inconsistent tree, logged naming it: a directory with two
 * entries, a subtree whose own inode number differs from its entry's).
 */
int tree_restore(struct meta *m, struct store *s, const struct blob_id *root);
