/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests for fs/meta.c: the working tree's metadata in SQLite. Each test opens its own
 * database in a scratch directory. Durability and crash tests run this binary again as a
 * child (fork + exec of /proc/self/exe, so the child starts with none of the parent's SQLite
 * state) that opens the same file as a second process would.
 */
#include "meta.h"
#include "meta_internal.h" /* meta_op_begin, meta_op_end: a savepoint undone */

#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>

#include "tap.h"

static const uint8_t repo_a[REPO_ID_SIZE] = {0xca, 0x12, 0x34, 0x56, 1, 2, 3, 4};
static const uint8_t repo_b[REPO_ID_SIZE] = {0xbb};

static char scratch[] = "/tmp/test-meta.XXXXXX";
static int n_db;

static char last_error[1024];

static void capture_sink(enum log_level level, const char *msg)
{
	if (level <= LOG_ERR)
		snprintf(last_error, sizeof(last_error), "%s", msg);
}

/* Child exit codes. */
enum { CHILD_FOUND = 0, CHILD_ERROR = 2, CHILD_MISSING = 3 };

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path) < 0 ? -1 : 0;
}

static void rm_rf(const char *dir)
{
	if (nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0)
		diag("could not remove %s", dir);
}

/* A fresh database path in the scratch directory. */
static void new_path(char *path, size_t size)
{
	snprintf(path, size, "%s/meta-%d.db", scratch, ++n_db);
}

static struct meta *open_new(char *path, size_t size)
{
	struct meta *m = NULL;

	new_path(path, size);
	tap_require(meta_open(path, repo_a, &m) == 0);
	return m;
}

static struct meta_inode make_inode(uint32_t mode, uint64_t size)
{
	return (struct meta_inode){.mode = mode,
				   .uid = 1000,
				   .gid = 100,
				   .nlink = 1,
				   .size = size,
				   .rdev = 0,
				   .atime = 1700000000123456789LL,
				   .mtime = 1700000001000000001LL,
				   .ctime = -5};
}

static bool inode_eq(const struct meta_inode *a, const struct meta_inode *b)
{
	return a->ino == b->ino && a->mode == b->mode && a->uid == b->uid && a->gid == b->gid &&
	       a->nlink == b->nlink && a->size == b->size && a->rdev == b->rdev &&
	       a->atime == b->atime && a->mtime == b->mtime && a->ctime == b->ctime;
}

static uint64_t create(struct meta *m, uint32_t mode)
{
	struct meta_inode i = make_inode(mode, 0);
	uint64_t ino = 0;

	tap_require(meta_inode_create(m, &i, &ino) == 0);
	return ino;
}

/* A directory ino linked as name in parent. */
static uint64_t mkdir_in(struct meta *m, uint64_t parent, const char *name)
{
	uint64_t ino = create(m, S_IFDIR | 0755);

	tap_require(meta_link(m, parent, name, ino) == 0);
	return ino;
}

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- children ---- */

