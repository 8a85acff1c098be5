/*
 * fuzz_policy_request - libFuzzer target for saslgate-policyd's request parser
 * (policyd/request_parse.c). The input is cut into chunks whose sizes come from
 * the input itself, so requests split across reads are exercised, and several
 * requests per input run through one parser, as on a persistent connection.
 * Tight limits make every limit reachable within the capped input size.
 *
 * The Makefile links fuzz targets with lib/ only, so the parser is compiled in.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../policyd/request_parse.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INPUT_MAX 65536

static void check_request(const struct policy_parser *p)
{
	for (int a = 0; a < POLICY_ATTR_COUNT; a++) {
		const char *v = policy_parser_get(p, (enum policy_attr)a);
		size_t n = strlen(v);

		/* Values never carry the line structure or a NUL inside. */
		if (memchr(v, '\n', n) != NULL)
			abort();
		if (!policy_parser_has(p, (enum policy_attr)a) && n != 0)
			abort();
	}
	if (strcmp(policy_parser_get(p, POLICY_ATTR_REQUEST), "smtpd_access_policy") != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct policy_limits lim = {128, 12, 1024};
	struct policy_parser p;
	size_t off, chunk;

	if (size < 1 || size > INPUT_MAX)
		return 0;
	chunk = (size_t)data[0] % 17 + 1;
	data++;
	size--;
	policy_parser_init(&p, &lim);
	for (off = 0; off < size;) {
		size_t want = size - off < chunk ? size - off : chunk;
		size_t used = 0;
		enum policy_parse_status st =
			policy_parser_feed(&p, (const char *)data + off, want, &used);

		if (used > want)
			abort();
		off += used;
		if (st == POLICY_PARSE_ERROR) {
			if (policy_parser_error(&p)[0] == '\0')
				abort();
			policy_parser_reset(&p); /* the daemon would close; go on fuzzing */
			off++;			/* skip the offending byte */
			continue;
		}
		if (st == POLICY_PARSE_DONE) {
			check_request(&p);
			policy_parser_reset(&p);
		}
	}
	policy_parser_free(&p);
	return 0;
}
