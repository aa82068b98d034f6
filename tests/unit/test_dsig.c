/*
 * test_dsig: signer and verifier under the SPEC section 5 profile.
 *
 * Round trips for RSA and EC, then one test per way a document can fail,
 * each asserting the SPEC reason code. Where a shape is outside the profile
 * the test signs it properly with xmlsec itself (sign_custom), so the
 * rejection cannot come from a broken digest: the profile check must catch
 * it. Documents look like SPEC messages but are built here, without the
 * message module.
 */
#include "testutil.h"
#include "err.h"
#include "pki.h"
#include "signer.h"
#include "verify.h"
#include "xmlread.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <xmlsec/crypto.h>
#include <xmlsec/templates.h>
#include <xmlsec/xmldsig.h>
#include <xmlsec/xmlsec.h>
#include <xmlsec/xmltree.h>

#define ORG_GATEWAY "974760673"
#define ORG_NAV "889960221"
#define ORG_HOUSING "958935420"
#define NS_ENV "urn:x-notice-gateway:envelope:1"
#define NS_NOTICE "urn:x-notice-gateway:notice:1"

struct fixture {
	pki_trust *trust;     /* ca.pem */
	pki_trust *trust_crl; /* ca.pem + ca.crl */
	verifier *v;
	verifier *v_crl;
};

static struct fixture fx;

static int setup(void **state)
{
	const char *anchors[] = { tu_pki("ca.pem") };
	const char *crls[] = { tu_pki("ca.crl") };

	assert_int_equal(dsig_init(), 0);
	assert_int_equal(pki_trust_new(&fx.trust, anchors, 1, NULL, 0), 0);
	assert_int_equal(pki_trust_new(&fx.trust_crl, anchors, 1, crls, 1), 0);
	assert_int_equal(verifier_new(&fx.v, fx.trust), 0);
	assert_int_equal(verifier_new(&fx.v_crl, fx.trust_crl), 0);
	*state = &fx;
	return 0;
}

static int teardown(void **state)
{
	verifier_free(fx.v);
	verifier_free(fx.v_crl);
	pki_trust_free(fx.trust);
	pki_trust_free(fx.trust_crl);
	dsig_shutdown();
	xmlCleanupParser();
	return 0;
}

/* ---- documents ---- */

static xmlDocPtr parse(const void *data, size_t len)
{
	xmlDocPtr doc = xmlReadMemory(data, (int)len, "msg.xml", NULL, XML_PARSE_NONET);

	assert_non_null(doc);
	return doc;
}

static xmlDocPtr make_message(const char *from_orgnr)
{
	char text[1024];
	int n = snprintf(text, sizeof(text),
			 "<Message xmlns=\"" NS_ENV "\">"
			 "<Header><MessageId>3f1c2a4e-8b7d-4c1a-9e2f-0a1b2c3d4e5f</MessageId>"
			 "<Created>2026-11-20T09:15:02Z</Created>"
			 "<From orgnr=\"%s\"/><To orgnr=\"" ORG_NAV "\" service=\"nav\"/>"
			 "<NoticeRef id=\"KDI-2026-000123\" revision=\"1\" kind=\"release\"/>"
			 "</Header>\n<Body><Notice xmlns=\"urn:x-notice-gateway:notice:1\" "
			 "id=\"KDI-2026-000123\"><Needs><Need category=\"income\">Trenger "
			 "hjelp med inntekt før løslatelse.</Need></Needs></Notice></Body>\n"
			 "</Message>",
			 from_orgnr);
	return parse(text, (size_t)n);
}

/* Sign with our signer, serialize, parse the bytes again: what a peer receives. */
static xmlDocPtr signed_message(const char *key, const char *cert, const char *from)
{
	signer *s;
	gw_buf bytes = GW_BUF_INIT;
	xmlDocPtr doc = make_message(from), wire;

	assert_int_equal(signer_open(&s, tu_pki(key), tu_pki(cert)), 0);
	assert_int_equal(signer_sign_to_bytes(s, doc, &bytes), 0);
	signer_close(s);
	xmlFreeDoc(doc);
	wire = parse(bytes.data, bytes.len);
	gw_buf_free(&bytes);
	return wire;
}

