/*
 * conn - one Postfix policy client connection: a bufferevent, the request
 * parser, and the per-message decision cache. Postfix keeps a connection per
 * smtpd process open for many requests, one at a time; with
 * smtpd_delay_reject=yes a check in the recipient restrictions runs once per
 * recipient, so the answer for a message (same instance, same login) is
 * computed, logged and recorded once and repeated for the other recipients.
 *
 * Any protocol violation or limit breach costs the connection: one log line
 * with the peer and the reason, then close without a reply (the protocol rule;
 * Postfix retries and then applies its default_action).
 */
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "log.h"
#include "policyd.h"

/* A client that does not read its replies stops being read from once this much
 * output is pending (Postfix never sends a second request before the reply). */
#define OUTPUT_PAUSE_BYTES 65536

struct conn {
	struct server *srv;
	struct bufferevent *bev;
	struct conn *prev, *next;
	struct policy_parser parser;
	char peer[96];
	int close_after_write;
	int paused;
	/* decision cache: instance, mechanism, user and client of the last decision */
	char *cache_key;
	size_t cache_key_len;
	char cache_reply[POLICYD_REPLY_MAX];
	size_t cache_reply_len;
};

static void conn_read_cb(struct bufferevent *bev, void *arg);

static void conn_free(struct conn *c)
{
	struct server *srv = c->srv;

	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	srv->n_conns--;
	bufferevent_free(c->bev);
	policy_parser_free(&c->parser);
	free(c->cache_key);
	free(c);
	if (srv->stopping)
		server_maybe_finish(srv);
}

/* Ends the connection after a violation: one line, no reply. */
static void conn_abort(struct conn *c, const char *reason)
{
	log_warning("closing policy connection: client=%s reason=\"%s\"", c->peer, reason);
	conn_free(c);
}

