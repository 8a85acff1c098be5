/*
 * conn - one Postfix policy client connection: its socket, the request parser,
 * and the per-message decision cache. Postfix keeps a connection per smtpd
 * process open for many requests, one at a time; with smtpd_delay_reject=yes a
 * check in the recipient restrictions runs once per recipient, so the answer
 * for a message (same instance, same login) is computed, logged and recorded
 * once and repeated for the other recipients.
 *
 * The socket is read with one recv() per readable event into the connection's
 * own buffer and the reply goes out with one send(): two system calls per
 * request, the least the protocol allows (a bufferevent adds an ioctl per read
 * and an epoll_ctl pair per reply). A write event exists only while Postfix is
 * slow to read a reply; idle connections are found by a sweep once a second.
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

#include "alloc.h"
#include "log.h"
#include "policyd.h"

/* What one recv() may bring; a request that does not fit is parsed in parts.
 * The loop is single-threaded, so one buffer serves every connection: it is
 * parsed at once, and only input left over while a connection is paused (its
 * client not reading replies) is kept, by that connection. */
#define CONN_INPUT_BYTES 16384
static char input[CONN_INPUT_BYTES];

/* A client that does not read its replies stops being read from once this much
 * output is pending (Postfix never sends a second request before the reply). */
#define OUTPUT_PAUSE_BYTES 65536

struct conn {
	struct server *srv;
	int fd;
	struct event *ev_read;  /* persistent while reading */
	struct event *ev_write; /* added while output is pending */
	struct conn *prev, *next;
	struct policy_parser parser;
	char peer[96];
	int64_t last_active_ms;     /* last byte received or sent (conns_clock_ms) */
	int64_t request_started_ms; /* first byte of the request being read */
	int reading;                /* ev_read is added */
	int closing;                /* close once the pending output is sent */
	/* output the socket did not take at once */
	char *out;
	size_t out_len, out_cap;
	/* decision cache: instance, mechanism, user and client of the last decision */
	char *cache_key;
	size_t cache_key_len;
	char cache_reply[POLICYD_REPLY_MAX];
	size_t cache_reply_len;
	/* input received while paused, not yet parsed */
	char *held;
	size_t held_len;
};

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
	event_free(c->ev_read);
	event_free(c->ev_write);
	close(c->fd);
	policy_parser_free(&c->parser);
	free(c->out);
	free(c->held);
	free(c->cache_key);
	free(c);
	conns_maybe_finish(srv);
}

