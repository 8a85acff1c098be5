/*
 * pgstore - saslgatectl's glue to the PostgreSQL store (see pgstore.h): the
 * temporary copy, the held standard output, init and check.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json.h"
#include "pgstore.h"
#include "snapshot.h"
#include "store.h"
#include "store_pg.h"

#define PULLED_DB "pulled.db" /* the copy as pulled, to compute what changed */

struct pg_run {
	struct ctl *ctl;
	PGconn *pg;
	char label[256];
	char tmp[PATH_MAX]; /* the temporary store directory */
	int64_t pulled;     /* the generation pulled */
	int saved[2];       /* standard output and error while held, else -1 */
};

static void release_output(struct pg_run *r, int show);

static int tmp_path(const struct pg_run *r, const char *file, char *buf, size_t len)
{
	return sg_snprintf(buf, len, "%s/%s", r->tmp, file);
}

static int make_tmp(struct pg_run *r)
{
	const char *base = getenv("TMPDIR");

	if (base == NULL || *base == '\0')
		base = "/tmp";
	if (sg_snprintf(r->tmp, sizeof(r->tmp), "%s/saslgatectl.XXXXXX", base) < 0 ||
	    mkdtemp(r->tmp) == NULL) {
		r->tmp[0] = '\0';
		return ctl_fail("cannot make a temporary directory in %s: %s", base,
		                strerror(errno));
	}
	return CTL_OK;
}

/* Everything in the temporary directory (policy.db, its WAL files, the
 * notice, the pulled copy, the link to activity.db), then the directory. */
static void remove_tmp(struct pg_run *r)
{
	char path[PATH_MAX + 256];
	struct dirent *e;
	DIR *d;

	if (r->tmp[0] == '\0' || (d = opendir(r->tmp)) == NULL)
		return;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
		    tmp_path(r, e->d_name, path, sizeof(path)) == 0)
			unlink(path);
	closedir(d);
	rmdir(r->tmp);
}

/* The command's standard output and error go to files until
 * release_output(): what it says about a change that is then refused must
 * not be shown. */
static const struct held_stream {
	int fd;
	const char *file;
} held_streams[2] = {{STDOUT_FILENO, "stdout"}, {STDERR_FILENO, "stderr"}};

static FILE *held_file(int i)
{
	return i == 0 ? stdout : stderr;
}

