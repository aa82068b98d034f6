/*
 * test_timeutil: calendar arithmetic, xs:dateTime parsing and formatting,
 * the Europe/Oslo date across summer-time switches, and the Norwegian
 * public holidays checked against the real dates for 2024 to 2032.
 */
#include "testutil.h"
#include "timeutil.h"
#include "err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct gw_date ymd(int year, int month, int day)
{
	struct gw_date d = { year, month, day };
	return d;
}

static void assert_date(struct gw_date got, int year, int month, int day)
{
	if (got.year != year || got.month != month || got.day != day)
		fail_msg("got %04d-%02d-%02d, expected %04d-%02d-%02d", got.year, got.month,
			 got.day, year, month, day);
}

static int64_t parse_ok(const char *s)
{
	int64_t ms = 0;

	if (timeutil_parse_datetime(s, &ms) != 0)
		fail_msg("'%s' should parse: %s", s, gw_error_last());
	return ms;
}

/* ---- calendar ---------------------------------------------------------- */

static void test_days_round_trip(void **state)
{
	assert_int_equal(timeutil_days_from_civil(ymd(1970, 1, 1)), 0);
	assert_int_equal(timeutil_days_from_civil(ymd(1969, 12, 31)), -1);
	assert_int_equal(timeutil_days_from_civil(ymd(2000, 3, 1)), 11017);
	assert_int_equal(timeutil_days_from_civil(ymd(2026, 11, 20)), 20777);
	for (int64_t days = -1000000; days <= 1000000; days += 7) {
		struct gw_date d = timeutil_civil_from_days(days);

		assert_int_equal(timeutil_days_from_civil(d), days);
		assert_true(d.month >= 1 && d.month <= 12 && d.day >= 1 && d.day <= 31);
	}
	/* Consecutive days step through every date, leap days included. */
	for (int64_t days = 10900; days < 11100; days++) {
		struct gw_date a = timeutil_civil_from_days(days);
		struct gw_date b = timeutil_civil_from_days(days + 1);

		assert_true(b.day == a.day + 1 || (b.day == 1 && (b.month == a.month + 1 ||
								   (a.month == 12 && b.month == 1))));
	}
	assert_date(timeutil_civil_from_days(timeutil_days_from_civil(ymd(2000, 2, 29))), 2000, 2,
		    29);
	assert_date(timeutil_civil_from_days(timeutil_days_from_civil(ymd(1900, 2, 28)) + 1),
		    1900, 3, 1);
}

static void test_weekday(void **state)
{
	assert_int_equal(timeutil_weekday(ymd(1970, 1, 1)), 4);  /* Thursday */
	assert_int_equal(timeutil_weekday(ymd(1969, 12, 28)), 7); /* Sunday */
	assert_int_equal(timeutil_weekday(ymd(2000, 2, 29)), 2);  /* Tuesday */
	assert_int_equal(timeutil_weekday(ymd(2026, 11, 20)), 5); /* Friday */
	assert_int_equal(timeutil_weekday(ymd(2026, 12, 4)), 5);  /* Friday */
	assert_int_equal(timeutil_weekday(ymd(2026, 12, 7)), 1);  /* Monday */
	assert_int_equal(timeutil_weekday(ymd(1900, 1, 1)), 1);   /* Monday */
}

static void test_parse_date(void **state)
{
	static const char *const bad[] = {
		"2026-02-29", "2026-04-31", "2026-13-01", "2026-00-10", "2026-01-00",
		"2026-1-01",  "26-01-01",   "2026/01/01", "2026-01-01T", "2026-01-01 ",
		"",           "0000-01-01", "2026-01-32", "1900-02-29",
	};
	struct gw_date d;

	assert_int_equal(timeutil_parse_date("2026-12-04", &d), 0);
	assert_date(d, 2026, 12, 4);
	assert_int_equal(timeutil_parse_date("2024-02-29", &d), 0);
	assert_int_equal(timeutil_parse_date("2000-02-29", &d), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (timeutil_parse_date(bad[i], &d) != GW_EINVALID)
			fail_msg("'%s' should be refused", bad[i]);
	}
	assert_int_equal(timeutil_parse_date("2026-02-29", &d), GW_EINVALID);
	assert_non_null(strstr(gw_error_last(), "not a real calendar date"));
}

/* ---- timestamps -------------------------------------------------------- */

