/*
 * xmlenc: encrypt a Notice for its recipients and decrypt it again, under
 * the SPEC section 5 encryption profile (see xmlenc.h).
 *
 * Encryption. The element is serialised on its own (a copy in a scratch
 * document, so every namespace it uses is declared on it) and encrypted by
 * xmlsec with aes256-gcm under 32 random bytes from OpenSSL. Only then is
 * ds:KeyInfo added with one xenc:EncryptedKey per recipient, and each one
 * is filled by its own xmlsec context holding that recipient's public key
 * and certificate (rsa-oaep-mgf1p, the certificate written by xmlsec into
 * the X509Certificate template). Each EncryptedKey gets its own key that
 * way, which one context with a keys manager cannot do. The element is
 * replaced only when everything has succeeded.
 *
 * Decryption. The EncryptedData is checked against the profile by hand
 * first (Type Element, aes256-gcm, KeyInfo holding EncryptedKeys only, each
 * rsa-oaep-mgf1p with at most a SHA-1 DigestMethod, CipherValue and never
 * CipherReference). xmlsec then only ever runs with the key preset and no
 * keys manager, so nothing in the document can steer which key is used or
 * make it fetch anything; its contexts are also restricted to the one
 * algorithm they need and to no URIs. The key is chosen here: first the
 * keys whose certificate equals an EncryptedKey's X509Certificate, then
 * every other pairing. The plaintext is parsed in the context of the
 * EncryptedData's parent (in-scope namespaces resolve) with network access
 * off, no entity expansion and a depth limit, and must be one element.
 *
 * Diagnostics: a negative gw_code with a sentence in gw_error_last();
 * xmlsec's own first error comes from dsig_take_error() (signer.c owns the
 * error callback). Key material is wiped after use and never logged; error
 * texts name certificates by organisation number and fingerprint only.
 */
#include "xmlenc.h"
#include "err.h"
#include "pki.h"
#include "signer.h"
#include "xmlread.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/xmlsave.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <xmlsec/base64.h>
#include <xmlsec/crypto.h>
#include <xmlsec/keys.h>
#include <xmlsec/openssl/evp.h>
#include <xmlsec/openssl/x509.h>
#include <xmlsec/templates.h>
#include <xmlsec/xmlenc.h>
#include <xmlsec/xmlsec.h>

#define ALG_AES256_GCM "http://www.w3.org/2009/xmlenc11#aes256-gcm"
#define ALG_RSA_OAEP "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"
#define ALG_SHA1 "http://www.w3.org/2000/09/xmldsig#sha1"
#define TYPE_ELEMENT "http://www.w3.org/2001/04/xmlenc#Element"

#define SESSION_KEY_BYTES 32 /* AES-256 */
#define MIN_RSA_BITS 2048
#define MAX_CERT_BASE64 (64 * 1024)
#define PARSE_OPTIONS (XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING)

struct enc_key {
	xmlSecKeyPtr key; /* RSA private key, owned */
	X509 *cert;       /* its certificate, owned */
};

struct xmlenc_keys {
	struct enc_key keys[XMLENC_MAX_KEYS];
	size_t n;
};

/* Forget earlier errors so a message names the cause of this failure. */
static void errors_reset(void)
{
	dsig_take_error();
	ERR_clear_error();
}

/* ---- tree helpers ---- */

/* True when n's Algorithm attribute is exactly uri. */
static bool has_algorithm(xmlNodePtr n, const char *uri)
{
	xmlChar *alg = xmlGetNoNsProp(n, BAD_CAST "Algorithm");
	bool same = alg && xmlStrEqual(alg, BAD_CAST uri);

	xmlFree(alg);
	return same;
}

/* The Algorithm attribute for a message, cut short; "(none)" when absent. */
static const char *algorithm_of(xmlNodePtr n, char *out, size_t outlen)
{
	xmlChar *alg = n ? xmlGetNoNsProp(n, BAD_CAST "Algorithm") : NULL;

	snprintf(out, outlen, "%.120s", alg ? (const char *)alg : "(none)");
	xmlFree(alg);
	return out;
}

/* ---- certificates ---- */

/* "organisation 889960221, certificate SHA-256 1a2b3c4d5e6f7a8b" for messages. */
static const char *cert_label(X509 *cert, char *out, size_t outlen)
{
	char orgnr[10], fp[65];

	if (pki_cert_orgnr(cert, orgnr) < 0)
		snprintf(orgnr, sizeof(orgnr), "unknown");
	if (pki_cert_fingerprint(cert, fp) < 0)
		snprintf(fp, sizeof(fp), "unknown");
	snprintf(out, outlen, "organisation %s, certificate SHA-256 %.16s", orgnr, fp);
	gw_error_clear();
	return out;
}

