/* Unit tests for lib/settings.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "settings.h"
#include "util.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define P    SETTINGS_POLICYD
#define M    SETTINGS_MILTER

/* The contract of TEAM.md, key by key. */
static const struct {
	const char *key;
	enum setting_type type;
	const char *def;
	int64_t min, max;
	unsigned programs;
} expected[] = {
    {"store_dir", SETTING_STRING, "", 0, 0, P | M},
    {"store", SETTING_STRING, "", 0, 0, P | M},
    {"user", SETTING_STRING, "", 0, 0, P | M},
    {"group", SETTING_STRING, "", 0, 0, P | M},
    {"pid_file", SETTING_STRING, "", 0, 0, P | M},
    {"syslog_facility", SETTING_ENUM, "mail", 0, 0, P | M},
    {"log_decisions", SETTING_BOOL, "yes", 0, 0, P | M},
    {"on_error", SETTING_ENUM, "tempfail", 0, 0, P | M},
    {"on_error_reply", SETTING_STRING,
     "451 4.3.0 saslgate: temporary policy error, try again later", 0, 0, P | M},
    {"activity_queue_max", SETTING_INT, "100000", 100, 1000000, P | M},
    {"activity_nice", SETTING_INT, "19", 0, 19, P | M},
    {"activity_flush_ms", SETTING_INT, "200", 10, 10000, P | M},
    {"heartbeat_interval", SETTING_DURATION, "5s", 1, 3600, P | M},
    {"host_name", SETTING_STRING, "", 0, 0, P | M},
    {"fleet_spool_max", SETTING_INT, "1000000", 1000, 100000000, P | M},
    {"socket_mode", SETTING_STRING, "0660", 0, 0, P | M},
    {"socket_owner", SETTING_STRING, "", 0, 0, P | M},
    {"socket_group", SETTING_STRING, "", 0, 0, P | M},
    {"listen", SETTING_STRING, "", 0, 0, P},
    {"report_only_action", SETTING_ENUM, "dunno", 0, 0, P},
    {"max_line_bytes", SETTING_INT, "4096", 64, 65536, P},
    {"max_attributes", SETTING_INT, "100", 8, 1000, P},
    {"max_request_bytes", SETTING_INT, "32768", 256, 1048576, P},
    {"idle_timeout", SETTING_DURATION, "600s", 1, 86400, P},
    {"request_timeout", SETTING_DURATION, "10s", 1, 3600, P},
    {"max_connections", SETTING_INT, "1000", 1, 100000, P},
    {"http_api_key", SETTING_STRING, "", 0, 0, P},
    {"http_timeout", SETTING_DURATION, "10s", 1, 3600, P},
    {"socket", SETTING_STRING, "", 0, 0, M},
    {"milter_timeout", SETTING_DURATION, "600s", 1, 86400, M},
    {"milter_backlog", SETTING_INT, "4096", 1, 65535, M},
    {"milter_thread_stack", SETTING_INT, "256", 64, 65536, M},
};

static void test_table(void **state)
{
	size_t i, n;

	(void)state;
	for (n = 0; settings_table[n].key != NULL; n++) {
		assert_non_null(settings_table[n].help);
		assert_true(strlen(settings_table[n].help) > 10);
		assert_null(strchr(settings_table[n].help, '\n'));
	}
	assert_int_equal(n, N(expected));
	assert_true(n <= SETTINGS_MAX);
	for (i = 0; i < n; i++) {
		assert_string_equal(settings_table[i].key, expected[i].key);
		assert_int_equal(settings_table[i].type, expected[i].type);
		assert_string_equal(settings_table[i].def, expected[i].def);
		assert_int_equal(settings_table[i].programs, expected[i].programs);
		if (expected[i].type == SETTING_INT || expected[i].type == SETTING_DURATION) {
			assert_int_equal(settings_table[i].min, expected[i].min);
			assert_int_equal(settings_table[i].max, expected[i].max);
		}
	}
}

/* Every default passes its own validation. */
static void test_defaults_valid(void **state)
{
	struct settings s;
	struct sg_err err;
	size_t i;

	(void)state;
	for (i = 0; settings_table[i].key != NULL; i++) {
		settings_init(&s, settings_table[i].programs & P ? P : M);
		if (settings_set(&s, settings_table[i].key, settings_table[i].def, &err) != 0)
			fail_msg("default of %s rejected: %s", settings_table[i].key, err.text);
		settings_free(&s);
	}
}

