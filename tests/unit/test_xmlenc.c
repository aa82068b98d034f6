/*
 * test_xmlenc: the SPEC section 5 encryption profile.
 *
 * Round trips with nav's RSA key; the exact algorithm URIs and the
 * recipient certificate in what we produce; a rollover (two recipient
 * certificates, either key alone decrypts); key choice by certificate and
 * the fallback when an EncryptedKey names none; a wrong key, an EC
 * certificate, a readable key file, tampered ciphertext, and documents
 * outside the profile, each refused with a clear message and the document
 * left as it was. Interop both ways with the xmlsec1 command: it decrypts
 * ours, and documents it encrypts are decrypted by us when they fit the
 * profile (aes256-gcm + rsa-oaep-mgf1p) and refused when they do not
 * (aes128-cbc, rsa-1_5) although xmlsec1 itself decrypts them, so the
 * refusal is the profile's. Finally encrypt-then-sign: the signed,
 * encrypted message verifies before anything is decrypted.
 */
#include "testutil.h"
#include "err.h"
#include "pki.h"
#include "signer.h"
#include "verify.h"
#include "xmlenc.h"
#include "xmlread.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libxml/parser.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#define ORG_GATEWAY "974760673"
#define ORG_NAV "889960221"
#define ALG_GCM "http://www.w3.org/2009/xmlenc11#aes256-gcm"
#define ALG_CBC "http://www.w3.org/2001/04/xmlenc#aes128-cbc"
#define ALG_OAEP "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"
#define ALG_RSA15 "http://www.w3.org/2001/04/xmlenc#rsa-1_5"
#define TYPE_ELEMENT "http://www.w3.org/2001/04/xmlenc#Element"

/* The Notice as the message module would put it in a Body (no Consent). */
#define NOTICE_XML                                                                        \
	"<Notice xmlns=\"urn:x-notice-gateway:notice:1\" id=\"KDI-2026-000123\" "        \
	"revision=\"1\" kind=\"release\"><Issued>2026-11-20T10:15:00+01:00</Issued>"     \
	"<Sender orgnr=\"974760673\" unit=\"Oslo fengsel\"/>"                            \
	"<Release date=\"2026-12-04\" time=\"09:00\" type=\"full-term\" "                \
	"municipality=\"0301\"/><Needs><Need category=\"income\">Trenger hjelp med "     \
	"inntekt på Grünerløkka &amp; bolig.</Need></Needs></Notice>"

