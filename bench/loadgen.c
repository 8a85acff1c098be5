/*
 * loadgen - the shared part of the benchmark load generators (loadgen.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "loadgen.h"

uint64_t lg_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double lg_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

uint64_t lg_rnd(uint64_t *state)
{
	*state ^= *state >> 12;
	*state ^= *state << 25;
	*state ^= *state >> 27;
	return *state * 2685821657736338717ull;
}

size_t lg_dovecot_login(char *out, size_t cap, uint64_t *rng, unsigned users)
{
	static const char *const modern[] = {"XOAUTH2", "OAUTHBEARER"};
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	unsigned r = (unsigned)(lg_rnd(rng) % 100);
	unsigned p = (unsigned)(lg_rnd(rng) % 100);
	unsigned user = (unsigned)(lg_rnd(rng) % (uint64_t)users);
	const char *mech = r < 70 ? modern[lg_rnd(rng) & 1] : r < 95 ? "PLAIN" : "LOGIN";
	const char *protocol = p < 80 ? "imap" : p < 95 ? "pop3" : "smtp";
	char session[17] = "";
	uint64_t bits = lg_rnd(rng);
	unsigned last;
	int tls;

	/* Dovecot's session ids: 12 random bytes in base64; Postfix's SASL
	 * requests through Dovecot have none. */
	if (p < 95) {
		for (int i = 0; i < 16; i++) {
			session[i] = b64[bits & 63];
			bits = i == 9 ? lg_rnd(rng) : bits >> 6;
		}
		session[16] = '\0';
	}
	last = (unsigned)(lg_rnd(rng) % 250) + 1;
	tls = lg_rnd(rng) % 10 != 0;
	return (size_t)snprintf(
	    out, cap,
	    "{\"login\":\"user%u@example.test\",\"mech\":\"%s\",\"protocol\":\"%s\","
	    "\"remote\":\"10.%u.%u.%u\",\"session_id\":\"%s\",\"tls\":%s",
	    user, mech, protocol, user % 200, (user / 200) % 250, last, session,
	    tls ? "true" : "false");
}

static int reserve(struct lg_latencies *l, size_t n)
{
	size_t cap = l->cap ? l->cap : 65536;
	uint32_t *us;

	if (n <= l->cap)
		return 0;
	while (cap < n)
		cap *= 2;
	if ((us = realloc(l->us, cap * sizeof(*us))) == NULL)
		return -1;
	l->us = us;
	l->cap = cap;
	return 0;
}

void lg_record(struct lg_latencies *l, uint32_t us, const char *prog)
{
	if (reserve(l, l->n + 1) < 0) {
		perror(prog);
		exit(1);
	}
	l->us[l->n++] = us;
}

int lg_append(struct lg_latencies *l, const struct lg_latencies *from)
{
	if (from->n == 0)
		return 0;
	if (reserve(l, l->n + from->n) < 0)
		return -1;
	memcpy(l->us + l->n, from->us, from->n * sizeof(*l->us));
	l->n += from->n;
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

void lg_sort(struct lg_latencies *l)
{
	if (l->n > 0)
		qsort(l->us, l->n, sizeof(*l->us), cmp_u32);
}

uint32_t lg_percentile(const struct lg_latencies *sorted, double p)
{
	if (sorted->n == 0)
		return 0;
	return sorted->us[(size_t)(p * (double)(sorted->n - 1) + 0.5)];
}

uint32_t lg_percentile_floor(const struct lg_latencies *sorted, double p)
{
	if (sorted->n == 0)
		return 0;
	return sorted->us[(size_t)((double)sorted->n * p)];
}

uint32_t lg_max(const struct lg_latencies *sorted)
{
	return sorted->n ? sorted->us[sorted->n - 1] : 0;
}

void lg_latencies_free(struct lg_latencies *l)
{
	free(l->us);
	memset(l, 0, sizeof(*l));
}

void lg_record_reply(struct lg_worker *w, const struct lg_conn *c)
{
	lg_record(&w->lat, (uint32_t)((lg_now_ns() - c->sent_ns) / 1000u), w->load->proto->name);
}

int lg_worker_init(struct lg_worker *w, const struct lg_load *load, int i, void *arg)
{
	memset(w, 0, sizeof(*w));
	w->load = load;
	w->arg = arg;
	w->n_conns = load->connections / load->threads + (i < load->connections % load->threads);
	w->conns = calloc((size_t)w->n_conns, load->conn_size);
	return w->conns == NULL ? -1 : 0;
}

void lg_worker_free(struct lg_worker *w)
{
	lg_latencies_free(&w->lat);
	free(w->conns);
	w->conns = NULL;
}

static struct lg_conn *conn_at(const struct lg_worker *w, int i)
{
	return (struct lg_conn *)((char *)w->conns + (size_t)i * w->load->conn_size);
}

/* Writes what is pending; -1 on a broken connection. */
static int flush_out(struct lg_conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);

		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n <= 0)
			return -1;
		c->out_off += (size_t)n;
	}
	return 0;
}

