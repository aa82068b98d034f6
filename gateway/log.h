/*
 * log: one line per event on stderr, key=value, journald friendly:
 *   ts=2026-11-20T09:15:02.123Z level=info event=delivered msg=3f1c... status=200
 * Values with spaces or quotes are quoted. Never pass personal data (nin,
 * names): refer to a person by ident_pseudonym().
 */
#ifndef GW_LOG_H
#define GW_LOG_H

#include "err.h"

enum gw_log_level { GW_LOG_DEBUG, GW_LOG_INFO, GW_LOG_WARN, GW_LOG_ERROR };

void gw_log_set_level(enum gw_log_level level);
int gw_log_parse_level(const char *name, enum gw_log_level *out);

/*
 * Log an event with key/value pairs given as alternating strings, ended by
 * NULL: gw_log(GW_LOG_INFO, "delivered", "msg", id, "status", "200", NULL).
 */
void gw_log(enum gw_log_level level, const char *event, ...);

#endif
