/*
 * http - Dovecot's auth policy server on http: endpoints: libevent's evhttp
 * in the daemon's event loop, the same snapshot and the same gate as the
 * policy protocol. Dovecot asks before it checks any password
 * (auth_policy_check_before_auth): POST /?command=allow with a JSON object
 * of the attributes (authpolicy.h), answered {"status":-1,"msg":TEXT} to
 * refuse the login with TEXT (the policy's reply text, without SMTP codes)
 * or {"status":0,"msg":""} to go on; after the check POST /?command=report,
 * counted per service, mechanism class and result.
 *
 * Bad input costs that request and nothing else: a method other than POST
 * gets 405, another path 404, an unknown command, malformed JSON or a value
 * of the wrong type 400, a missing or wrong X-API-Key (when http_api_key is
 * set) 401, a body over max_request_bytes 413 (evhttp refuses it from its
 * Content-Length, before reading it), a connection that makes no progress
 * for http_timeout is closed. Dovecot answers a non-2xx reply per
 * auth_policy_reject_on_fail.
 *
 * Connections count against max_connections with the policy protocol's.
 * evhttp (libevent 2.1) has no accept hook, so the count is kept from two
 * public hooks: the bufferevent callback (evhttp_set_bevcb), called for
 * every accepted connection, and the connection's close callback. The
 * bufferevent made there gets evhttp's connection as its callback argument
 * before the loop runs again; an event activated from the bufferevent
 * callback then "adopts" that connection (counts it, or closes it when over
 * the limit) before it can read anything.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "alloc.h"
#include "authpolicy.h"
#include "gate.h"
#include "log.h"
#include "policyd.h"

#define HTTP_HEADERS_MAX 16384
#define HTTP_ALL_METHODS                                                                           \
	(EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | \
	 EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH)

/* Jansson's allocations while it parses a request body come from an arena
 * that the next request reuses: a parse makes some 25 small allocations (the
 * lexer's buffers, every key and string, the object's table), all of them
 * freed with the object before request_cb returns. Outside a parse, or once
 * the arena is full (a large body), they go to malloc; free() is for those
 * only. */
#define JSON_ARENA_BYTES 16384

static struct {
	_Alignas(max_align_t) unsigned char buf[JSON_ARENA_BYTES];
	size_t used;
	int active; /* a parse is allocating from it */
	int in_use; /* an object in it is alive (a request nested in another: malloc) */
} json_arena;

static void *json_arena_malloc(size_t n)
{
	size_t need = (n + (_Alignof(max_align_t) - 1)) & ~(size_t)(_Alignof(max_align_t) - 1);

	if (json_arena.active && need >= n && need <= sizeof(json_arena.buf) - json_arena.used) {
		void *p = json_arena.buf + json_arena.used;

		json_arena.used += need;
		return p;
	}
	return malloc(n);
}

static void json_arena_free(void *p)
{
	uintptr_t a = (uintptr_t)p, start = (uintptr_t)json_arena.buf;

	if (a - start >= sizeof(json_arena.buf)) /* not in the arena (or NULL) */
		free(p);
}

struct http_conn {
	struct evhttp_connection *evcon;
	struct server *srv;
	struct http_conn *prev, *next;
};

static void http_closed_cb(struct evhttp_connection *evcon, void *arg)
{
	struct http_conn *hc = arg;
	struct server *srv = hc->srv;

	(void)evcon;
	if (hc->prev != NULL)
		hc->prev->next = hc->next;
	else
		srv->http_conns = hc->next;
	if (hc->next != NULL)
		hc->next->prev = hc->prev;
	free(hc);
	srv->n_conns--;
	conns_maybe_finish(srv);
}

static void adopt(struct server *srv, struct evhttp_connection *evcon)
{
	struct http_conn *hc;

	if (conns_over_limit(srv)) {
		evhttp_connection_free(evcon);
		return;
	}
	hc = xcalloc(1, sizeof(*hc));
	hc->evcon = evcon;
	hc->srv = srv;
	hc->next = srv->http_conns;
	if (srv->http_conns != NULL)
		srv->http_conns->prev = hc;
	srv->http_conns = hc;
	srv->n_conns++;
	evhttp_connection_set_closecb(evcon, http_closed_cb, hc);
}

static void adopt_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;

	(void)fd;
	(void)what;
	for (size_t i = 0; i < srv->n_http_new; i++) {
		struct bufferevent *bev = srv->http_new[i];
		void *evcon = NULL;

		/* NULL callbacks: evhttp has freed it already (it is ours to free). */
		bufferevent_getcb(bev, NULL, NULL, NULL, &evcon);
		if (evcon != NULL)
			adopt(srv, evcon);
		bufferevent_decref(bev);
	}
	srv->n_http_new = 0;
}

