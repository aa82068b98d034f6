/*
 * verify: signatures checked under the SPEC section 5 profile only (see
 * verify.h).
 *
 * verifier_check() works on a private copy of the document, in four steps:
 *   1. structure: no DOCTYPE; exactly one ds:Signature in the whole
 *      document, the last element child of the document element; SignedInfo
 *      with exc-c14n, rsa-sha256 or ecdsa-sha256 and one Reference URI=""
 *      whose transforms are exactly enveloped-signature then exc-c14n with
 *      SHA-256; KeyInfo holding only X509Data/X509Certificate.
 *   2. cryptography: xmlsec with a context restricted to that profile (empty
 *      reference URI, the profile's transforms, X509 key data only) and the
 *      trust anchors loaded as trusted certificates. Success needs the
 *      context status and the single Reference to say so.
 *   3. the signer: the certificate from KeyInfo whose public key is the key
 *      xmlsec verified with, checked again by pki_cert_verify() (CRLs, and
 *      because xmlsec 1.2.37 may pick an untrusted leaf).
 *   4. the organisation in that certificate against the claimed party.
 * Verdicts: steps 1-2 "bad-signature" (but "untrusted-signer" when xmlsec
 * failed and no certificate in KeyInfo chains to the trust), step 3
 * "untrusted-signer", step 4 "sender-mismatch".
 *
 * Threads: a verifier holds its own xmlsec keys manager and is used by one
 * thread at a time. The pki_trust behind it is only read (its X509_STORE is
 * locked while the anchors are copied, and X509_verify_cert locks it).
 */
#include "verify.h"
#include "err.h"
#include "signer.h"
#include "xmlread.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/tree.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <xmlsec/crypto.h>
#include <xmlsec/keysmngr.h>
#include <xmlsec/openssl/evp.h>
#include <xmlsec/xmldsig.h>
#include <xmlsec/xmlsec.h>
#include <xmlsec/xmltree.h>

#define NS_DSIG "http://www.w3.org/2000/09/xmldsig#"
#define NS_EXC_C14N "http://www.w3.org/2001/10/xml-exc-c14n#"
#define ALG_EXC_C14N NS_EXC_C14N
#define ALG_ENVELOPED NS_DSIG "enveloped-signature"
#define ALG_SHA256 "http://www.w3.org/2001/04/xmlenc#sha256"
#define ALG_RSA_SHA256 "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
#define ALG_ECDSA_SHA256 "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"

#define MAX_KEYINFO_CERTS 8
#define MAX_CERT_BASE64 (64 * 1024)

#define REASON_BAD "bad-signature"
#define REASON_UNTRUSTED "untrusted-signer"
#define REASON_MISMATCH "sender-mismatch"

struct verifier {
	pki_trust *trust;
	xmlSecKeysMngrPtr mngr; /* the trust anchors, as xmlsec trusted certificates */
};

/* ---- the document's shape ---- */

static bool is_ds(xmlNodePtr n, const char *name)
{
	return xmlread_is(n, NS_DSIG, name);
}

static xmlNodePtr last_element(xmlNodePtr parent)
{
	xmlNodePtr n = parent->last;

	while (n && n->type != XML_ELEMENT_NODE)
		n = n->prev;
	return n;
}

static int profile_error(const char *what)
{
	return gw_error_set(GW_EINVALID, "signature is outside the profile: %s", what);
}

/* Every ds:Signature in the tree under root (root included), without recursion. */
static int count_signatures(xmlNodePtr root, xmlNodePtr *first)
{
	xmlNodePtr cur = root;
	int count = 0;

	*first = NULL;
	for (;;) {
		if (is_ds(cur, "Signature") && count++ == 0)
			*first = cur;
		if (cur->type == XML_ELEMENT_NODE && cur->children) {
			cur = cur->children;
			continue;
		}
		while (cur != root && !cur->next)
			cur = cur->parent;
		if (cur == root)
			return count;
		cur = cur->next;
	}
}

