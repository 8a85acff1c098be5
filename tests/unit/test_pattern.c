/* Unit tests for lib/pattern.c. */
#include <fnmatch.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pattern.h"
#include "utf8.h"
#include "util.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct {
	const char *text;
	int ok;
	enum pattern_kind kind;
	const char *norm; /* normalised text, or for rejections part of the message */
} parse_cases[] = {
    {"alice@example.com", 0, PATTERN_EXACT, "alice@example.com"},
    {"Alice@Example.COM", 0, PATTERN_EXACT, "alice@example.com"},
    {"alice", 0, PATTERN_EXACT, "alice"},
    {"DOMAIN\\User", 0, PATTERN_EXACT, "domain\\user"},
    {"a@b@c.example", 0, PATTERN_EXACT, "a@b@c.example"},
    {"@example.com", 0, PATTERN_DOMAIN, "example.com"},
    {"@EXAMPLE.com", 0, PATTERN_DOMAIN, "example.com"},
    {"scanner-*@example.com", 0, PATTERN_GLOB, "scanner-*@example.com"},
    {"Scanner-??@Example.com", 0, PATTERN_GLOB, "scanner-??@example.com"},
    {"[abc]*", 0, PATTERN_GLOB, "[abc]*"},
    {"*", 0, PATTERN_GLOB, "*"},
    {"*@*.example.com", 0, PATTERN_GLOB, "*@*.example.com"},
    {"", -1, 0, "empty"},
    {"@", -1, 0, "nothing after"},
    {"a@@b", -1, 0, "@@"},
    {"alice@", -1, 0, "nothing after"},
    {"@*.example.com", -1, 0, "domain pattern cannot contain a glob"},
    {"@ex?mple.com", -1, 0, "glob"},
    {"@a@b", -1, 0, "'@' in the domain"},
    {"alice smith", -1, 0, "printable"},
    {"alice\t", -1, 0, "printable"},
    {"al\x7f", -1, 0, "printable"},
    /* UTF-8: kept, folded (simple case folding, utf8.h) */
    {"\xc3\xa9lise", 0, PATTERN_EXACT, "\xc3\xa9lise"},
    {"J\xc3\x96RG@Example.DE", 0, PATTERN_EXACT, "j\xc3\xb6rg@example.de"},
    {"@M\xc3\x9cNCHEN.de", 0, PATTERN_DOMAIN, "m\xc3\xbcnchen.de"},
    {"\xce\x9d\xce\x99\xce\x9a\xce\x9f\xce\xa3", 0, PATTERN_EXACT,
     "\xce\xbd\xce\xb9\xce\xba\xce\xbf\xcf\x83"}, /* ΝΙΚΟΣ -> νικοσ */
    {"\xd0\x98\xd0\xb2\xd0\xb0\xd0\xbd*", 0, PATTERN_GLOB,
     "\xd0\xb8\xd0\xb2\xd0\xb0\xd0\xbd*"}, /* Иван* */
    {"j[\xc3\xb6\xc3\xbc]rg", 0, PATTERN_GLOB, "j[\xc3\xb6\xc3\xbc]rg"},
    {"stra\xc3\x9f"
     "e",
     0, PATTERN_EXACT,
     "stra\xc3\x9f"
     "e"}, /* ß stays */
    {"\xe7\x94\xb0\xe4\xb8\xad@example.jp", 0, PATTERN_EXACT,
     "\xe7\x94\xb0\xe4\xb8\xad@example.jp"},
    {"\xc5\xbf"
     "am",
     0, PATTERN_EXACT,
     "\xc5\xbf"
     "am"}, /* long s: not to 's' */
    {"\xe2\x84\xaa"
     "arl",
     0, PATTERN_EXACT,
     "\xe2\x84\xaa"
     "arl"},                                        /* Kelvin sign stays */
    {"j\xf6rg", -1, 0, "not valid UTF-8"},          /* Latin-1 */
    {"j\xc3rg", -1, 0, "j\\xc3rg"},                 /* shown escaped */
    {"\xc0\xaf", -1, 0, "not valid UTF-8"},         /* overlong '/' */
    {"\xed\xa0\x80", -1, 0, "not valid UTF-8"},     /* a surrogate */
    {"\xf4\x90\x80\x80", -1, 0, "not valid UTF-8"}, /* beyond U+10FFFF */
    {"a\xc2\xa0"
     "b",
     -1, 0, "printable"},              /* no-break space */
    {"a\xc2\x85", -1, 0, "printable"}, /* NEL, a C1 control */
    {"a\xe2\x80\x8b"
     "b",
     -1, 0, "printable"}, /* zero-width space */
    {"a\xe2\x80\xae"      /* NOLINT(misc-misleading-bidirectional): the case tested */
     "b",
     -1, 0, "printable"}, /* right-to-left override */
    {"a\xe3\x80\x80"
     "b",
     -1, 0, "printable"}, /* ideographic space */
    {"user[abc", -1, 0, "unclosed"},
    {"[[:alpha:]]*", -1, 0, "character classes"},
    {"[[.a.]]*", -1, 0, "character classes"},
    {"[[=a=]]*", -1, 0, "character classes"},
    {"[[]*", 0, PATTERN_GLOB, "[[]*"},
    {"[]a]*", 0, PATTERN_GLOB, "[]a]*"},
};

