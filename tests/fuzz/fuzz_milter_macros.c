/*
 * fuzz_milter_macros - the text saslgate-milter takes from configuration and
 * from the MTA and hands back to it: reply parsing (on_error_reply, in
 * lib/gate.c), reply escaping for smfi_setreply, envelope senders and socket
 * specs. The milter's helpers are compiled in from milter/reply.c (the fuzz
 * build links only lib/).
 *
 * Invariants checked: the escaped text is printable ASCII, fits its buffer,
 * and every '%' in it is part of a "%%" pair; a parsed reply has a 4xx/5xx
 * code and an enhanced code of the same class.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../milter/reply.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[2048], out[64], sender[32];
	struct gate_reply reply;
	struct sg_err err;
	size_t i;

	if (size >= sizeof(text))
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';

	if (gate_reply_parse(text, &reply, &err) == 0) {
		if (reply.code[0] != '4' && reply.code[0] != '5')
			abort();
		if (reply.enh[0] != '\0' && reply.enh[0] != reply.code[0])
			abort();
	}

	(void)milter_reply_escape(out, sizeof(out), text);
	if (strlen(out) >= sizeof(out))
		abort();
	for (i = 0; out[i] != '\0'; i++) {
		if (out[i] < 0x20 || out[i] > 0x7e)
			abort();
		if (out[i] == '%') {
			if (out[i + 1] != '%')
				abort();
			i++;
		}
	}

	(void)milter_sender_copy(sender, text, sizeof(sender));
	if (strlen(sender) >= sizeof(sender))
		abort();
	(void)milter_socket_path(text);
	return 0;
}
