/*
 * config - saslgate-policyd's settings: the shared table (lib/settings) filled
 * from defaults, the config file and the command line, and the per-request
 * values derived from it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
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

int policyd_config_derive(const struct settings *s, struct policyd_config *cfg, struct sg_err *err)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->limits.max_line_bytes = (size_t)settings_int(s, "max_line_bytes");
	cfg->limits.max_attributes = (size_t)settings_int(s, "max_attributes");
	cfg->limits.max_request_bytes = (size_t)settings_int(s, "max_request_bytes");
	cfg->idle_timeout_s = settings_int(s, "idle_timeout");
	cfg->request_timeout_s = settings_int(s, "request_timeout");
	cfg->max_connections = (size_t)settings_int(s, "max_connections");
	cfg->report_warn = strcmp(settings_str(s, "report_only_action"), "warn") == 0;
	cfg->http_api_key = settings_str(s, "http_api_key");
	return gate_fallback_from_settings(s, &cfg->fallback, err);
}
