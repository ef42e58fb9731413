/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests for store/keys.c: wrapping and unwrapping the master key (with the KDF_TEST
 * preset), telling a wrong passphrase or repository (-EACCES) apart from a corrupt object
 * (-EBADMSG, for every single-byte corruption and truncation), refusing hostile KDF
 * parameters, subkey derivation, and the preset names.
 */
#include "keys.h"

#include <sodium.h>

#include "tap.h"

#define KEY_OBJECT_SIZE 146
#define OFF_OPSLIMIT 10
#define OFF_MEMLIMIT 18
#define OFF_CHECK 114

static const uint8_t repo[REPO_ID_SIZE] = "0123456789abcdef";
static const char pass[] = "correct horse battery staple";

/* Recompute the check after editing an object, as a forger would. */
static void fix_check(uint8_t *obj)
{
	crypto_generichash(obj + OFF_CHECK, 32, obj, OFF_CHECK, NULL, 0);
}

static void test_wrap_unwrap(void)
{
	_cleanup_keys_ uint8_t *master = NULL, *back = NULL, *again = NULL;
	_cleanup_buf_ struct buf obj = {0}, obj2 = {0};
	uint8_t *none = NULL;

	is_int(keys_generate(&master), 0, "generate");
	is_int(keys_wrap(master, pass, strlen(pass), repo, KDF_TEST, &obj), 0, "wrap");
	is_int(obj.len, KEY_OBJECT_SIZE, "key object size");
	ok(memcmp(obj.data, "CAIRNKEY\x01\x01", 10) == 0, "magic, version, kdf");
	ok(get_le64(obj.data + OFF_OPSLIMIT) == crypto_pwhash_argon2id_OPSLIMIT_MIN &&
		   get_le64(obj.data + OFF_MEMLIMIT) == crypto_pwhash_argon2id_MEMLIMIT_MIN,
	   "KDF_TEST parameters are libsodium's minimums");
	ok(memmem(obj.data, obj.len, master, MASTER_KEY_SIZE) == NULL,
	   "the master key does not appear in the object");

	is_int(keys_unwrap(obj.data, obj.len, pass, strlen(pass), repo, &back), 0, "unwrap");
	ok(back && memcmp(back, master, MASTER_KEY_SIZE) == 0, "unwrap gives the master key");

	is_int(keys_wrap(master, pass, strlen(pass), repo, KDF_TEST, &obj2), 0, "wrap again");
	ok(memcmp(obj.data, obj2.data, obj.len) != 0, "wrapping twice uses a fresh salt/nonce");
	is_int(keys_unwrap(obj2.data, obj2.len, pass, strlen(pass), repo, &again), 0,
	       "second object unwraps");
	ok(again && memcmp(again, master, MASTER_KEY_SIZE) == 0, "to the same key");

	is_int(keys_unwrap(obj.data, obj.len, "wrong", 5, repo, &none), -EACCES,
	       "wrong passphrase is -EACCES");
	is_int(keys_unwrap(obj.data, obj.len, pass, strlen(pass) - 1, repo, &none), -EACCES,
	       "passphrase missing its last byte is -EACCES");
	is_int(keys_unwrap(obj.data, obj.len, "", 0, repo, &none), -EACCES,
	       "empty passphrase is -EACCES");
	uint8_t other_repo[REPO_ID_SIZE];
	memcpy(other_repo, repo, sizeof(other_repo));
	other_repo[15] ^= 1;
	is_int(keys_unwrap(obj.data, obj.len, pass, strlen(pass), other_repo, &none), -EACCES,
	       "wrong repository id is -EACCES");
	ok(none == NULL, "ret untouched on failure");

	/* An empty passphrase is allowed (the caller decides whether to accept it). */
	_cleanup_keys_ uint8_t *e = NULL;
	buf_reset(&obj2);
	is_int(keys_wrap(master, NULL, 0, repo, KDF_TEST, &obj2), 0, "wrap, empty passphrase");
	is_int(keys_unwrap(obj2.data, obj2.len, "", 0, repo, &e), 0, "unwrap, empty passphrase");
	ok(e && memcmp(e, master, MASTER_KEY_SIZE) == 0, "empty passphrase round trip");

	is_int(keys_wrap(master, pass, strlen(pass), repo, (enum kdf_strength)99, &obj2), -EINVAL,
	       "unknown strength is -EINVAL");
}

