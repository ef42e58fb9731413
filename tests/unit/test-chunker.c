/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests for store/chunker.c: parameter checks, the chunker_find() contract, agreement of
 * the four-bytes-at-a-time scan with a byte-at-a-time reference, determinism, size bounds,
 * streaming, seeds, the average size, and shift resistance (an insertion or deletion changes
 * only the chunks around it). The scan speed is reported as a diagnostic, never a failure.
 */
#include "chunker.h"
#include "codec.h"

#include "tap.h"

#define MiB (1024u * 1024)

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint8_t *random_data(size_t len, uint64_t seed)
{
	uint8_t *p = malloc(len);
	size_t i = 0;

	tap_require(p);
	for (; i + 8 <= len; i += 8)
		put_le64(p + i, splitmix64(&seed));
	for (; i < len; i++)
		p[i] = (uint8_t)splitmix64(&seed);
	return p;
}

static void seed_of(uint8_t seed[32], uint8_t v)
{
	memset(seed, v, 32);
}

/* Chunk lengths, as a growable array. */
struct cuts {
	size_t *len;
	size_t n, cap;
};

static void cuts_add(struct cuts *c, size_t len)
{
	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 64;
		c->len = realloc(c->len, c->cap * sizeof(*c->len));
		tap_require(c->len);
	}
	c->len[c->n++] = len;
}

static void cuts_free(struct cuts *c)
{
	free(c->len);
	*c = (struct cuts){0};
}

static bool cuts_equal(const struct cuts *a, const struct cuts *b)
{
	return a->n == b->n && memcmp(a->len, b->len, a->n * sizeof(*a->len)) == 0;
}

/* All of data in one buffer, as a caller that has the whole file would do it. */
static void chunk_all(const struct chunker *c, const uint8_t *data, size_t len, struct cuts *ret)
{
	size_t pos = 0;

	while (pos < len) {
		size_t n = chunker_find(c, data + pos, len - pos, true);
		tap_require(n >= 1 && n <= len - pos);
		cuts_add(ret, n);
		pos += n;
	}
}

/*
 * The definition, one byte at a time, to check the unrolled scan against. Returns the chunk
 * length as at end of input; *found says whether it ends at a cut point (not at max or eof).
 */
static size_t reference_find(const struct chunker *c, const uint8_t *data, size_t len, bool *found)
{
	size_t n = MIN(len, (size_t)c->max_size);
	uint64_t fp = 0;

	*found = false;
	for (size_t i = c->min_size; i < n; i++) {
		fp = (fp << 1) + c->gear[data[i]];
		if ((fp & (i < c->avg_size ? c->mask_s : c->mask_l)) == 0) {
			*found = true;
			return i + 1;
		}
	}
	return n;
}

/*
 * Feed data in pieces whose sizes come from sizes[] (cycled), the way a writer sees it. With
 * greedy, ask after every piece (the chunker then sees less than max_size and may answer 0);
 * otherwise ask only once max_size bytes are buffered or the input ended.
 */
static void chunk_stream(const struct chunker *c, const uint8_t *data, size_t len,
			 const size_t *sizes, size_t nsizes, bool greedy, struct cuts *ret)
{
	_cleanup_buf_ struct buf b = {0};
	size_t start = 0, fed = 0, k = 0;

	for (;;) {
		size_t piece = MIN(sizes[k++ % nsizes], len - fed);
		bool eof;

		tap_require(buf_append(&b, data + fed, piece) == 0);
		fed += piece;
		eof = fed == len;
		while (b.len > start) {
			size_t avail = b.len - start, n;

			if (!greedy && !eof && avail < c->max_size)
				break;
			n = chunker_find(c, b.data + start, avail, eof);
			if (n == 0) {
				tap_require(!eof && avail < c->max_size);
				break;
			}
			cuts_add(ret, n);
			start += n;
		}
		if (eof)
			break;
		/* Drop consumed bytes now and then, so the chunker never sees them again. */
		if (start > 8 * (size_t)c->max_size) {
			memmove(b.data, b.data + start, b.len - start);
			b.len -= start;
			start = 0;
		}
	}
}

