/*
 * report html - the migration report as one self-contained HTML page (see
 * report_html.h for what it shows and where the numbers come from).
 *
 * The page needs nothing but itself: the CSS is inline, the charts are SVG
 * drawn here (html.c), there is no script, and a Content-Security-Policy of
 * default-src 'none' keeps a browser from fetching anything even if a value
 * slipped through unescaped (none should: every text from the store goes
 * through html_text()). It reads on a phone (the tables become cards, the
 * charts scroll sideways) and prints (@media print).
 *
 * Numbers are also written as data-* attributes (plain digits, ISO times),
 * so that tests and scripts can read the page back.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "activity_query.h"
#include "html.h"
#include "report_html.h"
#include "validate.h"

#define DAY ((int64_t)86400)

enum { OPT_SINCE = 0x100, OPT_LIMIT };

static const char *const class_colors[MECH_CLASS_COUNT] = {"#c0392b", "#e08e0b", "#1e8449"};
static const char *const service_colors[RH_SERVICES_SHOWN + 1] = {
    "#2e86c1", "#8e44ad", "#16a085", "#d35400", "#2c3e50", "#b7950b", "#aab2bd"};

static const char css[] =
    ":root{--legacy:#c0392b;--password:#e08e0b;--modern:#1e8449}"
    "*{box-sizing:border-box}"
    "body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;"
    "color:#1b1f23;background:#f4f5f7;margin:0}"
    "main{max-width:1120px;margin:0 auto;padding:12px}"
    "h1{font-size:1.45em;margin:.3em 0}h2{font-size:1.12em;margin:.2em 0 .6em}"
    "p{margin:.4em 0}.meta,.note{color:#57606a;font-size:.9em}"
    "section{background:#fff;border:1px solid #d8dde3;border-radius:8px;"
    "padding:12px 16px;margin:12px 0}"
    ".kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(160px,1fr));gap:10px}"
    ".kpi{border:1px solid #d8dde3;border-radius:8px;padding:10px 12px}"
    ".kpi .label{font-size:.9em;color:#57606a}"
    ".kpi .num{display:block;font-size:2em;font-weight:650;line-height:1.2}"
    ".kpi .sub{font-size:.88em;color:#57606a}"
    ".up{color:var(--legacy)}.down{color:var(--modern)}"
    ".chart-box{overflow-x:auto}"
    "svg.chart{display:block;width:100%;max-width:780px;min-width:520px;height:auto;"
    "font-family:inherit}"
    "svg.chart text{fill:#24292f}svg .grid{stroke:#e4e7eb}svg .axis{stroke:#6e7781}"
    ".table-box{overflow-x:auto}"
    "table{border-collapse:collapse;width:100%;font-size:.9em}"
    "th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e4e7eb;vertical-align:top}"
    "th{background:#f0f2f5;font-weight:600}td.n,th.n{text-align:right;"
    "font-variant-numeric:tabular-nums}"
    "td.user{font-weight:600;overflow-wrap:break-word;min-width:8em}time "
    "span,.tag{white-space:nowrap}"
    ".tag{display:inline-block;padding:0 5px;margin:0 3px 2px 0;border-radius:4px;"
    "font-size:.85em;border:1px solid currentColor}"
    ".c-legacy{color:var(--legacy)}.c-password{color:#9a6107}.c-modern{color:var(--modern)}"
    ".cov-none{color:var(--legacy);font-weight:600}.muted{color:#6e7781}"
    "ul.exc{margin:0;padding-left:1.1em}"
    "@media (max-width:640px){main{padding:6px}section{padding:10px}"
    "table.cards thead{display:none}"
    "table.cards tr{display:block;border:1px solid #d8dde3;border-radius:6px;"
    "margin:8px 0;padding:4px 8px}"
    "table.cards td{display:block;border:0;padding:2px 0;text-align:left}"
    "table.cards td::before{content:attr(data-label) ': ';font-weight:600;color:#57606a}}"
    "@media print{body{background:#fff;font-size:10pt}main{max-width:none;padding:0}"
    "section{border:0;padding:0;margin:10px 0}section.chart-section{break-inside:avoid}"
    ".chart-box,.table-box{overflow:visible}svg.chart{min-width:0}"
    "tr{break-inside:avoid}thead{display:table-header-group}}";

struct opts {
	time_t since;
	const char *output;
	int64_t limit;
};

/* ---------------------------------------------------------------- helpers */

