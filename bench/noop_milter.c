/*
 * noop_milter - the baseline for saslgate-milter's benchmark: a libmilter
 * filter that negotiates exactly like saslgate-milter (same SMFIP_NO* steps,
 * same macro lists) and reads the same macros at MAIL FROM, but decides
 * nothing: every message is accepted. The difference in throughput between
 * the two is the cost of saslgate's decision and bookkeeping.
 *
 * -w USEC adds USEC microseconds of pure CPU work (a calibrated loop) at each
 * MAIL FROM: how the rate answers a given cost per message, the yardstick
 * for that difference.
 *
 * -s KIB sets the stack of libmilter's worker threads, 256 KiB by default:
 * saslgate-milter's milter_thread_stack default, set the same way
 * (sg_set_default_thread_stack(); see set_thread_stack() in milter/main.c).
 * With glibc's 8 MiB default only five stacks stay cached and nearly every
 * connection maps and faults in a fresh one: the baseline
 * must not pay for what saslgate-milter avoids, or the ratio measures the
 * stack size instead of the filter.
 *
 * usage: noop_milter -p SOCKET [-t TIMEOUT_S] [-w USEC] [-s KIB]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libmilter/mfapi.h>

#include "util.h"

#define STEPS_OFF                                                                                  \
	(SMFIP_NOHELO | SMFIP_NORCPT | SMFIP_NOBODY | SMFIP_NOHDRS | SMFIP_NOEOH |                 \
	 SMFIP_NOUNKNOWN | SMFIP_NODATA)

static sfsistat noop_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2,
                               unsigned long f3, unsigned long *pf0, unsigned long *pf1,
                               unsigned long *pf2, unsigned long *pf3)
{
	char connect_list[] = "{daemon_name} {daemon_port} {client_addr}";
	char envfrom_list[] = "i {auth_type} {auth_authen} {tls_version} {cipher}";

	(void)f2;
	(void)f3;
	*pf0 = f0 & SMFIF_SETSYMLIST;
	*pf1 = f1 & STEPS_OFF;
	*pf2 = 0;
	*pf3 = 0;
	if (*pf0 & SMFIF_SETSYMLIST) {
		smfi_setsymlist(ctx, SMFIM_CONNECT, connect_list);
		smfi_setsymlist(ctx, SMFIM_ENVFROM, envfrom_list);
	}
	return SMFIS_CONTINUE;
}

static sfsistat noop_connect(SMFICTX *ctx, char *hostname, _SOCK_ADDR *hostaddr)
{
	(void)hostname;
	(void)hostaddr;
	(void)smfi_getsymval(ctx, (char *)(uintptr_t) "{daemon_name}");
	return SMFIS_CONTINUE;
}

/* -w: loop iterations per MAIL FROM, and the loop. */
static unsigned long work_iterations;
static volatile unsigned long work_sink;

static void work(unsigned long n)
{
	for (unsigned long i = 0; i < n; i++)
		work_sink += i;
}

static unsigned long iterations_for(double usec)
{
	const unsigned long probe = 20000000;
	struct timespec a, b;
	double ns;

	clock_gettime(CLOCK_MONOTONIC, &a);
	work(probe);
	clock_gettime(CLOCK_MONOTONIC, &b);
	ns = (double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec);
	return (unsigned long)(usec * 1000.0 * (double)probe / ns);
}

static sfsistat noop_envfrom(SMFICTX *ctx, char **argv)
{
	work(work_iterations);
	const char *mech = smfi_getsymval(ctx, (char *)(uintptr_t) "{auth_type}");

	(void)argv;
	(void)smfi_getsymval(ctx, (char *)(uintptr_t) "{auth_authen}");
	return (mech != NULL && mech[0] != '\0') ? SMFIS_ACCEPT : SMFIS_CONTINUE;
}

static struct smfiDesc noop_desc = {
    .xxfi_name = (char *)(uintptr_t) "noop",
    .xxfi_version = SMFI_VERSION,
    .xxfi_flags = SMFIF_SETSYMLIST,
    .xxfi_connect = noop_connect,
    .xxfi_envfrom = noop_envfrom,
    .xxfi_negotiate = noop_negotiate,
};

#define USAGE "usage: noop_milter -p SOCKET [-t TIMEOUT_S] [-w USEC] [-s KIB]\n"

int main(int argc, char **argv)
{
	const char *socket_spec = NULL;
	int timeout = 600;
	double work_usec = 0;
	long stack_kib = 256;
	int c;

	while ((c = getopt(argc, argv, "p:t:w:s:")) != -1) {
		switch (c) {
		case 'p':
			socket_spec = optarg;
			break;
		case 't':
			timeout = atoi(optarg);
			break;
		case 'w':
			work_usec = atof(optarg);
			break;
		case 's':
			stack_kib = atol(optarg);
			break;
		default:
			fputs(USAGE, stderr);
			return 2;
		}
	}
	if (socket_spec == NULL || stack_kib < 64) {
		fputs(USAGE, stderr);
		return 2;
	}
	if (sg_set_default_thread_stack((size_t)stack_kib) != 0) {
		fprintf(stderr, "noop_milter: stack of %ld KiB not applied\n", stack_kib);
		return 1;
	}
	if (work_usec > 0)
		work_iterations = iterations_for(work_usec);
	if (smfi_register(noop_desc) != MI_SUCCESS ||
	    smfi_setconn((char *)(uintptr_t)socket_spec) != MI_SUCCESS ||
	    smfi_settimeout(timeout) != MI_SUCCESS || smfi_opensocket(1) != MI_SUCCESS) {
		fprintf(stderr, "noop_milter: cannot listen on %s\n", socket_spec);
		return 1;
	}
	return smfi_main() == MI_SUCCESS ? 0 : 1;
}
