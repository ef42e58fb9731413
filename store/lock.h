/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The write lease: exactly one writer per repository. The `lock` object is created with an
 * exclusive put (O_EXCL-like link on a local directory, If-None-Match on S3), renewed while
 * the writer runs, and deleted when it stops. It is plain text so an admin can read it:
 *
 *     cairn-lock 1
 *     holder = <32 hex: random per acquisition>
 *     host = <hostname>
 *     machine = <machine id, /etc/machine-id>
 *     boot = <kernel boot id>
 *     pidns = <pid namespace, /proc/self/ns/pid>
 *     pid = <pid>
 *     since = <unix seconds>
 *     expires = <unix seconds>
 *
 * A lock held by a process that provably no longer runs is broken automatically with a
 * warning: same machine id, and either an earlier boot whose lease has run out, or this
 * boot and pid namespace with no such pid. Any other lock, expired or not, is broken only
 * on request (break_lock): two machines must never both write.
 *
 * Thread safety: a struct repo_lock belongs to one thread at a time.
 */
#pragma once

#include "backend.h"

#define LOCK_KEY "lock"
#define LOCK_LEASE_DEFAULT 900 /* seconds */

struct repo_lock {
	struct backend *backend; /* not owned */
	char holder[33];
	unsigned lease;
};

struct lock_info {
	char holder[33];
	char host[256];
	char boot[64];
	char machine[64];
	char pidns[64];
	long pid;
	int64_t since, expires;
};

/*
 * Take the lock. Returns 0; -EBUSY when another writer holds it (logged, naming the holder's
 * host, pid and times, and how to break it); -EBADMSG if the lock object is unreadable
 * garbage (broken only with break_lock); backend errors.
 */
int lock_acquire(struct backend *b, unsigned lease, bool break_lock, struct repo_lock *ret);
/* Extend the lease. -ESTALE when the lock is no longer ours (someone broke it). */
int lock_renew(struct repo_lock *l);
/* Delete the lock if it is still ours. */
int lock_release(struct repo_lock *l);
/* Read the current lock object. -ENOENT when unlocked. */
int lock_read(struct backend *b, struct lock_info *ret);
/* true when info describes a process of this host that no longer runs. */
bool lock_holder_is_dead(const struct lock_info *info);
