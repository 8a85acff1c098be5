/*
 * policyd - the internals of saslgate-policyd shared by its files: the server
 * state, endpoints (listen.c), connections (conn.c), the decision adapter
 * (decide.c) and configuration (config.c). Single-threaded: everything below
 * runs in the libevent loop of main.c, except the activity writer, which lives
 * behind lib/activity.h.
 */
#ifndef SASLGATE_POLICYD_H
#define SASLGATE_POLICYD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "activity.h"
#include "gate.h"
#include "request_parse.h"
#include "settings.h"
#include "source.h"
#include "util.h"

#define POLICYD_PROGRAM "saslgate-policyd"

/* Room for "action=" + code + enhanced code + the engine's 512-byte text. */
#define POLICYD_REPLY_MAX 640

/* The values the daemon consults per request, derived from the settings. All of
 * them may change on SIGHUP. */
struct policyd_config {
	struct policy_limits limits;
	int64_t idle_timeout_s;
	size_t max_connections;
	int report_warn;               /* report_only_action = warn */
	struct gate_fallback fallback; /* on_error, on_error_reply */
	const char *http_api_key;      /* "": none; points into the settings */
};

/* Derives the configuration from validated settings. 0, or -1 with err (an
 * on_error_reply that is no valid SMTP reply). */
int policyd_config_derive(const struct settings *s, struct policyd_config *cfg, struct sg_err *err);

/* What the command line said, kept to re-apply it over the config file on
 * SIGHUP. */
struct policyd_cmdline {
	const char *config_file; /* -c, or NULL */
	const char **pairs;      /* "key=value" from -o, -d, -u, -g, in order */
	size_t n_pairs;
	const char **endpoints; /* -l, appended to the listen setting */
	size_t n_endpoints;
};

/* Defaults, then the config file, then the command line. On error nothing is
 * left allocated in s. 0 or -1 with err. */
int policyd_settings_build(const struct policyd_cmdline *cl, struct settings *s,
                           struct sg_err *err);

/* One listening endpoint. */
struct endpoint {
	char *spec;                      /* as configured: "unix:/run/x.sock", "inet:[::1]:10031" */
	char *unix_path;                 /* for unix: endpoints, else NULL */
	int fd;                          /* bound, listening socket, or -1 */
	int http;                        /* an http: endpoint (Dovecot's auth policy, http.c) */
	struct evconnlistener *listener; /* http: evhttp's, owned by evhttp */
	struct evhttp *evhttp;           /* http: endpoints only */
	struct server *srv;
};

struct conn;
struct http_conn;

struct server {
	struct event_base *base;
	struct settings settings;
	struct policyd_cmdline cmdline;
	struct policyd_config cfg;
	struct gate gate; /* its fallback points to cfg.fallback */
	int foreground;

	struct endpoint *endpoints;
	size_t n_endpoints;

	struct conn *conns;            /* doubly linked list of open connections */
	size_t n_conns;                /* policy and http: connections: one max_connections */
	struct http_conn *http_conns;  /* http: connections (http.c) */
	struct bufferevent **http_new; /* accepted, not yet adopted (http.c) */
	size_t n_http_new, http_new_cap;
	struct event *ev_http_adopt;
	time_t mech_missing_logged_at;

	/* The snapshot of this event-loop iteration (see decide.c). */
	struct snapshot *snap;
	int snap_checked;
	struct event *ev_iteration_end;

	int stopping;
	time_t refused_logged_at;
	uint64_t refused_unlogged;
	time_t accept_error_logged_at;

	struct event *ev_term, *ev_int, *ev_hup, *ev_heartbeat, *ev_grace, *ev_resume, *ev_sweep;
};

/* listen.c */

/* Checks the syntax of an endpoint ("unix:PATH", "inet:HOST:PORT",
 * "inet:[V6]:PORT"). 0 or -1 with err. */
int endpoint_check(const char *spec, struct sg_err *err);

/* Checks socket_mode, socket_owner and socket_group. 0 or -1 with err. */
int endpoint_check_access(const struct settings *s, struct sg_err *err);

/* Parses the listen setting into srv->endpoints and binds each one (UNIX
 * sockets get socket_mode/owner/group). Runs before privileges are dropped and
 * before the event base exists. 0 or -1 with err. */
int endpoints_bind(struct server *srv, struct sg_err *err);

/* Creates the listeners on srv->base. 0 or -1 with err. */
int endpoints_listen(struct server *srv, struct sg_err *err);

/* Stops accepting (listeners disabled, sockets still bound). */
void endpoints_pause(struct server *srv);
void endpoints_resume(struct server *srv);

/* Frees listeners, closes the sockets, removes the UNIX socket files. */
void endpoints_close(struct server *srv);

/* conn.c */

/* Takes over an accepted socket. Enforces max_connections (closing fd when
 * over the limit). */
void conn_accept(struct server *srv, int fd, const struct sockaddr *sa, int salen,
                 const struct endpoint *ep);

/* Shutdown: closes idle connections now; busy ones close after their
 * request is answered. */
void conns_shutdown(struct server *srv);

/* Closes every connection at once (end of the grace period). */
void conns_close_all(struct server *srv);

/* 1 when a new connection must be refused (stopping, or max_connections
 * open); the refusals are logged at most once a minute. */
int conns_over_limit(struct server *srv);

/* Closes connections idle (or not reading their replies) for idle_timeout.
 * Called once a second; a SIGHUP's new timeout so applies to open
 * connections too. */
void conns_sweep(struct server *srv, int64_t now_ms);

/* A monotonic clock in milliseconds (coarse: a few ms), for idle times. */
int64_t conns_clock_ms(void);

/* http.c */

/* Serves Dovecot's auth policy requests on ep (an http: endpoint, bound):
 * an evhttp on srv->base. 0 or -1 with err. */
int http_endpoint_listen(struct server *srv, struct endpoint *ep, struct sg_err *err);

/* Frees ep's evhttp, its listener and socket. */
void http_endpoint_close(struct endpoint *ep);

/* Closes every http: connection (shutdown: Dovecot keeps idle ones open). */
void http_conns_close_all(struct server *srv);

/* decide.c */

/* Decides a completed request and formats the whole reply, "action=...\n\n",
 * into reply (POLICYD_REPLY_MAX bytes). Records the decision in activity.
 * Returns the reply length. Never fails: errors give the on_error reply. */
size_t policyd_decide(struct server *srv, const struct policy_parser *p, char *reply, size_t len);

/* The snapshot of this event-loop iteration, checked for a committed change
 * by its first request: a reference held by srv, valid until the iteration
 * ends. */
struct snapshot *policyd_snapshot(struct server *srv);

/* Ends an event-loop iteration: the next request checks the store again. */
void policyd_iteration_end(evutil_socket_t fd, short what, void *arg);

/* Releases the snapshot held for the current loop iteration (shutdown). */
void policyd_release_snapshot(struct server *srv);

/* main.c */

/* Called by conn.c when the last connection of a stopping server is gone. */
void server_maybe_finish(struct server *srv);

#endif
