/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The block store (see store.h): dedup, the open pack, the upload queue and its threads,
 * flushing with index segments, commits and the lock lease.
 *
 * Concurrency: one mutex (s->mu) guards the open pack, the upload queue, the pending set and
 * the statistics. Hashing, compression and sealing run outside it, so every caller thread
 * works in parallel and only the append to the pack is serialised. Uploads run on their own
 * threads; the number of finished packs not yet durable is bounded, so a slow backend slows
 * puts down instead of filling memory.
 */
#include "store.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

#include "index.h"
#include "lock.h"
#include "pack.h"

#define PENDING_BUCKETS (1u << 16)
/* Uploaded packs whose memory is kept for the next ones. With several uploads overlapping, a
 * single spare left most new packs on fresh memory: a fault and a page of zeros every 4 KiB,
 * and on a virtual machine that returns freed memory to its host, a host fault too (46 % of
 * the daemon's page faults in an initial rsync of 1.9 GB). The default upload concurrency
 * keeps up to four packs in flight; three spares cover all but the first. */
#define SPARE_PACKS 3

/* A finished or open pack whose blobs are not indexed yet. */
struct pending_pack {
	struct pack_builder pb;
	struct pending_pack *next;
	int error;
	bool uploaded; /* durable in the backend; only indexing is left */
};

/* A blob that lives only in a pending pack so far. */
struct pending_blob {
	struct blob_id id;
	struct pending_pack *pack;
	uint32_t idx; /* entry index in pack->pb */
	struct pending_blob *next;
};

struct store {
	struct backend *backend;
	struct repo_config config;
	uint8_t *master;
	struct codec codec;
	bool codec_ready;
	struct chunker chunker;
	struct index *index;
	char *cache_dir;
	bool read_only;
	struct buf config_raw; /* the bytes parsed, verified once the key is known */
	struct repo_lock lock;
	bool locked;
	uint32_t pack_size;
	unsigned max_in_flight;

	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct pending_pack *open;     /* being filled */
	struct buf spare[SPARE_PACKS]; /* uploaded packs' memory, for the next */
	unsigned n_spare;
	struct pending_pack *queue, **queue_tail; /* finished, waiting for upload */
	struct pending_pack *failed;		  /* upload failed; retried by flush */
	unsigned in_flight;			  /* finished, not yet indexed */
	unsigned uploading;
	int upload_error;
	bool lock_lost; /* our lock was broken: never write again (sticky) */
	bool stopping;
	struct pending_blob **pending;
	/* Packs uploaded since the last index segment. */
	struct index_segment_pack *seg;
	size_t n_seg, cap_seg;
	struct store_stats stats;

	pthread_t *threads;
	unsigned n_threads;
	pthread_t renewer;
	bool renewer_running;

	pthread_mutex_t commit_mu;
	uint64_t head_seq;
	/* A commit put that failed but may have landed: checked before the next commit. */
	uint64_t unsure_seq, unsure_time;
};

static size_t bucket_of(const struct blob_id *id)
{
	/* Ids are uniformly random already: their first bytes are a fine hash. */
	return (id->b[0] | (size_t)id->b[1] << 8) & (PENDING_BUCKETS - 1);
}

static struct pending_blob *pending_find(struct store *s, const struct blob_id *id)
{
	for (struct pending_blob *p = s->pending[bucket_of(id)]; p; p = p->next)
		if (!memcmp(p->id.b, id->b, BLOB_ID_SIZE))
			return p;
	return NULL;
}

static int pending_insert(struct store *s, struct pending_pack *pack, uint32_t idx)
{
	struct pending_blob *p = malloc(sizeof(*p));
	if (!p)
		return -ENOMEM;
	*p = (struct pending_blob){.id = pack->pb.entries[idx].id, .pack = pack, .idx = idx};
	size_t b = bucket_of(&p->id);
	p->next = s->pending[b];
	s->pending[b] = p;
	return 0;
}

static void pending_remove_pack(struct store *s, struct pending_pack *pack)
{
	for (size_t i = 0; i < pack->pb.n_entries; i++) {
		struct pending_blob **pp = &s->pending[bucket_of(&pack->pb.entries[i].id)];
		while (*pp) {
			if ((*pp)->pack == pack) {
				struct pending_blob *dead = *pp;
				*pp = dead->next;
				free(dead);
			} else
				pp = &(*pp)->next;
		}
	}
}

static void pending_pack_free(struct pending_pack *p)
{
	if (!p)
		return;
	pack_builder_release(&p->pb);
	free(p);
}

/* ---- upload ------------------------------------------------------------------------- */

static void enqueue_locked(struct store *s, struct pending_pack *p)
{
	p->next = NULL;
	*s->queue_tail = p;
	s->queue_tail = &p->next;
	pthread_cond_broadcast(&s->cond);
}

/* Finish the open pack and queue it. Caller holds mu. */
static int seal_open_pack_locked(struct store *s)
{
	struct pending_pack *p = s->open;
	if (!p || p->pb.n_entries == 0)
		return 0;
	int r = pack_builder_finish(&p->pb, &s->codec);
	if (r < 0)
		return r;
	s->open = NULL;
	s->in_flight++;
	enqueue_locked(s, p);
	return 0;
}

static bool lock_lost(struct store *s)
{
	pthread_mutex_lock(&s->mu);
	bool lost = s->lock_lost;
	pthread_mutex_unlock(&s->mu);
	return lost;
}

