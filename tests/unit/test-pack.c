/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests for store/pack.c: pack building, pack keys, reading and checking trailers. */
#include "pack.h"

#include <stdio.h>

#include "tap.h"

static char last_error[1024];

/* Keep the expected errors off stderr, and remember the last one. */
static void capture_sink(enum log_level level, const char *msg)
{
	if (level <= LOG_ERR)
		snprintf(last_error, sizeof(last_error), "%s", msg);
}

static void new_codec(struct codec *c, bool encrypted)
{
	uint8_t master[32];

	codec_random(master, sizeof(master));
	tap_require(codec_init(c, master, encrypted) == 0);
}

struct test_blob {
	enum blob_type type;
	struct blob_id id;
	struct buf plain;
};

/* Deterministic content: odd seeds give noise, even seeds give something compressible. */
static void make_plain(struct buf *b, size_t len, unsigned seed)
{
	uint32_t x = seed * 2654435761u + 1;

	tap_require(buf_reserve(b, len) == 0);
	for (size_t i = 0; i < len; i++) {
		if (seed % 2) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			b->data[b->len++] = (uint8_t)x;
		} else {
			b->data[b->len++] = (uint8_t) "cairn backup "[i % 13];
		}
	}
}

static void blobs_release(struct test_blob *blobs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		buf_release(&blobs[i].plain);
}

/* Build and finish a pack of n blobs of the given sizes. */
static void build_pack(const struct codec *c, const size_t *sizes, size_t n,
		       struct test_blob *blobs, struct pack_builder *pb)
{
	tap_require(pack_builder_init(pb, NULL, 0) == 0);
	tap_require(pack_builder_size(pb) == PACK_HEADER_SIZE);
	for (size_t i = 0; i < n; i++) {
		_cleanup_buf_ struct buf sealed = {0};
		struct test_blob *t = &blobs[i];

		*t = (struct test_blob){.type = i % 3 == 2 ? BLOB_TREE : BLOB_DATA};
		make_plain(&t->plain, sizes[i], (unsigned)i + 1);
		codec_blob_id(c, t->type, t->plain.data, t->plain.len, &t->id);
		tap_require(codec_encode_blob(c, t->type, &t->id, t->plain.data, t->plain.len,
					      &sealed) == 0);
		size_t before = pack_builder_size(pb);
		tap_require(pack_builder_add(pb, &t->id, t->type, sealed.data, sealed.len,
					     (uint32_t)t->plain.len) == 0);
		tap_require(pack_builder_size(pb) == before + sealed.len);
	}
	tap_require(pack_builder_finish(pb, c) == 0);
}

static bool entries_equal(const struct pack_entry *a, const struct pack_entry *b)
{
	return !memcmp(a->id.b, b->id.b, BLOB_ID_SIZE) && a->type == b->type &&
	       a->offset == b->offset && a->length == b->length && a->rawlen == b->rawlen;
}

/* Store bytes under the pack's key (replacing) and read its trailer back. */
static int put_and_read(struct backend *be, const struct codec *c, const uint8_t *name,
			const void *data, size_t len)
{
	char key[PACK_KEY_MAX];
	struct pack_entry *e = NULL;
	size_t n = 0;
	uint64_t size = 0;

	pack_key(name, key);
	tap_require(backend_put(be, key, data, len, 0) == 0);
	int r = pack_read_trailer(be, c, name, &e, &n, &size);
	free(e);
	return r;
}

