/*
 * report_html_data - what saslgatectl report html shows, gathered from
 * policy.db and activity.db (see report_html.h).
 *
 * policy.db gives, in one read transaction, the snapshot (for the replay),
 * every exception (expired ones too: the page lists those still hit) and the
 * report-only policies. activity.db gives, in one read transaction, the
 * usage table (worklist, users moved to modern) and the decision log of the
 * period, read once with aq_scan() for every chart and tally: like stats, the
 * counting is done in C over the batches, never with a GROUP BY over the log.
 */
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "activity_query.h"
#include "cidr.h"
#include "engine.h"
#include "hash.h"
#include "report_html.h"
#include "request.h"
#include "snapshot.h"

#define DAY  ((int64_t)86400)
#define WEEK (7 * DAY)

static char *dup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

/* ---------------------------------------------------------------- policy.db */

static int collect_exception(const struct sa_exception *e, void *arg)
{
	struct rh_page *pg = arg;
	struct rh_exception *x;

	if (pg->n_exc == pg->cap_exc) {
		pg->cap_exc = pg->cap_exc ? pg->cap_exc * 2 : 64;
		pg->exc = xrealloc(pg->exc, pg->cap_exc * sizeof(*pg->exc));
	}
	x = &pg->exc[pg->n_exc++];
	memset(x, 0, sizeof(*x));
	x->id = e->id;
	x->created_at = e->created_at;
	x->expires_at = e->expires_at;
	x->policy = dup_or_null(e->policy);
	x->user_pattern = dup_or_null(e->user_pattern);
	x->group_name = dup_or_null(e->group_name);
	x->location = dup_or_null(e->location);
	x->mechs = dup_or_null(e->mechs);
	x->reason = dup_or_null(e->reason);
	x->created_by = dup_or_null(e->created_by);
	return 0;
}

/* Report-only now: state report-only without a date, or any state but off
 * before its enforce_from (the engine's effective state). */
static int collect_policy(const struct sa_policy *p, void *arg)
{
	struct rh_page *pg = arg;
	struct rh_policy *rp;

	if (strcmp(p->state, "off") == 0)
		return 0;
	if (p->enforce_from != 0 ? p->enforce_from <= (int64_t)pg->now
	                         : strcmp(p->state, "report-only") != 0)
		return 0;
	pg->policies = xrealloc(pg->policies, (pg->n_policies + 1) * sizeof(*pg->policies));
	rp = &pg->policies[pg->n_policies++];
	memset(rp, 0, sizeof(*rp));
	rp->name = xstrdup(p->name);
	rp->enforce_from = p->enforce_from;
	return 0;
}

static int load_policy(struct ctl *ctl, struct rh_page *pg, struct snapshot **snap)
{
	struct sg_err err = {{0}};
	sqlite3 *pol = NULL;

	if (store_open_readonly(ctl->dir, &pol, &err) < 0)
		return ctl_fail("%s", err.text);
	store_exec(pol, "BEGIN", NULL);
	*snap = snapshot_load(pol, &err);
	if (*snap != NULL && (store_admin_exception_foreach(pol, 1, (int64_t)ctl->now,
	                                                    collect_exception, pg, &err) < 0 ||
	                      store_admin_policy_foreach(pol, collect_policy, pg, &err) < 0))
		snapshot_unref(snap);
	store_exec(pol, "COMMIT", NULL);
	store_close(&pol);
	if (*snap == NULL)
		return ctl_fail("cannot load the policy: %s", err.text);
	return CTL_OK;
}

static struct rh_exception *exception_find(struct rh_exception *exc, size_t n, int64_t id)
{
	size_t lo = 0, hi = n;

