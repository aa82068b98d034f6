/*
 * err: per-thread error message store (see err.h).
 */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char error_text[1024];

int gw_error_set(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(error_text, sizeof(error_text), fmt, ap);
	va_end(ap);
	return code;
}

int gw_error_wrap(int code, const char *fmt, ...)
{
	char previous[sizeof(error_text)];
	char context[512];
	va_list ap;

	memcpy(previous, error_text, sizeof(previous));
	va_start(ap, fmt);
	vsnprintf(context, sizeof(context), fmt, ap);
	va_end(ap);
	/* Precisions keep the sum inside the buffer: context is at most 511. */
	if (previous[0])
		snprintf(error_text, sizeof(error_text), "%.511s: %.500s", context, previous);
	else
		snprintf(error_text, sizeof(error_text), "%.511s", context);
	return code;
}

const char *gw_error_last(void)
{
	return error_text[0] ? error_text : "no error recorded";
}

void gw_error_clear(void)
{
	error_text[0] = '\0';
}
