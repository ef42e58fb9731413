/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The working tree's life: opening it at mount (from the local meta.db, or rebuilt from the
 * latest commit when that is missing or stale), the in-memory inode table, the background
 * flush threads, the periodic sync, checkpoints (flush everything, write the trees, commit)
 * and the final checkpoint at unmount.
 *
 * Durability order, as DESIGN.md's safety rules want it:
 *   chunks put -> store_flush (packs, index segment durable) -> meta_sync (extents durable)
 *   -> staging files deleted;  trees put -> store_commit (packs, then the commit).
 * So a durable meta never names a chunk that is not durable, and a staging file goes only
 * when what replaced it is durable.
 */
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

#include "fs_internal.h"
#include "rotate.h"
#include "tree.h"
#include "uring.h"

#define SYNC_INTERVAL_NS (2ull * 1000000000)
#define FLUSH_BATCH_NS (100ull * 1000000)

/* ---- inode table ------------------------------------------------------------------------ */

struct fs_inode *fs_inode_get(struct fs *fs, uint64_t ino)
{
	size_t b = ino % FS_INODE_BUCKETS;
	pthread_mutex_lock(&fs->tab_mu);
	struct fs_inode *i = fs->tab[b];
	while (i && i->ino != ino)
		i = i->hnext;
	if (!i) {
		i = calloc(1, sizeof(*i));
		if (i) {
			i->ino = ino;
			i->staging_fd = -1;
			i->retired_fd = -1;
			pthread_mutex_init(&i->mu, NULL);
			i->hnext = fs->tab[b];
			fs->tab[b] = i;
		}
	}
	if (i)
		i->refs++;
	pthread_mutex_unlock(&fs->tab_mu);
	return i;
}

void fs_inode_staged_update(struct fs *fs, struct fs_inode *i)
{
	pthread_mutex_lock(&fs->tab_mu);
	fs_inode_staged_update_locked(fs, i);
	pthread_mutex_unlock(&fs->tab_mu);
}

void fs_inode_staged_update_locked(struct fs *fs, struct fs_inode *i)
{
	bool want = i->dirty || i->staging_fd >= 0 || i->retired_fd >= 0 || i->in_mem;
	if (want && !i->staged) {
		i->sprev = NULL;
		i->snext = fs->staged;
		if (fs->staged)
			fs->staged->sprev = i;
		fs->staged = i;
	} else if (!want && i->staged) {
		if (i->sprev)
			i->sprev->snext = i->snext;
		else
			fs->staged = i->snext;
		if (i->snext)
			i->snext->sprev = i->sprev;
	}
	i->staged = want;
}

/* Free an entry nobody needs: no kernel reference, no handle, nothing staged (so not on
 * fs->staged either). tab_mu held. */
static void inode_maybe_free_locked(struct fs *fs, struct fs_inode *i)
{
	if (i->refs || i->nlookup || i->nopen || i->dirty || i->queued || i->staging_fd >= 0 ||
	    i->retired_fd >= 0 || i->in_mem)
		return;
	struct fs_inode **pp = &fs->tab[i->ino % FS_INODE_BUCKETS];
	while (*pp != i)
		pp = &(*pp)->hnext;
	*pp = i->hnext;
	pthread_mutex_destroy(&i->mu);
	free(i);
}

void fs_inode_put(struct fs *fs, struct fs_inode *i)
{
	pthread_mutex_lock(&fs->tab_mu);
	i->refs--;
	inode_maybe_free_locked(fs, i);
	pthread_mutex_unlock(&fs->tab_mu);
}

void fs_flush_later(struct fs *fs, struct fs_inode *i)
{
	pthread_mutex_lock(&fs->tab_mu);
	if (!i->queued) {
		i->queued = true;
		i->due_ns = now_ns() + (uint64_t)(fs->opt.flush_delay * 1e9);
		/* Append: due times grow in arrival order since the delay is fixed. A flusher
		 * waiting for a non-empty queue wakes at its head's due time, before this one's,
		 * so only a new head needs one: a wakeup per closed file would cost a context
		 * switch each (tens of microseconds across CPUs in a VM). */
		bool was_empty = !fs->queue;
		i->qnext = NULL;
		*fs->queue_tail = i;
		fs->queue_tail = &i->qnext;
		if (was_empty)
			pthread_cond_signal(&fs->queue_cond);
	}
	pthread_mutex_unlock(&fs->tab_mu);
}

