/*
 * saslgate-policyd - the Postfix policy delegation server of saslgate.
 *
 * Start-up order: settings, bind every endpoint (as root if need be), detach,
 * pid file, drop privileges, open the policy store and the activity writer,
 * then serve from one libevent loop. Signals arrive through the loop:
 * SIGTERM/SIGINT stop accepting, answer what is in flight, flush activity and
 * exit 0; SIGHUP reopens the log and re-reads the config file.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <event2/event.h>

#include "alloc.h"
#include "activity.h"
#include "daemon.h"
#include "log.h"
#include "policyd.h"
#include "snapshot.h"
#include "source.h"
#include "store.h"
#include "store_pg.h"

#ifndef SASLGATE_VERSION
#define SASLGATE_VERSION "0.1.0"
#endif

#define EXIT_USAGE    2
#define GRACE_SECONDS 10 /* in-flight requests get this long after SIGTERM */

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: " POLICYD_PROGRAM " [-f] [-d DIR] [-c FILE] [-n] [-u USER] [-g GROUP]\n"
	        "                        [-o KEY=VALUE] -l ENDPOINT [-l ENDPOINT ...]\n"
	        "  -f           stay in the foreground, log to stderr\n"
	        "  -d DIR       store directory (default $SASLGATE_DIR or " STORE_DEFAULT_DIR ")\n"
	        "  --store URI  the policy in PostgreSQL (default $SASLGATE_STORE);\n"
	        "               DIR holds this host's cache of it\n"
	        "  -c FILE      read settings from FILE (\"key = value\" lines)\n"
	        "  -n           print the effective settings, check them and the store, exit\n"
	        "  -u USER      drop privileges to USER after binding\n"
	        "  -g GROUP     drop privileges to GROUP after binding\n"
	        "  -o KEY=VALUE set a setting (see saslgate-policyd(8))\n"
	        "  -l ENDPOINT  listen on unix:PATH, inet:HOST:PORT or inet:[IPV6]:PORT (Postfix\n"
	        "               policy protocol), http:HOST:PORT (Dovecot's auth policy)\n"
	        "  -h, --help   this text; -V, --version: the version\n");
}

/* "key=value" built from a short option, owned by the command line. */
static const char *pair(const char *key, const char *value)
{
	size_t n = strlen(key) + strlen(value) + 2;
	char *p = xmalloc(n);

	snprintf(p, n, "%s=%s", key, value);
	return p;
}

static void push(const char ***list, size_t *n, const char *item)
{
	*list = xrealloc(*list, (*n + 1) * sizeof(**list));
	(*list)[(*n)++] = item;
}

