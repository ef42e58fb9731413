/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Backend tests: the conformance routine (backend_conformance.h) against the mem and local
 * backends and the fault wrapper around each, then what only one backend has: the fault
 * wrapper's failures, crash point and bit flips, and the local backend's files on disk (whole
 * objects, no temporary files left behind, even when a write fails) and its open errors.
 * Set CAIRN_TEST_VERBOSE to see the backends' log messages on stderr.
 */
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "backend.h"
#include "backend_conformance.h"
#include "tap.h"

static unsigned log_errors;
static bool log_verbose;

/* Count error messages (to check that a failure is logged once) and keep stderr quiet. */
static void test_sink(enum log_level level, const char *msg)
{
	if (level <= LOG_ERR)
		__atomic_add_fetch(&log_errors, 1, __ATOMIC_RELAXED);
	if (log_verbose)
		fprintf(stderr, "log<%d>: %s\n", (int)level, msg);
}

static unsigned log_errors_now(void)
{
	return __atomic_load_n(&log_errors, __ATOMIC_RELAXED);
}

__attribute__((format(printf, 2, 3))) static void skip(const char *reason, const char *fmt, ...)
{
	va_list ap;

	tap_n++;
	printf("ok %d - ", tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(" # SKIP %s\n", reason);
	fflush(stdout);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	if (flag == FTW_DP)
		return rmdir(path) < 0 ? -errno : 0;
	return unlink(path) < 0 ? -errno : 0;
}

static int rm_rf(const char *path)
{
	return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Count files below dir whose names mark them as temporary ('~', never in a key). */
static unsigned tmp_count;
static int count_tmp(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	if (strchr(path + ftw->base, '~'))
		tmp_count++;
	return 0;
}

static unsigned tmp_files(const char *dir)
{
	tmp_count = 0;
	tap_require(nftw(dir, count_tmp, 16, FTW_PHYS) == 0);
	return tmp_count;
}

static char *path_join(const char *a, const char *b)
{
	char *p;

	tap_require(asprintf(&p, "%s/%s", a, b) >= 0);
	return p;
}

static struct backend *fault_wrap(struct backend *inner)
{
	struct backend *f = NULL;

	tap_require(backend_fault_new(inner, &f) == 0);
	return f;
}

static void run_conformance(const char *base)
{
	_cleanup_free_ char *p1 = path_join(base, "conf-local");
	_cleanup_free_ char *p2 = path_join(base, "conf-fault-local");
	struct backend *b = NULL;

	tap_require(backend_mem_new(&b) == 0);
	backend_conformance(b, "mem");
	backend_free(b);

	tap_require(backend_local_open(p1, true, &b) == 0);
	backend_conformance(b, "local");
	backend_free(b);
	is_int(tmp_files(p1), 0, "local: no temporary files left after the conformance run");

	tap_require(backend_mem_new(&b) == 0);
	b = fault_wrap(b);
	backend_conformance(b, "fault(mem)");
	backend_free(b);

	tap_require(backend_local_open(p2, true, &b) == 0);
	b = fault_wrap(b);
	backend_conformance(b, "fault(local)");
	backend_free(b);
	is_int(tmp_files(p2), 0, "fault(local): no temporary files left");
}

/* --- the fault wrapper --- */

static int count_cb(const char *key, uint64_t size, void *userdata)
{
	(*(unsigned *)userdata)++;
	return 0;
}

static void test_fault_fail(void)
{
	struct backend *inner = NULL, *f;
	struct buf got = {0};
	unsigned calls, n = 0;
	uint64_t size;

	tap_require(backend_mem_new(&inner) == 0);
	f = fault_wrap(inner);
	ok(strstr(f->location, inner->location) != NULL, "fault: location names the inner one");

	calls = backend_fault_calls(f, BACKEND_OP_PUT);
	backend_fault_fail(f, BACKEND_OP_PUT, "data/", -EIO, 2);
	is_int(backend_put(f, "data/1", "a", 1, 0), -EIO, "fault: first matching put fails");
	is_int(backend_put(f, "meta/1", "a", 1, 0), 0, "fault: a put of another prefix passes");
	is_int(backend_put(f, "data/2", "a", 1, 0), -EIO, "fault: second matching put fails");
	is_int(backend_put(f, "data/3", "a", 1, 0), 0, "fault: the third passes");
	is_int(backend_head(inner, "data/1", &size), -ENOENT, "fault: failed puts do not land");
	is_int(backend_head(inner, "data/2", &size), -ENOENT, "fault: ... neither of them");
	is_int(backend_head(inner, "data/3", &size), 0, "fault: passed puts land");
	is_int(backend_fault_calls(f, BACKEND_OP_PUT) - calls, 4, "fault: four puts counted");

	backend_fault_fail(f, BACKEND_OP_GET, NULL, -ETIMEDOUT, 1);
	is_int(backend_get(f, "meta/1", 0, BACKEND_WHOLE, &got), -ETIMEDOUT,
	       "fault: get with any key fails with the armed error");
	is_int(got.len, 0, "fault: ... returning nothing");
	is_int(backend_get(f, "meta/1", 0, BACKEND_WHOLE, &got), 0, "fault: the next get passes");
	is_int(got.len, 1, "fault: ... with the data");

	/* For list, the rule's prefix is matched against the listing's prefix. */
	backend_fault_fail(f, BACKEND_OP_LIST, "data/", -EACCES, 1);
	is_int(backend_list(f, "", count_cb, &n), 0, "fault: list \"\" does not match \"data/\"");
	is_int(backend_list(f, "data/", count_cb, &n), -EACCES, "fault: list \"data/\" fails");
	is_int(backend_list(f, "data/", count_cb, &n), 0, "fault: ... once");

	backend_fault_fail(f, BACKEND_OP_HEAD, "meta/", -ENOSPC, 1);
	backend_fault_fail(f, BACKEND_OP_HEAD, NULL, -EIO, 1);
	is_int(backend_head(f, "data/3", &size), -EIO, "fault: rules are matched in order (1)");
	is_int(backend_head(f, "meta/1", &size), -ENOSPC, "fault: rules are matched in order (2)");
	is_int(backend_head(f, "meta/1", &size), 0, "fault: both consumed");

	backend_fault_fail(f, BACKEND_OP_DEL, NULL, -EACCES, 5);
	is_int(backend_del(f, "meta/1"), -EACCES, "fault: delete fails when armed");
	backend_fault_reset(f);
	is_int(backend_del(f, "meta/1"), 0, "fault: reset disarms it");
	is_int(backend_fault_calls(f, BACKEND_OP_DEL), 2, "fault: calls survive reset");
	is_int(backend_fault_calls(f, BACKEND_OP_HEAD), 3, "fault: failed calls are counted too");
	buf_release(&got);
	backend_free(f);
}

static void test_fault_crash(void)
{
	struct backend *inner = NULL, *f;
	struct buf got = {0};
	unsigned n = 0;
	uint64_t size;

	tap_require(backend_mem_new(&inner) == 0);
	f = fault_wrap(inner);

	backend_fault_crash_after_puts(f, 1);
	is_int(backend_put(f, "c/1", "1", 1, 0), 0, "crash: the one allowed put lands");
	is_int(backend_put(f, "c/2", "2", 1, 0), -EIO, "crash: the next put fails");
	is_int(backend_head(inner, "c/2", &size), -ENOENT, "crash: ... and never reached inner");
	is_int(backend_head(inner, "c/1", &size), 0, "crash: the put before it is in inner");
	is_int(backend_get(f, "c/1", 0, BACKEND_WHOLE, &got), -EIO, "crash: get fails after");
	is_int(backend_head(f, "c/1", &size), -EIO, "crash: head fails after");
	is_int(backend_del(f, "c/1"), -EIO, "crash: delete fails after");
	is_int(backend_list(f, "", count_cb, &n), -EIO, "crash: list fails after");
	is_int(backend_put(f, "c/3", "3", 1, 0), -EIO, "crash: puts keep failing");
	is_int(backend_head(inner, "c/3", &size), -ENOENT, "crash: ... without reaching inner");
	is_int(backend_head(inner, "c/1", &size), 0, "crash: delete did not reach inner");
	backend_fault_reset(f);
	is_int(backend_get(f, "c/1", 0, BACKEND_WHOLE, &got), 0, "crash: reset revives it");

	backend_fault_crash_after_puts(f, 0);
	is_int(backend_put(f, "c/4", "4", 1, 0), -EIO, "crash: after 0 puts fails the next put");
	is_int(backend_head(inner, "c/4", &size), -ENOENT, "crash: ... which never lands");
	backend_fault_reset(f);

	/* Only successful puts count towards the crash point. */
	backend_fault_crash_after_puts(f, 1);
	backend_fault_fail(f, BACKEND_OP_PUT, NULL, -EIO, 1);
	is_int(backend_put(f, "c/5", "5", 1, 0), -EIO, "crash: an injected failure");
	is_int(backend_put(f, "c/6", "6", 1, 0), 0, "crash: ... does not count as a put");
	is_int(backend_put(f, "c/7", "7", 1, 0), -EIO, "crash: then the crash point is hit");
	backend_fault_reset(f);
	backend_fault_crash_after_puts(f, 1);
	is_int(backend_put(f, "c//8", "8", 1, 0), -EINVAL, "crash: a put inner refuses");
	is_int(backend_put(f, "c/9", "9", 1, 0), 0, "crash: ... does not count as a put");
	is_int(backend_put(f, "c/10", "x", 1, 0), -EIO, "crash: then the crash point is hit");
	backend_fault_reset(f);

	buf_release(&got);
	backend_free(f);
}

/* How many bits differ, and where the first differing byte is. */
static unsigned bit_diff(const uint8_t *a, const uint8_t *b, size_t n, size_t *ret_at)
{
	unsigned bits = 0;

	for (size_t i = 0; i < n; i++) {
		if (a[i] != b[i] && bits == 0)
			*ret_at = i;
		bits += (unsigned)__builtin_popcount(a[i] ^ b[i]);
	}
	return bits;
}

static void test_fault_flip(void)
{
	struct backend *inner = NULL, *f;
	struct buf got = {0};
	uint8_t data[16];
	size_t at = SIZE_MAX;

	tap_require(backend_mem_new(&inner) == 0);
	f = fault_wrap(inner);
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(0x30 + i);
	tap_require(backend_put(f, "f/k", data, sizeof(data), 0) == 0);
	tap_require(backend_put(f, "f/other", data, sizeof(data), 0) == 0);

	backend_fault_flip_on_get(f, "f/k", 5);
	is_int(backend_get(f, "f/other", 0, BACKEND_WHOLE, &got), 0, "flip: get another key");
	ok(conf_eq(&got, 0, data, sizeof(data)), "flip: ... is untouched");
	buf_reset(&got);
	is_int(backend_get(f, "f/k", 0, 5, &got), 0, "flip: get a range not covering offset 5");
	ok(conf_eq(&got, 0, data, 5), "flip: ... is untouched");
	buf_reset(&got);
	is_int(backend_get(f, "f/k", 6, BACKEND_WHOLE, &got), 0, "flip: get a range after it");
	ok(conf_eq(&got, 0, data + 6, sizeof(data) - 6), "flip: ... is untouched");

	buf_reset(&got);
	tap_require(buf_append(&got, "zz", 2) == 0);
	is_int(backend_get(f, "f/k", 3, 10, &got), 0, "flip: get a range covering offset 5");
	ok(got.len == 12 && memcmp(got.data, "zz", 2) == 0, "flip: ... appended after the prefix");
	is_int(bit_diff(got.data + 2, data + 3, 10, &at), 1, "flip: exactly one bit differs");
	is_int(at, 2, "flip: ... in the byte at offset 5");
	is_int(got.data[2 + 2] ^ data[5], 1, "flip: ... and it is bit 0");

	buf_reset(&got);
	is_int(backend_get(f, "f/k", 0, BACKEND_WHOLE, &got), 0, "flip: get again");
	ok(conf_eq(&got, 0, data, sizeof(data)), "flip: ... is untouched (it flips once)");
	buf_reset(&got);
	is_int(backend_get(inner, "f/k", 0, BACKEND_WHOLE, &got), 0, "flip: get from inner");
	ok(conf_eq(&got, 0, data, sizeof(data)), "flip: ... the stored object was never changed");

	backend_fault_flip_on_get(f, "f/k", 0);
	backend_fault_reset(f);
	buf_reset(&got);
	is_int(backend_get(f, "f/k", 0, BACKEND_WHOLE, &got), 0, "flip: get after reset");
	ok(conf_eq(&got, 0, data, sizeof(data)), "flip: ... reset disarmed the flip");

	buf_release(&got);
	backend_free(f);
}

/* --- the local backend on disk --- */

static bool file_is(const char *path, const void *data, size_t len)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	uint8_t tmp[256];
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size != len ||
	    len > sizeof(tmp))
		return false;
	return read(fd, tmp, sizeof(tmp)) == (ssize_t)len && memcmp(tmp, data, len) == 0;
}