static void deadline(struct timespec *ts, uint64_t ns_from_now)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	uint64_t t = (uint64_t)ts->tv_nsec + ns_from_now % 1000000000;
	ts->tv_sec += (time_t)(ns_from_now / 1000000000 + t / 1000000000);
	ts->tv_nsec = (long)(t % 1000000000);
}

static void *flush_thread(void *arg)
{
	struct fs *fs = arg;
	pthread_mutex_lock(&fs->tab_mu);
	while (!fs->stopping) {
		struct fs_inode *i = fs->queue;
		uint64_t now = now_ns();
		if (!i || i->due_ns > now) {
			/* Wake a little after the head is due, so that the files closed in the
			 * meantime are taken in the same round: a timer per file would cost two
			 * context switches per small file. */
			struct timespec ts;
			deadline(&ts, i ? i->due_ns - now + FLUSH_BATCH_NS : 1000000000ull);
			pthread_cond_timedwait(&fs->queue_cond, &fs->tab_mu, &ts);
			continue;
		}
		fs->queue = i->qnext;
		if (!fs->queue)
			fs->queue_tail = &fs->queue;
		i->refs++;
		pthread_mutex_unlock(&fs->tab_mu);
		fs_uring_worker_busy(true);
		int r = fs_data_flush(fs, i);
		fs_uring_worker_busy(false);
		pthread_mutex_lock(&fs->tab_mu);
		i->queued = false;
		if (r < 0) {
			fs->flush_error = r;
		}
		i->refs--;
		inode_maybe_free_locked(fs, i);
	}
	pthread_mutex_unlock(&fs->tab_mu);
	return NULL;
}

/* ---- sync and checkpoints ------------------------------------------------------------- */

/* Inodes of fs->staged matching pred, each with a reference taken. */
static int collect_inodes(struct fs *fs, bool (*pred)(struct fs *, struct fs_inode *),
			  struct fs_inode ***ret, size_t *ret_n)
{
	struct fs_inode **v = NULL;
	size_t n = 0, cap = 0;
	pthread_mutex_lock(&fs->tab_mu);
	for (struct fs_inode *i = fs->staged; i; i = i->snext) {
		if (!pred(fs, i))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			struct fs_inode **nv = reallocarray(v, cap, sizeof(*v));
			if (!nv) {
				pthread_mutex_unlock(&fs->tab_mu);
				for (size_t k = 0; k < n; k++)
					fs_inode_put(fs, v[k]);
				free(v);
				return -ENOMEM;
			}
			v = nv;
		}
		i->refs++;
		v[n++] = i;
	}
	pthread_mutex_unlock(&fs->tab_mu);
	*ret = v;
	*ret_n = n;
	return 0;
}

static bool is_dirty(struct fs *fs, struct fs_inode *i)
{
	return i->dirty;
}

static bool has_stale_staging(struct fs *fs, struct fs_inode *i)
{
	uint64_t gen = fs_sync_gen(fs);
	return (i->staging_fd >= 0 && !i->dirty && i->clean_gen < gen) ||
	       (i->retired_fd >= 0 && i->retired_gen < gen);
}

static bool holds_mem(struct fs *fs, struct fs_inode *i)
{
	return i->in_mem;
}

/*
 * Staged bytes held in memory (data.c) die with the process, so meta must not be synced
 * while it names any: store them first (the flush the file awaits anyway) when store is
 * set, and write what is still in memory to staging files. From the start, no other file
 * may take memory (fs->mem_blocked, raised here and lowered by the caller once meta is
 * synced); a file that holds some already is in the list collected below, and is settled
 * after the write under way.
 */
static int settle_mem(struct fs *fs, bool store)
{
	struct fs_inode **v;
	size_t n;
	pthread_mutex_lock(&fs->tab_mu);
	fs->mem_blocked++;
	pthread_mutex_unlock(&fs->tab_mu);
	int r = collect_inodes(fs, holds_mem, &v, &n);
	if (r < 0)
		return r;
	for (size_t k = 0; k < n; k++) {
		if (store)
			(void)fs_data_flush(fs, v[k]); /* a failure is logged; the spill follows */
		int e = fs_data_mem_spill(fs, v[k]);
		if (e < 0 && r >= 0)
			r = e;
		fs_inode_put(fs, v[k]);
	}
	free(v);
	return r;
}

/* Meta is about to commit: the staged bytes it names must be durable first (data.c). */
static int sync_staged_cb(void *ud)
{
	return fs_data_sync_staged(ud, true);
}

