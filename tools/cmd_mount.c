/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * `mount.cairn REPO MOUNTPOINT [-o OPTIONS] [-f]` (also `cairn mount`, and so `mount -t
 * cairn` and fstab), and `cairn umount MOUNTPOINT`, which waits until the daemon has stored
 * every dirty byte and written the last checkpoint.
 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>

#include "fs_main.h"
#include "store.h"
#include "tool.h"

#define XATTR_PID "user.cairn.pid"
#define XATTR_CACHE "user.cairn.cachedir"

static void mount_usage(FILE *f)
{
	fprintf(f, "Usage: mount.cairn REPOSITORY MOUNTPOINT [-o OPTION[,OPTION...]] [-f] [-d]\n"
		   "Mount a cairn repository; write into MOUNTPOINT/current/.\n\n"
		   "  -f                       stay in the foreground\n"
		   "  -d                       FUSE debug output (implies -f)\n"
		   "Options (-o):\n"
		   "  cachedir=DIR             local cache (default /var/cache/cairn, or\n"
		   "                           $XDG_CACHE_HOME/cairn)\n"
		   "  cachesize=SIZE           in-memory cache of decoded chunks (default 64M)\n"
		   "  upload_threads=N         uploads in flight (default 2)\n"
		   "  checkpoint_interval=SEC  commit the working tree this often (default 300)\n"
		   "  passphrase_file=FILE     else $CAIRN_PASSPHRASE, else a terminal prompt\n"
		   "  allow_other              let other users see the mount\n"
		   "  nouring                  FUSE requests over /dev/fuse even where the kernel\n"
		   "                           offers io_uring (fuse module enable_uring=Y)\n"
		   "  break_lock               break another writer's lock (only if it is gone!)\n"
		   "Exit status: 0 mounted, 1 failed, 2 usage error.\n");
}

struct mount_args {
	const char *repo, *mountpoint, *cachedir, *passphrase_file;
	bool foreground, break_lock;
	unsigned upload_threads;
	struct fs_mount_options fm;
};

static int parse_option(struct mount_args *a, char *opt)
{
	char *v = strchr(opt, '=');
	uint64_t n;
	if (v)
		*v++ = 0;
	if (!strcmp(opt, "cachedir") && v)
		a->cachedir = v;
	else if (!strcmp(opt, "passphrase_file") && v)
		a->passphrase_file = v;
	else if (!strcmp(opt, "cachesize") && v && tool_parse_size(v, &n) == 0)
		a->fm.fs.read_cache_bytes = n;
	else if (!strcmp(opt, "upload_threads") && v && tool_parse_size(v, &n) == 0 && n && n <= 64)
		a->upload_threads = (unsigned)n;
	else if (!strcmp(opt, "checkpoint_interval") && v && tool_parse_size(v, &n) == 0 && n &&
		 n < 1000000)
		a->fm.fs.checkpoint_interval = (unsigned)n;
	else if (!strcmp(opt, "allow_other") && !v)
		a->fm.allow_other = true;
	else if (!strcmp(opt, "nouring") && !v)
		a->fm.no_uring = true;
	else if (!strcmp(opt, "break_lock") && !v)
		a->break_lock = true;
	else if (!strcmp(opt, "debug") && !v)
		a->fm.debug = a->foreground = true;
	/* What mount(8) and fstab pass along; meaningless or implied here. */
	else if (!strcmp(opt, "rw") || !strcmp(opt, "defaults") || !strcmp(opt, "noauto") ||
		 !strcmp(opt, "auto") || !strcmp(opt, "user") || !strcmp(opt, "nouser") ||
		 !strcmp(opt, "_netdev") || !strcmp(opt, "nofail") || !strcmp(opt, "dev") ||
		 !strcmp(opt, "suid") || !strcmp(opt, "exec") || !strcmp(opt, "nodev") ||
		 !strcmp(opt, "nosuid") || !strcmp(opt, "noexec") || !strcmp(opt, "atime") ||
		 !strcmp(opt, "noatime") || !strcmp(opt, "relatime"))
		;
	else
		return -EINVAL;
	return 0;
}

static int parse_args(int argc, char **argv, struct mount_args *a)
{
	const char *pos[2];
	int npos = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-f"))
			a->foreground = true;
		else if (!strcmp(argv[i], "-d"))
			a->fm.debug = a->foreground = true;
		else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return 1;
		else if (!strcmp(argv[i], "-o") && i + 1 < argc) {
			char *list = argv[++i], *save = NULL;
			for (char *o = strtok_r(list, ",", &save); o;
			     o = strtok_r(NULL, ",", &save))
				if (parse_option(a, o) < 0) {
					fprintf(stderr,
						"mount.cairn: unknown or invalid option '%s'\n", o);
					return -EINVAL;
				}
		} else if (argv[i][0] == '-') {
			fprintf(stderr, "mount.cairn: unknown argument '%s'\n", argv[i]);
			return -EINVAL;
		} else if (npos < 2)
			pos[npos++] = argv[i];
		else
			return -EINVAL;
	}
	if (npos != 2)
		return -EINVAL;
	a->repo = pos[0];
	a->mountpoint = pos[1];
	return 0;
}