/* An encryption target: RSA, large enough, and allowed to encipher keys. */
static int check_recipient(X509 *cert, size_t i)
{
	EVP_PKEY *pub = cert ? X509_get0_pubkey(cert) : NULL;
	char label[128];
	uint32_t usage;

	if (!pub)
		return gw_error_set(GW_EINVALID, "recipient certificate %zu has no readable "
				    "public key", i + 1);
	cert_label(cert, label, sizeof(label));
	if (EVP_PKEY_base_id(pub) != EVP_PKEY_RSA)
		return gw_error_set(GW_EINVALID, "recipient certificate %zu (%s) holds %s key; "
				    "only RSA certificates can be encryption targets (the "
				    "profile wraps keys with rsa-oaep-mgf1p)", i + 1, label,
				    EVP_PKEY_base_id(pub) == EVP_PKEY_EC ? "an EC" : "a non-RSA");
	if (EVP_PKEY_get_bits(pub) < MIN_RSA_BITS)
		return gw_error_set(GW_EINVALID, "recipient certificate %zu (%s) has an RSA key "
				    "of %d bits; at least %d are required", i + 1, label,
				    EVP_PKEY_get_bits(pub), MIN_RSA_BITS);
	usage = X509_get_key_usage(cert);
	if (usage != UINT32_MAX && !(usage & KU_KEY_ENCIPHERMENT))
		return gw_error_set(GW_EINVALID, "recipient certificate %zu (%s) does not allow "
				    "keyEncipherment", i + 1, label);
	return 0;
}

/* An xmlsec key holding cert's public key and cert itself (for KeyInfo). */
static int public_key_of(X509 *cert, xmlSecKeyPtr *out)
{
	EVP_PKEY *pub = X509_get_pubkey(cert);
	int rc;

	*out = NULL;
	if (!pub)
		return gw_error_set(GW_EINVALID, "the recipient certificate holds no usable key");
	rc = dsig_key_new(out, pub, cert);
	EVP_PKEY_free(pub);
	return rc < 0 ? gw_error_wrap(rc, "recipient certificate") : 0;
}

/* ---- encryption ---- */

/*
 * The element serialised on its own, UTF-8, no XML declaration. Copying it
 * into a scratch document declares on the copy every namespace it uses
 * from its ancestors, so the plaintext parses anywhere.
 */
static int serialize_element(xmlNodePtr element, xmlBufferPtr *out)
{
	xmlDocPtr scratch = xmlNewDoc(BAD_CAST "1.0");
	xmlNodePtr copy = scratch ? xmlDocCopyNode(element, scratch, 1) : NULL;
	xmlBufferPtr buf = NULL;
	xmlSaveCtxtPtr save = NULL;
	bool ok = false;

	*out = NULL;
	if (copy) {
		xmlDocSetRootElement(scratch, copy);
		buf = xmlBufferCreate();
	}
	if (buf)
		save = xmlSaveToBuffer(buf, "UTF-8", XML_SAVE_NO_DECL);
	if (save) {
		ok = xmlSaveTree(save, copy) >= 0;
		ok = xmlSaveClose(save) >= 0 && ok && xmlBufferLength(buf) > 0;
	}
	xmlFreeDoc(scratch);
	if (!ok) {
		xmlBufferFree(buf);
		return gw_error_set(GW_ENOMEM, "cannot serialise element %.64s for encryption",
				    (const char *)element->name);
	}
	*out = buf;
	return 0;
}

/* Give the xenc namespace of the template the prefix "xenc" and declare ds. */
static int name_prefixes(xmlNodePtr enc)
{
	xmlNsPtr ns = enc->nsDef;

	if (!ns || !xmlStrEqual(ns->href, BAD_CAST NS_XENC) || ns->prefix)
		return -1;
	ns->prefix = xmlStrdup(BAD_CAST "xenc");
	if (!ns->prefix || !xmlNewNs(enc, BAD_CAST NS_DSIG, BAD_CAST "ds"))
		return -1;
	return 0;
}

/* EncryptedData Type Element, aes256-gcm, an empty CipherValue. */
static xmlNodePtr data_template(xmlDocPtr doc)
{
	xmlNodePtr enc = xmlSecTmplEncDataCreate(doc, xmlSecTransformAes256GcmId, NULL,
						 xmlSecTypeEncElement, NULL, NULL);

	if (!enc)
		return NULL;
	if (name_prefixes(enc) < 0 || !xmlSecTmplEncDataEnsureCipherValue(enc)) {
		xmlFreeNode(enc);
		return NULL;
	}
	return enc;
}

