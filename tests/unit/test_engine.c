/*
 * test_engine - the golden-file test of the decision engine. Each scenario in
 * tests/golden/engine.txt (see the comment at its top for the format) becomes
 * one cmocka test: the scenario's policies, groups, locations and exceptions
 * are compiled with the snapshot builder, then every request is decided with
 * engine_decide() and compared with the expected outcome and trace.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine.h"
#include "snapshot.h"
#include "timeparse.h"

#define MAX_TOKENS 32
#define MAX_LINE 2048

struct scenario {
	char name[128];
	long first_line; /* line after the "scenario" line */
	long last_line;
};

static const char *golden_path;
static char **lines;
static size_t n_lines;

struct kv {
	char *key;
	char *value;
};

/* Splits "word key=value key=\"quoted value\"" in place. Returns the count. */
static size_t tokenize(char *line, struct kv *out, size_t max)
{
	size_t n = 0;
	char *p = line;

	while (*p != '\0' && n < max) {
		char *start, *w;

		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0' || *p == '#')
			break;
		start = w = p;
		out[n].key = start;
		out[n].value = NULL;
		while (*p != '\0' && *p != ' ' && *p != '\t') {
			if (*p == '=' && out[n].value == NULL) {
				*w++ = '\0';
				out[n].value = w;
				p++;
				if (*p == '"') {
					p++;
					while (*p != '\0' && *p != '"')
						*w++ = *p++;
					if (*p == '"')
						p++;
					continue;
				}
				continue;
			}
			*w++ = *p++;
		}
		if (*p != '\0')
			p++;
		*w = '\0';
		n++;
	}
	return n;
}

static const char *kv_get(const struct kv *t, size_t n, const char *key)
{
	for (size_t i = 1; i < n; i++)
		if (t[i].value != NULL && strcmp(t[i].key, key) == 0)
			return t[i].value;
	return NULL;
}

static const char *kv_or(const struct kv *t, size_t n, const char *key, const char *def)
{
	const char *v = kv_get(t, n, key);

	return v != NULL ? v : def;
}

static time_t parse_time(const char *text, time_t now, long lineno)
{
	struct sg_err err;
	time_t t;

	if (time_parse(text, now, TIME_FUTURE, &t, &err) < 0)
		fail_msg("%s:%ld: bad time %s: %s", golden_path, lineno, text, err.text);
	return t;
}

struct run {
	struct snapshot_builder *builder;
	struct snapshot *snap;
	time_t now;
	struct request req;
	char reqbuf[MAX_LINE];
	struct kv reqtok[MAX_TOKENS];
	struct decision d;
	int decided;
	int checks;
};

static void setup_line(struct run *r, struct kv *t, size_t n, long lineno)
{
	struct sg_err err;
	const char *word = t[0].key;
	int rc = 0;

	if (strcmp(word, "now") == 0) {
		r->now = parse_time(t[1].key, 0, lineno);
	} else if (strcmp(word, "setting") == 0) {
		rc = snapshot_builder_setting(r->builder, t[1].key, t[2].key, &err);
	} else if (strcmp(word, "mech") == 0) {
		enum mech_class c;

		if (mech_class_parse(t[2].key, &c) < 0)
			fail_msg("%s:%ld: bad class", golden_path, lineno);
		rc = snapshot_builder_mech(r->builder, t[1].key, c, &err);
	} else if (strcmp(word, "group") == 0) {
		rc = snapshot_builder_group(r->builder, t[1].key, &err);
		for (size_t i = 2; i < n && rc == 0; i++)
			rc = snapshot_builder_group_member(r->builder, t[1].key, t[i].key, &err);
	} else if (strcmp(word, "location") == 0) {
		rc = snapshot_builder_location(r->builder, t[1].key, &err);
		for (size_t i = 2; i < n && rc == 0; i++)
			rc = snapshot_builder_location_net(r->builder, t[1].key, t[i].key, &err);
	} else if (strcmp(word, "policy") == 0) {
		struct policy_def d;
		char reply[512], *sp1, *sp2;
		const char *from = kv_get(t, n, "enforce-from");

		memset(&d, 0, sizeof(d));
		d.name = t[1].key;
		if (policy_state_parse(kv_or(t, n, "state", "enforce"), &d.state) < 0 ||
		    tls_condition_parse(kv_or(t, n, "tls", "any"), &d.tls) < 0)
			fail_msg("%s:%ld: bad state or tls", golden_path, lineno);
		d.enforce_from = from != NULL ? parse_time(from, r->now, lineno) : 0;
		d.mechs = kv_or(t, n, "mechs", "legacy");
		d.include_users = kv_or(t, n, "users", "all");
		d.include_groups = kv_or(t, n, "groups", "");
		d.exclude_users = kv_or(t, n, "exclude-users", "");
		d.exclude_groups = kv_or(t, n, "exclude-groups", "");
		d.include_locations = kv_or(t, n, "locations", "any");
		d.exclude_locations = kv_or(t, n, "exclude-locations", "");
		d.services = kv_or(t, n, "services", "any");
		snprintf(reply, sizeof(reply), "%s",
			 kv_or(t, n, "reply", "550 5.7.9 " POLICY_DEFAULT_REPLY_TEXT));
		sp1 = strchr(reply, ' ');
		sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
		if (sp2 == NULL)
			fail_msg("%s:%ld: reply needs code, enhanced code and text", golden_path,
				 lineno);
		*sp1 = *sp2 = '\0';
		d.reply_code = reply;
		d.reply_enh = sp1 + 1;
		d.reply_text = sp2 + 1;
		rc = snapshot_builder_policy(r->builder, &d, &err);
	} else if (strcmp(word, "exception") == 0) {
		struct exception_def e;
		const char *expires = kv_or(t, n, "expires", "permanent");

		memset(&e, 0, sizeof(e));
		e.id = strtoll(t[1].key, NULL, 10);
		e.policy = kv_get(t, n, "policy");
		e.user_pattern = kv_get(t, n, "user");
		e.group = kv_get(t, n, "group");
		e.location = kv_get(t, n, "location");
		e.mechs = kv_get(t, n, "mechs");
		e.reason = "golden";
		e.expires_at = strcmp(expires, "permanent") == 0 ? 0
								 : parse_time(expires, r->now, lineno);
		rc = snapshot_builder_exception(r->builder, &e, &err);
	} else {
		fail_msg("%s:%ld: unknown directive \"%s\"", golden_path, lineno, word);
	}
	if (rc < 0)
		fail_msg("%s:%ld: %s", golden_path, lineno, err.text);
}

