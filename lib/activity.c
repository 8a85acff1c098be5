/*
 * activity - decision lines, decision rows, the usage table and heartbeats
 * (see activity.h). Callers only copy a record into a bounded ring under a
 * mutex; one writer thread turns batches of records into one transaction.
 */
#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "activity.h"
#include "hash.h"
#include "log.h"
#include "store.h"

struct record {
	time_t at;
	int tls;
	int addr_valid;
	struct ipaddr addr; /* the writer derives the usage network from it */
	int64_t generation;
	char queue_id[32];
	char instance[64];
	char user[256];
	char client[64];
	char network[64];
	char mech[MECH_NAME_MAX + 1];
	char mech_class[12];
	char service[64];
	char sender[256];
	char outcome[20];
	char policy[64];
	char report_only[256];
};

struct activity {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t thread;
	int stopping;

	char *dir;
	char program[16];
	unsigned flush_ms, heartbeat_s;
	int log_decisions;

	struct record *ring;
	size_t cap, head, count;

	struct activity_counters counters;
	uint64_t dropped;
	int64_t generation;
	int degraded;
	char reason[256];
	uint64_t rebuilds, last_rebuild_us;

	/* writer thread only */
	sqlite3 *db;
	sqlite3_stmt *ins, *use; /* prepared once per open */
	time_t started;
	time_t next_open_attempt;
	time_t last_loss_log;
	uint64_t dropped_logged;
	char host[256];
};

/* Copies a borrowed string into a fixed field, replacing what would break a
 * key=value log line (blanks, quotes, control bytes). */
static void field(char *dst, size_t len, const char *src)
{
	size_t i = 0;

	if (src != NULL)
		for (; src[i] != '\0' && i + 1 < len; i++) {
			unsigned char c = (unsigned char)src[i];

			dst[i] = (c <= 0x20 || c >= 0x7f || c == '"' || c == '=') ? '?' : (char)c;
		}
	dst[i] = '\0';
}

static const char *or_dash(const char *s)
{
	return s != NULL && *s != '\0' ? s : "-";
}

static void fill_record(struct record *r, const struct request *req, const struct decision *d,
			int64_t generation, time_t now)
{
	memset(r, 0, offsetof(struct record, queue_id));
	r->at = now;
	r->tls = req->tls;
	r->generation = generation;
	r->addr_valid = req->addr_valid;
	r->addr = req->addr;
	field(r->queue_id, sizeof(r->queue_id), req->queue_id);
	field(r->instance, sizeof(r->instance), req->instance);
	field(r->user, sizeof(r->user), req->user);
	field(r->client, sizeof(r->client), req->client_addr);
	r->network[0] = '\0';
	field(r->mech, sizeof(r->mech), req->mech);
	sg_upper(r->mech, r->mech, sizeof(r->mech));
	r->mech_class[0] = '\0';
	if (d->outcome != OUTCOME_NOT_AUTHENTICATED)
		sg_strlcpy(r->mech_class, mech_class_name(d->mech_class), sizeof(r->mech_class));
	field(r->service, sizeof(r->service), req->service);
	field(r->sender, sizeof(r->sender), req->sender);
	sg_strlcpy(r->outcome, decision_label(d), sizeof(r->outcome));
	field(r->policy, sizeof(r->policy), d->policy);
	field(r->report_only, sizeof(r->report_only), d->report_only);
}

static void format_record(char *buf, size_t len, const struct record *r)
{
	snprintf(buf, len,
		 "decision instance=%s queue_id=%s client=%s user=%s mech=%s class=%s tls=%s "
		 "service=%s outcome=%s policy=%s report_only=%s",
		 or_dash(r->instance), or_dash(r->queue_id), or_dash(r->client), or_dash(r->user),
		 or_dash(r->mech), or_dash(r->mech_class), r->tls ? "yes" : "no",
		 or_dash(r->service), r->outcome, or_dash(r->policy), or_dash(r->report_only));
}

