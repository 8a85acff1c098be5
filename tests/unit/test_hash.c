/* Unit tests for lib/hash.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "alloc.h"
#include "hash.h"
#include "util.h"

static const char *const basic_keys[] = {
    "alice@example.com", "bob@example.com", "example.com", "", "PLAIN", "plain", "a", "ab",
};

static void test_basic(void **state)
{
	struct hash *h = hash_create(0);
	size_t i, n = sizeof(basic_keys) / sizeof(basic_keys[0]);

	(void)state;
	for (i = 0; i < n; i++) {
		void **slot = hash_slot(h, basic_keys[i]);

		assert_null(*slot);
		*slot = (void *)(uintptr_t)(i + 1);
	}
	assert_int_equal(hash_count(h), n);
	for (i = 0; i < n; i++) {
		assert_int_equal((uintptr_t)hash_get(h, basic_keys[i]), i + 1);
		assert_true(hash_contains(h, basic_keys[i]));
		/* the same key again finds the existing slot */
		assert_int_equal((uintptr_t)*hash_slot(h, basic_keys[i]), i + 1);
	}
	assert_int_equal(hash_count(h), n);
	/* byte-for-byte: no case folding */
	assert_null(hash_get(h, "Alice@example.com"));
	assert_null(hash_get(h, "abc"));
	assert_false(hash_contains(h, "b"));
	hash_free(&h, NULL);
	assert_null(h);
}

static void test_null_value_contains(void **state)
{
	struct hash *h = hash_create(4);

	(void)state;
	hash_slot(h, "present");
	assert_true(hash_contains(h, "present"));
	assert_null(hash_get(h, "present"));
	assert_false(hash_contains(h, "absent"));
	hash_free(&h, NULL);
}

static void test_keys_copied(void **state)
{
	struct hash *h = hash_create(0);
	char key[16];

	(void)state;
	strcpy(key, "volatile");
	*hash_slot(h, key) = key;
	strcpy(key, "changed!");
	assert_ptr_equal(hash_get(h, "volatile"), key);
	assert_null(hash_get(h, "changed!"));
	hash_free(&h, NULL);
}

static const struct {
	const char *key;
	size_t len;
	uintptr_t want; /* 0: absent */
} get_n_cases[] = {
    {"example.com", 11, 1}, {"example.comXYZ", 11, 1},  {"example.com", 7, 2}, /* "example" */
    {"example.com", 6, 0},                                                     /* "exampl" */
    {"example.com", 0, 3},                                                     /* "" */
    {"a@b", 1, 4},          {"sub.example.com", 15, 0}, {"example.org", 11, 0},
};

static void test_get_n(void **state)
{
	struct hash *h = hash_create(0);
	size_t i;

	(void)state;
	*hash_slot(h, "example.com") = (void *)1;
	*hash_slot(h, "example") = (void *)2;
	*hash_slot(h, "") = (void *)3;
	*hash_slot(h, "a") = (void *)4;
	for (i = 0; i < sizeof(get_n_cases) / sizeof(get_n_cases[0]); i++)
		assert_int_equal((uintptr_t)hash_get_n(h, get_n_cases[i].key, get_n_cases[i].len),
		                 get_n_cases[i].want);
	/* the domain part of a user, as the pattern index uses it */
	{
		const char *user = "alice@example.com";
		const char *at = strrchr(user, '@');

		assert_int_equal((uintptr_t)hash_get_n(h, at + 1, strlen(at + 1)), 1);
		assert_int_equal((uintptr_t)hash_get_n(h, user, (size_t)(at - user)), 0);
	}
	hash_free(&h, NULL);
}

static void test_growth(void **state)
{
	const size_t n = 100000;
	struct hash *h = hash_create(0);
	char key[32];
	size_t i;

	(void)state;
	for (i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "user%zu@example.com", i);
		*hash_slot(h, key) = (void *)(uintptr_t)(i + 1);
	}
	assert_int_equal(hash_count(h), n);
	for (i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "user%zu@example.com", i);
		assert_int_equal((uintptr_t)hash_get(h, key), i + 1);
	}
	for (i = n; i < n + 1000; i++) {
		snprintf(key, sizeof(key), "user%zu@example.com", i);
		assert_false(hash_contains(h, key));
	}
	hash_free(&h, NULL);
}

static int count_and_sum(const char *key, void *value, void *arg)
{
	uintptr_t *acc = arg;

	(void)key;
	acc[0]++;
	acc[1] += (uintptr_t)value;
	return 0;
}

static int stop_at_three(const char *key, void *value, void *arg)
{
	int *calls = arg;

	(void)key;
	(void)value;
	return ++*calls == 3 ? 42 : 0;
}

static void test_foreach(void **state)
{
	struct hash *h = hash_create(100);
	uintptr_t acc[2] = {0, 0};
	char key[16];
	int calls = 0;
	uintptr_t i;

	(void)state;
	for (i = 1; i <= 50; i++) {
		snprintf(key, sizeof(key), "k%lu", (unsigned long)i);
		*hash_slot(h, key) = (void *)i;
	}
	assert_int_equal(hash_foreach(h, count_and_sum, acc), 0);
	assert_int_equal(acc[0], 50);
	assert_int_equal(acc[1], 50 * 51 / 2);
	assert_int_equal(hash_foreach(h, stop_at_three, &calls), 42);
	assert_int_equal(calls, 3);
	hash_free(&h, NULL);
}

static int freed;

static void count_free(void *value)
{
	freed++;
	free(value);
}

static void test_free_values(void **state)
{
	struct hash *h = hash_create(0);

	(void)state;
	*hash_slot(h, "a") = xstrdup("A");
	*hash_slot(h, "b") = xstrdup("B");
	hash_slot(h, "null"); /* NULL value: free_value not called */
	freed = 0;
	hash_free(&h, count_free);
	assert_int_equal(freed, 2);
	assert_null(h);
	hash_free(&h, count_free); /* NULL-safe */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_basic),       cmocka_unit_test(test_null_value_contains),
	    cmocka_unit_test(test_keys_copied), cmocka_unit_test(test_get_n),
	    cmocka_unit_test(test_growth),      cmocka_unit_test(test_foreach),
	    cmocka_unit_test(test_free_values),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
