/*
 * buf: a growable byte buffer. Always NUL-terminated after its data so it can
 * be handed to string functions; len does not count that NUL.
 */
#ifndef GW_BUF_H
#define GW_BUF_H

#include <stddef.h>

typedef struct gw_buf {
	unsigned char *data;
	size_t len;
	size_t cap;
} gw_buf;

#define GW_BUF_INIT { NULL, 0, 0 }

int gw_buf_grow(gw_buf *buf, size_t extra);
int gw_buf_put(gw_buf *buf, const void *data, size_t len);
int gw_buf_puts(gw_buf *buf, const char *text);
int gw_buf_printf(gw_buf *buf, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 2, 3)))
#endif
	;
void gw_buf_reset(gw_buf *buf);
void gw_buf_free(gw_buf *buf);

#endif
