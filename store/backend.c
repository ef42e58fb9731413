/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What every backend shares: freeing an instance through its type, and the key and prefix
 * rules of backend.h. Every backend checks keys with these functions, so that a key one
 * backend accepts is accepted by all of them (a repository can move from a directory to S3).
 */
#include "backend.h"

#define BACKEND_KEY_MAX 1024

void backend_free(struct backend *b)
{
	if (!b)
		return;
	b->type->free(b);
}

static bool key_char_valid(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-' || c == '/';
}

/* A complete segment: non-empty, not "." or "..". */
static bool segment_valid(const char *s, size_t len)
{
	if (len == 0)
		return false;
	if (s[0] == '.' && (len == 1 || (len == 2 && s[1] == '.')))
		return false;
	return true;
}

/*
 * Checks the alphabet and every complete segment of s. When `partial_tail` is true the text
 * after the last '/' may be any run of key characters (it is the beginning of a segment).
 */
static bool key_check(const char *s, bool partial_tail)
{
	const char *seg = s;
	size_t n;

	if (!s)
		return false;
	for (n = 0; s[n]; n++) {
		if (n >= BACKEND_KEY_MAX || !key_char_valid(s[n]))
			return false;
		if (s[n] == '/') {
			if (!segment_valid(seg, (size_t)(s + n - seg)))
				return false;
			seg = s + n + 1;
		}
	}
	return partial_tail || segment_valid(seg, (size_t)(s + n - seg));
}

bool backend_key_valid(const char *key)
{
	return key_check(key, false);
}

bool backend_prefix_valid(const char *prefix)
{
	return key_check(prefix, true);
}