/*
 * The element children of parent must be exactly the dsig elements names,
 * in order; their nodes go to out.
 */
static int expect_children(xmlNodePtr parent, const char *const *names, size_t n,
			   xmlNodePtr *out)
{
	xmlNodePtr cur = xmlread_first_element(parent);

	for (size_t i = 0; i < n; i++, cur = xmlread_next_element(cur)) {
		if (!is_ds(cur, names[i]))
			return gw_error_set(GW_EINVALID, "signature is outside the profile: "
					    "%s must hold ds:%s in position %zu", parent->name,
					    names[i], i + 1);
		out[i] = cur;
	}
	if (cur)
		return gw_error_set(GW_EINVALID, "signature is outside the profile: unexpected "
				    "element %.64s in %s", cur->name, parent->name);
	return 0;
}

static int has_algorithm(xmlNodePtr n, const char *uri)
{
	xmlChar *alg = xmlGetNoNsProp(n, BAD_CAST "Algorithm");
	int same = alg && xmlStrEqual(alg, BAD_CAST uri);

	xmlFree(alg);
	return same;
}

/* exc-c14n, allowing only its optional InclusiveNamespaces child. */
static int check_exc_c14n(xmlNodePtr n)
{
	xmlNodePtr child = xmlread_first_element(n);

	if (!has_algorithm(n, ALG_EXC_C14N))
		return 0;
	if (child && !(child->ns && xmlStrEqual(child->ns->href, BAD_CAST NS_EXC_C14N) &&
		       xmlStrEqual(child->name, BAD_CAST "InclusiveNamespaces")))
		return 0;
	return !child || !xmlread_next_element(child);
}

static int check_transforms(xmlNodePtr transforms)
{
	xmlNodePtr t[2] = { NULL, NULL };
	static const char *const names[] = { "Transform", "Transform" };

	if (expect_children(transforms, names, 2, t) < 0)
		return profile_error("Transforms must be exactly enveloped-signature then "
				     "exc-c14n");
	if (!has_algorithm(t[0], ALG_ENVELOPED) || xmlread_first_element(t[0]) || !check_exc_c14n(t[1]))
		return profile_error("Transforms must be exactly enveloped-signature then "
				     "exc-c14n");
	return 0;
}

static int check_reference(xmlNodePtr ref)
{
	static const char *const names[] = { "Transforms", "DigestMethod", "DigestValue" };
	xmlNodePtr parts[3] = { NULL, NULL, NULL };
	xmlChar *uri = xmlGetNoNsProp(ref, BAD_CAST "URI");
	int empty = uri && uri[0] == '\0';
	int rc;

	xmlFree(uri);
	if (!empty)
		return profile_error("the Reference must have URI=\"\" (the whole document)");
	if ((rc = expect_children(ref, names, 3, parts)) < 0)
		return rc;
	if ((rc = check_transforms(parts[0])) < 0)
		return rc;
	if (!has_algorithm(parts[1], ALG_SHA256) || xmlread_first_element(parts[1]))
		return profile_error("DigestMethod must be SHA-256");
	return 0;
}

static int check_signed_info(xmlNodePtr si)
{
	static const char *const names[] = { "CanonicalizationMethod", "SignatureMethod",
					     "Reference" };
	xmlNodePtr parts[3] = { NULL, NULL, NULL };
	int rc;

	if ((rc = expect_children(si, names, 3, parts)) < 0)
		return rc;
	if (!check_exc_c14n(parts[0]))
		return profile_error("CanonicalizationMethod must be exclusive C14N");
	if (!(has_algorithm(parts[1], ALG_RSA_SHA256) ||
	      has_algorithm(parts[1], ALG_ECDSA_SHA256)) || xmlread_first_element(parts[1]))
		return profile_error("SignatureMethod must be rsa-sha256 or ecdsa-sha256");
	return check_reference(parts[2]);
}

