/*
 * test_ident: organisation numbers, national identity numbers (fødselsnummer,
 * D-number, synthetic test numbers), municipality numbers, UUIDv4 and the
 * keyed pseudonym.
 *
 * Valid nins are made here by a small generator (the check digit rules
 * applied to a chosen date and individual number), so the tests do not
 * depend on any real person's number. Every rejection is checked for the
 * rule it names and for never echoing the digits.
 */
#include "testutil.h"
#include "ident.h"
#include "err.h"

#include <stdio.h>
#include <string.h>

/* ---- generators -------------------------------------------------------- */

/* The mod-11 check digit of the first n digits, or -1 when none exists. */
static int check_digit(const char *digits, const int *weights, int n)
{
	int sum = 0;

	for (int i = 0; i < n; i++)
		sum += (digits[i] - '0') * weights[i];
	sum %= 11;
	return sum == 0 ? 0 : sum == 1 ? -1 : 11 - sum;
}

/* A 9-digit orgnr from an 8-digit base; false when the base has no check digit. */
static bool make_orgnr(const char *base, char out[10])
{
	static const int w[8] = { 3, 2, 7, 6, 5, 4, 3, 2 };
	int k = check_digit(base, w, 8);

	if (k < 0)
		return false;
	memcpy(out, base, 8);
	out[8] = (char)('0' + k);
	out[9] = '\0';
	return true;
}

/* Write value as exactly n decimal digits. */
static void put_digits(char *out, int value, int n)
{
	for (int i = n - 1; i >= 0; i--) {
		out[i] = (char)('0' + value % 10);
		value /= 10;
	}
}

/*
 * An 11-digit nin for day/month/yy as written (D-number and synthetic
 * offsets included by the caller), trying individual numbers from `from`
 * upwards until both check digits exist. Returns the individual number used.
 */
static int make_nin(int dd, int mm, int yy, int from, char out[12])
{
	static const int w1[9] = { 3, 7, 6, 1, 8, 9, 4, 5, 2 };
	static const int w2[10] = { 5, 4, 3, 2, 7, 6, 5, 4, 3, 2 };

	for (int ind = from; ind < from + 100 && ind <= 999; ind++) {
		int k1, k2;

		put_digits(out, dd, 2);
		put_digits(out + 2, mm, 2);
		put_digits(out + 4, yy, 2);
		put_digits(out + 6, ind, 3);
		if ((k1 = check_digit(out, w1, 9)) < 0)
			continue;
		out[9] = (char)('0' + k1);
		out[10] = '\0';
		if ((k2 = check_digit(out, w2, 10)) < 0)
			continue;
		out[10] = (char)('0' + k2);
		out[11] = '\0';
		return ind;
	}
	fail_msg("no nin with check digits for %02d%02d%02d from %d", dd, mm, yy, from);
	return -1;
}

/* The message must not contain the number, nor its date part. */
static void assert_no_digits_leak(const char *nin)
{
	const char *msg = gw_error_last();
	char date_part[7];

	memcpy(date_part, nin, 6);
	date_part[6] = '\0';
	if (strstr(msg, nin) || strstr(msg, date_part))
		fail_msg("error text leaks the number: %s", msg);
	for (const char *p = msg; *p; p++) {
		if (*p >= '0' && *p <= '9')
			fail_msg("error text contains digits: %s", msg);
	}
}

/* ---- orgnr ------------------------------------------------------------- */

