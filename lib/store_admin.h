/*
 * store_admin - the SQL behind saslgatectl: reads and writes of the policy
 * tables of policy.db (policies, exceptions, groups, locations, the mechanism
 * catalogue, settings, the audit trail).
 *
 * These functions do not validate: saslgatectl validates every value before it
 * calls a write, inside one transaction (store_begin ... store_audit ...
 * store_commit). Writes must be called inside that transaction. Every function
 * returns 0 on success (or 1/0 found/absent where stated) and -1 with SQLite's
 * reason in err.
 *
 * Records returned by the readers own their strings; release them with the
 * matching *_clear function. Times are Unix seconds; 0 means "none".
 */
#ifndef SASLGATE_STORE_ADMIN_H
#define SASLGATE_STORE_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "util.h"

/* A row of the policies table; lists as comma-separated text. */
struct sa_policy {
	char *name;
	char *state;
	int64_t enforce_from;
	char *mechs;
	char *include_users;
	char *include_groups;
	char *exclude_users;
	char *exclude_groups;
	char *include_locations;
	char *exclude_locations;
	char *tls;
	char *services;
	char *reply_code;
	char *reply_enh;
	char *reply_text;
	int64_t created_at;
	int64_t updated_at;
};

/* A row of the exceptions table; absent fields are NULL. */
struct sa_exception {
	int64_t id;
	char *policy;
	char *user_pattern;
	char *group_name;
	char *location;
	char *mechs;
	char *reason;
	char *created_by;
	int64_t created_at;
	int64_t expires_at;
};

struct sa_audit {
	int64_t id;
	int64_t at;
	const char *actor; /* borrowed for the duration of the callback */
	const char *action;
	const char *object;
	const char *before; /* JSON text or NULL */
	const char *after;
};

/* Replaces *field with a copy of value (NULL allowed). */
void sa_set(char **field, const char *value);

/* Fills p with the schema defaults for a new policy named name (state enforce). */
void sa_policy_defaults(struct sa_policy *p, const char *name);
void sa_policy_clear(struct sa_policy *p);
void sa_exception_clear(struct sa_exception *e);

/* Kinds of named objects. */
enum sa_kind { SA_POLICY, SA_GROUP, SA_LOCATION };

/* 1 if the named object exists (case-sensitive names), 0 if not, -1 on error. */
int store_admin_exists(sqlite3 *db, enum sa_kind kind, const char *name, struct sg_err *err);

/* The object as a JSON text (malloc'ed, *json NULL when absent), for the audit
 * trail: a policy row, a group with its members, a location with its nets. */
int store_admin_object_json(sqlite3 *db, enum sa_kind kind, const char *name, char **json,
                            struct sg_err *err);
/* An exception row as JSON (*json NULL when absent). */
int store_admin_exception_json(sqlite3 *db, int64_t id, char **json, struct sg_err *err);

/* Policies. get: 1 found (out filled), 0 absent. foreach: by name; stops when fn
 * returns non-zero and returns that value. */
int store_admin_policy_get(sqlite3 *db, const char *name, struct sa_policy *out,
                           struct sg_err *err);
int store_admin_policy_foreach(sqlite3 *db, int (*fn)(const struct sa_policy *p, void *arg),
                               void *arg, struct sg_err *err);
int store_admin_policy_insert(sqlite3 *db, const struct sa_policy *p, struct sg_err *err);
/* Updates every column but name and created_at. */
int store_admin_policy_update(sqlite3 *db, const struct sa_policy *p, struct sg_err *err);
/* Deletes the policy and the exceptions scoped to it; *n_exceptions (may be
 * NULL) receives how many exceptions went with it. */
int store_admin_policy_delete(sqlite3 *db, const char *name, int *n_exceptions, struct sg_err *err);

/* Groups and locations (kind SA_GROUP or SA_LOCATION): names with members
 * (user patterns / CIDR texts). Deleting a set deletes its members. */
int store_admin_set_insert(sqlite3 *db, enum sa_kind kind, const char *name, int64_t now,
                           struct sg_err *err);
int store_admin_set_delete(sqlite3 *db, enum sa_kind kind, const char *name, struct sg_err *err);
/* Adds (add = 1) or removes a member: 1 changed, 0 already (not) a member, -1 error. */
int store_admin_set_member(sqlite3 *db, enum sa_kind kind, int add, const char *name,
                           const char *member, struct sg_err *err);
/* Calls fn(name, created_at, arg) per group/location by name. */
int store_admin_name_foreach(sqlite3 *db, enum sa_kind kind,
                             int (*fn)(const char *name, int64_t created_at, void *arg), void *arg,
                             struct sg_err *err);
/* Calls fn(member, arg) per member pattern / net of a group / location, sorted. */
int store_admin_member_foreach(sqlite3 *db, enum sa_kind kind, const char *name,
                               int (*fn)(const char *member, void *arg), void *arg,
                               struct sg_err *err);

/* Exceptions. insert stores e (e->id ignored unless keep_id) and sets *id.
 * get: 1 found, 0 absent. foreach: by id; with include_expired = 0 only
 * those not expired at now. */
int store_admin_exception_insert(sqlite3 *db, const struct sa_exception *e, int keep_id,
                                 int64_t *id, struct sg_err *err);
int store_admin_exception_get(sqlite3 *db, int64_t id, struct sa_exception *out,
                              struct sg_err *err);
int store_admin_exception_delete(sqlite3 *db, int64_t id, struct sg_err *err);
int store_admin_exception_set_expiry(sqlite3 *db, int64_t id, int64_t expires_at,
                                     struct sg_err *err);
int store_admin_exception_foreach(sqlite3 *db, int include_expired, int64_t now,
                                  int (*fn)(const struct sa_exception *e, void *arg), void *arg,
                                  struct sg_err *err);

/* The mechanism catalogue: fn(name, class) by name; get: 1 found (the class
 * in cls, len bytes; "" when absent), 0 absent (names compare
 * case-insensitively); set inserts or replaces. */
int store_admin_mech_foreach(sqlite3 *db, int (*fn)(const char *name, const char *cls, void *arg),
                             void *arg, struct sg_err *err);
int store_admin_mech_get(sqlite3 *db, const char *name, char *cls, size_t len, struct sg_err *err);
int store_admin_mech_set(sqlite3 *db, const char *name, const char *cls, struct sg_err *err);

/* Settings rows by key (including generation). */
int store_admin_setting_foreach(sqlite3 *db,
                                int (*fn)(const char *key, const char *value, void *arg), void *arg,
                                struct sg_err *err);

/* Audit records at or after since, oldest first. */
int store_admin_audit_foreach(sqlite3 *db, int64_t since,
                              int (*fn)(const struct sa_audit *a, void *arg), void *arg,
                              struct sg_err *err);

/* Empties the catalogue, groups, locations, policies and exceptions (for
 * import; settings and the audit trail stay). */
int store_admin_clear_policy(sqlite3 *db, struct sg_err *err);

#endif
