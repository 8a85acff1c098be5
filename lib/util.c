/*
 * util - error reasons, bounded strings, ASCII case.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#undef sg_err_set /* the analyzer-only macro of util.h */
int sg_err_set(struct sg_err *err, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return -1;
	va_start(ap, fmt);
	vsnprintf(err->text, sizeof(err->text), fmt, ap);
	va_end(ap);
	return -1;
}

size_t sg_strlcpy(char *dst, const char *src, size_t dstsize)
{
	size_t len = strlen(src);

	if (dstsize > 0) {
		size_t n = len < dstsize - 1 ? len : dstsize - 1;

		memcpy(dst, src, n);
		dst[n] = '\0';
	}
	return len;
}

int sg_snprintf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len)
		return -1;
	return 0;
}

static int ascii_lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static int ascii_upper(int c)
{
	return c >= 'a' && c <= 'z' ? c - ('a' - 'A') : c;
}

/* Eight bytes with their ASCII letters of one case flipped to the other:
 * upper = 0 lowers 'A'-'Z', upper = 1 raises 'a'-'z'; other bytes, non-ASCII
 * ones included, stay. */
static inline uint64_t flip_case8(uint64_t x, int upper)
{
	const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
	uint64_t low7 = x & ~high;
	/* bit 7 of each byte: the byte's low 7 bits are >= the range's first
	 * letter, and > its last */
	uint64_t ge = low7 + ones * (upper ? 0x80 - 'a' : 0x80 - 'A');
	uint64_t gt = low7 + ones * (upper ? 0x7f - 'z' : 0x7f - 'Z');
	uint64_t letter = (ge ^ gt) & ~x & high;

	return x ^ (letter >> 2); /* 0x80 >> 2 is the case bit, 0x20 */
}

/* Copies src cut to dstsize, with ASCII letters mapped to one case; returns
 * strlen(src). Eight bytes at a time: a call per byte through a pointer cost
 * the deciding thread about 250 instructions a request. */
static inline __attribute__((always_inline)) size_t copy_mapped(char *dst, const char *src,
                                                                size_t dstsize, int upper)
{
	size_t n = strlen(src), k, i = 0;
	uint64_t x;

	if (dstsize == 0)
		return n;
	k = n < dstsize - 1 ? n : dstsize - 1;
	for (; i + 8 <= k; i += 8) {
		memcpy(&x, src + i, 8);
		x = flip_case8(x, upper);
		memcpy(dst + i, &x, 8);
	}
	for (; i < k; i++)
		dst[i] = (char)(upper ? ascii_upper((unsigned char)src[i])
		                      : ascii_lower((unsigned char)src[i]));
	dst[k] = '\0';
	return n;
}

size_t sg_lower(char *dst, const char *src, size_t dstsize)
{
	return copy_mapped(dst, src, dstsize, 0);
}

size_t sg_upper(char *dst, const char *src, size_t dstsize)
{
	return copy_mapped(dst, src, dstsize, 1);
}

int sg_strcasecmp(const char *a, const char *b)
{
	const unsigned char *p = (const unsigned char *)a;
	const unsigned char *q = (const unsigned char *)b;
	int d;

	for (;; p++, q++) {
		d = ascii_lower(*p) - ascii_lower(*q);
		if (d != 0 || *p == '\0')
			return d;
	}
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int list_next(const char **cursor, char *item, size_t itemlen)
{
	const char *p = *cursor;

	if (p == NULL)
		return 0;
	for (;;) {
		const char *start, *end, *next;
		size_t n;

		while (is_blank(*p) || *p == ',')
			p++;
		if (*p == '\0') {
			*cursor = p;
			return 0;
		}
		start = p;
		while (*p != '\0' && *p != ',')
			p++;
		next = p;
		end = p;
		while (end > start && is_blank(end[-1]))
			end--;
		n = (size_t)(end - start);
		*cursor = next;
		if (n == 0)
			continue;
		if (n >= itemlen)
			return -1;
		memcpy(item, start, n);
		item[n] = '\0';
		return 1;
	}
}

time_t sg_time_now(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
		return time(NULL);
	return ts.tv_sec;
}

int sg_set_default_thread_stack(size_t kib)
{
	pthread_attr_t attr;
	int rc;

	if ((rc = pthread_attr_init(&attr)) == 0) {
		rc = pthread_attr_setstacksize(&attr, kib * 1024);
		if (rc == 0)
			rc = pthread_setattr_default_np(&attr);
		pthread_attr_destroy(&attr);
	}
	return rc;
}
