/*
 * request_parse - the Postfix policy delegation request parser (see the header
 * for the syntax and the contract). A byte-at-a-time state machine: a limit is
 * detected on the byte that crosses it, and only the values of the attributes
 * saslgate uses are stored.
 */
#include "request_parse.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Buffers above this size are released between requests, so a connection that
 * once sent a large request does not keep the memory while idle. */
#define KEEP_VALS_BYTES 4096

#define ATTR(id, text) [id] = {text, sizeof(text) - 1}

static const struct {
	const char *name;
	size_t len;
} attrs[POLICY_ATTR_COUNT] = {
    ATTR(POLICY_ATTR_REQUEST, "request"),
    ATTR(POLICY_ATTR_PROTOCOL_STATE, "protocol_state"),
    ATTR(POLICY_ATTR_PROTOCOL_NAME, "protocol_name"),
    ATTR(POLICY_ATTR_SASL_METHOD, "sasl_method"),
    ATTR(POLICY_ATTR_SASL_USERNAME, "sasl_username"),
    ATTR(POLICY_ATTR_CLIENT_ADDRESS, "client_address"),
    ATTR(POLICY_ATTR_CLIENT_NAME, "client_name"),
    ATTR(POLICY_ATTR_ENCRYPTION_PROTOCOL, "encryption_protocol"),
    ATTR(POLICY_ATTR_ENCRYPTION_CIPHER, "encryption_cipher"),
    ATTR(POLICY_ATTR_POLICY_CONTEXT, "policy_context"),
    ATTR(POLICY_ATTR_SERVER_PORT, "server_port"),
    ATTR(POLICY_ATTR_QUEUE_ID, "queue_id"),
    ATTR(POLICY_ATTR_INSTANCE, "instance"),
    ATTR(POLICY_ATTR_SENDER, "sender"),
    ATTR(POLICY_ATTR_RECIPIENT, "recipient"),
};

const char *policy_attr_name(enum policy_attr a)
{
	if ((unsigned)a >= POLICY_ATTR_COUNT)
		return "?";
	return attrs[a].name;
}

/* The attributes saslgate uses, by name length (a request has about 30
 * attributes, half of them unknown: most lines are rejected by length). */
#define ATTR_LEN_MAX  24
#define ATTRS_PER_LEN 4
static int attrs_by_len[ATTR_LEN_MAX + 1][ATTRS_PER_LEN];
static pthread_once_t attrs_once = PTHREAD_ONCE_INIT;

static void attrs_index(void)
{
	memset(attrs_by_len, -1, sizeof(attrs_by_len));
	for (int i = 0; i < POLICY_ATTR_COUNT; i++) {
		if (attrs[i].len < 4 || attrs[i].len > ATTR_LEN_MAX)
			abort(); /* a programming error: same_name() takes 4 to 24 bytes */
		int *slot = attrs_by_len[attrs[i].len];
		int k = 0;

		while (k < ATTRS_PER_LEN - 1 && slot[k] >= 0)
			k++;
		if (slot[k] >= 0)
			abort(); /* a programming error: raise ATTRS_PER_LEN */
		slot[k] = i;
	}
}

/* Whether a[0..len) and b[0..len) are equal, for 4 <= len <= 24, without a
 * call: two or three overlapping word loads (the names are short). */
static inline int same_name(const char *a, const char *b, size_t len)
{
	uint64_t x, y, x2, y2;
	uint32_t u, v, u2, v2;

	if (len < 8) {
		memcpy(&u, a, 4);
		memcpy(&v, b, 4);
		memcpy(&u2, a + len - 4, 4);
		memcpy(&v2, b + len - 4, 4);
		return ((u ^ v) | (u2 ^ v2)) == 0;
	}
	memcpy(&x, a, 8);
	memcpy(&y, b, 8);
	memcpy(&x2, a + len - 8, 8);
	memcpy(&y2, b + len - 8, 8);
	if (((x ^ y) | (x2 ^ y2)) != 0)
		return 0;
	if (len <= 16)
		return 1;
	memcpy(&x, a + 8, 8);
	memcpy(&y, b + 8, 8);
	return x == y;
}