static xmlSecKeyPtr session_key_of(const unsigned char *bytes)
{
	return xmlSecKeyReadMemory(xmlSecKeyDataAesId, bytes, SESSION_KEY_BYTES);
}

/* Fill enc's CipherValue with the plaintext under the session key. */
static int encrypt_content(xmlNodePtr enc, const unsigned char *session, xmlBufferPtr plain)
{
	xmlSecEncCtx ctx;
	int rc = 0;

	if (xmlSecEncCtxInitialize(&ctx, NULL) < 0)
		return gw_error_set(GW_ERROR, "cannot create an encryption context: %s",
				    dsig_take_error());
	ctx.encKey = session_key_of(session); /* owned by the context */
	if (!ctx.encKey ||
	    xmlSecEncCtxBinaryEncrypt(&ctx, enc, xmlBufferContent(plain),
				      (xmlSecSize)xmlBufferLength(plain)) < 0)
		rc = gw_error_set(GW_ERROR, "aes256-gcm encryption failed: %s",
				  dsig_take_error());
	xmlSecEncCtxFinalize(&ctx);
	return rc;
}

/* Fill the EncryptedKey with the session key wrapped for cert. */
static int wrap_session_key(xmlNodePtr ekey, X509 *cert, const unsigned char *session)
{
	xmlSecEncCtx ctx;
	xmlSecKeyPtr pub;
	int rc;

	if ((rc = public_key_of(cert, &pub)) < 0)
		return rc;
	if (xmlSecEncCtxInitialize(&ctx, NULL) < 0) {
		xmlSecKeyDestroy(pub);
		return gw_error_set(GW_ERROR, "cannot create an encryption context: %s",
				    dsig_take_error());
	}
	ctx.mode = xmlEncCtxModeEncryptedKey;
	ctx.encKey = pub; /* owned by the context */
	if (xmlSecEncCtxBinaryEncrypt(&ctx, ekey, session, SESSION_KEY_BYTES) < 0)
		rc = gw_error_set(GW_ERROR, "rsa-oaep-mgf1p key wrapping failed: %s",
				  dsig_take_error());
	xmlSecEncCtxFinalize(&ctx);
	return rc;
}

/* ds:KeyInfo with one EncryptedKey per recipient, each naming its certificate. */
static int add_encrypted_keys(xmlNodePtr enc, X509 *const *certs, size_t n,
			      const unsigned char *session)
{
	xmlNodePtr key_info = xmlSecTmplEncDataEnsureKeyInfo(enc, NULL);
	int rc;

	if (!key_info)
		return gw_error_set(GW_ERROR, "cannot add KeyInfo to the EncryptedData: %s",
				    dsig_take_error());
	for (size_t i = 0; i < n; i++) {
		xmlNodePtr ekey, ki, x509;

		ekey = xmlSecTmplKeyInfoAddEncryptedKey(key_info, xmlSecTransformRsaOaepId, NULL,
							NULL, NULL);
		ki = ekey ? xmlSecTmplEncDataEnsureKeyInfo(ekey, NULL) : NULL;
		x509 = ki ? xmlSecTmplKeyInfoAddX509Data(ki) : NULL;
		if (!x509 || !xmlSecTmplX509DataAddCertificate(x509) ||
		    !xmlSecTmplEncDataEnsureCipherValue(ekey))
			return gw_error_set(GW_ERROR, "cannot build EncryptedKey %zu: %s", i + 1,
					    dsig_take_error());
		if ((rc = wrap_session_key(ekey, certs[i], session)) < 0)
			return rc;
	}
	return 0;
}

static int check_target(xmlNodePtr element, size_t n_certs)
{
	if (!element || element->type != XML_ELEMENT_NODE || !element->doc || !element->parent)
		return gw_error_set(GW_EINVALID, "only an element inside a document can be "
				    "encrypted");
	if (n_certs == 0 || n_certs > XMLENC_MAX_RECIPIENTS)
		return gw_error_set(GW_EINVALID, "encryption needs between 1 and %d recipient "
				    "certificates, not %zu", XMLENC_MAX_RECIPIENTS, n_certs);
	return 0;
}

