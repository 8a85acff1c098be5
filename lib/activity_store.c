/*
 * activity_store - activity.db in SQLite (see activity_store.h). Statements
 * are prepared once per handle, on first use, and every read runs through
 * one row loop (each_row).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "alloc.h"
#include "activity_store.h"
#include "activity_store_pg.h"
#include "store.h"

/* The statements of a handle, prepared when first used. */
enum {
	ST_NEXT_ID,
	ST_ADD_BATCH,
	ST_SCAN_OLDEST,
	ST_SCAN_NEWEST,
	ST_FIND,
	ST_COUNT_OLD_DECISIONS,
	ST_COUNT_OLD_HEARTBEATS,
	ST_OLD_BATCHES,
	ST_DELETE_BATCH,
	ST_DELETE_HEARTBEATS,
	ST_ADD_USAGE,
	ST_USAGE_LEGACY,
	ST_USAGE_LEGACY_CLASS,
	ST_USAGE_LEGACY_MECH,
	ST_USAGE_LEGACY_CLASS_MECH,
	ST_LEGACY_USERS,
	ST_MOVED,
	ST_PUT_HEARTBEAT,
	ST_HEARTBEATS,
	ST_PUT_AUTH,
	ST_AUTH_RESULTS,
	/* the fleet spool (at the end of this file) */
	ST_SPOOL_STATE,
	ST_SPOOL_ADD,
	ST_SPOOL_SET_STATE,
	ST_SPOOL_ADD_USAGE,
	ST_SPOOL_ROWS,
	ST_SPOOL_USAGE,
	ST_SPOOL_BATCHES,
	ST_SPOOL_HEARTBEATS,
	ST_SPOOL_AUTH,
	ST_SPOOL_DELIVERED,
	ST_SPOOL_DELETE_USAGE,
	ST_SPOOL_DELETE,
	ST_SPOOL_UNCOUNT,
	N_STATEMENTS
};

#define BATCH_COLUMNS "SELECT id, daemon, first_at, last_at, data FROM decision_batches "
#define USAGE_COLUMNS                                                                              \
	"SELECT user, mech, network, mech_class, first_seen, last_seen, count, "                   \
	"last_outcome, last_client, last_tls, last_service FROM usage "                            \
	"WHERE last_seen >= ?1 AND mech_class <> 'modern'"

/* A usage column that follows the newest submission (two daemons may write
 * out of order). */
#define NEWER(col)                                                                                 \
	col " = CASE WHEN excluded.last_seen >= last_seen THEN excluded." col " ELSE " col " END"

