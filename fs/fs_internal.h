/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * State shared by the fs modules (fsops.c: namespace and attributes; data.c: staging, read,
 * write, flush; checkpoint.c: mount-time restore, flush threads, checkpoints). Not a public
 * contract: only the fs module files include it.
 *
 * Locking, outermost first:
 *   ns_lock (rwlock)  read: every operation that changes the working tree; write: a
 *                     checkpoint freezing it while the trees are written;
 *   ops_mu            serialises namespace operations (lookup-then-change sequences);
 *   inode->mu         one file's data: staging file, dirty ranges, flush;
 *   sync_lock (rwlock) read: a change whose meta statements must reach a durable meta
 *                     together (a flush, a truncation, a reaped inode); write: fs_sync
 *                     (store_flush, then meta_sync). Never taken twice by one thread;
 *   unsynced_pass_mu  one pass making staged bytes durable (data.c); taken under meta's
 *                     lock, just before a commit;
 *   tab_mu            the in-memory inode table and the flush queue (taken by that pass
 *                     under meta's lock: no meta call under it);
 *   unsynced_mu, spare_mu  the list of staging files to fdatasync, the spare staging
 *                     files (innermost, held for no system call).
 * meta calls are serialised inside meta.c and may be made under any of these but the
 * unsynced ones and tab_mu (a commit takes them).
 */
#pragma once

#include <pthread.h>
#include <stdatomic.h>

#include "fsops.h"
#include "meta.h"
#include "snap.h"

#define FS_INODE_BUCKETS 4096
/* Decoded chunks kept in memory at most (a list walked on each read). */
#define BLOB_CACHE_MAX_ENTRIES 64
/* Prefetch (data.c): reads at least this large stream (the kernel's read-ahead); the chunks
 * starting within PREFETCH_BYTES after one, PREFETCH_AHEAD at most, are decoded ahead by
 * up to PREFETCH_THREADS threads from a queue of PREFETCH_QUEUE chunks. */
#define PREFETCH_MIN_READ (128u * 1024)
#define PREFETCH_BYTES (4u * 1024 * 1024)
#define PREFETCH_AHEAD 2
#define PREFETCH_THREADS 4
#define PREFETCH_QUEUE 16
/* A read from the start of a working-tree file also prefetches the first chunks of the next
 * PREFETCH_FILES files by inode number (data.c, prefetch_next_files). */
#define PREFETCH_FILES 4

/* In-memory state of a working-tree inode the kernel knows or that has staged data. */
struct fs_inode {
	uint64_t ino;
	uint64_t nlookup; /* kernel references */
	unsigned nopen;	  /* open handles */
	pthread_mutex_t mu;
	int staging_fd; /* -1 until the first write */
	/* Generation of the staging file (data.c: a truncation moves a file to a new one), and
	 * fs->sync_gen + 1 when it was created (0: it may hold bytes from before). The file a
	 * truncation replaced is kept until fs->sync_gen passes retired_gen. */
	uint64_t stage;
	bool stage_known;
	uint64_t staging_born;
	int retired_fd;
	uint64_t retired_stage, retired_gen;
	/* fs->unsynced_epoch when its staging file was last noted as written since its last
	 * fdatasync (data.c, "Durable staged bytes"). */
	uint64_t unsynced_epoch;
	atomic_bool dirty;  /* has dirty ranges (set and cleared under mu) */
	bool queued;	    /* in the flush queue */
	uint64_t due_ns;    /* flush after this (monotonic) */
	unsigned refs;	    /* threads using this struct */
	uint64_t clean_gen; /* fs->sync_gen when it last became clean */
	struct fs_inode *hnext, *qnext;
	struct fs_inode *snext, *sprev; /* on fs->staged: dirty or holding a staging file */
	bool staged;
	/* Staged bytes held in memory instead of a staging file (data.c): mem_cap bytes, those
	 * written below mem_len. in_mem says it under tab_mu too, for fs_sync, and keeps the
	 * entry on fs->staged from the moment it is set. */
	uint8_t *mem;
	size_t mem_len, mem_cap;
	bool in_mem;
	/* A regular file (a type never changes): set when the kernel is given its entry. */
	atomic_bool is_reg;
};

struct blob_cache_entry;

/* Emptied staging files kept for reuse (data.c), named <staging>/spare.<seq>. */
#define STAGING_SPARE_PREFIX "spare."
#define STAGING_SPARES_MAX 65536
/* Buffer for staged bytes a truncation copies to a new staging file. */
#define STAGE_COPY_BUF (1024u * 1024)
/* Staged bytes held in memory (data.c): files written only below STAGING_MEM_FILE_MAX, up
 * to STAGING_MEM_TOTAL bytes of them all. */
#define STAGING_MEM_FILE_MAX (1024u * 1024)
#define STAGING_MEM_TOTAL (64ull * 1024 * 1024)

struct fs {
	struct store *store;
	struct meta *meta;
	struct snaps *snaps; /* the snapshots of the last commit, read-only */
	char *cache_dir, *staging_dir;
	struct fs_options opt;

	pthread_rwlock_t ns_lock;
	pthread_mutex_t ops_mu;
	/* Read: a flush storing chunks and recording them in meta. Write: fs_sync making
	 * blobs durable (store_flush) and then meta (meta_sync), so a durable meta never names
	 * a blob that is not durable. */
	pthread_rwlock_t sync_lock;
	uint64_t sync_gen; /* completed fs_sync calls (fs_sync_gen) */

	pthread_mutex_t tab_mu;
	pthread_cond_t tab_cond;
	struct fs_inode *tab[FS_INODE_BUCKETS];
	/* The entries that are dirty or hold a staging file: what sync and checkpoints visit,
	 * so their cost follows what changed, not the number of inodes the kernel holds. */
	struct fs_inode *staged;
	struct fs_inode *queue; /* inodes to flush, by due time */
	struct fs_inode **queue_tail;
	pthread_cond_t queue_cond; /* the queue got a new head, or stopping */
	uint64_t staged_bytes;	   /* approximate, for back-pressure */
	uint64_t mem_bytes;	   /* of all fs_inode.mem buffers */
	unsigned mem_blocked;	   /* fs_sync calls under way: no file may newly take memory */
	bool stopping;
	int flush_error; /* last background flush error, reported at checkpoint */

	/* Staging files written since their last fdatasync, as duplicated descriptors, for the
	 * next pass to make durable (data.c, "Durable staged bytes"). unsynced_mu guards the
	 * list; unsynced_epoch counts the passes that took it; one pass at a time. */
	pthread_mutex_t unsynced_mu, unsynced_pass_mu;
	struct fs_unsynced {
		uint64_t ino;
		int fd;
	} * unsynced;
	size_t n_unsynced, cap_unsynced;
	_Atomic uint64_t unsynced_epoch;

	pthread_mutex_t spare_mu;
	uint64_t *spares; /* seqs of spare staging files */
	size_t n_spares, cap_spares;
	uint64_t spare_seq;

	pthread_mutex_t cache_mu;
	pthread_cond_t cache_cond;	     /* a chunk's load ended */
	struct blob_cache_entry *cache_head; /* most recent first */
	uint64_t cache_bytes;		     /* of ready entries */
	unsigned cache_entries;
	/* Chunks to decode ahead of the reader, oldest first (under cache_mu). */
	struct prefetch_job {
		uint64_t ino; /* nonzero: the first chunk of this working-tree file */
		struct meta_extent e;
	} prefetch_q[PREFETCH_QUEUE];
	unsigned prefetch_n;
	uint64_t prefetch_ino_hi; /* files up to this one are queued (prefetch_next_files) */
	pthread_cond_t prefetch_cond;
	pthread_t prefetchers[PREFETCH_THREADS];
	unsigned n_prefetchers;
	bool prefetch_stop;

	pthread_t *flushers;
	unsigned n_flushers;
	pthread_t checkpointer;
	bool checkpointer_running;
	pthread_mutex_t ckpt_mu; /* one checkpoint at a time */
	int64_t mount_time;	 /* the mount root's times */
	/* The kernel's writeback cache is on: it keeps mtime/ctime of written files and sends
	 * them by setattr; writes must not stamp their own (cp -p sets times before close). */
	bool kernel_times;
	/* Held shared by lookups and listings of the mount root from reading the snapshot list
	 * to replying, taken exclusively by a commit that changed the list (fsops.h). */
	pthread_rwlock_t root_names_lock;
	uint64_t root_names_changed; /* now_ns() of the last such change, 0: none */
};

static inline uint64_t node_to_ino(uint64_t node)
{
	return node - 1;
}
/* fs->sync_gen, which fs_sync raises under the sync lock (write), read without it. */
static inline uint64_t fs_sync_gen(struct fs *fs)
{
	return __atomic_load_n(&fs->sync_gen, __ATOMIC_ACQUIRE);
}

static inline uint64_t ino_to_node(uint64_t ino)
{
	return ino + 1;
}

/* Inode table (checkpoint.c). get creates the entry; put frees it when unreferenced. */
struct fs_inode *fs_inode_get(struct fs *fs, uint64_t ino);
void fs_inode_put(struct fs *fs, struct fs_inode *i);
/* Put i on fs->staged or take it off, as its dirty flag, staging file and memory now say.
 * Call after changing any of them (i->mu held); _locked with tab_mu held too. */
void fs_inode_staged_update(struct fs *fs, struct fs_inode *i);
void fs_inode_staged_update_locked(struct fs *fs, struct fs_inode *i);
/* Queue a dirty inode for a background flush after the configured delay. */
void fs_flush_later(struct fs *fs, struct fs_inode *i);

/* Data (data.c). */
int fs_data_write(struct fs *fs, struct fs_inode *i, const void *buf, size_t len, uint64_t off);
/* reader: a read for a user (not a flush), which may start prefetching what follows it. */
ssize_t fs_data_read(struct fs *fs, struct fs_inode *i, void *buf, size_t len, uint64_t off,
		     uint64_t size, bool reader);
/* Set the size of a regular file. Shrinking drops extents and staged bytes past it and keeps
 * the prefix of a chunk cut in two; a failure before meta takes the cut (in one step) leaves
 * the file as it was. Caller holds i->mu (not the sync lock). -ENOSPC when the cache has no
 * room to move staged bytes aside: after fs_data_flush there are none to move. -EIO once
 * meta lost its batch (meta_lost), as for reads and writes. */
int fs_data_truncate(struct fs *fs, struct fs_inode *i, uint64_t old_size, uint64_t new_size);
/* Turn i's dirty ranges into stored chunks. Takes i->mu. */
int fs_data_flush(struct fs *fs, struct fs_inode *i);
/* Forget all staged data of an inode: its staging file goes at once. Caller holds i->mu. */
void fs_data_discard(struct fs *fs, struct fs_inode *i);
/* Nothing of i is left to store (flushed, or deleted in the open batch): drop what it holds
 * in memory, but keep its staging file until a later fs_sync has made that durable (its
 * cleanup then discards it). Until then the durable meta may still name staged bytes there:
 * a deleted file, given its staging file away at once, came back from a crash as zeros.
 * Caller holds i->mu and fs->sync_lock for reading, and makes the change (the flush's
 * extents, or the row's deletion) before letting go of the latter. */
void fs_data_mark_clean(struct fs *fs, struct fs_inode *i);
/* The generation of i's staging file (read from meta once). */
int fs_data_stage(struct fs *fs, struct fs_inode *i, uint64_t *ret);
/* Delete the staging file a truncation replaced (fs_data_truncate), once a sync made its
 * replacement durable. Caller holds i->mu. */
void fs_data_drop_retired(struct fs *fs, struct fs_inode *i);
/* Write i's staged bytes held in memory to its staging file. Takes i->mu. */
int fs_data_mem_spill(struct fs *fs, struct fs_inode *i);
int fs_data_fsync(struct fs *fs, struct fs_inode *i, bool datasync);
/* fdatasync the staging files written since the last pass whose bytes meta may name (data.c,
 * "Durable staged bytes"); meta_locked: called under meta's lock, just before a commit.
 * <0: staged bytes may be lost (logged). */
int fs_data_sync_staged(struct fs *fs, bool meta_locked);
/* Flush the dirty files on the list the next pass takes that nobody has open (the flush
 * they await anyway): that pass then has nothing of theirs to sync. Takes i->mu. */
void fs_data_store_staged(struct fs *fs);
/* Close what the passes did not take (at unmount). */
void fs_data_unsynced_free(struct fs *fs);
void fs_blob_cache_clear(struct fs *fs);
/* A prefetch thread (arg: the fs): decodes queued chunks into the cache until
 * prefetch_stop. */
void *fs_prefetch_thread(void *arg);
/* Record an existing empty spare staging file (at mount). -ENOSPC: enough are kept. */
int fs_staging_spare_add(struct fs *fs, uint64_t seq);

/* Read [off, off+len) of a file of the given size made of extents (a snapshot's file). */
ssize_t fs_data_read_extents(struct fs *fs, const struct meta_extent *v, size_t n, void *buf,
			     size_t len, uint64_t off, uint64_t size);

/* Make chunks, then metadata durable; then drop staging files no longer needed. */
int fs_sync(struct fs *fs);

/* Attributes (fsops.c). */
void fs_inode_to_stat(const struct meta_inode *mi, struct stat *st);
int64_t fs_now_ns(void);
/* Return once no root name from before the last change can be in the kernel (fsops.h). */
void fs_root_names_settle(struct fs *fs);
/* Invalidate the trees of every directory holding ino (after any change to it). */
int fs_touch_parents(struct fs *fs, uint64_t ino);
