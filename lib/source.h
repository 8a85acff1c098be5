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
 * The caller releases the reference with snapshot_unref(). */
struct snapshot *source_acquire(struct source *src);

/* 1 if degraded, with the reason copied into reason (may be NULL). */
int source_degraded(struct source *src, char *reason, size_t len);

/* Statistics for status/heartbeats: the generation in service, the number of
 * rebuilds, and the duration of the last rebuild in microseconds. */
struct source_stats {
	int64_t generation;
	uint64_t rebuilds;
	uint64_t last_rebuild_us;
	uint64_t failures;
};
void source_stats(struct source *src, struct source_stats *out);

/* Releases the snapshot and the connection; sets *src to NULL. */
void source_close(struct source **src);

#endif
