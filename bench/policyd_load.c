/*
 * policyd_load - a load generator for Postfix policy servers that behaves like
 * Postfix: N persistent connections (one per smtpd process), one outstanding
 * request on each, every request the full attribute set Postfix 3.7 sends for
 * a RCPT check. The mix is 70% modern logins (XOAUTH2, OAUTHBEARER), 25%
 * legacy (PLAIN, LOGIN) and 5% unauthenticated, over a pool of users and
 * client addresses. Reports requests/s and latency percentiles.
 *
 *   bench/policyd_load -l unix:PATH|inet:HOST:PORT [-c CONNECTIONS] [-d SECONDS]
 *                      [-w WARMUP_SECONDS] [-r RECIPIENTS] [-u USERS] [-T THREADS]
 *
 *   -c  connections (default 100)       -d  measured seconds (default 10)
 *   -w  warm-up seconds, not measured (default 1)
 *   -r  recipients per message: requests that repeat a message's instance
 *       (default 1: every request is a new message, no cache hits)
 *   -u  distinct users (default 10000)  -T  client threads (default 1)
 *
 * Prints one line of key=value results; exits 1 if a connection failed or a
 * reply was not "action=...\n\n".
 *
 * Side by side with the baseline responder, alternating runs so that both see
 * the same machine load:
 *   bench/baseline_policy -l unix:/tmp/b.sock &
 *   saslgate-policyd -f -d STORE -l unix:/tmp/p.sock 2>policyd.log &
 *   for i in 1 2 3 4; do
 *           bench/policyd_load -l unix:/tmp/b.sock -d 8
 *           bench/policyd_load -l unix:/tmp/p.sock -d 8
 *   done
 */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "loadgen.h"

#define REQ_MAX 2048
#define IN_MAX  4096

struct options {
	const char *endpoint;
	int connections, threads, recipients, users;
	double seconds, warmup;
};

struct conn {
	struct lg_conn lg; /* first: the loop's part */
	char out[REQ_MAX];
	char in[IN_MAX];
	size_t in_len;
	int rcpt_left;
	char instance[48];
	char mech[16];
	char user[64];
	char client[32];
	int tls;
};

struct counts {
	uint64_t requests, dunno, reject, tempfail, warn, other, errors;
};

struct worker {
	const struct options *opt;
	int id;
	struct lg_worker lg; /* connections, latencies, errors */
	uint64_t rng;
	struct counts c;
	uint64_t msg_seq;
};

static uint64_t rnd(struct worker *w)
{
	return lg_rnd(&w->rng);
}

static int connect_endpoint(const char *spec)
{
	int fd;

	if (strncmp(spec, "unix:", 5) == 0) {
		struct sockaddr_un sun;

		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", spec + 5);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
			close(fd);
			return -1;
		}
		return fd;
	}
	if (strncmp(spec, "inet:", 5) == 0) {
		char host[256];
		const char *colon = strrchr(spec + 5, ':');
		struct addrinfo hints, *res;
		size_t hlen;

		if (colon == NULL)
			return -1;
		hlen = (size_t)(colon - spec - 5);
		if (hlen >= sizeof(host))
			return -1;
		memcpy(host, spec + 5, hlen);
		host[hlen] = '\0';
		if (host[0] == '[' && hlen > 2) {
			memmove(host, host + 1, hlen - 2);
			host[hlen - 2] = '\0';
		}
		memset(&hints, 0, sizeof(hints));
		hints.ai_socktype = SOCK_STREAM;
		if (getaddrinfo(host, colon + 1, &hints, &res) != 0)
			return -1;
		fd = socket(res->ai_family, SOCK_STREAM, 0);
		if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
			close(fd);
			fd = -1;
		}
		freeaddrinfo(res);
		return fd;
	}
	return -1;
}

