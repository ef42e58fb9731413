/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The fault-injecting wrapper (backend_fault_new in backend.h), for tests of what the layers
 * above do when a backend fails. It owns an inner backend and passes every call through until
 * a fault is armed:
 *   - fail rules: the next `count` calls of one operation whose key (for list: whose prefix)
 *     starts with a given prefix return a given error without reaching the inner backend;
 *   - a crash point: after N more successful puts the "process dies": that put and every
 *     later call of any kind fail with -EIO and never reach the inner backend, so what the
 *     inner backend holds is exactly what a crash at that instant would have left;
 *   - a bit flip: the next get that returns a given byte of a given key returns it with bit 0
 *     inverted, as corruption in transit would.
 * The fault state has its own mutex; calls into the inner backend are made without it, so the
 * wrapper adds no serialisation the real backends do not have.
 */
#include "backend.h"

#include <assert.h>
#include <pthread.h>
#include <stdio.h>

struct fault_rule {
	struct fault_rule *next;
	enum backend_op op;
	char *prefix; /* NULL: any key */
	int error;
	unsigned count; /* calls left to fail */
};

struct fault_backend {
	struct backend base;
	struct backend *inner;

	pthread_mutex_t lock;	  /* protects everything below */
	struct fault_rule *rules; /* in arming order; the first match is consumed */
	bool crash_armed;
	unsigned puts_left; /* successful puts still allowed before the crash */
	bool crashed;
	char *flip_key; /* NULL: no flip armed */
	uint64_t flip_offset;
	unsigned calls[_BACKEND_OP_MAX];
};

static const struct backend_type fault_type;

static struct fault_backend *to_fault(struct backend *b)
{
	assert(b->type == &fault_type);
	return (struct fault_backend *)b;
}

static const char *const op_names[_BACKEND_OP_MAX] = {
	[BACKEND_OP_PUT] = "put",    [BACKEND_OP_GET] = "get",	 [BACKEND_OP_HEAD] = "head",
	[BACKEND_OP_DEL] = "delete", [BACKEND_OP_LIST] = "list",
};

static void rules_free(struct fault_rule *r)
{
	while (r) {
		struct fault_rule *next = r->next;
		free(r->prefix);
		free(r);
		r = next;
	}
}

/*
 * Called at the start of every operation: counts it and decides whether it fails. Returns 0
 * to pass the call through or the error to return. A put that passes reserves one of the
 * puts left before the crash point (see fault_put_done), so that concurrent puts cannot
 * together overshoot it.
 */
static int fault_enter(struct fault_backend *f, enum backend_op op, const char *key)
{
	int r = 0;

	pthread_mutex_lock(&f->lock);
	f->calls[op]++;
	if (f->crashed) {
		r = -EIO;
		goto out;
	}
	for (struct fault_rule **p = &f->rules; *p; p = &(*p)->next) {
		struct fault_rule *rule = *p;

		if (rule->op != op ||
		    (rule->prefix &&
		     (!key || strncmp(key, rule->prefix, strlen(rule->prefix)) != 0)))
			continue;
		r = rule->error;
		if (--rule->count == 0) {
			*p = rule->next;
			rule->next = NULL;
			rules_free(rule);
		}
		goto out;
	}
	if (op == BACKEND_OP_PUT && f->crash_armed) {
		if (f->puts_left == 0) {
			/* The process "dies" before this write reaches the backend. */
			f->crashed = true;
			r = -EIO;
			goto out;
		}
		f->puts_left--;
	}
out:
	pthread_mutex_unlock(&f->lock);
	if (r < 0)
		log_debug("%s: %s %s: injected failure: %s", f->base.location, op_names[op],
			  key ? key : "", strerror(-r));
	return r;
}

/* A put that reserved a slot and failed gives it back: only successful puts count. */
static void fault_put_done(struct fault_backend *f, int r)
{
	if (r >= 0)
		return;
	pthread_mutex_lock(&f->lock);
	if (f->crash_armed && !f->crashed)
		f->puts_left++;
	pthread_mutex_unlock(&f->lock);
}

static int fault_put(struct backend *b, const char *key, const void *data, size_t len,
		     unsigned flags)
{
	struct fault_backend *f = to_fault(b);
	int r;

	r = fault_enter(f, BACKEND_OP_PUT, key);
	if (r < 0)
		return r;
	r = backend_put(f->inner, key, data, len, flags);
	fault_put_done(f, r);
	return r;
}

static int fault_get(struct backend *b, const char *key, uint64_t offset, uint64_t len,
		     struct buf *ret)
{
	struct fault_backend *f = to_fault(b);
	size_t start = ret->len, got;
	uint64_t at = 0;
	bool flip = false;
	int r;

	r = fault_enter(f, BACKEND_OP_GET, key);
	if (r < 0)
		return r;
	r = backend_get(f->inner, key, offset, len, ret);
	if (r < 0)
		return r;

