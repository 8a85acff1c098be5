/*
 * stats - decision counts from the activity log in a window (by outcome,
 * policy, mechanism, class and service), as text, JSON, CSV or the Prometheus text
 * exposition format. The Prometheus output adds what a monitoring system
 * scrapes: per daemon (newest heartbeat per program and host) up, degraded,
 * heartbeat age, generation and the daemons' own counters; the store's policy
 * generation; active exceptions and those expiring within 7 days; and the
 * results Dovecot reported after its logins (auth_results, per daemon).
 *
 * One GROUP BY query over the window; the dimensions are small, so the
 * tallies are plain arrays.
 *
 * On the fleet's store (--store) the counts are the whole fleet's, with a
 * breakdown by host (the host that decided): "by host" in text, "hosts" in
 * JSON, host rows in CSV, and a host label on saslgate_logged_outcomes and
 * saslgate_logged_decisions.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "activity_query.h"
#include "hash.h"
#include "json.h"
#include "mech.h"
#include "shown.h"
#include "validate.h"

#define STATS_DEFAULT_SINCE    "24h"
#define STATS_DEFAULT_STALE    60
#define STATS_EXPIRING_HORIZON ((int64_t)7 * 86400)

enum { OPT_SINCE = 0x100, OPT_UNTIL, OPT_FORMAT, OPT_STALE };

static const char *const outcomes[] = {"block", "allow", "would-block", "not-authenticated"};
#define N_OUTCOMES 4

/* One group of the GROUP BY: everything the outputs need. */
struct combo {
	char outcome[20];
	char mech[MECH_NAME_MAX + 8];
	char mech_class[12];
	char policy[80]; /* blocking policy or "" */
	char report_only[300];
	char service[64];
	char host[256]; /* the fleet's store: the host that decided, else "" */
	int64_t n;
};

/* The fleet's store: one host's decisions by outcome. */
struct host_count {
	char host[256];
	int64_t total, by_outcome[N_OUTCOMES];
};

struct named_count {
	char name[80];
	char extra[12]; /* the class of a mechanism */
	int64_t n[2];   /* [0] total or blocks, [1] would-blocks */
};

struct tally {
	struct named_count *items;
	size_t n, cap;
};

struct stats {
	time_t since, until;
	int64_t total;
	int64_t by_outcome[N_OUTCOMES];
	int64_t by_class[MECH_CLASS_COUNT];
	struct tally policies, mechs, services; /* services: n[0] decisions, n[1] blocks */
	struct combo *combos;
	size_t n_combos;
	int64_t legacy_users;
	struct activity_auth_result *auth; /* Dovecot's reports, daemon totals */
	size_t n_auth;
	int fleet;
	struct host_count *hosts; /* the fleet's store, by host name */
	size_t n_hosts;
};

static struct named_count *tally_get(struct tally *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->items[i].name, name) == 0)
			return &t->items[i];
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		t->items = xrealloc(t->items, t->cap * sizeof(*t->items));
	}
	memset(&t->items[t->n], 0, sizeof(t->items[0]));
	sg_strlcpy(t->items[t->n].name, name, sizeof(t->items[0].name));
	return &t->items[t->n++];
}

static int cmp_named(const void *a, const void *b)
{
	const struct named_count *x = a, *y = b;
	int64_t nx = x->n[0] + x->n[1], ny = y->n[0] + y->n[1];

	if (nx != ny)
		return nx > ny ? -1 : 1;
	return strcmp(x->name, y->name);
}

static void add_combo(struct stats *s, const struct combo *c)
{
	char item[80];
	const char *cur = c->report_only;
	enum mech_class mc;

	s->total += c->n;
	for (int i = 0; i < N_OUTCOMES; i++)
		if (strcmp(c->outcome, outcomes[i]) == 0)
			s->by_outcome[i] += c->n;
	if (c->mech[0]) {
		struct named_count *m = tally_get(&s->mechs, c->mech);

		m->n[0] += c->n;
		sg_strlcpy(m->extra, c->mech_class, sizeof(m->extra));
	}
	if (c->mech_class[0] && mech_class_parse(c->mech_class, &mc) == 0)
		s->by_class[mc] += c->n;
	if (c->policy[0])
		tally_get(&s->policies, c->policy)->n[0] += c->n;
	if (c->service[0] && c->mech[0]) {
		struct named_count *sv = tally_get(&s->services, c->service);

		sv->n[0] += c->n;
		if (strcmp(c->outcome, "block") == 0)
			sv->n[1] += c->n;
	}
	while (list_next(&cur, item, sizeof(item)) > 0)
		tally_get(&s->policies, item)->n[1] += c->n;
}

