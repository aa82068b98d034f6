/*
 * test_message: the envelope and the receipt documents. A built message
 * carries its header and a copy of the filtered notice in its own
 * namespace, reads back to the same header, and validates once a signature
 * element is appended (never without one). Receipts build, validate, read
 * back, and carry a Reason exactly when rejected; the digest is base64
 * SHA-256.
 */
#include "testutil.h"
#include "err.h"
#include "message.h"
#include "notice.h"
#include "receipt.h"
#include "timeutil.h"
#include "xmlread.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MSG_ID "3f1c2a4e-9b7d-4c1e-8a2f-0123456789ab"

static struct msg_header sample_header(void)
{
	struct msg_header h;

	memset(&h, 0, sizeof(h));
	strcpy(h.message_id, MSG_ID);
	strcpy(h.created, "2026-11-20T09:15:02Z");
	strcpy(h.from_orgnr, "974760673");
	strcpy(h.to_orgnr, "889960221");
	strcpy(h.service, "nav");
	strcpy(h.notice_id, "TEST-2027-000001");
	h.revision = 1;
	strcpy(h.kind, "release");
	return h;
}

static void load_notice(struct notice *n)
{
	struct notice_rules rules = { true, 0, 0 };
	gw_buf buf = GW_BUF_INIT;
	const char *reason;

	assert_ok(timeutil_parse_datetime("2026-11-22T12:00:00+01:00", &rules.now_ms));
	tu_read(tu_src("tests/data/notices/ok-release-full-consent.xml"), &buf);
	assert_ok(notice_parse(n, buf.data, buf.len, &rules, "full.xml", &reason));
	gw_buf_free(&buf);
}

/* What signer_sign() would add, for schema purposes only. */
static void append_fake_signature(xmlDocPtr doc)
{
	xmlNodePtr sig = xmlNewChild(xmlDocGetRootElement(doc), NULL, BAD_CAST "Signature", NULL);
	xmlSetNs(sig, xmlNewNs(sig, BAD_CAST NS_DSIG, BAD_CAST "ds"));
}

/* Serialize and parse again, as a receiver sees the bytes. */
static xmlDocPtr reparse(xmlDocPtr doc)
{
	unsigned char *bytes;
	size_t len;
	xmlDocPtr again;

	assert_ok(xmlread_serialize(doc, &bytes, &len));
	assert_ok(xmlread_parse(&again, bytes, len, 0, "wire"));
	free(bytes);
	return again;
}

static void test_build_and_read_header(void **state)
{
	struct msg_header h = sample_header(), back;
	struct notice n;
	xmlDocPtr copy, msg, wire;
	xmlNodePtr body;

	load_notice(&n);
	assert_ok(notice_filtered_copy(&n, SVC_NAV, notice_grant_for(&n, SVC_NAV)->categories, &copy));
	assert_ok(message_build(&msg, &h, xmlDocGetRootElement(copy)));
	xmlFreeDoc(copy);

	/* Unsigned: the schema wants the signature. */
	assert_int_equal(xmlread_validate(msg, XML_KIND_MESSAGE), GW_EINVALID);
	assert_non_null(strstr(gw_error_last(), "Missing child"));
	append_fake_signature(msg);
	wire = reparse(msg);
	assert_ok(xmlread_validate(wire, XML_KIND_MESSAGE));

	assert_ok(message_read_header(wire, &back));
	assert_string_equal(back.message_id, h.message_id);
	assert_string_equal(back.created, h.created);
	assert_string_equal(back.from_orgnr, h.from_orgnr);
	assert_string_equal(back.to_orgnr, h.to_orgnr);
	assert_string_equal(back.service, h.service);
	assert_string_equal(back.notice_id, h.notice_id);
	assert_int_equal(back.revision, 1);
	assert_string_equal(back.kind, "release");

	body = message_body_content(wire);
	assert_non_null(body);
	assert_string_equal((const char *)body->name, "Notice");
	assert_string_equal((const char *)body->ns->href, NS_NOTICE);
	assert_non_null(xmlread_child(body, NS_NOTICE, "Needs"));
	assert_null(xmlread_child(body, NS_NOTICE, "Recipients"));
	assert_string_equal((const char *)xmlDocGetRootElement(wire)->ns->href, NS_ENVELOPE);

	xmlFreeDoc(wire);
	xmlFreeDoc(msg);
	notice_free(&n);
}

