/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The backend conformance routine: backend_conformance(b, label) checks, through the public
 * interface of backend.h only, everything that contract promises (round trips, ranges,
 * appending gets, missing keys, replacement, exclusive creation and its races, listing by
 * prefix and stopping early, key rules, and many threads at once). Every backend must pass it
 * (mem, local, fault-wrapped, and S3), so it never looks behind the interface.
 *
 * The backend must be empty on entry; the routine leaves it empty again. Checks are TAP
 * lines named "<label>: ...". Worker threads only record what they saw; every ok() is made
 * by the calling thread, since tap.h is not thread-safe.
 */
#pragma once

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "backend.h"
#include "tap.h"

#define CONF_BIG_SIZE (1024 * 1024)
#define CONF_THREADS 8

/* Deterministic bytes (xorshift32) so that a misplaced range shows up as wrong data. */
static void conf_fill(uint8_t *p, size_t n, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 1;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)x;
	}
}

static bool conf_eq(const struct buf *b, size_t from, const void *data, size_t len)
{
	return b->len == from + len && (len == 0 || memcmp(b->data + from, data, len) == 0);
}

/* Put, then get the whole object and head it; one ok per step. */
static void conf_round_trip(struct backend *b, const char *label, const char *key, const void *data,
			    size_t len)
{
	struct buf got = {0};
	uint64_t size = UINT64_MAX;
	char shown[48];

	snprintf(shown, sizeof(shown), "%.40s%s", key, strlen(key) > 40 ? "..." : "");
	is_int(backend_put(b, key, data, len, 0), 0, "%s: put %s (%zu bytes)", label, shown, len);
	is_int(backend_get(b, key, 0, BACKEND_WHOLE, &got), 0, "%s: get %s", label, shown);
	ok(conf_eq(&got, 0, data, len), "%s: get %s returns the bytes put", label, shown);
	is_int(backend_head(b, key, &size), 0, "%s: head %s", label, shown);
	is_int(size, len, "%s: head %s gives the size", label, shown);
	buf_release(&got);
}

/* --- listing --- */

struct conf_listing {
	size_t n;
	char *keys[256];
	uint64_t sizes[256];
	bool overflow;
	unsigned calls;
	unsigned stop_at; /* return stop_value on this call (1-based); 0: never */
	int stop_value;
	struct backend *del; /* delete each key as it is shown */
	int del_errors;
};

static int conf_list_cb(const char *key, uint64_t size, void *userdata)
{
	struct conf_listing *l = userdata;

	l->calls++;
	if (l->stop_at && l->calls == l->stop_at)
		return l->stop_value;
	if (l->n == ELEMENTSOF(l->keys)) {
		l->overflow = true;
		return 0;
	}
	l->keys[l->n] = strdup(key);
	l->sizes[l->n++] = size;
	if (l->del && backend_del(l->del, key) < 0)
		l->del_errors++;
	return 0;
}

static void conf_listing_release(struct conf_listing *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->keys[i]);
	*l = (struct conf_listing){0};
}

struct conf_expect {
	const char *key;
	uint64_t size;
};

/* Does the listing hold exactly the expected keys, each once, with their sizes? */
static bool conf_listing_is(const struct conf_listing *l, const struct conf_expect *e, size_t n)
{
	bool good = !l->overflow && l->n == n;

	for (size_t i = 0; i < n && good; i++) {
		size_t found = 0;
		for (size_t j = 0; j < l->n; j++)
			if (l->keys[j] && strcmp(l->keys[j], e[i].key) == 0 &&
			    l->sizes[j] == e[i].size)
				found++;
		good = found == 1;
	}
	if (!good) {
		diag("  listed %zu keys, expected %zu:", l->n, n);
		for (size_t j = 0; j < l->n; j++)
			diag("    %s (%" PRIu64 ")", l->keys[j] ? l->keys[j] : "(null)",
			     l->sizes[j]);
	}
	return good;
}

static const struct conf_expect conf_list_keys[] = {
	{"config", 7},	       {"keys/k1", 3},	    {"data/ab/p1", 10},
	{"data/ab/p2", 20},    {"data/abc", 5},	    {"data/cd/p3", 30},
	{"data/cd/e/f/p4", 0}, {"commits/0001", 1}, {"lock", 4},
};

