/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The FUSE low-level operations table (fuse_ops.c); the session's userdata is a struct fs. */
#pragma once

struct fuse_lowlevel_ops;
extern const struct fuse_lowlevel_ops cairn_fuse_ops;

struct fuse_session;
/* The session the handlers notify the kernel through (main.c, before the loop starts). */
void cairn_fuse_ops_set_session(struct fuse_session *se);