static int check_key_info(xmlNodePtr ki)
{
	static const char *const names[] = { "X509Data" };
	xmlNodePtr x509 = NULL, cert;
	int count = 0;

	if (expect_children(ki, names, 1, &x509) < 0)
		return profile_error("KeyInfo must hold exactly one X509Data and nothing else");
	for (cert = xmlread_first_element(x509); cert; cert = xmlread_next_element(cert)) {
		if (!is_ds(cert, "X509Certificate"))
			return profile_error("X509Data may hold only X509Certificate elements");
		count++;
	}
	if (count == 0 || count > MAX_KEYINFO_CERTS)
		return profile_error("X509Data must hold between 1 and 8 certificates");
	return 0;
}

/* Step 1: the shape of the document and its one signature. */
static int check_structure(xmlDocPtr doc, xmlNodePtr *sig_out)
{
	static const char *const names[] = { "SignedInfo", "SignatureValue", "KeyInfo" };
	xmlNodePtr root = xmlDocGetRootElement(doc), sig, parts[3] = { NULL, NULL, NULL };
	int rc, count;

	if (!root)
		return profile_error("the document has no root element");
	if (doc->intSubset || doc->extSubset)
		return profile_error("the document carries a DOCTYPE");
	count = count_signatures(root, &sig);
	if (count != 1)
		return gw_error_set(GW_EINVALID, "signature is outside the profile: the document "
				    "holds %d ds:Signature elements, exactly one is allowed",
				    count);
	if (sig->parent != root || last_element(root) != sig)
		return profile_error("ds:Signature must be the last child of the document "
				     "element");
	if ((rc = expect_children(sig, names, 3, parts)) < 0)
		return rc;
	if ((rc = check_signed_info(parts[0])) < 0)
		return rc;
	if ((rc = check_key_info(parts[2])) < 0)
		return rc;
	*sig_out = sig;
	return 0;
}

/* ---- certificates in KeyInfo ---- */

static X509 *decode_cert(const xmlChar *text)
{
	size_t len = strlen((const char *)text);
	unsigned char *der;
	const unsigned char *p;
	EVP_ENCODE_CTX *ctx;
	int n = 0, fin = 0, ok;
	X509 *cert = NULL;

	if (len == 0 || len > MAX_CERT_BASE64)
		return NULL;
	der = malloc(len);
	ctx = EVP_ENCODE_CTX_new();
	if (!der || !ctx)
		goto done;
	EVP_DecodeInit(ctx);
	ok = EVP_DecodeUpdate(ctx, der, &n, text, (int)len) >= 0 &&
	     EVP_DecodeFinal(ctx, der + n, &fin) == 1;
	p = der;
	if (ok && n + fin > 0) {
		cert = d2i_X509(NULL, &p, n + fin);
		if (cert && p != der + n + fin) { /* trailing bytes after the certificate */
			X509_free(cert);
			cert = NULL;
		}
	}
done:
	EVP_ENCODE_CTX_free(ctx);
	free(der);
	return cert;
}

/* The certificates of KeyInfo/X509Data, in document order. */
static int read_certs(xmlNodePtr sig, STACK_OF(X509) **out)
{
	xmlNodePtr key_info = last_element(sig);
	xmlNodePtr cert_node = xmlread_first_element(xmlread_first_element(key_info));
	STACK_OF(X509) *certs = sk_X509_new_null();

	*out = NULL;
	if (!certs)
		return gw_error_set(GW_ENOMEM, "out of memory");
	for (; cert_node; cert_node = xmlread_next_element(cert_node)) {
		xmlChar *text = xmlNodeGetContent(cert_node);
		X509 *cert = text ? decode_cert(text) : NULL;

		xmlFree(text);
		if (!cert || !sk_X509_push(certs, cert)) {
			X509_free(cert);
			sk_X509_pop_free(certs, X509_free);
			return gw_error_set(GW_EINVALID, "signature carries an X509Certificate "
					    "that is not a readable certificate");
		}
	}
	*out = certs;
	return 0;
}