static const char message_fmt[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"<Message xmlns=\"urn:x-notice-gateway:envelope:1\"><Header>"
	"<MessageId>3f1c2b4a-5d6e-4f70-8a9b-0c1d2e3f4a5b</MessageId>"
	"<Created>2026-11-20T09:15:02Z</Created><From orgnr=\"" ORG_GATEWAY "\"/>"
	"<To orgnr=\"" ORG_NAV "\" service=\"nav\"/>"
	"<NoticeRef id=\"KDI-2026-000123\" revision=\"1\" kind=\"release\"/></Header>"
	"<Body>%s</Body></Message>\n";

static char dir[512]; /* scratch directory for files and xmlsec1 */

static int setup(void **state)
{
	(void)state;
	assert_int_equal(xmlread_init(), 0);
	assert_int_equal(dsig_init(), 0);
	snprintf(dir, sizeof(dir), "%s", tu_tmpdir("xmlenc"));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tu_rmrf(dir);
	dsig_shutdown();
	xmlread_shutdown();
	return 0;
}

/* ---- helpers ---- */

static const char *in_dir(const char *name)
{
	static char ring[4][1024];
	static unsigned next;
	char *p = ring[next++ % 4];

	snprintf(p, 1024, "%s/%s", dir, name);
	return p;
}

/* Run a shell command; its stderr goes to a log shown when it fails. */
static int run(const char *cmd)
{
	return tu_run(cmd, in_dir("cmd.log"), 0);
}

static xmlDocPtr parse_text(const char *text)
{
	xmlDocPtr doc = NULL;

	if (xmlread_parse(&doc, (const unsigned char *)text, strlen(text), 0, "test") < 0)
		fail_msg("cannot parse: %s", gw_error_last());
	return doc;
}

static xmlDocPtr message_with(const char *body)
{
	char text[16384];

	snprintf(text, sizeof(text), message_fmt, body);
	return parse_text(text);
}

static xmlNodePtr body_of(xmlDocPtr doc)
{
	xmlNodePtr body = xmlread_child(xmlDocGetRootElement(doc), NS_ENVELOPE, "Body");

	assert_non_null(body);
	return body;
}

static xmlNodePtr body_child(xmlDocPtr doc, const char *ns, const char *name)
{
	return xmlread_child(body_of(doc), ns, name);
}

static X509 *cert(const char *name)
{
	X509 *c = NULL;

	assert_int_equal(pki_cert_load(&c, tu_pki(name)), 0);
	return c;
}

/* The whole document as text (caller frees with free()). */
static char *doc_text(xmlDocPtr doc)
{
	unsigned char *bytes = NULL;
	size_t len = 0;
	char *text;

	assert_int_equal(xmlread_serialize(doc, &bytes, &len), 0);
	text = malloc(len + 1);
	assert_non_null(text);
	memcpy(text, bytes, len);
	text[len] = '\0';
	free(bytes);
	return text;
}

/* One element as text, for comparing before and after. */
static char *node_text(xmlNodePtr node)
{
	xmlBufferPtr buf = xmlBufferCreate();
	char *text;

	assert_non_null(buf);
	assert_true(xmlNodeDump(buf, node->doc, node, 0, 0) > 0);
	text = strdup((const char *)xmlBufferContent(buf));
	xmlBufferFree(buf);
	assert_non_null(text);
	return text;
}

/* As if sent: serialise and read again through the hardened parser. */
static xmlDocPtr over_the_wire(xmlDocPtr doc)
{
	char *text = doc_text(doc);
	xmlDocPtr copy = parse_text(text);

	free(text);
	xmlFreeDoc(doc);
	return copy;
}

/* A message whose Notice is encrypted for the given certificates. */
static xmlDocPtr encrypted_message(const char *const *cert_names, size_t n)
{
	xmlDocPtr doc = message_with(NOTICE_XML);
	X509 *certs[4];

	assert_true(n <= 4);
	for (size_t i = 0; i < n; i++)
		certs[i] = cert(cert_names[i]);
	if (xmlenc_encrypt_element(body_child(doc, NS_NOTICE, "Notice"), certs, n) < 0)
		fail_msg("encryption failed: %s", gw_error_last());
	for (size_t i = 0; i < n; i++)
		X509_free(certs[i]);
	return over_the_wire(doc);
}

static xmlenc_keys *keys_of(const char *const *parties, size_t n)
{
	xmlenc_keys *k = NULL;
	char key[64], crt[64];

	assert_int_equal(xmlenc_keys_new(&k), 0);
	for (size_t i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "%s.key", parties[i]);
		snprintf(crt, sizeof(crt), "%s.pem", parties[i]);
		if (xmlenc_keys_add(k, tu_pki(key), tu_pki(crt)) < 0)
			fail_msg("cannot add key %s: %s", parties[i], gw_error_last());
	}
	return k;
}

/* The expected plaintext: the Notice of an unencrypted message, as text. */
static char *original_notice(void)
{
	xmlDocPtr doc = message_with(NOTICE_XML);
	char *text = node_text(body_child(doc, NS_NOTICE, "Notice"));

	xmlFreeDoc(doc);
	return text;
}

/* Decrypt the Body's EncryptedData with the keys of parties; assert the Notice. */
static void decrypts_with(xmlDocPtr doc, const char *const *parties, size_t n)
{
	xmlenc_keys *k = keys_of(parties, n);
	xmlNodePtr enc = body_child(doc, NS_XENC, "EncryptedData"), plain = NULL;
	char *want = original_notice(), *got;

	assert_non_null(enc);
	if (xmlenc_decrypt_element(k, enc, &plain) < 0)
		fail_msg("decryption failed: %s", gw_error_last());
	assert_ptr_equal(plain, body_child(doc, NS_NOTICE, "Notice"));
	assert_null(body_child(doc, NS_XENC, "EncryptedData"));
	got = node_text(plain);
	assert_string_equal(got, want);
	free(got);
	free(want);
	xmlenc_keys_free(k);
}

/* Decryption must fail with GW_EINVALID, a message holding `expect`, doc unchanged. */
static void refused_with(xmlDocPtr doc, const char *const *parties, size_t n,
			 const char *expect)
{
	xmlenc_keys *k = keys_of(parties, n);
	xmlNodePtr enc = body_child(doc, NS_XENC, "EncryptedData"), plain = NULL;
	char *before, *after;

	assert_non_null(enc);
	before = doc_text(doc);
	assert_int_equal(xmlenc_decrypt_element(k, enc, &plain), GW_EINVALID);
	assert_null(plain);
	if (!strstr(gw_error_last(), expect))
		fail_msg("message \"%s\" does not mention \"%s\"", gw_error_last(), expect);
	after = doc_text(doc);
	assert_string_equal(before, after);
	free(before);
	free(after);
	xmlenc_keys_free(k);
}

static xmlNodePtr child(xmlNodePtr parent, const char *ns, const char *name)
{
	xmlNodePtr n = xmlread_child(parent, ns, name);

	if (!n)
		fail_msg("no %s under %s", name, (const char *)parent->name);
	return n;
}

