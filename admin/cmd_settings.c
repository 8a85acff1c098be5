/*
 * settings - lists and sets the settings stored in policy.db (not the daemons'
 * settings, which live in their configuration files): the class of mechanisms
 * missing from the catalogue and the retention of activity.db. Their keys,
 * defaults and bounds are the table of lib/policy_settings.h.
 */
#include <stdio.h>
#include <string.h>

#include "cmd_settings.h"
#include "ctl.h"
#include "json.h"
#include "policy_settings.h"

int ctl_setting_normalise(const char *field, const char *key, const char *value, char *norm,
                          size_t len)
{
	struct sg_err err = {{0}};

	switch (policy_setting_normalise(key, value, norm, len, &err)) {
	case POLICY_SETTING_OK:
		return CTL_OK;
	case POLICY_SETTING_UNKNOWN:
		return ctl_invalid(field ? field : "setting", "%s", err.text);
	default:
		return ctl_invalid(field ? field : key, "%s", err.text);
	}
}

struct list_ctx {
	struct json *j;
};

static int print_setting(const char *key, const char *value, void *arg)
{
	struct list_ctx *lc = arg;

	if (lc->j) {
		json_object_begin(lc->j);
		json_kv_string(lc->j, "key", key);
		json_kv_string(lc->j, "value", value);
		json_object_end(lc->j);
	} else {
		printf("%-26s %s\n", key, value);
	}
	return 0;
}

static int cmd_settings_list(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	struct list_ctx lc = {NULL};
	struct sg_err err = {{0}};
	struct json j;
	sqlite3 *db;
	int rc = ctl_start(ctl, cmd, argc, argv, NULL, &db);

	if (rc != CTL_OPT_CONTINUE)
		return rc;
	lc.j = json_list_begin(&j, stdout, ctl->json);
	rc = store_admin_setting_foreach(db, print_setting, &lc, &err);
	json_list_end(lc.j);
	store_close(&db);
	return rc < 0 ? ctl_fail("%s", err.text) : CTL_OK;
}

static int cmd_settings_set(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	struct sg_err err = {{0}};
	char norm[64], old[64] = "", before[256], after[256];
	const char *key;
	sqlite3 *db;
	int rc = ctl_parse_plain(ctl, cmd, argc, argv, 2, 2);

	if (rc != CTL_OPT_CONTINUE)
		return rc;
	key = argv[optind];
	if ((rc = ctl_setting_normalise(NULL, key, argv[optind + 1], norm, sizeof(norm))) != CTL_OK)
		return rc;
	if ((rc = ctl_open(ctl, &db)) != CTL_OK)
		return rc;
	if ((rc = ctl_begin(db)) != CTL_OK)
		goto out;
	if (store_setting_get(db, key, old, sizeof(old), &err) < 0 ||
	    store_setting_set(db, key, norm, &err) < 0) {
		rc = ctl_abort(db, ctl_fail("%s", err.text));
		goto out;
	}
	snprintf(before, sizeof(before), "{\"%s\":\"%s\"}", key, old);
	snprintf(after, sizeof(after), "{\"%s\":\"%s\"}", key, norm);
	rc = ctl_finish(db, "settings set", key, before, after);
	if (rc == CTL_OK && !ctl->json)
		printf("%s = %s\n", key, norm);
out:
	store_close(&db);
	return rc;
}

const struct ctl_command ctl_settings_verbs[] = {
    {"list", "", "list the settings of policy.db", cmd_settings_list, NULL, NULL},
    {"set", "KEY VALUE",
     "set unknown_mechanism_class (legacy|password|modern) or activity_retention_days",
     cmd_settings_set, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL, NULL},
};
