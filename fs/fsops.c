/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Namespace and attribute operations of the working tree (see fsops.h): lookup, create,
 * link, unlink, rename, setattr, xattrs, readdir, and the mount root that holds current/.
 *
 * POSIX bookkeeping done here: link counts (2 + subdirectories for a directory), ctime on
 * every change of an inode, mtime/ctime of a directory whose entries change, setgid
 * directories passing their group (and, to subdirectories, the bit) on, and invalidating the
 * checkpoint tree of every directory a change shows in.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/xattr.h>
#include <time.h>

#include "acl.h"
#include "fs_internal.h"

/* RENAME_* may be missing from older libc headers. */
#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

int64_t fs_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void ns_to_ts(int64_t ns, struct timespec *ts)
{
	ts->tv_sec = ns / 1000000000;
	ts->tv_nsec = ns % 1000000000;
	if (ts->tv_nsec < 0) {
		ts->tv_nsec += 1000000000;
		ts->tv_sec--;
	}
}

static int64_t ts_to_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

void fs_inode_to_stat(const struct meta_inode *mi, struct stat *st)
{
	*st = (struct stat){0};
	st->st_ino = ino_to_node(mi->ino);
	st->st_mode = mi->mode;
	st->st_nlink = mi->nlink;
	st->st_uid = mi->uid;
	st->st_gid = mi->gid;
	st->st_rdev = mi->rdev;
	st->st_size = (off_t)mi->size;
	st->st_blksize = 4096;
	st->st_blocks = (blkcnt_t)((mi->size + 511) / 512);
	ns_to_ts(mi->atime, &st->st_atim);
	ns_to_ts(mi->mtime, &st->st_mtim);
	ns_to_ts(mi->ctime, &st->st_ctim);
}

static void root_stat(struct fs *fs, struct stat *st)
{
	*st = (struct stat){0};
	st->st_ino = FSOPS_ROOT;
	st->st_mode = S_IFDIR | 0755;
	st->st_nlink = 3 + (nlink_t)(fs->snaps ? snaps_count(fs->snaps) : 0);
	st->st_blksize = 4096;
	ns_to_ts(fs->mount_time, &st->st_atim);
	st->st_mtim = st->st_ctim = st->st_atim;
}

int fs_touch_parents(struct fs *fs, uint64_t ino)
{
	return meta_touch_parents(fs->meta, ino);
}

/* After any change to inode mi: the trees that show it must be rewritten. */
static int touch(struct fs *fs, const struct meta_inode *mi)
{
	if (S_ISDIR(mi->mode))
		return meta_tree_invalidate(fs->meta, mi->ino);
	return fs_touch_parents(fs, mi->ino);
}

/* The working-tree inode of a node, refusing the virtual mount root. */
static int tree_ino(uint64_t node, uint64_t *ret)
{
	if (node == FSOPS_ROOT)
		return -EACCES; /* the mount root is not writable: users write in current/ */
	if (node < FSOPS_CURRENT)
		return -ENOENT;
	if (snap_is_node(node))
		return -EROFS; /* snapshots are read-only */
	*ret = node_to_ino(node);
	return 0;
}

static int check_name(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || strchr(name, '/'))
		return -EINVAL;
	return n > META_NAME_MAX ? -ENAMETOOLONG : 0;
}

/* The kernel's entry for an inode it now holds one more lookup of. */
static int entry_of(struct fs *fs, const struct meta_inode *mi, struct fs_entry *ret)
{
	uint64_t ino = mi->ino;
	struct fs_inode *i = fs_inode_get(fs, ino);
	if (!i)
		return -ENOMEM;
	pthread_mutex_lock(&fs->tab_mu);
	i->nlookup++;
	pthread_mutex_unlock(&fs->tab_mu);
	if (S_ISREG(mi->mode))
		atomic_store_explicit(&i->is_reg, true, memory_order_relaxed);
	fs_inode_put(fs, i);
	ret->node = ino_to_node(ino);
	fs_inode_to_stat(mi, &ret->attr);
	return 0;
}

static int make_entry(struct fs *fs, uint64_t ino, struct fs_entry *ret)
{
	struct meta_inode mi;
	int r = meta_inode_get(fs->meta, ino, &mi);
	return r < 0 ? r : entry_of(fs, &mi, ret);
}

int fsops_lookup(struct fs *fs, uint64_t parent, const char *name, struct fs_entry *ret)
{
	uint64_t dir;
	if (parent == FSOPS_ROOT) {
		if (strcmp(name, "current"))
			return snaps_root_lookup(fs->snaps, name, ret);
		return make_entry(fs, META_ROOT_INO, ret);
	}
	if (snap_is_node(parent))
		return snaps_lookup(fs->snaps, parent, name, ret);
	int r = tree_ino(parent, &dir);
	if (r < 0)
		return r;
	if (strlen(name) > META_NAME_MAX)
		return -ENAMETOOLONG;
	struct meta_inode mi;
	r = meta_lookup_inode(fs->meta, dir, name, &mi);
	return r < 0 ? r : entry_of(fs, &mi, ret);
}

void fs_set_kernel_times(struct fs *fs, bool on)
{
	fs->kernel_times = on;
}

void fsops_ref(struct fs *fs, uint64_t node)
{
	if (snap_is_node(node))
		snaps_ref(fs->snaps, node);
	if (node < FSOPS_CURRENT || snap_is_node(node))
		return;
	struct fs_inode *i = fs_inode_get(fs, node_to_ino(node));
	if (!i)
		return;
	pthread_mutex_lock(&fs->tab_mu);
	i->nlookup++;
	pthread_mutex_unlock(&fs->tab_mu);
	fs_inode_put(fs, i);
}