static void test_local_open(const char *base)
{
	_cleanup_free_ char *missing = path_join(base, "missing");
	_cleanup_free_ char *deep = path_join(base, "no/such");
	_cleanup_free_ char *file = path_join(base, "file");
	_cleanup_free_ char *made = path_join(base, "made");
	struct backend *b = NULL;
	struct stat st;
	int fd;

	is_int(backend_local_open(missing, false, &b), -ENOENT, "local: open missing is -ENOENT");
	is_int(backend_local_open(deep, true, &b), -ENOENT,
	       "local: create below a missing directory is -ENOENT");
	fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	tap_require(fd >= 0);
	close(fd);
	is_int(backend_local_open(file, false, &b), -ENOTDIR, "local: open a file is -ENOTDIR");
	is_int(backend_local_open(file, true, &b), -ENOTDIR,
	       "local: create over a file is -ENOTDIR");
	ok(b == NULL, "local: failed opens return nothing");

	is_int(backend_local_open(made, true, &b), 0, "local: create a missing directory");
	ok(stat(made, &st) == 0 && S_ISDIR(st.st_mode), "local: ... which now exists");
	ok(b && strcmp(b->location, made) == 0, "local: location is the path");
	backend_free(b);
	b = NULL;
	is_int(backend_local_open(made, false, &b), 0, "local: open it again");
	backend_free(b);
	b = NULL;
	is_int(backend_local_open(made, true, &b), 0, "local: create of an existing directory");
	backend_free(b);
}

