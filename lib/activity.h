/*
 * activity - what the daemons record about their decisions, the queue and
 * writer of activity.db: one syslog line per decision (decision_line.h),
 * and, off the request path, the decision log (batches of decisions,
 * decision_batch.h) and the usage table (user x mechanism x client network,
 * usage_sums.h), written by one writer thread in batched transactions
 * through activity_store.h, plus a heartbeat row with counters.
 *
 * activity_record() never blocks on I/O: records go to a bounded queue, and the
 * writer thread logs their decision lines (a batch in a few large writes)
 * and stores them. A full queue drops records, lines included; an unwritable
 * activity.db drops rows (the lines are still logged). Every loss is counted
 * and logged (at most once a minute).
 *
 * Fields are recorded as the daemon got them (a user name in UTF-8, or not
 * UTF-8 at all): the usage table keys on those bytes, so two different
 * names are two users; the decision line and the batch escape them as
 * their headers say.
 */
#ifndef SASLGATE_ACTIVITY_H
#define SASLGATE_ACTIVITY_H

#include <stdint.h>
#include <time.h>

#include "engine.h"
#include "request.h"
#include "util.h"

struct activity;

struct activity_options {
	const char *dir;         /* store directory */
	const char *program;     /* "policyd" or "milter" */
	unsigned queue_max;      /* records held before dropping (e.g. 100000) */
	unsigned flush_ms;       /* writer batches at most this long (e.g. 200) */
	unsigned heartbeat_s;    /* heartbeat interval (e.g. 5) */
	int nice;                /* the writer thread's nice level (0..19) */
	unsigned retention_days; /* not applied by the writer; recorded for status */
	int log_decisions;       /* 1: one syslog line per decision */
	const char *host_name;   /* in heartbeats and the fleet's tables (NULL, "": gethostname) */
	/* A fleet host (PostgreSQL store): activity.db is also the spool of what
	 * fleet_ship.h delivers there. NULL: a single host, no spool. */
	const char *fleet_store;       /* the connection string */
	const char *fleet_program;     /* its application_name ("saslgate-policyd") */
	unsigned long fleet_spool_max; /* decisions spooled before dropping (e.g. 1000000) */
};

/* Counters shown in heartbeats. Updated by the daemon; read by the writer. */
struct activity_counters {
	uint64_t requests, blocks, allows, would_blocks, not_authenticated, errors;
};

/* Starts the writer. Never fails because activity.db is unwritable (that is
 * retried and counted); NULL only when the thread cannot start (err). */
struct activity *activity_open(const struct activity_options *opt, struct sg_err *err);

/* Queues the decision line, the decision row and the usage update.
 * Thread-safe; never blocks on I/O. snap_generation is the policy generation the
 * decision was made with. */
void activity_record(struct activity *act, const struct request *req, const struct decision *d,
                     int64_t snap_generation, time_t now);

/* Counts one of Dovecot's after-auth reports (command=report): the service
 * ("imap"; NULL or "" stand for "-"), the mechanism's class name ("-" when
 * unknown) and the result ("success", "failure" or "policy_reject").
 * Thread-safe. The totals since start are written with each heartbeat, into
 * auth_results. At most ACTIVITY_AUTH_KEYS distinct keys are kept; further
 * services are counted as "(other)". */
#define ACTIVITY_AUTH_KEYS 64
void activity_count_auth_result(struct activity *act, const char *service, const char *mech_class,
                                const char *result);

/* Counts a request that ended in on_error (no decision). Thread-safe. */
void activity_count_error(struct activity *act);

/* Status shown in the next heartbeat: generation in service and degradation
 * (reason NULL when healthy). Thread-safe. */
void activity_set_status(struct activity *act, int64_t generation, int degraded,
                         const char *reason);

/* Snapshot rebuild statistics shown in the next heartbeat. Thread-safe. */
void activity_set_rebuilds(struct activity *act, uint64_t rebuilds, uint64_t last_rebuild_us);

/* Where the serving snapshot came from ("policy.db", "postgresql",
 * "cache") and when its policy was read (Unix seconds), shown in the next
 * heartbeat. Thread-safe. */
void activity_set_snapshot(struct activity *act, const char *source, int64_t at);

/* Activity records dropped so far (queue full or activity.db unwritable). */
uint64_t activity_dropped(struct activity *act);

/* Flushes what is queued, writes a final heartbeat, stops the writer, frees;
 * sets *act to NULL. NULL-safe. */
void activity_close(struct activity **act);

#endif
