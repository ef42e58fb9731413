/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The difference between two snapshot trees, in time proportional to what changed: two
 * directories whose subtree ids are equal are the same tree and are skipped without being
 * listed. The engine walks two "directory sources" side by side; a source lists one
 * directory as sorted entries. Two sources are provided: trees in a store (by id, for a
 * repository that is not mounted) and directories of a mounted cairn filesystem (by path,
 * where the daemon gives every snapshot node a hidden `user.cairn.id` attribute). The
 * second also works, more slowly, on any directory without those ids.
 *
 * Output: one call per changed path, relative to the top of the snapshots (the top itself
 * is never reported), in tree order: a directory before what it contains, the entries of
 * a directory in bytewise name order, everything below a directory right after it. So the
 * output is the order of a depth-first walk, not that of `sort` over whole paths ("a/x"
 * comes before "a-b" although '-' sorts before '/').
 *
 * Kinds, as restic's diff prints them:
 *   '+'  the path exists only in B        '-'  the path exists only in A
 *   'T'  the type changed (file, directory, symlink, device, fifo, socket)
 *   'M'  the content changed: a file's data, a symlink's target, a device's number
 *   'U'  metadata only: permission bits, owner, group, mtime or extended attributes
 *        (ACLs are xattrs). atime is ignored (reading changes it), and so are ctime and
 *        the link count: both change as a side effect of other changes that are reported
 *        where they happen (a new hard link is '+' at its own path; a chmod is 'U').
 *        Inode numbers are ignored too: a file replaced by an identical copy is no change.
 * A path whose content and metadata both changed is reported once, as 'M'. An added or
 * removed directory is reported, then everything below it, each as '+' or '-'. A type
 * change is reported as 'T', then, when a directory is on either side, its contents as '-'
 * (A was a directory) or '+' (B is one). A directory whose entries changed is reported 'U'
 * only when its own metadata changed (adding a file changes its mtime, so usually it is).
 *
 * File content is compared by what the tree records, its size and chunk list: the chunker
 * cuts equal data at the same places, so equal data gives equal chunks; a file whose bytes
 * are equal but whose chunks are not (rewritten under another chunk size, or a hole now
 * stored as zeros) is reported 'M'. The mount source compares bytes when it has no ids.
 *
 * Hard links need nothing special: every path of an inode is compared on its own, so a new
 * link is '+' at its path only and a change of the shared data is 'M' at every path.
 *
 * Memory: one listing per directory level on the path being compared (a heap stack, so a
 * chain thousands of directories deep costs heap, not C stack).
 * Errors: a source's error (logged by the source, naming the object), -ENOMEM, or the
 * callback's negative return, which stops the walk.
 * Thread safety: a source belongs to one walk at a time; separate walks may run at once.
 */
#pragma once

#include "tree.h"

#define TREEDIFF_DIGEST_SIZE 32
#define TREEDIFF_ID_XATTR "user.cairn.id"

enum treediff_kind {
	TREEDIFF_ADDED = '+',
	TREEDIFF_REMOVED = '-',
	TREEDIFF_CHANGED = 'M',
	TREEDIFF_META = 'U',
	TREEDIFF_TYPE = 'T',
};

/*
 * A digest of what defines an entry's content and its extended attributes, equal for two
 * entries exactly when those are (up to BLAKE2b collisions): the file type; for regular
 * files the size and every extent (offset, length, blob id); for symlinks the target; for
 * devices the device number; for every type the xattr names and values. Not covered: the
 * name, inode number, permission bits, owner, times, link count, and a directory's entries
 * (a directory's subtree id covers those). The mount daemon exposes it, as 64 lower-case hex
 * digits, in the hidden attribute user.cairn.id of every snapshot node that is not a
 * directory (directories give their subtree id there).
 *
 * Digest format, version 1: BLAKE2b-256 keyed with the 32 bytes "cairn-entry-digest-v1" padded
 * with zeros, over: le32 (mode & S_IFMT) | le32 nxattr | nxattr x (str name | str value)
 * | then by type: regular: le64 size | le32 next | next x (le64 off | le32 len | id[32]);
 * symlink: str target; character and block devices: le64 rdev; others: nothing.
 * (str = le32 length | bytes.)
 */
