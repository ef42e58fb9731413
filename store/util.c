/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Buffers, bounded readers, hex and logging shared by every module (see util.h). */
#include "util.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <time.h>

int buf_reserve(struct buf *b, size_t extra)
{
	if (extra > SIZE_MAX - b->len)
		return -ENOMEM;
	size_t need = b->len + extra;
	if (need <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	uint8_t *p = realloc(b->data, cap);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

int buf_append(struct buf *b, const void *data, size_t len)
{
	int r = buf_reserve(b, len);
	if (r < 0)
		return r;
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	return 0;
}

int buf_append_le32(struct buf *b, uint32_t v)
{
	uint8_t t[4];
	put_le32(t, v);
	return buf_append(b, t, sizeof(t));
}

int buf_append_le64(struct buf *b, uint64_t v)
{
	uint8_t t[8];
	put_le64(t, v);
	return buf_append(b, t, sizeof(t));
}

int buf_append_str(struct buf *b, const char *s)
{
	size_t n = strlen(s);
	if (n > UINT32_MAX)
		return -EINVAL;
	int r = buf_append_le32(b, (uint32_t)n);
	return r < 0 ? r : buf_append(b, s, n);
}

void buf_release(struct buf *b)
{
	free(b->data);
	*b = (struct buf){0};
}

int reader_skip_ptr(struct reader *r, size_t len, const uint8_t **ret)
{
	if (len > r->left)
		return -EBADMSG;
	if (ret)
		*ret = r->p;
	r->p += len;
	r->left -= len;
	return 0;
}

int reader_bytes(struct reader *r, void *out, size_t len)
{
	const uint8_t *p;
	int k = reader_skip_ptr(r, len, &p);
	if (k < 0)
		return k;
	memcpy(out, p, len);
	return 0;
}

int reader_u8(struct reader *r, uint8_t *ret)
{
	return reader_bytes(r, ret, 1);
}

int reader_le32(struct reader *r, uint32_t *ret)
{
	const uint8_t *p;
	int k = reader_skip_ptr(r, 4, &p);
	if (k < 0)
		return k;
	*ret = get_le32(p);
	return 0;
}

int reader_le64(struct reader *r, uint64_t *ret)
{
	const uint8_t *p;
	int k = reader_skip_ptr(r, 8, &p);
	if (k < 0)
		return k;
	*ret = get_le64(p);
	return 0;
}

int reader_str(struct reader *r, size_t max, char **ret)
{
	uint32_t n;
	const uint8_t *p;
	int k = reader_le32(r, &n);
	if (k < 0)
		return k;
	if (n > max)
		return -EBADMSG;
	k = reader_skip_ptr(r, n, &p);
	if (k < 0)
		return k;
	if (memchr(p, 0, n))
		return -EBADMSG;
	char *s = malloc((size_t)n + 1);
	if (!s)
		return -ENOMEM;
	memcpy(s, p, n);
	s[n] = 0;
	*ret = s;
	return 0;
}

void hex_encode(const void *data, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	const uint8_t *p = data;
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * len] = 0;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int hex_decode(const char *hex, void *out, size_t len)
{
	uint8_t *p = out;
	if (strlen(hex) != 2 * len)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		p[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

static log_sink_fn log_sink;
static enum log_level log_max = LOG_INFO;

void log_set_sink(log_sink_fn fn)
{
	log_sink = fn;
}

void log_set_max_level(enum log_level level)
{
	log_max = level;
}

__attribute__((format(printf, 2, 0))) static void log_vmsg(enum log_level level, const char *fmt,
							   va_list ap)
{
	char msg[1024];

	if (level > log_max)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (log_sink) {
		log_sink(level, msg);
		return;
	}
	/* One write per line so lines from different threads do not interleave. */
	fprintf(stderr, "cairn: %s\n", msg);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

int log_errno(enum log_level level, int r, const char *fmt, ...)
{
	va_list ap;
	int saved = errno;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
	errno = saved;
	return r;
}

bool process_running(pid_t pid)
{
	char path[64], stat[512];
	if (pid <= 0 || (kill(pid, 0) < 0 && errno == ESRCH))
		return false;
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return true; /* no /proc: kill said it exists */
	size_t n = fread(stat, 1, sizeof(stat) - 1, f);
	fclose(f);
	stat[n] = 0;
	/* "pid (comm) S ...": the state follows the last ')' (comm may hold one). */
	const char *p = strrchr(stat, ')');
	return !(p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X'));
}

uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int fsync_dir(int dfd)
{
	if (fsync(dfd) < 0 && errno != EINVAL)
		return -errno;
	return 0;
}

int fsync_dir_path(const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return fd < 0 ? -errno : fsync_dir(fd);
}