void conns_maybe_finish(struct server *srv)
{
	if (srv->stopping && srv->n_conns == 0)
		event_base_loopexit(srv->base, NULL);
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

/* The policy connection idle the longest, or with a request incomplete the
 * longest (a client that sends a byte now and then stays "active"), or NULL
 * when there is none. */
static struct conn *longest_waiting(struct server *srv)
{
	struct conn *best = NULL;
	int64_t best_since = 0;

	for (struct conn *c = srv->conns; c != NULL; c = c->next) {
		int64_t since =
		    policy_parser_busy(&c->parser) ? c->request_started_ms : c->last_active_ms;

		if (c->closing)
			continue;
		/* The list runs from the newest connection to the oldest: on a tie of
		 * the coarse clock the older one is taken. */
		if (best == NULL || since <= best_since) {
			best = c;
			best_since = since;
		}
	}
	return best;
}

/* Logs, at most once a minute, what the limit cost since the last message. */
static void limit_log(struct server *srv)
{
	time_t now = time(NULL);

	if (now - srv->refused_logged_at < 60)
		return;
	log_warning("max_connections=%zu reached: closed %llu connection(s) idle or with a "
	            "request incomplete the longest to admit new ones, refused %llu, since the "
	            "last message",
	            srv->cfg.max_connections, (unsigned long long)srv->evicted_unlogged,
	            (unsigned long long)srv->refused_unlogged);
	srv->refused_logged_at = now;
	srv->refused_unlogged = 0;
	srv->evicted_unlogged = 0;
}

/* At max_connections a client that never finishes must not lock the MTA
 * out: the policy connection idle or incomplete the longest is closed to
 * admit the new one. Only when there is none (every open connection is an
 * http: one) is the new connection refused. */
int conns_over_limit(struct server *srv)
{
	struct conn *victim;

	if (srv->stopping)
		return 1;
	if (srv->n_conns < srv->cfg.max_connections)
		return 0;
	victim = longest_waiting(srv);
	if (victim != NULL) {
		log_debug("max_connections: closing the connection from %s to admit a new one",
		          victim->peer);
		conn_free(victim);
		srv->evicted_unlogged++;
	} else {
		srv->refused_unlogged++;
	}
	limit_log(srv);
	return srv->n_conns >= srv->cfg.max_connections;
}

static void set_reading(struct conn *c, int on)
{
	if (on == c->reading)
		return;
	if (on)
		event_add(c->ev_read, NULL);
	else
		event_del(c->ev_read);
	c->reading = on;
}

/* Keeps what the socket did not take; a write event sends it later. */
static void queue_output(struct conn *c, const char *data, size_t len)
{
	if (c->out_len + len > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap * 2 : 1024;

		while (cap < c->out_len + len)
			cap *= 2;
		c->out = xrealloc(c->out, cap);
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, data, len);
	if (c->out_len == 0)
		event_add(c->ev_write, NULL);
	c->out_len += len;
}

/* Sends a reply: straight to the socket unless output is already waiting. */
static void conn_send(struct conn *c, const char *reply, size_t len)
{
	ssize_t n = 0;

	if (c->out_len == 0) {
		n = send(c->fd, reply, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0)
			n = 0; /* EAGAIN, or an error the next read or write reports */
	}
	if ((size_t)n < len)
		queue_output(c, reply + n, len - (size_t)n);
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

/* Closes the connection once its pending output is sent: at once when there
 * is none (then returns -1: c is freed), else after conn_write_cb() sends it. */
static int conn_close_when_sent(struct conn *c)
{
	c->closing = 1;
	set_reading(c, 0);
	if (c->out_len > 0)
		return 0;
	conn_free(c);
	return -1;
}

/*
 * Parses and answers data[0..len). Returns 0, or -1 when the connection is
 * gone (freed). While too much output is pending, reading stops and the rest
 * of the data is held for conn_write_cb().
 */
static int conn_process(struct conn *c, const char *data, size_t len)
{
	size_t off = 0;

	while (off < len && !c->closing) {
		enum policy_parse_status st;
		size_t used;

		if (c->out_len >= OUTPUT_PAUSE_BYTES) {
			set_reading(c, 0); /* resumed when the output is sent */
			c->held = xmalloc(len - off);
			memcpy(c->held, data + off, len - off);
			c->held_len = len - off;
			return 0;
		}
		st = policy_parser_feed(&c->parser, data + off, len - off, &used);
		off += used;
		if (st == POLICY_PARSE_ERROR) {
			conn_abort(c, policy_parser_error(&c->parser));
			return -1;
		}
		if (st == POLICY_PARSE_DONE) {
			conn_answer(c);
			policy_parser_reset(&c->parser);
			policy_parser_set_limits(&c->parser, &c->srv->cfg.limits);
			if (c->srv->stopping)
				c->closing = 1;
		}
	}
	return c->closing ? conn_close_when_sent(c) : 0;
}

/* The peer closed its side: fine between requests, a violation inside one.
 * A client that half-closes after its request still gets the reply. */
static void conn_eof(struct conn *c)
{
	if (policy_parser_busy(&c->parser))
		conn_abort(c, "disconnected in the middle of a request");
	else
		conn_close_when_sent(c);
}

/* After a recv() or send() that failed: nothing for EAGAIN and EINTR (the
 * event comes again), else the connection is closed (and freed). */
static void io_failed(struct conn *c)
{
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return;
	log_debug("policy connection from %s: %s", c->peer, strerror(errno));
	conn_free(c);
}

static void conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	ssize_t n = recv(fd, input, sizeof(input), 0);

	if (n < 0) {
		io_failed(c);
		return;
	}
	if (n == 0) {
		conn_eof(c);
		return;
	}
	c->last_active_ms = conns_clock_ms();
	if (!policy_parser_busy(&c->parser))
		c->request_started_ms = c->last_active_ms;
	conn_process(c, input, (size_t)n);
}

static void conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	ssize_t n = send(fd, c->out, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);

	if (n < 0) {
		io_failed(c);
		return;
	}
	c->last_active_ms = conns_clock_ms();
	memmove(c->out, c->out + n, c->out_len - (size_t)n);
	c->out_len -= (size_t)n;
	if (c->out_len > 0)
		return;
	event_del(c->ev_write);
	if (c->closing) {
		conn_free(c);
		return;
	}
	/* Reading may have paused on this output; requests may be waiting. */
	set_reading(c, 1);
	if (c->held != NULL) {
		char *held = c->held;
		size_t len = c->held_len;

		c->held = NULL;
		c->held_len = 0;
		conn_process(c, held, len); /* may free c, never held */
		free(held);
	}
}

void conn_accept(struct server *srv, int fd, const struct sockaddr *sa, int salen,
                 const struct endpoint *ep)
{
	struct conn *c;

	if (conns_over_limit(srv)) {
		close(fd);
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->srv = srv;
	c->fd = fd;
	format_peer(c, fd, sa, ep);
	evutil_make_socket_nonblocking(fd);
	c->ev_read = event_new(srv->base, fd, EV_READ | EV_PERSIST, conn_read_cb, c);
	c->ev_write = event_new(srv->base, fd, EV_WRITE | EV_PERSIST, conn_write_cb, c);
	if (c->ev_read == NULL || c->ev_write == NULL || event_add(c->ev_read, NULL) < 0) {
		log_error("cannot set up a connection from %s", c->peer);
		if (c->ev_read != NULL)
			event_free(c->ev_read);
		if (c->ev_write != NULL)
			event_free(c->ev_write);
		close(fd);
		free(c);
		return;
	}
	c->reading = 1;
	c->last_active_ms = conns_clock_ms();
	policy_parser_init(&c->parser, &srv->cfg.limits);
	c->next = srv->conns;
	if (srv->conns != NULL)
		srv->conns->prev = c;
	srv->conns = c;
	srv->n_conns++;
}

int64_t conns_clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Once a second: connections silent for idle_timeout are closed, as are those
 * whose client has not read a reply for as long, and those whose request has
 * not come complete within request_timeout of its first byte. */
void conns_sweep(struct server *srv, int64_t now_ms)
{
	struct conn *c = srv->conns, *next;

	for (; c != NULL; c = next) {
		next = c->next;
		if (policy_parser_busy(&c->parser) &&
		    now_ms - c->request_started_ms >= (int64_t)srv->cfg.request_timeout_s * 1000)
			conn_abort(c, "request not complete within request_timeout");
		else if (now_ms - c->last_active_ms >= (int64_t)srv->cfg.idle_timeout_s * 1000)
			conn_abort(c, c->out_len > 0 ? "write timeout" : "idle timeout");
	}
}

void conns_shutdown(struct server *srv)
{
	struct conn *c = srv->conns, *next;

	for (; c != NULL; c = next) {
		next = c->next;
		if (policy_parser_busy(&c->parser))
			continue; /* closes once its request is answered */
		conn_close_when_sent(c);
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
