/*
 * timeparse - durations and ISO 8601 times as administrators type them.
 * Everything is parsed by hand: strptime accepts too much (out-of-range days,
 * missing fields) to be trusted with an expiry.
 */
#include <stdio.h>
#include <string.h>

#include "timeparse.h"

static int unit_seconds(char unit, int64_t *mult)
{
	switch (unit) {
	case 's':
		*mult = 1;
		return 0;
	case 'm':
		*mult = 60;
		return 0;
	case 'h':
		*mult = 3600;
		return 0;
	case 'd':
		*mult = 86400;
		return 0;
	case 'w':
		*mult = (int64_t)7 * 86400;
		return 0;
	}
	return -1;
}

int time_parse_duration(const char *text, int64_t *seconds, struct sg_err *err)
{
	const char *p = text;
	int64_t total = 0;

	if (text == NULL || *text == '\0')
		return sg_err_set(err, "empty duration");
	while (*p != '\0') {
		int64_t n = 0, mult;

		if (*p < '0' || *p > '9')
			return sg_err_set(err,
			                  "invalid duration \"%s\": expected a number followed by "
			                  "s, m, h, d or w (e.g. 90m, 30d, 1d12h)",
			                  text);
		for (; *p >= '0' && *p <= '9'; p++) {
			if (n > (INT64_MAX - (*p - '0')) / 10)
				return sg_err_set(err, "invalid duration \"%s\": too large", text);
			n = n * 10 + (*p - '0');
		}
		if (*p == '\0')
			return sg_err_set(
			    err, "invalid duration \"%s\": missing unit (s, m, h, d or w)", text);
		if (unit_seconds(*p, &mult) < 0)
			return sg_err_set(
			    err,
			    "invalid duration \"%s\": unknown unit '%c' (use s, m, h, "
			    "d or w)",
			    text, *p);
		p++;
		if (n == 0)
			return sg_err_set(err, "invalid duration \"%s\": must be positive", text);
		if (n > INT64_MAX / mult || total > INT64_MAX - n * mult)
			return sg_err_set(err, "invalid duration \"%s\": too large", text);
		total += n * mult;
	}
	*seconds = total;
	return 0;
}

/* Reads exactly n digits at *p into *val; advances *p. */
static int digits(const char **p, int n, int *val)
{
	int v = 0, i;

	for (i = 0; i < n; i++) {
		char c = (*p)[i];

		if (c < '0' || c > '9')
			return -1;
		v = v * 10 + (c - '0');
	}
	*p += n;
	*val = v;
	return 0;
}

static int days_in_month(int year, int month)
{
	static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

	return month == 2 && leap ? 29 : days[month - 1];
}

/* Parses "+hh:mm", "+hhmm", "-..." or "Z" at p into seconds east of UTC. */
static int parse_offset(const char *p, int *offset)
{
	int sign, hh, mm;

	if ((p[0] == 'Z' || p[0] == 'z') && p[1] == '\0') {
		*offset = 0;
		return 0;
	}
	if (p[0] != '+' && p[0] != '-')
		return -1;
	sign = p[0] == '-' ? -1 : 1;
	p++;
	if (digits(&p, 2, &hh) < 0)
		return -1;
	if (*p == ':')
		p++;
	if (digits(&p, 2, &mm) < 0 || *p != '\0' || hh > 23 || mm > 59)
		return -1;
	*offset = sign * (hh * 3600 + mm * 60);
	return 0;
}

static int parse_iso(const char *text, time_t *out, struct sg_err *err)
{
	const char *p = text;
	struct tm tm;
	int year, mon, day, hour = 0, min = 0, sec = 0, offset = 0, has_offset = 0;
	time_t t;

	if (digits(&p, 4, &year) < 0 || *p++ != '-' || digits(&p, 2, &mon) < 0 || *p++ != '-' ||
	    digits(&p, 2, &day) < 0)
		goto bad;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		p++;
		if (digits(&p, 2, &hour) < 0 || *p++ != ':' || digits(&p, 2, &min) < 0)
			goto bad;
		if (*p == ':') {
			p++;
			if (digits(&p, 2, &sec) < 0)
				goto bad;
		}
		if (*p != '\0') {
			if (parse_offset(p, &offset) < 0)
				goto bad;
			has_offset = 1;
		}
	} else if (*p != '\0') {
		goto bad;
	}
	if (year < 1970 || mon < 1 || mon > 12 || day < 1 || day > days_in_month(year, mon) ||
	    hour > 23 || min > 59 || sec > 59)
		return sg_err_set(err, "invalid time \"%s\": no such date or time", text);
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = day;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	if (has_offset) {
		t = timegm(&tm);
		if (t == (time_t)-1)
			return sg_err_set(err, "invalid time \"%s\": out of range", text);
		t -= offset;
	} else {
		tm.tm_isdst = -1;
		t = mktime(&tm);
		if (t == (time_t)-1)
			return sg_err_set(err, "invalid time \"%s\": out of range", text);
	}
	/* Keep to what time_format writes back: 1970 to 9999, after the offset. */
	if (t < 0 || (int64_t)t > INT64_C(253402300799))
		return sg_err_set(err, "invalid time \"%s\": out of range", text);
	*out = t;
	return 0;
bad:
	return sg_err_set(err,
	                  "invalid time \"%s\": expected YYYY-MM-DD[THH:MM[:SS]][Z|+HH:MM], "
	                  "\"now\" or a duration such as 30d",
	                  text);
}

static int looks_like_date(const char *text)
{
	int i;

	for (i = 0; i < 4; i++)
		if (text[i] < '0' || text[i] > '9')
			return 0;
	return text[4] == '-';
}

int time_parse(const char *text, time_t now, enum time_direction dir, time_t *out,
               struct sg_err *err)
{
	int64_t d;

	if (text == NULL || *text == '\0')
		return sg_err_set(err, "empty time");
	if (sg_strcasecmp(text, "now") == 0) {
		*out = now;
		return 0;
	}
	if (looks_like_date(text))
		return parse_iso(text, out, err);
	if (text[0] >= '0' && text[0] <= '9') {
		if (time_parse_duration(text, &d, err) < 0)
			return -1;
		if (dir == TIME_FUTURE ? (int64_t)now > INT64_MAX - d
		                       : (int64_t)now < INT64_MIN + d)
			return sg_err_set(err, "invalid time \"%s\": out of range", text);
		*out = dir == TIME_FUTURE ? now + (time_t)d : now - (time_t)d;
		return 0;
	}
	return sg_err_set(err,
	                  "invalid time \"%s\": expected YYYY-MM-DD[THH:MM[:SS]][Z|+HH:MM], "
	                  "\"now\" or a duration such as 30d",
	                  text);
}

void time_format(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL) {
		sg_snprintf(buf, len, "invalid-time");
		return;
	}
	sg_snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
	            tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}
