/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Trees: the version 1 format against an independent encoder written here from the
 * documentation in tree.h, round trips of every entry type, the decoder's refusal of
 * truncated, unsorted, over-limit and hostile input; then checkpoint and restore between a
 * working tree in meta and a store on a local directory: a restore compares equal inode by
 * inode, a change deep inside rewrites only the directories on its path, unflushed data is
 * -EAGAIN, a corrupt tree is named in the error, and a chain 3000 directories deep works.
 */
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>

#include "tree.h"
#include "tap.h"

static char last_error[8192];
static void capture(enum log_level level, const char *msg)
{
	size_t n = strlen(last_error);
	if (level <= LOG_ERR && n < sizeof(last_error) - 1)
		snprintf(last_error + n, sizeof(last_error) - n, "%s\n", msg);
}

static char scratch[256];

static int rm_cb(const char *p, const struct stat *st, int type, struct FTW *f)
{
	return remove(p);
}

static void rm_rf(const char *p)
{
	nftw(p, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void fill(uint8_t *p, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		p[i] = (uint8_t)(seed >> 56);
	}
}

/* ---- building trees by hand ---- */

static char *xstrdup(const char *s)
{
	char *p = strdup(s);
	tap_require(p);
	return p;
}

static void add_xattr(struct tree_entry *e, const char *name, const void *value, size_t len)
{
	e->xattrs = reallocarray(e->xattrs, e->n_xattrs + 1, sizeof(*e->xattrs));
	tap_require(e->xattrs);
	struct tree_xattr *x = &e->xattrs[e->n_xattrs++];
	x->name = xstrdup(name);
	x->value = malloc(len + 1);
	tap_require(x->value);
	if (len)
		memcpy(x->value, value, len);
	x->len = len;
}

static void add_extent(struct tree_entry *e, uint64_t off, uint32_t len, uint8_t seed)
{
	e->extents = reallocarray(e->extents, e->n_extents + 1, sizeof(*e->extents));
	tap_require(e->extents);
	struct meta_extent *x = &e->extents[e->n_extents++];
	x->off = off;
	x->len = len;
	memset(x->blob.b, seed, BLOB_ID_SIZE);
}

static struct tree_entry *add_entry(struct tree *t, const char *name, uint64_t ino, uint32_t mode)
{
	t->entries = reallocarray(t->entries, t->n_entries + 1, sizeof(*t->entries));
	tap_require(t->entries);
	struct tree_entry *e = &t->entries[t->n_entries++];
	*e = (struct tree_entry){.name = xstrdup(name)};
	e->inode = (struct meta_inode){.ino = ino,
				       .mode = mode,
				       .uid = 1000 + (uint32_t)ino,
				       .gid = 100,
				       .nlink = 1,
				       .atime = 1700000000123456789ll + (int64_t)ino,
				       .mtime = -5 - (int64_t)ino, /* before the epoch */
				       .ctime = 1700000001000000001ll};
	return e;
}

/* One entry of every type, names with spaces and UTF-8, xattrs with binary values. Names
 * are added in bytewise order. */
static void sample_tree(struct tree *t)
{
	static const uint8_t bin[] = {0, 1, 0xff, 0, 'x', 0x80};
	struct tree_entry *e;

	*t = (struct tree){0};
	t->self.inode = (struct meta_inode){.ino = 7, .mode = S_IFDIR | 0755, .nlink = 3};
	add_xattr(&t->self, "user.dir", "v", 1);

	e = add_entry(t, "a dir", 20, S_IFDIR | 0700);
	e->inode.nlink = 2;
	memset(e->subtree.b, 0xab, BLOB_ID_SIZE);
	add_xattr(e, "system.posix_acl_default", bin, sizeof(bin));

	e = add_entry(t, "blk dev", 21, S_IFBLK | 0660);
	e->inode.rdev = makedev(8, 1);
	e = add_entry(t, "chr", 22, S_IFCHR | 0666);
	e->inode.rdev = makedev(1, 3);
	add_entry(t, "fifo", 23, S_IFIFO | 0644);

	e = add_entry(t, "file", 24, S_IFREG | 04755);
	e->inode.size = 10000;
	e->inode.nlink = 2;
	add_extent(e, 0, 4096, 1);
	add_extent(e, 4096, 4096, 2);
	add_extent(e, 9000, 1000, 3); /* a hole before it, ends exactly at size */
	add_xattr(e, "security.selinux", "system_u:object_r:x:s0", 22);
	add_xattr(e, "user.bin", bin, sizeof(bin));
	add_xattr(e, "user.empty", "", 0);

	e = add_entry(t, "link", 25, S_IFLNK | 0777);
	e->target = xstrdup("../some where/\xc3\xa9t\xc3\xa9");
	e->inode.size = strlen(e->target);
	add_entry(t, "sock", 26, S_IFSOCK | 0755);

	add_entry(t, "\xc3\xa9t\xc3\xa9 caf\xc3\xa9", 27, S_IFREG | 0600);
	e = add_entry(t, "\xf0\x9f\x93\x81", 24, S_IFREG | 04755); /* a hard link of "file" */
	e->inode.size = 10000;
	e->inode.nlink = 2;
	add_extent(e, 0, 4096, 1);
}

/* An encoder written from the format's documentation, with no checks: it writes whatever it
 * is given, so tests can feed the decoder any malformed tree. */
static void raw_str(struct buf *b, const char *s)
{
	tap_require(buf_append_str(b, s ? s : "") == 0);
}

static void raw_entry(struct buf *b, const struct tree_entry *e, bool self)
{
	const struct meta_inode *i = &e->inode;
	raw_str(b, e->name);
	tap_require(buf_append_le64(b, i->ino) == 0 && buf_append_le32(b, i->mode) == 0 &&
		    buf_append_le32(b, i->uid) == 0 && buf_append_le32(b, i->gid) == 0 &&
		    buf_append_le32(b, i->nlink) == 0 && buf_append_le64(b, i->size) == 0 &&
		    buf_append_le64(b, i->rdev) == 0 &&
		    buf_append_le64(b, (uint64_t)i->atime) == 0 &&
		    buf_append_le64(b, (uint64_t)i->mtime) == 0 &&
		    buf_append_le64(b, (uint64_t)i->ctime) == 0 &&
		    buf_append_le32(b, (uint32_t)e->n_xattrs) == 0);
	for (size_t k = 0; k < e->n_xattrs; k++) {
		raw_str(b, e->xattrs[k].name);
		tap_require(buf_append_le32(b, (uint32_t)e->xattrs[k].len) == 0);
		tap_require(buf_append(b, e->xattrs[k].value, e->xattrs[k].len) == 0);
	}
	if (S_ISDIR(i->mode) && !self)
		tap_require(buf_append(b, e->subtree.b, BLOB_ID_SIZE) == 0);
	if (S_ISLNK(i->mode))
		raw_str(b, e->target);
	if (S_ISREG(i->mode)) {
		tap_require(buf_append_le32(b, (uint32_t)e->n_extents) == 0);
		for (size_t k = 0; k < e->n_extents; k++)
			tap_require(buf_append_le64(b, e->extents[k].off) == 0 &&
				    buf_append_le32(b, e->extents[k].len) == 0 &&
				    buf_append(b, e->extents[k].blob.b, BLOB_ID_SIZE) == 0);
	}
}

static void raw_encode(const struct tree *t, struct buf *b)
{
	b->len = 0;
	tap_require(buf_append(b, "CTR\x01", 4) == 0);
	raw_entry(b, &t->self, true);
	tap_require(buf_append_le32(b, (uint32_t)t->n_entries) == 0);
	for (size_t k = 0; k < t->n_entries; k++)
		raw_entry(b, &t->entries[k], false);
}

static bool str_eq(const char *a, const char *b)
{
	return !strcmp(a ? a : "", b ? b : "");
}

static bool inode_eq(const struct meta_inode *a, const struct meta_inode *b)
{
	return a->ino == b->ino && a->mode == b->mode && a->uid == b->uid && a->gid == b->gid &&
	       a->nlink == b->nlink && a->size == b->size && a->rdev == b->rdev &&
	       a->atime == b->atime && a->mtime == b->mtime && a->ctime == b->ctime;
}

/* Field by field: struct meta_extent has padding that memcmp would compare. */
static bool extents_eq(const struct meta_extent *a, const struct meta_extent *b, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (a[k].off != b[k].off || a[k].len != b[k].len ||
		    memcmp(a[k].blob.b, b[k].blob.b, BLOB_ID_SIZE))
			return false;
	return true;
}

static bool entry_eq(const struct tree_entry *a, const struct tree_entry *b, bool self)
{
	if (!str_eq(a->name, b->name) || !inode_eq(&a->inode, &b->inode) ||
	    a->n_xattrs != b->n_xattrs)
		return false;
	for (size_t k = 0; k < a->n_xattrs; k++)
		if (strcmp(a->xattrs[k].name, b->xattrs[k].name) ||
		    a->xattrs[k].len != b->xattrs[k].len ||
		    memcmp(a->xattrs[k].value, b->xattrs[k].value, a->xattrs[k].len))
			return false;
	if (S_ISDIR(a->inode.mode) && !self && memcmp(&a->subtree, &b->subtree, BLOB_ID_SIZE))
		return false;
	if (S_ISLNK(a->inode.mode) && !str_eq(a->target, b->target))
		return false;
	if (S_ISREG(a->inode.mode) &&
	    (a->n_extents != b->n_extents || !extents_eq(a->extents, b->extents, a->n_extents)))
		return false;
	return true;
}

static bool tree_eq(const struct tree *a, const struct tree *b)
{
	if (!entry_eq(&a->self, &b->self, true) || a->n_entries != b->n_entries)
		return false;
	for (size_t k = 0; k < a->n_entries; k++)
		if (!entry_eq(&a->entries[k], &b->entries[k], false))
			return false;
	return true;
}

/* Decode raw bytes made from t; true if refused with -EBADMSG and nothing returned. */
static bool refused(const struct tree *t)
{
	_cleanup_buf_ struct buf b = {0};
	struct tree out = {0};
	raw_encode(t, &b);
	int r = tree_decode(b.data, b.len, &out);
	if (r == 0)
		tree_release(&out);
	return r == -EBADMSG && out.n_entries == 0 && !out.entries;
}

static bool accepted(const struct tree *t)
{
	_cleanup_buf_ struct buf b = {0};
	struct tree out = {0};
	raw_encode(t, &b);
	int r = tree_decode(b.data, b.len, &out);
	bool same = r == 0 && tree_eq(t, &out);
	tree_release(&out);
	return same;
}

static bool encode_refused(const struct tree *t)
{
	_cleanup_buf_ struct buf b = {0};
	return tree_encode(t, &b) == -EINVAL && b.len == 0;
}

static void test_round_trip(void)
{
	_cleanup_buf_ struct buf enc = {0}, raw = {0}, again = {0};
	struct tree t, out = {0};

	sample_tree(&t);
	is_int(tree_encode(&t, &enc), 0, "encode a tree with every entry type");
	raw_encode(&t, &raw);
	ok(enc.len == raw.len && !memcmp(enc.data, raw.data, raw.len),
	   "the encoding is exactly the documented format (%zu bytes)", enc.len);
	is_int(tree_decode(enc.data, enc.len, &out), 0, "decode it");
	ok(tree_eq(&t, &out), "every field survives: types, rdev, times, xattrs, target, extents");
	ok(out.self.name == NULL, "self has no name");
	is_int(tree_encode(&out, &again), 0, "re-encode");
	ok(again.len == enc.len && !memcmp(again.data, enc.data, enc.len), "same bytes again");
	tree_release(&out);

	/* An empty directory: the smallest tree. */
	struct tree empty = {.self.inode = {.ino = 1, .mode = S_IFDIR | 0755, .nlink = 2}};
	buf_reset(&again);
	is_int(tree_encode(&empty, &again), 0, "encode an empty directory");
	is_int(tree_decode(again.data, again.len, &out), 0, "decode it");
	ok(out.n_entries == 0 && out.self.n_xattrs == 0 &&
		   inode_eq(&out.self.inode, &empty.self.inode),
	   "empty round trip");
	tree_release(&out);

	/* Every strict prefix is refused. */
	unsigned bad = 0;
	for (size_t len = 0; len < enc.len; len++) {
		struct tree x = {0};
		int r = tree_decode(enc.data, len, &x);
		if (r != -EBADMSG) {
			bad++;
			if (r == 0)
				tree_release(&x);
		}
	}
	is_int(bad, 0, "all %zu truncations are -EBADMSG", enc.len);

	/* Every single-byte flip is refused or decodes to something that re-encodes to the
	 * flipped bytes exactly (no silent normalisation); never a crash. */
	bad = 0;
	for (size_t pos = 0; pos < enc.len; pos++) {
		_cleanup_buf_ struct buf flipped = {0}, re = {0};
		struct tree x = {0};
		tap_require(buf_append(&flipped, enc.data, enc.len) == 0);
		flipped.data[pos] ^= 0x41;
		if (tree_decode(flipped.data, flipped.len, &x) == 0) {
			if (tree_encode(&x, &re) < 0 || re.len != flipped.len ||
			    memcmp(re.data, flipped.data, re.len))
				bad++;
			tree_release(&x);
		}
	}
	is_int(bad, 0, "byte flips: refused or faithfully decoded");

	buf_reset(&raw);
	tap_require(buf_append(&raw, enc.data, enc.len) == 0 && buf_append(&raw, "", 1) == 0);
	is_int(tree_decode(raw.data, raw.len, &out), -EBADMSG, "trailing byte refused");
	raw.data[0] = 'X';
	is_int(tree_decode(raw.data, enc.len, &out), -EBADMSG, "bad magic refused");
	raw.data[0] = 'C';
	raw.data[3] = 2;
	is_int(tree_decode(raw.data, enc.len, &out), -EBADMSG, "unknown version refused");
	tree_release(&t);
}

static void test_limits(void)
{
	struct tree t;
	char name[300];
	struct tree_entry tmp;

	sample_tree(&t);
	ok(accepted(&t), "the sample is accepted");

	/* Unsorted: swap two entries. */
	tmp = t.entries[1];
	t.entries[1] = t.entries[2];
	t.entries[2] = tmp;
	ok(refused(&t), "unsorted names refused");
	ok(encode_refused(&t), "encode refuses unsorted names");
	t.entries[2] = t.entries[1];
	t.entries[1] = tmp;

	/* Duplicate: give entry 3 the name of entry 2. */
	char *saved = t.entries[3].name;
	t.entries[3].name = t.entries[2].name;
	ok(refused(&t), "duplicate names refused");
	ok(encode_refused(&t), "encode refuses duplicate names");
	t.entries[3].name = saved;

	/* Names: '/', 256 bytes, 255 bytes, empty, ".", "..". The last entry is renamed; names
	 * starting with 0xf0 still sort last. */
	struct tree_entry *last = &t.entries[t.n_entries - 1];
	saved = last->name;
	last->name = "\xf0/x";
	ok(refused(&t), "a name with '/' refused");
	ok(encode_refused(&t), "encode refuses a name with '/'");
	memset(name, 0xf0, 256);
	name[256] = 0;
	last->name = name;
	ok(refused(&t), "a 256-byte name refused");
	ok(encode_refused(&t), "encode refuses a 256-byte name");
	name[255] = 0;
	ok(accepted(&t), "a 255-byte name accepted");
	last->name = saved;
	saved = t.entries[0].name;
	t.entries[0].name = "";
	ok(refused(&t), "an empty name refused");
	t.entries[0].name = ".";
	ok(refused(&t), "\".\" refused");
	t.entries[0].name = "..";
	ok(refused(&t), "\"..\" refused");
	t.entries[0].name = saved;

	/* Xattr values: 64 KiB is the limit. */
	struct tree_entry *file = &t.entries[4];
	tap_require(!strcmp(file->name, "file"));
	struct tree_xattr *x = &file->xattrs[2];
	uint8_t *big = calloc(1, TREE_XATTR_VALUE_MAX + 1);
	tap_require(big);
	uint8_t *old_value = x->value;
	size_t old_len = x->len;
	x->value = big;
	x->len = TREE_XATTR_VALUE_MAX;
	ok(accepted(&t), "a 64 KiB xattr value accepted");
	x->len = TREE_XATTR_VALUE_MAX + 1;
	ok(refused(&t), "a 64 KiB + 1 xattr value refused");
	ok(encode_refused(&t), "encode refuses it");
	x->value = old_value;
	x->len = old_len;
	free(big);

	/* Xattr names sorted and unique. */
	struct tree_xattr tx = file->xattrs[0];
	file->xattrs[0] = file->xattrs[1];
	file->xattrs[1] = tx;
	ok(refused(&t), "unsorted xattr names refused");
	file->xattrs[1] = file->xattrs[0];
	file->xattrs[0] = tx;
	char *xname = file->xattrs[1].name;
	file->xattrs[1].name = file->xattrs[0].name;
	ok(refused(&t), "duplicate xattr names refused");
	file->xattrs[1].name = xname;
	ok(accepted(&t), "xattrs restored: accepted");

	/* Extents. */
	file->extents[1].off = 4000;
	ok(refused(&t), "overlapping extents refused");
	ok(encode_refused(&t), "encode refuses overlapping extents");
	file->extents[1].off = 4096;
	file->extents[2].len = 1001;
	ok(refused(&t), "an extent past size refused");
	ok(encode_refused(&t), "encode refuses an extent past size");
	file->extents[2].off = UINT64_MAX - 10;
	file->extents[2].len = 100;
	ok(refused(&t), "an extent whose end overflows refused");
	file->extents[2].off = 9000;
	file->extents[2].len = 0;
	ok(refused(&t), "an empty extent refused");
	file->extents[2].len = 1000;
	struct meta_extent e0 = file->extents[0];
	file->extents[0] = file->extents[1];
	file->extents[1] = e0;
	ok(refused(&t), "unsorted extents refused");
	file->extents[1] = file->extents[0];
	file->extents[0] = e0;
	ok(accepted(&t), "extents restored: accepted");

	/* Symlink targets: 4096 bytes is the limit. */
	struct tree_entry *link = &t.entries[5];
	tap_require(S_ISLNK(link->inode.mode));
	char *target = malloc(TREE_TARGET_MAX + 2);
	tap_require(target);
	memset(target, 'a', TREE_TARGET_MAX + 1);
	target[TREE_TARGET_MAX + 1] = 0;
	char *old_target = link->target;
	link->target = target;
	ok(refused(&t), "a 4097-byte symlink target refused");
	target[TREE_TARGET_MAX] = 0;
	ok(accepted(&t), "a 4096-byte symlink target accepted");
	link->target = "";
	ok(refused(&t), "an empty symlink target refused");
	link->target = old_target;
	free(target);

	/* Modes and inode numbers. */
	struct tree_entry *fifo = &t.entries[3];
	tap_require(S_ISFIFO(fifo->inode.mode));
	fifo->inode.mode = 0170000 | 0644;
	ok(refused(&t), "an unknown file type refused");
	ok(encode_refused(&t), "encode refuses an unknown file type");
	fifo->inode.mode = 0644;
	ok(refused(&t), "a mode without a type refused");
	fifo->inode.mode = S_IFIFO | 0644 | 010000000;
	ok(refused(&t), "mode bits beyond the type refused");
	fifo->inode.mode = S_IFIFO | 0644;
	fifo->inode.ino = 0;
	ok(refused(&t), "inode number 0 refused");
	fifo->inode.ino = 23;
	t.self.inode.mode = S_IFREG | 0644;
	ok(refused(&t), "self not a directory refused");
	ok(encode_refused(&t), "encode refuses self not a directory");
	t.self.inode.mode = S_IFDIR | 0755;
	t.self.name = xstrdup("self");
	ok(refused(&t), "self with a name refused");
	free(t.self.name);
	t.self.name = NULL;
	ok(accepted(&t), "all restored: accepted");
	tree_release(&t);
}

/* Hostile counts must fail on the bytes left, before any allocation sized by them. */
static void test_hostile_counts(void)
{
	_cleanup_buf_ struct buf b = {0};
	struct tree t = {0}, out = {0};
	struct timespec t0, t1;
	size_t at;

	t.self.inode = (struct meta_inode){.ino = 1, .mode = S_IFDIR | 0755, .nlink = 2};
	clock_gettime(CLOCK_MONOTONIC, &t0);

	raw_encode(&t, &b);
	at = b.len - 4; /* the entry count */
	put_le32(b.data + at, 0xffffffff);
	tap_require(buf_append(&b, "0123456789abcdef", 16) == 0);
	is_int(tree_decode(b.data, b.len, &out), -EBADMSG, "0xffffffff entries: -EBADMSG");
	put_le32(b.data + at, 1);
	is_int(tree_decode(b.data, b.len, &out), -EBADMSG, "1 entry in 16 bytes: -EBADMSG");

	/* 0xffffffff xattrs on self (after magic, empty name and 64 bytes of fields). */
	raw_encode(&t, &b);
	put_le32(b.data + 4 + 4 + 64, 0xffffffff);
	is_int(tree_decode(b.data, b.len, &out), -EBADMSG, "0xffffffff xattrs: -EBADMSG");

	/* A name length of 0xffffffff. */
	raw_encode(&t, &b);
	put_le32(b.data + 4, 0xffffffff);
	is_int(tree_decode(b.data, b.len, &out), -EBADMSG, "0xffffffff-byte name: -EBADMSG");

	/* 0xffffffff extents in a regular file entry, with a few bytes behind. */
	struct tree_entry *e = add_entry(&t, "f", 2, S_IFREG | 0644);
	raw_encode(&t, &b);
	put_le32(b.data + b.len - 4, 0xffffffff);
	tap_require(buf_append(&b, "0123456789abcdef0123456789abcdef", 32) == 0);
	is_int(tree_decode(b.data, b.len, &out), -EBADMSG, "0xffffffff extents: -EBADMSG");

	/* An xattr value length of 0xffffffff: it sits before "xyz" and the extent count. */
	add_xattr(e, "user.a", "xyz", 3);
	raw_encode(&t, &b);
	put_le32(b.data + b.len - 4 - 3 - 4, 0xffffffff);
	is_int(tree_decode(b.data, b.len, &out), -EBADMSG, "0xffffffff-byte xattr value: -EBADMSG");

	clock_gettime(CLOCK_MONOTONIC, &t1);
	double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	ok(s < 1.0, "hostile counts fail fast (%.3f s)", s);
	tree_release(&t);
}

/* ---- checkpoint and restore ---- */

static const char pass[] = "correct horse";
static int n_made;

struct repo {
	char dir[300], cache[300], cache2[300];
};

static void new_repo(struct repo *r, const char *sub)
{
	struct backend *b;
	uint8_t id[REPO_ID_SIZE];
	struct store_create_options o = {.encrypted = true,
					 .passphrase = pass,
					 .passlen = strlen(pass),
					 .kdf = KDF_TEST,
					 .pack_size = 256 * 1024};
	snprintf(r->dir, sizeof(r->dir), "%s/%s-repo", scratch, sub);
	snprintf(r->cache, sizeof(r->cache), "%s/%s-cache", scratch, sub);
	snprintf(r->cache2, sizeof(r->cache2), "%s/%s-cache2", scratch, sub);
	tap_require(backend_local_open(r->dir, true, &b) == 0);
	tap_require(store_create(b, &o, id) == 0);
	backend_free(b);
}

static struct store *open_repo(const struct repo *r, const char *cache, bool ro)
{
	struct backend *b;
	struct store *s;
	struct store_options o = {
		.cache_dir = cache, .passphrase = pass, .passlen = strlen(pass), .read_only = ro};
	tap_require(backend_local_open(r->dir, false, &b) == 0);
	tap_require(store_open(b, &o, &s) == 0);
	return s;
}

static struct meta *new_meta(struct store *s)
{
	char path[300];
	struct meta *m;
	snprintf(path, sizeof(path), "%s/meta%d.db", scratch, n_made++);
	tap_require(meta_open(path, store_config(s)->id, &m) == 0);
	return m;
}

static uint64_t new_blobs(struct store *s)
{
	struct store_stats st;
	store_get_stats(s, &st);
	return st.new_blobs;
}

static uint64_t put_blobs(struct store *s)
{
	struct store_stats st;
	store_get_stats(s, &st);
	return st.put_blobs;
}

/* Make an inode and its entry as fsops would: distinct times, the parent's nlink for a
 * directory, the parent marked dirty. */
static uint64_t mk(struct meta *m, uint64_t parent, const char *name, uint32_t mode, uint64_t size)
{
	static int64_t clock_ns = 1600000000000000000ll;
	struct meta_inode i = {.mode = mode,
			       .uid = 1000 + (uint32_t)(clock_ns % 7),
			       .gid = 100,
			       .nlink = S_ISDIR(mode) ? 2 : 1,
			       .size = size,
			       .atime = clock_ns++,
			       .mtime = clock_ns++,
			       .ctime = clock_ns++};
	uint64_t ino;
	tap_require(meta_inode_create(m, &i, &ino) == 0);
	tap_require(meta_link(m, parent, name, ino) == 0);
	if (S_ISDIR(mode)) {
		struct meta_inode p;
		tap_require(meta_inode_get(m, parent, &p) == 0);
		p.nlink++;
		tap_require(meta_inode_update(m, &p) == 0);
	}
	tap_require(meta_tree_invalidate(m, parent) == 0);
	return ino;
}

static struct blob_id put_data(struct store *s, size_t len, uint64_t seed)
{
	uint8_t data[4096];
	struct blob_id id;
	tap_require(len <= sizeof(data));
	fill(data, len, seed);
	tap_require(store_put(s, BLOB_DATA, data, len, &id, NULL) == 0);
	return id;
}

/* A file whose extents point at real data blobs: two chunks, a hole, one more chunk, and a
 * sparse tail. */
static uint64_t mk_file(struct meta *m, struct store *s, uint64_t parent, const char *name,
			uint64_t seed)
{
	struct meta_extent e[3] = {
		{.off = 0, .len = 1000, .blob = put_data(s, 1000, seed)},
		{.off = 1000, .len = 2000, .blob = put_data(s, 2000, seed + 1)},
		{.off = 5000, .len = 1500, .blob = put_data(s, 1500, seed + 2)},
	};
	uint64_t ino = mk(m, parent, name, S_IFREG | 0644, 7000);
	tap_require(meta_extents_replace(m, ino, 0, 7000, e, 3) == 0);
	return ino;
}

static void set_xattr(struct meta *m, uint64_t ino, const char *name, const void *v, size_t len)
{
	tap_require(meta_xattr_set(m, ino, name, v, len, 0) == 0);
}

struct fixture {
	uint64_t dirs[6]; /* root, d1 .. d5 */
	uint64_t side[6]; /* "side dir" in each */
	uint64_t files[6];
	uint64_t hard;
	unsigned n_dirs;
};

static void build(struct meta *m, struct store *s, struct fixture *fx)
{
	static const uint8_t bin[] = {0, 0xff, 0, 1, '\n'};
	char name[32];
	struct meta_inode ci;

	*fx = (struct fixture){.dirs[0] = META_ROOT_INO};
	set_xattr(m, META_ROOT_INO, "user.root", bin, sizeof(bin));
	for (unsigned k = 0; k < 6; k++) {
		uint64_t d = fx->dirs[k];
		if (k < 5) {
			snprintf(name, sizeof(name), "d%u", k + 1);
			fx->dirs[k + 1] = mk(m, d, name, S_IFDIR | 0750, 0);
		}
		fx->side[k] = mk(m, d, "side dir", S_IFDIR | 0755, 0);
		mk_file(m, s, fx->side[k], "s", 1000 + k);
		fx->files[k] = mk_file(m, s, d, "f", 100 * k);
		mk(m, d, "fifo", S_IFIFO | 0600, 0);
		set_xattr(m, d, "user.level", bin, k % sizeof(bin));
		fx->n_dirs += 2;
	}

	/* Names with spaces and UTF-8, every type, a symlink, devices, xattrs on files. */
	uint64_t l = mk(m, 1, "\xc3\xa9 link", S_IFLNK | 0777, 5);
	tap_require(meta_symlink_set(m, l, "d1/d2") == 0);
	uint64_t c = mk(m, fx->dirs[1], "null dev", S_IFCHR | 0666, 0);
	tap_require(meta_inode_get(m, c, &ci) == 0);
	ci.rdev = makedev(1, 3);
	tap_require(meta_inode_update(m, &ci) == 0);
	uint64_t b = mk(m, fx->dirs[2], "sda1", S_IFBLK | 0660, 0);
	tap_require(meta_inode_get(m, b, &ci) == 0);
	ci.rdev = makedev(8, 1);
	tap_require(meta_inode_update(m, &ci) == 0);
	mk(m, fx->dirs[3], "sock et", S_IFSOCK | 0755, 0);
	set_xattr(m, fx->files[2], "security.capability", bin, sizeof(bin));
	set_xattr(m, fx->files[2], "user.empty", "", 0);
	mk(m, fx->dirs[4], "empty \xe2\x9c\x93", S_IFREG | 0600, 0);
	mk(m, fx->dirs[5], "empty dir", S_IFDIR | 0700, 0);
	fx->n_dirs++;

	/* A hard link in two directories. */
	fx->hard = mk_file(m, s, fx->dirs[2], "hl", 5000);
	tap_require(meta_link(m, fx->dirs[4], "hl also", fx->hard) == 0);
	tap_require(meta_inode_get(m, fx->hard, &ci) == 0);
	ci.nlink = 2;
	tap_require(meta_inode_update(m, &ci) == 0);
	tap_require(meta_tree_invalidate(m, fx->dirs[4]) == 0);
	tap_require(meta_tree_invalidate(m, fx->dirs[2]) == 0);
	tap_require(meta_sync(m) == 0);
}

/* ---- comparing two working trees ---- */

struct dent {
	char *name;
	uint64_t ino;
};

struct dents {
	struct dent *v;
	size_t n;
};

static int collect(uint64_t cookie, const char *name, uint64_t ino, void *ud)
{
	struct dents *l = ud;
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return 0;
	l->v = reallocarray(l->v, l->n + 1, sizeof(*l->v));
	tap_require(l->v);
	l->v[l->n++] = (struct dent){.name = xstrdup(name), .ino = ino};
	return 0;
}

static int dent_cmp(const void *a, const void *b)
{
	return strcmp(((const struct dent *)a)->name, ((const struct dent *)b)->name);
}

static void list(struct meta *m, uint64_t dir, struct dents *ret)
{
	*ret = (struct dents){0};
	tap_require(meta_readdir(m, dir, 0, collect, ret) == 0);
	if (ret->n)
		qsort(ret->v, ret->n, sizeof(*ret->v), dent_cmp);
}

static void dents_release(struct dents *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].name);
	free(l->v);
}

