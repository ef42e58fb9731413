/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The in-memory backend (backend_mem_new in backend.h): a chained hash table of key → bytes
 * behind one mutex. It exists for unit tests, so it favours obviously-right over fast, but it
 * keeps the full contract (key rules, ranges, BACKEND_PUT_EXCLUSIVE, list by prefix) so that
 * code tested against it behaves the same on a directory or on S3.
 */
#include "backend.h"

#include <assert.h>
#include <inttypes.h>
#include <pthread.h>

struct mem_obj {
	struct mem_obj *next;
	char *key;
	uint8_t *data;
	size_t len;
};

struct mem_backend {
	struct backend base;
	pthread_mutex_t lock;
	struct mem_obj **buckets;
	size_t n_buckets; /* a power of two */
	size_t n_objs;
};

static const struct backend_type mem_type;

static struct mem_backend *to_mem(struct backend *b)
{
	assert(b->type == &mem_type);
	return (struct mem_backend *)b;
}

/* FNV-1a: keys are short and not chosen by an adversary here. */
static size_t key_hash(const char *key)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (const char *p = key; *p; p++) {
		h ^= (uint8_t)*p;
		h *= 0x100000001b3ull;
	}
	return (size_t)h;
}

static void mem_obj_free(struct mem_obj *o)
{
	if (!o)
		return;
	free(o->key);
	free(o->data);
	free(o);
}

static void mem_obj_freep(struct mem_obj **o)
{
	mem_obj_free(*o);
}

/* Called with the lock held. Returns the link that points at key's object, or at the NULL
 * that ends key's chain when it is absent, so callers can insert or unlink in place. */
static struct mem_obj **mem_find(struct mem_backend *m, const char *key)
{
	struct mem_obj **p = &m->buckets[key_hash(key) & (m->n_buckets - 1)];
	while (*p && strcmp((*p)->key, key) != 0)
		p = &(*p)->next;
	return p;
}

/* Called with the lock held. Doubling when full keeps chains short; a failed allocation only
 * leaves the table slower, so it is not an error. */
static void mem_maybe_grow(struct mem_backend *m)
{
	struct mem_obj **nb;
	size_t nn;

	if (m->n_objs < m->n_buckets || m->n_buckets > SIZE_MAX / 2 / sizeof(*nb))
		return;
	nn = m->n_buckets * 2;
	nb = calloc(nn, sizeof(*nb));
	if (!nb)
		return;
	for (size_t i = 0; i < m->n_buckets; i++) {
		struct mem_obj *o = m->buckets[i];
		while (o) {
			struct mem_obj *next = o->next;
			size_t h = key_hash(o->key) & (nn - 1);
			o->next = nb[h];
			nb[h] = o;
			o = next;
		}
	}
	free(m->buckets);
	m->buckets = nb;
	m->n_buckets = nn;
}

static int mem_check_key(struct mem_backend *m, const char *key)
{
	if (backend_key_valid(key))
		return 0;
	return log_error_errno(-EINVAL, "%s: invalid key \"%s\"", m->base.location,
			       key ? key : "(null)");
}

static int mem_put(struct backend *b, const char *key, const void *data, size_t len, unsigned flags)
{
	struct mem_backend *m = to_mem(b);
	_cleanup_(mem_obj_freep) struct mem_obj *o = NULL;
	struct mem_obj **p, *old = NULL;
	int r;

	r = mem_check_key(m, key);
	if (r < 0)
		return r;

	/* Copy outside the lock: other threads' operations need not wait for a large memcpy. */
	o = calloc(1, sizeof(*o));
	if (!o)
		return log_error_errno(-ENOMEM, "%s: put %s: out of memory", b->location, key);
	o->key = strdup(key);
	o->data = malloc(len ? len : 1);
	if (!o->key || !o->data)
		return log_error_errno(-ENOMEM, "%s: put %s: out of memory", b->location, key);
	if (len)
		memcpy(o->data, data, len);
	o->len = len;

	pthread_mutex_lock(&m->lock);
	p = mem_find(m, key);
	if (*p && (flags & BACKEND_PUT_EXCLUSIVE)) {
		pthread_mutex_unlock(&m->lock);
		return -EEXIST;
	}
	if (*p) {
		/* Replace in place: readers see the old or the new object, never a mix. */
		old = *p;
		o->next = old->next;
		*p = TAKE_PTR(o);
	} else {
		*p = TAKE_PTR(o);
		m->n_objs++;
		mem_maybe_grow(m);
	}
	pthread_mutex_unlock(&m->lock);

	mem_obj_free(old);
	return 0;
}

static int mem_get(struct backend *b, const char *key, uint64_t offset, uint64_t len,
		   struct buf *ret)
{
	struct mem_backend *m = to_mem(b);
	struct mem_obj *o;
	uint64_t n;
	int r;

	r = mem_check_key(m, key);
	if (r < 0)
		return r;

