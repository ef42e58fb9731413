/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Trees (see tree.h): the version 1 tree format, its hostile-input-safe decoder, and the two
 * walks between the working tree in meta and tree blobs in the store: tree_checkpoint()
 * writes the dirty directories bottom-up, tree_restore() rebuilds a working tree from a
 * root id. Both walks keep their state in an explicit heap stack, so a directory chain
 * thousands of levels deep costs heap, not C stack.
 */
#include "tree.h"

#include <stdio.h>
#include <sys/stat.h>

#define TREE_MAGIC "CTR\x01"
#define TREE_MAGIC_SIZE 4
#define TREE_XATTR_NAME_MAX 255

/*
 * The fewest bytes each kind of record can take, used to bound a count read from the input
 * by the bytes left before anything is allocated for it: a hostile count of 0xffffffff in a
 * tiny blob fails at once instead of asking for gigabytes.
 */
#define RECORD_MIN (4 + 1 + 8 + 4 * 4 + 8 * 5 + 4) /* name >= 1 byte, fixed fields, nxattr */
#define XATTR_MIN (4 + 1 + 4)			   /* name >= 1 byte, empty value */
#define EXTENT_MIN (8 + 4 + BLOB_ID_SIZE)

/* Bytewise name order of the format: memcmp over the common prefix, then shorter first. */
static int name_cmp(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	int c = memcmp(a, b, MIN(la, lb));
	if (c)
		return c;
	return la < lb ? -1 : la > lb;
}

static void entry_release(struct tree_entry *e)
{
	free(e->name);
	for (size_t i = 0; i < e->n_xattrs; i++) {
		free(e->xattrs[i].name);
		free(e->xattrs[i].value);
	}
	free(e->xattrs);
	free(e->target);
	free(e->extents);
	*e = (struct tree_entry){0};
}

void tree_release(struct tree *t)
{
	if (!t)
		return;
	entry_release(&t->self);
	for (size_t i = 0; i < t->n_entries; i++)
		entry_release(&t->entries[i]);
	free(t->entries);
	*t = (struct tree){0};
}

static void tree_releasep(struct tree *t)
{
	tree_release(t);
}
#define _cleanup_tree_ _cleanup_(tree_releasep)

static bool mode_ok(uint32_t mode)
{
	if (mode & ~(uint32_t)(S_IFMT | 07777))
		return false;
	switch (mode & S_IFMT) {
	case S_IFDIR:
	case S_IFREG:
	case S_IFLNK:
	case S_IFIFO:
	case S_IFCHR:
	case S_IFBLK:
	case S_IFSOCK:
		return true;
	default:
		return false;
	}
}

static bool entry_name_ok(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (n < 1 || n > META_NAME_MAX || memchr(name, '/', n))
		return false;
	/* "." and ".." would shadow the directory itself and its parent. */
	return strcmp(name, ".") && strcmp(name, "..");
}

/*
 * Every limit of the format, checked on a parsed record (decode) and on a record about to
 * be written (encode), so that we never store a tree we would refuse to read back.
 */
static bool entry_ok(const struct tree_entry *e, bool self)
{
	if (self ? e->name && e->name[0] : !entry_name_ok(e->name))
		return false;
	if (e->inode.ino == 0 || !mode_ok(e->inode.mode))
		return false;
	if (self && !S_ISDIR(e->inode.mode))
		return false;

	for (size_t i = 0; i < e->n_xattrs; i++) {
		const struct tree_xattr *x = &e->xattrs[i];
		size_t n = x->name ? strlen(x->name) : 0;
		if (n < 1 || n > TREE_XATTR_NAME_MAX || x->len > TREE_XATTR_VALUE_MAX ||
		    (x->len && !x->value))
			return false;
		if (i > 0 && name_cmp(e->xattrs[i - 1].name, x->name) >= 0)
			return false;
	}

	if (S_ISLNK(e->inode.mode)) {
		size_t n = e->target ? strlen(e->target) : 0;
		if (n < 1 || n > TREE_TARGET_MAX)
			return false;
	}

	if (S_ISREG(e->inode.mode)) {
		uint64_t end = 0;
		if (e->n_extents && !e->extents)
			return false;
		for (size_t i = 0; i < e->n_extents; i++) {
			const struct meta_extent *x = &e->extents[i];
			/* Sorted, not overlapping, not empty, and within size (checked without
			 * overflow: off <= size and len <= size - off). */
			if (x->len == 0 || x->off < end || x->off > e->inode.size ||
			    x->len > e->inode.size - x->off)
				return false;
			end = x->off + x->len;
		}
	}
	return true;
}

