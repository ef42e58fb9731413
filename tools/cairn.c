/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cairn: the command-line front end; dispatches to one function per subcommand. */
#include <stdio.h>

#include "tool.h"

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
} commands[] = {
	{"mkfs", cmd_mkfs, "create a repository"},
	{"info", cmd_info, "describe a repository"},
	{"mount", cmd_mount, "mount a repository (as mount.cairn)"},
	{"umount", cmd_umount, "unmount and wait until everything is stored"},
	{"checkpoint", cmd_checkpoint, "store and commit a mounted working tree now"},
	{"snapshot", cmd_snapshot, "freeze current/ as a named read-only snapshot"},
	{"rotate", cmd_rotate, "rsnapshot's rotation: current/ -> INTERVAL.0, shift the rest"},
	{"list", cmd_list, "list the snapshots of a mount"},
	{"forget", cmd_forget, "drop snapshots by a time-based policy (borg prune's rules)"},
	{"diff", cmd_diff, "what changed between two snapshots (added, removed, changed paths)"},
};

static void usage(FILE *f)
{
	fprintf(f, "Usage: cairn COMMAND [OPTIONS] ...\n\nCommands:\n");
	for (size_t i = 0; i < ELEMENTSOF(commands); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
	fprintf(f, "\nRun 'cairn COMMAND --help' for a command's options.\n"
		   "Exit status: 0 success, 1 failure, 2 usage error.\n");
}

int main(int argc, char **argv)
{
	tool_init_logging();
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(stdout);
		return EXIT_OK;
	}
	for (size_t i = 0; i < ELEMENTSOF(commands); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "cairn: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
