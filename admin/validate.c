/*
 * validate - checks and normalises what administrators type, before anything
 * reaches the store. Every error names the field.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "cidr.h"
#include "ctl.h"
#include "mech.h"
#include "pattern.h"
#include "snapshot.h"
#include "utf8.h"
#include "validate.h"

#define ITEM_MAX 400

void ctl_list_add(struct ctl_list *l, const char *item)
{
	size_t n = strlen(item);
	size_t need = l->len + n + 2;

	if (need > l->cap) {
		l->cap = need * 2;
		l->text = xrealloc(l->text, l->cap);
	}
	if (l->len > 0)
		l->text[l->len++] = ',';
	memcpy(l->text + l->len, item, n);
	l->len += n;
	l->text[l->len] = '\0';
}

char *ctl_list_take(struct ctl_list *l)
{
	char *t = l->text ? l->text : xstrdup("");

	memset(l, 0, sizeof(*l));
	return t;
}

static int is_word(const char *text, const char *word)
{
	return sg_strcasecmp(text, word) == 0;
}

/* Trimmed copy of text for keyword comparisons. */
static void trimmed(const char *text, char *buf, size_t len)
{
	size_t n;

	while (*text == ' ' || *text == '\t')
		text++;
	sg_strlcpy(buf, text, len);
	n = strlen(buf);
	while (n > 0 && (buf[n - 1] == ' ' || buf[n - 1] == '\t'))
		buf[--n] = '\0';
}

static int is_empty_list(const char *text)
{
	char buf[16];

	trimmed(text, buf, sizeof(buf));
	return buf[0] == '\0' || is_word(buf, "none");
}

/* Walks a list; on an item too long prints the error. Returns 1 item, 0 end,
 * -1 error (CTL_USAGE already printed). */
static int next_item(const char *field, const char **cursor, char *item)
{
	int rc = list_next(cursor, item, ITEM_MAX);

	if (rc < 0) {
		ctl_invalid(field, "a list item is too long");
		return -1;
	}
	return rc;
}

int ctl_check_name(const char *field, const char *name)
{
	size_t n = strlen(name);

	if (n == 0)
		return ctl_invalid(field, "a name must not be empty");
	if (n > 64)
		return ctl_invalid(field, "name '%.64s...' is longer than 64 characters", name);
	if (!isalnum((unsigned char)name[0]))
		return ctl_invalid(field, "name '%s' must start with a letter or a digit", name);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];

		if (!isalnum(c) && c != '.' && c != '_' && c != '-')
			return ctl_invalid(field,
			                   "name '%s' may only contain letters, digits, '.', '_' "
			                   "and '-'",
			                   name);
	}
	if (is_word(name, "all") || is_word(name, "any") || is_word(name, "none"))
		return ctl_invalid(field, "'%s' is a reserved word, not a name", name);
	return CTL_OK;
}

int ctl_norm_mechs(const char *field, const char *text, char **out)
{
	struct ctl_list l = {0};
	char item[ITEM_MAX];
	const char *cur = text;
	int rc;

	*out = NULL;
	while ((rc = next_item(field, &cur, item)) > 0) {
		enum mech_class cls;
		char norm[ITEM_MAX];

		if (mech_class_parse(item, &cls) == 0) {
			ctl_list_add(&l, mech_class_name(cls));
			continue;
		}
		if (!mech_name_valid(item)) {
			free(ctl_list_take(&l));
			return ctl_invalid(field,
			                   "'%s' is neither a class (legacy, password, modern) nor "
			                   "a SASL mechanism name",
			                   item);
		}
		sg_upper(norm, item, sizeof(norm));
		ctl_list_add(&l, norm);
	}
	if (rc < 0) {
		free(ctl_list_take(&l));
		return CTL_USAGE;
	}
	if (l.len == 0)
		return ctl_invalid(field, "the list of mechanisms must not be empty");
	*out = ctl_list_take(&l);
	return CTL_OK;
}

