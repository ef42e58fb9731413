/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * FUSE requests over io_uring where the kernel offers it (fs/uring.c). Call
 * fs_uring_attach() after fuse_session_mount() and before the loop; the rings then come up
 * by themselves when the kernel's INIT offers them, else everything stays on /dev/fuse.
 * fs_uring_stop() after the loop has ended and the file system is unmounted.
 */
#pragma once

#include <stdbool.h>

struct fuse_session;

int fs_uring_attach(struct fuse_session *se);
void fs_uring_stop(void);

/* A background thread of ours (a flusher) starts (true) or stops (false) working. Ring
 * threads wait as SCHED_IDLE only while none does (fs/uring.c). */
void fs_uring_worker_busy(bool busy);
