/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Pack building and trailer reading; the format is documented in pack.h. */
#include "pack.h"

#include <stdio.h>

static const uint8_t pack_magic[PACK_HEADER_SIZE] = "CAIRNPK\x01";
static const uint8_t footer_magic[8] = {'C', 'A', 'I', 'R', 'N', 'P', 'K', 'T'};
static const char trailer_ad[] = "cairn-trailer\x01";

int pack_builder_init(struct pack_builder *p, struct buf *spare, size_t expect)
{
	*p = (struct pack_builder){0};
	if (spare) {
		p->data = *spare;
		p->data.len = 0;
		*spare = (struct buf){0};
	}
	codec_random(p->name, sizeof(p->name));
	int r = buf_reserve(&p->data, MAX(expect, sizeof(pack_magic)));
	return r < 0 ? r : buf_append(&p->data, pack_magic, sizeof(pack_magic));
}

void pack_builder_release(struct pack_builder *p)
{
	buf_release(&p->data);
	free(p->entries);
	*p = (struct pack_builder){0};
}

int pack_builder_add(struct pack_builder *p, const struct blob_id *id, enum blob_type type,
		     const void *sealed, size_t len, uint32_t rawlen)
{
	if (p->finished)
		return -EINVAL;
	if (p->data.len + len + PACK_FOOTER_SIZE > PACK_MAX_SIZE / 2 ||
	    p->n_entries >= PACK_MAX_ENTRIES)
		return -EFBIG;
	if (p->n_entries == p->cap_entries) {
		size_t cap = p->cap_entries ? 2 * p->cap_entries : 64;
		struct pack_entry *e = reallocarray(p->entries, cap, sizeof(*e));
		if (!e)
			return -ENOMEM;
		p->entries = e;
		p->cap_entries = cap;
	}
	uint32_t offset = (uint32_t)p->data.len;
	int r = buf_append(&p->data, sealed, len);
	if (r < 0)
		return r;
	p->entries[p->n_entries++] = (struct pack_entry){.id = *id,
							 .type = (uint8_t)type,
							 .offset = offset,
							 .length = (uint32_t)len,
							 .rawlen = rawlen};
	return 0;
}

int pack_entries_encode(const struct pack_entry *e, size_t n, struct buf *ret)
{
	int r = buf_reserve(ret, 4 + n * PACK_ENTRY_SIZE);
	if (r < 0)
		return r;
	if (n > PACK_MAX_ENTRIES)
		return -EINVAL;
	r = buf_append_le32(ret, (uint32_t)n);
	for (size_t i = 0; r >= 0 && i < n; i++) {
		uint8_t rec[PACK_ENTRY_SIZE];
		memcpy(rec, e[i].id.b, BLOB_ID_SIZE);
		rec[BLOB_ID_SIZE] = e[i].type;
		put_le32(rec + BLOB_ID_SIZE + 1, e[i].offset);
		put_le32(rec + BLOB_ID_SIZE + 5, e[i].length);
		put_le32(rec + BLOB_ID_SIZE + 9, e[i].rawlen);
		r = buf_append(ret, rec, sizeof(rec));
	}
	return r;
}

int pack_entries_decode(struct reader *rd, uint64_t pack_size, struct pack_entry **ret,
			size_t *ret_n)
{
	uint32_t n;
	int r = reader_le32(rd, &n);
	if (r < 0)
		return r;
	if (n > PACK_MAX_ENTRIES || (uint64_t)n * PACK_ENTRY_SIZE > rd->left)
		return -EBADMSG;
	if (pack_size && pack_size < PACK_HEADER_SIZE + PACK_FOOTER_SIZE)
		return -EBADMSG; /* else pack_size - PACK_FOOTER_SIZE below wraps */
	_cleanup_free_ struct pack_entry *e = calloc(n ? n : 1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *rec;
		r = reader_skip_ptr(rd, PACK_ENTRY_SIZE, &rec);
		if (r < 0)
			return r;
		memcpy(e[i].id.b, rec, BLOB_ID_SIZE);
		e[i].type = rec[BLOB_ID_SIZE];
		e[i].offset = get_le32(rec + BLOB_ID_SIZE + 1);
		e[i].length = get_le32(rec + BLOB_ID_SIZE + 5);
		e[i].rawlen = get_le32(rec + BLOB_ID_SIZE + 9);
		if (e[i].type == 0 || e[i].type >= _BLOB_TYPE_MAX || e[i].rawlen > BLOB_MAX_SIZE)
			return -EBADMSG;
		if (pack_size &&
		    (e[i].offset < PACK_HEADER_SIZE ||
		     (uint64_t)e[i].offset + e[i].length > pack_size - PACK_FOOTER_SIZE))
			return -EBADMSG;
	}
	*ret = TAKE_PTR(e);
	*ret_n = n;
	return 0;
}

