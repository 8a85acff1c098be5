/*
 * activity_store - activity.db, the store of what the daemons did: the
 * decision log (batches of decisions, lib/decision_batch.h), the usage table
 * (user x mechanism x client network), daemon heartbeats and Dovecot's
 * after-auth tallies. Every statement that writes, reads or prunes it is
 * here: the daemons' writer (lib/activity.c) and saslgatectl's reports call
 * these functions, and nothing else knows its SQL. A second backend
 * (PostgreSQL, for a fleet) implements this header.
 *
 * The second backend is lib/activity_store_pg.c: the fleet's activity in
 * PostgreSQL (the fleet_* tables of schema/pg/policy-002.sql and -003.sql), which every
 * host's daemons deliver their activity.db into. It implements the reads
 * and the pruning, not the daemons' writer (begin, commit, next_decision_id,
 * add_batch, add_usage, put_heartbeat and put_auth_counts are SQLite's
 * only); its decisions and usage rows name the host they come from.
 *
 * A handle is used by one thread at a time. Functions that can fail return
 * 0 (or what they say) and -1 with the backend's reason in err; callers add
 * their context ("activity.db: ..."). Texts handed to a callback are
 * borrowed for the call.
 */
#ifndef SASLGATE_ACTIVITY_STORE_H
#define SASLGATE_ACTIVITY_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "decision_batch.h"
#include "util.h"

struct activity_store;

enum activity_store_mode {
	ACTIVITY_STORE_READ,  /* saslgatectl's reports: the file must exist */
	ACTIVITY_STORE_WRITE, /* the daemons' writer, prune: created, migrated */
};

/* Opens activity.db in dir. 0, or -1 with err (naming the file). */
int activity_store_open(const char *dir, enum activity_store_mode mode, struct activity_store **out,
                        struct sg_err *err);

/* Opens the fleet's activity in PostgreSQL; conninfo as store_pg.h takes
 * it. READ needs the fleet tables to be there (schema version 2); WRITE
 * is for prune. 0, or -1 with err (libpq's reason, on one line). */
int activity_store_open_pg(const char *conninfo, enum activity_store_mode mode,
                           struct activity_store **out, struct sg_err *err);

/* 1 if as is the fleet's store (PostgreSQL): decisions, batches and usage
 * rows then carry their host, and decision ids are per host. */
int activity_store_fleet(const struct activity_store *as);

/* How messages name the store: "activity.db", or the fleet's store as
 * store_pg_label() names it. */
const char *activity_store_name(const struct activity_store *as);

/* Closes (NULL-safe) and sets *as to NULL. */
void activity_store_close(struct activity_store **as);

/* The schema version recorded in the file (the fleet's: PostgreSQL's
 * schema version); -1 on error. */
int activity_store_schema_version(struct activity_store *as);

/* The integrity check (reads the whole file; the fleet's: its tables are
 * there). 0 if clean; -1 with the first problem in err. */
int activity_store_check(struct activity_store *as, struct sg_err *err);

/* A read transaction, so that several reads see one state (the fleet's:
 * REPEATABLE READ, READ ONLY); never fails visibly (a read outside it
 * still works). */
void activity_store_read_begin(struct activity_store *as);
void activity_store_read_end(struct activity_store *as);

/* A write transaction (the writer's batch). rollback never fails visibly. */
int activity_store_begin(struct activity_store *as, struct sg_err *err);
int activity_store_commit(struct activity_store *as, struct sg_err *err);
void activity_store_rollback(struct activity_store *as);

/* ------------------------------------------------------ the decision log */

/* Inside a write transaction: the id of the next decision (1 in an empty
 * log), so that two daemons writing to one activity.db never share an id. */
int activity_store_next_decision_id(struct activity_store *as, int64_t *id, struct sg_err *err);

/* Inside a write transaction: stores a batch of n decisions with the ids
 * first_id .. first_id + n - 1, written by daemon, whose times span
 * first_at .. last_at; text (len bytes) is the batch's encoding. */