/* Returns -1 to continue, or the exit status. */
static int parse_args(int argc, char **argv, struct policyd_cmdline *cl, int *foreground,
                      int *check)
{
	static const struct option longopts[] = {{"help", no_argument, NULL, 'h'},
	                                         {"version", no_argument, NULL, 'V'},
	                                         {"store", required_argument, NULL, 'S'},
	                                         {NULL, 0, NULL, 0}};
	int ch;

	while ((ch = getopt_long(argc, argv, "fd:c:nu:g:o:l:hV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'f':
			*foreground = 1;
			break;
		case 'd':
			push(&cl->pairs, &cl->n_pairs, pair("store_dir", optarg));
			break;
		case 'S':
			push(&cl->pairs, &cl->n_pairs, pair("store", optarg));
			break;
		case 'c':
			cl->config_file = optarg;
			break;
		case 'n':
			*check = 1;
			break;
		case 'u':
			push(&cl->pairs, &cl->n_pairs, pair("user", optarg));
			break;
		case 'g':
			push(&cl->pairs, &cl->n_pairs, pair("group", optarg));
			break;
		case 'o':
			if (strchr(optarg, '=') == NULL) {
				fprintf(stderr, POLICYD_PROGRAM ": -o %s: expected KEY=VALUE\n",
				        optarg);
				return EXIT_USAGE;
			}
			push(&cl->pairs, &cl->n_pairs, xstrdup(optarg));
			break;
		case 'l':
			push(&cl->endpoints, &cl->n_endpoints, optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf(POLICYD_PROGRAM " " SASLGATE_VERSION "\n");
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, POLICYD_PROGRAM ": unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}
	return -1;
}

static const char *effective_store_dir(const struct settings *s)
{
	const char *dir = settings_str(s, "store_dir");

	return store_dir(*dir != '\0' ? dir : NULL);
}

/* The shared store (NULL: policy.db in the store directory). */
static const char *effective_store(const struct settings *s)
{
	return store_pg_location(settings_str(s, "store"));
}

/* -n: settings, endpoints, on_error_reply and the store. */
static int check_config(const struct settings *s)
{
	struct policyd_config cfg;
	struct sg_err err = {{0}};
	const char *cursor = settings_str(s, "listen");
	const char *dir = effective_store_dir(s);
	char spec[1024];
	struct source *src;
	struct snapshot *snap;
	int r, bad = 0;

	settings_print(s, stdout);
	while ((r = list_next(&cursor, spec, sizeof(spec))) != 0) {
		if (r < 0 || endpoint_check(spec, &err) < 0) {
			printf("error: %s\n", r < 0 ? "listen: endpoint too long" : err.text);
			bad = 1;
		}
	}
	if (policyd_config_derive(s, &cfg, &err) < 0) {
		printf("error: %s\n", err.text);
		bad = 1;
	}
	if (endpoint_check_access(s, &err) < 0) {
		printf("error: %s\n", err.text);
		bad = 1;
	}
	if (*settings_str(s, "user") != '\0' || *settings_str(s, "group") != '\0') {
		const char *user = settings_str(s, "user"), *group = settings_str(s, "group");
		uid_t uid;
		gid_t gid;

		if (daemon_lookup_ids(*user ? user : "root", *group ? group : NULL, &uid, &gid,
		                      &err) < 0) {
			printf("error: %s\n", err.text);
			bad = 1;
		}
	}
	src = source_open_store(dir, effective_store(s), POLICYD_PROGRAM, &err);
	if (src == NULL) {
		printf("error: store %s: %s\n", dir, err.text);
		return 1;
	}
	snap = source_acquire(src);
	printf("store %s: generation %lld, %zu policies, %zu exceptions, %zu locations\n", dir,
	       (long long)snapshot_generation(snap), snapshot_policy_count(snap),
	       snapshot_exception_count(snap), snapshot_location_count(snap));
	snapshot_unref(&snap);
	source_close(&src);
	if (bad)
		return 1;
	printf("OK\n");
	return 0;
}

static struct server server;

/* SIGTERM, SIGINT and SIGHUP are held from start-up until the event loop's
 * handlers for them are in place, so that a stop right after start is a
 * clean stop instead of the default action; threads started in between
 * (the activity writer) inherit the mask and never take them. */
static void hold_signals(int how)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(how, &set, NULL);
}

static void stop_cb(evutil_socket_t sig, short what, void *arg)
{
	struct server *srv = arg;
	struct timeval grace = {GRACE_SECONDS, 0};

	if (srv->stopping)
		return;
	log_info("received %s: stopping (%zu connection(s) open)", strsignal(sig), srv->n_conns);
	srv->stopping = 1;
	endpoints_pause(srv);
	conns_shutdown(srv);
	http_conns_close_all(srv);
	evtimer_add(srv->ev_grace, &grace);
	conns_maybe_finish(srv);
}

static void grace_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;

	log_warning("grace period over: closing %zu connection(s)", srv->n_conns);
	conns_close_all(srv);
	event_base_loopexit(srv->base, NULL);
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
	endpoints_resume(arg);
}

/* Keys that take effect on SIGHUP; everything else needs a restart. */
static int live_key(const char *key)
{
	static const char *const keys[] = {
	    "max_line_bytes",  "max_attributes",  "max_request_bytes",  "idle_timeout",
	    "request_timeout", "max_connections", "report_only_action", "on_error",
	    "on_error_reply",  "syslog_facility", "http_api_key",       NULL};

	for (size_t i = 0; keys[i] != NULL; i++) {
		if (strcmp(keys[i], key) == 0)
			return 1;
	}
	return 0;
}

static void open_log(const struct server *srv)
{
	int facility = LOG_MAIL;

	log_facility_parse(settings_str(&srv->settings, "syslog_facility"), &facility);
	log_open(POLICYD_PROGRAM, srv->foreground, facility);
}

static void reload(struct server *srv)
{
	struct settings fresh;
	struct policyd_config cfg;
	struct sg_err err = {{0}};

	if (policyd_settings_build(&srv->cmdline, &fresh, &err) < 0) {
		log_error("SIGHUP: keeping the current settings: %s", err.text);
		return;
	}
	if (policyd_config_derive(&fresh, &cfg, &err) < 0) {
		log_error("SIGHUP: keeping the current settings: %s", err.text);
		settings_free(&fresh);
		return;
	}
	for (size_t i = 0; i < SETTINGS_MAX && settings_table[i].key != NULL; i++) {
		const char *a = srv->settings.values[i], *b = fresh.values[i];

		if (!(settings_table[i].programs & SETTINGS_POLICYD) || a == NULL || b == NULL ||
		    strcmp(a, b) == 0)
			continue;
		if (settings_secret(settings_table[i].key)) {
			log_info("SIGHUP: %s changed", settings_table[i].key);
		} else if (live_key(settings_table[i].key)) {
			log_info("SIGHUP: %s = %s (was %s)", settings_table[i].key, b, a);
		} else {
			log_warning("SIGHUP: %s changed to %s: takes effect after a restart",
			            settings_table[i].key, b);
			free(fresh.values[i]);
			fresh.values[i] = xstrdup(a); /* what is in force stays visible */
		}
	}
	settings_free(&srv->settings);
	srv->settings = fresh;
	srv->cfg = cfg;
	open_log(srv);
}

static void hup_cb(evutil_socket_t sig, short what, void *arg)
{
	struct server *srv = arg;

	log_reopen();
	if (srv->cmdline.config_file != NULL)
		reload(srv);
	log_info("SIGHUP: log reopened%s", srv->cmdline.config_file ? ", settings re-read" : "");
}

/* Every heartbeat_interval: pick up store changes even without traffic and
 * report the source's state to the activity writer. */
static void heartbeat_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;

	gate_heartbeat(&srv->gate);
}

static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;

	conns_sweep(srv, conns_clock_ms());
}

