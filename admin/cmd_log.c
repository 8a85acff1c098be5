/*
 * log - the decision log of activity.db, newest first, and "log explain ID",
 * which replays one logged decision against the current policy (the same
 * engine_decide the daemons call) and shows what happened then next to what
 * would happen now.
 *
 * The daemons store decisions a batch per row (lib/decision_batch.h); batches are
 * read newest first through their time index and filtered here, and the
 * scan stops once no older batch can make the cut of --limit.
 *
 * On the fleet's store (--store) the log is every host's: each decision
 * shows its host (a HOST column, "host" in JSON and CSV), ids are per host,
 * and "log explain HOST:ID" names one (a bare ID, when one host has it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "activity_query.h"
#include "cidr.h"
#include "engine.h"
#include "json.h"
#include "request.h"
#include "shown.h"
#include "snapshot.h"
#include "validate.h"

#define LOG_DEFAULT_LIMIT 100

enum { OPT_SINCE = 0x100, OPT_UNTIL, OPT_USER, OPT_OUTCOME, OPT_POLICY, OPT_LIMIT, OPT_FORMAT };

static const char *dash(const char *s)
{
	return s && *s ? s : "-";
}

static void row_json(struct json *j, const struct decision_record *r)
{
	char item[128];
	const char *cur = r->report_only ? r->report_only : "";

	json_kv_int(j, "id", r->id);
	if (r->host != NULL)
		json_kv_string(j, "host", r->host);
	json_kv_time(j, "at", (time_t)r->at);
	json_kv_string(j, "daemon", r->daemon);
	json_kv_string(j, "queue_id", r->queue_id);
	json_kv_string(j, "instance", r->instance);
	json_kv_string(j, "user", r->user);
	json_kv_string(j, "client", r->client);
	json_kv_string(j, "mech", r->mech);
	json_kv_string(j, "mech_class", r->mech_class);
	json_kv_bool(j, "tls", r->tls);
	json_kv_string(j, "service", r->service);
	json_kv_string(j, "sender", r->sender);
	json_kv_string(j, "outcome", r->outcome);
	json_kv_string(j, "policy", r->policy);
	json_key(j, "report_only");
	json_array_begin(j);
	while (list_next(&cur, item, sizeof(item)) > 0)
		json_string(j, item);
	json_array_end(j);
	json_kv_int(j, "generation", r->generation);
}

static void row_csv(const struct decision_record *r)
{
	aq_csv_int(stdout, 1, r->id);
	if (r->host != NULL)
		aq_csv_field(stdout, 0, r->host);
	aq_csv_time(stdout, 0, (time_t)r->at);
	aq_csv_field(stdout, 0, r->daemon);
	aq_csv_field(stdout, 0, r->queue_id);
	aq_csv_field(stdout, 0, r->instance);
	aq_csv_field(stdout, 0, r->user);
	aq_csv_field(stdout, 0, r->client);
	aq_csv_field(stdout, 0, r->mech);
	aq_csv_field(stdout, 0, r->mech_class);
	aq_csv_int(stdout, 0, r->tls);
	aq_csv_field(stdout, 0, r->service);
	aq_csv_field(stdout, 0, r->sender);
	aq_csv_field(stdout, 0, r->outcome);
	aq_csv_field(stdout, 0, r->policy);
	aq_csv_field(stdout, 0, r->report_only);
	aq_csv_int(stdout, 0, r->generation);
	aq_csv_end(stdout);
}

static void row_text(const struct decision_record *r)
{
	char t[32], pol[200];

	if (r->report_only && *r->report_only)
		snprintf(pol, sizeof(pol), "%s [report-only: %s]", dash(r->policy), r->report_only);
	else
		snprintf(pol, sizeof(pol), "%s", dash(r->policy));
	printf("%-8lld %-20s ", (long long)r->id, ctl_time((time_t)r->at, "-", t, sizeof(t)));
	if (r->host != NULL) {
		ctl_print_column(stdout, r->host, 16);
		fputc(' ', stdout);
	}
	printf("%-7s ", dash(r->daemon));
	ctl_print_column(stdout, r->user, 28);
	fputc(' ', stdout);
	ctl_print_column(stdout, r->client, 39);
	fputc(' ', stdout);
	ctl_print_column(stdout, r->mech, 11);
	printf(" %-3s %-17s %s\n", r->tls ? "yes" : "no", dash(r->outcome), pol);
}

struct log_query {
	time_t since, until;
	const char *user, *outcome, *policy;
	int64_t limit;
	int format_given;
	enum aq_format format;
};

struct log_take {
	const struct ctl *ctl;
	struct log_query *q;
};

static int take_log_opt(int c, const char *value, void *arg)
{
	const struct log_take *t = arg;
	struct log_query *q = t->q;

	switch (c) {
	case OPT_SINCE:
		return ctl_opt_taken(
		    ctl_parse_time(t->ctl, "--since", value, TIME_PAST, &q->since));
	case OPT_UNTIL:
		return ctl_opt_taken(
		    ctl_parse_time(t->ctl, "--until", value, TIME_PAST, &q->until));
	case OPT_USER:
		if (*value == '\0')
			return ctl_invalid("--user", "must not be empty");
		q->user = value;
		return CTL_OPT_CONTINUE;
	case OPT_OUTCOME:
		if (!aq_outcome_valid(value))
			return ctl_invalid("--outcome", "'%s' is not one of " AQ_OUTCOMES, value);
		q->outcome = value;
		return CTL_OPT_CONTINUE;
	case OPT_POLICY:
		q->policy = value;
		return ctl_opt_taken(ctl_check_name("--policy", value));
	case OPT_LIMIT:
		return ctl_opt_taken(aq_parse_count("--limit", value, 1, &q->limit));
	case OPT_FORMAT:
		q->format_given = 1;
		return ctl_opt_taken(aq_parse_format(value, AQ_ALLOW_CSV, &q->format));
	default:
		return CTL_OPT_NOT_MINE;
	}
}

static int log_parse(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv,
                     struct log_query *q)
{
	static const struct option longopts[] = {
	    {"since", required_argument, NULL, OPT_SINCE},
	    {"until", required_argument, NULL, OPT_UNTIL},
	    {"user", required_argument, NULL, OPT_USER},
	    {"outcome", required_argument, NULL, OPT_OUTCOME},
	    {"policy", required_argument, NULL, OPT_POLICY},
	    {"limit", required_argument, NULL, OPT_LIMIT},
	    {"format", required_argument, NULL, OPT_FORMAT},
	    CTL_OPT_COMMON,
	    {NULL, 0, NULL, 0},
	};
	struct log_take t = {ctl, q};
	const struct ctl_opts opts = {":h", longopts, take_log_opt, &t};
	int rc;

	q->since = 0;
	q->until = ctl->now;
	q->limit = LOG_DEFAULT_LIMIT;
	if ((rc = ctl_parse(ctl, cmd, argc, argv, &opts, 0, 0)) != CTL_OPT_CONTINUE)
		return rc;
	if (q->until < q->since)
		return ctl_invalid("--until", "is before --since");
	return CTL_OPT_CONTINUE;
}

/* Whether a logged decision passes the filters. */
static int log_match(const struct log_query *q, const struct decision_record *d)
{
	if (d->at < (int64_t)q->since || d->at > (int64_t)q->until)
		return 0;
	if (q->user && (d->user == NULL || strcmp(d->user, q->user) != 0))
		return 0;
	if (q->outcome && (d->outcome == NULL || strcmp(d->outcome, q->outcome) != 0))
		return 0;
	if (q->policy && (d->policy == NULL || strcmp(d->policy, q->policy) != 0)) {
		const char *cur = d->report_only ? d->report_only : "";
		char item[128];

		while (list_next(&cur, item, sizeof(item)) > 0)
			if (strcmp(item, q->policy) == 0)
				return 1;
		return 0;
	}
	return 1;
}

