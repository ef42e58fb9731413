/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* mount.cairn: the mount(8) helper entry point, the same as `cairn mount`. */
#include "tool.h"

int main(int argc, char **argv)
{
	tool_init_logging();
	return cmd_mount(argc, argv);
}