static int attr_lookup(const char *name, size_t len)
{
	const int *slot;

	if (len > ATTR_LEN_MAX)
		return -1;
	slot = attrs_by_len[len];
	for (int k = 0; k < ATTRS_PER_LEN && slot[k] >= 0; k++)
		if (same_name(attrs[slot[k]].name, name, len))
			return slot[k];
	return -1;
}

static void line_reset(struct policy_parser *p)
{
	p->name_len = 0;
	p->line_len = 0;
	p->in_value = 0;
	p->cur_attr = -1;
	p->last_cr = 0;
}

void policy_parser_init(struct policy_parser *p, const struct policy_limits *lim)
{
	pthread_once(&attrs_once, attrs_index);
	memset(p, 0, sizeof(*p));
	p->lim = *lim;
	line_reset(p);
}

void policy_parser_set_limits(struct policy_parser *p, const struct policy_limits *lim)
{
	p->lim = *lim;
}

void policy_parser_reset(struct policy_parser *p)
{
	line_reset(p);
	p->n_attributes = 0;
	p->n_bytes = 0;
	p->vals_len = 0;
	memset(p->present, 0, sizeof(p->present));
	p->failed = 0;
	p->done = 0;
	p->error[0] = '\0';
	if (p->vals_cap > KEEP_VALS_BYTES) {
		free(p->vals);
		p->vals = NULL;
		p->vals_cap = 0;
	}
}

void policy_parser_free(struct policy_parser *p)
{
	free(p->vals);
	p->vals = NULL;
	p->vals_cap = 0;
	p->vals_len = 0;
}

static enum policy_parse_status fail(struct policy_parser *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static enum policy_parse_status fail(struct policy_parser *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->error, sizeof(p->error), fmt, ap);
	va_end(ap);
	p->failed = 1;
	return POLICY_PARSE_ERROR;
}

/* Appends one byte to the value arena. 0, or -1 if memory ran out. */
static int vals_put(struct policy_parser *p, char c)
{
	if (p->vals_len == p->vals_cap) {
		size_t cap = p->vals_cap ? p->vals_cap * 2 : 512;
		char *n = realloc(p->vals, cap);

		if (n == NULL)
			return -1;
		p->vals = n;
		p->vals_cap = cap;
	}
	p->vals[p->vals_len++] = c;
	return 0;
}

/* The empty line: checks the request as a whole. */
static enum policy_parse_status request_end(struct policy_parser *p)
{
	if (p->n_attributes == 0)
		return fail(p, "empty request");
	if (!p->present[POLICY_ATTR_REQUEST])
		return fail(p, "no request attribute");
	if (strcmp(policy_parser_get(p, POLICY_ATTR_REQUEST), "smtpd_access_policy") != 0)
		return fail(p, "unsupported request type");
	p->done = 1;
	return POLICY_PARSE_DONE;
}

/* LF: ends an attribute line or, if empty, the request. */
static enum policy_parse_status line_end(struct policy_parser *p)
{
	size_t len = p->line_len - (p->last_cr ? 1 : 0);

	if (len == 0) {
		line_reset(p);
		return request_end(p);
	}
	if (!p->in_value)
		return fail(p, "line without '='");
	if (p->cur_attr >= 0) {
		if (p->last_cr)
			p->vals_len--; /* the tolerated CR was stored with the value */
		if (vals_put(p, '\0') < 0)
			return fail(p, "out of memory");
		p->present[p->cur_attr] = 1;
	}
	p->n_attributes++;
	if (p->n_attributes > p->lim.max_attributes)
		return fail(p, "more than %zu attributes", p->lim.max_attributes);
	line_reset(p);
	return POLICY_PARSE_MORE;
}

static enum policy_parse_status line_byte(struct policy_parser *p, char c)
{
	p->line_len++;
	/* One byte past the limit is allowed only if it is the CR before LF. */
	if (p->line_len > p->lim.max_line_bytes + 1 ||
	    (p->line_len == p->lim.max_line_bytes + 1 && c != '\r'))
		return fail(p, "line longer than %zu bytes", p->lim.max_line_bytes);
	p->last_cr = c == '\r';
	if (!p->in_value) {
		if (c == '=') {
			if (p->name_len == 0)
				return fail(p, "empty attribute name");
			p->in_value = 1;
			p->cur_attr = attr_lookup(p->name, p->name_len);
			if (p->cur_attr >= 0)
				p->off[p->cur_attr] = p->vals_len;
			return POLICY_PARSE_MORE;
		}
		if (p->name_len < POLICY_NAME_MAX)
			p->name[p->name_len] = c;
		p->name_len++;
		return POLICY_PARSE_MORE;
	}
	if (p->cur_attr >= 0 && vals_put(p, c) < 0)
		return fail(p, "out of memory");
	return POLICY_PARSE_MORE;
}

