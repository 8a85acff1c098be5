/*
 * gate - the one path from a front end's request to a decision, shared by
 * every front end (the Postfix policy protocol, the milter, Dovecot's HTTP
 * auth policy): the policy snapshot, engine_decide(), the activity record,
 * and the on_error answer when no decision can be made; and the daemons'
 * heartbeat (the source's state and rebuild figures for status).
 *
 * An adapter only translates: its protocol into a struct request, then
 * gate_decide(), then the decision into its protocol. A failed decision
 * comes back as a decision too (what on_error says), so an adapter has one
 * translation to write, not two.
 *
 * Thread-safe: the milter calls it from many threads. A struct gate is
 * filled before the first call and read-only while calls run.
 */
#ifndef SASLGATE_GATE_H
#define SASLGATE_GATE_H

#include <time.h>

#include "activity.h"
#include "engine.h"
#include "request.h"
#include "settings.h"
#include "snapshot.h"
#include "source.h"
#include "util.h"

/* What to answer when no decision can be made (the on_error setting). */
enum gate_on_error { GATE_ON_ERROR_TEMPFAIL, GATE_ON_ERROR_ACCEPT, GATE_ON_ERROR_REJECT };

/* An SMTP reply split in its parts: "451", "4.3.0" (may be ""), the text
 * (printable ASCII). */
struct gate_reply {
	char code[4];
	char enh[16];
	char text[512];
};

/* The on_error action and its replies, from the settings. */
struct gate_fallback {
	enum gate_on_error action;
	struct gate_reply tempfail_reply; /* on_error = tempfail */
	struct gate_reply reject_reply;   /* on_error = reject */
};

struct gate {
	struct source *source;                /* not owned */
	struct activity *activity;            /* not owned */
	const struct gate_fallback *fallback; /* not owned: the daemon's settings */
};

/* The built-in on_error replies; on_error_reply replaces the one of its
 * class. */
#define GATE_TEMPFAIL_REPLY "451 4.3.0 saslgate: temporary policy error, try again later"
#define GATE_REJECT_REPLY   "550 5.3.0 saslgate: policy error, submission refused"

/* "on_error" setting text -> enum. 0, or -1 for an unknown name. */
int gate_on_error_parse(const char *name, enum gate_on_error *out);

/* The name of an on_error action ("tempfail", "accept", "reject"). */
const char *gate_on_error_name(enum gate_on_error e);

/* Parses "451 4.3.0 text" (the enhanced code is optional: "451 text"). The
 * code must be 4xx or 5xx, the enhanced code's class must agree with it and
 * the text must be printable ASCII. 0, or -1 with err. */
int gate_reply_parse(const char *text, struct gate_reply *out, struct sg_err *err);

/* The on_error action and replies from the settings on_error and
 * on_error_reply (which serves the action of its class; the other one keeps
 * its built-in reply). 0, or -1 with err naming the setting. */
int gate_fallback_from_settings(const struct settings *s, struct gate_fallback *out,
                                struct sg_err *err);

/* Decides req at now and records the decision in g->activity. snap is a
 * snapshot reference the caller holds (policyd keeps one per event-loop
 * iteration) or NULL: then one is acquired from g->source for this call.
 * When no decision can be made the failure is logged (with req's client and
 * instance) and counted, and *d holds what on_error says instead: ALLOW for
 * accept, BLOCK with the on_error reply for tempfail and reject (d->policy
 * NULL), not recorded as a decision. Returns 0 for a decision, -1 for an
 * on_error answer; either way *d must be released with decision_release(). */
int gate_decide(const struct gate *g, struct snapshot *snap, const struct request *req, time_t now,
                struct decision *d);

/* The on_error answer without a log line (the caller says what went wrong,
 * as often as it sees fit): counts the error and fills *d as gate_fail()
 * does. Returns -1. */
int gate_fallback(const struct gate *g, struct decision *d);

/* A request that cannot be decided at all (what: why, e.g. "out of memory
 * for connection state"): logs it with client and instance (either may be
 * NULL), counts it, and fills *d with the on_error answer as gate_decide()
 * does. Returns -1, for "return gate_fail(...);". */
int gate_fail(const struct gate *g, const char *what, const char *client, const char *instance,
              struct decision *d);

/* One heartbeat: picks up a committed change (or notices a broken store)
 * even when no request comes, and hands the source's generation, state,
 * rebuild figures and the snapshot's origin and age (source_stats()) to the
 * activity writer for the next heartbeat row. Returns 1 if the source is
 * degraded, else 0. */
int gate_heartbeat(const struct gate *g);

#endif