static void assert_attr(xmlNodePtr n, const char *name, const char *value)
{
	char *v = xmlread_attr(n, name);

	assert_non_null(v);
	assert_string_equal(v, value);
	xmlFree(v);
}

static int element_children(xmlNodePtr n)
{
	int count = 0;

	for (xmlNodePtr c = n->children; c; c = c->next)
		count += c->type == XML_ELEMENT_NODE;
	return count;
}

/* The certificate file's DER as one base64 line. */
static char *cert_base64(const char *name)
{
	X509 *c = cert(name);
	unsigned char *der = NULL;
	int len = i2d_X509(c, &der);
	char *b64 = malloc((size_t)len * 2 + 4);

	assert_true(len > 0);
	assert_non_null(b64);
	EVP_EncodeBlock((unsigned char *)b64, der, len);
	OPENSSL_free(der);
	X509_free(c);
	return b64;
}

/* Element text without whitespace. */
static char *squeezed_text(xmlNodePtr n)
{
	xmlChar *content = xmlNodeGetContent(n);
	char *out = strdup((const char *)content), *w = out;

	for (const char *r = (const char *)content; *r; r++)
		if (*r != ' ' && *r != '\n' && *r != '\r' && *r != '\t')
			*w++ = *r;
	*w = '\0';
	xmlFree(content);
	return out;
}

/* ---- round trip and shape ---- */

static void test_round_trip(void **state)
{
	static const char *const nav_cert[] = { "nav.pem" };
	static const char *const nav[] = { "nav" };
	xmlDocPtr doc = encrypted_message(nav_cert, 1);
	char *text = doc_text(doc);

	(void)state;
	/* Nothing of the Notice shows in what travels. */
	assert_null(strstr(text, "<Notice "));
	assert_null(strstr(text, NS_NOTICE));
	assert_null(strstr(text, "Grünerløkka"));
	assert_null(strstr(text, "Oslo fengsel"));
	free(text);
	decrypts_with(doc, nav, 1);
	xmlFreeDoc(doc);
}

static void test_profile_shape(void **state)
{
	static const char *const nav_cert[] = { "nav.pem" };
	xmlDocPtr doc = encrypted_message(nav_cert, 1);
	xmlNodePtr enc = body_child(doc, NS_XENC, "EncryptedData"), ki, ekey, em, ekey_ki;
	char *want = cert_base64("nav.pem"), *got;

	(void)state;
	assert_non_null(enc);
	assert_string_equal((const char *)enc->ns->prefix, "xenc");
	assert_attr(enc, "Type", TYPE_ELEMENT);
	assert_attr(child(enc, NS_XENC, "EncryptionMethod"), "Algorithm", ALG_GCM);
	ki = child(enc, NS_DSIG, "KeyInfo");
	assert_int_equal(element_children(ki), 1);
	ekey = child(ki, NS_XENC, "EncryptedKey");
	em = child(ekey, NS_XENC, "EncryptionMethod");
	assert_attr(em, "Algorithm", ALG_OAEP);
	assert_int_equal(element_children(em), 0); /* no DigestMethod: SHA-1 default */
	ekey_ki = child(ekey, NS_DSIG, "KeyInfo");
	got = squeezed_text(child(child(ekey_ki, NS_DSIG, "X509Data"), NS_DSIG,
				  "X509Certificate"));
	assert_string_equal(got, want);
	assert_non_null(child(child(ekey, NS_XENC, "CipherData"), NS_XENC, "CipherValue"));
	assert_non_null(child(child(enc, NS_XENC, "CipherData"), NS_XENC, "CipherValue"));
	free(got);
	free(want);
	xmlFreeDoc(doc);
}

static void test_fresh_session_key_each_time(void **state)
{
	static const char *const nav_cert[] = { "nav.pem" };
	xmlDocPtr a = encrypted_message(nav_cert, 1), b = encrypted_message(nav_cert, 1);
	char *ta = doc_text(a), *tb = doc_text(b);

	(void)state;
	assert_string_not_equal(ta, tb);
	free(ta);
	free(tb);
	xmlFreeDoc(a);
	xmlFreeDoc(b);
}

/*
 * A Notice whose prefix is declared on an ancestor: the plaintext declares
 * it itself, so the EncryptedData decrypts in a document that does not.
 */