struct ext_list {
	struct meta_extent v[64];
	size_t n;
};

static int collect_ext(const struct meta_extent *e, void *ud)
{
	struct ext_list *l = ud;
	tap_require(l->n < ELEMENTSOF(l->v));
	l->v[l->n++] = *e;
	return 0;
}

static int count_dirty(uint64_t off, uint64_t len, void *ud)
{
	(*(unsigned *)ud)++;
	return 0;
}

/* Why the first difference was found, for the diagnostic. */
static char why[256];

_printf_(1, 2) static bool differ(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return false;
}

static bool same_inode(struct meta *a, struct meta *b, uint64_t ino)
{
	unsigned long long n = ino;
	struct meta_inode ia, ib;
	_cleanup_buf_ struct buf xa = {0}, xb = {0};

	if (meta_inode_get(a, ino, &ia) < 0 || meta_inode_get(b, ino, &ib) < 0)
		return differ("inode %llu missing", n);
	if (!inode_eq(&ia, &ib))
		return differ("inode %llu: attributes differ", n);

	/* xattrs: the same names (in any order) with the same values */
	tap_require(meta_xattr_list(a, ino, &xa) == 0 && meta_xattr_list(b, ino, &xb) == 0);
	if (xa.len != xb.len)
		return differ("inode %llu: xattr names differ", n);
	for (size_t off = 0; off < xa.len;) {
		const char *name = (const char *)xa.data + off;
		_cleanup_free_ void *va = NULL;
		_cleanup_free_ void *vb = NULL;
		size_t la, lb;
		off += strlen(name) + 1;
		if (meta_xattr_get(a, ino, name, &va, &la) < 0 ||
		    meta_xattr_get(b, ino, name, &vb, &lb) < 0 || la != lb ||
		    (la && memcmp(va, vb, la)))
			return differ("inode %llu: xattr %s differs", n, name);
	}

	if (S_ISLNK(ia.mode)) {
		_cleanup_free_ char *ta = NULL;
		_cleanup_free_ char *tb = NULL;
		if (meta_symlink_get(a, ino, &ta) < 0 || meta_symlink_get(b, ino, &tb) < 0 ||
		    strcmp(ta, tb))
			return differ("inode %llu: symlink target differs", n);
	}
	if (S_ISREG(ia.mode)) {
		struct ext_list ea = {0}, eb = {0};
		unsigned dirty = 0;
		if (ia.size) {
			tap_require(meta_extents(a, ino, 0, ia.size, collect_ext, &ea) == 0);
			tap_require(meta_extents(b, ino, 0, ib.size, collect_ext, &eb) == 0);
		}
		if (ea.n != eb.n || !extents_eq(ea.v, eb.v, ea.n))
			return differ("inode %llu: extents differ", n);
		tap_require(meta_dirty_ranges(b, ino, count_dirty, &dirty) == 0);
		if (dirty)
			return differ("inode %llu: dirty after restore", n);
	}
	if (S_ISDIR(ia.mode)) {
		struct blob_id ta, tb;
		if (meta_tree_get(a, ino, &ta) < 0 || meta_tree_get(b, ino, &tb) < 0 ||
		    memcmp(&ta, &tb, sizeof(ta)))
			return differ("directory %llu: tree id differs or is unset", n);
	}
	return true;
}

