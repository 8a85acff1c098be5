/*
 * fleet_ship - the deliverer of a fleet host's activity to PostgreSQL (see
 * fleet_ship.h): a thread, its PGconn, its activity.db handle, and rounds
 * of one PostgreSQL transaction each.
 *
 * Values go as parameters, never in the SQL text: integers as text, the
 * bytea columns (user names, batches) as binary parameters, so that their
 * bytes arrive as they were recorded, invalid UTF-8 included; a text column
 * gets valid UTF-8 (an invalid byte becomes '?'), as PostgreSQL refuses
 * anything else and one such value would stop the spool for good.
 */
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "alloc.h"
#include "activity_store.h"
#include "fleet_ship.h"
#include "log.h"
#include "store_pg.h"
#include "utf8.h"

/* Spool rows per round (each names up to a writer's batch of decisions),
 * and how long the last rounds at stop may take. */
#define ROWS_PER_ROUND 64
#define STOP_ROUNDS_S  5
/* Statements of a round sent in one pipeline before their results are
 * read: one round trip per PIPELINE_STATEMENTS, not one per statement, and
 * few enough results waiting that neither side blocks on a full socket. */
#define PIPELINE_STATEMENTS 1000
/* activity.db reopen interval while it fails. */
#define LOCAL_RETRY_S 5

/* Usage rows in one statement: USAGE_CHUNK at most, sent in statements of
 * the sizes below (largest first, down to 1), each row USAGE_COLUMNS values
 * (the host first). */
#define USAGE_CHUNK   64
#define USAGE_COLUMNS 12
static const struct {
	int rows;
	const char *name;
} USAGE_STATEMENTS[] = {{USAGE_CHUNK, "add_usage_64"}, {8, "add_usage_8"}, {1, "add_usage_1"}};

/* The usage rows of one spool row waiting for their statement: their
 * values copied into buf (the callback's texts live only for the call). */
struct usage_chunk {
	int rows, n; /* rows; values (rows x USAGE_COLUMNS) */
	char *buf;   /* the values, NUL-terminated each */
	size_t used, cap;
	size_t off[USAGE_CHUNK * USAGE_COLUMNS]; /* into buf; SIZE_MAX: NULL */
	int len[USAGE_CHUNK * USAGE_COLUMNS], fmt[USAGE_CHUNK * USAGE_COLUMNS];
	const char *v[USAGE_CHUNK * USAGE_COLUMNS];
};

struct fleet_ship {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t thread;
	int started, kicked, stopping;

	char *conninfo, *dir, *host, *program;
	char label[256]; /* the store, without its password */
	unsigned interval_s;
	int kill_after_commit; /* the tests' fault hook */

	/* the thread's own */
	PGconn *pg;
	struct activity_store *local;
	char spool[4200]; /* fleet_delivery.spool: the directory and the token */
	time_t next_attempt, next_local_attempt;
	int local_failed; /* activity.db could not be opened: logged once */
	int backoff;
	time_t outage_since;       /* 0: delivering */
	int64_t heartbeats_since;  /* heartbeats last seen before it were delivered */
	int64_t conflicts;         /* batches PostgreSQL had already (another spool) */
	struct usage_chunk *usage; /* the round's usage rows not sent yet */
};

/* ------------------------------------------------------------ parameters */

#define MAX_PARAMS 20

/* The parameters of one statement; texts are borrowed or, when made valid
 * UTF-8, owned. */
struct params {
	const char *v[MAX_PARAMS];
	int len[MAX_PARAMS], fmt[MAX_PARAMS];
	char num[MAX_PARAMS][24];
	char *owned[MAX_PARAMS];
	int n;
};

static void params_reset(struct params *p)
{
	for (int i = 0; i < p->n; i++)
		free(p->owned[i]);
	p->n = 0;
}

static struct params *param_next(struct params *p, int *i)
{
	*i = p->n++;
	p->owned[*i] = NULL;
	p->len[*i] = 0;
	p->fmt[*i] = 0;
	return p;
}

static void p_int(struct params *p, int64_t v)
{
	int i;

	param_next(p, &i);
	snprintf(p->num[i], sizeof(p->num[i]), "%lld", (long long)v);
	p->v[i] = p->num[i];
}

/* s (len bytes, not valid UTF-8) as a copy with '?' for each byte that
 * does not start a valid character: PostgreSQL's text refuses them. */
static char *valid_utf8_copy(const char *s, size_t len)
{
	char *copy = xmalloc(len + 1);

	for (size_t k = 0; k < len;) {
		size_t n = utf8_char_len((const unsigned char *)s + k, len - k);
		uint32_t cp;

		if ((unsigned char)s[k] >= 0x80 &&
		    utf8_decode((const unsigned char *)s + k, len - k, &cp) == 0)
			copy[k] = '?';
		else
			memcpy(copy + k, s + k, n);
		k += n;
	}
	copy[len] = '\0';
	return copy;
}

