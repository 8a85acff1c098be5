/*
 * ctl - the helpers every saslgatectl command shares: usage and error
 * messages, option parsing, and the admin transaction (open, begin, audit +
 * compile check + commit, abort). Kept apart from main.c so that the fuzz
 * targets can link the commands without saslgatectl's main().
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "snapshot.h"
#include "store.h"

/* The analyzer-only macros of ctl.h would rewrite the definitions below. */
#undef ctl_usage_error
#undef ctl_invalid
#undef ctl_fail

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

/* getopt_long's state, reset for a new argv. */
static void opt_start(void)
{
	optind = 0; /* glibc: full re-initialisation for the next argv */
	opterr = 0;
}

/* The getopt result c that the command itself does not know: --json (returns
 * CTL_OPT_CONTINUE), -h/--help (prints the usage, returns CTL_OK) or a bad
 * option (prints why, returns CTL_USAGE). */
static int opt_common(struct ctl *ctl, const struct ctl_command *cmd, int c, char **argv)
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

int ctl_opt_taken(int status)
{
	return status == CTL_OK ? CTL_OPT_CONTINUE : status;
}

int ctl_parse(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv,
              const struct ctl_opts *opts, int min, int max)
{
	static const struct option common[] = {CTL_OPT_COMMON, {NULL, 0, NULL, 0}};
	const char *shortopts = opts ? opts->shortopts : ":h";
	const struct option *longopts = opts ? opts->longopts : common;
	int c, rc, n;

	opt_start();
	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		rc = CTL_OPT_NOT_MINE;
		if (opts && opts->take && c != 'h' && c != CTL_OPT_JSON && c != ':' && c != '?')
			rc = opts->take(c, optarg, opts->arg);
		if (rc == CTL_OPT_NOT_MINE)
			rc = opt_common(ctl, cmd, c, argv);
		if (rc != CTL_OPT_CONTINUE)
			return rc;
	}
	if (min < 0)
		return CTL_OPT_CONTINUE;
	n = argc - optind;
	if (n < min)
		return ctl_usage_error(cmd, "missing argument");
	if (max >= 0 && n > max)
		return ctl_usage_error(cmd, "unexpected argument '%s'", argv[optind + max]);
	return CTL_OPT_CONTINUE;
}

int ctl_parse_plain(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv, int min,
                    int max)
{
	return ctl_parse(ctl, cmd, argc, argv, NULL, min, max);
}

int ctl_open(struct ctl *ctl, sqlite3 **db)
{
	struct sg_err err = {{0}};

	if (store_open_admin(ctl->dir, 0, db, &err) == 0)
		return CTL_OK;
	/* SQLite's message ("unable to open database file") does not say why. */
	if (faccessat(AT_FDCWD, ctl->dir, W_OK | X_OK, AT_EACCESS) < 0 &&
	    (errno == EROFS || errno == EACCES || errno == EPERM))
		return ctl_fail("%s: the store directory %s is %s; saslgatectl needs to write "
		                "policy.db and SQLite's policy.db-wal and policy.db-shm there, "
		                "even to read",
		                err.text, ctl->dir,
		                errno == EROFS ? "on a read-only file system" : "not writable");
	return ctl_fail("%s", err.text);
}

int ctl_start(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv,
              const struct ctl_opts *opts, sqlite3 **db)
{
	int rc = ctl_parse(ctl, cmd, argc, argv, opts, 0, 0);

	if (rc != CTL_OPT_CONTINUE)
		return rc;
	if ((rc = ctl_open(ctl, db)) != CTL_OK)
		return rc;
	return CTL_OPT_CONTINUE;
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
