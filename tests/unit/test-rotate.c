/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests for store/rotate.c: snapshot names, rsnapshot's rotation checked step by step
 * against a model written the way rsnapshot works on directories (rm the oldest, mv N to N+1
 * from the top down, then add or promote .0), removal, renaming, and that a refused call
 * leaves the commit exactly as it was.
 */
#include "rotate.h"

#include <stdio.h>

#include "tap.h"

/* ---- helpers ------------------------------------------------------------------------ */

/* Roots are numbered: root v is v in the first 4 bytes and a pattern after. */
static struct blob_id root_of(uint32_t v)
{
	struct blob_id id;
	put_le32(id.b, v);
	for (size_t i = 4; i < BLOB_ID_SIZE; i++)
		id.b[i] = (uint8_t)(v * 7 + i);
	return id;
}

static uint32_t root_val(const struct blob_id *id)
{
	return get_le32(id->b);
}

/* The time and host each snapshot of root v is taken with: they must travel with the root. */
static uint64_t time_of(uint32_t v)
{
	return 1700000000000000000ull + (uint64_t)v * 1000 + 7;
}

static const char *host_of(uint32_t v)
{
	static const char *hosts[] = {"alpha", "beta.example.org", ""};
	return hosts[v % ELEMENTSOF(hosts)];
}

static void add(struct commit *c, const char *name, uint32_t v)
{
	struct blob_id id = root_of(v);
	tap_require(commit_add_snapshot(c, name, &id, time_of(v), host_of(v)) == 0);
}

static int rotate_low(struct commit *c, const char *interval, unsigned keep, uint32_t v)
{
	struct blob_id id = root_of(v);
	return snapshot_rotate(c, interval, keep, NULL, 0, &id, time_of(v), host_of(v));
}

static int rotate_high(struct commit *c, const char *interval, unsigned keep, const char *lower,
		       unsigned lower_keep)
{
	return snapshot_rotate(c, interval, keep, lower, lower_keep, NULL, 0, NULL);
}

/* Root value of the snapshot called name, 0 when absent. */
static uint32_t root_named(const struct commit *c, const char *name)
{
	ssize_t i = snapshot_find(c, name);
	return i < 0 ? 0 : root_val(&c->snaps[i].root);
}

/* Every snapshot still carries the time and host it was taken with. */
static bool consistent(const struct commit *c)
{
	for (size_t i = 0; i < c->n_snaps; i++) {
		uint32_t v = root_val(&c->snaps[i].root);
		if (c->snaps[i].time_ns != time_of(v) || strcmp(c->snaps[i].host, host_of(v)))
			return false;
	}
	return true;
}

/* The names in order, as "a b c", for diagnostics and exact comparisons. */
static const char *names(const struct commit *c)
{
	static char out[8192];
	size_t at = 0;
	out[0] = 0;
	for (size_t i = 0; i < c->n_snaps && at < sizeof(out); i++)
		at += (size_t)snprintf(out + at, sizeof(out) - at, "%s%s=%u", i ? " " : "",
				       c->snaps[i].name, root_val(&c->snaps[i].root));
	return out;
}

/*
 * "Unchanged" in the strongest sense: the same array and the same strings (a shallow copy of
 * the entries compares equal, pointers included), and the same contents (a deep copy).
 */
struct saved {
	struct snapshot_ref *array;
	size_t n;
	struct snapshot_ref *shallow;
	struct commit deep;
};

static void save(const struct commit *c, struct saved *s)
{
	*s = (struct saved){.array = c->snaps, .n = c->n_snaps};
	s->shallow = malloc((c->n_snaps + 1) * sizeof(*s->shallow));
	tap_require(s->shallow);
	if (c->n_snaps)
		memcpy(s->shallow, c->snaps, c->n_snaps * sizeof(*c->snaps));
	for (size_t i = 0; i < c->n_snaps; i++)
		tap_require(commit_add_snapshot(&s->deep, c->snaps[i].name, &c->snaps[i].root,
						c->snaps[i].time_ns, c->snaps[i].host) == 0);
}

static bool unchanged(const struct commit *c, struct saved *s)
{
	bool same = c->snaps == s->array && c->n_snaps == s->n &&
		    (!s->n || !memcmp(c->snaps, s->shallow, s->n * sizeof(*c->snaps)));
	for (size_t i = 0; same && i < s->n; i++) {
		const struct snapshot_ref *x = &c->snaps[i], *y = &s->deep.snaps[i];
		same = !strcmp(x->name, y->name) && !strcmp(x->host, y->host) &&
		       x->time_ns == y->time_ns && !memcmp(x->root.b, y->root.b, BLOB_ID_SIZE);
	}
	free(s->shallow);
	commit_release(&s->deep);
	return same;
}

/* ---- the model: rsnapshot on a directory listing ------------------------------------- */

#define MODEL_MAX 256

struct model {
	size_t n;
	char name[MODEL_MAX][COMMIT_STR_MAX + 1];
	uint32_t root[MODEL_MAX];
};

