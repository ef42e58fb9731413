/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What meta.c and meta_data.c share: the connection, its prepared statements and the
 * helpers that step them. Only those two files include it (and, through it, sqlite3.h).
 */
#pragma once

#include <pthread.h>
#include <sqlite3.h>

#include "meta.h"

/* Rows fetched per lock hold when feeding a callback. */
#define META_BATCH 64
#define META_TOUCHED_SLOTS 1024
#define META_NOXATTR_SLOTS 4096

/* A direct-mapped set of inode numbers: slot ino % size holds ino while its gen is the
 * current generation of what it records, so changing that generation empties the set
 * (meta.c: slots_has, slots_put, slots_drop). */
struct meta_ino_slot {
	uint64_t ino, gen;
};

/* Prepared once at open and kept (SQLITE_PREPARE_PERSISTENT). */
enum stmt {
	ST_BEGIN,
	ST_BEGIN_READ,
	ST_COMMIT,
	ST_SAVEPOINT,
	ST_RELEASE,
	ST_ROLLBACK_TO,
	ST_META_GET,
	ST_META_SET,
	ST_INODE_GET,
	ST_INODE_INSERT,
	ST_INODE_UPDATE,
	ST_INODE_EXTEND,
	ST_INODE_SET_SIZE,
	ST_INODE_DELETE,
	ST_XATTR_DELETE_ALL,
	ST_EXTENT_DELETE_ALL,
	ST_DIRTY_DELETE_ALL,
	ST_TARGET_SET,
	ST_TARGET_GET,
	ST_LOOKUP,
	ST_LOOKUP_INODE,
	ST_LINK,
	ST_UNLINK,
	ST_RELINK,
	ST_MOVE,
	ST_HAS_ENTRIES,
	ST_READDIR,
	ST_PARENTS,
	ST_FIRST_PARENT,
	ST_XATTR_GET,
	ST_XATTR_INSERT,
	ST_XATTR_UPDATE,
	ST_XATTR_UPSERT,
	ST_XATTR_REMOVE,
	ST_XATTR_LIST,
	ST_EXTENTS,
	ST_EXTENT_DELETE_RANGE,
	ST_EXTENT_INSERT,
	ST_DIRTY_NEAR,
	ST_DIRTY_DELETE_RANGE,
	ST_DIRTY_INSERT,
	ST_DIRTY_RANGES,
	ST_DIRTY_INODES,
	ST_STAGE_GET,
	ST_STAGE_SET,
	ST_ORPHANS,
	ST_TREE_GET,
	ST_TREE_SET,
	ST_TREE_CLEAR,
	ST_USAGE,
	_ST_MAX
};

struct meta {
	sqlite3 *db;
	pthread_mutex_t lock;
	bool in_txn;  /* a write transaction is open (the batch) */
	bool in_read; /* a read transaction is open (reads since the last sync, no write) */
	/* Next inode number; written to the meta table at sync, inside the batch it covers. */
	uint64_t next_ino, next_ino_stored;
	bool opened;
	/* SQLite rolled a batch back (disk full, I/O error): the caller's state no longer
	 * matches, so no write and no sync succeeds any more. */
	bool lost;
	/* Run just before each commit of a batch (meta_set_precommit). */
	int (*precommit)(void *ud);
	void *precommit_ud;
	sqlite3_stmt *st[_ST_MAX];
	/* Inodes touched (meta_tree_invalidate: a directory; meta_touch_parents: a file) since
	 * tree_gen last changed, direct-mapped: touching one again runs no statement. tree_gen
	 * changes whenever a cleared tree may be set again: meta_tree_set, and any failure (a
	 * savepoint or the whole batch rolled back). */
	uint64_t tree_gen;
	struct meta_ino_slot touched[META_TOUCHED_SLOTS];
	/* Inodes known to have no xattrs, direct-mapped, so that the kernel's xattr requests
	 * after a lookup or a create (an ACL, security.capability before a write, rsync's
	 * listxattr) run no statement. Noted by meta_lookup_inode, an empty list and
	 * meta_inode_create; a write of an inode's xattrs drops its slot, and xattr_gen
	 * changes whenever a write may have been undone (a savepoint or the batch). */
	uint64_t xattr_gen;
	struct meta_ino_slot noxattr[META_NOXATTR_SLOTS];
};

/* Step a statement that returns no rows (or whose rows are ignored) and reset it. */
int meta_run(struct meta *m, sqlite3_stmt *s, const char *what);
/* Step a SELECT: 1 with a row, 0 at the end, <0 on error. Leaves the statement as is. */
int meta_row(struct meta *m, sqlite3_stmt *s, const char *what);
/* Run a bound one-statement write in the batch: enoent when it changed no row. */
int meta_write_one(struct meta *m, sqlite3_stmt *s, int enoent, const char *what);
/* A multi-statement operation: joins the batch and opens a savepoint. */
int meta_op_begin(struct meta *m);
/* Release the savepoint, or undo the operation when r < 0. Returns r or the error. */
int meta_op_end(struct meta *m, int r);

/* A statement for one use: reset and unbound when the variable goes out of scope. */
static inline void stmt_donep(sqlite3_stmt **s)
{
	if (*s) {
		sqlite3_reset(*s);
		sqlite3_clear_bindings(*s);
	}
}
#define _cleanup_stmt_ _cleanup_(stmt_donep)

static inline void unlockp(pthread_mutex_t **l)
{
	if (*l)
		pthread_mutex_unlock(*l);
}

/* Take the lock until the end of the scope. */
#define LOCKED(m)                                                                                  \
	_cleanup_(unlockp) pthread_mutex_t *_lock_ = ({                                            \
		pthread_mutex_lock(&(m)->lock);                                                    \
		&(m)->lock;                                                                        \
	})

static inline void bind_u64(sqlite3_stmt *s, int i, uint64_t v)
{
	sqlite3_bind_int64(s, i, (sqlite3_int64)v);
}

/* Offsets are keys: clamp an end to what SQLite's signed integers hold. */
static inline uint64_t range_end(uint64_t off, uint64_t len)
{
	if (off > INT64_MAX || len > INT64_MAX - off)
		return INT64_MAX;
	return off + len;
}

static inline uint64_t col_u64(sqlite3_stmt *s, int i)
{
	return (uint64_t)sqlite3_column_int64(s, i);
}