/* Newest first: by time, then by id (then host: the fleet's ids are per
 * host). */
static int cmp_newest(const void *a, const void *b)
{
	const struct decision_record *x = a, *y = b;

	if (x->at != y->at)
		return x->at < y->at ? 1 : -1;
	if (x->id != y->id)
		return x->id < y->id ? 1 : -1;
	return x->host != NULL && y->host != NULL ? -strcmp(x->host, y->host) : 0;
}

/* The matching decisions of the batches read so far, and the buffers their
 * texts point into. */
struct log_found {
	const struct log_query *q;
	struct decision_record *d;
	size_t n, cap;
	char **bufs;
	size_t n_bufs, cap_bufs;
	size_t sorted; /* d[0..sorted) is in order, and the rest not yet */
};

/* Sorts what was found and keeps the newest --limit of it. */
static void found_trim(struct log_found *f)
{
	if (f->sorted == f->n)
		return;
	qsort(f->d, f->n, sizeof(*f->d), cmp_newest);
	if (f->q->limit > 0 && f->n > (size_t)f->q->limit)
		f->n = (size_t)f->q->limit;
	f->sorted = f->n;
}

static int log_batch(struct decision_batch *b, void *arg)
{
	struct log_found *f = arg;
	size_t before = f->n;

	/* Batches come by their newest decision, newest first: once --limit
	 * decisions are found, a batch older than the last of them adds none. */
	if (f->q->limit > 0 && f->n >= (size_t)f->q->limit) {
		found_trim(f);
		if (b->last_at < f->d[f->n - 1].at)
			return 1;
	}
	for (size_t i = 0; i < b->n; i++) {
		if (!log_match(f->q, &b->d[i]))
			continue;
		if (f->n == f->cap) {
			f->cap = f->cap ? f->cap * 2 : 256;
			f->d = xrealloc(f->d, f->cap * sizeof(*f->d));
		}
		f->d[f->n++] = b->d[i];
	}
	if (f->n > before) { /* keep the texts the new entries point into */
		if (f->n_bufs == f->cap_bufs) {
			f->cap_bufs = f->cap_bufs ? f->cap_bufs * 2 : 64;
			f->bufs = xrealloc(f->bufs, f->cap_bufs * sizeof(*f->bufs));
		}
		f->bufs[f->n_bufs++] = b->buf;
		b->buf = NULL; /* the scan allocates another */
	}
	return 0;
}

