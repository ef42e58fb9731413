/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * An LD_PRELOAD library for crash-power.sh: it keeps, for every file in a directory named
 * "staging" under POWERCUT_DIR, a copy of the file as it was at its last successful fsync or
 * fdatasync, so that a test can put the directory back the way a power cut would leave it
 * (what was never synced is gone). Environment: POWERCUT_DIR, an absolute path as
 * /proc/self/fd shows it; POWERCUT_SHADOW, where the copies go, by file name. While the file
 * POWERCUT_EIO names exists, syncs of those files fail with EIO instead, as after a failed
 * write-back.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Copy fd's contents to the shadow of name, through a temporary name. */
static void shadow(int fd, const char *name)
{
	const char *dir = getenv("POWERCUT_SHADOW");
	char tmp[PATH_MAX], to[PATH_MAX];
	char buf[16384]; /* on the stack: nothing for LeakSanitizer to find at exit */
	struct stat st;

	if (!dir || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return;
	snprintf(tmp, sizeof(tmp), "%s/.tmp.%d", dir, gettid());
	snprintf(to, sizeof(to), "%s/%s", dir, name);
	int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0)
		return;
	off_t off = 0;
	ssize_t n;
	while ((n = pread(fd, buf, sizeof(buf), off)) > 0) {
		if (write(out, buf, (size_t)n) != n)
			break;
		off += n;
	}
	close(out);
	if (n == 0)
		rename(tmp, to);
	else
		unlink(tmp);
}

/* The name of fd if it is a file in a staging directory under POWERCUT_DIR, else NULL. */
static const char *staging_name(int fd, char *path, size_t size)
{
	const char *dir = getenv("POWERCUT_DIR");
	char link[64];

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = dir ? readlink(link, path, size - 1) : -1;
	if (n <= 0)
		return NULL;
	path[n] = '\0';
	char *name = strrchr(path, '/');
	size_t len = strlen(dir);
	if (strncmp(path, dir, len) || path[len] != '/' || name - path < 8 ||
	    strncmp(name - 8, "/staging", 8))
		return NULL;
	return name + 1;
}

/* Sync fd with real(), or fail as POWERCUT_EIO says; shadow what was synced. */
static int sync_as_told(int fd, int (*real)(int))
{
	char path[PATH_MAX];
	int saved = errno;
	const char *name = staging_name(fd, path, sizeof(path));
	const char *eio = getenv("POWERCUT_EIO");

	if (name && eio && access(eio, F_OK) == 0) {
		errno = EIO;
		return -1;
	}
	errno = saved;
	int r = real(fd);
	if (r == 0 && name) {
		shadow(fd, name);
		errno = saved;
	}
	return r;
}

int fsync(int fd)
{
	static int (*real)(int);
	if (!real)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
	return sync_as_told(fd, real);
}

int fdatasync(int fd)
{
	static int (*real)(int);
	if (!real)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	return sync_as_told(fd, real);
}
