/*
 * authpolicy - Dovecot's auth policy request (the JSON object of POST
 * /?command=allow or command=report) mapped to a struct request. Pure: a
 * parsed JSON object in, a request out; no I/O, no logging, so the daemon
 * and the fuzz target drive the same code.
 *
 * Dovecot sends the attributes named in auth_policy_request_attributes as a
 * flat object: every value a string, except the booleans "tls", "success"
 * and "policy_reject" (src/auth/auth-policy.c, 2.3.19). saslgate reads:
 *   login      -> user            remote     -> client address
 *   mech       -> mechanism       protocol   -> service (imap, pop3, smtp...)
 *   tls        -> TLS in use      session_id -> instance
 *   success, policy_reject        (command=report only)
 * Unknown attributes are ignored; a known one of the wrong type is an error
 * (the client's request is malformed). A missing "mech" is not an error
 * here: it is Dovecot's configuration that lacks mech=%m, reported through
 * authpolicy_request.missing so the daemon can say so.
 */
#ifndef SASLGATE_POLICYD_AUTHPOLICY_H
#define SASLGATE_POLICYD_AUTHPOLICY_H

#include <jansson.h>

#include "request.h"
#include "util.h"

enum authpolicy_command { AUTHPOLICY_ALLOW, AUTHPOLICY_REPORT };

/* The value of the query's "command" (allow, report). 0, or -1 if unknown. */
int authpolicy_command_parse(const char *text, enum authpolicy_command *out);

struct authpolicy_request {
	struct request req;  /* its strings are borrowed from the JSON object */
	int success;         /* report: the password or token check succeeded */
	int policy_reject;   /* report: a policy refused the login */
	const char *missing; /* a required attribute that is absent ("mech"), or NULL */
};

/* Maps obj into out. The strings in out->req point into obj and live as
 * long as it does. 0, or -1 with err naming the attribute (not an object, a
 * value of the wrong type, a string with a NUL byte). */
int authpolicy_map(const json_t *obj, enum authpolicy_command cmd, struct authpolicy_request *out,
                   struct sg_err *err);

#endif