int fs_sync(struct fs *fs)
{
	struct fs_inode **v;
	size_t n;
	/* Most staged bytes are made durable before settle_mem keeps new files out of memory
	 * (they stage in files meanwhile, which the commit's own pass then syncs under meta's
	 * lock): files nobody has open are stored, the others synced. */
	fs_data_store_staged(fs);
	int durable = fs_data_sync_staged(fs, false);
	int r = settle_mem(fs, true);
	if (durable >= 0)
		durable = fs_data_sync_staged(fs, false); /* what settle_mem spilled, for one */
	if (durable < 0) {
		meta_abandon(fs->meta, "staged data could not be made durable");
		r = durable;
	}
	pthread_rwlock_wrlock(&fs->sync_lock);
	if (r >= 0)
		r = store_flush(fs->store);
	if (r >= 0)
		r = meta_sync(fs->meta);
	if (r >= 0)
		__atomic_store_n(&fs->sync_gen, fs->sync_gen + 1, __ATOMIC_RELEASE);
	pthread_rwlock_unlock(&fs->sync_lock);
	pthread_mutex_lock(&fs->tab_mu);
	fs->mem_blocked--;
	pthread_mutex_unlock(&fs->tab_mu);
	if (r < 0)
		return r;
	if (collect_inodes(fs, has_stale_staging, &v, &n) < 0)
		return 0; /* only cleanup is skipped */
	uint64_t gen = fs_sync_gen(fs);
	for (size_t k = 0; k < n; k++) {
		struct fs_inode *i = v[k];
		if (pthread_mutex_trylock(&i->mu) == 0) {
			if (i->retired_fd >= 0 && i->retired_gen < gen)
				fs_data_drop_retired(fs, i);
			if (i->staging_fd >= 0 && !i->dirty && i->clean_gen < gen)
				fs_data_discard(fs, i);
			pthread_mutex_unlock(&i->mu);
		}
		fs_inode_put(fs, i);
	}
	free(v);
	return 0;
}

static int flush_all(struct fs *fs)
{
	struct fs_inode **v;
	size_t n;
	int r = collect_inodes(fs, is_dirty, &v, &n), first = 0;
	if (r < 0)
		return r;
	for (size_t k = 0; k < n; k++) {
		r = fs_data_flush(fs, v[k]);
		if (r < 0 && !first)
			first = r;
		fs_inode_put(fs, v[k]);
	}
	free(v);
	return first;
}

/* The first 8 bytes of a root id, as a meta setting. */
static uint64_t root_prefix(const struct blob_id *root)
{
	return get_le64(root->b);
}

/*
 * Flush, freeze the tree, write the changed directories, and commit. edit (may be NULL)
 * changes the new commit's snapshot list, given the working tree's root; with an edit the
 * commit is written even when nothing changed. Before the commit, meta durably notes the
 * seq and root it is about to write, so that after a crash the next mount can tell its own
 * commit from another writer's (open_meta).
 */
/* Show the snapshot list of commit c, and have the root's names that changed meaning
 * waited out (fsops.h). */
static void take_list(struct fs *fs, const struct commit *c)
{
	_cleanup_buf_ struct buf stale = {0};
	int r = snaps_update(fs->snaps, c, &stale);
	if (r < 0) {
		log_error("commit %" PRIu64 ": showing its snapshots: %s", c->seq, strerror(-r));
		return;
	}
	if (stale.len) {
		/* Wait out the replies that may still name the old list. */
		pthread_rwlock_wrlock(&fs->root_names_lock);
		fs->root_names_changed = now_ns();
		pthread_rwlock_unlock(&fs->root_names_lock);
	}
}