/* Recursive on purpose: the simplest walk that is obviously right, as the reference. */
static bool same_dir(struct meta *a, struct meta *b, uint64_t dir, unsigned *n_entries)
{
	struct dents la, lb;
	bool same = same_inode(a, b, dir);

	list(a, dir, &la);
	list(b, dir, &lb);
	if (same && la.n != lb.n)
		same = differ("directory %llu: entry count differs", (unsigned long long)dir);
	for (size_t i = 0; same && i < la.n; i++) {
		struct meta_inode mi;
		if (strcmp(la.v[i].name, lb.v[i].name) || la.v[i].ino != lb.v[i].ino) {
			same = differ("directory %llu: entries differ", (unsigned long long)dir);
			break;
		}
		(*n_entries)++;
		same = same_inode(a, b, la.v[i].ino);
		if (same && meta_inode_get(a, la.v[i].ino, &mi) == 0 && S_ISDIR(mi.mode))
			same = same_dir(a, b, la.v[i].ino, n_entries);
	}
	dents_release(&la);
	dents_release(&lb);
	return same;
}

static void test_checkpoint_restore(void)
{
	struct repo r;
	struct fixture fx;
	struct blob_id root, root2, again, side3, id;
	unsigned n = 0;
	int r2;

	new_repo(&r, "main");
	struct store *s = open_repo(&r, r.cache, false);
	struct meta *m = new_meta(s);
	build(m, s, &fx);

	uint64_t before = new_blobs(s);
	is_int(tree_checkpoint(m, s, &root), 0, "checkpoint a working tree");
	is_int(new_blobs(s) - before, fx.n_dirs, "one new tree per directory (%u)", fx.n_dirs);
	bool clean = true;
	for (unsigned k = 0; k < 6; k++)
		clean = clean && meta_tree_get(m, fx.dirs[k], &id) == 0 &&
			meta_tree_get(m, fx.side[k], &id) == 0;
	ok(clean, "every directory is clean after the checkpoint");
	before = put_blobs(s);
	is_int(tree_checkpoint(m, s, &again), 0, "checkpoint again with no change");
	ok(!memcmp(&again, &root, sizeof(root)) && put_blobs(s) == before,
	   "same root, nothing put");
	tap_require(store_flush(s) == 0);

	/* Restore from a second cache directory, as after losing the first. */
	struct store *s2 = open_repo(&r, r.cache2, true);
	struct meta *m2 = new_meta(s2);
	is_int(tree_restore(m2, s2, &root), 0, "restore into a fresh meta");
	why[0] = 0;
	bool same = same_dir(m, m2, META_ROOT_INO, &n);
	ok(same, "restored tree is identical (%u entries)%s%s", n, why[0] ? ": " : "", why);
	uint64_t hl;
	struct meta_inode hi;
	ok(meta_lookup(m2, fx.dirs[2], "hl", &hl) == 0 && hl == fx.hard &&
		   meta_lookup(m2, fx.dirs[4], "hl also", &hl) == 0 && hl == fx.hard &&
		   meta_inode_get(m2, fx.hard, &hi) == 0 && hi.nlink == 2,
	   "the hard link is one inode with two entries");
	is_int(tree_checkpoint(m2, s2, &again), 0, "checkpoint of the restored tree");
	ok(!memcmp(&again, &root, sizeof(root)), "gives the same root without writing anything");
	uint64_t next = 0;
	r2 = meta_inode_create(m2, &hi, &next);
	ok(r2 == 0 && next > fx.hard, "a new inode after restore gets a fresh number (%llu)",
	   (unsigned long long)next);
	tap_require(meta_close(m2) == 0);

	/* A change deep inside rewrites only the path to it. */
	struct meta_inode fi;
	tap_require(meta_tree_get(m, fx.side[3], &side3) == 0);
	tap_require(meta_inode_get(m, fx.files[5], &fi) == 0);
	fi.mtime += 1000;
	tap_require(meta_inode_update(m, &fi) == 0);
	tap_require(meta_tree_invalidate(m, fx.dirs[5]) == 0);
	before = new_blobs(s);
	uint64_t puts = put_blobs(s);
	is_int(tree_checkpoint(m, s, &root2), 0, "checkpoint after touching d1/../d5/f");
	is_int(new_blobs(s) - before, 6, "new trees: depth + 1 = 6, not %u", fx.n_dirs);
	is_int(put_blobs(s) - puts, 6, "and only 6 trees offered to the store");
	ok(memcmp(&root, &root2, sizeof(root)), "a new root");
	ok(meta_tree_get(m, fx.side[3], &id) == 0 && !memcmp(&id, &side3, sizeof(id)),
	   "a directory off the path keeps its tree");

	/* Unflushed data. */
	tap_require(meta_dirty_add(m, fx.files[3], 0, 10) == 0);
	tap_require(meta_tree_invalidate(m, fx.dirs[3]) == 0);
	is_int(tree_checkpoint(m, s, &again), -EAGAIN, "a file with dirty ranges: -EAGAIN");
	tap_require(meta_dirty_clear(m, fx.files[3], 0, 10) == 0);
	before = new_blobs(s);
	is_int(tree_checkpoint(m, s, &again), 0, "once flushed, the checkpoint succeeds");
	ok(!memcmp(&again, &root2, sizeof(root)) && new_blobs(s) == before,
	   "with the same root and no new blob");

	/* Corrupt and hostile trees. */
	struct blob_id bad, sub, dup;
	char hex[BLOB_ID_HEX_SIZE];
	tap_require(store_put(s, BLOB_TREE, "not a tree", 10, &bad, NULL) == 0);
	hex_encode(bad.b, BLOB_ID_SIZE, hex);
	m2 = new_meta(s);
	last_error[0] = 0;
	is_int(tree_restore(m2, s, &bad), -EBADMSG, "a corrupt root tree: -EBADMSG");
	ok(strstr(last_error, hex) != NULL, "the error names the tree");
	tap_require(meta_close(m2) == 0);

	struct tree t = {.self.inode = {.ino = 50, .mode = S_IFDIR | 0755, .nlink = 2}};
	_cleanup_buf_ struct buf b = {0};
	tap_require(tree_encode(&t, &b) == 0);
	tap_require(store_put(s, BLOB_TREE, b.data, b.len, &sub, NULL) == 0);
	t = (struct tree){.self.inode = {.ino = 1, .mode = S_IFDIR | 0755, .nlink = 4}};
	add_entry(&t, "a", 50, S_IFDIR | 0755)->subtree = sub;
	add_entry(&t, "b", 50, S_IFDIR | 0755)->subtree = sub;
	buf_reset(&b);
	tap_require(tree_encode(&t, &b) == 0);
	tap_require(store_put(s, BLOB_TREE, b.data, b.len, &dup, NULL) == 0);
	m2 = new_meta(s);
	is_int(tree_restore(m2, s, &dup), -EBADMSG, "a directory with two entries: -EBADMSG");
	tap_require(meta_close(m2) == 0);

	t.entries[1].inode.ino = 51; /* "b" says 51, its tree says 50 */
	buf_reset(&b);
	tap_require(tree_encode(&t, &b) == 0);
	tap_require(store_put(s, BLOB_TREE, b.data, b.len, &dup, NULL) == 0);
	m2 = new_meta(s);
	is_int(tree_restore(m2, s, &dup), -EBADMSG, "a subtree of another inode: -EBADMSG");
	tap_require(meta_close(m2) == 0);

	memset(t.entries[1].subtree.b, 0x5a, BLOB_ID_SIZE);
	t.entries[1].inode.ino = 52;
	buf_reset(&b);
	tap_require(tree_encode(&t, &b) == 0);
	tap_require(store_put(s, BLOB_TREE, b.data, b.len, &dup, NULL) == 0);
	m2 = new_meta(s);
	is_int(tree_restore(m2, s, &dup), -ENOENT, "a missing subtree: -ENOENT");
	tap_require(meta_close(m2) == 0);
	tree_release(&t);

	/* A chunk reaching past its file's end (truncate restages instead) is refused. */
	struct meta_extent e = {.off = 0, .len = 2000, .blob = put_data(s, 2000, 77)};
	m2 = new_meta(s);
	uint64_t f = mk(m2, META_ROOT_INO, "trunc", S_IFREG | 0644, 1500);
	tap_require(meta_extents_replace(m2, f, 0, 2000, &e, 1) == 0);
	last_error[0] = 0;
	is_int(tree_checkpoint(m2, s, &again), -EBADMSG, "an extent past the size: -EBADMSG");
	snprintf(hex, sizeof(hex), "inode %llu:", (unsigned long long)f);
	ok(strstr(last_error, hex) != NULL, "the error names the file");
	tap_require(meta_close(m2) == 0);

	tap_require(meta_close(m) == 0);
	tap_require(store_close(s2) == 0);
	tap_require(store_close(s) == 0);
}