static void test_namespace_from_ancestor(void **state)
{
	static const char *const nav[] = { "nav" };
	static const char prefixed[] =
		"<?xml version=\"1.0\"?>\n<Message xmlns=\"urn:x-notice-gateway:envelope:1\" "
		"xmlns:n=\"urn:x-notice-gateway:notice:1\"><Body><n:Notice id=\"a\">"
		"<n:Issued>2026-11-20T10:15:00+01:00</n:Issued></n:Notice></Body></Message>\n";
	xmlDocPtr doc = parse_text(prefixed), moved;
	X509 *c = cert("nav.pem");
	xmlenc_keys *k = keys_of(nav, 1);
	xmlNodePtr plain = NULL;
	char *enc_text;

	(void)state;
	assert_int_equal(xmlenc_encrypt_element(body_child(doc, NS_NOTICE, "Notice"), &c, 1), 0);
	enc_text = node_text(body_child(doc, NS_XENC, "EncryptedData"));
	moved = message_with(enc_text);
	assert_int_equal(xmlenc_decrypt_element(k, body_child(moved, NS_XENC, "EncryptedData"),
						&plain), 0);
	assert_ptr_equal(plain, body_child(moved, NS_NOTICE, "Notice"));
	assert_non_null(xmlread_child(plain, NS_NOTICE, "Issued"));
	free(enc_text);
	xmlenc_keys_free(k);
	X509_free(c);
	xmlFreeDoc(doc);
	xmlFreeDoc(moved);
}

/* ---- rollover and key choice ---- */

static void test_rollover_either_key_decrypts(void **state)
{
	static const char *const both[] = { "nav.pem", "health.pem" };
	static const char *const old_key[] = { "nav" };
	static const char *const new_key[] = { "health" };
	xmlDocPtr doc = encrypted_message(both, 2);
	char *text = doc_text(doc), *nav64 = cert_base64("nav.pem");
	char *health64 = cert_base64("health.pem"), *first, *second;
	xmlDocPtr again = parse_text(text);
	xmlNodePtr ki = child(body_child(doc, NS_XENC, "EncryptedData"), NS_DSIG, "KeyInfo");
	xmlNodePtr k1 = child(ki, NS_XENC, "EncryptedKey");
	xmlNodePtr k2 = k1->next;

	while (k2 && k2->type != XML_ELEMENT_NODE)
		k2 = k2->next;

	(void)state;
	assert_int_equal(element_children(ki), 2);
	assert_non_null(k2);
	first = squeezed_text(child(child(child(k1, NS_DSIG, "KeyInfo"), NS_DSIG, "X509Data"),
				    NS_DSIG, "X509Certificate"));
	second = squeezed_text(child(child(child(k2, NS_DSIG, "KeyInfo"), NS_DSIG,
					   "X509Data"), NS_DSIG, "X509Certificate"));
	assert_string_equal(first, nav64);
	assert_string_equal(second, health64);
	decrypts_with(doc, old_key, 1);
	decrypts_with(again, new_key, 1);
	free(first);
	free(second);
	free(nav64);
	free(health64);
	free(text);
	xmlFreeDoc(doc);
	xmlFreeDoc(again);
}

static void test_receiver_with_both_keys(void **state)
{
	static const char *const new_cert[] = { "health.pem" };
	static const char *const both[] = { "nav", "health" };
	xmlDocPtr doc = encrypted_message(new_cert, 1);

	(void)state;
	decrypts_with(doc, both, 2);
	xmlFreeDoc(doc);
}

/* An EncryptedKey without KeyInfo: every key is tried, the right one wins. */
static void test_fallback_without_certificate(void **state)
{
	static const char *const nav_cert[] = { "nav.pem" };
	static const char *const wrong_first[] = { "health", "nav" };
	xmlDocPtr doc = encrypted_message(nav_cert, 1);
	xmlNodePtr ki = child(body_child(doc, NS_XENC, "EncryptedData"), NS_DSIG, "KeyInfo");
	xmlNodePtr ekey_ki = child(child(ki, NS_XENC, "EncryptedKey"), NS_DSIG, "KeyInfo");

	(void)state;
	xmlUnlinkNode(ekey_ki);
	xmlFreeNode(ekey_ki);
	decrypts_with(doc, wrong_first, 2);
	xmlFreeDoc(doc);
}

static void test_wrong_key_fails_clearly(void **state)
{
	static const char *const nav_cert[] = { "nav.pem" };
	static const char *const health[] = { "health" };
	xmlDocPtr doc = encrypted_message(nav_cert, 1);

	(void)state;
	/* The message says who it was for: nav's organisation. */
	refused_with(doc, health, 1, "organisation " ORG_NAV);
	refused_with(doc, health, 1, "none of our 1 decryption keys");
	xmlFreeDoc(doc);
}

/* ---- refusals when encrypting and loading keys ---- */

