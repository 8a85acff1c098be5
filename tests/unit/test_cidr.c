/* Unit tests for lib/cidr.c. */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cidr.h"
#include "util.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ipaddr_format() and cidr_format() write what inet_ntop() writes: every
 * pattern of zero and non-zero groups (the "::" run: longest, first of
 * equals, at least two), groups of every width, the IPv4 forms (mapped,
 * compatible) and random addresses. */
static void expect_like_inet_ntop(const struct ipaddr *a)
{
	char want[INET6_ADDRSTRLEN], got[INET6_ADDRSTRLEN], want_net[INET6_ADDRSTRLEN + 8],
	    got_net[INET6_ADDRSTRLEN + 8];
	struct cidr c;
	int v4 = ipaddr_is_v4(a);

	assert_non_null(
	    inet_ntop(v4 ? AF_INET : AF_INET6, v4 ? a->b + 12 : a->b, want, sizeof(want)));
	assert_int_equal(ipaddr_format(a, got, sizeof(got)), 0);
	assert_string_equal(got, want);
	c.net = *a;
	c.prefixlen = 128;
	snprintf(want_net, sizeof(want_net), "%s/%u", want, v4 ? 32u : 128u);
	assert_int_equal(cidr_format(&c, got_net, sizeof(got_net)), 0);
	assert_string_equal(got_net, want_net);
}

static void test_format_like_inet_ntop(void **state)
{
	static const unsigned values[] = {0x1,   0xf,    0x10,   0xab,  0x100,
	                                  0xfff, 0x1000, 0xffff, 0x2001};
	static const uint8_t octets[] = {0, 1, 9, 10, 99, 100, 199, 255};
	struct ipaddr a;
	uint32_t rng = 12345;

	(void)state;
	for (unsigned pattern = 0; pattern < 256; pattern++)
		for (size_t v = 0; v < sizeof(values) / sizeof(values[0]); v++) {
			memset(&a, 0, sizeof(a));
			for (int i = 0; i < 8; i++)
				if (pattern & (1u << i)) {
					a.b[2 * i] = (uint8_t)(values[(v + (size_t)i) % 9] >> 8);
					a.b[2 * i + 1] = (uint8_t)values[(v + (size_t)i) % 9];
				}
			expect_like_inet_ntop(&a);
			/* the same tail behind ::ffff: (IPv4-mapped) and ::ffff:0: */
			memset(a.b, 0, 10);
			a.b[10] = a.b[11] = 0xff;
			expect_like_inet_ntop(&a);
			a.b[8] = 0;
			a.b[9] = 0;
			a.b[10] = 0;
			a.b[11] = 0;
			a.b[12] |= 1;
			expect_like_inet_ntop(&a);
		}
	for (size_t i = 0; i < 8 * 8 * 8 * 8; i++) {
		uint8_t q[4] = {octets[i & 7], octets[(i >> 3) & 7], octets[(i >> 6) & 7],
		                octets[(i >> 9) & 7]};

		memset(&a, 0, sizeof(a));
		a.b[10] = a.b[11] = 0xff;
		memcpy(a.b + 12, q, 4);
		expect_like_inet_ntop(&a);
	}
	for (int n = 0; n < 20000; n++) {
		for (int i = 0; i < 16; i++) {
			rng = rng * 1103515245u + 12345u;
			/* mostly zero bytes, so that runs of zero groups are common */
			a.b[i] = (rng >> 16) % 3 == 0 ? (uint8_t)(rng >> 8) : 0;
		}
		expect_like_inet_ntop(&a);
	}
}

static const struct {
	const char *text;
	const char *formatted; /* NULL: must be rejected */
	int v4;
} addr_cases[] = {
    {"192.0.2.1", "192.0.2.1", 1},
    {"0.0.0.0", "0.0.0.0", 1},
    {"255.255.255.255", "255.255.255.255", 1},
    {"2001:db8::1", "2001:db8::1", 0},
    {"2001:DB8::A", "2001:db8::a", 0},
    {"[2001:db8::1]", "2001:db8::1", 0},
    {"IPv6:2001:db8::1", "2001:db8::1", 0},
    {"ipv6:::1", "::1", 0},
    {"::1", "::1", 0},
    {"::", "::", 0},
    {"::ffff:192.0.2.7", "192.0.2.7", 1},
    {"::ffff:c000:207", "192.0.2.7", 1},
    {"[192.0.2.1]", "192.0.2.1", 1},
    {"IPv6:[::1]", "::1", 0},
    {"", NULL, 0},
    {"10.0.0.300", NULL, 0},
    {"10.0.0", NULL, 0},
    {"10.0.0.1.2", NULL, 0},
    {"010.0.0.1", NULL, 0},
    {" 10.0.0.1", NULL, 0},
    {"10.0.0.1 ", NULL, 0},
    {"2001:db8::1::2", NULL, 0},
    {"2001:db8:::1", NULL, 0},
    {"fe80::1%eth0", NULL, 0},
    {"[2001:db8::1", NULL, 0},
    {"2001:db8::1]", NULL, 0},
    {"IPv6:192.0.2.1", NULL, 0},
    {"example.com", NULL, 0},
    {"1:2:3:4:5:6:7:8:9", NULL, 0},
};

