/*
 * mech - class names, the default catalogue and mechanism name syntax.
 */
#include <string.h>

#include "mech.h"
#include "util.h"

const struct mech_default mech_defaults[] = {
    {"PLAIN", MECH_CLASS_LEGACY},
    {"LOGIN", MECH_CLASS_LEGACY},
    {"CRAM-MD5", MECH_CLASS_LEGACY},
    {"DIGEST-MD5", MECH_CLASS_LEGACY},
    {"NTLM", MECH_CLASS_LEGACY},
    {"ANONYMOUS", MECH_CLASS_LEGACY},
    {"OTP", MECH_CLASS_LEGACY},
    {"SRP", MECH_CLASS_LEGACY},
    {"SCRAM-SHA-1", MECH_CLASS_PASSWORD},
    {"SCRAM-SHA-1-PLUS", MECH_CLASS_PASSWORD},
    {"SCRAM-SHA-224", MECH_CLASS_PASSWORD},
    {"SCRAM-SHA-224-PLUS", MECH_CLASS_PASSWORD},
    {"SCRAM-SHA-256", MECH_CLASS_PASSWORD},
    {"SCRAM-SHA-256-PLUS", MECH_CLASS_PASSWORD},
    {"SCRAM-SHA-384", MECH_CLASS_PASSWORD},
    {"SCRAM-SHA-384-PLUS", MECH_CLASS_PASSWORD},
    {"SCRAM-SHA-512", MECH_CLASS_PASSWORD},
    {"SCRAM-SHA-512-PLUS", MECH_CLASS_PASSWORD},
    {"XOAUTH2", MECH_CLASS_MODERN},
    {"OAUTHBEARER", MECH_CLASS_MODERN},
    {"EXTERNAL", MECH_CLASS_MODERN},
    {"GSSAPI", MECH_CLASS_MODERN},
    {"GS2-KRB5", MECH_CLASS_MODERN},
    {NULL, MECH_CLASS_LEGACY},
};

static const char *const class_names[MECH_CLASS_COUNT] = {
    [MECH_CLASS_LEGACY] = "legacy",
    [MECH_CLASS_PASSWORD] = "password",
    [MECH_CLASS_MODERN] = "modern",
};

const char *mech_class_name(enum mech_class c)
{
	if ((unsigned)c >= MECH_CLASS_COUNT)
		return "unknown";
	return class_names[c];
}

int mech_class_parse(const char *name, enum mech_class *out)
{
	int c;

	if (name == NULL)
		return -1;
	for (c = 0; c < MECH_CLASS_COUNT; c++) {
		if (sg_strcasecmp(name, class_names[c]) == 0) {
			*out = (enum mech_class)c;
			return 0;
		}
	}
	return -1;
}

int mech_name_valid(const char *name)
{
	size_t i;

	if (name == NULL || *name == '\0')
		return 0;
	for (i = 0; name[i] != '\0'; i++) {
		char c = name[i];

		if (i >= MECH_NAME_MAX)
			return 0;
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return 0;
	}
	return 1;
}
