/*
 * store_admin - the SQL behind saslgatectl; see store_admin.h.
 */
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "store_admin.h"

static int sql_error(sqlite3 *db, struct sg_err *err)
{
	return sg_err_set(err, "policy.db: %s", sqlite3_errmsg(db));
}

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, struct sg_err *err)
{
	if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK) {
		*st = NULL;
		return sql_error(db, err);
	}
	return 0;
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s == NULL)
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
}

static void bind_time(sqlite3_stmt *st, int i, int64_t t)
{
	if (t == 0)
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_int64(st, i, t);
}

static char *col_dup(sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);

	return s ? xstrdup((const char *)s) : NULL;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}

/* Steps a statement that returns no rows; finalizes it. */
static int step_done(sqlite3 *db, sqlite3_stmt *st, struct sg_err *err)
{
	int rc = sqlite3_step(st);

	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return sql_error(db, err);
	return 0;
}

/* Steps a query of at most one row and finalizes it: 1 with the row handed to
 * fill (may be NULL), 0 for no row, -1 with err. */
static int step_one(sqlite3 *db, sqlite3_stmt *st, void (*fill)(sqlite3_stmt *st, void *out),
                    void *out, struct sg_err *err)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW && fill != NULL)
		fill(st, out);
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return sql_error(db, err);
}

/* Steps a query and calls row(st, arg) for each row until row returns
 * non-zero; finalizes it. Returns that non-zero value, 0 after the last row,
 * or -1 with err. */
static int each_row(sqlite3 *db, sqlite3_stmt *st, int (*row)(sqlite3_stmt *st, void *arg),
                    void *arg, struct sg_err *err)
{
	int rc, ret = 0;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if ((ret = row(st, arg)) != 0)
			break;
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return sql_error(db, err);
	return ret;
}

/* A reader's callback and its argument, handed to the row decoders below. */
struct visit {
	union {
		int (*policy)(const struct sa_policy *p, void *arg);
		int (*exception)(const struct sa_exception *e, void *arg);
		int (*audit)(const struct sa_audit *a, void *arg);
		int (*name)(const char *name, int64_t created_at, void *arg);
		int (*text)(const char *text, void *arg);
		int (*pair)(const char *a, const char *b, void *arg);
	} fn;
	void *arg;
};

/* Runs sql with up to two text parameters; returns the number of changed rows
 * or -1. */
static int exec2(sqlite3 *db, const char *sql, const char *a, const char *b, struct sg_err *err)
{
	sqlite3_stmt *st;

	if (prepare(db, sql, &st, err) < 0)
		return -1;
	if (a)
		bind_text(st, 1, a);
	if (b)
		bind_text(st, 2, b);
	if (step_done(db, st, err) < 0)
		return -1;
	return sqlite3_changes(db);
}

void sa_set(char **field, const char *value)
{
	free(*field);
	*field = value ? xstrdup(value) : NULL;
}

void sa_policy_defaults(struct sa_policy *p, const char *name)
{
	memset(p, 0, sizeof(*p));
	sa_set(&p->name, name);
	sa_set(&p->state, "enforce");
	sa_set(&p->mechs, "legacy");
	sa_set(&p->include_users, "all");
	sa_set(&p->include_groups, "");
	sa_set(&p->exclude_users, "");
	sa_set(&p->exclude_groups, "");
	sa_set(&p->include_locations, "any");
	sa_set(&p->exclude_locations, "");
	sa_set(&p->tls, "any");
	sa_set(&p->services, "any");
	sa_set(&p->reply_code, "550");
	sa_set(&p->reply_enh, "5.7.9");
	sa_set(&p->reply_text,
	       "Authentication mechanism %m is not allowed; use OAuth2 (XOAUTH2/OAUTHBEARER)");
}

void sa_policy_clear(struct sa_policy *p)
{
	char **fields[] = {&p->name,
	                   &p->state,
	                   &p->mechs,
	                   &p->include_users,
	                   &p->include_groups,
	                   &p->exclude_users,
	                   &p->exclude_groups,
	                   &p->include_locations,
	                   &p->exclude_locations,
	                   &p->tls,
	                   &p->services,
	                   &p->reply_code,
	                   &p->reply_enh,
	                   &p->reply_text};

	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		free(*fields[i]);
		*fields[i] = NULL;
	}
	memset(p, 0, sizeof(*p));
}

