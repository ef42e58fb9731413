/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Snapshots in the mount root, read-only (contract in snap.h). */
#include "snap.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>

#include "fs_internal.h"
#include "tree.h"
#include "treediff.h"
#include "usage.h"

/* Decoded trees kept: at most this many, and this many bytes (an estimate). */
#define TREE_CACHE_MAX 4096
#define TREE_CACHE_BYTES (32u << 20)
#define TREE_CACHE_BUCKETS 1024
#define LOC_SELF UINT32_MAX
#define TOP_INO META_ROOT_INO

/* Where an inode of a snapshot is described: entry idx of tree (LOC_SELF: its own record). */
struct loc {
	uint64_t ino;
	struct blob_id tree;
	uint32_t idx;
	uint64_t nlookup; /* the kernel's references (lookups, readdirplus entries) */
	struct loc *next;
};

struct slot {
	char *name; /* NULL once no commit names it */
	struct blob_id root;
	uint64_t time_ns;
	char *host;
	struct loc **buckets;
	size_t n_buckets, n_locs;
};

struct cached_tree {
	struct blob_id id;
	struct tree t;
	size_t bytes;
	struct cached_tree *hnext;	 /* in its bucket */
	struct cached_tree *prev, *next; /* LRU, most recent first */
};

struct snaps {
	struct store *store;
	pthread_mutex_t mu;
	struct slot *slots;
	size_t n_slots;
	size_t *order; /* listed slots, in commit order (which is slot order) */
	size_t n_order;
	uint64_t seq; /* of the commit the list is from */
	bool has_work;
	struct blob_id work; /* that commit's working tree */
	/* Sizes (snaps_usage), for the list of commit usage_seq; usage_mu serializes their
	 * computation, which runs without mu. */
	pthread_mutex_t usage_mu;
	struct usage *usage;
	size_t n_usage;
	uint64_t usage_seq;
	struct cached_tree *buckets[TREE_CACHE_BUCKETS];
	struct cached_tree *lru_first, *lru_last;
	unsigned n_cached;
	size_t cached_bytes;
};

int snaps_new(struct store *s, struct snaps **ret)
{
	struct snaps *sn = calloc(1, sizeof(*sn));
	if (!sn)
		return -ENOMEM;
	sn->store = s;
	/* Recursive: a readdir callback takes the kernel's reference (snaps_ref) under it. */
	pthread_mutexattr_t a;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&sn->mu, &a);
	pthread_mutexattr_destroy(&a);
	pthread_mutex_init(&sn->usage_mu, NULL);
	*ret = sn;
	return 0;
}

void snaps_free(struct snaps *sn)
{
	if (!sn)
		return;
	for (size_t k = 0; k < sn->n_slots; k++) {
		struct slot *sl = &sn->slots[k];
		for (size_t b = 0; b < sl->n_buckets; b++)
			while (sl->buckets[b]) {
				struct loc *l = sl->buckets[b];
				sl->buckets[b] = l->next;
				free(l);
			}
		free(sl->buckets);
		free(sl->name);
		free(sl->host);
	}
	while (sn->lru_first) {
		struct cached_tree *c = sn->lru_first;
		sn->lru_first = c->next;
		tree_release(&c->t);
		free(c);
	}
	free(sn->slots);
	free(sn->order);
	free(sn->usage);
	pthread_mutex_destroy(&sn->usage_mu);
	pthread_mutex_destroy(&sn->mu);
	free(sn);
}

/* Append to stale (each NUL-terminated) every listed name that the new list (names[i] in
 * slot order[i], n of them) maps to another slot or to none: a name keeps its meaning
 * exactly when its slot keeps the name. mu held. */
static int stale_names(struct snaps *sn, char **names, const size_t *order, size_t n,
		       struct buf *stale)
{
	_cleanup_free_ const char **now = calloc(sn->n_slots + n + 1, sizeof(*now));
	if (!now)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		now[order[i]] = names[i];
	for (size_t i = 0; i < sn->n_order; i++) {
		const char *name = sn->slots[sn->order[i]].name;
		const char *then = now[sn->order[i]];
		if (then && !strcmp(then, name))
			continue;
		int r = buf_append(stale, name, strlen(name) + 1);
		if (r < 0)
			return r;
	}
	return 0;
}

