/*
 * usage_sums - the writer's usage sums (see usage_sums.h).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "hash.h"
#include "usage_sums.h"
#include "util.h"

/* A usage row in the making: the records of one user x mech x network since
 * the last flush of usage to activity.db. Its key (user, mechanism, network)
 * is kept in it, so that finding it touches one allocation. */
struct usage_sum {
	struct ipaddr net; /* the client network, host bits zero */
	uint8_t net_valid;
	uint16_t user_len, mech_len;
	time_t first_seen, last_seen;
	long count;
	int last_tls;
	char mech_class[12];
	char outcome[20];
	char last_client[64];
	char last_service[64];
	char network[48]; /* "ffff:ffff:ffff:ffff::/64" at most */
	char key[];       /* the user, NUL, the mechanism, NUL */
};

/* The usage sums by key: open addressing with linear probing; each slot
 * keeps its sum's hash, so a probe past another key costs no cache miss. */
struct usage_slot {
	uint64_t hv;
	struct usage_sum *u; /* NULL: empty */
};

/* The sums themselves are carved from blocks that live until the table is
 * cleared: a key costs no malloc() and free() of its own, and a flush of
 * tens of thousands of keys no free() each (the writer flushes often under
 * a light load). */
#define USAGE_BLOCK_BYTES 65536

struct usage_block {
	struct usage_block *next;
	size_t used, cap;
	max_align_t data[];
};

struct usage_sums {
	struct usage_slot *slots;
	size_t cap; /* power of two, at most 70% full */
	size_t count;
	struct usage_block *blocks; /* newest first */
};

/* size zeroed bytes, aligned, from the newest block or a new one. */
static void *usage_alloc(struct usage_sums *t, size_t size)
{
	struct usage_block *b = t->blocks;
	size_t align = sizeof(max_align_t);
	void *p;

	size = (size + align - 1) / align * align;
	if (b == NULL || b->cap - b->used < size) {
		size_t cap = size > USAGE_BLOCK_BYTES ? size : USAGE_BLOCK_BYTES;

		b = xmalloc(sizeof(*b) + cap);
		b->next = t->blocks;
		b->used = 0;
		b->cap = cap;
		t->blocks = b;
	}
	p = (char *)b->data + b->used;
	b->used += size;
	return memset(p, 0, size);
}

/* Frees the blocks after the newest, or all of them (keep_one 0). */
static void usage_blocks_free(struct usage_sums *t, int keep_one)
{
	struct usage_block *b = t->blocks, *next;

	if (keep_one && b != NULL) {
		b->used = 0;
		next = b->next;
		b->next = NULL;
		b = next;
	} else {
		t->blocks = NULL;
	}
	for (; b != NULL; b = next) {
		next = b->next;
		free(b);
	}
}

static size_t usage_cap_for(size_t n)
{
	size_t cap = 1024;

	while (cap / 10 * 7 < n + 1)
		cap *= 2;
	return cap;
}

static void table_init(struct usage_sums *t, size_t expected)
{
	t->cap = usage_cap_for(expected);
	t->slots = xcalloc(t->cap, sizeof(*t->slots));
	t->count = 0;
	t->blocks = NULL;
}

static void table_free(struct usage_sums *t)
{
	usage_blocks_free(t, 0);
	free(t->slots);
	t->slots = NULL;
	t->cap = t->count = 0;
}

static void usage_grow(struct usage_sums *t)
{
	struct usage_sums bigger;

	table_init(&bigger, t->count * 2);
	for (size_t i = 0; i < t->cap; i++) {
		size_t j;

		if (t->slots[i].u == NULL)
			continue;
		for (j = t->slots[i].hv & (bigger.cap - 1); bigger.slots[j].u != NULL;
		     j = (j + 1) & (bigger.cap - 1))
			;
		bigger.slots[j] = t->slots[i];
	}
	bigger.count = t->count;
	bigger.blocks = t->blocks; /* the sums stay where they are */
	free(t->slots);
	*t = bigger;
}

