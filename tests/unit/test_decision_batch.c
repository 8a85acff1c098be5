/* Unit tests for lib/decision_batch.c and lib/decision_line.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "decision_batch.h"
#include "decision_line.h"

static const struct decision_record blocked = {
    .at = 1796300000,
    .generation = 42,
    .tls = 1,
    .queue_id = "4Xq0000001",
    .instance = "a1b2.c3.0",
    .user = "alice@example.com",
    .client = "192.0.2.7",
    .mech = "PLAIN",
    .mech_class = "legacy",
    .service = "submission",
    .sender = "alice@example.com",
    .outcome = "block",
    .policy = "block-legacy",
    .report_only = "",
};

/* Texts that need every escape: a quote, a backslash, control bytes, a
 * byte that is not UTF-8 (kept as it is), and an empty one (null). */
static const struct decision_record odd = {
    .at = -5,
    .generation = 0,
    .tls = 0,
    .user = "q\"b\\s\tn\nx\x01\xff",
    .mech = "-",
    .outcome = "not-authenticated",
};

static void assert_same_text(const char *want, const char *got)
{
	if (want == NULL || *want == '\0')
		assert_null(got);
	else
		assert_string_equal(want, got);
}

static void assert_same(const struct decision_record *w, const struct decision_record *g)
{
	assert_int_equal(w->at, g->at);
	assert_int_equal(w->generation, g->generation);
	assert_int_equal(w->tls, g->tls);
	assert_same_text(w->queue_id, g->queue_id);
	assert_same_text(w->instance, g->instance);
	assert_same_text(w->user, g->user);
	assert_same_text(w->client, g->client);
	assert_same_text(w->mech, g->mech);
	assert_same_text(w->mech_class, g->mech_class);
	assert_same_text(w->service, g->service);
	assert_same_text(w->sender, g->sender);
	assert_same_text(w->outcome, g->outcome);
	assert_same_text(w->policy, g->policy);
	assert_same_text(w->report_only, g->report_only);
}

static void test_encode_fields_in_order(void **state)
{
	char buf[DECISION_BATCH_ENCODED_MAX(512)], *end;

	(void)state;
	end = decision_batch_encode(buf, &blocked);
	*end = '\0';
	assert_string_equal(buf, "[1796300000,\"4Xq0000001\",\"a1b2.c3.0\",\"alice@example.com\","
	                         "\"192.0.2.7\",\"PLAIN\",\"legacy\",1,\"submission\","
	                         "\"alice@example.com\",\"block\",\"block-legacy\",null,42]");
}

static void test_round_trip(void **state)
{
	char buf[2 * DECISION_BATCH_ENCODED_MAX(512)], *p = buf;
	struct decision_batch b = {.id = 100};

	(void)state;
	*p++ = '[';
	p = decision_batch_encode(p, &blocked);
	*p++ = ',';
	p = decision_batch_encode(p, &odd);
	*p++ = ']';
	*p = '\0';
	assert_int_equal(decision_batch_decode(&b, buf, "policyd"), 0);
	assert_int_equal(b.n, 2);
	assert_same(&blocked, &b.d[0]);
	assert_same(&odd, &b.d[1]);
	assert_int_equal(b.d[0].id, 100);
	assert_int_equal(b.d[1].id, 101);
	assert_string_equal(b.d[1].daemon, "policyd");
	decision_batch_free(&b);
}

static void test_decode_sqlite_escapes_and_later_fields(void **state)
{
	/* json_array()'s escapes, blanks, and two fields of a later version */
	char text[] = " [ [ 7, \"q\\/\\u00e9\\ud83d\\ude00\", null, \"u\", null, \"PLAIN\", "
	              "\"legacy\", 0, null, null, \"allow\", null, \"p1,p2\", 3, \"new\", 9 ] ] ";
	struct decision_batch b = {0};

	(void)state;
	assert_int_equal(decision_batch_decode(&b, text, "milter"), 0);
	assert_int_equal(b.n, 1);
	assert_int_equal(b.d[0].at, 7);
	assert_string_equal(b.d[0].queue_id, "q/\xc3\xa9\xf0\x9f\x98\x80");
	assert_null(b.d[0].instance);
	assert_string_equal(b.d[0].report_only, "p1,p2");
	assert_int_equal(b.d[0].generation, 3);
	decision_batch_free(&b);
}

static void test_decode_refuses_malformed(void **state)
{
	static const char *const bad[] = {
	    "",
	    "[[1,2]]",                                                         /* too few fields */
	    "[[1,null,null,null,null,null,null,0,null,null,null,null,null]]",  /* 13 */
	    "[[1,null,null,null,null,null,null,0,null,null,null,null,null,1]", /* unclosed */
	    "[[1,\"x,null,null,null,null,null,0,null,null,null,null,null,1]]", /* string */
	    "[[[1],null,null,null,null,null,null,0,null,null,null,null,null,1]]",
	    "{}",
	};
	struct decision_batch b = {0};
	char empty[] = "[ ]";

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *text = strdup(bad[i]);

		assert_int_equal(decision_batch_decode(&b, text, "x"), -1);
		free(text);
	}
	assert_int_equal(decision_batch_decode(&b, empty, "x"), 0);
	assert_int_equal(b.n, 0);
	decision_batch_free(&b);
}

static void test_decision_line(void **state)
{
	char buf[DECISION_LINE_MAX(16, 512)], *end;

	(void)state;
	end = decision_line_format(buf, "p: ", 3, &blocked);
	*end = '\0';
	assert_string_equal(buf, "p: decision instance=a1b2.c3.0 queue_id=4Xq0000001 "
	                         "client=192.0.2.7 user=alice@example.com mech=PLAIN "
	                         "class=legacy tls=yes service=submission outcome=block "
	                         "policy=block-legacy report_only=-\n");
	end = decision_line_format(buf, "", 0, &odd);
	*end = '\0';
	assert_string_equal(buf, "decision instance=- queue_id=- client=- "
	                         "user=q\\x22b\\\\s\\x09n\\x0ax\\x01\\xff mech=\\x2d class=- "
	                         "tls=no service=- outcome=not-authenticated policy=- "
	                         "report_only=-\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_encode_fields_in_order),
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_decode_sqlite_escapes_and_later_fields),
	    cmocka_unit_test(test_decode_refuses_malformed),
	    cmocka_unit_test(test_decision_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
