/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests for store/index.c: the SQLite blob index and the index segment codec. */
#include "index.h"

#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <sys/stat.h>

#include "tap.h"

static char last_error[1024];

static void capture_sink(enum log_level level, const char *msg)
{
	if (level <= LOG_ERR)
		snprintf(last_error, sizeof(last_error), "%s", msg);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path) < 0 ? -1 : 0;
}

static void rm_rf(const char *dir)
{
	if (nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0)
		diag("could not remove %s", dir);
}

static void new_codec(struct codec *c, bool encrypted)
{
	uint8_t master[32];

	codec_random(master, sizeof(master));
	tap_require(codec_init(c, master, encrypted) == 0);
}

/* A pack of n entries with random ids, laid out back to back from the header. */
struct test_pack {
	uint8_t name[PACK_NAME_SIZE];
	uint64_t size;
	struct pack_entry *e;
	size_t n;
};

static void make_pack(struct test_pack *p, size_t n, uint32_t salt)
{
	uint32_t off = PACK_HEADER_SIZE;

	codec_random(p->name, sizeof(p->name));
	p->n = n;
	p->e = calloc(n ? n : 1, sizeof(*p->e));
	tap_require(p->e);
	for (size_t i = 0; i < n; i++) {
		codec_random(p->e[i].id.b, BLOB_ID_SIZE);
		p->e[i].type = (i + salt) % 2 ? BLOB_TREE : BLOB_DATA;
		p->e[i].offset = off;
		p->e[i].length = 50 + (uint32_t)i * 3 + salt;
		p->e[i].rawlen = (uint32_t)i * 1000 + salt;
		off += p->e[i].length;
	}
	p->size = off + 100 + PACK_FOOTER_SIZE;
}

static bool loc_matches(const struct index_loc *l, const struct test_pack *p, size_t i)
{
	const struct pack_entry *e = &p->e[i];
	return !memcmp(l->pack, p->name, PACK_NAME_SIZE) && l->type == e->type &&
	       l->offset == e->offset && l->length == e->length && l->rawlen == e->rawlen;
}

/* How many entries of p are found at their location in p. */
static size_t count_found(struct index *x, const struct test_pack *p)
{
	size_t found = 0;
	for (size_t i = 0; i < p->n; i++) {
		struct index_loc l;
		if (index_lookup(x, &p->e[i].id, &l) == 0 && loc_matches(&l, p, i))
			found++;
	}
	return found;
}

static size_t count_missing(struct index *x, const struct test_pack *p)
{
	size_t missing = 0;
	for (size_t i = 0; i < p->n; i++) {
		struct index_loc l;
		if (index_lookup(x, &p->e[i].id, &l) == -ENOENT)
			missing++;
	}
	return missing;
}

struct visit {
	const struct test_pack *packs;
	size_t n_packs;
	unsigned seen[8];
	unsigned calls, unknown;
	int stop_with;
};

static int visit_pack(const uint8_t name[PACK_NAME_SIZE], void *ud)
{
	struct visit *v = ud;
	size_t i;

	v->calls++;
	for (i = 0; i < v->n_packs; i++)
		if (!memcmp(name, v->packs[i].name, PACK_NAME_SIZE))
			break;
	if (i < v->n_packs)
		v->seen[i]++;
	else
		v->unknown++;
	return v->stop_with;
}

struct worker {
	struct index *x;
	struct test_pack packs[10];
	size_t found, errors;
};

static void *worker_run(void *arg)
{
	struct worker *w = arg;

	for (size_t i = 0; i < ELEMENTSOF(w->packs); i++) {
		struct test_pack *p = &w->packs[i];
		if (index_add_pack(w->x, p->name, p->size, p->e, p->n) < 0)
			w->errors++;
		if (index_has_pack(w->x, p->name) != 1)
			w->errors++;
		for (size_t k = 0; k <= i; k++)
			w->found += count_found(w->x, &w->packs[k]);
	}
	return NULL;
}

