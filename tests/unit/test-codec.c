/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests for store/codec.c, in encrypted and plaintext mode: blob ids, encode/decode round
 * trips from empty to BLOB_MAX_SIZE, raw storage of incompressible data, rejection of every
 * flipped bit, truncation, wrong id/type/key and forged records, seal/open of metadata, the
 * streaming hash. Encode and decode speeds are reported as diagnostics, never failures.
 */
#include "codec.h"
#include "keys.h"

#include <lz4.h>

#include "tap.h"

#define MiB (1024u * 1024)

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint8_t *random_data(size_t len, uint64_t seed)
{
	uint8_t *p = malloc(len ? len : 1);
	size_t i = 0;

	tap_require(p);
	for (; i + 8 <= len; i += 8)
		put_le64(p + i, splitmix64(&seed));
	for (; i < len; i++)
		p[i] = (uint8_t)splitmix64(&seed);
	return p;
}

/* Text-like data: words from a skewed vocabulary, spaces and line breaks. */
static uint8_t *text_data(size_t len, uint64_t seed)
{
	enum { NWORDS = 1024 };
	static char words[NWORDS][12];
	uint8_t *p = malloc(len ? len : 1);
	size_t i = 0, col = 0;

	tap_require(p);
	for (int w = 0; w < NWORDS; w++) {
		int n = 2 + (int)(splitmix64(&seed) % 9);
		for (int k = 0; k < n; k++)
			words[w][k] = (char)('a' + splitmix64(&seed) % 26);
		words[w][n] = 0;
	}
	while (i < len) {
		uint64_t r = splitmix64(&seed);
		/* The least of three draws favours low-numbered words, as text does. */
		uint64_t a = r % NWORDS, b = (r >> 21) % NWORDS, d = (r >> 42) % NWORDS;
		const char *word = words[MIN(MIN(a, b), d)];
		for (size_t k = 0; word[k] && i < len; k++, col++)
			p[i++] = (uint8_t)word[k];
		if (i < len)
			p[i++] = col > 72 ? '\n' : ' ';
		col = col > 72 ? 0 : col + 1;
	}
	return p;
}

static struct codec enc, plain, other;
static struct codec *const modes[] = {&enc, &plain};
static const char *const mode_name[] = {"encrypted", "plaintext"};

static void setup(void)
{
	uint8_t m1[32], m2[32];

	memset(m1, 0x11, sizeof(m1));
	memset(m2, 0x22, sizeof(m2));
	is_int(codec_global_init(), 0, "codec_global_init");
	is_int(codec_global_init(), 0, "codec_global_init again");
	tap_require(codec_init(&enc, m1, true) == 0);
	tap_require(codec_init(&plain, m1, false) == 0);
	tap_require(codec_init(&other, m2, true) == 0);
	is_int(codec_seal_overhead(&enc), 40, "encrypted seal overhead");
	is_int(codec_seal_overhead(&plain), 16, "plaintext seal overhead");
}

static void test_ids(void)
{
	struct blob_id a, b, c, d, e, f;
	char hex[BLOB_ID_HEX_SIZE], want[BLOB_ID_HEX_SIZE];

	codec_blob_id(&enc, BLOB_DATA, "hello", 5, &a);
	codec_blob_id(&enc, BLOB_DATA, "hello", 5, &b);
	ok(memcmp(&a, &b, sizeof(a)) == 0, "id is deterministic");
	codec_blob_id(&enc, BLOB_TREE, "hello", 5, &c);
	ok(memcmp(&a, &c, sizeof(a)) != 0, "id differs per type");
	codec_blob_id(&other, BLOB_DATA, "hello", 5, &d);
	ok(memcmp(&a, &d, sizeof(a)) != 0, "id differs per key");
	codec_blob_id(&plain, BLOB_DATA, "hello", 5, &e);
	ok(memcmp(&a, &e, sizeof(a)) == 0, "id does not depend on the mode");
	codec_blob_id(&enc, BLOB_DATA, "hellp", 5, &f);
	ok(memcmp(&a, &f, sizeof(a)) != 0, "id differs per content");
	codec_blob_id(&enc, BLOB_DATA, NULL, 0, &f);
	codec_blob_id(&enc, BLOB_DATA, "", 0, &b);
	ok(memcmp(&f, &b, sizeof(f)) == 0 && memcmp(&f, &a, sizeof(f)) != 0, "id of empty data");

	blob_id_hex(&a, hex);
	hex_encode(a.b, BLOB_ID_SIZE, want);
	ok(strlen(hex) == 64 && strcmp(hex, want) == 0, "blob_id_hex");
}