static void test_corruption(void)
{
	_cleanup_keys_ uint8_t *master = NULL;
	_cleanup_buf_ struct buf obj = {0};
	uint8_t *none = NULL, copy[KEY_OBJECT_SIZE + 1];
	size_t bad = 0;

	tap_require(keys_generate(&master) == 0);
	tap_require(keys_wrap(master, pass, strlen(pass), repo, KDF_TEST, &obj) == 0);
	tap_require(obj.len == KEY_OBJECT_SIZE);

	for (size_t i = 0; i < obj.len; i++) {
		static const uint8_t deltas[] = {0x01, 0x80, 0xff};
		for (size_t d = 0; d < ELEMENTSOF(deltas); d++) {
			memcpy(copy, obj.data, obj.len);
			copy[i] ^= deltas[d];
			int r = keys_unwrap(copy, obj.len, pass, strlen(pass), repo, &none);
			if (r != -EBADMSG) {
				diag("byte %zu ^ %#x: %d", i, deltas[d], r);
				bad++;
			}
		}
	}
	ok(bad == 0 && none == NULL, "every single-byte corruption (3 per byte) is -EBADMSG");

	bad = 0;
	for (size_t l = 0; l < obj.len; l++)
		bad += keys_unwrap(obj.data, l, pass, strlen(pass), repo, &none) != -EBADMSG;
	ok(bad == 0, "every truncation is -EBADMSG");
	memcpy(copy, obj.data, obj.len);
	copy[obj.len] = 0;
	is_int(keys_unwrap(copy, obj.len + 1, pass, strlen(pass), repo, &none), -EBADMSG,
	       "a trailing byte is -EBADMSG");

	/* Forged parameters with a valid check: refused before the KDF runs. */
	static const struct {
		const char *what;
		uint64_t ops, mem;
	} hostile[] = {
		{"memlimit 1 TiB", 1, 1ull << 40},
		{"memlimit 4 GiB + 1", 1, (4ull << 30) + 1},
		{"memlimit 2^64 - 1", 1, UINT64_MAX},
		{"memlimit below the minimum", 1, 1024},
		{"opslimit 65", 65, 8192},
		{"opslimit 2^64 - 1", UINT64_MAX, 8192},
		{"opslimit 0", 0, 8192},
	};
	for (size_t k = 0; k < ELEMENTSOF(hostile); k++) {
		uint64_t t0 = now_ns();
		memcpy(copy, obj.data, obj.len);
		put_le64(copy + OFF_OPSLIMIT, hostile[k].ops);
		put_le64(copy + OFF_MEMLIMIT, hostile[k].mem);
		fix_check(copy);
		is_int(keys_unwrap(copy, obj.len, pass, strlen(pass), repo, &none), -EBADMSG,
		       "hostile %s is -EBADMSG", hostile[k].what);
		ok(now_ns() - t0 < 1000000000ull, "and is refused quickly");
	}

	/* The check proves integrity only: parameters changed with a fixed check still fail the
	 * AEAD, which binds them. */
	memcpy(copy, obj.data, obj.len);
	put_le64(copy + OFF_MEMLIMIT, 16384);
	fix_check(copy);
	is_int(keys_unwrap(copy, obj.len, pass, strlen(pass), repo, &none), -EACCES,
	       "sane but altered memlimit (check recomputed) fails authentication");
	memcpy(copy, obj.data, obj.len);
	copy[8] = 2;
	fix_check(copy);
	is_int(keys_unwrap(copy, obj.len, pass, strlen(pass), repo, &none), -EBADMSG,
	       "unknown version is -EBADMSG");
	memcpy(copy, obj.data, obj.len);
	copy[9] = 2;
	fix_check(copy);
	is_int(keys_unwrap(copy, obj.len, pass, strlen(pass), repo, &none), -EBADMSG,
	       "unknown kdf is -EBADMSG");
	ok(none == NULL, "ret untouched by every failure");
}