int snaps_update(struct snaps *sn, const struct commit *c, struct buf *stale)
{
	_cleanup_free_ size_t *order = calloc(c->n_snaps ? c->n_snaps : 1, sizeof(*order));
	_cleanup_free_ bool *taken = NULL;
	int r = 0;
	if (!order)
		return -ENOMEM;
	pthread_mutex_lock(&sn->mu);
	size_t n_slots = sn->n_slots;
	taken = calloc(sn->n_slots + c->n_snaps + 1, sizeof(*taken));
	struct slot *v = reallocarray(sn->slots, sn->n_slots + c->n_snaps + 1, sizeof(*v));
	if (v)
		sn->slots = v;
	if (!taken || !v) {
		r = -ENOMEM;
		goto out;
	}
	/* A snapshot keeps its slot (and so its nodes) when renamed: same root, same time. */
	for (size_t i = 0; i < c->n_snaps; i++) {
		const struct snapshot_ref *s = &c->snaps[i];
		size_t k = 0;
		while (k < n_slots && (taken[k] || s->time_ns != sn->slots[k].time_ns ||
				       memcmp(s->root.b, sn->slots[k].root.b, BLOB_ID_SIZE)))
			k++;
		if (k == n_slots) {
			if (n_slots > (SNAP_NODE_BIT >> SNAP_SLOT_SHIFT) - 1) {
				r = -EOVERFLOW;
				goto out;
			}
			sn->slots[n_slots] = (struct slot){.root = s->root, .time_ns = s->time_ns};
			if (!(sn->slots[n_slots].host = strdup(s->host ? s->host : ""))) {
				r = -ENOMEM;
				goto out;
			}
			k = n_slots++;
		}
		taken[k] = true;
		order[i] = k;
	}
	/* Names last, once nothing can fail: an error leaves the old list whole. */
	char **names = calloc(c->n_snaps + 1, sizeof(*names));
	for (size_t i = 0; names && i < c->n_snaps; i++)
		if (!(names[i] = strdup(c->snaps[i].name)))
			r = -ENOMEM;
	if (!names || r < 0) {
		for (size_t i = 0; names && i < c->n_snaps; i++)
			free(names[i]);
		free(names);
		r = -ENOMEM;
		goto out;
	}
	if (stale && (r = stale_names(sn, names, order, c->n_snaps, stale)) < 0) {
		for (size_t i = 0; i < c->n_snaps; i++)
			free(names[i]);
		free(names);
		goto out;
	}
	sn->n_slots = n_slots;
	for (size_t k = 0; k < sn->n_slots; k++) {
		free(sn->slots[k].name);
		sn->slots[k].name = NULL;
	}
	for (size_t i = 0; i < c->n_snaps; i++)
		sn->slots[order[i]].name = names[i];
	free(names);
	free(sn->order);
	sn->order = TAKE_PTR(order);
	sn->n_order = c->n_snaps;
	sn->seq = c->seq;
	sn->has_work = c->has_root;
	sn->work = c->root;
out:
	/* On failure, drop the slots just made: nothing names them yet. */
	for (size_t k = sn->n_slots; r < 0 && k < n_slots; k++)
		free(sn->slots[k].host);
	pthread_mutex_unlock(&sn->mu);
	return r;
}

