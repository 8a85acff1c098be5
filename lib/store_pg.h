/*
 * store_pg - the PostgreSQL store (--store URI, $SASLGATE_STORE): one policy
 * for a fleet of mail servers. PostgreSQL holds the same policy tables as
 * policy.db (schema/pg/policy-NNN.sql); nothing else in saslgate reads them
 * there. Both sides work on a SQLite copy made with the same code:
 *  - a daemon keeps DIR/policy-cache.db, refreshed (one REPEATABLE READ
 *    transaction into a temporary file, then rename()) whenever the
 *    generation changes, and builds its snapshot from it with the SQLite
 *    loader; it learns of a change by LISTEN (STORE_PG_CHANNEL), and the
 *    cache lets it start and enforce while PostgreSQL is away;
 *  - saslgatectl pulls into a temporary policy.db, runs the ordinary command
 *    on it, and pushes the difference back in one transaction that first
 *    checks that the generation is still the one it pulled, then NOTIFYs.
 *
 * A PGconn is used by one thread at a time; struct store_pg_link documents
 * what may be called concurrently.
 */
#ifndef SASLGATE_STORE_PG_H
#define SASLGATE_STORE_PG_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "util.h"

#define STORE_PG_CHANNEL  "saslgate_policy"
#define STORE_PG_CACHE_DB "policy-cache.db"
/* Reconnect backoff of a daemon: first retry after MIN, doubling to MAX. */
#define STORE_PG_BACKOFF_MIN_S 1
#define STORE_PG_BACKOFF_MAX_S 60

/* The store location: arg if not NULL or empty, else $SASLGATE_STORE if set
 * and not empty, else NULL (the SQLite store in the store directory). */
const char *store_pg_location(const char *arg);

/* Checks that conninfo is a connection string libpq can parse (a
 * postgresql:// or postgres:// URI, or key=value pairs). 0, or -1 with err. */
int store_pg_parse(const char *conninfo, struct sg_err *err);

/* How messages name the store, without the password: "PostgreSQL database
 * DB on HOST:PORT as USER" (parts libpq would take from its defaults are
 * left out). Always NUL-terminated. */
void store_pg_label(const char *conninfo, char *buf, size_t len);

/* The connection parameters every connection gets unless conninfo sets
 * them: a connect_timeout of 5 s, and TCP keepalives that find a server
 * gone silent (a network partition, no RST) within about a minute, as an
 * outage, instead of a LISTEN connection that waits forever. */
#define STORE_PG_DEFAULT_KEYS                                                                      \
	"connect_timeout", "keepalives_idle", "keepalives_interval", "keepalives_count"
#define STORE_PG_DEFAULT_VALUES "5", "30", "10", "3"

/* A blocking connection for saslgatectl or a daemon's start-up; program is
 * the application_name PostgreSQL shows unless conninfo sets one; the
 * STORE_PG_DEFAULT_KEYS apply unless conninfo sets them. NULL with err. */
PGconn *store_pg_connect(const char *conninfo, const char *program, struct sg_err *err);

/* The policy schema version recorded in PostgreSQL: 0 if there is no
 * schema yet, -1 with err. */
int store_pg_schema_version(PGconn *pg, struct sg_err *err);

/* libpq's messages span lines ("...\n\tThis probably means..."): makes
 * text one line, in place (runs of blanks become one space, none at the
 * ends), for logs and degraded reasons. */
void store_pg_one_line(char *text);

/* The newest PostgreSQL policy schema this program knows. */
int store_pg_newest_version(void);

/* Inside the caller's transaction: takes the migration lock (a transaction
 * advisory lock), then brings the schema to the newest version. create = 1
 * (init) refuses a database that has a schema already. 0, or -1 with err. */
int store_pg_migrate(PGconn *pg, int create, struct sg_err *err);

/* In its own transaction: store_pg_migrate(pg, 0) (saslgatectl on an
 * older schema). 0, or -1 with err. */
int store_pg_upgrade(PGconn *pg, struct sg_err *err);

/* The current policy generation in PostgreSQL; -1 with err. */
int64_t store_pg_generation(PGconn *pg, struct sg_err *err);

/* Which tables a pull copies. The cache leaves out the audit trail (the
 * daemons' role cannot read it); saslgatectl takes it, and the highest ids
 * ever used (the AUTOINCREMENT sequences), so that its copy is policy.db. */
enum store_pg_scope { STORE_PG_CACHE, STORE_PG_ADMIN };

/* Copies the policy from PostgreSQL into dst (a policy.db schema, whose
 * rows are replaced) in one REPEATABLE READ READ ONLY transaction in pg and
 * one transaction in dst. If unless_generation >= 0 and PostgreSQL's
 * generation equals it, nothing is copied. *generation: the generation
 * copied (or found). 1 copied, 0 unchanged, -1 with err (dst unchanged). */
int store_pg_pull(PGconn *pg, sqlite3 *dst, enum store_pg_scope scope, int64_t unless_generation,
                  int64_t *generation, struct sg_err *err);

