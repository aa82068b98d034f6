/*
 * receipt: the signed answer that proves arrival (SPEC section 7).
 *
 * receipt_build() makes the unsigned Receipt a receiver signs and returns;
 * receipt_read() takes the fields out of a schema-valid one, and checks
 * the rule the schema cannot state (a Reason exactly when rejected);
 * receipt_verify() is the gateway's whole acceptance test of a receipt's
 * bytes: hardened parse, schema, signature bound to the claimed receiver,
 * that receiver being the endpoint we sent to, and the receipt naming our
 * MessageId and the digest of the bytes we sent.
 */
#include "receipt.h"
#include "err.h"
#include "ident.h"
#include "timeutil.h"
#include "verify.h"
#include "xmlread.h"

#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

int receipt_digest(const unsigned char *bytes, size_t len, char out[45])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;

	out[0] = '\0';
	if (!EVP_Digest(bytes, len, md, &md_len, EVP_sha256(), NULL) || md_len != 32)
		return gw_error_set(GW_ERROR, "SHA-256 digest failed");
	if (EVP_EncodeBlock((unsigned char *)out, md, (int)md_len) != 44)
		return gw_error_set(GW_ERROR, "base64 encoding of a digest failed");
	return 0;
}

static bool status_known(const char *status)
{
	return !strcmp(status, "accepted") || !strcmp(status, "duplicate") ||
	       !strcmp(status, "rejected");
}

static int info_check(const struct receipt_info *r)
{
	bool rejected = !strcmp(r->status, "rejected");
	int64_t received;

	if (r->ref_message_id[0] && !ident_uuid4_valid(r->ref_message_id))
		return gw_error_set(GW_EINVALID, "RefToMessageId is not a lower-case UUID version 4");
	if (strlen(r->digest_b64) != 44)
		return gw_error_set(GW_EINVALID, "MessageDigest is not a base64 SHA-256 value");
	if (timeutil_parse_datetime(r->received, &received) < 0)
		return gw_error_set(GW_EINVALID, "Received \"%s\" is not a timestamp with an "
				    "offset", r->received);
	if (!ident_orgnr_valid(r->receiver_orgnr))
		return gw_error_set(GW_EINVALID, "Receiver/@orgnr \"%s\" is not a valid "
				    "organisation number", r->receiver_orgnr);
	if (!status_known(r->status))
		return gw_error_set(GW_EINVALID, "Status \"%s\" is not accepted, duplicate or "
				    "rejected", r->status);
	if (rejected && !r->reason_code[0])
		return gw_error_set(GW_EINVALID, "a rejected receipt needs a Reason code");
	if (!rejected && r->reason_code[0])
		return gw_error_set(GW_EINVALID, "a Reason is only given with Status rejected");
	return 0;
}

static xmlNodePtr add_text(xmlNodePtr parent, xmlNsPtr ns, const char *name, const char *text)
{
	return xmlNewTextChild(parent, ns, BAD_CAST name, BAD_CAST text);
}

static int add_fields(xmlNodePtr root, xmlNsPtr ns, const struct receipt_info *r)
{
	xmlNodePtr digest, receiver, reason;

	if (!add_text(root, ns, "RefToMessageId", r->ref_message_id) ||
	    !(digest = add_text(root, ns, "MessageDigest", r->digest_b64)) ||
	    !xmlNewProp(digest, BAD_CAST "algorithm", BAD_CAST "sha256") ||
	    !add_text(root, ns, "Received", r->received) ||
	    !(receiver = add_text(root, ns, "Receiver", NULL)) ||
	    !xmlNewProp(receiver, BAD_CAST "orgnr", BAD_CAST r->receiver_orgnr) ||
	    !add_text(root, ns, "Status", r->status))
		return gw_error_set(GW_ENOMEM, "out of memory building a receipt");
	if (strcmp(r->status, "rejected"))
		return 0;
	if (!(reason = add_text(root, ns, "Reason", r->reason_text)) ||
	    !xmlNewProp(reason, BAD_CAST "code", BAD_CAST r->reason_code))
		return gw_error_set(GW_ENOMEM, "out of memory building a receipt");
	return 0;
}

int receipt_build(xmlDocPtr *out, const struct receipt_info *r)
{
	xmlDocPtr doc;
	xmlNodePtr root;
	xmlNsPtr ns;
	int error;

	*out = NULL;
	if ((error = info_check(r)) < 0)
		return gw_error_wrap(error, "cannot build receipt");
	if (!(doc = xmlNewDoc(BAD_CAST "1.0")) ||
	    !(root = xmlNewDocNode(doc, NULL, BAD_CAST "Receipt", NULL)) ||
	    !(ns = xmlNewNs(root, BAD_CAST NS_RECEIPT, NULL))) {
		xmlFreeDoc(doc);
		return gw_error_set(GW_ENOMEM, "out of memory building a receipt");
	}
	xmlSetNs(root, ns);
	xmlDocSetRootElement(doc, root);
	if ((error = add_fields(root, ns, r)) < 0) {
		xmlFreeDoc(doc);
		return error;
	}
	*out = doc;
	return 0;
}

static xmlNodePtr receipt_child(xmlNodePtr parent, const char *name)
{
	return xmlread_child(parent, NS_RECEIPT, name);
}

/*
 * Copy a string, cut to fit at a UTF-8 character boundary. Whitespace at
 * both ends is dropped (the schema types collapse it).
 */
