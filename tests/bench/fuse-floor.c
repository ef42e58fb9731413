/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuse-floor: the cheapest FUSE file system an rsync -aHAX can back up into, for the mount
 * benchmark (tests/bench/mount.sh). It keeps names, attributes and extended attributes in
 * memory and drops the contents of files: a read gives zeros. In every other way it meets
 * the kernel as mount.cairn does: the same connection options (cairn_fuse_conn_want), the
 * same timeouts and negative entries, the same transport and thread loop
 * (fs_serve_session: io_uring where the kernel offers it, else /dev/fuse). Its times are
 * what any FUSE file system would pay on this machine, for these requests, before doing
 * any work of its own; cairn's times minus these are cairn's own cost.
 *
 * Usage: fuse-floor MOUNTPOINT. Runs in the foreground until unmounted (fusermount3 -u).
 * One lock serves every request; inodes are never freed (a benchmark's lifetime).
 */
#define FUSE_USE_VERSION 314
#include <errno.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>

#include "fs_main.h"
#include "fuse_ops.h"

#define TIMEOUT 60.0 /* as fuse_ops.c's ENTRY_TIMEOUT and ATTR_TIMEOUT */
#define NBUCKETS (1u << 20)

struct xattr {
	struct xattr *next;
	char *name;
	char *value;
	size_t size;
};

struct node {
	struct stat st;
	char *target; /* a symlink's */
	struct xattr *xattrs;
	uint64_t children;  /* a directory's entries, */
	struct dent *first; /* listed */
};

struct dent {
	struct dent *next;	     /* in its hash bucket */
	struct dent *dnext, **dprev; /* in its directory's list */
	fuse_ino_t parent, ino;
	char *name;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct node **nodes; /* by inode number; 0 unused */
static size_t n_nodes, cap_nodes;
static struct dent *names[NBUCKETS];

static size_t bucket(fuse_ino_t parent, const char *name)
{
	uint64_t h = 1469598103934665603ull ^ parent;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 1099511628211ull;
	return h % NBUCKETS;
}

static struct dent **dent_find(fuse_ino_t parent, const char *name)
{
	struct dent **d = &names[bucket(parent, name)];
	while (*d && ((*d)->parent != parent || strcmp((*d)->name, name)))
		d = &(*d)->next;
	return d;
}

static struct node *node_get(fuse_ino_t ino)
{
	return ino < n_nodes ? nodes[ino] : NULL;
}

static void now_ts(struct timespec *ts)
{
	clock_gettime(CLOCK_REALTIME, ts);
}

static fuse_ino_t node_new(mode_t mode, dev_t rdev, const struct fuse_ctx *ctx)
{
	if (n_nodes + 2 > cap_nodes) {
		size_t cap = cap_nodes ? 2 * cap_nodes : 1024;
		struct node **v = realloc(nodes, cap * sizeof(*v));
		if (!v)
			return 0;
		nodes = v;
		cap_nodes = cap;
	}
	struct node *n = calloc(1, sizeof(*n));
	if (!n)
		return 0;
	if (n_nodes == 0)
		nodes[n_nodes++] = NULL; /* no inode 0; the first one, 1, is the root */
	fuse_ino_t ino = n_nodes++;
	nodes[ino] = n;
	n->st.st_ino = ino;
	n->st.st_mode = mode;
	n->st.st_nlink = S_ISDIR(mode) ? 2 : 1;
	n->st.st_uid = ctx ? ctx->uid : 0;
	n->st.st_gid = ctx ? ctx->gid : 0;
	n->st.st_rdev = rdev;
	n->st.st_blksize = 4096;
	now_ts(&n->st.st_mtim);
	n->st.st_atim = n->st.st_ctim = n->st.st_mtim;
	return ino;
}

static int dent_add(fuse_ino_t parent, const char *name, fuse_ino_t ino)
{
	struct dent *d = calloc(1, sizeof(*d));
	if (!d || !(d->name = strdup(name))) {
		free(d);
		return -ENOMEM;
	}
	d->parent = parent;
	d->ino = ino;
	size_t b = bucket(parent, name);
	d->next = names[b];
	names[b] = d;
	struct node *p = nodes[parent];
	d->dnext = p->first;
	if (p->first)
		p->first->dprev = &d->dnext;
	d->dprev = &p->first;
	p->first = d;
	p->children++;
	now_ts(&p->st.st_mtim);
	p->st.st_ctim = p->st.st_mtim;
	return 0;
}

/* Take the entry at *d out of its hash chain and out of its directory's list. */
static void dent_unlink(struct dent **d)
{
	struct dent *x = *d;
	*d = x->next;
	*x->dprev = x->dnext;
	if (x->dnext)
		x->dnext->dprev = x->dprev;
	nodes[x->parent]->children--;
}

/* Unlink *d: the entry goes, its inode loses a link. */
static void dent_drop(struct dent **d)
{
	struct dent *x = *d;
	struct node *n = nodes[x->ino], *p = nodes[x->parent];
	dent_unlink(d);
	now_ts(&p->st.st_mtim);
	p->st.st_ctim = p->st.st_mtim;
	if (S_ISDIR(n->st.st_mode)) {
		n->st.st_nlink = 0;
		p->st.st_nlink--;
	} else if (n->st.st_nlink) {
		n->st.st_nlink--;
	}
	now_ts(&n->st.st_ctim);
	free(x->name);
	free(x);
}

static void reply_entry(fuse_req_t req, fuse_ino_t ino)
{
	struct fuse_entry_param p = {.ino = ino, .generation = 1, .attr = nodes[ino]->st};
	p.attr_timeout = p.entry_timeout = TIMEOUT;
	pthread_mutex_unlock(&mu);
	fuse_reply_entry(req, &p);
}

static void reply_err(fuse_req_t req, int err)
{
	pthread_mutex_unlock(&mu);
	fuse_reply_err(req, err);
}

/* Take the lock and find ino's node; NULL, unlocked and answered ENOENT, if it has none. */
static struct node *node_lock(fuse_req_t req, fuse_ino_t ino)
{
	pthread_mutex_lock(&mu);
	struct node *n = node_get(ino);
	if (!n)
		reply_err(req, ENOENT);
	return n;
}

static void fl_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)cairn_fuse_conn_want(conn);
}

