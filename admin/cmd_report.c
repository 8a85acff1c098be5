/*
 * report legacy - the migration worklist: every user who authenticated with a
 * mechanism whose class is not "modern" within the window, from the usage
 * table (user x mechanism x client network: first/last seen, count, last
 * outcome), most active users first.
 *
 * Exception coverage is decided by the real engine, not by a second reading
 * of the exceptions: for each (user, mechanism, network) entry the newest
 * logged submission from that network (client address, TLS, service) is
 * replayed with engine_decide() against the current policy; the usage row
 * keeps that submission's client address, TLS and service. The entry is
 * covered when some policy that applies is skipped because of an active
 * exception (TRACE_EXCEPTED); the coverage expires with the earliest of those
 * exceptions. For a row written before activity.db schema 2, which did not
 * keep them, the network's first address, no TLS and no service are used.
 * "now" is what the engine decides for that replay today.
 *
 * count, first and last seen are the usage table's: since the entry was first
 * seen (the usage table is not pruned); the window selects entries by their
 * last seen.
 *
 * On the fleet's store (--store) an entry sums every host's (see
 * activity_usage_row) and names its hosts: the host of the newest use
 * ("host", LAST HOST) and all of them ("hosts"), per entry and per user.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "activity_query.h"
#include "cidr.h"
#include "engine.h"
#include "json.h"
#include "mech.h"
#include "pattern.h"
#include "report_html.h"
#include "request.h"
#include "shown.h"
#include "snapshot.h"
#include "validate.h"
#include "utf8.h"
#include "worklist.h"

#define REPORT_DEFAULT_SINCE "30d"

enum { OPT_SINCE = 0x100, OPT_USER, OPT_CLASS, OPT_MECH, OPT_FORMAT, OPT_LIMIT };

struct user_row {
	const char *user; /* entries[first].user */
	size_t first, n;  /* entries[first .. first + n) */
	int64_t count, first_seen, last_seen;
	const char *last_outcome;
	const char *host; /* of the newest use: the fleet's store only */
	size_t n_covered;
	int64_t expires; /* earliest expiry among covered entries; 0 none/permanent */
};

struct exc_expiry {
	int64_t id, expires;
};

struct report {
	struct ctl *ctl;
	time_t since;
	int has_pattern;
	struct pattern pattern;
	const char *mech_class, *mech;
	char mech_upper[MECH_NAME_MAX + 1];
	int64_t limit;
	enum aq_format format;
	struct worklist wl;
	struct user_row *users;
	size_t n_users;
	struct exc_expiry *exc;
	size_t n_exc, cap_exc;
	int fleet; /* the fleet's store: entries name their hosts */
};

static int collect_exception(const struct sa_exception *e, void *arg)
{
	struct report *r = arg;

	if (r->n_exc == r->cap_exc) {
		r->cap_exc = r->cap_exc ? r->cap_exc * 2 : 64;
		r->exc = xrealloc(r->exc, r->cap_exc * sizeof(*r->exc));
	}
	r->exc[r->n_exc].id = e->id;
	r->exc[r->n_exc].expires = e->expires_at;
	r->n_exc++;
	return 0;
}

