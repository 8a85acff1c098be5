/*
 * listen - saslgate-policyd's endpoints: "unix:PATH" and "inet:HOST:PORT"
 * ("inet:[::1]:PORT" for IPv6) speak the Postfix policy protocol,
 * "http:HOST:PORT" Dovecot's auth policy protocol (http.c). Sockets are bound before privileges are
 * dropped; a UNIX socket gets its mode, owner and group set explicitly after
 * bind, so the umask of whoever started the daemon does not decide who may
 * talk to it.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/listener.h>

#include "alloc.h"
#include "log.h"
#include "policyd.h"

#define LISTEN_BACKLOG 1024

struct endpoint_addr {
	int is_unix, is_http;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct sockaddr_storage ss;
	socklen_t sslen;
};

static int parse_unix(const char *spec, const char *path, struct endpoint_addr *out,
                      struct sg_err *err)
{
	out->is_unix = 1;
	if (*path == '\0')
		return sg_err_set(err, "endpoint %s: empty socket path", spec);
	if (sg_strlcpy(out->path, path, sizeof(out->path)) >= sizeof(out->path))
		return sg_err_set(err, "endpoint %s: socket path longer than %zu bytes", spec,
		                  sizeof(out->path) - 1);
	return 0;
}

static int parse_inet(const char *spec, const char *rest, struct endpoint_addr *out,
                      struct sg_err *err)
{
	char host[256];
	const char *port, *colon;
	struct addrinfo hints, *res = NULL;
	size_t hlen;
	char *end;
	long pnum;
	int rc;

	if (*rest == '[') {
		const char *close = strchr(rest, ']');

		if (close == NULL || close[1] != ':')
			return sg_err_set(err, "endpoint %s: expected inet:[ADDRESS]:PORT", spec);
		hlen = (size_t)(close - rest - 1);
		if (hlen == 0 || hlen >= sizeof(host))
			return sg_err_set(err, "endpoint %s: bad IPv6 address", spec);
		memcpy(host, rest + 1, hlen);
		host[hlen] = '\0';
		port = close + 2;
	} else {
		colon = strrchr(rest, ':');
		if (colon == NULL)
			return sg_err_set(err, "endpoint %s: expected inet:HOST:PORT", spec);
		hlen = (size_t)(colon - rest);
		if (hlen >= sizeof(host))
			return sg_err_set(err, "endpoint %s: host name too long", spec);
		memcpy(host, rest, hlen);
		host[hlen] = '\0';
		if (strchr(host, ':') != NULL)
			return sg_err_set(err,
			                  "endpoint %s: write an IPv6 address in brackets, "
			                  "inet:[ADDRESS]:PORT",
			                  spec);
		port = colon + 1;
	}
	errno = 0;
	pnum = strtol(port, &end, 10);
	if (*port == '\0' || *end != '\0' || errno != 0 || pnum < 1 || pnum > 65535)
		return sg_err_set(err, "endpoint %s: bad port \"%s\" (1..65535)", spec, port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	rc = getaddrinfo(host[0] == '\0' || strcmp(host, "*") == 0 ? NULL : host, port, &hints,
	                 &res);
	if (rc != 0)
		return sg_err_set(err, "endpoint %s: %s", spec, gai_strerror(rc));
	out->is_unix = 0;
	memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
	out->sslen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static int endpoint_parse(const char *spec, struct endpoint_addr *out, struct sg_err *err)
{
	memset(out, 0, sizeof(*out));
	if (strncmp(spec, "unix:", 5) == 0)
		return parse_unix(spec, spec + 5, out, err);
	if (strncmp(spec, "inet:", 5) == 0)
		return parse_inet(spec, spec + 5, out, err);
	if (strncmp(spec, "http:", 5) == 0) {
		out->is_http = 1;
		return parse_inet(spec, spec + 5, out, err);
	}
	return sg_err_set(err, "endpoint %s: expected unix:PATH, inet:HOST:PORT or http:HOST:PORT",
	                  spec);
}

int endpoint_check(const char *spec, struct sg_err *err)
{
	struct endpoint_addr a;

	return endpoint_parse(spec, &a, err);
}

/* A socket file left by a previous run is removed; one that still answers
 * belongs to a running daemon and is left alone. */