static ssize_t m_find(const struct model *m, const char *name)
{
	for (size_t i = 0; i < m->n; i++)
		if (!strcmp(m->name[i], name))
			return (ssize_t)i;
	return -1;
}

static void m_add(struct model *m, const char *name, uint32_t v)
{
	tap_require(m->n < MODEL_MAX && m_find(m, name) < 0);
	snprintf(m->name[m->n], sizeof(m->name[0]), "%s", name);
	m->root[m->n++] = v;
}

/* rm -rf name (if present); the others keep their order. */
static void m_rm(struct model *m, const char *name)
{
	ssize_t i = m_find(m, name);
	if (i < 0)
		return;
	for (size_t k = (size_t)i; k + 1 < m->n; k++) {
		memcpy(m->name[k], m->name[k + 1], sizeof(m->name[0]));
		m->root[k] = m->root[k + 1];
	}
	m->n--;
}

/* mv from to, in place; to must not exist (rsnapshot never moves onto a snapshot). */
static void m_mv(struct model *m, const char *from, const char *to)
{
	ssize_t i = m_find(m, from);
	tap_require(i >= 0 && m_find(m, to) < 0);
	snprintf(m->name[i], sizeof(m->name[0]), "%s", to);
}

/* rsnapshot INTERVAL, with `retain INTERVAL keep` (and `retain lower lower_keep` below). */
static int m_rotate(struct model *m, const char *interval, unsigned keep, const char *lower,
		    unsigned lower_keep, uint32_t v)
{
	char a[COMMIT_STR_MAX + 1], b[COMMIT_STR_MAX + 1];

	if (lower) {
		snprintf(a, sizeof(a), "%s.%u", lower, lower_keep - 1);
		if (m_find(m, a) < 0)
			return -ENOENT; /* rsnapshot 1.5: nothing to promote, no rotation */
	}
	/* rm the oldest; and what a larger keep left beyond it (enough for these tests). */
	for (unsigned i = keep - 1; i < keep + 64; i++) {
		snprintf(b, sizeof(b), "%s.%u", interval, i);
		m_rm(m, b);
	}
	for (unsigned i = keep - 1; i-- > 0;) {
		snprintf(a, sizeof(a), "%s.%u", interval, i);
		snprintf(b, sizeof(b), "%s.%u", interval, i + 1);
		if (m_find(m, a) >= 0)
			m_mv(m, a, b);
	}
	snprintf(b, sizeof(b), "%s.0", interval);
	if (lower) {
		snprintf(a, sizeof(a), "%s.%u", lower, lower_keep - 1);
		m_mv(m, a, b);
	} else {
		m_add(m, b, v);
	}
	return 0;
}

/* Same set of name -> root; *why says the first difference. */
static bool same_set(const struct commit *c, const struct model *m, char *why, size_t size)
{
	if (c->n_snaps != m->n) {
		snprintf(why, size, "%zu snapshots, model has %zu", c->n_snaps, m->n);
		return false;
	}
	for (size_t i = 0; i < m->n; i++) {
		ssize_t k = snapshot_find(c, m->name[i]);
		if (k < 0) {
			snprintf(why, size, "%s missing", m->name[i]);
			return false;
		}
		if (root_val(&c->snaps[k].root) != m->root[i]) {
			snprintf(why, size, "%s carries root %u, model %u", m->name[i],
				 root_val(&c->snaps[k].root), m->root[i]);
			return false;
		}
	}
	return true;
}

/* Same names and roots in the same order. */
static bool same_order(const struct commit *c, const struct model *m)
{
	if (c->n_snaps != m->n)
		return false;
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(c->snaps[i].name, m->name[i]) ||
		    root_val(&c->snaps[i].root) != m->root[i])
			return false;
	return true;
}

/* Names rotation must never touch, present from the start in both. */
static const char *const bystanders[] = {
	"before-upgrade", "hourly.07", "hourly.-1", "hourly.x",	  "hourly.",   "hourly.1a",
	"hourly.+1",	  "hourly. 1", "Hourly.1",  "hourly.1.1", "hourly",    "xhourly.1",
	"hourlyx.1",	  "daily.00",  "weekly.x",  "daily-7",	  "monthly.0",
};

static void add_bystanders(struct commit *c, struct model *m, uint32_t *next)
{
	for (size_t i = 0; i < ELEMENTSOF(bystanders); i++) {
		add(c, bystanders[i], *next);
		m_add(m, bystanders[i], *next);
		(*next)++;
	}
}

/* ---- tests -------------------------------------------------------------------------- */

