/*
 * authpolicy - Dovecot's auth policy JSON -> struct request: see authpolicy.h.
 */
#include <string.h>

#include "authpolicy.h"
#include "cidr.h"

int authpolicy_command_parse(const char *text, enum authpolicy_command *out)
{
	if (text == NULL)
		return -1;
	if (strcmp(text, "allow") == 0)
		*out = AUTHPOLICY_ALLOW;
	else if (strcmp(text, "report") == 0)
		*out = AUTHPOLICY_REPORT;
	else
		return -1;
	return 0;
}

/* The string value of obj[name] into *out (NULL when absent or null). */
static int get_string(const json_t *obj, const char *name, const char **out, struct sg_err *err)
{
	const json_t *v = json_object_get(obj, name);

	*out = NULL;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return sg_err_set(err, "attribute \"%s\": expected a string", name);
	/* Jansson keeps strings with a NUL inside (\u0000); C strings cannot. */
	if (strlen(json_string_value(v)) != json_string_length(v))
		return sg_err_set(err, "attribute \"%s\": contains a NUL character", name);
	*out = json_string_value(v);
	return 0;
}

/* A boolean: true/false, or as some Dovecot setups send it, a string
 * ("1", "0", "true", "false", "yes", "no", ""). Absent: 0. */
static int get_bool(const json_t *obj, const char *name, int *out, struct sg_err *err)
{
	const json_t *v = json_object_get(obj, name);
	const char *s;

	*out = 0;
	if (v == NULL || json_is_null(v))
		return 0;
	if (json_is_boolean(v)) {
		*out = json_is_true(v);
		return 0;
	}
	if (!json_is_string(v))
		return sg_err_set(err, "attribute \"%s\": expected a boolean", name);
	s = json_string_value(v);
	if (strcmp(s, "1") == 0 || strcmp(s, "true") == 0 || strcmp(s, "yes") == 0)
		*out = 1;
	else if (!(*s == '\0' || strcmp(s, "0") == 0 || strcmp(s, "false") == 0 ||
	           strcmp(s, "no") == 0))
		return sg_err_set(err, "attribute \"%s\": expected a boolean, got \"%.40s\"", name,
		                  s);
	return 0;
}

int authpolicy_map(const json_t *obj, enum authpolicy_command cmd, struct authpolicy_request *out,
                   struct sg_err *err)
{
	struct request *req = &out->req;

	memset(out, 0, sizeof(*out));
	request_init(req);
	if (!json_is_object(obj))
		return sg_err_set(err, "the request body is not a JSON object");
	if (get_string(obj, "login", &req->user, err) < 0 ||
	    get_string(obj, "remote", &req->client_addr, err) < 0 ||
	    get_string(obj, "mech", &req->mech, err) < 0 ||
	    get_string(obj, "protocol", &req->service, err) < 0 ||
	    get_string(obj, "session_id", &req->instance, err) < 0 ||
	    get_bool(obj, "tls", &req->tls, err) < 0)
		return -1;
	if (cmd == AUTHPOLICY_REPORT &&
	    (get_bool(obj, "success", &out->success, err) < 0 ||
	     get_bool(obj, "policy_reject", &out->policy_reject, err) < 0))
		return -1;
	if (req->client_addr != NULL && *req->client_addr != '\0' &&
	    ipaddr_parse(req->client_addr, &req->addr, NULL) == 0)
		req->addr_valid = 1;
	if (req->mech == NULL || *req->mech == '\0') {
		/* Dovecot without mech=%m: every login looks unauthenticated. */
		req->mech = NULL;
		out->missing = "mech";
	}
	return 0;
}
