/*
 * test_receipt_verify: the gateway's acceptance of a receipt (SPEC 7),
 * with receipts really signed by the development PKI's parties. A good
 * receipt verifies (a signed rejection too); each way it can fail gives its
 * reason: malformed, schema-invalid (unsigned), bad-signature (altered),
 * untrusted-signer, sender-mismatch (another organisation, or a receipt
 * claiming another receiver than its signer), wrong-message-id,
 * wrong-digest.
 */
#include "testutil.h"
#include "err.h"
#include "pki.h"
#include "receipt.h"
#include "signer.h"
#include "verify.h"
#include "xmlread.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MSG_ID "3f1c2a4e-9b7d-4c1e-8a2f-0123456789ab"
#define OTHER_ID "3f1c2a4e-9b7d-4c1e-8a2f-0123456789ac"
#define ORG_HOUSING "958935420"
#define ORG_NAV "889960221"
#define ORG_GATEWAY "974760673"

static const char sent_bytes[] = "<Message>the exact bytes the gateway sent</Message>";

struct fixture {
	pki_trust *trust;
	verifier *v;
	signer *housing;
	signer *untrusted;
	char sent_digest[45];
};

static struct fixture fx;

static int setup(void **state)
{
	const char *anchors[] = { tu_pki("ca.pem") };

	assert_ok(xmlread_init());
	assert_ok(xmlread_schemas_load(tu_src("schemas")));
	assert_ok(dsig_init());
	assert_ok(pki_trust_new(&fx.trust, anchors, 1, NULL, 0));
	assert_ok(verifier_new(&fx.v, fx.trust));
	assert_ok(signer_open(&fx.housing, tu_pki("housing.key"), tu_pki("housing.pem")));
	assert_ok(signer_open(&fx.untrusted, tu_pki("untrusted.key"), tu_pki("untrusted.pem")));
	assert_ok(receipt_digest((const unsigned char *)sent_bytes, strlen(sent_bytes),
				 fx.sent_digest));
	return 0;
}

static int teardown(void **state)
{
	signer_close(fx.housing);
	signer_close(fx.untrusted);
	verifier_free(fx.v);
	pki_trust_free(fx.trust);
	dsig_shutdown();
	xmlread_shutdown();
	return 0;
}

static struct receipt_info receipt_for(const char *receiver, const char *status)
{
	struct receipt_info r;

	memset(&r, 0, sizeof(r));
	strcpy(r.ref_message_id, MSG_ID);
	strcpy(r.digest_b64, fx.sent_digest);
	strcpy(r.received, "2026-11-20T09:15:02.123Z");
	strcpy(r.receiver_orgnr, receiver);
	strcpy(r.status, status);
	return r;
}

/* Build the receipt and have `s` sign it; out gets the bytes on the wire. */
static void signed_receipt(signer *s, const struct receipt_info *r, gw_buf *out)
{
	xmlDocPtr doc;

	assert_ok(receipt_build(&doc, r));
	gw_buf_reset(out);
	assert_ok(signer_sign_to_bytes(s, doc, out));
	xmlFreeDoc(doc);
}

static void expect_refusal(const gw_buf *bytes, const char *expected_orgnr, const char *msg_id,
			   const char *digest, const char *reason_expected)
{
	struct receipt_info out;
	const char *reason = NULL;
	int rc = receipt_verify(fx.v, bytes->data, bytes->len, expected_orgnr, msg_id, digest,
				&out, &reason);

	if (rc != GW_EINVALID || !reason || strcmp(reason, reason_expected))
		fail_msg("expected %s, got rc %d reason %s: %s", reason_expected, rc,
			 reason ? reason : "(none)", gw_error_last());
}

static void test_good_receipt_verifies(void **state)
{
	struct receipt_info r = receipt_for(ORG_HOUSING, "accepted"), out;
	gw_buf bytes = GW_BUF_INIT;
	const char *reason = "unset";

	signed_receipt(fx.housing, &r, &bytes);
	assert_ok(receipt_verify(fx.v, bytes.data, bytes.len, ORG_HOUSING, MSG_ID,
				 fx.sent_digest, &out, &reason));
	assert_null(reason);
	assert_string_equal(out.status, "accepted");
	assert_string_equal(out.ref_message_id, MSG_ID);
	assert_string_equal(out.receiver_orgnr, ORG_HOUSING);
	assert_string_equal(out.received, r.received);
	gw_buf_free(&bytes);
}

static void test_signed_rejection_verifies(void **state)
{
	struct receipt_info r = receipt_for(ORG_HOUSING, "rejected"), out;
	gw_buf bytes = GW_BUF_INIT;
	const char *reason;

	strcpy(r.reason_code, "stale");
	strcpy(r.reason_text, "Created is more than 7 days old.");
	signed_receipt(fx.housing, &r, &bytes);
	assert_ok(receipt_verify(fx.v, bytes.data, bytes.len, ORG_HOUSING, MSG_ID,
				 fx.sent_digest, &out, &reason));
	assert_string_equal(out.status, "rejected");
	assert_string_equal(out.reason_code, "stale");
	gw_buf_free(&bytes);
}

