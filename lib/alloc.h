/*
 * alloc - allocation that cannot fail: on exhaustion the process logs the
 * size it asked for and aborts. Used only where a failure could not be
 * handled sensibly. Above log (it logs) and util, so that neither of those
 * depends on the other.
 */
#ifndef SASLGATE_ALLOC_H
#define SASLGATE_ALLOC_H

#include <stddef.h>

/* malloc/calloc/realloc that never return NULL; a size of 0 allocates 1. */
void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *ptr, size_t size);

/* A copy of s (of at most n bytes of s, NUL-terminated). */
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

#endif
