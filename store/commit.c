/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Commit objects: encoding, authentication, finding the latest (format in commit.h). */
#include "commit.h"

#include <inttypes.h>
#include <stdio.h>

#define COMMIT_VERSION 1

static void commit_ad(uint64_t seq, uint8_t ad[21])
{
	memcpy(ad, "cairn-commit\x01", 13);
	put_le64(ad + 13, seq);
}

void commit_release(struct commit *c)
{
	for (size_t i = 0; i < c->n_snaps; i++) {
		free(c->snaps[i].name);
		free(c->snaps[i].host);
	}
	free(c->snaps);
	free(c->host);
	*c = (struct commit){0};
}

int commit_add_snapshot(struct commit *c, const char *name, const struct blob_id *root,
			uint64_t time_ns, const char *host)
{
	if (strlen(name) > COMMIT_STR_MAX || strlen(host) > COMMIT_STR_MAX ||
	    c->n_snaps >= COMMIT_MAX_SNAPSHOTS)
		return -EINVAL;
	struct snapshot_ref *s = reallocarray(c->snaps, c->n_snaps + 1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	c->snaps = s;
	s = &c->snaps[c->n_snaps];
	*s = (struct snapshot_ref){.root = *root, .time_ns = time_ns};
	s->name = strdup(name);
	s->host = strdup(host);
	if (!s->name || !s->host) {
		free(s->name);
		free(s->host);
		return -ENOMEM;
	}
	c->n_snaps++;
	return 0;
}

int commit_encode(const struct codec *k, const struct commit *c, struct buf *ret)
{
	_cleanup_buf_ struct buf b = {0};
	uint8_t ad[21];
	uint8_t version = COMMIT_VERSION, has_root = c->has_root;
	static const struct blob_id zero;

	if (c->host && strlen(c->host) > COMMIT_STR_MAX)
		return -EINVAL;
	int r = buf_append(&b, &version, 1);
	if (r >= 0)
		r = buf_append_le64(&b, c->seq);
	if (r >= 0)
		r = buf_append_le64(&b, c->parent);
	if (r >= 0)
		r = buf_append_le64(&b, c->time_ns);
	if (r >= 0)
		r = buf_append_str(&b, c->host ? c->host : "");
	if (r >= 0)
		r = buf_append(&b, &has_root, 1);
	if (r >= 0)
		r = buf_append(&b, (c->has_root ? &c->root : &zero)->b, BLOB_ID_SIZE);
	if (r >= 0)
		r = buf_append_le32(&b, (uint32_t)c->n_snaps);
	for (size_t i = 0; r >= 0 && i < c->n_snaps; i++) {
		r = buf_append_str(&b, c->snaps[i].name);
		if (r >= 0)
			r = buf_append(&b, c->snaps[i].root.b, BLOB_ID_SIZE);
		if (r >= 0)
			r = buf_append_le64(&b, c->snaps[i].time_ns);
		if (r >= 0)
			r = buf_append_str(&b, c->snaps[i].host);
	}
	if (r < 0)
		return r;
	commit_ad(c->seq, ad);
	return codec_seal(k, ad, sizeof(ad), b.data, b.len, ret);
}

static int decode_body(struct reader *rd, uint64_t seq, struct commit *c)
{
	uint8_t version, has_root;
	uint32_t n;
	int r = reader_u8(rd, &version);
	if (r < 0 || version != COMMIT_VERSION)
		return -EBADMSG;
	if ((r = reader_le64(rd, &c->seq)) < 0 || c->seq != seq ||
	    (r = reader_le64(rd, &c->parent)) < 0 || (r = reader_le64(rd, &c->time_ns)) < 0 ||
	    (r = reader_str(rd, COMMIT_STR_MAX, &c->host)) < 0 ||
	    (r = reader_u8(rd, &has_root)) < 0 || has_root > 1 ||
	    (r = reader_bytes(rd, c->root.b, BLOB_ID_SIZE)) < 0 || (r = reader_le32(rd, &n)) < 0)
		return r == -ENOMEM ? r : -EBADMSG;
	c->has_root = has_root;
	/* Each snapshot takes at least 48 bytes: bound n before allocating. */
	if (n > COMMIT_MAX_SNAPSHOTS || (uint64_t)n * 48 > rd->left)
		return -EBADMSG;
	c->snaps = calloc(n ? n : 1, sizeof(*c->snaps));
	if (!c->snaps)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		struct snapshot_ref *s = &c->snaps[i];
		c->n_snaps = i + 1;
		if ((r = reader_str(rd, COMMIT_STR_MAX, &s->name)) < 0 ||
		    (r = reader_bytes(rd, s->root.b, BLOB_ID_SIZE)) < 0 ||
		    (r = reader_le64(rd, &s->time_ns)) < 0 ||
		    (r = reader_str(rd, COMMIT_STR_MAX, &s->host)) < 0)
			return r == -ENOMEM ? r : -EBADMSG;
	}
	return rd->left ? -EBADMSG : 0;
}

