/*
 * milter_load - a load generator speaking the MTA side of the milter protocol
 * (version 6): N concurrent connections, each running whole sessions
 * back to back: OPTNEG, CONNECT with the connect macros, MAIL with the MAIL
 * macros ({auth_type}, {auth_authen}, i), QUIT; USERS users (default 10,000),
 * each always on the same /24 network. Reports sessions per second
 * and the session latency (p50, p99, max), plus the replies seen.
 *
 * usage: milter_load -p SOCKET [-c CONNECTIONS] [-d SECONDS | -n SESSIONS]
 *                    [-u USERS] [-l LEGACY_PERCENT]
 * SOCKET: unix:/path, local:/path, /path or inet:port@host.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "loadgen.h"

struct load_config {
	const char *socket_spec;
	unsigned connections;
	double seconds;
	uint64_t sessions; /* 0: run for seconds */
	unsigned users;
	unsigned legacy_percent;
	struct sockaddr_storage addr;
	socklen_t addrlen;
};

enum reply_kind { R_ACCEPT, R_CONTINUE, R_REJECT, R_TEMPFAIL, R_REPLYCODE, R_OTHER, R_COUNT };

struct worker {
	pthread_t thread;
	unsigned index;
	const struct load_config *cfg;
	struct lg_latencies lat; /* whole sessions */
	uint64_t replies[R_COUNT];
	uint64_t errors;
	uint32_t rng;
};

static atomic_uint_fast64_t started_sessions;
static double deadline;

static int parse_socket(const char *spec, struct load_config *cfg)
{
	const char *path = NULL;

	if (strncmp(spec, "unix:", 5) == 0)
		path = spec + 5;
	else if (strncmp(spec, "local:", 6) == 0)
		path = spec + 6;
	else if (spec[0] == '/')
		path = spec;
	if (path != NULL) {
		struct sockaddr_un *sun = (struct sockaddr_un *)&cfg->addr;

		if (strlen(path) >= sizeof(sun->sun_path))
			return -1;
		sun->sun_family = AF_UNIX;
		strcpy(sun->sun_path, path);
		cfg->addrlen = sizeof(*sun);
		return 0;
	}
	if (strncmp(spec, "inet:", 5) == 0 || strncmp(spec, "inet6:", 6) == 0) {
		char port[16], host[256];
		const char *p = strchr(spec, ':') + 1;
		const char *at = strchr(p, '@');
		struct addrinfo hints, *res;

		if (at == NULL || (size_t)(at - p) >= sizeof(port) ||
		    strlen(at + 1) >= sizeof(host))
			return -1;
		memcpy(port, p, (size_t)(at - p));
		port[at - p] = '\0';
		strcpy(host, at + 1);
		memset(&hints, 0, sizeof(hints));
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_family = spec[4] == '6' ? AF_INET6 : AF_INET;
		if (getaddrinfo(host, port, &hints, &res) != 0)
			return -1;
		memcpy(&cfg->addr, res->ai_addr, res->ai_addrlen);
		cfg->addrlen = res->ai_addrlen;
		freeaddrinfo(res);
		return 0;
	}
	return -1;
}

/* Appends one packet (length, command, data) to buf at *off. */
static void put_packet(char *buf, size_t *off, char cmd, const char *data, size_t len)
{
	uint32_t n = htonl((uint32_t)len + 1);

	memcpy(buf + *off, &n, 4);
	buf[*off + 4] = cmd;
	memcpy(buf + *off + 5, data, len);
	*off += 5 + len;
}

/* Appends NUL-terminated strings to data. */
static size_t put_strings(char *data, size_t off, const char *const *strings, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		size_t len = strlen(strings[i]) + 1;

		memcpy(data + off, strings[i], len);
		off += len;
	}
	return off;
}

