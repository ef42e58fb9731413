/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A random-operation exerciser: `exerciser SEED NOPS DIR_A DIR_B` performs the same seeded
 * pseudo-random sequence of file system operations on two directory trees (a plain one and
 * one inside a cairn mount) and compares them; `exerciser --compare DIR_A DIR_B` only
 * compares. No library: it builds from this file alone.
 *
 * Operations (weighted, see op_table): create and write at random offsets (1 byte to 2 MiB;
 * random, text, zero, one-byte and repeated "library" data for dedup; some with O_DIRECT),
 * O_APPEND, overwrites in the middle, truncate(2)/ftruncate up and down (to 0, +-1, odd
 * sizes inside a chunk), copies by read/write and by copy_file_range, writes through a
 * shared mapping, fallocate, rename (files and directories, over existing names,
 * RENAME_NOREPLACE and RENAME_EXCHANGE), link, unlink, mkdir, rmdir, symlink (up to 4095
 * bytes), mkfifo, mknod, chmod, chown, utimensat with nanoseconds, user.* xattrs, POSIX
 * ACLs, fsync, write-close-reopen-read, reads, stat, readdir (also of a big directory that
 * changes during the listing), and files held open across other operations (so unlinked
 * and renamed while open). Features one side lacks (renameat2 flags, xattrs, ACLs, hole
 * punching, O_DIRECT) are probed first and then skipped on both sides.
 *
 * Each operation is a pure function of (SEED, its index), never of the trees' state, so any
 * subset of indices (-o LIST) replays the very same operations: that is what makes a failure
 * reducible by deleting operations. Parameters that must follow the state (an offset in the
 * middle of a file, a size just below the current one) are fractions resolved at run time on
 * each side; both sides resolve them alike as long as they agree, and the first result that
 * differs stops the run.
 *
 * After every operation both sides' results (return value, errno, the step that failed, a
 * hash of what was read or observed) must match. Every K operations and at the end the
 * trees are compared in full: names, types, modes, owners, link counts and which names share
 * an inode, sizes, device numbers, symlink targets, user.* xattrs and ACLs, file contents
 * byte for byte (every other time with O_DIRECT, past the page cache), and mtimes. mtimes
 * set by utimensat() are "synthetic" (years 2001-2008) and must match to the nanosecond;
 * any other mtime was set by the kernel at the time of a change and must be recent on both
 * sides (within MTIME_SLACK seconds of each other). With -R CMD, all files are closed and
 * CMD remounts DIR_B's file system before each full compare.
 *
 * The namespace is small (7 names in each of 6 directories) so operations collide often;
 * symlink targets never contain ".." and are never absolute, so nothing resolves outside
 * the trees; device nodes get names no operation opens. Files stay below FILE_CAP bytes.
 *
 * Exit status: 0 all operations matched, 1 a mismatch (seed, operation index, operation,
 * difference and a replay command on stderr), 2 usage, 99 the exerciser itself failed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sysmacros.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))

#define KIB (1024ull)
#define MIB (1024ull * 1024)
#define MAX_WRITE (2 * MIB)
#define FILE_CAP (6 * MIB)
#define LIB_BLOBS 4
#define LIB_SIZE (4 * MIB)
#define NSLOTS 3
#define PATH_LEN 512
#define TARGET_LEN 4200
#define SYNTH_MIN 1000000000LL /* 2001-09-09 */
#define SYNTH_SPAN 200000000LL /* to 2008 */
#define MTIME_SLACK 60
#define DEFAULT_K 250
#define IO_ALIGN 4096

/* ---- deterministic randomness ------------------------------------------------------- */

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rnd(uint64_t *s, uint64_t n)
{
	return n ? splitmix(s) % n : 0;
}

static bool chance(uint64_t *s, unsigned percent)
{
	return rnd(s, 100) < percent;
}

static uint64_t hash_mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
	return h * 0xff51afd7ed558ccdull;
}

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, b + i, 8);
		h = hash_mix(h, w);
	}
	for (; i < n; i++)
		h = hash_mix(h, b[i]);
	return hash_mix(h, n);
}

/* ---- operations ------------------------------------------------------------------------ */

enum op_kind {
	OP_WRITE,
	OP_APPEND,
	OP_OVERWRITE,
	OP_TRUNCATE,
	OP_COPY,
	OP_RENAME,
	OP_LINK,
	OP_UNLINK,
	OP_MKDIR,
	OP_RMDIR,
	OP_SYMLINK,
	OP_MKFIFO,
	OP_MKNOD,
	OP_CHMOD,
	OP_CHOWN,
	OP_UTIMENS,
	OP_SETXATTR,
	OP_REMOVEXATTR,
	OP_GETXATTR,
	OP_FSYNC,
	OP_REOPEN,
	OP_READ,
	OP_STAT,
	OP_READDIR,
	OP_LONGNAME,
	OP_CLEAR,
	OP_SLOT_OPEN,
	OP_SLOT_WRITE,
	OP_SLOT_READ,
	OP_SLOT_TRUNCATE,
	OP_SLOT_STAT,
	OP_SLOT_CLOSE,
	OP_SLOT_ATTR,
	OP_FALLOCATE,
	OP_COPY_RANGE,
	OP_MMAP_WRITE,
	OP_BIGDIR,
	OP_ACL,
	OP_PAUSE,
};

static const struct {
	const char *name;
	unsigned weight;
} op_table[] = {
	[OP_WRITE] = {"write", 140},
	[OP_APPEND] = {"append", 50},
	[OP_OVERWRITE] = {"overwrite", 70},
	[OP_TRUNCATE] = {"truncate", 70},
	[OP_COPY] = {"copy", 30},
	[OP_RENAME] = {"rename", 90},
	[OP_LINK] = {"link", 40},
	[OP_UNLINK] = {"unlink", 70},
	[OP_MKDIR] = {"mkdir", 50},
	[OP_RMDIR] = {"rmdir", 35},
	[OP_SYMLINK] = {"symlink", 30},
	[OP_MKFIFO] = {"mkfifo", 5},
	[OP_MKNOD] = {"mknod", 5},
	[OP_CHMOD] = {"chmod", 30},
	[OP_CHOWN] = {"chown", 15},
	[OP_UTIMENS] = {"utimensat", 45},
	[OP_SETXATTR] = {"setxattr", 40},
	[OP_REMOVEXATTR] = {"removexattr", 20},
	[OP_GETXATTR] = {"getxattr", 15},
	[OP_FSYNC] = {"fsync", 20},
	[OP_REOPEN] = {"write-close-reopen-read", 30},
	[OP_READ] = {"read", 50},
	[OP_STAT] = {"stat", 40},
	[OP_READDIR] = {"readdir", 20},
	[OP_LONGNAME] = {"longname", 8},
	[OP_CLEAR] = {"clear", 12},
	[OP_SLOT_OPEN] = {"slot-open", 25},
	[OP_SLOT_WRITE] = {"slot-write", 35},
	[OP_SLOT_READ] = {"slot-read", 25},
	[OP_SLOT_TRUNCATE] = {"slot-ftruncate", 10},
	[OP_SLOT_STAT] = {"slot-fstat", 15},
	[OP_SLOT_CLOSE] = {"slot-close", 20},
	[OP_SLOT_ATTR] = {"slot-attr", 15},
	[OP_FALLOCATE] = {"fallocate", 20},
	[OP_COPY_RANGE] = {"copy_file_range", 15},
	[OP_MMAP_WRITE] = {"mmap-write", 15},
	[OP_BIGDIR] = {"bigdir", 1},
	[OP_ACL] = {"acl", 25},
	[OP_PAUSE] = {"pause", 1},
};

enum pattern { PAT_RANDOM, PAT_TEXT, PAT_ZERO, PAT_BYTE, PAT_LIBRARY };
static const char *const pattern_names[] = {"random", "text", "zero", "byte", "library"};

/* How a size or offset follows the file's current size (truncate, overwrite). */
enum rel { REL_ABS, REL_ZERO, REL_MINUS1, REL_PLUS1, REL_ODD_INSIDE, REL_FRAC, REL_GROW };
static const char *const rel_names[] = {"abs",	    "zero", "size-1", "size+1",
					"odd<size", "frac", "size+n"};

struct op {
	enum op_kind kind;
	char path[PATH_LEN], path2[PATH_LEN];
	char target[TARGET_LEN];
	int flags;   /* open flags, rename/xattr/utimensat/link flags, fsync variant */
	int variant; /* op-specific choice */
	mode_t mode;
	uid_t uid;
	gid_t gid;
	enum rel rel;
	uint32_t frac; /* fraction of the current size, /2^32 */
	uint64_t off, len;
	enum pattern pattern;
	uint64_t dseed;
	struct timespec ts[2];
	char xname[64];
	size_t xlen;
	int slot;
};

/* Six directories ("" is the tree's root) and seven leaf names: 42 names. One leaf name has
 * a space, UTF-8 and bytes that are neither: names are bytes. */
static const char *const dirs[] = {"", "a", "b", "a/c", "b/d", "a/c/e"};
static const char *const leaves[] = {"f0", "f1", "f2", "f3", "f4", "f5", "\xe2\x98\x83 \x01\xff"};

static void gen_path_in(uint64_t *r, char *out, const char *leaf)
{
	const char *d = dirs[rnd(r, ELEMENTSOF(dirs))];
	snprintf(out, PATH_LEN, "%s%s%s", d, *d ? "/" : "", leaf);
}

/* A leaf name: what creating operations use, so that the directory candidates stay
 * directories (mostly: renames and symlinks still put other things there). */
static void gen_file_path(uint64_t *r, char *out)
{
	gen_path_in(r, out, leaves[rnd(r, ELEMENTSOF(leaves))]);
}

static void gen_path(uint64_t *r, char *out)
{
	if (chance(r, 10))
		snprintf(out, PATH_LEN, "%s", dirs[1 + rnd(r, ELEMENTSOF(dirs) - 1)]);
	else
		gen_path_in(r, out, leaves[rnd(r, ELEMENTSOF(leaves))]);
}

/* Biased towards the directory candidates, for mkdir, rmdir and directory renames. */
static void gen_dir_path(uint64_t *r, char *out)
{
	if (chance(r, 60))
		snprintf(out, PATH_LEN, "%s", dirs[1 + rnd(r, ELEMENTSOF(dirs) - 1)]);
	else
		gen_path_in(r, out, leaves[rnd(r, ELEMENTSOF(leaves))]);
}

/* 1 byte to 2 MiB, most of them small. */
static uint64_t gen_len(uint64_t *r)
{
	switch (rnd(r, 10)) {
	case 0:
	case 1:
	case 2:
		return 1 + rnd(r, 64);
	case 3:
	case 4:
		return 1 + rnd(r, 8 * KIB);
	case 5:
	case 6:
		return 1 + rnd(r, 256 * KIB);
	case 7:
	case 8:
		return 1 + rnd(r, MIB);
	default:
		return MIB + rnd(r, MIB) + 1;
	}
}

static uint64_t gen_off(uint64_t *r)
{
	switch (rnd(r, 6)) {
	case 0:
	case 1:
		return 0;
	case 2:
		return rnd(r, 64 * KIB);
	case 3:
		return rnd(r, MIB);
	case 4:
		return rnd(r, 4 * MIB);
	default:
		return rnd(r, 4) * MIB; /* on a MiB boundary: often a chunk's neighbourhood */
	}
}

static void gen_data(uint64_t *r, struct op *o)
{
	unsigned p = (unsigned)rnd(r, 100);
	o->pattern = p < 40   ? PAT_RANDOM
		     : p < 60 ? PAT_TEXT
		     : p < 65 ? PAT_ZERO
		     : p < 75 ? PAT_BYTE
			      : PAT_LIBRARY;
	o->dseed = splitmix(r);
	o->len = gen_len(r);
	if (o->pattern == PAT_LIBRARY && chance(r, 50))
		o->len = MIN(MAX_WRITE, (1 + rnd(r, 4)) * 512 * KIB);
}

