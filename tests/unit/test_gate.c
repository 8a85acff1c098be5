/* Unit tests for lib/gate.c: on_error parsing, reply parsing, the fallback
 * replies and the on_error answer every front end gets from the gate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "gate.h"
#include "settings.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct {
	const char *text;
	int rc;
	const char *code, *enh, *reply_text; /* when rc == 0 */
	const char *error_part;              /* when rc == -1 */
} replies[] = {
    {"451 4.3.0 try later", 0, "451", "4.3.0", "try later", NULL},
    {"550 5.7.1 no", 0, "550", "5.7.1", "no", NULL},
    {"451 try later", 0, "451", "", "try later", NULL},
    {"451   4.3.0   spaced", 0, "451", "4.3.0", "spaced", NULL},
    {"250 2.0.0 ok", -1, NULL, NULL, NULL, "4xx or 5xx"},
    {"45 4.3.0 short", -1, NULL, NULL, NULL, "4xx or 5xx"},
    {"451 5.3.0 classes disagree", -1, NULL, NULL, NULL, "agree"},
    {"550 5.7 two parts", -1, NULL, NULL, NULL, "class.subject.detail"},
    {"451 4.3.0 line\nbreak", -1, NULL, NULL, NULL, "printable ASCII"},
    {"451 4.3.0 caf\xc3\xa9", -1, NULL, NULL, NULL, "printable ASCII"},
    {"451 4.3.0.0000000000000000 long", -1, NULL, NULL, NULL, "too long"},
};

static void test_reply_parse(void **state)
{
	(void)state;
	for (size_t i = 0; i < N(replies); i++) {
		struct gate_reply r;
		struct sg_err err = {{0}};
		int rc = gate_reply_parse(replies[i].text, &r, &err);

		if (rc != replies[i].rc)
			fail_msg("\"%s\": rc %d, expected %d (%s)", replies[i].text, rc,
			         replies[i].rc, err.text);
		if (rc == 0) {
			assert_string_equal(r.code, replies[i].code);
			assert_string_equal(r.enh, replies[i].enh);
			assert_string_equal(r.text, replies[i].reply_text);
		} else if (strstr(err.text, replies[i].error_part) == NULL) {
			fail_msg("\"%s\": error \"%s\" lacks \"%s\"", replies[i].text, err.text,
			         replies[i].error_part);
		}
	}
}

static void test_on_error_names(void **state)
{
	enum gate_on_error e;

	(void)state;
	assert_int_equal(gate_on_error_parse("tempfail", &e), 0);
	assert_int_equal(e, GATE_ON_ERROR_TEMPFAIL);
	assert_int_equal(gate_on_error_parse("accept", &e), 0);
	assert_int_equal(e, GATE_ON_ERROR_ACCEPT);
	assert_int_equal(gate_on_error_parse("reject", &e), 0);
	assert_int_equal(e, GATE_ON_ERROR_REJECT);
	assert_int_equal(gate_on_error_parse("drop", &e), -1);
	assert_string_equal(gate_on_error_name(GATE_ON_ERROR_REJECT), "reject");
}

/* on_error_reply replaces the built-in reply of its own class only. */
static void test_fallback_replies_by_class(void **state)
{
	struct settings s;
	struct gate_fallback f;
	struct sg_err err = {{0}};

	(void)state;
	settings_init(&s, SETTINGS_POLICYD);
	assert_int_equal(gate_fallback_from_settings(&s, &f, &err), 0);
	assert_int_equal(f.action, GATE_ON_ERROR_TEMPFAIL);
	assert_string_equal(f.tempfail_reply.code, "451");
	assert_string_equal(f.reject_reply.code, "550");
	assert_string_equal(f.reject_reply.enh, "5.3.0");

	assert_int_equal(settings_set(&s, "on_error", "reject", &err), 0);
	assert_int_equal(settings_set(&s, "on_error_reply", "554 5.7.1 closed for now", &err), 0);
	assert_int_equal(gate_fallback_from_settings(&s, &f, &err), 0);
	assert_int_equal(f.action, GATE_ON_ERROR_REJECT);
	assert_string_equal(f.reject_reply.code, "554");
	assert_string_equal(f.reject_reply.text, "closed for now");
	assert_string_equal(f.tempfail_reply.enh, "4.3.0");

	assert_int_equal(settings_set(&s, "on_error_reply", "451 5.3.0 disagree", &err), 0);
	assert_int_equal(gate_fallback_from_settings(&s, &f, &err), -1);
	assert_non_null(strstr(err.text, "on_error_reply"));
	settings_free(&s);
}

/* gate_fail() hands every front end the same on_error answer as a decision,
 * and counts the error in the activity writer. */
static void test_fail_gives_the_on_error_answer(void **state)
{
	char dir[] = "/tmp/test_gate.XXXXXX";
	struct activity_options ao = {
	    .program = "test", .queue_max = 100, .flush_ms = 10, .heartbeat_s = 5};
	struct gate_fallback f;
	struct gate g;
	struct decision d;
	struct settings s;
	struct sg_err err = {{0}};
	char cmd[64];

	(void)state;
	assert_non_null(mkdtemp(dir));
	ao.dir = dir;
	settings_init(&s, SETTINGS_MILTER);
	assert_int_equal(gate_fallback_from_settings(&s, &f, &err), 0);
	memset(&g, 0, sizeof(g));
	g.fallback = &f;
	g.activity = activity_open(&ao, &err);
	assert_non_null(g.activity);

	assert_int_equal(gate_fail(&g, "test", "192.0.2.1", "i1", &d), -1);
	assert_int_equal(d.outcome, OUTCOME_BLOCK);
	assert_null(d.policy);
	assert_string_equal(d.reply_code, "451");
	assert_string_equal(d.reply_enh, "4.3.0");
	decision_release(&d);

	f.action = GATE_ON_ERROR_REJECT;
	gate_fail(&g, "test", NULL, NULL, &d);
	assert_int_equal(d.outcome, OUTCOME_BLOCK);
	assert_string_equal(d.reply_code, "550");
	decision_release(&d);

	f.action = GATE_ON_ERROR_ACCEPT;
	gate_fail(&g, "test", NULL, NULL, &d);
	assert_int_equal(d.outcome, OUTCOME_ALLOW);
	decision_release(&d);

	activity_close(&g.activity);
	settings_free(&s);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reply_parse),
	    cmocka_unit_test(test_on_error_names),
	    cmocka_unit_test(test_fallback_replies_by_class),
	    cmocka_unit_test(test_fail_gives_the_on_error_answer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
