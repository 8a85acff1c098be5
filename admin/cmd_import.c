/*
 * import - replaces the whole policy with an export document (cmd_export.c).
 *
 * It reads the document with SQLite's JSON functions (json_valid, json_type,
 * json_extract, json_each) on the store's own connection, validates every
 * entry with the same code as the commands that edit one entry, and replaces
 * the policy in one transaction: any invalid entry rejects the whole file,
 * naming the entry, and leaves the store as it was. Sections absent from the
 * file are empty after the import, except "mechanisms" (absent: the default
 * catalogue) and "settings" (absent: kept).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "cidr.h"
#include "cmd_export.h"
#include "cmd_import.h"
#include "cmd_policy.h"
#include "cmd_settings.h"
#include "ctl.h"
#include "mech.h"
#include "pattern.h"
#include "utf8.h"
#include "validate.h"

#define IMPORT_MAX_BYTES ((size_t)64 * 1024 * 1024)

struct import {
	const struct ctl *ctl;
	sqlite3 *db;
	const char *doc;   /* the whole file */
	sqlite3_stmt *get; /* json_type/json_extract of (?1 json, ?2 path) */
	int counts[5];
	const char *set_name; /* the group or location being imported */
};

enum { N_MECH, N_GROUP, N_LOCATION, N_POLICY, N_EXCEPTION };

/* The type ("null", "text", "integer", "array", "object", ...) of path in json
 * and its value as text (malloc'ed; JSON text for arrays and objects). *type is
 * "" when the path is absent. -1 on a store error (printed). */
