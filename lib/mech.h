/*
 * mech - SASL mechanism names and classes. The catalogue itself (name -> class,
 * editable with saslgatectl) lives in policy.db and in the snapshot; this module
 * holds the class names, the default catalogue and name validation.
 */
#ifndef SASLGATE_MECH_H
#define SASLGATE_MECH_H

#include <stddef.h>

enum mech_class { MECH_CLASS_LEGACY, MECH_CLASS_PASSWORD, MECH_CLASS_MODERN, MECH_CLASS_COUNT };

#define MECH_NAME_MAX 20 /* RFC 4422 */

struct mech_default {
	const char *name;
	enum mech_class mech_class;
};

/* The default catalogue written by "saslgatectl init", NULL-name terminated. */
extern const struct mech_default mech_defaults[];

/* "legacy", "password", "modern". */
const char *mech_class_name(enum mech_class c);
/* Case-insensitive; returns 0 and stores the class, or -1 for an unknown name. */
int mech_class_parse(const char *name, enum mech_class *out);
/* 1 if name is a syntactically valid SASL mechanism name (RFC 4422: 1..20 of
 * A-Z 0-9 - _, any case), else 0. */
int mech_name_valid(const char *name);

#endif