static int check(verifier *v, xmlDocPtr doc, const char *expected, struct verify_result *r)
{
	int rc = verifier_check(v, doc, expected, r);

	if (rc < 0)
		print_message("rejected (%s): %s\n", r->reason_code, gw_error_last());
	return rc;
}

static void expect_reason(verifier *v, xmlDocPtr doc, const char *expected, const char *code,
			  const char *text)
{
	struct verify_result r;

	assert_int_equal(check(v, doc, expected, &r), GW_EINVALID);
	assert_non_null(r.reason_code);
	assert_string_equal(r.reason_code, code);
	if (text && !strstr(gw_error_last(), text))
		fail_msg("message '%s' does not mention '%s'", gw_error_last(), text);
	xmlFreeDoc(doc);
}

static xmlNodePtr find(xmlDocPtr doc, const char *name, const char *ns)
{
	return xmlSecFindNode(xmlDocGetRootElement(doc), BAD_CAST name, BAD_CAST ns);
}

/* ---- signing outside the profile, with xmlsec directly ---- */

struct custom {
	const char *uri;            /* Reference URI */
	xmlSecTransformId extra;    /* a transform between enveloped and exc-c14n */
	int xpath;                  /* an XPath transform instead of the extra one */
	int xslt;                   /* an XSLT transform instead of the extra one */
	int key_value;              /* KeyValue instead of X509Data */
	int not_enveloped;          /* no enveloped-signature transform */
	const char *key;            /* PKI key and certificate file names, */
	const char *cert;           /* gateway-rsa.{key,pem} when NULL */
};

static const char identity_xslt[] =
	"<xsl:stylesheet xmlns:xsl=\"http://www.w3.org/1999/XSL/Transform\" version=\"1.0\">"
	"<xsl:template match=\"@*|node()\"><xsl:copy><xsl:apply-templates "
	"select=\"@*|node()\"/></xsl:copy></xsl:template></xsl:stylesheet>";

static void add_custom_transforms(xmlNodePtr ref, const struct custom *c)
{
	static const xmlChar *ns[] = { BAD_CAST "ds", BAD_CAST "http://www.w3.org/2000/09/xmldsig#",
				       NULL };
	xmlNodePtr t;

	if (!c->not_enveloped)
		assert_non_null(xmlSecTmplReferenceAddTransform(ref, xmlSecTransformEnvelopedId));
	if (c->extra)
		assert_non_null(xmlSecTmplReferenceAddTransform(ref, c->extra));
	if (c->xpath) {
		t = xmlSecTmplReferenceAddTransform(ref, xmlSecTransformXPathId);
		assert_int_equal(xmlSecTmplTransformAddXPath(t, BAD_CAST "true()", ns), 0);
	}
	if (c->xslt) {
		t = xmlSecTmplReferenceAddTransform(ref, xmlSecTransformXsltId);
		assert_int_equal(xmlSecTmplTransformAddXsltStylesheet(t, BAD_CAST identity_xslt),
				 0);
	}
	assert_non_null(xmlSecTmplReferenceAddTransform(ref, xmlSecTransformExclC14NId));
}

/* A cryptographically valid signature (gateway-rsa's by default) in the shape c asks for. */
static void sign_custom(xmlDocPtr doc, const struct custom *c)
{
	xmlSecKeyPtr key = xmlSecCryptoAppKeyLoad(tu_pki(c->key ? c->key : "gateway-rsa.key"),
						  xmlSecKeyDataFormatPem, NULL, NULL, NULL);
	xmlNodePtr sig, ref, ki;
	xmlSecDSigCtxPtr ctx;

	assert_non_null(key);
	if (!c->key_value)
		assert_int_equal(xmlSecCryptoAppKeyCertLoad(key, tu_pki(c->cert ? c->cert
									  : "gateway-rsa.pem"),
							    xmlSecKeyDataFormatPem), 0);
	sig = xmlSecTmplSignatureCreateNsPref(doc, xmlSecTransformExclC14NId,
					      xmlSecTransformRsaSha256Id, NULL, BAD_CAST "ds");
	assert_non_null(xmlAddChild(xmlDocGetRootElement(doc), sig));
	ref = xmlSecTmplSignatureAddReference(sig, xmlSecTransformSha256Id, NULL,
					      BAD_CAST (c->uri ? c->uri : ""), NULL);
	add_custom_transforms(ref, c);
	ki = xmlSecTmplSignatureEnsureKeyInfo(sig, NULL);
	if (c->key_value)
		assert_non_null(xmlSecTmplKeyInfoAddKeyValue(ki));
	else
		assert_non_null(xmlSecTmplX509DataAddCertificate(xmlSecTmplKeyInfoAddX509Data(ki)));
	ctx = xmlSecDSigCtxCreate(NULL);
	ctx->signKey = key;
	assert_int_equal(xmlSecDSigCtxSign(ctx, sig), 0);
	assert_int_equal(ctx->status, xmlSecDSigStatusSucceeded);
	xmlSecDSigCtxDestroy(ctx);
}