#define COMBO_BUCKETS 4096 /* power of two; combos beyond it only slow down */

/* The texts that make a combination: outcome, mech, mech_class, policy,
 * report_only, service, host ("" for none). */
#define COMBO_TEXTS 7

static uint64_t combo_hash(const char *const v[COMBO_TEXTS])
{
	uint64_t h = 0;

	for (int col = 0; col < COMBO_TEXTS; col++)
		h = hash_mem(h, v[col], strlen(v[col])); /* the length ends each text */
	return h;
}

static int combo_is(const struct combo *c, const char *const v[COMBO_TEXTS])
{
	return strcmp(c->outcome, v[0]) == 0 && strcmp(c->mech, v[1]) == 0 &&
	       strcmp(c->mech_class, v[2]) == 0 && strcmp(c->policy, v[3]) == 0 &&
	       strcmp(c->report_only, v[4]) == 0 && strcmp(c->service, v[5]) == 0 &&
	       strcmp(c->host, v[6]) == 0;
}

/* The combination of these texts: found in the hash table or added. */
static struct combo *combo_of(struct stats *s, const char *const v[COMBO_TEXTS], size_t *buckets,
                              size_t *cap)
{
	uint64_t h = combo_hash(v);
	size_t slot = h & (COMBO_BUCKETS - 1), probes = 0;
	struct combo *c;

	for (; buckets[slot] != 0 && probes < COMBO_BUCKETS; probes++) {
		c = &s->combos[buckets[slot] - 1];
		if (combo_is(c, v))
			return c;
		slot = (slot + 1) & (COMBO_BUCKETS - 1);
	}
	if (s->n_combos == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		s->combos = xrealloc(s->combos, *cap * sizeof(*s->combos));
	}
	c = &s->combos[s->n_combos++];
	memset(c, 0, sizeof(*c));
	sg_strlcpy(c->outcome, v[0], sizeof(c->outcome));
	sg_strlcpy(c->mech, v[1], sizeof(c->mech));
	sg_strlcpy(c->mech_class, v[2], sizeof(c->mech_class));
	sg_strlcpy(c->policy, v[3], sizeof(c->policy));
	sg_strlcpy(c->report_only, v[4], sizeof(c->report_only));
	sg_strlcpy(c->service, v[5], sizeof(c->service));
	sg_strlcpy(c->host, v[6], sizeof(c->host));
	if (probes < COMBO_BUCKETS)
		buckets[slot] = s->n_combos;
	return c;
}

struct stats_scan {
	struct stats *s;
	size_t *buckets, cap;
};

static const char *text_of(const char *t)
{
	return t != NULL ? t : "";
}

static int stats_batch(struct decision_batch *b, void *arg)
{
	struct stats_scan *x = arg;

	for (size_t i = 0; i < b->n; i++) {
		const struct decision_record *d = &b->d[i];
		const char *v[COMBO_TEXTS] = {text_of(d->outcome),     text_of(d->mech),
		                              text_of(d->mech_class),  text_of(d->policy),
		                              text_of(d->report_only), text_of(d->service),
		                              text_of(d->host)};

		if (d->at >= (int64_t)x->s->since && d->at <= (int64_t)x->s->until)
			combo_of(x->s, v, x->buckets, &x->cap)->n++;
	}
	return 0;
}

static int cmp_host(const void *a, const void *b)
{
	return strcmp(((const struct host_count *)a)->host, ((const struct host_count *)b)->host);
}