static void test_names(void)
{
	char long_name[COMMIT_STR_MAX + 2];
	static const struct {
		const char *name, *why;
	} refused[] = {
		{"", "is empty"},
		{"a/b", "contains '/'"},
		{"/", "contains '/'"},
		{"daily/", "contains '/'"},
		{"a\nb", "contains a control character"},
		{"\t", "contains a control character"},
		{"x\x1b[31m", "contains a control character"},
		{"del\x7f", "contains a control character"},
		{"nel\xc2\x85", "contains a control character"},
		{"csi\xc2\x9b", "contains a control character"},
		{".", "is '.' or '..'"},
		{"..", "is '.' or '..'"},
		{"current", "is reserved for the working tree"},
		{".hidden", "starts with '.'"},
		{".0", "starts with '.'"},
		{"...", "starts with '.'"},
	};
	static const char *const accepted[] = {
		"hourly.0",
		"before upgrade",
		"été-2024",
		"快照",
		"a",
		"current.0",
		"Current",
		"current ",
		"a.b",
		"-rf",
		"nbsp\xc2\xa0",
		"not-utf8-\xff\xfe",
		"emoji-\xf0\x9f\x93\xa6",
		"a..b",
		"x.",
	};
	const char *why;

	for (size_t i = 0; i < ELEMENTSOF(refused); i++) {
		why = NULL;
		int r = snapshot_name_check(refused[i].name, &why);
		ok(r == -EINVAL && why && !strcmp(why, refused[i].why),
		   "name %zu refused: %s (got %d, \"%s\")", i, refused[i].why, r, why ? why : "");
	}
	why = NULL;
	ok(snapshot_name_check(NULL, &why) == -EINVAL && why && !strcmp(why, "is empty"),
	   "a NULL name is refused as empty");
	is_int(snapshot_name_check("a/b", NULL), -EINVAL, "why may be NULL");

	memset(long_name, 'n', sizeof(long_name) - 1);
	long_name[COMMIT_STR_MAX + 1] = 0;
	why = NULL;
	int r = snapshot_name_check(long_name, &why);
	ok(r == -EINVAL && why && !strcmp(why, "is longer than 255 bytes"),
	   "a 256-byte name is refused (%s)", why ? why : "");
	long_name[COMMIT_STR_MAX] = 0;
	why = "untouched";
	ok(snapshot_name_check(long_name, &why) == 0 && !strcmp(why, "untouched"),
	   "a 255-byte name is accepted and *why left alone");
	/* 254 bytes of 'é' (2 bytes each) + 'x' */
	for (size_t i = 0; i + 1 < COMMIT_STR_MAX; i += 2)
		memcpy(long_name + i, "\xc3\xa9", 2);
	long_name[COMMIT_STR_MAX - 1] = 'x';
	long_name[COMMIT_STR_MAX] = 0;
	is_int(snapshot_name_check(long_name, NULL), 0, "a 255-byte UTF-8 name is accepted");

	for (size_t i = 0; i < ELEMENTSOF(accepted); i++)
		is_int(snapshot_name_check(accepted[i], NULL), 0, "name accepted: \"%s\"",
		       accepted[i]);
}

static void test_find(void)
{
	struct commit c = {0};

	is_int(snapshot_find(&c, "hourly.0"), -1, "find in an empty commit");
	add(&c, "hourly.0", 1);
	add(&c, "daily.0", 2);
	add(&c, "hourly.00", 3);
	is_int(snapshot_find(&c, "daily.0"), 1, "find daily.0");
	is_int(snapshot_find(&c, "hourly.00"), 2, "find hourly.00");
	is_int(snapshot_find(&c, "hourly"), -1, "a prefix is not a match");
	is_int(snapshot_find(&c, NULL), -1, "find NULL");
	commit_release(&c);
}

/*
 * 60 days: six hourly runs a day, one daily run, and a weekly run every 7th day, with unrelated
 * names around. After each run, the commit and the model hold the same name -> root pairs.
 */
