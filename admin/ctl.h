/*
 * ctl - the core of saslgatectl, the admin CLI (ctl.c): the command table's
 * types, option parsing, messages and the admin transaction. Commands are
 * data: main.c holds the table of nouns, each cmd_*.c file the table of its
 * verbs; a cmd_*.c file that shares more than its table has its own header.
 * A handler gets argv starting at its own name, parses its options with
 * ctl_parse(), and returns an exit status; nothing below main() exits.
 *
 * Exit status: CTL_OK 0 success; CTL_FAIL 1 runtime failure (and, for
 * explain, "would be blocked"); CTL_USAGE 2 bad usage or invalid input, with a
 * message naming the field and the reason. Invalid input never changes the
 * store: writes validate first and run in one transaction that is rolled back
 * on any error.
 */
#ifndef SASLGATE_CTL_H
#define SASLGATE_CTL_H

#include <getopt.h>
#include <stdio.h>
#include <time.h>

#include <sqlite3.h>

#include "store.h"
#include "store_admin.h"
#include "timeparse.h"
#include "util.h"

#ifndef SASLGATE_VERSION
#define SASLGATE_VERSION "0.1.0"
#endif

enum ctl_status { CTL_OK = 0, CTL_FAIL = 1, CTL_USAGE = 2 };

struct ctl {
	const char *dir; /* store directory, resolved with store_dir() */
	int json;        /* --json: machine-readable output */
	time_t now;      /* the time of this invocation */
	/* --store: how messages name the PostgreSQL store, else NULL */
	const char *store_label;
	/* --store: its connection string (the fleet's activity), else NULL */
	const char *store;
};

struct ctl_command;
typedef int (*ctl_handler)(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv);

/* One command: a verb with a handler, or a noun with a table of verbs. */
struct ctl_command {
	const char *name;
	const char *usage;   /* arguments after the command name */
	const char *summary; /* one line */
	ctl_handler handler;
	const struct ctl_command *verbs; /* NULL-name terminated, or NULL */
	const char *path;                /* "policy add": filled in by the dispatcher */
};

/* Noun tables, one per cmd_*.c file. */
extern const struct ctl_command ctl_policy_verbs[];
extern const struct ctl_command ctl_exception_verbs[];
extern const struct ctl_command ctl_group_verbs[];
extern const struct ctl_command ctl_location_verbs[];
extern const struct ctl_command ctl_mech_verbs[];
extern const struct ctl_command ctl_settings_verbs[];
extern const struct ctl_command ctl_report_verbs[];

/* Single-verb commands. */
int cmd_init(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv);
int cmd_explain(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv);
int cmd_export(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv);
int cmd_import(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv);
int cmd_audit(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv);
int cmd_check(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv);
/* Visibility commands (cmd_log.c, cmd_stats.c, cmd_status.c, cmd_prune.c). */
int cmd_log(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv);
int cmd_stats(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv);
int cmd_status(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv);
/* Whether status's arguments ask for --nagios (also as getopt_long's
 * abbreviation, "--nag"): its bad usage is then the plugin's UNKNOWN. */
int status_asks_nagios(int argc, char **argv);
int cmd_prune(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv);

/*
 * Option parsing. Every command parses its options with ctl_parse(), which
 * accepts -h/--help and --json for all of them and reports bad options.
 */
#define CTL_OPT_JSON 0x1000
#define CTL_OPT_COMMON                                                                             \
	{"help", no_argument, NULL, 'h'},                                                          \
	{                                                                                          \
		"json", no_argument, NULL, CTL_OPT_JSON                                            \
	}
#define CTL_OPT_CONTINUE (-1)

/* A command's own options. take(c, optarg, arg) gets each getopt_long result
 * c that is not -h, --help or --json, and returns CTL_OPT_CONTINUE (taken),
 * CTL_OPT_NOT_MINE (ctl_parse() then reports the bad option) or a status
 * to return (a bad value; message printed). */
#define CTL_OPT_NOT_MINE (-2)
/* take()'s result for a value parsed by a function that returns CTL_OK or a
 * status to return: CTL_OPT_CONTINUE for CTL_OK, else status. */
int ctl_opt_taken(int status);
struct ctl_opts {
	const char *shortopts;         /* getopt_long's, starting with ":h" */
	const struct option *longopts; /* ends with CTL_OPT_COMMON and a NULL entry */
	int (*take)(int c, const char *value, void *arg);
	void *arg;
};

/* Parses the options of argv (opts NULL: only the common ones) and checks that
 * min..max (max -1: unbounded; min -1: no check) positional arguments remain;
 * they start at argv[optind]. Returns CTL_OPT_CONTINUE to go on, else the
 * status to return (CTL_OK after --help). */
int ctl_parse(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv,
              const struct ctl_opts *opts, int min, int max);
/* ctl_parse() for commands with positional arguments only. */
int ctl_parse_plain(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv, int min,
                    int max);

/* Prints "usage: saslgatectl PATH USAGE" (and the verbs of a noun). */
void ctl_usage(FILE *out, const struct ctl_command *cmd);
/* Prints a usage error and the usage; returns CTL_USAGE. */
int ctl_usage_error(const struct ctl_command *cmd, const char *fmt, ...) SG_PRINTF(2, 3);
/* "saslgatectl: FIELD: reason" on stderr; returns CTL_USAGE. */
int ctl_invalid(const char *field, const char *fmt, ...) SG_PRINTF(2, 3);
/* "saslgatectl: reason" on stderr; returns CTL_FAIL. */
int ctl_fail(const char *fmt, ...) SG_PRINTF(1, 2);
#ifdef __clang_analyzer__
/* The static analyzer (make lint) sees one file at a time: tell it what these
 * return, or it follows paths that cannot happen. */
#define ctl_usage_error(...) (ctl_usage_error(__VA_ARGS__), CTL_USAGE)
#define ctl_invalid(...)     (ctl_invalid(__VA_ARGS__), CTL_USAGE)
#define ctl_fail(...)        (ctl_fail(__VA_ARGS__), CTL_FAIL)
#endif

/* Opens policy.db for administration (must exist). CTL_OK or CTL_FAIL. */
int ctl_open(struct ctl *ctl, sqlite3 **db);
/* The start of a command without positional arguments: ctl_parse(), then
 * ctl_open(). CTL_OPT_CONTINUE with *db open (the caller closes it), else the
 * status to return. */
int ctl_start(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv,
              const struct ctl_opts *opts, sqlite3 **db);
/* Starts the write transaction. CTL_OK or CTL_FAIL. */
int ctl_begin(sqlite3 *db);
/* Records the audit entry, checks that the store still compiles into a
 * snapshot, and commits; rolls back on any error. CTL_OK, CTL_USAGE (the change
 * would not compile) or CTL_FAIL. */
int ctl_finish(sqlite3 *db, const char *action, const char *object, const char *before,
               const char *after);
/* Rolls back and returns status. */
int ctl_abort(sqlite3 *db, int status);

#endif
