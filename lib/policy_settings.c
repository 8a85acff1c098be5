/*
 * policy_settings - the settings of policy.db; see policy_settings.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mech.h"
#include "policy_settings.h"
#include "store.h"

const struct policy_setting_def policy_setting_table[] = {
    {"unknown_mechanism_class", POLICY_SETTING_CLASS, "legacy", 0, 0,
     "class of a mechanism missing from the catalogue"},
    {"activity_retention_days", POLICY_SETTING_DAYS, "90", 1, 3650,
     "days of decisions kept in activity.db"},
    {NULL, 0, NULL, 0, 0, NULL},
};

const struct policy_setting_def *policy_setting_find(const char *key)
{
	for (const struct policy_setting_def *d = policy_setting_table; d->key != NULL; d++)
		if (strcmp(d->key, key) == 0)
			return d;
	return NULL;
}

/* The keys of the table, ", "-separated, into buf. */
static void setting_keys(char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (const struct policy_setting_def *d = policy_setting_table; d->key != NULL; d++) {
		int n = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", d->key);

		if (n < 0 || (size_t)n >= len - used)
			break;
		used += (size_t)n;
	}
}

/* "legacy, password, modern" into buf. */
static void class_choices(char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (int c = 0; c < MECH_CLASS_COUNT; c++) {
		int n = snprintf(buf + used, len - used, "%s%s", used ? ", " : "",
		                 mech_class_name((enum mech_class)c));

		if (n < 0 || (size_t)n >= len - used)
			break;
		used += (size_t)n;
	}
}

/* A whole number of days within the bounds of def: 0 and *out, else -1. */
static int parse_days(const struct policy_setting_def *def, const char *value, int64_t *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(value, &end, 10);
	if (errno || end == value || *end || v < def->min || v > def->max)
		return -1;
	*out = (int64_t)v;
	return 0;
}

/* Writes the normal form of value for def into norm: 0, or -1 with err. */
static int normalise(const struct policy_setting_def *def, const char *value, char *norm,
                     size_t len, struct sg_err *err)
{
	char choices[64];
	enum mech_class c;
	int64_t days;
	int n;

	switch (def->type) {
	case POLICY_SETTING_CLASS:
		if (mech_class_parse(value, &c) < 0) {
			class_choices(choices, sizeof(choices));
			return sg_err_set(err, "'%s' is not a class (%s)", value, choices);
		}
		n = snprintf(norm, len, "%s", mech_class_name(c));
		break;
	case POLICY_SETTING_DAYS:
		if (parse_days(def, value, &days) < 0)
			return sg_err_set(err, "'%s' is not a number of days between %lld and %lld",
			                  value, (long long)def->min, (long long)def->max);
		n = snprintf(norm, len, "%lld", (long long)days);
		break;
	default:
		return sg_err_set(err, "setting %s: unknown type", def->key);
	}
	if (n < 0 || (size_t)n >= len)
		return sg_err_set(err, "setting %s: value too long", def->key);
	return 0;
}

enum policy_setting_check policy_setting_normalise(const char *key, const char *value, char *norm,
                                                   size_t len, struct sg_err *err)
{
	const struct policy_setting_def *def = policy_setting_find(key);
	char keys[256];

	if (def == NULL) {
		setting_keys(keys, sizeof(keys));
		sg_err_set(err, "unknown setting '%s' (%s)", key, keys);
		return POLICY_SETTING_UNKNOWN;
	}
	if (normalise(def, value, norm, len, err) < 0)
		return POLICY_SETTING_INVALID;
	return POLICY_SETTING_OK;
}

int policy_setting_get(sqlite3 *db, const char *key, char *buf, size_t len, struct sg_err *err)
{
	const struct policy_setting_def *def = policy_setting_find(key);
	int found;

	if (def == NULL)
		return sg_err_set(err, "unknown setting '%s'", key);
	found = store_setting_get(db, key, buf, len, err);
	if (found < 0)
		return -1;
	if (found == 0 && sg_strlcpy(buf, def->def, len) >= len)
		return sg_err_set(err, "setting %s: value too long", key);
	return 0;
}

int policy_setting_get_days(sqlite3 *db, const char *key, int64_t *out, struct sg_err *err)
{
	const struct policy_setting_def *def = policy_setting_find(key);
	char value[64];
	int found;

	*out = 0;
	if (def == NULL || def->type != POLICY_SETTING_DAYS)
		return sg_err_set(err, "'%s' is not a setting in days", key);
	if (parse_days(def, def->def, out) < 0)
		return sg_err_set(err, "setting %s: invalid default", key);
	found = store_setting_get(db, key, value, sizeof(value), err);
	if (found < 0)
		return -1;
	if (found == 1)
		(void)parse_days(def, value, out);
	return 0;
}