/* A new message: mechanism mix, user, client, TLS. */
static void new_message(struct worker *w, struct conn *c)
{
	static const char *const modern[] = {"XOAUTH2", "OAUTHBEARER"};
	static const char *const legacy[] = {"PLAIN", "LOGIN"};
	unsigned r = (unsigned)(rnd(w) % 100);
	unsigned user = (unsigned)(rnd(w) % (uint64_t)w->opt->users);

	if (r < 70)
		snprintf(c->mech, sizeof(c->mech), "%s", modern[rnd(w) & 1]);
	else if (r < 95)
		snprintf(c->mech, sizeof(c->mech), "%s", legacy[rnd(w) & 1]);
	else
		c->mech[0] = '\0';
	if (c->mech[0] != '\0')
		snprintf(c->user, sizeof(c->user), "user%u@example.com", user);
	else
		c->user[0] = '\0';
	/* a user mostly comes from the same few networks */
	snprintf(c->client, sizeof(c->client), "10.%u.%u.%u", user % 200, (user / 200) % 250,
	         (unsigned)(rnd(w) % 250) + 1);
	c->tls = rnd(w) % 10 != 0;
	snprintf(c->instance, sizeof(c->instance), "%x.%x.%llx.0", (unsigned)getpid(), w->id,
	         (unsigned long long)w->msg_seq++);
	c->rcpt_left = w->opt->recipients;
}

static void build_request(void *arg, struct lg_conn *lc)
{
	struct worker *w = arg;
	struct conn *c = (struct conn *)lc;
	int n;

	if (c->rcpt_left <= 0)
		new_message(w, c);
	c->rcpt_left--;
	n = snprintf(c->out, sizeof(c->out),
	             "request=smtpd_access_policy\n"
	             "protocol_state=RCPT\n"
	             "protocol_name=ESMTP\n"
	             "helo_name=[%s]\n"
	             "queue_id=\n"
	             "sender=%s\n"
	             "recipient=rcpt%d@example.org\n"
	             "recipient_count=0\n"
	             "client_address=%s\n"
	             "client_name=unknown\n"
	             "reverse_client_name=unknown\n"
	             "instance=%s\n"
	             "sasl_method=%s\n"
	             "sasl_username=%s\n"
	             "sasl_sender=\n"
	             "size=0\n"
	             "ccert_subject=\n"
	             "ccert_issuer=\n"
	             "ccert_fingerprint=\n"
	             "ccert_pubkey_fingerprint=\n"
	             "encryption_protocol=%s\n"
	             "encryption_cipher=%s\n"
	             "encryption_keysize=%s\n"
	             "etrn_domain=\n"
	             "stress=\n"
	             "client_port=%u\n"
	             "policy_context=submission\n"
	             "server_address=192.0.2.1\n"
	             "server_port=587\n"
	             "\n",
	             c->client, c->user[0] ? c->user : "someone@example.net", c->rcpt_left,
	             c->client, c->instance, c->mech, c->user, c->tls ? "TLSv1.3" : "",
	             c->tls ? "TLS_AES_256_GCM_SHA384" : "", c->tls ? "256" : "",
	             (unsigned)(rnd(w) % 30000) + 30000);
	c->lg.out = c->out;
	c->lg.out_len = (size_t)n;
}

static void classify(struct worker *w, const char *reply, size_t len)
{
	if (len == 14 && memcmp(reply, "action=DUNNO\n\n", 14) == 0)
		w->c.dunno++;
	else if (len > 9 && memcmp(reply, "action=5", 8) == 0)
		w->c.reject++;
	else if (len > 9 && memcmp(reply, "action=4", 8) == 0)
		w->c.tempfail++;
	else if (len > 12 && memcmp(reply, "action=WARN ", 12) == 0)
		w->c.warn++;
	else
		w->c.other++;
}

/* Reads a reply: 1 complete, 0 not yet, -1 on failure. */
static int on_readable(void *arg, struct lg_conn *lc, int measuring)
{
	struct worker *w = arg;
	struct conn *c = (struct conn *)lc;
	ssize_t n = read(c->lg.fd, c->in + c->in_len, sizeof(c->in) - c->in_len);
	char *end;
	size_t len;

	if (n < 0 && errno == EAGAIN)
		return 0;
	if (n <= 0)
		return -1;
	c->in_len += (size_t)n;
	end = memmem(c->in, c->in_len, "\n\n", 2);
	if (end == NULL)
		return c->in_len == sizeof(c->in) ? -1 : 0;
	len = (size_t)(end - c->in) + 2;
	if (measuring) {
		lg_record_reply(&w->lg, &c->lg);
		w->c.requests++;
		classify(w, c->in, len);
	}
	memmove(c->in, c->in + len, c->in_len - len);
	c->in_len -= len;
	return 1;
}