/* The fleet's breakdown by host, from the combinations. */
static void count_hosts(struct stats *s)
{
	s->hosts = xcalloc(s->n_combos ? s->n_combos : 1, sizeof(*s->hosts));
	for (size_t i = 0; i < s->n_combos; i++) {
		const struct combo *c = &s->combos[i];
		struct host_count *h = NULL;

		for (size_t k = 0; k < s->n_hosts && h == NULL; k++)
			if (strcmp(s->hosts[k].host, c->host) == 0)
				h = &s->hosts[k];
		if (h == NULL) {
			h = &s->hosts[s->n_hosts++];
			sg_strlcpy(h->host, c->host, sizeof(h->host));
		}
		h->total += c->n;
		for (int o = 0; o < N_OUTCOMES; o++)
			if (strcmp(c->outcome, outcomes[o]) == 0)
				h->by_outcome[o] += c->n;
	}
	if (s->n_hosts > 1)
		qsort(s->hosts, s->n_hosts, sizeof(*s->hosts), cmp_host);
}

/*
 * Counts in C rather than with GROUP BY: SQLite would sort every decision
 * of the window in a temporary b-tree; a scan of the batches plus a hash
 * table of the few distinct combinations takes a fraction of that.
 */
static int stats_query(struct activity_store *as, struct stats *s)
{
	struct stats_scan x = {s, xcalloc(COMBO_BUCKETS, sizeof(size_t)), 0};
	struct sg_err err = {{0}};
	int rc;

	rc = aq_scan(as, s->since, s->until, 0, NULL, stats_batch, &x);
	free(x.buckets);
	if (rc != CTL_OK)
		return rc;
	for (size_t i = 0; i < s->n_combos; i++)
		add_combo(s, &s->combos[i]);
	if (s->fleet)
		count_hosts(s);
	if (s->policies.n > 1)
		qsort(s->policies.items, s->policies.n, sizeof(*s->policies.items), cmp_named);
	if (s->mechs.n > 1)
		qsort(s->mechs.items, s->mechs.n, sizeof(*s->mechs.items), cmp_named);
	if (s->services.n > 1)
		qsort(s->services.items, s->services.n, sizeof(*s->services.items), cmp_named);
	if (activity_store_count_legacy_users(as, s->since, s->until, &s->legacy_users, &err) < 0)
		return aq_store_fail(as, &err);
	return CTL_OK;
}

static void print_text(const struct stats *s)
{
	char t1[32], t2[32];

	printf("decisions from %s to %s: %lld\n", ctl_time(s->since, "the start", t1, sizeof(t1)),
	       ctl_time(s->until, "-", t2, sizeof(t2)), (long long)s->total);
	printf("users of non-modern mechanisms in the window: %lld\n", (long long)s->legacy_users);
	printf("\nby outcome:\n");
	for (int i = 0; i < N_OUTCOMES; i++)
		printf("  %-20s %10lld\n", outcomes[i], (long long)s->by_outcome[i]);
	printf("\nby policy:              %10s %12s\n", "BLOCK", "WOULD-BLOCK");
	for (size_t i = 0; i < s->policies.n; i++)
		printf("  %-20s %10lld %12lld\n", s->policies.items[i].name,
		       (long long)s->policies.items[i].n[0], (long long)s->policies.items[i].n[1]);
	printf("\nby mechanism:\n");
	for (size_t i = 0; i < s->mechs.n; i++)
		printf("  %-20s %-9s %10lld\n", s->mechs.items[i].name, s->mechs.items[i].extra,
		       (long long)s->mechs.items[i].n[0]);
	printf("\nby class:\n");
	for (int c = 0; c < MECH_CLASS_COUNT; c++)
		printf("  %-20s %10lld\n", mech_class_name((enum mech_class)c),
		       (long long)s->by_class[c]);
	printf("\nby service:             %10s %12s\n", "AUTHED", "BLOCK");
	for (size_t i = 0; i < s->services.n; i++)
		printf("  %-20s %10lld %12lld\n", s->services.items[i].name,
		       (long long)s->services.items[i].n[0], (long long)s->services.items[i].n[1]);
	if (s->fleet) {
		printf("\nby host:                %10s %10s %10s %12s %18s\n", "DECISIONS", "BLOCK",
		       "ALLOW", "WOULD-BLOCK", "NOT-AUTHENTICATED");
		for (size_t i = 0; i < s->n_hosts; i++) {
			const struct host_count *h = &s->hosts[i];

			fputs("  ", stdout);
			ctl_print_column(stdout, h->host, 20);
			printf(" %10lld %10lld %10lld %12lld %18lld\n", (long long)h->total,
			       (long long)h->by_outcome[0], (long long)h->by_outcome[1],
			       (long long)h->by_outcome[2], (long long)h->by_outcome[3]);
		}
	}
	if (s->n_auth > 0) {
		printf("\nresults Dovecot reported after authentication (since each daemon "
		       "started):\n");
		for (size_t i = 0; i < s->n_auth; i++)
			printf("  %-10s %s%s%-10s %-9s %-14s %10lld\n", s->auth[i].program,
			       s->fleet ? s->auth[i].host : "", s->fleet ? " " : "",
			       s->auth[i].service, s->auth[i].mech_class, s->auth[i].result,
			       (long long)s->auth[i].count);
	}
}

