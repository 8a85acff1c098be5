/*
 * store_pg_link - a daemon's side of the PostgreSQL store: the LISTEN
 * connection with its non-blocking reconnects, and the local cache file
 * (see store_pg.h).
 *
 * Nothing here waits for PostgreSQL on a request's behalf longer than a
 * reconnect step: a notification is read with PQconsumeInput() once poll()
 * says the socket has data, and a reconnect is driven with PQconnectPoll()
 * for at most RECONNECT_STEP_MS per attempt, the attempts spaced by the
 * backoff.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"
#include "schema_sql.h"
#include "store.h"
#include "store_pg.h"

/* The page cache of a cache file being built, in KiB: a 100,000-exception
 * policy fits (about 20 MB). */
#define CACHE_BUILD_KIB "65536"

/* Longest a reconnect attempt may hold the caller, per call, and in all. */
#define RECONNECT_STEP_MS 100
#define RECONNECT_LIMIT_S 10

struct store_pg_link {
	char *conninfo;
	char *program;
	PGconn *pg;                     /* NULL while down */
	int connecting;                 /* pg is a connection attempt in progress */
	PostgresPollingStatusType want; /* what PQconnectPoll waits for */
	time_t attempt_started;
	time_t next_attempt; /* while down: when to try again */
	int backoff;         /* seconds to wait after the next failure */
	int pending;         /* a notification read while the connection was in use */
	int listening;       /* 0: a hot standby, which has no LISTEN */
	time_t last_check;   /* without LISTEN: when the generation was last asked */
	/* For store_pg_link_cancel() from another thread: the connection's
	 * cancel request, NULL while down. */
	pthread_mutex_t cancel_lock;
	PGcancel *cancel;
};

/* Replaces the cancel request (NULL: none). */
static void set_cancel(struct store_pg_link *link, PGconn *pg)
{
	PGcancel *c = pg != NULL ? PQgetCancel(pg) : NULL;

	pthread_mutex_lock(&link->cancel_lock);
	PQfreeCancel(link->cancel);
	link->cancel = c;
	pthread_mutex_unlock(&link->cancel_lock);
}

void store_pg_link_cancel(struct store_pg_link *link)
{
	char buf[256];

	pthread_mutex_lock(&link->cancel_lock);
	if (link->cancel != NULL)
		PQcancel(link->cancel, buf, sizeof(buf));
	pthread_mutex_unlock(&link->cancel_lock);
}

struct store_pg_link *store_pg_link_new(const char *conninfo, const char *program)
{
	struct store_pg_link *link = xcalloc(1, sizeof(*link));

	link->conninfo = xstrdup(conninfo);
	link->program = xstrdup(program);
	link->backoff = STORE_PG_BACKOFF_MIN_S;
	pthread_mutex_init(&link->cancel_lock, NULL);
	return link;
}

/* Drops the connection and schedules the next attempt. */
static void link_down(struct store_pg_link *link, time_t now)
{
	set_cancel(link, NULL);
	PQfinish(link->pg);
	link->pg = NULL;
	link->connecting = 0;
	link->next_attempt = now + link->backoff;
	link->backoff *= 2;
	if (link->backoff > STORE_PG_BACKOFF_MAX_S)
		link->backoff = STORE_PG_BACKOFF_MAX_S;
}

static void copy_error(struct sg_err *err, const char *what, PGconn *pg)
{
	sg_err_set(err, "%s: %s", what, pg != NULL ? PQerrorMessage(pg) : "out of memory");
	store_pg_one_line(err->text);
}

/* libpq prints what the server says outside a query (its "terminating
 * connection" FATAL, say) on stderr; the source logs the outage itself. */
