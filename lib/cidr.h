/*
 * cidr - IPv4 and IPv6 addresses, CIDR ranges and a prefix tree that answers
 * "which ranges contain this address" in time bounded by the address length,
 * however many ranges are loaded (named locations, exceptions).
 *
 * IPv4 is held as IPv4-mapped IPv6 (::ffff:a.b.c.d, prefix + 96), so one tree
 * serves both families and a v4-mapped client address matches IPv4 ranges.
 */
#ifndef SASLGATE_CIDR_H
#define SASLGATE_CIDR_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct ipaddr {
	uint8_t b[16];
};

struct cidr {
	struct ipaddr net; /* host bits are zero */
	uint8_t prefixlen; /* 0..128, in the IPv6 space */
};

/* 1 if the address is IPv4 (v4-mapped), else 0. */
int ipaddr_is_v4(const struct ipaddr *addr);

/* Parses "192.0.2.1", "2001:db8::1", "[2001:db8::1]" or "IPv6:2001:db8::1"
 * (Sendmail's spelling). Returns 0 on success, -1 (reason in err) otherwise. */
int ipaddr_parse(const char *text, struct ipaddr *out, struct sg_err *err);

/* Formats the address in its usual text form (dotted quad for IPv4).
 * Returns 0, or -1 if len is too small (INET6_ADDRSTRLEN always suffices). */
int ipaddr_format(const struct ipaddr *addr, char *buf, size_t len);

/* The address of an AF_INET or AF_INET6 socket address, and its text as
 * inet_ntop() writes it for that family (an IPv4-mapped IPv6 address keeps
 * its "::ffff:" form) into text (INET6_ADDRSTRLEN suffices). 0, or -1 for
 * another family or a text too small. */
struct sockaddr;
int ipaddr_from_sockaddr(const struct sockaddr *sa, struct ipaddr *out, char *text, size_t len);

/* Parses "10.0.0.0/8", "2001:db8::/32", or a bare address (a host range).
 * Rejects bad addresses (10.0.0.300/8), prefixes out of range and ranges with
 * host bits set ("10.1.0.0/8": did you mean 10.0.0.0/8?). 0 or -1 with err. */
int cidr_parse(const char *text, struct cidr *out, struct sg_err *err);

/* Formats in the family's own notation ("10.0.0.0/8", "::1/128"). 0 or -1. */
int cidr_format(const struct cidr *range, char *buf, size_t len);

/* 1 if range contains addr, else 0. */
int cidr_contains(const struct cidr *range, const struct ipaddr *addr);

/* The client network used by the usage table: /24 for IPv4, /64 for IPv6. */
void cidr_network_of(const struct ipaddr *addr, struct cidr *out);

struct cidr_tree;

struct cidr_tree *cidr_tree_create(void);
/* Adds range with an integer value (a location or exception index); the same
 * range may carry several values. Returns 0, or -1 on allocation failure. */
int cidr_tree_insert(struct cidr_tree *tree, const struct cidr *range, uint32_t value);
/* Stores into values[0..max) the values of every range that contains addr, most
 * general range first, and returns how many there are in total (which may exceed
 * max: the caller can retry with a larger array). Never allocates. */
size_t cidr_tree_lookup(const struct cidr_tree *tree, const struct ipaddr *addr, uint32_t *values,
                        size_t max);
/* Approximate memory held by the tree, in bytes. */
size_t cidr_tree_memory(const struct cidr_tree *tree);
/* Frees the tree and sets *tree to NULL. */
void cidr_tree_free(struct cidr_tree **tree);

#endif
