/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The repository write lease (see lock.h). */
#include "lock.h"

#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <time.h>

#include "codec.h"

static void read_boot_id(char out[64])
{
	_cleanup_close_ int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, out, 63) : -1;
	if (n <= 0)
		n = 0;
	out[n] = 0;
	out[strcspn(out, "\n")] = 0;
}

static int lock_format(const char *holder, unsigned lease, int64_t since, struct buf *ret)
{
	char host[256] = "", boot[64], text[512];
	gethostname(host, sizeof(host) - 1);
	read_boot_id(boot);
	int64_t now = (int64_t)time(NULL);
	int n = snprintf(text, sizeof(text),
			 "cairn-lock 1\nholder = %s\nhost = %s\nboot = %s\npid = %ld\n"
			 "since = %" PRId64 "\nexpires = %" PRId64 "\n",
			 holder, host, boot, (long)getpid(), since ? since : now, now + lease);
	if (n < 0 || (size_t)n >= sizeof(text))
		return -EINVAL;
	return buf_append(ret, text, (size_t)n);
}

static int lock_parse(const char *text, size_t len, struct lock_info *ret)
{
	struct lock_info info = {0};
	unsigned seen = 0;
	char line[320];
	const char *p = text, *end = text + len;

	if (len < 13 || memcmp(text, "cairn-lock 1\n", 13))
		return -EBADMSG;
	for (p += 13; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl || (size_t)(nl - p) >= sizeof(line))
			return -EBADMSG;
		memcpy(line, p, (size_t)(nl - p));
		line[nl - p] = 0;
		p = nl + 1;
		if (sscanf(line, "holder = %32s", info.holder) == 1)
			seen |= 1;
		else if (sscanf(line, "host = %255s", info.host) == 1)
			seen |= 2;
		else if (sscanf(line, "boot = %63s", info.boot) == 1)
			seen |= 4;
		else if (sscanf(line, "pid = %ld", &info.pid) == 1)
			seen |= 8;
		else if (sscanf(line, "since = %" SCNd64, &info.since) == 1)
			seen |= 16;
		else if (sscanf(line, "expires = %" SCNd64, &info.expires) == 1)
			seen |= 32;
	}
	if ((seen | 4) != 63)
		return -EBADMSG;
	*ret = info;
	return 0;
}

int lock_read(struct backend *b, struct lock_info *ret)
{
	_cleanup_buf_ struct buf data = {0};
	int r = backend_get(b, LOCK_KEY, 0, BACKEND_WHOLE, &data);
	if (r < 0)
		return r;
	if (data.len > 4096)
		return -EBADMSG;
	return lock_parse((const char *)data.data, data.len, ret);
}

bool lock_holder_is_dead(const struct lock_info *info)
{
	char host[256] = "", boot[64];
	gethostname(host, sizeof(host) - 1);
	if (strcmp(host, info->host))
		return false;
	read_boot_id(boot);
	if (info->boot[0] && boot[0] && strcmp(boot, info->boot))
		return true; /* held in an earlier boot of this host */
	if (info->pid <= 0)
		return false;
	return kill((pid_t)info->pid, 0) < 0 && errno == ESRCH;
}

static void describe(const struct lock_info *i, char *out, size_t len)
{
	char since[32] = "?", expires[32] = "?";
	struct tm tm;
	time_t t = (time_t)i->since;
	if (localtime_r(&t, &tm))
		strftime(since, sizeof(since), "%Y-%m-%d %H:%M:%S", &tm);
	t = (time_t)i->expires;
	if (localtime_r(&t, &tm))
		strftime(expires, sizeof(expires), "%Y-%m-%d %H:%M:%S", &tm);
	snprintf(out, len, "host %s, pid %ld, since %s, lease until %s", i->host, i->pid, since,
		 expires);
}

int lock_acquire(struct backend *b, unsigned lease, bool break_lock, struct repo_lock *ret)
{
	struct repo_lock l = {.backend = b, .lease = lease ? lease : LOCK_LEASE_DEFAULT};
	uint8_t rnd[16];
	_cleanup_buf_ struct buf data = {0};

	codec_random(rnd, sizeof(rnd));
	hex_encode(rnd, sizeof(rnd), l.holder);
	int r = lock_format(l.holder, l.lease, 0, &data);
	if (r < 0)
		return r;
	for (int attempt = 0; attempt < 2; attempt++) {
		r = backend_put(b, LOCK_KEY, data.data, data.len, BACKEND_PUT_EXCLUSIVE);
		if (r != -EEXIST)
			break;
		struct lock_info info;
		char what[512];
		int k = lock_read(b, &info);
		if (k == -ENOENT)
			continue; /* released meanwhile: try again */
		if (k == -EBADMSG && !break_lock)
			return log_error_errno(k,
					       "%s: the lock object is unreadable; if no other "
					       "writer runs, break it (--break-lock)",
					       b->location);
		if (k < 0 && k != -EBADMSG)
			return log_error_errno(k, "%s: reading the lock: %s", b->location,
					       strerror(-k));
		if (k >= 0)
			describe(&info, what, sizeof(what));
		else
			snprintf(what, sizeof(what), "an unreadable lock");
		if (k >= 0 && !break_lock && !lock_holder_is_dead(&info))
			return log_error_errno(
				-EBUSY,
				"%s is in use by another writer (%s); if that writer "
				"is gone, break the lock (--break-lock)",
				b->location, what);
		log_warning("%s: breaking the lock of %s%s", b->location, what,
			    break_lock ? "" : ": that process no longer runs");
		k = backend_del(b, LOCK_KEY);
		if (k < 0 && k != -ENOENT)
			return log_error_errno(k, "%s: deleting the stale lock: %s", b->location,
					       strerror(-k));
	}
	if (r == -EEXIST)
		return log_error_errno(-EBUSY, "%s: lost the race for the lock to another writer",
				       b->location);
	if (r < 0)
		return log_error_errno(r, "%s: taking the lock: %s", b->location, strerror(-r));
	*ret = l;
	return 0;
}

static int check_ours(struct repo_lock *l, struct lock_info *info)
{
	int r = lock_read(l->backend, info);
	if (r == -ENOENT || r == -EBADMSG || (r >= 0 && strcmp(info->holder, l->holder)))
		return log_error_errno(-ESTALE, "%s: our lock was broken by someone else",
				       l->backend->location);
	return r;
}

int lock_renew(struct repo_lock *l)
{
	struct lock_info info;
	_cleanup_buf_ struct buf data = {0};
	int r = check_ours(l, &info);
	if (r < 0)
		return r;
	r = lock_format(l->holder, l->lease, info.since, &data);
	if (r < 0)
		return r;
	r = backend_put(l->backend, LOCK_KEY, data.data, data.len, 0);
	if (r < 0)
		return log_error_errno(r, "%s: renewing the lock: %s", l->backend->location,
				       strerror(-r));
	return 0;
}

int lock_release(struct repo_lock *l)
{
	struct lock_info info;
	int r = check_ours(l, &info);
	if (r < 0)
		return r;
	r = backend_del(l->backend, LOCK_KEY);
	if (r < 0 && r != -ENOENT)
		return log_error_errno(r, "%s: releasing the lock: %s", l->backend->location,
				       strerror(-r));
	return 0;
}
