/*
 * check - is the store usable: schema version, SQLite integrity and foreign
 * keys, and does the policy compile into a snapshot as the daemons will build
 * it.
 */
#include <stdio.h>

#include "ctl.h"
#include "json.h"
#include "snapshot.h"

int cmd_check(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	struct sg_err integrity = {{0}}, compile = {{0}};
	struct snapshot *snap = NULL;
	int version, want = store_policy_schema_version();
	int ok_integrity, ok_compile, ok_version;
	int64_t generation;
	size_t policies = 0, exceptions = 0, locations = 0;
	sqlite3 *db;
	int rc = ctl_parse_plain(ctl, cmd, argc, argv, 0, 0);

	if (rc != CTL_OPT_CONTINUE)
		return rc;
	if ((rc = ctl_open(ctl, &db)) != CTL_OK)
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
	if (ctl->json) {
		struct json j;

		json_init(&j, stdout, 1);
		json_object_begin(&j);
		json_kv_bool(&j, "ok", ok_version && ok_integrity && ok_compile);
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
	}
	return ok_version && ok_integrity && ok_compile ? CTL_OK : CTL_FAIL;
}
