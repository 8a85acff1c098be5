/*
 * activity_query - shared helpers of the visibility commands (see
 * activity_query.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "activity_query.h"
#include "cidr.h"
#include "store.h"

int aq_parse_format(const char *text, unsigned allowed, enum aq_format *out)
{
	static const char *const names[] = {"text", "json", "csv", "prometheus"};

	for (int i = 0; i < 4; i++) {
		if (strcmp(text, names[i]) != 0)
			continue;
		if (i >= AQ_CSV && !(allowed & (1u << i)))
			break;
		*out = (enum aq_format)i;
		return CTL_OK;
	}
	return ctl_invalid("--format", "'%s' is not one of text, json%s%s", text,
	                   (allowed & AQ_ALLOW_CSV) ? ", csv" : "",
	                   (allowed & AQ_ALLOW_PROMETHEUS) ? ", prometheus" : "");
}

enum aq_format aq_format_of(const struct ctl *ctl, int format_given, enum aq_format format)
{
	if (format_given)
		return format;
	return ctl->json ? AQ_JSON : AQ_TEXT;
}

int aq_outcome_valid(const char *text)
{
	return strcmp(text, "block") == 0 || strcmp(text, "allow") == 0 ||
	       strcmp(text, "would-block") == 0 || strcmp(text, "not-authenticated") == 0;
}

int aq_parse_count(const char *field, const char *text, int allow_zero, int64_t *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || v < 0 || (v == 0 && !allow_zero))
		return ctl_invalid(field, "'%s' is not a %s number", text,
		                   allow_zero ? "non-negative" : "positive");
	*out = v;
	return CTL_OK;
}

int aq_open_activity(const struct ctl *ctl, sqlite3 **db)
{
	struct sg_err err = {{0}};

	if (store_open_activity(ctl->dir, 1, db, &err) < 0)
		return ctl_fail("%s", err.text);
	return CTL_OK;
}

int aq_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
	if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK) {
		*st = NULL;
		return ctl_fail("activity.db: %s", sqlite3_errmsg(db));
	}
	return CTL_OK;
}

const char *aq_text(sqlite3_stmt *st, int col)
{
	const unsigned char *s = sqlite3_column_text(st, col);

	return s ? (const char *)s : "";
}

const char *aq_text_or_null(sqlite3_stmt *st, int col)
{
	return (const char *)sqlite3_column_text(st, col);
}

void aq_csv_field(FILE *out, int first, const char *s)
{
	if (!first)
		fputc(',', out);
	if (s == NULL)
		return;
	if (strpbrk(s, ",\"\r\n") == NULL) {
		fputs(s, out);
		return;
	}
	fputc('"', out);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', out);
		fputc(*s, out);
	}
	fputc('"', out);
}

void aq_csv_int(FILE *out, int first, int64_t v)
{
	fprintf(out, "%s%lld", first ? "" : ",", (long long)v);
}

void aq_csv_time(FILE *out, int first, time_t t)
{
	char buf[32];

	aq_csv_field(out, first, ctl_time(t, "", buf, sizeof(buf)));
}

void aq_csv_end(FILE *out)
{
	fputs("\r\n", out);
}

void aq_network_of(const char *addr_text, char *buf, size_t len)
{
	struct ipaddr addr;
	struct cidr net;

	buf[0] = '\0';
	if (addr_text == NULL || ipaddr_parse(addr_text, &addr, NULL) < 0)
		return;
	cidr_network_of(&addr, &net);
	if (cidr_format(&net, buf, len) < 0)
		buf[0] = '\0';
}

const char *aq_daemon_state_name(enum aq_daemon_state s)
{
	switch (s) {
	case AQ_RUNNING:
		return "running";
	case AQ_STALE:
		return "stale";
	case AQ_STOPPED:
		return "stopped";
	case AQ_SUPERSEDED:
		return "superseded";
	}
	return "?";
}

/* Started later; rowid (insertion order) breaks ties within a second. */
static int newer(const struct aq_heartbeat *a, const struct aq_heartbeat *b)
{
	return a->started_at != b->started_at ? a->started_at > b->started_at : a->seq > b->seq;
}

static void classify(struct aq_heartbeat *hb, size_t n, time_t now, int64_t stale)
{
	for (size_t i = 0; i < n; i++) {
		struct aq_heartbeat *h = &hb[i];

		h->age = (int64_t)now - h->last_seen;
		if (h->age < 0)
			h->age = 0;
		h->state = h->stopped ? AQ_STOPPED : h->age > stale ? AQ_STALE : AQ_RUNNING;
		for (size_t k = 0; k < n && !h->stopped; k++) {
			if (k == i || strcmp(hb[k].program, h->program) != 0 ||
			    strcmp(hb[k].host, h->host) != 0)
				continue;
			if (newer(&hb[k], h) && hb[k].started_at >= h->last_seen) {
				h->state = AQ_SUPERSEDED;
				break;
			}
		}
	}
}

