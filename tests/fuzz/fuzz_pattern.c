/*
 * libFuzzer target for lib/pattern.c. Input: "pattern\nuser". Checks the
 * normalisation invariants, the glob matcher against fnmatch(3) in the C
 * locale, and that the user index finds exactly what pattern_match finds.
 */
#include <fnmatch.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pattern.h"

#define INPUT_MAX 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int count_match(void *value, const struct pattern *p, void *arg)
{
	(void)value;
	(void)p;
	++*(int *)arg;
	return 0;
}

static void check(const char *ptext, const char *user_raw)
{
	struct pattern p, again;
	struct userindex *idx;
	char user[INPUT_MAX + 1];
	size_t i, len;
	int m, found = 0;

	if (pattern_parse(ptext, &p, NULL) != 0)
		return;
	len = strlen(p.text);
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

	sg_lower(user, user_raw, sizeof(user));
	m = pattern_match(&p, user);
	if (p.kind == PATTERN_GLOB && m != (fnmatch(p.text, user, FNM_NOESCAPE) == 0))
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