/* A text column: NULL stays NULL (and so does "" with null_empty). */
static void p_text_or(struct params *p, const char *s, int null_empty)
{
	size_t len;
	int i;

	param_next(p, &i);
	if (s == NULL || (null_empty && *s == '\0')) {
		p->v[i] = NULL;
		return;
	}
	len = strlen(s);
	if (utf8_valid(s, len)) {
		p->v[i] = s;
		return;
	}
	p->owned[i] = valid_utf8_copy(s, len);
	p->v[i] = p->owned[i];
}

static void p_text(struct params *p, const char *s)
{
	p_text_or(p, s, 0);
}

/* A bytea column: the bytes as they are. */
static void p_bytes(struct params *p, const char *b, size_t len)
{
	int i;

	param_next(p, &i);
	p->v[i] = b;
	p->len[i] = (int)len;
	p->fmt[i] = 1;
}

/* libpq's message as one line, without the "FATAL:" of a server that
 * shuts down (what a daemon logs is its own severity). */
static int pg_error(PGconn *pg, const char *what, struct sg_err *err)
{
	char *fatal;

	sg_err_set(err, "%s: %s", what, PQerrorMessage(pg));
	store_pg_one_line(err->text);
	while ((fatal = strstr(err->text, "FATAL: ")) != NULL)
		memmove(fatal, fatal + 7, strlen(fatal + 7) + 1);
	return -1;
}

/* Runs sql with p (then reset). Rows of a query go to *out if not NULL (to
 * be PQclear()ed). 0, or -1 with err. */
static int exec_params(PGconn *pg, const char *what, const char *sql, struct params *p,
                       PGresult **out, struct sg_err *err)
{
	PGresult *r = PQexecParams(pg, sql, p->n, NULL, p->v, p->len, p->fmt, 0);
	ExecStatusType st = PQresultStatus(r);
	int rc = 0;

	params_reset(p);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		rc = pg_error(pg, what, err);
	if (rc == 0 && out != NULL)
		*out = r;
	else
		PQclear(r);
	return rc;
}

static int exec_plain(PGconn *pg, const char *sql, struct sg_err *err)
{
	struct params p = {.n = 0};

	return exec_params(pg, sql, sql, &p, NULL, err);
}

/* ------------------------------------------------------------ one round */

/* What a round applies and what the callbacks need. */
struct round {
	struct fleet_ship *fs;
	struct sg_err *err;
	struct activity_spool_row rows[ROWS_PER_ROUND];
	int n_rows;
	int64_t last_seq;  /* PostgreSQL's, locked */
	int64_t id_offset; /* added to this spool's decision ids (fleet_delivery) */
	int64_t newest_hb; /* the newest heartbeat delivered */
	int64_t decisions; /* decisions applied */
	int failed;
	int queued;                            /* statements sent since the last sync */
	const char *sent[PIPELINE_STATEMENTS]; /* their prepared statements' names */
};

static int collect_row(const struct activity_spool_row *r, void *arg)
{
	struct round *rd = arg;

	rd->rows[rd->n_rows++] = *r;
	return rd->n_rows == ROWS_PER_ROUND;
}

/* clang-format off */
#define SQL_ADD_BATCH                                                                              \
	"INSERT INTO fleet_decision_batches (host, id, daemon, first_at, last_at, n, data) "       \
	"VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (host, id) DO NOTHING"

#define NEWER(col)                                                                                 \
	col " = CASE WHEN EXCLUDED.last_seen >= u.last_seen THEN EXCLUDED." col " ELSE u." col " END"

/* The usage rows of a spool row go in statements of USAGE_STATEMENTS, each
 * VALUES row USAGE_COLUMNS parameters: one execution for up to USAGE_CHUNK
 * keys (the executor's start-up, per statement, was
 * most of PostgreSQL's work on the usage). A spool row's keys are unique,
 * so no statement updates a row twice. */
#define SQL_USAGE_INSERT                                                                           \
	"INSERT INTO fleet_usage AS u (host, user_name, mech, network, mech_class, first_seen, "   \
	"last_seen, count, last_outcome, last_client, last_tls, last_service) VALUES "

#define SQL_USAGE_CONFLICT                                                                         \
	" ON CONFLICT (user_name, mech, network, host) DO UPDATE SET "                             \
	"first_seen = LEAST(u.first_seen, EXCLUDED.first_seen), "                                  \
	"last_seen = GREATEST(u.last_seen, EXCLUDED.last_seen), "                                  \
	"count = u.count + EXCLUDED.count, mech_class = EXCLUDED.mech_class, "                     \
	NEWER("last_outcome") ", " NEWER("last_client") ", " NEWER("last_tls") ", "                \
	NEWER("last_service")

