/*
 * libFuzzer target for lib/pattern.c and the user-name side of lib/utf8.c.
 * Input: "pattern\nuser". Checks the normalisation invariants (valid UTF-8,
 * folded, idempotent), the glob matcher against fnmatch(3) in the C locale
 * where both are ASCII (fnmatch matches bytes, the matcher characters),
 * that the user index finds exactly what pattern_match finds, and that the
 * escape of the user is safe to print and undoes to the user.
 */
#include <fnmatch.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pattern.h"
#include "utf8.h"

#define INPUT_MAX 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int count_match(void *value, const struct pattern *p, void *arg)
{
	(void)value;
	(void)p;
	++*(int *)arg;
	return 0;
}

static int is_ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return 0;
	return 1;
}

/* The escape of user: printable, valid UTF-8, and it undoes to user. */
static void check_escape(const char *user)
{
	size_t len = strlen(user), o = 0;
	char *esc = malloc(UTF8_ESCAPE_MAX(len) + 1), *back = malloc(len + 1), *end;

	if (esc == NULL || back == NULL)
		abort();
	end = utf8_escape(esc, user, len, UTF8_ESC_KV);
	*end = '\0';
	if (!utf8_valid(esc, (size_t)(end - esc)))
		abort();
	for (const char *p = esc; p < end; p++) {
		unsigned char c = (unsigned char)*p;

		if (c <= 0x20 || c == 0x7f || c == '"' || c == '=')
			abort();
		if (c != '\\') {
			back[o++] = *p;
		} else if (p[1] == '\\') {
			back[o++] = '\\';
			p++;
		} else if (p[1] == 'x' && end - p >= 4) {
			char hex[3] = {p[2], p[3], '\0'};

			back[o++] = (char)strtoul(hex, NULL, 16);
			p += 3;
		} else {
			abort(); /* a lone backslash */
		}
	}
	if (o != len || memcmp(back, user, len) != 0)
		abort();
	free(esc);
	free(back);
}

static void check(const char *ptext, const char *user_raw)
{
	struct pattern p, again;
	struct userindex *idx;
	char user[INPUT_MAX + 1];
	size_t i, len;
	int m, found = 0;

	check_escape(user_raw);
	if (pattern_parse(ptext, &p, NULL) != 0)
		return;
	len = strlen(p.text);
	if (!utf8_valid(p.text, len))
		abort();
	if (len == 0 || len > PATTERN_MAX)
		abort();
	for (i = 0; i < len; i++)
		if (p.text[i] >= 'A' && p.text[i] <= 'Z')
			abort();
	/* normalising is idempotent (a domain pattern is written with its '@') */
	if (p.kind == PATTERN_DOMAIN) {
		char buf[PATTERN_MAX + 2];

		buf[0] = '@';
		memcpy(buf + 1, p.text, len + 1);
		if (pattern_parse(buf, &again, NULL) != 0)
			abort();
	} else if (pattern_parse(p.text, &again, NULL) != 0) {
		abort();
	}
	if (again.kind != p.kind || strcmp(again.text, p.text) != 0)
		abort();
	if (p.kind == PATTERN_EXACT && !pattern_match(&p, p.text))
		abort();

	utf8_fold(user, user_raw, sizeof(user));
	{
		char twice[INPUT_MAX + 1];

		utf8_fold(twice, user, sizeof(twice));
		if (strcmp(twice, user) != 0)
			abort(); /* folding is idempotent */
	}
	m = pattern_match(&p, user);
	if (p.kind == PATTERN_GLOB && is_ascii(p.text) && is_ascii(user) &&
	    m != (fnmatch(p.text, user, FNM_NOESCAPE) == 0))
		abort();
	if (p.kind == PATTERN_EXACT && m != (strcmp(p.text, user) == 0))
		abort();

	idx = userindex_create();
	if (idx == NULL || userindex_add(idx, &p, NULL) != 0)
		abort();
	userindex_lookup(idx, user, count_match, &found);
	if (found != m)
		abort();
	userindex_free(&idx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text, *nl;

	if (size > INPUT_MAX)
		return 0;
	text = malloc(size + 1);
	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	nl = strchr(text, '\n');
	if (nl != NULL) {
		*nl = '\0';
		check(text, nl + 1);
	} else {
		check(text, text);
	}
	free(text);
	return 0;
}