int activity_store_add_batch(struct activity_store *as, int64_t first_id, const char *daemon,
                             int64_t first_at, int64_t last_at, int n, const char *text, size_t len,
                             struct sg_err *err);

/* Called for each batch; nonzero stops the scan (not an error). The callback
 * may keep the batch's text by taking b->buf (setting it to NULL): the
 * decisions point into it; it must then free it. */
typedef int (*activity_batch_fn)(struct decision_batch *b, void *arg);

/* Which batches a scan reads, and what it found damaged. */
struct activity_scan {
	time_t since, until; /* batches that may hold decisions with since <= at <= until */
	int newest_first;    /* by the time of their newest decision (then id) */
	const char *text;    /* NULL, or a text (a user name) the decisions must hold */
	size_t damaged;      /* out: batches that could not be decoded, skipped */
	int64_t damaged_id;  /* out: the first of them */
};

/* Calls fn for every batch of the scan, decoded, in its order. With a text,
 * batches whose encoding cannot hold it as a whole string are passed over
 * undecoded (the decisions of the others are not filtered). 0 (also when fn
 * stopped it), or -1 with err. */
int activity_store_scan(struct activity_store *as, struct activity_scan *scan, activity_batch_fn fn,
                        void *arg, struct sg_err *err);

/* Reads the batch holding decision id into b (decision_batch_free it): 1 and
 * *out the decision, 0 when no such decision is logged (pruned), -1 with
 * err (a damaged batch included). On the fleet's store, where ids are per
 * host, it is -1 when several hosts have decision id (err names them). */
int activity_store_find_decision(struct activity_store *as, int64_t id, struct decision_batch *b,
                                 const struct decision_record **out, struct sg_err *err);

/* The same for decision id of host (the fleet's store; elsewhere host is
 * ignored). */
int activity_store_find_host_decision(struct activity_store *as, const char *host, int64_t id,
                                      struct decision_batch *b, const struct decision_record **out,
                                      struct sg_err *err);

/* Counts what is older than cutoff: decisions of batches whose newest
 * decision is older, and heartbeats last seen before it. */
int activity_store_count_older(struct activity_store *as, time_t cutoff, int64_t *decisions,
                               int64_t *heartbeats, struct sg_err *err);

/* One transaction: deletes the oldest batches whose every decision is older
 * than cutoff, max decisions' worth (at least one batch); *n receives the
 * decisions deleted, 0 when none was left. */
int activity_store_prune_decisions(struct activity_store *as, time_t cutoff, int64_t max,
                                   int64_t *n, struct sg_err *err);

/* One transaction: deletes the heartbeats last seen before cutoff; *n
 * receives how many. */
int activity_store_prune_heartbeats(struct activity_store *as, time_t cutoff, int64_t *n,
                                    struct sg_err *err);

/* ------------------------------------------------------ the usage table */

/* A row of the usage table: the submissions of one user with one mechanism
 * from one client network, and the newest of them. Reading gives "" for an
 * absent text, except last_client: NULL when the row keeps no newest
 * submission (written before activity.db schema 2); writing stores NULL
 * for an empty or NULL last_client and last_service.
 *
 * On the fleet's store a row sums the rows of every host for its user,
 * mechanism and network (count added, first and last seen widened, the
 * newest submission's fields from the host that saw it last): host is that
 * host, hosts every host that has the row (comma-separated, sorted). Both
 * are NULL from activity.db. */
struct activity_usage_row {
	const char *user, *mech, *network, *mech_class, *last_outcome;
	const char *last_client, *last_service;
	const char *host, *hosts;
	int64_t first_seen, last_seen, count;
	int last_tls;
};

/* Inside a write transaction: adds u's submissions to its row (count
 * added, first and last seen widened; the newest submission's fields follow
 * the newer of the two). */
int activity_store_add_usage(struct activity_store *as, const struct activity_usage_row *u,
                             struct sg_err *err);

/* Which rows activity_store_usage_legacy reads: those not of the modern
 * class last seen at or after since, of mechanism class mech_class and
 * mechanism mech where they are not NULL, and whose user keep_user (called
 * with keep_arg) keeps, asked before the rest of the row is read, where it
 * is not NULL. */
