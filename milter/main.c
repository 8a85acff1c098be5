/*
 * saslgate-milter - process plumbing: options and settings, the libmilter
 * socket (bound as root, mode and owner set explicitly), privilege drop,
 * detaching, the pid file, the activity writer and the heartbeat thread.
 *
 * SIGHUP, SIGTERM and SIGINT stop the milter (policy changes are picked up
 * by change detection, never by a signal). See run_listener() for how.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <libmilter/mfapi.h>

#include "activity.h"
#include "daemon.h"
#include "log.h"
#include "milter.h"
#include "settings.h"
#include "source.h"
#include "store.h"
#include "store_pg.h"

#ifndef SASLGATE_VERSION
#define SASLGATE_VERSION "0.1.0"
#endif

#define PROGRAM          "saslgate-milter"
#define DEFAULT_PID_DIR  "/run/saslgate"
#define DEFAULT_PID_FILE DEFAULT_PID_DIR "/" PROGRAM ".pid"
#define MAX_OVERRIDES    128

/* A command-line setting, applied after the config file in command-line order. */
struct override {
	const char *key; /* NULL: value is "key=value" (-o) */
	const char *value;
};

struct options {
	int foreground;
	int check;
	const char *config_file;
	struct override overrides[MAX_OVERRIDES];
	size_t n_overrides;
};

/* Settings resolved into the types the daemon uses. */
struct milter_settings {
	const char *socket;
	const char *socket_path; /* NULL for inet sockets */
	mode_t socket_mode;
	uid_t socket_uid; /* (uid_t)-1: unchanged */
	gid_t socket_gid;
	const char *store_dir;
	const char *store; /* PostgreSQL connection string, NULL: policy.db */
	const char *user, *group;
	const char *pid_file;
	int facility;
	struct gate_fallback fallback; /* on_error, on_error_reply */
	struct activity_options activity;
};

static void usage(FILE *out)
{
	fprintf(out, "usage: " PROGRAM " [-f] [-n] [-d DIR] [-c FILE] [-u USER] [-g GROUP]\n"
	             "                       [-o key=value]... -p SOCKET\n"
	             "  -p SOCKET  libmilter socket: unix:/path, local:/path, inet:port@host,\n"
	             "             inet6:port@host (setting \"socket\")\n"
	             "  -d DIR     store directory holding policy.db and activity.db\n"
	             "  --store URI  shared PostgreSQL store (setting \"store\", default\n"
	             "             $SASLGATE_STORE); DIR then holds this host's policy cache\n"
	             "  -c FILE    configuration file (\"key = value\" lines)\n"
	             "  -o K=V     set a setting (after the configuration file)\n"
	             "  -u USER    run as USER after binding; -g GROUP: and as GROUP\n"
	             "  -f         stay in the foreground and log to stderr\n"
	             "  -n         print the effective settings, check them and the store, exit\n"
	             "  -h         this help; -V: the version\n");
}

static void add_override(struct options *opt, const char *key, const char *value)
{
	if (opt->n_overrides == MAX_OVERRIDES)
		fatal("too many command-line settings (at most %d)", MAX_OVERRIDES);
	opt->overrides[opt->n_overrides].key = key;
	opt->overrides[opt->n_overrides].value = value;
	opt->n_overrides++;
}

