/*
 * pki: certificates, keys, trust and the organisation behind a certificate.
 *
 * A trust is a set of anchors (PEM files, each may hold several
 * certificates) and optional CRLs. pki_cert_verify() is the OpenSSL check
 * that every signature and TLS verdict is backed by: chain to an anchor,
 * valid at `now`, not revoked when CRLs are configured (X509_V_FLAG_CRL_CHECK
 * and CRL_CHECK_ALL: a missing CRL for an issuer then fails).
 *
 * Private keys are refused when group or world can read them.
 */
#ifndef GW_PKI_H
#define GW_PKI_H

#include <openssl/x509.h>
#include <stddef.h>
#include <time.h>

#define PKI_MAX_FILES 8

/*
 * OpenSSL security level 2 (112 bits): keys of at least RSA 2048 or EC 224
 * bits and no SHA-1 or MD5 certificate signatures, for every certificate a
 * trust verifies (signers of messages and receipts, TLS peers) and for our
 * own keys (signer, TLS). The SPEC names no minimum; this is ours.
 */
#define PKI_SECURITY_LEVEL 2
#define PKI_MIN_SECURITY_BITS 112

typedef struct pki_trust pki_trust;

int pki_trust_new(pki_trust **out, const char *const *anchor_files, size_t n_anchors,
		  const char *const *crl_files, size_t n_crls);
void pki_trust_free(pki_trust *trust);
/* The anchor and CRL files, for libraries that take paths (xmlsec, curl). */
size_t pki_trust_anchor_count(const pki_trust *trust);
const char *pki_trust_anchor_file(const pki_trust *trust, size_t i);
size_t pki_trust_crl_count(const pki_trust *trust);
const char *pki_trust_crl_file(const pki_trust *trust, size_t i);
/* The OpenSSL store (anchors + CRLs, flags set); owned by the trust. */
X509_STORE *pki_trust_store(pki_trust *trust);

/* pki_cert_verify()'s `now` that checks no validity period (see there). */
#define PKI_NO_TIME_CHECK ((time_t)-1)

/*
 * Verify cert against the trust at time now (0 = current time), with
 * `chain` as untrusted intermediates (may be NULL). GW_EINVALID with the
 * OpenSSL reason ("certificate has expired", "certificate revoked", "EE
 * certificate key too weak", ...).
 *
 * now == PKI_NO_TIME_CHECK checks everything but time: the chain to an
 * anchor, revocation when CRLs are configured, key strength; no
 * certificate's and no CRL's validity period (X509_V_FLAG_NO_CHECK_TIME,
 * for this call only). For a caller that judges validity itself at each
 * use, such as the encryption certificates of a rollover pair, where one
 * may have expired beside a good one (intake.c).
 */
int pki_cert_verify(pki_trust *trust, X509 *cert, STACK_OF(X509) *chain, time_t now);

/*
 * The organisation number of a certificate: subject organizationIdentifier
 * "NTRNO-<orgnr>" (SEID 2) or, failing that, subject serialNumber "<orgnr>"
 * (SEID 1). out gets 9 digits and a NUL. GW_ENOTFOUND when neither.
 */
int pki_cert_orgnr(X509 *cert, char out[10]);

int pki_cert_load(X509 **out, const char *path);
/* Load a private key; GW_EINVALID when the file is group/world readable. */
int pki_key_load(EVP_PKEY **out, const char *path);
/* 0 when path exists and has no group/other permission bits. */
int pki_key_file_private(const char *path);
/* Seconds until notAfter (negative when expired). */
int pki_cert_seconds_left(X509 *cert, long long *seconds);
/*
 * The most recent OpenSSL error as text (a per-thread buffer, valid until
 * the next call), and OpenSSL's error queue emptied.
 */
const char *pki_openssl_reason(void);
/* SHA-256 fingerprint in hex (64 chars + NUL). */
int pki_cert_fingerprint(X509 *cert, char out[65]);

#endif
