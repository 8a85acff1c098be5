/*
 * source - the daemon side of policy.db: change detection and snapshot swaps
 * (see source.h).
 *
 * Two checks run before a snapshot is handed out:
 *  - on every acquire, the change notice that saslgatectl bumps after each
 *    commit (one pread); when it moved, PRAGMA data_version (a SQLite read
 *    transaction, several system calls) says whether policy.db changed, so a
 *    commit by saslgatectl is seen by the very next request. Without a notice
 *    file, data_version is asked on every acquire;
 *  - at most once a second, data_version regardless of the notice (a change
 *    made by another tool), and the identity of the file (inode, size,
 *    mtime): a file that was removed, replaced or overwritten behind SQLite's
 *    back forces a reopen, and a store that cannot be read leaves the last
 *    good snapshot in service with the source marked degraded.
 *
 * With a PostgreSQL store (source_open_store), the snapshot is built from
 * the local cache DIR/policy-cache.db with the same loader, by a refresh
 * thread of the source's own: it sleeps in poll() on the LISTEN
 * connection's socket, and a notification (or a lost connection, or a
 * reconnect that is due) wakes it; it reads the notification, refreshes the
 * cache when the generation moved (the pull into a temporary file and the
 * rename) and builds the new snapshot, all without the lock, then swaps it
 * in. An acquire only takes a reference: a refresh of a large policy never
 * holds a request (policyd's event loop, a milter callback). While
 * PostgreSQL is away the last good snapshot stays in service; the outage is
 * logged once, and its end once.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"
#include "source.h"
#include "store.h"
#include "store_pg.h"

struct source {
	pthread_rwlock_t lock; /* read: the fast path of source_acquire; write: the rest */
	char *dir;
	char path[4096];
	sqlite3 *db;
	sqlite3_stmt *data_version_stmt; /* prepared once per connection */
	struct snapshot *current;
	int64_t data_version;
	int notice_fd; /* STORE_POLICY_NOTICE, -1 if absent */
	char notice_path[4096];
	struct stat notice_identity;
	uint64_t notice_seen;
	int check_due; /* ask data_version on the next acquire */
	struct stat identity;
	time_t last_identity_check;
	int degraded;
	char reason[256];
	struct source_stats stats;
	/* The PostgreSQL store; NULL for policy.db. */
	struct store_pg_link *pg; /* the refresh thread's alone once it runs */
	char label[256];          /* how the logs name it (no password) */
	time_t pg_outage_since;   /* 0: no outage */
	pthread_t refresher;      /* the refresh thread, if refreshing */
	int refreshing;
	atomic_int stopping; /* set before the refresh thread is stopped */
	int wake[2];         /* a byte in wake[1] stops the refresh thread */
};

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int same_identity(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static void set_degraded(struct source *src, const char *reason)
{
	if (!src->degraded || strcmp(src->reason, reason) != 0)
		log_error("policy store degraded, keeping policy generation %lld in service: %s",
		          src->current ? (long long)snapshot_generation(src->current) : -1LL,
		          reason);
	src->degraded = 1;
	sg_strlcpy(src->reason, reason, sizeof(src->reason));
	src->stats.failures++;
}

static void clear_degraded(struct source *src)
{
	if (src->degraded)
		log_info("policy store readable again (generation %lld)",
		         (long long)snapshot_generation(src->current));
	src->degraded = 0;
	src->reason[0] = '\0';
}

/* PRAGMA data_version with the connection's prepared statement. Lock held. */
static int read_data_version(struct source *src, int64_t *version, struct sg_err *err)
{
	int rc;

	if (src->data_version_stmt == NULL &&
	    sqlite3_prepare_v2(src->db, "PRAGMA data_version", -1, &src->data_version_stmt, NULL) !=
	        SQLITE_OK)
		return sg_err_set(err, "data_version: %s", sqlite3_errmsg(src->db));
	rc = sqlite3_step(src->data_version_stmt);
	if (rc == SQLITE_ROW)
		*version = sqlite3_column_int64(src->data_version_stmt, 0);
	sqlite3_reset(src->data_version_stmt);
	if (rc != SQLITE_ROW)
		return sg_err_set(err, "data_version: %s", sqlite3_errmsg(src->db));
	return 0;
}

/* Swaps snap in, built in us microseconds; the source owns it. Lock held
 * (or not yet shared). */
static void install(struct source *src, struct snapshot *snap, uint64_t us)
{
	snapshot_unref(&src->current);
	src->current = snap;
	src->stats.generation = snapshot_generation(snap);
	src->stats.rebuilds++;
	src->stats.last_rebuild_us = us;
}

/* Builds a snapshot from the open connection (policy.db) and swaps it in.
 * Lock held. */
static int rebuild(struct source *src, struct sg_err *err)
{
	uint64_t start = now_us();
	struct snapshot *snap = snapshot_load(src->db, err);

	if (snap == NULL)
		return -1;
	install(src, snap, now_us() - start);
	src->stats.origin = SOURCE_POLICY_DB;
	src->stats.snapshot_at = (int64_t)time(NULL);
	return 0;
}

/* (Re)opens the connection and rebuilds. Lock held (or not yet shared). */
static int reopen(struct source *src, struct sg_err *err)
{
	sqlite3 *db;

	if (store_open_readonly(src->dir, &db, err) < 0)
		return -1;
	sqlite3_finalize(src->data_version_stmt);
	src->data_version_stmt = NULL;
	store_close(&src->db);
	src->db = db;
	if (stat(src->path, &src->identity) < 0)
		memset(&src->identity, 0, sizeof(src->identity));
	if (read_data_version(src, &src->data_version, err) < 0)
		return -1;
	return rebuild(src, err);
}

/* (Re)opens the change notice if it is missing or was replaced. Lock held. */
static void notice_open(struct source *src)
{
	struct stat sb;

	if (stat(src->notice_path, &sb) < 0) {
		if (src->notice_fd >= 0)
			close(src->notice_fd);
		src->notice_fd = -1;
		return;
	}
	if (src->notice_fd >= 0 && sb.st_ino == src->notice_identity.st_ino &&
	    sb.st_dev == src->notice_identity.st_dev)
		return;
	if (src->notice_fd >= 0)
		close(src->notice_fd);
	src->notice_fd = open(src->notice_path, O_RDONLY | O_CLOEXEC);
	src->notice_identity = sb;
	src->check_due = 1;
}

/* 1 if the notice moved since the last look (or there is none). Lock held. */
static int notice_moved(struct source *src)
{
	uint64_t v;

	if (src->notice_fd < 0 || store_notice_read(src->notice_fd, &v) < 0)
		return 1;
	if (v == src->notice_seen)
		return 0;
	src->notice_seen = v;
	return 1;
}

static struct source *source_new(const char *dir)
{
	struct source *src = xcalloc(1, sizeof(*src));
	pthread_rwlockattr_t attr;

	/* The slow path (a change, the check once a second) must not wait behind
	 * a stream of readers. */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&src->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	src->dir = xstrdup(dir);
	src->notice_fd = -1;
	src->wake[0] = src->wake[1] = -1;
	return src;
}

struct source *source_open(const char *dir, struct sg_err *err)
{
	struct source *src = source_new(dir);

	if (store_path(dir, STORE_POLICY_DB, src->path, sizeof(src->path), err) < 0 ||
	    store_path(dir, STORE_POLICY_NOTICE, src->notice_path, sizeof(src->notice_path), err) <
	        0) {
		source_close(&src);
		return NULL;
	}
	/* The notice is read before the snapshot is built: a commit after this
	 * read moves it again. */
	notice_open(src);
	notice_moved(src);
	if (reopen(src, err) < 0) {
		source_close(&src);
		return NULL;
	}
	src->last_identity_check = time(NULL);
	return src;
}

/* Once a second: has the file been removed, replaced or rewritten? Lock held. */
static void check_identity(struct source *src, time_t now)
{
	struct stat sb;
	struct sg_err err;
	char reason[sizeof(src->reason)];

	if (now == src->last_identity_check)
		return;
	src->last_identity_check = now;
	src->check_due = 1;
	notice_open(src);
	if (stat(src->path, &sb) < 0) {
		sg_snprintf(reason, sizeof(reason), "%s: %s", src->path, strerror(errno));
		set_degraded(src, reason);
		return;
	}
	if (same_identity(&sb, &src->identity) && !src->degraded)
		return;
	err.text[0] = '\0';
	if (reopen(src, &err) < 0) {
		src->identity = sb; /* do not retry until the file changes again */
		set_degraded(src, err.text);
		return;
	}
	clear_degraded(src);
}

/*
 * The common case, nothing committed: under the read lock, so that the
 * milter's threads do not queue behind each other's pread of the notice.
 * NULL when the slow path must run.
 */
static struct snapshot *acquire_unchanged(struct source *src, time_t now)
{
	struct snapshot *snap = NULL;
	uint64_t v;

	pthread_rwlock_rdlock(&src->lock);
	if (now == src->last_identity_check && !src->check_due && src->notice_fd >= 0 &&
	    store_notice_read(src->notice_fd, &v) == 0 && v == src->notice_seen)
		snap = snapshot_ref(src->current);
	pthread_rwlock_unlock(&src->lock);
	return snap;
}

/* The PostgreSQL store. */

/* Longest the refresh thread sleeps between two looks at its link. */
#define REFRESH_WAIT_MS 1000

/* A snapshot of the cache file, in *us microseconds; *exists: whether there
 * is a cache file at all (may be NULL). Reads only the file: no lock. NULL
 * with err. */
static struct snapshot *cache_snapshot(const char *dir, int *exists, uint64_t *us,
                                       struct sg_err *err)
{
	uint64_t start = now_us();
	struct snapshot *snap;
	sqlite3 *db = NULL;
	int there = 0;

	if (store_pg_cache_open(dir, &db, &there, err) < 0) {
		if (exists != NULL)
			*exists = there;
		return NULL;
	}
	if (exists != NULL)
		*exists = 1;
	snap = snapshot_load(db, err);
	store_close(&db);
	*us = now_us() - start;
	return snap;
}

/* When the cache file was written (its pull from PostgreSQL); 0 unknown. */
static int64_t cache_written_at(const char *dir)
{
	char path[4096];
	struct stat sb;

	if (store_path(dir, STORE_PG_CACHE_DB, path, sizeof(path), NULL) < 0 || stat(path, &sb) < 0)
		return 0;
	return (int64_t)sb.st_mtime;
}

/*
 * Asks PostgreSQL for the generation and, when it is not unless, refreshes
 * the cache (in *cache_us microseconds) and builds a snapshot from it into
 * *snap (in *us). *written: with a new snapshot, the connection that wrote
 * the new cache file, for the caller to close after the swap (closing it
 * frees its page cache), else NULL. A failure takes the connection down: the reconnect (with
 * backoff) tries again. 1 (a new snapshot), 0 (unchanged), or -1 with err.
 * Touches only the link and the cache file, so it runs without the lock: in
 * the refresh thread, which owns the link, or at start-up before there is
 * one.
 */
static int pg_fetch(struct source *src, int64_t unless, struct snapshot **snap, sqlite3 **written,
                    uint64_t *cache_us, uint64_t *us, struct sg_err *err)
{
	uint64_t start = now_us();
	PGconn *pg = store_pg_link_conn(src->pg);
	sqlite3 *db = NULL;
	int64_t gen;
	int rc = -1, v;

	*snap = NULL;
	*written = NULL;
	*us = 0;
	if (pg == NULL)
		return sg_err_set(err, "not connected");
	v = store_pg_schema_version(pg, err);
	if (v >= 0 && v != store_pg_newest_version())
		sg_err_set(err, "PostgreSQL has policy schema version %d, this program needs %d%s",
		           v, store_pg_newest_version(),
		           v == 0 ? " (run \"saslgatectl --store URI init\")" : "");
	else if (v >= 0)
		rc = store_pg_cache_refresh(pg, src->dir, unless, &gen, &db, err);
	*cache_us = now_us() - start;
	if (store_pg_link_used(src->pg, rc < 0, time(NULL)) && rc >= 0)
		rc = sg_err_set(err, "lost the connection to PostgreSQL");
	if (rc > 0) {
		/* From the connection that wrote the file, its pages still in
		 * its cache: the same rows, not read again. */
		start = now_us();
		*snap = snapshot_load(db, err);
		*us = now_us() - start;
		rc = *snap != NULL ? 1 : -1;
	}
	if (rc > 0)
		*written = db;
	else
		store_close(&db);
	return rc;
}

/* The outage, logged once however long it lasts. Lock held. */
static void pg_outage_begin(struct source *src, const char *why)
{
	long long gen = src->current ? (long long)snapshot_generation(src->current) : -1LL;

	src->stats.origin = SOURCE_CACHE;
	if (src->pg_outage_since != 0)
		return;
	src->pg_outage_since = time(NULL);
	log_error("policy store %s unavailable, enforcing the cached policy generation %lld "
	          "(%s/%s) until it is back: %s",
	          src->label, gen, src->dir, STORE_PG_CACHE_DB, why);
	sg_snprintf(src->reason, sizeof(src->reason),
	            "%s unavailable, serving the cached policy generation %lld: %s", src->label,
	            gen, why);
	src->degraded = 1;
	src->stats.failures++;
}

/* PostgreSQL has just said that the snapshot in service is current. Lock
 * held. */
static void pg_current(struct source *src)
{
	src->stats.origin = SOURCE_POSTGRESQL;
	src->stats.snapshot_at = (int64_t)time(NULL);
	if (src->pg_outage_since == 0)
		return;
	log_info("policy store %s available again after %lld s (policy generation %lld)",
	         src->label, (long long)(time(NULL) - src->pg_outage_since),
	         (long long)snapshot_generation(src->current));
	src->pg_outage_since = 0;
	src->degraded = 0;
	src->reason[0] = '\0';
}

/*
 * One turn of the refresh thread: what the link saw, and the refresh it
 * calls for. The pull and the build run without the lock, the old snapshot
 * serving meanwhile; the swap is one step under the write lock, so the next
 * acquire after it gets the new snapshot.
 */
static void refresh_turn(struct source *src)
{
	struct sg_err err = {{0}};
	struct snapshot *snap = NULL;
	sqlite3 *written = NULL;
	enum store_pg_event ev = store_pg_link_poll(src->pg, time(NULL), &err);
	uint64_t start = now_us(), us = 0, cache_us = 0;
	int64_t was;
	int rc;

	if (ev == STORE_PG_LOST) {
		pthread_rwlock_wrlock(&src->lock);
		pg_outage_begin(src, err.text);
		pthread_rwlock_unlock(&src->lock);
		return;
	}
	if (ev != STORE_PG_CHANGED && ev != STORE_PG_RESTORED)
		return;
	/* Only this thread replaces src->current: it may read it unlocked. */
	was = snapshot_generation(src->current);
	rc = pg_fetch(src, was, &snap, &written, &cache_us, &us, &err);
	if (rc < 0 && atomic_load(&src->stopping))
		return; /* cancelled by refresh_stop(): not an outage */
	pthread_rwlock_wrlock(&src->lock);
	if (rc < 0) {
		pg_outage_begin(src, err.text);
	} else {
		if (rc > 0)
			install(src, snap, us);
		pg_current(src);
	}
	pthread_rwlock_unlock(&src->lock);
	store_close(&written);
	if (rc > 0)
		log_info("policy cache refreshed from %s: generation %lld in service (was %lld), "
		         "%llu ms in all, cache written in %llu ms, snapshot built in %llu ms",
		         src->label, (long long)snapshot_generation(snap), (long long)was,
		         (unsigned long long)((now_us() - start) / 1000),
		         (unsigned long long)(cache_us / 1000), (unsigned long long)(us / 1000));
}

static void *refresh_main(void *arg)
{
	struct source *src = arg;

	while (!store_pg_link_wait(src->pg, src->wake[0], REFRESH_WAIT_MS))
		refresh_turn(src);
	return NULL;
}

/* Starts the refresh thread, with every signal blocked (the daemons take
 * theirs on threads of their choosing). 0, or -1 with err. */
static int refresh_start(struct source *src, struct sg_err *err)
{
	sigset_t all, old;
	int rc;

	if (pipe2(src->wake, O_CLOEXEC) < 0) {
		src->wake[0] = src->wake[1] = -1;
		return sg_err_set(err, "pipe: %s", strerror(errno));
	}
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&src->refresher, NULL, refresh_main, src);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
		return sg_err_set(err, "cannot start the policy refresh thread: %s", strerror(rc));
	src->refreshing = 1;
	return 0;
}

