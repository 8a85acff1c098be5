/*
 * saslgatectl - the admin CLI of saslgate: global options, the command table,
 * dispatch, and the helpers every command shares (errors, option parsing,
 * transactions).
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "snapshot.h"
#include "store.h"

static const struct ctl_command nouns[] = {
    {"init", "[--report-only]", "create the store with the default policy", cmd_init, NULL, NULL},
    {"policy", "list|show|add|set|remove ...", "list and edit policies", NULL, ctl_policy_verbs,
     NULL},
    {"exception", "add|list|remove|extend ...", "list and edit exceptions", NULL,
     ctl_exception_verbs, NULL},
    {"group", "add|remove|add-member|remove-member|list ...", "named sets of user patterns", NULL,
     ctl_group_verbs, NULL},
    {"location", "add|remove|add-net|remove-net|list ...", "named sets of networks", NULL,
     ctl_location_verbs, NULL},
    {"mech", "list|set ...", "the mechanism catalogue", NULL, ctl_mech_verbs, NULL},
    {"settings", "list|set ...", "policy settings stored in policy.db", NULL, ctl_settings_verbs,
     NULL},
    {"explain", "--user USER --ip ADDR --mech MECH [--tls] [--service SERVICE] [--at TIME]",
     "show how a submission would be decided, policy by policy", cmd_explain, NULL, NULL},
    {"export", "", "write the whole policy as JSON to standard output", cmd_export, NULL, NULL},
    {"import", "FILE", "replace the whole policy with an exported JSON file", cmd_import, NULL,
     NULL},
    {"audit", "[--since TIME]", "the admin change history", cmd_audit, NULL, NULL},
    {"check", "", "check the schema version and integrity of the store", cmd_check, NULL, NULL},
    {"report", "legacy ...", "the legacy-authentication migration worklist", NULL, ctl_report_verbs,
     NULL},
    {"log",
     "[--since TIME] [--until TIME] [--user USER] "
     "[--outcome block|allow|would-block|not-authenticated]\n"
     "      [--policy POLICY] [--limit N] [--format text|json|csv]\n"
     "       saslgatectl log explain ID",
     "the decision log, newest first; explain ID replays one against the current policy", cmd_log,
     NULL, NULL},
    {"stats", "[--since TIME] [--until TIME] [--format text|json|csv|prometheus] [--stale SECONDS]",
     "decision counts by outcome, policy, mechanism and class; metrics", cmd_stats, NULL, NULL},
    {"status",
     "[--stale SECONDS] [--lag-warning N] [--dropped-warning N] "
     "[--integrity all|policy|none] [--nagios]",
     "daemon heartbeats and store health (--nagios: monitoring plugin)", cmd_status, NULL, NULL},
    {"prune", "[--older-than DURATION] [--batch N] [--dry-run]",
     "delete decision log rows older than the retention", cmd_prune, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL, NULL},
};

static void main_usage(FILE *out)
{
	fprintf(out,
	        "usage: saslgatectl [-d DIR] [--json] COMMAND [ARGS...]\n"
	        "       saslgatectl COMMAND -h\n\n"
	        "options:\n"
	        "  -d, --dir DIR   store directory (default $SASLGATE_DIR or %s)\n"
	        "      --json      machine-readable output\n"
	        "  -h, --help      this help\n"
	        "      --version   print the version\n\ncommands:\n",
	        STORE_DEFAULT_DIR);
	for (const struct ctl_command *c = nouns; c->name; c++)
		fprintf(out, "  %-10s %s\n", c->name, c->summary);
}

void ctl_usage(FILE *out, const struct ctl_command *cmd)
{
	const char *path = cmd->path ? cmd->path : cmd->name;

	if (cmd->verbs == NULL) {
		fprintf(out, "usage: saslgatectl %s%s%s\n", path, *cmd->usage ? " " : "",
		        cmd->usage);
		if (cmd->summary)
			fprintf(out, "  %s\n", cmd->summary);
		return;
	}
	fprintf(out, "usage:\n");
	for (const struct ctl_command *v = cmd->verbs; v->name; v++)
		fprintf(out, "  saslgatectl %s %s%s%s\n", path, v->name, *v->usage ? " " : "",
		        v->usage);
}

int ctl_usage_error(const struct ctl_command *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "saslgatectl: %s: ", cmd->path ? cmd->path : cmd->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	ctl_usage(stderr, cmd);
	return CTL_USAGE;
}

int ctl_invalid(const char *field, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "saslgatectl: %s: ", field);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return CTL_USAGE;
}

int ctl_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("saslgatectl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return CTL_FAIL;
}

void ctl_opt_start(void)
{
	optind = 0; /* glibc: full re-initialisation for the next argv */
	opterr = 0;
}

