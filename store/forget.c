/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Time-based retention: which snapshots a policy of within/last/hourly/daily/weekly/monthly/
 * yearly rules keeps, following borg prune. The rules and every difference from restic are
 * documented in forget.h; this file sorts the snapshots, computes each one's calendar periods
 * once, and runs the rules over the sorted array.
 */
#include "forget.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

#define NSEC_PER_SEC UINT64_C(1000000000)
#define SEC_PER_HOUR UINT64_C(3600)
#define SEC_PER_DAY (24 * SEC_PER_HOUR)

int forget_parse_duration(const char *s, uint64_t *ret_ns)
{
	/* Largest unit first: a unit may only follow a larger one, which rules out both
	 * repeats and "1d1y" (likely a typo for something else). */
	static const struct {
		char unit;
		uint64_t sec;
	} units[] = {
		{'y', 365 * SEC_PER_DAY}, {'m', 31 * SEC_PER_DAY}, {'w', 7 * SEC_PER_DAY},
		{'d', SEC_PER_DAY},	  {'h', SEC_PER_HOUR},
	};
	uint64_t total = 0;
	size_t next_unit = 0;

	if (!s || !*s)
		return -EINVAL;
	while (*s) {
		uint64_t v = 0, step;
		size_t u;
		char c;

		/* Digits by hand: strtoull would accept a sign and leading spaces. */
		if (*s < '0' || *s > '9')
			return -EINVAL;
		for (; *s >= '0' && *s <= '9'; s++) {
			unsigned d = (unsigned)(*s - '0');
			if (v > (UINT64_MAX - d) / 10)
				return -EINVAL;
			v = v * 10 + d;
		}
		c = *s++;
		if (c == 'H') /* borg's spelling of hours */
			c = 'h';
		for (u = next_unit; u < ELEMENTSOF(units) && units[u].unit != c; u++)
			;
		if (u == ELEMENTSOF(units))
			return -EINVAL; /* unknown, repeated, misordered, or missing */
		next_unit = u + 1;

		if (v > UINT64_MAX / (units[u].sec * NSEC_PER_SEC))
			return -EINVAL;
		step = v * units[u].sec * NSEC_PER_SEC;
		if (step > UINT64_MAX - total)
			return -EINVAL;
		total += step;
	}
	/* 0 would mean "rule not used" in struct forget_policy: never produce it silently. */
	if (total == 0)
		return -EINVAL;
	*ret_ns = total;
	return 0;
}

enum period { PERIOD_HOUR, PERIOD_DAY, PERIOD_WEEK, PERIOD_MONTH, PERIOD_YEAR, N_PERIODS };

static const char *const period_reason[N_PERIODS] = {"hourly", "daily", "weekly", "monthly",
						     "yearly"};
static const char *const period_oldest_reason[N_PERIODS] = {
	"hourly[oldest]", "daily[oldest]", "weekly[oldest]", "monthly[oldest]", "yearly[oldest]"};

struct entry {
	uint64_t time_ns;
	const char *name, *host;
	size_t idx; /* position in the caller's array */
	int64_t period[N_PERIODS];
	const char *reason; /* first rule that kept it, NULL while none has */
};

static int str_cmp(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "");
}

