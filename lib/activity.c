/*
 * activity - the queue and the writer thread (see activity.h). Callers only
 * pack a record and append it to a bounded queue under a mutex; one writer
 * thread takes the whole queue at a time, logs its decision lines
 * (decision_line.h) in a few large writes and turns it into one transaction
 * of activity_store.h: batches of decisions (decision_batch.h) and the usage
 * sums (usage_sums.h).
 */
#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "activity.h"
#include "activity_store.h"
#include "decision_batch.h"
#include "decision_line.h"
#include "fleet_ship.h"
#include "log.h"
#include "usage_sums.h"
#include "utf8.h"

/* The text fields of a record, in the order they are packed. */
enum rec_field {
	F_QUEUE_ID,
	F_INSTANCE,
	F_USER,
	F_CLIENT,
	F_MECH,
	F_MECH_CLASS,
	F_SERVICE,
	F_SENDER,
	F_OUTCOME,
	F_POLICY,
	F_REPORT_ONLY,
	N_FIELDS
};

/* The longest text kept per field; longer values are cut. */
static const unsigned short field_max[N_FIELDS] = {
    [F_QUEUE_ID] = 31,        [F_INSTANCE] = 63,   [F_USER] = 255,        [F_CLIENT] = 63,
    [F_MECH] = MECH_NAME_MAX, [F_MECH_CLASS] = 11, [F_SERVICE] = 63,      [F_SENDER] = 255,
    [F_OUTCOME] = 19,         [F_POLICY] = 63,     [F_REPORT_ONLY] = 255,
};

/* The longest text of a record's fields (the sum of field_max[]). */
#define FIELDS_MAX 1200

/*
 * A queued record: this head, then the fields as NUL-terminated strings, the
 * whole padded to 8 bytes. A typical decision packs into about 200 bytes, so
 * the queue costs memory and copying in proportion to what was said, not to
 * the longest possible values.
 */
struct record {
	uint32_t size; /* head and strings, padded */
	uint8_t tls, addr_valid;
	uint16_t off[N_FIELDS + 1]; /* where each field starts, from the head; the end */
	time_t at;
	int64_t generation;
	struct ipaddr addr; /* the writer derives the usage network from it */
};

#define FIELD(r, i)     ((const char *)(r) + (r)->off[i])
#define FIELD_LEN(r, i) ((size_t)((r)->off[(i) + 1] - (r)->off[i] - 1))

#define RECORD_MAX (sizeof(struct record) + N_FIELDS + FIELDS_MAX + 8)

/* The queue: records appended by the deciding threads to one buffer while the
 * writer drains the other; the writer swaps them under the lock. */
struct qbuf {
	char *data;
	size_t len, cap; /* bytes */
	size_t n;        /* records */
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
	int nice;

	struct qbuf fill; /* appended to by activity_record() */
	size_t cap;       /* records held before dropping */

	struct activity_counters counters;
	uint64_t dropped;
	int64_t generation;
	int degraded;
	char reason[256];
	uint64_t rebuilds, last_rebuild_us;
	char snapshot_source[16];
	int64_t snapshot_at;
	struct activity_auth_count auth[ACTIVITY_AUTH_KEYS]; /* Dovecot's reports */
	size_t n_auth;

	/* writer thread only */
	struct activity_store *store; /* NULL while activity.db is unavailable */
	struct usage_sums *usage;     /* the sums since usage_flushed */
	time_t usage_flushed;
	time_t started;
	time_t next_open_attempt;
	time_t last_loss_log;
	uint64_t dropped_logged;
	char *lines; /* a batch's decision lines; kept, as it is large */
	size_t lines_cap;
	char *json; /* a batch row's text; kept, as it is large */
	size_t json_cap;
	char host[256];

	/* a fleet host: the deliverer (started and stopped with the writer) and
	 * the spool's bookkeeping (writer thread only) */
	struct fleet_ship *fleet;
	int64_t spool_max;
	int64_t spool_seq; /* the spool row of the transaction being written, 0: none */
	uint64_t spool_dropped;
	time_t last_spool_log;
};