/* 1 when some certificate of KeyInfo chains to the trust, with the rest as helpers. */
static int any_cert_trusted(pki_trust *trust, STACK_OF(X509) *certs, char *why, size_t whylen)
{
	why[0] = '\0';
	for (int i = 0; i < sk_X509_num(certs); i++) {
		if (pki_cert_verify(trust, sk_X509_value(certs, i), certs, 0) == 0)
			return 1;
		if (!why[0])
			snprintf(why, whylen, "%s", gw_error_last());
	}
	return 0;
}

/* ---- xmlsec ---- */

static int restrict_context(xmlSecDSigCtx *ctx)
{
	ctx->enabledReferenceUris = xmlSecTransformUriTypeEmpty;
	ctx->flags |= XMLSEC_DSIG_FLAGS_IGNORE_MANIFESTS;
	if (xmlSecDSigCtxEnableReferenceTransform(ctx, xmlSecTransformEnvelopedId) < 0 ||
	    xmlSecDSigCtxEnableReferenceTransform(ctx, xmlSecTransformExclC14NId) < 0 ||
	    xmlSecDSigCtxEnableReferenceTransform(ctx, xmlSecTransformSha256Id) < 0 ||
	    xmlSecDSigCtxEnableSignatureTransform(ctx, xmlSecTransformExclC14NId) < 0 ||
	    xmlSecDSigCtxEnableSignatureTransform(ctx, xmlSecTransformRsaSha256Id) < 0 ||
	    xmlSecDSigCtxEnableSignatureTransform(ctx, xmlSecTransformEcdsaSha256Id) < 0 ||
	    xmlSecPtrListAdd(&ctx->keyInfoReadCtx.enabledKeyData,
			     (xmlSecPtr)xmlSecKeyDataX509Id) < 0)
		return gw_error_set(GW_ERROR, "cannot restrict the signature context: %s",
				    dsig_take_error());
	return 0;
}

/* The context's own verdict: valid, and exactly one Reference, URI "", valid. */
static int context_verdict(xmlSecDSigCtx *ctx)
{
	xmlSecDSigReferenceCtxPtr ref;

	if (ctx->status != xmlSecDSigStatusSucceeded)
		return gw_error_set(GW_EINVALID, "signature does not verify: the document or "
				    "its signature was changed after signing");
	if (xmlSecPtrListGetSize(&ctx->signedInfoReferences) != 1)
		return profile_error("xmlsec saw other than one Reference");
	ref = (xmlSecDSigReferenceCtxPtr)xmlSecPtrListGetItem(&ctx->signedInfoReferences, 0);
	if (!ref || ref->status != xmlSecDSigStatusSucceeded || !ref->uri || ref->uri[0] ||
	    ref->origin != xmlSecDSigReferenceOriginSignedInfo)
		return gw_error_set(GW_EINVALID, "signature does not verify: the Reference "
				    "to the whole document failed");
	if (!ctx->signKey)
		return gw_error_set(GW_EINVALID, "signature does not verify: no key was used");
	return 0;
}

/* The one certificate of certs whose public key is key; NULL when none or several. */
static X509 *cert_for_key(STACK_OF(X509) *certs, EVP_PKEY *key)
{
	X509 *found = NULL;

	for (int i = 0; key && i < sk_X509_num(certs); i++) {
		X509 *c = sk_X509_value(certs, i);
		EVP_PKEY *pub = X509_get0_pubkey(c);
		if (!pub || EVP_PKEY_eq(pub, key) != 1)
			continue;
		if (found && X509_cmp(found, c) != 0)
			return NULL;
		found = c;
	}
	return found;
}

/*
 * Step 2: run xmlsec on sig. On success *leaf is the KeyInfo certificate
 * holding the key the signature verified with (borrowed from certs).
 */