static void test_parse(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < N(parse_cases); i++) {
		struct pattern p;
		struct sg_err err;
		int r = pattern_parse(parse_cases[i].text, &p, &err);

		if (r != parse_cases[i].ok)
			fail_msg("\"%s\": got %d, want %d", parse_cases[i].text, r,
			         parse_cases[i].ok);
		if (r == 0) {
			assert_int_equal(p.kind, parse_cases[i].kind);
			assert_string_equal(p.text, parse_cases[i].norm);
		} else if (strstr(err.text, parse_cases[i].norm) == NULL) {
			fail_msg("\"%s\": message \"%s\" lacks \"%s\"", parse_cases[i].text,
			         err.text, parse_cases[i].norm);
		}
	}
}

static void test_parse_length(void **state)
{
	char text[PATTERN_MAX + 2];
	struct pattern p;
	struct sg_err err;

	(void)state;
	memset(text, 'a', PATTERN_MAX);
	text[PATTERN_MAX] = '\0';
	assert_int_equal(pattern_parse(text, &p, &err), 0);
	assert_int_equal(strlen(p.text), PATTERN_MAX);
	text[PATTERN_MAX] = 'a';
	text[PATTERN_MAX + 1] = '\0';
	assert_int_equal(pattern_parse(text, &p, &err), -1);
	assert_non_null(strstr(err.text, "too long"));
	assert_int_equal(pattern_parse(NULL, &p, &err), -1);
}

static void test_kind_name(void **state)
{
	(void)state;
	assert_string_equal(pattern_kind_name(PATTERN_EXACT), "exact");
	assert_string_equal(pattern_kind_name(PATTERN_DOMAIN), "domain");
	assert_string_equal(pattern_kind_name(PATTERN_GLOB), "glob");
}

static const struct {
	const char *pattern, *user;
	int match;
} match_cases[] = {
    {"alice@example.com", "alice@example.com", 1},
    {"ALICE@example.com", "alice@example.com", 1},
    {"alice@example.com", "alice@example.co", 0},
    {"alice@example.com", "xalice@example.com", 0},
    {"alice", "alice", 1},
    {"alice", "alice@example.com", 0},
    {"@example.com", "alice@example.com", 1},
    {"@Example.Com", "bob@example.com", 1},
    {"@example.com", "alice@sub.example.com", 0},
    {"@example.com", "alice@example.com.evil", 0},
    {"@example.com", "example.com", 0},
    {"@example.com", "alice", 0},
    {"@example.com", "alice@example.com@evil.org", 0},
    {"@evil.org", "alice@example.com@evil.org", 1},
    {"scanner-*@example.com", "scanner-1@example.com", 1},
    {"scanner-*@example.com", "scanner-@example.com", 1},
    {"scanner-*@example.com", "scanner-1@example.org", 0},
    {"scanner-*@example.com", "printer-1@example.com", 0},
    {"scanner-??@example.com", "scanner-12@example.com", 1},
    {"scanner-??@example.com", "scanner-1@example.com", 0},
    {"[ab]*", "alice", 1},
    {"[ab]*", "bob", 1},
    {"[ab]*", "carol", 0},
    {"[!ab]*", "carol", 1},
    {"[^ab]*", "alice", 0},
    {"user[0-9]", "user7", 1},
    {"user[0-9]", "userx", 0},
    {"*@*.example.com", "a@mx.example.com", 1},
    {"*@*.example.com", "a@example.com", 0},
    {"*a*b*c", "xxaxxbxxbxc", 1},
    {"*a*b*c", "xxaxxbxxbx", 0},
    {"*", "", 1},
    {"?", "", 0},
    {"a*", "a", 1},
    {"domain\\*", "domain\\user", 1},
    {"domain\\*", "domainx", 0},
    {"[[]*", "[x", 1},
    {"[]a]*", "]", 1},
    {"[]a]*", "b", 0},
    {"[a-]", "-", 1},
    {"[!a-c]x", "dx", 1},
    {"[!a-c]x", "bx", 0},
};

/* UTF-8 users: '?' and brackets take a character, case folds, distinct
 * names stay distinct. (glibc's fnmatch(3) matches bytes even in C.UTF-8,
 * so it is no reference here.) */
