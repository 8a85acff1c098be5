/*
 * pgstore - saslgatectl on a PostgreSQL store (--store URI, $SASLGATE_STORE).
 * Every command runs unchanged, with all its validation, messages and exit
 * statuses, on a temporary local policy.db pulled from PostgreSQL; what it
 * changed is then pushed back in one transaction (see store_pg.h), refused
 * if another saslgatectl changed the policy since the pull. init creates the
 * schema, check verifies it.
 */
#ifndef SASLGATE_PGSTORE_H
#define SASLGATE_PGSTORE_H

#include "ctl.h"

/* Runs one command (argv[0] is its name) the way main() would. */
typedef int (*pgstore_dispatch)(struct ctl *ctl, int argc, char **argv);

/* Runs argv on the PostgreSQL store: pulls, calls dispatch with ctl->dir
 * set to the temporary copy (activity.db stays the one in the store
 * directory: it is linked in), pushes. The command's standard output and
 * error are held until the push succeeded: what describes a change that was
 * refused is not shown. Returns the exit status. */
int pgstore_run(struct ctl *ctl, const char *store, int argc, char **argv,
                pgstore_dispatch dispatch);

#endif