static void test_threads(struct index *x)
{
	struct worker w[4];
	pthread_t t[ELEMENTSOF(w)];
	size_t found = 0, expect = 0, errors = 0;

	for (size_t i = 0; i < ELEMENTSOF(w); i++) {
		w[i] = (struct worker){.x = x};
		for (size_t k = 0; k < ELEMENTSOF(w[i].packs); k++)
			make_pack(&w[i].packs[k], 8, (uint32_t)k);
	}
	for (size_t i = 0; i < ELEMENTSOF(w); i++)
		tap_require(pthread_create(&t[i], NULL, worker_run, &w[i]) == 0);
	for (size_t i = 0; i < ELEMENTSOF(w); i++) {
		pthread_join(t[i], NULL);
		found += w[i].found;
		errors += w[i].errors;
		/* each worker looks up pack k (10 - k) times */
		for (size_t k = 0; k < ELEMENTSOF(w[i].packs); k++)
			expect += w[i].packs[k].n * (ELEMENTSOF(w[i].packs) - k);
	}
	is_int(errors, 0, "concurrent add_pack/has_pack from 4 threads: no errors");
	is_int(found, expect, "concurrent lookups from 4 threads find every blob");
	for (size_t i = 0; i < ELEMENTSOF(w); i++)
		for (size_t k = 0; k < ELEMENTSOF(w[i].packs); k++) {
			tap_require(index_remove_pack(x, w[i].packs[k].name) == 0);
			free(w[i].packs[k].e);
		}
}

