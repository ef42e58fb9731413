/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * treediff: every kind of change between two trees built by hand in a store on
 * backend_mem, each reported once, in tree order; nested additions and removals; type
 * changes with a directory on either side; hard links; pruning (a pair of equal subtrees is
 * never listed, counted by the source); a callback's error stops the walk; a missing tree
 * is an error. Then the same changes between two plain directories through the directory
 * source (no ids: everything descended, bytes compared), and with user.cairn.id set by hand
 * as the mount will set it (equal ids pruned, digests trusted). And the digest itself.
 */
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/xattr.h>

#include "tap.h"
#include "treediff.h"

static char scratch[256];

#include "tree_build.h"

/* ---- running a diff ---- */

struct out {
	struct buf text;
	int stop_after; /* >0: return -ECANCELED at that call */
	int calls;
};

static int collect(enum treediff_kind kind, const char *path, const struct treediff_entry *a,
		   const struct treediff_entry *b, void *ud)
{
	struct out *o = ud;
	char k[2] = {(char)kind, ' '};
	if (o->stop_after && ++o->calls >= o->stop_after)
		return -ECANCELED;
	/* The entries given match the kind. */
	tap_require((kind == TREEDIFF_ADDED) == !a && (kind == TREEDIFF_REMOVED) == !b);
	tap_require(buf_append(&o->text, k, 2) == 0 &&
		    buf_append(&o->text, path, strlen(path)) == 0 &&
		    buf_append(&o->text, "\n", 1) == 0);
	return 0;
}

struct result {
	int r;
	char *text;
	uint64_t lists_a, lists_b;
};

static struct result diff_trees(struct store *s, const struct blob_id *a, const struct blob_id *b)
{
	struct treediff_tree_source sa, sb;
	struct out o = {0};
	struct result res;
	treediff_tree_source_init(&sa, s, a);
	treediff_tree_source_init(&sb, s, b);
	res.r = treediff_run(&sa.base, &sb.base, collect, &o);
	tap_require(buf_append(&o.text, "", 1) == 0);
	res.text = (char *)o.text.data;
	res.lists_a = sa.base.n_lists;
	res.lists_b = sb.base.n_lists;
	return res;
}

static bool same_text(const char *got, const char *want)
{
	if (!strcmp(got, want))
		return true;
	diag("got:\n%s# want:\n%s", got, want);
	return false;
}

/* ---- the cases ---- */

/* Both snapshots: everything that does not change, including a subtree big enough that
 * listing it would show in the count. */
#define COMMON                                                                                     \
	D("same", 100), D("same/a", 101), D("same/a/b", 102), F("same/a/b/f", 103, "x"),           \
		D("same/c", 104), F("same/c/g", 105, "y"), F("zz-last", 106, "z")

static const struct node snap_a[] = {
	COMMON,
	F("content", 10, "hello"),
	F("same size", 11, "abcde"),
	{.path = "chmod", .mode = S_IFREG | 0644, .ino = 12, .data = "m"},
	{.path = "chown", .mode = S_IFREG | 0644, .ino = 13, .data = "o", .uid = 0},
	{.path = "mtime", .mode = S_IFREG | 0644, .ino = 14, .data = "t", .uid = 0, .mtime = 5000},
	{.path = "atime", .mode = S_IFREG | 0644, .ino = 15, .data = "a", .atime = 1},
	{.path = "ctime", .mode = S_IFREG | 0644, .ino = 16, .data = "c", .ctime = 1},
	{.path = "xattr", .mode = S_IFREG | 0644, .ino = 17, .data = "x"},
	{.path = "link", .mode = S_IFLNK | 0777, .ino = 18, .data = "target-a"},
	{.path = "dev", .mode = S_IFCHR | 0600, .ino = 19, .rdev = 0x0103},
	F("file-to-dir", 20, "f"),
	D("dir-to-link", 21),
	F("dir-to-link/inside", 22, "i"),
	D("gone", 23),
	F("gone/a", 24, "a"),
	D("gone/sub", 25),
	F("gone/sub/b", 26, "b"),
	{.path = "hl1", .mode = S_IFREG | 0644, .ino = 27, .data = "hard", .nlink = 2},
	{.path = "hl2", .mode = S_IFREG | 0644, .ino = 27, .data = "hard", .nlink = 2},
	{.path = "hd1", .mode = S_IFREG | 0644, .ino = 28, .data = "shared", .nlink = 2},
	{.path = "hd2", .mode = S_IFREG | 0644, .ino = 28, .data = "shared", .nlink = 2},
	{.path = "meta-dir", .mode = S_IFDIR | 0755, .ino = 29},
	F("meta-dir/f", 30, "f"),
	F("file-to-fifo", 31, ""),
	{.path = "inode", .mode = S_IFREG | 0644, .ino = 32, .data = "same bytes"},
};