static void test_round_trip(bool encrypted)
{
	static const size_t sizes[] = {0, 1, 100, 4096, 65539, 200000, 7};
	struct test_blob blobs[ELEMENTSOF(sizes)];
	struct pack_builder pb;
	struct codec c, other;
	_cleanup_backend_ struct backend *be = NULL;
	_cleanup_free_ struct pack_entry *e = NULL;
	char key[PACK_KEY_MAX];
	size_t n = 0;
	uint64_t size = 0;
	const char *mode = encrypted ? "encrypted" : "plaintext";

	new_codec(&c, encrypted);
	tap_require(backend_mem_new(&be) == 0);
	build_pack(&c, sizes, ELEMENTSOF(sizes), blobs, &pb);
	pack_key(pb.name, key);

	is_int(pack_read_trailer(be, &c, pb.name, &e, &n, &size), -ENOENT,
	       "%s: a missing pack is -ENOENT", mode);

	tap_require(backend_put(be, key, pb.data.data, pb.data.len, 0) == 0);
	is_int(pack_read_trailer(be, &c, pb.name, &e, &n, &size), 0, "%s: read the trailer", mode);
	is_int(n, ELEMENTSOF(sizes), "%s: trailer lists every blob", mode);
	is_int(size, pb.data.len, "%s: trailer read reports the pack size", mode);
	tap_require(n == ELEMENTSOF(sizes) && n == pb.n_entries);

	bool same = true, decoded = true;
	for (size_t i = 0; i < n; i++) {
		_cleanup_buf_ struct buf sealed = {0}, plain = {0};

		if (!entries_equal(&e[i], &pb.entries[i]) ||
		    memcmp(e[i].id.b, blobs[i].id.b, BLOB_ID_SIZE) || e[i].type != blobs[i].type ||
		    e[i].rawlen != blobs[i].plain.len) {
			diag("entry %zu differs", i);
			same = false;
			continue;
		}
		int r = backend_get(be, key, e[i].offset, e[i].length, &sealed);
		if (r >= 0)
			r = codec_decode_blob(&c, e[i].type, &e[i].id, sealed.data, sealed.len,
					      &plain);
		if (r < 0 || sealed.len != e[i].length || plain.len != blobs[i].plain.len ||
		    (plain.len && memcmp(plain.data, blobs[i].plain.data, plain.len))) {
			diag("blob %zu: r=%d, %zu bytes", i, r, plain.len);
			decoded = false;
		}
	}
	ok(same, "%s: trailer entries match the builder's", mode);
	ok(decoded, "%s: every blob decodes from its offset and length", mode);

	/* Entries are back to back after the header, and the trailer follows the last. */
	bool contiguous = e[0].offset == PACK_HEADER_SIZE;
	for (size_t i = 1; i < n; i++)
		contiguous &= e[i].offset == e[i - 1].offset + e[i - 1].length;
	uint32_t tlen = get_le32(pb.data.data + pb.data.len - PACK_FOOTER_SIZE);
	contiguous &= (uint64_t)e[n - 1].offset + e[n - 1].length + tlen + PACK_FOOTER_SIZE ==
		      pb.data.len;
	ok(contiguous, "%s: header, blobs, trailer and footer tile the pack", mode);
	ok(!memcmp(pb.data.data, "CAIRNPK\x01", 8) &&
		   !memcmp(pb.data.data + pb.data.len - 8, "CAIRNPKT", 8),
	   "%s: header and footer magic", mode);

	/* A blob opened as another blob, or as the other type, is refused. */
	_cleanup_buf_ struct buf sealed = {0}, plain = {0};
	tap_require(backend_get(be, key, e[2].offset, e[2].length, &sealed) == 0);
	is_int(codec_decode_blob(&c, e[2].type, &e[3].id, sealed.data, sealed.len, &plain),
	       -EBADMSG, "%s: a blob checked against another id is -EBADMSG", mode);
	is_int(codec_decode_blob(&c, BLOB_DATA, &e[2].id, sealed.data, sealed.len, &plain),
	       -EBADMSG, "%s: a tree blob opened as data is -EBADMSG", mode);

	/* Another repository's key cannot open the trailer. */
	free(TAKE_PTR(e));
	new_codec(&other, encrypted);
	is_int(pack_read_trailer(be, &other, pb.name, &e, &n, &size), -EBADMSG,
	       "%s: a trailer under another key is -EBADMSG", mode);
	codec_release(&other);

	/* A finished builder takes no more blobs. */
	ok(pack_builder_add(&pb, &blobs[0].id, BLOB_DATA, "x", 1, 1) < 0,
	   "%s: adding to a finished pack fails", mode);

	blobs_release(blobs, ELEMENTSOF(sizes));
	pack_builder_release(&pb);
	codec_release(&c);
}

