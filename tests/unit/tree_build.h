/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Test helpers shared by the tests of tree walks (treediff, usage): a store on backend_mem
 * and trees built from a list of paths. Header-only, like tap.h: each test is one
 * translation unit. The including file defines `static char scratch[256]` (a scratch
 * directory for the store's cache) before including this.
 *
 * A node list names every path with its attributes; parents need not come first. Files
 * get one extent holding `data` (two when `data2` is set, right after it), symlinks target
 * `data`. build_dir() writes the trees bottom-up and returns the top's id.
 */
#pragma once

#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>

#include "tap.h"
#include "tree.h"

static int rm_cb(const char *p, const struct stat *st, int type, struct FTW *f)
{
	return remove(p);
}

static void rm_rf(const char *p)
{
	nftw(p, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static struct store *new_store(void)
{
	static int n;
	struct backend *b;
	struct store *s;
	uint8_t id[REPO_ID_SIZE];
	char cache[300];
	struct store_create_options co = {.kdf = KDF_TEST};
	snprintf(cache, sizeof(cache), "%s/cache%d", scratch, n++);
	tap_require(backend_mem_new(&b) == 0);
	tap_require(store_create(b, &co, id) == 0);
	struct store_options o = {.cache_dir = cache};
	tap_require(store_open(b, &o, &s) == 0);
	return s;
}

/* ---- trees from a list of paths ---- */

struct node {
	const char *path;
	uint32_t mode;
	uint64_t ino;
	const char *data;  /* file: content; symlink: target */
	const char *data2; /* file: a second extent */
	uint32_t uid;
	int64_t mtime;
	const char *xattr; /* value of user.x, or NULL */
	uint32_t nlink;	   /* 0: 1 */
	uint64_t rdev;
	int64_t atime, ctime;
};

#define D(p, i)                                                                                    \
	{                                                                                          \
		.path = p, .mode = S_IFDIR | 0755, .ino = i                                        \
	}
#define F(p, i, d)                                                                                 \
	{                                                                                          \
		.path = p, .mode = S_IFREG | 0644, .ino = i, .data = d                             \
	}

static char *xstrdup(const char *s)
{
	char *p = strdup(s);
	tap_require(p);
	return p;
}

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');
	return s ? s + 1 : p;
}

/* Whether p is a direct child of dir ("" is the top). */
static bool child_of(const char *p, const char *dir)
{
	size_t n = strlen(dir);
	if (n && (strncmp(p, dir, n) || p[n] != '/'))
		return false;
	const char *rest = n ? p + n + 1 : p;
	return *rest && !strchr(rest, '/');
}

static void fill_entry(struct store *s, const struct node *nd, struct tree_entry *e)
{
	e->inode = (struct meta_inode){.ino = nd->ino,
				       .mode = nd->mode,
				       .uid = nd->uid,
				       .gid = 100,
				       .nlink = nd->nlink ? nd->nlink : 1,
				       .rdev = nd->rdev,
				       .atime = nd->atime,
				       .mtime = nd->mtime ? nd->mtime : 1000,
				       .ctime = nd->ctime};
	if (nd->xattr) {
		e->xattrs = calloc(1, sizeof(*e->xattrs));
		tap_require(e->xattrs);
		e->n_xattrs = 1;
		e->xattrs[0].name = xstrdup("user.x");
		e->xattrs[0].value = (uint8_t *)xstrdup(nd->xattr);
		e->xattrs[0].len = strlen(nd->xattr);
	}
	if (S_ISLNK(nd->mode)) {
		e->target = xstrdup(nd->data);
		e->inode.size = strlen(nd->data);
	}
	if (S_ISREG(nd->mode) && nd->data && *nd->data) {
		const char *parts[2] = {nd->data, nd->data2};
		e->extents = calloc(2, sizeof(*e->extents));
		tap_require(e->extents);
		for (size_t k = 0; k < 2 && parts[k]; k++) {
			size_t len = strlen(parts[k]);
			e->extents[k] =
				(struct meta_extent){.off = e->inode.size, .len = (uint32_t)len};
			tap_require(store_put(s, BLOB_DATA, parts[k], len, &e->extents[k].blob,
					      NULL) == 0);
			e->inode.size += len;
			e->n_extents++;
		}
	}
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct tree_entry *)a)->name, ((const struct tree_entry *)b)->name);
}

/* Build the tree of directory dir (self: its node, NULL for the top) and return its id. */
static struct blob_id build_dir(struct store *s, const struct node *v, size_t n, const char *dir,
				const struct node *self)
{
	struct tree t = {0};
	_cleanup_buf_ struct buf b = {0};
	struct blob_id id;
	static const struct node top = {.path = "", .mode = S_IFDIR | 0755, .ino = 1};

	fill_entry(s, self ? self : &top, &t.self);
	for (size_t k = 0; k < n; k++) {
		if (!child_of(v[k].path, dir))
			continue;
		t.entries = reallocarray(t.entries, t.n_entries + 1, sizeof(*t.entries));
		tap_require(t.entries);
		struct tree_entry *e = &t.entries[t.n_entries++];
		*e = (struct tree_entry){.name = xstrdup(base_name(v[k].path))};
		fill_entry(s, &v[k], e);
		if (S_ISDIR(v[k].mode))
			e->subtree = build_dir(s, v, n, v[k].path, &v[k]);
	}
	if (t.n_entries)
		qsort(t.entries, t.n_entries, sizeof(*t.entries), entry_cmp);
	tap_require(tree_encode(&t, &b) == 0);
	tap_require(store_put(s, BLOB_TREE, b.data, b.len, &id, NULL) == 0);
	tree_release(&t);
	return id;
}

#define BUILD(s, v) build_dir(s, v, ELEMENTSOF(v), "", NULL)