static void finish_setup(struct run *r, long lineno)
{
	struct sg_err err;

	if (r->snap != NULL)
		return;
	r->snap = snapshot_builder_finish(&r->builder, &err);
	if (r->snap == NULL)
		fail_msg("%s:%ld: snapshot does not compile: %s", golden_path, lineno, err.text);
}

static void request_line(struct run *r, const char *line, long lineno)
{
	size_t n;
	const char *ip;
	struct sg_err err;

	finish_setup(r, lineno);
	decision_release(&r->d);
	snprintf(r->reqbuf, sizeof(r->reqbuf), "%s", line);
	n = tokenize(r->reqbuf, r->reqtok, MAX_TOKENS);
	request_init(&r->req);
	r->req.mech = kv_get(r->reqtok, n, "mech");
	r->req.user = kv_get(r->reqtok, n, "user");
	ip = kv_get(r->reqtok, n, "ip");
	r->req.client_addr = ip;
	if (ip != NULL) {
		if (ipaddr_parse(ip, &r->req.addr, &err) < 0)
			fail_msg("%s:%ld: bad ip: %s", golden_path, lineno, err.text);
		r->req.addr_valid = 1;
	}
	r->req.tls = strcmp(kv_or(r->reqtok, n, "tls", "no"), "yes") == 0;
	r->req.service = kv_get(r->reqtok, n, "service");
	assert_int_equal(engine_decide(r->snap, &r->req, r->now, 1, &r->d), 0);
	r->decided = 1;
}

#define CHECK(cond, ...)                                                                  \
	do {                                                                               \
		if (!(cond))                                                               \
			fail_msg(__VA_ARGS__);                                             \
		r->checks++;                                                               \
	} while (0)

static void expect_line(struct run *r, struct kv *t, size_t n, long lineno)
{
	const char *outcome = kv_get(t, n, "outcome");
	const char *policy = kv_get(t, n, "policy");
	const char *reply = kv_get(t, n, "reply");
	const char *ro = kv_get(t, n, "report-only");
	char got[700];

	CHECK(r->decided, "%s:%ld: expect without request", golden_path, lineno);
	if (outcome != NULL)
		CHECK(strcmp(decision_label(&r->d), outcome) == 0, "%s:%ld: outcome %s, expected %s",
		      golden_path, lineno, decision_label(&r->d), outcome);
	if (policy != NULL)
		CHECK(strcmp(r->d.policy ? r->d.policy : "-", policy) == 0,
		      "%s:%ld: blocking policy %s, expected %s", golden_path, lineno,
		      r->d.policy ? r->d.policy : "-", policy);
	if (reply != NULL) {
		snprintf(got, sizeof(got), "%s %s %s", r->d.reply_code, r->d.reply_enh,
			 r->d.reply_text);
		CHECK(strcmp(got, reply) == 0, "%s:%ld: reply \"%s\", expected \"%s\"",
		      golden_path, lineno, got, reply);
	}
	if (ro != NULL)
		CHECK(strcmp(r->d.n_report_only ? r->d.report_only : "-", ro) == 0,
		      "%s:%ld: report-only \"%s\", expected \"%s\"", golden_path, lineno,
		      r->d.report_only, ro);
}