static void test_days(void)
{
	struct commit c = {0};
	struct model m = {0};
	uint32_t next = 1;
	char why[256] = "";
	size_t bad_days = 0, bad_promotions = 0, runs = 0;

	add_bystanders(&c, &m, &next);
	for (unsigned day = 1; day <= 60; day++) {
		bool day_ok = true;
		for (int h = 0; h < 6; h++) {
			uint32_t v = next++;
			int r = rotate_low(&c, "hourly", 6, v);
			int mr = m_rotate(&m, "hourly", 6, NULL, 0, v);
			runs++;
			if (r != mr || !same_set(&c, &m, why, sizeof(why))) {
				if (day_ok)
					diag("day %u hourly run %d: %d (model %d): %s", day, h, r,
					     mr, why);
				day_ok = false;
			}
			if (root_named(&c, "hourly.0") != v)
				day_ok = false;
		}

		/* daily.0 must be what hourly.5 was just before. */
		uint32_t oldest_hourly = root_named(&c, "hourly.5");
		int r = rotate_high(&c, "daily", 7, "hourly", 6);
		int mr = m_rotate(&m, "daily", 7, "hourly", 6, 0);
		runs++;
		if (r != mr || !same_set(&c, &m, why, sizeof(why))) {
			if (day_ok)
				diag("day %u daily run: %d (model %d): %s", day, r, mr, why);
			day_ok = false;
		}
		if (!oldest_hourly || root_named(&c, "daily.0") != oldest_hourly ||
		    snapshot_find(&c, "hourly.5") >= 0) {
			if (!bad_promotions++)
				diag("day %u: daily.0 carries %u, hourly.5 had %u", day,
				     root_named(&c, "daily.0"), oldest_hourly);
		}

		if (day % 7 == 0) {
			uint32_t oldest_daily = root_named(&c, "daily.6");
			r = rotate_high(&c, "weekly", 4, "daily", 7);
			mr = m_rotate(&m, "weekly", 4, "daily", 7, 0);
			runs++;
			if (r != mr || !same_set(&c, &m, why, sizeof(why))) {
				if (day_ok)
					diag("day %u weekly run: %d (model %d): %s", day, r, mr,
					     why);
				day_ok = false;
			}
			if (!oldest_daily || root_named(&c, "weekly.0") != oldest_daily) {
				if (!bad_promotions++)
					diag("day %u: weekly.0 carries %u, daily.6 had %u", day,
					     root_named(&c, "weekly.0"), oldest_daily);
			}
		}
		if (!consistent(&c))
			day_ok = false;
		if (!day_ok)
			bad_days++;
	}
	ok(bad_days == 0, "60 days (%zu runs): every run matches the model", runs);
	ok(bad_promotions == 0, "every daily.0 was hourly.5, every weekly.0 was daily.6");
	ok(consistent(&c), "every snapshot kept the time and host it was taken with");
	ok(same_order(&c, &m), "the list is in the model's order (renamed in place, new appended)");

	/* Day 60, after its runs: the daily run took hourly.5 (day 60's first run) away. */
	bool all = snapshot_find(&c, "hourly.5") < 0;
	char name[32];
	for (unsigned i = 0; i < 5; i++) {
		snprintf(name, sizeof(name), "hourly.%u", i);
		all &= root_named(&c, name) == next - 1 - i;
	}
	ok(all, "hourly.0..4 are the last five roots, newest first; hourly.5 was promoted");
	/* daily.i came from day 60-i, whose hourly.5 was that day's first run. */
	all = true;
	for (unsigned i = 0; i < 7; i++) {
		snprintf(name, sizeof(name), "daily.%u", i);
		uint32_t first_of_day = (uint32_t)ELEMENTSOF(bystanders) + 1 + (60 - i - 1) * 6;
		all &= root_named(&c, name) == first_of_day;
	}
	ok(all, "daily.N is the first hourly run of day 60-N");
	/* weekly.i came from the weekly run of day 56-7i: daily.6 then, from day 50-7i. */
	all = true;
	for (unsigned i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "weekly.%u", i);
		uint32_t day = 56 - 7 * i - 6;
		all &= root_named(&c, name) == (uint32_t)ELEMENTSOF(bystanders) + 1 + (day - 1) * 6;
	}
	ok(all, "weekly.N is the first hourly run of day 50-7N");
	is_int(c.n_snaps, ELEMENTSOF(bystanders) + 5 + 7 + 4,
	       "bystanders + 5 hourly + 7 daily + 4 weekly");
	all = true;
	for (size_t i = 0; i < ELEMENTSOF(bystanders); i++)
		all &= root_named(&c, bystanders[i]) == i + 1 &&
		       !strcmp(c.snaps[i].name, bystanders[i]);
	ok(all, "unrelated and odd names kept their roots and their places");
	commit_release(&c);
}

/* An irregular schedule (missed runs, keep changing), against the model, -ENOENT included. */
static void test_irregular(void)
{
	struct commit c = {0};
	struct model m = {0};
	uint32_t next = 1, rng = 12345;
	char why[256] = "";
	size_t bad = 0, refused = 0, shrinks = 0;
	unsigned hourly_keep = 6;

	add_bystanders(&c, &m, &next);
	for (int step = 0; step < 3000; step++) {
		rng ^= rng << 13;
		rng ^= rng >> 17;
		rng ^= rng << 5;
		unsigned pick = rng % 100;
		int r, mr;
		struct saved s;
		if (step % 500 == 499) {
			/* retain hourly changes between runs: 6 -> 3 -> 9 -> 1 -> ... */
			static const unsigned keeps[] = {3, 9, 1, 4, 6, 2};
			hourly_keep = keeps[(step / 500) % ELEMENTSOF(keeps)];
			shrinks++;
		}
		save(&c, &s);
		if (pick < 60) {
			uint32_t v = next++;
			r = rotate_low(&c, "hourly", hourly_keep, v);
			mr = m_rotate(&m, "hourly", hourly_keep, NULL, 0, v);
		} else if (pick < 85) {
			r = rotate_high(&c, "daily", 7, "hourly", hourly_keep);
			mr = m_rotate(&m, "daily", 7, "hourly", hourly_keep, 0);
		} else if (pick < 95) {
			r = rotate_high(&c, "weekly", 4, "daily", 7);
			mr = m_rotate(&m, "weekly", 4, "daily", 7, 0);
		} else {
			r = rotate_high(&c, "monthly", 3, "weekly", 4);
			mr = m_rotate(&m, "monthly", 3, "weekly", 4, 0);
		}
		bool same_list = unchanged(&c, &s);
		if (r == -ENOENT)
			refused++;
		if (r != mr || !same_set(&c, &m, why, sizeof(why)) || !consistent(&c) ||
		    (r == -ENOENT && !same_list)) {
			if (!bad++)
				diag("step %d (pick %u, hourly keep %u): %d (model %d): %s; %s",
				     step, pick, hourly_keep, r, mr, why, names(&c));
		}
	}
	ok(bad == 0, "3000 irregular runs, %zu keep changes, match the model (%zu refused)",
	   shrinks, refused);
	ok(refused > 0, "the irregular schedule did hit missing lower snapshots");
	ok(same_order(&c, &m), "and the order is the model's");
	commit_release(&c);
}

