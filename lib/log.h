/*
 * log - one logging front end for the daemons and the CLI: syslog (mail facility
 * by default) when running detached, stderr in the foreground and in saslgatectl.
 * Thread-safe: every call writes one whole line.
 */
#ifndef SASLGATE_LOG_H
#define SASLGATE_LOG_H

#include "util.h"

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARNING, LOG_LEVEL_ERROR };

/* ident: program name; to_stderr: 1 to write to stderr, 0 for syslog;
 * facility: syslog facility (LOG_MAIL ...). May be called again to switch. */
void log_open(const char *ident, int to_stderr, int facility);
/* Closes and reopens the syslog connection (SIGHUP). */
void log_reopen(void);
/* Minimum level written; default LOG_LEVEL_INFO. */
void log_set_level(enum log_level level);

void log_debug(const char *fmt, ...) SG_PRINTF(1, 2);
void log_info(const char *fmt, ...) SG_PRINTF(1, 2);
void log_warning(const char *fmt, ...) SG_PRINTF(1, 2);
void log_error(const char *fmt, ...) SG_PRINTF(1, 2);
/* Start-up and environment errors only: logs and exits with status 1. */
void fatal(const char *fmt, ...) SG_PRINTF(1, 2) __attribute__((noreturn));

/* Whether messages of this level are logged at all. */
int log_enabled(enum log_level level);
/* Writes "ident: info: " to buf; returns its length (0 if buf is too short). */
size_t log_info_prefix(char *buf, size_t len);
/* Logs a block of info-level lines, each beginning with the prefix of
 * log_info_prefix() (prefix_len bytes) and ending in a newline: to stderr in
 * a single write, to syslog one message per line without the prefix. The
 * caller has made the lines safe (no control characters). For the activity
 * writer, which logs its decision lines a batch at a time. */
void log_info_lines(const char *block, size_t len, size_t prefix_len);

/* Parses a syslog facility name ("mail", "local0".."local7", "daemon", "user").
 * Returns 0 and stores it, or -1 for an unknown name. */
int log_facility_parse(const char *name, int *facility);

#endif
