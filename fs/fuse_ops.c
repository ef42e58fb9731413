/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The FUSE low-level handlers: each decodes a request, calls fsops (fs/fsops.h), and sends
 * exactly one reply. The only place besides main.c that knows libfuse, and the place where
 * the sign of an error flips.
 */
#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/xattr.h>

#include "fs_internal.h"
#include "fuse_ops.h"

/* Everything in current/ changes only through this mount, so the kernel may cache long. */
#define ENTRY_TIMEOUT 60.0
#define ATTR_TIMEOUT 60.0

/* The kernel opens and releases directories itself (FUSE_CAP_NO_OPENDIR_SUPPORT): set once
 * by op_init, before any other request. */
static atomic_bool kernel_opendir;
static struct fuse_session *session;

void cairn_fuse_ops_set_session(struct fuse_session *se)
{
	session = se;
}

static struct fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* A snapshot's name in the mount root changes meaning with a rotation: the kernel keeps
 * it only briefly (fsops.h: the root's names, and how the tools wait that out). */
static double entry_timeout(fuse_ino_t parent)
{
	return parent == FSOPS_ROOT ? FSOPS_ROOT_NAME_TIMEOUT : ENTRY_TIMEOUT;
}

static void reply_entry_in(fuse_req_t req, fuse_ino_t parent, int r, const struct fs_entry *e)
{
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	struct fuse_entry_param p = {
		.ino = e->node,
		.generation = 1,
		.attr = e->attr,
		.attr_timeout = ATTR_TIMEOUT,
		.entry_timeout = e->node == FSOPS_CURRENT ? ENTRY_TIMEOUT : entry_timeout(parent)};
	fuse_reply_entry(req, &p);
}

static void reply_entry(fuse_req_t req, int r, const struct fs_entry *e)
{
	reply_entry_in(req, 0, r, e);
}

unsigned cairn_fuse_conn_want(struct fuse_conn_info *conn)
{
	unsigned got = 0;
	/* Let the kernel merge small writes into large ones; rsync writes 32-256 KiB. */
	if (conn->capable & FUSE_CAP_WRITEBACK_CACHE) {
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
		got |= CAIRN_FUSE_WRITEBACK;
	}
	/* ACLs are xattrs we store; the kernel enforces them (needs default_permissions). */
	if (conn->capable & FUSE_CAP_POSIX_ACL)
		conn->want |= FUSE_CAP_POSIX_ACL;
	/* The umask arrives with each create and is applied by us, because a directory's
	 * default ACL replaces it (fsops_mknod). */
	if (conn->capable & FUSE_CAP_DONT_MASK)
		conn->want |= FUSE_CAP_DONT_MASK;
	/* Each request is a round trip between two processes, often two CPUs (~20-100 us
	 * here); a tar or rsync of small files spends most of its time in them. So: */
	/* readdirplus for every batch of a directory, not only the first ("auto"), so that the
	 * names of a large directory come with their attributes too, and the lookup (rsync,
	 * tar) or lookup + getattr (rsync's lstat) of each does not follow; */
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	/* symlink targets in the page cache: a symlink never changes (a new target is a new
	 * inode), so readlink need not ask again; */
	if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	/* no opendir/releasedir: readdir checks the directory itself (fsops_readdir). The
	 * kernel then caches listings, valid until a change of the directory through the
	 * kernel: right for current/ and the snapshots, whose directories change only that
	 * way or never; the root's listing is dropped by op_setxattr. */
	/* No flush on close: there is no .flush handler, so the kernel stops sending them after
	 * the first ENOSYS, and still writes back its dirty pages before close returns. */
	if (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT)
		got |= CAIRN_FUSE_KERNEL_OPENDIR;
	/* O_TRUNC must reach us as a setattr, so truncation has one code path. */
	conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
	conn->max_write = 1u << 20;
	conn->max_readahead = 1u << 20;
	return got;
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	unsigned got = cairn_fuse_conn_want(conn);
	if (got & CAIRN_FUSE_WRITEBACK)
		fs_set_kernel_times(userdata, true);
	if (got & CAIRN_FUSE_KERNEL_OPENDIR)
		atomic_store(&kernel_opendir, true);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_entry e;
	if (parent == FSOPS_ROOT) {
		/* From reading the snapshot list to replying (fsops_root_names_begin). */
		struct fs *fs = fs_of(req);
		fsops_root_names_begin(fs);
		int r = fsops_lookup(fs, parent, name, &e);
		reply_entry_in(req, parent, r, &e); /* no name is kept negative here */
		fsops_root_names_end(fs);
		return;
	}
	int r = fsops_lookup(fs_of(req), parent, name, &e);
	if (r == -ENOENT) {
		/* A negative entry the kernel may cache as long as a positive one: below the
		 * root, names appear only through this mount (current/) or never (a snapshot's
		 * directories), and a create through the kernel replaces the cached absence.
		 * rsync asks for a new name twice (the generator's lstat, the receiver's look
		 * for a basis file), often seconds apart; an O_EXCL create or a rename's
		 * target is looked up again whatever is cached. */
		struct fuse_entry_param p = {.ino = 0, .entry_timeout = ENTRY_TIMEOUT};
		fuse_reply_entry(req, &p);
		return;
	}
	reply_entry_in(req, parent, r, &e);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	fsops_forget(fs_of(req), ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		fsops_forget(fs_of(req), forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;
	int r = fsops_getattr(fs_of(req), ino, &st);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &st, ATTR_TIMEOUT);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct stat st;
	int bits = 0;
	/* Translate explicitly: fsops does not depend on libfuse's numbering. */
	static const struct {
		int fuse, ours;
	} map[] = {
		{FUSE_SET_ATTR_MODE, FSOPS_SET_MODE},
		{FUSE_SET_ATTR_UID, FSOPS_SET_UID},
		{FUSE_SET_ATTR_GID, FSOPS_SET_GID},
		{FUSE_SET_ATTR_SIZE, FSOPS_SET_SIZE},
		{FUSE_SET_ATTR_ATIME, FSOPS_SET_ATIME},
		{FUSE_SET_ATTR_MTIME, FSOPS_SET_MTIME},
		{FUSE_SET_ATTR_ATIME_NOW, FSOPS_SET_ATIME_NOW},
		{FUSE_SET_ATTR_MTIME_NOW, FSOPS_SET_MTIME_NOW},
		{FUSE_SET_ATTR_CTIME, FSOPS_SET_CTIME},
	};
	for (size_t i = 0; i < ELEMENTSOF(map); i++)
		if (to_set & map[i].fuse)
			bits |= map[i].ours;
	int r = fsops_setattr(fs_of(req), ino, attr, bits, &st);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &st, ATTR_TIMEOUT);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	_cleanup_free_ char *target = NULL;
	int r = fsops_readlink(fs_of(req), ino, &target);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_readlink(req, target);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct fs_entry e;
	int r = fsops_mknod(fs_of(req), parent, name, mode, rdev, ctx->uid, ctx->gid, ctx->umask,
			    &e);
	reply_entry(req, r, &e);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct fs_entry e;
	int r = fsops_mkdir(fs_of(req), parent, name, mode, ctx->uid, ctx->gid, ctx->umask, &e);
	reply_entry(req, r, &e);
}

static void op_symlink(fuse_req_t req, const char *target, fuse_ino_t parent, const char *name)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct fs_entry e;
	int r = fsops_symlink(fs_of(req), parent, name, target, ctx->uid, ctx->gid, &e);
	reply_entry(req, r, &e);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t parent, const char *name)
{
	struct fs_entry e;
	int r = fsops_link(fs_of(req), ino, parent, name, &e);
	reply_entry(req, r, &e);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, -fsops_unlink(fs_of(req), parent, name));
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, -fsops_rmdir(fs_of(req), parent, name));
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	fuse_reply_err(req, -fsops_rename(fs_of(req), parent, name, newparent, newname, flags));
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	int r = fsops_open(fs_of(req), ino, fi->flags);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	/* Keep the page cache across opens: only this mount changes the data. */
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct fs_entry e;
	int r = fsops_create(fs_of(req), parent, name, mode, ctx->uid, ctx->gid, ctx->umask,
			     fi->flags, &e);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	struct fuse_entry_param p = {.ino = e.node,
				     .generation = 1,
				     .attr = e.attr,
				     .attr_timeout = ATTR_TIMEOUT,
				     .entry_timeout = ENTRY_TIMEOUT};
	fi->keep_cache = 1;
	fuse_reply_create(req, &p, fi);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, -fsops_release(fs_of(req), ino));
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	_cleanup_free_ char *buf = malloc(size ? size : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	ssize_t n = fsops_read(fs_of(req), ino, buf, size, (uint64_t)off);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	ssize_t n = fsops_write(fs_of(req), ino, buf, size, (uint64_t)off);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	int r = fsops_fsync(fs_of(req), ino, datasync);
	if (r >= 0)
		r = fs_sync(fs_of(req));
	fuse_reply_err(req, -r);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (atomic_load(&kernel_opendir)) {
		fuse_reply_err(req, ENOSYS); /* "open them yourself from now on" */
		return;
	}
	struct stat st;
	int r = fsops_getattr(fs_of(req), ino, &st);
	if (r >= 0 && !S_ISDIR(st.st_mode))
		r = -ENOTDIR;
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_open(req, fi);
}

