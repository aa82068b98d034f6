/*
 * signer: the one place a private key lives (see signer.h), and the xmlsec
 * library's start and stop.
 *
 * signer_open() reads the key through pki_key_load(), which refuses a key
 * file group or others can read, checks it belongs to the certificate and
 * that the certificate names an organisation, and hands both to xmlsec.
 * signer_sign() builds the SPEC section 5 template in code and appends it
 * as the last child of the document element: exc-c14n, rsa-sha256 or
 * ecdsa-sha256 by key type, one Reference URI="" with SHA-256 and the
 * transforms enveloped-signature then exc-c14n, and the certificate in
 * KeyInfo/X509Data/X509Certificate.
 *
 * Diagnostics: failures return a negative gw_code with a sentence in
 * gw_error_last(); xmlsec's own errors are kept per thread for
 * dsig_take_error() rather than printed. Key material is never logged.
 */
#include "signer.h"
#include "err.h"
#include "pki.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <xmlsec/crypto.h>
#include <xmlsec/errors.h>
#include <xmlsec/openssl/evp.h>
#include <xmlsec/templates.h>
#include <xmlsec/xmldsig.h>
#include <xmlsec/xmlsec.h>
#include <xmlsec/xmltree.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

struct signer {
	xmlSecKeyPtr key;               /* private key + certificate, owned */
	xmlSecTransformId sign_method;  /* rsa-sha256 or ecdsa-sha256 */
	char orgnr[10];
};

static pthread_mutex_t dsig_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned dsig_users;
static _Thread_local char dsig_error[512];
static _Thread_local char dsig_error_taken[512];

/* xmlsec reports every error here; keep the first (the cause) per thread. */
static void dsig_error_callback(const char *file, int line, const char *func,
				const char *object, const char *subject, int reason,
				const char *msg)
{
	(void)file;
	(void)line;
	(void)object;
	(void)reason;
	if (dsig_error[0])
		return;
	snprintf(dsig_error, sizeof(dsig_error), "%s%s%s%s: %s", func ? func : "xmlsec",
		 subject ? " (" : "", subject ? subject : "", subject ? ")" : "",
		 msg && *msg ? msg : "failed");
}

const char *dsig_take_error(void)
{
	memcpy(dsig_error_taken, dsig_error, sizeof(dsig_error_taken));
	dsig_error[0] = '\0';
	return dsig_error_taken;
}

static int dsig_start(void)
{
	xmlInitParser();
	if (xmlSecInit() < 0)
		return gw_error_set(GW_ERROR, "cannot initialise the xmlsec library");
	if (xmlSecCheckVersion() != 1) {
		xmlSecShutdown();
		return gw_error_set(GW_ERROR, "the xmlsec library loaded is not compatible with "
				    "the version the gateway was built with (%s)",
				    XMLSEC_VERSION);
	}
	if (xmlSecCryptoAppInit(NULL) < 0) {
		xmlSecShutdown();
		return gw_error_set(GW_ERROR, "cannot initialise xmlsec's OpenSSL backend");
	}
	if (xmlSecCryptoInit() < 0) {
		xmlSecCryptoAppShutdown();
		xmlSecShutdown();
		return gw_error_set(GW_ERROR, "cannot initialise xmlsec's crypto functions");
	}
	/* Set last: the backends' start-up may install their own reporting. */
	xmlSecErrorsSetCallback(dsig_error_callback);
	return 0;
}

int dsig_init(void)
{
	int rc = 0;

	pthread_mutex_lock(&dsig_lock);
	if (dsig_users == 0)
		rc = dsig_start();
	if (rc == 0)
		dsig_users++;
	pthread_mutex_unlock(&dsig_lock);
	return rc;
}

void dsig_shutdown(void)
{
	pthread_mutex_lock(&dsig_lock);
	if (dsig_users > 0 && --dsig_users == 0) {
		xmlSecCryptoShutdown();
		xmlSecCryptoAppShutdown();
		xmlSecShutdown();
	}
	pthread_mutex_unlock(&dsig_lock);
}

