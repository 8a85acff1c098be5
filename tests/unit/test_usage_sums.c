/* Unit tests for lib/usage_sums.c: the writer's usage sums, checked against
 * a plain count kept by the test (many keys: the table grows and the sums
 * span many blocks; long keys; clear and reuse). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cidr.h"
#include "usage_sums.h"
#include "util.h"

#define USERS 5000

struct seen {
	long count[USERS][2]; /* per user, per mechanism (PLAIN, XOAUTH2) */
	int64_t first[USERS][2], last[USERS][2];
	size_t rows;
	int bad;
};

static const char *const mechs[2] = {"PLAIN", "XOAUTH2"};

static int user_index(const char *user)
{
	unsigned u;

	if (sscanf(user, "user%u@example.test", &u) != 1 || u >= USERS)
		return -1;
	return (int)u;
}

static int check_row(const struct activity_usage_row *r, void *arg)
{
	struct seen *s = arg;
	int u = user_index(r->user), m = strcmp(r->mech, "PLAIN") == 0 ? 0 : 1;

	s->rows++;
	if (u < 0 || strcmp(r->network, "192.0.2.0/24") != 0 || r->count != s->count[u][m] ||
	    r->first_seen != s->first[u][m] || r->last_seen != s->last[u][m] ||
	    strcmp(r->mech_class, m == 0 ? "legacy" : "modern") != 0 ||
	    strcmp(r->last_outcome, m == 0 ? "block" : "allow") != 0)
		s->bad++;
	return 0;
}

static void add(struct usage_sums *t, struct seen *s, unsigned u, int m, int64_t at)
{
	char user[64];
	struct decision_record d;
	struct ipaddr addr;

	memset(&d, 0, sizeof(d));
	snprintf(user, sizeof(user), "user%u@example.test", u);
	d.user = user;
	d.mech = mechs[m];
	d.mech_class = m == 0 ? "legacy" : "modern";
	d.outcome = m == 0 ? "block" : "allow";
	d.client = "192.0.2.7";
	d.service = "submission";
	d.at = at;
	assert_int_equal(ipaddr_parse("192.0.2.7", &addr, NULL), 0);
	usage_sums_add(t, &d, &addr);
	if (s->count[u][m]++ == 0 || at < s->first[u][m])
		s->first[u][m] = at;
	if (at > s->last[u][m])
		s->last[u][m] = at;
}

static void test_many_keys_clear_and_again(void **state)
{
	struct usage_sums *t = usage_sums_new(0);
	struct seen *s = calloc(1, sizeof(*s));
	uint32_t rng = 7;

	(void)state;
	for (int round = 0; round < 3; round++) {
		size_t keys = 0;

		memset(s, 0, sizeof(*s));
		for (int i = 0; i < 40000; i++) {
			rng = rng * 1103515245u + 12345u;
			add(t, s, (rng >> 8) % USERS, (int)((rng >> 4) & 1),
			    1700000000 + (int64_t)((rng >> 16) % 1000));
		}
		for (int u = 0; u < USERS; u++)
			keys += (s->count[u][0] > 0) + (s->count[u][1] > 0);
		assert_int_equal(usage_sums_count(t), keys);
		assert_int_equal(usage_sums_foreach(t, check_row, s), 0);
		assert_int_equal(s->rows, keys);
		assert_int_equal(s->bad, 0);
		usage_sums_clear(t);
		assert_int_equal(usage_sums_count(t), 0);
		s->rows = 0;
		assert_int_equal(usage_sums_foreach(t, check_row, s), 0);
		assert_int_equal(s->rows, 0);
	}
	usage_sums_free(&t);
	assert_null(t);
	free(s);
}

static int keep_user(const struct activity_usage_row *r, void *arg)
{
	char **out = arg;

	*out = strdup(r->user);
	return 1; /* stops: the value comes back */
}

static void test_a_key_longer_than_a_block(void **state)
{
	size_t len = 70000;
	char *user = malloc(len + 1), *got = NULL;
	struct usage_sums *t = usage_sums_new(0);
	struct decision_record d;

	(void)state;
	memset(user, 'x', len);
	user[len] = '\0';
	memset(&d, 0, sizeof(d));
	d.user = user;
	d.mech = "PLAIN";
	d.mech_class = "legacy";
	d.outcome = "block";
	d.client = "";
	d.service = "";
	/* the writer never passes more than a record holds (a few hundred
	 * bytes), but a sum larger than a block must still be whole */
	d.user = user + len - 60000;
	usage_sums_add(t, &d, NULL);
	usage_sums_add(t, &d, NULL);
	assert_int_equal(usage_sums_count(t), 1);
	assert_int_equal(usage_sums_foreach(t, keep_user, &got), 1);
	assert_non_null(got);
	assert_int_equal(strlen(got), 60000);
	free(got);
	usage_sums_free(&t);
	free(user);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_many_keys_clear_and_again),
	    cmocka_unit_test(test_a_key_longer_than_a_block),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
