/*
 * ident: validation of the identifiers in SPEC section 2 (organisation
 * numbers, national identity numbers, municipality numbers, UUIDv4
 * MessageIds), fresh MessageIds, and the keyed pseudonym logs use for a
 * person.
 *
 * A nin is personal data. Every error text here names the rule that was
 * broken and never the digits themselves, so a caller may pass
 * gw_error_last() on to a log or a rejection reason as it is.
 *
 * Relies on OpenSSL for randomness (RAND_bytes) and HMAC-SHA-256.
 */
#include "ident.h"
#include "timeutil.h"
#include "err.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <stdio.h>
#include <string.h>

static bool all_digits(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
	}
	return s[len] == '\0';
}

static int digit(const char *s, size_t i)
{
	return s[i] - '0';
}

/*
 * The mod-11 check digit for the first n digits of s with the given weights:
 * 0..9, or -1 when the remainder is 1 (no valid check digit exists).
 */
static int mod11_check(const char *s, const int *weights, size_t n)
{
	int sum = 0;
	int rest;

	for (size_t i = 0; i < n; i++)
		sum += digit(s, i) * weights[i];
	rest = sum % 11;
	if (rest == 0)
		return 0;
	if (rest == 1)
		return -1;
	return 11 - rest;
}

bool ident_orgnr_valid(const char *s)
{
	static const int weights[8] = { 3, 2, 7, 6, 5, 4, 3, 2 };
	int check;

	if (!s || strlen(s) != IDENT_ORGNR_LEN || !all_digits(s, IDENT_ORGNR_LEN))
		return false;
	check = mod11_check(s, weights, 8);
	return check >= 0 && check == digit(s, 8);
}

/*
 * The century of a nin from its individual number (digits 7-9) and
 * two-digit year, per the Norwegian rules; 0 when the combination is not
 * one that has ever been issued.
 */
static int nin_century(int individual, int yy)
{
	if (individual <= 499)
		return 1900;
	if (individual <= 749 && yy >= 54)
		return 1800;
	if (yy <= 39)
		return 2000;
	if (individual >= 900)
		return 1900;
	return 0;
}

static int nin_check_digits(const char *s)
{
	static const int k1_weights[9] = { 3, 7, 6, 1, 8, 9, 4, 5, 2 };
	static const int k2_weights[10] = { 5, 4, 3, 2, 7, 6, 5, 4, 3, 2 };
	int k1 = mod11_check(s, k1_weights, 9);
	int k2;

	if (k1 < 0)
		return gw_error_set(GW_EINVALID, "the national identity number has digits "
				    "for which no first check digit exists");
	if (k1 != digit(s, 9))
		return gw_error_set(GW_EINVALID, "the national identity number's first check "
				    "digit does not match");
	k2 = mod11_check(s, k2_weights, 10);
	if (k2 < 0)
		return gw_error_set(GW_EINVALID, "the national identity number has digits "
				    "for which no second check digit exists");
	if (k2 != digit(s, 10))
		return gw_error_set(GW_EINVALID, "the national identity number's second check "
				    "digit does not match");
	return 0;
}

static int nin_check_date(const char *s, bool allow_synthetic, enum ident_nin_kind *kind)
{
	int day = digit(s, 0) * 10 + digit(s, 1);
	int month = digit(s, 2) * 10 + digit(s, 3);
	int yy = digit(s, 4) * 10 + digit(s, 5);
	int individual = digit(s, 6) * 100 + digit(s, 7) * 10 + digit(s, 8);
	int century;

	*kind = IDENT_NIN_FNR;
	if (day > 40) {
		*kind = IDENT_NIN_DNR;
		day -= 40;
	}
	if (month > 80) {
		if (!allow_synthetic)
			return gw_error_set(GW_EINVALID, "the national identity number is a "
					    "synthetic test number, and test numbers are "
					    "not accepted here");
		month -= 80;
	}
	century = nin_century(individual, yy);
	if (century == 0)
		return gw_error_set(GW_EINVALID, "the national identity number's individual "
				    "number does not fit its birth year");
	if (month < 1 || month > 12 || day < 1 || day > timeutil_days_in_month(century + yy, month))
		return gw_error_set(GW_EINVALID, "the national identity number's date part "
				    "is not a real date");
	return 0;
}

