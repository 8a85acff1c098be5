/*
 * policy - list, show, add, set and remove policies.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_policy.h"
#include "ctl.h"
#include "json.h"
#include "snapshot.h"
#include "validate.h"

enum {
	OPT_STATE = 0x100,
	OPT_ENFORCE_FROM,
	OPT_MECH,
	OPT_INCLUDE_USERS,
	OPT_INCLUDE_GROUPS,
	OPT_EXCLUDE_USERS,
	OPT_EXCLUDE_GROUPS,
	OPT_INCLUDE_LOCATIONS,
	OPT_EXCLUDE_LOCATIONS,
	OPT_TLS,
	OPT_SERVICES,
	OPT_REPLY
};

static const struct option policy_longopts[] = {
    {"state", required_argument, NULL, OPT_STATE},
    {"enforce-from", required_argument, NULL, OPT_ENFORCE_FROM},
    {"mech", required_argument, NULL, OPT_MECH},
    {"mechs", required_argument, NULL, OPT_MECH},
    {"include-users", required_argument, NULL, OPT_INCLUDE_USERS},
    {"include-groups", required_argument, NULL, OPT_INCLUDE_GROUPS},
    {"exclude-users", required_argument, NULL, OPT_EXCLUDE_USERS},
    {"exclude-groups", required_argument, NULL, OPT_EXCLUDE_GROUPS},
    {"include-locations", required_argument, NULL, OPT_INCLUDE_LOCATIONS},
    {"exclude-locations", required_argument, NULL, OPT_EXCLUDE_LOCATIONS},
    {"tls", required_argument, NULL, OPT_TLS},
    {"services", required_argument, NULL, OPT_SERVICES},
    {"reply", required_argument, NULL, OPT_REPLY},
    CTL_OPT_COMMON,
    {NULL, 0, NULL, 0},
};

/* The name of a field in messages: the option, or ctx.key for import. */
static const char *field(char *buf, size_t len, const char *ctx, const char *opt)
{
	if (ctx == NULL) {
		snprintf(buf, len, "--%s", opt);
	} else {
		int n = snprintf(buf, len, "%s.", ctx);

		for (const char *s = opt; *s && n > 0 && (size_t)n + 1 < len; s++)
			buf[n++] = *s == '-' ? '_' : *s;
		if (n > 0 && (size_t)n < len)
			buf[n] = '\0';
	}
	return buf;
}

/* Replaces *slot with the normalised value when validation succeeded. */
static void take(char **slot, char *value)
{
	free(*slot);
	*slot = value;
}

static int apply_lists(sqlite3 *db, const char *ctx, struct sa_policy *p,
                       const struct policy_opts *o)
{
	char f[160];
	char *v;
	int rc;

	if (o->mech) {
		if ((rc = ctl_norm_mechs(field(f, sizeof(f), ctx, "mech"), o->mech, &v)) != CTL_OK)
			return rc;
		take(&p->mechs, v);
	}
	if (o->include_users) {
		if ((rc = ctl_norm_patterns(field(f, sizeof(f), ctx, "include-users"),
		                            o->include_users, 1, &v)) != CTL_OK)
			return rc;
		take(&p->include_users, v);
	}
	if (o->include_groups) {
		if ((rc = ctl_norm_names(db, field(f, sizeof(f), ctx, "include-groups"),
		                         o->include_groups, SA_GROUP, NULL, &v)) != CTL_OK)
			return rc;
		take(&p->include_groups, v);
		/* Naming groups means "these users", unless users were given too. */
		if (!o->include_users && *v && strcmp(p->include_users, "all") == 0)
			sa_set(&p->include_users, "");
	}
	if (o->exclude_users) {
		if ((rc = ctl_norm_patterns(field(f, sizeof(f), ctx, "exclude-users"),
		                            o->exclude_users, 0, &v)) != CTL_OK)
			return rc;
		take(&p->exclude_users, v);
	}
	if (o->exclude_groups) {
		if ((rc = ctl_norm_names(db, field(f, sizeof(f), ctx, "exclude-groups"),
		                         o->exclude_groups, SA_GROUP, NULL, &v)) != CTL_OK)
			return rc;
		take(&p->exclude_groups, v);
	}
	if (o->include_locations) {
		if ((rc = ctl_norm_names(db, field(f, sizeof(f), ctx, "include-locations"),
		                         o->include_locations, SA_LOCATION, "any", &v)) != CTL_OK)
			return rc;
		take(&p->include_locations, v);
	}
	if (o->exclude_locations) {
		if ((rc = ctl_norm_names(db, field(f, sizeof(f), ctx, "exclude-locations"),
		                         o->exclude_locations, SA_LOCATION, NULL, &v)) != CTL_OK)
			return rc;
		take(&p->exclude_locations, v);
	}
	if (o->services) {
		if ((rc = ctl_norm_services(field(f, sizeof(f), ctx, "services"), o->services,
		                            &v)) != CTL_OK)
			return rc;
		take(&p->services, v);
	}
	return CTL_OK;
}

