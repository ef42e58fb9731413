/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The blob index: blob id -> (pack, offset, length, type), kept in a SQLite database in the
 * local cache directory. It is a cache of the backend: every row can be rebuilt from the
 * index segments and, failing those, from the packs' trailers (store.c does that).
 * A blob enters the index only after its pack is durable in the backend.
 *
 * Schema, version 1 (index.db):
 *     meta(key TEXT PRIMARY KEY, value)            'version', 'repo-id', 'synced-commit'
 *     packs(id INTEGER PRIMARY KEY, name BLOB UNIQUE, size INTEGER)
 *     blobs(id, pack REFERENCES packs(id), type, offset, length, rawlen,
 *           PRIMARY KEY(id, pack))   every copy of a blob: when a pack goes (expire, a
 *                                    rewritten pack), the other copies still serve it
 *     segments(name BLOB PRIMARY KEY)              index segments already loaded
 *
 * Index segment objects (index/<64 hex>), version 1:
 *     codec_seal(ad = "cairn-index\x01", le32 npacks | npacks x (name[32] | le64 size
 *                | pack entries as in the pack trailer body))
 *
 * Thread safety: an index may be used from many threads; calls are serialised inside.
 */
#pragma once

#include "keys.h"
#include "pack.h"

struct index;

struct index_loc {
	uint8_t pack[PACK_NAME_SIZE];
	uint8_t type;
	uint32_t offset, length, rawlen;
};

/*
 * Open (creating if needed) the database at path, for the repository repo_id.
 * Returns 0; -EXDEV when the database belongs to another repository; -EBADMSG when it is
 * not a cairn index or is corrupt; -EIO for other SQLite failures; -ENOMEM.
 */
int index_open(const char *path, const uint8_t repo_id[REPO_ID_SIZE], struct index **ret);
void index_close(struct index *x);

/* Returns 0 and fills ret, or -ENOENT, or -EIO. */
int index_lookup(struct index *x, const struct blob_id *id, struct index_loc *ret);
/* Record a durable pack and its blobs in one transaction. A blob stored in several packs
 * has a row for each; lookups return any of them. Returns 0 or -EIO. */
int index_add_pack(struct index *x, const uint8_t name[PACK_NAME_SIZE], uint64_t size,
		   const struct pack_entry *e, size_t n);
/* Forget a pack and the blob locations in it (the pack is gone from the backend); copies
 * of those blobs in other packs stay indexed. */
int index_remove_pack(struct index *x, const uint8_t name[PACK_NAME_SIZE]);
/* >0 if the pack is known, 0 if not, <0 on error. */
int index_has_pack(struct index *x, const uint8_t name[PACK_NAME_SIZE]);
/* Call fn for every known pack; a negative return stops and is returned. */
int index_foreach_pack(struct index *x, int (*fn)(const uint8_t name[PACK_NAME_SIZE], void *ud),
		       void *ud);
/* Segments: >0 known, 0 unknown. */
int index_has_segment(struct index *x, const uint8_t name[32]);
int index_add_segment(struct index *x, const uint8_t name[32]);
/* Small settings kept with the index (e.g. "encrypted"). get: -ENOENT if unset. */
int index_get_u64(struct index *x, const char *key, uint64_t *ret);
int index_set_u64(struct index *x, const char *key, uint64_t value);
/* The commit the index was last reconciled with (0: never). */
int index_get_synced(struct index *x, uint64_t *ret);
int index_set_synced(struct index *x, uint64_t seq);
/* Number of blobs and packs, for statistics. */
int index_count(struct index *x, uint64_t *ret_blobs, uint64_t *ret_packs);

/* A pack and its entries, the unit of an index segment. */
struct index_segment_pack {
	uint8_t name[PACK_NAME_SIZE];
	uint64_t size;
	struct pack_entry *entries;
	size_t n;
};
/* Encode a segment body and seal it. */
int index_segment_encode(const struct codec *c, const struct index_segment_pack *p, size_t n,
			 struct buf *ret);
/* Open and parse a sealed segment. Returns an array of packs (free with
 * index_segment_free), -EBADMSG. */
int index_segment_decode(const struct codec *c, const void *data, size_t len,
			 struct index_segment_pack **ret, size_t *ret_n);
void index_segment_free(struct index_segment_pack *p, size_t n);
