/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The snapshot commands. On a mounted filesystem each is one request to the daemon through
 * an extended attribute of the mount root; the daemon does the work under its lock, in one
 * commit, and the reply is its outcome (details go to the mount's log). On a repository that
 * is not mounted the same request is handled here (tool_target_open):
 *   cairn snapshot MNT NAME        setxattr user.cairn.snapshot = NAME
 *   cairn rotate MNT INT KEEP [--from LOWER:KEEP]
 *                                  setxattr user.cairn.rotate = INT/KEEP[/LOWER/KEEP]
 *   cairn list MNT                 getxattr user.cairn.snapshots.K, pages of SNAPS_PER_PAGE
 *                                  lines (name TAB ns TAB host) after a line "seq N"
 */
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/xattr.h>
#include <time.h>

#include "rotate.h"
#include "store.h"
#include "snap.h"
#include "tool.h"
#include "usage.h"

/* Have the kernel hand the daemon every dirty page first: a file being written when the
 * snapshot is taken then shows what was written, not a hole the page cache still holds. */
static void sync_mount(const char *mnt)
{
	int fd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		if (syncfs(fd) < 0) {
			/* best effort: the daemon flushes what it has */
		}
		close(fd);
	}
}

/* Parse the target options; the positional arguments are left at argv[optind..]. Returns
 * 1 for --help, 0, or -1 for a usage error. */
static int parse_target_args(int argc, char **argv, struct tool_target_options *o, char **ret_from)
{
	static const struct option opts[] = {
		TOOL_TARGET_LONG_OPTIONS,
		{"from", required_argument, NULL, 'F'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	int c;
	*o = (struct tool_target_options){0};
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
		if (tool_target_option(c, optarg, o))
			continue;
		if (c == 'F' && ret_from)
			*ret_from = optarg;
		else
			return c == 'h' ? 1 : -1;
	}
	return 0;
}

static int snapshot_usage(FILE *f)
{
	fprintf(f, "Usage: cairn snapshot [--passphrase-file FILE] [--cache-dir DIR] TARGET NAME\n"
		   "Store every dirty byte of current/ and keep it as snapshot NAME, shown\n"
		   "read-only beside current/.\n" TOOL_TARGET_USAGE
		   "Exit status: 0 taken, 1 failed, 2 usage error.\n");
	return f == stdout ? EXIT_OK : EXIT_USAGE;
}

int cmd_snapshot(int argc, char **argv)
{
	struct tool_target_options o;
	struct tool_target t;
	const char *why = NULL;
	int r = parse_target_args(argc, argv, &o, NULL);
	if (r != 0 || optind + 2 != argc)
		return snapshot_usage(r > 0 ? stdout : stderr);
	const char *where = argv[optind], *name = argv[optind + 1];
	if (snapshot_name_check(name, &why) < 0) {
		fprintf(stderr, "cairn snapshot: '%s' is not a valid snapshot name: %s\n", name,
			why);
		return EXIT_USAGE;
	}
	if (tool_target_open("cairn snapshot", where, &o, TOOL_TARGET_WRITE, &t) < 0)
		return EXIT_FAIL;
	if (t.mnt)
		sync_mount(t.mnt);
	r = tool_target_request(&t, "user.cairn.snapshot", name, strlen(name));
	if (r == -EEXIST)
		fprintf(stderr, "cairn snapshot: %s: a snapshot named '%s' exists already\n", where,
			name);
	else if (r < 0)
		fprintf(stderr, "cairn snapshot: %s: %s%s\n", where, strerror(-r),
			t.mnt ? " (see the mount's log)" : "");
	if (tool_target_close(&t) < 0 && r >= 0)
		r = -EIO;
	return r < 0 ? EXIT_FAIL : EXIT_OK;
}

static int parse_keep(const char *s, unsigned *ret)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v == 0 || v > COMMIT_MAX_SNAPSHOTS || s[0] == '-')
		return -EINVAL;
	*ret = (unsigned)v;
	return 0;
}

