/*
 * xmlenc: XML Encryption of a message's Notice under the SPEC section 5
 * profile, and its decryption on the receiving side.
 *
 * Profile: the element becomes xenc:EncryptedData Type Element, content
 * encrypted with aes256-gcm (http://www.w3.org/2009/xmlenc11#aes256-gcm)
 * under a fresh random session key; the session key travels in one
 * xenc:EncryptedKey per recipient certificate, inside the EncryptedData's
 * ds:KeyInfo, wrapped with rsa-oaep-mgf1p (its default SHA-1 digest, no
 * DigestMethod: Debian 12's xmlsec1 accepts no other), each EncryptedKey
 * naming its certificate in ds:KeyInfo/ds:X509Data/ds:X509Certificate.
 * Decryption accepts exactly these algorithms and nothing else.
 *
 * Encrypt first, then sign the whole message; a receiver verifies the
 * signature before it decrypts.
 *
 * xmlsec must be initialised (dsig_init() in signer.h) before any call.
 */
#ifndef GW_XMLENC_H
#define GW_XMLENC_H

#include <libxml/tree.h>
#include <openssl/x509.h>
#include <stddef.h>

/* Recipient certificates per EncryptedData (two during a rollover). */
#define XMLENC_MAX_RECIPIENTS 4
/* Decryption keys one receiver may hold at once (old and new, and spares). */
#define XMLENC_MAX_KEYS 8

/*
 * Replace element (an element with a parent, e.g. the Notice in a Message's
 * Body) in its document by an xenc:EncryptedData that each of the n_certs
 * recipient certificates (1 to XMLENC_MAX_RECIPIENTS, RSA of at least 2048
 * bits) can decrypt on its own. On success element has been freed; on
 * failure the document is unchanged. GW_EINVALID for a certificate that
 * cannot be an encryption target (EC, too small, keyUsage without
 * keyEncipherment).
 */
int xmlenc_encrypt_element(xmlNodePtr element, X509 *const *recipient_certs, size_t n_certs);

/*
 * The decryption keys of a receiver. One thread at a time per
 * xmlenc_keys; separate xmlenc_keys share nothing.
 */
typedef struct xmlenc_keys xmlenc_keys;

int xmlenc_keys_new(xmlenc_keys **out);
/*
 * Add an RSA private key (PEM, mode 0600 or stricter) and its certificate
 * (PEM). The certificate is how an EncryptedKey is matched to this key.
 * GW_EINVALID when the key file is readable by others, is not RSA, or does
 * not belong to the certificate.
 */
int xmlenc_keys_add(xmlenc_keys *k, const char *key_path, const char *cert_path);
void xmlenc_keys_free(xmlenc_keys *k);

/*
 * Decrypt encrypted_data (an xenc:EncryptedData under the profile) in place:
 * it is replaced in its document by the plaintext element, which
 * *out_plain points to (encrypted_data is freed). The key whose certificate
 * matches an EncryptedKey's X509Certificate is tried first, then every
 * other key against every EncryptedKey. GW_EINVALID, document unchanged,
 * when the EncryptedData is outside the profile (other algorithms, a
 * CipherReference, content that is not one element), when none of the keys
 * opens it, or when the ciphertext fails authentication. The caller still
 * validates the plaintext against the notice schema.
 */
int xmlenc_decrypt_element(xmlenc_keys *k, xmlNodePtr encrypted_data, xmlNodePtr *out_plain);

#endif
