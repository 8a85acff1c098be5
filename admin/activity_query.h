/*
 * activity_query - what saslgatectl's visibility commands (report, log, stats,
 * status, prune) share: opening activity.db (lib/activity_store.h, which
 * holds every statement on it), scanning the decision log, output formats
 * (text, JSON, CSV, Prometheus), and the facts from policy.db that
 * monitoring needs (generation, exceptions, retention).
 *
 * Every function that can fail prints its message (saslgatectl style, see
 * ctl.h) and returns a ctl_status; the caller only propagates it.
 */
#ifndef SASLGATE_ACTIVITY_QUERY_H
#define SASLGATE_ACTIVITY_QUERY_H

#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "activity_store.h"
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

/* activity.db of ctl->dir, read-only or (prune) for writing; with --store
 * (ctl->store) the fleet's activity in PostgreSQL instead. CTL_OK or
 * CTL_FAIL (message printed). */
int aq_open_activity(const struct ctl *ctl, enum activity_store_mode mode,
                     struct activity_store **as);

/* Prints "activity.db: REASON" (or the fleet's store's name) for a failed
 * activity_store call on as; CTL_FAIL. */
int aq_store_fail(const struct activity_store *as, const struct sg_err *err);

/* activity_store_scan() of since .. until (see there), with a warning on
 * stderr when it skipped damaged batches. CTL_OK or CTL_FAIL (message
 * printed). */
int aq_scan(struct activity_store *as, time_t since, time_t until, int newest_first,
            const char *text, activity_batch_fn fn, void *arg);

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

/* Facts from policy.db (opened read-only, as the daemons open it), or,
 * where there is none, from the daemons' copy of the PostgreSQL store's
 * policy (policy-cache.db). */
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

#endif