static void test_init(void)
{
	struct chunker c;
	uint8_t seed[32];

	seed_of(seed, 1);
	is_int(chunker_init(&c, 256 * 1024, MiB, 4 * MiB, seed), 0, "default parameters");
	is_int(chunker_init(&c, 64, 128, 129, seed), 0, "smallest parameters");
	is_int(chunker_init(&c, 8 * MiB, 32 * MiB, 64 * MiB, seed), 0, "largest parameters");
	is_int(chunker_init(&c, 63, 128, 256, seed), -EINVAL, "min below 64");
	is_int(chunker_init(&c, 128, 128, 256, seed), -EINVAL, "min == avg");
	is_int(chunker_init(&c, 100, 200, 400, seed), -EINVAL, "avg not a power of two");
	is_int(chunker_init(&c, 100, 256, 256, seed), -EINVAL, "avg == max");
	is_int(chunker_init(&c, 100, 256, 200, seed), -EINVAL, "max below avg");
	is_int(chunker_init(&c, MiB, 32 * MiB, 64 * MiB + 1, seed), -EINVAL, "max above 64 MiB");
	is_int(chunker_init(&c, 0, 0, 0, seed), -EINVAL, "all zero");

	tap_require(chunker_init(&c, 256 * 1024, MiB, 4 * MiB, seed) == 0);
	is_int(__builtin_popcountll(c.mask_s), 22, "mask_s has log2(avg)+2 bits");
	is_int(__builtin_popcountll(c.mask_l), 18, "mask_l has log2(avg)-2 bits");
	ok(c.mask_s >> 61 == 0, "no mask bit above bit 60 (the unrolled scan needs that)");
	bool distinct = true;
	for (int i = 0; i < 256; i++)
		for (int j = i + 1; j < 256; j++)
			distinct &= c.gear[i] != c.gear[j];
	ok(distinct, "gear table entries are distinct");
}

static void test_contract(void)
{
	struct chunker c;
	uint8_t seed[32];
	uint8_t *zeros = calloc(1, 3 * 4096);
	uint8_t *rnd = random_data(4096, 7);

	tap_require(zeros);
	seed_of(seed, 2);
	tap_require(chunker_init(&c, 256, 1024, 4096, seed) == 0);

	is_int(chunker_find(&c, rnd, 0, true), 0, "empty input at eof");
	is_int(chunker_find(&c, rnd, 0, false), 0, "empty input, more to come");
	is_int(chunker_find(&c, rnd, 256, false), 0, "min bytes, more to come: need more");
	is_int(chunker_find(&c, rnd, 256, true), 256, "min bytes at eof: all of it");
	is_int(chunker_find(&c, rnd, 1, true), 1, "one byte at eof");

	size_t n = chunker_find(&c, zeros, 3 * 4096, false);
	ok(n >= 256 && n <= 4096, "zeros: a chunk within bounds (%zu)", n);
	n = chunker_find(&c, zeros, 3 * 4096, true);
	ok(n >= 256 && n <= 4096, "zeros at eof: still at most max (%zu)", n);

	/* Every prefix length gives the answer the definition gives. */
	bool agree = true, found;
	size_t full = reference_find(&c, rnd, 4096, &found);
	for (size_t len = 0; len <= 4096; len++) {
		size_t want = reference_find(&c, rnd, len, &found);
		size_t got_eof = chunker_find(&c, rnd, len, true);
		size_t got = chunker_find(&c, rnd, len, false);
		size_t want_more = found || len == 4096 ? want : 0;
		agree &= got_eof == want && got == want_more && (len < full || got_eof == full);
	}
	ok(agree, "every prefix: found cut, max cut, tail at eof or need-more as specified");
	free(zeros);
	free(rnd);
}

static void test_reference(void)
{
	static const uint32_t params[][3] = {{64, 128, 129},
					     {64, 128, 1000},
					     {256, 1024, 4096},
					     {2048, 8192, 65536},
					     {1000, 4096, 5000}};
	uint8_t seed[32];
	size_t len = 4 * MiB;
	uint8_t *data = random_data(len, 99);

	seed_of(seed, 3);
	for (size_t k = 0; k < ELEMENTSOF(params); k++) {
		struct chunker c;
		size_t pos = 0, n = 0;
		bool same = true, found;

		tap_require(chunker_init(&c, params[k][0], params[k][1], params[k][2], seed) == 0);
		while (pos < len && same) {
			size_t got = chunker_find(&c, data + pos, len - pos, true);
			same = got == reference_find(&c, data + pos, len - pos, &found);
			pos += got;
			n++;
		}
		ok(same, "min %u avg %u max %u: %zu cuts agree with the byte-at-a-time definition",
		   params[k][0], params[k][1], params[k][2], n);
	}
	free(data);
}