static void test_encrypted_body_validates(void **state)
{
	struct msg_header h = sample_header();
	xmlDocPtr enc = xmlNewDoc(BAD_CAST "1.0"), msg, wire;
	xmlNodePtr data = xmlNewDocNode(enc, NULL, BAD_CAST "EncryptedData", NULL);

	xmlSetNs(data, xmlNewNs(data, BAD_CAST NS_XENC, BAD_CAST "xenc"));
	xmlNewProp(data, BAD_CAST "Type", BAD_CAST "http://www.w3.org/2001/04/xmlenc#Element");
	xmlDocSetRootElement(enc, data);
	assert_ok(message_build(&msg, &h, data));
	append_fake_signature(msg);
	wire = reparse(msg);
	assert_ok(xmlread_validate(wire, XML_KIND_MESSAGE));
	assert_string_equal((const char *)message_body_content(wire)->name, "EncryptedData");
	xmlFreeDoc(wire);
	xmlFreeDoc(msg);
	xmlFreeDoc(enc);
}

static void test_build_refuses_bad_header(void **state)
{
	struct msg_header h = sample_header();
	xmlDocPtr body = xmlNewDoc(BAD_CAST "1.0"), msg = NULL;
	xmlNodePtr root = xmlNewDocNode(body, NULL, BAD_CAST "x", NULL);

	xmlDocSetRootElement(body, root);
	strcpy(h.message_id, "3F1C2A4E-9B7D-4C1E-8A2F-0123456789AB");
	assert_int_equal(message_build(&msg, &h, root), GW_EINVALID);
	assert_null(msg);
	h = sample_header();
	strcpy(h.to_orgnr, "889960222");
	assert_int_equal(message_build(&msg, &h, root), GW_EINVALID);
	assert_non_null(strstr(gw_error_last(), "To/@orgnr"));
	h = sample_header();
	strcpy(h.service, "police");
	assert_int_equal(message_build(&msg, &h, root), GW_EINVALID);
	xmlFreeDoc(body);
}

/* A schema-valid message, with the From orgnr to fill in. */
#define HEADER_TEXT \
	"<Message xmlns=\"urn:x-notice-gateway:envelope:1\"><Header>" \
	"<MessageId>3f1c2a4e-9b7d-4c1e-8a2f-0123456789ab</MessageId>" \
	"<Created>2026-11-20T09:15:02Z</Created><From orgnr=\"%s\"/>" \
	"<To orgnr=\"889960221\" service=\"nav\"/>" \
	"<NoticeRef id=\"N-1\" revision=\"2\" kind=\"withdrawal\"/></Header>" \
	"<Body><x:EncryptedData xmlns:x=\"http://www.w3.org/2001/04/xmlenc#\"/></Body>" \
	"<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"/></Message>"

/* Schema-valid, yet a bad check digit in From/@orgnr is refused. */
static void test_read_header_checks_what_schema_cannot(void **state)
{
	char buf[1024];
	struct msg_header h;
	xmlDocPtr doc;

	snprintf(buf, sizeof(buf), HEADER_TEXT, "974760673");
	assert_ok(xmlread_parse_valid(&doc, (unsigned char *)buf, strlen(buf), 0,
				      XML_KIND_MESSAGE, "m"));
	assert_ok(message_read_header(doc, &h));
	assert_int_equal(h.revision, 2);
	xmlFreeDoc(doc);

	snprintf(buf, sizeof(buf), HEADER_TEXT, "974760672");
	assert_ok(xmlread_parse_valid(&doc, (unsigned char *)buf, strlen(buf), 0,
				      XML_KIND_MESSAGE, "m"));
	assert_int_equal(message_read_header(doc, &h), GW_EINVALID);
	assert_non_null(strstr(gw_error_last(), "From/@orgnr"));
	xmlFreeDoc(doc);
}

