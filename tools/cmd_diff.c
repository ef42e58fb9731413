/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * `cairn diff TARGET A B`: what changed from snapshot A to snapshot B, one line per path
 * (fs/treediff.h has the kinds and the order). TARGET is a cairn mount point (the two
 * snapshot directories are walked through the mount, with the ids the daemon gives) or a
 * repository location (opened read-only, without the lock, and the trees are read from
 * the store). Either way unchanged subtrees are skipped, not walked.
 */
#include <getopt.h>
#include <stdio.h>
#include <sys/xattr.h>
#include <sys/stat.h>

#include "rotate.h"
#include "store.h"
#include "tool.h"
#include "treediff.h"

#define CURRENT "current"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: cairn diff [--passphrase-file FILE] [--cache-dir DIR] [-0] TARGET A B\n"
		"What changed from snapshot A to snapshot B, one line per path, relative to\n"
		"the snapshot:\n"
		"  + path   added            - path   removed\n"
		"  M path   content changed  U path   metadata only (mode, owner, mtime, xattrs)\n"
		"  T path   type changed (then what the directory on either side holds, as +/-)\n"
		"A directory comes before what it holds. TARGET is a cairn mount point or a\n"
		"repository (opened read-only, no lock; the passphrase options apply to it).\n"
		"A or B may be 'current': the working tree (in a repository, as last committed).\n"
		"  -0, --null   end each line with NUL instead of newline (names may hold '\\n')\n"
		"On a terminal a summary follows on stderr.\n"
		"Exit status: 0 compared (with or without differences), 1 failure, 2 usage "
		"error.\n");
}

struct printer {
	char end;
	uint64_t counts[5]; /* + - M U T */
};

static int print_one(enum treediff_kind kind, const char *path, const struct treediff_entry *a,
		     const struct treediff_entry *b, void *ud)
{
	struct printer *p = ud;
	static const char kinds[] = "+-MUT";
	const char *k = strchr(kinds, (int)kind);
	if (k)
		p->counts[k - kinds]++;
	if (printf("%c %s%c", (char)kind, path, p->end) < 0)
		return -EIO;
	return 0;
}

static bool name_ok(const char *name)
{
	const char *why;
	if (!strcmp(name, CURRENT) || snapshot_name_check(name, &why) == 0)
		return true;
	fprintf(stderr, "cairn diff: '%s' is not a snapshot name: %s\n", name, why);
	return false;
}

/* The daemon's id of a snapshot's top directory, or "" (current/, or gone). */
static void top_id(const char *path, char out[80])
{
	ssize_t n = getxattr(path, TREEDIFF_ID_XATTR, out, 79);
	out[n > 0 ? n : 0] = 0;
}

/* Through the mount: the two directories, with the daemon's ids where it gives them. */
static int diff_mounted(const char *mnt, const char *a, const char *b, struct printer *p)
{
	struct treediff_dir_source sa = {0}, sb = {0};
	_cleanup_free_ char *pa = NULL;
	_cleanup_free_ char *pb = NULL;
	const char *names[2] = {a, b};
	char *paths[2];
	int r;

	if (asprintf(&pa, "%s/%s", mnt, a) < 0 || asprintf(&pb, "%s/%s", mnt, b) < 0)
		return -ENOMEM;
	paths[0] = pa;
	paths[1] = pb;
	for (int k = 0; k < 2; k++) {
		struct stat st;
		if (lstat(paths[k], &st) < 0 && errno == ENOENT) {
			fprintf(stderr, "cairn diff: %s: no snapshot named '%s'\n", mnt, names[k]);
			return -ENOENT;
		}
	}
	/* The walk goes by path: a rotation meanwhile would switch snapshots under it. Each
	 * top's id (its tree) before and after tells; the same tree under a name is harmless. */
	char before[2][80] = {"", ""}, after[2][80] = {"", ""};
	for (int k = 0; k < 2; k++)
		top_id(paths[k], before[k]);
	if ((r = treediff_dir_source_init(&sa, pa)) < 0)
		return r;
	if ((r = treediff_dir_source_init(&sb, pb)) >= 0) {
		r = treediff_run(&sa.base, &sb.base, print_one, p);
		treediff_dir_source_release(&sb);
	}
	treediff_dir_source_release(&sa);
	for (int k = 0; r >= 0 && k < 2; k++)
		if (top_id(paths[k], after[k]), strcmp(before[k], after[k])) {
			fprintf(stderr,
				"cairn diff: %s: '%s' became another snapshot during the diff (a "
				"rotation?): the output above is not reliable; run it again\n",
				mnt, names[k]);
			r = -ESTALE;
		}
	return r;
}