static int setup_events(struct server *srv)
{
	int64_t hb = settings_int(&srv->settings, "heartbeat_interval");
	struct timeval tv = {(time_t)(hb > 0 ? hb : 5), 0}, one_second = {1, 0};

	srv->ev_term = evsignal_new(srv->base, SIGTERM, stop_cb, srv);
	srv->ev_int = evsignal_new(srv->base, SIGINT, stop_cb, srv);
	srv->ev_hup = evsignal_new(srv->base, SIGHUP, hup_cb, srv);
	srv->ev_grace = evtimer_new(srv->base, grace_cb, srv);
	srv->ev_resume = evtimer_new(srv->base, resume_cb, srv);
	srv->ev_heartbeat = event_new(srv->base, -1, EV_PERSIST, heartbeat_cb, srv);
	srv->ev_sweep = event_new(srv->base, -1, EV_PERSIST, sweep_cb, srv);
	srv->ev_iteration_end = event_new(srv->base, -1, 0, policyd_iteration_end, srv);
	if (!srv->ev_term || !srv->ev_int || !srv->ev_hup || !srv->ev_grace || !srv->ev_resume ||
	    !srv->ev_heartbeat || !srv->ev_sweep || !srv->ev_iteration_end)
		return -1;
	if (evsignal_add(srv->ev_term, NULL) < 0 || evsignal_add(srv->ev_int, NULL) < 0 ||
	    evsignal_add(srv->ev_hup, NULL) < 0 || event_add(srv->ev_heartbeat, &tv) < 0 ||
	    event_add(srv->ev_sweep, &one_second) < 0)
		return -1;
	hold_signals(SIG_UNBLOCK); /* a signal held since start-up is taken now */
	return 0;
}

static void free_events(struct server *srv)
{
	struct event **evs[] = {&srv->ev_term,  &srv->ev_int,           &srv->ev_hup,
	                        &srv->ev_grace, &srv->ev_resume,        &srv->ev_heartbeat,
	                        &srv->ev_sweep, &srv->ev_iteration_end, &srv->ev_http_adopt};

	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
		if (*evs[i] != NULL)
			event_free(*evs[i]);
		*evs[i] = NULL;
	}
}

static int open_activity(struct server *srv, const char *dir, const char *store, struct sg_err *err)
{
	struct activity_options ao;

	memset(&ao, 0, sizeof(ao));
	ao.dir = dir;
	ao.program = "policyd";
	ao.queue_max = (unsigned)settings_int(&srv->settings, "activity_queue_max");
	ao.flush_ms = (unsigned)settings_int(&srv->settings, "activity_flush_ms");
	ao.heartbeat_s = (unsigned)settings_int(&srv->settings, "heartbeat_interval");
	ao.nice = (int)settings_int(&srv->settings, "activity_nice");
	ao.retention_days = 0; /* a policy.db setting; the daemon does not apply it */
	ao.log_decisions = settings_bool(&srv->settings, "log_decisions");
	ao.host_name = settings_str(&srv->settings, "host_name");
	ao.fleet_store = store;
	ao.fleet_program = POLICYD_PROGRAM;
	ao.fleet_spool_max = (unsigned long)settings_int(&srv->settings, "fleet_spool_max");
	srv->gate.activity = activity_open(&ao, err);
	return srv->gate.activity != NULL ? 0 : -1;
}

