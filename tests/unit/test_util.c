/* Unit tests for lib/util.c and lib/log.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "alloc.h"
#include "log.h"
#include "util.h"

static void test_err_set(void **state)
{
	struct sg_err err;

	(void)state;
	assert_int_equal(sg_err_set(&err, "bad %s at %d", "key", 7), -1);
	assert_string_equal(err.text, "bad key at 7");
	assert_int_equal(sg_err_set(NULL, "dropped"), -1);
}

static void test_err_truncates(void **state)
{
	struct sg_err err;
	char big[SG_ERR_MAX * 2];

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	sg_err_set(&err, "%s", big);
	assert_int_equal(strlen(err.text), SG_ERR_MAX - 1);
}

static const struct {
	const char *src;
	size_t size;
	const char *want;
	size_t ret;
} strlcpy_cases[] = {
    {"hello", 10, "hello", 5}, {"hello", 6, "hello", 5}, {"hello", 5, "hell", 5},
    {"hello", 1, "", 5},       {"", 4, "", 0},           {"ab", 3, "ab", 2},
};

static void test_strlcpy(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(strlcpy_cases) / sizeof(strlcpy_cases[0]); i++) {
		char buf[16];

		memset(buf, 'Z', sizeof(buf));
		assert_int_equal(sg_strlcpy(buf, strlcpy_cases[i].src, strlcpy_cases[i].size),
		                 strlcpy_cases[i].ret);
		assert_string_equal(buf, strlcpy_cases[i].want);
	}
	/* size 0 writes nothing */
	{
		char c = 'Z';

		assert_int_equal(sg_strlcpy(&c, "abc", 0), 3);
		assert_int_equal(c, 'Z');
	}
}

static void test_snprintf(void **state)
{
	char buf[8];

	(void)state;
	assert_int_equal(sg_snprintf(buf, sizeof(buf), "%d-%s", 12, "ab"), 0);
	assert_string_equal(buf, "12-ab");
	assert_int_equal(sg_snprintf(buf, sizeof(buf), "%s", "1234567"), 0);
	assert_int_equal(sg_snprintf(buf, sizeof(buf), "%s", "12345678"), -1);
	assert_string_equal(buf, "1234567");
}

static const struct {
	const char *src;
	const char *lower;
	const char *upper;
} case_cases[] = {
    {"Alice@Example.COM", "alice@example.com", "ALICE@EXAMPLE.COM"},
    {"scram-sha-1", "scram-sha-1", "SCRAM-SHA-1"},
    {"", "", ""},
    /* non-ASCII bytes are left alone (never locale dependent) */
    {"\xc3\x89t\xc3\xa9", "\xc3\x89t\xc3\xa9", "\xc3\x89T\xc3\xa9"},
    {"[Z]@`a{", "[z]@`a{", "[Z]@`A{"},
    /* longer than a word (sg_lower works eight bytes at a time): the letters'
     * neighbours, and bytes that are letters but for their high bit */
    {"@AZ[`az{\xc1\xda\xe1\xfaQwErTy\x7f\x80Mm", "@az[`az{\xc1\xda\xe1\xfaqwerty\x7f\x80mm",
     "@AZ[`AZ{\xc1\xda\xe1\xfaQWERTY\x7f\x80MM"},
};

static void test_case(void **state)
{
	size_t i;
	char buf[64];

	(void)state;
	for (i = 0; i < sizeof(case_cases) / sizeof(case_cases[0]); i++) {
		assert_int_equal(sg_lower(buf, case_cases[i].src, sizeof(buf)),
		                 strlen(case_cases[i].src));
		assert_string_equal(buf, case_cases[i].lower);
		sg_upper(buf, case_cases[i].src, sizeof(buf));
		assert_string_equal(buf, case_cases[i].upper);
	}
	assert_int_equal(sg_lower(buf, "ABCDEF", 4), 6);
	assert_string_equal(buf, "abc");
	assert_int_equal(sg_upper(buf, "abcdefghijklmnop", 12), 16);
	assert_string_equal(buf, "ABCDEFGHIJK");
}

static const struct {
	const char *a, *b;
	int sign;
} cmp_cases[] = {
    {"PLAIN", "plain", 0}, {"a", "b", -1},        {"B", "a", 1},        {"abc", "ABCD", -1},
    {"", "", 0},           {"x-Y_z", "X-y_Z", 0}, {"\xc9", "\xe9", -1}, {"[", "{", -1},
};

static void test_strcasecmp(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cmp_cases) / sizeof(cmp_cases[0]); i++) {
		int r = sg_strcasecmp(cmp_cases[i].a, cmp_cases[i].b);
		int sign = r < 0 ? -1 : r > 0;

		assert_int_equal(sign, cmp_cases[i].sign);
	}
}

static const struct {
	const char *list;
	const char *items[6]; /* NULL-terminated expectation */
} list_cases[] = {
    {"legacy,XOAUTH2", {"legacy", "XOAUTH2", NULL}},
    {"  a , b ,, ,c  ", {"a", "b", "c", NULL}},
    {"", {NULL}},
    {" , ,", {NULL}},
    {"one", {"one", NULL}},
    {"a b,\tc\t", {"a b", "c", NULL}},
};