static void test_orgnr(void **state)
{
	static const char *const valid[] = { "974760673", "964338531", "923609016",
					     "889640782", "971526920" };
	static const char *const invalid[] = { "974760674", "974760670", "97476067",
					       "9747606730", "97476067a", " 974760673",
					       "974760673 ", "", "000000001", "-74760673" };
	char org[10];
	char base[9];
	int made = 0, no_check = 0;

	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		if (!ident_orgnr_valid(valid[i]))
			fail_msg("%s should be valid", valid[i]);
	}
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		if (ident_orgnr_valid(invalid[i]))
			fail_msg("'%s' should be invalid", invalid[i]);
	}
	assert_false(ident_orgnr_valid(NULL));

	/* Generated: every base with a check digit gives exactly one valid orgnr. */
	for (int n = 81000000; n < 81000400; n++) {
		snprintf(base, sizeof(base), "%08d", n);
		if (!make_orgnr(base, org)) {
			/* remainder 1: no last digit makes it valid */
			for (char c = '0'; c <= '9'; c++) {
				snprintf(org, sizeof(org), "%s%c", base, c);
				assert_false(ident_orgnr_valid(org));
			}
			no_check++;
			continue;
		}
		assert_true(ident_orgnr_valid(org));
		for (char c = '0'; c <= '9'; c++) {
			char other[10];

			snprintf(other, sizeof(other), "%s%c", base, c);
			assert_int_equal(ident_orgnr_valid(other), c == org[8]);
		}
		made++;
	}
	assert_true(made > 300 && no_check > 10);
}

/* ---- nin --------------------------------------------------------------- */

struct nin_case {
	const char *what;
	int dd, mm, yy, from; /* as written in the number */
	bool allow_synthetic;
	int expect;                /* 0 or GW_EINVALID */
	enum ident_nin_kind kind;  /* when valid */
	const char *message;       /* when invalid */
};

static const struct nin_case nin_cases[] = {
	{ "plain 1970", 1, 1, 70, 123, false, 0, IDENT_NIN_FNR, NULL },
	{ "leap day 1984", 29, 2, 84, 200, false, 0, IDENT_NIN_FNR, NULL },
	{ "leap day 2000", 29, 2, 0, 500, false, 0, IDENT_NIN_FNR, NULL },
	{ "31 December 1999, individual 9xx", 31, 12, 99, 950, false, 0, IDENT_NIN_FNR, NULL },
	{ "1855, individual 5xx-7xx", 15, 6, 55, 600, false, 0, IDENT_NIN_FNR, NULL },
	{ "1854, the first 1800s year", 1, 1, 54, 500, false, 0, IDENT_NIN_FNR, NULL },
	{ "2000, individual 999", 1, 1, 0, 980, false, 0, IDENT_NIN_FNR, NULL },
	{ "leap day 1856", 29, 2, 56, 650, false, 0, IDENT_NIN_FNR, NULL },
	{ "2001, individual 8xx", 28, 2, 1, 800, false, 0, IDENT_NIN_FNR, NULL },
	{ "2039, individual 9xx", 30, 4, 39, 900, false, 0, IDENT_NIN_FNR, NULL },
	{ "D-number 1 January", 41, 1, 70, 123, false, 0, IDENT_NIN_DNR, NULL },
	{ "D-number 31 December", 71, 12, 85, 300, false, 0, IDENT_NIN_DNR, NULL },
	{ "D-number leap day 1992", 69, 2, 92, 100, false, 0, IDENT_NIN_DNR, NULL },
	{ "synthetic, allowed", 1, 81, 90, 400, true, 0, IDENT_NIN_FNR, NULL },
	{ "synthetic December, allowed", 24, 92, 5, 600, true, 0, IDENT_NIN_FNR, NULL },
	{ "synthetic D-number, allowed", 45, 86, 95, 200, true, 0, IDENT_NIN_DNR, NULL },

	{ "synthetic, not allowed", 1, 81, 90, 400, false, GW_EINVALID, 0, "synthetic test number" },
	{ "synthetic D-number, not allowed", 45, 86, 95, 200, false, GW_EINVALID, 0,
	  "synthetic test number" },
	{ "29 February 2001", 29, 2, 1, 500, false, GW_EINVALID, 0, "not a real date" },
	{ "29 February 1900", 29, 2, 0, 100, false, GW_EINVALID, 0, "not a real date" },
	{ "29 February 1855", 29, 2, 55, 600, false, GW_EINVALID, 0, "not a real date" },
	{ "31 April", 31, 4, 80, 123, false, GW_EINVALID, 0, "not a real date" },
	{ "day 0", 0, 1, 80, 123, false, GW_EINVALID, 0, "not a real date" },
	{ "day 32", 32, 1, 80, 123, false, GW_EINVALID, 0, "not a real date" },
	{ "month 0", 10, 0, 80, 123, false, GW_EINVALID, 0, "not a real date" },
	{ "month 13", 10, 13, 80, 123, false, GW_EINVALID, 0, "not a real date" },
	{ "H-number style month + 40", 10, 41, 80, 123, false, GW_EINVALID, 0, "not a real date" },
	{ "D-number day 32", 72, 1, 80, 123, false, GW_EINVALID, 0, "not a real date" },
	{ "D-number 30 February", 70, 2, 80, 123, false, GW_EINVALID, 0, "not a real date" },
	{ "synthetic month 13, allowed", 10, 93, 80, 123, true, GW_EINVALID, 0, "not a real date" },
	{ "individual 5xx with year 45", 1, 1, 45, 500, false, GW_EINVALID, 0,
	  "does not fit its birth year" },
	{ "individual 6xx with year 53", 1, 1, 53, 600, false, GW_EINVALID, 0,
	  "does not fit its birth year" },
	{ "individual 9xx with year 40 (1940, not 2040)", 29, 2, 40, 900, false, 0, IDENT_NIN_FNR,
	  NULL },
	{ "individual 5xx with year 40", 1, 1, 40, 500, false, GW_EINVALID, 0,
	  "does not fit its birth year" },
	{ "individual 75x with year 70", 1, 1, 70, 750, false, GW_EINVALID, 0,
	  "does not fit its birth year" },
	{ "individual 8xx with year 99", 1, 1, 99, 800, false, GW_EINVALID, 0,
	  "does not fit its birth year" },
};

