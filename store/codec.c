/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The codec (see codec.h for the formats): blob ids with keyed BLAKE2b-256, lz4 compression
 * that is skipped when a sample shows the data will not shrink, and sealing with
 * XChaCha20-Poly1305 (or, in a plaintext repository, a keyed BLAKE2b-128 tag over
 * le64 adlen || ad || data). Blobs are compressed straight into the caller's buffer and sealed
 * in place, so encoding touches the plaintext once on input and once on output.
 */
#include "codec.h"
#include "keys.h"

#include <assert.h>
#include <lz4.h>
#include <sodium.h>

static_assert(sizeof(crypto_generichash_state) <= sizeof(((struct codec_hash *)0)->state),
	      "struct codec_hash is too small for crypto_generichash_state");
static_assert(_Alignof(crypto_generichash_state) <= 64,
	      "struct codec_hash is under-aligned for crypto_generichash_state");
static_assert(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES == SEAL_NONCE_SIZE, "nonce size");
static_assert(crypto_aead_xchacha20poly1305_ietf_ABYTES == SEAL_TAG_SIZE, "tag size");
static_assert(crypto_aead_xchacha20poly1305_ietf_KEYBYTES == CODEC_KEY_SIZE, "key size");
/* rawlen and LZ4's int sizes must hold any blob record. */
static_assert(BLOB_MAX_SIZE + 64 < (uint64_t)INT32_MAX, "BLOB_MAX_SIZE too large");

#define RECORD_HEADER_SIZE 5 /* u8 flags || le32 raw length */
#define RECORD_LZ4 0x01u

/*
 * Incompressible data (already compressed media, encrypted archives) is common in backups.
 * Compressing a sample first, with a higher acceleration, costs a few percent of a full pass
 * and lets such data go straight to the cipher.
 */
#define SAMPLE_SIZE (64u * 1024)
#define SAMPLE_ACCELERATION 4
/* Below this, lz4's framing overhead leaves nothing to gain. */
#define COMPRESS_MIN_SIZE 32u

static const char blob_ad_magic[] = "cairn-blob\x01";
#define BLOB_AD_MAGIC_SIZE (sizeof(blob_ad_magic) - 1)
#define BLOB_AD_SIZE (BLOB_AD_MAGIC_SIZE + 1 + BLOB_ID_SIZE)

static bool blob_type_valid(enum blob_type type)
{
	return type == BLOB_DATA || type == BLOB_TREE;
}

static void blob_ad(enum blob_type type, const struct blob_id *id, uint8_t ad[BLOB_AD_SIZE])
{
	memcpy(ad, blob_ad_magic, BLOB_AD_MAGIC_SIZE);
	ad[BLOB_AD_MAGIC_SIZE] = (uint8_t)type;
	memcpy(ad + BLOB_AD_MAGIC_SIZE + 1, id->b, BLOB_ID_SIZE);
}

int codec_global_init(void)
{
	return sodium_init() < 0 ? -EIO : 0;
}

int codec_init(struct codec *c, const uint8_t master_key[32], bool encrypted)
{
	uint8_t *keys;

	/* sodium_malloc() needs the library initialised; this is cheap when it already is. */
	if (sodium_init() < 0)
		return -ENOMEM;
	/* One guarded allocation for the four keys: each one would cost its own guard pages. */
	keys = sodium_malloc(4 * CODEC_KEY_SIZE);
	if (!keys)
		return -ENOMEM;
	keys_derive(master_key, SUBKEY_ID_DATA, keys);
	keys_derive(master_key, SUBKEY_ID_TREE, keys + CODEC_KEY_SIZE);
	keys_derive(master_key, SUBKEY_SEAL, keys + 2 * CODEC_KEY_SIZE);
	keys_derive(master_key, SUBKEY_PACK, keys + 3 * CODEC_KEY_SIZE);
	/* Nothing writes the keys again: a stray write faults instead of corrupting them. */
	sodium_mprotect_readonly(keys);

	*c = (struct codec){
		.encrypted = encrypted,
		.id_key_data = keys,
		.id_key_tree = keys + CODEC_KEY_SIZE,
		.seal_key = keys + 2 * CODEC_KEY_SIZE,
		.pack_key = keys + 3 * CODEC_KEY_SIZE,
	};
	return 0;
}

