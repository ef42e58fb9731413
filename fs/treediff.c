/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The diff engine of treediff.h, the entry digest the mount exposes, and the source over
 * trees in a store. The walk merges two sorted listings per directory level, keeping one
 * frame per level on a heap stack; a pair of directories with the same subtree id is never
 * listed, so the cost follows the changed directories, not the tree.
 */
#include "treediff.h"

#include <assert.h>
#include <sys/stat.h>

/* ---- the digest ---- */

/* The digest's own fixed key: only to separate it from every other BLAKE2b use; it hides
 * nothing (what it hashes is already blob ids, which are keyed). */
static const uint8_t digest_key[CODEC_KEY_SIZE] = "cairn-entry-digest-v1";

static void hash_le32(struct codec_hash *h, uint32_t v)
{
	uint8_t b[4];
	put_le32(b, v);
	codec_hash_update(h, b, sizeof(b));
}

static void hash_le64(struct codec_hash *h, uint64_t v)
{
	uint8_t b[8];
	put_le64(b, v);
	codec_hash_update(h, b, sizeof(b));
}

static void hash_str(struct codec_hash *h, const void *p, size_t len)
{
	hash_le32(h, (uint32_t)len);
	if (len)
		codec_hash_update(h, p, len);
}

void tree_entry_digest(const struct tree_entry *e, uint8_t out[TREEDIFF_DIGEST_SIZE])
{
	/* codec_hash_* is documented as keyed by the codec's pack_key; a codec carrying only
	 * our fixed key gives the streaming hash without a repository. */
	const struct codec c = {.pack_key = (uint8_t *)digest_key};
	uint32_t type = e->inode.mode & S_IFMT;
	struct codec_hash h;

	codec_hash_init(&c, &h);
	hash_le32(&h, type);
	hash_le32(&h, (uint32_t)e->n_xattrs);
	for (size_t k = 0; k < e->n_xattrs; k++) {
		hash_str(&h, e->xattrs[k].name, strlen(e->xattrs[k].name));
		hash_str(&h, e->xattrs[k].value, e->xattrs[k].len);
	}
	switch (type) {
	case S_IFREG:
		hash_le64(&h, e->inode.size);
		hash_le32(&h, (uint32_t)e->n_extents);
		for (size_t k = 0; k < e->n_extents; k++) {
			hash_le64(&h, e->extents[k].off);
			hash_le32(&h, e->extents[k].len);
			codec_hash_update(&h, e->extents[k].blob.b, BLOB_ID_SIZE);
		}
		break;
	case S_IFLNK:
		hash_str(&h, e->target, e->target ? strlen(e->target) : 0);
		break;
	case S_IFCHR:
	case S_IFBLK:
		hash_le64(&h, e->inode.rdev);
		break;
	}
	codec_hash_final(&h, out);
}

/* ---- the walk ---- */

struct frame {
	size_t path_len; /* this directory's path in the walk's path buffer */
	struct treediff_list la, lb;
	size_t i, j;
};

struct walk {
	struct treediff_source *a, *b;
	treediff_fn fn;
	void *ud;
	struct frame *v;
	size_t n, cap;
	struct buf path; /* NUL-terminated */
};

static void walk_release(struct walk *w)
{
	for (size_t k = 0; k < w->n; k++) {
		w->a->ops->list_release(w->a, &w->v[k].la);
		w->b->ops->list_release(w->b, &w->v[k].lb);
	}
	free(w->v);
	buf_release(&w->path);
}

/* Push the directory at the current path: its listing in a (ea) and/or in b (eb). */
static int walk_push(struct walk *w, const struct treediff_entry *ea,
		     const struct treediff_entry *eb)
{
	const char *path = (const char *)w->path.data;
	int r;

	if (w->n == w->cap) {
		size_t cap = w->cap ? 2 * w->cap : 16;
		struct frame *v = reallocarray(w->v, cap, sizeof(*v));
		if (!v)
			return -ENOMEM;
		w->v = v;
		w->cap = cap;
	}
	struct frame *f = &w->v[w->n];
	*f = (struct frame){.path_len = w->path.len - 1};
	if (ea) {
		if ((r = w->a->ops->list(w->a, path, ea, &f->la)) < 0)
			return r;
		w->a->n_lists++;
	}
	if (eb) {
		if ((r = w->b->ops->list(w->b, path, eb, &f->lb)) < 0) {
			if (ea)
				w->a->ops->list_release(w->a, &f->la);
			return r;
		}
		w->b->n_lists++;
	}
	w->n++;
	return 0;
}

