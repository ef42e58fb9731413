/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Space accounting of snapshots, for `cairn list`: per snapshot its logical size (what
 * `du --apparent-size -l` would not double-count: the sizes of its regular files, each inode
 * once however many hard links it has) and its unique bytes (the data chunks that this
 * snapshot references and no other snapshot nor the working tree does: what forgetting it
 * alone would let expire reclaim, before compression).
 *
 * Algorithm. Snapshots share every unchanged subtree (trees are content-addressed), so the
 * work is done per DISTINCT tree, never per snapshot times tree size:
 *   1. Load. Starting from every root (the snapshots', then the working tree's), load each
 *      distinct tree id exactly once (a table of ids seen; the table's array is the work
 *      queue). Per tree keep only: its subtree edges (indexes of child trees), the indexes
 *      of the data blobs its files reference (a table of distinct blob ids with each one's
 *      length), and its own file bytes grouped by link count (see 3).
 *   2. Owners. Each tree and each blob gets an owner state: none, one(i), or many, where i
 *      is a snapshot or the working tree. Every root i pushes one(i) down its DAG; a tree
 *      merges what arrives (none + one(i) = one(i); one(i) + one(j != i) = many) and passes
 *      its new state to its children and blobs only when the state changed. A state
 *      changes at most twice, so this is O(edges + blob references) whatever the number of
 *      snapshots. A blob in state one(i), i a snapshot, is unique to i: unique[i] += len.
 *   3. Logical size. In a consistent snapshot an inode with link count k has exactly k
 *      entries, all inside that snapshot. So summing size/k over every entry counts each
 *      inode once. To stay exact in integers, each tree keeps sums S_k of file sizes per
 *      link count k (almost always just k = 1), totals are memoised bottom-up over the DAG
 *      (each distinct tree once), and a snapshot's logical size is the sum of S_k / k of its
 *      root's totals. A tree with inconsistent link counts (not written by tree_checkpoint)
 *      gives an approximate figure, never an error.
 * Unique bytes count plaintext chunk lengths (extent lengths): what the chunk occupies in
 * the store after compression and sealing is not looked up, which would cost an index query
 * per blob.
 *
 * Cost: one tree_load per distinct tree; time O(distinct trees + their entries); memory
 * O(distinct trees + distinct blobs + edges and blob references of the distinct trees),
 * with no per-snapshot copy of anything.
 * Errors: tree_load's (-ENOENT a missing tree, -EBADMSG a corrupt one, both logged naming
 * the tree), -ENOMEM. Thread safety: reentrant; the store may be shared (store_get is).
 */
#pragma once

#include "store.h"

struct usage {
	uint64_t logical; /* bytes of regular files, each inode once */
	uint64_t unique;  /* bytes of data chunks referenced by this snapshot alone */
};

struct usage_stats {
	uint64_t trees;	     /* distinct trees loaded (each exactly once) */
	uint64_t blobs;	     /* distinct data blobs referenced */
	uint64_t blob_bytes; /* their total length */
};

/*
 * roots: the root tree ids of n snapshots (repeats allowed: two snapshots of the same tree
 * share everything, so neither has unique bytes). work: the working tree's root, or NULL.
 * ret: an array of n results, written only on success. stats may be NULL.
 */
int usage_compute(struct store *s, const struct blob_id *roots, size_t n,
		  const struct blob_id *work, struct usage *ret, struct usage_stats *ret_stats);
