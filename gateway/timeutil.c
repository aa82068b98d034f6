/*
 * timeutil: wall-clock time, xs:dateTime parsing and formatting, calendar
 * arithmetic, the local date in Europe/Oslo, and Norwegian public holidays.
 *
 * The Oslo date is computed from the EU summer-time rule (CEST from the last
 * Sunday of March 01:00 UTC to the last Sunday of October 01:00 UTC, CET
 * otherwise), so it needs no tzdata and never touches TZ or other process
 * state. Dates are proleptic Gregorian throughout.
 */
#include "timeutil.h"
#include "err.h"

#include <stdio.h>
#include <string.h>

#define MS_PER_SECOND INT64_C(1000)
#define MS_PER_MINUTE (60 * MS_PER_SECOND)
#define MS_PER_HOUR (60 * MS_PER_MINUTE)
#define MS_PER_DAY (24 * MS_PER_HOUR)

int64_t timeutil_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * MS_PER_SECOND + ts.tv_nsec / 1000000;
}

/* Floor division, so instants before 1970 land on the right day. */
static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	if ((a % b != 0) && ((a < 0) != (b < 0)))
		q--;
	return q;
}

static bool is_leap_year(int year)
{
	return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

int timeutil_days_in_month(int year, int month)
{
	static const int days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	if (month == 2 && is_leap_year(year))
		return 29;
	return days[month - 1];
}

static bool date_is_real(struct gw_date d)
{
	return d.month >= 1 && d.month <= 12 && d.day >= 1 &&
	       d.day <= timeutil_days_in_month(d.year, d.month);
}

/*
 * Days from 1970-01-01. Counts in 400-year eras of 146097 days, with years
 * starting on 1 March so the leap day falls at the end of a year.
 */
int64_t timeutil_days_from_civil(struct gw_date d)
{
	int64_t year = d.month <= 2 ? (int64_t)d.year - 1 : d.year;
	int64_t era = floor_div(year, 400);
	int64_t year_of_era = year - era * 400;                 /* 0..399 */
	int64_t month_from_march = (d.month + 9) % 12;          /* March = 0 */
	int64_t day_of_year = (153 * month_from_march + 2) / 5 + d.day - 1;
	int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 +
			     day_of_year;

	return era * 146097 + day_of_era - 719468; /* 719468: 0000-03-01 to 1970-01-01 */
}

struct gw_date timeutil_civil_from_days(int64_t days)
{
	int64_t z = days + 719468;
	int64_t era = floor_div(z, 146097);
	int64_t day_of_era = z - era * 146097;                                  /* 0..146096 */
	int64_t year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36524 -
			       day_of_era / 146096) / 365;                        /* 0..399 */
	int64_t day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 -
					    year_of_era / 100);                   /* 0..365 */
	int64_t month_from_march = (5 * day_of_year + 2) / 153;                  /* 0..11 */
	struct gw_date d;

	d.day = (int)(day_of_year - (153 * month_from_march + 2) / 5 + 1);
	d.month = (int)(month_from_march < 10 ? month_from_march + 3 : month_from_march - 9);
	d.year = (int)(year_of_era + era * 400 + (d.month <= 2 ? 1 : 0));
	return d;
}

int timeutil_weekday(struct gw_date d)
{
	/* 1970-01-01 was a Thursday (4). */
	int64_t days = timeutil_days_from_civil(d);

	return (int)(((days + 3) % 7 + 7) % 7) + 1;
}

static void split_ms(int64_t ms, struct gw_date *date, int *hour, int *minute, int *second,
		     int *milli)
{
	int64_t days = floor_div(ms, MS_PER_DAY);
	int64_t in_day = ms - days * MS_PER_DAY;

	*date = timeutil_civil_from_days(days);
	*hour = (int)(in_day / MS_PER_HOUR);
	*minute = (int)(in_day % MS_PER_HOUR / MS_PER_MINUTE);
	*second = (int)(in_day % MS_PER_MINUTE / MS_PER_SECOND);
	*milli = (int)(in_day % MS_PER_SECOND);
}

