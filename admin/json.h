/*
 * json - a small streaming JSON writer for saslgatectl's --json output and
 * export. It only writes: commas, nesting and string escaping are its job;
 * reading JSON is left to SQLite's JSON functions (see cmd_import.c).
 *
 * Strings are written as UTF-8 with the escapes RFC 8259 requires. A byte
 * that is not valid UTF-8 (a user name as a client sent it) is written as
 * the escape of a lone low surrogate, "\udc80" to "\udcff" for 0x80 to
 * 0xff: the convention of Python's "surrogateescape" (PEP 383), so the
 * exact bytes can be had back (json.loads(), then
 * .encode("utf-8", "surrogateescape")) and two different values never look
 * the same. Valid UTF-8 never yields such an escape. A writer with
 * replace_invalid set writes U+FFFD instead (export: what SQLite's JSON
 * functions read back as text).
 */
#ifndef SASLGATE_JSON_H
#define SASLGATE_JSON_H

#include <stdint.h>
#include <stdio.h>
#include <time.h>

#define JSON_MAX_DEPTH 32

struct json {
	FILE *out;
	int pretty; /* 1: two-space indentation, one member per line */
	int depth;
	unsigned char has_items[JSON_MAX_DEPTH]; /* the container at each depth has items */
	int after_key;                           /* a key was written; the value follows */
	int replace_invalid; /* 1: invalid UTF-8 as U+FFFD, not "\udcHH" (set after json_init) */
};

/* Starts writing to out (borrowed). */
void json_init(struct json *j, FILE *out, int pretty);
/* Ends the document with a newline (pretty or not). */
void json_finish(struct json *j);

void json_object_begin(struct json *j);
void json_object_end(struct json *j);
void json_array_begin(struct json *j);
void json_array_end(struct json *j);
/* Writes a member name; the next call writes its value. */
void json_key(struct json *j, const char *key);

/* Values. json_string(NULL) writes null. */
void json_string(struct json *j, const char *s);
void json_int(struct json *j, int64_t v);
void json_bool(struct json *j, int v);
void json_null(struct json *j);
/* An ISO 8601 UTC time, or null when t is 0. */
void json_time(struct json *j, time_t t);
/* Text that already is valid JSON (e.g. produced by SQLite's json_object());
 * NULL writes null. */
void json_raw(struct json *j, const char *text);

/* key + value shorthands. */
void json_kv_string(struct json *j, const char *key, const char *s);
void json_kv_int(struct json *j, const char *key, int64_t v);
void json_kv_bool(struct json *j, const char *key, int v);
void json_kv_time(struct json *j, const char *key, time_t t);

/* The --json output of a list command: with on, starts a pretty document on
 * out that is one array and returns j; else returns NULL (the caller writes
 * text). json_list_end() closes the array and the document (nothing for
 * NULL). */
struct json *json_list_begin(struct json *j, FILE *out, int on);
void json_list_end(struct json *j);

/* Writes s as a quoted, escaped JSON string to out (no separators), invalid
 * UTF-8 as "\udcHH". */
void json_write_string(FILE *out, const char *s);

#endif
