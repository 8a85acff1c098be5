/*
 * fleet_ship - a fleet host's deliverer: what the daemon's activity writer
 * recorded in DIR/activity.db (decision batches, usage, heartbeats,
 * Dovecot's report totals) copied to the fleet_* tables of PostgreSQL
 * (schema/pg/policy-002.sql, -003.sql), keyed by host, each decision and each usage
 * count exactly once.
 *
 * activity.db is the spool (activity_store.h, "the fleet spool"): the
 * writer adds a spool row in the same transaction as what it records. The
 * deliverer runs in a thread of its own with its own PostgreSQL connection
 * and its own activity.db handle, never on the request path and never
 * holding the writer. One round is one PostgreSQL transaction: it locks
 * fleet_delivery's row of (host, spool) FOR UPDATE (creating it), applies
 * the spool rows after its last_seq in order (batches inserted, usage added
 * to), upserts the heartbeats and report totals (latest state), sets
 * last_seq, commits; then the delivered rows are deleted locally. A process
 * that dies between PostgreSQL's commit and that delete finds, after a
 * restart, last_seq already past those rows and only deletes them; two
 * daemons sharing one activity.db wait for each other on the row lock and
 * never apply a row twice.
 *
 * While PostgreSQL cannot be reached (or refuses a round) the spool grows;
 * the failure is logged once and its end once, and the connection is tried
 * again with the backoff of store_pg.h.
 */
#ifndef SASLGATE_FLEET_SHIP_H
#define SASLGATE_FLEET_SHIP_H

#include "util.h"

struct fleet_ship;

struct fleet_ship_options {
	const char *conninfo; /* the PostgreSQL store (a libpq connection string) */
	const char *dir;      /* the store directory: DIR/activity.db */
	const char *host;     /* this host's name, as in its heartbeats */
	const char *program;  /* application_name, "saslgate-policyd" */
	unsigned interval_s;  /* a round at least this often (the heartbeat interval) */
};

/* Starts the deliverer; it connects on its own (failing to connect is not
 * an error here). Environment, for the tests only:
 * SASLGATE_TEST_FLEET_KILL_AFTER_COMMIT=1 makes the process SIGKILL itself
 * right after the first COMMIT that delivered spool rows, before it deletes
 * them. NULL with err when the thread cannot start. */
struct fleet_ship *fleet_ship_start(const struct fleet_ship_options *opt, struct sg_err *err);

/* Something new was committed to the spool: deliver soon. Thread-safe,
 * never blocks for long. */
void fleet_ship_kick(struct fleet_ship *fs);

/* A last round (if PostgreSQL is reachable, for a few seconds at most),
 * then stops the thread and frees; sets *fs to NULL. NULL-safe. */
void fleet_ship_stop(struct fleet_ship **fs);

#endif