static void test_bounds_and_determinism(const uint8_t *data, size_t len)
{
	static const uint32_t params[][3] = {{256 * 1024, MiB, 4 * MiB}, {2048, 8192, 65536}};
	uint8_t seed[32];

	seed_of(seed, 4);
	for (size_t k = 0; k < ELEMENTSOF(params); k++) {
		struct cuts a = {0}, b = {0};
		struct chunker c;
		bool in_bounds = true;
		size_t total = 0;

		tap_require(chunker_init(&c, params[k][0], params[k][1], params[k][2], seed) == 0);
		chunk_all(&c, data, len, &a);
		chunk_all(&c, data, len, &b);
		ok(cuts_equal(&a, &b), "avg %u: deterministic (%zu chunks)", params[k][1], a.n);
		for (size_t i = 0; i < a.n; i++) {
			total += a.len[i];
			if (i + 1 < a.n)
				in_bounds &= a.len[i] >= c.min_size && a.len[i] <= c.max_size;
			else
				in_bounds &= a.len[i] >= 1 && a.len[i] <= c.max_size;
		}
		ok(in_bounds, "avg %u: every chunk within [min, max] but the last", params[k][1]);
		is_int(total, len, "avg %u: chunks cover the input exactly", params[k][1]);

		double mean = (double)len / (double)a.n;
		diag("avg %u: %zu chunks, mean %.0f bytes (%.2f x avg)", params[k][1], a.n, mean,
		     mean / params[k][1]);
		ok(mean >= params[k][1] / 1.5 && mean <= params[k][1] * 1.5,
		   "avg %u: mean chunk size within a factor 1.5 of avg", params[k][1]);
		cuts_free(&a);
		cuts_free(&b);
	}
}

static void test_streaming(void)
{
	static const size_t odd[] = {1, 7, 4096, 100003, 3 * MiB + 5, 13, 65536};
	static const size_t mid[] = {65536, 12345, 200000};
	static const size_t whole[] = {SIZE_MAX};
	size_t len = 24 * MiB + 12345;
	uint8_t *data = random_data(len, 5);
	struct cuts ref = {0}, s = {0};
	struct chunker c;
	uint8_t seed[32];

	seed_of(seed, 5);
	tap_require(chunker_init(&c, 256 * 1024, MiB, 4 * MiB, seed) == 0);
	chunk_all(&c, data, len, &ref);

	chunk_stream(&c, data, len, odd, ELEMENTSOF(odd), false, &s);
	ok(cuts_equal(&ref, &s), "streaming in odd pieces, max buffered: same cuts (%zu)", s.n);
	cuts_free(&s);
	chunk_stream(&c, data, len, mid, ELEMENTSOF(mid), true, &s);
	ok(cuts_equal(&ref, &s), "streaming, asking after every piece: same cuts");
	cuts_free(&s);
	chunk_stream(&c, data, len, whole, 1, false, &s);
	ok(cuts_equal(&ref, &s), "one piece: same cuts");
	cuts_free(&s);

	/* Byte-sized pieces on a smaller input with small chunks. */
	static const size_t tiny[] = {1, 2, 3, 5, 8, 13, 21, 34};
	tap_require(chunker_init(&c, 2048, 8192, 65536, seed) == 0);
	cuts_free(&ref);
	chunk_all(&c, data, MiB, &ref);
	chunk_stream(&c, data, MiB, tiny, ELEMENTSOF(tiny), false, &s);
	ok(cuts_equal(&ref, &s), "streaming in 1..34-byte pieces: same cuts (%zu)", s.n);
	cuts_free(&s);
	cuts_free(&ref);
	free(data);
}