int ctl_opt_common(struct ctl *ctl, const struct ctl_command *cmd, int c, char **argv)
{
	switch (c) {
	case CTL_OPT_JSON:
		ctl->json = 1;
		return CTL_OPT_CONTINUE;
	case 'h':
		ctl_usage(stdout, cmd);
		return CTL_OK;
	case ':':
		return ctl_usage_error(cmd, "option %s needs a value", argv[optind - 1]);
	default:
		if (optopt != 0 && optopt < 0x100)
			return ctl_usage_error(cmd, "unknown option -%c", optopt);
		return ctl_usage_error(cmd, "unknown option %s", argv[optind - 1]);
	}
}

int ctl_parse_plain(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv, int min,
                    int max)
{
	static const struct option longopts[] = {CTL_OPT_COMMON, {NULL, 0, NULL, 0}};
	int c, rc, n;

	ctl_opt_start();
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1)
		if ((rc = ctl_opt_common(ctl, cmd, c, argv)) != CTL_OPT_CONTINUE)
			return rc;
	n = argc - optind;
	if (n < min)
		return ctl_usage_error(cmd, "missing argument");
	if (max >= 0 && n > max)
		return ctl_usage_error(cmd, "unexpected argument '%s'", argv[optind + max]);
	return CTL_OPT_CONTINUE;
}

int ctl_open(struct ctl *ctl, sqlite3 **db)
{
	struct sg_err err = {{0}};

	if (store_open_admin(ctl->dir, 0, db, &err) < 0)
		return ctl_fail("%s", err.text);
	return CTL_OK;
}

int ctl_begin(sqlite3 *db)
{
	struct sg_err err = {{0}};

	if (store_begin(db, &err) < 0)
		return ctl_fail("cannot start a transaction: %s", err.text);
	return CTL_OK;
}

int ctl_abort(sqlite3 *db, int status)
{
	store_rollback(db);
	return status;
}

int ctl_finish(sqlite3 *db, const char *action, const char *object, const char *before,
               const char *after)
{
	struct sg_err err = {{0}};
	struct snapshot *snap;

	if (store_audit(db, action, object, before, after, &err) < 0)
		return ctl_abort(db, ctl_fail("cannot record the audit entry: %s", err.text));
	/* The daemons must be able to compile what we commit. */
	snap = snapshot_load(db, &err);
	if (snap == NULL)
		return ctl_abort(db,
		                 ctl_invalid(object, "the change was not applied: %s", err.text));
	snapshot_unref(&snap);
	if (store_commit(db, &err) < 0)
		return ctl_abort(db, ctl_fail("cannot commit: %s", err.text));
	return CTL_OK;
}

/* Runs a noun: "policy add ...": argv[0] is the noun. */
static int run_noun(struct ctl *ctl, const struct ctl_command *noun, int argc, char **argv)
{
	char path[128];
	struct ctl_command verb;

	if (argc < 2) {
		ctl_usage(stderr, noun);
		return CTL_USAGE;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		ctl_usage(stdout, noun);
		return CTL_OK;
	}
	for (const struct ctl_command *v = noun->verbs; v->name; v++) {
		if (strcmp(v->name, argv[1]) != 0)
			continue;
		verb = *v;
		snprintf(path, sizeof(path), "%s %s", noun->name, v->name);
		verb.path = path;
		return verb.handler(ctl, &verb, argc - 1, argv + 1);
	}
	fprintf(stderr, "saslgatectl: %s: unknown command '%s'\n", noun->name, argv[1]);
	ctl_usage(stderr, noun);
	return CTL_USAGE;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"json", no_argument, NULL, CTL_OPT_JSON},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	struct ctl ctl = {0};
	const char *dir = NULL;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:d:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case CTL_OPT_JSON:
			ctl.json = 1;
			break;
		case 'h':
			main_usage(stdout);
			return CTL_OK;
		case 'V':
			printf("saslgatectl %s\n", SASLGATE_VERSION);
			return CTL_OK;
		case ':':
			fprintf(stderr, "saslgatectl: option %s needs a value\n", argv[optind - 1]);
			main_usage(stderr);
			return CTL_USAGE;
		default:
			fprintf(stderr, "saslgatectl: unknown option %s\n", argv[optind - 1]);
			main_usage(stderr);
			return CTL_USAGE;
		}
	}
	if (optind >= argc) {
		main_usage(stderr);
		return CTL_USAGE;
	}
	if (dir != NULL && *dir == '\0') {
		fprintf(stderr, "saslgatectl: -d: the store directory must not be empty\n");
		return CTL_USAGE;
	}
	ctl.dir = store_dir(dir);
	ctl.now = time(NULL);
	argc -= optind;
	argv += optind;
	for (const struct ctl_command *n = nouns; n->name; n++) {
		if (strcmp(n->name, argv[0]) != 0)
			continue;
		if (n->verbs)
			return run_noun(&ctl, n, argc, argv);
		return n->handler(&ctl, n, argc, argv);
	}
	fprintf(stderr, "saslgatectl: unknown command '%s'\n", argv[0]);
	main_usage(stderr);
	return CTL_USAGE;
}