static void test_ec_certificate_refused(void **state)
{
	xmlDocPtr doc = message_with(NOTICE_XML);
	X509 *certs[2] = { cert("nav.pem"), cert("nav-ec.pem") };
	char *before = doc_text(doc), *after;

	(void)state;
	assert_int_equal(xmlenc_encrypt_element(body_child(doc, NS_NOTICE, "Notice"), certs + 1,
						1),
			 GW_EINVALID);
	assert_non_null(strstr(gw_error_last(), "an EC key"));
	assert_non_null(strstr(gw_error_last(), "organisation " ORG_NAV));
	assert_non_null(strstr(gw_error_last(), "only RSA certificates"));
	/* One good and one EC certificate: refused as a whole, nothing changed. */
	assert_int_equal(xmlenc_encrypt_element(body_child(doc, NS_NOTICE, "Notice"), certs, 2),
			 GW_EINVALID);
	assert_non_null(strstr(gw_error_last(), "certificate 2"));
	after = doc_text(doc);
	assert_string_equal(before, after);
	free(before);
	free(after);
	X509_free(certs[0]);
	X509_free(certs[1]);
	xmlFreeDoc(doc);
}

static void test_bad_recipient_lists_refused(void **state)
{
	xmlDocPtr doc = message_with(NOTICE_XML);
	X509 *c = cert("nav.pem");
	X509 *five[5] = { c, c, c, c, c };
	xmlNodePtr notice = body_child(doc, NS_NOTICE, "Notice");

	(void)state;
	assert_int_equal(xmlenc_encrypt_element(notice, five, 0), GW_EINVALID);
	assert_int_equal(xmlenc_encrypt_element(notice, five, 5), GW_EINVALID);
	assert_int_equal(xmlenc_encrypt_element(notice, NULL, 1), GW_EINVALID);
	assert_ptr_equal(body_child(doc, NS_NOTICE, "Notice"), notice);
	X509_free(c);
	xmlFreeDoc(doc);
}

static void test_keys_refused(void **state)
{
	xmlenc_keys *k = NULL;
	const char *loose = in_dir("loose.key");
	gw_buf key = GW_BUF_INIT;

	(void)state;
	assert_int_equal(xmlenc_keys_new(&k), 0);
	/* A key others can read. */
	tu_read(tu_pki("nav.key"), &key);
	tu_write(loose, key.data, key.len);
	assert_int_equal(chmod(loose, 0644), 0);
	assert_int_equal(xmlenc_keys_add(k, loose, tu_pki("nav.pem")), GW_EINVALID);
	assert_non_null(strstr(gw_error_last(), "chmod 600"));
	/* An EC key cannot unwrap rsa-oaep-mgf1p. */
	assert_int_equal(xmlenc_keys_add(k, tu_pki("nav-ec.key"), tu_pki("nav-ec.pem")),
			 GW_EINVALID);
	assert_non_null(strstr(gw_error_last(), "not an RSA key"));
	/* A key with someone else's certificate. */
	assert_int_equal(xmlenc_keys_add(k, tu_pki("nav.key"), tu_pki("health.pem")),
			 GW_EINVALID);
	assert_non_null(strstr(gw_error_last(), "does not belong"));
	assert_true(xmlenc_keys_add(k, tu_pki("missing.key"), tu_pki("nav.pem")) < 0);
	gw_buf_free(&key);
	xmlenc_keys_free(k);
}

/* ---- refusals when decrypting ---- */

static void test_tampered_ciphertext_fails(void **state)
{
	static const char *const nav_cert[] = { "nav.pem" };
	static const char *const nav[] = { "nav" };
	xmlDocPtr doc = encrypted_message(nav_cert, 1);
	xmlNodePtr cv = child(child(body_child(doc, NS_XENC, "EncryptedData"), NS_XENC,
				    "CipherData"), NS_XENC, "CipherValue");
	char *b64 = squeezed_text(cv);
	unsigned char raw[8192];
	char out[12000];
	int len;

	(void)state;
	assert_true(strlen(b64) < sizeof(raw));
	len = EVP_DecodeBlock(raw, (unsigned char *)b64, (int)strlen(b64));
	assert_true(len > 12 + 16 + 8);
	raw[len / 2] ^= 0x01; /* one bit of the ciphertext, past the IV */
	/* EVP_DecodeBlock counts '=' padding as zero bytes: drop them again. */
	for (const char *p = b64 + strlen(b64); p > b64 && p[-1] == '='; p--)
		len--;
	EVP_EncodeBlock((unsigned char *)out, raw, len);
	xmlNodeSetContent(cv, BAD_CAST out);
	refused_with(doc, nav, 1, "aes256-gcm authentication failed");
	free(b64);
	xmlFreeDoc(doc);
}

/* Our own output with one thing changed by hand: each is outside the profile. */
typedef void (*edit_fn)(xmlNodePtr enc);