/*
 * The fast path: a whole attribute line s[0..n) (without its LF and without
 * NUL bytes) at the start of a line, within every limit. Returns 1 if it was
 * consumed, 0 to leave it to the byte-at-a-time path, which also produces
 * the precise error for a bad line (an empty line, which ends the request,
 * takes that path too).
 */
static int fast_line(struct policy_parser *p, const char *s, size_t n)
{
	size_t eff = n, vlen;
	const char *eq;
	int a;

	if (n == 0)
		return 0;
	if (s[n - 1] == '\r')
		eff--;
	if (eff == 0 || eff > p->lim.max_line_bytes ||
	    p->n_bytes + n + 1 > p->lim.max_request_bytes ||
	    p->n_attributes + 1 > p->lim.max_attributes)
		return 0;
	eq = memchr(s, '=', eff);
	if (eq == NULL || eq == s)
		return 0;
	a = attr_lookup(s, (size_t)(eq - s));
	if (a >= 0) {
		vlen = eff - (size_t)(eq - s) - 1;
		if (p->vals == NULL || p->vals_cap - p->vals_len < vlen + 1) {
			size_t cap = p->vals_cap ? p->vals_cap : 512;
			char *nv;

			while (cap - p->vals_len < vlen + 1)
				cap *= 2;
			nv = realloc(p->vals, cap);
			if (nv == NULL)
				return 0;
			p->vals = nv;
			p->vals_cap = cap;
		}
		memcpy(p->vals + p->vals_len, eq + 1, vlen);
		p->off[a] = p->vals_len;
		p->vals_len += vlen;
		p->vals[p->vals_len++] = '\0';
		p->present[a] = 1;
	}
	p->n_attributes++;
	p->n_bytes += n + 1;
	return 1;
}

enum policy_parse_status policy_parser_feed(struct policy_parser *p, const char *data, size_t len,
                                            size_t *consumed)
{
	enum policy_parse_status st = POLICY_PARSE_MORE;
	const char *nul = memchr(data, '\0', len); /* lines from here on: slow path */
	size_t i = 0;

	*consumed = 0;
	if (p->failed)
		return POLICY_PARSE_ERROR;
	if (p->done)
		policy_parser_reset(p);
	while (i < len) {
		char c = data[i];

		if (p->line_len == 0) {
			const char *lf = memchr(data + i, '\n', len - i);

			if (lf != NULL && (nul == NULL || lf < nul) &&
			    fast_line(p, data + i, (size_t)(lf - data - i))) {
				i = (size_t)(lf - data) + 1;
				continue;
			}
		}
		if (p->n_bytes >= p->lim.max_request_bytes) {
			st = fail(p, "request longer than %zu bytes", p->lim.max_request_bytes);
			break;
		}
		p->n_bytes++;
		if (c == '\0') {
			st = fail(p, "NUL byte in request");
			break;
		}
		st = c == '\n' ? line_end(p) : line_byte(p, c);
		if (st == POLICY_PARSE_DONE) {
			i++;
			break;
		}
		if (st == POLICY_PARSE_ERROR)
			break;
		i++;
	}
	*consumed = i;
	return st;
}

const char *policy_parser_get(const struct policy_parser *p, enum policy_attr a)
{
	if ((unsigned)a >= POLICY_ATTR_COUNT || !p->present[a])
		return "";
	return p->vals + p->off[a];
}

int policy_parser_has(const struct policy_parser *p, enum policy_attr a)
{
	return (unsigned)a < POLICY_ATTR_COUNT && p->present[a];
}

int policy_parser_busy(const struct policy_parser *p)
{
	return p->n_bytes > 0 && !p->done;
}

const char *policy_parser_error(const struct policy_parser *p)
{
	return p->error[0] ? p->error : "no error";
}