static void test_getters(void **state)
{
	struct settings s;

	(void)state;
	settings_init(&s, P);
	assert_int_equal(settings_int(&s, "max_line_bytes"), 4096);
	assert_int_equal(settings_int(&s, "idle_timeout"), 600);
	assert_int_equal(settings_int(&s, "heartbeat_interval"), 5);
	assert_int_equal(settings_bool(&s, "log_decisions"), 1);
	assert_string_equal(settings_str(&s, "on_error"), "tempfail");
	assert_string_equal(settings_str(&s, "socket_mode"), "0660");
	assert_int_equal(settings_set(&s, "idle_timeout", "1h", NULL), 0);
	assert_int_equal(settings_int(&s, "idle_timeout"), 3600);
	assert_int_equal(settings_set(&s, "log_decisions", "OFF", NULL), 0);
	assert_int_equal(settings_bool(&s, "log_decisions"), 0);
	assert_string_equal(settings_str(&s, "log_decisions"), "no");
	assert_int_equal(settings_set(&s, "on_error", "Accept", NULL), 0);
	assert_string_equal(settings_str(&s, "on_error"), "accept");
	settings_free(&s);
	settings_free(&s); /* twice is harmless */
}

static const struct {
	unsigned program;
	const char *key, *value;
	int ok;
	const char *err_has; /* for rejections */
} set_cases[] = {
    {P, "max_line_bytes", "64", 0, NULL},
    {P, "max_line_bytes", "65536", 0, NULL},
    {P, "max_line_bytes", "63", -1, "max_line_bytes"},
    {P, "max_line_bytes", "65537", -1, "out of range (64..65536)"},
    {P, "max_line_bytes", "4k", -1, "max_line_bytes"},
    {P, "max_line_bytes", "", -1, "max_line_bytes"},
    {P, "max_line_bytes", " 100", -1, "not a whole number"},
    {P, "max_line_bytes", "99999999999999999999999", -1, "max_line_bytes"},
    {P, "max_attributes", "-8", -1, "max_attributes"},
    {P, "idle_timeout", "1d", 0, NULL},
    {P, "idle_timeout", "2d", -1, "idle_timeout"},
    {P, "idle_timeout", "600", -1, "idle_timeout"},
    {P, "idle_timeout", "0s", -1, "idle_timeout"},
    {M, "heartbeat_interval", "1h", 0, NULL},
    {M, "heartbeat_interval", "61m", -1, "heartbeat_interval"},
    {P, "log_decisions", "true", 0, NULL},
    {P, "log_decisions", "1", 0, NULL},
    {P, "log_decisions", "maybe", -1, "log_decisions"},
    {P, "syslog_facility", "local3", 0, NULL},
    {P, "syslog_facility", "local8", -1, "syslog_facility"},
    {P, "on_error", "reject", 0, NULL},
    {P, "on_error", "drop", -1, "tempfail|accept|reject"},
    {P, "report_only_action", "warn", 0, NULL},
    {P, "report_only_action", "reject", -1, "report_only_action"},
    {M, "report_only_action", "warn", -1, "not used by saslgate-milter"},
    {P, "socket", "inet:1234@localhost", -1, "not used by saslgate-policyd"},
    {M, "socket", "inet:1234@localhost", 0, NULL},
    {M, "milter_backlog", "65536", -1, "milter_backlog"},
    {P, "socket_mode", "0600", 0, NULL},
    {P, "socket_mode", "660", 0, NULL},
    {P, "socket_mode", "0777", 0, NULL},
    {P, "socket_mode", "1777", -1, "socket_mode"},
    {P, "socket_mode", "0680", -1, "socket_mode"},
    {P, "socket_mode", "rw", -1, "socket_mode"},
    {P, "socket_mode", "", -1, "socket_mode"},
    {P, "on_error_reply", "450 4.7.1 try later", 0, NULL},
    {P, "on_error_reply", "451 a\r\nb", -1, "on_error_reply"},
    {P, "no_such_key", "1", -1, "unknown setting \"no_such_key\""},
    {P, "MAX_LINE_BYTES", "100", -1, "unknown setting"},
};

static void test_set(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < N(set_cases); i++) {
		struct settings s;
		struct sg_err err;
		int r;

		settings_init(&s, set_cases[i].program);
		r = settings_set(&s, set_cases[i].key, set_cases[i].value, &err);
		if (r != set_cases[i].ok)
			fail_msg("%s=%s: got %d", set_cases[i].key, set_cases[i].value, r);
		if (r != 0 && strstr(err.text, set_cases[i].err_has) == NULL)
			fail_msg("%s=%s: message \"%s\" lacks \"%s\"", set_cases[i].key,
			         set_cases[i].value, err.text, set_cases[i].err_has);
		if (r == 0)
			assert_non_null(settings_str(&s, set_cases[i].key));
		settings_free(&s);
	}
}

