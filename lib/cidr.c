/*
 * cidr - addresses, ranges and a path-compressed binary prefix tree.
 *
 * Addresses are handled internally as two 64-bit halves (big-endian order) so
 * that prefix comparisons are two masked XORs. The tree keeps its nodes in one
 * array (indices, not pointers) and only creates a node where a range ends or
 * where two ranges diverge, so a lookup visits at most one node per distinct
 * prefix length on the path rather than one per bit.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cidr.h"

#define CIDR_TEXT_MAX 128

static const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int ipaddr_is_v4(const struct ipaddr *addr)
{
	return memcmp(addr->b, v4_mapped_prefix, sizeof(v4_mapped_prefix)) == 0;
}

/* out = the IPv4 address v4 in the IPv6 space; 0. */
static int set_v4_mapped(struct ipaddr *out, const uint8_t v4[4])
{
	memcpy(out->b, v4_mapped_prefix, sizeof(v4_mapped_prefix));
	memcpy(out->b + 12, v4, 4);
	return 0;
}

/* A plain dotted quad as inet_pton(AF_INET) takes it: four numbers 0-255
 * of one to three digits, without a leading zero. 0 with out set, or -1 for
 * anything else, which the general path then decides (the policy daemon
 * parses a client address per request; inet_pton took 270 instructions). */
static int parse_v4_quad(const char *p, uint8_t out[4])
{
	for (int i = 0; i < 4; i++) {
		unsigned v = 0;
		int digits = 0;

		if (p[0] == '0' && p[1] >= '0' && p[1] <= '9')
			return -1;
		for (; *p >= '0' && *p <= '9'; p++) {
			if (++digits > 3)
				return -1;
			v = v * 10 + (unsigned)(*p - '0');
		}
		if (digits == 0 || v > 255)
			return -1;
		out[i] = (uint8_t)v;
		if (i < 3 && *p++ != '.')
			return -1;
	}
	return *p == '\0' ? 0 : -1;
}

int ipaddr_parse(const char *text, struct ipaddr *out, struct sg_err *err)
{
	char buf[CIDR_TEXT_MAX];
	const char *p = text;
	size_t len;
	int v6_only = 0;
	uint8_t v4[4];

	if (text == NULL || *text == '\0')
		return sg_err_set(err, "empty IP address");
	if (parse_v4_quad(text, v4) == 0) {
		return set_v4_mapped(out, v4);
	}
	len = strlen(text);
	if (len >= sizeof(buf))
		return sg_err_set(err, "IP address too long");
	if (strncasecmp(p, "IPv6:", 5) == 0) {
		p += 5;
		len -= 5;
		v6_only = 1;
	}
	if (len >= 2 && p[0] == '[' && p[len - 1] == ']') {
		p++;
		len -= 2;
	}
	memcpy(buf, p, len);
	buf[len] = '\0';
	if (strchr(buf, ':') != NULL) {
		if (inet_pton(AF_INET6, buf, out->b) == 1)
			return 0;
	} else if (!v6_only && inet_pton(AF_INET, buf, v4) == 1) {
		return set_v4_mapped(out, v4);
	}
	return sg_err_set(err, "invalid IP address \"%s\"", text);
}

/*
 * Address text without inet_ntop(): glibc's formats every group with
 * sprintf() (some 1,800 instructions an IPv4 address, paid at each milter
 * connection and by the writer for every usage key). The output is
 * inet_ntop()'s, byte for byte (tests/unit/test_cidr.c compares the two):
 * lowercase hex without leading zeros, the longest run of two or more zero
 * groups (the first of equal ones) as "::", and the IPv4 tail of ::ffff:0:0/96
 * and of ::/96 (the IPv4-compatible form) in dotted quad.
 */
static char *put_uint(char *p, unsigned v)
{
	char digits[10];
	int n = 0;

	do
		digits[n++] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	while (n > 0)
		*p++ = digits[--n];
	return p;
}

static char *put_quad(char *p, const uint8_t *b)
{
	for (int i = 0; i < 4; i++) {
		if (i > 0)
			*p++ = '.';
		p = put_uint(p, b[i]);
	}
	return p;
}

static char *put_hex16(char *p, unsigned v)
{
	static const char hex[] = "0123456789abcdef";
	int shift = 12;

	while (shift > 0 && (v >> shift) == 0)
		shift -= 4;
	for (; shift >= 0; shift -= 4)
		*p++ = hex[(v >> shift) & 0xf];
	return p;
}