static int append(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

int snaps_list(struct snaps *sn, size_t first, size_t max, struct buf *ret)
{
	char line[64];
	pthread_mutex_lock(&sn->mu);
	snprintf(line, sizeof(line), "seq %" PRIu64 "\n", sn->seq);
	int r = append(ret, line);
	for (size_t i = first; r >= 0 && i < sn->n_order && i - first < max; i++) {
		const struct slot *sl = &sn->slots[sn->order[i]];
		snprintf(line, sizeof(line), "\t%" PRIu64 "\t", sl->time_ns);
		if ((r = append(ret, sl->name)) >= 0 && (r = append(ret, line)) >= 0 &&
		    (r = append(ret, sl->host)) >= 0)
			r = append(ret, "\n");
	}
	pthread_mutex_unlock(&sn->mu);
	return r;
}

/* Compute the sizes of the current list unless known. usage_mu held. */
static int usage_refresh(struct snaps *sn)
{
	pthread_mutex_lock(&sn->mu);
	uint64_t seq = sn->seq;
	size_t n = sn->n_order;
	bool known = sn->usage && sn->usage_seq == seq;
	struct blob_id work = sn->work, *roots = known ? NULL : calloc(n + 1, sizeof(*roots));
	bool has_work = sn->has_work;
	for (size_t i = 0; roots && i < n; i++)
		roots[i] = sn->slots[sn->order[i]].root;
	pthread_mutex_unlock(&sn->mu);
	if (known)
		return 0;
	struct usage *u = roots ? calloc(n + 1, sizeof(*u)) : NULL;
	int r = u ? usage_compute(sn->store, roots, n, has_work ? &work : NULL, u, NULL) : -ENOMEM;
	free(roots);
	if (r < 0) {
		free(u);
		return r;
	}
	free(sn->usage);
	sn->usage = u;
	sn->n_usage = n;
	sn->usage_seq = seq;
	return 0;
}

int snaps_usage(struct snaps *sn, size_t first, size_t max, struct buf *ret)
{
	char line[80];
	pthread_mutex_lock(&sn->usage_mu);
	int r = usage_refresh(sn);
	snprintf(line, sizeof(line), "seq %" PRIu64 "\n", sn->usage_seq);
	if (r >= 0)
		r = append(ret, line);
	for (size_t i = first; r >= 0 && i < sn->n_usage && i - first < max; i++) {
		snprintf(line, sizeof(line), "%" PRIu64 "\t%" PRIu64 "\n", sn->usage[i].logical,
			 sn->usage[i].unique);
		r = append(ret, line);
	}
	pthread_mutex_unlock(&sn->usage_mu);
	return r;
}

uint64_t snaps_seq(struct snaps *sn)
{
	pthread_mutex_lock(&sn->mu);
	uint64_t seq = sn->seq;
	pthread_mutex_unlock(&sn->mu);
	return seq;
}

size_t snaps_count(struct snaps *sn)
{
	pthread_mutex_lock(&sn->mu);
	size_t n = sn->n_order;
	pthread_mutex_unlock(&sn->mu);
	return n;
}

/* ---- locked helpers ------------------------------------------------------------------- */

static struct loc *loc_find(struct slot *sl, uint64_t ino);
static void loc_put(struct slot *sl, uint64_t ino);

/* The slot of a node, or NULL. */
static struct slot *node_slot(struct snaps *sn, uint64_t node)
{
	size_t slot = (size_t)((node & ~SNAP_NODE_BIT) >> SNAP_SLOT_SHIFT);
	return snap_is_node(node) && slot < sn->n_slots ? &sn->slots[slot] : NULL;
}

void snaps_ref(struct snaps *sn, uint64_t node)
{
	pthread_mutex_lock(&sn->mu);
	struct slot *sl = node_slot(sn, node);
	struct loc *l = sl ? loc_find(sl, node & SNAP_INO_MAX) : NULL;
	if (l)
		l->nlookup++;
	pthread_mutex_unlock(&sn->mu);
}

void snaps_forget(struct snaps *sn, uint64_t node, uint64_t nlookup)
{
	pthread_mutex_lock(&sn->mu);
	struct slot *sl = node_slot(sn, node);
	struct loc *l = sl ? loc_find(sl, node & SNAP_INO_MAX) : NULL;
	if (l) {
		l->nlookup = nlookup > l->nlookup ? 0 : l->nlookup - nlookup;
		loc_put(sl, l->ino);
	}
	pthread_mutex_unlock(&sn->mu);
}

static uint64_t make_node(size_t slot, uint64_t ino)
{
	return SNAP_NODE_BIT | (uint64_t)slot << SNAP_SLOT_SHIFT | ino;
}

static struct loc *loc_find(struct slot *sl, uint64_t ino)
{
	if (!sl->n_buckets)
		return NULL;
	for (struct loc *l = sl->buckets[ino % sl->n_buckets]; l; l = l->next)
		if (l->ino == ino)
			return l;
	return NULL;
}

/* The record of ino, made if missing (as not referenced by the kernel yet). NULL: ENOMEM. */
static struct loc *loc_get(struct slot *sl, uint64_t ino, const struct blob_id *tree, uint32_t idx)
{
	struct loc *l = loc_find(sl, ino);
	if (l)
		return l; /* a hard link seen before: the same inode */
	if (sl->n_locs >= 2 * sl->n_buckets) {
		size_t nb = sl->n_buckets ? 4 * sl->n_buckets : 256;
		struct loc **b = calloc(nb, sizeof(*b));
		if (!b)
			return NULL;
		for (size_t k = 0; k < sl->n_buckets; k++)
			while (sl->buckets[k]) {
				l = sl->buckets[k];
				sl->buckets[k] = l->next;
				l->next = b[l->ino % nb];
				b[l->ino % nb] = l;
			}
		free(sl->buckets);
		sl->buckets = b;
		sl->n_buckets = nb;
	}
	l = malloc(sizeof(*l));
	if (!l)
		return NULL;
	*l = (struct loc){.ino = ino, .tree = *tree, .idx = idx};
	l->next = sl->buckets[ino % sl->n_buckets];
	sl->buckets[ino % sl->n_buckets] = l;
	sl->n_locs++;
	return l;
}

/* Drop the record of ino once the kernel holds no reference to it. */
static void loc_put(struct slot *sl, uint64_t ino)
{
	if (!sl->n_buckets)
		return;
	for (struct loc **pp = &sl->buckets[ino % sl->n_buckets]; *pp; pp = &(*pp)->next) {
		struct loc *l = *pp;
		if (l->ino != ino)
			continue;
		if (l->nlookup == 0) {
			*pp = l->next;
			free(l);
			sl->n_locs--;
		}
		return;
	}
}

static size_t cache_bucket(const struct blob_id *id)
{
	uint64_t h;
	memcpy(&h, id->b, sizeof(h)); /* a hash already */
	return (size_t)(h % TREE_CACHE_BUCKETS);
}

/* Unlink c from the LRU list and its bucket. */
static void cache_unlink(struct snaps *sn, struct cached_tree *c)
{
	for (struct cached_tree **pp = &sn->buckets[cache_bucket(&c->id)]; *pp; pp = &(*pp)->hnext)
		if (*pp == c) {
			*pp = c->hnext;
			break;
		}
	if (c->prev)
		c->prev->next = c->next;
	else
		sn->lru_first = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		sn->lru_last = c->prev;
}

static void cache_push(struct snaps *sn, struct cached_tree *c)
{
	size_t b = cache_bucket(&c->id);
	c->hnext = sn->buckets[b];
	sn->buckets[b] = c;
	c->prev = NULL;
	c->next = sn->lru_first;
	if (sn->lru_first)
		sn->lru_first->prev = c;
	else
		sn->lru_last = c;
	sn->lru_first = c;
}

/* What a decoded tree costs in memory, roughly. */
static size_t tree_bytes(const struct tree *t)
{
	size_t n = sizeof(struct cached_tree) + t->n_entries * sizeof(struct tree_entry);
	for (size_t k = 0; k < t->n_entries; k++) {
		const struct tree_entry *e = &t->entries[k];
		n += strlen(e->name) + 1 + e->n_extents * sizeof(struct meta_extent) +
		     e->n_xattrs * sizeof(struct tree_xattr);
		for (size_t x = 0; x < e->n_xattrs; x++)
			n += strlen(e->xattrs[x].name) + 1 + e->xattrs[x].len;
		if (e->target)
			n += strlen(e->target) + 1;
	}
	return n;
}

/* A decoded tree, valid until the next call. */
static int get_tree(struct snaps *sn, const struct blob_id *id, struct tree **ret)
{
	for (struct cached_tree *c = sn->buckets[cache_bucket(id)]; c; c = c->hnext) {
		if (memcmp(c->id.b, id->b, BLOB_ID_SIZE))
			continue;
		cache_unlink(sn, c);
		cache_push(sn, c);
		*ret = &c->t;
		return 0;
	}
	struct cached_tree *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	int r = tree_load(sn->store, id, &c->t);
	if (r < 0) {
		free(c);
		return r;
	}
	c->id = *id;
	c->bytes = tree_bytes(&c->t);
	cache_push(sn, c);
	sn->n_cached++;
	sn->cached_bytes += c->bytes;
	/* Evict the least recently used, never the tree just loaded. */
	while (sn->lru_last != c &&
	       (sn->n_cached > TREE_CACHE_MAX || sn->cached_bytes > TREE_CACHE_BYTES)) {
		struct cached_tree *old = sn->lru_last;
		cache_unlink(sn, old);
		sn->n_cached--;
		sn->cached_bytes -= old->bytes;
		tree_release(&old->t);
		free(old);
	}
	*ret = &c->t;
	return 0;
}

struct resolved {
	size_t slot;
	uint64_t node;
	const struct tree_entry *e;
	struct blob_id subtree; /* directories */
};

/* Find node's entry. The entry lives in the tree cache: valid until the next get_tree. */
static int resolve(struct snaps *sn, uint64_t node, struct resolved *ret)
{
	size_t slot = (size_t)((node & ~SNAP_NODE_BIT) >> SNAP_SLOT_SHIFT);
	uint64_t ino = node & SNAP_INO_MAX;
	if (!snap_is_node(node) || slot >= sn->n_slots || ino == 0)
		return -ENOENT;
	struct slot *sl = &sn->slots[slot];
	struct loc *l = loc_find(sl, ino);
	if (!l && ino == TOP_INO && !(l = loc_get(sl, ino, &sl->root, LOC_SELF)))
		return -ENOMEM;
	if (!l)
		return -ENOENT; /* a node the kernel forgot, or from before a remount: stale */
	struct tree *t;
	int r = get_tree(sn, &l->tree, &t);
	if (r < 0)
		return r;
	if (l->idx != LOC_SELF && l->idx >= t->n_entries)
		return -EIO;
	*ret = (struct resolved){.slot = slot, .node = node};
	ret->e = l->idx == LOC_SELF ? &t->self : &t->entries[l->idx];
	ret->subtree = l->idx == LOC_SELF ? l->tree : ret->e->subtree;
	return 0;
}

static void entry_stat(struct snaps *sn, size_t slot, uint64_t node, const struct tree_entry *e,
		       struct stat *st)
{
	fs_inode_to_stat(&e->inode, st);
	st->st_ino = node;
	if ((node & SNAP_INO_MAX) == TOP_INO) {
		/* The snapshot's directory shows when it was taken. */
		uint64_t t = sn->slots[slot].time_ns;
		st->st_mtim.tv_sec = (time_t)(t / 1000000000u);
		st->st_mtim.tv_nsec = (long)(t % 1000000000u);
	}
}

/* The tree of directory node (resolved). */
static int dir_tree(struct snaps *sn, const struct resolved *d, struct tree **ret)
{
	if (!S_ISDIR(d->e->inode.mode))
		return -ENOTDIR;
	struct blob_id id = d->subtree; /* d->e dies with the next get_tree */
	return get_tree(sn, &id, ret);
}

/* ---- operations ----------------------------------------------------------------------- */

int snaps_root_lookup(struct snaps *sn, const char *name, struct fs_entry *ret)
{
	struct resolved d;
	int r = -ENOENT;
	pthread_mutex_lock(&sn->mu);
	for (size_t i = 0; i < sn->n_order; i++) {
		size_t k = sn->order[i];
		if (strcmp(sn->slots[k].name, name))
			continue;
		ret->node = make_node(k, TOP_INO);
		r = resolve(sn, ret->node, &d);
		if (r >= 0) {
			entry_stat(sn, k, ret->node, d.e, &ret->attr);
			loc_find(&sn->slots[k], TOP_INO)->nlookup++;
		}
		break;
	}
	pthread_mutex_unlock(&sn->mu);
	return r;
}

int snaps_root_next(struct snaps *sn, size_t from, size_t *ret_slot, char **ret_name,
		    struct fs_entry *ret)
{
	struct resolved d;
	int r = -ENOENT;
	pthread_mutex_lock(&sn->mu);
	size_t slot = from;
	while (slot < sn->n_slots && !sn->slots[slot].name)
		slot++;
	if (slot < sn->n_slots) {
		ret->node = make_node(slot, TOP_INO);
		r = resolve(sn, ret->node, &d);
		if (r >= 0)
			entry_stat(sn, slot, ret->node, d.e, &ret->attr);
		if (r >= 0 && !(*ret_name = strdup(sn->slots[slot].name)))
			r = -ENOMEM;
		*ret_slot = slot;
	}
	pthread_mutex_unlock(&sn->mu);
	return r;
}

int snaps_getattr(struct snaps *sn, uint64_t node, struct stat *ret)
{
	struct resolved d;
	pthread_mutex_lock(&sn->mu);
	int r = resolve(sn, node, &d);
	if (r >= 0)
		entry_stat(sn, d.slot, node, d.e, ret);
	pthread_mutex_unlock(&sn->mu);
	return r;
}

static int find_entry(const struct tree *t, const char *name)
{
	size_t lo = 0, hi = t->n_entries;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, t->entries[mid].name);
		if (c == 0)
			return (int)mid;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return -1;
}

