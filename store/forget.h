/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Time-based retention ("forget"/"prune" policies): given the snapshots of a commit and a
 * policy such as "the last 3, one per day for 7 days, one per week for 4 weeks", decide which
 * snapshots stay. The rules are borg prune's (borg 1.2 and later, src/borg/archiver/
 * prune_cmd.py: prune_within and prune_split); where restic forget (internal/data/
 * snapshot_policy.go: ApplyPolicy) behaves differently it is said below, with the choice made.
 * This module only decides: it reads no clock, touches no repository and logs nothing.
 *
 * Order. Snapshots are ranked newest first by time_ns. Equal times are ranked by name, the
 * name that sorts first (strcmp) counting as the newer one (so at one instant "hourly.0" is
 * newer than "hourly.1", as in rotation), then by host the same way, then by position in the
 * input, so the result never depends on the order of the input except for exact duplicates.
 *
 * Rules, applied one after the other in this order (borg's order): within, last, hourly,
 * daily, weekly, monthly, yearly. A rule whose field is 0 is not used. Each snapshot records
 * the first rule that kept it.
 *
 *  within D  Keeps every snapshot strictly newer than (time of the newest snapshot - D).
 *            Relative to the newest snapshot as restic does, not to the current time as borg
 *            does: the plan is then a function of the snapshots alone, and a machine whose
 *            backups stopped a month ago does not see its whole "within" window empty.
 *            Restic also ignores snapshots dated in the future when finding the newest; this
 *            module has no clock, so the newest is simply the highest time.
 *  last N    Keeps the N newest snapshots not already kept by "within". restic's "last"
 *            (every snapshot is its own period); borg makes --keep-last an alias of
 *            --keep-secondly, which differs only when two snapshots share a second.
 *  hourly N, daily N, weekly N, monthly N, yearly N
 *            Walk the snapshots newest to oldest, computing each one's period: hour
 *            ("%Y-%m-%d %H"), day ("%Y-%m-%d"), ISO 8601 week ("%G-%V": weeks run Monday to
 *            Sunday, and the days of a week that straddles the new year belong to the year
 *            that holds its Thursday, so 2021-01-03 is in week 2020-53), month ("%Y-%m") or
 *            year ("%Y"). Whenever the period differs from the previous snapshot's, that
 *            snapshot is the newest of its period: it is kept and counted, unless an earlier
 *            rule already kept it, in which case the period is used up but not counted
 *            ("backups selected by previous rules do not count towards those of later
 *            rules", borg). The walk stops once N snapshots were counted. Periods without any
 *            snapshot do not count. So with hourly snapshots, "last 2, daily 2" keeps today's
 *            two newest and the newest of each of the two previous days that have snapshots.
 *            Restic differs here: it counts a snapshot for every rule that selects it, so the
 *            same policy keeps only today's two newest and yesterday's newest there.
 *  oldest    If a period rule (hourly ... yearly) counted fewer than N snapshots, the oldest
 *            snapshot is kept too, unless something already keeps it (borg >= 1.2, restic >=
 *            0.17): the first backup keeps ageing until newer ones fill the rule. Its reason
 *            is the rule's name followed by "[oldest]", e.g. "daily[oldest]". ("last" never
 *            needs this: when it counts fewer than N it has kept every snapshot.)
 *
 * A period is computed in the machine's local time zone (localtime_r, as borg does), or in
 * UTC when tz_utc is true. In local time, the hour repeated when clocks go back is one
 * period. localtime_r may read the zone only once per process; call tzset() after changing
 * TZ.
 *
 * Thread safety: every function is reentrant; nothing is shared between calls.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "commit.h"

/* A policy; zero-initialise and set the rules wanted. */
struct forget_policy {
	/* How many snapshots (last) or periods (the others) to keep. 0 = rule not used; a count
	 * at least the number of snapshots means no limit. */
	unsigned last, hourly, daily, weekly, monthly, yearly;
	/* Keep everything newer than newest - within_ns (0 = not used). */
	uint64_t within_ns;
};

/*
 * Parse a duration for forget_policy.within_ns: one or more <digits><unit> groups, each unit
 * at most once and from the largest to the smallest unit, with nothing else (no sign, space or
 * fraction). Units, with borg's fixed lengths, since a policy's window must not depend on
 * where it is applied:
 *     y  year  = 365 days (borg; restic uses calendar years)
 *     m  month = 31 days (borg; restic uses calendar months; note "m" is not minutes)
 *     w  week  = 7 days (borg; restic has no week unit)
 *     d  day   = 24 hours (restic and borg, which also use 24-hour days)
 *     h  hour  (restic's spelling; borg's "H" is accepted too)
 * Examples: "1h", "2d", "3w", "4m", "1y", "1y2m3d", "2w12h". Returns 0 and the duration in
 * nanoseconds in *ret_ns, or -EINVAL (empty, malformed, an unknown, repeated or misordered
 * unit, a total of zero, or more than fits in 64 bits of nanoseconds, about 584 years);
 * *ret_ns is written only on success.
 */
int forget_parse_duration(const char *s, uint64_t *ret_ns);

/*
 * Decide which of snaps[0..n) (any order) the policy p keeps, as described at the top of this
 * file. On success keep[i] is true or false for every i, and when reasons is not NULL,
 * reasons[i] is a static string naming the first rule that kept snaps[i] ("within", "last",
 * "hourly", "daily", "weekly", "monthly", "yearly", or one of the period rules followed by
 * "[oldest]"), or NULL when snaps[i] is to be dropped. Nothing is modified in snaps.
 *
 * Returns 0 (also for n == 0), or:
 *   -EINVAL  p keeps nothing at all (every field 0): refusing to drop every snapshot; or a
 *            snapshot time the C library cannot convert to a calendar date;
 *   -ENOMEM;
 *   -EPERM   the plan would drop every one of n > 0 snapshots. The rules above always keep
 *            the newest snapshot, so this is a guard that should never fire.
 * On every error keep[i] is true and reasons[i] (if reasons is not NULL) NULL for every i, so
 * a caller that ignores the error still drops nothing.
 */
int forget_plan(const struct snapshot_ref *snaps, size_t n, const struct forget_policy *p,
		bool tz_utc, bool *keep, const char **reasons);
