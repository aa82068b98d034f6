/*
 * signer: the only module that holds a private key (OpenSMTPD's ca.c).
 * Callers hand it a document and get it back signed under the SPEC profile:
 * one enveloped ds:Signature as the last child of the document element, one
 * Reference URI="", transforms enveloped-signature then exc-c14n, SHA-256,
 * rsa-sha256 or ecdsa-sha256 by key type, X509Certificate in KeyInfo.
 * Its request/response shape lets the key move into its own process later.
 *
 * A signer is used by one thread at a time; use one signer per thread.
 */
#ifndef GW_SIGNER_H
#define GW_SIGNER_H

#include "buf.h"

#include <libxml/tree.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

typedef struct signer signer;

/*
 * Initialise xmlsec and its OpenSSL backend once per process. Counted: each
 * dsig_init() needs one dsig_shutdown(); the last one stops xmlsec. libxml2
 * itself stays initialised (xmlCleanupParser() is the program's, at exit).
 */
int dsig_init(void);
void dsig_shutdown(void);
/*
 * The first xmlsec error this thread saw since the previous call, as one
 * line for a message ("" when none), and the record cleared. xmlsec reports
 * here instead of printing to stderr.
 */
const char *dsig_take_error(void);

/*
 * One xmlsec key holding pkey (private or public) and, when cert is not
 * NULL, cert for KeyInfo. xmlsec takes references of its own: the caller
 * keeps and frees pkey and cert either way. Free the key with
 * xmlSecKeyDestroy. (struct _xmlSecKey is xmlsec's xmlSecKey.)
 */
struct _xmlSecKey;
int dsig_key_new(struct _xmlSecKey **out, EVP_PKEY *pkey, X509 *cert);

/* Load key (must be mode 0600 or stricter) and certificate (PEM). */
int signer_open(signer **out, const char *key_path, const char *cert_path);
void signer_close(signer *s);
/* The organisation number from the signer's own certificate. */
const char *signer_orgnr(const signer *s);

/* Append the signature to doc's root element in place. */
int signer_sign(signer *s, xmlDocPtr doc);
/* Sign and serialize: out receives the exact bytes to send and store. */
int signer_sign_to_bytes(signer *s, xmlDocPtr doc, gw_buf *out);

#endif