static void found_free(struct log_found *f)
{
	for (size_t i = 0; i < f->n_bufs; i++)
		free(f->bufs[i]);
	free(f->bufs);
	free(f->d);
}

static int log_list(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	struct log_query q = {0};
	struct log_found found = {0};
	enum aq_format fmt;
	struct activity_store *as;
	struct json j;
	int rc, fleet;

	if ((rc = log_parse(ctl, cmd, argc, argv, &q)) != CTL_OPT_CONTINUE)
		return rc;
	fmt = aq_format_of(ctl, q.format_given, q.format);
	if ((rc = aq_open_activity(ctl, ACTIVITY_STORE_READ, &as)) != CTL_OK)
		return rc;
	found.q = &q;
	fleet = activity_store_fleet(as);
	rc = aq_scan(as, q.since, q.until, 1, q.user, log_batch, &found);
	activity_store_close(&as);
	if (rc != CTL_OK) {
		found_free(&found);
		return rc;
	}
	found_trim(&found);
	if (fmt == AQ_JSON) {
		json_init(&j, stdout, 1);
		json_array_begin(&j);
	} else if (fmt == AQ_CSV) {
		fputs(fleet ? "id,host,at," : "id,at,", stdout);
		fputs("daemon,queue_id,instance,user,client,mech,mech_class,tls,"
		      "service,"
		      "sender,outcome,policy,report_only,generation",
		      stdout);
		aq_csv_end(stdout);
	} else {
		printf("%-8s %-20s ", "ID", "AT");
		if (fleet)
			printf("%-16s ", "HOST");
		printf("%-7s %-28s %-39s %-11s %-3s %-17s %s\n", "DAEMON", "USER", "CLIENT", "MECH",
		       "TLS", "OUTCOME", "POLICY");
	}
	for (size_t i = 0; i < found.n; i++) {
		const struct decision_record *r = &found.d[i];

		if (fmt == AQ_JSON) {
			json_object_begin(&j);
			row_json(&j, r);
			json_object_end(&j);
		} else if (fmt == AQ_CSV) {
			row_csv(r);
		} else {
			row_text(r);
		}
	}
	if (fmt == AQ_JSON) {
		json_array_end(&j);
		json_finish(&j);
	}
	found_free(&found);
	return CTL_OK;
}

/* ------------------------------------------------------------ log explain */

struct replay {
	struct decision_record then;
	struct request req;
	struct decision now;
	int64_t generation_now;
	time_t at;
};