void activity_format_line(char *buf, size_t len, const struct request *req,
			  const struct decision *d)
{
	struct record r;

	fill_record(&r, req, d, 0, 0);
	format_record(buf, len, &r);
}

void activity_record(struct activity *act, const struct request *req,
		     const struct decision *d, int64_t snap_generation, time_t now)
{
	struct record r;

	fill_record(&r, req, d, snap_generation, now);
	if (act->log_decisions) {
		char line[1400];

		format_record(line, sizeof(line), &r);
		log_info("%s", line);
	}
	pthread_mutex_lock(&act->lock);
	act->counters.requests++;
	switch (d->outcome) {
	case OUTCOME_BLOCK:
		act->counters.blocks++;
		break;
	case OUTCOME_ALLOW:
		if (d->n_report_only > 0)
			act->counters.would_blocks++;
		else
			act->counters.allows++;
		break;
	case OUTCOME_NOT_AUTHENTICATED:
		act->counters.not_authenticated++;
		break;
	}
	if (act->count == act->cap / 2)
		pthread_cond_signal(&act->wake);
	if (act->count == act->cap) {
		act->dropped++;
		pthread_mutex_unlock(&act->lock);
		return;
	}
	act->ring[(act->head + act->count) % act->cap] = r;
	act->count++;
	pthread_mutex_unlock(&act->lock);
}

void activity_count_error(struct activity *act)
{
	pthread_mutex_lock(&act->lock);
	act->counters.requests++;
	act->counters.errors++;
	pthread_mutex_unlock(&act->lock);
}

void activity_set_status(struct activity *act, int64_t generation, int degraded,
			 const char *reason)
{
	pthread_mutex_lock(&act->lock);
	act->generation = generation;
	act->degraded = degraded;
	sg_strlcpy(act->reason, reason != NULL ? reason : "", sizeof(act->reason));
	pthread_mutex_unlock(&act->lock);
}

void activity_set_rebuilds(struct activity *act, uint64_t rebuilds, uint64_t last_rebuild_us)
{
	pthread_mutex_lock(&act->lock);
	act->rebuilds = rebuilds;
	act->last_rebuild_us = last_rebuild_us;
	pthread_mutex_unlock(&act->lock);
}

uint64_t activity_dropped(struct activity *act)
{
	uint64_t n;

	pthread_mutex_lock(&act->lock);
	n = act->dropped;
	pthread_mutex_unlock(&act->lock);
	return n;
}

/* ------------------------------------------------------------ writer thread */

static const char sql_decision[] =
	"INSERT INTO decisions (at, daemon, queue_id, instance, user, client, mech, mech_class, "
	"tls, service, sender, outcome, policy, report_only, generation) "
	"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
static const char sql_usage[] =
	"INSERT INTO usage (user, mech, network, mech_class, first_seen, last_seen, count, "
	"last_outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
	"ON CONFLICT (user, mech, network) DO UPDATE SET "
	"first_seen = min(first_seen, excluded.first_seen), "
	"last_seen = max(last_seen, excluded.last_seen), count = count + excluded.count, "
	"mech_class = excluded.mech_class, last_outcome = excluded.last_outcome";
static const char sql_heartbeat[] =
	"INSERT INTO heartbeats (program, host, pid, started_at, last_seen, generation, degraded, "
	"degraded_reason, requests, blocks, allows, would_blocks, not_authenticated, errors, "
	"dropped, rebuilds, last_rebuild_us, stopped) "
	"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
	"ON CONFLICT (program, host, pid) DO UPDATE SET last_seen = excluded.last_seen, "
	"generation = excluded.generation, degraded = excluded.degraded, "
	"degraded_reason = excluded.degraded_reason, requests = excluded.requests, "
	"blocks = excluded.blocks, allows = excluded.allows, "
	"would_blocks = excluded.would_blocks, not_authenticated = excluded.not_authenticated, "
	"errors = excluded.errors, dropped = excluded.dropped, rebuilds = excluded.rebuilds, "
	"last_rebuild_us = excluded.last_rebuild_us, stopped = excluded.stopped";

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s != NULL && *s != '\0')
		sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

