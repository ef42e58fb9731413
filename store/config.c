/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The config object: plain-text format, parsing with bounds, and its MAC (see config.h). */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>

#include "chunker.h"
#include "codec.h"

void config_init_defaults(struct repo_config *c, bool encrypted)
{
	*c = (struct repo_config){
		.version = CONFIG_VERSION,
		.encrypted = encrypted,
		.chunk_min = CHUNKER_DEFAULT_MIN,
		.chunk_avg = CHUNKER_DEFAULT_AVG,
		.chunk_max = CHUNKER_DEFAULT_MAX,
		.pack_size = PACK_SIZE_DEFAULT,
	};
	codec_random(c->id, sizeof(c->id));
}

static int append_line(struct buf *b, const char *fmt, ...) _printf_(2, 3);
static int append_line(struct buf *b, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line))
		return -EINVAL;
	return buf_append(b, line, (size_t)n);
}

static void config_mac(const uint8_t *master, const void *data, size_t len, uint8_t out[32])
{
	uint8_t key[32];
	keys_derive(master, SUBKEY_CONFIG, key);
	codec_hash_keyed(key, data, len, out);
	explicit_bzero(key, sizeof(key));
}

int config_format(const struct repo_config *c, const uint8_t *master, struct buf *ret)
{
	_cleanup_buf_ struct buf b = {0};
	char hex[2 * MASTER_KEY_SIZE + 1];
	uint8_t mac[32];
	int r;

	hex_encode(c->id, sizeof(c->id), hex);
	r = append_line(&b, "cairn-repository %u\nid = %s\nencryption = %s\ncompression = lz4\n",
			c->version, hex, c->encrypted ? "xchacha20-poly1305" : "none");
	if (r >= 0)
		r = append_line(&b, "chunker = fastcdc %" PRIu32 " %" PRIu32 " %" PRIu32 "\n",
				c->chunk_min, c->chunk_avg, c->chunk_max);
	if (r >= 0)
		r = append_line(&b, "pack-size = %" PRIu32 "\n", c->pack_size);
	if (r >= 0 && !c->encrypted) {
		hex_encode(c->plain_key, sizeof(c->plain_key), hex);
		r = append_line(&b, "master-key = %s\n", hex);
	}
	if (r < 0)
		return r;
	config_mac(master, b.data, b.len, mac);
	hex_encode(mac, sizeof(mac), hex);
	r = append_line(&b, "mac = %s\n", hex);
	if (r < 0)
		return r;
	return buf_append(ret, b.data, b.len);
}

/* Split "key = value". Returns 0 or -EBADMSG. */
static int split_line(char *line, char **ret_key, char **ret_value)
{
	char *eq = strstr(line, " = ");
	if (!eq)
		return -EBADMSG;
	*eq = 0;
	*ret_key = line;
	*ret_value = eq + 3;
	return 0;
}

static int parse_u32(const char *s, uint32_t *ret)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || v > UINT32_MAX || *s == '-')
		return -EBADMSG;
	*ret = (uint32_t)v;
	return 0;
}

static int parse_chunker(const char *v, struct repo_config *c)
{
	char min[16], avg[16], max[16];
	if (sscanf(v, "fastcdc %15s %15s %15s", min, avg, max) != 3)
		return -EBADMSG;
	if (parse_u32(min, &c->chunk_min) < 0 || parse_u32(avg, &c->chunk_avg) < 0 ||
	    parse_u32(max, &c->chunk_max) < 0)
		return -EBADMSG;
	struct chunker probe;
	uint8_t seed[32] = {0};
	return chunker_init(&probe, c->chunk_min, c->chunk_avg, c->chunk_max, seed) < 0 ? -EBADMSG
											: 0;
}

static int parse_field(struct repo_config *c, const char *k, const char *v, unsigned *seen)
{
	if (!strcmp(k, "id")) {
		*seen |= 1;
		return hex_decode(v, c->id, sizeof(c->id)) < 0 ? -EBADMSG : 0;
	}
	if (!strcmp(k, "encryption")) {
		*seen |= 2;
		if (!strcmp(v, "xchacha20-poly1305"))
			c->encrypted = true;
		else if (!strcmp(v, "none"))
			c->encrypted = false;
		else
			return -EBADMSG;
		return 0;
	}
	if (!strcmp(k, "compression"))
		return strcmp(v, "lz4") ? -EBADMSG : 0;
	if (!strcmp(k, "chunker")) {
		*seen |= 4;
		return parse_chunker(v, c);
	}
	if (!strcmp(k, "pack-size")) {
		*seen |= 8;
		if (parse_u32(v, &c->pack_size) < 0 || c->pack_size < PACK_SIZE_MIN ||
		    c->pack_size > PACK_SIZE_MAX)
			return -EBADMSG;
		return 0;
	}
	if (!strcmp(k, "master-key")) {
		c->has_plain_key = true;
		return hex_decode(v, c->plain_key, sizeof(c->plain_key)) < 0 ? -EBADMSG : 0;
	}
	if (!strcmp(k, "mac")) {
		*seen |= 16;
		return hex_decode(v, c->mac, sizeof(c->mac)) < 0 ? -EBADMSG : 0;
	}
	return -EBADMSG;
}

int config_parse(const void *data, size_t len, struct repo_config *ret)
{
	struct repo_config c = {0};
	unsigned seen = 0;
	bool after_mac = false;

	if (len == 0 || len > CONFIG_MAX_SIZE || memchr(data, 0, len))
		return -EBADMSG;
	_cleanup_free_ char *text = strndup(data, len);
	if (!text)
		return -ENOMEM;
	if (text[len - 1] != '\n')
		return -EBADMSG;

	char *save = NULL, *line = strtok_r(text, "\n", &save);
	if (!line || sscanf(line, "cairn-repository %u", &c.version) != 1)
		return -EBADMSG;
	if (c.version != CONFIG_VERSION)
		return -EPROTONOSUPPORT;
	while ((line = strtok_r(NULL, "\n", &save))) {
		char *k, *v;
		if (after_mac || split_line(line, &k, &v) < 0)
			return -EBADMSG;
		int r = parse_field(&c, k, v, &seen);
		if (r < 0)
			return r;
		after_mac = !strcmp(k, "mac");
	}
	if (seen != 31 || c.has_plain_key == c.encrypted)
		return -EBADMSG;
	*ret = c;
	return 0;
}

int config_verify(const void *data, size_t len, const uint8_t *master)
{
	const char *text = data;
	uint8_t mac[32], want[32];

	/* The mac line is the last line; everything before it is covered. */
	const char *m = NULL;
	for (size_t i = 0; i + 7 <= len; i++)
		if ((i == 0 || text[i - 1] == '\n') && !memcmp(text + i, "mac = ", 6))
			m = text + i;
	if (!m || (size_t)(text + len - m) != 6 + 64 + 1)
		return -EBADMSG;
	char hex[65];
	memcpy(hex, m + 6, 64);
	hex[64] = 0;
	if (hex_decode(hex, want, sizeof(want)) < 0)
		return -EBADMSG;
	config_mac(master, data, (size_t)(m - text), mac);
	/* Not secret, but compare in constant time anyway: it costs nothing. */
	uint8_t diff = 0;
	for (size_t i = 0; i < sizeof(mac); i++)
		diff |= mac[i] ^ want[i];
	return diff ? -EBADMSG : 0;
}