/* clang-format off */
static const char *const sql_of[N_STATEMENTS] = {
    /* A batch's decisions have the ids id .. id + n - 1. */
    [ST_NEXT_ID] = "SELECT id + n FROM decision_batches ORDER BY id DESC LIMIT 1",
    [ST_ADD_BATCH] = "INSERT INTO decision_batches (id, daemon, first_at, last_at, n, data) "
                     "VALUES (?, ?, ?, ?, ?, ?)",
    [ST_SCAN_OLDEST] = BATCH_COLUMNS "WHERE last_at >= ?1 AND first_at <= ?2 "
                                     "ORDER BY last_at, id",
    [ST_SCAN_NEWEST] = BATCH_COLUMNS "WHERE last_at >= ?1 AND first_at <= ?2 "
                                     "ORDER BY last_at DESC, id DESC",
    [ST_FIND] = BATCH_COLUMNS "WHERE id <= ?1 ORDER BY id DESC LIMIT 1",
    [ST_COUNT_OLD_DECISIONS] = "SELECT coalesce(sum(n), 0) FROM decision_batches "
                               "WHERE last_at < ?1",
    [ST_COUNT_OLD_HEARTBEATS] = "SELECT count(*) FROM heartbeats WHERE last_seen < ?1",
    /* decision_batches_last_at serves it; id order would not be time order
     * if a clock stepped back. */
    [ST_OLD_BATCHES] = "SELECT id, n FROM decision_batches WHERE last_at < ?1 "
                       "ORDER BY last_at, id",
    [ST_DELETE_BATCH] = "DELETE FROM decision_batches WHERE id = ?1",
    [ST_DELETE_HEARTBEATS] = "DELETE FROM heartbeats WHERE last_seen < ?1",
    [ST_ADD_USAGE] =
        "INSERT INTO usage (user, mech, network, mech_class, first_seen, last_seen, count, "
        "last_outcome, last_client, last_tls, last_service) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (user, mech, network) DO UPDATE SET "
        "first_seen = min(first_seen, excluded.first_seen), "
        "last_seen = max(last_seen, excluded.last_seen), count = count + excluded.count, "
        "mech_class = excluded.mech_class, "
        NEWER("last_outcome") ", " NEWER("last_client") ", "
        NEWER("last_tls") ", " NEWER("last_service"),
    [ST_USAGE_LEGACY] = USAGE_COLUMNS,
    [ST_USAGE_LEGACY_CLASS] = USAGE_COLUMNS " AND mech_class = ?2",
    [ST_USAGE_LEGACY_MECH] = USAGE_COLUMNS " AND mech = ?2",
    [ST_USAGE_LEGACY_CLASS_MECH] = USAGE_COLUMNS " AND mech_class = ?2 AND mech = ?3",
    [ST_LEGACY_USERS] = "SELECT count(DISTINCT user) FROM usage "
                        "WHERE last_seen >= ?1 AND last_seen <= ?2 "
                        "AND mech_class <> 'modern'",
    /* First modern use in the period, no non-modern use after it. */
    [ST_MOVED] = "SELECT user FROM (SELECT user, "
                 "min(CASE WHEN mech_class = 'modern' THEN first_seen END) AS mf, "
                 "max(CASE WHEN mech_class <> 'modern' THEN last_seen END) AS nl "
                 "FROM usage GROUP BY user) WHERE mf >= ?1 AND nl IS NOT NULL AND nl <= mf "
                 "ORDER BY mf DESC, user",
    [ST_PUT_HEARTBEAT] =
        "INSERT INTO heartbeats (program, host, pid, started_at, last_seen, generation, "
        "degraded, degraded_reason, requests, blocks, allows, would_blocks, "
        "not_authenticated, errors, dropped, rebuilds, last_rebuild_us, stopped, "
        "snapshot_source, snapshot_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (program, host, pid) DO UPDATE SET last_seen = excluded.last_seen, "
        "generation = excluded.generation, degraded = excluded.degraded, "
        "degraded_reason = excluded.degraded_reason, requests = excluded.requests, "
        "blocks = excluded.blocks, allows = excluded.allows, "
        "would_blocks = excluded.would_blocks, "
        "not_authenticated = excluded.not_authenticated, "
        "errors = excluded.errors, dropped = excluded.dropped, rebuilds = excluded.rebuilds, "
        "last_rebuild_us = excluded.last_rebuild_us, stopped = excluded.stopped, "
        "snapshot_source = excluded.snapshot_source, snapshot_at = excluded.snapshot_at",
    [ST_HEARTBEATS] =
        "SELECT program, host, pid, started_at, last_seen, generation, degraded, "
        "degraded_reason, requests, blocks, allows, would_blocks, not_authenticated, errors, "
        "dropped, rebuilds, last_rebuild_us, stopped, rowid, snapshot_source, snapshot_at "
        "FROM heartbeats "
        "ORDER BY program, host, started_at, rowid",
    [ST_PUT_AUTH] =
        "INSERT INTO auth_results (program, host, pid, service, mech_class, result, count) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (program, host, pid, service, mech_class, result) "
        "DO UPDATE SET count = excluded.count",
    [ST_AUTH_RESULTS] =
        "SELECT a.program, a.host, a.service, a.mech_class, a.result, a.count "
        "FROM auth_results a WHERE a.pid = (SELECT h.pid FROM heartbeats h "
        "WHERE h.program = a.program AND h.host = a.host "
        "ORDER BY h.started_at DESC, h.rowid DESC LIMIT 1) "
        "ORDER BY a.program, a.host, a.service, a.mech_class, a.result",
    /* the fleet spool */
    [ST_SPOOL_STATE] = "SELECT token, next_id, pending FROM fleet_spool_state",
    [ST_SPOOL_ADD] = "INSERT INTO fleet_spool (host, first_id, n, at) VALUES (?, ?, ?, ?)",
    [ST_SPOOL_SET_STATE] = "UPDATE fleet_spool_state SET next_id = max(next_id, ?1), "
                           "pending = pending + ?2",
    [ST_SPOOL_ADD_USAGE] =
        "INSERT INTO fleet_spool_usage (seq, user, mech, network, mech_class, first_seen, "
        "last_seen, count, last_outcome, last_client, last_tls, last_service) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    [ST_SPOOL_ROWS] = "SELECT seq, first_id, n, at FROM fleet_spool WHERE host = ?1 "
                      "ORDER BY seq LIMIT ?2",
    [ST_SPOOL_USAGE] = "SELECT user, mech, network, mech_class, first_seen, last_seen, count, "
                       "last_outcome, last_client, last_tls, last_service "
                       "FROM fleet_spool_usage WHERE seq = ?1",
    [ST_SPOOL_BATCHES] = "SELECT id, daemon, first_at, last_at, data, n FROM decision_batches "
                         "WHERE id >= ?1 AND id < ?2 ORDER BY id",
    [ST_SPOOL_HEARTBEATS] =
        "SELECT program, host, pid, started_at, last_seen, generation, degraded, "
        "degraded_reason, requests, blocks, allows, would_blocks, not_authenticated, errors, "
        "dropped, rebuilds, last_rebuild_us, stopped, rowid, snapshot_source, snapshot_at "
        "FROM heartbeats WHERE host = ?1 AND last_seen >= ?2",
    [ST_SPOOL_AUTH] =
        "SELECT a.program, a.pid, a.service, a.mech_class, a.result, a.count "
        "FROM auth_results a JOIN heartbeats h USING (program, host, pid) "
        "WHERE a.host = ?1 AND h.last_seen >= ?2",
    [ST_SPOOL_DELIVERED] = "SELECT coalesce(sum(n), 0) FROM fleet_spool "
                           "WHERE host = ?1 AND seq <= ?2",
    [ST_SPOOL_DELETE_USAGE] = "DELETE FROM fleet_spool_usage WHERE seq IN "
                              "(SELECT seq FROM fleet_spool WHERE host = ?1 AND seq <= ?2)",
    [ST_SPOOL_DELETE] = "DELETE FROM fleet_spool WHERE host = ?1 AND seq <= ?2",
    [ST_SPOOL_UNCOUNT] = "UPDATE fleet_spool_state SET pending = max(pending - ?1, 0)",
};
/* clang-format on */

struct activity_store {
	sqlite3 *db;
	sqlite3_stmt *st[N_STATEMENTS];
	struct activity_store_pg *pg; /* the fleet's (activity_store_open_pg): db is NULL */
};

int activity_store_open(const char *dir, enum activity_store_mode mode, struct activity_store **out,
                        struct sg_err *err)
{
	struct activity_store *as = xcalloc(1, sizeof(*as));

	*out = NULL;
	if (store_open_activity(dir, mode == ACTIVITY_STORE_READ, &as->db, err) < 0) {
		free(as);
		return -1;
	}
	/* The writer's page cache: a batch touches many pages (16 MiB). */
	if (mode == ACTIVITY_STORE_WRITE &&
	    store_exec(as->db, "PRAGMA cache_size = -16384", err) < 0) {
		activity_store_close(&as);
		return -1;
	}
	*out = as;
	return 0;
}