static int rotate_usage(FILE *f)
{
	fprintf(f, "Usage: cairn rotate [--passphrase-file FILE] [--cache-dir DIR]\n"
		   "                    TARGET INTERVAL KEEP [--from LOWER:LOWER_KEEP]\n"
		   "rsnapshot's rotation, in one commit. Without --from, INTERVAL is the lowest\n"
		   "interval: INTERVAL.N becomes INTERVAL.N+1 (those past KEEP go) and current/\n"
		   "is frozen as INTERVAL.0. With --from, the oldest snapshot of the interval\n"
		   "below, LOWER.(LOWER_KEEP-1), becomes INTERVAL.0 instead; when it does not\n"
		   "exist nothing changes and the exit status is 1. For rsnapshot's\n"
		   "'retain hourly 24' and 'retain daily 7', cron runs\n"
		   "  cairn rotate /mnt/backup hourly 24\n"
		   "  cairn rotate /mnt/backup daily 7 --from hourly:24\n" TOOL_TARGET_USAGE
		   "Exit status: 0 rotated, 1 failed (nothing shifted), 2 usage error.\n");
	return f == stdout ? EXIT_OK : EXIT_USAGE;
}

int cmd_rotate(int argc, char **argv)
{
	struct tool_target_options o;
	struct tool_target t;
	unsigned keep, lower_keep = 0;
	const char *why = NULL, *lower = NULL;
	char value[600], name[300], *from = NULL;
	int r = parse_target_args(argc, argv, &o, &from);
	if (r != 0 || optind + 3 != argc)
		return rotate_usage(r > 0 ? stdout : stderr);
	const char *where = argv[optind], *interval = argv[optind + 1];
	if (parse_keep(argv[optind + 2], &keep) < 0) {
		fprintf(stderr, "cairn rotate: KEEP must be a number from 1 to %d, not '%s'\n",
			COMMIT_MAX_SNAPSHOTS, argv[optind + 2]);
		return EXIT_USAGE;
	}
	if (from) {
		char *colon = strrchr(from, ':');
		if (!colon || parse_keep(colon + 1, &lower_keep) < 0) {
			fprintf(stderr,
				"cairn rotate: --from wants LOWER:KEEP (e.g. hourly:24), not "
				"'%s'\n",
				from);
			return EXIT_USAGE;
		}
		*colon = 0;
		lower = from;
	}
	const char *check[] = {interval, lower};
	for (size_t i = 0; i < ELEMENTSOF(check) && check[i]; i++) {
		snprintf(name, sizeof(name), "%s.0", check[i]);
		if (strchr(check[i], '/') || snapshot_name_check(name, &why) < 0) {
			fprintf(stderr, "cairn rotate: '%s' is not a valid interval name: %s\n",
				check[i], why ? why : "contains '/'");
			return EXIT_USAGE;
		}
	}
	if (lower && !strcmp(lower, interval)) {
		fprintf(stderr, "cairn rotate: --from names %s itself\n", interval);
		return EXIT_USAGE;
	}
	if (lower)
		snprintf(value, sizeof(value), "%s/%u/%s/%u", interval, keep, lower, lower_keep);
	else
		snprintf(value, sizeof(value), "%s/%u", interval, keep);
	if (tool_target_open("cairn rotate", where, &o, TOOL_TARGET_WRITE, &t) < 0)
		return EXIT_FAIL;
	if (t.mnt && !lower)
		sync_mount(t.mnt);
	r = tool_target_request(&t, "user.cairn.rotate", value, strlen(value));
	if (r == -ENOENT)
		fprintf(stderr,
			"cairn rotate: %s: %s.%u does not exist, nothing to promote to %s.0; "
			"nothing rotated\n",
			where, lower, lower_keep - 1, interval);
	else if (r < 0)
		fprintf(stderr, "cairn rotate: %s: %s; nothing rotated%s\n", where, strerror(-r),
			t.mnt ? " (see the mount's log)" : "");
	if (tool_target_close(&t) < 0 && r >= 0)
		r = -EIO;
	return r < 0 ? EXIT_FAIL : EXIT_OK;
}