/* Encode then decode into a buffer that already holds something; check both. */
static bool round_trip(const struct codec *c, enum blob_type type, const uint8_t *data, size_t len,
		       size_t *ret_sealed_len)
{
	_cleanup_buf_ struct buf sealed = {0}, out = {0};
	struct blob_id id;

	codec_blob_id(c, type, data, len, &id);
	tap_require(buf_append(&sealed, "xyz", 3) == 0);
	if (codec_encode_blob(c, type, &id, data, len, &sealed) < 0)
		return false;
	if (memcmp(sealed.data, "xyz", 3) != 0)
		return false;
	tap_require(buf_append(&out, "PRE", 3) == 0);
	if (codec_decode_blob(c, type, &id, sealed.data + 3, sealed.len - 3, &out) < 0)
		return false;
	*ret_sealed_len = sealed.len - 3;
	return out.len == 3 + len && memcmp(out.data, "PRE", 3) == 0 &&
	       (len == 0 || memcmp(out.data + 3, data, len) == 0);
}

/* A round trip; the sealed size must be len + 5 + overhead (raw) when max_sealed is 0, and
 * at most max_sealed (compressed) otherwise. */
static void check_rt(const struct codec *c, const char *mn, const char *what, enum blob_type type,
		     const uint8_t *data, size_t len, size_t max_sealed)
{
	size_t sl = 0;
	bool good = round_trip(c, type, data, len, &sl);

	if (max_sealed == 0)
		ok(good && sl == len + 5 + codec_seal_overhead(c), "%s: %s: round trip, stored raw",
		   mn, what);
	else
		ok(good && sl <= max_sealed, "%s: %s: round trip, compressed to %.1f%%", mn, what,
		   100.0 * (double)sl / (double)len);
}