static const struct node snap_b[] = {
	COMMON,
	F("content", 10, "hello, world"),
	F("same size", 11, "abcdX"),
	{.path = "chmod", .mode = S_IFREG | 0600, .ino = 12, .data = "m"},
	{.path = "chown", .mode = S_IFREG | 0644, .ino = 13, .data = "o", .uid = 1000},
	{.path = "mtime", .mode = S_IFREG | 0644, .ino = 14, .data = "t", .uid = 0, .mtime = 6000},
	{.path = "atime", .mode = S_IFREG | 0644, .ino = 15, .data = "a", .atime = 2},
	{.path = "ctime", .mode = S_IFREG | 0644, .ino = 16, .data = "c", .ctime = 2},
	{.path = "xattr", .mode = S_IFREG | 0644, .ino = 17, .data = "x", .xattr = "v"},
	{.path = "link", .mode = S_IFLNK | 0777, .ino = 18, .data = "target-b"},
	{.path = "dev", .mode = S_IFCHR | 0600, .ino = 19, .rdev = 0x0105},
	D("file-to-dir", 40),
	F("file-to-dir/new", 41, "n"),
	{.path = "dir-to-link", .mode = S_IFLNK | 0777, .ino = 42, .data = "elsewhere"},
	D("new", 43),
	D("new/deeper", 44),
	F("new/deeper/f", 45, "f"),
	F("new/g", 46, "g"),
	{.path = "hl1", .mode = S_IFREG | 0644, .ino = 27, .data = "hard", .nlink = 3},
	{.path = "hl2", .mode = S_IFREG | 0644, .ino = 27, .data = "hard", .nlink = 3},
	{.path = "hl3", .mode = S_IFREG | 0644, .ino = 27, .data = "hard", .nlink = 3},
	{.path = "hd1", .mode = S_IFREG | 0644, .ino = 28, .data = "changed", .nlink = 2},
	{.path = "hd2", .mode = S_IFREG | 0644, .ino = 28, .data = "changed", .nlink = 2},
	{.path = "meta-dir", .mode = S_IFDIR | 0700, .ino = 29},
	F("meta-dir/f", 30, "f"),
	{.path = "file-to-fifo", .mode = S_IFIFO | 0644, .ino = 31},
	{.path = "inode", .mode = S_IFREG | 0644, .ino = 99, .data = "same bytes"},
};

/* Tree order: a directory, then what it holds, then the next name. */
static const char expected_ab[] = "U chmod\n"
				  "U chown\n"
				  "M content\n"
				  "M dev\n"
				  "T dir-to-link\n"
				  "- dir-to-link/inside\n"
				  "T file-to-dir\n"
				  "+ file-to-dir/new\n"
				  "T file-to-fifo\n"
				  "- gone\n"
				  "- gone/a\n"
				  "- gone/sub\n"
				  "- gone/sub/b\n"
				  "M hd1\n"
				  "M hd2\n"
				  "+ hl3\n"
				  "M link\n"
				  "U meta-dir\n"
				  "U mtime\n"
				  "+ new\n"
				  "+ new/deeper\n"
				  "+ new/deeper/f\n"
				  "+ new/g\n"
				  "M same size\n"
				  "U xattr\n";

