/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The SQLite blob index and the index segment codec (schema and formats in index.h).
 * This file is the one home of sqlite3.h under store/.
 */
#include "index.h"

#include <pthread.h>
#include <sqlite3.h>

#define INDEX_SCHEMA_VERSION 1

struct index {
	sqlite3 *db;
	bool opening; /* errors are reported once, by index_open's caller */
	pthread_mutex_t lock;
	sqlite3_stmt *lookup, *add_pack, *pack_id, *add_blob, *has_pack, *has_seg, *add_seg;
};

static const char schema[] =
	"PRAGMA journal_mode=WAL;"
	"PRAGMA synchronous=NORMAL;"
	"CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value);"
	"CREATE TABLE IF NOT EXISTS packs(id INTEGER PRIMARY KEY, name BLOB UNIQUE NOT NULL,"
	" size INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS blobs(id BLOB NOT NULL, pack INTEGER NOT NULL"
	" REFERENCES packs(id), type INTEGER NOT NULL, offset INTEGER NOT NULL,"
	" length INTEGER NOT NULL, rawlen INTEGER NOT NULL, PRIMARY KEY(id, pack))"
	" WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS blobs_pack ON blobs(pack);"
	"CREATE TABLE IF NOT EXISTS segments(name BLOB PRIMARY KEY) WITHOUT ROWID;";

static int sql_err(struct index *x, int rc, const char *what)
{
	if (!x->opening)
		log_error("index: %s: %s", what, sqlite3_errmsg(x->db));
	if (rc == SQLITE_NOMEM)
		return -ENOMEM;
	if (rc == SQLITE_FULL)
		return -ENOSPC;
	if (rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB)
		return -EBADMSG;
	return -EIO;
}

static int prepare(struct index *x, const char *sql, sqlite3_stmt **ret)
{
	int rc = sqlite3_prepare_v3(x->db, sql, -1, SQLITE_PREPARE_PERSISTENT, ret, NULL);
	return rc == SQLITE_OK ? 0 : sql_err(x, rc, sql);
}

