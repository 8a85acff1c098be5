/* Unit tests for the fleet spool of lib/activity_store.c (schema
 * activity-006.sql) on a real activity.db: what the writer adds in its
 * transaction, the cap, the next decision id, what the deliverer reads and
 * deletes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "activity_store.h"

static const struct activity_usage_row alice = {
    .user = "j\xf6rg@example.test", /* not UTF-8: kept as it is */
    .mech = "PLAIN",
    .network = "192.0.2.0/24",
    .mech_class = "legacy",
    .last_outcome = "block",
    .last_client = "192.0.2.10",
    .last_service = "587",
    .first_seen = 100,
    .last_seen = 105,
    .count = 3,
    .last_tls = 1,
};

/* One writer transaction: n decisions (a batch) and alice's usage, spooled
 * for host under max. Returns what activity_store_spool_add() did; *id the
 * first decision id. */
static int write_tx(struct activity_store *as, const char *host, int n, int64_t max, int64_t *id,
                    int64_t *seq)
{
	struct sg_err err = {{0}};
	int rc;

	assert_int_equal(activity_store_begin(as, &err), 0);
	assert_int_equal(activity_store_next_decision_id(as, id, &err), 0);
	assert_int_equal(activity_store_spool_next_id(as, id, &err), 0);
	rc = activity_store_spool_add(as, host, *id, n, 110, max, seq, &err);
	assert_true(rc >= 0);
	assert_int_equal(activity_store_add_batch(as, *id, "policyd", 100, 105, n, "[]", 2, &err),
	                 0);
	assert_int_equal(activity_store_add_usage(as, &alice, &err), 0);
	if (rc == 1)
		assert_int_equal(activity_store_spool_add_usage(as, *seq, &alice, &err), 0);
	assert_int_equal(activity_store_commit(as, &err), 0);
	return rc;
}

struct seen {
	int64_t seqs[8];
	int n;
	int64_t count;
	int64_t batch_ids[8];
	int n_batches;
};

static int seen_row(const struct activity_spool_row *r, void *arg)
{
	struct seen *s = arg;

	s->seqs[s->n++] = r->seq;
	return 0;
}

static int seen_usage(const struct activity_usage_row *u, void *arg)
{
	struct seen *s = arg;

	assert_string_equal(u->user, alice.user);
	assert_string_equal(u->last_client, "192.0.2.10");
	s->count += u->count;
	return 0;
}

static int seen_batch(const struct activity_raw_batch *b, void *arg)
{
	struct seen *s = arg;

	assert_int_equal(b->len, 2);
	assert_memory_equal(b->data, "[]", 2);
	s->batch_ids[s->n_batches++] = b->id;
	return 0;
}

static void test_spool(void **state)
{
	char dir[] = "/tmp/test_fleet_spool.XXXXXX", path[64];
	struct activity_store *as = NULL;
	struct sg_err err = {{0}};
	struct seen s;
	char token[64];
	int64_t id, seq, pending, deleted, n;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(activity_store_open(dir, ACTIVITY_STORE_WRITE, &as, &err), 0);
	assert_int_equal(activity_store_spool_state(as, token, sizeof(token), &pending, &err), 0);
	assert_int_equal(strlen(token), 16);
	assert_int_equal(pending, 0);

	/* 3 + 2 fit in a spool of 5; 1 more does not, and takes no row */
	assert_int_equal(write_tx(as, "mx1", 3, 5, &id, &seq), 1);
	assert_int_equal(id, 1);
	assert_int_equal(write_tx(as, "mx1", 2, 5, &id, &seq), 1);
	assert_int_equal(id, 4);
	assert_int_equal(write_tx(as, "mx1", 1, 5, &id, &seq), 0);
	assert_int_equal(seq, 0);
	assert_int_equal(activity_store_spool_state(as, token, sizeof(token), &pending, &err), 0);
	assert_int_equal(pending, 5);

	/* the deliverer's view: rows of its host in order, their usage, batches */
	memset(&s, 0, sizeof(s));
	assert_int_equal(activity_store_spool_rows(as, "mx1", 10, seen_row, &s, &err), 0);
	assert_int_equal(s.n, 2);
	assert_true(s.seqs[0] < s.seqs[1]);
	assert_int_equal(activity_store_spool_usage(as, s.seqs[0], seen_usage, &s, &err), 0);
	assert_int_equal(s.count, 3);
	assert_int_equal(activity_store_spool_batches(as, 1, 3, seen_batch, &s, &err), 0);
	assert_int_equal(s.n_batches, 1);
	assert_int_equal(s.batch_ids[0], 1);
	memset(&s, 0, sizeof(s));
	assert_int_equal(activity_store_spool_rows(as, "mx2", 10, seen_row, &s, &err), 0);
	assert_int_equal(s.n, 0);
	memset(&s, 0, sizeof(s));
	assert_int_equal(activity_store_spool_rows(as, "mx1", 1, seen_row, &s, &err), 0);
	assert_int_equal(s.n, 1);

	/* delivered up to the first row: it and its usage go, the second stays */
	assert_int_equal(activity_store_spool_delete(as, "mx1", s.seqs[0], &deleted, &err), 0);
	assert_int_equal(deleted, 3);
	assert_int_equal(activity_store_spool_state(as, token, sizeof(token), &pending, &err), 0);
	assert_int_equal(pending, 2);
	memset(&s, 0, sizeof(s));
	assert_int_equal(activity_store_spool_rows(as, "mx1", 10, seen_row, &s, &err), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(activity_store_spool_usage(as, s.seqs[0] - 1, seen_usage, &s, &err), 0);
	assert_int_equal(s.count, 0);

	/* a prune that empties the log does not give ids again */
	assert_int_equal(activity_store_prune_decisions(as, 1000, 100, &n, &err), 0);
	assert_int_equal(n, 6);
	assert_int_equal(write_tx(as, "mx1", 1, 5, &id, &seq), 1);
	assert_int_equal(id, 7);

	activity_store_close(&as);
	assert_null(as);
	snprintf(path, sizeof(path), "%s/activity.db", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/activity.db-wal", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/activity.db-shm", dir);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_spool),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
