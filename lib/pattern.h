/*
 * pattern - SASL user patterns and an index that finds every pattern matching a
 * user without scanning the exact and domain patterns.
 *
 * Pattern forms (case-insensitive: ASCII, and the Unicode case folding of
 * utf8_fold(), see utf8.h):
 *   alice@example.com   exact user
 *   alice               exact user without a realm
 *   @example.com        every user whose realm/domain part is example.com
 *   scanner-*@example.com, ?, [...]   shell glob (fnmatch) over the whole user;
 *                                     '?' and [...] take one character
 * Valid UTF-8 without control, blank or invisible characters (utf8_cp_unsafe),
 * 1..320 bytes; "@" alone, "a@@b" and a glob in a domain pattern are rejected.
 */
#ifndef SASLGATE_PATTERN_H
#define SASLGATE_PATTERN_H

#include <stddef.h>

#include "util.h"

#define PATTERN_MAX 320

enum pattern_kind { PATTERN_EXACT, PATTERN_DOMAIN, PATTERN_GLOB };

struct pattern {
	enum pattern_kind kind;
	/* folded (utf8_fold); for PATTERN_DOMAIN the domain without the '@' */
	char text[PATTERN_MAX + 1];
};

/* Validates and normalises text. Returns 0, or -1 with the reason in err. */
int pattern_parse(const char *text, struct pattern *out, struct sg_err *err);

/* "exact", "domain" or "glob". */
const char *pattern_kind_name(enum pattern_kind kind);

/* 1 if the pattern matches user, which must already be folded with
 * utf8_fold() (it may hold invalid UTF-8: such bytes match only themselves,
 * '?' and '*'). */
int pattern_match(const struct pattern *p, const char *user_lower);

/*
 * userindex: patterns, each carrying an opaque value (an exception, a policy
 * list entry). Exact and domain patterns are hashed; globs are kept in a list
 * and tested one by one (they are expected to be few).
 */
struct userindex;

struct userindex *userindex_create(void);
/* The same, sized for about `expected` exact patterns (no rehashing while a
 * large snapshot is built). */
struct userindex *userindex_create_sized(size_t expected);
/* Adds a parsed pattern with its value. 0, or -1 on allocation failure. */
int userindex_add(struct userindex *idx, const struct pattern *p, void *value);
/* Calls fn(value, pattern, arg) for every pattern matching user_lower (folded
 * with utf8_fold()). The index stores each pattern only as long as its text:
 * fn may read through the pointer but must not copy *pattern by value. Matches are reported (exact
 * first, then domain, then globs); stops when fn returns non-zero and returns
 * that value, else 0. Never allocates; safe for concurrent readers. */
int userindex_lookup(const struct userindex *idx, const char *user_lower,
                     int (*fn)(void *value, const struct pattern *p, void *arg), void *arg);
size_t userindex_count(const struct userindex *idx);
/* Frees the index (not the values) and sets *idx to NULL. */
void userindex_free(struct userindex **idx);

#endif
