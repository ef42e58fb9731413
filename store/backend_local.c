/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The directory backend (backend_local_open in backend.h). A key is a path below the root
 * directory, its '/' segments being subdirectories that are made on demand. Every path is
 * resolved relative to a descriptor of the root, so the process's working directory does not
 * matter and a key can never name anything outside the root (the key rules exclude "..").
 *
 * A put never exposes a partial object: the bytes go to a temporary file in the target's
 * directory, are fsynced, and the file is then renamed onto the key (or, for an exclusive put,
 * hard-linked to it, which fails atomically with EEXIST), and the directory is fsynced so the
 * name itself is durable. Temporary names contain '~', which no key may contain, so they can
 * never collide with an object and list skips them without guessing. A temporary file is
 * removed on every failure path; only a crash can leave one behind.
 *
 * Objects are created read-only (0444): they are immutable by design, and only the root's
 * mode decides who may read the repository (it is created 0700, subdirectories 0755).
 */
#include "backend.h"

#include <assert.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>

#define LOCAL_KEY_MAX 1024

struct local_backend {
	struct backend base;
	int root_fd;
	unsigned tmp_seq; /* atomic: makes temporary names unique within a thread */
};

static const struct backend_type local_type;

static struct local_backend *to_local(struct backend *b)
{
	assert(b->type == &local_type);
	return (struct local_backend *)b;
}

/*
 * Map a system call's -errno onto the backend vocabulary of backend.h. Quota is a lack of
 * space and a read-only filesystem or EPERM a denial to the caller; anything else the caller
 * cannot act on is a permanent failure.
 */
static int local_errno(int r)
{
	switch (r) {
	case -ENOENT:
	case -EEXIST:
	case -ENOSPC:
	case -EACCES:
	case -ENOMEM:
		return r;
	case -EDQUOT:
		return -ENOSPC;
	case -EPERM:
	case -EROFS:
		return -EACCES;
	default:
		return -EIO;
	}
}

/* A key that is well formed may still not fit in a file name here (NAME_MAX bytes). */
static int local_check_key(struct local_backend *l, const char *key)
{
	const char *seg;

	if (!backend_key_valid(key))
		return log_error_errno(-EINVAL, "%s: invalid key \"%s\"", l->base.location,
				       key ? key : "(null)");
	for (seg = key;; seg++) {
		const char *end = strchrnul(seg, '/');
		if (end - seg > NAME_MAX)
			return log_error_errno(-EINVAL,
					       "%s: key %s: segment too long for a file name",
					       l->base.location, key);
		if (!*end)
			return 0;
		seg = end;
	}
}

/* Split key into its directory ("." for none, malloc'd) and its last segment (in key). */
static int key_split(const char *key, char **ret_dir, const char **ret_base)
{
	const char *slash = strrchr(key, '/');
	char *dir = slash ? strndup(key, (size_t)(slash - key)) : strdup(".");

	if (!dir)
		return -ENOMEM;
	*ret_dir = dir;
	*ret_base = slash ? slash + 1 : key;
	return 0;
}

/* fsync the directory that contains the relative path `path` (which must contain a '/' or be
 * a single segment). Returns 0 or -errno. */