int ctl_norm_patterns(const char *field, const char *text, int allow_all, char **out)
{
	struct ctl_list l = {0};
	char item[ITEM_MAX], buf[16];
	const char *cur = text;
	int rc;

	*out = NULL;
	trimmed(text, buf, sizeof(buf));
	if (allow_all && is_word(buf, "all")) {
		*out = xstrdup("all");
		return CTL_OK;
	}
	if (is_empty_list(text)) {
		*out = xstrdup("");
		return CTL_OK;
	}
	while ((rc = next_item(field, &cur, item)) > 0) {
		struct pattern p;
		struct sg_err err = {{0}};
		char norm[ITEM_MAX];

		if (is_word(item, "all") || is_word(item, "none")) {
			free(ctl_list_take(&l));
			return ctl_invalid(field, "'%s' must stand alone, not in a list", item);
		}
		if (pattern_parse(item, &p, &err) < 0) {
			free(ctl_list_take(&l));
			return ctl_invalid(field, "%s", err.text);
		}
		utf8_fold(norm, item, sizeof(norm));
		ctl_list_add(&l, norm);
	}
	if (rc < 0) {
		free(ctl_list_take(&l));
		return CTL_USAGE;
	}
	*out = ctl_list_take(&l);
	return CTL_OK;
}

int ctl_norm_names(sqlite3 *db, const char *field, const char *text, enum sa_kind kind,
                   const char *any_word, char **out)
{
	static const char *const what[] = {"policy", "group", "location"};
	struct ctl_list l = {0};
	char item[ITEM_MAX], buf[16];
	const char *cur = text;
	int rc;

	*out = NULL;
	trimmed(text, buf, sizeof(buf));
	if (any_word && is_word(buf, any_word)) {
		*out = xstrdup(any_word);
		return CTL_OK;
	}
	if (is_empty_list(text)) {
		if (any_word)
			return ctl_invalid(field, "the list must not be empty (use '%s')",
			                   any_word);
		*out = xstrdup("");
		return CTL_OK;
	}
	while ((rc = next_item(field, &cur, item)) > 0) {
		struct sg_err err = {{0}};
		int found = store_admin_exists(db, kind, item, &err);

		if (found < 0) {
			free(ctl_list_take(&l));
			return ctl_fail("%s", err.text);
		}
		if (!found) {
			free(ctl_list_take(&l));
			return ctl_invalid(field, "unknown %s '%s'", what[kind], item);
		}
		ctl_list_add(&l, item);
	}
	if (rc < 0) {
		free(ctl_list_take(&l));
		return CTL_USAGE;
	}
	*out = ctl_list_take(&l);
	return CTL_OK;
}

int ctl_norm_services(const char *field, const char *text, char **out)
{
	struct ctl_list l = {0};
	char item[ITEM_MAX], buf[16];
	const char *cur = text;
	int rc;

	*out = NULL;
	trimmed(text, buf, sizeof(buf));
	if (is_word(buf, "any")) {
		*out = xstrdup("any");
		return CTL_OK;
	}
	while ((rc = next_item(field, &cur, item)) > 0) {
		size_t n = strlen(item);

		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)item[i];

			if (!isalnum(c) && !strchr("._-:/", c)) {
				free(ctl_list_take(&l));
				return ctl_invalid(field, "service '%s' contains '%c'", item, c);
			}
		}
		if (n > 64) {
			free(ctl_list_take(&l));
			return ctl_invalid(field, "service '%s' is too long", item);
		}
		ctl_list_add(&l, item);
	}
	if (rc < 0) {
		free(ctl_list_take(&l));
		return CTL_USAGE;
	}
	if (l.len == 0)
		return ctl_invalid(field, "the list must not be empty (use 'any')");
	*out = ctl_list_take(&l);
	return CTL_OK;
}

