/*
 * test_dsig_interop: the signature profile against another implementation,
 * the xmlsec1 command (SPEC section 5: "any standard XMLDSig implementation
 * must verify what the gateway signs").
 *   (a) what our signer makes, `xmlsec1 --verify` with only the CA as
 *       trusted, only the empty reference URI and only X509 key data accepts
 *       (and refuses once a signed byte changes, so the check means something);
 *   (b) what `xmlsec1 --sign` makes from a profile template, our verifier
 *       accepts with the right organisation.
 * Both for RSA and EC.
 */
#include "testutil.h"
#include "err.h"
#include "pki.h"
#include "signer.h"
#include "verify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>

#define ORG_GATEWAY "974760673"
#define ORG_HEALTH "987654325"

static pki_trust *trust;
static verifier *ver;
static const char *dir;

static int setup(void **state)
{
	const char *anchors[] = { tu_pki("ca.pem") };
	const char *crls[] = { tu_pki("ca.crl") };

	assert_int_equal(dsig_init(), 0);
	assert_int_equal(pki_trust_new(&trust, anchors, 1, crls, 1), 0);
	assert_int_equal(verifier_new(&ver, trust), 0);
	dir = tu_tmpdir("dsig-interop");
	return 0;
}

static int teardown(void **state)
{
	verifier_free(ver);
	pki_trust_free(trust);
	dsig_shutdown();
	xmlCleanupParser();
	tu_rmrf(dir);
	return 0;
}

static const char *path_in_dir(const char *name)
{
	static char ring[4][512];
	static unsigned next;
	char *p = ring[next++ % 4];

	snprintf(p, 512, "%s/%s", dir, name);
	return p;
}

/* Run a shell command; its output goes to a log shown when it fails. */
static int run(const char *cmd)
{
	return tu_run(cmd, path_in_dir("xmlsec1.log"), 1);
}

static const char message_body[] =
	"<Header><MessageId>0b9d6f0e-2c4a-4e8b-9a1d-3c5e7f9a1b2d</MessageId>"
	"<Created>2026-11-20T09:15:02Z</Created><From orgnr=\"%s\"/>"
	"<To orgnr=\"958935420\" service=\"housing\"/>"
	"<NoticeRef id=\"KDI-2026-000124\" revision=\"2\" kind=\"release\"/></Header>\n"
	"<Body><Notice xmlns=\"urn:x-notice-gateway:notice:1\" id=\"KDI-2026-000124\">"
	"<Needs><Need category=\"housing\">Bolig fra dag én.</Need></Needs></Notice></Body>\n";

/* (a) our signature, xmlsec1's verdict. */
static void ours_verified_by_xmlsec1(const char *party)
{
	char key[64], cert[64], text[2048], cmd[2048];
	signer *s;
	gw_buf bytes = GW_BUF_INIT;
	xmlDocPtr doc;
	const char *file = path_in_dir("ours.xml");
	int n;

	snprintf(key, sizeof(key), "%s.key", party);
	snprintf(cert, sizeof(cert), "%s.pem", party);
	n = snprintf(text, sizeof(text), "<Message xmlns=\"urn:x-notice-gateway:envelope:1\">");
	n += snprintf(text + n, sizeof(text) - (size_t)n, message_body, ORG_GATEWAY);
	n += snprintf(text + n, sizeof(text) - (size_t)n, "</Message>");
	doc = xmlReadMemory(text, n, "m.xml", NULL, XML_PARSE_NONET);
	assert_non_null(doc);
	assert_int_equal(signer_open(&s, tu_pki(key), tu_pki(cert)), 0);
	assert_int_equal(signer_sign_to_bytes(s, doc, &bytes), 0);
	tu_write(file, bytes.data, bytes.len);

	snprintf(cmd, sizeof(cmd), "xmlsec1 --verify --trusted-pem '%s' "
		 "--enabled-reference-uris empty --enabled-key-data x509 '%s'",
		 tu_pki("ca.pem"), file);
	assert_int_equal(run(cmd), 0);

	/* Changed after signing: xmlsec1 must say no, or (a) proves nothing. */
	char *at = strstr((char *)bytes.data, "KDI-2026-000124");
	assert_non_null(at);
	at[13] = '5';
	tu_write(file, bytes.data, bytes.len);
	assert_int_not_equal(run(cmd), 0);

	gw_buf_free(&bytes);
	signer_close(s);
	xmlFreeDoc(doc);
}