static char *put_v6(char *p, const uint8_t *b)
{
	unsigned words[8];
	int best = -1, best_len = 0, cur = -1;

	for (int i = 0; i < 8; i++) {
		words[i] = (unsigned)b[i + i] << 8 | b[i + i + 1];
		if (words[i] == 0) {
			if (cur < 0)
				cur = i;
			if (i - cur + 1 > best_len) {
				best = cur;
				best_len = i - cur + 1;
			}
		} else {
			cur = -1;
		}
	}
	if (best_len < 2)
		best = -1;
	for (int i = 0; i < 8; i++) {
		if (best >= 0 && i >= best && i < best + best_len) {
			if (i == best)
				*p++ = ':';
			continue;
		}
		if (i > 0)
			*p++ = ':';
		if (i == 6 && best == 0 && (best_len == 6 || (best_len == 5 && words[5] == 0xffff)))
			return put_quad(p, b + 12);
		p = put_hex16(p, words[i]);
	}
	if (best >= 0 && best + best_len == 8)
		*p++ = ':';
	return p;
}

int ipaddr_format(const struct ipaddr *addr, char *buf, size_t len)
{
	char text[INET6_ADDRSTRLEN], *end;
	size_t n;

	end = ipaddr_is_v4(addr) ? put_quad(text, addr->b + 12) : put_v6(text, addr->b);
	n = (size_t)(end - text);
	if (n >= len) {
		if (len > 0)
			buf[0] = '\0';
		return -1;
	}
	memcpy(buf, text, n);
	buf[n] = '\0';
	return 0;
}

static uint64_t load_be64(const uint8_t *p)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

static void store_be64(uint8_t *p, uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static uint64_t mask_hi(unsigned len)
{
	if (len == 0)
		return 0;
	if (len >= 64)
		return ~(uint64_t)0;
	return ~(uint64_t)0 << (64 - len);
}

static uint64_t mask_lo(unsigned len)
{
	if (len <= 64)
		return 0;
	if (len >= 128)
		return ~(uint64_t)0;
	return ~(uint64_t)0 << (128 - len);
}

/* Zeroes the host bits of addr beyond len. */
static void apply_mask(struct ipaddr *addr, unsigned len)
{
	store_be64(addr->b, load_be64(addr->b) & mask_hi(len));
	store_be64(addr->b + 8, load_be64(addr->b + 8) & mask_lo(len));
}

int cidr_parse(const char *text, struct cidr *out, struct sg_err *err)
{
	char addrtext[CIDR_TEXT_MAX], suggestion[INET6_ADDRSTRLEN + 8];
	const char *slash;
	struct cidr masked;
	unsigned long prefix, maxprefix;
	size_t alen;
	int v6;

	if (text == NULL || *text == '\0')
		return sg_err_set(err, "empty CIDR range");
	if (strlen(text) >= sizeof(addrtext))
		return sg_err_set(err, "CIDR range too long");
	slash = strchr(text, '/');
	alen = slash != NULL ? (size_t)(slash - text) : strlen(text);
	memcpy(addrtext, text, alen);
	addrtext[alen] = '\0';
	if (ipaddr_parse(addrtext, &out->net, NULL) < 0)
		return sg_err_set(err, "invalid CIDR range \"%s\": bad address \"%s\"", text,
		                  addrtext);
	v6 = strchr(addrtext, ':') != NULL;
	maxprefix = v6 ? 128 : 32;
	if (slash == NULL) {
		prefix = maxprefix;
	} else {
		const char *p = slash + 1;

		prefix = 0;
		if (*p == '\0' || strlen(p) > 3)
			return sg_err_set(err, "invalid CIDR range \"%s\": bad prefix length",
			                  text);
		for (; *p != '\0'; p++) {
			if (*p < '0' || *p > '9')
				return sg_err_set(
				    err, "invalid CIDR range \"%s\": bad prefix length", text);
			prefix = prefix * 10 + (unsigned long)(*p - '0');
		}
		if (prefix > maxprefix)
			return sg_err_set(
			    err, "invalid CIDR range \"%s\": prefix length %lu exceeds %lu", text,
			    prefix, maxprefix);
	}
	out->prefixlen = (uint8_t)(v6 ? prefix : prefix + 96);
	masked = *out;
	apply_mask(&masked.net, masked.prefixlen);
	if (memcmp(&masked.net, &out->net, sizeof(masked.net)) != 0) {
		if (cidr_format(&masked, suggestion, sizeof(suggestion)) < 0)
			suggestion[0] = '\0';
		return sg_err_set(err, "invalid CIDR range \"%s\": host bits set; did you mean %s?",
		                  text, suggestion);
	}
	return 0;
}

int ipaddr_from_sockaddr(const struct sockaddr *sa, struct ipaddr *out, char *text, size_t len)
{
	char buf[INET6_ADDRSTRLEN], *end;
	size_t n;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;

		set_v4_mapped(out, (const uint8_t *)&sin->sin_addr);
		end = put_quad(buf, out->b + 12);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;

		memcpy(out->b, &sin6->sin6_addr, 16);
		end = put_v6(buf, out->b);
	} else {
		return -1;
	}
	n = (size_t)(end - buf);
	if (n >= len)
		return -1;
	memcpy(text, buf, n);
	text[n] = '\0';
	return 0;
}