static void test_kinds(void)
{
	struct store *s = new_store();
	struct blob_id a = BUILD(s, snap_a), b = BUILD(s, snap_b);
	struct result res;

	res = diff_trees(s, &a, &b);
	is_int(res.r, 0, "diff of two trees");
	ok(same_text(res.text, expected_ab), "every kind, once per path, in tree order");
	/* Listed: the tops, meta-dir on both sides, gone and gone/sub and dir-to-link (A), new
	 * and new/deeper and file-to-dir (B); never same/ nor anything in it. */
	is_int(res.lists_a, 5, "A: top, dir-to-link, gone, gone/sub, meta-dir listed, no more");
	is_int(res.lists_b, 5, "B: top, file-to-dir, new, new/deeper, meta-dir listed, no more");
	free(res.text);

	res = diff_trees(s, &b, &a);
	is_int(res.r, 0, "the reverse diff");
	ok(strstr(res.text, "- new\n- new/deeper\n- new/deeper/f\n- new/g\n") &&
		   strstr(res.text, "+ gone\n+ gone/a\n+ gone/sub\n+ gone/sub/b\n") &&
		   strstr(res.text, "T dir-to-link\n+ dir-to-link/inside\n") &&
		   strstr(res.text, "- hl3\n"),
	   "reversed: additions are removals and the other way round");
	free(res.text);

	res = diff_trees(s, &a, &a);
	ok(res.r == 0 && !*res.text && res.lists_a == 0 && res.lists_b == 0,
	   "a tree against itself: nothing, and nothing listed");
	free(res.text);
	tap_require(store_close(s) == 0);
}

/* A chain of directories with a shared side subtree at every level and one file at the
 * bottom whose content differs: only the path to it is listed. */
static struct blob_id chain(struct store *s, unsigned depth, const char *bottom)
{
	const struct node side[] = {D("x", 2), F("x/y", 3, "side")};
	struct blob_id side_id = BUILD(s, side), id;
	const struct node f[] = {F("f", 5, bottom)};
	id = build_dir(s, f, 1, "",
		       &(struct node){.path = "", .mode = S_IFDIR | 0755, .ino = 10 + depth});
	for (unsigned k = depth; k-- > 0;) {
		struct tree t = {.self.inode = {.ino = 10 + k, .mode = S_IFDIR | 0755, .nlink = 2}};
		_cleanup_buf_ struct buf b = {0};
		t.entries = calloc(2, sizeof(*t.entries));
		tap_require(t.entries);
		t.n_entries = 2;
		t.entries[0] = (struct tree_entry){
			.name = xstrdup("d"),
			.inode = {.ino = 11 + k, .mode = S_IFDIR | 0755, .nlink = 2},
			.subtree = id};
		t.entries[1] = (struct tree_entry){
			.name = xstrdup("side"),
			.inode = {.ino = 100000 + k, .mode = S_IFDIR | 0755, .nlink = 2},
			.subtree = side_id};
		tap_require(tree_encode(&t, &b) == 0);
		tap_require(store_put(s, BLOB_TREE, b.data, b.len, &id, NULL) == 0);
		tree_release(&t);
	}
	return id;
}

struct call {
	struct store *s;
	struct blob_id a, b;
	struct result res;
};

static void *call_thread(void *p)
{
	struct call *c = p;
	c->res = diff_trees(c->s, &c->a, &c->b);
	return NULL;
}

static void test_pruning(void)
{
	enum { DEPTH = 2000 };
	struct store *s = new_store();
	struct call c = {.s = s, .a = chain(s, DEPTH, "old"), .b = chain(s, DEPTH, "new")};
	pthread_attr_t attr;
	pthread_t t;

	/* On a small stack: a walk that recursed per level would not fit. */
	tap_require(pthread_attr_init(&attr) == 0);
	tap_require(pthread_attr_setstacksize(&attr, 128 * 1024) == 0);
	tap_require(pthread_create(&t, &attr, call_thread, &c) == 0);
	tap_require(pthread_join(t, NULL) == 0);
	pthread_attr_destroy(&attr);

	is_int(c.res.r, 0, "a change %d directories deep, on a 128 KiB stack", DEPTH);
	_cleanup_buf_ struct buf want = {0};
	tap_require(buf_append(&want, "M ", 2) == 0);
	for (unsigned k = 0; k < DEPTH; k++)
		tap_require(buf_append(&want, "d/", 2) == 0);
	tap_require(buf_append(&want, "f\n", 3) == 0);
	ok(same_text(c.res.text, (char *)want.data), "one line: the file at the bottom");
	is_int(c.res.lists_a, DEPTH + 1, "A: only the path is listed (%d trees), no side dir",
	       DEPTH + 1);
	is_int(c.res.lists_b, DEPTH + 1, "B: the same");
	free(c.res.text);
	tap_require(store_close(s) == 0);
}

