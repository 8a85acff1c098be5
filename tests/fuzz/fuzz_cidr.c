/*
 * libFuzzer target for lib/cidr.c: address and range parsing with format
 * round trips, and the prefix tree against a linear scan.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"

#define INPUT_MAX   4096
#define TREE_RANGES 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_addr(const char *text)
{
	struct ipaddr a, b;
	char buf[INET6_ADDRSTRLEN], buf2[INET6_ADDRSTRLEN];

	if (ipaddr_parse(text, &a, NULL) != 0)
		return;
	if (ipaddr_format(&a, buf, sizeof(buf)) != 0)
		abort();
	if (ipaddr_parse(buf, &b, NULL) != 0 || memcmp(&a, &b, sizeof(a)) != 0)
		abort();
	if (ipaddr_format(&b, buf2, sizeof(buf2)) != 0 || strcmp(buf, buf2) != 0)
		abort();
}

static void check_range(const char *text)
{
	struct cidr c, d, net;
	char buf[64];

	if (cidr_parse(text, &c, NULL) != 0)
		return;
	if (c.prefixlen > 128 || !cidr_contains(&c, &c.net))
		abort();
	if (cidr_format(&c, buf, sizeof(buf)) != 0)
		abort();
	if (cidr_parse(buf, &d, NULL) != 0 || memcmp(&c.net, &d.net, sizeof(c.net)) != 0 ||
	    c.prefixlen != d.prefixlen)
		abort();
	cidr_network_of(&c.net, &net);
	if (!cidr_contains(&net, &c.net))
		abort();
}

static void mask(struct cidr *c)
{
	unsigned i;

	for (i = 0; i < 16; i++) {
		unsigned bits = c->prefixlen > i * 8 ? c->prefixlen - i * 8 : 0;

		if (bits < 8)
			c->net.b[i] &= (uint8_t)(0xff00 >> bits);
	}
}

/* Ranges from raw bytes (16 address bytes + 1 prefix byte each), then every
 * range's own address and a variant are looked up and compared with a scan. */
static void check_tree(const uint8_t *data, size_t size)
{
	struct cidr ranges[TREE_RANGES];
	uint32_t got[TREE_RANGES];
	struct cidr_tree *t;
	size_t n = 0, i, j;

	while (size >= 17 && n < TREE_RANGES) {
		memcpy(ranges[n].net.b, data, 16);
		ranges[n].prefixlen = (uint8_t)(data[16] % 129);
		mask(&ranges[n]);
		data += 17;
		size -= 17;
		n++;
	}
	if (n == 0)
		return;
	t = cidr_tree_create();
	if (t == NULL)
		abort();
	for (i = 0; i < n; i++)
		if (cidr_tree_insert(t, &ranges[i], (uint32_t)i) != 0)
			abort();
	for (i = 0; i < 2 * n; i++) {
		struct ipaddr a = ranges[i % n].net;
		size_t found, want = 0;
		unsigned last = 0;

		if (i >= n)
			a.b[15 - (i % 16)] ^= (uint8_t)(1u << (i % 8));
		for (j = 0; j < n; j++)
			want += (size_t)cidr_contains(&ranges[j], &a);
		found = cidr_tree_lookup(t, &a, got, TREE_RANGES);
		if (found != want)
			abort();
		for (j = 0; j < found; j++) {
			if (got[j] >= n || !cidr_contains(&ranges[got[j]], &a) ||
			    ranges[got[j]].prefixlen < last)
				abort();
			last = ranges[got[j]].prefixlen;
		}
	}
	cidr_tree_free(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text;

	if (size > INPUT_MAX)
		return 0;
	text = malloc(size + 1);
	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	check_addr(text);
	check_range(text);
	free(text);
	check_tree(data, size);
	return 0;
}