int cidr_format(const struct cidr *range, char *buf, size_t len)
{
	char text[INET6_ADDRSTRLEN + 4], *end;
	unsigned prefix = range->prefixlen;
	size_t n;

	if (prefix > 128)
		return -1;
	if (ipaddr_is_v4(&range->net) && prefix >= 96) {
		end = put_quad(text, range->net.b + 12);
		prefix -= 96;
	} else {
		end = put_v6(text, range->net.b);
	}
	*end++ = '/';
	end = put_uint(end, prefix);
	n = (size_t)(end - text);
	if (n >= len) {
		if (len > 0)
			buf[0] = '\0';
		return -1;
	}
	memcpy(buf, text, n);
	buf[n] = '\0';
	return 0;
}

int cidr_contains(const struct cidr *range, const struct ipaddr *addr)
{
	uint64_t hi = load_be64(addr->b) ^ load_be64(range->net.b);
	uint64_t lo = load_be64(addr->b + 8) ^ load_be64(range->net.b + 8);

	return ((hi & mask_hi(range->prefixlen)) | (lo & mask_lo(range->prefixlen))) == 0;
}

void cidr_network_of(const struct ipaddr *addr, struct cidr *out)
{
	out->net = *addr;
	out->prefixlen = ipaddr_is_v4(addr) ? 96 + 24 : 64;
	apply_mask(&out->net, out->prefixlen);
}

/*
 * The tree. Node 0 is the root (prefix ::/0). Every node's prefix extends its
 * parent's; child[b] continues with bit b at position len. A node with no
 * values only joins two diverging branches.
 */
#define NO_NODE 0u

struct cidr_node {
	uint64_t hi, lo;   /* prefix, host bits zero */
	uint64_t mhi, mlo; /* its mask, precomputed for the lookup */
	uint32_t child[2]; /* NO_NODE (0) when absent: the root is never a child */
	uint32_t *values;
	uint32_t n_values, cap_values;
	uint8_t len;
};

struct cidr_tree {
	struct cidr_node *nodes;
	uint32_t n_nodes, cap_nodes;
	size_t value_bytes;
};

static int bit_at(uint64_t hi, uint64_t lo, unsigned pos)
{
	if (pos < 64)
		return (int)((hi >> (63 - pos)) & 1);
	return (int)((lo >> (127 - pos)) & 1);
}

static unsigned common_len(uint64_t ahi, uint64_t alo, uint64_t bhi, uint64_t blo)
{
	uint64_t x = ahi ^ bhi;

	if (x != 0)
		return (unsigned)__builtin_clzll(x);
	x = alo ^ blo;
	if (x != 0)
		return 64 + (unsigned)__builtin_clzll(x);
	return 128;
}

struct cidr_tree *cidr_tree_create(void)
{
	struct cidr_tree *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->cap_nodes = 64;
	t->nodes = calloc(t->cap_nodes, sizeof(*t->nodes));
	if (t->nodes == NULL) {
		free(t);
		return NULL;
	}
	t->n_nodes = 1; /* the root, ::/0, zeroed */
	return t;
}

/* Appends a node; returns its index, or NO_NODE on allocation failure. */
static uint32_t node_new(struct cidr_tree *t, uint64_t hi, uint64_t lo, unsigned len)
{
	struct cidr_node *n;

	if (t->n_nodes == t->cap_nodes) {
		uint32_t cap = t->cap_nodes * 2;
		struct cidr_node *nodes;

		if (cap < t->cap_nodes)
			return NO_NODE;
		nodes = realloc(t->nodes, (size_t)cap * sizeof(*nodes));
		if (nodes == NULL)
			return NO_NODE;
		t->nodes = nodes;
		t->cap_nodes = cap;
	}
	n = &t->nodes[t->n_nodes];
	memset(n, 0, sizeof(*n));
	n->mhi = mask_hi(len);
	n->mlo = mask_lo(len);
	n->hi = hi & n->mhi;
	n->lo = lo & n->mlo;
	n->len = (uint8_t)len;
	return t->n_nodes++;
}