void sa_exception_clear(struct sa_exception *e)
{
	free(e->policy);
	free(e->user_pattern);
	free(e->group_name);
	free(e->location);
	free(e->mechs);
	free(e->reason);
	free(e->created_by);
	memset(e, 0, sizeof(*e));
}

int store_admin_exists(sqlite3 *db, enum sa_kind kind, const char *name, struct sg_err *err)
{
	static const char *const sql[] = {
	    [SA_POLICY] = "SELECT 1 FROM policies WHERE name = ?1",
	    [SA_GROUP] = "SELECT 1 FROM groups WHERE name = ?1",
	    [SA_LOCATION] = "SELECT 1 FROM locations WHERE name = ?1",
	};
	sqlite3_stmt *st;

	if (prepare(db, sql[kind], &st, err) < 0)
		return -1;
	bind_text(st, 1, name);
	return step_one(db, st, NULL, NULL, err);
}

/* Runs a query returning one text column (or none) into a malloc'ed copy. */
static int query_text(sqlite3 *db, sqlite3_stmt *st, char **out, struct sg_err *err)
{
	int rc = sqlite3_step(st);

	*out = NULL;
	if (rc == SQLITE_ROW)
		*out = col_dup(st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return sql_error(db, err);
	return 0;
}

#define POLICY_JSON                                                                                \
	"json_object('name', name, 'state', state, 'enforce_from', enforce_from, 'mechs', mechs, " \
	"'include_users', include_users, 'include_groups', include_groups, 'exclude_users', "      \
	"exclude_users, 'exclude_groups', exclude_groups, 'include_locations', "                   \
	"include_locations, 'exclude_locations', exclude_locations, 'tls', tls, 'services', "      \
	"services, 'reply_code', reply_code, 'reply_enh', reply_enh, 'reply_text', reply_text)"

int store_admin_object_json(sqlite3 *db, enum sa_kind kind, const char *name, char **json,
                            struct sg_err *err)
{
	static const char *const sql[] = {
	    [SA_POLICY] = "SELECT " POLICY_JSON " FROM policies WHERE name = ?1",
	    [SA_GROUP] = "SELECT json_object('name', name, 'members', (SELECT json_group_array("
	                 "pattern) FROM (SELECT pattern FROM group_members WHERE group_name = "
	                 "?1 ORDER BY pattern))) FROM groups WHERE name = ?1",
	    [SA_LOCATION] = "SELECT json_object('name', name, 'nets', (SELECT json_group_array("
	                    "cidr) FROM (SELECT cidr FROM location_nets WHERE location_name = "
	                    "?1 ORDER BY cidr))) FROM locations WHERE name = ?1",
	};
	sqlite3_stmt *st;

	*json = NULL;
	if (prepare(db, sql[kind], &st, err) < 0)
		return -1;
	bind_text(st, 1, name);
	return query_text(db, st, json, err);
}

int store_admin_exception_json(sqlite3 *db, int64_t id, char **json, struct sg_err *err)
{
	sqlite3_stmt *st;

	*json = NULL;
	if (prepare(db,
	            "SELECT json_object('id', id, 'policy', policy, 'user', user_pattern, 'group', "
	            "group_name, 'location', location, 'mechs', mechs, 'reason', reason, "
	            "'created_by', created_by, 'created_at', created_at, 'expires_at', expires_at) "
	            "FROM exceptions WHERE id = ?1",
	            &st, err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	return query_text(db, st, json, err);
}

#define POLICY_COLUMNS                                                                             \
	"name, state, enforce_from, mechs, include_users, include_groups, exclude_users, "         \
	"exclude_groups, include_locations, exclude_locations, tls, services, reply_code, "        \
	"reply_enh, reply_text, created_at, updated_at"

static void policy_from_row(sqlite3_stmt *st, struct sa_policy *p)
{
	memset(p, 0, sizeof(*p));
	p->name = col_dup(st, 0);
	p->state = col_dup(st, 1);
	p->enforce_from = sqlite3_column_int64(st, 2);
	p->mechs = col_dup(st, 3);
	p->include_users = col_dup(st, 4);
	p->include_groups = col_dup(st, 5);
	p->exclude_users = col_dup(st, 6);
	p->exclude_groups = col_dup(st, 7);
	p->include_locations = col_dup(st, 8);
	p->exclude_locations = col_dup(st, 9);
	p->tls = col_dup(st, 10);
	p->services = col_dup(st, 11);
	p->reply_code = col_dup(st, 12);
	p->reply_enh = col_dup(st, 13);
	p->reply_text = col_dup(st, 14);
	p->created_at = sqlite3_column_int64(st, 15);
	p->updated_at = sqlite3_column_int64(st, 16);
}

static void policy_fill(sqlite3_stmt *st, void *out)
{
	policy_from_row(st, out);
}

int store_admin_policy_get(sqlite3 *db, const char *name, struct sa_policy *out, struct sg_err *err)
{
	sqlite3_stmt *st;

	if (prepare(db, "SELECT " POLICY_COLUMNS " FROM policies WHERE name = ?1", &st, err) < 0)
		return -1;
	bind_text(st, 1, name);
	return step_one(db, st, policy_fill, out, err);
}

static int policy_row(sqlite3_stmt *st, void *arg)
{
	const struct visit *v = arg;
	struct sa_policy p;
	int ret;

	policy_from_row(st, &p);
	ret = v->fn.policy(&p, v->arg);
	sa_policy_clear(&p);
	return ret;
}

int store_admin_policy_foreach(sqlite3 *db, int (*fn)(const struct sa_policy *p, void *arg),
                               void *arg, struct sg_err *err)
{
	struct visit v = {.fn.policy = fn, .arg = arg};
	sqlite3_stmt *st;

	if (prepare(db, "SELECT " POLICY_COLUMNS " FROM policies ORDER BY name", &st, err) < 0)
		return -1;
	return each_row(db, st, policy_row, &v, err);
}

static void bind_policy(sqlite3_stmt *st, const struct sa_policy *p)
{
	bind_text(st, 1, p->name);
	bind_text(st, 2, p->state);
	bind_time(st, 3, p->enforce_from);
	bind_text(st, 4, p->mechs);
	bind_text(st, 5, p->include_users);
	bind_text(st, 6, p->include_groups);
	bind_text(st, 7, p->exclude_users);
	bind_text(st, 8, p->exclude_groups);
	bind_text(st, 9, p->include_locations);
	bind_text(st, 10, p->exclude_locations);
	bind_text(st, 11, p->tls);
	bind_text(st, 12, p->services);
	bind_text(st, 13, p->reply_code);
	bind_text(st, 14, p->reply_enh);
	bind_text(st, 15, p->reply_text);
	sqlite3_bind_int64(st, 16, p->created_at);
	sqlite3_bind_int64(st, 17, p->updated_at);
}

int store_admin_policy_insert(sqlite3 *db, const struct sa_policy *p, struct sg_err *err)
{
	sqlite3_stmt *st;

	if (prepare(db,
	            "INSERT INTO policies (" POLICY_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
	            "?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
	            &st, err) < 0)
		return -1;
	bind_policy(st, p);
	return step_done(db, st, err);
}

int store_admin_policy_update(sqlite3 *db, const struct sa_policy *p, struct sg_err *err)
{
	sqlite3_stmt *st;

	if (prepare(
	        db,
	        "UPDATE policies SET state = ?2, enforce_from = ?3, mechs = ?4, include_users = "
	        "?5, include_groups = ?6, exclude_users = ?7, exclude_groups = ?8, "
	        "include_locations = ?9, exclude_locations = ?10, tls = ?11, services = ?12, "
	        "reply_code = ?13, reply_enh = ?14, reply_text = ?15, updated_at = ?17 "
	        "WHERE name = ?1 AND ?16 IS NOT NULL",
	        &st, err) < 0)
		return -1;
	bind_policy(st, p);
	return step_done(db, st, err);
}

int store_admin_policy_delete(sqlite3 *db, const char *name, int *n_exceptions, struct sg_err *err)
{
	int n = exec2(db, "DELETE FROM exceptions WHERE policy = ?1", name, NULL, err);

	if (n < 0)
		return -1;
	if (n_exceptions)
		*n_exceptions = n;
	if (exec2(db, "DELETE FROM policies WHERE name = ?1", name, NULL, err) < 0)
		return -1;
	return 0;
}

/* The SQL of the named sets (groups of user patterns, locations of CIDRs). */
static const struct {
	const char *insert, *delete_members, *delete, *member_add, *member_remove;
} set_sql[] = {
    [SA_GROUP] = {"INSERT INTO groups (name, created_at) VALUES (?1, ?2)",
                  "DELETE FROM group_members WHERE group_name = ?1",
                  "DELETE FROM groups WHERE name = ?1",
                  "INSERT OR IGNORE INTO group_members (group_name, pattern) VALUES (?1, ?2)",
                  "DELETE FROM group_members WHERE group_name = ?1 AND pattern = ?2"},
    [SA_LOCATION] = {"INSERT INTO locations (name, created_at) VALUES (?1, ?2)",
                     "DELETE FROM location_nets WHERE location_name = ?1",
                     "DELETE FROM locations WHERE name = ?1",
                     "INSERT OR IGNORE INTO location_nets (location_name, cidr) VALUES (?1, ?2)",
                     "DELETE FROM location_nets WHERE location_name = ?1 AND cidr = ?2"},
};

int store_admin_set_insert(sqlite3 *db, enum sa_kind kind, const char *name, int64_t now,
                           struct sg_err *err)
{
	sqlite3_stmt *st;

	if (prepare(db, set_sql[kind].insert, &st, err) < 0)
		return -1;
	bind_text(st, 1, name);
	sqlite3_bind_int64(st, 2, now);
	return step_done(db, st, err);
}

int store_admin_set_delete(sqlite3 *db, enum sa_kind kind, const char *name, struct sg_err *err)
{
	if (exec2(db, set_sql[kind].delete_members, name, NULL, err) < 0 ||
	    exec2(db, set_sql[kind].delete, name, NULL, err) < 0)
		return -1;
	return 0;
}

int store_admin_set_member(sqlite3 *db, enum sa_kind kind, int add, const char *name,
                           const char *member, struct sg_err *err)
{
	int n = exec2(db, add ? set_sql[kind].member_add : set_sql[kind].member_remove, name,
	              member, err);

	return n < 0 ? -1 : n > 0;
}

static int name_row(sqlite3_stmt *st, void *arg)
{
	const struct visit *v = arg;

	return v->fn.name(col_text(st, 0), sqlite3_column_int64(st, 1), v->arg);
}

int store_admin_name_foreach(sqlite3 *db, enum sa_kind kind,
                             int (*fn)(const char *name, int64_t created_at, void *arg), void *arg,
                             struct sg_err *err)
{
	static const char *const sql[] = {
	    [SA_POLICY] = "SELECT name, created_at FROM policies ORDER BY name",
	    [SA_GROUP] = "SELECT name, created_at FROM groups ORDER BY name",
	    [SA_LOCATION] = "SELECT name, created_at FROM locations ORDER BY name",
	};
	struct visit v = {.fn.name = fn, .arg = arg};
	sqlite3_stmt *st;

	if (prepare(db, sql[kind], &st, err) < 0)
		return -1;
	return each_row(db, st, name_row, &v, err);
}

static int text_row(sqlite3_stmt *st, void *arg)
{
	const struct visit *v = arg;

	return v->fn.text(col_text(st, 0), v->arg);
}

int store_admin_member_foreach(sqlite3 *db, enum sa_kind kind, const char *name,
                               int (*fn)(const char *member, void *arg), void *arg,
                               struct sg_err *err)
{
	const char *sql = kind == SA_GROUP ? "SELECT pattern FROM group_members WHERE group_name "
	                                     "= ?1 ORDER BY pattern"
	                                   : "SELECT cidr FROM location_nets WHERE location_name "
	                                     "= ?1 ORDER BY cidr";
	struct visit v = {.fn.text = fn, .arg = arg};
	sqlite3_stmt *st;

	if (prepare(db, sql, &st, err) < 0)
		return -1;
	bind_text(st, 1, name);
	return each_row(db, st, text_row, &v, err);
}

#define EXCEPTION_COLUMNS                                                                          \
	"id, policy, user_pattern, group_name, location, mechs, reason, created_by, created_at, "  \
	"expires_at"

static void exception_from_row(sqlite3_stmt *st, struct sa_exception *e)
{
	memset(e, 0, sizeof(*e));
	e->id = sqlite3_column_int64(st, 0);
	e->policy = col_dup(st, 1);
	e->user_pattern = col_dup(st, 2);
	e->group_name = col_dup(st, 3);
	e->location = col_dup(st, 4);
	e->mechs = col_dup(st, 5);
	e->reason = col_dup(st, 6);
	e->created_by = col_dup(st, 7);
	e->created_at = sqlite3_column_int64(st, 8);
	e->expires_at = sqlite3_column_int64(st, 9);
}

int store_admin_exception_insert(sqlite3 *db, const struct sa_exception *e, int keep_id,
                                 int64_t *id, struct sg_err *err)
{
	sqlite3_stmt *st;

	if (prepare(db,
	            "INSERT INTO exceptions (" EXCEPTION_COLUMNS ") VALUES (?1, ?2, ?3, ?4, "
	            "?5, ?6, ?7, ?8, ?9, ?10)",
	            &st, err) < 0)
		return -1;
	if (keep_id)
		sqlite3_bind_int64(st, 1, e->id);
	else
		sqlite3_bind_null(st, 1);
	bind_text(st, 2, e->policy);
	bind_text(st, 3, e->user_pattern);
	bind_text(st, 4, e->group_name);
	bind_text(st, 5, e->location);
	bind_text(st, 6, e->mechs);
	bind_text(st, 7, e->reason);
	bind_text(st, 8, e->created_by);
	sqlite3_bind_int64(st, 9, e->created_at);
	bind_time(st, 10, e->expires_at);
	if (step_done(db, st, err) < 0)
		return -1;
	if (id)
		*id = sqlite3_last_insert_rowid(db);
	return 0;
}

static void exception_fill(sqlite3_stmt *st, void *out)
{
	exception_from_row(st, out);
}

int store_admin_exception_get(sqlite3 *db, int64_t id, struct sa_exception *out, struct sg_err *err)
{
	sqlite3_stmt *st;

	if (prepare(db, "SELECT " EXCEPTION_COLUMNS " FROM exceptions WHERE id = ?1", &st, err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	return step_one(db, st, exception_fill, out, err);
}

int store_admin_exception_delete(sqlite3 *db, int64_t id, struct sg_err *err)
{
	sqlite3_stmt *st;

	if (prepare(db, "DELETE FROM exceptions WHERE id = ?1", &st, err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	return step_done(db, st, err);
}

int store_admin_exception_set_expiry(sqlite3 *db, int64_t id, int64_t expires_at,
                                     struct sg_err *err)
{
	sqlite3_stmt *st;

	if (prepare(db, "UPDATE exceptions SET expires_at = ?2 WHERE id = ?1", &st, err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	bind_time(st, 2, expires_at);
	return step_done(db, st, err);
}

static int exception_row(sqlite3_stmt *st, void *arg)
{
	const struct visit *v = arg;
	struct sa_exception e;
	int ret;

	exception_from_row(st, &e);
	ret = v->fn.exception(&e, v->arg);
	sa_exception_clear(&e);
	return ret;
}

int store_admin_exception_foreach(sqlite3 *db, int include_expired, int64_t now,
                                  int (*fn)(const struct sa_exception *e, void *arg), void *arg,
                                  struct sg_err *err)
{
	struct visit v = {.fn.exception = fn, .arg = arg};
	sqlite3_stmt *st;

	if (prepare(db,
	            "SELECT " EXCEPTION_COLUMNS " FROM exceptions WHERE ?1 OR expires_at IS NULL "
	            "OR expires_at > ?2 ORDER BY id",
	            &st, err) < 0)
		return -1;
	sqlite3_bind_int(st, 1, include_expired != 0);
	sqlite3_bind_int64(st, 2, now);
	return each_row(db, st, exception_row, &v, err);
}

static int pair_row(sqlite3_stmt *st, void *arg)
{
	const struct visit *v = arg;

	return v->fn.pair(col_text(st, 0), col_text(st, 1), v->arg);
}

/* Calls fn(col0, col1, arg) for every row of a two-column text query. */
static int foreach_pair(sqlite3 *db, const char *sql,
                        int (*fn)(const char *a, const char *b, void *arg), void *arg,
                        struct sg_err *err)
{
	struct visit v = {.fn.pair = fn, .arg = arg};
	sqlite3_stmt *st;

	if (prepare(db, sql, &st, err) < 0)
		return -1;
	return each_row(db, st, pair_row, &v, err);
}

int store_admin_mech_foreach(sqlite3 *db, int (*fn)(const char *name, const char *cls, void *arg),
                             void *arg, struct sg_err *err)
{
	return foreach_pair(db, "SELECT name, class FROM mechanisms ORDER BY name COLLATE NOCASE",
	                    fn, arg, err);
}

struct text_buf {
	char *buf;
	size_t len;
	int too_long;
};

static void text_fill(sqlite3_stmt *st, void *out)
{
	struct text_buf *t = out;
	const char *v = col_text(st, 0);

	t->too_long = sg_strlcpy(t->buf, v ? v : "", t->len) >= t->len;
}

int store_admin_mech_get(sqlite3 *db, const char *name, char *cls, size_t len, struct sg_err *err)
{
	struct text_buf t = {cls, len, 0};
	sqlite3_stmt *st;
	int found;

	cls[0] = '\0';
	if (prepare(db, "SELECT class FROM mechanisms WHERE name = ?1", &st, err) < 0)
		return -1;
	bind_text(st, 1, name);
	found = step_one(db, st, text_fill, &t, err);
	if (found == 1 && t.too_long)
		return sg_err_set(err, "mechanism %s: class too long", name);
	return found;
}

int store_admin_mech_set(sqlite3 *db, const char *name, const char *cls, struct sg_err *err)
{
	/* name is COLLATE NOCASE: REPLACE keeps one entry whatever the spelling. */
	return exec2(db, "INSERT OR REPLACE INTO mechanisms (name, class) VALUES (?1, ?2)", name,
	             cls, err) < 0
	           ? -1
	           : 0;
}

int store_admin_setting_foreach(sqlite3 *db,
                                int (*fn)(const char *key, const char *value, void *arg), void *arg,
                                struct sg_err *err)
{
	return foreach_pair(db, "SELECT key, value FROM settings ORDER BY key", fn, arg, err);
}

static int audit_row(sqlite3_stmt *st, void *arg)
{
	const struct visit *v = arg;
	struct sa_audit a = {
	    .id = sqlite3_column_int64(st, 0),
	    .at = sqlite3_column_int64(st, 1),
	    .actor = col_text(st, 2),
	    .action = col_text(st, 3),
	    .object = col_text(st, 4),
	    .before = col_text(st, 5),
	    .after = col_text(st, 6),
	};

	return v->fn.audit(&a, v->arg);
}

int store_admin_audit_foreach(sqlite3 *db, int64_t since,
                              int (*fn)(const struct sa_audit *a, void *arg), void *arg,
                              struct sg_err *err)
{
	struct visit v = {.fn.audit = fn, .arg = arg};
	sqlite3_stmt *st;

	if (prepare(db,
	            "SELECT id, at, actor, action, object, before, after FROM audit WHERE at >= ?1 "
	            "ORDER BY id",
	            &st, err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, since);
	return each_row(db, st, audit_row, &v, err);
}

int store_admin_clear_policy(sqlite3 *db, struct sg_err *err)
{
	static const char *const sql[] = {
	    "DELETE FROM exceptions", "DELETE FROM policies",      "DELETE FROM group_members",
	    "DELETE FROM groups",     "DELETE FROM location_nets", "DELETE FROM locations",
	    "DELETE FROM mechanisms",
	};

	for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]); i++)
		if (exec2(db, sql[i], NULL, NULL, err) < 0)
			return -1;
	return 0;
}