int snaps_lookup(struct snaps *sn, uint64_t parent, const char *name, struct fs_entry *ret)
{
	struct resolved d;
	struct tree *t;
	pthread_mutex_lock(&sn->mu);
	int r = resolve(sn, parent, &d);
	if (r >= 0)
		r = dir_tree(sn, &d, &t);
	if (r >= 0) {
		int k = find_entry(t, name);
		const struct tree_entry *e = k >= 0 ? &t->entries[k] : NULL;
		struct blob_id tid = d.subtree;
		struct loc *l = NULL;
		if (!e)
			r = -ENOENT;
		else if (e->inode.ino > SNAP_INO_MAX)
			r = -EOVERFLOW;
		else if (!(l = loc_get(&sn->slots[d.slot], e->inode.ino, &tid, (uint32_t)k)))
			r = -ENOMEM;
		if (r >= 0) {
			l->nlookup++;
			ret->node = make_node(d.slot, e->inode.ino);
			entry_stat(sn, d.slot, ret->node, e, &ret->attr);
		}
	}
	pthread_mutex_unlock(&sn->mu);
	return r;
}

int snaps_readdir(struct snaps *sn, uint64_t node, uint64_t cookie,
		  int (*fn)(uint64_t cookie, const char *name, const struct fs_entry *e, void *ud),
		  void *ud)
{
	struct resolved d;
	struct tree *t;
	struct fs_entry fe;
	pthread_mutex_lock(&sn->mu);
	int r = resolve(sn, node, &d);
	if (r >= 0) {
		fe.node = node;
		entry_stat(sn, d.slot, node, d.e, &fe.attr);
		r = dir_tree(sn, &d, &t);
	}
	/* fn only adds to a reply buffer: it may run under the lock. */
	if (r >= 0 && cookie < 1)
		r = fn(1, ".", &fe, ud);
	if (r == 0 && cookie < 2)
		r = fn(2, "..", &fe, ud);
	struct blob_id tid = r == 0 ? d.subtree : (struct blob_id){{0}};
	struct slot *sl = r == 0 ? &sn->slots[d.slot] : NULL;
	for (size_t k = cookie > 2 ? cookie - 2 : 0; r == 0 && k < t->n_entries; k++) {
		const struct tree_entry *e = &t->entries[k];
		if (e->inode.ino > SNAP_INO_MAX) {
			r = -EOVERFLOW;
			break;
		}
		/* A record for the kernel's reference if fn takes one (readdirplus does, through
		 * snaps_ref); none is kept for an entry merely listed. */
		bool known = loc_find(sl, e->inode.ino) != NULL;
		if (!loc_get(sl, e->inode.ino, &tid, (uint32_t)k)) {
			r = -ENOMEM;
			break;
		}
		fe.node = make_node(d.slot, e->inode.ino);
		entry_stat(sn, d.slot, fe.node, e, &fe.attr);
		r = fn(k + 3, e->name, &fe, ud);
		if (!known)
			loc_put(sl, e->inode.ino);
	}
	pthread_mutex_unlock(&sn->mu);
	return r < 0 ? r : 0;
}

