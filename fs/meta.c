/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The working tree's metadata in SQLite (contract and schema in meta.h).
 *
 * One connection, serialised by a mutex (the connection is opened NOMUTEX). Writes are
 * batched: the first statement after a sync (a read too) opens a write transaction (BEGIN
 * IMMEDIATE) and every later write joins it until meta_sync() commits. synchronous=FULL makes each
 * of those commits durable on its own, and batching keeps them rare. Reads on the same connection
 * see the open transaction; other connections see only what was synced.
 *
 * Operations made of several statements run inside a savepoint, so a failure in the middle
 * (a full disk) leaves nothing half done in the batch that a later sync would commit.
 *
 * Callbacks (readdir, parents, extents, dirty ranges) are called without the lock, on rows
 * fetched in small batches, so a callback may call back into meta (readdirplus, the
 * checkpoint walk) and a full reply buffer never costs a whole directory's rows.
 *
 * This file, meta_data.c (extents, dirty ranges) and meta_internal.h are, with
 * store/index.c, the one home of sqlite3.h.
 */
#include "meta_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>

#define META_SCHEMA_VERSION 2
/* Version 1 lacked inodes.stage; opening it adds the column (upgrade_schema). */
#define META_SCHEMA_UPGRADABLE 1

/*
 * Schema, version 2 (documented in meta.h). Offsets, sizes and inode numbers are stored as
 * SQLite's signed 64-bit integers; meta refuses values past INT64_MAX where they are keys.
 * Names are BLOBs, so they compare bytewise and need not be UTF-8.
 */
static const char schema_sql[] =
	"CREATE TABLE meta(key TEXT PRIMARY KEY, value);"
	"CREATE TABLE inodes(ino INTEGER PRIMARY KEY, mode INTEGER NOT NULL,"
	" uid INTEGER NOT NULL, gid INTEGER NOT NULL, nlink INTEGER NOT NULL,"
	" size INTEGER NOT NULL, rdev INTEGER NOT NULL, atime INTEGER NOT NULL,"
	" mtime INTEGER NOT NULL, ctime INTEGER NOT NULL, target BLOB, tree BLOB,"
	" flags INTEGER NOT NULL DEFAULT 0, stage INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE dentries(id INTEGER PRIMARY KEY, parent INTEGER NOT NULL,"
	" name BLOB NOT NULL, ino INTEGER NOT NULL, UNIQUE(parent, name));"
	"CREATE INDEX dentries_parent_id ON dentries(parent, id);"
	"CREATE INDEX dentries_ino ON dentries(ino);"
	/* Orphans are rare: a partial index finds them without scanning every inode. */
	"CREATE INDEX inodes_orphans ON inodes(ino) WHERE nlink = 0;"
	"CREATE TABLE xattrs(ino INTEGER NOT NULL, name BLOB NOT NULL, value BLOB NOT NULL,"
	" PRIMARY KEY(ino, name)) WITHOUT ROWID;"
	"CREATE TABLE extents(ino INTEGER NOT NULL, off INTEGER NOT NULL, len INTEGER NOT NULL,"
	" blob BLOB NOT NULL, PRIMARY KEY(ino, off)) WITHOUT ROWID;"
	"CREATE TABLE dirty(ino INTEGER NOT NULL, off INTEGER NOT NULL, len INTEGER NOT NULL,"
	" PRIMARY KEY(ino, off)) WITHOUT ROWID;";