int aq_heartbeats(sqlite3 *db, time_t now, int64_t stale, struct aq_heartbeat **out, size_t *n)
{
	static const char sql[] =
	    "SELECT program, host, pid, started_at, last_seen, generation, degraded, "
	    "degraded_reason, requests, blocks, allows, would_blocks, "
	    "not_authenticated, errors, "
	    "dropped, rebuilds, last_rebuild_us, stopped, rowid FROM heartbeats "
	    "ORDER BY program, host, started_at, rowid";
	struct aq_heartbeat *hb = NULL;
	size_t count = 0, cap = 0;
	sqlite3_stmt *st;
	int rc;

	if ((rc = aq_prepare(db, sql, &st)) != CTL_OK)
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct aq_heartbeat *h;

		if (count == cap) {
			cap = cap ? cap * 2 : 8;
			hb = xrealloc(hb, cap * sizeof(*hb));
		}
		h = &hb[count++];
		memset(h, 0, sizeof(*h));
		sg_strlcpy(h->program, aq_text(st, 0), sizeof(h->program));
		sg_strlcpy(h->host, aq_text(st, 1), sizeof(h->host));
		h->pid = sqlite3_column_int64(st, 2);
		h->started_at = sqlite3_column_int64(st, 3);
		h->last_seen = sqlite3_column_int64(st, 4);
		h->generation = sqlite3_column_int64(st, 5);
		h->degraded = sqlite3_column_int(st, 6);
		sg_strlcpy(h->reason, aq_text(st, 7), sizeof(h->reason));
		h->requests = sqlite3_column_int64(st, 8);
		h->blocks = sqlite3_column_int64(st, 9);
		h->allows = sqlite3_column_int64(st, 10);
		h->would_blocks = sqlite3_column_int64(st, 11);
		h->not_authenticated = sqlite3_column_int64(st, 12);
		h->errors = sqlite3_column_int64(st, 13);
		h->dropped = sqlite3_column_int64(st, 14);
		h->rebuilds = sqlite3_column_int64(st, 15);
		h->last_rebuild_us = sqlite3_column_int64(st, 16);
		h->stopped = sqlite3_column_int(st, 17);
		h->seq = sqlite3_column_int64(st, 18);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		free(hb);
		return ctl_fail("activity.db: heartbeats: %s", sqlite3_errmsg(db));
	}
	classify(hb, count, now, stale);
	*out = hb;
	*n = count;
	return CTL_OK;
}

int aq_auth_results(sqlite3 *db, struct aq_auth_result **out, size_t *n)
{
	static const char sql[] =
	    "SELECT a.program, a.host, a.service, a.mech_class, a.result, a.count "
	    "FROM auth_results a WHERE a.pid = (SELECT h.pid FROM heartbeats h "
	    "WHERE h.program = a.program AND h.host = a.host "
	    "ORDER BY h.started_at DESC, h.rowid DESC LIMIT 1) "
	    "ORDER BY a.program, a.host, a.service, a.mech_class, a.result";
	struct aq_auth_result *v = NULL;
	size_t count = 0, cap = 0;
	sqlite3_stmt *st;
	int rc;

	if ((rc = aq_prepare(db, sql, &st)) != CTL_OK)
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct aq_auth_result *a;

		if (count == cap) {
			cap = cap ? cap * 2 : 16;
			v = xrealloc(v, cap * sizeof(*v));
		}
		a = &v[count++];
		sg_strlcpy(a->program, aq_text(st, 0), sizeof(a->program));
		sg_strlcpy(a->host, aq_text(st, 1), sizeof(a->host));
		sg_strlcpy(a->service, aq_text(st, 2), sizeof(a->service));
		sg_strlcpy(a->mech_class, aq_text(st, 3), sizeof(a->mech_class));
		sg_strlcpy(a->result, aq_text(st, 4), sizeof(a->result));
		a->count = sqlite3_column_int64(st, 5);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		free(v);
		return ctl_fail("activity.db: auth_results: %s", sqlite3_errmsg(db));
	}
	*out = v;
	*n = count;
	return CTL_OK;
}

static int64_t count_query(sqlite3 *db, const char *sql, int64_t a, int64_t b)
{
	sqlite3_stmt *st;
	int64_t v = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(st, 1, a);
	sqlite3_bind_int64(st, 2, b);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

void aq_policy_facts(const struct ctl *ctl, int64_t expiring_within, struct aq_policy_facts *f)
{
	struct sg_err err = {{0}};
	char value[64];
	sqlite3 *db;

	memset(f, 0, sizeof(*f));
	f->retention_days = AQ_DEFAULT_RETENTION_DAYS;
	f->generation = -1;
	if (store_open_readonly(ctl->dir, &db, &err) < 0) {
		sg_strlcpy(f->error, err.text, sizeof(f->error));
		return;
	}
	/* One read transaction: the counts and the generation agree. */
	store_exec(db, "BEGIN", NULL);
	f->schema_version = store_schema_version(db);
	f->generation = store_generation(db);
	f->exceptions_active = count_query(db,
	                                   "SELECT count(*) FROM exceptions WHERE "
	                                   "expires_at IS NULL OR expires_at > ?1",
	                                   (int64_t)ctl->now, 0);
	f->exceptions_expiring =
	    count_query(db,
	                "SELECT count(*) FROM exceptions WHERE expires_at > ?1 AND "
	                "expires_at <= ?2",
	                (int64_t)ctl->now, (int64_t)ctl->now + expiring_within);
	if (store_setting_get(db, "activity_retention_days", value, sizeof(value), &err) == 1) {
		long long days = strtoll(value, NULL, 10);

		if (days > 0)
			f->retention_days = days;
	}
	f->ok = f->generation >= 0 && f->exceptions_active >= 0 && f->exceptions_expiring >= 0;
	if (!f->ok)
		snprintf(f->error, sizeof(f->error), "policy.db: %s", sqlite3_errmsg(db));
	store_exec(db, "COMMIT", NULL);
	store_close(&db);
}