struct dirbuf {
	fuse_req_t req;
	fuse_ino_t dir;
	char *buf;
	size_t size, used;
	bool plus;
};

static int add_entry(uint64_t cookie, const char *name, const struct fs_entry *e, void *ud)
{
	struct dirbuf *d = ud;
	size_t left = d->size - d->used, n;
	bool dot = !strcmp(name, ".") || !strcmp(name, "..");
	if (d->plus) {
		struct fuse_entry_param p = {.ino = e->node,
					     .generation = 1,
					     .attr = e->attr,
					     .attr_timeout = ATTR_TIMEOUT,
					     .entry_timeout = e->node == FSOPS_CURRENT
								      ? ENTRY_TIMEOUT
								      : entry_timeout(d->dir)};
		n = fuse_add_direntry_plus(d->req, d->buf + d->used, left, name, &p, (off_t)cookie);
	} else
		n = fuse_add_direntry(d->req, d->buf + d->used, left, name, &e->attr,
				      (off_t)cookie);
	if (n > left)
		return 1; /* full: the kernel asks again from this cookie */
	d->used += n;
	/* readdirplus hands the kernel a reference, as a lookup would. */
	if (d->plus && !dot)
		fsops_ref(fuse_req_userdata(d->req), e->node);
	return 0;
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus)
{
	struct dirbuf d = {.req = req, .dir = ino, .size = size, .plus = plus};
	d.buf = malloc(size ? size : 1);
	if (!d.buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	struct fs *fs = fs_of(req); /* req is gone once replied to */
	if (ino == FSOPS_ROOT)
		fsops_root_names_begin(fs);
	int r = fsops_readdir(fs, ino, (uint64_t)off, add_entry, &d);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_buf(req, d.buf, d.used);
	if (ino == FSOPS_ROOT)
		fsops_root_names_end(fs);
	free(d.buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, true);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	fuse_reply_err(req, -fs_sync(fs_of(req)));
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs st;
	int r = fsops_statfs(fs_of(req), &st);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_statfs(req, &st);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	int r = fsops_setxattr(fs_of(req), ino, name, value, size, flags);
	/* The mount root's attributes are the snapshot commands (fsops_setxattr): the kernel
	 * caches the root's listing (no opendir, see op_init) and attributes, so it must drop
	 * them before the command returns; whatever the outcome, a commit may have landed.
	 * Safe here: it waits for no lock that this setxattr holds in the kernel. */
	if (ino == FUSE_ROOT_ID && session)
		fuse_lowlevel_notify_inval_inode(session, FUSE_ROOT_ID, 0, 0);
	fuse_reply_err(req, -r);
}

static void reply_sized(fuse_req_t req, ssize_t n, const char *buf, size_t size)
{
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	_cleanup_free_ char *buf = malloc(size ? size : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	reply_sized(req, fsops_getxattr(fs_of(req), ino, name, buf, size), buf, size);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	_cleanup_free_ char *buf = malloc(size ? size : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	reply_sized(req, fsops_listxattr(fs_of(req), ino, buf, size), buf, size);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	fuse_reply_err(req, -fsops_removexattr(fs_of(req), ino, name));
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
			 struct fuse_file_info *fi)
{
	fuse_reply_err(req,
		       -fsops_fallocate(fs_of(req), ino, mode, (uint64_t)offset, (uint64_t)length));
}

const struct fuse_lowlevel_ops cairn_fuse_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readlink = op_readlink,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.symlink = op_symlink,
	.link = op_link,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.rename = op_rename,
	.open = op_open,
	.create = op_create,
	.read = op_read,
	.write = op_write,
	.release = op_release,
	.fsync = op_fsync,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.fsyncdir = op_fsyncdir,
	.statfs = op_statfs,
	.setxattr = op_setxattr,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.removexattr = op_removexattr,
	.fallocate = op_fallocate,
};