static void now_json(struct json *j, const struct replay *x)
{
	const struct decision *d = &x->now;

	json_object_begin(j);
	json_kv_time(j, "at", x->at);
	json_kv_int(j, "generation", x->generation_now);
	json_kv_string(j, "outcome", decision_label(d));
	json_kv_string(j, "mech_class",
	               d->outcome == OUTCOME_NOT_AUTHENTICATED ? NULL
	                                                       : mech_class_name(d->mech_class));
	json_kv_string(j, "policy", d->policy);
	json_key(j, "report_only");
	json_array_begin(j);
	for (size_t i = 0; i < d->n_trace; i++)
		if (d->trace[i].status == TRACE_APPLIED && !d->trace[i].enforcing)
			json_string(j, d->trace[i].policy);
	json_array_end(j);
	json_key(j, "reply");
	if (d->outcome == OUTCOME_BLOCK) {
		json_object_begin(j);
		json_kv_string(j, "code", d->reply_code);
		json_kv_string(j, "enhanced", d->reply_enh);
		json_kv_string(j, "text", d->reply_text);
		json_object_end(j);
	} else {
		json_null(j);
	}
	json_key(j, "policies");
	json_array_begin(j);
	for (size_t i = 0; i < d->n_trace; i++) {
		const struct trace_entry *t = &d->trace[i];

		json_object_begin(j);
		json_kv_string(j, "name", t->policy);
		json_kv_string(j, "status", trace_status_name(t->status));
		json_kv_bool(j, "enforcing", t->enforcing);
		json_kv_string(j, "failed_condition",
		               t->status == TRACE_NOT_APPLIED ? trace_condition_name(t->failed)
		                                              : NULL);
		json_kv_string(j, "detail", t->detail);
		if (t->status == TRACE_EXCEPTED)
			json_kv_int(j, "exception", t->exception_id);
		else
			json_kv_string(j, "exception", NULL);
		json_object_end(j);
	}
	json_array_end(j);
	json_object_end(j);
}

static void replay_json(const struct replay *x)
{
	struct json j;

	json_init(&j, stdout, 1);
	json_object_begin(&j);
	json_kv_int(&j, "id", x->then.id);
	json_key(&j, "then");
	json_object_begin(&j);
	row_json(&j, &x->then);
	json_object_end(&j);
	json_key(&j, "now");
	now_json(&j, x);
	json_kv_bool(&j, "changed",
	             strcmp(dash(x->then.outcome), decision_label(&x->now)) != 0 ||
	                 strcmp(dash(x->then.policy), dash(x->now.policy)) != 0);
	json_object_end(&j);
	json_finish(&j);
}

static void replay_text(const struct replay *x)
{
	const struct decision_record *r = &x->then;
	const struct decision *d = &x->now;
	char t1[32], t2[32], ro[300] = "";

	for (size_t i = 0, n = 0; i < d->n_trace; i++)
		if (d->trace[i].status == TRACE_APPLIED && !d->trace[i].enforcing)
			n += (size_t)snprintf(ro + n, n < sizeof(ro) ? sizeof(ro) - n : 0, "%s%s",
			                      n ? "," : "", d->trace[i].policy);
	char s1[CTL_SHOWN_MAX], s2[CTL_SHOWN_MAX], s3[CTL_SHOWN_MAX], s4[CTL_SHOWN_MAX];

	printf("decision %lld", (long long)r->id);
	if (r->host != NULL)
		printf(" on %s", ctl_shown(r->host, s1, sizeof(s1)));
	printf(" by %s, queue id %s, instance %s\n", dash(r->daemon),
	       ctl_shown(r->queue_id, s1, sizeof(s1)), ctl_shown(r->instance, s2, sizeof(s2)));
	printf("submission: user %s, mechanism %s, client %s, %s, service %s\n\n",
	       ctl_shown(r->user, s1, sizeof(s1)), ctl_shown(r->mech, s2, sizeof(s2)),
	       ctl_shown(r->client, s3, sizeof(s3)), r->tls ? "TLS" : "no TLS",
	       ctl_shown(r->service, s4, sizeof(s4)));
	printf("%-13s %-32s %s\n", "", "THEN", "NOW");
	printf("%-13s %-32s %s\n", "at:", ctl_time((time_t)r->at, "-", t1, sizeof(t1)),
	       ctl_time(x->at, "-", t2, sizeof(t2)));
	printf("%-13s %-32lld %lld\n", "generation:", (long long)r->generation,
	       (long long)x->generation_now);
	printf("%-13s %-32s %s\n", "class:", dash(r->mech_class),
	       d->outcome == OUTCOME_NOT_AUTHENTICATED ? "-" : mech_class_name(d->mech_class));
	printf("%-13s %-32s %s\n", "outcome:", dash(r->outcome), decision_label(d));
	printf("%-13s %-32s %s\n", "policy:", dash(r->policy), dash(d->policy));
	printf("%-13s %-32s %s\n", "report-only:", dash(r->report_only), dash(ro));
	if (strcmp(dash(r->outcome), decision_label(d)) == 0 &&
	    strcmp(dash(r->policy), dash(d->policy)) == 0)
		printf("\nunchanged: the current policy decides the same way\n");
	else
		printf("\nCHANGED: the current policy decides differently\n");
	if (d->n_trace > 0)
		printf("\npolicies now (saslgatectl explain shows the details):\n");
	for (size_t i = 0; i < d->n_trace; i++) {
		const struct trace_entry *e = &d->trace[i];

		printf("  %-20s %s", e->policy, trace_status_name(e->status));
		if (e->status == TRACE_NOT_APPLIED)
			printf(": %s [%s]", e->detail, trace_condition_name(e->failed));
		else if (e->status == TRACE_EXCEPTED)
			printf(" by exception #%lld", (long long)e->exception_id);
		else if (e->status == TRACE_APPLIED)
			printf(" (%s)", e->enforcing ? "blocks" : "report-only: would block");
		printf("\n");
	}
}