static int commit_tree(struct fs *fs,
		       int (*edit)(struct commit *c, const struct blob_id *root, void *ud),
		       void *ud)
{
	struct blob_id root;
	struct commit c;
	int r;

	pthread_mutex_lock(&fs->ckpt_mu);
	/* First retry what a failing backend left behind: its old error must not fail us. */
	r = fs_sync(fs);
	if (r >= 0)
		r = flush_all(fs);
	if (r < 0) {
		log_error("checkpoint: flushing staged data: %s", strerror(-r));
		goto out;
	}
	/* Freeze the tree: nothing changes while its trees are written. */
	pthread_rwlock_wrlock(&fs->ns_lock);
	r = flush_all(fs); /* what was written meanwhile */
	/* A clean root is written already, but not necessarily committed (a commit that
	 * failed): it is compared with the head below like any other. */
	if (r >= 0 && meta_tree_get(fs->meta, META_ROOT_INO, &root) < 0) {
		r = tree_checkpoint(fs->meta, fs->store, &root);
		if (r < 0)
			log_error("checkpoint: writing the trees: %s", strerror(-r));
	}
	pthread_rwlock_unlock(&fs->ns_lock);
	if (r < 0)
		goto out;

	/* Settled first, the head is what store_commit builds on: pending-commit is right. */
	r = store_settle(fs->store);
	if (r >= 0)
		r = store_head(fs->store, &c);
	if (r < 0)
		goto out;
	/* An edit whose commit reported an error but landed (store_settle found it). */
	if (c.seq != snaps_seq(fs->snaps))
		take_list(fs, &c);
	if (!edit && c.has_root && !memcmp(c.root.b, root.b, BLOB_ID_SIZE)) {
		commit_release(&c);
		goto out; /* nothing changed, or changed and changed back */
	}
	c.has_root = true;
	c.root = root;
	free(c.host);
	c.host = NULL;
	if (edit)
		r = edit(&c, &root, ud);
	if (r >= 0)
		r = meta_set_u64(fs->meta, "pending-commit", c.seq + 1);
	if (r >= 0)
		r = meta_set_u64(fs->meta, "pending-root", root_prefix(&root));
	if (r >= 0)
		r = fs_sync(fs); /* the trees, then the note above */
	if (r >= 0)
		r = store_commit(fs->store, &c);
	if (r >= 0) {
		/* Landed: the edit is made, whatever fails below (the next mount finds this
		 * commit through pending-commit), and the list shown must be its list (its
		 * working tree too: unique bytes are counted against it). */
		take_list(fs, &c);
		int k = meta_set_u64(fs->meta, "base-commit", c.seq);
		if (k >= 0)
			k = fs_sync(fs);
		if (k < 0)
			log_warning("commit %" PRIu64 " is stored, but noting it in the local "
				    "cache failed: %s",
				    c.seq, strerror(-k));
		char hex[BLOB_ID_HEX_SIZE];
		blob_id_hex(&root, hex);
		log_info("checkpoint: commit %" PRIu64 ", working tree %.16s", c.seq, hex);
	}
	commit_release(&c);
out:
	if (r < 0)
		log_error("checkpoint failed: %s; staged data stays in the cache", strerror(-r));
	pthread_mutex_unlock(&fs->ckpt_mu);
	return r;
}

void fsops_root_names_begin(struct fs *fs)
{
	pthread_rwlock_rdlock(&fs->root_names_lock);
}

void fsops_root_names_end(struct fs *fs)
{
	pthread_rwlock_unlock(&fs->root_names_lock);
}

/* user.cairn.settled: see fsops.h. */
void fs_root_names_settle(struct fs *fs)
{
	pthread_rwlock_rdlock(&fs->root_names_lock);
	uint64_t changed = fs->root_names_changed;
	pthread_rwlock_unlock(&fs->root_names_lock);
	uint64_t until = changed ? changed + FSOPS_ROOT_SETTLE_NS : 0;
	for (uint64_t now = now_ns(); now < until; now = now_ns()) {
		struct timespec ts = {.tv_sec = (until - now) / 1000000000,
				      .tv_nsec = (until - now) % 1000000000};
		nanosleep(&ts, NULL);
	}
}

int fs_checkpoint(struct fs *fs)
{
	return commit_tree(fs, NULL, NULL);
}

struct snapshot_edit {
	const char *name;
	uint64_t time_ns;
};

static int add_snapshot(struct commit *c, const struct blob_id *root, void *ud)
{
	struct snapshot_edit *e = ud;
	for (size_t k = 0; k < c->n_snaps; k++)
		if (!strcmp(c->snaps[k].name, e->name))
			return log_error_errno(-EEXIST, "snapshot %s: exists already", e->name);
	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	return commit_add_snapshot(c, e->name, root, e->time_ns, host);
}

struct rotate_edit {
	const char *interval, *lower;
	unsigned keep, lower_keep;
	uint64_t time_ns;
};

static int rotate(struct commit *c, const struct blob_id *root, void *ud)
{
	struct rotate_edit *e = ud;
	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	int r = snapshot_rotate(c, e->interval, e->keep, e->lower, e->lower_keep, root, e->time_ns,
				host);
	if (r == -ENOENT)
		log_error("rotate %s: %s.%u does not exist; nothing rotated", e->interval, e->lower,
			  e->lower_keep - 1);
	else if (r < 0)
		log_error("rotate %s %u: %s; nothing rotated", e->interval, e->keep, strerror(-r));
	return r;
}