static void fl_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	pthread_mutex_lock(&mu);
	struct dent *d = *dent_find(parent, name);
	if (d) {
		reply_entry(req, d->ino);
		return;
	}
	pthread_mutex_unlock(&mu);
	struct fuse_entry_param p = {.ino = 0, .entry_timeout = TIMEOUT}; /* as cairn's */
	fuse_reply_entry(req, &p);
}

static void fl_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	fuse_reply_none(req);
}

static void fl_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct node *n = node_lock(req, ino);
	if (!n)
		return;
	struct stat st = n->st;
	pthread_mutex_unlock(&mu);
	fuse_reply_attr(req, &st, TIMEOUT);
}

static void fl_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *a, int to_set,
		       struct fuse_file_info *fi)
{
	struct node *n = node_lock(req, ino);
	if (!n)
		return;
	struct timespec now;
	now_ts(&now);
	if (to_set & FUSE_SET_ATTR_MODE)
		n->st.st_mode = (n->st.st_mode & S_IFMT) | (a->st_mode & 07777);
	if (to_set & FUSE_SET_ATTR_UID)
		n->st.st_uid = a->st_uid;
	if (to_set & FUSE_SET_ATTR_GID)
		n->st.st_gid = a->st_gid;
	if (to_set & FUSE_SET_ATTR_SIZE)
		n->st.st_size = a->st_size;
	if (to_set & FUSE_SET_ATTR_ATIME)
		n->st.st_atim = (to_set & FUSE_SET_ATTR_ATIME_NOW) ? now : a->st_atim;
	if (to_set & FUSE_SET_ATTR_MTIME)
		n->st.st_mtim = (to_set & FUSE_SET_ATTR_MTIME_NOW) ? now : a->st_mtim;
	n->st.st_ctim = (to_set & FUSE_SET_ATTR_CTIME) ? a->st_ctim : now;
	struct stat st = n->st;
	pthread_mutex_unlock(&mu);
	fuse_reply_attr(req, &st, TIMEOUT);
}