/* Build the complete EncryptedData for element, not yet in the document. */
static int build_encrypted(xmlNodePtr element, X509 *const *certs, size_t n,
			   xmlNodePtr *out)
{
	unsigned char session[SESSION_KEY_BYTES];
	xmlBufferPtr plain = NULL;
	xmlNodePtr enc;
	int rc;

	*out = NULL;
	if ((rc = serialize_element(element, &plain)) < 0)
		return rc;
	enc = data_template(element->doc);
	if (!enc) {
		xmlBufferFree(plain);
		return gw_error_set(GW_ERROR, "cannot build the EncryptedData template: %s",
				    dsig_take_error());
	}
	if (RAND_priv_bytes(session, sizeof(session)) != 1)
		rc = gw_error_set(GW_ERROR, "OpenSSL cannot make a random session key");
	if (rc == 0)
		rc = encrypt_content(enc, session, plain);
	if (rc == 0)
		rc = add_encrypted_keys(enc, certs, n, session);
	OPENSSL_cleanse(session, sizeof(session));
	OPENSSL_cleanse((void *)xmlBufferContent(plain), (size_t)xmlBufferLength(plain));
	xmlBufferFree(plain);
	if (rc < 0) {
		xmlFreeNode(enc);
		return rc;
	}
	*out = enc;
	return 0;
}

int xmlenc_encrypt_element(xmlNodePtr element, X509 *const *recipient_certs, size_t n_certs)
{
	xmlNodePtr enc;
	int rc;

	if ((rc = check_target(element, n_certs)) < 0)
		return rc;
	if (!recipient_certs)
		return gw_error_set(GW_EINVALID, "no recipient certificates given");
	for (size_t i = 0; i < n_certs; i++)
		if ((rc = check_recipient(recipient_certs[i], i)) < 0)
			return rc;
	errors_reset();
	rc = build_encrypted(element, recipient_certs, n_certs, &enc);
	errors_reset();
	if (rc < 0)
		return rc;
	xmlReplaceNode(element, enc);
	xmlFreeNode(element);
	return 0;
}

/* ---- decryption keys ---- */

int xmlenc_keys_new(xmlenc_keys **out)
{
	*out = calloc(1, sizeof(**out));
	if (!*out)
		return gw_error_set(GW_ENOMEM, "out of memory");
	return 0;
}

void xmlenc_keys_free(xmlenc_keys *k)
{
	if (!k)
		return;
	for (size_t i = 0; i < k->n; i++) {
		xmlSecKeyDestroy(k->keys[i].key);
		X509_free(k->keys[i].cert);
	}
	free(k);
}

static int check_pair(EVP_PKEY *pkey, X509 *cert, const char *key_path,
		      const char *cert_path)
{
	if (EVP_PKEY_base_id(pkey) != EVP_PKEY_RSA)
		return gw_error_set(GW_EINVALID, "decryption key %s is not an RSA key; the "
				    "profile wraps keys with rsa-oaep-mgf1p only", key_path);
	if (X509_check_private_key(cert, pkey) != 1)
		return gw_error_set(GW_EINVALID, "private key %s does not belong to certificate "
				    "%s", key_path, cert_path);
	return 0;
}

/* pkey handed to xmlsec; the caller's reference is taken over either way. */
static int private_key_of(EVP_PKEY *pkey, xmlSecKeyPtr *out)
{
	int rc = dsig_key_new(out, pkey, NULL);

	EVP_PKEY_free(pkey);
	return rc;
}

int xmlenc_keys_add(xmlenc_keys *k, const char *key_path, const char *cert_path)
{
	EVP_PKEY *pkey = NULL;
	X509 *cert = NULL;
	xmlSecKeyPtr key;
	int rc;

	if (k->n >= XMLENC_MAX_KEYS)
		return gw_error_set(GW_EINVALID, "at most %d decryption keys can be held at once",
				    XMLENC_MAX_KEYS);
	if ((rc = pki_key_file_private(key_path)) < 0 ||
	    (rc = pki_key_load(&pkey, key_path)) < 0)
		return rc;
	if ((rc = pki_cert_load(&cert, cert_path)) < 0 ||
	    (rc = check_pair(pkey, cert, key_path, cert_path)) < 0) {
		EVP_PKEY_free(pkey);
		X509_free(cert);
		return rc;
	}
	errors_reset();
	if ((rc = private_key_of(pkey, &key)) < 0) {
		X509_free(cert);
		return rc;
	}
	k->keys[k->n].key = key;
	k->keys[k->n].cert = cert;
	k->n++;
	return 0;
}

/* ---- the profile, checked before xmlsec sees the EncryptedData ---- */