static mode_t gen_mode(uint64_t *r)
{
	static const mode_t usual[] = {0644, 0600, 0755, 0700, 0444, 0000, 0777, 0640};
	switch (rnd(r, 10)) {
	case 0:
		return (mode_t)rnd(r, 07777 + 1);
	case 1:
	case 2:
	case 3:
		return (mode_t)rnd(r, 0777 + 1);
	default:
		return usual[rnd(r, ELEMENTSOF(usual))];
	}
}

/* Downward-only targets: names, subpaths, ".", dangling and long ones (up to PATH_MAX). */
static void gen_target(uint64_t *r, char *out)
{
	switch (rnd(r, 9)) {
	case 0:
	case 1:
		snprintf(out, TARGET_LEN, "%s", leaves[rnd(r, ELEMENTSOF(leaves))]);
		break;
	case 2:
		snprintf(out, TARGET_LEN, "%s/%s", rnd(r, 2) ? "c" : "d",
			 leaves[rnd(r, ELEMENTSOF(leaves))]);
		break;
	case 3:
		snprintf(out, TARGET_LEN, "%s", rnd(r, 2) ? "c" : "e");
		break;
	case 4:
		snprintf(out, TARGET_LEN, ".");
		break;
	case 5:
		snprintf(out, TARGET_LEN, "dangling-%u", (unsigned)rnd(r, 1000));
		break;
	case 6: {
		size_t n = 1 + rnd(r, 255);
		memset(out, 'x', n);
		out[n] = 0;
		break;
	}
	case 7: {
		/* 4095 bytes (the longest there is) or 4096 (ENAMETOOLONG) of x/x/x... */
		size_t n = 4095 + rnd(r, 2);
		for (size_t i = 0; i < n; i++)
			out[i] = i % 2 ? '/' : 'x';
		out[n] = 0;
		break;
	}
	default: {
		/* up to ~1000 bytes of x/x/x...: a long path that resolves nowhere */
		size_t n = 1 + 2 * rnd(r, 500);
		for (size_t i = 0; i < n; i++)
			out[i] = i % 2 ? '/' : 'x';
		out[n] = 0;
		break;
	}
	}
}

static void gen_time(uint64_t *r, struct timespec *ts)
{
	unsigned c = (unsigned)rnd(r, 10);
	if (c == 0) {
		ts->tv_sec = 0;
		ts->tv_nsec = UTIME_NOW;
	} else if (c == 1) {
		ts->tv_sec = 0;
		ts->tv_nsec = UTIME_OMIT;
	} else {
		ts->tv_sec = (time_t)(SYNTH_MIN + (int64_t)rnd(r, SYNTH_SPAN));
		ts->tv_nsec = c == 2 ? 0 : (long)rnd(r, 1000000000);
	}
}

static void gen_op(uint64_t seed, uint64_t index, struct op *o)
{
	uint64_t s = seed * 0x9e3779b97f4a7c15ull ^ (index + 1) * 0xd1b54a32d192ed03ull;
	uint64_t *r = &s;
	unsigned total = 0, pick;
	splitmix(r);
	memset(o, 0, sizeof(*o));
	for (size_t k = 0; k < ELEMENTSOF(op_table); k++)
		total += op_table[k].weight;
	pick = (unsigned)rnd(r, total);
	for (size_t k = 0; k < ELEMENTSOF(op_table); k++) {
		if (pick < op_table[k].weight) {
			o->kind = (enum op_kind)k;
			break;
		}
		pick -= op_table[k].weight;
	}
	o->slot = (int)rnd(r, NSLOTS);
	o->frac = (uint32_t)splitmix(r);
	switch (o->kind) {
	case OP_WRITE:
		gen_file_path(r, o->path);
		gen_data(r, o);
		o->off = gen_off(r);
		o->flags = O_CREAT | (chance(r, 15) ? O_TRUNC : 0) | (chance(r, 8) ? O_EXCL : 0);
		o->mode = gen_mode(r);
		o->variant = chance(r, 12); /* 1: O_DIRECT, offset and length aligned */
		break;
	case OP_APPEND:
		gen_file_path(r, o->path);
		gen_data(r, o);
		o->flags = chance(r, 70) ? O_CREAT : 0;
		o->mode = gen_mode(r);
		o->variant = (int)rnd(r, 3); /* 1 + variant write() calls */
		break;
	case OP_OVERWRITE:
		gen_path(r, o->path);
		gen_data(r, o);
		o->rel = REL_FRAC;
		break;
	case OP_TRUNCATE:
		gen_path(r, o->path);
		o->rel = (enum rel)rnd(r, ELEMENTSOF(rel_names));
		o->len = o->rel == REL_ABS ? rnd(r, FILE_CAP) : 1 + rnd(r, 3 * MIB);
		o->variant = (int)rnd(r, 2); /* 0: truncate(path), 1: open + ftruncate */
		break;
	case OP_COPY:
		gen_file_path(r, o->path);
		gen_path(r, o->path2);
		o->len = gen_len(r);
		o->off = gen_off(r);
		break;
	case OP_RENAME: {
		unsigned f = (unsigned)rnd(r, 100);
		if (chance(r, 30)) {
			gen_dir_path(r, o->path2);
			gen_dir_path(r, o->path);
		} else {
			gen_path(r, o->path2);
			gen_file_path(r, o->path);
		}
		o->flags = f < 70 ? 0 : f < 85 ? RENAME_NOREPLACE : RENAME_EXCHANGE;
		break;
	}
	case OP_LINK:
		gen_path(r, o->path2);
		gen_file_path(r, o->path);
		o->flags = chance(r, 20) ? AT_SYMLINK_FOLLOW : 0;
		break;
	case OP_UNLINK:
		gen_path(r, o->path);
		break;
	case OP_MKDIR:
		gen_dir_path(r, o->path);
		o->mode = chance(r, 80) ? 0755 : gen_mode(r);
		break;
	case OP_RMDIR:
		gen_dir_path(r, o->path);
		break;
	case OP_SYMLINK:
		if (chance(r, 5))
			gen_path(r, o->path);
		else
			gen_file_path(r, o->path);
		gen_target(r, o->target);
		break;
	case OP_MKNOD: {
		/* Device nodes only under names no other operation opens ("dev0", "dev1"), and
		 * with majors of the range reserved for local use, so nothing reaches a device. */
		static const mode_t types[] = {S_IFCHR, S_IFBLK, S_IFSOCK, S_IFCHR};
		char name[8];
		snprintf(name, sizeof(name), "dev%u", (unsigned)rnd(r, 2));
		gen_path_in(r, o->path, name);
		o->mode = types[rnd(r, ELEMENTSOF(types))] | (gen_mode(r) & 0777);
		o->off = makedev(240 + rnd(r, 14), rnd(r, 1u << 20));
		o->variant = chance(r, 30); /* 1: unlink it again */
		break;
	}
	case OP_MKFIFO:
		gen_file_path(r, o->path);
		o->mode = gen_mode(r);
		break;
	case OP_CHMOD:
		gen_path(r, o->path);
		o->mode = gen_mode(r);
		break;
	case OP_CHOWN: {
		static const unsigned ids[] = {0, 1000, 65534, (unsigned)-1};
		gen_path(r, o->path);
		o->uid = (uid_t)ids[rnd(r, ELEMENTSOF(ids))];
		o->gid = (gid_t)ids[rnd(r, ELEMENTSOF(ids))];
		o->flags = chance(r, 30) ? AT_SYMLINK_NOFOLLOW : 0;
		break;
	}
	case OP_UTIMENS:
		gen_path(r, o->path);
		gen_time(r, &o->ts[0]);
		gen_time(r, &o->ts[1]);
		o->flags = chance(r, 25) ? AT_SYMLINK_NOFOLLOW : 0;
		o->variant = chance(r, 5); /* 1: times == NULL */
		break;
	case OP_SETXATTR:
	case OP_REMOVEXATTR:
	case OP_GETXATTR: {
		unsigned f = (unsigned)rnd(r, 100);
		gen_path(r, o->path);
		snprintf(o->xname, sizeof(o->xname), "user.x%u", (unsigned)rnd(r, 4));
		o->xlen = chance(r, 10) ? 0 : chance(r, 70) ? rnd(r, 40) : rnd(r, 513);
		o->dseed = splitmix(r);
		o->flags = f < 70 ? 0 : f < 85 ? XATTR_CREATE : XATTR_REPLACE;
		o->variant = chance(r, 20); /* 1: follow symlinks (setxattr, not lsetxattr) */
		break;
	}
	case OP_FSYNC:
		gen_path(r, o->path);
		o->variant = (int)rnd(r, 3); /* fsync, fdatasync, syncfs */
		break;
	case OP_REOPEN:
		gen_file_path(r, o->path);
		gen_data(r, o);
		o->off = gen_off(r);
		o->mode = gen_mode(r);
		break;
	case OP_READ:
		gen_path(r, o->path);
		o->len = gen_len(r);
		o->variant = chance(r, 30); /* 1: O_DIRECT */
		break;
	case OP_STAT:
		gen_path(r, o->path);
		break;
	case OP_READDIR:
		snprintf(o->path, PATH_LEN, "%s", dirs[rnd(r, ELEMENTSOF(dirs))]);
		if (!o->path[0])
			snprintf(o->path, PATH_LEN, ".");
		break;
	case OP_LONGNAME: {
		size_t n = 250 + rnd(r, 9);
		char name[300];
		memset(name, 'n', n);
		name[n] = 0;
		gen_path_in(r, o->path, name);
		break;
	}
	case OP_CLEAR:
		snprintf(o->path, PATH_LEN, "%s", dirs[rnd(r, ELEMENTSOF(dirs))]);
		break;
	case OP_SLOT_OPEN:
		gen_file_path(r, o->path);
		o->flags = (chance(r, 60) ? O_CREAT : 0) | (chance(r, 10) ? O_TRUNC : 0) |
			   (chance(r, 20) ? O_APPEND : 0);
		o->mode = gen_mode(r);
		break;
	case OP_SLOT_WRITE:
		gen_data(r, o);
		o->rel = chance(r, 50) ? REL_FRAC : REL_ABS;
		o->off = gen_off(r);
		break;
	case OP_SLOT_READ:
		o->len = gen_len(r);
		break;
	case OP_SLOT_TRUNCATE:
		o->rel = (enum rel)rnd(r, ELEMENTSOF(rel_names));
		o->len = o->rel == REL_ABS ? rnd(r, FILE_CAP) : 1 + rnd(r, 3 * MIB);
		break;
	case OP_SLOT_ATTR:
		o->variant = (int)rnd(r, 4); /* futimens, fchmod, fsync, fdatasync */
		gen_time(r, &o->ts[0]);
		gen_time(r, &o->ts[1]);
		o->mode = gen_mode(r);
		break;
	case OP_FALLOCATE: {
		static const int modes[] = {0,
					    0,
					    FALLOC_FL_KEEP_SIZE,
					    FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					    FALLOC_FL_ZERO_RANGE,
					    FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE};
		gen_path(r, o->path);
		o->flags = modes[rnd(r, ELEMENTSOF(modes))];
		o->len = gen_len(r);
		o->rel = chance(r, 70) ? REL_FRAC : REL_ABS;
		o->off = gen_off(r);
		break;
	}
	case OP_COPY_RANGE:
		gen_file_path(r, o->path);
		gen_path(r, o->path2);
		o->len = gen_len(r);
		o->off = gen_off(r);
		break;
	case OP_MMAP_WRITE:
		gen_path(r, o->path);
		gen_data(r, o);
		o->variant = chance(r, 50); /* 1: msync before munmap */
		break;
	case OP_BIGDIR:
		snprintf(o->path, PATH_LEN, "%s%sbig", dirs[rnd(r, 3)], "/");
		if (o->path[0] == '/')
			memmove(o->path, o->path + 1, strlen(o->path));
		o->len = 150 + rnd(r, 500);
		o->dseed = splitmix(r);
		break;
	case OP_ACL:
		if (chance(r, 50))
			gen_dir_path(r, o->path);
		else
			gen_path(r, o->path);
		o->variant = chance(r, 55); /* 1: the default ACL (directories only) */
		o->flags = (int)rnd(r, 6);  /* enum acl_kind */
		o->dseed = splitmix(r);
		break;
	case OP_SLOT_STAT:
	case OP_SLOT_CLOSE:
	case OP_PAUSE:
		break;
	}
}