static void fl_readlink(fuse_req_t req, fuse_ino_t ino)
{
	pthread_mutex_lock(&mu);
	struct node *n = node_get(ino);
	if (!n || !n->target) {
		reply_err(req, n ? EINVAL : ENOENT);
		return;
	}
	const char *t = n->target; /* never freed while mounted */
	pthread_mutex_unlock(&mu);
	fuse_reply_readlink(req, t);
}

/* A new inode named name in parent, returned with mu held; 0 when the error reply is
 * already sent. */
static fuse_ino_t make(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	pthread_mutex_lock(&mu);
	struct node *p = node_get(parent);
	if (!p || !S_ISDIR(p->st.st_mode)) {
		reply_err(req, p ? ENOTDIR : ENOENT);
		return 0;
	}
	if (*dent_find(parent, name)) {
		reply_err(req, EEXIST);
		return 0;
	}
	fuse_ino_t ino = node_new(S_ISLNK(mode) ? mode : (mode & ~ctx->umask), rdev, ctx);
	if (!ino || dent_add(parent, name, ino) < 0) {
		reply_err(req, ENOMEM);
		return 0;
	}
	if (S_ISDIR(mode))
		p->st.st_nlink++;
	return ino; /* mu still held */
}

static void fl_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	fuse_ino_t ino = make(req, parent, name, mode, rdev);
	if (ino)
		reply_entry(req, ino);
}

static void fl_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	fl_mknod(req, parent, name, S_IFDIR | (mode & 07777), 0);
}

static void fl_symlink(fuse_req_t req, const char *target, fuse_ino_t parent, const char *name)
{
	char *t = strdup(target);
	fuse_ino_t ino = t ? make(req, parent, name, S_IFLNK | 0777, 0) : 0;
	if (!t) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (!ino) {
		free(t);
		return;
	}
	nodes[ino]->target = t;
	nodes[ino]->st.st_size = (off_t)strlen(t);
	reply_entry(req, ino);
}

static void fl_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t parent, const char *name)
{
	pthread_mutex_lock(&mu);
	struct node *n = node_get(ino);
	if (!n || !node_get(parent) || *dent_find(parent, name)) {
		reply_err(req, n ? EEXIST : ENOENT);
		return;
	}
	if (dent_add(parent, name, ino) < 0) {
		reply_err(req, ENOMEM);
		return;
	}
	n->st.st_nlink++;
	now_ts(&n->st.st_ctim);
	reply_entry(req, ino);
}

/* Take the lock and find the entry name in parent; NULL, unlocked and answered ENOENT, if
 * there is none. */
static struct dent **dent_lock(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	pthread_mutex_lock(&mu);
	struct dent **d = dent_find(parent, name);
	if (*d)
		return d;
	reply_err(req, ENOENT);
	return NULL;
}

static void fl_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct dent **d = dent_lock(req, parent, name);
	if (!d)
		return;
	dent_drop(d);
	reply_err(req, 0);
}

static void fl_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct dent **d = dent_lock(req, parent, name);
	if (!d)
		return;
	struct node *n = nodes[(*d)->ino];
	if (!S_ISDIR(n->st.st_mode) || n->children) {
		reply_err(req, S_ISDIR(n->st.st_mode) ? ENOTEMPTY : ENOTDIR);
		return;
	}
	dent_drop(d);
	reply_err(req, 0);
}

