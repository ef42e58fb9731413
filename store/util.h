/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Small helpers shared by every module: cleanup attributes, a growable byte buffer, logging,
 * little-endian encoding and hex. Nothing here knows about the storage format.
 *
 * Logging: store/ never prints to stdout. Messages go through log_msg(), which writes to
 * stderr by default; a tool or the daemon may install its own sink with log_set_sink().
 * The log_*_errno() helpers return the (negative) error they were given, so callers write
 * `return log_error_errno(r, "pack %s: %s", name, strerror(-r));`.
 */
#pragma once

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _must_check_ __attribute__((warn_unused_result))

#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Hand ownership out of a _cleanup_ variable: the variable becomes NULL. */
#define TAKE_PTR(p)                                                                                \
	({                                                                                         \
		__typeof__(p) _p_ = (p);                                                           \
		(p) = NULL;                                                                        \
		_p_;                                                                               \
	})
#define TAKE_FD(fd)                                                                                \
	({                                                                                         \
		int _fd_ = (fd);                                                                   \
		(fd) = -1;                                                                         \
		_fd_;                                                                              \
	})

static inline void freep(void *p)
{
	free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}
#define _cleanup_close_ _cleanup_(closep)

/* A growable byte buffer. Zero-initialise (`struct buf b = {0};`) before use. */
struct buf {
	uint8_t *data;
	size_t len;
	size_t cap;
};

/* Make room for `extra` more bytes. Returns 0 or -ENOMEM. */
int buf_reserve(struct buf *b, size_t extra) _must_check_;
/* Append bytes. Returns 0 or -ENOMEM. */
int buf_append(struct buf *b, const void *data, size_t len) _must_check_;
int buf_append_le32(struct buf *b, uint32_t v) _must_check_;
int buf_append_le64(struct buf *b, uint64_t v) _must_check_;
/* Append a length-prefixed (le32) byte string. */
int buf_append_str(struct buf *b, const char *s) _must_check_;
void buf_release(struct buf *b);
static inline void buf_reset(struct buf *b)
{
	b->len = 0;
}
#define _cleanup_buf_ _cleanup_(buf_release)

/*
 * A bounded reader over bytes that came from outside (the backend, a file): every read is
 * checked against what is left, so a hostile length can never read past the end.
 * All getters return 0 or -EBADMSG when the input is too short.
 */
struct reader {
	const uint8_t *p;
	size_t left;
};
int reader_bytes(struct reader *r, void *out, size_t len);
int reader_skip_ptr(struct reader *r, size_t len, const uint8_t **ret);
int reader_u8(struct reader *r, uint8_t *ret);
int reader_le32(struct reader *r, uint32_t *ret);
int reader_le64(struct reader *r, uint64_t *ret);
/* A le32-prefixed string of at most max bytes, returned NUL-terminated in a malloc'd copy. */
int reader_str(struct reader *r, size_t max, char **ret);

static inline void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = v;
	p[1] = v >> 8;
	p[2] = v >> 16;
	p[3] = v >> 24;
}
static inline uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline void put_le64(uint8_t *p, uint64_t v)
{
	put_le32(p, (uint32_t)v);
	put_le32(p + 4, (uint32_t)(v >> 32));
}
static inline uint64_t get_le64(const uint8_t *p)
{
	return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

/* Lower-case hex of len bytes into out (2*len+1 bytes, NUL-terminated). */
void hex_encode(const void *data, size_t len, char *out);
/* Parse exactly 2*len hex digits. Returns 0 or -EINVAL. */
int hex_decode(const char *hex, void *out, size_t len);

enum log_level { LOG_ERR = 3, LOG_WARNING = 4, LOG_INFO = 6, LOG_DEBUG = 7 };
typedef void (*log_sink_fn)(enum log_level level, const char *msg);
void log_set_sink(log_sink_fn fn);
void log_set_max_level(enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...) _printf_(2, 3);
/* Log and return r (which must be negative). */
int log_errno(enum log_level level, int r, const char *fmt, ...) _printf_(3, 4);
#define log_error(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_error_errno(r, ...) log_errno(LOG_ERR, (r), __VA_ARGS__)
#define log_warning_errno(r, ...) log_errno(LOG_WARNING, (r), __VA_ARGS__)

/* Monotonic time in nanoseconds. */
uint64_t now_ns(void);

/* Whether process pid (in this pid namespace) still runs: false once it is gone or a
 * zombie (dead, its exit status not yet collected by its parent). */
bool process_running(pid_t pid);

/* fsync a directory (an open descriptor, or a path). Some filesystems cannot sync a directory
 * at all and say EINVAL; there is nothing more to be had from them, so that is not an error.
 * Returns 0 or -errno. */
int fsync_dir(int dfd);
int fsync_dir_path(const char *path);