static void refresh_stop(struct source *src)
{
	if (src->refreshing) {
		struct timespec deadline;

		atomic_store(&src->stopping, 1);
		if (write(src->wake[1], "", 1) < 0)
			log_error("cannot stop the policy refresh thread: %s", strerror(errno));
		/* A pull in progress may wait for a lock, or a server gone
		 * silent: cancel what it runs until the thread sees the stop. */
		for (;;) {
			clock_gettime(CLOCK_REALTIME, &deadline);
			deadline.tv_nsec += 100 * 1000000L;
			if (deadline.tv_nsec >= 1000000000L) {
				deadline.tv_sec++;
				deadline.tv_nsec -= 1000000000L;
			}
			if (pthread_timedjoin_np(src->refresher, NULL, &deadline) != ETIMEDOUT)
				break;
			store_pg_link_cancel(src->pg);
		}
		src->refreshing = 0;
	}
	for (int i = 0; i < 2; i++)
		if (src->wake[i] >= 0)
			close(src->wake[i]);
	src->wake[0] = src->wake[1] = -1;
}

struct source *source_open_store(const char *dir, const char *store, const char *program,
                                 struct sg_err *err)
{
	struct source *src;
	struct sg_err pg_err = {{0}}, cache_err = {{0}};
	struct snapshot *snap = NULL;
	sqlite3 *written = NULL;
	uint64_t us = 0, cache_us = 0;
	int exists = 0;

