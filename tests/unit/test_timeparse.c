/* Unit tests for lib/timeparse.c. Runs in TZ=UTC except where a zone is set. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "timeparse.h"
#include "util.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct {
	const char *text;
	int ok;
	int64_t seconds;
	const char *err_has;
} duration_cases[] = {
    {"1s", 0, 1, NULL},
    {"600s", 0, 600, NULL},
    {"90m", 0, 5400, NULL},
    {"12h", 0, 43200, NULL},
    {"30d", 0, 2592000, NULL},
    {"2w", 0, 1209600, NULL},
    {"1d12h", 0, 129600, NULL},
    {"1h30m15s", 0, 5415, NULL},
    {"1w1d1h1m1s", 0, 694861, NULL},
    {"", -1, 0, "empty"},
    {"10", -1, 0, "missing unit"},
    {"10x", -1, 0, "unknown unit"},
    {"10M", -1, 0, "unknown unit"},
    {"0s", -1, 0, "positive"},
    {"-5m", -1, 0, "expected a number"},
    {"+5m", -1, 0, "expected a number"},
    {"5 m", -1, 0, "unknown unit"},
    {" 5m", -1, 0, "expected a number"},
    {"1d12", -1, 0, "missing unit"},
    {"h", -1, 0, "expected a number"},
    {"99999999999999999999s", -1, 0, "too large"},
    {"9223372036854775807s", 0, INT64_MAX, NULL},
    {"9223372036854775807s1s", -1, 0, "too large"},
    {"9223372036854775807w", -1, 0, "too large"},
};

static void test_duration(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < N(duration_cases); i++) {
		int64_t s = -1;
		struct sg_err err;
		int r = time_parse_duration(duration_cases[i].text, &s, &err);

		if (r != duration_cases[i].ok)
			fail_msg("\"%s\": got %d", duration_cases[i].text, r);
		if (r == 0)
			assert_int_equal(s, duration_cases[i].seconds);
		else if (strstr(err.text, duration_cases[i].err_has) == NULL)
			fail_msg("\"%s\": message \"%s\" lacks \"%s\"", duration_cases[i].text,
			         err.text, duration_cases[i].err_has);
	}
}

#define NOW ((time_t)1798761600) /* 2027-01-01T00:00:00Z */

static const struct {
	const char *text;
	enum time_direction dir;
	int ok;
	const char *want; /* formatted UTC */
} time_cases[] = {
    {"2026-12-31", TIME_FUTURE, 0, "2026-12-31T00:00:00Z"},
    {"2026-12-31T17:00", TIME_FUTURE, 0, "2026-12-31T17:00:00Z"},
    {"2026-12-31 17:00:05", TIME_FUTURE, 0, "2026-12-31T17:00:05Z"},
    {"2026-12-31T17:00Z", TIME_FUTURE, 0, "2026-12-31T17:00:00Z"},
    {"2026-12-31T17:00:00+01:00", TIME_FUTURE, 0, "2026-12-31T16:00:00Z"},
    {"2026-12-31T17:00-0500", TIME_FUTURE, 0, "2026-12-31T22:00:00Z"},
    {"2026-12-31T23:30-01:00", TIME_FUTURE, 0, "2027-01-01T00:30:00Z"},
    {"2024-02-29", TIME_FUTURE, 0, "2024-02-29T00:00:00Z"},
    {"2000-02-29", TIME_FUTURE, 0, "2000-02-29T00:00:00Z"},
    {"now", TIME_FUTURE, 0, "2027-01-01T00:00:00Z"},
    {"NOW", TIME_PAST, 0, "2027-01-01T00:00:00Z"},
    {"30d", TIME_FUTURE, 0, "2027-01-31T00:00:00Z"},
    {"30d", TIME_PAST, 0, "2026-12-02T00:00:00Z"},
    {"1d12h", TIME_PAST, 0, "2026-12-30T12:00:00Z"},
    {"90m", TIME_FUTURE, 0, "2027-01-01T01:30:00Z"},
    {"2026-02-30", TIME_FUTURE, -1, NULL},
    {"2026-02-29", TIME_FUTURE, -1, NULL},
    {"1900-02-29", TIME_FUTURE, -1, NULL},
    {"2026-13-01", TIME_FUTURE, -1, NULL},
    {"2026-00-10", TIME_FUTURE, -1, NULL},
    {"2026-04-31", TIME_FUTURE, -1, NULL},
    {"2026-01-00", TIME_FUTURE, -1, NULL},
    {"2026-12-31T24:00", TIME_FUTURE, -1, NULL},
    {"2026-12-31T12:60", TIME_FUTURE, -1, NULL},
    {"2026-12-31T12:00:60", TIME_FUTURE, -1, NULL},
    {"2026-12-31T12", TIME_FUTURE, -1, NULL},
    {"2026-12-31T1:00", TIME_FUTURE, -1, NULL},
    {"2026-12-31Z", TIME_FUTURE, -1, NULL},
    {"2026-12-31T12:00+1", TIME_FUTURE, -1, NULL},
    {"2026-12-31T12:00+24:00", TIME_FUTURE, -1, NULL},
    {"2026-12-31T12:00Zjunk", TIME_FUTURE, -1, NULL},
    {"2026-12-31 ", TIME_FUTURE, -1, NULL},
    {"2026-1-1", TIME_FUTURE, -1, NULL},
    {"26-12-31", TIME_FUTURE, -1, NULL},
    {"tomorrow", TIME_FUTURE, -1, NULL},
    {"", TIME_FUTURE, -1, NULL},
    {"-30d", TIME_PAST, -1, NULL},
    {"30", TIME_FUTURE, -1, NULL},
    {"1970-01-01T00:00+01:00", TIME_FUTURE, -1, NULL},
    {"1970-01-01T00:00-01:00", TIME_FUTURE, 0, "1970-01-01T01:00:00Z"},
    {"9999-12-31T23:59:59Z", TIME_FUTURE, 0, "9999-12-31T23:59:59Z"},
    {"9999-12-31T23:00-01:00", TIME_FUTURE, -1, NULL},
};