/* One page of the list (user.cairn.WHAT.K), NUL-terminated; retried while it grows. */
static int read_page(const char *mnt, const char *what, unsigned k, char **ret)
{
	char name[64];
	snprintf(name, sizeof(name), "user.cairn.%s.%u", what, k);
	for (int tries = 0; tries < 100; tries++) {
		ssize_t n = getxattr(mnt, name, NULL, 0);
		if (n < 0)
			return -errno;
		char *v = malloc((size_t)n + 1);
		if (!v)
			return -ENOMEM;
		ssize_t got = getxattr(mnt, name, v, (size_t)n);
		if (got >= 0) {
			v[got] = 0;
			*ret = v;
			return 0;
		}
		free(v);
		if (errno != ERANGE)
			return -errno;
	}
	return -EAGAIN;
}

/* Parse one page into ret; *ret_seq is its commit, *ret_lines its number of snapshots. */
static int parse_page(char *v, struct commit *ret, uint64_t *ret_seq, size_t *ret_lines)
{
	char *save = NULL, *line = strtok_r(v, "\n", &save);
	if (!line || sscanf(line, "seq %" SCNu64, ret_seq) != 1)
		return -EBADMSG;
	*ret_lines = 0;
	while ((line = strtok_r(NULL, "\n", &save))) {
		char *t = strchr(line, '\t'), *h = t ? strchr(t + 1, '\t') : NULL;
		if (!h)
			return -EBADMSG;
		*t = *h = 0;
		struct blob_id none = {{0}};
		int r = commit_add_snapshot(ret, line, &none, strtoull(t + 1, NULL, 10), h + 1);
		if (r < 0)
			return r;
		(*ret_lines)++;
	}
	return 0;
}

int tool_snapshot_list(struct tool_target *t, struct commit *ret)
{
	const char *mnt = t->mnt;
	int r = 0;
	*ret = (struct commit){0};
	if (!mnt) {
		r = store_head(t->store, ret);
		if (r < 0)
			fprintf(stderr, "%s: %s: reading the latest commit: %s\n", t->tool,
				t->where, strerror(-r));
		return r;
	}
	/* Pages of one commit: when the list changes between two pages, start over. */
	bool whole = false;
	for (int tries = 0; r >= 0 && !whole && tries < 100; tries++) {
		uint64_t seq = 0, page_seq = 0;
		size_t lines = SNAPS_PER_PAGE;
		commit_release(ret);
		*ret = (struct commit){0};
		whole = true;
		for (unsigned k = 0; r >= 0 && whole && lines == SNAPS_PER_PAGE; k++) {
			_cleanup_free_ char *v = NULL;
			r = read_page(mnt, "snapshots", k, &v);
			if (r >= 0)
				r = parse_page(v, ret, &page_seq, &lines);
			whole = k == 0 || page_seq == seq;
			seq = page_seq;
		}
		ret->seq = seq;
	}
	if (r >= 0 && !whole)
		r = -EAGAIN;
	if (r < 0) {
		commit_release(ret);
		fprintf(stderr, "%s: %s: reading the snapshot list: %s\n", t->tool, mnt,
			strerror(-r));
	}
	return r;
}

void tool_format_time(uint64_t ns, char *out, size_t len)
{
	time_t sec = (time_t)(ns / 1000000000u);
	struct tm tm;
	snprintf(out, len, "?");
	if (localtime_r(&sec, &tm))
		strftime(out, len, "%Y-%m-%d %H:%M:%S %z", &tm);
}

/* The sizes of the snapshots of list (as many, same order): from the daemon, which answers
 * for its current list (-ESTALE when that is not list's commit any more), or computed here. */
