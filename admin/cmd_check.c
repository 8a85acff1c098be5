/*
 * check - is the store usable: schema version, SQLite integrity and foreign
 * keys, and does the policy compile into a snapshot as the daemons will build
 * it; and, once a daemon has created it, is activity.db intact (after a crash
 * or a full disk, say).
 */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "ctl.h"
#include "json.h"
#include "snapshot.h"

enum activity_state { ACTIVITY_ABSENT, ACTIVITY_OK, ACTIVITY_BROKEN };

/* activity.db: schema version, integrity and foreign keys, read-only. */
static enum activity_state check_activity(const char *dir, struct sg_err *err)
{
	char path[4096];
	sqlite3 *db = NULL;
	int rc;

	if (store_path(dir, STORE_ACTIVITY_DB, path, sizeof(path), err) < 0)
		return ACTIVITY_BROKEN;
	if (access(path, F_OK) < 0 && errno == ENOENT)
		return ACTIVITY_ABSENT;
	if (store_open_activity(dir, 1, &db, err) < 0)
		return ACTIVITY_BROKEN;
	rc = store_check(db, err);
	store_close(&db);
	return rc == 0 ? ACTIVITY_OK : ACTIVITY_BROKEN;
}

int cmd_check(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	struct sg_err integrity = {{0}}, compile = {{0}};
	struct snapshot *snap = NULL;
	int version, want = store_policy_schema_version();
	int ok_integrity, ok_compile, ok_version;
	int64_t generation;
	size_t policies = 0, exceptions = 0, locations = 0;
	struct sg_err activity_err = {{0}};
	enum activity_state activity;
	sqlite3 *db;
	int rc = ctl_start(ctl, cmd, argc, argv, NULL, &db);

	if (rc != CTL_OPT_CONTINUE)
		return rc;
	version = store_schema_version(db);
	ok_version = version == want;
	ok_integrity = store_check(db, &integrity) == 0;
	snap = snapshot_load(db, &compile);
	ok_compile = snap != NULL;
	generation = store_generation(db);
	if (snap) {
		policies = snapshot_policy_count(snap);
		exceptions = snapshot_exception_count(snap);
		locations = snapshot_location_count(snap);
		snapshot_unref(&snap);
	}
	store_close(&db);
	activity = check_activity(ctl->dir, &activity_err);
	if (ctl->json) {
		struct json j;

		json_init(&j, stdout, 1);
		json_object_begin(&j);
		json_kv_bool(&j, "ok",
		             ok_version && ok_integrity && ok_compile &&
		                 activity != ACTIVITY_BROKEN);
		json_kv_string(&j, "store", ctl->dir);
		json_kv_int(&j, "schema_version", version);
		json_kv_int(&j, "schema_version_expected", want);
		json_kv_bool(&j, "integrity", ok_integrity);
		json_kv_string(&j, "integrity_error", ok_integrity ? NULL : integrity.text);
		json_kv_bool(&j, "compiles", ok_compile);
		json_kv_string(&j, "compile_error", ok_compile ? NULL : compile.text);
		json_kv_int(&j, "generation", generation);
		json_kv_int(&j, "policies", (int64_t)policies);
		json_kv_int(&j, "exceptions", (int64_t)exceptions);
		json_kv_int(&j, "locations", (int64_t)locations);
		json_key(&j, "activity_integrity");
		if (activity == ACTIVITY_ABSENT)
			json_null(&j);
		else
			json_bool(&j, activity == ACTIVITY_OK);
		json_kv_string(&j, "activity_error",
		               activity == ACTIVITY_BROKEN ? activity_err.text : NULL);
		json_object_end(&j);
		json_finish(&j);
	} else {
		printf("store:          %s\n", ctl->dir);
		printf("schema version: %d (%s)\n", version, ok_version ? "ok" : "UNEXPECTED");
		printf("integrity:      %s\n", ok_integrity ? "ok" : integrity.text);
		printf("policy:         %s\n", ok_compile ? "compiles" : compile.text);
		printf("generation:     %lld\n", (long long)generation);
		if (ok_compile)
			printf("contents:       %zu policies, %zu exceptions, %zu locations\n",
			       policies, exceptions, locations);
		printf("activity.db:    %s\n", activity == ACTIVITY_ABSENT ? "not created yet"
		                               : activity == ACTIVITY_OK   ? "ok"
		                                                           : activity_err.text);
	}
	return ok_version && ok_integrity && ok_compile && activity != ACTIVITY_BROKEN ? CTL_OK
	                                                                               : CTL_FAIL;
}