static int fsync_parent(int root_fd, char *path)
{
	_cleanup_close_ int fd = -1;
	char *slash = strrchr(path, '/');

	if (slash)
		*slash = 0;
	fd = openat(root_fd, slash ? path : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (slash)
		*slash = '/';
	if (fd < 0)
		return -errno;
	return fsync_dir(fd);
}

/*
 * mkdir -p of dir below the root. Another thread or process may be making the same
 * directories, so EEXIST is success; if a file is in the way, the caller's openat() reports
 * ENOTDIR. Each directory made is fsynced into its parent, so that the objects put into it
 * cannot vanish with it after a crash. Returns 0 or -errno.
 */
static int local_mkdirs(struct local_backend *l, const char *dir)
{
	_cleanup_free_ char *p = strdup(dir);
	int r;

	if (!p)
		return -ENOMEM;
	for (char *s = p;; s++) {
		char *end = strchrnul(s, '/');
		bool last = !*end;

		*end = 0;
		if (mkdirat(l->root_fd, p, 0755) == 0) {
			r = fsync_parent(l->root_fd, p);
			if (r < 0)
				return r;
		} else if (errno != EEXIST) {
			return -errno;
		}
		if (last)
			return 0;
		*end = '/';
		s = end;
	}
}

/* Open a directory below the root; create: make it (and its parents) if missing. */
static int local_open_dir(struct local_backend *l, const char *dir, bool create, int *ret_fd)
{
	int fd = openat(l->root_fd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 && errno == ENOENT && create) {
		int r = local_mkdirs(l, dir);
		if (r < 0)
			return r;
		fd = openat(l->root_fd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (fd < 0)
		return -errno;
	*ret_fd = fd;
	return 0;
}

/*
 * Create a fresh temporary file in dfd. The pid keeps two processes on one repository apart,
 * the thread id and counter the threads of one; O_EXCL settles any leftover of a crashed
 * process that had the same pid, by trying the next name.
 */
static int tmp_create(struct local_backend *l, int dfd, char *name, size_t size, int *ret_fd)
{
	for (int tries = 0; tries < 16; tries++) {
		unsigned seq = __atomic_fetch_add(&l->tmp_seq, 1, __ATOMIC_RELAXED);
		int fd;

		snprintf(name, size, ".tmp~%d.%d.%u", (int)getpid(), (int)gettid(), seq);
		fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0444);
		if (fd >= 0) {
			*ret_fd = fd;
			return 0;
		}
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

static int write_all(int fd, const void *data, size_t len)
{
	const uint8_t *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int local_put(struct backend *b, const char *key, const void *data, size_t len,
		     unsigned flags)
{
	struct local_backend *l = to_local(b);
	_cleanup_free_ char *dir = NULL;
	_cleanup_close_ int dfd = -1, fd = -1;
	const char *base, *what;
	char tmp[64];
	int r;

	r = local_check_key(l, key);
	if (r < 0)
		return r;
	r = key_split(key, &dir, &base);
	if (r < 0)
		return log_error_errno(r, "%s: put %s: out of memory", b->location, key);

	what = "open directory";
	r = local_open_dir(l, dir, true, &dfd);
	if (r < 0)
		goto fail;
	what = "create temporary file";
	r = tmp_create(l, dfd, tmp, sizeof(tmp), &fd);
	if (r < 0)
		goto fail;

	what = "write";
	r = write_all(fd, data, len);
	if (r < 0)
		goto fail_unlink;
	what = "fsync";
	if (fsync(fd) < 0) {
		r = -errno;
		goto fail_unlink;
	}
	/* Written and synced, the object's pages are clean: drop them. A backup writes far
	 * more than it reads back, and pages kept here would crowd out the machine's own
	 * working set; on a virtual machine that hands freed memory back to its host, every
	 * new page also costs a fault in the host (about 3.5 s of system time per GiB here,
	 * against 0.3 s for pages reused), so reusing the same few pages is much cheaper. */
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	/* On some filesystems (NFS) close is where a write error finally shows. */
	what = "close";
	if (close(TAKE_FD(fd)) < 0) {
		r = -errno;
		goto fail_unlink;
	}

	if (flags & BACKEND_PUT_EXCLUSIVE) {
		/* link(2), unlike rename(2), refuses to replace: the existence check and the
		 * creation are one atomic step, also between processes. */
		if (linkat(dfd, tmp, dfd, base, 0) < 0) {
			r = -errno;
			if (r == -EEXIST) {
				(void)unlinkat(dfd, tmp, 0);
				return r;
			}
			what = "link";
			goto fail_unlink;
		}
		/* The object is in place; a temporary name left over is litter, not a failure. */
		if (unlinkat(dfd, tmp, 0) < 0)
			log_warning("%s: put %s: remove temporary file %s: %s", b->location, key,
				    tmp, strerror(errno));
	} else {
		what = "rename";
		if (renameat(dfd, tmp, dfd, base) < 0) {
			r = -errno;
			goto fail_unlink;
		}
	}

	/* The object is visible now but its name is durable only after this; the caller will
	 * see an error and may retry (an exclusive retry then answers -EEXIST). */
	what = "fsync directory";
	r = fsync_dir(dfd);
	if (r < 0)
		goto fail;
	return 0;

fail_unlink:
	(void)unlinkat(dfd, tmp, 0);
fail:
	return log_error_errno(local_errno(r), "%s: put %s: %s: %s", b->location, key, what,
			       strerror(-r));
}

static int local_get(struct backend *b, const char *key, uint64_t offset, uint64_t len,
		     struct buf *ret)
{
	struct local_backend *l = to_local(b);
	_cleanup_close_ int fd = -1;
	struct stat st;
	uint64_t n, size;
	size_t done = 0;
	int r;

	r = local_check_key(l, key);
	if (r < 0)
		return r;

	fd = openat(l->root_fd, key, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		/* ENOTDIR: a leading segment is an object, so there is no such key. */
		if (errno == ENOENT || errno == ENOTDIR)
			return -ENOENT;
		r = -errno;
		return log_error_errno(local_errno(r), "%s: get %s: open: %s", b->location, key,
				       strerror(-r));
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		return log_error_errno(local_errno(r), "%s: get %s: stat: %s", b->location, key,
				       strerror(-r));
	}
	/* A directory made for longer keys is not an object. */
	if (!S_ISREG(st.st_mode))
		return -ENOENT;

	size = (uint64_t)st.st_size;
	if (offset > size)
		return log_error_errno(-EINVAL,
				       "%s: get %s: offset %" PRIu64 " past the end (%" PRIu64 ")",
				       b->location, key, offset, size);
	n = MIN(len, size - offset);
	if (n > SIZE_MAX)
		return log_error_errno(-ENOMEM,
				       "%s: get %s: %" PRIu64 " bytes do not fit in memory",
				       b->location, key, n);
	r = buf_reserve(ret, (size_t)n);
	if (r < 0)
		return log_error_errno(r, "%s: get %s: out of memory", b->location, key);

	/* Read into the spare capacity and commit ret->len only once all of it is there, so a
	 * failed get leaves ret as it was. */
	while (done < n) {
		ssize_t k = pread(fd, ret->data + ret->len + done, (size_t)n - done,
				  (off_t)(offset + done));
		if (k < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			return log_error_errno(local_errno(r), "%s: get %s: read: %s", b->location,
					       key, strerror(-r));
		}
		/* Objects are never rewritten in place, so a short file is damage. */
		if (k == 0)
			return log_error_errno(-EIO, "%s: get %s: object shorter than its size",
					       b->location, key);
		done += (size_t)k;
	}
	ret->len += done;
	return 0;
}

static int local_head(struct backend *b, const char *key, uint64_t *ret_size)
{
	struct local_backend *l = to_local(b);
	struct stat st;
	int r;

	r = local_check_key(l, key);
	if (r < 0)
		return r;

	if (fstatat(l->root_fd, key, &st, 0) < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return -ENOENT;
		r = -errno;
		return log_error_errno(local_errno(r), "%s: head %s: %s", b->location, key,
				       strerror(-r));
	}
	if (!S_ISREG(st.st_mode))
		return -ENOENT;
	*ret_size = (uint64_t)st.st_size;
	return 0;
}

static int local_del(struct backend *b, const char *key)
{
	struct local_backend *l = to_local(b);
	_cleanup_free_ char *dir = NULL;
	_cleanup_close_ int dfd = -1;
	const char *base;
	int r;

	r = local_check_key(l, key);
	if (r < 0)
		return r;
	r = key_split(key, &dir, &base);
	if (r < 0)
		return log_error_errno(r, "%s: delete %s: out of memory", b->location, key);

	r = local_open_dir(l, dir, false, &dfd);
	if (r == -ENOENT || r == -ENOTDIR)
		return -ENOENT;
	if (r < 0)
		return log_error_errno(local_errno(r), "%s: delete %s: open directory: %s",
				       b->location, key, strerror(-r));

	if (unlinkat(dfd, base, 0) < 0) {
		/* EISDIR: a directory made for longer keys is not an object. */
		if (errno == ENOENT || errno == EISDIR)
			return -ENOENT;
		r = -errno;
		return log_error_errno(local_errno(r), "%s: delete %s: %s", b->location, key,
				       strerror(-r));
	}
	/* Empty directories are left in place: removing them would race with puts into them,
	 * and they cost next to nothing. */
	r = fsync_dir(dfd);
	if (r < 0)
		return log_error_errno(local_errno(r), "%s: delete %s: fsync directory: %s",
				       b->location, key, strerror(-r));
	return 0;
}

struct walk {
	struct local_backend *l;
	const char *prefix;
	size_t prefix_len;
	backend_list_fn fn;
	void *userdata;
	/* The key of the entry being looked at; holds a directory's path plus '/'. */
	char path[LOCAL_KEY_MAX + 2];
};

/* A directory entry that can be part of a key. Everything else (temporary files, whatever
 * else someone put there) is not an object. */
static bool name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return false;
	return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
	       n;
}

static void closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}

/* Could a key below the directory w->path[0..len) (which ends in '/') start with prefix? */
static bool walk_relevant(const struct walk *w, size_t len)
{
	return strncmp(w->path, w->prefix, MIN(len, w->prefix_len)) == 0;
}

/* Walk the directory dfd (taken over) whose keys start with w->path[0..len). */
static int walk_dir(struct walk *w, int dfd, size_t len)
{
	_cleanup_(closedirp) DIR *d = fdopendir(dfd);
	struct dirent *de;
	int r;

	if (!d) {
		r = -errno;
		close(dfd);
		goto fail;
	}
	for (;;) {
		struct stat st;
		size_t n;
		bool is_dir;

		errno = 0;
		de = readdir(d);
		if (!de) {
			if (errno == 0)
				return 0;
			r = -errno;
			goto fail;
		}
		n = strlen(de->d_name);
		if (!name_valid(de->d_name) || len + n + 1 > LOCAL_KEY_MAX + 1)
			continue;
		memcpy(w->path + len, de->d_name, n + 1);

		if (de->d_type == DT_DIR) {
			is_dir = true;
		} else if (de->d_type == DT_REG || de->d_type == DT_UNKNOWN) {
			/* Symlinks are not followed: nothing here makes them, and a loop would
			 * never end. */
			if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
				if (errno == ENOENT) /* deleted meanwhile */
					continue;
				r = -errno;
				goto fail;
			}
			if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
				continue;
			is_dir = S_ISDIR(st.st_mode);
		} else {
			continue;
		}

		if (is_dir) {
			int sub;

			if (len + n + 1 > LOCAL_KEY_MAX)
				continue;
			w->path[len + n] = '/';
			w->path[len + n + 1] = 0;
			if (!walk_relevant(w, len + n + 1))
				continue;
			sub = openat(dirfd(d), de->d_name,
				     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0) {
				if (errno == ENOENT)
					continue;
				r = -errno;
				goto fail;
			}
			r = walk_dir(w, sub, len + n + 1);
			if (r < 0)
				return r; /* already logged, or the callback's own value */
			continue;
		}

		if (len + n > LOCAL_KEY_MAX || strncmp(w->path, w->prefix, w->prefix_len) != 0)
			continue;
		r = w->fn(w->path, (uint64_t)st.st_size, w->userdata);
		if (r < 0)
			return r;
	}

fail:
	w->path[len] = 0;
	return log_error_errno(local_errno(r), "%s: list %s: read directory \"%s\": %s",
			       w->l->base.location, w->prefix, len ? w->path : ".", strerror(-r));
}

static int local_list(struct backend *b, const char *prefix, backend_list_fn fn, void *userdata)
{
	struct local_backend *l = to_local(b);
	_cleanup_free_ struct walk *w = NULL;
	_cleanup_free_ char *dir = NULL;
	const char *slash;
	size_t len;
	int dfd, r;

	if (!backend_prefix_valid(prefix))
		return log_error_errno(-EINVAL, "%s: list: invalid prefix \"%s\"", b->location,
				       prefix ? prefix : "(null)");

	/* Only the directory named by the prefix's complete segments can hold matches. */
	slash = strrchr(prefix, '/');
	len = slash ? (size_t)(slash - prefix) + 1 : 0;
	dir = slash ? strndup(prefix, len - 1) : strdup(".");
	w = calloc(1, sizeof(*w));
	if (!dir || !w)
		return log_error_errno(-ENOMEM, "%s: list %s: out of memory", b->location, prefix);

	r = local_open_dir(l, dir, false, &dfd);
	if (r == -ENOENT || r == -ENOTDIR)
		return 0;
	if (r < 0)
		return log_error_errno(local_errno(r), "%s: list %s: open directory: %s",
				       b->location, prefix, strerror(-r));

	*w = (struct walk){
		.l = l,
		.prefix = prefix,
		.prefix_len = strlen(prefix),
		.fn = fn,
		.userdata = userdata,
	};
	memcpy(w->path, prefix, len);
	w->path[len] = 0;
	return walk_dir(w, dfd, len);
}

static void local_free(struct backend *b)
{
	struct local_backend *l = to_local(b);

	if (l->root_fd >= 0)
		close(l->root_fd);
	free(l->base.location);
	free(l);
}

static const struct backend_type local_type = {
	.name = "local",
	.put = local_put,
	.get = local_get,
	.head = local_head,
	.del = local_del,
	.list = local_list,
	.free = local_free,
};

/* After making the root, make its name durable in its parent (mkfs writes into it next). */
static int fsync_path_parent(const char *path)
{
	_cleanup_free_ char *copy = strdup(path);

	if (!copy)
		return -ENOMEM;
	return fsync_dir_path(dirname(copy));
}

int backend_local_open(const char *path, bool create, struct backend **ret)
{
	_cleanup_free_ struct local_backend *l = NULL;
	_cleanup_free_ char *location = NULL;
	_cleanup_close_ int fd = -1;
	struct stat st;
	int r;

	if (stat(path, &st) < 0) {
		r = -errno;
		/* A missing location is an answer, not a fault: the caller says what it means
		 * ("no such repository") in one line of its own. */
		if (r == -ENOENT && !create)
			return r;
		if (r != -ENOENT)
			return log_error_errno(r == -ENOENT || r == -ENOTDIR ? r : local_errno(r),
					       "%s: %s", path, strerror(-r));
		/* EEXIST: someone else made it meanwhile, which is as good. */
		if (mkdir(path, 0700) < 0 && errno != EEXIST) {
			r = -errno;
			return log_error_errno(r == -ENOTDIR ? r : local_errno(r),
					       "%s: create directory: %s", path, strerror(-r));
		}
		r = fsync_path_parent(path);
		if (r < 0)
			return log_error_errno(local_errno(r), "%s: fsync parent directory: %s",
					       path, strerror(-r));
	} else if (!S_ISDIR(st.st_mode)) {
		return log_error_errno(-ENOTDIR, "%s: not a directory", path);
	}

	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		return log_error_errno(r == -ENOENT || r == -ENOTDIR ? r : local_errno(r),
				       "%s: open: %s", path, strerror(-r));
	}

	l = calloc(1, sizeof(*l));
	location = strdup(path);
	if (!l || !location)
		return log_error_errno(-ENOMEM, "%s: out of memory", path);
	l->base.type = &local_type;
	l->base.location = TAKE_PTR(location);
	l->root_fd = TAKE_FD(fd);
	*ret = &TAKE_PTR(l)->base;
	return 0;
}