static int unix_clear_stale(const char *spec, const char *path, struct sg_err *err)
{
	struct stat st;
	struct sockaddr_un sun;
	int fd, rc;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0
		                       : sg_err_set(err, "endpoint %s: %s", spec, strerror(errno));
	if (!S_ISSOCK(st.st_mode))
		return sg_err_set(err, "endpoint %s: %s exists and is not a socket", spec, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return sg_err_set(err, "endpoint %s: socket: %s", spec, strerror(errno));
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	sg_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
	rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	close(fd);
	if (rc == 0)
		return sg_err_set(err, "endpoint %s: another process is listening on %s", spec,
		                  path);
	if (unlink(path) < 0 && errno != ENOENT)
		return sg_err_set(err, "endpoint %s: cannot remove stale socket: %s", spec,
		                  strerror(errno));
	return 0;
}

int endpoint_check_access(const struct settings *s, struct sg_err *err)
{
	const char *mode_text = settings_str(s, "socket_mode");
	const char *owner = settings_str(s, "socket_owner");
	const char *group = settings_str(s, "socket_group");
	char *end;
	long mode;

	errno = 0;
	mode = strtol(mode_text, &end, 8);
	if (*mode_text == '\0' || *end != '\0' || errno != 0 || mode < 0 || mode > 07777)
		return sg_err_set(err, "socket_mode: \"%s\" is not an octal mode", mode_text);
	if (*owner != '\0' && getpwnam(owner) == NULL)
		return sg_err_set(err, "socket_owner: unknown user \"%s\"", owner);
	if (*group != '\0' && getgrnam(group) == NULL)
		return sg_err_set(err, "socket_group: unknown group \"%s\"", group);
	return 0;
}

/* socket_mode/socket_owner/socket_group, applied after bind. */
static int unix_set_access(const struct server *srv, const char *spec, const char *path,
                           struct sg_err *err)
{
	const char *mode_text = settings_str(&srv->settings, "socket_mode");
	const char *owner = settings_str(&srv->settings, "socket_owner");
	const char *group = settings_str(&srv->settings, "socket_group");
	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1;
	char *end;
	long mode;

	errno = 0;
	mode = strtol(mode_text, &end, 8);
	if (*mode_text == '\0' || *end != '\0' || errno != 0 || mode < 0 || mode > 07777)
		return sg_err_set(err, "socket_mode: \"%s\" is not an octal mode", mode_text);
	if (chmod(path, (mode_t)mode) < 0)
		return sg_err_set(err, "endpoint %s: chmod: %s", spec, strerror(errno));
	if (*owner != '\0') {
		struct passwd *pw = getpwnam(owner);

		if (pw == NULL)
			return sg_err_set(err, "socket_owner: unknown user \"%s\"", owner);
		uid = pw->pw_uid;
	}
	if (*group != '\0') {
		struct group *gr = getgrnam(group);

		if (gr == NULL)
			return sg_err_set(err, "socket_group: unknown group \"%s\"", group);
		gid = gr->gr_gid;
	}
	if ((uid != (uid_t)-1 || gid != (gid_t)-1) && chown(path, uid, gid) < 0)
		return sg_err_set(err, "endpoint %s: chown: %s", spec, strerror(errno));
	return 0;
}

static int bind_unix(struct server *srv, struct endpoint *ep, const struct endpoint_addr *a,
                     struct sg_err *err)
{
	struct sockaddr_un sun;
	mode_t old_umask;
	int fd, rc;

	if (unix_clear_stale(ep->spec, a->path, err) < 0)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return sg_err_set(err, "endpoint %s: socket: %s", ep->spec, strerror(errno));
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	sg_strlcpy(sun.sun_path, a->path, sizeof(sun.sun_path));
	old_umask = umask(0177); /* nobody but us until the mode is set */
	rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old_umask);
	if (rc < 0) {
		sg_err_set(err, "endpoint %s: bind: %s", ep->spec, strerror(errno));
		close(fd);
		return -1;
	}
	ep->fd = fd;
	ep->unix_path = xstrdup(a->path);
	if (unix_set_access(srv, ep->spec, a->path, err) < 0)
		return -1;
	if (listen(fd, LISTEN_BACKLOG) < 0)
		return sg_err_set(err, "endpoint %s: listen: %s", ep->spec, strerror(errno));
	return 0;
}

static int bind_inet(struct endpoint *ep, const struct endpoint_addr *a, struct sg_err *err)
{
	int one = 1;
	int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return sg_err_set(err, "endpoint %s: socket: %s", ep->spec, strerror(errno));
	ep->fd = fd;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* [::]:P and 0.0.0.0:P are separate endpoints, as written. */
	if (a->ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&a->ss, a->sslen) < 0)
		return sg_err_set(err, "endpoint %s: bind: %s", ep->spec, strerror(errno));
	if (listen(fd, LISTEN_BACKLOG) < 0)
		return sg_err_set(err, "endpoint %s: listen: %s", ep->spec, strerror(errno));
	return 0;
}

