/*
 * config - saslgate-policyd's settings: the shared table (lib/settings) filled
 * from defaults, the config file and the command line, and the per-request
 * values derived from it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policyd.h"
#include "snapshot.h"

/* Appends the -l endpoints to the listen setting. */
static int append_endpoints(const struct policyd_cmdline *cl, struct settings *s,
                            struct sg_err *err)
{
	const char *cur = settings_str(s, "listen");
	size_t len = strlen(cur) + 1, used;
	char *joined;
	int rc;

	if (cl->n_endpoints == 0)
		return 0;
	for (size_t i = 0; i < cl->n_endpoints; i++)
		len += strlen(cl->endpoints[i]) + 1;
	joined = xmalloc(len);
	used = strlen(cur);
	memcpy(joined, cur, used);
	for (size_t i = 0; i < cl->n_endpoints; i++) {
		size_t n = strlen(cl->endpoints[i]);

		if (used > 0)
			joined[used++] = ',';
		memcpy(joined + used, cl->endpoints[i], n);
		used += n;
	}
	joined[used] = '\0';
	rc = settings_set(s, "listen", joined, err);
	free(joined);
	return rc;
}

int policyd_settings_build(const struct policyd_cmdline *cl, struct settings *s, struct sg_err *err)
{
	settings_init(s, SETTINGS_POLICYD);
	if (cl->config_file != NULL && settings_load_file(s, cl->config_file, err) < 0)
		goto fail;
	for (size_t i = 0; i < cl->n_pairs; i++) {
		if (settings_set_pair(s, cl->pairs[i], err) < 0)
			goto fail;
	}
	if (append_endpoints(cl, s, err) < 0)
		goto fail;
	return 0;
fail:
	settings_free(s);
	return -1;
}

/* "451 4.3.0 text" -> validated with the same rule as a policy's reply. */
static int reply_check(const char *reply, struct sg_err *err)
{
	char code[8], enh[32];
	const char *p = reply, *sp;
	size_t n;

	sp = strchr(p, ' ');
	n = sp ? (size_t)(sp - p) : strlen(p);
	if (sp == NULL || n >= sizeof(code))
		return sg_err_set(err, "on_error_reply: expected \"CODE X.Y.Z text\", got \"%s\"",
		                  reply);
	memcpy(code, p, n);
	code[n] = '\0';
	p = sp + 1;
	sp = strchr(p, ' ');
	n = sp ? (size_t)(sp - p) : strlen(p);
	if (sp == NULL || n >= sizeof(enh))
		return sg_err_set(err, "on_error_reply: expected \"CODE X.Y.Z text\", got \"%s\"",
		                  reply);
	memcpy(enh, p, n);
	enh[n] = '\0';
	if (policy_reply_valid(code, enh, sp + 1, err) < 0) {
		struct sg_err inner = *err;

		return sg_err_set(err, "on_error_reply: %s", inner.text);
	}
	return 0;
}

int policyd_config_derive(const struct settings *s, struct policyd_config *cfg, struct sg_err *err)
{
	const char *on_error = settings_str(s, "on_error");
	const char *reply = settings_str(s, "on_error_reply");

	memset(cfg, 0, sizeof(*cfg));
	cfg->limits.max_line_bytes = (size_t)settings_int(s, "max_line_bytes");
	cfg->limits.max_attributes = (size_t)settings_int(s, "max_attributes");
	cfg->limits.max_request_bytes = (size_t)settings_int(s, "max_request_bytes");
	cfg->idle_timeout_s = settings_int(s, "idle_timeout");
	cfg->max_connections = (size_t)settings_int(s, "max_connections");
	cfg->report_warn = strcmp(settings_str(s, "report_only_action"), "warn") == 0;
	if (strcmp(on_error, "accept") == 0)
		cfg->on_error = ON_ERROR_ACCEPT;
	else if (strcmp(on_error, "reject") == 0)
		cfg->on_error = ON_ERROR_REJECT;
	else
		cfg->on_error = ON_ERROR_TEMPFAIL;
	if (reply_check(reply, err) < 0)
		return -1;
	if (sg_strlcpy(cfg->on_error_reply, reply, sizeof(cfg->on_error_reply)) >=
	    sizeof(cfg->on_error_reply))
		return sg_err_set(err, "on_error_reply: longer than %zu bytes",
		                  sizeof(cfg->on_error_reply) - 1);
	return 0;
}
