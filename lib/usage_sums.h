/*
 * usage_sums - the usage table in the making: the daemons' writer adds each
 * authenticated decision to the sum of its user x mechanism x client network
 * and writes the sums to activity.db (activity_store_add_usage) once in a
 * while, so that a busy user costs one upsert per flush instead of one per
 * submission. Keys are the bytes as the daemon got them: two users that
 * differ in any byte are two sums. Used by one thread.
 */
#ifndef SASLGATE_USAGE_SUMS_H
#define SASLGATE_USAGE_SUMS_H

#include <stddef.h>

#include "activity_store.h"
#include "cidr.h"
#include "decision_batch.h"

struct usage_sums;

/* An empty table with room for about expected keys. Never fails. */
struct usage_sums *usage_sums_new(size_t expected);

/* Empties the table, keeping its room for as many keys as it had (a busy
 * writer does not grow it again after every flush). */
void usage_sums_clear(struct usage_sums *t);

/* Frees the table (NULL-safe) and sets *t to NULL. */
void usage_sums_free(struct usage_sums **t);

/* Adds d to its sum, keyed by user, mechanism and the network of addr (NULL
 * when the client address is unknown); a decision without a mechanism (not
 * authenticated) is no usage and is passed over. The newest decision of a
 * sum gives its class (legacy when unknown), outcome, client, TLS and
 * service. */
void usage_sums_add(struct usage_sums *t, const struct decision_record *d,
                    const struct ipaddr *addr);

/* The number of sums (keys). */
size_t usage_sums_count(const struct usage_sums *t);

/* Calls fn with each sum as a usage row (texts borrowed for the call), in
 * no order; stops at the first nonzero value of fn and returns it, else 0. */
int usage_sums_foreach(const struct usage_sums *t,
                       int (*fn)(const struct activity_usage_row *u, void *arg), void *arg);

#endif
