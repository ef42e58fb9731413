/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-ingest: push a real directory tree through the whole store path (chunk, hash,
 * dedup, compress, encrypt, pack, write to a local repository) and report throughput.
 *
 *   bench-ingest --list-out FILE [--limit BYTES] TREE       choose the files, write the list
 *   bench-ingest --read --list FILE [--threads N]           only read the files (baseline)
 *   bench-ingest --repo DIR --cache DIR --list FILE [--threads N]   ingest
 *
 * Output: one line of key=value pairs on stdout. Timing includes the final flush and commit,
 * so every byte counted is durable in the repository when the clock stops.
 */
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/stat.h>

#include "store.h"

static char **files;
static size_t n_files, cap_files;
static uint64_t limit = UINT64_MAX, total;
static atomic_size_t next_file;
static atomic_uint_fast64_t bytes_read;
static struct store *store;
static bool read_only;

static int walk_cb(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	if (type != FTW_F || !S_ISREG(st->st_mode))
		return 0;
	if (access(path, R_OK) < 0)
		return 0;
	if (total >= limit)
		return 1;
	if (n_files == cap_files) {
		cap_files = cap_files ? 2 * cap_files : 4096;
		files = realloc(files, cap_files * sizeof(*files));
	}
	files[n_files++] = strdup(path);
	total += (uint64_t)st->st_size;
	return 0;
}

static int load_list(const char *path)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	if (!f)
		return -errno;
	while ((n = getdelim(&line, &cap, 0, f)) > 0) {
		if (n_files == cap_files) {
			cap_files = cap_files ? 2 * cap_files : 4096;
			files = realloc(files, cap_files * sizeof(*files));
		}
		files[n_files++] = strdup(line);
	}
	free(line);
	fclose(f);
	return 0;
}

static int ingest_file(const char *path, uint8_t *buf, size_t cap)
{
	const struct chunker *ch = store_chunker(store);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOATIME);
	if (fd < 0)
		fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0; /* vanished or unreadable: not part of the measurement */
	size_t have = 0;
	bool eof = false;
	int r = 0;
	while (r >= 0) {
		while (!eof && have < cap) {
			ssize_t k = read(fd, buf + have, cap - have);
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0) {
				eof = true;
				break;
			}
			have += (size_t)k;
			bytes_read += (uint64_t)k;
		}
		if (read_only) {
			have = 0;
			if (eof)
				break;
			continue;
		}
		size_t off = 0;
		for (;;) {
			size_t n = chunker_find(ch, buf + off, have - off, eof);
			if (n == 0)
				break;
			struct blob_id id;
			r = store_put(store, BLOB_DATA, buf + off, n, &id, NULL);
			if (r < 0)
				break;
			off += n;
		}
		memmove(buf, buf + off, have - off);
		have -= off;
		if (eof && have == 0)
			break;
	}
	close(fd);
	return r;
}

static void *worker(void *arg)
{
	size_t cap = 2 * (size_t)CHUNKER_DEFAULT_MAX;
	uint8_t *buf = malloc(cap);
	intptr_t r = 0;
	for (;;) {
		size_t i = atomic_fetch_add(&next_file, 1);
		if (i >= n_files)
			break;
		r = ingest_file(files[i], buf, cap);
		if (r < 0) {
			fprintf(stderr, "bench-ingest: %s: %s\n", files[i], strerror((int)-r));
			break;
		}
	}
	free(buf);
	return (void *)r;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"list-out", required_argument, NULL, 'o'},
		{"list", required_argument, NULL, 'l'},
		{"limit", required_argument, NULL, 'L'},
		{"threads", required_argument, NULL, 't'},
		{"repo", required_argument, NULL, 'r'},
		{"cache", required_argument, NULL, 'c'},
		{"read", no_argument, NULL, 'R'},
		{},
	};
	const char *list_out = NULL, *list = NULL, *repo = NULL, *cache = NULL;
	unsigned threads = 1;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
		switch (c) {
		case 'o':
			list_out = optarg;
			break;
		case 'l':
			list = optarg;
			break;
		case 'L':
			limit = strtoull(optarg, NULL, 10);
			break;
		case 't':
			threads = (unsigned)atoi(optarg);
			break;
		case 'r':
			repo = optarg;
			break;
		case 'c':
			cache = optarg;
			break;
		case 'R':
			read_only = true;
			break;
		default:
			return 2;
		}
	}
	if (list_out) {
		if (optind != argc - 1)
			return 2;
		nftw(argv[optind], walk_cb, 64, FTW_PHYS);
		FILE *f = fopen(list_out, "we");
		if (!f)
			return 1;
		for (size_t i = 0; i < n_files; i++)
			fwrite(files[i], 1, strlen(files[i]) + 1, f);
		fclose(f);
		printf("files=%zu bytes=%" PRIu64 "\n", n_files, total);
		return 0;
	}
	if (!list || load_list(list) < 0 || threads < 1)
		return 2;
	if (!read_only) {
		struct backend *b;
		const char *pass = getenv("CAIRN_PASSPHRASE");
		struct store_options o = {
			.cache_dir = cache, .passphrase = pass, .passlen = pass ? strlen(pass) : 0};
		if (!repo || backend_local_open(repo, false, &b) < 0 ||
		    store_open(b, &o, &store) < 0)
			return 1;
	}

	uint64_t t0 = now_ns();
	pthread_t th[64];
	threads = MIN(threads, 64u);
	for (unsigned i = 0; i < threads; i++)
		pthread_create(&th[i], NULL, worker, NULL);
	bool failed = false;
	for (unsigned i = 0; i < threads; i++) {
		void *r;
		pthread_join(th[i], &r);
		failed |= r != NULL;
	}
	struct store_stats st = {0};
	if (!read_only) {
		struct commit cm = {0};
		failed |= store_commit(store, &cm) < 0;
		commit_release(&cm);
		store_get_stats(store, &st);
	}
	double secs = (double)(now_ns() - t0) / 1e9;
	if (!read_only)
		failed |= store_close(store) < 0;
	printf("threads=%u files=%zu bytes=%" PRIu64 " seconds=%.3f mbps=%.1f new_bytes=%" PRIu64
	       " sealed_bytes=%" PRIu64 " new_blobs=%" PRIu64 " put_blobs=%" PRIu64
	       " packs=%" PRIu64 "\n",
	       threads, n_files, (uint64_t)bytes_read, secs, (double)bytes_read / 1e6 / secs,
	       st.new_bytes, st.sealed_bytes, st.new_blobs, st.put_blobs, st.packs_uploaded);
	return failed ? 1 : 0;
}
