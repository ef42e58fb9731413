/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests for store/commit.c: commit encoding, authentication, writing and finding. */
#include "commit.h"

#include <stdio.h>

#include "tap.h"

static char last_error[1024];

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

static void fill_id(struct blob_id *id, uint8_t seed)
{
	for (size_t i = 0; i < BLOB_ID_SIZE; i++)
		id->b[i] = (uint8_t)(seed * 31 + i);
}

/* A commit with nsnap snapshots; one snapshot name has the maximum length. */
static void make_commit(struct commit *c, uint64_t seq, size_t nsnap, bool has_root)
{
	char name[COMMIT_STR_MAX + 1];

	*c = (struct commit){.seq = seq,
			     .parent = seq ? seq - 1 : 0,
			     .time_ns = 1700000000123456789ull + seq,
			     .has_root = has_root};
	c->host = strdup("builder.example.org");
	tap_require(c->host);
	if (has_root)
		fill_id(&c->root, (uint8_t)seq);
	for (size_t i = 0; i < nsnap; i++) {
		struct blob_id root;
		fill_id(&root, (uint8_t)(100 + i));
		if (i == 1) {
			memset(name, 'n', COMMIT_STR_MAX);
			name[COMMIT_STR_MAX] = 0;
		} else {
			snprintf(name, sizeof(name), "daily-2024-01-%02zu", i + 1);
		}
		tap_require(commit_add_snapshot(c, name, &root, 1600000000000000000ull + i,
						i == 2 ? "" : "laptop") == 0);
	}
}

static bool commits_equal(const struct commit *a, const struct commit *b)
{
	if (a->seq != b->seq || a->parent != b->parent || a->time_ns != b->time_ns ||
	    strcmp(a->host ? a->host : "", b->host ? b->host : "") || a->has_root != b->has_root ||
	    a->n_snaps != b->n_snaps)
		return false;
	if (a->has_root && memcmp(a->root.b, b->root.b, BLOB_ID_SIZE))
		return false;
	for (size_t i = 0; i < a->n_snaps; i++) {
		const struct snapshot_ref *x = &a->snaps[i], *y = &b->snaps[i];
		if (strcmp(x->name, y->name) || memcmp(x->root.b, y->root.b, BLOB_ID_SIZE) ||
		    x->time_ns != y->time_ns || strcmp(x->host, y->host))
			return false;
	}
	return true;
}

static void test_round_trip(bool encrypted)
{
	static const struct {
		uint64_t seq;
		size_t nsnap;
		bool has_root;
	} cases[] = {{1, 0, true}, {12, 3, true}, {UINT64_MAX, 3, false}, {0, 0, false}};
	struct codec c;
	const char *mode = encrypted ? "encrypted" : "plaintext";

	new_codec(&c, encrypted);
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		struct commit in, out = {0};
		_cleanup_buf_ struct buf data = {0};

		make_commit(&in, cases[i].seq, cases[i].nsnap, cases[i].has_root);
		is_int(commit_encode(&c, &in, &data), 0,
		       "%s: encode commit %" PRIu64 " (%zu snapshots)", mode, in.seq, in.n_snaps);
		is_int(commit_decode(&c, in.seq, data.data, data.len, &out), 0,
		       "%s: decode commit %" PRIu64, mode, in.seq);
		ok(commits_equal(&in, &out), "%s: commit %" PRIu64 " round trips", mode, in.seq);
		commit_release(&out);
		ok(out.n_snaps == 0 && !out.snaps && !out.host, "commit_release clears the commit");
		commit_release(&in);
	}
	codec_release(&c);
}

