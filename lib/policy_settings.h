/*
 * policy_settings - the one table of the settings stored in policy.db (its
 * settings table, written by saslgatectl; not the daemons' settings of
 * settings.h, which live in their configuration files): each key once, with
 * its type, default, bounds and help. saslgatectl's settings command and
 * import validate with it, the snapshot loader takes its defaults from it,
 * status and prune read the retention with it.
 *
 * The key "generation" (the policy generation, bumped by every audited change)
 * is internal: it is not in the table and cannot be set.
 */
#ifndef SASLGATE_POLICY_SETTINGS_H
#define SASLGATE_POLICY_SETTINGS_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "util.h"

enum policy_setting_type {
	POLICY_SETTING_CLASS, /* a mechanism class: legacy, password or modern */
	POLICY_SETTING_DAYS,  /* a whole number of days within min..max */
};

struct policy_setting_def {
	const char *key;
	enum policy_setting_type type;
	const char *def;  /* default, in normal form */
	int64_t min, max; /* DAYS bounds */
	const char *help;
};

/* The table, terminated by a NULL key. */
extern const struct policy_setting_def policy_setting_table[];

/* The entry for key (case-sensitive), or NULL for a key that is not a setting
 * (such as "generation"). */
const struct policy_setting_def *policy_setting_find(const char *key);

enum policy_setting_check {
	POLICY_SETTING_OK,      /* valid: norm holds the normal form */
	POLICY_SETTING_UNKNOWN, /* key is not a setting */
	POLICY_SETTING_INVALID, /* value is not valid for key */
};

/* Validates value for key and writes its normal form into norm (len bytes).
 * On UNKNOWN, err says "unknown setting 'KEY' (KEY1, KEY2)"; on INVALID, err
 * gives the reason without the key ("'x' is not a class (legacy, password,
 * modern)"). */
enum policy_setting_check policy_setting_normalise(const char *key, const char *value, char *norm,
                                                   size_t len, struct sg_err *err);

/* The effective value of key in db: the stored value, or the table's default
 * when the row is absent. key must be in the table (else -1). 0, or -1 with
 * err on a store error or a value longer than len. */
int policy_setting_get(sqlite3 *db, const char *key, char *buf, size_t len, struct sg_err *err);

/* The effective value of a DAYS setting: the stored value when it is a
 * number within the bounds, else (absent or invalid) the default. 0, or -1
 * with err on a store error (*out then holds the default). */
int policy_setting_get_days(sqlite3 *db, const char *key, int64_t *out, struct sg_err *err);

#endif
