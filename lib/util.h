/*
 * util - small helpers shared by every saslgate module: error reasons,
 * checked allocation, bounded string copies and ASCII case handling.
 *
 * Errors travel back to callers as a struct sg_err holding a human-readable
 * reason; the caller decides whether the error is fatal.
 */
#ifndef SASLGATE_UTIL_H
#define SASLGATE_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define SG_ERR_MAX 512

struct sg_err {
	char text[SG_ERR_MAX];
};

#define SG_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define SG_UNUSED       __attribute__((unused))

/* Sets the reason; err may be NULL (the reason is then dropped). Always returns -1
 * so that "return sg_err_set(err, ...);" reads naturally. */
int sg_err_set(struct sg_err *err, const char *fmt, ...) SG_PRINTF(2, 3);
#ifdef __clang_analyzer__
/* The static analyzer (make lint) sees one file at a time and would otherwise
 * follow "sg_err_set returned 0" paths that cannot happen. */
#define sg_err_set(...) (sg_err_set(__VA_ARGS__), -1)
#endif

/* Copies src into dst (size dstsize), always NUL-terminates when dstsize > 0.
 * Returns strlen(src); a result >= dstsize means the copy was truncated. */
size_t sg_strlcpy(char *dst, const char *src, size_t dstsize);

/* snprintf into buf that reports truncation: 0 on success, -1 if the output did
 * not fit (buf then holds a truncated, NUL-terminated prefix). */
int sg_snprintf(char *buf, size_t len, const char *fmt, ...) SG_PRINTF(3, 4);

/* ASCII-only case handling (never locale dependent). sg_lower copies src into
 * dst lower-cased, same contract as sg_strlcpy. */
size_t sg_lower(char *dst, const char *src, size_t dstsize);
size_t sg_upper(char *dst, const char *src, size_t dstsize);
int sg_strcasecmp(const char *a, const char *b);

/*
 * Comma-separated lists, as stored in policy.db ("legacy,XOAUTH2").
 * list_next() walks a list: *cursor starts at the list text; each call stores the
 * next item (trimmed of blanks, empty items skipped) into item/itemlen and returns
 * 1, or returns 0 at the end, or -1 if an item does not fit in itemlen.
 */
int list_next(const char **cursor, char *item, size_t itemlen);

/* The current time in seconds, exact: glibc's time() reads the coarse clock,
 * which may still show the previous second a few milliseconds into the next.
 * Decisions and their records are stamped with this. */
time_t sg_time_now(void);

/* Makes kib KiB the stack size of every thread created from now on with
 * default attributes (libmilter's workers: see milter/main.c). 0, or an
 * errno value. */
int sg_set_default_thread_stack(size_t kib);

#endif
