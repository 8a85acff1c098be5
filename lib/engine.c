/*
 * engine - the pure decision function (see engine.h and DESIGN.md "Decision").
 *
 * Per request: normalise the user and the mechanism once, find the locations
 * containing the client address (prefix tree) and the candidate exceptions
 * (user index + location-only exceptions of those locations), then evaluate
 * each policy in name order. Nothing here scans all exceptions or locations.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "snapshot_int.h"
#include "utf8.h"

#define LOCS_INLINE  32
#define CANDS_INLINE 64
#define USER_INLINE  512

struct eval {
	const struct snapshot *snap;
	const struct request *req;
	time_t now;
	int want_trace;
	const char *user; /* folded (utf8_fold), "" if none */
	char *user_heap;
	char user_buf[USER_INLINE];
	char mech_lower[MECH_NAME_MAX + 1];
	char mech_upper[MECH_NAME_MAX + 1];
	enum mech_class cls;
	uint32_t *locs;
	size_t n_locs;
	uint32_t locs_buf[LOCS_INLINE];
	const struct sn_exception **cands;
	size_t n_cands, cap_cands;
	const struct sn_exception *cands_buf[CANDS_INLINE];
	int failed; /* allocation failure */
};

static const char *const outcome_names[] = {"not-authenticated", "allow", "block"};
static const char *const status_names[] = {"off", "not-applied", "excepted", "applied"};
static const char *const condition_names[] = {
    "", "mechanism", "user", "user-excluded", "location", "location-excluded", "tls", "service"};

const char *outcome_name(enum outcome o)
{
	return (unsigned)o < 3 ? outcome_names[o] : "?";
}

const char *trace_status_name(enum trace_status s)
{
	return (unsigned)s < 4 ? status_names[s] : "?";
}

const char *trace_condition_name(enum trace_condition c)
{
	return (unsigned)c < 8 ? condition_names[c] : "?";
}

const char *decision_label(const struct decision *d)
{
	if (d->outcome == OUTCOME_ALLOW && d->n_report_only > 0)
		return "would-block";
	return outcome_name(d->outcome);
}

void decision_release(struct decision *d)
{
	free(d->trace);
	d->trace = NULL;
	d->n_trace = 0;
}

static int mech_filter_match(const struct mech_filter *f, const struct eval *ev)
{
	if (f->any || (f->classes & (1u << ev->cls)))
		return 1;
	for (size_t i = 0; i < f->n_names; i++)
		if (strcmp(f->names[i], ev->mech_lower) == 0)
			return 1;
	return 0;
}

static int in_locations(const struct eval *ev, uint32_t loc)
{
	for (size_t i = 0; i < ev->n_locs; i++)
		if (ev->locs[i] == loc)
			return 1;
	return 0;
}

/* The first location of list that contains the client, or -1. */
static long first_location_in(const struct eval *ev, const uint32_t *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (in_locations(ev, list[i]))
			return (long)list[i];
	return -1;
}

static void add_candidate(struct eval *ev, const struct sn_exception *e)
{
	/* Only a group exception can be reached twice (through two members). */
	if (e->from_group)
		for (size_t i = 0; i < ev->n_cands; i++)
			if (ev->cands[i] == e)
				return;
	if (ev->n_cands == ev->cap_cands) {
		size_t cap = ev->cap_cands ? ev->cap_cands * 2 : CANDS_INLINE;
		const struct sn_exception **c;

		if (ev->cands == ev->cands_buf) {
			c = malloc(cap * sizeof(*c));
			if (c != NULL)
				memcpy(c, ev->cands, ev->n_cands * sizeof(*c));
		} else {
			c = realloc(ev->cands, cap * sizeof(*c));
		}
		if (c == NULL) {
			ev->failed = 1;
			return;
		}
		ev->cands = c;
		ev->cap_cands = cap;
	}
	ev->cands[ev->n_cands++] = e;
}

static int user_exception_cb(void *value, const struct pattern *p, void *arg)
{
	struct eval *ev = arg;
	const struct sn_exception *e = value;

	(void)p;
	if (e->location >= 0 && !in_locations(ev, (uint32_t)e->location))
		return 0;
	if (!mech_filter_match(&e->mechs, ev))
		return 0;
	add_candidate(ev, e);
	return 0;
}

