/*
 * authpolicy_parse - what the Dovecot front end's JSON costs, alone: the
 * time of json_loadb() (Jansson, with the flags saslgate-policyd uses) plus
 * authpolicy_map() and json_decref() for one request body, over 4,096
 * bodies shaped as bench/authpolicy_load sends them (10,000 users, 70%
 * XOAUTH2/OAUTHBEARER, Dovecot's session ids, TLS 90%). The http round of
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
#include <time.h>
#include <unistd.h>

#include "authpolicy.h"

#define BODIES 4096

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static size_t make_body(char *out, size_t cap, unsigned r)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	unsigned user = (unsigned)rand() % 10000u, m = r % 100u, p = (unsigned)rand() % 100u;
	const char *mech = m < 70 ? (r & 1 ? "XOAUTH2" : "OAUTHBEARER") : m < 95 ? "PLAIN" : "LOGIN";
	const char *protocol = p < 80 ? "imap" : p < 95 ? "pop3" : "smtp";
	char session[17] = "";

	if (p < 95) {
		for (int i = 0; i < 16; i++)
			session[i] = b64[(unsigned)rand() & 63u];
		session[16] = '\0';
	}
	return (size_t)snprintf(out, cap,
	                        "{\"login\":\"user%u@example.test\",\"mech\":\"%s\",\"protocol\":\"%s\","
	                        "\"remote\":\"10.%u.%u.%u\",\"session_id\":\"%s\",\"tls\":%s}",
	                        user, mech, protocol, user % 200, (user / 200) % 250,
	                        (unsigned)rand() % 250u + 1, session,
	                        rand() % 10 != 0 ? "true" : "false");
}

int main(int argc, char **argv)
{
	static char bodies[BODIES][256];
	static size_t lens[BODIES];
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
	srand(42);
	for (int i = 0; i < BODIES; i++) {
		lens[i] = make_body(bodies[i], sizeof(bodies[i]), (unsigned)rand());
		bytes += lens[i];
	}
	for (int round = 0; round < 5; round++) {
		double t0 = now_s(), t;

		for (long i = 0; i < n; i++) {
			const char *b = bodies[i % BODIES];
			json_error_t jerr;
			json_t *obj = json_loadb(b, lens[i % BODIES], JSON_REJECT_DUPLICATES, &jerr);
			struct authpolicy_request ar;
			struct sg_err err = {{0}};

			if (obj == NULL || authpolicy_map(obj, AUTHPOLICY_ALLOW, &ar, &err) < 0) {
				fprintf(stderr, "authpolicy_parse: %s\n", obj ? err.text : jerr.text);
				return 1;
			}
			sum += ar.req.tls;
			json_decref(obj);
		}
		t = (now_s() - t0) / (double)n;
		if (t < best)
			best = t;
	}
	printf("parse_ns=%.0f bytes=%zu tls=%ld\n", best * 1e9, bytes / BODIES, sum > 0 ? 1L : 0L);
	return 0;
}