static void fl_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	if (flags & ~RENAME_NOREPLACE) {
		fuse_reply_err(req, EINVAL); /* no RENAME_EXCHANGE or WHITEOUT */
		return;
	}
	pthread_mutex_lock(&mu);
	struct dent **from = dent_find(parent, name);
	if (!*from || !node_get(newparent)) {
		reply_err(req, ENOENT);
		return;
	}
	struct dent **to = dent_find(newparent, newname);
	if (*to == *from) {
		reply_err(req, 0);
		return;
	}
	if (*to) {
		struct node *t = nodes[(*to)->ino];
		if (flags & RENAME_NOREPLACE) {
			reply_err(req, EEXIST);
			return;
		}
		if (S_ISDIR(t->st.st_mode) && t->children) {
			reply_err(req, ENOTEMPTY);
			return;
		}
		dent_drop(to);
		from = dent_find(parent, name); /* the drop may have moved it in its chain */
	}
	fuse_ino_t ino = (*from)->ino;
	bool dir = S_ISDIR(nodes[ino]->st.st_mode);
	struct dent *x = *from;
	dent_unlink(from);
	if (dir)
		nodes[parent]->st.st_nlink--;
	free(x->name);
	free(x);
	if (dent_add(newparent, newname, ino) < 0) {
		reply_err(req, ENOMEM); /* the name is lost: a benchmark's file system */
		return;
	}
	if (dir)
		nodes[newparent]->st.st_nlink++;
	now_ts(&nodes[ino]->st.st_ctim);
	reply_err(req, 0);
}

static void fl_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fi->keep_cache = 1; /* as op_open */
	fuse_reply_open(req, fi);
}

static void fl_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	fuse_ino_t ino = make(req, parent, name, S_IFREG | (mode & 07777), 0);
	if (!ino)
		return;
	struct fuse_entry_param p = {.ino = ino, .generation = 1, .attr = nodes[ino]->st};
	p.attr_timeout = p.entry_timeout = TIMEOUT;
	pthread_mutex_unlock(&mu);
	fi->keep_cache = 1;
	fuse_reply_create(req, &p, fi);
}

static void fl_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0);
}

static void fl_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	static const char zeros[1 << 20];
	pthread_mutex_lock(&mu);
	struct node *n = node_get(ino);
	off_t end = n ? n->st.st_size : 0;
	pthread_mutex_unlock(&mu);
	size_t len = off >= end ? 0 : (size_t)(end - off) < size ? (size_t)(end - off) : size;
	fuse_reply_buf(req, zeros, len < sizeof(zeros) ? len : sizeof(zeros));
}

static void fl_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct node *n = node_lock(req, ino);
	if (!n)
		return;
	if (off + (off_t)size > n->st.st_size)
		n->st.st_size = off + (off_t)size;
	pthread_mutex_unlock(&mu);
	fuse_reply_write(req, size);
}

static void fl_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0);
}

static void fl_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, ENOSYS); /* the kernel opens directories (as op_opendir) */
}

static void fl_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	char *buf = malloc(size);
	size_t used = 0;
	off_t k = 0;
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	pthread_mutex_lock(&mu);
	struct node *dir = node_get(ino);
	struct dent dots[2] = {{.dnext = &dots[1], .ino = ino, .name = "."},
			       {.dnext = dir ? dir->first : NULL, .ino = ino, .name = ".."}};
	for (struct dent *d = dir ? dots : NULL; d; d = d->dnext) {
		if (++k <= off)
			continue;
		struct stat st = {.st_ino = d->ino, .st_mode = nodes[d->ino]->st.st_mode};
		size_t n = fuse_add_direntry(req, buf + used, size - used, d->name, &st, k);
		if (n > size - used)
			break;
		used += n;
	}
	pthread_mutex_unlock(&mu);
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void fl_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs st = {.f_bsize = 4096, .f_frsize = 4096, .f_namemax = 255};
	st.f_blocks = st.f_bfree = st.f_bavail = 1ull << 32;
	st.f_files = st.f_ffree = st.f_favail = 1ull << 32;
	fuse_reply_statfs(req, &st);
}

static struct xattr **xattr_find(struct node *n, const char *name)
{
	struct xattr **x = &n->xattrs;
	while (*x && strcmp((*x)->name, name))
		x = &(*x)->next;
	return x;
}

