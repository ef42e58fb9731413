/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Passphrase input, location parsing and small parsers shared by the tools (see tool.h). */
#include "tool.h"

#include "store.h"

#include <fcntl.h>
#include <stdio.h>
#include <termios.h>

void tool_init_logging(void)
{
	log_set_max_level(isatty(STDERR_FILENO) ? LOG_INFO : LOG_WARNING);
}

int tool_open_backend(const char *location, bool create, struct backend **ret)
{
	const char *path = location;
	if (!strncmp(location, "file://", 7))
		path = location + 7;
	else if (strstr(location, "://")) {
		fprintf(stderr,
			"%s: unsupported repository location (only local directories "
			"for now)\n",
			location);
		return -EPROTONOSUPPORT;
	}
	if (!*path)
		return -EINVAL;
	return backend_local_open(path, create, ret);
}

static void chomp(char *s)
{
	s[strcspn(s, "\r\n")] = 0;
}

static int prompt(int fd, const char *question, char out[PASSPHRASE_MAX])
{
	struct termios old, quiet;
	bool restore = false;

	if (write(fd, question, strlen(question)) < 0)
		return -errno;
	if (tcgetattr(fd, &old) == 0) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		quiet.c_lflag |= ECHONL;
		restore = tcsetattr(fd, TCSAFLUSH, &quiet) == 0;
	}
	size_t n = 0;
	int r = 0;
	for (;;) {
		char c;
		ssize_t k = read(fd, &c, 1);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0 || c == '\n')
			break;
		if (n + 1 < PASSPHRASE_MAX)
			out[n++] = c;
	}
	out[n] = 0;
	if (restore)
		tcsetattr(fd, TCSAFLUSH, &old);
	return r;
}

int tool_passphrase(const char *file, bool confirm, char out[PASSPHRASE_MAX])
{
	const char *env = getenv("CAIRN_PASSPHRASE");
	int r;

	if (file) {
		FILE *f = fopen(file, "re");
		if (!f)
			return -errno;
		if (!fgets(out, PASSPHRASE_MAX, f))
			out[0] = 0;
		fclose(f);
		chomp(out);
	} else if (env) {
		if (strlen(env) >= PASSPHRASE_MAX)
			return -EINVAL;
		strncpy(out, env, PASSPHRASE_MAX - 1);
		out[PASSPHRASE_MAX - 1] = 0;
	} else {
		_cleanup_close_ int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
		if (fd < 0)
			return -ENOENT;
		r = prompt(fd, "Passphrase: ", out);
		if (r >= 0 && confirm) {
			char again[PASSPHRASE_MAX];
			r = prompt(fd, "Passphrase (again): ", again);
			if (r >= 0 && strcmp(out, again))
				r = -EINVAL;
			explicit_bzero(again, sizeof(again));
		}
		if (r < 0)
			return r;
	}
	return out[0] ? 0 : -EINVAL;
}

int tool_kdf(const char *arg, enum kdf_strength *ret)
{
	const char *s = arg ? arg : getenv("CAIRN_KDF");
	if (!s || !*s) {
		*ret = KDF_MODERATE;
		return 0;
	}
	return kdf_strength_from_string(s, ret);
}

int tool_parse_size(const char *s, uint64_t *ret)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return -EINVAL;
	unsigned shift = 0;
	switch (*end) {
	case 'k':
	case 'K':
		shift = 10;
		end++;
		break;
	case 'm':
	case 'M':
		shift = 20;
		end++;
		break;
	case 'g':
	case 'G':
		shift = 30;
		end++;
		break;
	}
	if (*end == 'i')
		end++;
	if (*end == 'B')
		end++;
	if (*end || v > (UINT64_MAX >> shift))
		return -EINVAL;
	*ret = (uint64_t)v << shift;
	return 0;
}

int tool_open_store(const char *location, const char *passphrase_file, const char *cache_dir,
		    bool read_only, struct store **ret)
{
	return tool_open_store_ex(location, passphrase_file, cache_dir, read_only, false, 0, ret);
}

int tool_open_store_ex(const char *location, const char *passphrase_file, const char *cache_dir,
		       bool read_only, bool break_lock, unsigned upload_threads, struct store **ret)
{
	struct backend *b;
	char pass[PASSPHRASE_MAX] = "";
	int r = tool_open_backend(location, false, &b);
	if (r < 0) {
		if (r == -ENOENT)
			fprintf(stderr, "%s: no such repository\n", location);
		else if (r != -EPROTONOSUPPORT)
			fprintf(stderr, "%s: %s\n", location, strerror(-r));
		return r;
	}
	/* Ask for a passphrase only when the repository needs one: peek at its config. */
	struct buf cfg = {0};
	struct repo_config rc;
	bool encrypted = true;
	if (backend_get(b, "config", 0, BACKEND_WHOLE, &cfg) == 0 &&
	    config_parse(cfg.data, cfg.len, &rc) == 0)
		encrypted = rc.encrypted;
	buf_release(&cfg);
	/* A passphrase the user gave is passed on even to an "unencrypted" repository: the
	 * store refuses that combination, which is how a replaced config shows. */
	if (!encrypted && (passphrase_file || getenv("CAIRN_PASSPHRASE")))
		encrypted = true;
	if (encrypted) {
		r = tool_passphrase(passphrase_file, false, pass);
		if (r == -ENOENT && !passphrase_file)
			fprintf(stderr,
				"%s: encrypted, and no passphrase: set CAIRN_PASSPHRASE, use "
				"--passphrase-file, or run on a terminal\n",
				location);
		else if (r == -EINVAL)
			fprintf(stderr, "%s: empty passphrase\n", location);
		else if (r < 0)
			fprintf(stderr, "passphrase file %s: %s\n", passphrase_file, strerror(-r));
		if (r < 0) {
			backend_free(b);
			return r;
		}
	}
	struct store_options o = {.cache_dir = cache_dir,
				  .passphrase = encrypted ? pass : NULL,
				  .passlen = strlen(pass),
				  .read_only = read_only,
				  .break_lock = break_lock,
				  .upload_threads = upload_threads};
	r = store_open(b, &o, ret);
	explicit_bzero(pass, sizeof(pass));
	return r;
}
