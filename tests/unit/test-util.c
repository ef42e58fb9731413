/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests for store/util.c: the growable buffer, the bounded reader (including hostile
 * length prefixes), little-endian helpers, hex, logging and the cleanup helpers.
 */
#include "util.h"

#include <sys/wait.h>

#include "tap.h"

static void test_buf(void)
{
	_cleanup_buf_ struct buf b = {0};
	uint8_t big[10000];

	ok(buf_reserve(&b, 0) == 0 && b.len == 0, "reserve 0 on an empty buffer");
	is_int(buf_append(&b, "abc", 3), 0, "append");
	is_int(b.len, 3, "len after append");
	ok(memcmp(b.data, "abc", 3) == 0, "contents after append");
	is_int(buf_append(&b, NULL, 0), 0, "append of nothing");
	is_int(b.len, 3, "len unchanged by empty append");

	is_int(buf_append_le32(&b, 0x04030201u), 0, "append le32");
	is_int(buf_append_le64(&b, 0x0c0b0a0908070605ull), 0, "append le64");
	static const uint8_t want[] = {'a', 'b', 'c', 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
	ok(b.len == sizeof(want) && memcmp(b.data, want, sizeof(want)) == 0,
	   "le32/le64 are little-endian");

	buf_reset(&b);
	is_int(b.len, 0, "reset empties");
	ok(b.cap > 0 && b.data, "reset keeps the memory");

	memset(big, 0x5a, sizeof(big));
	for (int i = 0; i < 10; i++)
		tap_require(buf_append(&b, big, sizeof(big)) == 0);
	ok(b.len == 100000 && b.cap >= b.len, "growth over many appends");
	bool same = true;
	for (size_t i = 0; i < b.len; i++)
		same &= b.data[i] == 0x5a;
	ok(same, "contents survive growth");

	size_t cap = b.cap;
	is_int(buf_reserve(&b, b.cap - b.len), 0, "reserve exactly the spare room");
	is_int(b.cap, cap, "no reallocation when it fits");
	is_int(buf_reserve(&b, SIZE_MAX), -ENOMEM, "reserve overflowing size_t is -ENOMEM");
	is_int(buf_reserve(&b, SIZE_MAX - b.len + 1), -ENOMEM, "reserve wrapping to 0 is -ENOMEM");
	is_int(b.len, 100000, "failed reserve leaves the buffer alone");

	buf_reset(&b);
	is_int(buf_append_str(&b, "hello"), 0, "append str");
	ok(b.len == 9 && get_le32(b.data) == 5 && memcmp(b.data + 4, "hello", 5) == 0,
	   "str is le32 length then bytes, no NUL");

	buf_release(&b);
	ok(b.data == NULL && b.len == 0 && b.cap == 0, "release zeroes the buffer");
	buf_release(&b);
	ok(true, "release twice is harmless");
}

static void test_reader(void)
{
	static const uint8_t in[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13};
	struct reader r = {in, sizeof(in)};
	const uint8_t *p;
	uint8_t u8, out[4];
	uint32_t v32;
	uint64_t v64;

	is_int(reader_u8(&r, &u8), 0, "u8");
	is_int(u8, 1, "u8 value");
	is_int(reader_le32(&r, &v32), 0, "le32");
	is_int(v32, 0x05040302, "le32 value");
	is_int(reader_le64(&r, &v64), 0, "le64");
	ok(v64 == 0x0d0c0b0a09080706ull, "le64 value");
	is_int(r.left, 0, "all consumed");
	is_int(reader_u8(&r, &u8), -EBADMSG, "u8 past the end");
	is_int(reader_skip_ptr(&r, 0, &p), 0, "skip 0 at the end is fine");

	r = (struct reader){in, 3};
	is_int(reader_le32(&r, &v32), -EBADMSG, "le32 with 3 bytes left");
	is_int(r.left, 3, "failed read consumes nothing");
	is_int(reader_le64(&r, &v64), -EBADMSG, "le64 with 3 bytes left");
	is_int(reader_bytes(&r, out, 4), -EBADMSG, "bytes beyond the end");
	is_int(reader_bytes(&r, out, 3), 0, "bytes to the exact end");
	ok(memcmp(out, in, 3) == 0, "bytes copied");

	r = (struct reader){in, sizeof(in)};
	is_int(reader_skip_ptr(&r, SIZE_MAX, &p), -EBADMSG, "hostile skip of SIZE_MAX");
	is_int(reader_skip_ptr(&r, sizeof(in) + 1, NULL), -EBADMSG, "skip one past the end");
	is_int(reader_skip_ptr(&r, 5, &p), 0, "skip");
	ok(p == in && r.p == in + 5 && r.left == sizeof(in) - 5, "skip returns the old position");
	is_int(reader_skip_ptr(&r, 2, NULL), 0, "skip without a pointer");
	is_int(r.left, sizeof(in) - 7, "left after skips");
}

static void test_reader_str(void)
{
	_cleanup_buf_ struct buf b = {0};
	_cleanup_free_ char *s = NULL;
	struct reader r;
	char *t = NULL;

	tap_require(buf_append_str(&b, "name") == 0);
	tap_require(buf_append_str(&b, "") == 0);
	r = (struct reader){b.data, b.len};
	is_int(reader_str(&r, 100, &s), 0, "str");
	ok(s && strcmp(s, "name") == 0, "str value");
	free(s);
	s = NULL;
	is_int(reader_str(&r, 0, &s), 0, "empty str with max 0");
	ok(s && s[0] == 0, "empty str value");
	is_int(r.left, 0, "all consumed");

	buf_reset(&b);
	tap_require(buf_append_str(&b, "toolong") == 0);
	r = (struct reader){b.data, b.len};
	is_int(reader_str(&r, 6, &t), -EBADMSG, "str longer than max");
	ok(t == NULL, "ret untouched on failure");

	static const uint32_t hostile[] = {0xffffffffu, 0x80000000u, 0x7fffffffu, 8};
	for (size_t i = 0; i < ELEMENTSOF(hostile); i++) {
		buf_reset(&b);
		tap_require(buf_append_le32(&b, hostile[i]) == 0);
		tap_require(buf_append(&b, "1234567", 7) == 0);
		r = (struct reader){b.data, b.len};
		is_int(reader_str(&r, SIZE_MAX, &t), -EBADMSG,
		       "hostile length %#x with max=SIZE_MAX", hostile[i]);
	}
	ok(t == NULL, "ret untouched by hostile lengths");

	buf_reset(&b);
	tap_require(buf_append_le32(&b, 3) == 0);
	tap_require(buf_append(&b, "a\0b", 3) == 0);
	r = (struct reader){b.data, b.len};
	is_int(reader_str(&r, 100, &t), -EBADMSG, "embedded NUL is rejected");

	r = (struct reader){b.data, 2};
	is_int(reader_str(&r, 100, &t), -EBADMSG, "truncated length prefix");
}

static void test_le(void)
{
	uint8_t p[8];

	put_le32(p, 0xdeadbeef);
	ok(p[0] == 0xef && p[3] == 0xde, "put_le32 byte order");
	is_int(get_le32(p), 0xdeadbeef, "get_le32 round trip");
	put_le64(p, 0x0123456789abcdefull);
	ok(p[0] == 0xef && p[7] == 0x01, "put_le64 byte order");
	ok(get_le64(p) == 0x0123456789abcdefull, "get_le64 round trip");
	put_le64(p, UINT64_MAX);
	ok(get_le64(p) == UINT64_MAX && get_le32(p) == UINT32_MAX, "all ones");
}

static void test_hex(void)
{
	static const uint8_t in[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
	char hex[2 * sizeof(in) + 1];
	uint8_t out[sizeof(in)];

	memset(hex, 'x', sizeof(hex));
	hex_encode(in, sizeof(in), hex);
	ok(strcmp(hex, "00017f80abff") == 0, "hex_encode: %s", hex);
	hex_encode(in, 0, hex);
	is_int(hex[0], 0, "hex_encode of nothing is empty");

	is_int(hex_decode("00017f80abff", out, sizeof(out)), 0, "hex_decode");
	ok(memcmp(in, out, sizeof(in)) == 0, "hex round trip");
	is_int(hex_decode("00017F80ABFF", out, sizeof(out)), 0, "upper case accepted");
	ok(memcmp(in, out, sizeof(in)) == 0, "upper case decodes the same");
	is_int(hex_decode("00017f80abf", out, sizeof(out)), -EINVAL, "odd length");
	is_int(hex_decode("00017f80abff00", out, sizeof(out)), -EINVAL, "too long");
	is_int(hex_decode("", out, sizeof(out)), -EINVAL, "empty");
	is_int(hex_decode("", out, 0), 0, "empty for zero bytes");
	is_int(hex_decode("00017g80abff", out, sizeof(out)), -EINVAL, "non-hex digit");
	is_int(hex_decode("0001 780abff", out, sizeof(out)), -EINVAL, "space");
	is_int(hex_decode("+0017f80abff", out, sizeof(out)), -EINVAL, "sign");
}

static int sink_count;
static enum log_level sink_level;
static char sink_msg[64];

static void sink(enum log_level level, const char *msg)
{
	sink_count++;
	sink_level = level;
	snprintf(sink_msg, sizeof(sink_msg), "%s", msg);
}

static void test_log(void)
{
	log_set_sink(sink);
	log_set_max_level(LOG_INFO);

	log_info("hello %d", 42);
	ok(sink_count == 1 && sink_level == LOG_INFO && strcmp(sink_msg, "hello 42") == 0,
	   "log_info reaches the sink");
	log_debug("hidden");
	is_int(sink_count, 1, "debug is filtered at LOG_INFO");

	errno = EINTR;
	int r = log_error_errno(-ENOENT, "object %s", "x");
	is_int(r, -ENOENT, "log_error_errno returns its error");
	is_int(errno, EINTR, "log_error_errno keeps errno");
	ok(sink_count == 2 && sink_level == LOG_ERR, "error logged");

	log_set_max_level(LOG_DEBUG);
	log_debug("shown");
	is_int(sink_count, 3, "debug shown at LOG_DEBUG");
	log_set_max_level(LOG_INFO);
	log_set_sink(NULL);
}

static void test_misc(void)
{
	char *p = malloc(1);
	tap_require(p);
	{
		_cleanup_free_ char *q = p;
		char *taken = TAKE_PTR(q);
		ok(taken == p && q == NULL, "TAKE_PTR hands the pointer out");
	}
	free(p); /* still ours: the cleanup saw NULL */

	int fd = 5;
	int got = TAKE_FD(fd);
	ok(got == 5 && fd == -1, "TAKE_FD");

	int arr[7];
	is_int(ELEMENTSOF(arr), 7, "ELEMENTSOF");
	is_int(MIN(3, -2), -2, "MIN");
	is_int(MAX(3, -2), 3, "MAX");

	uint64_t a = now_ns(), b = now_ns();
	ok(a > 0 && b >= a, "now_ns is monotonic");
}

static void test_process_running(void)
{
	ok(process_running(getpid()), "process_running: this process runs");
	ok(!process_running(0) && !process_running(-1), "process_running: no pid 0 or -1");
	pid_t child = fork();
	if (child == 0)
		_exit(0);
	tap_require(child > 0);
	/* Dead but not collected: a zombie is not running (cairn umount waits on this). */
	siginfo_t si;
	tap_require(waitid(P_PID, (id_t)child, &si, WEXITED | WNOWAIT) == 0);
	ok(!process_running(child), "process_running: a zombie is not running");
	tap_require(waitpid(child, NULL, 0) == child);
	ok(!process_running(child), "process_running: a reaped process is not running");
}

int main(void)
{
	plan_lazy();
	test_buf();
	test_reader();
	test_reader_str();
	test_le();
	test_hex();
	test_log();
	test_misc();
	test_process_running();
	return tap_done();
}
