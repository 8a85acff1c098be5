/*
 * settings - the table of daemon settings and its validation. Values are held
 * as canonical text (booleans as yes/no, enum choices as listed); numbers and
 * durations are parsed again by the getters, which run at start-up only.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "settings.h"
#include "timeparse.h"

#define BOTH (SETTINGS_POLICYD | SETTINGS_MILTER)
#define DAY  86400

const struct setting_def settings_table[] = {
    {"store_dir", SETTING_STRING, "", 0, 0, NULL, BOTH,
     "store directory (empty: $SASLGATE_DIR, else /var/lib/saslgate)"},
    {"store", SETTING_STRING, "", 0, 0, NULL, BOTH,
     "shared PostgreSQL store, a libpq connection string (empty: $SASLGATE_STORE, else "
     "policy.db in store_dir)"},
    {"user", SETTING_STRING, "", 0, 0, NULL, BOTH,
     "user to run as after binding (empty: no privilege drop)"},
    {"group", SETTING_STRING, "", 0, 0, NULL, BOTH,
     "group to run as (empty: the user's primary group)"},
    {"pid_file", SETTING_STRING, "", 0, 0, NULL, BOTH,
     "pid file (empty: /run/saslgate/<program>.pid when detached)"},
    {"syslog_facility", SETTING_ENUM, "mail", 0, 0,
     "mail|daemon|local0|local1|local2|local3|local4|local5|local6|local7|user", BOTH,
     "syslog facility when running detached"},
    {"log_decisions", SETTING_BOOL, "yes", 0, 0, NULL, BOTH, "log one line per decision"},
    {"on_error", SETTING_ENUM, "tempfail", 0, 0, "tempfail|accept|reject", BOTH,
     "answer when a decision cannot be made"},
    {"on_error_reply", SETTING_STRING,
     "451 4.3.0 saslgate: temporary policy error, try again later", 0, 0, NULL, BOTH,
     "reply text used with on_error"},
    {"activity_queue_max", SETTING_INT, "100000", 100, 1000000, NULL, BOTH,
     "activity records queued before dropping"},
    {"activity_nice", SETTING_INT, "19", 0, 19, NULL, BOTH,
     "nice level of the activity writer thread (19: deciding comes first)"},
    {"activity_flush_ms", SETTING_INT, "200", 10, 10000, NULL, BOTH,
     "longest time activity records wait before being written (ms)"},
    {"heartbeat_interval", SETTING_DURATION, "5s", 1, 3600, NULL, BOTH,
     "interval between heartbeat rows in activity.db"},
    {"host_name", SETTING_STRING, "", 0, 0, NULL, BOTH,
     "this host's name in heartbeats and the fleet's tables (empty: the system's host name)"},
    {"fleet_spool_max", SETTING_INT, "1000000", 1000, 100000000, NULL, BOTH,
     "with a PostgreSQL store: decisions kept in activity.db for delivery before dropping"},
    {"socket_mode", SETTING_STRING, "0660", 0, 0, NULL, BOTH,
     "mode of UNIX listening sockets (octal)"},
    {"socket_owner", SETTING_STRING, "", 0, 0, NULL, BOTH,
     "owner of UNIX listening sockets (empty: unchanged)"},
    {"socket_group", SETTING_STRING, "", 0, 0, NULL, BOTH,
     "group of UNIX listening sockets (empty: unchanged)"},
    {"listen", SETTING_STRING, "", 0, 0, NULL, SETTINGS_POLICYD,
     "comma-separated endpoints to listen on (-l adds to it)"},
    {"report_only_action", SETTING_ENUM, "dunno", 0, 0, "dunno|warn", SETTINGS_POLICYD,
     "answer when only report-only policies would block"},
    {"max_line_bytes", SETTING_INT, "4096", 64, 65536, NULL, SETTINGS_POLICYD,
     "longest request line accepted"},
    {"max_attributes", SETTING_INT, "100", 8, 1000, NULL, SETTINGS_POLICYD,
     "most attributes accepted in one request"},
    {"max_request_bytes", SETTING_INT, "32768", 256, 1048576, NULL, SETTINGS_POLICYD,
     "largest request accepted"},
    {"idle_timeout", SETTING_DURATION, "600s", 1, DAY, NULL, SETTINGS_POLICYD,
     "idle connections are closed after this long"},
    {"request_timeout", SETTING_DURATION, "10s", 1, 3600, NULL, SETTINGS_POLICYD,
     "a request must be complete this long after its first byte"},
    {"max_connections", SETTING_INT, "1000", 1, 100000, NULL, SETTINGS_POLICYD,
     "most concurrent client connections"},
    {"http_api_key", SETTING_STRING, "", 0, 0, NULL, SETTINGS_POLICYD,
     "secret Dovecot must send as X-API-Key on http: endpoints (empty: none)"},
    {"http_timeout", SETTING_DURATION, "10s", 1, 3600, NULL, SETTINGS_POLICYD,
     "an http: connection that makes no progress for this long is closed"},
    {"socket", SETTING_STRING, "", 0, 0, NULL, SETTINGS_MILTER,
     "milter socket in libmilter syntax (-p sets it)"},
    {"milter_timeout", SETTING_DURATION, "600s", 1, DAY, NULL, SETTINGS_MILTER,
     "libmilter I/O timeout"},
    {"milter_backlog", SETTING_INT, "4096", 1, 65535, NULL, SETTINGS_MILTER,
     "listen backlog of the milter socket"},
    {"milter_thread_stack", SETTING_INT, "256", 64, 65536, NULL, SETTINGS_MILTER,
     "stack of each libmilter connection thread (KiB)"},
    {NULL, SETTING_STRING, NULL, 0, 0, NULL, 0, NULL},
};

/* struct settings holds one value per table entry. */
_Static_assert(sizeof(settings_table) / sizeof(settings_table[0]) <= SETTINGS_MAX + 1,
               "settings_table has more entries than SETTINGS_MAX");