#define SQL_PUT_HEARTBEAT                                                                          \
	"INSERT INTO fleet_heartbeats AS h (program, host, pid, started_at, last_seen, "           \
	"generation, degraded, degraded_reason, requests, blocks, allows, would_blocks, "          \
	"not_authenticated, errors, dropped, rebuilds, last_rebuild_us, stopped, snapshot_source, " \
	"snapshot_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, "  \
	"$16, $17, $18, $19, $20) "                                                                 \
	"ON CONFLICT (program, host, pid) DO UPDATE SET last_seen = EXCLUDED.last_seen, "          \
	"generation = EXCLUDED.generation, degraded = EXCLUDED.degraded, "                         \
	"degraded_reason = EXCLUDED.degraded_reason, requests = EXCLUDED.requests, "               \
	"blocks = EXCLUDED.blocks, allows = EXCLUDED.allows, "                                     \
	"would_blocks = EXCLUDED.would_blocks, not_authenticated = EXCLUDED.not_authenticated, "   \
	"errors = EXCLUDED.errors, dropped = EXCLUDED.dropped, rebuilds = EXCLUDED.rebuilds, "     \
	"last_rebuild_us = EXCLUDED.last_rebuild_us, stopped = EXCLUDED.stopped, "                \
	"snapshot_source = EXCLUDED.snapshot_source, snapshot_at = EXCLUDED.snapshot_at "          \
	"WHERE EXCLUDED.last_seen >= h.last_seen"

#define SQL_PUT_AUTH                                                                               \
	"INSERT INTO fleet_auth_results AS a (program, host, pid, service, mech_class, result, "   \
	"count) VALUES ($1, $2, $3, $4, $5, $6, $7) "                                              \
	"ON CONFLICT (program, host, pid, service, mech_class, result) "                           \
	"DO UPDATE SET count = GREATEST(a.count, EXCLUDED.count)"
/* clang-format on */

/* Reads the results of the statements sent since the last sync, up to a
 * new sync: the first failure into rd->err, named by its statement (the rest
 * of the pipeline is aborted by it, and so is the transaction); a batch
 * that added no row is a conflict. 0 or -1. */
static int pipeline_sync(struct round *rd)
{
	PGconn *pg = rd->fs->pg;
	int rc = 0, done = 0;

	if (rd->queued == 0)
		return 0;
	if (PQpipelineSync(pg) != 1)
		return pg_error(pg, "pipeline", rd->err);
	for (;;) {
		PGresult *r = PQgetResult(pg);
		ExecStatusType st;

		if (r == NULL) {
			/* the end of one statement's results */
			if (++done > rd->queued)
				return rc < 0 ? rc : pg_error(pg, "pipeline", rd->err);
			continue;
		}
		st = PQresultStatus(r);
		if (st == PGRES_PIPELINE_SYNC) {
			PQclear(r);
			break;
		}
		if (rc == 0 && st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
			sg_err_set(rd->err, "%s: %s",
			           done < rd->queued ? rd->sent[done] : "pipeline",
			           PQresultErrorMessage(r));
			store_pg_one_line(rd->err->text);
			rc = -1;
		} else if (st == PGRES_COMMAND_OK && done < rd->queued &&
		           strcmp(rd->sent[done], "add_batch") == 0 &&
		           strcmp(PQcmdTuples(r), "0") == 0) {
			/* Never a second delivery of this spool (last_seq says so): a
			 * batch of another activity.db of the same host name. */
			rd->fs->conflicts++;
		}
		PQclear(r);
	}
	rd->queued = 0;
	return rc;
}

/* Sends the prepared statement stmt (a string constant) with n values
 * into the pipeline. 0, or 1 with err and rd->failed set. */
static int pipeline_send_values(struct round *rd, const char *stmt, int n, const char *const *v,
                                const int *len, const int *fmt)
{
	if (PQsendQueryPrepared(rd->fs->pg, stmt, n, v, len, fmt, 0) != 1) {
		pg_error(rd->fs->pg, stmt, rd->err);
		return rd->failed = 1;
	}
	rd->sent[rd->queued++] = stmt;
	if (rd->queued == PIPELINE_STATEMENTS && pipeline_sync(rd) < 0)
		return rd->failed = 1;
	return 0;
}

/* pipeline_send_values() with p (then reset: libpq has copied the values). */
static int pipeline_send(struct round *rd, const char *stmt, struct params *p)
{
	int rc = pipeline_send_values(rd, stmt, p->n, p->v, p->len, p->fmt);

	params_reset(p);
	return rc;
}