static int write_decision(struct activity *act, const struct record *r)
{
	sqlite3_stmt *ins = act->ins;

	sqlite3_reset(ins);
	sqlite3_clear_bindings(ins);
	sqlite3_bind_int64(ins, 1, (sqlite3_int64)r->at);
	sqlite3_bind_text(ins, 2, act->program, -1, SQLITE_STATIC);
	bind_text(ins, 3, r->queue_id);
	bind_text(ins, 4, r->instance);
	bind_text(ins, 5, r->user);
	bind_text(ins, 6, r->client);
	bind_text(ins, 7, r->mech);
	bind_text(ins, 8, r->mech_class);
	sqlite3_bind_int(ins, 9, r->tls);
	bind_text(ins, 10, r->service);
	bind_text(ins, 11, r->sender);
	sqlite3_bind_text(ins, 12, r->outcome, -1, SQLITE_STATIC);
	bind_text(ins, 13, r->policy);
	bind_text(ins, 14, r->report_only);
	sqlite3_bind_int64(ins, 15, r->generation);
	return sqlite3_step(ins) == SQLITE_DONE ? 0 : -1;
}

/* One usage row's worth of a batch: the records of one user x mech x network. */
struct usage_sum {
	const struct record *last; /* newest record (its outcome and class) */
	time_t first_seen;
	long count;
};

static int write_usage(struct activity *act, const struct usage_sum *u)
{
	const struct record *r = u->last;
	sqlite3_stmt *use = act->use;

	sqlite3_reset(use);
	sqlite3_bind_text(use, 1, r->user, -1, SQLITE_STATIC);
	sqlite3_bind_text(use, 2, r->mech, -1, SQLITE_STATIC);
	sqlite3_bind_text(use, 3, r->network[0] ? r->network : "-", -1, SQLITE_STATIC);
	sqlite3_bind_text(use, 4, r->mech_class[0] ? r->mech_class : "legacy", -1,
			  SQLITE_STATIC);
	sqlite3_bind_int64(use, 5, (sqlite3_int64)u->first_seen);
	sqlite3_bind_int64(use, 6, (sqlite3_int64)r->at);
	sqlite3_bind_int64(use, 7, u->count);
	sqlite3_bind_text(use, 8, r->outcome, -1, SQLITE_STATIC);
	return sqlite3_step(use) == SQLITE_DONE ? 0 : -1;
}

/* Sums a batch's usage per user x mechanism x network, so that a busy user
 * costs one upsert per batch rather than one per submission. */
static size_t sum_usage(struct record *batch, size_t n, struct usage_sum *sums)
{
	struct hash *index = hash_create(n);
	char key[sizeof(batch->user) + sizeof(batch->mech) + sizeof(batch->network) + 2];
	size_t n_sums = 0;

	for (size_t i = 0; i < n; i++) {
		struct record *r = &batch[i];
		void **slot;

		if (r->mech[0] == '\0')
			continue; /* not authenticated: no usage */
		if (r->addr_valid) {
			struct cidr net;

			cidr_network_of(&r->addr, &net);
			cidr_format(&net, r->network, sizeof(r->network));
		}
		snprintf(key, sizeof(key), "%s\x1f%s\x1f%s", r->user, r->mech, r->network);
		slot = hash_slot(index, key);
		if (*slot == NULL) {
			sums[n_sums].first_seen = r->at;
			sums[n_sums].count = 0;
			*slot = &sums[n_sums++];
		}
		((struct usage_sum *)*slot)->last = r;
		((struct usage_sum *)*slot)->count++;
	}
	hash_free(&index, NULL);
	return n_sums;
}

static int write_batch(struct activity *act, struct record *batch, size_t n,
		       struct usage_sum *sums)
{
	size_t n_sums;
	int rc = -1;