int activity_store_open_pg(const char *conninfo, enum activity_store_mode mode,
                           struct activity_store **out, struct sg_err *err)
{
	struct activity_store *as = xcalloc(1, sizeof(*as));

	(void)mode; /* prune deletes with the reader's connection */
	*out = NULL;
	if (activity_store_pg_open(conninfo, &as->pg, err) < 0) {
		free(as);
		return -1;
	}
	*out = as;
	return 0;
}

int activity_store_fleet(const struct activity_store *as)
{
	return as->pg != NULL;
}

const char *activity_store_name(const struct activity_store *as)
{
	return as->pg != NULL ? activity_store_pg_name(as->pg) : STORE_ACTIVITY_DB;
}

void activity_store_close(struct activity_store **asp)
{
	struct activity_store *as = *asp;

	if (as == NULL)
		return;
	activity_store_pg_close(&as->pg);
	for (int i = 0; i < N_STATEMENTS; i++)
		sqlite3_finalize(as->st[i]);
	store_close(&as->db);
	free(as);
	*asp = NULL;
}

/* Statement i, reset and unbound, prepared on first use; NULL with err. */
static sqlite3_stmt *stmt(struct activity_store *as, int i, struct sg_err *err)
{
	if (as->db == NULL) { /* the fleet's store: not the daemons' writer */
		sg_err_set(err, "the fleet's activity is read here, not written");
		return NULL;
	}
	if (as->st[i] == NULL &&
	    sqlite3_prepare_v2(as->db, sql_of[i], -1, &as->st[i], NULL) != SQLITE_OK) {
		sg_err_set(err, "%s", sqlite3_errmsg(as->db));
		as->st[i] = NULL;
		return NULL;
	}
	sqlite3_reset(as->st[i]);
	sqlite3_clear_bindings(as->st[i]);
	return as->st[i];
}

static int fail(struct activity_store *as, struct sg_err *err)
{
	return sg_err_set(err, "%s", sqlite3_errmsg(as->db));
}

/*
 * The row loop: steps st (prepared and bound) to its end, calling row for
 * each row; a nonzero value from row stops the loop. st is reset after.
 * 0 (done or stopped), or -1 with err.
 */
static int each_row(struct activity_store *as, sqlite3_stmt *st,
                    int (*row)(sqlite3_stmt *st, void *arg), void *arg, struct sg_err *err)
{
	int step;

	while ((step = sqlite3_step(st)) == SQLITE_ROW)
		if (row(st, arg) != 0) {
			step = SQLITE_DONE;
			break;
		}
	if (step != SQLITE_DONE)
		fail(as, err);
	sqlite3_reset(st);
	return step == SQLITE_DONE ? 0 : -1;
}

/* Runs a statement without rows (st bound). 0 or -1 with err. */
static int run(struct activity_store *as, sqlite3_stmt *st, struct sg_err *err)
{
	int step = sqlite3_step(st);

	sqlite3_reset(st);
	return step == SQLITE_DONE ? 0 : fail(as, err);
}

static int row_int(sqlite3_stmt *st, void *arg)
{
	*(int64_t *)arg = sqlite3_column_int64(st, 0);
	return 1;
}

/* The first column of the first row as an integer (unchanged if none). */
static int one_int(struct activity_store *as, sqlite3_stmt *st, int64_t *v, struct sg_err *err)
{
	return each_row(as, st, row_int, v, err);
}

/* A text column, or "" for NULL. */
static const char *text_of(sqlite3_stmt *st, int col)
{
	const unsigned char *s = sqlite3_column_text(st, col);

	return s ? (const char *)s : "";
}

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
	if (s != NULL && *s != '\0')
		sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
	sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

int activity_store_schema_version(struct activity_store *as)
{
	if (as->pg != NULL)
		return activity_store_pg_schema_version(as->pg);
	return store_schema_version(as->db);
}

int activity_store_check(struct activity_store *as, struct sg_err *err)
{
	if (as->pg != NULL)
		return activity_store_pg_check(as->pg, err);
	return store_check(as->db, err);
}

void activity_store_read_begin(struct activity_store *as)
{
	if (as->pg != NULL) {
		activity_store_pg_read_begin(as->pg);
		return;
	}
	store_exec(as->db, "BEGIN", NULL);
}

void activity_store_read_end(struct activity_store *as)
{
	if (as->pg != NULL) {
		activity_store_pg_read_end(as->pg);
		return;
	}
	store_exec(as->db, "COMMIT", NULL);
}

int activity_store_begin(struct activity_store *as, struct sg_err *err)
{
	return store_begin(as->db, err);
}

int activity_store_commit(struct activity_store *as, struct sg_err *err)
{
	return store_commit(as->db, err);
}

void activity_store_rollback(struct activity_store *as)
{
	store_rollback(as->db);
}

/* ---------------------------------------------------------------- the decision log */

int activity_store_next_decision_id(struct activity_store *as, int64_t *id, struct sg_err *err)
{
	sqlite3_stmt *st = stmt(as, ST_NEXT_ID, err);

	*id = 1;
	return st != NULL ? one_int(as, st, id, err) : -1;
}

int activity_store_add_batch(struct activity_store *as, int64_t first_id, const char *daemon,
                             int64_t first_at, int64_t last_at, int n, const char *text, size_t len,
                             struct sg_err *err)
{
	sqlite3_stmt *st = stmt(as, ST_ADD_BATCH, err);

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, first_id);
	bind_text(st, 2, daemon);
	sqlite3_bind_int64(st, 3, first_at);
	sqlite3_bind_int64(st, 4, last_at);
	sqlite3_bind_int(st, 5, n);
	sqlite3_bind_text(st, 6, text, (int)len, SQLITE_STATIC);
	return run(as, st, err);
}