/* Set the path buffer to the directory of depth frame f plus name. */
static int walk_set_path(struct walk *w, const struct frame *f, const char *name)
{
	int r;
	w->path.len = f->path_len;
	if (f->path_len > 0 && (r = buf_append(&w->path, "/", 1)) < 0)
		return r;
	if ((r = buf_append(&w->path, name, strlen(name) + 1)) < 0)
		return r;
	return 0;
}

/* Permission bits, owner and mtime: the metadata a 'U' reports, without xattrs. */
static bool meta_differs(const struct treediff_entry *a, const struct treediff_entry *b)
{
	return (a->mode & 07777) != (b->mode & 07777) || a->uid != b->uid || a->gid != b->gid ||
	       a->mtime != b->mtime;
}

static int report(struct walk *w, enum treediff_kind kind, const struct treediff_entry *a,
		  const struct treediff_entry *b)
{
	return w->fn(kind, (const char *)w->path.data, a, b, w->ud);
}

/* An entry present on both sides, the path buffer set to it. */
static int walk_both(struct walk *w, const struct treediff_entry *ea,
		     const struct treediff_entry *eb)
{
	const char *path = (const char *)w->path.data;
	unsigned what = 0;
	int r;

	if ((ea->mode & S_IFMT) != (eb->mode & S_IFMT)) {
		if ((r = report(w, TREEDIFF_TYPE, ea, eb)) < 0)
			return r;
		if (S_ISDIR(ea->mode))
			return walk_push(w, ea, NULL);
		if (S_ISDIR(eb->mode))
			return walk_push(w, NULL, eb);
		return 0;
	}

	if (S_ISDIR(ea->mode)) {
		bool same = ea->has_subtree && eb->has_subtree &&
			    !memcmp(ea->subtree.b, eb->subtree.b, BLOB_ID_SIZE);
		if (!same && (r = w->a->ops->compare(w->a, ea, w->b, eb, path, false, &what)) < 0)
			return r;
		if ((meta_differs(ea, eb) || (what & TREEDIFF_DIFF_XATTRS)) &&
		    (r = report(w, TREEDIFF_META, ea, eb)) < 0)
			return r;
		return same ? 0 : walk_push(w, ea, eb);
	}

	bool known = ea->has_digest && eb->has_digest;
	if (!known || memcmp(ea->digest, eb->digest, TREEDIFF_DIGEST_SIZE)) {
		r = w->a->ops->compare(w->a, ea, w->b, eb, path, known, &what);
		if (r < 0)
			return r;
	}
	if (what & TREEDIFF_DIFF_CONTENT)
		return report(w, TREEDIFF_CHANGED, ea, eb);
	if (meta_differs(ea, eb) || (what & TREEDIFF_DIFF_XATTRS))
		return report(w, TREEDIFF_META, ea, eb);
	return 0;
}

/* One step: the next name of the top frame, or pop it when it is done. */
static int walk_step(struct walk *w)
{
	struct frame *f = &w->v[w->n - 1];
	const struct treediff_entry *ea = f->i < f->la.n ? &f->la.v[f->i] : NULL;
	const struct treediff_entry *eb = f->j < f->lb.n ? &f->lb.v[f->j] : NULL;
	int r;

	if (!ea && !eb) {
		w->a->ops->list_release(w->a, &f->la);
		w->b->ops->list_release(w->b, &f->lb);
		w->n--;
		return 0;
	}
	if (ea && eb) {
		int c = strcmp(ea->name, eb->name);
		if (c < 0)
			eb = NULL;
		else if (c > 0)
			ea = NULL;
	}
	/* Advance before anything is pushed: a push may move the frames. */
	f->i += ea != NULL;
	f->j += eb != NULL;
	if ((r = walk_set_path(w, f, ea ? ea->name : eb->name)) < 0)
		return r;

	if (ea && eb)
		return walk_both(w, ea, eb);
	r = report(w, ea ? TREEDIFF_REMOVED : TREEDIFF_ADDED, ea, eb);
	if (r >= 0 && S_ISDIR((ea ? ea : eb)->mode))
		r = walk_push(w, ea, eb);
	return r;
}