static void test_ipaddr_parse(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < N(addr_cases); i++) {
		struct ipaddr a;
		struct sg_err err;
		char buf[INET6_ADDRSTRLEN];
		int r = ipaddr_parse(addr_cases[i].text, &a, &err);

		if (addr_cases[i].formatted == NULL) {
			if (r != -1)
				fail_msg("accepted bad address \"%s\"", addr_cases[i].text);
			assert_non_null(strstr(err.text, "address"));
			continue;
		}
		if (r != 0)
			fail_msg("rejected \"%s\": %s", addr_cases[i].text, err.text);
		assert_int_equal(ipaddr_is_v4(&a), addr_cases[i].v4);
		assert_int_equal(ipaddr_format(&a, buf, sizeof(buf)), 0);
		assert_string_equal(buf, addr_cases[i].formatted);
	}
}

/* ipaddr_parse() takes plain dotted quads itself: it must agree with
 * inet_pton(AF_INET) on every string of digits and dots, leading zeros,
 * overlong numbers and missing parts included. */
static void test_ipaddr_parse_v4_like_inet_pton(void **state)
{
	static const char alphabet[] = "0123456789..";
	static const char *const fixed[] = {
	    "0.0.0.0",    "255.255.255.255", "256.1.1.1",  "1.2.3",        "1.2.3.4.",
	    ".1.2.3.4",   "01.2.3.4",        "1.2.3.04",   "1.2.3.0",      "1..3.4",
	    "1000.2.3.4", "1.2.3.4x",        "10.0.0.255", "192.168.001.1"};
	uint64_t r = 12345;
	char text[24];

	(void)state;
	for (int t = 0; t < 200000 + (int)(sizeof(fixed) / sizeof(fixed[0])); t++) {
		struct ipaddr a;
		uint8_t want[4];
		int n, ok;

		if (t < (int)(sizeof(fixed) / sizeof(fixed[0]))) {
			snprintf(text, sizeof(text), "%s", fixed[t]);
		} else {
			r = r * 6364136223846793005ULL + 1442695040888963407ULL;
			n = 1 + (int)(r >> 59) % 16;
			for (int i = 0; i < n; i++) {
				r = r * 6364136223846793005ULL + 1442695040888963407ULL;
				text[i] = alphabet[(r >> 40) % (sizeof(alphabet) - 1)];
			}
			text[n] = '\0';
		}
		ok = inet_pton(AF_INET, text, want) == 1;
		assert_int_equal(ipaddr_parse(text, &a, NULL) == 0, ok);
		if (ok) {
			assert_true(ipaddr_is_v4(&a));
			assert_memory_equal(a.b + 12, want, 4);
		}
	}
}

