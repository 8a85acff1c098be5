/*
 * bench/engine - decisions per second and snapshot build time and memory of
 * the engine with 10 and with 100,000 exceptions (plus 1,000 locations and 10
 * policies), both built from a real policy.db on disk in the same run.
 *
 * usage: bench/engine [-e EXCEPTIONS,...] [-n DECISIONS] [-d TMPDIR]
 * Prints one line per configuration and the cost ratio against the first.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "snapshot.h"
#include "store.h"

#define LOCATIONS 1000
#define REQUESTS 4096

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Heap bytes in use (exact, unlike RSS, which freed memory blurs). */
static long heap_kb(void)
{
	struct mallinfo2 mi = mallinfo2();

	return (long)(mi.uordblks / 1024);
}

static void exec_or_die(sqlite3 *db, const char *sql)
{
	struct sg_err err;

	if (store_exec(db, sql, &err) < 0) {
		fprintf(stderr, "bench: %s\n", err.text);
		exit(1);
	}
}

/* Writes 10 policies, 1,000 locations and n exceptions into a new store. */
static void populate(const char *dir, long n)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	struct sg_err err;
	char sql[512];

	if (store_open_admin(dir, 1, &db, &err) < 0) {
		fprintf(stderr, "bench: %s\n", err.text);
		exit(1);
	}
	exec_or_die(db, "BEGIN");
	sqlite3_prepare_v2(db, "INSERT INTO locations (name, created_at) VALUES (?, 0)", -1, &st,
			   NULL);
	for (int i = 0; i < LOCATIONS; i++) {
		snprintf(sql, sizeof(sql), "loc%d", i);
		sqlite3_bind_text(st, 1, sql, -1, SQLITE_TRANSIENT);
		sqlite3_step(st);
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	sqlite3_prepare_v2(db, "INSERT INTO location_nets (location_name, cidr) VALUES (?, ?)", -1,
			   &st, NULL);
	for (int i = 0; i < LOCATIONS; i++) {
		char name[32], net[64];

		snprintf(name, sizeof(name), "loc%d", i);
		snprintf(net, sizeof(net), "10.%d.%d.0/24", i / 256, i % 256);
		sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 2, net, -1, SQLITE_TRANSIENT);
		sqlite3_step(st);
		sqlite3_reset(st);
		snprintf(net, sizeof(net), "2001:db8:%x::/48", i);
		sqlite3_bind_text(st, 2, net, -1, SQLITE_TRANSIENT);
		sqlite3_step(st);
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	exec_or_die(db, "INSERT INTO groups VALUES ('staff', 0), ('contractors', 0);"
			"INSERT INTO group_members VALUES ('staff', '@staff.example.com'),"
			"('contractors', 'ext-*@example.com'), ('contractors', '@partner.example');");
	for (int i = 0; i < 10; i++) {
		static const char *const shapes[] = {
			"'enforce', 'legacy', 'all', '', '', '', 'any', ''",
			"'report-only', 'legacy,password', 'all', '', '', 'contractors', 'any', ''",
			"'enforce', 'legacy', '', 'staff', '', '', 'loc1,loc2,loc3', ''",
			"'enforce', 'CRAM-MD5,DIGEST-MD5', 'all', '', 'root@example.com', '', 'any', 'loc9'",
			"'off', 'legacy', 'all', '', '', '', 'any', ''",
		};
		snprintf(sql, sizeof(sql),
			 "INSERT INTO policies (name, state, mechs, include_users, include_groups, "
			 "exclude_users, exclude_groups, include_locations, exclude_locations, "
			 "created_at, updated_at) VALUES ('policy-%02d', %s, 0, 0)",
			 i, shapes[i % 5]);
		exec_or_die(db, sql);
	}
	sqlite3_prepare_v2(db,
			   "INSERT INTO exceptions (policy, user_pattern, location, mechs, reason, "
			   "created_by, created_at, expires_at) VALUES (NULL, ?, ?, ?, 'bench', "
			   "'bench', 0, ?)",
			   -1, &st, NULL);
	for (long i = 0; i < n; i++) {
		char user[64], loc[32];

		snprintf(user, sizeof(user), "user%ld@example.com", i);
		snprintf(loc, sizeof(loc), "loc%ld", i % LOCATIONS);
		/* Location-only exceptions: one per location at most (an
		 * administrator exempts a network once); the rest are per user,
		 * a third of them limited to a location. */
		if (i % 10 == 9 && i / 10 < LOCATIONS) {
			sqlite3_bind_null(st, 1);
			sqlite3_bind_text(st, 2, loc, -1, SQLITE_TRANSIENT);
		} else {
			sqlite3_bind_text(st, 1, user, -1, SQLITE_TRANSIENT);
			if (i % 3 == 0)
				sqlite3_bind_text(st, 2, loc, -1, SQLITE_TRANSIENT);
			else
				sqlite3_bind_null(st, 2);
		}
		if (i % 4 == 0)
			sqlite3_bind_text(st, 3, "PLAIN", -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(st, 3);
		if (i % 2 == 0)
			sqlite3_bind_int64(st, 4, 4102444800LL); /* 2100 */
		else
			sqlite3_bind_null(st, 4);
		sqlite3_step(st);
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	}
	sqlite3_finalize(st);
	exec_or_die(db, "COMMIT");
	store_close(&db);
}

struct reqset {
	struct request req[REQUESTS];
	char user[REQUESTS][64];
	char ip[REQUESTS][64];
};

/* The same request mix for every configuration: users that may or may not have
 * an exception, addresses in and out of locations, 70% modern / 30% legacy. */
static void make_requests(struct reqset *rs)
{
	static const char *const mechs[] = {"XOAUTH2", "OAUTHBEARER", "XOAUTH2", "PLAIN",
					    "XOAUTH2", "LOGIN", "OAUTHBEARER", "XOAUTH2",
					    "plain", "XOAUTH2"};
	unsigned seed = 12345;

	for (int i = 0; i < REQUESTS; i++) {
		struct request *r = &rs->req[i];
		unsigned x = rand_r(&seed);

		request_init(r);
		snprintf(rs->user[i], sizeof(rs->user[i]), "user%u@example.com", x % 200000);
		if (i % 3 == 0)
			snprintf(rs->ip[i], sizeof(rs->ip[i]), "10.%u.%u.%u", (x >> 8) % 4,
				 (x >> 4) % 256, x % 250 + 1);
		else if (i % 3 == 1)
			snprintf(rs->ip[i], sizeof(rs->ip[i]), "2001:db8:%x::%x", (x >> 4) % 1200,
				 x % 65535);
		else
			snprintf(rs->ip[i], sizeof(rs->ip[i]), "203.0.113.%u", x % 250 + 1);
		r->user = rs->user[i];
		r->client_addr = rs->ip[i];
		ipaddr_parse(rs->ip[i], &r->addr, NULL);
		r->addr_valid = 1;
		r->mech = mechs[i % 10];
		r->service = "submission";
		r->tls = i % 2;
	}
}

struct result {
	long exceptions;
	double build_ms;
	long rss_kb;
	double ns_per_decision;
	long blocks;
};

static struct snapshot *build(const char *tmp, long n, struct result *res)
{
	char dir[4096];
	sqlite3 *db;
	struct sg_err err;
	struct snapshot *snap = NULL;
	double t0, best = 1e9;
	long rss0;

	snprintf(dir, sizeof(dir), "%s/store-%ld", tmp, n);
	populate(dir, n);
	if (store_open_readonly(dir, &db, &err) < 0) {
		fprintf(stderr, "bench: %s\n", err.text);
		exit(1);
	}
	for (int k = 0; k < 3; k++) {
		snapshot_unref(&snap);
		rss0 = heap_kb();
		t0 = now_s();
		snap = snapshot_load(db, &err);
		if (snap == NULL) {
			fprintf(stderr, "bench: %s\n", err.text);
			exit(1);
		}
		if (now_s() - t0 < best)
			best = now_s() - t0;
		res->rss_kb = heap_kb() - rss0;
	}
	res->exceptions = n;
	res->build_ms = best * 1000;
	res->ns_per_decision = 1e18;
	store_close(&db);
	return snap;
}

/* One timed round of decisions; keeps the best ns/decision in res. */
static void measure(const struct snapshot *snap, long decisions, const struct reqset *rs,
		    struct result *res)
{
	long blocks = 0;
	double t0 = now_s(), ns;

	for (long i = 0; i < decisions; i++) {
		struct decision d;

		engine_decide(snap, &rs->req[i % REQUESTS], 1780000000, 0, &d);
		blocks += d.outcome == OUTCOME_BLOCK;
	}
	ns = (now_s() - t0) / decisions * 1e9;
	if (ns < res->ns_per_decision)
		res->ns_per_decision = ns;
	res->blocks = blocks;
}

int main(int argc, char **argv)
{
	long sizes[8] = {10, 100000};
	int n_sizes = 2, opt;
	long decisions = 1000000;
	char tmpl[] = "/tmp/saslgate-bench-XXXXXX";
	const char *tmp = NULL;
	static struct reqset rs;
	struct result res[8];
	struct snapshot *snaps[8];

	while ((opt = getopt(argc, argv, "e:n:d:")) != -1) {
		switch (opt) {
		case 'e': {
			char *p = optarg;

			n_sizes = 0;
			while (*p != '\0' && n_sizes < 8) {
				sizes[n_sizes++] = strtol(p, &p, 10);
				if (*p == ',')
					p++;
			}
			break;
		}
		case 'n':
			decisions = strtol(optarg, NULL, 10);
			break;
		case 'd':
			tmp = optarg;
			break;
		default:
			fprintf(stderr, "usage: %s [-e N,...] [-n DECISIONS] [-d TMPDIR]\n", argv[0]);
			return 2;
		}
	}
	if (tmp == NULL && (tmp = mkdtemp(tmpl)) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	make_requests(&rs);
	printf("engine benchmark: 10 policies, %d locations, %ld decisions per round (best of 5 alternating rounds)\n",
	       LOCATIONS, decisions);
	printf("%12s %12s %12s %14s %12s %8s\n", "exceptions", "build_ms", "heap_kb",
	       "decisions/s", "ns/decision", "ratio");
	for (int i = 0; i < n_sizes; i++)
		snaps[i] = build(tmp, sizes[i], &res[i]);
	/* Rounds alternate between configurations so that machine noise hits all. */
	for (int round = 0; round < 5; round++)
		for (int i = 0; i < n_sizes; i++)
			measure(snaps[i], decisions, &rs, &res[i]);
	for (int i = 0; i < n_sizes; i++) {
		snapshot_unref(&snaps[i]);
		printf("%12ld %12.1f %12ld %14.0f %12.1f %8.2f\n", res[i].exceptions,
		       res[i].build_ms, res[i].rss_kb, 1e9 / res[i].ns_per_decision,
		       res[i].ns_per_decision,
		       res[i].ns_per_decision / res[0].ns_per_decision);
	}
	if (tmp == tmpl) {
		char cmd[4200];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
		if (system(cmd) != 0)
			fprintf(stderr, "bench: could not remove %s\n", tmp);
	}
	return 0;
}