static int jget(struct import *im, const char *json, const char *path, char *type, size_t tlen,
                char **value)
{
	const unsigned char *t, *v;
	int rc;

	*value = NULL;
	type[0] = '\0';
	sqlite3_reset(im->get);
	sqlite3_bind_text(im->get, 1, json, -1, SQLITE_STATIC);
	sqlite3_bind_text(im->get, 2, path, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(im->get);
	if (rc != SQLITE_ROW) {
		ctl_fail("import: %s", sqlite3_errmsg(im->db));
		return -1;
	}
	t = sqlite3_column_text(im->get, 0);
	v = sqlite3_column_text(im->get, 1);
	if (t)
		sg_strlcpy(type, (const char *)t, tlen);
	if (v)
		*value = xstrdup((const char *)v);
	sqlite3_reset(im->get);
	return 0;
}

/* A member of an entry object that must be a string (or null/absent when
 * optional). *out is malloc'ed or NULL. */
static int jstring(struct import *im, const char *ctx, const char *entry, const char *key,
                   int required, char **out)
{
	char path[80], type[16];

	snprintf(path, sizeof(path), "$.%s", key);
	if (jget(im, entry, path, type, sizeof(type), out) < 0)
		return CTL_FAIL;
	if (strcmp(type, "text") == 0)
		return CTL_OK;
	free(*out);
	*out = NULL;
	if ((type[0] == '\0' || strcmp(type, "null") == 0) && !required)
		return CTL_OK;
	return ctl_invalid(ctx, "\"%s\" %s", key, type[0] ? "must be a string" : "is required");
}

/* Checks that entry is an object whose keys are all in allowed (NULL-ended). */
static int check_keys(struct import *im, const char *ctx, const char *entry,
                      const char *const *allowed)
{
	sqlite3_stmt *st;
	int status = CTL_OK;

	if (sqlite3_prepare_v2(im->db, "SELECT key FROM json_each(?1)", -1, &st, NULL) != SQLITE_OK)
		return ctl_fail("import: %s", sqlite3_errmsg(im->db));
	sqlite3_bind_text(st, 1, entry, -1, SQLITE_STATIC);
	while (status == CTL_OK && sqlite3_step(st) == SQLITE_ROW) {
		const char *key = (const char *)sqlite3_column_text(st, 0);
		size_t i;

		for (i = 0; allowed[i]; i++)
			if (key && strcmp(key, allowed[i]) == 0)
				break;
		if (allowed[i] == NULL)
			status = ctl_invalid(ctx, "unknown key \"%s\"", key ? key : "");
	}
	sqlite3_finalize(st);
	return status;
}

/* Calls fn for every element of the array at path (absent: no call). */
static int each(struct import *im, const char *json, const char *path, const char *what,
                int (*fn)(struct import *im, const char *ctx, const char *type, const char *value),
                int *n)
{
	char type[16], ctx[200];
	char *arr;
	sqlite3_stmt *st;
	int status = CTL_OK;

	if (jget(im, json, path, type, sizeof(type), &arr) < 0)
		return CTL_FAIL;
	if (type[0] == '\0') {
		free(arr);
		return CTL_OK;
	}
	if (strcmp(type, "array") != 0) {
		free(arr);
		return ctl_invalid(what, "must be an array");
	}
	if (sqlite3_prepare_v2(im->db, "SELECT key, type, value FROM json_each(?1)", -1, &st,
	                       NULL) != SQLITE_OK) {
		free(arr);
		return ctl_fail("import: %s", sqlite3_errmsg(im->db));
	}
	sqlite3_bind_text(st, 1, arr, -1, SQLITE_STATIC);
	while (status == CTL_OK && sqlite3_step(st) == SQLITE_ROW) {
		snprintf(ctx, sizeof(ctx), "%s[%lld]", what,
		         (long long)sqlite3_column_int64(st, 0));
		status = fn(im, ctx, (const char *)sqlite3_column_text(st, 1),
		            (const char *)sqlite3_column_text(st, 2));
		if (status == CTL_OK && n)
			(*n)++;
	}
	sqlite3_finalize(st);
	free(arr);
	return status;
}

static int import_setting_each(struct import *im, const char *json)
{
	struct sg_err err = {{0}};
	sqlite3_stmt *st;
	char type[16], *obj;
	int status = CTL_OK;

	if (jget(im, json, "$.settings", type, sizeof(type), &obj) < 0)
		return CTL_FAIL;
	if (type[0] == '\0') {
		free(obj);
		return CTL_OK;
	}
	if (strcmp(type, "object") != 0) {
		free(obj);
		return ctl_invalid("settings", "must be an object");
	}
	if (sqlite3_prepare_v2(im->db, "SELECT key, type, value FROM json_each(?1)", -1, &st,
	                       NULL) != SQLITE_OK) {
		free(obj);
		return ctl_fail("import: %s", sqlite3_errmsg(im->db));
	}
	sqlite3_bind_text(st, 1, obj, -1, SQLITE_STATIC);
	while (status == CTL_OK && sqlite3_step(st) == SQLITE_ROW) {
		const char *key = (const char *)sqlite3_column_text(st, 0);
		const char *value = (const char *)sqlite3_column_text(st, 2);
		char norm[64], field[120];

		if (key && strcmp(key, "generation") == 0)
			continue;
		snprintf(field, sizeof(field), "settings.%s", key ? key : "");
		if (value == NULL) {
			status = ctl_invalid(field, "must not be null");
			break;
		}
		status = ctl_setting_normalise(field, key ? key : "", value, norm, sizeof(norm));
		if (status == CTL_OK && store_setting_set(im->db, key, norm, &err) < 0)
			status = ctl_fail("%s", err.text);
	}
	sqlite3_finalize(st);
	free(obj);
	return status;
}

static int import_mech(struct import *im, const char *ctx, const char *type, const char *entry)
{
	static const char *const keys[] = {"name", "class", NULL};
	struct sg_err err = {{0}};
	char *name = NULL, *cls = NULL, upper[MECH_NAME_MAX + 1];
	enum mech_class c;
	int rc;

	if (strcmp(type, "object") != 0)
		return ctl_invalid(ctx, "must be an object");
	if ((rc = check_keys(im, ctx, entry, keys)) != CTL_OK ||
	    (rc = jstring(im, ctx, entry, "name", 1, &name)) != CTL_OK ||
	    (rc = jstring(im, ctx, entry, "class", 1, &cls)) != CTL_OK)
		goto out;
	if (!mech_name_valid(name))
		rc = ctl_invalid(ctx, "'%s' is not a SASL mechanism name", name);
	else if (mech_class_parse(cls, &c) < 0)
		rc = ctl_invalid(ctx, "'%s' is not a class (legacy, password, modern)", cls);
	if (rc != CTL_OK)
		goto out;
	sg_upper(upper, name, sizeof(upper));
	if (store_admin_mech_set(im->db, upper, mech_class_name(c), &err) < 0)
		rc = ctl_fail("%s", err.text);
out:
	free(name);
	free(cls);
	return rc;
}

struct set_entry {
	enum sa_kind kind;
	const char *name;
};

/* Parses created_at (optional ISO time). */
static int import_time(struct import *im, const char *ctx, const char *entry, const char *key,
                       time_t *out)
{
	char *text = NULL, field[240];
	int rc = jstring(im, ctx, entry, key, 0, &text);

	*out = 0;
	if (rc == CTL_OK && text) {
		snprintf(field, sizeof(field), "%s.%s", ctx, key);
		rc = ctl_parse_time(im->ctl, field, text, TIME_FUTURE, out);
	}
	free(text);
	return rc;
}

static int import_member(struct import *im, const char *ctx, const char *type, const char *value,
                         enum sa_kind kind, const char *name)
{
	struct sg_err err = {{0}};
	char norm[PATTERN_MAX + 64];
	int rc;

	if (strcmp(type, "text") != 0)
		return ctl_invalid(ctx, "must be a string");
	if (kind == SA_GROUP) {
		struct pattern p;

		if (pattern_parse(value, &p, &err) < 0)
			return ctl_invalid(ctx, "%s", err.text);
		utf8_fold(norm, value, sizeof(norm));
		rc = store_admin_set_member(im->db, SA_GROUP, 1, name, norm, &err);
	} else {
		struct cidr c;

		if (cidr_parse(value, &c, &err) < 0)
			return ctl_invalid(ctx, "'%s': %s", value, err.text);
		cidr_format(&c, norm, sizeof(norm));
		rc = store_admin_set_member(im->db, SA_LOCATION, 1, name, norm, &err);
	}
	return rc < 0 ? ctl_fail("%s", err.text) : CTL_OK;
}

static int import_group_member(struct import *im, const char *ctx, const char *type,
                               const char *value)
{
	return import_member(im, ctx, type, value, SA_GROUP, im->set_name);
}

static int import_location_net(struct import *im, const char *ctx, const char *type,
                               const char *value)
{
	return import_member(im, ctx, type, value, SA_LOCATION, im->set_name);
}

static int import_set(struct import *im, const char *ctx, const char *type, const char *entry,
                      enum sa_kind kind)
{
	static const char *const group_keys[] = {"name", "members", "created_at", NULL};
	static const char *const location_keys[] = {"name", "nets", "created_at", NULL};
	struct sg_err err = {{0}};
	char *name = NULL, what[240];
	time_t created;
	int rc, found;

	if (strcmp(type, "object") != 0)
		return ctl_invalid(ctx, "must be an object");
	if ((rc = check_keys(im, ctx, entry, kind == SA_GROUP ? group_keys : location_keys)) !=
	        CTL_OK ||
	    (rc = jstring(im, ctx, entry, "name", 1, &name)) != CTL_OK ||
	    (rc = import_time(im, ctx, entry, "created_at", &created)) != CTL_OK)
		goto out;
	snprintf(what, sizeof(what), "%s (%s)", ctx, name);
	if ((rc = ctl_check_name(what, name)) != CTL_OK)
		goto out;
	found = store_admin_exists(im->db, kind, name, &err);
	if (found != 0) {
		rc = found < 0 ? ctl_fail("%s", err.text) : ctl_invalid(what, "duplicate name");
		goto out;
	}
	if (store_admin_set_insert(im->db, kind, name, created ? created : im->ctl->now, &err) <
	    0) {
		rc = ctl_fail("%s", err.text);
		goto out;
	}
	im->set_name = name;
	strncat(what, kind == SA_GROUP ? ".members" : ".nets", sizeof(what) - strlen(what) - 1);
	rc = each(im, entry, kind == SA_GROUP ? "$.members" : "$.nets", what,
	          kind == SA_GROUP ? import_group_member : import_location_net, NULL);
	im->set_name = NULL;
out:
	free(name);
	return rc;
}

static int import_group(struct import *im, const char *ctx, const char *type, const char *entry)
{
	return import_set(im, ctx, type, entry, SA_GROUP);
}

static int import_location(struct import *im, const char *ctx, const char *type, const char *entry)
{
	return import_set(im, ctx, type, entry, SA_LOCATION);
}

static const char *const policy_keys[] = {"name",
                                          "state",
                                          "enforce_from",
                                          "mechs",
                                          "include_users",
                                          "include_groups",
                                          "exclude_users",
                                          "exclude_groups",
                                          "include_locations",
                                          "exclude_locations",
                                          "tls",
                                          "services",
                                          "reply",
                                          "created_at",
                                          "updated_at",
                                          NULL};

static int import_policy(struct import *im, const char *ctx, const char *type, const char *entry)
{
	/* The settable keys: policy_keys[1..12], state to reply. */
	const char *const *opt_keys = policy_keys + 1;
	char *values[12] = {NULL};
	struct policy_opts o;
	struct sa_policy p;
	struct sg_err err = {{0}};
	char *name = NULL, what[240];
	time_t created = 0, updated = 0;
	int rc, found;

	memset(&p, 0, sizeof(p));
	if (strcmp(type, "object") != 0)
		return ctl_invalid(ctx, "must be an object");
	if ((rc = check_keys(im, ctx, entry, policy_keys)) != CTL_OK ||
	    (rc = jstring(im, ctx, entry, "name", 1, &name)) != CTL_OK)
		goto out;
	snprintf(what, sizeof(what), "%s (%s)", ctx, name);
	for (size_t i = 0; i < 12; i++)
		if ((rc = jstring(im, what, entry, opt_keys[i], 0, &values[i])) != CTL_OK)
			goto out;
	if ((rc = import_time(im, what, entry, "created_at", &created)) != CTL_OK ||
	    (rc = import_time(im, what, entry, "updated_at", &updated)) != CTL_OK ||
	    (rc = ctl_check_name(what, name)) != CTL_OK)
		goto out;
	found = store_admin_exists(im->db, SA_POLICY, name, &err);
	if (found != 0) {
		rc = found < 0 ? ctl_fail("%s", err.text) : ctl_invalid(what, "duplicate name");
		goto out;
	}
	o = (struct policy_opts){values[0], values[1], values[2],  values[3],
	                         values[4], values[5], values[6],  values[7],
	                         values[8], values[9], values[10], values[11]};
	sa_policy_defaults(&p, name);
	if ((rc = ctl_policy_apply(im->db, im->ctl, what, &p, &o, 1)) != CTL_OK)
		goto out;
	if (created)
		p.created_at = created;
	if (updated)
		p.updated_at = updated;
	if (store_admin_policy_insert(im->db, &p, &err) < 0)
		rc = ctl_fail("%s", err.text);
out:
	for (size_t i = 0; i < 12; i++)
		free(values[i]);
	free(name);
	sa_policy_clear(&p);
	return rc;
}

static int import_exception_refs(struct import *im, const char *what, const struct sa_exception *e)
{
	const char *names[] = {e->policy, e->group_name, e->location};
	const enum sa_kind kinds[] = {SA_POLICY, SA_GROUP, SA_LOCATION};
	const char *words[] = {"policy", "group", "location"};
	struct sg_err err = {{0}};

	for (size_t i = 0; i < 3; i++) {
		int found;

		if (names[i] == NULL)
			continue;
		found = store_admin_exists(im->db, kinds[i], names[i], &err);
		if (found < 0)
			return ctl_fail("%s", err.text);
		if (!found)
			return ctl_invalid(what, "unknown %s '%s'", words[i], names[i]);
	}
	return CTL_OK;
}

static int import_exception_fields(struct import *im, const char *what, const char *entry,
                                   struct sa_exception *e)
{
	char type[16], *text = NULL, *mechs = NULL;
	time_t t;
	int rc;

	if ((rc = jstring(im, what, entry, "policy", 0, &e->policy)) != CTL_OK ||
	    (rc = jstring(im, what, entry, "user", 0, &e->user_pattern)) != CTL_OK ||
	    (rc = jstring(im, what, entry, "group", 0, &e->group_name)) != CTL_OK ||
	    (rc = jstring(im, what, entry, "location", 0, &e->location)) != CTL_OK ||
	    (rc = jstring(im, what, entry, "mechs", 0, &mechs)) != CTL_OK ||
	    (rc = jstring(im, what, entry, "reason", 1, &e->reason)) != CTL_OK ||
	    (rc = jstring(im, what, entry, "created_by", 0, &e->created_by)) != CTL_OK ||
	    (rc = import_time(im, what, entry, "created_at", &t)) != CTL_OK)
		goto out;
	e->created_at = t ? t : im->ctl->now;
	if (e->created_by == NULL)
		sa_set(&e->created_by, store_actor());
	/* Like --permanent, a permanent exception must say so: expires_at null. */
	if (jget(im, entry, "$.expires_at", type, sizeof(type), &text) < 0) {
		rc = CTL_FAIL;
		goto out;
	}
	if (type[0] == '\0') {
		rc = ctl_invalid(what, "\"expires_at\" is required (a time, or null for a "
		                       "permanent exception)");
		goto out;
	}
	if (strcmp(type, "null") != 0) {
		char field[260];

		snprintf(field, sizeof(field), "%s.expires_at", what);
		if (strcmp(type, "text") != 0) {
			rc = ctl_invalid(field, "must be a time or null");
			goto out;
		}
		if ((rc = ctl_parse_time(im->ctl, field, text, TIME_FUTURE, &t)) != CTL_OK)
			goto out;
		e->expires_at = t;
	}
	if (mechs) {
		char field[260];

		snprintf(field, sizeof(field), "%s.mechs", what);
		rc = ctl_norm_mechs(field, mechs, &e->mechs);
	}
out:
	free(text);
	free(mechs);
	return rc;
}

static int import_exception(struct import *im, const char *ctx, const char *type, const char *entry)
{
	static const char *const keys[] = {"id",         "policy",     "user",    "group",
	                                   "location",   "mechs",      "reason",  "created_by",
	                                   "created_at", "expires_at", "expired", NULL};
	struct sa_exception e = {0};
	struct sg_err err = {{0}};
	char what[240], idtype[16], *idtext = NULL;
	int rc, keep_id = 0;

	if (strcmp(type, "object") != 0)
		return ctl_invalid(ctx, "must be an object");
	if ((rc = check_keys(im, ctx, entry, keys)) != CTL_OK)
		return rc;
	if (jget(im, entry, "$.id", idtype, sizeof(idtype), &idtext) < 0)
		return CTL_FAIL;
	if (strcmp(idtype, "integer") == 0 && idtext != NULL) {
		e.id = strtoll(idtext, NULL, 10);
		keep_id = e.id > 0;
		snprintf(what, sizeof(what), "%s (#%lld)", ctx, (long long)e.id);
	} else {
		snprintf(what, sizeof(what), "%s", ctx);
	}
	free(idtext);
	if (idtype[0] && strcmp(idtype, "null") != 0 && !keep_id)
		return ctl_invalid(what, "\"id\" must be a positive integer");
	if ((rc = import_exception_fields(im, what, entry, &e)) != CTL_OK)
		goto out;
	rc = CTL_USAGE;
	if (e.user_pattern && e.group_name)
		ctl_invalid(what, "give either \"user\" or \"group\", not both");
	else if (!e.user_pattern && !e.group_name && !e.location)
		ctl_invalid(what, "an exception needs a user, a group or a location");
	else if (*e.reason == '\0')
		ctl_invalid(what, "\"reason\" must not be empty");
	else
		rc = CTL_OK;
	if (rc == CTL_OK && e.user_pattern) {
		struct pattern p;
		char norm[PATTERN_MAX + 1];

		if (pattern_parse(e.user_pattern, &p, &err) < 0) {
			rc = ctl_invalid(what, "%s", err.text);
			goto out;
		}
		utf8_fold(norm, e.user_pattern, sizeof(norm));
		sa_set(&e.user_pattern, norm);
	}
	if (rc == CTL_OK)
		rc = import_exception_refs(im, what, &e);
	if (rc == CTL_OK && store_admin_exception_insert(im->db, &e, keep_id, NULL, &err) < 0)
		rc = ctl_invalid(what, "cannot be stored: %s", err.text);
out:
	sa_exception_clear(&e);
	return rc;
}

static int import_default_mechs(struct import *im)
{
	struct sg_err err = {{0}};

	for (const struct mech_default *m = mech_defaults; m->name; m++)
		if (store_admin_mech_set(im->db, m->name, mech_class_name(m->mech_class), &err) < 0)
			return ctl_fail("%s", err.text);
	return CTL_OK;
}

/* Checks the document as a whole: valid JSON, an object, our format. */
static int import_check_doc(struct import *im, const char *file)
{
	static const char *const keys[] = {"format",     "version", "exported_at", "settings",
	                                   "mechanisms", "groups",  "locations",   "policies",
	                                   "exceptions", NULL};
	sqlite3_stmt *st;
	char type[16], *v = NULL;
	int valid = 0, rc;

	if (sqlite3_prepare_v2(im->db, "SELECT json_valid(?1)", -1, &st, NULL) != SQLITE_OK)
		return ctl_fail("import: %s", sqlite3_errmsg(im->db));
	sqlite3_bind_text(st, 1, im->doc, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		valid = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (!valid)
		return ctl_invalid(file, "not valid JSON");
	if (jget(im, im->doc, "$", type, sizeof(type), &v) < 0)
		return CTL_FAIL;
	free(v);
	if (strcmp(type, "object") != 0)
		return ctl_invalid(file, "the document must be a JSON object");
	if ((rc = check_keys(im, file, im->doc, keys)) != CTL_OK)
		return rc;
	if ((rc = jstring(im, file, im->doc, "format", 0, &v)) != CTL_OK)
		return rc;
	if (v && strcmp(v, EXPORT_FORMAT) != 0) {
		free(v);
		return ctl_invalid(file, "format is not \"" EXPORT_FORMAT "\"");
	}
	free(v);
	if (jget(im, im->doc, "$.version", type, sizeof(type), &v) < 0)
		return CTL_FAIL;
	rc = CTL_OK;
	if (type[0] &&
	    (strcmp(type, "integer") != 0 || v == NULL || strtoll(v, NULL, 10) != EXPORT_VERSION))
		rc = ctl_invalid(file, "unsupported version (this saslgatectl reads version %d)",
		                 EXPORT_VERSION);
	free(v);
	return rc;
}

static int import_all(struct import *im)
{
	struct sg_err err = {{0}};
	char type[16], *v = NULL;
	int rc;

	if (store_admin_clear_policy(im->db, &err) < 0)
		return ctl_fail("%s", err.text);
	if ((rc = import_setting_each(im, im->doc)) != CTL_OK)
		return rc;
	if (jget(im, im->doc, "$.mechanisms", type, sizeof(type), &v) < 0)
		return CTL_FAIL;
	free(v);
	rc = type[0]
	         ? each(im, im->doc, "$.mechanisms", "mechanisms", import_mech, &im->counts[N_MECH])
	         : import_default_mechs(im);
	if (rc == CTL_OK)
		rc = each(im, im->doc, "$.groups", "groups", import_group, &im->counts[N_GROUP]);
	if (rc == CTL_OK)
		rc = each(im, im->doc, "$.locations", "locations", import_location,
		          &im->counts[N_LOCATION]);
	if (rc == CTL_OK)
		rc = each(im, im->doc, "$.policies", "policies", import_policy,
		          &im->counts[N_POLICY]);
	if (rc == CTL_OK)
		rc = each(im, im->doc, "$.exceptions", "exceptions", import_exception,
		          &im->counts[N_EXCEPTION]);
	return rc;
}

static char *read_file(const char *path, int *status)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (f == NULL) {
		*status = ctl_fail("%s: %s", path, strerror(errno));
		return NULL;
	}
	do {
		if (len + 65536 + 1 > cap) {
			cap = cap ? cap * 2 : (size_t)65536 * 2;
			buf = xrealloc(buf, cap);
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
	} while (n > 0 && len <= IMPORT_MAX_BYTES);
	if (ferror(f))
		*status = ctl_fail("%s: %s", path, strerror(errno));
	else if (len > IMPORT_MAX_BYTES)
		*status = ctl_invalid(path, "larger than %zu bytes", IMPORT_MAX_BYTES);
	else if (memchr(buf, '\0', len))
		*status = ctl_invalid(path, "contains a NUL byte");
	else
		*status = CTL_OK;
	if (f != stdin)
		fclose(f);
	if (*status != CTL_OK) {
		free(buf);
		return NULL;
	}
	buf[len] = '\0';
	return buf;
}

int ctl_import_doc(const struct ctl *ctl, sqlite3 *db, const char *doc, const char *file,
                   struct ctl_import_counts *counts)
{
	struct import im;
	int rc;

	memset(&im, 0, sizeof(im));
	im.ctl = ctl;
	im.db = db;
	im.doc = doc;
	if (sqlite3_prepare_v2(db, "SELECT json_type(?1, ?2), json_extract(?1, ?2)", -1, &im.get,
	                       NULL) != SQLITE_OK)
		return ctl_fail("import: %s", sqlite3_errmsg(db));
	if ((rc = import_check_doc(&im, file)) == CTL_OK)
		rc = import_all(&im);
	sqlite3_finalize(im.get);
	*counts =
	    (struct ctl_import_counts){im.counts[N_MECH], im.counts[N_GROUP], im.counts[N_LOCATION],
	                               im.counts[N_POLICY], im.counts[N_EXCEPTION]};
	return rc;
}

int cmd_import(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	struct ctl_import_counts n = {0, 0, 0, 0, 0};
	char after[256];
	const char *file;
	char *doc;
	sqlite3 *db = NULL;
	int rc = ctl_parse_plain(ctl, cmd, argc, argv, 1, 1);

	if (rc != CTL_OPT_CONTINUE)
		return rc;
	file = argv[optind];
	if ((doc = read_file(file, &rc)) == NULL)
		return rc;
	if ((rc = ctl_open(ctl, &db)) != CTL_OK || (rc = ctl_begin(db)) != CTL_OK)
		goto out;
	if ((rc = ctl_import_doc(ctl, db, doc, file, &n)) != CTL_OK) {
		fprintf(stderr, "saslgatectl: import: %s rejected; the store is unchanged\n", file);
		rc = ctl_abort(db, rc);
		goto out;
	}
	snprintf(after, sizeof(after),
	         "{\"mechanisms\":%d,\"groups\":%d,\"locations\":%d,\"policies\":%d,"
	         "\"exceptions\":%d}",
	         n.mechanisms, n.groups, n.locations, n.policies, n.exceptions);
	if ((rc = ctl_finish(db, "import", file, NULL, after)) == CTL_OK && !ctl->json)
		printf("imported %d policies, %d exceptions, %d groups, %d locations, %d "
		       "mechanisms\n",
		       n.policies, n.exceptions, n.groups, n.locations, n.mechanisms);
	else if (rc == CTL_OK)
		printf("%s\n", after);
out:
	store_close(&db);
	free(doc);
	return rc;
}