static int read_full(int fd, char *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t r = read(fd, buf + got, len - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

static int write_full(int fd, const char *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t w = write(fd, buf + done, len - done);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		done += (size_t)w;
	}
	return 0;
}

/* Reads one reply packet; returns its command byte or -1. */
static int read_reply(int fd)
{
	char hdr[5], body[4096];
	uint32_t len;

	if (read_full(fd, hdr, 5) != 0)
		return -1;
	memcpy(&len, hdr, 4);
	len = ntohl(len);
	if (len < 1 || len - 1 > sizeof(body) || read_full(fd, body, len - 1) != 0)
		return -1;
	return (unsigned char)hdr[4];
}

static enum reply_kind reply_kind(int cmd)
{
	switch (cmd) {
	case 'a':
		return R_ACCEPT;
	case 'c':
		return R_CONTINUE;
	case 'r':
		return R_REJECT;
	case 't':
		return R_TEMPFAIL;
	case 'y':
		return R_REPLYCODE;
	default:
		return R_OTHER;
	}
}

static uint32_t next_random(uint32_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 17;
	*state ^= *state << 5;
	return *state;
}

/* One session; 0 or -1 (connection or protocol failure). */
static int run_session(struct worker *w, uint64_t seq)
{
	const struct load_config *cfg = w->cfg;
	char buf[2048], data[1024], user[64], qid[32], ip[32], sender[80];
	size_t off = 0, dlen;
	uint32_t r = next_random(&w->rng);
	const char *mech = (r % 100) < cfg->legacy_percent ? "PLAIN" : "XOAUTH2";
	uint32_t optneg[3] = {htonl(6), htonl(0x1FF), htonl(0x1FFFFF)};
	unsigned u = (r >> 8) % cfg->users;
	int fd, cmd, rc = -1;

	snprintf(user, sizeof(user), "user%u@example.test", u);
	snprintf(qid, sizeof(qid), "L%llX", (unsigned long long)seq);
	/* a user comes from one network (as in bench/policyd_load) */
	snprintf(ip, sizeof(ip), "198.51.%u.%u", u % 256, r % 254 + 1);
	snprintf(sender, sizeof(sender), "<%s>", user);

	fd = socket(cfg->addr.ss_family, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (const struct sockaddr *)&cfg->addr, cfg->addrlen) != 0)
		goto out;

	put_packet(buf, &off, 'O', (const char *)optneg, sizeof(optneg));
	if (write_full(fd, buf, off) != 0 || read_reply(fd) != 'O')
		goto out;

	off = 0;
	{
		const char *const cm[] = {"{daemon_name}", "submission", "{daemon_port}", "587"};
		uint16_t port = htons(40000);

		data[0] = 'C';
		dlen = put_strings(data, 1, cm, 4);
		put_packet(buf, &off, 'D', data, dlen);
		dlen = put_strings(data, 0, (const char *const[]){"client.example.test"}, 1);
		data[dlen++] = '4';
		memcpy(data + dlen, &port, 2);
		dlen += 2;
		dlen = put_strings(data, dlen, (const char *const[]){ip}, 1);
		put_packet(buf, &off, 'C', data, dlen);
	}
	if (write_full(fd, buf, off) != 0 || (cmd = read_reply(fd)) < 0)
		goto out;
	if (cmd != 'c') {
		w->replies[reply_kind(cmd)]++;
		rc = 0;
		goto out;
	}

	off = 0;
	{
		const char *const mm[] = {"i", qid, "{auth_type}", mech, "{auth_authen}", user};

		data[0] = 'M';
		dlen = put_strings(data, 1, mm, 6);
		put_packet(buf, &off, 'D', data, dlen);
		dlen = put_strings(data, 0, (const char *const[]){sender}, 1);
		put_packet(buf, &off, 'M', data, dlen);
	}
	if (write_full(fd, buf, off) != 0 || (cmd = read_reply(fd)) < 0)
		goto out;
	w->replies[reply_kind(cmd)]++;
	off = 0;
	put_packet(buf, &off, 'Q', NULL, 0);
	(void)write_full(fd, buf, off);
	rc = 0;
out:
	close(fd);
	return rc;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	const struct load_config *cfg = w->cfg;

	for (;;) {
		uint64_t seq = atomic_fetch_add(&started_sessions, 1);
		double t0;
		uint32_t us;

		if (cfg->sessions ? seq >= cfg->sessions : lg_now_s() >= deadline)
			break;
		t0 = lg_now_s();
		if (run_session(w, seq) != 0) {
			w->errors++;
			continue;
		}
		us = (uint32_t)((lg_now_s() - t0) * 1e6);
		lg_record(&w->lat, us, "realloc");
	}
	return NULL;
}