/*
 * Checkpoint and restore on a thread with a small stack: a walk that recursed once per level
 * would need far more than this for 3000 levels, so passing proves the walks keep their
 * depth on the heap.
 */
#define SMALL_STACK (256 * 1024)

struct call {
	bool restore;
	struct meta *m;
	struct store *s;
	struct blob_id root;
	int r;
};

static void *call_thread(void *p)
{
	struct call *c = p;
	c->r = c->restore ? tree_restore(c->m, c->s, &c->root)
			  : tree_checkpoint(c->m, c->s, &c->root);
	return NULL;
}

static int on_small_stack(bool restore, struct meta *m, struct store *s, struct blob_id *root)
{
	struct call c = {.restore = restore, .m = m, .s = s, .root = *root};
	pthread_attr_t a;
	pthread_t t;
	tap_require(pthread_attr_init(&a) == 0);
	tap_require(pthread_attr_setstacksize(&a, SMALL_STACK) == 0);
	tap_require(pthread_create(&t, &a, call_thread, &c) == 0);
	tap_require(pthread_join(t, NULL) == 0);
	pthread_attr_destroy(&a);
	*root = c.root;
	return c.r;
}

/* A chain 3000 directories deep. */
static void test_deep(void)
{
	enum { DEPTH = 3000 };
	struct repo r;
	struct blob_id root = {{0}}, again;
	uint64_t d = META_ROOT_INO;
	unsigned n = 0;

	new_repo(&r, "deep");
	struct store *s = open_repo(&r, r.cache, false);
	struct meta *m = new_meta(s);
	for (unsigned k = 0; k < DEPTH; k++)
		d = mk(m, d, k % 2 ? "a deeper level" : "d", S_IFDIR | 0755, 0);
	mk_file(m, s, d, "bottom", 9);
	tap_require(meta_sync(m) == 0);

	uint64_t before = new_blobs(s);
	is_int(on_small_stack(false, m, s, &root), 0,
	       "checkpoint a chain %d directories deep on a %d KiB stack", DEPTH,
	       SMALL_STACK / 1024);
	is_int(new_blobs(s) - before, DEPTH + 1, "one tree per level");
	tap_require(store_flush(s) == 0);

	struct store *s2 = open_repo(&r, r.cache2, true);
	struct meta *m2 = new_meta(s2);
	is_int(on_small_stack(true, m2, s2, &root), 0, "restore it on a %d KiB stack",
	       SMALL_STACK / 1024);
	why[0] = 0;
	bool same = same_dir(m, m2, META_ROOT_INO, &n);
	ok(same, "identical (%u entries)%s%s", n, why[0] ? ": " : "", why);
	is_int(n, DEPTH + 1, "every level and the bottom file");
	is_int(tree_checkpoint(m2, s2, &again), 0, "checkpoint the restored chain");
	ok(!memcmp(&again, &root, sizeof(root)), "same root");

	/* Touch the bottom: every level is on the path. */
	struct meta_inode di;
	tap_require(meta_inode_get(m, d, &di) == 0);
	di.atime++;
	tap_require(meta_inode_update(m, &di) == 0);
	tap_require(meta_tree_invalidate(m, d) == 0);
	before = new_blobs(s);
	is_int(tree_checkpoint(m, s, &again), 0, "checkpoint after touching the bottom");
	is_int(new_blobs(s) - before, DEPTH + 1, "the whole path is rewritten");

	tap_require(meta_close(m2) == 0);
	tap_require(meta_close(m) == 0);
	tap_require(store_close(s2) == 0);
	tap_require(store_close(s) == 0);
}

int main(void)
{
	plan_lazy();
	log_set_sink(capture);
	tap_require(codec_global_init() == 0);
	const char *tmp = getenv("TMPDIR");
	snprintf(scratch, sizeof(scratch), "%s/cairn-test-tree-XXXXXX", tmp ? tmp : "/tmp");
	tap_require(mkdtemp(scratch));

	test_round_trip();
	test_limits();
	test_hostile_counts();
	test_checkpoint_restore();
	test_deep();

	rm_rf(scratch);
	return tap_done();
}