/* ---- round trips ---- */

static void round_trip(const char *key, const char *cert, const char *orgnr,
		       const char *method)
{
	xmlDocPtr doc = signed_message(key, cert, orgnr);
	xmlNodePtr root = xmlDocGetRootElement(doc), sig;
	xmlChar *before, *after, *alg;
	int len_before, len_after;
	struct verify_result r;

	/* The profile's shape: the signature is the root's last child. */
	sig = xmlLastElementChild(root);
	assert_true(sig && xmlStrEqual(sig->name, BAD_CAST "Signature"));
	alg = xmlGetNoNsProp(xmlSecTmplSignatureGetSignMethodNode(sig), BAD_CAST "Algorithm");
	assert_string_equal((char *)alg, method);
	xmlFree(alg);

	xmlDocDumpMemory(doc, &before, &len_before);
	assert_int_equal(check(fx.v, doc, orgnr, &r), 0);
	assert_string_equal(r.signer_orgnr, orgnr);
	assert_null(r.reason_code);
	assert_int_equal(check(fx.v_crl, doc, NULL, &r), 0);
	assert_string_equal(r.signer_orgnr, orgnr);
	/* Verifying leaves the document as it was. */
	xmlDocDumpMemory(doc, &after, &len_after);
	assert_int_equal(len_before, len_after);
	assert_memory_equal(before, after, (size_t)len_before);
	xmlFree(before);
	xmlFree(after);
	xmlFreeDoc(doc);
}

static void test_round_trip_rsa(void **state)
{
	round_trip("gateway-rsa.key", "gateway-rsa.pem", ORG_GATEWAY,
		   "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256");
}

static void test_round_trip_ec(void **state)
{
	round_trip("nav-ec.key", "nav-ec.pem", ORG_NAV,
		   "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256");
}

/* The bytes from signer_sign_to_bytes are exactly the tree, unformatted. */
static void test_sign_to_bytes_is_exact(void **state)
{
	signer *s;
	gw_buf bytes = GW_BUF_INIT;
	xmlDocPtr doc = make_message(ORG_GATEWAY);
	xmlChar *again;
	int len;

	assert_int_equal(signer_open(&s, tu_pki("gateway-ec.key"), tu_pki("gateway-ec.pem")), 0);
	assert_string_equal(signer_orgnr(s), ORG_GATEWAY);
	assert_int_equal(signer_sign_to_bytes(s, doc, &bytes), 0);
	xmlDocDumpMemoryEnc(doc, &again, &len, "UTF-8");
	assert_int_equal((size_t)len, bytes.len);
	assert_memory_equal(again, bytes.data, bytes.len);
	assert_non_null(strstr((char *)bytes.data, "før løslatelse"));
	/* A second signature is refused; the document stays as it was. */
	assert_int_equal(signer_sign(s, doc), GW_EINVALID);
	assert_non_null(strstr(gw_error_last(), "already"));
	xmlFree(again);
	gw_buf_free(&bytes);
	signer_close(s);
	xmlFreeDoc(doc);
}