static void test_promotion_refused(void)
{
	struct commit c = {0};
	struct saved s;

	add(&c, "daily.0", 100);
	add(&c, "daily.6", 106);
	for (uint32_t i = 0; i < 4; i++) {
		char name[16];
		snprintf(name, sizeof(name), "hourly.%u", i);
		add(&c, name, i + 1);
	}
	add(&c, "hourly.05", 50);
	add(&c, "hourly.6", 60);

	save(&c, &s);
	is_int(rotate_high(&c, "daily", 7, "hourly", 6), -ENOENT,
	       "daily with hourly.5 missing is -ENOENT");
	ok(unchanged(&c, &s), "and nothing changed: daily.6 still there, daily.0 not shifted");

	save(&c, &s);
	is_int(rotate_high(&c, "weekly", 4, "daily", 8), -ENOENT,
	       "weekly with daily.7 missing (daily.6 present) is -ENOENT");
	ok(unchanged(&c, &s), "and nothing changed");

	save(&c, &s);
	is_int(rotate_high(&c, "weekly", 4, "monthly", 1), -ENOENT,
	       "a lower interval with no snapshot at all is -ENOENT");
	ok(unchanged(&c, &s), "and nothing changed");

	/* hourly.6 exists but is not the oldest of hourly/6: only hourly.5 counts. */
	save(&c, &s);
	is_int(rotate_high(&c, "daily", 7, "hourly", 6), -ENOENT,
	       "hourly.6 and hourly.05 do not stand in for hourly.5");
	ok(unchanged(&c, &s), "and nothing changed");

	/* With hourly/7, hourly.6 is the oldest and moves. */
	is_int(rotate_high(&c, "daily", 7, "hourly", 7), 0, "daily 7 with lower hourly/7");
	ok(!strcmp(names(&c), "daily.1=100 hourly.0=1 hourly.1=2 hourly.2=3 hourly.3=4 "
			      "hourly.05=50 daily.0=60"),
	   "daily.6 dropped, daily.0 -> daily.1, hourly.6 -> daily.0: %s", names(&c));
	ok(consistent(&c), "the promoted snapshot kept its time and host");
	commit_release(&c);
}

static void test_keep_one(void)
{
	struct commit c = {0};

	add(&c, "before", 90);
	for (uint32_t v = 1; v <= 5; v++)
		is_int(rotate_low(&c, "hourly", 1, v), 0, "hourly 1, run %u", v);
	ok(!strcmp(names(&c), "before=90 hourly.0=5"), "hourly/1 keeps only the newest: %s",
	   names(&c));

	add(&c, "hourly.1", 6);
	add(&c, "hourly.2", 7);
	is_int(rotate_low(&c, "hourly", 1, 8), 0, "hourly 1 with hourly.1 and .2 left over");
	ok(!strcmp(names(&c), "before=90 hourly.0=8"), "every older hourly dropped: %s", names(&c));

	/* A higher interval kept once. */
	add(&c, "daily.0", 20);
	is_int(rotate_high(&c, "daily", 1, "hourly", 1), 0, "daily 1 with lower hourly/1");
	ok(!strcmp(names(&c), "before=90 daily.0=8"), "daily.0 replaced by the moved hourly.0: %s",
	   names(&c));
	is_int(rotate_high(&c, "daily", 1, "hourly", 1), -ENOENT,
	       "again: hourly.0 is gone, -ENOENT");
	ok(consistent(&c), "times and hosts travelled with their roots");
	commit_release(&c);
}