/* Delete the row of an inode nobody references any more (links, lookups, handles). */
static void maybe_reap(struct fs *fs, struct fs_inode *i)
{
	struct meta_inode mi;
	pthread_mutex_lock(&fs->tab_mu);
	bool referenced = i->nlookup || i->nopen;
	pthread_mutex_unlock(&fs->tab_mu);
	if (referenced || meta_inode_get(fs->meta, i->ino, &mi) < 0 || mi.nlink > 0 ||
	    i->ino == META_ROOT_INO)
		return;
	/* The lock order of fs_data_flush: the inode, then the sync lock. */
	pthread_mutex_lock(&i->mu);
	pthread_rwlock_rdlock(&fs->sync_lock);
	fs_data_mark_clean(fs, i);
	meta_inode_delete(fs->meta, i->ino);
	pthread_rwlock_unlock(&fs->sync_lock);
	pthread_mutex_unlock(&i->mu);
}

void fsops_forget(struct fs *fs, uint64_t node, uint64_t nlookup)
{
	if (snap_is_node(node))
		snaps_forget(fs->snaps, node, nlookup);
	if (node < FSOPS_CURRENT || snap_is_node(node))
		return;
	struct fs_inode *i = fs_inode_get(fs, node_to_ino(node));
	if (!i)
		return;
	pthread_mutex_lock(&fs->tab_mu);
	i->nlookup = nlookup > i->nlookup ? 0 : i->nlookup - nlookup;
	pthread_mutex_unlock(&fs->tab_mu);
	pthread_mutex_lock(&fs->ops_mu);
	maybe_reap(fs, i);
	pthread_mutex_unlock(&fs->ops_mu);
	fs_inode_put(fs, i);
}

int fsops_getattr(struct fs *fs, uint64_t node, struct stat *ret)
{
	struct meta_inode mi;
	if (node == FSOPS_ROOT) {
		root_stat(fs, ret);
		return 0;
	}
	if (snap_is_node(node))
		return snaps_getattr(fs->snaps, node, ret);
	int r = meta_inode_get(fs->meta, node_to_ino(node), &mi);
	if (r < 0)
		return r;
	fs_inode_to_stat(&mi, ret);
	return 0;
}

/*
 * The size part of a setattr: under the file's data lock, like a write, not under ops_mu. A
 * truncation may copy a file's staged bytes to a new staging file (data.c), and namespace
 * operations must not wait for that. Only the size column changes, which the rest of
 * setattr (meta_inode_update) never writes.
 */
static int setattr_size(struct fs *fs, uint64_t ino, uint64_t size, bool *ret_changed)
{
	struct meta_inode mi;
	int r = meta_inode_get(fs->meta, ino, &mi);
	if (r < 0)
		return r;
	if (S_ISDIR(mi.mode))
		return -EISDIR;
	if (!S_ISREG(mi.mode))
		return -EINVAL;
	struct fs_inode *i = fs_inode_get(fs, ino);
	if (!i)
		return -ENOMEM;
	pthread_mutex_lock(&i->mu);
	/* Re-read under the data lock: a write may have grown the file meanwhile. */
	r = meta_inode_get(fs->meta, ino, &mi);
	if (r >= 0 && size != mi.size) {
		r = fs_data_truncate(fs, i, mi.size, size);
		if (r == -ENOSPC) {
			/* No room in the cache to move staged bytes aside: store them, and
			 * only the kept prefix of a chunk cut in two is left to write. */
			pthread_mutex_unlock(&i->mu);
			(void)fs_data_flush(fs, i);
			pthread_mutex_lock(&i->mu);
			r = meta_inode_get(fs->meta, ino, &mi);
			if (r >= 0 && size != mi.size)
				r = fs_data_truncate(fs, i, mi.size, size);
		}
		/* Only a real change of size is a modification (as ext4). */
		*ret_changed = r >= 0;
		if (r < 0)
			log_error("inode %" PRIu64 ": truncating to %" PRIu64 " bytes: %s", ino,
				  size, strerror(-r));
	}
	pthread_mutex_unlock(&i->mu);
	fs_inode_put(fs, i);
	return r;
}

static int setattr_locked(struct fs *fs, uint64_t ino, const struct stat *a, int to_set,
			  bool size_changed, struct stat *ret)
{
	struct meta_inode mi;
	int64_t now = fs_now_ns();
	int r = meta_inode_get(fs->meta, ino, &mi);
	if (r < 0)
		return r;
	if (size_changed)
		mi.mtime = now;
	if (to_set & FSOPS_SET_MODE) {
		mi.mode = (mi.mode & S_IFMT) | (a->st_mode & 07777);
		/* chmod rewrites an extended ACL's owner, mask and other entries, as native
		 * filesystems do; the kernel leaves it to us and enforces what we store. */
		_cleanup_free_ void *acl = NULL;
		size_t len;
		r = meta_xattr_get(fs->meta, ino, ACL_XATTR_ACCESS, &acl, &len);
		if (r == 0 && acl_chmod(acl, len, mi.mode) == 0)
			r = meta_xattr_set(fs->meta, ino, ACL_XATTR_ACCESS, acl, len, 0);
		else if (r == -ENODATA)
			r = 0;
		if (r < 0)
			return r;
	}
	if (to_set & FSOPS_SET_UID)
		mi.uid = a->st_uid;
	if (to_set & FSOPS_SET_GID)
		mi.gid = a->st_gid;
	if (to_set & FSOPS_SET_ATIME_NOW)
		mi.atime = now;
	else if (to_set & FSOPS_SET_ATIME)
		mi.atime = ts_to_ns(&a->st_atim);
	if (to_set & FSOPS_SET_MTIME_NOW)
		mi.mtime = now;
	else if (to_set & FSOPS_SET_MTIME)
		mi.mtime = ts_to_ns(&a->st_mtim);
	mi.ctime = (to_set & FSOPS_SET_CTIME) ? ts_to_ns(&a->st_ctim) : now;
	r = meta_inode_update(fs->meta, &mi);
	if (r >= 0)
		r = touch(fs, &mi);
	if (r >= 0)
		fs_inode_to_stat(&mi, ret);
	return r;
}