static const char *const stmt_sql[_ST_MAX] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_BEGIN_READ] = "BEGIN DEFERRED",
	[ST_COMMIT] = "COMMIT",
	[ST_SAVEPOINT] = "SAVEPOINT op",
	[ST_RELEASE] = "RELEASE op",
	[ST_ROLLBACK_TO] = "ROLLBACK TO op",
	[ST_META_GET] = "SELECT value FROM meta WHERE key = ?1",
	[ST_META_SET] = "INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)",
	[ST_INODE_GET] = "SELECT mode, uid, gid, nlink, size, rdev, atime, mtime, ctime"
			 " FROM inodes WHERE ino = ?1",
	[ST_INODE_INSERT] = "INSERT INTO inodes(ino, mode, uid, gid, nlink, size, rdev, atime,"
			    " mtime, ctime) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
	[ST_INODE_UPDATE] = "UPDATE inodes SET mode = ?2, uid = ?3, gid = ?4, nlink = ?5,"
			    " rdev = ?7, atime = ?8, mtime = ?9, ctime = ?10 WHERE ino = ?1",
	[ST_INODE_SET_SIZE] = "UPDATE inodes SET size = ?2 WHERE ino = ?1",
	[ST_INODE_EXTEND] = "UPDATE inodes SET size = max(size, ?2),"
			    " mtime = CASE WHEN ?3 THEN ?3 ELSE mtime END,"
			    " ctime = CASE WHEN ?3 THEN ?3 ELSE ctime END WHERE ino = ?1",
	[ST_INODE_DELETE] = "DELETE FROM inodes WHERE ino = ?1",
	[ST_XATTR_DELETE_ALL] = "DELETE FROM xattrs WHERE ino = ?1",
	[ST_EXTENT_DELETE_ALL] = "DELETE FROM extents WHERE ino = ?1",
	[ST_DIRTY_DELETE_ALL] = "DELETE FROM dirty WHERE ino = ?1",
	[ST_TARGET_SET] = "UPDATE inodes SET target = ?2 WHERE ino = ?1",
	[ST_TARGET_GET] = "SELECT target FROM inodes WHERE ino = ?1",
	[ST_LOOKUP] = "SELECT ino FROM dentries WHERE parent = ?1 AND name = ?2",
	[ST_LOOKUP_INODE] =
		"SELECT i.mode, i.uid, i.gid, i.nlink, i.size, i.rdev, i.atime, i.mtime,"
		" i.ctime, d.ino, EXISTS(SELECT 1 FROM xattrs x WHERE x.ino = d.ino)"
		" FROM dentries d JOIN inodes i ON i.ino = d.ino"
		" WHERE d.parent = ?1 AND d.name = ?2",
	[ST_LINK] = "INSERT INTO dentries(parent, name, ino) VALUES(?1, ?2, ?3)",
	[ST_UNLINK] = "DELETE FROM dentries WHERE parent = ?1 AND name = ?2",
	[ST_RELINK] = "UPDATE dentries SET ino = ?3 WHERE parent = ?1 AND name = ?2",
	[ST_MOVE] = "UPDATE dentries SET parent = ?3, name = ?4 WHERE parent = ?1 AND name = ?2",
	[ST_HAS_ENTRIES] = "SELECT 1 FROM dentries WHERE parent = ?1 LIMIT 1",
	[ST_READDIR] = "SELECT id, name, ino FROM dentries WHERE parent = ?1 AND id > ?2"
		       " ORDER BY id LIMIT ?3",
	[ST_PARENTS] = "SELECT DISTINCT parent FROM dentries WHERE ino = ?1 AND parent > ?2"
		       " ORDER BY parent LIMIT ?3",
	[ST_FIRST_PARENT] = "SELECT parent FROM dentries WHERE ino = ?1 ORDER BY id LIMIT 1",
	[ST_XATTR_GET] = "SELECT value FROM xattrs WHERE ino = ?1 AND name = ?2",
	[ST_XATTR_INSERT] = "INSERT INTO xattrs(ino, name, value) VALUES(?1, ?2, ?3)",
	[ST_XATTR_UPDATE] = "UPDATE xattrs SET value = ?3 WHERE ino = ?1 AND name = ?2",
	[ST_XATTR_UPSERT] = "INSERT OR REPLACE INTO xattrs(ino, name, value) VALUES(?1, ?2, ?3)",
	[ST_XATTR_REMOVE] = "DELETE FROM xattrs WHERE ino = ?1 AND name = ?2",
	[ST_XATTR_LIST] = "SELECT name FROM xattrs WHERE ino = ?1 ORDER BY name",
	/* From the last extent starting at or before ?2 (it may reach into the range). */
	[ST_EXTENTS] = "SELECT off, len, blob FROM extents WHERE ino = ?1 AND off >= coalesce("
		       "(SELECT off FROM extents WHERE ino = ?1 AND off <= ?2"
		       " ORDER BY off DESC LIMIT 1), 0) AND off < ?3 ORDER BY off LIMIT ?4",
	[ST_EXTENT_DELETE_RANGE] = "DELETE FROM extents WHERE ino = ?1 AND off >= ?2 AND off < ?3",
	[ST_EXTENT_INSERT] = "INSERT INTO extents(ino, off, len, blob) VALUES(?1, ?2, ?3, ?4)",
	/* Ranges that may touch [?2, ?3]: the caller filters the first one. */
	[ST_DIRTY_NEAR] = "SELECT off, len FROM dirty WHERE ino = ?1 AND off >= coalesce("
			  "(SELECT off FROM dirty WHERE ino = ?1 AND off <= ?2"
			  " ORDER BY off DESC LIMIT 1), 0) AND off <= ?3 ORDER BY off",
	[ST_DIRTY_DELETE_RANGE] = "DELETE FROM dirty WHERE ino = ?1 AND off >= ?2 AND off <= ?3",
	[ST_DIRTY_INSERT] = "INSERT INTO dirty(ino, off, len) VALUES(?1, ?2, ?3)",
	[ST_DIRTY_RANGES] = "SELECT off, len FROM dirty WHERE ino = ?1 AND off > ?2"
			    " ORDER BY off LIMIT ?3",
	[ST_STAGE_GET] = "SELECT stage FROM inodes WHERE ino = ?1",
	[ST_STAGE_SET] = "UPDATE inodes SET stage = ?2 WHERE ino = ?1",
	[ST_DIRTY_INODES] = "SELECT DISTINCT ino FROM dirty WHERE ino > ?1 ORDER BY ino LIMIT ?2",
	[ST_ORPHANS] = "SELECT ino FROM inodes WHERE nlink = 0 AND ino > ?1 ORDER BY ino LIMIT ?2",
	[ST_TREE_GET] = "SELECT tree FROM inodes WHERE ino = ?1",
	[ST_TREE_SET] = "UPDATE inodes SET tree = ?2 WHERE ino = ?1",
	[ST_TREE_CLEAR] = "UPDATE inodes SET tree = NULL WHERE ino = ?1 AND tree IS NOT NULL",
	[ST_USAGE] = "SELECT count(*), coalesce(sum(CASE WHEN mode & 61440 = 32768"
		     " THEN size END), 0) FROM inodes",
};

/* ---- helpers ---- */

static int64_t realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The batch is gone (rolled back): nothing may join or commit one any more. */
static void batch_lost(struct meta *m)
{
	m->xattr_gen++; /* what was known of xattrs may be undone */
	m->in_txn = false;
	__atomic_store_n(&m->lost, true, __ATOMIC_RELEASE);
	log_error("meta: the write transaction was rolled back: changes since the last sync are "
		  "lost; the working tree takes no more changes until it is mounted again");
}

/* Map an SQLite failure to an errno, logging it unless it is an expected outcome. */
static int sql_err(struct meta *m, int rc, const char *what)
{
	int ext = sqlite3_extended_errcode(m->db);
	int r;

	m->tree_gen++; /* SQLite may have rolled the batch back: forget what was touched */
	m->xattr_gen++;

	if ((rc & 0xff) == SQLITE_CONSTRAINT &&
	    (ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY))
		return -EEXIST;
	switch (rc & 0xff) {
	case SQLITE_FULL:
		r = -ENOSPC;
		break;
	case SQLITE_NOMEM:
		r = -ENOMEM;
		break;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		r = -EBADMSG;
		break;
	default:
		r = -EIO;
		break;
	}
	log_error("meta: %s: %s", what, sqlite3_errmsg(m->db));
	/* Some errors (disk full, I/O, out of memory) roll the whole batch back. */
	if (sqlite3_get_autocommit(m->db))
		m->in_read = false;
	if (m->in_txn && sqlite3_get_autocommit(m->db))
		batch_lost(m);
	return r;
}

