/*
 * prune - applies the retention of the decision log: deletes decisions
 * older than --older-than (default: the policy.db setting
 * activity_retention_days, 90 days), and heartbeats not refreshed within that
 * time (daemons long gone).
 *
 * Decisions are stored in batches (decision_log.h) and go a stored batch at
 * a time, once the newest decision of the batch is older than the cutoff (a
 * batch holds what a daemon queued between two writes, by default 200 ms
 * apart: activity_flush_ms).
 *
 * Safe from cron while the daemons write: about --batch decisions (default
 * 5000) go per transaction, oldest first, so the write lock is held for
 * milliseconds at a time and the daemons' writers (busy timeout 5 s) only
 * wait, never fail. The usage table is not touched: its first/last seen and
 * counts are the long-term record.
 *
 * activity.db is never created here: a root cron job creating it would leave
 * a file the daemons (running as their own user) cannot write.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "activity_query.h"
#include "json.h"
#include "store.h"

#define PRUNE_DEFAULT_BATCH 5000

enum { OPT_OLDER = 0x100, OPT_BATCH, OPT_DRY_RUN };

struct prune {
	int64_t older_than, batch;
	int dry_run;
	const char *source; /* where older_than came from */
	time_t cutoff;
	int64_t decisions, heartbeats, batches;
};

/*
 * One transaction: deletes the oldest stored batches whose every decision is
 * older than the cutoff, --batch decisions' worth (at least one batch); *n
 * receives the decisions deleted, 0 when none was left.
 */
static int prune_batch(sqlite3 *db, sqlite3_stmt *old, sqlite3_stmt *del, struct prune *p,
                       int64_t *n)
{
	struct sg_err err = {{0}};
	int64_t *ids = NULL;
	size_t n_ids = 0, cap = 0;
	int rc = CTL_OK, step = SQLITE_DONE;

	*n = 0;
	if (store_begin(db, &err) < 0)
		return ctl_fail("activity.db: %s", err.text);
	sqlite3_reset(old);
	sqlite3_bind_int64(old, 1, (int64_t)p->cutoff);
	while (*n < p->batch && (step = sqlite3_step(old)) == SQLITE_ROW) {
		if (n_ids == cap) {
			cap = cap ? cap * 2 : 256;
			ids = xrealloc(ids, cap * sizeof(*ids));
		}
		ids[n_ids++] = sqlite3_column_int64(old, 0);
		*n += sqlite3_column_int64(old, 1);
	}
	if (*n < p->batch && step != SQLITE_DONE)
		rc = ctl_fail("activity.db: %s", sqlite3_errmsg(db));
	sqlite3_reset(old);
	for (size_t i = 0; rc == CTL_OK && i < n_ids; i++) {
		sqlite3_reset(del);
		sqlite3_bind_int64(del, 1, ids[i]);
		if (sqlite3_step(del) != SQLITE_DONE)
			rc = ctl_fail("activity.db: %s", sqlite3_errmsg(db));
	}
	free(ids);
	if (rc != CTL_OK) {
		store_rollback(db);
		return rc;
	}
	if (store_commit(db, &err) < 0)
		return ctl_fail("activity.db: %s", err.text);
	return CTL_OK;
}

static int count_old(sqlite3 *db, struct prune *p)
{
	sqlite3_stmt *st;
	int rc;

	if ((rc = aq_prepare(db,
	                     "SELECT coalesce(sum(n), 0) FROM decision_batches WHERE last_at < ?1",
	                     &st)) != CTL_OK)
		return rc;
	sqlite3_bind_int64(st, 1, (int64_t)p->cutoff);
	if (sqlite3_step(st) == SQLITE_ROW)
		p->decisions = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if ((rc = aq_prepare(db, "SELECT count(*) FROM heartbeats WHERE last_seen < ?1", &st)) !=
	    CTL_OK)
		return rc;
	sqlite3_bind_int64(st, 1, (int64_t)p->cutoff);
	if (sqlite3_step(st) == SQLITE_ROW)
		p->heartbeats = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return CTL_OK;
}