/* Newest first; the tie-breaks are the ones forget.h promises. */
static int entry_cmp(const void *x, const void *y)
{
	const struct entry *a = x, *b = y;
	int r;

	if (a->time_ns != b->time_ns)
		return a->time_ns > b->time_ns ? -1 : 1;
	r = str_cmp(a->name, b->name);
	if (r)
		return r;
	r = str_cmp(a->host, b->host);
	if (r)
		return r;
	return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static bool leap_year(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/*
 * ISO 8601 week as year * 100 + week, what strftime("%G-%V") prints, computed from the
 * broken-down time so no locale or buffer is involved: a week belongs to the year that holds
 * its Thursday, and is numbered by that Thursday's day of the year.
 */
static int64_t iso_week(const struct tm *tm)
{
	int64_t year = (int64_t)tm->tm_year + 1900;
	int monday_based = (tm->tm_wday + 6) % 7;      /* Monday 0 .. Sunday 6 */
	int thursday = tm->tm_yday - monday_based + 3; /* its week's Thursday, day of year */

	if (thursday < 0) {
		year--;
		thursday += leap_year(year) ? 366 : 365;
	} else if (thursday >= (leap_year(year) ? 366 : 365)) {
		thursday -= leap_year(year) ? 366 : 365;
		year++;
	}
	return year * 100 + thursday / 7 + 1;
}

static int compute_periods(struct entry *e, bool tz_utc)
{
	time_t t = (time_t)(e->time_ns / NSEC_PER_SEC);
	struct tm tm;
	int64_t y, ym, ymd;

	if (!(tz_utc ? gmtime_r(&t, &tm) : localtime_r(&t, &tm)))
		return -EINVAL;
	/* Distinct integers for distinct periods, in the spirit of borg's strftime strings. */
	y = (int64_t)tm.tm_year + 1900;
	ym = y * 100 + tm.tm_mon + 1;
	ymd = ym * 100 + tm.tm_mday;
	e->period[PERIOD_YEAR] = y;
	e->period[PERIOD_MONTH] = ym;
	e->period[PERIOD_DAY] = ymd;
	e->period[PERIOD_HOUR] = ymd * 100 + tm.tm_hour;
	e->period[PERIOD_WEEK] = iso_week(&tm);
	return 0;
}

/* borg's prune_within, with the window anchored at the newest snapshot (see forget.h). */
static void rule_within(struct entry *e, size_t n, uint64_t within_ns)
{
	uint64_t newest = e[0].time_ns;

	/* "time > newest - within" without the underflow when within exceeds newest. */
	for (size_t i = 0; i < n; i++)
		if (!e[i].reason && newest - e[i].time_ns < within_ns)
			e[i].reason = "within";
}

static void rule_last(struct entry *e, size_t n, unsigned count)
{
	unsigned kept = 0;

	for (size_t i = 0; i < n && kept < count; i++)
		if (!e[i].reason) {
			e[i].reason = "last";
			kept++;
		}
}

/* borg's prune_split for one period rule, oldest-snapshot fallback included. */
static void rule_period(struct entry *e, size_t n, enum period per, unsigned count)
{
	unsigned kept = 0;

	for (size_t i = 0; i < n; i++) {
		/* A period starts at a snapshot whose period differs from the one before it, even
		 * when that snapshot was kept by an earlier rule: the period is then used up
		 * without counting towards this rule. */
		if (i > 0 && e[i].period[per] == e[i - 1].period[per])
			continue;
		if (e[i].reason)
			continue;
		e[i].reason = period_reason[per];
		if (++kept == count)
			return;
	}
	if (!e[n - 1].reason)
		e[n - 1].reason = period_oldest_reason[per];
}

static void keep_all(size_t n, bool *keep, const char **reasons)
{
	for (size_t i = 0; i < n; i++) {
		keep[i] = true;
		if (reasons)
			reasons[i] = NULL;
	}
}

int forget_plan(const struct snapshot_ref *snaps, size_t n, const struct forget_policy *p,
		bool tz_utc, bool *keep, const char **reasons)
{
	_cleanup_free_ struct entry *e = NULL;
	unsigned counts[N_PERIODS];
	size_t nkept = 0;
	int r;

	assert(p);
	assert(n == 0 || (snaps && keep));
	counts[PERIOD_HOUR] = p->hourly;
	counts[PERIOD_DAY] = p->daily;
	counts[PERIOD_WEEK] = p->weekly;
	counts[PERIOD_MONTH] = p->monthly;
	counts[PERIOD_YEAR] = p->yearly;

	/* Until the plan is complete, the answer is "keep everything": every error path
	 * leaves it so. */
	keep_all(n, keep, reasons);
	if (!p->last && !p->hourly && !p->daily && !p->weekly && !p->monthly && !p->yearly &&
	    !p->within_ns)
		return -EINVAL;
	if (n == 0)
		return 0;

	e = calloc(n, sizeof(*e));
	if (!e)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		e[i].time_ns = snaps[i].time_ns;
		e[i].name = snaps[i].name;
		e[i].host = snaps[i].host;
		e[i].idx = i;
		r = compute_periods(&e[i], tz_utc);
		if (r < 0)
			return r;
	}
	qsort(e, n, sizeof(*e), entry_cmp);

	if (p->within_ns)
		rule_within(e, n, p->within_ns);
	if (p->last)
		rule_last(e, n, p->last);
	for (int per = 0; per < N_PERIODS; per++)
		if (counts[per])
			rule_period(e, n, per, counts[per]);

	for (size_t i = 0; i < n; i++)
		if (e[i].reason)
			nkept++;
	if (nkept == 0)
		return -EPERM; /* keep[] still all true */

	for (size_t i = 0; i < n; i++) {
		keep[e[i].idx] = e[i].reason != NULL;
		if (reasons)
			reasons[e[i].idx] = e[i].reason;
	}
	return 0;
}
