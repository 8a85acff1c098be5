/*
 * store_pg - the PostgreSQL policy tables and their SQLite copies: connect,
 * migrate, pull, push, check (see store_pg.h). The daemon's link and cache
 * are in store_pg_link.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "schema_sql.h"
#include "store.h"
#include "store_pg.h"

#define MAX_COLUMNS 20
#define SQL_MAX     2048

/* The policy tables in dependency order (a table after those it references),
 * with their columns as in schema/policy-001.sql; the first nkey columns are
 * the primary key. */
struct pg_table {
	const char *name;
	int nkey;
	const char *conflict; /* ON CONFLICT target, NULL: the key */
	int sequence;         /* id is an AUTOINCREMENT / identity column */
	int admin_only;       /* not in a daemon's cache */
	const char *columns[MAX_COLUMNS];
};

static const struct pg_table pg_tables[] = {
    {"settings", 1, NULL, 0, 0, {"key", "value", NULL}},
    {"mechanisms", 1, "(upper(name))", 0, 0, {"name", "class", NULL}},
    {"groups", 1, NULL, 0, 0, {"name", "created_at", NULL}},
    {"group_members", 2, NULL, 0, 0, {"group_name", "pattern", NULL}},
    {"locations", 1, NULL, 0, 0, {"name", "created_at", NULL}},
    {"location_nets", 2, NULL, 0, 0, {"location_name", "cidr", NULL}},
    {"policies",
     1,
     NULL,
     0,
     0,
     {"name", "state", "enforce_from", "mechs", "include_users", "include_groups", "exclude_users",
      "exclude_groups", "include_locations", "exclude_locations", "tls", "services", "reply_code",
      "reply_enh", "reply_text", "created_at", "updated_at", NULL}},
    {"exceptions",
     1,
     NULL,
     1,
     0,
     {"id", "policy", "user_pattern", "group_name", "location", "mechs", "reason", "created_by",
      "created_at", "expires_at", NULL}},
    {"audit", 1, NULL, 1, 1, {"id", "at", "actor", "action", "object", "before", "after", NULL}},
};
#define N_TABLES (sizeof(pg_tables) / sizeof(pg_tables[0]))

static int column_count(const struct pg_table *t)
{
	int n = 0;

	while (n < MAX_COLUMNS && t->columns[n] != NULL)
		n++;
	return n;
}

/* A bounded SQL text; a statement that would not fit is a programming
 * error caught by the first test that runs it. */
struct sql {
	char text[SQL_MAX];
	size_t len;
	int overflow;
};

static void sql_add(struct sql *s, const char *fmt, ...) SG_PRINTF(2, 3);
static void sql_add(struct sql *s, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (s->overflow)
		return;
	va_start(ap, fmt);
	n = vsnprintf(s->text + s->len, sizeof(s->text) - s->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(s->text) - s->len)
		s->overflow = 1;
	else
		s->len += (size_t)n;
}

/* "a, b, c" of columns from..to-1, each with prefix. */
static void sql_columns(struct sql *s, const struct pg_table *t, int from, int to,
                        const char *prefix)
{
	for (int i = from; i < to; i++)
		sql_add(s, "%s%s%s", i > from ? ", " : "", prefix, t->columns[i]);
}

const char *store_pg_location(const char *arg)
{
	const char *env;

	if (arg != NULL && *arg != '\0')
		return arg;
	env = getenv("SASLGATE_STORE");
	if (env != NULL && *env != '\0')
		return env;
	return NULL;
}

int store_pg_parse(const char *conninfo, struct sg_err *err)
{
	char *msg = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, &msg);

	if (opts == NULL) {
		sg_err_set(err, "store: not a PostgreSQL connection string: %s",
		           msg != NULL ? msg : "out of memory");
		PQfreemem(msg);
		return -1;
	}
	PQconninfoFree(opts);
	return 0;
}

void store_pg_label(const char *conninfo, char *buf, size_t len)
{
	PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
	const char *db = NULL, *host = NULL, *port = NULL, *user = NULL;

	sg_strlcpy(buf, "PostgreSQL", len);
	if (opts == NULL)
		return;
	for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
		if (o->val == NULL || *o->val == '\0')
			continue;
		if (strcmp(o->keyword, "dbname") == 0)
			db = o->val;
		else if (strcmp(o->keyword, "host") == 0 ||
		         (host == NULL && strcmp(o->keyword, "hostaddr") == 0))
			host = o->val;
		else if (strcmp(o->keyword, "port") == 0)
			port = o->val;
		else if (strcmp(o->keyword, "user") == 0)
			user = o->val;
	}
	sg_snprintf(buf, len, "PostgreSQL%s%s%s%s%s%s%s%s", db ? " database " : "", db ? db : "",
	            host ? " on " : "", host ? host : "", port ? ":" : "", port ? port : "",
	            user ? " as " : "", user ? user : "");
	PQconninfoFree(opts);
}