int fs_rotate(struct fs *fs, const char *interval, unsigned keep, const char *lower,
	      unsigned lower_keep)
{
	struct rotate_edit e = {.interval = interval,
				.lower = lower,
				.keep = keep,
				.lower_keep = lower_keep,
				.time_ns = (uint64_t)fs_now_ns()};
	int r = commit_tree(fs, rotate, &e);
	if (r >= 0)
		log_info("rotated %s (%u kept)%s%s", interval, keep, lower ? " from " : "",
			 lower ? lower : "");
	return r;
}

/* names: '\n'-separated lines "NAME" or "NAME TAB TIME" (no snapshot name holds a control
 * character). A time must match: the caller planned with a list a rotation may have
 * changed since (hourly.3 then names another snapshot). */
static int forget(struct commit *c, const struct blob_id *root, void *ud)
{
	_cleanup_free_ char *names = strdup(ud);
	char *save = NULL, *end;
	size_t n = 0;
	if (!names)
		return -ENOMEM;
	for (char *t = strtok_r(names, "\n", &save); t; t = strtok_r(NULL, "\n", &save), n++) {
		char *tab = strchr(t, '\t');
		if (tab)
			*tab++ = 0;
		ssize_t k = snapshot_find(c, t);
		if (k < 0)
			return log_error_errno(-ENOENT, "forget: no snapshot %s; nothing dropped",
					       t);
		if (tab && (strtoull(tab, &end, 10) != c->snaps[k].time_ns || *end))
			return log_error_errno(-ESTALE,
					       "forget: snapshot %s changed since the plan was "
					       "made (a rotation?); nothing dropped",
					       t);
		int r = snapshot_remove(c, t);
		if (r < 0)
			return r;
	}
	if (n && c->n_snaps == 0)
		return log_error_errno(-EPERM, "forget: refusing to drop every snapshot");
	return 0;
}

int fs_forget(struct fs *fs, const char *names)
{
	int r = commit_tree(fs, forget, (void *)names);
	if (r >= 0)
		log_info("forgot snapshots: %s", names);
	return r;
}

int fs_snapshot(struct fs *fs, const char *name)
{
	const char *why = NULL;
	if (snapshot_name_check(name, &why) < 0)
		return log_error_errno(-EINVAL, "snapshot %s: not a valid name: %s", name, why);
	struct snapshot_edit e = {.name = name, .time_ns = (uint64_t)fs_now_ns()};
	int r = commit_tree(fs, add_snapshot, &e);
	if (r >= 0)
		log_info("snapshot %s taken", name);
	return r;
}

static void *checkpoint_thread(void *arg)
{
	struct fs *fs = arg;
	uint64_t last_ckpt = now_ns(), next_sync = now_ns() + SYNC_INTERVAL_NS;
	pthread_mutex_lock(&fs->tab_mu);
	while (!fs->stopping) {
		struct timespec ts;
		uint64_t now = now_ns();
		/* Act only when our own deadline has come, not on every wakeup. */
		if (now < next_sync) {
			deadline(&ts, next_sync - now);
			pthread_cond_timedwait(&fs->tab_cond, &fs->tab_mu, &ts);
			continue;
		}
		pthread_mutex_unlock(&fs->tab_mu);
		if (now - last_ckpt >= (uint64_t)fs->opt.checkpoint_interval * 1000000000ull) {
			fs_checkpoint(fs);
			last_ckpt = now_ns();
		} else if (fs_sync(fs) < 0 && !meta_lost(fs->meta)) {
			/* (After a lost batch meta has said why, once: no line every 2 s.) */
			log_warning("periodic sync failed; retrying");
		}
		next_sync = now_ns() + SYNC_INTERVAL_NS;
		pthread_mutex_lock(&fs->tab_mu);
	}
	pthread_mutex_unlock(&fs->tab_mu);
	return NULL;
}

/* ---- open / close --------------------------------------------------------------------- */

static int queue_dirty_cb(uint64_t ino, void *ud)
{
	struct fs *fs = ud;
	struct fs_inode *i = fs_inode_get(fs, ino);
	if (!i)
		return -ENOMEM;
	pthread_mutex_lock(&i->mu);
	i->dirty = true; /* staged before a crash: flush it like any other */
	fs_inode_staged_update(fs, i);
	pthread_mutex_unlock(&i->mu);
	fs_flush_later(fs, i);
	fs_inode_put(fs, i);
	return 0;
}