/* Run this binary with args; returns its exit status, or -1. */
static int run_child(const char *mode, const char *path, const char *arg)
{
	pid_t pid = fork();
	int status;

	tap_require(pid >= 0);
	if (pid == 0) {
		execl("/proc/self/exe", "test-meta", mode, path, arg, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

/* Child: look name up in the root; exit FOUND, MISSING or ERROR. */
static int child_lookup(const char *path, const char *name)
{
	struct meta *m;
	uint64_t ino;

	if (meta_open(path, repo_a, &m) < 0)
		return CHILD_ERROR;
	int r = meta_lookup(m, META_ROOT_INO, name, &ino);
	if (r >= 0) {
		struct meta_inode i;
		r = meta_inode_get(m, ino, &i);
	}
	if (meta_close(m) < 0)
		return CHILD_ERROR;
	return r == 0 ? CHILD_FOUND : r == -ENOENT ? CHILD_MISSING : CHILD_ERROR;
}

/* Child: write and sync a little, then write a lot more without syncing and vanish. */
static int child_crash(const char *path, const char *n_unsynced)
{
	struct meta *m;
	uint64_t ino;
	char name[32];

	if (meta_open(path, repo_a, &m) < 0)
		return CHILD_ERROR;
	for (int k = 0; k < 10; k++) {
		struct meta_inode i = make_inode(S_IFREG | 0644, (uint64_t)k);
		snprintf(name, sizeof(name), "synced-%d", k);
		if (meta_inode_create(m, &i, &ino) < 0 ||
		    meta_link(m, META_ROOT_INO, name, ino) < 0)
			return CHILD_ERROR;
	}
	if (meta_set_u64(m, "base-commit", 7) < 0 || meta_sync(m) < 0)
		return CHILD_ERROR;
	/* Enough to spill pages into the WAL before any commit. */
	int n = atoi(n_unsynced);
	for (int k = 0; k < n; k++) {
		struct meta_inode i = make_inode(S_IFREG | 0644, 1);
		snprintf(name, sizeof(name), "unsynced-%d", k);
		if (meta_inode_create(m, &i, &ino) < 0 ||
		    meta_link(m, META_ROOT_INO, name, ino) < 0)
			return CHILD_ERROR;
	}
	if (meta_unlink(m, META_ROOT_INO, "synced-0") < 0 || meta_set_u64(m, "base-commit", 8) < 0)
		return CHILD_ERROR;
	_exit(0); /* no close, no sync: as if killed */
}

/* ---- tests ---- */

static void test_open_root(void)
{
	char path[256];
	struct meta *m = open_new(path, sizeof(path));
	struct meta_inode i;
	uint64_t v;

	is_int(meta_inode_get(m, META_ROOT_INO, &i), 0, "open: root inode exists");
	is_int(i.mode, S_IFDIR | 0755, "open: root mode");
	ok(i.uid == 0 && i.gid == 0 && i.nlink == 2 && i.ino == META_ROOT_INO,
	   "open: root owner and link count");
	ok(i.mtime > 1600000000LL * 1000000000 && i.atime == i.mtime && i.ctime == i.mtime,
	   "open: root times are now, in ns");
	is_int(meta_get_u64(m, "next-ino", &v), 0, "open: next-ino readable");
	is_int(v, 2, "open: next-ino starts at 2");
	is_int(meta_dir_has_entries(m, META_ROOT_INO), 0, "open: root is empty");
	struct blob_id t;
	is_int(meta_tree_get(m, META_ROOT_INO, &t), -ENOENT, "open: root tree is dirty");
	is_int(meta_close(m), 0, "open: close");

	/* Reopen: not recreated. */
	tap_require(meta_open(path, repo_a, &m) == 0);
	struct meta_inode j;
	is_int(meta_inode_get(m, META_ROOT_INO, &j), 0, "reopen: root still there");
	ok(j.mtime == i.mtime, "reopen: root untouched");
	meta_close(m);
}

static void test_settings(void)
{
	char path[256];
	struct meta *m = open_new(path, sizeof(path));
	uint64_t v;

	is_int(meta_get_u64(m, "base-commit", &v), -ENOENT, "settings: unset is -ENOENT");
	is_int(meta_set_u64(m, "base-commit", UINT64_MAX - 1), 0, "settings: set");
	ok(meta_get_u64(m, "base-commit", &v) == 0 && v == UINT64_MAX - 1,
	   "settings: get round-trips a large value");
	is_int(meta_set_u64(m, "next-ino", 1), -EINVAL, "settings: next-ino is meta's own");
	is_int(meta_set_u64(m, "version", 9), -EINVAL, "settings: version is meta's own");
	is_int(meta_set_u64(m, "repo-id", 9), -EINVAL, "settings: repo-id is meta's own");
	is_int(meta_get_u64(m, "repo-id", &v), -EINVAL, "settings: repo-id is not a number");
	meta_close(m);
	tap_require(meta_open(path, repo_a, &m) == 0);
	ok(meta_get_u64(m, "base-commit", &v) == 0 && v == UINT64_MAX - 1,
	   "settings: persist across close");
	meta_close(m);
}

static int collect_u64(uint64_t v, void *ud)
{
	uint64_t *a = ud;
	if (a[0] >= 63)
		return -E2BIG;
	a[++a[0]] = v;
	return 0;
}

static void test_inodes(void)
{
	char path[256];
	struct meta *m = open_new(path, sizeof(path));
	struct meta_inode i = make_inode(S_IFREG | 0600, 12345), got;
	uint64_t a, b, c;

	i.ino = 999; /* ignored */
	is_int(meta_inode_create(m, &i, &a), 0, "inodes: create");
	is_int(a, 2, "inodes: first number is 2");
	is_int(meta_inode_get(m, a, &got), 0, "inodes: get");
	i.ino = a;
	ok(inode_eq(&got, &i), "inodes: every field round-trips (negative ctime too)");
	is_int(meta_inode_get(m, 999, &got), -ENOENT, "inodes: get unknown is -ENOENT");

	i.mode = S_IFREG | 0644;
	i.uid = UINT32_MAX;
	i.size = (uint64_t)1 << 50;
	i.nlink = 7;
	i.rdev = 0x1234;
	i.mtime = INT64_MAX;
	is_int(meta_inode_update(m, &i), 0, "inodes: update");
	ok(meta_inode_get(m, a, &got) == 0 && got.size == 12345,
	   "inodes: update leaves the size alone (the data path owns it)");
	i.size = 12345;
	ok(inode_eq(&got, &i), "inodes: update stored every other field (nlink as given)");
	is_int(meta_inode_set_size(m, a, (uint64_t)1 << 50), 0, "inodes: set size");
	is_int(meta_inode_extend(m, a, 100, 0), 0, "inodes: extend below the size");
	ok(meta_inode_get(m, a, &got) == 0 && got.size == (uint64_t)1 << 50 &&
		   got.mtime == INT64_MAX,
	   "inodes: extend never shrinks, and time 0 leaves mtime alone");
	is_int(meta_inode_extend(m, a, ((uint64_t)1 << 50) + 1, 77), 0, "inodes: extend past it");
	ok(meta_inode_get(m, a, &got) == 0 && got.size == ((uint64_t)1 << 50) + 1 &&
		   got.mtime == 77 && got.ctime == 77 && got.nlink == 7,
	   "inodes: extend grows and sets mtime and ctime only");
	is_int(meta_inode_extend(m, 12345678, 1, 0), -ENOENT, "inodes: extend unknown is -ENOENT");
	i.size = ((uint64_t)1 << 50) + 1;
	i.mtime = i.ctime = 77;
	struct meta_inode ghost = i;
	ghost.ino = 5000;
	is_int(meta_inode_update(m, &ghost), -ENOENT, "inodes: update unknown is -ENOENT");

	is_int(meta_inode_create(m, &i, &b), 0, "inodes: create another");
	is_int(b, a + 1, "inodes: numbers grow");
	is_int(meta_inode_delete(m, b), 0, "inodes: delete");
	is_int(meta_inode_get(m, b, &got), -ENOENT, "inodes: deleted is gone");
	is_int(meta_inode_delete(m, b), -ENOENT, "inodes: delete again is -ENOENT");
	is_int(meta_inode_create(m, &i, &c), 0, "inodes: create after delete");
	ok(c > b, "inodes: a deleted number is not reused (%llu > %llu)", (unsigned long long)c,
	   (unsigned long long)b);
	is_int(meta_inode_delete(m, c), 0, "inodes: delete the newest");
	is_int(meta_sync(m), 0, "inodes: sync");
	is_int(meta_sync(m), 0, "inodes: sync with nothing to do");
	is_int(meta_close(m), 0, "inodes: close");

	tap_require(meta_open(path, repo_a, &m) == 0);
	uint64_t d;
	is_int(meta_inode_create(m, &i, &d), 0, "inodes: create after reopen");
	ok(d > c, "inodes: next-ino persists across reopen (%llu > %llu)", (unsigned long long)d,
	   (unsigned long long)c);

	/* Insert with a given number raises next-ino past it. */
	struct meta_inode r = make_inode(S_IFDIR | 0700, 0);
	r.ino = 100;
	is_int(meta_inode_insert(m, &r), 0, "inodes: insert with a number");
	is_int(meta_inode_insert(m, &r), -EEXIST, "inodes: insert an existing number");
	r.ino = 0;
	is_int(meta_inode_insert(m, &r), -EINVAL, "inodes: insert 0 is -EINVAL");
	uint64_t e, next;
	is_int(meta_inode_create(m, &i, &e), 0, "inodes: create after insert");
	is_int(e, 101, "inodes: create continues past an inserted number");
	ok(meta_get_u64(m, "next-ino", &next) == 0 && next == 102, "inodes: next-ino is 102");
	r.ino = 50;
	is_int(meta_inode_insert(m, &r), 0, "inodes: insert below next-ino");
	ok(meta_get_u64(m, "next-ino", &next) == 0 && next == 102,
	   "inodes: insert below does not lower next-ino");
	meta_close(m);
	tap_require(meta_open(path, repo_a, &m) == 0);
	ok(meta_get_u64(m, "next-ino", &next) == 0 && next == 102,
	   "inodes: next-ino after reopen is 102");

	/* Delete takes its xattrs, extents and dirty ranges along. */
	struct meta_extent ex = {.off = 0, .len = 10};
	ok(meta_xattr_set(m, e, "user.a", "v", 1, 0) == 0 &&
		   meta_extents_replace(m, e, 0, 10, &ex, 1) == 0 &&
		   meta_dirty_add(m, e, 0, 5) == 0,
	   "inodes: give an inode xattrs, extents, dirty ranges");
	is_int(meta_inode_delete(m, e), 0, "inodes: delete it");
	struct buf names = {0};
	ok(meta_xattr_list(m, e, &names) == 0 && names.len == 0, "inodes: its xattrs are gone");
	buf_release(&names);
	uint64_t dirty[64] = {0};
	meta_dirty_inodes(m, collect_u64, dirty);
	is_int(dirty[0], 0, "inodes: its dirty ranges are gone");
	struct meta_inode fresh = make_inode(S_IFREG | 0644, 0);
	fresh.ino = e;
	is_int(meta_inode_insert(m, &fresh), 0, "inodes: reinsert the number (restore)");
	void *v;
	size_t vlen;
	is_int(meta_xattr_get(m, e, "user.a", &v, &vlen), -ENODATA,
	       "inodes: no stale xattr comes back");
	meta_close(m);
}

static void test_usage(void)
{
	char path[256];
	struct meta *m = open_new(path, sizeof(path));
	struct meta_inode i = make_inode(S_IFREG | 0644, 1000);
	uint64_t ino, n, bytes;

	meta_inode_create(m, &i, &ino);
	i.size = 24;
	meta_inode_create(m, &i, &ino);
	struct meta_inode d = make_inode(S_IFDIR | 0755, 4096);
	meta_inode_create(m, &d, &ino);
	is_int(meta_usage(m, &n, &bytes), 0, "usage: ok");
	is_int(n, 4, "usage: four inodes (root included)");
	is_int(bytes, 1024, "usage: bytes of regular files only");
	meta_close(m);
}

static void test_entries(void)
{
	char path[256];
	struct meta *m = open_new(path, sizeof(path));
	uint64_t f = create(m, S_IFREG | 0644), g = create(m, S_IFREG | 0644), ino;
	uint64_t d = mkdir_in(m, META_ROOT_INO, "dir");

	is_int(meta_link(m, META_ROOT_INO, "f", f), 0, "entries: link");
	is_int(meta_link(m, META_ROOT_INO, "f", g), -EEXIST,
	       "entries: link over a name is -EEXIST");
	ok(meta_lookup(m, META_ROOT_INO, "f", &ino) == 0 && ino == f, "entries: lookup");
	is_int(meta_lookup(m, META_ROOT_INO, "F", &ino), -ENOENT, "entries: names are exact");
	is_int(meta_lookup(m, d, "f", &ino), -ENOENT, "entries: names are per directory");
	is_int(meta_dir_has_entries(m, META_ROOT_INO), 1, "entries: root has entries");
	is_int(meta_dir_has_entries(m, d), 0, "entries: dir is empty");

	/* Names are bytes: not UTF-8, and the longest allowed. */
	char bin[] = {(char)0xff, (char)0xfe, 'a', (char)0x80, 0};
	char longest[META_NAME_MAX + 2];
	memset(longest, 'x', META_NAME_MAX);
	longest[META_NAME_MAX] = 0;
	is_int(meta_link(m, d, bin, g), 0, "entries: a non-UTF-8 name");
	ok(meta_lookup(m, d, bin, &ino) == 0 && ino == g, "entries: lookup a non-UTF-8 name");
	is_int(meta_link(m, d, longest, g), 0, "entries: a 255-byte name");
	ok(meta_lookup(m, d, longest, &ino) == 0 && ino == g, "entries: lookup a 255-byte name");
	longest[META_NAME_MAX] = 'x';
	longest[META_NAME_MAX + 1] = 0;
	is_int(meta_link(m, d, longest, g), -ENAMETOOLONG, "entries: 256 bytes is too long");
	is_int(meta_link(m, d, "", g), -EINVAL, "entries: empty name is -EINVAL");
	is_int(meta_link(m, d, "a/b", g), -EINVAL, "entries: '/' in a name is -EINVAL");

	is_int(meta_relink(m, META_ROOT_INO, "f", g), 0, "entries: relink");
	ok(meta_lookup(m, META_ROOT_INO, "f", &ino) == 0 && ino == g, "entries: relink points on");
	is_int(meta_relink(m, META_ROOT_INO, "nope", g), -ENOENT, "entries: relink unknown");

	is_int(meta_move(m, META_ROOT_INO, "f", d, "moved"), 0, "entries: move to another dir");
	ok(meta_lookup(m, META_ROOT_INO, "f", &ino) == -ENOENT &&
		   meta_lookup(m, d, "moved", &ino) == 0 && ino == g,
	   "entries: moved entry is at its new place only");
	is_int(meta_move(m, d, "moved", d, bin), -EEXIST, "entries: move onto a name is -EEXIST");
	ok(meta_lookup(m, d, "moved", &ino) == 0 && ino == g,
	   "entries: failed move changed nothing");
	is_int(meta_move(m, d, "ghost", d, "x"), -ENOENT, "entries: move unknown is -ENOENT");
	is_int(meta_move(m, d, "moved", d, "renamed"), 0, "entries: rename in place");
	ok(meta_lookup(m, d, "renamed", &ino) == 0 && ino == g, "entries: renamed");

	is_int(meta_unlink(m, d, "renamed"), 0, "entries: unlink");
	is_int(meta_unlink(m, d, "renamed"), -ENOENT, "entries: unlink again is -ENOENT");
	is_int(meta_lookup(m, d, "renamed", &ino), -ENOENT, "entries: unlinked is gone");
	struct meta_inode gi;
	is_int(meta_inode_get(m, g, &gi), 0, "entries: unlink leaves the inode to the caller");
	meta_close(m);
}

struct collected {
	uint64_t cookie[512], ino[512];
	char name[512][16];
	int n, stop_at;
	struct meta *m; /* to call back into */
	int reentered;
};

static int collect(uint64_t cookie, const char *name, uint64_t ino, void *ud)
{
	struct collected *c = ud;
	if (c->n >= 512)
		return -E2BIG;
	if (c->m) {
		struct meta_inode i;
		if (meta_inode_get(c->m, ino, &i) == 0)
			c->reentered++;
	}
	c->cookie[c->n] = cookie;
	c->ino[c->n] = ino;
	snprintf(c->name[c->n], sizeof(c->name[0]), "%s", name);
	c->n++;
	return c->stop_at && c->n >= c->stop_at ? 1 : 0;
}

static int fail_at_3(uint64_t cookie, const char *name, uint64_t ino, void *ud)
{
	return ++*(int *)ud == 3 ? -ECANCELED : 0;
}

static void test_readdir(void)
{
	char path[256], name[16];
	struct meta *m = open_new(path, sizeof(path));
	uint64_t d = mkdir_in(m, META_ROOT_INO, "d"), inos[200];
	static struct collected c;

	/* Names in descending order: the listing follows creation, not names. */
	for (int k = 0; k < 200; k++) {
		inos[k] = create(m, S_IFREG | 0644);
		snprintf(name, sizeof(name), "n%03d", 199 - k);
		tap_require(meta_link(m, d, name, inos[k]) == 0);
	}
	memset(&c, 0, sizeof(c));
	c.m = m;
	is_int(meta_readdir(m, d, 0, collect, &c), 0, "readdir: whole directory");
	is_int(c.n, 200, "readdir: 200 entries (several batches)");
	bool order = true, names = true;
	for (int k = 0; k < c.n; k++) {
		snprintf(name, sizeof(name), "n%03d", 199 - k);
		if (c.ino[k] != inos[k] || (k && c.cookie[k] <= c.cookie[k - 1]) || !c.cookie[k])
			order = false;
		if (strcmp(c.name[k], name))
			names = false;
	}
	ok(order, "readdir: creation order, cookies > 0 and increasing");
	ok(names, "readdir: names");
	is_int(c.reentered, 200, "readdir: the callback may call back into meta");

	/* Early stop, then resume from the last cookie delivered. */
	uint64_t all[200];
	memcpy(all, c.cookie, sizeof(all));
	memset(&c, 0, sizeof(c));
	c.stop_at = 70;
	is_int(meta_readdir(m, d, 0, collect, &c), 0, "readdir: fn > 0 stops without error");
	is_int(c.n, 70, "readdir: stopped where fn asked");
	memset(&c, 0, sizeof(c));
	is_int(meta_readdir(m, d, all[69], collect, &c), 0, "readdir: resume after a cookie");
	ok(c.n == 130 && c.cookie[0] == all[70], "readdir: resumes right after it");

	/* Delete the entry at the cookie and its neighbours, then resume. */
	for (int k = 68; k <= 72; k++) {
		snprintf(name, sizeof(name), "n%03d", 199 - k);
		tap_require(meta_unlink(m, d, name) == 0);
	}
	memset(&c, 0, sizeof(c));
	is_int(meta_readdir(m, d, all[69], collect, &c), 0,
	       "readdir: resume after a deleted cookie");
	ok(c.n == 127 && c.cookie[0] == all[73], "readdir: continues with the next survivor");

	/* A renamed entry keeps its place: no duplicates during a listing. */
	tap_require(meta_move(m, d, "n000", d, "zzz") == 0);
	memset(&c, 0, sizeof(c));
	meta_readdir(m, d, 0, collect, &c);
	ok(c.n == 195 && !strcmp(c.name[194], "zzz") && c.cookie[194] == all[199],
	   "readdir: a rename keeps the entry's cookie");

	int calls = 0;
	is_int(meta_readdir(m, d, 0, fail_at_3, &calls), -ECANCELED,
	       "readdir: fn < 0 stops and is returned");
	memset(&c, 0, sizeof(c));
	is_int(meta_readdir(m, d, all[199], collect, &c), 0, "readdir: after the last cookie");
	is_int(c.n, 0, "readdir: nothing after the last");
	memset(&c, 0, sizeof(c));
	meta_readdir(m, 12345, 0, collect, &c);
	is_int(c.n, 0, "readdir: unknown directory is empty");
	meta_close(m);
}

static void test_parents(void)
{
	char path[256];
	struct meta *m = open_new(path, sizeof(path));
	uint64_t d1 = mkdir_in(m, META_ROOT_INO, "d1"), d2 = mkdir_in(m, META_ROOT_INO, "d2");
	uint64_t f = create(m, S_IFREG | 0644), got[64] = {0};

	tap_require(meta_link(m, d2, "a", f) == 0);
	tap_require(meta_link(m, d1, "a", f) == 0);
	tap_require(meta_link(m, d1, "b", f) == 0);
	tap_require(meta_link(m, META_ROOT_INO, "c", f) == 0);
	is_int(meta_parents(m, f, collect_u64, got), 0, "parents: ok");
	ok(got[0] == 3 && got[1] == META_ROOT_INO && got[2] == d1 && got[3] == d2,
	   "parents: each directory once, in order");
	memset(got, 0, sizeof(got));
	meta_parents(m, d1, collect_u64, got);
	ok(got[0] == 1 && got[1] == META_ROOT_INO, "parents: a directory has one");
	memset(got, 0, sizeof(got));
	meta_parents(m, META_ROOT_INO, collect_u64, got);
	is_int(got[0], 0, "parents: the root has none");
	meta_close(m);
}

static void test_xattrs(void)
{
	char path[256];
	struct meta *m = open_new(path, sizeof(path));
	uint64_t f = create(m, S_IFREG | 0644);
	const uint8_t bin[] = {0, 1, 2, 0, 0xff, 0x80, 0};
	void *v;
	size_t len;

	is_int(meta_xattr_get(m, f, "user.x", &v, &len), -ENODATA, "xattr: absent is -ENODATA");
	is_int(meta_xattr_set(m, f, "user.x", bin, sizeof(bin), XATTR_REPLACE), -ENODATA,
	       "xattr: REPLACE absent is -ENODATA");
	is_int(meta_xattr_set(m, f, "user.x", bin, sizeof(bin), XATTR_CREATE), 0,
	       "xattr: CREATE absent");
	ok(meta_xattr_get(m, f, "user.x", &v, &len) == 0 && len == sizeof(bin) &&
		   !memcmp(v, bin, len),
	   "xattr: binary value round-trips");
	free(v);
	is_int(meta_xattr_set(m, f, "user.x", "new", 3, XATTR_CREATE), -EEXIST,
	       "xattr: CREATE present is -EEXIST");
	is_int(meta_xattr_set(m, f, "user.x", "new", 3, XATTR_REPLACE), 0,
	       "xattr: REPLACE present");
	ok(meta_xattr_get(m, f, "user.x", &v, &len) == 0 && len == 3 && !memcmp(v, "new", 3),
	   "xattr: replaced");
	free(v);
	is_int(meta_xattr_set(m, f, "user.x", "plain", 5, 0), 0, "xattr: flags 0 overwrites");
	is_int(meta_xattr_set(m, f, "user.new", "p", 1, 0), 0, "xattr: flags 0 creates");
	is_int(meta_xattr_set(m, f, "security.empty", NULL, 0, 0), 0, "xattr: empty value");
	ok(meta_xattr_get(m, f, "security.empty", &v, &len) == 0 && len == 0 && v,
	   "xattr: empty value reads back empty");
	free(v);

	struct buf names = {0};
	static const char want[] = "security.empty\0user.new\0user.x\0";
	is_int(meta_xattr_list(m, f, &names), 0, "xattr: list");
	ok(names.len == sizeof(want) - 1 && !memcmp(names.data, want, names.len),
	   "xattr: list is NUL-terminated names, sorted");
	is_int(meta_xattr_remove(m, f, "user.new"), 0, "xattr: remove");
	is_int(meta_xattr_remove(m, f, "user.new"), -ENODATA, "xattr: remove absent is -ENODATA");
	buf_reset(&names);
	meta_xattr_list(m, f, &names);
	is_int(names.len, strlen("security.empty") + strlen("user.x") + 2,
	       "xattr: list after remove");
	buf_reset(&names);
	uint64_t g = create(m, S_IFREG | 0644);
	ok(meta_xattr_list(m, g, &names) == 0 && names.len == 0, "xattr: none on another inode");
	buf_release(&names);
	meta_close(m);
}

static bool has_xattr(struct meta *m, uint64_t ino, const char *name)
{
	void *v = NULL;
	size_t len;
	int r = meta_xattr_get(m, ino, name, &v, &len);
	free(v);
	return r == 0;
}

static size_t listed(struct meta *m, uint64_t ino)
{
	struct buf names = {0};
	size_t n = meta_xattr_list(m, ino, &names) == 0 ? names.len : SIZE_MAX;
	buf_release(&names);
	return n;
}

/* What meta knows of inodes without xattrs (struct meta's noxattr) never hides one. */
static void test_noxattr(void)
{
	char path[256];
	struct meta *m = open_new(path, sizeof(path));
	uint64_t f = create(m, S_IFREG | 0644), g = create(m, S_IFREG | 0644);
	struct meta_inode mi;

	ok(!has_xattr(m, f, "user.a") && listed(m, f) == 0, "noxattr: a new inode has none");
	is_int(meta_xattr_set(m, f, "user.a", "1", 1, 0), 0, "noxattr: set one");
	ok(has_xattr(m, f, "user.a") && listed(m, f) == strlen("user.a") + 1,
	   "noxattr: it is seen at once");
	tap_require(meta_link(m, META_ROOT_INO, "f", f) == 0);
	tap_require(meta_link(m, META_ROOT_INO, "g", g) == 0);
	ok(meta_lookup_inode(m, META_ROOT_INO, "f", &mi) == 0 && mi.ino == f && S_ISREG(mi.mode) &&
		   has_xattr(m, f, "user.a"),
	   "noxattr: a lookup of an inode with one");
	ok(meta_lookup_inode(m, META_ROOT_INO, "g", &mi) == 0 && mi.ino == g && listed(m, g) == 0,
	   "noxattr: a lookup of an inode without");
	is_int(meta_lookup_inode(m, META_ROOT_INO, "h", &mi), -ENOENT, "noxattr: no such name");
	is_int(meta_xattr_set(m, g, "user.b", "2", 1, XATTR_CREATE), 0,
	       "noxattr: set one after the lookup");
	ok(has_xattr(m, g, "user.b"), "noxattr: it is seen at once");

	/* A removal undone with its savepoint. */
	is_int(meta_sync(m), 0, "noxattr: synced");
	tap_require(meta_op_begin(m) == 0);
	is_int(meta_xattr_remove(m, g, "user.b"), 0, "noxattr: removed in a savepoint");
	is_int(listed(m, g), 0, "noxattr: none left");
	meta_op_end(m, -EIO);
	ok(has_xattr(m, g, "user.b") && listed(m, g) == strlen("user.b") + 1,
	   "noxattr: back when the savepoint is undone");

	/* A removal undone with the batch. */
	is_int(meta_xattr_remove(m, f, "user.a"), 0, "noxattr: removed in the batch");
	is_int(listed(m, f), 0, "noxattr: none left");
	meta_abandon(m, "test");
	ok(has_xattr(m, f, "user.a") && listed(m, f) == strlen("user.a") + 1,
	   "noxattr: back when the batch is abandoned");
	meta_close(m);
}

static void test_symlink(void)
{
	char path[256];
	struct meta *m = open_new(path, sizeof(path));
	uint64_t l = create(m, S_IFLNK | 0777), f = create(m, S_IFREG | 0644);
	char *t = NULL, target[4097];

	is_int(meta_symlink_set(m, l, "../some/where"), 0, "symlink: set");
	ok(meta_symlink_get(m, l, &t) == 0 && !strcmp(t, "../some/where"), "symlink: get");
	free(t);
	memset(target, 'a', 4096);
	target[4096] = 0;
	target[7] = (char)0xe9;
	ok(meta_symlink_set(m, l, target) == 0 && meta_symlink_get(m, l, &t) == 0 &&
		   !strcmp(t, target),
	   "symlink: a 4096-byte non-UTF-8 target");
	free(t);
	is_int(meta_symlink_get(m, f, &t), -EINVAL, "symlink: none on a file is -EINVAL");
	is_int(meta_symlink_get(m, 9999, &t), -ENOENT, "symlink: unknown inode is -ENOENT");
	is_int(meta_symlink_set(m, 9999, "x"), -ENOENT, "symlink: set on unknown is -ENOENT");
	meta_close(m);
}

struct ext_list {
	struct meta_extent e[300];
	int n, stop_at;
};

static int collect_extent(const struct meta_extent *e, void *ud)
{
	struct ext_list *l = ud;
	if (l->n >= 300)
		return -E2BIG;
	l->e[l->n++] = *e;
	return l->stop_at && l->n >= l->stop_at ? 1 : 0;
}

static struct meta_extent ext(uint64_t off, uint32_t len, uint8_t tag)
{
	struct meta_extent e = {.off = off, .len = len};
	memset(e.blob.b, tag, BLOB_ID_SIZE);
	return e;
}

/* Field by field: the struct has padding. */
static bool ext_eq(const struct meta_extent *a, const struct meta_extent *b)
{
	return a->off == b->off && a->len == b->len && !memcmp(&a->blob, &b->blob, sizeof(a->blob));
}

static int query(struct meta *m, uint64_t ino, uint64_t off, uint64_t len, struct ext_list *l)
{
	memset(l, 0, sizeof(*l));
	return meta_extents(m, ino, off, len, collect_extent, l);
}

static void test_extents(void)
{
	char path[256];
	struct meta *m = open_new(path, sizeof(path));
	uint64_t f = create(m, S_IFREG | 0644);
	static struct ext_list l;
	/* [0,100) [100,250) hole [300,400) */
	struct meta_extent e[] = {ext(0, 100, 1), ext(100, 150, 2), ext(300, 100, 3)};

	is_int(meta_extents_replace(m, f, 0, 400, e, 3), 0, "extents: replace into empty");
	is_int(query(m, f, 0, UINT64_MAX, &l), 0, "extents: query all");
	ok(l.n == 3 && ext_eq(&l.e[0], &e[0]) && ext_eq(&l.e[1], &e[1]) && ext_eq(&l.e[2], &e[2]),
	   "extents: all three, in order, intact");
	query(m, f, 50, 10, &l);
	ok(l.n == 1 && l.e[0].off == 0, "extents: inside the first");
	query(m, f, 99, 2, &l);
	ok(l.n == 2 && l.e[0].off == 0 && l.e[1].off == 100, "extents: across a boundary");
	query(m, f, 250, 50, &l);
	is_int(l.n, 0, "extents: in the hole");
	query(m, f, 260, 41, &l);
	ok(l.n == 1 && l.e[0].off == 300, "extents: from the hole into the third");
	query(m, f, 100, 0, &l);
	is_int(l.n, 0, "extents: empty range");
	query(m, f, 400, 1000, &l);
	is_int(l.n, 0, "extents: past the end");
	query(m, f, 249, 1, &l);
	ok(l.n == 1 && l.e[0].off == 100, "extents: the last byte of the second");

	/* Replace [100, 400): drops the second and third, keeps the first. */
	struct meta_extent n1[] = {ext(100, 50, 4), ext(150, 250, 5)};
	is_int(meta_extents_replace(m, f, 100, 300, n1, 2), 0, "extents: replace a range");
	query(m, f, 0, UINT64_MAX, &l);
	ok(l.n == 3 && l.e[0].off == 0 && l.e[0].blob.b[0] == 1 && l.e[1].off == 100 &&
		   l.e[1].blob.b[0] == 4 && l.e[2].off == 150 && l.e[2].len == 250,
	   "extents: replaced");
	/* Truncate-like: replace [100, end) by nothing. */
	is_int(meta_extents_replace(m, f, 100, UINT64_MAX, NULL, 0), 0, "extents: drop a tail");
	query(m, f, 0, UINT64_MAX, &l);
	ok(l.n == 1 && l.e[0].off == 0, "extents: only the first left");

	struct meta_extent bad_order[] = {ext(200, 10, 1), ext(100, 10, 1)};
	struct meta_extent overlap[] = {ext(100, 20, 1), ext(110, 10, 1)};
	struct meta_extent outside[] = {ext(100, 200, 1)};
	struct meta_extent empty[] = {ext(100, 0, 1)};
	is_int(meta_extents_replace(m, f, 100, 200, bad_order, 2), -EINVAL, "extents: unsorted");
	is_int(meta_extents_replace(m, f, 100, 200, overlap, 2), -EINVAL, "extents: overlapping");
	is_int(meta_extents_replace(m, f, 100, 100, outside, 1), -EINVAL, "extents: outside range");
	is_int(meta_extents_replace(m, f, 100, 100, empty, 1), -EINVAL, "extents: zero length");

	/* Many extents: the query spans several batches. */
	static struct meta_extent many[250];
	for (int k = 0; k < 250; k++)
		many[k] = ext((uint64_t)k * 4096, 4096, (uint8_t)k);
	uint64_t g = create(m, S_IFREG | 0644);
	is_int(meta_extents_replace(m, g, 0, 250 * 4096, many, 250), 0, "extents: 250 extents");
	query(m, g, 0, UINT64_MAX, &l);
	bool same = l.n == 250;
	for (int k = 0; same && k < 250; k++)
		same = ext_eq(&l.e[k], &many[k]);
	ok(same, "extents: all 250 back in order across batches");
	query(m, g, 4096 * 100 + 1, 4096 * 100, &l);
	ok(l.n == 101 && l.e[0].off == 4096 * 100 && l.e[100].off == 4096 * 200,
	   "extents: a middle range across batches");
	memset(&l, 0, sizeof(l));
	l.stop_at = 5;
	is_int(meta_extents(m, g, 0, UINT64_MAX, collect_extent, &l), 0, "extents: fn > 0 stops");
	is_int(l.n, 5, "extents: stopped after 5");
	query(m, f, 0, UINT64_MAX, &l);
	is_int(l.n, 1, "extents: per inode");
	meta_close(m);
}

struct ranges {
	uint64_t r[32][2];
	int n;
};

static int collect_range(uint64_t off, uint64_t len, void *ud)
{
	struct ranges *rs = ud;
	if (rs->n >= 32)
		return -E2BIG;
	rs->r[rs->n][0] = off;
	rs->r[rs->n][1] = len;
	rs->n++;
	return 0;
}

/* The dirty ranges of ino as "off+len,off+len". */
static const char *dirty_str(struct meta *m, uint64_t ino)
{
	static char s[512];
	struct ranges rs = {.n = 0};
	size_t at = 0;

	s[0] = 0;
	if (meta_dirty_ranges(m, ino, collect_range, &rs) < 0)
		return "error";
	for (int k = 0; k < rs.n && at < sizeof(s) - 40; k++)
		at += (size_t)snprintf(s + at, sizeof(s) - at, "%s%llu+%llu", k ? "," : "",
				       (unsigned long long)rs.r[k][0],
				       (unsigned long long)rs.r[k][1]);
	return s;
}

#define is_dirty(m, ino, want, name)                                                               \
	do {                                                                                       \
		const char *_got = dirty_str(m, ino);                                              \
		if (!ok(!strcmp(_got, want), "%s", name))                                          \
			diag("  got %s, want %s", _got, want);                                     \
	} while (0)

static void test_dirty(void)
{
	char path[256];
	struct meta *m = open_new(path, sizeof(path));
	uint64_t f = create(m, S_IFREG | 0644), g = create(m, S_IFREG | 0644);

	is_dirty(m, f, "", "dirty: none at first");
	meta_dirty_add(m, f, 100, 100);
	is_dirty(m, f, "100+100", "dirty: add");
	meta_dirty_add(m, f, 300, 50);
	is_dirty(m, f, "100+100,300+50", "dirty: disjoint stays apart");
	meta_dirty_add(m, f, 200, 10);
	is_dirty(m, f, "100+110,300+50", "dirty: adjacent after merges");
	meta_dirty_add(m, f, 90, 10);
	is_dirty(m, f, "90+120,300+50", "dirty: adjacent before merges");
	meta_dirty_add(m, f, 150, 10);
	is_dirty(m, f, "90+120,300+50", "dirty: inside changes nothing");
	meta_dirty_add(m, f, 205, 100);
	is_dirty(m, f, "90+260", "dirty: overlap bridging two ranges merges all three");
	meta_dirty_add(m, f, 500, 10);
	meta_dirty_add(m, f, 520, 10);
	meta_dirty_add(m, f, 540, 10);
	meta_dirty_add(m, f, 495, 100);
	is_dirty(m, f, "90+260,495+100", "dirty: one add swallowing three ranges");
	is_int(meta_dirty_add(m, f, 1000, 0), 0, "dirty: empty add is a no-op");
	is_dirty(m, f, "90+260,495+100", "dirty: unchanged by an empty add");

	meta_dirty_clear(m, f, 100, 50);
	is_dirty(m, f, "90+10,150+200,495+100", "dirty: clear splits a range");
	meta_dirty_clear(m, f, 90, 10);
	is_dirty(m, f, "150+200,495+100", "dirty: clear a whole range");
	meta_dirty_clear(m, f, 300, 250);
	is_dirty(m, f, "150+150,550+45", "dirty: clear across two ranges trims both");
	meta_dirty_clear(m, f, 0, 10);
	is_dirty(m, f, "150+150,550+45", "dirty: clear where nothing is");
	meta_dirty_clear(m, f, 300, 250);
	is_dirty(m, f, "150+150,550+45", "dirty: clear the gap between (adjacent both sides)");
	meta_dirty_add(m, g, 0, 4096);

	uint64_t inos[64] = {0};
	is_int(meta_dirty_inodes(m, collect_u64, inos), 0, "dirty: inodes");
	ok(inos[0] == 2 && inos[1] == f && inos[2] == g, "dirty: both inodes, once each");
	meta_dirty_clear(m, f, 0, UINT64_MAX);
	is_dirty(m, f, "", "dirty: clear everything");
	memset(inos, 0, sizeof(inos));
	meta_dirty_inodes(m, collect_u64, inos);
	ok(inos[0] == 1 && inos[1] == g, "dirty: only g left");
	is_dirty(m, g, "0+4096", "dirty: per inode");
	meta_close(m);
}

static void test_stage(void)
{
	char path[256];
	struct meta *m = open_new(path, sizeof(path)), *m2;
	uint64_t f = create(m, S_IFREG | 0644), v = 99;
	sqlite3 *db;

	ok(meta_stage_get(m, f, &v) == 0 && v == 0, "stage: 0 for a new inode");
	is_int(meta_stage_set(m, f, 3), 0, "stage: set");
	ok(meta_stage_get(m, f, &v) == 0 && v == 3, "stage: read back in the batch");
	is_int(meta_stage_get(m, 12345, &v), -ENOENT, "stage: no such inode (get)");
	is_int(meta_stage_set(m, 12345, 1), -ENOENT, "stage: no such inode (set)");
	is_int(meta_stage_set(m, f, UINT64_MAX), -EINVAL, "stage: past INT64_MAX refused");
	meta_close(m);
	tap_require(meta_open(path, repo_a, &m) == 0);
	ok(meta_stage_get(m, f, &v) == 0 && v == 3, "stage: survives a reopen");

	/* meta_truncate: all of a cut in one step. */
	static struct ext_list l;
	struct meta_extent e[] = {ext(0, 100, 1), ext(100, 150, 2), ext(300, 100, 3)};
	struct meta_inode mi;
	meta_extents_replace(m, f, 0, 400, e, 3);
	meta_dirty_add(m, f, 120, 300);
	is_int(meta_truncate(m, f, 180, 100, 80, 4), 0, "stage: truncate");
	query(m, f, 0, UINT64_MAX, &l);
	ok(l.n == 1 && ext_eq(&l.e[0], &e[0]), "stage: truncate keeps the extents before the cut");
	is_dirty(m, f, "100+80", "stage: truncate clears past the size, adds the kept prefix");
	ok(meta_inode_get(m, f, &mi) == 0 && mi.size == 180, "stage: truncate sets the size");
	ok(meta_stage_get(m, f, &v) == 0 && v == 4, "stage: truncate sets the generation");
	is_int(meta_truncate(m, f, 100, 0, 0, 0), 0, "stage: truncate, generation kept");
	ok(meta_stage_get(m, f, &v) == 0 && v == 4, "stage: 0 leaves the generation");
	is_dirty(m, f, "", "stage: truncate to the cut clears the kept prefix");
	is_int(meta_truncate(m, f, 10, 20, 0, 0), -EINVAL, "stage: a cut past the size is refused");
	/* No such inode: nothing of the step stays (extents of a row-less inode stand in). */
	meta_extents_replace(m, 777, 0, 100, e, 1);
	is_int(meta_truncate(m, 777, 0, 0, 0, 5), -ENOENT, "stage: truncate of no inode");
	query(m, 777, 0, UINT64_MAX, &l);
	is_int(l.n, 1, "stage: a failed truncate leaves the extents");
	meta_close(m);

	/* A version 1 database: no stage column. Opening it adds one, data intact. */
	tap_require(sqlite3_open(path, &db) == SQLITE_OK);
	tap_require(sqlite3_exec(db,
				 "ALTER TABLE inodes DROP COLUMN stage;"
				 "UPDATE meta SET value = 1 WHERE key = 'version';",
				 NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(db);
	is_int(meta_open(path, repo_a, &m), 0, "stage: a version 1 database opens");
	ok(meta_stage_get(m, f, &v) == 0 && v == 0, "stage: 0 after the upgrade");
	is_int(meta_stage_set(m, f, 2), 0, "stage: settable after the upgrade");
	ok(meta_inode_get(m, f, &mi) == 0 && mi.mode == (S_IFREG | 0644),
	   "stage: the inode survives the upgrade");
	meta_close(m);
	tap_require(meta_open(path, repo_a, &m) == 0);
	ok(meta_stage_get(m, f, &v) == 0 && v == 2, "stage: upgraded once, kept");
	/* A second opener sees version 2 already. */
	is_int(meta_open(path, repo_a, &m2), 0, "stage: an upgraded database opens again");
	meta_close(m2);
	meta_close(m);
	tap_require(sqlite3_open(path, &db) == SQLITE_OK);
	sqlite3_stmt *s;
	tap_require(sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'version'", -1, &s,
				       NULL) == SQLITE_OK);
	ok(sqlite3_step(s) == SQLITE_ROW && sqlite3_column_int(s, 0) == 2,
	   "stage: the version is 2 after the upgrade");
	sqlite3_finalize(s);
	sqlite3_close(db);
}

/* SQLite rolls the whole batch back when the database fills up: meta must then refuse every
 * write and sync, or its caller would go on as if the lost changes were durable. */
static void test_lost_batch(void)
{
	char path[256], name[32];
	struct meta *m = open_new(path, sizeof(path));
	uint64_t f = create(m, S_IFREG | 0644), ino;
	struct meta_inode in = make_inode(S_IFREG | 0644, 0);
	static uint8_t value[3000];
	int r = 0;

	is_int(meta_sync(m), 0, "lost: synced before");
	is_int(meta_test_limit_growth(m, 20), 0, "lost: the database may grow by 20 pages");
	for (int k = 0; k < 1000 && r >= 0; k++) {
		snprintf(name, sizeof(name), "user.v%d", k);
		r = meta_xattr_set(m, f, name, value, sizeof(value), 0);
	}
	is_int(r, -ENOSPC, "lost: the database fills up");
	is_int(meta_inode_create(m, &in, &ino), -EIO, "lost: no write after the rollback");
	is_int(meta_sync(m), -EIO, "lost: no sync after the rollback");
	ok(meta_close(m) < 0, "lost: closing says so");
	tap_require(meta_open(path, repo_a, &m) == 0);
	struct buf names = {0};
	ok(meta_xattr_list(m, f, &names) == 0 && names.len == 0, "lost: reopened at the last sync");
	buf_release(&names);
	is_int(meta_inode_create(m, &in, &ino), 0, "lost: writes again after a reopen");
	meta_close(m);
}

struct precommit {
	int calls, fail;
};

static int count_range(uint64_t off, uint64_t len, void *ud)
{
	*(int *)ud += 1;
	return 0;
}

static int precommit(void *ud)
{
	struct precommit *p = ud;
	p->calls++;
	return p->fail;
}

/* The hook that makes staged bytes durable (fs/data.c) runs before each commit of a batch,
 * and a failure of it never lets that batch be committed. */
static void test_precommit(void)
{
	char path[256];
	struct meta *m = open_new(path, sizeof(path));
	struct precommit p = {0};
	uint64_t f = create(m, S_IFREG | 0644), ino;
	struct meta_inode in = make_inode(S_IFREG | 0644, 0);
	int ranges = 0;

	is_int(meta_sync(m), 0, "precommit: synced before");
	meta_set_precommit(m, precommit, &p);
	is_int(meta_sync(m), 0, "precommit: a sync with nothing to commit");
	is_int(p.calls, 0, "precommit: not run without a batch");
	is_int(meta_dirty_add(m, f, 0, 4096), 0, "precommit: a dirty range");
	is_int(meta_sync(m), 0, "precommit: committed");
	is_int(p.calls, 1, "precommit: run once for the commit");
	p.fail = -EIO;
	is_int(meta_dirty_add(m, f, 8192, 4096), 0, "precommit: another dirty range");
	is_int(meta_sync(m), -EIO, "precommit: a failure fails the sync");
	ok(meta_lost(m), "precommit: the batch is lost");
	is_int(meta_inode_create(m, &in, &ino), -EIO, "precommit: no write after it");
	ok(meta_close(m) < 0, "precommit: closing says so");
	tap_require(meta_open(path, repo_a, &m) == 0);
	is_int(meta_dirty_ranges(m, f, count_range, &ranges), 0, "precommit: reopened");
	is_int(ranges, 1, "precommit: the first range is there, the second never was");
	meta_close(m);
}

static struct blob_id tid(uint8_t tag)
{
	struct blob_id id;
	memset(id.b, tag, sizeof(id.b));
	return id;
}

static bool tree_is(struct meta *m, uint64_t dir, int tag)
{
	struct blob_id id;
	int r = meta_tree_get(m, dir, &id);
	if (tag < 0)
		return r == -ENOENT;
	struct blob_id want = tid((uint8_t)tag);
	return r == 0 && !memcmp(&id, &want, sizeof(id));
}

static void set_all(struct meta *m, const uint64_t *d, int n)
{
	for (int k = 0; k < n; k++) {
		struct blob_id id = tid((uint8_t)(k + 1));
		tap_require(meta_tree_set(m, d[k], &id) == 0);
	}
}

static void test_tree(void)
{
	char path[256];
	struct meta *m = open_new(path, sizeof(path));
	uint64_t d[4];

	d[0] = META_ROOT_INO;
	d[1] = mkdir_in(m, d[0], "a");
	d[2] = mkdir_in(m, d[1], "b");
	d[3] = mkdir_in(m, d[2], "c");
	uint64_t side = mkdir_in(m, d[0], "side");
	struct blob_id s9 = tid(9);
	tap_require(meta_tree_set(m, side, &s9) == 0);

	set_all(m, d, 4);
	ok(tree_is(m, d[0], 1) && tree_is(m, d[1], 2) && tree_is(m, d[2], 3) && tree_is(m, d[3], 4),
	   "tree: set and get");
	struct blob_id x = tid(7);
	is_int(meta_tree_set(m, 9999, &x), -ENOENT, "tree: set on unknown is -ENOENT");
	is_int(meta_tree_invalidate(m, d[3]), 0, "tree: invalidate the deepest");
	ok(tree_is(m, d[0], -1) && tree_is(m, d[1], -1) && tree_is(m, d[2], -1) &&
		   tree_is(m, d[3], -1),
	   "tree: the whole chain is dirty");
	ok(tree_is(m, side, 9), "tree: a sibling stays clean");

	set_all(m, d, 4);
	is_int(meta_tree_invalidate(m, d[1]), 0, "tree: invalidate the middle");
	ok(tree_is(m, d[0], -1) && tree_is(m, d[1], -1) && tree_is(m, d[2], 3) &&
		   tree_is(m, d[3], 4),
	   "tree: up only, not down");

	/* Make the root clean above a dirty a: the walk from c stops at a. */
	struct blob_id one = tid(1);
	tap_require(meta_tree_set(m, d[0], &one) == 0);
	is_int(meta_tree_invalidate(m, d[3]), 0, "tree: invalidate below a dirty ancestor");
	ok(tree_is(m, d[3], -1) && tree_is(m, d[2], -1) && tree_is(m, d[1], -1),
	   "tree: cleared up to the dirty one");
	ok(tree_is(m, d[0], 1), "tree: stopped early at the already dirty one");

	/* A dirty directory is cleared again and its parents too (it may have just moved). */
	set_all(m, d, 4);
	is_int(meta_tree_invalidate(m, d[2]), 0, "tree: invalidate b");
	tap_require(meta_tree_set(m, d[0], &one) == 0);
	struct blob_id two = tid(2);
	tap_require(meta_tree_set(m, d[1], &two) == 0);
	is_int(meta_tree_invalidate(m, d[2]), 0, "tree: invalidate an already dirty b");
	ok(tree_is(m, d[1], -1) && tree_is(m, d[0], -1), "tree: its clean ancestors are cleared");
	is_int(meta_tree_invalidate(m, 9999), 0, "tree: invalidate unknown is harmless");
	meta_close(m);
}

/* meta_touch_parents, and that touching again is cheap only while it would change nothing. */
static void test_touch_parents(void)
{
	char path[256];
	struct meta *m = open_new(path, sizeof(path));
	uint64_t d[3], side, f = create(m, S_IFREG | 0644);

	d[0] = META_ROOT_INO;
	d[1] = mkdir_in(m, d[0], "a");
	d[2] = mkdir_in(m, d[1], "b");
	side = mkdir_in(m, d[0], "side");
	tap_require(meta_link(m, d[2], "f", f) == 0);
	tap_require(meta_link(m, side, "g", f) == 0);
	struct blob_id nine = tid(9);

	set_all(m, d, 3);
	tap_require(meta_tree_set(m, side, &nine) == 0);
	is_int(meta_touch_parents(m, f), 0, "touch: a file with two links");
	ok(tree_is(m, d[2], -1) && tree_is(m, d[1], -1) && tree_is(m, d[0], -1) &&
		   tree_is(m, side, -1),
	   "touch: both parents and their ancestors are dirty");

	/* Trees written since (a checkpoint): the same touch must clear them again. */
	set_all(m, d, 3);
	tap_require(meta_tree_set(m, side, &nine) == 0);
	is_int(meta_touch_parents(m, f), 0, "touch: again after the trees were set");
	ok(tree_is(m, d[2], -1) && tree_is(m, d[0], -1) && tree_is(m, side, -1),
	   "touch: ... clears them again");
	is_int(meta_touch_parents(m, f), 0, "touch: a third time, nothing set since");
	ok(tree_is(m, d[2], -1) && tree_is(m, side, -1), "touch: ... still dirty");

	/* Only the directory's own tree set again: the cached touch of it must not hide it. */
	tap_require(meta_tree_invalidate(m, d[2]) == 0);
	tap_require(meta_tree_set(m, d[2], &nine) == 0);
	is_int(meta_tree_invalidate(m, d[2]), 0, "touch: invalidate a directory set again");
	ok(tree_is(m, d[2], -1), "touch: ... is dirty again");

	is_int(meta_touch_parents(m, 9999), 0, "touch: an unknown inode is harmless");
	meta_close(m);
}

static void test_durability(void)
{
	char path[256];
	struct meta *m = open_new(path, sizeof(path));
	uint64_t a = create(m, S_IFREG | 0644), b = create(m, S_IFREG | 0644);

	tap_require(meta_link(m, META_ROOT_INO, "durable", a) == 0);
	is_int(meta_sync(m), 0, "durability: sync");
	is_int(run_child("lookup", path, "durable"), CHILD_FOUND,
	       "durability: another process sees synced data");
	tap_require(meta_link(m, META_ROOT_INO, "pending", b) == 0);
	is_int(run_child("lookup", path, "pending"), CHILD_MISSING,
	       "durability: another process does not see unsynced data");
	is_int(run_child("lookup", path, "durable"), CHILD_FOUND,
	       "durability: ... while still seeing the synced data");
	is_int(meta_sync(m), 0, "durability: sync again");
	is_int(run_child("lookup", path, "pending"), CHILD_FOUND,
	       "durability: the second sync is seen");
	meta_close(m);
}

static void test_crash(void)
{
	char path[256];
	struct meta *m;
	uint64_t ino, v, n_inodes, bytes;

	new_path(path, sizeof(path));
	tap_require(meta_open(path, repo_a, &m) == 0);
	meta_close(m);
	is_int(run_child("crash", path, "30000"), 0, "crash: child wrote, synced, wrote, died");
	is_int(meta_open(path, repo_a, &m), 0, "crash: reopen");
	bool all = true;
	for (int k = 0; k < 10; k++) {
		char name[32];
		snprintf(name, sizeof(name), "synced-%d", k);
		all = all && meta_lookup(m, META_ROOT_INO, name, &ino) == 0;
	}
	ok(all, "crash: every synced entry is there (synced-0's unlink was not synced)");
	is_int(meta_lookup(m, META_ROOT_INO, "unsynced-0", &ino), -ENOENT,
	       "crash: the first unsynced entry is not");
	is_int(meta_lookup(m, META_ROOT_INO, "unsynced-29999", &ino), -ENOENT,
	       "crash: the last unsynced entry is not");
	ok(meta_usage(m, &n_inodes, &bytes) == 0 && n_inodes == 11 && bytes == 45,
	   "crash: exactly the synced inodes (11, 45 bytes)");
	ok(meta_get_u64(m, "base-commit", &v) == 0 && v == 7, "crash: the synced setting");
	ok(meta_get_u64(m, "next-ino", &v) == 0 && v == 12, "crash: next-ino as synced");
	ok(meta_inode_create(m, &(struct meta_inode){.mode = S_IFREG}, &ino) == 0 && ino == 12,
	   "crash: numbering continues from the synced state");
	meta_close(m);
}

static void test_identity(void)
{
	char path[256];
	struct meta *m = open_new(path, sizeof(path)), *m2 = NULL;
	int fd;

	meta_close(m);
	is_int(meta_open(path, repo_b, &m2), -EXDEV, "identity: another repository is -EXDEV");
	ok(strstr(last_error, "another repository") != NULL, "identity: and says so in the log");
	ok(m2 == NULL, "identity: ret untouched on failure");

	/* Garbage. */
	new_path(path, sizeof(path));
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	tap_require(fd >= 0);
	char junk[8192];
	for (size_t k = 0; k < sizeof(junk); k++)
		junk[k] = (char)(k * 7 + 3);
	tap_require(write(fd, junk, sizeof(junk)) == (ssize_t)sizeof(junk));
	close(fd);
	is_int(meta_open(path, repo_a, &m2), -EBADMSG, "identity: garbage is -EBADMSG");

	/* Someone else's SQLite database: refused and left as it was (not even WAL). */
	sqlite3 *db;
	new_path(path, sizeof(path));
	tap_require(sqlite3_open(path, &db) == SQLITE_OK);
	tap_require(sqlite3_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES(1);", NULL, NULL,
				 NULL) == SQLITE_OK);
	sqlite3_close(db);
	is_int(meta_open(path, repo_a, &m2), -EBADMSG, "identity: a foreign database is -EBADMSG");
	char wal[300];
	snprintf(wal, sizeof(wal), "%s-wal", path);
	ok(access(wal, F_OK) < 0, "identity: the foreign database was not touched");

	/* A database with a meta table but not ours (like the blob index). */
	new_path(path, sizeof(path));
	tap_require(sqlite3_open(path, &db) == SQLITE_OK);
	tap_require(sqlite3_exec(db, "CREATE TABLE meta(key TEXT PRIMARY KEY, value);", NULL, NULL,
				 NULL) == SQLITE_OK);
	sqlite3_close(db);
	is_int(meta_open(path, repo_a, &m2), -EBADMSG, "identity: a meta table alone is not ours");

	/* A newer version. */
	m = open_new(path, sizeof(path));
	meta_close(m);
	tap_require(sqlite3_open(path, &db) == SQLITE_OK);
	tap_require(sqlite3_exec(db, "UPDATE meta SET value = 3 WHERE key = 'version';", NULL, NULL,
				 NULL) == SQLITE_OK);
	sqlite3_close(db);
	is_int(meta_open(path, repo_a, &m2), -EBADMSG, "identity: a newer version is -EBADMSG");

	/* An empty file is a new database. */
	new_path(path, sizeof(path));
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	close(fd);
	is_int(meta_open(path, repo_a, &m2), 0, "identity: an empty file becomes a database");
	meta_close(m2);
}

static void test_bench(void)
{
	char path[256], name[32];
	struct meta *m = open_new(path, sizeof(path));
	struct meta_inode i = make_inode(S_IFREG | 0644, 0);
	uint64_t d = mkdir_in(m, META_ROOT_INO, "bench"), ino, n, bytes;
	const int count = 10000;
	bool fine = true;

	tap_require(meta_sync(m) == 0);
	int64_t t0 = mono_ns();
	for (int k = 0; k < count && fine; k++) {
		snprintf(name, sizeof(name), "file-%d", k);
		fine = meta_inode_create(m, &i, &ino) == 0 && meta_link(m, d, name, ino) == 0;
	}
	fine = fine && meta_sync(m) == 0;
	int64_t t1 = mono_ns();
	ok(fine, "bench: %d creates + links + sync", count);
	ok(meta_usage(m, &n, &bytes) == 0 && n == (uint64_t)count + 2, "bench: all there");
	double secs = (double)(t1 - t0) / 1e9;
	diag("bench: %d inode creates + links in one batch, then sync: %.1f ms, %.0f creates/s",
	     count, secs * 1e3, count / secs);
	meta_close(m);
}

struct worker {
	struct meta *m;
	uint64_t dir;
	int id, errors;
};

static void *work(void *arg)
{
	struct worker *w = arg;
	char name[32];

	for (int k = 0; k < 300; k++) {
		struct meta_inode i = make_inode(S_IFREG | 0644, (uint64_t)k);
		uint64_t ino, got;
		snprintf(name, sizeof(name), "w%d-%d", w->id, k);
		if (meta_inode_create(w->m, &i, &ino) < 0 ||
		    meta_link(w->m, w->dir, name, ino) < 0 ||
		    meta_lookup(w->m, w->dir, name, &got) < 0 || got != ino ||
		    meta_dirty_add(w->m, ino, 0, 10) < 0)
			w->errors++;
		if (k % 50 == 0 && meta_sync(w->m) < 0)
			w->errors++;
	}
	return NULL;
}

static void test_threads(void)
{
	char path[256];
	struct meta *m = open_new(path, sizeof(path));
	struct worker w[4];
	pthread_t t[4];
	static struct collected c;

	for (int k = 0; k < 4; k++) {
		char name[16];
		snprintf(name, sizeof(name), "t%d", k);
		w[k] = (struct worker){.m = m, .dir = mkdir_in(m, META_ROOT_INO, name), .id = k};
		tap_require(pthread_create(&t[k], NULL, work, &w[k]) == 0);
	}
	int errors = 0;
	for (int k = 0; k < 4; k++) {
		pthread_join(t[k], NULL);
		errors += w[k].errors;
	}
	is_int(errors, 0, "threads: 4 threads creating, linking, syncing at once");
	memset(&c, 0, sizeof(c));
	c.m = m;
	meta_readdir(m, w[2].dir, 0, collect, &c);
	ok(c.n == 300 && c.reentered == 300, "threads: each directory has its 300 entries");
	meta_close(m);
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "lookup"))
		return child_lookup(argv[2], argv[3]);
	if (argc == 4 && !strcmp(argv[1], "crash"))
		return child_crash(argv[2], argv[3]);

	plan_lazy();
	log_set_sink(capture_sink);
	tap_require(mkdtemp(scratch) != NULL);
	test_open_root();
	test_settings();
	test_inodes();
	test_usage();
	test_entries();
	test_readdir();
	test_parents();
	test_xattrs();
	test_symlink();
	test_extents();
	test_dirty();
	test_stage();
	test_lost_batch();
	test_precommit();
	test_noxattr();
	test_tree();
	test_touch_parents();
	test_durability();
	test_crash();
	test_identity();
	test_bench();
	test_threads();
	rm_rf(scratch);
	return tap_done();
}