/* Appends a borrowed string to a packed record, cut at max bytes (before a
 * UTF-8 sequence the cut would split). Returns the bytes written, NUL
 * included. The deciding thread only copies the bytes as they came: the
 * writer escapes them for the decision line and the JSON text. */
static size_t pack_field(char *dst, const char *src, size_t max)
{
	size_t len = src != NULL ? strnlen(src, max) : 0;

	if (len == max && len > 0 && src[len] != '\0')
		for (int k = 0; k < 3 && len > 0 && ((unsigned char)src[len] & 0xc0) == 0x80; k++)
			len--;
	if (len > 0)
		memcpy(dst, src, len);
	dst[len] = '\0';
	return len + 1;
}

/* Makes room for need more bytes after the used ones of a buffer that is
 * kept and grows by doubling (the queue, a batch's lines and JSON text). */
static void reserve(char **buf, size_t *cap, size_t used, size_t need)
{
	size_t c = *cap ? *cap : 65536;

	if (*buf != NULL && *cap - used >= need)
		return;
	while (c - used < need)
		c *= 2;
	*buf = xrealloc(*buf, c);
	*cap = c;
}

/* Packs a decision into buf (RECORD_MAX bytes); returns its size. */
static size_t pack_record(char *buf, const struct request *req, const struct decision *d,
                          int64_t generation, time_t now)
{
	struct record *r = (struct record *)buf;
	const char *text[N_FIELDS] = {
	    [F_QUEUE_ID] = req->queue_id, [F_INSTANCE] = req->instance,
	    [F_USER] = req->user,         [F_CLIENT] = req->client_addr,
	    [F_MECH] = req->mech,         [F_SERVICE] = req->service,
	    [F_SENDER] = req->sender,     [F_OUTCOME] = decision_label(d),
	    [F_POLICY] = d->policy,       [F_REPORT_ONLY] = d->report_only,
	};
	size_t n = sizeof(*r);

	memset(r, 0, sizeof(*r));
	r->at = now;
	r->tls = (uint8_t)(req->tls != 0);
	r->generation = generation;
	r->addr_valid = (uint8_t)(req->addr_valid != 0);
	r->addr = req->addr;
	if (d->outcome != OUTCOME_NOT_AUTHENTICATED)
		text[F_MECH_CLASS] = mech_class_name(d->mech_class);
	for (int i = 0; i < N_FIELDS; i++) {
		size_t len = pack_field(buf + n, text[i], field_max[i]);

		r->off[i] = (uint16_t)n;
		if (i == F_MECH)
			sg_upper(buf + n, buf + n, len);
		n += len;
	}
	r->off[N_FIELDS] = (uint16_t)n;
	n = (n + 7) & ~(size_t)7;
	r->size = (uint32_t)n;
	return n;
}

#define DECISION_JSON_MAX DECISION_BATCH_ENCODED_MAX(FIELDS_MAX)
#define LINE_MAX_BYTES    DECISION_LINE_MAX(64, FIELDS_MAX)

/* The decision a queued record holds, its texts pointing into the record. */
static void record_view(const struct record *r, struct decision_record *d)
{
	d->id = 0;
	d->at = (int64_t)r->at;
	d->generation = r->generation;
	d->tls = r->tls;
	d->daemon = NULL;
	d->queue_id = FIELD(r, F_QUEUE_ID);
	d->instance = FIELD(r, F_INSTANCE);
	d->user = FIELD(r, F_USER);
	d->client = FIELD(r, F_CLIENT);
	d->mech = FIELD(r, F_MECH);
	d->mech_class = FIELD(r, F_MECH_CLASS);
	d->service = FIELD(r, F_SERVICE);
	d->sender = FIELD(r, F_SENDER);
	d->outcome = FIELD(r, F_OUTCOME);
	d->policy = FIELD(r, F_POLICY);
	d->report_only = FIELD(r, F_REPORT_ONLY);
}