/* <time datetime="ISO">YYYY-MM-DD HH:MM</time>, or "-" for 0. */
static void write_time(FILE *out, int64_t t)
{
	char iso[32];

	if (t == 0) {
		fputs("-", out);
		return;
	}
	ctl_time((time_t)t, "-", iso, sizeof(iso));
	fprintf(out, "<time datetime=\"%s\"><span>%.10s</span> <span>%.5s</span></time>", iso, iso,
	        iso + 11);
}

static void write_date_key(int64_t t, char *buf, size_t len)
{
	char iso[32];

	ctl_time((time_t)t, "-", iso, sizeof(iso));
	snprintf(buf, len, "%.10s", iso);
}

/* A CSS class suffix for a class text of the store (never the text itself). */
static const char *class_css(const char *cls)
{
	if (strcmp(cls, "password") == 0)
		return "password";
	if (strcmp(cls, "modern") == 0)
		return "modern";
	return "legacy";
}

static const char *service_name(const char *s)
{
	return s != NULL && *s ? s : "(none)";
}

/* ---------------------------------------------------------------- head */

static void write_head(FILE *out, const struct rh_page *pg)
{
	char since[32], now[32];

	ctl_time(pg->since, "-", since, sizeof(since));
	ctl_time(pg->now, "-", now, sizeof(now));
	fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
	      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
	      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
	      "style-src 'unsafe-inline'\">\n"
	      "<meta name=\"referrer\" content=\"no-referrer\">\n",
	      out);
	fprintf(out, "<title>saslgate: legacy authentication, %.10s to %.10s</title>\n", since,
	        now);
	fprintf(out, "<style>%s</style>\n</head>\n<body>\n<main>\n", css);
	fprintf(out,
	        "<header><h1>Legacy authentication: migration report</h1>\n"
	        "<p class=\"meta\" id=\"period\" data-since=\"%s\" data-generated=\"%s\">"
	        "Period %.10s %.5s to %.10s %.5s UTC. Generated by saslgatectl %s from ",
	        since, now, since, since + 11, now, now + 11, SASLGATE_VERSION);
	html_text(out, pg->dir);
	fputs(".</p></header>\n", out);
}

/* ---------------------------------------------------------------- headline */

static int64_t sum_classes(const int64_t *v)
{
	return v[MECH_CLASS_LEGACY] + v[MECH_CLASS_PASSWORD] + v[MECH_CLASS_MODERN];
}

static void write_share_kpi(FILE *out, const struct rh_page *pg)
{
	int64_t wk = sum_classes(pg->week_class), bf = sum_classes(pg->before_class);
	int64_t wl = pg->week_class[MECH_CLASS_LEGACY], bl = pg->before_class[MECH_CLASS_LEGACY];
	char a[32], b[32], n1[32], n2[32];

	fprintf(out,
	        "<div class=\"kpi\" id=\"kpi-share\" data-week-legacy=\"%" PRId64
	        "\" data-week-total=\"%" PRId64 "\" data-before-legacy=\"%" PRId64
	        "\" data-before-total=\"%" PRId64 "\">"
	        "<span class=\"label\">Legacy share, last 7 days</span>"
	        "<span class=\"num\">%s</span><span class=\"sub\">",
	        wl, wk, bl, bf, html_percent(wl, wk, a, sizeof(a)));
	if (bf > 0 && wk > 0) {
		double d = 100.0 * (double)wl / (double)wk - 100.0 * (double)bl / (double)bf;

		fprintf(out,
		        "<span class=\"%s\">%+.1f points</span> against %s in the weeks before; ",
		        d > 0.05    ? "up"
		        : d < -0.05 ? "down"
		                    : "same",
		        d, html_percent(bl, bf, b, sizeof(b)));
	} else {
		fputs("no earlier weeks in the period to compare with; ", out);
	}
	fprintf(out, "%s of %s authenticated submissions</span></div>\n",
	        html_count(wl, n1, sizeof(n1)), html_count(wk, n2, sizeof(n2)));
}