static int put_bytes(struct buf *b, const void *p, size_t len)
{
	int r = buf_append_le32(b, (uint32_t)len);
	if (r < 0 || len == 0)
		return r;
	return buf_append(b, p, len);
}

static int encode_entry(struct buf *b, const struct tree_entry *e, bool self)
{
	const struct meta_inode *i = &e->inode;
	const char *name = self ? "" : e->name;
	int r;

	if ((r = buf_append_str(b, name)) < 0 || (r = buf_append_le64(b, i->ino)) < 0 ||
	    (r = buf_append_le32(b, i->mode)) < 0 || (r = buf_append_le32(b, i->uid)) < 0 ||
	    (r = buf_append_le32(b, i->gid)) < 0 || (r = buf_append_le32(b, i->nlink)) < 0 ||
	    (r = buf_append_le64(b, i->size)) < 0 || (r = buf_append_le64(b, i->rdev)) < 0 ||
	    (r = buf_append_le64(b, (uint64_t)i->atime)) < 0 ||
	    (r = buf_append_le64(b, (uint64_t)i->mtime)) < 0 ||
	    (r = buf_append_le64(b, (uint64_t)i->ctime)) < 0 ||
	    (r = buf_append_le32(b, (uint32_t)e->n_xattrs)) < 0)
		return r;
	for (size_t k = 0; k < e->n_xattrs; k++) {
		if ((r = buf_append_str(b, e->xattrs[k].name)) < 0 ||
		    (r = put_bytes(b, e->xattrs[k].value, e->xattrs[k].len)) < 0)
			return r;
	}

	switch (i->mode & S_IFMT) {
	case S_IFDIR:
		if (!self)
			r = buf_append(b, e->subtree.b, BLOB_ID_SIZE);
		break;
	case S_IFLNK:
		r = buf_append_str(b, e->target);
		break;
	case S_IFREG:
		r = buf_append_le32(b, (uint32_t)e->n_extents);
		for (size_t k = 0; r >= 0 && k < e->n_extents; k++) {
			const struct meta_extent *x = &e->extents[k];
			if ((r = buf_append_le64(b, x->off)) < 0 ||
			    (r = buf_append_le32(b, x->len)) < 0)
				break;
			r = buf_append(b, x->blob.b, BLOB_ID_SIZE);
		}
		break;
	}
	return r < 0 ? r : 0;
}

int tree_encode(const struct tree *t, struct buf *ret)
{
	_cleanup_buf_ struct buf b = {0};
	int r;

	if (!entry_ok(&t->self, true) || t->n_entries > UINT32_MAX || (t->n_entries && !t->entries))
		return -EINVAL;
	for (size_t k = 0; k < t->n_entries; k++) {
		if (!entry_ok(&t->entries[k], false) || t->entries[k].n_xattrs > UINT32_MAX ||
		    t->entries[k].n_extents > UINT32_MAX)
			return -EINVAL;
		if (k > 0 && name_cmp(t->entries[k - 1].name, t->entries[k].name) >= 0)
			return -EINVAL;
	}
	if (t->self.n_xattrs > UINT32_MAX)
		return -EINVAL;

	if ((r = buf_append(&b, TREE_MAGIC, TREE_MAGIC_SIZE)) < 0 ||
	    (r = encode_entry(&b, &t->self, true)) < 0 ||
	    (r = buf_append_le32(&b, (uint32_t)t->n_entries)) < 0)
		return r;
	for (size_t k = 0; k < t->n_entries; k++)
		if ((r = encode_entry(&b, &t->entries[k], false)) < 0)
			return r;

	r = buf_append(ret, b.data, b.len);
	return r < 0 ? r : 0;
}

