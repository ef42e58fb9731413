/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* `mkfs.cairn` / `cairn mkfs`: create a repository in an empty location. */
#include <getopt.h>
#include <stdio.h>

#include "store.h"
#include "tool.h"

static void usage(FILE *f, const char *prog)
{
	fprintf(f,
		"Usage: %s [OPTIONS] REPOSITORY\n"
		"Create a cairn repository in an empty local directory.\n\n"
		"  --no-encryption         store data unencrypted (still authenticated)\n"
		"  --passphrase-file FILE  read the passphrase from the first line of FILE\n"
		"                          (default: $CAIRN_PASSPHRASE, else ask on the terminal)\n"
		"  --kdf STRENGTH          Argon2id cost: interactive, moderate (default),\n"
		"                          sensitive\n"
		"  --chunk-size SIZE       average chunk size, a power of two (default 1M)\n"
		"  --pack-size SIZE        target pack size (default 16M)\n"
		"  -q, --quiet             print nothing on success\n"
		"  -h, --help              show this help\n\n"
		"Exit status: 0 created, 1 failed, 2 usage error.\n",
		prog);
}

int cmd_mkfs(int argc, char **argv)
{
	static const struct option opts[] = {
		{"no-encryption", no_argument, NULL, 'N'},
		{"passphrase-file", required_argument, NULL, 'p'},
		{"kdf", required_argument, NULL, 'k'},
		{"chunk-size", required_argument, NULL, 'c'},
		{"pack-size", required_argument, NULL, 's'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{},
	};
	struct store_create_options o = {.encrypted = true};
	const char *pfile = NULL, *kdf = NULL;
	bool quiet = false;
	uint64_t v;
	int c;

	while ((c = getopt_long(argc, argv, "qh", opts, NULL)) >= 0) {
		switch (c) {
		case 'N':
			o.encrypted = false;
			break;
		case 'p':
			pfile = optarg;
			break;
		case 'k':
			kdf = optarg;
			break;
		case 'c':
		case 's':
			if (tool_parse_size(optarg, &v) < 0 || v > UINT32_MAX) {
				fprintf(stderr, "%s: invalid size '%s'\n", argv[0], optarg);
				return EXIT_USAGE;
			}
			*(c == 'c' ? &o.chunk_avg : &o.pack_size) = (uint32_t)v;
			break;
		case 'q':
			quiet = true;
			break;
		case 'h':
			usage(stdout, argv[0]);
			return EXIT_OK;
		default:
			usage(stderr, argv[0]);
			return EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		usage(stderr, argv[0]);
		return EXIT_USAGE;
	}
	const char *location = argv[optind];
	if (tool_kdf(kdf, &o.kdf) < 0) {
		fprintf(stderr, "%s: unknown KDF strength '%s'\n", argv[0],
			kdf ? kdf : getenv("CAIRN_KDF"));
		return EXIT_USAGE;
	}

	char pass[PASSPHRASE_MAX];
	if (o.encrypted) {
		int r = tool_passphrase(pfile, true, pass);
		if (r == -ENOENT && !pfile) {
			fprintf(stderr,
				"%s: no passphrase: set CAIRN_PASSPHRASE, use "
				"--passphrase-file, or run on a terminal\n",
				argv[0]);
			return EXIT_FAIL;
		}
		if (r == -EINVAL) {
			fprintf(stderr, "%s: the passphrase is empty or the two entries differ\n",
				argv[0]);
			return EXIT_FAIL;
		}
		if (r < 0) {
			fprintf(stderr, "%s: passphrase file %s: %s\n", argv[0], pfile,
				strerror(-r));
			return EXIT_FAIL;
		}
		o.passphrase = pass;
		o.passlen = strlen(pass);
	}

	_cleanup_backend_ struct backend *b = NULL;
	uint8_t id[REPO_ID_SIZE];
	int r = tool_open_backend(location, true, &b);
	if (r < 0) {
		if (r != -EPROTONOSUPPORT)
			fprintf(stderr, "%s: %s: %s\n", argv[0], location, strerror(-r));
	} else
		r = store_create(b, &o, id);
	explicit_bzero(pass, sizeof(pass));
	if (r < 0)
		return EXIT_FAIL;
	if (!quiet) {
		char hex[2 * REPO_ID_SIZE + 1];
		hex_encode(id, sizeof(id), hex);
		printf("Created %s cairn repository %s in %s\n",
		       o.encrypted ? "an encrypted" : "an UNENCRYPTED", hex, location);
		if (o.encrypted)
			printf("Keep the passphrase safe: without it nothing stored can be "
			       "read.\n");
	}
	return EXIT_OK;
}