static int snapshots_usage(struct tool_target *t, const struct commit *list, struct usage *ret)
{
	if (!t->mnt) {
		_cleanup_free_ struct blob_id *roots = calloc(list->n_snaps + 1, sizeof(*roots));
		if (!roots)
			return -ENOMEM;
		for (size_t i = 0; i < list->n_snaps; i++)
			roots[i] = list->snaps[i].root;
		return usage_compute(t->store, roots, list->n_snaps,
				     list->has_root ? &list->root : NULL, ret, NULL);
	}
	size_t got = 0, lines = SNAPS_PER_PAGE;
	for (unsigned k = 0; lines == SNAPS_PER_PAGE; k++) {
		_cleanup_free_ char *v = NULL;
		char *save = NULL, *line;
		uint64_t seq;
		int r = read_page(t->mnt, "usage", k, &v);
		if (r < 0)
			return r;
		line = strtok_r(v, "\n", &save);
		if (!line || sscanf(line, "seq %" SCNu64, &seq) != 1)
			return -EBADMSG;
		if (seq != list->seq)
			return -ESTALE;
		for (lines = 0; (line = strtok_r(NULL, "\n", &save)); lines++, got++)
			if (got >= list->n_snaps ||
			    sscanf(line, "%" SCNu64 "\t%" SCNu64, &ret[got].logical,
				   &ret[got].unique) != 2)
				return -EBADMSG;
	}
	return got == list->n_snaps ? 0 : -EBADMSG;
}

/* 1536 -> "1.5K": binary units, as ls -lh and du -h print them. */
static void format_bytes(uint64_t n, char *out, size_t len)
{
	static const char units[] = "BKMGTPE";
	double v = (double)n;
	size_t u = 0;
	while (v >= 1024 && u + 1 < sizeof(units) - 1) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(out, len, "%" PRIu64 "B", n);
	else
		snprintf(out, len, v < 10 ? "%.1f%c" : "%.0f%c", v, units[u]);
}

int cmd_list(int argc, char **argv)
{
	struct tool_target_options o;
	struct tool_target t;
	struct commit c = {0};
	_cleanup_free_ struct usage *u = NULL;
	char when[64], size[16], unique[16];
	int r = parse_target_args(argc, argv, &o, NULL);
	if (r != 0 || optind + 1 != argc) {
		fprintf(r > 0 ? stdout : stderr,
			"Usage: cairn list [--passphrase-file FILE] [--cache-dir DIR] TARGET\n"
			"The snapshots, oldest first: name, time taken (local), host, logical\n"
			"size (the bytes of its files, each hard-linked file once) and unique\n"
			"bytes (data no other snapshot nor current/ holds: what forgetting it\n"
			"alone would reclaim, before compression).\n"
			"TARGET is a cairn mount point or a repository (read here, no lock).\n"
			"Exit status: 0 listed, 1 failed, 2 usage error.\n");
		return r > 0 ? EXIT_OK : EXIT_USAGE;
	}
	if (tool_target_open("cairn list", argv[optind], &o, TOOL_TARGET_READ, &t) < 0)
		return EXIT_FAIL;
	/* The sizes must be those of the list read: retried when a commit comes between. */
	r = -ESTALE;
	for (int tries = 0; r == -ESTALE && tries < 20; tries++) {
		commit_release(&c);
		free(u);
		u = NULL;
		if ((r = tool_snapshot_list(&t, &c)) < 0)
			break;
		u = calloc(c.n_snaps + 1, sizeof(*u));
		r = u ? snapshots_usage(&t, &c, u) : -ENOMEM;
	}
	tool_target_close(&t);
	/* Without sizes the list is still worth showing; the failure is said, and exit 1. */
	bool sized = r >= 0;
	if (!sized && u)
		fprintf(stderr, "cairn list: %s: computing the sizes: %s\n", argv[optind],
			strerror(-r));
	if (!u) {
		commit_release(&c);
		return EXIT_FAIL;
	}
	printf("%-24s %-25s %-16s %8s %8s\n", "NAME", "TIME", "HOST", "SIZE", "UNIQUE");
	for (size_t i = 0; i < c.n_snaps; i++) {
		tool_format_time(c.snaps[i].time_ns, when, sizeof(when));
		format_bytes(u[i].logical, size, sizeof(size));
		format_bytes(u[i].unique, unique, sizeof(unique));
		if (!sized) {
			snprintf(size, sizeof(size), "?");
			snprintf(unique, sizeof(unique), "?");
		}
		printf("%-24s %-25s %-16s %8s %8s\n", c.snaps[i].name, when, c.snaps[i].host, size,
		       unique);
	}
	commit_release(&c);
	return sized ? EXIT_OK : EXIT_FAIL;
}