static void test_empty(bool encrypted)
{
	struct pack_builder pb;
	struct codec c;
	_cleanup_backend_ struct backend *be = NULL;
	_cleanup_free_ struct pack_entry *e = NULL;
	char key[PACK_KEY_MAX];
	size_t n = 99;
	uint64_t size = 0;
	const char *mode = encrypted ? "encrypted" : "plaintext";

	new_codec(&c, encrypted);
	tap_require(backend_mem_new(&be) == 0);
	build_pack(&c, NULL, 0, NULL, &pb);
	is_int(pb.data.len, PACK_HEADER_SIZE + codec_seal_overhead(&c) + 4 + PACK_FOOTER_SIZE,
	       "%s: empty pack is header, sealed count and footer", mode);
	pack_key(pb.name, key);
	tap_require(backend_put(be, key, pb.data.data, pb.data.len, 0) == 0);
	is_int(pack_read_trailer(be, &c, pb.name, &e, &n, &size), 0,
	       "%s: empty pack trailer reads back", mode);
	is_int(n, 0, "%s: empty pack has no entries", mode);
	is_int(size, pb.data.len, "%s: empty pack size", mode);
	pack_builder_release(&pb);
	codec_release(&c);
}

static void test_keys(void)
{
	uint8_t name[PACK_NAME_SIZE], back[PACK_NAME_SIZE];
	char key[PACK_KEY_MAX], hex[PACK_NAME_HEX_SIZE], bad[160];
	struct pack_builder a, b;

	tap_require(pack_builder_init(&a, NULL, 0) == 0);
	tap_require(pack_builder_init(&b, NULL, 0) == 0);
	ok(memcmp(a.name, b.name, PACK_NAME_SIZE) != 0, "two packs get different names");
	pack_builder_release(&a);
	pack_builder_release(&b);

	bool all = true;
	for (int i = 0; i < 64; i++) {
		codec_random(name, sizeof(name));
		if (i == 0)
			memset(name, 0, sizeof(name));
		if (i == 1)
			memset(name, 0xff, sizeof(name));
		pack_key(name, key);
		hex_encode(name, sizeof(name), hex);
		snprintf(bad, sizeof(bad), "data/%.2s/%s", hex, hex);
		memset(back, 0x5a, sizeof(back));
		if (strcmp(key, bad) || strlen(key) + 1 > PACK_KEY_MAX || !backend_key_valid(key) ||
		    pack_key_parse(key, back) != 0 || memcmp(name, back, sizeof(name))) {
			diag("key %s does not round trip", key);
			all = false;
		}
	}
	ok(all, "pack_key is data/<xx>/<64 hex> and pack_key_parse inverts it");

	codec_random(name, sizeof(name));
	pack_key(name, key);
	hex_encode(name, sizeof(name), hex);
	const char *good = key;
	struct {
		const char *what;
		char key[160];
	} cases[16];
	size_t nc = 0;

#define CASE(w, ...)                                                                               \
	do {                                                                                       \
		cases[nc].what = (w);                                                              \
		snprintf(cases[nc].key, sizeof(cases[nc].key), __VA_ARGS__);                       \
		nc++;                                                                              \
	} while (0)
	CASE("empty", "%s", "");
	CASE("prefix only", "%s", "data/");
	CASE("one hex digit short", "%.71s", good);
	CASE("one hex digit long", "%s0", good);
	CASE("trailing slash", "%s/", good);
	CASE("other directory", "index/%.2s/%s", hex, hex);
	CASE("Data/", "Data/%.2s/%s", hex, hex);
	CASE("no slash after fan-out", "data/%.2s-%s", hex, hex);
	CASE("fan-out not matching", "data/%c%c/%s", hex[0] == '0' ? '1' : '0', hex[1], hex);
	CASE("no fan-out", "data/%s", hex);
	CASE("non-hex digit", "data/%.2s/%.63sg", hex, hex);
	CASE("space", "data/%.2s/%.63s ", hex, hex);
	CASE("leading slash", "/data/%.2s/%.63s", hex, hex);
	CASE("upper-case hex", "data/AB/AB%.62s", hex + 2);
#undef CASE
	for (size_t i = 0; i < nc; i++) {
		memcpy(back, name, sizeof(back));
		int r = pack_key_parse(cases[i].key, back);
		ok(r == -EINVAL && !memcmp(back, name, sizeof(back)),
		   "pack_key_parse rejects a malformed key (%s) and leaves the output alone",
		   cases[i].what);
		if (r != -EINVAL)
			diag("  \"%s\" returned %d", cases[i].key, r);
	}
}

/* A small pack for exhaustive corruption loops. */
struct small_pack {
	struct codec c;
	struct backend *be;
	struct pack_builder pb;
	struct test_blob blobs[3];
	char key[PACK_KEY_MAX];
};

