/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Shared pieces of the command-line front ends: opening a repository location, getting the
 * passphrase (CAIRN_PASSPHRASE, --passphrase-file, or a prompt on the terminal), and the
 * exit codes.
 *
 * Exit codes of every tool: 0 success, 1 failure (the cause is printed on stderr as one line
 * per problem, naming the object), 2 usage error.
 */
#pragma once

#include "backend.h"
#include "keys.h"

#define EXIT_OK 0
#define EXIT_FAIL 1
#define EXIT_USAGE 2

#define PASSPHRASE_MAX 1024

/* Informational messages on a terminal only: under cron, a tool prints only problems. */
void tool_init_logging(void);

/* Open "/path", "./path" or "file:///path" as a local directory backend. */
int tool_open_backend(const char *location, bool create, struct backend **ret);

/*
 * Get the passphrase into out (NUL-terminated). Sources, in order: the file (first line),
 * $CAIRN_PASSPHRASE, a prompt on /dev/tty (twice when confirm is set). Returns 0, -ENOENT
 * (no source available: not on a terminal), -EINVAL (empty, or the two entries differ),
 * or -errno reading the file.
 */
int tool_passphrase(const char *file, bool confirm, char out[PASSPHRASE_MAX]);

/* The KDF strength from --kdf or $CAIRN_KDF, default moderate. */
int tool_kdf(const char *arg, enum kdf_strength *ret);

/* Parse "64M", "1G", "4096" into bytes (binary units). Returns 0 or -EINVAL. */
int tool_parse_size(const char *s, uint64_t *ret);

struct store;
/* Open a repository: location, passphrase (see tool_passphrase, used only when the
 * repository is encrypted), cache directory (NULL: default). Errors are printed. */
int tool_open_store(const char *location, const char *passphrase_file, const char *cache_dir,
		    bool read_only, struct store **ret);
/* The same, with the writer's options (break another writer's lock; uploads in flight). */
int tool_open_store_ex(const char *location, const char *passphrase_file, const char *cache_dir,
		       bool read_only, bool break_lock, unsigned upload_threads,
		       struct store **ret);

/* Whether path is the mount point of a cairn filesystem (per /proc/self/mountinfo). */
bool tool_is_cairn_mount(const char *path);

/*
 * The target of the snapshot commands: a cairn mount point, whose daemon does the work under
 * its lock (requests are setxattr calls on the mount root), or else a repository location,
 * opened here as a mount would open it: its lock taken (a mounted repository is refused),
 * its working tree opened from the local cache (or rebuilt from the latest commit), the
 * request handled by the same code the daemon runs, and the last checkpoint written on close.
 * TOOL_TARGET_READ opens a repository read-only, without the lock or the working tree.
 */
enum tool_target_mode { TOOL_TARGET_READ, TOOL_TARGET_WRITE };
struct tool_target_options {
	const char *passphrase_file, *cache_dir;
};
/* Long options every such command takes; tool_target_option() consumes them (returns 1). */
#define TOOL_OPT_PASSPHRASE_FILE 0x1001
#define TOOL_OPT_CACHE_DIR 0x1002
#define TOOL_TARGET_LONG_OPTIONS                                                                   \
	{"passphrase-file", required_argument, NULL, TOOL_OPT_PASSPHRASE_FILE},                    \
	{                                                                                          \
		"cache-dir", required_argument, NULL, TOOL_OPT_CACHE_DIR                           \
	}
#define TOOL_TARGET_USAGE                                                                          \
	"TARGET is a cairn mount point, or a repository that is not mounted (opened here,\n"       \
	"with its lock; --passphrase-file FILE and --cache-dir DIR as for mount.cairn).\n"
struct tool_target {
	const char *tool, *where;
	const char *mnt;     /* set when TARGET is a mount point */
	bool requested;	     /* a request was sent to it */
	struct store *store; /* else these */
	struct fs *fs;	     /* TOOL_TARGET_WRITE only */
};
int tool_target_option(int c, const char *arg, struct tool_target_options *o);
/* Errors are printed. Returns 0 or -errno. */
int tool_target_open(const char *tool, const char *where, const struct tool_target_options *o,
		     enum tool_target_mode mode, struct tool_target *ret);
/* Send request name = value (user.cairn.snapshot, .rotate, .forget; see fs/fsops.c).
 * Returns 0 or the request's -errno (the cause is in the mount's log, or on stderr). */
int tool_target_request(struct tool_target *t, const char *name, const void *value, size_t len);
/* Close: on a mount, wait until the names changed by our requests are in effect for every
 * process; on a repository, the last checkpoint, the lock released. Errors are printed. */
int tool_target_close(struct tool_target *t);

/* The snapshots (names, times, hosts; roots only for a repository target). Errors are
 * printed. Returns 0 or -errno. */
struct commit;
int tool_snapshot_list(struct tool_target *t, struct commit *ret);
/* A time as local "YYYY-MM-DD HH:MM:SS +zone". */
void tool_format_time(uint64_t ns, char *out, size_t len);

/* Commands. argv[0] is the command name. */
int cmd_mkfs(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_mount(int argc, char **argv);
int cmd_umount(int argc, char **argv);
int cmd_checkpoint(int argc, char **argv);
int cmd_snapshot(int argc, char **argv);
int cmd_rotate(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_forget(int argc, char **argv);
int cmd_diff(int argc, char **argv);
