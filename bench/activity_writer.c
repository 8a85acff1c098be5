/*
 * bench/activity_writer - what the activity writer costs per decision: one
 * thread queues N decisions (the policy daemon's mix: 70% modern, 25% legacy,
 * 5% unauthenticated; 5,000 users on 250 networks) as fast as the writer
 * takes them, the writer logs their lines to /dev/null and writes their rows
 * and usage sums to a fresh activity.db. Prints the writer's CPU time per
 * decision (process CPU minus the queuing thread's), the figure the daemons'
 * throughput depends on when both cores are busy.
 *
 * usage: bench/activity_writer [-n DECISIONS] [-d DIR] [-q]
 * DIR receives activity.db (default: a new directory under /tmp, removed at
 * the end); -q: no decision lines (log_decisions off).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "activity.h"
#include "cidr.h"
#include "log.h"
#include "store.h"

static double cpu_s(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void usage(void)
{
	fprintf(stderr, "usage: activity_writer [-n DECISIONS] [-d DIR] [-q]\n");
	exit(2);
}

/* The i'th decision of the mix; strings live in buf. */
static void make_decision(unsigned i, struct request *req, struct decision *d, char bufs[4][64])
{
	unsigned kind = i % 20; /* 0: unauthenticated, 1-5: legacy, 6-19: modern */

	request_init(req);
	memset(d, 0, sizeof(*d));
	snprintf(bufs[0], 64, "%08X.%x.0", i * 2654435761u, i);
	snprintf(bufs[1], 64, "4Xq%07u", i);
	snprintf(bufs[2], 64, "user%u@example.test", (i * 7919u) % 5000);
	snprintf(bufs[3], 64, "198.51.%u.%u", (i * 31u) % 250, i % 200 + 1);
	req->instance = bufs[0];
	req->queue_id = bufs[1];
	req->client_addr = bufs[3];
	req->addr_valid = ipaddr_parse(bufs[3], &req->addr, NULL) == 0;
	req->sender = "sender@example.test";
	req->service = "submission";
	req->tls = 1;
	if (kind == 0) {
		d->outcome = OUTCOME_NOT_AUTHENTICATED;
		return;
	}
	req->user = bufs[2];
	if (kind <= 5) {
		req->mech = "PLAIN";
		d->mech_class = MECH_CLASS_LEGACY;
		d->outcome = OUTCOME_BLOCK;
		d->policy = "block-legacy";
	} else {
		req->mech = "XOAUTH2";
		d->mech_class = MECH_CLASS_MODERN;
		d->outcome = OUTCOME_ALLOW;
	}
}

int main(int argc, char **argv)
{
	struct activity_options opt = {0};
	char tmpdir[] = "/tmp/saslgate-bench-aw-XXXXXX";
	const char *dir = NULL;
	unsigned n = 500000;
	struct activity *act;
	struct sg_err err;
	double cpu0, main0, cpu, main_cpu;
	int c, devnull;

	while ((c = getopt(argc, argv, "n:d:q")) != -1) {
		switch (c) {
		case 'n':
			n = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'd':
			dir = optarg;
			break;
		case 'q':
			opt.log_decisions = -1;
			break;
		default:
			usage();
		}
	}
	if (optind != argc || n == 0)
		usage();
	if (dir == NULL && (dir = mkdtemp(tmpdir)) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	/* The decision lines go to stderr, here /dev/null: the cost of
	 * formatting and writing them is measured, not the terminal's. */
	devnull = open("/dev/null", O_WRONLY);
	if (devnull < 0 || dup2(devnull, 2) < 0)
		return 1;
	log_open("saslgate-bench", 1, 0);

	opt.dir = dir;
	opt.program = "policyd";
	opt.queue_max = n; /* nothing dropped: the writer's cost per record */
	opt.flush_ms = 200;
	opt.heartbeat_s = 5;
	opt.nice = 0;
	opt.log_decisions = opt.log_decisions == 0;
	act = activity_open(&opt, &err);
	if (act == NULL) {
		printf("activity_open: %s\n", err.text);
		return 1;
	}
	cpu0 = cpu_s(CLOCK_PROCESS_CPUTIME_ID);
	main0 = cpu_s(CLOCK_THREAD_CPUTIME_ID);
	for (unsigned i = 0; i < n; i++) {
		struct request req;
		struct decision d;
		char bufs[4][64];

		make_decision(i, &req, &d, bufs);
		activity_record(act, &req, &d, 1, time(NULL));
	}
	main_cpu = cpu_s(CLOCK_THREAD_CPUTIME_ID) - main0;
	activity_close(&act);
	cpu = cpu_s(CLOCK_PROCESS_CPUTIME_ID) - cpu0 - main_cpu;
	printf("activity_writer decisions=%u lines=%s writer_us_per_decision=%.2f "
	       "queue_us_per_decision=%.2f\n",
	       n, opt.log_decisions ? "yes" : "no", cpu * 1e6 / n, main_cpu * 1e6 / n);
	if (dir == tmpdir) {
		static const char *const files[] = {"activity.db", "activity.db-wal",
						    "activity.db-shm"};
		char path[sizeof(tmpdir) + 32];

		for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
			snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
			unlink(path);
		}
		rmdir(dir);
	}
	return 0;
}