static void test_digest(void **state)
{
	char out[45];

	assert_ok(receipt_digest((const unsigned char *)"abc", 3, out));
	assert_string_equal(out, "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=");
	assert_ok(receipt_digest((const unsigned char *)"", 0, out));
	assert_string_equal(out, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
}

static struct receipt_info sample_receipt(const char *status)
{
	struct receipt_info r;

	memset(&r, 0, sizeof(r));
	strcpy(r.ref_message_id, MSG_ID);
	assert_ok(receipt_digest((const unsigned char *)"message bytes", 13, r.digest_b64));
	strcpy(r.received, "2026-11-20T09:15:02.123Z");
	strcpy(r.receiver_orgnr, "958935420");
	strcpy(r.status, status);
	return r;
}

static void round_trip_receipt(const struct receipt_info *r, struct receipt_info *back)
{
	xmlDocPtr doc, wire;

	assert_ok(receipt_build(&doc, r));
	assert_int_equal(xmlread_validate(doc, XML_KIND_RECEIPT), GW_EINVALID); /* unsigned */
	append_fake_signature(doc);
	wire = reparse(doc);
	assert_ok(xmlread_validate(wire, XML_KIND_RECEIPT));
	assert_ok(receipt_read(wire, back));
	xmlFreeDoc(wire);
	xmlFreeDoc(doc);
}

static void test_receipt_round_trip(void **state)
{
	struct receipt_info r = sample_receipt("accepted"), back;

	round_trip_receipt(&r, &back);
	assert_memory_equal(&r, &back, sizeof(r));

	r = sample_receipt("rejected");
	strcpy(r.reason_code, "bad-signature");
	strcpy(r.reason_text, "The signature does not verify.");
	round_trip_receipt(&r, &back);
	assert_string_equal(back.status, "rejected");
	assert_string_equal(back.reason_code, "bad-signature");
	assert_string_equal(back.reason_text, "The signature does not verify.");

	/* A receiver that could not read a MessageId names none. */
	r = sample_receipt("rejected");
	r.ref_message_id[0] = '\0';
	strcpy(r.reason_code, "malformed");
	round_trip_receipt(&r, &back);
	assert_string_equal(back.ref_message_id, "");
}

static void test_receipt_reason_only_when_rejected(void **state)
{
	struct receipt_info r = sample_receipt("accepted");
	xmlDocPtr doc = NULL;

	strcpy(r.reason_code, "stale");
	assert_int_equal(receipt_build(&doc, &r), GW_EINVALID);
	r = sample_receipt("rejected");
	assert_int_equal(receipt_build(&doc, &r), GW_EINVALID);
	r = sample_receipt("maybe");
	assert_int_equal(receipt_build(&doc, &r), GW_EINVALID);
	assert_null(doc);
}

static void test_receipt_read_refuses_reason_on_accepted(void **state)
{
	static const char *const text =
		"<Receipt xmlns=\"urn:x-notice-gateway:receipt:1\">"
		"<RefToMessageId>" MSG_ID "</RefToMessageId>"
		"<MessageDigest algorithm=\"sha256\">47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
		"</MessageDigest><Received>2026-11-20T09:15:02.123Z</Received>"
		"<Receiver orgnr=\"958935420\"/><Status>accepted</Status>"
		"<Reason code=\"stale\">x</Reason>"
		"<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"/></Receipt>";
	struct receipt_info back;
	xmlDocPtr doc;

	assert_ok(xmlread_parse_valid(&doc, (const unsigned char *)text, strlen(text), 0,
				      XML_KIND_RECEIPT, "r"));
	assert_int_equal(receipt_read(doc, &back), GW_EINVALID);
	assert_non_null(strstr(gw_error_last(), "Reason"));
	xmlFreeDoc(doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_build_and_read_header),
		cmocka_unit_test(test_encrypted_body_validates),
		cmocka_unit_test(test_build_refuses_bad_header),
		cmocka_unit_test(test_read_header_checks_what_schema_cannot),
		cmocka_unit_test(test_digest),
		cmocka_unit_test(test_receipt_round_trip),
		cmocka_unit_test(test_receipt_reason_only_when_rejected),
		cmocka_unit_test(test_receipt_read_refuses_reason_on_accepted),
	};
	return cmocka_run_group_tests(tests, tu_xml_schemas_setup, tu_xml_schemas_teardown);
}
