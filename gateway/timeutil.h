/*
 * timeutil: timestamps on the wire, local dates in Europe/Oslo, and the
 * Norwegian calendar (public holidays, weekend releases).
 */
#ifndef GW_TIMEUTIL_H
#define GW_TIMEUTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* Milliseconds since the epoch, from CLOCK_REALTIME. */
int64_t timeutil_now_ms(void);

/* "2026-11-20T09:15:02Z" (UTC, seconds); buf at least 21 bytes. */
void timeutil_format_utc(int64_t ms, char *buf, size_t len);
/* "2026-11-20T09:15:02.123Z" (UTC, milliseconds); buf at least 25 bytes. */
void timeutil_format_utc_ms(int64_t ms, char *buf, size_t len);

/* Parse an xs:dateTime with Z or +hh:mm offset (fraction optional) to ms. */
int timeutil_parse_datetime(const char *s, int64_t *ms);

/* A date "YYYY-MM-DD", checked to be a real calendar date. */
struct gw_date {
	int year, month, day;
};
int timeutil_parse_date(const char *s, struct gw_date *out);
/* 28..31 for a month 1..12 of a proleptic Gregorian year. */
int timeutil_days_in_month(int year, int month);
/* Days from 1970-01-01 (proleptic Gregorian) and back. */
int64_t timeutil_days_from_civil(struct gw_date d);
struct gw_date timeutil_civil_from_days(int64_t days);
/* Monday = 1 .. Sunday = 7 */
int timeutil_weekday(struct gw_date d);
/* Today's date in Europe/Oslo at the instant ms. */
struct gw_date timeutil_oslo_date(int64_t ms);
/* The instant day d begins in Europe/Oslo (00:00 local: 23:00 UTC the day
 * before in winter, 22:00 in summer), in ms since the epoch. */
int64_t timeutil_oslo_day_start(struct gw_date d);

/* Easter Sunday of a year (Gregorian computus). */
struct gw_date timeutil_easter(int year);
/* Norwegian public holiday (fixed and movable) */
bool timeutil_is_public_holiday(struct gw_date d);
/* Friday, Saturday, Sunday, or the day before a public holiday. */
bool timeutil_is_weekend_release(struct gw_date d);

#endif