void codec_release(struct codec *c)
{
	/* id_key_data is the base of the single allocation; sodium_free() wipes it. */
	if (c->id_key_data)
		sodium_free(c->id_key_data);
	*c = (struct codec){0};
}

void codec_blob_id(const struct codec *c, enum blob_type type, const void *data, size_t len,
		   struct blob_id *ret)
{
	assert(blob_type_valid(type));
	crypto_generichash(ret->b, BLOB_ID_SIZE, data, len,
			   type == BLOB_TREE ? c->id_key_tree : c->id_key_data, CODEC_KEY_SIZE);
}

size_t codec_seal_overhead(const struct codec *c)
{
	return (c->encrypted ? SEAL_NONCE_SIZE : 0) + SEAL_TAG_SIZE;
}

static size_t seal_prefix(const struct codec *c)
{
	return c->encrypted ? SEAL_NONCE_SIZE : 0;
}

static void plain_tag(const struct codec *c, const void *ad, size_t adlen, const uint8_t *data,
		      size_t len, uint8_t tag[SEAL_TAG_SIZE])
{
	crypto_generichash_state st;
	uint8_t l[8];

	/* The length prefix keeps the ad/data boundary unambiguous. */
	put_le64(l, adlen);
	crypto_generichash_init(&st, c->seal_key, CODEC_KEY_SIZE, SEAL_TAG_SIZE);
	crypto_generichash_update(&st, l, sizeof(l));
	if (adlen)
		crypto_generichash_update(&st, ad, adlen);
	if (len)
		crypto_generichash_update(&st, data, len);
	crypto_generichash_final(&st, tag, SEAL_TAG_SIZE);
}

/*
 * Seal in place: out has seal_prefix() bytes of room, then the mlen plaintext bytes, then
 * room for the tag. libsodium encrypts with c == m.
 */
static void seal_in_place(const struct codec *c, const void *ad, size_t adlen, uint8_t *out,
			  size_t mlen)
{
	if (c->encrypted) {
		uint8_t *m = out + SEAL_NONCE_SIZE;

		randombytes_buf(out, SEAL_NONCE_SIZE);
		crypto_aead_xchacha20poly1305_ietf_encrypt_detached(m, m + mlen, NULL, m, mlen, ad,
								    adlen, NULL, out, c->seal_key);
	} else
		plain_tag(c, ad, adlen, out, mlen, out + mlen);
}

/*
 * Authenticate a sealed object of len >= codec_seal_overhead() bytes. Encrypted: decrypt into
 * out (room for len - overhead bytes) and point *ret there. Plaintext: point *ret into
 * sealed; out is unused. Returns 0 or -EBADMSG.
 */
static int open_sealed(const struct codec *c, const void *ad, size_t adlen, const uint8_t *sealed,
		       size_t len, uint8_t *out, const uint8_t **ret)
{
	size_t mlen = len - codec_seal_overhead(c);

	if (c->encrypted) {
		const uint8_t *ct = sealed + SEAL_NONCE_SIZE;

		if (crypto_aead_xchacha20poly1305_ietf_decrypt_detached(
			    out, NULL, ct, mlen, ct + mlen, ad, adlen, sealed, c->seal_key) != 0)
			return -EBADMSG;
		*ret = out;
	} else {
		uint8_t tag[SEAL_TAG_SIZE];

		plain_tag(c, ad, adlen, sealed, mlen, tag);
		if (sodium_memcmp(tag, sealed + mlen, SEAL_TAG_SIZE) != 0)
			return -EBADMSG;
		*ret = sealed;
	}
	return 0;
}

int codec_seal(const struct codec *c, const void *ad, size_t adlen, const void *data, size_t len,
	       struct buf *ret)
{
	size_t prefix = seal_prefix(c), total;
	uint8_t *out;
	int r;

