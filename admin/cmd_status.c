/*
 * status - the health of a saslgate installation: every daemon that has
 * written a heartbeat (program, pid, host, start, last beat, policy
 * generation loaded vs committed, counters, dropped activity records,
 * degradation) and the store (schema versions, integrity, file sizes).
 *
 * --nagios prints one line, "SASLGATE STATE - summary | perfdata", and exits
 * with the plugin status (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN):
 *   CRITICAL  a daemon's heartbeat is older than --stale and it has not
 *             stopped cleanly; a daemon is degraded; no daemon is running
 *             (every newest heartbeat says stopped, or there is none); the
 *             store fails its integrity check or has the wrong schema
 *   WARNING   a running daemon's policy generation is --lag-warning or more
 *             behind policy.db; a running daemon dropped --dropped-warning
 *             or more activity records since it started; a running daemon
 *             serves its cached copy of a PostgreSQL store (PostgreSQL is
 *             unreachable: degraded, but enforcing), with the copy's age
 *   UNKNOWN   the check itself cannot read the store (or bad usage)
 * --integrity all|policy|none: which files get SQLite's integrity check;
 * default all, but policy with --nagios (seconds on a large activity.db).
 * A cleanly stopped daemon (stopped = 1) and a heartbeat superseded by a
 * newer instance of the same program on the same host never alarm on their
 * own. The worst state wins (CRITICAL > UNKNOWN > WARNING > OK).
 *
 * With --store the daemons are the whole fleet's (the heartbeats every host
 * delivered to PostgreSQL; stale and superseded per program and host), and
 * the store is PostgreSQL's: the policy tables (their copy pulled for this
 * command) and the fleet's activity tables. Without it, on a host whose
 * daemons run on the PostgreSQL store, their policy-cache.db stands for the
 * policy.db that host does not have.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"
#include "activity_query.h"
#include "json.h"
#include "store.h"
#include "store_pg.h"
#include "validate.h"

#define STATUS_DEFAULT_STALE 60
#define PROBLEMS_MAX         16

enum { OPT_STALE = 0x100, OPT_LAG, OPT_DROPPED, OPT_NAGIOS, OPT_INTEGRITY };
enum integrity_scope { CHECK_NONE, CHECK_POLICY, CHECK_ALL, CHECK_DEFAULT };
enum nagios_state { N_OK = 0, N_WARNING = 1, N_CRITICAL = 2, N_UNKNOWN = 3 };

static const char *const state_names[] = {"OK", "WARNING", "CRITICAL", "UNKNOWN"};

struct db_info {
	const char *file;
	int present, opened;
	int schema, schema_expected;
	int checked, integrity_ok;
	char error[SG_ERR_MAX];
	int64_t size, wal_size;
};

struct problem {
	enum nagios_state severity;
	char text[300];
};

struct status {
	struct ctl *ctl;
	int64_t stale, lag_warning, dropped_warning;
	int nagios;
	enum integrity_scope integrity;
	struct db_info policy, activity;
	int fleet; /* --store: PostgreSQL's tables, the fleet's heartbeats */
	struct aq_policy_facts facts;
	struct activity_heartbeat *hb;
	size_t n_hb;
	size_t running;
	struct problem problems[PROBLEMS_MAX];
	size_t n_problems;
	enum nagios_state state;
};

static int rank(enum nagios_state s)
{
	static const int r[] = {0, 1, 3, 2}; /* OK < WARNING < UNKNOWN < CRITICAL */

	return r[s];
}

static void problem(struct status *s, enum nagios_state sev, const char *fmt, ...) SG_PRINTF(3, 4);
static void problem(struct status *s, enum nagios_state sev, const char *fmt, ...)
{
	va_list ap;

	if (rank(sev) > rank(s->state))
		s->state = sev;
	if (s->n_problems == PROBLEMS_MAX)
		return;
	s->problems[s->n_problems].severity = sev;
	va_start(ap, fmt);
	vsnprintf(s->problems[s->n_problems].text, sizeof(s->problems[0].text), fmt, ap);
	va_end(ap);
	s->n_problems++;
}

/* A running daemon's snapshot origin, as heartbeats name it. */
#define SNAPSHOT_FROM_CACHE "cache"

