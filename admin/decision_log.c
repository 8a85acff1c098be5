/*
 * decision_log - decoding decision_batches rows (see decision_log.h).
 *
 * The daemons write a restricted JSON (numbers, strings whose only escape is
 * a backslash, null); rows stored through the decisions view were written by
 * SQLite's json_array() and may hold any JSON escape, so the decoder takes
 * the whole string syntax. Strings are decoded in place: an escape is never
 * shorter than what it stands for.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "activity_query.h"
#include "decision_log.h"
#include "util.h"

/* The fields of a decision in a batch row, in order. */
enum {
	J_AT,
	J_QUEUE_ID,
	J_INSTANCE,
	J_USER,
	J_CLIENT,
	J_MECH,
	J_MECH_CLASS,
	J_TLS,
	J_SERVICE,
	J_SENDER,
	J_OUTCOME,
	J_POLICY,
	J_REPORT_ONLY,
	J_GENERATION,
	J_FIELDS
};

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

int dl_decode(struct dl_batch *b, char *data, const char *daemon)
{
	char *p = skip_blank(data), *f[J_FIELDS], c;

	b->n = 0;
	if (*p++ != '[')
		return -1;
	p = skip_blank(p);
	if (*p == ']')
		return 0;
	for (;;) {
		struct dl_decision *d;

		p = skip_blank(p);
		if (*p++ != '[')
			return -1;
		for (int i = 0; i < J_FIELDS; i++) {
			c = read_value(&p, &f[i]);
			if (c == 0 || (c == ']' && i < J_FIELDS - 1))
				return -1;
		}
		while (c == ',') { /* fields a later version added */
			char *extra;

			if ((c = read_value(&p, &extra)) == 0)
				return -1;
		}
		if (b->n == b->cap) {
			b->cap = b->cap ? b->cap * 2 : 64;
			b->d = xrealloc(b->d, b->cap * sizeof(*b->d));
		}
		d = &b->d[b->n];
		d->id = b->id + (int64_t)b->n;
		b->n++;
		d->daemon = daemon;
		d->at = int_of(f[J_AT]);
		d->queue_id = f[J_QUEUE_ID];
		d->instance = f[J_INSTANCE];
		d->user = f[J_USER];
		d->client = f[J_CLIENT];
		d->mech = f[J_MECH];
		d->mech_class = f[J_MECH_CLASS];
		d->tls = int_of(f[J_TLS]) != 0;
		d->service = f[J_SERVICE];
		d->sender = f[J_SENDER];
		d->outcome = f[J_OUTCOME];
		d->policy = f[J_POLICY];
		d->report_only = f[J_REPORT_ONLY];
		d->generation = int_of(f[J_GENERATION]);
		p = skip_blank(p);
		c = *p++;
		if (c == ']')
			return 0;
		if (c != ',')
			return -1;
	}
}

/* Copies the row's daemon and data into b->buf and decodes them. */
static int load_row(sqlite3_stmt *st, struct dl_batch *b)
{
	const char *daemon = (const char *)sqlite3_column_text(st, 1);
	size_t dlen = (size_t)sqlite3_column_bytes(st, 1), len;
	const char *data;

	b->id = sqlite3_column_int64(st, 0);
	b->first_at = sqlite3_column_int64(st, 2);
	b->last_at = sqlite3_column_int64(st, 3);
	data = (const char *)sqlite3_column_text(st, 4);
	len = (size_t)sqlite3_column_bytes(st, 4);
	if (b->buf == NULL || b->buf_cap < dlen + len + 2) {
		free(b->buf);
		b->buf_cap = dlen + len + 2 > 4096 ? dlen + len + 2 : 4096;
		b->buf = xmalloc(b->buf_cap);
	}
	if (daemon != NULL)
		memcpy(b->buf, daemon, dlen);
	b->buf[dlen] = '\0';
	if (data != NULL)
		memcpy(b->buf + dlen + 1, data, len);
	b->buf[dlen + 1 + len] = '\0';
	return dl_decode(b, b->buf + dlen + 1, b->buf);
}

/*
 * The quoted form of text that every writer of batches gives it: possible
 * only when it has no byte a JSON encoder may escape (control bytes, DEL,
 * quote, backslash, '/'). Bytes >= 0x80 are kept as they are by both
 * writers, the daemons' (activity.c) and SQLite's json_array(). NULL
 * otherwise: then every row is decoded.
 */
static char *quoted_needle(const char *text)
{
	size_t len = strlen(text);
	char *q;

	for (const char *p = text; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f || *p == '"' ||
		    *p == '\\' || *p == '/')
			return NULL;
	q = xmalloc(len + 3);
	q[0] = '"';
	memcpy(q + 1, text, len);
	q[len + 1] = '"';
	q[len + 2] = '\0';
	return q;
}

#define BATCH_COLUMNS "SELECT id, daemon, first_at, last_at, data FROM decision_batches "

int dl_scan(sqlite3 *db, time_t since, time_t until, int newest_first, const char *text,
            dl_batch_fn fn, void *arg)
{
	static const char sql_old[] = BATCH_COLUMNS "WHERE last_at >= ?1 AND first_at <= ?2 "
	                                            "ORDER BY last_at, id";
	static const char sql_new[] = BATCH_COLUMNS "WHERE last_at >= ?1 AND first_at <= ?2 "
	                                            "ORDER BY last_at DESC, id DESC";
	struct dl_batch b = {0};
	char *needle = text != NULL ? quoted_needle(text) : NULL;
	sqlite3_stmt *st;
	int rc, step, warned = 0;

	if ((rc = aq_prepare(db, newest_first ? sql_new : sql_old, &st)) != CTL_OK) {
		free(needle);
		return rc;
	}
	sqlite3_bind_int64(st, 1, (int64_t)since);
	sqlite3_bind_int64(st, 2, (int64_t)until);
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (needle != NULL) {
			const char *data = (const char *)sqlite3_column_text(st, 4);

			if (data == NULL || strstr(data, needle) == NULL)
				continue;
		}
		if (load_row(st, &b) < 0) {
			if (!warned++)
				fprintf(stderr,
				        "saslgatectl: warning: activity.db: decision batch %lld "
				        "is damaged; skipped\n",
				        (long long)b.id);
			continue;
		}
		if ((rc = fn(&b, arg)) != 0)
			break;
	}
	if (rc == 0 && step != SQLITE_DONE)
		rc = ctl_fail("activity.db: %s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	dl_batch_free(&b);
	free(needle);
	return rc == 1 ? CTL_OK : rc;
}

int dl_find(sqlite3 *db, int64_t id, struct dl_batch *b, const struct dl_decision **out)
{
	static const char sql[] = BATCH_COLUMNS "WHERE id <= ?1 ORDER BY id DESC LIMIT 1";
	sqlite3_stmt *st;
	int rc, step;

	*out = NULL;
	if ((rc = aq_prepare(db, sql, &st)) != CTL_OK)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		if (load_row(st, b) < 0)
			rc = ctl_fail("activity.db: decision batch %lld is damaged",
			              (long long)b->id);
		else if (id - b->id < (int64_t)b->n)
			*out = &b->d[id - b->id];
	} else if (step != SQLITE_DONE) {
		rc = ctl_fail("activity.db: %s", sqlite3_errmsg(db));
	}
	sqlite3_finalize(st);
	return rc;
}

void dl_batch_free(struct dl_batch *b)
{
	free(b->buf);
	free(b->d);
	memset(b, 0, sizeof(*b));
}
