/*
 * activity_queries - how long saslgatectl's reports take over a large
 * activity.db. Creates a store (saslgatectl init, plus exceptions), fills
 * activity.db with N decisions spread over the last 90 days, stored B to a
 * batch row, and U usage rows (user x mechanism x network) consistent with
 * them, then runs the report commands with the real saslgatectl binary and
 * prints the wall-clock times (best and median of R runs) as a Markdown
 * table.
 *
 * usage: bench/activity_queries [-c SASLGATECTL] [-d DIR] [-n DECISIONS]
 *                               [-b PER_BATCH] [-u USAGE_ROWS] [-r RUNS] [-k]
 * -b 1 (the default) is what a quiet site's daemons write, a batch per
 * decision, and the slowest to read; a busy site's batches hold hundreds.
 * -k keeps DIR (default: a new directory under /tmp, removed at the end).
 */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "store.h"
#include "util.h"

#define DAY ((int64_t)86400)

struct usage_row {
	uint32_t user;
	uint8_t mech, net_kind;
	uint32_t net;
};

static const struct {
	const char *name, *cls;
} mechs[] = {
    {"PLAIN", "legacy"},   {"LOGIN", "legacy"},       {"CRAM-MD5", "legacy"},
    {"XOAUTH2", "modern"}, {"OAUTHBEARER", "modern"}, {"SCRAM-SHA-256", "password"},
};

/* xorshift64*: deterministic, so runs are comparable. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void network_text(const struct usage_row *u, char *net, size_t len, char *client,
                         size_t clen)
{
	unsigned host = (unsigned)(rnd() % 250) + 1;

	if (u->net_kind == 0) {
		snprintf(net, len, "10.%u.%u.0/24", (u->net >> 8) & 255, u->net & 255);
		snprintf(client, clen, "10.%u.%u.%u", (u->net >> 8) & 255, u->net & 255, host);
	} else {
		snprintf(net, len, "2001:db8:%x::/64", u->net & 0xffff);
		snprintf(client, clen, "2001:db8:%x::%x", u->net & 0xffff, host);
	}
}

static int run_quiet(const char *cmd)
{
	int rc = system(cmd);

	if (rc != 0) {
		fprintf(stderr, "failed (%d): %s\n", rc, cmd);
		return -1;
	}
	return 0;
}

/* Regroups the batches of one decision into batches of per_batch (the fill
 * gives consecutive decisions the same daemon in groups of that size). */
static int regroup(sqlite3 *db, long per_batch)
{
	char sql[1024];

	snprintf(sql, sizeof(sql),
	         "CREATE TEMP TABLE g AS SELECT (id - 1) / %ld AS k, min(id) AS id, daemon, "
	         "min(first_at) AS f, max(last_at) AS l, count(*) AS n, "
	         "json_group_array(json(substr(data, 2, length(data) - 2))) AS d "
	         "FROM (SELECT * FROM decision_batches ORDER BY id) GROUP BY k; "
	         "DELETE FROM decision_batches; "
	         "INSERT INTO decision_batches (id, daemon, first_at, last_at, n, data) "
	         "SELECT id, daemon, f, l, n, d FROM g ORDER BY id; DROP TABLE g",
	         per_batch);
	return store_exec(db, sql, NULL);
}