static const struct {
	const char *pattern, *user;
	int match;
} utf8_cases[] = {
    {"j\xc3\xb6rg@example.de", "j\xc3\xb6rg@example.de", 1},
    {"j\xc3\xb6rg@example.de", "j\xc3\xbcrg@example.de", 0}, /* jörg is not jürg */
    {"j\xc3\xb6rg@example.de", "J\xc3\x96RG@EXAMPLE.DE", 1}, /* JÖRG */
    {"J\xc3\x96rg@example.de", "j\xc3\xb6rg@example.de", 1},
    {"j\xc3\xb6rg@example.de", "jo\xcc\x88rg@example.de", 0}, /* NFD: another name */
    {"j\xc3\xb6rg@example.de", "j?rg@example.de", 0},
    {"j?rg@example.de", "j\xc3\xb6rg@example.de", 1},
    {"j?rg@example.de", "j\xc3\xbcrg@example.de", 1},
    {"j??rg@example.de", "j\xc3\xb6rg@example.de", 0}, /* ö is one character */
    {"j?rg@example.de", "j\xf6rg@example.de", 1},      /* an invalid byte: one */
    {"j?rg@example.de", "j\xc3rg@example.de", 1},
    {"j[\xc3\xb6\xc3\xbc]rg", "j\xc3\xbcrg", 1},
    {"j[\xc3\xb6\xc3\xbc]rg", "jorg", 0},
    {"j[!\xc3\xb6]rg", "j\xc3\xbcrg", 1},
    {"j[!\xc3\xb6]rg", "j\xc3\xb6rg", 0},
    {"j[!\xc3\xb6]rg", "j\xf6rg", 1},
    {"j[\xc3\xb6]rg", "j\xf6rg", 0},             /* Latin-1 ö is not ö */
    {"[\xc3\xa0-\xc3\xbf]*", "\xc3\xa9lise", 1}, /* à-ÿ */
    {"[\xc3\xa0-\xc3\xbf]*", "elise", 0},
    {"*\xc3\xb6", "x\xc3\xb6", 1},
    {"*?", "\xc3\xb6", 1},
    {"*??", "\xc3\xb6", 0},
    {"*??", "a\xc3\xb6", 1},
    {"*@example.de", "j\xc3\xb6rg@example.de", 1},
    {"@example.de", "j\xc3\xb6rg@example.de", 1},
    {"@m\xc3\xbcnchen.de", "a@M\xc3\x9cNCHEN.DE", 1},
    {"@m\xc3\xbcnchen.de", "a@munchen.de", 0},
    {"\xd0\xb8\xd0\xb2\xd0\xb0\xd0\xbd", "\xd0\x98\xd0\x92\xd0\x90\xd0\x9d", 1}, /* иван ИВАН */
    {"\xcf\x83", "\xce\xa3", 1},                                                 /* σ Σ */
    {"\xcf\x83", "\xcf\x82", 1}, /* σ ς (simple folding) */
    {"sam",
     "\xc5\xbf"
     "am",
     0}, /* ſam is not sam */
    {"karl",
     "\xe2\x84\xaa"
     "arl",
     0}, /* Kelvin sign K */
    {"*", "\xff\xfe", 1},
};

static void test_match_utf8(void **state)
{
	(void)state;
	for (size_t i = 0; i < N(utf8_cases); i++) {
		struct pattern p;
		char user[128];

		assert_int_equal(pattern_parse(utf8_cases[i].pattern, &p, NULL), 0);
		utf8_fold(user, utf8_cases[i].user, sizeof(user));
		if (pattern_match(&p, user) != utf8_cases[i].match)
			fail_msg("%s ~ %s: want %d", utf8_cases[i].pattern, utf8_cases[i].user,
			         utf8_cases[i].match);
	}
}

static void test_match(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < N(match_cases); i++) {
		struct pattern p;
		char user[128];

		assert_int_equal(pattern_parse(match_cases[i].pattern, &p, NULL), 0);
		sg_lower(user, match_cases[i].user, sizeof(user));
		if (pattern_match(&p, user) != match_cases[i].match)
			fail_msg("%s ~ %s: want %d", match_cases[i].pattern, match_cases[i].user,
			         match_cases[i].match);
		/* globs agree with fnmatch(3) in the C locale */
		if (p.kind == PATTERN_GLOB)
			assert_int_equal(fnmatch(p.text, user, FNM_NOESCAPE) == 0,
			                 match_cases[i].match);
	}
}

/* userindex: values are small integers; the callback records them. */
struct collected {
	int values[16];
	const struct pattern *patterns[16];
	size_t n;
	size_t stop_after; /* 0: never stop */
};

static int collect(void *value, const struct pattern *p, void *arg)
{
	struct collected *c = arg;

	c->patterns[c->n] = p;
	c->values[c->n++] = (int)(intptr_t)value;
	return c->stop_after != 0 && c->n == c->stop_after ? 99 : 0;
}

