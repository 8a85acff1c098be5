/*
 * log - stderr or syslog, one whole line per call. The configuration (ident,
 * destination, level) is set at start-up; the atomics make later switches
 * (log_open again, log_set_level) safe against concurrent writers.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "log.h"

#define LOG_LINE_MAX 2048

static char log_ident[64] = "saslgate";
static atomic_int log_to_stderr = 1;
static atomic_int log_facility = LOG_MAIL;
static atomic_int log_min_level = LOG_LEVEL_INFO;

void log_open(const char *ident, int to_stderr, int facility)
{
	if (ident != NULL) {
		const char *slash = strrchr(ident, '/');

		sg_strlcpy(log_ident, slash ? slash + 1 : ident, sizeof(log_ident));
	}
	atomic_store(&log_facility, facility);
	atomic_store(&log_to_stderr, to_stderr);
	closelog();
	if (!to_stderr)
		openlog(log_ident, LOG_PID | LOG_NDELAY, facility);
}

void log_reopen(void)
{
	if (atomic_load(&log_to_stderr))
		return;
	closelog();
	openlog(log_ident, LOG_PID | LOG_NDELAY, atomic_load(&log_facility));
}

void log_set_level(enum log_level level)
{
	atomic_store(&log_min_level, (int)level);
}

static const char *level_name(enum log_level level)
{
	switch (level) {
	case LOG_LEVEL_DEBUG:
		return "debug";
	case LOG_LEVEL_INFO:
		return "info";
	case LOG_LEVEL_WARNING:
		return "warning";
	case LOG_LEVEL_ERROR:
		return "error";
	}
	return "error";
}

static int level_priority(enum log_level level)
{
	switch (level) {
	case LOG_LEVEL_DEBUG:
		return LOG_DEBUG;
	case LOG_LEVEL_INFO:
		return LOG_INFO;
	case LOG_LEVEL_WARNING:
		return LOG_WARNING;
	case LOG_LEVEL_ERROR:
		return LOG_ERR;
	}
	return LOG_ERR;
}

int log_enabled(enum log_level level)
{
	return (int)level >= atomic_load(&log_min_level);
}

/* "ident: level: ", what each line on stderr starts with; its length (0 if
 * buf is too short). */
static size_t stderr_prefix(char *buf, size_t len, enum log_level level)
{
	int n = snprintf(buf, len, "%s: %s: ", log_ident, level_name(level));

	return n > 0 && (size_t)n < len ? (size_t)n : 0;
}

/* Control characters from remote input would let a client forge log lines. */
static void sanitize(char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

SG_PRINTF(2, 0)
static void log_vwrite(enum log_level level, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX], prefix[sizeof(log_ident) + 16];

	if (!log_enabled(level))
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	sanitize(line);
	if (atomic_load(&log_to_stderr)) {
		stderr_prefix(prefix, sizeof(prefix), level);
		fprintf(stderr, "%s%s\n", prefix, line);
	} else {
		syslog(level_priority(level), "%s", line);
	}
}

void log_debug(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_DEBUG, fmt, ap);
	va_end(ap);
}

void log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_INFO, fmt, ap);
	va_end(ap);
}

void log_warning(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_WARNING, fmt, ap);
	va_end(ap);
}

void log_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_ERROR, fmt, ap);
	va_end(ap);
}

void fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_ERROR, fmt, ap);
	va_end(ap);
	exit(1);
}

size_t log_info_prefix(char *buf, size_t len)
{
	return stderr_prefix(buf, len, LOG_LEVEL_INFO);
}

void log_info_lines(const char *block, size_t len, size_t prefix_len)
{
	const char *line = block, *end = block + len;

	if (!log_enabled(LOG_LEVEL_INFO) || len == 0)
		return;
	if (atomic_load(&log_to_stderr)) {
		fwrite(block, 1, len, stderr);
		return;
	}
	while (line < end) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		size_t n = (size_t)((nl != NULL ? nl : end) - line);

		if (n > prefix_len)
			syslog(LOG_INFO, "%.*s", (int)(n - prefix_len), line + prefix_len);
		line += n + 1;
	}
}

static const struct {
	const char *name;
	int facility;
} facilities[] = {
    {"mail", LOG_MAIL},     {"daemon", LOG_DAEMON}, {"user", LOG_USER},     {"local0", LOG_LOCAL0},
    {"local1", LOG_LOCAL1}, {"local2", LOG_LOCAL2}, {"local3", LOG_LOCAL3}, {"local4", LOG_LOCAL4},
    {"local5", LOG_LOCAL5}, {"local6", LOG_LOCAL6}, {"local7", LOG_LOCAL7},
};

int log_facility_parse(const char *name, int *facility)
{
	size_t i;

	if (name == NULL)
		return -1;
	for (i = 0; i < sizeof(facilities) / sizeof(facilities[0]); i++) {
		if (sg_strcasecmp(name, facilities[i].name) == 0) {
			*facility = facilities[i].facility;
			return 0;
		}
	}
	return -1;
}
