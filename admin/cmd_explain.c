/*
 * explain - runs the production engine (engine_decide, the function both
 * daemons call) on a hypothetical submission and shows, policy by policy, why
 * it applied or which condition failed, which exception excepted it, and
 * which matching exceptions have expired. Exit 0: would pass; 1: blocked.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"
#include "cmd_exception.h"
#include "ctl.h"
#include "engine.h"
#include "json.h"
#include "mech.h"
#include "request.h"
#include "shown.h"
#include "snapshot.h"
#include "validate.h"

enum { OPT_USER = 0x100, OPT_IP, OPT_MECH, OPT_TLS, OPT_SERVICE, OPT_AT };

struct explain {
	struct ctl *ctl;
	sqlite3 *db;
	struct request req;
	const char *at_text; /* --at as typed */
	time_t at;
	struct decision d;
};

static void exception_json(struct explain *x, struct json *j, int64_t id)
{
	struct sa_exception e;
	struct sg_err err = {{0}};

	if (store_admin_exception_get(x->db, id, &e, &err) != 1) {
		json_object_begin(j);
		json_kv_int(j, "id", id);
		json_object_end(j);
		return;
	}
	ctl_exception_json(j, &e, x->at);
	sa_exception_clear(&e);
}

/* "#3 (reason; expires 2026-...)" for the human output. */
static void exception_text(struct explain *x, int64_t id, char *buf, size_t len)
{
	struct sa_exception e;
	struct sg_err err = {{0}};
	char t[32];

	if (store_admin_exception_get(x->db, id, &e, &err) != 1) {
		snprintf(buf, len, "#%lld", (long long)id);
		return;
	}
	snprintf(buf, len, "#%lld (\"%s\", by %s, %s%s%s)", (long long)id, e.reason, e.created_by,
	         e.expires_at == 0       ? "permanent"
	         : e.expires_at <= x->at ? "expired"
	                                 : "expires",
	         e.expires_at ? " " : "",
	         e.expires_at ? ctl_time((time_t)e.expires_at, "", t, sizeof(t)) : "");
	sa_exception_clear(&e);
}

static void print_json(struct explain *x)
{
	const struct decision *d = &x->d;
	char addr[64];
	struct json j;

	json_init(&j, stdout, 1);
	json_object_begin(&j);
	json_key(&j, "request");
	json_object_begin(&j);
	json_kv_string(&j, "user", x->req.user);
	json_kv_string(&j, "ip",
	               ipaddr_format(&x->req.addr, addr, sizeof(addr)) == 0 ? addr
	                                                                    : x->req.client_addr);
	json_kv_string(&j, "mech", x->req.mech);
	json_kv_bool(&j, "tls", x->req.tls);
	json_kv_string(&j, "service", x->req.service);
	json_object_end(&j);
	json_kv_time(&j, "at", x->at);
	json_kv_string(&j, "outcome", outcome_name(d->outcome));
	json_kv_string(&j, "label", decision_label(d));
	json_kv_string(&j, "mech_class",
	               d->outcome == OUTCOME_NOT_AUTHENTICATED ? NULL
	                                                       : mech_class_name(d->mech_class));
	json_kv_string(&j, "policy", d->policy);
	json_key(&j, "reply");
	if (d->outcome == OUTCOME_BLOCK) {
		json_object_begin(&j);
		json_kv_string(&j, "code", d->reply_code);
		json_kv_string(&j, "enhanced", d->reply_enh);
		json_kv_string(&j, "text", d->reply_text);
		json_object_end(&j);
	} else {
		json_null(&j);
	}
	json_key(&j, "report_only");
	json_array_begin(&j);
	for (size_t i = 0; i < d->n_trace; i++)
		if (d->trace[i].status == TRACE_APPLIED && !d->trace[i].enforcing)
			json_string(&j, d->trace[i].policy);
	json_array_end(&j);
	json_key(&j, "policies");
	json_array_begin(&j);
	for (size_t i = 0; i < d->n_trace; i++) {
		const struct trace_entry *t = &d->trace[i];

		json_object_begin(&j);
		json_kv_string(&j, "name", t->policy);
		json_kv_string(&j, "status", trace_status_name(t->status));
		json_kv_bool(&j, "enforcing", t->enforcing);
		json_kv_string(&j, "failed_condition",
		               t->status == TRACE_NOT_APPLIED ? trace_condition_name(t->failed)
		                                              : NULL);
		json_kv_string(&j, "detail", t->detail);
		json_key(&j, "exception");
		if (t->status == TRACE_EXCEPTED)
			exception_json(x, &j, t->exception_id);
		else
			json_null(&j);
		json_key(&j, "expired_exceptions");
		json_array_begin(&j);
		for (size_t k = 0; k < t->n_expired; k++)
			exception_json(x, &j, t->expired_ids[k]);
		json_array_end(&j);
		json_object_end(&j);
	}
	json_array_end(&j);
	json_object_end(&j);
	json_finish(&j);
}

