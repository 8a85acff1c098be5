/*
 * decision_batch - encoding and decoding the decision log's batches (see
 * decision_batch.h). Both directions are expanded from DECISION_BATCH_FIELDS.
 */
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "decision_batch.h"
#include "util.h"

/* ---------------------------------------------------------------- encoding */

static char *put_int(char *p, int64_t v)
{
	char digits[24];
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
	int n = 0;

	if (v < 0)
		*p++ = '-';
	do
		digits[n++] = (char)('0' + u % 10);
	while ((u /= 10) != 0);
	while (n > 0)
		*p++ = digits[--n];
	return p;
}

/* The bytes of a field its JSON string escapes: control bytes, the quote
 * and the backslash (a table: the writer runs it over every field). */
static const unsigned char json_escaped[256] = {
    [0x00 ... 0x1f] = 1,
    ['"'] = 1,
    ['\\'] = 1,
};

/* A text as a JSON string, null when empty. The quote, the backslash and
 * control bytes are escaped (the terminating NUL is one: the scan stops
 * there); every other byte is kept. */
static char *encode_text(char *p, const char *text)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)text;

	if (s == NULL || *s == '\0') {
		*p++ = 'n';
		*p++ = 'u';
		*p++ = 'l';
		*p++ = 'l';
		return p;
	}
	*p++ = '"';
	for (;;) {
		const unsigned char *start = s;

		while (!json_escaped[*s])
			s++;
		memcpy(p, start, (size_t)(s - start));
		p += s - start;
		if (*s == '\0')
			break;
		*p++ = '\\';
		if (*s == '"' || *s == '\\') {
			*p++ = (char)*s;
		} else {
			*p++ = 'u';
			*p++ = '0';
			*p++ = '0';
			*p++ = hex[*s >> 4];
			*p++ = hex[*s & 15];
		}
		s++;
	}
	*p++ = '"';
	return p;
}

#define ENCODE_INT(p, v)  put_int(p, v)
#define ENCODE_BOOL(p, v) (*(p) = (v) ? '1' : '0', (p) + 1)
#define ENCODE_TEXT(p, v) encode_text(p, v)

char *decision_batch_encode(char *p, const struct decision_record *d)
{
	*p++ = '[';
#define ENCODE_FIELD(NAME, member, kind)                                                           \
	p = ENCODE_##kind(p, d->member);                                                           \
	*p++ = ',';
	DECISION_BATCH_FIELDS(ENCODE_FIELD)
#undef ENCODE_FIELD
	p[-1] = ']';
	return p;
}

/* ---------------------------------------------------------------- decoding */

/*
 * The daemons write a restricted JSON (numbers, strings whose only escape is
 * a backslash, null); rows stored through the decisions view were written by
 * SQLite's json_array() and may hold any JSON escape, so the decoder takes
 * the whole string syntax. Strings are decoded in place: an escape is never
 * shorter than what it stands for.
 */

