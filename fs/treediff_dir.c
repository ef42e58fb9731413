/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The treediff source over directories of a file system (treediff.h): a snapshot seen
 * through a cairn mount, where the hidden attribute user.cairn.id of every node is its
 * subtree id (directories) or its tree_entry_digest (everything else), or any directory
 * without those ids. Paths are built whole from the top; symlinks are never followed.
 */
#include "treediff.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#define ID_HEX_LEN (2 * BLOB_ID_SIZE)
#define READ_CHUNK (128u * 1024)

static int full_path(const struct treediff_dir_source *ds, const char *path, char **ret)
{
	int n = *path ? asprintf(ret, "%s/%s", ds->top_path, path)
		      : asprintf(ret, "%s", ds->top_path);
	return n < 0 ? -ENOMEM : 0;
}

/*
 * Read user.cairn.id of path into out. Returns 1 when present and well formed, 0 when the
 * node has none (not a cairn snapshot, an older daemon, or a value we do not understand),
 * -errno otherwise.
 */
static int read_id(const char *path, uint8_t out[BLOB_ID_SIZE])
{
	char hex[ID_HEX_LEN + 1];
	ssize_t n = lgetxattr(path, TREEDIFF_ID_XATTR, hex, ID_HEX_LEN);
	if (n < 0) {
		int e = errno;
		if (e == ENODATA || e == ENOTSUP || e == ERANGE)
			return 0;
		return -e;
	}
	if (n != ID_HEX_LEN)
		return 0;
	hex[n] = 0;
	return hex_decode(hex, out, BLOB_ID_SIZE) < 0 ? 0 : 1;
}