static void test_nin_table(void **state)
{
	for (size_t i = 0; i < sizeof(nin_cases) / sizeof(nin_cases[0]); i++) {
		const struct nin_case *c = &nin_cases[i];
		enum ident_nin_kind kind = (enum ident_nin_kind)-1;
		char nin[12];
		int rc;

		make_nin(c->dd, c->mm, c->yy, c->from, nin);
		gw_error_clear();
		rc = ident_nin_check(nin, c->allow_synthetic, &kind);
		if (rc != c->expect)
			fail_msg("%s: expected %d, got %d (%s)", c->what, c->expect, rc,
				 gw_error_last());
		if (rc == 0) {
			assert_int_equal(kind, c->kind);
			continue;
		}
		if (!strstr(gw_error_last(), c->message))
			fail_msg("%s: message '%s' lacks '%s'", c->what, gw_error_last(),
				 c->message);
		assert_no_digits_leak(nin);
	}
}

static void test_nin_check_digits(void **state)
{
	char nin[12], bad[12];
	int tested_k1 = 0, tested_k2 = 0;

	/* Every wrong value of either check digit is refused with the right rule. */
	for (int yy = 50; yy < 60; yy++) {
		make_nin(12, 3, yy, 200, nin);
		assert_int_equal(ident_nin_check(nin, false, NULL), 0);
		for (char c = '0'; c <= '9'; c++) {
			memcpy(bad, nin, sizeof(bad));
			if (c != nin[9]) {
				bad[9] = c;
				assert_int_equal(ident_nin_check(bad, false, NULL), GW_EINVALID);
				assert_non_null(strstr(gw_error_last(), "first check digit"));
				assert_no_digits_leak(bad);
				tested_k1++;
			}
			memcpy(bad, nin, sizeof(bad));
			if (c != nin[10]) {
				bad[10] = c;
				assert_int_equal(ident_nin_check(bad, false, NULL), GW_EINVALID);
				assert_non_null(strstr(gw_error_last(), "second check digit"));
				assert_no_digits_leak(bad);
				tested_k2++;
			}
		}
	}
	assert_int_equal(tested_k1, 90);
	assert_int_equal(tested_k2, 90);
}

static void test_nin_no_check_digit_exists(void **state)
{
	static const int w1[9] = { 3, 7, 6, 1, 8, 9, 4, 5, 2 };
	char nin[12];
	bool found = false;

	/* Individual numbers whose first nine digits give remainder 1. */
	for (int ind = 100; ind < 200 && !found; ind++) {
		snprintf(nin, sizeof(nin), "010180%03d00", ind);
		if (check_digit(nin, w1, 9) != -1)
			continue;
		found = true;
		for (char c = '0'; c <= '9'; c++) {
			nin[9] = c;
			assert_int_equal(ident_nin_check(nin, false, NULL), GW_EINVALID);
			assert_non_null(strstr(gw_error_last(), "no first check digit exists"));
			assert_no_digits_leak(nin);
		}
	}
	assert_true(found);
}