/* The sum of a key, added (zeroed, first_seen set) if new. */
static struct usage_sum *usage_get(struct usage_sums *t, const char *user, size_t user_len,
                                   const char *mech, size_t mech_len, const struct cidr *net,
                                   int net_valid, time_t at)
{
	uint64_t hv = hash_mem(hash_mem(0, user, user_len), mech, mech_len);
	struct usage_sum *u;
	size_t i;

	if (net_valid)
		hv = hash_mem(hv, &net->net, sizeof(net->net));
	for (i = hv & (t->cap - 1); t->slots[i].u != NULL; i = (i + 1) & (t->cap - 1)) {
		u = t->slots[i].u;
		if (t->slots[i].hv == hv && u->user_len == user_len && u->mech_len == mech_len &&
		    u->net_valid == net_valid &&
		    (!net_valid || memcmp(&u->net, &net->net, sizeof(u->net)) == 0) &&
		    memcmp(u->key, user, user_len) == 0 &&
		    memcmp(u->key + user_len + 1, mech, mech_len) == 0)
			return u;
	}
	u = usage_alloc(t, sizeof(*u) + user_len + mech_len + 2);
	u->net_valid = (uint8_t)net_valid;
	if (net_valid) {
		u->net = net->net;
		cidr_format(net, u->network, sizeof(u->network));
	} else {
		sg_strlcpy(u->network, "-", sizeof(u->network));
	}
	u->user_len = (uint16_t)user_len;
	u->mech_len = (uint16_t)mech_len;
	memcpy(u->key, user, user_len);
	memcpy(u->key + user_len + 1, mech, mech_len);
	u->first_seen = at;
	t->slots[i].hv = hv;
	t->slots[i].u = u;
	if (++t->count > t->cap / 10 * 7)
		usage_grow(t);
	return u;
}

struct usage_sums *usage_sums_new(size_t expected)
{
	struct usage_sums *t = xcalloc(1, sizeof(*t));

	table_init(t, expected);
	return t;
}

void usage_sums_free(struct usage_sums **tp)
{
	if (*tp == NULL)
		return;
	table_free(*tp);
	free(*tp);
	*tp = NULL;
}

void usage_sums_clear(struct usage_sums *t)
{
	usage_blocks_free(t, 1);
	memset(t->slots, 0, t->cap * sizeof(*t->slots));
	t->count = 0;
}

size_t usage_sums_count(const struct usage_sums *t)
{
	return t->count;
}

void usage_sums_add(struct usage_sums *t, const struct decision_record *d,
                    const struct ipaddr *addr)
{
	size_t mech_len = d->mech != NULL ? strlen(d->mech) : 0;
	struct cidr net = {{{0}}, 0};
	struct usage_sum *u;

	if (mech_len == 0)
		return; /* not authenticated: no usage */
	if (addr != NULL)
		cidr_network_of(addr, &net);
	u = usage_get(t, d->user, strlen(d->user), d->mech, mech_len, &net, addr != NULL,
	              (time_t)d->at);
	if ((time_t)d->at < u->first_seen)
		u->first_seen = (time_t)d->at;
	if ((time_t)d->at >= u->last_seen) {
		u->last_seen = (time_t)d->at;
		sg_strlcpy(u->mech_class, d->mech_class[0] ? d->mech_class : "legacy",
		           sizeof(u->mech_class));
		sg_strlcpy(u->outcome, d->outcome, sizeof(u->outcome));
		sg_strlcpy(u->last_client, d->client, sizeof(u->last_client));
		sg_strlcpy(u->last_service, d->service, sizeof(u->last_service));
		u->last_tls = d->tls;
	}
	u->count++;
}

int usage_sums_foreach(const struct usage_sums *t,
                       int (*fn)(const struct activity_usage_row *u, void *arg), void *arg)
{
	for (size_t i = 0; i < t->cap; i++) {
		const struct usage_sum *u = t->slots[i].u;
		struct activity_usage_row row;
		int rc;

		if (u == NULL)
			continue;
		row = (struct activity_usage_row){
		    .user = u->key,
		    .mech = u->key + u->user_len + 1,
		    .network = u->network,
		    .mech_class = u->mech_class,
		    .first_seen = (int64_t)u->first_seen,
		    .last_seen = (int64_t)u->last_seen,
		    .count = u->count,
		    .last_outcome = u->outcome,
		    .last_client = u->last_client,
		    .last_tls = u->last_tls,
		    .last_service = u->last_service,
		};
		if ((rc = fn(&row, arg)) != 0)
			return rc;
	}
	return 0;
}
