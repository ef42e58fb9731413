/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The repository write lease (see lock.h). */
#include "lock.h"

#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <time.h>

#include "codec.h"

static void read_line_of(const char *path, char out[64])
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, out, 63) : -1;
	if (n <= 0)
		n = 0;
	out[n] = 0;
	out[strcspn(out, "\n")] = 0;
}

static void read_boot_id(char out[64])
{
	read_line_of("/proc/sys/kernel/random/boot_id", out);
}

/* Host names repeat (localhost, cloned VMs); the machine id is meant not to. */
static void read_machine_id(char out[64])
{
	read_line_of("/etc/machine-id", out);
}

/* A pid means something only inside its pid namespace. */
static void read_pidns(char out[64])
{
	ssize_t n = readlink("/proc/self/ns/pid", out, 63);
	out[n > 0 ? n : 0] = 0;
}

static int lock_format(const char *holder, unsigned lease, int64_t since, struct buf *ret)
{
	char host[256] = "", boot[64], machine[64], pidns[64], text[1024];
	gethostname(host, sizeof(host) - 1);
	read_boot_id(boot);
	read_machine_id(machine);
	read_pidns(pidns);
	int64_t now = (int64_t)time(NULL);
	int n = snprintf(text, sizeof(text),
			 "cairn-lock 1\nholder = %s\nhost = %s\nmachine = %s\nboot = %s\n"
			 "pidns = %s\npid = %ld\nsince = %" PRId64 "\nexpires = %" PRId64 "\n",
			 holder, host, machine[0] ? machine : "-", boot[0] ? boot : "-",
			 pidns[0] ? pidns : "-", (long)getpid(), since ? since : now, now + lease);
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
		else if (sscanf(line, "machine = %63s", info.machine) == 1)
			;
		else if (sscanf(line, "pidns = %63s", info.pidns) == 1)
			;
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
		return -EBADMSG; /* a lock object is a few hundred bytes */
	return lock_parse((const char *)data.data, data.len, ret);
}

bool lock_holder_is_dead(const struct lock_info *info)
{
	char machine[64], boot[64], pidns[64];
	read_machine_id(machine);
	read_boot_id(boot);
	read_pidns(pidns);
	/* Only a holder we can prove is gone: on this very machine (not just a host of the
	 * same name), and either in an earlier boot with its lease run out, or in this boot
	 * and this pid namespace with no such process. */
	if (!machine[0] || strcmp(machine, info->machine))
		return false;
	if (boot[0] && info->boot[0] && strcmp(boot, info->boot))
		return info->expires < (int64_t)time(NULL);
	if (!boot[0] || strcmp(boot, info->boot) || !pidns[0] || strcmp(pidns, info->pidns) ||
	    info->pid <= 0)
		return false;
	return !process_running((pid_t)info->pid);
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
	/* The check and the write are not one step: read back, so that losing a race with a
	 * breaker shows at once. (Commits are exclusive creates, so two writers can never both
	 * write the same commit even then.) */
	return check_ours(l, &info);
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