/* POSIX ACLs as xattr values: le32 version 2, then le16 tag, le16 perm, le32 id entries. */
enum acl_kind { ACL_MINIMAL, ACL_USERS, ACL_GROUPS, ACL_NO_MASK, ACL_REMOVE, ACL_GET };
static const char *const acl_kind_names[] = {
	"minimal", "users+mask", "groups+mask", "user without mask (invalid)", "remove", "get"};
#define ACL_USER_OBJ 0x01
#define ACL_USER 0x02
#define ACL_GROUP_OBJ 0x04
#define ACL_GROUP 0x08
#define ACL_MASK 0x10
#define ACL_OTHER 0x20
#define ACL_NAME_ACCESS "system.posix_acl_access"
#define ACL_NAME_DEFAULT "system.posix_acl_default"

static size_t acl_entry(uint8_t *p, unsigned tag, unsigned perm, uint32_t id)
{
	p[0] = (uint8_t)tag;
	p[1] = (uint8_t)(tag >> 8);
	p[2] = (uint8_t)perm;
	p[3] = 0;
	for (int k = 0; k < 4; k++)
		p[4 + k] = (uint8_t)(id >> (8 * k));
	return 8;
}

/* The ACL of an OP_ACL operation; entries in the order the kernel requires. */
static size_t acl_build(const struct op *o, uint8_t *v)
{
	uint64_t x = o->dseed;
	size_t n = 4;
	v[0] = 2;
	v[1] = v[2] = v[3] = 0;
	n += acl_entry(v + n, ACL_USER_OBJ, (unsigned)splitmix(&x) % 8, UINT32_MAX);
	if (o->flags == ACL_USERS || o->flags == ACL_NO_MASK) {
		n += acl_entry(v + n, ACL_USER, (unsigned)splitmix(&x) % 8, 1000);
		if (splitmix(&x) % 2)
			n += acl_entry(v + n, ACL_USER, (unsigned)splitmix(&x) % 8, 1001);
	}
	n += acl_entry(v + n, ACL_GROUP_OBJ, (unsigned)splitmix(&x) % 8, UINT32_MAX);
	if (o->flags == ACL_GROUPS || (o->flags == ACL_USERS && splitmix(&x) % 2))
		n += acl_entry(v + n, ACL_GROUP, (unsigned)splitmix(&x) % 8, 100);
	if (o->flags == ACL_USERS || o->flags == ACL_GROUPS)
		n += acl_entry(v + n, ACL_MASK, (unsigned)splitmix(&x) % 8, UINT32_MAX);
	n += acl_entry(v + n, ACL_OTHER, (unsigned)splitmix(&x) % 8, UINT32_MAX);
	return n;
}

static void describe_time(char *out, size_t n, const struct timespec *ts)
{
	if (ts->tv_nsec == UTIME_NOW)
		snprintf(out, n, "NOW");
	else if (ts->tv_nsec == UTIME_OMIT)
		snprintf(out, n, "OMIT");
	else
		snprintf(out, n, "%lld.%09ld", (long long)ts->tv_sec, ts->tv_nsec);
}

static const char *open_flags_str(int f)
{
	static char s[64];
	snprintf(s, sizeof(s), "%s%s%s%s", f & O_CREAT ? "|O_CREAT" : "",
		 f & O_TRUNC ? "|O_TRUNC" : "", f & O_EXCL ? "|O_EXCL" : "",
		 f & O_APPEND ? "|O_APPEND" : "");
	return s[0] ? s + 1 : "0";
}

static void describe(const struct op *o, char *out, size_t n)
{
	char t0[32], t1[32], data[96];
	const char *name = op_table[o->kind].name;
	snprintf(data, sizeof(data), "len=%" PRIu64 " data=%s/%016" PRIx64, o->len,
		 pattern_names[o->pattern], o->dseed);
	switch (o->kind) {
	case OP_WRITE:
	case OP_REOPEN:
		snprintf(out, n, "%s %s off=%" PRIu64 " %s flags=%s%s mode=%04o", name, o->path,
			 o->off, data, open_flags_str(o->flags),
			 o->kind == OP_WRITE && o->variant ? "|O_DIRECT (aligned to 4 KiB)" : "",
			 (unsigned)o->mode);
		break;
	case OP_SLOT_ATTR:
		describe_time(t0, sizeof(t0), &o->ts[0]);
		describe_time(t1, sizeof(t1), &o->ts[1]);
		if (o->variant == 0)
			snprintf(out, n, "%s %d futimens atime=%s mtime=%s", name, o->slot, t0, t1);
		else if (o->variant == 1)
			snprintf(out, n, "%s %d fchmod %04o", name, o->slot, (unsigned)o->mode);
		else
			snprintf(out, n, "%s %d %s", name, o->slot,
				 o->variant == 2 ? "fsync" : "fdatasync");
		break;
	case OP_FALLOCATE: {
		char at[48];
		if (o->rel == REL_FRAC)
			snprintf(at, sizeof(at), "at size*%.4f", o->frac / 4294967296.0);
		else
			snprintf(at, sizeof(at), "off=%" PRIu64, o->off);
		snprintf(out, n, "%s %s mode=%s%s%s%s %s len=%" PRIu64, name, o->path,
			 o->flags ? "" : "0", o->flags & FALLOC_FL_PUNCH_HOLE ? "PUNCH_HOLE|" : "",
			 o->flags & FALLOC_FL_ZERO_RANGE ? "ZERO_RANGE|" : "",
			 o->flags & FALLOC_FL_KEEP_SIZE ? "KEEP_SIZE" : "", at, o->len);
		break;
	}
	case OP_COPY_RANGE:
		snprintf(out, n, "%s %s at size*%.4f len=%" PRIu64 " -> %s off=%" PRIu64, name,
			 o->path2, o->frac / 4294967296.0, o->len, o->path, o->off);
		break;
	case OP_MMAP_WRITE:
		snprintf(out, n, "%s %s at size*%.4f %s%s", name, o->path, o->frac / 4294967296.0,
			 data, o->variant ? " msync" : "");
		break;
	case OP_ACL:
		snprintf(out, n, "%s %s %s ACL: %s", name, o->path,
			 o->variant ? "default" : "access", acl_kind_names[o->flags]);
		if (o->flags < ACL_REMOVE) {
			uint8_t v[64];
			size_t len = acl_build(o, v), k = strlen(out);
			for (size_t e = 4; e < len && k + 24 < n; e += 8)
				k += (size_t)snprintf(out + k, n - k, " %02x:%o%s%u", v[e],
						      v[e + 2], v[e + 4] == 0xff ? "" : ":",
						      v[e + 4] == 0xff ? 0
								       : v[e + 4] | v[e + 5] << 8);
		}
		break;
	case OP_BIGDIR:
		snprintf(out, n,
			 "%s %s: %" PRIu64 " entries, readdir while unlinking and adding some, "
			 "then remove it",
			 name, o->path, o->len);
		break;
	case OP_APPEND:
		snprintf(out, n, "%s %s %s x%d flags=O_APPEND|%s mode=%04o", name, o->path, data,
			 1 + o->variant, open_flags_str(o->flags), (unsigned)o->mode);
		break;
	case OP_OVERWRITE:
		snprintf(out, n, "%s %s at size*%.4f %s", name, o->path, o->frac / 4294967296.0,
			 data);
		break;
	case OP_TRUNCATE:
		snprintf(out, n, "%s %s (%s) size=%s n=%" PRIu64 " frac=%.4f", name, o->path,
			 o->variant ? "ftruncate" : "truncate", rel_names[o->rel], o->len,
			 o->frac / 4294967296.0);
		break;
	case OP_SLOT_TRUNCATE:
		snprintf(out, n, "%s %d size=%s n=%" PRIu64 " frac=%.4f", name, o->slot,
			 rel_names[o->rel], o->len, o->frac / 4294967296.0);
		break;
	case OP_COPY:
		snprintf(out, n, "%s %s at size*%.4f len=%" PRIu64 " -> %s off=%" PRIu64, name,
			 o->path2, o->frac / 4294967296.0, o->len, o->path, o->off);
		break;
	case OP_RENAME:
		snprintf(out, n, "%s %s -> %s%s", name, o->path2, o->path,
			 o->flags == RENAME_NOREPLACE  ? " RENAME_NOREPLACE"
			 : o->flags == RENAME_EXCHANGE ? " RENAME_EXCHANGE"
						       : "");
		break;
	case OP_LINK:
		snprintf(out, n, "%s %s -> %s%s", name, o->path2, o->path,
			 o->flags ? " AT_SYMLINK_FOLLOW" : "");
		break;
	case OP_SYMLINK:
		snprintf(out, n, "%s %s -> \"%.60s%s\" (%zu bytes)", name, o->path, o->target,
			 strlen(o->target) > 60 ? "..." : "", strlen(o->target));
		break;
	case OP_MKNOD:
		snprintf(out, n, "%s %s type=%s mode=%04o rdev=%u:%u%s", name, o->path,
			 S_ISCHR(o->mode)   ? "chr"
			 : S_ISBLK(o->mode) ? "blk"
					    : "sock",
			 (unsigned)(o->mode & 07777), major((dev_t)o->off), minor((dev_t)o->off),
			 o->variant ? ", then unlink" : "");
		break;
	case OP_MKDIR:
	case OP_MKFIFO:
	case OP_CHMOD:
		snprintf(out, n, "%s %s mode=%04o", name, o->path, (unsigned)o->mode);
		break;
	case OP_CHOWN:
		snprintf(out, n, "%s %s uid=%d gid=%d%s", name, o->path, (int)o->uid, (int)o->gid,
			 o->flags ? " AT_SYMLINK_NOFOLLOW" : "");
		break;
	case OP_UTIMENS:
		describe_time(t0, sizeof(t0), &o->ts[0]);
		describe_time(t1, sizeof(t1), &o->ts[1]);
		if (o->variant)
			snprintf(out, n, "%s %s times=NULL%s", name, o->path,
				 o->flags ? " AT_SYMLINK_NOFOLLOW" : "");
		else
			snprintf(out, n, "%s %s atime=%s mtime=%s%s", name, o->path, t0, t1,
				 o->flags ? " AT_SYMLINK_NOFOLLOW" : "");
		break;
	case OP_SETXATTR:
		snprintf(out, n, "%s%s %s %s len=%zu%s", o->variant ? "" : "l", name, o->path,
			 o->xname, o->xlen,
			 o->flags == XATTR_CREATE    ? " XATTR_CREATE"
			 : o->flags == XATTR_REPLACE ? " XATTR_REPLACE"
						     : "");
		break;
	case OP_REMOVEXATTR:
	case OP_GETXATTR:
		snprintf(out, n, "%s%s %s %s", o->variant ? "" : "l", name, o->path, o->xname);
		break;
	case OP_FSYNC:
		snprintf(out, n, "%s %s (%s)", name, o->path,
			 o->variant == 0   ? "fsync"
			 : o->variant == 1 ? "fdatasync"
					   : "syncfs");
		break;
	case OP_READ:
		snprintf(out, n, "%s %s at size*%.4f len=%" PRIu64 "%s", name, o->path,
			 o->frac / 4294967296.0, o->len, o->variant ? " O_DIRECT" : "");
		break;
	case OP_LONGNAME:
		snprintf(out, n, "%s create+unlink a %zu-byte name in /%.*s", name,
			 strlen(strrchr(o->path, '/') ? strrchr(o->path, '/') + 1 : o->path),
			 (int)(strrchr(o->path, '/') ? strrchr(o->path, '/') - o->path : 0),
			 o->path);
		break;
	case OP_CLEAR:
		snprintf(out, n, "%s (unlink or rmdir every leaf name in) /%s", name, o->path);
		break;
	case OP_SLOT_OPEN:
		snprintf(out, n, "%s %d %s flags=O_RDWR|%s mode=%04o", name, o->slot, o->path,
			 open_flags_str(o->flags), (unsigned)o->mode);
		break;
	case OP_SLOT_WRITE:
		if (o->rel == REL_FRAC)
			snprintf(out, n, "%s %d at size*%.4f %s", name, o->slot,
				 o->frac / 4294967296.0, data);
		else
			snprintf(out, n, "%s %d off=%" PRIu64 " %s", name, o->slot, o->off, data);
		break;
	case OP_SLOT_READ:
		snprintf(out, n, "%s %d at size*%.4f len=%" PRIu64, name, o->slot,
			 o->frac / 4294967296.0, o->len);
		break;
	case OP_SLOT_STAT:
	case OP_SLOT_CLOSE:
		snprintf(out, n, "%s %d", name, o->slot);
		break;
	default:
		snprintf(out, n, "%s %s", name, o->path);
		break;
	}
}