static void test_database(const char *dir)
{
	char path[512], other_path[512];
	uint8_t repo[REPO_ID_SIZE], other_repo[REPO_ID_SIZE];
	struct test_pack packs[3], dup;
	struct index *x = NULL;
	struct index_loc l;
	struct blob_id unknown;
	uint64_t blobs = 0, npacks = 0, synced = 99;
	struct stat st;

	snprintf(path, sizeof(path), "%s/index.db", dir);
	codec_random(repo, sizeof(repo));
	memcpy(other_repo, repo, sizeof(repo));
	other_repo[REPO_ID_SIZE - 1] ^= 1;

	is_int(index_open(path, repo, &x), 0, "index_open creates a new index");
	tap_require(x);
	ok(stat(path, &st) == 0 && S_ISREG(st.st_mode), "index.db exists");
	is_int(index_count(x, &blobs, &npacks), 0, "count an empty index");
	ok(blobs == 0 && npacks == 0, "a new index is empty");
	is_int(index_get_synced(x, &synced), 0, "get synced of a new index");
	is_int(synced, 0, "a new index was never synced");

	for (size_t i = 0; i < ELEMENTSOF(packs); i++)
		make_pack(&packs[i], 10 + i * 20, (uint32_t)i);
	/* Large values must survive the trip through SQLite's signed integers. */
	packs[2].e[0].offset = 0xffffff00u;
	packs[2].e[0].length = 0xf0u;
	packs[2].e[0].rawlen = BLOB_MAX_SIZE;
	packs[2].size = PACK_MAX_SIZE;

	for (size_t i = 0; i < ELEMENTSOF(packs); i++) {
		is_int(index_has_pack(x, packs[i].name), 0, "pack %zu unknown before add", i);
		is_int(index_add_pack(x, packs[i].name, packs[i].size, packs[i].e, packs[i].n), 0,
		       "add pack %zu (%zu blobs)", i, packs[i].n);
		is_int(index_has_pack(x, packs[i].name), 1, "pack %zu known after add", i);
	}
	for (size_t i = 0; i < ELEMENTSOF(packs); i++)
		is_int(count_found(x, &packs[i]), packs[i].n,
		       "every blob of pack %zu is found at its location", i);

	codec_random(unknown.b, sizeof(unknown.b));
	is_int(index_lookup(x, &unknown, &l), -ENOENT, "an unknown blob id is -ENOENT");
	is_int(index_count(x, &blobs, &npacks), 0, "count");
	is_int(blobs, 10 + 30 + 50, "blob count");
	is_int(npacks, 3, "pack count");

	/* Adding the same pack again changes nothing. */
	is_int(index_add_pack(x, packs[0].name, packs[0].size, packs[0].e, packs[0].n), 0,
	       "adding a pack twice is fine");
	index_count(x, &blobs, &npacks);
	ok(blobs == 90 && npacks == 3, "adding a pack twice adds nothing");

	/* A blob already indexed keeps its first location. */
	make_pack(&dup, 4, 7);
	dup.e[1].id = packs[1].e[5].id;
	dup.e[2].id = packs[0].e[0].id;
	is_int(index_add_pack(x, dup.name, dup.size, dup.e, dup.n), 0,
	       "add a pack holding two already-indexed blobs");
	ok(index_lookup(x, &packs[1].e[5].id, &l) == 0 && loc_matches(&l, &packs[1], 5),
	   "a duplicated blob keeps its first location (pack 1)");
	ok(index_lookup(x, &packs[0].e[0].id, &l) == 0 && loc_matches(&l, &packs[0], 0),
	   "a duplicated blob keeps its first location (pack 0)");
	ok(index_lookup(x, &dup.e[0].id, &l) == 0 && loc_matches(&l, &dup, 0),
	   "the new blobs of that pack are indexed");
	index_count(x, &blobs, &npacks);
	ok(blobs == 92 && npacks == 4, "duplicates are not counted twice (%" PRIu64 " blobs)",
	   blobs);
	is_int(index_remove_pack(x, dup.name), 0, "remove the pack of duplicates");
	ok(index_lookup(x, &packs[1].e[5].id, &l) == 0 && loc_matches(&l, &packs[1], 5),
	   "removing the second home of a blob leaves its first");
	free(dup.e);

	/* foreach visits every pack once; a negative return stops it. */
	struct visit v = {.packs = packs, .n_packs = ELEMENTSOF(packs)};
	is_int(index_foreach_pack(x, visit_pack, &v), 0, "foreach_pack");
	ok(v.calls == 3 && v.seen[0] == 1 && v.seen[1] == 1 && v.seen[2] == 1 && !v.unknown,
	   "foreach_pack visits each pack once");
	v = (struct visit){.packs = packs, .n_packs = ELEMENTSOF(packs), .stop_with = -ECANCELED};
	is_int(index_foreach_pack(x, visit_pack, &v), -ECANCELED,
	       "foreach_pack returns the callback's error");
	is_int(v.calls, 1, "foreach_pack stops at the first error");

	/* remove_pack forgets the pack and its blobs, nothing else. */
	is_int(index_remove_pack(x, packs[1].name), 0, "remove pack 1");
	is_int(index_has_pack(x, packs[1].name), 0, "pack 1 unknown after remove");
	is_int(count_missing(x, &packs[1]), packs[1].n, "every blob of pack 1 is gone");
	is_int(count_found(x, &packs[0]), packs[0].n, "pack 0's blobs remain");
	is_int(count_found(x, &packs[2]), packs[2].n, "pack 2's blobs remain");
	index_count(x, &blobs, &npacks);
	ok(blobs == 60 && npacks == 2, "counts after remove: %" PRIu64 " blobs, %" PRIu64 " packs",
	   blobs, npacks);
	v = (struct visit){.packs = packs, .n_packs = ELEMENTSOF(packs)};
	index_foreach_pack(x, visit_pack, &v);
	ok(v.calls == 2 && v.seen[1] == 0, "foreach_pack no longer visits a removed pack");
	is_int(index_remove_pack(x, packs[1].name), 0, "removing an unknown pack is fine");

	/* Segments. */
	uint8_t seg[32], seg2[32];
	codec_random(seg, sizeof(seg));
	codec_random(seg2, sizeof(seg2));
	is_int(index_has_segment(x, seg), 0, "segment unknown");
	is_int(index_add_segment(x, seg), 0, "add segment");
	is_int(index_has_segment(x, seg), 1, "segment known after add");
	is_int(index_add_segment(x, seg), 0, "adding a segment twice is fine");
	is_int(index_has_segment(x, seg2), 0, "another segment stays unknown");

	is_int(index_set_synced(x, 42), 0, "set synced");
	is_int(index_get_synced(x, &synced), 0, "get synced");
	is_int(synced, 42, "synced reads back");
	is_int(index_set_synced(x, UINT64_MAX - 1), 0, "set a huge synced seq");
	index_get_synced(x, &synced);
	ok(synced == UINT64_MAX - 1, "a huge synced seq reads back");
	is_int(index_set_synced(x, 43), 0, "set synced again");

	test_threads(x);

	index_close(x);
	x = NULL;

	/* Everything persists across close and reopen. */
	is_int(index_open(path, repo, &x), 0, "reopen the index");
	tap_require(x);
	synced = 0;
	index_get_synced(x, &synced);
	is_int(synced, 43, "synced persists across reopen");
	is_int(index_has_segment(x, seg), 1, "segment persists across reopen");
	is_int(index_has_pack(x, packs[0].name), 1, "pack persists across reopen");
	is_int(count_found(x, &packs[2]), packs[2].n, "blobs persist across reopen");
	is_int(count_missing(x, &packs[1]), packs[1].n, "removed blobs stay removed");
	index_close(x);
	x = NULL;

	/* Another repository's index is refused, and left alone. */
	last_error[0] = 0;
	is_int(index_open(path, other_repo, &x), -EXDEV, "index of another repository is -EXDEV");
	ok(!x, "no index returned on -EXDEV");
	ok(strstr(last_error, path) != NULL, "-EXDEV is logged naming the file");
	is_int(index_open(path, repo, &x), 0, "the index still opens for its own repository");
	if (x)
		is_int(count_found(x, &packs[0]), packs[0].n, "and still has its blobs");
	index_close(x);
	x = NULL;

	/* Files that are not databases. */
	static const char *garbage[] = {
		"this is not a database, just some text that is long enough to fill a header\n",
		"SQLite format 3", /* a truncated header */
	};
	for (size_t i = 0; i < ELEMENTSOF(garbage) + 1; i++) {
		uint8_t junk[8192];
		size_t len;
		snprintf(other_path, sizeof(other_path), "%s/garbage%zu.db", dir, i);
		if (i < ELEMENTSOF(garbage)) {
			len = strlen(garbage[i]) + 1;
			memcpy(junk, garbage[i], len);
		} else {
			len = sizeof(junk);
			for (size_t k = 0; k < len; k++)
				junk[k] = (uint8_t)(k * 131 + 7);
		}
		_cleanup_close_ int fd =
			open(other_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		tap_require(fd >= 0);
		tap_require(write(fd, junk, len) == (ssize_t)len);
		x = NULL;
		int r = index_open(other_path, repo, &x);
		is_int(r, -EBADMSG, "a file that is not a database is -EBADMSG (%zu)", i);
		ok(!x, "  ... and returns no index");
		if (r >= 0)
			index_close(x);
		x = NULL;
	}
	/* SQLite databases that are not cairn indexes of this schema version. */
	static const struct {
		const char *what, *sql;
	} foreign[] = {
		{"another program's database with a packs table",
		 "CREATE TABLE packs(x TEXT); INSERT INTO packs VALUES('mine');"},
		{"a cairn index of schema version 2",
		 "UPDATE meta SET value = 2 WHERE key = 'version';"},
	};
	for (size_t i = 0; i < ELEMENTSOF(foreign); i++) {
		sqlite3 *db = NULL;
		snprintf(other_path, sizeof(other_path), "%s/foreign%zu.db", dir, i);
		if (i == 1) {
			tap_require(index_open(other_path, repo, &x) == 0);
			index_close(x);
			x = NULL;
		}
		tap_require(sqlite3_open(other_path, &db) == SQLITE_OK);
		tap_require(sqlite3_exec(db, foreign[i].sql, NULL, NULL, NULL) == SQLITE_OK);
		sqlite3_close(db);
		int r = index_open(other_path, repo, &x);
		is_int(r, -EBADMSG, "%s is -EBADMSG", foreign[i].what);
		if (r >= 0)
			index_close(x);
		x = NULL;
	}

	snprintf(other_path, sizeof(other_path), "%s/no/such/dir/index.db", dir);
	ok(index_open(other_path, repo, &x) < 0, "index in a missing directory fails");

	for (size_t i = 0; i < ELEMENTSOF(packs); i++)
		free(packs[i].e);
}

static bool segments_equal(const struct index_segment_pack *a, const struct test_pack *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (memcmp(a[i].name, b[i].name, PACK_NAME_SIZE) || a[i].size != b[i].size ||
		    a[i].n != b[i].n)
			return false;
		for (size_t k = 0; k < b[i].n; k++) {
			const struct pack_entry *x = &a[i].entries[k], *y = &b[i].e[k];
			if (memcmp(x->id.b, y->id.b, BLOB_ID_SIZE) || x->type != y->type ||
			    x->offset != y->offset || x->length != y->length ||
			    x->rawlen != y->rawlen)
				return false;
		}
	}
	return true;
}