struct enc_parts {
	xmlNodePtr ekeys[XMLENC_MAX_RECIPIENTS];
	X509 *ekey_certs[XMLENC_MAX_RECIPIENTS]; /* from each EncryptedKey; may be NULL */
	size_t n;
};

static void parts_free(struct enc_parts *p)
{
	for (size_t i = 0; i < p->n; i++)
		X509_free(p->ekey_certs[i]);
}

static int outside(const char *what)
{
	return gw_error_set(GW_EINVALID, "EncryptedData is outside the encryption profile: %s",
			    what);
}

/* CipherData holding exactly one CipherValue (never a CipherReference). */
static int check_cipher_data(xmlNodePtr cd)
{
	xmlNodePtr cv = cd ? xmlread_first_element(cd) : NULL;

	if (!xmlread_is(cd, NS_XENC, "CipherData"))
		return outside("CipherData is missing or out of place");
	if (xmlread_is(cv, NS_XENC, "CipherReference"))
		return outside("CipherReference is not allowed; the ciphertext must be inline");
	if (!xmlread_is(cv, NS_XENC, "CipherValue") || xmlread_next_element(cv))
		return outside("CipherData must hold exactly one CipherValue");
	return 0;
}

/* rsa-oaep-mgf1p, with no parameters but at most its default SHA-1 digest. */
static int check_key_method(xmlNodePtr em)
{
	char alg[128];
	xmlNodePtr dm = em ? xmlread_first_element(em) : NULL;

	if (!xmlread_is(em, NS_XENC, "EncryptionMethod"))
		return outside("an EncryptedKey has no EncryptionMethod");
	if (!has_algorithm(em, ALG_RSA_OAEP))
		return gw_error_set(GW_EINVALID, "EncryptedKey uses key transport %s; the profile "
				    "accepts only %s", algorithm_of(em, alg, sizeof(alg)),
				    ALG_RSA_OAEP);
	if (dm && (!xmlread_is(dm, NS_DSIG, "DigestMethod") || !has_algorithm(dm, ALG_SHA1) ||
		   xmlread_next_element(dm)))
		return outside("rsa-oaep-mgf1p must use its default SHA-1 digest and no "
			       "OAEP parameters");
	return 0;
}

/* A base64 X509Certificate (decoded in place); NULL when not one certificate. */
static X509 *decode_certificate(xmlChar *text)
{
	xmlSecSize n = 0;
	const unsigned char *p = text;
	X509 *cert;

	if (xmlStrlen(text) > MAX_CERT_BASE64 || xmlSecBase64DecodeInPlace(text, &n) < 0 ||
	    n == 0 || n > MAX_CERT_BASE64)
		return NULL;
	cert = d2i_X509(NULL, &p, (long)n);
	if (cert && p != text + n) { /* bytes after the certificate */
		X509_free(cert);
		cert = NULL;
	}
	return cert;
}

/* The first readable ds:X509Data/ds:X509Certificate in an EncryptedKey's KeyInfo. */
static X509 *ekey_certificate(xmlNodePtr ki)
{
	for (xmlNodePtr d = xmlread_first_element(ki); d; d = xmlread_next_element(d)) {
		xmlNodePtr c = xmlread_is(d, NS_DSIG, "X509Data") ? xmlread_first_element(d) : NULL;

		for (; c; c = xmlread_next_element(c)) {
			xmlChar *text;
			X509 *cert;

			if (!xmlread_is(c, NS_DSIG, "X509Certificate"))
				continue;
			text = xmlNodeGetContent(c);
			cert = text ? decode_certificate(text) : NULL;
			xmlFree(text);
			if (cert)
				return cert;
		}
	}
	return NULL;
}

/* One EncryptedKey: EncryptionMethod, optional KeyInfo, CipherData. */
static int check_encrypted_key(xmlNodePtr ekey, X509 **cert)
{
	xmlNodePtr em = xmlread_first_element(ekey), cur;
	int rc;

	*cert = NULL;
	if ((rc = check_key_method(em)) < 0)
		return rc;
	cur = xmlread_next_element(em);
	if (xmlread_is(cur, NS_DSIG, "KeyInfo")) {
		*cert = ekey_certificate(cur);
		cur = xmlread_next_element(cur);
	}
	if ((rc = check_cipher_data(cur)) < 0)
		return rc;
	if (xmlread_next_element(cur))
		return outside("an EncryptedKey holds elements after CipherData");
	return 0;
}