static void test_list_next(void **state)
{
	size_t i, n;
	char item[32];

	(void)state;
	for (i = 0; i < sizeof(list_cases) / sizeof(list_cases[0]); i++) {
		const char *cur = list_cases[i].list;

		for (n = 0; list_cases[i].items[n] != NULL; n++) {
			assert_int_equal(list_next(&cur, item, sizeof(item)), 1);
			assert_string_equal(item, list_cases[i].items[n]);
		}
		assert_int_equal(list_next(&cur, item, sizeof(item)), 0);
		assert_int_equal(list_next(&cur, item, sizeof(item)), 0);
	}
}

static void test_list_next_too_long(void **state)
{
	const char *cur = "short,muchtoolongitem,x";
	char item[8];

	(void)state;
	assert_int_equal(list_next(&cur, item, sizeof(item)), 1);
	assert_string_equal(item, "short");
	assert_int_equal(list_next(&cur, item, sizeof(item)), -1);
	cur = "1234567";
	assert_int_equal(list_next(&cur, item, sizeof(item)), 1);
	cur = "12345678";
	assert_int_equal(list_next(&cur, item, sizeof(item)), -1);
}

static void test_alloc(void **state)
{
	char *s, *t;
	int *v;

	(void)state;
	s = xstrdup("abc");
	assert_string_equal(s, "abc");
	t = xstrndup("abcdef", 3);
	assert_string_equal(t, "abc");
	free(t);
	t = xstrndup("ab", 10);
	assert_string_equal(t, "ab");
	free(t);
	v = xcalloc(4, sizeof(*v));
	assert_int_equal(v[0] | v[1] | v[2] | v[3], 0);
	v = xrealloc(v, 100 * sizeof(*v));
	v[99] = 5;
	assert_int_equal(v[99], 5);
	free(v);
	free(s);
	free(xmalloc(0));
}

static const struct {
	const char *name;
	int ok;
	int facility;
} facility_cases[] = {
    {"mail", 0, LOG_MAIL},     {"MAIL", 0, LOG_MAIL},
    {"daemon", 0, LOG_DAEMON}, {"user", 0, LOG_USER},
    {"local0", 0, LOG_LOCAL0}, {"local7", 0, LOG_LOCAL7},
    {"local8", -1, 0},         {"", -1, 0},
    {"kern", -1, 0},           {"mail ", -1, 0},
};

static void test_facility_parse(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(facility_cases) / sizeof(facility_cases[0]); i++) {
		int f = -12345;

		assert_int_equal(log_facility_parse(facility_cases[i].name, &f),
		                 facility_cases[i].ok);
		if (facility_cases[i].ok == 0)
			assert_int_equal(f, facility_cases[i].facility);
		else
			assert_int_equal(f, -12345);
	}
}

/* Captures what the logger writes to stderr while fn runs. */
static void capture_stderr(void (*fn)(void), char *buf, size_t len)
{
	FILE *tmp = tmpfile();
	int saved = dup(2);
	size_t n;

	assert_non_null(tmp);
	fflush(stderr);
	dup2(fileno(tmp), 2);
	fn();
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(tmp);
	n = fread(buf, 1, len - 1, tmp);
	buf[n] = '\0';
	fclose(tmp);
}

static void emit_lines(void)
{
	log_debug("hidden %d", 1);
	log_info("shown %s", "info");
	log_warning("user=%s", "evil\nforged line");
	log_error("err");
}

static void emit_warning_only(void)
{
	log_set_level(LOG_LEVEL_WARNING);
	log_info("hidden");
	log_warning("warn");
	log_set_level(LOG_LEVEL_INFO);
}

static void test_log_stderr(void **state)
{
	char buf[1024];

	(void)state;
	log_open("/usr/sbin/saslgate-test", 1, LOG_MAIL);
	capture_stderr(emit_lines, buf, sizeof(buf));
	assert_string_equal(buf, "saslgate-test: info: shown info\n"
	                         "saslgate-test: warning: user=evil?forged line\n"
	                         "saslgate-test: error: err\n");
	capture_stderr(emit_warning_only, buf, sizeof(buf));
	assert_string_equal(buf, "saslgate-test: warning: warn\n");
}

/* fatal() logs the line and exits with status 1. */
static void test_fatal(void **state)
{
	int fds[2];
	pid_t pid;
	int status;
	char buf[256];
	ssize_t n;

	(void)state;
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fds[1], 2);
		log_open("saslgate-test", 1, LOG_MAIL);
		fatal("cannot bind %s", "unix:/x");
	}
	close(fds[1]);
	n = read(fds[0], buf, sizeof(buf) - 1);
	close(fds[0]);
	assert_true(n > 0);
	buf[n] = '\0';
	waitpid(pid, &status, 0);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
	assert_string_equal(buf, "saslgate-test: error: cannot bind unix:/x\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_err_set),    cmocka_unit_test(test_err_truncates),
	    cmocka_unit_test(test_strlcpy),    cmocka_unit_test(test_snprintf),
	    cmocka_unit_test(test_case),       cmocka_unit_test(test_strcasecmp),
	    cmocka_unit_test(test_list_next),  cmocka_unit_test(test_list_next_too_long),
	    cmocka_unit_test(test_alloc),      cmocka_unit_test(test_facility_parse),
	    cmocka_unit_test(test_log_stderr), cmocka_unit_test(test_fatal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
