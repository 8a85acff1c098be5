/*
 * prune - applies the retention of the decision log: deletes decisions
 * older than --older-than (default: the policy.db setting
 * activity_retention_days, 90 days), and heartbeats not refreshed within that
 * time (daemons long gone).
 *
 * Decisions are stored in batches (lib/decision_batch.h) and go a stored batch at
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
#include "validate.h"

#define PRUNE_DEFAULT_BATCH 5000

enum { OPT_OLDER = 0x100, OPT_BATCH, OPT_DRY_RUN };

struct prune {
	int64_t older_than, batch;
	int dry_run;
	const char *source; /* where older_than came from */
	time_t cutoff;
	int64_t decisions, heartbeats, batches;
};

static int run(struct activity_store *as, struct prune *p)
{
	struct sg_err err = {{0}};
	int64_t n = 0;
	int rc;

	if (p->dry_run) {
		if (activity_store_count_older(as, p->cutoff, &p->decisions, &p->heartbeats, &err) <
		    0)
			return aq_store_fail(as, &err);
		return CTL_OK;
	}
	while ((rc = activity_store_prune_decisions(as, p->cutoff, p->batch, &n, &err)) == 0 &&
	       n > 0) {
		p->decisions += n;
		p->batches++;
	}
	if (rc < 0 || activity_store_prune_heartbeats(as, p->cutoff, &p->heartbeats, &err) < 0)
		return aq_store_fail(as, &err);
	return CTL_OK;
}

static int take_opt(int c, const char *value, void *arg)
{
	struct prune *p = arg;
	struct sg_err err = {{0}};

	switch (c) {
	case OPT_OLDER:
		if (time_parse_duration(value, &p->older_than, &err) < 0)
			return ctl_invalid("--older-than", "'%s': %s", value, err.text);
		p->source = "--older-than";
		return CTL_OPT_CONTINUE;
	case OPT_BATCH:
		return ctl_opt_taken(aq_parse_count("--batch", value, 0, &p->batch));
	case 'n':
	case OPT_DRY_RUN:
		p->dry_run = 1;
		return CTL_OPT_CONTINUE;
	default:
		return CTL_OPT_NOT_MINE;
	}
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
	const struct ctl_opts opts = {":hn", longopts, take_opt, p};

	return ctl_parse(ctl, cmd, argc, argv, &opts, 0, 0);
}

int cmd_prune(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	struct prune p = {0};
	struct sg_err err = {{0}};
	char path[4096], t[32];
	struct activity_store *as;
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
	/* The fleet's store (--store) is PostgreSQL's, not a file of this host. */
	if (ctl->store == NULL && access(path, F_OK) < 0) {
		if (ctl->json)
			printf("{\"decisions\": 0, \"heartbeats\": 0, \"note\": \"no "
			       "activity.db\"}\n");
		else
			printf("nothing to prune: %s does not exist\n", path);
		return CTL_OK;
	}
	if ((rc = aq_open_activity(ctl, p.dry_run ? ACTIVITY_STORE_READ : ACTIVITY_STORE_WRITE,
	                           &as)) != CTL_OK)
		return rc;
	rc = run(as, &p);
	activity_store_close(&as);
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
