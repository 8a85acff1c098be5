/*
 * snapshot - the compiled, immutable form of policy.db that the engine decides
 * with: the catalogue, groups and locations resolved, policies sorted by name,
 * exceptions indexed by user (exact, domain, glob), by group member and by
 * location (prefix tree), so a decision never scans the exceptions.
 *
 * A snapshot is built either from the store (snapshot_load) or piece by piece
 * (the builder, used by the loader, the golden tests and the benchmarks). Once
 * built it is never modified; it is shared by reference count across threads.
 */
#ifndef SASLGATE_SNAPSHOT_H
#define SASLGATE_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <sqlite3.h>

#include "mech.h"
#include "util.h"

enum policy_state { POLICY_OFF, POLICY_REPORT_ONLY, POLICY_ENFORCE };
enum tls_condition { TLS_ANY, TLS_PLAINTEXT, TLS_ENCRYPTED };

/* "off", "report-only", "enforce" / "any", "plaintext", "encrypted". */
const char *policy_state_name(enum policy_state s);
int policy_state_parse(const char *name, enum policy_state *out);
const char *tls_condition_name(enum tls_condition t);
int tls_condition_parse(const char *name, enum tls_condition *out);

/*
 * A policy as stored: lists are comma-separated text exactly as in policy.db.
 *   mechs: classes and/or mechanism names ("legacy", "legacy,XOAUTH2"); empty = legacy
 *   include_users: "all" or patterns; include_groups: group names
 *   exclude_users / exclude_groups: patterns / group names (may be empty)
 *   include_locations: "any" or location names; exclude_locations: names
 *   services: "any" or service names
 *   reply_code "550", reply_enh "5.7.9", reply_text (may contain %m)
 * A user is included when include_users is "all", or matches include_users,
 * or belongs to an include group.
 */
struct policy_def {
	const char *name;
	enum policy_state state;
	time_t enforce_from; /* 0 = none */
	const char *mechs;
	const char *include_users;
	const char *include_groups;
	const char *exclude_users;
	const char *exclude_groups;
	const char *include_locations;
	const char *exclude_locations;
	enum tls_condition tls;
	const char *services;
	const char *reply_code;
	const char *reply_enh;
	const char *reply_text;
};

/* An exception as stored. At least one of user_pattern, group and location. */
struct exception_def {
	int64_t id;
	const char *policy;       /* NULL or "" = every policy */
	const char *user_pattern; /* NULL/"" = none */
	const char *group;        /* NULL/"" = none */
	const char *location;     /* NULL/"" = any location */
	const char *mechs;        /* NULL/"" = every mechanism; else names and/or classes */
	const char *reason;
	const char *created_by;
	time_t created_at;
	time_t expires_at; /* 0 = permanent */
};

/* The default reply of a policy. */
#define POLICY_DEFAULT_REPLY_CODE "550"
#define POLICY_DEFAULT_REPLY_ENH  "5.7.9"
#define POLICY_DEFAULT_REPLY_TEXT                                                                  \
	"Authentication mechanism %m is not allowed; use OAuth2 (XOAUTH2/OAUTHBEARER)"

/* Validates a reply: code 4xx/5xx, enhanced code class.subject.detail whose class
 * agrees with the code, printable text without CR/LF. 0 or -1 with err naming
 * the part at fault. */
int policy_reply_valid(const char *code, const char *enh, const char *text, struct sg_err *err);

struct snapshot;
struct snapshot_builder;

struct snapshot_builder *snapshot_builder_new(void);
/* Each add function validates its input and returns 0, or -1 with the reason
 * (naming the item) in err; the builder stays usable after an error. */
int snapshot_builder_setting(struct snapshot_builder *b, const char *key, const char *value,
                             struct sg_err *err);
int snapshot_builder_mech(struct snapshot_builder *b, const char *name, enum mech_class c,
                          struct sg_err *err);
int snapshot_builder_group_member(struct snapshot_builder *b, const char *group,
                                  const char *pattern, struct sg_err *err);
/* Declares a group (so an empty group can be referenced). */
int snapshot_builder_group(struct snapshot_builder *b, const char *group, struct sg_err *err);
int snapshot_builder_location(struct snapshot_builder *b, const char *location, struct sg_err *err);
int snapshot_builder_location_net(struct snapshot_builder *b, const char *location,
                                  const char *cidr, struct sg_err *err);
int snapshot_builder_policy(struct snapshot_builder *b, const struct policy_def *def,
                            struct sg_err *err);
int snapshot_builder_exception(struct snapshot_builder *b, const struct exception_def *def,
                               struct sg_err *err);
/* Resolves names (an unknown group or location referenced by a policy or an
 * exception is an error) and compiles the indices. Consumes the builder in every
 * case and sets *b to NULL. Returns the snapshot (refcount 1) or NULL with err. */
struct snapshot *snapshot_builder_finish(struct snapshot_builder **b, struct sg_err *err);
void snapshot_builder_free(struct snapshot_builder **b);

/* Builds a snapshot from policy.db inside one read transaction. The store
 * generation (settings.generation) is recorded in the snapshot. NULL on error. */
struct snapshot *snapshot_load(sqlite3 *db, struct sg_err *err);

/* Daemons: free large snapshots in a thread of their own rather than in the
 * caller of the last snapshot_unref() (off by default; set once at start-up). */
void snapshot_set_free_aside(int on);

/* Reference counting (atomic; any thread). unref sets *snap to NULL and frees the
 * snapshot when the last reference goes. */
struct snapshot *snapshot_ref(struct snapshot *snap);
void snapshot_unref(struct snapshot **snap);

int64_t snapshot_generation(const struct snapshot *snap);
size_t snapshot_policy_count(const struct snapshot *snap);
size_t snapshot_exception_count(const struct snapshot *snap);
size_t snapshot_location_count(const struct snapshot *snap);

/* The class of a mechanism by catalogue (case-insensitive), falling back to the
 * snapshot's unknown_mechanism_class. */
enum mech_class snapshot_mech_class(const struct snapshot *snap, const char *mech);

#endif
