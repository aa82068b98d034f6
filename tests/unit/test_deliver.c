/*
 * test_deliver: the outcome of one delivery attempt, row by row of the SPEC
 * section 6 table (outcome_classify), and how libcurl's result codes are
 * classed. The transfer engine itself runs against the real receiver in
 * tests/integration.
 */
#include "testutil.h"
#include "outcome.h"

#include <curl/curl.h>
#include <string.h>

static struct outcome_input answer(long status)
{
	struct outcome_input in;

	memset(&in, 0, sizeof(in));
	in.transport = TRANSPORT_OK;
	in.http_status = status;
	return in;
}

static struct outcome_input with_receipt(long status, const char *receipt_status,
					  const char *code)
{
	struct outcome_input in = answer(status);

	in.receipt_present = true;
	in.receipt_verified = true;
	in.receipt_status = receipt_status;
	in.receipt_reason_code = code;
	return in;
}

static struct outcome_input with_bad_receipt(long status, const char *error)
{
	struct outcome_input in = answer(status);

	in.receipt_present = true;
	in.receipt_verified = false;
	in.receipt_error = error;
	return in;
}

static struct outcome classify(struct outcome_input in)
{
	struct outcome out;

	outcome_classify(&in, &out);
	return out;
}

static void expect(struct outcome_input in, enum outcome_kind kind, const char *reason)
{
	struct outcome out = classify(in);

	assert_string_equal(outcome_name(out.kind), outcome_name(kind));
	if (reason)
		assert_string_equal(out.reason, reason);
}

/* 200 + accepted / duplicate receipt that verifies: delivered. */
static void test_200_verified_accepted_or_duplicate_is_delivered(void **state)
{
	struct outcome out = classify(with_receipt(200, "accepted", ""));

	assert_int_equal(out.kind, OUTCOME_DELIVERED);
	assert_string_equal(out.reason, "accepted");
	assert_true(out.partner_answered);
	expect(with_receipt(200, "duplicate", ""), OUTCOME_DELIVERED, "duplicate");
}

/* 200 whose receipt does not verify: not delivered, retried. */
static void test_200_unverified_receipt_is_retried(void **state)
{
	static const char *const errors[] = {
		"bad-signature: the signature does not verify",
		"wrong-message-id: RefToMessageId names another message",
		"wrong-digest: MessageDigest is not the digest of the bytes sent",
		"sender-mismatch: signed by 921234567, expected 964338531",
		"untrusted-signer: certificate has expired",
		"malformed: line 1: not well-formed",
		"schema-invalid: line 3: element Status",
	};

	for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++) {
		struct outcome out = classify(with_bad_receipt(200, errors[i]));
		char want[300];

		snprintf(want, sizeof(want), "receipt not verified: %s", errors[i]);
		assert_int_equal(out.kind, OUTCOME_RETRY);
		assert_string_equal(out.reason, want);
		assert_false(out.partner_answered);
	}
	expect(answer(200), OUTCOME_RETRY, "HTTP 200 without a receipt");
	expect(with_receipt(200, "pending", ""), OUTCOME_RETRY, "receipt status 'pending' unknown");
}

/* A signed rejection is a rejection, whatever the status line said. */
static void test_200_with_verified_rejection_fails(void **state)
{
	expect(with_receipt(200, "rejected", "stale"), OUTCOME_FAILED,
	       "rejected by receiver: stale (with HTTP 200)");
}

/* 400 / 409 with a verified rejected receipt: failed, no retry, with the code. */
static void test_400_409_verified_rejection_fails_with_code(void **state)
{
	static const char *const codes[] = {
		"malformed", "schema-invalid", "bad-signature", "untrusted-signer",
		"sender-mismatch", "wrong-recipient", "stale",
	};

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		char want[100];
		snprintf(want, sizeof(want), "rejected by receiver: %s", codes[i]);
		expect(with_receipt(400, "rejected", codes[i]), OUTCOME_FAILED, want);
	}
	expect(with_receipt(409, "rejected", "message-id-conflict"), OUTCOME_FAILED,
	       "rejected by receiver: message-id-conflict");
	assert_true(classify(with_receipt(409, "rejected", "message-id-conflict")).partner_answered);
}

/* 400 / 409 whose receipt does not verify: still failed, the reason says so. */
static void test_400_409_unverified_receipt_fails_and_says_so(void **state)
{
	expect(with_bad_receipt(400, "bad-signature: digest mismatch"), OUTCOME_FAILED,
	       "rejected (receipt not verified: bad-signature: digest mismatch)");
	expect(with_bad_receipt(409, "wrong-digest: other bytes"), OUTCOME_FAILED,
	       "rejected (receipt not verified: wrong-digest: other bytes)");
	expect(answer(400), OUTCOME_FAILED, "rejected (HTTP 400 without a receipt)");
	expect(answer(409), OUTCOME_FAILED, "rejected (HTTP 409 without a receipt)");
	expect(with_receipt(400, "accepted", ""), OUTCOME_FAILED,
	       "rejected (HTTP 400 contradicts receipt status accepted)");
}

/* 403, 413: failed, no retry. */
static void test_403_413_fail(void **state)
{
	expect(answer(403), OUTCOME_FAILED, "refused: TLS client not allowed (HTTP 403)");
	expect(answer(413), OUTCOME_FAILED, "refused: message too large for receiver (HTTP 413)");
}