int fsops_setattr(struct fs *fs, uint64_t node, const struct stat *attr, int to_set,
		  struct stat *ret)
{
	uint64_t ino;
	int r = tree_ino(node, &ino);
	if (r < 0)
		return r;
	bool size_changed = false;
	pthread_rwlock_rdlock(&fs->ns_lock);
	if (to_set & FSOPS_SET_SIZE)
		r = setattr_size(fs, ino, (uint64_t)attr->st_size, &size_changed);
	if (r >= 0) {
		pthread_mutex_lock(&fs->ops_mu);
		r = setattr_locked(fs, ino, attr, to_set, size_changed, ret);
		pthread_mutex_unlock(&fs->ops_mu);
	}
	pthread_rwlock_unlock(&fs->ns_lock);
	return r;
}

int fsops_readlink(struct fs *fs, uint64_t node, char **ret)
{
	uint64_t ino;
	if (snap_is_node(node))
		return snaps_readlink(fs->snaps, node, ret);
	int r = tree_ino(node, &ino);
	return r < 0 ? r : meta_symlink_get(fs->meta, ino, ret);
}

/* Update a directory after its entries changed; nlink_delta for subdirectories. */
static int dir_changed(struct fs *fs, uint64_t dir, int nlink_delta, int64_t now)
{
	struct meta_inode d;
	int r = meta_inode_get(fs->meta, dir, &d);
	if (r < 0)
		return r;
	d.nlink = (uint32_t)((int64_t)d.nlink + nlink_delta);
	d.mtime = d.ctime = now;
	r = meta_inode_update(fs->meta, &d);
	return r < 0 ? r : meta_tree_invalidate(fs->meta, dir);
}

/* Create an inode of any type in a directory; target for symlinks. ops_mu held. */
/* A new inode's mode and ACLs from its directory's default ACL; without one, the umask. */
static int inherit_acl(struct fs *fs, uint64_t dir, mode_t *mode, mode_t umask, struct buf *acl,
		       struct buf *def)
{
	_cleanup_free_ void *d = NULL;
	size_t len;
	if (S_ISLNK(*mode))
		return 0;
	int r = meta_xattr_get(fs->meta, dir, ACL_XATTR_DEFAULT, &d, &len);
	if (r == -ENODATA) {
		*mode &= ~umask;
		return 0;
	}
	if (r < 0)
		return r;
	r = acl_inherit(d, len, mode, acl);
	if (r >= 0 && S_ISDIR(*mode))
		r = buf_append(def, d, len); /* subdirectories pass it on */
	return r;
}

static int create_locked(struct fs *fs, uint64_t dir, const char *name, mode_t mode, dev_t rdev,
			 uid_t uid, gid_t gid, mode_t umask, const char *target, uint64_t *ret_ino)
{
	_cleanup_buf_ struct buf acl = {0}, def = {0};
	struct meta_inode parent, mi;
	uint64_t ino, existing;
	int64_t now = fs_now_ns();
	int r = check_name(name);
	if (r < 0)
		return r;
	r = meta_inode_get(fs->meta, dir, &parent);
	if (r < 0)
		return r;
	if (!S_ISDIR(parent.mode))
		return -ENOTDIR;
	if (parent.nlink == 0)
		return -ENOENT; /* removed while open */
	r = meta_lookup(fs->meta, dir, name, &existing);
	if (r == 0)
		return -EEXIST;
	if (r != -ENOENT)
		return r;
	r = inherit_acl(fs, dir, &mode, umask, &acl, &def);
	if (r < 0)
		return r;
	mi = (struct meta_inode){.mode = mode,
				 .uid = uid,
				 .gid = gid,
				 .rdev = rdev,
				 .nlink = S_ISDIR(mode) ? 2 : 1,
				 .atime = now,
				 .mtime = now,
				 .ctime = now};
	/* BSD group semantics in a setgid directory, as ext4 does. */
	if (parent.mode & S_ISGID) {
		mi.gid = parent.gid;
		if (S_ISDIR(mode))
			mi.mode |= S_ISGID;
	}
	if (target)
		mi.size = strlen(target);
	r = meta_inode_create(fs->meta, &mi, &ino);
	if (r < 0)
		return r;
	if (target)
		r = meta_symlink_set(fs->meta, ino, target);
	/* A minimal ACL (three entries) says no more than the mode: store none, as ext4. */
	if (r >= 0 && acl.len && !acl_is_minimal(acl.len))
		r = meta_xattr_set(fs->meta, ino, ACL_XATTR_ACCESS, acl.data, acl.len, 0);
	if (r >= 0 && def.len)
		r = meta_xattr_set(fs->meta, ino, ACL_XATTR_DEFAULT, def.data, def.len, 0);
	if (r >= 0 && S_ISDIR(mode))
		r = meta_tree_invalidate(fs->meta, ino);
	if (r >= 0)
		r = meta_link(fs->meta, dir, name, ino);
	if (r >= 0)
		r = dir_changed(fs, dir, S_ISDIR(mode) ? 1 : 0, now);
	if (r < 0) {
		meta_unlink(fs->meta, dir, name);
		meta_inode_delete(fs->meta, ino);
		return r;
	}
	*ret_ino = ino;
	return 0;
}

static int create_entry(struct fs *fs, uint64_t parent, const char *name, mode_t mode, dev_t rdev,
			uid_t uid, gid_t gid, mode_t umask, const char *target,
			struct fs_entry *ret)
{
	uint64_t dir, ino = 0;
	int r = tree_ino(parent, &dir);
	if (r < 0)
		return r;
	if (target && strlen(target) >= 4096)
		return -ENAMETOOLONG;
	pthread_rwlock_rdlock(&fs->ns_lock);
	pthread_mutex_lock(&fs->ops_mu);
	r = create_locked(fs, dir, name, mode, rdev, uid, gid, umask, target, &ino);
	if (r >= 0)
		r = make_entry(fs, ino, ret);
	pthread_mutex_unlock(&fs->ops_mu);
	pthread_rwlock_unlock(&fs->ns_lock);
	return r;
}