static void find_candidates(struct eval *ev)
{
	const struct snapshot *snap = ev->snap;

	if (*ev->user != '\0')
		userindex_lookup(snap->exception_users, ev->user, user_exception_cb, ev);
	for (size_t i = 0; i < ev->n_locs; i++) {
		uint32_t l = ev->locs[i];

		for (size_t k = 0; k < snap->n_by_location[l]; k++)
			if (mech_filter_match(&snap->by_location[l][k]->mechs, ev))
				add_candidate(ev, snap->by_location[l][k]);
	}
}

static void find_locations(struct eval *ev)
{
	size_t total;

	ev->locs = ev->locs_buf;
	ev->n_locs = 0;
	if (!ev->req->addr_valid)
		return;
	total =
	    cidr_tree_lookup(ev->snap->location_tree, &ev->req->addr, ev->locs_buf, LOCS_INLINE);
	if (total > LOCS_INLINE) {
		ev->locs = malloc(total * sizeof(uint32_t));
		if (ev->locs == NULL) {
			ev->locs = ev->locs_buf;
			ev->failed = 1;
			return;
		}
		total = cidr_tree_lookup(ev->snap->location_tree, &ev->req->addr, ev->locs, total);
	}
	/* A location with overlapping ranges appears once per range: keep one. */
	ev->n_locs = 0;
	for (size_t i = 0; i < total; i++) {
		size_t k;

		for (k = 0; k < ev->n_locs && ev->locs[k] != ev->locs[i]; k++)
			;
		if (k == ev->n_locs)
			ev->locs[ev->n_locs++] = ev->locs[i];
	}
}

static int normalise(struct eval *ev)
{
	const char *user = ev->req->user != NULL ? ev->req->user : "";
	size_t len = strlen(user);

	if (len < sizeof(ev->user_buf)) {
		utf8_fold(ev->user_buf, user, sizeof(ev->user_buf));
		ev->user = ev->user_buf;
	} else {
		ev->user_heap = malloc(len + 1);
		if (ev->user_heap == NULL)
			return -1;
		utf8_fold(ev->user_heap, user, len + 1);
		ev->user = ev->user_heap;
	}
	/* An over-long mechanism is in no catalogue and matches no name (its
	 * truncation must not pass for a shorter mechanism). */
	if (sg_lower(ev->mech_lower, ev->req->mech, sizeof(ev->mech_lower)) >=
	    sizeof(ev->mech_lower))
		ev->mech_lower[0] = '\0';
	sg_upper(ev->mech_upper, ev->req->mech, sizeof(ev->mech_upper));
	ev->cls = snapshot_mech_class(ev->snap, ev->req->mech);
	return 0;
}

struct user_match {
	const struct sn_group *origin;
	const struct pattern *pattern;
};

static int user_match_cb(void *value, const struct pattern *p, void *arg)
{
	struct user_match *m = arg;

	m->origin = value;
	m->pattern = p;
	return 1;
}

static void describe_user_match(char *buf, size_t len, const char *verb, const struct user_match *m)
{
	char pat[PATTERN_MAX + 2];

	if (m->pattern->kind == PATTERN_DOMAIN)
		snprintf(pat, sizeof(pat), "@%s", m->pattern->text);
	else
		snprintf(pat, sizeof(pat), "%s", m->pattern->text);
	if (m->origin->name != NULL)
		snprintf(buf, len, "user %s by group %s (member %s)", verb, m->origin->name, pat);
	else
		snprintf(buf, len, "user %s by pattern %s", verb, pat);
}

static int service_matches(const struct sn_policy *sp, const char *service)
{
	if (sp->any_service)
		return 1;
	if (service == NULL || *service == '\0')
		return 0;
	for (size_t i = 0; i < sp->n_services; i++)
		if (sg_strcasecmp(sp->services[i], service) == 0)
			return 1;
	return 0;
}

/* Checks the conditions of a policy in the documented order; returns the first
 * that failed (COND_NONE when all hold), with a detail when tracing. */
