/* Unit tests for lib/utf8.c: validation, folding, the reversible escape. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "utf8.h"
#include "util.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct {
	const char *text;
	int valid;
} valid_cases[] = {
    {"", 1},
    {"alice@example.com", 1},
    {"j\xc3\xb6rg", 1},
    {"\xe7\x94\xb0\xe4\xb8\xad", 1},
    {"\xf0\x9f\x98\x80", 1}, /* U+1F600 */
    {"\xf4\x8f\xbf\xbf", 1}, /* U+10FFFF */
    {"j\xf6rg", 0},          /* Latin-1 */
    {"\xc3", 0},             /* cut */
    {"\xe7\x94", 0},         /* cut */
    {"\xc0\xaf", 0},         /* overlong */
    {"\xe0\x80\xaf", 0},     /* overlong */
    {"\xf0\x80\x80\xaf", 0}, /* overlong */
    {"\xed\xa0\x80", 0},     /* surrogate */
    {"\xf4\x90\x80\x80", 0}, /* beyond U+10FFFF */
    {"\x80", 0},             /* a lone continuation byte */
    {"\xfe\xff", 0},
};

static void test_valid(void **state)
{
	(void)state;
	for (size_t i = 0; i < N(valid_cases); i++)
		if (utf8_valid(valid_cases[i].text, strlen(valid_cases[i].text)) !=
		    valid_cases[i].valid)
			fail_msg("case %zu: want %d", i, valid_cases[i].valid);
}

static void test_decode(void **state)
{
	uint32_t cp;

	(void)state;
	assert_int_equal(utf8_decode((const unsigned char *)"a", 1, &cp), 1);
	assert_int_equal(cp, 'a');
	assert_int_equal(utf8_decode((const unsigned char *)"\xc3\xb6", 2, &cp), 2);
	assert_int_equal(cp, 0xf6);
	assert_int_equal(utf8_decode((const unsigned char *)"\xf0\x9f\x98\x80", 4, &cp), 4);
	assert_int_equal(cp, 0x1f600);
	/* avail cuts the sequence */
	assert_int_equal(utf8_decode((const unsigned char *)"\xc3\xb6", 1, &cp), 0);
	assert_int_equal(cp, 0xc3);
	assert_int_equal(utf8_char_len((const unsigned char *)"\xff", 1), 1);
	assert_int_equal(utf8_char_len((const unsigned char *)"\xe7\x94\xb0", 3), 3);
}

static const struct {
	const char *in, *out;
} fold_cases[] = {
    {"Alice@Example.COM", "alice@example.com"},
    {"J\xc3\x96RG@EXAMPLE.DE", "j\xc3\xb6rg@example.de"},     /* JÖRG */
    {"\xc3\x80\xc3\x9e\xc3\x97", "\xc3\xa0\xc3\xbe\xc3\x97"}, /* ÀÞ, × stays */
    {"\xc5\x81\xc3\x93"
     "D\xc5\xb9",
     "\xc5\x82\xc3\xb3"
     "d\xc5\xba"},                                            /* ŁÓDŹ */
    {"\xc5\xb8", "\xc3\xbf"},                                 /* Ÿ -> ÿ */
    {"\xc7\x8d", "\xc7\x8e"},                                 /* Ǎ -> ǎ (Ext-B) */
    {"\xce\x86\xce\xa3\xcf\x82", "\xce\xac\xcf\x83\xcf\x83"}, /* ΆΣς -> άσσ */
    {"\xd0\x81\xd0\xaf\xd1\x8f", "\xd1\x91\xd1\x8f\xd1\x8f"}, /* ЁЯя -> ёяя */
    {"\xd4\xb1", "\xd5\xa1"},                                 /* Armenian Ա -> ա */
    {"\xe1\xba\xa0", "\xe1\xba\xa1"},                         /* Ạ -> ạ */
    {"STRA\xe1\xba\x9e"
     "E",
     "stra\xc3\x9f"
     "e"},                                                    /* ẞ -> ß: shorter */
    {"\xc3\x9f", "\xc3\x9f"},                                 /* ß stays */
    {"\xc4\xb0", "\xc4\xb0"},                                 /* İ: no simple fold */
    {"\xc5\xbf", "\xc5\xbf"},                                 /* ſ: not to ASCII s */
    {"\xe2\x84\xaa", "\xe2\x84\xaa"},                         /* Kelvin sign */
    {"\xe7\x94\xb0\xe4\xb8\xad", "\xe7\x94\xb0\xe4\xb8\xad"}, /* other scripts */
    {"\xf0\x9f\x98\x80X", "\xf0\x9f\x98\x80x"},
    {"J\xd6RG\xff\xc3", "j\xd6rg\xff\xc3"}, /* invalid bytes stay */
    {"ABCDEFGH\xc3\x96IJKLMNOP", "abcdefgh\xc3\xb6ijklmnop"},
};

