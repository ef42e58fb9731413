/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * FUSE requests over io_uring, when the kernel offers it (Linux 6.14+, with
 * /sys/module/fuse/parameters/enable_uring set to Y).
 *
 * Why: a request is a round trip between the caller and a daemon thread. Over /dev/fuse the
 * kernel wakes whichever daemon thread waits first, usually on another CPU, and on a virtual
 * machine a wake-up across CPUs is expensive (here 30-95 us a round trip, against 8.5 us on
 * one CPU; half of the daemon's CPU time during an rsync was spent in that switching). Over
 * io_uring the kernel keeps one queue per CPU and hands a request to a thread waiting on the
 * queue of the CPU the caller runs on; with that thread pinned there, the round trip stays
 * on one CPU.
 *
 * How, with libfuse 3.14, which predates this: through the session's custom I/O hooks.
 *  - read: the /dev/fuse read as before; it notes whether the kernel's INIT offers io_uring.
 *  - writev: the INIT reply asks for io_uring if the kernel offered it and every ring could be
 *    set up; once it is written, the ring threads start. A reply to a request that came over
 *    a ring is copied into that ring entry instead of being written. Everything else (the
 *    INIT reply, notifications, replies to requests read from /dev/fuse) is written as before.
 *  - ring threads: UR_PER_CPU of them for each possible CPU, each pinned to its CPU, each with
 *    a ring of its own holding one registered entry. A thread waits for a request, lays it out
 *    the way /dev/fuse would have delivered it (the in header, the opcode's fixed argument,
 *    the rest), hands it to fuse_session_process_buf(), and commits the reply in the same
 *    system call that waits for the next request.
 *  - libfuse's own loop keeps reading /dev/fuse: INIT, FORGET and INTERRUPT always come that
 *    way, and so does every request until each CPU's queue has an entry.
 * If anything fails before the INIT reply, the mount simply stays on /dev/fuse.
 *
 * A ring thread waits as SCHED_IDLE, and is SCHED_OTHER again as soon as it has a request.
 * Why: committing a reply wakes the caller from inside the wait, while the thread still runs
 * on the caller's CPU. The scheduler then moves the caller to an idle CPU, since its own is
 * busy, and on the next request the caller's CPU is the other one: every round trip crossed
 * CPUs again, an interprocessor interrupt each (23,000 migrations and as many IPIs for an
 * rsync of 12,000 unchanged files here). A CPU whose only running thread is SCHED_IDLE
 * counts as idle when the scheduler places a woken task, so the caller stays where it was,
 * and takes the CPU back at once. Measured on that rsync: 2.9 s before, 1.1 s after, 132
 * migrations. With every CPU kept busy by other work, a woken ring thread waits longer for
 * its CPU: with one spinning process per CPU that rsync took 1.3-1.5 s before and 1.6-1.8 s
 * after, with four per CPU 1.7 s before and 2.0-2.5 s after. A thread may only go back
 * from SCHED_IDLE with CAP_SYS_NICE or an RLIMIT_NICE that allows its nice value; a mount
 * that may not waits as SCHED_OTHER, as before.
 *
 * Not while a flusher of ours is at work, though. Then either it runs on the other CPU, so
 * there is no idle CPU for the caller to be moved to and the switch gains nothing, or it
 * waits for this one, and turning SCHED_IDLE hands it the CPU at once: the reply waits
 * until the flusher sleeps or its slice ends. In an initial rsync of 1.9 GB that was about
 * 55,000 of the ring threads' 230,000 preemptions; skipping the switch then took the wall
 * time from 31.2 and 29.5 s to 29.0 and 29.2 s, and the idle CPU time from 19.6 and 18.9 s
 * to 16.4 and 16.8 s.
 */
#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <liburing.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fs_internal.h"
#include "uring.h"

/* The kernel's ABI for this (include/uapi/linux/fuse.h, protocol 7.42), newer than the
 * headers Debian 12 ships. */
#define UR_FUSE_OVER_IO_URING (1ULL << 41)
#define UR_CMD_REGISTER 1u
#define UR_CMD_COMMIT_AND_FETCH 2u
#define UR_OP_MAX 128 /* room for the opcode's fixed argument */

struct ur_ent_in_out {
	uint64_t flags;
	uint64_t commit_id;  /* the request's unique, echoed in the commit */
	uint32_t payload_sz; /* bytes used in the payload buffer, either way */
	uint32_t padding;
	uint64_t reserved;
};

struct ur_req_header {
	char in_out[128]; /* fuse_in_header from the kernel, fuse_out_header back */
	char op_in[UR_OP_MAX];
	struct ur_ent_in_out ent;
};

struct ur_cmd_req { /* in the command area of a 128-byte SQE */
	uint64_t flags;
	uint64_t commit_id;
	uint16_t qid;
	uint8_t padding[6];
};

_Static_assert(offsetof(struct io_uring_sqe, cmd) == 48, "SQE command area");

#define UR_PER_CPU 4 /* requests one CPU's callers can have in service at once */
#define UR_MAX_CPUS 64
#define UR_IN_HDR sizeof(struct fuse_in_header)

struct ur_thread {
	pthread_t tid;
	bool started;
	bool ring_ok;
	uint16_t qid;
	struct io_uring ring;
	struct ur_req_header hdr; /* registered with the kernel: never moves */
	struct iovec iov[2];
	/* [UR_IN_HDR][UR_OP_MAX][payload]: the payload part is registered; the request is laid
	 * out contiguous by copying the two headers in front of it. */
	char *buf;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	_Atomic uint64_t unique; /* the request in service, 0 if none */
	bool replied;
};

static struct {
	struct fuse_session *se;
	int fd;
	bool offered; /* the kernel's INIT offered io_uring */
	uint64_t init_unique;
	size_t payload;
	unsigned nthreads;
	struct ur_thread *t;
	atomic_bool stop;
	atomic_bool serving;	 /* a request came over a ring */
	bool idle_wait;		 /* ring threads wait as SCHED_IDLE (see the top) */
	atomic_bool idle_stuck;	 /* one could not leave it (logged once) */
	atomic_int busy_workers; /* flushers at work (see the top) */
} ur = {.fd = -1};

void fs_uring_worker_busy(bool busy)
{
	atomic_fetch_add_explicit(&ur.busy_workers, busy ? 1 : -1, memory_order_relaxed);
}

static _Thread_local struct ur_thread *ur_self;

/* The kernel makes a queue for every possible CPU and uses the ring only once each has an
 * entry, so the count must be the possible CPUs, not the online ones. */
static unsigned possible_cpus(void)
{
	unsigned lo, hi, n = 0;
	FILE *f = fopen("/sys/devices/system/cpu/possible", "re");
	char line[256];
	if (f && fgets(line, sizeof(line), f)) {
		/* "0-3" or "0-3,5,7-8": the highest number plus one */
		for (char *p = line; p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
			int k = sscanf(p, "%u-%u", &lo, &hi);
			if (k == 1)
				hi = lo;
			if (k >= 1 && hi + 1 > n)
				n = hi + 1;
		}
	}
	if (f)
		fclose(f);
	return n ? n : (unsigned)get_nprocs_conf();
}

static void ur_prep(struct ur_thread *t, unsigned cmd, uint64_t commit_id)
{
	/* The ring has room: this thread has at most one command outstanding. */
	struct io_uring_sqe *sqe = io_uring_get_sqe(&t->ring);
	io_uring_prep_rw(IORING_OP_URING_CMD, sqe, ur.fd, t->iov, 2, 0);
	sqe->cmd_op = cmd;
	/* The command area: the second half of the 128-byte SQE, zero but for the request. */
	char area[128 - offsetof(struct io_uring_sqe, cmd)] = {0};
	struct ur_cmd_req c = {.commit_id = commit_id, .qid = t->qid};
	memcpy(area, &c, sizeof(c));
	memcpy((char *)sqe + offsetof(struct io_uring_sqe, cmd), area, sizeof(area));
}

/* A reply for request t is being written (by libfuse, usually on t's own thread): copy it
 * into t's entry. */
static ssize_t ur_reply(struct ur_thread *t, const struct iovec *iov, int count)
{
	struct fuse_out_header oh;
	memcpy(&oh, iov[0].iov_base, sizeof(oh));
	size_t total = 0;
	for (int i = 1; i < count; i++)
		total += iov[i].iov_len;
	char *p = t->buf + UR_IN_HDR + UR_OP_MAX;
	if (total > ur.payload) {
		log_error("FUSE reply of %zu bytes to request %llu does not fit the ring buffer",
			  total, (unsigned long long)oh.unique);
		oh.error = -EIO;
		total = 0;
	}
	size_t off = 0;
	for (int i = 1; i < count && total; i++) {
		memmove(p + off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	oh.len = (uint32_t)(sizeof(oh) + total);
	memcpy(t->hdr.in_out, &oh, sizeof(oh));
	t->hdr.ent.payload_sz = (uint32_t)total;
	pthread_mutex_lock(&t->lock);
	t->replied = true;
	pthread_cond_signal(&t->cond);
	pthread_mutex_unlock(&t->lock);
	return (ssize_t)(sizeof(oh) + total);
}

static struct ur_thread *ur_owner(uint64_t unique)
{
	if (ur_self && atomic_load(&ur_self->unique) == unique)
		return ur_self;
	for (unsigned i = 0; i < ur.nthreads && ur.t; i++)
		if (atomic_load(&ur.t[i].unique) == unique)
			return &ur.t[i];
	return NULL;
}

/* Serve the request in t's entry; returns its unique, for the commit. */
static uint64_t ur_serve(struct ur_thread *t)
{
	struct fuse_in_header in;
	memcpy(&in, t->hdr.in_out, sizeof(in));
	size_t psz = t->hdr.ent.payload_sz;
	if (in.len < UR_IN_HDR + psz || in.len - UR_IN_HDR - psz > UR_OP_MAX || psz > ur.payload) {
		log_error("FUSE ring request %llu (opcode %u) has a bad length %u",
			  (unsigned long long)in.unique, in.opcode, in.len);
		struct fuse_out_header oh = {.len = sizeof(oh), .error = -EIO, .unique = in.unique};
		memcpy(t->hdr.in_out, &oh, sizeof(oh));
		t->hdr.ent.payload_sz = 0;
		return in.unique;
	}
	size_t op = in.len - UR_IN_HDR - psz;
	char *start = t->buf + UR_OP_MAX - op;
	memcpy(start, &in, UR_IN_HDR);
	memcpy(start + UR_IN_HDR, t->hdr.op_in, op);
	struct fuse_buf fb = {.mem = start, .size = in.len};
	t->replied = false;
	atomic_store(&t->unique, in.unique);
	fuse_session_process_buf(ur.se, &fb);
	/* Every request that comes over a ring gets a reply (FORGET, the one that does not,
	 * never does); a handler may give it from another thread. */
	pthread_mutex_lock(&t->lock);
	while (!t->replied)
		pthread_cond_wait(&t->cond, &t->lock);
	pthread_mutex_unlock(&t->lock);
	atomic_store(&t->unique, 0);
	return in.unique;
}

/* Make a registration fail, through t's ring: the kernel then gives up the rings for good
 * and serves everything over /dev/fuse. */
static void ur_refuse(struct ur_thread *t)
{
	uint16_t qid = t->qid;
	t->qid = UINT16_MAX; /* no such queue: EINVAL */
	ur_prep(t, UR_CMD_REGISTER, 0);
	t->qid = qid;
	struct io_uring_cqe *cqe;
	if (io_uring_submit_and_wait(&t->ring, 1) >= 0 && !io_uring_peek_cqe(&t->ring, &cqe))
		io_uring_cqe_seen(&t->ring, cqe);
}

/* A ring thread cannot go on. Its entry must not be left where the kernel could hand it a
 * request nobody would answer: closing the ring takes it back. And before the first request,
 * the kernel would hold every request until this queue had an entry: a registration made to
 * fail tells it to give up the rings (see ur_abandon). */
static void ur_fail(struct ur_thread *t, int err)
{
	log_error("FUSE ring thread of CPU %u: %s", t->qid, strerror(-err));
	if (!atomic_load(&ur.serving))
		ur_refuse(t);
	io_uring_queue_exit(&t->ring);
	t->ring_ok = false;
}

static void *ur_main(void *arg)
{
	struct ur_thread *t = arg;
	ur_self = t;
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	cpu_set_t cpus;
	CPU_ZERO(&cpus);
	CPU_SET(t->qid, &cpus);
	/* An offline CPU's queue still needs an entry; its thread just runs anywhere. */
	(void)sched_setaffinity(0, sizeof(cpus), &cpus);

	ur_prep(t, UR_CMD_REGISTER, 0);
	while (!atomic_load(&ur.stop)) {
		struct io_uring_cqe *cqe = NULL;
		struct __kernel_timespec ts = {.tv_sec = 1}; /* to notice ur.stop */
		const struct sched_param sp = {0};
		bool idle = ur.idle_wait &&
			    atomic_load_explicit(&ur.busy_workers, memory_order_relaxed) == 0;
		if (idle)
			(void)sched_setscheduler(0, SCHED_IDLE, &sp);
		int r = io_uring_submit_and_wait_timeout(&t->ring, &cqe, 1, &ts, NULL);
		if (idle && sched_setscheduler(0, SCHED_OTHER, &sp) < 0 &&
		    !atomic_exchange(&ur.idle_stuck, true))
			log_error("FUSE ring thread of CPU %u: cannot leave SCHED_IDLE: %s", t->qid,
				  strerror(errno));
		/* The call may submit and then time out with no completion to show. */
		if (r >= 0 && !cqe && io_uring_peek_cqe(&t->ring, &cqe) < 0)
			continue;
		if (r == -ETIME || r == -EINTR)
			continue;
		if (r == -EAGAIN || r == -EBUSY || r == -ENOMEM) {
			usleep(1000);
			continue;
		}
		if (r < 0) {
			ur_fail(t, r);
			break;
		}
		int res = cqe->res;
		io_uring_cqe_seen(&t->ring, cqe);
		if (res == -EAGAIN) { /* the connection is not initialised yet */
			usleep(1000);
			ur_prep(t, UR_CMD_REGISTER, 0);
			continue;
		}
		if (res < 0) {
			/* ENOTCONN, ECANCELED: the file system is being unmounted. */
			if (res != -ENOTCONN && res != -ECANCELED && res != -ECONNABORTED)
				ur_fail(t, res);
			break;
		}
		if (!atomic_exchange(&ur.serving, true))
			log_info("FUSE requests go over io_uring: %u queues of %u threads, "
				 "waiting as %s",
				 ur.nthreads / UR_PER_CPU, UR_PER_CPU,
				 ur.idle_wait ? "SCHED_IDLE" : "SCHED_OTHER");
		ur_prep(t, UR_CMD_COMMIT_AND_FETCH, ur_serve(t));
	}
	return NULL;
}

static void ur_free(void)
{
	unsigned n = ur.nthreads;
	ur.nthreads = 0;
	for (unsigned i = 0; i < n; i++) {
		struct ur_thread *t = &ur.t[i];
		if (t->ring_ok)
			io_uring_queue_exit(&t->ring);
		free(t->buf);
		pthread_mutex_destroy(&t->lock);
		pthread_cond_destroy(&t->cond);
	}
	free(ur.t);
	ur.t = NULL;
}

static void *idle_probe(void *arg)
{
	const struct sched_param sp = {0};
	bool *ok = arg;
	*ok = sched_setscheduler(0, SCHED_IDLE, &sp) == 0 &&
	      sched_setscheduler(0, SCHED_OTHER, &sp) == 0;
	return NULL;
}

/* Whether a thread of ours may go back from SCHED_IDLE to SCHED_OTHER: asked of the kernel
 * by a thread of its own, which may be left idle if not. */
static bool idle_wait_allowed(void)
{
	pthread_t t;
	bool ok = false;
	if (pthread_create(&t, NULL, idle_probe, &ok) != 0)
		return false;
	pthread_join(t, NULL);
	return ok;
}

/* Everything that can fail, done before the INIT reply commits the kernel to the rings. */
static int ur_setup(size_t payload)
{
	unsigned ncpu = possible_cpus();
	if (ncpu > UR_MAX_CPUS)
		return -E2BIG;
	ur.payload = payload;
	ur.idle_wait = idle_wait_allowed();
	ur.t = calloc(ncpu * UR_PER_CPU, sizeof(*ur.t));
	if (!ur.t)
		return -ENOMEM;
	ur.nthreads = ncpu * UR_PER_CPU;
	for (unsigned i = 0; i < ur.nthreads; i++) {
		pthread_mutex_init(&ur.t[i].lock, NULL);
		pthread_cond_init(&ur.t[i].cond, NULL);
	}
	for (unsigned i = 0; i < ur.nthreads; i++) {
		struct ur_thread *t = &ur.t[i];
		t->qid = (uint16_t)(i / UR_PER_CPU);
		t->buf = malloc(UR_IN_HDR + UR_OP_MAX + payload);
		if (!t->buf)
			return -ENOMEM;
		t->iov[0] = (struct iovec){&t->hdr, sizeof(t->hdr)};
		t->iov[1] = (struct iovec){t->buf + UR_IN_HDR + UR_OP_MAX, payload};
		int r = io_uring_queue_init(4, &t->ring, IORING_SETUP_SQE128);
		if (r < 0)
			return r;
		t->ring_ok = true;
	}
	return 0;
}

/* The kernel gives up the rings when a registration fails: make one fail on purpose when
 * the threads cannot all be started, or every request would wait for a queue never filled. */
static void ur_abandon(void)
{
	for (unsigned i = 0; i < ur.nthreads; i++) {
		struct ur_thread *t = &ur.t[i];
		if (t->started || !t->ring_ok)
			continue;
		ur_refuse(t);
		return;
	}
}

static ssize_t ur_init_reply(int fd, const struct iovec *iov, int count)
{
	char msg[sizeof(struct fuse_out_header) + sizeof(struct fuse_init_out)] = {0};
	size_t len = 0;
	for (int i = 0; i < count; i++)
		len += iov[i].iov_len;
	ur.offered = false;
	ur.init_unique = 0;
	if (len != sizeof(msg))
		return writev(fd, iov, count);
	for (int i = 0, off = 0; i < count; off += (int)iov[i].iov_len, i++)
		memcpy(msg + off, iov[i].iov_base, iov[i].iov_len);
	struct fuse_init_out *io = (void *)(msg + sizeof(struct fuse_out_header));
	size_t payload = MAX((size_t)io->max_write, (size_t)io->max_pages * getpagesize());
	payload = MAX(payload, (size_t)8192);
	int r = ur_setup(payload);
	if (r < 0) {
		log_info("FUSE requests stay on /dev/fuse: io_uring setup failed: %s",
			 strerror(-r));
		ur_free();
		return writev(fd, iov, count);
	}
	io->flags |= FUSE_INIT_EXT;
	io->flags2 |= (uint32_t)(UR_FUSE_OVER_IO_URING >> 32);
	ssize_t n = write(fd, msg, len);
	if (n != (ssize_t)len) {
		int e = errno;
		ur_free();
		errno = e;
		return n;
	}
	for (unsigned i = 0; i < ur.nthreads; i++) {
		r = -pthread_create(&ur.t[i].tid, NULL, ur_main, &ur.t[i]);
		if (r < 0) {
			log_error("FUSE ring thread: %s; requests stay on /dev/fuse", strerror(-r));
			ur_abandon();
			break;
		}
		ur.t[i].started = true;
	}
	return n;
}

static ssize_t ur_read(int fd, void *buf, size_t len, void *userdata)
{
	(void)userdata;
	ssize_t n = read(fd, buf, len);
	const struct fuse_in_header *in = buf;
	if (n >= (ssize_t)(UR_IN_HDR + offsetof(struct fuse_init_in, flags2) + 4) &&
	    in->opcode == FUSE_INIT) {
		const struct fuse_init_in *ii = (const void *)(in + 1);
		uint64_t flags = ii->flags;
		if (flags & FUSE_INIT_EXT)
			flags |= (uint64_t)ii->flags2 << 32;
		ur.offered = flags & UR_FUSE_OVER_IO_URING;
		ur.init_unique = in->unique;
	}
	return n;
}

static ssize_t ur_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	(void)userdata;
	const struct fuse_out_header *oh = iov[0].iov_base;
	if (oh->unique) {
		struct ur_thread *t = ur_owner(oh->unique);
		if (t)
			return ur_reply(t, iov, count);
		if (oh->unique == ur.init_unique && ur.offered && !oh->error)
			return ur_init_reply(fd, iov, count);
	}
	return writev(fd, iov, count);
}

#define UR_PARAM "/sys/module/fuse/parameters/enable_uring"

/* The fuse module's enable_uring: 'Y', 'N', or 0 for a kernel without it. */
static char kernel_switch(void)
{
	char c = 0;
	FILE *f = fopen(UR_PARAM, "re");
	if (f) {
		c = (char)fgetc(f);
		fclose(f);
	}
	return c;
}

/* The kernel offers io_uring at INIT only when switched on (off by default); otherwise the
 * session is left exactly as libfuse sets it up. A kernel that has it switched off gets a
 * hint in the log: over /dev/fuse the benchmark's rsync (tests/bench/mount.sh) took 1.6 to
 * 3 times as long on the development VM. */
int fs_uring_attach(struct fuse_session *se)
{
	static const struct fuse_custom_io io = {.read = ur_read, .writev = ur_writev};
	char c = kernel_switch();
	if (c == 'N')
		log_info(
			"FUSE requests go over /dev/fuse: this kernel can pass them over io_uring, "
			"which is faster, but " UR_PARAM " is N (README, \"Speed\")");
	if (c != 'Y')
		return 0;
	ur.se = se;
	ur.fd = fuse_session_fd(se);
	int r = fuse_session_custom_io(se, &io, ur.fd);
	return r < 0 ? r : r > 0 ? -r : 0;
}

void fs_uring_stop(void)
{
	atomic_store(&ur.stop, true);
	for (unsigned i = 0; i < ur.nthreads; i++)
		if (ur.t[i].started)
			pthread_join(ur.t[i].tid, NULL);
	ur_free();
}