static enum trace_condition check_conditions(const struct eval *ev, const struct sn_policy *sp,
                                             char *detail, size_t len)
{
	const struct snapshot *snap = ev->snap;
	const struct request *req = ev->req;
	struct user_match m;
	long loc;

	if (!mech_filter_match(&sp->mechs, ev)) {
		if (detail != NULL)
			snprintf(detail, len,
			         "mechanism %s (class %s) is not targeted (targets: %s)",
			         ev->mech_upper, mech_class_name(ev->cls),
			         *sp->mechs_text ? sp->mechs_text : "legacy");
		return COND_MECH;
	}
	if (!sp->include_all_users &&
	    (*ev->user == '\0' ||
	     !userindex_lookup(sp->include_users, ev->user, user_match_cb, &m))) {
		if (detail != NULL) {
			char shown[640]; /* a cut user is still told apart from others */

			utf8_escape_str(shown, sizeof(shown), *ev->user ? ev->user : "(none)", 0);
			snprintf(detail, len, "user %s is not among the included users or groups",
			         shown);
		}
		return COND_USER_INCLUDE;
	}
	if (*ev->user != '\0' && userindex_lookup(sp->exclude_users, ev->user, user_match_cb, &m)) {
		if (detail != NULL)
			describe_user_match(detail, len, "excluded", &m);
		return COND_USER_EXCLUDE;
	}
	if (!sp->include_any_location &&
	    first_location_in(ev, sp->include_locations, sp->n_include_locations) < 0) {
		if (detail != NULL)
			snprintf(detail, len, "client %s is in none of the included locations",
			         req->client_addr ? req->client_addr : "(unknown)");
		return COND_LOCATION_INCLUDE;
	}
	loc = first_location_in(ev, sp->exclude_locations, sp->n_exclude_locations);
	if (loc >= 0) {
		if (detail != NULL)
			snprintf(detail, len, "client %s is in excluded location %s",
			         req->client_addr ? req->client_addr : "(unknown)",
			         snap->locations[loc].name);
		return COND_LOCATION_EXCLUDE;
	}
	if ((sp->tls == TLS_PLAINTEXT && req->tls) || (sp->tls == TLS_ENCRYPTED && !req->tls)) {
		if (detail != NULL)
			snprintf(detail, len, "session is %s; policy applies to %s sessions only",
			         req->tls ? "encrypted" : "plaintext", tls_condition_name(sp->tls));
		return COND_TLS;
	}
	if (!service_matches(sp, req->service)) {
		if (detail != NULL)
			snprintf(detail, len, "service %s is not targeted",
			         req->service && *req->service ? req->service : "(none)");
		return COND_SERVICE;
	}
	return COND_NONE;
}

/* Finds the exception that excuses policy index pi; records expired matches. */
static const struct sn_exception *find_exception(const struct eval *ev, size_t pi,
                                                 struct trace_entry *t)
{
	const struct sn_exception *best = NULL;

	for (size_t i = 0; i < ev->n_cands; i++) {
		const struct sn_exception *e = ev->cands[i];

		if (e->policy >= 0 && (size_t)e->policy != pi)
			continue;
		if (e->expires_at != 0 && ev->now >= e->expires_at) {
			if (t != NULL && t->n_expired < TRACE_EXPIRED_MAX)
				t->expired_ids[t->n_expired++] = e->id;
			continue;
		}
		if (best == NULL || e->id < best->id)
			best = e;
	}
	return best;
}

static int effectively_enforcing(const struct sn_policy *sp, time_t now)
{
	if (sp->enforce_from != 0)
		return now >= sp->enforce_from;
	return sp->state == POLICY_ENFORCE;
}

/* Expands %m (mechanism) and %% in the reply text; keeps printable ASCII only. */
static void format_reply(char *out, size_t len, const char *text, const char *mech)
{
	size_t o = 0;

	for (const char *p = text; *p != '\0' && o + 1 < len; p++) {
		if (p[0] == '%' && p[1] == 'm') {
			for (const char *m = mech; *m != '\0' && o + 1 < len; m++)
				out[o++] = (*m > 0x20 && *m < 0x7f) ? *m : '?';
			p++;
		} else if (p[0] == '%' && p[1] == '%') {
			out[o++] = '%';
			p++;
		} else {
			out[o++] = (*p >= 0x20 && *p < 0x7f) ? *p : '?';
		}
	}
	out[o] = '\0';
}