static void test_ipaddr_format_small(void **state)
{
	struct ipaddr a;
	char buf[8];

	(void)state;
	assert_int_equal(ipaddr_parse("2001:db8::1234", &a, NULL), 0);
	assert_int_equal(ipaddr_format(&a, buf, sizeof(buf)), -1);
	assert_int_equal(ipaddr_parse("1.2.3.4", &a, NULL), 0);
	assert_int_equal(ipaddr_format(&a, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "1.2.3.4");
}

static const struct {
	const char *text;
	const char *formatted; /* NULL: rejected */
	unsigned prefixlen;    /* in the IPv6 space */
	const char *err_has;   /* for rejections: part of the message */
} cidr_cases[] = {
    {"10.0.0.0/8", "10.0.0.0/8", 104, NULL},
    {"192.0.2.0/24", "192.0.2.0/24", 120, NULL},
    {"192.0.2.1", "192.0.2.1/32", 128, NULL},
    {"192.0.2.1/32", "192.0.2.1/32", 128, NULL},
    {"0.0.0.0/0", "0.0.0.0/0", 96, NULL},
    {"2001:db8::/32", "2001:db8::/32", 32, NULL},
    {"2001:DB8::/32", "2001:db8::/32", 32, NULL},
    {"::1", "::1/128", 128, NULL},
    {"::/0", "::/0", 0, NULL},
    {"[2001:db8::]/48", "2001:db8::/48", 48, NULL},
    {"::ffff:10.0.0.0/104", "10.0.0.0/8", 104, NULL},
    {"::ffff:0:0/96", "0.0.0.0/0", 96, NULL},
    {"127.0.0.0/8", "127.0.0.0/8", 104, NULL},
    {"10.0.0.300/8", NULL, 0, "bad address"},
    {"10.1.0.0/8", NULL, 0, "did you mean 10.0.0.0/8?"},
    {"192.0.2.1/24", NULL, 0, "did you mean 192.0.2.0/24?"},
    {"2001:db8::1/32", NULL, 0, "did you mean 2001:db8::/32?"},
    {"10.0.0.0/33", NULL, 0, "prefix length 33"},
    {"2001:db8::/129", NULL, 0, "prefix length 129"},
    {"10.0.0.0/", NULL, 0, "prefix"},
    {"10.0.0.0/-1", NULL, 0, "prefix"},
    {"10.0.0.0/+8", NULL, 0, "prefix"},
    {"10.0.0.0/8x", NULL, 0, "prefix"},
    {"10.0.0.0/0008", NULL, 0, "prefix"},
    {"10.0.0.0/8/8", NULL, 0, "prefix"},
    {"10.0.0.0 /8", NULL, 0, "bad address"},
    {"/8", NULL, 0, "bad address"},
    {"", NULL, 0, "empty"},
    {"::ffff:10.0.0.0/8", NULL, 0, "host bits"},
};

static void test_cidr_parse(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < N(cidr_cases); i++) {
		struct cidr c;
		struct sg_err err;
		char buf[64];
		int r = cidr_parse(cidr_cases[i].text, &c, &err);

		if (cidr_cases[i].formatted == NULL) {
			if (r != -1)
				fail_msg("accepted bad range \"%s\"", cidr_cases[i].text);
			if (strstr(err.text, cidr_cases[i].err_has) == NULL)
				fail_msg("\"%s\": message \"%s\" lacks \"%s\"", cidr_cases[i].text,
				         err.text, cidr_cases[i].err_has);
			continue;
		}
		if (r != 0)
			fail_msg("rejected \"%s\": %s", cidr_cases[i].text, err.text);
		assert_int_equal(c.prefixlen, cidr_cases[i].prefixlen);
		assert_int_equal(cidr_format(&c, buf, sizeof(buf)), 0);
		assert_string_equal(buf, cidr_cases[i].formatted);
	}
}

static const struct {
	const char *range, *addr;
	int in;
} contains_cases[] = {
    {"10.0.0.0/8", "10.255.1.2", 1},
    {"10.0.0.0/8", "11.0.0.0", 0},
    {"10.0.0.0/8", "::ffff:10.1.2.3", 1},
    {"10.0.0.0/8", "::a01:203", 0}, /* IPv4-compatible, not mapped */
    {"0.0.0.0/0", "1.2.3.4", 1},
    {"0.0.0.0/0", "2001:db8::1", 0},
    {"::/0", "2001:db8::1", 1},
    {"::/0", "1.2.3.4", 1},
    {"192.0.2.1", "192.0.2.1", 1},
    {"192.0.2.1", "192.0.2.2", 0},
    {"2001:db8::/32", "2001:db8:ffff::1", 1},
    {"2001:db8::/32", "2001:db9::1", 0},
    {"2001:db8::/65", "2001:db8::7fff:ffff:ffff:ffff", 1},
    {"2001:db8::/65", "2001:db8::8000:0:0:0", 0},
    {"::1", "::1", 1},
    {"::1", "::2", 0},
};

static void test_contains(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < N(contains_cases); i++) {
		struct cidr c;
		struct ipaddr a;

		assert_int_equal(cidr_parse(contains_cases[i].range, &c, NULL), 0);
		assert_int_equal(ipaddr_parse(contains_cases[i].addr, &a, NULL), 0);
		if (cidr_contains(&c, &a) != contains_cases[i].in)
			fail_msg("%s contains %s: expected %d", contains_cases[i].range,
			         contains_cases[i].addr, contains_cases[i].in);
	}
}

static const struct {
	const char *addr, *net;
} network_cases[] = {
    {"192.0.2.77", "192.0.2.0/24"},
    {"::ffff:10.9.8.7", "10.9.8.0/24"},
    {"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
    {"::1", "::/64"},
};

static void test_network_of(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < N(network_cases); i++) {
		struct ipaddr a;
		struct cidr c;
		char buf[64];

		assert_int_equal(ipaddr_parse(network_cases[i].addr, &a, NULL), 0);
		cidr_network_of(&a, &c);
		assert_int_equal(cidr_format(&c, buf, sizeof(buf)), 0);
		assert_string_equal(buf, network_cases[i].net);
		assert_true(cidr_contains(&c, &a));
	}
}