static void write_headline(FILE *out, const struct rh_page *pg)
{
	char n[32], e1[32], e2[32];
	size_t expiring = 0, still_hit = 0;

	for (size_t i = 0; i < pg->n_exc; i++) {
		const struct rh_exception *x = &pg->exc[i];

		if (x->expires_at > (int64_t)pg->now &&
		    x->expires_at <= (int64_t)pg->now + RH_EXPIRING_DAYS * DAY)
			expiring++;
		if (x->hit_users > 0)
			still_hit++;
	}
	fputs("<section id=\"headline\"><h2>Headline</h2><div class=\"kpis\">\n", out);
	write_share_kpi(out, pg);
	fprintf(out,
	        "<div class=\"kpi\" id=\"kpi-users\" data-users=\"%zu\" data-legacy-users=\"%zu\" "
	        "data-uncovered=\"%zu\"><span class=\"label\">Users still on legacy or password "
	        "mechanisms</span><span class=\"num\">%s</span><span class=\"sub\">%s on the "
	        "class legacy itself; %s without an exception</span></div>\n",
	        pg->n_users, pg->n_legacy_users, pg->n_uncovered,
	        html_count((int64_t)pg->n_users, n, sizeof(n)),
	        html_count((int64_t)pg->n_legacy_users, e1, sizeof(e1)),
	        html_count((int64_t)pg->n_uncovered, e2, sizeof(e2)));
	fprintf(out,
	        "<div class=\"kpi\" id=\"kpi-moved\" data-moved=\"%zu\"><span class=\"label\">"
	        "Users moved to modern in the period</span><span class=\"num\">%s</span>"
	        "<span class=\"sub\">first modern login in the period, no legacy or password "
	        "login since</span></div>\n",
	        pg->n_moved_total, html_count((int64_t)pg->n_moved_total, n, sizeof(n)));
	fprintf(out,
	        "<div class=\"kpi\" id=\"kpi-exceptions\" data-expiring=\"%zu\" "
	        "data-expired-hit=\"%zu\"><span class=\"label\">Exceptions expiring within %d "
	        "days</span><span class=\"num\">%s</span><span class=\"sub\">%zu expired "
	        "exception%s still matched by recent logins</span></div>\n",
	        expiring, still_hit, RH_EXPIRING_DAYS,
	        html_count((int64_t)expiring, e1, sizeof(e1)), still_hit,
	        still_hit == 1 ? "" : "s");
	fputs("</div>\n", out);
	if (pg->n_moved > 0) {
		fputs("<p class=\"note\" id=\"moved\">Moved to modern: ", out);
		for (size_t i = 0; i < pg->n_moved; i++) {
			fputs(i ? ", " : "", out);
			html_elem(out, "span", "moved-user", pg->moved[i]);
		}
		if (pg->n_moved_total > pg->n_moved)
			fprintf(out, " and %zu more", pg->n_moved_total - pg->n_moved);
		fputs(".</p>\n", out);
	}
	fputs("</section>\n", out);
}

/* ---------------------------------------------------------------- charts */

struct axis {
	char (*keys)[40];
	char (*labels)[16];
	const char **key_ptrs, **label_ptrs;
};

static void axis_build(const struct rh_page *pg, struct axis *ax)
{
	ax->keys = xcalloc(pg->n_buckets, sizeof(*ax->keys));
	ax->labels = xcalloc(pg->n_buckets, sizeof(*ax->labels));
	ax->key_ptrs = xcalloc(pg->n_buckets, sizeof(*ax->key_ptrs));
	ax->label_ptrs = xcalloc(pg->n_buckets, sizeof(*ax->label_ptrs));
	for (size_t i = 0; i < pg->n_buckets; i++) {
		char date[16];

		write_date_key((int64_t)pg->start + (int64_t)i * pg->width, date, sizeof(date));
		snprintf(ax->keys[i], sizeof(ax->keys[i]), "%s%s",
		         pg->width > DAY ? "week of " : "", date);
		snprintf(ax->labels[i], sizeof(ax->labels[i]), "%.5s", date + 5);
		ax->key_ptrs[i] = ax->keys[i];
		ax->label_ptrs[i] = ax->labels[i];
	}
}

static void axis_free(struct axis *ax)
{
	free(ax->keys);
	free(ax->labels);
	free(ax->key_ptrs);
	free(ax->label_ptrs);
}

