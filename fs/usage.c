/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Snapshot space accounting (usage.h): load each distinct tree once into a compact DAG,
 * push owner states down it, and memoise per-tree file byte sums bottom-up.
 */
#include "usage.h"

#include <sys/stat.h>

#include "tree.h"

#define OWNER_NONE UINT32_MAX
#define OWNER_MANY (UINT32_MAX - 1)

/* Ids to dense indexes, open addressing. Ids are keyed hashes: their first bytes are
 * already uniformly distributed, so they are the hash. */
struct idmap {
	struct blob_id *ids; /* by index */
	size_t n, cap_ids;
	uint32_t *slots; /* index + 1, 0 empty; cap a power of two */
	size_t cap;
};

static size_t id_hash(const struct blob_id *id, size_t cap)
{
	return (size_t)get_le64(id->b) & (cap - 1);
}

static int idmap_grow(struct idmap *m)
{
	size_t cap = m->cap ? 2 * m->cap : 1024;
	uint32_t *slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	for (size_t k = 0; k < m->n; k++) {
		size_t i = id_hash(&m->ids[k], cap);
		while (slots[i])
			i = (i + 1) & (cap - 1);
		slots[i] = (uint32_t)k + 1;
	}
	free(m->slots);
	m->slots = slots;
	m->cap = cap;
	return 0;
}

/* The index of id, adding it if new (*ret_new tells). Returns 0 or -ENOMEM (-E2BIG past
 * 2^32 - 2 ids). */
static int idmap_put(struct idmap *m, const struct blob_id *id, uint32_t *ret, bool *ret_new)
{
	int r;
	if (2 * (m->n + 1) > m->cap && (r = idmap_grow(m)) < 0)
		return r;
	size_t i = id_hash(id, m->cap);
	for (; m->slots[i]; i = (i + 1) & (m->cap - 1)) {
		uint32_t k = m->slots[i] - 1;
		if (!memcmp(m->ids[k].b, id->b, BLOB_ID_SIZE)) {
			*ret = k;
			*ret_new = false;
			return 0;
		}
	}
	if (m->n >= OWNER_MANY - 1)
		return -E2BIG;
	if (m->n == m->cap_ids) {
		size_t c = m->cap_ids ? 2 * m->cap_ids : 1024;
		struct blob_id *v = reallocarray(m->ids, c, sizeof(*v));
		if (!v)
			return -ENOMEM;
		m->ids = v;
		m->cap_ids = c;
	}
	m->ids[m->n] = *id;
	m->slots[i] = (uint32_t)m->n + 1;
	*ret = (uint32_t)m->n++;
	*ret_new = true;
	return 0;
}

static void idmap_release(struct idmap *m)
{
	free(m->ids);
	free(m->slots);
}

/* A growable array of T, by element size. */
struct vec {
	void *v;
	size_t n, cap;
};

static void *vec_push(struct vec *x, size_t size)
{
	if (x->n == x->cap) {
		size_t cap = x->cap ? 2 * x->cap : 256;
		void *v = reallocarray(x->v, cap, size);
		if (!v)
			return NULL;
		x->v = v;
		x->cap = cap;
	}
	return (char *)x->v + size * x->n++;
}

/* File bytes with link count k. */
struct nsum {
	uint32_t nlink;
	uint64_t sum;
};

/* A small set of nsum, one per link count (almost always one element, k = 1). */
struct nsums {
	struct nsum *v;
	size_t n;
};