static void test_keep_shrinks(void)
{
	struct commit c = {0};
	char name[16];

	add(&c, "daily.0", 100);
	for (uint32_t v = 1; v <= 6; v++)
		tap_require(rotate_low(&c, "hourly", 6, v) == 0);
	ok(!strcmp(names(&c), "daily.0=100 hourly.5=1 hourly.4=2 hourly.3=3 hourly.2=4 "
			      "hourly.1=5 hourly.0=6"),
	   "six hourly runs: %s", names(&c));
	is_int(rotate_low(&c, "hourly", 3, 7), 0, "hourly 3 after hourly 6");
	ok(!strcmp(names(&c), "daily.0=100 hourly.2=5 hourly.1=6 hourly.0=7"),
	   "hourly.2..5 dropped, .1 -> .2, .0 -> .1: %s", names(&c));
	bool gone = true;
	for (unsigned i = 3; i <= 5; i++) {
		snprintf(name, sizeof(name), "hourly.%u", i);
		gone &= snapshot_find(&c, name) < 0;
	}
	ok(gone, "no hourly.3..5 left");

	/* Growing again shifts without dropping until the new keep is reached. */
	is_int(rotate_low(&c, "hourly", 5, 8), 0, "hourly 5 after hourly 3");
	ok(!strcmp(names(&c), "daily.0=100 hourly.3=5 hourly.2=6 hourly.1=7 hourly.0=8"),
	   "nothing dropped: %s", names(&c));

	/* A huge canonical N is a member of the interval, and beyond any keep. */
	add(&c, "hourly.99999999999999999999999", 9);
	add(&c, "hourly.4294967295", 10);
	is_int(rotate_low(&c, "hourly", UINT32_MAX, 11), 0, "hourly with keep UINT_MAX");
	ok(snapshot_find(&c, "hourly.99999999999999999999999") < 0 &&
		   snapshot_find(&c, "hourly.4294967295") < 0 && root_named(&c, "hourly.4") == 5,
	   "hourly.<huge> dropped, the rest shifted: %s", names(&c));
	commit_release(&c);
}

static void test_bystanders(void)
{
	struct commit c = {0};
	struct model m = {0};
	uint32_t next = 1;
	struct snapshot_ref before[ELEMENTSOF(bystanders)];

	add_bystanders(&c, &m, &next);
	add(&c, "hourly.0", next++);
	memcpy(before, c.snaps, sizeof(before));
	is_int(rotate_low(&c, "hourly", 6, next), 0, "hourly among odd names");
	ok(!memcmp(before, c.snaps, sizeof(before)),
	   "odd and unrelated names are the very same entries, in place");
	ok(!strcmp(c.snaps[ELEMENTSOF(bystanders)].name, "hourly.1") &&
		   !strcmp(c.snaps[ELEMENTSOF(bystanders) + 1].name, "hourly.0") &&
		   c.n_snaps == ELEMENTSOF(bystanders) + 2,
	   "hourly.0 became hourly.1 in place and the new hourly.0 was appended");
	is_int(root_named(&c, "hourly.0"), next, "the new hourly.0 has the new root");

	/* The same with a higher interval whose name prefixes the bystanders. */
	add(&c, "hourly.2", 200);
	add(&c, "hourly.3", 300);
	add(&c, "hourly.4", 400);
	add(&c, "hourly.5", 500);
	memcpy(before, c.snaps, sizeof(before));
	is_int(rotate_high(&c, "daily", 7, "hourly", 6), 0, "daily among odd names");
	ok(!memcmp(before, c.snaps, sizeof(before)), "odd names untouched by a promotion");
	is_int(root_named(&c, "daily.0"), 500, "hourly.5 became daily.0");
	ok(snapshot_find(&c, "daily.00") >= 0, "daily.00 is not daily.0 and stays");

	/* "hourly.1" of the interval "hourly.1"? The interval's members are hourly.1.N. */
	uint32_t hourly1 = root_named(&c, "hourly.1");
	add(&c, "hourly.1.0", 1000);
	is_int(rotate_low(&c, "hourly.1", 2, 1001), 0, "an interval named hourly.1");
	ok(root_named(&c, "hourly.1.1") == 1000 && root_named(&c, "hourly.1.0") == 1001 &&
		   hourly1 && root_named(&c, "hourly.1") == hourly1,
	   "hourly.1.N rotated (the bystander hourly.1.1 dropped), hourly.1 untouched");
	commit_release(&c);
}

