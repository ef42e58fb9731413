/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The block store: a repository opened for reading or writing.
 *
 * store_put() takes a blob's plaintext (a chunk cut by the chunker, or a serialized tree),
 * computes its id, and if no copy exists yet compresses and seals it and appends it to the
 * open pack. Full packs are uploaded by a pool of upload threads; a pack's blobs enter the
 * index only once the pack is durable. store_flush() makes everything put so far durable and
 * indexed (and writes an index segment); store_commit() flushes and then writes the next
 * commit. So the order of writes is always packs, then index, then the commit.
 *
 * A blob that is put but not yet uploaded stays in memory and is served by store_get(); if
 * an upload keeps failing, the pack stays queued, store_flush() reports the error, and a
 * later flush tries again: nothing accepted is dropped while the store is open.
 *
 * Errors: -ENOENT (no repository, no such blob), -EEXIST (mkfs on a repository),
 * -ENOTEMPTY (mkfs on a non-empty location), -EACCES (wrong passphrase), -EBADMSG (a corrupt
 * object, always logged naming it), -EBUSY (locked by another writer), -ESTALE (our lock was
 * broken), -EROFS (write on a read-only store), -EPROTONOSUPPORT (a newer format),
 * -EXDEV (the cache directory belongs to another repository), and backend errors.
 *
 * Thread safety: store_put, store_get and store_flush may be called from many threads at
 * once. store_commit calls are serialised inside. store_close must not race with anything.
 */
#pragma once

#include "backend.h"
#include "chunker.h"
#include "codec.h"
#include "commit.h"
#include "config.h"
#include "keys.h"

struct store;

struct store_create_options {
	bool encrypted;
	const char *passphrase; /* required when encrypted */
	size_t passlen;
	enum kdf_strength kdf;
	uint32_t chunk_avg; /* 0: default; min = avg/4, max = avg*4 */
	uint32_t pack_size; /* 0: default */
};

/* Create a repository in an empty backend location. Returns 0 and the repository id, or an
 * error (logged). */
int store_create(struct backend *b, const struct store_create_options *o,
		 uint8_t ret_id[REPO_ID_SIZE]);

struct store_options {
	const char *cache_dir; /* base; the store uses <cache_dir>/<repo id>/. NULL: default */
	const char *passphrase;
	size_t passlen;
	bool read_only;		      /* no lock, no writes */
	bool break_lock;	      /* break another writer's lock (on request only) */
	unsigned upload_threads;      /* 0: 2 */
	unsigned max_packs_in_flight; /* 0: upload_threads + 2; puts block beyond it */
	uint32_t pack_size;	      /* 0: the repository's setting */
	unsigned lock_lease;	      /* seconds; 0: LOCK_LEASE_DEFAULT */
};

/* Open a repository. Takes ownership of b in every case. */
int store_open(struct backend *b, const struct store_options *o, struct store **ret);
/* Flush (when writable), stop the threads, release the lock, free. Returns the first error
 * of the final flush: a non-zero return means data put since the last successful flush was
 * not stored. */
int store_close(struct store *s);

/* Store a blob. Returns 0 with its id; *ret_new (may be NULL) tells whether it was new. */
int store_put(struct store *s, enum blob_type type, const void *data, size_t len,
	      struct blob_id *ret_id, bool *ret_new);
/* Read a blob's plaintext, appended to ret. -ENOENT if unknown, -EBADMSG if corrupt. */
int store_get(struct store *s, enum blob_type type, const struct blob_id *id, struct buf *ret);
/* true if the blob is stored or pending. */
bool store_has(struct store *s, const struct blob_id *id);
/* Make every blob put so far durable and indexed. */
int store_flush(struct store *s);
/* After a failed flush, before closing: write the packs that could not be uploaded to the
 * cache directory, durably, for the next writable store_open to upload first. 0 if there
 * were none or all are kept. */
int store_save_unsent(struct store *s);

/* The latest commit (seq 0 with nothing in it for a new repository). */
int store_head(struct store *s, struct commit *ret);
/* Settle a commit whose write reported an error (did it land?) so that the next
 * store_commit writes store_head's seq + 1. Returns 0 or the backend's error. */
int store_settle(struct store *s);
/* Flush, then write c as the next commit (c->seq, parent and time are set here). */
int store_commit(struct store *s, struct commit *c);

const struct chunker *store_chunker(struct store *s);
const struct repo_config *store_config(struct store *s);
struct backend *store_backend(struct store *s);
const struct codec *store_codec(struct store *s);
/* The cache directory of this repository (<cache_dir>/<repo id>). */
const char *store_cache_dir(struct store *s);

struct store_stats {
	uint64_t put_blobs, put_bytes; /* everything offered to store_put */
	uint64_t new_blobs, new_bytes; /* plaintext that was not stored before */
	uint64_t sealed_bytes;	       /* what the new blobs take in packs */
	uint64_t packs_uploaded, pack_bytes_uploaded;
};
void store_get_stats(struct store *s, struct store_stats *ret);

/* Rebuild the local index from the backend (index segments, then pack trailers), as after
 * losing the cache directory. Called by store_open when the index is behind. */
int store_sync_index(struct store *s, bool full);
