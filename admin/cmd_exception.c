/*
 * exception - add, list, remove and extend exceptions. Every exception has an
 * owner (the actor), a reason and, unless --permanent is explicit, an expiry.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_exception.h"
#include "ctl.h"
#include "json.h"
#include "pattern.h"
#include "utf8.h"
#include "validate.h"

enum {
	OPT_USER = 0x100,
	OPT_GROUP,
	OPT_LOCATION,
	OPT_MECH,
	OPT_POLICY,
	OPT_EXPIRES,
	OPT_PERMANENT,
	OPT_REASON,
	OPT_ALL
};

void ctl_exception_json(struct json *j, const struct sa_exception *e, time_t now)
{
	json_object_begin(j);
	json_kv_int(j, "id", e->id);
	json_kv_string(j, "policy", e->policy);
	json_kv_string(j, "user", e->user_pattern);
	json_kv_string(j, "group", e->group_name);
	json_kv_string(j, "location", e->location);
	json_kv_string(j, "mechs", e->mechs);
	json_kv_string(j, "reason", e->reason);
	json_kv_string(j, "created_by", e->created_by);
	json_kv_time(j, "created_at", (time_t)e->created_at);
	json_kv_time(j, "expires_at", (time_t)e->expires_at);
	if (now != 0)
		json_kv_bool(j, "expired", e->expires_at != 0 && e->expires_at <= now);
	json_object_end(j);
}

/* Resolves --expires/--permanent into *expires_at (0 = permanent). */
static int parse_expiry(const struct ctl *ctl, const char *expires, int permanent,
                        int64_t *expires_at)
{
	time_t t;
	int rc;

	if (expires && permanent)
		return ctl_invalid("--expires", "give either --expires or --permanent, not both");
	if (!expires && !permanent)
		return ctl_invalid("--expires", "an exception needs an expiry: --expires "
		                                "DURATION_OR_TIME (e.g. 30d), or --permanent");
	if (permanent) {
		*expires_at = 0;
		return CTL_OK;
	}
	if ((rc = ctl_parse_time(ctl, "--expires", expires, TIME_FUTURE, &t)) != CTL_OK)
		return rc;
	if (t <= ctl->now)
		return ctl_invalid("--expires", "'%s' is in the past", expires);
	*expires_at = t;
	return CTL_OK;
}

static int check_reason(const char *reason)
{
	if (reason == NULL || *reason == '\0')
		return ctl_invalid("--reason", "an exception needs a reason");
	for (const char *p = reason; *p; p++)
		if ((unsigned char)*p < 0x20)
			return ctl_invalid("--reason", "control characters are not allowed");
	if (strlen(reason) > 500)
		return ctl_invalid("--reason", "longer than 500 characters");
	return CTL_OK;
}

/* Checks the options that need no store and fills e. */
static int exception_from_opts(const struct ctl *ctl, struct sa_exception *e, const char *user,
                               const char *group, const char *location, const char *mech,
                               const char *policy, const char *expires, int permanent,
                               const char *reason)
{
	int rc;

	if (user && group)
		return ctl_invalid("--user", "give either --user or --group, not both");
	if (!user && !group && !location)
		return ctl_invalid("--user", "an exception matches a user (--user or --group), a "
		                             "location (--location), or both");
	if ((rc = check_reason(reason)) != CTL_OK)
		return rc;
	if ((rc = parse_expiry(ctl, expires, permanent, &e->expires_at)) != CTL_OK)
		return rc;
	if (user) {
		struct pattern p;
		struct sg_err err = {{0}};
		char norm[PATTERN_MAX + 1];

		if (pattern_parse(user, &p, &err) < 0)
			return ctl_invalid("--user", "%s", err.text);
		utf8_fold(norm, user, sizeof(norm));
		sa_set(&e->user_pattern, norm);
	}
	if (mech && (rc = ctl_norm_mechs("--mech", mech, &e->mechs)) != CTL_OK)
		return rc;
	sa_set(&e->group_name, group);
	sa_set(&e->location, location);
	sa_set(&e->policy, policy);
	sa_set(&e->reason, reason);
	sa_set(&e->created_by, store_actor());
	e->created_at = ctl->now;
	return CTL_OK;
}

/* Checks that the names an exception refers to exist. */
static int check_refs(sqlite3 *db, const struct sa_exception *e)
{
	static const struct {
		const char *field;
		enum sa_kind kind;
		const char *what;
	} refs[] = {{"--policy", SA_POLICY, "policy"},
	            {"--group", SA_GROUP, "group"},
	            {"--location", SA_LOCATION, "location"}};
	const char *names[] = {e->policy, e->group_name, e->location};
	struct sg_err err = {{0}};

	for (size_t i = 0; i < 3; i++) {
		int found;

		if (names[i] == NULL)
			continue;
		found = store_admin_exists(db, refs[i].kind, names[i], &err);
		if (found < 0)
			return ctl_fail("%s", err.text);
		if (!found)
			return ctl_invalid(refs[i].field, "unknown %s '%s'", refs[i].what,
			                   names[i]);
	}
	return CTL_OK;
}