/* Copies a batch row's daemon and data into b->buf and decodes them. */
static int load_batch(sqlite3_stmt *st, struct decision_batch *b)
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
 * writers, the daemons' (decision_batch.c) and SQLite's json_array(). NULL
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

struct scan_state {
	struct activity_scan *scan;
	const char *needle;
	struct decision_batch b;
	activity_batch_fn fn;
	void *arg;
};

static int scan_row(sqlite3_stmt *st, void *arg)
{
	struct scan_state *s = arg;

	if (s->needle != NULL) {
		const char *data = (const char *)sqlite3_column_text(st, 4);

		if (data == NULL || strstr(data, s->needle) == NULL)
			return 0;
	}
	if (load_batch(st, &s->b) < 0) {
		if (s->scan->damaged++ == 0)
			s->scan->damaged_id = s->b.id;
		return 0;
	}
	return s->fn(&s->b, s->arg);
}

/* activity_store_scan() on the fleet's store, with the same needle. */
static int scan_pg(struct activity_store *as, struct activity_scan *scan, activity_batch_fn fn,
                   void *arg, struct sg_err *err)
{
	char *needle = scan->text != NULL ? quoted_needle(scan->text) : NULL;
	int rc = activity_store_pg_scan(as->pg, scan, needle, fn, arg, err);

	free(needle);
	return rc;
}

int activity_store_scan(struct activity_store *as, struct activity_scan *scan, activity_batch_fn fn,
                        void *arg, struct sg_err *err)
{
	if (as->pg != NULL)
		return scan_pg(as, scan, fn, arg, err);
	struct scan_state s = {scan, NULL, {0}, fn, arg};
	char *needle = scan->text != NULL ? quoted_needle(scan->text) : NULL;
	sqlite3_stmt *st = stmt(as, scan->newest_first ? ST_SCAN_NEWEST : ST_SCAN_OLDEST, err);
	int rc = -1;

	scan->damaged = 0;
	scan->damaged_id = 0;
	s.needle = needle;
	if (st != NULL) {
		sqlite3_bind_int64(st, 1, (int64_t)scan->since);
		sqlite3_bind_int64(st, 2, (int64_t)scan->until);
		rc = each_row(as, st, scan_row, &s, err);
	}
	decision_batch_free(&s.b);
	free(needle);
	return rc;
}

struct find_state {
	struct decision_batch *b;
	int damaged;
};

static int find_row(sqlite3_stmt *st, void *arg)
{
	struct find_state *f = arg;

	f->damaged = load_batch(st, f->b) < 0;
	return 1;
}

int activity_store_find_host_decision(struct activity_store *as, const char *host, int64_t id,
                                      struct decision_batch *b, const struct decision_record **out,
                                      struct sg_err *err)
{
	if (as->pg != NULL)
		return activity_store_pg_find_decision(as->pg, host, id, b, out, err);
	return activity_store_find_decision(as, id, b, out, err);
}

int activity_store_find_decision(struct activity_store *as, int64_t id, struct decision_batch *b,
                                 const struct decision_record **out, struct sg_err *err)
{
	if (as->pg != NULL)
		return activity_store_pg_find_decision(as->pg, NULL, id, b, out, err);
	struct find_state f = {b, 0};
	sqlite3_stmt *st = stmt(as, ST_FIND, err);

	*out = NULL;
	b->n = 0;
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	if (each_row(as, st, find_row, &f, err) < 0)
		return -1;
	if (f.damaged)
		return sg_err_set(err, "decision batch %lld is damaged", (long long)b->id);
	if (b->n == 0 || id - b->id >= (int64_t)b->n)
		return 0;
	*out = &b->d[id - b->id];
	return 1;
}

int activity_store_count_older(struct activity_store *as, time_t cutoff, int64_t *decisions,
                               int64_t *heartbeats, struct sg_err *err)
{
	if (as->pg != NULL)
		return activity_store_pg_count_older(as->pg, cutoff, decisions, heartbeats, err);
	sqlite3_stmt *st;

	*decisions = *heartbeats = 0;
	if ((st = stmt(as, ST_COUNT_OLD_DECISIONS, err)) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, (int64_t)cutoff);
	if (one_int(as, st, decisions, err) < 0 ||
	    (st = stmt(as, ST_COUNT_OLD_HEARTBEATS, err)) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, (int64_t)cutoff);
	return one_int(as, st, heartbeats, err);
}

struct old_batches {
	int64_t *ids;
	size_t n, cap;
	int64_t decisions, max;
};

static int old_batch_row(sqlite3_stmt *st, void *arg)
{
	struct old_batches *o = arg;

	if (o->n == o->cap) {
		o->cap = o->cap ? o->cap * 2 : 256;
		o->ids = xrealloc(o->ids, o->cap * sizeof(*o->ids));
	}
	o->ids[o->n++] = sqlite3_column_int64(st, 0);
	o->decisions += sqlite3_column_int64(st, 1);
	return o->decisions >= o->max;
}

int activity_store_prune_decisions(struct activity_store *as, time_t cutoff, int64_t max,
                                   int64_t *n, struct sg_err *err)
{
	if (as->pg != NULL)
		return activity_store_pg_prune_decisions(as->pg, cutoff, max, n, err);
	struct old_batches o = {NULL, 0, 0, 0, max};
	sqlite3_stmt *old, *del;
	int rc;

	*n = 0;
	if ((old = stmt(as, ST_OLD_BATCHES, err)) == NULL ||
	    (del = stmt(as, ST_DELETE_BATCH, err)) == NULL || store_begin(as->db, err) < 0)
		return -1;
	sqlite3_bind_int64(old, 1, (int64_t)cutoff);
	rc = each_row(as, old, old_batch_row, &o, err);
	for (size_t i = 0; rc == 0 && i < o.n; i++) {
		sqlite3_bind_int64(del, 1, o.ids[i]);
		rc = run(as, del, err);
	}
	free(o.ids);
	if (rc < 0) {
		store_rollback(as->db);
		return -1;
	}
	if (store_commit(as->db, err) < 0)
		return -1;
	*n = o.decisions;
	return 0;
}