/* trace POLICY STATUS [condition=C] [exception=ID] [expired=ID,...] [detail~TEXT] */
static void trace_line(struct run *r, struct kv *t, size_t n, long lineno)
{
	const struct trace_entry *e = NULL;
	const char *cond = kv_get(t, n, "condition");
	const char *exc = kv_get(t, n, "exception");
	const char *expired = kv_get(t, n, "expired");
	const char *detail = kv_get(t, n, "detail");

	CHECK(r->decided && n >= 3, "%s:%ld: trace needs a request, a policy and a status",
	      golden_path, lineno);
	for (size_t i = 0; i < r->d.n_trace; i++)
		if (strcmp(r->d.trace[i].policy, t[1].key) == 0)
			e = &r->d.trace[i];
	CHECK(e != NULL, "%s:%ld: no trace entry for policy %s", golden_path, lineno, t[1].key);
	CHECK(strcmp(trace_status_name(e->status), t[2].key) == 0,
	      "%s:%ld: policy %s is %s (%s), expected %s", golden_path, lineno, t[1].key,
	      trace_status_name(e->status), e->detail, t[2].key);
	if (cond != NULL)
		CHECK(strcmp(trace_condition_name(e->failed), cond) == 0,
		      "%s:%ld: failed condition %s (%s), expected %s", golden_path, lineno,
		      trace_condition_name(e->failed), e->detail, cond);
	if (exc != NULL)
		CHECK(e->exception_id == strtoll(exc, NULL, 10),
		      "%s:%ld: excepted by %lld, expected %s", golden_path, lineno,
		      (long long)e->exception_id, exc);
	if (expired != NULL) {
		char got[256] = "";

		for (size_t i = 0; i < e->n_expired; i++)
			snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%lld",
				 i ? "," : "", (long long)e->expired_ids[i]);
		CHECK(strcmp(got[0] ? got : "-", expired) == 0,
		      "%s:%ld: expired exceptions \"%s\", expected \"%s\"", golden_path, lineno,
		      got, expired);
	}
	if (detail != NULL)
		CHECK(strstr(e->detail, detail) != NULL, "%s:%ld: detail \"%s\" lacks \"%s\"",
		      golden_path, lineno, e->detail, detail);
}

static void run_scenario(void **state)
{
	const struct scenario *sc = *state;
	struct run r;
	struct kv t[MAX_TOKENS];
	char buf[MAX_LINE];

	memset(&r, 0, sizeof(r));
	r.builder = snapshot_builder_new();
	for (long ln = sc->first_line; ln <= sc->last_line; ln++) {
		const char *line = lines[ln - 1];
		size_t n;

		snprintf(buf, sizeof(buf), "%s", line);
		n = tokenize(buf, t, MAX_TOKENS);
		if (n == 0)
			continue;
		if (strcmp(t[0].key, "request") == 0)
			request_line(&r, line, ln);
		else if (strcmp(t[0].key, "expect") == 0)
			expect_line(&r, t, n, ln);
		else if (strcmp(t[0].key, "trace") == 0)
			trace_line(&r, t, n, ln);
		else if (r.snap != NULL)
			fail_msg("%s:%ld: setup after the first request", golden_path, ln);
		else
			setup_line(&r, t, n, ln);
	}
	if (r.checks == 0)
		fail_msg("scenario %s checks nothing", sc->name);
	decision_release(&r.d);
	snapshot_unref(&r.snap);
	snapshot_builder_free(&r.builder);
}

static void load_lines(void)
{
	FILE *f = fopen(golden_path, "r");
	char buf[MAX_LINE];
	size_t cap = 0;

	if (f == NULL) {
		fprintf(stderr, "cannot open %s\n", golden_path);
		exit(1);
	}
	while (fgets(buf, sizeof(buf), f) != NULL) {
		buf[strcspn(buf, "\r\n")] = '\0';
		if (n_lines == cap) {
			cap = cap ? cap * 2 : 256;
			lines = realloc(lines, cap * sizeof(*lines));
		}
		lines[n_lines++] = strdup(buf);
	}
	fclose(f);
}

int main(int argc, char **argv)
{
	static char path[4096];
	struct scenario *scenarios = NULL;
	struct CMUnitTest *tests;
	size_t n = 0;
	const char *srcdir = getenv("SASLGATE_SRCDIR");

	setenv("TZ", "UTC", 1);
	snprintf(path, sizeof(path), "%s/tests/golden/engine.txt", srcdir ? srcdir : ".");
	golden_path = argc > 1 ? argv[1] : path;
	load_lines();
	scenarios = calloc(n_lines + 1, sizeof(*scenarios));
	for (size_t i = 0; i < n_lines; i++) {
		if (strncmp(lines[i], "scenario ", 9) == 0) {
			if (n > 0)
				scenarios[n - 1].last_line = (long)i;
			snprintf(scenarios[n].name, sizeof(scenarios[n].name), "%s", lines[i] + 9);
			scenarios[n].first_line = (long)i + 2;
			n++;
		}
	}
	if (n == 0) {
		fprintf(stderr, "%s: no scenarios\n", golden_path);
		return 1;
	}
	scenarios[n - 1].last_line = (long)n_lines;
	tests = calloc(n, sizeof(*tests));
	for (size_t i = 0; i < n; i++) {
		tests[i].name = scenarios[i].name;
		tests[i].test_func = run_scenario;
		tests[i].initial_state = &scenarios[i];
	}
	return _cmocka_run_group_tests("engine golden file", tests, n, NULL, NULL);
}