	if (store == NULL || *store == '\0')
		return source_open(dir, err);
	if (store_pg_parse(store, err) < 0)
		return NULL;
	src = source_new(dir);
	src->pg = store_pg_link_new(store, program);
	store_pg_label(store, src->label, sizeof(src->label));
	if (store_pg_link_connect(src->pg, &pg_err) == 0 &&
	    pg_fetch(src, -1, &snap, &written, &cache_us, &us, &pg_err) > 0) {
		install(src, snap, us);
		pg_current(src);
		store_close(&written);
	} else if ((snap = cache_snapshot(dir, &exists, &us, &cache_err)) != NULL) {
		/* PostgreSQL is away (or unusable): start from the cache. */
		install(src, snap, us);
		src->stats.snapshot_at = cache_written_at(dir);
		pg_outage_begin(src, pg_err.text);
	} else {
		sg_err_set(err,
		           "%s: %s; and no usable cached policy (%s): a daemon does not start "
		           "without a policy",
		           src->label, pg_err.text, exists ? cache_err.text : "none yet");
		source_close(&src);
		return NULL;
	}
	if (refresh_start(src, err) < 0) {
		source_close(&src);
		return NULL;
	}
	return src;
}

struct snapshot *source_acquire(struct source *src)
{
	struct snapshot *snap;
	struct sg_err err;
	int64_t version;
	time_t now = time(NULL);