/* Builds the next request on c and writes what the socket takes. */
static int send_request(struct lg_worker *w, struct lg_conn *c)
{
	w->load->proto->build(w->arg, c);
	c->out_off = 0;
	c->sent_ns = lg_now_ns();
	return flush_out(c);
}

/* Connects every connection and sends its first request. Returns how many
 * requests are outstanding, or -1 if a connection could not be made. */
static int open_all(struct lg_worker *w, int ep)
{
	int outstanding = 0;

	for (int i = 0; i < w->n_conns; i++) {
		struct lg_conn *c = conn_at(w, i);
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};

		c->fd = w->load->proto->connect(w->arg);
		if (c->fd < 0) {
			fprintf(stderr, "%s: connect %s: %s\n", w->load->proto->name,
			        w->load->endpoint, strerror(errno));
			w->failed = 1;
			return -1;
		}
		if (fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK) < 0) {
			w->failed = 1;
			return -1;
		}
		epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
		if (send_request(w, c) < 0) {
			w->errors++;
			continue;
		}
		outstanding++;
	}
	return outstanding;
}

/* Handles the events of c: 1 a reply completed, 0 not yet, -1 broken. */
static int on_event(struct lg_worker *w, int ep, struct lg_conn *c, uint32_t events, int measuring,
                    int sending)
{
	int r;

	if (events & EPOLLOUT) {
		if (flush_out(c) < 0)
			return -1;
		if (c->out_off == c->out_len) {
			struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};

			epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
		}
	}
	if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return 0;
	r = w->load->proto->readable(w->arg, c, measuring);
	if (r <= 0 || !sending)
		return r;
	if (send_request(w, c) < 0)
		return -1;
	if (c->out_off < c->out_len) {
		struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};

		epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
	}
	return 1;
}

void lg_worker_run(struct lg_worker *w)
{
	int ep = epoll_create1(0);
	struct epoll_event evs[256];
	uint64_t start = lg_now_ns();
	uint64_t measure_from = start + (uint64_t)(w->load->warmup * 1e9);
	uint64_t stop_at = measure_from + (uint64_t)(w->load->seconds * 1e9);
	int outstanding = open_all(w, ep);

	if (outstanding < 0)
		return;
	while (outstanding > 0) {
		uint64_t t = lg_now_ns();
		int sending = t < stop_at;
		int measuring = t >= measure_from && (sending || w->load->proto->measure_drain);
		int n;

		if (!sending && t > stop_at + 5000000000ull) {
			fprintf(stderr, "%s: %d replies missing after 5s\n", w->load->proto->name,
			        outstanding);
			w->errors += (uint64_t)outstanding;
			break;
		}
		n = epoll_wait(ep, evs, 256, 100);
		for (int i = 0; i < n; i++) {
			struct lg_conn *c = evs[i].data.ptr;
			int r;

			if (c->fd < 0)
				continue;
			r = on_event(w, ep, c, evs[i].events, measuring, sending);
			if (r > 0 && !sending)
				outstanding--;
			if (r >= 0)
				continue;
			w->errors++;
			outstanding--;
			epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
			close(c->fd);
			c->fd = -1;
		}
	}
	for (int i = 0; i < w->n_conns; i++) {
		if (conn_at(w, i)->fd >= 0)
			close(conn_at(w, i)->fd);
	}
	close(ep);
}

void *lg_worker_thread(void *w)
{
	lg_worker_run(w);
	return NULL;
}