/* Unlinked while open when the daemon stopped: nothing can reach them any more. */
static int reap_orphan_cb(uint64_t ino, void *ud)
{
	struct fs *fs = ud;
	struct fs_inode *i = fs_inode_get(fs, ino);
	if (!i)
		return -ENOMEM;
	pthread_mutex_lock(&i->mu);
	fs_data_discard(fs, i);
	pthread_mutex_unlock(&i->mu);
	fs_inode_put(fs, i);
	return meta_inode_delete(fs->meta, ino);
}

/* Staging files (<ino>, <ino>.<stage>) of inodes with nothing staged, or of another
 * generation than the one meta names, are leftovers of a crash. */
static void clean_staging(struct fs *fs)
{
	DIR *d = opendir(fs->staging_dir);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		char *end;
		uint64_t ino = strtoull(e->d_name, &end, 10), stage = 0, want = 0;
		if (*end == '.' && end[1] >= '0' && end[1] <= '9')
			stage = strtoull(end + 1, &end, 10);
		if (!strncmp(e->d_name, STAGING_SPARE_PREFIX, strlen(STAGING_SPARE_PREFIX))) {
			/* A spare of a former run: taken up again, or deleted past the limit. */
			const char *num = e->d_name + strlen(STAGING_SPARE_PREFIX);
			uint64_t seq = strtoull(num, &end, 10);
			if (!*num || *end || fs_staging_spare_add(fs, seq) < 0)
				unlinkat(dirfd(d), e->d_name, 0);
			continue;
		}
		if (e->d_name[0] == '.' || *end)
			continue;
		struct fs_inode *i = fs_inode_get(fs, ino);
		if (i && (!i->dirty || (fs_data_stage(fs, i, &want) == 0 && want != stage))) {
			char path[4096];
			snprintf(path, sizeof(path), "%s/%s", fs->staging_dir, e->d_name);
			unlink(path);
		}
		if (i)
			fs_inode_put(fs, i);
	}
	if (d)
		closedir(d);
}

static int mkdir_if_missing(const char *p)
{
	return mkdir(p, 0700) < 0 && errno != EEXIST ? -errno : 0;
}

/* Open meta.db, or rebuild it from the latest commit when missing or stale. */
static int open_meta(struct fs *fs, const char *path)
{
	struct commit head;
	uint64_t base = 0;
	const struct repo_config *cf = store_config(fs->store);
	int r = store_head(fs->store, &head);
	if (r < 0)
		return r;
	bool existed = access(path, F_OK) == 0;
	r = meta_open(path, cf->id, &fs->meta);
	if (r >= 0 && existed) {
		struct blob_id root;
		bool have_base = meta_get_u64(fs->meta, "base-commit", &base) == 0;
		bool root_clean = meta_tree_get(fs->meta, META_ROOT_INO, &root) == 0;
		/* Our own last commit, or the one we noted we were about to write when a crash
		 * kept us from recording it (commit_tree): the local tree is current. Anything
		 * else is someone else's newer state. */
		uint64_t pending_seq = 0, pending_root = 0;
		bool ours = meta_get_u64(fs->meta, "pending-commit", &pending_seq) == 0 &&
			    meta_get_u64(fs->meta, "pending-root", &pending_root) == 0 &&
			    pending_seq == head.seq && head.has_root &&
			    pending_root == root_prefix(&head.root) && have_base &&
			    head.parent == base;
		bool current = (have_base ? base : 0) == head.seq ||
			       (head.has_root && root_clean &&
				!memcmp(root.b, head.root.b, BLOB_ID_SIZE)) ||
			       ours;
		if (current && base != head.seq)
			r = meta_set_u64(fs->meta, "base-commit", head.seq);
		if (!current) {
			char stale[4200];
			log_warning("%s is older than commit %" PRIu64
				    "; rebuilding the working tree "
				    "from the repository (old copy kept as %s.stale)",
				    path, head.seq, path);
			meta_close(fs->meta);
			fs->meta = NULL;
			snprintf(stale, sizeof(stale), "%s.stale", path);
			if (rename(path, stale) < 0)
				r = -errno;
			/* Its staged data goes aside with it, never deleted: what a killed daemon
			 * or a failed last checkpoint left there was accepted from a writer. */
			snprintf(stale, sizeof(stale), "%s.stale.%" PRIu64, fs->staging_dir,
				 head.seq);
			if (r >= 0 && rename(fs->staging_dir, stale) == 0) {
				log_warning("staged data of the old working tree kept in %s",
					    stale);
				r = mkdir_if_missing(fs->staging_dir);
			}
			existed = false;
			if (r >= 0)
				r = meta_open(path, cf->id, &fs->meta);
		}
	}
	if (r >= 0 && !existed && head.seq) {
		if (head.has_root) {
			log_info("rebuilding the working tree from commit %" PRIu64, head.seq);
			r = tree_restore(fs->meta, fs->store, &head.root);
		}
		if (r >= 0)
			r = meta_set_u64(fs->meta, "base-commit", head.seq);
		if (r >= 0)
			r = meta_sync(fs->meta);
	}
	commit_release(&head);
	return r;
}