static void test_corruption(bool encrypted)
{
	static const uint64_t wrong_seqs[] = {11, 13, 0, UINT64_MAX, 12ull << 32};
	static const uint8_t masks[] = {0x01, 0x80, 0xff};
	struct codec c, other;
	struct commit in, out = {0};
	_cleanup_buf_ struct buf data = {0};
	const char *mode = encrypted ? "encrypted" : "plaintext";

	new_codec(&c, encrypted);
	make_commit(&in, 12, 3, true);
	tap_require(commit_encode(&c, &in, &data) == 0);

	for (size_t i = 0; i < ELEMENTSOF(wrong_seqs); i++) {
		int r = commit_decode(&c, wrong_seqs[i], data.data, data.len, &out);
		is_int(r, -EBADMSG, "%s: commit 12 read as commit %" PRIu64 " is -EBADMSG", mode,
		       wrong_seqs[i]);
		if (r >= 0)
			commit_release(&out);
	}

	_cleanup_free_ uint8_t *copy = malloc(data.len + 1);
	tap_require(copy);
	size_t bad = 0, tried = 0;
	for (size_t i = 0; i < data.len; i++) {
		for (size_t m = 0; m < ELEMENTSOF(masks); m++) {
			memcpy(copy, data.data, data.len);
			copy[i] ^= masks[m];
			int r = commit_decode(&c, 12, copy, data.len, &out);
			tried++;
			if (r != -EBADMSG && !bad++)
				diag("flip ^%02x at %zu of %zu: %d", masks[m], i, data.len, r);
			if (r >= 0)
				commit_release(&out);
		}
	}
	ok(bad == 0, "%s: each of %zu single-byte flips of a commit is -EBADMSG", mode, tried);

	bad = 0;
	for (size_t cut = 0; cut < data.len; cut++) {
		int r = commit_decode(&c, 12, data.data, cut, &out);
		if (r != -EBADMSG && !bad++)
			diag("commit cut to %zu of %zu: %d", cut, data.len, r);
		if (r >= 0)
			commit_release(&out);
	}
	ok(bad == 0, "%s: every truncation of a commit is -EBADMSG", mode);
	memcpy(copy, data.data, data.len);
	copy[data.len] = 0;
	is_int(commit_decode(&c, 12, copy, data.len + 1, &out), -EBADMSG,
	       "%s: a commit with a byte appended is -EBADMSG", mode);

	new_codec(&other, encrypted);
	is_int(commit_decode(&other, 12, data.data, data.len, &out), -EBADMSG,
	       "%s: a commit under another key is -EBADMSG", mode);
	codec_release(&other);

	/* Well sealed but malformed bodies. */
	_cleanup_buf_ struct buf body = {0}, sealed = {0};
	uint8_t ad[21];
	memcpy(ad, "cairn-commit\x01", 13);
	put_le64(ad + 13, 12);
	tap_require(buf_append(&body, "\x01", 1) == 0);
	tap_require(buf_append_le64(&body, 12) == 0);
	tap_require(buf_append_le64(&body, 11) == 0);
	tap_require(buf_append_le64(&body, 5) == 0);
	tap_require(buf_append_str(&body, "h") == 0);
	tap_require(buf_append(&body, "\x01", 1) == 0);
	tap_require(buf_append(&body, in.root.b, BLOB_ID_SIZE) == 0);
	size_t nsnap_at = body.len;
	tap_require(buf_append_le32(&body, 0) == 0);
	tap_require(codec_seal(&c, ad, sizeof(ad), body.data, body.len, &sealed) == 0);
	is_int(commit_decode(&c, 12, sealed.data, sealed.len, &out), 0,
	       "%s: a hand-made commit body decodes", mode);
	commit_release(&out);

	put_le32(body.data + nsnap_at, 100000);
	buf_reset(&sealed);
	tap_require(codec_seal(&c, ad, sizeof(ad), body.data, body.len, &sealed) == 0);
	is_int(commit_decode(&c, 12, sealed.data, sealed.len, &out), -EBADMSG,
	       "%s: a commit claiming 100000 snapshots in 0 bytes is -EBADMSG", mode);
	put_le32(body.data + nsnap_at, 0);
	body.data[0] = 2;
	buf_reset(&sealed);
	tap_require(codec_seal(&c, ad, sizeof(ad), body.data, body.len, &sealed) == 0);
	is_int(commit_decode(&c, 12, sealed.data, sealed.len, &out), -EBADMSG,
	       "%s: a commit of version 2 is -EBADMSG", mode);

	commit_release(&in);
	codec_release(&c);
}

