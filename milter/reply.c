/*
 * reply - pure helpers of saslgate-milter: SMTP reply parsing and escaping for
 * smfi_setreply, the on_error setting, socket specs and envelope addresses.
 */
#include <ctype.h>
#include <string.h>

#include "milter.h"

/* "d.ddd.ddd" with the class given: RFC 3463 class.subject.detail. */
static int enhanced_code_valid(const char *enh, char cls)
{
	const char *p = enh;
	int part;

	if (p[0] != cls || p[1] != '.')
		return 0;
	p += 2;
	for (part = 0; part < 2; part++) {
		size_t digits = 0;

		while (isdigit((unsigned char)p[digits]))
			digits++;
		if (digits < 1 || digits > 3)
			return 0;
		p += digits;
		if (part == 0) {
			if (*p != '.')
				return 0;
			p++;
		}
	}
	return *p == '\0';
}

int milter_reply_parse(const char *text, struct milter_reply *out, struct sg_err *err)
{
	const char *p = text;
	size_t n;

	memset(out, 0, sizeof(*out));
	if ((p[0] != '4' && p[0] != '5') || !isdigit((unsigned char)p[1]) ||
	    !isdigit((unsigned char)p[2]) || (p[3] != ' ' && p[3] != '\0'))
		return sg_err_set(err, "reply \"%s\": must start with a 4xx or 5xx code", text);
	memcpy(out->code, p, 3);
	p += 3;
	while (*p == ' ')
		p++;
	/* An enhanced code is a word starting with a digit and a dot. */
	if (isdigit((unsigned char)p[0]) && p[1] == '.') {
		n = strcspn(p, " ");
		if (n >= sizeof(out->enh))
			return sg_err_set(err, "reply \"%s\": enhanced status code too long", text);
		memcpy(out->enh, p, n);
		out->enh[n] = '\0';
		if (!enhanced_code_valid(out->enh, out->code[0]))
			return sg_err_set(err,
			                  "reply \"%s\": enhanced status code %s must be %c.x.y "
			                  "to agree with %s",
			                  text, out->enh, out->code[0], out->code);
		p += n;
		while (*p == ' ')
			p++;
	}
	for (n = 0; p[n] != '\0'; n++)
		if (!isprint((unsigned char)p[n]))
			return sg_err_set(err, "reply \"%s\": text must be printable ASCII", text);
	if (sg_strlcpy(out->text, p, sizeof(out->text)) >= sizeof(out->text))
		return sg_err_set(err, "reply text longer than %zu bytes", sizeof(out->text) - 1);
	return 0;
}

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

int milter_on_error_parse(const char *name, enum milter_on_error *out)
{
	if (strcmp(name, "tempfail") == 0)
		*out = MILTER_ON_ERROR_TEMPFAIL;
	else if (strcmp(name, "accept") == 0)
		*out = MILTER_ON_ERROR_ACCEPT;
	else if (strcmp(name, "reject") == 0)
		*out = MILTER_ON_ERROR_REJECT;
	else
		return -1;
	return 0;
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
