/*
 * authpolicy_parse - what the Dovecot front end's JSON costs, alone: the
 * time of json_loadb() (Jansson, with the flags saslgate-policyd uses) plus
 * authpolicy_map() and json_decref() for one request body, over 4,096
 * bodies made as bench/authpolicy_load makes them (lg_dovecot_login(),
 * 10,000 users). The http round of
 * bench/run.sh sets it beside the no-op's CPU a request: it is a share of
 * the ratio no other saving can win back. Jansson's own allocator (the
 * daemon's per-request arena saves a few percent more).
 *
 *   bench/authpolicy_parse [-n REQUESTS]
 *
 * Prints "parse_ns=N bytes=B" (the best of 5 rounds).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "authpolicy.h"
#include "loadgen.h"

#define BODIES 4096

int main(int argc, char **argv)
{
	static char bodies[BODIES][256];
	static size_t lens[BODIES];
	uint64_t rng = 42;
	long n = 1000000, sum = 0;
	double best = 1e9;
	size_t bytes = 0;
	int c;

	while ((c = getopt(argc, argv, "n:")) != -1) {
		if (c != 'n' || (n = atol(optarg)) <= 0) {
			fprintf(stderr, "usage: authpolicy_parse [-n REQUESTS]\n");
			return 2;
		}
	}
	for (int i = 0; i < BODIES; i++) {
		lens[i] = lg_dovecot_login(bodies[i], sizeof(bodies[i]) - 1, &rng, 10000);
		bodies[i][lens[i]++] = '}';
		bodies[i][lens[i]] = '\0';
		bytes += lens[i];
	}
	for (int round = 0; round < 5; round++) {
		double t0 = lg_now_s(), t;

		for (long i = 0; i < n; i++) {
			const char *b = bodies[i % BODIES];
			json_error_t jerr;
			json_t *obj =
			    json_loadb(b, lens[i % BODIES], JSON_REJECT_DUPLICATES, &jerr);
			struct authpolicy_request ar;
			struct sg_err err = {{0}};

			if (obj == NULL || authpolicy_map(obj, AUTHPOLICY_ALLOW, &ar, &err) < 0) {
				fprintf(stderr, "authpolicy_parse: %s\n",
				        obj ? err.text : jerr.text);
				return 1;
			}
			sum += ar.req.tls;
			json_decref(obj);
		}
		t = (lg_now_s() - t0) / (double)n;
		if (t < best)
			best = t;
	}
	printf("parse_ns=%.0f bytes=%zu tls=%ld\n", best * 1e9, bytes / BODIES, sum > 0 ? 1L : 0L);
	return 0;
}