static void count_outcome(struct activity_counters *c, const struct decision *d)
{
	c->requests++;
	switch (d->outcome) {
	case OUTCOME_BLOCK:
		c->blocks++;
		break;
	case OUTCOME_ALLOW:
		if (d->n_report_only > 0)
			c->would_blocks++;
		else
			c->allows++;
		break;
	case OUTCOME_NOT_AUTHENTICATED:
		c->not_authenticated++;
		break;
	}
}

void activity_record(struct activity *act, const struct request *req, const struct decision *d,
                     int64_t snap_generation, time_t now)
{
	char packed[RECORD_MAX] __attribute__((aligned(8)));
	size_t size = pack_record(packed, req, d, snap_generation, now);
	struct qbuf *q = &act->fill;

	pthread_mutex_lock(&act->lock);
	count_outcome(&act->counters, d);
	if (q->n >= act->cap) {
		act->dropped++;
		pthread_mutex_unlock(&act->lock);
		return;
	}
	reserve(&q->data, &q->cap, q->len, size);
	memcpy(q->data + q->len, packed, size);
	q->len += size;
	if (++q->n == act->cap / 2)
		pthread_cond_signal(&act->wake);
	pthread_mutex_unlock(&act->lock);
}

/* Room kept for the "(other)" keys: 4 classes (with "-") x 3 results. */
#define AUTH_OTHER_KEYS 12

static size_t auth_find(const struct activity *act, const struct activity_auth_count *key)
{
	size_t i;

	for (i = 0; i < act->n_auth; i++)
		if (strcmp(act->auth[i].service, key->service) == 0 &&
		    strcmp(act->auth[i].mech_class, key->mech_class) == 0 &&
		    strcmp(act->auth[i].result, key->result) == 0)
			break;
	return i;
}

void activity_count_auth_result(struct activity *act, const char *service, const char *mech_class,
                                const char *result)
{
	struct activity_auth_count key;
	size_t i;

	memset(&key, 0, sizeof(key));
	sg_strlcpy(key.service, service && *service ? service : "-", sizeof(key.service));
	sg_strlcpy(key.mech_class, mech_class && *mech_class ? mech_class : "-",
	           sizeof(key.mech_class));
	sg_strlcpy(key.result, result, sizeof(key.result));
	pthread_mutex_lock(&act->lock);
	i = auth_find(act, &key);
	if (i == act->n_auth && act->n_auth >= ACTIVITY_AUTH_KEYS - AUTH_OTHER_KEYS) {
		sg_strlcpy(key.service, "(other)", sizeof(key.service));
		i = auth_find(act, &key);
	}
	if (i == act->n_auth && act->n_auth < ACTIVITY_AUTH_KEYS)
		act->auth[act->n_auth++] = key;
	if (i < act->n_auth)
		act->auth[i].n++;
	pthread_mutex_unlock(&act->lock);
}

void activity_count_error(struct activity *act)
{
	pthread_mutex_lock(&act->lock);
	act->counters.requests++;
	act->counters.errors++;
	pthread_mutex_unlock(&act->lock);
}

void activity_set_status(struct activity *act, int64_t generation, int degraded, const char *reason)
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