static void test_signer_refuses_bad_keys(void **state)
{
	char dir[512], key[600];
	gw_buf data = GW_BUF_INIT;
	signer *s = NULL;

	/* A key file others can read. */
	snprintf(dir, sizeof(dir), "%s", tu_tmpdir("dsig-keys"));
	snprintf(key, sizeof(key), "%s/gateway.key", dir);
	tu_read(tu_pki("gateway-ec.key"), &data);
	tu_write(key, data.data, data.len);
	assert_int_equal(chmod(key, 0644), 0);
	assert_int_equal(signer_open(&s, key, tu_pki("gateway-ec.pem")), GW_EINVALID);
	assert_null(s);
	assert_non_null(strstr(gw_error_last(), "chmod 600"));
	/* The same key, private: accepted. */
	assert_int_equal(chmod(key, 0600), 0);
	assert_int_equal(signer_open(&s, key, tu_pki("gateway-ec.pem")), 0);
	signer_close(s);
	/* A key with someone else's certificate. */
	assert_int_equal(signer_open(&s, key, tu_pki("nav-ec.pem")), GW_EINVALID);
	assert_non_null(strstr(gw_error_last(), "does not belong"));
	/* A certificate without an organisation (the CA's own). */
	assert_int_equal(signer_open(&s, tu_pki("ca.key"), tu_pki("ca.pem")), GW_EINVALID);
	assert_non_null(strstr(gw_error_last(), "organisation"));
	/* An RSA-1024 key, although its certificate is ours and trusted. */
	assert_int_equal(signer_open(&s, tu_pki("weak.key"), tu_pki("weak.pem")), GW_EINVALID);
	assert_non_null(strstr(gw_error_last(), "too weak"));
	gw_buf_free(&data);
	tu_rmrf(dir);
}

/* ---- tampering and shapes outside the profile ---- */

static void test_changed_signed_text(void **state)
{
	xmlDocPtr doc = signed_message("gateway-rsa.key", "gateway-rsa.pem", ORG_GATEWAY);
	xmlNodePtr need = find(doc, "Need", "urn:x-notice-gateway:notice:1");

	assert_non_null(need);
	xmlNodeSetContent(need, BAD_CAST "Trenger hjelp med inntekt for loslatelse.");
	expect_reason(fx.v, doc, ORG_GATEWAY, "bad-signature", "does not verify");
}

static void test_changed_attribute_ec(void **state)
{
	xmlDocPtr doc = signed_message("nav-ec.key", "nav-ec.pem", ORG_NAV);

	xmlSetProp(find(doc, "To", NS_ENV), BAD_CAST "service", BAD_CAST "housing");
	expect_reason(fx.v, doc, ORG_NAV, "bad-signature", "does not verify");
}

static void test_second_signature(void **state)
{
	xmlDocPtr doc = signed_message("gateway-rsa.key", "gateway-rsa.pem", ORG_GATEWAY);
	xmlNodePtr sig = xmlLastElementChild(xmlDocGetRootElement(doc));

	xmlAddChild(find(doc, "Body", NS_ENV), xmlDocCopyNode(sig, doc, 1));
	expect_reason(fx.v, doc, ORG_GATEWAY, "bad-signature", "2 ds:Signature");
}

static void test_signature_not_last(void **state)
{
	xmlDocPtr doc = signed_message("gateway-rsa.key", "gateway-rsa.pem", ORG_GATEWAY);
	xmlNodePtr root = xmlDocGetRootElement(doc);

	xmlNewChild(root, root->ns, BAD_CAST "Trailer", NULL);
	expect_reason(fx.v, doc, ORG_GATEWAY, "bad-signature", "last child");
}

/* f:URI="#x" beside URI="": xmlsec could read the one the profile did not. */
static void test_namespaced_attribute_in_signature(void **state)
{
	xmlDocPtr doc = signed_message("gateway-rsa.key", "gateway-rsa.pem", ORG_GATEWAY);
	xmlNodePtr root = xmlDocGetRootElement(doc), sig = root->last, ref;
	xmlNsPtr ns;

	while (sig && sig->type != XML_ELEMENT_NODE)
		sig = sig->prev;
	assert_non_null(sig);
	ref = xmlread_first_element(xmlread_first_element(sig)); /* CanonicalizationMethod */
	ref = xmlread_next_element(xmlread_next_element(ref));    /* Reference */
	assert_string_equal((const char *)ref->name, "Reference");
	ns = xmlNewNs(ref, BAD_CAST "urn:x-other", BAD_CAST "f");
	assert_non_null(xmlNewNsProp(ref, ns, BAD_CAST "URI", BAD_CAST "#x"));
	expect_reason(fx.v, doc, ORG_GATEWAY, "bad-signature", "in a namespace");
}