static void test_nin_shape(void **state)
{
	static const char *const bad[] = { "", "0101701234", "010170123456", "0101701234a",
					   "01017O12345", " 0101701234", "01017012345 ",
					   "0101-701234" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(ident_nin_check(bad[i], true, NULL), GW_EINVALID);
		assert_non_null(strstr(gw_error_last(), "exactly 11 digits"));
		if (bad[i][0] && strstr(gw_error_last(), bad[i]))
			fail_msg("error text leaks the input: %s", gw_error_last());
	}
	assert_int_equal(ident_nin_check(NULL, true, NULL), GW_EINVALID);
}

/* Many generated numbers across the calendar: all valid, D-numbers too. */
static void test_nin_generated_sweep(void **state)
{
	char nin[12];
	enum ident_nin_kind kind;
	int n = 0;

	for (int month = 1; month <= 12; month++) {
		for (int day = 1; day <= 28; day += 3) {
			for (int yy = 0; yy < 100; yy += 7) {
				int from = yy <= 39 ? 500 : 100;

				make_nin(day, month, yy, from, nin);
				assert_int_equal(ident_nin_check(nin, false, &kind), 0);
				assert_int_equal(kind, IDENT_NIN_FNR);
				make_nin(day + 40, month, yy, from, nin);
				assert_int_equal(ident_nin_check(nin, false, &kind), 0);
				assert_int_equal(kind, IDENT_NIN_DNR);
				make_nin(day, month + 80, yy, from, nin);
				assert_int_equal(ident_nin_check(nin, false, NULL), GW_EINVALID);
				assert_int_equal(ident_nin_check(nin, true, &kind), 0);
				n++;
			}
		}
	}
	assert_true(n > 1000);
}

/* ---- municipality ------------------------------------------------------ */

static void test_municipality(void **state)
{
	static const char *const valid[] = { "0301", "0101", "1103", "4601", "5001", "9999" };
	static const char *const invalid[] = { "0100", "0000", "301", "03011", "03a1", "",
					       " 301", "-301" };

	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
		assert_true(ident_municipality_valid(valid[i]));
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		if (ident_municipality_valid(invalid[i]))
			fail_msg("'%s' should be invalid", invalid[i]);
	}
	assert_false(ident_municipality_valid(NULL));
}

/* ---- uuid -------------------------------------------------------------- */

static void test_uuid4_valid(void **state)
{
	static const char *const valid[] = {
		"3f1c2a4e-9b7d-4c1e-8a2b-0123456789ab",
		"00000000-0000-4000-8000-000000000000",
		"ffffffff-ffff-4fff-bfff-ffffffffffff",
		"12345678-9abc-4def-9012-3456789abcde",
		"12345678-9abc-4def-a012-3456789abcde",
	};
	static const char *const invalid[] = {
		"3F1C2A4E-9B7D-4C1E-8A2B-0123456789AB", /* upper case */
		"3f1c2a4e-9b7d-4c1e-8A2b-0123456789ab", /* one upper-case letter */
		"3f1c2a4e-9b7d-1c1e-8a2b-0123456789ab", /* version 1 */
		"3f1c2a4e-9b7d-5c1e-8a2b-0123456789ab", /* version 5 */
		"3f1c2a4e-9b7d-4c1e-ca2b-0123456789ab", /* variant 110x */
		"3f1c2a4e-9b7d-4c1e-7a2b-0123456789ab", /* variant 0xxx */
		"3f1c2a4e9b7d4c1e8a2b0123456789ab",     /* no dashes */
		"3f1c2a4e-9b7d-4c1e-8a2b-0123456789a",  /* short */
		"3f1c2a4e-9b7d-4c1e-8a2b-0123456789abc", /* long */
		"3f1c2a4e-9b7d4-c1e-8a2b-0123456789ab", /* dash misplaced */
		"{3f1c2a4e-9b7d-4c1e-8a2b-0123456789}",
		"3f1c2a4g-9b7d-4c1e-8a2b-0123456789ab", /* not hex */
		"",
	};

	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
		assert_true(ident_uuid4_valid(valid[i]));
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		if (ident_uuid4_valid(invalid[i]))
			fail_msg("'%s' should be invalid", invalid[i]);
	}
	assert_false(ident_uuid4_valid(NULL));
}

