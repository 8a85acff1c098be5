/*
 * fuzz_decision_batch - libFuzzer target for the decoder of the decision
 * log's batch rows (lib/decision_batch.c decision_batch_decode). The rows come
 * from the daemons, but also from anyone inserting through the decisions
 * view, so the decoder must survive any text.
 *
 * Input: the data text of one row (NUL bytes end it, as SQLite's text would).
 *
 * Oracle: SQLite's own JSON functions. When SQLite finds the text to be an
 * array of arrays of at least 14 scalars, the decoder must accept it, give as
 * many decisions, and decode every string field exactly as json_extract
 * does (compared when the text has no \u escape: the decoder turns U+0000
 * into '?' where SQLite would cut the string), and read the integer fields
 * (at, tls, generation) as SQLite does where it reads a 64-bit integer.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "decision_batch.h"

#define INPUT_MAX 16384
#define FIELDS    DECISION_FIELDS

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static sqlite3 *db;
static sqlite3_stmt *valid_st, *outer_st, *inner_st, *field_st;

static sqlite3_stmt *prepare(const char *sql)
{
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "fuzz_decision_batch: sqlite: %s\n", sqlite3_errmsg(db));
		abort();
	}
	return st;
}

static void setup(void)
{
	if (sqlite3_open(":memory:", &db) != SQLITE_OK)
		abort();
	valid_st = prepare("SELECT json_valid(?1) AND json_type(?1) = 'array'");
	outer_st = prepare("SELECT count(*), coalesce(sum(type = 'array'), 0) FROM json_each(?1)");
	inner_st = prepare("SELECT count(*), coalesce(sum(type IN ('array', 'object')), 0) "
	                   "FROM json_each(?1, '$[' || ?2 || ']')");
	field_st = prepare("SELECT json_type(?1, '$[' || ?2 || '][' || ?3 || ']'), "
	                   "json_extract(?1, '$[' || ?2 || '][' || ?3 || ']')");
}

/* Steps st (bound to text) to its one row. */
static void one_row(sqlite3_stmt *st)
{
	if (sqlite3_step(st) != SQLITE_ROW) {
		fprintf(stderr, "fuzz_decision_batch: sqlite: %s\n", sqlite3_errmsg(db));
		abort();
	}
}

/* SQLite's view of text: 1 and the number of decisions when it is an array
 * of arrays of at least FIELDS scalars, else 0. json_type() fails on
 * malformed JSON, which AND does not always spare it: it runs only on text
 * json_valid() accepted. */
static int sqlite_shape(const char *text, sqlite3_int64 *count)
{
	int ok;

	sqlite3_reset(valid_st);
	sqlite3_bind_text(valid_st, 1, text, -1, SQLITE_STATIC);
	if (sqlite3_step(valid_st) != SQLITE_ROW) /* json_type() on malformed text */
		return 0;
	if (!sqlite3_column_int(valid_st, 0))
		return 0;
	sqlite3_reset(outer_st);
	sqlite3_bind_text(outer_st, 1, text, -1, SQLITE_STATIC);
	one_row(outer_st);
	*count = sqlite3_column_int64(outer_st, 0);
	if (sqlite3_column_int64(outer_st, 1) != *count)
		return 0;
	for (sqlite3_int64 k = 0; k < *count; k++) {
		sqlite3_reset(inner_st);
		sqlite3_bind_text(inner_st, 1, text, -1, SQLITE_STATIC);
		sqlite3_bind_int64(inner_st, 2, k);
		one_row(inner_st);
		ok = sqlite3_column_int64(inner_st, 0) >= FIELDS &&
		     sqlite3_column_int64(inner_st, 1) == 0;
		if (!ok)
			return 0;
	}
	return 1;
}

