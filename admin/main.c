/*
 * saslgatectl - the admin CLI of saslgate: global options, the command table
 * and dispatch. The helpers every command shares are in ctl.c.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "pgstore.h"
#include "store.h"
#include "store_pg.h"

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
    {"report", "legacy|html ...", "the legacy-authentication migration worklist and report", NULL,
     ctl_report_verbs, NULL},
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
	        "usage: saslgatectl [-d DIR] [--store URI] [--json] COMMAND [ARGS...]\n"
	        "       saslgatectl COMMAND -h\n\n"
	        "options:\n"
	        "  -d, --dir DIR   store directory (default $SASLGATE_DIR or %s)\n"
	        "      --store URI the policy in PostgreSQL (default $SASLGATE_STORE)\n"
	        "      --json      machine-readable output\n"
	        "  -h, --help      this help\n"
	        "      --version   print the version\n\ncommands:\n",
	        STORE_DEFAULT_DIR);
	for (const struct ctl_command *c = nouns; c->name; c++)
		fprintf(out, "  %-10s %s\n", c->name, c->summary);
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

/* Runs the command argv[0] with its arguments. */
static int dispatch(struct ctl *ctl, int argc, char **argv)
{
	for (const struct ctl_command *n = nouns; n->name; n++) {
		if (strcmp(n->name, argv[0]) != 0)
			continue;
		if (n->verbs)
			return run_noun(ctl, n, argc, argv);
		return n->handler(ctl, n, argc, argv);
	}
	fprintf(stderr, "saslgatectl: unknown command '%s'\n", argv[0]);
	main_usage(stderr);
	return CTL_USAGE;
}

#define CTL_OPT_STORE 0x1001

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"store", required_argument, NULL, CTL_OPT_STORE},
	    {"json", no_argument, NULL, CTL_OPT_JSON},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	struct ctl ctl = {0};
	const char *dir = NULL, *store = NULL;
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
		case CTL_OPT_STORE:
			store = optarg;
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
	if ((store = store_pg_location(store)) != NULL)
		return pgstore_run(&ctl, store, argc, argv, dispatch);
	return dispatch(&ctl, argc, argv);
}
