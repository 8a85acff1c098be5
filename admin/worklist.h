/*
 * worklist - the usage entries that report legacy and report html work
 * from: the rows of the usage table not of the modern class (user x
 * mechanism x client network), read from activity.db and replayed through
 * engine_decide() as their newest submission, to learn which exceptions
 * cover them now. A row written before activity.db schema 2 keeps no newest
 * submission: it is replayed from its network's first address, without TLS
 * and service.
 */
#ifndef SASLGATE_WORKLIST_H
#define SASLGATE_WORKLIST_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "activity_store.h"
#include "snapshot.h"

#define WORKLIST_EXC_MAX 4

/* One usage row and what its replay found. Texts are owned. */
struct worklist_entry {
	char *user, *mech, *network, *mech_class, *last_outcome;
	/* the fleet's store: the host of the newest use, every host that has
	 * the entry (comma-separated, sorted); NULL from activity.db */
	char *host, *hosts;
	int64_t first, last, count;
	/* the replayed submission: its client address, TLS and service ("" none) */
	char client[64];
	int tls;
	char service[64];
	int replayed;    /* 1: the newest submission's; 0: the network's address */
	const char *now; /* the decision now (decision_label(): a static string) */
	int covered;
	int64_t exc[WORKLIST_EXC_MAX]; /* covering exceptions (active) */
	size_t n_exc;
	int64_t expired[WORKLIST_EXC_MAX]; /* matching expired exceptions */
	size_t n_expired;
	int64_t expires; /* earliest expiry of the covering exceptions; 0 permanent */
};

struct worklist {
	struct worklist_entry *entries;
	size_t n_entries, cap_entries;
};

/* Appends the rows of q (activity_store_usage_legacy()). CTL_OK or CTL_FAIL
 * (message printed). */
int worklist_read(struct worklist *w, struct activity_store *as,
                  const struct activity_usage_query *q);

/* Replays every entry through snap at now and notes what covers it; expiry
 * gives an exception's expiry (0: permanent or unknown). CTL_OK or CTL_FAIL
 * (out of memory, printed). */
int worklist_replay(struct worklist *w, const struct snapshot *snap, time_t now,
                    int64_t (*expiry)(int64_t exception_id, void *arg), void *arg);

/* Sorts the entries by user, then most submissions, newest, mechanism and
 * network: a user's entries are then next to each other. */
void worklist_sort(struct worklist *w);

/* Frees the entries and zeroes *w. */
void worklist_free(struct worklist *w);

#endif
