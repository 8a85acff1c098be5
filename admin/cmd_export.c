/*
 * export - writes the whole policy (catalogue, groups, locations, policies,
 * exceptions and the policy.db settings) as one JSON document with json.c;
 * cmd_import.c reads it back.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cmd_exception.h"
#include "cmd_export.h"
#include "cmd_policy.h"
#include "ctl.h"
#include "json.h"

struct export_ctx {
	sqlite3 *db;
	struct json *j;
	enum sa_kind kind;
	struct sg_err err;
};

static int export_setting(const char *key, const char *value, void *arg)
{
	struct export_ctx *x = arg;

	if (strcmp(key, "generation") != 0)
		json_kv_string(x->j, key, value);
	return 0;
}

static int export_mech(const char *name, const char *cls, void *arg)
{
	struct export_ctx *x = arg;

	json_object_begin(x->j);
	json_kv_string(x->j, "name", name);
	json_kv_string(x->j, "class", cls);
	json_object_end(x->j);
	return 0;
}

static int export_member(const char *member, void *arg)
{
	json_string(((struct export_ctx *)arg)->j, member);
	return 0;
}

static int export_set(const char *name, int64_t created_at, void *arg)
{
	struct export_ctx *x = arg;

	json_object_begin(x->j);
	json_kv_string(x->j, "name", name);
	json_key(x->j, x->kind == SA_GROUP ? "members" : "nets");
	json_array_begin(x->j);
	if (store_admin_member_foreach(x->db, x->kind, name, export_member, x, &x->err) < 0)
		return -1;
	json_array_end(x->j);
	json_kv_time(x->j, "created_at", (time_t)created_at);
	json_object_end(x->j);
	return 0;
}

static int export_policy(const struct sa_policy *p, void *arg)
{
	ctl_policy_json(((struct export_ctx *)arg)->j, p);
	return 0;
}

static int export_exception(const struct sa_exception *e, void *arg)
{
	ctl_exception_json(((struct export_ctx *)arg)->j, e, 0);
	return 0;
}

int ctl_export_doc(sqlite3 *db, time_t now, FILE *out, struct sg_err *err)
{
	struct export_ctx x = {db, NULL, SA_GROUP, {{0}}};
	struct json j;
	int rc;

	json_init(&j, out, 1);
	j.replace_invalid = 1; /* what an import reads back as text */
	x.j = &j;
	json_object_begin(&j);
	json_kv_string(&j, "format", EXPORT_FORMAT);
	json_kv_int(&j, "version", EXPORT_VERSION);
	json_kv_time(&j, "exported_at", now);
	json_key(&j, "settings");
	json_object_begin(&j);
	rc = store_admin_setting_foreach(db, export_setting, &x, &x.err);
	json_object_end(&j);
	json_key(&j, "mechanisms");
	json_array_begin(&j);
	if (rc >= 0)
		rc = store_admin_mech_foreach(db, export_mech, &x, &x.err);
	json_array_end(&j);
	json_key(&j, "groups");
	json_array_begin(&j);
	if (rc >= 0)
		rc = store_admin_name_foreach(db, SA_GROUP, export_set, &x, &x.err);
	json_array_end(&j);
	json_key(&j, "locations");
	json_array_begin(&j);
	x.kind = SA_LOCATION;
	if (rc >= 0)
		rc = store_admin_name_foreach(db, SA_LOCATION, export_set, &x, &x.err);
	json_array_end(&j);
	json_key(&j, "policies");
	json_array_begin(&j);
	if (rc >= 0)
		rc = store_admin_policy_foreach(db, export_policy, &x, &x.err);
	json_array_end(&j);
	json_key(&j, "exceptions");
	json_array_begin(&j);
	if (rc >= 0)
		rc = store_admin_exception_foreach(db, 1, 0, export_exception, &x, &x.err);
	json_array_end(&j);
	json_object_end(&j);
	json_finish(&j);
	if (rc < 0) {
		*err = x.err;
		return -1;
	}
	return 0;
}

int cmd_export(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	struct sg_err err = {{0}};
	sqlite3 *db = NULL;
	int rc = ctl_start(ctl, cmd, argc, argv, NULL, &db);

	if (rc != CTL_OPT_CONTINUE)
		return rc;
	/* One read transaction: a consistent picture even if an admin writes. */
	if (store_exec(db, "BEGIN", &err) < 0) {
		store_close(&db);
		return ctl_fail("%s", err.text);
	}
	rc = ctl_export_doc(db, ctl->now, stdout, &err);
	store_rollback(db);
	store_close(&db);
	if (rc < 0)
		return ctl_fail("export failed: %s", err.text);
	if (fflush(stdout) != 0 || ferror(stdout))
		return ctl_fail("export: cannot write to standard output: %s", strerror(errno));
	return CTL_OK;
}