/* The root of snapshot name in c ("current": the working tree), or an error printed. */
static int find_root(const struct commit *c, const char *loc, const char *name, struct blob_id *ret)
{
	if (!strcmp(name, CURRENT)) {
		if (!c->has_root) {
			fprintf(stderr, "cairn diff: %s: no working tree committed yet\n", loc);
			return -ENOENT;
		}
		*ret = c->root;
		return 0;
	}
	ssize_t k = snapshot_find(c, name);
	if (k < 0) {
		fprintf(stderr, "cairn diff: %s: no snapshot named '%s'\n", loc, name);
		return -ENOENT;
	}
	*ret = c->snaps[k].root;
	return 0;
}

/* From the repository: the two trees, read from the store. */
static int diff_repository(struct store *s, const char *loc, const char *a, const char *b,
			   struct printer *p)
{
	struct commit c = {0};
	struct blob_id ra, rb;
	int r = store_head(s, &c);
	if (r < 0)
		fprintf(stderr, "cairn diff: %s: reading the latest commit: %s\n", loc,
			strerror(-r));
	if (r >= 0 && (r = find_root(&c, loc, a, &ra)) >= 0 &&
	    (r = find_root(&c, loc, b, &rb)) >= 0) {
		struct treediff_tree_source sa, sb;
		treediff_tree_source_init(&sa, s, &ra);
		treediff_tree_source_init(&sb, s, &rb);
		r = treediff_run(&sa.base, &sb.base, print_one, p);
	}
	commit_release(&c);
	return r;
}

int cmd_diff(int argc, char **argv)
{
	static const struct option opts[] = {
		TOOL_TARGET_LONG_OPTIONS,
		{"null", no_argument, NULL, '0'},
		{"help", no_argument, NULL, 'h'},
		{},
	};
	struct tool_target_options o = {0};
	struct tool_target t;
	struct printer p = {.end = '\n'};
	int c, r;

	while ((c = getopt_long(argc, argv, "0h", opts, NULL)) >= 0) {
		if (tool_target_option(c, optarg, &o))
			continue;
		switch (c) {
		case '0':
			p.end = '\0';
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc - 3) {
		usage(stderr);
		return EXIT_USAGE;
	}
	const char *target = argv[optind], *a = argv[optind + 1], *b = argv[optind + 2];
	if (!name_ok(a) || !name_ok(b))
		return EXIT_USAGE;

	if (tool_target_open("cairn diff", target, &o, TOOL_TARGET_READ, &t) < 0)
		return EXIT_FAIL;
	if (t.mnt)
		r = diff_mounted(target, a, b, &p);
	else
		r = diff_repository(t.store, target, a, b, &p);
	tool_target_close(&t);
	if (fflush(stdout) != 0 && r >= 0) {
		r = -errno;
		fprintf(stderr, "cairn diff: writing the output: %s\n", strerror(errno));
	}
	if (r < 0)
		return EXIT_FAIL;
	if (isatty(STDERR_FILENO))
		fprintf(stderr,
			"%llu added, %llu removed, %llu changed, %llu metadata only, %llu type "
			"changed\n",
			(unsigned long long)p.counts[0], (unsigned long long)p.counts[1],
			(unsigned long long)p.counts[2], (unsigned long long)p.counts[3],
			(unsigned long long)p.counts[4]);
	return EXIT_OK;
}
