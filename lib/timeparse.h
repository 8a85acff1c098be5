/*
 * timeparse - the times and durations administrators type: ISO 8601 dates and
 * times and durations such as 90m, 12h, 30d, 2w. Output is always ISO 8601 UTC.
 */
#ifndef SASLGATE_TIMEPARSE_H
#define SASLGATE_TIMEPARSE_H

#include <stdint.h>
#include <time.h>

#include "util.h"

/* Parses "<n><unit>" with unit s, m, h, d or w ("90m", "30d"); combined forms
 * such as "1d12h" are accepted. n must be positive; the total must not overflow.
 * Returns 0 and the seconds, or -1 with the reason in err. */
int time_parse_duration(const char *text, int64_t *seconds, struct sg_err *err);

/*
 * Parses an absolute time: "2026-12-31", "2026-12-31T17:00", "2026-12-31 17:00:00",
 * with an optional "Z" or "+01:00"/"-0500" offset (no offset: local time), or
 * the word "now", or a duration meaning now + duration (future) or now - duration
 * (past, for --since). Rejects impossible dates (2026-02-30).
 */
enum time_direction { TIME_FUTURE, TIME_PAST };
int time_parse(const char *text, time_t now, enum time_direction dir, time_t *out,
               struct sg_err *err);

/* Formats t as "2026-12-31T16:00:00Z" into buf (at least 21 bytes). */
void time_format(time_t t, char *buf, size_t len);

#endif
