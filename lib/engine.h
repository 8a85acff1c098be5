/*
 * engine - the decision function of DESIGN.md, shared by saslgate-policyd,
 * saslgate-milter and "saslgatectl explain". Pure: (snapshot, request, now) ->
 * decision and trace. No I/O, no globals, re-entrant.
 */
#ifndef SASLGATE_ENGINE_H
#define SASLGATE_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "mech.h"
#include "request.h"
#include "snapshot.h"

enum outcome { OUTCOME_NOT_AUTHENTICATED, OUTCOME_ALLOW, OUTCOME_BLOCK };

/* Why a policy did (not) apply to the request, in evaluation order. */
enum trace_status {
	TRACE_OFF,         /* policy state off */
	TRACE_NOT_APPLIED, /* a condition failed: see failed/detail */
	TRACE_EXCEPTED,    /* applied, but an active exception matched */
	TRACE_APPLIED      /* applied: blocks (enforcing) or would block (report-only) */
};

enum trace_condition {
	COND_NONE,
	COND_MECH,
	COND_USER_INCLUDE,
	COND_USER_EXCLUDE,
	COND_LOCATION_INCLUDE,
	COND_LOCATION_EXCLUDE,
	COND_TLS,
	COND_SERVICE
};

#define TRACE_EXPIRED_MAX 8

struct trace_entry {
	const char *policy; /* owned by the snapshot */
	enum trace_status status;
	int enforcing; /* effective state now: 1 enforce, 0 report-only */
	enum trace_condition failed;
	char detail[768];     /* human-readable reason for the status */
	int64_t exception_id; /* the excepting exception (TRACE_EXCEPTED), else 0 */
	int64_t expired_ids[TRACE_EXPIRED_MAX]; /* matching but expired exceptions */
	size_t n_expired;
};

struct decision {
	enum outcome outcome;
	enum mech_class mech_class; /* valid unless NOT_AUTHENTICATED */
	const char *policy;         /* the blocking policy (owned by the snapshot) or NULL */
	char reply_code[4];         /* "550" */
	char reply_enh[16];         /* "5.7.9" */
	char reply_text[512];       /* %m expanded, printable ASCII only */
	size_t n_report_only;       /* report-only policies that would have blocked */
	char report_only[256];      /* their names, comma-separated (truncated with "...") */
	struct trace_entry *trace;  /* one per policy, by name; only if want_trace */
	size_t n_trace;
};

/* Decides. The snapshot must stay referenced while the decision (its policy
 * and trace names) is used. With want_trace the trace is allocated and must be
 * released with decision_release(). Returns 0, or -1 on allocation failure
 * (the decision is then unusable: apply on_error). */
int engine_decide(const struct snapshot *snap, const struct request *req, time_t now,
                  int want_trace, struct decision *out);

/* Frees the trace of a decision (if any); safe to call twice. */
void decision_release(struct decision *d);

/* "not-authenticated", "allow", "block". */
const char *outcome_name(enum outcome o);
/* The outcome recorded in logs: "block", "allow", "would-block" (allowed but a
 * report-only policy applied) or "not-authenticated". */
const char *decision_label(const struct decision *d);
/* "off", "not-applied", "excepted", "applied". */
const char *trace_status_name(enum trace_status s);
/* "mechanism", "user", "user-excluded", "location", "location-excluded", "tls", "service". */
const char *trace_condition_name(enum trace_condition c);

#endif
