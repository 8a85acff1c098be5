/*
 * json - streaming JSON writer; see json.h.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "json.h"
#include "utf8.h"
#include "timeparse.h"

void json_init(struct json *j, FILE *out, int pretty)
{
	memset(j, 0, sizeof(*j));
	j->out = out;
	j->pretty = pretty;
}

void json_finish(struct json *j)
{
	fputc('\n', j->out);
}

static void newline(struct json *j)
{
	if (!j->pretty)
		return;
	fputc('\n', j->out);
	for (int i = 0; i < j->depth; i++)
		fputs("  ", j->out);
}

/* Separator before a value or key: nothing right after a key. */
static void before_item(struct json *j)
{
	if (j->after_key) {
		j->after_key = 0;
		return;
	}
	if (j->depth > 0) {
		if (j->has_items[j->depth])
			fputc(',', j->out);
		j->has_items[j->depth] = 1;
		newline(j);
	}
}

static void open_container(struct json *j, int c)
{
	before_item(j);
	fputc(c, j->out);
	if (j->depth < JSON_MAX_DEPTH - 1)
		j->depth++;
	j->has_items[j->depth] = 0;
}

static void close_container(struct json *j, int c)
{
	int had = j->has_items[j->depth];

	if (j->depth > 0)
		j->depth--;
	if (had)
		newline(j);
	fputc(c, j->out);
}

void json_object_begin(struct json *j)
{
	open_container(j, '{');
}

void json_object_end(struct json *j)
{
	close_container(j, '}');
}

void json_array_begin(struct json *j)
{
	open_container(j, '[');
}

void json_array_end(struct json *j)
{
	close_container(j, ']');
}

void json_key(struct json *j, const char *key)
{
	before_item(j);
	json_write_string(j->out, key);
	fputs(j->pretty ? ": " : ":", j->out);
	j->after_key = 1;
}

/* Writes str quoted and escaped; a byte that is not valid UTF-8 becomes
 * "\udcHH" (exact) or U+FFFD. */
static void write_string(FILE *out, const char *str, int exact)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t left = strlen(str);

	fputc('"', out);
	while (left > 0) {
		unsigned char c = *s;
		uint32_t cp;
		size_t n = 1;

		switch (c) {
		case '"':
			fputs("\\\"", out);
			break;
		case '\\':
			fputs("\\\\", out);
			break;
		case '\n':
			fputs("\\n", out);
			break;
		case '\r':
			fputs("\\r", out);
			break;
		case '\t':
			fputs("\\t", out);
			break;
		case '\b':
			fputs("\\b", out);
			break;
		case '\f':
			fputs("\\f", out);
			break;
		default:
			if (c < 0x20 || c == 0x7f) {
				fprintf(out, "\\u%04x", c);
			} else if (c < 0x80) {
				fputc(c, out);
			} else if ((n = utf8_decode(s, left, &cp)) == 0) {
				n = 1;
				if (exact)
					fprintf(out, "\\udc%02x", c);
				else
					fputs("\xef\xbf\xbd", out); /* U+FFFD */
			} else {
				fwrite(s, 1, n, out);
			}
		}
		s += n;
		left -= n;
	}
	fputc('"', out);
}

void json_write_string(FILE *out, const char *str)
{
	write_string(out, str, 1);
}

void json_string(struct json *j, const char *s)
{
	if (s == NULL) {
		json_null(j);
		return;
	}
	before_item(j);
	write_string(j->out, s, !j->replace_invalid);
}

void json_int(struct json *j, int64_t v)
{
	before_item(j);
	fprintf(j->out, "%" PRId64, v);
}

void json_bool(struct json *j, int v)
{
	before_item(j);
	fputs(v ? "true" : "false", j->out);
}

void json_null(struct json *j)
{
	before_item(j);
	fputs("null", j->out);
}

void json_time(struct json *j, time_t t)
{
	char buf[32];

	if (t == 0) {
		json_null(j);
		return;
	}
	time_format(t, buf, sizeof(buf));
	json_string(j, buf);
}

void json_raw(struct json *j, const char *text)
{
	if (text == NULL) {
		json_null(j);
		return;
	}
	before_item(j);
	fputs(text, j->out);
}

void json_kv_string(struct json *j, const char *key, const char *s)
{
	json_key(j, key);
	json_string(j, s);
}

void json_kv_int(struct json *j, const char *key, int64_t v)
{
	json_key(j, key);
	json_int(j, v);
}

void json_kv_bool(struct json *j, const char *key, int v)
{
	json_key(j, key);
	json_bool(j, v);
}

void json_kv_time(struct json *j, const char *key, time_t t)
{
	json_key(j, key);
	json_time(j, t);
}

struct json *json_list_begin(struct json *j, FILE *out, int on)
{
	if (!on)
		return NULL;
	json_init(j, out, 1);
	json_array_begin(j);
	return j;
}

void json_list_end(struct json *j)
{
	if (j == NULL)
		return;
	json_array_end(j);
	json_finish(j);
}