/* Check list(prefix) against the subset of conf_list_keys named by bits of `which`. */
static void conf_list_check(struct backend *b, const char *label, const char *prefix,
			    unsigned which)
{
	struct conf_expect e[ELEMENTSOF(conf_list_keys)];
	struct conf_listing l = {0};
	size_t n = 0;

	for (size_t i = 0; i < ELEMENTSOF(conf_list_keys); i++)
		if (which & (1u << i))
			e[n++] = conf_list_keys[i];
	is_int(backend_list(b, prefix, conf_list_cb, &l), 0, "%s: list \"%s\"", label, prefix);
	ok(conf_listing_is(&l, e, n), "%s: list \"%s\" gives exactly %zu keys with sizes", label,
	   prefix, n);
	conf_listing_release(&l);
}

static void conf_lists(struct backend *b, const char *label)
{
	/* Bits of conf_list_keys, in its order. */
	enum {
		CONFIG = 1,
		KEYS = 2,
		P1 = 4,
		P2 = 8,
		ABC = 16,
		P3 = 32,
		P4 = 64,
		COMMIT = 128,
		LOCK = 256,
		ALL = 511,
		DATA = P1 | P2 | ABC | P3 | P4
	};
	static const char *const bad_prefixes[] = {"/data", "data//", "data/../", "./",
						   "a b",   "x~",     "data/./"};
	uint8_t bytes[32];
	struct conf_listing l = {0};
	int r;

	conf_fill(bytes, sizeof(bytes), 7);
	for (size_t i = 0; i < ELEMENTSOF(conf_list_keys); i++)
		tap_require(backend_put(b, conf_list_keys[i].key, bytes,
					(size_t)conf_list_keys[i].size, 0) == 0);

	conf_list_check(b, label, "", ALL);
	conf_list_check(b, label, "data/", DATA);
	conf_list_check(b, label, "data/ab/", P1 | P2);
	conf_list_check(b, label, "data/ab", P1 | P2 | ABC);
	conf_list_check(b, label, "data/a", P1 | P2 | ABC);
	conf_list_check(b, label, "data/cd/e/", P4);
	conf_list_check(b, label, "d", DATA);
	conf_list_check(b, label, "c", CONFIG | COMMIT);
	conf_list_check(b, label, "lock", LOCK);
	conf_list_check(b, label, "data/ab/p1", P1);
	conf_list_check(b, label, "nomatch/", 0);
	conf_list_check(b, label, "data/zz", 0);
	conf_list_check(b, label, "config/", 0);
	conf_list_check(b, label, "zzz", 0);
	conf_list_check(b, label, ".", 0);
	conf_list_check(b, label, "data/.", 0);

	for (size_t i = 0; i < ELEMENTSOF(bad_prefixes); i++) {
		l = (struct conf_listing){0};
		is_int(backend_list(b, bad_prefixes[i], conf_list_cb, &l), -EINVAL,
		       "%s: list \"%s\" is -EINVAL", label, bad_prefixes[i]);
		is_int(l.calls, 0, "%s: list \"%s\" shows nothing", label, bad_prefixes[i]);
		conf_listing_release(&l);
	}

	/* A negative return from the callback stops the listing and comes back unchanged. */
	l = (struct conf_listing){.stop_at = 1, .stop_value = -ECANCELED};
	is_int(backend_list(b, "", conf_list_cb, &l), -ECANCELED,
	       "%s: list stopped by the first callback returns its value", label);
	is_int(l.calls, 1, "%s: no callback after the one that stopped", label);
	conf_listing_release(&l);
	l = (struct conf_listing){.stop_at = 3, .stop_value = -4242};
	is_int(backend_list(b, "data/", conf_list_cb, &l), -4242,
	       "%s: list stopped by the third callback returns its value", label);
	is_int(l.calls, 3, "%s: no callback after the third", label);
	conf_listing_release(&l);

	/* The callback may call back into the backend (gc deletes what it lists). */
	l = (struct conf_listing){.del = b};
	is_int(backend_list(b, "data/", conf_list_cb, &l), 0, "%s: list deleting each key", label);
	is_int(l.n, 5, "%s: ... saw every key once", label);
	is_int(l.del_errors, 0, "%s: ... and deleted each", label);
	conf_listing_release(&l);
	conf_list_check(b, label, "data/", 0);
	conf_list_check(b, label, "", CONFIG | KEYS | COMMIT | LOCK);

	l = (struct conf_listing){.del = b};
	r = backend_list(b, "", conf_list_cb, &l);
	ok(r == 0 && l.del_errors == 0, "%s: delete the listing keys", label);
	conf_listing_release(&l);
}