static void parse_options(int argc, char **argv, struct options *opt)
{
	static const struct option longopts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {"store", required_argument, NULL, 'S'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	memset(opt, 0, sizeof(*opt));
	while ((c = getopt_long(argc, argv, "fnd:c:u:g:o:p:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			opt->foreground = 1;
			break;
		case 'n':
			opt->check = 1;
			break;
		case 'd':
			add_override(opt, "store_dir", optarg);
			break;
		case 'S':
			add_override(opt, "store", optarg);
			break;
		case 'c':
			opt->config_file = optarg;
			break;
		case 'u':
			add_override(opt, "user", optarg);
			break;
		case 'g':
			add_override(opt, "group", optarg);
			break;
		case 'o':
			add_override(opt, NULL, optarg);
			break;
		case 'p':
			add_override(opt, "socket", optarg);
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V': {
			unsigned major = 0, minor = 0, patch = 0;

			smfi_version(&major, &minor, &patch);
			printf(PROGRAM " " SASLGATE_VERSION " (libmilter %u.%u.%u)\n", major, minor,
			       patch);
			exit(0);
		}
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind < argc) {
		fprintf(stderr, PROGRAM ": unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		exit(2);
	}
}

static int load_settings(const struct options *opt, struct settings *s, struct sg_err *err)
{
	size_t i;

	settings_init(s, SETTINGS_MILTER);
	if (opt->config_file != NULL && settings_load_file(s, opt->config_file, err) != 0)
		return -1;
	for (i = 0; i < opt->n_overrides; i++) {
		const struct override *o = &opt->overrides[i];
		int rc = o->key ? settings_set(s, o->key, o->value, err)
		                : settings_set_pair(s, o->value, err);

		if (rc != 0)
			return -1;
	}
	return 0;
}

static int parse_mode(const char *text, mode_t *out, struct sg_err *err)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(text, &end, 8);
	if (errno != 0 || end == text || *end != '\0' || v < 0 || v > 07777)
		return sg_err_set(err, "socket_mode: \"%s\" is not an octal mode such as 0660",
		                  text);
	*out = (mode_t)v;
	return 0;
}

/* Resolves and validates every setting the daemon needs; the -n check. */
static int resolve_settings(const struct settings *s, struct milter_settings *m, struct sg_err *err)
{
	const char *v;

	memset(m, 0, sizeof(*m));
	m->socket = settings_str(s, "socket");
	if (m->socket == NULL || m->socket[0] == '\0')
		return sg_err_set(err, "socket: not set (use -p SOCKET)");
	m->socket_path = milter_socket_path(m->socket);
	if (m->socket_path == NULL && strncmp(m->socket, "inet:", 5) != 0 &&
	    strncmp(m->socket, "inet6:", 6) != 0)
		return sg_err_set(err,
		                  "socket: \"%s\" is not unix:/path, local:/path, inet:port@host "
		                  "or inet6:port@host",
		                  m->socket);
	if (m->socket_path != NULL && m->socket_path[0] != '/')
		return sg_err_set(err, "socket: \"%s\" needs an absolute path", m->socket);
	if (parse_mode(settings_str(s, "socket_mode"), &m->socket_mode, err) != 0)
		return -1;
	m->socket_uid = (uid_t)-1;
	m->socket_gid = (gid_t)-1;
	v = settings_str(s, "socket_owner");
	if (v[0] != '\0') {
		struct passwd *pw = getpwnam(v);

		if (pw == NULL)
			return sg_err_set(err, "socket_owner: no user \"%s\"", v);
		m->socket_uid = pw->pw_uid;
	}
	v = settings_str(s, "socket_group");
	if (v[0] != '\0') {
		struct group *gr = getgrnam(v);

		if (gr == NULL)
			return sg_err_set(err, "socket_group: no group \"%s\"", v);
		m->socket_gid = gr->gr_gid;
	}

	v = settings_str(s, "store_dir");
	m->store_dir = store_dir(v[0] ? v : NULL);
	m->store = store_pg_location(settings_str(s, "store"));
	if (m->store != NULL && store_pg_parse(m->store, err) < 0)
		return -1;
	m->user = settings_str(s, "user");
	m->group = settings_str(s, "group");
	if (m->user[0] != '\0') {
		uid_t uid;
		gid_t gid;

		if (daemon_lookup_ids(m->user, m->group[0] ? m->group : NULL, &uid, &gid, err) != 0)
			return -1;
	} else if (m->group[0] != '\0') {
		return sg_err_set(err, "group: set without user");
	}
	m->pid_file = settings_str(s, "pid_file");
	if (log_facility_parse(settings_str(s, "syslog_facility"), &m->facility) != 0)
		return sg_err_set(err, "syslog_facility: unknown facility \"%s\"",
		                  settings_str(s, "syslog_facility"));

	if (gate_fallback_from_settings(s, &m->fallback, err) != 0)
		return -1;

	m->activity.dir = m->store_dir;
	m->activity.program = "milter";
	m->activity.queue_max = (unsigned)settings_int(s, "activity_queue_max");
	m->activity.flush_ms = (unsigned)settings_int(s, "activity_flush_ms");
	m->activity.nice = (int)settings_int(s, "activity_nice");
	m->activity.heartbeat_s = (unsigned)settings_int(s, "heartbeat_interval");
	m->activity.retention_days = 0;
	m->activity.log_decisions = settings_bool(s, "log_decisions");
	m->activity.host_name = settings_str(s, "host_name");
	m->activity.fleet_store = m->store;
	m->activity.fleet_program = PROGRAM;
	m->activity.fleet_spool_max = (unsigned long)settings_int(s, "fleet_spool_max");
	return 0;
}

/* -n: settings, then the store as the daemon would open it. */
static int check_config(const struct settings *s, const struct milter_settings *m, int ok,
                        const struct sg_err *setting_err)
{
	struct sg_err err;
	struct source *src;
	struct snapshot *snap;

	settings_print(s, stdout);
	if (!ok) {
		fprintf(stderr, PROGRAM ": %s\n", setting_err->text);
		return 1;
	}
	printf("# macros requested at CONNECT: %s\n", filter_connect_macros);
	printf("# macros requested at MAIL: %s\n", filter_envfrom_macros);
	src = source_open_store(m->store_dir, m->store, PROGRAM, &err);
	if (src == NULL) {
		fprintf(stderr, PROGRAM ": %s\n", err.text);
		return 1;
	}
	snap = source_acquire(src);
	printf("# store %s: generation %lld, %zu policies, %zu exceptions, %zu locations\n",
	       m->store_dir, (long long)snapshot_generation(snap), snapshot_policy_count(snap),
	       snapshot_exception_count(snap), snapshot_location_count(snap));
	snapshot_unref(&snap);
	source_close(&src);
	return 0;
}

/*
 * libmilter starts a thread for every MTA connection with the default
 * attributes, so with the default 8 MiB stack glibc can keep only five
 * stacks for reuse (its cache holds 40 MiB): nearly every connection mapped
 * a fresh stack, faulted its pages in and unmapped it again, which cost
 * more than deciding. A decision, a snapshot rebuild of 100,000 exceptions
 * included, runs within 20 KiB; 256 KiB leaves a wide margin and lets 160
 * stacks be reused.
 */
static void set_thread_stack(int64_t kib)
{
	int rc = sg_set_default_thread_stack((size_t)kib);

	if (rc != 0)
		log_warning("milter_thread_stack %lld KiB not applied: %s", (long long)kib,
		            strerror(rc));
}

static void setup_socket(const struct milter_settings *m)
{
	if (smfi_setconn((char *)(uintptr_t)m->socket) != MI_SUCCESS)
		fatal("socket %s: smfi_setconn failed", m->socket);
	/* 1: remove a stale UNIX socket left by a previous run. */
	if (smfi_opensocket(1) != MI_SUCCESS)
		fatal("socket %s: cannot listen (in use, or bad address?)", m->socket);
	if (m->socket_path == NULL)
		return;
	if (chmod(m->socket_path, m->socket_mode) != 0)
		fatal("socket %s: chmod %04o: %s", m->socket_path, (unsigned)m->socket_mode,
		      strerror(errno));
	if ((m->socket_uid != (uid_t)-1 || m->socket_gid != (gid_t)-1) &&
	    chown(m->socket_path, m->socket_uid, m->socket_gid) != 0)
		fatal("socket %s: chown: %s", m->socket_path, strerror(errno));
}

/* Refuses to start while the pid file names a live process: a second
 * instance would otherwise replace the first one's socket before
 * daemon_pidfile_write() (after detaching) noticed. */
static void check_not_running(const char *pid_file)
{
	FILE *f;
	char line[32], *end;
	long pid = 0;

	if (pid_file == NULL || (f = fopen(pid_file, "r")) == NULL)
		return;
	if (fgets(line, sizeof(line), f) != NULL) {
		errno = 0;
		pid = strtol(line, &end, 10);
		if (errno != 0 || end == line || (*end != '\n' && *end != '\0'))
			pid = 0;
	}
	fclose(f);
	if (pid > 0 && pid != (long)getpid() && (kill((pid_t)pid, 0) == 0 || errno == EPERM))
		fatal("already running: %s names process %ld", pid_file, pid);
}

/* The default pid directory belongs to the daemon user so that it can remove
 * its pid file after dropping privileges. */
static void prepare_pid_dir(const struct milter_settings *m, const char *pid_file)
{
	uid_t uid;
	gid_t gid;
	struct sg_err err;

	if (pid_file == NULL || strcmp(pid_file, DEFAULT_PID_FILE) != 0)
		return;
	if (mkdir(DEFAULT_PID_DIR, 0755) != 0 && errno != EEXIST)
		fatal("%s: %s", DEFAULT_PID_DIR, strerror(errno));
	if (m->user[0] != '\0' && geteuid() == 0 &&
	    daemon_lookup_ids(m->user, m->group[0] ? m->group : NULL, &uid, &gid, &err) == 0 &&
	    chown(DEFAULT_PID_DIR, uid, gid) != 0)
		log_warning("%s: chown: %s", DEFAULT_PID_DIR, strerror(errno));
}

/* The heartbeat thread: gate_heartbeat() every interval_s, which also picks
 * up a committed change (or notices a broken store) when no mail arrives. */
struct heartbeat {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int stop;
	unsigned interval_s;
	const struct gate *gate;
};

static void *heartbeat_main(void *arg)
{
	struct heartbeat *hb = arg;
	struct timespec deadline;

	pthread_mutex_lock(&hb->lock);
	while (!hb->stop) {
		pthread_mutex_unlock(&hb->lock);
		gate_heartbeat(hb->gate);
		pthread_mutex_lock(&hb->lock);
		clock_gettime(CLOCK_MONOTONIC, &deadline);
		deadline.tv_sec += hb->interval_s;
		while (!hb->stop && pthread_cond_timedwait(&hb->cond, &hb->lock, &deadline) == 0)
			;
	}
	pthread_mutex_unlock(&hb->lock);
	return NULL;
}

static void heartbeat_start(struct heartbeat *hb)
{
	pthread_condattr_t attr;
	int rc;

	pthread_mutex_init(&hb->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&hb->cond, &attr);
	pthread_condattr_destroy(&attr);
	hb->stop = 0;
	rc = pthread_create(&hb->thread, NULL, heartbeat_main, hb);
	if (rc != 0)
		fatal("cannot start the heartbeat thread: %s", strerror(rc));
}

static void heartbeat_stop(struct heartbeat *hb)
{
	pthread_mutex_lock(&hb->lock);
	hb->stop = 1;
	pthread_cond_signal(&hb->cond);
	pthread_mutex_unlock(&hb->lock);
	pthread_join(hb->thread, NULL);
	pthread_cond_destroy(&hb->cond);
	pthread_mutex_destroy(&hb->lock);
}

/* The signals that stop the milter. */
static void stop_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
}

/* Threads started from here on inherit this mask: the stop signals are only
 * ever taken by the main thread (run_listener()), never by a worker. */
static void block_stop_signals(void)
{
	sigset_t set;

	stop_signals(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/*
 * smfi_main() runs on a thread of its own, and the main thread takes the
 * stop signals. libmilter waits for them too, with sigwait() on a thread it
 * starts, and on a stop request it sets its stop flag, but its accept loop
 * polls the listening socket holding a lock, for up to 5 seconds at a time,
 * and looks at the flag only between polls: stopping took up to 5 s.
 *
 * So the main thread alone has the stop signals unblocked, with a handler
 * that writes the signal's number into a pipe (every other thread inherits
 * them blocked). Linux gives a signal sent to the process to its main thread
 * whenever that thread can take it, so libmilter's sigwait() does not see
 * it. A signal that came while the milter was starting was held (blocked):
 * the listener thread calls smfi_main(), which starts libmilter's thread,
 * only after run_listener() has unblocked it and so taken it, and not at all
 * if it was there. (With sigwait() in the main thread, a signal held until
 * then went to whichever thread called sigwait() first, and libmilter's,
 * taking it while smfi_main() set itself up, made it fail: exit status 1,
 * under load a few times in 50 early stops.) The main thread then asks libmilter to stop
 * (smfi_stop(), on a detached thread, as the call waits for that lock) and
 * interrupts the accept loop's poll with LISTENER_WAKE, whose handler does
 * nothing, until smfi_main() returns; the listener thread writes 0 into the
 * pipe when it does.
 *
 * smfi_stop() closes the listening socket. libmilter expects that to happen
 * only while its accept loop runs, and reports a failure otherwise:
 * - before the loop, smfi_main() sets up its signal thread (initialising the
 *   mutex smfi_stop() takes) and, finding the socket closed, opens it again;
 *   as root a UNIX socket's file is still there, the bind fails and
 *   smfi_main() returns MI_FAILURE;
 * - inside the loop, between reading the stop flag and taking its lock, it
 *   finds the socket closed and returns MI_FAILURE ("listenfd corrupted").
 * So a stop is requested only once the listener thread has run for
 * STARTUP_GRACE_MS (its set-up takes well under a millisecond), the first
 * wake-up waits until smfi_stop() has had time to set the flag, and a
 * failure that smfi_main() reports after this process asked it to stop is
 * the stop's own doing, not an error: see listener_exit_status().
 */
#define LISTENER_WAKE    (SIGRTMIN + 3)
#define STARTUP_GRACE_MS 100
#define WAKE_PAUSE_MS    20

static int stop_pipe[2] = {-1, -1}; /* the handler writes, run_listener() reads */

struct listener {
	pthread_t thread;
	int rc;
	atomic_int go;              /* 1: call smfi_main(); 2: a stop came first, do not */
	atomic_int running;         /* set by the listener thread before smfi_main() */
	struct timespec started_at; /* CLOCK_MONOTONIC, when running was set */
	atomic_int done;
};

static void listener_wake_handler(int sig)
{
	(void)sig;
}

/* Async-signal-safe: one byte, the signal's number, into the pipe. */
static void stop_handler(int sig)
{
	int saved = errno;
	unsigned char b = (unsigned char)sig;

	if (write(stop_pipe[1], &b, 1) < 0) {
		/* full: a stop is already waiting to be read */
	}
	errno = saved;
}

static void pause_ms(long ms);

static void *listener_main(void *arg)
{
	struct listener *l = arg;
	unsigned char zero = 0;

	while (atomic_load(&l->go) == 0)
		pause_ms(1);
	clock_gettime(CLOCK_MONOTONIC, &l->started_at);
	atomic_store(&l->running, 1);
	l->rc = atomic_load(&l->go) == 1 ? smfi_main() : MI_SUCCESS;
	atomic_store(&l->done, 1);
	if (write(stop_pipe[1], &zero, 1) < 0) { /* the main thread may wait for it */
	}
	return NULL;
}

static void *stopper_main(void *arg)
{
	(void)arg;
	smfi_stop();
	return NULL;
}

static void pause_ms(long ms)
{
	struct timespec pause = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&pause, &pause) != 0 && errno == EINTR)
		;
}

static long ms_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long)(now.tv_sec - t->tv_sec) * 1000 + (now.tv_nsec - t->tv_nsec) / 1000000L;
}

