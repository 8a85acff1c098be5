/*
 * pattern - user patterns and the user index.
 *
 * Globs are matched by a small matcher with fnmatch(3) semantics for '*',
 * '?' and bracket expressions ('!' or '^' negation, ranges) and a literal
 * backslash (FNM_NOESCAPE): usernames such as "DOMAIN\user" exist, and unlike
 * fnmatch the matcher never allocates and never depends on the locale. It
 * works on characters: '?' and a bracket expression take one UTF-8 sequence
 * (or one byte that is not valid UTF-8, which no bracket member matches),
 * ranges compare code points, and '*' backs off a character at a time.
 * Literal text is compared byte for byte (UTF-8 is self-synchronising: a
 * valid sequence only ever matches a whole character).
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "pattern.h"
#include "utf8.h"

static int is_glob_char(char c)
{
	return c == '*' || c == '?' || c == '[';
}

/* Length of the bracket expression starting at p ('['), or 0 if unclosed. */
static size_t bracket_len(const char *p)
{
	const char *q = p + 1;

	if (*q == '!' || *q == '^')
		q++;
	if (*q == ']')
		q++;
	while (*q != '\0' && *q != ']')
		q++;
	return *q == ']' ? (size_t)(q - p) + 1 : 0;
}

/* 1 if the bracket expression at p (length n) holds "[:", "[=" or "[." (POSIX
 * classes, equivalence classes, collating symbols), which the matcher lacks. */
static int bracket_has_class(const char *p, size_t n)
{
	size_t i;

	for (i = 1; i + 1 < n; i++)
		if (p[i] == '[' && (p[i + 1] == ':' || p[i + 1] == '=' || p[i + 1] == '.'))
			return 1;
	return 0;
}

static int validate_glob(const char *text, struct sg_err *err)
{
	const char *p;

	for (p = text; *p != '\0'; p++) {
		size_t n;

		if (*p != '[')
			continue;
		n = bracket_len(p);
		if (n == 0)
			return sg_err_set(err, "invalid user pattern \"%s\": unclosed '['", text);
		if (bracket_has_class(p, n))
			return sg_err_set(err,
			                  "invalid user pattern \"%s\": character classes such as "
			                  "[:alpha:] are not supported",
			                  text);
		p += n - 1;
	}
	return 0;
}

/* Valid UTF-8 without control, blank or invisible characters: what text
 * output shows as it is (utf8.h), the backslash apart. The message shows the
 * text escaped. */
static int check_chars(const char *text, size_t len, struct sg_err *err)
{
	const unsigned char *p = (const unsigned char *)text, *end = p + len;
	char shown[UTF8_ESCAPE_MAX(PATTERN_MAX) + 1];

	while (p < end) {
		uint32_t cp;
		size_t n = utf8_decode(p, (size_t)(end - p), &cp);

		if (n == 0) {
			*utf8_escape(shown, text, len, 0) = '\0';
			return sg_err_set(err, "invalid user pattern \"%s\": not valid UTF-8",
			                  shown);
		}
		if (utf8_cp_unsafe(cp)) {
			*utf8_escape(shown, text, len, 0) = '\0';
			return sg_err_set(err,
			                  "invalid user pattern \"%s\": only printable characters "
			                  "without blanks are allowed",
			                  shown);
		}
		p += n;
	}
	return 0;
}

int pattern_parse(const char *text, struct pattern *out, struct sg_err *err)
{
	size_t len, i;
	int glob = 0;

	if (text == NULL || *text == '\0')
		return sg_err_set(err, "empty user pattern");
	len = strlen(text);
	if (len > PATTERN_MAX)
		return sg_err_set(err, "user pattern too long (%zu bytes, at most %d)", len,
		                  PATTERN_MAX);
	if (check_chars(text, len, err) < 0)
		return -1;
	for (i = 0; i < len; i++)
		if (is_glob_char(text[i]))
			glob = 1;
	if (strstr(text, "@@") != NULL)
		return sg_err_set(err, "invalid user pattern \"%s\": \"@@\"", text);
	if (text[len - 1] == '@')
		return sg_err_set(err, "invalid user pattern \"%s\": nothing after '@'", text);
	if (text[0] == '@') {
		if (glob)
			return sg_err_set(err,
			                  "invalid user pattern \"%s\": a domain pattern cannot "
			                  "contain a glob (write *@domain instead)",
			                  text);
		if (strchr(text + 1, '@') != NULL)
			return sg_err_set(err, "invalid user pattern \"%s\": '@' in the domain",
			                  text);
		out->kind = PATTERN_DOMAIN;
		utf8_fold(out->text, text + 1, sizeof(out->text));
		return 0;
	}
	if (glob && validate_glob(text, err) < 0)
		return -1;
	out->kind = glob ? PATTERN_GLOB : PATTERN_EXACT;
	utf8_fold(out->text, text, sizeof(out->text));
	return 0;
}

const char *pattern_kind_name(enum pattern_kind kind)
{
	switch (kind) {
	case PATTERN_EXACT:
		return "exact";
	case PATTERN_DOMAIN:
		return "domain";
	case PATTERN_GLOB:
		return "glob";
	}
	return "unknown";
}