static void hand_edit(edit_fn edit, const char *expect)
{
	static const char *const nav_cert[] = { "nav.pem" };
	static const char *const nav[] = { "nav" };
	xmlDocPtr doc = encrypted_message(nav_cert, 1);

	edit(body_child(doc, NS_XENC, "EncryptedData"));
	refused_with(doc, nav, 1, expect);
	xmlFreeDoc(doc);
}

static xmlNodePtr ekey_of(xmlNodePtr enc)
{
	return child(child(enc, NS_DSIG, "KeyInfo"), NS_XENC, "EncryptedKey");
}

static void edit_content_cbc(xmlNodePtr enc)
{
	xmlSetProp(child(enc, NS_XENC, "EncryptionMethod"), BAD_CAST "Algorithm",
		   BAD_CAST ALG_CBC);
}

static void edit_key_rsa15(xmlNodePtr enc)
{
	xmlSetProp(child(ekey_of(enc), NS_XENC, "EncryptionMethod"), BAD_CAST "Algorithm",
		   BAD_CAST ALG_RSA15);
}

static void edit_oaep_sha256(xmlNodePtr enc)
{
	xmlNodePtr em = child(ekey_of(enc), NS_XENC, "EncryptionMethod");
	xmlNsPtr ds = xmlNewNs(em, BAD_CAST NS_DSIG, BAD_CAST "dm");
	xmlNodePtr dm = xmlNewChild(em, ds, BAD_CAST "DigestMethod", NULL);

	xmlSetProp(dm, BAD_CAST "Algorithm", BAD_CAST "http://www.w3.org/2001/04/xmlenc#sha256");
}

static void edit_type_content(xmlNodePtr enc)
{
	xmlSetProp(enc, BAD_CAST "Type", BAD_CAST "http://www.w3.org/2001/04/xmlenc#Content");
}

static void edit_key_name(xmlNodePtr enc)
{
	xmlNodePtr ekey = ekey_of(enc);
	xmlNodePtr name = xmlNewDocNode(enc->doc, ekey->parent->ns, BAD_CAST "KeyName",
					BAD_CAST "nav");

	xmlAddPrevSibling(ekey, name);
}

static void edit_cipher_reference(xmlNodePtr enc)
{
	xmlNodePtr cd = child(enc, NS_XENC, "CipherData");
	xmlNodePtr cv = child(cd, NS_XENC, "CipherValue");
	xmlNodePtr ref = xmlNewDocNode(enc->doc, cv->ns, BAD_CAST "CipherReference", NULL);

	xmlSetProp(ref, BAD_CAST "URI", BAD_CAST "http://127.0.0.1:1/x");
	xmlReplaceNode(cv, ref);
	xmlFreeNode(cv);
}

static void edit_no_method(xmlNodePtr enc)
{
	xmlNodePtr em = child(enc, NS_XENC, "EncryptionMethod");

	xmlUnlinkNode(em);
	xmlFreeNode(em);
}

static void edit_extra_element(xmlNodePtr enc)
{
	xmlNewChild(enc, enc->ns, BAD_CAST "EncryptionProperties", NULL);
}

static void test_hand_edited_outside_profile(void **state)
{
	(void)state;
	hand_edit(edit_content_cbc, "content encryption " ALG_CBC);
	hand_edit(edit_key_rsa15, "key transport " ALG_RSA15);
	hand_edit(edit_oaep_sha256, "default SHA-1 digest");
	hand_edit(edit_type_content, "Type must be");
	hand_edit(edit_key_name, "only EncryptedKey");
	hand_edit(edit_cipher_reference, "CipherReference is not allowed");
	hand_edit(edit_no_method, "EncryptionMethod is missing");
	hand_edit(edit_extra_element, "after CipherData");
}

/* ---- interop with the xmlsec1 command ---- */

static void test_xmlsec1_decrypts_ours(void **state)
{
	static const char *const nav_cert[] = { "nav.pem" };
	static const char *const both[] = { "nav.pem", "health.pem" };
	xmlDocPtr doc = encrypted_message(nav_cert, 1), rollover = encrypted_message(both, 2);
	char *text = doc_text(doc), *text2 = doc_text(rollover), *want = original_notice();
	char cmd[2048];
	gw_buf out = GW_BUF_INIT;

	(void)state;
	tu_write(in_dir("ours.xml"), text, strlen(text));
	snprintf(cmd, sizeof(cmd), "xmlsec1 --decrypt --privkey-pem '%s' '%s' >'%s'",
		 tu_pki("nav.key"), in_dir("ours.xml"), in_dir("plain.xml"));
	assert_int_equal(run(cmd), 0);
	tu_read(in_dir("plain.xml"), &out);
	if (!strstr((char *)out.data, want))
		fail_msg("xmlsec1's output lacks the Notice:\n%s", (char *)out.data);
	assert_non_null(strstr((char *)out.data, "Grünerløkka &amp; bolig"));

	/* Two EncryptedKeys: xmlsec1 with the second recipient's key alone. */
	tu_write(in_dir("rollover.xml"), text2, strlen(text2));
	snprintf(cmd, sizeof(cmd), "xmlsec1 --decrypt --privkey-pem '%s' '%s' >'%s'",
		 tu_pki("health.key"), in_dir("rollover.xml"), in_dir("plain2.xml"));
	assert_int_equal(run(cmd), 0);
	tu_read(in_dir("plain2.xml"), &out);
	assert_non_null(strstr((char *)out.data, want));
	gw_buf_free(&out);
	free(text);
	free(text2);
	free(want);
	xmlFreeDoc(doc);
	xmlFreeDoc(rollover);
}

