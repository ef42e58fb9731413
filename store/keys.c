/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Keys (see keys.h for the key object format): random master keys in guarded memory, their
 * wrapping under a passphrase with Argon2id and XChaCha20-Poly1305, and subkey derivation
 * with libsodium's BLAKE2b-based KDF under the context "cairnkey".
 */
#include "keys.h"

#include <assert.h>
#include <sodium.h>

#define KEY_MAGIC "CAIRNKEY"
#define KEY_MAGIC_SIZE 8
#define KEY_VERSION 1
#define KEY_KDF_ARGON2ID13 1
#define KEY_SALT_SIZE 16
#define KEY_NONCE_SIZE 24
#define KEY_TAG_SIZE 16
#define KEY_CHECK_SIZE 32

/* Offsets in the key object. */
#define OFF_VERSION KEY_MAGIC_SIZE
#define OFF_KDF (OFF_VERSION + 1)
#define OFF_OPSLIMIT (OFF_KDF + 1)
#define OFF_MEMLIMIT (OFF_OPSLIMIT + 8)
#define OFF_SALT (OFF_MEMLIMIT + 8)
#define OFF_NONCE (OFF_SALT + KEY_SALT_SIZE)
#define OFF_SEALED (OFF_NONCE + KEY_NONCE_SIZE)
#define OFF_CHECK (OFF_SEALED + MASTER_KEY_SIZE + KEY_TAG_SIZE)
#define KEY_OBJECT_SIZE (OFF_CHECK + KEY_CHECK_SIZE)
#define KEY_AD_SIZE (OFF_NONCE + REPO_ID_SIZE)

/*
 * Limits on the KDF parameters read from a key object. Anything above them is not a key we
 * wrote (SENSITIVE is 4 passes over 1 GiB) and would let a forged object pin the CPU or make
 * the process allocate without bound before the passphrase is even checked.
 */
#define OPSLIMIT_SANE_MAX 64ull
#define MEMLIMIT_SANE_MAX (4ull << 30)

static_assert(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES == KEY_NONCE_SIZE, "nonce size");
static_assert(crypto_aead_xchacha20poly1305_ietf_ABYTES == KEY_TAG_SIZE, "tag size");
static_assert(crypto_pwhash_argon2id_SALTBYTES == KEY_SALT_SIZE, "salt size");
static_assert(crypto_kdf_KEYBYTES == MASTER_KEY_SIZE, "master key size");
static_assert(crypto_kdf_CONTEXTBYTES == 8, "kdf context size");

static const struct {
	const char *name;
	unsigned long long opslimit;
	size_t memlimit;
} kdf_presets[] = {
	[KDF_INTERACTIVE] = {"interactive", crypto_pwhash_argon2id_OPSLIMIT_INTERACTIVE,
			     crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE},
	[KDF_MODERATE] = {"moderate", crypto_pwhash_argon2id_OPSLIMIT_MODERATE,
			  crypto_pwhash_argon2id_MEMLIMIT_MODERATE},
	[KDF_SENSITIVE] = {"sensitive", crypto_pwhash_argon2id_OPSLIMIT_SENSITIVE,
			   crypto_pwhash_argon2id_MEMLIMIT_SENSITIVE},
	[KDF_TEST] = {"test", crypto_pwhash_argon2id_OPSLIMIT_MIN,
		      crypto_pwhash_argon2id_MEMLIMIT_MIN},
};

int kdf_strength_from_string(const char *s, enum kdf_strength *ret)
{
	if (!s)
		return -EINVAL;
	for (size_t i = 0; i < ELEMENTSOF(kdf_presets); i++)
		if (strcmp(s, kdf_presets[i].name) == 0) {
			*ret = (enum kdf_strength)i;
			return 0;
		}
	return -EINVAL;
}

/* 32 bytes of guarded memory; sodium_malloc() needs the library initialised first. */
static int key_alloc(uint8_t **ret)
{
	uint8_t *k;

	if (sodium_init() < 0)
		return -ENOMEM;
	k = sodium_malloc(MASTER_KEY_SIZE);
	if (!k)
		return -ENOMEM;
	*ret = k;
	return 0;
}

int keys_generate(uint8_t **ret)
{
	uint8_t *k;
	int r = key_alloc(&k);

	if (r < 0)
		return r;
	randombytes_buf(k, MASTER_KEY_SIZE);
	/* A master key never changes once made: fault on any stray write. */
	sodium_mprotect_readonly(k);
	*ret = k;
	return 0;
}

int keys_from_bytes(const uint8_t bytes[MASTER_KEY_SIZE], uint8_t **ret)
{
	uint8_t *k;
	int r = key_alloc(&k);

	if (r < 0)
		return r;
	memcpy(k, bytes, MASTER_KEY_SIZE);
	sodium_mprotect_readonly(k);
	*ret = k;
	return 0;
}

void keys_free(uint8_t *master)
{
	/* Wipes the key, and undoes the read-only protection first. */
	sodium_free(master);
}

void keys_derive(const uint8_t *master, enum subkey n, uint8_t out[32])
{
	int r = crypto_kdf_derive_from_key(out, 32, (uint64_t)n, "cairnkey", master);

	assert(r == 0);
	(void)r;
}

