/*
 * gate - snapshot, decide, record, on_error: see gate.h.
 */
#include <ctype.h>
#include <string.h>

#include "activity_store.h"
#include "gate.h"
#include "log.h"

static const char *const on_error_names[] = {"tempfail", "accept", "reject"};

int gate_on_error_parse(const char *name, enum gate_on_error *out)
{
	for (int i = 0; i < 3; i++)
		if (strcmp(name, on_error_names[i]) == 0) {
			*out = (enum gate_on_error)i;
			return 0;
		}
	return -1;
}

const char *gate_on_error_name(enum gate_on_error e)
{
	return (unsigned)e < 3 ? on_error_names[e] : "?";
}

int gate_reply_parse(const char *text, struct gate_reply *out, struct sg_err *err)
{
	const char *p = text;
	size_t n;

	memset(out, 0, sizeof(*out));
	if ((p[0] != '4' && p[0] != '5') || !isdigit((unsigned char)p[1]) ||
	    !isdigit((unsigned char)p[2]) || (p[3] != ' ' && p[3] != '\0'))
		return sg_err_set(err, "reply \"%s\": must start with a 4xx or 5xx code", text);
	memcpy(out->code, p, 3);
	p += 3;
	while (*p == ' ')
		p++;
	/* An enhanced code is a word starting with a digit and a dot. */
	if (isdigit((unsigned char)p[0]) && p[1] == '.') {
		n = strcspn(p, " ");
		if (n >= sizeof(out->enh))
			return sg_err_set(err, "reply \"%s\": enhanced status code too long", text);
		memcpy(out->enh, p, n);
		out->enh[n] = '\0';
		p += n;
		while (*p == ' ')
			p++;
		/* The same rules as a policy's reply (class agreement included). */
		if (policy_reply_valid(out->code, out->enh, *p ? p : "-", err) < 0) {
			struct sg_err inner = *err;

			return sg_err_set(err, "reply \"%s\": %s", text, inner.text);
		}
	}
	for (n = 0; p[n] != '\0'; n++)
		if ((unsigned char)p[n] < 0x20 || (unsigned char)p[n] > 0x7e)
			return sg_err_set(err, "reply \"%s\": text must be printable ASCII", text);
	if (sg_strlcpy(out->text, p, sizeof(out->text)) >= sizeof(out->text))
		return sg_err_set(err, "reply text longer than %zu bytes", sizeof(out->text) - 1);
	return 0;
}

int gate_fallback_from_settings(const struct settings *s, struct gate_fallback *out,
                                struct sg_err *err)
{
	const char *name = settings_str(s, "on_error");
	struct gate_reply r;

	if (gate_on_error_parse(name, &out->action) != 0)
		return sg_err_set(err, "on_error: unknown action \"%s\"", name);
	if (gate_reply_parse(GATE_TEMPFAIL_REPLY, &out->tempfail_reply, err) != 0 ||
	    gate_reply_parse(GATE_REJECT_REPLY, &out->reject_reply, err) != 0)
		return -1;
	if (gate_reply_parse(settings_str(s, "on_error_reply"), &r, err) != 0) {
		struct sg_err inner = *err;

		return sg_err_set(err, "on_error_reply: %s", inner.text);
	}
	if (r.code[0] == '4')
		out->tempfail_reply = r;
	else
		out->reject_reply = r;
	return 0;
}

/* *d := what on_error answers. */
static void on_error_decision(const struct gate_fallback *f, struct decision *d)
{
	const struct gate_reply *r;

	memset(d, 0, sizeof(*d));
	if (f->action == GATE_ON_ERROR_ACCEPT) {
		d->outcome = OUTCOME_ALLOW;
		return;
	}
	r = f->action == GATE_ON_ERROR_REJECT ? &f->reject_reply : &f->tempfail_reply;
	d->outcome = OUTCOME_BLOCK;
	memcpy(d->reply_code, r->code, sizeof(d->reply_code));
	memcpy(d->reply_enh, r->enh, sizeof(d->reply_enh));
	sg_strlcpy(d->reply_text, r->text, sizeof(d->reply_text));
}

int gate_decide(const struct gate *g, struct snapshot *snap, const struct request *req, time_t now,
                struct decision *d)
{
	struct snapshot *own = NULL;
	int rc;

	if (snap == NULL)
		snap = own = source_acquire(g->source);
	rc = engine_decide(snap, req, now, 0, d);
	if (rc == 0)
		activity_record(g->activity, req, d, snapshot_generation(snap), now);
	snapshot_unref(&own);
	if (rc == 0)
		return 0;
	return gate_fail(g, "out of memory", req->client_addr, req->instance, d);
}

int gate_fail(const struct gate *g, const char *what, const char *client, const char *instance,
              struct decision *d)
{
	log_error("decision failed (%s): client=%s instance=%s: on_error=%s", what,
	          client && *client ? client : "-", instance && *instance ? instance : "-",
	          gate_on_error_name(g->fallback->action));
	return gate_fallback(g, d);
}

int gate_fallback(const struct gate *g, struct decision *d)
{
	activity_count_error(g->activity);
	on_error_decision(g->fallback, d);
	return -1;
}

int gate_heartbeat(const struct gate *g)
{
	struct snapshot *snap = source_acquire(g->source);
	struct source_stats st;
	char reason[SG_ERR_MAX] = "";
	int degraded;

	snapshot_unref(&snap);
	/* lib/source logs the transitions; the heartbeat only reports them. */
	degraded = source_degraded(g->source, reason, sizeof(reason));
	source_stats(g->source, &st);
	activity_set_status(g->activity, st.generation, degraded, degraded ? reason : NULL);
	activity_set_rebuilds(g->activity, st.rebuilds, st.last_rebuild_us);
	activity_set_snapshot(g->activity, source_origin_name(st.origin), st.snapshot_at);
	return degraded;
}