static void test_round_trips(void)
{
	uint8_t *rnd = random_data(BLOB_MAX_SIZE + 1, 1);
	uint8_t *txt = text_data(BLOB_MAX_SIZE, 2);
	static const uint8_t zeros[4096];

	for (size_t m = 0; m < ELEMENTSOF(modes); m++) {
		const struct codec *c = modes[m];
		const char *mn = mode_name[m];

		check_rt(c, mn, "empty", BLOB_DATA, NULL, 0, 0);
		check_rt(c, mn, "1 byte (tree)", BLOB_TREE, (const uint8_t *)"x", 1, 0);
		check_rt(c, mn, "31 zero bytes (too small to compress)", BLOB_DATA, zeros, 31, 0);
		check_rt(c, mn, "4 KiB of zeros", BLOB_DATA, zeros, sizeof(zeros), 100);
		check_rt(c, mn, "16000 bytes of text", BLOB_DATA, txt, 16000, 15000);
		check_rt(c, mn, "1 MiB of text", BLOB_DATA, txt, MiB, MiB * 3 / 4);
		check_rt(c, mn, "1000 random bytes", BLOB_DATA, rnd, 1000, 0);
		check_rt(c, mn, "100000 random bytes (no sample)", BLOB_DATA, rnd, 100000, 0);
		check_rt(c, mn, "1 MiB random", BLOB_DATA, rnd, MiB, 0);
		check_rt(c, mn, "BLOB_MAX_SIZE of text", BLOB_DATA, txt, BLOB_MAX_SIZE,
			 BLOB_MAX_SIZE * 3 / 4);
		check_rt(c, mn, "BLOB_MAX_SIZE random", BLOB_DATA, rnd, BLOB_MAX_SIZE, 0);

		/* Random data with a compressible head: the sample passes, the whole does not. */
		uint8_t *mixed = random_data(4 * MiB, 3);
		memset(mixed, 'a', 128 * 1024);
		check_rt(c, mn, "compressible head, random rest", BLOB_DATA, mixed, 4 * MiB, 0);
		free(mixed);

		_cleanup_buf_ struct buf b = {0};
		struct blob_id id;
		codec_blob_id(c, BLOB_DATA, rnd, BLOB_MAX_SIZE + 1, &id);
		is_int(codec_encode_blob(c, BLOB_DATA, &id, rnd, BLOB_MAX_SIZE + 1, &b), -EINVAL,
		       "%s: encode of BLOB_MAX_SIZE + 1 is -EINVAL", mn);
		is_int(codec_encode_blob(c, 0, &id, rnd, 10, &b), -EINVAL, "%s: type 0 is -EINVAL",
		       mn);
		is_int(codec_encode_blob(c, _BLOB_TYPE_MAX, &id, rnd, 10, &b), -EINVAL,
		       "%s: type out of range is -EINVAL", mn);
		is_int(b.len, 0, "%s: nothing appended on error", mn);
	}

	/* A plaintext repository keeps raw data readable: flags, rawlen, data, tag. */
	_cleanup_buf_ struct buf b = {0};
	struct blob_id id;
	codec_blob_id(&plain, BLOB_DATA, rnd, 1000, &id);
	tap_require(codec_encode_blob(&plain, BLOB_DATA, &id, rnd, 1000, &b) == 0);
	ok(b.len == 1021 && b.data[0] == 0 && get_le32(b.data + 1) == 1000 &&
		   memcmp(b.data + 5, rnd, 1000) == 0,
	   "plaintext: record layout is flags | le32 rawlen | data | tag");
	buf_reset(&b);
	tap_require(codec_encode_blob(&enc, BLOB_DATA, &id, rnd, 1000, &b) == 0);
	ok(b.len == 1045 && memmem(b.data, b.len, rnd, 16) == NULL,
	   "encrypted: data does not appear in the sealed blob");

	free(rnd);
	free(txt);
}

static int decode(const struct codec *c, enum blob_type type, const struct blob_id *id,
		  const uint8_t *sealed, size_t len, size_t *ret_out_len)
{
	_cleanup_buf_ struct buf out = {0};
	int r = codec_decode_blob(c, type, id, sealed, len, &out);
	*ret_out_len = out.len;
	return r;
}