static void write_class_chart(FILE *out, const struct rh_page *pg, const struct axis *ax)
{
	struct html_series series[MECH_CLASS_COUNT];
	struct html_chart c = {0};
	const char *unit = pg->width > DAY ? "week" : "day";
	char title[96];

	for (int i = 0; i < MECH_CLASS_COUNT; i++) {
		series[i].name = mech_class_name((enum mech_class)i);
		series[i].color = class_colors[i];
	}
	snprintf(title, sizeof(title), "Authenticated submissions per %s by mechanism class", unit);
	c.id = "chart-class";
	c.title = title;
	c.x_title = pg->width > DAY ? "week (UTC)" : "day (UTC)";
	c.y_title = "submissions";
	c.n_points = pg->n_buckets;
	c.x_keys = ax->key_ptrs;
	c.x_labels = ax->label_ptrs;
	c.n_series = MECH_CLASS_COUNT;
	c.series = series;
	c.values = pg->by_class;
	fputs("<section class=\"chart-section\" id=\"by-class\">", out);
	html_elem(out, "h2", NULL, title);
	fputs("<div class=\"chart-box\">\n", out);
	html_svg_stacked_bars(out, &c);
	fprintf(out,
	        "</div><p class=\"note\">From the decision log; logins and submissions that "
	        "used SMTP AUTH or a Dovecot login. Bars: legacy (PLAIN, LOGIN, CRAM-MD5, ...), "
	        "password (SCRAM), modern (OAuth2, Kerberos, certificates). The first and the "
	        "last bar may cover part of a %s only.</p></section>\n",
	        unit);
}

/* The services drawn: the RH_SERVICES_SHOWN busiest, the rest as "other". */
static size_t pick_services(const struct rh_page *pg, size_t *order, int64_t *totals)
{
	size_t n = pg->n_services, shown;

	for (size_t s = 0; s <= RH_SERVICE_SLOTS; s++) {
		totals[s] = 0;
		for (size_t b = 0; b < pg->n_buckets; b++)
			totals[s] += pg->by_service[b * (RH_SERVICE_SLOTS + 1) + s];
	}
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	for (size_t i = 1; i < n; i++) /* insertion sort: at most 64 */
		for (size_t k = i; k > 0 && totals[order[k]] > totals[order[k - 1]]; k--) {
			size_t t = order[k];

			order[k] = order[k - 1];
			order[k - 1] = t;
		}
	shown = n > RH_SERVICES_SHOWN ? RH_SERVICES_SHOWN : n;
	if (n == RH_SERVICES_SHOWN + 1 && totals[RH_SERVICE_SLOTS] == 0)
		shown = n; /* one more service rather than an "other" of one */
	return shown;
}

static void write_service_chart(FILE *out, const struct rh_page *pg, const struct axis *ax)
{
	size_t order[RH_SERVICE_SLOTS], shown, n_series;
	int64_t totals[RH_SERVICE_SLOTS + 1], *values;
	struct html_series series[RH_SERVICES_SHOWN + 2];
	struct html_chart c = {0};
	int other;

	shown = pick_services(pg, order, totals);
	other = shown < pg->n_services || totals[RH_SERVICE_SLOTS] > 0;
	n_series = shown + (size_t)other;
	values = xcalloc(pg->n_buckets * (n_series ? n_series : 1), sizeof(int64_t));
	for (size_t s = 0; s < shown; s++) {
		series[s].name = service_name(pg->services[order[s]]);
		series[s].color = service_colors[s % RH_SERVICES_SHOWN];
	}
	if (other) {
		series[shown].name = "other";
		series[shown].color = service_colors[RH_SERVICES_SHOWN];
	}
	for (size_t b = 0; b < pg->n_buckets; b++) {
		const int64_t *row = &pg->by_service[b * (RH_SERVICE_SLOTS + 1)];

		for (size_t s = 0; s < pg->n_services; s++) {
			size_t k = 0;

			while (k < shown && order[k] != s)
				k++;
			values[b * n_series + k] += row[s]; /* k == shown: other */
		}
		if (other)
			values[b * n_series + shown] += row[RH_SERVICE_SLOTS];
	}
	c.id = "chart-service";
	c.title = pg->width > DAY ? "Authenticated submissions per week by service"
	                          : "Authenticated submissions per day by service";
	c.x_title = pg->width > DAY ? "week (UTC)" : "day (UTC)";
	c.y_title = "submissions";
	c.n_points = pg->n_buckets;
	c.x_keys = ax->key_ptrs;
	c.x_labels = ax->label_ptrs;
	c.n_series = n_series;
	c.series = series;
	c.values = values;
	fputs("<section class=\"chart-section\" id=\"by-service\">", out);
	html_elem(out, "h2", NULL, c.title);
	fputs("<div class=\"chart-box\">\n", out);
	html_svg_stacked_bars(out, &c);
	fputs("</div><p class=\"note\">The service each daemon recorded: the Postfix service "
	      "or port, the milter's daemon name, Dovecot's protocol (imap, pop3, smtp).</p>"
	      "</section>\n",
	      out);
	free(values);
}