	pthread_mutex_lock(&m->lock);
	o = *mem_find(m, key);
	if (!o) {
		r = -ENOENT;
		goto out;
	}
	if (offset > o->len) {
		r = log_error_errno(-EINVAL, "%s: get %s: offset %" PRIu64 " past the end (%zu)",
				    b->location, key, offset, o->len);
		goto out;
	}
	n = MIN(len, o->len - offset);
	r = buf_append(ret, o->data + offset, (size_t)n);
	if (r < 0)
		log_error_errno(r, "%s: get %s: out of memory", b->location, key);
out:
	pthread_mutex_unlock(&m->lock);
	return r;
}

static int mem_head(struct backend *b, const char *key, uint64_t *ret_size)
{
	struct mem_backend *m = to_mem(b);
	struct mem_obj *o;
	int r;

	r = mem_check_key(m, key);
	if (r < 0)
		return r;

	pthread_mutex_lock(&m->lock);
	o = *mem_find(m, key);
	if (o)
		*ret_size = o->len;
	pthread_mutex_unlock(&m->lock);
	return o ? 0 : -ENOENT;
}

static int mem_del(struct backend *b, const char *key)
{
	struct mem_backend *m = to_mem(b);
	struct mem_obj **p, *o;
	int r;

	r = mem_check_key(m, key);
	if (r < 0)
		return r;

	pthread_mutex_lock(&m->lock);
	p = mem_find(m, key);
	o = *p;
	if (o) {
		*p = o->next;
		m->n_objs--;
	}
	pthread_mutex_unlock(&m->lock);

	if (!o)
		return -ENOENT;
	mem_obj_free(o);
	return 0;
}

struct mem_entry {
	char *key;
	uint64_t size;
};

static void mem_entries_free(struct mem_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(e[i].key);
	free(e);
}

static int mem_list(struct backend *b, const char *prefix, backend_list_fn fn, void *userdata)
{
	struct mem_backend *m = to_mem(b);
	struct mem_entry *e = NULL;
	size_t n = 0, plen;
	int r = 0;

	if (!backend_prefix_valid(prefix))
		return log_error_errno(-EINVAL, "%s: list: invalid prefix \"%s\"", b->location,
				       prefix ? prefix : "(null)");
	plen = strlen(prefix);

	/*
	 * Take a copy of the matching keys, then call fn without the lock: fn may well call back
	 * into this backend (delete what it is shown, say), which would deadlock otherwise.
	 */
	pthread_mutex_lock(&m->lock);
	e = calloc(m->n_objs ? m->n_objs : 1, sizeof(*e));
	if (!e)
		r = -ENOMEM;
	for (size_t i = 0; e && i < m->n_buckets && r == 0; i++)
		for (struct mem_obj *o = m->buckets[i]; o; o = o->next) {
			if (strncmp(o->key, prefix, plen) != 0)
				continue;
			e[n].key = strdup(o->key);
			if (!e[n].key) {
				r = -ENOMEM;
				break;
			}
			e[n++].size = o->len;
		}
	pthread_mutex_unlock(&m->lock);

	if (r < 0) {
		mem_entries_free(e, n);
		return log_error_errno(r, "%s: list %s: out of memory", b->location, prefix);
	}
	for (size_t i = 0; i < n && r >= 0; i++)
		r = fn(e[i].key, e[i].size, userdata);
	mem_entries_free(e, n);
	return r < 0 ? r : 0;
}

static void mem_free(struct backend *b)
{
	struct mem_backend *m = to_mem(b);

	for (size_t i = 0; i < m->n_buckets; i++) {
		struct mem_obj *o = m->buckets[i];
		while (o) {
			struct mem_obj *next = o->next;
			mem_obj_free(o);
			o = next;
		}
	}
	free(m->buckets);
	pthread_mutex_destroy(&m->lock);
	free(m->base.location);
	free(m);
}

static const struct backend_type mem_type = {
	.name = "mem",
	.put = mem_put,
	.get = mem_get,
	.head = mem_head,
	.del = mem_del,
	.list = mem_list,
	.free = mem_free,
};

int backend_mem_new(struct backend **ret)
{
	_cleanup_free_ struct mem_backend *m = NULL;
	_cleanup_free_ struct mem_obj **buckets = NULL;
	_cleanup_free_ char *location = NULL;
	size_t n_buckets = 64;

	m = calloc(1, sizeof(*m));
	buckets = calloc(n_buckets, sizeof(*buckets));
	location = strdup("mem:");
	if (!m || !buckets || !location)
		return -ENOMEM;
	if (pthread_mutex_init(&m->lock, NULL) != 0)
		return -ENOMEM;

	m->base.type = &mem_type;
	m->base.location = TAKE_PTR(location);
	m->buckets = TAKE_PTR(buckets);
	m->n_buckets = n_buckets;
	*ret = &TAKE_PTR(m)->base;
	return 0;
}