/* The age of a heartbeat's snapshot at now; -1 unknown. */
static int64_t snapshot_age(const struct status *s, const struct activity_heartbeat *h)
{
	if (h->snapshot_source[0] == '\0' || h->snapshot_at <= 0)
		return -1;
	return (int64_t)s->ctl->now > h->snapshot_at ? (int64_t)s->ctl->now - h->snapshot_at : 0;
}

static int serves_cache(const struct activity_heartbeat *h)
{
	return strcmp(h->snapshot_source, SNAPSHOT_FROM_CACHE) == 0;
}

static int64_t file_size(const char *dir, const char *file, const char *suffix)
{
	char path[4096];
	struct stat sb;

	if (sg_snprintf(path, sizeof(path), "%s/%s%s", dir, file, suffix) < 0 ||
	    stat(path, &sb) < 0)
		return -1;
	return (int64_t)sb.st_size;
}

/* An opened store: its schema version, and the result of its integrity
 * check (rc, err) when it was checked. */
static void inspected(struct db_info *d, int schema, int checked, int rc, const struct sg_err *err)
{
	d->opened = 1;
	d->schema = schema;
	if (checked) {
		d->checked = 1;
		d->integrity_ok = rc == 0;
		if (!d->integrity_ok)
			sg_strlcpy(d->error, err->text, sizeof(d->error));
	}
}

static void inspect_activity(struct status *s)
{
	struct sg_err err = {{0}};
	struct activity_store *as = NULL;
	int check = s->integrity == CHECK_ALL;
	int opened = s->fleet
	                 ? activity_store_open_pg(s->ctl->store, ACTIVITY_STORE_READ, &as, &err)
	                 : activity_store_open(s->ctl->dir, ACTIVITY_STORE_READ, &as, &err);

	if (opened < 0) {
		if (s->activity.present)
			sg_strlcpy(s->activity.error, err.text, sizeof(s->activity.error));
		return;
	}
	inspected(&s->activity, activity_store_schema_version(as), check,
	          check ? activity_store_check(as, &err) : 0, &err);
	activity_store_read_begin(as);
	if (activity_store_heartbeats(as, s->ctl->now, s->stale, &s->hb, &s->n_hb, &err) < 0) {
		ctl_fail("%s: heartbeats: %s", activity_store_name(as), err.text);
		problem(s, N_UNKNOWN, "cannot read heartbeats: %s", err.text);
	}
	activity_store_read_end(as);
	activity_store_close(&as);
}

static void inspect_store(struct status *s)
{
	struct sg_err err = {{0}};
	sqlite3 *db = NULL;

	s->policy.file = STORE_POLICY_DB;
	s->activity.file = STORE_ACTIVITY_DB;
	s->policy.schema_expected = store_policy_schema_version();
	s->activity.schema_expected = store_activity_schema_version();
	s->policy.size = file_size(s->ctl->dir, STORE_POLICY_DB, "");
	s->policy.wal_size = file_size(s->ctl->dir, STORE_POLICY_DB, "-wal");
	s->activity.size = file_size(s->ctl->dir, STORE_ACTIVITY_DB, "");
	s->activity.wal_size = file_size(s->ctl->dir, STORE_ACTIVITY_DB, "-wal");
	s->policy.present = s->policy.size >= 0;
	s->activity.present = s->activity.size >= 0;
	/* The daemons of a host on the PostgreSQL store keep its policy in
	 * their cache, and no policy.db: the cache stands for it. */
	int cached = !s->policy.present && file_size(s->ctl->dir, STORE_PG_CACHE_DB, "") >= 0;
	int opened;

	if (cached) {
		s->policy.file = STORE_PG_CACHE_DB;
		s->policy.size = file_size(s->ctl->dir, STORE_PG_CACHE_DB, "");
		s->policy.wal_size = -1;
		s->policy.present = 1;
	}
	if (s->fleet) {
		/* PostgreSQL's tables (the policy: the copy pulled for this command) */
		s->policy.file = "policy";
		s->activity.file = "activity";
		s->activity.schema_expected = store_pg_newest_version();
		s->policy.size = s->policy.wal_size = s->activity.size = s->activity.wal_size = -1;
		s->activity.present = 1;
	}

	aq_policy_facts(s->ctl, (int64_t)7 * 86400, &s->facts);
	if (cached) {
		int exists;

		opened = store_pg_cache_open(s->ctl->dir, &db, &exists, &err) == 0;
	} else {
		opened = store_open_readonly(s->ctl->dir, &db, &err) == 0;
	}
	if (opened) {
		int check = s->integrity != CHECK_NONE;

		inspected(&s->policy, store_schema_version(db), check,
		          check ? store_check(db, &err) : 0, &err);
		store_close(&db);
	} else {
		sg_strlcpy(s->policy.error, err.text, sizeof(s->policy.error));
	}
	inspect_activity(s);
}