static void test_set_pair(void **state)
{
	struct settings s;
	struct sg_err err;

	(void)state;
	settings_init(&s, P);
	assert_int_equal(settings_set_pair(&s, "max_connections=5", &err), 0);
	assert_int_equal(settings_int(&s, "max_connections"), 5);
	assert_int_equal(settings_set_pair(&s, " listen = unix:/tmp/s , inet:127.0.0.1:0 ", &err),
	                 0);
	assert_string_equal(settings_str(&s, "listen"), "unix:/tmp/s , inet:127.0.0.1:0");
	assert_int_equal(settings_set_pair(&s, "max_connections", &err), -1);
	assert_int_equal(settings_set_pair(&s, "max_connections=0", &err), -1);
	assert_non_null(strstr(err.text, "max_connections"));
	assert_int_equal(settings_int(&s, "max_connections"), 5);
	settings_free(&s);
}

static void write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static void test_load_file(void **state)
{
	char path[] = "/tmp/test_settings_XXXXXX";
	struct settings s;
	struct sg_err err;
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	close(fd);
	settings_init(&s, P);
	write_file(path, "# saslgate-policyd\n"
	                 "\n"
	                 "max_line_bytes = 8192\n"
	                 "  idle_timeout=5m  \n"
	                 "on_error_reply = \"451 4.3.0 busy # not a comment\"\n"
	                 "log_decisions = no\n");
	assert_int_equal(settings_load_file(&s, path, &err), 0);
	assert_int_equal(settings_int(&s, "max_line_bytes"), 8192);
	assert_int_equal(settings_int(&s, "idle_timeout"), 300);
	assert_string_equal(settings_str(&s, "on_error_reply"), "451 4.3.0 busy # not a comment");
	assert_int_equal(settings_bool(&s, "log_decisions"), 0);

	/* all or nothing: a bad line 3 leaves line 2 unapplied */
	write_file(path, "# comment\n"
	                 "max_line_bytes = 1024\n"
	                 "max_attributes = 5\n");
	assert_int_equal(settings_load_file(&s, path, &err), -1);
	assert_non_null(strstr(err.text, path));
	assert_non_null(strstr(err.text, ":3:"));
	assert_non_null(strstr(err.text, "max_attributes"));
	assert_int_equal(settings_int(&s, "max_line_bytes"), 8192);

	write_file(path, "max_line_bytes = 1024\nthis line has no equals sign\n");
	assert_int_equal(settings_load_file(&s, path, &err), -1);
	assert_non_null(strstr(err.text, ":2:"));
	assert_int_equal(settings_int(&s, "max_line_bytes"), 8192);

	write_file(path, "socket = inet:1234@localhost\n");
	assert_int_equal(settings_load_file(&s, path, &err), -1);
	assert_non_null(strstr(err.text, ":1:"));
	assert_non_null(strstr(err.text, "socket"));

	unlink(path);
	assert_int_equal(settings_load_file(&s, path, &err), -1);
	assert_non_null(strstr(err.text, path));
	settings_free(&s);
}

static void test_print(void **state)
{
	struct settings s;
	char buf[4096];
	size_t n;
	FILE *fp;

	(void)state;
	settings_init(&s, M);
	assert_int_equal(settings_set(&s, "milter_backlog", "64", NULL), 0);
	fp = tmpfile();
	assert_non_null(fp);
	settings_print(&s, fp);
	rewind(fp);
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	buf[n] = '\0';
	fclose(fp);
	assert_non_null(strstr(buf, "store_dir = \n"));
	assert_non_null(strstr(buf, "milter_backlog = 64\n"));
	assert_non_null(strstr(buf, "milter_timeout = 600s\n"));
	assert_non_null(strstr(buf, "socket_mode = 0660\n"));
	assert_null(strstr(buf, "max_line_bytes"));
	assert_null(strstr(buf, "listen"));
	/* table order */
	assert_true(strstr(buf, "store_dir") < strstr(buf, "milter_backlog"));
	settings_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table),    cmocka_unit_test(test_defaults_valid),
	    cmocka_unit_test(test_getters),  cmocka_unit_test(test_set),
	    cmocka_unit_test(test_set_pair), cmocka_unit_test(test_load_file),
	    cmocka_unit_test(test_print),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