static void tree_add(struct cidr_tree *t, const char *range, uint32_t value)
{
	struct cidr c;
	struct sg_err err;

	if (cidr_parse(range, &c, &err) != 0)
		fail_msg("%s", err.text);
	assert_int_equal(cidr_tree_insert(t, &c, value), 0);
}

static const struct {
	const char *range;
	uint32_t value;
} nested_ranges[] = {
    {"10.1.2.0/24", 3},     {"10.0.0.0/8", 1},     {"10.1.0.0/16", 2},  {"10.1.2.3", 4},
    {"10.1.2.0/24", 5},     {"0.0.0.0/0", 0},      {"::/0", 100},       {"2001:db8::/32", 101},
    {"2001:db8::/48", 102}, {"192.168.0.0/16", 7}, {"10.128.0.0/9", 8}, {"10.1.3.0/24", 9},
};

static const struct {
	const char *addr;
	uint32_t want[8];
	size_t n;
} nested_lookups[] = {
    {"10.1.2.3", {100, 0, 1, 2, 3, 5, 4}, 7},
    {"10.1.2.4", {100, 0, 1, 2, 3, 5}, 6},
    {"10.1.3.4", {100, 0, 1, 2, 9}, 5},
    {"10.2.0.1", {100, 0, 1}, 3},
    {"10.200.0.1", {100, 0, 1, 8}, 4},
    {"::ffff:10.1.2.3", {100, 0, 1, 2, 3, 5, 4}, 7},
    {"192.168.1.1", {100, 0, 7}, 3},
    {"8.8.8.8", {100, 0}, 2},
    {"2001:db8::1", {100, 101, 102}, 3},
    {"2001:db8:1::1", {100, 101}, 2},
    {"2001:db9::1", {100}, 1},
};

static void test_tree_nested(void **state)
{
	struct cidr_tree *t = cidr_tree_create();
	size_t i, j;

	(void)state;
	assert_non_null(t);
	for (i = 0; i < N(nested_ranges); i++)
		tree_add(t, nested_ranges[i].range, nested_ranges[i].value);
	for (i = 0; i < N(nested_lookups); i++) {
		struct ipaddr a;
		uint32_t got[16];
		size_t n;

		assert_int_equal(ipaddr_parse(nested_lookups[i].addr, &a, NULL), 0);
		n = cidr_tree_lookup(t, &a, got, N(got));
		if (n != nested_lookups[i].n)
			fail_msg("%s: %zu values, expected %zu", nested_lookups[i].addr, n,
			         nested_lookups[i].n);
		for (j = 0; j < n; j++)
			assert_int_equal(got[j], nested_lookups[i].want[j]);
	}
	assert_true(cidr_tree_memory(t) > 0);
	cidr_tree_free(&t);
	assert_null(t);
	cidr_tree_free(&t);
}

static void test_tree_empty_and_max(void **state)
{
	struct cidr_tree *t = cidr_tree_create();
	struct ipaddr a;
	uint32_t got[3] = {77, 77, 77};

	(void)state;
	assert_int_equal(ipaddr_parse("10.1.2.3", &a, NULL), 0);
	assert_int_equal(cidr_tree_lookup(t, &a, got, N(got)), 0);
	tree_add(t, "10.0.0.0/8", 1);
	tree_add(t, "10.1.0.0/16", 2);
	tree_add(t, "10.1.2.0/24", 3);
	tree_add(t, "10.1.2.3/32", 4);
	/* more values than room: the total is reported, only max are stored */
	assert_int_equal(cidr_tree_lookup(t, &a, got, 2), 4);
	assert_int_equal(got[0], 1);
	assert_int_equal(got[1], 2);
	assert_int_equal(got[2], 77);
	assert_int_equal(cidr_tree_lookup(t, &a, NULL, 0), 4);
	cidr_tree_free(&t);
}