static void judge_db(struct status *s, const struct db_info *d)
{
	if (!d->present) {
		if (d == &s->policy)
			problem(s, N_CRITICAL, "%s is missing", d->file);
		return;
	}
	if (!d->opened) {
		problem(s, N_UNKNOWN, "cannot read %s: %s", d->file, d->error);
		return;
	}
	if (d->schema != d->schema_expected)
		problem(s, N_CRITICAL, "%s has schema version %d, this saslgate needs %d", d->file,
		        d->schema, d->schema_expected);
	if (d->checked && !d->integrity_ok)
		problem(s, N_CRITICAL, "%s fails the integrity check: %s", d->file, d->error);
}

static void judge(struct status *s)
{
	judge_db(s, &s->policy);
	judge_db(s, &s->activity);
	for (size_t i = 0; i < s->n_hb; i++) {
		const struct activity_heartbeat *h = &s->hb[i];

		if (h->state == ACTIVITY_SUPERSEDED || h->state == ACTIVITY_STOPPED)
			continue;
		s->running++;
		if (h->state == ACTIVITY_STALE) {
			problem(s, N_CRITICAL, "%s pid %lld on %s: last heartbeat %llds ago",
			        h->program, (long long)h->pid, h->host, (long long)h->age);
			continue;
		}
		if (serves_cache(h))
			problem(s, N_WARNING,
			        "%s pid %lld on %s serves its cached policy, PostgreSQL "
			        "unreachable (policy read %llds ago)",
			        h->program, (long long)h->pid, h->host,
			        (long long)snapshot_age(s, h));
		else if (h->degraded)
			problem(s, N_CRITICAL, "%s pid %lld on %s degraded: %s", h->program,
			        (long long)h->pid, h->host, h->reason[0] ? h->reason : "no reason");
		if (s->facts.ok && s->facts.generation - h->generation >= s->lag_warning)
			problem(s, N_WARNING,
			        "%s pid %lld on %s runs policy generation %lld, "
			        "the store has %lld",
			        h->program, (long long)h->pid, h->host, (long long)h->generation,
			        (long long)s->facts.generation);
		if (h->dropped >= s->dropped_warning)
			problem(s, N_WARNING, "%s pid %lld on %s dropped %lld activity records",
			        h->program, (long long)h->pid, h->host, (long long)h->dropped);
	}
	if (s->running == 0)
		problem(s, N_CRITICAL, "%s",
		        s->n_hb == 0 ? "no daemon has written a heartbeat"
		                     : "no running daemon (all stopped)");
}

/* ------------------------------------------------------------ output */