int treediff_run(struct treediff_source *a, struct treediff_source *b, treediff_fn fn, void *ud)
{
	struct walk w = {.a = a, .b = b, .fn = fn, .ud = ud};
	int r;

	assert(a->ops == b->ops);
	if (a->top.has_subtree && b->top.has_subtree &&
	    !memcmp(a->top.subtree.b, b->top.subtree.b, BLOB_ID_SIZE))
		return 0;
	r = buf_append(&w.path, "", 1);
	if (r >= 0)
		r = walk_push(&w, &a->top, &b->top);
	while (r >= 0 && w.n > 0)
		r = walk_step(&w);
	walk_release(&w);
	return r < 0 ? r : 0;
}

/* ---- source: trees in a store ---- */

static int tree_list(struct treediff_source *src, const char *path,
		     const struct treediff_entry *dir, struct treediff_list *ret)
{
	struct treediff_tree_source *ts = (struct treediff_tree_source *)src;
	struct tree *t = calloc(1, sizeof(*t));
	int r;

	if (!t)
		return -ENOMEM;
	assert(dir->has_subtree);
	if ((r = tree_load(ts->store, &dir->subtree, t)) < 0) {
		free(t);
		return r;
	}
	struct treediff_entry *v = t->n_entries ? calloc(t->n_entries, sizeof(*v)) : NULL;
	if (t->n_entries && !v) {
		tree_release(t);
		free(t);
		return -ENOMEM;
	}
	for (size_t k = 0; k < t->n_entries; k++) {
		struct tree_entry *e = &t->entries[k];
		v[k] = (struct treediff_entry){
			.name = e->name,
			.mode = e->inode.mode,
			.uid = e->inode.uid,
			.gid = e->inode.gid,
			.size = e->inode.size,
			.rdev = e->inode.rdev,
			.mtime = e->inode.mtime,
			.has_subtree = S_ISDIR(e->inode.mode),
			.subtree = e->subtree,
			.priv = e,
		};
	}
	*ret = (struct treediff_list){.v = v, .n = t->n_entries, .priv = t};
	return 0;
}

static void tree_list_release(struct treediff_source *src, struct treediff_list *l)
{
	tree_release(l->priv);
	free(l->priv);
	free(l->v);
	*l = (struct treediff_list){0};
}

static bool xattrs_equal(const struct tree_entry *a, const struct tree_entry *b)
{
	if (a->n_xattrs != b->n_xattrs)
		return false;
	for (size_t k = 0; k < a->n_xattrs; k++) {
		const struct tree_xattr *x = &a->xattrs[k], *y = &b->xattrs[k];
		if (strcmp(x->name, y->name) || x->len != y->len ||
		    (x->len && memcmp(x->value, y->value, x->len)))
			return false;
	}
	return true;
}

static bool content_equal(const struct tree_entry *a, const struct tree_entry *b)
{
	switch (a->inode.mode & S_IFMT) {
	case S_IFREG:
		if (a->inode.size != b->inode.size || a->n_extents != b->n_extents)
			return false;
		/* Field by field: struct meta_extent has padding. */
		for (size_t k = 0; k < a->n_extents; k++)
			if (a->extents[k].off != b->extents[k].off ||
			    a->extents[k].len != b->extents[k].len ||
			    memcmp(a->extents[k].blob.b, b->extents[k].blob.b, BLOB_ID_SIZE))
				return false;
		return true;
	case S_IFLNK:
		return !strcmp(a->target, b->target);
	case S_IFCHR:
	case S_IFBLK:
		return a->inode.rdev == b->inode.rdev;
	default:
		return true;
	}
}

/* Both trees are in memory: compare exactly, which is as cheap as hashing. */
static int tree_compare(struct treediff_source *a, const struct treediff_entry *ea,
			struct treediff_source *b, const struct treediff_entry *eb,
			const char *path, bool digests_differ, unsigned *ret)
{
	const struct tree_entry *x = ea->priv, *y = eb->priv;
	unsigned what = 0;
	if (!xattrs_equal(x, y))
		what |= TREEDIFF_DIFF_XATTRS;
	if (!S_ISDIR(x->inode.mode) && !content_equal(x, y))
		what |= TREEDIFF_DIFF_CONTENT;
	*ret = what;
	return 0;
}

static const struct treediff_source_ops tree_ops = {
	.name = "tree",
	.list = tree_list,
	.list_release = tree_list_release,
	.compare = tree_compare,
};

void treediff_tree_source_init(struct treediff_tree_source *src, struct store *s,
			       const struct blob_id *root)
{
	*src = (struct treediff_tree_source){
		.base = {.ops = &tree_ops,
			 .top = {.mode = S_IFDIR, .has_subtree = true, .subtree = *root}},
		.store = s,
	};
}