/* The signature method for the key, refusing keys the profile has no use for. */
static int pick_method(EVP_PKEY *pkey, const char *key_path, xmlSecTransformId *out)
{
	if (EVP_PKEY_get_security_bits(pkey) < PKI_MIN_SECURITY_BITS)
		return gw_error_set(GW_EINVALID, "key %s is too weak: %d bits (%d bits of security); "
				    "at least RSA 2048 or EC 224 bits are required", key_path,
				    EVP_PKEY_get_bits(pkey), EVP_PKEY_get_security_bits(pkey));
	switch (EVP_PKEY_base_id(pkey)) {
	case EVP_PKEY_RSA:
		*out = xmlSecTransformRsaSha256Id;
		return 0;
	case EVP_PKEY_EC:
		*out = xmlSecTransformEcdsaSha256Id;
		return 0;
	default:
		return gw_error_set(GW_EINVALID, "key %s is neither RSA nor EC; the signature "
				    "profile allows only rsa-sha256 and ecdsa-sha256", key_path);
	}
}

int dsig_key_new(xmlSecKeyPtr *out, EVP_PKEY *pkey, X509 *cert)
{
	xmlSecKeyPtr key = xmlSecKeyCreate();
	xmlSecKeyDataPtr value = NULL, x509;

	*out = NULL;
	if (!key)
		return gw_error_set(GW_ENOMEM, "cannot create an xmlsec key");
	if (EVP_PKEY_up_ref(pkey) == 1 && !(value = xmlSecOpenSSLEvpKeyAdopt(pkey)))
		EVP_PKEY_free(pkey);
	if (!value || xmlSecKeySetValue(key, value) < 0) {
		if (value)
			xmlSecKeyDataDestroy(value);
		xmlSecKeyDestroy(key);
		return gw_error_set(GW_ERROR, "xmlsec does not accept the key: %s",
				    dsig_take_error());
	}
	if (!cert) {
		*out = key;
		return 0;
	}
	x509 = xmlSecKeyEnsureData(key, xmlSecOpenSSLKeyDataX509Id);
	if (!x509 || X509_up_ref(cert) != 1)
		goto fail;
	if (xmlSecOpenSSLKeyDataX509AdoptCert(x509, cert) < 0) {
		X509_free(cert);
		goto fail;
	}
	*out = key;
	return 0;
fail:
	xmlSecKeyDestroy(key);
	return gw_error_set(GW_ERROR, "xmlsec does not accept the certificate: %s",
			    dsig_take_error());
}

static int load_pair(signer *s, const char *key_path, const char *cert_path)
{
	EVP_PKEY *pkey = NULL;
	X509 *cert = NULL;
	int rc;

	dsig_take_error();
	if ((rc = pki_key_load(&pkey, key_path)) < 0)
		return rc;
	if ((rc = pki_cert_load(&cert, cert_path)) < 0)
		goto done;
	if (X509_check_private_key(cert, pkey) != 1) {
		rc = gw_error_set(GW_EINVALID, "private key %s does not belong to certificate %s",
				  key_path, cert_path);
		goto done;
	}
	if (pki_cert_orgnr(cert, s->orgnr) < 0) {
		rc = gw_error_wrap(GW_EINVALID, "signing certificate %s cannot be used",
				   cert_path);
		goto done;
	}
	if ((rc = pick_method(pkey, key_path, &s->sign_method)) < 0)
		goto done;
	rc = dsig_key_new(&s->key, pkey, cert);
done:
	EVP_PKEY_free(pkey);
	X509_free(cert);
	return rc;
}

static int dsig_ready(void)
{
	unsigned users;

	pthread_mutex_lock(&dsig_lock);
	users = dsig_users;
	pthread_mutex_unlock(&dsig_lock);
	return users > 0;
}

int signer_open(signer **out, const char *key_path, const char *cert_path)
{
	signer *s;
	int rc;

	*out = NULL;
	if (!dsig_ready())
		return gw_error_set(GW_ERROR, "dsig_init() must be called before signer_open()");
	s = calloc(1, sizeof(*s));
	if (!s)
		return gw_error_set(GW_ENOMEM, "out of memory");
	if ((rc = load_pair(s, key_path, cert_path)) < 0) {
		free(s);
		return rc;
	}
	*out = s;
	return 0;
}

