/*
 * request_parse - the Postfix policy delegation request parser: "name=value"
 * lines ending with an empty line (SMTPD_POLICY_README). Pure: bytes in,
 * attributes out; no I/O, no logging, no globals, so the daemon and the fuzz
 * target drive exactly the same code.
 *
 * The parser is incremental: feed it whatever arrived on the socket; it
 * consumes up to and including the empty line that ends a request and
 * reports DONE, or asks for MORE, or reports an ERROR with a reason. Every
 * limit is enforced as soon as it is crossed, without buffering the offending
 * input. Only the attributes saslgate uses are kept (enum policy_attr); others
 * are checked for syntax and skipped.
 *
 * Syntax: LF ends a line, one CR before the LF is tolerated and removed. A line
 * needs a non-empty name and an '='; an empty value is fine. A NUL byte, a line
 * without '=', a line, a request or an attribute count over its limit, an
 * empty request, or a request that is not request=smtpd_access_policy is an
 * error: the caller closes the connection without replying (the protocol
 * rule).
 */
#ifndef SASLGATE_POLICYD_REQUEST_PARSE_H
#define SASLGATE_POLICYD_REQUEST_PARSE_H

#include <stddef.h>

enum policy_attr {
	POLICY_ATTR_REQUEST,
	POLICY_ATTR_PROTOCOL_STATE,
	POLICY_ATTR_PROTOCOL_NAME,
	POLICY_ATTR_SASL_METHOD,
	POLICY_ATTR_SASL_USERNAME,
	POLICY_ATTR_CLIENT_ADDRESS,
	POLICY_ATTR_CLIENT_NAME,
	POLICY_ATTR_ENCRYPTION_PROTOCOL,
	POLICY_ATTR_ENCRYPTION_CIPHER,
	POLICY_ATTR_POLICY_CONTEXT,
	POLICY_ATTR_SERVER_PORT,
	POLICY_ATTR_QUEUE_ID,
	POLICY_ATTR_INSTANCE,
	POLICY_ATTR_SENDER,
	POLICY_ATTR_RECIPIENT,
	POLICY_ATTR_COUNT
};

/* The attribute's protocol name ("sasl_method"). */
const char *policy_attr_name(enum policy_attr a);

struct policy_limits {
	size_t max_line_bytes;    /* bytes per line, without LF and a tolerated CR */
	size_t max_attributes;    /* attribute lines per request */
	size_t max_request_bytes; /* bytes per request, every byte counted */
};

enum policy_parse_status { POLICY_PARSE_MORE, POLICY_PARSE_DONE, POLICY_PARSE_ERROR };

#define POLICY_NAME_MAX 64 /* longer names are unknown attributes (skipped) */

/* Opaque in spirit: use the functions below. Held by value in a connection. */
struct policy_parser {
	struct policy_limits lim;
	/* current line */
	char name[POLICY_NAME_MAX];
	size_t name_len; /* bytes of the name seen (may exceed the buffer) */
	size_t line_len; /* bytes of the line seen so far, before LF */
	int in_value;    /* '=' seen */
	int cur_attr;    /* known attribute being stored, or -1 */
	int last_cr;     /* last byte of the line was CR */
	/* current request */
	size_t n_attributes;
	size_t n_bytes;
	char *vals; /* values of known attributes, NUL-terminated, back to back */
	size_t vals_len, vals_cap;
	size_t off[POLICY_ATTR_COUNT]; /* offset into vals, valid when present */
	unsigned char present[POLICY_ATTR_COUNT];
	int failed;
	int done; /* a completed request is held */
	char error[128];
};

/* Initialises an empty parser with the limits (copied). Never fails. */
void policy_parser_init(struct policy_parser *p, const struct policy_limits *lim);

/* Changes the limits; they apply from the next request on. */
void policy_parser_set_limits(struct policy_parser *p, const struct policy_limits *lim);

/*
 * Consumes bytes from data[0..len). Stores in *consumed how many bytes were
 * used: all of them for MORE; up to and including the request's final LF for
 * DONE (the rest belongs to the next request); up to the offending byte for
 * ERROR. After DONE the attributes can be read until policy_parser_reset();
 * after ERROR the parser stays failed (feeding again returns ERROR) until reset.
 */
enum policy_parse_status policy_parser_feed(struct policy_parser *p, const char *data, size_t len,
                                            size_t *consumed);

/* The value of an attribute of the completed request: "" when absent. The
 * string is owned by the parser and valid until the next feed or reset. */
const char *policy_parser_get(const struct policy_parser *p, enum policy_attr a);

/* 1 if the attribute was present (even with an empty value), else 0. */
int policy_parser_has(const struct policy_parser *p, enum policy_attr a);

/* 1 if part of a request has been received (a request is in progress). */
int policy_parser_busy(const struct policy_parser *p);

/* The reason of the last ERROR ("line longer than 4096 bytes"). */
const char *policy_parser_error(const struct policy_parser *p);

/* Forgets the current request (completed, failed or partial) and releases
 * oversized buffers, ready for the next request. */
void policy_parser_reset(struct policy_parser *p);

/* Releases the buffers. The parser may be initialised again afterwards. */
void policy_parser_free(struct policy_parser *p);

#endif