static void test_tamper(void)
{
	uint8_t *txt = text_data(MiB, 4);
	uint8_t *rnd = random_data(MiB, 5);

	for (size_t m = 0; m < ELEMENTSOF(modes); m++) {
		const struct codec *c = modes[m];
		const char *mn = mode_name[m];
		static const struct {
			const char *what;
			size_t len;
			bool random;
		} blobs[] = {
			{"small text", 200, false},
			{"small random", 64, true},
			{"1 MiB text", MiB, false},
			{"1 MiB random", MiB, true},
		};

		for (size_t k = 0; k < ELEMENTSOF(blobs); k++) {
			_cleanup_buf_ struct buf s = {0};
			const uint8_t *data = blobs[k].random ? rnd : txt;
			size_t len = blobs[k].len, outlen, bad = 0, tried = 0;
			struct blob_id id, wrong;
			int r;

			codec_blob_id(c, BLOB_DATA, data, len, &id);
			tap_require(codec_encode_blob(c, BLOB_DATA, &id, data, len, &s) == 0);
			is_int(decode(c, BLOB_DATA, &id, s.data, s.len, &outlen), 0,
			       "%s, %s: decodes", mn, blobs[k].what);

			/* Flip one bit: every bit of a small blob, a spread of positions in
			 * a large one (nonce, record header, ciphertext, tag). */
			const size_t spread[] = {0,	    1,		23,	    24,
						 25,	    28,		29,	    30,
						 s.len / 2, s.len - 17, s.len - 16, s.len - 1};
			bool every = len <= 1000;
			for (size_t i = 0; i < (every ? s.len : ELEMENTSOF(spread)); i++) {
				size_t at = every ? i : spread[i];
				for (int bit = 0; bit < 8; bit++) {
					s.data[at] ^= (uint8_t)(1u << bit);
					r = decode(c, BLOB_DATA, &id, s.data, s.len, &outlen);
					bad += r != -EBADMSG || outlen != 0;
					tried++;
					s.data[at] ^= (uint8_t)(1u << bit);
				}
			}
			ok(bad == 0, "%s, %s: %zu single-bit flips all give -EBADMSG and no data",
			   mn, blobs[k].what, tried);

			/* Truncation: every length of a small blob, a few of a large one. */
			bad = tried = 0;
			for (size_t l = 0; l < s.len; l += len <= 1000 ? 1 : 4099) {
				bad += decode(c, BLOB_DATA, &id, s.data, l, &outlen) != -EBADMSG;
				tried++;
			}
			bad += decode(c, BLOB_DATA, &id, s.data, s.len - 1, &outlen) != -EBADMSG;
			ok(bad == 0, "%s, %s: %zu truncations give -EBADMSG", mn, blobs[k].what,
			   tried + 1);
			tap_require(buf_append(&s, "", 1) == 0);
			is_int(decode(c, BLOB_DATA, &id, s.data, s.len, &outlen), -EBADMSG,
			       "%s, %s: one byte too many is -EBADMSG", mn, blobs[k].what);
			s.len--;

			wrong = id;
			wrong.b[31] ^= 1;
			is_int(decode(c, BLOB_DATA, &wrong, s.data, s.len, &outlen), -EBADMSG,
			       "%s, %s: wrong id is -EBADMSG", mn, blobs[k].what);
			is_int(decode(c, BLOB_TREE, &id, s.data, s.len, &outlen), -EBADMSG,
			       "%s, %s: wrong type is -EBADMSG", mn, blobs[k].what);
			is_int(decode(c, _BLOB_TYPE_MAX, &id, s.data, s.len, &outlen), -EBADMSG,
			       "%s, %s: invalid type is -EBADMSG", mn, blobs[k].what);
			is_int(decode(&other, BLOB_DATA, &id, s.data, s.len, &outlen), -EBADMSG,
			       "%s, %s: wrong key is -EBADMSG", mn, blobs[k].what);
			is_int(decode(c == &enc ? &plain : &enc, BLOB_DATA, &id, s.data, s.len,
				      &outlen),
			       -EBADMSG, "%s, %s: wrong mode is -EBADMSG", mn, blobs[k].what);
		}

		/* Sealed under an id that is not the content's: the seal is fine, the id check
		 * over the plaintext is what catches it. */
		_cleanup_buf_ struct buf s = {0};
		struct blob_id lie;
		size_t outlen;
		codec_blob_id(c, BLOB_DATA, "something else", 14, &lie);
		tap_require(codec_encode_blob(c, BLOB_DATA, &lie, txt, 5000, &s) == 0);
		is_int(decode(c, BLOB_DATA, &lie, s.data, s.len, &outlen), -EBADMSG,
		       "%s: content not matching its id is -EBADMSG", mn);
		is_int(outlen, 0, "%s: and no data", mn);
	}
	free(txt);
	free(rnd);
}

