/*
 * decision_log - reading decision_batches rows (see decision_log.h); the
 * format is decision_batch's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "activity_query.h"
#include "decision_log.h"
#include "util.h"

/* Copies the row's daemon and data into b->buf and decodes them. */
static int load_row(sqlite3_stmt *st, struct decision_batch *b)
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
	return decision_batch_decode(b, b->buf + dlen + 1, b->buf);
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
	struct decision_batch b = {0};
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
	decision_batch_free(&b);
	free(needle);
	return rc == 1 ? CTL_OK : rc;
}

int dl_find(sqlite3 *db, int64_t id, struct decision_batch *b, const struct decision_record **out)
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
