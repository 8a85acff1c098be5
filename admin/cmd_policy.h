/*
 * cmd_policy - the policy commands; what import shares with them.
 */
#ifndef SASLGATE_CMD_POLICY_H
#define SASLGATE_CMD_POLICY_H

#include <sqlite3.h>

#include "ctl.h"
#include "json.h"
#include "store_admin.h"

/* The policy options as typed; NULL = not given. */
struct policy_opts {
	const char *state, *enforce_from, *mech, *include_users, *include_groups;
	const char *exclude_users, *exclude_groups, *include_locations, *exclude_locations;
	const char *tls, *services, *reply;
};

/* Validates o against the store and applies it to p; ctx NULL names fields by
 * option ("--state"), else by JSON key ("policies[2] (name).state"). is_new:
 * p is a new policy with defaults. A ctl_status (message printed). */
int ctl_policy_apply(sqlite3 *db, const struct ctl *ctl, const char *ctx, struct sa_policy *p,
                     const struct policy_opts *o, int is_new);

/* Writes the policy as a JSON object (the export format). */
void ctl_policy_json(struct json *j, const struct sa_policy *p);

#endif
