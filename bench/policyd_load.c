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
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define REQ_MAX 2048
#define IN_MAX  4096

struct options {
	const char *endpoint;
	int connections, threads, recipients, users;
	double seconds, warmup;
};

struct conn {
	int fd;
	char out[REQ_MAX];
	size_t out_len, out_off;
	char in[IN_MAX];
	size_t in_len;
	uint64_t sent_ns;
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
	int id, n_conns;
	struct conn *conns;
	uint64_t rng;
	uint32_t *lat; /* latencies in microseconds, measured phase only */
	size_t n_lat, cap_lat;
	struct counts c;
	uint64_t msg_seq;
	int failed;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t rnd(struct worker *w)
{
	/* xorshift64* */
	w->rng ^= w->rng >> 12;
	w->rng ^= w->rng << 25;
	w->rng ^= w->rng >> 27;
	return w->rng * 2685821657736338717ull;
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

static void build_request(struct worker *w, struct conn *c)
{
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
	c->out_len = (size_t)n;
	c->out_off = 0;
}

/* Writes what is pending; -1 on a broken connection. */
static int flush_out(struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);

		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n <= 0)
			return -1;
		c->out_off += (size_t)n;
	}
	return 0;
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

static void record(struct worker *w, uint64_t ns)
{
	if (w->n_lat == w->cap_lat) {
		w->cap_lat = w->cap_lat ? w->cap_lat * 2 : 65536;
		w->lat = realloc(w->lat, w->cap_lat * sizeof(*w->lat));
		if (w->lat == NULL) {
			perror("policyd_load");
			exit(1);
		}
	}
	w->lat[w->n_lat++] = (uint32_t)(ns / 1000u);
}

/* Reads replies; returns the number of completed ones, -1 on failure. */
static int on_readable(struct worker *w, struct conn *c, int measuring, int sending)
{
	ssize_t n = read(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len);
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
		record(w, now_ns() - c->sent_ns);
		w->c.requests++;
		classify(w, c->in, len);
	}
	memmove(c->in, c->in + len, c->in_len - len);
	c->in_len -= len;
	if (!sending)
		return 1;
	build_request(w, c);
	c->sent_ns = now_ns();
	return flush_out(c) < 0 ? -1 : 1;
}

/* Connects every connection and sends its first request. Returns how many
 * requests are outstanding, or -1 if a connection could not be made. */