/* The code point of the character at s (valid UTF-8 in a pattern; in a
 * user, an invalid byte gets a value beyond Unicode that no member
 * matches); *n gets its length. No call for ASCII. */
static inline uint32_t char_at(const char *s, size_t *n)
{
	const unsigned char *u = (const unsigned char *)s;
	uint32_t cp;

	if (u[0] < 0x80) {
		*n = 1;
		return u[0];
	}
	*n = utf8_decode(u, 4, &cp); /* stops at the NUL that ends s */
	if (*n == 0) {
		*n = 1;
		return 0x110000u + u[0];
	}
	return cp;
}

/* Matches code point c against the bracket expression at p; *len receives
 * its length. */
static int bracket_match(const char *p, uint32_t c, size_t *len)
{
	const char *q = p + 1;
	int negate = 0, found = 0;

	*len = bracket_len(p);
	if (*q == '!' || *q == '^') {
		negate = 1;
		q++;
	}
	/* A ']' right after the opening is a member, not the end. */
	do {
		size_t n, m;
		uint32_t lo = char_at(q, &n), hi = lo;

		if (q[n] == '-' && q[n + 1] != ']' && q[n + 1] != '\0') {
			hi = char_at(q + n + 1, &m);
			n += 1 + m;
		}
		if (lo <= c && c <= hi)
			found = 1;
		q += n;
	} while (*q != ']');
	return found != negate;
}

static int glob_match(const char *pat, const char *str)
{
	const char *star_p = NULL, *star_s = NULL;

	for (;;) {
		size_t blen, clen;

		if (*pat == '*') {
			while (*pat == '*')
				pat++;
			if (*pat == '\0')
				return 1;
			star_p = pat;
			star_s = str;
			continue;
		}
		if (*str == '\0') {
			if (*pat == '\0')
				return 1;
		} else if (*pat == '[' && bracket_len(pat) != 0) {
			if (bracket_match(pat, char_at(str, &clen), &blen)) {
				pat += blen;
				str += clen;
				continue;
			}
		} else if (*pat == '?') {
			(void)char_at(str, &clen);
			pat++;
			str += clen;
			continue;
		} else if (*pat == *str) { /* *str != '\0' here */
			pat++;
			str++;
			continue;
		}
		/* Mismatch: let the last star swallow one more character. */
		if (star_p == NULL || *star_s == '\0')
			return 0;
		(void)char_at(star_s, &clen);
		pat = star_p;
		str = star_s += clen;
	}
}

int pattern_match(const struct pattern *p, const char *user_lower)
{
	const char *at;

	switch (p->kind) {
	case PATTERN_EXACT:
		return strcmp(p->text, user_lower) == 0;
	case PATTERN_DOMAIN:
		at = strrchr(user_lower, '@');
		return at != NULL && strcmp(at + 1, p->text) == 0;
	case PATTERN_GLOB:
		return glob_match(p->text, user_lower);
	}
	return 0;
}

/* All values added under one pattern. The pattern is stored last and only as
 * long as its text (a full struct pattern is 324 bytes; an index may hold
 * 100,000 patterns): callbacks may read it through the pointer they get, but
 * must not copy it by value. */
struct userindex_entry {
	void **values;
	size_t n_values, cap_values;
	struct pattern pattern;
};

/* Globs kept together: all of them, or those of one literal domain. */
struct glob_list {
	struct userindex_entry **globs;
	size_t n, cap;
};

struct userindex {
	struct hash *exact;  /* text -> struct userindex_entry */
	struct hash *domain; /* domain -> struct userindex_entry */
	/* A glob that ends in "@" and a literal domain ("scanner*@example.org")
	 * can only match users of that domain: such globs are listed per domain
	 * (domain -> struct glob_list), the others in one list tried for every
	 * user. Each glob is in exactly one list. */
	struct hash *glob_domain;
	struct glob_list globs;
	size_t count;
};

struct userindex *userindex_create(void)
{
	return userindex_create_sized(0);
}

struct userindex *userindex_create_sized(size_t expected)
{
	struct userindex *idx = calloc(1, sizeof(*idx));

	if (idx == NULL)
		return NULL;
	idx->exact = hash_create(expected);
	idx->domain = hash_create(expected / 8);
	idx->glob_domain = hash_create(0);
	return idx;
}

static int entry_add_value(struct userindex_entry *e, void *value)
{
	if (e->n_values == e->cap_values) {
		size_t cap = e->cap_values ? e->cap_values * 2 : 1;
		void **v = realloc(e->values, cap * sizeof(*v));

		if (v == NULL)
			return -1;
		e->values = v;
		e->cap_values = cap;
	}
	e->values[e->n_values++] = value;
	return 0;
}

static struct userindex_entry *entry_new(const struct pattern *p)
{
	size_t len = strnlen(p->text, PATTERN_MAX);
	size_t size =
	    offsetof(struct userindex_entry, pattern) + offsetof(struct pattern, text) + len + 1;
	struct userindex_entry *e = calloc(1, size);