static int run_xmlsec(verifier *v, xmlNodePtr sig, STACK_OF(X509) *certs, X509 **leaf)
{
	xmlSecDSigCtx ctx;
	int rc;

	*leaf = NULL;
	dsig_take_error();
	if (xmlSecDSigCtxInitialize(&ctx, v->mngr) < 0)
		return gw_error_set(GW_ERROR, "cannot create a signature context: %s",
				    dsig_take_error());
	rc = restrict_context(&ctx);
	if (rc == 0 && xmlSecDSigCtxVerify(&ctx, sig) < 0)
		rc = gw_error_set(GW_EINVALID, "signature does not verify: %s",
				  dsig_take_error());
	if (rc == 0)
		rc = context_verdict(&ctx);
	if (rc == 0) {
		*leaf = cert_for_key(certs, xmlSecOpenSSLEvpKeyDataGetEvp(
						     xmlSecKeyGetValue(ctx.signKey)));
		if (!*leaf)
			rc = gw_error_set(GW_EINVALID, "signature does not verify: no single "
					  "certificate in KeyInfo holds the signing key");
	}
	xmlSecDSigCtxFinalize(&ctx);
	dsig_take_error();
	return rc;
}

/* ---- the signer certificate ---- */

/* Step 3: the signer certificate chains to the trust now and may sign. */
static int check_signer_cert(verifier *v, X509 *cert, STACK_OF(X509) *certs)
{
	uint32_t usage;

	if (pki_cert_verify(v->trust, cert, certs, 0) < 0)
		return gw_error_wrap(GW_EINVALID, "signer certificate");
	if (X509_check_ca(cert) != 0)
		return gw_error_set(GW_EINVALID, "signer certificate is a CA certificate");
	usage = X509_get_key_usage(cert);
	if (usage != UINT32_MAX && !(usage & KU_DIGITAL_SIGNATURE))
		return gw_error_set(GW_EINVALID, "signer certificate does not allow "
				    "digitalSignature");
	return 0;
}

/* A rejection: the reason code for the peer, the sentence already in gw_error. */
static int reject(struct verify_result *result, const char *code)
{
	result->reason_code = code;
	return GW_EINVALID;
}

/* Steps 2-4 on the copy, whose structure step 1 accepted. */
static int check_signed_copy(verifier *v, xmlNodePtr sig, const char *expected_orgnr,
			     struct verify_result *result)
{
	STACK_OF(X509) *certs = NULL;
	X509 *leaf = NULL;
	char crypto_why[512], trust_why[512];
	int rc;

	if (read_certs(sig, &certs) < 0)
		return reject(result, REASON_BAD);
	rc = run_xmlsec(v, sig, certs, &leaf);
	if (rc < 0 && rc != GW_EINVALID)
		goto done; /* a fault here, not a verdict on the document */
	if (rc < 0) {
		/* xmlsec fails alike for a bad signature and a certificate it cannot trust. */
		snprintf(crypto_why, sizeof(crypto_why), "%s", gw_error_last());
		if (!any_cert_trusted(v->trust, certs, trust_why, sizeof(trust_why))) {
			gw_error_set(GW_EINVALID, "signer certificate: %s", trust_why);
			rc = reject(result, REASON_UNTRUSTED);
		} else {
			gw_error_set(GW_EINVALID, "%s", crypto_why);
			rc = reject(result, REASON_BAD);
		}
		goto done;
	}
	if (check_signer_cert(v, leaf, certs) < 0) {
		rc = reject(result, REASON_UNTRUSTED);
		goto done;
	}
	if (pki_cert_orgnr(leaf, result->signer_orgnr) < 0) {
		gw_error_wrap(GW_EINVALID, "signer certificate");
		rc = reject(result, REASON_UNTRUSTED);
		goto done;
	}
	rc = 0;
	if (expected_orgnr && strcmp(expected_orgnr, result->signer_orgnr) != 0) {
		gw_error_set(GW_EINVALID, "document claims organisation %.9s but is signed by "
			     "organisation %s", expected_orgnr, result->signer_orgnr);
		rc = reject(result, REASON_MISMATCH);
	}
done:
	sk_X509_pop_free(certs, X509_free);
	return rc;
}

