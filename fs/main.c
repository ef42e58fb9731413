/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The FUSE session of a mount: create it, mount, serve with a multi-threaded loop, and on
 * unmount close the working tree (final checkpoint) before the process ends. The setup and
 * teardown ladder follows libfuse's low-level examples.
 *
 * Daemonizing: the store and the working tree run threads, and threads do not survive
 * fork(). So the front end forks first (fs_daemon_start), the child does all the work and
 * tells the waiting parent through a pipe whether the mount is up; the parent exits with
 * that status. Errors before that point still reach the user's terminal.
 */
#define FUSE_USE_VERSION 314
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <stdio.h>

#include "fs_internal.h"
#include "fs_main.h"
#include "fuse_ops.h"
#include "uring.h"

static int notify_fd = -1;

int fs_daemon_start(void)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		char status = 1;
		close(p[1]);
		/* EOF without a status byte: the child died before it could say. */
		if (read(p[0], &status, 1) != 1)
			status = 1;
		_exit(status);
	}
	close(p[0]);
	notify_fd = p[1];
	setsid();
	return 0;
}

void fs_daemon_ready(int status)
{
	if (notify_fd < 0)
		return;
	char c = (char)status;
	if (write(notify_fd, &c, 1) < 0) {
		/* the parent is gone; nothing to tell */
	}
	close(notify_fd);
	notify_fd = -1;
	if (status == 0) {
		/* Detach from the terminal: from here on, messages go to the log file. */
		int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (fd >= 0) {
			dup2(fd, STDIN_FILENO);
			dup2(fd, STDOUT_FILENO);
			close(fd);
		}
	}
}

/* Bigger kernel read-ahead: 128 KiB requests cost a round trip each (measured: +40-90 %
 * read speed at 1 MiB). Best effort: the sysfs knob may not be writable. The device number
 * comes from mountinfo: a stat() of our own mount point before the loop runs would wait
 * for ourselves forever. */
static void raise_readahead(const char *mountpoint)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096], path[128], mnt[4096];
	unsigned maj = 0, min = 0;
	bool found = false;
	while (f && !found && fgets(line, sizeof(line), f))
		found = sscanf(line, "%*u %*u %u:%u %*s %4095s", &maj, &min, mnt) == 3 &&
			!strcmp(mnt, mountpoint);
	if (f)
		fclose(f);
	if (!found)
		return;
	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb", maj, min);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (write(fd, "1024", 4) < 0)
		log_debug("%s: %s", path, strerror(errno));
	close(fd);
}

int fs_serve_session(struct fuse_session *se, const char *mountpoint, const char *source,
		     bool no_uring)
{
	if (fuse_set_signal_handlers(se) != 0)
		return -EIO;
	int r = 0;
	if (fuse_session_mount(se, mountpoint) != 0) {
		r = log_error_errno(-EIO,
				    "%s: mount failed (is /dev/fuse usable and fuse3 installed?)",
				    mountpoint);
		goto out_signals;
	}
	int u = no_uring ? 0 : fs_uring_attach(se);
	if (u < 0)
		log_info("FUSE requests stay on /dev/fuse: %s", strerror(-u));
	raise_readahead(mountpoint);
	fs_daemon_ready(0);
	log_info("mounted %s on %s", source, mountpoint);

	struct fuse_loop_config *lc = fuse_loop_cfg_create();
	if (!lc) {
		r = -ENOMEM;
		goto out_unmount;
	}
	fuse_loop_cfg_set_clone_fd(lc, 0);
	fuse_loop_cfg_set_max_threads(lc, 16);
	fuse_loop_cfg_set_idle_threads(lc, 8);
	r = fuse_session_loop_mt(se, lc);
	fuse_loop_cfg_destroy(lc);
	if (r > 0)
		r = 0; /* a signal ended the loop: a normal unmount */
	else if (r < 0)
		log_error("FUSE loop: %s", strerror(-r));
out_unmount:
	fuse_session_unmount(se);
	fs_uring_stop();
out_signals:
	fuse_remove_signal_handlers(se);
	return r;
}

int fs_serve(struct store *s, const struct fs_mount_options *o)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_session *se = NULL;
	struct fs *fs = NULL;
	char fsname[4200];
	int r;

	snprintf(fsname, sizeof(fsname), "-ofsname=cairn:%s,subtype=cairn,default_permissions%s",
		 o->source, o->allow_other ? ",allow_other" : "");
	if (fuse_opt_add_arg(&args, "mount.cairn") || fuse_opt_add_arg(&args, fsname) ||
	    (o->debug && fuse_opt_add_arg(&args, "-d"))) {
		r = -ENOMEM;
		goto out;
	}
	r = fs_open(s, &o->fs, &fs);
	if (r < 0)
		goto out;
	se = fuse_session_new(&args, &cairn_fuse_ops, sizeof(cairn_fuse_ops), fs);
	if (!se) {
		r = log_error_errno(-EIO, "could not create the FUSE session");
		goto out_fs;
	}
	cairn_fuse_ops_set_session(se);
	r = fs_serve_session(se, o->mountpoint, o->source, o->no_uring);
	if (r >= 0)
		log_info("unmounted %s: writing the last checkpoint", o->mountpoint);
	fuse_session_destroy(se);
out_fs:;
	int k = fs_close(fs);
	if (r >= 0)
		r = k;
out:
	fuse_opt_free_args(&args);
	return r;
}