static const char template_fmt[] =
	"<?xml version=\"1.0\"?>\n"
	"<xenc:EncryptedData xmlns:xenc=\"http://www.w3.org/2001/04/xmlenc#\" "
	"xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" Type=\"" TYPE_ELEMENT "\">"
	"<xenc:EncryptionMethod Algorithm=\"%s\"/><ds:KeyInfo><xenc:EncryptedKey>"
	"<xenc:EncryptionMethod Algorithm=\"%s\"/><ds:KeyInfo><ds:X509Data>"
	"<ds:X509Certificate/></ds:X509Data></ds:KeyInfo><xenc:CipherData>"
	"<xenc:CipherValue/></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo>"
	"<xenc:CipherData><xenc:CipherValue/></xenc:CipherData></xenc:EncryptedData>\n";

/*
 * A message whose Body holds an EncryptedData made by the xmlsec1 command
 * for nav.pem, from plaintext bytes, with the given algorithms.
 */
static xmlDocPtr xmlsec1_encrypted(const char *content_alg, const char *session,
				   const char *key_alg, const char *plaintext)
{
	char cmd[4096], tmpl[4096];
	gw_buf out = GW_BUF_INIT;
	const char *start;
	xmlDocPtr doc;

	snprintf(tmpl, sizeof(tmpl), template_fmt, content_alg, key_alg);
	tu_write(in_dir("tmpl.xml"), tmpl, strlen(tmpl));
	tu_write(in_dir("data.bin"), plaintext, strlen(plaintext));
	snprintf(cmd, sizeof(cmd), "xmlsec1 --encrypt --pubkey-cert-pem '%s' --session-key %s "
		 "--binary-data '%s' '%s' >'%s'", tu_pki("nav.pem"), session,
		 in_dir("data.bin"), in_dir("tmpl.xml"), in_dir("theirs.xml"));
	assert_int_equal(run(cmd), 0);
	tu_read(in_dir("theirs.xml"), &out);
	start = strstr((char *)out.data, "<xenc:EncryptedData");
	assert_non_null(start);
	doc = message_with(start);
	gw_buf_free(&out);
	return doc;
}

/* xmlsec1 itself decrypts the message: what we refuse is sound cryptography. */
static void xmlsec1_decrypts(xmlDocPtr doc)
{
	char *text = doc_text(doc), cmd[2048];

	tu_write(in_dir("check.xml"), text, strlen(text));
	snprintf(cmd, sizeof(cmd), "xmlsec1 --decrypt --privkey-pem '%s' '%s' >/dev/null",
		 tu_pki("nav.key"), in_dir("check.xml"));
	assert_int_equal(run(cmd), 0);
	free(text);
}

static void test_we_decrypt_xmlsec1s(void **state)
{
	static const char *const nav[] = { "nav" };
	xmlDocPtr doc = xmlsec1_encrypted(ALG_GCM, "aes-256", ALG_OAEP, NOTICE_XML);

	(void)state;
	decrypts_with(doc, nav, 1);
	xmlFreeDoc(doc);
}

static void test_other_algorithms_refused(void **state)
{
	static const char *const nav[] = { "nav" };
	xmlDocPtr cbc = xmlsec1_encrypted(ALG_CBC, "aes-128", ALG_OAEP, NOTICE_XML);
	xmlDocPtr pkcs1 = xmlsec1_encrypted(ALG_GCM, "aes-256", ALG_RSA15, NOTICE_XML);

	(void)state;
	xmlsec1_decrypts(cbc);
	refused_with(cbc, nav, 1, "accepts only " ALG_GCM);
	xmlsec1_decrypts(pkcs1);
	refused_with(pkcs1, nav, 1, "accepts only " ALG_OAEP);
	assert_int_equal(0, 0);
	xmlFreeDoc(cbc);
	xmlFreeDoc(pkcs1);
}

