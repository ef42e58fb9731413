/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests for store/lock.c: the repository write lease (acquire, break, renew, release). */
#include "lock.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>

#include "codec.h"
#include "tap.h"

static char last_error[1024], last_warning[1024];

static void capture_sink(enum log_level level, const char *msg)
{
	if (level <= LOG_ERR)
		snprintf(last_error, sizeof(last_error), "%s", msg);
	else if (level == LOG_WARNING)
		snprintf(last_warning, sizeof(last_warning), "%s", msg);
}

static char hostname[256], boot_id[64];
static char machine_id[64], pid_ns[64];

static void read_identity(void)
{
	tap_require(gethostname(hostname, sizeof(hostname) - 1) == 0);
	int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, boot_id, sizeof(boot_id) - 1) : 0;
	if (fd >= 0)
		close(fd);
	boot_id[n > 0 ? n : 0] = 0;
	boot_id[strcspn(boot_id, "\n")] = 0;
	fd = open("/etc/machine-id", O_RDONLY | O_CLOEXEC);
	n = fd >= 0 ? read(fd, machine_id, sizeof(machine_id) - 1) : 0;
	if (fd >= 0)
		close(fd);
	machine_id[n > 0 ? n : 0] = 0;
	machine_id[strcspn(machine_id, "\n")] = 0;
	n = readlink("/proc/self/ns/pid", pid_ns, sizeof(pid_ns) - 1);
	pid_ns[n > 0 ? n : 0] = 0;
}

/* A pid that provably does not run: a child that has exited and been reaped. */
static long dead_pid(void)
{
	pid_t pid = fork();

	tap_require(pid >= 0);
	if (pid == 0)
		_exit(0);
	tap_require(waitpid(pid, NULL, 0) == pid);
	return pid;
}

/* Write a lock object by hand, in the text format of lock.h. A lock "of this host" carries
 * our machine id and pid namespace; any other host name gets another machine id. */
static void put_lock(struct backend *be, const char *host, const char *boot, long pid,
		     int64_t since, int64_t expires)
{
	char text[1024];
	bool here = !strcmp(host, hostname);
	int n = snprintf(text, sizeof(text),
			 "cairn-lock 1\nholder = 0123456789abcdef0123456789abcdef\nhost = %s\n"
			 "machine = %s\nboot = %s\npidns = %s\npid = %ld\nsince = %" PRId64
			 "\nexpires = %" PRId64 "\n",
			 host, here ? machine_id : "0000another0machine0000", boot[0] ? boot : "-",
			 pid_ns, pid, since, expires);
	tap_require(n > 0 && (size_t)n < sizeof(text));
	tap_require(backend_put(be, LOCK_KEY, text, (size_t)n, 0) == 0);
}

static bool lock_is(struct backend *be, const struct repo_lock *l)
{
	struct lock_info info;
	return lock_read(be, &info) == 0 && !strcmp(info.holder, l->holder);
}

static void test_cycle(void)
{
	_cleanup_backend_ struct backend *be = NULL;
	struct repo_lock a, b, c;
	struct lock_info info, info2;
	char pid_text[64];
	int64_t t0 = (int64_t)time(NULL);

	tap_require(backend_mem_new(&be) == 0);
	is_int(lock_read(be, &info), -ENOENT, "lock_read of an unlocked repository is -ENOENT");

	is_int(lock_acquire(be, 60, false, &a), 0, "acquire the lock");
	ok(strlen(a.holder) == 32 && a.backend == be && a.lease == 60, "lock handle filled in");
	is_int(lock_read(be, &info), 0, "lock_read");
	ok(!strcmp(info.holder, a.holder), "the lock names our holder id");
	ok(!strcmp(info.host, hostname), "the lock names our host (%s)", info.host);
	is_int(info.pid, getpid(), "the lock names our pid");
	ok(!strcmp(info.boot, boot_id), "the lock names our boot id");
	ok(info.since >= t0 && info.since <= t0 + 5, "since is now");
	ok(info.expires >= info.since + 60 && info.expires <= info.since + 65,
	   "expires is since + lease");

	/* A second writer is refused while the first runs, and told who holds it. */
	last_error[0] = 0;
	is_int(lock_acquire(be, 60, false, &b), -EBUSY, "a second acquire is -EBUSY");
	snprintf(pid_text, sizeof(pid_text), "pid %ld", (long)getpid());
	ok(strstr(last_error, hostname) != NULL, "-EBUSY message names the holder's host");
	ok(strstr(last_error, pid_text) != NULL, "-EBUSY message names the holder's pid: \"%s\"",
	   last_error);
	ok(lock_is(be, &a), "the lock still belongs to the first holder");

	/* break_lock takes it over. */
	last_warning[0] = 0;
	is_int(lock_acquire(be, 120, true, &b), 0, "break_lock takes the lock over");
	ok(lock_is(be, &b), "the lock now belongs to the new holder");
	ok(strcmp(a.holder, b.holder) != 0, "holder ids differ between acquisitions");
	ok(last_warning[0] != 0, "breaking a lock is logged as a warning");

	/* The old holder finds out, and cannot disturb the new one. */
	is_int(lock_renew(&a), -ESTALE, "the old holder's renew is -ESTALE");
	ok(lock_is(be, &b), "... and leaves the new lock in place");
	is_int(lock_release(&a), -ESTALE, "the old holder's release is -ESTALE");
	ok(lock_is(be, &b), "... and leaves the new lock in place");

	/* The current holder renews and releases. */
	tap_require(lock_read(be, &info) == 0);
	is_int(lock_renew(&b), 0, "the holder renews");
	is_int(lock_read(be, &info2), 0, "lock_read after renew");
	ok(!strcmp(info2.holder, b.holder), "renew keeps the holder id");
	is_int(info2.since, info.since, "renew keeps since");
	ok(info2.expires >= info.expires && info2.expires >= (int64_t)time(NULL) + 115,
	   "renew extends the lease");
	is_int(lock_renew(&b), 0, "renew again");
	is_int(lock_release(&b), 0, "the holder releases");
	is_int(lock_read(be, &info), -ENOENT, "no lock after release");
	is_int(lock_renew(&b), -ESTALE, "renew after release is -ESTALE");

	is_int(lock_acquire(be, 0, false, &c), 0, "acquire after release succeeds");
	is_int(c.lease, LOCK_LEASE_DEFAULT, "lease 0 means the default lease");
	is_int(lock_release(&c), 0, "release");
}

