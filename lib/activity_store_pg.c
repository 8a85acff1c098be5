/*
 * activity_store_pg - the fleet's activity in PostgreSQL (see
 * activity_store_pg.h). Every statement is sent with text parameters and
 * read with binary results; batches are read through a cursor, a few
 * hundred rows at a time, so that a scan of a large fleet's log never holds
 * it all in memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "alloc.h"
#include "activity_store_pg.h"
#include "store_pg.h"

#define FLEET_SCHEMA_VERSION 2 /* schema/pg/policy-002.sql: the fleet tables */
#define SCAN_FETCH           "FETCH 256 FROM activity_scan"

struct activity_store_pg {
	PGconn *pg;
	char name[256];
	int reading; /* inside read_begin .. read_end */
};

/* ---------------------------------------------------------------- libpq */

/* libpq's message for what, on one line (err may be NULL: not wanted). */
static int pg_fail(struct activity_store_pg *p, const char *what, struct sg_err *err)
{
	if (err == NULL)
		return -1;
	sg_err_set(err, "%s: %s", what, PQerrorMessage(p->pg));
	store_pg_one_line(err->text);
	return -1;
}

/* Runs sql with n parameters, text unless lengths and formats say
 * otherwise, binary results; NULL (err set) unless it returned rows or
 * completed. */
static PGresult *query_with(struct activity_store_pg *p, const char *what, const char *sql, int n,
                            const char *const *params, const int *lengths, const int *formats,
                            struct sg_err *err)
{
	PGresult *r = PQexecParams(p->pg, sql, n, NULL, params, lengths, formats, 1);
	ExecStatusType st = PQresultStatus(r);

	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
		return r;
	pg_fail(p, what, err);
	PQclear(r);
	return NULL;
}

static PGresult *query(struct activity_store_pg *p, const char *what, const char *sql, int n,
                       const char *const *params, struct sg_err *err)
{
	return query_with(p, what, sql, n, params, NULL, NULL, err);
}

static int exec_plain(struct activity_store_pg *p, const char *sql, struct sg_err *err)
{
	PGresult *r = query(p, sql, sql, 0, NULL, err);

	PQclear(r);
	return r != NULL ? 0 : -1;
}

/* An integer column in binary (int2, int4, int8 or bool), 0 for NULL. */
static int64_t int_at(const PGresult *r, int row, int col)
{
	const unsigned char *v = (const unsigned char *)PQgetvalue(r, row, col);
	int len = PQgetlength(r, row, col);
	uint64_t u = 0;

	if (PQgetisnull(r, row, col) || len <= 0 || len > 8)
		return 0;
	for (int i = 0; i < len; i++)
		u = u << 8 | v[i];
	if (len < 8 && (v[0] & 0x80))
		u |= ~(uint64_t)0 << (8 * len); /* sign extension */
	return (int64_t)u;
}

/* A text or bytea column in binary: its bytes (libpq terminates them),
 * "" for NULL. */
static const char *text_at(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col);
}

/* The same, NULL for NULL. */
static const char *text_or_null(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

/* One integer of a one-row query. */
static int one_int(struct activity_store_pg *p, const char *what, const char *sql, int n,
                   const char *const *params, int64_t *v, struct sg_err *err)
{
	PGresult *r = query(p, what, sql, n, params, err);

	if (r == NULL)
		return -1;
	*v = PQntuples(r) > 0 ? int_at(r, 0, 0) : 0;
	PQclear(r);
	return 0;
}

/* A transaction of the function's own unless read_begin opened one. */
static int own_begin(struct activity_store_pg *p, int *own, struct sg_err *err)
{
	*own = PQtransactionStatus(p->pg) == PQTRANS_IDLE;
	return *own ? exec_plain(p, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err) : 0;
}

static void own_end(struct activity_store_pg *p, int own)
{
	if (own)
		PQclear(PQexec(p->pg, "COMMIT"));
}

/* ---------------------------------------------------------------- the handle */

int activity_store_pg_open(const char *conninfo, struct activity_store_pg **out, struct sg_err *err)
{
	struct activity_store_pg *p = xcalloc(1, sizeof(*p));
	int v;

	*out = NULL;
	store_pg_label(conninfo, p->name, sizeof(p->name));
	if ((p->pg = store_pg_connect(conninfo, "saslgatectl", err)) == NULL) {
		free(p);
		return -1;
	}
	if ((v = store_pg_schema_version(p->pg, err)) >= 0 && v < FLEET_SCHEMA_VERSION)
		sg_err_set(err, "no fleet activity tables (schema version %d; they come with %d)",
		           v, FLEET_SCHEMA_VERSION);
	if (v < FLEET_SCHEMA_VERSION) {
		activity_store_pg_close(&p);
		return -1;
	}
	*out = p;
	return 0;
}

void activity_store_pg_close(struct activity_store_pg **pp)
{
	struct activity_store_pg *p = *pp;

	if (p == NULL)
		return;
	PQfinish(p->pg);
	free(p);
	*pp = NULL;
}

const char *activity_store_pg_name(const struct activity_store_pg *p)
{
	return p->name;
}

int activity_store_pg_schema_version(struct activity_store_pg *p)
{
	struct sg_err ignored = {{0}};

	return store_pg_schema_version(p->pg, &ignored);
}

int activity_store_pg_check(struct activity_store_pg *p, struct sg_err *err)
{
	static const char *const tables[] = {"fleet_delivery", "fleet_decision_batches",
	                                     "fleet_usage", "fleet_heartbeats",
	                                     "fleet_auth_results"};

	for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
		const char *params[1] = {tables[i]};
		int64_t there;

		if (one_int(p, tables[i], "SELECT (to_regclass($1) IS NOT NULL)::int", 1, params,
		            &there, err) < 0)
			return -1;
		if (!there)
			return sg_err_set(err, "table %s is missing", tables[i]);
	}
	return 0;
}

