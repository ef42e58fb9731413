/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * File data in meta: the extents (which chunk holds which bytes of a file) and the dirty
 * ranges (which bytes are staged locally instead). Contract in meta.h; the connection and
 * its batching in meta.c.
 */
#include "meta_internal.h"

/* ---- extents ---- */

static int extents_batch(struct meta *m, uint64_t ino, uint64_t start, uint64_t end,
			 struct meta_extent *e, size_t *ret_n, bool *ret_more)
{
	LOCKED(m);
	_cleanup_stmt_ sqlite3_stmt *s = m->st[ST_EXTENTS];
	size_t n = 0, rows = 0;
	int r;

	bind_u64(s, 1, ino);
	bind_u64(s, 2, start);
	bind_u64(s, 3, end);
	sqlite3_bind_int(s, 4, META_BATCH);
	while ((r = meta_row(m, s, "reading extents")) > 0) {
		uint64_t off = col_u64(s, 0), len = col_u64(s, 1);
		rows++;
		/* Only the first row can end before start (it starts at or before it). */
		if (off + len <= start)
			continue;
		if (sqlite3_column_bytes(s, 2) != BLOB_ID_SIZE || len > UINT32_MAX)
			return -EBADMSG;
		e[n].off = off;
		e[n].len = (uint32_t)len;
		memcpy(e[n].blob.b, sqlite3_column_blob(s, 2), BLOB_ID_SIZE);
		n++;
	}
	if (r < 0)
		return r;
	*ret_n = n;
	*ret_more = rows == META_BATCH;
	return 0;
}

int meta_extents(struct meta *m, uint64_t ino, uint64_t off, uint64_t len,
		 int (*fn)(const struct meta_extent *e, void *ud), void *ud)
{
	uint64_t start = MIN(off, (uint64_t)INT64_MAX), end = range_end(off, len);
	struct meta_extent e[META_BATCH];

	while (start < end) {
		size_t n;
		bool more;
		int r = extents_batch(m, ino, start, end, e, &n, &more);
		if (r < 0)
			return r;
		for (size_t i = 0; i < n; i++) {
			r = fn(&e[i], ud);
			if (r)
				return r < 0 ? r : 0;
		}
		if (!more || n == 0)
			return 0;
		/* Extents do not overlap: the next one starts at or after this end. */
		start = e[n - 1].off + e[n - 1].len;
	}
	return 0;
}

static int extents_replace_locked(struct meta *m, uint64_t ino, uint64_t start, uint64_t end,
				  const struct meta_extent *e, size_t n)
{
	sqlite3_stmt *s = m->st[ST_EXTENT_DELETE_RANGE];
	bind_u64(s, 1, ino);
	bind_u64(s, 2, start);
	bind_u64(s, 3, end);
	int r = meta_run(m, s, "deleting extents");
	s = m->st[ST_EXTENT_INSERT];
	for (size_t i = 0; r >= 0 && i < n; i++) {
		bind_u64(s, 1, ino);
		bind_u64(s, 2, e[i].off);
		sqlite3_bind_int64(s, 3, e[i].len);
		sqlite3_bind_blob(s, 4, e[i].blob.b, BLOB_ID_SIZE, SQLITE_STATIC);
		r = meta_run(m, s, "inserting an extent");
	}
	return r;
}

int meta_extents_replace(struct meta *m, uint64_t ino, uint64_t off, uint64_t len,
			 const struct meta_extent *e, size_t n)
{
	uint64_t end = range_end(off, len), prev = off;

	if (off > INT64_MAX)
		return -EINVAL;
	/* Checked here so the table keeps "whole chunks, no overlap". */
	for (size_t i = 0; i < n; i++) {
		if (e[i].len == 0 || e[i].off < prev || e[i].off > end || e[i].len > end - e[i].off)
			return -EINVAL;
		prev = e[i].off + e[i].len;
	}
	LOCKED(m);
	int r = meta_op_begin(m);
	if (r < 0)
		return r;
	return meta_op_end(m, extents_replace_locked(m, ino, off, end, e, n));
}