int snaps_readlink(struct snaps *sn, uint64_t node, char **ret)
{
	struct resolved d;
	pthread_mutex_lock(&sn->mu);
	int r = resolve(sn, node, &d);
	if (r >= 0 && !S_ISLNK(d.e->inode.mode))
		r = -EINVAL;
	if (r >= 0 && !(*ret = strdup(d.e->target)))
		r = -ENOMEM;
	pthread_mutex_unlock(&sn->mu);
	return r;
}

int snaps_extents(struct snaps *sn, uint64_t node, uint64_t *ret_size, struct meta_extent **ret,
		  size_t *ret_n)
{
	struct resolved d;
	pthread_mutex_lock(&sn->mu);
	int r = resolve(sn, node, &d);
	if (r >= 0 && S_ISDIR(d.e->inode.mode))
		r = -EISDIR;
	else if (r >= 0 && !S_ISREG(d.e->inode.mode))
		r = -EINVAL;
	if (r >= 0) {
		size_t n = d.e->n_extents;
		*ret = malloc((n ? n : 1) * sizeof(**ret));
		if (!*ret)
			r = -ENOMEM;
		else {
			if (n)
				memcpy(*ret, d.e->extents, n * sizeof(**ret));
			*ret_n = n;
			*ret_size = d.e->inode.size;
		}
	}
	pthread_mutex_unlock(&sn->mu);
	return r;
}