/* Read a count of items of at least min bytes each, bounded by what is left. */
static int read_count(struct reader *r, size_t min, uint32_t *ret)
{
	uint32_t n;
	int k = reader_le32(r, &n);
	if (k < 0)
		return k;
	if (n > r->left / min)
		return -EBADMSG;
	*ret = n;
	return 0;
}

static int decode_xattrs(struct reader *r, struct tree_entry *e)
{
	uint32_t n;
	int k = read_count(r, XATTR_MIN, &n);
	if (k < 0 || n == 0)
		return k;
	e->xattrs = calloc(n, sizeof(*e->xattrs));
	if (!e->xattrs)
		return -ENOMEM;
	e->n_xattrs = n;
	for (uint32_t i = 0; i < n; i++) {
		struct tree_xattr *x = &e->xattrs[i];
		const uint8_t *p;
		uint32_t len;
		if ((k = reader_str(r, TREE_XATTR_NAME_MAX, &x->name)) < 0 ||
		    (k = reader_le32(r, &len)) < 0)
			return k;
		if (len > TREE_XATTR_VALUE_MAX)
			return -EBADMSG;
		if ((k = reader_skip_ptr(r, len, &p)) < 0)
			return k;
		/* One byte more, so an empty value still has a buffer. */
		x->value = malloc((size_t)len + 1);
		if (!x->value)
			return -ENOMEM;
		if (len)
			memcpy(x->value, p, len);
		x->len = len;
	}
	return 0;
}

static int decode_extents(struct reader *r, struct tree_entry *e)
{
	uint32_t n;
	int k = read_count(r, EXTENT_MIN, &n);
	if (k < 0 || n == 0)
		return k;
	e->extents = calloc(n, sizeof(*e->extents));
	if (!e->extents)
		return -ENOMEM;
	e->n_extents = n;
	for (uint32_t i = 0; i < n; i++) {
		struct meta_extent *x = &e->extents[i];
		if ((k = reader_le64(r, &x->off)) < 0 || (k = reader_le32(r, &x->len)) < 0 ||
		    (k = reader_bytes(r, x->blob.b, BLOB_ID_SIZE)) < 0)
			return k;
	}
	return 0;
}

/* Parse one record into e (zeroed by the caller; freed by the caller on error too). */
static int decode_entry(struct reader *r, struct tree_entry *e, bool self)
{
	struct meta_inode *i = &e->inode;
	uint64_t atime, mtime, ctime;
	int k;

	if ((k = reader_str(r, self ? 0 : META_NAME_MAX, &e->name)) < 0)
		return k;
	if (self) {
		/* The directory's own record has no name; keep it NULL in memory. */
		free(e->name);
		e->name = NULL;
	}
	if ((k = reader_le64(r, &i->ino)) < 0 || (k = reader_le32(r, &i->mode)) < 0 ||
	    (k = reader_le32(r, &i->uid)) < 0 || (k = reader_le32(r, &i->gid)) < 0 ||
	    (k = reader_le32(r, &i->nlink)) < 0 || (k = reader_le64(r, &i->size)) < 0 ||
	    (k = reader_le64(r, &i->rdev)) < 0 || (k = reader_le64(r, &atime)) < 0 ||
	    (k = reader_le64(r, &mtime)) < 0 || (k = reader_le64(r, &ctime)) < 0)
		return k;
	i->atime = (int64_t)atime;
	i->mtime = (int64_t)mtime;
	i->ctime = (int64_t)ctime;
	/* The type decides what follows: an unknown one cannot be parsed further. */
	if (!mode_ok(i->mode))
		return -EBADMSG;
	if ((k = decode_xattrs(r, e)) < 0)
		return k;

	switch (i->mode & S_IFMT) {
	case S_IFDIR:
		if (!self)
			k = reader_bytes(r, e->subtree.b, BLOB_ID_SIZE);
		break;
	case S_IFLNK:
		k = reader_str(r, TREE_TARGET_MAX, &e->target);
		break;
	case S_IFREG:
		k = decode_extents(r, e);
		break;
	}
	if (k < 0)
		return k;
	return entry_ok(e, self) ? 0 : -EBADMSG;
}