static int check_key_info(xmlNodePtr ki, struct enc_parts *p)
{
	int rc;

	if (!xmlread_is(ki, NS_DSIG, "KeyInfo"))
		return outside("there is no ds:KeyInfo with an EncryptedKey");
	for (xmlNodePtr cur = xmlread_first_element(ki); cur; cur = xmlread_next_element(cur)) {
		if (!xmlread_is(cur, NS_XENC, "EncryptedKey"))
			return outside("ds:KeyInfo may hold only EncryptedKey elements");
		if (p->n == XMLENC_MAX_RECIPIENTS)
			return outside("ds:KeyInfo holds too many EncryptedKey elements");
		p->ekeys[p->n] = cur;
		rc = check_encrypted_key(cur, &p->ekey_certs[p->n]);
		p->n++;
		if (rc < 0)
			return rc;
	}
	if (p->n == 0)
		return outside("ds:KeyInfo holds no EncryptedKey");
	return 0;
}

static int check_type(xmlNodePtr enc)
{
	xmlChar *type = xmlGetNoNsProp(enc, BAD_CAST "Type");
	bool element = type && xmlStrEqual(type, BAD_CAST TYPE_ELEMENT);

	xmlFree(type);
	return element ? 0 : outside("Type must be " TYPE_ELEMENT);
}

static int check_profile(xmlNodePtr enc, struct enc_parts *p)
{
	char alg[128];
	xmlNodePtr em, cur;
	int rc;

	memset(p, 0, sizeof(*p));
	if (!xmlread_is(enc, NS_XENC, "EncryptedData") || !enc->doc || !enc->parent)
		return gw_error_set(GW_EINVALID, "the node to decrypt is not an xenc:EncryptedData "
				    "inside a document");
	if ((rc = check_type(enc)) < 0)
		return rc;
	em = xmlread_first_element(enc);
	if (!xmlread_is(em, NS_XENC, "EncryptionMethod"))
		return outside("EncryptionMethod is missing");
	if (!has_algorithm(em, ALG_AES256_GCM) || xmlread_first_element(em))
		return gw_error_set(GW_EINVALID, "EncryptedData uses content encryption %s; the "
				    "profile accepts only %s", algorithm_of(em, alg, sizeof(alg)),
				    ALG_AES256_GCM);
	cur = xmlread_next_element(em);
	if ((rc = check_key_info(cur, p)) < 0)
		return rc;
	cur = xmlread_next_element(cur);
	if ((rc = check_cipher_data(cur)) < 0)
		return rc;
	if (xmlread_next_element(cur))
		return outside("EncryptedData holds elements after CipherData");
	return 0;
}

/* ---- decryption ---- */

/* Only alg, no URIs, and only X509 key data should KeyInfo ever be read. */
static int restrict_context(xmlSecEncCtx *ctx, xmlSecTransformId alg)
{
	ctx->transformCtx.enabledUris = xmlSecTransformUriTypeNone;
	ctx->keyInfoReadCtx.maxEncryptedKeyLevel = 0;
	if (xmlSecPtrListAdd(&ctx->transformCtx.enabledTransforms, (xmlSecPtr)alg) < 0 ||
	    xmlSecPtrListAdd(&ctx->keyInfoReadCtx.enabledKeyData,
			     (xmlSecPtr)xmlSecKeyDataX509Id) < 0)
		return gw_error_set(GW_ERROR, "cannot restrict the decryption context: %s",
				    dsig_take_error());
	return 0;
}

/* Unwrap the session key of ekey with key (borrowed). */
static int unwrap_session_key(xmlSecKeyPtr key, xmlNodePtr ekey,
			      unsigned char session[SESSION_KEY_BYTES])
{
	xmlSecEncCtx ctx;
	xmlSecBufferPtr out;
	int rc;

	if (xmlSecEncCtxInitialize(&ctx, NULL) < 0)
		return gw_error_set(GW_ERROR, "cannot create a decryption context: %s",
				    dsig_take_error());
	ctx.mode = xmlEncCtxModeEncryptedKey;
	rc = restrict_context(&ctx, xmlSecTransformRsaOaepId);
	ctx.encKey = key; /* borrowed: cleared before the context is finalised */
	out = rc == 0 ? xmlSecEncCtxDecryptToBuffer(&ctx, ekey) : NULL;
	if (rc == 0 && (!out || xmlSecBufferGetSize(out) != SESSION_KEY_BYTES))
		rc = gw_error_set(GW_EINVALID, "the EncryptedKey does not open with this key%s%s",
				  out ? "" : ": ", out ? "" : dsig_take_error());
	if (rc == 0)
		memcpy(session, xmlSecBufferGetData(out), SESSION_KEY_BYTES);
	if (out)
		OPENSSL_cleanse(xmlSecBufferGetData(out), xmlSecBufferGetSize(out));
	ctx.encKey = NULL;
	xmlSecEncCtxFinalize(&ctx);
	return rc;
}

