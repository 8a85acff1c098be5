/*
 * utf8 - validation, case folding and the reversible escape of user names
 * (see utf8.h).
 */
#include <string.h>

#include "utf8.h"
#include "util.h"

size_t utf8_decode(const unsigned char *s, size_t avail, uint32_t *cp)
{
	unsigned char c = s[0];
	uint32_t v;
	size_t n;

	*cp = c;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		v = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		v = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		v = c & 0x07;
	} else {
		return 0;
	}
	if (n > avail)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		v = (v << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && v < 0x800) || (n == 4 && (v < 0x10000 || v > 0x10ffff)) ||
	    (v >= 0xd800 && v <= 0xdfff))
		return 0;
	*cp = v;
	return n;
}

int utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;
	uint32_t cp;

	while (p < end) {
		size_t n = *p < 0x80 ? 1 : utf8_decode(p, (size_t)(end - p), &cp);

		if (n == 0)
			return 0;
		p += n;
	}
	return 1;
}

int utf8_cp_unsafe(uint32_t cp)
{
	if (cp <= 0x20 || (cp >= 0x7f && cp <= 0xa0))
		return 1; /* C0, space, DEL, C1, no-break space */
	if (cp < 0x2000)
		return cp == 0xad || cp == 0x61c || cp == 0x115f || cp == 0x1160 || cp == 0x1680 ||
		       cp == 0x180e;
	if (cp <= 0x206f)
		return cp <= 0x200f ||                   /* spaces, zero-width, LRM/RLM */
		       (cp >= 0x2028 && cp <= 0x202f) || /* separators, bidi, NNBSP */
		       cp == 0x205f || cp >= 0x2060;     /* MMSP, joiners, bidi isolates */
	return cp == 0x3000 || cp == 0x3164 || cp == 0xfeff || cp == 0xffa0 ||
	       (cp >= 0xfff9 && cp <= 0xfffb) || (cp >= 0xe0000 && cp <= 0xe007f);
}

/*
 * Simple case folding as runs: each code point first, first + stride, ...
 * up to last folds to itself + delta. Generated from Unicode 14.0 simple
 * case folding (C and S) for the blocks named in utf8.h, without the folds
 * to ASCII and those that lengthen the UTF-8 text; sorted by first.
 */