static int ship_batch(const struct activity_raw_batch *b, void *arg)
{
	struct round *rd = arg;
	struct params p = {.n = 0};

	p_text(&p, rd->fs->host);
	p_int(&p, b->id + rd->id_offset);
	p_text(&p, b->daemon);
	p_int(&p, b->first_at);
	p_int(&p, b->last_at);
	p_int(&p, b->n);
	p_bytes(&p, b->data, b->len);
	if (pipeline_send(rd, "add_batch", &p) != 0)
		return 1;
	rd->decisions += b->n;
	return 0;
}

/* Appends a value to the chunk: len bytes of b (a bytea when binary, else
 * text made valid UTF-8), or NULL when b is NULL. */
static void chunk_put(struct usage_chunk *c, const char *b, size_t len, int binary)
{
	char *copy = NULL;

	if (b == NULL) {
		c->off[c->n] = SIZE_MAX;
		c->len[c->n] = c->fmt[c->n] = 0;
		c->n++;
		return;
	}
	if (!binary && !utf8_valid(b, len))
		b = copy = valid_utf8_copy(b, len);
	if (c->used + len + 1 > c->cap) {
		c->cap = (c->used + len + 1) * 2;
		c->buf = xrealloc(c->buf, c->cap);
	}
	memcpy(c->buf + c->used, b, len);
	c->buf[c->used + len] = '\0';
	free(copy);
	c->off[c->n] = c->used;
	c->len[c->n] = binary ? (int)len : 0;
	c->fmt[c->n] = binary;
	c->used += len + 1;
	c->n++;
}

static void chunk_text(struct usage_chunk *c, const char *s, int null_empty)
{
	chunk_put(c, s == NULL || (null_empty && *s == '\0') ? NULL : s, s ? strlen(s) : 0, 0);
}

static void chunk_int(struct usage_chunk *c, int64_t v)
{
	char num[24];

	chunk_put(c, num, (size_t)snprintf(num, sizeof(num), "%lld", (long long)v), 0);
}

static void chunk_clear(struct usage_chunk *c)
{
	c->rows = c->n = 0;
	c->used = 0;
}

/* Sends the chunk's rows, in statements of USAGE_STATEMENTS, and empties
 * it. 0, or 1 with err and rd->failed set. */
static int chunk_send(struct round *rd)
{
	struct usage_chunk *c = rd->fs->usage;
	int first = 0, rc = 0;

	for (int i = 0; i < c->n; i++) /* buf has stopped moving */
		c->v[i] = c->off[i] == SIZE_MAX ? NULL : c->buf + c->off[i];
	while (rc == 0 && first < c->rows) {
		size_t k = 0;
		int at = first * USAGE_COLUMNS;

		while (USAGE_STATEMENTS[k].rows > c->rows - first)
			k++;
		rc = pipeline_send_values(rd, USAGE_STATEMENTS[k].name,
		                          USAGE_STATEMENTS[k].rows * USAGE_COLUMNS, c->v + at,
		                          c->len + at, c->fmt + at);
		first += USAGE_STATEMENTS[k].rows;
	}
	chunk_clear(c);
	return rc;
}

static int ship_usage(const struct activity_usage_row *u, void *arg)
{
	struct round *rd = arg;
	struct usage_chunk *c = rd->fs->usage;

	chunk_text(c, rd->fs->host, 0);
	chunk_put(c, u->user, strlen(u->user), 1);
	chunk_text(c, u->mech, 0);
	chunk_text(c, u->network, 0);
	chunk_text(c, u->mech_class, 0);
	chunk_int(c, u->first_seen);
	chunk_int(c, u->last_seen);
	chunk_int(c, u->count);
	chunk_text(c, u->last_outcome, 0);
	chunk_text(c, u->last_client, 1);
	chunk_int(c, u->last_tls);
	chunk_text(c, u->last_service, 1);
	return ++c->rows == USAGE_CHUNK ? chunk_send(rd) : 0;
}

static int ship_heartbeat(const struct activity_heartbeat *h, void *arg)
{
	struct round *rd = arg;
	struct params p = {.n = 0};

	p_text(&p, h->program);
	p_text(&p, h->host);
	p_int(&p, h->pid);
	p_int(&p, h->started_at);
	p_int(&p, h->last_seen);
	p_int(&p, h->generation);
	p_int(&p, h->degraded);
	p_text_or(&p, h->reason, 1);
	p_int(&p, h->requests);
	p_int(&p, h->blocks);
	p_int(&p, h->allows);
	p_int(&p, h->would_blocks);
	p_int(&p, h->not_authenticated);
	p_int(&p, h->errors);
	p_int(&p, h->dropped);
	p_int(&p, h->rebuilds);
	p_int(&p, h->last_rebuild_us);
	p_int(&p, h->stopped);
	p_text_or(&p, h->snapshot_source, 1);
	if (h->snapshot_at > 0)
		p_int(&p, h->snapshot_at);
	else
		p_text_or(&p, "", 1);
	if (pipeline_send(rd, "put_heartbeat", &p) != 0)
		return 1;
	if (h->last_seen > rd->newest_hb)
		rd->newest_hb = h->last_seen;
	return 0;
}