void activity_store_pg_read_begin(struct activity_store_pg *p)
{
	p->reading = exec_plain(p, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", NULL) == 0;
}

void activity_store_pg_read_end(struct activity_store_pg *p)
{
	if (p->reading)
		PQclear(PQexec(p->pg, "COMMIT"));
	p->reading = 0;
}

/* ---------------------------------------------------------------- the decision log */

#define BATCH_COLUMNS                                                                              \
	"SELECT host, id, daemon, first_at, last_at, data FROM fleet_decision_batches "

/* Copies row's daemon, host and data into b->buf and decodes them. */
static int load_batch(const PGresult *r, int row, struct decision_batch *b)
{
	size_t hlen = (size_t)PQgetlength(r, row, 0), dlen = (size_t)PQgetlength(r, row, 2);
	size_t len = (size_t)PQgetlength(r, row, 5), need = dlen + hlen + len + 3;
	char *host;

	b->id = int_at(r, row, 1);
	b->first_at = int_at(r, row, 3);
	b->last_at = int_at(r, row, 4);
	if (b->buf == NULL || b->buf_cap < need) {
		free(b->buf);
		b->buf_cap = need > 4096 ? need : 4096;
		b->buf = xmalloc(b->buf_cap);
	}
	memcpy(b->buf, PQgetvalue(r, row, 2), dlen);
	b->buf[dlen] = '\0';
	host = b->buf + dlen + 1;
	memcpy(host, PQgetvalue(r, row, 0), hlen);
	host[hlen] = '\0';
	memcpy(host + hlen + 1, PQgetvalue(r, row, 5), len);
	host[hlen + 1 + len] = '\0';
	b->host = host;
	return decision_batch_decode(b, host + hlen + 1, b->buf);
}

/* Feeds the rows of one FETCH to fn; 1 when fn stopped. */
static int scan_rows(const PGresult *r, struct activity_scan *scan, struct decision_batch *b,
                     activity_batch_fn fn, void *arg)
{
	for (int row = 0; row < PQntuples(r); row++) {
		if (load_batch(r, row, b) < 0) {
			if (scan->damaged++ == 0)
				scan->damaged_id = b->id;
			continue;
		}
		if (fn(b, arg) != 0)
			return 1;
	}
	return 0;
}

int activity_store_pg_scan(struct activity_store_pg *p, struct activity_scan *scan,
                           const char *needle, activity_batch_fn fn, void *arg, struct sg_err *err)
{
	static const char *const declare[2] = {
	    "DECLARE activity_scan NO SCROLL CURSOR FOR " BATCH_COLUMNS
	    "WHERE last_at >= $1 AND first_at <= $2 "
	    "AND ($3::bytea IS NULL OR position($3::bytea IN data) > 0) "
	    "ORDER BY last_at, host, id",
	    "DECLARE activity_scan NO SCROLL CURSOR FOR " BATCH_COLUMNS
	    "WHERE last_at >= $1 AND first_at <= $2 "
	    "AND ($3::bytea IS NULL OR position($3::bytea IN data) > 0) "
	    "ORDER BY last_at DESC, host DESC, id DESC"};
	char since[24], until[24];
	const char *params[3] = {since, until, needle};
	const int lengths[3] = {0, 0, needle != NULL ? (int)strlen(needle) : 0};
	const int formats[3] = {0, 0, 1}; /* the needle as bytes: it may not be UTF-8 */
	struct decision_batch b = {0};
	PGresult *r;
	int own, rc = 0, stopped = 0;

	scan->damaged = 0;
	scan->damaged_id = 0;
	snprintf(since, sizeof(since), "%lld", (long long)scan->since);
	snprintf(until, sizeof(until), "%lld", (long long)scan->until);
	if (own_begin(p, &own, err) < 0)
		return -1;
	r = query_with(p, "decision batches", declare[scan->newest_first != 0], 3, params, lengths,
	               formats, err);
	if (r == NULL) {
		own_end(p, own);
		return -1;
	}
	PQclear(r);
	while (rc == 0 && !stopped) {
		if ((r = query(p, "decision batches", SCAN_FETCH, 0, NULL, err)) == NULL) {
			rc = -1;
			break;
		}
		if (PQntuples(r) == 0) {
			PQclear(r);
			break;
		}
		stopped = scan_rows(r, scan, &b, fn, arg);
		PQclear(r);
	}
	if (rc == 0)
		rc = exec_plain(p, "CLOSE activity_scan", err);
	own_end(p, own);
	decision_batch_free(&b);
	return rc;
}

int activity_store_pg_find_decision(struct activity_store_pg *p, const char *host, int64_t id,
                                    struct decision_batch *b, const struct decision_record **out,
                                    struct sg_err *err)
{
	char ids[24];
	const char *params[2] = {ids, host};
	PGresult *r;
	int rows, rc = 0;

	*out = NULL;
	b->n = 0;
	snprintf(ids, sizeof(ids), "%lld", (long long)id);
	r = query(p, "decision batches",
	          BATCH_COLUMNS
	          "WHERE id <= $1 AND id + n > $1 AND ($2::text IS NULL OR host = $2) "
	          "ORDER BY host",
	          2, params, err);
	if (r == NULL)
		return -1;
	if ((rows = PQntuples(r)) > 1) {
		char hosts[512];
		size_t used = 0;

		hosts[0] = '\0';
		for (int i = 0; i < rows && used < sizeof(hosts); i++)
			used += (size_t)snprintf(hosts + used, sizeof(hosts) - used, "%s%s",
			                         i ? ", " : "", text_at(r, i, 0));
		rc = sg_err_set(err, "decision %lld is on several hosts (%s): name one, HOST:%lld",
		                (long long)id, hosts, (long long)id);
	} else if (rows == 1) {
		if (load_batch(r, 0, b) < 0)
			rc = sg_err_set(err, "decision batch %lld of %s is damaged",
			                (long long)b->id, b->host);
		else if (id - b->id < (int64_t)b->n) {
			*out = &b->d[id - b->id];
			rc = 1;
		}
	}
	PQclear(r);
	return rc;
}

int activity_store_pg_count_older(struct activity_store_pg *p, time_t cutoff, int64_t *decisions,
                                  int64_t *heartbeats, struct sg_err *err)
{
	char at[24];
	const char *params[1] = {at};

	*decisions = *heartbeats = 0;
	snprintf(at, sizeof(at), "%lld", (long long)cutoff);
	if (one_int(p, "decision batches",
	            "SELECT coalesce(sum(n), 0)::bigint FROM fleet_decision_batches "
	            "WHERE last_at < $1",
	            1, params, decisions, err) < 0)
		return -1;
	return one_int(p, "heartbeats",
	               "SELECT count(*) FROM fleet_heartbeats WHERE last_seen < $1", 1, params,
	               heartbeats, err);
}

int activity_store_pg_prune_decisions(struct activity_store_pg *p, time_t cutoff, int64_t max,
                                      int64_t *n, struct sg_err *err)
{
	char at[24], most[24];
	const char *params[2] = {at, most};

	*n = 0;
	snprintf(at, sizeof(at), "%lld", (long long)cutoff);
	snprintf(most, sizeof(most), "%lld", (long long)max);
	/* The oldest batches until max decisions are reached, the batch that
	 * reaches it included (at least one); one statement, one transaction. */
	return one_int(p, "decision batches",
	               "WITH old AS (SELECT host, id, n, sum(n) OVER (ORDER BY last_at, host, id) "
	               "AS upto FROM fleet_decision_batches WHERE last_at < $1), "
	               "gone AS (DELETE FROM fleet_decision_batches b USING old "
	               "WHERE b.host = old.host AND b.id = old.id AND old.upto - old.n < $2 "
	               "RETURNING b.n) SELECT coalesce(sum(n), 0)::bigint FROM gone",
	               2, params, n, err);
}

int activity_store_pg_prune_heartbeats(struct activity_store_pg *p, time_t cutoff, int64_t *n,
                                       struct sg_err *err)
{
	char at[24];
	const char *params[1] = {at};
	PGresult *r;

	*n = 0;
	snprintf(at, sizeof(at), "%lld", (long long)cutoff);
	r = query(p, "heartbeats", "DELETE FROM fleet_heartbeats WHERE last_seen < $1", 1, params,
	          err);
	if (r == NULL)
		return -1;
	*n = strtoll(PQcmdTuples(r), NULL, 10);
	PQclear(r);
	return 0;
}

/* ---------------------------------------------------------------- the usage table */

/* The newest of a group's rows (by last seen, then host): what its last_*
 * columns follow. */
#define NEWEST(col) "(array_agg(" col " ORDER BY last_seen DESC, host))[1]"

/* The rows of every host summed per user, mechanism and network. $1 since,
 * $2 the class or NULL, $3 the mechanism or NULL. */
static const char usage_sql[] = "SELECT user_name, mech, network, " NEWEST(
    "mech_class") ", min(first_seen), "
                  "max(last_seen), sum(count)::bigint, " NEWEST("last_outcome") ", " NEWEST(
                      "last_client") ", "
                                     "coalesce(" NEWEST("last_tls") ", 0), " NEWEST(
                                         "last_service") ", " NEWEST("host") ", "
                                                                             "string_agg(host, ',' "
                                                                             "ORDER BY host) FROM "
                                                                             "fleet_usage WHERE "
                                                                             "mech_class <> "
                                                                             "'modern' "
                                                                             "AND ($2::text IS "
                                                                             "NULL OR mech_class = "
                                                                             "$2) AND ($3::text IS "
                                                                             "NULL OR mech = $3) "
                                                                             "GROUP BY user_name, "
                                                                             "mech, network HAVING "
                                                                             "max(last_seen) >= $1";

int activity_store_pg_usage_legacy(struct activity_store_pg *p,
                                   const struct activity_usage_query *q,
                                   int (*fn)(const struct activity_usage_row *u, void *arg),
                                   void *arg, struct sg_err *err)
{
	char since[24];
	const char *params[3] = {since, q->mech_class, q->mech};
	PGresult *r;

	snprintf(since, sizeof(since), "%lld", (long long)q->since);
	if ((r = query(p, "usage", usage_sql, 3, params, err)) == NULL)
		return -1;
	for (int row = 0; row < PQntuples(r); row++) {
		const char *user = text_at(r, row, 0);
		struct activity_usage_row u;

		if (q->keep_user != NULL && !q->keep_user(user, q->keep_arg))
			continue;
		u = (struct activity_usage_row){
		    .user = user,
		    .mech = text_at(r, row, 1),
		    .network = text_at(r, row, 2),
		    .mech_class = text_at(r, row, 3),
		    .first_seen = int_at(r, row, 4),
		    .last_seen = int_at(r, row, 5),
		    .count = int_at(r, row, 6),
		    .last_outcome = text_at(r, row, 7),
		    .last_client = text_or_null(r, row, 8),
		    .last_tls = (int)int_at(r, row, 9),
		    .last_service = text_at(r, row, 10),
		    .host = text_at(r, row, 11),
		    .hosts = text_at(r, row, 12),
		};
		if (fn(&u, arg) != 0)
			break;
	}
	PQclear(r);
	return 0;
}

int activity_store_pg_count_legacy_users(struct activity_store_pg *p, time_t since, time_t until,
                                         int64_t *n, struct sg_err *err)
{
	char from[24], to[24];
	const char *params[2] = {from, to};

	*n = 0;
	snprintf(from, sizeof(from), "%lld", (long long)since);
	snprintf(to, sizeof(to), "%lld", (long long)until);
	return one_int(p, "usage",
	               "SELECT count(DISTINCT user_name) FROM fleet_usage WHERE last_seen >= $1 "
	               "AND last_seen <= $2 AND mech_class <> 'modern'",
	               2, params, n, err);
}

int activity_store_pg_usage_moved(struct activity_store_pg *p, time_t since,
                                  int (*fn)(const char *user, void *arg), void *arg,
                                  struct sg_err *err)
{
	char from[24];
	const char *params[1] = {from};
	PGresult *r;

	snprintf(from, sizeof(from), "%lld", (long long)since);
	/* As activity.db's: a first modern use in the period, no non-modern use
	 * after it, over the rows of every host. */
	r = query(p, "usage",
	          "SELECT user_name FROM (SELECT user_name, "
	          "min(CASE WHEN mech_class = 'modern' THEN first_seen END) AS mf, "
	          "max(CASE WHEN mech_class <> 'modern' THEN last_seen END) AS nl "
	          "FROM fleet_usage GROUP BY user_name) u WHERE mf >= $1 AND nl IS NOT NULL "
	          "AND nl <= mf ORDER BY mf DESC, user_name",
	          1, params, err);
	if (r == NULL)
		return -1;
	for (int row = 0; row < PQntuples(r); row++)
		if (fn(text_at(r, row, 0), arg) != 0)
			break;
	PQclear(r);
	return 0;
}

/* ---------------------------------------------------------------- heartbeats */

int activity_store_pg_heartbeats(struct activity_store_pg *p, struct activity_heartbeat **out,
                                 size_t *n, struct sg_err *err)
{
	PGresult *r = query(p, "heartbeats",
	                    "SELECT program, host, pid, started_at, last_seen, "
	                    "coalesce(generation, 0), degraded, degraded_reason, requests, blocks, "
	                    "allows, would_blocks, not_authenticated, errors, dropped, rebuilds, "
	                    "last_rebuild_us, stopped, coalesce(snapshot_source, ''), "
	                    "coalesce(snapshot_at, 0) FROM fleet_heartbeats "
	                    "ORDER BY program, host, started_at, pid",
	                    0, NULL, err);
	struct activity_heartbeat *hb;
	int rows;

	*out = NULL;
	*n = 0;
	if (r == NULL)
		return -1;
	rows = PQntuples(r);
	hb = xcalloc(rows > 0 ? (size_t)rows : 1, sizeof(*hb));
	for (int i = 0; i < rows; i++) {
		struct activity_heartbeat *h = &hb[i];

		sg_strlcpy(h->program, text_at(r, i, 0), sizeof(h->program));
		sg_strlcpy(h->host, text_at(r, i, 1), sizeof(h->host));
		h->pid = int_at(r, i, 2);
		h->started_at = int_at(r, i, 3);
		h->last_seen = int_at(r, i, 4);
		h->generation = int_at(r, i, 5);
		h->degraded = (int)int_at(r, i, 6);
		sg_strlcpy(h->reason, text_at(r, i, 7), sizeof(h->reason));
		h->requests = int_at(r, i, 8);
		h->blocks = int_at(r, i, 9);
		h->allows = int_at(r, i, 10);
		h->would_blocks = int_at(r, i, 11);
		h->not_authenticated = int_at(r, i, 12);
		h->errors = int_at(r, i, 13);
		h->dropped = int_at(r, i, 14);
		h->rebuilds = int_at(r, i, 15);
		h->last_rebuild_us = int_at(r, i, 16);
		h->stopped = (int)int_at(r, i, 17);
		sg_strlcpy(h->snapshot_source, text_at(r, i, 18), sizeof(h->snapshot_source));
		h->snapshot_at = int_at(r, i, 19);
		h->seq = i; /* no insertion order here: the start order, then pid */
	}
	PQclear(r);
	*out = hb;
	*n = (size_t)rows;
	return 0;
}

int activity_store_pg_auth_results(struct activity_store_pg *p, struct activity_auth_result **out,
                                   size_t *n, struct sg_err *err)
{
	PGresult *r = query(p, "auth results",
	                    "SELECT a.program, a.host, a.service, a.mech_class, a.result, a.count "
	                    "FROM fleet_auth_results a WHERE a.pid = (SELECT h.pid FROM "
	                    "fleet_heartbeats h WHERE h.program = a.program AND h.host = a.host "
	                    "ORDER BY h.started_at DESC, h.pid DESC LIMIT 1) "
	                    "ORDER BY a.program, a.host, a.service, a.mech_class, a.result",
	                    0, NULL, err);
	struct activity_auth_result *a;
	int rows;

	*out = NULL;
	*n = 0;
	if (r == NULL)
		return -1;
	rows = PQntuples(r);
	a = xcalloc(rows > 0 ? (size_t)rows : 1, sizeof(*a));
	for (int i = 0; i < rows; i++) {
		sg_strlcpy(a[i].program, text_at(r, i, 0), sizeof(a[i].program));
		sg_strlcpy(a[i].host, text_at(r, i, 1), sizeof(a[i].host));
		sg_strlcpy(a[i].service, text_at(r, i, 2), sizeof(a[i].service));
		sg_strlcpy(a[i].mech_class, text_at(r, i, 3), sizeof(a[i].mech_class));
		sg_strlcpy(a[i].result, text_at(r, i, 4), sizeof(a[i].result));
		a[i].count = int_at(r, i, 5);
	}
	PQclear(r);
	*out = a;
	*n = (size_t)rows;
	return 0;
}