	if (store_exec(act->db, "BEGIN IMMEDIATE", NULL) < 0)
		goto fail;
	for (size_t i = 0; i < n; i++)
		if (write_decision(act, &batch[i]) < 0)
			goto fail;
	n_sums = sum_usage(batch, n, sums);
	for (size_t i = 0; i < n_sums; i++)
		if (write_usage(act, &sums[i]) < 0)
			goto fail;
	if (store_exec(act->db, "COMMIT", NULL) == 0)
		rc = 0;
fail:
	if (rc < 0) {
		log_error("activity.db: cannot record %zu decisions: %s", n,
			  sqlite3_errmsg(act->db));
		store_rollback(act->db);
	}
	return rc;
}

static void write_heartbeat(struct activity *act, int stopped)
{
	struct activity_counters c;
	sqlite3_stmt *st;
	int64_t generation;
	int degraded;
	char reason[256];
	uint64_t dropped, rebuilds, last_us;

	if (act->db == NULL)
		return;
	pthread_mutex_lock(&act->lock);
	c = act->counters;
	generation = act->generation;
	degraded = act->degraded;
	sg_strlcpy(reason, act->reason, sizeof(reason));
	dropped = act->dropped;
	rebuilds = act->rebuilds;
	last_us = act->last_rebuild_us;
	pthread_mutex_unlock(&act->lock);
	if (sqlite3_prepare_v2(act->db, sql_heartbeat, -1, &st, NULL) != SQLITE_OK)
		return;
	sqlite3_bind_text(st, 1, act->program, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, act->host, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)getpid());
	sqlite3_bind_int64(st, 4, (sqlite3_int64)act->started);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)time(NULL));
	sqlite3_bind_int64(st, 6, generation);
	sqlite3_bind_int(st, 7, degraded);
	bind_text(st, 8, reason);
	sqlite3_bind_int64(st, 9, (sqlite3_int64)c.requests);
	sqlite3_bind_int64(st, 10, (sqlite3_int64)c.blocks);
	sqlite3_bind_int64(st, 11, (sqlite3_int64)c.allows);
	sqlite3_bind_int64(st, 12, (sqlite3_int64)c.would_blocks);
	sqlite3_bind_int64(st, 13, (sqlite3_int64)c.not_authenticated);
	sqlite3_bind_int64(st, 14, (sqlite3_int64)c.errors);
	sqlite3_bind_int64(st, 15, (sqlite3_int64)dropped);
	sqlite3_bind_int64(st, 16, (sqlite3_int64)rebuilds);
	sqlite3_bind_int64(st, 17, (sqlite3_int64)last_us);
	sqlite3_bind_int(st, 18, stopped);
	if (sqlite3_step(st) != SQLITE_DONE)
		log_error("activity.db: cannot write heartbeat: %s", sqlite3_errmsg(act->db));
	sqlite3_finalize(st);
}

static void close_db(struct activity *act)
{
	sqlite3_finalize(act->ins);
	sqlite3_finalize(act->use);
	act->ins = act->use = NULL;
	store_close(&act->db);
}

/* Opens activity.db if it is not open; retried every 5 s while it fails. */
static int ensure_open(struct activity *act, time_t now)
{
	struct sg_err err;

	if (act->db != NULL)
		return 0;
	if (now < act->next_open_attempt)
		return -1;
	act->next_open_attempt = now + 5;
	if (store_open_activity(act->dir, 0, &act->db, &err) == 0 &&
	    (store_exec(act->db, "PRAGMA cache_size = -16384", &err) < 0 || /* 16 MiB */
	     sqlite3_prepare_v2(act->db, sql_decision, -1, &act->ins, NULL) != SQLITE_OK ||
	     sqlite3_prepare_v2(act->db, sql_usage, -1, &act->use, NULL) != SQLITE_OK)) {
		sg_err_set(&err, "%s", sqlite3_errmsg(act->db));
		close_db(act);
	}
	if (act->db == NULL) {
		if (now - act->last_loss_log >= 60) {
			log_error("activity.db unavailable, decisions are not recorded: %s",
				  err.text);
			act->last_loss_log = now;
		}
		return -1;
	}
	log_info("activity.db open in %s", act->dir);
	return 0;
}

