/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests for store/forget.c: the duration parser, and retention plans over calendars
 * written as tables (snapshot time in UTC, expected reason or dropped), across hour, day,
 * month, year and ISO-week boundaries; then a sweep and a randomised comparison against a
 * transcription of borg's prune_split that computes periods with strftime, as borg does.
 */
#include "forget.h"

#include <limits.h>
#include <stdio.h>
#include <time.h>

#include "tap.h"

#define NS UINT64_C(1000000000)
#define HOURS(h) ((uint64_t)(h)*3600 * NS)
#define DAYS(d) HOURS(24 * (uint64_t)(d))
#define MAX_ROWS 16

static uint64_t utc(int y, int mo, int d, int h, int mi, int s)
{
	struct tm tm = {.tm_year = y - 1900,
			.tm_mon = mo - 1,
			.tm_mday = d,
			.tm_hour = h,
			.tm_min = mi,
			.tm_sec = s};
	time_t t = timegm(&tm);

	tap_require(t >= 0);
	return (uint64_t)t * NS;
}

/* "YYYY-MM-DD HH:MM:SS", in UTC. */
static uint64_t parse_utc(const char *s)
{
	int y, mo, d, h, mi, sec;

	tap_require(sscanf(s, "%d-%d-%d %d:%d:%d", &y, &mo, &d, &h, &mi, &sec) == 6);
	return utc(y, mo, d, h, mi, sec);
}

