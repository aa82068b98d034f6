/*
 * buf: growable byte buffer (see buf.h).
 */
#include "buf.h"
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int gw_buf_grow(gw_buf *buf, size_t extra)
{
	size_t need, cap;
	unsigned char *data;

	if (extra > ((size_t)-1) / 2 - buf->len - 1)
		return gw_error_set(GW_ENOMEM, "buffer size overflow");
	need = buf->len + extra + 1;
	if (need <= buf->cap)
		return 0;
	cap = buf->cap ? buf->cap : 256;
	while (cap < need)
		cap *= 2;
	data = realloc(buf->data, cap);
	if (!data)
		return gw_error_set(GW_ENOMEM, "out of memory growing a buffer to %zu bytes", cap);
	buf->data = data;
	buf->cap = cap;
	return 0;
}

int gw_buf_put(gw_buf *buf, const void *data, size_t len)
{
	if (gw_buf_grow(buf, len) < 0)
		return GW_ENOMEM;
	if (len)
		memcpy(buf->data + buf->len, data, len);
	buf->len += len;
	buf->data[buf->len] = '\0';
	return 0;
}

int gw_buf_puts(gw_buf *buf, const char *text)
{
	return gw_buf_put(buf, text, strlen(text));
}

int gw_buf_printf(gw_buf *buf, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return gw_error_set(GW_ERROR, "formatting failed");
	if (gw_buf_grow(buf, (size_t)n) < 0)
		return GW_ENOMEM;
	va_start(ap, fmt);
	vsnprintf((char *)buf->data + buf->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	buf->len += (size_t)n;
	return 0;
}

void gw_buf_reset(gw_buf *buf)
{
	buf->len = 0;
	if (buf->data)
		buf->data[0] = '\0';
}

void gw_buf_free(gw_buf *buf)
{
	free(buf->data);
	buf->data = NULL;
	buf->len = buf->cap = 0;
}
