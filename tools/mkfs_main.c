/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* mkfs.cairn: the mkfs(8)-style entry point, the same as `cairn mkfs`. */
#include "tool.h"

int main(int argc, char **argv)
{
	tool_init_logging();
	return cmd_mkfs(argc, argv);
}