void signer_close(signer *s)
{
	if (!s)
		return;
	if (s->key)
		xmlSecKeyDestroy(s->key);
	free(s);
}

const char *signer_orgnr(const signer *s)
{
	return s->orgnr;
}

/* The profile's template, not yet attached to the document. */
static xmlNodePtr build_template(signer *s, xmlDocPtr doc)
{
	xmlNodePtr sig, ref, key_info, x509;

	sig = xmlSecTmplSignatureCreateNsPref(doc, xmlSecTransformExclC14NId, s->sign_method,
					      NULL, BAD_CAST "ds");
	if (!sig)
		return NULL;
	ref = xmlSecTmplSignatureAddReference(sig, xmlSecTransformSha256Id, NULL, BAD_CAST "",
					      NULL);
	if (!ref || !xmlSecTmplReferenceAddTransform(ref, xmlSecTransformEnvelopedId) ||
	    !xmlSecTmplReferenceAddTransform(ref, xmlSecTransformExclC14NId))
		goto fail;
	key_info = xmlSecTmplSignatureEnsureKeyInfo(sig, NULL);
	x509 = key_info ? xmlSecTmplKeyInfoAddX509Data(key_info) : NULL;
	if (!x509 || !xmlSecTmplX509DataAddCertificate(x509))
		goto fail;
	return sig;
fail:
	xmlFreeNode(sig);
	return NULL;
}

static int sign_node(signer *s, xmlNodePtr sig)
{
	xmlSecDSigCtx ctx;
	int rc = 0;

	if (xmlSecDSigCtxInitialize(&ctx, NULL) < 0)
		return gw_error_set(GW_ERROR, "cannot create a signature context");
	ctx.signKey = s->key; /* borrowed: cleared before the context is finalised */
	if (xmlSecDSigCtxSign(&ctx, sig) < 0 || ctx.status != xmlSecDSigStatusSucceeded)
		rc = gw_error_set(GW_ERROR, "signing failed: %s", dsig_take_error());
	ctx.signKey = NULL;
	xmlSecDSigCtxFinalize(&ctx);
	return rc;
}

int signer_sign(signer *s, xmlDocPtr doc)
{
	xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
	xmlNodePtr sig;
	int rc;

	if (!root)
		return gw_error_set(GW_EINVALID, "cannot sign a document without a root element");
	if (xmlSecFindNode(root, xmlSecNodeSignature, xmlSecDSigNs))
		return gw_error_set(GW_EINVALID, "document already holds a ds:Signature; the "
				    "profile allows exactly one");
	dsig_take_error();
	sig = build_template(s, doc);
	if (!sig)
		return gw_error_set(GW_ERROR, "cannot build the signature template: %s",
				    dsig_take_error());
	if (!xmlAddChild(root, sig)) {
		xmlFreeNode(sig);
		return gw_error_set(GW_ENOMEM, "cannot append the signature to the document");
	}
	if ((rc = sign_node(s, sig)) < 0) {
		xmlUnlinkNode(sig);
		xmlFreeNode(sig);
	}
	return rc;
}

int signer_sign_to_bytes(signer *s, xmlDocPtr doc, gw_buf *out)
{
	xmlChar *mem = NULL;
	int size = 0, rc;

	if ((rc = signer_sign(s, doc)) < 0)
		return rc;
	/* No formatting: the bytes must carry the tree exactly as signed. */
	xmlDocDumpMemoryEnc(doc, &mem, &size, "UTF-8");
	if (!mem || size <= 0) {
		xmlFree(mem);
		return gw_error_set(GW_ENOMEM, "cannot serialize the signed document");
	}
	gw_buf_reset(out);
	rc = gw_buf_put(out, mem, (size_t)size);
	xmlFree(mem);
	if (rc < 0)
		return gw_error_set(GW_ENOMEM, "out of memory for the signed document");
	return 0;
}