	if (e != NULL) {
		e->pattern.kind = p->kind;
		memcpy(e->pattern.text, p->text, len);
		e->pattern.text[len] = '\0';
	}
	return e;
}

/* The literal domain of a glob ("example.org" for "a*@example.org"): the
 * part after the last '@' of the literal text that ends the pattern, after
 * its last '*', '?' or bracket expression (an '@' inside "[@.]" is not a
 * separator). NULL when that text has no '@' or ends in it. */
static const char *glob_literal_domain(const char *text)
{
	const char *tail = text, *at;

	for (const char *c = text; *c != '\0'; c++) {
		if (*c == '*' || *c == '?') {
			tail = c + 1;
		} else if (*c == '[') {
			size_t n = bracket_len(c);

			if (n != 0) { /* else a literal '[' */
				c += n - 1;
				tail = c + 1;
			}
		}
	}
	at = strrchr(tail, '@');
	return at != NULL && at[1] != '\0' ? at + 1 : NULL;
}

static struct userindex_entry *glob_entry(struct userindex *idx, const struct pattern *p)
{
	const char *domain = glob_literal_domain(p->text);
	struct glob_list *list = &idx->globs;
	struct userindex_entry *e;
	size_t i;

	if (domain != NULL) {
		void **slot = hash_slot(idx->glob_domain, domain);

		if (*slot == NULL)
			*slot = calloc(1, sizeof(struct glob_list));
		if (*slot == NULL)
			return NULL;
		list = *slot;
	}
	for (i = 0; i < list->n; i++)
		if (strcmp(list->globs[i]->pattern.text, p->text) == 0)
			return list->globs[i];
	if (list->n == list->cap) {
		size_t cap = list->cap ? list->cap * 2 : 4;
		struct userindex_entry **g = realloc(list->globs, cap * sizeof(*g));

		if (g == NULL)
			return NULL;
		list->globs = g;
		list->cap = cap;
	}
	e = entry_new(p);
	if (e != NULL)
		list->globs[list->n++] = e;
	return e;
}

int userindex_add(struct userindex *idx, const struct pattern *p, void *value)
{
	struct userindex_entry *e;

	if (p->kind == PATTERN_GLOB) {
		e = glob_entry(idx, p);
	} else {
		void **slot =
		    hash_slot(p->kind == PATTERN_EXACT ? idx->exact : idx->domain, p->text);

		if (*slot == NULL)
			*slot = entry_new(p);
		e = *slot;
	}
	if (e == NULL || entry_add_value(e, value) < 0)
		return -1;
	idx->count++;
	return 0;
}

static int entry_call(const struct userindex_entry *e,
                      int (*fn)(void *value, const struct pattern *p, void *arg), void *arg)
{
	size_t i;
	int r;

	for (i = 0; i < e->n_values; i++) {
		r = fn(e->values[i], &e->pattern, arg);
		if (r != 0)
			return r;
	}
	return 0;
}

static int glob_list_lookup(const struct glob_list *list, const char *user_lower,
                            int (*fn)(void *value, const struct pattern *p, void *arg), void *arg)
{
	int r;

	if (list == NULL)
		return 0;
	for (size_t i = 0; i < list->n; i++) {
		const struct userindex_entry *e = list->globs[i];

		if (glob_match(e->pattern.text, user_lower) && (r = entry_call(e, fn, arg)) != 0)
			return r;
	}
	return 0;
}

int userindex_lookup(const struct userindex *idx, const char *user_lower,
                     int (*fn)(void *value, const struct pattern *p, void *arg), void *arg)
{
	const struct userindex_entry *e;
	const char *at;
	int r;

	if (user_lower == NULL)
		return 0;
	e = hash_get(idx->exact, user_lower);
	if (e != NULL && (r = entry_call(e, fn, arg)) != 0)
		return r;
	at = strrchr(user_lower, '@');
	if (at != NULL) {
		e = hash_get(idx->domain, at + 1);
		if (e != NULL && (r = entry_call(e, fn, arg)) != 0)
			return r;
	}
	if (at != NULL &&
	    (r = glob_list_lookup(hash_get(idx->glob_domain, at + 1), user_lower, fn, arg)) != 0)
		return r;
	return glob_list_lookup(&idx->globs, user_lower, fn, arg);
}

size_t userindex_count(const struct userindex *idx)
{
	return idx->count;
}

static void entry_free(void *value)
{
	struct userindex_entry *e = value;

	free(e->values);
	free(e);
}

static void glob_list_clear(struct glob_list *list)
{
	for (size_t i = 0; i < list->n; i++)
		entry_free(list->globs[i]);
	free(list->globs);
}

static void glob_list_free(void *value)
{
	glob_list_clear(value);
	free(value);
}

void userindex_free(struct userindex **idxp)
{
	struct userindex *idx;

	if (idxp == NULL || *idxp == NULL)
		return;
	idx = *idxp;
	hash_free(&idx->exact, entry_free);
	hash_free(&idx->domain, entry_free);
	hash_free(&idx->glob_domain, glob_list_free);
	glob_list_clear(&idx->globs);
	free(idx);
	*idxp = NULL;
}