static void test_parse_datetime_offsets(void **state)
{
	int64_t utc = INT64_C(1795166102) * 1000; /* 2026-11-20T09:15:02Z */

	assert_int_equal(parse_ok("2026-11-20T09:15:02Z"), utc);
	assert_int_equal(parse_ok("2026-11-20T10:15:02+01:00"), utc);
	assert_int_equal(parse_ok("2026-11-20T03:45:02-05:30"), utc);
	assert_int_equal(parse_ok("2026-11-20T09:15:02-00:00"), utc);
	assert_int_equal(parse_ok("2026-11-20T23:15:02+14:00"), utc);
	assert_int_equal(parse_ok("2026-11-20T09:15:02.123Z"), utc + 123);
	assert_int_equal(parse_ok("2026-11-20T09:15:02.1Z"), utc + 100);
	assert_int_equal(parse_ok("2026-11-20T09:15:02.123999999+00:00"), utc + 123);
	/* An offset that crosses midnight and a year. */
	assert_int_equal(parse_ok("2027-01-01T00:30:00+01:00"), parse_ok("2026-12-31T23:30:00Z"));
	assert_int_equal(parse_ok("2024-02-29T12:00:00Z"),
			 timeutil_days_from_civil(ymd(2024, 2, 29)) * 86400000 + 12 * 3600000);
	assert_int_equal(parse_ok("1970-01-01T00:00:00Z"), 0);
	assert_int_equal(parse_ok("1969-12-31T23:59:59.999Z"), -1);
}

static void test_parse_datetime_rejects(void **state)
{
	static const struct {
		const char *text;
		const char *message;
	} bad[] = {
		{ "2026-02-29T10:00:00Z", "not a real calendar date" },
		{ "2026-04-31T10:00:00+02:00", "not a real calendar date" },
		{ "2026-11-20T10:15:00", "offset" },
		{ "2026-11-20T10:15:00+0100", "offset" },
		{ "2026-11-20T10:15:00+1:00", "offset" },
		{ "2026-11-20T10:15:00+15:00", "offset" },
		{ "2026-11-20T10:15:00+01:60", "offset" },
		{ "2026-11-20T10:15:00z", "offset" },
		{ "2026-11-20T10:15:00ZZ", "offset" },
		{ "2026-11-20T10:15:00Z ", "offset" },
		{ "2026-11-20 10:15:00Z", "YYYY-MM-DDThh:mm:ss" },
		{ "2026-11-20T10:15Z", "YYYY-MM-DDThh:mm:ss" },
		{ "2026-11-20T10:15:00.Z", "YYYY-MM-DDThh:mm:ss" },
		{ "2026-11-20", "YYYY-MM-DDThh:mm:ss" },
		{ "", "YYYY-MM-DDThh:mm:ss" },
		{ "2026-11-20T24:00:00Z", "time of day" },
		{ "2026-11-20T10:60:00Z", "time of day" },
		{ "2026-11-20T10:15:60Z", "time of day" },
	};
	int64_t ms = 42;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (timeutil_parse_datetime(bad[i].text, &ms) != GW_EINVALID)
			fail_msg("'%s' should be refused", bad[i].text);
		if (!strstr(gw_error_last(), bad[i].message))
			fail_msg("'%s': message '%s' lacks '%s'", bad[i].text, gw_error_last(),
				 bad[i].message);
	}
	assert_int_equal(ms, 42); /* untouched on failure */
}

static void test_format_utc(void **state)
{
	char buf[32];
	int64_t ms = parse_ok("2026-11-20T10:15:02.123+01:00");

	timeutil_format_utc(ms, buf, sizeof(buf));
	assert_string_equal(buf, "2026-11-20T09:15:02Z");
	timeutil_format_utc_ms(ms, buf, sizeof(buf));
	assert_string_equal(buf, "2026-11-20T09:15:02.123Z");
	timeutil_format_utc_ms(-1, buf, sizeof(buf));
	assert_string_equal(buf, "1969-12-31T23:59:59.999Z");
	timeutil_format_utc(0, buf, 21); /* the documented minimum size */
	assert_string_equal(buf, "1970-01-01T00:00:00Z");
	timeutil_format_utc_ms(parse_ok("2024-02-29T23:59:59.007Z"), buf, 25);
	assert_string_equal(buf, "2024-02-29T23:59:59.007Z");
	/* Round trip through parse. */
	timeutil_format_utc_ms(ms, buf, sizeof(buf));
	assert_int_equal(parse_ok(buf), ms);
}

static void test_now_is_sane(void **state)
{
	int64_t a = timeutil_now_ms();
	int64_t b = timeutil_now_ms();

	assert_true(a > parse_ok("2024-01-01T00:00:00Z"));
	assert_true(b >= a);
	assert_true(llabs((long long)(a / 1000 - (int64_t)time(NULL))) <= 2);
}