int fsops_mknod(struct fs *fs, uint64_t parent, const char *name, mode_t mode, dev_t rdev,
		uid_t uid, gid_t gid, mode_t umask, struct fs_entry *ret)
{
	switch (mode & S_IFMT) {
	case S_IFREG:
	case S_IFIFO:
	case S_IFSOCK:
	case S_IFCHR:
	case S_IFBLK:
		break;
	default:
		return -EINVAL;
	}
	return create_entry(fs, parent, name, mode, S_ISCHR(mode) || S_ISBLK(mode) ? rdev : 0, uid,
			    gid, umask, NULL, ret);
}

int fsops_mkdir(struct fs *fs, uint64_t parent, const char *name, mode_t mode, uid_t uid, gid_t gid,
		mode_t umask, struct fs_entry *ret)
{
	return create_entry(fs, parent, name, S_IFDIR | (mode & 07777), 0, uid, gid, umask, NULL,
			    ret);
}

int fsops_symlink(struct fs *fs, uint64_t parent, const char *name, const char *target, uid_t uid,
		  gid_t gid, struct fs_entry *ret)
{
	return create_entry(fs, parent, name, S_IFLNK | 0777, 0, uid, gid, 0, target, ret);
}

int fsops_create(struct fs *fs, uint64_t parent, const char *name, mode_t mode, uid_t uid,
		 gid_t gid, mode_t umask, int flags, struct fs_entry *ret)
{
	int r = create_entry(fs, parent, name, S_IFREG | (mode & 07777), 0, uid, gid, umask, NULL,
			     ret);
	if (r < 0)
		return r;
	return fsops_open(fs, ret->node, flags);
}

int fsops_link(struct fs *fs, uint64_t node, uint64_t new_parent, const char *new_name,
	       struct fs_entry *ret)
{
	uint64_t ino, dir, existing;
	struct meta_inode mi;
	int64_t now = fs_now_ns();
	int r = tree_ino(node, &ino);
	if (r >= 0)
		r = tree_ino(new_parent, &dir);
	if (r >= 0)
		r = check_name(new_name);
	if (r < 0)
		return r;
	pthread_rwlock_rdlock(&fs->ns_lock);
	pthread_mutex_lock(&fs->ops_mu);
	r = meta_inode_get(fs->meta, ino, &mi);
	if (r >= 0 && S_ISDIR(mi.mode))
		r = -EPERM;
	if (r >= 0 && mi.nlink == 0)
		r = -ENOENT;
	if (r >= 0) {
		r = meta_lookup(fs->meta, dir, new_name, &existing);
		r = r == 0 ? -EEXIST : r == -ENOENT ? 0 : r;
	}
	if (r >= 0)
		r = meta_link(fs->meta, dir, new_name, ino);
	if (r >= 0) {
		mi.nlink++;
		mi.ctime = now;
		r = meta_inode_update(fs->meta, &mi);
	}
	if (r >= 0)
		r = dir_changed(fs, dir, 0, now);
	if (r >= 0)
		r = touch(fs, &mi);
	if (r >= 0)
		r = make_entry(fs, ino, ret);
	pthread_mutex_unlock(&fs->ops_mu);
	pthread_rwlock_unlock(&fs->ns_lock);
	return r;
}

/* Drop one link of ino (an entry naming it is gone). ops_mu held. */
static int drop_link(struct fs *fs, uint64_t ino, int64_t now)
{
	struct meta_inode mi;
	int r = meta_inode_get(fs->meta, ino, &mi);
	if (r < 0)
		return r;
	mi.nlink = S_ISDIR(mi.mode) ? 0 : mi.nlink - 1;
	mi.ctime = now;
	r = meta_inode_update(fs->meta, &mi);
	if (r < 0)
		return r;
	if (mi.nlink > 0)
		return touch(fs, &mi);
	struct fs_inode *i = fs_inode_get(fs, ino);
	if (!i)
		return -ENOMEM;
	maybe_reap(fs, i);
	fs_inode_put(fs, i);
	return 0;
}

static int remove_entry(struct fs *fs, uint64_t parent, const char *name, bool want_dir)
{
	uint64_t dir, ino;
	struct meta_inode mi;
	int64_t now = fs_now_ns();
	int r = tree_ino(parent, &dir);
	if (r < 0)
		return r;
	pthread_rwlock_rdlock(&fs->ns_lock);
	pthread_mutex_lock(&fs->ops_mu);
	r = meta_lookup(fs->meta, dir, name, &ino);
	if (r >= 0)
		r = meta_inode_get(fs->meta, ino, &mi);
	if (r >= 0 && want_dir && !S_ISDIR(mi.mode))
		r = -ENOTDIR;
	if (r >= 0 && !want_dir && S_ISDIR(mi.mode))
		r = -EISDIR;
	if (r >= 0 && want_dir) {
		r = meta_dir_has_entries(fs->meta, ino);
		r = r > 0 ? -ENOTEMPTY : r;
	}
	if (r >= 0)
		r = meta_unlink(fs->meta, dir, name);
	if (r >= 0)
		r = dir_changed(fs, dir, want_dir ? -1 : 0, now);
	if (r >= 0)
		r = drop_link(fs, ino, now);
	pthread_mutex_unlock(&fs->ops_mu);
	pthread_rwlock_unlock(&fs->ns_lock);
	return r;
}

int fsops_unlink(struct fs *fs, uint64_t parent, const char *name)
{
	return remove_entry(fs, parent, name, false);
}

int fsops_rmdir(struct fs *fs, uint64_t parent, const char *name)
{
	return remove_entry(fs, parent, name, true);
}