	if (len > SIZE_MAX - codec_seal_overhead(c))
		return -ENOMEM;
	total = len + codec_seal_overhead(c);
	r = buf_reserve(ret, total);
	if (r < 0)
		return r;
	out = ret->data + ret->len;
	if (len)
		memcpy(out + prefix, data, len);
	seal_in_place(c, ad, adlen, out, len);
	ret->len += total;
	return 0;
}

int codec_open(const struct codec *c, const void *ad, size_t adlen, const void *sealed, size_t len,
	       struct buf *ret)
{
	const uint8_t *plain;
	size_t mlen;
	int r;

	if (len < codec_seal_overhead(c))
		return -EBADMSG;
	mlen = len - codec_seal_overhead(c);
	if (!c->encrypted) {
		r = open_sealed(c, ad, adlen, sealed, len, NULL, &plain);
		return r < 0 ? r : buf_append(ret, plain, mlen);
	}
	/* At least one byte, so the destination is never a null pointer. */
	r = buf_reserve(ret, MAX(mlen, (size_t)1));
	if (r < 0)
		return r;
	r = open_sealed(c, ad, adlen, sealed, len, ret->data + ret->len, &plain);
	if (r < 0)
		return r;
	ret->len += mlen;
	return 0;
}

/*
 * Compress src into dst (room for LZ4_compressBound(len) bytes). Returns the compressed size,
 * or 0 when the blob is to be stored raw: compression must save at least 1/32 to pay for
 * decompressing it on every read.
 */
static size_t compress_maybe(const uint8_t *src, size_t len, uint8_t *dst)
{
	int n;

	if (len < COMPRESS_MIN_SIZE)
		return 0;
	if (len > 2 * SAMPLE_SIZE) {
		/* Capped output: lz4 gives up as soon as the sample cannot shrink enough. */
		n = LZ4_compress_fast((const char *)src, (char *)dst, SAMPLE_SIZE,
				      SAMPLE_SIZE - SAMPLE_SIZE / 32, SAMPLE_ACCELERATION);
		if (n <= 0)
			return 0;
	}
	/* A full-bound destination lets lz4 skip its output checks, which is a little faster
	 * than capping it at the size we would accept. */
	n = LZ4_compress_default((const char *)src, (char *)dst, (int)len,
				 LZ4_compressBound((int)len));
	return n > 0 && (size_t)n <= len - len / 32 ? (size_t)n : 0;
}

int codec_encode_blob(const struct codec *c, enum blob_type type, const struct blob_id *id,
		      const void *data, size_t len, struct buf *ret)
{
	size_t prefix = seal_prefix(c), plen, mlen;
	uint8_t ad[BLOB_AD_SIZE], *out, *rec;
	int r;

	if (len > BLOB_MAX_SIZE || !blob_type_valid(type))
		return -EINVAL;
	/* Room to compress in place; what is not used stays spare capacity of ret. */
	r = buf_reserve(ret, prefix + RECORD_HEADER_SIZE + (size_t)LZ4_compressBound((int)len) +
				     SEAL_TAG_SIZE);
	if (r < 0)
		return r;
	out = ret->data + ret->len;
	rec = out + prefix;

	plen = compress_maybe(data, len, rec + RECORD_HEADER_SIZE);
	if (plen) {
		rec[0] = RECORD_LZ4;
	} else {
		rec[0] = 0;
		plen = len;
		if (len)
			memcpy(rec + RECORD_HEADER_SIZE, data, len);
	}
	put_le32(rec + 1, (uint32_t)len);
	mlen = RECORD_HEADER_SIZE + plen;

	blob_ad(type, id, ad);
	seal_in_place(c, ad, sizeof(ad), out, mlen);
	ret->len += prefix + mlen + SEAL_TAG_SIZE;
	return 0;
}