void tree_entry_digest(const struct tree_entry *e, uint8_t out[TREEDIFF_DIGEST_SIZE]);

/* One entry of a directory listing, as a source gives it. */
struct treediff_entry {
	char *name;
	uint32_t mode; /* type and permission bits, as st_mode */
	uint32_t uid, gid;
	uint64_t size, rdev;
	int64_t mtime; /* ns since the epoch */
	/* tree_entry_digest of the entry, when the source knows it (never for directories). */
	bool has_digest;
	uint8_t digest[TREEDIFF_DIGEST_SIZE];
	/* Directories: the subtree id, when the source knows it. Equal ids mean equal trees. */
	bool has_subtree;
	struct blob_id subtree;
	void *priv; /* the source's own, valid as long as the listing */
};

struct treediff_list {
	struct treediff_entry *v; /* sorted by name, bytewise, no duplicates */
	size_t n;
	void *priv; /* the source's own */
};

/* What compare found different (bits). */
#define TREEDIFF_DIFF_CONTENT 1u
#define TREEDIFF_DIFF_XATTRS 2u

struct treediff_source;

/* A source's type: its operations (curl's cfilters: a const type apart from the instance). */
struct treediff_source_ops {
	const char *name;
	/*
	 * List the directory at path (relative to the top, "" for the top itself) whose entry
	 * is dir (the source's own top entry for the top). Fills ret, which the engine gives
	 * back to list_release. Returns 0 or -errno (logged naming the directory).
	 */
	int (*list)(struct treediff_source *src, const char *path, const struct treediff_entry *dir,
		    struct treediff_list *ret);
	void (*list_release)(struct treediff_source *src, struct treediff_list *l);
	/*
	 * Compare two entries of the same type at path, a from source a (this type) and b
	 * from source b (the same type), when their digests are not both known and equal.
	 * digests_differ: both were known and differ (so content or xattrs differ). Sets
	 * *ret to TREEDIFF_DIFF_* bits (content is never set for directories). Returns 0 or
	 * -errno (logged).
	 */
	int (*compare)(struct treediff_source *a, const struct treediff_entry *ea,
		       struct treediff_source *b, const struct treediff_entry *eb, const char *path,
		       bool digests_differ, unsigned *ret);
};

/* Embedded first in each source's own struct. top: the top directory's entry (its name is
 * not used; has_subtree when known, so two equal snapshots cost nothing). */
struct treediff_source {
	const struct treediff_source_ops *ops;
	struct treediff_entry top;
	uint64_t n_lists; /* directories listed so far: a measure of the walk's cost */
};

/*
 * fn is called once per changed path; a and b are the entries on each side (NULL where the
 * path does not exist). A negative return from fn stops the walk and is returned.
 */
typedef int (*treediff_fn)(enum treediff_kind kind, const char *path,
			   const struct treediff_entry *a, const struct treediff_entry *b,
			   void *ud);

/* Walk a and b (sources of the same type). Returns 0, or an error as above. */
int treediff_run(struct treediff_source *a, struct treediff_source *b, treediff_fn fn, void *ud);

/* ---- source: trees in a store ---- */
struct treediff_tree_source {
	struct treediff_source base;
	struct store *store;
};
/* A source over the tree root in s (nothing is read until the walk). */
void treediff_tree_source_init(struct treediff_tree_source *src, struct store *s,
			       const struct blob_id *root);

/* ---- source: directories of a file system (a mounted cairn snapshot) ---- */
struct treediff_dir_source {
	struct treediff_source base;
	char *top_path;
};
/*
 * A source over the directory top_path. Entries are read with readdir and lstat (symlinks
 * are not followed); the attribute user.cairn.id gives a directory's subtree id or another
 * entry's digest, and where it is absent (ENODATA, ENOTSUP: not a cairn snapshot, or an
 * older daemon) directories are always descended and content is compared byte by byte.
 * Returns 0, -errno from lstat of top_path (logged), -ENOTDIR, -ENOMEM.
 */
int treediff_dir_source_init(struct treediff_dir_source *src, const char *top_path);
void treediff_dir_source_release(struct treediff_dir_source *src);