	got = ret->len - start;
	pthread_mutex_lock(&f->lock);
	if (f->flip_key && strcmp(f->flip_key, key) == 0 && f->flip_offset >= offset &&
	    f->flip_offset - offset < got) {
		flip = true;
		at = f->flip_offset - offset;
		free(f->flip_key);
		f->flip_key = NULL;
	}
	pthread_mutex_unlock(&f->lock);
	if (flip)
		ret->data[start + at] ^= 1;
	return 0;
}

static int fault_head(struct backend *b, const char *key, uint64_t *ret_size)
{
	struct fault_backend *f = to_fault(b);
	int r = fault_enter(f, BACKEND_OP_HEAD, key);

	return r < 0 ? r : backend_head(f->inner, key, ret_size);
}

static int fault_del(struct backend *b, const char *key)
{
	struct fault_backend *f = to_fault(b);
	int r = fault_enter(f, BACKEND_OP_DEL, key);

	return r < 0 ? r : backend_del(f->inner, key);
}

static int fault_list(struct backend *b, const char *prefix, backend_list_fn fn, void *userdata)
{
	struct fault_backend *f = to_fault(b);
	int r = fault_enter(f, BACKEND_OP_LIST, prefix);

	return r < 0 ? r : backend_list(f->inner, prefix, fn, userdata);
}

/* Called with the lock held. */
static void fault_clear(struct fault_backend *f)
{
	rules_free(f->rules);
	f->rules = NULL;
	f->crash_armed = false;
	f->crashed = false;
	f->puts_left = 0;
	free(f->flip_key);
	f->flip_key = NULL;
}

static void fault_free(struct backend *b)
{
	struct fault_backend *f = to_fault(b);

	fault_clear(f);
	backend_free(f->inner);
	pthread_mutex_destroy(&f->lock);
	free(f->base.location);
	free(f);
}

static const struct backend_type fault_type = {
	.name = "fault",
	.put = fault_put,
	.get = fault_get,
	.head = fault_head,
	.del = fault_del,
	.list = fault_list,
	.free = fault_free,
};

int backend_fault_new(struct backend *inner, struct backend **ret)
{
	_cleanup_free_ struct fault_backend *f = NULL;
	_cleanup_free_ char *location = NULL;

	assert(inner);
	f = calloc(1, sizeof(*f));
	if (!f || asprintf(&location, "fault:%s", inner->location) < 0) {
		location = NULL; /* undefined after a failed asprintf */
		return -ENOMEM;
	}
	if (pthread_mutex_init(&f->lock, NULL) != 0)
		return -ENOMEM;

	f->base.type = &fault_type;
	f->base.location = TAKE_PTR(location);
	f->inner = inner;
	*ret = &TAKE_PTR(f)->base;
	return 0;
}

/*
 * The setters below cannot report failure (backend.h gives them no return value), so they
 * treat running out of memory as the test bug it would be.
 */
void backend_fault_fail(struct backend *b, enum backend_op op, const char *prefix, int error,
			unsigned count)
{
	struct fault_backend *f = to_fault(b);
	struct fault_rule *rule, **p;

	assert((unsigned)op < _BACKEND_OP_MAX);
	assert(error < 0);
	if (count == 0)
		return;
	rule = calloc(1, sizeof(*rule));
	assert(rule);
	*rule = (struct fault_rule){.op = op, .error = error, .count = count};
	if (prefix) {
		rule->prefix = strdup(prefix);
		assert(rule->prefix);
	}

	pthread_mutex_lock(&f->lock);
	for (p = &f->rules; *p; p = &(*p)->next)
		;
	*p = rule;
	pthread_mutex_unlock(&f->lock);
}

void backend_fault_crash_after_puts(struct backend *b, unsigned after)
{
	struct fault_backend *f = to_fault(b);

	pthread_mutex_lock(&f->lock);
	f->crash_armed = true;
	f->puts_left = after;
	pthread_mutex_unlock(&f->lock);
}

void backend_fault_flip_on_get(struct backend *b, const char *key, uint64_t offset)
{
	struct fault_backend *f = to_fault(b);
	char *k = strdup(key);

	assert(k);
	pthread_mutex_lock(&f->lock);
	free(f->flip_key);
	f->flip_key = k;
	f->flip_offset = offset;
	pthread_mutex_unlock(&f->lock);
}

void backend_fault_reset(struct backend *b)
{
	struct fault_backend *f = to_fault(b);

	pthread_mutex_lock(&f->lock);
	fault_clear(f);
	pthread_mutex_unlock(&f->lock);
}

unsigned backend_fault_calls(struct backend *b, enum backend_op op)
{
	struct fault_backend *f = to_fault(b);
	unsigned n;

	assert((unsigned)op < _BACKEND_OP_MAX);
	pthread_mutex_lock(&f->lock);
	n = f->calls[op];
	pthread_mutex_unlock(&f->lock);
	return n;
}