/* ---------------------------------------------------------------- worklist */

/* Writes the distinct values of one field of a user's entries; field 0 mech
 * (as a tag with its class), 1 network, 2 service. Also as a comma list in
 * an attribute when attr is set. */
static void write_distinct(FILE *out, const struct rh_page *pg, const struct rh_user *u, int field,
                           int attr)
{
	size_t shown = 0;

	for (size_t i = u->first; i < u->first + u->n; i++) {
		const struct worklist_entry *e = &pg->wl.entries[i];
		const char *v = field == 0 ? e->mech : field == 1 ? e->network : e->service;
		int dup = 0;

		for (size_t k = u->first; k < i && !dup; k++) {
			const struct worklist_entry *o = &pg->wl.entries[k];

			dup = strcmp(v, field == 0   ? o->mech
			                : field == 1 ? o->network
			                             : o->service) == 0;
		}
		if (dup)
			continue;
		if (attr) {
			fputs(shown++ ? "," : "", out);
			html_text(out, v);
		} else if (field == 0) {
			fprintf(out, "<span class=\"tag c-%s\" title=\"class ",
			        class_css(e->mech_class));
			html_text(out, e->mech_class);
			fputs("\">", out);
			html_text(out, v);
			fputs("</span>", out);
		} else {
			fputs(shown++ ? "<br>" : "", out);
			html_text(out, field == 2 ? service_name(v) : v);
		}
	}
}

/* The fleet's store: the distinct hosts of a user's entries. */
static void write_hosts(FILE *out, const struct rh_page *pg, const struct rh_user *u)
{
	char seen[1024] = ",", item[256];
	size_t shown = 0;

	for (size_t i = u->first; i < u->first + u->n; i++) {
		const char *cur = pg->wl.entries[i].hosts ? pg->wl.entries[i].hosts : "";

		while (list_next(&cur, item, sizeof(item)) > 0) {
			char key[260];

			snprintf(key, sizeof(key), ",%s,", item);
			if (strstr(seen, key) != NULL)
				continue;
			sg_snprintf(seen + strlen(seen), sizeof(seen) - strlen(seen), "%s",
			            key + 1);
			fputs(shown++ ? "<br>" : "", out);
			html_text(out, item);
		}
	}
}

/* What an exception matches: "user alice@x, location office, PLAIN". */
static void write_exception_scope(FILE *out, const struct rh_exception *x)
{
	int n = 0;

	if (x->user_pattern) {
		fputs("user ", out);
		html_text(out, x->user_pattern);
		n++;
	}
	if (x->group_name) {
		fputs(n++ ? ", group " : "group ", out);
		html_text(out, x->group_name);
	}
	if (x->location) {
		fputs(n++ ? ", location " : "location ", out);
		html_text(out, x->location);
	}
	if (x->mechs && *x->mechs) {
		fputs(n++ ? ", mechanisms " : "mechanisms ", out);
		html_text(out, x->mechs);
	}
	fputs("; policy ", out);
	html_text(out, x->policy ? x->policy : "(all)");
}

static void write_exception_brief(FILE *out, const struct rh_exception *x)
{
	fprintf(out, "<li data-exception=\"%" PRId64 "\">#%" PRId64 " by ", x->id, x->id);
	html_text(out, x->created_by);
	fputs(": ", out);
	html_text(out, x->reason);
	if (x->expires_at) {
		fputs(" &mdash; until ", out);
		write_time(out, x->expires_at);
	} else {
		fputs(" &mdash; permanent", out);
	}
	fputs("</li>", out);
}

/* The coverage cell: the distinct exceptions covering the user's entries. */
static void write_coverage(FILE *out, const struct rh_page *pg, const struct rh_user *u)
{
	if (u->n_covered == 0) {
		fputs("<span class=\"cov-none\">none</span>", out);
		return;
	}
	if (u->n_covered < u->n)
		fprintf(out, "<span class=\"muted\">%zu of %zu entries:</span>", u->n_covered,
		        u->n);
	fputs("<ul class=\"exc\">", out);
	for (size_t i = u->first; i < u->first + u->n; i++) {
		const struct worklist_entry *e = &pg->wl.entries[i];

		for (size_t k = 0; k < e->n_exc; k++) {
			const struct rh_exception *x = rh_exception_get(pg, e->exc[k]);
			int dup = 0;

			for (size_t j = u->first; j <= i && !dup; j++)
				for (size_t m = 0;
				     m < (j < i ? pg->wl.entries[j].n_exc : k) && !dup; m++)
					dup = pg->wl.entries[j].exc[m] == e->exc[k];
			if (x != NULL && !dup)
				write_exception_brief(out, x);
		}
	}
	fputs("</ul>", out);
}