PGconn *store_pg_connect(const char *conninfo, const char *program, struct sg_err *err)
{
	const char *const keys[] = {STORE_PG_DEFAULT_KEYS, "fallback_application_name", "dbname",
	                            NULL};
	const char *const values[] = {STORE_PG_DEFAULT_VALUES, program, conninfo, NULL};
	PGconn *pg = PQconnectdbParams(keys, values, 1);

	if (pg == NULL) {
		sg_err_set(err, "cannot connect to PostgreSQL: out of memory");
		return NULL;
	}
	if (PQstatus(pg) != CONNECTION_OK) {
		sg_err_set(err, "cannot connect to PostgreSQL: %s", PQerrorMessage(pg));
		store_pg_one_line(err->text);
		PQfinish(pg);
		return NULL;
	}
	return pg;
}

void store_pg_one_line(char *text)
{
	size_t w = 0;

	for (size_t r = 0; text[r] != '\0'; r++) {
		int blank = text[r] == '\n' || text[r] == '\t' || text[r] == '\r' || text[r] == ' ';

		if (blank && (w == 0 || text[w - 1] == ' '))
			continue;
		text[w++] = blank ? ' ' : text[r];
	}
	while (w > 0 && text[w - 1] == ' ')
		w--;
	text[w] = '\0';
}

/* libpq's messages end in a newline; err should not. */
static int pg_fail(struct sg_err *err, PGconn *pg, const char *what)
{
	sg_err_set(err, "%s: %s", what, PQerrorMessage(pg));
	store_pg_one_line(err->text);
	return -1;
}

/* Runs a statement without parameters; 0 or -1 with err. */
static int pg_exec(PGconn *pg, const char *sql, struct sg_err *err)
{
	PGresult *r = PQexec(pg, sql);
	ExecStatusType st = PQresultStatus(r);
	int rc = 0;

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		rc = pg_fail(err, pg, sql);
	PQclear(r);
	return rc;
}

static int commit(PGconn *pg, struct sg_err *err);

static void pg_rollback(PGconn *pg)
{
	PQclear(PQexec(pg, "ROLLBACK"));
}

/* One text value of a one-row, one-column query; NULL (not found or
 * error: err set then) or a malloc'ed copy. */
static char *pg_value(PGconn *pg, const char *sql, int nparams, const char *const *params,
                      struct sg_err *err, int *failed)
{
	PGresult *r = PQexecParams(pg, sql, nparams, NULL, params, NULL, NULL, 0);
	char *v = NULL;

	*failed = 0;
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		pg_fail(err, pg, "PostgreSQL");
		*failed = 1;
	} else if (PQntuples(r) > 0 && !PQgetisnull(r, 0, 0)) {
		v = xstrdup(PQgetvalue(r, 0, 0));
	}
	PQclear(r);
	return v;
}

int store_pg_newest_version(void)
{
	int n = 0;

	while (schema_pg_policy_migrations[n] != NULL)
		n++;
	return n;
}

int store_pg_schema_version(PGconn *pg, struct sg_err *err)
{
	int failed;
	char *v =
	    pg_value(pg, "SELECT to_regclass('schema_version') IS NOT NULL", 0, NULL, err, &failed);
	int version = 0;

	if (failed)
		return -1;
	if (v != NULL && strcmp(v, "t") == 0) {
		free(v);
		v = pg_value(pg, "SELECT version FROM schema_version WHERE name = 'policy'", 0,
		             NULL, err, &failed);
		if (failed)
			return -1;
		version = v != NULL ? (int)strtol(v, NULL, 10) : 0;
	}
	free(v);
	return version;
}

/* The key of the advisory lock that serialises migrations ("sgpolicy"). */
#define MIGRATION_LOCK "SELECT pg_advisory_xact_lock(7453116473758640761)"

