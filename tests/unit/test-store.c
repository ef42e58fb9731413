/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The block store end to end on a local directory: round trips, dedup, the order of writes
 * under a crash at every write, corruption of each kind of object named in the error, index
 * rebuild from segments and from pack trailers, the lock, and upload failures that lose
 * nothing.
 */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>

#include "store.h"
#include "tap.h"

/* Every error logged since the test last cleared it, one per line. */
static char last_error[8192];
static void capture(enum log_level level, const char *msg)
{
	size_t n = strlen(last_error);
	if (level <= LOG_ERR && n < sizeof(last_error) - 1)
		snprintf(last_error + n, sizeof(last_error) - n, "%s\n", msg);
}

static const char pass[] = "correct horse";
static char scratch[256];
static int n_repo;

struct repo {
	char dir[300], cache[300];
	bool encrypted; /* a passphrase goes only to an encrypted repository */
};

static void new_repo(struct repo *r, bool encrypted)
{
	struct backend *b;
	uint8_t id[REPO_ID_SIZE];
	struct store_create_options o = {.encrypted = encrypted,
					 .passphrase = pass,
					 .passlen = strlen(pass),
					 .kdf = KDF_TEST,
					 .pack_size = 256 * 1024};
	r->encrypted = encrypted;
	snprintf(r->dir, sizeof(r->dir), "%s/repo%d", scratch, n_repo);
	snprintf(r->cache, sizeof(r->cache), "%s/cache%d", scratch, n_repo++);
	tap_require(backend_local_open(r->dir, true, &b) == 0);
	tap_require(store_create(b, &o, id) == 0);
	backend_free(b);
}

static int open_repo(const struct repo *r, struct backend *b, bool ro, bool brk, struct store **s)
{
	struct store_options o = {.cache_dir = r->cache,
				  .passphrase = r->encrypted ? pass : NULL,
				  .passlen = strlen(pass),
				  .read_only = ro,
				  .break_lock = brk};
	if (!b)
		tap_require(backend_local_open(r->dir, false, &b) == 0);
	return store_open(b, &o, s);
}

static void fill(uint8_t *p, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		p[i] = (uint8_t)(seed >> 56);
	}
}

/* Lengths spread over 1000..19999 bytes, so a generation spans several packs. */
static size_t blob_len(uint64_t seed, unsigned i)
{
	return 1000 + (size_t)((seed * 7919 + i * 104729ull) % 19000);
}

/* Put n data blobs derived from seed and a tree listing them; return the tree's id. */
static int put_generation(struct store *s, unsigned n, uint64_t seed, struct blob_id *ret_root)
{
	_cleanup_buf_ struct buf tree = {0};
	uint8_t data[20000];
	for (unsigned i = 0; i < n; i++) {
		struct blob_id id;
		size_t len = blob_len(seed, i);
		fill(data, len, seed * 1000 + i);
		int r = store_put(s, BLOB_DATA, data, len, &id, NULL);
		if (r < 0)
			return r;
		if (buf_append(&tree, id.b, BLOB_ID_SIZE) < 0)
			return -ENOMEM;
	}
	return store_put(s, BLOB_TREE, tree.data, tree.len, ret_root, NULL);
}

/* Everything reachable from root reads back with the expected bytes. */
static bool verify_generation(struct store *s, const struct blob_id *root, unsigned n,
			      uint64_t seed)
{
	_cleanup_buf_ struct buf tree = {0};
	uint8_t want[20000];
	if (store_get(s, BLOB_TREE, root, &tree) < 0 || tree.len != (size_t)n * BLOB_ID_SIZE)
		return false;
	for (unsigned i = 0; i < n; i++) {
		_cleanup_buf_ struct buf got = {0};
		struct blob_id id;
		size_t len = blob_len(seed, i);
		memcpy(id.b, tree.data + (size_t)i * BLOB_ID_SIZE, BLOB_ID_SIZE);
		fill(want, len, seed * 1000 + i);
		if (store_get(s, BLOB_DATA, &id, &got) < 0 || got.len != len ||
		    memcmp(got.data, want, len))
			return false;
	}
	return true;
}