static void quiet_notices(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

static int listen_channel(struct store_pg_link *link, struct sg_err *err)
{
	PGresult *r;
	int ok;

	PQsetNoticeProcessor(link->pg, quiet_notices, NULL);
	r = PQexec(link->pg, "LISTEN " STORE_PG_CHANNEL);
	ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	/* A hot standby refuses LISTEN (read_only_sql_transaction) and never
	 * delivers a NOTIFY: the generation is asked once a second instead. */
	link->listening = ok;
	if (!ok && PQresultErrorField(r, PG_DIAG_SQLSTATE) != NULL &&
	    strcmp(PQresultErrorField(r, PG_DIAG_SQLSTATE), "25006") == 0)
		ok = 1;
	PQclear(r);
	if (!ok) {
		copy_error(err, "LISTEN", link->pg);
		return -1;
	}
	link->pending = 0;
	link->last_check = time(NULL);
	set_cancel(link, link->pg);
	return 0;
}

int store_pg_link_connect(struct store_pg_link *link, struct sg_err *err)
{
	link->pg = store_pg_connect(link->conninfo, link->program, err);
	if (link->pg == NULL || listen_channel(link, err) < 0) {
		link->backoff = STORE_PG_BACKOFF_MIN_S;
		link_down(link, time(NULL));
		return -1;
	}
	return 0;
}

static int readable(int fd, short events, int timeout_ms)
{
	struct pollfd p = {fd, events, 0};

	if (fd < 0)
		return 1; /* let the caller find out what is wrong */
	return poll(&p, 1, timeout_ms) != 0;
}

int store_pg_link_wait(struct store_pg_link *link, int wake_fd, int max_ms)
{
	struct pollfd p[2] = {{wake_fd, POLLIN, 0}, {-1, POLLIN, 0}};
	time_t now = time(NULL);
	int timeout = max_ms;

	if (link->pending || link->connecting) {
		timeout = 0; /* an attempt waits for its socket itself */
	} else if (link->pg == NULL) {
		if (link->next_attempt <= now)
			timeout = 0;
		else if ((link->next_attempt - now) * 1000 < max_ms)
			timeout = (int)(link->next_attempt - now) * 1000;
	} else {
		p[1].fd = PQsocket(link->pg);
		if (!link->listening && timeout > 1000)
			timeout = 1000; /* the generation, once a second */
	}
	if (poll(p, 2, timeout) < 0)
		return 0;
	return (p[0].revents & POLLIN) != 0;
}

/* Starts an attempt without waiting for it. */
static void start_attempt(struct store_pg_link *link, time_t now)
{
	const char *const keys[] = {STORE_PG_DEFAULT_KEYS, "fallback_application_name", "dbname",
	                            NULL};
	const char *const values[] = {STORE_PG_DEFAULT_VALUES, link->program, link->conninfo, NULL};

	link->pg = PQconnectStartParams(keys, values, 1);
	link->connecting = 1;
	link->want = PGRES_POLLING_WRITING;
	link->attempt_started = now;
}

/* Advances an attempt for up to RECONNECT_STEP_MS. */
static enum store_pg_event advance_attempt(struct store_pg_link *link, time_t now,
                                           struct sg_err *err)
{
	int waited = 0;

	if (link->pg == NULL || PQstatus(link->pg) == CONNECTION_BAD) {
		copy_error(err, "cannot connect to PostgreSQL", link->pg);
		link_down(link, now);
		return STORE_PG_IDLE;
	}
	while (waited <= RECONNECT_STEP_MS) {
		if (!readable(PQsocket(link->pg),
		              link->want == PGRES_POLLING_READING ? POLLIN : POLLOUT, 10)) {
			waited += 10;
			continue;
		}
		link->want = PQconnectPoll(link->pg);
		if (link->want == PGRES_POLLING_OK) {
			link->connecting = 0;
			if (listen_channel(link, err) < 0) {
				link_down(link, now);
				return STORE_PG_IDLE;
			}
			return STORE_PG_RESTORED;
		}
		if (link->want == PGRES_POLLING_FAILED) {
			copy_error(err, "cannot connect to PostgreSQL", link->pg);
			link_down(link, now);
			return STORE_PG_IDLE;
		}
	}
	if (now - link->attempt_started > RECONNECT_LIMIT_S) {
		sg_err_set(err, "cannot connect to PostgreSQL: timed out");
		link_down(link, now);
	}
	return STORE_PG_IDLE;
}

/* Notifications already read by libpq: 1 if there was one. */
static int drain(PGconn *pg)
{
	PGnotify *n;
	int any = 0;

	while ((n = PQnotifies(pg)) != NULL) {
		any = 1;
		PQfreemem(n);
	}
	return any;
}

enum store_pg_event store_pg_link_poll(struct store_pg_link *link, time_t now, struct sg_err *err)
{
	if (link->pg == NULL) {
		if (now < link->next_attempt)
			return STORE_PG_IDLE;
		start_attempt(link, now);
	}
	if (link->connecting)
		return advance_attempt(link, now, err);
	if (PQconsumeInput(link->pg) == 0 || PQstatus(link->pg) == CONNECTION_BAD) {
		copy_error(err, "lost the connection to PostgreSQL", link->pg);
		link->backoff = STORE_PG_BACKOFF_MIN_S;
		link_down(link, now);
		return STORE_PG_LOST;
	}
	if (drain(link->pg) || link->pending) {
		link->pending = 0;
		return STORE_PG_CHANGED;
	}
	if (!link->listening && now != link->last_check) {
		link->last_check = now;
		return STORE_PG_CHANGED; /* compare generations */
	}
	return STORE_PG_IDLE;
}

PGconn *store_pg_link_conn(struct store_pg_link *link)
{
	return link->connecting ? NULL : link->pg;
}

int store_pg_link_used(struct store_pg_link *link, int failed, time_t now)
{
	if (link->pg == NULL)
		return 1;
	if (failed || PQstatus(link->pg) == CONNECTION_BAD) {
		link_down(link, now);
		return 1;
	}
	if (drain(link->pg))
		link->pending = 1;
	link->backoff = STORE_PG_BACKOFF_MIN_S; /* it works: the next outage starts at 1 s */
	return 0;
}

void store_pg_link_free(struct store_pg_link **linkp)
{
	struct store_pg_link *link = *linkp;

	if (link == NULL)
		return;
	set_cancel(link, NULL);
	pthread_mutex_destroy(&link->cancel_lock);
	PQfinish(link->pg);
	free(link->conninfo);
	free(link->program);
	free(link);
	*linkp = NULL;
}

/* A new, empty policy.db schema in path (no WAL: the file is replaced, not
 * written in place). It is built without a journal and without SQLite's
 * fsyncs, and with a page cache that holds it whole: until the rename it is
 * nobody's, a failure or a crash only leaves a temporary file behind (and
 * the old cache in place), and store_pg_cache_refresh() makes it durable
 * with one fsync before the rename. */
static int cache_create(const char *path, sqlite3 **db, struct sg_err *err)
{
	char sql[64];
	int n = 0;

	if (sqlite3_open_v2(path, db,
	                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
	                    NULL) != SQLITE_OK) {
		sg_err_set(err, "%s: %s", path, *db ? sqlite3_errmsg(*db) : "out of memory");
		store_close(db);
		return -1;
	}
	if (store_exec(*db, "PRAGMA journal_mode = OFF", err) < 0 ||
	    store_exec(*db, "PRAGMA synchronous = OFF", err) < 0 ||
	    store_exec(*db, "PRAGMA cache_size = -" CACHE_BUILD_KIB, err) < 0 ||
	    store_exec(*db, "BEGIN", err) < 0)
		return -1;
	for (; schema_policy_migrations[n] != NULL; n++)
		if (store_exec(*db, schema_policy_migrations[n], err) < 0)
			return -1;
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", n);
	if (store_exec(*db, sql, err) < 0 || store_exec(*db, "COMMIT", err) < 0)
		return -1;
	return 0;
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* The temporary cache on disk before it replaces the old one: a crash
 * after the rename finds the new file whole. 0, or -1 with err. */
static int sync_file(const char *path, struct sg_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return sg_err_set(err, "%s: %s", path, strerror(errno));
	if (fsync(fd) < 0)
		rc = sg_err_set(err, "%s: fsync: %s", path, strerror(errno));
	close(fd);
	return rc;
}

int store_pg_cache_refresh(PGconn *pg, const char *dir, int64_t unless_generation,
                           int64_t *generation, sqlite3 **written, struct sg_err *err)
{
	char path[4096], tmp[4200];
	sqlite3 *db = NULL;
	int64_t g = store_pg_generation(pg, err);
	uint64_t t0, t1, t2;
	int rc;

	if (written != NULL)
		*written = NULL;
	if (g < 0)
		return -1;
	*generation = g;
	if (unless_generation >= 0 && g == unless_generation)
		return 0;
	if (store_path(dir, STORE_PG_CACHE_DB, path, sizeof(path), err) < 0)
		return -1;
	snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	unlink(tmp);
	if (cache_create(tmp, &db, err) < 0) {
		store_close(&db);
		unlink(tmp);
		return -1;
	}
	t0 = now_us();
	/* With the connection still open: its COMMIT wrote every page. */
	rc = store_pg_pull(pg, db, STORE_PG_CACHE, -1, generation, err);
	t1 = now_us();
	if (rc < 0 || sync_file(tmp, err) < 0) {
		store_close(&db);
		unlink(tmp);
		return -1;
	}
	t2 = now_us();
	if (rename(tmp, path) < 0) {
		sg_err_set(err, "%s: %s", path, strerror(errno));
		store_close(&db);
		unlink(tmp);
		return -1;
	}
	log_debug(
	    "policy cache %s: generation %lld pulled in %llu ms, fsync %llu ms, rename %llu ms",
	    path, (long long)*generation, (unsigned long long)((t1 - t0) / 1000),
	    (unsigned long long)((t2 - t1) / 1000), (unsigned long long)((now_us() - t2) / 1000));
	if (written != NULL)
		*written = db;
	else
		store_close(&db);
	return 1;
}

int store_pg_cache_open(const char *dir, sqlite3 **db, int *exists, struct sg_err *err)
{
	char path[4096];
	struct stat sb;
	int v;

	*db = NULL;
	*exists = 0;
	if (store_path(dir, STORE_PG_CACHE_DB, path, sizeof(path), err) < 0)
		return -1;
	if (stat(path, &sb) < 0)
		return sg_err_set(err, "%s: %s", path, strerror(errno));
	*exists = 1;
	if (sqlite3_open_v2(path, db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
	    SQLITE_OK) {
		sg_err_set(err, "%s: %s", path, *db ? sqlite3_errmsg(*db) : "out of memory");
		store_close(db);
		return -1;
	}
	v = store_schema_version(*db);
	if (v != store_policy_schema_version()) {
		sg_err_set(err, "%s: schema version %d, this program needs %d", path, v,
		           store_policy_schema_version());
		store_close(db);
		return -1;
	}
	return 0;
}