static void print_json(const struct stats *s)
{
	struct json j;

	json_init(&j, stdout, 1);
	json_object_begin(&j);
	json_kv_time(&j, "since", s->since);
	json_kv_time(&j, "until", s->until);
	json_kv_int(&j, "total", s->total);
	json_kv_int(&j, "legacy_users", s->legacy_users);
	json_key(&j, "outcomes");
	json_object_begin(&j);
	for (int i = 0; i < N_OUTCOMES; i++)
		json_kv_int(&j, outcomes[i], s->by_outcome[i]);
	json_object_end(&j);
	json_key(&j, "policies");
	json_object_begin(&j);
	for (size_t i = 0; i < s->policies.n; i++) {
		json_key(&j, s->policies.items[i].name);
		json_object_begin(&j);
		json_kv_int(&j, "block", s->policies.items[i].n[0]);
		json_kv_int(&j, "would-block", s->policies.items[i].n[1]);
		json_object_end(&j);
	}
	json_object_end(&j);
	json_key(&j, "mechanisms");
	json_object_begin(&j);
	for (size_t i = 0; i < s->mechs.n; i++) {
		json_key(&j, s->mechs.items[i].name);
		json_object_begin(&j);
		json_kv_string(&j, "class", s->mechs.items[i].extra);
		json_kv_int(&j, "count", s->mechs.items[i].n[0]);
		json_object_end(&j);
	}
	json_object_end(&j);
	json_key(&j, "classes");
	json_object_begin(&j);
	for (int c = 0; c < MECH_CLASS_COUNT; c++)
		json_kv_int(&j, mech_class_name((enum mech_class)c), s->by_class[c]);
	json_object_end(&j);
	json_key(&j, "services");
	json_object_begin(&j);
	for (size_t i = 0; i < s->services.n; i++) {
		json_key(&j, s->services.items[i].name);
		json_object_begin(&j);
		json_kv_int(&j, "authenticated", s->services.items[i].n[0]);
		json_kv_int(&j, "block", s->services.items[i].n[1]);
		json_object_end(&j);
	}
	json_object_end(&j);
	if (s->fleet) {
		json_key(&j, "hosts");
		json_object_begin(&j);
		for (size_t i = 0; i < s->n_hosts; i++) {
			json_key(&j, s->hosts[i].host);
			json_object_begin(&j);
			json_kv_int(&j, "total", s->hosts[i].total);
			for (int o = 0; o < N_OUTCOMES; o++)
				json_kv_int(&j, outcomes[o], s->hosts[i].by_outcome[o]);
			json_object_end(&j);
		}
		json_object_end(&j);
	}
	json_key(&j, "auth_results");
	json_array_begin(&j);
	for (size_t i = 0; i < s->n_auth; i++) {
		json_object_begin(&j);
		json_kv_string(&j, "program", s->auth[i].program);
		json_kv_string(&j, "host", s->auth[i].host);
		json_kv_string(&j, "service", s->auth[i].service);
		json_kv_string(&j, "class", s->auth[i].mech_class);
		json_kv_string(&j, "result", s->auth[i].result);
		json_kv_int(&j, "count", s->auth[i].count);
		json_object_end(&j);
	}
	json_array_end(&j);
	json_object_end(&j);
	json_finish(&j);
}