static void abandon_locked(struct meta *m, const char *why)
{
	if (m->lost)
		return;
	log_error("meta: %s: the batch cannot be committed", why);
	if (m->in_txn && sqlite3_exec(m->db, "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK)
		log_error("meta: rolling back: %s", sqlite3_errmsg(m->db));
	batch_lost(m);
}

void meta_abandon(struct meta *m, const char *why)
{
	LOCKED(m);
	abandon_locked(m, why);
}

void meta_set_precommit(struct meta *m, int (*fn)(void *ud), void *ud)
{
	LOCKED(m);
	m->precommit = fn;
	m->precommit_ud = ud;
}

/* Step a statement that returns no rows (or whose rows are ignored) and reset it. */
int meta_run(struct meta *m, sqlite3_stmt *s, const char *what)
{
	int rc = sqlite3_step(s);
	int r = rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : sql_err(m, rc, what);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return r;
}

/* Step a SELECT: 1 with a row, 0 at the end, <0 on error. Leaves the statement as is.
 * Reads run in a transaction held until the next sync or write: outside one, each
 * statement would take and drop WAL read locks (two fcntl calls and an fstat a statement,
 * a third of the daemon's system calls in an rsync that changes nothing). */
int meta_row(struct meta *m, sqlite3_stmt *s, const char *what)
{
	if (m->opened && !m->in_txn && !m->in_read) {
		int r = meta_run(m, m->st[ST_BEGIN_READ], "beginning a read transaction");
		if (r < 0)
			return r;
		m->in_read = true;
	}
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		return 1;
	return rc == SQLITE_DONE ? 0 : sql_err(m, rc, what);
}

/* An entry name: 1..META_NAME_MAX bytes, no '/'. */
static int check_name(const char *name, size_t *ret_len)
{
	size_t len = strnlen(name, META_NAME_MAX + 1);

	if (len == 0 || memchr(name, '/', len))
		return -EINVAL;
	if (len > META_NAME_MAX)
		return -ENAMETOOLONG;
	*ret_len = len;
	return 0;
}

/* ---- transactions ---- */

/* Join the batch, opening it on the first statement after a sync. */
static int write_begin(struct meta *m)
{
	if (m->in_txn)
		return 0;
	if (m->lost)
		return -EIO;
	/* A read transaction cannot be trusted to upgrade (another connection may have
	 * written since it began): end it, it changed nothing. */
	if (m->in_read) {
		int r = meta_run(m, m->st[ST_COMMIT], "ending a read transaction");
		if (r < 0)
			return r;
		m->in_read = false;
	}
	int r = meta_run(m, m->st[ST_BEGIN], "beginning a transaction");
	if (r >= 0)
		m->in_txn = true;
	return r;
}

/* A multi-statement operation: joins the batch and opens a savepoint. */
int meta_op_begin(struct meta *m)
{
	int r = write_begin(m);
	return r < 0 ? r : meta_run(m, m->st[ST_SAVEPOINT], "opening a savepoint");
}

/* Release the savepoint, or undo the operation when r < 0. Returns r or the error. */
int meta_op_end(struct meta *m, int r)
{
	if (r >= 0)
		return meta_run(m, m->st[ST_RELEASE], "releasing a savepoint");
	m->tree_gen++; /* what was touched inside may be undone */
	m->xattr_gen++;
	/* A batch SQLite already rolled back took the savepoint with it. */
	if (m->in_txn && !sqlite3_get_autocommit(m->db)) {
		(void)meta_run(m, m->st[ST_ROLLBACK_TO], "rolling back a savepoint");
		(void)meta_run(m, m->st[ST_RELEASE], "releasing a savepoint");
	}
	return r;
}

static int sync_locked(struct meta *m)
{
	if (m->in_read) {
		/* Let other connections' commits (and WAL checkpoints) past our snapshot. */
		int r = meta_run(m, m->st[ST_COMMIT], "ending a read transaction");
		if (r < 0)
			return r;
		m->in_read = false;
	}
	/* The caller holds state (staging files it would now delete, flushes it counts as
	 * stored) that the lost batch was to make durable: a sync must not look done. */
	if (m->lost)
		return -EIO;
	if (!m->in_txn)
		return 0;
	if (m->precommit) {
		int r = m->precommit(m->precommit_ud);
		if (r < 0) {
			abandon_locked(m, "what it names outside meta.db is not durable");
			return r;
		}
	}
	if (m->next_ino != m->next_ino_stored) {
		sqlite3_stmt *s = m->st[ST_META_SET];
		sqlite3_bind_text(s, 1, "next-ino", -1, SQLITE_STATIC);
		bind_u64(s, 2, m->next_ino);
		int r = meta_run(m, s, "recording next-ino");
		if (r < 0)
			return r;
	}
	int r = meta_run(m, m->st[ST_COMMIT], "committing");
	if (r < 0)
		return r;
	m->in_txn = false;
	m->next_ino_stored = m->next_ino;
	return 0;
}

int meta_sync(struct meta *m)
{
	LOCKED(m);
	return sync_locked(m);
}

/* ---- open and close ---- */

static int exec(struct meta *m, const char *sql, const char *what)
{
	int rc = sqlite3_exec(m->db, sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : sql_err(m, rc, what);
}

/* Run a one-off query returning one integer (0 if no row). */
static int query_int(struct meta *m, const char *sql, const char *key, int64_t *ret)
{
	sqlite3_stmt *s;
	int rc = sqlite3_prepare_v2(m->db, sql, -1, &s, NULL);
	if (rc != SQLITE_OK)
		return sql_err(m, rc, sql);
	if (key)
		sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	int r = meta_row(m, s, sql);
	if (r >= 0) {
		*ret = r ? sqlite3_column_int64(s, 0) : 0;
		r = 0;
	}
	sqlite3_finalize(s);
	return r;
}

/* 1 if the table exists, 0 if not. */
static int has_table(struct meta *m, const char *name)
{
	int64_t n;
	int r = query_int(m,
			  "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
			  name, &n);
	return r < 0 ? r : n > 0;
}

static int create_schema(struct meta *m, const uint8_t repo_id[REPO_ID_SIZE])
{
	sqlite3_stmt *s;
	int64_t now = realtime_ns();
	int r = exec(m, schema_sql, "creating the schema");

	if (r < 0)
		return r;
	int rc = sqlite3_prepare_v2(m->db, "INSERT INTO meta(key, value) VALUES(?1, ?2)", -1, &s,
				    NULL);
	if (rc != SQLITE_OK)
		return sql_err(m, rc, "preparing the meta rows");
	sqlite3_bind_text(s, 1, "version", -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 2, META_SCHEMA_VERSION);
	r = meta_run(m, s, "recording the version");
	if (r >= 0) {
		sqlite3_bind_text(s, 1, "repo-id", -1, SQLITE_STATIC);
		sqlite3_bind_blob(s, 2, repo_id, REPO_ID_SIZE, SQLITE_STATIC);
		r = meta_run(m, s, "recording the repository id");
	}
	if (r >= 0) {
		sqlite3_bind_text(s, 1, "next-ino", -1, SQLITE_STATIC);
		sqlite3_bind_int(s, 2, META_ROOT_INO + 1);
		r = meta_run(m, s, "recording next-ino");
	}
	sqlite3_finalize(s);
	if (r < 0)
		return r;

	rc = sqlite3_prepare_v2(m->db,
				"INSERT INTO inodes(ino, mode, uid, gid, nlink, size, rdev, atime,"
				" mtime, ctime) VALUES(?1, ?2, 0, 0, 2, 0, 0, ?3, ?3, ?3)",
				-1, &s, NULL);
	if (rc != SQLITE_OK)
		return sql_err(m, rc, "preparing the root");
	sqlite3_bind_int(s, 1, META_ROOT_INO);
	sqlite3_bind_int(s, 2, S_IFDIR | 0755);
	sqlite3_bind_int64(s, 3, now);
	r = meta_run(m, s, "creating the root");
	sqlite3_finalize(s);
	return r;
}

/*
 * What the file holds: 1 if it has no tables yet, 0 if it is this repository's metadata,
 * 2 if it is, in the older schema upgrade_schema() brings up to date, -EXDEV for another
 * repository's, -EBADMSG for anything else. Reads only, so a foreign
 * database is never written to (not even switched to WAL).
 */
static int check_identity(struct meta *m, const uint8_t repo_id[REPO_ID_SIZE])
{
	int64_t ntables, version;
	int r = query_int(m, "SELECT count(*) FROM sqlite_master", NULL, &ntables);

	if (r < 0)
		return r;
	if (ntables == 0)
		return 1;
	/* Tables but no meta or inodes table: someone else's database (the blob index has a
	 * meta table too). */
	int has_meta = has_table(m, "meta");
	int has_inodes = has_table(m, "inodes");
	if (has_meta < 0 || has_inodes < 0)
		return has_meta < 0 ? has_meta : has_inodes;
	if (!has_meta || !has_inodes)
		return -EBADMSG;

	/* A newer (or unknown) schema is not misread as this one. */
	r = query_int(m, "SELECT value FROM meta WHERE key = ?1", "version", &version);
	if (r < 0)
		return r;
	if (version != META_SCHEMA_VERSION && version != META_SCHEMA_UPGRADABLE)
		return -EBADMSG;

	sqlite3_stmt *s;
	int rc = sqlite3_prepare_v2(m->db, "SELECT value FROM meta WHERE key = 'repo-id'", -1, &s,
				    NULL);
	if (rc != SQLITE_OK)
		return sql_err(m, rc, "reading the repository id");
	r = meta_row(m, s, "reading the repository id");
	if (r == 0 || (r > 0 && (sqlite3_column_type(s, 0) != SQLITE_BLOB ||
				 sqlite3_column_bytes(s, 0) != REPO_ID_SIZE)))
		r = -EBADMSG;
	else if (r > 0)
		r = memcmp(sqlite3_column_blob(s, 0), repo_id, REPO_ID_SIZE) ? -EXDEV : 0;
	sqlite3_finalize(s);
	return r < 0 ? r : version == META_SCHEMA_VERSION ? 0 : 2;
}

/* Version 1 to 2: inodes gain stage (0, the name staging files always had). Under the
 * write lock, and checked again there, in case another opener upgraded it meanwhile. */
static int upgrade_schema(struct meta *m)
{
	int64_t version;
	int r = exec(m, "BEGIN IMMEDIATE", "beginning");
	if (r < 0)
		return r;
	r = query_int(m, "SELECT value FROM meta WHERE key = ?1", "version", &version);
	if (r >= 0 && version == META_SCHEMA_UPGRADABLE)
		r = exec(m,
			 "ALTER TABLE inodes ADD COLUMN stage INTEGER NOT NULL DEFAULT 0;"
			 "UPDATE meta SET value = 2 WHERE key = 'version';",
			 "upgrading the schema to version 2");
	if (r >= 0)
		r = exec(m, "COMMIT", "committing the schema upgrade");
	if (r < 0)
		(void)exec(m, "ROLLBACK", "rolling back");
	return r;
}

/* Create the schema in an empty database, or accept what a concurrent opener created. */
static int create_if_empty(struct meta *m, const uint8_t repo_id[REPO_ID_SIZE])
{
	int64_t ntables;
	/* The write lock first, so two openers of a new file do not both create it. */
	int r = exec(m, "BEGIN IMMEDIATE", "beginning");

	if (r < 0)
		return r;
	r = query_int(m, "SELECT count(*) FROM sqlite_master", NULL, &ntables);
	if (r >= 0 && ntables == 0)
		r = create_schema(m, repo_id);
	if (r >= 0)
		r = exec(m, "COMMIT", "committing the schema");
	if (r < 0) {
		(void)exec(m, "ROLLBACK", "rolling back");
		return r;
	}
	r = check_identity(m, repo_id);
	return r > 0 ? -EIO : r;
}

/* next-ino, raised past the largest inode present in case the two ever disagree. */
static int load_next_ino(struct meta *m)
{
	int64_t stored, max;
	int r = query_int(m, "SELECT value FROM meta WHERE key = ?1", "next-ino", &stored);
	if (r >= 0)
		r = query_int(m, "SELECT max(ino) FROM inodes", NULL, &max);
	if (r < 0)
		return r;
	if (stored < META_ROOT_INO + 1)
		stored = META_ROOT_INO + 1;
	m->next_ino_stored = (uint64_t)stored;
	m->next_ino = (uint64_t)MAX(stored, max + 1);
	return 0;
}

int meta_open(const char *path, const uint8_t repo_id[REPO_ID_SIZE], struct meta **ret)
{
	struct meta *m = calloc(1, sizeof(*m));
	bool empty = false, upgrade = false;
	int r;

	if (!m)
		return -ENOMEM;
	m->tree_gen = 1;  /* the zeroed slots name no touched inode */
	m->xattr_gen = 1; /* nor an inode without xattrs */
	pthread_mutex_init(&m->lock, NULL);
	int rc = sqlite3_open_v2(path, &m->db,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
				 NULL);
	if (rc != SQLITE_OK) {
		r = m->db ? sql_err(m, rc, path) : -ENOMEM;
		goto fail;
	}
	sqlite3_extended_result_codes(m->db, 1);
	/* Another process (a tool, a test) may hold the write lock for a moment. */
	sqlite3_busy_timeout(m->db, 5000);
	/*
	 * WAL lets readers in other processes see the last sync while the batch is open;
	 * synchronous=FULL makes every COMMIT durable (see the top of this file).
	 */
	r = check_identity(m, repo_id);
	if (r >= 0) {
		empty = r == 1;
		upgrade = r == 2;
		r = exec(m, "PRAGMA journal_mode=WAL", "setting WAL mode");
	}
	if (r >= 0)
		r = exec(m, "PRAGMA synchronous=FULL", "setting synchronous");
	if (r >= 0 && empty)
		r = create_if_empty(m, repo_id);
	if (r >= 0 && upgrade)
		r = upgrade_schema(m);
	if (r >= 0)
		r = load_next_ino(m);
	for (int i = 0; r >= 0 && i < _ST_MAX; i++) {
		rc = sqlite3_prepare_v3(m->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
					&m->st[i], NULL);
		if (rc != SQLITE_OK) /* columns missing: not our schema after all */
			r = sql_err(m, rc, stmt_sql[i]) == -ENOMEM ? -ENOMEM : -EBADMSG;
	}
	if (r == -EXDEV)
		log_error("meta: %s belongs to another repository", path);
	else if (r == -EBADMSG)
		log_error("meta: %s is not a cairn metadata database (or a newer version)", path);
	if (r < 0)
		goto fail;
	m->opened = true;
	*ret = m;
	return 0;
fail:
	meta_close(m);
	return r;
}

int meta_close(struct meta *m)
{
	int r = 0;
	if (!m)
		return 0;
	if (m->opened) {
		pthread_mutex_lock(&m->lock);
		r = sync_locked(m);
		pthread_mutex_unlock(&m->lock);
	}
	for (int i = 0; i < _ST_MAX; i++)
		sqlite3_finalize(m->st[i]);
	/* Closing with a failed batch still open rolls it back, as a crash would. */
	if (sqlite3_close(m->db) != SQLITE_OK && r >= 0)
		r = -EIO;
	pthread_mutex_destroy(&m->lock);
	free(m);
	return r;
}

void meta_discard(struct meta *m)
{
	if (m)
		m->opened = false; /* so meta_close does not commit */
	(void)meta_close(m);
}

/* ---- key/value settings ---- */

/* Keys meta maintains itself. */
static bool reserved_key(const char *key)
{
	return !strcmp(key, "version") || !strcmp(key, "repo-id") || !strcmp(key, "next-ino");
}

int meta_get_u64(struct meta *m, const char *key, uint64_t *ret)
{
	LOCKED(m);
	/* The batch's value lives in memory until the next sync. */
	if (!strcmp(key, "next-ino")) {
		*ret = m->next_ino;
		return 0;
	}
	_cleanup_stmt_ sqlite3_stmt *s = m->st[ST_META_GET];
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	int r = meta_row(m, s, "reading a setting");
	if (r <= 0)
		return r < 0 ? r : -ENOENT;
	if (sqlite3_column_type(s, 0) != SQLITE_INTEGER)
		return -EINVAL;
	*ret = col_u64(s, 0);
	return 0;
}

int meta_set_u64(struct meta *m, const char *key, uint64_t value)
{
	if (reserved_key(key))
		return -EINVAL;
	LOCKED(m);
	int r = write_begin(m);
	if (r < 0)
		return r;
	sqlite3_stmt *s = m->st[ST_META_SET];
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	bind_u64(s, 2, value);
	return meta_run(m, s, "writing a setting");
}

/* ---- inodes ---- */

static void bind_inode(sqlite3_stmt *s, uint64_t ino, const struct meta_inode *i)
{
	bind_u64(s, 1, ino);
	sqlite3_bind_int64(s, 2, i->mode);
	sqlite3_bind_int64(s, 3, i->uid);
	sqlite3_bind_int64(s, 4, i->gid);
	sqlite3_bind_int64(s, 5, i->nlink);
	bind_u64(s, 6, i->size);
	bind_u64(s, 7, i->rdev);
	sqlite3_bind_int64(s, 8, i->atime);
	sqlite3_bind_int64(s, 9, i->mtime);
	sqlite3_bind_int64(s, 10, i->ctime);
}

/* The columns of ST_INODE_GET, first in ST_LOOKUP_INODE too. */
static void inode_from_row(sqlite3_stmt *s, uint64_t ino, struct meta_inode *ret)
{
	*ret = (struct meta_inode){
		.ino = ino,
		.mode = (uint32_t)sqlite3_column_int64(s, 0),
		.uid = (uint32_t)sqlite3_column_int64(s, 1),
		.gid = (uint32_t)sqlite3_column_int64(s, 2),
		.nlink = (uint32_t)sqlite3_column_int64(s, 3),
		.size = col_u64(s, 4),
		.rdev = col_u64(s, 5),
		.atime = sqlite3_column_int64(s, 6),
		.mtime = sqlite3_column_int64(s, 7),
		.ctime = sqlite3_column_int64(s, 8),
	};
}

/* ---- sets of inodes (struct meta_ino_slot) ---- */

static bool slots_has(const struct meta_ino_slot *v, size_t n, uint64_t ino, uint64_t gen)
{
	return v[ino % n].ino == ino && v[ino % n].gen == gen;
}

static void slots_put(struct meta_ino_slot *v, size_t n, uint64_t ino, uint64_t gen)
{
	v[ino % n] = (struct meta_ino_slot){.ino = ino, .gen = gen};
}

static void slots_drop(struct meta_ino_slot *v, size_t n, uint64_t ino)
{
	if (v[ino % n].ino == ino)
		v[ino % n].ino = 0;
}

/* Inodes known to have no xattrs (struct meta's noxattr). */
static bool noxattr_known(struct meta *m, uint64_t ino)
{
	return slots_has(m->noxattr, META_NOXATTR_SLOTS, ino, m->xattr_gen);
}

static void noxattr_note(struct meta *m, uint64_t ino)
{
	slots_put(m->noxattr, META_NOXATTR_SLOTS, ino, m->xattr_gen);
}

int meta_inode_get(struct meta *m, uint64_t ino, struct meta_inode *ret)
{
	LOCKED(m);
	_cleanup_stmt_ sqlite3_stmt *s = m->st[ST_INODE_GET];
	bind_u64(s, 1, ino);
	int r = meta_row(m, s, "reading an inode");
	if (r <= 0)
		return r < 0 ? r : -ENOENT;
	inode_from_row(s, ino, ret);
	return 0;
}

static int inode_insert_locked(struct meta *m, uint64_t ino, const struct meta_inode *i)
{
	int r = write_begin(m);
	if (r < 0)
		return r;
	sqlite3_stmt *s = m->st[ST_INODE_INSERT];
	slots_drop(m->touched, META_TOUCHED_SLOTS, ino); /* a number used before: untouched */
	bind_inode(s, ino, i);
	r = meta_run(m, s, "inserting an inode");
	if (r >= 0 && ino >= m->next_ino)
		m->next_ino = ino + 1;
	return r;
}

int meta_inode_create(struct meta *m, const struct meta_inode *i, uint64_t *ret_ino)
{
	LOCKED(m);
	if (m->next_ino > INT64_MAX)
		return -ENOSPC;
	uint64_t ino = m->next_ino;
	int r = inode_insert_locked(m, ino, i);
	if (r >= 0)
		noxattr_note(m, ino); /* a number above every inode's: no xattr rows */
	if (r < 0)
		return r;
	*ret_ino = ino;
	return 0;
}

int meta_inode_insert(struct meta *m, const struct meta_inode *i)
{
	if (i->ino == 0 || i->ino > INT64_MAX - 1)
		return -EINVAL;
	LOCKED(m);
	return inode_insert_locked(m, i->ino, i);
}

/* Run a write statement on one row; -ENOENT (or enoent) when it touched none. */
int meta_write_one(struct meta *m, sqlite3_stmt *s, int enoent, const char *what)
{
	int r = write_begin(m);
	if (r < 0) {
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
		return r;
	}
	r = meta_run(m, s, what);
	if (r >= 0 && sqlite3_changes(m->db) == 0)
		r = enoent;
	return r;
}

int meta_inode_update(struct meta *m, const struct meta_inode *i)
{
	LOCKED(m);
	sqlite3_stmt *s = m->st[ST_INODE_UPDATE];
	bind_inode(s, i->ino, i);
	return meta_write_one(m, s, -ENOENT, "updating an inode");
}

int meta_inode_set_size(struct meta *m, uint64_t ino, uint64_t size)
{
	LOCKED(m);
	sqlite3_stmt *s = m->st[ST_INODE_SET_SIZE];
	bind_u64(s, 1, ino);
	bind_u64(s, 2, size);
	return meta_write_one(m, s, -ENOENT, "setting an inode's size");
}

int meta_inode_extend(struct meta *m, uint64_t ino, uint64_t end, int64_t mtime)
{
	LOCKED(m);
	sqlite3_stmt *s = m->st[ST_INODE_EXTEND];
	bind_u64(s, 1, ino);
	bind_u64(s, 2, end);
	sqlite3_bind_int64(s, 3, mtime);
	return meta_write_one(m, s, -ENOENT, "extending an inode");
}

static int inode_delete_locked(struct meta *m, uint64_t ino)
{
	static const enum stmt deps[] = {ST_XATTR_DELETE_ALL, ST_EXTENT_DELETE_ALL,
					 ST_DIRTY_DELETE_ALL};
	sqlite3_stmt *s = m->st[ST_INODE_DELETE];
	bind_u64(s, 1, ino);
	int r = meta_run(m, s, "deleting an inode");
	if (r >= 0 && sqlite3_changes(m->db) == 0)
		return -ENOENT;
	for (size_t k = 0; r >= 0 && k < ELEMENTSOF(deps); k++) {
		s = m->st[deps[k]];
		bind_u64(s, 1, ino);
		r = meta_run(m, s, "deleting an inode's data");
	}
	return r;
}

int meta_inode_delete(struct meta *m, uint64_t ino)
{
	LOCKED(m);
	int r = meta_op_begin(m);
	if (r < 0)
		return r;
	return meta_op_end(m, inode_delete_locked(m, ino));
}

int meta_symlink_set(struct meta *m, uint64_t ino, const char *target)
{
	LOCKED(m);
	sqlite3_stmt *s = m->st[ST_TARGET_SET];
	bind_u64(s, 1, ino);
	sqlite3_bind_blob(s, 2, target, (int)strlen(target), SQLITE_STATIC);
	return meta_write_one(m, s, -ENOENT, "setting a symlink target");
}

int meta_symlink_get(struct meta *m, uint64_t ino, char **ret)
{
	LOCKED(m);
	_cleanup_stmt_ sqlite3_stmt *s = m->st[ST_TARGET_GET];
	bind_u64(s, 1, ino);
	int r = meta_row(m, s, "reading a symlink target");
	if (r <= 0)
		return r < 0 ? r : -ENOENT;
	if (sqlite3_column_type(s, 0) == SQLITE_NULL)
		return -EINVAL;
	const void *p = sqlite3_column_blob(s, 0);
	size_t len = (size_t)sqlite3_column_bytes(s, 0);
	char *t = malloc(len + 1);
	if (!t)
		return -ENOMEM;
	if (len)
		memcpy(t, p, len);
	t[len] = 0;
	*ret = t;
	return 0;
}

/* ---- directory entries ---- */

/* Bind (parent, name) to a lookup statement and step it: 0 at its row, -ENOENT without
 * one. The caller holds the lock and resets s. */
static int lookup_row(struct meta *m, sqlite3_stmt *s, uint64_t parent, const char *name)
{
	size_t len;
	int r = check_name(name, &len);
	if (r < 0)
		return r;
	bind_u64(s, 1, parent);
	sqlite3_bind_blob(s, 2, name, (int)len, SQLITE_STATIC);
	r = meta_row(m, s, "looking up a name");
	return r < 0 ? r : r == 0 ? -ENOENT : 0;
}

int meta_lookup(struct meta *m, uint64_t parent, const char *name, uint64_t *ret_ino)
{
	LOCKED(m);
	_cleanup_stmt_ sqlite3_stmt *s = m->st[ST_LOOKUP];
	int r = lookup_row(m, s, parent, name);
	if (r >= 0)
		*ret_ino = col_u64(s, 0);
	return r;
}

int meta_lookup_inode(struct meta *m, uint64_t parent, const char *name, struct meta_inode *ret)
{
	LOCKED(m);
	_cleanup_stmt_ sqlite3_stmt *s = m->st[ST_LOOKUP_INODE];
	int r = lookup_row(m, s, parent, name);
	if (r < 0)
		return r;
	inode_from_row(s, col_u64(s, 9), ret);
	if (sqlite3_column_int64(s, 10) == 0)
		noxattr_note(m, ret->ino);
	return 0;
}

/* The three entry writes share their shape: (parent, name[, ino]). */
static int entry_write(struct meta *m, enum stmt st, uint64_t parent, const char *name,
		       uint64_t ino, const char *what)
{
	size_t len;
	int r = check_name(name, &len);
	if (r < 0)
		return r;
	LOCKED(m);
	sqlite3_stmt *s = m->st[st];
	bind_u64(s, 1, parent);
	sqlite3_bind_blob(s, 2, name, (int)len, SQLITE_STATIC);
	if (st != ST_UNLINK)
		bind_u64(s, 3, ino);
	return meta_write_one(m, s, st == ST_LINK ? 0 : -ENOENT, what);
}

int meta_link(struct meta *m, uint64_t parent, const char *name, uint64_t ino)
{
	return entry_write(m, ST_LINK, parent, name, ino, "adding an entry");
}

int meta_unlink(struct meta *m, uint64_t parent, const char *name)
{
	return entry_write(m, ST_UNLINK, parent, name, 0, "removing an entry");
}

int meta_relink(struct meta *m, uint64_t parent, const char *name, uint64_t ino)
{
	return entry_write(m, ST_RELINK, parent, name, ino, "relinking an entry");
}

int meta_move(struct meta *m, uint64_t parent, const char *name, uint64_t new_parent,
	      const char *new_name)
{
	size_t len, new_len;
	int r = check_name(name, &len);
	if (r >= 0)
		r = check_name(new_name, &new_len);
	if (r < 0)
		return r;
	LOCKED(m);
	/* One UPDATE: the entry keeps its id (readdir cookie); UNIQUE gives -EEXIST. */
	sqlite3_stmt *s = m->st[ST_MOVE];
	bind_u64(s, 1, parent);
	sqlite3_bind_blob(s, 2, name, (int)len, SQLITE_STATIC);
	bind_u64(s, 3, new_parent);
	sqlite3_bind_blob(s, 4, new_name, (int)new_len, SQLITE_STATIC);
	return meta_write_one(m, s, -ENOENT, "moving an entry");
}

int meta_dir_has_entries(struct meta *m, uint64_t dir)
{
	LOCKED(m);
	_cleanup_stmt_ sqlite3_stmt *s = m->st[ST_HAS_ENTRIES];
	bind_u64(s, 1, dir);
	return meta_row(m, s, "checking a directory");
}

struct dent {
	uint64_t id, ino;
	char name[META_NAME_MAX + 1];
};

static int readdir_batch(struct meta *m, uint64_t dir, uint64_t after, struct dent *d,
			 size_t *ret_n)
{
	LOCKED(m);
	_cleanup_stmt_ sqlite3_stmt *s = m->st[ST_READDIR];
	size_t n = 0;
	int r;

	bind_u64(s, 1, dir);
	bind_u64(s, 2, after);
	sqlite3_bind_int(s, 3, META_BATCH);
	while ((r = meta_row(m, s, "reading a directory")) > 0) {
		size_t len = (size_t)sqlite3_column_bytes(s, 1);
		if (len == 0 || len > META_NAME_MAX)
			return -EBADMSG;
		d[n].id = col_u64(s, 0);
		memcpy(d[n].name, sqlite3_column_blob(s, 1), len);
		d[n].name[len] = 0;
		d[n].ino = col_u64(s, 2);
		n++;
	}
	if (r < 0)
		return r;
	*ret_n = n;
	return 0;
}

int meta_readdir(struct meta *m, uint64_t dir, uint64_t cookie,
		 int (*fn)(uint64_t cookie, const char *name, uint64_t ino, void *ud), void *ud)
{
	_cleanup_free_ struct dent *d = malloc(META_BATCH * sizeof(*d));
	if (!d)
		return -ENOMEM;
	if (cookie > INT64_MAX)
		return 0;
	for (;;) {
		size_t n;
		int r = readdir_batch(m, dir, cookie, d, &n);
		if (r < 0)
			return r;
		for (size_t i = 0; i < n; i++) {
			r = fn(d[i].id, d[i].name, d[i].ino, ud);
			if (r)
				return r < 0 ? r : 0;
		}
		if (n < META_BATCH)
			return 0;
		cookie = d[n - 1].id;
	}
}

/* Up to META_BATCH integers from ST_PARENTS (of a), ST_DIRTY_INODES or ST_ORPHANS, after
 * `after`. */
static int u64_batch(struct meta *m, enum stmt st, uint64_t a, uint64_t after, uint64_t *out,
		     size_t *ret_n, const char *what)
{
	LOCKED(m);
	_cleanup_stmt_ sqlite3_stmt *s = m->st[st];
	size_t n = 0;
	int r, i = 1;

	if (st == ST_PARENTS)
		bind_u64(s, i++, a);
	bind_u64(s, i++, after);
	sqlite3_bind_int(s, i, META_BATCH);
	while ((r = meta_row(m, s, what)) > 0)
		out[n++] = col_u64(s, 0);
	if (r < 0)
		return r;
	*ret_n = n;
	return 0;
}

/* Walk the integers a batched statement yields, calling fn without the lock held. */
static int u64_walk(struct meta *m, enum stmt st, uint64_t a, int (*fn)(uint64_t v, void *ud),
		    void *ud, const char *what)
{
	uint64_t v[META_BATCH], after = 0;

	for (;;) {
		size_t n;
		int r = u64_batch(m, st, a, after, v, &n, what);
		if (r < 0)
			return r;
		for (size_t i = 0; i < n; i++) {
			r = fn(v[i], ud);
			if (r)
				return r < 0 ? r : 0;
		}
		if (n < META_BATCH)
			return 0;
		after = v[n - 1];
	}
}

int meta_parents(struct meta *m, uint64_t ino, int (*fn)(uint64_t parent, void *ud), void *ud)
{
	return u64_walk(m, ST_PARENTS, ino, fn, ud, "listing parents");
}

/* ---- extended attributes ---- */

int meta_xattr_get(struct meta *m, uint64_t ino, const char *name, void **ret, size_t *ret_len)
{
	LOCKED(m);
	if (noxattr_known(m, ino))
		return -ENODATA;
	_cleanup_stmt_ sqlite3_stmt *s = m->st[ST_XATTR_GET];
	bind_u64(s, 1, ino);
	sqlite3_bind_blob(s, 2, name, (int)strlen(name), SQLITE_STATIC);
	int r = meta_row(m, s, "reading an xattr");
	if (r <= 0)
		return r < 0 ? r : -ENODATA;
	size_t len = (size_t)sqlite3_column_bytes(s, 0);
	void *v = malloc(len ? len : 1);
	if (!v)
		return -ENOMEM;
	if (len)
		memcpy(v, sqlite3_column_blob(s, 0), len);
	*ret = v;
	*ret_len = len;
	return 0;
}

int meta_xattr_set(struct meta *m, uint64_t ino, const char *name, const void *value, size_t len,
		   int flags)
{
	enum stmt st;
	int enoent = 0;

	if (len > INT32_MAX || (flags & ~(XATTR_CREATE | XATTR_REPLACE)) ||
	    flags == (XATTR_CREATE | XATTR_REPLACE))
		return -EINVAL;
	/* One statement each: CREATE fails on the primary key, REPLACE on no row. */
	if (flags & XATTR_CREATE)
		st = ST_XATTR_INSERT;
	else if (flags & XATTR_REPLACE)
		st = ST_XATTR_UPDATE, enoent = -ENODATA;
	else
		st = ST_XATTR_UPSERT;
	LOCKED(m);
	slots_drop(m->noxattr, META_NOXATTR_SLOTS, ino);
	sqlite3_stmt *s = m->st[st];
	bind_u64(s, 1, ino);
	sqlite3_bind_blob(s, 2, name, (int)strlen(name), SQLITE_STATIC);
	/* A zero-length blob, not NULL, for an empty value (value may be NULL then). */
	sqlite3_bind_zeroblob(s, 3, 0);
	if (len)
		sqlite3_bind_blob(s, 3, value, (int)len, SQLITE_STATIC);
	return meta_write_one(m, s, enoent, "setting an xattr");
}

int meta_xattr_remove(struct meta *m, uint64_t ino, const char *name)
{
	LOCKED(m);
	if (noxattr_known(m, ino))
		return -ENODATA;
	sqlite3_stmt *s = m->st[ST_XATTR_REMOVE];
	bind_u64(s, 1, ino);
	sqlite3_bind_blob(s, 2, name, (int)strlen(name), SQLITE_STATIC);
	return meta_write_one(m, s, -ENODATA, "removing an xattr");
}

int meta_xattr_list(struct meta *m, uint64_t ino, struct buf *ret)
{
	LOCKED(m);
	if (noxattr_known(m, ino))
		return 0;
	_cleanup_stmt_ sqlite3_stmt *s = m->st[ST_XATTR_LIST];
	size_t old_len = ret->len;
	int r;

	bind_u64(s, 1, ino);
	while ((r = meta_row(m, s, "listing xattrs")) > 0) {
		r = buf_append(ret, sqlite3_column_blob(s, 0), (size_t)sqlite3_column_bytes(s, 0));
		if (r >= 0)
			r = buf_append(ret, "", 1);
		if (r < 0)
			break;
	}
	if (r < 0)
		ret->len = old_len;
	else if (ret->len == old_len)
		noxattr_note(m, ino);
	return r < 0 ? r : 0;
}

int meta_dirty_inodes(struct meta *m, int (*fn)(uint64_t ino, void *ud), void *ud)
{
	return u64_walk(m, ST_DIRTY_INODES, 0, fn, ud, "listing dirty inodes");
}

int meta_orphans(struct meta *m, int (*fn)(uint64_t ino, void *ud), void *ud)
{
	return u64_walk(m, ST_ORPHANS, 0, fn, ud, "listing orphan inodes");
}

/* ---- checkpoint bookkeeping ---- */

int meta_tree_get(struct meta *m, uint64_t dir, struct blob_id *ret)
{
	LOCKED(m);
	_cleanup_stmt_ sqlite3_stmt *s = m->st[ST_TREE_GET];
	bind_u64(s, 1, dir);
	int r = meta_row(m, s, "reading a tree id");
	if (r <= 0)
		return r < 0 ? r : -ENOENT;
	if (sqlite3_column_type(s, 0) == SQLITE_NULL)
		return -ENOENT;
	if (sqlite3_column_bytes(s, 0) != BLOB_ID_SIZE)
		return -EBADMSG;
	memcpy(ret->b, sqlite3_column_blob(s, 0), BLOB_ID_SIZE);
	return 0;
}

int meta_tree_set(struct meta *m, uint64_t dir, const struct blob_id *id)
{
	LOCKED(m);
	m->tree_gen++;
	sqlite3_stmt *s = m->st[ST_TREE_SET];
	bind_u64(s, 1, dir);
	sqlite3_bind_blob(s, 2, id->b, BLOB_ID_SIZE, SQLITE_STATIC);
	return meta_write_one(m, s, -ENOENT, "setting a tree id");
}

/* Clear ino's tree id: 1 if it was set, 0 if it was already clear (or no such inode). */
static int tree_clear(struct meta *m, uint64_t ino)
{
	sqlite3_stmt *s = m->st[ST_TREE_CLEAR];
	bind_u64(s, 1, ino);
	int r = meta_run(m, s, "clearing a tree id");
	return r < 0 ? r : sqlite3_changes(m->db) > 0;
}

static int tree_invalidate_locked(struct meta *m, uint64_t dir)
{
	/*
	 * dir itself is cleared whatever its state (a dirty directory may just have been moved
	 * under a clean one); above it, a dirty ancestor means everything above is dirty too.
	 */
	int r = tree_clear(m, dir);
	for (uint64_t cur = dir; r >= 0 && cur != META_ROOT_INO;) {
		_cleanup_stmt_ sqlite3_stmt *s = m->st[ST_FIRST_PARENT];
		bind_u64(s, 1, cur);
		r = meta_row(m, s, "finding a parent");
		if (r <= 0) /* the root, or a detached directory */
			break;
		cur = col_u64(s, 0);
		sqlite3_reset(s);
		r = tree_clear(m, cur);
		if (r == 0)
			break;
	}
	return r < 0 ? r : 0;
}

static bool touched(struct meta *m, uint64_t ino)
{
	return slots_has(m->touched, META_TOUCHED_SLOTS, ino, m->tree_gen);
}

/* ino was touched at tree generation gen, and nothing failed or was set since. */
static void touched_note(struct meta *m, uint64_t ino, uint64_t gen)
{
	if (gen == m->tree_gen)
		slots_put(m->touched, META_TOUCHED_SLOTS, ino, gen);
}

int meta_tree_invalidate(struct meta *m, uint64_t dir)
{
	LOCKED(m);
	if (touched(m, dir))
		return 0;
	uint64_t gen = m->tree_gen;
	int r = meta_op_begin(m);
	if (r >= 0)
		r = meta_op_end(m, tree_invalidate_locked(m, dir));
	if (r >= 0)
		touched_note(m, dir, gen);
	return r;
}

static int invalidate_cb(uint64_t parent, void *ud)
{
	return meta_tree_invalidate(ud, parent);
}

int meta_touch_parents(struct meta *m, uint64_t ino)
{
	pthread_mutex_lock(&m->lock);
	bool done = touched(m, ino);
	uint64_t gen = m->tree_gen;
	pthread_mutex_unlock(&m->lock);
	if (done)
		return 0;
	int r = meta_parents(m, ino, invalidate_cb, m);
	if (r >= 0) {
		pthread_mutex_lock(&m->lock);
		touched_note(m, ino, gen);
		pthread_mutex_unlock(&m->lock);
	}
	return r;
}

int meta_usage(struct meta *m, uint64_t *ret_inodes, uint64_t *ret_bytes)
{
	LOCKED(m);
	_cleanup_stmt_ sqlite3_stmt *s = m->st[ST_USAGE];
	int r = meta_row(m, s, "computing usage");
	if (r <= 0)
		return r < 0 ? r : -EIO;
	*ret_inodes = col_u64(s, 0);
	*ret_bytes = col_u64(s, 1);
	return 0;
}

bool meta_lost(struct meta *m)
{
	return __atomic_load_n(&m->lost, __ATOMIC_ACQUIRE);
}

int meta_test_limit_growth(struct meta *m, unsigned pages)
{
	char sql[64];
	int64_t now;
	LOCKED(m);
	int r = query_int(m, "PRAGMA page_count", NULL, &now);
	if (r < 0)
		return r;
	snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %" PRId64, now + pages);
	return query_int(m, sql, NULL, &now);
}