static void print_nagios(const struct status *s)
{
	int64_t age = 0, lag = 0, dropped = 0, requests = 0, blocks = 0, errors = 0;
	int64_t cache_age = 0;
	size_t fresh = 0, cached = 0;

	for (size_t i = 0; i < s->n_hb; i++) {
		const struct activity_heartbeat *h = &s->hb[i];

		if (h->state != ACTIVITY_RUNNING && h->state != ACTIVITY_STALE)
			continue;
		fresh += h->state == ACTIVITY_RUNNING;
		age = h->age > age ? h->age : age;
		if (s->facts.ok && s->facts.generation - h->generation > lag)
			lag = s->facts.generation - h->generation;
		if (serves_cache(h)) {
			cached++;
			cache_age = snapshot_age(s, h) > cache_age ? snapshot_age(s, h) : cache_age;
		}
		dropped += h->dropped;
		requests += h->requests;
		blocks += h->blocks;
		errors += h->errors;
	}
	printf("SASLGATE %s - ", state_names[s->state]);
	if (s->n_problems == 0) {
		printf("%zu daemon%s running, policy generation %lld", fresh, fresh == 1 ? "" : "s",
		       (long long)s->facts.generation);
	} else {
		for (size_t i = 0; i < s->n_problems; i++)
			printf("%s%s", i ? "; " : "", s->problems[i].text);
	}
	printf(" | daemons=%zu;;1:;0 heartbeat_age=%llds;;%lld;0 "
	       "generation_lag=%lld;%lld;;0 "
	       "dropped=%lldc;%lld;;0 requests=%lldc;;;0 blocks=%lldc;;;0 "
	       "errors=%lldc;;;0 "
	       "exceptions_expiring_7d=%lld;;;0 "
	       "daemons_on_cache=%zu;0;;0 cache_age=%llds;;;0\n",
	       fresh, (long long)age, (long long)s->stale, (long long)lag,
	       (long long)s->lag_warning, (long long)dropped, (long long)s->dropped_warning,
	       (long long)requests, (long long)blocks, (long long)errors,
	       (long long)s->facts.exceptions_expiring, cached, (long long)cache_age);
}

static void db_json(struct json *j, const struct db_info *d)
{
	json_object_begin(j);
	json_kv_bool(j, "present", d->present);
	json_kv_bool(j, "readable", d->opened);
	if (d->opened)
		json_kv_int(j, "schema_version", d->schema);
	else
		json_kv_string(j, "schema_version", NULL);
	json_kv_int(j, "schema_version_expected", d->schema_expected);
	if (d->checked)
		json_kv_bool(j, "integrity", d->integrity_ok);
	else
		json_kv_string(j, "integrity", NULL);
	json_kv_string(j, "error", d->error[0] ? d->error : NULL);
	json_kv_int(j, "size", d->size > 0 ? d->size : 0);
	json_kv_int(j, "wal_size", d->wal_size > 0 ? d->wal_size : 0);
	json_object_end(j);
}

static void print_json(const struct status *s)
{
	struct json j;

	json_init(&j, stdout, 1);
	json_object_begin(&j);
	json_kv_string(&j, "state", state_names[s->state]);
	json_key(&j, "problems");
	json_array_begin(&j);
	for (size_t i = 0; i < s->n_problems; i++) {
		json_object_begin(&j);
		json_kv_string(&j, "severity", state_names[s->problems[i].severity]);
		json_kv_string(&j, "text", s->problems[i].text);
		json_object_end(&j);
	}
	json_array_end(&j);
	json_key(&j, "store");
	json_object_begin(&j);
	if (s->fleet)
		json_kv_string(&j, "store", s->ctl->store_label);
	else
		json_kv_string(&j, "dir", s->ctl->dir);
	/* the PostgreSQL store this status is of, if any (also its cached copy) */
	json_kv_string(&j, "postgresql", s->ctl->store_label);
	if (s->facts.ok) {
		json_kv_int(&j, "generation", s->facts.generation);
		json_kv_int(&j, "exceptions_active", s->facts.exceptions_active);
		json_kv_int(&j, "exceptions_expiring_7d", s->facts.exceptions_expiring);
		json_kv_int(&j, "activity_retention_days", s->facts.retention_days);
	} else {
		json_kv_string(&j, "generation", NULL);
	}
	json_key(&j, "policy_db");
	db_json(&j, &s->policy);
	json_key(&j, "activity_db");
	db_json(&j, &s->activity);
	json_object_end(&j);
	json_key(&j, "daemons");
	json_array_begin(&j);
	for (size_t i = 0; i < s->n_hb; i++) {
		const struct activity_heartbeat *h = &s->hb[i];

		json_object_begin(&j);
		json_kv_string(&j, "program", h->program);
		json_kv_string(&j, "host", h->host);
		json_kv_int(&j, "pid", h->pid);
		json_kv_string(&j, "state", activity_daemon_state_name(h->state));
		json_kv_time(&j, "started", (time_t)h->started_at);
		json_kv_time(&j, "last_heartbeat", (time_t)h->last_seen);
		json_kv_int(&j, "heartbeat_age", h->age);
		json_kv_int(&j, "generation", h->generation);
		if (s->facts.ok)
			json_kv_int(&j, "generation_lag", s->facts.generation - h->generation);
		else
			json_kv_string(&j, "generation_lag", NULL);
		json_kv_bool(&j, "stopped", h->stopped);
		json_kv_bool(&j, "degraded", h->degraded);
		json_kv_string(&j, "degraded_reason", h->reason[0] ? h->reason : NULL);
		json_kv_string(&j, "snapshot_source",
		               h->snapshot_source[0] ? h->snapshot_source : NULL);
		json_kv_time(&j, "snapshot_at", (time_t)h->snapshot_at);
		if (snapshot_age(s, h) >= 0)
			json_kv_int(&j, "snapshot_age", snapshot_age(s, h));
		else
			json_kv_string(&j, "snapshot_age", NULL);
		json_key(&j, "counters");
		json_object_begin(&j);
		json_kv_int(&j, "requests", h->requests);
		json_kv_int(&j, "blocks", h->blocks);
		json_kv_int(&j, "allows", h->allows);
		json_kv_int(&j, "would_blocks", h->would_blocks);
		json_kv_int(&j, "not_authenticated", h->not_authenticated);
		json_kv_int(&j, "errors", h->errors);
		json_kv_int(&j, "dropped", h->dropped);
		json_kv_int(&j, "rebuilds", h->rebuilds);
		json_kv_int(&j, "last_rebuild_us", h->last_rebuild_us);
		json_object_end(&j);
		json_object_end(&j);
	}
	json_array_end(&j);
	json_object_end(&j);
	json_finish(&j);
}

