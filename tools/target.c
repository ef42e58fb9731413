/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A snapshot command's target: a mounted filesystem or a repository (see tool.h). */
#include <getopt.h>
#include <stdio.h>
#include <sys/xattr.h>

#include "fsops.h"
#include "store.h"
#include "tool.h"

int tool_target_option(int c, const char *arg, struct tool_target_options *o)
{
	if (c == TOOL_OPT_PASSPHRASE_FILE)
		o->passphrase_file = arg;
	else if (c == TOOL_OPT_CACHE_DIR)
		o->cache_dir = arg;
	else
		return 0;
	return 1;
}

int tool_target_open(const char *tool, const char *where, const struct tool_target_options *o,
		     enum tool_target_mode mode, struct tool_target *ret)
{
	*ret = (struct tool_target){.tool = tool, .where = where};
	if (tool_is_cairn_mount(where)) {
		ret->mnt = where;
		return 0;
	}
	/* Not a mount point: a repository, opened here as a mount would open it. */
	bool read_only = mode == TOOL_TARGET_READ;
	int r = tool_open_store(where, o->passphrase_file, o->cache_dir, read_only, &ret->store);
	if (r < 0)
		return r; /* printed: no such repository, a wrong passphrase, in use (mounted) */
	if (read_only)
		return 0;
	struct fs_options fo = {0};
	r = fs_open(ret->store, &fo, &ret->fs);
	if (r < 0) {
		fprintf(stderr, "%s: %s: cannot open the working tree: %s\n", tool, where,
			strerror(-r));
		store_close(ret->store);
		ret->store = NULL;
	}
	return r;
}

int tool_target_request(struct tool_target *t, const char *name, const void *value, size_t len)
{
	if (t->mnt) {
		t->requested = true;
		return setxattr(t->mnt, name, value, len, 0) < 0 ? -errno : 0;
	}
	return fsops_setxattr(t->fs, FSOPS_ROOT, name, value, len, 0);
}

int tool_target_close(struct tool_target *t)
{
	int r = 0;
	/* Return only once the kernel holds no snapshot name from before our requests: then
	 * every name means its new snapshot to everybody (fs/fsops.h). */
	if (t->mnt && t->requested && getxattr(t->mnt, "user.cairn.settled", NULL, 0) < 0)
		fprintf(stderr,
			"%s: %s: the kernel may show old snapshot names for a second or two: %s\n",
			t->tool, t->where, strerror(errno));
	if (t->fs) {
		r = fs_close(t->fs);
		if (r < 0)
			fprintf(stderr, "%s: %s: writing the last checkpoint: %s\n", t->tool,
				t->where, strerror(-r));
	}
	if (t->store) {
		int k = store_close(t->store);
		if (k < 0 && r >= 0) {
			fprintf(stderr, "%s: %s: closing the repository: %s\n", t->tool, t->where,
				strerror(-k));
			r = k;
		}
	}
	*t = (struct tool_target){0};
	return r;
}
