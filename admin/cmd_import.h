/*
 * cmd_import - replaces the whole policy with an export document; shared with
 * tests/fuzz/fuzz_import.c.
 */
#ifndef SASLGATE_CMD_IMPORT_H
#define SASLGATE_CMD_IMPORT_H

#include <sqlite3.h>

#include "ctl.h"

struct ctl_import_counts {
	int mechanisms, groups, locations, policies, exceptions;
};

/* Validates the export document doc (NUL-terminated JSON; file names it in
 * messages) and replaces the whole policy with it on db, inside the caller's
 * write transaction (ctl_begin); the caller then commits with ctl_finish() or
 * rolls back. counts receives what was imported. CTL_OK, CTL_USAGE (invalid
 * input, message printed naming the entry) or CTL_FAIL (store error). */
int ctl_import_doc(const struct ctl *ctl, sqlite3 *db, const char *doc, const char *file,
                   struct ctl_import_counts *counts);

#endif