/* Returns once smfi_main() has had STARTUP_GRACE_MS to set itself up (or
 * has returned). */
static void await_listener_setup(struct listener *l)
{
	long ran;

	while (!atomic_load(&l->running) && !atomic_load(&l->done))
		pause_ms(1);
	if (atomic_load(&l->done))
		return;
	ran = ms_since(&l->started_at);
	if (ran < STARTUP_GRACE_MS)
		pause_ms(STARTUP_GRACE_MS - ran);
}

static void request_stop(struct listener *l)
{
	pthread_t stopper;

	await_listener_setup(l);
	if (atomic_load(&l->done))
		return;
	if (pthread_create(&stopper, NULL, stopper_main, NULL) == 0)
		pthread_detach(stopper);
	while (!atomic_load(&l->done)) {
		pause_ms(WAKE_PAUSE_MS);
		pthread_kill(l->thread, LISTENER_WAKE);
	}
}

/* The exit status for smfi_main()'s result: a failure after a stop this
 * process asked for is how libmilter reports its closed socket (above). */
static int listener_exit_status(int rc, int stop_requested)
{
	if (rc == MI_SUCCESS)
		return 0;
	if (stop_requested) {
		log_info("libmilter reported its listening socket closed by the stop");
		return 0;
	}
	log_error("libmilter stopped listening on its own (MI_FAILURE): see its syslog "
	          "messages (facility mail)");
	return 1;
}