static const char *text_field(const struct decision_record *d, int i)
{
	switch (i) {
	case DECISION_FIELD_QUEUE_ID:
		return d->queue_id;
	case DECISION_FIELD_INSTANCE:
		return d->instance;
	case DECISION_FIELD_USER:
		return d->user;
	case DECISION_FIELD_CLIENT:
		return d->client;
	case DECISION_FIELD_MECH:
		return d->mech;
	case DECISION_FIELD_MECH_CLASS:
		return d->mech_class;
	case DECISION_FIELD_SERVICE:
		return d->service;
	case DECISION_FIELD_SENDER:
		return d->sender;
	case DECISION_FIELD_OUTCOME:
		return d->outcome;
	case DECISION_FIELD_POLICY:
		return d->policy;
	case DECISION_FIELD_REPORT_ONLY:
		return d->report_only;
	default:
		return NULL;
	}
}

/* SQLite's reading of field i of decision k: its JSON type and value. */
static const char *sqlite_field(const char *text, size_t k, int i)
{
	sqlite3_reset(field_st);
	sqlite3_bind_text(field_st, 1, text, -1, SQLITE_STATIC);
	sqlite3_bind_int64(field_st, 2, (sqlite3_int64)k);
	sqlite3_bind_int(field_st, 3, i);
	one_row(field_st);
	return (const char *)sqlite3_column_text(field_st, 0);
}

/* The integer fields (at, tls, generation) where SQLite reads a JSON
 * integer that fits in 64 bits. */
static void compare_ints(const char *text, const struct decision_batch *b)
{
	static const int fields[] = {DECISION_FIELD_AT, DECISION_FIELD_TLS,
	                             DECISION_FIELD_GENERATION};

	for (size_t k = 0; k < b->n; k++) {
		for (size_t j = 0; j < sizeof(fields) / sizeof(fields[0]); j++) {
			const struct decision_record *d = &b->d[k];
			const char *type = sqlite_field(text, k, fields[j]);
			sqlite3_int64 v;

			if (strcmp(type, "integer") != 0 ||
			    sqlite3_column_type(field_st, 1) != SQLITE_INTEGER)
				continue;
			v = sqlite3_column_int64(field_st, 1);
			if ((fields[j] == DECISION_FIELD_AT && d->at != v) ||
			    (fields[j] == DECISION_FIELD_TLS && d->tls != (v != 0)) ||
			    (fields[j] == DECISION_FIELD_GENERATION && d->generation != v))
				abort(); /* an integer decoded differently */
		}
	}
}

/* Compares the decoded string fields with SQLite's reading of text. */
static void compare(const char *text, const struct decision_batch *b)
{
	for (size_t k = 0; k < b->n; k++) {
		for (int i = 0; i < DECISION_FIELDS; i++) {
			const char *mine = text_field(&b->d[k], i), *type, *theirs;

			if (i == DECISION_FIELD_AT || i == DECISION_FIELD_TLS ||
			    i == DECISION_FIELD_GENERATION)
				continue; /* numbers */
			type = sqlite_field(text, k, i);
			theirs = (const char *)sqlite3_column_text(field_st, 1);
			if (strcmp(type, "null") == 0 && mine != NULL)
				abort(); /* null decoded as a text */
			if (strcmp(type, "text") == 0 &&
			    (mine == NULL || strcmp(mine, theirs) != 0))
				abort(); /* a string decoded differently */
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct decision_batch b = {0};
	char *text;
	int rc, valid;
	sqlite3_int64 count;

	if (db == NULL)
		setup();
	if (size > INPUT_MAX)
		return 0;
	text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';

	count = 0;
	valid = sqlite_shape(text, &count);
	b.id = 1000;
	{
		char *work = strdup(text);

		rc = decision_batch_decode(&b, work, "fuzz");
		if (rc == 0) {
			for (size_t k = 0; k < b.n; k++)
				if (b.d[k].id != 1000 + (int64_t)k || b.d[k].daemon == NULL)
					abort();
		}
		if (valid) {
			if (rc != 0 || (sqlite3_int64)b.n != count)
				abort(); /* well-formed JSON refused or miscounted */
			compare_ints(text, &b);
			if (strstr(text, "\\u") == NULL)
				compare(text, &b);
		}
		free(work);
	}
	free(b.d);
	free(text);
	return 0;
}