static int ship_auth(const char *program, int64_t pid, const struct activity_auth_count *c,
                     void *arg)
{
	struct round *rd = arg;
	struct params p = {.n = 0};

	p_text(&p, program);
	p_text(&p, rd->fs->host);
	p_int(&p, pid);
	p_text(&p, c->service);
	p_text(&p, c->mech_class);
	p_text(&p, c->result);
	p_int(&p, (int64_t)c->n);
	return pipeline_send(rd, "put_auth", &p);
}

/* Creates and locks fleet_delivery's row; its last_seq and id_offset into
 * rd. A spool new to PostgreSQL (a first activity.db, or one made anew) has
 * its decision ids raised above the host's highest so far. */
static int lock_cursor(struct round *rd, time_t now)
{
	struct fleet_ship *fs = rd->fs;
	struct params p = {.n = 0};
	PGresult *r = NULL;

	p_text(&p, fs->host);
	p_text(&p, fs->spool);
	p_int(&p, (int64_t)now);
	if (exec_params(
	        fs->pg, "fleet_delivery",
	        "INSERT INTO fleet_delivery (host, spool, last_seq, delivered_at, id_offset) "
	        "SELECT $1, $2, 0, $3, COALESCE((SELECT id + n - 1 FROM "
	        "fleet_decision_batches WHERE host = $1 ORDER BY id DESC LIMIT 1), 0) "
	        "WHERE NOT EXISTS (SELECT 1 FROM fleet_delivery WHERE host = $1 AND spool = $2) "
	        "ON CONFLICT (host, spool) DO NOTHING",
	        &p, NULL, rd->err) < 0)
		return -1;
	p_text(&p, fs->host);
	p_text(&p, fs->spool);
	if (exec_params(fs->pg, "fleet_delivery",
	                "SELECT last_seq, id_offset FROM fleet_delivery WHERE host = $1 AND "
	                "spool = $2 FOR UPDATE",
	                &p, &r, rd->err) < 0)
		return -1;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return sg_err_set(rd->err, "fleet_delivery: the row of %s is not there", fs->host);
	}
	rd->last_seq = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	rd->id_offset = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
	PQclear(r);
	return 0;
}

static int set_cursor(struct round *rd, int64_t seq, time_t now)
{
	struct fleet_ship *fs = rd->fs;
	struct params p = {.n = 0};

	p_int(&p, seq);
	p_int(&p, (int64_t)now);
	p_text(&p, fs->host);
	p_text(&p, fs->spool);
	return pipeline_send(rd, "set_cursor", &p) != 0 ? -1 : 0;
}

static int commit(PGconn *pg, struct sg_err *err)
{
	PGresult *r = PQexec(pg, "COMMIT");
	int rc = 0;

	/* A COMMIT of a failed transaction answers ROLLBACK, not an error. */
	if (PQresultStatus(r) != PGRES_COMMAND_OK || strcmp(PQcmdStatus(r), "COMMIT") != 0)
		rc = pg_error(pg, "COMMIT", err);
	PQclear(r);
	return rc;
}

/* Inside the PostgreSQL transaction, in pipeline mode: the spool rows after
 * last_seq, then the heartbeats and report totals; the new last_seq into
 * *top. */
static int apply_rows(struct round *rd, time_t now, int64_t *top, struct sg_err *err)
{
	struct fleet_ship *fs = rd->fs;

	chunk_clear(fs->usage); /* nothing left from a failed round */
	*top = rd->last_seq;
	for (int i = 0; i < rd->n_rows; i++) {
		const struct activity_spool_row *row = &rd->rows[i];

		if (row->seq <= rd->last_seq)
			continue; /* delivered, not deleted yet (a crash, the other daemon) */
		if (row->n > 0 && activity_store_spool_batches(fs->local, row->first_id, row->n,
		                                               ship_batch, rd, err) < 0)
			return -1;
		if (!rd->failed &&
		    activity_store_spool_usage(fs->local, row->seq, ship_usage, rd, err) < 0)
			return -1;
		if (!rd->failed)
			chunk_send(rd); /* the next spool row may have the same keys */
		if (rd->failed)
			return -1;
		*top = row->seq;
	}
	if (activity_store_spool_heartbeats(fs->local, fs->host, fs->heartbeats_since,
	                                    ship_heartbeat, rd, err) < 0 ||
	    rd->failed ||
	    activity_store_spool_auth(fs->local, fs->host, fs->heartbeats_since, ship_auth, rd,
	                              err) < 0 ||
	    rd->failed)
		return -1;
	return *top > rd->last_seq ? set_cursor(rd, *top, now) : 0;
}

