/*
 * hash - open addressing with linear probing, FNV-1a, power-of-two capacity,
 * grown to keep the load under 70 %. Each slot keeps the full hash so probes
 * compare keys only on a hash match. There is no deletion: snapshots are built
 * once and then only read.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "hash.h"
#include "util.h"

struct hash_entry {
	char *key; /* NULL: empty slot */
	size_t keylen;
	uint64_t hash;
	void *value;
};

struct hash {
	struct hash_entry *slots;
	size_t cap; /* power of two */
	size_t count;
};

#define HASH_MIN_CAP 16

static uint64_t mix(uint64_t h, uint64_t v)
{
	h = (h ^ v) * 0x9e3779b97f4a7c15ULL;
	return h ^ (h >> 29); /* the high bits down: the table indexes with the low bits */
}

/* Eight bytes at a time (byte-at-a-time FNV-1a spent about 4 instructions a
 * byte, on every user name the engine looks up). */
uint64_t hash_mem(uint64_t seed, const void *data, size_t len)
{
	const char *s = data;
	uint64_t h = seed, v;

	for (; len >= 8; s += 8, len -= 8) {
		memcpy(&v, s, 8);
		h = mix(h, v);
	}
	v = 0;
	if (len > 0)
		memcpy(&v, s, len);
	return mix(h, v ^ (uint64_t)len << 56);
}

/* Capacity keeping n keys under 70 % load. */
static size_t cap_for(size_t n)
{
	size_t cap = HASH_MIN_CAP;

	while (cap / 10 * 7 < n + 1)
		cap *= 2;
	return cap;
}

struct hash *hash_create(size_t expected)
{
	struct hash *h = xcalloc(1, sizeof(*h));

	h->cap = cap_for(expected);
	h->slots = xcalloc(h->cap, sizeof(*h->slots));
	return h;
}

void hash_free(struct hash **hp, void (*free_value)(void *value))
{
	struct hash *h;
	size_t i;

	if (hp == NULL || *hp == NULL)
		return;
	h = *hp;
	for (i = 0; i < h->cap; i++) {
		if (h->slots[i].key == NULL)
			continue;
		free(h->slots[i].key);
		if (free_value != NULL && h->slots[i].value != NULL)
			free_value(h->slots[i].value);
	}
	free(h->slots);
	free(h);
	*hp = NULL;
}

static struct hash_entry *find(const struct hash *h, const char *key, size_t len, uint64_t hv)
{
	size_t mask = h->cap - 1;
	size_t i = (size_t)hv & mask;

	for (;;) {
		struct hash_entry *e = &h->slots[i];

		if (e->key == NULL)
			return e;
		if (e->hash == hv && e->keylen == len && memcmp(e->key, key, len) == 0)
			return e;
		i = (i + 1) & mask;
	}
}

static void grow(struct hash *h)
{
	struct hash_entry *old = h->slots;
	size_t oldcap = h->cap, i;

	h->cap *= 2;
	h->slots = xcalloc(h->cap, sizeof(*h->slots));
	for (i = 0; i < oldcap; i++) {
		if (old[i].key != NULL)
			*find(h, old[i].key, old[i].keylen, old[i].hash) = old[i];
	}
	free(old);
}

void **hash_slot(struct hash *h, const char *key)
{
	size_t len = strlen(key);
	uint64_t hv = hash_mem(0, key, len);
	struct hash_entry *e = find(h, key, len, hv);

	if (e->key != NULL)
		return &e->value;
	if (h->count + 1 > h->cap / 10 * 7) {
		grow(h);
		e = find(h, key, len, hv);
	}
	e->key = xstrndup(key, len);
	e->keylen = len;
	e->hash = hv;
	e->value = NULL;
	h->count++;
	return &e->value;
}

void *hash_get_n(const struct hash *h, const char *key, size_t len)
{
	const struct hash_entry *e = find(h, key, len, hash_mem(0, key, len));

	return e->key != NULL ? e->value : NULL;
}

void *hash_get(const struct hash *h, const char *key)
{
	return hash_get_n(h, key, strlen(key));
}

int hash_contains(const struct hash *h, const char *key)
{
	size_t len = strlen(key);

	return find(h, key, len, hash_mem(0, key, len))->key != NULL;
}

size_t hash_count(const struct hash *h)
{
	return h->count;
}

int hash_foreach(const struct hash *h, int (*fn)(const char *key, void *value, void *arg),
                 void *arg)
{
	size_t i;
	int r;

	for (i = 0; i < h->cap; i++) {
		if (h->slots[i].key == NULL)
			continue;
		r = fn(h->slots[i].key, h->slots[i].value, arg);
		if (r != 0)
			return r;
	}
	return 0;
}