static void test_bad_args(void)
{
	struct commit c = {0};
	struct blob_id id = root_of(5);
	char long_interval[COMMIT_STR_MAX + 8];
	char long_host[COMMIT_STR_MAX + 2];
	struct saved s;

	add(&c, "hourly.0", 1);
	add(&c, "hourly.5", 2);
	add(&c, "daily.0", 3);

#define REFUSED(call, want, ...)                                                                   \
	do {                                                                                       \
		save(&c, &s);                                                                      \
		int r_ = (call);                                                                   \
		bool same_ = unchanged(&c, &s);                                                    \
		ok(r_ == (want) && same_, __VA_ARGS__);                                            \
		if (r_ != (want) || !same_)                                                        \
			diag("  got %d, want %d, %s", r_, (want),                                  \
			     same_ ? "unchanged" : "CHANGED");                                     \
	} while (0)

	REFUSED(snapshot_rotate(&c, "hourly", 0, NULL, 0, &id, 1, "h"), -EINVAL,
		"keep 0 is -EINVAL, nothing changed");
	REFUSED(snapshot_rotate(&c, "daily", 7, "hourly", 0, NULL, 1, "h"), -EINVAL,
		"lower_keep 0 is -EINVAL");
	REFUSED(snapshot_rotate(&c, "hourly", 6, NULL, 0, NULL, 1, "h"), -EINVAL,
		"no new root for the lowest interval is -EINVAL");
	REFUSED(snapshot_rotate(&c, NULL, 6, NULL, 0, &id, 1, "h"), -EINVAL, "NULL interval");
	REFUSED(snapshot_rotate(&c, "", 6, NULL, 0, &id, 1, "h"), -EINVAL, "empty interval");
	REFUSED(snapshot_rotate(&c, "a/b", 6, NULL, 0, &id, 1, "h"), -EINVAL, "interval a/b");
	REFUSED(snapshot_rotate(&c, ".hourly", 6, NULL, 0, &id, 1, "h"), -EINVAL,
		"interval .hourly");
	REFUSED(snapshot_rotate(&c, "hour\nly", 6, NULL, 0, &id, 1, "h"), -EINVAL,
		"interval with a newline");
	REFUSED(snapshot_rotate(&c, "daily", 7, "hour/ly", 6, NULL, 1, "h"), -EINVAL,
		"lower hour/ly");
	REFUSED(snapshot_rotate(&c, "daily", 7, "", 6, NULL, 1, "h"), -EINVAL, "empty lower");
	REFUSED(snapshot_rotate(&c, "hourly", 7, "hourly", 6, NULL, 1, "h"), -EINVAL,
		"lower equal to interval");
	/* -EINVAL wins over -ENOENT: the arguments are checked first. */
	REFUSED(snapshot_rotate(&c, "weekly", 0, "nothing", 6, NULL, 1, "h"), -EINVAL,
		"keep 0 with a missing lower is -EINVAL, not -ENOENT");

	memset(long_interval, 'i', sizeof(long_interval));
	long_interval[COMMIT_STR_MAX - 1] = 0; /* 254 bytes: "....0" is 256 */
	REFUSED(snapshot_rotate(&c, long_interval, 1, NULL, 0, &id, 1, "h"), -EINVAL,
		"a 254-byte interval (256-byte names) is -EINVAL");
	long_interval[COMMIT_STR_MAX - 2] = 0; /* 253 bytes: .0 to .9 fit, .10 does not */
	REFUSED(snapshot_rotate(&c, long_interval, 11, NULL, 0, &id, 1, "h"), -EINVAL,
		"a 253-byte interval with keep 11 (.10 too long) is -EINVAL");
	REFUSED(snapshot_rotate(&c, "daily", 7, long_interval, 11, NULL, 1, "h"), -EINVAL,
		"a 253-byte lower with lower_keep 11 is -EINVAL");
	is_int(snapshot_rotate(&c, long_interval, 10, NULL, 0, &id, 1, "h"), 0,
	       "a 253-byte interval with keep 10 (.9 fits) works");
	ok(snapshot_find(&c, "hourly.0") == 0 && c.n_snaps == 4 &&
		   strlen(c.snaps[3].name) == COMMIT_STR_MAX,
	   "and added a 255-byte name");

	memset(long_host, 'h', sizeof(long_host) - 1);
	long_host[sizeof(long_host) - 1] = 0;
	REFUSED(snapshot_rotate(&c, "hourly", 6, NULL, 0, &id, 1, long_host), -EINVAL,
		"a 256-byte host is -EINVAL");
	is_int(snapshot_rotate(&c, "hourly", 6, NULL, 0, &id, 1, NULL), 0, "a NULL host is \"\"");
	ok(!strcmp(c.snaps[snapshot_find(&c, "hourly.0")].host, ""),
	   "the new hourly.0 has host \"\"");
	commit_release(&c);
#undef REFUSED
}

/* The caller's strings may live in c itself, even in an entry the rotation drops. */
static void test_aliasing(void)
{
	struct commit c = {0};

	add(&c, "hourly.5", 1);
	add(&c, "hourly.0", 2);
	free(c.snaps[0].host);
	c.snaps[0].host = strdup("host-of-the-dropped-one");
	tap_require(c.snaps[0].host);
	struct blob_id id = root_of(3);
	is_int(snapshot_rotate(&c, "hourly", 6, NULL, 0, &id, 9, c.snaps[0].host), 0,
	       "rotate with host pointing into the dropped entry");
	ok(c.n_snaps == 2 && !strcmp(c.snaps[1].name, "hourly.0") &&
		   !strcmp(c.snaps[1].host, "host-of-the-dropped-one"),
	   "the new snapshot got a copy of the host");

	is_int(snapshot_rename(&c, c.snaps[0].name, "renamed"), 0,
	       "rename with from pointing at the entry's own name");
	ok(!strcmp(c.snaps[0].name, "renamed"), "renamed");
	is_int(snapshot_rename(&c, c.snaps[0].name, c.snaps[0].name), 0,
	       "rename onto its own name (same string)");
	is_int(snapshot_remove(&c, c.snaps[0].name), 0, "remove with name pointing into c");
	is_int(c.n_snaps, 1, "removed");
	commit_release(&c);
}

