/*
 * verify: signature verification under the SPEC profile only.
 *
 * xmlsec1 verifies the cryptography with a context restricted to the
 * profile (empty reference URI, enveloped-signature + exc-c14n transforms,
 * SHA-256, rsa-sha256/ecdsa-sha256, X509 key data only). A zero return from
 * xmlsec is not a verdict: the context status and the single Reference are
 * checked here, the document structure is checked before (exactly one
 * Signature, last child of the root), and the signer certificate is checked
 * again with OpenSSL (pki_cert_verify) because xmlsec 1.2.37 may pick an
 * untrusted leaf and ignores missing CRLs. The organisation is read from the
 * certificate that OpenSSL verified.
 */
#ifndef GW_VERIFY_H
#define GW_VERIFY_H

#include "pki.h"

#include <libxml/tree.h>

typedef struct verifier verifier;

/* The outcome, with a SPEC reason code when rejected. */
struct verify_result {
	char signer_orgnr[10];
	const char *reason_code; /* "bad-signature", "untrusted-signer", "sender-mismatch" */
};

/* The verifier keeps a reference to trust; trust must outlive it. */
int verifier_new(verifier **out, pki_trust *trust);
void verifier_free(verifier *v);

/*
 * Verify doc's signature. expected_orgnr is the document's claimed party
 * (NULL: do not bind). 0 on success (result->signer_orgnr set);
 * GW_EINVALID with result->reason_code and a message on rejection. Does not
 * modify doc. One verifier per thread.
 */
int verifier_check(verifier *v, xmlDocPtr doc, const char *expected_orgnr,
		   struct verify_result *result);

#endif