static void test_snapshots(void)
{
	struct commit c = {0};
	struct blob_id root;
	char name[301];

	fill_id(&root, 1);
	memset(name, 'x', 300);
	name[300] = 0;
	is_int(commit_add_snapshot(&c, name, &root, 1, "host"), -EINVAL,
	       "commit_add_snapshot rejects a 300-byte name");
	name[COMMIT_STR_MAX + 1] = 0;
	is_int(commit_add_snapshot(&c, name, &root, 1, "host"), -EINVAL,
	       "commit_add_snapshot rejects a 256-byte name");
	is_int(commit_add_snapshot(&c, "ok", &root, 1, name), -EINVAL,
	       "commit_add_snapshot rejects a 256-byte host");
	is_int(c.n_snaps, 0, "rejected snapshots are not added");
	name[COMMIT_STR_MAX] = 0;
	is_int(commit_add_snapshot(&c, name, &root, 1, "host"), 0,
	       "commit_add_snapshot takes a 255-byte name");
	is_int(c.n_snaps, 1, "one snapshot added");
	ok(c.n_snaps == 1 && strlen(c.snaps[0].name) == COMMIT_STR_MAX && c.snaps[0].name != name,
	   "the name is copied");
	commit_release(&c);
}

static int write_seq(struct backend *be, const struct codec *k, uint64_t seq)
{
	struct commit c;

	make_commit(&c, seq, seq % 3, true);
	int r = commit_write(be, k, &c);
	commit_release(&c);
	return r;
}

static void test_backend(void)
{
	struct codec c;
	_cleanup_backend_ struct backend *be = NULL;
	char key[COMMIT_KEY_MAX];
	uint64_t latest = 99;
	struct commit out = {0}, want;

	new_codec(&c, true);
	tap_require(backend_mem_new(&be) == 0);

	commit_key(12, key);
	ok(!strcmp(key, "commits/00000000000000000012"), "commit_key(12) is %s", key);
	commit_key(UINT64_MAX, key);
	ok(!strcmp(key, "commits/18446744073709551615") && backend_key_valid(key),
	   "commit_key(UINT64_MAX) is %s", key);

	is_int(commit_find_latest(be, &latest), 0, "find_latest in an empty repository");
	is_int(latest, 0, "no commit: latest is 0");
	is_int(commit_load(be, &c, 1, &out), -ENOENT, "loading a missing commit is -ENOENT");

	bool all = true;
	for (uint64_t seq = 1; seq <= 12; seq++)
		all &= write_seq(be, &c, seq) == 0;
	ok(all, "write commits 1..12");
	is_int(commit_find_latest(be, &latest), 0, "find_latest");
	is_int(latest, 12, "latest of commits 1..12 is 12");

	/* The first writer wins; the object is not replaced. */
	last_error[0] = 0;
	make_commit(&want, 12, 0, false);
	is_int(commit_write(be, &c, &want), -EEXIST, "writing commit 12 again is -EEXIST");
	ok(strstr(last_error, "commits/00000000000000000012") != NULL,
	   "-EEXIST is logged naming the commit");
	commit_release(&want);
	make_commit(&want, 12, 12 % 3, true);
	is_int(commit_load(be, &c, 12, &out), 0, "load commit 12");
	ok(commits_equal(&want, &out), "commit 12 is the first one written");
	commit_release(&out);
	commit_release(&want);

	/* Keys under commits/ that are not commits are ignored. */
	static const char *junk[] = {
		"commits/foo",
		"commits/00000000000000000099.tmp",
		"commits/0000000000000000099",
		"commits/000000000000000000099",
		"commits/0000000000000000009x",
		"commits/sub/00000000000000000500",
		"commits/0x0000000000000000ff",
		"commits/99999999999999999999",
		"commits/-0000000000000000001",
	};
	for (size_t i = 0; i < ELEMENTSOF(junk); i++) {
		tap_require(backend_put(be, junk[i], "junk", 4, 0) == 0);
		latest = 0;
		int r = commit_find_latest(be, &latest);
		ok(r == 0 && latest == 12, "find_latest ignores %s (got %d, %" PRIu64 ")", junk[i],
		   r, latest);
		tap_require(backend_del(be, junk[i]) == 0);
	}
	/* Leave the junk in place, except the last (a known case checked alone above). */
	for (size_t i = 0; i + 1 < ELEMENTSOF(junk); i++)
		tap_require(backend_put(be, junk[i], "junk", 4, 0) == 0);
	tap_require(backend_put(be, "commit", "x", 1, 0) == 0);
	tap_require(backend_put(be, "lock", "x", 1, 0) == 0);

	/* Sorting is numeric: 100 is after 99, and after 12. */
	ok(write_seq(be, &c, 100) == 0 && write_seq(be, &c, 99) == 0, "write commits 99 and 100");
	latest = 0;
	commit_find_latest(be, &latest);
	is_int(latest, 100, "latest of 1..12, 99, 100 is 100");

	/* A corrupt commit object. */
	_cleanup_buf_ struct buf data = {0};
	commit_key(100, key);
	tap_require(backend_get(be, key, 0, BACKEND_WHOLE, &data) == 0);
	data.data[data.len / 2] ^= 0x40;
	tap_require(backend_put(be, key, data.data, data.len, 0) == 0);
	last_error[0] = 0;
	is_int(commit_load(be, &c, 100, &out), -EBADMSG, "loading a corrupt commit is -EBADMSG");
	ok(strstr(last_error, "commits/00000000000000000100") != NULL,
	   "the corrupt commit is logged naming it: \"%s\"", last_error);

	/* A commit copied under another seq. */
	buf_reset(&data);
	commit_key(99, key);
	tap_require(backend_get(be, key, 0, BACKEND_WHOLE, &data) == 0);
	commit_key(101, key);
	tap_require(backend_put(be, key, data.data, data.len, BACKEND_PUT_EXCLUSIVE) == 0);
	last_error[0] = 0;
	is_int(commit_load(be, &c, 101, &out), -EBADMSG, "commit 99 renamed to 101 is -EBADMSG");
	ok(strstr(last_error, "commits/00000000000000000101") != NULL,
	   "the renamed commit is logged naming it");
	is_int(commit_load(be, &c, 99, &out), 0, "the original commit 99 still loads");
	is_int(out.seq, 99, "commit 99 has seq 99");
	commit_release(&out);

	/* Truncated to nothing. */
	commit_key(102, key);
	tap_require(backend_put(be, key, "", 0, 0) == 0);
	is_int(commit_load(be, &c, 102, &out), -EBADMSG, "an empty commit object is -EBADMSG");

	codec_release(&c);
}

