/*
 * settings - the one table of daemon settings: every key once, with its type,
 * default, bounds and which program uses it. Values come from the defaults,
 * then the config file (-c FILE: "key = value" lines, # comments), then the
 * command line (-o key=value and the short options). Both daemons print the
 * effective settings with -n.
 */
#ifndef SASLGATE_SETTINGS_H
#define SASLGATE_SETTINGS_H

#include <stdint.h>
#include <stdio.h>

#include "util.h"

#define SETTINGS_POLICYD 0x1u
#define SETTINGS_MILTER  0x2u

enum setting_type { SETTING_INT, SETTING_DURATION, SETTING_BOOL, SETTING_STRING, SETTING_ENUM };

struct setting_def {
	const char *key;
	enum setting_type type;
	const char *def;     /* default, as text */
	int64_t min, max;    /* INT and DURATION (seconds) bounds */
	const char *choices; /* ENUM: "a|b|c" */
	unsigned programs;   /* SETTINGS_POLICYD | SETTINGS_MILTER */
	const char *help;
};

/* The table, terminated by a NULL key. */
extern const struct setting_def settings_table[];

#define SETTINGS_MAX 64

struct settings {
	unsigned program;
	char *values[SETTINGS_MAX]; /* parallel to settings_table, owned */
};

/* Fills in the defaults for the keys the program uses. */
void settings_init(struct settings *s, unsigned program);
void settings_free(struct settings *s);

/* Sets a key (validated: unknown key, a key of the other program, a bad number,
 * an out-of-range value or an unknown choice is an error naming the key).
 * 0 or -1 with err. */
int settings_set(struct settings *s, const char *key, const char *value, struct sg_err *err);
/* "key=value" (from -o). */
int settings_set_pair(struct settings *s, const char *pair, struct sg_err *err);
/* Reads a config file; an error names the file and line. Nothing is changed
 * on error. 0 or -1 with err. */
int settings_load_file(struct settings *s, const char *path, struct sg_err *err);

/* Typed getters; the key must exist in the table (else abort: a programming
 * error). DURATION values are returned in seconds. */
int64_t settings_int(const struct settings *s, const char *key);
int settings_bool(const struct settings *s, const char *key);
const char *settings_str(const struct settings *s, const char *key);

/* 1 for a setting whose value is a secret: never printed (settings_print
 * shows "(set, not shown)") nor logged. */
int settings_secret(const char *key);

/* Prints "key = value" for every key of the program, in table order. */
void settings_print(const struct settings *s, FILE *out);

#endif