static char *skip_blank(char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

static int hex4(const char *p, unsigned *v)
{
	*v = 0;
	for (int i = 0; i < 4; i++) {
		int c = (unsigned char)p[i], d;

		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return -1;
		*v = *v << 4 | (unsigned)d;
	}
	return 0;
}

/* Writes code point cp as UTF-8 at w (U+0000 as '?': texts are C strings). */
static char *put_utf8(char *w, unsigned cp)
{
	if (cp == 0) {
		*w++ = '?';
	} else if (cp < 0x80) {
		*w++ = (char)cp;
	} else if (cp < 0x800) {
		*w++ = (char)(0xc0 | cp >> 6);
		*w++ = (char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		*w++ = (char)(0xe0 | cp >> 12);
		*w++ = (char)(0x80 | (cp >> 6 & 0x3f));
		*w++ = (char)(0x80 | (cp & 0x3f));
	} else {
		*w++ = (char)(0xf0 | cp >> 18);
		*w++ = (char)(0x80 | (cp >> 12 & 0x3f));
		*w++ = (char)(0x80 | (cp >> 6 & 0x3f));
		*w++ = (char)(0x80 | (cp & 0x3f));
	}
	return w;
}

/* Decodes the string whose opening quote was just passed (p) in place, NUL
 * terminated at its start; returns the position after its closing quote, or
 * NULL if it is malformed. "\uXXXX" takes 6 bytes and gives at most 3 (4 for
 * a surrogate pair, from 12), so the output never overtakes the input. */
static char *read_string(char *p)
{
	char *w;
	unsigned cp, lo;

	/* Most strings have no escape: find the quote, end the text there. */
	p += strcspn(p, "\"\\");
	if (*p == '"') {
		*p = '\0';
		return p + 1;
	}
	w = p;
	for (;;) {
		char c = *p++;

		if (c == '\0')
			return NULL;
		if (c == '"')
			break;
		if (c != '\\') {
			*w++ = c;
			continue;
		}
		switch (c = *p++) {
		case '"':
		case '\\':
		case '/':
			*w++ = c;
			break;
		case 'b':
			*w++ = '\b';
			break;
		case 'f':
			*w++ = '\f';
			break;
		case 'n':
			*w++ = '\n';
			break;
		case 'r':
			*w++ = '\r';
			break;
		case 't':
			*w++ = '\t';
			break;
		case 'u':
			if (hex4(p, &cp) < 0)
				return NULL;
			p += 4;
			if (cp >= 0xd800 && cp < 0xdc00 && p[0] == '\\' && p[1] == 'u' &&
			    hex4(p + 2, &lo) == 0 && lo >= 0xdc00 && lo < 0xe000) {
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				p += 6;
			} else if (cp >= 0xd800 && cp < 0xe000) {
				cp = 0xfffd; /* an unpaired surrogate */
			}
			w = put_utf8(w, cp);
			break;
		default:
			return NULL;
		}
	}
	*w = '\0';
	return p;
}

/*
 * Reads the scalar value at *pp (string, number, true, false or null) in
 * place: *text is its NUL-terminated text, NULL for null. Returns the
 * character that follows it (a ',' or ']'), *pp past that character; 0 when
 * the text is malformed.
 */
static char read_value(char **pp, char **text)
{
	char *p = skip_blank(*pp), c;

	if (*p == '"') {
		*text = p + 1;
		if ((p = read_string(p + 1)) == NULL)
			return 0;
		p = skip_blank(p);
		c = *p;
	} else {
		char *start = p, *end;

		while (*p != '\0' && *p != ',' && *p != ']' && *p != ' ' && *p != '\t' &&
		       *p != '\n' && *p != '\r')
			p++;
		if (p == start || *start == '[' || *start == '{' || *start == '"')
			return 0; /* nothing, or not a scalar */
		end = p;
		p = skip_blank(p);
		c = *p;
		*end = '\0'; /* may be the delimiter itself: c keeps it */
		*text = end - start == 4 && memcmp(start, "null", 4) == 0 ? NULL : start;
	}
	if (c != ',' && c != ']')
		return 0;
	*pp = p + 1;
	return c;
}

/* The integer at the start of text, as strtoll() reads it (0 for NULL);
 * the writer's own numbers take the short way. */
static int64_t int_of(const char *text)
{
	const char *p = text;
	int64_t v = 0;

	if (text == NULL)
		return 0;
	if (*p == '-')
		p++;
	for (int i = 0; i < 18; i++, p++) {
		if (*p < '0' || *p > '9')
			return *text == '-' ? -v : v;
		v = v * 10 + (*p - '0');
	}
	return strtoll(text, NULL, 10); /* 18 digits or more */
}

#define DECODE_INT(text)  int_of(text)
#define DECODE_BOOL(text) (int_of(text) != 0)
#define DECODE_TEXT(text) (text)

/* Reads one decision's array at *pp (past its '[') into d; 0 or -1. */
static int decode_one(char **pp, struct decision_record *d)
{
	char *f[DECISION_FIELDS], c = 0;

	for (int i = 0; i < DECISION_FIELDS; i++) {
		c = read_value(pp, &f[i]);
		if (c == 0 || (c == ']' && i < DECISION_FIELDS - 1))
			return -1;
	}
	while (c == ',') { /* fields a later version added */
		char *extra;

		if ((c = read_value(pp, &extra)) == 0)
			return -1;
	}
#define DECODE_FIELD(NAME, member, kind) d->member = DECODE_##kind(f[DECISION_FIELD_##NAME]);
	DECISION_BATCH_FIELDS(DECODE_FIELD)
#undef DECODE_FIELD
	return 0;
}

int decision_batch_decode(struct decision_batch *b, char *text, const char *daemon)
{
	char *p = skip_blank(text), c;

	b->n = 0;
	if (*p++ != '[')
		return -1;
	p = skip_blank(p);
	if (*p == ']')
		return 0;
	for (;;) {
		struct decision_record *d;

		p = skip_blank(p);
		if (*p++ != '[')
			return -1;
		if (b->n == b->cap) {
			b->cap = b->cap ? b->cap * 2 : 64;
			b->d = xrealloc(b->d, b->cap * sizeof(*b->d));
		}
		d = &b->d[b->n];
		if (decode_one(&p, d) < 0)
			return -1;
		d->id = b->id + (int64_t)b->n;
		d->daemon = daemon;
		d->host = b->host;
		b->n++;
		p = skip_blank(p);
		c = *p++;
		if (c == ']')
			return 0;
		if (c != ',')
			return -1;
	}
}

void decision_batch_free(struct decision_batch *b)
{
	free(b->buf);
	free(b->d);
	memset(b, 0, sizeof(*b));
}