static int exec(struct index *x, const char *sql)
{
	int rc = sqlite3_exec(x->db, sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : sql_err(x, rc, sql);
}

static int meta_get_blob(struct index *x, const char *key, void *out, size_t len, bool *found)
{
	sqlite3_stmt *st;
	int r = prepare(x, "SELECT value FROM meta WHERE key = ?", &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	*found = rc == SQLITE_ROW;
	if (rc == SQLITE_ROW) {
		if ((size_t)sqlite3_column_bytes(st, 0) != len)
			r = -EBADMSG;
		else
			memcpy(out, sqlite3_column_blob(st, 0), len);
	} else if (rc != SQLITE_DONE)
		r = sql_err(x, rc, "reading meta");
	sqlite3_finalize(st);
	return r;
}

static int meta_set(struct index *x, const char *key, const void *blob, size_t len,
		    sqlite3_int64 num)
{
	sqlite3_stmt *st;
	int r = prepare(x, "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	if (blob)
		sqlite3_bind_blob(st, 2, blob, (int)len, SQLITE_STATIC);
	else
		sqlite3_bind_int64(st, 2, num);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		r = sql_err(x, rc, "writing meta");
	sqlite3_finalize(st);
	return r;
}

/* A database with tables but no cairn meta rows is someone else's: never write into it. */
static int check_foreign(struct index *x)
{
	sqlite3_stmt *st;
	int r = prepare(
		x,
		"SELECT (SELECT count(*) FROM sqlite_master),"
		" (SELECT count(*) FROM sqlite_master WHERE name = 'meta' AND type = 'table')",
		&st);
	if (r < 0)
		return -EBADMSG;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_int64(st, 0) > 0 && sqlite3_column_int64(st, 1) == 0)
		r = -EBADMSG;
	else if (rc != SQLITE_ROW)
		r = -EBADMSG;
	sqlite3_finalize(st);
	return r;
}

static int check_identity(struct index *x, const uint8_t repo_id[REPO_ID_SIZE])
{
	uint8_t have[REPO_ID_SIZE];
	bool found;
	int r = meta_get_blob(x, "repo-id", have, sizeof(have), &found);
	if (r < 0)
		return r;
	if (!found) {
		r = meta_set(x, "repo-id", repo_id, REPO_ID_SIZE, 0);
		return r < 0 ? r : meta_set(x, "version", NULL, 0, INDEX_SCHEMA_VERSION);
	}
	if (memcmp(have, repo_id, REPO_ID_SIZE))
		return -EXDEV;
	/* A newer schema is not misread as this one. */
	sqlite3_stmt *st;
	r = prepare(x, "SELECT value FROM meta WHERE key = 'version'", &st);
	if (r < 0)
		return r;
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW || sqlite3_column_int64(st, 0) != INDEX_SCHEMA_VERSION)
		r = -EBADMSG;
	sqlite3_finalize(st);
	return r;
}

int index_open(const char *path, const uint8_t repo_id[REPO_ID_SIZE], struct index **ret)
{
	struct index *x = calloc(1, sizeof(*x));
	int r;

	if (!x)
		return -ENOMEM;
	pthread_mutex_init(&x->lock, NULL);
	x->opening = true;
	int rc = sqlite3_open_v2(path, &x->db,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
				 NULL);
	if (rc != SQLITE_OK) {
		r = x->db ? sql_err(x, rc, path) : -ENOMEM;
		goto fail;
	}
	sqlite3_busy_timeout(x->db, 5000);
	r = check_foreign(x);
	if (r >= 0)
		r = exec(x, schema);
	if (r >= 0)
		r = check_identity(x, repo_id);
	if (r == -EXDEV)
		log_error("index %s belongs to another repository", path);
	else if (r == -EIO)
		r = -EBADMSG; /* the schema did not fit: not a cairn index */
	if (r >= 0)
		r = prepare(x,
			    "SELECT p.name, b.type, b.offset, b.length, b.rawlen FROM blobs b"
			    " JOIN packs p ON p.id = b.pack WHERE b.id = ?",
			    &x->lookup);
	if (r >= 0)
		r = prepare(x, "INSERT OR IGNORE INTO packs(name, size) VALUES(?, ?)",
			    &x->add_pack);
	if (r >= 0)
		r = prepare(x, "SELECT id FROM packs WHERE name = ?", &x->pack_id);
	if (r >= 0)
		r = prepare(x,
			    "INSERT OR IGNORE INTO blobs(id, type, pack, offset, length, rawlen)"
			    " VALUES(?, ?, ?, ?, ?, ?)",
			    &x->add_blob);
	if (r >= 0)
		r = prepare(x, "SELECT 1 FROM packs WHERE name = ?", &x->has_pack);
	if (r >= 0)
		r = prepare(x, "SELECT 1 FROM segments WHERE name = ?", &x->has_seg);
	if (r >= 0)
		r = prepare(x, "INSERT OR IGNORE INTO segments(name) VALUES(?)", &x->add_seg);
	if (r < 0)
		goto fail;
	x->opening = false;
	*ret = x;
	return 0;
fail:
	index_close(x);
	return r;
}

void index_close(struct index *x)
{
	if (!x)
		return;
	sqlite3_finalize(x->lookup);
	sqlite3_finalize(x->add_pack);
	sqlite3_finalize(x->pack_id);
	sqlite3_finalize(x->add_blob);
	sqlite3_finalize(x->has_pack);
	sqlite3_finalize(x->has_seg);
	sqlite3_finalize(x->add_seg);
	sqlite3_close(x->db);
	pthread_mutex_destroy(&x->lock);
	free(x);
}

int index_lookup(struct index *x, const struct blob_id *id, struct index_loc *ret)
{
	int r = -ENOENT;
	pthread_mutex_lock(&x->lock);
	sqlite3_bind_blob(x->lookup, 1, id->b, BLOB_ID_SIZE, SQLITE_STATIC);
	int rc = sqlite3_step(x->lookup);
	if (rc == SQLITE_ROW) {
		if (sqlite3_column_bytes(x->lookup, 0) != PACK_NAME_SIZE) {
			r = -EBADMSG;
		} else {
			memcpy(ret->pack, sqlite3_column_blob(x->lookup, 0), PACK_NAME_SIZE);
			ret->type = (uint8_t)sqlite3_column_int(x->lookup, 1);
			ret->offset = (uint32_t)sqlite3_column_int64(x->lookup, 2);
			ret->length = (uint32_t)sqlite3_column_int64(x->lookup, 3);
			ret->rawlen = (uint32_t)sqlite3_column_int64(x->lookup, 4);
			r = 0;
		}
	} else if (rc != SQLITE_DONE)
		r = sql_err(x, rc, "looking up a blob");
	sqlite3_reset(x->lookup);
	sqlite3_clear_bindings(x->lookup);
	pthread_mutex_unlock(&x->lock);
	return r;
}

static int step_done(struct index *x, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? 0 : sql_err(x, rc, what);
}

static int add_pack_locked(struct index *x, const uint8_t name[PACK_NAME_SIZE], uint64_t size,
			   const struct pack_entry *e, size_t n)
{
	sqlite3_bind_blob(x->add_pack, 1, name, PACK_NAME_SIZE, SQLITE_STATIC);
	sqlite3_bind_int64(x->add_pack, 2, (sqlite3_int64)size);
	int r = step_done(x, x->add_pack, "adding a pack");
	if (r < 0)
		return r;
	sqlite3_bind_blob(x->pack_id, 1, name, PACK_NAME_SIZE, SQLITE_STATIC);
	int rc = sqlite3_step(x->pack_id);
	sqlite3_int64 pid = rc == SQLITE_ROW ? sqlite3_column_int64(x->pack_id, 0) : -1;
	sqlite3_reset(x->pack_id);
	sqlite3_clear_bindings(x->pack_id);
	if (pid < 0)
		return sql_err(x, rc, "finding a pack");
	for (size_t i = 0; i < n; i++) {
		sqlite3_bind_blob(x->add_blob, 1, e[i].id.b, BLOB_ID_SIZE, SQLITE_STATIC);
		sqlite3_bind_int(x->add_blob, 2, e[i].type);
		sqlite3_bind_int64(x->add_blob, 3, pid);
		sqlite3_bind_int64(x->add_blob, 4, e[i].offset);
		sqlite3_bind_int64(x->add_blob, 5, e[i].length);
		sqlite3_bind_int64(x->add_blob, 6, e[i].rawlen);
		r = step_done(x, x->add_blob, "adding a blob");
		if (r < 0)
			return r;
	}
	return 0;
}

int index_add_pack(struct index *x, const uint8_t name[PACK_NAME_SIZE], uint64_t size,
		   const struct pack_entry *e, size_t n)
{
	pthread_mutex_lock(&x->lock);
	int r = exec(x, "BEGIN");
	if (r >= 0) {
		r = add_pack_locked(x, name, size, e, n);
		int k = exec(x, r < 0 ? "ROLLBACK" : "COMMIT");
		if (r >= 0)
			r = k;
	}
	pthread_mutex_unlock(&x->lock);
	return r;
}

int index_remove_pack(struct index *x, const uint8_t name[PACK_NAME_SIZE])
{
	sqlite3_stmt *st = NULL;
	pthread_mutex_lock(&x->lock);
	int r = prepare(x,
			"DELETE FROM blobs WHERE pack = (SELECT id FROM packs WHERE name = ?1);"
			"",
			&st);
	if (r >= 0) {
		sqlite3_bind_blob(st, 1, name, PACK_NAME_SIZE, SQLITE_STATIC);
		r = step_done(x, st, "removing a pack's blobs");
		sqlite3_finalize(st);
		st = NULL;
	}
	if (r >= 0)
		r = prepare(x, "DELETE FROM packs WHERE name = ?1", &st);
	if (r >= 0) {
		sqlite3_bind_blob(st, 1, name, PACK_NAME_SIZE, SQLITE_STATIC);
		r = step_done(x, st, "removing a pack");
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&x->lock);
	return r;
}

static int has_name(struct index *x, sqlite3_stmt *st, const uint8_t *name, size_t len)
{
	pthread_mutex_lock(&x->lock);
	sqlite3_bind_blob(st, 1, name, (int)len, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	int r = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : sql_err(x, rc, "checking a name");
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	pthread_mutex_unlock(&x->lock);
	return r;
}

int index_has_pack(struct index *x, const uint8_t name[PACK_NAME_SIZE])
{
	return has_name(x, x->has_pack, name, PACK_NAME_SIZE);
}

int index_has_segment(struct index *x, const uint8_t name[32])
{
	return has_name(x, x->has_seg, name, 32);
}

int index_add_segment(struct index *x, const uint8_t name[32])
{
	pthread_mutex_lock(&x->lock);
	sqlite3_bind_blob(x->add_seg, 1, name, 32, SQLITE_STATIC);
	int r = step_done(x, x->add_seg, "adding a segment");
	pthread_mutex_unlock(&x->lock);
	return r;
}

int index_foreach_pack(struct index *x, int (*fn)(const uint8_t name[PACK_NAME_SIZE], void *ud),
		       void *ud)
{
	/* Collect first: fn may call back into the index. */
	sqlite3_stmt *st;
	_cleanup_buf_ struct buf names = {0};
	pthread_mutex_lock(&x->lock);
	int r = prepare(x, "SELECT name FROM packs", &st);
	if (r >= 0) {
		int rc;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW && r >= 0)
			if (sqlite3_column_bytes(st, 0) == PACK_NAME_SIZE)
				r = buf_append(&names, sqlite3_column_blob(st, 0), PACK_NAME_SIZE);
		if (r >= 0 && rc != SQLITE_DONE)
			r = sql_err(x, rc, "listing packs");
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&x->lock);
	for (size_t off = 0; r >= 0 && off < names.len; off += PACK_NAME_SIZE)
		r = fn(names.data + off, ud);
	return r;
}

int index_get_u64(struct index *x, const char *key, uint64_t *ret)
{
	sqlite3_stmt *st;
	pthread_mutex_lock(&x->lock);
	int r = prepare(x, "SELECT value FROM meta WHERE key = ?", &st);
	if (r >= 0) {
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
		int rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			*ret = (uint64_t)sqlite3_column_int64(st, 0);
		else if (rc == SQLITE_DONE)
			r = -ENOENT;
		else
			r = sql_err(x, rc, "reading meta");
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&x->lock);
	return r;
}

int index_set_u64(struct index *x, const char *key, uint64_t value)
{
	pthread_mutex_lock(&x->lock);
	int r = meta_set(x, key, NULL, 0, (sqlite3_int64)value);
	pthread_mutex_unlock(&x->lock);
	return r;
}

int index_get_synced(struct index *x, uint64_t *ret)
{
	int r = index_get_u64(x, "synced-commit", ret);
	if (r == -ENOENT) {
		*ret = 0;
		return 0;
	}
	return r;
}

int index_set_synced(struct index *x, uint64_t seq)
{
	return index_set_u64(x, "synced-commit", seq);
}

int index_count(struct index *x, uint64_t *ret_blobs, uint64_t *ret_packs)
{
	sqlite3_stmt *st;
	pthread_mutex_lock(&x->lock);
	int r = prepare(
		x, "SELECT (SELECT count(DISTINCT id) FROM blobs), (SELECT count(*) FROM packs)",
		&st);
	if (r >= 0) {
		int rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*ret_blobs = (uint64_t)sqlite3_column_int64(st, 0);
			*ret_packs = (uint64_t)sqlite3_column_int64(st, 1);
		} else
			r = sql_err(x, rc, "counting");
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&x->lock);
	return r;
}