int ident_nin_check(const char *s, bool allow_synthetic, enum ident_nin_kind *kind)
{
	enum ident_nin_kind found;
	int rc;

	if (!s || strlen(s) != 11 || !all_digits(s, 11))
		return gw_error_set(GW_EINVALID, "a national identity number must be "
				    "exactly 11 digits");
	if ((rc = nin_check_digits(s)) < 0)
		return rc;
	if ((rc = nin_check_date(s, allow_synthetic, &found)) < 0)
		return rc;
	if (kind)
		*kind = found;
	return 0;
}

/* The 11 digits at s have both check digits and a day and month (any kind of number). */
static bool nin_shaped(const char *s)
{
	static const int k1_weights[9] = { 3, 7, 6, 1, 8, 9, 4, 5, 2 };
	static const int k2_weights[10] = { 5, 4, 3, 2, 7, 6, 5, 4, 3, 2 };
	int day = digit(s, 0) * 10 + digit(s, 1), month = digit(s, 2) * 10 + digit(s, 3);

	if (day > 40)
		day -= 40;
	if (month > 80)
		month -= 80;
	return day >= 1 && day <= 31 && month >= 1 && month <= 12 &&
	       mod11_check(s, k1_weights, 9) == digit(s, 9) &&
	       mod11_check(s, k2_weights, 10) == digit(s, 10);
}

/* The runs of exactly 11 digits in s[0..len) that are nin_shaped: counted (and masked). */
static size_t each_nin(char *s, size_t len, bool mask)
{
	size_t found = 0, i = 0;

	while (i < len) {
		size_t run = 0;

		while (i + run < len && s[i + run] >= '0' && s[i + run] <= '9')
			run++;
		if (run == 11 && nin_shaped(s + i)) {
			found++;
			if (mask)
				memset(s + i, '*', 11);
		}
		i += run ? run : 1;
	}
	return found;
}

bool ident_has_nin(const char *s)
{
	return s && each_nin((char *)s, strlen(s), false) > 0;
}

size_t ident_mask_nins(char *s, size_t len)
{
	return each_nin(s, len, true);
}

bool ident_municipality_valid(const char *s)
{
	if (!s || strlen(s) != 4 || !all_digits(s, 4))
		return false;
	return strcmp(s, "0101") >= 0;
}

static bool is_lower_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

bool ident_uuid4_valid(const char *s)
{
	if (!s || strlen(s) != IDENT_UUID_LEN)
		return false;
	for (size_t i = 0; i < IDENT_UUID_LEN; i++) {
		bool dash_place = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash_place ? s[i] != '-' : !is_lower_hex(s[i]))
			return false;
	}
	return s[14] == '4' && strchr("89ab", s[19]) != NULL;
}

static void hex_encode(const unsigned char *bytes, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[bytes[i] >> 4];
		out[2 * i + 1] = hex[bytes[i] & 0x0f];
	}
	out[2 * n] = '\0';
}

int ident_uuid4_new(char out[IDENT_UUID_LEN + 1])
{
	unsigned char raw[16];
	char hex[33];

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return gw_error_set(GW_ERROR, "the random number generator failed to "
				    "produce a message id");
	raw[6] = (unsigned char)((raw[6] & 0x0f) | 0x40); /* version 4 */
	raw[8] = (unsigned char)((raw[8] & 0x3f) | 0x80); /* variant 10xx */
	hex_encode(raw, sizeof(raw), hex);
	snprintf(out, IDENT_UUID_LEN + 1, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8,
		 hex + 12, hex + 16, hex + 20);
	return 0;
}

int ident_pseudonym(const unsigned char *key, size_t key_len, const char *nin, char out[17])
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mac_len = 0;
	char hex[2 * EVP_MAX_MD_SIZE + 1];

	if (!key || key_len == 0)
		return gw_error_set(GW_EINVALID, "the pseudonym key is empty");
	if (key_len > (size_t)2147483647)
		return gw_error_set(GW_EINVALID, "the pseudonym key is too long");
	if (!nin)
		return gw_error_set(GW_EINVALID, "no value was given to make a pseudonym of");
	if (!HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)nin, strlen(nin), mac,
		  &mac_len) || mac_len < 8)
		return gw_error_set(GW_ERROR, "HMAC-SHA-256 for a pseudonym failed");
	hex_encode(mac, 8, hex);
	memcpy(out, hex, 17);
	return 0;
}