static int fill(const char *dir, long n_decisions, long per_batch, long n_usage)
{
	static const char sql_d[] =
	    "INSERT INTO decisions (at, daemon, instance, user, client, mech, mech_class, tls, "
	    "service, sender, outcome, policy, generation) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,1)";
	static const char sql_u[] =
	    "INSERT OR IGNORE INTO usage (user, mech, network, mech_class, first_seen, last_seen, "
	    "count, last_outcome, last_client, last_tls, last_service) "
	    "VALUES (?,?,?,?,?,?,?,?,?,1,'submission')";
	struct sg_err err = {{0}};
	struct usage_row *rows;
	int64_t *first, *last, *count;
	long n_users = n_usage * 2 / 5; /* 2.5 entries per user */
	time_t t0 = time(NULL);
	sqlite3_stmt *d = NULL, *u = NULL;
	sqlite3 *db;
	char user[64], net[64], client[64], inst[32];

	if (store_open_activity(dir, 0, &db, &err) < 0) {
		fprintf(stderr, "%s\n", err.text);
		return -1;
	}
	rows = xcalloc((size_t)n_usage, sizeof(*rows));
	first = xcalloc((size_t)n_usage, sizeof(int64_t));
	last = xcalloc((size_t)n_usage, sizeof(int64_t));
	count = xcalloc((size_t)n_usage, sizeof(int64_t));
	for (long i = 0; i < n_usage; i++) {
		rows[i].user = (uint32_t)(i % n_users);
		rows[i].mech = (uint8_t)(rnd() % 6);
		rows[i].net_kind = (uint8_t)(rnd() % 5 == 0);
		rows[i].net = (uint32_t)i; /* distinct per row: (user, mech, net) is unique */
	}
	store_exec(db, "PRAGMA synchronous=OFF", NULL);
	store_exec(db, "BEGIN", NULL);
	sqlite3_prepare_v2(db, sql_d, -1, &d, NULL);
	sqlite3_prepare_v2(db, sql_u, -1, &u, NULL);
	for (long i = 0; i < n_decisions; i++) {
		long k = (long)(rnd() % (uint64_t)n_usage);
		const struct usage_row *r = &rows[k];
		int64_t at =
		    (int64_t)t0 - 90 * DAY + (int64_t)((uint64_t)i * 90 * DAY / n_decisions);
		const char *cls = mechs[r->mech].cls;
		int unauth = rnd() % 20 == 0;
		const char *outcome = unauth                       ? "not-authenticated"
		                      : strcmp(cls, "legacy") == 0 ? "block"
		                                                   : "allow";

		snprintf(user, sizeof(user), "user%u@example.com", r->user);
		network_text(r, net, sizeof(net), client, sizeof(client));
		snprintf(inst, sizeof(inst), "%lx.%lx.0", (unsigned long)k & 0xffffff,
		         (unsigned long)i & 0xffffff);
		sqlite3_reset(d);
		sqlite3_bind_int64(d, 1, at);
		sqlite3_bind_text(d, 2, i / per_batch % 3 ? "policyd" : "milter", -1,
		                  SQLITE_STATIC);
		sqlite3_bind_text(d, 3, inst, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(d, 5, client, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int(d, 8, 1);
		sqlite3_bind_text(d, 9, "submission", -1, SQLITE_STATIC);
		sqlite3_bind_text(d, 10, user, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(d, 11, outcome, -1, SQLITE_STATIC);
		if (unauth) {
			sqlite3_bind_null(d, 4);
			sqlite3_bind_null(d, 6);
			sqlite3_bind_null(d, 7);
			sqlite3_bind_null(d, 12);
		} else {
			sqlite3_bind_text(d, 4, user, -1, SQLITE_TRANSIENT);
			sqlite3_bind_text(d, 6, mechs[r->mech].name, -1, SQLITE_STATIC);
			sqlite3_bind_text(d, 7, cls, -1, SQLITE_STATIC);
			if (strcmp(outcome, "block") == 0)
				sqlite3_bind_text(d, 12, "block-legacy", -1, SQLITE_STATIC);
			else
				sqlite3_bind_null(d, 12);
			if (first[k] == 0)
				first[k] = at;
			last[k] = at;
			count[k]++;
		}
		if (sqlite3_step(d) != SQLITE_DONE) {
			fprintf(stderr, "insert: %s\n", sqlite3_errmsg(db));
			exit(1);
		}
	}
	for (long k = 0; k < n_usage; k++) {
		const struct usage_row *r = &rows[k];
		const char *cls = mechs[r->mech].cls;

		snprintf(user, sizeof(user), "user%u@example.com", r->user);
		network_text(r, net, sizeof(net), client, sizeof(client));
		if (count[k] == 0) { /* seen before the log's window */
			first[k] = last[k] = (int64_t)t0 - 200 * DAY;
			count[k] = 1;
		}
		sqlite3_reset(u);
		sqlite3_bind_text(u, 1, user, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(u, 2, mechs[r->mech].name, -1, SQLITE_STATIC);
		sqlite3_bind_text(u, 3, net, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(u, 4, cls, -1, SQLITE_STATIC);
		sqlite3_bind_int64(u, 5, first[k]);
		sqlite3_bind_int64(u, 6, last[k]);
		sqlite3_bind_int64(u, 7, count[k]);
		sqlite3_bind_text(u, 8, strcmp(cls, "legacy") == 0 ? "block" : "allow", -1,
		                  SQLITE_STATIC);
		sqlite3_bind_text(u, 9, client, -1, SQLITE_TRANSIENT);
		if (sqlite3_step(u) != SQLITE_DONE) {
			fprintf(stderr, "usage: %s\n", sqlite3_errmsg(db));
			exit(1);
		}
	}
	sqlite3_finalize(d);
	sqlite3_finalize(u);
	if (per_batch > 1 && regroup(db, per_batch) < 0) {
		fprintf(stderr, "regroup: %s\n", sqlite3_errmsg(db));
		exit(1);
	}
	store_exec(db, "COMMIT", NULL);
	store_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL);
	store_close(&db);
	free(rows);
	free(first);
	free(last);
	free(count);
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	static const char *const cases[] = {
	    "report legacy",
	    "report legacy --since 90d",
	    "--json report legacy --since 90d",
	    "report legacy --user user42@example.com",
	    "report html --since 30d",
	    "report html",
	    "stats",
	    "stats --since 90d",
	    "stats --since 90d --format prometheus",
	    "log --limit 100",
	    "log --user user42@example.com",
	    "log --outcome block --since 7d --limit 1000",
	    "status --nagios",
	    "status",
	    "status --integrity none",
	    NULL,
	};
	const char *ctl = "./saslgatectl";
	char dir[256] = "", cmd[1024];
	long n_decisions = 1000000, per_batch = 1, n_usage = 50000;
	int runs = 3, keep = 0, c;
	double t;
	struct stat sb;

	while ((c = getopt(argc, argv, "c:d:n:b:u:r:k")) != -1) {
		switch (c) {
		case 'c':
			ctl = optarg;
			break;
		case 'd':
			snprintf(dir, sizeof(dir), "%s", optarg);
			break;
		case 'n':
			n_decisions = strtol(optarg, NULL, 10);
			break;
		case 'b':
			per_batch = strtol(optarg, NULL, 10);
			break;
		case 'u':
			n_usage = strtol(optarg, NULL, 10);
			break;
		case 'r':
			runs = (int)strtol(optarg, NULL, 10);
			break;
		case 'k':
			keep = 1;
			break;
		default:
			fprintf(stderr,
			        "usage: %s [-c SASLGATECTL] [-d DIR] [-n DECISIONS] "
			        "[-b PER_BATCH] [-u USAGE_ROWS] [-r RUNS] [-k]\n",
			        argv[0]);
			return 2;
		}
	}
	if (n_decisions < 1 || per_batch < 1 || n_usage < 5 || runs < 1 || runs > 50)
		return 2;
	if (dir[0] == '\0') {
		snprintf(dir, sizeof(dir), "/tmp/saslgate-bench-XXXXXX");
		if (mkdtemp(dir) == NULL)
			return 1;
		rmdir(dir);
	}
	snprintf(cmd, sizeof(cmd), "%s -d '%s' init >/dev/null 2>&1", ctl, dir);
	if (run_quiet(cmd) < 0)
		return 1;
	/* Exceptions the report has to decide coverage for. */
	for (int i = 0; i < 100; i++) {
		snprintf(cmd, sizeof(cmd),
		         "%s -d '%s' exception add --user user%d@example.com --expires %dd "
		         "--reason bench >/dev/null 2>&1",
		         ctl, dir, i * 7, 1 + i % 30);
		if (run_quiet(cmd) < 0)
			return 1;
	}
	t = now_s();
	if (fill(dir, n_decisions, per_batch, n_usage) < 0)
		return 1;
	snprintf(cmd, sizeof(cmd), "%s/%s", dir, STORE_ACTIVITY_DB);
	stat(cmd, &sb);
	printf("filled %s: %ld decisions (%ld a batch), %ld usage rows, %.1f MB, in %.1f s\n\n",
	       dir, n_decisions, per_batch, n_usage, (double)sb.st_size / 1e6, now_s() - t);
	printf("| command | best (s) | median (s) |\n|---|---|---|\n");
	for (int i = 0; cases[i]; i++) {
		double times[50] = {0};

		/* status reports health in its exit status (no daemon runs here) */
		snprintf(cmd, sizeof(cmd), "%s -d '%s' %s >/dev/null%s", ctl, dir, cases[i],
		         strncmp(cases[i], "status", 6) == 0 ? " || test $? -le 3" : "");
		for (int r = 0; r < runs; r++) {
			t = now_s();
			if (run_quiet(cmd) < 0)
				return 1;
			times[r] = now_s() - t;
		}
		qsort(times, (size_t)runs, sizeof(double), cmp_double);
		printf("| `saslgatectl %s` | %.3f | %.3f |\n", cases[i], times[0], times[runs / 2]);
		fflush(stdout);
	}
	if (!keep) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			return 1;
	}
	return 0;
}