static void small_pack_init(struct small_pack *s, bool encrypted)
{
	static const size_t sizes[] = {40, 200, 3};

	new_codec(&s->c, encrypted);
	tap_require(backend_mem_new(&s->be) == 0);
	build_pack(&s->c, sizes, ELEMENTSOF(sizes), s->blobs, &s->pb);
	pack_key(s->pb.name, s->key);
}

static void small_pack_release(struct small_pack *s)
{
	blobs_release(s->blobs, ELEMENTSOF(s->blobs));
	pack_builder_release(&s->pb);
	backend_free(s->be);
	codec_release(&s->c);
}

static void test_trailer_corruption(bool encrypted)
{
	static const uint8_t masks[] = {0x01, 0x80, 0xff};
	struct small_pack s;
	const char *mode = encrypted ? "encrypted" : "plaintext";

	small_pack_init(&s, encrypted);
	const uint8_t *pack = s.pb.data.data;
	size_t len = s.pb.data.len;
	uint32_t tlen = get_le32(pack + len - PACK_FOOTER_SIZE);
	size_t start = len - PACK_FOOTER_SIZE - tlen;
	_cleanup_free_ uint8_t *copy = malloc(len);
	tap_require(copy);
	tap_require(tlen < len);

	is_int(put_and_read(s.be, &s.c, s.pb.name, pack, len), 0, "%s: intact small pack reads",
	       mode);

	size_t accepted = 0, other_error = 0, unnamed = 0, tried = 0;
	for (size_t i = start; i < len; i++) {
		for (size_t m = 0; m < ELEMENTSOF(masks); m++) {
			memcpy(copy, pack, len);
			copy[i] ^= masks[m];
			last_error[0] = 0;
			int r = put_and_read(s.be, &s.c, s.pb.name, copy, len);
			tried++;
			if (r == 0) {
				if (!accepted++)
					diag("flip ^%02x at %zu of %zu accepted", masks[m], i, len);
			} else if (r != -EBADMSG) {
				if (!other_error++)
					diag("flip ^%02x at %zu: %d", masks[m], i, r);
			} else if (!strstr(last_error, s.key)) {
				if (!unnamed++)
					diag("flip at %zu logged \"%s\"", i, last_error);
			}
		}
	}
	ok(accepted == 0 && other_error == 0,
	   "%s: each of %zu single-byte flips of the trailer and footer (%zu bytes) is -EBADMSG",
	   mode, tried, len - start);
	ok(unnamed == 0, "%s: each corrupt-trailer error names the pack key", mode);
	ok(strstr(last_error, "data/") != NULL, "%s: error message names data/...: \"%s\"", mode,
	   last_error);

	/* Garbage appended after the footer is not a pack either. */
	_cleanup_buf_ struct buf longer = {0};
	tap_require(buf_append(&longer, pack, len) == 0);
	tap_require(buf_append(&longer, "\0\0\0\0", 4) == 0);
	is_int(put_and_read(s.be, &s.c, s.pb.name, longer.data, longer.len), -EBADMSG,
	       "%s: bytes appended after the footer are -EBADMSG", mode);

	small_pack_release(&s);
}

static void test_truncation(bool encrypted)
{
	struct small_pack s;
	const char *mode = encrypted ? "encrypted" : "plaintext";

	small_pack_init(&s, encrypted);
	const uint8_t *pack = s.pb.data.data;
	size_t len = s.pb.data.len;
	tap_require(len > 100);

	is_int(put_and_read(s.be, &s.c, s.pb.name, pack, len - 1), -EBADMSG,
	       "%s: pack cut by 1 byte is -EBADMSG", mode);
	ok(strstr(last_error, s.key) != NULL, "%s: truncation error names the pack", mode);
	is_int(put_and_read(s.be, &s.c, s.pb.name, pack, len - 100), -EBADMSG,
	       "%s: pack cut by 100 bytes is -EBADMSG", mode);
	is_int(put_and_read(s.be, &s.c, s.pb.name, pack, 10), -EBADMSG,
	       "%s: pack cut to 10 bytes is -EBADMSG", mode);
	is_int(put_and_read(s.be, &s.c, s.pb.name, pack, 0), -EBADMSG,
	       "%s: empty object is -EBADMSG", mode);

	size_t bad = 0;
	for (size_t cut = 0; cut < len; cut++) {
		int r = put_and_read(s.be, &s.c, s.pb.name, pack, cut);
		if (r != -EBADMSG && !bad++)
			diag("pack cut to %zu of %zu bytes: %d", cut, len, r);
	}
	ok(bad == 0, "%s: every truncation (0..%zu bytes) is -EBADMSG", mode, len - 1);

	/* The footer moved: the last 12 bytes are valid but the trailer lost its last byte. */
	_cleanup_buf_ struct buf moved = {0};
	tap_require(buf_append(&moved, pack, len - PACK_FOOTER_SIZE - 1) == 0);
	tap_require(buf_append(&moved, pack + len - PACK_FOOTER_SIZE, PACK_FOOTER_SIZE) == 0);
	is_int(put_and_read(s.be, &s.c, s.pb.name, moved.data, moved.len), -EBADMSG,
	       "%s: trailer cut by one byte under an intact footer is -EBADMSG", mode);

	small_pack_release(&s);
}

