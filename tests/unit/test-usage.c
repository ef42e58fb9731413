/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * usage: logical size and unique bytes of snapshots built by hand in a store on
 * backend_mem. Shared subtrees and shared blobs are not unique; a blob the working tree
 * also references is not unique; hard links (in one directory or across directories)
 * count once in the logical size; a blob used twice inside one snapshot is still unique
 * to it and counted once; two snapshots of one tree share everything. Each distinct tree
 * is loaded once: 40 snapshots that each change one file deep down load 3 trees apiece,
 * not the whole tree. A missing tree is an error.
 */
#include <sys/stat.h>

static char scratch[256];

#include "tree_build.h"
#include "usage.h"

/* Every snapshot below has this: 4 + 6 bytes of files in a shared subtree. */
#define SHARED D("shared", 100), F("shared/a", 101, "aaaa"), F("shared/b", 102, "bbbbbb")

static const struct node snap1[] = {
	SHARED,
	F("only1", 10, "unique to one"),	  /* 13, unique */
	F("same-as-2", 11, "in both"),		  /* 7, also in snap2 under another name */
	F("in-work", 12, "the working tree too"), /* 20, also in the working tree */
	{.path = "twice", .mode = S_IFREG | 0644, .ino = 13, .data = "abc", .data2 = "abc"},
};

static const struct node snap2[] = {
	SHARED,
	F("only2", 20, "unique to two!"), /* 14, unique */
	F("x", 21, "in both"),		  /* 7 */
	D("d1", 22),
	D("d2", 23),
	{.path = "d1/hard", .mode = S_IFREG | 0644, .ino = 24, .data = "0123456789", .nlink = 2},
	{.path = "d2/hard too",
	 .mode = S_IFREG | 0644,
	 .ino = 24,
	 .data = "0123456789",
	 .nlink = 2},
	{.path = "h1", .mode = S_IFREG | 0644, .ino = 25, .data = "three", .nlink = 3},
	{.path = "h2", .mode = S_IFREG | 0644, .ino = 25, .data = "three", .nlink = 3},
	{.path = "h3", .mode = S_IFREG | 0644, .ino = 25, .data = "three", .nlink = 3},
	{.path = "link", .mode = S_IFLNK | 0777, .ino = 26, .data = "only2"},
};

static const struct node work[] = {
	SHARED,
	F("w", 30, "the working tree too"),
	F("w2", 31, "only the working tree"),
};

static void test_basic(void)
{
	struct store *s = new_store();
	struct blob_id r[3] = {BUILD(s, snap1), BUILD(s, snap2), BUILD(s, snap1)};
	struct blob_id w = BUILD(s, work);
	struct usage u[3];
	struct usage_stats st;

	is_int(usage_compute(s, r, 2, &w, u, &st), 0, "usage of two snapshots and a working tree");
	is_int(u[0].logical, 10 + 13 + 7 + 20 + 6, "snap1: logical size is the sum of its files");
	is_int(u[0].unique, 13 + 3,
	       "snap1: unique is only1 and the one blob of twice (not shared/, not same-as-2, "
	       "not in-work)");
	is_int(u[1].logical, 10 + 14 + 7 + 10 + 5,
	       "snap2: hard links count once (across directories, and three in one)");
	is_int(u[1].unique, 14 + 10 + 5, "snap2: unique is only2 and the hard-linked data, once");
	/* Trees: snap1's root, snap2's root, d1, d2, shared (once), the working tree's root. */
	is_int(st.trees, 6, "6 distinct trees, each loaded once");
	/* aaaa, bbbbbb, unique to one, in both, the working tree too, abc, unique to two!,
	 * 0123456789, three, only the working tree */
	is_int(st.blobs, 10, "10 distinct blobs");
	is_int(st.blob_bytes, 4 + 6 + 13 + 7 + 20 + 3 + 14 + 10 + 5 + 21, "their bytes");

	is_int(usage_compute(s, r, 2, NULL, u, NULL), 0, "without the working tree");
	is_int(u[0].unique, 13 + 3 + 20, "snap1: in-work is now unique to it");
	is_int(u[1].unique, 14 + 10 + 5, "snap2: unchanged");

	is_int(usage_compute(s, r, 3, &w, u, &st), 0, "snap1 taken twice");
	ok(u[0].unique == 0 && u[2].unique == 0 && u[0].logical == u[2].logical &&
		   u[0].logical == 56,
	   "two snapshots of one tree: same logical size, nothing unique to either");
	is_int(u[1].unique, 14 + 10 + 5, "the other snapshot is not affected");
	is_int(st.trees, 6, "still 6 trees loaded");

	is_int(usage_compute(s, r, 0, &w, u, &st), 0, "no snapshots, only the working tree");
	is_int(st.trees, 2, "2 trees");

	/* A root that is not in the store. */
	struct blob_id missing;
	memset(missing.b, 0x77, sizeof(missing.b));
	u[0] = (struct usage){.logical = 12345};
	log_set_max_level(0); /* logged, as it should be */
	is_int(usage_compute(s, &missing, 1, NULL, u, NULL), -ENOENT, "a missing tree: -ENOENT");
	log_set_max_level(LOG_INFO);
	is_int(u[0].logical, 12345, "and nothing written on failure");
	tap_require(store_close(s) == 0);
}

/*
 * N snapshots of a tree top/{a/b/f, c/g}, where snapshot k has its own content in a/b/f:
 * each has its own top, a and a/b (3 trees) and shares c. A cost per snapshot times tree
 * size would load 4N trees; loading each distinct tree once loads 3N + 1.
 */
static void test_shared_subtrees(void)
{
	enum { N = 40 };
	struct store *s = new_store();
	struct blob_id roots[N];
	struct usage u[N];
	struct usage_stats st;
	char content[N][32];

	for (unsigned k = 0; k < N; k++) {
		snprintf(content[k], sizeof(content[k]), "version %u of the file", k + 100);
		const struct node v[] = {
			D("a", 2),
			D("a/b", 3),
			F("a/b/f", 4, content[k]),
			D("c", 5),
			F("c/g", 6, "unchanged, in every snapshot"),
		};
		roots[k] = BUILD(s, v);
	}
	is_int(usage_compute(s, roots, N, NULL, u, &st), 0, "usage of %d snapshots", N);
	is_int(st.trees, 3 * N + 1, "3N + 1 = %d distinct trees loaded, not 4N", 3 * N + 1);
	bool all = true;
	for (unsigned k = 0; k < N; k++)
		all = all && u[k].unique == strlen(content[k]) &&
		      u[k].logical == strlen(content[k]) + 28;
	ok(all, "each: unique is its own file's %zu bytes, logical adds the shared 28",
	   strlen(content[0]));

	/* The working tree holds the last version: it is no longer unique to the last. */
	is_int(usage_compute(s, roots, N, &roots[N - 1], u, &st), 0, "with a working tree");
	ok(u[N - 1].unique == 0 && u[N - 2].unique == strlen(content[N - 2]),
	   "the blob the working tree shares is not unique");
	is_int(st.trees, 3 * N + 1, "the working tree adds no tree it shares");
	tap_require(store_close(s) == 0);
}

int main(void)
{
	plan_lazy();
	tap_require(codec_global_init() == 0);
	const char *tmp = getenv("TMPDIR");
	snprintf(scratch, sizeof(scratch), "%s/cairn-test-usage-XXXXXX", tmp ? tmp : "/tmp");
	tap_require(mkdtemp(scratch));

	test_basic();
	test_shared_subtrees();

	rm_rf(scratch);
	return tap_done();
}
