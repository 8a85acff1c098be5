/*
 * baseline_policy - the smallest useful Postfix policy server, the yardstick
 * for saslgate-policyd: the same event loop (libevent, one thread, one
 * bufferevent per connection), but it only finds the empty line that ends a
 * request and answers "action=DUNNO". No parsing, no decision, no logging.
 *
 *   bench/baseline_policy -l unix:PATH | -l inet:HOST:PORT
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
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

static const char reply[] = "action=DUNNO\n\n";

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);

	for (;;) {
		struct evbuffer_ptr end = evbuffer_search(in, "\n\n", 2, NULL);

		if (end.pos < 0)
			break;
		evbuffer_drain(in, (size_t)end.pos + 2);
		bufferevent_write(bev, reply, sizeof(reply) - 1);
	}
	if (evbuffer_get_length(in) > 65536) /* no end in sight: not a policy client */
		bufferevent_free(bev);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		bufferevent_free(bev);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	struct event_base *base = arg;
	struct bufferevent *bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);

	if (bev == NULL) {
		close(fd);
		return;
	}
	bufferevent_setcb(bev, read_cb, NULL, event_cb, NULL);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void stop_cb(evutil_socket_t sig, short what, void *arg)
{
	event_base_loopexit(arg, NULL);
}

static int bind_endpoint(const char *spec, char *unix_path, size_t len)
{
	int fd = -1, one = 1;

	if (strncmp(spec, "unix:", 5) == 0) {
		struct sockaddr_un sun;

		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		if (strlen(spec + 5) >= sizeof(sun.sun_path))
			return -1;
		strcpy(sun.sun_path, spec + 5);
		snprintf(unix_path, len, "%s", spec + 5);
		unlink(sun.sun_path);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
			return -1;
	} else if (strncmp(spec, "inet:", 5) == 0) {
		char host[256];
		const char *colon = strrchr(spec + 5, ':');
		struct addrinfo hints, *res;

		if (colon == NULL || (size_t)(colon - spec - 5) >= sizeof(host))
			return -1;
		memcpy(host, spec + 5, (size_t)(colon - spec - 5));
		host[colon - spec - 5] = '\0';
		if (host[0] == '[') {
			memmove(host, host + 1, strlen(host));
			host[strlen(host) - 1] = '\0';
		}
		memset(&hints, 0, sizeof(hints));
		hints.ai_socktype = SOCK_STREAM;
		if (getaddrinfo(host, colon + 1, &hints, &res) != 0)
			return -1;
		fd = socket(res->ai_family, SOCK_STREAM, 0);
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) < 0) {
			freeaddrinfo(res);
			return -1;
		}
		freeaddrinfo(res);
	} else {
		return -1;
	}
	if (listen(fd, 1024) < 0)
		return -1;
	evutil_make_socket_nonblocking(fd);
	return fd;
}

int main(int argc, char **argv)
{
	char unix_path[256] = "";
	struct event_base *base;
	struct evconnlistener *listener;
	struct event *ev_term, *ev_int;
	int fd;

	if (argc != 3 || strcmp(argv[1], "-l") != 0) {
		fprintf(stderr, "usage: baseline_policy -l unix:PATH|inet:HOST:PORT\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	fd = bind_endpoint(argv[2], unix_path, sizeof(unix_path));
	if (fd < 0) {
		fprintf(stderr, "baseline_policy: cannot listen on %s: %s\n", argv[2],
			strerror(errno));
		return 1;
	}
	base = event_base_new();
	listener = evconnlistener_new(base, accept_cb, base, LEV_OPT_CLOSE_ON_FREE, 0, fd);
	ev_term = evsignal_new(base, SIGTERM, stop_cb, base);
	ev_int = evsignal_new(base, SIGINT, stop_cb, base);
	if (listener == NULL || ev_term == NULL || ev_int == NULL)
		return 1;
	evsignal_add(ev_term, NULL);
	evsignal_add(ev_int, NULL);
	event_base_dispatch(base);
	evconnlistener_free(listener);
	event_free(ev_term);
	event_free(ev_int);
	event_base_free(base);
	if (unix_path[0] != '\0')
		unlink(unix_path);
	return 0;
}