int activity_store_prune_heartbeats(struct activity_store *as, time_t cutoff, int64_t *n,
                                    struct sg_err *err)
{
	if (as->pg != NULL)
		return activity_store_pg_prune_heartbeats(as->pg, cutoff, n, err);
	sqlite3_stmt *st = stmt(as, ST_DELETE_HEARTBEATS, err);

	*n = 0;
	if (st == NULL || store_begin(as->db, err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, (int64_t)cutoff);
	if (run(as, st, err) < 0) {
		store_rollback(as->db);
		return -1;
	}
	*n = sqlite3_changes(as->db);
	return store_commit(as->db, err);
}

/* ---------------------------------------------------------------- the usage table */

int activity_store_add_usage(struct activity_store *as, const struct activity_usage_row *u,
                             struct sg_err *err)
{
	sqlite3_stmt *st = stmt(as, ST_ADD_USAGE, err);

	if (st == NULL)
		return -1;
	bind_text(st, 1, u->user);
	bind_text(st, 2, u->mech);
	bind_text(st, 3, u->network);
	bind_text(st, 4, u->mech_class);
	sqlite3_bind_int64(st, 5, u->first_seen);
	sqlite3_bind_int64(st, 6, u->last_seen);
	sqlite3_bind_int64(st, 7, u->count);
	bind_text(st, 8, u->last_outcome);
	bind_text_or_null(st, 9, u->last_client);
	sqlite3_bind_int(st, 10, u->last_tls);
	bind_text_or_null(st, 11, u->last_service);
	return run(as, st, err);
}

struct usage_state {
	const struct activity_usage_query *q;
	int (*fn)(const struct activity_usage_row *u, void *arg);
	void *arg;
};

static int usage_row(sqlite3_stmt *st, void *arg)
{
	struct usage_state *s = arg;
	const char *user = text_of(st, 0);
	struct activity_usage_row u;

	if (s->q->keep_user != NULL && !s->q->keep_user(user, s->q->keep_arg))
		return 0;
	u = (struct activity_usage_row){
	    .user = user,
	    .mech = text_of(st, 1),
	    .network = text_of(st, 2),
	    .mech_class = text_of(st, 3),
	    .first_seen = sqlite3_column_int64(st, 4),
	    .last_seen = sqlite3_column_int64(st, 5),
	    .count = sqlite3_column_int64(st, 6),
	    .last_outcome = text_of(st, 7),
	    .last_client = (const char *)sqlite3_column_text(st, 8),
	    .last_tls = sqlite3_column_int(st, 9),
	    .last_service = text_of(st, 10),
	};

	return s->fn(&u, s->arg);
}

int activity_store_usage_legacy(struct activity_store *as, const struct activity_usage_query *q,
                                int (*fn)(const struct activity_usage_row *u, void *arg), void *arg,
                                struct sg_err *err)
{
	if (as->pg != NULL)
		return activity_store_pg_usage_legacy(as->pg, q, fn, arg, err);
	static const int which[2][2] = {{ST_USAGE_LEGACY, ST_USAGE_LEGACY_MECH},
	                                {ST_USAGE_LEGACY_CLASS, ST_USAGE_LEGACY_CLASS_MECH}};
	struct usage_state s = {q, fn, arg};
	sqlite3_stmt *st = stmt(as, which[q->mech_class != NULL][q->mech != NULL], err);
	int i = 2;

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, (int64_t)q->since);
	if (q->mech_class != NULL)
		bind_text(st, i++, q->mech_class);
	if (q->mech != NULL)
		bind_text(st, i, q->mech);
	return each_row(as, st, usage_row, &s, err);
}

int activity_store_count_legacy_users(struct activity_store *as, time_t since, time_t until,
                                      int64_t *n, struct sg_err *err)
{
	if (as->pg != NULL)
		return activity_store_pg_count_legacy_users(as->pg, since, until, n, err);
	sqlite3_stmt *st = stmt(as, ST_LEGACY_USERS, err);

	*n = 0;
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, (int64_t)since);
	sqlite3_bind_int64(st, 2, (int64_t)until);
	return one_int(as, st, n, err);
}

struct moved_state {
	int (*fn)(const char *user, void *arg);
	void *arg;
};

static int moved_row(sqlite3_stmt *st, void *arg)
{
	struct moved_state *s = arg;

	return s->fn(text_of(st, 0), s->arg);
}

int activity_store_usage_moved(struct activity_store *as, time_t since,
                               int (*fn)(const char *user, void *arg), void *arg,
                               struct sg_err *err)
{
	if (as->pg != NULL)
		return activity_store_pg_usage_moved(as->pg, since, fn, arg, err);
	struct moved_state s = {fn, arg};
	sqlite3_stmt *st = stmt(as, ST_MOVED, err);

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, (int64_t)since);
	return each_row(as, st, moved_row, &s, err);
}

/* ---------------------------------------------------------------- heartbeats */

/* snapshot_source and snapshot_at at i, i + 1; NULL when h has none (a
 * heartbeat written before the daemon's first). */
static void bind_snapshot(sqlite3_stmt *st, int i, const struct activity_heartbeat *h)
{
	const char *source = h->snapshot_source;
	int64_t at = h->snapshot_at;

	if (source[0] == '\0') {
		sqlite3_bind_null(st, i);
		sqlite3_bind_null(st, i + 1);
		return;
	}
	sqlite3_bind_text(st, i, source, -1, SQLITE_TRANSIENT);
	if (at > 0)
		sqlite3_bind_int64(st, i + 1, at);
	else
		sqlite3_bind_null(st, i + 1);
}

