/*
 * hash - a string-keyed hash table (open addressing, keys copied) used by the
 * snapshot for the mechanism catalogue, exact users, domains and name sets.
 * Keys are compared byte-for-byte: callers lower-case them first where the
 * domain says names are case-insensitive. Not thread-safe for writers; any
 * number of readers may share a table that is no longer modified.
 */
#ifndef SASLGATE_HASH_H
#define SASLGATE_HASH_H

#include <stddef.h>
#include <stdint.h>

struct hash;

/* Creates an empty table sized for about `expected` keys (0 is fine). */
struct hash *hash_create(size_t expected);

/* Frees the table and its key copies; free_value (may be NULL) is called on every
 * non-NULL value. Sets *h to NULL. */
void hash_free(struct hash **h, void (*free_value)(void *value));

/* Finds key, inserting it with a NULL value if absent. Returns the address of the
 * value slot, valid until the next insertion. */
void **hash_slot(struct hash *h, const char *key);

/* The table's hash of len bytes, chainable over several pieces (seed 0 to
 * start, then the previous result): for tables of their own whose keys are
 * not strings (the activity writer's usage sums). */
uint64_t hash_mem(uint64_t seed, const void *data, size_t len);

/* Returns the value stored under key (or the first len bytes of key for
 * hash_get_n), or NULL if the key is absent. */
void *hash_get(const struct hash *h, const char *key);
void *hash_get_n(const struct hash *h, const char *key, size_t len);

/* 1 if the key is present (whatever its value), else 0. */
int hash_contains(const struct hash *h, const char *key);

size_t hash_count(const struct hash *h);

/* Calls fn for every entry, in unspecified order; stops early if fn returns
 * non-zero and returns that value, else 0. */
int hash_foreach(const struct hash *h, int (*fn)(const char *key, void *value, void *arg),
                 void *arg);

#endif