static int node_add_value(struct cidr_tree *t, uint32_t idx, uint32_t value)
{
	struct cidr_node *n = &t->nodes[idx];

	if (n->n_values == n->cap_values) {
		uint32_t cap = n->cap_values ? n->cap_values * 2 : 1;
		uint32_t *v = realloc(n->values, (size_t)cap * sizeof(*v));

		if (v == NULL)
			return -1;
		t->value_bytes += (size_t)(cap - n->cap_values) * sizeof(*v);
		n->values = v;
		n->cap_values = cap;
	}
	n->values[n->n_values++] = value;
	return 0;
}

int cidr_tree_insert(struct cidr_tree *t, const struct cidr *range, uint32_t value)
{
	unsigned len = range->prefixlen > 128 ? 128 : range->prefixlen;
	uint64_t hi = load_be64(range->net.b) & mask_hi(len);
	uint64_t lo = load_be64(range->net.b + 8) & mask_lo(len);
	uint32_t cur = 0;

	for (;;) {
		struct cidr_node *n = &t->nodes[cur];
		uint32_t child, fresh, glue;
		unsigned clen;
		int b;

		if (n->len == len)
			return node_add_value(t, cur, value);
		b = bit_at(hi, lo, n->len);
		child = n->child[b];
		if (child == NO_NODE) {
			fresh = node_new(t, hi, lo, len);
			if (fresh == NO_NODE)
				return -1;
			t->nodes[cur].child[b] = fresh;
			return node_add_value(t, fresh, value);
		}
		n = &t->nodes[child];
		clen = common_len(hi, lo, n->hi, n->lo);
		if (clen > n->len)
			clen = n->len;
		if (clen > len)
			clen = len;
		if (clen == n->len) {
			cur = child;
			continue;
		}
		if (clen == len) {
			/* The new range sits between cur and child. */
			fresh = node_new(t, hi, lo, len);
			if (fresh == NO_NODE)
				return -1;
			n = &t->nodes[child];
			t->nodes[fresh].child[bit_at(n->hi, n->lo, len)] = child;
			t->nodes[cur].child[b] = fresh;
			return node_add_value(t, fresh, value);
		}
		/* They diverge at bit clen: join them under a value-less node. */
		glue = node_new(t, hi, lo, clen);
		if (glue == NO_NODE)
			return -1;
		fresh = node_new(t, hi, lo, len);
		if (fresh == NO_NODE)
			return -1; /* the unlinked glue node is harmless */
		n = &t->nodes[child];
		t->nodes[glue].child[bit_at(n->hi, n->lo, clen)] = child;
		t->nodes[glue].child[bit_at(hi, lo, clen)] = fresh;
		t->nodes[cur].child[b] = glue;
		return node_add_value(t, fresh, value);
	}
}

size_t cidr_tree_lookup(const struct cidr_tree *t, const struct ipaddr *addr, uint32_t *values,
                        size_t max)
{
	uint64_t hi = load_be64(addr->b), lo = load_be64(addr->b + 8);
	const struct cidr_node *nodes = t->nodes;
	uint32_t cur = 0;
	size_t total = 0;

	for (;;) {
		const struct cidr_node *n = &nodes[cur];
		uint32_t i;

		if ((((hi ^ n->hi) & n->mhi) | ((lo ^ n->lo) & n->mlo)) != 0)
			break;
		for (i = 0; i < n->n_values; i++, total++)
			if (total < max)
				values[total] = n->values[i];
		if (n->len >= 128)
			break;
		cur = n->child[bit_at(hi, lo, n->len)];
		if (cur == NO_NODE)
			break;
	}
	return total;
}

size_t cidr_tree_memory(const struct cidr_tree *t)
{
	if (t == NULL)
		return 0;
	return sizeof(*t) + (size_t)t->cap_nodes * sizeof(*t->nodes) + t->value_bytes;
}

void cidr_tree_free(struct cidr_tree **tp)
{
	struct cidr_tree *t;
	uint32_t i;

	if (tp == NULL || *tp == NULL)
		return;
	t = *tp;
	for (i = 0; i < t->n_nodes; i++)
		free(t->nodes[i].values);
	free(t->nodes);
	free(t);
	*tp = NULL;
}
