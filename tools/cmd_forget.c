/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cairn forget MOUNTPOINT --keep-... [--dry-run]: decide with store/forget.h (borg prune's
 * rules) which snapshots the policy keeps, print the plan, and have the daemon drop the rest
 * (setxattr user.cairn.forget = "name TAB time" lines, one commit per 64 KiB of them). The
 * daemon drops exactly the snapshots printed, or none of a request if one has gone or been
 * renamed meanwhile.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>

#include "commit.h"
#include "forget.h"
#include "tool.h"

static int usage(FILE *f)
{
	fprintf(f,
		"Usage: cairn forget TARGET [--keep-last N] [--keep-hourly N]\n"
		"       [--keep-daily N] [--keep-weekly N] [--keep-monthly N] [--keep-yearly N]\n"
		"       [--keep-within DURATION] [--dry-run]\n"
		"       [--passphrase-file FILE] [--cache-dir DIR]\n"
		"Drop the snapshots a time-based policy does not keep, as borg prune does:\n"
		"--keep-within keeps everything younger than DURATION (e.g. 2d, 1y2m) counted\n"
		"back from the newest snapshot; --keep-last keeps the N newest; each period\n"
		"rule keeps the newest snapshot of each of the N latest hours/days/ISO weeks/\n"
		"months/years that have one, not counting snapshots an earlier rule kept, and\n"
		"keeps the oldest too while it has fewer than N. At least one rule is needed;\n"
		"the newest snapshot is always kept. Dropped snapshots' data is reclaimed by\n"
		"expire. Exit status: 0 done, 1 failed (the message says how many were\n"
		"dropped: up to ~2000 go in each commit), 2 usage error.\n" TOOL_TARGET_USAGE);
	return f == stdout ? EXIT_OK : EXIT_USAGE;
}

static int parse_count(const char *s, unsigned *ret)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v > 1000000)
		return -EINVAL;
	*ret = (unsigned)v;
	return 0;
}

/* Have the daemon drop the snapshots not kept, in commits of as many as fit one request
 * (64 KiB), each line "name TAB time" so that one renamed meanwhile is refused. */
static int forget_send(struct tool_target *t, const struct commit *list, const bool *keep,
		       size_t *ret_dropped)
{
	char line[COMMIT_STR_MAX + 32];
	_cleanup_buf_ struct buf req = {0};
	size_t batch = 0;
	int r = 0;
	*ret_dropped = 0;
	for (size_t i = 0; r >= 0 && i <= list->n_snaps; i++) {
		int len = 0;
		if (i < list->n_snaps && !keep[i])
			len = snprintf(line, sizeof(line), "%s\t%" PRIu64 "\n", list->snaps[i].name,
				       list->snaps[i].time_ns);
		if (req.len && (i == list->n_snaps || req.len + (size_t)len > 65536)) {
			r = tool_target_request(t, "user.cairn.forget", req.data, req.len);
			if (r >= 0)
				*ret_dropped += batch;
			req.len = 0;
			batch = 0;
		}
		if (r >= 0 && len > 0 && (r = buf_append(&req, line, (size_t)len)) >= 0)
			batch++;
	}
	return r;
}

int cmd_forget(int argc, char **argv)
{
	static const struct option opts[] = {
		{"keep-last", required_argument, NULL, 'l'},
		{"keep-hourly", required_argument, NULL, 'H'},
		{"keep-daily", required_argument, NULL, 'd'},
		{"keep-weekly", required_argument, NULL, 'w'},
		{"keep-monthly", required_argument, NULL, 'm'},
		{"keep-yearly", required_argument, NULL, 'y'},
		{"keep-within", required_argument, NULL, 'W'},
		{"dry-run", no_argument, NULL, 'n'},
		TOOL_TARGET_LONG_OPTIONS,
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct forget_policy p = {0};
	bool dry_run = false;
	int c;
	struct tool_target_options o = {0};
	struct tool_target t;
	while ((c = getopt_long(argc, argv, "nh", opts, NULL)) >= 0) {
		if (tool_target_option(c, optarg, &o))
			continue;
		unsigned *field = c == 'l'   ? &p.last
				  : c == 'H' ? &p.hourly
				  : c == 'd' ? &p.daily
				  : c == 'w' ? &p.weekly
				  : c == 'm' ? &p.monthly
				  : c == 'y' ? &p.yearly
					     : NULL;
		if (field && parse_count(optarg, field) < 0) {
			fprintf(stderr, "cairn forget: '%s' is not a count\n", optarg);
			return EXIT_USAGE;
		} else if (c == 'W' && forget_parse_duration(optarg, &p.within_ns) < 0) {
			fprintf(stderr,
				"cairn forget: '%s' is not a duration (e.g. 12h, 2d, 1y2m)\n",
				optarg);
			return EXIT_USAGE;
		} else if (c == 'n')
			dry_run = true;
		else if (c == 'h')
			return usage(stdout);
		else if (c == '?')
			return usage(stderr);
	}
	if (optind + 1 != argc)
		return usage(stderr);
	if (!p.last && !p.hourly && !p.daily && !p.weekly && !p.monthly && !p.yearly &&
	    !p.within_ns) {
		fprintf(stderr, "cairn forget: no --keep rule given: refusing to drop every "
				"snapshot\n");
		return EXIT_USAGE;
	}
	const char *mnt = argv[optind];
	struct commit list;
	if (tool_target_open("cairn forget", mnt, &o,
			     dry_run ? TOOL_TARGET_READ : TOOL_TARGET_WRITE, &t) < 0)
		return EXIT_FAIL;
	if (tool_snapshot_list(&t, &list) < 0) {
		tool_target_close(&t);
		return EXIT_FAIL;
	}
	size_t n = list.n_snaps;
	_cleanup_free_ bool *keep = calloc(n + 1, sizeof(*keep));
	_cleanup_free_ const char **why = calloc(n + 1, sizeof(*why));
	int r = keep && why ? forget_plan(list.snaps, n, &p, false, keep, why) : -ENOMEM;
	size_t dropped = 0;
	for (size_t i = 0; r >= 0 && i < n; i++) {
		char when[64];
		tool_format_time(list.snaps[i].time_ns, when, sizeof(when));
		printf("%-5s %-16s %-24s %s\n", keep[i] ? "keep" : "drop", why[i] ? why[i] : "",
		       list.snaps[i].name, when);
		dropped += !keep[i];
	}
	if (r < 0) {
		commit_release(&list);
		tool_target_close(&t);
		fprintf(stderr, "cairn forget: %s: planning: %s\n", mnt, strerror(-r));
		return EXIT_FAIL;
	}
	if (dry_run || !dropped) {
		commit_release(&list);
		tool_target_close(&t);
		printf("%zu of %zu snapshots would be dropped%s\n", dropped, n,
		       dry_run ? " (dry run: nothing changed)" : "");
		return EXIT_OK;
	}
	r = forget_send(&t, &list, keep, &dropped);
	commit_release(&list);
	if (r < 0)
		fprintf(stderr, "cairn forget: %s: %s; %zu snapshots dropped%s\n", mnt,
			strerror(-r), dropped, t.mnt ? " (see the mount's log)" : "");
	if (tool_target_close(&t) < 0 && r >= 0)
		r = -EIO;
	if (r < 0)
		return EXIT_FAIL;
	printf("%zu of %zu snapshots dropped\n", dropped, n);
	return EXIT_OK;
}