int ctl_parse_reply(const char *field, const char *reply, char **code, char **enh, char **text)
{
	struct sg_err err = {{0}};
	const char *p = reply, *s;
	char c[8], e[32];
	size_t n;

	*code = *enh = *text = NULL;
	while (*p == ' ')
		p++;
	for (s = p; *p && *p != ' '; p++)
		;
	n = (size_t)(p - s);
	if (n == 0 || n >= sizeof(c))
		return ctl_invalid(field, "expected \"CODE ENHANCED-CODE TEXT\", e.g. \"550 5.7.9 "
		                          "Use OAuth2\"");
	memcpy(c, s, n);
	c[n] = '\0';
	while (*p == ' ')
		p++;
	for (s = p; *p && *p != ' '; p++)
		;
	n = (size_t)(p - s);
	if (n == 0 || n >= sizeof(e))
		return ctl_invalid(field, "an enhanced status code (e.g. 5.7.9) must follow "
		                          "the code");
	memcpy(e, s, n);
	e[n] = '\0';
	while (*p == ' ')
		p++;
	if (*p == '\0')
		p = POLICY_DEFAULT_REPLY_TEXT;
	if (policy_reply_valid(c, e, p, &err) < 0)
		return ctl_invalid(field, "%s", err.text);
	*code = xstrdup(c);
	*enh = xstrdup(e);
	*text = xstrdup(p);
	return CTL_OK;
}

int ctl_parse_time(const struct ctl *ctl, const char *field, const char *text,
                   enum time_direction dir, time_t *out)
{
	struct sg_err err = {{0}};

	if (time_parse(text, ctl->now, dir, out, &err) < 0)
		return ctl_invalid(field, "'%s': %s", text, err.text);
	return CTL_OK;
}

int ctl_parse_id(const char *field, const char *text, int64_t *id)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || v <= 0)
		return ctl_invalid(field, "'%s' is not an exception id (a positive number)", text);
	*id = v;
	return CTL_OK;
}

const char *ctl_time(time_t t, const char *none_text, char *buf, size_t len)
{
	if (t == 0)
		return none_text;
	time_format(t, buf, len);
	return buf;
}

struct refs {
	enum sa_kind kind;
	const char *name;
	struct ctl_list found;
};

static int list_has(const char *list, const char *name)
{
	char item[ITEM_MAX];
	const char *cur = list;

	while (list_next(&cur, item, sizeof(item)) > 0)
		if (strcmp(item, name) == 0)
			return 1;
	return 0;
}

static int policy_refs(const struct sa_policy *p, void *arg)
{
	struct refs *r = arg;
	char what[200];

	if (r->kind == SA_GROUP
	        ? list_has(p->include_groups, r->name) || list_has(p->exclude_groups, r->name)
	        : list_has(p->include_locations, r->name) ||
	              list_has(p->exclude_locations, r->name)) {
		snprintf(what, sizeof(what), "policy %s", p->name);
		ctl_list_add(&r->found, what);
	}
	return 0;
}

static int exception_refs(const struct sa_exception *e, void *arg)
{
	struct refs *r = arg;
	const char *v = r->kind == SA_GROUP ? e->group_name : e->location;
	char what[64];

	if (v && strcmp(v, r->name) == 0) {
		snprintf(what, sizeof(what), "exception #%lld", (long long)e->id);
		ctl_list_add(&r->found, what);
	}
	return 0;
}

int ctl_references(sqlite3 *db, enum sa_kind kind, const char *name, char *buf, size_t len)
{
	struct refs r = {kind, name, {0}};
	struct sg_err err = {{0}};
	char *text;
	int found;

	if (store_admin_policy_foreach(db, policy_refs, &r, &err) < 0 ||
	    store_admin_exception_foreach(db, 1, 0, exception_refs, &r, &err) < 0) {
		free(ctl_list_take(&r.found));
		ctl_fail("%s", err.text);
		return -1;
	}
	found = r.found.len > 0;
	text = ctl_list_take(&r.found);
	sg_strlcpy(buf, text, len);
	free(text);
	return found;
}
