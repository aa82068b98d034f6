/*
 * ident: the identifiers of SPEC section 2. Pure functions, no I/O.
 * Error texts never contain the value checked when it is personal (a nin).
 */
#ifndef GW_IDENT_H
#define GW_IDENT_H

#include <stdbool.h>
#include <stddef.h>

#define IDENT_ORGNR_LEN 9
#define IDENT_UUID_LEN 36

/* 9 digits, mod 11 with weights 3 2 7 6 5 4 3 2 (remainder 1: invalid). */
bool ident_orgnr_valid(const char *s);

enum ident_nin_kind { IDENT_NIN_FNR, IDENT_NIN_DNR };

/*
 * 11 digits DDMMYYIIIKK, both mod-11 check digits, a real date (D-number:
 * first digit + 4; synthetic test numbers: month + 80, accepted only when
 * allow_synthetic). Returns 0 and sets *kind, or GW_EINVALID with a message
 * that names the rule broken, never the number.
 */
int ident_nin_check(const char *s, bool allow_synthetic, enum ident_nin_kind *kind);

/*
 * Whether s holds a run of exactly 11 digits shaped like a nin (both check
 * digits, a day and a month; D-numbers and synthetic numbers too), and the
 * same runs overwritten with '*' in s[0..len) (returns how many). Loose on
 * purpose: for keeping nins out of identifiers and logs, not for
 * validating one. Neither sets an error.
 */
bool ident_has_nin(const char *s);
size_t ident_mask_nins(char *s, size_t len);

/* 4 digits, 0101..9999 format. */
bool ident_municipality_valid(const char *s);

/* UUID version 4 (variant 10xx), lower case, 8-4-4-4-12. */
bool ident_uuid4_valid(const char *s);

/* A fresh random UUIDv4 in lower case from OpenSSL's RAND_bytes. */
int ident_uuid4_new(char out[IDENT_UUID_LEN + 1]);

/*
 * Keyed pseudonym for logs: first 16 hex digits of HMAC-SHA-256(key, nin).
 */
int ident_pseudonym(const unsigned char *key, size_t key_len, const char *nin, char out[17]);

#endif
