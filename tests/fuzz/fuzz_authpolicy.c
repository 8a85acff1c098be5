/*
 * fuzz_authpolicy - Dovecot's auth policy request as saslgate-policyd reads
 * it: bytes -> Jansson (json_loadb, as the daemon calls it) -> the mapping
 * to a struct request (policyd/authpolicy.c, compiled in), for both
 * commands.
 *
 * Invariants checked: a mapped request's strings are the JSON object's own
 * strings (so they live exactly as long as it), hold no NUL before their
 * end, and a mechanism is either absent (and reported missing) or a
 * non-empty string; a parsed client address is one ipaddr_parse() accepts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../policyd/authpolicy.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_string(const json_t *obj, const char *name, const char *got)
{
	const json_t *v = json_object_get(obj, name);

	if (got == NULL)
		return;
	if (v == NULL || !json_is_string(v) || json_string_value(v) != got)
		abort(); /* not borrowed from the object */
	if (strlen(got) != json_string_length(v))
		abort();
}

static void check(const json_t *obj, enum authpolicy_command cmd)
{
	struct authpolicy_request ar;
	struct sg_err err;
	struct ipaddr a;

	if (authpolicy_map(obj, cmd, &ar, &err) != 0) {
		if (err.text[0] == '\0')
			abort(); /* an error without a reason */
		return;
	}
	if (!json_is_object(obj))
		abort();
	check_string(obj, "login", ar.req.user);
	check_string(obj, "remote", ar.req.client_addr);
	check_string(obj, "mech", ar.req.mech);
	check_string(obj, "protocol", ar.req.service);
	check_string(obj, "session_id", ar.req.instance);
	if ((ar.req.mech == NULL) != (ar.missing != NULL))
		abort();
	if (ar.req.mech != NULL && ar.req.mech[0] == '\0')
		abort();
	if (ar.req.addr_valid && ipaddr_parse(ar.req.client_addr, &a, NULL) != 0)
		abort();
	if (cmd == AUTHPOLICY_ALLOW && (ar.success || ar.policy_reject))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t jerr;
	json_t *obj = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);

	if (obj == NULL)
		return 0;
	check(obj, AUTHPOLICY_ALLOW);
	check(obj, AUTHPOLICY_REPORT);
	json_decref(obj);
	return 0;
}