/* Seal a hand-made record the way the codec seals blobs (codec_seal with the blob's ad). */
static void forge(const struct codec *c, enum blob_type type, const struct blob_id *id,
		  uint8_t flags, uint32_t rawlen, const void *payload, size_t plen, struct buf *ret)
{
	_cleanup_buf_ struct buf rec = {0};
	uint8_t ad[11 + 1 + BLOB_ID_SIZE];

	memcpy(ad, "cairn-blob\x01", 11);
	ad[11] = (uint8_t)type;
	memcpy(ad + 12, id->b, BLOB_ID_SIZE);
	tap_require(buf_append(&rec, &flags, 1) == 0);
	tap_require(buf_append_le32(&rec, rawlen) == 0);
	tap_require(buf_append(&rec, payload, plen) == 0);
	buf_reset(ret);
	tap_require(codec_seal(c, ad, sizeof(ad), rec.data, rec.len, ret) == 0);
}

static void test_forged(void)
{
	uint8_t *txt = text_data(100000, 6);
	char *lz = malloc((size_t)LZ4_compressBound(100000));
	int lzlen;

	tap_require(lz);
	lzlen = LZ4_compress_default((const char *)txt, lz, 100000, LZ4_compressBound(100000));
	tap_require(lzlen > 0 && lzlen < 100000);

	for (size_t m = 0; m < ELEMENTSOF(modes); m++) {
		const struct codec *c = modes[m];
		const char *mn = mode_name[m];
		_cleanup_buf_ struct buf s = {0};
		struct blob_id id;
		size_t outlen;

		codec_blob_id(c, BLOB_DATA, txt, 100000, &id);
		forge(c, BLOB_DATA, &id, 0, 100000, txt, 100000, &s);
		is_int(decode(c, BLOB_DATA, &id, s.data, s.len, &outlen), 0,
		       "%s: a hand-made raw record decodes (the format is as documented)", mn);
		forge(c, BLOB_DATA, &id, 1, 100000, lz, (size_t)lzlen, &s);
		is_int(decode(c, BLOB_DATA, &id, s.data, s.len, &outlen), 0,
		       "%s: a hand-made lz4 record decodes", mn);
		is_int(outlen, 100000, "%s: to the right length", mn);

		forge(c, BLOB_DATA, &id, 1, BLOB_MAX_SIZE + 1, lz, (size_t)lzlen, &s);
		is_int(decode(c, BLOB_DATA, &id, s.data, s.len, &outlen), -EBADMSG,
		       "%s: lz4 record claiming rawlen > BLOB_MAX_SIZE", mn);
		forge(c, BLOB_DATA, &id, 1, UINT32_MAX, lz, (size_t)lzlen, &s);
		is_int(decode(c, BLOB_DATA, &id, s.data, s.len, &outlen), -EBADMSG,
		       "%s: lz4 record claiming rawlen 4 GiB - 1", mn);
		forge(c, BLOB_DATA, &id, 0, BLOB_MAX_SIZE + 1, txt, 100000, &s);
		is_int(decode(c, BLOB_DATA, &id, s.data, s.len, &outlen), -EBADMSG,
		       "%s: raw record claiming rawlen > BLOB_MAX_SIZE", mn);
		forge(c, BLOB_DATA, &id, 1, 100001, lz, (size_t)lzlen, &s);
		is_int(decode(c, BLOB_DATA, &id, s.data, s.len, &outlen), -EBADMSG,
		       "%s: lz4 record with rawlen one too large", mn);
		forge(c, BLOB_DATA, &id, 1, 99999, lz, (size_t)lzlen, &s);
		is_int(decode(c, BLOB_DATA, &id, s.data, s.len, &outlen), -EBADMSG,
		       "%s: lz4 record with rawlen one too small", mn);
		forge(c, BLOB_DATA, &id, 1, 100000, lz, (size_t)lzlen - 1, &s);
		is_int(decode(c, BLOB_DATA, &id, s.data, s.len, &outlen), -EBADMSG,
		       "%s: lz4 record with a truncated payload", mn);
		forge(c, BLOB_DATA, &id, 1, 100000, txt, 1000, &s);
		is_int(decode(c, BLOB_DATA, &id, s.data, s.len, &outlen), -EBADMSG,
		       "%s: lz4 record with a garbage payload", mn);
		forge(c, BLOB_DATA, &id, 1, 0, "", 0, &s);
		is_int(decode(c, BLOB_DATA, &id, s.data, s.len, &outlen), -EBADMSG,
		       "%s: lz4 record with nothing in it", mn);
		forge(c, BLOB_DATA, &id, 0, 100001, txt, 100000, &s);
		is_int(decode(c, BLOB_DATA, &id, s.data, s.len, &outlen), -EBADMSG,
		       "%s: raw record with rawlen != payload length", mn);
		forge(c, BLOB_DATA, &id, 2, 100000, txt, 100000, &s);
		is_int(decode(c, BLOB_DATA, &id, s.data, s.len, &outlen), -EBADMSG,
		       "%s: unknown flag bit", mn);
		forge(c, BLOB_DATA, &id, 0, 100000, txt, 100000, &s);
		s.len = 2;
		is_int(decode(c, BLOB_DATA, &id, s.data, s.len, &outlen), -EBADMSG,
		       "%s: shorter than a record header", mn);
		ok(outlen == 0, "%s: no data from any forged record", mn);
	}
	free(lz);
	free(txt);
}

