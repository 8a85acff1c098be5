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

int cmd_audit(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"since", required_argument, NULL, 's'},
	    CTL_OPT_COMMON,
	    {NULL, 0, NULL, 0},
	};
	struct audit_ctx ac = {NULL};
	struct sg_err err = {{0}};
	struct json j;
	time_t since = 0;
	sqlite3 *db;
	int c, rc;

	ctl_opt_start();
	while ((c = getopt_long(argc, argv, ":hs:", longopts, NULL)) != -1) {
		if (c == 's') {
			if ((rc = ctl_parse_time(ctl, "--since", optarg, TIME_PAST, &since)) !=
			    CTL_OK)
				return rc;
			continue;
		}
		if ((rc = ctl_opt_common(ctl, cmd, c, argv)) != CTL_OPT_CONTINUE)
			return rc;
	}
	if (optind != argc)
		return ctl_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
	if ((rc = ctl_open(ctl, &db)) != CTL_OK)
		return rc;
	if (ctl->json) {
		json_init(&j, stdout, 1);
		json_array_begin(&j);
		ac.j = &j;
	} else {
		printf("%-6s %-20s %-12s %-20s %s\n", "ID", "AT", "ACTOR", "ACTION", "OBJECT");
	}
	rc = store_admin_audit_foreach(db, (int64_t)since, print_audit, &ac, &err);
	if (ctl->json) {
		json_array_end(&j);
		json_finish(&j);
	}
	store_close(&db);
	return rc < 0 ? ctl_fail("%s", err.text) : CTL_OK;
}