static void test_time_parse(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < N(time_cases); i++) {
		time_t t = 0;
		struct sg_err err;
		char buf[32];
		int r = time_parse(time_cases[i].text, NOW, time_cases[i].dir, &t, &err);

		if (r != time_cases[i].ok)
			fail_msg("\"%s\": got %d (%s)", time_cases[i].text, r, r ? err.text : "");
		if (r != 0) {
			assert_true(strstr(err.text, "invalid") != NULL ||
			            strstr(err.text, "empty") != NULL);
			continue;
		}
		time_format(t, buf, sizeof(buf));
		if (strcmp(buf, time_cases[i].want) != 0)
			fail_msg("\"%s\": got %s, want %s", time_cases[i].text, buf,
			         time_cases[i].want);
	}
}

/* Without an offset the time is local: check it in a zone that is not UTC. */
static void test_local_time(void **state)
{
	time_t t;
	char buf[32];

	(void)state;
	setenv("TZ", "EST5EDT,M3.2.0,M11.1.0", 1);
	tzset();
	assert_int_equal(time_parse("2026-12-31T17:00", NOW, TIME_FUTURE, &t, NULL), 0);
	time_format(t, buf, sizeof(buf));
	assert_string_equal(buf, "2026-12-31T22:00:00Z");
	assert_int_equal(time_parse("2026-07-01", NOW, TIME_FUTURE, &t, NULL), 0);
	time_format(t, buf, sizeof(buf));
	assert_string_equal(buf, "2026-07-01T04:00:00Z");
	/* an explicit offset ignores the zone */
	assert_int_equal(time_parse("2026-07-01T00:00Z", NOW, TIME_FUTURE, &t, NULL), 0);
	time_format(t, buf, sizeof(buf));
	assert_string_equal(buf, "2026-07-01T00:00:00Z");
	setenv("TZ", "UTC", 1);
	tzset();
}

static void test_format(void **state)
{
	char buf[32];

	(void)state;
	time_format(0, buf, sizeof(buf));
	assert_string_equal(buf, "1970-01-01T00:00:00Z");
	time_format(NOW - 1, buf, sizeof(buf));
	assert_string_equal(buf, "2026-12-31T23:59:59Z");
	assert_int_equal(strlen(buf), 20);
}

static void test_overflow(void **state)
{
	time_t t;
	struct sg_err err;

	(void)state;
	assert_int_equal(time_parse("9223372036854775807s", NOW, TIME_FUTURE, &t, &err), -1);
	assert_non_null(strstr(err.text, "out of range"));
	assert_int_equal(time_parse("9223372036854775807s", NOW, TIME_PAST, &t, &err), 0);
	assert_true(t < 0);
}

static int setup_utc(void **state)
{
	(void)state;
	setenv("TZ", "UTC", 1);
	tzset();
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_duration),   cmocka_unit_test(test_time_parse),
	    cmocka_unit_test(test_local_time), cmocka_unit_test(test_format),
	    cmocka_unit_test(test_overflow),
	};

	return cmocka_run_group_tests(tests, setup_utc, NULL);
}