/* Deterministic xorshift so failures reproduce. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void random_range(struct cidr *c)
{
	size_t i;

	memset(&c->net, 0, sizeof(c->net));
	if (rnd() % 2) {
		/* IPv4 in a small space so that ranges nest and collide */
		c->net.b[10] = c->net.b[11] = 0xff;
		c->net.b[12] = 10;
		c->net.b[13] = (uint8_t)(rnd() % 4);
		c->net.b[14] = (uint8_t)rnd();
		c->net.b[15] = (uint8_t)rnd();
		c->prefixlen = (uint8_t)(96 + 8 + rnd() % 25);
	} else {
		c->net.b[0] = 0x20;
		c->net.b[1] = 0x01;
		for (i = 2; i < 16; i++)
			c->net.b[i] = (uint8_t)(i < 5 ? rnd() % 3 : rnd());
		c->prefixlen = (uint8_t)(16 + rnd() % 113);
	}
	for (i = 0; i < 16; i++) {
		unsigned bits = c->prefixlen > i * 8 ? c->prefixlen - (unsigned)i * 8 : 0;

		if (bits < 8)
			c->net.b[i] &= (uint8_t)(0xff00 >> bits);
	}
}

static void random_addr_near(const struct cidr *ranges, size_t n, struct ipaddr *a)
{
	size_t i;

	*a = ranges[rnd() % n].net;
	for (i = 13; i < 16; i++)
		if (rnd() % 2)
			a->b[i] = (uint8_t)rnd();
}

/* The tree must agree with a linear scan over every range, in order of
 * increasing prefix length. */
static void test_tree_many_vs_scan(void **state)
{
	enum { NRANGES = 3000, NLOOKUPS = 5000 };
	struct cidr *ranges = calloc(NRANGES, sizeof(*ranges));
	struct cidr_tree *t = cidr_tree_create();
	size_t i, j, k;

	(void)state;
	for (i = 0; i < NRANGES; i++) {
		random_range(&ranges[i]);
		assert_int_equal(cidr_tree_insert(t, &ranges[i], (uint32_t)i), 0);
	}
	for (k = 0; k < NLOOKUPS; k++) {
		struct ipaddr a;
		uint32_t got[NRANGES];
		size_t n, m = 0;
		unsigned last_len = 0;

		random_addr_near(ranges, NRANGES, &a);
		n = cidr_tree_lookup(t, &a, got, NRANGES);
		for (j = 0; j < NRANGES; j++)
			m += (size_t)cidr_contains(&ranges[j], &a);
		assert_int_equal(n, m);
		for (j = 0; j < n; j++) {
			assert_true(got[j] < NRANGES);
			assert_true(cidr_contains(&ranges[got[j]], &a));
			assert_true(ranges[got[j]].prefixlen >= last_len);
			last_len = ranges[got[j]].prefixlen;
		}
	}
	cidr_tree_free(&t);
	free(ranges);
}

/* 100,000 /24 ranges: every one is found, and its neighbours are not. */
static void test_tree_large(void **state)
{
	enum { NRANGES = 100000 };
	struct cidr_tree *t = cidr_tree_create();
	struct cidr c;
	struct ipaddr a;
	uint32_t got[4];
	uint32_t i;

	(void)state;
	memset(&c, 0, sizeof(c));
	c.net.b[10] = c.net.b[11] = 0xff;
	c.prefixlen = 120;
	for (i = 0; i < NRANGES; i++) {
		uint32_t net = 0x0a000000u + i * 512; /* every other /24 */

		c.net.b[12] = (uint8_t)(net >> 24);
		c.net.b[13] = (uint8_t)(net >> 16);
		c.net.b[14] = (uint8_t)(net >> 8);
		assert_int_equal(cidr_tree_insert(t, &c, i), 0);
	}
	for (i = 0; i < NRANGES; i++) {
		uint32_t net = 0x0a000000u + i * 512;

		a = c.net;
		a.b[12] = (uint8_t)(net >> 24);
		a.b[13] = (uint8_t)(net >> 16);
		a.b[14] = (uint8_t)(net >> 8);
		a.b[15] = (uint8_t)i;
		assert_int_equal(cidr_tree_lookup(t, &a, got, 4), 1);
		assert_int_equal(got[0], i);
		net += 256;
		a.b[13] = (uint8_t)(net >> 16);
		a.b[14] = (uint8_t)(net >> 8);
		assert_int_equal(cidr_tree_lookup(t, &a, got, 4), 0);
	}
	cidr_tree_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ipaddr_parse),
	    cmocka_unit_test(test_ipaddr_format_small),
	    cmocka_unit_test(test_format_like_inet_ntop),
	    cmocka_unit_test(test_ipaddr_parse_v4_like_inet_pton),
	    cmocka_unit_test(test_cidr_parse),
	    cmocka_unit_test(test_contains),
	    cmocka_unit_test(test_network_of),
	    cmocka_unit_test(test_tree_nested),
	    cmocka_unit_test(test_tree_empty_and_max),
	    cmocka_unit_test(test_tree_many_vs_scan),
	    cmocka_unit_test(test_tree_large),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
