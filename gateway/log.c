/*
 * log: key=value event lines on stderr (see log.h).
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static enum gw_log_level log_threshold = GW_LOG_INFO;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void gw_log_set_level(enum gw_log_level level)
{
	log_threshold = level;
}

int gw_log_parse_level(const char *name, enum gw_log_level *out)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*out = (enum gw_log_level)i;
			return 0;
		}
	}
	return gw_error_set(GW_EINVALID, "unknown log level '%s' (use debug, info, warn or error)", name);
}

static int needs_quotes(const char *value)
{
	if (!*value)
		return 1;
	for (const char *p = value; *p; p++)
		if (*p == ' ' || *p == '"' || *p == '=' || *p == '\\' || (unsigned char)*p < 0x20)
			return 1;
	return 0;
}

static void put_value(FILE *out, const char *value)
{
	if (!needs_quotes(value)) {
		fputs(value, out);
		return;
	}
	fputc('"', out);
	for (const char *p = value; *p; p++) {
		if (*p == '"' || *p == '\\')
			fputc('\\', out);
		if ((unsigned char)*p < 0x20)
			fputc(' ', out);
		else
			fputc(*p, out);
	}
	fputc('"', out);
}

void gw_log(enum gw_log_level level, const char *event, ...)
{
	struct timeval now;
	struct tm utc;
	char stamp[32];
	va_list ap;
	const char *key;

	if (level < log_threshold)
		return;
	gettimeofday(&now, NULL);
	gmtime_r(&now.tv_sec, &utc);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &utc);

	flockfile(stderr);
	fprintf(stderr, "ts=%s.%03ldZ level=%s event=%s", stamp, (long)(now.tv_usec / 1000),
		level_names[level], event);
	va_start(ap, event);
	while ((key = va_arg(ap, const char *)) != NULL) {
		const char *value = va_arg(ap, const char *);
		fprintf(stderr, " %s=", key);
		put_value(stderr, value ? value : "");
	}
	va_end(ap);
	fputc('\n', stderr);
	funlockfile(stderr);
}