int codec_decode_blob(const struct codec *c, enum blob_type type, const struct blob_id *id,
		      const void *sealed, size_t len, struct buf *ret)
{
	_cleanup_free_ uint8_t *tmp = NULL;
	const uint8_t *rec, *payload, *plain;
	uint8_t ad[BLOB_AD_SIZE];
	struct blob_id check;
	size_t mlen, plen;
	uint32_t rawlen;
	bool in_ret = true; /* is plain already in ret's free space? */
	uint8_t flags;
	int r;

	if (!blob_type_valid(type))
		return -EBADMSG;
	/* Bound the record before allocating for it: a raw record is the largest there is. */
	if (len < codec_seal_overhead(c) + RECORD_HEADER_SIZE ||
	    len - codec_seal_overhead(c) > RECORD_HEADER_SIZE + BLOB_MAX_SIZE)
		return -EBADMSG;
	mlen = len - codec_seal_overhead(c);

	blob_ad(type, id, ad);
	if (c->encrypted) {
		/* Decrypt into ret's free space, where the plaintext will end up anyway. */
		r = buf_reserve(ret, mlen);
		if (r < 0)
			return r;
		r = open_sealed(c, ad, sizeof(ad), sealed, len, ret->data + ret->len, &rec);
	} else
		r = open_sealed(c, ad, sizeof(ad), sealed, len, NULL, &rec);
	if (r < 0)
		return r;

	flags = rec[0];
	rawlen = get_le32(rec + 1);
	payload = rec + RECORD_HEADER_SIZE;
	plen = mlen - RECORD_HEADER_SIZE;
	if ((flags & ~RECORD_LZ4) != 0 || rawlen > BLOB_MAX_SIZE)
		return -EBADMSG;

	if (!(flags & RECORD_LZ4)) {
		if (rawlen != plen)
			return -EBADMSG;
		if (c->encrypted) {
			memmove(ret->data + ret->len, payload, plen);
			plain = ret->data + ret->len;
		} else {
			plain = payload; /* copied below, once it is known to be right */
			in_ret = false;
		}
	} else {
		/* The encoder never compresses empty blobs nor stores a larger payload. */
		if (rawlen == 0 || plen == 0 || plen > rawlen)
			return -EBADMSG;
		if (c->encrypted) {
			/* The compressed payload sits where the output goes: move it aside. */
			tmp = malloc(plen);
			if (!tmp)
				return -ENOMEM;
			memcpy(tmp, payload, plen);
			payload = tmp;
		}
		r = buf_reserve(ret, rawlen);
		if (r < 0)
			return r;
		if (LZ4_decompress_safe((const char *)payload, (char *)ret->data + ret->len,
					(int)plen, (int)rawlen) != (int)rawlen)
			return -EBADMSG;
		plain = ret->data + ret->len;
	}

	/* The AEAD proves who wrote the record; this proves the record is what the id names. */
	codec_blob_id(c, type, plain, rawlen, &check);
	if (sodium_memcmp(check.b, id->b, BLOB_ID_SIZE) != 0)
		return -EBADMSG;

	if (!in_ret)
		return buf_append(ret, plain, rawlen);
	ret->len += rawlen;
	return 0;
}

void codec_hash_init(const struct codec *c, struct codec_hash *h)
{
	crypto_generichash_init((crypto_generichash_state *)h->state, c->pack_key, CODEC_KEY_SIZE,
				32);
}

void codec_hash_update(struct codec_hash *h, const void *data, size_t len)
{
	if (len)
		crypto_generichash_update((crypto_generichash_state *)h->state, data, len);
}

void codec_hash_final(struct codec_hash *h, uint8_t out[32])
{
	crypto_generichash_final((crypto_generichash_state *)h->state, out, 32);
}

void codec_hash_keyed(const uint8_t key[32], const void *data, size_t len, uint8_t out[32])
{
	crypto_generichash(out, 32, data, len, key, 32);
}

void codec_random(void *out, size_t len)
{
	randombytes_buf(out, len);
}

void blob_id_hex(const struct blob_id *id, char out[BLOB_ID_HEX_SIZE])
{
	hex_encode(id->b, BLOB_ID_SIZE, out);
}