void activity_set_snapshot(struct activity *act, const char *source, int64_t at)
{
	pthread_mutex_lock(&act->lock);
	sg_strlcpy(act->snapshot_source, source != NULL ? source : "",
	           sizeof(act->snapshot_source));
	act->snapshot_at = at;
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

/*
 * Decisions are stored a batch per row of decision_batches (schema
 * activity-003.sql): a JSON array of up to DECISIONS_PER_ROW decisions, each
 * [at, queue_id, instance, user, client, mech, mech_class, tls, service,
 * sender, outcome, policy, report_only, generation]. A row per decision cost
 * about 2 us (the b-tree inserts of the row and its index, binding fifteen
 * values); a batch row costs about as much as formatting its text. Rows are
 * kept to a few hundred decisions so that reading one (log explain) stays
 * cheap.
 */
#define DECISIONS_PER_ROW 500

/* Stores the records from data + *off on, up to DECISIONS_PER_ROW of them,
 * as one batch row with the ids from *id on, and adds them to the usage
 * sums; advances *off and *id. */
static int write_decisions(struct activity *act, const char *data, size_t len, size_t *off,
                           int64_t *id, struct sg_err *err)
{
	int64_t first_id = *id;
	time_t first = 0, last = 0;
	size_t used = 0;
	int k = 0;

	for (; k < DECISIONS_PER_ROW && *off < len; k++) {
		const struct record *r = (const struct record *)(data + *off);

		struct decision_record d;

		record_view(r, &d);
		reserve(&act->json, &act->json_cap, used, DECISION_JSON_MAX + 2);
		act->json[used++] = k == 0 ? '[' : ',';
		used = (size_t)(decision_batch_encode(act->json + used, &d) - act->json);
		if (k == 0 || r->at < first)
			first = r->at;
		if (k == 0 || r->at > last)
			last = r->at;
		usage_sums_add(act->usage, &d, r->addr_valid ? &r->addr : NULL);
		*off += r->size;
	}
	act->json[used++] = ']';
	*id += k;
	return activity_store_add_batch(act->store, first_id, act->program, (int64_t)first,
	                                (int64_t)last, k, act->json, used, err);
}

/* What a callback of the writer's transaction needs. */
struct activity_write {
	struct activity *act;
	struct sg_err *err;
};

static int write_usage(const struct activity_usage_row *u, void *arg)
{
	struct activity_write *w = arg;

	if (activity_store_add_usage(w->act->store, u, w->err) < 0)
		return 1;
	return w->act->spool_seq > 0 &&
	       activity_store_spool_add_usage(w->act->store, w->act->spool_seq, u, w->err) < 0;
}

static int write_usage_all(struct activity *act, struct sg_err *err)
{
	struct activity_write w = {act, err};

	return usage_sums_foreach(act->usage, write_usage, &w) != 0 ? -1 : 0;
}

/* The next sums keep the table's room (see usage_sums_clear). */
static void usage_reset(struct activity *act, time_t now)
{
	usage_sums_clear(act->usage);
	act->usage_flushed = now;
}

/* A fleet host: the transaction's spool row, for the n decisions from *id
 * on (raised to the spool's next id) and the usage written with them. A
 * spool they would take beyond spool_max drops them from the delivery
 * (counted, logged once a minute); activity.db keeps them. */
static int spool_batch(struct activity *act, int64_t *id, size_t n, time_t now, struct sg_err *err)
{
	int rc;

	act->spool_seq = 0;
	if (n > 0 && activity_store_spool_next_id(act->store, id, err) < 0)
		return -1;
	rc = activity_store_spool_add(act->store, act->host, *id, (int64_t)n, (int64_t)now,
	                              act->spool_max, &act->spool_seq, err);
	if (rc != 0)
		return rc < 0 ? -1 : 0;
	pthread_mutex_lock(&act->lock);
	act->dropped += n;
	pthread_mutex_unlock(&act->lock);
	act->spool_dropped += n;
	if (now - act->last_spool_log >= 60) {
		log_warning("fleet activity: the spool in %s/activity.db is full (fleet_spool_max "
		            "%lld decisions): %llu decisions not delivered to PostgreSQL so far",
		            act->dir, (long long)act->spool_max,
		            (unsigned long long)act->spool_dropped);
		act->last_spool_log = now;
	}
	return 0;
}

/*
 * One transaction: the batch's decisions (a row per DECISIONS_PER_ROW) and
 * the usage sums. A small batch (a light load: every test, most sites)
 * writes its sums with the decisions they count, so what `saslgatectl log`
 * shows is already in `report legacy`. Under a heavy load the sums span
 * batches until a heartbeat interval has passed or they hold USAGE_KEYS_MAX
 * keys (some 10 MB), and a busy user costs one upsert per interval instead
 * of one per submission. On failure the batch and the unwritten sums are
 * lost (and counted). On a fleet host the sums go into the spool with the
 * row of the batch they are written with; they may count decisions of
 * earlier rows, never of a batch the full spool refused: before such a
 * batch's decisions are added, the pending sums are spooled in a row of
 * their own, and the refused batch's usage is written to activity.db only,
 * so that PostgreSQL's usage counts exactly the decisions it has.
 */
#define USAGE_FLUSH_BATCH 500
#define USAGE_KEYS_MAX    40000

static int write_batch(struct activity *act, char *data, size_t len, size_t n, int last, time_t now)
{
	int rc = -1;
	int flush = last || n < USAGE_FLUSH_BATCH ||
	            now - act->usage_flushed >= (time_t)act->heartbeat_s ||
	            usage_sums_count(act->usage) >= USAGE_KEYS_MAX;
	int64_t id = 0;
	struct sg_err err = {{0}};

	if (activity_store_begin(act->store, &err) < 0)
		goto fail;
	if (len > 0 && activity_store_next_decision_id(act->store, &id, &err) < 0)
		goto fail;
	if (act->fleet != NULL && spool_batch(act, &id, len > 0 ? n : 0, now, &err) < 0)
		goto fail;
	if (act->fleet != NULL && len > 0 && act->spool_seq == 0) {
		/* refused by the full spool: the pending sums first, in a row of
		 * their own; this batch's usage then stays in activity.db */
		if (usage_sums_count(act->usage) > 0) {
			if (activity_store_spool_add(act->store, act->host, id, 0, (int64_t)now,
			                             act->spool_max, &act->spool_seq, &err) < 0 ||
			    write_usage_all(act, &err) != 0)
				goto fail;
			usage_sums_clear(act->usage);
			act->spool_seq = 0;
		}
		flush = 1;
	}
	for (size_t off = 0; off < len;)
		if (write_decisions(act, data, len, &off, &id, &err) < 0)
			goto fail;
	if (flush && write_usage_all(act, &err) != 0)
		goto fail;
	if (activity_store_commit(act->store, &err) == 0)
		rc = 0;
	if (rc == 0 && act->spool_seq > 0)
		fleet_ship_kick(act->fleet);
fail:
	if (rc < 0) {
		log_error("activity.db: cannot record %zu decisions: %s", n, err.text);
		activity_store_rollback(act->store);
	}
	if (flush || rc < 0)
		usage_reset(act, now);
	act->spool_seq = 0;
	return rc;
}

/* The decision lines of a batch, logged LINES_CHUNK bytes at a time
 * (decision_line_format() escapes the fields for a log line): few writes, and a buffer
 * that stays small whatever the batch. */
#define LINES_CHUNK 65536

static void log_batch(struct activity *act, const char *data, size_t len)
{
	char prefix[64];
	size_t prefix_len = log_info_prefix(prefix, sizeof(prefix)), n = 0;

	if (!log_enabled(LOG_LEVEL_INFO))
		return;
	for (size_t off = 0; off < len;) {
		const struct record *r = (const struct record *)(data + off);
		struct decision_record d;

		record_view(r, &d);
		reserve(&act->lines, &act->lines_cap, n, LINE_MAX_BYTES);
		n = (size_t)(decision_line_format(act->lines + n, prefix, prefix_len, &d) -
		             act->lines);
		off += r->size;
		if (n >= LINES_CHUNK || off >= len) {
			log_info_lines(act->lines, n, prefix_len);
			n = 0;
		}
	}
}

/* The report totals since start, one row per key (with the heartbeat). */
static void write_auth_results(struct activity *act)
{
	struct activity_auth_count copy[ACTIVITY_AUTH_KEYS];
	struct sg_err err = {{0}};
	size_t n;

	pthread_mutex_lock(&act->lock);
	n = act->n_auth;
	memcpy(copy, act->auth, n * sizeof(copy[0]));
	pthread_mutex_unlock(&act->lock);
	if (activity_store_put_auth_counts(act->store, act->program, act->host, (int64_t)getpid(),
	                                   copy, n, &err) < 0)
		log_error("activity.db: cannot write auth results: %s", err.text);
}

static void write_heartbeat(struct activity *act, int stopped)
{
	struct activity_heartbeat h;
	struct sg_err err = {{0}};

	if (act->store == NULL)
		return;
	memset(&h, 0, sizeof(h));
	sg_strlcpy(h.program, act->program, sizeof(h.program));
	sg_strlcpy(h.host, act->host, sizeof(h.host));
	h.pid = (int64_t)getpid();
	h.started_at = (int64_t)act->started;
	h.stopped = stopped;
	pthread_mutex_lock(&act->lock);
	h.generation = act->generation;
	h.degraded = act->degraded;
	sg_strlcpy(h.reason, act->reason, sizeof(h.reason));
	h.requests = (int64_t)act->counters.requests;
	h.blocks = (int64_t)act->counters.blocks;
	h.allows = (int64_t)act->counters.allows;
	h.would_blocks = (int64_t)act->counters.would_blocks;
	h.not_authenticated = (int64_t)act->counters.not_authenticated;
	h.errors = (int64_t)act->counters.errors;
	h.dropped = (int64_t)act->dropped;
	h.rebuilds = (int64_t)act->rebuilds;
	h.last_rebuild_us = (int64_t)act->last_rebuild_us;
	sg_strlcpy(h.snapshot_source, act->snapshot_source, sizeof(h.snapshot_source));
	h.snapshot_at = act->snapshot_at;
	pthread_mutex_unlock(&act->lock);
	h.last_seen = (int64_t)time(NULL);
	if (activity_store_put_heartbeat(act->store, &h, &err) < 0)
		log_error("activity.db: cannot write heartbeat: %s", err.text);
	write_auth_results(act);
	if (act->fleet != NULL)
		fleet_ship_kick(act->fleet);
}

/* Opens activity.db if it is not open; retried every 5 s while it fails. */
static int ensure_open(struct activity *act, time_t now)
{
	struct sg_err err;

	if (act->store != NULL)
		return 0;
	if (now < act->next_open_attempt)
		return -1;
	act->next_open_attempt = now + 5;
	if (activity_store_open(act->dir, ACTIVITY_STORE_WRITE, &act->store, &err) < 0) {
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

/*
 * The writer runs at its own nice level, by default the lowest (19): when
 * the CPU is short, answering the MTA comes first and the record keeping
 * waits (the queue then fills and drops, counted). Unlike SCHED_IDLE, nice 19
 * still gets a small share of a busy CPU, so other work on the machine cannot
 * starve the writer for good. With CPU to spare, which is every load short of
 * saturation, the level changes nothing.
 */
static void writer_set_nice(int nice)
{
	pid_t tid = (pid_t)syscall(SYS_gettid);

	if (setpriority(PRIO_PROCESS, (id_t)tid, nice) < 0)
		log_warning("activity writer: cannot set nice level %d: %s", nice, strerror(errno));
}

/* Bytes of queue buffer kept when little of it is in use (records take
 * about 200 bytes each). */
#define QUEUE_BUF_KEEP (1u << 20)

/* glibc serves a large buffer with mmap() at first, but after freeing one
 * it raises that threshold and keeps later ones in its heap, where free()
 * does not return them; malloc_trim() does. */
static void give_back_memory(void)
{
#ifdef __GLIBC__
	malloc_trim(0);
#endif
}

static void *writer_main(void *arg)
{
	struct activity *act = arg;
	struct qbuf q = {0};
	time_t next_heartbeat = 0;
	int stopping;

	writer_set_nice(act->nice);
	pthread_setname_np(pthread_self(), "activity");

	for (;;) {
		struct timespec deadline;
		struct qbuf taken;
		time_t now;

		pthread_mutex_lock(&act->lock);
		/* Batch: wait a flush interval unless the queue is filling up. */
		if (!act->stopping && act->fill.n < act->cap / 2) {
			clock_gettime(CLOCK_REALTIME, &deadline);
			deadline.tv_nsec += (long)(act->flush_ms % 1000) * 1000000L;
			deadline.tv_sec += act->flush_ms / 1000 + deadline.tv_nsec / 1000000000L;
			deadline.tv_nsec %= 1000000000L;
			pthread_cond_timedwait(&act->wake, &act->lock, &deadline);
		}
		taken = act->fill; /* swap: the deciding threads go on filling q */
		act->fill = q;
		q = taken;
		stopping = act->stopping;
		pthread_mutex_unlock(&act->lock);

		now = time(NULL);
		if (q.n > 0 && act->log_decisions)
			log_batch(act, q.data, q.len);
		/* Sums left from a busy spell are written within a heartbeat. */
		if (q.n > 0 ||
		    (usage_sums_count(act->usage) > 0 &&
		     (stopping || now - act->usage_flushed >= (time_t)act->heartbeat_s))) {
			if (ensure_open(act, now) < 0 ||
			    write_batch(act, q.data, q.len, q.n, stopping, now) < 0)
				count_loss(act, q.n, now);
		}
		/* A burst's buffer is given back once the load has fallen. */
		if (q.cap > QUEUE_BUF_KEEP && q.len < q.cap / 8) {
			free(q.data);
			q.data = NULL;
			q.cap = 0;
			give_back_memory();
		}
		q.len = q.n = 0;
		if (now >= next_heartbeat || stopping) {
			if (ensure_open(act, now) == 0)
				write_heartbeat(act, stopping);
			next_heartbeat = now + act->heartbeat_s;
		}
		if (stopping)
			break;
	}
	free(q.data);
	return NULL;
}

static int start_fleet(struct activity *act, const struct activity_options *opt, struct sg_err *err)
{
	struct fleet_ship_options fo = {
	    .conninfo = opt->fleet_store,
	    .dir = act->dir,
	    .host = act->host,
	    .program = opt->fleet_program != NULL ? opt->fleet_program : act->program,
	    .interval_s = act->heartbeat_s,
	};

	act->spool_max = opt->fleet_spool_max ? (int64_t)opt->fleet_spool_max : 1000000;
	act->fleet = fleet_ship_start(&fo, err);
	return act->fleet != NULL ? 0 : -1;
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
	act->nice = opt->nice;
	act->cap = opt->queue_max ? opt->queue_max : 100000;
	act->fill.cap = 65536;
	act->fill.data = xmalloc(act->fill.cap);
	act->usage = usage_sums_new(0);
	act->started = time(NULL);
	act->usage_flushed = act->started;
	if (opt->host_name != NULL && *opt->host_name != '\0')
		sg_strlcpy(act->host, opt->host_name, sizeof(act->host));
	else if (gethostname(act->host, sizeof(act->host)) < 0)
		sg_strlcpy(act->host, "localhost", sizeof(act->host));
	act->host[sizeof(act->host) - 1] = '\0';
	ensure_open(act, act->started);
	if (opt->fleet_store != NULL && start_fleet(act, opt, err) < 0) {
		activity_store_close(&act->store);
		usage_sums_free(&act->usage);
		free(act->fill.data);
		free(act->dir);
		free(act);
		return NULL;
	}
	rc = pthread_create(&act->thread, NULL, writer_main, act);
	if (rc != 0) {
		sg_err_set(err, "cannot start the activity writer: %s", strerror(rc));
		fleet_ship_stop(&act->fleet);
		activity_store_close(&act->store);
		usage_sums_free(&act->usage);
		free(act->fill.data);
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
	fleet_ship_stop(&act->fleet); /* after the writer's last batch and heartbeat */
	activity_store_close(&act->store);
	usage_sums_free(&act->usage);
	pthread_cond_destroy(&act->wake);
	pthread_mutex_destroy(&act->lock);
	free(act->fill.data);
	free(act->lines);
	free(act->json);
	free(act->dir);
	free(act);
	*actp = NULL;
}