static void test_seal(void)
{
	for (size_t m = 0; m < ELEMENTSOF(modes); m++) {
		const struct codec *c = modes[m];
		const char *mn = mode_name[m];
		_cleanup_buf_ struct buf s = {0}, o = {0};
		size_t bad = 0;

		tap_require(buf_append(&s, "P", 1) == 0);
		is_int(codec_seal(c, "ad-1", 4, "metadata", 8, &s), 0, "%s: seal", mn);
		is_int(s.len, 1 + 8 + codec_seal_overhead(c), "%s: seal appends len + overhead",
		       mn);
		is_int(codec_open(c, "ad-1", 4, s.data + 1, s.len - 1, &o), 0, "%s: open", mn);
		ok(o.len == 8 && memcmp(o.data, "metadata", 8) == 0, "%s: open gives the data", mn);
		is_int(codec_open(c, "ad-2", 4, s.data + 1, s.len - 1, &o), -EBADMSG,
		       "%s: open with wrong ad", mn);
		is_int(codec_open(c, "ad-1x", 5, s.data + 1, s.len - 1, &o), -EBADMSG,
		       "%s: open with longer ad", mn);
		is_int(codec_open(c, NULL, 0, s.data + 1, s.len - 1, &o), -EBADMSG,
		       "%s: open with no ad", mn);
		is_int(codec_open(&other, "ad-1", 4, s.data + 1, s.len - 1, &o), -EBADMSG,
		       "%s: open with wrong key", mn);
		for (size_t i = 1; i < s.len; i++) {
			s.data[i] ^= 0x80;
			bad += codec_open(c, "ad-1", 4, s.data + 1, s.len - 1, &o) != -EBADMSG;
			s.data[i] ^= 0x80;
		}
		for (size_t l = 0; l < s.len - 1; l++)
			bad += codec_open(c, "ad-1", 4, s.data + 1, l, &o) != -EBADMSG;
		ok(bad == 0, "%s: every flipped byte and every truncation fails", mn);
		is_int(o.len, 8, "%s: failed opens append nothing", mn);

		buf_reset(&s);
		buf_reset(&o);
		is_int(codec_seal(c, NULL, 0, NULL, 0, &s), 0, "%s: seal of nothing", mn);
		is_int(s.len, codec_seal_overhead(c), "%s: is just the overhead", mn);
		is_int(codec_open(c, NULL, 0, s.data, s.len, &o), 0, "%s: opens", mn);
		is_int(o.len, 0, "%s: to nothing", mn);
		is_int(codec_open(c, "x", 1, s.data, s.len, &o), -EBADMSG,
		       "%s: empty data still bound to its ad", mn);
	}
}

