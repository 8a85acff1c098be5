/*
 * decision_log - reading the decision log of activity.db (log, log explain,
 * stats, prune). The daemons store decisions a batch per row of
 * decision_batches, the batch's decisions as a JSON array (schema
 * activity-003.sql); this decodes those rows in C, which is many times
 * faster than SQLite's JSON functions behind the decisions view.
 */
#ifndef SASLGATE_DECISION_LOG_H
#define SASLGATE_DECISION_LOG_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <sqlite3.h>

/* One logged decision. Texts point into its batch's buffer; NULL where the
 * daemon had nothing to record. */
struct dl_decision {
	int64_t id, at, generation;
	int tls;
	const char *daemon, *queue_id, *instance, *user, *client, *mech, *mech_class;
	const char *service, *sender, *outcome, *policy, *report_only;
};

/* A batch row being read. buf holds its daemon and its data, decoded in
 * place; a scan callback may keep it by taking buf (setting it to NULL), and
 * must then free it. */
struct dl_batch {
	int64_t id, first_at, last_at;
	char *buf;
	size_t buf_cap;
	struct dl_decision *d; /* the decisions, in id order */
	size_t n, cap;
};

/* Decodes JSON text (a batch row's data, NUL-terminated, modified in place)
 * into b->d; ids are counted from b->id. 0, or -1 if the text is not a
 * well-formed batch. */
int dl_decode(struct dl_batch *b, char *data, const char *daemon);

/* Called for each batch; return 0 to go on, 1 to stop, or a ctl status
 * (CTL_FAIL, message printed) to stop with it. */
typedef int (*dl_batch_fn)(struct dl_batch *b, void *arg);

/* Calls fn for every batch row that may hold decisions with since <= at <=
 * until, by the time of their newest decision (then id), oldest first or
 * newest_first. With a text (a user name, say), rows whose data cannot hold
 * that text as a whole JSON string are passed over without being decoded.
 * A damaged row is skipped with a warning. CTL_OK, fn's status, or CTL_FAIL
 * (message printed). */
int dl_scan(sqlite3 *db, time_t since, time_t until, int newest_first, const char *text,
            dl_batch_fn fn, void *arg);

/* Reads the batch holding decision id into b (dl_batch_free it); *out is
 * NULL when no such decision is logged. CTL_OK or CTL_FAIL. */
int dl_find(sqlite3 *db, int64_t id, struct dl_batch *b, const struct dl_decision **out);

void dl_batch_free(struct dl_batch *b);

#endif