int store_pg_migrate(PGconn *pg, int create, struct sg_err *err)
{
	int newest = store_pg_newest_version(), v;
	char version[16];
	const char *params[1] = {version};
	PGresult *r;

	if (pg_exec(pg, MIGRATION_LOCK, err) < 0 || (v = store_pg_schema_version(pg, err)) < 0)
		return -1;
	if (create && v > 0)
		return sg_err_set(err,
		                  "the database has a saslgate schema already (version %d); "
		                  "refusing to overwrite a store",
		                  v);
	if (v > newest)
		return sg_err_set(err, "schema version %d is newer than this program's (%d)", v,
		                  newest);
	if (v == newest)
		return 0;
	if (pg_exec(pg,
	            "CREATE TABLE IF NOT EXISTS schema_version (name text PRIMARY KEY, "
	            "version integer NOT NULL)",
	            err) < 0)
		return -1;
	for (; v < newest; v++)
		if (pg_exec(pg, schema_pg_policy_migrations[v], err) < 0)
			return -1;
	snprintf(version, sizeof(version), "%d", newest);
	r = PQexecParams(pg,
	                 "INSERT INTO schema_version (name, version) VALUES ('policy', $1) "
	                 "ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version",
	                 1, NULL, params, NULL, NULL, 0);
	v = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : pg_fail(err, pg, "schema_version");
	PQclear(r);
	return v;
}

int store_pg_upgrade(PGconn *pg, struct sg_err *err)
{
	if (pg_exec(pg, "BEGIN", err) < 0)
		return -1;
	if (store_pg_migrate(pg, 0, err) < 0) {
		pg_rollback(pg);
		return -1;
	}
	return commit(pg, err);
}

int64_t store_pg_generation(PGconn *pg, struct sg_err *err)
{
	int failed;
	char *v = pg_value(pg, "SELECT value FROM settings WHERE key = 'generation'", 0, NULL, err,
	                   &failed);
	int64_t g;

	if (failed)
		return -1;
	if (v == NULL)
		return sg_err_set(err, "PostgreSQL: the settings have no generation");
	g = strtoll(v, NULL, 10);
	free(v);
	return g;
}

/* The byte a backslash escape of COPY's text format stands for; *r is past
 * the backslash and moves past the escape. */
static char copy_escape(const char *line, int len, int *r)
{
	char c = line[(*r)++];
	int v = 0, k = 0;

	switch (c) {
	case 'b':
		return '\b';
	case 'f':
		return '\f';
	case 'n':
		return '\n';
	case 'r':
		return '\r';
	case 't':
		return '\t';
	case 'v':
		return '\v';
	case 'x':
		while (k < 2 && *r < len && strchr("0123456789abcdefABCDEF", line[*r]) != NULL) {
			char h = line[(*r)++];

			v = v * 16 + (h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
			k++;
		}
		return k > 0 ? (char)v : 'x';
	default:
		if (c < '0' || c > '7')
			return c;
		v = c - '0';
		while (++k < 3 && *r < len && line[*r] >= '0' && line[*r] <= '7')
			v = v * 8 + (line[(*r)++] - '0');
		return (char)v;
	}
}

/*
 * One row of COPY's text format: fields separated by tabs, \N a NULL, a
 * backslash before an escaped byte (PostgreSQL writes \b \f \n \r \t \v and
 * \\). Decodes line (len bytes, NUL-terminated, as PQgetCopyData returns
 * it) in place: field[i] points into it, NUL-terminated, flen[i] its length;
 * NULL for a NULL. 0, or -1 when the row does not have n fields.
 */
static int copy_row(char *line, int len, int n, const char **field, int *flen)
{
	int r = 0, w = 0, f = 0;

	if (len > 0 && line[len - 1] == '\n')
		len--;
	for (;;) {
		int start = w;

		if (f == n)
			return -1;
		if (len - r >= 2 && line[r] == '\\' && line[r + 1] == 'N' &&
		    (r + 2 == len || line[r + 2] == '\t')) {
			field[f] = NULL;
			flen[f] = 0;
			r += 2;
		} else {
			while (r < len && line[r] != '\t') {
				char c = line[r++];

				line[w++] = c == '\\' && r < len ? copy_escape(line, len, &r) : c;
			}
			field[f] = line + start;
			flen[f] = w - start;
		}
		f++;
		if (r == len)
			break;
		r++;              /* the tab */
		line[w++] = '\0'; /* w < r: nothing unread is overwritten */
	}
	line[w] = '\0';
	return f == n ? 0 : -1;
}

/* Which of t's n columns have INTEGER affinity in dst (a type with "INT"
 * in its name): bit c for column c. */
static unsigned integer_columns(sqlite3 *dst, const struct pg_table *t, int n)
{
	char sql[128];
	sqlite3_stmt *st;
	unsigned mask = 0;

	snprintf(sql, sizeof(sql), "PRAGMA main.table_info(%s)", t->name);
	if (sqlite3_prepare_v2(dst, sql, -1, &st, NULL) != SQLITE_OK)
		return 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 1);
		const char *type = (const char *)sqlite3_column_text(st, 2);

		for (int c = 0; c < n && name != NULL && type != NULL; c++)
			if (strcmp(name, t->columns[c]) == 0 && strcasestr(type, "int") != NULL)
				mask |= 1u << c;
	}
	sqlite3_finalize(st);
	return mask;
}