static int hold_output(struct pg_run *r)
{
	char path[PATH_MAX + 16];
	int fd;

	for (int i = 0; i < 2; i++) {
		fflush(held_file(i));
		if (tmp_path(r, held_streams[i].file, path, sizeof(path)) < 0 ||
		    (fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) {
			release_output(r, 1);
			return ctl_fail("%s: %s", path, strerror(errno));
		}
		r->saved[i] = dup(held_streams[i].fd);
		if (r->saved[i] < 0 || dup2(fd, held_streams[i].fd) < 0) {
			close(fd);
			release_output(r, 1);
			return ctl_fail("cannot hold the output: %s", strerror(errno));
		}
		close(fd);
	}
	return CTL_OK;
}

/* Restores standard output and error; show: copies what the command wrote
 * to them. */
static void release_output(struct pg_run *r, int show)
{
	char path[PATH_MAX + 16], buf[65536];
	size_t n;
	FILE *f;

	for (int i = 0; i < 2; i++) {
		if (r->saved[i] < 0)
			continue;
		fflush(held_file(i));
		dup2(r->saved[i], held_streams[i].fd);
		close(r->saved[i]);
		r->saved[i] = -1;
		if (!show || tmp_path(r, held_streams[i].file, path, sizeof(path)) < 0 ||
		    (f = fopen(path, "r")) == NULL)
			continue;
		while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
			fwrite(buf, 1, n, held_file(i));
		fclose(f);
		fflush(held_file(i));
	}
}

/* The host's activity.db, where the activity commands look for it. */
static void link_activity(struct pg_run *r, const char *dir)
{
	char real[PATH_MAX], target[PATH_MAX + 32], link[PATH_MAX + 32];

	if (realpath(dir, real) == NULL ||
	    sg_snprintf(target, sizeof(target), "%s/%s", real, STORE_ACTIVITY_DB) < 0 ||
	    access(target, F_OK) < 0 || tmp_path(r, STORE_ACTIVITY_DB, link, sizeof(link)) < 0)
		return;
	if (symlink(target, link) < 0)
		fprintf(stderr, "saslgatectl: warning: %s: %s\n", link, strerror(errno));
}

/* The temporary policy.db from PostgreSQL, and the untouched copy. */
static int pull(struct pg_run *r, enum store_pg_scope scope)
{
	struct sg_err err = {{0}};
	char pulled[PATH_MAX + 16], *sql;
	sqlite3 *db = NULL;
	int rc = CTL_OK;

	if (store_open_admin(r->tmp, 1, &db, &err) < 0)
		return ctl_fail("%s", err.text);
	if (store_pg_pull(r->pg, db, scope, -1, &r->pulled, &err) < 0) {
		rc = ctl_fail("cannot read the policy from %s: %s", r->label, err.text);
	} else if (tmp_path(r, PULLED_DB, pulled, sizeof(pulled)) == 0) {
		sql = sqlite3_mprintf("VACUUM INTO %Q", pulled);
		if (sql == NULL || store_exec(db, sql, &err) < 0)
			rc = ctl_fail("%s: %s", pulled, sql ? err.text : "out of memory");
		sqlite3_free(sql);
	}
	store_close(&db);
	return rc;
}

/* Pushes what the command changed. */
static int push(struct pg_run *r, int status)
{
	struct sg_err err = {{0}};
	char pulled[PATH_MAX + 16];
	enum store_pg_push_result res;
	sqlite3 *db = NULL;

	if (tmp_path(r, PULLED_DB, pulled, sizeof(pulled)) < 0 ||
	    store_open_admin(r->tmp, 0, &db, &err) < 0) {
		release_output(r, 0);
		return ctl_fail("%s", err.text);
	}
	res = store_pg_push(r->pg, db, pulled, r->pulled, &err);
	store_close(&db);
	release_output(r, res == STORE_PG_PUSH_NOTHING || res == STORE_PG_PUSH_DONE);
	if (res == STORE_PG_PUSH_CONFLICT)
		return ctl_fail("another saslgatectl changed the policy in %s meanwhile; nothing "
		                "was changed, run the command again",
		                r->label);
	if (res == STORE_PG_PUSH_ERROR)
		return ctl_fail("cannot write the change to %s: %s; nothing was changed", r->label,
		                err.text);
	return status;
}

/* The schema must be there and this program's (an older one is migrated). */
static int schema_ready(struct pg_run *r)
{
	struct sg_err err = {{0}};
	int v = store_pg_schema_version(r->pg, &err), newest = store_pg_newest_version();

	if (v < 0)
		return ctl_fail("%s: %s", r->label, err.text);
	if (v == 0)
		return ctl_fail("%s has no saslgate store; create it with \"saslgatectl --store "
		                "URI init\"",
		                r->label);
	if (v > newest)
		return ctl_fail("%s: schema version %d is newer than this program's (%d)", r->label,
		                v, newest);
	if (v < newest && store_pg_upgrade(r->pg, &err) < 0)
		return ctl_fail("%s: cannot migrate the schema: %s", r->label, err.text);
	return CTL_OK;
}

static int run_command(struct pg_run *r, int argc, char **argv, pgstore_dispatch dispatch)
{
	const char *dir = r->ctl->dir;
	int rc;

	if ((rc = schema_ready(r)) != CTL_OK || (rc = pull(r, STORE_PG_ADMIN)) != CTL_OK)
		return rc;
	link_activity(r, dir);
	if ((rc = hold_output(r)) != CTL_OK)
		return rc;
	r->ctl->dir = r->tmp;
	rc = dispatch(r->ctl, argc, argv);
	r->ctl->dir = dir;
	return push(r, rc);
}

static int run_init(struct pg_run *r, int argc, char **argv, pgstore_dispatch dispatch)
{
	struct sg_err err = {{0}};
	const char *dir = r->ctl->dir;
	int v = store_pg_schema_version(r->pg, &err), rc;
	sqlite3 *db = NULL;

	if (v < 0)
		return ctl_fail("init: %s: %s", r->label, err.text);
	if (v > 0)
		return ctl_fail("init: %s has a saslgate store already (schema version %d); "
		                "refusing to overwrite a store",
		                r->label, v);
	if ((rc = hold_output(r)) != CTL_OK)
		return rc;
	r->ctl->dir = r->tmp;
	rc = dispatch(r->ctl, argc, argv);
	r->ctl->dir = dir;
	if (rc != CTL_OK) {
		release_output(r, 1);
		return rc;
	}
	if (store_open_admin(r->tmp, 0, &db, &err) < 0 || store_pg_init(r->pg, db, &err) < 0) {
		store_close(&db);
		release_output(r, 0);
		return ctl_fail("init: %s: %s; nothing was changed", r->label, err.text);
	}
	store_close(&db);
	release_output(r, 1);
	return CTL_OK;
}

/* check: the results, as the SQLite check prints them. */
struct pg_check {
	int version, want, tables_ok, compiles;
	int64_t generation;
	size_t policies, exceptions, locations;
	struct sg_err tables_err, compile_err;
};

static void check_print(const struct pg_run *r, const struct pg_check *c, int ok)
{
	struct json j;

	if (!r->ctl->json) {
		printf("store:          %s\n", r->label);
		printf("schema version: %d (%s)\n", c->version,
		       c->version == c->want ? "ok" : "UNEXPECTED");
		printf("tables:         %s\n", c->tables_ok ? "ok" : c->tables_err.text);
		printf("policy:         %s\n", c->compiles ? "compiles" : c->compile_err.text);
		printf("generation:     %lld\n", (long long)c->generation);
		if (c->compiles)
			printf("contents:       %zu policies, %zu exceptions, %zu locations\n",
			       c->policies, c->exceptions, c->locations);
		return;
	}
	json_init(&j, stdout, 1);
	json_object_begin(&j);
	json_kv_bool(&j, "ok", ok);
	json_kv_string(&j, "store", r->label);
	json_kv_int(&j, "schema_version", c->version);
	json_kv_int(&j, "schema_version_expected", c->want);
	json_kv_bool(&j, "tables", c->tables_ok);
	json_kv_string(&j, "tables_error", c->tables_ok ? NULL : c->tables_err.text);
	json_kv_bool(&j, "compiles", c->compiles);
	json_kv_string(&j, "compile_error", c->compiles ? NULL : c->compile_err.text);
	json_kv_int(&j, "generation", c->generation);
	json_kv_int(&j, "policies", (int64_t)c->policies);
	json_kv_int(&j, "exceptions", (int64_t)c->exceptions);
	json_kv_int(&j, "locations", (int64_t)c->locations);
	json_object_end(&j);
	json_finish(&j);
}

/* Compiles the policy as a daemon would, from what a daemon can read. */
static void check_compile(struct pg_run *r, struct pg_check *c)
{
	sqlite3 *db = NULL;
	struct snapshot *snap;

	if (store_open_admin(r->tmp, 1, &db, &c->compile_err) < 0 ||
	    store_pg_pull(r->pg, db, STORE_PG_CACHE, -1, &c->generation, &c->compile_err) < 0) {
		store_close(&db);
		return;
	}
	snap = snapshot_load(db, &c->compile_err);
	store_close(&db);
	if (snap == NULL)
		return;
	c->compiles = 1;
	c->policies = snapshot_policy_count(snap);
	c->exceptions = snapshot_exception_count(snap);
	c->locations = snapshot_location_count(snap);
	snapshot_unref(&snap);
}

static int run_check(struct pg_run *r, int argc, char **argv)
{
	static const struct ctl_command cmd = {
	    "check", "", "check the schema version and the tables of the store", NULL, NULL, NULL};
	struct pg_check c;
	struct sg_err err = {{0}};
	int rc = ctl_parse_plain(r->ctl, &cmd, argc, argv, 0, 0), ok;

	if (rc != CTL_OPT_CONTINUE)
		return rc;
	memset(&c, 0, sizeof(c));
	c.want = store_pg_newest_version();
	c.generation = -1;
	if ((c.version = store_pg_schema_version(r->pg, &err)) < 0)
		return ctl_fail("check: %s: %s", r->label, err.text);
	c.tables_ok = store_pg_check_tables(r->pg, &c.tables_err) == 0;
	if (c.tables_ok)
		check_compile(r, &c);
	else
		sg_strlcpy(c.compile_err.text, "not checked", sizeof(c.compile_err.text));
	ok = c.version == c.want && c.tables_ok && c.compiles;
	check_print(r, &c, ok);
	return ok ? CTL_OK : CTL_FAIL;
}

/* status --nagios: a failure to read the store is the plugin's UNKNOWN, on
 * its one line with the reason (also on standard error). */
static int status_unknown(const struct pg_run *r, int argc, char **argv, int rc, const char *why)
{
	if (!status_asks_nagios(argc, argv) || rc == CTL_OK)
		return rc;
	printf("SASLGATE UNKNOWN - %s: %s\n", r->label, why ? why : "cannot read the policy store");
	return 3;
}

/* status reads and writes nothing: the policy a daemon can read (so that
 * the daemons' role will do, for a monitoring check) is pulled into the
 * temporary copy, and activity.db is the host's. */
static int run_status(struct pg_run *r, int argc, char **argv, pgstore_dispatch dispatch)
{
	struct sg_err err = {{0}};
	const char *dir = r->ctl->dir;
	int v = store_pg_schema_version(r->pg, &err), rc;

	if (v < 0)
		return status_unknown(r, argc, argv, ctl_fail("%s: %s", r->label, err.text),
		                      err.text);
	if (v != store_pg_newest_version())
		return status_unknown(r, argc, argv,
		                      ctl_fail("%s has policy schema version %d, this "
		                               "saslgatectl needs %d",
		                               r->label, v, store_pg_newest_version()),
		                      "wrong schema version");
	if ((rc = pull(r, STORE_PG_CACHE)) != CTL_OK)
		return status_unknown(r, argc, argv, rc, NULL);
	link_activity(r, dir);
	r->ctl->dir = r->tmp;
	rc = dispatch(r->ctl, argc, argv);
	r->ctl->dir = dir;
	return rc;
}

/* status while PostgreSQL cannot be reached from here: the daemons go on
 * with their cached copy, and so does status, on the host's
 * DIR/policy-cache.db (their heartbeats say which daemon serves it). */
static int run_status_cached(struct pg_run *r, int argc, char **argv, pgstore_dispatch dispatch,
                             const char *why)
{
	struct sg_err err = {{0}};
	const char *dir = r->ctl->dir;
	char copy[PATH_MAX + 16], *sql = NULL;
	sqlite3 *db = NULL;
	int exists, rc;
	size_t len;

	if (store_pg_cache_open(dir, &db, &exists, &err) < 0)
		return status_unknown(r, argc, argv,
		                      ctl_fail("%s: %s; and no cached copy here (%s)", r->label,
		                               why, exists ? err.text : STORE_PG_CACHE_DB),
		                      why);
	if ((rc = make_tmp(r)) == CTL_OK && tmp_path(r, STORE_POLICY_DB, copy, sizeof(copy)) == 0 &&
	    ((sql = sqlite3_mprintf("VACUUM INTO %Q", copy)) == NULL ||
	     store_exec(db, sql, &err) < 0))
		rc = ctl_fail("%s: %s", copy, sql ? err.text : "out of memory");
	sqlite3_free(sql);
	store_close(&db);
	if (rc != CTL_OK)
		return status_unknown(r, argc, argv, rc, NULL);
	fprintf(stderr, "saslgatectl: warning: %s: %s; showing this host's cached copy (%s/%s)\n",
	        r->label, why, dir, STORE_PG_CACHE_DB);
	len = strlen(r->label);
	sg_snprintf(r->label + len, sizeof(r->label) - len,
	            " (unreachable: this host's cached copy)");
	link_activity(r, dir);
	r->ctl->dir = r->tmp;
	rc = dispatch(r->ctl, argc, argv);
	r->ctl->dir = dir;
	return rc;
}

/* Help needs no database. */
static int wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			return 1;
	return 0;
}