static void test_blob_corruption(bool encrypted)
{
	struct small_pack s;
	const char *mode = encrypted ? "encrypted" : "plaintext";

	small_pack_init(&s, encrypted);
	size_t len = s.pb.data.len;
	_cleanup_free_ uint8_t *copy = malloc(len);
	tap_require(copy);

	size_t accepted = 0, other = 0, tried = 0;
	for (size_t k = 0; k < s.pb.n_entries; k++) {
		const struct pack_entry *e = &s.pb.entries[k];
		for (uint32_t i = e->offset; i < e->offset + e->length; i++) {
			_cleanup_buf_ struct buf plain = {0};

			memcpy(copy, s.pb.data.data, len);
			copy[i] ^= 0x01;
			int r = codec_decode_blob(&s.c, e->type, &e->id, copy + e->offset,
						  e->length, &plain);
			tried++;
			if (r == 0 && !accepted++)
				diag("blob %zu: flip at %u accepted", k, i);
			if (r < 0 && r != -EBADMSG && !other++)
				diag("blob %zu: flip at %u: %d", k, i, r);
		}
	}
	ok(accepted == 0 && other == 0,
	   "%s: each of %zu single-byte flips inside a blob is -EBADMSG", mode, tried);

	/* A blob's corruption does not hide the others: the trailer still lists all three. */
	const struct pack_entry *e0 = &s.pb.entries[0];
	memcpy(copy, s.pb.data.data, len);
	copy[e0->offset + 3] ^= 0x10;
	is_int(put_and_read(s.be, &s.c, s.pb.name, copy, len), 0,
	       "%s: a corrupt blob leaves the trailer readable", mode);

	small_pack_release(&s);
}

/* A backend holding one huge pack whose footer claims a huge trailer; it records the largest
 * read it was asked for and answers reads of the trailer with a short (clipped) read. */
struct big_backend {
	struct backend base;
	char key[PACK_KEY_MAX];
	uint64_t size;
	uint32_t tlen;
	uint64_t max_get;
};

static char big_location[] = "big:";

static int big_put(struct backend *b, const char *key, const void *data, size_t len, unsigned flags)
{
	return -EACCES;
}

static int big_get(struct backend *b, const char *key, uint64_t offset, uint64_t len,
		   struct buf *ret)
{
	struct big_backend *g = (struct big_backend *)b;
	uint8_t footer[PACK_FOOTER_SIZE];

	if (strcmp(key, g->key))
		return -ENOENT;
	if (offset > g->size)
		return -EINVAL;
	len = MIN(len, g->size - offset);
	g->max_get = MAX(g->max_get, len);
	if (offset == g->size - PACK_FOOTER_SIZE && len == PACK_FOOTER_SIZE) {
		put_le32(footer, g->tlen);
		memcpy(footer + 4, "CAIRNPKT", 8);
		return buf_append(ret, footer, sizeof(footer));
	}
	/* Anything else: pretend the object changed under us and hand back 1 KiB of zeros. */
	uint8_t zeros[1024] = {0};
	return buf_append(ret, zeros, (size_t)MIN(len, sizeof(zeros)));
}

static int big_head(struct backend *b, const char *key, uint64_t *ret_size)
{
	struct big_backend *g = (struct big_backend *)b;

	if (strcmp(key, g->key))
		return -ENOENT;
	*ret_size = g->size;
	return 0;
}

static int big_del(struct backend *b, const char *key)
{
	return -EACCES;
}

static int big_list(struct backend *b, const char *prefix, backend_list_fn fn, void *userdata)
{
	return 0;
}

static void big_free(struct backend *b)
{
}

