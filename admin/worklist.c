/*
 * worklist - the usage entries of report legacy and report html (see
 * worklist.h).
 */
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "activity_query.h"
#include "cidr.h"
#include "engine.h"
#include "request.h"
#include "worklist.h"

static int add_entry(const struct activity_usage_row *u, void *arg)
{
	struct worklist *w = arg;
	struct worklist_entry *e;

	if (w->n_entries == w->cap_entries) {
		w->cap_entries = w->cap_entries ? w->cap_entries * 2 : 256;
		w->entries = xrealloc(w->entries, w->cap_entries * sizeof(*w->entries));
	}
	e = &w->entries[w->n_entries++];
	memset(e, 0, sizeof(*e));
	e->user = xstrdup(u->user);
	e->mech = xstrdup(u->mech);
	e->network = xstrdup(u->network);
	e->mech_class = xstrdup(u->mech_class);
	e->first = u->first_seen;
	e->last = u->last_seen;
	e->count = u->count;
	e->last_outcome = xstrdup(u->last_outcome);
	e->host = u->host != NULL ? xstrdup(u->host) : NULL;
	e->hosts = u->hosts != NULL ? xstrdup(u->hosts) : NULL;
	e->replayed = u->last_client != NULL && *u->last_client != '\0';
	if (e->replayed) {
		sg_strlcpy(e->client, u->last_client, sizeof(e->client));
		e->tls = u->last_tls;
		sg_strlcpy(e->service, u->last_service, sizeof(e->service));
	}
	return 0;
}

int worklist_read(struct worklist *w, struct activity_store *as,
                  const struct activity_usage_query *q)
{
	struct sg_err err = {{0}};

	if (activity_store_usage_legacy(as, q, add_entry, w, &err) < 0)
		return aq_store_fail(as, &err);
	return CTL_OK;
}

/* The request the entry stands for (see worklist.h). */
static void replay_request(struct worklist_entry *e, struct request *req)
{
	request_init(req);
	req->user = e->user;
	req->mech = e->mech;
	if (!e->replayed) {
		struct cidr c;

		if (cidr_parse(e->network, &c, NULL) == 0)
			ipaddr_format(&c.net, e->client, sizeof(e->client));
	}
	if (ipaddr_parse(e->client, &req->addr, NULL) == 0)
		req->addr_valid = 1;
	req->client_addr = e->client;
	req->tls = e->tls;
	req->service = *e->service ? e->service : NULL;
}

static void note_trace(struct worklist_entry *e, const struct trace_entry *t,
                       int64_t (*expiry)(int64_t exception_id, void *arg), void *arg)
{
	for (size_t k = 0; k < t->n_expired; k++) {
		int dup = 0;

		for (size_t m = 0; m < e->n_expired && !dup; m++)
			dup = e->expired[m] == t->expired_ids[k];
		if (!dup && e->n_expired < WORKLIST_EXC_MAX)
			e->expired[e->n_expired++] = t->expired_ids[k];
	}
	if (t->status == TRACE_EXCEPTED) {
		int64_t exp = expiry(t->exception_id, arg);

		if (!e->covered || (exp != 0 && (e->expires == 0 || exp < e->expires)))
			e->expires = exp;
		e->covered = 1;
		if (e->n_exc < WORKLIST_EXC_MAX)
			e->exc[e->n_exc++] = t->exception_id;
	}
}

int worklist_replay(struct worklist *w, const struct snapshot *snap, time_t now,
                    int64_t (*expiry)(int64_t exception_id, void *arg), void *arg)
{
	for (size_t i = 0; i < w->n_entries; i++) {
		struct worklist_entry *e = &w->entries[i];
		struct request req;
		struct decision d;

		replay_request(e, &req);
		if (engine_decide(snap, &req, now, 1, &d) < 0)
			return ctl_fail("the engine could not decide (out of memory)");
		e->now = decision_label(&d);
		for (size_t k = 0; k < d.n_trace; k++)
			note_trace(e, &d.trace[k], expiry, arg);
		decision_release(&d);
	}
	return CTL_OK;
}

static int cmp_entry(const void *a, const void *b)
{
	const struct worklist_entry *x = a, *y = b;
	int c = strcmp(x->user, y->user);

	if (c != 0)
		return c;
	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	if (x->last != y->last)
		return x->last > y->last ? -1 : 1;
	c = strcmp(x->mech, y->mech);
	return c ? c : strcmp(x->network, y->network);
}

void worklist_sort(struct worklist *w)
{
	if (w->n_entries > 1)
		qsort(w->entries, w->n_entries, sizeof(*w->entries), cmp_entry);
}

void worklist_free(struct worklist *w)
{
	for (size_t i = 0; i < w->n_entries; i++) {
		struct worklist_entry *e = &w->entries[i];

		free(e->user);
		free(e->mech);
		free(e->network);
		free(e->mech_class);
		free(e->last_outcome);
		free(e->host);
		free(e->hosts);
	}
	free(w->entries);
	memset(w, 0, sizeof(*w));
}