static void test_capacity(void)
{
	struct commit c = {0};
	char name[32];
	struct saved s;

	for (uint32_t i = 0; i < COMMIT_MAX_SNAPSHOTS - 2; i++) {
		snprintf(name, sizeof(name), "s%u", i);
		add(&c, name, i + 1);
	}
	add(&c, "hourly.0", 0);
	is_int(rotate_low(&c, "hourly", 2, 7), 0, "a lowest rotation up to the limit");
	is_int(c.n_snaps, COMMIT_MAX_SNAPSHOTS, "now at COMMIT_MAX_SNAPSHOTS");
	save(&c, &s);
	is_int(rotate_low(&c, "daily", 2, 8), -ENOSPC, "one more is -ENOSPC");
	ok(unchanged(&c, &s), "and nothing changed");
	is_int(rotate_high(&c, "daily", 3, "hourly", 2), 0,
	       "a promotion at the limit works (it adds nothing)");
	is_int(rotate_low(&c, "hourly", 1, 9), 0, "and so does a rotation that drops as it adds");
	is_int(c.n_snaps, COMMIT_MAX_SNAPSHOTS, "still at the limit");
	commit_release(&c);
}

static void test_remove_rename(void)
{
	struct commit c = {0};
	struct saved s;

	add(&c, "a", 1);
	add(&c, "b", 2);
	add(&c, "c", 3);
	add(&c, "d", 4);

	is_int(snapshot_remove(&c, "b"), 0, "remove b");
	ok(!strcmp(names(&c), "a=1 c=3 d=4"), "the others keep their order: %s", names(&c));
	save(&c, &s);
	is_int(snapshot_remove(&c, "b"), -ENOENT, "remove b again is -ENOENT");
	ok(unchanged(&c, &s), "and nothing changed");
	save(&c, &s);
	is_int(snapshot_remove(&c, NULL), -ENOENT, "remove NULL is -ENOENT");
	ok(unchanged(&c, &s), "and nothing changed");
	is_int(snapshot_remove(&c, "d"), 0, "remove the last");
	is_int(snapshot_remove(&c, "a"), 0, "remove the first");
	ok(!strcmp(names(&c), "c=3"), "one left: %s", names(&c));

	add(&c, "e", 5);
	add(&c, "f", 6);
	is_int(snapshot_rename(&c, "e", "before upgrade"), 0, "rename e");
	ok(!strcmp(names(&c), "c=3 before upgrade=5 f=6") && consistent(&c),
	   "renamed in place, root, time and host kept: %s", names(&c));

	static const struct {
		const char *from, *to;
		int want;
		const char *what;
	} refused[] = {
		{"nope", "g", -ENOENT, "rename of a missing snapshot"},
		{"c", "f", -EEXIST, "rename onto an existing name"},
		{"c", "current", -EINVAL, "rename to current"},
		{"c", "x/y", -EINVAL, "rename to x/y"},
		{"c", ".c", -EINVAL, "rename to .c"},
		{"c", "", -EINVAL, "rename to the empty name"},
		{"c", NULL, -EINVAL, "rename to NULL"},
		{"nope", "..", -EINVAL, "an invalid target is -EINVAL even when from is missing"},
		{NULL, "g", -ENOENT, "rename from NULL"},
	};
	for (size_t i = 0; i < ELEMENTSOF(refused); i++) {
		save(&c, &s);
		int r = snapshot_rename(&c, refused[i].from, refused[i].to);
		bool same = unchanged(&c, &s);
		ok(r == refused[i].want && same, "%s: %d, %s", refused[i].what, r,
		   same ? "unchanged" : "CHANGED");
	}
	save(&c, &s);
	is_int(snapshot_rename(&c, "f", "f"), 0, "rename f to f succeeds");
	ok(unchanged(&c, &s), "and changes nothing");

	/* A name that fails the check today can still be renamed away (and removed). */
	add(&c, ".legacy", 7);
	is_int(snapshot_rename(&c, ".legacy", "legacy"), 0, "rename from an invalid old name");
	is_int(root_named(&c, "legacy"), 7, "legacy kept its root");
	commit_release(&c);
}

int main(void)
{
	plan_lazy();
	test_names();
	test_find();
	test_days();
	test_irregular();
	test_promotion_refused();
	test_keep_one();
	test_keep_shrinks();
	test_bystanders();
	test_bad_args();
	test_aliasing();
	test_capacity();
	test_remove_rename();
	return tap_done();
}
