/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The repository's `config` object: format version, repository id, cipher, chunker and pack
 * parameters. It is not secret and it is plain text, so an admin can read it:
 *
 *     cairn-repository 1
 *     id = <32 hex digits>
 *     encryption = xchacha20-poly1305 | none
 *     compression = lz4
 *     chunker = fastcdc <min> <avg> <max>
 *     pack-size = <bytes>
 *     master-key = <64 hex digits>          (only when encryption = none)
 *     mac = <64 hex digits>
 *
 * `mac` is keyed BLAKE2b-256 (SUBKEY_CONFIG of the master key) over every byte before the
 * "mac = " line, so changing a parameter is detected once the key is known. Unknown lines
 * before the mac are refused (-EBADMSG), so a newer format is never misread.
 *
 * Thread safety: all functions are reentrant.
 */
#pragma once

#include "keys.h"

#define CONFIG_VERSION 1
#define CONFIG_MAX_SIZE 4096
#define PACK_SIZE_DEFAULT (16u * 1024 * 1024)
#define PACK_SIZE_MIN (64u * 1024)
#define PACK_SIZE_MAX (512u * 1024 * 1024)

struct repo_config {
	unsigned version;
	uint8_t id[REPO_ID_SIZE];
	bool encrypted;
	uint32_t chunk_min, chunk_avg, chunk_max;
	uint32_t pack_size;
	bool has_plain_key;
	uint8_t plain_key[MASTER_KEY_SIZE]; /* only for encryption = none */
	uint8_t mac[32];
};

/* Fill defaults and a fresh random id. */
void config_init_defaults(struct repo_config *c, bool encrypted);
/* Serialise c, computing the mac with master. Appends to ret. Returns 0, -ENOMEM. */
int config_format(const struct repo_config *c, const uint8_t *master, struct buf *ret);
/* Parse without checking the mac (the key is not known yet). Returns 0 or -EBADMSG naming
 * nothing: the caller names the object. */
int config_parse(const void *data, size_t len, struct repo_config *ret);
/* Check the mac of the serialised config with master. Returns 0 or -EBADMSG. */
int config_verify(const void *data, size_t len, const uint8_t *master);
