/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Snapshot names and rsnapshot-style rotation of a commit's snapshot list (contract in
 * rotate.h). A rotation is planned first (which entries go, which get a new name), every
 * allocation is made while c is still untouched, and only then are the new names and the new
 * array swapped in: nothing after the plan can fail.
 */
#include "rotate.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>

_Static_assert(COMMIT_STR_MAX == 255, "the reasons below say 255 bytes");

int snapshot_name_check(const char *name, const char **why)
{
	const char *reason = NULL;
	size_t len = name ? strnlen(name, COMMIT_STR_MAX + 1) : 0;

	if (len == 0)
		reason = "is empty";
	else if (len > COMMIT_STR_MAX)
		reason = "is longer than 255 bytes";
	else if (!strcmp(name, ".") || !strcmp(name, ".."))
		reason = "is '.' or '..'";
	else if (name[0] == '.')
		reason = "starts with '.'";
	else if (!strcmp(name, "current"))
		reason = "is reserved for the working tree";
	for (size_t i = 0; !reason && i < len; i++) {
		unsigned char ch = (unsigned char)name[i], next = (unsigned char)name[i + 1];
		if (ch == '/')
			reason = "contains '/'";
		/* C1 controls too (U+0080..U+009F as UTF-8): some terminals obey them, and
		 * names end up in ls output and log lines. */
		else if (ch < 0x20 || ch == 0x7f || (ch == 0xc2 && next >= 0x80 && next <= 0x9f))
			reason = "contains a control character";
	}
	if (!reason)
		return 0;
	if (why)
		*why = reason;
	return -EINVAL;
}

ssize_t snapshot_find(const struct commit *c, const char *name)
{
	if (!name)
		return -1;
	for (size_t i = 0; i < c->n_snaps; i++)
		if (!strcmp(c->snaps[i].name, name))
			return (ssize_t)i;
	return -1;
}

/*
 * Whether name is prefix.N with N a canonical decimal ("0", or no leading zero), so that
 * "hourly.07" and "hourly.7" are never both taken for hourly.7. *ret_n gets N, saturated at
 * UINT64_MAX: a huge N is still a member of the interval, beyond any keep.
 */
static bool parse_numbered(const char *name, const char *prefix, size_t prefix_len, uint64_t *ret_n)
{
	if (strncmp(name, prefix, prefix_len) || name[prefix_len] != '.')
		return false;
	const char *d = name + prefix_len + 1;
	if (*d < '0' || *d > '9' || (d[0] == '0' && d[1]))
		return false;
	uint64_t n = 0;
	for (; *d; d++) {
		if (*d < '0' || *d > '9')
			return false;
		unsigned digit = (unsigned)(*d - '0');
		n = n > (UINT64_MAX - digit) / 10 ? UINT64_MAX : n * 10 + digit;
	}
	*ret_n = n;
	return true;
}

/* Format prefix.n into out; -EINVAL when it does not fit a snapshot name. */
static int format_numbered(const char *prefix, uint64_t n, char out[COMMIT_STR_MAX + 1])
{
	int k = snprintf(out, COMMIT_STR_MAX + 1, "%s.%" PRIu64, prefix, n);
	return k < 0 || k > COMMIT_STR_MAX ? -EINVAL : 0;
}

/* interval.0 is a valid name and interval.(keep-1), the longest a rotation makes, fits. */
static int check_interval(const char *interval, unsigned keep)
{
	char name[COMMIT_STR_MAX + 1];

	if (!interval || keep == 0 || format_numbered(interval, 0, name) < 0 ||
	    snapshot_name_check(name, NULL) < 0 || format_numbered(interval, keep - 1, name) < 0)
		return -EINVAL;
	return 0;
}

static int alloc_numbered(const char *prefix, uint64_t n, char **ret)
{
	char name[COMMIT_STR_MAX + 1];
	int r = format_numbered(prefix, n, name);
	if (r < 0)
		return r;
	*ret = strdup(name);
	return *ret ? 0 : -ENOMEM;
}

struct plan {
	char *new_name; /* NULL: keep the name */
	bool drop;
};

