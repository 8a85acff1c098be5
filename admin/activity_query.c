/*
 * activity_query - shared helpers of the visibility commands (see
 * activity_query.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "activity_query.h"
#include "policy_settings.h"
#include "cidr.h"
#include "store.h"
#include "store_pg.h"
#include "validate.h"

int aq_parse_format(const char *text, unsigned allowed, enum aq_format *out)
{
	static const char *const names[] = {"text", "json", "csv", "prometheus"};

	for (int i = 0; i < 4; i++) {
		if (strcmp(text, names[i]) != 0)
			continue;
		if (i >= AQ_CSV && !(allowed & (1u << i)))
			break;
		*out = (enum aq_format)i;
		return CTL_OK;
	}
	return ctl_invalid("--format", "'%s' is not one of text, json%s%s", text,
	                   (allowed & AQ_ALLOW_CSV) ? ", csv" : "",
	                   (allowed & AQ_ALLOW_PROMETHEUS) ? ", prometheus" : "");
}

enum aq_format aq_format_of(const struct ctl *ctl, int format_given, enum aq_format format)
{
	if (format_given)
		return format;
	return ctl->json ? AQ_JSON : AQ_TEXT;
}

int aq_outcome_valid(const char *text)
{
	return strcmp(text, "block") == 0 || strcmp(text, "allow") == 0 ||
	       strcmp(text, "would-block") == 0 || strcmp(text, "not-authenticated") == 0;
}

int aq_parse_count(const char *field, const char *text, int allow_zero, int64_t *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || v < 0 || (v == 0 && !allow_zero))
		return ctl_invalid(field, "'%s' is not a %s number", text,
		                   allow_zero ? "non-negative" : "positive");
	*out = v;
	return CTL_OK;
}

int aq_open_activity(const struct ctl *ctl, enum activity_store_mode mode,
                     struct activity_store **as)
{
	struct sg_err err = {{0}};

	if (ctl->store != NULL) {
		if (activity_store_open_pg(ctl->store, mode, as, &err) < 0)
			return ctl_fail(
			    "%s: %s", ctl->store_label ? ctl->store_label : "PostgreSQL", err.text);
		return CTL_OK;
	}
	if (activity_store_open(ctl->dir, mode, as, &err) < 0)
		return ctl_fail("%s", err.text);
	return CTL_OK;
}

int aq_store_fail(const struct activity_store *as, const struct sg_err *err)
{
	return ctl_fail("%s: %s", activity_store_name(as), err->text);
}

int aq_scan(struct activity_store *as, time_t since, time_t until, int newest_first,
            const char *text, activity_batch_fn fn, void *arg)
{
	struct activity_scan scan = {since, until, newest_first, text, 0, 0};
	struct sg_err err = {{0}};
	int rc = activity_store_scan(as, &scan, fn, arg, &err);

	if (scan.damaged > 0)
		fprintf(stderr,
		        "saslgatectl: warning: %s: decision batch %lld is damaged; "
		        "skipped\n",
		        activity_store_name(as), (long long)scan.damaged_id);
	return rc < 0 ? aq_store_fail(as, &err) : CTL_OK;
}

void aq_csv_field(FILE *out, int first, const char *s)
{
	if (!first)
		fputc(',', out);
	if (s == NULL)
		return;
	if (strpbrk(s, ",\"\r\n") == NULL) {
		fputs(s, out);
		return;
	}
	fputc('"', out);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', out);
		fputc(*s, out);
	}
	fputc('"', out);
}

void aq_csv_int(FILE *out, int first, int64_t v)
{
	fprintf(out, "%s%lld", first ? "" : ",", (long long)v);
}

void aq_csv_time(FILE *out, int first, time_t t)
{
	char buf[32];

	aq_csv_field(out, first, ctl_time(t, "", buf, sizeof(buf)));
}

void aq_csv_end(FILE *out)
{
	fputs("\r\n", out);
}

void aq_network_of(const char *addr_text, char *buf, size_t len)
{
	struct ipaddr addr;
	struct cidr net;

	buf[0] = '\0';
	if (addr_text == NULL || ipaddr_parse(addr_text, &addr, NULL) < 0)
		return;
	cidr_network_of(&addr, &net);
	if (cidr_format(&net, buf, len) < 0)
		buf[0] = '\0';
}

void aq_policy_facts(const struct ctl *ctl, int64_t expiring_within, struct aq_policy_facts *f)
{
	struct sg_err err = {{0}};
	sqlite3 *db;
	int counted;

	memset(f, 0, sizeof(*f));
	f->generation = -1;
	if (store_open_readonly(ctl->dir, &db, &err) < 0) {
		struct sg_err cache_err = {{0}};
		int exists = 0;

		/* The daemons of a host on the PostgreSQL store keep its policy in
		 * their cache (store_pg.h), and no policy.db. */
		if (store_pg_cache_open(ctl->dir, &db, &exists, &cache_err) < 0) {
			sg_strlcpy(f->error, exists ? cache_err.text : err.text, sizeof(f->error));
			return;
		}
	}
	/* One read transaction: the counts and the generation agree. */
	store_exec(db, "BEGIN", NULL);
	f->schema_version = store_schema_version(db);
	f->generation = store_generation(db);
	counted = store_exception_counts(db, (int64_t)ctl->now, expiring_within,
	                                 &f->exceptions_active, &f->exceptions_expiring, NULL);
	/* The table's default (90) when unset or out of its bounds. */
	policy_setting_get_days(db, "activity_retention_days", &f->retention_days, NULL);
	f->ok = f->generation >= 0 && counted == 0;
	if (!f->ok)
		snprintf(f->error, sizeof(f->error), "policy.db: %s", sqlite3_errmsg(db));
	store_exec(db, "COMMIT", NULL);
	store_close(&db);
}