/* ---- Oslo -------------------------------------------------------------- */

static void assert_oslo(const char *utc, int year, int month, int day)
{
	assert_date(timeutil_oslo_date(parse_ok(utc)), year, month, day);
}

static void test_oslo_date_dst_edges(void **state)
{
	/* Winter (CET, +01:00). */
	assert_oslo("2026-01-15T22:59:59Z", 2026, 1, 15);
	assert_oslo("2026-01-15T23:00:00Z", 2026, 1, 16);
	assert_oslo("2026-12-31T22:59:59Z", 2026, 12, 31);
	assert_oslo("2026-12-31T23:00:00Z", 2027, 1, 1);
	/* 2026: summer time from 29 March 01:00Z to 25 October 01:00Z. */
	assert_oslo("2026-03-28T22:30:00Z", 2026, 3, 28); /* still CET: 23:30 */
	assert_oslo("2026-03-28T23:00:00Z", 2026, 3, 29);
	assert_oslo("2026-03-29T00:59:59Z", 2026, 3, 29);
	assert_oslo("2026-03-29T01:00:00Z", 2026, 3, 29);
	assert_oslo("2026-03-29T21:59:59Z", 2026, 3, 29); /* CEST: 23:59:59 */
	assert_oslo("2026-03-29T22:00:00Z", 2026, 3, 30);
	assert_oslo("2026-06-30T21:59:59Z", 2026, 6, 30);
	assert_oslo("2026-06-30T22:00:00Z", 2026, 7, 1);
	assert_oslo("2026-10-24T21:59:59Z", 2026, 10, 24);
	assert_oslo("2026-10-24T22:00:00Z", 2026, 10, 25); /* still CEST */
	assert_oslo("2026-10-25T00:59:59Z", 2026, 10, 25);
	assert_oslo("2026-10-25T22:30:00Z", 2026, 10, 25); /* CET again: 23:30 */
	assert_oslo("2026-10-25T23:00:00Z", 2026, 10, 26);
	/* 2027: 28 March and 31 October. */
	assert_oslo("2027-03-27T22:30:00Z", 2027, 3, 27);
	assert_oslo("2027-03-28T22:30:00Z", 2027, 3, 29);
	assert_oslo("2027-10-30T22:30:00Z", 2027, 10, 31);
	assert_oslo("2027-10-31T22:30:00Z", 2027, 10, 31);
	/* An instant given with an offset is the same instant. */
	assert_oslo("2026-12-04T00:30:00+01:00", 2026, 12, 4);
	assert_oslo("2026-07-01T00:30:00+02:00", 2026, 7, 1);
}

static void assert_day_start(int year, int month, int day, const char *utc)
{
	struct gw_date d = { year, month, day };

	assert_int_equal(timeutil_oslo_day_start(d), parse_ok(utc));
}

/* 00:00 in Oslo: 23:00 UTC the day before in winter, 22:00 in summer; the switch days too. */
static void test_oslo_day_start(void **state)
{
	assert_day_start(2026, 1, 16, "2026-01-15T23:00:00Z");
	assert_day_start(2027, 1, 1, "2026-12-31T23:00:00Z");
	assert_day_start(2026, 7, 1, "2026-06-30T22:00:00Z");
	assert_day_start(2026, 3, 29, "2026-03-28T23:00:00Z"); /* begins in CET */
	assert_day_start(2026, 3, 30, "2026-03-29T22:00:00Z");
	assert_day_start(2026, 10, 25, "2026-10-24T22:00:00Z"); /* begins in CEST */
	assert_day_start(2026, 10, 26, "2026-10-25T23:00:00Z");
	for (int64_t day = timeutil_days_from_civil((struct gw_date){ 2026, 1, 1 });
	     day < timeutil_days_from_civil((struct gw_date){ 2028, 1, 1 }); day++) {
		struct gw_date d = timeutil_civil_from_days(day);
		int64_t start = timeutil_oslo_day_start(d);
		struct gw_date at = timeutil_oslo_date(start), before = timeutil_oslo_date(start - 1);

		assert_true(at.year == d.year && at.month == d.month && at.day == d.day);
		assert_false(before.year == d.year && before.month == d.month && before.day == d.day);
	}
}

/*
 * Cross-check against the system's tzdata where it is installed: every
 * half hour from 2020 to 2035. Our code does not need tzdata; this only
 * proves it agrees with it.
 */
