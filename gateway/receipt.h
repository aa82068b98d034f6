/*
 * receipt: the signed answer that proves arrival (SPEC section 7).
 */
#ifndef GW_RECEIPT_H
#define GW_RECEIPT_H

#include <libxml/tree.h>
#include <stddef.h>

struct receipt_info {
	char ref_message_id[37];
	char digest_b64[45]; /* base64 SHA-256 of the request body bytes */
	char received[32];   /* 2026-11-20T09:15:02.123Z */
	char receiver_orgnr[10];
	char status[16];     /* accepted, duplicate, rejected */
	char reason_code[32];  /* only when rejected */
	char reason_text[256];
};

/* Base64 of SHA-256 over bytes, as MessageDigest carries it. */
int receipt_digest(const unsigned char *bytes, size_t len, char out[45]);

/* Build an unsigned Receipt document. */
int receipt_build(xmlDocPtr *out, const struct receipt_info *r);

/* Read the fields of a schema-valid Receipt. */
int receipt_read(xmlDocPtr doc, struct receipt_info *out);

/*
 * The gateway's acceptance of a receipt (SPEC section 7): bytes parse under
 * xmlread and the receipt schema, the signature verifies with `v` and binds
 * to expected_orgnr (the endpoint's organisation), RefToMessageId equals
 * message_id and MessageDigest equals sent_digest_b64. 0 when all hold (out
 * filled; out->status may still be rejected: that is a verified rejection).
 * GW_EINVALID with *reason ("malformed", "schema-invalid", "bad-signature",
 * "untrusted-signer", "sender-mismatch", "wrong-message-id", "wrong-digest")
 * and a sentence otherwise.
 */
struct verifier;
int receipt_verify(struct verifier *v, const unsigned char *bytes, size_t len,
		   const char *expected_orgnr, const char *message_id,
		   const char *sent_digest_b64, struct receipt_info *out, const char **reason);

#endif