static struct bufferevent *new_bev_cb(struct event_base *base, void *arg)
{
	struct server *srv = arg;
	struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);

	if (bev == NULL)
		return NULL; /* evhttp makes one itself; the connection goes uncounted */
	if (srv->n_http_new == srv->http_new_cap) {
		srv->http_new_cap = srv->http_new_cap ? 2 * srv->http_new_cap : 16;
		srv->http_new = xrealloc(srv->http_new, srv->http_new_cap * sizeof(*srv->http_new));
	}
	bufferevent_incref(bev); /* alive until adopt_cb looks at it */
	srv->http_new[srv->n_http_new++] = bev;
	event_active(srv->ev_http_adopt, EV_TIMEOUT, 0);
	return bev;
}

static const char *peer_of(struct evhttp_request *r)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(r);
	char *host = NULL;
	ev_uint16_t port = 0;

	if (evcon != NULL)
		evhttp_connection_get_peer(evcon, &host, &port);
	return host != NULL ? host : "?";
}

/* An error reply with a one-line text body; logged, as it means a client
 * (Dovecot's configuration, most often) is wrong. */
static void reply_error(struct evhttp_request *r, int code, const char *reason, const char *detail)
{
	struct evbuffer *body = evhttp_request_get_output_buffer(r);

	log_warning("http request refused: client=%s status=%d reason=\"%s%s%s\"", peer_of(r), code,
	            reason, detail ? ": " : "", detail ? detail : "");
	evhttp_add_header(evhttp_request_get_output_headers(r), "Content-Type",
	                  "text/plain; charset=utf-8");
	evbuffer_add_printf(body, "%s%s%s\n", reason, detail ? ": " : "", detail ? detail : "");
	evhttp_send_reply(r, code, reason, body);
}

/* {"status":N,"msg":"TEXT"}; TEXT is printable ASCII (the engine's reply
 * text), so only '"' and '\' need escaping. */
static void reply_json(struct evhttp_request *r, int status, const char *msg)
{
	static const char go_on[] = "{\"status\":0,\"msg\":\"",
	                  refuse[] = "{\"status\":-1,\"msg\":\"";
	char buf[2 * sizeof(((struct decision *)0)->reply_text) + 48];
	size_t n;

	if (status == 0 || status == -1) {
		n = status == 0 ? sizeof(go_on) - 1 : sizeof(refuse) - 1;
		memcpy(buf, status == 0 ? go_on : refuse, n);
	} else {
		n = (size_t)snprintf(buf, sizeof(buf), "{\"status\":%d,\"msg\":\"", status);
	}

	for (const char *p = msg; *p != '\0' && n + 4 < sizeof(buf); p++) {
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			continue;
		if (*p == '"' || *p == '\\')
			buf[n++] = '\\';
		buf[n++] = *p;
	}
	buf[n++] = '"';
	buf[n++] = '}';
	evhttp_add_header(evhttp_request_get_output_headers(r), "Content-Type", "application/json");
	evbuffer_add(evhttp_request_get_output_buffer(r), buf, n);
	evhttp_send_reply(r, 200, "OK", NULL);
}

/* Dovecot without mech=%m in auth_policy_request_attributes: a
 * configuration error, answered per on_error and said at most once a
 * minute. */
static void mech_missing(struct server *srv, const char *client, struct decision *d)
{
	time_t now = time(NULL);

	if (now - srv->mech_missing_logged_at >= 60) {
		log_error("Dovecot sent a policy request without \"mech\" (client %s): add "
		          "mech=%%m to auth_policy_request_attributes; answering per on_error=%s",
		          client && *client ? client : "-",
		          gate_on_error_name(srv->gate.fallback->action));
		srv->mech_missing_logged_at = now;
	}
	gate_fallback(&srv->gate, d);
}

static void answer_allow(struct server *srv, struct evhttp_request *r,
                         const struct authpolicy_request *ar)
{
	struct decision d;

	if (ar->missing != NULL)
		mech_missing(srv, ar->req.client_addr, &d);
	else
		gate_decide(&srv->gate, policyd_snapshot(srv), &ar->req, sg_time_now(), &d);
	if (d.outcome == OUTCOME_BLOCK)
		reply_json(r, -1, d.reply_text);
	else
		reply_json(r, 0, "");
	decision_release(&d);
}

static void answer_report(struct server *srv, struct evhttp_request *r,
                          const struct authpolicy_request *ar)
{
	const char *result = ar->policy_reject ? "policy_reject"
	                     : ar->success     ? "success"
	                                       : "failure";
	const char *cls = "-";

	if (ar->req.mech != NULL)
		cls = mech_class_name(snapshot_mech_class(policyd_snapshot(srv), ar->req.mech));
	activity_count_auth_result(srv->gate.activity, ar->req.service, cls, result);
	reply_json(r, 0, "");
}

/* Constant time in the length of the expected key. */
static int api_key_matches(const char *expected, const char *given)
{
	size_t n = strlen(expected), m = given ? strlen(given) : 0;
	unsigned char diff = (unsigned char)(n != m);

	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)(expected[i] ^ (i < m ? given[i] : 0));
	return diff == 0;
}