/* Everything after the sockets are bound. Returns the exit status. */
static int serve(struct server *srv)
{
	struct sg_err err = {{0}};
	/* Copies: a SIGHUP replaces the settings these strings live in. */
	char *dir = xstrdup(effective_store_dir(&srv->settings));
	char *pid_file = xstrdup(settings_str(&srv->settings, "pid_file"));
	const char *store_setting = effective_store(&srv->settings);
	char *store = store_setting != NULL ? xstrdup(store_setting) : NULL;
	struct snapshot *snap;
	int status = 1;

	if (!srv->foreground && *pid_file == '\0') {
		free(pid_file);
		pid_file = xstrdup("/run/saslgate/" POLICYD_PROGRAM ".pid");
	}
	if (*pid_file != '\0' && daemon_pidfile_write(pid_file, &err) < 0)
		fatal("pid file: %s", err.text);
	if (daemon_drop_privileges(settings_str(&srv->settings, "user"),
	                           settings_str(&srv->settings, "group"), &err) < 0) {
		log_error("cannot drop privileges: %s", err.text);
		goto out_pid;
	}
	if (daemon_check_store_dir(dir, &err) < 0) {
		log_error("%s", err.text);
		goto out_pid;
	}
	snapshot_set_free_aside(1);
	srv->gate.source = source_open_store(dir, store, POLICYD_PROGRAM, &err);
	if (srv->gate.source == NULL) {
		log_error("policy store %s: %s", dir, err.text);
		goto out_pid;
	}
	if (open_activity(srv, dir, store, &err) < 0) {
		log_error("activity: %s", err.text);
		goto out_source;
	}
	srv->base = event_base_new();
	if (srv->base == NULL || setup_events(srv) < 0 || endpoints_listen(srv, &err) < 0) {
		log_error("cannot start the event loop%s%s", err.text[0] ? ": " : "", err.text);
		goto out_events;
	}
	heartbeat_cb(-1, 0, srv);
	snap = source_acquire(srv->gate.source);
	log_info("started: %zu endpoint(s), store %s, policy generation %lld", srv->n_endpoints,
	         dir, (long long)snapshot_generation(snap));
	snapshot_unref(&snap);
	event_base_dispatch(srv->base);
	status = 0;
	log_info("stopped");
out_events:
	conns_close_all(srv);
	if (srv->gate.activity != NULL)
		gate_heartbeat(&srv->gate); /* for the final heartbeat */
	policyd_release_snapshot(srv);
	endpoints_close(srv);
	free_events(srv);
	if (srv->base != NULL)
		event_base_free(srv->base);
	srv->base = NULL;
	free(srv->http_new);
	srv->http_new = NULL;
	activity_close(&srv->gate.activity);
out_source:
	source_close(&srv->gate.source);
out_pid:
	endpoints_close(srv); /* no-op if already closed; removes UNIX sockets */
	if (*pid_file != '\0')
		daemon_pidfile_remove(pid_file);
	free(pid_file);
	free(store);
	free(dir);
	return status;
}

int main(int argc, char **argv)
{
	struct server *srv = &server;
	struct sg_err err = {{0}};
	int check = 0, rc;

	rc = parse_args(argc, argv, &srv->cmdline, &srv->foreground, &check);
	if (rc >= 0)
		return rc;
	log_open(POLICYD_PROGRAM, 1, LOG_MAIL);
	if (policyd_settings_build(&srv->cmdline, &srv->settings, &err) < 0) {
		fprintf(stderr, POLICYD_PROGRAM ": %s\n", err.text);
		return 1;
	}
	if (check)
		return check_config(&srv->settings);
	hold_signals(SIG_BLOCK);
	if (policyd_config_derive(&srv->settings, &srv->cfg, &err) < 0)
		fatal("%s", err.text);
	srv->gate.fallback = &srv->cfg.fallback; /* a SIGHUP updates it in place */
	signal(SIGPIPE, SIG_IGN);
	if (!srv->foreground) {
		/* Catch a missing or broken store while stderr still reaches someone. */
		struct source *probe =
		    source_open_store(effective_store_dir(&srv->settings),
		                      effective_store(&srv->settings), POLICYD_PROGRAM, &err);

		if (probe == NULL)
			fatal("policy store %s: %s", effective_store_dir(&srv->settings), err.text);
		source_close(&probe);
	}
	if (endpoints_bind(srv, &err) < 0) {
		endpoints_close(srv);
		fatal("%s", err.text);
	}
	if (!srv->foreground) {
		if (daemon_detach(&err) < 0)
			fatal("cannot detach: %s", err.text);
		open_log(srv);
	} else {
		open_log(srv);
	}
	rc = serve(srv);
	settings_free(&srv->settings);
	return rc;
}