	while (lo < hi) { /* by id: store_admin_exception_foreach's order */
		size_t mid = (lo + hi) / 2;

		if (exc[mid].id == id)
			return &exc[mid];
		if (exc[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

const struct rh_exception *rh_exception_get(const struct rh_page *pg, int64_t id)
{
	return exception_find(pg->exc, pg->n_exc, id);
}

/* ---------------------------------------------------------------- worklist */

static int64_t expiry_of(int64_t exception_id, void *arg)
{
	const struct rh_exception *x = rh_exception_get(arg, exception_id);

	return x != NULL ? x->expires_at : 0;
}

static int cmp_user(const void *a, const void *b)
{
	const struct rh_user *x = a, *y = b;

	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	if (x->last_seen != y->last_seen)
		return x->last_seen > y->last_seen ? -1 : 1;
	return strcmp(x->user, y->user);
}

static void add_to_user(struct rh_user *u, const struct worklist_entry *e)
{
	u->n++;
	u->count += e->count;
	if (e->first < u->first_seen)
		u->first_seen = e->first;
	if (e->last > u->last_seen)
		u->last_seen = e->last;
	if (e->covered) {
		if (u->n_covered == 0 ||
		    (e->expires != 0 && (u->expires == 0 || e->expires < u->expires)))
			u->expires = e->expires;
		u->n_covered++;
	}
}

/* Counts, for each expired exception an entry matches, the users seen after
 * its expiry. */
static void note_expired_hits(struct rh_page *pg, size_t user_index, const struct worklist_entry *e)
{
	for (size_t k = 0; k < e->n_expired; k++) {
		struct rh_exception *x = exception_find(pg->exc, pg->n_exc, e->expired[k]);

		if (x == NULL || x->expires_at == 0 || e->last < x->expires_at)
			continue;
		if (x->last_hit_user != user_index + 1) {
			x->hit_users++;
			x->last_hit_user = user_index + 1;
		}
		if (e->last > x->last_hit)
			x->last_hit = e->last;
	}
}

static void group_users(struct rh_page *pg)
{
	int legacy = 0;

	worklist_sort(&pg->wl);
	pg->users = xcalloc(pg->wl.n_entries ? pg->wl.n_entries : 1, sizeof(*pg->users));
	for (size_t i = 0; i < pg->wl.n_entries; i++) {
		const struct worklist_entry *e = &pg->wl.entries[i];
		struct rh_user *u;

		if (i == 0 || strcmp(e->user, pg->wl.entries[i - 1].user) != 0) {
			u = &pg->users[pg->n_users++];
			u->first = i;
			u->user = e->user;
			u->first_seen = e->first;
			legacy = 0;
		}
		u = &pg->users[pg->n_users - 1];
		add_to_user(u, e);
		note_expired_hits(pg, pg->n_users - 1, e);
		if (!legacy && strcmp(e->mech_class, "legacy") == 0) {
			legacy = 1;
			pg->n_legacy_users++;
		}
	}
	for (size_t i = 0; i < pg->n_users; i++)
		if (pg->users[i].n_covered == 0)
			pg->n_uncovered++;
	if (pg->n_users > 1)
		qsort(pg->users, pg->n_users, sizeof(*pg->users), cmp_user);
}

static int add_moved(const char *user, void *arg)
{
	struct rh_page *pg = arg;

	if (pg->n_moved < RH_MOVED_SHOWN) {
		pg->moved = xrealloc(pg->moved, (pg->n_moved + 1) * sizeof(*pg->moved));
		pg->moved[pg->n_moved++] = xstrdup(user);
	}
	pg->n_moved_total++;
	return 0;
}

/* The users who moved to a modern mechanism in the period. */
static int read_moved(struct rh_page *pg, struct activity_store *as)
{
	struct sg_err err = {{0}};

	if (activity_store_usage_moved(as, pg->since, add_moved, pg, &err) < 0)
		return aq_store_fail(as, &err);
	return CTL_OK;
}

/* ---------------------------------------------------------------- the log */

struct scan {
	struct rh_page *pg;
	size_t last_service; /* the slot the previous decision used */
	struct hash **users; /* per report-only policy: the users it applied to */
};

static size_t service_slot(struct scan *sc, const char *service)
{
	struct rh_page *pg = sc->pg;

	if (service == NULL)
		service = "";
	if (sc->last_service < pg->n_services &&
	    strcmp(pg->services[sc->last_service], service) == 0)
		return sc->last_service;
	for (size_t i = 0; i < pg->n_services; i++)
		if (strcmp(pg->services[i], service) == 0)
			return sc->last_service = i;
	if (pg->n_services == RH_SERVICE_SLOTS)
		return RH_SERVICE_SLOTS;
	pg->services[pg->n_services] = xstrdup(service);
	return sc->last_service = pg->n_services++;
}

static void tally_report_only(struct scan *sc, const struct decision_record *d)
{
	const char *cur = d->report_only;
	char item[128];

	while (list_next(&cur, item, sizeof(item)) > 0) {
		for (size_t i = 0; i < sc->pg->n_policies; i++) {
			struct rh_policy *p = &sc->pg->policies[i];

			if (strcmp(p->name, item) != 0)
				continue;
			p->would_refuse++;
			if (d->outcome != NULL && strcmp(d->outcome, "would-block") == 0)
				p->would_refuse_allowed++;
			if (d->user != NULL)
				hash_slot(sc->users[i], d->user);
		}
	}
}

static int class_of(const char *text)
{
	if (text == NULL)
		return -1;
	if (strcmp(text, "legacy") == 0)
		return MECH_CLASS_LEGACY;
	if (strcmp(text, "password") == 0)
		return MECH_CLASS_PASSWORD;
	if (strcmp(text, "modern") == 0)
		return MECH_CLASS_MODERN;
	return -1;
}

static int scan_batch(struct decision_batch *b, void *arg)
{
	struct scan *sc = arg;
	struct rh_page *pg = sc->pg;
	int64_t week_start = (int64_t)pg->now - WEEK;

	for (size_t i = 0; i < b->n; i++) {
		const struct decision_record *d = &b->d[i];
		int mc = class_of(d->mech_class);
		size_t bucket;

		if (d->at < (int64_t)pg->since || d->at > (int64_t)pg->now || mc < 0 ||
		    (d->outcome != NULL && strcmp(d->outcome, "not-authenticated") == 0))
			continue;
		bucket = (size_t)((d->at - (int64_t)pg->start) / pg->width);
		if (bucket >= pg->n_buckets)
			bucket = pg->n_buckets - 1;
		pg->by_class[bucket * MECH_CLASS_COUNT + (size_t)mc]++;
		pg->by_service[bucket * (RH_SERVICE_SLOTS + 1) + service_slot(sc, d->service)]++;
		pg->total_class[mc]++;
		if (d->at >= week_start)
			pg->week_class[mc]++;
		else
			pg->before_class[mc]++;
		if (d->report_only != NULL && *d->report_only && pg->n_policies > 0)
			tally_report_only(sc, d);
	}
	return 0;
}

/* Day buckets from the UTC midnight before since; week buckets for long
 * periods. */
static void set_buckets(struct rh_page *pg)
{
	int64_t since = (int64_t)pg->since, now = (int64_t)pg->now;
	int64_t start = since - ((since % DAY) + DAY) % DAY;

	pg->width = DAY;
	if ((now - start) / DAY + 1 > RH_DAILY_MAX)
		pg->width = WEEK;
	pg->start = (time_t)start;
	pg->n_buckets = now >= start ? (size_t)((now - start) / pg->width) + 1 : 1;
	pg->by_class = xcalloc(pg->n_buckets * MECH_CLASS_COUNT, sizeof(int64_t));
	pg->by_service = xcalloc(pg->n_buckets * (RH_SERVICE_SLOTS + 1), sizeof(int64_t));
}

static int scan_log(struct rh_page *pg, struct activity_store *as)
{
	struct scan sc = {pg, 0, NULL};
	int rc;

	set_buckets(pg);
	sc.users = xcalloc(pg->n_policies ? pg->n_policies : 1, sizeof(*sc.users));
	for (size_t i = 0; i < pg->n_policies; i++)
		sc.users[i] = hash_create(0);
	rc = aq_scan(as, pg->since, pg->now, 0, NULL, scan_batch, &sc);
	for (size_t i = 0; i < pg->n_policies; i++) {
		pg->policies[i].users = (int64_t)hash_count(sc.users[i]);
		hash_free(&sc.users[i], NULL);
	}
	free(sc.users);
	pg->services[RH_SERVICE_SLOTS] = xstrdup("other");
	return rc;
}

/* ---------------------------------------------------------------- entry */

int rh_collect(struct ctl *ctl, time_t since, struct rh_page *pg)
{
	struct snapshot *snap = NULL;
	struct activity_store *act = NULL;
	struct activity_usage_query q = {since, NULL, NULL, NULL, NULL};
	int rc;

	memset(pg, 0, sizeof(*pg));
	pg->now = ctl->now;
	pg->since = since;
	pg->dir = ctl->dir;
	if ((rc = aq_open_activity(ctl, ACTIVITY_STORE_READ, &act)) != CTL_OK)
		return rc;
	pg->fleet = activity_store_fleet(act);
	if (pg->fleet && ctl->store_label != NULL)
		pg->dir = ctl->store_label; /* ctl->dir is the pulled copy's */
	if ((rc = load_policy(ctl, pg, &snap)) != CTL_OK)
		goto out;
	activity_store_read_begin(act);
	if ((rc = worklist_read(&pg->wl, act, &q)) == CTL_OK &&
	    (rc = worklist_replay(&pg->wl, snap, pg->now, expiry_of, pg)) == CTL_OK &&
	    (rc = read_moved(pg, act)) == CTL_OK)
		rc = scan_log(pg, act);
	activity_store_read_end(act);
	if (rc == CTL_OK)
		group_users(pg);
out:
	snapshot_unref(&snap);
	activity_store_close(&act);
	return rc;
}

static void free_exception(struct rh_exception *x)
{
	free(x->policy);
	free(x->user_pattern);
	free(x->group_name);
	free(x->location);
	free(x->mechs);
	free(x->reason);
	free(x->created_by);
}

void rh_free(struct rh_page *pg)
{
	worklist_free(&pg->wl);
	free(pg->users);
	for (size_t i = 0; i <= RH_SERVICE_SLOTS; i++)
		free(pg->services[i]);
	free(pg->by_class);
	free(pg->by_service);
	for (size_t i = 0; i < pg->n_moved; i++)
		free(pg->moved[i]);
	free(pg->moved);
	for (size_t i = 0; i < pg->n_policies; i++)
		free(pg->policies[i].name);
	free(pg->policies);
	for (size_t i = 0; i < pg->n_exc; i++)
		free_exception(&pg->exc[i]);
	free(pg->exc);
	memset(pg, 0, sizeof(*pg));
}
