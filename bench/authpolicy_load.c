/*
 * authpolicy_load - a load generator for Dovecot auth policy servers that
 * behaves like Dovecot's auth process: N persistent HTTP/1.1 keep-alive
 * connections, one outstanding request on each, every request a login:
 *
 *   POST /?command=allow HTTP/1.1
 *   Host: HOST:PORT
 *   Content-Type: application/json
 *   Content-Length: N
 *
 *   {"login":"user42@example.test","mech":"XOAUTH2","protocol":"imap",
 *    "remote":"10.42.0.17","session_id":"Qm9vW2x1/0AAAB7Z","tls":true}
 *
 * (the attributes of DESIGN.md's auth_policy_request_attributes, plus the
 * "tls" Dovecot adds). The mix: 70% modern logins (XOAUTH2, OAUTHBEARER), 30%
 * legacy (PLAIN 25%: IMAP LOGIN and POP3 USER/PASS arrive as PLAIN; LOGIN
 * 5%); IMAP 80%, POP3 15%, SMTP 5% (Postfix through Dovecot SASL, with an
 * empty session_id); TLS 90%; over a pool of users, each from the same few
 * networks. -R PCT follows PCT% of the logins with their command=report
 * (success / policy_reject from the answer), as Dovecot does with
 * auth_policy_report_after_auth = yes; the default, 0, makes every request a
 * decision.
 *
 * Responses are parsed whole (status line, headers, a Content-Length body,
 * however the bytes are split across reads) and counted: status 0 (go on),
 * status < 0 (refused), status > 0 (delay), HTTP errors.
 *
 *   bench/authpolicy_load -l http:127.0.0.1:PORT [-c CONNECTIONS] [-d SECONDS]
 *                         [-w WARMUP_SECONDS] [-u USERS] [-R REPORT_PCT] [-T THREADS]
 *
 *   -c  connections (default 100)       -d  measured seconds (default 10)
 *   -w  warm-up seconds, not measured (default 1)
 *   -u  distinct users (default 10000)  -R  logins followed by a report, % (0)
 *   -T  client threads (default 1)
 *
 * Loopback addresses only. Prints one line of key=value results; exits 1 if
 * a connection failed or a reply was not a 200 JSON answer with a status.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define REQ_MAX  1024
#define IN_MAX   8192
#define BODY_MAX 1024

struct options {
	const char *endpoint;
	char host_header[300];
	struct sockaddr_storage ss;
	socklen_t sslen;
	int connections, threads, users, report_pct;
	double seconds, warmup;
};

struct conn {
	int fd;
	char out[REQ_MAX];
	size_t out_len, out_off;
	char in[IN_MAX];
	size_t in_len;
	uint64_t sent_ns;
	int is_report;     /* the outstanding request is a command=report */
	int report_next;   /* the next request reports the login just answered */
	int report_status; /* that login's answer */
	char body[512];    /* the login's JSON object without its closing brace */
	size_t body_len;
};

struct counts {
	uint64_t requests, allows, reports, go_on, refused, delayed, http_errors, bad_replies,
	    errors;
};

struct worker {
	const struct options *opt;
	int id, n_conns;
	struct conn *conns;
	uint64_t rng;
	uint32_t *lat; /* latencies in microseconds, measured phase only */
	size_t n_lat, cap_lat;
	struct counts c;
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

static int is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
	return 0;
}

/* http:HOST:PORT (HOST an IP literal, [v6] for IPv6) into o->ss and the Host
 * header. 0, or -1 with a message. */