int pgstore_run(struct ctl *ctl, const char *store, int argc, char **argv,
                pgstore_dispatch dispatch)
{
	struct pg_run r;
	struct sg_err err = {{0}};
	int rc, status;

	if (wants_help(argc, argv))
		return dispatch(ctl, argc, argv);
	if (store_pg_parse(store, &err) < 0)
		return ctl_invalid("--store", "%s", err.text);
	memset(&r, 0, sizeof(r));
	r.ctl = ctl;
	r.saved[0] = r.saved[1] = -1;
	store_pg_label(store, r.label, sizeof(r.label));
	ctl->store_label = r.label;
	status = strcmp(argv[0], "status") == 0;
	if ((r.pg = store_pg_connect(store, "saslgatectl", &err)) == NULL) {
		/* status goes on with this host's cached copy and heartbeats
		 * (ctl->store unset: not the fleet's); the rest cannot. */
		rc = status ? run_status_cached(&r, argc, argv, dispatch, err.text)
		            : ctl_fail("%s: %s", r.label, err.text);
		remove_tmp(&r);
		ctl->store_label = NULL;
		return rc;
	}
	ctl->store = store;
	if ((rc = make_tmp(&r)) == CTL_OK) {
		if (strcmp(argv[0], "init") == 0)
			rc = run_init(&r, argc, argv, dispatch);
		else if (strcmp(argv[0], "check") == 0)
			rc = run_check(&r, argc, argv);
		else if (status)
			rc = run_status(&r, argc, argv, dispatch);
		else
			rc = run_command(&r, argc, argv, dispatch);
		release_output(&r, 1);
	}
	remove_tmp(&r);
	PQfinish(r.pg);
	ctl->store_label = NULL;
	ctl->store = NULL;
	return rc;
}
