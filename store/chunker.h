/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Content-defined chunking, FastCDC style: a gear rolling hash with normalized chunking
 * (a stricter mask before the average size, a looser one after it), bounded by a minimum and
 * a maximum chunk size. An insertion in the middle of a large file changes the one or two
 * chunks around it, not everything after it.
 *
 * The gear table is derived from a 32-byte seed (for encrypted repositories the seed comes
 * from the master key, so chunk boundaries do not reveal which known file was stored).
 *
 * The chunker is stateless between calls: chunker_find() looks for the first cut point in a
 * buffer that starts at a chunk boundary. Callers keep at least max_size bytes buffered
 * (except at end of input) so no byte is scanned twice.
 *
 * Thread safety: a struct chunker is read-only after chunker_init() and may be shared.
 */
#pragma once

#include "util.h"

#define CHUNKER_DEFAULT_MIN (256u * 1024)
#define CHUNKER_DEFAULT_AVG (1024u * 1024)
#define CHUNKER_DEFAULT_MAX (4096u * 1024)

struct chunker {
	uint32_t min_size, avg_size, max_size;
	uint64_t mask_s, mask_l; /* stricter mask before avg, looser after */
	uint64_t gear[256];
};

/*
 * Set up a chunker. Requires 64 <= min < avg < max <= 64 MiB and avg a power of two.
 * Returns 0 or -EINVAL.
 */
int chunker_init(struct chunker *c, uint32_t min_size, uint32_t avg_size, uint32_t max_size,
		 const uint8_t seed[32]);

/*
 * Find the length of the chunk that starts at data[0].
 * Returns a length in 1..len when a cut point was found (or len reached max_size, or eof is
 * true and all of data is the last chunk), and 0 when more input is needed (no cut point in
 * data, len < max_size and eof is false). len = 0 with eof returns 0.
 */
size_t chunker_find(const struct chunker *c, const uint8_t *data, size_t len, bool eof);