static const struct backend_type big_type = {
	.name = "big",
	.put = big_put,
	.get = big_get,
	.head = big_head,
	.del = big_del,
	.list = big_list,
	.free = big_free,
};

static void test_huge_trailer_length(void)
{
	static const uint32_t lies[] = {0xffffffffu, 0x80000000u, 0x7fffffffu, 0, 1};
	struct small_pack s;
	struct pack_entry *e = NULL;
	size_t n;
	uint64_t size;

	small_pack_init(&s, true);
	size_t len = s.pb.data.len;
	_cleanup_free_ uint8_t *copy = malloc(len);
	tap_require(copy);

	for (size_t i = 0; i < ELEMENTSOF(lies) + 2; i++) {
		uint32_t tlen = i < ELEMENTSOF(lies) ? lies[i] : (uint32_t)(len - 19 - (i & 1));
		memcpy(copy, s.pb.data.data, len);
		put_le32(copy + len - PACK_FOOTER_SIZE, tlen);
		is_int(put_and_read(s.be, &s.c, s.pb.name, copy, len), -EBADMSG,
		       "footer claiming a trailer of %" PRIu32
		       " bytes in a %zu-byte pack is -EBADMSG",
		       tlen, len);
	}

	/* A 3 GiB object whose footer claims a trailer of almost all of it: no trailer can be
	 * longer than PACK_MAX_ENTRIES entries, so it must be refused without reading 3 GiB. */
	struct big_backend g = {.base = {.type = &big_type, .location = big_location}};
	uint64_t limit =
		codec_seal_overhead(&s.c) + 4 + (uint64_t)PACK_MAX_ENTRIES * PACK_ENTRY_SIZE;
	pack_key(s.pb.name, g.key);
	g.size = 3ull << 30;
	g.tlen = (uint32_t)(g.size - PACK_HEADER_SIZE - PACK_FOOTER_SIZE);
	last_error[0] = 0;
	is_int(pack_read_trailer(&g.base, &s.c, s.pb.name, &e, &n, &size), -EBADMSG,
	       "huge footer length in a 3 GiB pack is -EBADMSG");
	ok(g.max_get <= limit,
	   "huge footer length is refused before reading it (largest read %" PRIu64
	   " bytes, a trailer is at most %" PRIu64 ")",
	   g.max_get, limit);
	ok(strstr(last_error, g.key) != NULL, "huge footer length error names the pack");
	free(e);

	small_pack_release(&s);
}

static void put_entry(struct buf *b, uint8_t fill, uint8_t type, uint32_t offset, uint32_t length,
		      uint32_t rawlen)
{
	uint8_t id[BLOB_ID_SIZE];

	memset(id, fill, sizeof(id));
	tap_require(buf_append(b, id, sizeof(id)) == 0);
	tap_require(buf_append(b, &type, 1) == 0);
	tap_require(buf_append_le32(b, offset) == 0);
	tap_require(buf_append_le32(b, length) == 0);
	tap_require(buf_append_le32(b, rawlen) == 0);
}

/* Decode a body of one entry against pack_size. */
static int decode_one(uint8_t type, uint32_t offset, uint32_t length, uint32_t rawlen,
		      uint64_t pack_size)
{
	_cleanup_buf_ struct buf b = {0};
	struct pack_entry *e = NULL;
	size_t n = 0;

	tap_require(buf_append_le32(&b, 1) == 0);
	put_entry(&b, 0x11, type, offset, length, rawlen);
	struct reader rd = {b.data, b.len};
	int r = pack_entries_decode(&rd, pack_size, &e, &n);
	free(e);
	return r;
}