/* Plaintext that decrypts fine but is not one safe element. */
static void test_plaintext_must_be_one_element(void **state)
{
	static const char *const nav[] = { "nav" };
	static const struct {
		const char *plaintext, *expect;
	} bad[] = {
		{ "<Notice xmlns=\"urn:x-notice-gateway:notice:1\"/><Notice "
		  "xmlns=\"urn:x-notice-gateway:notice:1\"/>", "exactly one element" },
		{ "just text", "exactly one element" },
		{ "<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><x>&e;</x>",
		  "DOCTYPE" },
		{ "<x>&undeclared;</x>", "not well-formed" },
		{ "<x>", "not well-formed" },
	};
	char deep[2048] = "";

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		xmlDocPtr doc = xmlsec1_encrypted(ALG_GCM, "aes-256", ALG_OAEP, bad[i].plaintext);
		refused_with(doc, nav, 1, bad[i].expect);
		xmlFreeDoc(doc);
	}
	for (int i = 0; i < 40; i++)
		strcat(deep, "<a>");
	for (int i = 0; i < 40; i++)
		strcat(deep, "</a>");
	{
		xmlDocPtr doc = xmlsec1_encrypted(ALG_GCM, "aes-256", ALG_OAEP, deep);
		refused_with(doc, nav, 1, "nests deeper");
		xmlFreeDoc(doc);
	}
}

/* ---- encrypt, then sign; verify, then decrypt ---- */

static void test_encrypt_then_sign(void **state)
{
	static const char *const nav_cert[] = { "nav.pem" };
	static const char *const nav[] = { "nav" };
	const char *anchors[] = { tu_pki("ca.pem") };
	xmlDocPtr doc = encrypted_message(nav_cert, 1), tampered;
	pki_trust *trust = NULL;
	verifier *v = NULL;
	signer *s = NULL;
	struct verify_result r;
	gw_buf bytes = GW_BUF_INIT;
	xmlNodePtr cv;
	char *text;

	(void)state;
	assert_int_equal(pki_trust_new(&trust, anchors, 1, NULL, 0), 0);
	assert_int_equal(verifier_new(&v, trust), 0);
	assert_int_equal(signer_open(&s, tu_pki("gateway.key"), tu_pki("gateway.pem")), 0);
	if (signer_sign_to_bytes(s, doc, &bytes) < 0)
		fail_msg("signing failed: %s", gw_error_last());
	xmlFreeDoc(doc);

	/* The receiver: parse the bytes, verify, and only then decrypt. */
	doc = parse_text((const char *)bytes.data);
	if (verifier_check(v, doc, ORG_GATEWAY, &r) < 0)
		fail_msg("signature rejected (%s): %s", r.reason_code, gw_error_last());
	assert_string_equal(r.signer_orgnr, ORG_GATEWAY);
	decrypts_with(doc, nav, 1);

	/* Ciphertext changed in transit: the signature catches it first. */
	tampered = parse_text((const char *)bytes.data);
	cv = child(child(body_child(tampered, NS_XENC, "EncryptedData"), NS_XENC, "CipherData"),
		   NS_XENC, "CipherValue");
	text = squeezed_text(cv);
	text[10] = text[10] == 'A' ? 'B' : 'A';
	xmlNodeSetContent(cv, BAD_CAST text);
	assert_int_equal(verifier_check(v, tampered, ORG_GATEWAY, &r), GW_EINVALID);
	assert_string_equal(r.reason_code, "bad-signature");

	free(text);
	xmlFreeDoc(tampered);
	xmlFreeDoc(doc);
	gw_buf_free(&bytes);
	signer_close(s);
	verifier_free(v);
	pki_trust_free(trust);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_profile_shape),
		cmocka_unit_test(test_fresh_session_key_each_time),
		cmocka_unit_test(test_namespace_from_ancestor),
		cmocka_unit_test(test_rollover_either_key_decrypts),
		cmocka_unit_test(test_receiver_with_both_keys),
		cmocka_unit_test(test_fallback_without_certificate),
		cmocka_unit_test(test_wrong_key_fails_clearly),
		cmocka_unit_test(test_ec_certificate_refused),
		cmocka_unit_test(test_bad_recipient_lists_refused),
		cmocka_unit_test(test_keys_refused),
		cmocka_unit_test(test_tampered_ciphertext_fails),
		cmocka_unit_test(test_hand_edited_outside_profile),
		cmocka_unit_test(test_xmlsec1_decrypts_ours),
		cmocka_unit_test(test_we_decrypt_xmlsec1s),
		cmocka_unit_test(test_other_algorithms_refused),
		cmocka_unit_test(test_plaintext_must_be_one_element),
		cmocka_unit_test(test_encrypt_then_sign),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
