/*
 * activity_store_pg - the fleet's activity in PostgreSQL, the second backend
 * of activity_store.h (read by saslgatectl; the daemons deliver into it).
 * Private to lib/activity_store.c, whose functions dispatch here when the
 * handle was opened with activity_store_open_pg(): the contracts are those
 * of activity_store.h, with the differences stated here.
 *
 * The tables are those of schema/pg/policy-002.sql. Results are read in
 * binary, so that the bytea columns (user names, batches) come back byte
 * for byte, invalid UTF-8 included, as activity.db keeps them.
 */
#ifndef SASLGATE_ACTIVITY_STORE_PG_H
#define SASLGATE_ACTIVITY_STORE_PG_H

#include "activity_store.h"

struct activity_store_pg;

/* Connects (store_pg_connect) and checks that the fleet tables are there.
 * 0, or -1 with err. */
int activity_store_pg_open(const char *conninfo, struct activity_store_pg **out,
                           struct sg_err *err);
void activity_store_pg_close(struct activity_store_pg **pg);

/* How messages name the store (store_pg_label). */
const char *activity_store_pg_name(const struct activity_store_pg *pg);

int activity_store_pg_schema_version(struct activity_store_pg *pg);
int activity_store_pg_check(struct activity_store_pg *pg, struct sg_err *err);
void activity_store_pg_read_begin(struct activity_store_pg *pg);
void activity_store_pg_read_end(struct activity_store_pg *pg);

/* needle: NULL, or the quoted text a batch's encoding must hold. */
int activity_store_pg_scan(struct activity_store_pg *pg, struct activity_scan *scan,
                           const char *needle, activity_batch_fn fn, void *arg, struct sg_err *err);
/* host NULL: any host, and an error when several have decision id. */
int activity_store_pg_find_decision(struct activity_store_pg *pg, const char *host, int64_t id,
                                    struct decision_batch *b, const struct decision_record **out,
                                    struct sg_err *err);
int activity_store_pg_count_older(struct activity_store_pg *pg, time_t cutoff, int64_t *decisions,
                                  int64_t *heartbeats, struct sg_err *err);
int activity_store_pg_prune_decisions(struct activity_store_pg *pg, time_t cutoff, int64_t max,
                                      int64_t *n, struct sg_err *err);
int activity_store_pg_prune_heartbeats(struct activity_store_pg *pg, time_t cutoff, int64_t *n,
                                       struct sg_err *err);

int activity_store_pg_usage_legacy(struct activity_store_pg *pg,
                                   const struct activity_usage_query *q,
                                   int (*fn)(const struct activity_usage_row *u, void *arg),
                                   void *arg, struct sg_err *err);
int activity_store_pg_count_legacy_users(struct activity_store_pg *pg, time_t since, time_t until,
                                         int64_t *n, struct sg_err *err);
int activity_store_pg_usage_moved(struct activity_store_pg *pg, time_t since,
                                  int (*fn)(const char *user, void *arg), void *arg,
                                  struct sg_err *err);

/* Every heartbeat, ordered as activity_store_heartbeats() orders them, with
 * seq their position; not classified (the caller does, as for SQLite). */
int activity_store_pg_heartbeats(struct activity_store_pg *pg, struct activity_heartbeat **out,
                                 size_t *n, struct sg_err *err);
int activity_store_pg_auth_results(struct activity_store_pg *pg, struct activity_auth_result **out,
                                   size_t *n, struct sg_err *err);

#endif
