/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The codec: everything that turns plaintext into what the backend stores and back.
 *   - blob ids: keyed BLAKE2b-256 of the plaintext, one key per blob type (derived from the
 *     master key), so identical data gets one id (global dedup) and the store's operator
 *     cannot test for known content;
 *   - compression: lz4, kept raw when it does not pay; incompressible data is detected on a
 *     sample so it costs little;
 *   - sealing: XChaCha20-Poly1305 with a random 192-bit nonce, the additional data binding
 *     the object to its id/name and type. In a plaintext repository the seal is a keyed
 *     BLAKE2b-128 tag over the same additional data and the plaintext: data stays readable but
 *     still authenticated (against corruption; the key is in the config object).
 *
 * Sealed format (version 1):
 *     encrypted:  nonce[24] || ciphertext || tag[16]
 *     plaintext:  data || tag[16]
 * Blob record, before sealing (version 1):
 *     u8 flags (bit 0: lz4) || le32 raw length || payload
 * Additional data of a blob: "cairn-blob\x01" || u8 type || id[32].
 *
 * This module is the one home of lz4.h and, with keys.c, of sodium.h.
 * Thread safety: all functions are safe to call concurrently with the same struct codec.
 */
#pragma once

#include "util.h"

#define BLOB_ID_SIZE 32
#define SEAL_NONCE_SIZE 24
#define SEAL_TAG_SIZE 16
#define CODEC_KEY_SIZE 32
/* The largest blob the codec accepts: bounds every size read back from the backend. */
#define BLOB_MAX_SIZE (64u * 1024 * 1024)

enum blob_type { BLOB_DATA = 1, BLOB_TREE = 2, _BLOB_TYPE_MAX };

struct blob_id {
	uint8_t b[BLOB_ID_SIZE];
};
#define BLOB_ID_HEX_SIZE (2 * BLOB_ID_SIZE + 1)

struct codec {
	bool encrypted;
	uint8_t *id_key_data; /* CODEC_KEY_SIZE bytes each, sodium_malloc'd */
	uint8_t *id_key_tree;
	uint8_t *seal_key;
	uint8_t *pack_key; /* key of codec_hash_*() (SUBKEY_PACK) */
};

/* Initialise the library (sodium_init). Returns 0 or -EIO. Safe to call more than once. */
int codec_global_init(void);

/* A codec using four keys derived from a 32-byte master key (see keys.h). Returns 0,
 * -ENOMEM. The master key is not kept. */
int codec_init(struct codec *c, const uint8_t master_key[32], bool encrypted);
/* Wipe and free the keys. */
void codec_release(struct codec *c);

/* The id of a blob's plaintext. */
void codec_blob_id(const struct codec *c, enum blob_type type, const void *data, size_t len,
		   struct blob_id *ret);

/* Compress (or not) and seal a blob's plaintext, appending the sealed bytes to ret.
 * Returns 0, -EINVAL (len > BLOB_MAX_SIZE or bad type), -ENOMEM. */
int codec_encode_blob(const struct codec *c, enum blob_type type, const struct blob_id *id,
		      const void *data, size_t len, struct buf *ret);
/* Open a sealed blob, check it against id and type, decompress, and append the plaintext to
 * ret. Returns 0, -EBADMSG (corrupt, wrong id or type, authentication failed), -ENOMEM. */
int codec_decode_blob(const struct codec *c, enum blob_type type, const struct blob_id *id,
		      const void *sealed, size_t len, struct buf *ret);

/* Seal/open arbitrary metadata (pack trailer, index segment, commit) bound to ad.
 * open returns -EBADMSG on any mismatch. */
int codec_seal(const struct codec *c, const void *ad, size_t adlen, const void *data, size_t len,
	       struct buf *ret);
int codec_open(const struct codec *c, const void *ad, size_t adlen, const void *sealed, size_t len,
	       struct buf *ret);
/* Bytes added by codec_seal. */
size_t codec_seal_overhead(const struct codec *c);

/* Keyed (SUBKEY_PACK) BLAKE2b-256 streaming hash, used for pack names. */
struct codec_hash {
	uint8_t state[384] __attribute__((aligned(64)));
};
void codec_hash_init(const struct codec *c, struct codec_hash *h);
void codec_hash_update(struct codec_hash *h, const void *data, size_t len);
void codec_hash_final(struct codec_hash *h, uint8_t out[32]);

/* One-shot keyed BLAKE2b-256 (key of 32 bytes), for deriving tables and MACs. */
void codec_hash_keyed(const uint8_t key[32], const void *data, size_t len, uint8_t out[32]);

/* Cryptographically random bytes. */
void codec_random(void *out, size_t len);

void blob_id_hex(const struct blob_id *id, char out[BLOB_ID_HEX_SIZE]);