/* Appends a report-only policy name to the comma list; "..." marks a cut. */
static void note_report_only(struct decision *d, const char *name)
{
	size_t used = strlen(d->report_only), room = sizeof(d->report_only) - used;
	size_t len = strlen(name), need = len + (used ? 1 : 0);
	char *p = d->report_only + used;

	d->n_report_only++;
	if (used >= 3 && strcmp(d->report_only + used - 3, "...") == 0)
		return;
	if (need + 4 < room) { /* keep space for a later ",..." */
		if (used)
			*p++ = ',';
		memcpy(p, name, len + 1);
	} else {
		sg_strlcpy(p, used ? ",..." : "...", room);
	}
}

static void evaluate(struct eval *ev, struct decision *d)
{
	const struct snapshot *snap = ev->snap;
	const struct sn_policy *blocker = NULL;

	for (size_t i = 0; i < snap->n_policies; i++) {
		const struct sn_policy *sp = &snap->policies[i];
		struct trace_entry *t = ev->want_trace ? &d->trace[i] : NULL;
		const struct sn_exception *e;
		enum trace_condition failed;
		int enforcing = effectively_enforcing(sp, ev->now);

		if (t != NULL) {
			memset(t, 0, sizeof(*t));
			t->policy = sp->name;
			t->enforcing = sp->state != POLICY_OFF && enforcing;
		}
		if (sp->state == POLICY_OFF) {
			if (t != NULL) {
				t->status = TRACE_OFF;
				snprintf(t->detail, sizeof(t->detail), "policy is off");
			}
			continue;
		}
		failed = check_conditions(ev, sp, t ? t->detail : NULL, t ? sizeof(t->detail) : 0);
		if (failed != COND_NONE) {
			if (t != NULL) {
				t->status = TRACE_NOT_APPLIED;
				t->failed = failed;
			}
			continue;
		}
		e = find_exception(ev, i, t);
		if (e != NULL) {
			if (t != NULL) {
				t->status = TRACE_EXCEPTED;
				t->exception_id = e->id;
				snprintf(t->detail, sizeof(t->detail), "excepted by exception %lld",
				         (long long)e->id);
			}
			continue;
		}
		if (t != NULL) {
			t->status = TRACE_APPLIED;
			snprintf(t->detail, sizeof(t->detail), "%s",
			         enforcing ? "applies: blocks"
			                   : "applies: report-only, would block");
		}
		if (enforcing) {
			if (blocker == NULL)
				blocker = sp;
		} else {
			note_report_only(d, sp->name);
		}
	}
	if (blocker != NULL) {
		d->outcome = OUTCOME_BLOCK;
		d->policy = blocker->name;
		sg_strlcpy(d->reply_code, blocker->reply_code, sizeof(d->reply_code));
		sg_strlcpy(d->reply_enh, blocker->reply_enh, sizeof(d->reply_enh));
		format_reply(d->reply_text, sizeof(d->reply_text), blocker->reply_text,
		             ev->mech_upper);
	} else {
		d->outcome = OUTCOME_ALLOW;
	}
}

int engine_decide(const struct snapshot *snap, const struct request *req, time_t now,
                  int want_trace, struct decision *out)
{
	struct eval ev;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (req->mech == NULL || *req->mech == '\0') {
		out->outcome = OUTCOME_NOT_AUTHENTICATED;
		return 0;
	}
	memset(&ev, 0, sizeof(ev));
	ev.snap = snap;
	ev.req = req;
	ev.now = now;
	ev.want_trace = want_trace;
	ev.cands = ev.cands_buf;
	ev.cap_cands = CANDS_INLINE;
	if (normalise(&ev) < 0)
		return -1;
	out->mech_class = ev.cls;
	if (want_trace && snap->n_policies > 0) {
		out->trace = calloc(snap->n_policies, sizeof(*out->trace));
		if (out->trace == NULL) {
			free(ev.user_heap);
			return -1;
		}
		out->n_trace = snap->n_policies;
	}
	find_locations(&ev);
	find_candidates(&ev);
	if (ev.failed)
		rc = -1;
	else
		evaluate(&ev, out);
	if (ev.locs != ev.locs_buf)
		free(ev.locs);
	if (ev.cands != ev.cands_buf)
		free(ev.cands);
	free(ev.user_heap);
	if (rc < 0)
		decision_release(out);
	return rc;
}