/* The checks that need no body: method, path, command, key. 0 to go on. */
static int check_request(struct server *srv, struct evhttp_request *r, enum authpolicy_command *cmd)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(r);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
	struct evkeyvalq params;
	int rc;

	if (evhttp_request_get_command(r) != EVHTTP_REQ_POST) {
		evhttp_add_header(evhttp_request_get_output_headers(r), "Allow", "POST");
		reply_error(r, 405, "Method Not Allowed", "only POST /?command=allow|report");
		return -1;
	}
	if (path == NULL || strcmp(path, "/") != 0) {
		reply_error(r, 404, "Not Found", "the auth policy is served at /");
		return -1;
	}
	if (*srv->cfg.http_api_key != '\0' &&
	    !api_key_matches(
	        srv->cfg.http_api_key,
	        evhttp_find_header(evhttp_request_get_input_headers(r), "X-API-Key"))) {
		reply_error(r, 401, "Unauthorized",
		            "X-API-Key missing or wrong (auth_policy_server_api_header)");
		return -1;
	}
	/* Dovecot's two queries as it sends them: nothing to split or decode. */
	if (query != NULL && strcmp(query, "command=allow") == 0) {
		*cmd = AUTHPOLICY_ALLOW;
		return 0;
	}
	if (query != NULL && strcmp(query, "command=report") == 0) {
		*cmd = AUTHPOLICY_REPORT;
		return 0;
	}
	TAILQ_INIT(&params);
	rc = query ? evhttp_parse_query_str(query, &params) : -1;
	if (rc != 0 || authpolicy_command_parse(evhttp_find_header(&params, "command"), cmd) != 0) {
		evhttp_clear_headers(&params);
		reply_error(r, 400, "Bad Request", "expected ?command=allow or ?command=report");
		return -1;
	}
	evhttp_clear_headers(&params);
	return 0;
}

static void request_cb(struct evhttp_request *r, void *arg)
{
	struct server *srv = arg;
	struct evbuffer *in = evhttp_request_get_input_buffer(r);
	size_t len = evbuffer_get_length(in);
	enum authpolicy_command cmd;
	struct authpolicy_request ar;
	struct sg_err err = {{0}};
	json_error_t jerr;
	json_t *obj;
	int arena;

	if (check_request(srv, r, &cmd) != 0)
		return;
	arena = !json_arena.in_use;
	if (arena) {
		json_arena.used = 0; /* the previous request's object is gone */
		json_arena.in_use = json_arena.active = 1;
	}
	obj = json_loadb((const char *)evbuffer_pullup(in, -1), len, JSON_REJECT_DUPLICATES, &jerr);
	json_arena.active = 0;
	if (obj == NULL) {
		if (arena)
			json_arena.in_use = 0;
		reply_error(r, 400, "Bad Request", "malformed JSON");
		return;
	}
	if (authpolicy_map(obj, cmd, &ar, &err) != 0) {
		reply_error(r, 400, "Bad Request", err.text);
	} else if (cmd == AUTHPOLICY_ALLOW) {
		answer_allow(srv, r, &ar);
	} else {
		answer_report(srv, r, &ar);
	}
	json_decref(obj);
	if (arena)
		json_arena.in_use = 0;
}

int http_endpoint_listen(struct server *srv, struct endpoint *ep, struct sg_err *err)
{
	struct timeval timeout = {(time_t)settings_int(&srv->settings, "http_timeout"), 0};
	struct evhttp_bound_socket *bound;

	json_set_alloc_funcs(json_arena_malloc, json_arena_free);
	if (srv->ev_http_adopt == NULL &&
	    (srv->ev_http_adopt = event_new(srv->base, -1, 0, adopt_cb, srv)) == NULL)
		return sg_err_set(err, "endpoint %s: cannot create an event", ep->spec);
	ep->evhttp = evhttp_new(srv->base);
	if (ep->evhttp == NULL)
		return sg_err_set(err, "endpoint %s: cannot create the HTTP server", ep->spec);
	evhttp_set_allowed_methods(ep->evhttp, HTTP_ALL_METHODS); /* 405 is ours to say */
	evhttp_set_max_headers_size(ep->evhttp, HTTP_HEADERS_MAX);
	evhttp_set_max_body_size(ep->evhttp, (ev_ssize_t)srv->cfg.limits.max_request_bytes);
	evhttp_set_timeout_tv(ep->evhttp, &timeout);
	evhttp_set_bevcb(ep->evhttp, new_bev_cb, srv);
	evhttp_set_gencb(ep->evhttp, request_cb, srv);
	bound = evhttp_accept_socket_with_handle(ep->evhttp, ep->fd);
	if (bound == NULL)
		return sg_err_set(err, "endpoint %s: evhttp cannot accept on the socket", ep->spec);
	ep->fd = -1; /* evhttp's now */
	ep->listener = evhttp_bound_socket_get_listener(bound);
	return 0;
}

void http_endpoint_close(struct endpoint *ep)
{
	evhttp_free(ep->evhttp); /* frees its connections (close callbacks run) */
	ep->evhttp = NULL;
	ep->listener = NULL;
}

void http_conns_close_all(struct server *srv)
{
	struct http_conn *hc = srv->http_conns, *next;

	for (; hc != NULL; hc = next) {
		next = hc->next;
		evhttp_connection_free(hc->evcon); /* http_closed_cb frees hc */
	}
}