/* apply_rows() in one pipeline (libpq 14 or newer), every result read
 * before it returns, so that the COMMIT after it is an ordinary statement:
 * the statements of a round cost one round trip per PIPELINE_STATEMENTS,
 * not one each, and still run in the round's one transaction (a failure
 * aborts it and the rest of the pipeline). */
static int apply(struct round *rd, time_t now, int64_t *top, struct sg_err *err)
{
	int rc;

	if (PQenterPipelineMode(rd->fs->pg) != 1)
		return pg_error(rd->fs->pg, "pipeline", err);
	rc = apply_rows(rd, now, top, err);
	if (pipeline_sync(rd) < 0)
		rc = -1;
	if (PQexitPipelineMode(rd->fs->pg) != 1 && rc == 0)
		rc = pg_error(rd->fs->pg, "pipeline", err);
	return rc;
}

/* One round. 1 if more spool rows may wait, 0 if not, -1 with err (the
 * PostgreSQL transaction rolled back). */
static int round_once(struct fleet_ship *fs, time_t now, struct sg_err *err)
{
	struct round rd = {.fs = fs, .err = err};
	int64_t top = 0, deleted = 0;
	int rc = -1;

	activity_store_read_begin(fs->local);
	if (activity_store_spool_rows(fs->local, fs->host, ROWS_PER_ROUND, collect_row, &rd, err) <
	    0)
		goto out;
	if (exec_plain(fs->pg, "BEGIN", err) < 0)
		goto out;
	if (lock_cursor(&rd, now) < 0 || apply(&rd, now, &top, err) < 0 ||
	    commit(fs->pg, err) < 0) {
		PQclear(PQexec(fs->pg, "ROLLBACK"));
		goto out;
	}
	rc = 0;
out:
	activity_store_read_end(fs->local);
	if (rc < 0)
		return -1;
	if (rd.newest_hb > 0)
		fs->heartbeats_since = rd.newest_hb; /* that second again next time */
	if (fs->kill_after_commit && top > rd.last_seq)
		kill(getpid(), SIGKILL); /* the tests' crash between the two commits */
	if (rd.n_rows == 0)
		return 0;
	if (activity_store_spool_delete(fs->local, fs->host, rd.rows[rd.n_rows - 1].seq, &deleted,
	                                err) < 0) {
		/* PostgreSQL has them: the next round only deletes them. */
		log_error("fleet activity: %s/activity.db: cannot delete delivered spool rows: %s",
		          fs->dir, err->text);
		return 0;
	}
	return rd.n_rows == ROWS_PER_ROUND;
}

/* ------------------------------------------------------------ connections */