static int run(sqlite3 *db, struct prune *p)
{
	/* decision_batches_last_at serves it; id order would not be time order
	 * if a clock stepped back. */
	static const char sql_old[] = "SELECT id, n FROM decision_batches WHERE last_at < ?1 "
	                              "ORDER BY last_at, id";
	static const char sql_del[] = "DELETE FROM decision_batches WHERE id = ?1";
	static const char sql_hb[] = "DELETE FROM heartbeats WHERE last_seen < ?1";
	struct sg_err err = {{0}};
	sqlite3_stmt *old, *del, *hb;
	int64_t n = 0;
	int rc;

	if (p->dry_run)
		return count_old(db, p);
	if ((rc = aq_prepare(db, sql_old, &old)) != CTL_OK)
		return rc;
	if ((rc = aq_prepare(db, sql_del, &del)) != CTL_OK) {
		sqlite3_finalize(old);
		return rc;
	}
	while ((rc = prune_batch(db, old, del, p, &n)) == CTL_OK && n > 0) {
		p->decisions += n;
		p->batches++;
	}
	sqlite3_finalize(old);
	sqlite3_finalize(del);
	if (rc != CTL_OK)
		return rc;
	if ((rc = aq_prepare(db, sql_hb, &hb)) != CTL_OK)
		return rc;
	sqlite3_bind_int64(hb, 1, (int64_t)p->cutoff);
	if (store_begin(db, &err) < 0 || sqlite3_step(hb) != SQLITE_DONE) {
		rc = ctl_fail("activity.db: %s", err.text[0] ? err.text : sqlite3_errmsg(db));
		store_rollback(db);
	} else {
		p->heartbeats = sqlite3_changes(db);
		if (store_commit(db, &err) < 0)
			rc = ctl_fail("activity.db: %s", err.text);
	}
	sqlite3_finalize(hb);
	return rc;
}

static int parse(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv,
                 struct prune *p)
{
	static const struct option longopts[] = {
	    {"older-than", required_argument, NULL, OPT_OLDER},
	    {"batch", required_argument, NULL, OPT_BATCH},
	    {"dry-run", no_argument, NULL, OPT_DRY_RUN},
	    CTL_OPT_COMMON,
	    {NULL, 0, NULL, 0},
	};
	struct sg_err err = {{0}};
	int c, rc = CTL_OK;

	ctl_opt_start();
	while ((c = getopt_long(argc, argv, ":hn", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_OLDER:
			if (time_parse_duration(optarg, &p->older_than, &err) < 0)
				return ctl_invalid("--older-than", "'%s': %s", optarg, err.text);
			p->source = "--older-than";
			break;
		case OPT_BATCH:
			rc = aq_parse_count("--batch", optarg, 0, &p->batch);
			break;
		case 'n':
		case OPT_DRY_RUN:
			p->dry_run = 1;
			break;
		default:
			if ((rc = ctl_opt_common(ctl, cmd, c, argv)) != CTL_OPT_CONTINUE)
				return rc;
			rc = CTL_OK;
		}
		if (rc != CTL_OK)
			return rc;
	}
	if (optind != argc)
		return ctl_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
	return CTL_OPT_CONTINUE;
}

int cmd_prune(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	struct prune p = {0};
	struct sg_err err = {{0}};
	char path[4096], t[32];
	sqlite3 *db;
	int rc;

	p.batch = PRUNE_DEFAULT_BATCH;
	if ((rc = parse(ctl, cmd, argc, argv, &p)) != CTL_OPT_CONTINUE)
		return rc;
	if (p.source == NULL) {
		struct aq_policy_facts f;

		aq_policy_facts(ctl, 0, &f);
		if (!f.ok)
			return ctl_fail("cannot read the retention from policy.db (%s); "
			                "give --older-than",
			                f.error);
		p.older_than = f.retention_days * 86400;
		p.source = "activity_retention_days";
	}
	p.cutoff = ctl->now - (time_t)p.older_than;
	if (store_path(ctl->dir, STORE_ACTIVITY_DB, path, sizeof(path), &err) < 0)
		return ctl_fail("%s", err.text);
	if (access(path, F_OK) < 0) {
		if (ctl->json)
			printf("{\"decisions\": 0, \"heartbeats\": 0, \"note\": \"no "
			       "activity.db\"}\n");
		else
			printf("nothing to prune: %s does not exist\n", path);
		return CTL_OK;
	}
	if (p.dry_run)
		rc = store_open_activity(ctl->dir, 1, &db, &err);
	else
		rc = store_open_activity(ctl->dir, 0, &db, &err);
	if (rc < 0)
		return ctl_fail("%s", err.text);
	rc = run(db, &p);
	store_close(&db);
	if (rc != CTL_OK)
		return rc;
	if (ctl->json) {
		struct json j;

		json_init(&j, stdout, 1);
		json_object_begin(&j);
		json_kv_bool(&j, "dry_run", p.dry_run);
		json_kv_time(&j, "cutoff", p.cutoff);
		json_kv_int(&j, "older_than_seconds", p.older_than);
		json_kv_string(&j, "retention_from", p.source);
		json_kv_int(&j, "decisions", p.decisions);
		json_kv_int(&j, "heartbeats", p.heartbeats);
		json_kv_int(&j, "batches", p.batches);
		json_object_end(&j);
		json_finish(&j);
	} else {
		printf("%s %lld decisions and %lld heartbeats older than %s (%s)\n",
		       p.dry_run ? "would prune" : "pruned", (long long)p.decisions,
		       (long long)p.heartbeats, ctl_time(p.cutoff, "-", t, sizeof(t)), p.source);
	}
	return CTL_OK;
}