static void db_text(const struct db_info *d, int64_t generation)
{
	printf("  %-12s ", d->file);
	if (!d->present) {
		printf("absent\n");
		return;
	}
	if (!d->opened) {
		printf("unreadable: %s\n", d->error);
		return;
	}
	printf("schema %d (%s), integrity %s", d->schema,
	       d->schema == d->schema_expected ? "ok" : "UNEXPECTED",
	       !d->checked       ? "not checked"
	       : d->integrity_ok ? "ok"
	                         : d->error);
	if (d->size >= 0) /* a file (PostgreSQL's tables have none) */
		printf(", %lld bytes + %lld WAL", (long long)d->size,
		       (long long)(d->wal_size > 0 ? d->wal_size : 0));
	if (generation >= 0)
		printf(", generation %lld", (long long)generation);
	printf("\n");
}

static void print_text(const struct status *s)
{
	char t1[32], t2[32];

	printf("state: %s\n", state_names[s->state]);
	for (size_t i = 0; i < s->n_problems; i++)
		printf("  %-8s %s\n", state_names[s->problems[i].severity], s->problems[i].text);
	printf("\nstore %s:\n", s->fleet ? s->ctl->store_label : s->ctl->dir);
	db_text(&s->policy, s->facts.ok ? s->facts.generation : -1);
	db_text(&s->activity, -1);
	if (s->facts.ok)
		printf("  exceptions   %lld active, %lld expiring within 7 days; "
		       "activity retention %lld days\n",
		       (long long)s->facts.exceptions_active,
		       (long long)s->facts.exceptions_expiring, (long long)s->facts.retention_days);
	printf("\ndaemons:%s\n", s->n_hb ? "" : " none has written a heartbeat");
	for (size_t i = 0; i < s->n_hb; i++) {
		const struct activity_heartbeat *h = &s->hb[i];

		printf("  %s pid %lld on %s: %s\n", h->program, (long long)h->pid, h->host,
		       activity_daemon_state_name(h->state));
		printf("    started          %s\n",
		       ctl_time((time_t)h->started_at, "-", t1, sizeof(t1)));
		printf("    last heartbeat   %s (%llds ago)\n",
		       ctl_time((time_t)h->last_seen, "-", t2, sizeof(t2)), (long long)h->age);
		printf("    generation       %lld", (long long)h->generation);
		if (s->facts.ok)
			printf(" (store %lld)", (long long)s->facts.generation);
		printf("\n    requests         %lld: block %lld, allow %lld, would-block "
		       "%lld, "
		       "not-authenticated %lld, errors %lld\n",
		       (long long)h->requests, (long long)h->blocks, (long long)h->allows,
		       (long long)h->would_blocks, (long long)h->not_authenticated,
		       (long long)h->errors);
		printf("    dropped records  %lld\n", (long long)h->dropped);
		printf("    policy rebuilds  %lld (last %lld us)\n", (long long)h->rebuilds,
		       (long long)h->last_rebuild_us);
		if (h->snapshot_source[0] != '\0')
			printf("    policy snapshot  from %s, read %s (%llds ago)\n",
			       h->snapshot_source,
			       ctl_time((time_t)h->snapshot_at, "-", t1, sizeof(t1)),
			       (long long)snapshot_age(s, h));
		printf("    degraded         %s%s\n", h->degraded ? "YES: " : "no",
		       h->degraded ? h->reason : "");
	}
}