/* The mount point must be an empty directory: mounting over files would hide them. */
static int check_mountpoint(const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		fprintf(stderr, "mount.cairn: mount point %s: %s\n", path, strerror(errno));
		return -errno;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "mount.cairn: mount point %s is not a directory\n", path);
		return -ENOTDIR;
	}
	DIR *d = opendir(path);
	struct dirent *e;
	bool empty = true;
	while (d && (e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			empty = false;
	if (d)
		closedir(d);
	if (!empty) {
		fprintf(stderr, "mount.cairn: mount point %s is not empty\n", path);
		return -ENOTEMPTY;
	}
	return 0;
}

/* Messages of the daemon, once detached, go to <cache>/mount.log. */
static void redirect_log(struct store *s)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/mount.log", store_cache_dir(s));
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd >= 0) {
		dup2(fd, STDERR_FILENO);
		close(fd);
	}
}

static void write_status(const char *cache, int r)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/umount.status", cache);
	FILE *f = fopen(path, "we");
	if (f) {
		fprintf(f, "%d %s\n", r < 0 ? 1 : 0, r < 0 ? strerror(-r) : "ok");
		fclose(f);
	}
}

int cmd_mount(int argc, char **argv)
{
	struct mount_args a = {0};
	struct store *s;

	int r = parse_args(argc, argv, &a);
	if (r > 0) {
		mount_usage(stdout);
		return EXIT_OK;
	}
	if (r < 0) {
		mount_usage(stderr);
		return EXIT_USAGE;
	}
	if (check_mountpoint(a.mountpoint) < 0)
		return EXIT_FAIL;
	_cleanup_free_ char *mnt = realpath(a.mountpoint, NULL);
	if (!mnt)
		return EXIT_FAIL;
	/* cairn umount finds the daemon's outcome in the cache directory the mount point names,
	 * from whatever directory it runs in: the name must be absolute. */
	_cleanup_free_ char *cachedir = NULL;
	char cwd[PATH_MAX];
	if (a.cachedir && a.cachedir[0] != '/') {
		if (!getcwd(cwd, sizeof(cwd)) ||
		    asprintf(&cachedir, "%s/%s", cwd, a.cachedir) < 0) {
			fprintf(stderr, "mount.cairn: cache directory %s: %s\n", a.cachedir,
				strerror(errno));
			return EXIT_FAIL;
		}
		a.cachedir = cachedir;
	}
	a.fm.source = a.repo;
	a.fm.mountpoint = mnt;

	/* Fork before any thread starts; the parent exits with the child's word. */
	if (!a.foreground && fs_daemon_start() < 0) {
		fprintf(stderr, "mount.cairn: fork: %s\n", strerror(errno));
		return EXIT_FAIL;
	}
	r = tool_open_store_ex(a.repo, a.passphrase_file, a.cachedir, false, a.break_lock,
			       a.upload_threads, &s);
	if (r < 0) {
		fs_daemon_ready(1);
		return EXIT_FAIL;
	}
	if (!a.foreground) {
		redirect_log(s);
		log_set_max_level(LOG_INFO); /* the log file keeps the daemon's story */
	}
	/* cairn umount reads the outcome here once we are gone; never a stale one. */
	_cleanup_free_ char *cache = strdup(store_cache_dir(s));
	if (!cache) {
		fs_daemon_ready(1);
		store_close(s);
		return EXIT_FAIL;
	}
	char stale[4200];
	snprintf(stale, sizeof(stale), "%s/umount.status", cache);
	unlink(stale);
	r = fs_serve(s, &a.fm);
	if (r < 0)
		fs_daemon_ready(1);
	int k = store_close(s);
	if (r >= 0)
		r = k;
	if (r < 0)
		log_error("%s: %s", a.repo, strerror(-r));
	write_status(cache, r);
	return r < 0 ? EXIT_FAIL : EXIT_OK;
}

/* The control attributes mean something only on a cairn mount point; a plain directory
 * would happily store them. Ask the kernel's mount table. */