/* Exceptions come by id (store_admin_exception_foreach): binary search. */
static int64_t exception_expiry(const struct report *r, int64_t id)
{
	size_t lo = 0, hi = r->n_exc;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (r->exc[mid].id == id)
			return r->exc[mid].expires;
		if (r->exc[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

/* --user: the user matches the pattern. */
static int keep_user(const char *user, void *arg)
{
	const struct report *r = arg;
	char lower[PATTERN_MAX + 1];

	utf8_fold(lower, user, sizeof(lower));
	return pattern_match(&r->pattern, lower);
}

static int64_t expiry_of(int64_t exception_id, void *arg)
{
	return exception_expiry(arg, exception_id);
}

static int cmp_user(const void *a, const void *b)
{
	const struct user_row *x = a, *y = b;

	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	if (x->last_seen != y->last_seen)
		return x->last_seen > y->last_seen ? -1 : 1;
	return strcmp(x->user, y->user);
}

static void group_users(struct report *r)
{
	worklist_sort(&r->wl);
	r->users = xcalloc(r->wl.n_entries ? r->wl.n_entries : 1, sizeof(*r->users));
	for (size_t i = 0; i < r->wl.n_entries; i++) {
		struct worklist_entry *e = &r->wl.entries[i];
		struct user_row *u;

		if (i == 0 || strcmp(e->user, r->wl.entries[i - 1].user) != 0) {
			u = &r->users[r->n_users++];
			u->first = i;
			u->user = e->user;
			u->first_seen = e->first;
		}
		u = &r->users[r->n_users - 1];
		u->n++;
		u->count += e->count;
		if (e->first < u->first_seen)
			u->first_seen = e->first;
		if (e->last >= u->last_seen) {
			u->last_seen = e->last;
			u->last_outcome = e->last_outcome;
			u->host = e->host;
		}
		if (e->covered) {
			if (u->n_covered == 0 ||
			    (e->expires != 0 && (u->expires == 0 || e->expires < u->expires)))
				u->expires = e->expires;
			u->n_covered++;
		}
	}
	if (r->n_users > 1)
		qsort(r->users, r->n_users, sizeof(*r->users), cmp_user);
	if (r->limit > 0 && (size_t)r->limit < r->n_users)
		r->n_users = (size_t)r->limit;
}

static const char *coverage(const struct user_row *u)
{
	return u->n_covered == 0 ? "none" : u->n_covered == u->n ? "all" : "some";
}

/* Unique values of one entry field for a user, comma-separated, in buf. */
static void distinct(const struct report *r, const struct user_row *u, int mech, char *buf,
                     size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = u->first; i < u->first + u->n; i++) {
		const char *v = mech ? r->wl.entries[i].mech : r->wl.entries[i].network;
		int dup = 0;

		for (size_t k = u->first; k < i && !dup; k++)
			dup =
			    strcmp(v, mech ? r->wl.entries[k].mech : r->wl.entries[k].network) == 0;
		if (dup)
			continue;
		if (sg_snprintf(buf + used, len - used, "%s%s", used ? "," : "", v) < 0)
			return;
		used += strlen(buf + used);
	}
}

static int cmp_text(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Every host of a user's entries, sorted, comma-separated, in buf. */
static void user_hosts(const struct report *r, const struct user_row *u, char *buf, size_t len)
{
	char all[1024], *names[64], *save = NULL;
	size_t n = 0, used = 0;

	all[0] = buf[0] = '\0';
	for (size_t i = u->first; i < u->first + u->n; i++)
		if (r->wl.entries[i].hosts != NULL)
			sg_snprintf(all + strlen(all), sizeof(all) - strlen(all), "%s%s",
			            all[0] ? "," : "", r->wl.entries[i].hosts);
	for (char *h = strtok_r(all, ",", &save); h != NULL && n < 64;
	     h = strtok_r(NULL, ",", &save)) {
		int dup = 0;

		for (size_t k = 0; k < n && !dup; k++)
			dup = strcmp(names[k], h) == 0;
		if (!dup)
			names[n++] = h;
	}
	if (n > 1)
		qsort(names, n, sizeof(*names), cmp_text);
	for (size_t k = 0; k < n; k++) {
		if (sg_snprintf(buf + used, len - used, "%s%s", k ? "," : "", names[k]) < 0)
			return;
		used += strlen(buf + used);
	}
}

/* A comma-separated list as a JSON array. */
static void json_list(struct json *j, const char *key, const char *list)
{
	char item[256];
	const char *cur = list != NULL ? list : "";

	json_key(j, key);
	json_array_begin(j);
	while (list_next(&cur, item, sizeof(item)) > 0)
		json_string(j, item);
	json_array_end(j);
}

static void exception_text(const struct worklist_entry *e, char *buf, size_t len)
{
	char t[32];
	size_t used;

	if (!e->covered) {
		snprintf(buf, len, "-");
		return;
	}
	used = 0;
	for (size_t k = 0; k < e->n_exc && used < len; k++)
		used += (size_t)snprintf(buf + used, len - used, "%s#%lld", k ? "," : "",
		                         (long long)e->exc[k]);
	if (used < len)
		snprintf(buf + used, len - used, " %s%s", e->expires ? "until " : "permanent",
		         e->expires ? ctl_time((time_t)e->expires, "", t, sizeof(t)) : "");
}

static void print_text(const struct report *r)
{
	char t1[32], t2[32], mechs[256], nets[512], exc[128], shown[CTL_SHOWN_MAX], hosts[512];

	printf("non-modern authentication since %s: %zu user%s\n",
	       ctl_time(r->since, "-", t1, sizeof(t1)), r->n_users, r->n_users == 1 ? "" : "s");
	for (size_t i = 0; i < r->n_users; i++) {
		const struct user_row *u = &r->users[i];

		distinct(r, u, 1, mechs, sizeof(mechs));
		distinct(r, u, 0, nets, sizeof(nets));
		printf("\n%s: %lld submission%s, first %s, last %s (%s); exception "
		       "coverage %s",
		       ctl_shown(u->user, shown, sizeof(shown)), (long long)u->count,
		       u->count == 1 ? "" : "s",
		       ctl_time((time_t)u->first_seen, "-", t1, sizeof(t1)),
		       ctl_time((time_t)u->last_seen, "-", t2, sizeof(t2)), u->last_outcome,
		       coverage(u));
		if (u->n_covered)
			printf(" %s%s", u->expires ? "until " : "(permanent)",
			       u->expires ? ctl_time((time_t)u->expires, "", t1, sizeof(t1)) : "");
		printf("\n  mechanisms %s; networks %s", mechs, nets);
		if (r->fleet) {
			user_hosts(r, u, hosts, sizeof(hosts));
			printf("; hosts %s", hosts);
		}
		printf("\n");
		if (r->fleet)
			printf("  %-16s", "LAST HOST");
		printf("  %-11s %-8s %-22s %-10s %8s %-20s %-20s %-17s %-17s %s\n", "MECH", "CLASS",
		       "NETWORK", "SERVICE", "COUNT", "FIRST SEEN", "LAST SEEN", "LAST OUTCOME",
		       "NOW", "EXCEPTION");
		for (size_t k = u->first; k < u->first + u->n; k++) {
			const struct worklist_entry *e = &r->wl.entries[k];

			exception_text(e, exc, sizeof(exc));
			if (r->fleet) {
				fputs("  ", stdout);
				ctl_print_column(stdout, e->host, 16);
			}
			printf("  %-11s %-8s %-22s %-10s %8lld %-20s %-20s %-17s %-17s %s\n",
			       e->mech, e->mech_class, e->network, *e->service ? e->service : "-",
			       (long long)e->count, ctl_time((time_t)e->first, "-", t1, sizeof(t1)),
			       ctl_time((time_t)e->last, "-", t2, sizeof(t2)), e->last_outcome,
			       e->now, exc);
		}
	}
}

static void entry_json(struct json *j, const struct worklist_entry *e)
{
	json_object_begin(j);
	json_kv_string(j, "mech", e->mech);
	json_kv_string(j, "class", e->mech_class);
	json_kv_string(j, "network", e->network);
	if (e->hosts != NULL) {
		json_kv_string(j, "host", e->host);
		json_list(j, "hosts", e->hosts);
	}
	json_kv_string(j, "last_service", *e->service ? e->service : NULL);
	json_kv_int(j, "count", e->count);
	json_kv_time(j, "first_seen", (time_t)e->first);
	json_kv_time(j, "last_seen", (time_t)e->last);
	json_kv_string(j, "last_outcome", e->last_outcome);
	json_kv_string(j, "now", e->now);
	json_kv_string(j, "replayed_client", e->client);
	json_kv_bool(j, "replayed_from_log", e->replayed);
	json_kv_bool(j, "covered", e->covered);
	json_key(j, "exceptions");
	json_array_begin(j);
	for (size_t k = 0; k < e->n_exc; k++)
		json_int(j, e->exc[k]);
	json_array_end(j);
	json_kv_bool(j, "permanent", e->covered && e->expires == 0);
	json_kv_time(j, "expires", e->covered ? (time_t)e->expires : 0);
	json_object_end(j);
}

static void print_json(const struct report *r)
{
	char list[512], hosts[512];
	struct json j;

	json_init(&j, stdout, 1);
	json_object_begin(&j);
	json_kv_time(&j, "since", r->since);
	json_kv_time(&j, "generated", r->ctl->now);
	json_key(&j, "users");
	json_array_begin(&j);
	for (size_t i = 0; i < r->n_users; i++) {
		const struct user_row *u = &r->users[i];

		json_object_begin(&j);
		json_kv_string(&j, "user", u->user);
		json_kv_int(&j, "count", u->count);
		json_kv_time(&j, "first_seen", (time_t)u->first_seen);
		json_kv_time(&j, "last_seen", (time_t)u->last_seen);
		json_kv_string(&j, "last_outcome", u->last_outcome);
		if (r->fleet) {
			json_kv_string(&j, "host", u->host);
			user_hosts(r, u, hosts, sizeof(hosts));
			json_list(&j, "hosts", hosts);
		}
		json_key(&j, "mechanisms");
		json_array_begin(&j);
		distinct(r, u, 1, list, sizeof(list));
		for (const char *cur = list; *cur;) {
			char item[64];

			if (list_next(&cur, item, sizeof(item)) <= 0)
				break;
			json_string(&j, item);
		}
		json_array_end(&j);
		json_key(&j, "networks");
		json_array_begin(&j);
		for (size_t k = u->first; k < u->first + u->n; k++) {
			int dup = 0;

			for (size_t m = u->first; m < k && !dup; m++)
				dup =
				    strcmp(r->wl.entries[m].network, r->wl.entries[k].network) == 0;
			if (!dup)
				json_string(&j, r->wl.entries[k].network);
		}
		json_array_end(&j);
		json_kv_string(&j, "covered", coverage(u));
		json_kv_time(&j, "coverage_expires", u->n_covered ? (time_t)u->expires : 0);
		json_key(&j, "entries");
		json_array_begin(&j);
		for (size_t k = u->first; k < u->first + u->n; k++)
			entry_json(&j, &r->wl.entries[k]);
		json_array_end(&j);
		json_object_end(&j);
	}
	json_array_end(&j);
	json_object_end(&j);
	json_finish(&j);
}

static void print_csv(const struct report *r)
{
	char exc[128];

	fputs("user,user_count,mech,class,network,count,first_seen,last_seen,last_"
	      "outcome,now,"
	      "covered,exceptions,exception_expires",
	      stdout);
	if (r->fleet)
		fputs(",host,hosts", stdout);
	aq_csv_end(stdout);
	for (size_t i = 0; i < r->n_users; i++) {
		const struct user_row *u = &r->users[i];

		for (size_t k = u->first; k < u->first + u->n; k++) {
			const struct worklist_entry *e = &r->wl.entries[k];
			size_t used = 0;

			exc[0] = '\0';
			for (size_t m = 0; m < e->n_exc && used < sizeof(exc); m++)
				used += (size_t)snprintf(exc + used, sizeof(exc) - used, "%s%lld",
				                         m ? " " : "", (long long)e->exc[m]);
			aq_csv_field(stdout, 1, e->user);
			aq_csv_int(stdout, 0, u->count);
			aq_csv_field(stdout, 0, e->mech);
			aq_csv_field(stdout, 0, e->mech_class);
			aq_csv_field(stdout, 0, e->network);
			aq_csv_int(stdout, 0, e->count);
			aq_csv_time(stdout, 0, (time_t)e->first);
			aq_csv_time(stdout, 0, (time_t)e->last);
			aq_csv_field(stdout, 0, e->last_outcome);
			aq_csv_field(stdout, 0, e->now);
			aq_csv_field(stdout, 0, e->covered ? "yes" : "no");
			aq_csv_field(stdout, 0, exc);
			if (e->covered && e->expires == 0)
				aq_csv_field(stdout, 0, "permanent");
			else
				aq_csv_time(stdout, 0, e->covered ? (time_t)e->expires : 0);
			if (r->fleet) {
				aq_csv_field(stdout, 0, e->host);
				aq_csv_field(stdout, 0, e->hosts);
			}
			aq_csv_end(stdout);
		}
	}
}

struct report_take {
	struct report *r;
	int format_given;
};

static int take_report_opt(int c, const char *value, void *arg)
{
	struct report_take *t = arg;
	struct report *r = t->r;
	struct sg_err err = {{0}};
	enum mech_class mc;

	switch (c) {
	case OPT_SINCE:
		return ctl_opt_taken(
		    ctl_parse_time(r->ctl, "--since", value, TIME_PAST, &r->since));
	case OPT_USER:
		if (pattern_parse(value, &r->pattern, &err) < 0)
			return ctl_invalid("--user", "%s", err.text);
		r->has_pattern = 1;
		return CTL_OPT_CONTINUE;
	case OPT_CLASS:
		if (mech_class_parse(value, &mc) < 0 || mc == MECH_CLASS_MODERN)
			return ctl_invalid("--class",
			                   "'%s' is not legacy or password (the "
			                   "report lists non-modern classes only)",
			                   value);
		r->mech_class = mech_class_name(mc);
		return CTL_OPT_CONTINUE;
	case OPT_MECH:
		if (!mech_name_valid(value))
			return ctl_invalid("--mech", "'%s' is not a SASL mechanism name", value);
		sg_upper(r->mech_upper, value, sizeof(r->mech_upper));
		r->mech = r->mech_upper;
		return CTL_OPT_CONTINUE;
	case OPT_FORMAT:
		t->format_given = 1;
		return ctl_opt_taken(aq_parse_format(value, AQ_ALLOW_CSV, &r->format));
	case OPT_LIMIT:
		return ctl_opt_taken(aq_parse_count("--limit", value, 1, &r->limit));
	default:
		return CTL_OPT_NOT_MINE;
	}
}

static int parse(struct report *r, const struct ctl_command *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"since", required_argument, NULL, OPT_SINCE},
	    {"user", required_argument, NULL, OPT_USER},
	    {"class", required_argument, NULL, OPT_CLASS},
	    {"mech", required_argument, NULL, OPT_MECH},
	    {"format", required_argument, NULL, OPT_FORMAT},
	    {"limit", required_argument, NULL, OPT_LIMIT},
	    CTL_OPT_COMMON,
	    {NULL, 0, NULL, 0},
	};
	struct report_take t = {r, 0};
	const struct ctl_opts opts = {":h", longopts, take_report_opt, &t};
	int rc;

	time_parse(REPORT_DEFAULT_SINCE, r->ctl->now, TIME_PAST, &r->since, NULL);
	if ((rc = ctl_parse(r->ctl, cmd, argc, argv, &opts, 0, 0)) != CTL_OPT_CONTINUE)
		return rc;
	r->format = aq_format_of(r->ctl, t.format_given, r->format);
	return CTL_OPT_CONTINUE;
}

static void report_free(struct report *r)
{
	worklist_free(&r->wl);
	free(r->users);
	free(r->exc);
}

static int report_legacy(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	struct report r;
	struct sg_err err = {{0}};
	struct snapshot *snap = NULL;
	struct activity_store *act = NULL;
	struct activity_usage_query q;
	sqlite3 *pol = NULL;
	int rc;

	memset(&r, 0, sizeof(r));
	r.ctl = ctl;
	if ((rc = parse(&r, cmd, argc, argv)) != CTL_OPT_CONTINUE)
		return rc;
	q = (struct activity_usage_query){r.since, r.mech_class, r.mech,
	                                  r.has_pattern ? keep_user : NULL, &r};
	if ((rc = aq_open_activity(ctl, ACTIVITY_STORE_READ, &act)) != CTL_OK)
		return rc;
	if (store_open_readonly(ctl->dir, &pol, &err) < 0) {
		rc = ctl_fail("%s", err.text);
		goto out;
	}
	/* The snapshot and the exception expiries from one read transaction. */
	store_exec(pol, "BEGIN", NULL);
	snap = snapshot_load(pol, &err);
	if (snap != NULL && store_admin_exception_foreach(pol, 0, (int64_t)ctl->now,
	                                                  collect_exception, &r, &err) < 0)
		snapshot_unref(&snap);
	store_exec(pol, "COMMIT", NULL);
	if (snap == NULL) {
		rc = ctl_fail("cannot load the policy: %s", err.text);
		goto out;
	}
	r.fleet = activity_store_fleet(act);
	activity_store_read_begin(act);
	rc = worklist_read(&r.wl, act, &q);
	activity_store_read_end(act);
	if (rc == CTL_OK)
		rc = worklist_replay(&r.wl, snap, ctl->now, expiry_of, &r);
	if (rc != CTL_OK)
		goto out;
	group_users(&r);
	if (r.format == AQ_JSON)
		print_json(&r);
	else if (r.format == AQ_CSV)
		print_csv(&r);
	else
		print_text(&r);
out:
	snapshot_unref(&snap);
	store_close(&pol);
	activity_store_close(&act);
	report_free(&r);
	return rc;
}

const struct ctl_command ctl_report_verbs[] = {
    {"legacy",
     "[--since TIME] [--user PATTERN] [--class legacy|password] [--mech MECH] "
     "[--limit N] "
     "[--format text|json|csv]",
     "users of non-modern mechanisms: the migration worklist", report_legacy, NULL, NULL},
    {"html", "[-o FILE] [--since TIME] [--limit N]",
     "the migration report as one self-contained HTML page", cmd_report_html, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL, NULL},
};