static void quiet_notices(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* The outage, logged once; the next attempt after the backoff. */
static void failed(struct fleet_ship *fs, time_t now, const char *why)
{
	PQfinish(fs->pg);
	fs->pg = NULL;
	fs->next_attempt = now + fs->backoff;
	fs->backoff =
	    fs->backoff * 2 > STORE_PG_BACKOFF_MAX_S ? STORE_PG_BACKOFF_MAX_S : fs->backoff * 2;
	if (fs->outage_since != 0)
		return;
	fs->outage_since = now;
	log_error("fleet activity: cannot deliver to %s, keeping it in %s/activity.db "
	          "until it can: %s",
	          fs->label, fs->dir, why);
}

static void delivering(struct fleet_ship *fs, time_t now)
{
	fs->backoff = STORE_PG_BACKOFF_MIN_S;
	if (fs->outage_since == 0)
		return;
	log_info("fleet activity: delivering to %s again after %lld s", fs->label,
	         (long long)(now - fs->outage_since));
	fs->outage_since = 0;
}

static int open_local(struct fleet_ship *fs, time_t now)
{
	struct sg_err err = {{0}};
	char token[64];
	int64_t pending;

	if (fs->local != NULL)
		return 0;
	if (now < fs->next_local_attempt)
		return -1;
	fs->next_local_attempt = now + LOCAL_RETRY_S;
	if (activity_store_open(fs->dir, ACTIVITY_STORE_WRITE, &fs->local, &err) < 0 ||
	    activity_store_spool_state(fs->local, token, sizeof(token), &pending, &err) < 0) {
		activity_store_close(&fs->local);
		if (!fs->local_failed)
			log_error("fleet activity: %s/activity.db: %s (trying again every %d s)",
			          fs->dir, err.text, LOCAL_RETRY_S);
		fs->local_failed = 1;
		return -1;
	}
	fs->local_failed = 0;
	sg_snprintf(fs->spool, sizeof(fs->spool), "%s#%s", fs->dir, token);
	if (pending > 0)
		log_info("fleet activity: %lld decisions in %s/activity.db wait for delivery",
		         (long long)pending, fs->dir);
	return 0;
}

/* 0 if the idle connection is gone: the server said goodbye (its
 * "terminating connection" message, read here as a notice) or closed it. */
static int still_up(PGconn *pg)
{
	struct pollfd p = {PQsocket(pg), POLLIN, 0};

	if (p.fd < 0 || PQstatus(pg) == CONNECTION_BAD)
		return 0;
	if (poll(&p, 1, 0) > 0 && (PQconsumeInput(pg) == 0 || PQstatus(pg) == CONNECTION_BAD))
		return 0;
	return 1;
}

/* The statements a round sends in its pipeline, parsed and planned once a
 * connection. 0, or -1 with err. */
static int prepare(PGconn *pg, struct sg_err *err)
{
	static const char *const statements[][2] = {
	    {"add_batch", SQL_ADD_BATCH},
	    {"put_heartbeat", SQL_PUT_HEARTBEAT},
	    {"put_auth", SQL_PUT_AUTH},
	    {"set_cursor", "UPDATE fleet_delivery SET last_seq = $1, delivered_at = $2 "
	                   "WHERE host = $3 AND spool = $4"},
	};

	for (size_t i = 0; i < sizeof(statements) / sizeof(statements[0]); i++) {
		PGresult *r = PQprepare(pg, statements[i][0], statements[i][1], 0, NULL);
		int ok = PQresultStatus(r) == PGRES_COMMAND_OK;

		PQclear(r);
		if (!ok)
			return pg_error(pg, statements[i][0], err);
	}
	for (size_t i = 0; i < sizeof(USAGE_STATEMENTS) / sizeof(USAGE_STATEMENTS[0]); i++) {
		int n = USAGE_STATEMENTS[i].rows * USAGE_COLUMNS;
		size_t cap = sizeof(SQL_USAGE_INSERT) + sizeof(SQL_USAGE_CONFLICT) + (size_t)n * 8;
		char *sql = xmalloc(cap);
		size_t at = (size_t)snprintf(sql, cap, "%s", SQL_USAGE_INSERT);
		PGresult *r;
		int ok;

		for (int k = 0; k < n; k++) { /* ($1, ... $12), ($13, ... */
			int col = k % USAGE_COLUMNS;

			at += (size_t)snprintf(sql + at, cap - at, "%s$%d%s",
			                       col > 0 ? ", "
			                       : k > 0 ? ", ("
			                               : "(",
			                       k + 1, col == USAGE_COLUMNS - 1 ? ")" : "");
		}
		snprintf(sql + at, cap - at, "%s", SQL_USAGE_CONFLICT);
		r = PQprepare(pg, USAGE_STATEMENTS[i].name, sql, 0, NULL);
		ok = PQresultStatus(r) == PGRES_COMMAND_OK;
		PQclear(r);
		free(sql);
		if (!ok)
			return pg_error(pg, USAGE_STATEMENTS[i].name, err);
	}
	return 0;
}

/*
 * The deliverer's connection: as store_pg_connect(), and so that a server
 * that stops answering (a network that drops everything) fails a round
 * instead of holding the thread, and with it the daemon's stop: TCP
 * keepalives and a TCP user timeout, and a statement timeout. Delivery
 * writes: of the hosts of a multi-host conninfo (the daemons may read the
 * policy from a standby) it wants the primary, target_session_attrs =
 * read-write. Values in conninfo win.
 */
static PGconn *connect_pg(struct fleet_ship *fs, struct sg_err *err)
{
	const char *const keys[] = {"connect_timeout",
	                            "fallback_application_name",
	                            "keepalives_idle",
	                            "keepalives_interval",
	                            "keepalives_count",
	                            "tcp_user_timeout",
	                            "target_session_attrs",
	                            "dbname",
	                            NULL};
	const char *const values[] = {"5",     fs->program,  "30",         "10", "3",
	                              "60000", "read-write", fs->conninfo, NULL};
	PGconn *pg = PQconnectdbParams(keys, values, 1);

	if (pg == NULL || PQstatus(pg) != CONNECTION_OK) {
		if (pg == NULL)
			sg_err_set(err, "cannot connect to PostgreSQL: out of memory");
		else
			pg_error(pg, "cannot connect to PostgreSQL", err);
		PQfinish(pg);
		return NULL;
	}
	PQsetNoticeProcessor(pg, quiet_notices, NULL);
	if (exec_plain(pg, "SET statement_timeout = '60s'", err) < 0 || prepare(pg, err) < 0) {
		PQfinish(pg);
		return NULL;
	}
	return pg;
}

/* Rounds until the spool is empty (or, stopping, the time is up). */
static void deliver(struct fleet_ship *fs, int stopping)
{
	time_t now = time(NULL), until = now + STOP_ROUNDS_S;
	struct sg_err err = {{0}};
	int more;

	if (open_local(fs, now) < 0)
		return;
	if (fs->pg != NULL && !still_up(fs->pg)) {
		PQfinish(fs->pg); /* connect again now: a restart need not be an outage */
		fs->pg = NULL;
	}
	if (fs->pg == NULL) {
		if (now < fs->next_attempt || (stopping && fs->outage_since != 0))
			return;
		fs->pg = connect_pg(fs, &err);
		if (fs->pg == NULL) {
			failed(fs, time(NULL), err.text);
			return;
		}
	}
	do {
		more = round_once(fs, time(NULL), &err);
		if (more < 0) {
			failed(fs, time(NULL), err.text);
			return;
		}
		delivering(fs, time(NULL));
		if (!stopping) {
			pthread_mutex_lock(&fs->lock);
			stopping = fs->stopping;
			pthread_mutex_unlock(&fs->lock);
		}
	} while (more && (!stopping || time(NULL) < until));
	if (fs->conflicts > 0) {
		log_error("fleet activity: %lld decision batches were in PostgreSQL already for "
		          "host %s from another activity.db: give each store directory its own "
		          "host_name",
		          (long long)fs->conflicts, fs->host);
		fs->conflicts = 0;
	}
}

static void *ship_main(void *arg)
{
	struct fleet_ship *fs = arg;
	int stopping;

	pthread_setname_np(pthread_self(), "fleet");
	for (;;) {
		struct timespec deadline;

		pthread_mutex_lock(&fs->lock);
		if (!fs->kicked && !fs->stopping) {
			clock_gettime(CLOCK_REALTIME, &deadline);
			deadline.tv_sec += fs->interval_s;
			pthread_cond_timedwait(&fs->wake, &fs->lock, &deadline);
		}
		fs->kicked = 0;
		stopping = fs->stopping;
		pthread_mutex_unlock(&fs->lock);
		deliver(fs, stopping);
		if (stopping)
			break;
	}
	return NULL;
}

struct fleet_ship *fleet_ship_start(const struct fleet_ship_options *opt, struct sg_err *err)
{
	struct fleet_ship *fs = xcalloc(1, sizeof(*fs));
	const char *hook = getenv("SASLGATE_TEST_FLEET_KILL_AFTER_COMMIT");
	int rc;

	fs->usage = xcalloc(1, sizeof(*fs->usage));
	pthread_mutex_init(&fs->lock, NULL);
	pthread_cond_init(&fs->wake, NULL);
	fs->conninfo = xstrdup(opt->conninfo);
	fs->dir = xstrdup(opt->dir);
	fs->host = xstrdup(opt->host);
	fs->program = xstrdup(opt->program);
	fs->interval_s = opt->interval_s ? opt->interval_s : 5;
	fs->backoff = STORE_PG_BACKOFF_MIN_S;
	fs->kill_after_commit = hook != NULL && strcmp(hook, "1") == 0;
	store_pg_label(opt->conninfo, fs->label, sizeof(fs->label));
	rc = pthread_create(&fs->thread, NULL, ship_main, fs);
	if (rc != 0) {
		sg_err_set(err, "cannot start the fleet deliverer: %s", strerror(rc));
		fleet_ship_stop(&fs);
		return NULL;
	}
	fs->started = 1;
	return fs;
}

void fleet_ship_kick(struct fleet_ship *fs)
{
	pthread_mutex_lock(&fs->lock);
	fs->kicked = 1;
	pthread_cond_signal(&fs->wake);
	pthread_mutex_unlock(&fs->lock);
}

void fleet_ship_stop(struct fleet_ship **fsp)
{
	struct fleet_ship *fs = *fsp;

	if (fs == NULL)
		return;
	if (fs->started) {
		pthread_mutex_lock(&fs->lock);
		fs->stopping = 1;
		pthread_cond_signal(&fs->wake);
		pthread_mutex_unlock(&fs->lock);
		pthread_join(fs->thread, NULL);
	}
	PQfinish(fs->pg);
	activity_store_close(&fs->local);
	pthread_cond_destroy(&fs->wake);
	pthread_mutex_destroy(&fs->lock);
	free(fs->conninfo);
	free(fs->dir);
	free(fs->host);
	free(fs->program);
	free(fs->usage->buf);
	free(fs->usage);
	free(fs);
	*fsp = NULL;
}