int verifier_check(verifier *v, xmlDocPtr doc, const char *expected_orgnr,
		   struct verify_result *result)
{
	xmlDocPtr copy;
	xmlNodePtr sig = NULL;
	int rc;

	memset(result, 0, sizeof(*result));
	if (!doc)
		return gw_error_set(GW_EINVALID, "no document to verify");
	/* xmlsec may register ID attributes while verifying: work on a copy. */
	copy = xmlCopyDoc(doc, 1);
	if (!copy)
		return gw_error_set(GW_ENOMEM, "out of memory copying the document to verify");
	if (check_structure(copy, &sig) < 0)
		rc = reject(result, REASON_BAD);
	else
		rc = check_signed_copy(v, sig, expected_orgnr, result);
	xmlFreeDoc(copy);
	/* On sender-mismatch signer_orgnr stays: who really signed is worth logging. */
	if (rc < 0 && !(result->reason_code && strcmp(result->reason_code, REASON_MISMATCH) == 0))
		result->signer_orgnr[0] = '\0';
	return rc;
}

/* ---- the verifier ---- */

/* Give every anchor certificate of the trust to xmlsec as trusted. */
static int load_anchors(xmlSecKeysMngrPtr mngr, pki_trust *trust)
{
	X509_STORE *store = pki_trust_store(trust);
	STACK_OF(X509_OBJECT) *objs;
	int rc = 0, loaded = 0;

	if (!X509_STORE_lock(store))
		return gw_error_set(GW_ERROR, "cannot lock the trust store");
	objs = X509_STORE_get0_objects(store);
	for (int i = 0; rc == 0 && i < sk_X509_OBJECT_num(objs); i++) {
		X509 *cert = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i));
		unsigned char *der = NULL;
		int len;

		if (!cert)
			continue; /* a CRL */
		len = i2d_X509(cert, &der);
		if (len <= 0 ||
		    xmlSecCryptoAppKeysMngrCertLoadMemory(mngr, der, (xmlSecSize)len,
							  xmlSecKeyDataFormatDer,
							  xmlSecKeyDataTypeTrusted) < 0)
			rc = gw_error_set(GW_ERROR, "xmlsec does not accept a trust anchor: %s",
					  dsig_take_error());
		OPENSSL_free(der);
		loaded++;
	}
	X509_STORE_unlock(store);
	if (rc == 0 && loaded == 0)
		rc = gw_error_set(GW_EINVALID, "the trust holds no anchor certificate");
	return rc;
}

int verifier_new(verifier **out, pki_trust *trust)
{
	verifier *v;
	int rc;

	*out = NULL;
	v = calloc(1, sizeof(*v));
	if (!v)
		return gw_error_set(GW_ENOMEM, "out of memory");
	v->trust = trust;
	dsig_take_error();
	v->mngr = xmlSecKeysMngrCreate();
	if (!v->mngr || xmlSecCryptoAppDefaultKeysMngrInit(v->mngr) < 0) {
		rc = gw_error_set(GW_ERROR, "cannot create an xmlsec keys manager (was "
				  "dsig_init() called?): %s", dsig_take_error());
		verifier_free(v);
		return rc;
	}
	if ((rc = load_anchors(v->mngr, trust)) < 0) {
		verifier_free(v);
		return rc;
	}
	*out = v;
	return 0;
}

void verifier_free(verifier *v)
{
	if (!v)
		return;
	if (v->mngr)
		xmlSecKeysMngrDestroy(v->mngr);
	free(v);
}