int activity_store_put_heartbeat(struct activity_store *as, const struct activity_heartbeat *h,
                                 struct sg_err *err)
{
	sqlite3_stmt *st = stmt(as, ST_PUT_HEARTBEAT, err);

	if (st == NULL)
		return -1;
	bind_text(st, 1, h->program);
	bind_text(st, 2, h->host);
	sqlite3_bind_int64(st, 3, h->pid);
	sqlite3_bind_int64(st, 4, h->started_at);
	sqlite3_bind_int64(st, 5, h->last_seen);
	sqlite3_bind_int64(st, 6, h->generation);
	sqlite3_bind_int(st, 7, h->degraded);
	bind_text_or_null(st, 8, h->reason);
	sqlite3_bind_int64(st, 9, h->requests);
	sqlite3_bind_int64(st, 10, h->blocks);
	sqlite3_bind_int64(st, 11, h->allows);
	sqlite3_bind_int64(st, 12, h->would_blocks);
	sqlite3_bind_int64(st, 13, h->not_authenticated);
	sqlite3_bind_int64(st, 14, h->errors);
	sqlite3_bind_int64(st, 15, h->dropped);
	sqlite3_bind_int64(st, 16, h->rebuilds);
	sqlite3_bind_int64(st, 17, h->last_rebuild_us);
	sqlite3_bind_int(st, 18, h->stopped);
	bind_snapshot(st, 19, h);
	return run(as, st, err);
}

/* A malloc'ed array being filled by a row loop. */
struct rows {
	void *v;
	size_t n, cap, size;
};

static void *rows_add(struct rows *r)
{
	char *slot;

	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 16;
		r->v = xrealloc(r->v, r->cap * r->size);
	}
	slot = (char *)r->v + r->n++ * r->size;
	memset(slot, 0, r->size);
	return slot;
}

/* Runs st through row_fn into a new array of elements of size bytes. */
static int read_rows(struct activity_store *as, sqlite3_stmt *st, size_t size,
                     int (*row_fn)(sqlite3_stmt *st, void *arg), void **out, size_t *n,
                     struct sg_err *err)
{
	struct rows r = {NULL, 0, 0, size};

	if (st == NULL || each_row(as, st, row_fn, &r, err) < 0) {
		free(r.v);
		return -1;
	}
	*out = r.v;
	*n = r.n;
	return 0;
}

static int heartbeat_row(sqlite3_stmt *st, void *arg)
{
	struct activity_heartbeat *h = rows_add(arg);

	sg_strlcpy(h->program, text_of(st, 0), sizeof(h->program));
	sg_strlcpy(h->host, text_of(st, 1), sizeof(h->host));
	h->pid = sqlite3_column_int64(st, 2);
	h->started_at = sqlite3_column_int64(st, 3);
	h->last_seen = sqlite3_column_int64(st, 4);
	h->generation = sqlite3_column_int64(st, 5);
	h->degraded = sqlite3_column_int(st, 6);
	sg_strlcpy(h->reason, text_of(st, 7), sizeof(h->reason));
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
	sg_strlcpy(h->snapshot_source, text_of(st, 19), sizeof(h->snapshot_source));
	h->snapshot_at = sqlite3_column_int64(st, 20);
	return 0;
}

/* Started later; seq (insertion order) breaks ties within a second. */
static int newer(const struct activity_heartbeat *a, const struct activity_heartbeat *b)
{
	return a->started_at != b->started_at ? a->started_at > b->started_at : a->seq > b->seq;
}

static void classify(struct activity_heartbeat *hb, size_t n, time_t now, int64_t stale)
{
	for (size_t i = 0; i < n; i++) {
		struct activity_heartbeat *h = &hb[i];

		h->age = (int64_t)now - h->last_seen;
		if (h->age < 0)
			h->age = 0;
		h->state = h->stopped       ? ACTIVITY_STOPPED
		           : h->age > stale ? ACTIVITY_STALE
		                            : ACTIVITY_RUNNING;
		for (size_t k = 0; k < n && !h->stopped; k++) {
			if (k == i || strcmp(hb[k].program, h->program) != 0 ||
			    strcmp(hb[k].host, h->host) != 0)
				continue;
			if (newer(&hb[k], h) && hb[k].started_at >= h->last_seen) {
				h->state = ACTIVITY_SUPERSEDED;
				break;
			}
		}
	}
}

int activity_store_heartbeats(struct activity_store *as, time_t now, int64_t stale,
                              struct activity_heartbeat **out, size_t *n, struct sg_err *err)
{
	void *v;

	if (as->pg != NULL) {
		if (activity_store_pg_heartbeats(as->pg, out, n, err) < 0)
			return -1;
		classify(*out, *n, now, stale);
		return 0;
	}
	if (read_rows(as, stmt(as, ST_HEARTBEATS, err), sizeof(**out), heartbeat_row, &v, n, err) <
	    0)
		return -1;
	*out = v;
	classify(*out, *n, now, stale);
	return 0;
}

const char *activity_daemon_state_name(enum activity_daemon_state s)
{
	switch (s) {
	case ACTIVITY_RUNNING:
		return "running";
	case ACTIVITY_STALE:
		return "stale";
	case ACTIVITY_STOPPED:
		return "stopped";
	case ACTIVITY_SUPERSEDED:
		return "superseded";
	}
	return "?";
}

/* ---------------------------------------------------------------- Dovecot's reports */

int activity_store_put_auth_counts(struct activity_store *as, const char *program, const char *host,
                                   int64_t pid, const struct activity_auth_count *c, size_t n,
                                   struct sg_err *err)
{
	for (size_t i = 0; i < n; i++) {
		sqlite3_stmt *st = stmt(as, ST_PUT_AUTH, err);

		if (st == NULL)
			return -1;
		bind_text(st, 1, program);
		bind_text(st, 2, host);
		sqlite3_bind_int64(st, 3, pid);
		bind_text(st, 4, c[i].service);
		bind_text(st, 5, c[i].mech_class);
		bind_text(st, 6, c[i].result);
		sqlite3_bind_int64(st, 7, (sqlite3_int64)c[i].n);
		if (run(as, st, err) < 0)
			return -1;
	}
	return 0;
}