/* ---- dirty ranges ---- */

static int dirty_write(struct meta *m, enum stmt st, uint64_t ino, uint64_t a, uint64_t b,
		       const char *what)
{
	sqlite3_stmt *s = m->st[st];
	bind_u64(s, 1, ino);
	bind_u64(s, 2, a);
	bind_u64(s, 3, b);
	return meta_run(m, s, what);
}

/*
 * The ranges of ino touching [start, end]: the first one that reaches start (or later) and
 * the last one. Returns 1 if any, 0 if none. touching: adjacent counts (for add), else only
 * overlap counts (for clear).
 */
static int dirty_near(struct meta *m, uint64_t ino, uint64_t start, uint64_t end, bool adjacent,
		      uint64_t ret_first[2], uint64_t ret_last[2])
{
	_cleanup_stmt_ sqlite3_stmt *s = m->st[ST_DIRTY_NEAR];
	uint64_t first[2] = {0, 0}, last[2] = {0, 0};
	bool any = false;
	int r;

	bind_u64(s, 1, ino);
	bind_u64(s, 2, start);
	bind_u64(s, 3, end);
	while ((r = meta_row(m, s, "reading dirty ranges")) > 0) {
		uint64_t off = col_u64(s, 0), e = off + col_u64(s, 1);
		if (adjacent ? e < start : e <= start)
			continue;
		if (!adjacent && off >= end)
			continue;
		if (!any)
			first[0] = off, first[1] = e;
		last[0] = off, last[1] = e;
		any = true;
	}
	if (r < 0)
		return r;
	memcpy(ret_first, first, sizeof(first));
	memcpy(ret_last, last, sizeof(last));
	return any;
}

static int dirty_add_locked(struct meta *m, uint64_t ino, uint64_t start, uint64_t end)
{
	uint64_t first[2], last[2];
	int r = dirty_near(m, ino, start, end, true, first, last);
	if (r < 0)
		return r;
	if (r > 0) {
		/* Already covered (rewriting staged bytes): nothing to write. */
		if (first[0] <= start && first[1] >= end)
			return 0;
		start = MIN(start, first[0]);
		r = dirty_write(m, ST_DIRTY_DELETE_RANGE, ino, start, end, "merging dirty ranges");
		end = MAX(end, last[1]);
	}
	if (r >= 0)
		r = dirty_write(m, ST_DIRTY_INSERT, ino, start, end - start,
				"adding a dirty range");
	return r;
}

int meta_dirty_add(struct meta *m, uint64_t ino, uint64_t off, uint64_t len)
{
	uint64_t end = range_end(off, len);

	if (off >= end)
		return len ? -EINVAL : 0;
	LOCKED(m);
	int r = meta_op_begin(m);
	if (r < 0)
		return r;
	return meta_op_end(m, dirty_add_locked(m, ino, off, end));
}

static int dirty_clear_locked(struct meta *m, uint64_t ino, uint64_t start, uint64_t end)
{
	uint64_t first[2], last[2];
	int r = dirty_near(m, ino, start, end, false, first, last);
	if (r <= 0)
		return r;
	/* Every overlapping range starts in [first, end); keep what sticks out either side. */
	r = dirty_write(m, ST_DIRTY_DELETE_RANGE, ino, first[0], end - 1, "clearing dirty ranges");
	if (r >= 0 && first[0] < start)
		r = dirty_write(m, ST_DIRTY_INSERT, ino, first[0], start - first[0],
				"splitting a dirty range");
	if (r >= 0 && last[1] > end)
		r = dirty_write(m, ST_DIRTY_INSERT, ino, end, last[1] - end,
				"splitting a dirty range");
	return r;
}