int snapshot_rotate(struct commit *c, const char *interval, unsigned keep, const char *lower,
		    unsigned lower_keep, const struct blob_id *new_root, uint64_t time_ns,
		    const char *host)
{
	char source[COMMIT_STR_MAX + 1];
	ssize_t src = -1;
	struct plan *plan = NULL;
	struct snapshot_ref *snaps = NULL, added = {0};
	size_t n = c->n_snaps, kept = 0;
	int r;

	if (check_interval(interval, keep) < 0)
		return -EINVAL;
	if (lower) {
		if (check_interval(lower, lower_keep) < 0 || !strcmp(lower, interval))
			return -EINVAL;
		/* rsnapshot 1.5: no rotation unless there is something to promote, so that a
		 * missed lower run does not leave a hole at INTERVAL.0 and push out the oldest. */
		if (format_numbered(lower, lower_keep - 1, source) < 0)
			return -EINVAL;
		src = snapshot_find(c, source);
		if (src < 0)
			return -ENOENT;
	} else {
		if (!host)
			host = "";
		if (!new_root || strlen(host) > COMMIT_STR_MAX)
			return -EINVAL;
	}

	/* Plan: every name is decided while c is intact. The caller's strings (interval,
	 * lower, host) may point into c, so they are not read after the swap below. */
	plan = calloc(n ? n : 1, sizeof(*plan));
	if (!plan)
		return -ENOMEM;
	size_t interval_len = strlen(interval);
	for (size_t i = 0; i < n; i++) {
		uint64_t k;
		r = 0;
		if ((ssize_t)i == src)
			r = alloc_numbered(interval, 0, &plan[i].new_name);
		else if (parse_numbered(c->snaps[i].name, interval, interval_len, &k)) {
			/* The oldest goes, and any older still, left by a larger keep. */
			if (k >= keep - 1u) {
				plan[i].drop = true;
				continue;
			}
			r = alloc_numbered(interval, k + 1, &plan[i].new_name);
		}
		if (r < 0)
			goto fail;
		kept++;
	}
	size_t total = kept + (lower ? 0 : 1);
	r = -ENOSPC;
	if (total > COMMIT_MAX_SNAPSHOTS)
		goto fail;
	r = -ENOMEM;
	snaps = malloc(total * sizeof(*snaps));
	if (!snaps)
		goto fail;
	if (!lower) {
		added = (struct snapshot_ref){.root = *new_root, .time_ns = time_ns};
		r = alloc_numbered(interval, 0, &added.name);
		if (r < 0)
			goto fail;
		r = -ENOMEM;
		added.host = strdup(host);
		if (!added.host)
			goto fail;
	}

	/* Swap: nothing fails from here on. */
	size_t j = 0;
	for (size_t i = 0; i < n; i++) {
		struct snapshot_ref s = c->snaps[i];
		if (plan[i].drop) {
			free(s.name);
			free(s.host);
			continue;
		}
		if (plan[i].new_name) {
			free(s.name);
			s.name = plan[i].new_name;
		}
		snaps[j++] = s;
	}
	if (!lower)
		snaps[j++] = added;
	assert(j == total);
	free(c->snaps);
	c->snaps = snaps;
	c->n_snaps = j;
	free(plan);
	return 0;

fail:
	for (size_t i = 0; i < n; i++)
		free(plan[i].new_name);
	free(plan);
	free(snaps);
	free(added.name);
	free(added.host);
	return r;
}

int snapshot_remove(struct commit *c, const char *name)
{
	ssize_t i = snapshot_find(c, name);
	if (i < 0)
		return -ENOENT;
	free(c->snaps[i].name);
	free(c->snaps[i].host);
	memmove(&c->snaps[i], &c->snaps[i + 1], (c->n_snaps - (size_t)i - 1) * sizeof(*c->snaps));
	c->n_snaps--;
	return 0;
}

int snapshot_rename(struct commit *c, const char *from, const char *to)
{
	if (snapshot_name_check(to, NULL) < 0)
		return -EINVAL;
	ssize_t i = snapshot_find(c, from);
	if (i < 0)
		return -ENOENT;
	/* Before anything is freed: from may be the very string being replaced. */
	if (!strcmp(from, to))
		return 0;
	if (snapshot_find(c, to) >= 0)
		return -EEXIST;
	char *name = strdup(to);
	if (!name)
		return -ENOMEM;
	free(c->snaps[i].name);
	c->snaps[i].name = name;
	return 0;
}