static int auth_result_row(sqlite3_stmt *st, void *arg)
{
	struct activity_auth_result *a = rows_add(arg);

	sg_strlcpy(a->program, text_of(st, 0), sizeof(a->program));
	sg_strlcpy(a->host, text_of(st, 1), sizeof(a->host));
	sg_strlcpy(a->service, text_of(st, 2), sizeof(a->service));
	sg_strlcpy(a->mech_class, text_of(st, 3), sizeof(a->mech_class));
	sg_strlcpy(a->result, text_of(st, 4), sizeof(a->result));
	a->count = sqlite3_column_int64(st, 5);
	return 0;
}

int activity_store_auth_results(struct activity_store *as, struct activity_auth_result **out,
                                size_t *n, struct sg_err *err)
{
	void *v;

	if (as->pg != NULL)
		return activity_store_pg_auth_results(as->pg, out, n, err);
	if (read_rows(as, stmt(as, ST_AUTH_RESULTS, err), sizeof(**out), auth_result_row, &v, n,
	              err) < 0)
		return -1;
	*out = v;
	return 0;
}

/* ---------------------------------------------------------------- the fleet spool */

struct spool_state {
	char *token;
	size_t len;
	int64_t next_id, pending;
};

static int spool_state_row(sqlite3_stmt *st, void *arg)
{
	struct spool_state *s = arg;

	if (s->token != NULL)
		sg_strlcpy(s->token, text_of(st, 0), s->len);
	s->next_id = sqlite3_column_int64(st, 1);
	s->pending = sqlite3_column_int64(st, 2);
	return 1;
}

static int read_spool_state(struct activity_store *as, struct spool_state *s, struct sg_err *err)
{
	sqlite3_stmt *st = stmt(as, ST_SPOOL_STATE, err);

	return st != NULL ? each_row(as, st, spool_state_row, s, err) : -1;
}

int activity_store_spool_next_id(struct activity_store *as, int64_t *id, struct sg_err *err)
{
	struct spool_state s = {NULL, 0, 0, 0};

	if (read_spool_state(as, &s, err) < 0)
		return -1;
	if (s.next_id > *id)
		*id = s.next_id;
	return 0;
}

int activity_store_spool_add(struct activity_store *as, const char *host, int64_t first_id,
                             int64_t n, int64_t at, int64_t max, int64_t *seq, struct sg_err *err)
{
	struct spool_state s = {NULL, 0, 0, 0};
	sqlite3_stmt *st;

	*seq = 0;
	if (read_spool_state(as, &s, err) < 0)
		return -1;
	if (s.pending + n <= max) {
		if ((st = stmt(as, ST_SPOOL_ADD, err)) == NULL)
			return -1;
		bind_text(st, 1, host);
		sqlite3_bind_int64(st, 2, first_id);
		sqlite3_bind_int64(st, 3, n);
		sqlite3_bind_int64(st, 4, at);
		if (run(as, st, err) < 0)
			return -1;
		*seq = sqlite3_last_insert_rowid(as->db);
	}
	/* The ids are taken whether or not the spool had room. */
	if ((st = stmt(as, ST_SPOOL_SET_STATE, err)) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, first_id + n);
	sqlite3_bind_int64(st, 2, *seq > 0 ? n : 0);
	if (run(as, st, err) < 0)
		return -1;
	return *seq > 0;
}

int activity_store_spool_add_usage(struct activity_store *as, int64_t seq,
                                   const struct activity_usage_row *u, struct sg_err *err)
{
	sqlite3_stmt *st = stmt(as, ST_SPOOL_ADD_USAGE, err);

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, seq);
	bind_text(st, 2, u->user);
	bind_text(st, 3, u->mech);
	bind_text(st, 4, u->network);
	bind_text(st, 5, u->mech_class);
	sqlite3_bind_int64(st, 6, u->first_seen);
	sqlite3_bind_int64(st, 7, u->last_seen);
	sqlite3_bind_int64(st, 8, u->count);
	bind_text(st, 9, u->last_outcome);
	bind_text_or_null(st, 10, u->last_client);
	sqlite3_bind_int(st, 11, u->last_tls);
	bind_text_or_null(st, 12, u->last_service);
	return run(as, st, err);
}

int activity_store_spool_state(struct activity_store *as, char *token, size_t len, int64_t *pending,
                               struct sg_err *err)
{
	struct spool_state s = {token, len, 0, 0};

	token[0] = '\0';
	if (read_spool_state(as, &s, err) < 0)
		return -1;
	if (token[0] == '\0')
		return sg_err_set(err, "fleet_spool_state has no row");
	*pending = s.pending;
	return 0;
}

struct spool_rows_state {
	int (*fn)(const struct activity_spool_row *r, void *arg);
	void *arg;
};

static int spool_row(sqlite3_stmt *st, void *arg)
{
	struct spool_rows_state *s = arg;
	struct activity_spool_row r = {
	    .seq = sqlite3_column_int64(st, 0),
	    .first_id = sqlite3_column_int64(st, 1),
	    .n = sqlite3_column_int64(st, 2),
	    .at = sqlite3_column_int64(st, 3),
	};

	return s->fn(&r, s->arg);
}

int activity_store_spool_rows(struct activity_store *as, const char *host, int64_t limit,
                              int (*fn)(const struct activity_spool_row *r, void *arg), void *arg,
                              struct sg_err *err)
{
	struct spool_rows_state s = {fn, arg};
	sqlite3_stmt *st = stmt(as, ST_SPOOL_ROWS, err);