bool tool_is_cairn_mount(const char *path)
{
	_cleanup_free_ char *real = realpath(path, NULL);
	char line[8192], mnt[4096], type[64];
	bool found = false;
	FILE *f = fopen("/proc/self/mountinfo", "re");
	while (real && f && !found && fgets(line, sizeof(line), f)) {
		/* "id parent maj:min root mountpoint options... - type source superopts" */
		const char *dash = strstr(line, " - ");
		found = dash && sscanf(line, "%*u %*u %*s %*s %4095s", mnt) == 1 &&
			sscanf(dash + 3, "%63s", type) == 1 && !strcmp(type, "fuse.cairn") &&
			!strcmp(mnt, real);
	}
	if (f)
		fclose(f);
	return found;
}

static void umount_usage(FILE *f)
{
	fprintf(f, "Usage: cairn umount MOUNTPOINT\n"
		   "Unmount, and wait until every dirty byte is stored and committed.\n"
		   "Exit status: 0 all stored, 1 failed (the cause is printed), 2 usage error.\n");
}

int cmd_umount(int argc, char **argv)
{
	char pidtext[32] = "", cache[4096] = "";
	if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		umount_usage(stdout);
		return EXIT_OK;
	}
	if (argc != 2) {
		umount_usage(stderr);
		return EXIT_USAGE;
	}
	const char *mnt = argv[1];
	ssize_t n = -1, m = -1;
	if (tool_is_cairn_mount(mnt)) {
		n = getxattr(mnt, XATTR_PID, pidtext, sizeof(pidtext) - 1);
		m = getxattr(mnt, XATTR_CACHE, cache, sizeof(cache) - 1);
	}
	if (n <= 0 || m <= 0) {
		fprintf(stderr, "cairn umount: %s is not a cairn mount\n", mnt);
		return EXIT_FAIL;
	}
	pidtext[n] = 0;
	cache[m] = 0;
	pid_t pid = (pid_t)atol(pidtext);
	pid_t child = fork();
	if (child == 0) {
		execlp("fusermount3", "fusermount3", "-u", mnt, (char *)NULL);
		_exit(127);
	}
	int st;
	if (child < 0 || waitpid(child, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) {
		fprintf(stderr, "cairn umount: %s: unmounting failed (busy?)\n", mnt);
		return EXIT_FAIL;
	}
	bool tty = isatty(STDERR_FILENO);
	uint64_t t0 = now_ns();
	/* A pidfd wakes us the moment the daemon ends (Linux 5.3+); without one, look every
	 * 10 ms. (It used to be every 100 ms: a tenth of a second on every unmount.) */
	int pidfd = -1;
#ifdef SYS_pidfd_open
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
#endif
	while (process_running(pid)) {
		if (tty && now_ns() - t0 > 2000000000ull) {
			fprintf(stderr, "\rcairn umount: storing the last changes... %" PRIu64 " s",
				(uint64_t)((now_ns() - t0) / 1000000000u));
		}
		struct pollfd p = {.fd = pidfd, .events = POLLIN};
		struct timespec ts = {0, 10000000};
		if (pidfd < 0 || poll(&p, 1, 1000) < 0)
			nanosleep(&ts, NULL);
	}
	if (pidfd >= 0)
		close(pidfd);
	if (tty && now_ns() - t0 > 2000000000ull)
		fprintf(stderr, "\n");
	char path[4200], status[256] = "";
	snprintf(path, sizeof(path), "%s/umount.status", cache);
	FILE *f = fopen(path, "re");
	if (!f || !fgets(status, sizeof(status), f)) {
		if (f)
			fclose(f);
		fprintf(stderr,
			"cairn umount: the daemon ended without a status; see %s/mount.log\n",
			cache);
		return EXIT_FAIL;
	}
	fclose(f);
	if (status[0] != '0') {
		status[strcspn(status, "\n")] = 0;
		fprintf(stderr, "cairn umount: the last checkpoint failed (%s); see %s/mount.log\n",
			status + 2, cache);
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

int cmd_checkpoint(int argc, char **argv)
{
	if (argc != 2 || argv[1][0] == '-') {
		bool help = argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"));
		fprintf(help ? stdout : stderr,
			"Usage: cairn checkpoint MOUNTPOINT\n"
			"Store every dirty byte and commit the working tree now.\n"
			"Exit status: 0 committed, 1 failed, 2 usage error.\n");
		return help ? EXIT_OK : EXIT_USAGE;
	}
	if (!tool_is_cairn_mount(argv[1])) {
		fprintf(stderr, "cairn checkpoint: %s is not a cairn mount point\n", argv[1]);
		return EXIT_FAIL;
	}
	if (setxattr(argv[1], "user.cairn.checkpoint", "1", 1, 0) < 0) {
		fprintf(stderr, "cairn checkpoint: %s: %s (see the mount's log)\n", argv[1],
			strerror(errno));
		return EXIT_FAIL;
	}
	return EXIT_OK;
}