static const char *coverage(const struct rh_user *u)
{
	return u->n_covered == 0 ? "none" : u->n_covered == u->n ? "all" : "some";
}

static void write_user_row(FILE *out, const struct rh_page *pg, const struct rh_user *u)
{
	char iso1[32], iso2[32], iso3[32], n[32];

	fputs("<tr data-user=\"", out);
	html_text(out, u->user);
	fprintf(out, "\" data-count=\"%" PRId64 "\" data-first=\"%s\" data-last=\"%s\"", u->count,
	        ctl_time((time_t)u->first_seen, "", iso1, sizeof(iso1)),
	        ctl_time((time_t)u->last_seen, "", iso2, sizeof(iso2)));
	fputs(" data-mechs=\"", out);
	write_distinct(out, pg, u, 0, 1);
	fputs("\" data-networks=\"", out);
	write_distinct(out, pg, u, 1, 1);
	fprintf(out, "\" data-coverage=\"%s\" data-expires=\"%s\">", coverage(u),
	        u->n_covered ? ctl_time((time_t)u->expires, "", iso3, sizeof(iso3)) : "");
	fputs("<td class=\"user\" data-label=\"User\">", out);
	html_text(out, u->user);
	fputs("</td><td data-label=\"Mechanisms\">", out);
	write_distinct(out, pg, u, 0, 0);
	fputs("</td><td data-label=\"Networks\">", out);
	write_distinct(out, pg, u, 1, 0);
	if (pg->fleet) {
		fputs("</td><td data-label=\"Hosts\">", out);
		write_hosts(out, pg, u);
	}
	fputs("</td><td data-label=\"Services\">", out);
	write_distinct(out, pg, u, 2, 0);
	fputs("</td><td data-label=\"First seen\">", out);
	write_time(out, u->first_seen);
	fputs("</td><td data-label=\"Last seen\">", out);
	write_time(out, u->last_seen);
	fprintf(out, "</td><td class=\"n\" data-label=\"Submissions\">%s</td>",
	        html_count(u->count, n, sizeof(n)));
	fputs("<td data-label=\"Exception\">", out);
	write_coverage(out, pg, u);
	fputs("</td></tr>\n", out);
}

static void write_worklist(FILE *out, const struct rh_page *pg, const struct opts *o)
{
	size_t shown =
	    o->limit > 0 && (size_t)o->limit < pg->n_users ? (size_t)o->limit : pg->n_users;
	char since[32], n1[32], n2[32];

	fprintf(out,
	        "<section id=\"worklist\" data-users=\"%zu\" data-shown=\"%zu\">"
	        "<h2>Worklist: users still on legacy or password mechanisms</h2>\n",
	        pg->n_users, shown);
	if (pg->n_users == 0) {
		fputs(
		    "<p>Nobody used a legacy or password mechanism in the period.</p></section>\n",
		    out);
		return;
	}
	fputs("<p class=\"note\">Most active first. Counts and first seen are since the entry "
	      "was first seen; exception coverage is what the current policy decides for each "
	      "mechanism and network's newest submission.</p>\n",
	      out);
	if (shown < pg->n_users)
		fprintf(out,
		        "<p class=\"note\">Showing the %s most active of %s users; the whole "
		        "list: <code>saslgatectl report legacy --since %.10s</code>.</p>\n",
		        html_count((int64_t)shown, n1, sizeof(n1)),
		        html_count((int64_t)pg->n_users, n2, sizeof(n2)),
		        ctl_time(pg->since, "-", since, sizeof(since)));
	fputs("<div class=\"table-box\"><table class=\"cards\"><thead><tr><th>User</th>"
	      "<th>Mechanisms</th><th>Networks</th>",
	      out);
	if (pg->fleet)
		fputs("<th>Hosts</th>", out);
	fputs("<th>Services</th><th>First seen</th>"
	      "<th>Last seen</th><th class=\"n\">Submissions</th><th>Exception</th></tr></thead>"
	      "<tbody>\n",
	      out);
	for (size_t i = 0; i < shown; i++)
		write_user_row(out, pg, &pg->users[i]);
	fputs("</tbody></table></div></section>\n", out);
}