static void test_segments(bool encrypted)
{
	struct codec c, other;
	struct test_pack tp[4];
	struct index_segment_pack in[ELEMENTSOF(tp)], *out = NULL;
	_cleanup_buf_ struct buf sealed = {0};
	size_t n = 0;
	const char *mode = encrypted ? "encrypted" : "plaintext";

	new_codec(&c, encrypted);
	for (size_t i = 0; i < ELEMENTSOF(tp); i++) {
		make_pack(&tp[i], i == 2 ? 0 : 1 + i * 3, (uint32_t)i);
		in[i] = (struct index_segment_pack){
			.size = tp[i].size, .entries = tp[i].e, .n = tp[i].n};
		memcpy(in[i].name, tp[i].name, PACK_NAME_SIZE);
	}

	is_int(index_segment_encode(&c, in, ELEMENTSOF(in), &sealed), 0, "%s: encode a segment",
	       mode);
	is_int(index_segment_decode(&c, sealed.data, sealed.len, &out, &n), 0,
	       "%s: decode the segment", mode);
	is_int(n, ELEMENTSOF(in), "%s: segment pack count", mode);
	ok(n == ELEMENTSOF(in) && segments_equal(out, tp, n), "%s: segment round trip", mode);
	index_segment_free(out, n);
	out = NULL;

	/* An empty segment. */
	_cleanup_buf_ struct buf empty = {0};
	is_int(index_segment_encode(&c, NULL, 0, &empty), 0, "%s: encode an empty segment", mode);
	n = 99;
	is_int(index_segment_decode(&c, empty.data, empty.len, &out, &n), 0,
	       "%s: decode an empty segment", mode);
	is_int(n, 0, "%s: empty segment has no packs", mode);
	index_segment_free(out, n);
	out = NULL;

	/* Every single-byte flip, every truncation, and another key: -EBADMSG. */
	static const uint8_t masks[] = {0x01, 0xff};
	_cleanup_free_ uint8_t *copy = malloc(sealed.len + 1);
	tap_require(copy);
	size_t bad = 0;
	for (size_t i = 0; i < sealed.len; i++) {
		for (size_t m = 0; m < ELEMENTSOF(masks); m++) {
			memcpy(copy, sealed.data, sealed.len);
			copy[i] ^= masks[m];
			int r = index_segment_decode(&c, copy, sealed.len, &out, &n);
			if (r != -EBADMSG && !bad++)
				diag("flip at %zu of %zu: %d", i, sealed.len, r);
			if (r >= 0)
				index_segment_free(out, n);
			out = NULL;
		}
	}
	ok(bad == 0, "%s: every single-byte flip of a %zu-byte segment is -EBADMSG", mode,
	   sealed.len);
	bad = 0;
	for (size_t cut = 0; cut < sealed.len; cut++) {
		int r = index_segment_decode(&c, sealed.data, cut, &out, &n);
		if (r != -EBADMSG && !bad++)
			diag("segment cut to %zu: %d", cut, r);
		if (r >= 0)
			index_segment_free(out, n);
		out = NULL;
	}
	ok(bad == 0, "%s: every truncation of a segment is -EBADMSG", mode);
	memcpy(copy, sealed.data, sealed.len);
	copy[sealed.len] = 0;
	is_int(index_segment_decode(&c, copy, sealed.len + 1, &out, &n), -EBADMSG,
	       "%s: a segment with a byte appended is -EBADMSG", mode);
	new_codec(&other, encrypted);
	is_int(index_segment_decode(&other, sealed.data, sealed.len, &out, &n), -EBADMSG,
	       "%s: a segment under another key is -EBADMSG", mode);
	codec_release(&other);

	/* A well-sealed body whose pack count exceeds what it holds. */
	_cleanup_buf_ struct buf body = {0}, lie = {0};
	tap_require(buf_append_le32(&body, 1000000) == 0);
	tap_require(codec_seal(&c, "cairn-index\x01", 12, body.data, body.len, &lie) == 0);
	is_int(index_segment_decode(&c, lie.data, lie.len, &out, &n), -EBADMSG,
	       "%s: a segment claiming a million packs in 4 bytes is -EBADMSG", mode);
	/* A sealed pack trailer is not a segment (different additional data). */
	buf_reset(&lie);
	tap_require(codec_seal(&c, "cairn-trailer\x01", 14, body.data, body.len, &lie) == 0);
	is_int(index_segment_decode(&c, lie.data, lie.len, &out, &n), -EBADMSG,
	       "%s: a pack trailer opened as a segment is -EBADMSG", mode);

	for (size_t i = 0; i < ELEMENTSOF(tp); i++)
		free(tp[i].e);
	codec_release(&c);
}

int main(void)
{
	char dir[] = "/tmp/cairn-test-index-XXXXXX";

	plan_lazy();
	tap_require(codec_global_init() == 0);
	log_set_sink(capture_sink);
	tap_require(mkdtemp(dir));

	test_database(dir);
	test_segments(true);
	test_segments(false);

	rm_rf(dir);
	struct stat st;
	ok(stat(dir, &st) < 0 && errno == ENOENT, "temporary directory removed");
	return tap_done();
}