static int decode(const void *data, size_t len, struct tree *t)
{
	struct reader r = {.p = data, .left = len};
	uint8_t magic[TREE_MAGIC_SIZE];
	uint32_t n;
	int k;

	if ((k = reader_bytes(&r, magic, sizeof(magic))) < 0)
		return k;
	if (memcmp(magic, TREE_MAGIC, TREE_MAGIC_SIZE))
		return -EBADMSG;
	if ((k = decode_entry(&r, &t->self, true)) < 0 || (k = read_count(&r, RECORD_MIN, &n)) < 0)
		return k;
	if (n) {
		t->entries = calloc(n, sizeof(*t->entries));
		if (!t->entries)
			return -ENOMEM;
		t->n_entries = n;
	}
	for (uint32_t i = 0; i < n; i++) {
		if ((k = decode_entry(&r, &t->entries[i], false)) < 0)
			return k;
		if (i > 0 && name_cmp(t->entries[i - 1].name, t->entries[i].name) >= 0)
			return -EBADMSG;
	}
	return r.left ? -EBADMSG : 0;
}

int tree_decode(const void *data, size_t len, struct tree *ret)
{
	_cleanup_tree_ struct tree t = {0};
	int r = decode(data, len, &t);
	if (r < 0)
		return r;
	*ret = t;
	t = (struct tree){0};
	return 0;
}

/* ---- checkpoint: meta -> trees ---- */

static int xattr_cmp(const void *a, const void *b)
{
	return name_cmp(((const struct tree_xattr *)a)->name, ((const struct tree_xattr *)b)->name);
}

static int entry_cmp(const void *a, const void *b)
{
	return name_cmp(((const struct tree_entry *)a)->name, ((const struct tree_entry *)b)->name);
}

static int load_xattrs(struct meta *m, struct tree_entry *e)
{
	_cleanup_buf_ struct buf names = {0};
	size_t n = 0;
	int r = meta_xattr_list(m, e->inode.ino, &names);
	if (r < 0)
		return r;
	for (size_t i = 0; i < names.len; i++)
		n += names.data[i] == 0;
	if (n == 0)
		return 0;
	e->xattrs = calloc(n, sizeof(*e->xattrs));
	if (!e->xattrs)
		return -ENOMEM;
	for (size_t off = 0; off < names.len && e->n_xattrs < n;) {
		const char *name = (const char *)names.data + off;
		struct tree_xattr *x = &e->xattrs[e->n_xattrs];
		void *value;
		off += strlen(name) + 1;
		x->name = strdup(name);
		if (!x->name)
			return -ENOMEM;
		e->n_xattrs++;
		r = meta_xattr_get(m, e->inode.ino, name, &value, &x->len);
		if (r < 0)
			return r;
		x->value = value;
	}
	qsort(e->xattrs, e->n_xattrs, sizeof(*e->xattrs), xattr_cmp);
	return 0;
}

struct extent_list {
	struct meta_extent *v;
	size_t n, cap;
	uint64_t ino, size;
};

