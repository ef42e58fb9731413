/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Commits: the only mutable state of a repository, as a sequence of immutable objects
 * commits/<seq> (seq as 20 decimal digits, so names sort). Each names the working tree's root
 * tree and every snapshot (name, root, time, host). The reader takes the highest seq.
 * A commit is written last, with an exclusive put, after every pack and index segment it
 * needs is durable; a crash at any instant leaves the previous commit whole.
 *
 * Commit object, version 1:
 *     codec_seal(ad = "cairn-commit\x01" | le64 seq, body)
 *     body: u8 version=1 | le64 seq | le64 parent seq | le64 time (ns since the epoch)
 *           | str host | u8 has_root | root[32] | le32 nsnap
 *           | nsnap x (str name | root[32] | le64 time | str host)
 *     (str = le32 length | bytes, at most COMMIT_STR_MAX)
 * Binding seq into the additional data means an object cannot be renamed to another seq.
 *
 * Thread safety: functions are reentrant; a struct commit belongs to one thread at a time.
 */
#pragma once

#include "backend.h"
#include "codec.h"

#define COMMIT_STR_MAX 255
#define COMMIT_MAX_SNAPSHOTS 100000
#define COMMIT_KEY_MAX 32

struct snapshot_ref {
	char *name;
	struct blob_id root;
	uint64_t time_ns;
	char *host;
};

struct commit {
	uint64_t seq, parent;
	uint64_t time_ns;
	char *host;
	bool has_root;
	struct blob_id root; /* the working tree */
	struct snapshot_ref *snaps;
	size_t n_snaps;
};

void commit_release(struct commit *c);
/* Append a snapshot (copies name and host). Returns 0, -EINVAL (name too long), -ENOMEM. */
int commit_add_snapshot(struct commit *c, const char *name, const struct blob_id *root,
			uint64_t time_ns, const char *host);

int commit_encode(const struct codec *k, const struct commit *c, struct buf *ret);
/* Returns 0, -EBADMSG (corrupt, or a commit for another seq). */
int commit_decode(const struct codec *k, uint64_t seq, const void *data, size_t len,
		  struct commit *ret);

void commit_key(uint64_t seq, char out[COMMIT_KEY_MAX]);

/* The highest seq present under commits/ (0 and no error when there is none). */
int commit_find_latest(struct backend *b, uint64_t *ret_seq);
/* Read and authenticate commits/<seq>. -ENOENT, -EBADMSG (logged naming the object). */
int commit_load(struct backend *b, const struct codec *k, uint64_t seq, struct commit *ret);
/* Write commits/<c->seq> exclusively. -EEXIST means another writer got there first. */
int commit_write(struct backend *b, const struct codec *k, const struct commit *c);
