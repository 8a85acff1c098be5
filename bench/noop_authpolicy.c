/*
 * noop_authpolicy - the yardstick for saslgate-policyd's http: endpoints: a
 * Dovecot auth policy server that answers every request with 200 and
 * {"status":0,"msg":""} (application/json). The same HTTP server as
 * saslgate-policyd's (libevent's evhttp in one event loop, keep-alive, the
 * body read whole before the callback) with the settings that matter for
 * speed as http_endpoint_listen() sets them: every method let through to the
 * callback, 16 KiB of headers, a body of at most 32,768 bytes (the default
 * max_request_bytes), a 10 s timeout (the default http_timeout), listen
 * backlog 1024. No JSON, no decision, no logging: the difference in
 * throughput between the two is what saslgate adds to each request.
 *
 *   bench/noop_authpolicy -l http:HOST:PORT [-b MAX_BODY_BYTES] [-t TIMEOUT_S]
 *
 * Runs until SIGTERM or SIGINT.
 */
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#define HTTP_HEADERS_MAX 16384 /* as policyd/http.c */
#define HTTP_ALL_METHODS                                                                           \
	(EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | \
	 EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH)

static const char answer[] = "{\"status\":0,\"msg\":\"\"}";

static void request_cb(struct evhttp_request *r, void *arg)
{
	(void)arg;
	evhttp_add_header(evhttp_request_get_output_headers(r), "Content-Type", "application/json");
	evbuffer_add(evhttp_request_get_output_buffer(r), answer, sizeof(answer) - 1);
	evhttp_send_reply(r, 200, "OK", NULL);
}

static void stop_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	event_base_loopexit(arg, NULL);
}

/* http:HOST:PORT (HOST may be [v6]) -> a listening, non-blocking socket. */
static int bind_endpoint(const char *spec)
{
	char host[256];
	const char *colon;
	struct addrinfo hints, *res;
	size_t hlen;
	int fd, one = 1;

	errno = EINVAL; /* unless a system call says otherwise */
	if (strncmp(spec, "http:", 5) != 0 || (colon = strrchr(spec + 5, ':')) == NULL)
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
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	if (getaddrinfo(host, colon + 1, &hints, &res) != 0) {
		errno = EINVAL;
		return -1;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		freeaddrinfo(res);
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 1024) < 0 ||
	    evutil_make_socket_nonblocking(fd) < 0) {
		freeaddrinfo(res);
		close(fd);
		return -1;
	}
	freeaddrinfo(res);
	return fd;
}

static void usage(void)
{
	fprintf(stderr, "usage: noop_authpolicy -l http:HOST:PORT [-b MAX_BODY_BYTES] "
	                "[-t TIMEOUT_S]\n");
	exit(2);
}

static long long_arg(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0)
		usage();
	return v;
}

int main(int argc, char **argv)
{
	const char *spec = NULL;
	long max_body = 32768, timeout_s = 10;
	struct event_base *base;
	struct evhttp *http;
	struct event *ev_term, *ev_int;
	struct timeval timeout;
	int fd, c;

	while ((c = getopt(argc, argv, "l:b:t:")) != -1) {
		switch (c) {
		case 'l':
			spec = optarg;
			break;
		case 'b':
			max_body = long_arg(optarg);
			break;
		case 't':
			timeout_s = long_arg(optarg);
			break;
		default:
			usage();
		}
	}
	if (spec == NULL || max_body < 1 || timeout_s < 1)
		usage();
	signal(SIGPIPE, SIG_IGN);
	fd = bind_endpoint(spec);
	if (fd < 0) {
		fprintf(stderr, "noop_authpolicy: cannot listen on %s: %s\n", spec,
		        strerror(errno));
		return 1;
	}
	base = event_base_new();
	http = base ? evhttp_new(base) : NULL;
	if (http == NULL)
		return 1;
	timeout.tv_sec = (time_t)timeout_s;
	timeout.tv_usec = 0;
	evhttp_set_allowed_methods(http, HTTP_ALL_METHODS);
	evhttp_set_max_headers_size(http, HTTP_HEADERS_MAX);
	evhttp_set_max_body_size(http, (ev_ssize_t)max_body);
	evhttp_set_timeout_tv(http, &timeout);
	evhttp_set_gencb(http, request_cb, NULL);
	if (evhttp_accept_socket_with_handle(http, fd) == NULL)
		return 1;
	ev_term = evsignal_new(base, SIGTERM, stop_cb, base);
	ev_int = evsignal_new(base, SIGINT, stop_cb, base);
	if (ev_term == NULL || ev_int == NULL)
		return 1;
	evsignal_add(ev_term, NULL);
	evsignal_add(ev_int, NULL);
	event_base_dispatch(base);
	evhttp_free(http);
	event_free(ev_term);
	event_free(ev_int);
	event_base_free(base);
	return 0;
}