static int resolve_endpoint(struct options *o)
{
	const char *spec = o->endpoint, *colon;
	char host[256];
	struct addrinfo hints, *res;
	size_t hlen;

	if (strncmp(spec, "http:", 5) != 0 || (colon = strrchr(spec + 5, ':')) == NULL) {
		fprintf(stderr, "authpolicy_load: expected -l http:HOST:PORT\n");
		return -1;
	}
	hlen = (size_t)(colon - spec - 5);
	if (hlen >= sizeof(host))
		return -1;
	memcpy(host, spec + 5, hlen);
	host[hlen] = '\0';
	snprintf(o->host_header, sizeof(o->host_header), "%s:%s", host, colon + 1);
	if (host[0] == '[' && hlen > 2) {
		memmove(host, host + 1, hlen - 2);
		host[hlen - 2] = '\0';
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	if (getaddrinfo(host, colon + 1, &hints, &res) != 0) {
		fprintf(stderr, "authpolicy_load: %s: not an IP address and port\n", spec);
		return -1;
	}
	if (!is_loopback(res->ai_addr)) {
		fprintf(stderr, "authpolicy_load: %s: loopback addresses only\n", spec);
		freeaddrinfo(res);
		return -1;
	}
	memcpy(&o->ss, res->ai_addr, res->ai_addrlen);
	o->sslen = (socklen_t)res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* A new login: the JSON object's members into c->body (no closing brace). */
static void new_login(struct worker *w, struct conn *c)
{
	static const char *const modern[] = {"XOAUTH2", "OAUTHBEARER"};
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	unsigned r = (unsigned)(rnd(w) % 100);
	unsigned p = (unsigned)(rnd(w) % 100);
	unsigned user = (unsigned)(rnd(w) % (uint64_t)w->opt->users);
	const char *mech = r < 70 ? modern[rnd(w) & 1] : r < 95 ? "PLAIN" : "LOGIN";
	const char *protocol = p < 80 ? "imap" : p < 95 ? "pop3" : "smtp";
	char session[17] = "";
	uint64_t bits = rnd(w);
	int n;

	/* Dovecot's session ids: 12 random bytes in base64; Postfix's SASL
	 * requests through Dovecot have none. */
	if (p < 95) {
		for (int i = 0; i < 16; i++) {
			session[i] = b64[bits & 63];
			bits = i == 9 ? rnd(w) : bits >> 6;
		}
		session[16] = '\0';
	}
	n = snprintf(c->body, sizeof(c->body),
	             "{\"login\":\"user%u@example.test\",\"mech\":\"%s\",\"protocol\":\"%s\","
	             "\"remote\":\"10.%u.%u.%u\",\"session_id\":\"%s\",\"tls\":%s",
	             user, mech, protocol, user % 200, (user / 200) % 250,
	             (unsigned)(rnd(w) % 250) + 1, session, rnd(w) % 10 != 0 ? "true" : "false");
	c->body_len = (size_t)n;
}

static void build_request(struct worker *w, struct conn *c)
{
	char tail[64];
	size_t tail_len;
	int n;

	c->is_report = c->report_next;
	c->report_next = 0;
	if (c->is_report) {
		tail_len =
		    (size_t)snprintf(tail, sizeof(tail), ",\"success\":%s,\"policy_reject\":%s}",
		                     c->report_status == 0 ? "true" : "false",
		                     c->report_status < 0 ? "true" : "false");
	} else {
		new_login(w, c);
		tail[0] = '}';
		tail_len = 1;
	}
	n = snprintf(c->out, sizeof(c->out),
	             "POST /?command=%s HTTP/1.1\r\n"
	             "Host: %s\r\n"
	             "Content-Type: application/json\r\n"
	             "Content-Length: %zu\r\n"
	             "\r\n"
	             "%.*s%.*s",
	             c->is_report ? "report" : "allow", w->opt->host_header, c->body_len + tail_len,
	             (int)c->body_len, c->body, (int)tail_len, tail);
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

static void record(struct worker *w, uint64_t ns)
{
	if (w->n_lat == w->cap_lat) {
		w->cap_lat = w->cap_lat ? w->cap_lat * 2 : 65536;
		w->lat = realloc(w->lat, w->cap_lat * sizeof(*w->lat));
		if (w->lat == NULL) {
			perror("authpolicy_load");
			exit(1);
		}
	}
	w->lat[w->n_lat++] = (uint32_t)(ns / 1000u);
}

/* A header line "Name: value" (no CRLF, len bytes): the value if the name is
 * NAME, else NULL; *vlen its length without surrounding blanks. */
static const char *header_value(const char *line, size_t len, const char *name, size_t *vlen)
{
	size_t nlen = strlen(name);
	const char *v, *end = line + len;

	if (len <= nlen || line[nlen] != ':' || strncasecmp(line, name, nlen) != 0)
		return NULL;
	v = line + nlen + 1;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	*vlen = (size_t)(end - v);
	return v;
}

struct reply {
	int code;         /* HTTP status */
	int json;         /* Content-Type application/json */
	int has_status;   /* the body has an integer "status" */
	long status;      /* its value */
	int closing;      /* Connection: close */
	size_t total_len; /* bytes of the whole response */
};

/* Parses one response at the start of buf. 1 with *out filled, 0 if more
 * bytes are needed, -1 if it is not HTTP/1.x with a Content-Length. */
static int parse_reply(const char *buf, size_t len, struct reply *out)
{
	const char *head_end = memmem(buf, len, "\r\n\r\n", 4);
	const char *line, *eol;
	size_t head_len, clen = 0;
	int have_clen = 0;
	char body[BODY_MAX + 1], *s;

	memset(out, 0, sizeof(*out));
	if (head_end == NULL)
		return 0;
	head_len = (size_t)(head_end - buf) + 4;
	if (head_len < 13 || memcmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ' || buf[9] < '1' ||
	    buf[9] > '5' || buf[10] < '0' || buf[10] > '9' || buf[11] < '0' || buf[11] > '9')
		return -1;
	out->code = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
	line = (const char *)memmem(buf, head_len, "\r\n", 2) + 2;
	for (; line < head_end; line = eol + 2) {
		const char *v;
		size_t vlen, llen;

		eol = memmem(line, (size_t)(head_end + 2 - line), "\r\n", 2);
		llen = (size_t)(eol - line);
		if ((v = header_value(line, llen, "Content-Length", &vlen)) != NULL) {
			char num[24];
			char *end;

			if (vlen == 0 || vlen >= sizeof(num))
				return -1;
			memcpy(num, v, vlen);
			num[vlen] = '\0';
			errno = 0;
			clen = (size_t)strtoull(num, &end, 10);
			if (*end != '\0' || errno != 0 || clen > IN_MAX)
				return -1;
			have_clen = 1;
		} else if ((v = header_value(line, llen, "Content-Type", &vlen)) != NULL) {
			out->json = vlen >= 16 && strncasecmp(v, "application/json", 16) == 0 &&
			            (vlen == 16 || v[16] == ';' || v[16] == ' ');
		} else if (header_value(line, llen, "Transfer-Encoding", &vlen) != NULL) {
			return -1; /* Dovecot's client copes; this one wants a length */
		} else if ((v = header_value(line, llen, "Connection", &vlen)) != NULL) {
			out->closing = vlen == 5 && strncasecmp(v, "close", 5) == 0;
		}
	}
	if (!have_clen)
		return -1;
	if (len < head_len + clen)
		return 0;
	out->total_len = head_len + clen;
	if (clen > BODY_MAX)
		clen = BODY_MAX;
	memcpy(body, buf + head_len, clen);
	body[clen] = '\0';
	/* {"status":N,"msg":"..."}: the integer after "status" and a colon. */
	s = strstr(body, "\"status\"");
	if (body[0] == '{' && s != NULL && strstr(body, "\"msg\"") != NULL) {
		char *end;

		s += 8;
		while (*s == ' ')
			s++;
		if (*s == ':') {
			s++;
			while (*s == ' ')
				s++;
			errno = 0;
			out->status = strtol(s, &end, 10);
			out->has_status =
			    end != s && errno == 0 && (*end == ',' || *end == '}' || *end == ' ');
		}
	}
	return 1;
}

/* Counts a reply; 0 if it was a 200 JSON answer, -1 if not. */
static int classify(struct worker *w, struct conn *c, const struct reply *rp, int measuring)
{
	int good = rp->code == 200 && rp->json && rp->has_status && !rp->closing;

	if (measuring) {
		w->c.requests++;
		if (c->is_report)
			w->c.reports++;
		else
			w->c.allows++;
		if (rp->code != 200)
			w->c.http_errors++;
		else if (!good)
			w->c.bad_replies++;
		else if (rp->status == 0)
			w->c.go_on++;
		else if (rp->status < 0)
			w->c.refused++;
		else
			w->c.delayed++;
	}
	if (!good && !measuring)
		w->c.bad_replies++; /* in the warm-up too: the run fails */
	if (good && !c->is_report && w->opt->report_pct > 0 &&
	    (int)(rnd(w) % 100) < w->opt->report_pct) {
		c->report_next = 1;
		c->report_status = (int)rp->status;
	}
	return good ? 0 : -1;
}

/* Reads replies; returns the number of completed ones, -1 on failure. */
static int on_readable(struct worker *w, struct conn *c, int measuring, int sending)
{
	ssize_t n = read(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len);
	struct reply rp;
	int rc;

	if (n < 0 && errno == EAGAIN)
		return 0;
	if (n <= 0)
		return -1;
	c->in_len += (size_t)n;
	rc = parse_reply(c->in, c->in_len, &rp);
	if (rc == 0)
		return c->in_len == sizeof(c->in) ? -1 : 0;
	if (rc < 0) {
		w->c.bad_replies++;
		return -1;
	}
	if (measuring)
		record(w, now_ns() - c->sent_ns);
	if (classify(w, c, &rp, measuring) < 0 && rp.closing)
		return -1;
	memmove(c->in, c->in + rp.total_len, c->in_len - rp.total_len);
	c->in_len -= rp.total_len;
	if (c->in_len > 0) {
		w->c.bad_replies++; /* bytes nobody asked for */
		return -1;
	}
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
	const struct options *opt = w->opt;
	int outstanding = 0;

	for (int i = 0; i < w->n_conns; i++) {
		struct conn *c = &w->conns[i];
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};

		c->fd = socket(opt->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (c->fd < 0 ||
		    connect(c->fd, (const struct sockaddr *)&opt->ss, opt->sslen) < 0) {
			fprintf(stderr, "authpolicy_load: connect %s: %s\n", opt->endpoint,
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
		int measuring = t >= measure_from && sending;
		int n;

		if (!sending && t > stop_at + 5000000000ull) {
			fprintf(stderr, "authpolicy_load: %d replies missing after 5s\n",
			        outstanding);
			w->c.errors += (uint64_t)outstanding;
			break;
		}
		n = epoll_wait(ep, evs, 256, 100);
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			int r;

			if (c->fd < 0)
				continue;
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
	fprintf(stderr, "usage: authpolicy_load -l http:127.0.0.1:PORT [-c CONNECTIONS] "
	                "[-d SECONDS] [-w WARMUP] [-u USERS] [-R REPORT_PCT] [-T THREADS]\n");
	exit(2);
}

static int int_arg(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || v < INT_MIN || v > INT_MAX)
		usage();
	return (int)v;
}

static double num_arg(const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (*s == '\0' || *end != '\0' || errno != 0)
		usage();
	return v;
}

static void parse_options(int argc, char **argv, struct options *o)
{
	int ch;

	while ((ch = getopt(argc, argv, "l:c:d:w:u:R:T:")) != -1) {
		switch (ch) {
		case 'l':
			o->endpoint = optarg;
			break;
		case 'c':
			o->connections = int_arg(optarg);
			break;
		case 'd':
			o->seconds = num_arg(optarg);
			break;
		case 'w':
			o->warmup = num_arg(optarg);
			break;
		case 'u':
			o->users = int_arg(optarg);
			break;
		case 'R':
			o->report_pct = int_arg(optarg);
			break;
		case 'T':
			o->threads = int_arg(optarg);
			break;
		default:
			usage();
		}
	}
	if (o->endpoint == NULL || o->connections < 1 || o->threads < 1 ||
	    o->threads > o->connections || o->users < 1 || o->seconds <= 0 || o->warmup < 0 ||
	    o->report_pct < 0 || o->report_pct > 100)
		usage();
}

static void free_workers(struct worker *ws, int n, pthread_t *tids)
{
	for (int i = 0; i < n; i++) {
		free(ws[i].lat);
		free(ws[i].conns);
	}
	free(ws);
	free(tids);
}

int main(int argc, char **argv)
{
	struct options opt = {
	    .connections = 100, .threads = 1, .users = 10000, .seconds = 10.0, .warmup = 1.0};
	struct worker *ws;
	pthread_t *tids;
	struct counts total = {0};
	uint32_t *all;
	size_t n_all = 0;
	int failed = 0;

	parse_options(argc, argv, &opt);
	if (resolve_endpoint(&opt) < 0)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	ws = calloc((size_t)opt.threads, sizeof(*ws));
	tids = calloc((size_t)opt.threads, sizeof(*tids));
	if (ws == NULL || tids == NULL) {
		free(ws);
		free(tids);
		return 1;
	}
	for (int i = 0; i < opt.threads; i++) {
		ws[i].opt = &opt;
		ws[i].id = i;
		ws[i].n_conns = opt.connections / opt.threads + (i < opt.connections % opt.threads);
		ws[i].conns = calloc((size_t)ws[i].n_conns, sizeof(struct conn));
		ws[i].rng = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1) ^ (uint64_t)getpid();
		if (ws[i].conns == NULL ||
		    pthread_create(&tids[i], NULL, worker_run, &ws[i]) != 0) {
			perror("authpolicy_load"); /* threads may be running: no cleanup */
			exit(1);
		}
	}
	for (int i = 0; i < opt.threads; i++) {
		pthread_join(tids[i], NULL);
		failed |= ws[i].failed;
		total.requests += ws[i].c.requests;
		total.allows += ws[i].c.allows;
		total.reports += ws[i].c.reports;
		total.go_on += ws[i].c.go_on;
		total.refused += ws[i].c.refused;
		total.delayed += ws[i].c.delayed;
		total.http_errors += ws[i].c.http_errors;
		total.bad_replies += ws[i].c.bad_replies;
		total.errors += ws[i].c.errors;
		n_all += ws[i].n_lat;
	}
	all = malloc((n_all ? n_all : 1) * sizeof(*all));
	if (all == NULL) {
		free_workers(ws, opt.threads, tids);
		return 1;
	}
	n_all = 0;
	for (int i = 0; i < opt.threads; i++) {
		if (ws[i].n_lat)
			memcpy(all + n_all, ws[i].lat, ws[i].n_lat * sizeof(*all));
		n_all += ws[i].n_lat;
	}
	qsort(all, n_all, sizeof(*all), cmp_u32);
	printf("endpoint=%s connections=%d threads=%d report_pct=%d seconds=%.2f requests=%llu "
	       "rps=%.0f p50_us=%u p90_us=%u p99_us=%u max_us=%u allow=%llu report=%llu "
	       "status0=%llu refused=%llu delayed=%llu http_errors=%llu bad_replies=%llu "
	       "errors=%llu\n",
	       opt.endpoint, opt.connections, opt.threads, opt.report_pct, opt.seconds,
	       (unsigned long long)total.requests, (double)total.requests / opt.seconds,
	       pct(all, n_all, 0.50), pct(all, n_all, 0.90), pct(all, n_all, 0.99),
	       n_all ? all[n_all - 1] : 0, (unsigned long long)total.allows,
	       (unsigned long long)total.reports, (unsigned long long)total.go_on,
	       (unsigned long long)total.refused, (unsigned long long)total.delayed,
	       (unsigned long long)total.http_errors, (unsigned long long)total.bad_replies,
	       (unsigned long long)total.errors);
	free(all);
	free_workers(ws, opt.threads, tids);
	return failed || total.errors || total.http_errors || total.bad_replies ? 1 : 0;
}