/* ---- running an operation on one side ------------------------------------------------ */

struct side {
	const char *root;
	int dirfd;
	int slot[NSLOTS];
	bool direct_ok;
};

/* What an operation observed: compared between the sides. */
struct result {
	const char *step; /* the call that failed, or NULL */
	int err;
	long long ret;
	uint64_t hash;
	char note[160]; /* human-readable observation, e.g. sizes */
};

static uint8_t *library[LIB_BLOBS];
static uint8_t *wbuf, *rbuf;
static bool have_noreplace = true, have_exchange = true, have_xattr = true, have_direct = true;
static bool have_punch = true, have_zero = true, have_acl = true;

static void *xmalloc_aligned(size_t n)
{
	void *p = NULL;
	if (posix_memalign(&p, IO_ALIGN, n)) {
		fprintf(stderr, "exerciser: out of memory\n");
		exit(99);
	}
	return p;
}

static void fill_data(const struct op *o, uint8_t *buf, size_t len)
{
	uint64_t s = o->dseed;
	switch (o->pattern) {
	case PAT_RANDOM:
		for (size_t i = 0; i < len; i += 8) {
			uint64_t w = splitmix(&s);
			memcpy(buf + i, &w, MIN(8, len - i));
		}
		break;
	case PAT_TEXT: {
		size_t i = 0;
		unsigned line = 0;
		while (i < len) {
			char l[80];
			int k = snprintf(l, sizeof(l), "%08u cairn exerciser text, seed %04x\n",
					 line++, (unsigned)(o->dseed & 0xffff));
			memcpy(buf + i, l, MIN((size_t)k, len - i));
			i += (size_t)k;
		}
		break;
	}
	case PAT_ZERO:
		memset(buf, 0, len);
		break;
	case PAT_BYTE:
		memset(buf, (int)(o->dseed & 0xff), len);
		break;
	case PAT_LIBRARY: {
		/* Earlier data again, at 64 KiB or arbitrary offsets: exercises dedup. */
		size_t k = (size_t)(o->dseed % LIB_BLOBS),
		       from = (size_t)((o->dseed >> 8) % (LIB_SIZE - len + 1));
		if ((o->dseed >> 40) & 1)
			from &= ~(size_t)(64 * KIB - 1);
		memcpy(buf, library[k] + from, len);
		break;
	}
	}
}

static void set_fail(struct result *res, const char *step)
{
	res->step = step;
	res->err = errno;
}

static void path_of(const struct side *s, const char *rel, char *out, size_t n)
{
	snprintf(out, n, "%s/%s", s->root, rel);
}

/* The size that offsets follow: a directory's st_size means nothing comparable. */
static uint64_t fsize(const struct stat *st)
{
	return S_ISREG(st->st_mode) ? (uint64_t)st->st_size : 0;
}

static uint64_t resolve(enum rel rel, uint64_t size, uint32_t frac, uint64_t n)
{
	switch (rel) {
	case REL_ABS:
		return n;
	case REL_ZERO:
		return 0;
	case REL_MINUS1:
		return size ? size - 1 : 0;
	case REL_PLUS1:
		return size + 1;
	case REL_ODD_INSIDE:
		return size ? ((size * frac) >> 32) | 1 : 1;
	case REL_FRAC:
		return (size * frac) >> 32;
	case REL_GROW:
		return size + n;
	}
	return 0;
}

static ssize_t pwrite_full(int fd, const void *buf, size_t len, off_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t k = pwrite(fd, (const uint8_t *)buf + done, len - done, off + (off_t)done);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return done ? (ssize_t)done : -1;
		if (k == 0)
			break;
		done += (size_t)k;
	}
	return (ssize_t)done;
}

static ssize_t write_full(int fd, const void *buf, size_t len)
{
	size_t done = 0;
	while (done < len) {
		ssize_t k = write(fd, (const uint8_t *)buf + done, len - done);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return done ? (ssize_t)done : -1;
		if (k == 0)
			break;
		done += (size_t)k;
	}
	return (ssize_t)done;
}

static ssize_t pread_full(int fd, void *buf, size_t len, off_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t k = pread(fd, (uint8_t *)buf + done, len - done, off + (off_t)done);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return done ? (ssize_t)done : -1;
		if (k == 0)
			break;
		done += (size_t)k;
	}
	return (ssize_t)done;
}

/* The attributes that must agree for one object, folded into the result. Times count
 * only when synthetic (set by utimensat); kernel-set ones differ by nature. */
static bool is_synthetic(const struct timespec *ts)
{
	return ts->tv_sec >= SYNTH_MIN && ts->tv_sec < SYNTH_MIN + SYNTH_SPAN;
}

