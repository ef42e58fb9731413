/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* `cairn info REPOSITORY`: open a repository read-only and describe it. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include "store.h"
#include "tool.h"

static void usage(FILE *f)
{
	fprintf(f, "Usage: cairn info [--passphrase-file FILE] [--cache-dir DIR] REPOSITORY\n"
		   "Show a repository's parameters and latest commit (read-only, no lock).\n"
		   "Exit status: 0 ok, 1 failure, 2 usage error.\n");
}

int cmd_info(int argc, char **argv)
{
	static const struct option opts[] = {
		{"passphrase-file", required_argument, NULL, 'p'},
		{"cache-dir", required_argument, NULL, 'C'},
		{"help", no_argument, NULL, 'h'},
		{},
	};
	const char *pfile = NULL, *cache = NULL;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
		switch (c) {
		case 'p':
			pfile = optarg;
			break;
		case 'C':
			cache = optarg;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return EXIT_USAGE;
	}
	struct store *s;
	int r = tool_open_store(argv[optind], pfile, cache, true, &s);
	if (r < 0)
		return EXIT_FAIL;

	const struct repo_config *cf = store_config(s);
	char id[2 * REPO_ID_SIZE + 1];
	hex_encode(cf->id, sizeof(cf->id), id);
	printf("repository  %s\nlocation    %s\nencryption  %s\n", id, store_backend(s)->location,
	       cf->encrypted ? "xchacha20-poly1305" : "none");
	printf("chunker     fastcdc min %" PRIu32 " avg %" PRIu32 " max %" PRIu32 "\n",
	       cf->chunk_min, cf->chunk_avg, cf->chunk_max);
	printf("pack size   %" PRIu32 "\ncache       %s\n", cf->pack_size, store_cache_dir(s));

	struct commit cm;
	r = store_head(s, &cm);
	if (r >= 0 && cm.seq) {
		char when[64] = "?";
		time_t t = (time_t)(cm.time_ns / 1000000000u);
		struct tm tm;
		if (localtime_r(&t, &tm))
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %z", &tm);
		printf("commit      %" PRIu64 " at %s by %s, %zu snapshots\n", cm.seq, when,
		       cm.host, cm.n_snaps);
	} else if (r >= 0)
		printf("commit      none yet\n");
	commit_release(&cm);
	store_close(s);
	return r < 0 ? EXIT_FAIL : EXIT_OK;
}