static int take_status_opt(int c, const char *value, void *arg)
{
	struct status *s = arg;

	switch (c) {
	case OPT_STALE:
		return ctl_opt_taken(aq_parse_count("--stale", value, 0, &s->stale));
	case OPT_LAG:
		return ctl_opt_taken(aq_parse_count("--lag-warning", value, 0, &s->lag_warning));
	case OPT_DROPPED:
		return ctl_opt_taken(
		    aq_parse_count("--dropped-warning", value, 0, &s->dropped_warning));
	case OPT_NAGIOS:
		s->nagios = 1;
		return CTL_OPT_CONTINUE;
	case OPT_INTEGRITY:
		if (strcmp(value, "all") == 0)
			s->integrity = CHECK_ALL;
		else if (strcmp(value, "policy") == 0)
			s->integrity = CHECK_POLICY;
		else if (strcmp(value, "none") == 0)
			s->integrity = CHECK_NONE;
		else
			return ctl_invalid("--integrity", "'%s' is not all, policy or none", value);
		return CTL_OPT_CONTINUE;
	default:
		return CTL_OPT_NOT_MINE;
	}
}

static int parse(struct status *s, const struct ctl_command *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"stale", required_argument, NULL, OPT_STALE},
	    {"lag-warning", required_argument, NULL, OPT_LAG},
	    {"dropped-warning", required_argument, NULL, OPT_DROPPED},
	    {"nagios", no_argument, NULL, OPT_NAGIOS},
	    {"integrity", required_argument, NULL, OPT_INTEGRITY},
	    CTL_OPT_COMMON,
	    {NULL, 0, NULL, 0},
	};
	const struct ctl_opts opts = {":h", longopts, take_status_opt, s};

	return ctl_parse(s->ctl, cmd, argc, argv, &opts, 0, 0);
}

int status_asks_nagios(int argc, char **argv)
{
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
		size_t n = strlen(argv[i]);

		/* no other option of status starts with "--n" */
		if (n >= 3 && strncmp(argv[i], "--nagios", n) == 0)
			return 1;
	}
	return 0;
}

int cmd_status(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	struct status *s = xcalloc(1, sizeof(*s));
	int rc, nagios = status_asks_nagios(argc, argv);

	s->ctl = ctl;
	s->fleet = ctl->store != NULL;
	s->stale = STATUS_DEFAULT_STALE;
	s->lag_warning = 1;
	s->dropped_warning = 1;
	s->integrity = CHECK_DEFAULT;
	rc = parse(s, cmd, argc, argv);
	if (rc != CTL_OPT_CONTINUE) {
		free(s);
		/* A plugin reports bad usage as UNKNOWN. */
		return nagios && rc != CTL_OK ? N_UNKNOWN : rc;
	}
	/* A full check of a large activity.db takes seconds: not every minute. */
	if (s->integrity == CHECK_DEFAULT)
		s->integrity = s->nagios ? CHECK_POLICY : CHECK_ALL;
	if (s->lag_warning == 0)
		s->lag_warning = INT64_MAX; /* 0: never warn */
	if (s->dropped_warning == 0)
		s->dropped_warning = INT64_MAX;
	inspect_store(s);
	judge(s);
	if (s->nagios)
		print_nagios(s);
	else if (ctl->json)
		print_json(s);
	else
		print_text(s);
	rc = s->nagios ? (int)s->state : CTL_OK;
	free(s->hb);
	free(s);
	return rc;
}
