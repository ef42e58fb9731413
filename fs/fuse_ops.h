/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The FUSE low-level operations table (fuse_ops.c); the session's userdata is a struct fs. */
#pragma once

struct fuse_lowlevel_ops;
extern const struct fuse_lowlevel_ops cairn_fuse_ops;

struct fuse_session;
/* The session the handlers notify the kernel through (main.c, before the loop starts). */
void cairn_fuse_ops_set_session(struct fuse_session *se);

/* The connection options every mount of ours asks the kernel for, set in conn->want (the
 * reasons are in fuse_ops.c). Returns which of the CAIRN_FUSE_ flags the kernel granted:
 * the handlers must then behave accordingly. */
struct fuse_conn_info;
#define CAIRN_FUSE_WRITEBACK 1u	     /* the kernel keeps mtime/ctime while it caches writes */
#define CAIRN_FUSE_KERNEL_OPENDIR 2u /* answer opendir with ENOSYS: the kernel opens dirs */
unsigned cairn_fuse_conn_want(struct fuse_conn_info *conn);