static void test_fold(void **state)
{
	(void)state;
	for (size_t i = 0; i < N(fold_cases); i++) {
		char out[64], inplace[64];
		size_t n = utf8_fold(out, fold_cases[i].in, sizeof(out));

		if (strcmp(out, fold_cases[i].out) != 0)
			fail_msg("case %zu: got \"%s\"", i, out);
		assert_int_equal(n, strlen(out));
		sg_strlcpy(inplace, fold_cases[i].in, sizeof(inplace));
		utf8_fold(inplace, inplace, sizeof(inplace));
		assert_string_equal(inplace, fold_cases[i].out);
	}
}

static void test_fold_truncated(void **state)
{
	char out[4];

	(void)state;
	assert_true(utf8_fold(out, "ABCDEF", sizeof(out)) >= sizeof(out));
	assert_string_equal(out, "abc");
	assert_int_equal(utf8_fold(out,
	                           "\xc3\x96"
	                           "A",
	                           sizeof(out)),
	                 3);
	assert_string_equal(out, "\xc3\xb6"
	                         "a");
}

/* The escape undone, as a reader of the log would: "\\" and "\xHH". */
static size_t unescape(char *dst, const char *src, size_t len)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		if (src[i] == '\\' && i + 1 < len && src[i + 1] == '\\') {
			dst[o++] = '\\';
			i++;
		} else if (src[i] == '\\' && i + 3 < len && src[i + 1] == 'x') {
			char hex[3] = {src[i + 2], src[i + 3], 0};

			dst[o++] = (char)strtoul(hex, NULL, 16);
			i += 3;
		} else {
			dst[o++] = src[i];
		}
	}
	return o;
}

static const struct {
	const char *in;
	unsigned flags;
	const char *out;
} escape_cases[] = {
    {"alice@example.com", 0, "alice@example.com"},
    {"j\xc3\xb6rg@example.de", 0, "j\xc3\xb6rg@example.de"},
    {"\xe7\x94\xb0\xe4\xb8\xad", 0, "\xe7\x94\xb0\xe4\xb8\xad"},
    {"j\xf6rg", 0, "j\\xf6rg"},
    {"j\xc3rg", 0, "j\\xc3rg"},
    {"DOMAIN\\user", 0, "DOMAIN\\\\user"},
    {"a b", 0, "a\\x20b"},
    {"a\tb\nc\x7f", 0, "a\\x09b\\x0ac\\x7f"},
    {"a\xc2\x85", 0, "a\\xc2\\x85"}, /* C1 NEL */
    {"a\xc2\xa0"
     "b",
     0, "a\\xc2\\xa0b"}, /* no-break space */
    {"a\xe2\x80\x8b"
     "b",
     0, "a\\xe2\\x80\\x8bb"}, /* zero-width space */
    {"a\xe2\x80\xae"          /* NOLINT(misc-misleading-bidirectional): the case tested */
     "b",
     0, "a\\xe2\\x80\\xaeb"}, /* RLO */
    {"a=\"b\"", 0, "a=\"b\""},
    {"a=\"b\"", UTF8_ESC_KV, "a\\x3d\\x22b\\x22"},
    {"\\x41", 0, "\\\\x41"}, /* a literal "\x41" cannot pass for "A" */
};

