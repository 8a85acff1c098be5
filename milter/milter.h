/*
 * milter - saslgate-milter: a libmilter filter that decides at MAIL FROM with
 * the shared engine. filter.c holds the libmilter callbacks (thin: marshal the
 * macros into a struct request, call engine_decide, turn the decision into a
 * milter reply); reply.c the pure helpers they use; main.c the process
 * plumbing (options, settings, socket, privileges, threads).
 *
 * libmilter gives callbacks no user pointer, so the process-wide context (the
 * shared policy source, the activity writer, the on_error action) is handed to
 * filter.c once, before smfi_main, and is read-only afterwards. Per-connection
 * state lives only in smfi_setpriv (Debian's worker-pool libmilter moves a
 * connection between threads).
 */
#ifndef SASLGATE_MILTER_H
#define SASLGATE_MILTER_H

#include <stddef.h>

#include "activity.h"
#include "source.h"
#include "util.h"

/* What to answer when no decision could be made (the on_error setting). */
enum milter_on_error { MILTER_ON_ERROR_TEMPFAIL, MILTER_ON_ERROR_ACCEPT, MILTER_ON_ERROR_REJECT };

/* An SMTP reply split the way smfi_setreply wants it. */
struct milter_reply {
	char code[4];   /* "451" */
	char enh[16];   /* "4.3.0" */
	char text[512]; /* free text, printable ASCII */
};

struct filter_config {
	struct source *source;     /* shared by every worker thread; not owned */
	struct activity *activity; /* not owned */
	enum milter_on_error on_error;
	struct milter_reply tempfail_reply; /* used by on_error=tempfail */
	struct milter_reply reject_reply;   /* used by on_error=reject */
};

/* filter.c */

/* Copies the process context used by every callback. Call once before
 * smfi_main; the pointers must stay valid until smfi_main returns. */
void filter_configure(const struct filter_config *cfg);

/* smfi_register() with saslgate's callbacks. 0, or -1 with err. */
int filter_register(struct sg_err *err);

/* The macro lists requested with smfi_setsymlist, per stage (for the man page,
 * -n and the tests). */
extern const char filter_connect_macros[];
extern const char filter_envfrom_macros[];

/* reply.c */

/* Parses "451 4.3.0 text" (the enhanced code is optional: "451 text"). The
 * code must be 4xx or 5xx and the enhanced code's class must agree with it.
 * 0, or -1 with err. */
int milter_reply_parse(const char *text, struct milter_reply *out, struct sg_err *err);

/* Copies src into dst doubling every '%' (Sendmail and Postfix both read a
 * milter reply text as a format where "%%" stands for '%'), and replaces any
 * character that is not printable ASCII by '?'. Never splits a "%%" pair;
 * stops at dstlen - 1. Returns 0, or -1 if src did not fit (dst then holds a
 * usable prefix). */
int milter_reply_escape(char *dst, size_t dstlen, const char *src);

/* "on_error" setting text -> enum. 0, or -1 for an unknown name. */
int milter_on_error_parse(const char *name, enum milter_on_error *out);

/* The filesystem path of a libmilter socket spec ("unix:/p", "local:/p", or a
 * bare "/p"), or NULL for inet/inet6 sockets. Points into spec. */
const char *milter_socket_path(const char *spec);

/* Strips one pair of angle brackets from an envelope address ("<a@b>" ->
 * "a@b", "<>" -> ""). Copies into dst (same contract as sg_strlcpy). */
size_t milter_sender_copy(char *dst, const char *src, size_t dstsize);

#endif
