/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * File data of the working tree: staged writes, reads, truncation and the flush that turns
 * staged bytes into stored chunks.
 *
 * A write lands in <cache>/staging/<ino> at its own offset and is recorded as a dirty range
 * (fs/meta.h). A read starts from the file's extents (chunks), overlays dirty ranges from
 * the staging file, and leaves zeros in holes. Bytes a durable meta names are never cut
 * out of a staging file: a truncation moves the file to <ino>.<stage> (see "Truncation"),
 * and a staging file goes only once a sync made that durable.
 *
 * Small files stage in memory instead. Most files an rsync writes are a few KiB, and a
 * staging file each cost an ext4 create (or the rename of a spare), a write, a read, and a
 * truncate and rename when it went: a fifth of the daemon's time in an initial rsync of
 * small files. So a file with no staging file, written only below STAGING_MEM_FILE_MAX,
 * keeps its staged bytes in i->mem at their offsets while all such buffers stay under
 * STAGING_MEM_TOTAL; its dirty ranges are recorded in meta as for any file. Memory does not
 * survive a crash, so a durable meta must never name those bytes: fs_sync stores them (or
 * writes them to staging files) before meta is synced, and meanwhile no other file may
 * take memory (fs->mem_blocked). fsync, a truncate, and a write past the limit move them to
 * a staging file first (mem_spill).
 *
 * A flush re-chunks only around what changed. The chunker is stateless from a chunk
 * boundary, so the flush starts at the boundary at or before the first dirty byte, cuts
 * chunks through the dirty bytes, and stops as soon as a new cut point falls on an old
 * chunk boundary past the last dirty byte: from there on the old chunks are exactly what
 * re-chunking would produce again. A 4 KiB write into a 1 GiB file therefore reads and
 * stores one or two chunks, not the file.
 *
 * Holes stay holes: chunking runs over contiguous covered bytes (dirty or stored) only.
 */
#include <assert.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>

#include "fs_internal.h"

/*
 * The chunk cache: decoded chunks by blob id, most recently used first. An entry that is not
 * ready is a placeholder: one thread is decoding that chunk, and others that want it wait for
 * it (cache_cond) instead of decoding it a second time. Ids name content, so an entry can
 * never hold the wrong bytes for a file: which ids a read needs is decided under the file's
 * lock, by the caller.
 *
 * Prefetch: a streaming read (the kernel's read-ahead sends 128 KiB-1 MiB requests) queues
 * the chunks that follow it, and prefetch threads decode them meanwhile. Reading is bound by
 * decoding (BLAKE2b, XChaCha20, lz4: ~3 ms per MiB on one core), and a file's reads come one
 * after the other, so without this only one core ever decodes.
 */
struct blob_cache_entry {
	struct blob_id id;
	struct buf data;
	bool ready;
	struct blob_cache_entry *next;
};

void fs_blob_cache_clear(struct fs *fs)
{
	pthread_mutex_lock(&fs->cache_mu);
	while (fs->cache_head) {
		struct blob_cache_entry *e = fs->cache_head;
		assert(e->ready); /* the prefetch threads are stopped, readers gone */
		fs->cache_head = e->next;
		buf_release(&e->data);
		free(e);
	}
	fs->cache_bytes = 0;
	fs->cache_entries = 0;
	pthread_mutex_unlock(&fs->cache_mu);
}

/* cache_mu held. */
static struct blob_cache_entry **cache_find(struct fs *fs, const struct blob_id *id)
{
	struct blob_cache_entry **pp = &fs->cache_head;
	while (*pp && memcmp((*pp)->id.b, id->b, BLOB_ID_SIZE))
		pp = &(*pp)->next;
	return *pp ? pp : NULL;
}

/* cache_mu held: a placeholder for id at the front, or NULL. */
static struct blob_cache_entry *cache_claim(struct fs *fs, const struct blob_id *id)
{
	struct blob_cache_entry *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->id = *id;
	c->next = fs->cache_head;
	fs->cache_head = c;
	fs->cache_entries++;
	return c;
}

/* Decode e's chunk into the placeholder c; cache_mu not held. */
static int cache_load(struct fs *fs, struct blob_cache_entry *c, const struct meta_extent *e)
{
	int r = store_get(fs->store, BLOB_DATA, &e->blob, &c->data);
	if (r >= 0 && c->data.len != e->len) {
		char hex[BLOB_ID_HEX_SIZE];
		blob_id_hex(&e->blob, hex);
		r = log_error_errno(-EBADMSG, "chunk %s: %zu bytes where the file expects %" PRIu32,
				    hex, c->data.len, e->len);
	}
	return r;
}

/* cache_mu held: the load of c ended with r. A failed placeholder goes (a reader that wants
 * it decodes it itself, and reports the error); a loaded one stays, and the least recently
 * used ready entries other than c go while the cache is over its bounds. The entry count is
 * bounded too: lookups walk the list, and small files make many small entries. */
static void cache_settle(struct fs *fs, struct blob_cache_entry *c, int r)
{
	if (r < 0) {
		struct blob_cache_entry **pp = &fs->cache_head;
		while (*pp != c)
			pp = &(*pp)->next;
		*pp = c->next;
		fs->cache_entries--;
		buf_release(&c->data);
		free(c);
		pthread_cond_broadcast(&fs->cache_cond);
		return;
	}
	c->ready = true;
	fs->cache_bytes += c->data.len;
	pthread_cond_broadcast(&fs->cache_cond);
	while (fs->cache_bytes > fs->opt.read_cache_bytes ||
	       fs->cache_entries > BLOB_CACHE_MAX_ENTRIES) {
		struct blob_cache_entry **victim = NULL;
		for (struct blob_cache_entry **pp = &fs->cache_head; *pp; pp = &(*pp)->next)
			if ((*pp)->ready && *pp != c)
				victim = pp;
		if (!victim)
			break;
		struct blob_cache_entry *dead = *victim;
		*victim = dead->next;
		fs->cache_bytes -= dead->data.len;
		fs->cache_entries--;
		buf_release(&dead->data);
		free(dead);
	}
}

/* Copy n bytes at off of a chunk into dst, through the cache: reads come in 128 KiB-1 MiB
 * pieces and a chunk is ~1 MiB, so each is decoded once, not 8 times. */