int meta_dirty_clear(struct meta *m, uint64_t ino, uint64_t off, uint64_t len)
{
	uint64_t end = range_end(off, len);

	if (off >= end)
		return 0;
	LOCKED(m);
	int r = meta_op_begin(m);
	if (r < 0)
		return r;
	return meta_op_end(m, dirty_clear_locked(m, ino, off, end));
}

static int dirty_ranges_batch(struct meta *m, uint64_t ino, int64_t after, uint64_t (*out)[2],
			      size_t *ret_n)
{
	LOCKED(m);
	_cleanup_stmt_ sqlite3_stmt *s = m->st[ST_DIRTY_RANGES];
	size_t n = 0;
	int r;

	bind_u64(s, 1, ino);
	sqlite3_bind_int64(s, 2, after);
	sqlite3_bind_int(s, 3, META_BATCH);
	while ((r = meta_row(m, s, "reading dirty ranges")) > 0) {
		out[n][0] = col_u64(s, 0);
		out[n][1] = col_u64(s, 1);
		n++;
	}
	if (r < 0)
		return r;
	*ret_n = n;
	return 0;
}

int meta_dirty_ranges(struct meta *m, uint64_t ino, int (*fn)(uint64_t off, uint64_t len, void *ud),
		      void *ud)
{
	uint64_t d[META_BATCH][2];
	int64_t after = -1;

	for (;;) {
		size_t n;
		int r = dirty_ranges_batch(m, ino, after, d, &n);
		if (r < 0)
			return r;
		for (size_t i = 0; i < n; i++) {
			r = fn(d[i][0], d[i][1], ud);
			if (r)
				return r < 0 ? r : 0;
		}
		if (n < META_BATCH)
			return 0;
		after = (int64_t)d[n - 1][0];
	}
}

/* ---- staging generation ---- */

int meta_stage_get(struct meta *m, uint64_t ino, uint64_t *ret)
{
	LOCKED(m);
	_cleanup_stmt_ sqlite3_stmt *s = m->st[ST_STAGE_GET];
	bind_u64(s, 1, ino);
	int r = meta_row(m, s, "reading a staging generation");
	if (r <= 0)
		return r < 0 ? r : -ENOENT;
	*ret = col_u64(s, 0);
	return 0;
}

static int stage_set_locked(struct meta *m, uint64_t ino, uint64_t stage)
{
	sqlite3_stmt *s = m->st[ST_STAGE_SET];
	bind_u64(s, 1, ino);
	bind_u64(s, 2, stage);
	return meta_write_one(m, s, -ENOENT, "setting a staging generation");
}

int meta_stage_set(struct meta *m, uint64_t ino, uint64_t stage)
{
	if (stage > INT64_MAX)
		return -EINVAL;
	LOCKED(m);
	return stage_set_locked(m, ino, stage);
}

int meta_truncate(struct meta *m, uint64_t ino, uint64_t size, uint64_t cut, uint64_t keep,
		  uint64_t stage)
{
	if (cut > size || keep > size - cut || size > INT64_MAX || stage > INT64_MAX)
		return -EINVAL;
	LOCKED(m);
	int r = meta_op_begin(m);
	if (r < 0)
		return r;
	if (stage)
		r = stage_set_locked(m, ino, stage);
	if (r >= 0)
		r = extents_replace_locked(m, ino, cut, INT64_MAX, NULL, 0);
	if (r >= 0 && size < INT64_MAX)
		r = dirty_clear_locked(m, ino, size, INT64_MAX);
	if (r >= 0 && keep)
		r = dirty_add_locked(m, ino, cut, cut + keep);
	if (r >= 0) {
		sqlite3_stmt *s = m->st[ST_INODE_SET_SIZE];
		bind_u64(s, 1, ino);
		bind_u64(s, 2, size);
		r = meta_write_one(m, s, -ENOENT, "setting a size");
	}
	return meta_op_end(m, r);
}
