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

/* What one run saw: per completed request a digest of its values, and errors. */
struct outcome {
	unsigned long long digest;
	size_t requests, errors;
};

static unsigned long long mix(unsigned long long h, const char *s)
{
	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return (h ^ 0xff) * 1099511628211ull;
}

/* Feeds data in chunks of `chunk` bytes (the daemon sees whatever read()
 * returned); after an error, skips the offending byte and goes on. */
static void run(const uint8_t *data, size_t size, size_t chunk, struct outcome *out)
{
	struct policy_limits lim = {128, 12, 1024};
	struct policy_parser p;
	size_t off = 0, end = 0;

	memset(out, 0, sizeof(*out));
	out->digest = 14695981039346656037ull;
	policy_parser_init(&p, &lim);
	while (off < size) {
		size_t want, used = 0;
		enum policy_parse_status st;

		if (end <= off)
			end = off + chunk < size ? off + chunk : size;
		want = end - off;
		st = policy_parser_feed(&p, (const char *)data + off, want, &used);
		if (used > want)
			abort();
		off += used;
		if (st == POLICY_PARSE_ERROR) {
			if (policy_parser_error(&p)[0] == '\0')
				abort();
			out->errors++;
			out->digest = mix(out->digest, policy_parser_error(&p));
			policy_parser_reset(&p); /* the daemon would close; go on fuzzing */
			off++;			/* skip the offending byte */
			continue;
		}
		if (st == POLICY_PARSE_DONE) {
			check_request(&p);
			out->requests++;
			for (int a = 0; a < POLICY_ATTR_COUNT; a++)
				out->digest = mix(out->digest, policy_parser_get(&p, (enum policy_attr)a));
			policy_parser_reset(&p);
		}
	}
	policy_parser_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct outcome chunked, bytewise;

	if (size < 1 || size > INPUT_MAX)
		return 0;
	/* Whole lines take the parser's fast path; single bytes its byte path.
	 * Both must see the same requests, values and errors. */
	run(data + 1, size - 1, (size_t)data[0] * 64 + 1, &chunked);
	run(data + 1, size - 1, 1, &bytewise);
	if (chunked.requests != bytewise.requests || chunked.errors != bytewise.errors ||
	    chunked.digest != bytewise.digest)
		abort();
	return 0;
}
