/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The backend interface: a flat namespace of immutable objects named by keys such as
 * "config", "keys/<id>", "data/ab/<pack>", "commits/<seq>", "lock".
 *
 * A backend is a const type struct (struct backend_type) plus an instance (struct backend)
 * that embeds a pointer to it, as curl's connection filters do. Implementations:
 *   - backend_local: a directory on a local filesystem (atomic puts: temp file, fsync,
 *     rename/link, fsync of the directory);
 *   - backend_mem: an in-memory map, for unit tests;
 *   - backend_fault: a wrapper that injects failures into another backend, for tests;
 *   - (the S3 backend comes later and implements the same contract).
 *
 * Thread safety: every operation may be called from many threads at once on the same
 * instance (this is how many transfers are kept in flight). backend_free() must not race with
 * anything.
 *
 * Keys: 1..1024 bytes of [A-Za-z0-9._/-], no leading '/', no empty, "." or ".." segments.
 * Anything else is -EINVAL.
 *
 * Errors, for every operation: -ENOENT the object does not exist (get, head, delete), -EEXIST
 * it exists and BACKEND_PUT_EXCLUSIVE was given, -EINVAL bad key or range, -ENOMEM,
 * -ENOSPC, -EACCES, -EIO a permanent failure. Transient failures (-ETIMEDOUT, -EAGAIN) are
 * retried inside the backend; if they are returned, retries were exhausted.
 */
#pragma once

#include "util.h"

struct backend;

/* put: fail with -EEXIST if the key already exists; the check and the write are atomic. */
#define BACKEND_PUT_EXCLUSIVE 0x1u

/* The whole object, for backend_get's len. */
#define BACKEND_WHOLE UINT64_MAX

/* Called once per key by list, in no particular order; a negative return stops the listing
 * and is returned by list. `size` is the object's size in bytes. */
typedef int (*backend_list_fn)(const char *key, uint64_t size, void *userdata);

struct backend_type {
	const char *name;
	/* Store data under key, replacing any object of that name unless flags has
	 * BACKEND_PUT_EXCLUSIVE. Readers never see a partial object. When put returns 0 the
	 * object is durable. */
	int (*put)(struct backend *b, const char *key, const void *data, size_t len,
		   unsigned flags);
	/* Read len bytes from offset into ret (appended to it). len may be BACKEND_WHOLE. A range
	 * past the end of the object is clipped; an offset past the end is -EINVAL. */
	int (*get)(struct backend *b, const char *key, uint64_t offset, uint64_t len,
		   struct buf *ret);
	int (*head)(struct backend *b, const char *key, uint64_t *ret_size);
	int (*del)(struct backend *b, const char *key);
	/* Every key that starts with prefix ("" lists all). A prefix that no well-formed key
	 * can start with (see backend_prefix_valid) is -EINVAL. */
	int (*list)(struct backend *b, const char *prefix, backend_list_fn fn, void *userdata);
	void (*free)(struct backend *b);
};

struct backend {
	const struct backend_type *type;
	/* A human-readable location for messages, e.g. "/srv/repo" or "s3://bucket/prefix". */
	char *location;
};

static inline int backend_put(struct backend *b, const char *key, const void *data, size_t len,
			      unsigned flags)
{
	return b->type->put(b, key, data, len, flags);
}
static inline int backend_get(struct backend *b, const char *key, uint64_t offset, uint64_t len,
			      struct buf *ret)
{
	return b->type->get(b, key, offset, len, ret);
}
static inline int backend_head(struct backend *b, const char *key, uint64_t *ret_size)
{
	return b->type->head(b, key, ret_size);
}
static inline int backend_del(struct backend *b, const char *key)
{
	return b->type->del(b, key);
}
static inline int backend_list(struct backend *b, const char *prefix, backend_list_fn fn,
			       void *userdata)
{
	return b->type->list(b, prefix, fn, userdata);
}
void backend_free(struct backend *b);
static inline void backend_freep(struct backend **b)
{
	if (*b)
		backend_free(*b);
}
#define _cleanup_backend_ _cleanup_(backend_freep)

/* Returns true if key is well formed (see above). */
bool backend_key_valid(const char *key);
/* Returns true if prefix is "" or the beginning of some well-formed key: at most 1024 bytes
 * of the key alphabet, and every complete segment (one followed by '/') is well formed. */
bool backend_prefix_valid(const char *prefix);

/*
 * A directory on a local filesystem. create: make the directory if missing (mkfs).
 * Returns -ENOENT if the directory does not exist and create is false, -ENOTDIR.
 */
int backend_local_open(const char *path, bool create, struct backend **ret);

/* An empty in-memory backend. */
int backend_mem_new(struct backend **ret);

/*
 * The fault-injecting wrapper. It takes ownership of inner (on success only). By default it
 * passes everything through; the setters below arm faults. Counting starts at the first call
 * after arming.
 */
enum backend_op {
	BACKEND_OP_PUT,
	BACKEND_OP_GET,
	BACKEND_OP_HEAD,
	BACKEND_OP_DEL,
	BACKEND_OP_LIST,
	_BACKEND_OP_MAX
};
int backend_fault_new(struct backend *inner, struct backend **ret);
/* The next `count` calls of op whose key (for list: prefix) starts with prefix (NULL: any)
 * fail with error. */
void backend_fault_fail(struct backend *b, enum backend_op op, const char *prefix, int error,
			unsigned count);
/* After `after` more successful puts, every further operation fails with -EIO, as if the
 * process had died there ("crash point"). after = 0 crashes at the next put. */
void backend_fault_crash_after_puts(struct backend *b, unsigned after);
/* Flip one bit (bit 0) of the byte at offset of key, once, in the data returned by the next
 * get of key whose range covers offset (corruption in transit). */
void backend_fault_flip_on_get(struct backend *b, const char *key, uint64_t offset);
/* Clear every armed fault, and a crash that has happened. */
void backend_fault_reset(struct backend *b);
/* How many calls of op reached the wrapper (for tests). backend_fault_reset() keeps them. */
unsigned backend_fault_calls(struct backend *b, enum backend_op op);