void timeutil_format_utc(int64_t ms, char *buf, size_t len)
{
	struct gw_date d;
	int hour, minute, second, milli;

	split_ms(ms, &d, &hour, &minute, &second, &milli);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02dZ", d.year, d.month, d.day, hour,
		 minute, second);
}

void timeutil_format_utc_ms(int64_t ms, char *buf, size_t len)
{
	struct gw_date d;
	int hour, minute, second, milli;

	split_ms(ms, &d, &hour, &minute, &second, &milli);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", d.year, d.month, d.day, hour,
		 minute, second, milli);
}

/* Read exactly n digits at *p into *out and advance; false if any is not a digit. */
static bool take_digits(const char **p, int n, int *out)
{
	int value = 0;

	for (int i = 0; i < n; i++) {
		char c = (*p)[i];

		if (c < '0' || c > '9')
			return false;
		value = value * 10 + (c - '0');
	}
	*p += n;
	*out = value;
	return true;
}

static bool take_char(const char **p, char expected)
{
	if (**p != expected)
		return false;
	(*p)++;
	return true;
}

/* "YYYY-MM-DD" at *p; shape only, the caller checks it is a real date. */
static bool take_date(const char **p, struct gw_date *d)
{
	return take_digits(p, 4, &d->year) && take_char(p, '-') &&
	       take_digits(p, 2, &d->month) && take_char(p, '-') && take_digits(p, 2, &d->day);
}

int timeutil_parse_date(const char *s, struct gw_date *out)
{
	const char *p = s;
	struct gw_date d;

	if (!s || !take_date(&p, &d) || *p != '\0')
		return gw_error_set(GW_EINVALID, "a date must be written YYYY-MM-DD");
	if (d.year < 1 || !date_is_real(d))
		return gw_error_set(GW_EINVALID, "the date %.10s is not a real calendar date", s);
	*out = d;
	return 0;
}

/* ".fff..." : any number of fraction digits, the first three kept as ms. */
static bool take_fraction(const char **p, int *milli)
{
	int scale = 100;
	int digits = 0;

	*milli = 0;
	if (**p != '.')
		return true;
	(*p)++;
	while (**p >= '0' && **p <= '9') {
		if (digits < 3)
			*milli += (**p - '0') * scale;
		scale /= 10;
		digits++;
		(*p)++;
	}
	return digits > 0;
}

/* "Z" or "+hh:mm" / "-hh:mm" at *p, as an offset in minutes east of UTC. */
static bool take_offset(const char **p, int *minutes)
{
	int sign, hours, mins;

	if (take_char(p, 'Z')) {
		*minutes = 0;
		return true;
	}
	if (**p != '+' && **p != '-')
		return false;
	sign = **p == '-' ? -1 : 1;
	(*p)++;
	if (!take_digits(p, 2, &hours) || !take_char(p, ':') || !take_digits(p, 2, &mins))
		return false;
	if (mins > 59 || hours * 60 + mins > 14 * 60)
		return false;
	*minutes = sign * (hours * 60 + mins);
	return true;
}

int timeutil_parse_datetime(const char *s, int64_t *ms)
{
	const char *p = s;
	struct gw_date d;
	int hour, minute, second, milli, offset;

	if (!s || !take_date(&p, &d) || !take_char(&p, 'T') || !take_digits(&p, 2, &hour) ||
	    !take_char(&p, ':') || !take_digits(&p, 2, &minute) || !take_char(&p, ':') ||
	    !take_digits(&p, 2, &second) || !take_fraction(&p, &milli))
		return gw_error_set(GW_EINVALID, "a timestamp must be written "
				    "YYYY-MM-DDThh:mm:ss with an optional fraction and an offset");
	if (!take_offset(&p, &offset) || *p != '\0')
		return gw_error_set(GW_EINVALID, "a timestamp must end with Z or an offset "
				    "+hh:mm or -hh:mm of at most 14 hours");
	if (d.year < 1 || !date_is_real(d))
		return gw_error_set(GW_EINVALID, "the timestamp's date is not a real calendar date");
	if (hour > 23 || minute > 59 || second > 59)
		return gw_error_set(GW_EINVALID, "the timestamp's time of day is out of range");
	*ms = timeutil_days_from_civil(d) * MS_PER_DAY + hour * MS_PER_HOUR +
	      minute * MS_PER_MINUTE + second * MS_PER_SECOND + milli -
	      offset * MS_PER_MINUTE;
	return 0;
}