static void test_hash_random(void)
{
	uint8_t *data = random_data(100000, 8);
	uint8_t one[32], streamed[32], other_key[32];
	struct codec_hash h;

	codec_hash_keyed(enc.pack_key, data, 100000, one);
	codec_hash_init(&enc, &h);
	for (size_t pos = 0, step = 1; pos < 100000; pos += step, step = step * 3 + 1)
		codec_hash_update(&h, data + pos, MIN(step, 100000 - pos));
	codec_hash_update(&h, NULL, 0);
	codec_hash_final(&h, streamed);
	ok(memcmp(one, streamed, 32) == 0, "streaming hash in pieces equals the one-shot hash");

	codec_hash_init(&other, &h);
	codec_hash_update(&h, data, 100000);
	codec_hash_final(&h, other_key);
	ok(memcmp(one, other_key, 32) != 0, "streaming hash depends on the key");
	ok(memcmp(enc.pack_key, enc.seal_key, 32) && memcmp(enc.pack_key, enc.id_key_data, 32) &&
		   memcmp(enc.id_key_data, enc.id_key_tree, 32),
	   "the codec's keys are distinct");

	uint8_t r1[32] = {0}, r2[32] = {0};
	codec_random(r1, sizeof(r1));
	codec_random(r2, sizeof(r2));
	ok(memcmp(r1, r2, 32) != 0, "codec_random gives different bytes each time");
	free(data);
}

static void speed(const char *what, const uint8_t *data, size_t len)
{
	const size_t blob = MiB;
	_cleanup_buf_ struct buf s = {0}, out = {0};
	struct blob_id *ids = malloc((len / blob) * sizeof(*ids));
	size_t *ends = malloc((len / blob) * sizeof(*ends));
	uint64_t t0, t1, t2, t3;

	tap_require(ids && ends);
	tap_require(buf_reserve(&s, len + len / 16) == 0 && buf_reserve(&out, len) == 0);
	/* Touch the buffers first: page faults are not the codec's cost. */
	memset(s.data, 0, s.cap);
	memset(out.data, 0, out.cap);
	t0 = now_ns();
	for (size_t i = 0; i < len / blob; i++)
		codec_blob_id(&enc, BLOB_DATA, data + i * blob, blob, &ids[i]);
	t1 = now_ns();
	for (size_t i = 0; i < len / blob; i++) {
		tap_require(codec_encode_blob(&enc, BLOB_DATA, &ids[i], data + i * blob, blob,
					      &s) == 0);
		ends[i] = s.len;
	}
	t2 = now_ns();
	for (size_t i = 0, start = 0; i < len / blob; start = ends[i++])
		tap_require(codec_decode_blob(&enc, BLOB_DATA, &ids[i], s.data + start,
					      ends[i] - start, &out) == 0);
	t3 = now_ns();
	ok(out.len == len && memcmp(out.data, data, len) == 0, "%s: speed run round-trips", what);
	diag("%s, %zu MiB in 1 MiB blobs, encrypted: id %.0f MB/s, encode %.0f MB/s, "
	     "decode (incl. id check) %.0f MB/s, stored %.1f%%",
	     what, len / MiB, (double)len / ((double)(t1 - t0) / 1e3),
	     (double)len / ((double)(t2 - t1) / 1e3), (double)len / ((double)(t3 - t2) / 1e3),
	     100.0 * (double)s.len / (double)len);
	free(ids);
	free(ends);
}

int main(void)
{
	plan_lazy();
	setup();
	test_ids();
	test_round_trips();
	test_tamper();
	test_forged();
	test_seal();
	test_hash_random();

	uint8_t *txt = text_data(64 * MiB, 9), *rnd = random_data(64 * MiB, 10);
	speed("text-like", txt, 64 * MiB);
	speed("random", rnd, 64 * MiB);
	free(txt);
	free(rnd);

	codec_release(&enc);
	codec_release(&plain);
	codec_release(&other);
	ok(enc.id_key_data == NULL && enc.seal_key == NULL, "release clears the codec");
	return tap_done();
}
