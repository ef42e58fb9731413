/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The snapshot commands on a mounted filesystem. Each is one request to the daemon through
 * an extended attribute of the mount root; the daemon does the work under its lock, in one
 * commit, and the reply is its outcome (details go to the mount's log):
 *   cairn snapshot MNT NAME        setxattr user.cairn.snapshot = NAME
 *   cairn rotate MNT INT KEEP [--from LOWER:KEEP]
 *                                  setxattr user.cairn.rotate = INT/KEEP[/LOWER/KEEP]
 *   cairn list MNT                 getxattr user.cairn.snapshots.K, pages of SNAPS_PER_PAGE
 *                                  lines (name TAB ns TAB host) after a line "seq N"
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/xattr.h>
#include <time.h>

#include "rotate.h"
#include "snap.h"
#include "tool.h"

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

int cmd_snapshot(int argc, char **argv)
{
	const char *why = NULL;
	if (argc != 3 || argv[1][0] == '-') {
		bool help = argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"));
		fprintf(help ? stdout : stderr,
			"Usage: cairn snapshot MOUNTPOINT NAME\n"
			"Store every dirty byte of current/ and keep it as snapshot NAME, shown\n"
			"read-only beside current/.\n"
			"Exit status: 0 taken, 1 failed, 2 usage error.\n");
		return help ? EXIT_OK : EXIT_USAGE;
	}
	const char *mnt = argv[1], *name = argv[2];
	if (snapshot_name_check(name, &why) < 0) {
		fprintf(stderr, "cairn snapshot: '%s' is not a valid snapshot name: %s\n", name,
			why);
		return EXIT_USAGE;
	}
	if (!tool_is_cairn_mount(mnt)) {
		fprintf(stderr, "cairn snapshot: %s is not a cairn mount point\n", mnt);
		return EXIT_FAIL;
	}
	sync_mount(mnt);
	if (setxattr(mnt, "user.cairn.snapshot", name, strlen(name), 0) < 0) {
		if (errno == EEXIST)
			fprintf(stderr,
				"cairn snapshot: %s: a snapshot named '%s' exists already\n", mnt,
				name);
		else
			fprintf(stderr, "cairn snapshot: %s: %s (see the mount's log)\n", mnt,
				strerror(errno));
		return EXIT_FAIL;
	}
	return EXIT_OK;
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
	fprintf(f, "Usage: cairn rotate MOUNTPOINT INTERVAL KEEP [--from LOWER:LOWER_KEEP]\n"
		   "rsnapshot's rotation, in one commit. Without --from, INTERVAL is the lowest\n"
		   "interval: INTERVAL.N becomes INTERVAL.N+1 (those past KEEP go) and current/\n"
		   "is frozen as INTERVAL.0. With --from, the oldest snapshot of the interval\n"
		   "below, LOWER.(LOWER_KEEP-1), becomes INTERVAL.0 instead; when it does not\n"
		   "exist nothing changes and the exit status is 1. For rsnapshot's\n"
		   "'retain hourly 24' and 'retain daily 7', cron runs\n"
		   "  cairn rotate /mnt/backup hourly 24\n"
		   "  cairn rotate /mnt/backup daily 7 --from hourly:24\n"
		   "Exit status: 0 rotated, 1 failed (nothing shifted), 2 usage error.\n");
	return f == stdout ? EXIT_OK : EXIT_USAGE;
}

int cmd_rotate(int argc, char **argv)
{
	unsigned keep, lower_keep = 0;
	const char *why = NULL, *lower = NULL;
	char value[600], name[300];
	if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")))
		return rotate_usage(stdout);
	if (argc != 4 && !(argc == 6 && !strcmp(argv[4], "--from")))
		return rotate_usage(stderr);
	const char *mnt = argv[1], *interval = argv[2];
	if (parse_keep(argv[3], &keep) < 0) {
		fprintf(stderr, "cairn rotate: KEEP must be a number from 1 to %d, not '%s'\n",
			COMMIT_MAX_SNAPSHOTS, argv[3]);
		return EXIT_USAGE;
	}
	if (argc == 6) {
		char *colon = strrchr(argv[5], ':');
		if (!colon || parse_keep(colon + 1, &lower_keep) < 0) {
			fprintf(stderr,
				"cairn rotate: --from wants LOWER:KEEP (e.g. hourly:24), not "
				"'%s'\n",
				argv[5]);
			return EXIT_USAGE;
		}
		*colon = 0;
		lower = argv[5];
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
	if (!tool_is_cairn_mount(mnt)) {
		fprintf(stderr, "cairn rotate: %s is not a cairn mount point\n", mnt);
		return EXIT_FAIL;
	}
	if (lower)
		snprintf(value, sizeof(value), "%s/%u/%s/%u", interval, keep, lower, lower_keep);
	else
		snprintf(value, sizeof(value), "%s/%u", interval, keep);
	if (!lower)
		sync_mount(mnt);
	if (setxattr(mnt, "user.cairn.rotate", value, strlen(value), 0) < 0) {
		if (errno == ENOENT)
			fprintf(stderr,
				"cairn rotate: %s: %s.%u does not exist, nothing to promote to "
				"%s.0; nothing rotated\n",
				mnt, lower, lower_keep - 1, interval);
		else
			fprintf(stderr,
				"cairn rotate: %s: %s; nothing rotated (see the mount's log)\n",
				mnt, strerror(errno));
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

/* One page of the list (user.cairn.snapshots.K), NUL-terminated; retried while it grows. */
static int read_page(const char *mnt, unsigned k, char **ret)
{
	char name[64];
	snprintf(name, sizeof(name), "user.cairn.snapshots.%u", k);
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

int tool_snapshot_list(const char *mnt, struct commit *ret)
{
	const char *tool = "cairn";
	int r = 0;
	*ret = (struct commit){0};
	if (!tool_is_cairn_mount(mnt)) {
		fprintf(stderr, "%s: %s is not a cairn mount point\n", tool, mnt);
		return -EINVAL;
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
			r = read_page(mnt, k, &v);
			if (r >= 0)
				r = parse_page(v, ret, &page_seq, &lines);
			whole = k == 0 || page_seq == seq;
			seq = page_seq;
		}
	}
	if (r >= 0 && !whole)
		r = -EAGAIN;
	if (r < 0) {
		commit_release(ret);
		fprintf(stderr, "%s: %s: reading the snapshot list: %s\n", tool, mnt, strerror(-r));
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

int cmd_list(int argc, char **argv)
{
	struct commit c;
	char when[64];
	if (argc != 2 || argv[1][0] == '-') {
		bool help = argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"));
		fprintf(help ? stdout : stderr,
			"Usage: cairn list MOUNTPOINT\n"
			"The snapshots, oldest first: name, time taken (local), host.\n"
			"Exit status: 0 listed, 1 failed, 2 usage error.\n");
		return help ? EXIT_OK : EXIT_USAGE;
	}
	if (tool_snapshot_list(argv[1], &c) < 0)
		return EXIT_FAIL;
	printf("%-24s %-25s %s\n", "NAME", "TIME", "HOST");
	for (size_t i = 0; i < c.n_snaps; i++) {
		tool_format_time(c.snaps[i].time_ns, when, sizeof(when));
		printf("%-24s %-25s %s\n", c.snaps[i].name, when, c.snaps[i].host);
	}
	commit_release(&c);
	return EXIT_OK;
}