/* The last Sunday of a month, at 01:00 UTC: the EU summer-time switch. */
static int64_t eu_switch_ms(int year, int month)
{
	struct gw_date last = { year, month, timeutil_days_in_month(year, month) };
	int64_t day = timeutil_days_from_civil(last) - (timeutil_weekday(last) % 7);

	return day * MS_PER_DAY + MS_PER_HOUR;
}

struct gw_date timeutil_oslo_date(int64_t ms)
{
	int year = timeutil_civil_from_days(floor_div(ms, MS_PER_DAY)).year;
	bool summer = ms >= eu_switch_ms(year, 3) && ms < eu_switch_ms(year, 10);
	int64_t offset = summer ? 2 * MS_PER_HOUR : MS_PER_HOUR;

	return timeutil_civil_from_days(floor_div(ms + offset, MS_PER_DAY));
}

/* 00:00 in Oslo is 22:00 UTC the day before in summer, else 23:00; a switch
 * (01:00 UTC) never falls on either, so the date there tells which. */
int64_t timeutil_oslo_day_start(struct gw_date d)
{
	int64_t summer = timeutil_days_from_civil(d) * MS_PER_DAY - 2 * MS_PER_HOUR;
	struct gw_date local = timeutil_oslo_date(summer);

	if (local.year == d.year && local.month == d.month && local.day == d.day)
		return summer;
	return summer + MS_PER_HOUR;
}

/* The anonymous Gregorian computus (Meeus, Jones, Butcher). */
struct gw_date timeutil_easter(int year)
{
	int golden = year % 19;
	int century = year / 100;
	int in_century = year % 100;
	int epact_part = (19 * golden + century - century / 4 -
			  (century - (century + 8) / 25 + 1) / 3 + 15) % 30;
	int weekday_part = (32 + 2 * (century % 4) + 2 * (in_century / 4) - epact_part -
			    in_century % 4) % 7;
	int correction = (golden + 11 * epact_part + 22 * weekday_part) / 451;
	int march_day = epact_part + weekday_part - 7 * correction + 114;
	struct gw_date d = { year, march_day / 31, march_day % 31 + 1 };

	return d;
}

bool timeutil_is_public_holiday(struct gw_date d)
{
	/* Maundy Thursday, Good Friday, Easter Sunday and Monday, Ascension, Whitsun. */
	static const int easter_offsets[] = { -3, -2, 0, 1, 39, 49, 50 };
	static const struct { int month, day; } fixed[] = {
		{ 1, 1 }, { 5, 1 }, { 5, 17 }, { 12, 25 }, { 12, 26 },
	};
	int64_t easter;
	int64_t day;

	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		if (d.month == fixed[i].month && d.day == fixed[i].day)
			return true;
	}
	easter = timeutil_days_from_civil(timeutil_easter(d.year));
	day = timeutil_days_from_civil(d);
	for (size_t i = 0; i < sizeof(easter_offsets) / sizeof(easter_offsets[0]); i++) {
		if (day == easter + easter_offsets[i])
			return true;
	}
	return false;
}

bool timeutil_is_weekend_release(struct gw_date d)
{
	struct gw_date next = timeutil_civil_from_days(timeutil_days_from_civil(d) + 1);

	return timeutil_weekday(d) >= 5 || timeutil_is_public_holiday(next);
}