static void print_text(struct explain *x)
{
	const struct decision *d = &x->d;
	char t[32], buf[700], shown[CTL_SHOWN_MAX];

	printf("submission: user %s, ", ctl_shown(x->req.user, shown, sizeof(shown)));
	printf("mechanism %s", ctl_shown(x->req.mech, shown, sizeof(shown)));
	if (d->outcome != OUTCOME_NOT_AUTHENTICATED)
		printf(" (class %s)", mech_class_name(d->mech_class));
	printf(", client %s, %s, service %s\n", x->req.client_addr, x->req.tls ? "TLS" : "no TLS",
	       x->req.service ? x->req.service : "-");
	printf("at:         %s\n", ctl_time(x->at, "-", t, sizeof(t)));
	printf("outcome:    %s\n", decision_label(d));
	if (d->outcome == OUTCOME_BLOCK)
		printf("reply:      %s %s %s (policy %s)\n", d->reply_code, d->reply_enh,
		       d->reply_text, d->policy);
	if (d->n_trace == 0)
		printf("\nno policies\n");
	else
		printf("\npolicies:\n");
	for (size_t i = 0; i < d->n_trace; i++) {
		const struct trace_entry *e = &d->trace[i];

		printf("  %-20s ", e->policy);
		switch (e->status) {
		case TRACE_OFF:
			printf("off\n");
			break;
		case TRACE_NOT_APPLIED:
			printf("not applied: %s [%s]\n", e->detail,
			       trace_condition_name(e->failed));
			break;
		case TRACE_EXCEPTED:
			exception_text(x, e->exception_id, buf, sizeof(buf));
			printf("applies, but excepted by exception %s\n", buf);
			break;
		case TRACE_APPLIED:
			printf("%s\n", e->enforcing ? "APPLIED: blocks"
			                            : "applied (report-only): would block");
			break;
		}
		for (size_t k = 0; k < e->n_expired; k++) {
			exception_text(x, e->expired_ids[k], buf, sizeof(buf));
			printf("  %-20s matching exception %s no longer applies\n", "", buf);
		}
	}
}

static int take_explain_opt(int c, const char *value, void *arg)
{
	struct explain *x = arg;

	switch (c) {
	case OPT_USER:
		x->req.user = value;
		break;
	case OPT_IP:
		x->req.client_addr = value;
		break;
	case OPT_MECH:
		x->req.mech = value;
		break;
	case OPT_TLS:
		x->req.tls = 1;
		break;
	case OPT_SERVICE:
		x->req.service = value;
		break;
	case OPT_AT:
		x->at_text = value;
		break;
	default:
		return CTL_OPT_NOT_MINE;
	}
	return CTL_OPT_CONTINUE;
}

/* CTL_OPT_CONTINUE to go on, else the status to return (after --help too). */
static int parse(struct explain *x, const struct ctl_command *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"user", required_argument, NULL, OPT_USER},
	    {"ip", required_argument, NULL, OPT_IP},
	    {"mech", required_argument, NULL, OPT_MECH},
	    {"tls", no_argument, NULL, OPT_TLS},
	    {"service", required_argument, NULL, OPT_SERVICE},
	    {"at", required_argument, NULL, OPT_AT},
	    CTL_OPT_COMMON,
	    {NULL, 0, NULL, 0},
	};
	const struct ctl_opts opts = {":h", longopts, take_explain_opt, x};
	struct sg_err err = {{0}};
	int rc;

	if ((rc = ctl_parse(x->ctl, cmd, argc, argv, &opts, 0, 0)) != CTL_OPT_CONTINUE)
		return rc;
	if (x->req.user == NULL || *x->req.user == '\0')
		return ctl_invalid("--user", "the SASL user name is required");
	if (x->req.client_addr == NULL)
		return ctl_invalid("--ip", "the client address is required");
	if (x->req.mech == NULL || *x->req.mech == '\0')
		return ctl_invalid("--mech", "the SASL mechanism is required");
	if (!mech_name_valid(x->req.mech))
		return ctl_invalid("--mech", "'%s' is not a SASL mechanism name", x->req.mech);
	if (ipaddr_parse(x->req.client_addr, &x->req.addr, &err) < 0)
		return ctl_invalid("--ip", "'%s': %s", x->req.client_addr, err.text);
	x->req.addr_valid = 1;
	x->at = x->ctl->now;
	if (x->at_text &&
	    (rc = ctl_parse_time(x->ctl, "--at", x->at_text, TIME_FUTURE, &x->at)) != CTL_OK)
		return rc;
	return CTL_OPT_CONTINUE;
}

int cmd_explain(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	struct explain x;
	struct sg_err err = {{0}};
	struct snapshot *snap;
	int rc;

	memset(&x, 0, sizeof(x));
	x.ctl = ctl;
	request_init(&x.req);
	if ((rc = parse(&x, cmd, argc, argv)) != CTL_OPT_CONTINUE)
		return rc;
	if ((rc = ctl_open(ctl, &x.db)) != CTL_OK)
		return rc;
	snap = snapshot_load(x.db, &err);
	if (snap == NULL) {
		store_close(&x.db);
		return ctl_fail("cannot load the policy: %s", err.text);
	}
	if (engine_decide(snap, &x.req, x.at, 1, &x.d) < 0) {
		snapshot_unref(&snap);
		store_close(&x.db);
		return ctl_fail("the engine could not decide (out of memory)");
	}
	if (ctl->json)
		print_json(&x);
	else
		print_text(&x);
	rc = x.d.outcome == OUTCOME_BLOCK ? CTL_FAIL : CTL_OK;
	decision_release(&x.d);
	snapshot_unref(&snap);
	store_close(&x.db);
	return rc;
}