int fs_open(struct store *s, const struct fs_options *o, struct fs **ret)
{
	struct fs *fs = calloc(1, sizeof(*fs));
	_cleanup_free_ char *meta_path = NULL;
	pthread_rwlockattr_t ra;
	int r;

	if (!fs)
		return -ENOMEM;
	fs->store = s;
	fs->opt = *o;
	if (!fs->opt.checkpoint_interval)
		fs->opt.checkpoint_interval = 300;
	if (!fs->opt.flush_threads) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		fs->opt.flush_threads = n > 0 ? (unsigned)n : 2;
	}
	if (!fs->opt.staging_limit)
		fs->opt.staging_limit = 1ull << 30;
	if (!fs->opt.read_cache_bytes)
		fs->opt.read_cache_bytes = 64ull << 20;
	if (fs->opt.flush_delay <= 0)
		fs->opt.flush_delay = 1.0;
	/* Writers first: a checkpoint or sync must not starve behind a stream of writes. */
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&fs->ns_lock, &ra);
	pthread_rwlock_init(&fs->sync_lock, &ra);
	pthread_rwlock_init(&fs->root_names_lock, &ra);
	pthread_rwlockattr_destroy(&ra);
	pthread_mutex_init(&fs->ops_mu, NULL);
	pthread_mutex_init(&fs->tab_mu, NULL);
	pthread_mutex_init(&fs->cache_mu, NULL);
	pthread_cond_init(&fs->cache_cond, NULL);
	pthread_cond_init(&fs->prefetch_cond, NULL);
	pthread_mutex_init(&fs->spare_mu, NULL);
	pthread_mutex_init(&fs->unsynced_mu, NULL);
	pthread_mutex_init(&fs->unsynced_pass_mu, NULL);
	fs->unsynced_epoch = 1; /* a new fs_inode is on no list */
	pthread_mutex_init(&fs->ckpt_mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&fs->tab_cond, &ca);
	pthread_cond_init(&fs->queue_cond, &ca);
	pthread_condattr_destroy(&ca);
	fs->queue_tail = &fs->queue;

	fs->cache_dir = strdup(store_cache_dir(s));
	if (!fs->cache_dir || asprintf(&fs->staging_dir, "%s/staging", fs->cache_dir) < 0 ||
	    asprintf(&meta_path, "%s/meta.db", fs->cache_dir) < 0) {
		fs->staging_dir = NULL;
		r = -ENOMEM;
		goto fail;
	}
	r = mkdir_if_missing(fs->staging_dir);
	if (r < 0) {
		log_error("staging directory %s: %s", fs->staging_dir, strerror(-r));
		goto fail;
	}
	r = open_meta(fs, meta_path);
	if (r < 0) {
		log_error("working tree %s: %s", meta_path, strerror(-r));
		goto fail;
	}
	meta_set_precommit(fs->meta, sync_staged_cb, fs);
	/* Tests only (tests/integration/meta-full.sh): a working tree whose database fills. */
	const char *growth = getenv("CAIRN_TEST_META_GROWTH");
	if (growth && meta_test_limit_growth(fs->meta, (unsigned)atoi(growth)) >= 0)
		log_warning("CAIRN_TEST_META_GROWTH: meta.db may grow by %s pages", growth);
	struct commit head;
	r = snaps_new(fs->store, &fs->snaps);
	if (r >= 0 && (r = store_head(fs->store, &head)) >= 0) {
		r = snaps_update(fs->snaps, &head, NULL);
		commit_release(&head);
	}
	if (r >= 0)
		r = meta_orphans(fs->meta, reap_orphan_cb, fs);
	if (r >= 0)
		r = meta_dirty_inodes(fs->meta, queue_dirty_cb, fs);
	if (r < 0)
		goto fail;
	fs->mount_time = fs_now_ns();
	clean_staging(fs);

	fs->flushers = calloc(fs->opt.flush_threads, sizeof(*fs->flushers));
	if (!fs->flushers) {
		r = -ENOMEM;
		goto fail;
	}
	for (; fs->n_flushers < fs->opt.flush_threads; fs->n_flushers++)
		if (pthread_create(&fs->flushers[fs->n_flushers], NULL, flush_thread, fs)) {
			r = -EAGAIN;
			goto fail;
		}
	if (pthread_create(&fs->checkpointer, NULL, checkpoint_thread, fs)) {
		r = -EAGAIN;
		goto fail;
	}
	fs->checkpointer_running = true;
	/* Decoding ahead of a streaming reader pays with a core to spare for it. */
	unsigned nprefetch = MIN(fs->opt.flush_threads, PREFETCH_THREADS);
	for (; fs->n_prefetchers < nprefetch; fs->n_prefetchers++)
		if (pthread_create(&fs->prefetchers[fs->n_prefetchers], NULL, fs_prefetch_thread,
				   fs)) {
			r = -EAGAIN;
			goto fail;
		}
	*ret = fs;
	return 0;