/* ---------------------------------------------------------------- policies */

static void write_policies(FILE *out, const struct rh_page *pg)
{
	char n1[32], n2[32], n3[32];

	fputs("<section id=\"report-only\"><h2>What enforcing the report-only policies would "
	      "have refused</h2>\n",
	      out);
	if (pg->n_policies == 0) {
		fputs("<p>No policy is in report-only mode.</p></section>\n", out);
		return;
	}
	fputs("<div class=\"table-box\"><table class=\"cards\"><thead><tr><th>Policy</th>"
	      "<th>Enforced from</th><th class=\"n\">Submissions refused</th><th class=\"n\">of "
	      "them allowed today</th><th class=\"n\">Users</th></tr></thead><tbody>\n",
	      out);
	for (size_t i = 0; i < pg->n_policies; i++) {
		const struct rh_policy *p = &pg->policies[i];

		fputs("<tr data-policy=\"", out);
		html_text(out, p->name);
		fprintf(out,
		        "\" data-refused=\"%" PRId64 "\" data-allowed=\"%" PRId64
		        "\" data-users=\"%" PRId64 "\"><td class=\"user\" data-label=\"Policy\">",
		        p->would_refuse, p->would_refuse_allowed, p->users);
		html_text(out, p->name);
		fputs("</td><td data-label=\"Enforced from\">", out);
		if (p->enforce_from)
			write_time(out, p->enforce_from);
		else
			fputs("<span class=\"muted\">not scheduled</span>", out);
		fprintf(out,
		        "</td><td class=\"n\" data-label=\"Submissions refused\">%s</td>"
		        "<td class=\"n\" data-label=\"Allowed today\">%s</td>"
		        "<td class=\"n\" data-label=\"Users\">%s</td></tr>\n",
		        html_count(p->would_refuse, n1, sizeof(n1)),
		        html_count(p->would_refuse_allowed, n2, sizeof(n2)),
		        html_count(p->users, n3, sizeof(n3)));
	}
	fputs("</tbody></table></div><p class=\"note\">Logged submissions in the period that "
	      "the policy applied to; \"allowed today\" went through because no enforcing policy "
	      "refused them, and would be refused once it is enforced.</p></section>\n",
	      out);
}

/* ---------------------------------------------------------------- exceptions */

static void write_exception_row(FILE *out, const struct rh_exception *x, int expired)
{
	char n[32];

	fprintf(out, "<tr data-exception=\"%" PRId64 "\"", x->id);
	if (expired)
		fprintf(out, " data-hit-users=\"%" PRId64 "\"", x->hit_users);
	fprintf(out, "><td data-label=\"Id\">#%" PRId64 "</td><td data-label=\"Matches\">", x->id);
	write_exception_scope(out, x);
	fputs("</td><td data-label=\"Owner\">", out);
	html_text(out, x->created_by);
	fputs("</td><td data-label=\"Reason\">", out);
	html_text(out, x->reason);
	fprintf(out, "</td><td data-label=\"%s\">", expired ? "Expired" : "Expires");
	write_time(out, x->expires_at);
	fputs("</td>", out);
	if (expired) {
		fprintf(out, "<td class=\"n\" data-label=\"Users since\">%s</td>",
		        html_count(x->hit_users, n, sizeof(n)));
		fputs("<td data-label=\"Last seen\">", out);
		write_time(out, x->last_hit);
		fputs("</td>", out);
	}
	fputs("</tr>\n", out);
}

static void write_exception_table(FILE *out, const struct rh_page *pg, int expired)
{
	int64_t now = (int64_t)pg->now, horizon = now + RH_EXPIRING_DAYS * DAY;
	size_t n = 0;

	for (size_t i = 0; i < pg->n_exc; i++) {
		const struct rh_exception *x = &pg->exc[i];

		if (expired ? x->hit_users == 0 : x->expires_at <= now || x->expires_at > horizon)
			continue;
		if (n++ == 0)
			fprintf(
			    out,
			    "<div class=\"table-box\"><table class=\"cards\" id=\"%s\"><thead><tr>"
			    "<th>Id</th><th>Matches</th><th>Owner</th><th>Reason</th><th>%s</th>%s"
			    "</tr></thead><tbody>\n",
			    expired ? "expired-hit" : "expiring", expired ? "Expired" : "Expires",
			    expired ? "<th class=\"n\">Users since</th><th>Last seen</th>" : "");
		write_exception_row(out, x, expired);
	}
	if (n > 0)
		fputs("</tbody></table></div>\n", out);
	else
		fprintf(out, "<p id=\"%s\" class=\"muted\">None.</p>\n",
		        expired ? "expired-hit" : "expiring");
}

