/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * POSIX ACL semantics the daemon owns under FUSE's POSIX ACL support (the kernel enforces
 * ACLs but leaves these to the filesystem): the mode an access ACL implies, an ACL rewritten
 * by chmod, and a new file's ACL and mode inherited from its directory's default ACL.
 *
 * Values are in the kernel's xattr format (system.posix_acl_access/default): le32 version 2,
 * then entries of le16 tag, le16 perm, le32 id.
 * Thread safety: reentrant.
 */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "util.h"

#define ACL_XATTR_ACCESS "system.posix_acl_access"
#define ACL_XATTR_DEFAULT "system.posix_acl_default"

/* The permission bits an access ACL implies. Returns 0..0777 or -EINVAL. */
int acl_mode_bits(const uint8_t *v, size_t len);
/* Whether a valid access ACL says no more than the mode (owner, group, other only): such
 * an ACL is kept as mode bits alone, as ext4 does. */
bool acl_is_minimal(size_t len);
/* Rewrite an access ACL in place for chmod to mode: owner, mask (else owning group) and
 * other take the mode's bits. Returns 0 or -EINVAL. */
int acl_chmod(uint8_t *v, size_t len, mode_t mode);
/* Inherit from a directory's default ACL: each entry is limited by the creation mode as
 * POSIX says (owner, mask or else owning group, other), the result goes to ret (appended)
 * and the mode to *mode (permission bits replaced). Returns 0, -EINVAL, -ENOMEM. */
int acl_inherit(const uint8_t *def, size_t len, mode_t *mode, struct buf *ret);