/* --- ranges and appending gets --- */

static void conf_ranges(struct backend *b, const char *label, const uint8_t *big)
{
	const uint64_t size = CONF_BIG_SIZE;
	struct buf got = {0};
	uint64_t n;

	is_int(backend_get(b, "conf/big", 0, 100, &got), 0, "%s: get the first 100 bytes", label);
	ok(conf_eq(&got, 0, big, 100), "%s: ... are right", label);
	buf_reset(&got);
	is_int(backend_get(b, "conf/big", 500000, 1000, &got), 0, "%s: get 1000 in the middle",
	       label);
	ok(conf_eq(&got, 0, big + 500000, 1000), "%s: ... are right", label);
	buf_reset(&got);
	is_int(backend_get(b, "conf/big", 1000, BACKEND_WHOLE, &got), 0,
	       "%s: get from 1000 to the end", label);
	ok(conf_eq(&got, 0, big + 1000, CONF_BIG_SIZE - 1000), "%s: ... is right", label);
	buf_reset(&got);
	is_int(backend_get(b, "conf/big", size - 10, 100, &got), 0, "%s: get a range past the end",
	       label);
	ok(conf_eq(&got, 0, big + size - 10, 10), "%s: ... is clipped to the last 10 bytes", label);
	buf_reset(&got);
	is_int(backend_get(b, "conf/big", 123, 0, &got), 0, "%s: get 0 bytes", label);
	is_int(got.len, 0, "%s: ... returns nothing", label);
	is_int(backend_get(b, "conf/big", size, BACKEND_WHOLE, &got), 0,
	       "%s: get at offset == size", label);
	is_int(got.len, 0, "%s: ... returns nothing", label);
	is_int(backend_get(b, "conf/big", size, 10, &got), 0, "%s: get 10 at offset == size",
	       label);
	is_int(got.len, 0, "%s: ... returns nothing", label);
	is_int(backend_get(b, "conf/big", size + 1, 1, &got), -EINVAL,
	       "%s: get at offset > size is -EINVAL", label);
	is_int(got.len, 0, "%s: ... and leaves the buffer alone", label);
	is_int(backend_get(b, "conf/empty", 0, BACKEND_WHOLE, &got), 0,
	       "%s: get of an empty object", label);
	is_int(got.len, 0, "%s: ... returns nothing", label);
	is_int(backend_get(b, "conf/empty", 1, BACKEND_WHOLE, &got), -EINVAL,
	       "%s: get past an empty object is -EINVAL", label);

	/* get appends, whatever the buffer already holds. */
	tap_require(buf_append(&got, "abc", 3) == 0);
	is_int(backend_get(b, "conf/one", 0, BACKEND_WHOLE, &got), 0,
	       "%s: get into a non-empty buffer", label);
	ok(got.len == 4 && memcmp(got.data, "abc", 3) == 0, "%s: ... keeps what was there", label);
	n = got.len;
	is_int(backend_get(b, "conf/big", 10, 5000, &got), 0, "%s: ranged get appends too", label);
	ok(conf_eq(&got, n, big + 10, 5000) && memcmp(got.data, "abc", 3) == 0,
	   "%s: ... after what was there", label);
	n = got.len;
	is_int(backend_get(b, "conf/missing", 0, BACKEND_WHOLE, &got), -ENOENT,
	       "%s: failed get into a non-empty buffer", label);
	is_int(got.len, n, "%s: ... leaves it alone", label);
	buf_release(&got);
}

/* --- missing keys, replacement, exclusive puts --- */