static void csv_row(const char *dim, const char *value, const char *outcome, int64_t n)
{
	aq_csv_field(stdout, 1, dim);
	aq_csv_field(stdout, 0, value);
	aq_csv_field(stdout, 0, outcome);
	aq_csv_int(stdout, 0, n);
	aq_csv_end(stdout);
}

static void print_csv(const struct stats *s)
{
	fputs("dimension,value,outcome,count", stdout);
	aq_csv_end(stdout);
	csv_row("total", "", "", s->total);
	for (int i = 0; i < N_OUTCOMES; i++)
		csv_row("outcome", outcomes[i], outcomes[i], s->by_outcome[i]);
	for (size_t i = 0; i < s->policies.n; i++) {
		csv_row("policy", s->policies.items[i].name, "block", s->policies.items[i].n[0]);
		csv_row("policy", s->policies.items[i].name, "would-block",
		        s->policies.items[i].n[1]);
	}
	for (size_t i = 0; i < s->mechs.n; i++)
		csv_row("mechanism", s->mechs.items[i].name, "", s->mechs.items[i].n[0]);
	for (int c = 0; c < MECH_CLASS_COUNT; c++)
		csv_row("class", mech_class_name((enum mech_class)c), "", s->by_class[c]);
	for (size_t i = 0; i < s->services.n; i++) {
		csv_row("service", s->services.items[i].name, "", s->services.items[i].n[0]);
		csv_row("service", s->services.items[i].name, "block", s->services.items[i].n[1]);
	}
	for (size_t i = 0; i < s->n_hosts; i++) {
		csv_row("host", s->hosts[i].host, "", s->hosts[i].total);
		for (int o = 0; o < N_OUTCOMES; o++)
			csv_row("host", s->hosts[i].host, outcomes[o], s->hosts[i].by_outcome[o]);
	}
}

/* ------------------------------------------------------------ Prometheus */

/* A label value with the exposition format's escapes (\\, \", \n). */
static void prom_value(const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			printf("\\%c", *s);
		else if (*s == '\n')
			printf("\\n");
		else
			putchar(*s);
	}
}