int pack_builder_finish(struct pack_builder *p, const struct codec *c)
{
	_cleanup_buf_ struct buf body = {0};
	uint8_t footer[PACK_FOOTER_SIZE];
	size_t before = p->data.len;
	int r;

	if (p->finished)
		return -EINVAL;
	r = pack_entries_encode(p->entries, p->n_entries, &body);
	if (r < 0)
		return r;
	r = codec_seal(c, trailer_ad, sizeof(trailer_ad) - 1, body.data, body.len, &p->data);
	if (r < 0)
		return r;
	put_le32(footer, (uint32_t)(p->data.len - before));
	memcpy(footer + 4, footer_magic, sizeof(footer_magic));
	r = buf_append(&p->data, footer, sizeof(footer));
	if (r < 0) {
		p->data.len = before;
		return r;
	}
	p->finished = true;
	return 0;
}

void pack_key(const uint8_t name[PACK_NAME_SIZE], char out[PACK_KEY_MAX])
{
	char hex[PACK_NAME_HEX_SIZE];
	hex_encode(name, PACK_NAME_SIZE, hex);
	snprintf(out, PACK_KEY_MAX, "data/%.2s/%s", hex, hex);
}

int pack_key_parse(const char *key, uint8_t ret[PACK_NAME_SIZE])
{
	uint8_t name[PACK_NAME_SIZE];
	if (strlen(key) != 8 + 2 * PACK_NAME_SIZE || strncmp(key, "data/", 5) || key[7] != '/' ||
	    strncmp(key + 5, key + 8, 2))
		return -EINVAL;
	if (hex_decode(key + 8, name, sizeof(name)) < 0)
		return -EINVAL;
	/* One pack, one key: upper-case hex would name a different object. */
	char canonical[PACK_KEY_MAX];
	pack_key(name, canonical);
	if (strcmp(canonical, key))
		return -EINVAL;
	memcpy(ret, name, sizeof(name));
	return 0;
}

int pack_read_trailer(struct backend *b, const struct codec *c, const uint8_t name[PACK_NAME_SIZE],
		      struct pack_entry **ret, size_t *ret_n, uint64_t *ret_size)
{
	char key[PACK_KEY_MAX];
	_cleanup_buf_ struct buf footer = {0}, trailer = {0}, body = {0};
	uint64_t size;
	int r;

	pack_key(name, key);
	r = backend_head(b, key, &size);
	if (r < 0)
		return log_error_errno(r, "pack %s: %s", key, strerror(-r));
	if (size < PACK_HEADER_SIZE + PACK_FOOTER_SIZE || size > PACK_MAX_SIZE)
		return log_error_errno(-EBADMSG, "pack %s: corrupt: impossible size %llu", key,
				       (unsigned long long)size);
	r = backend_get(b, key, size - PACK_FOOTER_SIZE, PACK_FOOTER_SIZE, &footer);
	if (r < 0)
		return log_error_errno(r, "pack %s: reading footer: %s", key, strerror(-r));
	if (footer.len != PACK_FOOTER_SIZE || memcmp(footer.data + 4, footer_magic, 8))
		return log_error_errno(-EBADMSG, "pack %s: corrupt: bad footer (truncated pack?)",
				       key);
	uint32_t tlen = get_le32(footer.data);
	/* Bound it by what any trailer can take, not just by the pack: a hostile footer must
	 * not make us fetch and allocate gigabytes. */
	uint64_t tmax = codec_seal_overhead(c) + 4 + (uint64_t)PACK_MAX_ENTRIES * PACK_ENTRY_SIZE;
	if (tlen < codec_seal_overhead(c) || tlen > tmax ||
	    tlen > size - PACK_HEADER_SIZE - PACK_FOOTER_SIZE)
		return log_error_errno(-EBADMSG, "pack %s: corrupt: trailer length %u out of range",
				       key, tlen);
	r = backend_get(b, key, size - PACK_FOOTER_SIZE - tlen, tlen, &trailer);
	if (r < 0)
		return log_error_errno(r, "pack %s: reading trailer: %s", key, strerror(-r));
	if (trailer.len != tlen)
		return log_error_errno(-EBADMSG, "pack %s: corrupt: short trailer", key);
	r = codec_open(c, trailer_ad, sizeof(trailer_ad) - 1, trailer.data, trailer.len, &body);
	if (r == -EBADMSG)
		return log_error_errno(r, "pack %s: corrupt: trailer fails authentication", key);
	if (r < 0)
		return r;
	struct reader rd = {body.data, body.len};
	_cleanup_free_ struct pack_entry *e = NULL;
	size_t n;
	r = pack_entries_decode(&rd, size - tlen, &e, &n);
	if (r == -EBADMSG || (r >= 0 && rd.left))
		return log_error_errno(-EBADMSG, "pack %s: corrupt: malformed trailer", key);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(e);
	*ret_n = n;
	if (ret_size)
		*ret_size = size;
	return 0;
}
