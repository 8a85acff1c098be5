/*
 * mech - the mechanism catalogue (name -> class), shown next to the mechanisms
 * Cyrus SASL has installed on this host with their security flags. The flags
 * are information only: the class is never derived from them (Dovecot, for
 * one, flags XOAUTH2 as plaintext).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sasl/sasl.h>
#include <sasl/saslplug.h>

#include "ctl.h"
#include "json.h"
#include "mech.h"
#include "policy_settings.h"

#define INSTALLED_MAX 64

struct installed {
	char name[MECH_NAME_MAX + 1];
	unsigned flags;
	int in_catalogue;
};

struct installed_set {
	struct installed m[INSTALLED_MAX];
	size_t n;
};

static void collect_plugin(server_sasl_mechanism_t *m, sasl_info_callback_stage_t stage, void *rock)
{
	struct installed_set *set = rock;

	if (stage != SASL_INFO_LIST_MECH || m == NULL || m->plug == NULL ||
	    m->plug->mech_name == NULL || set->n >= INSTALLED_MAX)
		return;
	for (size_t i = 0; i < set->n; i++)
		if (sg_strcasecmp(set->m[i].name, m->plug->mech_name) == 0)
			return;
	sg_upper(set->m[set->n].name, m->plug->mech_name, sizeof(set->m[set->n].name));
	set->m[set->n].flags = m->plug->security_flags;
	set->m[set->n].in_catalogue = 0;
	set->n++;
}

/* The server mechanisms of the local Cyrus SASL installation. Failure to
 * initialise Cyrus SASL is not an error: the list is then empty. */
static void installed_mechs(struct installed_set *set)
{
	set->n = 0;
	if (sasl_server_init(NULL, "saslgatectl") != SASL_OK)
		return;
	sasl_server_plugin_info(NULL, collect_plugin, set);
	sasl_server_done();
}

static const struct {
	unsigned flag;
	const char *name;
} sasl_flags[] = {
    {SASL_SEC_NOPLAINTEXT, "noplaintext"},   {SASL_SEC_NOACTIVE, "noactive"},
    {SASL_SEC_NODICTIONARY, "nodictionary"}, {SASL_SEC_FORWARD_SECRECY, "forward_secrecy"},
    {SASL_SEC_NOANONYMOUS, "noanonymous"},   {SASL_SEC_PASS_CREDENTIALS, "pass_credentials"},
    {SASL_SEC_MUTUAL_AUTH, "mutual_auth"},
};

static void flags_text(unsigned flags, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(sasl_flags) / sizeof(sasl_flags[0]); i++) {
		int n;

		if (!(flags & sasl_flags[i].flag))
			continue;
		n = snprintf(buf + used, len - used, "%s%s", used ? "," : "", sasl_flags[i].name);
		if (n < 0 || (size_t)n >= len - used)
			break;
		used += (size_t)n;
	}
	if (used == 0)
		sg_strlcpy(buf, "-", len);
}

static void flags_json(struct json *j, unsigned flags)
{
	json_array_begin(j);
	for (size_t i = 0; i < sizeof(sasl_flags) / sizeof(sasl_flags[0]); i++)
		if (flags & sasl_flags[i].flag)
			json_string(j, sasl_flags[i].name);
	json_array_end(j);
}

struct mech_ctx {
	struct installed_set *set;
	struct json *j;
};

static void print_entry(struct mech_ctx *mc, const char *name, const char *cls, int in_catalogue,
                        const struct installed *inst)
{
	char flags[160];

	if (mc->j) {
		json_object_begin(mc->j);
		json_kv_string(mc->j, "name", name);
		json_kv_string(mc->j, "class", cls);
		json_kv_bool(mc->j, "in_catalogue", in_catalogue);
		json_kv_bool(mc->j, "installed", inst != NULL);
		json_key(mc->j, "sasl_flags");
		if (inst)
			flags_json(mc->j, inst->flags);
		else
			json_null(mc->j);
		json_object_end(mc->j);
		return;
	}
	flags_text(inst ? inst->flags : 0, flags, sizeof(flags));
	printf("%-20s %-22s %-9s %s\n", name, cls, inst ? "yes" : "no", inst ? flags : "");
}

