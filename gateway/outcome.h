/*
 * outcome: what one delivery attempt means (SPEC section 6), as a pure
 * function of what came back: the transport result, the HTTP status and
 * the verdict on the receipt. deliver.c gathers those facts; this decides.
 * No I/O and no store, so every row of the SPEC table is unit-tested
 * (tests/unit/test_deliver.c).
 *
 *   200 + receipt verified, accepted|duplicate       delivered
 *   200 + receipt verified, rejected                 failed  (signed rejection)
 *   200 + receipt missing or not verified            retry   (proves nothing)
 *   400|409 + receipt verified, rejected             failed  "rejected by receiver: CODE"
 *   400|409 + receipt not verified or missing        failed  "rejected (receipt not verified: ...)"
 *   400|409 + receipt verified, accepted|duplicate   failed  (contradiction, kept for operators)
 *   403, 413                                         failed
 *   429, 5xx, other statuses, timeouts, resets,
 *   TLS errors, wrong server organisation,
 *   oversized response                               retry with backoff
 */
#ifndef GW_OUTCOME_H
#define GW_OUTCOME_H

#include <stdbool.h>

enum outcome_kind { OUTCOME_DELIVERED, OUTCOME_RETRY, OUTCOME_FAILED };

enum outcome_transport {
	TRANSPORT_OK,       /* an HTTP answer came back */
	TRANSPORT_TIMEOUT,  /* connect or total timeout */
	TRANSPORT_CONNECT,  /* DNS, refused, reset, closed */
	TRANSPORT_TLS,      /* handshake, certificate, host name */
	TRANSPORT_SERVER_ORG, /* server certificate of another organisation */
	TRANSPORT_TOO_LARGE,  /* response over the cap */
	TRANSPORT_OTHER,
};

struct outcome_input {
	enum outcome_transport transport;
	const char *transport_text; /* curl's or our own sentence; may be NULL */
	long http_status;           /* 0 without an HTTP answer */
	bool receipt_present;       /* a non-empty body was checked as a receipt */
	bool receipt_verified;      /* receipt_verify() accepted it */
	const char *receipt_error;  /* why not (reason code and sentence); may be NULL */
	const char *receipt_status; /* accepted, duplicate, rejected (when verified) */
	const char *receipt_reason_code; /* when rejected */
};

struct outcome {
	enum outcome_kind kind;
	char reason[256];      /* for the message and the attempt row */
	bool partner_answered; /* the partner is up: resets its failure count */
};

void outcome_classify(const struct outcome_input *in, struct outcome *out);
const char *outcome_name(enum outcome_kind kind);

/*
 * The class of a libcurl result code (a CURLcode passed as int so callers
 * need not include curl.h). CURLE_OK gives TRANSPORT_OK.
 */
enum outcome_transport outcome_transport_from_curl(int curl_code);

#endif
