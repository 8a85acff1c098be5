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
#include <sys/socket.h>
#include <unistd.h>

#include "loadgen.h"

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
	struct lg_conn lg; /* first: the loop's part */
	char out[REQ_MAX];
	char in[IN_MAX];
	size_t in_len;
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
	int id;
	struct lg_worker lg; /* connections, latencies, errors */
	uint64_t rng;
	struct counts c;
};

static uint64_t rnd(struct worker *w)
{
	return lg_rnd(&w->rng);
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
	c->body_len = lg_dovecot_login(c->body, sizeof(c->body), &w->rng, (unsigned)w->opt->users);
}

static void build_request(void *arg, struct lg_conn *lc)
{
	struct worker *w = arg;
	struct conn *c = (struct conn *)lc;
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
	c->lg.out = c->out;
	c->lg.out_len = (size_t)n;
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

/* Reads a reply: 1 complete, 0 not yet, -1 on failure. */
static int on_readable(void *arg, struct lg_conn *lc, int measuring)
{
	struct worker *w = arg;
	struct conn *c = (struct conn *)lc;
	ssize_t n = read(c->lg.fd, c->in + c->in_len, sizeof(c->in) - c->in_len);
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
		lg_record_reply(&w->lg, &c->lg);
	if (classify(w, c, &rp, measuring) < 0 && rp.closing)
		return -1;
	memmove(c->in, c->in + rp.total_len, c->in_len - rp.total_len);
	c->in_len -= rp.total_len;
	if (c->in_len > 0) {
		w->c.bad_replies++; /* bytes nobody asked for */
		return -1;
	}
	return 1;
}

static int open_conn(void *arg)
{
	const struct options *opt = ((const struct worker *)arg)->opt;
	int fd = socket(opt->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd >= 0 && connect(fd, (const struct sockaddr *)&opt->ss, opt->sslen) < 0) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/* Replies after the measured seconds are not measured. */
static const struct lg_protocol authpolicy_protocol = {
    "authpolicy_load", open_conn, build_request, on_readable, 0,
};

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
		lg_worker_free(&ws[i].lg);
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
	struct lg_load load;
	struct lg_latencies all = {0};
	int failed = 0;

	parse_options(argc, argv, &opt);
	load = (struct lg_load){.proto = &authpolicy_protocol,
	                        .endpoint = opt.endpoint,
	                        .connections = opt.connections,
	                        .threads = opt.threads,
	                        .warmup = opt.warmup,
	                        .seconds = opt.seconds,
	                        .conn_size = sizeof(struct conn)};
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
		ws[i].rng = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1) ^ (uint64_t)getpid();
		if (lg_worker_init(&ws[i].lg, &load, i, &ws[i]) < 0 ||
		    pthread_create(&tids[i], NULL, lg_worker_thread, &ws[i].lg) != 0) {
			perror("authpolicy_load"); /* threads may be running: no cleanup */
			exit(1);
		}
	}
	for (int i = 0; i < opt.threads; i++) {
		pthread_join(tids[i], NULL);
		failed |= ws[i].lg.failed;
		total.requests += ws[i].c.requests;
		total.allows += ws[i].c.allows;
		total.reports += ws[i].c.reports;
		total.go_on += ws[i].c.go_on;
		total.refused += ws[i].c.refused;
		total.delayed += ws[i].c.delayed;
		total.http_errors += ws[i].c.http_errors;
		total.bad_replies += ws[i].c.bad_replies;
		total.errors += ws[i].lg.errors;
		if (lg_append(&all, &ws[i].lg.lat) < 0) {
			lg_latencies_free(&all);
			free_workers(ws, opt.threads, tids);
			return 1;
		}
	}
	lg_sort(&all);
	printf("endpoint=%s connections=%d threads=%d report_pct=%d seconds=%.2f requests=%llu "
	       "rps=%.0f p50_us=%u p90_us=%u p99_us=%u max_us=%u allow=%llu report=%llu "
	       "status0=%llu refused=%llu delayed=%llu http_errors=%llu bad_replies=%llu "
	       "errors=%llu\n",
	       opt.endpoint, opt.connections, opt.threads, opt.report_pct, opt.seconds,
	       (unsigned long long)total.requests, (double)total.requests / opt.seconds,
	       lg_percentile(&all, 0.50), lg_percentile(&all, 0.90), lg_percentile(&all, 0.99),
	       lg_max(&all), (unsigned long long)total.allows, (unsigned long long)total.reports,
	       (unsigned long long)total.go_on, (unsigned long long)total.refused,
	       (unsigned long long)total.delayed, (unsigned long long)total.http_errors,
	       (unsigned long long)total.bad_replies, (unsigned long long)total.errors);
	lg_latencies_free(&all);
	free_workers(ws, opt.threads, tids);
	return failed || total.errors || total.http_errors || total.bad_replies ? 1 : 0;
}