static void test_wrong_message_id(void **state)
{
	struct receipt_info r = receipt_for(ORG_HOUSING, "accepted");
	gw_buf bytes = GW_BUF_INIT;

	signed_receipt(fx.housing, &r, &bytes);
	expect_refusal(&bytes, ORG_HOUSING, OTHER_ID, fx.sent_digest, "wrong-message-id");
	strcpy(r.ref_message_id, OTHER_ID);
	signed_receipt(fx.housing, &r, &bytes);
	expect_refusal(&bytes, ORG_HOUSING, MSG_ID, fx.sent_digest, "wrong-message-id");
	gw_buf_free(&bytes);
}

static void test_wrong_digest(void **state)
{
	struct receipt_info r = receipt_for(ORG_HOUSING, "accepted");
	gw_buf bytes = GW_BUF_INIT;
	char other[45];

	assert_ok(receipt_digest((const unsigned char *)"other bytes", 11, other));
	signed_receipt(fx.housing, &r, &bytes);
	expect_refusal(&bytes, ORG_HOUSING, MSG_ID, other, "wrong-digest");
	gw_buf_free(&bytes);
}

static void test_wrong_organisation(void **state)
{
	struct receipt_info r = receipt_for(ORG_HOUSING, "accepted");
	gw_buf bytes = GW_BUF_INIT;

	/* A genuine housing receipt, but the message went to NAV. */
	signed_receipt(fx.housing, &r, &bytes);
	expect_refusal(&bytes, ORG_NAV, MSG_ID, fx.sent_digest, "sender-mismatch");
	/* Housing's key, claiming to be NAV's receipt. */
	r = receipt_for(ORG_NAV, "accepted");
	signed_receipt(fx.housing, &r, &bytes);
	expect_refusal(&bytes, ORG_NAV, MSG_ID, fx.sent_digest, "sender-mismatch");
	gw_buf_free(&bytes);
}

static void test_altered_receipt(void **state)
{
	struct receipt_info r = receipt_for(ORG_HOUSING, "rejected");
	gw_buf bytes = GW_BUF_INIT;
	char *at;

	strcpy(r.reason_code, "malformed");
	strcpy(r.reason_text, "xxxxxxxx");
	signed_receipt(fx.housing, &r, &bytes);
	at = strstr((char *)bytes.data, "xxxxxxxx");
	assert_non_null(at);
	memcpy(at, "yyyyyyyy", 8);
	expect_refusal(&bytes, ORG_HOUSING, MSG_ID, fx.sent_digest, "bad-signature");
	gw_buf_free(&bytes);
}

static void test_untrusted_signer(void **state)
{
	struct receipt_info r = receipt_for(ORG_GATEWAY, "accepted");
	gw_buf bytes = GW_BUF_INIT;

	signed_receipt(fx.untrusted, &r, &bytes);
	expect_refusal(&bytes, ORG_GATEWAY, MSG_ID, fx.sent_digest, "untrusted-signer");
	gw_buf_free(&bytes);
}

static void test_malformed_and_unsigned(void **state)
{
	struct receipt_info r = receipt_for(ORG_HOUSING, "accepted");
	gw_buf bytes = GW_BUF_INIT;
	unsigned char *text;
	size_t len;
	xmlDocPtr doc;

	gw_buf_puts(&bytes, "<Receipt><oops></Receipt>");
	expect_refusal(&bytes, ORG_HOUSING, MSG_ID, fx.sent_digest, "malformed");
	gw_buf_reset(&bytes);
	gw_buf_puts(&bytes, "<!DOCTYPE r [<!ENTITY e 'x'>]><Receipt/>");
	expect_refusal(&bytes, ORG_HOUSING, MSG_ID, fx.sent_digest, "malformed");

	assert_ok(receipt_build(&doc, &r));
	assert_ok(xmlread_serialize(doc, &text, &len));
	gw_buf_reset(&bytes);
	gw_buf_put(&bytes, text, len);
	expect_refusal(&bytes, ORG_HOUSING, MSG_ID, fx.sent_digest, "schema-invalid");
	free(text);
	xmlFreeDoc(doc);
	gw_buf_free(&bytes);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_receipt_verifies),
		cmocka_unit_test(test_signed_rejection_verifies),
		cmocka_unit_test(test_wrong_message_id),
		cmocka_unit_test(test_wrong_digest),
		cmocka_unit_test(test_wrong_organisation),
		cmocka_unit_test(test_altered_receipt),
		cmocka_unit_test(test_untrusted_signer),
		cmocka_unit_test(test_malformed_and_unsigned),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