static int chunk_read(struct fs *fs, const struct meta_extent *e, uint64_t off, void *dst, size_t n)
{
	struct blob_cache_entry **pp, *c;
	pthread_mutex_lock(&fs->cache_mu);
	while ((pp = cache_find(fs, &e->blob)) && !(*pp)->ready)
		pthread_cond_wait(&fs->cache_cond, &fs->cache_mu);
	if (pp) {
		c = *pp;
		if (off + n > c->data.len) { /* cannot happen: ids name content */
			pthread_mutex_unlock(&fs->cache_mu);
			return log_error_errno(
				-EIO, "chunk cache: %zu bytes at %" PRIu64 " past a chunk of %zu",
				n, off, c->data.len);
		}
		memcpy(dst, c->data.data + off, n);
		*pp = c->next; /* move to the front */
		c->next = fs->cache_head;
		fs->cache_head = c;
		pthread_mutex_unlock(&fs->cache_mu);
		return 0;
	}
	c = cache_claim(fs, &e->blob);
	pthread_mutex_unlock(&fs->cache_mu);
	if (!c)
		return -ENOMEM;
	int r = cache_load(fs, c, e);
	pthread_mutex_lock(&fs->cache_mu);
	if (r >= 0)
		memcpy(dst, c->data.data + off, n);
	cache_settle(fs, c, r);
	pthread_mutex_unlock(&fs->cache_mu);
	return r;
}

/* Queue a job for the prefetch threads unless its chunk is cached, it is queued, or the
 * queue is full. cache_mu held. */
static void prefetch_locked(struct fs *fs, const struct prefetch_job *j)
{
	bool skip = fs->n_prefetchers == 0 || fs->prefetch_n == PREFETCH_QUEUE ||
		    (!j->ino && cache_find(fs, &j->e.blob));
	for (unsigned k = 0; !skip && k < fs->prefetch_n; k++) {
		const struct prefetch_job *q = &fs->prefetch_q[k];
		skip = j->ino ? q->ino == j->ino
			      : !q->ino && !memcmp(q->e.blob.b, j->e.blob.b, BLOB_ID_SIZE);
	}
	if (!skip) {
		fs->prefetch_q[fs->prefetch_n++] = *j;
		pthread_cond_signal(&fs->prefetch_cond);
	}
}

static void prefetch(struct fs *fs, const struct meta_extent *e)
{
	struct prefetch_job j = {.e = *e};
	pthread_mutex_lock(&fs->cache_mu);
	prefetch_locked(fs, &j);
	pthread_mutex_unlock(&fs->cache_mu);
}

/*
 * A file of the working tree is being read from its start: queue the first chunks of the
 * files numbered after it. Inode numbers are given in creation order, and the working tree
 * is mostly written by rsync or cp, which create a tree in the order that tar, cp and rsync
 * read it back; so these are most likely the files read next, and the decoding of each can
 * overlap the round trips that open, stat and close the one before. Each inode is queued
 * once per run of reads in that order.
 */
static void prefetch_next_files(struct fs *fs, uint64_t ino)
{
	pthread_mutex_lock(&fs->cache_mu);
	if (fs->prefetch_ino_hi < ino || fs->prefetch_ino_hi > ino + PREFETCH_FILES)
		fs->prefetch_ino_hi = ino;
	for (uint64_t k = fs->prefetch_ino_hi + 1; k <= ino + PREFETCH_FILES; k++) {
		struct prefetch_job j = {.ino = k};
		prefetch_locked(fs, &j);
	}
	fs->prefetch_ino_hi = ino + PREFETCH_FILES;
	pthread_mutex_unlock(&fs->cache_mu);
}

static int first_extent(const struct meta_extent *e, void *ud)
{
	*(struct meta_extent *)ud = *e;
	return 1;
}

/* After a read of [off, off+len): prefetch the chunks that follow it, if it streams. v holds
 * extents in order, those past the read included. */
static void prefetch_after(struct fs *fs, const struct meta_extent *v, size_t n, uint64_t off,
			   size_t len)
{
	if (len < PREFETCH_MIN_READ)
		return;
	unsigned queued = 0;
	for (size_t k = 0; k < n && queued < PREFETCH_AHEAD; k++)
		if (v[k].off >= off + len) {
			prefetch(fs, &v[k]);
			queued++;
		}
}

void *fs_prefetch_thread(void *arg)
{
	struct fs *fs = arg;
	pthread_mutex_lock(&fs->cache_mu);
	while (!fs->prefetch_stop) {
		if (fs->prefetch_n == 0) {
			pthread_cond_wait(&fs->prefetch_cond, &fs->cache_mu);
			continue;
		}
		/* Oldest first: the reader will want it soonest. */
		struct prefetch_job j = fs->prefetch_q[0];
		memmove(fs->prefetch_q, fs->prefetch_q + 1,
			--fs->prefetch_n * sizeof(fs->prefetch_q[0]));
		if (j.ino) {
			/* Without the file's lock: a stale extent only warms the cache in vain. */
			pthread_mutex_unlock(&fs->cache_mu);
			j.e.len = 0;
			int r = meta_extents(fs->meta, j.ino, 0, 1, first_extent, &j.e);
			pthread_mutex_lock(&fs->cache_mu);
			if (r < 0 || j.e.len == 0 || j.e.off != 0)
				continue; /* no such file, not a file, empty, or a hole first */
		}
		struct meta_extent e = j.e;
		if (cache_find(fs, &e.blob))
			continue;
		struct blob_cache_entry *c = cache_claim(fs, &e.blob);
		if (!c)
			continue;
		pthread_mutex_unlock(&fs->cache_mu);
		int r = cache_load(fs, c, &e);
		pthread_mutex_lock(&fs->cache_mu);
		cache_settle(fs, c, r);
	}
	pthread_mutex_unlock(&fs->cache_mu);
	return NULL;
}

struct extent_list {
	struct meta_extent *v;
	size_t n, cap;
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
	l->v[l->n++] = *e;
	return 0;
}

struct range {
	uint64_t off, len;
};
struct range_list {
	struct range *v;
	size_t n, cap;
};