	if (src->pg != NULL) {
		pthread_rwlock_rdlock(&src->lock);
		snap = snapshot_ref(src->current);
		pthread_rwlock_unlock(&src->lock);
		return snap;
	}
	if ((snap = acquire_unchanged(src, now)) != NULL)
		return snap;
	pthread_rwlock_wrlock(&src->lock);
	check_identity(src, now);
	err.text[0] = '\0';
	if (notice_moved(src))
		src->check_due = 1;
	if (!src->check_due) {
		/* nothing committed since the last check */
	} else if (src->db != NULL && read_data_version(src, &version, &err) == 0) {
		src->check_due = 0;
		if (version != src->data_version) {
			if (rebuild(src, &err) < 0) {
				set_degraded(src, err.text);
			} else {
				src->data_version = version;
				clear_degraded(src);
			}
		}
	} else if (src->db != NULL) {
		set_degraded(src, err.text);
	}
	snap = snapshot_ref(src->current);
	pthread_rwlock_unlock(&src->lock);
	return snap;
}

int source_degraded(struct source *src, char *reason, size_t len)
{
	int d;

	pthread_rwlock_rdlock(&src->lock);
	d = src->degraded;
	if (reason != NULL && len > 0)
		sg_strlcpy(reason, d ? src->reason : "", len);
	pthread_rwlock_unlock(&src->lock);
	return d;
}

void source_stats(struct source *src, struct source_stats *out)
{
	pthread_rwlock_rdlock(&src->lock);
	*out = src->stats;
	pthread_rwlock_unlock(&src->lock);
}

const char *source_origin_name(enum source_origin origin)
{
	switch (origin) {
	case SOURCE_POLICY_DB:
		return "policy.db";
	case SOURCE_POSTGRESQL:
		return "postgresql";
	case SOURCE_CACHE:
		return "cache";
	}
	return "?";
}

void source_close(struct source **srcp)
{
	struct source *src = *srcp;

	if (src == NULL)
		return;
	refresh_stop(src);
	snapshot_unref(&src->current);
	if (src->notice_fd >= 0)
		close(src->notice_fd);
	sqlite3_finalize(src->data_version_stmt);
	store_close(&src->db);
	store_pg_link_free(&src->pg);
	pthread_rwlock_destroy(&src->lock);
	free(src->dir);
	free(src);
	*srcp = NULL;
}