static void conf_missing(struct backend *b, const char *label)
{
	/* "conf" holds objects below it but is none itself; "conf/one/x" is below an object. */
	static const char *const keys[] = {"conf/missing", "nodir/sub/x", "conf/one/x", "conf"};
	struct buf got = {0};
	uint64_t size = 77;

	for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
		is_int(backend_get(b, keys[i], 0, BACKEND_WHOLE, &got), -ENOENT,
		       "%s: get of missing %s is -ENOENT", label, keys[i]);
		is_int(backend_head(b, keys[i], &size), -ENOENT,
		       "%s: head of missing %s is -ENOENT", label, keys[i]);
		is_int(backend_del(b, keys[i]), -ENOENT, "%s: delete of missing %s is -ENOENT",
		       label, keys[i]);
	}
	ok(got.len == 0 && size == 77, "%s: failed calls write no output", label);
	buf_release(&got);
}

static void conf_replace(struct backend *b, const char *label)
{
	struct buf got = {0};
	uint64_t size = 0;

	is_int(backend_put(b, "conf/one", "xyz", 3, 0), 0, "%s: put replaces", label);
	is_int(backend_get(b, "conf/one", 0, BACKEND_WHOLE, &got), 0, "%s: get replaced", label);
	ok(conf_eq(&got, 0, "xyz", 3), "%s: ... gives the new bytes", label);
	is_int(backend_head(b, "conf/one", &size), 0, "%s: head replaced", label);
	is_int(size, 3, "%s: ... gives the new size", label);

	is_int(backend_put(b, "conf/one", "nope", 4, BACKEND_PUT_EXCLUSIVE), -EEXIST,
	       "%s: exclusive put of an existing key is -EEXIST", label);
	buf_reset(&got);
	is_int(backend_get(b, "conf/one", 0, BACKEND_WHOLE, &got), 0, "%s: get after it", label);
	ok(conf_eq(&got, 0, "xyz", 3), "%s: ... the old bytes stay", label);

	is_int(backend_put(b, "conf/new/x", "n", 1, BACKEND_PUT_EXCLUSIVE), 0,
	       "%s: exclusive put of a new key", label);
	buf_reset(&got);
	is_int(backend_get(b, "conf/new/x", 0, BACKEND_WHOLE, &got), 0, "%s: get it", label);
	ok(conf_eq(&got, 0, "n", 1), "%s: ... gives its bytes", label);

	is_int(backend_del(b, "conf/new/x"), 0, "%s: delete", label);
	is_int(backend_get(b, "conf/new/x", 0, BACKEND_WHOLE, &got), -ENOENT,
	       "%s: get after delete is -ENOENT", label);
	is_int(backend_head(b, "conf/new/x", &size), -ENOENT, "%s: head after delete is -ENOENT",
	       label);
	is_int(backend_del(b, "conf/new/x"), -ENOENT, "%s: second delete is -ENOENT", label);
	is_int(backend_put(b, "conf/new/x", "m", 1, BACKEND_PUT_EXCLUSIVE), 0,
	       "%s: exclusive put of a deleted key", label);
	is_int(backend_del(b, "conf/new/x"), 0, "%s: delete it again", label);
	buf_release(&got);
}

struct conf_race {
	struct backend *b;
	pthread_barrier_t *start;
	const char *key;
	uint8_t data[64];
	int r;
};

static void *conf_race_thread(void *p)
{
	struct conf_race *t = p;

	pthread_barrier_wait(t->start);
	t->r = backend_put(t->b, t->key, t->data, sizeof(t->data), BACKEND_PUT_EXCLUSIVE);
	return NULL;
}