static void test_errors(void)
{
	struct store *s = new_store();
	struct blob_id a = BUILD(s, snap_a), b = BUILD(s, snap_b);
	struct treediff_tree_source sa, sb;
	struct out o = {.stop_after = 3};

	treediff_tree_source_init(&sa, s, &a);
	treediff_tree_source_init(&sb, s, &b);
	is_int(treediff_run(&sa.base, &sb.base, collect, &o), -ECANCELED,
	       "the callback's error stops the walk and is returned");
	tap_require(buf_append(&o.text, "", 1) == 0);
	ok(same_text((char *)o.text.data, "U chmod\nU chown\n"), "nothing after it");
	buf_release(&o.text);

	/* A directory whose subtree is not in the store. */
	struct tree t = {.self.inode = {.ino = 1, .mode = S_IFDIR | 0755, .nlink = 3}};
	_cleanup_buf_ struct buf enc = {0};
	struct blob_id broken;
	t.entries = calloc(1, sizeof(*t.entries));
	tap_require(t.entries);
	t.n_entries = 1;
	t.entries[0] = (struct tree_entry){
		.name = xstrdup("same"), .inode = {.ino = 100, .mode = S_IFDIR | 0755, .nlink = 2}};
	memset(t.entries[0].subtree.b, 0x5a, BLOB_ID_SIZE);
	tap_require(tree_encode(&t, &enc) == 0);
	tap_require(store_put(s, BLOB_TREE, enc.data, enc.len, &broken, NULL) == 0);
	tree_release(&t);
	log_set_max_level(0); /* the missing tree is logged, as it should be */
	struct result res = diff_trees(s, &a, &broken);
	log_set_max_level(LOG_INFO);
	is_int(res.r, -ENOENT, "a missing subtree: -ENOENT");
	free(res.text);
	tap_require(store_close(s) == 0);
}

/* ---- the digest ---- */

static void digest_of(struct store *s, const struct node *nd, uint8_t out[32])
{
	struct tree_entry e = {0};
	fill_entry(s, nd, &e);
	tree_entry_digest(&e, out);
	struct tree t = {.self = e};
	tree_release(&t);
}

static bool digests_equal(struct store *s, const struct node *x, const struct node *y)
{
	uint8_t a[32], b[32];
	digest_of(s, x, a);
	digest_of(s, y, b);
	return !memcmp(a, b, 32);
}

static void test_digest(void)
{
	struct store *s = new_store();
	const struct node f = {
		.path = "f", .mode = S_IFREG | 0644, .ino = 1, .data = "data", .xattr = "v"};
	struct node g = f;

	g = (struct node){.path = "other name",
			  .mode = S_IFREG | 0600,
			  .ino = 2,
			  .data = "data",
			  .uid = 7,
			  .mtime = 99,
			  .xattr = "v",
			  .nlink = 3,
			  .rdev = 0,
			  .atime = 5,
			  .ctime = 6};
	ok(digests_equal(s, &f, &g), "name, inode, permissions, owner, times, nlink: same digest");
	g = f;
	g.data = "date";
	ok(!digests_equal(s, &f, &g), "other data: another digest");
	g = f;
	g.data = "data!";
	ok(!digests_equal(s, &f, &g), "longer data: another digest");
	g = f;
	g.xattr = "w";
	ok(!digests_equal(s, &f, &g), "another xattr value: another digest");
	g.xattr = NULL;
	ok(!digests_equal(s, &f, &g), "no xattr: another digest");
	const struct node l1 = {.path = "l", .mode = S_IFLNK | 0777, .ino = 1, .data = "a"},
			  l2 = {.path = "l", .mode = S_IFLNK | 0777, .ino = 1, .data = "b"};
	ok(!digests_equal(s, &l1, &l2), "another symlink target: another digest");
	const struct node c1 = {.path = "c", .mode = S_IFCHR | 0600, .ino = 1, .rdev = 1},
			  c2 = {.path = "c", .mode = S_IFCHR | 0600, .ino = 1, .rdev = 2},
			  b1 = {.path = "c", .mode = S_IFBLK | 0600, .ino = 1, .rdev = 1};
	ok(!digests_equal(s, &c1, &c2), "another device number: another digest");
	ok(!digests_equal(s, &c1, &b1), "a block device is not a character device");
	const struct node e1 = {.path = "e", .mode = S_IFREG | 0644, .ino = 1, .data = ""},
			  e2 = {.path = "e", .mode = S_IFIFO | 0644, .ino = 1};
	ok(!digests_equal(s, &e1, &e2), "an empty file is not a fifo");

	/* The documented format, computed here independently. */
	struct tree_entry e = {0};
	uint8_t got[32], want[32], key[32] = "cairn-entry-digest-v1";
	_cleanup_buf_ struct buf m = {0};
	fill_entry(s, &f, &e);
	tree_entry_digest(&e, got);
	tap_require(buf_append_le32(&m, S_IFREG) == 0 && buf_append_le32(&m, 1) == 0 &&
		    buf_append_str(&m, "user.x") == 0 && buf_append_str(&m, "v") == 0 &&
		    buf_append_le64(&m, 4) == 0 && buf_append_le32(&m, 1) == 0 &&
		    buf_append_le64(&m, 0) == 0 && buf_append_le32(&m, 4) == 0 &&
		    buf_append(&m, e.extents[0].blob.b, BLOB_ID_SIZE) == 0);
	codec_hash_keyed(key, m.data, m.len, want);
	ok(!memcmp(got, want, 32), "the digest is the documented format, version 1");
	struct tree t = {.self = e};
	tree_release(&t);
	tap_require(store_close(s) == 0);
}