static void test_local_files(const char *base)
{
	_cleanup_free_ char *root = path_join(base, "files");
	_cleanup_free_ char *obj = path_join(root, "data/ab/pack1");
	_cleanup_free_ char *top = path_join(root, "config");
	_cleanup_free_ char *junk1 = path_join(root, "data/ab/.tmp~1.2.3");
	_cleanup_free_ char *junk2 = path_join(root, "data/junk~");
	_cleanup_free_ char *ro = path_join(root, "ro");
	struct backend *b = NULL;
	struct rlimit old, lim;
	uint8_t big[65536];
	unsigned before, n = 0;
	uint64_t size;
	int fd, r;

	tap_require(backend_local_open(root, true, &b) == 0);
	is_int(backend_put(b, "data/ab/pack1", "pack bytes", 10, 0), 0, "local: put a pack");
	is_int(backend_put(b, "config", "cfg", 3, BACKEND_PUT_EXCLUSIVE), 0,
	       "local: exclusive put at the top");
	ok(file_is(obj, "pack bytes", 10), "local: the object is a regular file with its bytes");
	ok(file_is(top, "cfg", 3), "local: ... at the top too");
	is_int(backend_put(b, "config", "new", 3, BACKEND_PUT_EXCLUSIVE), -EEXIST,
	       "local: a refused exclusive put");
	ok(file_is(top, "cfg", 3), "local: ... leaves the file alone");
	is_int(backend_put(b, "data/ab/pack1", "replaced", 8, 0), 0, "local: replace a pack");
	ok(file_is(obj, "replaced", 8), "local: ... the file has the new bytes");
	is_int(tmp_files(root), 0, "local: no temporary files remain after puts");

	/* Foreign and temporary files in the tree are not objects. */
	fd = open(junk1, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	tap_require(fd >= 0);
	close(fd);
	fd = open(junk2, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	tap_require(fd >= 0);
	close(fd);
	is_int(backend_list(b, "", count_cb, &n), 0, "local: list with stray files around");
	is_int(n, 2, "local: ... shows only the two objects");
	tap_require(unlink(junk1) == 0 && unlink(junk2) == 0);

	/* A write that fails midway (the file size limit, which binds root too) must remove
	 * its temporary file and be logged once. Nothing may print while the limit is on. */
	memset(big, 'b', sizeof(big));
	tap_require(getrlimit(RLIMIT_FSIZE, &old) == 0);
	signal(SIGXFSZ, SIG_IGN);
	lim = old;
	lim.rlim_cur = 4096;
	fflush(stdout);
	before = log_errors_now();
	tap_require(setrlimit(RLIMIT_FSIZE, &lim) == 0);
	r = backend_put(b, "data/ab/big", big, sizeof(big), 0);
	tap_require(setrlimit(RLIMIT_FSIZE, &old) == 0);
	signal(SIGXFSZ, SIG_DFL);
	is_int(r, -EIO, "local: a put whose write fails is -EIO");
	is_int(log_errors_now() - before, 1, "local: ... logged once");
	is_int(tmp_files(root), 0, "local: ... leaves no temporary file");
	is_int(backend_head(b, "data/ab/big", &size), -ENOENT, "local: ... and no object");

	/* A directory the process may not write to. Root may write anywhere, so skip it. */
	if (geteuid() == 0) {
		skip("running as root", "local: a put into a read-only directory is -EACCES");
		skip("running as root", "local: ... logged once");
		skip("running as root", "local: ... leaves no temporary file");
		skip("running as root", "local: a put below a read-only root is -EACCES");
	} else {
		tap_require(backend_put(b, "ro/x", "x", 1, 0) == 0);
		tap_require(chmod(ro, 0555) == 0);
		before = log_errors_now();
		is_int(backend_put(b, "ro/y", "y", 1, 0), -EACCES,
		       "local: a put into a read-only directory is -EACCES");
		is_int(log_errors_now() - before, 1, "local: ... logged once");
		is_int(tmp_files(root), 0, "local: ... leaves no temporary file");
		tap_require(chmod(ro, 0755) == 0);
		tap_require(chmod(root, 0555) == 0);
		is_int(backend_put(b, "newdir/x", "x", 1, 0), -EACCES,
		       "local: a put below a read-only root is -EACCES");
		tap_require(chmod(root, 0700) == 0);
	}

	/* A directory made for longer keys is no object. */
	is_int(backend_del(b, "data/ab"), -ENOENT, "local: delete of a directory is -ENOENT");
	is_int(backend_head(b, "data/ab/pack1", &size), 0, "local: ... and leaves it alone");
	is_int(backend_del(b, "data/ab/pack1"), 0, "local: delete the pack");
	ok(access(obj, F_OK) < 0 && errno == ENOENT, "local: ... the file is gone");
	backend_free(b);
}

int main(void)
{
	const char *tmpdir = getenv("TMPDIR");
	char base[4096];

	plan_lazy();
	log_verbose = getenv("CAIRN_TEST_VERBOSE") != NULL;
	log_set_sink(test_sink);

	snprintf(base, sizeof(base), "%s/cairn-test-backend.XXXXXX",
		 tmpdir && *tmpdir ? tmpdir : "/tmp");
	tap_require(mkdtemp(base) != NULL);
	diag("scratch directory %s", base);

	run_conformance(base);
	test_fault_fail();
	test_fault_crash();
	test_fault_flip();
	test_local_open(base);
	test_local_files(base);

	is_int(rm_rf(base), 0, "remove the scratch directory");
	return tap_done();
}