static void conf_exclusive_race(struct backend *b, const char *label)
{
	for (int round = 0; round < 5; round++) {
		struct conf_race t[CONF_THREADS];
		pthread_t tid[CONF_THREADS];
		pthread_barrier_t start;
		struct buf got = {0};
		char key[32];
		int wins = 0, exists = 0, winner = -1;

		snprintf(key, sizeof(key), "race/%d", round);
		tap_require(pthread_barrier_init(&start, NULL, CONF_THREADS) == 0);
		for (int i = 0; i < CONF_THREADS; i++) {
			t[i] = (struct conf_race){.b = b, .start = &start, .key = key};
			conf_fill(t[i].data, sizeof(t[i].data), (uint32_t)(round * 100 + i));
			tap_require(pthread_create(&tid[i], NULL, conf_race_thread, &t[i]) == 0);
		}
		for (int i = 0; i < CONF_THREADS; i++) {
			pthread_join(tid[i], NULL);
			if (t[i].r == 0) {
				wins++;
				winner = i;
			} else if (t[i].r == -EEXIST) {
				exists++;
			}
		}
		pthread_barrier_destroy(&start);
		ok(wins == 1 && exists == CONF_THREADS - 1,
		   "%s: %d racing exclusive puts of %s: one wins (%d), the rest -EEXIST (%d)",
		   label, CONF_THREADS, key, wins, exists);
		is_int(backend_get(b, key, 0, BACKEND_WHOLE, &got), 0, "%s: get %s", label, key);
		ok(winner >= 0 && conf_eq(&got, 0, t[winner].data, sizeof(t[winner].data)),
		   "%s: ... holds the winner's bytes", label);
		is_int(backend_del(b, key), 0, "%s: delete %s", label, key);
		buf_release(&got);
	}
}

/* --- key rules --- */

static void conf_invalid_keys(struct backend *b, const char *label)
{
	static const char *const fixed[] = {
		"",    "/x",  "a//b", "a/../b", ".",	"..",	       "a/.",  "a/..",	 "a/",
		"a b", "a~b", "a\\b", "a:b",	"a\tb", "caf\xc3\xa9", "\x80", "a/\xff",
	};
	char too_long[1026];
	struct buf got = {0};
	uint64_t size;

	/* 1025 bytes in segments of 100, so it is the total that is wrong, not a segment. */
	for (size_t i = 0; i < 1025; i++)
		too_long[i] = i % 101 == 100 ? '/' : 'a';
	too_long[1025] = 0;

	for (size_t i = 0; i <= ELEMENTSOF(fixed); i++) {
		const char *key = i < ELEMENTSOF(fixed) ? fixed[i] : too_long;
		char shown[64];
		int r1, r2, r3, r4;

		if (key == too_long)
			snprintf(shown, sizeof(shown), "(1025 bytes)");
		else
			for (size_t j = 0; j < sizeof(shown); j++) {
				/* Keep the TAP line printable. */
				unsigned char c = (unsigned char)key[j];
				shown[j] = c >= 0x20 && c < 0x7f ? (char)c : c ? '?' : 0;
				if (!c)
					break;
			}
		r1 = backend_put(b, key, "x", 1, 0);
		r2 = backend_get(b, key, 0, BACKEND_WHOLE, &got);
		r3 = backend_head(b, key, &size);
		r4 = backend_del(b, key);
		ok(r1 == -EINVAL && r2 == -EINVAL && r3 == -EINVAL && r4 == -EINVAL,
		   "%s: key \"%s\" is -EINVAL for put/get/head/delete (%d %d %d %d)", label, shown,
		   r1, r2, r3, r4);
	}
	ok(got.len == 0, "%s: invalid gets return nothing", label);
	buf_release(&got);
}

/* --- many threads --- */

#define CONF_PER_THREAD 25

static size_t conf_obj_size(int t, int i)
{
	return (size_t)(t * 131 + i * 977) % 70000;
}

struct conf_worker {
	struct backend *b;
	int t;
	int put_errors, get_errors, head_errors, del_errors;
	bool del;
};

