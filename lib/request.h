/*
 * request - what a daemon extracted from one submission, in the terms of the
 * policy model. All strings are borrowed from the caller and must outlive the
 * engine call; NULL and "" both mean "absent".
 */
#ifndef SASLGATE_REQUEST_H
#define SASLGATE_REQUEST_H

#include "cidr.h"

struct request {
	const char *mech; /* SASL mechanism as the client spelled it; absent = not authenticated */
	const char *user; /* SASL username */
	const char *client_addr; /* client address as text (for logs) */
	struct ipaddr addr;      /* parsed client address, valid when addr_valid */
	int addr_valid;
	int tls;                  /* 1 when the session uses TLS */
	const char *tls_protocol; /* e.g. TLSv1.3, for logs */
	const char *tls_cipher;
	const char *service; /* policy_context / server_port / {daemon_name} */
	const char *queue_id;
	const char *instance; /* Postfix instance, or the milter's session id */
	const char *sender;
};

/* Zeroes a request. */
void request_init(struct request *req);

#endif