/* Decrypt enc's content with the session key into a copy of the plaintext. */
static int decrypt_content(xmlNodePtr enc, const unsigned char *session, xmlBufferPtr *plain)
{
	xmlSecEncCtx ctx;
	xmlSecBufferPtr out;
	int rc;

	*plain = NULL;
	if (xmlSecEncCtxInitialize(&ctx, NULL) < 0)
		return gw_error_set(GW_ERROR, "cannot create a decryption context: %s",
				    dsig_take_error());
	rc = restrict_context(&ctx, xmlSecTransformAes256GcmId);
	ctx.encKey = rc == 0 ? session_key_of(session) : NULL; /* owned by the context */
	out = ctx.encKey ? xmlSecEncCtxDecryptToBuffer(&ctx, enc) : NULL;
	if (rc == 0 && !out)
		rc = gw_error_set(GW_EINVALID, "EncryptedData does not decrypt with the session "
				  "key of its EncryptedKey: aes256-gcm authentication failed, "
				  "so the ciphertext or its authentication tag was altered");
	if (rc == 0) {
		*plain = xmlBufferCreateSize(xmlSecBufferGetSize(out) + 1);
		if (!*plain || xmlBufferAdd(*plain, xmlSecBufferGetData(out),
					    (int)xmlSecBufferGetSize(out)) != 0)
			rc = gw_error_set(GW_ENOMEM, "out of memory for the decrypted element");
	}
	if (out)
		OPENSSL_cleanse(xmlSecBufferGetData(out), xmlSecBufferGetSize(out));
	xmlSecEncCtxFinalize(&ctx);
	if (rc < 0) {
		xmlBufferFree(*plain);
		*plain = NULL;
	}
	return rc;
}

/* What the search over EncryptedKeys and keys found, for the final message. */
struct attempts {
	bool tried[XMLENC_MAX_RECIPIENTS][XMLENC_MAX_KEYS];
	bool unwrapped; /* some key opened some EncryptedKey */
	char content_error[512];
};

/* Try one pairing; 0 and *plain when it decrypts the content. */
static int try_pair(xmlenc_keys *k, struct enc_parts *p, size_t e, size_t i,
		    xmlNodePtr enc, struct attempts *a, xmlBufferPtr *plain)
{
	unsigned char session[SESSION_KEY_BYTES];
	int rc;

	a->tried[e][i] = true;
	errors_reset();
	if ((rc = unwrap_session_key(k->keys[i].key, p->ekeys[e], session)) < 0)
		return rc;
	a->unwrapped = true;
	rc = decrypt_content(enc, session, plain);
	OPENSSL_cleanse(session, sizeof(session));
	if (rc == GW_EINVALID && !a->content_error[0])
		snprintf(a->content_error, sizeof(a->content_error), "%s", gw_error_last());
	return rc;
}

/* Matching certificates first, then every pairing not yet tried. */
static int find_plaintext(xmlenc_keys *k, struct enc_parts *p, xmlNodePtr enc,
			  struct attempts *a, xmlBufferPtr *plain)
{
	int rc;

	for (size_t e = 0; e < p->n; e++)
		for (size_t i = 0; i < k->n; i++) {
			if (!p->ekey_certs[e] || X509_cmp(p->ekey_certs[e], k->keys[i].cert))
				continue;
			rc = try_pair(k, p, e, i, enc, a, plain);
			if (rc == 0 || rc != GW_EINVALID)
				return rc;
		}
	for (size_t e = 0; e < p->n; e++)
		for (size_t i = 0; i < k->n; i++) {
			if (a->tried[e][i])
				continue;
			rc = try_pair(k, p, e, i, enc, a, plain);
			if (rc == 0 || rc != GW_EINVALID)
				return rc;
		}
	return GW_EINVALID;
}

/* The sentence when no pairing worked. */
static int no_key_error(xmlenc_keys *k, struct enc_parts *p, const struct attempts *a)
{
	char label[128];

	if (a->unwrapped)
		return gw_error_set(GW_EINVALID, "%s", a->content_error);
	for (size_t e = 0; e < p->n; e++)
		if (p->ekey_certs[e])
			return gw_error_set(GW_EINVALID, "none of our %zu decryption keys opens the "
					    "EncryptedData; it is encrypted for %s%s", k->n,
					    cert_label(p->ekey_certs[e], label, sizeof(label)),
					    p->n > 1 ? " and others" : "");
	return gw_error_set(GW_EINVALID, "none of our %zu decryption keys opens any of the %zu "
			    "EncryptedKey elements, which name no certificate", k->n, p->n);
}