static const char segment_ad[] = "cairn-index\x01";

int index_segment_encode(const struct codec *c, const struct index_segment_pack *p, size_t n,
			 struct buf *ret)
{
	_cleanup_buf_ struct buf body = {0};
	int r = buf_append_le32(&body, (uint32_t)n);
	for (size_t i = 0; r >= 0 && i < n; i++) {
		r = buf_append(&body, p[i].name, PACK_NAME_SIZE);
		if (r >= 0)
			r = buf_append_le64(&body, p[i].size);
		if (r >= 0)
			r = pack_entries_encode(p[i].entries, p[i].n, &body);
	}
	if (r < 0)
		return r;
	return codec_seal(c, segment_ad, sizeof(segment_ad) - 1, body.data, body.len, ret);
}

void index_segment_free(struct index_segment_pack *p, size_t n)
{
	for (size_t i = 0; p && i < n; i++)
		free(p[i].entries);
	free(p);
}

int index_segment_decode(const struct codec *c, const void *data, size_t len,
			 struct index_segment_pack **ret, size_t *ret_n)
{
	_cleanup_buf_ struct buf body = {0};
	uint32_t n;
	int r = codec_open(c, segment_ad, sizeof(segment_ad) - 1, data, len, &body);
	if (r < 0)
		return r;
	struct reader rd = {body.data, body.len};
	r = reader_le32(&rd, &n);
	if (r < 0)
		return r;
	/* Each pack takes at least 44 bytes: bound n by what is there before allocating. */
	if ((uint64_t)n * (PACK_NAME_SIZE + 12) > rd.left)
		return -EBADMSG;
	struct index_segment_pack *p = calloc(n ? n : 1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	for (uint32_t i = 0; i < n && r >= 0; i++) {
		r = reader_bytes(&rd, p[i].name, PACK_NAME_SIZE);
		if (r >= 0)
			r = reader_le64(&rd, &p[i].size);
		if (r >= 0 && p[i].size > PACK_MAX_SIZE)
			r = -EBADMSG;
		if (r >= 0)
			r = pack_entries_decode(&rd, p[i].size, &p[i].entries, &p[i].n);
	}
	if (r >= 0 && rd.left)
		r = -EBADMSG;
	if (r < 0) {
		index_segment_free(p, n);
		return r;
	}
	*ret = p;
	*ret_n = n;
	return 0;
}