struct activity_usage_query {
	time_t since;
	const char *mech_class, *mech;
	int (*keep_user)(const char *user, void *keep_arg);
	void *keep_arg;
};

/* Calls fn for each row of q (unordered); nonzero from fn stops. 0, or -1
 * with err. */
int activity_store_usage_legacy(struct activity_store *as, const struct activity_usage_query *q,
                                int (*fn)(const struct activity_usage_row *u, void *arg), void *arg,
                                struct sg_err *err);

/* The distinct users of rows not of the modern class last seen within
 * since .. until. */
int activity_store_count_legacy_users(struct activity_store *as, time_t since, time_t until,
                                      int64_t *n, struct sg_err *err);

/* Calls fn for each user who moved in the period: a first modern use at or
 * after since, and no non-modern use after it; newest move first. */
int activity_store_usage_moved(struct activity_store *as, time_t since,
                               int (*fn)(const char *user, void *arg), void *arg,
                               struct sg_err *err);

/* ------------------------------------------------------ heartbeats */

/*
 * A daemon's heartbeat. A heartbeat is "superseded" when another heartbeat of
 * the same program on the same host started later (at or after its last
 * beat): the daemon was restarted (after a crash the old row stays behind,
 * not stopped) and only the newest instance matters (a cleanly stopped row
 * stays "stopped"). Superseded rows are shown but never alarm.
 */
enum activity_daemon_state {
	ACTIVITY_RUNNING,
	ACTIVITY_STALE,
	ACTIVITY_STOPPED,
	ACTIVITY_SUPERSEDED
};

struct activity_heartbeat {
	char program[16];
	char host[256];
	int64_t pid, started_at, last_seen, generation;
	int degraded;
	char reason[512];
	int64_t requests, blocks, allows, would_blocks, not_authenticated, errors, dropped;
	int64_t rebuilds, last_rebuild_us;
	int stopped;
	/* Where the serving snapshot came from: "postgresql", "cache" or
	 * "policy.db" ("" unknown: a row of an older saslgate), and when its
	 * policy was read (Unix seconds, 0 unknown); see source_stats(). */
	char snapshot_source[16];
	int64_t snapshot_at;
	/* read only: */
	int64_t seq;                      /* insertion order */
	enum activity_daemon_state state; /* see activity_store_heartbeats */
	int64_t age;                      /* now - last_seen, at least 0 */
};

/* Writes h as the heartbeat of (program, host, pid), replacing the last. */
int activity_store_put_heartbeat(struct activity_store *as, const struct activity_heartbeat *h,
                                 struct sg_err *err);

/* Reads every heartbeat (program, host, start order) into a malloc'ed
 * array and classifies it at now: older than stale seconds and not stopped
 * is ACTIVITY_STALE. */
int activity_store_heartbeats(struct activity_store *as, time_t now, int64_t stale,
                              struct activity_heartbeat **out, size_t *n, struct sg_err *err);

/* "running", "stale", "stopped" or "superseded". */
const char *activity_daemon_state_name(enum activity_daemon_state s);

/* ------------------------------------------------------ Dovecot's reports */

/* Dovecot's after-auth reports of one service, mechanism class and result. */
struct activity_auth_count {
	char service[32], mech_class[12], result[16];
	uint64_t n;
};

/* Writes a daemon's totals since it started, one row per key. */
int activity_store_put_auth_counts(struct activity_store *as, const char *program, const char *host,
                                   int64_t pid, const struct activity_auth_count *c, size_t n,
                                   struct sg_err *err);

/* The totals of the newest instance of each daemon (program and host). */
struct activity_auth_result {
	char program[16];
	char host[256];
	char service[32], mech_class[12], result[16];
	int64_t count;
};

/* Reads them, ordered by program, host, service, class, result, into a
 * malloc'ed array. */
int activity_store_auth_results(struct activity_store *as, struct activity_auth_result **out,
                                size_t *n, struct sg_err *err);