static void test_uuid4_new(void **state)
{
	static const char variant_nibbles[] = "89ab";
	char prev[IDENT_UUID_LEN + 1] = "";
	char id[IDENT_UUID_LEN + 1];
	unsigned variants = 0;

	for (int i = 0; i < 2000; i++) {
		assert_int_equal(ident_uuid4_new(id), 0);
		assert_int_equal(strlen(id), IDENT_UUID_LEN);
		if (!ident_uuid4_valid(id))
			fail_msg("generated '%s' is not a valid UUIDv4", id);
		assert_string_not_equal(id, prev);
		variants |= 1u << (strchr(variant_nibbles, id[19]) - variant_nibbles);
		memcpy(prev, id, sizeof(id));
	}
	assert_int_equal(variants, 0xf); /* all four variant nibbles turn up */
}

/* ---- pseudonym --------------------------------------------------------- */

static void test_pseudonym(void **state)
{
	unsigned char key[20];
	char out[17], again[17], other[17];
	char nin[12];

	/* RFC 4231 test case 1: HMAC-SHA-256(0x0b * 20, "Hi There") = b0344c61d8db3853... */
	memset(key, 0x0b, sizeof(key));
	assert_int_equal(ident_pseudonym(key, sizeof(key), "Hi There", out), 0);
	assert_string_equal(out, "b0344c61d8db3853");

	make_nin(1, 1, 70, 123, nin);
	assert_int_equal(ident_pseudonym((const unsigned char *)"local secret", 12, nin, out), 0);
	assert_int_equal(ident_pseudonym((const unsigned char *)"local secret", 12, nin, again), 0);
	assert_string_equal(out, again);
	assert_int_equal(strlen(out), 16);
	assert_null(strstr(out, nin));
	assert_int_equal(ident_pseudonym((const unsigned char *)"other secret", 12, nin, other), 0);
	assert_string_not_equal(out, other);

	assert_int_equal(ident_pseudonym(key, 0, nin, out), GW_EINVALID);
	assert_non_null(strstr(gw_error_last(), "key is empty"));
	assert_int_equal(ident_pseudonym(NULL, 5, nin, out), GW_EINVALID);
}

/* Runs of exactly 11 digits with a nin's shape, anywhere in a text; nothing else. */
static void test_nin_shaped_runs_found_and_masked(void **state)
{
	char text[] = "a15039012488b 45039012488x 15039012489 123456789012 15039012488";

	assert_true(ident_has_nin("file-15039012488.xml"));
	assert_true(ident_has_nin("45039010066")); /* a D-number */
	assert_false(ident_has_nin("15039012489"));  /* wrong second check digit */
	assert_false(ident_has_nin("150390124880")); /* 12 digits */
	assert_false(ident_has_nin("KDI-2026-000123"));
	assert_false(ident_has_nin(NULL));
	assert_int_equal(ident_mask_nins(text, strlen(text)), 2);
	assert_string_equal(text, "a***********b 45039012488x 15039012489 123456789012 ***********");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nin_shaped_runs_found_and_masked),
		cmocka_unit_test(test_orgnr),
		cmocka_unit_test(test_nin_table),
		cmocka_unit_test(test_nin_check_digits),
		cmocka_unit_test(test_nin_no_check_digit_exists),
		cmocka_unit_test(test_nin_shape),
		cmocka_unit_test(test_nin_generated_sweep),
		cmocka_unit_test(test_municipality),
		cmocka_unit_test(test_uuid4_valid),
		cmocka_unit_test(test_uuid4_new),
		cmocka_unit_test(test_pseudonym),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
