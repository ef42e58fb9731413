/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* POSIX ACL rules the daemon applies itself (see acl.h). */
#include "acl.h"

#define TAG_USER_OBJ 0x01
#define TAG_GROUP_OBJ 0x04
#define TAG_MASK 0x10
#define TAG_OTHER 0x20

static bool acl_valid(size_t len)
{
	return len >= 4 && (len - 4) % 8 == 0;
}

static unsigned tag_of(const uint8_t *e)
{
	return (unsigned)(e[0] | e[1] << 8);
}

static unsigned perm_of(const uint8_t *e)
{
	return (unsigned)(e[2] | e[3] << 8) & 7;
}

static void set_perm(uint8_t *e, unsigned perm)
{
	e[2] = (uint8_t)perm;
	e[3] = 0;
}

static bool has_mask(const uint8_t *v, size_t len)
{
	for (size_t off = 4; off < len; off += 8)
		if (tag_of(v + off) == TAG_MASK)
			return true;
	return false;
}

int acl_mode_bits(const uint8_t *v, size_t len)
{
	int user = -1, group = -1, mask = -1, other = -1;
	if (!acl_valid(len) || get_le32(v) != 2)
		return -EINVAL;
	for (size_t off = 4; off < len; off += 8) {
		unsigned tag = tag_of(v + off), perm = perm_of(v + off);
		if (tag == TAG_USER_OBJ)
			user = (int)perm;
		else if (tag == TAG_GROUP_OBJ)
			group = (int)perm;
		else if (tag == TAG_MASK)
			mask = (int)perm;
		else if (tag == TAG_OTHER)
			other = (int)perm;
	}
	if (user < 0 || group < 0 || other < 0)
		return -EINVAL;
	return user << 6 | (mask >= 0 ? mask : group) << 3 | other;
}

bool acl_is_minimal(size_t len)
{
	return len == 4 + 3 * 8;
}

/* Apply f to the entries that carry the mode's three classes. */
static void for_classes(uint8_t *v, size_t len, mode_t mode, bool limit)
{
	bool mask = has_mask(v, len);
	for (size_t off = 4; off < len; off += 8) {
		uint8_t *e = v + off;
		unsigned tag = tag_of(e), bits;
		if (tag == TAG_USER_OBJ)
			bits = (mode >> 6) & 7;
		else if (tag == TAG_OTHER)
			bits = mode & 7;
		else if (tag == (mask ? TAG_MASK : TAG_GROUP_OBJ))
			bits = (mode >> 3) & 7;
		else
			continue;
		set_perm(e, limit ? perm_of(e) & bits : bits);
	}
}

int acl_chmod(uint8_t *v, size_t len, mode_t mode)
{
	if (!acl_valid(len) || get_le32(v) != 2)
		return -EINVAL;
	for_classes(v, len, mode, false);
	return 0;
}

int acl_inherit(const uint8_t *def, size_t len, mode_t *mode, struct buf *ret)
{
	if (!acl_valid(len) || get_le32(def) != 2)
		return -EINVAL;
	size_t start = ret->len;
	int r = buf_append(ret, def, len);
	if (r < 0)
		return r;
	for_classes(ret->data + start, len, *mode, true);
	int bits = acl_mode_bits(ret->data + start, len);
	if (bits < 0) {
		ret->len = start;
		return bits;
	}
	*mode = (*mode & ~(mode_t)0777) | (mode_t)bits;
	return 0;
}