static void fl_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	struct node *n = node_lock(req, ino);
	if (!n)
		return;
	struct xattr **x = xattr_find(n, name);
	if ((*x && (flags & XATTR_CREATE)) || (!*x && (flags & XATTR_REPLACE))) {
		reply_err(req, *x ? EEXIST : ENODATA);
		return;
	}
	char *v = malloc(size ? size : 1);
	if (v && !*x && (*x = calloc(1, sizeof(**x))) && !((*x)->name = strdup(name))) {
		free(*x);
		*x = NULL;
	}
	if (!v || !*x) {
		free(v);
		reply_err(req, ENOMEM);
		return;
	}
	memcpy(v, value, size);
	free((*x)->value);
	(*x)->value = v;
	(*x)->size = size;
	now_ts(&n->st.st_ctim);
	reply_err(req, 0);
}

/* Reply a value of n bytes: its size when size is 0, else the bytes if they fit. */
static void reply_sized(fuse_req_t req, const char *v, size_t n, size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, n);
	else if (n > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, v, n);
}

static void fl_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	pthread_mutex_lock(&mu);
	struct node *n = node_get(ino);
	struct xattr *x = n ? *xattr_find(n, name) : NULL;
	if (!x) {
		reply_err(req, n ? ENODATA : ENOENT);
		return;
	}
	char *v = malloc(x->size ? x->size : 1);
	size_t len = x->size;
	if (v)
		memcpy(v, x->value, len);
	pthread_mutex_unlock(&mu);
	if (v)
		reply_sized(req, v, len, size);
	else
		fuse_reply_err(req, ENOMEM);
	free(v);
}

static void fl_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	char buf[65536];
	size_t len = 0;
	struct node *n = node_lock(req, ino);
	if (!n)
		return;
	for (struct xattr *x = n->xattrs; x; x = x->next) {
		size_t l = strlen(x->name) + 1;
		if (len + l > sizeof(buf)) {
			reply_err(req, E2BIG);
			return;
		}
		memcpy(buf + len, x->name, l);
		len += l;
	}
	pthread_mutex_unlock(&mu);
	reply_sized(req, buf, len, size);
}

static void fl_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	pthread_mutex_lock(&mu);
	struct node *n = node_get(ino);
	struct xattr **x = n ? xattr_find(n, name) : NULL;
	if (!x || !*x) {
		reply_err(req, n ? ENODATA : ENOENT);
		return;
	}
	struct xattr *d = *x;
	*x = d->next;
	free(d->name);
	free(d->value);
	free(d);
	now_ts(&n->st.st_ctim);
	reply_err(req, 0);
}

static const struct fuse_lowlevel_ops floor_ops = {
	.init = fl_init,
	.lookup = fl_lookup,
	.forget = fl_forget,
	.getattr = fl_getattr,
	.setattr = fl_setattr,
	.readlink = fl_readlink,
	.mknod = fl_mknod,
	.mkdir = fl_mkdir,
	.symlink = fl_symlink,
	.link = fl_link,
	.unlink = fl_unlink,
	.rmdir = fl_rmdir,
	.rename = fl_rename,
	.open = fl_open,
	.create = fl_create,
	.read = fl_read,
	.write = fl_write,
	.release = fl_release,
	.fsync = fl_fsync,
	.opendir = fl_opendir,
	.readdir = fl_readdir,
	.statfs = fl_statfs,
	.setxattr = fl_setxattr,
	.getxattr = fl_getxattr,
	.listxattr = fl_listxattr,
	.removexattr = fl_removexattr,
};

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: fuse-floor MOUNTPOINT\n");
		return 2;
	}
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	if (fuse_opt_add_arg(&args, "fuse-floor") ||
	    fuse_opt_add_arg(&args, "-ofsname=fuse-floor,default_permissions") ||
	    !node_new(S_IFDIR | 0755, 0, NULL)) {
		fprintf(stderr, "fuse-floor: out of memory\n");
		return 1;
	}
	struct fuse_session *se = fuse_session_new(&args, &floor_ops, sizeof(floor_ops), NULL);
	if (!se) {
		fprintf(stderr, "fuse-floor: could not create the FUSE session\n");
		return 1;
	}
	int r = fs_serve_session(se, argv[1], "fuse-floor", false);
	fuse_session_destroy(se);
	fuse_opt_free_args(&args);
	return r < 0 ? 1 : 0;
}