/* The options of the exception commands, as typed (NULL: not given). */
struct exception_opts {
	const char *user, *group, *location, *mech, *policy, *expires, *reason;
	int permanent, all;
};

static int take_exception_opt(int c, const char *value, void *arg)
{
	struct exception_opts *o = arg;

	switch (c) {
	case OPT_USER:
		o->user = value;
		break;
	case OPT_GROUP:
		o->group = value;
		break;
	case OPT_LOCATION:
		o->location = value;
		break;
	case OPT_MECH:
		o->mech = value;
		break;
	case OPT_POLICY:
		o->policy = value;
		break;
	case OPT_EXPIRES:
		o->expires = value;
		break;
	case OPT_PERMANENT:
		o->permanent = 1;
		break;
	case OPT_REASON:
		o->reason = value;
		break;
	case OPT_ALL:
	case 'a':
		o->all = 1;
		break;
	default:
		return CTL_OPT_NOT_MINE;
	}
	return CTL_OPT_CONTINUE;
}

static int exception_add(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"user", required_argument, NULL, OPT_USER},
	    {"group", required_argument, NULL, OPT_GROUP},
	    {"location", required_argument, NULL, OPT_LOCATION},
	    {"mech", required_argument, NULL, OPT_MECH},
	    {"policy", required_argument, NULL, OPT_POLICY},
	    {"expires", required_argument, NULL, OPT_EXPIRES},
	    {"permanent", no_argument, NULL, OPT_PERMANENT},
	    {"reason", required_argument, NULL, OPT_REASON},
	    CTL_OPT_COMMON,
	    {NULL, 0, NULL, 0},
	};
	struct exception_opts o = {0};
	const struct ctl_opts opts = {":h", longopts, take_exception_opt, &o};
	struct sa_exception e = {0};
	struct sg_err err = {{0}};
	char *after = NULL, object[32], t[32];
	int rc;
	int64_t id;
	sqlite3 *db = NULL;

	if ((rc = ctl_parse(ctl, cmd, argc, argv, &opts, 0, 0)) != CTL_OPT_CONTINUE)
		return rc;
	rc = exception_from_opts(ctl, &e, o.user, o.group, o.location, o.mech, o.policy, o.expires,
	                         o.permanent, o.reason);
	if (rc != CTL_OK)
		goto out;
	if ((rc = ctl_open(ctl, &db)) != CTL_OK || (rc = ctl_begin(db)) != CTL_OK)
		goto out;
	if ((rc = check_refs(db, &e)) != CTL_OK) {
		rc = ctl_abort(db, rc);
		goto out;
	}
	if (store_admin_exception_insert(db, &e, 0, &id, &err) < 0 ||
	    store_admin_exception_json(db, id, &after, &err) < 0) {
		rc = ctl_abort(db, ctl_fail("%s", err.text));
		goto out;
	}
	snprintf(object, sizeof(object), "exception #%lld", (long long)id);
	if ((rc = ctl_finish(db, "exception add", object, NULL, after)) != CTL_OK)
		goto out;
	e.id = id;
	if (ctl->json) {
		struct json j;

		json_init(&j, stdout, 1);
		ctl_exception_json(&j, &e, ctl->now);
		json_finish(&j);
	} else {
		printf("%lld\n", (long long)id);
		fprintf(stderr, "exception #%lld added, %s%s\n", (long long)id,
		        e.expires_at ? "expires " : "permanent",
		        e.expires_at ? ctl_time((time_t)e.expires_at, "", t, sizeof(t)) : "");
	}
out:
	free(after);
	sa_exception_clear(&e);
	store_close(&db);
	return rc;
}

struct list_ctx {
	const struct ctl *ctl;
	struct json *j;
};

static int print_exception(const struct sa_exception *e, void *arg)
{
	struct list_ctx *lc = arg;
	char who[128], t[32];
	int expired = e->expires_at != 0 && e->expires_at <= lc->ctl->now;

	if (lc->j) {
		ctl_exception_json(lc->j, e, lc->ctl->now);
		return 0;
	}
	if (e->user_pattern)
		snprintf(who, sizeof(who), "%s", e->user_pattern);
	else if (e->group_name)
		snprintf(who, sizeof(who), "group:%s", e->group_name);
	else
		snprintf(who, sizeof(who), "*");
	printf("%-5lld %-14s %-28s %-12s %-10s %-21s%s %-10s %s\n", (long long)e->id,
	       e->policy ? e->policy : "*", who, e->location ? e->location : "*",
	       e->mechs ? e->mechs : "*", ctl_time((time_t)e->expires_at, "never", t, sizeof(t)),
	       expired ? "!" : " ", e->created_by, e->reason);
	return 0;
}

