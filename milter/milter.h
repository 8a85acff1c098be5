/*
 * milter - saslgate-milter: a libmilter filter that decides at MAIL FROM with
 * the shared gate. filter.c holds the libmilter callbacks (thin: marshal the
 * macros into a struct request, call gate_decide, turn the decision into a
 * milter reply); reply.c the pure helpers they use; main.c the process
 * plumbing (options, settings, socket, privileges, threads).
 *
 * libmilter gives callbacks no user pointer, so the process-wide context (the
 * gate: the shared policy source, the activity writer, the on_error action)
 * is handed to filter.c once, before smfi_main, and is read-only afterwards. Per-connection
 * state lives only in smfi_setpriv (Debian's worker-pool libmilter moves a
 * connection between threads).
 */
#ifndef SASLGATE_MILTER_H
#define SASLGATE_MILTER_H

#include <stddef.h>

#include "gate.h"
#include "util.h"

/* filter.c */

/* Copies the gate every callback decides through (its source is shared by
 * every worker thread). Call once before smfi_main; the pointers in it must
 * stay valid until smfi_main returns. */
void filter_configure(const struct gate *gate);

/* smfi_register() with saslgate's callbacks. 0, or -1 with err. */
int filter_register(struct sg_err *err);

/* The macro lists requested with smfi_setsymlist, per stage (for the man page,
 * -n and the tests). */
extern const char filter_connect_macros[];
extern const char filter_envfrom_macros[];

/* reply.c */

/* Copies src into dst doubling every '%' (Sendmail and Postfix both read a
 * milter reply text as a format where "%%" stands for '%'), and replaces any
 * character that is not printable ASCII by '?'. Never splits a "%%" pair;
 * stops at dstlen - 1. Returns 0, or -1 if src did not fit (dst then holds a
 * usable prefix). */
int milter_reply_escape(char *dst, size_t dstlen, const char *src);

/* The filesystem path of a libmilter socket spec ("unix:/p", "local:/p", or a
 * bare "/p"), or NULL for inet/inet6 sockets. Points into spec. */
const char *milter_socket_path(const char *spec);

/* Strips one pair of angle brackets from an envelope address ("<a@b>" ->
 * "a@b", "<>" -> ""). Copies into dst (same contract as sg_strlcpy). */
size_t milter_sender_copy(char *dst, const char *src, size_t dstsize);

#endif