static const char *program_name(unsigned program)
{
	return program == SETTINGS_MILTER ? "saslgate-milter" : "saslgate-policyd";
}

static int find_key(const char *key)
{
	int i;

	for (i = 0; settings_table[i].key != NULL; i++)
		if (strcmp(settings_table[i].key, key) == 0)
			return i;
	return -1;
}

void settings_init(struct settings *s, unsigned program)
{
	int i;

	memset(s, 0, sizeof(*s));
	s->program = program;
	for (i = 0; settings_table[i].key != NULL; i++) {
		if (settings_table[i].programs & program)
			s->values[i] = xstrdup(settings_table[i].def);
	}
}

void settings_free(struct settings *s)
{
	int i;

	for (i = 0; i < SETTINGS_MAX; i++) {
		free(s->values[i]);
		s->values[i] = NULL;
	}
}

static int parse_int(const char *text, int64_t *out)
{
	char *end;
	long long v;

	if (*text != '-' && (*text < '0' || *text > '9'))
		return -1;
	errno = 0;
	v = strtoll(text, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

static int parse_bool(const char *text)
{
	static const char *const yes[] = {"yes", "true", "1", "on"};
	static const char *const no[] = {"no", "false", "0", "off"};
	size_t i;

	for (i = 0; i < 4; i++) {
		if (sg_strcasecmp(text, yes[i]) == 0)
			return 1;
		if (sg_strcasecmp(text, no[i]) == 0)
			return 0;
	}
	return -1;
}

/* Finds value among "a|b|c"; stores the canonical spelling. 0 or -1. */
static int parse_choice(const char *choices, const char *value, char *canon, size_t len)
{
	const char *p = choices;

	while (*p != '\0') {
		const char *bar = strchr(p, '|');
		size_t n = bar ? (size_t)(bar - p) : strlen(p);

		if (n < len && strlen(value) == n && strncasecmp(p, value, n) == 0) {
			memcpy(canon, p, n);
			canon[n] = '\0';
			return 0;
		}
		p += n;
		if (*p == '|')
			p++;
	}
	return -1;
}

static int valid_socket_mode(const char *value)
{
	size_t i, n = strlen(value);
	long mode;

	if (n == 0 || n > 4)
		return 0;
	for (i = 0; i < n; i++)
		if (value[i] < '0' || value[i] > '7')
			return 0;
	mode = strtol(value, NULL, 8);
	return mode <= 0777;
}

static int has_control(const char *value)
{
	for (; *value != '\0'; value++)
		if ((unsigned char)*value < 0x20 || *value == 0x7f)
			return 1;
	return 0;
}

static void format_bound(const struct setting_def *def, int64_t v, char *buf, size_t len)
{
	if (def->type != SETTING_DURATION)
		sg_snprintf(buf, len, "%lld", (long long)v);
	else if (v % DAY == 0)
		sg_snprintf(buf, len, "%lldd", (long long)(v / DAY));
	else if (v % 3600 == 0)
		sg_snprintf(buf, len, "%lldh", (long long)(v / 3600));
	else
		sg_snprintf(buf, len, "%llds", (long long)v);
}

/* Validates value for def; the canonical text goes to canon. 0 or -1 with err. */
static int validate(const struct setting_def *def, const char *value, char *canon, size_t len,
                    struct sg_err *err)
{
	int64_t v;
	struct sg_err derr;
	char lo[32], hi[32];
	int b;

	if (has_control(value))
		return sg_err_set(err, "setting %s: control characters are not allowed", def->key);
	switch (def->type) {
	case SETTING_INT:
	case SETTING_DURATION:
		if (def->type == SETTING_INT && parse_int(value, &v) < 0)
			return sg_err_set(err, "setting %s: \"%s\" is not a whole number", def->key,
			                  value);
		if (def->type == SETTING_DURATION && time_parse_duration(value, &v, &derr) < 0)
			return sg_err_set(err, "setting %s: %s", def->key, derr.text);
		if (v < def->min || v > def->max) {
			format_bound(def, def->min, lo, sizeof(lo));
			format_bound(def, def->max, hi, sizeof(hi));
			return sg_err_set(err, "setting %s: \"%s\" is out of range (%s..%s)",
			                  def->key, value, lo, hi);
		}
		break;
	case SETTING_BOOL:
		b = parse_bool(value);
		if (b < 0)
			return sg_err_set(
			    err,
			    "setting %s: \"%s\" is not a boolean (yes/no, true/false, "
			    "on/off, 1/0)",
			    def->key, value);
		value = b ? "yes" : "no";
		break;
	case SETTING_ENUM:
		if (parse_choice(def->choices, value, canon, len) < 0)
			return sg_err_set(err, "setting %s: \"%s\" is not one of %s", def->key,
			                  value, def->choices);
		return 0;
	case SETTING_STRING:
		if (strcmp(def->key, "socket_mode") == 0 && !valid_socket_mode(value))
			return sg_err_set(err,
			                  "setting socket_mode: \"%s\" is not an octal mode "
			                  "(0000..0777)",
			                  value);
		break;
	}
	if (sg_strlcpy(canon, value, len) >= len)
		return sg_err_set(err, "setting %s: value too long", def->key);
	return 0;
}

#define VALUE_MAX 4096

int settings_set(struct settings *s, const char *key, const char *value, struct sg_err *err)
{
	char canon[VALUE_MAX];
	int i = find_key(key);

	if (i < 0)
		return sg_err_set(err, "unknown setting \"%s\"", key);
	if (!(settings_table[i].programs & s->program))
		return sg_err_set(err, "setting %s is not used by %s", key,
		                  program_name(s->program));
	if (validate(&settings_table[i], value, canon, sizeof(canon), err) < 0)
		return -1;
	free(s->values[i]);
	s->values[i] = xstrdup(canon);
	return 0;
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Trims blanks in place; returns the start. */
static char *trim(char *p)
{
	char *end;

	while (is_blank(*p))
		p++;
	end = p + strlen(p);
	while (end > p && is_blank(end[-1]))
		*--end = '\0';
	return p;
}

int settings_set_pair(struct settings *s, const char *pair, struct sg_err *err)
{
	char buf[VALUE_MAX + 128];
	char *eq, *key, *value;

	if (sg_strlcpy(buf, pair, sizeof(buf)) >= sizeof(buf))
		return sg_err_set(err, "setting too long");
	eq = strchr(buf, '=');
	if (eq == NULL)
		return sg_err_set(err, "\"%s\": expected key=value", pair);
	*eq = '\0';
	key = trim(buf);
	value = trim(eq + 1);
	return settings_set(s, key, value, err);
}

static void settings_copy(struct settings *dst, const struct settings *src)
{
	int i;

	dst->program = src->program;
	for (i = 0; i < SETTINGS_MAX; i++)
		dst->values[i] = src->values[i] ? xstrdup(src->values[i]) : NULL;
}

/* Applies one config line (modified in place) to s. */
static int apply_line(struct settings *s, char *line, struct sg_err *err)
{
	char *p = trim(line), *eq, *key, *value;
	size_t n;

	if (*p == '\0' || *p == '#')
		return 0;
	eq = strchr(p, '=');
	if (eq == NULL)
		return sg_err_set(err, "expected \"key = value\"");
	*eq = '\0';
	key = trim(p);
	value = trim(eq + 1);
	n = strlen(value);
	if (n >= 2 && value[0] == '"' && value[n - 1] == '"') {
		value[n - 1] = '\0';
		value++;
	}
	if (*key == '\0')
		return sg_err_set(err, "missing key before '='");
	return settings_set(s, key, value, err);
}

int settings_load_file(struct settings *s, const char *path, struct sg_err *err)
{
	struct settings tmp;
	struct sg_err lerr;
	char line[VALUE_MAX + 128];
	unsigned lineno = 0;
	FILE *fp;
	int i, rc = 0;

	fp = fopen(path, "r");
	if (fp == NULL)
		return sg_err_set(err, "%s: %s", path, strerror(errno));
	settings_copy(&tmp, s);
	while (fgets(line, sizeof(line), fp) != NULL) {
		size_t n = strlen(line);

		lineno++;
		if (n == sizeof(line) - 1 && line[n - 1] != '\n' && !feof(fp)) {
			rc = sg_err_set(err, "%s:%u: line too long", path, lineno);
			break;
		}
		if (apply_line(&tmp, line, &lerr) < 0) {
			rc = sg_err_set(err, "%s:%u: %s", path, lineno, lerr.text);
			break;
		}
	}
	if (rc == 0 && ferror(fp))
		rc = sg_err_set(err, "%s: read error", path);
	fclose(fp);
	if (rc < 0) {
		settings_free(&tmp);
		return -1;
	}
	for (i = 0; i < SETTINGS_MAX; i++) {
		free(s->values[i]);
		s->values[i] = tmp.values[i];
	}
	return 0;
}

/* The value of key (the default for a key of the other program). Aborts on an
 * unknown key or a getter of the wrong type: both are programming errors. */
static const char *get(const struct settings *s, const char *key, int type_a, int type_b)
{
	int i = find_key(key);

	if (i < 0)
		abort();
	if (type_a >= 0 && (int)settings_table[i].type != type_a &&
	    (int)settings_table[i].type != type_b)
		abort();
	return s->values[i] ? s->values[i] : settings_table[i].def;
}

int64_t settings_int(const struct settings *s, const char *key)
{
	const char *v = get(s, key, SETTING_INT, SETTING_DURATION);
	int64_t n = 0;
	int i = find_key(key);

	if (settings_table[i].type == SETTING_DURATION)
		time_parse_duration(v, &n, NULL);
	else
		parse_int(v, &n);
	return n;
}

int settings_bool(const struct settings *s, const char *key)
{
	return parse_bool(get(s, key, SETTING_BOOL, SETTING_BOOL)) == 1;
}

const char *settings_str(const struct settings *s, const char *key)
{
	return get(s, key, -1, -1);
}

int settings_secret(const char *key)
{
	return strcmp(key, "http_api_key") == 0;
}

void settings_print(const struct settings *s, FILE *out)
{
	int i;

	for (i = 0; settings_table[i].key != NULL; i++)
		if (settings_table[i].programs & s->program)
			fprintf(out, "%s = %s\n", settings_table[i].key,
			        settings_secret(settings_table[i].key) && s->values[i] &&
			                *s->values[i]
			            ? "(set, not shown)"
			        : s->values[i] ? s->values[i]
			                       : settings_table[i].def);
}
