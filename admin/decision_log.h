/*
 * decision_log - reading the decision log of activity.db (log, log explain,
 * stats, report html). The daemons store decisions a batch per row of
 * decision_batches (lib/decision_batch.h), decoded in C, which is many times
 * faster than SQLite's JSON functions behind the decisions view. A scan
 * callback may keep a batch's text by taking b->buf (setting it to NULL),
 * and must then free it.
 */
#ifndef SASLGATE_DECISION_LOG_H
#define SASLGATE_DECISION_LOG_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <sqlite3.h>

#include "decision_batch.h"

/* Called for each batch; return 0 to go on, 1 to stop, or a ctl status
 * (CTL_FAIL, message printed) to stop with it. */
typedef int (*dl_batch_fn)(struct decision_batch *b, void *arg);

/* Calls fn for every batch row that may hold decisions with since <= at <=
 * until, by the time of their newest decision (then id), oldest first or
 * newest_first. With a text (a user name, say), rows whose data cannot hold
 * that text as a whole JSON string are passed over without being decoded.
 * A damaged row is skipped with a warning. CTL_OK, fn's status, or CTL_FAIL
 * (message printed). */
int dl_scan(sqlite3 *db, time_t since, time_t until, int newest_first, const char *text,
            dl_batch_fn fn, void *arg);

/* Reads the batch holding decision id into b (decision_batch_free it); *out is
 * NULL when no such decision is logged. CTL_OK or CTL_FAIL. */
int dl_find(sqlite3 *db, int64_t id, struct decision_batch *b, const struct decision_record **out);

#endif
