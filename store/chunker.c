/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Content-defined chunking (see chunker.h): a FastCDC-style gear hash with normalized
 * chunking at level 2. The fingerprint is fp = (fp << 1) + gear[byte], starting from 0 at
 * min_size (the first min_size bytes of a chunk are never hashed); a cut follows the byte after
 * which (fp & mask) == 0, with mask_s (log2(avg) + 2 bits) before avg_size and mask_l
 * (log2(avg) - 2 bits) from avg_size on, and a forced cut at max_size.
 *
 * Format note: the gear table, the mask bit positions and the cut rule decide where chunks
 * end, hence which blobs dedup against each other. Changing any of them does not break old
 * repositories, but new data would stop deduplicating against old data.
 *   gear[i] = le64(first 8 bytes of BLAKE2b-256 keyed with the seed over "cairn-gear" || u8 i)
 *   mask bit k (of n) is bit 60 - (k * 48) / n, i.e. spread over bits 60..13.
 */
#include "chunker.h"
#include "codec.h"

#include <assert.h>

/*
 * Mask bits stay at or below bit 60 so the scan can work on four bytes at a time: the
 * fingerprint after the first, second and third byte of a group is tested shifted left by
 * 3, 2 and 1 bits against the mask shifted alike, which is exact only if no mask bit is
 * shifted out. Spreading the bits (rather than taking a contiguous run) makes each tested bit
 * depend on a different window length, which evens out the chunk size distribution.
 */
#define MASK_TOP_BIT 60
#define MASK_SPAN 48

static uint64_t spread_mask(unsigned bits)
{
	uint64_t m = 0;

	assert(bits >= 1 && bits <= MASK_SPAN);
	for (unsigned k = 0; k < bits; k++)
		m |= UINT64_C(1) << (MASK_TOP_BIT - (k * MASK_SPAN) / bits);
	return m;
}

int chunker_init(struct chunker *c, uint32_t min_size, uint32_t avg_size, uint32_t max_size,
		 const uint8_t seed[32])
{
	static const char domain[] = "cairn-gear";
	uint8_t msg[sizeof(domain)], h[32];
	unsigned avg_bits;

	if (min_size < 64 || min_size >= avg_size || avg_size >= max_size ||
	    max_size > 64u * 1024 * 1024 || (avg_size & (avg_size - 1)) != 0)
		return -EINVAL;
	avg_bits = (unsigned)__builtin_ctz(avg_size);

	c->min_size = min_size;
	c->avg_size = avg_size;
	c->max_size = max_size;
	/* avg >= 128 (a power of two above min >= 64), so mask_l has at least 5 bits. */
	c->mask_s = spread_mask(avg_bits + 2);
	c->mask_l = spread_mask(avg_bits - 2);

	memcpy(msg, domain, sizeof(domain) - 1);
	for (unsigned i = 0; i < 256; i++) {
		msg[sizeof(domain) - 1] = (uint8_t)i;
		codec_hash_keyed(seed, msg, sizeof(msg), h);
		c->gear[i] = get_le64(h);
	}
	return 0;
}

/*
 * Scan data[i..end) continuing the fingerprint *fp; return the chunk length (index of the
 * cut byte + 1) or 0 if there is no cut. Four bytes per round: the gear values and their
 * shifted partial sums do not depend on fp, so the loop-carried dependency is one shift and
 * one add per four bytes instead of per byte.
 */
static inline size_t scan(const uint64_t *gear, const uint8_t *data, size_t i, size_t end,
			  uint64_t mask, uint64_t *fp)
{
	const uint64_t m3 = mask << 3, m2 = mask << 2, m1 = mask << 1;
	uint64_t h = *fp;

	for (; i + 4 <= end; i += 4) {
		uint64_t x1 = gear[data[i]] << 3;
		uint64_t x2 = x1 + (gear[data[i + 1]] << 2);
		uint64_t x3 = x2 + (gear[data[i + 2]] << 1);
		uint64_t x4 = x3 + gear[data[i + 3]];
		uint64_t t = h << 4;

		if (((t + x1) & m3) == 0)
			return i + 1;
		if (((t + x2) & m2) == 0)
			return i + 2;
		if (((t + x3) & m1) == 0)
			return i + 3;
		h = t + x4;
		if ((h & mask) == 0)
			return i + 4;
	}
	for (; i < end; i++) {
		h = (h << 1) + gear[data[i]];
		if ((h & mask) == 0)
			return i + 1;
	}
	*fp = h;
	return 0;
}

size_t chunker_find(const struct chunker *c, const uint8_t *data, size_t len, bool eof)
{
	size_t n = MIN(len, (size_t)c->max_size), barrier, cut;
	uint64_t fp = 0;

	if (n <= c->min_size)
		return eof ? n : 0;

	barrier = MIN(n, (size_t)c->avg_size);
	cut = scan(c->gear, data, c->min_size, barrier, c->mask_s, &fp);
	if (cut)
		return cut;
	cut = scan(c->gear, data, barrier, n, c->mask_l, &fp);
	if (cut)
		return cut;

	/* No cut point: a full max_size chunk, the tail of the input, or ask for more. */
	if (n == c->max_size || eof)
		return n;
	return 0;
}
