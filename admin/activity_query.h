/*
 * activity_query - what saslgatectl's visibility commands (report, log, stats,
 * status, prune) share: opening activity.db read-only, output formats (text,
 * JSON, CSV, Prometheus), reading daemon heartbeats, and the facts from
 * policy.db that monitoring needs (generation, exceptions, retention).
 *
 * Every function that can fail prints its message (saslgatectl style, see
 * ctl.h) and returns a ctl_status; the caller only propagates it.
 */
#ifndef SASLGATE_ACTIVITY_QUERY_H
#define SASLGATE_ACTIVITY_QUERY_H

#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <sqlite3.h>

#include "ctl.h"

enum aq_format { AQ_TEXT, AQ_JSON, AQ_CSV, AQ_PROMETHEUS };
#define AQ_ALLOW_CSV        (1u << AQ_CSV)
#define AQ_ALLOW_PROMETHEUS (1u << AQ_PROMETHEUS)

/* --format NAME: "text", "json", "csv" or "prometheus", each only if allowed
 * (text and json always are). CTL_OK, or CTL_USAGE naming --format. */
int aq_parse_format(const char *text, unsigned allowed, enum aq_format *out);
/* The effective format: --json wins over the default text. */
enum aq_format aq_format_of(const struct ctl *ctl, int format_given, enum aq_format format);

/* The outcome labels of the decision log (engine.h decision_label). 1 if valid. */
int aq_outcome_valid(const char *text);
#define AQ_OUTCOMES "block, allow, would-block, not-authenticated"

/* A positive count ("--limit 100"); 0 is allowed when allow_zero. CTL_OK or
 * CTL_USAGE naming field. */
int aq_parse_count(const char *field, const char *text, int allow_zero, int64_t *out);

/* activity.db of ctl->dir, read-only. CTL_OK or CTL_FAIL (message printed). */
int aq_open_activity(const struct ctl *ctl, sqlite3 **db);

/* Prepares sql; CTL_OK, or CTL_FAIL with SQLite's reason printed. */
int aq_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st);
/* A text column, or "" for NULL. */
const char *aq_text(sqlite3_stmt *st, int col);
/* A text column, or NULL for NULL (JSON null). */
const char *aq_text_or_null(sqlite3_stmt *st, int col);

/* CSV (RFC 4180): fields quoted when they contain a comma, quote or line
 * break. aq_csv_field writes the separator before every field but the first
 * of a row (first = 1); aq_csv_end ends the row with CRLF. */
void aq_csv_field(FILE *out, int first, const char *s);
void aq_csv_int(FILE *out, int first, int64_t v);
void aq_csv_time(FILE *out, int first, time_t t);
void aq_csv_end(FILE *out);

/* The client network of an address text as the usage table writes it
 * ("192.0.2.0/24", "2001:db8::/64"); "" when text is not an address. */
void aq_network_of(const char *addr_text, char *buf, size_t len);

/*
 * Daemon heartbeats. A heartbeat is "superseded" when another heartbeat of the
 * same program on the same host started later (at or after its last beat): the
 * daemon was restarted (after a crash the old row stays behind, not stopped)
 * and only the newest instance matters (a cleanly stopped row stays
 * "stopped"). Superseded rows are shown but never
 * alarm.
 */
enum aq_daemon_state { AQ_RUNNING, AQ_STALE, AQ_STOPPED, AQ_SUPERSEDED };
struct aq_heartbeat {
	char program[16];
	char host[256];
	int64_t pid, started_at, last_seen, generation;
	int degraded;
	char reason[512];
	int64_t requests, blocks, allows, would_blocks, not_authenticated, errors, dropped;
	int64_t rebuilds, last_rebuild_us;
	int stopped;
	int64_t seq;                /* rowid: insertion order */
	enum aq_daemon_state state; /* computed for the staleness threshold */
	int64_t age;                /* now - last_seen */
};
/* Reads every heartbeat (program, host, pid order) into a malloc'ed array and
 * classifies it: older than stale seconds and not stopped = AQ_STALE.
 * CTL_OK or CTL_FAIL. */
int aq_heartbeats(sqlite3 *db, time_t now, int64_t stale, struct aq_heartbeat **out, size_t *n);
const char *aq_daemon_state_name(enum aq_daemon_state s);

/* Dovecot's after-auth reports as the newest instance of each daemon
 * (program and host) counted them since it started (auth_results). */
struct aq_auth_result {
	char program[16];
	char host[256];
	char service[32], mech_class[12], result[16];
	int64_t count;
};
/* Reads them, ordered by program, host, service, class, result, into a
 * malloc'ed array. CTL_OK or CTL_FAIL. */
int aq_auth_results(sqlite3 *db, struct aq_auth_result **out, size_t *n);

/* Facts from policy.db (opened read-only, as the daemons open it). */
struct aq_policy_facts {
	int ok; /* 0: policy.db unreadable, see error */
	char error[SG_ERR_MAX];
	int schema_version;
	int64_t generation;
	int64_t exceptions_active;   /* not expired at now */
	int64_t exceptions_expiring; /* active and expiring within the horizon */
	int64_t retention_days;      /* activity_retention_days, default 90 */
};
/* Never fails: an unreadable policy.db gives ok = 0 and the reason. */
void aq_policy_facts(const struct ctl *ctl, int64_t expiring_within, struct aq_policy_facts *f);

#define AQ_DEFAULT_RETENTION_DAYS 90

#endif