static void from_stat(struct treediff_entry *e, const struct stat *st)
{
	e->mode = st->st_mode;
	e->uid = st->st_uid;
	e->gid = st->st_gid;
	e->size = (uint64_t)st->st_size;
	e->rdev = st->st_rdev;
	e->mtime = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

/* Stat path and read its id into e (everything but the name). -ENOENT when it is gone. */
static int load_entry(const char *path, struct treediff_entry *e)
{
	struct stat st;
	uint8_t id[BLOB_ID_SIZE];
	if (lstat(path, &st) < 0)
		return -errno;
	from_stat(e, &st);
	int r = read_id(path, id);
	if (r <= 0)
		return r;
	if (S_ISDIR(st.st_mode)) {
		e->has_subtree = true;
		memcpy(e->subtree.b, id, BLOB_ID_SIZE);
	} else {
		e->has_digest = true;
		memcpy(e->digest, id, TREEDIFF_DIGEST_SIZE);
	}
	return 0;
}

static int entry_cmp(const void *a, const void *b)
{
	/* strcmp compares as unsigned char: the bytewise order of the tree format. */
	return strcmp(((const struct treediff_entry *)a)->name,
		      ((const struct treediff_entry *)b)->name);
}

static void dir_list_release(struct treediff_source *src, struct treediff_list *l)
{
	for (size_t k = 0; k < l->n; k++)
		free(l->v[k].name);
	free(l->v);
	*l = (struct treediff_list){0};
}

static int dir_list(struct treediff_source *src, const char *path, const struct treediff_entry *dir,
		    struct treediff_list *ret)
{
	struct treediff_dir_source *ds = (struct treediff_dir_source *)src;
	_cleanup_free_ char *full = NULL;
	struct treediff_list l = {0};
	size_t cap = 0;
	int r = full_path(ds, path, &full);
	if (r < 0)
		return r;

	DIR *d = opendir(full);
	if (!d)
		return log_error_errno(-errno, "%s: %s", full, strerror(errno));
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (!de) {
			r = -errno;
			if (r < 0)
				log_error("%s: reading the directory: %s", full, strerror(-r));
			break;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (l.n == cap) {
			size_t c = cap ? 2 * cap : 32;
			struct treediff_entry *v = reallocarray(l.v, c, sizeof(*v));
			if (!v) {
				r = -ENOMEM;
				break;
			}
			l.v = v;
			cap = c;
		}
		l.v[l.n] = (struct treediff_entry){.name = strdup(de->d_name)};
		if (!l.v[l.n].name) {
			r = -ENOMEM;
			break;
		}
		l.n++;
	}
	closedir(d);
	if (r < 0) {
		dir_list_release(src, &l);
		return r;
	}
	qsort(l.v, l.n, sizeof(*l.v), entry_cmp);

	/* Stat after the listing is closed: one directory handle open at a time. */
	for (size_t k = 0; r >= 0 && k < l.n; k++) {
		_cleanup_free_ char *p = NULL;
		if (asprintf(&p, "%s/%s", full, l.v[k].name) < 0) {
			r = -ENOMEM;
			break;
		}
		r = load_entry(p, &l.v[k]);
		if (r == -ENOENT) {
			/* Gone since readdir (only outside a snapshot, which never changes). */
			free(l.v[k].name);
			l.v[k].name = NULL;
			r = 0;
		} else if (r < 0)
			log_error("%s: %s", p, strerror(-r));
	}
	if (r < 0) {
		dir_list_release(src, &l);
		return r;
	}
	size_t kept = 0;
	for (size_t k = 0; k < l.n; k++)
		if (l.v[k].name)
			l.v[kept++] = l.v[k];
	l.n = kept;
	*ret = l;
	return 0;
}

/* The names of path's xattrs (listxattr format) into ret; 0 when none or unsupported. */
static int list_xattrs(const char *path, struct buf *ret)
{
	for (;;) {
		ssize_t n = llistxattr(path, NULL, 0);
		if (n < 0 && (errno == ENOTSUP || errno == ENODATA))
			return 0;
		if (n < 0)
			return log_error_errno(-errno, "%s: listing xattrs: %s", path,
					       strerror(errno));
		if (n == 0)
			return 0;
		buf_reset(ret);
		int r = buf_reserve(ret, (size_t)n);
		if (r < 0)
			return r;
		n = llistxattr(path, (char *)ret->data, (size_t)n);
		if (n < 0 && errno == ERANGE)
			continue; /* grew meanwhile */
		if (n < 0)
			return log_error_errno(-errno, "%s: listing xattrs: %s", path,
					       strerror(errno));
		ret->len = (size_t)n;
		return 0;
	}
}

static int get_xattr(const char *path, const char *name, struct buf *ret)
{
	for (;;) {
		ssize_t n = lgetxattr(path, name, NULL, 0);
		if (n < 0)
			return -errno;
		buf_reset(ret);
		int r = buf_reserve(ret, (size_t)n + 1);
		if (r < 0)
			return r;
		n = lgetxattr(path, name, ret->data, (size_t)n);
		if (n < 0 && errno == ERANGE)
			continue;
		if (n < 0)
			return -errno;
		ret->len = (size_t)n;
		return 0;
	}
}

static int name_sort(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names of a listxattr buffer, sorted, pointing into it (malloc'd array). */
static int sorted_names(const struct buf *names, char ***ret, size_t *ret_n)
{
	size_t n = 0, k = 0;
	for (size_t i = 0; i < names->len; i++)
		n += names->data[i] == 0;
	char **v = calloc(n ? n : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t off = 0; off < names->len && k < n;) {
		v[k] = (char *)names->data + off;
		off += strlen(v[k]) + 1;
		/* Our own id is not an attribute of the file (the daemon hides it anyway). */
		if (strcmp(v[k], TREEDIFF_ID_XATTR))
			k++;
	}
	qsort(v, k, sizeof(*v), name_sort);
	*ret = v;
	*ret_n = k;
	return 0;
}

/* >0 when the xattrs of pa and pb differ (names or values), 0 when equal, <0 on error. */
static int xattrs_differ(const char *pa, const char *pb)
{
	_cleanup_buf_ struct buf na = {0}, nb = {0}, va = {0}, vb = {0};
	_cleanup_free_ char **sa = NULL;
	_cleanup_free_ char **sb = NULL;
	size_t ka, kb;
	int r;

	if ((r = list_xattrs(pa, &na)) < 0 || (r = list_xattrs(pb, &nb)) < 0 ||
	    (r = sorted_names(&na, &sa, &ka)) < 0 || (r = sorted_names(&nb, &sb, &kb)) < 0)
		return r;
	if (ka != kb)
		return 1;
	for (size_t k = 0; k < ka; k++) {
		if (strcmp(sa[k], sb[k]))
			return 1;
		int ra = get_xattr(pa, sa[k], &va), rb = get_xattr(pb, sb[k], &vb);
		/* One gone since the listing: a difference, not an error. */
		if (ra == -ENODATA || rb == -ENODATA) {
			if (ra != rb)
				return 1;
			continue;
		}
		if (ra < 0 || rb < 0) {
			r = ra < 0 ? ra : rb;
			return log_error_errno(r, "%s: reading xattr %s: %s", ra < 0 ? pa : pb,
					       sa[k], strerror(-r));
		}
		if (va.len != vb.len || (va.len && memcmp(va.data, vb.data, va.len)))
			return 1;
	}
	return 0;
}

static int read_full(int fd, uint8_t *p, size_t len, size_t *ret)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = read(fd, p + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	*ret = got;
	return 0;
}

/* >0 when the bytes of two regular files differ, 0 when equal, <0 on error (logged). */
static int bytes_differ(const char *pa, const char *pb)
{
	_cleanup_close_ int fa = open(pa, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fa < 0)
		return log_error_errno(-errno, "%s: %s", pa, strerror(errno));
	_cleanup_close_ int fb = open(pb, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fb < 0)
		return log_error_errno(-errno, "%s: %s", pb, strerror(errno));
	_cleanup_free_ uint8_t *ba = malloc(READ_CHUNK);
	_cleanup_free_ uint8_t *bb = malloc(READ_CHUNK);
	if (!ba || !bb)
		return -ENOMEM;
	for (;;) {
		size_t na, nb;
		int r = read_full(fa, ba, READ_CHUNK, &na);
		if (r < 0)
			return log_error_errno(r, "%s: %s", pa, strerror(-r));
		if ((r = read_full(fb, bb, READ_CHUNK, &nb)) < 0)
			return log_error_errno(r, "%s: %s", pb, strerror(-r));
		if (na != nb || memcmp(ba, bb, na))
			return 1;
		if (na < READ_CHUNK)
			return 0;
	}
}

static int link_differs(const char *pa, const char *pb)
{
	char ta[TREE_TARGET_MAX + 1], tb[TREE_TARGET_MAX + 1];
	ssize_t na = readlink(pa, ta, sizeof(ta));
	if (na < 0)
		return log_error_errno(-errno, "%s: %s", pa, strerror(errno));
	ssize_t nb = readlink(pb, tb, sizeof(tb));
	if (nb < 0)
		return log_error_errno(-errno, "%s: %s", pb, strerror(errno));
	return na != nb || memcmp(ta, tb, (size_t)na);
}

static int dir_compare(struct treediff_source *a, const struct treediff_entry *ea,
		       struct treediff_source *b, const struct treediff_entry *eb, const char *path,
		       bool digests_differ, unsigned *ret)
{
	_cleanup_free_ char *pa = NULL;
	_cleanup_free_ char *pb = NULL;
	unsigned what = 0;
	int r;

	if ((r = full_path((struct treediff_dir_source *)a, path, &pa)) < 0 ||
	    (r = full_path((struct treediff_dir_source *)b, path, &pb)) < 0)
		return r;
	if ((r = xattrs_differ(pa, pb)) < 0)
		return r;
	if (r > 0)
		what |= TREEDIFF_DIFF_XATTRS;

	if (S_ISDIR(ea->mode)) {
		*ret = what;
		return 0;
	}
	/* The digests cover content and xattrs: with equal xattrs, the content differs. */
	if (digests_differ && !(what & TREEDIFF_DIFF_XATTRS)) {
		*ret = what | TREEDIFF_DIFF_CONTENT;
		return 0;
	}
	r = 0;
	switch (ea->mode & S_IFMT) {
	case S_IFREG:
		r = ea->size != eb->size ? 1 : bytes_differ(pa, pb);
		break;
	case S_IFLNK:
		r = link_differs(pa, pb);
		break;
	case S_IFCHR:
	case S_IFBLK:
		r = ea->rdev != eb->rdev;
		break;
	}
	if (r < 0)
		return r;
	if (r > 0)
		what |= TREEDIFF_DIFF_CONTENT;
	*ret = what;
	return 0;
}

static const struct treediff_source_ops dir_ops = {
	.name = "directory",
	.list = dir_list,
	.list_release = dir_list_release,
	.compare = dir_compare,
};

int treediff_dir_source_init(struct treediff_dir_source *src, const char *top_path)
{
	*src = (struct treediff_dir_source){.base.ops = &dir_ops};
	src->top_path = strdup(top_path);
	if (!src->top_path)
		return -ENOMEM;
	int r = load_entry(top_path, &src->base.top);
	if (r < 0) {
		treediff_dir_source_release(src);
		return log_error_errno(r, "%s: %s", top_path, strerror(-r));
	}
	if (!S_ISDIR(src->base.top.mode)) {
		treediff_dir_source_release(src);
		return log_error_errno(-ENOTDIR, "%s: not a directory", top_path);
	}
	return 0;
}

void treediff_dir_source_release(struct treediff_dir_source *src)
{
	free(src->top_path);
	src->top_path = NULL;
}