static void test_derive(void)
{
	_cleanup_keys_ uint8_t *a = NULL, *b = NULL, *g = NULL;
	uint8_t bytes[MASTER_KEY_SIZE], k[7][32], k2[32];
	bool distinct = true;

	memset(bytes, 0x42, sizeof(bytes));
	is_int(keys_from_bytes(bytes, &a), 0, "keys_from_bytes");
	ok(memcmp(a, bytes, sizeof(bytes)) == 0, "copies the bytes");
	is_int(keys_from_bytes(bytes, &b), 0, "keys_from_bytes again");

	for (int n = SUBKEY_ID_DATA; n <= SUBKEY_PACK; n++)
		keys_derive(a, (enum subkey)n, k[n]);
	for (int i = SUBKEY_ID_DATA; i <= SUBKEY_PACK; i++)
		for (int j = i + 1; j <= SUBKEY_PACK; j++)
			distinct &= memcmp(k[i], k[j], 32) != 0;
	ok(distinct, "subkeys are distinct");
	keys_derive(b, SUBKEY_SEAL, k2);
	ok(memcmp(k2, k[SUBKEY_SEAL], 32) == 0, "derivation is deterministic");
	ok(memcmp(k[SUBKEY_SEAL], a, 32) != 0, "a subkey is not the master key");

	/* Pin the derivation: it is part of the format (libsodium's KDF, context "cairnkey"). */
	uint8_t want[32];
	crypto_kdf_derive_from_key(want, 32, SUBKEY_CHUNKER, "cairnkey", bytes);
	ok(memcmp(k[SUBKEY_CHUNKER], want, 32) == 0, "crypto_kdf with context cairnkey");

	is_int(keys_generate(&g), 0, "generate");
	keys_derive(g, SUBKEY_SEAL, k2);
	ok(memcmp(k2, k[SUBKEY_SEAL], 32) != 0, "subkeys differ per master key");
	uint8_t *g2 = NULL;
	tap_require(keys_generate(&g2) == 0);
	ok(memcmp(g, g2, MASTER_KEY_SIZE) != 0, "generated keys differ");
	keys_free(g2);
}

static void test_strength(void)
{
	static const struct {
		const char *s;
		int r;
		enum kdf_strength want;
	} cases[] = {
		{"interactive", 0, KDF_INTERACTIVE},
		{"moderate", 0, KDF_MODERATE},
		{"sensitive", 0, KDF_SENSITIVE},
		{"test", 0, KDF_TEST},
		{"", -EINVAL, 0},
		{"Test", -EINVAL, 0},
		{"tests", -EINVAL, 0},
		{"moderate ", -EINVAL, 0},
		{"fast", -EINVAL, 0},
	};
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		enum kdf_strength got = (enum kdf_strength)77;
		int r = kdf_strength_from_string(cases[i].s, &got);
		ok(r == cases[i].r && (r < 0 ? got == (enum kdf_strength)77 : got == cases[i].want),
		   "kdf_strength_from_string(\"%s\")", cases[i].s);
	}
	enum kdf_strength got;
	is_int(kdf_strength_from_string(NULL, &got), -EINVAL, "NULL is -EINVAL");
}

int main(void)
{
	plan_lazy();
	tap_require(sodium_init() >= 0);
	test_wrap_unwrap();
	test_corruption();
	test_derive();
	test_strength();
	return tap_done();
}