static void observe_stat(struct result *res, const struct stat *st)
{
	bool dir = S_ISDIR(st->st_mode);
	res->hash = hash_mix(res->hash, st->st_mode);
	res->hash = hash_mix(res->hash, st->st_nlink);
	res->hash = hash_mix(res->hash, st->st_uid);
	res->hash = hash_mix(res->hash, st->st_gid);
	res->hash = hash_mix(res->hash, dir ? 0 : (uint64_t)st->st_size);
	if (is_synthetic(&st->st_mtim))
		res->hash = hash_mix(res->hash, (uint64_t)st->st_mtim.tv_sec * 1000000000ull +
							(uint64_t)st->st_mtim.tv_nsec);
	else
		res->hash = hash_mix(res->hash, 1);
	snprintf(res->note, sizeof(res->note),
		 "mode=%06o nlink=%lu uid=%u gid=%u size=%lld mtime=%lld.%09ld",
		 (unsigned)st->st_mode, (unsigned long)st->st_nlink, (unsigned)st->st_uid,
		 (unsigned)st->st_gid, dir ? 0LL : (long long)st->st_size,
		 (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
}

/* Write o's data at off (capped at FILE_CAP) through fd; res->ret is the count. */
static void do_pwrite(struct result *res, int fd, const struct op *o, uint64_t off)
{
	if (off >= FILE_CAP) {
		res->ret = -2; /* skipped alike on both sides: the file is big enough */
		return;
	}
	size_t len = (size_t)MIN(o->len, FILE_CAP - off);
	fill_data(o, wbuf, len);
	ssize_t k = pwrite_full(fd, wbuf, len, (off_t)off);
	if (k < 0)
		set_fail(res, "pwrite");
	res->ret = k;
}

static void do_read_hash(struct result *res, int fd, uint64_t off, size_t len)
{
	ssize_t k = pread_full(fd, rbuf, MIN(len, MAX_WRITE), (off_t)off);
	if (k < 0) {
		set_fail(res, "pread");
		return;
	}
	res->ret = k;
	res->hash = hash_bytes(res->hash, rbuf, (size_t)k);
}

static void do_truncate(struct result *res, const struct side *s, const struct op *o, int fd)
{
	struct stat st;
	uint64_t size = 0, n;
	char p[PATH_LEN + 4096];
	st.st_mode = 0;
	if ((fd >= 0 ? fstat(fd, &st) : fstatat(s->dirfd, o->path, &st, 0)) == 0)
		size = fsize(&st);
	n = MIN(resolve(o->rel, size, o->frac, o->len), FILE_CAP);
	res->hash = hash_mix(res->hash, n);
	snprintf(res->note, sizeof(res->note), "from %" PRIu64 " to %" PRIu64, size, n);
	if (fd >= 0) {
		if (ftruncate(fd, (off_t)n) < 0)
			set_fail(res, "ftruncate");
		return;
	}
	/* truncate(2) to the same size: ext4 updates mtime, Linux's truncate(2) page and tmpfs
	 * do not, and neither does FUSE's kernel side; no reference to compare with. */
	if (n == size && S_ISREG(st.st_mode)) {
		res->ret = -2;
		return;
	}
	path_of(s, o->path, p, sizeof(p));
	if (truncate(p, (off_t)n) < 0)
		set_fail(res, "truncate");
}

/* Names of varied lengths, so that entries straddle the kernel's readdir pages unevenly. */
static void bigdir_name(const struct op *o, const char *prefix, size_t k, char *out, size_t n)
{
	uint64_t x = o->dseed ^ (k * 0x9e3779b97f4a7c15ull);
	size_t pad = (size_t)(splitmix(&x) % 120);
	char padding[128];
	memset(padding, 'p', pad);
	padding[pad] = 0;
	snprintf(out, n, "%s/%s%05zu%s", o->path, prefix, k, padding);
}

/*
 * A directory of o->len entries, read with readdir() while some entries are unlinked and
 * others created. Which of those appear is up to the file system; every entry left alone
 * must appear exactly once, and none twice. The result holds the number of violations
 * (each side checks itself); the directory is removed again.
 */
static void run_bigdir(struct side *s, const struct op *o, struct result *res)
{
	size_t n = (size_t)o->len, added = n / 10, bad = 0;
	uint8_t *seen = calloc(n + added, 1), *gone = calloc(n, 1);
	char p[PATH_LEN + 200];
	struct dirent *e;
	DIR *d = NULL;
	int fd;

	if (!seen || !gone)
		exit(99);
	if (mkdirat(s->dirfd, o->path, 0755) < 0) {
		set_fail(res, "mkdir");
		goto out;
	}
	for (size_t k = 0; k < n; k++) {
		bigdir_name(o, "e", k, p, sizeof(p));
		fd = openat(s->dirfd, p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0) {
			set_fail(res, "create");
			goto cleanup;
		}
		close(fd);
	}
	fd = openat(s->dirfd, o->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || !(d = fdopendir(fd))) {
		set_fail(res, "opendir");
		goto cleanup;
	}
	for (size_t count = 0; (e = readdir(d)); count++) {
		unsigned long k;
		char *end;
		if (count == n / 3) {
			/* Change the directory in the middle of the listing. */
			for (size_t j = 0; j < n; j++) {
				uint64_t x = o->dseed + j;
				if (splitmix(&x) % 4)
					continue;
				bigdir_name(o, "e", j, p, sizeof(p));
				if (unlinkat(s->dirfd, p, 0) == 0)
					gone[j] = 1;
			}
			for (size_t j = 0; j < added; j++) {
				bigdir_name(o, "n", j, p, sizeof(p));
				fd = openat(s->dirfd, p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
				if (fd >= 0)
					close(fd);
			}
		}
		if (e->d_name[0] != 'e' && e->d_name[0] != 'n')
			continue;
		k = strtoul(e->d_name + 1, &end, 10);
		if (k >= (e->d_name[0] == 'e' ? n : added))
			continue;
		if (e->d_name[0] == 'n')
			k += n;
		if (seen[k]++ && !bad++)
			snprintf(res->note, sizeof(res->note), "readdir returned %.40s... twice",
				 e->d_name);
	}
	for (size_t k = 0; k < n; k++)
		if (!gone[k] && seen[k] != 1 && !bad++)
			snprintf(res->note, sizeof(res->note),
				 "readdir returned untouched entry e%05zu %u times", k, seen[k]);
	res->ret = (long long)bad;
	res->hash = hash_mix(0, bad);
cleanup:
	if (d)
		closedir(d);
	for (size_t k = 0; k < n + added; k++) {
		bigdir_name(o, k < n ? "e" : "n", k < n ? k : k - n, p, sizeof(p));
		unlinkat(s->dirfd, p, 0);
	}
	if (unlinkat(s->dirfd, o->path, AT_REMOVEDIR) < 0 && !res->step)
		set_fail(res, "rmdir");
out:
	free(seen);
	free(gone);
}

static void op_run(struct side *s, const struct op *o, struct result *res)
{
	char p[PATH_LEN + 4096];
	struct stat st;
	int fd = -1;

	memset(res, 0, sizeof(*res));
	switch (o->kind) {
	case OP_WRITE: {
		struct op d = *o;
		bool direct = o->variant && have_direct;
		if (direct) {
			d.off &= ~(uint64_t)(IO_ALIGN - 1);
			d.len = MIN((d.len + IO_ALIGN - 1) & ~(uint64_t)(IO_ALIGN - 1), MAX_WRITE);
		}
		fd = openat(s->dirfd, o->path,
			    O_WRONLY | O_NONBLOCK | O_CLOEXEC | o->flags | (direct ? O_DIRECT : 0),
			    o->mode);
		if (fd < 0) {
			set_fail(res, "open");
			break;
		}
		do_pwrite(res, fd, &d, d.off);
		break;
	}
	case OP_APPEND:
		fd = openat(s->dirfd, o->path,
			    O_WRONLY | O_APPEND | O_NONBLOCK | O_CLOEXEC | o->flags, o->mode);
		if (fd < 0) {
			set_fail(res, "open");
			break;
		}
		for (int k = 0; k <= o->variant; k++) {
			if (fstat(fd, &st) < 0) {
				set_fail(res, "fstat");
				break;
			}
			if (fsize(&st) >= FILE_CAP) {
				res->ret = -2;
				break;
			}
			size_t len = (size_t)MIN(o->len, FILE_CAP - fsize(&st));
			fill_data(o, wbuf, len);
			ssize_t w = write_full(fd, wbuf, len);
			if (w < 0) {
				set_fail(res, "write");
				break;
			}
			res->ret += w;
		}
		break;
	case OP_OVERWRITE:
		fd = openat(s->dirfd, o->path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0) {
			set_fail(res, "open");
			break;
		}
		if (fstat(fd, &st) < 0) {
			set_fail(res, "fstat");
			break;
		}
		do_pwrite(res, fd, o, resolve(REL_FRAC, fsize(&st), o->frac, 0));
		break;
	case OP_TRUNCATE:
		if (o->variant) {
			fd = openat(s->dirfd, o->path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
			if (fd < 0) {
				set_fail(res, "open");
				break;
			}
		}
		do_truncate(res, s, o, fd);
		break;
	case OP_COPY: {
		int src = openat(s->dirfd, o->path2, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		ssize_t k;
		if (src < 0) {
			set_fail(res, "open source");
			break;
		}
		if (fstat(src, &st) < 0) {
			set_fail(res, "fstat source");
			close(src);
			break;
		}
		k = pread_full(src, wbuf, (size_t)o->len,
			       (off_t)resolve(REL_FRAC, fsize(&st), o->frac, 0));
		close(src);
		if (k < 0) {
			set_fail(res, "pread source");
			break;
		}
		res->hash = hash_bytes(res->hash, wbuf, (size_t)k);
		fd = openat(s->dirfd, o->path, O_WRONLY | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0644);
		if (fd < 0) {
			set_fail(res, "open destination");
			break;
		}
		if (o->off >= FILE_CAP || k == 0) {
			res->ret = -2;
			break;
		}
		k = pwrite_full(fd, wbuf, (size_t)MIN((uint64_t)k, FILE_CAP - o->off),
				(off_t)o->off);
		if (k < 0)
			set_fail(res, "pwrite");
		res->ret = k;
		break;
	}
	case OP_RENAME:
		if ((o->flags == RENAME_NOREPLACE && !have_noreplace) ||
		    (o->flags == RENAME_EXCHANGE && !have_exchange)) {
			res->ret = -2;
			break;
		}
		if (renameat2(s->dirfd, o->path2, s->dirfd, o->path, (unsigned)o->flags) < 0)
			set_fail(res, "renameat2");
		break;
	case OP_LINK:
		if (linkat(s->dirfd, o->path2, s->dirfd, o->path, o->flags) < 0)
			set_fail(res, "linkat");
		break;
	case OP_UNLINK:
		if (unlinkat(s->dirfd, o->path, 0) < 0)
			set_fail(res, "unlinkat");
		break;
	case OP_MKDIR:
		if (mkdirat(s->dirfd, o->path, o->mode) < 0)
			set_fail(res, "mkdirat");
		break;
	case OP_RMDIR:
		if (unlinkat(s->dirfd, o->path, AT_REMOVEDIR) < 0)
			set_fail(res, "rmdir");
		break;
	case OP_SYMLINK:
		if (symlinkat(o->target, s->dirfd, o->path) < 0)
			set_fail(res, "symlinkat");
		break;
	case OP_MKNOD:
		if (mknodat(s->dirfd, o->path, o->mode, (dev_t)o->off) < 0)
			set_fail(res, "mknodat");
		else if (fstatat(s->dirfd, o->path, &st, AT_SYMLINK_NOFOLLOW) < 0)
			set_fail(res, "lstat");
		else {
			observe_stat(res, &st);
			res->hash = hash_mix(res->hash, st.st_rdev);
			if (o->variant && unlinkat(s->dirfd, o->path, 0) < 0)
				set_fail(res, "unlink");
		}
		break;
	case OP_MKFIFO:
		if (mkfifoat(s->dirfd, o->path, o->mode) < 0)
			set_fail(res, "mkfifoat");
		break;
	case OP_CHMOD:
		if (fchmodat(s->dirfd, o->path, o->mode, 0) < 0)
			set_fail(res, "fchmodat");
		break;
	case OP_CHOWN:
		if (fchownat(s->dirfd, o->path, o->uid, o->gid, o->flags) < 0)
			set_fail(res, "fchownat");
		break;
	case OP_UTIMENS:
		if (utimensat(s->dirfd, o->path, o->variant ? NULL : o->ts, o->flags) < 0)
			set_fail(res, "utimensat");
		break;
	case OP_SETXATTR:
	case OP_REMOVEXATTR:
	case OP_GETXATTR: {
		char v[600];
		uint64_t x = o->dseed;
		ssize_t k;
		if (!have_xattr) {
			res->ret = -2;
			break;
		}
		path_of(s, o->path, p, sizeof(p));
		if (o->kind == OP_SETXATTR) {
			for (size_t i = 0; i < o->xlen; i++)
				v[i] = (char)(i % 3 ? 'a' + splitmix(&x) % 26 : splitmix(&x));
			if ((o->variant ? setxattr : lsetxattr)(p, o->xname, v, o->xlen, o->flags) <
			    0)
				set_fail(res, "setxattr");
		} else if (o->kind == OP_REMOVEXATTR) {
			if ((o->variant ? removexattr : lremovexattr)(p, o->xname) < 0)
				set_fail(res, "removexattr");
		} else {
			k = (o->variant ? getxattr : lgetxattr)(p, o->xname, v, sizeof(v));
			if (k < 0)
				set_fail(res, "getxattr");
			else
				res->hash = hash_bytes(0, v, (size_t)k);
			res->ret = k;
		}
		break;
	}
	case OP_FSYNC:
		fd = openat(s->dirfd, o->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0) {
			set_fail(res, "open");
			break;
		}
		if ((o->variant == 0   ? fsync(fd)
		     : o->variant == 1 ? fdatasync(fd)
				       : syncfs(fd)) < 0)
			set_fail(res, "fsync");
		break;
	case OP_REOPEN: {
		fd = openat(s->dirfd, o->path, O_RDWR | O_CREAT | O_NONBLOCK | O_CLOEXEC, o->mode);
		if (fd < 0) {
			set_fail(res, "open");
			break;
		}
		do_pwrite(res, fd, o, o->off);
		close(fd);
		if (res->step)
			return;
		fd = openat(s->dirfd, o->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0) {
			set_fail(res, "reopen");
			break;
		}
		if (fstat(fd, &st) < 0) {
			set_fail(res, "fstat");
			break;
		}
		res->hash = hash_mix(res->hash, fsize(&st));
		/* The range just written, then the whole file. */
		if (res->ret > 0) {
			ssize_t k = pread_full(fd, rbuf, (size_t)res->ret, (off_t)o->off);
			if (k < 0) {
				set_fail(res, "pread");
				break;
			}
			if (S_ISREG(st.st_mode) &&
			    (k != res->ret || memcmp(rbuf, wbuf, (size_t)k) != 0)) {
				snprintf(res->note, sizeof(res->note),
					 "read back %zd bytes that differ from the %lld written", k,
					 res->ret);
				res->hash = hash_mix(res->hash, 0xbad);
			}
		}
		for (uint64_t off = 0; S_ISREG(st.st_mode) && off < fsize(&st); off += MAX_WRITE)
			do_read_hash(res, fd, off, MAX_WRITE);
		break;
	}
	case OP_READ: {
		int flags = O_RDONLY | O_NONBLOCK | O_CLOEXEC;
		uint64_t off;
		size_t len = (size_t)o->len;
		if (o->variant && s->direct_ok)
			flags |= O_DIRECT;
		fd = openat(s->dirfd, o->path, flags);
		if (fd < 0) {
			set_fail(res, "open");
			break;
		}
		if (fstat(fd, &st) < 0) {
			set_fail(res, "fstat");
			break;
		}
		off = resolve(REL_FRAC, fsize(&st), o->frac, 0);
		if (o->variant) { /* aligned, so O_DIRECT works on a block file system too */
			off &= ~(uint64_t)(IO_ALIGN - 1);
			len = (len + IO_ALIGN - 1) & ~(size_t)(IO_ALIGN - 1);
		}
		do_read_hash(res, fd, off, len);
		break;
	}
	case OP_STAT:
		if (fstatat(s->dirfd, o->path, &st, AT_SYMLINK_NOFOLLOW) < 0)
			set_fail(res, "lstat");
		else
			observe_stat(res, &st);
		break;
	case OP_READDIR: {
		fd = openat(s->dirfd, o->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0) {
			set_fail(res, "open");
			break;
		}
		DIR *d = fdopendir(fd);
		struct dirent *e;
		char names[64][300];
		size_t n = 0;
		if (!d) {
			set_fail(res, "fdopendir");
			break;
		}
		fd = -1;
		while ((e = readdir(d)) && n < ELEMENTSOF(names))
			if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
				snprintf(names[n++], sizeof(names[0]), "%c%s",
					 e->d_type == DT_UNKNOWN ? '?' : '0' + e->d_type,
					 e->d_name);
		closedir(d);
		qsort(names, n, sizeof(names[0]), (int (*)(const void *, const void *))strcmp);
		for (size_t k = 0; k < n; k++)
			res->hash = hash_bytes(res->hash, names[k], strlen(names[k]));
		res->ret = (long long)n;
		break;
	}
	case OP_LONGNAME:
		fd = openat(s->dirfd, o->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0) {
			set_fail(res, "create");
			break;
		}
		close(fd);
		fd = -1;
		if (fstatat(s->dirfd, o->path, &st, AT_SYMLINK_NOFOLLOW) < 0)
			set_fail(res, "lstat");
		else if (unlinkat(s->dirfd, o->path, 0) < 0)
			set_fail(res, "unlink");
		break;
	case OP_CLEAR:
		for (size_t k = 0; k < ELEMENTSOF(leaves); k++) {
			snprintf(p, sizeof(p), "%s%s%s", o->path, o->path[0] ? "/" : "", leaves[k]);
			int e = unlinkat(s->dirfd, p, 0) < 0 ? errno : 0;
			if (e == EISDIR) /* an empty directory under a leaf name goes too */
				e = unlinkat(s->dirfd, p, AT_REMOVEDIR) < 0 ? errno : 0;
			res->hash = hash_mix(res->hash, (uint64_t)e);
			res->ret += !e;
		}
		break;
	case OP_SLOT_OPEN:
		if (s->slot[o->slot] >= 0)
			close(s->slot[o->slot]);
		s->slot[o->slot] = openat(s->dirfd, o->path,
					  O_RDWR | O_NONBLOCK | O_CLOEXEC | o->flags, o->mode);
		if (s->slot[o->slot] < 0)
			set_fail(res, "open");
		break;
	case OP_SLOT_WRITE:
	case OP_SLOT_READ:
	case OP_SLOT_TRUNCATE:
	case OP_SLOT_STAT:
	case OP_SLOT_CLOSE: {
		int sfd = s->slot[o->slot];
		if (sfd < 0) {
			res->ret = -3; /* no open file in that slot, on either side */
			break;
		}
		if (o->kind == OP_SLOT_CLOSE) {
			if (close(sfd) < 0)
				set_fail(res, "close");
			s->slot[o->slot] = -1;
			break;
		}
		if (fstat(sfd, &st) < 0) {
			set_fail(res, "fstat");
			break;
		}
		if (o->kind == OP_SLOT_STAT)
			observe_stat(res, &st);
		else if (o->kind == OP_SLOT_TRUNCATE)
			do_truncate(res, s, o, sfd);
		else if (o->kind == OP_SLOT_READ)
			do_read_hash(res, sfd, resolve(REL_FRAC, fsize(&st), o->frac, 0),
				     (size_t)o->len);
		else
			do_pwrite(res, sfd, o,
				  o->rel == REL_FRAC ? resolve(REL_FRAC, fsize(&st), o->frac, 0)
						     : o->off);
		break;
	}
	case OP_SLOT_ATTR: {
		int sfd = s->slot[o->slot], k;
		if (sfd < 0) {
			res->ret = -3;
			break;
		}
		k = o->variant == 0   ? futimens(sfd, o->ts)
		    : o->variant == 1 ? fchmod(sfd, o->mode)
		    : o->variant == 2 ? fsync(sfd)
				      : fdatasync(sfd);
		if (k < 0)
			set_fail(res, "f-call");
		break;
	}
	case OP_FALLOCATE: {
		uint64_t off, len;
		if (((o->flags & FALLOC_FL_PUNCH_HOLE) && !have_punch) ||
		    ((o->flags & FALLOC_FL_ZERO_RANGE) && !have_zero)) {
			res->ret = -2;
			break;
		}
		fd = openat(s->dirfd, o->path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0) {
			set_fail(res, "open");
			break;
		}
		if (fstat(fd, &st) < 0) {
			set_fail(res, "fstat");
			break;
		}
		off = o->rel == REL_FRAC ? resolve(REL_FRAC, fsize(&st), o->frac, 0) : o->off;
		if (off >= FILE_CAP) {
			res->ret = -2;
			break;
		}
		len = MIN(o->len, FILE_CAP - off);
		snprintf(res->note, sizeof(res->note), "off=%" PRIu64 " len=%" PRIu64, off, len);
		if (fallocate(fd, o->flags, (off_t)off, (off_t)len) < 0)
			set_fail(res, "fallocate");
		break;
	}
	case OP_COPY_RANGE: {
		int src = openat(s->dirfd, o->path2, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		loff_t in, out = (loff_t)o->off;
		size_t left;
		if (src < 0) {
			set_fail(res, "open source");
			break;
		}
		fd = openat(s->dirfd, o->path, O_WRONLY | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0644);
		if (fd < 0) {
			set_fail(res, "open destination");
			close(src);
			break;
		}
		if (fstat(src, &st) < 0) {
			set_fail(res, "fstat");
			close(src);
			break;
		}
		in = (loff_t)resolve(REL_FRAC, fsize(&st), o->frac, 0);
		left = (size_t)MIN(o->len, FILE_CAP > o->off ? FILE_CAP - o->off : 0);
		while (left) {
			ssize_t k = copy_file_range(src, &in, fd, &out, left, 0);
			if (k < 0) {
				set_fail(res, "copy_file_range");
				break;
			}
			if (k == 0)
				break;
			res->ret += k;
			left -= (size_t)k;
		}
		close(src);
		break;
	}
	case OP_MMAP_WRITE: {
		uint64_t size, off, mapoff;
		size_t len, maplen;
		uint8_t *m;
		fd = openat(s->dirfd, o->path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0) {
			set_fail(res, "open");
			break;
		}
		if (fstat(fd, &st) < 0) {
			set_fail(res, "fstat");
			break;
		}
		size = fsize(&st);
		if (!S_ISREG(st.st_mode) || size == 0) {
			res->ret = -2; /* nothing to map; the type is compared elsewhere */
			break;
		}
		off = resolve(REL_FRAC, size, o->frac, 0);
		len = (size_t)MIN(o->len, size - off);
		mapoff = off & ~(uint64_t)(IO_ALIGN - 1);
		maplen = (size_t)(off - mapoff) + len;
		m = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)mapoff);
		if (m == MAP_FAILED) {
			set_fail(res, "mmap");
			break;
		}
		fill_data(o, wbuf, len);
		memcpy(m + (off - mapoff), wbuf, len);
		if (o->variant && msync(m, maplen, MS_SYNC) < 0)
			set_fail(res, "msync");
		munmap(m, maplen);
		res->ret = (long long)len;
		break;
	}
	case OP_BIGDIR:
		run_bigdir(s, o, res);
		break;
	case OP_ACL: {
		const char *name = o->variant ? ACL_NAME_DEFAULT : ACL_NAME_ACCESS;
		uint8_t v[512];
		ssize_t k;
		if (!have_acl) {
			res->ret = -2;
			break;
		}
		path_of(s, o->path, p, sizeof(p));
		if (o->flags == ACL_REMOVE) {
			/* Also when there is none: ext4, xfs, btrfs and tmpfs then return 0. */
			if (removexattr(p, name) < 0)
				set_fail(res, "removexattr");
		} else if (o->flags == ACL_GET) {
			k = getxattr(p, name, v, sizeof(v));
			if (k < 0)
				set_fail(res, "getxattr");
			else
				res->hash = hash_bytes(0, v, (size_t)k);
			res->ret = k;
		} else if (setxattr(p, name, v, acl_build(o, v), 0) < 0)
			set_fail(res, "setxattr");
		/* A new ACL may change the mode: observe it too. */
		if (fstatat(s->dirfd, o->path, &st, 0) == 0)
			res->hash = hash_mix(res->hash, st.st_mode);
		break;
	}
	case OP_PAUSE:
		break; /* main() sleeps */
	}
	if (fd >= 0 && close(fd) < 0 && !res->step)
		set_fail(res, "close");
}

/* ---- comparing ------------------------------------------------------------------------ */

static uint64_t cur_seed;
static long long last_index = -1;
static char cur_desc[2048], context[2400], replay_opts[4400];
static bool verbose, timing;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

__attribute__((format(printf, 1, 2))) static void mismatch(const char *fmt, ...)
{
	va_list ap;
	fflush(stdout);
	fprintf(stderr, "exerciser: MISMATCH, %s\n  ", context);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	if (last_index >= 0)
		fprintf(stderr,
			"  to replay: exerciser -v%s %" PRIu64 " %lld DIR_A DIR_B (empty trees)\n",
			replay_opts, cur_seed, last_index + 1);
	exit(1);
}

static void describe_result(const struct result *r, char *out, size_t n)
{
	if (r->step)
		snprintf(out, n, "%s failed: %s (errno %d) ret=%lld hash=%016" PRIx64 " %s",
			 r->step, strerror(r->err), r->err, r->ret, r->hash, r->note);
	else
		snprintf(out, n, "ok ret=%lld hash=%016" PRIx64 " %s", r->ret, r->hash, r->note);
}

static bool results_equal(const struct result *a, const struct result *b)
{
	if ((a->step == NULL) != (b->step == NULL))
		return false;
	if (a->step && (strcmp(a->step, b->step) || a->err != b->err))
		return false;
	return a->ret == b->ret && a->hash == b->hash;
}

struct ino_map {
	dev_t dev;
	ino_t ino;
	char *path;
};

struct compare_ctx {
	const char *root[2];
	struct ino_map *map[2];
	size_t nmap[2], cap[2];
	bool direct;
	uint64_t files, bytes;
};

/* The first path under which this inode was seen on this side (hard links). */
static const char *ino_first(struct compare_ctx *c, int side, const struct stat *st,
			     const char *rel)
{
	for (size_t k = 0; k < c->nmap[side]; k++)
		if (c->map[side][k].dev == st->st_dev && c->map[side][k].ino == st->st_ino)
			return c->map[side][k].path;
	if (c->nmap[side] == c->cap[side]) {
		c->cap[side] = c->cap[side] ? 2 * c->cap[side] : 64;
		c->map[side] = realloc(c->map[side], c->cap[side] * sizeof(*c->map[side]));
		if (!c->map[side]) {
			fprintf(stderr, "exerciser: out of memory\n");
			exit(99);
		}
	}
	struct ino_map *m = &c->map[side][c->nmap[side]++];
	m->dev = st->st_dev;
	m->ino = st->st_ino;
	m->path = strdup(rel);
	return rel;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of a directory, "." and ".." left out; NULL-terminated. */
static char **list_dir(const char *path, size_t *ret_n)
{
	DIR *d = opendir(path);
	struct dirent *e;
	char **v = NULL;
	size_t n = 0, cap = 0;
	if (!d)
		mismatch("cannot read directory %s: %s", path, strerror(errno));
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (n + 1 >= cap) {
			cap = cap ? 2 * cap : 32;
			v = realloc(v, cap * sizeof(*v));
			if (!v)
				exit(99);
		}
		v[n++] = strdup(e->d_name);
	}
	closedir(d);
	if (n)
		qsort(v, n, sizeof(*v), cmp_name);
	*ret_n = n;
	return v;
}

static void free_list(char **v, size_t n)
{
	for (size_t k = 0; k < n; k++)
		free(v[k]);
	free(v);
}

/* user.* names, sorted, as one NUL-separated buffer. */
static size_t list_user_xattrs(const char *path, char *out, size_t size)
{
	char raw[8192];
	char *names[256];
	size_t n = 0, used = 0;
	ssize_t len = llistxattr(path, raw, sizeof(raw));
	if (len < 0) {
		if (errno == ENOTSUP)
			return 0;
		mismatch("llistxattr %s: %s", path, strerror(errno));
	}
	for (ssize_t i = 0; i < len && n < ELEMENTSOF(names); i += (ssize_t)strlen(raw + i) + 1)
		if (!strncmp(raw + i, "user.", 5))
			names[n++] = raw + i;
	if (n)
		qsort(names, n, sizeof(*names), cmp_name);
	for (size_t k = 0; k < n && used + strlen(names[k]) + 1 <= size; k++) {
		memcpy(out + used, names[k], strlen(names[k]) + 1);
		used += strlen(names[k]) + 1;
	}
	return used;
}

static void cmp_acl(const char *pa, const char *pb, const char *rel, const char *name)
{
	uint8_t va[512], vb[512];
	ssize_t ka = lgetxattr(pa, name, va, sizeof(va));
	int ea = ka < 0 ? errno : 0;
	ssize_t kb = lgetxattr(pb, name, vb, sizeof(vb));
	int eb = kb < 0 ? errno : 0;
	if (ea == ENOTSUP && eb == ENOTSUP)
		return;
	if (ka != kb || ea != eb || (ka > 0 && memcmp(va, vb, (size_t)ka))) {
		char ha[200] = "", hb[200] = "";
		for (ssize_t i = 0; i < ka && i < 64; i++)
			snprintf(ha + 3 * i, 4, "%02x ", va[i]);
		for (ssize_t i = 0; i < kb && i < 64; i++)
			snprintf(hb + 3 * i, 4, "%02x ", vb[i]);
		mismatch("%s: %s differs: A %zd bytes %s%s, B %zd bytes %s%s", rel, name, ka,
			 ea ? strerror(ea) : "", ha, kb, eb ? strerror(eb) : "", hb);
	}
}

static void cmp_xattrs(const char *pa, const char *pb, const char *rel)
{
	char la[8192], lb[8192], va[70000], vb[70000];
	size_t na = list_user_xattrs(pa, la, sizeof(la)), nb = list_user_xattrs(pb, lb, sizeof(lb));
	if (na != nb || memcmp(la, lb, na)) {
		for (size_t i = 0; i < na; i++)
			la[i] = la[i] ? la[i] : ' ';
		for (size_t i = 0; i < nb; i++)
			lb[i] = lb[i] ? lb[i] : ' ';
		mismatch("%s: xattr names differ: A [%.*s] B [%.*s]", rel, (int)na, la, (int)nb,
			 lb);
	}
	for (size_t i = 0; i < na; i += strlen(la + i) + 1) {
		ssize_t ka = lgetxattr(pa, la + i, va, sizeof(va));
		ssize_t kb = lgetxattr(pb, la + i, vb, sizeof(vb));
		if (ka < 0 || kb < 0)
			mismatch("%s: getxattr %s: A %zd (%s) B %zd (%s)", rel, la + i, ka,
				 ka < 0 ? strerror(errno) : "ok", kb,
				 kb < 0 ? strerror(errno) : "ok");
		if (ka != kb || memcmp(va, vb, (size_t)ka))
			mismatch("%s: xattr %s differs: A %zd bytes, B %zd bytes", rel, la + i, ka,
				 kb);
	}
}

static int open_for_compare(struct compare_ctx *c, const char *path, bool *direct)
{
	int fd = -1;
	*direct = false;
	if (c->direct) {
		fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC | O_NOFOLLOW);
		*direct = fd >= 0;
	}
	if (fd < 0)
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	return fd;
}

static void cmp_contents(struct compare_ctx *c, const char *pa, const char *pb, const char *rel,
			 uint64_t size)
{
	static uint8_t *ba, *bb;
	bool da, db;
	int fa = open_for_compare(c, pa, &da), fb = open_for_compare(c, pb, &db);
	uint64_t off = 0;
	if (!ba) {
		ba = xmalloc_aligned(MAX_WRITE);
		bb = xmalloc_aligned(MAX_WRITE);
	}
	if (fa < 0 || fb < 0)
		mismatch("%s: open for reading: A %s, B %s", rel, fa < 0 ? strerror(errno) : "ok",
			 fb < 0 ? strerror(errno) : "ok");
	for (;;) {
		ssize_t ka = pread_full(fa, ba, MAX_WRITE, (off_t)off);
		ssize_t kb = pread_full(fb, bb, MAX_WRITE, (off_t)off);
		if (ka < 0 || kb < 0)
			mismatch("%s: read at %" PRIu64 "%s: A %zd, B %zd (%s)", rel, off,
				 db ? " (O_DIRECT)" : "", ka, kb, strerror(errno));
		if (ka != kb || memcmp(ba, bb, (size_t)ka)) {
			size_t i = 0, n = (size_t)MIN(ka, kb);
			while (i < n && ba[i] == bb[i])
				i++;
			size_t j = i;
			while (j < n && ba[j] != bb[j])
				j++;
			mismatch("%s (size %" PRIu64 "): contents differ at byte %" PRIu64
				 " (A read %zd, B read %zd bytes at %" PRIu64
				 "%s); differing run %zu bytes, A %02x B %02x",
				 rel, size, off + i, ka, kb, off, db ? ", B with O_DIRECT" : "",
				 j - i, i < (size_t)ka ? ba[i] : 0, i < (size_t)kb ? bb[i] : 0);
		}
		c->bytes += (uint64_t)ka;
		off += (uint64_t)ka;
		if (ka == 0)
			break;
	}
	if (off != size)
		mismatch("%s: read %" PRIu64 " bytes, but the size is %" PRIu64, rel, off, size);
	close(fa);
	close(fb);
}

static void cmp_time(const char *rel, const char *what, const struct timespec *a,
		     const struct timespec *b)
{
	bool sa = is_synthetic(a), sb = is_synthetic(b);
	if (sa || sb) {
		if (a->tv_sec != b->tv_sec || a->tv_nsec != b->tv_nsec)
			mismatch("%s: %s differs: A %lld.%09ld, B %lld.%09ld", rel, what,
				 (long long)a->tv_sec, a->tv_nsec, (long long)b->tv_sec,
				 b->tv_nsec);
		return;
	}
	long long d = (long long)a->tv_sec - (long long)b->tv_sec;
	if (d > MTIME_SLACK || d < -MTIME_SLACK)
		mismatch("%s: %s not the time of the same change: A %lld.%09ld, B %lld.%09ld", rel,
			 what, (long long)a->tv_sec, a->tv_nsec, (long long)b->tv_sec, b->tv_nsec);
}

static void cmp_entry(struct compare_ctx *c, const char *rel);

static void cmp_dir(struct compare_ctx *c, const char *rel)
{
	char pa[2 * PATH_MAX], pb[2 * PATH_MAX];
	size_t na, nb, i = 0, j = 0;
	snprintf(pa, sizeof(pa), "%s/%s", c->root[0], rel);
	snprintf(pb, sizeof(pb), "%s/%s", c->root[1], rel);
	char **va = list_dir(pa, &na), **vb = list_dir(pb, &nb);
	while (i < na || j < nb) {
		int d = i == na ? 1 : j == nb ? -1 : strcmp(va[i], vb[j]);
		if (d < 0)
			mismatch("%s%s%s: only in A", rel, *rel ? "/" : "", va[i]);
		if (d > 0)
			mismatch("%s%s%s: only in B", rel, *rel ? "/" : "", vb[j]);
		char sub[PATH_MAX];
		snprintf(sub, sizeof(sub), "%s%s%s", rel, *rel ? "/" : "", va[i]);
		cmp_entry(c, sub);
		i++;
		j++;
	}
	free_list(va, na);
	free_list(vb, nb);
}

static void cmp_entry(struct compare_ctx *c, const char *rel)
{
	char pa[2 * PATH_MAX], pb[2 * PATH_MAX];
	struct stat a, b;
	snprintf(pa, sizeof(pa), "%s/%s", c->root[0], rel);
	snprintf(pb, sizeof(pb), "%s/%s", c->root[1], rel);
	if (lstat(pa, &a) < 0 || lstat(pb, &b) < 0)
		mismatch("%s: lstat: %s", rel, strerror(errno));
	if ((a.st_mode & S_IFMT) != (b.st_mode & S_IFMT))
		mismatch("%s: types differ: A %06o, B %06o", rel, (unsigned)a.st_mode,
			 (unsigned)b.st_mode);
	if (a.st_mode != b.st_mode)
		mismatch("%s: modes differ: A %04o, B %04o", rel, (unsigned)(a.st_mode & 07777),
			 (unsigned)(b.st_mode & 07777));
	if (a.st_uid != b.st_uid || a.st_gid != b.st_gid)
		mismatch("%s: owners differ: A %u:%u, B %u:%u", rel, (unsigned)a.st_uid,
			 (unsigned)a.st_gid, (unsigned)b.st_uid, (unsigned)b.st_gid);
	if (a.st_nlink != b.st_nlink)
		mismatch("%s: link counts differ: A %lu, B %lu", rel, (unsigned long)a.st_nlink,
			 (unsigned long)b.st_nlink);
	if ((S_ISCHR(a.st_mode) || S_ISBLK(a.st_mode)) && a.st_rdev != b.st_rdev)
		mismatch("%s: device numbers differ: A %u:%u, B %u:%u", rel, major(a.st_rdev),
			 minor(a.st_rdev), major(b.st_rdev), minor(b.st_rdev));
	if (!S_ISDIR(a.st_mode) && a.st_size != b.st_size)
		mismatch("%s: sizes differ: A %lld, B %lld", rel, (long long)a.st_size,
			 (long long)b.st_size);
	cmp_time(rel, "mtime", &a.st_mtim, &b.st_mtim);
	if (!S_ISDIR(a.st_mode) && a.st_nlink > 1) {
		const char *fa = ino_first(c, 0, &a, rel), *fb = ino_first(c, 1, &b, rel);
		if (strcmp(fa, fb))
			mismatch("%s: hard links differ: A is the inode of %s, B of %s", rel, fa,
				 fb);
	}
	if (S_ISLNK(a.st_mode)) {
		char ta[TARGET_LEN + 8], tb[TARGET_LEN + 8];
		ssize_t ka = readlink(pa, ta, sizeof(ta)), kb = readlink(pb, tb, sizeof(tb));
		if (ka < 0 || kb < 0 || ka != kb || memcmp(ta, tb, (size_t)ka))
			mismatch("%s: symlink targets differ: A \"%.*s\" (%zd), B \"%.*s\" (%zd)",
				 rel, (int)MIN(ka, 80), ta, ka, (int)MIN(kb, 80), tb, kb);
		return;
	}
	if (have_xattr)
		cmp_xattrs(pa, pb, rel);
	cmp_acl(pa, pb, rel, ACL_NAME_ACCESS);
	if (S_ISDIR(a.st_mode))
		cmp_acl(pa, pb, rel, ACL_NAME_DEFAULT);
	if (S_ISREG(a.st_mode)) {
		c->files++;
		cmp_contents(c, pa, pb, rel, (uint64_t)a.st_size);
	} else if (S_ISDIR(a.st_mode))
		cmp_dir(c, rel);
}

static void compare_trees(const char *a, const char *b, bool direct)
{
	struct compare_ctx c = {.root = {a, b}, .direct = direct};
	cmp_dir(&c, "");
	for (int s = 0; s < 2; s++) {
		for (size_t k = 0; k < c.nmap[s]; k++)
			free(c.map[s][k].path);
		free(c.map[s]);
	}
	if (verbose)
		printf("compared: %" PRIu64 " files, %" PRIu64 " bytes%s\n", c.files, c.bytes,
		       direct ? " (O_DIRECT)" : "");
}

/* ---- setup ------------------------------------------------------------------------------ */

/* renameat2 flags and user xattrs: supported on both sides, or used on neither. */
static void probe(struct side *sides)
{
	static const char *const p1 = ".exerciser-probe-1", *const p2 = ".exerciser-probe-2";
	bool nore[2], exch[2], xattr[2], punch[2], zero[2], acl[2];
	for (int k = 0; k < 2; k++) {
		struct side *s = &sides[k];
		char p[PATH_MAX];
		for (int i = 0; i < 2; i++) {
			int fd =
				openat(s->dirfd, i ? p2 : p1, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
			if (fd < 0) {
				fprintf(stderr, "exerciser: cannot create a probe file in %s: %s\n",
					s->root, strerror(errno));
				exit(99);
			}
			close(fd);
		}
		nore[k] = renameat2(s->dirfd, p1, s->dirfd, p2, RENAME_NOREPLACE) == 0 ||
			  (errno != EINVAL && errno != ENOSYS);
		exch[k] = renameat2(s->dirfd, p1, s->dirfd, p2, RENAME_EXCHANGE) == 0 ||
			  (errno != EINVAL && errno != ENOSYS);
		path_of(s, p1, p, sizeof(p));
		xattr[k] = setxattr(p, "user.probe", "1", 1, 0) == 0 ||
			   (errno != ENOTSUP && errno != EOPNOTSUPP);
		{
			struct op ao = {.flags = ACL_USERS, .dseed = 1};
			uint8_t v[64];
			acl[k] = setxattr(p, ACL_NAME_ACCESS, v, acl_build(&ao, v), 0) == 0;
		}
		int fd = open(p, O_RDWR | O_DIRECT | O_CLOEXEC);
		s->direct_ok = fd >= 0;
		if (fd >= 0)
			close(fd);
		fd = open(p, O_RDWR | O_CLOEXEC);
		if (fd < 0 || ftruncate(fd, 65536) < 0) {
			fprintf(stderr, "exerciser: probe file %s: %s\n", p, strerror(errno));
			exit(99);
		}
		punch[k] = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096) == 0;
		zero[k] = fallocate(fd, FALLOC_FL_ZERO_RANGE, 0, 4096) == 0;
		close(fd);
		unlinkat(s->dirfd, p1, 0);
		unlinkat(s->dirfd, p2, 0);
	}
	have_noreplace = nore[0] && nore[1];
	have_exchange = exch[0] && exch[1];
	have_xattr = xattr[0] && xattr[1];
	have_direct = sides[0].direct_ok && sides[1].direct_ok;
	have_acl = acl[0] && acl[1];
	if (!have_acl)
		fprintf(stderr, "exerciser: POSIX ACLs unsupported (A %d, B %d): skipped\n", acl[0],
			acl[1]);
	have_punch = punch[0] && punch[1];
	have_zero = zero[0] && zero[1];
	if (!have_punch)
		fprintf(stderr,
			"exerciser: FALLOC_FL_PUNCH_HOLE unsupported (A %d, B %d): skipped\n",
			punch[0], punch[1]);
	if (!have_zero)
		fprintf(stderr,
			"exerciser: FALLOC_FL_ZERO_RANGE unsupported (A %d, B %d): skipped\n",
			zero[0], zero[1]);
	if (!have_noreplace)
		fprintf(stderr, "exerciser: RENAME_NOREPLACE unsupported (A %d, B %d): skipped\n",
			nore[0], nore[1]);
	if (!have_exchange)
		fprintf(stderr, "exerciser: RENAME_EXCHANGE unsupported (A %d, B %d): skipped\n",
			exch[0], exch[1]);
	if (!have_xattr)
		fprintf(stderr, "exerciser: user xattrs unsupported (A %d, B %d): skipped\n",
			xattr[0], xattr[1]);
}

static void open_side(struct side *s, const char *root)
{
	s->root = root;
	s->dirfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0) {
		fprintf(stderr, "exerciser: %s: %s\n", root, strerror(errno));
		exit(99);
	}
	for (int k = 0; k < NSLOTS; k++)
		s->slot[k] = -1;
}

/*
 * Before a full compare: close every file both sides hold open, let `cmd` (through sh)
 * remount side B's file system, and open B's tree again. The compare after it then sees
 * what the file system stored, not what the kernel's caches remembered.
 */
static void remount(struct side *sides, const char *cmd)
{
	int r;
	for (int k = 0; k < 2; k++)
		for (int j = 0; j < NSLOTS; j++)
			if (sides[k].slot[j] >= 0) {
				close(sides[k].slot[j]);
				sides[k].slot[j] = -1;
			}
	close(sides[1].dirfd);
	fflush(stdout);
	r = system(cmd);
	if (r != 0) {
		fprintf(stderr, "exerciser: %s, remount command failed (status %d): %s\n", context,
			r, cmd);
		exit(99);
	}
	open_side(&sides[1], sides[1].root);
}

/* "3,10-20,45": which operation indices to run (all when no list is given). */
static bool *parse_list(const char *list, uint64_t nops)
{
	bool *v = calloc(nops ? nops : 1, 1);
	const char *p = list;
	if (!v)
		exit(99);
	while (*p) {
		char *end;
		unsigned long long a = strtoull(p, &end, 10), b = a;
		if (end == p)
			goto bad;
		if (*end == '-') {
			p = end + 1;
			b = strtoull(p, &end, 10);
			if (end == p)
				goto bad;
		}
		for (unsigned long long i = a; i <= b && i < nops; i++)
			v[i] = true;
		p = *end == ',' ? end + 1 : end;
		if (*end && *end != ',')
			goto bad;
	}
	return v;
bad:
	free(v);
	return NULL;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: exerciser [-v] [-t] [-k K] [-o LIST] [-R CMD] SEED NOPS DIR_A DIR_B\n"
		"       exerciser [-v] --compare DIR_A DIR_B\n"
		"Run NOPS seeded random operations on two trees, comparing every result and,\n"
		"every K operations (default %d) and at the end, the whole trees.\n"
		"  -o LIST   run only these operation indices (\"3,10-20\"): the same ops\n"
		"  -v        print every operation and its result\n"
		"  -t        print the time spent per kind of operation and side\n"
		"  -R CMD    before each full compare, close all files and run CMD (sh -c)\n"
		"            to remount DIR_B's file system\n"
		"Exit status: 0 the trees agree, 1 a mismatch, 2 usage, 99 internal error.\n",
		DEFAULT_K);
}

int main(int argc, char **argv)
{
	struct side sides[2];
	const char *list = NULL, *remount_cmd = NULL;
	bool compare_only = false, *sel = NULL;
	unsigned long k_every = DEFAULT_K;
	uint64_t nops = 0, done = 0, s;
	double spent[2][ELEMENTSOF(op_table)] = {{0}}, compare_spent = 0;
	int i = 1;
	char *end;

	for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
		if (!strcmp(argv[i], "-v"))
			verbose = true;
		else if (!strcmp(argv[i], "-t"))
			timing = true;
		else if (!strcmp(argv[i], "-k") && i + 1 < argc)
			k_every = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "-o") && i + 1 < argc)
			list = argv[++i];
		else if (!strcmp(argv[i], "-R") && i + 1 < argc)
			remount_cmd = argv[++i];
		else if (!strcmp(argv[i], "--compare"))
			compare_only = true;
		else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (argc - i != (compare_only ? 2 : 4)) {
		usage(stderr);
		return 2;
	}
	/* What a replay needs besides the seed: the same compare points, subset and remounts. */
	if (k_every != DEFAULT_K)
		snprintf(replay_opts, sizeof(replay_opts), " -k %lu", k_every);
	if (list)
		snprintf(replay_opts + strlen(replay_opts),
			 sizeof(replay_opts) - strlen(replay_opts), " -o %s", list);
	if (remount_cmd)
		snprintf(replay_opts + strlen(replay_opts),
			 sizeof(replay_opts) - strlen(replay_opts), " -R '%s'", remount_cmd);
	if (!compare_only) {
		cur_seed = strtoull(argv[i], &end, 0);
		if (*end || !argv[i][0]) {
			usage(stderr);
			return 2;
		}
		nops = strtoull(argv[i + 1], &end, 0);
		if (*end || !argv[i + 1][0]) {
			usage(stderr);
			return 2;
		}
		if (list && !(sel = parse_list(list, nops))) {
			fprintf(stderr, "exerciser: bad operation list '%s'\n", list);
			return 2;
		}
		i += 2;
	}
	umask(022);
	open_side(&sides[0], argv[i]);
	open_side(&sides[1], argv[i + 1]);
	if (!compare_only)
		probe(sides); /* writes probe files; a compare must leave the trees alone */

	snprintf(context, sizeof(context), "comparing the trees before any operation");
	if (compare_only) {
		snprintf(context, sizeof(context), "comparing %s and %s", argv[i], argv[i + 1]);
		compare_trees(argv[i], argv[i + 1], false);
		compare_trees(argv[i], argv[i + 1], true);
		printf("exerciser: %s and %s agree\n", argv[i], argv[i + 1]);
		return 0;
	}
	compare_trees(argv[i], argv[i + 1], false);

	wbuf = xmalloc_aligned(MAX_WRITE);
	rbuf = xmalloc_aligned(MAX_WRITE);
	for (int k = 0; k < LIB_BLOBS; k++) {
		library[k] = xmalloc_aligned(LIB_SIZE);
		s = 0xca1e5eedull + (uint64_t)k;
		for (size_t j = 0; j < LIB_SIZE; j += 8) {
			uint64_t w = splitmix(&s);
			memcpy(library[k] + j, &w, 8);
		}
	}

	for (uint64_t idx = 0; idx < nops; idx++) {
		double t0, t1;
		struct op o;
		struct result ra, rb;
		char da[512], db[512];
		if (sel && !sel[idx])
			continue;
		gen_op(cur_seed, idx, &o);
		describe(&o, cur_desc, sizeof(cur_desc));
		snprintf(context, sizeof(context), "seed %" PRIu64 ", op %" PRIu64 ": %s", cur_seed,
			 idx, cur_desc);
		last_index = (long long)idx;
		if (o.kind == OP_PAUSE)
			usleep(1200 * 1000); /* cairn flushes a file 1 s after its last close */
		t0 = now_s();
		op_run(&sides[0], &o, &ra);
		t1 = now_s();
		op_run(&sides[1], &o, &rb);
		spent[0][o.kind] += t1 - t0;
		spent[1][o.kind] += now_s() - t1;
		describe_result(&ra, da, sizeof(da));
		describe_result(&rb, db, sizeof(db));
		if (verbose)
			printf("%" PRIu64 ": %s\n    A: %s\n    B: %s\n", idx, cur_desc, da, db);
		if (!results_equal(&ra, &rb))
			mismatch("results differ\n  A: %s\n  B: %s", da, db);
		done++;
		if (k_every && done % k_every == 0) {
			snprintf(context, sizeof(context),
				 "seed %" PRIu64 ", full compare after op %" PRIu64 " (%s)",
				 cur_seed, idx, cur_desc);
			t0 = now_s();
			if (remount_cmd)
				remount(sides, remount_cmd);
			compare_trees(argv[i], argv[i + 1], (done / k_every) % 2 == 0);
			compare_spent += now_s() - t0;
		}
	}
	for (int k = 0; k < 2; k++)
		for (int j = 0; j < NSLOTS; j++)
			if (sides[k].slot[j] >= 0)
				close(sides[k].slot[j]);
	snprintf(context, sizeof(context), "seed %" PRIu64 ", final compare after op %lld",
		 cur_seed, last_index);
	compare_trees(argv[i], argv[i + 1], false);
	if (remount_cmd) {
		remount(sides, remount_cmd);
		snprintf(context, sizeof(context),
			 "seed %" PRIu64 ", final compare after op %lld and a remount", cur_seed,
			 last_index);
		compare_trees(argv[i], argv[i + 1], true);
	}
	printf("exerciser: seed %" PRIu64 ": %" PRIu64 " operations, the trees agree\n", cur_seed,
	       done);
	if (timing) {
		printf("%-24s %8s %8s (seconds)\n", "", "A", "B");
		for (size_t k = 0; k < ELEMENTSOF(op_table); k++)
			printf("%-24s %8.3f %8.3f\n", op_table[k].name, spent[0][k], spent[1][k]);
		printf("%-24s %8.3f\n", "full compares", compare_spent);
	}
	free(sel);
	return 0;
}