static int collect_range(uint64_t off, uint64_t len, void *ud)
{
	struct range_list *l = ud;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		struct range *v = reallocarray(l->v, cap, sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = (struct range){off, len};
	return 0;
}

/* A file's staging file: <staging>/<ino> at generation 0, <ino>.<stage> after (see
 * "Truncation"). */
static int staging_path(struct fs *fs, uint64_t ino, uint64_t stage, char *out, size_t len)
{
	int n = stage ? snprintf(out, len, "%s/%" PRIu64 ".%" PRIu64, fs->staging_dir, ino, stage)
		      : snprintf(out, len, "%s/%" PRIu64, fs->staging_dir, ino);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int fs_data_stage(struct fs *fs, struct fs_inode *i, uint64_t *ret)
{
	if (!i->stage_known) {
		int r = meta_stage_get(fs->meta, i->ino, &i->stage);
		if (r == -ENOENT) /* deleted (or never stored): its files had generation 0 */
			i->stage = 0;
		else if (r < 0)
			return r;
		i->stage_known = true;
	}
	*ret = i->stage;
	return 0;
}

/* Spare staging files: creating and deleting one ext4 inode per written file made small
 * files slow (the allocator scans past recently deleted inodes: ~1 ms per create was seen
 * here), so a discarded staging file is emptied and renamed to <staging>/spare.<seq>, and
 * the next file to stage takes it by rename. Spares are names, not open descriptors, so
 * there may be many; they outlive the mount and are taken up again by the next. */
static int spare_path(struct fs *fs, uint64_t seq, char *out, size_t len)
{
	int n = snprintf(out, len, "%s/" STAGING_SPARE_PREFIX "%" PRIu64, fs->staging_dir, seq);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int fs_staging_spare_add(struct fs *fs, uint64_t seq)
{
	int r = 0;
	pthread_mutex_lock(&fs->spare_mu);
	if (seq >= fs->spare_seq)
		fs->spare_seq = seq + 1;
	if (fs->n_spares == fs->cap_spares) {
		size_t cap = fs->cap_spares ? 2 * fs->cap_spares : 256;
		uint64_t *v = cap <= STAGING_SPARES_MAX ? reallocarray(fs->spares, cap, sizeof(*v))
							: NULL;
		if (v) {
			fs->spares = v;
			fs->cap_spares = cap;
		}
	}
	if (fs->n_spares < fs->cap_spares)
		fs->spares[fs->n_spares++] = seq;
	else
		r = -ENOSPC;
	pthread_mutex_unlock(&fs->spare_mu);
	return r;
}

/* Take a spare as the staging file at path; -ENOENT when there is none to take. */
static int spare_take(struct fs *fs, const char *path)
{
	char from[4096];
	for (;;) {
		pthread_mutex_lock(&fs->spare_mu);
		if (fs->n_spares == 0) {
			pthread_mutex_unlock(&fs->spare_mu);
			return -ENOENT;
		}
		uint64_t seq = fs->spares[--fs->n_spares];
		pthread_mutex_unlock(&fs->spare_mu);
		/* NOREPLACE: a staging file left by a crash holds data still to be flushed. */
		if (spare_path(fs, seq, from, sizeof(from)) < 0)
			return -ENOENT;
		if (renameat2(AT_FDCWD, from, AT_FDCWD, path, RENAME_NOREPLACE) == 0)
			return 0;
		if (errno == EEXIST) {
			fs_staging_spare_add(fs, seq);
			return -ENOENT;
		}
	}
}

/* Empty a discarded staging file and keep it as a spare, else delete it. Closes fd. */
static void spare_give(struct fs *fs, int fd, const char *path)
{
	char to[4096];
	pthread_mutex_lock(&fs->spare_mu);
	uint64_t seq = fs->spare_seq++;
	bool room = fs->n_spares < STAGING_SPARES_MAX;
	pthread_mutex_unlock(&fs->spare_mu);
	bool kept = room && fd >= 0 && ftruncate(fd, 0) == 0 &&
		    spare_path(fs, seq, to, sizeof(to)) == 0 && rename(path, to) == 0;
	if (kept && fs_staging_spare_add(fs, seq) < 0) {
		unlink(to);
		kept = false;
	}
	if (!kept)
		unlink(path);
	if (fd >= 0)
		close(fd);
}

/* Give away ino's staging file of generation stage: a spare, else deleted. Closes fd. */
static void staging_give(struct fs *fs, uint64_t ino, uint64_t stage, int fd)
{
	char path[4096];
	if (staging_path(fs, ino, stage, path, sizeof(path)) == 0)
		spare_give(fs, fd, path);
	else if (fd >= 0)
		close(fd);
}

/*
 * Open the staging file of generation stage, creating it if missing; fresh empties it.
 * *ret_created: whether it holds nothing from before (created, a spare, or emptied).
 */
static int staging_open_at(struct fs *fs, struct fs_inode *i, uint64_t stage, bool fresh,
			   int *ret_fd, bool *ret_created)
{
	char path[4096];
	int r = staging_path(fs, i->ino, stage, path, sizeof(path));
	if (r < 0)
		return r;
	/* A spare is empty; O_TRUNC makes sure of it after a crash mid-way through giving it. */
	bool created = spare_take(fs, path) == 0 || fresh;
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | (created ? O_TRUNC : O_EXCL), 0600);
	if (fd < 0 && errno == EEXIST) /* left by a crash, or by a file closed and reopened */
		fd = open(path, O_RDWR | O_CLOEXEC);
	else if (fd >= 0)
		created = true;
	if (fd < 0)
		return log_error_errno(-errno, "staging file %s: %s", path, strerror(errno));
	*ret_fd = fd;
	*ret_created = created;
	return 0;
}

static int staging_open(struct fs *fs, struct fs_inode *i)
{
	uint64_t stage;
	bool created;
	if (i->staging_fd >= 0)
		return 0;
	/* The generation before the file exists: any sync after it may have named its bytes. */
	uint64_t gen = fs_sync_gen(fs);
	int r = fs_data_stage(fs, i, &stage);
	if (r >= 0)
		r = staging_open_at(fs, i, stage, false, &i->staging_fd, &created);
	if (r < 0)
		return r;
	i->staging_born = created ? gen + 1 : 0;
	fs_inode_staged_update(fs, i);
	return 0;
}

static int pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;
	while (len) {
		ssize_t k = pread(fd, p, len, (off_t)off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0) {
			memset(p, 0, len); /* a staging file shorter than its ranges: zeros */
			return 0;
		}
		p += k;
		len -= (size_t)k;
		off += (uint64_t)k;
	}
	return 0;
}

static int pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;
	while (len) {
		ssize_t k = pwrite(fd, p, len, (off_t)off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		p += k;
		len -= (size_t)k;
		off += (uint64_t)k;
	}
	return 0;
}

/* ---- durable staged bytes ------------------------------------------------------------- */

/*
 * Durable staged bytes. Meta names staged bytes by their dirty ranges, and a sync makes
 * meta durable. After a power cut, a staging file whose bytes never reached the disk reads
 * back short or as zeros: a durable meta naming them would return wrong bytes under the
 * file's size and time, which a later rsync takes as unchanged. So a staging file written
 * since its last fdatasync is noted (a duplicate of its descriptor on fs->unsynced) before
 * meta names the bytes, and made durable before meta commits them:
 *  - fs_sync first stores the noted files that are dirty and that nobody has open (the
 *    flush they await anyway: their bytes go to packs, and meta names none of them), then
 *    syncs the noted files still dirty, holding nothing (fs_data_store_staged, _sync_staged);
 *  - then, just before the commit, under meta's lock (meta_set_precommit), it syncs those
 *    noted since: every dirty range in the batch was recorded after its bytes were noted,
 *    and none can join the batch while that lock is held. A file whose lock was busy in an
 *    earlier pass (a write may have been between its bytes and its dirty range) is left to
 *    this one, which can tell by the dirty flag alone.
 * A file is noted once per pass (unsynced_epoch). A pass starts every write-out before it
 * waits for any (so that the fdatasyncs share journal commits: 800 small files in 60 ms
 * here), syncs the staging directory too (for the names of new staging files), and runs
 * alone, so that a commit cannot overtake a pass still syncing what it took. An fdatasync
 * that fails may have lost the bytes for good (the kernel reports a writeback error once):
 * the batch is then never committed (meta_abandon).
 */

/* Put (ino, fd) on the list the next pass takes; false when there is no room. */
static bool unsynced_add(struct fs *fs, uint64_t ino, int fd)
{
	if (fs->n_unsynced == fs->cap_unsynced) {
		size_t cap = fs->cap_unsynced ? 2 * fs->cap_unsynced : 64;
		struct fs_unsynced *v = reallocarray(fs->unsynced, cap, sizeof(*v));
		if (!v)
			return false;
		fs->unsynced = v;
		fs->cap_unsynced = cap;
	}
	fs->unsynced[fs->n_unsynced++] = (struct fs_unsynced){ino, fd};
	return true;
}

/* Bytes were written to i's staging file; meta does not name them yet. i->mu held. */
static int note_unsynced(struct fs *fs, struct fs_inode *i)
{
	if (i->unsynced_epoch == atomic_load(&fs->unsynced_epoch))
		return 0; /* on the list the next pass takes */
	int fd = fcntl(i->staging_fd, F_DUPFD_CLOEXEC, 0);
	bool noted = false;
	if (fd >= 0) {
		pthread_mutex_lock(&fs->unsynced_mu);
		noted = unsynced_add(fs, i->ino, fd);
		if (noted)
			i->unsynced_epoch = atomic_load(&fs->unsynced_epoch);
		pthread_mutex_unlock(&fs->unsynced_mu);
	}
	if (noted)
		return 0;
	if (fd >= 0)
		close(fd);
	/* No room to note it: make the bytes durable now. */
	if (fdatasync(i->staging_fd) < 0)
		return log_error_errno(-errno, "inode %" PRIu64 ": syncing staged data: %s", i->ino,
				       strerror(errno));
	return 0;
}

/* Whether meta may name staged bytes of ino: 1 while its file is dirty, -1 when that cannot
 * be told now. Under meta's lock the flag is enough: a dirty range in the batch was added
 * after the flag was set, and the flag is cleared only once the batch names none. Else a
 * write may be between its bytes and its dirty range: the file's lock must be free. */
static int still_named(struct fs *fs, uint64_t ino, bool meta_locked)
{
	struct fs_inode *i = fs_inode_get(fs, ino);
	int named = -1;
	if (!i)
		return 1;
	if (meta_locked)
		named = atomic_load(&i->dirty);
	else if (pthread_mutex_trylock(&i->mu) == 0) {
		named = i->dirty;
		pthread_mutex_unlock(&i->mu);
	}
	fs_inode_put(fs, i);
	return named;
}

void fs_data_store_staged(struct fs *fs)
{
	pthread_mutex_lock(&fs->unsynced_mu);
	size_t n = fs->n_unsynced;
	uint64_t *v = n ? calloc(n, sizeof(*v)) : NULL;
	for (size_t k = 0; v && k < n; k++)
		v[k] = fs->unsynced[k].ino;
	pthread_mutex_unlock(&fs->unsynced_mu);
	for (size_t k = 0; v && k < n; k++) {
		struct fs_inode *i = fs_inode_get(fs, v[k]);
		if (!i)
			continue;
		pthread_mutex_lock(&fs->tab_mu);
		bool open = i->nopen > 0;
		pthread_mutex_unlock(&fs->tab_mu);
		if (i->dirty && !open)
			(void)fs_data_flush(fs, i); /* a failure is logged; the sync follows */
		fs_inode_put(fs, i);
	}
	free(v);
}

int fs_data_sync_staged(struct fs *fs, bool meta_locked)
{
	pthread_mutex_lock(&fs->unsynced_pass_mu);
	pthread_mutex_lock(&fs->unsynced_mu);
	struct fs_unsynced *v = fs->unsynced;
	size_t n = fs->n_unsynced, m = 0;
	fs->unsynced = NULL;
	fs->n_unsynced = fs->cap_unsynced = 0;
	atomic_fetch_add(&fs->unsynced_epoch, 1);
	pthread_mutex_unlock(&fs->unsynced_mu);
	for (size_t k = 0; k < n; k++) {
		int named = still_named(fs, v[k].ino, meta_locked);
		if (named < 0) { /* busy: the next pass, under meta's lock, can tell */
			pthread_mutex_lock(&fs->unsynced_mu);
			named = !unsynced_add(fs, v[k].ino, v[k].fd);
			pthread_mutex_unlock(&fs->unsynced_mu);
			if (!named)
				continue;
		}
		if (named)
			v[m++] = v[k];
		else
			close(v[k].fd);
	}
	/* Start every write-out first: the fdatasyncs then mostly share journal commits. */
	for (size_t k = 0; k < m; k++)
		(void)sync_file_range(v[k].fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	int r = 0;
	for (size_t k = 0; k < m; k++) {
		if (r >= 0 && fdatasync(v[k].fd) < 0)
			r = log_error_errno(-errno,
					    "inode %" PRIu64 ": staged data could not be made "
					    "durable: %s",
					    v[k].ino, strerror(errno));
		close(v[k].fd);
	}
	free(v);
	if (m && r >= 0 && (r = fsync_dir_path(fs->staging_dir)) < 0)
		r = log_error_errno(r, "staging directory %s: fsync: %s", fs->staging_dir,
				    strerror(-r));
	pthread_mutex_unlock(&fs->unsynced_pass_mu);
	return r;
}

void fs_data_unsynced_free(struct fs *fs)
{
	for (size_t k = 0; k < fs->n_unsynced; k++)
		close(fs->unsynced[k].fd);
	free(fs->unsynced);
	fs->unsynced = NULL;
	fs->n_unsynced = fs->cap_unsynced = 0;
}

/* ---- staged bytes held in memory ------------------------------------------------------- */

/* Let i->mem hold at least end bytes, within the limits; false: stage in a file. i->mu held.
 * A file already holding memory may grow while fs_sync is under way: that sync collected it
 * and stores it after this write. */
static bool mem_reserve(struct fs *fs, struct fs_inode *i, uint64_t end)
{
	if (end <= i->mem_cap)
		return true;
	if (end > STAGING_MEM_FILE_MAX)
		return false;
	size_t cap = MAX(i->mem_cap, (size_t)4096);
	while (cap < end)
		cap *= 2;
	cap = MIN(cap, (size_t)STAGING_MEM_FILE_MAX);
	pthread_mutex_lock(&fs->tab_mu);
	bool ok = (i->in_mem || !fs->mem_blocked) &&
		  fs->mem_bytes + (cap - i->mem_cap) <= STAGING_MEM_TOTAL;
	if (ok) {
		fs->mem_bytes += cap - i->mem_cap;
		/* On fs->staged at once: fs_sync finds the files holding memory there. */
		i->in_mem = true;
		fs_inode_staged_update_locked(fs, i);
	}
	pthread_mutex_unlock(&fs->tab_mu);
	if (!ok)
		return false;
	uint8_t *p = realloc(i->mem, cap);
	if (!p) {
		pthread_mutex_lock(&fs->tab_mu);
		fs->mem_bytes -= cap - i->mem_cap;
		i->in_mem = i->mem != NULL;
		fs_inode_staged_update_locked(fs, i);
		pthread_mutex_unlock(&fs->tab_mu);
		return false;
	}
	i->mem = p;
	i->mem_cap = cap;
	return true;
}

/* i->mu held. */
static void mem_free(struct fs *fs, struct fs_inode *i)
{
	if (!i->mem)
		return;
	free(i->mem);
	pthread_mutex_lock(&fs->tab_mu);
	fs->mem_bytes -= i->mem_cap;
	i->in_mem = false;
	fs_inode_staged_update_locked(fs, i);
	pthread_mutex_unlock(&fs->tab_mu);
	i->mem = NULL;
	i->mem_len = i->mem_cap = 0;
}

/* Move the staged bytes i holds in memory to its staging file. i->mu held. */
static int mem_spill(struct fs *fs, struct fs_inode *i)
{
	if (!i->mem)
		return 0;
	int r = staging_open(fs, i);
	if (r >= 0)
		r = pwrite_all(i->staging_fd, i->mem, i->mem_len, 0);
	if (r >= 0)
		r = note_unsynced(fs, i);
	if (r < 0)
		return log_error_errno(r, "inode %" PRIu64 ": staging %zu bytes held in memory: %s",
				       i->ino, i->mem_len, strerror(-r));
	mem_free(fs, i);
	return 0;
}

int fs_data_mem_spill(struct fs *fs, struct fs_inode *i)
{
	pthread_mutex_lock(&i->mu);
	int r = mem_spill(fs, i);
	pthread_mutex_unlock(&i->mu);
	return r;
}

/* Stage len bytes at off: in memory if the file may, else in its staging file. i->mu held. */
static int staged_write(struct fs *fs, struct fs_inode *i, const void *buf, size_t len,
			uint64_t off)
{
	/* Memory holds all of a file's staged bytes or none: it starts on a file with none. */
	bool fresh = !i->dirty && i->staging_fd < 0;
	if ((i->mem || fresh) && off + len <= STAGING_MEM_FILE_MAX &&
	    mem_reserve(fs, i, off + len)) {
		/* Below mem_len every byte is written or zeroed: a spill writes them all. */
		if (off > i->mem_len)
			memset(i->mem + i->mem_len, 0, (size_t)off - i->mem_len);
		memcpy(i->mem + off, buf, len);
		i->mem_len = MAX(i->mem_len, (size_t)(off + len));
		return 0;
	}
	int r = mem_spill(fs, i);
	if (r >= 0)
		r = staging_open(fs, i);
	if (r >= 0)
		r = pwrite_all(i->staging_fd, buf, len, off);
	return r < 0 ? r : note_unsynced(fs, i);
}

/* Read len staged bytes at off, from memory or the staging file; zeros past their end. */
static int staged_read(struct fs *fs, struct fs_inode *i, uint8_t *dst, size_t len, uint64_t off)
{
	if (i->mem) {
		size_t have = off < i->mem_len ? (size_t)MIN((uint64_t)len, i->mem_len - off) : 0;
		memcpy(dst, i->mem + off, have);
		memset(dst + have, 0, len - have);
		return 0;
	}
	int r = staging_open(fs, i);
	return r < 0 ? r : pread_all(i->staging_fd, dst, len, off);
}

/* Fill dst with [off, off+len) of the file made of extents v: their bytes, zeros between
 * them (holes). Only the holes are zeroed, not all of dst first: that was a second pass over
 * every byte read. Correct in any order of v: [off, done) holds either extent bytes or
 * zeros. */
static int read_extents(struct fs *fs, const struct meta_extent *v, size_t n, uint8_t *dst,
			size_t len, uint64_t off)
{
	uint64_t done = off;
	for (size_t k = 0; k < n; k++) {
		uint64_t from = MAX(off, v[k].off), to = MIN(off + len, v[k].off + v[k].len);
		if (from >= to)
			continue;
		if (from > done)
			memset(dst + (done - off), 0, (size_t)(from - done));
		int r = chunk_read(fs, &v[k], from - v[k].off, dst + (from - off),
				   (size_t)(to - from));
		if (r < 0)
			return r;
		done = MAX(done, to);
	}
	if (done < off + len)
		memset(dst + (done - off), 0, (size_t)(off + len - done));
	return 0;
}

ssize_t fs_data_read(struct fs *fs, struct fs_inode *i, void *buf, size_t len, uint64_t off,
		     uint64_t size, bool reader)
{
	struct extent_list el = {0};
	struct range_list rl = {0};
	uint8_t *dst = buf;
	int r;

	/* Meta lost its batch: what i says of its staged bytes may no longer match meta. */
	if (meta_lost(fs->meta))
		return -EIO;
	if (off >= size)
		return 0;
	len = (size_t)MIN((uint64_t)len, size - off);
	/* Collect first: meta holds its lock while iterating, and chunk reads may be slow. A
	 * streaming read asks for the extents that follow it too, to prefetch them. */
	bool ahead = reader && len >= PREFETCH_MIN_READ;
	r = meta_extents(fs->meta, i->ino, off, ahead ? len + PREFETCH_BYTES : len, collect_extent,
			 &el);
	if (r >= 0)
		r = read_extents(fs, el.v, el.n, dst, len, off);
	if (r >= 0 && i->dirty)
		r = meta_dirty_ranges(fs->meta, i->ino, collect_range, &rl);
	for (size_t k = 0; r >= 0 && k < rl.n; k++) {
		uint64_t from = MAX(off, rl.v[k].off),
			 to = MIN(off + len, rl.v[k].off + rl.v[k].len);
		if (from >= to)
			continue;
		r = staged_read(fs, i, dst + (from - off), (size_t)(to - from), from);
	}
	if (r >= 0 && ahead)
		prefetch_after(fs, el.v, el.n, off, len);
	if (r >= 0 && reader && off == 0)
		prefetch_next_files(fs, i->ino);
	free(el.v);
	free(rl.v);
	return r < 0 ? r : (ssize_t)len;
}

ssize_t fs_data_read_extents(struct fs *fs, const struct meta_extent *v, size_t n, void *buf,
			     size_t len, uint64_t off, uint64_t size)
{
	uint8_t *dst = buf;
	int r = 0;
	if (off >= size)
		return 0;
	len = (size_t)MIN((uint64_t)len, size - off);
	r = read_extents(fs, v, n, dst, len, off);
	if (r >= 0)
		prefetch_after(fs, v, n, off, len);
	return r < 0 ? r : (ssize_t)len;
}

static int mark_dirty(struct fs *fs, struct fs_inode *i)
{
	if (i->dirty)
		return 0;
	i->dirty = true;
	fs_inode_staged_update(fs, i);
	/* The parents' trees hold this file's size and chunks: they must be rewritten. */
	return fs_touch_parents(fs, i->ino);
}

int fs_data_write(struct fs *fs, struct fs_inode *i, const void *buf, size_t len, uint64_t off)
{
	struct meta_inode mi;
	int r = 0;
	/* Meta lost its batch: the staging file may be one a durable meta names. */
	if (meta_lost(fs->meta))
		return -EIO;
	if (!atomic_load_explicit(&i->is_reg, memory_order_relaxed)) {
		r = meta_inode_get(fs->meta, i->ino, &mi);
		if (r < 0)
			return r;
		if (!S_ISREG(mi.mode))
			return -EINVAL;
	}
	r = staged_write(fs, i, buf, len, off);
	if (r < 0)
		return log_error_errno(r, "inode %" PRIu64 ": staging %zu bytes at %" PRIu64 ": %s",
				       i->ino, len, off, strerror(-r));
	/* Dirty first: whatever fails below, the flush and fs_sync visit this file (and what
	 * it holds in memory) all the same. */
	r = mark_dirty(fs, i);
	if (r >= 0)
		r = meta_dirty_add(fs->meta, i->ino, off, len);
	if (r < 0)
		return r;
	/* Only size and times: namespace operations change this row's other columns meanwhile. */
	r = meta_inode_extend(fs->meta, i->ino, off + len, fs->kernel_times ? 0 : fs_now_ns());
	pthread_mutex_lock(&fs->tab_mu);
	fs->staged_bytes += len;
	pthread_mutex_unlock(&fs->tab_mu);
	return r;
}

/*
 * Truncation. Bytes a durable meta names are never cut out of a staging file: after a crash
 * that meta would read them back as zeros (a file fsynced whole, then cut and rewritten,
 * came back at its old length with its tail zeroed). So a file whose staging file may be
 * named so (not created since the last sync: staging_durable) moves to a new one,
 * generation stage + 1, holding its staged bytes below the new size (stage_prepare). Meta
 * takes the cut and the new generation in one step (meta_truncate), so a failure before
 * that leaves the file as it was. The old file is kept (i->retired_fd) until a sync made the
 * move durable: fs_sync's cleanup drops it. A staging file created since the last sync is
 * cut in place.
 */

/* Whether a durable meta may name bytes in i's staging file. */
static bool staging_durable(struct fs *fs, struct fs_inode *i)
{
	return i->staging_fd >= 0 && i->staging_born != fs_sync_gen(fs) + 1;
}

/* A staging file being prepared for a truncation. */
struct stage_next {
	int fd;
	uint64_t stage;
	size_t copied; /* staged bytes copied into it */
	char path[4096];
};

struct stage_copy {
	struct fs_inode *i;
	int to;
	uint64_t end; /* the new size: nothing from here on */
	uint8_t *buf;
	size_t copied;
};

static int copy_range(uint64_t off, uint64_t len, void *ud)
{
	struct stage_copy *c = ud;
	len = off < c->end ? MIN(len, c->end - off) : 0;
	while (len) {
		size_t n = (size_t)MIN(len, (uint64_t)STAGE_COPY_BUF);
		int r = pread_all(c->i->staging_fd, c->buf, n, off);
		if (r >= 0)
			r = pwrite_all(c->to, c->buf, n, off);
		if (r < 0)
			return r;
		off += n;
		len -= n;
		c->copied += n;
	}
	return 0;
}

/* Create the next generation's staging file with i's staged bytes below new_size. Only
 * i->mu held: the copy may be long, and meta does not change meanwhile. */
static int stage_prepare(struct fs *fs, struct fs_inode *i, uint64_t new_size,
			 struct stage_next *nx)
{
	struct stage_copy c = {.i = i, .end = new_size};
	bool created;
	int r = fs_data_stage(fs, i, &nx->stage);
	nx->stage++;
	if (r >= 0)
		r = staging_path(fs, i->ino, nx->stage, nx->path, sizeof(nx->path));
	if (r >= 0)
		r = staging_open_at(fs, i, nx->stage, true, &nx->fd, &created);
	if (r < 0)
		return r;
	c.to = nx->fd;
	c.buf = malloc(STAGE_COPY_BUF);
	r = c.buf ? meta_dirty_ranges(fs->meta, i->ino, copy_range, &c) : -ENOMEM;
	free(c.buf);
	nx->copied = c.copied;
	return r;
}

static void stage_abandon(struct stage_next *nx)
{
	if (nx->fd < 0)
		return;
	close(nx->fd);
	unlink(nx->path);
	nx->fd = -1;
}

/* Close and give away the staging file a truncation replaced. i->mu held. */
void fs_data_drop_retired(struct fs *fs, struct fs_inode *i)
{
	if (i->retired_fd < 0)
		return;
	staging_give(fs, i->ino, i->retired_stage, i->retired_fd);
	i->retired_fd = -1;
	fs_inode_staged_update(fs, i);
}

/* The cut, now that nothing can fail short of meta: under the sync lock (read), so that a
 * durable meta has all of it or none, and so that staging_durable holds still. Past
 * meta_truncate only mark_dirty can fail (the parents' trees not marked for the next
 * checkpoint); the cut itself stands then, and the error is returned. */
static int truncate_commit(struct fs *fs, struct fs_inode *i, uint64_t new_size, uint64_t cut,
			   size_t keep, struct stage_next *nx)
{
	int r = meta_truncate(fs->meta, i->ino, new_size, cut, keep, nx->fd >= 0 ? nx->stage : 0);
	if (r < 0)
		return r;
	if (nx->fd >= 0) {
		/* A retired file left is one whose successor was durable before this began. */
		fs_data_drop_retired(fs, i);
		i->retired_fd = i->staging_fd;
		i->retired_stage = i->stage;
		i->retired_gen = fs->sync_gen;
		i->staging_fd = nx->fd;
		i->staging_born = fs->sync_gen + 1;
		i->stage = nx->stage;
		nx->fd = -1;
	} else if (i->staging_fd >= 0 && ftruncate(i->staging_fd, (off_t)new_size) < 0) {
		/* Only bytes nobody names are left past the end: reads stop at the size. */
		log_warning("inode %" PRIu64 ": cutting its staging file: %s", i->ino,
			    strerror(errno));
	}
	return mark_dirty(fs, i);
}

int fs_data_truncate(struct fs *fs, struct fs_inode *i, uint64_t old_size, uint64_t new_size)
{
	struct extent_list el = {0};
	struct stage_next nx = {.fd = -1};
	_cleanup_free_ uint8_t *tmp = NULL;
	size_t keep = 0;
	int r = 0;

	if (meta_lost(fs->meta))
		return -EIO;
	if (new_size >= old_size)
		/* Growing leaves a hole. */
		return meta_inode_set_size(fs->meta, i->ino, new_size);
	r = mem_spill(fs, i);
	if (r >= 0 && i->dirty)
		r = staging_open(fs, i);
	if (r < 0)
		return r;
	/* A chunk cut in two keeps its prefix as staged data; everything after goes. */
	r = meta_extents(fs->meta, i->ino, new_size, 1, collect_extent, &el);
	uint64_t cut = new_size;
	if (r >= 0 && el.n && el.v[0].off < new_size) {
		keep = (size_t)(new_size - el.v[0].off);
		tmp = malloc(keep);
		cut = el.v[0].off;
		r = tmp ? 0 : -ENOMEM;
		if (r >= 0) {
			ssize_t n = fs_data_read(fs, i, tmp, keep, cut, old_size, false);
			r = n < 0 ? (int)n : 0;
		}
	}
	free(el.v);
	while (r >= 0) {
		if (staging_durable(fs, i) && nx.fd < 0)
			r = stage_prepare(fs, i, new_size, &nx);
		/* The kept prefix: the bytes a read gives there now, so writing them where a
		 * durable meta may name staged bytes changes nothing it reads. */
		if (r >= 0 && keep && nx.fd < 0)
			r = staging_open(fs, i);
		int fd = nx.fd >= 0 ? nx.fd : i->staging_fd;
		if (r >= 0 && keep)
			r = pwrite_all(fd, tmp, keep, cut);
		/* Fsynced staged bytes, or stored ones (the kept prefix), may be among them:
		 * on disk before a meta names them here. */
		if (r >= 0 && (keep || nx.copied) && fdatasync(fd) < 0)
			r = -errno;
		if (r < 0)
			break;
		pthread_rwlock_rdlock(&fs->sync_lock);
		/* A sync since the check above: that file is named now, so it moves after all. */
		bool again = staging_durable(fs, i) && nx.fd < 0;
		if (!again)
			r = truncate_commit(fs, i, new_size, cut, keep, &nx);
		pthread_rwlock_unlock(&fs->sync_lock);
		if (!again)
			break;
	}
	stage_abandon(&nx);
	return r;
}

void fs_data_mark_clean(struct fs *fs, struct fs_inode *i)
{
	mem_free(fs, i);
	i->dirty = false;
	i->clean_gen = fs->sync_gen;
	fs_inode_staged_update(fs, i);
}

void fs_data_discard(struct fs *fs, struct fs_inode *i)
{
	uint64_t stage;
	if (fs_data_stage(fs, i, &stage) < 0) {
		if (i->staging_fd >= 0)
			close(i->staging_fd);
	} else
		staging_give(fs, i->ino, stage, i->staging_fd);
	mem_free(fs, i);
	i->staging_fd = -1;
	i->staging_born = 0;
	i->dirty = false;
	fs_inode_staged_update(fs, i);
}

int fs_data_fsync(struct fs *fs, struct fs_inode *i, bool datasync)
{
	int r = mem_spill(fs, i);
	if (r < 0)
		return r;
	if (i->staging_fd >= 0 && (datasync ? fdatasync(i->staging_fd) : fsync(i->staging_fd)) < 0)
		return log_error_errno(-errno, "inode %" PRIu64 ": fsync of staged data: %s",
				       i->ino, strerror(errno));
	return 0;
}

/* ---- flush ---------------------------------------------------------------------------- */

struct flush_ctx {
	struct fs *fs;
	struct fs_inode *i;
	uint64_t size;
	struct range_list dirty;
	uint8_t *buf;
	size_t cap, have;
};

/* The extent covering p, if any. */
static int extent_at(struct flush_ctx *c, uint64_t p, struct meta_extent *ret, bool *found)
{
	struct extent_list el = {0};
	int r = meta_extents(c->fs->meta, c->i->ino, p, 1, collect_extent, &el);
	*found = r >= 0 && el.n > 0 && el.v[0].off <= p && p < el.v[0].off + el.v[0].len;
	if (*found)
		*ret = el.v[0];
	free(el.v);
	return r;
}

/* End of the contiguous covered (dirty or stored) bytes starting at p; p itself if a hole. */
static int coverage_end(struct flush_ctx *c, uint64_t p, uint64_t *ret)
{
	uint64_t end = p;
	for (;;) {
		bool advanced = false, found;
		struct meta_extent e;
		for (size_t k = 0; k < c->dirty.n; k++) {
			const struct range *d = &c->dirty.v[k];
			if (d->off <= end && end < d->off + d->len) {
				end = d->off + d->len;
				advanced = true;
			}
		}
		int r = extent_at(c, end, &e, &found);
		if (r < 0)
			return r;
		if (found) {
			end = e.off + e.len;
			advanced = true;
		}
		if (!advanced || end >= c->size)
			break;
	}
	*ret = MIN(end, c->size);
	return 0;
}

static bool dirty_before(struct flush_ctx *c, uint64_t p)
{
	/* Is any dirty byte at or after p still waiting, in a range that starts before p? */
	for (size_t k = 0; k < c->dirty.n; k++)
		if (c->dirty.v[k].off < p && c->dirty.v[k].off + c->dirty.v[k].len > p)
			return true;
	return false;
}

/* Re-chunk from start (a chunk boundary) until the cuts realign; returns where it stopped. */
static int flush_region(struct flush_ctx *c, uint64_t start, uint64_t last_dirty_end,
			uint64_t *ret_end)
{
	const struct chunker *ch = store_chunker(c->fs->store);
	struct extent_list out = {0};
	uint64_t pos = start, run_end;
	size_t head = 0; /* the bytes from pos on are c->buf[head, head + have) */
	int r = coverage_end(c, start, &run_end);
	c->have = 0;
	while (r >= 0 && pos < run_end) {
		/* The chunker places a cut once it sees max_size bytes or the end of the run.
		 * Refill only when it needs more, moving what is left to the front first: moving
		 * it after every chunk copied the whole buffer once per chunk. */
		if (c->have < ch->max_size && pos + c->have < run_end) {
			if (head) {
				memmove(c->buf, c->buf + head, c->have);
				head = 0;
			}
			/* Fill from the merged view, never past the covered run. */
			uint64_t load = pos + c->have;
			size_t want = (size_t)MIN((uint64_t)(c->cap - c->have), run_end - load);
			ssize_t n = fs_data_read(c->fs, c->i, c->buf + c->have, want, load, c->size,
						 false);
			if (n < 0) {
				r = (int)n;
				break;
			}
			c->have += (size_t)n;
		}
		bool eof = pos + c->have >= run_end;
		size_t n = chunker_find(ch, c->buf + head, c->have, eof);
		if (n == 0)
			break;
		struct meta_extent e = {.off = pos, .len = (uint32_t)n};
		r = store_put(c->fs->store, BLOB_DATA, c->buf + head, n, &e.blob, NULL);
		if (r < 0)
			break;
		r = collect_extent(&e, &out);
		head += n;
		c->have -= n;
		pos += n;
		/* Realigned? Past every dirty byte of this run, on an old boundary. */
		if (r >= 0 && pos >= last_dirty_end && !dirty_before(c, pos) && pos < run_end) {
			struct meta_extent old;
			bool found;
			r = extent_at(c, pos, &old, &found);
			if (r >= 0 && found && old.off == pos)
				break;
		}
	}
	if (r >= 0)
		r = meta_extents_replace(c->fs->meta, c->i->ino, start, pos - start, out.v, out.n);
	if (r >= 0)
		r = meta_dirty_clear(c->fs->meta, c->i->ino, start, pos - start);
	free(out.v);
	if (r >= 0)
		*ret_end = pos;
	return r;
}

/* Re-chunk around every dirty range of c->dirty. */
static int flush_ranges(struct flush_ctx *c)
{
	int r = 0;
	/* Room for two maximal chunks, and no more than the file: a region never reads past its
	 * end, and most files are small. */
	c->cap = (size_t)MIN(2 * (uint64_t)store_chunker(c->fs->store)->max_size, MAX(c->size, 1));
	c->buf = malloc(c->cap);
	if (!c->buf)
		return -ENOMEM;
	for (size_t k = 0; r >= 0 && k < c->dirty.n; k++) {
		const struct range *d = &c->dirty.v[k];
		uint64_t start = d->off, end = 0;
		struct meta_extent e;
		bool found;
		if (d->off >= c->size)
			continue;
		/* Start on the chunk boundary at or before the first dirty byte. */
		r = extent_at(c, d->off, &e, &found);
		if (r >= 0 && found)
			start = e.off;
		/* The last dirty byte this region must cover: contiguous dirty ranges go along. */
		uint64_t last = d->off + d->len;
		if (r >= 0)
			r = flush_region(c, start, last, &end);
		/* Skip ranges the region already consumed. */
		while (r >= 0 && k + 1 < c->dirty.n &&
		       c->dirty.v[k + 1].off + c->dirty.v[k + 1].len <= end)
			k++;
		if (r >= 0 && k + 1 < c->dirty.n && c->dirty.v[k + 1].off < end) {
			/* Partly consumed: what is left starts at end. */
			struct range *nx = &c->dirty.v[k + 1];
			nx->len -= end - nx->off;
			nx->off = end;
		}
	}
	return r;
}

/* The whole file, [0, size), is staged in memory: its chunks are cut from there, and they
 * replace whatever extents it had. No read, no copy, no lookup of old boundaries. */
static int flush_mem_whole(struct flush_ctx *c)
{
	const struct chunker *ch = store_chunker(c->fs->store);
	struct extent_list out = {0};
	uint64_t pos = 0;
	int r = 0;
	while (r >= 0 && pos < c->size) {
		size_t n = chunker_find(ch, c->i->mem + pos, (size_t)(c->size - pos), true);
		struct meta_extent e = {.off = pos, .len = (uint32_t)n};
		if (n == 0)
			r = -EIO; /* cannot happen: at the end the chunker cuts what is left */
		if (r >= 0)
			r = store_put(c->fs->store, BLOB_DATA, c->i->mem + pos, n, &e.blob, NULL);
		if (r >= 0)
			r = collect_extent(&e, &out);
		pos += n;
	}
	if (r >= 0)
		r = meta_extents_replace(c->fs->meta, c->i->ino, 0, c->size, out.v, out.n);
	if (r >= 0)
		r = meta_dirty_clear(c->fs->meta, c->i->ino, 0, c->size);
	free(out.v);
	return r;
}

int fs_data_flush(struct fs *fs, struct fs_inode *i)
{
	struct flush_ctx c = {.fs = fs, .i = i};
	struct meta_inode mi;
	int r;

	pthread_mutex_lock(&i->mu);
	/* Blobs stored here must not reach a durable meta before they are durable themselves:
	 * fs_sync (checkpoint.c) takes this lock for writing around store_flush + meta_sync. */
	pthread_rwlock_rdlock(&fs->sync_lock);
	r = meta_inode_get(fs->meta, i->ino, &mi);
	if (r == -ENOENT) {
		/* Deleted meanwhile: nothing of it is to be stored. */
		fs_data_mark_clean(fs, i);
		r = 0;
		goto out;
	}
	/* Staged bytes past the end (a race of a write with a truncate) are not file data. */
	if (r >= 0 && i->dirty)
		r = meta_dirty_clear(fs->meta, i->ino, mi.size, UINT64_MAX - mi.size);
	if (r >= 0 && i->dirty)
		r = meta_dirty_ranges(fs->meta, i->ino, collect_range, &c.dirty);
	if (r < 0 || c.dirty.n == 0) {
		if (r >= 0 && i->dirty)
			fs_data_mark_clean(fs, i);
		goto out;
	}
	c.size = mi.size;
	uint64_t staged = 0;
	for (size_t k = 0; k < c.dirty.n; k++)
		staged += c.dirty.v[k].len;
	/* Most small files are staged whole in memory: chunk them where they are. */
	if (i->mem && c.dirty.n == 1 && c.dirty.v[0].off == 0 && c.dirty.v[0].len >= c.size)
		r = flush_mem_whole(&c);
	else
		r = flush_ranges(&c);
	/* Whatever a region could not consume stays staged, and the file stays dirty. */
	struct range_list left = {0};
	if (r >= 0)
		r = meta_dirty_ranges(fs->meta, i->ino, collect_range, &left);
	if (r >= 0 && left.n) {
		log_warning("inode %" PRIu64
			    ": %zu staged ranges left after a flush; retrying later",
			    i->ino, left.n);
		r = -EAGAIN;
	}
	free(left.v);
	if (r >= 0) {
		/* Memory goes now: a crash before the next fs_sync loses the extents that
		 * replaced it too, as meta never named it durably. */
		fs_data_mark_clean(fs, i);
		r = fs_touch_parents(fs, i->ino);
		pthread_mutex_lock(&fs->tab_mu);
		fs->staged_bytes -= MIN(fs->staged_bytes, staged);
		pthread_mutex_unlock(&fs->tab_mu);
	}
	if (r < 0)
		log_error("inode %" PRIu64 ": flushing staged data: %s (kept staged)", i->ino,
			  strerror(-r));
out:
	pthread_rwlock_unlock(&fs->sync_lock);
	free(c.buf);
	free(c.dirty.v);
	pthread_mutex_unlock(&i->mu);
	return r;
}
