/*
 * init - creates policy.db with the catalogue, the location "loopback" and the
 * default policy "block-legacy", and says plainly what is now enforced.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "json.h"
#include "mech.h"
#include "store.h"

#define WEBMAIL_COMMAND                                                                            \
	"saslgatectl exception add --location loopback --permanent --reason \"local webmail\""

static int populate(sqlite3 *db, const char *state, time_t now, struct sg_err *err)
{
	struct sa_policy p;
	int rc;

	for (const struct mech_default *m = mech_defaults; m->name; m++)
		if (store_admin_mech_set(db, m->name, mech_class_name(m->mech_class), err) < 0)
			return -1;
	if (store_admin_set_insert(db, SA_LOCATION, "loopback", now, err) < 0 ||
	    store_admin_set_member(db, SA_LOCATION, 1, "loopback", "127.0.0.0/8", err) < 0 ||
	    store_admin_set_member(db, SA_LOCATION, 1, "loopback", "::1/128", err) < 0)
		return -1;
	sa_policy_defaults(&p, "block-legacy");
	sa_set(&p.state, state);
	p.created_at = p.updated_at = now;
	rc = store_admin_policy_insert(db, &p, err);
	sa_policy_clear(&p);
	return rc;
}

/* Removes a half-created store so that init can be run again. */
static void remove_store(const char *dir)
{
	static const char *const suffixes[] = {"", "-wal", "-shm"};
	char path[4096];

	for (size_t i = 0; i < 3; i++) {
		if (snprintf(path, sizeof(path), "%s/%s%s", dir, STORE_POLICY_DB, suffixes[i]) <
		    (int)sizeof(path))
			unlink(path);
	}
}

static void legacy_names(char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (const struct mech_default *m = mech_defaults; m->name; m++) {
		int n;

		if (m->mech_class != MECH_CLASS_LEGACY)
			continue;
		n = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", m->name);
		if (n < 0 || (size_t)n >= len - used)
			break;
		used += (size_t)n;
	}
}

static void report(const struct ctl *ctl, const char *state)
{
	int enforce = strcmp(state, "enforce") == 0;
	char names[256];

	legacy_names(names, sizeof(names));
	if (ctl->json) {
		struct json j;

		json_init(&j, stdout, 1);
		json_object_begin(&j);
		json_kv_string(&j, "store", ctl->store_label ? ctl->store_label : ctl->dir);
		json_kv_string(&j, "policy", "block-legacy");
		json_kv_string(&j, "state", state);
		json_kv_string(&j, "location", "loopback");
		json_kv_string(&j, "exempt_local_webmail", WEBMAIL_COMMAND);
		json_object_end(&j);
		json_finish(&j);
		return;
	}
	printf("Created the saslgate store in %s.\n\n",
	       ctl->store_label ? ctl->store_label : ctl->dir);
	if (enforce)
		printf("Now ENFORCED: policy \"block-legacy\" refuses every authenticated "
		       "submission that\nused a legacy SASL mechanism (%s),\nfor all users, "
		       "from any location. XOAUTH2, OAUTHBEARER, EXTERNAL and GSSAPI pass.\n\n",
		       names);
	else
		printf("REPORT-ONLY: policy \"block-legacy\" records (\"would block\") every "
		       "authenticated\nsubmission that used a legacy SASL mechanism (%s),\nfor all "
		       "users, from any location, without refusing it. Switch it on with:\n"
		       "  saslgatectl policy set block-legacy --state enforce\n\n",
		       names);
	printf("WARNING: local webmail submitting with PLAIN over loopback (127.0.0.0/8, ::1)\n"
	       "will %s. To exempt it:\n\n  %s\n",
	       enforce ? "now be refused" : "be refused once the policy is enforced",
	       WEBMAIL_COMMAND);
}

static int take_init_opt(int c, const char *value, void *arg)
{
	(void)value;
	if (c != 'r')
		return CTL_OPT_NOT_MINE;
	*(const char **)arg = "report-only";
	return CTL_OPT_CONTINUE;
}

int cmd_init(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"report-only", no_argument, NULL, 'r'},
	    CTL_OPT_COMMON,
	    {NULL, 0, NULL, 0},
	};
	struct sg_err err = {{0}};
	const char *state = "enforce";
	const struct ctl_opts opts = {":h", longopts, take_init_opt, &state};
	char after[128];
	sqlite3 *db = NULL;
	int rc;

	if ((rc = ctl_parse(ctl, cmd, argc, argv, &opts, 0, 0)) != CTL_OPT_CONTINUE)
		return rc;
	if (store_open_admin(ctl->dir, 1, &db, &err) < 0)
		return ctl_fail("init: %s", err.text);
	if ((rc = ctl_begin(db)) != CTL_OK)
		goto failed;
	if (populate(db, state, ctl->now, &err) < 0) {
		rc = ctl_abort(db, ctl_fail("init: %s", err.text));
		goto failed;
	}
	snprintf(after, sizeof(after),
	         "{\"policy\":\"block-legacy\",\"state\":\"%s\",\"location\":\"loopback\"}", state);
	if ((rc = ctl_finish(db, "init", "store", NULL, after)) != CTL_OK)
		goto failed;
	store_close(&db);
	report(ctl, state);
	return CTL_OK;
failed:
	store_close(&db);
	remove_store(ctl->dir);
	return rc;
}