/* An integer as PostgreSQL writes one (no sign but '-', no leading zero,
 * few enough digits never to overflow) into *v: what SQLite's affinity
 * would make of the text, without its conversion per value. */
static int canonical_integer(const char *s, int len, int64_t *v)
{
	int i = s[0] == '-';
	int64_t x = 0;

	if (len - i < 1 || len - i > 18 || (s[i] == '0' && len - i > 1) || (i == 1 && s[1] == '0'))
		return 0;
	for (int k = i; k < len; k++) {
		if (s[k] < '0' || s[k] > '9')
			return 0;
		x = x * 10 + (s[k] - '0');
	}
	*v = i ? -x : x;
	return 1;
}

/* Inserts one COPY row with st (prepared once per table); integers: see
 * integer_columns(). */
static int insert_row(sqlite3 *dst, sqlite3_stmt *st, const struct pg_table *t, int n,
                      unsigned integers, char *line, int len, struct sg_err *err)
{
	const char *field[MAX_COLUMNS];
	int flen[MAX_COLUMNS], rc = 0;
	int64_t v;

	if (copy_row(line, len, n, field, flen) < 0)
		return sg_err_set(err, "%s: COPY sent a row of another shape", t->name);
	for (int c = 0; c < n; c++) {
		if (field[c] == NULL)
			sqlite3_bind_null(st, c + 1);
		else if ((integers & (1u << c)) && canonical_integer(field[c], flen[c], &v))
			sqlite3_bind_int64(st, c + 1, v);
		else
			sqlite3_bind_text(st, c + 1, field[c], flen[c], SQLITE_STATIC);
	}
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = sg_err_set(err, "%s: %s", t->name, sqlite3_errmsg(dst));
	sqlite3_reset(st);
	return rc;
}

/*
 * Copies one table's rows from pg into dst (whose rows are gone) with COPY
 * TO STDOUT: PostgreSQL streams the rows while they are inserted, one
 * message per row, instead of a result of every row held in memory before
 * the first insert. Values go in as text, as a SELECT's would (SQLite's
 * column affinity makes the integers integers again).
 */
static int pull_table(PGconn *pg, sqlite3 *dst, const struct pg_table *t, struct sg_err *err)
{
	struct sql q = {{0}, 0, 0}, ins = {{0}, 0, 0};
	int n = column_count(t), rc = 0, len;
	unsigned integers;
	sqlite3_stmt *st = NULL;
	PGresult *r;
	char *line;

	sql_add(&q, "COPY %s (", t->name);
	sql_columns(&q, t, 0, n, "");
	sql_add(&q, ") TO STDOUT");
	sql_add(&ins, "INSERT INTO %s (", t->name);
	sql_columns(&ins, t, 0, n, "");
	sql_add(&ins, ") VALUES (?");
	for (int i = 1; i < n; i++)
		sql_add(&ins, ", ?");
	sql_add(&ins, ")");
	if (q.overflow || ins.overflow)
		return sg_err_set(err, "%s: statement too long", t->name);
	r = PQexec(pg, q.text);
	if (PQresultStatus(r) != PGRES_COPY_OUT) {
		PQclear(r);
		return pg_fail(err, pg, t->name);
	}
	PQclear(r);
	if (sqlite3_prepare_v2(dst, ins.text, -1, &st, NULL) != SQLITE_OK)
		rc = sg_err_set(err, "%s: %s", t->name, sqlite3_errmsg(dst));
	integers = integer_columns(dst, t, n);
	/* After a failure the rest is read and dropped: the connection is
	 * usable again only at the end of the COPY. */
	while ((len = PQgetCopyData(pg, &line, 0)) > 0) {
		if (rc == 0)
			rc = insert_row(dst, st, t, n, integers, line, len, err);
		PQfreemem(line);
	}
	sqlite3_finalize(st);
	r = PQgetResult(pg);
	if ((len == -2 || PQresultStatus(r) != PGRES_COMMAND_OK) && rc == 0)
		rc = pg_fail(err, pg, t->name);
	PQclear(r);
	while ((r = PQgetResult(pg)) != NULL)
		PQclear(r);
	return rc;
}

