/*
 * decision_line - formatting a decision's syslog line (see decision_line.h).
 * Built by hand: snprintf with eleven fields cost the writer more than a
 * decision row.
 */
#include <string.h>

#include "decision_line.h"

/* Appends " name=value" (see decision_line.h for the escaping). */
static char *put_kv(char *p, const char *name, size_t name_len, const char *value)
{
	size_t value_len = value != NULL ? strlen(value) : 0;

	*p++ = ' ';
	memcpy(p, name, name_len);
	p += name_len;
	*p++ = '=';
	if (value_len == 0) {
		*p++ = '-';
		return p;
	}
	if (value_len == 1 && value[0] == '-') {
		*p++ = '\\';
		*p++ = 'x';
		*p++ = '2';
		*p++ = 'd';
		return p;
	}
	return utf8_escape(p, value, value_len, UTF8_ESC_KV);
}

#define PUT(p, name, value) put_kv(p, name, sizeof(name) - 1, value)

char *decision_line_format(char *p, const char *prefix, size_t prefix_len,
                           const struct decision_record *d)
{
	static const char head[] = "decision";

	memcpy(p, prefix, prefix_len);
	p += prefix_len;
	memcpy(p, head, sizeof(head) - 1);
	p += sizeof(head) - 1;
	p = PUT(p, "instance", d->instance);
	p = PUT(p, "queue_id", d->queue_id);
	p = PUT(p, "client", d->client);
	p = PUT(p, "user", d->user);
	p = PUT(p, "mech", d->mech);
	p = PUT(p, "class", d->mech_class);
	p = PUT(p, "tls", d->tls ? "yes" : "no");
	p = PUT(p, "service", d->service);
	p = PUT(p, "outcome", d->outcome);
	p = PUT(p, "policy", d->policy);
	p = PUT(p, "report_only", d->report_only);
	*p++ = '\n';
	return p;
}
