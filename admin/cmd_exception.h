/*
 * cmd_exception - the exception commands; what export and explain share with
 * them.
 */
#ifndef SASLGATE_CMD_EXCEPTION_H
#define SASLGATE_CMD_EXCEPTION_H

#include <time.h>

#include "json.h"
#include "store_admin.h"

/* Writes an exception as a JSON object (the export format); with now != 0 it
 * adds "expired" (ignored by import). */
void ctl_exception_json(struct json *j, const struct sa_exception *e, time_t now);

#endif
