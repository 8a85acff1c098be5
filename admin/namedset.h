/*
 * namedset - what groups (sets of user patterns) and locations (sets of CIDR
 * ranges) have in common; cmd_group.c and cmd_location.c are the command
 * tables over it.
 */
#ifndef SASLGATE_NAMEDSET_H
#define SASLGATE_NAMEDSET_H

#include "ctl.h"
#include "store_admin.h"

enum namedset_op { NAMEDSET_ADD, NAMEDSET_REMOVE, NAMEDSET_ADD_MEMBER, NAMEDSET_REMOVE_MEMBER };

/* Validates name and the n members (patterns for SA_GROUP, CIDRs for
 * SA_LOCATION), checks that the set exists (or not, for NAMEDSET_ADD) and,
 * for NAMEDSET_REMOVE, that nothing references it, and writes in one
 * transaction audited as action. Prints what changed. A ctl_status. */
int namedset_write(struct ctl *ctl, enum sa_kind kind, enum namedset_op op, const char *action,
                   const char *name, char **members, int n);
/* Lists the groups or locations with their members (text or --json). A
 * ctl_status. */
int namedset_list(struct ctl *ctl, enum sa_kind kind);

#endif