static void count_loss(struct activity *act, size_t n, time_t now)
{
	uint64_t total;

	pthread_mutex_lock(&act->lock);
	act->dropped += n;
	total = act->dropped;
	pthread_mutex_unlock(&act->lock);
	if (now - act->last_loss_log >= 60 && total != act->dropped_logged) {
		log_warning("activity: %llu decision records lost so far",
			    (unsigned long long)total);
		act->last_loss_log = now;
		act->dropped_logged = total;
	}
}

static void *writer_main(void *arg)
{
	struct activity *act = arg;
	size_t batch_cap = act->cap < 4096 ? act->cap : 4096;
	struct record *batch = xcalloc(batch_cap, sizeof(*batch));
	struct usage_sum *sums = xcalloc(batch_cap, sizeof(*sums));
	time_t next_heartbeat = 0;
	int stopping;


	for (;;) {
		struct timespec deadline;
		size_t n = 0;
		time_t now;

		pthread_mutex_lock(&act->lock);
		/* Batch: wait a flush interval unless the ring is filling up. */
		if (!act->stopping && act->count < act->cap / 2) {
			clock_gettime(CLOCK_REALTIME, &deadline);
			deadline.tv_nsec += (long)(act->flush_ms % 1000) * 1000000L;
			deadline.tv_sec += act->flush_ms / 1000 + deadline.tv_nsec / 1000000000L;
			deadline.tv_nsec %= 1000000000L;
			pthread_cond_timedwait(&act->wake, &act->lock, &deadline);
		}
		while (n < batch_cap && act->count > 0) {
			batch[n++] = act->ring[act->head];
			act->head = (act->head + 1) % act->cap;
			act->count--;
		}
		stopping = act->stopping && act->count == 0;
		pthread_mutex_unlock(&act->lock);

		now = time(NULL);
		if (n > 0) {
			if (ensure_open(act, now) < 0 || write_batch(act, batch, n, sums) < 0)
				count_loss(act, n, now);
		}
		if (now >= next_heartbeat || stopping) {
			if (ensure_open(act, now) == 0)
				write_heartbeat(act, stopping);
			next_heartbeat = now + act->heartbeat_s;
		}
		if (stopping)
			break;
	}
	free(batch);
	free(sums);
	return NULL;
}

struct activity *activity_open(const struct activity_options *opt, struct sg_err *err)
{
	struct activity *act = xcalloc(1, sizeof(*act));
	int rc;

	pthread_mutex_init(&act->lock, NULL);
	pthread_cond_init(&act->wake, NULL);
	act->dir = xstrdup(opt->dir);
	sg_strlcpy(act->program, opt->program, sizeof(act->program));
	act->flush_ms = opt->flush_ms ? opt->flush_ms : 200;
	act->heartbeat_s = opt->heartbeat_s ? opt->heartbeat_s : 5;
	act->log_decisions = opt->log_decisions;
	act->cap = opt->queue_max ? opt->queue_max : 10000;
	act->ring = xcalloc(act->cap, sizeof(*act->ring));
	act->started = time(NULL);
	if (gethostname(act->host, sizeof(act->host)) < 0)
		sg_strlcpy(act->host, "localhost", sizeof(act->host));
	act->host[sizeof(act->host) - 1] = '\0';
	ensure_open(act, act->started);
	rc = pthread_create(&act->thread, NULL, writer_main, act);
	if (rc != 0) {
		sg_err_set(err, "cannot start the activity writer: %s", strerror(rc));
		close_db(act);
		free(act->ring);
		free(act->dir);
		free(act);
		return NULL;
	}
	return act;
}

void activity_close(struct activity **actp)
{
	struct activity *act = *actp;

	if (act == NULL)
		return;
	pthread_mutex_lock(&act->lock);
	act->stopping = 1;
	pthread_cond_signal(&act->wake);
	pthread_mutex_unlock(&act->lock);
	pthread_join(act->thread, NULL);
	close_db(act);
	pthread_cond_destroy(&act->wake);
	pthread_mutex_destroy(&act->lock);
	free(act->ring);
	free(act->dir);
	free(act);
	*actp = NULL;
}
