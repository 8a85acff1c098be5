/*
 * cmd_settings - the settings command; what import shares with it.
 */
#ifndef SASLGATE_CMD_SETTINGS_H
#define SASLGATE_CMD_SETTINGS_H

#include <stddef.h>

/* Validates a policy.db setting (the table of policy_settings.h) into its
 * normal form in norm (len bytes); field names it in messages (NULL: the key,
 * or "setting" for an unknown key). CTL_OK or CTL_USAGE (message printed). */
int ctl_setting_normalise(const char *field, const char *key, const char *value, char *norm,
                          size_t len);

#endif