fail:
	fs_close(fs);
	return r;
}

static void stop_threads(struct fs *fs)
{
	pthread_mutex_lock(&fs->tab_mu);
	fs->stopping = true;
	pthread_cond_broadcast(&fs->tab_cond);
	pthread_cond_broadcast(&fs->queue_cond);
	pthread_mutex_unlock(&fs->tab_mu);
	for (unsigned k = 0; k < fs->n_flushers; k++)
		pthread_join(fs->flushers[k], NULL);
	if (fs->checkpointer_running)
		pthread_join(fs->checkpointer, NULL);
	fs->n_flushers = 0;
	fs->checkpointer_running = false;
	pthread_mutex_lock(&fs->cache_mu);
	fs->prefetch_stop = true;
	unsigned n = fs->n_prefetchers;
	fs->n_prefetchers = 0; /* nothing more is queued */
	pthread_cond_broadcast(&fs->prefetch_cond);
	pthread_mutex_unlock(&fs->cache_mu);
	for (unsigned k = 0; k < n; k++)
		pthread_join(fs->prefetchers[k], NULL);
}

int fs_close(struct fs *fs)
{
	int r = 0;
	if (!fs)
		return 0;
	stop_threads(fs);
	if (fs->meta) {
		r = fs_checkpoint(fs);
		/* Closing meta commits its batch, so after a failed checkpoint everything it
		 * names must outlive this process: staged bytes held in memory go to staging
		 * files, and the packs the backend refused to the cache (the batch names their
		 * chunks; the next mount uploads them first). If they cannot be kept, the batch
		 * goes as in a crash: back to the last sync, whose staging files are all kept. */
		bool commit = true;
		if (r < 0) {
			(void)settle_mem(fs, false);
			commit = store_save_unsent(fs->store) >= 0;
		}
		int k = 0;
		if (commit)
			k = meta_close(fs->meta);
		else
			meta_discard(fs->meta);
		if (r >= 0)
			r = k;
	}
	/* Whatever is left in the table is memory only now. */
	for (size_t b = 0; b < FS_INODE_BUCKETS; b++)
		while (fs->tab[b]) {
			struct fs_inode *i = fs->tab[b];
			fs->tab[b] = i->hnext;
			if (i->staging_fd >= 0)
				close(i->staging_fd);
			if (i->retired_fd >= 0)
				close(i->retired_fd);
			free(i->mem);
			pthread_mutex_destroy(&i->mu);
			free(i);
		}
	fs_blob_cache_clear(fs);
	snaps_free(fs->snaps);
	free(fs->spares);
	free(fs->flushers);
	free(fs->cache_dir);
	free(fs->staging_dir);
	pthread_rwlock_destroy(&fs->ns_lock);
	pthread_rwlock_destroy(&fs->sync_lock);
	pthread_rwlock_destroy(&fs->root_names_lock);
	pthread_mutex_destroy(&fs->ops_mu);
	pthread_mutex_destroy(&fs->tab_mu);
	pthread_mutex_destroy(&fs->cache_mu);
	pthread_cond_destroy(&fs->cache_cond);
	pthread_cond_destroy(&fs->prefetch_cond);
	pthread_mutex_destroy(&fs->spare_mu);
	fs_data_unsynced_free(fs);
	pthread_mutex_destroy(&fs->unsynced_mu);
	pthread_mutex_destroy(&fs->unsynced_pass_mu);
	pthread_mutex_destroy(&fs->ckpt_mu);
	pthread_cond_destroy(&fs->tab_cond);
	pthread_cond_destroy(&fs->queue_cond);
	free(fs);
	return r;
}