static int collect_extent(const struct meta_extent *e, void *ud)
{
	struct extent_list *l = ud;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		struct meta_extent *v = reallocarray(l->v, cap, sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	/*
	 * An extent is a whole chunk and readers insist on len == the blob's length, so one
	 * reaching past the end cannot be shortened to fit; a truncate restages the kept prefix
	 * instead, so this is an inconsistent working tree. Refused here, naming the file, rather
	 * than later by tree_encode naming only the directory.
	 */
	if (e->len > l->size || e->off > l->size - e->len)
		return log_error_errno(-EBADMSG,
				       "checkpoint: inode %llu: extent at %llu+%u reaches past "
				       "its size %llu",
				       (unsigned long long)l->ino, (unsigned long long)e->off,
				       e->len, (unsigned long long)l->size);
	l->v[l->n++] = *e;
	return 0;
}

static int found_dirty(uint64_t off, uint64_t len, void *ud)
{
	*(bool *)ud = true;
	return 1; /* one is enough */
}

/* Fill everything of e but its name and subtree from meta. */
static int load_entry(struct meta *m, uint64_t ino, struct tree_entry *e)
{
	int r = meta_inode_get(m, ino, &e->inode);
	if (r < 0)
		return r;
	if ((r = load_xattrs(m, e)) < 0)
		return r;

	if (S_ISLNK(e->inode.mode))
		return meta_symlink_get(m, ino, &e->target);

	if (S_ISREG(e->inode.mode)) {
		struct extent_list l = {.ino = ino, .size = e->inode.size};
		bool dirty = false;
		r = meta_dirty_ranges(m, ino, found_dirty, &dirty);
		if (r < 0)
			return r;
		if (dirty) {
			log_debug("checkpoint: inode %llu has unflushed data",
				  (unsigned long long)ino);
			return -EAGAIN;
		}
		if (e->inode.size > 0)
			r = meta_extents(m, ino, 0, e->inode.size, collect_extent, &l);
		if (r < 0) {
			free(l.v);
			return r;
		}
		e->extents = l.v;
		e->n_extents = l.n;
	}
	return 0;
}

struct dentry_list {
	struct tree_entry *v;
	size_t n, cap;
};

/* meta.h does not promise that meta may be called from inside a meta_readdir callback: only
 * collect here, query meta afterwards. */
static int collect_dentry(uint64_t cookie, const char *name, uint64_t ino, void *ud)
{
	struct dentry_list *l = ud;
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		struct tree_entry *v = reallocarray(l->v, cap, sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n] = (struct tree_entry){.inode.ino = ino};
	l->v[l->n].name = strdup(name);
	if (!l->v[l->n].name)
		return -ENOMEM;
	l->n++;
	return 0;
}

/* Build dir's tree from meta, every subtree id still unset. */
static int build_tree(struct meta *m, uint64_t dir, struct tree *ret)
{
	_cleanup_tree_ struct tree t = {0};
	struct dentry_list l = {0};
	int r;

	if ((r = load_entry(m, dir, &t.self)) < 0)
		return r;
	if (!S_ISDIR(t.self.inode.mode))
		return log_error_errno(-EBADMSG,
				       "checkpoint: inode %llu is listed as a "
				       "directory but is not one",
				       (unsigned long long)dir);

	r = meta_readdir(m, dir, 0, collect_dentry, &l);
	/* Hand the list to t at once so that every path below frees it. */
	t.entries = l.v;
	t.n_entries = l.n;
	if (r < 0)
		return r;

	for (size_t i = 0; i < t.n_entries; i++) {
		struct tree_entry *e = &t.entries[i];
		if ((r = load_entry(m, e->inode.ino, e)) < 0)
			return r;
	}
	if (t.n_entries > 1) /* qsort's array must not be NULL, even for 0 items */
		qsort(t.entries, t.n_entries, sizeof(*t.entries), entry_cmp);

	*ret = t;
	t = (struct tree){0};
	return 0;
}

struct ckpt_frame {
	uint64_t dir;
	struct tree t;
	size_t next; /* the entry being looked at */
};

struct ckpt_stack {
	struct ckpt_frame *v;
	size_t n, cap;
};

static void ckpt_stack_release(struct ckpt_stack *st)
{
	for (size_t i = 0; i < st->n; i++)
		tree_release(&st->v[i].t);
	free(st->v);
}

static int ckpt_push(struct meta *m, struct ckpt_stack *st, uint64_t dir)
{
	/* A directory met again below itself means a cycle in the working tree's entries:
	 * without this check the walk would never end. Depth is small enough for a scan. */
	for (size_t i = 0; i < st->n; i++)
		if (st->v[i].dir == dir)
			return log_error_errno(-EBADMSG,
					       "checkpoint: directory %llu contains "
					       "itself",
					       (unsigned long long)dir);
	if (st->n == st->cap) {
		size_t cap = st->cap ? 2 * st->cap : 64;
		struct ckpt_frame *v = reallocarray(st->v, cap, sizeof(*v));
		if (!v)
			return -ENOMEM;
		st->v = v;
		st->cap = cap;
	}
	struct ckpt_frame *f = &st->v[st->n];
	*f = (struct ckpt_frame){.dir = dir};
	int r = build_tree(m, dir, &f->t);
	if (r < 0)
		return r;
	st->n++;
	return 0;
}

/* Encode and store a finished directory, and record its id. */
static int ckpt_write(struct meta *m, struct store *s, struct ckpt_frame *f, struct blob_id *ret)
{
	_cleanup_buf_ struct buf b = {0};
	struct blob_id id;
	int r = tree_encode(&f->t, &b);
	if (r < 0)
		return log_error_errno(r, "checkpoint: directory %llu: cannot encode its tree: %s",
				       (unsigned long long)f->dir, strerror(-r));
	r = store_put(s, BLOB_TREE, b.data, b.len, &id, NULL);
	if (r < 0)
		return log_error_errno(r, "checkpoint: directory %llu: storing its tree: %s",
				       (unsigned long long)f->dir, strerror(-r));
	r = meta_tree_set(m, f->dir, &id);
	if (r < 0)
		return r;
	*ret = id;
	return 0;
}

int tree_checkpoint(struct meta *m, struct store *s, struct blob_id *ret_root)
{
	_cleanup_(ckpt_stack_release) struct ckpt_stack st = {0};
	struct blob_id id;
	int r;

	r = meta_tree_get(m, META_ROOT_INO, &id);
	if (r == 0) {
		*ret_root = id;
		return 0;
	}
	if (r != -ENOENT)
		return r;
	if ((r = ckpt_push(m, &st, META_ROOT_INO)) < 0)
		return r;

	/*
	 * Depth first: the top frame scans its entries for a dirty subdirectory and descends
	 * into it; once none is left it is written, popped, and its id handed to the entry of
	 * its parent that it came from (the parent's `next`).
	 */
	while (st.n > 0) {
		struct ckpt_frame *f = &st.v[st.n - 1];
		uint64_t child = 0;

		for (; f->next < f->t.n_entries; f->next++) {
			struct tree_entry *e = &f->t.entries[f->next];
			if (!S_ISDIR(e->inode.mode))
				continue;
			r = meta_tree_get(m, e->inode.ino, &e->subtree);
			if (r == -ENOENT) {
				child = e->inode.ino;
				break;
			}
			if (r < 0)
				return r;
		}
		if (child) {
			if ((r = ckpt_push(m, &st, child)) < 0)
				return r;
			continue;
		}

		if ((r = ckpt_write(m, s, f, &id)) < 0)
			return r;
		tree_release(&f->t);
		st.n--;
		if (st.n > 0) {
			f = &st.v[st.n - 1];
			f->t.entries[f->next++].subtree = id;
		}
	}

	*ret_root = id;
	return 0;
}

/* ---- restore: trees -> meta ---- */

/* A set of inode numbers (never 0), open addressing. */
struct ino_set {
	uint64_t *v;
	size_t n, cap; /* cap: a power of two, or 0 */
};

static size_t ino_hash(uint64_t ino, size_t cap)
{
	return (size_t)((ino * 0x9e3779b97f4a7c15ull) >> 17) & (cap - 1);
}

static bool ino_set_has(const struct ino_set *set, uint64_t ino)
{
	if (set->cap == 0)
		return false;
	for (size_t i = ino_hash(ino, set->cap);; i = (i + 1) & (set->cap - 1)) {
		if (set->v[i] == ino)
			return true;
		if (set->v[i] == 0)
			return false;
	}
}

static int ino_set_add(struct ino_set *set, uint64_t ino)
{
	if (2 * (set->n + 1) > set->cap) {
		size_t cap = set->cap ? 2 * set->cap : 256;
		uint64_t *v = calloc(cap, sizeof(*v));
		if (!v)
			return -ENOMEM;
		for (size_t k = 0; k < set->cap; k++) {
			if (!set->v[k])
				continue;
			size_t i = ino_hash(set->v[k], cap);
			while (v[i])
				i = (i + 1) & (cap - 1);
			v[i] = set->v[k];
		}
		free(set->v);
		set->v = v;
		set->cap = cap;
	}
	size_t i = ino_hash(ino, set->cap);
	while (set->v[i] && set->v[i] != ino)
		i = (i + 1) & (set->cap - 1);
	if (!set->v[i]) {
		set->v[i] = ino;
		set->n++;
	}
	return 0;
}

static void ino_set_release(struct ino_set *set)
{
	free(set->v);
}

struct rst_frame {
	uint64_t dir;
	struct blob_id id;
	struct tree t;
	size_t next;
};

struct rst_dir {
	uint64_t ino;
	struct blob_id id;
};

struct rst {
	struct meta *m;
	struct store *s;
	struct rst_frame *v;
	size_t n, cap;
	struct rst_dir *dirs; /* every directory with its tree id, set at the very end */
	size_t n_dirs, cap_dirs;
	struct ino_set seen;
};

static void rst_release(struct rst *st)
{
	for (size_t i = 0; i < st->n; i++)
		tree_release(&st->v[i].t);
	free(st->v);
	free(st->dirs);
	ino_set_release(&st->seen);
}

int tree_load(struct store *s, const struct blob_id *id, struct tree *ret)
{
	_cleanup_buf_ struct buf b = {0};
	char hex[BLOB_ID_HEX_SIZE];
	int r = store_get(s, BLOB_TREE, id, &b);
	if (r >= 0)
		r = tree_decode(b.data, b.len, ret);
	if (r < 0) {
		hex_encode(id->b, BLOB_ID_SIZE, hex);
		return log_error_errno(r, "tree %s: %s", hex,
				       r == -EBADMSG ? "corrupt" : strerror(-r));
	}
	return 0;
}

static int rst_push(struct rst *st, uint64_t dir, const struct blob_id *id, bool check_ino)
{
	if (st->n == st->cap) {
		size_t cap = st->cap ? 2 * st->cap : 64;
		struct rst_frame *v = reallocarray(st->v, cap, sizeof(*v));
		if (!v)
			return -ENOMEM;
		st->v = v;
		st->cap = cap;
	}
	if (st->n_dirs == st->cap_dirs) {
		size_t cap = st->cap_dirs ? 2 * st->cap_dirs : 64;
		struct rst_dir *v = reallocarray(st->dirs, cap, sizeof(*v));
		if (!v)
			return -ENOMEM;
		st->dirs = v;
		st->cap_dirs = cap;
	}

	struct rst_frame *f = &st->v[st->n];
	*f = (struct rst_frame){.dir = dir, .id = *id};
	int r = tree_load(st->s, id, &f->t);
	if (r < 0)
		return r;
	if (check_ino && f->t.self.inode.ino != dir) {
		char hex[BLOB_ID_HEX_SIZE];
		unsigned long long got = f->t.self.inode.ino;
		hex_encode(id->b, BLOB_ID_SIZE, hex);
		tree_release(&f->t);
		return log_error_errno(-EBADMSG, "tree %s: corrupt: is inode %llu, listed as %llu",
				       hex, got, (unsigned long long)dir);
	}
	st->n++;
	st->dirs[st->n_dirs++] = (struct rst_dir){.ino = dir, .id = *id};
	return 0;
}

static int set_xattrs(struct meta *m, const struct tree_entry *e, uint64_t ino)
{
	for (size_t i = 0; i < e->n_xattrs; i++) {
		int r = meta_xattr_set(m, ino, e->xattrs[i].name, e->xattrs[i].value,
				       e->xattrs[i].len, 0);
		if (r < 0)
			return r;
	}
	return 0;
}

static int rst_corrupt(const struct rst_frame *f, const struct tree_entry *e, const char *why)
{
	char hex[BLOB_ID_HEX_SIZE];
	hex_encode(f->id.b, BLOB_ID_SIZE, hex);
	return log_error_errno(-EBADMSG, "tree %s: corrupt: entry \"%s\" (inode %llu) %s", hex,
			       e->name, (unsigned long long)e->inode.ino, why);
}

/* Create the inode of a new entry of f's directory, then link it. */
static int rst_entry(struct rst *st, const struct rst_frame *f, const struct tree_entry *e)
{
	struct meta *m = st->m;
	uint64_t ino = e->inode.ino;
	int r;

	if (ino == META_ROOT_INO)
		return rst_corrupt(f, e, "is the root");
	if (ino_set_has(&st->seen, ino)) {
		/* Directories have one entry each: a second one would be a cycle. */
		if (S_ISDIR(e->inode.mode))
			return rst_corrupt(f, e, "is a directory met twice");
		return meta_link(m, f->dir, e->name, ino);
	}

	r = meta_inode_insert(m, &e->inode);
	if (r == -EEXIST)
		return rst_corrupt(f, e, "is met twice");
	if (r < 0)
		return r;
	if ((r = set_xattrs(m, e, ino)) < 0)
		return r;
	if (S_ISLNK(e->inode.mode) && (r = meta_symlink_set(m, ino, e->target)) < 0)
		return r;
	if (S_ISREG(e->inode.mode) && e->n_extents &&
	    (r = meta_extents_replace(m, ino, 0, e->inode.size, e->extents, e->n_extents)) < 0)
		return r;
	if ((r = meta_link(m, f->dir, e->name, ino)) < 0)
		return r;
	/* Only an inode that can have another entry needs remembering: a hard-linked file,
	 * or a directory (to refuse a second entry). A duplicate of anything else is refused
	 * by meta_inode_insert. */
	if (S_ISDIR(e->inode.mode) || e->inode.nlink > 1)
		return ino_set_add(&st->seen, ino);
	return 0;
}

int tree_restore(struct meta *m, struct store *s, const struct blob_id *root)
{
	_cleanup_(rst_release) struct rst st = {.m = m, .s = s};
	struct meta_inode self;
	int r;

	if ((r = rst_push(&st, META_ROOT_INO, root, false)) < 0)
		return r;
	/* The root keeps number 1 whatever its tree says. */
	self = st.v[0].t.self.inode;
	self.ino = META_ROOT_INO;
	if ((r = meta_inode_update(m, &self)) < 0 || (r = set_xattrs(m, &st.v[0].t.self, 1)) < 0 ||
	    (r = ino_set_add(&st.seen, META_ROOT_INO)) < 0)
		return r;

	while (st.n > 0) {
		struct rst_frame *f = &st.v[st.n - 1];
		const struct tree_entry *sub = NULL;

		for (; f->next < f->t.n_entries; f->next++) {
			const struct tree_entry *e = &f->t.entries[f->next];
			if ((r = rst_entry(&st, f, e)) < 0)
				return r;
			if (S_ISDIR(e->inode.mode)) {
				sub = e;
				f->next++;
				break;
			}
		}
		if (sub) {
			/* rst_push may move the frames: sub points into f->t, which stays. */
			if ((r = rst_push(&st, sub->inode.ino, &sub->subtree, true)) < 0)
				return r;
			continue;
		}
		tree_release(&f->t);
		st.n--;
	}

	/*
	 * Tree ids last: inserting and linking may mark directories dirty (a hard link's
	 * second entry touches the inode's other parents), so each directory is marked clean
	 * only once everything is in place.
	 */
	for (size_t i = 0; i < st.n_dirs; i++)
		if ((r = meta_tree_set(m, st.dirs[i].ino, &st.dirs[i].id)) < 0)
			return r;
	return meta_sync(m);
}