static const struct {
	const char *pattern;
	int value;
} index_patterns[] = {
    {"alice@example.com", 1},
    {"@example.com", 2},
    {"*@example.com", 3},
    {"alice@example.com", 4},
    {"bob", 5},
    {"@example.org", 6},
    {"a*", 7},
    {"@EXAMPLE.com", 8},
    {"*@example.com", 9},
    {"x@y@example.com", 10},
    /* globs of a literal domain are kept per domain; the others in one list */
    {"*@*.example.org", 11},
    {"svc-?@example.org", 12},
    {"svc-[0-9]@EXAMPLE.org", 13},
    /* an '@' in a bracket expression is no domain separator (found by fuzz_pattern) */
    {"x[@.]y", 14},
};

static const struct {
	const char *user;
	int want[8];
	size_t n;
} index_lookups[] = {
    {"alice@example.com", {1, 4, 2, 8, 3, 9, 7}, 7},
    {"bob@example.com", {2, 8, 3, 9}, 4},
    {"bob", {5}, 1},
    {"carol@example.org", {6}, 1},
    {"anna", {7}, 1},
    {"zed@example.net", {0}, 0},
    {"x@y@example.com", {10, 2, 8, 3, 9}, 5},
    {"example.com", {0}, 0},
    {"svc-1@example.org", {6, 12, 13}, 3},
    {"svc-x@example.org", {6, 12}, 2},
    {"m@mail.example.org", {11}, 1},
    {"svc-1@example.org.evil", {0}, 0},
    {"x@y", {14}, 1},
    {"x.y", {14}, 1},
};

static void test_userindex(void **state)
{
	struct userindex *idx = userindex_create();
	size_t i, j;

	(void)state;
	for (i = 0; i < N(index_patterns); i++) {
		struct pattern p;

		assert_int_equal(pattern_parse(index_patterns[i].pattern, &p, NULL), 0);
		assert_int_equal(userindex_add(idx, &p, (void *)(intptr_t)index_patterns[i].value),
		                 0);
	}
	assert_int_equal(userindex_count(idx), N(index_patterns));
	for (i = 0; i < N(index_lookups); i++) {
		struct collected c = {.n = 0};

		assert_int_equal(userindex_lookup(idx, index_lookups[i].user, collect, &c), 0);
		if (c.n != index_lookups[i].n)
			fail_msg("%s: %zu values, want %zu", index_lookups[i].user, c.n,
			         index_lookups[i].n);
		for (j = 0; j < c.n; j++) {
			assert_int_equal(c.values[j], index_lookups[i].want[j]);
			assert_true(pattern_match(c.patterns[j], index_lookups[i].user));
		}
	}
	userindex_free(&idx);
	assert_null(idx);
	userindex_free(&idx);
}

static void test_userindex_early_stop(void **state)
{
	struct userindex *idx = userindex_create();
	size_t i, stop;

	(void)state;
	for (i = 0; i < N(index_patterns); i++) {
		struct pattern p;

		assert_int_equal(pattern_parse(index_patterns[i].pattern, &p, NULL), 0);
		assert_int_equal(userindex_add(idx, &p, (void *)(intptr_t)index_patterns[i].value),
		                 0);
	}
	/* stopping in each phase: exact, domain, glob */
	for (stop = 1; stop <= 7; stop++) {
		struct collected c = {.n = 0, .stop_after = stop};

		assert_int_equal(userindex_lookup(idx, "alice@example.com", collect, &c), 99);
		assert_int_equal(c.n, stop);
	}
	userindex_free(&idx);
}

static void test_userindex_many(void **state)
{
	struct userindex *idx = userindex_create();
	char text[64];
	int i;

	(void)state;
	for (i = 0; i < 20000; i++) {
		struct pattern p;

		snprintf(text, sizeof(text), "user%d@Domain%d.example", i, i % 100);
		assert_int_equal(pattern_parse(text, &p, NULL), 0);
		assert_int_equal(userindex_add(idx, &p, (void *)(intptr_t)(i + 1)), 0);
	}
	for (i = 0; i < 20000; i += 7) {
		struct collected c = {.n = 0};

		snprintf(text, sizeof(text), "user%d@domain%d.example", i, i % 100);
		userindex_lookup(idx, text, collect, &c);
		assert_int_equal(c.n, 1);
		assert_int_equal(c.values[0], i + 1);
	}
	userindex_free(&idx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse),
	    cmocka_unit_test(test_parse_length),
	    cmocka_unit_test(test_kind_name),
	    cmocka_unit_test(test_match),
	    cmocka_unit_test(test_match_utf8),
	    cmocka_unit_test(test_userindex),
	    cmocka_unit_test(test_userindex_early_stop),
	    cmocka_unit_test(test_userindex_many),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
