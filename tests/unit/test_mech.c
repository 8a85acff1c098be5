/* Unit tests for lib/mech.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "mech.h"
#include "util.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct {
	const char *name;
	enum mech_class mech_class;
} expected_defaults[] = {
    {"PLAIN", MECH_CLASS_LEGACY},
    {"LOGIN", MECH_CLASS_LEGACY},
    {"CRAM-MD5", MECH_CLASS_LEGACY},
    {"DIGEST-MD5", MECH_CLASS_LEGACY},
    {"NTLM", MECH_CLASS_LEGACY},
    {"ANONYMOUS", MECH_CLASS_LEGACY},
    {"OTP", MECH_CLASS_LEGACY},
    {"SRP", MECH_CLASS_LEGACY},
    {"SCRAM-SHA-1", MECH_CLASS_PASSWORD},
    {"SCRAM-SHA-1-PLUS", MECH_CLASS_PASSWORD},
    {"SCRAM-SHA-224", MECH_CLASS_PASSWORD},
    {"SCRAM-SHA-224-PLUS", MECH_CLASS_PASSWORD},
    {"SCRAM-SHA-256", MECH_CLASS_PASSWORD},
    {"SCRAM-SHA-256-PLUS", MECH_CLASS_PASSWORD},
    {"SCRAM-SHA-384", MECH_CLASS_PASSWORD},
    {"SCRAM-SHA-384-PLUS", MECH_CLASS_PASSWORD},
    {"SCRAM-SHA-512", MECH_CLASS_PASSWORD},
    {"SCRAM-SHA-512-PLUS", MECH_CLASS_PASSWORD},
    {"XOAUTH2", MECH_CLASS_MODERN},
    {"OAUTHBEARER", MECH_CLASS_MODERN},
    {"EXTERNAL", MECH_CLASS_MODERN},
    {"GSSAPI", MECH_CLASS_MODERN},
    {"GS2-KRB5", MECH_CLASS_MODERN},
};

static void test_defaults(void **state)
{
	size_t i, n;

	(void)state;
	for (n = 0; mech_defaults[n].name != NULL; n++) {
		assert_true(mech_name_valid(mech_defaults[n].name));
		for (i = 0; i < n; i++)
			assert_true(sg_strcasecmp(mech_defaults[i].name, mech_defaults[n].name) !=
			            0);
	}
	assert_int_equal(n, N(expected_defaults));
	for (i = 0; i < N(expected_defaults); i++) {
		size_t j;
		int found = 0;

		for (j = 0; mech_defaults[j].name != NULL; j++) {
			if (strcmp(mech_defaults[j].name, expected_defaults[i].name) == 0) {
				assert_int_equal(mech_defaults[j].mech_class,
				                 expected_defaults[i].mech_class);
				found = 1;
			}
		}
		if (!found)
			fail_msg("%s missing from the default catalogue",
			         expected_defaults[i].name);
	}
}

static const struct {
	const char *name;
	int ok;
	enum mech_class c;
} class_cases[] = {
    {"legacy", 0, MECH_CLASS_LEGACY},
    {"LEGACY", 0, MECH_CLASS_LEGACY},
    {"Password", 0, MECH_CLASS_PASSWORD},
    {"modern", 0, MECH_CLASS_MODERN},
    {"", -1, 0},
    {"legacy ", -1, 0},
    {"old", -1, 0},
    {"moderne", -1, 0},
};

static void test_class_names(void **state)
{
	size_t i;

	(void)state;
	assert_string_equal(mech_class_name(MECH_CLASS_LEGACY), "legacy");
	assert_string_equal(mech_class_name(MECH_CLASS_PASSWORD), "password");
	assert_string_equal(mech_class_name(MECH_CLASS_MODERN), "modern");
	for (i = 0; i < N(class_cases); i++) {
		enum mech_class c = MECH_CLASS_COUNT;

		assert_int_equal(mech_class_parse(class_cases[i].name, &c), class_cases[i].ok);
		if (class_cases[i].ok == 0)
			assert_int_equal(c, class_cases[i].c);
		else
			assert_int_equal(c, MECH_CLASS_COUNT);
	}
	assert_int_equal(mech_class_parse(NULL, NULL), -1);
}

static const struct {
	const char *name;
	int valid;
} name_cases[] = {
    {"PLAIN", 1},
    {"plain", 1},
    {"XCLIENT", 1},
    {"SCRAM-SHA-256-PLUS", 1},
    {"X_TOKEN", 1},
    {"A", 1},
    {"12345678901234567890", 1},
    {"123456789012345678901", 0},
    {"", 0},
    {"PLAIN ", 0},
    {"PL AIN", 0},
    {"PLAIN\n", 0},
    {"CRAM.MD5", 0},
    {"X=Y", 0},
    {"\xc3\x89", 0},
};

static void test_name_valid(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < N(name_cases); i++)
		if (mech_name_valid(name_cases[i].name) != name_cases[i].valid)
			fail_msg("\"%s\": want %d", name_cases[i].name, name_cases[i].valid);
	assert_int_equal(mech_name_valid(NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_class_names),
	    cmocka_unit_test(test_name_valid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
