/*
 * libFuzzer target for lib/timeparse.c: durations are positive, relative
 * times move in the requested direction, and an absolute time survives a
 * round trip through time_format.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "timeparse.h"

#define INPUT_MAX 4096
#define NOW       ((time_t)1798761600)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	setenv("TZ", "UTC", 1);
	tzset();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text, buf[64];
	int64_t secs;
	time_t fut, past, again;
	int is_dur;

	if (size > INPUT_MAX)
		return 0;
	text = malloc(size + 1);
	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';

	is_dur = time_parse_duration(text, &secs, NULL) == 0;
	if (is_dur && secs <= 0)
		abort();
	if (time_parse(text, NOW, TIME_FUTURE, &fut, NULL) == 0) {
		if (time_parse(text, NOW, TIME_PAST, &past, NULL) != 0 && !is_dur)
			abort();
		if (is_dur) {
			if ((int64_t)fut - (int64_t)NOW != secs)
				abort();
		} else {
			/* absolute or "now": direction does not matter */
			if (past != fut)
				abort();
			time_format(fut, buf, sizeof(buf));
			if (time_parse(buf, NOW, TIME_FUTURE, &again, NULL) != 0 || again != fut)
				abort();
		}
	} else if (is_dur && secs <= INT64_MAX - (int64_t)NOW) {
		abort(); /* a valid duration that fits must be accepted */
	}
	free(text);
	return 0;
}
