/*
 * err: the error store. A function that can fail returns 0 or a negative
 * gw_code and, on failure, leaves a sentence for the caller to show through
 * gw_error_last(). The store is per thread. Messages never hold personal data:
 * callers name elements and files, never values such as a nin.
 */
#ifndef GW_ERR_H
#define GW_ERR_H

enum gw_code {
	GW_OK = 0,
	GW_ERROR = -1,    /* generic failure (I/O, library) */
	GW_ENOMEM = -2,
	GW_ENOTFOUND = -3,
	GW_EEXISTS = -4,
	GW_EINVALID = -5, /* input that breaks a rule: a rejection, not a fault */
	GW_ETEMP = -6,    /* temporary: worth trying again later */
};

#if defined(__GNUC__)
#define GW_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define GW_PRINTF(a, b)
#endif

/* Store a message and return code, so `return gw_error_set(...)` reads well. */
int gw_error_set(int code, const char *fmt, ...) GW_PRINTF(2, 3);
/* Prefix the stored message with context: "context: old message". */
int gw_error_wrap(int code, const char *fmt, ...) GW_PRINTF(2, 3);
const char *gw_error_last(void);
void gw_error_clear(void);

#endif