static int log_explain(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	struct replay x;
	struct sg_err err = {{0}};
	struct snapshot *snap = NULL;
	struct activity_store *act = NULL;
	sqlite3 *pol = NULL;
	struct decision_batch batch = {0};
	const struct decision_record *then;
	char host[256] = "";
	const char *id_text;
	int64_t id;
	int rc;

	memset(&x, 0, sizeof(x));
	if ((rc = ctl_parse_plain(ctl, cmd, argc, argv, 1, 1)) != CTL_OPT_CONTINUE)
		return rc;
	/* HOST:ID on the fleet's store: ids are per host. */
	id_text = argv[optind];
	if (ctl->store != NULL && strrchr(id_text, ':') != NULL) {
		size_t len = (size_t)(strrchr(id_text, ':') - id_text);

		if (len == 0 || len >= sizeof(host))
			return ctl_invalid("ID", "'%s' is not HOST:ID", id_text);
		memcpy(host, id_text, len);
		host[len] = '\0';
		id_text += len + 1;
	}
	if (aq_parse_count("ID", id_text, 0, &id) != CTL_OK)
		return CTL_USAGE;
	if ((rc = aq_open_activity(ctl, ACTIVITY_STORE_READ, &act)) != CTL_OK)
		return rc;
	if (activity_store_find_host_decision(act, host[0] ? host : NULL, id, &batch, &then, &err) <
	    0) {
		rc = aq_store_fail(act, &err);
		goto out;
	}
	if (then == NULL) {
		rc = ctl_invalid("ID", "no decision %lld%s%s in the log (pruned?)", (long long)id,
		                 host[0] ? " on " : "", host);
		goto out;
	}
	x.then = *then;
	request_init(&x.req);
	x.req.user = x.then.user;
	x.req.mech = x.then.mech;
	x.req.client_addr = x.then.client;
	x.req.addr_valid = x.then.client && ipaddr_parse(x.then.client, &x.req.addr, NULL) == 0;
	x.req.tls = x.then.tls;
	x.req.service = x.then.service;
	x.req.queue_id = x.then.queue_id;
	x.req.instance = x.then.instance;
	x.req.sender = x.then.sender;
	x.at = ctl->now;
	if (store_open_readonly(ctl->dir, &pol, &err) < 0) {
		rc = ctl_fail("%s", err.text);
		goto out;
	}
	if ((snap = snapshot_load(pol, &err)) == NULL) {
		rc = ctl_fail("cannot load the policy: %s", err.text);
		goto out;
	}
	x.generation_now = snapshot_generation(snap);
	if (engine_decide(snap, &x.req, x.at, 1, &x.now) < 0) {
		rc = ctl_fail("the engine could not decide (out of memory)");
		goto out;
	}
	if (ctl->json)
		replay_json(&x);
	else
		replay_text(&x);
	decision_release(&x.now);
	rc = CTL_OK;
out:
	decision_batch_free(&batch);
	snapshot_unref(&snap);
	store_close(&pol);
	activity_store_close(&act);
	return rc;
}

int cmd_log(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	static const struct ctl_command explain = {
	    "explain",
	    "ID",
	    "replay logged decision ID against the current policy: then and now side "
	    "by side",
	    NULL,
	    NULL,
	    "log explain"};

	if (argc >= 2 && strcmp(argv[1], "explain") == 0)
		return log_explain(ctl, &explain, argc - 1, argv + 1);
	return log_list(ctl, cmd, argc, argv);
}