static void test_reference_to_id(void **state)
{
	xmlDocPtr doc = make_message(ORG_GATEWAY);
	xmlAttrPtr id = xmlSetProp(xmlDocGetRootElement(doc), BAD_CAST "Id", BAD_CAST "m1");
	struct custom c = { .uri = "#m1" };

	assert_non_null(xmlAddID(NULL, doc, BAD_CAST "m1", id));
	sign_custom(doc, &c);
	expect_reason(fx.v, doc, ORG_GATEWAY, "bad-signature", "URI=\"\"");
}

static void test_reference_to_external_uri(void **state)
{
	const char *dir = tu_tmpdir("dsig-external");
	char path[512], uri[600];
	xmlDocPtr doc = make_message(ORG_GATEWAY);
	struct custom c = { .uri = uri, .not_enveloped = 1 };

	snprintf(path, sizeof(path), "%s/other.xml", dir);
	tu_write(path, "<Other/>", 8);
	snprintf(uri, sizeof(uri), "file://%s", path);
	sign_custom(doc, &c);
	expect_reason(fx.v, doc, ORG_GATEWAY, "bad-signature", "URI=\"\"");
	tu_rmrf(dir);
}

static void test_extra_transform(void **state)
{
	xmlDocPtr doc = make_message(ORG_GATEWAY);
	struct custom c = { .extra = xmlSecTransformInclC14NId };

	sign_custom(doc, &c);
	expect_reason(fx.v, doc, ORG_GATEWAY, "bad-signature", "Transforms");
}

static void test_xpath_transform(void **state)
{
	xmlDocPtr doc = make_message(ORG_GATEWAY);
	struct custom c = { .xpath = 1 };

	sign_custom(doc, &c);
	expect_reason(fx.v, doc, ORG_GATEWAY, "bad-signature", "Transforms");
}

static void test_xslt_transform(void **state)
{
	xmlDocPtr doc = make_message(ORG_GATEWAY);
	struct custom c = { .xslt = 1 };

	sign_custom(doc, &c);
	expect_reason(fx.v, doc, ORG_GATEWAY, "bad-signature", "Transforms");
}

/* A profile signature, by our signer, with its Transforms swapped afterwards. */
static void test_transforms_reordered(void **state)
{
	xmlDocPtr doc = signed_message("gateway-rsa.key", "gateway-rsa.pem", ORG_GATEWAY);
	xmlNodePtr transforms = find(doc, "Transforms", "http://www.w3.org/2000/09/xmldsig#");
	xmlNodePtr first = xmlFirstElementChild(transforms);

	xmlUnlinkNode(first);
	xmlAddChild(transforms, first);
	expect_reason(fx.v, doc, ORG_GATEWAY, "bad-signature", "Transforms");
}

static void test_bare_key_value(void **state)
{
	xmlDocPtr doc = make_message(ORG_GATEWAY);
	struct custom c = { .key_value = 1 };

	sign_custom(doc, &c);
	expect_reason(fx.v, doc, ORG_GATEWAY, "bad-signature", "KeyInfo");
}

/* Signature wrapping: the signed message moved inside a forged one. */
static void test_signature_wrapping(void **state)
{
	xmlDocPtr good = signed_message("gateway-rsa.key", "gateway-rsa.pem", ORG_GATEWAY);
	xmlDocPtr forged = make_message(ORG_GATEWAY), forged2;
	xmlNodePtr good_root = xmlDocGetRootElement(good);
	xmlNodePtr sig = xmlLastElementChild(good_root);

	xmlSetProp(find(forged, "To", NS_ENV), BAD_CAST "orgnr", BAD_CAST ORG_HOUSING);
	forged2 = xmlCopyDoc(forged, 1);

	/* (a) the whole signed message inside the forged Body. */
	xmlAddChild(find(forged, "Body", NS_ENV), xmlDocCopyNode(good_root, forged, 1));
	expect_reason(fx.v, forged, ORG_GATEWAY, "bad-signature", "last child");

	/* (b) the same, with the signature lifted to where the profile wants it. */
	xmlAddChild(find(forged2, "Body", NS_ENV), xmlDocCopyNode(good_root, forged2, 1));
	xmlNodePtr inner = xmlLastElementChild(xmlLastElementChild(find(forged2, "Body", NS_ENV)));
	xmlUnlinkNode(inner);
	xmlFreeNode(inner);
	xmlAddChild(xmlDocGetRootElement(forged2), xmlDocCopyNode(sig, forged2, 1));
	expect_reason(fx.v, forged2, ORG_GATEWAY, "bad-signature", "does not verify");
	xmlFreeDoc(good);
}

