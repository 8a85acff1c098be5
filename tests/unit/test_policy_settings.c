/* Unit tests for lib/policy_settings.c: the table, validation and the
 * effective values read from a real policy.db. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy_settings.h"
#include "store.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct {
	const char *key, *value;
	enum policy_setting_check result;
	const char *text; /* norm on OK, else err */
} cases[] = {
    {"unknown_mechanism_class", "legacy", POLICY_SETTING_OK, "legacy"},
    {"unknown_mechanism_class", "Modern", POLICY_SETTING_OK, "modern"},
    {"unknown_mechanism_class", "safe", POLICY_SETTING_INVALID,
     "'safe' is not a class (legacy, password, modern)"},
    {"activity_retention_days", "30", POLICY_SETTING_OK, "30"},
    {"activity_retention_days", "1", POLICY_SETTING_OK, "1"},
    {"activity_retention_days", "3650", POLICY_SETTING_OK, "3650"},
    {"activity_retention_days", "0", POLICY_SETTING_INVALID,
     "'0' is not a number of days between 1 and 3650"},
    {"activity_retention_days", "3651", POLICY_SETTING_INVALID,
     "'3651' is not a number of days between 1 and 3650"},
    {"activity_retention_days", "30d", POLICY_SETTING_INVALID,
     "'30d' is not a number of days between 1 and 3650"},
    {"activity_retention_days", "", POLICY_SETTING_INVALID,
     "'' is not a number of days between 1 and 3650"},
    {"generation", "7", POLICY_SETTING_UNKNOWN,
     "unknown setting 'generation' (unknown_mechanism_class, activity_retention_days)"},
    {"UNKNOWN_MECHANISM_CLASS", "legacy", POLICY_SETTING_UNKNOWN,
     "unknown setting 'UNKNOWN_MECHANISM_CLASS' (unknown_mechanism_class, "
     "activity_retention_days)"},
};

static void test_normalise(void **state)
{
	(void)state;
	for (size_t i = 0; i < N(cases); i++) {
		struct sg_err err = {{0}};
		char norm[64] = "";

		assert_int_equal(policy_setting_normalise(cases[i].key, cases[i].value, norm,
		                                          sizeof(norm), &err),
		                 cases[i].result);
		assert_string_equal(cases[i].result == POLICY_SETTING_OK ? norm : err.text,
		                    cases[i].text);
	}
}

/* Every default is valid for its own entry: the table cannot contradict itself. */
static void test_defaults_valid(void **state)
{
	size_t n = 0;

	(void)state;
	for (const struct policy_setting_def *d = policy_setting_table; d->key != NULL; d++, n++) {
		struct sg_err err = {{0}};
		char norm[64];

		assert_ptr_equal(policy_setting_find(d->key), d);
		assert_int_equal(policy_setting_normalise(d->key, d->def, norm, sizeof(norm), &err),
		                 POLICY_SETTING_OK);
		assert_string_equal(norm, d->def);
		assert_non_null(d->help);
	}
	assert_int_equal(n, 2);
	assert_null(policy_setting_find("generation"));
}

/* Stored value, absent row (the default), invalid stored value (the default). */
static void test_effective_values(void **state)
{
	char dir[] = "/tmp/test_policy_settings.XXXXXX", cmd[96], buf[32];
	struct sg_err err = {{0}};
	int64_t days;
	sqlite3 *db;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(store_open_admin(dir, 1, &db, &err), 0);

	assert_int_equal(policy_setting_get(db, "unknown_mechanism_class", buf, sizeof(buf), &err),
	                 0);
	assert_string_equal(buf, "legacy");
	assert_int_equal(store_setting_set(db, "unknown_mechanism_class", "modern", &err), 0);
	assert_int_equal(policy_setting_get(db, "unknown_mechanism_class", buf, sizeof(buf), &err),
	                 0);
	assert_string_equal(buf, "modern");
	assert_int_equal(policy_setting_get(db, "generation", buf, sizeof(buf), &err), -1);

	assert_int_equal(policy_setting_get_days(db, "activity_retention_days", &days, &err), 0);
	assert_int_equal(days, 90);
	assert_int_equal(store_setting_set(db, "activity_retention_days", "30", &err), 0);
	assert_int_equal(policy_setting_get_days(db, "activity_retention_days", &days, &err), 0);
	assert_int_equal(days, 30);
	assert_int_equal(store_setting_set(db, "activity_retention_days", "-5", &err), 0);
	assert_int_equal(policy_setting_get_days(db, "activity_retention_days", &days, &err), 0);
	assert_int_equal(days, 90);
	assert_int_equal(
	    store_exec(db, "DELETE FROM settings WHERE key = 'activity_retention_days'", &err), 0);
	assert_int_equal(policy_setting_get_days(db, "activity_retention_days", &days, &err), 0);
	assert_int_equal(days, 90);
	assert_int_equal(policy_setting_get_days(db, "unknown_mechanism_class", &days, &err), -1);

	store_close(&db);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_normalise),
	    cmocka_unit_test(test_defaults_valid),
	    cmocka_unit_test(test_effective_values),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