static int upload_pack(struct store *s, struct pending_pack *p)
{
	char key[PACK_KEY_MAX];
	uint64_t size;
	int r = 0;

	pack_key(p->pb.name, key);
	if (lock_lost(s))
		return -ESTALE;
	if (!p->uploaded) {
		r = backend_put(s->backend, key, p->pb.data.data, p->pb.data.len,
				BACKEND_PUT_EXCLUSIVE);
		/* A retry after a put that landed but reported an error (a timeout after the
		 * write, a failed directory fsync): the name is ours alone, so an object of the
		 * right size there is our pack. */
		if (r == -EEXIST && backend_head(s->backend, key, &size) == 0 &&
		    size == p->pb.data.len)
			r = 0;
		if (r < 0)
			return log_error_errno(r, "uploading pack %s (%zu blobs, %zu bytes): %s",
					       key, p->pb.n_entries, p->pb.data.len, strerror(-r));
		p->uploaded = true;
	}
	/* Only now, with the pack durable, may its blobs be found through the index. */
	r = index_add_pack(s->index, p->pb.name, p->pb.data.len, p->pb.entries, p->pb.n_entries);
	if (r < 0)
		return log_error_errno(r, "indexing pack %s: %s", key, strerror(-r));
	return 0;
}

static int seg_append_locked(struct store *s, struct pending_pack *p)
{
	if (s->n_seg == s->cap_seg) {
		size_t cap = s->cap_seg ? 2 * s->cap_seg : 16;
		struct index_segment_pack *n = reallocarray(s->seg, cap, sizeof(*n));
		if (!n)
			return -ENOMEM;
		s->seg = n;
		s->cap_seg = cap;
	}
	struct index_segment_pack *e = &s->seg[s->n_seg++];
	memcpy(e->name, p->pb.name, PACK_NAME_SIZE);
	e->size = p->pb.data.len;
	e->entries = TAKE_PTR(p->pb.entries);
	e->n = p->pb.n_entries;
	return 0;
}