static void test_garbage(void)
{
	_cleanup_backend_ struct backend *be = NULL;
	struct repo_lock l;
	struct lock_info info;
	char big[5000];
	char valid[512];

	tap_require(backend_mem_new(&be) == 0);
	memset(big, 'x', sizeof(big));
	memcpy(big, "cairn-lock 1\n", 13);
	snprintf(valid, sizeof(valid),
		 "cairn-lock 1\nholder = 0123456789abcdef0123456789abcdef\nhost = %s\n"
		 "pid = %ld\nsince = 1\nexpires = 2",
		 hostname, (long)getpid());

	static const struct {
		const char *what;
		const char *data;
		size_t len;
	} cases[] = {
#define LIT(s) s, sizeof(s) - 1
		{"random text", LIT("this is not a lock\n")},
		{"an empty object", LIT("")},
		{"the magic line only", LIT("cairn-lock 1\n")},
		{"version 2", LIT("cairn-lock 2\nholder = 0123456789abcdef0123456789abcdef\n"
				  "host = h\npid = 1\nsince = 1\nexpires = 2\n")},
		{"a lock without a pid",
		 LIT("cairn-lock 1\nholder = 0123456789abcdef0123456789abcdef\n"
		     "host = h\nsince = 1\nexpires = 2\n")},
		{"binary zeros", LIT("\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0")},
#undef LIT
	};
	for (size_t i = 0; i < ELEMENTSOF(cases) + 2; i++) {
		const char *what, *data;
		size_t len;
		if (i < ELEMENTSOF(cases)) {
			what = cases[i].what;
			data = cases[i].data;
			len = cases[i].len;
		} else if (i == ELEMENTSOF(cases)) {
			what = "a 5000-byte object";
			data = big;
			len = sizeof(big);
		} else {
			what = "a lock without its final newline";
			data = valid;
			len = strlen(valid);
		}
		tap_require(backend_put(be, LOCK_KEY, data, len, 0) == 0);
		is_int(lock_read(be, &info), -EBADMSG, "lock_read of %s is -EBADMSG", what);
		is_int(lock_acquire(be, 60, false, &l), -EBADMSG,
		       "acquire over %s is -EBADMSG without break_lock", what);
	}
	is_int(lock_acquire(be, 60, true, &l), 0, "break_lock takes over an unreadable lock");
	ok(lock_is(be, &l), "the unreadable lock was replaced by ours");

	/* Our lock turned to garbage under us: it is no longer ours. */
	tap_require(backend_put(be, LOCK_KEY, "garbage\n", 8, 0) == 0);
	is_int(lock_renew(&l), -ESTALE, "renew of a lock overwritten with garbage is -ESTALE");
	is_int(lock_release(&l), -ESTALE, "release of a lock overwritten with garbage is -ESTALE");
	ok(lock_read(be, &info) == -EBADMSG, "... and the garbage is left alone");
}