/* ---- the directory source ---- */

static bool is_root;

/* Make the nodes under top on a real file system (parents listed before children), then
 * set every time (creating entries changes a directory's mtime). Devices are left out
 * (mknod needs privileges), and so are other owners unless we are root. */
static void materialize(const char *top, const struct node *v, size_t n)
{
	char p[600], q[600];
	tap_require(mkdir(top, 0755) == 0);
	for (size_t k = 0; k < n; k++) {
		const struct node *nd = &v[k];
		snprintf(p, sizeof(p), "%s/%s", top, nd->path);
		size_t first = k;
		for (size_t i = 0; i < k; i++)
			if (v[i].ino == nd->ino && S_ISREG(nd->mode)) {
				first = i;
				break;
			}
		switch (nd->mode & S_IFMT) {
		case S_IFDIR:
			tap_require(mkdir(p, nd->mode & 07777) == 0);
			break;
		case S_IFLNK:
			tap_require(symlink(nd->data, p) == 0);
			break;
		case S_IFIFO:
			tap_require(mkfifo(p, nd->mode & 07777) == 0);
			break;
		case S_IFREG:
			if (first != k) {
				snprintf(q, sizeof(q), "%s/%s", top, v[first].path);
				tap_require(link(q, p) == 0);
				break;
			}
			int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, nd->mode & 07777);
			tap_require(fd >= 0);
			size_t len = nd->data ? strlen(nd->data) : 0;
			tap_require(write(fd, nd->data ? nd->data : "", len) == (ssize_t)len);
			close(fd);
			break;
		default:
			continue;
		}
		if (!S_ISLNK(nd->mode))
			tap_require(chmod(p, nd->mode & 07777) == 0);
		if (nd->xattr)
			tap_require(setxattr(p, "user.x", nd->xattr, strlen(nd->xattr), 0) == 0);
		if (is_root)
			tap_require(lchown(p, nd->uid, 100) == 0);
	}
	for (size_t k = 0; k < n; k++) {
		const struct node *nd = &v[k];
		int64_t mt = nd->mtime ? nd->mtime : 1000;
		struct timespec ts[2] = {{.tv_sec = nd->atime / 1000000000, .tv_nsec = 0},
					 {.tv_sec = mt / 1000000000, .tv_nsec = mt % 1000000000}};
		snprintf(p, sizeof(p), "%s/%s", top, nd->path);
		if (!S_ISCHR(nd->mode))
			tap_require(utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW) == 0);
	}
}

static struct result diff_dirs(const char *a, const char *b)
{
	struct treediff_dir_source sa, sb;
	struct out o = {0};
	struct result res = {0};
	tap_require(treediff_dir_source_init(&sa, a) == 0);
	tap_require(treediff_dir_source_init(&sb, b) == 0);
	res.r = treediff_run(&sa.base, &sb.base, collect, &o);
	tap_require(buf_append(&o.text, "", 1) == 0);
	res.text = (char *)o.text.data;
	res.lists_a = sa.base.n_lists;
	res.lists_b = sb.base.n_lists;
	treediff_dir_source_release(&sa);
	treediff_dir_source_release(&sb);
	return res;
}