int ctl_policy_apply(sqlite3 *db, const struct ctl *ctl, const char *ctx, struct sa_policy *p,
                     const struct policy_opts *o, int is_new)
{
	char f[160];
	int rc;

	if (o->state) {
		enum policy_state s;

		if (policy_state_parse(o->state, &s) < 0)
			return ctl_invalid(field(f, sizeof(f), ctx, "state"),
			                   "'%s' is not a state (off, report-only, enforce)",
			                   o->state);
		sa_set(&p->state, policy_state_name(s));
	}
	if (o->enforce_from) {
		time_t t;

		if (sg_strcasecmp(o->enforce_from, "none") == 0 || *o->enforce_from == '\0') {
			p->enforce_from = 0;
		} else {
			if ((rc = ctl_parse_time(ctl, field(f, sizeof(f), ctx, "enforce-from"),
			                         o->enforce_from, TIME_FUTURE, &t)) != CTL_OK)
				return rc;
			p->enforce_from = t;
		}
	}
	if (o->tls) {
		enum tls_condition t;

		if (tls_condition_parse(o->tls, &t) < 0)
			return ctl_invalid(
			    field(f, sizeof(f), ctx, "tls"),
			    "'%s' is not a TLS condition (any, plaintext, encrypted)", o->tls);
		sa_set(&p->tls, tls_condition_name(t));
	}
	if (o->reply) {
		char *code, *enh, *text;

		if ((rc = ctl_parse_reply(field(f, sizeof(f), ctx, "reply"), o->reply, &code, &enh,
		                          &text)) != CTL_OK)
			return rc;
		take(&p->reply_code, code);
		take(&p->reply_enh, enh);
		take(&p->reply_text, text);
	}
	if ((rc = apply_lists(db, ctx, p, o)) != CTL_OK)
		return rc;
	if (*p->include_users == '\0' && *p->include_groups == '\0')
		return ctl_invalid(
		    field(f, sizeof(f), ctx, "include-users"),
		    "policy '%s' would include no user (give 'all', users or groups)", p->name);
	if (is_new)
		p->created_at = ctl->now;
	p->updated_at = ctl->now;
	return CTL_OK;
}

static void reply_string(const struct sa_policy *p, char *buf, size_t len)
{
	snprintf(buf, len, "%s %s %s", p->reply_code, p->reply_enh, p->reply_text);
}

void ctl_policy_json(struct json *j, const struct sa_policy *p)
{
	char reply[600];

	reply_string(p, reply, sizeof(reply));
	json_object_begin(j);
	json_kv_string(j, "name", p->name);
	json_kv_string(j, "state", p->state);
	json_kv_time(j, "enforce_from", (time_t)p->enforce_from);
	json_kv_string(j, "mechs", p->mechs);
	json_kv_string(j, "include_users", p->include_users);
	json_kv_string(j, "include_groups", p->include_groups);
	json_kv_string(j, "exclude_users", p->exclude_users);
	json_kv_string(j, "exclude_groups", p->exclude_groups);
	json_kv_string(j, "include_locations", p->include_locations);
	json_kv_string(j, "exclude_locations", p->exclude_locations);
	json_kv_string(j, "tls", p->tls);
	json_kv_string(j, "services", p->services);
	json_kv_string(j, "reply", reply);
	json_kv_time(j, "created_at", (time_t)p->created_at);
	json_kv_time(j, "updated_at", (time_t)p->updated_at);
	json_object_end(j);
}

