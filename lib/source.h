/*
 * source - a daemon's view of policy.db: a read-only connection and the current
 * snapshot, rebuilt when PRAGMA data_version says another connection committed.
 * An unreadable or corrupt store leaves the last good snapshot in service and
 * marks the source degraded until a rebuild succeeds. Thread-safe: the milter's
 * threads share one source; each acquires its own snapshot reference.
 */
#ifndef SASLGATE_SOURCE_H
#define SASLGATE_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "snapshot.h"
#include "util.h"

struct source;

/* Opens policy.db in dir read-only and builds the first snapshot. Fails (NULL,
 * reason in err) if there is no usable store: a daemon must not start without
 * a policy. */
struct source *source_open(const char *dir, struct sg_err *err);

/* The store setting's source: store NULL or "" is source_open(dir); else a
 * PostgreSQL connection string (see store_pg.h), and dir holds the local
 * cache of the policy (policy-cache.db). program names the daemon to
 * PostgreSQL (application_name). When PostgreSQL cannot be reached (or
 * read) the source starts from the cache, degraded, and reconnects; it
 * fails (NULL, reason in err) only if there is no usable cache either. */
struct source *source_open_store(const char *dir, const char *store, const char *program,
                                 struct sg_err *err);

/* Returns a reference to the current snapshot, first checking for a committed
 * change and rebuilding if there is one. Never NULL once opened: on a store
 * error the last good snapshot is returned and the source marked degraded.
 * The caller releases the reference with snapshot_unref(). With a PostgreSQL
 * store nothing is checked here: a thread of the source's own listens,
 * refreshes the cache and builds the new snapshot off the request path, and
 * swaps it in when it is ready; until then the old one serves. */
struct snapshot *source_acquire(struct source *src);

/* 1 if degraded, with the reason copied into reason (may be NULL). */
int source_degraded(struct source *src, char *reason, size_t len);

/* Where the snapshot in service came from. */
enum source_origin {
	SOURCE_POLICY_DB,  /* the SQLite store, DIR/policy.db */
	SOURCE_POSTGRESQL, /* DIR/policy-cache.db, refreshed from PostgreSQL while connected */
	SOURCE_CACHE,      /* DIR/policy-cache.db while PostgreSQL is unreachable */
};

/* "policy.db", "postgresql" or "cache": as heartbeats and status name it. */
const char *source_origin_name(enum source_origin origin);

/* Statistics for status/heartbeats: the generation in service, the number of
 * rebuilds, and the duration of the last rebuild in microseconds; where the
 * snapshot came from and when its policy was read (Unix seconds): from
 * policy.db, the rebuild; from PostgreSQL, the last pull, or the last time
 * PostgreSQL said the cache is current (start-up, a reconnect, a
 * notification without a change); from the cache, the time the cache file
 * was written (its pull from PostgreSQL) when the daemon started from it,
 * else the last time PostgreSQL was read. */
struct source_stats {
	int64_t generation;
	uint64_t rebuilds;
	uint64_t last_rebuild_us;
	uint64_t failures;
	enum source_origin origin;
	int64_t snapshot_at;
};
void source_stats(struct source *src, struct source_stats *out);

/* Stops the refresh thread (PostgreSQL), releases the snapshot and the
 * connection; sets *src to NULL. */
void source_close(struct source **src);

#endif