static const struct fold_run {
	uint16_t first, last;
	int16_t delta;
	uint8_t stride;
} fold_runs[] = {
    {0x00b5, 0x00b5, 775, 1},  {0x00c0, 0x00d6, 32, 1},    {0x00d8, 0x00de, 32, 1},
    {0x0100, 0x012e, 1, 2},    {0x0132, 0x0136, 1, 2},     {0x0139, 0x0147, 1, 2},
    {0x014a, 0x0176, 1, 2},    {0x0178, 0x0178, -121, 1},  {0x0179, 0x017d, 1, 2},
    {0x0181, 0x0181, 210, 1},  {0x0182, 0x0184, 1, 2},     {0x0186, 0x0186, 206, 1},
    {0x0187, 0x0187, 1, 1},    {0x0189, 0x018a, 205, 1},   {0x018b, 0x018b, 1, 1},
    {0x018e, 0x018e, 79, 1},   {0x018f, 0x018f, 202, 1},   {0x0190, 0x0190, 203, 1},
    {0x0191, 0x0191, 1, 1},    {0x0193, 0x0193, 205, 1},   {0x0194, 0x0194, 207, 1},
    {0x0196, 0x0196, 211, 1},  {0x0197, 0x0197, 209, 1},   {0x0198, 0x0198, 1, 1},
    {0x019c, 0x019c, 211, 1},  {0x019d, 0x019d, 213, 1},   {0x019f, 0x019f, 214, 1},
    {0x01a0, 0x01a4, 1, 2},    {0x01a6, 0x01a6, 218, 1},   {0x01a7, 0x01a7, 1, 1},
    {0x01a9, 0x01a9, 218, 1},  {0x01ac, 0x01ac, 1, 1},     {0x01ae, 0x01ae, 218, 1},
    {0x01af, 0x01af, 1, 1},    {0x01b1, 0x01b2, 217, 1},   {0x01b3, 0x01b5, 1, 2},
    {0x01b7, 0x01b7, 219, 1},  {0x01b8, 0x01b8, 1, 1},     {0x01bc, 0x01bc, 1, 1},
    {0x01c4, 0x01c4, 2, 1},    {0x01c5, 0x01c5, 1, 1},     {0x01c7, 0x01c7, 2, 1},
    {0x01c8, 0x01c8, 1, 1},    {0x01ca, 0x01ca, 2, 1},     {0x01cb, 0x01db, 1, 2},
    {0x01de, 0x01ee, 1, 2},    {0x01f1, 0x01f1, 2, 1},     {0x01f2, 0x01f4, 1, 2},
    {0x01f6, 0x01f6, -97, 1},  {0x01f7, 0x01f7, -56, 1},   {0x01f8, 0x021e, 1, 2},
    {0x0220, 0x0220, -130, 1}, {0x0222, 0x0232, 1, 2},     {0x023b, 0x023b, 1, 1},
    {0x023d, 0x023d, -163, 1}, {0x0241, 0x0241, 1, 1},     {0x0243, 0x0243, -195, 1},
    {0x0244, 0x0244, 69, 1},   {0x0245, 0x0245, 71, 1},    {0x0246, 0x024e, 1, 2},
    {0x0370, 0x0372, 1, 2},    {0x0376, 0x0376, 1, 1},     {0x037f, 0x037f, 116, 1},
    {0x0386, 0x0386, 38, 1},   {0x0388, 0x038a, 37, 1},    {0x038c, 0x038c, 64, 1},
    {0x038e, 0x038f, 63, 1},   {0x0391, 0x03a1, 32, 1},    {0x03a3, 0x03ab, 32, 1},
    {0x03c2, 0x03c2, 1, 1},    {0x03cf, 0x03cf, 8, 1},     {0x03d0, 0x03d0, -30, 1},
    {0x03d1, 0x03d1, -25, 1},  {0x03d5, 0x03d5, -15, 1},   {0x03d6, 0x03d6, -22, 1},
    {0x03d8, 0x03ee, 1, 2},    {0x03f0, 0x03f0, -54, 1},   {0x03f1, 0x03f1, -48, 1},
    {0x03f4, 0x03f4, -60, 1},  {0x03f5, 0x03f5, -64, 1},   {0x03f7, 0x03f7, 1, 1},
    {0x03f9, 0x03f9, -7, 1},   {0x03fa, 0x03fa, 1, 1},     {0x03fd, 0x03ff, -130, 1},
    {0x0400, 0x040f, 80, 1},   {0x0410, 0x042f, 32, 1},    {0x0460, 0x0480, 1, 2},
    {0x048a, 0x04be, 1, 2},    {0x04c0, 0x04c0, 15, 1},    {0x04c1, 0x04cd, 1, 2},
    {0x04d0, 0x052e, 1, 2},    {0x0531, 0x0556, 48, 1},    {0x1e00, 0x1e94, 1, 2},
    {0x1e9b, 0x1e9b, -58, 1},  {0x1e9e, 0x1e9e, -7615, 1}, {0x1ea0, 0x1efe, 1, 2},
};

static uint32_t fold_cp(uint32_t cp)
{
	size_t lo = 0, hi = sizeof(fold_runs) / sizeof(fold_runs[0]);

	if (cp > 0xffff)
		return cp;
	while (lo < hi) { /* the last run whose first is <= cp */
		size_t mid = (lo + hi) / 2;

		if (fold_runs[mid].first <= cp)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo > 0) {
		const struct fold_run *r = &fold_runs[lo - 1];

		if (cp <= r->last && (cp - r->first) % r->stride == 0)
			return (uint32_t)((int32_t)cp + r->delta);
	}
	return cp;
}

