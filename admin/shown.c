/*
 * shown - how saslgatectl's text output shows values that came from the
 * wire (user names above all): escaped with utf8_escape(), so that control
 * characters cannot reach the terminal and two different names never print
 * the same, and padded by characters, not bytes, so that "jörg" lines up
 * with "joerg".
 */
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "shown.h"
#include "utf8.h"

const char *ctl_shown(const char *text, char *buf, size_t len)
{
	if (text == NULL || *text == '\0')
		return "-";
	if (utf8_escape_str(buf, len, text, 0) < 0 && len > 4)
		memcpy(buf + strnlen(buf, len - 4), "...", 4); /* never passes for whole */
	return buf;
}

void ctl_print_column(FILE *out, const char *text, int width)
{
	char buf[CTL_SHOWN_MAX];
	const char *s = ctl_shown(text, buf, sizeof(buf));
	size_t cols = utf8_width(s);

	fputs(s, out);
	for (; (int)cols < width; cols++)
		fputc(' ', out);
}