/* ---- who signed ---- */

static void test_untrusted_signer(void **state)
{
	xmlDocPtr doc = signed_message("untrusted.key", "untrusted.pem", ORG_GATEWAY);

	expect_reason(fx.v, doc, ORG_GATEWAY, "untrusted-signer", "unable to get local issuer");
}

static void test_expired_signer(void **state)
{
	xmlDocPtr doc = signed_message("expired.key", "expired.pem", ORG_GATEWAY);

	expect_reason(fx.v, doc, ORG_GATEWAY, "untrusted-signer", "expired");
}

static void test_revoked_signer(void **state)
{
	xmlDocPtr doc = signed_message("revoked.key", "revoked.pem", ORG_GATEWAY);
	struct verify_result r;

	/* Without a CRL nobody can know; with it the signer is refused. */
	assert_int_equal(check(fx.v, doc, ORG_GATEWAY, &r), 0);
	expect_reason(fx.v_crl, doc, ORG_GATEWAY, "untrusted-signer", "revoked");
}

/* A trusted CA issued it, but RSA-1024 is below security level 2 (pki.h). */
static void test_weak_signer_key(void **state)
{
	xmlDocPtr doc = make_message(ORG_GATEWAY);
	struct custom c = { .key = "weak.key", .cert = "weak.pem" };

	sign_custom(doc, &c);
	expect_reason(fx.v, doc, ORG_GATEWAY, "untrusted-signer", "too weak");
}

static void test_sender_mismatch(void **state)
{
	xmlDocPtr doc = signed_message("nav-ec.key", "nav-ec.pem", ORG_HOUSING);
	struct verify_result r;

	assert_int_equal(check(fx.v, doc, ORG_HOUSING, &r), GW_EINVALID);
	assert_string_equal(r.reason_code, "sender-mismatch");
	assert_string_equal(r.signer_orgnr, ORG_NAV);
	assert_non_null(strstr(gw_error_last(), ORG_NAV));
	expect_reason(fx.v, doc, ORG_HOUSING, "sender-mismatch", ORG_HOUSING);
}

/*
 * A trusted certificate placed in KeyInfo next to the untrusted one that
 * really signed: the signer must still be found untrusted or the signature
 * bad, never accepted as the trusted party.
 */
static void test_trusted_cert_beside_untrusted_signer(void **state)
{
	xmlDocPtr doc = signed_message("untrusted.key", "untrusted.pem", ORG_GATEWAY);
	xmlDocPtr other = signed_message("gateway-rsa.key", "gateway-rsa.pem", ORG_GATEWAY);
	xmlNodePtr x509 = find(doc, "X509Data", "http://www.w3.org/2000/09/xmldsig#");
	xmlNodePtr good = find(other, "X509Certificate", "http://www.w3.org/2000/09/xmldsig#");
	struct verify_result r;

	xmlAddPrevSibling(xmlFirstElementChild(x509), xmlDocCopyNode(good, doc, 1));
	assert_int_equal(check(fx.v, doc, ORG_GATEWAY, &r), GW_EINVALID);
	assert_non_null(r.reason_code);
	assert_string_not_equal(r.signer_orgnr, ORG_GATEWAY);
	xmlFreeDoc(other);
	xmlFreeDoc(doc);
}

/*
 * The verifier remembers a signer certificate that passed (partners sign
 * everything with one). That memory must never vouch for a signature: a
 * trusted, already seen certificate put in front of another key's
 * signature, or a changed document, still fails; a failure is not kept.
 */
