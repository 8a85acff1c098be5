/*
 * decide - the adapter between the policy delegation protocol and the gate:
 * attributes -> struct request, gate_decide() with this event-loop
 * iteration's snapshot, and the decision -> "action=..." reply.
 */
#include <string.h>
#include <time.h>

#include "cidr.h"
#include "engine.h"
#include "log.h"
#include "policyd.h"
#include "request.h"
#include "snapshot.h"

/* Copies text for a reply line: printable ASCII only, at most max bytes. */
static void reply_safe(char *dst, size_t dstsize, const char *src, size_t max)
{
	size_t n = 0;

	for (; *src != '\0' && n + 1 < dstsize && n < max; src++)
		dst[n++] = (*src >= 0x20 && *src < 0x7f) ? *src : '?';
	dst[n] = '\0';
}

/* "action=" and the parts (NULL-terminated), then the empty line, in reply
 * (len bytes, at least 16); a reply too long for it is cut (cannot happen
 * with POLICYD_REPLY_MAX and the limits on reply texts). */
static size_t finish_parts(char *reply, size_t len, const char *const *parts)
{
	static const char head[] = "action=";
	size_t n = sizeof(head) - 1;

	memcpy(reply, head, n);
	for (; *parts != NULL; parts++) {
		size_t k = strlen(*parts);

		if (k > len - 3 - n)
			k = len - 3 - n;
		memcpy(reply + n, *parts, k);
		n += k;
	}
	reply[n++] = '\n';
	reply[n++] = '\n';
	reply[n] = '\0';
	return n;
}

static size_t finish(char *reply, size_t len, const char *action)
{
	const char *const parts[] = {action, NULL};

	return finish_parts(reply, len, parts);
}

static void request_from(const struct policy_parser *p, struct request *req)
{
	const char *service = policy_parser_get(p, POLICY_ATTR_POLICY_CONTEXT);

	request_init(req);
	req->mech = policy_parser_get(p, POLICY_ATTR_SASL_METHOD);
	req->user = policy_parser_get(p, POLICY_ATTR_SASL_USERNAME);
	req->client_addr = policy_parser_get(p, POLICY_ATTR_CLIENT_ADDRESS);
	if (*req->client_addr != '\0' && ipaddr_parse(req->client_addr, &req->addr, NULL) == 0)
		req->addr_valid = 1;
	req->tls_protocol = policy_parser_get(p, POLICY_ATTR_ENCRYPTION_PROTOCOL);
	req->tls_cipher = policy_parser_get(p, POLICY_ATTR_ENCRYPTION_CIPHER);
	req->tls = *req->tls_protocol != '\0';
	if (*service == '\0')
		service = policy_parser_get(p, POLICY_ATTR_SERVER_PORT);
	req->service = service;
	req->queue_id = policy_parser_get(p, POLICY_ATTR_QUEUE_ID);
	req->instance = policy_parser_get(p, POLICY_ATTR_INSTANCE);
	req->sender = policy_parser_get(p, POLICY_ATTR_SENDER);
}

static size_t decision_reply(const struct server *srv, const struct request *req,
                             const struct decision *d, char *reply, size_t len)
{
	char text[sizeof(d->reply_text)];

	if (d->outcome == OUTCOME_BLOCK) {
		/* The enhanced code of an on_error_reply is optional. */
		const char *const parts[] = {
		    d->reply_code, " ", d->reply_enh, d->reply_enh[0] ? " " : "", text, NULL};

		reply_safe(text, sizeof(text), d->reply_text, sizeof(text) - 1);
		return finish_parts(reply, len, parts);
	}
	if (d->outcome == OUTCOME_ALLOW && d->n_report_only > 0 && srv->cfg.report_warn) {
		char mech[64], names[sizeof(d->report_only)];
		const char *const parts[] = {"WARN saslgate report-only: authentication mechanism ",
		                             mech, " would be refused by policy ", names, NULL};

		reply_safe(mech, sizeof(mech), req->mech, 32);
		reply_safe(names, sizeof(names), d->report_only, sizeof(names) - 1);
		return finish_parts(reply, len, parts);
	}
	return finish(reply, len, "DUNNO");
}

/*
 * The snapshot to decide with (a reference held by srv), checked once per
 * event-loop iteration: the
 * first request decided after epoll_wait() returns asks source_acquire()
 * (one pread of policy.notice, PRAGMA data_version only when it moved) and
 * schedules policyd_iteration_end(), which libevent runs after the other
 * callbacks of the same iteration. A request read in this iteration was sent
 * before epoll_wait() returned, so after any commit that preceded it: the
 * first request after saslgatectl commits is decided by the new policy.
 * (Keying the check on libevent's cached time was tried and dropped: two
 * iterations can share a timestamp.)
 */
struct snapshot *policyd_snapshot(struct server *srv)
{
	if (!srv->snap_checked) {
		snapshot_unref(&srv->snap);
		srv->snap = source_acquire(srv->gate.source);
		srv->snap_checked = 1;
		event_active(srv->ev_iteration_end, EV_TIMEOUT, 0);
	}
	return srv->snap;
}

void policyd_iteration_end(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;

	srv->snap_checked = 0;
}

void policyd_release_snapshot(struct server *srv)
{
	snapshot_unref(&srv->snap);
}

size_t policyd_decide(struct server *srv, const struct policy_parser *p, char *reply, size_t len)
{
	struct request req;
	struct decision d;
	size_t n;

	request_from(p, &req);
	gate_decide(&srv->gate, policyd_snapshot(srv), &req, sg_time_now(), &d);
	n = decision_reply(srv, &req, &d, reply, len);
	decision_release(&d);
	return n;
}