/* The state in effect at now, given enforce_from. */
static const char *effective_state(const struct sa_policy *p, time_t now)
{
	if (strcmp(p->state, "off") == 0 || p->enforce_from == 0)
		return p->state;
	return now >= p->enforce_from ? "enforce" : "report-only";
}

struct list_ctx {
	const struct ctl *ctl;
	struct json *j;
};

static const char *or_dash(const char *s)
{
	return s && *s ? s : "-";
}

static int print_policy_row(const struct sa_policy *p, void *arg)
{
	struct list_ctx *lc = arg;
	char users[64], locs[64];

	if (lc->j) {
		ctl_policy_json(lc->j, p);
		return 0;
	}
	snprintf(users, sizeof(users), "%s%s%s%s", p->include_users,
	         *p->include_users && *p->include_groups ? "," : "",
	         *p->include_groups ? "group:" : "", p->include_groups);
	snprintf(locs, sizeof(locs), "%s", p->include_locations);
	printf("%-20s %-12s %-16s %-24s %-16s %s\n", p->name, effective_state(p, lc->ctl->now),
	       p->mechs, users, locs, p->tls);
	return 0;
}

static int policy_list(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	struct sg_err err = {{0}};
	struct json j;
	struct list_ctx lc = {ctl, NULL};
	sqlite3 *db;
	int rc = ctl_start(ctl, cmd, argc, argv, NULL, &db);

	if (rc != CTL_OPT_CONTINUE)
		return rc;
	lc.j = json_list_begin(&j, stdout, ctl->json);
	if (lc.j == NULL)
		printf("%-20s %-12s %-16s %-24s %-16s %s\n", "NAME", "STATE", "MECHS", "USERS",
		       "LOCATIONS", "TLS");
	rc = store_admin_policy_foreach(db, print_policy_row, &lc, &err);
	json_list_end(lc.j);
	store_close(&db);
	return rc < 0 ? ctl_fail("%s", err.text) : CTL_OK;
}

static void print_policy(const struct ctl *ctl, const struct sa_policy *p)
{
	char t1[32], t2[32], t3[32];

	printf("name:              %s\n", p->name);
	printf("state:             %s", p->state);
	if (p->enforce_from)
		printf(" (enforce from %s; now %s)",
		       ctl_time((time_t)p->enforce_from, "-", t1, sizeof(t1)),
		       effective_state(p, ctl->now));
	printf("\nmechanisms:        %s\n", p->mechs);
	printf("include users:     %s\n", or_dash(p->include_users));
	printf("include groups:    %s\n", or_dash(p->include_groups));
	printf("exclude users:     %s\n", or_dash(p->exclude_users));
	printf("exclude groups:    %s\n", or_dash(p->exclude_groups));
	printf("include locations: %s\n", p->include_locations);
	printf("exclude locations: %s\n", or_dash(p->exclude_locations));
	printf("tls:               %s\n", p->tls);
	printf("services:          %s\n", p->services);
	printf("reply:             %s %s %s\n", p->reply_code, p->reply_enh, p->reply_text);
	printf("created:           %s\n", ctl_time((time_t)p->created_at, "-", t2, sizeof(t2)));
	printf("updated:           %s\n", ctl_time((time_t)p->updated_at, "-", t3, sizeof(t3)));
}