static void copy_trimmed(char *dst, size_t cap, const char *src)
{
	size_t len;

	while (*src && strchr(" \t\r\n", *src))
		src++;
	len = strlen(src);
	while (len > 0 && strchr(" \t\r\n", src[len - 1]))
		len--;
	if (len >= cap) {
		len = cap - 1;
		while (len > 0 && ((unsigned char)src[len] & 0xC0) == 0x80)
			len--;
	}
	memcpy(dst, src, len);
	dst[len] = '\0';
}

static void read_text(xmlNodePtr node, char *dst, size_t cap)
{
	xmlChar *text = node ? xmlNodeGetContent(node) : NULL;

	copy_trimmed(dst, cap, text ? (const char *)text : "");
	xmlFree(text);
}

static void read_attr(xmlNodePtr node, const char *name, char *dst, size_t cap)
{
	char *value = xmlread_attr(node, name);

	copy_trimmed(dst, cap, value ? value : "");
	xmlFree(value);
}

int receipt_read(xmlDocPtr doc, struct receipt_info *out)
{
	xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
	xmlNodePtr reason;
	int error;

	memset(out, 0, sizeof(*out));
	if (!root || !root->ns || strcmp((const char *)root->ns->href, NS_RECEIPT) ||
	    strcmp((const char *)root->name, "Receipt"))
		return gw_error_set(GW_EINVALID, "the document is not a Receipt");
	read_text(receipt_child(root, "RefToMessageId"), out->ref_message_id,
		  sizeof(out->ref_message_id));
	read_text(receipt_child(root, "MessageDigest"), out->digest_b64, sizeof(out->digest_b64));
	read_text(receipt_child(root, "Received"), out->received, sizeof(out->received));
	read_attr(receipt_child(root, "Receiver"), "orgnr", out->receiver_orgnr,
		  sizeof(out->receiver_orgnr));
	read_text(receipt_child(root, "Status"), out->status, sizeof(out->status));
	if ((reason = receipt_child(root, "Reason")) != NULL) {
		read_attr(reason, "code", out->reason_code, sizeof(out->reason_code));
		read_text(reason, out->reason_text, sizeof(out->reason_text));
	}
	if ((error = info_check(out)) < 0)
		return gw_error_wrap(error, "receipt line %ld", xmlGetLineNo(root));
	return 0;
}

static int refuse(const char **reason, const char *code, int error)
{
	*reason = code;
	return error;
}

/* Parse, validate and read: everything before the signature. */
static int receipt_load(xmlDocPtr *doc, const unsigned char *bytes, size_t len,
			struct receipt_info *out, const char **reason)
{
	int error;

	if ((error = xmlread_parse(doc, bytes, len, XMLREAD_DEFAULT_MAX_BYTES, "receipt")) < 0)
		return refuse(reason, error == GW_EINVALID ? "malformed" : NULL, error);
	if ((error = xmlread_validate(*doc, XML_KIND_RECEIPT)) < 0 ||
	    (error = receipt_read(*doc, out)) < 0) {
		xmlread_error_prefix(error, "receipt");
		return refuse(reason, error == GW_EINVALID ? "schema-invalid" : NULL, error);
	}
	return 0;
}

static int receipt_bind(struct verifier *v, xmlDocPtr doc, const char *expected_orgnr,
			const char *message_id, const char *sent_digest_b64,
			const struct receipt_info *info, const char **reason)
{
	struct verify_result result;
	int error;

	memset(&result, 0, sizeof(result));
	if ((error = verifier_check(v, doc, info->receiver_orgnr, &result)) < 0)
		return refuse(reason, error != GW_EINVALID ? NULL
			      : result.reason_code ? result.reason_code : "bad-signature",
			      gw_error_wrap(error, "receipt signature"));
	if (strcmp(info->receiver_orgnr, expected_orgnr))
		return refuse(reason, "sender-mismatch",
			      gw_error_set(GW_EINVALID, "the receipt is from organisation %s, but "
					   "the message was sent to %s", info->receiver_orgnr,
					   expected_orgnr));
	if (strcmp(info->ref_message_id, message_id))
		return refuse(reason, "wrong-message-id",
			      gw_error_set(GW_EINVALID, "the receipt's RefToMessageId names "
					   "another message than %s", message_id));
	if (strcmp(info->digest_b64, sent_digest_b64))
		return refuse(reason, "wrong-digest",
			      gw_error_set(GW_EINVALID, "the receipt's MessageDigest does not "
					   "match the bytes sent for message %s", message_id));
	return 0;
}

int receipt_verify(struct verifier *v, const unsigned char *bytes, size_t len,
		   const char *expected_orgnr, const char *message_id,
		   const char *sent_digest_b64, struct receipt_info *out, const char **reason)
{
	struct receipt_info info;
	const char *ignored;
	xmlDocPtr doc = NULL;
	int error;

	reason = reason ? reason : &ignored;
	*reason = NULL;
	memset(out, 0, sizeof(*out));
	if (!v || !expected_orgnr || !message_id || !sent_digest_b64)
		return gw_error_set(GW_ERROR, "receipt_verify needs a verifier, an organisation, "
				    "a message id and a digest");
	if ((error = receipt_load(&doc, bytes, len, &info, reason)) < 0 ||
	    (error = receipt_bind(v, doc, expected_orgnr, message_id, sent_digest_b64, &info,
				  reason)) < 0) {
		xmlFreeDoc(doc);
		return error;
	}
	xmlFreeDoc(doc);
	*out = info;
	return 0;
}