/* The result of store_pg_push(). */
enum store_pg_push_result {
	STORE_PG_PUSH_ERROR = -1,
	STORE_PG_PUSH_NOTHING = 0,  /* db and the pulled copy are equal */
	STORE_PG_PUSH_DONE = 1,     /* committed and notified */
	STORE_PG_PUSH_CONFLICT = 2, /* the generation moved since the pull: nothing written */
};

/* Writes to PostgreSQL what changed in db (saslgatectl's copy) since the
 * pull, whose untouched copy old_path is, in one transaction: locks the
 * generation row and checks that it is still expected_generation, applies
 * the deleted and the new or changed rows, moves the id sequences, NOTIFYs
 * STORE_PG_CHANNEL with the new generation, commits. */
enum store_pg_push_result store_pg_push(PGconn *pg, sqlite3 *db, const char *old_path,
                                        int64_t expected_generation, struct sg_err *err);

/* init: in one transaction, creates the schema (refusing an initialised
 * database), writes every row of db, NOTIFYs and commits. 0, or -1 with
 * err. */
int store_pg_init(PGconn *pg, sqlite3 *db, struct sg_err *err);

/* check: every table of the schema with its columns (in PostgreSQL's
 * catalog): 0, or -1 with the first missing one in err. */
int store_pg_check_tables(PGconn *pg, struct sg_err *err);

/*
 * The cache of a daemon, DIR/STORE_PG_CACHE_DB. refresh pulls (see
 * store_pg_pull, STORE_PG_CACHE) into a new file beside it and rename()s it
 * into place: a reader sees the old file or the new one, never a mix. Two
 * daemons may share DIR. 1 refreshed, 0 unchanged, -1 with err (the cache is
 * unchanged). With 1 and written not NULL, *written is the connection that
 * wrote the new file (renamed into place, its pages still in that
 * connection's cache), for a snapshot built without reading the file again;
 * the caller closes it with store_close(); else *written is NULL. open opens it read-only and
 * checks its schema version: 0, or -1 with err (ENOENT-like errors say so in err; exists reports
 * whether the file is there at all).
 */
int store_pg_cache_refresh(PGconn *pg, const char *dir, int64_t unless_generation,
                           int64_t *generation, sqlite3 **written, struct sg_err *err);
int store_pg_cache_open(const char *dir, sqlite3 **db, int *exists, struct sg_err *err);

/*
 * A daemon's link to PostgreSQL: one connection that LISTENs, and the
 * reconnects (non-blocking, with backoff) while PostgreSQL is away. On a
 * hot standby, which has no LISTEN, the link reports STORE_PG_CHANGED at
 * most once a second instead, for the caller to compare generations.
 * A link is used by one thread at a time (the source's refresh thread),
 * except for store_pg_link_cancel(), which any thread may call.
 */
struct store_pg_link;

/* What store_pg_link_poll() saw. */
enum store_pg_event {
	STORE_PG_IDLE,     /* nothing happened */
	STORE_PG_CHANGED,  /* a notification (or a reason to compare generations) */
	STORE_PG_LOST,     /* the connection just failed: err says why */
	STORE_PG_RESTORED, /* connected again and listening: compare generations */
};

struct store_pg_link *store_pg_link_new(const char *conninfo, const char *program);

/* A blocking connect and LISTEN (start-up). 0, or -1 with err; on failure
 * the first reconnect is scheduled STORE_PG_BACKOFF_MIN_S from now. */
int store_pg_link_connect(struct store_pg_link *link, struct sg_err *err);

/* Blocks until store_pg_link_poll() may have something to do (the socket
 * has data, a reconnect is due or in progress, a hot standby's generation
 * is due), wake_fd is readable, or max_ms passed. 1 if wake_fd is readable,
 * else 0. For a thread that owns the link. */
int store_pg_link_wait(struct store_pg_link *link, int wake_fd, int max_ms);

/* Reads what arrived without blocking (PQconsumeInput, PQnotifies) or
 * advances a reconnect; see enum store_pg_event. */
enum store_pg_event store_pg_link_poll(struct store_pg_link *link, time_t now, struct sg_err *err);

/* The connection, NULL while down. After using it, call
 * store_pg_link_used() with failed = 1 if what the caller did failed: a
 * failure (or a broken connection) takes the link down, the next attempt
 * after the backoff, and returns 1; else a notification that arrived
 * meanwhile is kept for the next store_pg_link_poll(), the backoff starts
 * again from STORE_PG_BACKOFF_MIN_S, and it returns 0. */
PGconn *store_pg_link_conn(struct store_pg_link *link);
int store_pg_link_used(struct store_pg_link *link, int failed, time_t now);

/* Asks PostgreSQL to cancel what the link's connection is running (a pull
 * that waits for a lock, say): that statement then fails. Nothing if the
 * link is down. Thread-safe, for stopping the link's thread. */
void store_pg_link_cancel(struct store_pg_link *link);

void store_pg_link_free(struct store_pg_link **link);

#endif
