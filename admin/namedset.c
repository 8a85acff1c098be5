/*
 * namedset - what groups (sets of user patterns) and locations (sets of CIDR
 * ranges) have in common: create, remove when unused, add and remove members,
 * list. cmd_group.c and cmd_location.c are the command tables over it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"
#include "ctl.h"
#include "json.h"
#include "namedset.h"
#include "pattern.h"
#include "utf8.h"
#include "validate.h"

static const char *kind_name(enum sa_kind kind)
{
	return kind == SA_GROUP ? "group" : "location";
}

/* Validates a member and stores its normal form (case-folded pattern, CIDR in
 * its family's notation with the prefix length) into buf. */
static int normalise_member(enum sa_kind kind, const char *text, char *buf, size_t len)
{
	struct sg_err err = {{0}};

	if (kind == SA_GROUP) {
		struct pattern p;

		if (pattern_parse(text, &p, &err) < 0)
			return ctl_invalid("pattern", "%s", err.text);
		utf8_fold(buf, text, len);
	} else {
		struct cidr c;

		if (cidr_parse(text, &c, &err) < 0)
			return ctl_invalid("cidr", "'%s': %s", text, err.text);
		if (cidr_format(&c, buf, len) < 0)
			return ctl_invalid("cidr", "'%s': cannot be formatted", text);
	}
	return CTL_OK;
}

/* Adds or removes members; an unknown member to remove is invalid input. */
static int change_members(sqlite3 *db, enum sa_kind kind, const char *name, char **members, int n,
                          int add)
{
	struct sg_err err = {{0}};

	for (int i = 0; i < n; i++) {
		char norm[PATTERN_MAX + 64];
		int rc = normalise_member(kind, members[i], norm, sizeof(norm));

		if (rc != CTL_OK)
			return rc;
		rc = store_admin_set_member(db, kind, add, name, norm, &err);
		if (rc < 0)
			return ctl_fail("%s", err.text);
		if (rc == 0 && !add)
			return ctl_invalid(kind == SA_GROUP ? "pattern" : "cidr",
			                   "'%s' is not in %s %s", norm, kind_name(kind), name);
	}
	return CTL_OK;
}

static int create_or_remove(sqlite3 *db, enum sa_kind kind, const char *name, enum namedset_op op,
                            time_t now)
{
	struct sg_err err = {{0}};
	char refs[1024];
	int r;

	if (op == NAMEDSET_ADD) {
		r = store_admin_set_insert(db, kind, name, now, &err);
		return r < 0 ? ctl_fail("%s", err.text) : CTL_OK;
	}
	r = ctl_references(db, kind, name, refs, sizeof(refs));
	if (r < 0)
		return CTL_FAIL;
	if (r > 0)
		return ctl_invalid(kind_name(kind), "%s '%s' is still used by %s", kind_name(kind),
		                   name, refs);
	r = store_admin_set_delete(db, kind, name, &err);
	return r < 0 ? ctl_fail("%s", err.text) : CTL_OK;
}

int namedset_write(struct ctl *ctl, enum sa_kind kind, enum namedset_op op, const char *action,
                   const char *name, char **members, int n)
{
	struct sg_err err = {{0}};
	char *before = NULL, *after = NULL;
	char norm[PATTERN_MAX + 64];
	sqlite3 *db;
	int rc;

	/* Everything that needs no store is checked before opening it. */
	if (op == NAMEDSET_ADD &&
	    ctl_check_name(kind == SA_GROUP ? "group name" : "location name", name) != CTL_OK)
		return CTL_USAGE;
	for (int i = 0; i < n; i++)
		if ((rc = normalise_member(kind, members[i], norm, sizeof(norm))) != CTL_OK)
			return rc;
	if ((rc = ctl_open(ctl, &db)) != CTL_OK)
		return rc;
	if ((rc = ctl_begin(db)) != CTL_OK)
		goto out;
	if (store_admin_object_json(db, kind, name, &before, &err) < 0) {
		rc = ctl_abort(db, ctl_fail("%s", err.text));
		goto out;
	}
	if (op == NAMEDSET_ADD && before != NULL)
		rc = ctl_invalid(kind_name(kind), "%s '%s' already exists", kind_name(kind), name);
	else if (op != NAMEDSET_ADD && before == NULL)
		rc = ctl_invalid(kind_name(kind), "unknown %s '%s'", kind_name(kind), name);
	else if (op == NAMEDSET_ADD || op == NAMEDSET_REMOVE)
		rc = create_or_remove(db, kind, name, op, ctl->now);
	if (rc == CTL_OK && op != NAMEDSET_REMOVE)
		rc = change_members(db, kind, name, members, n, op != NAMEDSET_REMOVE_MEMBER);
	if (rc == CTL_OK && op != NAMEDSET_REMOVE &&
	    store_admin_object_json(db, kind, name, &after, &err) < 0)
		rc = ctl_fail("%s", err.text);
	if (rc != CTL_OK) {
		rc = ctl_abort(db, rc);
		goto out;
	}
	rc = ctl_finish(db, action, name, before, after);
	if (rc == CTL_OK && !ctl->json)
		printf("%s %s: done (%s)\n", kind_name(kind), name, action);
out:
	free(before);
	free(after);
	store_close(&db);
	return rc;
}

struct members_ctx {
	struct json *j;
	struct ctl_list list;
};

static int collect_member(const char *member, void *arg)
{
	struct members_ctx *mc = arg;

	if (mc->j)
		json_string(mc->j, member);
	else
		ctl_list_add(&mc->list, member);
	return 0;
}

struct names_ctx {
	sqlite3 *db;
	enum sa_kind kind;
	struct json *j;
	struct sg_err err;
};

static int print_named_set(const char *name, int64_t created_at, void *arg)
{
	struct names_ctx *nc = arg;
	struct members_ctx mc = {nc->j, {0}};
	char *text;
	char t[32];

	if (nc->j) {
		json_object_begin(nc->j);
		json_kv_string(nc->j, "name", name);
		json_key(nc->j, nc->kind == SA_GROUP ? "members" : "nets");
		json_array_begin(nc->j);
	}
	if (store_admin_member_foreach(nc->db, nc->kind, name, collect_member, &mc, &nc->err) < 0)
		return -1;
	if (nc->j) {
		json_array_end(nc->j);
		json_kv_time(nc->j, "created_at", (time_t)created_at);
		json_object_end(nc->j);
		return 0;
	}
	text = ctl_list_take(&mc.list);
	printf("%-20s %-20s %s\n", name, ctl_time((time_t)created_at, "-", t, sizeof(t)),
	       *text ? text : "-");
	free(text);
	return 0;
}

int namedset_list(struct ctl *ctl, enum sa_kind kind)
{
	struct names_ctx nc = {NULL, kind, NULL, {{0}}};
	struct json j;
	int rc;

	if ((rc = ctl_open(ctl, &nc.db)) != CTL_OK)
		return rc;
	nc.j = json_list_begin(&j, stdout, ctl->json);
	if (nc.j == NULL)
		printf("%-20s %-20s %s\n", "NAME", "CREATED",
		       kind == SA_GROUP ? "MEMBERS" : "NETS");
	rc = store_admin_name_foreach(nc.db, kind, print_named_set, &nc, &nc.err);
	json_list_end(nc.j);
	store_close(&nc.db);
	return rc < 0 ? ctl_fail("%s", nc.err.text) : CTL_OK;
}