static int exception_list(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"all", no_argument, NULL, OPT_ALL},
	    CTL_OPT_COMMON,
	    {NULL, 0, NULL, 0},
	};
	struct exception_opts o = {0};
	const struct ctl_opts opts = {":ah", longopts, take_exception_opt, &o};
	struct list_ctx lc = {ctl, NULL};
	struct sg_err err = {{0}};
	struct json j;
	int rc;
	sqlite3 *db;

	if ((rc = ctl_start(ctl, cmd, argc, argv, &opts, &db)) != CTL_OPT_CONTINUE)
		return rc;
	lc.j = json_list_begin(&j, stdout, ctl->json);
	if (lc.j == NULL)
		printf("%-5s %-14s %-28s %-12s %-10s %-21s  %-10s %s\n", "ID", "POLICY", "USER",
		       "LOCATION", "MECHS", "EXPIRES", "BY", "REASON");
	rc = store_admin_exception_foreach(db, o.all, ctl->now, print_exception, &lc, &err);
	if (lc.j == NULL && o.all)
		printf("(! = expired: no longer matches)\n");
	json_list_end(lc.j);
	store_close(&db);
	return rc < 0 ? ctl_fail("%s", err.text) : CTL_OK;
}

/* remove (expires == NULL && !permanent && remove) or extend an exception. */
static int exception_change(struct ctl *ctl, const char *id_text, int remove, const char *expires,
                            int permanent)
{
	struct sg_err err = {{0}};
	char *before = NULL, *after = NULL, object[32];
	int64_t id, expires_at = 0;
	sqlite3 *db;
	int rc;

	if ((rc = ctl_parse_id("exception id", id_text, &id)) != CTL_OK)
		return rc;
	if (!remove && (rc = parse_expiry(ctl, expires, permanent, &expires_at)) != CTL_OK)
		return rc;
	if ((rc = ctl_open(ctl, &db)) != CTL_OK)
		return rc;
	if ((rc = ctl_begin(db)) != CTL_OK)
		goto out;
	if (store_admin_exception_json(db, id, &before, &err) < 0)
		goto sqlfail;
	if (before == NULL) {
		rc =
		    ctl_abort(db, ctl_invalid("exception id", "no exception #%lld", (long long)id));
		goto out;
	}
	if (remove ? store_admin_exception_delete(db, id, &err) < 0
	           : store_admin_exception_set_expiry(db, id, expires_at, &err) < 0 ||
	                 store_admin_exception_json(db, id, &after, &err) < 0)
		goto sqlfail;
	snprintf(object, sizeof(object), "exception #%lld", (long long)id);
	rc =
	    ctl_finish(db, remove ? "exception remove" : "exception extend", object, before, after);
	if (rc == CTL_OK && !ctl->json)
		printf("exception #%lld %s\n", (long long)id, remove ? "removed" : "extended");
	goto out;
sqlfail:
	rc = ctl_abort(db, ctl_fail("%s", err.text));
out:
	free(before);
	free(after);
	store_close(&db);
	return rc;
}

static int exception_remove(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	int rc = ctl_parse_plain(ctl, cmd, argc, argv, 1, 1);

	return rc != CTL_OPT_CONTINUE ? rc : exception_change(ctl, argv[optind], 1, NULL, 0);
}

static int exception_extend(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"expires", required_argument, NULL, OPT_EXPIRES},
	    {"permanent", no_argument, NULL, OPT_PERMANENT},
	    CTL_OPT_COMMON,
	    {NULL, 0, NULL, 0},
	};
	struct exception_opts o = {0};
	const struct ctl_opts opts = {":h", longopts, take_exception_opt, &o};
	int rc;

	if ((rc = ctl_parse(ctl, cmd, argc, argv, &opts, -1, -1)) != CTL_OPT_CONTINUE)
		return rc;
	if (argc - optind != 1)
		return ctl_usage_error(cmd, "exactly one exception id is expected");
	return exception_change(ctl, argv[optind], 0, o.expires, o.permanent);
}

const struct ctl_command ctl_exception_verbs[] = {
    {"add",
     "[--user PATTERN | --group GROUP] [--location LOCATION] [--mech M,...]\n"
     "      [--policy POLICY] (--expires DURATION_OR_TIME | --permanent) --reason TEXT",
     "add an exception; prints its id", exception_add, NULL, NULL},
    {"list", "[--all]", "list active exceptions (--all: with expired ones)", exception_list, NULL,
     NULL},
    {"remove", "ID", "remove an exception", exception_remove, NULL, NULL},
    {"extend", "ID (--expires DURATION_OR_TIME | --permanent)", "change the expiry",
     exception_extend, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL, NULL},
};