static void *conf_worker_thread(void *p)
{
	struct conf_worker *w = p;
	uint8_t *data = malloc(70000);
	struct buf got = {0};
	char key[32];

	if (!data) {
		w->put_errors = -1;
		return NULL;
	}
	for (int i = 0; i < CONF_PER_THREAD && !w->del; i++) {
		snprintf(key, sizeof(key), "conc/%d/%d", w->t, i);
		conf_fill(data, conf_obj_size(w->t, i), (uint32_t)(w->t * 1000 + i));
		if (backend_put(w->b, key, data, conf_obj_size(w->t, i), 0) != 0)
			w->put_errors++;
	}
	for (int i = 0; i < CONF_PER_THREAD && !w->del; i++) {
		uint64_t size = 0;

		snprintf(key, sizeof(key), "conc/%d/%d", w->t, i);
		conf_fill(data, conf_obj_size(w->t, i), (uint32_t)(w->t * 1000 + i));
		buf_reset(&got);
		if (backend_get(w->b, key, 0, BACKEND_WHOLE, &got) != 0 ||
		    !conf_eq(&got, 0, data, conf_obj_size(w->t, i)))
			w->get_errors++;
		if (backend_head(w->b, key, &size) != 0 || size != conf_obj_size(w->t, i))
			w->head_errors++;
	}
	for (int i = 0; i < CONF_PER_THREAD && w->del; i++) {
		snprintf(key, sizeof(key), "conc/%d/%d", w->t, i);
		if (backend_del(w->b, key) != 0)
			w->del_errors++;
	}
	buf_release(&got);
	free(data);
	return NULL;
}

static void conf_run_workers(struct backend *b, struct conf_worker *w, bool del)
{
	pthread_t tid[CONF_THREADS];

	for (int t = 0; t < CONF_THREADS; t++) {
		w[t] = (struct conf_worker){.b = b, .t = t, .del = del};
		tap_require(pthread_create(&tid[t], NULL, conf_worker_thread, &w[t]) == 0);
	}
	for (int t = 0; t < CONF_THREADS; t++)
		pthread_join(tid[t], NULL);
}

/* Readers of a key being replaced see the old or the new object whole, never a mix. */
struct conf_flipper {
	struct backend *b;
	const uint8_t *a, *c; /* the two versions, of sizes CONF_FLIP_A and CONF_FLIP_C */
	volatile int *done;
	int errors, reads;
};

#define CONF_FLIP_A 65536
#define CONF_FLIP_C 100000

static void *conf_flip_reader(void *p)
{
	struct conf_flipper *f = p;
	struct buf got = {0};

	while (!__atomic_load_n(f->done, __ATOMIC_ACQUIRE) || f->reads == 0) {
		buf_reset(&got);
		f->reads++;
		if (backend_get(f->b, "conc/flip", 0, BACKEND_WHOLE, &got) != 0 ||
		    !(conf_eq(&got, 0, f->a, CONF_FLIP_A) || conf_eq(&got, 0, f->c, CONF_FLIP_C)))
			f->errors++;
	}
	buf_release(&got);
	return NULL;
}

static void conf_concurrent(struct backend *b, const char *label)
{
	struct conf_worker w[CONF_THREADS];
	struct conf_expect e[CONF_THREADS * CONF_PER_THREAD];
	char keys[CONF_THREADS * CONF_PER_THREAD][32];
	struct conf_flipper f[4];
	pthread_t tid[4];
	struct conf_listing l = {0};
	uint8_t *a = malloc(CONF_FLIP_A), *c = malloc(CONF_FLIP_C);
	volatile int done = 0;
	int errors[4] = {0};
	size_t n = 0;

	conf_run_workers(b, w, false);
	for (int t = 0; t < CONF_THREADS; t++) {
		errors[0] += w[t].put_errors;
		errors[1] += w[t].get_errors;
		errors[2] += w[t].head_errors;
	}
	is_int(errors[0], 0, "%s: %d threads put %d objects each", label, CONF_THREADS,
	       CONF_PER_THREAD);
	is_int(errors[1], 0, "%s: ... and get them back", label);
	is_int(errors[2], 0, "%s: ... with the right sizes", label);

	for (int t = 0; t < CONF_THREADS; t++)
		for (int i = 0; i < CONF_PER_THREAD; i++, n++) {
			snprintf(keys[n], sizeof(keys[n]), "conc/%d/%d", t, i);
			e[n] = (struct conf_expect){keys[n], conf_obj_size(t, i)};
		}
	/* conf_listing holds 256 keys, enough for these 200. */
	is_int(backend_list(b, "conc/", conf_list_cb, &l), 0, "%s: list them", label);
	ok(conf_listing_is(&l, e, n), "%s: ... all %zu, with sizes", label, n);
	conf_listing_release(&l);

	conf_run_workers(b, w, true);
	for (int t = 0; t < CONF_THREADS; t++)
		errors[3] += w[t].del_errors;
	is_int(errors[3], 0, "%s: %d threads delete them", label, CONF_THREADS);
	is_int(backend_list(b, "conc/", conf_list_cb, &l), 0, "%s: list after", label);
	is_int(l.calls, 0, "%s: ... shows none", label);
	conf_listing_release(&l);

	tap_require(a && c);
	memset(a, 'a', CONF_FLIP_A);
	memset(c, 'c', CONF_FLIP_C);
	tap_require(backend_put(b, "conc/flip", a, CONF_FLIP_A, 0) == 0);
	for (int i = 0; i < 4; i++) {
		f[i] = (struct conf_flipper){.b = b, .a = a, .c = c, .done = &done};
		tap_require(pthread_create(&tid[i], NULL, conf_flip_reader, &f[i]) == 0);
	}
	errors[0] = 0;
	for (int i = 0; i < 40; i++)
		if (backend_put(b, "conc/flip", i % 2 ? a : c, i % 2 ? CONF_FLIP_A : CONF_FLIP_C,
				0) != 0)
			errors[0]++;
	__atomic_store_n(&done, 1, __ATOMIC_RELEASE);
	errors[1] = 0;
	for (int i = 0; i < 4; i++) {
		pthread_join(tid[i], NULL);
		errors[1] += f[i].errors;
	}
	is_int(errors[0], 0, "%s: 40 replacing puts while 4 threads read", label);
	is_int(errors[1], 0, "%s: ... every read sees one version whole", label);
	is_int(backend_del(b, "conc/flip"), 0, "%s: delete it", label);
	free(a);
	free(c);
}