static void test_dead_holder(void)
{
	_cleanup_backend_ struct backend *be = NULL;
	struct repo_lock l;
	struct lock_info info;
	int64_t now = (int64_t)time(NULL);
	long gone = dead_pid();
	char other_host[256];

	tap_require(backend_mem_new(&be) == 0);
	snprintf(other_host, sizeof(other_host), "not-%.200s", hostname);

	/* Same host, same boot, no such pid: dead. */
	put_lock(be, hostname, boot_id, gone, now - 10, now + 900);
	tap_require(lock_read(be, &info) == 0);
	is_int(info.pid, gone, "hand-written lock parses (pid %ld)", gone);
	ok(lock_holder_is_dead(&info), "a holder on this host and boot whose pid is gone is dead");
	last_warning[0] = 0;
	is_int(lock_acquire(be, 60, false, &l), 0, "the lock of a dead holder is broken by itself");
	ok(lock_is(be, &l), "... and is ours now");
	ok(strstr(last_warning, hostname) != NULL, "... with a warning naming the old holder");
	is_int(lock_release(&l), 0, "release");

	/* Our own pid: alive, even when the lease has expired. */
	put_lock(be, hostname, boot_id, (long)getpid(), now - 2000, now - 1000);
	tap_require(lock_read(be, &info) == 0);
	ok(!lock_holder_is_dead(&info), "a holder with our own pid is alive");
	is_int(lock_acquire(be, 60, false, &l), -EBUSY,
	       "an expired lock of a live holder is -EBUSY without break_lock");

	/* pid 1 always runs. */
	put_lock(be, hostname, boot_id, 1, now, now + 900);
	tap_require(lock_read(be, &info) == 0);
	ok(!lock_holder_is_dead(&info), "a holder with pid 1 is alive");

	/* Another host: we cannot tell, so it is not dead. */
	put_lock(be, other_host, boot_id, gone, now, now + 900);
	tap_require(lock_read(be, &info) == 0);
	ok(!strcmp(info.host, other_host), "the other host name parses");
	ok(!lock_holder_is_dead(&info), "a holder on another host is not dead");
	is_int(lock_acquire(be, 60, false, &l), -EBUSY,
	       "the lock of another host is -EBUSY without break_lock");

	/* Same machine, an earlier boot: dead once its lease has run out, not before (a
	 * cloned VM may share the machine id). */
	if (boot_id[0]) {
		char old_boot[64];
		snprintf(old_boot, sizeof(old_boot), "%s", boot_id);
		old_boot[0] = old_boot[0] == '0' ? '1' : '0';
		put_lock(be, hostname, old_boot, (long)getpid(), now - 2000, now - 1000);
		tap_require(lock_read(be, &info) == 0);
		ok(lock_holder_is_dead(&info),
		   "a holder from an earlier boot of this machine, lease expired, is dead");
		put_lock(be, hostname, old_boot, (long)getpid(), now, now + 900);
		tap_require(lock_read(be, &info) == 0);
		ok(!lock_holder_is_dead(&info),
		   "a holder from an earlier boot with a live lease is not provably dead");
	}

	/* No boot id recorded: nothing can be proven, so it is not dead. */
	put_lock(be, hostname, "", gone, now, now + 900);
	tap_require(lock_read(be, &info) == 0);
	ok(!lock_holder_is_dead(&info), "a holder without a boot id is not provably dead");

	/* The same host name on another machine (localhost, cloned images) is not us. */
	info = (struct lock_info){.pid = gone};
	snprintf(info.host, sizeof(info.host), "%s", hostname);
	snprintf(info.boot, sizeof(info.boot), "%s", boot_id);
	snprintf(info.machine, sizeof(info.machine), "0000another0machine0000");
	snprintf(info.pidns, sizeof(info.pidns), "%s", pid_ns);
	ok(!lock_holder_is_dead(&info), "same host name, another machine id: not dead");
	/* Another pid namespace: the pid means nothing to us. */
	snprintf(info.machine, sizeof(info.machine), "%s", machine_id);
	snprintf(info.pidns, sizeof(info.pidns), "pid:[1]");
	ok(!lock_holder_is_dead(&info), "another pid namespace: not dead");

	/* Built by hand, without reading a lock. */
	info = (struct lock_info){.pid = gone};
	snprintf(info.host, sizeof(info.host), "%s", hostname);
	snprintf(info.boot, sizeof(info.boot), "%s", boot_id);
	snprintf(info.machine, sizeof(info.machine), "%s", machine_id);
	snprintf(info.pidns, sizeof(info.pidns), "%s", pid_ns);
	ok(lock_holder_is_dead(&info), "lock_holder_is_dead on a filled-in lock_info");
}

int main(void)
{
	plan_lazy();
	tap_require(codec_global_init() == 0);
	log_set_sink(capture_sink);
	read_identity();

	test_cycle();
	test_garbage();
	test_dead_holder();
	return tap_done();
}
