/*
 * loadgen - what the benchmark load generators share: the clock, the random
 * numbers, latency recording and percentiles, and the event loop of the
 * generators that keep N persistent connections with one request outstanding
 * on each (policyd_load, authpolicy_load). Each program keeps its protocol:
 * how to connect, what a request is, how to read and count a reply.
 *
 * Linked into every bench program (Makefile's bench/% rule). Errors that
 * leave a load generator nothing to measure (out of memory) exit(1).
 */
#ifndef SASLGATE_BENCH_LOADGEN_H
#define SASLGATE_BENCH_LOADGEN_H

#include <stddef.h>
#include <stdint.h>

/* CLOCK_MONOTONIC in nanoseconds, and in seconds. */
uint64_t lg_now_ns(void);
double lg_now_s(void);

/* xorshift64*: the next number from *state (never 0 to start). */
uint64_t lg_rnd(uint64_t *state);

/* A Dovecot auth policy request's JSON members, as Dovecot 2.3 sends them
 * for a login (no closing brace: a report adds its own members), into out:
 * one of users users (user%u@example.test, from the same /24 each), 70%
 * XOAUTH2/OAUTHBEARER, 25% PLAIN, 5% LOGIN; imap 80%, pop3 15%, smtp 5%
 * (Postfix through Dovecot SASL: no session id); TLS 90%. Returns the
 * length (out is NUL-terminated; cap 256 is enough). */
size_t lg_dovecot_login(char *out, size_t cap, uint64_t *rng, unsigned users);

/* Latencies in microseconds, in the order recorded until lg_sort(). */
struct lg_latencies {
	uint32_t *us;
	size_t n, cap;
};

/* Appends one latency; out of memory: perror(prog) and exit(1). */
void lg_record(struct lg_latencies *l, uint32_t us, const char *prog);
/* Appends all of from's latencies to l; 0, or -1 out of memory. */
int lg_append(struct lg_latencies *l, const struct lg_latencies *from);
/* Sorts ascending: what the percentiles below need. */
void lg_sort(struct lg_latencies *l);
/* The p-quantile (0..1) of sorted latencies, 0 if there are none: the value
 * at rank p * (n - 1), rounded (policyd_load, authpolicy_load). */
uint32_t lg_percentile(const struct lg_latencies *sorted, double p);
/* The value at rank floor(p * n) (milter_load's p50 and p99). */
uint32_t lg_percentile_floor(const struct lg_latencies *sorted, double p);
/* The largest, 0 if there are none. */
uint32_t lg_max(const struct lg_latencies *sorted);
/* Frees the array; l is empty again. */
void lg_latencies_free(struct lg_latencies *l);

/* One persistent connection: the start of each program's own connection
 * struct (the loop reaches the rest through the protocol's callbacks). */
struct lg_conn {
	int fd;
	const char *out;         /* the request being written, set by build() */
	size_t out_len, out_off; /* out_off: reset by the loop */
	uint64_t sent_ns;        /* when the outstanding request was sent */
};

/* A protocol, for lg_worker_run(). arg is the worker's own. */
struct lg_protocol {
	const char *name; /* the program's, the prefix of its messages */
	/* A connected socket, or -1 with errno set (nothing left open). */
	int (*connect)(void *arg);
	/* Writes the next request into c->out, c->out_len. */
	void (*build)(void *arg, struct lg_conn *c);
	/* Reads from c and counts what it completes (recording the latency
	 * when measuring): 1 a reply is complete, 0 not yet, -1 the connection
	 * is broken. The loop then sends the next request while sending. */
	int (*readable)(void *arg, struct lg_conn *c, int measuring);
	/* Replies that arrive after the measured seconds, while the loop waits
	 * for the outstanding ones, are measured too (policyd_load). */
	int measure_drain;
};

/* A run: what every thread's share of it has in common. */
struct lg_load {
	const struct lg_protocol *proto;
	const char *endpoint; /* for messages */
	int connections, threads;
	double warmup, seconds;
	size_t conn_size; /* the program's connection struct, starting with a
	                   * struct lg_conn */
};

/* One thread's share of the load. */
struct lg_worker {
	const struct lg_load *load;
	void *arg; /* the program's worker, passed to the callbacks */
	void *conns;
	int n_conns;
	struct lg_latencies lat; /* measured requests, microseconds */
	uint64_t errors;         /* broken connections, replies missing */
	int failed;              /* a connection could not be made */
};

/* Sets w up as thread i of load->threads: its share of the connections
 * (zeroed), arg for the callbacks. 0, or -1 out of memory. */
int lg_worker_init(struct lg_worker *w, const struct lg_load *load, int i, void *arg);
/* Connects every connection, keeps one request outstanding on each for
 * warmup + seconds, then waits (up to 5 s) for the outstanding replies, and
 * closes them. Results in w->lat, w->errors, w->failed. */
void lg_worker_run(struct lg_worker *w);
/* lg_worker_run() as a pthread start routine (w: a struct lg_worker). */
void *lg_worker_thread(void *w);
/* Frees what lg_worker_init() and lg_worker_run() allocated. */
void lg_worker_free(struct lg_worker *w);
/* The latency of the reply that completed on c, for readable(). */
void lg_record_reply(struct lg_worker *w, const struct lg_conn *c);

#endif
