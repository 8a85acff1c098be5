/*
 * ctl - shared declarations of saslgatectl, the admin CLI. Commands are data:
 * main.c holds the table of nouns, each cmd_*.c file the table of its verbs.
 * A handler gets argv starting at its own name, parses its options with
 * getopt_long, and returns an exit status; nothing below main() exits.
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
int cmd_prune(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv);

/*
 * Option parsing. Every command accepts -h/--help and --json. A handler calls
 * ctl_opt_start() before its getopt_long loop and passes unknown results to
 * ctl_opt_common(), which handles help/json and bad options.
 */
#define CTL_OPT_JSON 0x1000
#define CTL_OPT_COMMON                                                                             \
	{"help", no_argument, NULL, 'h'},                                                          \
	{                                                                                          \
		"json", no_argument, NULL, CTL_OPT_JSON                                            \
	}
void ctl_opt_start(void);
/* Handles the getopt result c that the command itself does not know: --json
 * (returns CTL_OPT_CONTINUE), -h/--help (prints the usage, returns CTL_OK) or a
 * bad option (prints why, returns CTL_USAGE). */
#define CTL_OPT_CONTINUE (-1)
int ctl_opt_common(struct ctl *ctl, const struct ctl_command *cmd, int c, char **argv);

/* For commands with positional arguments only: parses the common options and
 * checks that min..max (max -1: unbounded) arguments remain; they start at
 * argv[optind]. Returns CTL_OPT_CONTINUE to go on, else the status to return. */
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
/* Starts the write transaction. CTL_OK or CTL_FAIL. */
int ctl_begin(sqlite3 *db);
/* Records the audit entry, checks that the store still compiles into a
 * snapshot, and commits; rolls back on any error. CTL_OK, CTL_USAGE (the change
 * would not compile) or CTL_FAIL. */
int ctl_finish(sqlite3 *db, const char *action, const char *object, const char *before,
               const char *after);
/* Rolls back and returns status. */
int ctl_abort(sqlite3 *db, int status);

/*
 * Validation and normalisation of the values administrators type. Each returns
 * CTL_OK with a malloc'ed normalised text in *out, or CTL_USAGE after printing
 * a message naming field. Lists are comma-separated; "none" (or "") means the
 * empty list where empty is allowed.
 */
/* Names of policies, groups and locations: 1..64 of A-Z a-z 0-9 . _ -, starting
 * with a letter or digit; not "all", "any" or "none". */
int ctl_check_name(const char *field, const char *name);
/* Classes (lower-cased) and mechanism names (upper-cased); never empty. */
int ctl_norm_mechs(const char *field, const char *text, char **out);
/* User patterns (lower-cased); allow_all: "all" alone is accepted. */
int ctl_norm_patterns(const char *field, const char *text, int allow_all, char **out);
/* Names of existing groups or locations; any_word ("any") alone is accepted
 * if not NULL. */
int ctl_norm_names(sqlite3 *db, const char *field, const char *text, enum sa_kind kind,
                   const char *any_word, char **out);
/* "any" or service names. */
int ctl_norm_services(const char *field, const char *text, char **out);
/* "550 5.7.9 text": splits and validates with policy_reply_valid(). text may be
 * omitted (the default text is used). */
int ctl_parse_reply(const char *field, const char *reply, char **code, char **enh, char **text);
/* A time (ISO 8601, "now" or a duration from now in dir). */
int ctl_parse_time(const struct ctl *ctl, const char *field, const char *text,
                   enum time_direction dir, time_t *out);
/* An exception id: a positive integer. */
int ctl_parse_id(const char *field, const char *text, int64_t *id);

/*
 * Policies (cmd_policy.c), shared with import. The options as typed; NULL =
 * not given. ctl_policy_apply() validates them against the store and applies
 * them to p; ctx NULL names fields by option ("--state"), else by JSON key
 * ("policies[2] (name).state"). is_new: p is a new policy with defaults.
 */
struct policy_opts {
	const char *state, *enforce_from, *mech, *include_users, *include_groups;
	const char *exclude_users, *exclude_groups, *include_locations, *exclude_locations;
	const char *tls, *services, *reply;
};
int ctl_policy_apply(sqlite3 *db, const struct ctl *ctl, const char *ctx, struct sa_policy *p,
                     const struct policy_opts *o, int is_new);
/* Writes the policy as a JSON object (the export format). */
struct json;
void ctl_policy_json(struct json *j, const struct sa_policy *p);
/* Writes an exception as a JSON object (the export format); with now != 0 it
 * adds "expired" (ignored by import). */
void ctl_exception_json(struct json *j, const struct sa_exception *e, time_t now);

/* Describes who references a group or location (policies and exceptions) into
 * buf: 1 referenced, 0 free, -1 on a store error (printed). */
int ctl_references(sqlite3 *db, enum sa_kind kind, const char *name, char *buf, size_t len);

/* Export (cmd_export.c): writes the whole policy of db as the export document
 * to out, stamped with now; run it inside a transaction for a consistent
 * picture. 0, or -1 with err (the document is then incomplete). */
int ctl_export_doc(sqlite3 *db, time_t now, FILE *out, struct sg_err *err);

/* Import (cmd_export.c), shared with tests/fuzz/fuzz_import.c: validates the
 * export document doc (NUL-terminated JSON; file names it in messages) and
 * replaces the whole policy with it on db, inside the caller's write
 * transaction (ctl_begin); the caller then commits with ctl_finish() or rolls
 * back. counts receives what was imported. CTL_OK, CTL_USAGE (invalid input,
 * message printed naming the entry) or CTL_FAIL (store error). */
struct ctl_import_counts {
	int mechanisms, groups, locations, policies, exceptions;
};
int ctl_import_doc(const struct ctl *ctl, sqlite3 *db, const char *doc, const char *file,
                   struct ctl_import_counts *counts);

/* Groups and locations (namedset.c). ctl_set_write validates the name and the
 * members (patterns or CIDRs), checks existence (and, for SET_REMOVE, that
 * nothing references the set) and writes in one audited transaction. */
enum set_op { SET_ADD, SET_REMOVE, SET_ADD_MEMBER, SET_REMOVE_MEMBER };
int ctl_set_write(struct ctl *ctl, enum sa_kind kind, enum set_op op, const char *action,
                  const char *name, char **members, int n);
int ctl_set_list(struct ctl *ctl, enum sa_kind kind);

/* Validates a policy.db setting (cmd_settings.c) into its normal form; field
 * names it in messages (NULL: the key). */
int ctl_setting_normalise(const char *field, const char *key, const char *value, char *norm,
                          size_t len);

/* ISO 8601 UTC, or "-" / "never" for 0 (none_text). buf: at least 32 bytes. */
const char *ctl_time(time_t t, const char *none_text, char *buf, size_t len);

/* Room for the shown form of a user name or another value from the wire. */
#define CTL_SHOWN_MAX 1024

/* A value as text output shows it (shown.c): escaped (utf8_escape(): invalid
 * UTF-8, controls, blanks, invisible characters and the backslash), in buf
 * (len bytes; a cut form ends in "..."), or "-" for NULL or "". Returns buf
 * or the "-". */
const char *ctl_shown(const char *text, char *buf, size_t len);

/* Prints ctl_shown(text) to out, padded with blanks to width characters. */
void ctl_print_column(FILE *out, const char *text, int width);

/* Joins items with "," into a malloc'ed string. */
struct ctl_list {
	char *text;
	size_t len, cap;
};
void ctl_list_add(struct ctl_list *l, const char *item);
/* Returns the text ("" if empty), owned by the caller. */
char *ctl_list_take(struct ctl_list *l);

#endif