static int open_conn(void *arg)
{
	const struct worker *w = arg;

	return connect_endpoint(w->opt->endpoint);
}

static const struct lg_protocol policy_protocol = {
    "policyd_load", open_conn, build_request, on_readable, 1,
};

static void usage(void)
{
	fprintf(stderr, "usage: policyd_load -l unix:PATH|inet:HOST:PORT [-c CONNECTIONS] "
	                "[-d SECONDS] [-w WARMUP] [-r RECIPIENTS] [-u USERS] [-T THREADS]\n");
	exit(2);
}

static void parse_options(int argc, char **argv, struct options *o)
{
	int ch;

	while ((ch = getopt(argc, argv, "l:c:d:w:r:u:T:")) != -1) {
		switch (ch) {
		case 'l':
			o->endpoint = optarg;
			break;
		case 'c':
			o->connections = atoi(optarg);
			break;
		case 'd':
			o->seconds = atof(optarg);
			break;
		case 'w':
			o->warmup = atof(optarg);
			break;
		case 'r':
			o->recipients = atoi(optarg);
			break;
		case 'u':
			o->users = atoi(optarg);
			break;
		case 'T':
			o->threads = atoi(optarg);
			break;
		default:
			usage();
		}
	}
	if (o->endpoint == NULL || o->connections < 1 || o->threads < 1 ||
	    o->threads > o->connections || o->recipients < 1 || o->users < 1 || o->seconds <= 0 ||
	    o->warmup < 0)
		usage();
}

int main(int argc, char **argv)
{
	struct options opt = {NULL, 100, 1, 1, 10000, 10.0, 1.0};
	struct worker *ws;
	struct counts total = {0};
	struct lg_load load;
	struct lg_latencies all = {0};
	int failed = 0;

	parse_options(argc, argv, &opt);
	load = (struct lg_load){.proto = &policy_protocol,
	                        .endpoint = opt.endpoint,
	                        .connections = opt.connections,
	                        .threads = opt.threads,
	                        .warmup = opt.warmup,
	                        .seconds = opt.seconds,
	                        .conn_size = sizeof(struct conn)};
	signal(SIGPIPE, SIG_IGN);
	ws = calloc((size_t)opt.threads, sizeof(*ws));
	pthread_t *tids = calloc((size_t)opt.threads, sizeof(*tids));
	if (ws == NULL || tids == NULL)
		return 1;
	for (int i = 0; i < opt.threads; i++) {
		ws[i].opt = &opt;
		ws[i].id = i;
		ws[i].rng = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1) ^ (uint64_t)getpid();
		if (lg_worker_init(&ws[i].lg, &load, i, &ws[i]) < 0 ||
		    pthread_create(&tids[i], NULL, lg_worker_thread, &ws[i].lg) != 0)
			return 1;
	}
	for (int i = 0; i < opt.threads; i++) {
		pthread_join(tids[i], NULL);
		failed |= ws[i].lg.failed;
		total.requests += ws[i].c.requests;
		total.dunno += ws[i].c.dunno;
		total.reject += ws[i].c.reject;
		total.tempfail += ws[i].c.tempfail;
		total.warn += ws[i].c.warn;
		total.other += ws[i].c.other;
		total.errors += ws[i].lg.errors;
		if (lg_append(&all, &ws[i].lg.lat) < 0)
			return 1;
	}
	lg_sort(&all);
	printf("endpoint=%s connections=%d threads=%d recipients=%d seconds=%.2f requests=%llu "
	       "rps=%.0f p50_us=%u p90_us=%u p99_us=%u max_us=%u dunno=%llu reject=%llu "
	       "warn=%llu tempfail=%llu other=%llu errors=%llu\n",
	       opt.endpoint, opt.connections, opt.threads, opt.recipients, opt.seconds,
	       (unsigned long long)total.requests, (double)total.requests / opt.seconds,
	       lg_percentile(&all, 0.50), lg_percentile(&all, 0.90), lg_percentile(&all, 0.99),
	       lg_max(&all), (unsigned long long)total.dunno, (unsigned long long)total.reject,
	       (unsigned long long)total.warn, (unsigned long long)total.tempfail,
	       (unsigned long long)total.other, (unsigned long long)total.errors);
	return failed || total.errors || total.other ? 1 : 0;
}