static void prom_head(const char *name, const char *type, const char *help)
{
	printf("# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{k1="v1",k2="v2"} value; labels as NULL-terminated key, value pairs. */
static void prom_sample(const char *name, int64_t value, const char *const *labels)
{
	fputs(name, stdout);
	if (labels && labels[0]) {
		putchar('{');
		for (size_t i = 0; labels[i]; i += 2) {
			printf("%s%s=\"", i ? "," : "", labels[i]);
			prom_value(labels[i + 1]);
			putchar('"');
		}
		putchar('}');
	}
	printf(" %lld\n", (long long)value);
}

/* The newest heartbeat of each program and host (rows come sorted by program,
 * host, started_at): a daemon restarted under a new pid stays one series. */
static int newest_of_daemon(const struct activity_heartbeat *hb, size_t n, size_t i)
{
	return i + 1 == n || strcmp(hb[i + 1].program, hb[i].program) != 0 ||
	       strcmp(hb[i + 1].host, hb[i].host) != 0;
}

struct daemon_metric {
	const char *name, *type, *help;
	int64_t (*get)(const struct activity_heartbeat *h);
};

static int64_t get_up(const struct activity_heartbeat *h)
{
	return h->state == ACTIVITY_RUNNING;
}
static int64_t get_degraded(const struct activity_heartbeat *h)
{
	return h->degraded && !h->stopped;
}
static int64_t get_age(const struct activity_heartbeat *h)
{
	return h->age;
}
static int64_t get_started(const struct activity_heartbeat *h)
{
	return h->started_at;
}
static int64_t get_generation(const struct activity_heartbeat *h)
{
	return h->generation;
}
static int64_t get_requests(const struct activity_heartbeat *h)
{
	return h->requests;
}
static int64_t get_errors(const struct activity_heartbeat *h)
{
	return h->errors;
}
static int64_t get_dropped(const struct activity_heartbeat *h)
{
	return h->dropped;
}
static int64_t get_rebuilds(const struct activity_heartbeat *h)
{
	return h->rebuilds;
}

static const struct daemon_metric daemon_metrics[] = {
    {"saslgate_daemon_up", "gauge",
     "1 if the daemon's newest heartbeat is fresh and it has not stopped", get_up},
    {"saslgate_daemon_degraded", "gauge",
     "1 if the daemon serves its last good policy because policy.db is "
     "unusable",
     get_degraded},
    {"saslgate_daemon_heartbeat_age_seconds", "gauge", "Seconds since the daemon's last heartbeat",
     get_age},
    {"saslgate_daemon_start_time_seconds", "gauge", "When the daemon started (Unix time)",
     get_started},
    {"saslgate_daemon_policy_generation", "gauge", "Policy generation the daemon has loaded",
     get_generation},
    {"saslgate_daemon_requests_total", "counter", "Requests handled since the daemon started",
     get_requests},
    {"saslgate_daemon_errors_total", "counter",
     "Requests answered with the on_error action since the daemon started", get_errors},
    {"saslgate_daemon_dropped_records_total", "counter",
     "Activity records lost (queue full or activity.db unwritable) since start", get_dropped},
    {"saslgate_daemon_policy_rebuilds_total", "counter",
     "Policy snapshots rebuilt since the daemon started", get_rebuilds},
};

static void prom_daemons(const struct activity_heartbeat *hb, size_t n)
{
	for (size_t m = 0; m < sizeof(daemon_metrics) / sizeof(daemon_metrics[0]); m++) {
		const struct daemon_metric *dm = &daemon_metrics[m];

		prom_head(dm->name, dm->type, dm->help);
		for (size_t i = 0; i < n; i++) {
			const char *labels[] = {"program", hb[i].program, "host", hb[i].host, NULL};

			if (newest_of_daemon(hb, n, i))
				prom_sample(dm->name, dm->get(&hb[i]), labels);
		}
	}
	prom_head("saslgate_daemon_decisions_total", "counter",
	          "Decisions since the daemon started, by outcome");
	for (size_t i = 0; i < n; i++) {
		const int64_t v[N_OUTCOMES] = {hb[i].blocks, hb[i].allows, hb[i].would_blocks,
		                               hb[i].not_authenticated};

		if (!newest_of_daemon(hb, n, i))
			continue;
		for (int o = 0; o < N_OUTCOMES; o++) {
			const char *labels[] = {"program", hb[i].program, "host", hb[i].host,
			                        "outcome", outcomes[o],   NULL};

			prom_sample("saslgate_daemon_decisions_total", v[o], labels);
		}
	}
}

static int same_series(const struct combo *a, const struct combo *b)
{
	return strcmp(a->outcome, b->outcome) == 0 && strcmp(a->mech, b->mech) == 0 &&
	       strcmp(a->mech_class, b->mech_class) == 0 && strcmp(a->host, b->host) == 0;
}

static void prom_window(const struct stats *s)
{
	prom_head("saslgate_window_seconds", "gauge",
	          "Length of the window the saslgate_logged_* gauges count");
	prom_sample("saslgate_window_seconds", (int64_t)(s->until - s->since), NULL);
	prom_head("saslgate_logged_outcomes", "gauge",
	          "Decisions in the activity log within the window, by outcome");
	for (int o = 0; o < N_OUTCOMES && !s->fleet; o++) {
		const char *labels[] = {"outcome", outcomes[o], NULL};

		prom_sample("saslgate_logged_outcomes", s->by_outcome[o], labels);
	}
	for (size_t i = 0; i < s->n_hosts; i++)
		for (int o = 0; o < N_OUTCOMES; o++) {
			const char *labels[] = {"host", s->hosts[i].host, "outcome", outcomes[o],
			                        NULL};

			prom_sample("saslgate_logged_outcomes", s->hosts[i].by_outcome[o], labels);
		}
	prom_head("saslgate_logged_decisions", "gauge",
	          "Authenticated decisions in the activity log within the window, by "
	          "outcome, "
	          "class and mechanism");
	for (size_t i = 0; i < s->n_combos; i++) {
		const struct combo *c = &s->combos[i];
		const char *labels[] = {"outcome",
		                        c->outcome,
		                        "class",
		                        c->mech_class,
		                        "mech",
		                        c->mech,
		                        s->fleet ? "host" : NULL,
		                        c->host,
		                        NULL};
		int64_t sum = 0;
		int seen = 0;

		if (!c->mech[0])
			continue;
		for (size_t k = 0; k < s->n_combos && !seen; k++)
			if (same_series(c, &s->combos[k]))
				seen = k < i;
		if (seen)
			continue;
		for (size_t k = i; k < s->n_combos; k++)
			if (same_series(c, &s->combos[k]))
				sum += s->combos[k].n;
		prom_sample("saslgate_logged_decisions", sum, labels);
	}
	prom_head("saslgate_logged_policy_hits", "gauge",
	          "Decisions in the window a policy blocked (outcome block) or would have "
	          "blocked (report-only)");
	for (size_t i = 0; i < s->policies.n; i++) {
		const char *lb[] = {"policy", s->policies.items[i].name, "outcome", "block", NULL};
		const char *lw[] = {"policy", s->policies.items[i].name, "outcome", "would-block",
		                    NULL};

		prom_sample("saslgate_logged_policy_hits", s->policies.items[i].n[0], lb);
		prom_sample("saslgate_logged_policy_hits", s->policies.items[i].n[1], lw);
	}
	prom_head("saslgate_logged_service_decisions", "gauge",
	          "Authenticated decisions in the window by service (smtp, imap, pop3, ...), "
	          "all and blocked");
	for (size_t i = 0; i < s->services.n; i++) {
		const char *la[] = {"service", s->services.items[i].name, "outcome", "any", NULL};
		const char *lb[] = {"service", s->services.items[i].name, "outcome", "block", NULL};

		prom_sample("saslgate_logged_service_decisions", s->services.items[i].n[0], la);
		prom_sample("saslgate_logged_service_decisions", s->services.items[i].n[1], lb);
	}
	prom_head("saslgate_legacy_users", "gauge",
	          "Users seen with a non-modern mechanism within the window");
	prom_sample("saslgate_legacy_users", s->legacy_users, NULL);
}

static void print_prometheus(const struct ctl *ctl, const struct stats *s,
                             const struct activity_heartbeat *hb, size_t n_hb)
{
	struct aq_policy_facts f;

	aq_policy_facts(ctl, STATS_EXPIRING_HORIZON, &f);
	prom_window(s);
	prom_daemons(hb, n_hb);
	prom_head("saslgate_daemon_auth_results_total", "counter",
	          "Results Dovecot reported after authentication, since the daemon started");
	for (size_t i = 0; i < s->n_auth; i++) {
		const struct activity_auth_result *a = &s->auth[i];
		const char *labels[] = {"program", a->program, "host",  a->host,
		                        "service", a->service, "class", a->mech_class,
		                        "result",  a->result,  NULL};

		prom_sample("saslgate_daemon_auth_results_total", a->count, labels);
	}
	prom_head("saslgate_policy_store_ok", "gauge", "1 if policy.db is readable");
	prom_sample("saslgate_policy_store_ok", f.ok, NULL);
	if (f.ok) {
		prom_head("saslgate_policy_generation", "gauge",
		          "Policy generation committed in policy.db");
		prom_sample("saslgate_policy_generation", f.generation, NULL);
		prom_head("saslgate_exceptions_active", "gauge",
		          "Exceptions that have not expired");
		prom_sample("saslgate_exceptions_active", f.exceptions_active, NULL);
		prom_head("saslgate_exceptions_expiring_7d", "gauge",
		          "Active exceptions that expire within 7 days");
		prom_sample("saslgate_exceptions_expiring_7d", f.exceptions_expiring, NULL);
	}
	prom_head("saslgate_stats_timestamp_seconds", "gauge",
	          "When saslgatectl stats wrote these metrics (Unix time)");
	prom_sample("saslgate_stats_timestamp_seconds", (int64_t)ctl->now, NULL);
}

/* The command line of stats. */
struct stats_opts {
	const struct ctl *ctl;
	struct stats *s;
	enum aq_format format;
	int format_given;
	int64_t stale;
};

static int take_stats_opt(int c, const char *value, void *arg)
{
	struct stats_opts *o = arg;

	switch (c) {
	case OPT_SINCE:
		return ctl_opt_taken(
		    ctl_parse_time(o->ctl, "--since", value, TIME_PAST, &o->s->since));
	case OPT_UNTIL:
		return ctl_opt_taken(
		    ctl_parse_time(o->ctl, "--until", value, TIME_PAST, &o->s->until));
	case OPT_FORMAT:
		o->format_given = 1;
		return ctl_opt_taken(
		    aq_parse_format(value, AQ_ALLOW_CSV | AQ_ALLOW_PROMETHEUS, &o->format));
	case OPT_STALE:
		return ctl_opt_taken(aq_parse_count("--stale", value, 0, &o->stale));
	default:
		return CTL_OPT_NOT_MINE;
	}
}

static int stats_parse(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv,
                       struct stats_opts *o)
{
	static const struct option longopts[] = {
	    {"since", required_argument, NULL, OPT_SINCE},
	    {"until", required_argument, NULL, OPT_UNTIL},
	    {"format", required_argument, NULL, OPT_FORMAT},
	    {"stale", required_argument, NULL, OPT_STALE},
	    CTL_OPT_COMMON,
	    {NULL, 0, NULL, 0},
	};
	const struct ctl_opts opts = {":h", longopts, take_stats_opt, o};
	int rc;

	o->s->until = ctl->now;
	time_parse(STATS_DEFAULT_SINCE, ctl->now, TIME_PAST, &o->s->since, NULL);
	if ((rc = ctl_parse(ctl, cmd, argc, argv, &opts, 0, 0)) != CTL_OPT_CONTINUE)
		return rc;
	if (o->s->until < o->s->since)
		return ctl_invalid("--until", "is before --since");
	o->format = aq_format_of(ctl, o->format_given, o->format);
	return CTL_OPT_CONTINUE;
}

int cmd_stats(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	struct stats s;
	struct activity_heartbeat *hb = NULL;
	size_t n_hb = 0;
	struct stats_opts o = {ctl, &s, AQ_TEXT, 0, STATS_DEFAULT_STALE};
	int rc;
	struct activity_store *as;
	struct sg_err err = {{0}};

	memset(&s, 0, sizeof(s));
	if ((rc = stats_parse(ctl, cmd, argc, argv, &o)) != CTL_OPT_CONTINUE)
		return rc;
	if ((rc = aq_open_activity(ctl, ACTIVITY_STORE_READ, &as)) != CTL_OK)
		return rc;
	s.fleet = activity_store_fleet(as);
	/* One read transaction: the counts agree with each other. */
	activity_store_read_begin(as);
	rc = stats_query(as, &s);
	if (rc == CTL_OK && activity_store_auth_results(as, &s.auth, &s.n_auth, &err) < 0)
		rc = ctl_fail("%s: auth_results: %s", activity_store_name(as), err.text);
	if (rc == CTL_OK && o.format == AQ_PROMETHEUS &&
	    activity_store_heartbeats(as, ctl->now, o.stale, &hb, &n_hb, &err) < 0)
		rc = ctl_fail("%s: heartbeats: %s", activity_store_name(as), err.text);
	activity_store_read_end(as);
	activity_store_close(&as);
	if (rc == CTL_OK) {
		switch (o.format) {
		case AQ_TEXT:
			print_text(&s);
			break;
		case AQ_JSON:
			print_json(&s);
			break;
		case AQ_CSV:
			print_csv(&s);
			break;
		case AQ_PROMETHEUS:
			print_prometheus(ctl, &s, hb, n_hb);
			break;
		}
	}
	free(hb);
	free(s.combos);
	free(s.policies.items);
	free(s.mechs.items);
	free(s.services.items);
	free(s.auth);
	free(s.hosts);
	return rc;
}
