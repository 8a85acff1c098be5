/*
 * decision_line - the syslog line of a decision: "decision" then
 * key=value pairs (instance, queue_id, client, user, mech, class, tls,
 * service, outcome, policy, report_only), one grep-able line per decision.
 * Values are escaped reversibly (utf8_escape(), UTF8_ESC_KV: blanks, quotes,
 * '=', controls, invalid UTF-8 and the backslash); an empty value is written
 * "-", and a value that is "-" itself "\x2d".
 *
 * libc only: the caller logs the line (activity.c, a batch of lines at a time).
 */
#ifndef SASLGATE_DECISION_LINE_H
#define SASLGATE_DECISION_LINE_H

#include <stddef.h>

#include "decision_batch.h"
#include "utf8.h"

/* The longest line for a prefix of prefix_max bytes and texts of
 * text_bytes bytes in all: the names, every text byte escaped, the newline. */
#define DECISION_LINE_MAX(prefix_max, text_bytes)                                                  \
	((size_t)(prefix_max) + 120 + UTF8_ESCAPE_MAX((size_t)(text_bytes)))

/* Appends prefix (prefix_len bytes), the decision line of d and a newline at
 * p, which has room for DECISION_LINE_MAX; returns the end (no NUL). The
 * record's id, at, daemon, sender and generation are not part of the line. */
char *decision_line_format(char *p, const char *prefix, size_t prefix_len,
                           const struct decision_record *d);

#endif
