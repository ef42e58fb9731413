/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Snapshot names and rsnapshot-style rotation, as edits of the snapshot list of a struct
 * commit in memory. No I/O: the caller loads a commit, edits it here, and writes the next one
 * (a rotation is then one commit: it renames, it never copies a tree).
 *
 * Rotation (rsnapshot 1.5, `retain INTERVAL KEEP`). Names of the form INTERVAL.N, where N is a
 * canonical decimal ("0", or digits without a leading zero), belong to INTERVAL; every other
 * name ("before-upgrade", "daily.3" for hourly, "hourly.07", "hourly.x") is left alone.
 *   - lowest interval: drop INTERVAL.N for every N >= KEEP-1, rename INTERVAL.N to
 *     INTERVAL.N+1 for the others, then add INTERVAL.0, the new snapshot;
 *   - higher interval (LOWER with LOWER_KEEP below it): the oldest snapshot of the lower
 *     interval, LOWER.(LOWER_KEEP-1), must exist; drop and shift INTERVAL as above, then rename
 *     LOWER.(LOWER_KEEP-1) to INTERVAL.0 (it keeps its root, time and host).
 * rsnapshot itself drops only INTERVAL.(KEEP-1); dropping every N >= KEEP-1 also honours a KEEP
 * lowered since the last run instead of leaving the old tail behind forever.
 *
 * Order of c->snaps: a renamed snapshot keeps its place, a dropped one leaves, a new one is
 * appended. As every snapshot is appended when taken, the list stays in the order taken.
 *
 * The names in c are assumed unique (every function here keeps them so).
 * Errors: every function either succeeds or leaves c exactly as it was (same array, same
 * strings): new names and the new array are built aside and swapped in at the end.
 * Thread safety: reentrant, no global state; a struct commit belongs to one thread at a time.
 */
#pragma once

#include "commit.h"

/*
 * Whether name may be given to a snapshot by a user: 1..COMMIT_STR_MAX (255) bytes, no '/',
 * no control character (C0, DEL, or C1 encoded as UTF-8), not "." or "..", not "current"
 * (the working tree), not starting with '.' (hidden and internal names). Any other bytes,
 * UTF-8 or not, spaces included, are allowed.
 * Returns 0, or -EINVAL with *why (if why is not NULL) set to a static English reason such
 * as "contains '/'" or "is reserved", to be printed after the name.
 */
int snapshot_name_check(const char *name, const char **why);

/* Index of the snapshot named name in c, or -1 (also for a NULL name). */
ssize_t snapshot_find(const struct commit *c, const char *name);

/*
 * Rotate INTERVAL with keep copies, rsnapshot's way (see above).
 * lower == NULL: interval is the lowest one, and new_root (not NULL), time_ns and host
 *   (NULL means "") describe the new INTERVAL.0.
 * lower != NULL: lower is the interval below, with lower_keep copies; new_root, time_ns and
 *   host are ignored.
 * Returns 0;
 *   -EINVAL: keep or lower_keep is 0, new_root is NULL for the lowest interval, lower equals
 *            interval, interval.(keep-1) or lower.(lower_keep-1) is not a valid name
 *            (snapshot_name_check), host is longer than COMMIT_STR_MAX;
 *   -ENOENT: lower.(lower_keep-1) does not exist: nothing to promote, nothing rotated (as
 *            rsnapshot 1.5; older versions shifted anyway and left INTERVAL.0 missing);
 *   -ENOSPC: the list would exceed COMMIT_MAX_SNAPSHOTS;
 *   -ENOMEM.
 */
int snapshot_rotate(struct commit *c, const char *interval, unsigned keep, const char *lower,
		    unsigned lower_keep, const struct blob_id *new_root, uint64_t time_ns,
		    const char *host);

/* Remove the snapshot named name. Returns 0 or -ENOENT. */
int snapshot_remove(struct commit *c, const char *name);

/*
 * Rename snapshot from to to (root, time and host unchanged, place in the list kept).
 * Renaming a snapshot to its own name succeeds and changes nothing.
 * Returns 0; -EINVAL (to fails snapshot_name_check), -ENOENT (no snapshot from),
 * -EEXIST (a snapshot named to exists), -ENOMEM.
 */
int snapshot_rename(struct commit *c, const char *from, const char *to);