static void test_escape(void **state)
{
	(void)state;
	for (size_t i = 0; i < N(escape_cases); i++) {
		const char *in = escape_cases[i].in;
		size_t len = strlen(in);
		char out[256], back[256], str[256];
		char *end = utf8_escape(out, in, len, escape_cases[i].flags);

		*end = '\0';
		if (strcmp(out, escape_cases[i].out) != 0)
			fail_msg("case %zu: got \"%s\"", i, out);
		assert_true((size_t)(end - out) <= UTF8_ESCAPE_MAX(len));
		assert_int_equal(unescape(back, out, (size_t)(end - out)), len);
		assert_memory_equal(back, in, len);
		assert_int_equal(utf8_escape_str(str, sizeof(str), in, escape_cases[i].flags), 0);
		assert_string_equal(str, out);
	}
}

/* The names of issue 19, and names that differ in what is escaped, never
 * print the same. */
static void test_escape_distinct(void **state)
{
	static const char *const names[] = {
	    "j\xc3\xb6rg@example.de",   "j\xc3\xbcrg@example.de",
	    "j??rg@example.de",         "j\xf6rg@example.de",
	    "j\\xf6rg@example.de",      "j\xc3\xb6rg@example.de ",
	    "j\xc3\xb6rg@example.de\t", "j\xc3\xb6\xe2\x80\x8brg@example.de",
	};
	char out[N(names)][128];

	(void)state;
	for (size_t i = 0; i < N(names); i++) {
		assert_int_equal(utf8_escape_str(out[i], sizeof(out[i]), names[i], UTF8_ESC_KV), 0);
		for (size_t k = 0; k < i; k++)
			if (strcmp(out[i], out[k]) == 0)
				fail_msg("\"%s\" and \"%s\" print the same", names[i], names[k]);
	}
}

static void test_escape_str_truncated(void **state)
{
	char out[8];

	(void)state;
	assert_int_equal(utf8_escape_str(out, sizeof(out), "ab\xff\xfe", 0), -1);
	assert_string_equal(out, "ab\\xff"); /* a whole escape, never half of one */
	assert_int_equal(utf8_escape_str(out, sizeof(out), "abcdefg", 0), 0);
	assert_int_equal(utf8_escape_str(out, sizeof(out), "abcdefgh", 0), -1);
	assert_string_equal(out, "abcdefg");
}

static void test_width(void **state)
{
	char out[64];

	(void)state;
	assert_int_equal(utf8_width("alice"), 5);
	assert_int_equal(utf8_width("j\xc3\xb6rg"), 4);
	assert_int_equal(utf8_width("\xe7\x94\xb0\xe4\xb8\xad"), 2);
	assert_int_equal(utf8_escape_str(out, sizeof(out), "j\xf6rg", 0), 0);
	assert_int_equal(utf8_width(out), 7);
}

static void test_unsafe(void **state)
{
	static const uint32_t unsafe[] = {0x0,    0x1f,   0x20,   0x7f,   0x85,   0x9f,
	                                  0xa0,   0xad,   0x200b, 0x200e, 0x2028, 0x202e,
	                                  0x2066, 0x3000, 0xfeff, 0xe0041};
	static const uint32_t safe[] = {'a', '~', 0xa1, 0xf6, 0x3c3, 0x44f, 0x7530, 0x1f600};

	(void)state;
	for (size_t i = 0; i < N(unsafe); i++)
		if (!utf8_cp_unsafe(unsafe[i]))
			fail_msg("U+%04X should be unsafe", (unsigned)unsafe[i]);
	for (size_t i = 0; i < N(safe); i++)
		if (utf8_cp_unsafe(safe[i]))
			fail_msg("U+%04X should be safe", (unsigned)safe[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid),
	    cmocka_unit_test(test_decode),
	    cmocka_unit_test(test_fold),
	    cmocka_unit_test(test_fold_truncated),
	    cmocka_unit_test(test_escape),
	    cmocka_unit_test(test_escape_distinct),
	    cmocka_unit_test(test_escape_str_truncated),
	    cmocka_unit_test(test_width),
	    cmocka_unit_test(test_unsafe),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