/* 429, 503, other 5xx: temporary. */
static void test_429_5xx_retry(void **state)
{
	static const long statuses[] = { 429, 500, 502, 503, 504, 599 };

	for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
		char want[64];
		struct outcome out = classify(answer(statuses[i]));
		snprintf(want, sizeof(want), "temporary: HTTP %ld", statuses[i]);
		assert_int_equal(out.kind, OUTCOME_RETRY);
		assert_string_equal(out.reason, want);
		assert_false(out.partner_answered);
	}
}

/* Statuses the SPEC does not name prove nothing: retried until the horizon. */
static void test_unlisted_status_retry(void **state)
{
	expect(answer(301), OUTCOME_RETRY, "unexpected HTTP 301");
	expect(answer(404), OUTCOME_RETRY, "unexpected HTTP 404");
	expect(answer(204), OUTCOME_RETRY, "unexpected HTTP 204");
	/* a receipt on an unlisted status is not looked at */
	expect(with_receipt(202, "accepted", ""), OUTCOME_RETRY, "unexpected HTTP 202");
}

/* Timeouts, resets, TLS errors, a wrong server, an oversized answer: retry. */
static void test_transport_errors_retry(void **state)
{
	static const struct {
		enum outcome_transport t;
		const char *text, *want;
	} rows[] = {
		{ TRANSPORT_TIMEOUT, "Operation timed out after 60000 milliseconds",
		  "timeout: Operation timed out after 60000 milliseconds" },
		{ TRANSPORT_CONNECT, "Connection reset by peer", "connection: Connection reset by peer" },
		{ TRANSPORT_TLS, "SSL certificate problem: certificate has expired",
		  "tls: SSL certificate problem: certificate has expired" },
		{ TRANSPORT_SERVER_ORG, "server certificate names organisation 921234567, expected 964338531",
		  "tls: wrong server organisation: server certificate names organisation 921234567, "
		  "expected 964338531" },
		{ TRANSPORT_TOO_LARGE, "the answer exceeded 1048576 bytes",
		  "response too large: the answer exceeded 1048576 bytes" },
		{ TRANSPORT_OTHER, NULL, "transfer: no detail" },
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct outcome_input in = answer(0);
		struct outcome out;

		in.transport = rows[i].t;
		in.transport_text = rows[i].text;
		outcome_classify(&in, &out);
		assert_int_equal(out.kind, OUTCOME_RETRY);
		assert_string_equal(out.reason, rows[i].want);
		assert_false(out.partner_answered);
	}
}

/* A transport error wins over anything half-received. */
static void test_transport_error_ignores_partial_answer(void **state)
{
	struct outcome_input in = with_receipt(200, "accepted", "");

	in.transport = TRANSPORT_CONNECT;
	in.transport_text = "Recv failure";
	expect(in, OUTCOME_RETRY, "connection: Recv failure");
}

static void test_curl_codes_are_classed(void **state)
{
	assert_int_equal(outcome_transport_from_curl(CURLE_OK), TRANSPORT_OK);
	assert_int_equal(outcome_transport_from_curl(CURLE_OPERATION_TIMEDOUT), TRANSPORT_TIMEOUT);
	assert_int_equal(outcome_transport_from_curl(CURLE_COULDNT_CONNECT), TRANSPORT_CONNECT);
	assert_int_equal(outcome_transport_from_curl(CURLE_COULDNT_RESOLVE_HOST), TRANSPORT_CONNECT);
	assert_int_equal(outcome_transport_from_curl(CURLE_RECV_ERROR), TRANSPORT_CONNECT);
	assert_int_equal(outcome_transport_from_curl(CURLE_SEND_ERROR), TRANSPORT_CONNECT);
	assert_int_equal(outcome_transport_from_curl(CURLE_GOT_NOTHING), TRANSPORT_CONNECT);
	assert_int_equal(outcome_transport_from_curl(CURLE_PEER_FAILED_VERIFICATION), TRANSPORT_TLS);
	assert_int_equal(outcome_transport_from_curl(CURLE_SSL_CONNECT_ERROR), TRANSPORT_TLS);
	assert_int_equal(outcome_transport_from_curl(CURLE_SSL_CERTPROBLEM), TRANSPORT_TLS);
	assert_int_equal(outcome_transport_from_curl(CURLE_SSL_CACERT_BADFILE), TRANSPORT_TLS);
	assert_int_equal(outcome_transport_from_curl(CURLE_WRITE_ERROR), TRANSPORT_TOO_LARGE);
	assert_int_equal(outcome_transport_from_curl(CURLE_UNSUPPORTED_PROTOCOL), TRANSPORT_OTHER);
}

static void test_names(void **state)
{
	assert_string_equal(outcome_name(OUTCOME_DELIVERED), "delivered");
	assert_string_equal(outcome_name(OUTCOME_RETRY), "retry");
	assert_string_equal(outcome_name(OUTCOME_FAILED), "failed");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_200_verified_accepted_or_duplicate_is_delivered),
		cmocka_unit_test(test_200_unverified_receipt_is_retried),
		cmocka_unit_test(test_200_with_verified_rejection_fails),
		cmocka_unit_test(test_400_409_verified_rejection_fails_with_code),
		cmocka_unit_test(test_400_409_unverified_receipt_fails_and_says_so),
		cmocka_unit_test(test_403_413_fail),
		cmocka_unit_test(test_429_5xx_retry),
		cmocka_unit_test(test_unlisted_status_retry),
		cmocka_unit_test(test_transport_errors_retry),
		cmocka_unit_test(test_transport_error_ignores_partial_answer),
		cmocka_unit_test(test_curl_codes_are_classed),
		cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