static int open_all(struct worker *w, int ep)
{
	int outstanding = 0;

	for (int i = 0; i < w->n_conns; i++) {
		struct conn *c = &w->conns[i];
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};

		c->fd = connect_endpoint(w->opt->endpoint);
		if (c->fd < 0) {
			fprintf(stderr, "policyd_load: connect %s: %s\n", w->opt->endpoint,
			        strerror(errno));
			w->failed = 1;
			return -1;
		}
		if (fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK) < 0) {
			w->failed = 1;
			return -1;
		}
		epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
		build_request(w, c);
		c->sent_ns = now_ns();
		if (flush_out(c) < 0) {
			w->c.errors++;
			continue;
		}
		outstanding++;
	}
	return outstanding;
}

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	const struct options *opt = w->opt;
	int ep = epoll_create1(0);
	struct epoll_event evs[256];
	uint64_t start = now_ns();
	uint64_t measure_from = start + (uint64_t)(opt->warmup * 1e9);
	uint64_t stop_at = measure_from + (uint64_t)(opt->seconds * 1e9);
	int outstanding = 0;

	outstanding = open_all(w, ep);
	if (outstanding < 0)
		return NULL;
	while (outstanding > 0) {
		uint64_t t = now_ns();
		int sending = t < stop_at;
		int measuring = t >= measure_from;
		int n;

		if (!sending && t > stop_at + 5000000000ull) {
			fprintf(stderr, "policyd_load: %d replies missing after 5s\n", outstanding);
			w->c.errors += (uint64_t)outstanding;
			break;
		}
		n = epoll_wait(ep, evs, 256, 100);
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			int r;

			if (evs[i].events & EPOLLOUT) {
				if (flush_out(c) < 0)
					goto broken;
				if (c->out_off == c->out_len) {
					struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};

					epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
				}
			}
			if (!(evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
				continue;
			r = on_readable(w, c, measuring, sending);
			if (r < 0)
				goto broken;
			if (r > 0 && !sending)
				outstanding--;
			if (r > 0 && sending && c->out_off < c->out_len) {
				struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT,
				                         .data.ptr = c};

				epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
			}
			continue;
		broken:
			w->c.errors++;
			outstanding--;
			epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
			close(c->fd);
			c->fd = -1;
		}
	}
	for (int i = 0; i < w->n_conns; i++) {
		if (w->conns[i].fd >= 0)
			close(w->conns[i].fd);
	}
	close(ep);
	return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static uint32_t pct(const uint32_t *v, size_t n, double p)
{
	size_t i;

	if (n == 0)
		return 0;
	i = (size_t)(p * (double)(n - 1) + 0.5);
	return v[i];
}

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
	uint32_t *all;
	size_t n_all = 0;
	int failed = 0;

	parse_options(argc, argv, &opt);
	signal(SIGPIPE, SIG_IGN);
	ws = calloc((size_t)opt.threads, sizeof(*ws));
	pthread_t *tids = calloc((size_t)opt.threads, sizeof(*tids));
	if (ws == NULL || tids == NULL)
		return 1;
	for (int i = 0; i < opt.threads; i++) {
		ws[i].opt = &opt;
		ws[i].id = i;
		ws[i].n_conns = opt.connections / opt.threads + (i < opt.connections % opt.threads);
		ws[i].conns = calloc((size_t)ws[i].n_conns, sizeof(struct conn));
		ws[i].rng = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1) ^ (uint64_t)getpid();
		if (ws[i].conns == NULL || pthread_create(&tids[i], NULL, worker_run, &ws[i]) != 0)
			return 1;
	}
	for (int i = 0; i < opt.threads; i++) {
		pthread_join(tids[i], NULL);
		failed |= ws[i].failed;
		total.requests += ws[i].c.requests;
		total.dunno += ws[i].c.dunno;
		total.reject += ws[i].c.reject;
		total.tempfail += ws[i].c.tempfail;
		total.warn += ws[i].c.warn;
		total.other += ws[i].c.other;
		total.errors += ws[i].c.errors;
		n_all += ws[i].n_lat;
	}
	all = malloc((n_all ? n_all : 1) * sizeof(*all));
	if (all == NULL)
		return 1;
	n_all = 0;
	for (int i = 0; i < opt.threads; i++) {
		if (ws[i].n_lat)
			memcpy(all + n_all, ws[i].lat, ws[i].n_lat * sizeof(*all));
		n_all += ws[i].n_lat;
	}
	qsort(all, n_all, sizeof(*all), cmp_u32);
	printf("endpoint=%s connections=%d threads=%d recipients=%d seconds=%.2f requests=%llu "
	       "rps=%.0f p50_us=%u p90_us=%u p99_us=%u max_us=%u dunno=%llu reject=%llu "
	       "warn=%llu tempfail=%llu other=%llu errors=%llu\n",
	       opt.endpoint, opt.connections, opt.threads, opt.recipients, opt.seconds,
	       (unsigned long long)total.requests, (double)total.requests / opt.seconds,
	       pct(all, n_all, 0.50), pct(all, n_all, 0.90), pct(all, n_all, 0.99),
	       n_all ? all[n_all - 1] : 0, (unsigned long long)total.dunno,
	       (unsigned long long)total.reject, (unsigned long long)total.warn,
	       (unsigned long long)total.tempfail, (unsigned long long)total.other,
	       (unsigned long long)total.errors);
	return failed || total.errors || total.other ? 1 : 0;
}
