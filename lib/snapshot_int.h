/*
 * snapshot_int - the compiled snapshot's layout, shared by snapshot.c (which
 * builds it) and engine.c (which reads it). Nothing else includes this file.
 */
#ifndef SASLGATE_SNAPSHOT_INT_H
#define SASLGATE_SNAPSHOT_INT_H

#include <stdint.h>
#include <time.h>

#include "cidr.h"
#include "hash.h"
#include "mech.h"
#include "pattern.h"
#include "snapshot.h"

/* Mechanisms targeted by a policy or an exception: classes and/or names. */
struct mech_filter {
	unsigned classes; /* bit (1 << mech_class) */
	char **names;     /* lower-cased */
	size_t n_names;
	int any; /* exceptions: no filter */
};

/* A group; in a policy's userindex the value is the group a pattern came from,
 * or the snapshot's "direct" pseudo-group (name NULL) for a user pattern. */
struct sn_group {
	char *name;
	struct pattern *patterns;
	size_t n_patterns;
};

struct sn_location {
	char *name;
	struct cidr *nets;
	size_t n_nets;
};

struct sn_policy {
	char *name;
	enum policy_state state;
	time_t enforce_from;
	struct mech_filter mechs;
	char *mechs_text;
	int include_all_users;
	struct userindex *include_users; /* values: struct sn_group * */
	struct userindex *exclude_users;
	int include_any_location;
	uint32_t *include_locations; /* location indices */
	size_t n_include_locations;
	uint32_t *exclude_locations;
	size_t n_exclude_locations;
	enum tls_condition tls;
	int any_service;
	char **services; /* lower-cased */
	size_t n_services;
	char reply_code[4];
	char reply_enh[16];
	char *reply_text;
};

struct sn_exception {
	int64_t id;
	int policy;     /* policy index, -1 = every policy */
	int has_user;   /* user pattern or group */
	int from_group; /* indexed once per group member: may be found twice */
	int location;   /* location index, -1 = any */
	struct mech_filter mechs;
	time_t expires_at; /* 0 = permanent */
};

struct snapshot {
	int refs; /* atomic */
	int64_t generation;
	enum mech_class unknown_class;
	struct hash *catalogue; /* lower-cased name -> (void *)(uintptr_t)(class + 1) */

	struct sn_location *locations;
	size_t n_locations;
	struct cidr_tree *location_tree; /* value: location index */

	struct sn_policy *policies; /* sorted by name */
	size_t n_policies;

	struct sn_exception *exceptions;
	size_t n_exceptions;
	struct userindex *exception_users; /* values: struct sn_exception * */
	/* location-only exceptions, per location index */
	struct sn_exception ***by_location;
	size_t *n_by_location;

	struct sn_group *groups;
	size_t n_groups;
	struct sn_group direct; /* origin of direct user patterns (name NULL) */
};

#endif
