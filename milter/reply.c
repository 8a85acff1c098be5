/*
 * reply - pure helpers of saslgate-milter: SMTP reply escaping for
 * smfi_setreply, socket specs and envelope addresses.
 */
#include <string.h>

#include "milter.h"

int milter_reply_escape(char *dst, size_t dstlen, const char *src)
{
	size_t o = 0;

	if (dstlen == 0)
		return -1;
	for (; *src != '\0'; src++) {
		unsigned char c = (unsigned char)*src;

		if (c == '%') {
			if (o + 2 >= dstlen)
				break;
			dst[o++] = '%';
			dst[o++] = '%';
			continue;
		}
		if (o + 1 >= dstlen)
			break;
		dst[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	dst[o] = '\0';
	return *src == '\0' ? 0 : -1;
}

const char *milter_socket_path(const char *spec)
{
	if (strncmp(spec, "unix:", 5) == 0)
		return spec + 5;
	if (strncmp(spec, "local:", 6) == 0)
		return spec + 6;
	if (spec[0] == '/')
		return spec;
	return NULL;
}

size_t milter_sender_copy(char *dst, const char *src, size_t dstsize)
{
	size_t len = strlen(src);

	if (len >= 2 && src[0] == '<' && src[len - 1] == '>') {
		size_t inner = len - 2;

		if (dstsize > 0) {
			size_t n = inner < dstsize - 1 ? inner : dstsize - 1;

			memcpy(dst, src + 1, n);
			dst[n] = '\0';
		}
		return inner;
	}
	return sg_strlcpy(dst, src, dstsize);
}
