/*
 * utf8 - user names in UTF-8: validation, the case folding that user
 * matching applies, and the reversible escape that text output applies.
 *
 * SASL user names arrive as bytes (Postfix, libmilter, Dovecot and Cyrus
 * SASL pass internationalised names through as UTF-8, and nothing stops a
 * client from sending invalid UTF-8). saslgate keeps those bytes as they are:
 * two different names are never made one. This module never depends on the
 * locale.
 *
 * Case folding (utf8_fold): ASCII letters, as everywhere in saslgate, and the
 * simple case folding of Unicode (CaseFolding.txt, status C and S) for the
 * letters of Latin-1 Supplement, Latin Extended-A and -B, Greek and Coptic
 * (U+0370-U+03FF), Cyrillic and Cyrillic Supplement (U+0400-U+052F),
 * Armenian and Latin Extended Additional (U+1E00-U+1EFF), from a table kept
 * in utf8.c. Deliberately left out: a fold from a non-ASCII character to an
 * ASCII one (U+017F LONG S to "s", the Kelvin sign to "k"), so that no
 * non-ASCII name ever matches a pattern written in ASCII; folds that would
 * lengthen the text (U+023A, U+023E); and every other script (it matches
 * byte for byte). No Unicode normalisation: "j\u00f6rg" (NFC) and
 * "jo\u0308rg" (NFD) stay two names, as they are to the SASL backend.
 *
 * Escape (utf8_escape): a byte that is not part of valid UTF-8, every byte
 * of a control character (C0, DEL, C1), of a blank (space, the Unicode space
 * separators, line and paragraph separators) or of an invisible format
 * character (zero-width characters, bidirectional controls, U+FEFF) becomes
 * "\xHH" (lower-case hex), and a backslash becomes "\\"; everything else
 * stays. The escape is reversible, so two different names never print the
 * same.
 */
#ifndef SASLGATE_UTF8_H
#define SASLGATE_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* The valid UTF-8 sequence at s, at most avail bytes: its length (1..4),
 * its code point in *cp. 0 when s does not start with one (an invalid or
 * cut sequence, an overlong form, a surrogate, beyond U+10FFFF); *cp is
 * then s[0]. */
size_t utf8_decode(const unsigned char *s, size_t avail, uint32_t *cp);

/* The bytes of the character at s[0..avail) (avail >= 1): a valid
 * sequence's length, or 1 for an invalid byte. No call for ASCII. */
static inline size_t utf8_char_len(const unsigned char *s, size_t avail)
{
	uint32_t cp;
	size_t n;

	if (s[0] < 0x80)
		return 1;
	n = utf8_decode(s, avail, &cp);
	return n != 0 ? n : 1;
}

/* 1 if s[0..len) is valid UTF-8 (ASCII included), else 0. */
int utf8_valid(const char *s, size_t len);

/* 1 if the code point is shown escaped: a control character, a blank or an
 * invisible format character (see above); else 0. */
int utf8_cp_unsafe(uint32_t cp);

/* Copies src into dst (dstsize bytes) case-folded (see above); invalid bytes
 * are copied as they are. dst may be src (the folded text is never longer).
 * Returns the length of the folded text; a result >= dstsize means src did
 * not fit (dst then holds a cut, NUL-terminated prefix, and the result is
 * strlen(src)). Eight ASCII bytes at a time; a call per non-ASCII letter. */
size_t utf8_fold(char *dst, const char *src, size_t dstsize);

/* Flags of utf8_escape(). */
#define UTF8_ESC_KV 1u /* also '"' and '=': a value in a key=value log line */

/* The most bytes utf8_escape() writes for len bytes of input. */
#define UTF8_ESCAPE_MAX(len) (4 * (len))

/* Writes src[0..len) escaped (see above) at dst, which has room for
 * UTF8_ESCAPE_MAX(len) bytes; no NUL. Returns the end of what it wrote.
 * Text without anything to escape is copied in one memcpy. */
char *utf8_escape(char *dst, const char *src, size_t len, unsigned flags);

/* The same into a C string of dstsize bytes: 0, or -1 if the escaped text
 * did not fit (dst then holds a NUL-terminated prefix that ends at a whole
 * escape). */
int utf8_escape_str(char *dst, size_t dstsize, const char *src, unsigned flags);

/* Terminal columns of s, which is valid UTF-8 (an escaped text is): its
 * characters, one column each (for aligning tables; East Asian wide and
 * combining characters are not told apart). */
size_t utf8_width(const char *s);

#endif