/* The highest id ever given in an identity column, into sqlite_sequence
 * (which SQLite has set to the highest id copied). */
static int pull_sequence(PGconn *pg, sqlite3 *dst, const struct pg_table *t, struct sg_err *err)
{
	const char *params[1] = {t->name};
	sqlite3_stmt *st;
	int failed, rc = 0;
	char *v = pg_value(pg, "SELECT pg_sequence_last_value(pg_get_serial_sequence($1, 'id'))", 1,
	                   params, err, &failed);

	if (failed)
		return -1;
	if (v == NULL)
		return 0;
	if (sqlite3_prepare_v2(dst,
	                       "UPDATE sqlite_sequence SET seq = max(seq, CAST(?2 AS INTEGER)) "
	                       "WHERE name = ?1",
	                       -1, &st, NULL) != SQLITE_OK) {
		free(v);
		return sg_err_set(err, "sqlite_sequence: %s", sqlite3_errmsg(dst));
	}
	sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, v, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = sg_err_set(err, "sqlite_sequence: %s", sqlite3_errmsg(dst));
	sqlite3_finalize(st);
	if (rc == 0 && sqlite3_changes(dst) == 0) {
		/* No row copied: SQLite has no sqlite_sequence row yet. */
		char sql[256];

		snprintf(sql, sizeof(sql),
		         "INSERT INTO sqlite_sequence (name, seq) VALUES ('%s', %lld)", t->name,
		         strtoll(v, NULL, 10));
		rc = store_exec(dst, sql, err);
	}
	free(v);
	return rc;
}

static int pull_rows(PGconn *pg, sqlite3 *dst, enum store_pg_scope scope, struct sg_err *err)
{
	char sql[128];

	for (size_t i = N_TABLES; i-- > 0;) {
		snprintf(sql, sizeof(sql), "DELETE FROM %s", pg_tables[i].name);
		if (store_exec(dst, sql, err) < 0)
			return -1;
	}
	for (size_t i = 0; i < N_TABLES; i++) {
		const struct pg_table *t = &pg_tables[i];

		if (t->admin_only && scope != STORE_PG_ADMIN)
			continue;
		if (pull_table(pg, dst, t, err) < 0)
			return -1;
		if (t->sequence && scope == STORE_PG_ADMIN && pull_sequence(pg, dst, t, err) < 0)
			return -1;
	}
	return 0;
}

int store_pg_pull(PGconn *pg, sqlite3 *dst, enum store_pg_scope scope, int64_t unless_generation,
                  int64_t *generation, struct sg_err *err)
{
	int64_t g;

	if (pg_exec(pg, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err) < 0)
		return -1;
	if ((g = store_pg_generation(pg, err)) < 0) {
		pg_rollback(pg);
		return -1;
	}
	*generation = g;
	if (unless_generation >= 0 && g == unless_generation) {
		pg_rollback(pg);
		return 0;
	}
	if (store_exec(dst, "BEGIN IMMEDIATE", err) < 0) {
		pg_rollback(pg);
		return -1;
	}
	if (pull_rows(pg, dst, scope, err) < 0) {
		store_rollback(dst);
		pg_rollback(pg);
		return -1;
	}
	pg_rollback(pg); /* read only: nothing to commit */
	if (store_exec(dst, "COMMIT", err) < 0) {
		store_rollback(dst);
		return -1;
	}
	return 1;
}

/* Statements sent in one pipeline (libpq 14 or newer) before their results
 * are read: one round trip per PIPELINE_ROWS rows, and few enough results
 * waiting that neither side blocks on a full socket buffer. */
#define PIPELINE_ROWS 1000

/* Reads the results of the n statements of a pipeline up to its sync; the
 * first failure goes into err (the others are aborted by it). 0 or -1. */