int commit_decode(const struct codec *k, uint64_t seq, const void *data, size_t len,
		  struct commit *ret)
{
	_cleanup_buf_ struct buf body = {0};
	struct commit c = {0};
	uint8_t ad[21];

	commit_ad(seq, ad);
	int r = codec_open(k, ad, sizeof(ad), data, len, &body);
	if (r < 0)
		return r;
	struct reader rd = {body.data, body.len};
	r = decode_body(&rd, seq, &c);
	if (r < 0) {
		commit_release(&c);
		return r;
	}
	*ret = c;
	return 0;
}

void commit_key(uint64_t seq, char out[COMMIT_KEY_MAX])
{
	snprintf(out, COMMIT_KEY_MAX, "commits/%020" PRIu64, seq);
}

static int latest_cb(const char *key, uint64_t size, void *ud)
{
	uint64_t *max = ud;
	const char *p = key + strlen("commits/");
	char *end;
	if (strlen(p) != 20 || strspn(p, "0123456789") != 20)
		return 0; /* not ours: ignore, do not guess */
	errno = 0;
	unsigned long long v = strtoull(p, &end, 10);
	if (errno || *end)
		return 0;
	if (v > *max)
		*max = v;
	return 0;
}

int commit_find_latest(struct backend *b, uint64_t *ret_seq)
{
	uint64_t max = 0;
	int r = backend_list(b, "commits/", latest_cb, &max);
	if (r < 0)
		return log_error_errno(r, "listing commits in %s: %s", b->location, strerror(-r));
	*ret_seq = max;
	return 0;
}

int commit_load(struct backend *b, const struct codec *k, uint64_t seq, struct commit *ret)
{
	_cleanup_buf_ struct buf data = {0};
	char key[COMMIT_KEY_MAX];

	commit_key(seq, key);
	int r = backend_get(b, key, 0, BACKEND_WHOLE, &data);
	if (r < 0)
		return log_error_errno(r, "commit %s: %s", key, strerror(-r));
	r = commit_decode(k, seq, data.data, data.len, ret);
	if (r == -EBADMSG)
		return log_error_errno(
			r, "commit %s: corrupt: fails authentication or is malformed", key);
	return r;
}

int commit_write(struct backend *b, const struct codec *k, const struct commit *c)
{
	_cleanup_buf_ struct buf data = {0};
	char key[COMMIT_KEY_MAX];

	int r = commit_encode(k, c, &data);
	if (r < 0)
		return r;
	commit_key(c->seq, key);
	r = backend_put(b, key, data.data, data.len, BACKEND_PUT_EXCLUSIVE);
	if (r == -EEXIST)
		return log_error_errno(r, "commit %s already exists: another writer is active",
				       key);
	if (r < 0)
		return log_error_errno(r, "writing commit %s: %s", key, strerror(-r));
	return 0;
}