static size_t encode(unsigned char *w, uint32_t cp)
{
	if (cp < 0x80) {
		w[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		w[0] = (unsigned char)(0xc0 | cp >> 6);
		w[1] = (unsigned char)(0x80 | (cp & 0x3f));
		return 2;
	}
	w[0] = (unsigned char)(0xe0 | cp >> 12); /* the table folds within the BMP */
	w[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
	w[2] = (unsigned char)(0x80 | (cp & 0x3f));
	return 3;
}

/* Where the first byte >= 0x80 of s[0..n) is, or n. A word at a time, the
 * last one overlapping, so an ASCII text costs no loop over single bytes. */
static inline size_t first_high(const char *s, size_t n)
{
	const uint64_t high = 0x8080808080808080ULL;
	size_t i = 0;
	uint64_t x;

	if (n >= 8) {
		for (; i + 8 <= n; i += 8) {
			memcpy(&x, s + i, 8);
			if ((x & high) != 0)
				break;
		}
		if (i + 8 > n) {
			memcpy(&x, s + n - 8, 8);
			if ((x & high) == 0)
				return n;
			i = n - 8;
		}
	}
	while (i < n && (unsigned char)s[i] < 0x80)
		i++;
	return i;
}

size_t utf8_fold(char *dst, const char *src, size_t dstsize)
{
	size_t n = sg_lower(dst, src, dstsize), r, w;

	if (n >= dstsize)
		return n;
	r = w = first_high(dst, n);
	/* Folding in place from the first non-ASCII byte: a folded character is
	 * never longer than the original, so w never passes r. */
	while (r < n) {
		const unsigned char *s = (const unsigned char *)dst + r;
		uint32_t cp;
		size_t k = s[0] < 0x80 ? 1 : utf8_decode(s, n - r, &cp);

		if (k < 2) { /* ASCII (already lower-cased) or an invalid byte */
			dst[w++] = dst[r++];
			continue;
		}
		r += k;
		uint32_t f = fold_cp(cp);

		if (f == cp) {
			memmove(dst + w, s, k);
			w += k;
		} else {
			w += encode((unsigned char *)dst + w, f);
		}
	}
	dst[w] = '\0';
	return w;
}

/* The bytes written as themselves: PLAIN always, PLAIN_KV also in a
 * key=value value. A table, as the activity writer escapes every field of
 * every decision line. */
#define PLAIN    1u
#define PLAIN_KV 2u
static const unsigned char plain_bytes[256] = {
    [0x21] = PLAIN | PLAIN_KV,          ['"'] = PLAIN,
    [0x23 ... 0x3c] = PLAIN | PLAIN_KV, ['='] = PLAIN,
    [0x3e ... 0x5b] = PLAIN | PLAIN_KV, [0x5d ... 0x7e] = PLAIN | PLAIN_KV,
};

/* 1 if the byte c is written as itself (a byte >= 0x80 never is). */
static inline int plain_ascii(unsigned char c, unsigned flags)
{
	return (plain_bytes[c] & (flags & UTF8_ESC_KV ? PLAIN_KV : PLAIN)) != 0;
}

static char *put_hex(char *w, unsigned char c)
{
	static const char hex[] = "0123456789abcdef";

	w[0] = '\\';
	w[1] = 'x';
	w[2] = hex[c >> 4];
	w[3] = hex[c & 15];
	return w + 4;
}

/* Writes the character at s (avail bytes) escaped or as it is; *used gets
 * its length. */
static char *put_char(char *w, const unsigned char *s, size_t avail, unsigned flags, size_t *used)
{
	uint32_t cp;
	size_t n;

	if (s[0] < 0x80) {
		*used = 1;
		if (plain_ascii(s[0], flags)) {
			*w++ = (char)s[0];
		} else if (s[0] == '\\') {
			*w++ = '\\';
			*w++ = '\\';
		} else {
			w = put_hex(w, s[0]);
		}
		return w;
	}
	n = utf8_decode(s, avail, &cp);
	if (n == 0) {
		*used = 1;
		return put_hex(w, s[0]);
	}
	*used = n;
	if (utf8_cp_unsafe(cp)) {
		for (size_t i = 0; i < n; i++)
			w = put_hex(w, s[i]);
		return w;
	}
	memcpy(w, s, n);
	return w + n;
}

char *utf8_escape(char *dst, const char *src, size_t len, unsigned flags)
{
	const unsigned char *s = (const unsigned char *)src;
	unsigned want = flags & UTF8_ESC_KV ? PLAIN_KV : PLAIN;
	size_t i = 0;

	while (i < len && (plain_bytes[s[i]] & want) != 0)
		i++;
	memcpy(dst, src, i);
	dst += i;
	while (i < len) {
		size_t used;

		dst = put_char(dst, s + i, len - i, flags, &used);
		i += used;
	}
	return dst;
}

int utf8_escape_str(char *dst, size_t dstsize, const char *src, unsigned flags)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t len = strlen(src), i = 0, o = 0;
	char one[16];

	if (dstsize == 0)
		return -1;
	while (i < len) {
		size_t used, k = (size_t)(put_char(one, s + i, len - i, flags, &used) - one);

		if (o + k >= dstsize) {
			dst[o] = '\0';
			return -1;
		}
		memcpy(dst + o, one, k);
		o += k;
		i += used;
	}
	dst[o] = '\0';
	return 0;
}

size_t utf8_width(const char *s)
{
	size_t cols = 0;

	for (; *s != '\0'; s++)
		cols += ((unsigned char)*s & 0xc0) != 0x80;
	return cols;
}
