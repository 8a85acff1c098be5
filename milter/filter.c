/*
 * filter - the libmilter callbacks of saslgate-milter. Decides at MAIL FROM:
 * the connection supplies the client address and the listener, the MAIL
 * command the SASL mechanism and user; the gate does the rest.
 *
 * Every callback may run on a different worker thread (Debian's libmilter
 * runs a pool): per-connection state lives in smfi_setpriv only.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <libmilter/mfapi.h>

#include "gate.h"
#include "log.h"
#include "milter.h"
#include "request.h"

/* Macros requested per stage. HELO is switched off, so TLS macros are asked
 * for at MAIL (Sendmail and Postfix both define them there after STARTTLS).
 * {client_addr} covers an MTA that passes no usable hostaddr. */
const char filter_connect_macros[] = "{daemon_name} {daemon_port} {client_addr}";
const char filter_envfrom_macros[] = "i {auth_type} {auth_authen} {tls_version} {cipher}";

/* Protocol steps saslgate never needs: only CONNECT and MAIL (and close). */
#define FILTER_STEPS_OFF                                                                           \
	(SMFIP_NOHELO | SMFIP_NORCPT | SMFIP_NOBODY | SMFIP_NOHDRS | SMFIP_NOEOH |                 \
	 SMFIP_NOUNKNOWN | SMFIP_NODATA)

#define SERVICE_MAX 64
#define SENDER_MAX  512

struct connection {
	uint64_t id;
	unsigned messages;
	char client_addr[INET6_ADDRSTRLEN];
	struct ipaddr addr;
	int addr_valid;
	char service[SERVICE_MAX];
};

/* Read-only after filter_configure() (before smfi_main). */
static struct gate filter_gate;
static atomic_uint_fast64_t connection_ids;

void filter_configure(const struct gate *gate)
{
	filter_gate = *gate;
}

static struct connection *connection_get(SMFICTX *ctx)
{
	struct connection *conn = smfi_getpriv(ctx);

	if (conn != NULL)
		return conn;
	conn = calloc(1, sizeof(*conn));
	if (conn == NULL)
		return NULL;
	conn->id = atomic_fetch_add(&connection_ids, 1) + 1;
	if (smfi_setpriv(ctx, conn) != MI_SUCCESS) {
		free(conn);
		return NULL;
	}
	return conn;
}

static const char *macro(SMFICTX *ctx, const char *name)
{
	const char *v = smfi_getsymval(ctx, (char *)(uintptr_t)name);

	return (v != NULL && v[0] != '\0') ? v : NULL;
}

/* The listener: Sendmail's DAEMON_OPTIONS Name= or Postfix's
 * milter_macro_daemon_name, else the port. */
static void connection_service(SMFICTX *ctx, struct connection *conn)
{
	const char *s = macro(ctx, "{daemon_name}");

	if (s == NULL)
		s = macro(ctx, "{daemon_port}");
	if (s != NULL)
		sg_strlcpy(conn->service, s, sizeof(conn->service));
}

static void connection_address(struct connection *conn, const struct sockaddr *sa,
                               const char *fallback)
{
	struct sg_err err;

	conn->addr_valid = 0;
	conn->client_addr[0] = '\0';
	if (sa != NULL && ipaddr_from_sockaddr(sa, &conn->addr, conn->client_addr,
	                                       sizeof(conn->client_addr)) == 0) {
		conn->addr_valid = 1;
		return;
	}
	conn->client_addr[0] = '\0';
	if (fallback != NULL)
		sg_strlcpy(conn->client_addr, fallback, sizeof(conn->client_addr));
	if (conn->client_addr[0] != '\0' && ipaddr_parse(conn->client_addr, &conn->addr, &err) == 0)
		conn->addr_valid = 1;
}

static sfsistat filter_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2,
                                 unsigned long f3, unsigned long *pf0, unsigned long *pf1,
                                 unsigned long *pf2, unsigned long *pf3)
{
	static char connect_list[sizeof(filter_connect_macros)];
	static char envfrom_list[sizeof(filter_envfrom_macros)];

	(void)f2;
	(void)f3;
	*pf0 = f0 & SMFIF_SETSYMLIST;
	*pf1 = f1 & FILTER_STEPS_OFF;
	*pf2 = 0;
	*pf3 = 0;
	if (*pf0 & SMFIF_SETSYMLIST) {
		/* smfi_setsymlist copies the list; it only lacks a const. */
		memcpy(connect_list, filter_connect_macros, sizeof(connect_list));
		memcpy(envfrom_list, filter_envfrom_macros, sizeof(envfrom_list));
		if (smfi_setsymlist(ctx, SMFIM_CONNECT, connect_list) != MI_SUCCESS ||
		    smfi_setsymlist(ctx, SMFIM_ENVFROM, envfrom_list) != MI_SUCCESS)
			log_warning("smfi_setsymlist failed: the MTA's default macros apply");
	}
	return SMFIS_CONTINUE;
}

static sfsistat filter_reply(SMFICTX *ctx, const struct decision *d);