static void *upload_thread(void *arg)
{
	struct store *s = arg;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (!s->queue && !s->stopping)
			pthread_cond_wait(&s->cond, &s->mu);
		if (!s->queue)
			break;
		struct pending_pack *p = s->queue;
		s->queue = p->next;
		if (!s->queue)
			s->queue_tail = &s->queue;
		s->uploading++;
		pthread_mutex_unlock(&s->mu);

		int r = upload_pack(s, p);

		pthread_mutex_lock(&s->mu);
		s->uploading--;
		if (r < 0) {
			/* Keep it: its blobs stay readable and a later flush tries again. */
			p->error = r;
			p->next = s->failed;
			s->failed = p;
			if (!s->upload_error)
				s->upload_error = r;
		} else {
			s->stats.packs_uploaded++;
			s->stats.pack_bytes_uploaded += p->pb.data.len;
			pending_remove_pack(s, p);
			r = seg_append_locked(s, p);
			if (r < 0)
				log_warning("pack without index segment (out of memory); "
					    "its trailer still lists its blobs");
			s->in_flight--;
			if (s->n_spare < SPARE_PACKS) {
				s->spare[s->n_spare++] = p->pb.data;
				p->pb.data = (struct buf){0};
			}
			pending_pack_free(p);
		}
		pthread_cond_broadcast(&s->cond);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* Write the index segment for the packs uploaded since the last one. */
static int write_segment(struct store *s)
{
	_cleanup_buf_ struct buf data = {0};
	struct index_segment_pack *seg;
	size_t n;
	uint8_t name[32];
	char hex[65], key[80];

	pthread_mutex_lock(&s->mu);
	seg = TAKE_PTR(s->seg);
	n = s->n_seg;
	s->n_seg = s->cap_seg = 0;
	pthread_mutex_unlock(&s->mu);
	if (n == 0) {
		free(seg);
		return 0;
	}
	codec_random(name, sizeof(name));
	hex_encode(name, sizeof(name), hex);
	snprintf(key, sizeof(key), "index/%s", hex);
	int r = index_segment_encode(&s->codec, seg, n, &data);
	if (r >= 0)
		r = backend_put(s->backend, key, data.data, data.len, BACKEND_PUT_EXCLUSIVE);
	if (r >= 0)
		r = index_add_segment(s->index, name);
	index_segment_free(seg, n);
	/* A missing segment costs only start-up time: the packs' trailers list the same. */
	if (r < 0)
		log_warning("writing index segment %s: %s (the pack trailers still index the data)",
			    key, strerror(-r));
	return 0;
}

int store_flush(struct store *s)
{
	int r;

	if (s->read_only)
		return 0;
	pthread_mutex_lock(&s->mu);
	if (s->lock_lost) {
		pthread_mutex_unlock(&s->mu);
		return -ESTALE;
	}
	r = seal_open_pack_locked(s);
	while (s->failed) {
		struct pending_pack *p = s->failed;
		s->failed = p->next;
		p->error = 0;
		enqueue_locked(s, p);
	}
	s->upload_error = 0;
	while (r >= 0 && (s->queue || s->uploading))
		pthread_cond_wait(&s->cond, &s->mu);
	if (r >= 0 && s->failed)
		r = s->failed->error;
	pthread_mutex_unlock(&s->mu);
	if (r < 0)
		return r;
	return write_segment(s);
}

/* Pack names from a listing: of the outbox below, and of the backend (store_sync_index). */
struct listed_pack {
	uint8_t name[PACK_NAME_SIZE];
	uint64_t size;
};

struct pack_listing {
	struct listed_pack *v;
	size_t n, cap;
};

static int list_pack_cb(const char *key, uint64_t size, void *ud)
{
	struct pack_listing *l = ud;
	uint8_t name[PACK_NAME_SIZE];
	if (pack_key_parse(key, name) < 0) {
		log_warning("ignoring unexpected object %s", key);
		return 0;
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 256;
		struct listed_pack *v = reallocarray(l->v, cap, sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	memcpy(l->v[l->n].name, name, PACK_NAME_SIZE);
	l->v[l->n++].size = size;
	return 0;
}

/* ---- packs an unmount could not upload ------------------------------------------------- */
/*
 * When the last checkpoint fails (the backend refuses or cannot be reached), the packs not
 * uploaded hold chunks that the working tree names: the flushers wrote those extents into
 * meta's batch when they put the chunks, and closing meta commits that batch. Freed at exit,
 * they would leave files naming data that exists nowhere. So store_save_unsent writes them
 * to <cache>/outbox, through a directory backend (each file written, fsynced and renamed
 * into place), and the next writable open uploads and indexes them before anything else.
 */
static int outbox_open(struct store *s, bool create, struct backend **ret)
{
	_cleanup_free_ char *dir = NULL;
	if (!s->cache_dir || asprintf(&dir, "%s/outbox", s->cache_dir) < 0)
		return -ENOMEM;
	return backend_local_open(dir, create, ret);
}

int store_save_unsent(struct store *s)
{
	_cleanup_backend_ struct backend *ob = NULL;
	size_t saved = 0;
	if (s->read_only || !s->n_threads)
		return 0;
	pthread_mutex_lock(&s->mu);
	int r = seal_open_pack_locked(s);
	/* What is queued is tried once more; what fails lands on s->failed. */
	while (s->queue || s->uploading)
		pthread_cond_wait(&s->cond, &s->mu);
	for (struct pending_pack *p = s->failed; r >= 0 && p; p = p->next) {
		char key[PACK_KEY_MAX];
		pack_key(p->pb.name, key);
		if (!ob)
			r = outbox_open(s, true, &ob);
		if (r >= 0)
			r = backend_put(ob, key, p->pb.data.data, p->pb.data.len, 0);
		if (r >= 0)
			saved++;
	}
	pthread_mutex_unlock(&s->mu);
	if (r < 0)
		return log_error_errno(r, "%s: cannot keep the packs not uploaded in %s/outbox: %s",
				       s->backend->location, s->cache_dir, strerror(-r));
	if (saved)
		log_warning("%s: %zu packs not uploaded are kept in %s/outbox; the next mount "
			    "uploads them first",
			    s->backend->location, saved, s->cache_dir);
	return 0;
}

/* Upload one kept pack, read its trailer back (which proves it whole and lists its blobs),
 * index it, and only then delete the local copy. */
static int send_kept(struct store *s, struct backend *ob, const uint8_t name[PACK_NAME_SIZE])
{
	_cleanup_buf_ struct buf data = {0};
	_cleanup_free_ struct pack_entry *e = NULL;
	char key[PACK_KEY_MAX];
	uint64_t size;
	size_t n;
	pack_key(name, key);
	int r = backend_get(ob, key, 0, BACKEND_WHOLE, &data);
	if (r >= 0) {
		r = backend_put(s->backend, key, data.data, data.len, BACKEND_PUT_EXCLUSIVE);
		/* Sent before, and the local copy's deletion did not land. */
		if (r == -EEXIST && backend_head(s->backend, key, &size) == 0 && size == data.len)
			r = 0;
	}
	if (r >= 0)
		r = pack_read_trailer(s->backend, &s->codec, name, &e, &n, &size);
	if (r >= 0)
		r = index_add_pack(s->index, name, size, e, n);
	if (r >= 0)
		r = backend_del(ob, key);
	if (r < 0)
		log_error("%s: uploading pack %s, kept in %s/outbox since the last unmount: %s",
			  s->backend->location, key, s->cache_dir, strerror(-r));
	return r;
}

static int send_outbox(struct store *s)
{
	_cleanup_backend_ struct backend *ob = NULL;
	struct pack_listing l = {0};
	int r = outbox_open(s, false, &ob);
	if (r == -ENOENT)
		return 0;
	if (r >= 0)
		r = backend_list(ob, "data/", list_pack_cb, &l);
	size_t sent = 0;
	for (; r >= 0 && sent < l.n; sent++)
		r = send_kept(s, ob, l.v[sent].name);
	if (r >= 0 && sent)
		log_info("%s: uploaded %zu packs kept since the last unmount", s->backend->location,
			 sent);
	free(l.v);
	return r;
}

/* ---- put / get ---------------------------------------------------------------------- */

int store_put(struct store *s, enum blob_type type, const void *data, size_t len,
	      struct blob_id *ret_id, bool *ret_new)
{
	_cleanup_buf_ struct buf sealed = {0};
	struct blob_id id;
	struct index_loc loc;
	int r;

	if (s->read_only)
		return -EROFS;
	if (len > BLOB_MAX_SIZE || type <= 0 || type >= _BLOB_TYPE_MAX)
		return -EINVAL;
	codec_blob_id(&s->codec, type, data, len, &id);

	pthread_mutex_lock(&s->mu);
	s->stats.put_blobs++;
	s->stats.put_bytes += len;
	bool known = pending_find(s, &id);
	pthread_mutex_unlock(&s->mu);
	if (!known) {
		r = index_lookup(s->index, &id, &loc);
		if (r < 0 && r != -ENOENT)
			return r;
		known = r == 0;
	}
	if (known)
		goto done;

	r = codec_encode_blob(&s->codec, type, &id, data, len, &sealed);
	if (r < 0)
		return r;

	pthread_mutex_lock(&s->mu);
	/* Back-pressure: a slow backend must slow writers down, not fill memory. Wait for room
	 * before taking the blob, so a put fails exactly when its blob was not accepted. */
	while (s->in_flight >= s->max_in_flight && !s->upload_error && !s->lock_lost)
		pthread_cond_wait(&s->cond, &s->mu);
	if (s->lock_lost) {
		r = -ESTALE;
		goto unlock;
	}
	if (s->in_flight >= s->max_in_flight) {
		r = s->upload_error;
		goto unlock;
	}
	/* Another thread may have stored the same blob while we were sealing it or waiting.
	 * Uploaders index a pack before they drop its blobs from the pending set, and dropping
	 * needs this mutex: so under it, "not pending and not indexed" is exact. */
	if (pending_find(s, &id) || index_lookup(s->index, &id, &loc) == 0) {
		pthread_mutex_unlock(&s->mu);
		known = true;
		goto done;
	}
	if (!s->open) {
		s->open = calloc(1, sizeof(*s->open));
		/* Room for the whole pack up front, in an uploaded pack's memory: growing
		 * it by doubling copied every pack about once, and fresh memory costs a page
		 * fault and a page of zeros every 4 KiB. */
		r = s->open ? pack_builder_init(&s->open->pb,
						s->n_spare ? &s->spare[--s->n_spare] : NULL,
						(size_t)s->pack_size + s->chunker.max_size +
							codec_seal_overhead(&s->codec) + 64)
			    : -ENOMEM;
		if (r < 0) {
			pending_pack_free(s->open);
			s->open = NULL;
			goto unlock;
		}
	}
	r = pack_builder_add(&s->open->pb, &id, type, sealed.data, sealed.len, (uint32_t)len);
	if (r >= 0)
		r = pending_insert(s, s->open, (uint32_t)(s->open->pb.n_entries - 1));
	if (r < 0) {
		/* The entry is in the pack but not pending: harmless duplicate at worst. */
		goto unlock;
	}
	s->stats.new_blobs++;
	s->stats.new_bytes += len;
	s->stats.sealed_bytes += sealed.len;
	if (pack_builder_size(&s->open->pb) >= s->pack_size)
		r = seal_open_pack_locked(s);
unlock:
	pthread_mutex_unlock(&s->mu);
	if (r < 0)
		return r;
done:
	*ret_id = id;
	if (ret_new)
		*ret_new = !known;
	return 0;
}

bool store_has(struct store *s, const struct blob_id *id)
{
	struct index_loc loc;
	pthread_mutex_lock(&s->mu);
	bool known = pending_find(s, id);
	pthread_mutex_unlock(&s->mu);
	return known || index_lookup(s->index, id, &loc) == 0;
}

int store_get(struct store *s, enum blob_type type, const struct blob_id *id, struct buf *ret)
{
	_cleanup_buf_ struct buf sealed = {0};
	char hex[BLOB_ID_HEX_SIZE], key[PACK_KEY_MAX];
	struct index_loc loc;
	int r = 0;

	pthread_mutex_lock(&s->mu);
	struct pending_blob *p = pending_find(s, id);
	if (p) {
		const struct pack_entry *e = &p->pack->pb.entries[p->idx];
		r = buf_append(&sealed, p->pack->pb.data.data + e->offset, e->length);
	}
	pthread_mutex_unlock(&s->mu);
	blob_id_hex(id, hex);
	if (r < 0)
		return r;
	if (!p) {
		r = index_lookup(s->index, id, &loc);
		if (r == -ENOENT)
			return log_error_errno(r, "blob %s: not in the index", hex);
		if (r < 0)
			return r;
		pack_key(loc.pack, key);
		if (loc.type != type)
			return log_error_errno(-EBADMSG, "blob %s in pack %s: wrong type %u", hex,
					       key, loc.type);
		r = backend_get(s->backend, key, loc.offset, loc.length, &sealed);
		if (r == -EINVAL)
			return log_error_errno(
				-EBADMSG, "blob %s: pack %s is truncated before offset %" PRIu32,
				hex, key, loc.offset);
		if (r < 0)
			return log_error_errno(r, "blob %s: reading pack %s: %s", hex, key,
					       strerror(-r));
		if (sealed.len != loc.length)
			return log_error_errno(-EBADMSG,
					       "blob %s: pack %s is truncated at offset %" PRIu32,
					       hex, key, loc.offset);
	} else
		snprintf(key, sizeof(key), "(pending upload)");
	r = codec_decode_blob(&s->codec, type, id, sealed.data, sealed.len, ret);
	if (r == -EBADMSG)
		return log_error_errno(r, "blob %s in pack %s: corrupt: fails authentication", hex,
				       key);
	return r;
}

/* ---- commits ------------------------------------------------------------------------ */

int store_head(struct store *s, struct commit *ret)
{
	pthread_mutex_lock(&s->commit_mu);
	uint64_t seq = s->head_seq;
	pthread_mutex_unlock(&s->commit_mu);
	if (seq == 0) {
		*ret = (struct commit){0};
		return 0;
	}
	return commit_load(s->backend, &s->codec, seq, ret);
}

/* >0: commits/<seq> exists and is the one we wrote at time_ns; 0: it is someone else's;
 * -ENOENT: it does not exist; other <0: it cannot be told now. */
static int commit_is_ours(struct store *s, uint64_t seq, uint64_t time_ns)
{
	struct commit got;
	int r = commit_load(s->backend, &s->codec, seq, &got);
	if (r < 0)
		return r;
	r = got.time_ns == time_ns;
	commit_release(&got);
	return r;
}

/* A commit whose put failed but may have landed: if it did, it is the head now. commit_mu
 * held. */
static int settle_unsure_commit(struct store *s)
{
	if (!s->unsure_seq)
		return 0;
	int r = commit_is_ours(s, s->unsure_seq, s->unsure_time);
	if (r == -ENOENT || r == 0) {
		/* Never landed; or another writer's, which our exclusive put will show. */
		s->unsure_seq = 0;
		return 0;
	}
	if (r < 0)
		return r;
	log_info("commit %" PRIu64 " landed although its write reported an error", s->unsure_seq);
	s->head_seq = s->unsure_seq;
	s->unsure_seq = 0;
	if (index_set_synced(s->index, s->head_seq) < 0)
		log_warning("could not record the index as synced");
	return 0;
}

int store_settle(struct store *s)
{
	pthread_mutex_lock(&s->commit_mu);
	int r = settle_unsure_commit(s);
	pthread_mutex_unlock(&s->commit_mu);
	return r;
}

int store_commit(struct store *s, struct commit *c)
{
	char host[256] = "";
	struct timespec ts;
	struct commit w = *c;

	if (s->read_only)
		return -EROFS;
	int r = store_flush(s);
	if (r < 0)
		return r;
	pthread_mutex_lock(&s->commit_mu);
	r = settle_unsure_commit(s);
	if (r < 0) {
		pthread_mutex_unlock(&s->commit_mu);
		return r;
	}
	w.parent = s->head_seq;
	w.seq = s->head_seq + 1;
	clock_gettime(CLOCK_REALTIME, &ts);
	w.time_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	if (!w.host) {
		gethostname(host, sizeof(host) - 1);
		w.host = host;
	}
	if (lock_lost(s))
		r = -ESTALE;
	if (r >= 0)
		r = commit_write(s->backend, &s->codec, &w);
	if (r < 0 && r != -ESTALE) {
		/* Ours, from a put that landed but reported an error? Then it reads back as what
		 * we wrote (the time stamp is ours to the nanosecond). If it cannot be read now,
		 * settle it before the next commit. */
		int k = commit_is_ours(s, w.seq, w.time_ns);
		if (k > 0)
			r = 0;
		else if (k < 0 && k != -ENOENT && r != -EEXIST) {
			s->unsure_seq = w.seq;
			s->unsure_time = w.time_ns;
		}
	}
	if (r >= 0) {
		s->head_seq = w.seq;
		/* The index now covers everything this commit references. */
		if (index_set_synced(s->index, w.seq) < 0)
			log_warning("could not record the index as synced; it will be checked "
				    "against the backend at next start");
		if (w.host == host)
			w.host = strdup(host);
		if (!w.host)
			r = -ENOMEM;
		else
			*c = w;
	}
	pthread_mutex_unlock(&s->commit_mu);
	return r;
}

/* ---- open / create / close ---------------------------------------------------------- */

static int mkdir_p(const char *path, mode_t mode)
{
	_cleanup_free_ char *p = strdup(path);
	if (!p)
		return -ENOMEM;
	for (char *slash = p + 1;; slash++) {
		if (*slash != '/' && *slash)
			continue;
		char c = *slash;
		*slash = 0;
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			return -errno;
		if (!c)
			break;
		*slash = c;
	}
	return 0;
}

static int default_cache_base(char **ret)
{
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	int n;
	if (geteuid() == 0)
		n = asprintf(ret, "/var/cache/cairn");
	else if (xdg && *xdg)
		n = asprintf(ret, "%s/cairn", xdg);
	else if (home && *home)
		n = asprintf(ret, "%s/.cache/cairn", home);
	else
		return -ENOENT;
	return n < 0 ? -ENOMEM : 0;
}

static int collect_key_cb(const char *key, uint64_t size, void *ud)
{
	return buf_append(ud, key, strlen(key) + 1);
}

/* Try every key object with the passphrase. */
static int unlock_master(struct store *s, const struct store_options *o)
{
	int r;

	_cleanup_buf_ struct buf names = {0};
	r = backend_list(s->backend, "keys/", collect_key_cb, &names);
	if (r < 0)
		return log_error_errno(r, "%s: listing keys: %s", s->backend->location,
				       strerror(-r));
	if (!s->config.encrypted) {
		/* mkfs writes no key for an unencrypted repository. Key objects beside a config
		 * that says "none" mean someone replaced the config to switch encryption off
		 * with a master key of their own. */
		if (names.len)
			return log_error_errno(-EBADMSG,
					       "%s: config says unencrypted but the repository has "
					       "key objects: the config was replaced; refusing",
					       s->backend->location);
		if (o->passphrase)
			return log_error_errno(
				-EBADMSG,
				"%s: config says unencrypted, but a passphrase was "
				"given: refusing (the config may have been replaced; if "
				"the repository really is unencrypted, give none)",
				s->backend->location);
		return keys_from_bytes(s->config.plain_key, &s->master);
	}
	if (!o->passphrase)
		return log_error_errno(-EACCES, "%s is encrypted and no passphrase was given",
				       s->backend->location);

	int corrupt = 0, wrong = 0;
	for (size_t off = 0; off < names.len; off += strlen((char *)names.data + off) + 1) {
		const char *key = (const char *)names.data + off;
		_cleanup_buf_ struct buf obj = {0};
		uint64_t size;
		r = backend_head(s->backend, key, &size);
		if (r >= 0 && size > 4096)
			r = -EBADMSG;
		if (r >= 0)
			r = backend_get(s->backend, key, 0, BACKEND_WHOLE, &obj);
		if (r < 0) {
			log_error("key %s: %s", key, r == -EBADMSG ? "corrupt" : strerror(-r));
			corrupt++;
			continue;
		}
		r = keys_unwrap(obj.data, obj.len, o->passphrase, o->passlen, s->config.id,
				&s->master);
		if (r == 0)
			return 0;
		if (r == -EACCES)
			wrong++;
		else if (r == -EBADMSG) {
			log_error("key %s: corrupt", key);
			corrupt++;
		} else
			return log_error_errno(r, "key %s: %s", key, strerror(-r));
	}
	if (wrong)
		return log_error_errno(-EACCES, "%s: wrong passphrase", s->backend->location);
	if (corrupt)
		return -EBADMSG;
	return log_error_errno(-ENOENT, "%s: no key objects (keys/) in the repository",
			       s->backend->location);
}

static void *renew_thread(void *arg)
{
	struct store *s = arg;
	struct timespec until;

	pthread_mutex_lock(&s->mu);
	while (!s->stopping) {
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += MAX(s->lock.lease / 3, 1u);
		while (!s->stopping &&
		       pthread_cond_timedwait(&s->cond, &s->mu, &until) != ETIMEDOUT)
			;
		if (s->stopping)
			break;
		pthread_mutex_unlock(&s->mu);
		int r = lock_renew(&s->lock);
		pthread_mutex_lock(&s->mu);
		if (r == -ESTALE) {
			/* Someone broke our lock: another writer may be active. Stop writing for
			 * good, and wake anyone waiting so they see it. */
			s->lock_lost = true;
			pthread_cond_broadcast(&s->cond);
		}
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static int open_config(struct store *s)
{
	uint64_t size;
	int r = backend_head(s->backend, "config", &size);
	if (r >= 0 && size > CONFIG_MAX_SIZE)
		r = -EBADMSG;
	if (r >= 0)
		r = backend_get(s->backend, "config", 0, BACKEND_WHOLE, &s->config_raw);
	if (r == -ENOENT)
		return log_error_errno(r, "%s: no cairn repository here (no config object)",
				       s->backend->location);
	if (r == -EBADMSG)
		return log_error_errno(r, "%s: config: corrupt: too large", s->backend->location);
	if (r < 0)
		return log_error_errno(r, "%s: reading config: %s", s->backend->location,
				       strerror(-r));
	r = config_parse(s->config_raw.data, s->config_raw.len, &s->config);
	if (r == -EPROTONOSUPPORT)
		return log_error_errno(r,
				       "%s: config: repository format %u is newer than this "
				       "cairn understands",
				       s->backend->location, s->config.version);
	if (r < 0)
		return log_error_errno(r, "%s: config: corrupt or not a cairn config",
				       s->backend->location);
	return 0;
}

/* Check the MAC of exactly the bytes that were parsed. */
static int verify_config(struct store *s)
{
	int r = config_verify(s->config_raw.data, s->config_raw.len, s->master);
	if (r < 0)
		return log_error_errno(r, "%s: config: corrupt: fails authentication",
				       s->backend->location);
	return 0;
}

static int open_index(struct store *s, const struct store_options *o)
{
	_cleanup_free_ char *base = NULL, *db = NULL;
	char idhex[2 * REPO_ID_SIZE + 1];
	int r;

	if (o->cache_dir) {
		base = strdup(o->cache_dir);
		r = base ? 0 : -ENOMEM;
	} else
		r = default_cache_base(&base);
	if (r < 0)
		return log_error_errno(r, "no cache directory: set one or HOME");
	hex_encode(s->config.id, sizeof(s->config.id), idhex);
	if (asprintf(&s->cache_dir, "%s/%s", base, idhex) < 0) {
		s->cache_dir = NULL;
		return -ENOMEM;
	}
	r = mkdir_p(s->cache_dir, 0700);
	if (r < 0)
		return log_error_errno(r, "cache directory %s: %s", s->cache_dir, strerror(-r));
	if (asprintf(&db, "%s/index.db", s->cache_dir) < 0)
		return -ENOMEM;
	r = index_open(db, s->config.id, &s->index);
	if (r < 0)
		return log_error_errno(r, "index %s: %s", db, strerror(-r));
	return 0;
}

/* A cache that has seen this repository encrypted refuses a config that says it is not:
 * deleting keys/ as well is all a downgrade forgery would need otherwise. */
static int check_encryption_memory(struct store *s)
{
	uint64_t was;
	int r = index_get_u64(s->index, "encrypted", &was);
	if (r == -ENOENT)
		return index_set_u64(s->index, "encrypted", s->config.encrypted);
	if (r < 0)
		return r;
	if (was && !s->config.encrypted)
		return log_error_errno(-EBADMSG,
				       "%s: this cache knew the repository as encrypted, but its "
				       "config says unencrypted: the config was replaced; refusing",
				       s->backend->location);
	return 0;
}

static int start_threads(struct store *s, const struct store_options *o)
{
	unsigned n = o->upload_threads ? o->upload_threads : 2;
	s->threads = calloc(n, sizeof(*s->threads));
	if (!s->threads)
		return -ENOMEM;
	for (; s->n_threads < n; s->n_threads++)
		if (pthread_create(&s->threads[s->n_threads], NULL, upload_thread, s) != 0)
			return -EAGAIN;
	if (pthread_create(&s->renewer, NULL, renew_thread, s) != 0)
		return -EAGAIN;
	s->renewer_running = true;
	return 0;
}

int store_open(struct backend *b, const struct store_options *o, struct store **ret)
{
	struct store *s = calloc(1, sizeof(*s));
	uint8_t seed[32];
	int r;

	if (!s) {
		backend_free(b);
		return -ENOMEM;
	}
	s->backend = b;
	s->read_only = o->read_only;
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->commit_mu, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->queue_tail = &s->queue;
	s->pending = calloc(PENDING_BUCKETS, sizeof(*s->pending));
	r = s->pending ? codec_global_init() : -ENOMEM;
	if (r >= 0)
		r = open_config(s);
	if (r >= 0)
		r = unlock_master(s, o);
	if (r >= 0)
		r = verify_config(s);
	if (r >= 0)
		r = codec_init(&s->codec, s->master, s->config.encrypted);
	if (r < 0)
		goto fail;
	s->codec_ready = true;
	keys_derive(s->master, SUBKEY_CHUNKER, seed);
	r = chunker_init(&s->chunker, s->config.chunk_min, s->config.chunk_avg, s->config.chunk_max,
			 seed);
	explicit_bzero(seed, sizeof(seed));
	if (r < 0)
		goto fail;
	s->pack_size = o->pack_size ? o->pack_size : s->config.pack_size;
	s->max_in_flight = o->max_packs_in_flight ? o->max_packs_in_flight
						  : (o->upload_threads ? o->upload_threads : 2) + 2;
	if (!s->read_only) {
		r = lock_acquire(b, o->lock_lease, o->break_lock, &s->lock);
		if (r < 0)
			goto fail;
		s->locked = true;
	}
	r = open_index(s, o);
	if (r >= 0)
		r = check_encryption_memory(s);
	if (r >= 0)
		r = commit_find_latest(b, &s->head_seq);
	/* Before anything may trust the index: the working tree may name these packs' blobs. */
	if (r >= 0 && !s->read_only)
		r = send_outbox(s);
	if (r >= 0)
		r = store_sync_index(s, false);
	if (r >= 0 && !s->read_only)
		r = start_threads(s, o);
	if (r < 0)
		goto fail;
	*ret = s;
	return 0;
fail:
	store_close(s);
	return r;
}

static void stop_threads(struct store *s)
{
	pthread_mutex_lock(&s->mu);
	s->stopping = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->mu);
	for (unsigned i = 0; i < s->n_threads; i++)
		pthread_join(s->threads[i], NULL);
	if (s->renewer_running)
		pthread_join(s->renewer, NULL);
	free(s->threads);
}

int store_close(struct store *s)
{
	int r = 0;

	if (!s)
		return 0;
	if (!s->read_only && s->n_threads) {
		r = store_flush(s);
		if (r < 0)
			log_error("%s: closing with data that could not be stored: %s",
				  s->backend->location, strerror(-r));
	}
	stop_threads(s);
	if (s->locked)
		lock_release(&s->lock);
	/* Whatever is still pending could not be uploaded; free it. */
	pending_pack_free(s->open);
	for (struct pending_pack *lists[] = {s->queue, s->failed}, **l = lists;
	     l < lists + ELEMENTSOF(lists); l++)
		while (*l) {
			struct pending_pack *p = *l;
			*l = p->next;
			pending_pack_free(p);
		}
	for (size_t i = 0; s->pending && i < PENDING_BUCKETS; i++)
		while (s->pending[i]) {
			struct pending_blob *p = s->pending[i];
			s->pending[i] = p->next;
			free(p);
		}
	free(s->pending);
	index_segment_free(s->seg, s->n_seg);
	index_close(s->index);
	if (s->codec_ready)
		codec_release(&s->codec);
	if (s->master)
		keys_free(s->master);
	backend_free(s->backend);
	buf_release(&s->config_raw);
	while (s->n_spare)
		buf_release(&s->spare[--s->n_spare]);
	free(s->cache_dir);
	pthread_mutex_destroy(&s->mu);
	pthread_mutex_destroy(&s->commit_mu);
	pthread_cond_destroy(&s->cond);
	free(s);
	return r;
}

static int probe_any_cb(const char *key, uint64_t size, void *ud)
{
	*(bool *)ud = true;
	return -ECANCELED;
}

int store_create(struct backend *b, const struct store_create_options *o,
		 uint8_t ret_id[REPO_ID_SIZE])
{
	_cleanup_keys_ uint8_t *master = NULL;
	_cleanup_buf_ struct buf keyobj = {0}, cfg = {0};
	struct repo_config c;
	int r;

	r = codec_global_init();
	if (r < 0)
		return r;
	bool any = false;
	r = backend_list(b, "", probe_any_cb, &any);
	if (r < 0 && r != -ECANCELED)
		return log_error_errno(r, "%s: %s", b->location, strerror(-r));
	if (any) {
		uint64_t size;
		if (backend_head(b, "config", &size) == 0)
			return log_error_errno(-EEXIST, "%s: a cairn repository exists already",
					       b->location);
		return log_error_errno(-ENOTEMPTY,
				       "%s: not empty, and not a cairn repository; refusing to "
				       "create one there",
				       b->location);
	}
	config_init_defaults(&c, o->encrypted);
	if (o->chunk_avg) {
		c.chunk_avg = o->chunk_avg;
		c.chunk_min = o->chunk_avg / 4;
		c.chunk_max = o->chunk_avg * 4;
	}
	if (o->pack_size)
		c.pack_size = o->pack_size;
	struct chunker probe_chunker;
	static const uint8_t zero_seed[32];
	if (chunker_init(&probe_chunker, c.chunk_min, c.chunk_avg, c.chunk_max, zero_seed) < 0 ||
	    c.pack_size < PACK_SIZE_MIN || c.pack_size > PACK_SIZE_MAX)
		return log_error_errno(-EINVAL, "invalid chunk or pack size");
	r = keys_generate(&master);
	if (r < 0)
		return r;
	if (o->encrypted) {
		uint8_t kid[8];
		char key[32], hex[17];
		if (!o->passphrase)
			return -EINVAL;
		r = keys_wrap(master, o->passphrase, o->passlen, c.id, o->kdf, &keyobj);
		if (r < 0)
			return log_error_errno(r, "wrapping the key: %s", strerror(-r));
		codec_random(kid, sizeof(kid));
		hex_encode(kid, sizeof(kid), hex);
		snprintf(key, sizeof(key), "keys/%s", hex);
		r = backend_put(b, key, keyobj.data, keyobj.len, BACKEND_PUT_EXCLUSIVE);
		if (r < 0)
			return log_error_errno(r, "%s: writing %s: %s", b->location, key,
					       strerror(-r));
	} else {
		memcpy(c.plain_key, master, MASTER_KEY_SIZE);
		c.has_plain_key = true;
	}
	r = config_format(&c, master, &cfg);
	if (r < 0)
		return r;
	/* The config goes last: its presence is what makes this a repository. */
	r = backend_put(b, "config", cfg.data, cfg.len, BACKEND_PUT_EXCLUSIVE);
	if (r == -EEXIST)
		return log_error_errno(r, "%s: a cairn repository exists already", b->location);
	if (r < 0)
		return log_error_errno(r, "%s: writing config: %s", b->location, strerror(-r));
	memcpy(ret_id, c.id, REPO_ID_SIZE);
	return 0;
}

const struct chunker *store_chunker(struct store *s)
{
	return &s->chunker;
}

const struct repo_config *store_config(struct store *s)
{
	return &s->config;
}

struct backend *store_backend(struct store *s)
{
	return s->backend;
}

const struct codec *store_codec(struct store *s)
{
	return &s->codec;
}

const char *store_cache_dir(struct store *s)
{
	return s->cache_dir;
}

void store_get_stats(struct store *s, struct store_stats *ret)
{
	pthread_mutex_lock(&s->mu);
	*ret = s->stats;
	pthread_mutex_unlock(&s->mu);
}

/* ---- index reconciliation ----------------------------------------------------------- */

static int cmp_listed(const void *a, const void *b)
{
	return memcmp(a, b, PACK_NAME_SIZE);
}

static const struct listed_pack *listing_find(const struct pack_listing *l, const uint8_t *name)
{
	/* bsearch and qsort must not see NULL, even with zero elements. */
	return l->n ? bsearch(name, l->v, l->n, sizeof(*l->v), cmp_listed) : NULL;
}

struct prune_ctx {
	struct store *s;
	const struct pack_listing *l;
	unsigned removed;
};

static int prune_cb(const uint8_t name[PACK_NAME_SIZE], void *ud)
{
	struct prune_ctx *c = ud;
	if (listing_find(c->l, name))
		return 0;
	c->removed++;
	return index_remove_pack(c->s->index, name);
}

static int collect_segment_cb(const char *key, uint64_t size, void *ud)
{
	return buf_append(ud, key, strlen(key) + 1);
}

/* Load the index segments we have not seen; returns how many packs they added. */
static int load_segments(struct store *s, const struct pack_listing *l, size_t *ret_added)
{
	_cleanup_buf_ struct buf keys = {0};
	size_t added = 0;
	int r = backend_list(s->backend, "index/", collect_segment_cb, &keys);
	if (r < 0)
		return log_error_errno(r, "listing index segments: %s", strerror(-r));
	for (size_t off = 0; off < keys.len; off += strlen((char *)keys.data + off) + 1) {
		const char *key = (const char *)keys.data + off;
		uint8_t name[32];
		_cleanup_buf_ struct buf data = {0};
		struct index_segment_pack *seg;
		size_t n;

		if (strncmp(key, "index/", 6) || hex_decode(key + 6, name, sizeof(name)) < 0) {
			log_warning("ignoring unexpected object %s", key);
			continue;
		}
		r = index_has_segment(s->index, name);
		if (r != 0) {
			if (r < 0)
				return r;
			continue;
		}
		r = backend_get(s->backend, key, 0, BACKEND_WHOLE, &data);
		if (r >= 0)
			r = index_segment_decode(&s->codec, data.data, data.len, &seg, &n);
		if (r == -EBADMSG || r == -ENOENT) {
			/* Not fatal: the packs' own trailers say the same, only slower. */
			log_warning("index segment %s: %s; reading pack trailers instead", key,
				    r == -EBADMSG ? "corrupt" : "vanished");
			continue;
		}
		if (r < 0)
			return log_error_errno(r, "index segment %s: %s", key, strerror(-r));
		for (size_t i = 0; r >= 0 && i < n; i++) {
			const struct listed_pack *lp = listing_find(l, seg[i].name);
			if (!lp || index_has_pack(s->index, seg[i].name) != 0)
				continue; /* deleted since, or known */
			if (lp->size != seg[i].size) {
				log_warning(
					"index segment %s: pack size mismatch; using its trailer",
					key);
				continue;
			}
			r = index_add_pack(s->index, seg[i].name, seg[i].size, seg[i].entries,
					   seg[i].n);
			added++;
		}
		index_segment_free(seg, n);
		if (r >= 0)
			r = index_add_segment(s->index, name);
		if (r < 0)
			return r;
	}
	*ret_added = added;
	return 0;
}

int store_sync_index(struct store *s, bool full)
{
	struct pack_listing l = {0};
	uint64_t synced;
	size_t from_segments = 0, from_trailers = 0, bad = 0;
	int r;

	r = index_get_synced(s->index, &synced);
	if (r < 0)
		return r;
	/* Up to date: the cache saw the latest commit, and one writer at a time means nobody
	 * else changed the backend since. A repository without commits is cheap to check. */
	if (!full && synced == s->head_seq && synced != 0)
		return 0;
	r = backend_list(s->backend, "data/", list_pack_cb, &l);
	if (r < 0) {
		log_error("listing packs in %s: %s", s->backend->location, strerror(-r));
		goto out;
	}
	if (l.n)
		qsort(l.v, l.n, sizeof(*l.v), cmp_listed);

	/* Only the writer prunes: a reader sharing the cache could list the backend just
	 * before the writer adds a pack and then drop that pack from the writer's index. */
	struct prune_ctx pc = {.s = s, .l = &l};
	if (!s->read_only)
		r = index_foreach_pack(s->index, prune_cb, &pc);
	if (r < 0)
		goto out;
	if (pc.removed)
		log_info("index: forgot %u packs no longer in the backend", pc.removed);
	r = load_segments(s, &l, &from_segments);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < l.n; i++) {
		_cleanup_free_ struct pack_entry *e = NULL;
		size_t n;
		uint64_t size;
		r = index_has_pack(s->index, l.v[i].name);
		if (r < 0)
			goto out;
		if (r > 0)
			continue;
		r = pack_read_trailer(s->backend, &s->codec, l.v[i].name, &e, &n, &size);
		if (r == -EBADMSG || r == -ENOENT) {
			bad++; /* logged naming the pack; fsck reports what it held */
			r = 0;
			continue;
		}
		if (r >= 0)
			r = index_add_pack(s->index, l.v[i].name, size, e, n);
		if (r < 0)
			goto out;
		from_trailers++;
	}
	if (from_segments || from_trailers)
		log_info("index: added %zu packs from index segments and %zu from pack trailers",
			 from_segments, from_trailers);
	r = 0;
	if (bad)
		log_error("index: %zu packs could not be read; run fsck.cairn", bad);
	else
		/* Only a complete pass may say so; otherwise the next start tries again. */
		r = index_set_synced(s->index, s->head_seq);
out:
	free(l.v);
	return r;
}