/* expected_ab without the lines the file system cannot show here. */
static char *expected_fs(void)
{
	_cleanup_buf_ struct buf b = {0};
	const char *p = expected_ab;
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = (size_t)(nl - p) + 1;
		if (strncmp(p, "M dev\n", len) && (is_root || strncmp(p, "U chown\n", len)))
			tap_require(buf_append(&b, p, len) == 0);
		p += len;
	}
	tap_require(buf_append(&b, "", 1) == 0);
	return (char *)TAKE_PTR(b.data);
}

static void set_id(const char *top, const char *path, uint8_t fill)
{
	char p[600], hex[BLOB_ID_HEX_SIZE];
	uint8_t id[BLOB_ID_SIZE];
	memset(id, fill, sizeof(id));
	hex_encode(id, sizeof(id), hex);
	snprintf(p, sizeof(p), "%s/%s", top, path);
	tap_require(setxattr(p, TREEDIFF_ID_XATTR, hex, 64, 0) == 0);
}

static void test_dir_source(void)
{
	char a[300], b[300];
	snprintf(a, sizeof(a), "%s/fs-a", scratch);
	snprintf(b, sizeof(b), "%s/fs-b", scratch);
	materialize(a, snap_a, ELEMENTSOF(snap_a));
	materialize(b, snap_b, ELEMENTSOF(snap_b));
	_cleanup_free_ char *want = expected_fs();

	struct result res = diff_dirs(a, b);
	is_int(res.r, 0, "diff of two plain directories");
	ok(same_text(res.text, want), "the same lines as between the trees (less devices%s)",
	   is_root ? "" : " and owners");
	is_int(res.lists_a, 9, "A: without ids every directory is listed, same/ too (9)");
	is_int(res.lists_b, 9, "B: the same (9)");
	free(res.text);

	res = diff_dirs(a, a);
	ok(res.r == 0 && !*res.text, "a directory against itself: nothing");
	free(res.text);

	/* With ids, as the daemon gives them: equal subtree ids are not listed, and digests
	 * are trusted. "same size" differs in its bytes but gets equal digests here, so it
	 * must not be read; zz-last has equal bytes but different digests. */
	set_id(a, "same", 0x11);
	set_id(b, "same", 0x11);
	set_id(a, "same size", 0x22);
	set_id(b, "same size", 0x22);
	set_id(a, "zz-last", 0x33);
	set_id(b, "zz-last", 0x34);
	res = diff_dirs(a, b);
	is_int(res.r, 0, "diff with user.cairn.id set");
	ok(strstr(want, "M same size\n") && !strstr(res.text, "same size") &&
		   strstr(res.text, "M zz-last\n") && !strstr(res.text, "same/"),
	   "equal digests: no change; different digests, equal xattrs: content changed");
	is_int(res.lists_a, 5, "A: same/ pruned by its id (5 listed)");
	is_int(res.lists_b, 5, "B: the same (5)");
	free(res.text);

	/* Different ids for same/: descended, nothing to report inside. */
	set_id(b, "same", 0x12);
	res = diff_dirs(a, b);
	ok(res.r == 0 && res.lists_a == 9 && !strstr(res.text, "same/"),
	   "different directory ids: listed, nothing inside reported");
	free(res.text);

	/* A regular file instead of a directory at the top. */
	char f[700];
	struct treediff_dir_source sf;
	snprintf(f, sizeof(f), "%s/content", a);
	log_set_max_level(0);
	is_int(treediff_dir_source_init(&sf, f), -ENOTDIR, "a file as the top: -ENOTDIR");
	snprintf(f, sizeof(f), "%s/none", a);
	is_int(treediff_dir_source_init(&sf, f), -ENOENT, "a missing top: -ENOENT");
	log_set_max_level(LOG_INFO);
}

int main(void)
{
	plan_lazy();
	tap_require(codec_global_init() == 0);
	is_root = geteuid() == 0;
	const char *tmp = getenv("TMPDIR");
	snprintf(scratch, sizeof(scratch), "%s/cairn-test-treediff-XXXXXX", tmp ? tmp : "/tmp");
	tap_require(mkdtemp(scratch));

	test_kinds();
	test_pruning();
	test_errors();
	test_digest();
	test_dir_source();

	rm_rf(scratch);
	return tap_done();
}