/* Where each policy option goes in struct policy_opts, by OPT_* - OPT_STATE. */
static const size_t policy_opt_slot[] = {
    offsetof(struct policy_opts, state),
    offsetof(struct policy_opts, enforce_from),
    offsetof(struct policy_opts, mech),
    offsetof(struct policy_opts, include_users),
    offsetof(struct policy_opts, include_groups),
    offsetof(struct policy_opts, exclude_users),
    offsetof(struct policy_opts, exclude_groups),
    offsetof(struct policy_opts, include_locations),
    offsetof(struct policy_opts, exclude_locations),
    offsetof(struct policy_opts, tls),
    offsetof(struct policy_opts, services),
    offsetof(struct policy_opts, reply),
};

struct policy_args {
	struct policy_opts *o;
	int allow_opts;
	const struct ctl_command *cmd;
	char **argv;
};

static int take_policy_opt(int c, const char *value, void *arg)
{
	struct policy_args *pa = arg;

	if (c < OPT_STATE || c > OPT_REPLY)
		return CTL_OPT_NOT_MINE;
	if (!pa->allow_opts)
		return ctl_usage_error(pa->cmd, "unknown option %s", pa->argv[optind - 1]);
	*(const char **)((char *)pa->o + policy_opt_slot[c - OPT_STATE]) = value;
	return CTL_OPT_CONTINUE;
}

/* Parses "VERB NAME [policy options]": options into o, the name into *name.
 * CTL_OPT_CONTINUE to go on, else the status to return (after --help too). */
static int parse_policy_args(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv,
                             struct policy_opts *o, int allow_opts, const char **name)
{
	struct policy_args pa = {o, allow_opts, cmd, argv};
	const struct ctl_opts opts = {":h", policy_longopts, take_policy_opt, &pa};
	int rc;

	memset(o, 0, sizeof(*o));
	if ((rc = ctl_parse(ctl, cmd, argc, argv, &opts, -1, -1)) != CTL_OPT_CONTINUE)
		return rc;
	if (argc - optind != 1)
		return ctl_usage_error(cmd, argc - optind < 1
		                                ? "a policy name is required"
		                                : "exactly one policy name is expected");
	*name = argv[optind];
	return CTL_OPT_CONTINUE;
}

static int policy_show(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	struct policy_opts o;
	struct sg_err err = {{0}};
	struct sa_policy p;
	const char *name;
	sqlite3 *db;
	int rc;

	if ((rc = parse_policy_args(ctl, cmd, argc, argv, &o, 0, &name)) != CTL_OPT_CONTINUE)
		return rc;
	if ((rc = ctl_open(ctl, &db)) != CTL_OK)
		return rc;
	rc = store_admin_policy_get(db, name, &p, &err);
	store_close(&db);
	if (rc < 0)
		return ctl_fail("%s", err.text);
	if (rc == 0)
		return ctl_invalid("policy", "unknown policy '%s'", name);
	if (ctl->json) {
		struct json j;

		json_init(&j, stdout, 1);
		ctl_policy_json(&j, &p);
		json_finish(&j);
	} else {
		print_policy(ctl, &p);
	}
	sa_policy_clear(&p);
	return CTL_OK;
}