static void test_entries_decode(void)
{
	_cleanup_buf_ struct buf b = {0};
	struct pack_entry in[5], *out = NULL;
	size_t n = 0;

	for (size_t i = 0; i < ELEMENTSOF(in); i++) {
		memset(in[i].id.b, (int)i * 7 + 1, BLOB_ID_SIZE);
		in[i].type = i % 2 ? BLOB_TREE : BLOB_DATA;
		in[i].offset = PACK_HEADER_SIZE + (uint32_t)i * 100;
		in[i].length = 100;
		in[i].rawlen = (uint32_t)i * 1000;
	}
	tap_require(pack_entries_encode(in, ELEMENTSOF(in), &b) == 0);
	is_int(b.len, 4 + ELEMENTSOF(in) * PACK_ENTRY_SIZE, "encoded entries size");
	struct reader rd = {b.data, b.len};
	is_int(pack_entries_decode(&rd, 0, &out, &n), 0, "entries decode");
	is_int(n, ELEMENTSOF(in), "entries decode count");
	is_int(rd.left, 0, "entries decode consumes the body");
	bool same = n == ELEMENTSOF(in);
	for (size_t i = 0; same && i < n; i++)
		same = entries_equal(&in[i], &out[i]);
	ok(same, "entries encode/decode round trip");
	free(TAKE_PTR(out));

	/* Counts beyond the limit, or beyond what the body holds. */
	static const uint32_t counts[] = {PACK_MAX_ENTRIES + 1, UINT32_MAX, 6};
	for (size_t i = 0; i < ELEMENTSOF(counts); i++) {
		put_le32(b.data, counts[i]);
		rd = (struct reader){b.data, b.len};
		is_int(pack_entries_decode(&rd, 0, &out, &n), -EBADMSG,
		       "entries decode with count %" PRIu32 " is -EBADMSG", counts[i]);
		free(TAKE_PTR(out));
	}
	/* A body cut inside an entry. */
	put_le32(b.data, ELEMENTSOF(in));
	rd = (struct reader){b.data, b.len - 1};
	is_int(pack_entries_decode(&rd, 0, &out, &n), -EBADMSG, "entries cut short is -EBADMSG");
	free(TAKE_PTR(out));
	rd = (struct reader){b.data, 3};
	is_int(pack_entries_decode(&rd, 0, &out, &n), -EBADMSG, "a cut count is -EBADMSG");
	free(TAKE_PTR(out));

	/* Entries against the pack size: blobs live between the header and the trailer. */
	const uint64_t ps = 200; /* blobs may span [8, 188) */
	is_int(decode_one(BLOB_DATA, 8, 180, 10, ps), 0, "entry ending at the footer is fine");
	is_int(decode_one(BLOB_DATA, 8, 181, 10, ps), -EBADMSG,
	       "entry running into the footer is -EBADMSG");
	is_int(decode_one(BLOB_DATA, 100, 1000, 10, ps), -EBADMSG,
	       "entry past the pack's end is -EBADMSG");
	is_int(decode_one(BLOB_DATA, 500, 0, 10, ps), -EBADMSG,
	       "entry starting past the end is -EBADMSG");
	is_int(decode_one(BLOB_DATA, 0xfffffff0u, 0x20, 10, ps), -EBADMSG,
	       "entry whose end wraps 32 bits is -EBADMSG");
	is_int(decode_one(BLOB_DATA, 0xffffffffu, 0xffffffffu, 10, PACK_MAX_SIZE), -EBADMSG,
	       "entry at 4 GiB + 4 GiB in a 4 GiB pack is -EBADMSG");
	is_int(decode_one(BLOB_DATA, 4, 10, 10, ps), -EBADMSG,
	       "entry overlapping the header is -EBADMSG");
	is_int(decode_one(BLOB_DATA, 100, 1000, 10, 0), 0, "pack size 0 checks no bounds");
	is_int(decode_one(0, 8, 10, 10, ps), -EBADMSG, "entry of type 0 is -EBADMSG");
	is_int(decode_one(_BLOB_TYPE_MAX, 8, 10, 10, ps), -EBADMSG,
	       "entry of an unknown type is -EBADMSG");
	is_int(decode_one(BLOB_DATA, 8, 10, BLOB_MAX_SIZE + 1, ps), -EBADMSG,
	       "entry with a raw length past BLOB_MAX_SIZE is -EBADMSG");
	/* A pack smaller than header + footer holds no blob at all (no unsigned wrap-around). */
	is_int(decode_one(BLOB_DATA, 8, 100, 10, 11), -EBADMSG,
	       "entry in an 11-byte pack is -EBADMSG");
	is_int(decode_one(BLOB_DATA, 8, 0, 10, 19), -EBADMSG,
	       "entry in a 19-byte pack is -EBADMSG");
}

int main(void)
{
	plan_lazy();
	tap_require(codec_global_init() == 0);
	log_set_sink(capture_sink);

	test_keys();
	test_entries_decode();
	for (int enc = 1; enc >= 0; enc--) {
		test_round_trip(enc);
		test_empty(enc);
		test_trailer_corruption(enc);
		test_truncation(enc);
		test_blob_corruption(enc);
	}
	test_huge_trailer_length();
	return tap_done();
}