static int rename_exchange(struct fs *fs, uint64_t dir, const char *name, uint64_t ndir,
			   const char *nname, const struct meta_inode *a,
			   const struct meta_inode *b, int64_t now)
{
	int r = meta_relink(fs->meta, dir, name, b->ino);
	if (r >= 0)
		r = meta_relink(fs->meta, ndir, nname, a->ino);
	if (r < 0)
		return r;
	int delta = (S_ISDIR(a->mode) ? 1 : 0) - (S_ISDIR(b->mode) ? 1 : 0);
	if (dir != ndir) {
		r = dir_changed(fs, dir, -delta, now);
		if (r >= 0)
			r = dir_changed(fs, ndir, delta, now);
	} else
		r = dir_changed(fs, dir, 0, now);
	struct meta_inode x = *a, y = *b;
	x.ctime = y.ctime = now;
	if (r >= 0)
		r = meta_inode_update(fs->meta, &x);
	if (r >= 0)
		r = meta_inode_update(fs->meta, &y);
	if (r >= 0)
		r = touch(fs, &x);
	return r >= 0 ? touch(fs, &y) : r;
}

static int rename_locked(struct fs *fs, uint64_t dir, const char *name, uint64_t ndir,
			 const char *nname, unsigned flags)
{
	struct meta_inode src, dst, nd;
	uint64_t sino, dino;
	int64_t now = fs_now_ns();
	int r = check_name(nname);
	if (r < 0)
		return r;
	r = meta_lookup(fs->meta, dir, name, &sino);
	if (r >= 0)
		r = meta_inode_get(fs->meta, sino, &src);
	if (r >= 0)
		r = meta_inode_get(fs->meta, ndir, &nd);
	if (r < 0)
		return r;
	if (!S_ISDIR(nd.mode))
		return -ENOTDIR;
	r = meta_lookup(fs->meta, ndir, nname, &dino);
	bool exists = r == 0;
	if (r < 0 && r != -ENOENT)
		return r;
	if (exists) {
		r = meta_inode_get(fs->meta, dino, &dst);
		if (r < 0)
			return r;
	}
	if (flags & RENAME_EXCHANGE) {
		if (!exists)
			return -ENOENT;
		return rename_exchange(fs, dir, name, ndir, nname, &src, &dst, now);
	}
	if (exists && (flags & RENAME_NOREPLACE))
		return -EEXIST;
	if (exists && dino == sino)
		return 0; /* two links of one inode: POSIX says do nothing */
	int delta = S_ISDIR(src.mode) ? 1 : 0;
	if (exists) {
		if (S_ISDIR(src.mode) && !S_ISDIR(dst.mode))
			return -ENOTDIR;
		if (!S_ISDIR(src.mode) && S_ISDIR(dst.mode))
			return -EISDIR;
		if (S_ISDIR(dst.mode)) {
			r = meta_dir_has_entries(fs->meta, dino);
			if (r != 0)
				return r > 0 ? -ENOTEMPTY : r;
			delta = 0; /* one subdirectory replaces another */
		}
		r = meta_relink(fs->meta, ndir, nname, sino);
		if (r >= 0)
			r = meta_unlink(fs->meta, dir, name);
	} else
		r = meta_move(fs->meta, dir, name, ndir, nname);
	if (r < 0)
		return r;
	if (dir != ndir) {
		r = dir_changed(fs, dir, S_ISDIR(src.mode) ? -1 : 0, now);
		if (r >= 0)
			r = dir_changed(fs, ndir, delta, now);
	} else
		r = dir_changed(fs, dir, exists && S_ISDIR(dst.mode) ? -1 : 0, now);
	src.ctime = now;
	if (r >= 0)
		r = meta_inode_update(fs->meta, &src);
	if (r >= 0)
		r = touch(fs, &src);
	if (r >= 0 && exists)
		r = drop_link(fs, dino, now);
	return r;
}

int fsops_rename(struct fs *fs, uint64_t parent, const char *name, uint64_t new_parent,
		 const char *new_name, unsigned flags)
{
	uint64_t dir, ndir;
	int r = tree_ino(parent, &dir);
	if (r >= 0)
		r = tree_ino(new_parent, &ndir);
	if (r < 0)
		return r;
	if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE))
		return -EINVAL;
	pthread_rwlock_rdlock(&fs->ns_lock);
	pthread_mutex_lock(&fs->ops_mu);
	r = rename_locked(fs, dir, name, ndir, new_name, flags);
	pthread_mutex_unlock(&fs->ops_mu);
	pthread_rwlock_unlock(&fs->ns_lock);
	return r;
}

int fsops_open(struct fs *fs, uint64_t node, int flags)
{
	uint64_t ino;
	struct meta_inode mi;
	if (node == FSOPS_ROOT)
		return (flags & O_ACCMODE) == O_RDONLY ? 0 : -EISDIR;
	if (snap_is_node(node)) {
		struct stat st;
		int r = snaps_getattr(fs->snaps, node, &st);
		if (r >= 0 && ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC)))
			r = -EROFS;
		return r;
	}
	int r = tree_ino(node, &ino);
	if (r < 0)
		return r;
	struct fs_inode *i = fs_inode_get(fs, ino);
	if (!i)
		return -ENOMEM;
	/* An inode the kernel holds a lookup of exists (maybe_reap keeps it): no need to ask
	 * meta, which an rsync would do twice per file. */
	pthread_mutex_lock(&fs->tab_mu);
	bool known = i->nlookup > 0;
	if (known)
		i->nopen++;
	pthread_mutex_unlock(&fs->tab_mu);
	if (!known && (r = meta_inode_get(fs->meta, ino, &mi)) >= 0) {
		pthread_mutex_lock(&fs->tab_mu);
		i->nopen++;
		pthread_mutex_unlock(&fs->tab_mu);
	}
	/* O_TRUNC arrives as a separate setattr from the kernel (atomic_o_trunc is off). */
	fs_inode_put(fs, i);
	return r < 0 ? r : 0;
}