/* No decision could be made: the on_error answer. */
static sfsistat filter_error(SMFICTX *ctx, const char *what, const char *instance)
{
	struct decision d;
	sfsistat status;

	gate_fail(&filter_gate, what, NULL, instance, &d);
	status = filter_reply(ctx, &d);
	decision_release(&d);
	return status;
}

static sfsistat filter_connect(SMFICTX *ctx, char *hostname, _SOCK_ADDR *hostaddr)
{
	struct connection *conn = connection_get(ctx);

	(void)hostname;
	if (conn == NULL)
		return filter_error(ctx, "out of memory for connection state", NULL);
	connection_address(conn, hostaddr, macro(ctx, "{client_addr}"));
	connection_service(ctx, conn);
	return SMFIS_CONTINUE;
}

/* A decision -> the milter's answer. */
static sfsistat filter_reply(SMFICTX *ctx, const struct decision *d)
{
	/* libmilter refuses replies longer than 980 bytes. */
	char text[980 - 16];

	switch (d->outcome) {
	case OUTCOME_NOT_AUTHENTICATED:
		return SMFIS_CONTINUE;
	case OUTCOME_ALLOW:
		/* Nothing else to look at in this message. */
		return SMFIS_ACCEPT;
	case OUTCOME_BLOCK:
		break;
	}
	if (milter_reply_escape(text, sizeof(text), d->reply_text) != 0)
		log_warning("reply text of %s truncated", d->policy ? d->policy : "on_error");
	if (smfi_setreply(ctx, (char *)(uintptr_t)d->reply_code,
	                  d->reply_enh[0] ? (char *)(uintptr_t)d->reply_enh : NULL,
	                  text) != MI_SUCCESS)
		log_warning("smfi_setreply refused %s %s for %s: the MTA's default reply "
		            "applies",
		            d->reply_code, d->reply_enh, d->policy ? d->policy : "on_error");
	return d->reply_code[0] == '4' ? SMFIS_TEMPFAIL : SMFIS_REJECT;
}

/* "ID.MESSAGE", ID in hex: what "%llx.%u" writes, without snprintf's cost
 * (a thousand instructions a message); buf holds at least 28 bytes. */
static void format_instance(char *buf, uint64_t id, unsigned message)
{
	static const char hex[] = "0123456789abcdef";
	char digits[20];
	int n = 0;

	do
		digits[n++] = hex[id & 0xf];
	while ((id >>= 4) != 0);
	while (n > 0)
		*buf++ = digits[--n];
	*buf++ = '.';
	do
		digits[n++] = (char)('0' + message % 10);
	while ((message /= 10) != 0);
	while (n > 0)
		*buf++ = digits[--n];
	*buf = '\0';
}

static sfsistat filter_envfrom(SMFICTX *ctx, char **argv)
{
	struct connection *conn = connection_get(ctx);
	struct request req;
	struct decision d;
	char instance[48], sender[SENDER_MAX];
	const char *tls_version;
	time_t now = sg_time_now();
	sfsistat status;

	if (conn == NULL)
		return filter_error(ctx, "out of memory for connection state", macro(ctx, "i"));
	conn->messages++;
	if (conn->service[0] == '\0')
		connection_service(ctx, conn);

	request_init(&req);
	req.mech = macro(ctx, "{auth_type}");
	req.user = macro(ctx, "{auth_authen}");
	req.client_addr = conn->client_addr[0] ? conn->client_addr : NULL;
	req.addr = conn->addr;
	req.addr_valid = conn->addr_valid;
	tls_version = macro(ctx, "{tls_version}");
	req.tls = tls_version != NULL;
	req.tls_protocol = tls_version;
	req.tls_cipher = macro(ctx, "{cipher}");
	req.service = conn->service[0] ? conn->service : NULL;
	req.queue_id = macro(ctx, "i");
	format_instance(instance, conn->id, conn->messages);
	req.instance = instance;
	if (argv != NULL && argv[0] != NULL) {
		milter_sender_copy(sender, argv[0], sizeof(sender));
		req.sender = sender;
	}

	gate_decide(&filter_gate, NULL, &req, now, &d);
	status = filter_reply(ctx, &d);
	decision_release(&d);
	return status;
}

/* May come without connect (a session that failed in negotiation). */
static sfsistat filter_close(SMFICTX *ctx)
{
	struct connection *conn = smfi_getpriv(ctx);

	if (conn != NULL) {
		smfi_setpriv(ctx, NULL);
		free(conn);
	}
	return SMFIS_CONTINUE;
}

static struct smfiDesc filter_desc = {
    .xxfi_name = (char *)(uintptr_t) "saslgate",
    .xxfi_version = SMFI_VERSION,
    .xxfi_flags = SMFIF_SETSYMLIST,
    .xxfi_connect = filter_connect,
    .xxfi_envfrom = filter_envfrom,
    .xxfi_close = filter_close,
    .xxfi_negotiate = filter_negotiate,
};

int filter_register(struct sg_err *err)
{
	if (smfi_register(filter_desc) != MI_SUCCESS)
		return sg_err_set(err, "smfi_register failed");
	return 0;
}
