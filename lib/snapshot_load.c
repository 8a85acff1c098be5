/*
 * snapshot_load - reading policy.db into a snapshot builder, inside one read
 * transaction so that the snapshot is one consistent generation. A setting
 * absent from the store has the default of policy_settings.h.
 */
#include <string.h>

#include "policy_settings.h"
#include "snapshot.h"
#include "store.h"

#define COL_TEXT(st, i) ((const char *)sqlite3_column_text((st), (i)))

typedef int (*row_fn)(struct snapshot_builder *b, sqlite3_stmt *st, struct sg_err *err);

static int each_row(sqlite3 *db, const char *sql, struct snapshot_builder *b, row_fn fn,
                    struct sg_err *err)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return sg_err_set(err, "reading policy.db: %s", sqlite3_errmsg(db));
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (fn(b, st, err) < 0) {
			sqlite3_finalize(st);
			return -1;
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return sg_err_set(err, "reading policy.db: %s", sqlite3_errmsg(db));
	return 0;
}

static int row_setting(struct snapshot_builder *b, sqlite3_stmt *st, struct sg_err *err)
{
	return snapshot_builder_setting(b, COL_TEXT(st, 0), COL_TEXT(st, 1), err);
}

static int row_mech(struct snapshot_builder *b, sqlite3_stmt *st, struct sg_err *err)
{
	enum mech_class c;

	if (mech_class_parse(COL_TEXT(st, 1), &c) < 0)
		return sg_err_set(err, "mechanism %s: unknown class", COL_TEXT(st, 0));
	return snapshot_builder_mech(b, COL_TEXT(st, 0), c, err);
}

static int row_group(struct snapshot_builder *b, sqlite3_stmt *st, struct sg_err *err)
{
	return snapshot_builder_group(b, COL_TEXT(st, 0), err);
}

static int row_member(struct snapshot_builder *b, sqlite3_stmt *st, struct sg_err *err)
{
	return snapshot_builder_group_member(b, COL_TEXT(st, 0), COL_TEXT(st, 1), err);
}

static int row_location(struct snapshot_builder *b, sqlite3_stmt *st, struct sg_err *err)
{
	return snapshot_builder_location(b, COL_TEXT(st, 0), err);
}

static int row_net(struct snapshot_builder *b, sqlite3_stmt *st, struct sg_err *err)
{
	return snapshot_builder_location_net(b, COL_TEXT(st, 0), COL_TEXT(st, 1), err);
}

static int row_policy(struct snapshot_builder *b, sqlite3_stmt *st, struct sg_err *err)
{
	struct policy_def d;

	memset(&d, 0, sizeof(d));
	d.name = COL_TEXT(st, 0);
	if (policy_state_parse(COL_TEXT(st, 1), &d.state) < 0)
		return sg_err_set(err, "policy %s: unknown state", d.name);
	d.enforce_from = (time_t)sqlite3_column_int64(st, 2);
	d.mechs = COL_TEXT(st, 3);
	d.include_users = COL_TEXT(st, 4);
	d.include_groups = COL_TEXT(st, 5);
	d.exclude_users = COL_TEXT(st, 6);
	d.exclude_groups = COL_TEXT(st, 7);
	d.include_locations = COL_TEXT(st, 8);
	d.exclude_locations = COL_TEXT(st, 9);
	if (tls_condition_parse(COL_TEXT(st, 10), &d.tls) < 0)
		return sg_err_set(err, "policy %s: unknown tls condition", d.name);
	d.services = COL_TEXT(st, 11);
	d.reply_code = COL_TEXT(st, 12);
	d.reply_enh = COL_TEXT(st, 13);
	d.reply_text = COL_TEXT(st, 14);
	return snapshot_builder_policy(b, &d, err);
}

static int row_exception(struct snapshot_builder *b, sqlite3_stmt *st, struct sg_err *err)
{
	struct exception_def d;

	memset(&d, 0, sizeof(d));
	d.id = sqlite3_column_int64(st, 0);
	d.policy = COL_TEXT(st, 1);
	d.user_pattern = COL_TEXT(st, 2);
	d.group = COL_TEXT(st, 3);
	d.location = COL_TEXT(st, 4);
	d.mechs = COL_TEXT(st, 5);
	d.expires_at = (time_t)sqlite3_column_int64(st, 6);
	return snapshot_builder_exception(b, &d, err);
}

/* The defaults of the settings table, for a store without some of the rows;
 * the rows read next replace them. */
static int setting_defaults(struct snapshot_builder *b, struct sg_err *err)
{
	for (const struct policy_setting_def *d = policy_setting_table; d->key != NULL; d++)
		if (snapshot_builder_setting(b, d->key, d->def, err) < 0)
			return -1;
	return 0;
}

struct snapshot *snapshot_load(sqlite3 *db, struct sg_err *err)
{
	static const struct {
		const char *sql;
		row_fn fn;
	} steps[] = {
	    {"SELECT key, value FROM settings", row_setting},
	    {"SELECT name, class FROM mechanisms", row_mech},
	    {"SELECT name FROM groups", row_group},
	    {"SELECT group_name, pattern FROM group_members", row_member},
	    {"SELECT name FROM locations", row_location},
	    {"SELECT location_name, cidr FROM location_nets", row_net},
	    {"SELECT name, state, enforce_from, mechs, include_users, include_groups, "
	     "exclude_users, exclude_groups, include_locations, exclude_locations, tls, "
	     "services, reply_code, reply_enh, reply_text FROM policies",
	     row_policy},
	    {"SELECT id, policy, user_pattern, group_name, location, mechs, expires_at "
	     "FROM exceptions ORDER BY id",
	     row_exception},
	};
	struct snapshot_builder *b;
	int own_txn = sqlite3_get_autocommit(db);

	if (own_txn && store_exec(db, "BEGIN", err) < 0)
		return NULL;
	b = snapshot_builder_new();
	if (setting_defaults(b, err) < 0)
		goto fail;
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
		if (each_row(db, steps[i].sql, b, steps[i].fn, err) < 0)
			goto fail;
	if (own_txn)
		store_exec(db, "COMMIT", NULL);
	return snapshot_builder_finish(&b, err);
fail:
	snapshot_builder_free(&b);
	if (own_txn)
		store_rollback(db);
	return NULL;
}
