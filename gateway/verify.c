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
 *   2. the signer: the one end-entity certificate of KeyInfo (the others
 *      may only be intermediates), checked with pki_cert_verify() (chain to
 *      the trust, validity now, CRLs) and for the digitalSignature usage.
 *      OpenSSL does this, not xmlsec 1.2.37, whose store may pick an
 *      untrusted leaf and ignores a missing CRL.
 *   3. cryptography: xmlsec, with a context restricted to that profile
 *      (empty reference URI, the profile's transforms) and the signer's
 *      public key handed to it, so no other key can be used. Success needs
 *      the context status and the single Reference to say so.
 *   4. the organisation in that certificate against the claimed party.
 * Verdicts: steps 1 and 3 "bad-signature", step 2 "untrusted-signer", step 4
 * "sender-mismatch".
 *
 * A partner signs every document with the same certificate, so the
 * verifier remembers the last KeyInfo certificates it decoded and when
 * their signer passed step 2 (signer_trusted() says for how long); the
 * signature itself is verified every time.
 *
 * Threads: a verifier holds its own xmlsec keys manager and is used by one
 * thread at a time. The pki_trust behind it is only read (its X509_STORE is
 * locked while the anchors are copied, and X509_verify_cert locks it).
 */
#include "verify.h"
#include "err.h"
#include "signer.h"
#include "timeutil.h"
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

/* KeyInfo certificates seen before, decoded, and when their signer last passed. */
#define KEYINFO_MEMO_SLOTS 16
#define KEYINFO_TRUST_FOR_MS (5 * 60 * 1000)

struct keyinfo_memo {
	unsigned char hash[32]; /* SHA-256 of the X509Certificate texts */
	STACK_OF(X509) *certs;  /* NULL: an empty slot */
	X509 *leaf;             /* of certs; NULL when KeyInfo has no single signer */
	int64_t trusted_at_ms;  /* 0: not (or no longer) known to pass */
};

struct verifier {
	pki_trust *trust;
	struct keyinfo_memo memo[KEYINFO_MEMO_SLOTS];
	size_t memo_next;
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
/*
 * No attribute in a namespace anywhere in the signature: the checks here
 * read Algorithm and URI without a namespace, while xmlsec takes the first
 * attribute of that name in any namespace, so the two could read different
 * values (f:URI="#x" beside URI="").
 */
static int check_plain_attributes(xmlNodePtr node)
{
	for (xmlNodePtr n = node; n; n = n->next) {
		if (n->type != XML_ELEMENT_NODE)
			continue;
		for (xmlAttrPtr a = n->properties; a; a = a->next)
			if (a->ns)
				return gw_error_set(GW_EINVALID, "signature is outside the profile: "
						    "attribute %.32s:%.64s in %.64s (no attribute "
						    "in a namespace is allowed)",
						    a->ns->prefix ? (const char *)a->ns->prefix : "",
						    a->name, n->name);
		if (check_plain_attributes(n->children) < 0)
			return GW_EINVALID;
	}
	return 0;
}

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
	if ((rc = check_plain_attributes(sig)) < 0 || (rc = expect_children(sig, names, 3, parts)) < 0)
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

static void keyinfo_clear(struct keyinfo_memo *m)
{
	sk_X509_pop_free(m->certs, X509_free);
	memset(m, 0, sizeof(*m));
}

/* SHA-256 over every X509Certificate text of KeyInfo, in order. */
static int keyinfo_hash(xmlNodePtr first, unsigned char out[32])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;

	for (xmlNodePtr n = first; ok && n; n = xmlread_next_element(n)) {
		xmlChar *text = xmlNodeGetContent(n);
		/* the length first: two texts never hash like their concatenation */
		size_t len = text ? strlen((const char *)text) : 0;
		ok = text && EVP_DigestUpdate(md, &len, sizeof(len)) == 1 &&
		     EVP_DigestUpdate(md, text, len) == 1;
		xmlFree(text);
	}
	ok = ok && EVP_DigestFinal_ex(md, out, NULL) == 1;
	EVP_MD_CTX_free(md);
	return ok ? 0 : gw_error_set(GW_ERROR, "cannot hash the KeyInfo certificates");
}

/* The certificates of KeyInfo/X509Data, decoded, in document order. */
static int read_certs(xmlNodePtr first, STACK_OF(X509) **out)
{
	STACK_OF(X509) *certs = sk_X509_new_null();

	*out = NULL;
	if (!certs)
		return gw_error_set(GW_ENOMEM, "out of memory");
	for (xmlNodePtr n = first; n; n = xmlread_next_element(n)) {
		xmlChar *text = xmlNodeGetContent(n);
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

/*
 * The signer's certificate: the one certificate of KeyInfo that is not a
 * CA (the others can only be intermediates helping the chain).
 */
static X509 *pick_leaf(STACK_OF(X509) *certs)
{
	X509 *leaf = NULL;

	for (int i = 0; i < sk_X509_num(certs); i++) {
		X509 *c = sk_X509_value(certs, i);
		if (X509_check_ca(c) != 0)
			continue;
		if (leaf)
			return NULL;
		leaf = c;
	}
	if (!leaf && sk_X509_num(certs) == 1) /* a CA as signer: refused as untrusted later */
		leaf = sk_X509_value(certs, 0);
	return leaf;
}

/*
 * The decoded KeyInfo of sig, from the verifier's memo when the same
 * certificates came before (partners sign every document with the same
 * one), decoded now otherwise. The memo replaces its oldest slot.
 */
static int keyinfo_get(verifier *v, xmlNodePtr sig, struct keyinfo_memo **out)
{
	xmlNodePtr first = xmlread_first_element(xmlread_first_element(last_element(sig)));
	unsigned char hash[32];
	struct keyinfo_memo *m;
	STACK_OF(X509) *certs;
	int rc;

	if ((rc = keyinfo_hash(first, hash)) < 0)
		return rc;
	for (size_t i = 0; i < KEYINFO_MEMO_SLOTS; i++) {
		if (v->memo[i].certs && memcmp(v->memo[i].hash, hash, sizeof(hash)) == 0) {
			*out = &v->memo[i];
			return 0;
		}
	}
	if ((rc = read_certs(first, &certs)) < 0)
		return rc;
	m = &v->memo[v->memo_next];
	v->memo_next = (v->memo_next + 1) % KEYINFO_MEMO_SLOTS;
	keyinfo_clear(m);
	m->certs = certs;
	m->leaf = pick_leaf(certs);
	memcpy(m->hash, hash, sizeof(hash));
	*out = m;
	return 0;
}

/* ---- the signer certificate ---- */

/* Step 2: the signer certificate chains to the trust now and may sign. */
static int check_signer_cert(verifier *v, X509 *cert, STACK_OF(X509) *certs)
{
	uint32_t usage;
	int rc;

	if ((rc = pki_cert_verify(v->trust, cert, certs, 0)) < 0) /* out of memory: not the signer's fault */
		return rc == GW_EINVALID ? gw_error_wrap(GW_EINVALID, "signer certificate") : rc;
	if (X509_check_ca(cert) != 0)
		return gw_error_set(GW_EINVALID, "signer certificate is a CA certificate");
	usage = X509_get_key_usage(cert);
	if (usage != UINT32_MAX && !(usage & KU_DIGITAL_SIGNATURE))
		return gw_error_set(GW_EINVALID, "signer certificate does not allow "
				    "digitalSignature");
	return 0;
}

/*
 * A memo whose signer passed check_signer_cert() less than
 * KEYINFO_TRUST_FOR_MS ago, and is inside its validity period now, is
 * not checked again: the trust and its CRLs do not change under a
 * verifier (a reload builds a new one), so only the time could change
 * the answer. A failure is never remembered.
 */
static int signer_trusted(verifier *v, struct keyinfo_memo *m)
{
	int64_t now = timeutil_now_ms();

	if (m->trusted_at_ms && now - m->trusted_at_ms < KEYINFO_TRUST_FOR_MS &&
	    X509_cmp_current_time(X509_get0_notAfter(m->leaf)) > 0 &&
	    X509_cmp_current_time(X509_get0_notBefore(m->leaf)) < 0)
		return 0;
	m->trusted_at_ms = 0;
	if (check_signer_cert(v, m->leaf, m->certs) < 0)
		return GW_EINVALID;
	m->trusted_at_ms = now;
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
	return 0;
}

/*
 * Step 3: xmlsec verifies sig with the public key of the signer
 * certificate step 2 accepted. The key is handed to the context, so xmlsec
 * neither picks a certificate of its own nor uses any other key data.
 */
static int run_xmlsec(xmlNodePtr sig, X509 *leaf)
{
	xmlSecDSigCtx ctx;
	EVP_PKEY *pub = X509_get0_pubkey(leaf);
	int rc;

	dsig_take_error();
	if (!pub)
		return gw_error_set(GW_EINVALID, "signer certificate holds no usable public key");
	if (xmlSecDSigCtxInitialize(&ctx, NULL) < 0)
		return gw_error_set(GW_ERROR, "cannot create a signature context: %s",
				    dsig_take_error());
	rc = restrict_context(&ctx);
	if (rc == 0)
		rc = dsig_key_new(&ctx.signKey, pub, NULL);
	if (rc == 0 && xmlSecDSigCtxVerify(&ctx, sig) < 0)
		rc = gw_error_set(GW_EINVALID, "signature does not verify: %s",
				  dsig_take_error());
	if (rc == 0)
		rc = context_verdict(&ctx);
	xmlSecDSigCtxFinalize(&ctx); /* destroys ctx.signKey */
	dsig_take_error();
	return rc;
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
	struct keyinfo_memo *m;
	int rc;

	if ((rc = keyinfo_get(v, sig, &m)) < 0)
		return rc == GW_EINVALID ? reject(result, REASON_BAD) : rc;
	if (!m->leaf) {
		gw_error_set(GW_EINVALID, "signature profile: KeyInfo must carry exactly one "
			     "end-entity (signer) certificate");
		return reject(result, REASON_BAD);
	}
	/* The signer is judged first: an untrusted one is named as such, whatever its signature. */
	if (signer_trusted(v, m) < 0)
		return reject(result, REASON_UNTRUSTED);
	if ((rc = run_xmlsec(sig, m->leaf)) < 0)
		return rc == GW_EINVALID ? reject(result, REASON_BAD) : rc;
	if (pki_cert_orgnr(m->leaf, result->signer_orgnr) < 0) {
		gw_error_wrap(GW_EINVALID, "signer certificate");
		return reject(result, REASON_UNTRUSTED);
	}
	if (expected_orgnr && strcmp(expected_orgnr, result->signer_orgnr) != 0) {
		gw_error_set(GW_EINVALID, "document claims organisation %.9s but is signed by "
			     "organisation %s", expected_orgnr, result->signer_orgnr);
		return reject(result, REASON_MISMATCH);
	}
	return 0;
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

int verifier_new(verifier **out, pki_trust *trust)
{
	verifier *v;

	*out = NULL;
	if (!trust)
		return gw_error_set(GW_EINVALID, "a verifier needs a trust");
	v = calloc(1, sizeof(*v));
	if (!v)
		return gw_error_set(GW_ENOMEM, "out of memory");
	v->trust = trust;
	*out = v;
	return 0;
}

void verifier_free(verifier *v)
{
	if (!v)
		return;
	for (size_t i = 0; i < KEYINFO_MEMO_SLOTS; i++)
		keyinfo_clear(&v->memo[i]);
	free(v);
}
