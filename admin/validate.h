/*
 * validate - checks and normalises the values administrators type, before
 * anything reaches the store; shared by the commands and by import.
 *
 * The checks return CTL_OK with a malloc'ed normalised text in *out, or
 * CTL_USAGE after printing a message naming field (ctl_invalid()). Lists are
 * comma-separated; "none" (or "") means the empty list where empty is
 * allowed.
 */
#ifndef SASLGATE_VALIDATE_H
#define SASLGATE_VALIDATE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <sqlite3.h>

#include "store_admin.h"
#include "timeparse.h"

struct ctl;

/* Names of policies, groups and locations: 1..64 of A-Z a-z 0-9 . _ -, starting
 * with a letter or digit; not "all", "any" or "none". */
int ctl_check_name(const char *field, const char *name);
/* Classes (lower-cased) and mechanism names (upper-cased); never empty. */
int ctl_norm_mechs(const char *field, const char *text, char **out);
/* User patterns (lower-cased); allow_all: "all" alone is accepted. */
int ctl_norm_patterns(const char *field, const char *text, int allow_all, char **out);
/* Names of existing groups or locations; any_word ("any") alone is accepted
 * if not NULL. CTL_FAIL on a store error. */
int ctl_norm_names(sqlite3 *db, const char *field, const char *text, enum sa_kind kind,
                   const char *any_word, char **out);
/* "any" or service names. */
int ctl_norm_services(const char *field, const char *text, char **out);
/* "550 5.7.9 text": splits and validates with policy_reply_valid(). text may be
 * omitted (the default text is used). */
int ctl_parse_reply(const char *field, const char *reply, char **code, char **enh, char **text);
/* A time (ISO 8601, "now" or a duration from ctl->now in dir) into *out. */
int ctl_parse_time(const struct ctl *ctl, const char *field, const char *text,
                   enum time_direction dir, time_t *out);
/* An exception id: a positive integer. */
int ctl_parse_id(const char *field, const char *text, int64_t *id);

/* Describes who references a group or location (policies and exceptions) into
 * buf: 1 referenced, 0 free, -1 on a store error (printed). */
int ctl_references(sqlite3 *db, enum sa_kind kind, const char *name, char *buf, size_t len);

/* ISO 8601 UTC, or none_text ("-", "never") for 0. buf: at least 32 bytes.
 * Returns buf or none_text. */
const char *ctl_time(time_t t, const char *none_text, char *buf, size_t len);

/* Joins items with "," into a malloc'ed string. */
struct ctl_list {
	char *text;
	size_t len, cap;
};
void ctl_list_add(struct ctl_list *l, const char *item);
/* Returns the text ("" if empty), owned by the caller; l is empty again. */
char *ctl_list_take(struct ctl_list *l);

#endif