int fsops_release(struct fs *fs, uint64_t node)
{
	if (node < FSOPS_CURRENT || snap_is_node(node))
		return 0;
	struct fs_inode *i = fs_inode_get(fs, node_to_ino(node));
	if (!i)
		return -ENOMEM;
	pthread_mutex_lock(&fs->tab_mu);
	if (i->nopen)
		i->nopen--;
	bool last = i->nopen == 0;
	pthread_mutex_unlock(&fs->tab_mu);
	if (last && i->dirty)
		fs_flush_later(fs, i);
	pthread_mutex_lock(&fs->ops_mu);
	maybe_reap(fs, i);
	pthread_mutex_unlock(&fs->ops_mu);
	fs_inode_put(fs, i);
	return 0;
}

static ssize_t snap_read(struct fs *fs, uint64_t node, void *buf, size_t len, uint64_t off)
{
	_cleanup_free_ struct meta_extent *v = NULL;
	size_t n;
	uint64_t size;
	int r = snaps_extents(fs->snaps, node, &size, &v, &n);
	return r < 0 ? r : fs_data_read_extents(fs, v, n, buf, len, off, size);
}

ssize_t fsops_read(struct fs *fs, uint64_t node, void *buf, size_t len, uint64_t off)
{
	struct meta_inode mi;
	uint64_t ino;
	if (snap_is_node(node))
		return snap_read(fs, node, buf, len, off);
	int r = tree_ino(node, &ino);
	if (r < 0)
		return r;
	struct fs_inode *i = fs_inode_get(fs, ino);
	if (!i)
		return -ENOMEM;
	pthread_mutex_lock(&i->mu);
	/* Under the lock: the size may change while we wait for it. */
	r = meta_inode_get(fs->meta, ino, &mi);
	if (r >= 0 && S_ISDIR(mi.mode))
		r = -EISDIR;
	ssize_t n = r < 0 ? r : fs_data_read(fs, i, buf, len, off, mi.size, true);
	pthread_mutex_unlock(&i->mu);
	fs_inode_put(fs, i);
	return n;
}

ssize_t fsops_write(struct fs *fs, uint64_t node, const void *buf, size_t len, uint64_t off)
{
	uint64_t ino;
	int r = tree_ino(node, &ino);
	if (r < 0)
		return r;
	if (off > (uint64_t)INT64_MAX - len)
		return -EFBIG;
	struct fs_inode *i = fs_inode_get(fs, ino);
	if (!i)
		return -ENOMEM;
	pthread_rwlock_rdlock(&fs->ns_lock);
	pthread_mutex_lock(&i->mu);
	r = fs_data_write(fs, i, buf, len, off);
	pthread_mutex_unlock(&i->mu);
	pthread_rwlock_unlock(&fs->ns_lock);
	/* Cache pressure: chunk and store what is staged even though the file is still open.
	 * The flush holds the file's lock, so further writes to it wait: back-pressure. */
	pthread_mutex_lock(&fs->tab_mu);
	bool pressure = fs->staged_bytes > fs->opt.staging_limit;
	pthread_mutex_unlock(&fs->tab_mu);
	if (r >= 0 && pressure)
		fs_flush_later(fs, i);
	fs_inode_put(fs, i);
	return r < 0 ? r : (ssize_t)len;
}

int fsops_fsync(struct fs *fs, uint64_t node, bool datasync)
{
	uint64_t ino;
	int r = tree_ino(node, &ino);
	if (r < 0)
		return node == FSOPS_ROOT || r == -EROFS ? 0 : r; /* nothing to make durable */
	struct fs_inode *i = fs_inode_get(fs, ino);
	if (!i)
		return -ENOMEM;
	pthread_mutex_lock(&i->mu);
	r = fs_data_fsync(fs, i, datasync);
	pthread_mutex_unlock(&i->mu);
	fs_inode_put(fs, i);
	return r;
}

int fsops_fallocate(struct fs *fs, uint64_t node, int mode, uint64_t off, uint64_t len)
{
	struct meta_inode mi;
	uint64_t ino;
	/* Only plain preallocation: it may grow the size; space is not reserved (the store
	 * deduplicates and compresses, so there is nothing meaningful to reserve). */
	if (mode & ~FALLOC_FL_KEEP_SIZE)
		return -EOPNOTSUPP;
	int r = tree_ino(node, &ino);
	if (r >= 0)
		r = meta_inode_get(fs->meta, ino, &mi);
	if (r < 0)
		return r;
	if (!S_ISREG(mi.mode))
		return -ENODEV;
	if ((mode & FALLOC_FL_KEEP_SIZE) || off + len <= mi.size)
		return 0;
	/* Grow only, under the file's lock: a write racing this may already have gone further. */
	struct fs_inode *i = fs_inode_get(fs, ino);
	if (!i)
		return -ENOMEM;
	pthread_rwlock_rdlock(&fs->ns_lock);
	pthread_mutex_lock(&i->mu);
	r = meta_inode_extend(fs->meta, ino, off + len, fs_now_ns());
	if (r >= 0)
		r = fs_touch_parents(fs, ino);
	pthread_mutex_unlock(&i->mu);
	pthread_rwlock_unlock(&fs->ns_lock);
	fs_inode_put(fs, i);
	return r;
}

struct readdir_ctx {
	struct fs *fs;
	int (*fn)(uint64_t cookie, const char *name, const struct fs_entry *e, void *ud);
	void *ud;
};

static int readdir_cb(uint64_t cookie, const char *name, uint64_t ino, void *ud)
{
	struct readdir_ctx *c = ud;
	struct fs_entry e = {.node = ino_to_node(ino)};
	struct meta_inode mi;
	int r = meta_inode_get(c->fs->meta, ino, &mi);
	if (r < 0)
		return r;
	fs_inode_to_stat(&mi, &e.attr);
	/* Cookies 1 and 2 are "." and "..". */
	return c->fn(cookie + 2, name, &e, c->ud);
}