/* --- the routine --- */

static void conf_delete_all(struct backend *b, const char *label)
{
	struct conf_listing l = {0};

	is_int(backend_list(b, "", conf_list_cb, &l), 0, "%s: list everything", label);
	for (size_t i = 0; i < l.n; i++)
		is_int(backend_del(b, l.keys[i]), 0, "%s: delete %s", label, l.keys[i]);
	conf_listing_release(&l);
	is_int(backend_list(b, "", conf_list_cb, &l), 0, "%s: list at the end", label);
	is_int(l.calls, 0, "%s: the backend is empty again", label);
	conf_listing_release(&l);
}

_unused_ static void backend_conformance(struct backend *b, const char *label)
{
	uint8_t *big = malloc(CONF_BIG_SIZE);
	struct conf_listing l = {0};
	char long_key[1025];
	uint8_t one = 0x5a;

	tap_require(big);
	diag("backend conformance: %s (%s, %s)", label, b->type->name, b->location);
	is_int(backend_list(b, "", conf_list_cb, &l), 0, "%s: list an empty backend", label);
	is_int(l.calls, 0, "%s: ... shows nothing", label);
	conf_listing_release(&l);

	conf_lists(b, label);

	conf_fill(big, CONF_BIG_SIZE, 1);
	conf_round_trip(b, label, "conf/empty", "", 0);
	conf_round_trip(b, label, "conf/one", &one, 1);
	conf_round_trip(b, label, "conf/big", big, CONF_BIG_SIZE);
	/* The edges of the key rules: the shortest, every character, dots inside segments,
	 * and the longest (1024 bytes in segments of 100). */
	conf_round_trip(b, label, "x", "x", 1);
	conf_round_trip(b, label, "odd/.hidden", "h", 1);
	conf_round_trip(b, label, "odd/a..b", "ab", 2);
	conf_round_trip(b, label, "odd/...", "3", 1);
	conf_round_trip(b, label, "odd/-_.ABCXYZabcxyz0189", "c", 1);
	for (size_t i = 0; i < 1024; i++)
		long_key[i] = i % 101 == 100 ? '/' : 'k';
	long_key[1024] = 0;
	conf_round_trip(b, label, long_key, "long", 4);

	conf_ranges(b, label, big);
	conf_missing(b, label);
	conf_replace(b, label);
	conf_exclusive_race(b, label);
	conf_invalid_keys(b, label);
	conf_concurrent(b, label);
	conf_delete_all(b, label);
	free(big);
}