static void test_oslo_date_matches_tzdata(void **state)
{
	int64_t from = parse_ok("2020-01-01T00:15:00Z") / 1000;
	int64_t to = parse_ok("2035-12-31T23:45:00Z") / 1000;

	if (access("/usr/share/zoneinfo/Europe/Oslo", R_OK) != 0)
		skip();
	setenv("TZ", "Europe/Oslo", 1);
	tzset();
	for (int64_t t = from; t <= to; t += 1800) {
		time_t tt = (time_t)t;
		struct tm tm;
		struct gw_date d = timeutil_oslo_date(t * 1000);

		assert_non_null(localtime_r(&tt, &tm));
		if (d.year != tm.tm_year + 1900 || d.month != tm.tm_mon + 1 || d.day != tm.tm_mday)
			fail_msg("at %lld: %04d-%02d-%02d, tzdata says %04d-%02d-%02d",
				 (long long)t, d.year, d.month, d.day, tm.tm_year + 1900,
				 tm.tm_mon + 1, tm.tm_mday);
	}
	unsetenv("TZ");
	tzset();
}

/* ---- holidays ---------------------------------------------------------- */

static const struct {
	int year;
	struct gw_date movable[7]; /* Maundy Thu, Good Fri, Easter Sun, Easter Mon,
				      Ascension, Whit Sun, Whit Mon */
} real_holidays[] = {
	{ 2024, { { 2024, 3, 28 }, { 2024, 3, 29 }, { 2024, 3, 31 }, { 2024, 4, 1 },
		  { 2024, 5, 9 }, { 2024, 5, 19 }, { 2024, 5, 20 } } },
	{ 2025, { { 2025, 4, 17 }, { 2025, 4, 18 }, { 2025, 4, 20 }, { 2025, 4, 21 },
		  { 2025, 5, 29 }, { 2025, 6, 8 }, { 2025, 6, 9 } } },
	{ 2026, { { 2026, 4, 2 }, { 2026, 4, 3 }, { 2026, 4, 5 }, { 2026, 4, 6 },
		  { 2026, 5, 14 }, { 2026, 5, 24 }, { 2026, 5, 25 } } },
	{ 2027, { { 2027, 3, 25 }, { 2027, 3, 26 }, { 2027, 3, 28 }, { 2027, 3, 29 },
		  { 2027, 5, 6 }, { 2027, 5, 16 }, { 2027, 5, 17 } } },
	{ 2028, { { 2028, 4, 13 }, { 2028, 4, 14 }, { 2028, 4, 16 }, { 2028, 4, 17 },
		  { 2028, 5, 25 }, { 2028, 6, 4 }, { 2028, 6, 5 } } },
	{ 2029, { { 2029, 3, 29 }, { 2029, 3, 30 }, { 2029, 4, 1 }, { 2029, 4, 2 },
		  { 2029, 5, 10 }, { 2029, 5, 20 }, { 2029, 5, 21 } } },
	{ 2030, { { 2030, 4, 18 }, { 2030, 4, 19 }, { 2030, 4, 21 }, { 2030, 4, 22 },
		  { 2030, 5, 30 }, { 2030, 6, 9 }, { 2030, 6, 10 } } },
	{ 2031, { { 2031, 4, 10 }, { 2031, 4, 11 }, { 2031, 4, 13 }, { 2031, 4, 14 },
		  { 2031, 5, 22 }, { 2031, 6, 1 }, { 2031, 6, 2 } } },
	{ 2032, { { 2032, 3, 25 }, { 2032, 3, 26 }, { 2032, 3, 28 }, { 2032, 3, 29 },
		  { 2032, 5, 6 }, { 2032, 5, 16 }, { 2032, 5, 17 } } },
};

static void test_easter_real_dates(void **state)
{
	for (size_t i = 0; i < sizeof(real_holidays) / sizeof(real_holidays[0]); i++) {
		struct gw_date e = real_holidays[i].movable[2];

		assert_date(timeutil_easter(real_holidays[i].year), e.year, e.month, e.day);
	}
	/* Extremes and a century year: earliest, latest, 2000. */
	assert_date(timeutil_easter(1818), 1818, 3, 22);
	assert_date(timeutil_easter(2285), 2285, 3, 22);
	assert_date(timeutil_easter(1943), 1943, 4, 25);
	assert_date(timeutil_easter(2038), 2038, 4, 25);
	assert_date(timeutil_easter(2000), 2000, 4, 23);
	for (int year = 1900; year <= 2200; year++)
		assert_int_equal(timeutil_weekday(timeutil_easter(year)), 7);
}