int endpoints_bind(struct server *srv, struct sg_err *err)
{
	const char *cursor = settings_str(&srv->settings, "listen");
	char spec[1024];
	int r;

	while ((r = list_next(&cursor, spec, sizeof(spec))) != 0) {
		struct endpoint_addr a;
		struct endpoint *ep;

		if (r < 0)
			return sg_err_set(err, "listen: an endpoint is longer than %zu bytes",
			                  sizeof(spec) - 1);
		if (endpoint_parse(spec, &a, err) < 0)
			return -1;
		srv->endpoints =
		    xrealloc(srv->endpoints, (srv->n_endpoints + 1) * sizeof(*srv->endpoints));
		ep = &srv->endpoints[srv->n_endpoints++];
		memset(ep, 0, sizeof(*ep));
		ep->spec = xstrdup(spec);
		ep->fd = -1;
		ep->srv = srv;
		ep->http = a.is_http;
		if ((a.is_unix ? bind_unix(srv, ep, &a, err) : bind_inet(ep, &a, err)) < 0)
			return -1;
	}
	if (srv->n_endpoints == 0)
		return sg_err_set(err, "nothing to listen on: give -l unix:PATH or "
		                       "-l inet:HOST:PORT (or the listen setting)");
	return 0;
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
	struct endpoint *ep = arg;

	conn_accept(ep->srv, fd, sa, salen, ep);
}

/* accept() failing (EMFILE, ENFILE, ENOBUFS) would otherwise spin: pause all
 * listeners for a second and say so, at most once a minute. */
static void accept_error_cb(struct evconnlistener *l, void *arg)
{
	struct endpoint *ep = arg;
	struct server *srv = ep->srv;
	time_t now = time(NULL);
	struct timeval one = {1, 0};

	if (now - srv->accept_error_logged_at >= 60) {
		log_error("accept on %s failed: %s; pausing new connections for 1s", ep->spec,
		          strerror(errno));
		srv->accept_error_logged_at = now;
	}
	endpoints_pause(srv);
	if (srv->ev_resume != NULL && !srv->stopping)
		evtimer_add(srv->ev_resume, &one);
}

int endpoints_listen(struct server *srv, struct sg_err *err)
{
	for (size_t i = 0; i < srv->n_endpoints; i++) {
		struct endpoint *ep = &srv->endpoints[i];

		if (ep->http) {
			if (http_endpoint_listen(srv, ep, err) < 0)
				return -1;
			continue;
		}
		ep->listener =
		    evconnlistener_new(srv->base, accept_cb, ep,
		                       LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, ep->fd);
		if (ep->listener == NULL)
			return sg_err_set(err, "endpoint %s: cannot create listener", ep->spec);
		evconnlistener_set_error_cb(ep->listener, accept_error_cb);
	}
	return 0;
}

void endpoints_pause(struct server *srv)
{
	for (size_t i = 0; i < srv->n_endpoints; i++) {
		if (srv->endpoints[i].listener != NULL)
			evconnlistener_disable(srv->endpoints[i].listener);
	}
}

void endpoints_resume(struct server *srv)
{
	if (srv->stopping)
		return;
	for (size_t i = 0; i < srv->n_endpoints; i++) {
		if (srv->endpoints[i].listener != NULL)
			evconnlistener_enable(srv->endpoints[i].listener);
	}
}

void endpoints_close(struct server *srv)
{
	for (size_t i = 0; i < srv->n_endpoints; i++) {
		struct endpoint *ep = &srv->endpoints[i];

		if (ep->http && ep->evhttp != NULL)
			http_endpoint_close(ep); /* its listener and socket with it */
		else if (ep->listener != NULL)
			evconnlistener_free(ep->listener);
		else if (ep->fd >= 0)
			close(ep->fd);
		if (ep->unix_path != NULL && unlink(ep->unix_path) < 0 && errno != ENOENT)
			log_warning("cannot remove %s: %s", ep->unix_path, strerror(errno));
		free(ep->unix_path);
		free(ep->spec);
	}
	free(srv->endpoints);
	srv->endpoints = NULL;
	srv->n_endpoints = 0;
}