/* The stop handler and the wake-up handler. */
static void install_handlers(void)
{
	struct sigaction sa;
	sigset_t set;

	if (pipe2(stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
		fatal("pipe: %s", strerror(errno));
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = listener_wake_handler; /* no SA_RESTART: poll() returns EINTR */
	sigemptyset(&sa.sa_mask);
	if (sigaction(LISTENER_WAKE, &sa, NULL) != 0)
		fatal("sigaction: %s", strerror(errno));
	sa.sa_handler = stop_handler;
	stop_signals(&set);
	sa.sa_mask = set;
	if (sigaction(SIGHUP, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0 ||
	    sigaction(SIGINT, &sa, NULL) != 0)
		fatal("sigaction: %s", strerror(errno));
}

/* The next byte of the pipe: a signal's number, or 0 when smfi_main()
 * returned; -1 at once if there is none and wait is 0. */
static int next_event(int wait)
{
	struct pollfd pfd = {.fd = stop_pipe[0], .events = POLLIN};
	unsigned char b;

	for (;;) {
		if (read(stop_pipe[0], &b, 1) == 1)
			return b;
		if (!wait)
			return -1;
		if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
			fatal("poll: %s", strerror(errno));
	}
}

/* Runs smfi_main() until it returns or a stop signal arrives; returns the
 * exit status. */
static int run_listener(void)
{
	struct listener l = {.rc = MI_FAILURE};
	sigset_t set;
	int sig, stop_requested = 0;

	install_handlers();
	if (pthread_create(&l.thread, NULL, listener_main, &l) != 0)
		fatal("cannot start the listener thread");
	/* Unblocked here, a signal held since start-up is handled before the
	 * listener thread may call smfi_main() (and start libmilter's signal
	 * thread, which takes what it finds pending): then it never does. */
	stop_signals(&set);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL); /* the main thread's alone */
	sig = next_event(0);
	atomic_store(&l.go, sig > 0 ? 2 : 1);
	if (sig <= 0)
		sig = next_event(1);
	if (sig != 0 && !atomic_load(&l.done)) {
		log_info("stopping on signal %d", sig);
		stop_requested = 1;
		request_stop(&l);
	}
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	pthread_join(l.thread, NULL);
	return listener_exit_status(l.rc, stop_requested);
}

int main(int argc, char **argv)
{
	struct options opt;
	struct settings settings;
	struct milter_settings m;
	struct sg_err err;
	struct source *src;
	struct heartbeat hb;
	struct gate gate;
	const char *pid_file;
	int ok, rc, status;

	parse_options(argc, argv, &opt);
	if (load_settings(&opt, &settings, &err) != 0) {
		fprintf(stderr, PROGRAM ": %s\n", err.text);
		settings_free(&settings);
		return opt.check ? 1 : 2;
	}
	ok = resolve_settings(&settings, &m, &err) == 0;
	if (opt.check || !ok) {
		rc = opt.check ? check_config(&settings, &m, ok, &err) : 2;
		if (!opt.check)
			fprintf(stderr, PROGRAM ": %s\n", err.text);
		settings_free(&settings);
		return rc;
	}

	block_stop_signals(); /* before the first log line: from here on a stop is clean */
	log_open(PROGRAM, 1, m.facility);
	pid_file = m.pid_file[0] ? m.pid_file : (opt.foreground ? NULL : DEFAULT_PID_FILE);

	if (filter_register(&err) != 0)
		fatal("%s", err.text);
	smfi_settimeout((int)settings_int(&settings, "milter_timeout"));
	smfi_setbacklog((int)settings_int(&settings, "milter_backlog"));
	check_not_running(pid_file);
	setup_socket(&m);
	prepare_pid_dir(&m, pid_file);
	if (daemon_drop_privileges(m.user, m.group[0] ? m.group : NULL, &err) != 0)
		fatal("%s", err.text);
	if (daemon_check_store_dir(m.store_dir, &err) != 0)
		fatal("%s", err.text);

	/* Open the store as the daemon user, so that a problem shows on the
	 * terminal; a detached child reopens it (no SQLite handle crosses fork). */
	snapshot_set_free_aside(1);
	src = source_open_store(m.store_dir, m.store, PROGRAM, &err);
	if (src == NULL)
		fatal("%s", err.text);
	if (!opt.foreground) {
		source_close(&src);
		if (daemon_detach(&err) != 0)
			fatal("%s", err.text);
		log_open(PROGRAM, 0, m.facility);
		src = source_open_store(m.store_dir, m.store, PROGRAM, &err);
		if (src == NULL)
			fatal("%s", err.text);
	}
	if (pid_file != NULL && daemon_pidfile_write(pid_file, &err) != 0)
		fatal("%s", err.text);

	gate.source = src;
	gate.activity = activity_open(&m.activity, &err);
	gate.fallback = &m.fallback;
	if (gate.activity == NULL)
		fatal("%s", err.text);
	filter_configure(&gate);
	memset(&hb, 0, sizeof(hb));
	hb.interval_s = m.activity.heartbeat_s;
	hb.gate = &gate;
	heartbeat_start(&hb);

	set_thread_stack(settings_int(&settings, "milter_thread_stack"));
	log_info("listening on %s (store %s)", m.socket, m.store_dir);
	status = run_listener();
	log_info("stopped listening");

	heartbeat_stop(&hb);
	gate_heartbeat(&gate); /* for the final heartbeat */
	activity_close(&gate.activity);
	source_close(&src);
	if (pid_file != NULL)
		daemon_pidfile_remove(pid_file);
	if (m.socket_path != NULL && unlink(m.socket_path) != 0 && errno != ENOENT)
		log_warning("%s: cannot remove: %s", m.socket_path, strerror(errno));
	settings_free(&settings);
	return status;
}
