/*
 * audit - the admin change history recorded by every write.
 */
#include <stdio.h>

#include "ctl.h"
#include "json.h"
#include "validate.h"

struct audit_ctx {
	struct json *j;
};

static int print_audit(const struct sa_audit *a, void *arg)
{
	struct audit_ctx *ac = arg;
	char t[32];

	if (ac->j) {
		json_object_begin(ac->j);
		json_kv_int(ac->j, "id", a->id);
		json_kv_time(ac->j, "at", (time_t)a->at);
		json_kv_string(ac->j, "actor", a->actor);
		json_kv_string(ac->j, "action", a->action);
		json_kv_string(ac->j, "object", a->object);
		/* before/after were written by SQLite's json_object() or by us. */
		json_key(ac->j, "before");
		json_raw(ac->j, a->before);
		json_key(ac->j, "after");
		json_raw(ac->j, a->after);
		json_object_end(ac->j);
		return 0;
	}
	printf("%-6lld %-20s %-12s %-20s %s\n", (long long)a->id,
	       ctl_time((time_t)a->at, "-", t, sizeof(t)), a->actor, a->action, a->object);
	return 0;
}

struct audit_opts {
	const struct ctl *ctl;
	time_t since;
};

static int take_audit_opt(int c, const char *value, void *arg)
{
	struct audit_opts *o = arg;

	if (c != 's')
		return CTL_OPT_NOT_MINE;
	return ctl_opt_taken(ctl_parse_time(o->ctl, "--since", value, TIME_PAST, &o->since));
}

int cmd_audit(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"since", required_argument, NULL, 's'},
	    CTL_OPT_COMMON,
	    {NULL, 0, NULL, 0},
	};
	struct audit_opts o = {ctl, 0};
	const struct ctl_opts opts = {":hs:", longopts, take_audit_opt, &o};
	struct audit_ctx ac = {NULL};
	struct sg_err err = {{0}};
	struct json j;
	sqlite3 *db;
	int rc;

	if ((rc = ctl_start(ctl, cmd, argc, argv, &opts, &db)) != CTL_OPT_CONTINUE)
		return rc;
	ac.j = json_list_begin(&j, stdout, ctl->json);
	if (ac.j == NULL)
		printf("%-6s %-20s %-12s %-20s %s\n", "ID", "AT", "ACTOR", "ACTION", "OBJECT");
	rc = store_admin_audit_foreach(db, (int64_t)o.since, print_audit, &ac, &err);
	json_list_end(ac.j);
	store_close(&db);
	return rc < 0 ? ctl_fail("%s", err.text) : CTL_OK;
}