/* Count the holidays of a year by walking every day. */
static int holidays_in_year(int year)
{
	int64_t first = timeutil_days_from_civil(ymd(year, 1, 1));
	int64_t last = timeutil_days_from_civil(ymd(year, 12, 31));
	int n = 0;

	for (int64_t day = first; day <= last; day++)
		n += timeutil_is_public_holiday(timeutil_civil_from_days(day));
	return n;
}

static void test_public_holidays(void **state)
{
	for (size_t i = 0; i < sizeof(real_holidays) / sizeof(real_holidays[0]); i++) {
		int year = real_holidays[i].year;

		for (size_t j = 0; j < 7; j++) {
			struct gw_date d = real_holidays[i].movable[j];
			struct gw_date before = timeutil_civil_from_days(
				timeutil_days_from_civil(d) - 1);

			if (!timeutil_is_public_holiday(d))
				fail_msg("%04d-%02d-%02d should be a holiday", d.year, d.month,
					 d.day);
			/* Easter Saturday and the Saturday before Whitsun are not. */
			if (j == 2 || j == 5)
				assert_false(timeutil_is_public_holiday(before));
		}
		assert_true(timeutil_is_public_holiday(ymd(year, 1, 1)));
		assert_true(timeutil_is_public_holiday(ymd(year, 5, 1)));
		assert_true(timeutil_is_public_holiday(ymd(year, 5, 17)));
		assert_true(timeutil_is_public_holiday(ymd(year, 12, 25)));
		assert_true(timeutil_is_public_holiday(ymd(year, 12, 26)));
		assert_false(timeutil_is_public_holiday(ymd(year, 12, 24)));
		assert_false(timeutil_is_public_holiday(ymd(year, 12, 31)));
		assert_false(timeutil_is_public_holiday(ymd(year, 5, 2)));
		/* 12 holidays, except when Whit Monday falls on 17 May (2027, 2032). */
		assert_int_equal(holidays_in_year(year), year == 2027 || year == 2032 ? 11 : 12);
	}
}

static void test_weekend_release(void **state)
{
	static const struct {
		struct gw_date date;
		bool weekend;
	} cases[] = {
		{ { 2026, 12, 4 }, true },   /* Friday */
		{ { 2026, 12, 5 }, true },   /* Saturday */
		{ { 2026, 12, 6 }, true },   /* Sunday */
		{ { 2026, 12, 3 }, false },  /* Thursday */
		{ { 2026, 12, 7 }, false },  /* Monday */
		{ { 2026, 12, 22 }, false }, /* Tuesday */
		{ { 2026, 12, 24 }, true },  /* Thursday before Christmas Day */
		{ { 2026, 12, 31 }, true },  /* Thursday before New Year's Day */
		{ { 2026, 4, 1 }, true },    /* Wednesday before Maundy Thursday */
		{ { 2026, 4, 2 }, true },    /* Maundy Thursday, before Good Friday */
		{ { 2026, 4, 7 }, false },   /* Tuesday after Easter */
		{ { 2026, 4, 30 }, true },   /* Thursday before 1 May */
		{ { 2026, 5, 13 }, true },   /* Wednesday before Ascension */
		{ { 2026, 5, 12 }, false },  /* Tuesday */
		{ { 2026, 5, 18 }, false },  /* Monday */
		{ { 2027, 5, 16 }, true },   /* Whit Sunday */
		{ { 2028, 5, 16 }, true },   /* Tuesday before 17 May */
		{ { 2028, 5, 15 }, false },  /* Monday */
		{ { 2028, 6, 6 }, false },   /* Tuesday after Whit Monday */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct gw_date d = cases[i].date;

		if (timeutil_is_weekend_release(d) != cases[i].weekend)
			fail_msg("%04d-%02d-%02d: expected weekend_release %d", d.year, d.month,
				 d.day, cases[i].weekend);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_days_round_trip),
		cmocka_unit_test(test_weekday),
		cmocka_unit_test(test_parse_date),
		cmocka_unit_test(test_parse_datetime_offsets),
		cmocka_unit_test(test_parse_datetime_rejects),
		cmocka_unit_test(test_format_utc),
		cmocka_unit_test(test_now_is_sane),
		cmocka_unit_test(test_oslo_date_dst_edges),
		cmocka_unit_test(test_oslo_day_start),
		cmocka_unit_test(test_oslo_date_matches_tzdata),
		cmocka_unit_test(test_easter_real_dates),
		cmocka_unit_test(test_public_holidays),
		cmocka_unit_test(test_weekend_release),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
