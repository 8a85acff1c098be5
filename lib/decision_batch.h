/*
 * decision_batch - the text format of the decision log: a batch of decisions
 * as one JSON array, each decision an array of the fields of
 * DECISION_BATCH_FIELDS in that order (schema activity-003.sql stores it in
 * decision_batches.data). The daemons' writer encodes batches, saslgatectl
 * decodes them; both are written from the one field list below, so the order
 * cannot drift between them.
 *
 * The encoder writes a restricted JSON: numbers, null for an empty text, and
 * strings whose only escapes are \" \\ and \u00XX for control bytes; every
 * other byte is kept as it came, bytes that are not valid UTF-8 included (the
 * text is what was submitted, and SQLite's JSON functions pass such bytes
 * through). The decoder takes any JSON string syntax (rows inserted through
 * the decisions view were written by SQLite's json_array()), any text
 * (tests/fuzz/fuzz_decision_batch.c), and ignores fields after the last one
 * it knows (a later version's).
 *
 * libc only: no SQL, no I/O.
 */
#ifndef SASLGATE_DECISION_BATCH_H
#define SASLGATE_DECISION_BATCH_H

#include <stddef.h>
#include <stdint.h>

/*
 * The fields of a decision in a batch, in their order: X(NAME, member, kind)
 * with kind INT (a JSON integer), BOOL (0 or 1) or TEXT (a string, or null
 * when empty). member names the field of struct decision_record.
 */
#define DECISION_BATCH_FIELDS(X)                                                                   \
	X(AT, at, INT)                                                                             \
	X(QUEUE_ID, queue_id, TEXT)                                                                \
	X(INSTANCE, instance, TEXT)                                                                \
	X(USER, user, TEXT)                                                                        \
	X(CLIENT, client, TEXT)                                                                    \
	X(MECH, mech, TEXT)                                                                        \
	X(MECH_CLASS, mech_class, TEXT)                                                            \
	X(TLS, tls, BOOL)                                                                          \
	X(SERVICE, service, TEXT)                                                                  \
	X(SENDER, sender, TEXT)                                                                    \
	X(OUTCOME, outcome, TEXT)                                                                  \
	X(POLICY, policy, TEXT)                                                                    \
	X(REPORT_ONLY, report_only, TEXT)                                                          \
	X(GENERATION, generation, INT)

/* The position of each field in a decision's array (DECISION_FIELD_USER...). */
enum decision_field {
#define DECISION_FIELD_ENUM(NAME, member, kind) DECISION_FIELD_##NAME,
	DECISION_BATCH_FIELDS(DECISION_FIELD_ENUM)
#undef DECISION_FIELD_ENUM
	    DECISION_FIELDS
};

/*
 * One decision as the decision log keeps it. Texts are NUL-terminated; NULL
 * (or "", when encoding) where the daemon had nothing to record. id,
 * daemon and host are not part of a decision's array: they come from its
 * batch row (host: the fleet's store only, NULL in a host's activity.db).
 */
struct decision_record {
	int64_t id, at, generation;
	int tls;
	const char *host, *daemon, *queue_id, *instance, *user, *client, *mech, *mech_class;
	const char *service, *sender, *outcome, *policy, *report_only;
};

/* The longest encoding of one decision whose texts hold text_bytes bytes in
 * all: each byte possibly escaped as \u00XX, plus numbers, quotes, commas. */
#define DECISION_BATCH_ENCODED_MAX(text_bytes) (6 * (size_t)(text_bytes) + 128)

/* Appends d as a decision's JSON array at p, which has room for
 * DECISION_BATCH_ENCODED_MAX of d's texts; returns the end (not terminated).
 * A batch is '[' then the decisions separated by ',' then ']'. */
char *decision_batch_encode(char *p, const struct decision_record *d);

/* A decoded batch: its decisions, in id order. Texts point into the text
 * that was decoded (in place), which must outlive them. */
struct decision_batch {
	int64_t id, first_at, last_at; /* of the batch row */
	const char *host;              /* of the batch row: the fleet's only, else NULL */
	struct decision_record *d;
	size_t n, cap;
	char *buf; /* the row's text, owned, for whoever loaded it; may be NULL */
	size_t buf_cap;
};

/* Decodes a batch's text (NUL-terminated, modified in place) into b->d,
 * replacing what b held; ids are counted from b->id, and every decision's
 * daemon is daemon and host b->host (both borrowed). 0, or -1 if the text is not a well-formed
 * batch (b->n is then meaningless). */
int decision_batch_decode(struct decision_batch *b, char *text, const char *daemon);

/* Frees the decisions and buf and zeroes *b. */
void decision_batch_free(struct decision_batch *b);

#endif
