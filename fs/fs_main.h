/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Serving a mount (fs/main.c), for the mount.cairn front end.
 * Order of use: fs_daemon_start() (unless foreground) before any thread exists, then open
 * the store, then fs_serve(), which calls fs_daemon_ready(0) once the mount is up; a front
 * end that fails before that calls fs_daemon_ready(1).
 */
#pragma once

#include "fsops.h"

struct fs_mount_options {
	const char *source; /* the repository, for messages and /proc/mounts */
	const char *mountpoint;
	bool allow_other;
	bool no_uring; /* stay on /dev/fuse even where the kernel offers io_uring */
	bool debug;
	struct fs_options fs;
};

/* Fork; the parent waits for the child's word and exits with it. Returns 0 in the child. */
int fs_daemon_start(void);
/* Tell the waiting parent: 0 mounted, else failed. No-op in the foreground. */
void fs_daemon_ready(int status);
/* Mount se on mountpoint and serve it until it is unmounted, the way every mount of ours
 * is served: the transport (fs/uring.c), the read-ahead, the threaded loop. source names
 * the mount in the log. Calls fs_daemon_ready(0) once mounted. Returns 0 or -errno. */
struct fuse_session;
int fs_serve_session(struct fuse_session *se, const char *mountpoint, const char *source,
		     bool no_uring);
/* Mount and serve until unmounted; then the final checkpoint. Returns 0 or -errno. */
int fs_serve(struct store *s, const struct fs_mount_options *o);
