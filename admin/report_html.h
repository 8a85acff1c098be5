/*
 * report_html - saslgatectl report html: the migration report as one
 * self-contained HTML page (inline CSS and SVG, no script, no external
 * request). report_html_data.c gathers what the page shows from activity.db
 * and policy.db into a struct rh_page; cmd_report_html.c parses the command
 * line and writes the page from it (with html.c).
 *
 * What the page shows, and where it comes from:
 * - per day (per week beyond RH_DAILY_MAX days) authenticated submissions by
 *   mechanism class and by service, and the legacy share of the last 7 days
 *   against the weeks before: a scan of the decision log over the period;
 * - the worklist: the users of non-modern mechanisms last seen in the
 *   period, from the usage table, with exception coverage decided by
 *   replaying each entry's newest submission with engine_decide(), exactly
 *   as report legacy does (same users, counts, first/last seen, coverage);
 * - users moved to modern: first modern use in the period and no non-modern
 *   use after it (usage table);
 * - per report-only policy (report-only now, or before its enforce_from):
 *   the logged submissions it would have refused in the period and their
 *   users;
 * - exceptions expiring within RH_EXPIRING_DAYS, and expired exceptions that
 *   still match a worklist entry seen after their expiry (the replay's trace
 *   names them).
 */
#ifndef SASLGATE_REPORT_HTML_H
#define SASLGATE_REPORT_HTML_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "ctl.h"
#include "mech.h"
#include "worklist.h"

#define RH_DEFAULT_SINCE  "90d"
#define RH_DEFAULT_LIMIT  500
#define RH_DAILY_MAX      183 /* longer periods are drawn per week */
#define RH_EXPIRING_DAYS  14
#define RH_SERVICES_SHOWN 6  /* more services are drawn as "other" */
#define RH_SERVICE_SLOTS  64 /* distinct services counted; the rest is "other" */
#define RH_MOVED_SHOWN    100

/* A user of the worklist: entries[first .. first + n). */
struct rh_user {
	const char *user;
	size_t first, n;
	int64_t count, first_seen, last_seen;
	size_t n_covered;
	int64_t expires; /* earliest expiry among covered entries; 0 permanent */
};

struct rh_exception {
	int64_t id, created_at, expires_at; /* expires_at 0: permanent */
	char *policy, *user_pattern, *group_name, *location, *mechs, *reason, *created_by;
	/* expired, yet matching worklist entries seen after the expiry */
	int64_t hit_users, last_hit;
	size_t last_hit_user; /* index + 1 of the last user counted */
};

struct rh_policy {
	char *name;
	int64_t enforce_from;         /* 0: report-only without a date */
	int64_t would_refuse;         /* logged submissions it applied to in the period */
	int64_t would_refuse_allowed; /* of those, allowed (no enforcing policy) */
	int64_t users;
};

struct rh_page {
	time_t now, since;
	const char *dir; /* the store directory, or the fleet's store as named */
	int fleet;       /* the fleet's store (--store): entries name their hosts */
	/* the chart buckets: [start + i * width, start + (i + 1) * width) */
	time_t start;
	int64_t width;
	size_t n_buckets;
	int64_t *by_class;                    /* n_buckets * MECH_CLASS_COUNT */
	char *services[RH_SERVICE_SLOTS + 1]; /* the last slot: "other" */
	size_t n_services;
	int64_t *by_service; /* n_buckets * (RH_SERVICE_SLOTS + 1) */
	int64_t total_class[MECH_CLASS_COUNT];
	int64_t week_class[MECH_CLASS_COUNT];   /* the last 7 days */
	int64_t before_class[MECH_CLASS_COUNT]; /* since .. 7 days ago */
	/* the worklist */
	struct worklist wl; /* sorted by user */
	struct rh_user *users;
	size_t n_users, n_uncovered;
	size_t n_legacy_users; /* users of the class legacy itself */
	/* users moved to modern */
	char **moved;
	size_t n_moved, n_moved_total;
	struct rh_policy *policies;
	size_t n_policies;
	struct rh_exception *exc; /* by id, expired ones included */
	size_t n_exc, cap_exc;
};

/* Gathers the page for the period since .. ctl->now. CTL_OK, or CTL_FAIL
 * (message printed); the page is then incomplete but can be freed. */
int rh_collect(struct ctl *ctl, time_t since, struct rh_page *page);

/* The exception with this id, or NULL. */
const struct rh_exception *rh_exception_get(const struct rh_page *page, int64_t id);

void rh_free(struct rh_page *page);

/* saslgatectl report html (cmd_report_html.c). */
int cmd_report_html(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv);

#endif