static int nsums_add(struct nsums *s, uint32_t nlink, uint64_t bytes)
{
	for (size_t k = 0; k < s->n; k++)
		if (s->v[k].nlink == nlink) {
			s->v[k].sum += bytes;
			return 0;
		}
	struct nsum *v = reallocarray(s->v, s->n + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v[s->n++] = (struct nsum){.nlink = nlink, .sum = bytes};
	s->v = v;
	return 0;
}

struct utree {
	size_t first_child, n_children; /* into edges */
	size_t first_bref, n_brefs;	/* into brefs */
	struct nsums own, total;
	uint32_t owner;
	uint8_t visit; /* post-order: 0 new, 1 open, 2 done */
};

struct ublob {
	uint32_t len;
	uint32_t owner;
};

struct usage_ctx {
	struct store *s;
	struct idmap tree_ids, blob_ids;
	struct vec trees;   /* struct utree, by tree index */
	struct vec blobs;   /* struct ublob, by blob index */
	struct vec edges;   /* uint32_t child tree index */
	struct vec brefs;   /* uint32_t blob index */
	struct vec stack;   /* uint32_t pairs (tree, owner), or post-order tree indexes */
	uint32_t *roots_ix; /* tree index of each root: the snapshots', then the working tree's */
};

static void ctx_release(struct usage_ctx *c)
{
	struct utree *t = c->trees.v;
	for (size_t k = 0; k < c->trees.n; k++) {
		free(t[k].own.v);
		free(t[k].total.v);
	}
	idmap_release(&c->tree_ids);
	idmap_release(&c->blob_ids);
	free(c->trees.v);
	free(c->blobs.v);
	free(c->edges.v);
	free(c->brefs.v);
	free(c->stack.v);
	free(c->roots_ix);
}

static int add_tree_id(struct usage_ctx *c, const struct blob_id *id, uint32_t *ret)
{
	bool is_new;
	int r = idmap_put(&c->tree_ids, id, ret, &is_new);
	if (r < 0 || !is_new)
		return r;
	struct utree *t = vec_push(&c->trees, sizeof(*t));
	if (!t)
		return -ENOMEM;
	*t = (struct utree){.owner = OWNER_NONE};
	return 0;
}

static int add_blob(struct usage_ctx *c, const struct meta_extent *x)
{
	uint32_t k, *ref;
	bool is_new;
	int r = idmap_put(&c->blob_ids, &x->blob, &k, &is_new);
	if (r < 0)
		return r;
	if (is_new) {
		struct ublob *b = vec_push(&c->blobs, sizeof(*b));
		if (!b)
			return -ENOMEM;
		*b = (struct ublob){.len = x->len, .owner = OWNER_NONE};
	}
	if (!(ref = vec_push(&c->brefs, sizeof(*ref))))
		return -ENOMEM;
	*ref = k;
	return 0;
}

/* Load tree k (once) and record its edges, blob references and own file bytes. */
static int load_tree(struct usage_ctx *c, uint32_t k)
{
	struct tree t = {0};
	struct blob_id id = c->tree_ids.ids[k];
	size_t first_child = c->edges.n, first_bref = c->brefs.n;
	struct nsums own = {0};
	int r = tree_load(c->s, &id, &t);
	if (r < 0)
		return r;

	for (size_t i = 0; r >= 0 && i < t.n_entries; i++) {
		const struct tree_entry *e = &t.entries[i];
		if (S_ISDIR(e->inode.mode)) {
			uint32_t child, *edge;
			if ((r = add_tree_id(c, &e->subtree, &child)) < 0)
				break;
			if (!(edge = vec_push(&c->edges, sizeof(*edge)))) {
				r = -ENOMEM;
				break;
			}
			*edge = child;
		} else if (S_ISREG(e->inode.mode)) {
			/* A link count of 0 cannot be in a tree; read it as 1. */
			r = nsums_add(&own, e->inode.nlink ? e->inode.nlink : 1, e->inode.size);
			for (size_t x = 0; r >= 0 && x < e->n_extents; x++)
				r = add_blob(c, &e->extents[x]);
		}
	}
	tree_release(&t);
	if (r < 0) {
		free(own.v);
		return r;
	}
	/* Only now: add_tree_id may have moved the array. */
	struct utree *u = &((struct utree *)c->trees.v)[k];
	u->first_child = first_child;
	u->n_children = c->edges.n - first_child;
	u->first_bref = first_bref;
	u->n_brefs = c->brefs.n - first_bref;
	u->own = own;
	return 0;
}

static uint32_t merge(uint32_t have, uint32_t in)
{
	if (have == OWNER_NONE)
		return in;
	return have == in ? have : OWNER_MANY;
}

static int push_pair(struct vec *st, uint32_t tree, uint32_t owner)
{
	uint32_t *p = vec_push(st, 2 * sizeof(uint32_t));
	if (!p)
		return -ENOMEM;
	p[0] = tree;
	p[1] = owner;
	return 0;
}

/* Push owner o from tree root down the DAG, stopping where nothing changes. */
static int spread_owner(struct usage_ctx *c, uint32_t root, uint32_t o)
{
	struct utree *trees = c->trees.v;
	struct ublob *blobs = c->blobs.v;
	const uint32_t *edges = c->edges.v, *brefs = c->brefs.v;
	int r;

	c->stack.n = 0;
	if ((r = push_pair(&c->stack, root, o)) < 0)
		return r;
	while (c->stack.n > 0) {
		const uint32_t *p = (uint32_t *)c->stack.v + 2 * --c->stack.n;
		struct utree *t = &trees[p[0]];
		uint32_t now = merge(t->owner, p[1]);
		if (now == t->owner)
			continue;
		t->owner = now;
		for (size_t i = 0; i < t->n_brefs; i++) {
			struct ublob *b = &blobs[brefs[t->first_bref + i]];
			b->owner = merge(b->owner, now);
		}
		for (size_t i = 0; i < t->n_children; i++)
			if ((r = push_pair(&c->stack, edges[t->first_child + i], now)) < 0)
				return r;
	}
	return 0;
}

static int nsums_merge(struct nsums *into, const struct nsums *from)
{
	int r = 0;
	for (size_t k = 0; r >= 0 && k < from->n; k++)
		r = nsums_add(into, from->v[k].nlink, from->v[k].sum);
	return r;
}

/* Totals of tree root and everything below it, each distinct tree computed once. */
static int total_bytes(struct usage_ctx *c, uint32_t root)
{
	struct utree *trees = c->trees.v;
	const uint32_t *edges = c->edges.v;
	int r;

	if (trees[root].visit == 2)
		return 0;
	c->stack.n = 0;
	uint32_t *p = vec_push(&c->stack, sizeof(uint32_t));
	if (!p)
		return -ENOMEM;
	*p = root;
	while (c->stack.n > 0) {
		uint32_t k = ((uint32_t *)c->stack.v)[c->stack.n - 1];
		struct utree *t = &trees[k];
		if (t->visit == 2) {
			c->stack.n--;
			continue;
		}
		if (t->visit == 0) {
			/* First visit: children first. */
			t->visit = 1;
			for (size_t i = 0; i < t->n_children; i++) {
				uint32_t ch = edges[t->first_child + i];
				if (trees[ch].visit == 2)
					continue;
				/* Content addressing rules out a cycle; refuse one anyway. */
				if (trees[ch].visit == 1) {
					char hex[BLOB_ID_HEX_SIZE];
					blob_id_hex(&c->tree_ids.ids[ch], hex);
					return log_error_errno(-EBADMSG,
							       "tree %s: corrupt: a cycle", hex);
				}
				if (!(p = vec_push(&c->stack, sizeof(uint32_t))))
					return -ENOMEM;
				*p = ch;
			}
			continue;
		}
		/* Second visit: every child is done. */
		if ((r = nsums_merge(&t->total, &t->own)) < 0)
			return r;
		for (size_t i = 0; i < t->n_children; i++)
			if ((r = nsums_merge(&t->total, &trees[edges[t->first_child + i]].total)) <
			    0)
				return r;
		t->visit = 2;
		c->stack.n--;
	}
	return 0;
}

static int compute(struct usage_ctx *c, const struct blob_id *roots, size_t n,
		   const struct blob_id *work, struct usage *out, struct usage_stats *st)
{
	size_t n_roots = n + (work != NULL);
	int r;

	c->roots_ix = calloc(n_roots ? n_roots : 1, sizeof(*c->roots_ix));
	if (!c->roots_ix)
		return -ENOMEM;
	for (size_t i = 0; i < n_roots; i++)
		if ((r = add_tree_id(c, i < n ? &roots[i] : work, &c->roots_ix[i])) < 0)
			return r;
	/* The table's array is the queue: trees found while loading are appended to it. */
	for (uint32_t k = 0; k < c->tree_ids.n; k++)
		if ((r = load_tree(c, k)) < 0)
			return r;

	/* Owner indexes: snapshot i is i, the working tree is n. */
	for (size_t i = 0; i < n_roots; i++)
		if ((r = spread_owner(c, c->roots_ix[i], (uint32_t)i)) < 0)
			return r;

	for (size_t i = 0; i < n; i++) {
		if ((r = total_bytes(c, c->roots_ix[i])) < 0)
			return r;
		const struct nsums *tot = &((struct utree *)c->trees.v)[c->roots_ix[i]].total;
		out[i] = (struct usage){0};
		for (size_t k = 0; k < tot->n; k++)
			out[i].logical += tot->v[k].sum / tot->v[k].nlink;
	}
	*st = (struct usage_stats){.trees = c->tree_ids.n, .blobs = c->blobs.n};
	const struct ublob *b = c->blobs.v;
	for (size_t k = 0; k < c->blobs.n; k++) {
		st->blob_bytes += b[k].len;
		if (b[k].owner < n)
			out[b[k].owner].unique += b[k].len;
	}
	return 0;
}

int usage_compute(struct store *s, const struct blob_id *roots, size_t n,
		  const struct blob_id *work, struct usage *ret, struct usage_stats *ret_stats)
{
	_cleanup_free_ struct usage *out = calloc(n ? n : 1, sizeof(*out));
	struct usage_ctx c = {.s = s};
	struct usage_stats st;
	if (!out)
		return -ENOMEM;
	if (n >= OWNER_MANY - 1)
		return -E2BIG;
	int r = compute(&c, roots, n, work, out, &st);
	ctx_release(&c);
	if (r < 0)
		return r;
	if (n)
		memcpy(ret, out, n * sizeof(*out));
	if (ret_stats)
		*ret_stats = st;
	return 0;
}
