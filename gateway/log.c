/*
 * log: key=value event lines on stderr (see log.h).
 */
#include "log.h"
#include "buf.h"
#include "ident.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

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

static void write_all_stderr(const unsigned char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(STDERR_FILENO, data, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* nowhere left to report a failing log */
		data += n;
		len -= (size_t)n;
	}
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

static void put_value(gw_buf *line, const char *value)
{
	if (!needs_quotes(value)) {
		gw_buf_puts(line, value);
		return;
	}
	gw_buf_put(line, "\"", 1);
	for (const char *p = value; *p; p++) {
		if (*p == '"' || *p == '\\')
			gw_buf_put(line, "\\", 1);
		gw_buf_put(line, (unsigned char)*p < 0x20 ? " " : p, 1);
	}
	gw_buf_put(line, "\"", 1);
}

/*
 * A nin must reach no log, but values come from outside: a spool file's
 * name, a path in an error text. Whatever looks like one is masked. Hashes
 * and digests are left alone (an operator compares them with a copy), as
 * they never hold a nin.
 */
static bool may_mask(const char *key)
{
	return strcmp(key, "hash") != 0 && strcmp(key, "digest") != 0;
}

/*
 * The line is built in memory and written with one write(2): processes
 * sharing a log file (the receiver's workers) never interleave within a
 * line, and a line costs one system call.
 */
void gw_log(enum gw_log_level level, const char *event, ...)
{
	struct timeval now;
	struct tm utc;
	char stamp[32];
	gw_buf line = GW_BUF_INIT;
	va_list ap;
	const char *key;

	if (level < log_threshold)
		return;
	gettimeofday(&now, NULL);
	gmtime_r(&now.tv_sec, &utc);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &utc);

	gw_buf_printf(&line, "ts=%s.%03ldZ level=%s event=%s", stamp, (long)(now.tv_usec / 1000),
		      level_names[level], event);
	va_start(ap, event);
	while ((key = va_arg(ap, const char *)) != NULL) {
		const char *value = va_arg(ap, const char *);
		size_t start;

		gw_buf_printf(&line, " %s=", key);
		start = line.len;
		put_value(&line, value ? value : "");
		if (may_mask(key) && line.data)
			ident_mask_nins((char *)line.data + start, line.len - start);
	}
	va_end(ap);
	gw_buf_put(&line, "\n", 1);
	if (line.data)
		write_all_stderr(line.data, line.len);
	gw_buf_free(&line);
}