static void test_seeds(const uint8_t *data, size_t len)
{
	struct cuts a = {0}, b = {0};
	struct chunker ca, cb;
	uint8_t seed[32];
	size_t shared = 0, pa = 0, pb = 0, ia = 0, ib = 0;

	seed_of(seed, 6);
	tap_require(chunker_init(&ca, 256 * 1024, MiB, 4 * MiB, seed) == 0);
	seed[31] ^= 1;
	tap_require(chunker_init(&cb, 256 * 1024, MiB, 4 * MiB, seed) == 0);
	ok(memcmp(ca.gear, cb.gear, sizeof(ca.gear)) != 0, "one seed bit changes the gear table");
	chunk_all(&ca, data, len, &a);
	chunk_all(&cb, data, len, &b);
	ok(!cuts_equal(&a, &b), "different seeds give different cuts");
	/* Count cut offsets the two have in common: it should be few. */
	while (ia < a.n && ib < b.n) {
		if (pa == pb && pa)
			shared++;
		if (pa <= pb)
			pa += a.len[ia++];
		else
			pb += b.len[ib++];
	}
	diag("seeds: %zu and %zu chunks, %zu cut offsets in common", a.n, b.n, shared);
	ok(shared < a.n / 4, "different seeds share few cut offsets");
	cuts_free(&a);
	cuts_free(&b);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Content hashes (64 bits of BLAKE2b) of each chunk, sorted. */
static uint64_t *chunk_hashes(const struct chunker *c, const uint8_t *data, size_t len,
			      size_t *ret_n)
{
	static const uint8_t key[32];
	struct cuts cuts = {0};
	uint64_t *h;
	size_t pos = 0;

	chunk_all(c, data, len, &cuts);
	h = malloc(cuts.n * sizeof(*h));
	tap_require(h);
	for (size_t i = 0; i < cuts.n; i++) {
		uint8_t out[32];
		codec_hash_keyed(key, data + pos, cuts.len[i], out);
		h[i] = get_le64(out);
		pos += cuts.len[i];
	}
	qsort(h, cuts.n, sizeof(*h), cmp_u64);
	*ret_n = cuts.n;
	cuts_free(&cuts);
	return h;
}

static size_t count_new(const uint64_t *old, size_t nold, const uint64_t *new, size_t nnew)
{
	size_t fresh = 0;

	for (size_t i = 0; i < nnew; i++)
		fresh += !bsearch(&new[i], old, nold, sizeof(*old), cmp_u64);
	return fresh;
}

static void test_shift(const uint8_t *data, size_t len)
{
	static const struct {
		const char *what;
		size_t at;
		long delta; /* bytes inserted (>0) or deleted (<0) */
	} edits[] = {
		{"insert 10 bytes in the middle", 32 * MiB + 12345, 10},
		{"insert 10 bytes near the start", 1000, 10},
		{"delete 10 bytes in the middle", 32 * MiB + 12345, -10},
		{"insert 1 byte at offset 0", 0, 1},
		{"delete 100 KiB at 20 MiB", 20 * MiB, -100 * 1024},
	};
	uint8_t *edited = malloc(len + 16);
	uint64_t *old;
	struct chunker c;
	uint8_t seed[32];
	size_t nold;

	tap_require(edited);
	seed_of(seed, 7);
	tap_require(chunker_init(&c, 256 * 1024, MiB, 4 * MiB, seed) == 0);
	old = chunk_hashes(&c, data, len, &nold);

	for (size_t k = 0; k < ELEMENTSOF(edits); k++) {
		size_t at = edits[k].at, nlen, nnew, fresh;
		uint64_t *new;

		memcpy(edited, data, at);
		if (edits[k].delta > 0) {
			size_t d = (size_t)edits[k].delta;
			memset(edited + at, 0xa5, d);
			memcpy(edited + at + d, data + at, len - at);
			nlen = len + d;
		} else {
			size_t d = (size_t)-edits[k].delta;
			memcpy(edited + at, data + at + d, len - at - d);
			nlen = len - d;
		}
		new = chunk_hashes(&c, edited, nlen, &nnew);
		fresh = count_new(old, nold, new, nnew);
		diag("%s: %zu of %zu chunks are new (old file: %zu chunks)", edits[k].what, fresh,
		     nnew, nold);
		ok(fresh >= 1 && fresh <= 3, "%s: at most 3 new chunks", edits[k].what);
		free(new);
	}
	free(old);
	free(edited);
}

static void test_speed(const uint8_t *data, size_t len)
{
	struct chunker c;
	uint8_t seed[32];
	double best = 0;
	size_t hashed = 0;

	seed_of(seed, 8);
	tap_require(chunker_init(&c, 256 * 1024, MiB, 4 * MiB, seed) == 0);
	for (int round = 0; round < 3; round++) {
		uint64_t t0 = now_ns();
		size_t pos = 0;

		hashed = 0;
		while (pos < len) {
			size_t n = chunker_find(&c, data + pos, len - pos, true);
			hashed += n > c.min_size ? n - c.min_size : 0;
			pos += n;
		}
		double s = (double)(now_ns() - t0) / 1e9;
		best = round == 0 || s < best ? s : best;
	}
	diag("chunker speed: %.2f GB/s of input, %.2f GB/s of bytes hashed (%zu MiB, best of 3)",
	     (double)len / best / 1e9, (double)hashed / best / 1e9, len / MiB);
	ok(true, "speed measured");
}

int main(void)
{
	size_t len = 64 * MiB;
	uint8_t *data;

	plan_lazy();
	tap_require(codec_global_init() == 0);
	test_init();
	test_contract();
	test_reference();
	data = random_data(len, 42);
	test_bounds_and_determinism(data, len);
	test_streaming();
	test_seeds(data, len);
	test_shift(data, len);
	test_speed(data, len);
	free(data);
	return tap_done();
}