static void write_exceptions(FILE *out, const struct rh_page *pg)
{
	fprintf(out,
	        "<section id=\"exceptions\"><h2>Exceptions expiring in the next %d days</h2>\n",
	        RH_EXPIRING_DAYS);
	write_exception_table(out, pg, 0);
	fputs("<h2>Expired exceptions still hit</h2>\n<p class=\"note\">Expired exceptions "
	      "that would still match a worklist entry seen after the expiry: those users are "
	      "refused now (or will be, once the policy is enforced).</p>\n",
	      out);
	write_exception_table(out, pg, 1);
	fputs("</section>\n", out);
}

/* ---------------------------------------------------------------- command */

static void write_page(FILE *out, const struct rh_page *pg, const struct opts *o)
{
	struct axis ax;

	axis_build(pg, &ax);
	write_head(out, pg);
	write_headline(out, pg);
	write_class_chart(out, pg, &ax);
	write_service_chart(out, pg, &ax);
	write_worklist(out, pg, o);
	write_policies(out, pg);
	write_exceptions(out, pg);
	fputs("<footer class=\"meta\"><p>saslgate: block legacy authentication. Times are UTC. "
	      "The same numbers in a terminal: <code>saslgatectl report legacy</code>, "
	      "<code>saslgatectl stats</code>.</p></footer>\n</main>\n</body>\n</html>\n",
	      out);
	axis_free(&ax);
}

struct take_ctx {
	const struct ctl *ctl;
	struct opts *o;
};

static int take_opt(int c, const char *value, void *arg)
{
	const struct take_ctx *t = arg;
	struct opts *o = t->o;
	int rc;

	switch (c) {
	case OPT_SINCE:
		rc = ctl_parse_time(t->ctl, "--since", value, TIME_PAST, &o->since);
		if (rc == CTL_OK && o->since > t->ctl->now)
			rc = ctl_invalid("--since", "'%s' is in the future", value);
		break;
	case 'o':
		if (*value == '\0')
			return ctl_invalid("--output", "the file name must not be empty");
		o->output = value;
		return CTL_OPT_CONTINUE;
	case OPT_LIMIT:
		rc = aq_parse_count("--limit", value, 1, &o->limit);
		break;
	default:
		return CTL_OPT_NOT_MINE;
	}
	return ctl_opt_taken(rc);
}

static int parse(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv,
                 struct opts *o)
{
	static const struct option longopts[] = {
	    {"since", required_argument, NULL, OPT_SINCE},
	    {"output", required_argument, NULL, 'o'},
	    {"limit", required_argument, NULL, OPT_LIMIT},
	    CTL_OPT_COMMON,
	    {NULL, 0, NULL, 0},
	};
	struct take_ctx t = {ctl, o};
	const struct ctl_opts opts = {":ho:", longopts, take_opt, &t};

	time_parse(RH_DEFAULT_SINCE, ctl->now, TIME_PAST, &o->since, NULL);
	o->limit = RH_DEFAULT_LIMIT;
	return ctl_parse(ctl, cmd, argc, argv, &opts, 0, 0);
}

int cmd_report_html(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	struct opts o = {0};
	struct rh_page pg;
	FILE *out = stdout;
	int rc;

	if ((rc = parse(ctl, cmd, argc, argv, &o)) != CTL_OPT_CONTINUE)
		return rc;
	if ((rc = rh_collect(ctl, o.since, &pg)) != CTL_OK) {
		rh_free(&pg);
		return rc;
	}
	if (o.output != NULL && (out = fopen(o.output, "w")) == NULL) {
		rc = ctl_fail("%s: %s", o.output, strerror(errno));
		rh_free(&pg);
		return rc;
	}
	write_page(out, &pg, &o);
	if (fflush(out) != 0 || ferror(out))
		rc = ctl_fail("%s: write error: %s", o.output ? o.output : "standard output",
		              strerror(errno));
	if (out != stdout && fclose(out) != 0 && rc == CTL_OK)
		rc = ctl_fail("%s: %s", o.output, strerror(errno));
	rh_free(&pg);
	return rc;
}