int fsops_readdir(struct fs *fs, uint64_t node, uint64_t cookie,
		  int (*fn)(uint64_t cookie, const char *name, const struct fs_entry *e, void *ud),
		  void *ud)
{
	struct fs_entry e = {0};
	int r = 0;

	if (node == FSOPS_ROOT) {
		root_stat(fs, &e.attr);
		e.node = FSOPS_ROOT;
		if (cookie < 1 && (r = fn(1, ".", &e, ud)) != 0)
			return r < 0 ? r : 0;
		if (cookie < 2 && (r = fn(2, "..", &e, ud)) != 0)
			return r < 0 ? r : 0;
		if (cookie < 3) {
			r = fsops_getattr(fs, FSOPS_CURRENT, &e.attr);
			e.node = FSOPS_CURRENT;
			if (r >= 0 && (r = fn(3, "current", &e, ud)) != 0)
				return r < 0 ? r : 0;
		}
		/* Then the snapshots: cookie 4 + slot for the snapshot in that slot. */
		for (size_t slot = cookie > 3 ? cookie - 3 : 0; r >= 0; slot++) {
			char *name = NULL;
			r = snaps_root_next(fs->snaps, slot, &slot, &name, &e);
			if (r == -ENOENT)
				return 0;
			if (r >= 0)
				r = fn(4 + slot, name, &e, ud);
			free(name);
			if (r > 0)
				return 0;
		}
		return r < 0 ? r : 0;
	}
	if (snap_is_node(node))
		return snaps_readdir(fs->snaps, node, cookie, fn, ud);
	uint64_t dir;
	r = tree_ino(node, &dir);
	if (r < 0)
		return r;
	r = fsops_getattr(fs, node, &e.attr);
	if (r < 0)
		return r;
	if (!S_ISDIR(e.attr.st_mode))
		return -ENOTDIR;
	e.node = node;
	if (cookie < 1 && (r = fn(1, ".", &e, ud)) != 0)
		return r < 0 ? r : 0;
	if (cookie < 2) {
		/* The parent's attributes do not matter to getdents; only its type does. */
		if ((r = fn(2, "..", &e, ud)) != 0)
			return r < 0 ? r : 0;
	}
	struct readdir_ctx c = {fs, fn, ud};
	r = meta_readdir(fs->meta, dir, cookie > 2 ? cookie - 2 : 0, readdir_cb, &c);
	return r < 0 ? r : 0;
}

int fsops_statfs(struct fs *fs, struct statvfs *ret)
{
	struct statvfs local;
	uint64_t inodes = 0, bytes = 0;
	int r = meta_usage(fs->meta, &inodes, &bytes);
	if (r < 0)
		return r;
	/* The repository's own disk bounds what can be stored; report it, with our files. */
	if (statvfs(fs->cache_dir, &local) < 0)
		return -errno;
	*ret = local;
	ret->f_files = inodes + local.f_ffree;
	ret->f_namemax = META_NAME_MAX;
	return 0;
}

static int xattr_ino(struct fs *fs, uint64_t node, uint64_t *ret)
{
	if (node == FSOPS_ROOT)
		return -ENOTSUP;
	return tree_ino(node, ret);
}

static int xattr_changed(struct fs *fs, uint64_t ino, int mode_bits)
{
	struct meta_inode mi;
	int r = meta_inode_get(fs->meta, ino, &mi);
	if (r < 0)
		return r;
	if (mode_bits >= 0)
		mi.mode = (mi.mode & ~0777u) | (uint32_t)mode_bits;
	mi.ctime = fs_now_ns();
	r = meta_inode_update(fs->meta, &mi);
	return r < 0 ? r : touch(fs, &mi);
}

/* "INTERVAL/KEEP" or "INTERVAL/KEEP/LOWER/LOWER_KEEP" ('/' is in no snapshot name). */
static int rotate_request(struct fs *fs, const void *value, size_t len)
{
	_cleanup_free_ char *v = strndup(value, len);
	char *f[5] = {0}, *save = NULL, *end;
	size_t n = 0;
	if (!v)
		return -ENOMEM;
	for (char *t = strtok_r(v, "/", &save); t && n < 5; t = strtok_r(NULL, "/", &save))
		f[n++] = t;
	if (n != 2 && n != 4)
		return -EINVAL;
	unsigned long keep = strtoul(f[1], &end, 10), lower_keep = 0;
	if (*end || !keep || keep > COMMIT_MAX_SNAPSHOTS)
		return -EINVAL;
	if (n == 4) {
		lower_keep = strtoul(f[3], &end, 10);
		if (*end || !lower_keep || lower_keep > COMMIT_MAX_SNAPSHOTS)
			return -EINVAL;
	}
	return fs_rotate(fs, f[0], (unsigned)keep, f[2], (unsigned)lower_keep);
}

