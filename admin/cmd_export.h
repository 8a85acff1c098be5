/*
 * cmd_export - the export document: the whole policy as one JSON object
 * (read back by cmd_import.c).
 */
#ifndef SASLGATE_CMD_EXPORT_H
#define SASLGATE_CMD_EXPORT_H

#include <stdio.h>
#include <time.h>

#include <sqlite3.h>

#include "util.h"

/* The document's "format" and the "version" this saslgatectl writes and reads. */
#define EXPORT_FORMAT  "saslgate-policy"
#define EXPORT_VERSION 1

/* Writes the whole policy of db as the export document to out, stamped with
 * now; run it inside a transaction for a consistent picture. 0, or -1 with
 * err (the document is then incomplete). */
int ctl_export_doc(sqlite3 *db, time_t now, FILE *out, struct sg_err *err);

#endif