/* The hidden attribute user.cairn.id (not listed): a directory's tree id, else the digest of
 * the entry's content and attributes (cairn diff prunes and compares with it). The name is
 * reserved (fsops_setxattr refuses user.cairn.* in current/), so no tree holds it. */
static ssize_t id_xattr(const struct resolved *d, void *buf, size_t size)
{
	uint8_t digest[TREEDIFF_DIGEST_SIZE];
	char hex[2 * TREEDIFF_DIGEST_SIZE + 1];
	if (S_ISDIR(d->e->inode.mode))
		memcpy(digest, d->subtree.b, sizeof(digest));
	else
		tree_entry_digest(d->e, digest);
	hex_encode(digest, sizeof(digest), hex);
	if (size && size < sizeof(hex) - 1)
		return -ERANGE;
	if (size)
		memcpy(buf, hex, sizeof(hex) - 1);
	return (ssize_t)(sizeof(hex) - 1);
}

ssize_t snaps_getxattr(struct snaps *sn, uint64_t node, const char *name, void *buf, size_t size)
{
	struct resolved d;
	pthread_mutex_lock(&sn->mu);
	ssize_t r = resolve(sn, node, &d);
	if (r >= 0) {
		r = -ENODATA;
		if (!strcmp(name, TREEDIFF_ID_XATTR))
			r = id_xattr(&d, buf, size);
		for (size_t k = 0; r == -ENODATA && k < d.e->n_xattrs; k++) {
			const struct tree_xattr *x = &d.e->xattrs[k];
			if (strcmp(x->name, name))
				continue;
			if (size && size < x->len)
				r = -ERANGE;
			else {
				if (size && x->len)
					memcpy(buf, x->value, x->len);
				r = (ssize_t)x->len;
			}
			break;
		}
	}
	pthread_mutex_unlock(&sn->mu);
	return r;
}

ssize_t snaps_listxattr(struct snaps *sn, uint64_t node, char *buf, size_t size)
{
	struct resolved d;
	pthread_mutex_lock(&sn->mu);
	ssize_t r = resolve(sn, node, &d);
	if (r >= 0) {
		size_t len = 0;
		for (size_t k = 0; k < d.e->n_xattrs; k++)
			len += strlen(d.e->xattrs[k].name) + 1;
		if (size && size < len)
			r = -ERANGE;
		else {
			for (size_t k = 0, at = 0; size && k < d.e->n_xattrs; k++) {
				size_t n = strlen(d.e->xattrs[k].name) + 1;
				memcpy(buf + at, d.e->xattrs[k].name, n);
				at += n;
			}
			r = (ssize_t)len;
		}
	}
	pthread_mutex_unlock(&sn->mu);
	return r;
}
