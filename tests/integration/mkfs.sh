#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# mkfs.cairn / cairn mkfs / cairn info from the command line: creating repositories, the
# refusals (existing repository, non-empty directory, no or empty passphrase), a wrong
# passphrase as one clear line with exit 1, and usage errors with exit 2.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

export CAIRN_PASSPHRASE="integration test passphrase"
repo=$T/repo

mkfs.cairn "$repo" >"$T/out" || fail "mkfs.cairn failed"
grep -q "Created an encrypted cairn repository" "$T/out" || fail "no confirmation: $(cat "$T/out")"
[ -f "$repo/config" ] || fail "no config object"
grep -q '^cairn-repository 1$' "$repo/config" || fail "config is not readable text"
grep -q '^encryption = xchacha20-poly1305$' "$repo/config" || fail "not encrypted by default"
ls "$repo"/keys/* >/dev/null 2>&1 || fail "no key object"

cairn info "$repo" --cache-dir "$T/cache" >"$T/out" || fail "cairn info failed"
grep -q '^commit      none yet$' "$T/out" || fail "info: $(cat "$T/out")"

# Refusals.
expect_fail 1 mkfs.cairn "$repo"
expect_stderr_match "exists already"
mkdir "$T/full" && echo x >"$T/full/file"
expect_fail 1 mkfs.cairn "$T/full"
expect_stderr_match "not empty"
[ "$(cat "$T/full/file")" = x ] || fail "mkfs touched a non-empty directory"
echo x >"$T/plainfile"
expect_fail 1 mkfs.cairn "$T/plainfile"
expect_stderr_match "plainfile"

# Passphrases: wrong is one line and exit 1; missing without a terminal is a clear error.
CAIRN_PASSPHRASE=wrong expect_fail 1 cairn info --cache-dir "$T/cache" "$repo"
expect_stderr_match "wrong passphrase"
[ "$(wc -l <"$T/stderr")" = 1 ] || fail "wrong passphrase: more than one line: $(cat "$T/stderr")"
expect_fail 1 env -u CAIRN_PASSPHRASE setsid -w cairn info --cache-dir "$T/cache" "$repo"
expect_stderr_match "no passphrase"
expect_fail 1 env -u CAIRN_PASSPHRASE setsid -w mkfs.cairn "$T/r2"
expect_stderr_match "no passphrase"
printf 'from a file\n' >"$T/pw"
env -u CAIRN_PASSPHRASE cairn mkfs -q --passphrase-file "$T/pw" "$T/r3" || fail "passphrase file"
env -u CAIRN_PASSPHRASE cairn info --passphrase-file "$T/pw" --cache-dir "$T/cache" "$T/r3" \
	>/dev/null || fail "info with passphrase file"
: >"$T/empty"
expect_fail 1 cairn mkfs --passphrase-file "$T/empty" "$T/r4"
expect_stderr_match "empty"

# Unencrypted repositories need no passphrase.
env -u CAIRN_PASSPHRASE mkfs.cairn -q --no-encryption "$T/plain" || fail "--no-encryption"
grep -q '^encryption = none$' "$T/plain/config" || fail "not marked unencrypted"
env -u CAIRN_PASSPHRASE cairn info --cache-dir "$T/cache" "$T/plain" >/dev/null ||
	fail "info on an unencrypted repository"

# A missing repository, and usage errors.
expect_fail 1 cairn info --cache-dir "$T/cache" "$T/nowhere"
expect_stderr_match "nowhere"
expect_fail 2 cairn
expect_fail 2 cairn frobnicate
expect_fail 2 mkfs.cairn
expect_fail 2 mkfs.cairn --chunk-size banana "$T/r5"
expect_fail 2 mkfs.cairn --bogus "$T/r5"
cairn --help >/dev/null || fail "cairn --help"
mkfs.cairn --help | grep -q "Exit status" || fail "mkfs.cairn --help"
exit 0