static int commit_root(struct store *s, const struct blob_id *root)
{
	struct commit c = {.has_root = true, .root = *root};
	int r = store_commit(s, &c);
	commit_release(&c);
	return r;
}

static bool head_verifies(struct store *s, unsigned n, uint64_t seed, uint64_t *ret_seq)
{
	struct commit c;
	if (store_head(s, &c) < 0)
		return false;
	*ret_seq = c.seq;
	bool ok_ = c.has_root && verify_generation(s, &c.root, n, seed);
	commit_release(&c);
	return ok_;
}

static int rm_cb(const char *p, const struct stat *st, int type, struct FTW *f)
{
	return remove(p);
}

static void rm_rf(const char *p)
{
	nftw(p, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void test_round_trip(bool encrypted)
{
	struct repo r;
	struct store *s;
	struct blob_id root, id1, id2;
	bool fresh;
	uint64_t seq;
	const char *mode = encrypted ? "encrypted" : "plaintext";

	new_repo(&r, encrypted);
	is_int(open_repo(&r, NULL, false, false, &s), 0, "%s: open", mode);
	is_int(put_generation(s, 40, 1, &root), 0, "%s: put 40 blobs", mode);
	ok(verify_generation(s, &root, 40, 1), "%s: readable before upload", mode);

	uint8_t blob[5000];
	fill(blob, sizeof(blob), 77);
	store_put(s, BLOB_DATA, blob, sizeof(blob), &id1, &fresh);
	ok(fresh, "%s: a new blob is new", mode);
	store_put(s, BLOB_DATA, blob, sizeof(blob), &id2, &fresh);
	ok(!fresh && !memcmp(id1.b, id2.b, BLOB_ID_SIZE), "%s: the same blob dedups", mode);
	struct store_stats st;
	store_get_stats(s, &st);
	is_int(st.new_blobs, 42, "%s: 40 data + 1 tree + 1 new", mode);

	is_int(commit_root(s, &root), 0, "%s: commit", mode);
	ok(verify_generation(s, &root, 40, 1), "%s: readable after upload", mode);
	is_int(store_close(s), 0, "%s: close", mode);

	is_int(open_repo(&r, NULL, false, false, &s), 0, "%s: reopen", mode);
	ok(head_verifies(s, 40, 1, &seq) && seq == 1, "%s: head is commit 1 and verifies", mode);
	store_put(s, BLOB_DATA, blob, sizeof(blob), &id2, &fresh);
	ok(!fresh, "%s: dedup across sessions", mode);
	store_close(s);

	/* Losing the cache loses nothing: the index comes back from segments. */
	rm_rf(r.cache);
	is_int(open_repo(&r, NULL, false, false, &s), 0, "%s: open with a wiped cache", mode);
	ok(head_verifies(s, 40, 1, &seq), "%s: rebuilt from index segments", mode);
	store_close(s);

	/* And without segments, from the packs' trailers. */
	char cmd[700];
	rm_rf(r.cache);
	snprintf(cmd, sizeof(cmd), "rm -rf %s/index", r.dir);
	tap_require(system(cmd) == 0);
	is_int(open_repo(&r, NULL, false, false, &s), 0, "%s: open without segments", mode);
	ok(head_verifies(s, 40, 1, &seq), "%s: rebuilt from pack trailers", mode);
	store_close(s);
}

/* Find some pack file of a repository. */
static bool find_pack(const char *dir, char *out, size_t len)
{
	char d[400];
	snprintf(d, sizeof(d), "%.380s/data", dir);
	DIR *top = opendir(d);
	struct dirent *a, *b;
	bool found = false;
	while (top && !found && (a = readdir(top))) {
		if (a->d_name[0] == '.')
			continue;
		char sub[700];
		snprintf(sub, sizeof(sub), "%.400s/%.255s", d, a->d_name);
		DIR *dd = opendir(sub);
		while (dd && !found && (b = readdir(dd)))
			if (b->d_name[0] != '.') {
				snprintf(out, len, "%.500s/%.255s", sub, b->d_name);
				found = true;
			}
		if (dd)
			closedir(dd);
	}
	if (top)
		closedir(top);
	return found;
}

static void flip_byte(const char *path, off_t off)
{
	chmod(path, 0644); /* objects are stored read-only */
	int fd = open(path, O_RDWR);
	uint8_t c;
	tap_require(fd >= 0 && pread(fd, &c, 1, off) == 1);
	c ^= 0x10;
	tap_require(pwrite(fd, &c, 1, off) == 1);
	close(fd);
}

static void test_corruption(void)
{
	struct repo r;
	struct store *s;
	struct blob_id root;
	char pack[800], path[400];
	uint64_t seq;
	struct stat st;

	new_repo(&r, true);
	tap_require(open_repo(&r, NULL, false, false, &s) == 0);
	tap_require(put_generation(s, 10, 2, &root) == 0);
	tap_require(commit_root(s, &root) == 0);
	store_close(s);

	/* A flipped bit in a blob: an error naming blob and pack, never data. */
	tap_require(find_pack(r.dir, pack, sizeof(pack)));
	flip_byte(pack, 100);
	tap_require(open_repo(&r, NULL, true, false, &s) == 0);
	last_error[0] = 0;
	ok(!head_verifies(s, 10, 2, &seq), "corrupt pack: reading fails");
	ok(strstr(last_error, "corrupt") && strstr(last_error, "data/"),
	   "corrupt pack: error names the pack: %s", last_error);
	store_close(s);
	flip_byte(pack, 100);

	/* A truncated pack. */
	chmod(pack, 0644);
	tap_require(stat(pack, &st) == 0 && truncate(pack, st.st_size - 5000) == 0);
	tap_require(open_repo(&r, NULL, true, false, &s) == 0);
	last_error[0] = 0;
	ok(!head_verifies(s, 10, 2, &seq), "truncated pack: reading fails");
	ok(strstr(last_error, "data/") != NULL, "truncated pack: named: %s", last_error);
	store_close(s);
	rm_rf(r.cache);
	last_error[0] = 0;
	tap_require(open_repo(&r, NULL, true, false, &s) == 0);
	ok(strstr(last_error, "data/") != NULL, "truncated pack found by rebuild: %s", last_error);
	ok(!head_verifies(s, 10, 2, &seq), "truncated pack: its blobs are not served");
	store_close(s);

	/* A corrupt commit is an error naming it, not a silent fallback. */
	snprintf(path, sizeof(path), "%s/commits/%020d", r.dir, 1);
	flip_byte(path, 30);
	tap_require(open_repo(&r, NULL, true, false, &s) == 0);
	struct commit c;
	last_error[0] = 0;
	is_int(store_head(s, &c), -EBADMSG, "corrupt commit: -EBADMSG");
	ok(strstr(last_error, "commits/00000000000000000001") != NULL, "corrupt commit named: %s",
	   last_error);
	store_close(s);
	flip_byte(path, 30);

	/* Config and key. */
	snprintf(path, sizeof(path), "%s/config", r.dir);
	flip_byte(path, 60);
	last_error[0] = 0;
	is_int(open_repo(&r, NULL, true, false, &s), -EBADMSG, "corrupt config: -EBADMSG");
	ok(strstr(last_error, "config") != NULL, "corrupt config named: %s", last_error);
	flip_byte(path, 60);

	char kdir[400], kpath[800];
	snprintf(kdir, sizeof(kdir), "%s/keys", r.dir);
	DIR *d = opendir(kdir);
	struct dirent *e;
	while ((e = readdir(d)) && e->d_name[0] == '.')
		;
	snprintf(kpath, sizeof(kpath), "%s/%s", kdir, e->d_name);
	closedir(d);
	flip_byte(kpath, 50);
	last_error[0] = 0;
	is_int(open_repo(&r, NULL, true, false, &s), -EBADMSG, "corrupt key: -EBADMSG");
	ok(strstr(last_error, "keys/") != NULL, "corrupt key named: %s", last_error);
	flip_byte(kpath, 50);
	is_int(open_repo(&r, NULL, true, false, &s), 0, "restored repository opens");
	store_close(s);
}

static void test_passphrase_and_lock(void)
{
	struct repo r;
	struct store *s, *s2;
	struct backend *b;

	new_repo(&r, true);
	struct store_options o = {.cache_dir = r.cache, .passphrase = "wrong", .passlen = 5};
	tap_require(backend_local_open(r.dir, false, &b) == 0);
	last_error[0] = 0;
	is_int(store_open(b, &o, &s), -EACCES, "wrong passphrase: -EACCES");
	ok(strstr(last_error, "wrong passphrase") != NULL, "says so: %s", last_error);
	o.passphrase = NULL;
	tap_require(backend_local_open(r.dir, false, &b) == 0);
	is_int(store_open(b, &o, &s), -EACCES, "no passphrase: -EACCES");

	tap_require(open_repo(&r, NULL, false, false, &s) == 0);
	last_error[0] = 0;
	is_int(open_repo(&r, NULL, false, false, &s2), -EBUSY, "second writer: -EBUSY");
	ok(strstr(last_error, "pid") != NULL, "names the holder: %s", last_error);
	is_int(open_repo(&r, NULL, true, false, &s2), 0, "a reader may open while locked");
	store_close(s2);
	store_close(s);
	is_int(open_repo(&r, NULL, false, false, &s), 0, "lock released at close");
	store_close(s);

	tap_require(backend_local_open(r.dir, false, &b) == 0);
	struct store_create_options co = {
		.encrypted = true, .passphrase = "x", .passlen = 1, .kdf = KDF_TEST};
	uint8_t id[REPO_ID_SIZE];
	is_int(store_create(b, &co, id), -EEXIST, "mkfs refuses an existing repository");
	backend_free(b);
	char other[400];
	snprintf(other, sizeof(other), "%s/notempty", scratch);
	tap_require(mkdir(other, 0700) == 0);
	snprintf(other + strlen(other), sizeof(other) - strlen(other), "/file");
	tap_require(close(open(other, O_CREAT | O_WRONLY, 0600)) == 0);
	snprintf(other, sizeof(other), "%s/notempty", scratch);
	tap_require(backend_local_open(other, false, &b) == 0);
	is_int(store_create(b, &co, id), -ENOTEMPTY, "mkfs refuses a non-empty directory");
	backend_free(b);
}

/*
 * Rule 1 of DESIGN.md: a crash at any write leaves the previous commit whole. Generation 1 is
 * committed; generation 2 is written with the process "dying" after k puts, for every k until
 * the commit lands. After each crash the repository is reopened as after a restart.
 */
static void test_crash_points(void)
{
	struct repo r;
	struct store *s;
	struct blob_id root1, root2;
	unsigned k;
	bool all_ok = true, saw_old = false, saw_new = false;

	new_repo(&r, true);
	tap_require(open_repo(&r, NULL, false, false, &s) == 0);
	tap_require(put_generation(s, 30, 3, &root1) == 0);
	tap_require(commit_root(s, &root1) == 0);
	store_close(s);

	log_set_max_level(0); /* the crashes are expected to complain */
	for (k = 0; k < 64; k++) {
		struct backend *inner, *fault;
		tap_require(backend_local_open(r.dir, false, &inner) == 0);
		tap_require(backend_fault_new(inner, &fault) == 0);
		tap_require(open_repo(&r, fault, false, true, &s) == 0);
		backend_fault_crash_after_puts(fault, k);
		int pr = put_generation(s, 120, 4 + k, &root2);
		int cr = pr < 0 ? pr : commit_root(s, &root2);
		diag("crash after %u puts: put %d, commit %d", k, pr, cr);
		store_close(s);

		/* Restart: a reader sees commit 1 whole, or commit 2 whole. */
		tap_require(open_repo(&r, NULL, false, true, &s) == 0);
		struct commit c;
		bool good = store_head(s, &c) == 0;
		if (good && c.seq >= 2 && !memcmp(c.root.b, root2.b, BLOB_ID_SIZE)) {
			good = verify_generation(s, &c.root, 120, 4 + k);
			saw_new = true;
		} else if (good) {
			good = verify_generation(s, &c.root, 30, 3);
			saw_old = true;
		}
		commit_release(&c);
		if (!good) {
			diag("crash after %u puts: head does not verify", k);
			all_ok = false;
		}
		/* Later generations must still be able to commit on top. */
		struct blob_id again;
		if (put_generation(s, 5, 999, &again) < 0 || commit_root(s, &again) < 0) {
			diag("crash after %u puts: cannot commit afterwards", k);
			all_ok = false;
		}
		/* Put generation 1 back as head so the next round starts alike. */
		if (commit_root(s, &root1) < 0)
			all_ok = false;
		store_close(s);
		if (cr == 0)
			break;
	}
	log_set_max_level(LOG_INFO);
	ok(all_ok, "every crash point leaves a whole commit (%u crash points)", k);
	ok(saw_old && saw_new, "both outcomes were exercised");
}

static void test_upload_failure(void)
{
	struct repo r;
	struct store *s;
	struct backend *inner, *fault;
	struct blob_id root;
	uint64_t seq;

	new_repo(&r, true);
	tap_require(backend_local_open(r.dir, false, &inner) == 0);
	tap_require(backend_fault_new(inner, &fault) == 0);
	tap_require(open_repo(&r, fault, false, false, &s) == 0);
	backend_fault_fail(fault, BACKEND_OP_PUT, "data/", -EIO, 1);
	log_set_max_level(0);
	tap_require(put_generation(s, 20, 5, &root) == 0);
	int r1 = commit_root(s, &root);
	log_set_max_level(LOG_INFO);
	is_int(r1, -EIO, "a failing pack upload fails the commit");
	ok(verify_generation(s, &root, 20, 5), "the data stays readable meanwhile");
	is_int(commit_root(s, &root), 0, "the next commit retries and succeeds");
	store_close(s);
	tap_require(open_repo(&r, NULL, true, false, &s) == 0);
	ok(head_verifies(s, 20, 5, &seq), "nothing was lost");
	store_close(s);
}

struct thread_arg {
	struct store *s;
	unsigned t;
	int r;
};

static void *put_thread(void *p)
{
	struct thread_arg *a = p;
	uint8_t data[4000];
	for (unsigned i = 0; i < 300 && a->r >= 0; i++) {
		struct blob_id id;
		/* Half the blobs are shared between threads. */
		uint64_t seed = i % 2 ? 100000 + i : a->t * 1000 + i;
		fill(data, sizeof(data), seed);
		a->r = store_put(a->s, BLOB_DATA, data, sizeof(data), &id, NULL);
	}
	return NULL;
}

static void test_threads(void)
{
	struct repo r;
	struct store *s;
	pthread_t th[4];
	struct thread_arg a[4];
	struct store_stats st;

	new_repo(&r, true);
	tap_require(open_repo(&r, NULL, false, false, &s) == 0);
	for (unsigned t = 0; t < 4; t++) {
		a[t] = (struct thread_arg){.s = s, .t = t};
		pthread_create(&th[t], NULL, put_thread, &a[t]);
	}
	bool all = true;
	for (unsigned t = 0; t < 4; t++) {
		pthread_join(th[t], NULL);
		all = all && a[t].r >= 0;
	}
	ok(all, "4 threads put concurrently");
	is_int(store_flush(s), 0, "flush");
	store_get_stats(s, &st);
	is_int(st.new_blobs, 4 * 150 + 150, "each distinct blob stored once");
	bool readable = true;
	for (unsigned t = 0; t < 4; t++)
		for (unsigned i = 0; i < 300; i++) {
			uint8_t want[4000];
			struct blob_id id;
			_cleanup_buf_ struct buf got = {0};
			fill(want, sizeof(want), i % 2 ? 100000 + i : t * 1000 + i);
			struct codec *c = (struct codec *)store_codec(s);
			codec_blob_id(c, BLOB_DATA, want, sizeof(want), &id);
			if (store_get(s, BLOB_DATA, &id, &got) < 0 || got.len != sizeof(want) ||
			    memcmp(got.data, want, sizeof(want)))
				readable = false;
		}
	ok(readable, "every blob reads back");
	store_close(s);
}

int main(void)
{
	plan_lazy();
	log_set_sink(capture);
	const char *tmp = getenv("TMPDIR");
	snprintf(scratch, sizeof(scratch), "%s/cairn-test-store-XXXXXX", tmp ? tmp : "/tmp");
	tap_require(mkdtemp(scratch));

	test_round_trip(true);
	test_round_trip(false);
	test_corruption();
	test_passphrase_and_lock();
	test_crash_points();
	test_upload_failure();
	test_threads();

	rm_rf(scratch);
	return tap_done();
}