static int print_catalogue_entry(const char *name, const char *cls, void *arg)
{
	struct mech_ctx *mc = arg;
	struct installed *inst = NULL;

	for (size_t i = 0; i < mc->set->n; i++) {
		if (sg_strcasecmp(mc->set->m[i].name, name) == 0) {
			inst = &mc->set->m[i];
			inst->in_catalogue = 1;
		}
	}
	print_entry(mc, name, cls, 1, inst);
	return 0;
}

static int mech_list(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	struct installed_set set;
	struct mech_ctx mc = {&set, NULL};
	struct sg_err err = {{0}};
	char unknown[32], cls[64];
	struct json j;
	sqlite3 *db;
	int rc = ctl_start(ctl, cmd, argc, argv, NULL, &db);

	if (rc != CTL_OPT_CONTINUE)
		return rc;
	if (policy_setting_get(db, "unknown_mechanism_class", unknown, sizeof(unknown), &err) < 0) {
		store_close(&db);
		return ctl_fail("%s", err.text);
	}
	installed_mechs(&set);
	mc.j = json_list_begin(&j, stdout, ctl->json);
	if (mc.j == NULL)
		printf("%-20s %-22s %-9s %s\n", "MECHANISM", "CLASS", "INSTALLED",
		       "CYRUS SASL FLAGS (information only)");
	rc = store_admin_mech_foreach(db, print_catalogue_entry, &mc, &err);
	store_close(&db);
	snprintf(cls, sizeof(cls), "%s (unknown)", unknown);
	for (size_t i = 0; rc >= 0 && i < set.n; i++)
		if (!set.m[i].in_catalogue)
			print_entry(&mc, set.m[i].name, ctl->json ? unknown : cls, 0, &set.m[i]);
	if (mc.j == NULL && rc >= 0)
		printf("\nA mechanism not in the catalogue is treated as class \"%s\" "
		       "(setting unknown_mechanism_class).\n",
		       unknown);
	json_list_end(mc.j);
	return rc < 0 ? ctl_fail("%s", err.text) : CTL_OK;
}

/* Sets the class of a catalogue entry (adding the entry if needed). */
static int mech_write(struct ctl *ctl, const char *name, const char *cls_text)
{
	struct sg_err err = {{0}};
	char upper[MECH_NAME_MAX + 1], before[128], after[128], old[32] = "";
	enum mech_class cls = MECH_CLASS_LEGACY;
	sqlite3 *db;
	int rc;

	if (!mech_name_valid(name))
		return ctl_invalid("mechanism",
		                   "'%s' is not a SASL mechanism name (1..20 of A-Z "
		                   "0-9 - _)",
		                   name);
	if (mech_class_parse(cls_text, &cls) < 0)
		return ctl_invalid("class", "'%s' is not a class (legacy, password, modern)",
		                   cls_text);
	sg_upper(upper, name, sizeof(upper));
	if ((rc = ctl_open(ctl, &db)) != CTL_OK)
		return rc;
	if ((rc = ctl_begin(db)) != CTL_OK)
		goto out;
	if (store_admin_mech_get(db, upper, old, sizeof(old), &err) < 0 ||
	    store_admin_mech_set(db, upper, mech_class_name(cls), &err) < 0) {
		rc = ctl_abort(db, ctl_fail("%s", err.text));
		goto out;
	}
	snprintf(before, sizeof(before), "{\"name\":\"%s\",\"class\":\"%s\"}", upper, old);
	snprintf(after, sizeof(after), "{\"name\":\"%s\",\"class\":\"%s\"}", upper,
	         mech_class_name(cls));
	rc = ctl_finish(db, "mech set", upper, old[0] ? before : NULL, after);
	if (rc == CTL_OK && !ctl->json)
		printf("%s: %s\n", upper, mech_class_name(cls));
out:
	store_close(&db);
	return rc;
}

static int mech_set(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	int rc = ctl_parse_plain(ctl, cmd, argc, argv, 2, 2);

	return rc != CTL_OPT_CONTINUE ? rc : mech_write(ctl, argv[optind], argv[optind + 1]);
}

const struct ctl_command ctl_mech_verbs[] = {
    {"list", "", "the catalogue and the mechanisms Cyrus SASL has installed", mech_list, NULL,
     NULL},
    {"set", "NAME legacy|password|modern", "set the class of a mechanism", mech_set, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL, NULL},
};