static int policy_write(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv,
                        int is_new)
{
	struct policy_opts o;
	struct sg_err err = {{0}};
	struct sa_policy p;
	char *before = NULL, *after = NULL;
	const char *name;
	sqlite3 *db;
	int rc, found;

	if ((rc = parse_policy_args(ctl, cmd, argc, argv, &o, 1, &name)) != CTL_OPT_CONTINUE)
		return rc;
	if (ctl_check_name("policy name", name) != CTL_OK)
		return CTL_USAGE;
	if ((rc = ctl_open(ctl, &db)) != CTL_OK)
		return rc;
	if ((rc = ctl_begin(db)) != CTL_OK)
		goto out;
	memset(&p, 0, sizeof(p));
	found = store_admin_policy_get(db, name, &p, &err);
	if (found < 0) {
		rc = ctl_abort(db, ctl_fail("%s", err.text));
		goto out;
	}
	if (is_new && found) {
		sa_policy_clear(&p);
		rc = ctl_abort(db, ctl_invalid("policy",
		                               "policy '%s' already exists (use "
		                               "\"policy set\")",
		                               name));
		goto out;
	}
	if (!is_new && !found) {
		rc = ctl_abort(db, ctl_invalid("policy", "unknown policy '%s'", name));
		goto out;
	}
	if (is_new)
		sa_policy_defaults(&p, name);
	else if (store_admin_object_json(db, SA_POLICY, name, &before, &err) < 0)
		goto sqlfail;
	if ((rc = ctl_policy_apply(db, ctl, NULL, &p, &o, is_new)) != CTL_OK) {
		rc = ctl_abort(db, rc);
		goto done;
	}
	if ((is_new ? store_admin_policy_insert(db, &p, &err)
	            : store_admin_policy_update(db, &p, &err)) < 0 ||
	    store_admin_object_json(db, SA_POLICY, name, &after, &err) < 0)
		goto sqlfail;
	rc = ctl_finish(db, is_new ? "policy add" : "policy set", name, before, after);
	if (rc == CTL_OK && !ctl->json)
		printf("policy %s %s\n", name, is_new ? "added" : "updated");
	goto done;
sqlfail:
	rc = ctl_abort(db, ctl_fail("%s", err.text));
done:
	sa_policy_clear(&p);
out:
	free(before);
	free(after);
	store_close(&db);
	return rc;
}

static int policy_add(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	return policy_write(ctl, cmd, argc, argv, 1);
}

static int policy_set(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	return policy_write(ctl, cmd, argc, argv, 0);
}

static int policy_remove(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	struct policy_opts o;
	struct sg_err err = {{0}};
	char *before = NULL;
	const char *name;
	sqlite3 *db;
	int rc, n = 0;

	if ((rc = parse_policy_args(ctl, cmd, argc, argv, &o, 0, &name)) != CTL_OPT_CONTINUE)
		return rc;
	if ((rc = ctl_open(ctl, &db)) != CTL_OK)
		return rc;
	if ((rc = ctl_begin(db)) != CTL_OK)
		goto out;
	if (store_admin_object_json(db, SA_POLICY, name, &before, &err) < 0 ||
	    (before && store_admin_policy_delete(db, name, &n, &err) < 0)) {
		rc = ctl_abort(db, ctl_fail("%s", err.text));
		goto out;
	}
	if (before == NULL) {
		rc = ctl_abort(db, ctl_invalid("policy", "unknown policy '%s'", name));
		goto out;
	}
	rc = ctl_finish(db, "policy remove", name, before, NULL);
	if (rc == CTL_OK && !ctl->json && n == 0)
		printf("policy %s removed\n", name);
	else if (rc == CTL_OK && !ctl->json)
		printf("policy %s removed, with the %d exception%s scoped to it\n", name, n,
		       n == 1 ? "" : "s");
out:
	free(before);
	store_close(&db);
	return rc;
}

#define POLICY_OPTIONS                                                                             \
	"[--state off|report-only|enforce] [--enforce-from TIME|none]\n"                           \
	"      [--mech CLASS_OR_NAME,...] [--include-users all|U,...] [--include-groups G,...]\n"  \
	"      [--exclude-users U,...|none] [--exclude-groups G,...|none]\n"                       \
	"      [--include-locations any|L,...] [--exclude-locations L,...|none]\n"                 \
	"      [--tls any|plaintext|encrypted] [--services any|S,...] [--reply \"550 5.7.9 "       \
	"TEXT\"]"

const struct ctl_command ctl_policy_verbs[] = {
    {"list", "", "list the policies", policy_list, NULL, NULL},
    {"show", "NAME", "show one policy", policy_show, NULL, NULL},
    {"add", "NAME " POLICY_OPTIONS, "add a policy (default: enforce, class legacy, all users)",
     policy_add, NULL, NULL},
    {"set", "NAME " POLICY_OPTIONS, "change a policy", policy_set, NULL, NULL},
    {"remove", "NAME", "remove a policy and the exceptions scoped to it", policy_remove, NULL,
     NULL},
    {NULL, NULL, NULL, NULL, NULL, NULL},
};