/* Depth of n below the document node (the root element is 1). */
static int depth_of(xmlNodePtr n)
{
	int depth = 0;

	for (; n && n->type == XML_ELEMENT_NODE; n = n->parent)
		depth++;
	return depth;
}

/* Deepest element level under root (root is 1), iteratively. */
static int subtree_depth(xmlNodePtr root)
{
	xmlNodePtr cur = root;
	int depth = 1, max = 1;

	for (;;) {
		if (cur->type == XML_ELEMENT_NODE && xmlread_first_element(cur)) {
			cur = xmlread_first_element(cur);
			if (++depth > max)
				max = depth;
			continue;
		}
		while (cur != root && !xmlread_next_element(cur)) {
			cur = cur->parent;
			depth--;
		}
		if (cur == root)
			return max;
		cur = xmlread_next_element(cur);
	}
}

/* For the message only: the parser has already refused the content. */
static bool has_doctype(xmlBufferPtr plain)
{
	return xmlStrstr(xmlBufferContent(plain), BAD_CAST "<!DOCTYPE") != NULL;
}

/*
 * Parse the plaintext in the context of where it will live. The document's
 * declared encoding is set aside while parsing: the plaintext of an
 * EncryptedData is UTF-8 whatever the document it travels in declares.
 */
static int parse_in_place(xmlNodePtr enc, xmlBufferPtr plain, xmlNodePtr *out)
{
	xmlNodePtr context = enc->parent, list = NULL;
	const xmlChar *declared = enc->doc->encoding;
	xmlParserErrors perr;

	*out = NULL;
	if (xmlBufferLength(plain) <= 0)
		return gw_error_set(GW_EINVALID, "the EncryptedData decrypts to nothing");
	enc->doc->encoding = NULL;
	perr = xmlParseInNodeContext(context, (const char *)xmlBufferContent(plain),
				     xmlBufferLength(plain), PARSE_OPTIONS, &list);
	enc->doc->encoding = declared;
	if (perr != XML_ERR_OK || !list) {
		xmlFreeNodeList(list);
		if (has_doctype(plain))
			return gw_error_set(GW_EINVALID, "the decrypted content carries a DOCTYPE, "
					    "which is not allowed");
		return gw_error_set(GW_EINVALID, "the decrypted content is not well-formed XML "
				    "(libxml2 error %d)", (int)perr);
	}
	if (list->type != XML_ELEMENT_NODE || list->next) {
		xmlFreeNodeList(list);
		return gw_error_set(GW_EINVALID, "the decrypted content must be exactly one "
				    "element (EncryptedData Type Element)");
	}
	if (depth_of(context) + subtree_depth(list) > XMLREAD_MAX_DEPTH) {
		xmlFreeNodeList(list);
		return gw_error_set(GW_EINVALID, "the decrypted element nests deeper than %d "
				    "levels", XMLREAD_MAX_DEPTH);
	}
	*out = list;
	return 0;
}

int xmlenc_decrypt_element(xmlenc_keys *k, xmlNodePtr encrypted_data, xmlNodePtr *out_plain)
{
	struct enc_parts parts;
	struct attempts a;
	xmlBufferPtr plain = NULL;
	xmlNodePtr element;
	int rc;

	*out_plain = NULL;
	if ((rc = check_profile(encrypted_data, &parts)) < 0)
		goto done;
	if (k->n == 0) {
		rc = gw_error_set(GW_EINVALID, "no decryption key is configured");
		goto done;
	}
	memset(&a, 0, sizeof(a));
	rc = find_plaintext(k, &parts, encrypted_data, &a, &plain);
	if (rc == GW_EINVALID)
		rc = no_key_error(k, &parts, &a);
	if (rc == 0)
		rc = parse_in_place(encrypted_data, plain, &element);
	if (rc == 0) {
		xmlReplaceNode(encrypted_data, element);
		xmlFreeNode(encrypted_data);
		*out_plain = element;
	}
done:
	if (plain && xmlBufferLength(plain) > 0)
		OPENSSL_cleanse((void *)xmlBufferContent(plain), (size_t)xmlBufferLength(plain));
	xmlBufferFree(plain);
	parts_free(&parts);
	errors_reset();
	return rc;
}