static void test_xmlsec1_verifies_ours_rsa(void **state)
{
	ours_verified_by_xmlsec1("gateway-rsa");
}

static void test_xmlsec1_verifies_ours_ec(void **state)
{
	ours_verified_by_xmlsec1("gateway-ec");
}

/* (b) xmlsec1's signature from the profile template, our verdict. */
static void theirs_verified_by_us(const char *party, const char *method)
{
	char text[4096], cmd[2048], key_cert[1024];
	const char *tmpl = path_in_dir("template.xml");
	const char *out = path_in_dir("theirs.xml");
	struct verify_result r;
	gw_buf signed_bytes = GW_BUF_INIT;
	xmlDocPtr doc;
	int n;

	n = snprintf(text, sizeof(text), "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		     "<Message xmlns=\"urn:x-notice-gateway:envelope:1\">");
	n += snprintf(text + n, sizeof(text) - (size_t)n, message_body, ORG_HEALTH);
	n += snprintf(text + n, sizeof(text) - (size_t)n,
		"<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\">"
		"<ds:SignedInfo>"
		"<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>"
		"<ds:SignatureMethod Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#%s\"/>"
		"<ds:Reference URI=\"\"><ds:Transforms>"
		"<ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>"
		"<ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>"
		"</ds:Transforms>"
		"<ds:DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"/>"
		"<ds:DigestValue/></ds:Reference></ds:SignedInfo>"
		"<ds:SignatureValue/>"
		"<ds:KeyInfo><ds:X509Data><ds:X509Certificate/></ds:X509Data></ds:KeyInfo>"
		"</ds:Signature></Message>\n", method);
	tu_write(tmpl, text, (size_t)n);

	snprintf(key_cert, sizeof(key_cert), "%s.key,%s.pem", party, party);
	snprintf(cmd, sizeof(cmd), "cd '%s' && xmlsec1 --sign --privkey-pem '%s' "
		 "--output '%s' '%s'", getenv("GW_PKI_DIR") ? getenv("GW_PKI_DIR") : "build/pki",
		 key_cert, out, tmpl);
	assert_int_equal(run(cmd), 0);

	tu_read(out, &signed_bytes);
	doc = xmlReadMemory((char *)signed_bytes.data, (int)signed_bytes.len, "theirs.xml", NULL,
			    XML_PARSE_NONET);
	assert_non_null(doc);
	if (verifier_check(ver, doc, ORG_HEALTH, &r) != 0)
		fail_msg("xmlsec1's signature rejected (%s): %s", r.reason_code, gw_error_last());
	assert_string_equal(r.signer_orgnr, ORG_HEALTH);
	/* Bound to the wrong party it is still refused. */
	assert_int_equal(verifier_check(ver, doc, ORG_GATEWAY, &r), GW_EINVALID);
	assert_string_equal(r.reason_code, "sender-mismatch");
	xmlFreeDoc(doc);
	gw_buf_free(&signed_bytes);
}

static void test_we_verify_xmlsec1_rsa(void **state)
{
	theirs_verified_by_us("health-rsa", "rsa-sha256");
}

static void test_we_verify_xmlsec1_ec(void **state)
{
	theirs_verified_by_us("health-ec", "ecdsa-sha256");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_xmlsec1_verifies_ours_rsa),
		cmocka_unit_test(test_xmlsec1_verifies_ours_ec),
		cmocka_unit_test(test_we_verify_xmlsec1_rsa),
		cmocka_unit_test(test_we_verify_xmlsec1_ec),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