	if (st == NULL)
		return -1;
	bind_text(st, 1, host);
	sqlite3_bind_int64(st, 2, limit);
	return each_row(as, st, spool_row, &s, err);
}

int activity_store_spool_usage(struct activity_store *as, int64_t seq,
                               int (*fn)(const struct activity_usage_row *u, void *arg), void *arg,
                               struct sg_err *err)
{
	static const struct activity_usage_query all = {0, NULL, NULL, NULL, NULL};
	struct usage_state s = {&all, fn, arg};
	sqlite3_stmt *st = stmt(as, ST_SPOOL_USAGE, err);

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, seq);
	return each_row(as, st, usage_row, &s, err);
}

struct raw_batch_state {
	int (*fn)(const struct activity_raw_batch *b, void *arg);
	void *arg;
};

static int raw_batch_row(sqlite3_stmt *st, void *arg)
{
	struct raw_batch_state *s = arg;
	struct activity_raw_batch b = {
	    .id = sqlite3_column_int64(st, 0),
	    .daemon = text_of(st, 1),
	    .first_at = sqlite3_column_int64(st, 2),
	    .last_at = sqlite3_column_int64(st, 3),
	    .n = sqlite3_column_int(st, 5),
	};

	/* As a blob: the bytes as stored, whatever their encoding. */
	b.data = sqlite3_column_blob(st, 4);
	b.len = (size_t)sqlite3_column_bytes(st, 4);
	if (b.data == NULL)
		b.data = "";
	return s->fn(&b, s->arg);
}

int activity_store_spool_batches(struct activity_store *as, int64_t first_id, int64_t n,
                                 int (*fn)(const struct activity_raw_batch *b, void *arg),
                                 void *arg, struct sg_err *err)
{
	struct raw_batch_state s = {fn, arg};
	sqlite3_stmt *st = stmt(as, ST_SPOOL_BATCHES, err);

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, first_id);
	sqlite3_bind_int64(st, 2, first_id + n);
	return each_row(as, st, raw_batch_row, &s, err);
}

struct spool_heartbeat_state {
	int (*fn)(const struct activity_heartbeat *h, void *arg);
	void *arg;
	struct activity_heartbeat h;
	struct rows one;
};

static int spool_heartbeat_row(sqlite3_stmt *st, void *arg)
{
	struct spool_heartbeat_state *s = arg;

	/* heartbeat_row() fills the next element of a rows array: one, reused. */
	s->one.n = 0;
	heartbeat_row(st, &s->one);
	return s->fn(s->one.v, s->arg);
}

int activity_store_spool_heartbeats(struct activity_store *as, const char *host, int64_t since,
                                    int (*fn)(const struct activity_heartbeat *h, void *arg),
                                    void *arg, struct sg_err *err)
{
	struct spool_heartbeat_state s;
	sqlite3_stmt *st = stmt(as, ST_SPOOL_HEARTBEATS, err);
	int rc;

	if (st == NULL)
		return -1;
	memset(&s, 0, sizeof(s));
	s.fn = fn;
	s.arg = arg;
	s.one = (struct rows){&s.h, 0, 1, sizeof(s.h)};
	bind_text(st, 1, host);
	sqlite3_bind_int64(st, 2, since);
	rc = each_row(as, st, spool_heartbeat_row, &s, err);
	return rc;
}

struct spool_auth_state {
	int (*fn)(const char *program, int64_t pid, const struct activity_auth_count *c, void *arg);
	void *arg;
};

static int spool_auth_row(sqlite3_stmt *st, void *arg)
{
	struct spool_auth_state *s = arg;
	struct activity_auth_count c;

	memset(&c, 0, sizeof(c));
	sg_strlcpy(c.service, text_of(st, 2), sizeof(c.service));
	sg_strlcpy(c.mech_class, text_of(st, 3), sizeof(c.mech_class));
	sg_strlcpy(c.result, text_of(st, 4), sizeof(c.result));
	c.n = (uint64_t)sqlite3_column_int64(st, 5);
	return s->fn(text_of(st, 0), sqlite3_column_int64(st, 1), &c, s->arg);
}

int activity_store_spool_auth(struct activity_store *as, const char *host, int64_t since,
                              int (*fn)(const char *program, int64_t pid,
                                        const struct activity_auth_count *c, void *arg),
                              void *arg, struct sg_err *err)
{
	struct spool_auth_state s = {fn, arg};
	sqlite3_stmt *st = stmt(as, ST_SPOOL_AUTH, err);

	if (st == NULL)
		return -1;
	bind_text(st, 1, host);
	sqlite3_bind_int64(st, 2, since);
	return each_row(as, st, spool_auth_row, &s, err);
}

int activity_store_spool_delete(struct activity_store *as, const char *host, int64_t seq,
                                int64_t *decisions, struct sg_err *err)
{
	static const int steps[] = {ST_SPOOL_DELETE_USAGE, ST_SPOOL_DELETE};
	sqlite3_stmt *st;

	*decisions = 0;
	if (store_begin(as->db, err) < 0)
		return -1;
	if ((st = stmt(as, ST_SPOOL_DELIVERED, err)) == NULL)
		goto fail;
	bind_text(st, 1, host);
	sqlite3_bind_int64(st, 2, seq);
	if (one_int(as, st, decisions, err) < 0)
		goto fail;
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		if ((st = stmt(as, steps[i], err)) == NULL)
			goto fail;
		bind_text(st, 1, host);
		sqlite3_bind_int64(st, 2, seq);
		if (run(as, st, err) < 0)
			goto fail;
	}
	if ((st = stmt(as, ST_SPOOL_UNCOUNT, err)) == NULL)
		goto fail;
	sqlite3_bind_int64(st, 1, *decisions);
	if (run(as, st, err) < 0)
		goto fail;
	return store_commit(as->db, err);
fail:
	store_rollback(as->db);
	return -1;
}