static void usage(void)
{
	fprintf(stderr, "usage: milter_load -p SOCKET [-c CONNECTIONS] [-d SECONDS | -n SESSIONS]\n"
	                "                   [-u USERS] [-l LEGACY_PERCENT]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct load_config cfg = {
	    .connections = 50, .seconds = 5, .users = 10000, .legacy_percent = 50};
	struct worker *workers;
	uint64_t replies[R_COUNT] = {0}, errors = 0;
	struct lg_latencies all = {0};
	size_t i, k;
	double start, elapsed;
	int c;

	while ((c = getopt(argc, argv, "p:c:d:n:u:l:")) != -1) {
		switch (c) {
		case 'p':
			cfg.socket_spec = optarg;
			break;
		case 'c':
			cfg.connections = (unsigned)atoi(optarg);
			break;
		case 'd':
			cfg.seconds = atof(optarg);
			break;
		case 'n':
			cfg.sessions = strtoull(optarg, NULL, 10);
			break;
		case 'u':
			cfg.users = (unsigned)atoi(optarg);
			break;
		case 'l':
			cfg.legacy_percent = (unsigned)atoi(optarg);
			break;
		default:
			usage();
		}
	}
	if (cfg.socket_spec == NULL || cfg.connections == 0 || cfg.users == 0 ||
	    cfg.legacy_percent > 100)
		usage();
	if (parse_socket(cfg.socket_spec, &cfg) != 0) {
		fprintf(stderr, "milter_load: bad socket %s\n", cfg.socket_spec);
		return 2;
	}
	workers = calloc(cfg.connections, sizeof(*workers));
	if (workers == NULL)
		return 1;
	start = lg_now_s();
	deadline = start + cfg.seconds;
	for (i = 0; i < cfg.connections; i++) {
		workers[i].index = (unsigned)i;
		workers[i].cfg = &cfg;
		workers[i].rng = 0x9E3779B9u * (uint32_t)(i + 1);
		if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0) {
			perror("pthread_create");
			return 1;
		}
	}
	for (i = 0; i < cfg.connections; i++) {
		pthread_join(workers[i].thread, NULL);
		errors += workers[i].errors;
		for (k = 0; k < R_COUNT; k++)
			replies[k] += workers[i].replies[k];
	}
	elapsed = lg_now_s() - start;
	for (i = 0; i < cfg.connections; i++) {
		if (lg_append(&all, &workers[i].lat) < 0)
			return 1;
		lg_latencies_free(&workers[i].lat);
	}
	lg_sort(&all);
	printf("socket=%s connections=%u sessions=%zu errors=%llu seconds=%.2f "
	       "sessions_per_s=%.0f p50_us=%u p99_us=%u max_us=%u "
	       "accept=%llu continue=%llu replycode=%llu reject=%llu tempfail=%llu other=%llu\n",
	       cfg.socket_spec, cfg.connections, all.n, (unsigned long long)errors, elapsed,
	       (double)all.n / elapsed, lg_percentile_floor(&all, 0.50),
	       lg_percentile_floor(&all, 0.99), lg_max(&all), (unsigned long long)replies[R_ACCEPT],
	       (unsigned long long)replies[R_CONTINUE], (unsigned long long)replies[R_REPLYCODE],
	       (unsigned long long)replies[R_REJECT], (unsigned long long)replies[R_TEMPFAIL],
	       (unsigned long long)replies[R_OTHER]);
	lg_latencies_free(&all);
	free(workers);
	return errors ? 1 : 0;
}