static int pipeline_results(PGconn *pg, int n, const char *what, struct sg_err *err)
{
	int rc = 0, ends = 0;

	for (;;) {
		PGresult *r = PQgetResult(pg);
		ExecStatusType st;

		if (r == NULL) {
			/* the end of one statement's results */
			if (++ends > n)
				return rc < 0 ? rc : pg_fail(err, pg, what);
			continue;
		}
		st = PQresultStatus(r);
		if (st == PGRES_PIPELINE_SYNC) {
			PQclear(r);
			return rc;
		}
		if (rc == 0 && st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
			sg_err_set(err, "%s: %s", what, PQresultErrorMessage(r));
			store_pg_one_line(err->text);
			rc = -1;
		}
		PQclear(r);
	}
}

/* Runs sel on db (SQLite) and, for each row, stmt on pg with the row's
 * values as parameters ($1..), in pipeline mode: the rows are sent
 * PIPELINE_ROWS at a time, one round trip each, not one per row (a
 * 100,000-row import). Counts the rows in *rows. Inside the caller's
 * transaction: a failure aborts it. */
static int each_row_to_pg(sqlite3 *db, const char *sel, PGconn *pg, const char *stmt,
                          const char *what, long *rows, struct sg_err *err)
{
	const char *params[MAX_COLUMNS];
	sqlite3_stmt *st;
	PGresult *r;
	int rc = 0, s = SQLITE_DONE, n, queued = 0;

	if (sqlite3_prepare_v2(db, sel, -1, &st, NULL) != SQLITE_OK)
		return sg_err_set(err, "%s: %s", what, sqlite3_errmsg(db));
	n = sqlite3_column_count(st);
	/* Parsed and planned once (the unnamed prepared statement), not per row. */
	r = PQprepare(pg, "", stmt, n, NULL);
	if (PQresultStatus(r) != PGRES_COMMAND_OK || PQenterPipelineMode(pg) != 1) {
		PQclear(r);
		sqlite3_finalize(st);
		return pg_fail(err, pg, what);
	}
	PQclear(r);
	while (rc == 0 && (s = sqlite3_step(st)) == SQLITE_ROW) {
		for (int c = 0; c < n && c < MAX_COLUMNS; c++)
			params[c] = (const char *)sqlite3_column_text(st, c);
		/* libpq copies the parameters into its output buffer */
		if (PQsendQueryPrepared(pg, "", n, params, NULL, NULL, 0) != 1) {
			rc = pg_fail(err, pg, what);
			break;
		}
		(*rows)++;
		if (++queued == PIPELINE_ROWS) {
			if (PQpipelineSync(pg) != 1)
				rc = pg_fail(err, pg, what);
			else
				rc = pipeline_results(pg, queued, what, err);
			queued = 0;
		}
	}
	if (queued > 0) {
		if (PQpipelineSync(pg) != 1) {
			if (rc == 0)
				rc = pg_fail(err, pg, what);
		} else if (pipeline_results(pg, queued, what, err) < 0 && rc == 0) {
			rc = -1;
		}
	}
	if (PQexitPipelineMode(pg) != 1 && rc == 0)
		rc = pg_fail(err, pg, what);
	if (rc == 0 && s != SQLITE_DONE)
		rc = sg_err_set(err, "%s: %s", what, sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return rc;
}

/* DELETE of the rows whose key is in old but not in main (children first:
 * the caller goes through the tables backwards). */
static int push_deletes(sqlite3 *db, PGconn *pg, const struct pg_table *t, long *rows,
                        struct sg_err *err)
{
	struct sql sel = {{0}, 0, 0}, del = {{0}, 0, 0};

	sql_add(&sel, "SELECT ");
	sql_columns(&sel, t, 0, t->nkey, "");
	sql_add(&sel, " FROM old.%s EXCEPT SELECT ", t->name);
	sql_columns(&sel, t, 0, t->nkey, "");
	sql_add(&sel, " FROM main.%s", t->name);
	sql_add(&del, "DELETE FROM %s WHERE ", t->name);
	for (int i = 0; i < t->nkey; i++)
		sql_add(&del, "%s%s = $%d", i ? " AND " : "", t->columns[i], i + 1);
	if (sel.overflow || del.overflow)
		return sg_err_set(err, "%s: statement too long", t->name);
	return each_row_to_pg(db, sel.text, pg, del.text, t->name, rows, err);
}

/* INSERT ... ON CONFLICT DO UPDATE of the rows of main that old does not
 * have as they are (all of them with full). */
static int push_upserts(sqlite3 *db, PGconn *pg, const struct pg_table *t, int full, long *rows,
                        struct sg_err *err)
{
	struct sql sel = {{0}, 0, 0}, up = {{0}, 0, 0};
	int n = column_count(t);

	sql_add(&sel, "SELECT ");
	sql_columns(&sel, t, 0, n, "");
	sql_add(&sel, " FROM main.%s", t->name);
	if (!full) {
		sql_add(&sel, " EXCEPT SELECT ");
		sql_columns(&sel, t, 0, n, "");
		sql_add(&sel, " FROM old.%s", t->name);
	}
	sql_add(&up, "INSERT INTO %s (", t->name);
	sql_columns(&up, t, 0, n, "");
	sql_add(&up, ") VALUES (");
	for (int i = 0; i < n; i++)
		sql_add(&up, "%s$%d", i ? ", " : "", i + 1);
	sql_add(&up, ") ON CONFLICT ");
	if (t->conflict != NULL) {
		sql_add(&up, "%s", t->conflict);
	} else {
		sql_add(&up, "(");
		sql_columns(&up, t, 0, t->nkey, "");
		sql_add(&up, ")");
	}
	if (n == t->nkey) {
		sql_add(&up, " DO NOTHING");
	} else {
		sql_add(&up, " DO UPDATE SET ");
		for (int i = t->conflict != NULL ? 0 : t->nkey; i < n; i++)
			sql_add(&up, "%s%s = EXCLUDED.%s",
			        i > (t->conflict != NULL ? 0 : t->nkey) ? ", " : "", t->columns[i],
			        t->columns[i]);
	}
	if (sel.overflow || up.overflow)
		return sg_err_set(err, "%s: statement too long", t->name);
	return each_row_to_pg(db, sel.text, pg, up.text, t->name, rows, err);
}

/* The identity sequences follow SQLite's AUTOINCREMENT counters. */
static int push_sequences(sqlite3 *db, PGconn *pg, long *rows, struct sg_err *err)
{
	for (size_t i = 0; i < N_TABLES; i++) {
		char sel[160];

		if (!pg_tables[i].sequence)
			continue;
		snprintf(sel, sizeof(sel),
		         "SELECT name, seq FROM main.sqlite_sequence WHERE name = '%s' AND seq > 0",
		         pg_tables[i].name);
		if (each_row_to_pg(db, sel, pg,
		                   "SELECT setval(pg_get_serial_sequence($1, 'id'), "
		                   "GREATEST($2::bigint, 1))",
		                   "sequence", rows, err) < 0)
			return -1;
	}
	return 0;
}

/* The whole difference, inside the caller's transaction. changed: rows
 * written or deleted (sequences not counted). */
static int push_rows(sqlite3 *db, PGconn *pg, int full, long *changed, struct sg_err *err)
{
	long ignored = 0;

	*changed = 0;
	if (!full)
		for (size_t i = N_TABLES; i-- > 0;)
			if (push_deletes(db, pg, &pg_tables[i], changed, err) < 0)
				return -1;
	for (size_t i = 0; i < N_TABLES; i++)
		if (push_upserts(db, pg, &pg_tables[i], full, changed, err) < 0)
			return -1;
	return push_sequences(db, pg, &ignored, err);
}

static int notify(PGconn *pg, sqlite3 *db, struct sg_err *err)
{
	char gen[32];
	const char *params[2] = {STORE_PG_CHANNEL, gen};
	PGresult *r;
	int rc = 0;

	snprintf(gen, sizeof(gen), "%lld", (long long)store_generation(db));
	r = PQexecParams(pg, "SELECT pg_notify($1, $2)", 2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		rc = pg_fail(err, pg, "NOTIFY");
	PQclear(r);
	return rc;
}

static int commit(PGconn *pg, struct sg_err *err)
{
	PGresult *r = PQexec(pg, "COMMIT");
	int rc = 0;

	/* A COMMIT of a failed transaction answers ROLLBACK, not an error. */
	if (PQresultStatus(r) != PGRES_COMMAND_OK || strcmp(PQcmdStatus(r), "COMMIT") != 0)
		rc = pg_fail(err, pg, "COMMIT");
	PQclear(r);
	return rc;
}

static int attach_old(sqlite3 *db, const char *old_path, struct sg_err *err)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(db, "ATTACH DATABASE ? AS old", -1, &st, NULL) != SQLITE_OK)
		return sg_err_set(err, "%s: %s", old_path, sqlite3_errmsg(db));
	sqlite3_bind_text(st, 1, old_path, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return sg_err_set(err, "%s: %s", old_path, sqlite3_errmsg(db));
	return 0;
}

/* Is there anything to push? 1 yes, 0 no, -1 error. */
static int differs(sqlite3 *db, struct sg_err *err)
{
	for (size_t i = 0; i < N_TABLES; i++) {
		char sql[256];
		sqlite3_stmt *st;
		int rc;

		snprintf(sql, sizeof(sql),
		         "SELECT 1 FROM (SELECT * FROM main.%s EXCEPT SELECT * FROM old.%s "
		         "UNION ALL SELECT * FROM (SELECT * FROM old.%s EXCEPT "
		         "SELECT * FROM main.%s)) LIMIT 1",
		         pg_tables[i].name, pg_tables[i].name, pg_tables[i].name,
		         pg_tables[i].name);
		if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
			return sg_err_set(err, "%s: %s", pg_tables[i].name, sqlite3_errmsg(db));
		rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if (rc == SQLITE_ROW)
			return 1;
		if (rc != SQLITE_DONE)
			return sg_err_set(err, "%s: %s", pg_tables[i].name, sqlite3_errmsg(db));
	}
	return 0;
}

/* Locks the generation row: 1 it is still expected, 0 it moved, -1 error. */
static int generation_still(PGconn *pg, int64_t expected, struct sg_err *err)
{
	int failed;
	char *v = pg_value(pg, "SELECT value FROM settings WHERE key = 'generation' FOR UPDATE", 0,
	                   NULL, err, &failed);
	int same;

	if (failed)
		return -1;
	same = v != NULL && strtoll(v, NULL, 10) == expected;
	free(v);
	return same;
}

enum store_pg_push_result store_pg_push(PGconn *pg, sqlite3 *db, const char *old_path,
                                        int64_t expected_generation, struct sg_err *err)
{
	enum store_pg_push_result result = STORE_PG_PUSH_ERROR;
	long changed = 0;
	int d, same;

	if (attach_old(db, old_path, err) < 0)
		return STORE_PG_PUSH_ERROR;
	if ((d = differs(db, err)) <= 0) {
		result = d == 0 ? STORE_PG_PUSH_NOTHING : STORE_PG_PUSH_ERROR;
		goto out;
	}
	if (pg_exec(pg, "BEGIN", err) < 0)
		goto out;
	if ((same = generation_still(pg, expected_generation, err)) <= 0) {
		pg_rollback(pg);
		result = same == 0 ? STORE_PG_PUSH_CONFLICT : STORE_PG_PUSH_ERROR;
		goto out;
	}
	if (push_rows(db, pg, 0, &changed, err) < 0 || notify(pg, db, err) < 0) {
		pg_rollback(pg);
		goto out;
	}
	if (commit(pg, err) == 0)
		result = STORE_PG_PUSH_DONE;
out:
	store_exec(db, "DETACH DATABASE old", NULL);
	return result;
}

int store_pg_init(PGconn *pg, sqlite3 *db, struct sg_err *err)
{
	long changed = 0;

	if (pg_exec(pg, "BEGIN", err) < 0)
		return -1;
	if (store_pg_migrate(pg, 1, err) < 0 || push_rows(db, pg, 1, &changed, err) < 0 ||
	    notify(pg, db, err) < 0) {
		pg_rollback(pg);
		return -1;
	}
	return commit(pg, err);
}

int store_pg_check_tables(PGconn *pg, struct sg_err *err)
{
	for (size_t i = 0; i < N_TABLES; i++) {
		const struct pg_table *t = &pg_tables[i];

		for (int c = 0; c < column_count(t); c++) {
			const char *params[2] = {t->name, t->columns[c]};
			int failed;
			char *v = pg_value(pg,
			                   "SELECT 1 FROM information_schema.columns WHERE "
			                   "table_schema = current_schema() AND table_name = $1 "
			                   "AND column_name = $2",
			                   2, params, err, &failed);

			if (failed)
				return -1;
			if (v == NULL)
				return sg_err_set(err, "table %s: column %s is missing", t->name,
				                  t->columns[c]);
			free(v);
		}
	}
	return 0;
}