static void test_backend_errors(void)
{
	struct codec c;
	_cleanup_backend_ struct backend *be = NULL;
	struct backend *mem = NULL;
	uint64_t latest = 7;
	struct commit in, out = {0};

	new_codec(&c, true);
	tap_require(backend_mem_new(&mem) == 0);
	tap_require(backend_fault_new(mem, &be) == 0);
	tap_require(write_seq(be, &c, 1) == 0);

	backend_fault_fail(be, BACKEND_OP_LIST, NULL, -EIO, 1);
	is_int(commit_find_latest(be, &latest), -EIO, "find_latest passes on a listing error");
	backend_fault_fail(be, BACKEND_OP_GET, NULL, -EACCES, 1);
	is_int(commit_load(be, &c, 1, &out), -EACCES, "commit_load passes on a get error");
	make_commit(&in, 2, 1, true);
	backend_fault_fail(be, BACKEND_OP_PUT, NULL, -ENOSPC, 1);
	is_int(commit_write(be, &c, &in), -ENOSPC, "commit_write passes on a put error");
	is_int(commit_write(be, &c, &in), 0, "commit_write works once the fault is gone");
	is_int(commit_find_latest(be, &latest), 0, "find_latest after the faults");
	is_int(latest, 2, "latest is 2");
	commit_release(&in);
	codec_release(&c);
}

int main(void)
{
	plan_lazy();
	tap_require(codec_global_init() == 0);
	log_set_sink(capture_sink);

	test_round_trip(true);
	test_round_trip(false);
	test_corruption(true);
	test_corruption(false);
	test_snapshots();
	test_backend();
	test_backend_errors();
	return tap_done();
}
