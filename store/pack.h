/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Packs: many sealed blobs in one backend object, so 100 000 small files are not 100 000
 * PUTs, with a trailer that lists them so a pack can be decoded with no other object.
 *
 * Pack format, version 1 (object data/<first 2 hex digits of name>/<name>):
 *     "CAIRNPK\x01"                                 header, 8 bytes
 *     sealed blob records, back to back              see codec.h
 *     trailer = codec_seal(ad = "cairn-trailer\x01", body)
 *         body: le32 count | count x (id[32] | u8 type | le32 offset | le32 length
 *                                    | le32 rawlen)
 *     le32 trailer length | "CAIRNPKT"               footer, 12 bytes
 * The footer is not authenticated: it only locates the trailer, whose authentication fails if
 * the length is wrong. Offsets and lengths are checked against the pack's size before use.
 * The pack name is 32 random bytes in hex: names are never reused, and no pass over the
 * pack's bytes is spent on hashing it (each blob and the trailer are authenticated anyway).
 *
 * Thread safety: a pack_builder belongs to one thread at a time; the rest is reentrant.
 */
#pragma once

#include "backend.h"
#include "codec.h"

#define PACK_NAME_SIZE 32
#define PACK_NAME_HEX_SIZE (2 * PACK_NAME_SIZE + 1)
#define PACK_KEY_MAX 80 /* "data/xx/" + 64 hex + NUL */
#define PACK_HEADER_SIZE 8
#define PACK_FOOTER_SIZE 12
#define PACK_ENTRY_SIZE (BLOB_ID_SIZE + 1 + 4 + 4 + 4)
/* Bounds what a trailer may claim, so a hostile footer cannot make us allocate gigabytes. */
#define PACK_MAX_ENTRIES (1u << 22)
#define PACK_MAX_SIZE (1ull << 32)

struct pack_entry {
	struct blob_id id;
	uint8_t type;
	uint32_t offset;
	uint32_t length; /* sealed length */
	uint32_t rawlen; /* plaintext length */
};

struct pack_builder {
	uint8_t name[PACK_NAME_SIZE];
	struct buf data;
	struct pack_entry *entries;
	size_t n_entries, cap_entries;
	bool finished;
};

/* Start a pack with a fresh random name and room for expect bytes, in spare's memory if it
 * has any (taken: spare is left empty). Returns 0 or -ENOMEM. */
int pack_builder_init(struct pack_builder *p, struct buf *spare, size_t expect);
void pack_builder_release(struct pack_builder *p);
/* Append one sealed blob. Returns 0, -EFBIG (the pack would pass PACK_MAX_SIZE), -ENOMEM. */
int pack_builder_add(struct pack_builder *p, const struct blob_id *id, enum blob_type type,
		     const void *sealed, size_t len, uint32_t rawlen);
/* Bytes appended so far. */
static inline size_t pack_builder_size(const struct pack_builder *p)
{
	return p->data.len;
}
/* Seal and append the trailer and footer. Returns 0, -ENOMEM. */
int pack_builder_finish(struct pack_builder *p, const struct codec *c);

/* "data/ab/ab12…" for a pack name. */
void pack_key(const uint8_t name[PACK_NAME_SIZE], char out[PACK_KEY_MAX]);
/* Parse a key of that form. Returns 0 or -EINVAL. */
int pack_key_parse(const char *key, uint8_t ret[PACK_NAME_SIZE]);

/* Serialise/parse the trailer body (also used by index segments). parse bounds count by
 * PACK_MAX_ENTRIES and every entry by pack_size (0: no size check). */
int pack_entries_encode(const struct pack_entry *e, size_t n, struct buf *ret);
int pack_entries_decode(struct reader *r, uint64_t pack_size, struct pack_entry **ret,
			size_t *ret_n);

/*
 * Read and authenticate a pack's trailer from the backend (two ranged reads).
 * Returns 0 with a malloc'd array, -ENOENT, -EBADMSG (truncated or corrupt; logged naming the
 * pack), or a backend error.
 */
int pack_read_trailer(struct backend *b, const struct codec *c, const uint8_t name[PACK_NAME_SIZE],
		      struct pack_entry **ret, size_t *ret_n, uint64_t *ret_size);