static bool streq(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/* ---- duration parser ------------------------------------------------------------------- */

static void test_parse_duration(void)
{
	static const struct {
		const char *s;
		uint64_t ns; /* 0 = must be refused */
	} cases[] = {
		{"1h", HOURS(1)},
		{"1H", HOURS(1)},
		{"36h", HOURS(36)},
		{"2d", DAYS(2)},
		{"3w", DAYS(21)},
		{"4m", DAYS(4 * 31)},
		{"1y", DAYS(365)},
		{"1y2m3d", DAYS(365 + 2 * 31 + 3)},
		{"1y2m3w4d5h", DAYS(365 + 62 + 21 + 4) + HOURS(5)},
		{"2w12h", DAYS(14) + HOURS(12)},
		{"007d", DAYS(7)},
		{"0d1h", HOURS(1)},
		{"584y", DAYS(584 * 365)},
		{"", 0},
		{"d", 0},
		{"1", 0},
		{"1d2", 0},
		{"1x", 0},
		{"1s", 0},
		{"1M", 0},
		{"-1d", 0},
		{"+1d", 0},
		{" 1d", 0},
		{"1d ", 0},
		{"1 d", 0},
		{"1.5d", 0},
		{"1d1d", 0},
		{"1d1y", 0},
		{"1h1H", 0},
		{"1dd", 0},
		{"0d", 0},
		{"0y0h", 0},
		{"585y", 0},
		{"18446744073709551616h", 0},
		{"99999999999999999999999h", 0},
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		uint64_t got = 12345;
		int r = forget_parse_duration(cases[i].s, &got);

		if (cases[i].ns) {
			ok(r == 0 && got == cases[i].ns, "duration \"%s\" = %" PRIu64 " ns",
			   cases[i].s, cases[i].ns);
			if (r != 0 || got != cases[i].ns)
				diag("  r=%d got %" PRIu64, r, got);
		} else {
			ok(r == -EINVAL && got == 12345,
			   "duration \"%s\" refused, output untouched", cases[i].s);
		}
	}
	is_int(forget_parse_duration(NULL, &(uint64_t){0}), -EINVAL, "duration NULL refused");
}

/* ---- calendar tables ------------------------------------------------------------------- */

struct row {
	const char *time;   /* UTC */
	const char *name;   /* NULL: "s<row>" */
	const char *reason; /* expected; NULL = dropped */
};

struct table {
	const char *what;
	struct forget_policy policy;
	struct row rows[MAX_ROWS]; /* ends at time == NULL */
};

static size_t table_rows(const struct table *t)
{
	size_t n = 0;

	while (n < MAX_ROWS && t->rows[n].time)
		n++;
	return n;
}

/* Run the table with its rows in the given order (reversed or not): the plan must not
 * depend on the input order. */
static void run_table(const struct table *t, bool reversed)
{
	struct snapshot_ref snaps[MAX_ROWS] = {{0}};
	char names[MAX_ROWS][24];
	const char *reasons[MAX_ROWS];
	bool keep[MAX_ROWS];
	size_t n = table_rows(t), bad = 0;
	int r;

	for (size_t i = 0; i < n; i++) {
		const struct row *row = &t->rows[reversed ? n - 1 - i : i];
		snprintf(names[i], sizeof(names[i]), "s%02zu", reversed ? n - 1 - i : i);
		snaps[i].name = (char *)(row->name ? row->name : names[i]);
		snaps[i].host = (char *)"host";
		snaps[i].time_ns = parse_utc(row->time);
	}
	r = forget_plan(snaps, n, &t->policy, true, keep, reasons);
	for (size_t i = 0; i < n && r == 0; i++) {
		const struct row *row = &t->rows[reversed ? n - 1 - i : i];
		if (!streq(reasons[i], row->reason) || keep[i] != (row->reason != NULL)) {
			if (!bad++)
				diag("%s%s:", t->what, reversed ? " (reversed)" : "");
			diag("  %s %s: got %s (keep %d), want %s", row->time, snaps[i].name,
			     reasons[i] ? reasons[i] : "dropped", keep[i],
			     row->reason ? row->reason : "dropped");
		}
	}
	if (r != 0)
		diag("  forget_plan returned %d", r);
	ok(r == 0 && bad == 0, "%s%s", t->what, reversed ? " (input reversed)" : "");
}

/* Nov 30 / Dec 1 and Dec 31 / Jan 1, two minutes apart, under every period rule. */
#define MONTH_YEAR_ROWS(r0, r1, r2, r3, r4, r5)                                                    \
	{                                                                                          \
		{"2024-01-15 12:00:00", NULL, r0}, {"2024-01-01 00:01:00", NULL, r1},              \
			{"2023-12-31 23:59:00", NULL, r2}, {"2023-12-01 00:01:00", NULL, r3},      \
			{"2023-11-30 23:59:00", NULL, r4}, {"2023-11-15 10:00:00", NULL, r5},      \
	}

/* ISO weeks straddling 2020/2021 (2020 has a week 53) and 2019/2020. */
#define ISO_ROWS(r0, r1, r2, r3, r4, r5, r6, r7)                                                   \
	{                                                                                          \
		{"2021-01-11 12:00:00", NULL, r0},	   /* Mon, 2021-W02 */                     \
			{"2021-01-10 12:00:00", NULL, r1}, /* Sun, 2021-W01 */                     \
			{"2021-01-04 12:00:00", NULL, r2}, /* Mon, 2021-W01 */                     \
			{"2021-01-03 12:00:00", NULL, r3}, /* Sun, 2020-W53 */                     \
			{"2021-01-01 12:00:00", NULL, r4}, /* Fri, 2020-W53 */                     \
			{"2020-12-28 12:00:00", NULL, r5}, /* Mon, 2020-W53 */                     \
			{"2019-12-30 12:00:00", NULL, r6}, /* Mon, 2020-W01 */                     \
			{"2019-12-29 12:00:00", NULL, r7}, /* Sun, 2019-W52 */                     \
	}

/* Two a day on Mar 1 and 2, three on Mar 3. */
#define LAST_DAILY_ROWS(r0, r1, r2, r3, r4, r5, r6)                                                \
	{                                                                                          \
		{"2024-03-03 20:00:00", NULL, r0}, {"2024-03-03 12:00:00", NULL, r1},              \
			{"2024-03-03 08:00:00", NULL, r2}, {"2024-03-02 20:00:00", NULL, r3},      \
			{"2024-03-02 08:00:00", NULL, r4}, {"2024-03-01 20:00:00", NULL, r5},      \
			{"2024-03-01 08:00:00", NULL, r6},                                         \
	}

/* Newest Jun 10 12:00 (a Monday), then a gap, then older ones. */
#define WITHIN_ROWS(r0, r1, r2, r3, r4, r5)                                                        \
	{                                                                                          \
		{"2024-06-10 12:00:00", NULL, r0}, {"2024-06-09 00:00:00", NULL, r1},              \
			{"2024-06-08 12:00:01", NULL, r2},                                         \
			{"2024-06-08 12:00:00", NULL, r3}, /* exactly 2 days before */             \
			{"2024-06-01 00:00:00", NULL, r4}, {"2024-05-20 00:00:00", NULL, r5},      \
	}

/* Three snapshots at one instant, given out of name order. */
#define DUP_ROWS(r0, r1, r2, r3)                                                                   \
	{                                                                                          \
		{"2024-01-01 12:00:00", "b", r0}, {"2024-01-01 12:00:00", "a", r1},                \
			{"2024-01-01 12:00:00", "c", r2}, {"2023-12-31 12:00:00", "z", r3},        \
	}

static const struct table tables[] = {
	{"month/year boundary, monthly 3",
	 {.monthly = 3},
	 MONTH_YEAR_ROWS("monthly", NULL, "monthly", NULL, "monthly", NULL)},
	{"month/year boundary, daily 3",
	 {.daily = 3},
	 MONTH_YEAR_ROWS("daily", "daily", "daily", NULL, NULL, NULL)},
	{"month/year boundary, hourly 4",
	 {.hourly = 4},
	 MONTH_YEAR_ROWS("hourly", "hourly", "hourly", "hourly", NULL, NULL)},
	{"month/year boundary, yearly 2",
	 {.yearly = 2},
	 MONTH_YEAR_ROWS("yearly", NULL, "yearly", NULL, NULL, NULL)},
	{"month/year boundary, weekly 2 (Jan 1 2024 is a Monday)",
	 {.weekly = 2},
	 MONTH_YEAR_ROWS("weekly", "weekly", NULL, NULL, NULL, NULL)},
	/* Yearly finds 2024 and 2023 used up by monthly's picks: it counts none and falls back
	 * on the oldest. */
	{"month/year boundary, monthly 2 yearly 2: earlier picks do not count",
	 {.monthly = 2, .yearly = 2},
	 MONTH_YEAR_ROWS("monthly", NULL, "monthly", NULL, NULL, "yearly[oldest]")},
	{"month/year boundary, yearly 10: fewer years than asked keeps the oldest",
	 {.yearly = 10},
	 MONTH_YEAR_ROWS("yearly", NULL, "yearly", NULL, NULL, "yearly[oldest]")},
	{"month/year boundary, last 1 monthly 1: the newest month is used up by last",
	 {.last = 1, .monthly = 1},
	 MONTH_YEAR_ROWS("last", NULL, "monthly", NULL, NULL, NULL)},

	{"ISO weeks across 2020/2021, weekly 5",
	 {.weekly = 5},
	 ISO_ROWS("weekly", "weekly", NULL, "weekly", NULL, NULL, "weekly", "weekly")},
	{"ISO weeks across 2020/2021, weekly 3: stops after 3 weeks",
	 {.weekly = 3},
	 ISO_ROWS("weekly", "weekly", NULL, "weekly", NULL, NULL, NULL, NULL)},
	/* Yearly uses the calendar year: 2020's newest is Dec 28, not Jan 3 2021 (ISO 2020). */
	{"ISO weeks across 2020/2021, weekly 4 yearly 3",
	 {.weekly = 4, .yearly = 3},
	 ISO_ROWS("weekly", "weekly", NULL, "weekly", NULL, "yearly", "weekly", "yearly[oldest]")},
	{"ISO weeks across 2025/2026, weekly 2",
	 {.weekly = 2},
	 {{"2026-01-01 12:00:00", NULL, "weekly"}, /* Thu, 2026-W01 */
	  {"2025-12-29 12:00:00", NULL, NULL},	   /* Mon, 2026-W01 */
	  {"2025-12-28 12:00:00", NULL, "weekly"}}},
	{"ISO weeks, daily 1 weekly 1 monthly 1 yearly 1 on one snapshot",
	 {.daily = 1, .weekly = 1, .monthly = 1, .yearly = 1},
	 {{"2021-01-03 12:00:00", NULL, "daily"}}},

	{"last 2 daily 2",
	 {.last = 2, .daily = 2},
	 LAST_DAILY_ROWS("last", "last", NULL, "daily", NULL, "daily", NULL)},
	{"last 2 daily 3: the oldest day falls short, its oldest is kept",
	 {.last = 2, .daily = 3},
	 LAST_DAILY_ROWS("last", "last", NULL, "daily", NULL, "daily", "daily[oldest]")},
	{"last 4", {.last = 4}, LAST_DAILY_ROWS("last", "last", "last", "last", NULL, NULL, NULL)},
	{"last UINT_MAX keeps everything",
	 {.last = UINT_MAX},
	 LAST_DAILY_ROWS("last", "last", "last", "last", "last", "last", "last")},
	{"daily 1 hourly 1: hourly runs first",
	 {.hourly = 1, .daily = 1},
	 LAST_DAILY_ROWS("hourly", NULL, NULL, "daily", NULL, NULL, NULL)},

	{"within 2d",
	 {.within_ns = DAYS(2)},
	 WITHIN_ROWS("within", "within", "within", NULL, NULL, NULL)},
	{"within 2d last 1: within's snapshots do not count for last",
	 {.within_ns = DAYS(2), .last = 1},
	 WITHIN_ROWS("within", "within", "within", "last", NULL, NULL)},
	{"within 2d weekly 2: weeks 24 and 23 used up by within",
	 {.within_ns = DAYS(2), .weekly = 2},
	 WITHIN_ROWS("within", "within", "within", NULL, "weekly", "weekly")},
	{"within 500y keeps everything (window before the epoch)",
	 {.within_ns = DAYS(500 * 365)},
	 WITHIN_ROWS("within", "within", "within", "within", "within", "within")},
	{"within 1h keeps the newest alone",
	 {.within_ns = HOURS(1)},
	 WITHIN_ROWS("within", NULL, NULL, NULL, NULL, NULL)},

	{"duplicate times, last 1: the first name is the newest",
	 {.last = 1},
	 DUP_ROWS(NULL, "last", NULL, NULL)},
	{"duplicate times, last 2", {.last = 2}, DUP_ROWS("last", "last", NULL, NULL)},
	{"duplicate times, daily 2", {.daily = 2}, DUP_ROWS(NULL, "daily", NULL, "daily")},
	{"duplicate times, hourly 5", {.hourly = 5}, DUP_ROWS(NULL, "hourly", NULL, "hourly")},
};

/* One snapshot per hour at :30 for 10 days, Feb 25 to Mar 5 2024 (a leap year). */
static void test_hourly_ten_days(void)
{
	const size_t n = 240;
	struct snapshot_ref snaps[240];
	char names[240][24];
	const char *reasons[240];
	bool keep[240];
	struct forget_policy p = {.hourly = 24, .daily = 7};
	uint64_t first = utc(2024, 2, 25, 0, 30, 0), last_day = utc(2024, 3, 5, 0, 0, 0);
	size_t bad = 0, nkept = 0;

	for (size_t i = 0; i < n; i++) {
		/* Shuffled input: i -> (i * 7) % 240 is a permutation. */
		size_t h = (i * 7) % n;
		snprintf(names[i], sizeof(names[i]), "h%03zu", h);
		snaps[i] = (struct snapshot_ref){
			.name = names[i], .host = (char *)"host", .time_ns = first + HOURS(h)};
	}
	is_int(forget_plan(snaps, n, &p, true, keep, reasons), 0, "hourly x 10 days: plan");
	for (size_t i = 0; i < n; i++) {
		uint64_t t = snaps[i].time_ns;
		uint64_t hour_of_day = (t / NS / 3600) % 24;
		const char *want = NULL;

		/* Hourly: all 24 of Mar 5. Daily: Mar 5 is used up by hourly, so the 23:30 of each
		 * of the 7 days before (Feb 27 .. Mar 4, across Feb 29). */
		if (t >= last_day)
			want = "hourly";
		else if (t >= last_day - DAYS(7) && hour_of_day == 23)
			want = "daily";
		if (!streq(reasons[i], want) || keep[i] != (want != NULL)) {
			bad++;
			diag("  %s: got %s, want %s", snaps[i].name, reasons[i] ? reasons[i] : "-",
			     want ? want : "-");
		}
		nkept += keep[i];
	}
	ok(bad == 0, "hourly x 10 days, hourly 24 daily 7: reasons as expected");
	is_int(nkept, 31, "hourly x 10 days: 24 + 7 kept");

	/* The same with reasons == NULL gives the same keep[]. */
	bool keep2[240];
	bad = 0;
	is_int(forget_plan(snaps, n, &p, true, keep2, NULL), 0, "reasons may be NULL");
	for (size_t i = 0; i < n; i++)
		bad += keep[i] != keep2[i];
	is_int(bad, 0, "reasons NULL: same plan");
}

static void test_errors(void)
{
	struct snapshot_ref snaps[3] = {
		{.name = (char *)"a", .host = (char *)"h", .time_ns = DAYS(19000)},
		{.name = (char *)"b", .host = (char *)"h", .time_ns = DAYS(19001)},
		{.name = (char *)"c", .host = (char *)"h", .time_ns = DAYS(19002)},
	};
	const char *reasons[3] = {"x", "x", "x"};
	bool keep[3] = {false, false, false};
	struct forget_policy empty = {0}, daily = {.daily = 1};

	is_int(forget_plan(snaps, 3, &empty, true, keep, reasons), -EINVAL, "empty policy refused");
	ok(keep[0] && keep[1] && keep[2], "empty policy: keep[] all true");
	ok(!reasons[0] && !reasons[1] && !reasons[2], "empty policy: reasons[] all NULL");
	is_int(forget_plan(NULL, 0, &empty, true, NULL, NULL), -EINVAL,
	       "empty policy refused with no snapshots too");
	is_int(forget_plan(NULL, 0, &daily, true, NULL, NULL), 0, "no snapshots: nothing to do");

	/* Local time, with a zone set here so the machine's does not matter: at UTC+10,
	 * 13:00Z is 23:00 on Jan 1 but 15:00Z is 01:00 on Jan 2. */
	struct snapshot_ref local[3] = {
		{.name = (char *)"a", .host = (char *)"h", .time_ns = utc(2024, 1, 1, 15, 0, 0)},
		{.name = (char *)"b", .host = (char *)"h", .time_ns = utc(2024, 1, 1, 13, 0, 0)},
		{.name = (char *)"c", .host = (char *)"h", .time_ns = utc(2024, 1, 1, 1, 0, 0)},
	};
	struct forget_policy daily2 = {.daily = 2};
	tap_require(setenv("TZ", "XST-10", 1) == 0);
	tzset();
	is_int(forget_plan(local, 3, &daily2, false, keep, reasons), 0, "local time: plan");
	ok(streq(reasons[0], "daily") && streq(reasons[1], "daily") && !reasons[2],
	   "local time UTC+10: 15:00Z and 13:00Z are on different days");
	is_int(forget_plan(local, 3, &daily2, true, keep, reasons), 0, "UTC: plan");
	ok(streq(reasons[0], "daily") && !reasons[1] && streq(reasons[2], "daily[oldest]"),
	   "UTC: one day, so the oldest fills in");
}

/* ---- against a transcription of borg ----------------------------------------------------- */

/* borg's PRUNING_PATTERNS, literal so the compiler checks them. */
static void period_string(int rule, const struct tm *tm, char *out, size_t size)
{
	size_t len = 0;

	switch (rule) {
	case 0:
		len = strftime(out, size, "%Y-%m-%d %H", tm);
		break;
	case 1:
		len = strftime(out, size, "%Y-%m-%d", tm);
		break;
	case 2:
		len = strftime(out, size, "%G-%V", tm);
		break;
	case 3:
		len = strftime(out, size, "%Y-%m", tm);
		break;
	case 4:
		len = strftime(out, size, "%Y", tm);
		break;
	}
	tap_require(len > 0);
}
static const char *const rule_names[5] = {"hourly", "daily", "weekly", "monthly", "yearly"};
static const char *const oldest_names[5] = {"hourly[oldest]", "daily[oldest]", "weekly[oldest]",
					    "monthly[oldest]", "yearly[oldest]"};

static const struct snapshot_ref *sort_base;
static int ref_cmp(const void *x, const void *y)
{
	const struct snapshot_ref *a = &sort_base[*(const size_t *)x];
	const struct snapshot_ref *b = &sort_base[*(const size_t *)y];
	if (a->time_ns != b->time_ns)
		return a->time_ns > b->time_ns ? -1 : 1;
	return strcmp(a->name, b->name);
}

/* borg's prune_within (anchored at the newest, see forget.h) and prune_split, with period
 * strings from strftime in UTC. Names must be distinct. */
static void ref_plan(const struct snapshot_ref *s, size_t n, const struct forget_policy *p,
		     const char **ret)
{
	const unsigned counts[5] = {p->hourly, p->daily, p->weekly, p->monthly, p->yearly};
	size_t *order = calloc(n, sizeof(*order));

	tap_require(order);
	for (size_t i = 0; i < n; i++) {
		order[i] = i;
		ret[i] = NULL;
	}
	sort_base = s;
	qsort(order, n, sizeof(*order), ref_cmp);
	uint64_t newest = s[order[0]].time_ns;
	if (p->within_ns)
		for (size_t i = 0; i < n; i++)
			if (s[i].time_ns + p->within_ns > newest)
				ret[i] = "within";
	unsigned kept = 0;
	for (size_t k = 0; k < n && kept < p->last; k++)
		if (!ret[order[k]]) {
			ret[order[k]] = "last";
			kept++;
		}
	for (int rule = 0; rule < 5; rule++) {
		char last[32] = "", period[32];
		if (!counts[rule])
			continue;
		kept = 0;
		size_t k;
		for (k = 0; k < n; k++) {
			time_t t = (time_t)(s[order[k]].time_ns / NS);
			struct tm tm;
			tap_require(gmtime_r(&t, &tm));
			period_string(rule, &tm, period, sizeof(period));
			if (strcmp(period, last) != 0) {
				memcpy(last, period, sizeof(last));
				if (!ret[order[k]]) {
					ret[order[k]] = rule_names[rule];
					if (++kept == counts[rule])
						break;
				}
			}
		}
		if (kept < counts[rule] && !ret[order[n - 1]])
			ret[order[n - 1]] = oldest_names[rule];
	}
	free(order);
}

/* A snapshot at noon every day from 1999-12-20 to 2030-01-10, weekly without limit: the
 * newest day of every ISO week as strftime's %G-%V names them is kept, nothing else. */
static void test_iso_week_sweep(void)
{
	uint64_t from = utc(1999, 12, 20, 12, 0, 0), to = utc(2030, 1, 10, 12, 0, 0);
	size_t n = (size_t)((to - from) / DAYS(1)) + 1, bad = 0;
	struct snapshot_ref *s = calloc(n, sizeof(*s));
	char(*names)[24] = calloc(n, sizeof(*names));
	const char **got = calloc(n, sizeof(*got)), **want = calloc(n, sizeof(*want));
	bool *keep = calloc(n, sizeof(*keep));
	struct forget_policy p = {.weekly = UINT_MAX};

	tap_require(s && names && got && want && keep);
	for (size_t i = 0; i < n; i++) {
		snprintf(names[i], sizeof(names[i]), "d%05zu", i);
		s[i] = (struct snapshot_ref){
			.name = names[i], .host = (char *)"h", .time_ns = from + DAYS(i)};
	}
	is_int(forget_plan(s, n, &p, true, keep, got), 0, "ISO week sweep: plan");
	ref_plan(s, n, &p, want);
	for (size_t i = 0; i < n; i++)
		if (!streq(got[i], want[i]) && bad++ < 5)
			diag("  %s: got %s, want %s", names[i], got[i] ? got[i] : "-",
			     want[i] ? want[i] : "-");
	ok(bad == 0, "ISO week sweep 2000-2030 (%zu days) matches strftime %%G-%%V", n);
	free(s);
	free(names);
	free(got);
	free(want);
	free(keep);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static unsigned rand_count(void)
{
	static const unsigned choices[] = {0, 0, 0, 1, 2, 3, 5, 7, 12, 24, 100};
	return choices[rng() % ELEMENTSOF(choices)];
}

/* Random calendars (clusters of snapshots minutes to months apart, duplicated instants,
 * year ends) and random policies: same plan as the transcription of borg, the newest always
 * kept, never -EPERM. */
static void test_random_against_borg(void)
{
	enum { ROUNDS = 400, MAXN = 120 };
	static const uint64_t gaps[] = {60 * NS, HOURS(1), HOURS(5), DAYS(1),
					DAYS(3), DAYS(8),  DAYS(40), DAYS(200)};
	struct snapshot_ref s[MAXN];
	char names[MAXN][24];
	const char *got[MAXN], *want[MAXN];
	bool keep[MAXN];
	unsigned mismatches = 0, newest_dropped = 0, eperm = 0;

	for (int round = 0; round < ROUNDS; round++) {
		size_t n = 1 + rng() % MAXN;
		uint64_t t = utc(1998 + (int)(rng() % 35), 12, 31, 23, 0, 0) -
			     rng() % DAYS(30) * (rng() % 2);
		struct forget_policy p = {0};
		size_t newest = 0;
		int r;

		for (size_t i = 0; i < n; i++) {
			snprintf(names[i], sizeof(names[i]), "r%03zu-%03zu", rng() % 1000, i);
			s[i] = (struct snapshot_ref){
				.name = names[i], .host = (char *)"h", .time_ns = t};
			if (t > s[newest].time_ns ||
			    (t == s[newest].time_ns && strcmp(names[i], names[newest]) < 0))
				newest = i;
			if (rng() % 8) /* else the next one has the same instant */
				t += 1 + rng() % gaps[rng() % ELEMENTSOF(gaps)];
		}
		while (!p.last && !p.hourly && !p.daily && !p.weekly && !p.monthly && !p.yearly &&
		       !p.within_ns) {
			p.last = rng() % 3 ? 0 : rand_count();
			p.hourly = rand_count();
			p.daily = rand_count();
			p.weekly = rand_count();
			p.monthly = rand_count();
			p.yearly = rand_count();
			p.within_ns = rng() % 4 ? 0 : 1 + rng() % DAYS(60);
		}
		r = forget_plan(s, n, &p, true, keep, got);
		eperm += r == -EPERM;
		if (r != 0) {
			mismatches++;
			continue;
		}
		ref_plan(s, n, &p, want);
		for (size_t i = 0; i < n; i++)
			if (!streq(got[i], want[i]) || keep[i] != (got[i] != NULL)) {
				if (!mismatches)
					diag("  round %d, %s: got %s, want %s", round, names[i],
					     got[i] ? got[i] : "-", want[i] ? want[i] : "-");
				mismatches++;
				break;
			}
		newest_dropped += !keep[newest];
	}
	is_int(mismatches, 0, "%d random calendars and policies: same plan as borg's algorithm",
	       ROUNDS);
	is_int(newest_dropped, 0, "the newest snapshot is always kept");
	is_int(eperm, 0, "no non-empty policy drops everything (-EPERM never fires)");
}

int main(void)
{
	plan_lazy();
	test_parse_duration();
	for (size_t i = 0; i < ELEMENTSOF(tables); i++) {
		run_table(&tables[i], false);
		run_table(&tables[i], true);
	}
	test_hourly_ten_days();
	test_errors();
	test_iso_week_sweep();
	test_random_against_borg();
	return tap_done();
}