int fsops_setxattr(struct fs *fs, uint64_t node, const char *name, const void *value, size_t len,
		   int flags)
{
	uint64_t ino;
	/* The mount root's control attributes: synchronous, their outcome the reply. */
	if (node == FSOPS_ROOT && !strcmp(name, "user.cairn.checkpoint"))
		return fs_checkpoint(fs);
	if (node == FSOPS_ROOT && !strcmp(name, "user.cairn.snapshot")) {
		_cleanup_free_ char *snap = strndup(value, len);
		return snap ? fs_snapshot(fs, snap) : -ENOMEM;
	}
	if (node == FSOPS_ROOT && !strcmp(name, "user.cairn.rotate"))
		return rotate_request(fs, value, len);
	if (node == FSOPS_ROOT && !strcmp(name, "user.cairn.forget")) {
		_cleanup_free_ char *names = strndup(value, len);
		return names ? fs_forget(fs, names) : -ENOMEM;
	}
	int r = xattr_ino(fs, node, &ino);
	if (r < 0)
		return r;
	/* Reserved: the daemon answers user.cairn.id in snapshots (snap.c). */
	if (!strncmp(name, "user.cairn.", 11))
		return -EPERM;
	if (strlen(name) > 255)
		return -ERANGE;
	if (len > 65536)
		return -E2BIG;
	pthread_rwlock_rdlock(&fs->ns_lock);
	pthread_mutex_lock(&fs->ops_mu);
	int bits = -1;
	if (!strcmp(name, ACL_XATTR_ACCESS)) {
		bits = acl_mode_bits(value, len);
		if (bits < 0) {
			pthread_mutex_unlock(&fs->ops_mu);
			pthread_rwlock_unlock(&fs->ns_lock);
			return bits;
		}
	}
	if (bits >= 0 && acl_is_minimal(len)) {
		/* The mode says it all: drop any extended ACL the file had. */
		r = meta_xattr_remove(fs->meta, ino, name);
		if (r == -ENODATA)
			r = 0;
	} else
		r = meta_xattr_set(fs->meta, ino, name, value, len, flags);
	if (r >= 0)
		r = xattr_changed(fs, ino, bits);
	pthread_mutex_unlock(&fs->ops_mu);
	pthread_rwlock_unlock(&fs->ns_lock);
	return r;
}

/* The page number of name if it is prefix followed by a decimal number, else -1. */
static long page_of(const char *name, const char *prefix)
{
	size_t n = strlen(prefix);
	char *end;
	if (strncmp(name, prefix, n) || name[n] < '0' || name[n] > '9')
		return -1;
	unsigned long page = strtoul(name + n, &end, 10);
	return *end || page >= COMMIT_MAX_SNAPSHOTS ? -1 : (long)page;
}

/* The mount root answers read-only attributes for the tools: the daemon's pid and cache
 * directory (`cairn umount`), the snapshot list in pages user.cairn.snapshots.K and their
 * sizes in pages user.cairn.usage.K (`cairn list`, the formats of snaps_list and
 * snaps_usage; a page past the end holds only the seq line), and user.cairn.settled, empty,
 * answered once the kernel can no longer hold a root name from before a change (fsops.h). */
static ssize_t root_xattr(struct fs *fs, const char *name, void *buf, size_t size)
{
	char pid[32];
	const char *v;
	_cleanup_buf_ struct buf list = {0};
	long page = page_of(name, "user.cairn.snapshots."), upage = -1;
	if (page >= 0 || (upage = page_of(name, "user.cairn.usage.")) >= 0) {
		int r = page >= 0 ? snaps_list(fs->snaps, (size_t)page * SNAPS_PER_PAGE,
					       SNAPS_PER_PAGE, &list)
				  : snaps_usage(fs->snaps, (size_t)upage * SNAPS_PER_PAGE,
						SNAPS_PER_PAGE, &list);
		if (r >= 0)
			r = buf_append(&list, "", 1);
		if (r < 0)
			return r;
		v = (const char *)list.data;
	} else if (!strcmp(name, "user.cairn.settled")) {
		fs_root_names_settle(fs);
		v = "";
	} else if (!strcmp(name, "user.cairn.pid")) {
		snprintf(pid, sizeof(pid), "%ld", (long)getpid());
		v = pid;
	} else if (!strcmp(name, "user.cairn.cachedir"))
		v = fs->cache_dir;
	else
		return -ENODATA;
	size_t len = strlen(v);
	if (size == 0)
		return (ssize_t)len;
	if (size < len)
		return -ERANGE;
	memcpy(buf, v, len);
	return (ssize_t)len;
}

ssize_t fsops_getxattr(struct fs *fs, uint64_t node, const char *name, void *buf, size_t size)
{
	uint64_t ino;
	_cleanup_free_ void *v = NULL;
	size_t len;
	if (node == FSOPS_ROOT)
		return root_xattr(fs, name, buf, size);
	if (snap_is_node(node))
		return snaps_getxattr(fs->snaps, node, name, buf, size);
	int r = xattr_ino(fs, node, &ino);
	if (r < 0)
		return r == -ENOTSUP ? -ENODATA : r;
	r = meta_xattr_get(fs->meta, ino, name, &v, &len);
	if (r < 0)
		return r;
	if (size == 0)
		return (ssize_t)len;
	if (size < len)
		return -ERANGE;
	memcpy(buf, v, len);
	return (ssize_t)len;
}

ssize_t fsops_listxattr(struct fs *fs, uint64_t node, char *buf, size_t size)
{
	uint64_t ino;
	_cleanup_buf_ struct buf names = {0};
	if (snap_is_node(node))
		return snaps_listxattr(fs->snaps, node, buf, size);
	int r = xattr_ino(fs, node, &ino);
	if (r < 0)
		return r == -ENOTSUP ? 0 : r;
	r = meta_xattr_list(fs->meta, ino, &names);
	if (r < 0)
		return r;
	if (size == 0)
		return (ssize_t)names.len;
	if (size < names.len)
		return -ERANGE;
	if (names.len)
		memcpy(buf, names.data, names.len);
	return (ssize_t)names.len;
}

int fsops_removexattr(struct fs *fs, uint64_t node, const char *name)
{
	uint64_t ino;
	int r = xattr_ino(fs, node, &ino);
	if (r < 0)
		return r;
	pthread_rwlock_rdlock(&fs->ns_lock);
	pthread_mutex_lock(&fs->ops_mu);
	r = meta_xattr_remove(fs->meta, ino, name);
	if (r >= 0)
		r = xattr_changed(fs, ino, -1);
	/* Removing an ACL the file does not have succeeds, as on ext4: setfacl -b relies on
	 * it. Nothing changed, so nothing is touched. */
	else if (r == -ENODATA &&
		 (!strcmp(name, ACL_XATTR_ACCESS) || !strcmp(name, ACL_XATTR_DEFAULT)))
		r = 0;
	pthread_mutex_unlock(&fs->ops_mu);
	pthread_rwlock_unlock(&fs->ns_lock);
	return r;
}