static void format_peer(struct conn *c, int fd, const struct sockaddr *sa,
                        const struct endpoint *ep)
{
	char host[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		snprintf(c->peer, sizeof(c->peer), "%s:%u", host, ntohs(sin->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		snprintf(c->peer, sizeof(c->peer), "[%s]:%u", host, ntohs(sin6->sin6_port));
	} else {
		struct ucred cred;
		socklen_t len = sizeof(cred);

		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
			snprintf(c->peer, sizeof(c->peer), "%s(pid=%ld,uid=%ld)", ep->spec,
			         (long)cred.pid, (long)cred.uid);
		else
			snprintf(c->peer, sizeof(c->peer), "%s", ep->spec);
	}
}

/* Over max_connections: the socket is closed at once; the refusals are logged
 * at most once a minute, with their count. */
static int over_limit(struct server *srv)
{
	time_t now;

	if (srv->n_conns < srv->cfg.max_connections)
		return 0;
	srv->refused_unlogged++;
	now = time(NULL);
	if (now - srv->refused_logged_at >= 60) {
		log_warning("max_connections=%zu reached: refused %llu connection(s) since the "
		            "last message",
		            srv->cfg.max_connections, (unsigned long long)srv->refused_unlogged);
		srv->refused_logged_at = now;
		srv->refused_unlogged = 0;
	}
	return 1;
}

static void set_timeouts(struct conn *c)
{
	struct timeval tv = {(time_t)c->srv->cfg.idle_timeout_s, 0};

	bufferevent_set_timeouts(c->bev, &tv, &tv);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if (what & BEV_EVENT_TIMEOUT) {
		conn_abort(c, (what & BEV_EVENT_READING) ? "idle timeout" : "write timeout");
		return;
	}
	if ((what & BEV_EVENT_EOF) && policy_parser_busy(&c->parser)) {
		conn_abort(c, "disconnected in the middle of a request");
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		log_debug("policy connection from %s: %s", c->peer, strerror(errno));
		conn_free(c);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		/* A client that half-closes after its request still gets the reply. */
		if (evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
			c->close_after_write = 1;
			bufferevent_disable(bev, EV_READ);
			return;
		}
		conn_free(c);
	}
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	if (c->close_after_write) {
		conn_free(c);
		return;
	}
	if (c->paused) {
		c->paused = 0;
		bufferevent_enable(bev, EV_READ);
		conn_read_cb(bev, c); /* requests may be waiting in the input buffer */
	}
}

void conn_accept(struct server *srv, int fd, const struct sockaddr *sa, int salen,
                 const struct endpoint *ep)
{
	struct conn *c;

	if (srv->stopping || over_limit(srv)) {
		close(fd);
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->srv = srv;
	format_peer(c, fd, sa, ep);
	c->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		log_error("cannot set up a connection from %s", c->peer);
		close(fd);
		free(c);
		return;
	}
	policy_parser_init(&c->parser, &srv->cfg.limits);
	c->next = srv->conns;
	if (srv->conns != NULL)
		srv->conns->prev = c;
	srv->conns = c;
	srv->n_conns++;
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
	set_timeouts(c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* The cache key: a message (instance) and the login it was decided for, so a
 * check before AUTH in the same session can never answer for one after it. */
static char *cache_key(const struct policy_parser *p, size_t *len)
{
	const char *inst = policy_parser_get(p, POLICY_ATTR_INSTANCE);
	const char *parts[4] = {inst, policy_parser_get(p, POLICY_ATTR_SASL_METHOD),
	                        policy_parser_get(p, POLICY_ATTR_SASL_USERNAME),
	                        policy_parser_get(p, POLICY_ATTR_CLIENT_ADDRESS)};
	size_t n = 0, lens[4];
	char *key;

	if (*inst == '\0')
		return NULL;
	for (int i = 0; i < 4; i++) {
		lens[i] = strlen(parts[i]);
		n += lens[i] + 1;
	}
	key = xmalloc(n);
	n = 0;
	for (int i = 0; i < 4; i++) {
		memcpy(key + n, parts[i], lens[i]);
		n += lens[i];
		key[n++] = '\n';
	}
	*len = n;
	return key;
}

/*
 * Sends a reply. With nothing queued, it goes straight to the socket: a
 * bufferevent write would add and then remove a write event (two epoll_ctl
 * calls per request). Whatever the socket does not take is queued as usual.
 */
static void conn_send(struct conn *c, const char *reply, size_t len)
{
	ssize_t n = 0;

	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
		n = send(bufferevent_getfd(c->bev), reply, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0)
			n = 0; /* EAGAIN, or an error the bufferevent will report */
	}
	if ((size_t)n < len)
		bufferevent_write(c->bev, reply + n, len - (size_t)n);
}

/* A complete request: answer from the cache or decide. */
static void conn_answer(struct conn *c)
{
	size_t klen = 0;
	char *key = cache_key(&c->parser, &klen);

	if (key != NULL && c->cache_key != NULL && klen == c->cache_key_len &&
	    memcmp(key, c->cache_key, klen) == 0) {
		free(key);
		conn_send(c, c->cache_reply, c->cache_reply_len);
		return;
	}
	c->cache_reply_len =
	    policyd_decide(c->srv, &c->parser, c->cache_reply, sizeof(c->cache_reply));
	conn_send(c, c->cache_reply, c->cache_reply_len);
	free(c->cache_key);
	c->cache_key = key;
	c->cache_key_len = klen;
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer *out = bufferevent_get_output(bev);

	while (!c->close_after_write && evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		enum policy_parse_status st;
		size_t used;

		if (evbuffer_get_length(out) >= OUTPUT_PAUSE_BYTES) {
			c->paused = 1;
			bufferevent_disable(bev, EV_READ);
			return;
		}
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		st = policy_parser_feed(&c->parser, v.iov_base, v.iov_len, &used);
		evbuffer_drain(in, used);
		if (st == POLICY_PARSE_ERROR) {
			conn_abort(c, policy_parser_error(&c->parser));
			return;
		}
		if (st == POLICY_PARSE_DONE) {
			conn_answer(c);
			policy_parser_reset(&c->parser);
			policy_parser_set_limits(&c->parser, &c->srv->cfg.limits);
			if (c->srv->stopping)
				c->close_after_write = 1;
		}
	}
	if (c->close_after_write && evbuffer_get_length(out) == 0)
		conn_free(c);
}

void conns_shutdown(struct server *srv)
{
	struct conn *c = srv->conns, *next;

	for (; c != NULL; c = next) {
		next = c->next;
		if (policy_parser_busy(&c->parser))
			continue; /* closes once its request is answered */
		if (evbuffer_get_length(bufferevent_get_output(c->bev)) > 0)
			c->close_after_write = 1;
		else
			conn_free(c);
	}
}

void conns_close_all(struct server *srv)
{
	struct conn *c = srv->conns, *next;

	for (; c != NULL; c = next) {
		next = c->next; /* conn_free(c) unlinks and frees c only */
		if (policy_parser_busy(&c->parser))
			log_warning("closing policy connection: client=%s reason=\"shutting down "
			            "with a request incomplete\"",
			            c->peer);
		conn_free(c);
	}
}

void conns_reconfigure(struct server *srv)
{
	for (struct conn *c = srv->conns; c != NULL; c = c->next)
		set_timeouts(c);
}
