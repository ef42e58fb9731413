/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Keys: the repository's random 32-byte master key, its wrapping under a passphrase, and the
 * subkeys derived from it.
 *
 * Key object (keys/<id>), version 1, all integers little-endian:
 *     "CAIRNKEY" | u8 version=1 | u8 kdf=1 (Argon2id v1.3) | le64 opslimit | le64 memlimit
 *     | salt[16] | nonce[24] | XChaCha20-Poly1305(master key[32]) with tag[16]
 *     | check[32]
 * The AEAD's additional data is everything before the nonce plus the 16-byte repository id,
 * so a key cannot be moved to another repository or have its KDF parameters changed. `check`
 * is an unkeyed BLAKE2b-256 of everything before it: it tells a corrupt object (-EBADMSG)
 * apart from a wrong passphrase (-EACCES).
 *
 * Master key memory is sodium_malloc'd (guarded, locked) and wiped by keys_free().
 * This module is, with codec.c, the one home of sodium.h.
 * Thread safety: all functions are reentrant.
 */
#pragma once

#include "util.h"

#define MASTER_KEY_SIZE 32
#define REPO_ID_SIZE 16

/* Subkey numbers for keys_derive(). Never renumber: they are part of the format. */
enum subkey {
	SUBKEY_ID_DATA = 1, /* blob ids of data chunks */
	SUBKEY_ID_TREE = 2, /* blob ids of trees */
	SUBKEY_SEAL = 3,    /* AEAD of every sealed object */
	SUBKEY_CONFIG = 4,  /* MAC of the config object */
	SUBKEY_CHUNKER = 5, /* seed of the chunker's gear table */
	SUBKEY_PACK = 6,    /* key of the pack-name hash */
};

/* KDF strength presets. KDF_TEST is only for test suites: it protects nothing. */
enum kdf_strength { KDF_INTERACTIVE, KDF_MODERATE, KDF_SENSITIVE, KDF_TEST };
/* Parse "interactive", "moderate", "sensitive", "test". Returns 0 or -EINVAL. */
int kdf_strength_from_string(const char *s, enum kdf_strength *ret);

/* A new random master key in guarded memory. Returns 0 or -ENOMEM. */
int keys_generate(uint8_t **ret);
/* A master key in guarded memory, copied from bytes (plaintext repositories keep it in the
 * config object). */
int keys_from_bytes(const uint8_t bytes[MASTER_KEY_SIZE], uint8_t **ret);
void keys_free(uint8_t *master);
static inline void keys_freep(uint8_t **k)
{
	if (*k)
		keys_free(*k);
}
#define _cleanup_keys_ _cleanup_(keys_freep)

/* Derive subkey n (32 bytes) from the master key. */
void keys_derive(const uint8_t *master, enum subkey n, uint8_t out[32]);

/* Wrap master under passphrase, appending the key object to ret. Returns 0, -ENOMEM (the KDF
 * could not get its memory). */
int keys_wrap(const uint8_t *master, const char *passphrase, size_t passlen,
	      const uint8_t repo_id[REPO_ID_SIZE], enum kdf_strength strength, struct buf *ret);
/* Unwrap a key object. Returns 0 and a guarded master key, -EBADMSG (the object is corrupt
 * or not a key object), -EACCES (wrong passphrase), -ENOMEM. */
int keys_unwrap(const void *obj, size_t len, const char *passphrase, size_t passlen,
		const uint8_t repo_id[REPO_ID_SIZE], uint8_t **ret);