static void key_ad(const uint8_t *obj, const uint8_t repo_id[REPO_ID_SIZE], uint8_t ad[KEY_AD_SIZE])
{
	memcpy(ad, obj, OFF_NONCE);
	memcpy(ad + OFF_NONCE, repo_id, REPO_ID_SIZE);
}

/* The key-encryption key, in guarded memory. Argon2id fails only when it cannot allocate. */
static int derive_kek(const char *passphrase, size_t passlen, const uint8_t *salt,
		      unsigned long long opslimit, size_t memlimit, uint8_t **ret)
{
	_cleanup_keys_ uint8_t *kek = NULL;
	int r = key_alloc(&kek);

	if (r < 0)
		return r;
	/* libsodium wants a non-null password even when it is empty. */
	if (crypto_pwhash(kek, MASTER_KEY_SIZE, passphrase ? passphrase : "", passlen, salt,
			  opslimit, memlimit, crypto_pwhash_ALG_ARGON2ID13) != 0)
		return -ENOMEM;
	*ret = TAKE_PTR(kek);
	return 0;
}

int keys_wrap(const uint8_t *master, const char *passphrase, size_t passlen,
	      const uint8_t repo_id[REPO_ID_SIZE], enum kdf_strength strength, struct buf *ret)
{
	_cleanup_keys_ uint8_t *kek = NULL;
	uint8_t obj[KEY_OBJECT_SIZE], ad[KEY_AD_SIZE];
	int r;

	if ((unsigned)strength >= ELEMENTSOF(kdf_presets))
		return -EINVAL;

	memcpy(obj, KEY_MAGIC, KEY_MAGIC_SIZE);
	obj[OFF_VERSION] = KEY_VERSION;
	obj[OFF_KDF] = KEY_KDF_ARGON2ID13;
	put_le64(obj + OFF_OPSLIMIT, kdf_presets[strength].opslimit);
	put_le64(obj + OFF_MEMLIMIT, kdf_presets[strength].memlimit);
	randombytes_buf(obj + OFF_SALT, KEY_SALT_SIZE);
	randombytes_buf(obj + OFF_NONCE, KEY_NONCE_SIZE);

	r = derive_kek(passphrase, passlen, obj + OFF_SALT, kdf_presets[strength].opslimit,
		       kdf_presets[strength].memlimit, &kek);
	if (r < 0)
		return r;
	key_ad(obj, repo_id, ad);
	crypto_aead_xchacha20poly1305_ietf_encrypt(obj + OFF_SEALED, NULL, master, MASTER_KEY_SIZE,
						   ad, sizeof(ad), NULL, obj + OFF_NONCE, kek);
	crypto_generichash(obj + OFF_CHECK, KEY_CHECK_SIZE, obj, OFF_CHECK, NULL, 0);
	return buf_append(ret, obj, sizeof(obj));
}

int keys_unwrap(const void *obj, size_t len, const char *passphrase, size_t passlen,
		const uint8_t repo_id[REPO_ID_SIZE], uint8_t **ret)
{
	_cleanup_keys_ uint8_t *kek = NULL, *master = NULL;
	uint8_t check[KEY_CHECK_SIZE], ad[KEY_AD_SIZE];
	const uint8_t *p = obj;
	uint64_t opslimit, memlimit;
	int r;

	/* Everything that can tell corruption apart from a wrong passphrase comes first. */
	if (len != KEY_OBJECT_SIZE || memcmp(p, KEY_MAGIC, KEY_MAGIC_SIZE) != 0 ||
	    p[OFF_VERSION] != KEY_VERSION || p[OFF_KDF] != KEY_KDF_ARGON2ID13)
		return -EBADMSG;
	crypto_generichash(check, sizeof(check), p, OFF_CHECK, NULL, 0);
	if (sodium_memcmp(check, p + OFF_CHECK, KEY_CHECK_SIZE) != 0)
		return -EBADMSG;

	opslimit = get_le64(p + OFF_OPSLIMIT);
	memlimit = get_le64(p + OFF_MEMLIMIT);
	if (opslimit < crypto_pwhash_argon2id_OPSLIMIT_MIN || opslimit > OPSLIMIT_SANE_MAX ||
	    memlimit < crypto_pwhash_argon2id_MEMLIMIT_MIN || memlimit > MEMLIMIT_SANE_MAX ||
	    memlimit > SIZE_MAX)
		return -EBADMSG;

	r = derive_kek(passphrase, passlen, p + OFF_SALT, opslimit, (size_t)memlimit, &kek);
	if (r < 0)
		return r;
	r = key_alloc(&master);
	if (r < 0)
		return r;
	key_ad(p, repo_id, ad);
	/* The object is intact (check passed), so a failure here is the passphrase or repo. */
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(master, NULL, NULL, p + OFF_SEALED,
						       MASTER_KEY_SIZE + KEY_TAG_SIZE, ad,
						       sizeof(ad), p + OFF_NONCE, kek) != 0)
		return -EACCES;
	sodium_mprotect_readonly(master);
	*ret = TAKE_PTR(master);
	return 0;
}