static void test_remembered_signer_vouches_for_nothing(void **state)
{
	xmlDocPtr good = signed_message("gateway-rsa.key", "gateway-rsa.pem", ORG_GATEWAY);
	xmlDocPtr forged = signed_message("untrusted.key", "untrusted.pem", ORG_GATEWAY);
	xmlNodePtr good_cert = find(good, "X509Certificate", "http://www.w3.org/2000/09/xmldsig#");
	xmlNodePtr forged_cert = find(forged, "X509Certificate", "http://www.w3.org/2000/09/xmldsig#");
	xmlChar *text = xmlNodeGetContent(good_cert);
	struct verify_result r;

	for (int i = 0; i < 3; i++) {
		assert_int_equal(check(fx.v, good, ORG_GATEWAY, &r), 0);
		assert_string_equal(r.signer_orgnr, ORG_GATEWAY);
	}
	for (int i = 0; i < 2; i++)
		expect_reason(fx.v, xmlCopyDoc(forged, 1), ORG_GATEWAY, "untrusted-signer", NULL);
	/* the trusted certificate, someone else's signature */
	xmlNodeSetContent(forged_cert, text);
	expect_reason(fx.v, forged, ORG_GATEWAY, "bad-signature", "does not verify");
	xmlFree(text);
	/* the trusted certificate, its own signature, a changed document */
	xmlNodeSetContent(find(good, "Need", NS_NOTICE), BAD_CAST "Altered after signing.");
	expect_reason(fx.v, good, ORG_GATEWAY, "bad-signature", "does not verify");
}

/* ---- threads ---- */

struct worker {
	pki_trust *trust;
	const gw_buf *bytes;
	int failures;
};

static void *verify_many(void *arg)
{
	struct worker *w = arg;
	verifier *v;
	struct verify_result r;

	if (verifier_new(&v, w->trust) < 0) {
		w->failures = 1000;
		return NULL;
	}
	for (int i = 0; i < 20; i++) {
		xmlDocPtr doc = xmlReadMemory((const char *)w->bytes->data, (int)w->bytes->len,
					      "msg.xml", NULL, XML_PARSE_NONET);
		if (!doc || verifier_check(v, doc, ORG_GATEWAY, &r) != 0)
			w->failures++;
		xmlFreeDoc(doc);
	}
	verifier_free(v);
	return NULL;
}

static void test_threads_one_verifier_each(void **state)
{
	struct worker w[4];
	pthread_t th[4];
	signer *s;
	gw_buf bytes = GW_BUF_INIT;
	xmlDocPtr doc = make_message(ORG_GATEWAY);

	assert_int_equal(signer_open(&s, tu_pki("gateway-ec.key"), tu_pki("gateway-ec.pem")), 0);
	assert_int_equal(signer_sign_to_bytes(s, doc, &bytes), 0);
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){ fx.trust_crl, &bytes, 0 };
		assert_int_equal(pthread_create(&th[i], NULL, verify_many, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].failures, 0);
	}
	signer_close(s);
	gw_buf_free(&bytes);
	xmlFreeDoc(doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_rsa),
		cmocka_unit_test(test_remembered_signer_vouches_for_nothing),
		cmocka_unit_test(test_round_trip_ec),
		cmocka_unit_test(test_sign_to_bytes_is_exact),
		cmocka_unit_test(test_signer_refuses_bad_keys),
		cmocka_unit_test(test_changed_signed_text),
		cmocka_unit_test(test_changed_attribute_ec),
		cmocka_unit_test(test_second_signature),
		cmocka_unit_test(test_signature_not_last),
		cmocka_unit_test(test_namespaced_attribute_in_signature),
		cmocka_unit_test(test_reference_to_id),
		cmocka_unit_test(test_reference_to_external_uri),
		cmocka_unit_test(test_extra_transform),
		cmocka_unit_test(test_xpath_transform),
		cmocka_unit_test(test_xslt_transform),
		cmocka_unit_test(test_transforms_reordered),
		cmocka_unit_test(test_bare_key_value),
		cmocka_unit_test(test_signature_wrapping),
		cmocka_unit_test(test_untrusted_signer),
		cmocka_unit_test(test_expired_signer),
		cmocka_unit_test(test_revoked_signer),
		cmocka_unit_test(test_weak_signer_key),
		cmocka_unit_test(test_sender_mismatch),
		cmocka_unit_test(test_trusted_cert_beside_untrusted_signer),
		cmocka_unit_test(test_threads_one_verifier_each),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