/* ------------------------------------------------------ the fleet spool */

/*
 * On a fleet host (a PostgreSQL store) activity.db is also the spool of
 * what the daemons deliver to PostgreSQL (schema activity-006.sql,
 * lib/fleet_ship.h): the writer adds a spool row, in the transaction of the
 * decisions and usage it records, naming those decisions (by id) and
 * holding that usage; the deliverer reads the rows of its host in order and
 * deletes them once PostgreSQL has committed them. Texts a callback gets
 * are borrowed for the call.
 */

/* Inside a write transaction, after activity_store_next_decision_id():
 * raises *id to the spool's next id, so that a fleet host never gives a
 * decision id twice, even after a prune emptied the log. */
int activity_store_spool_next_id(struct activity_store *as, int64_t *id, struct sg_err *err);

/* Inside a write transaction: a spool row of host for the n decisions
 * first_id .. first_id + n - 1 (n may be 0: usage only), unless the spool
 * would then hold more than max decisions. 1 with *seq the row's sequence
 * number, 0 when full (nothing added), -1 with err. */
int activity_store_spool_add(struct activity_store *as, const char *host, int64_t first_id,
                             int64_t n, int64_t at, int64_t max, int64_t *seq, struct sg_err *err);

/* Inside the same transaction: usage u, as added to the usage table, is
 * part of spool row seq. */
int activity_store_spool_add_usage(struct activity_store *as, int64_t seq,
                                   const struct activity_usage_row *u, struct sg_err *err);

/* The spool's token (which names this activity.db in PostgreSQL, with its
 * directory; at least 17 bytes) and the decisions it holds. */
int activity_store_spool_state(struct activity_store *as, char *token, size_t len, int64_t *pending,
                               struct sg_err *err);

/* A spool row. */
struct activity_spool_row {
	int64_t seq, first_id, n, at;
};

/* Calls fn for host's oldest spool rows, at most limit, in seq order;
 * nonzero from fn stops. 0, or -1 with err. */
int activity_store_spool_rows(struct activity_store *as, const char *host, int64_t limit,
                              int (*fn)(const struct activity_spool_row *r, void *arg), void *arg,
                              struct sg_err *err);

/* Calls fn for each usage row of spool row seq. */
int activity_store_spool_usage(struct activity_store *as, int64_t seq,
                               int (*fn)(const struct activity_usage_row *u, void *arg), void *arg,
                               struct sg_err *err);

/* A decision batch as stored: its encoding undecoded (len bytes; kept as
 * the writer gave them, invalid UTF-8 included). */
struct activity_raw_batch {
	int64_t id, first_at, last_at;
	int n;
	const char *daemon;
	const char *data;
	size_t len;
};

/* Calls fn for each batch whose first id is in first_id .. first_id + n -
 * 1, in id order (a batch pruned meanwhile is not there). */
int activity_store_spool_batches(struct activity_store *as, int64_t first_id, int64_t n,
                                 int (*fn)(const struct activity_raw_batch *b, void *arg),
                                 void *arg, struct sg_err *err);

/* Calls fn for each heartbeat of host last seen at or after since (its seq
 * and state are not set). */
int activity_store_spool_heartbeats(struct activity_store *as, const char *host, int64_t since,
                                    int (*fn)(const struct activity_heartbeat *h, void *arg),
                                    void *arg, struct sg_err *err);

/* Calls fn for each of Dovecot's report totals of a daemon of host whose
 * heartbeat was last seen at or after since. */
int activity_store_spool_auth(struct activity_store *as, const char *host, int64_t since,
                              int (*fn)(const char *program, int64_t pid,
                                        const struct activity_auth_count *c, void *arg),
                              void *arg, struct sg_err *err);

/* One transaction: deletes host's spool rows up to seq (delivered) with
 * their usage; *decisions receives the decisions they named. */
int activity_store_spool_delete(struct activity_store *as, const char *host, int64_t seq,
                                int64_t *decisions, struct sg_err *err);

#endif
