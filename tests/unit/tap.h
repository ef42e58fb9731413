/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A minimal TAP producer for the unit tests (read by automake's tap-driver.sh).
 *   plan_lazy();            ... ok(cond, "name %d", i); is_int(got, want, "name"); ...
 *   return tap_done();      prints "1..N" and returns 0, or 1 if any check failed.
 * Diagnostics go to stdout as "# ..." lines. Header-only: each test is one translation unit.
 */
#pragma once

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int tap_n, tap_failed;

__attribute__((format(printf, 2, 3), unused)) static int ok(int cond, const char *fmt, ...)
{
	va_list ap;
	tap_n++;
	printf("%s %d - ", cond ? "ok" : "not ok", tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	if (!cond)
		tap_failed++;
	return cond;
}

__attribute__((format(printf, 1, 2), unused)) static void diag(const char *fmt, ...)
{
	va_list ap;
	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

#define is_int(got, want, ...)                                                                     \
	({                                                                                         \
		long long _g = (long long)(got), _w = (long long)(want);                           \
		int _r = ok(_g == _w, __VA_ARGS__);                                                \
		if (!_r)                                                                           \
			diag("  got %lld, want %lld (%s:%d)", _g, _w, __FILE__, __LINE__);         \
		_r;                                                                                \
	})

/* Abort the whole test program on a setup failure that makes further checks meaningless. */
#define tap_require(cond)                                                                          \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			printf("Bail out! %s:%d: %s\n", __FILE__, __LINE__, #cond);                \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

static inline void plan_lazy(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
}

static inline int tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}
