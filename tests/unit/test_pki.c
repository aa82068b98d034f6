/*
 * test_pki: trust anchors and CRLs, the certificate check (expired,
 * revoked, untrusted, explicit time, no time check), the organisation in
 * a certificate (organizationIdentifier, serialNumber fallback, neither),
 * private key file permissions, fingerprints and time left.
 */
#include "testutil.h"
#include "err.h"
#include "pki.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

static X509 *load(const char *name)
{
	X509 *cert = NULL;

	assert_int_equal(pki_cert_load(&cert, tu_pki(name)), 0);
	return cert;
}

static pki_trust *trust_of(const char *anchor, const char *crl)
{
	const char *anchors[] = { anchor };
	const char *crls[] = { crl };
	pki_trust *t = NULL;

	assert_int_equal(pki_trust_new(&t, anchors, 1, crls, crl ? 1 : 0), 0);
	return t;
}

static int verify_name(pki_trust *t, const char *name, time_t now)
{
	X509 *cert = load(name);
	int rc = pki_cert_verify(t, cert, NULL, now);

	X509_free(cert);
	return rc;
}

static void test_orgnr_from_organization_identifier(void **state)
{
	static const struct {
		const char *file, *orgnr;
	} cases[] = {
		{ "gateway-rsa.pem", "974760673" }, { "gateway-ec.pem", "974760673" },
		{ "housing-ec.pem", "958935420" },  { "nav-ec.pem", "889960221" },
		{ "health-rsa.pem", "987654325" },  { "prison-ec.pem", "922222223" },
		{ "untrusted.pem", "974760673" },
	};
	char orgnr[10];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		X509 *cert = load(cases[i].file);
		assert_int_equal(pki_cert_orgnr(cert, orgnr), 0);
		assert_string_equal(orgnr, cases[i].orgnr);
		X509_free(cert);
	}
	X509 *ca = load("ca.pem");
	assert_int_equal(pki_cert_orgnr(ca, orgnr), GW_ENOTFOUND);
	assert_string_equal(orgnr, "");
	X509_free(ca);
}

/* A self-signed EC certificate with the given subject entries (NULL: absent). */
static X509 *make_cert(const char *org_id, const char *serial)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *cert = X509_new();
	X509_NAME *name = X509_get_subject_name(cert);

	assert_non_null(key);
	X509_set_version(cert, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
	X509_gmtime_adj(X509_getm_notBefore(cert), 0);
	X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)"t", -1, -1,
				   0);
	if (org_id)
		assert_int_equal(X509_NAME_add_entry_by_NID(name, NID_organizationIdentifier,
							    MBSTRING_UTF8,
							    (const unsigned char *)org_id, -1,
							    -1, 0), 1);
	if (serial)
		assert_int_equal(X509_NAME_add_entry_by_NID(name, NID_serialNumber,
							    MBSTRING_ASC,
							    (const unsigned char *)serial, -1,
							    -1, 0), 1);
	X509_set_issuer_name(cert, name);
	X509_set_pubkey(cert, key);
	assert_true(X509_sign(cert, key, EVP_sha256()) > 0);
	EVP_PKEY_free(key);
	return cert;
}

static void expect_orgnr(const char *org_id, const char *serial, int rc, const char *want)
{
	X509 *cert = make_cert(org_id, serial);
	char orgnr[10];

	assert_int_equal(pki_cert_orgnr(cert, orgnr), rc);
	assert_string_equal(orgnr, want);
	X509_free(cert);
}

static void test_orgnr_rules(void **state)
{
	expect_orgnr(NULL, "958935420", 0, "958935420");                  /* SEID 1 */
	expect_orgnr("NTRNO-889960221", "958935420", 0, "889960221");     /* SEID 2 first */
	expect_orgnr("VATNO-889960221", "958935420", 0, "958935420");     /* not NTRNO */
	expect_orgnr("NTRNO-88996022", NULL, GW_ENOTFOUND, "");           /* 8 digits */
	expect_orgnr("NTRNO-8899602210", NULL, GW_ENOTFOUND, "");         /* 10 digits */
	expect_orgnr("NTRNO-88996022x", NULL, GW_ENOTFOUND, "");
	expect_orgnr(NULL, "UN:NO-958935420", GW_ENOTFOUND, "");
	expect_orgnr("NTRNO-889960222", NULL, GW_ENOTFOUND, "");          /* check digit */
	expect_orgnr(NULL, "958935421", GW_ENOTFOUND, "");
	expect_orgnr(NULL, NULL, GW_ENOTFOUND, "");
}

static void test_verify_good_expired_untrusted(void **state)
{
	pki_trust *t = trust_of(tu_pki("ca.pem"), NULL);

	assert_int_equal(verify_name(t, "gateway-rsa.pem", 0), 0);
	assert_int_equal(verify_name(t, "nav-ec.pem", 0), 0);
	assert_int_equal(verify_name(t, "expired.pem", 0), GW_EINVALID);
	assert_non_null(strstr(gw_error_last(), "expired"));
	assert_int_equal(verify_name(t, "untrusted.pem", 0), GW_EINVALID);
	assert_non_null(strstr(gw_error_last(), "issuer"));
	/* No CRL configured: a revoked certificate cannot be recognised. */
	assert_int_equal(verify_name(t, "revoked.pem", 0), 0);
	pki_trust_free(t);
}

static void test_verify_at_explicit_time(void **state)
{
	pki_trust *t = trust_of(tu_pki("ca.pem"), NULL);
	time_t now = time(NULL);

	X509 *cert = load("gateway-rsa.pem");
	struct tm began;

	/* gateway-rsa.pem: valid tomorrow, expired in 5 years, not valid before it began. */
	assert_int_equal(ASN1_TIME_to_tm(X509_get0_notBefore(cert), &began), 1);
	X509_free(cert);
	assert_int_equal(verify_name(t, "gateway-rsa.pem", now + 86400), 0);
	assert_int_equal(verify_name(t, "gateway-rsa.pem", now + 5 * 365 * 86400L), GW_EINVALID);
	assert_non_null(strstr(gw_error_last(), "expired"));
	assert_int_equal(verify_name(t, "gateway-rsa.pem", timegm(&began) - 86400), GW_EINVALID);
	assert_non_null(strstr(gw_error_last(), "not yet valid"));
	/* expired.pem ended before the CA began: no moment makes it valid. */
	assert_int_equal(verify_name(t, "expired.pem", now), GW_EINVALID);
	pki_trust_free(t);
}

/* PKI_NO_TIME_CHECK: chain, revocation and key strength, no time; for that call only. */
static void test_verify_without_time_check(void **state)
{
	pki_trust *t = trust_of(tu_pki("ca.pem"), tu_pki("ca.crl"));

	assert_int_equal(verify_name(t, "expired.pem", PKI_NO_TIME_CHECK), 0);
	assert_int_equal(verify_name(t, "gateway-rsa.pem", PKI_NO_TIME_CHECK), 0);
	assert_int_equal(verify_name(t, "revoked.pem", PKI_NO_TIME_CHECK), GW_EINVALID);
	assert_non_null(strstr(gw_error_last(), "revoked"));
	assert_int_equal(verify_name(t, "weak.pem", PKI_NO_TIME_CHECK), GW_EINVALID);
	assert_non_null(strstr(gw_error_last(), "too weak"));
	assert_int_equal(verify_name(t, "untrusted.pem", PKI_NO_TIME_CHECK), GW_EINVALID);
	assert_non_null(strstr(gw_error_last(), "issuer"));
	/* The next call on the same trust checks time again. */
	assert_int_equal(verify_name(t, "expired.pem", 0), GW_EINVALID);
	assert_non_null(strstr(gw_error_last(), "expired"));
	pki_trust_free(t);
}

static void test_verify_revoked_with_crl(void **state)
{
	pki_trust *t = trust_of(tu_pki("ca.pem"), tu_pki("ca.crl"));

	assert_int_equal(pki_trust_crl_count(t), 1);
	assert_string_equal(pki_trust_crl_file(t, 0), tu_pki("ca.crl"));
	assert_true(X509_VERIFY_PARAM_get_flags(X509_STORE_get0_param(pki_trust_store(t))) &
		    X509_V_FLAG_CRL_CHECK_ALL);
	assert_int_equal(verify_name(t, "gateway-ec.pem", 0), 0);
	assert_int_equal(verify_name(t, "revoked.pem", 0), GW_EINVALID);
	assert_non_null(strstr(gw_error_last(), "revoked"));
	pki_trust_free(t);
}

/* With CRL checks on, an issuer without a CRL fails: untrusted-ca has none. */
static void test_crl_check_needs_crl_for_every_issuer(void **state)
{
	const char *anchors[] = { tu_pki("ca.pem"), tu_pki("untrusted-ca.pem") };
	const char *crls[] = { tu_pki("ca.crl") };
	pki_trust *t = NULL;

	assert_int_equal(pki_trust_new(&t, anchors, 2, crls, 1), 0);
	assert_int_equal(pki_trust_anchor_count(t), 2);
	assert_int_equal(verify_name(t, "gateway-rsa.pem", 0), 0);
	assert_int_equal(verify_name(t, "untrusted.pem", 0), GW_EINVALID);
	assert_non_null(strstr(gw_error_last(), "CRL"));
	pki_trust_free(t);
}

/* One anchor file may hold several certificates; every one is trusted. */
static void test_anchor_file_with_several_certs(void **state)
{
	const char *dir = tu_tmpdir("pki-bundle");
	char path[512];
	gw_buf a = GW_BUF_INIT, b = GW_BUF_INIT;
	pki_trust *t;

	tu_read(tu_pki("untrusted-ca.pem"), &a);
	tu_read(tu_pki("ca.pem"), &b);
	assert_int_equal(gw_buf_put(&a, b.data, b.len), 0);
	snprintf(path, sizeof(path), "%s/bundle.pem", dir);
	tu_write(path, a.data, a.len);
	t = trust_of(path, NULL);
	assert_string_equal(pki_trust_anchor_file(t, 0), path);
	assert_null(pki_trust_anchor_file(t, 1));
	assert_int_equal(verify_name(t, "gateway-rsa.pem", 0), 0);
	assert_int_equal(verify_name(t, "untrusted.pem", 0), 0);
	pki_trust_free(t);
	gw_buf_free(&a);
	gw_buf_free(&b);
	tu_rmrf(dir);
}

static void test_trust_refuses_bad_files(void **state)
{
	const char *dir = tu_tmpdir("pki-bad");
	char empty[512];
	const char *missing[] = { "/nonexistent/ca.pem" };
	const char *none[] = { empty };
	const char *anchors[] = { tu_pki("ca.pem") };
	const char *not_crl[] = { tu_pki("ca.pem") };
	pki_trust *t = NULL;

	snprintf(empty, sizeof(empty), "%s/empty.pem", dir);
	tu_write(empty, "no pem here\n", 12);
	assert_int_equal(pki_trust_new(&t, missing, 1, NULL, 0), GW_ERROR);
	assert_non_null(strstr(gw_error_last(), "/nonexistent/ca.pem"));
	assert_int_equal(pki_trust_new(&t, none, 1, NULL, 0), GW_EINVALID);
	assert_non_null(strstr(gw_error_last(), "no PEM certificate"));
	assert_int_equal(pki_trust_new(&t, anchors, 0, NULL, 0), GW_EINVALID);
	assert_int_equal(pki_trust_new(&t, anchors, 1, not_crl, 1), GW_EINVALID);
	assert_null(t);
	tu_rmrf(dir);
}

static void test_key_permissions(void **state)
{
	const char *dir = tu_tmpdir("pki-keys");
	char path[512];
	gw_buf data = GW_BUF_INIT;
	EVP_PKEY *key = NULL;

	snprintf(path, sizeof(path), "%s/copy.key", dir);
	tu_read(tu_pki("housing-rsa.key"), &data);
	tu_write(path, data.data, data.len);

	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(pki_key_file_private(path), GW_EINVALID);
	assert_int_equal(pki_key_load(&key, path), GW_EINVALID);
	assert_null(key);
	assert_non_null(strstr(gw_error_last(), "0644"));
	/* The message names the file, never the key. */
	assert_null(strstr(gw_error_last(), "PRIVATE"));

	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(pki_key_load(&key, path), GW_EINVALID);
	assert_int_equal(chmod(path, 0604), 0);
	assert_int_equal(pki_key_load(&key, path), GW_EINVALID);

	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(pki_key_file_private(path), 0);
	assert_int_equal(pki_key_load(&key, path), 0);
	assert_non_null(key);
	assert_int_equal(EVP_PKEY_base_id(key), EVP_PKEY_RSA);
	EVP_PKEY_free(key);

	assert_int_equal(chmod(path, 0400), 0);
	assert_int_equal(pki_key_load(&key, path), 0);
	EVP_PKEY_free(key);

	snprintf(path, sizeof(path), "%s/none.key", dir);
	assert_int_equal(pki_key_file_private(path), GW_ENOTFOUND);
	assert_int_equal(pki_key_load(&key, path), GW_ENOTFOUND);
	gw_buf_free(&data);
	tu_rmrf(dir);
}

static void test_fingerprint_and_seconds_left(void **state)
{
	X509 *cert = load("gateway-ec.pem");
	X509 *old = load("expired.pem");
	unsigned char *der = NULL, md[32];
	unsigned int mdlen = 0;
	char fp[65], want[65];
	long long left;
	int len = i2d_X509(cert, &der);

	assert_true(len > 0);
	assert_int_equal(EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL), 1);
	for (unsigned i = 0; i < mdlen; i++)
		snprintf(want + 2 * i, 3, "%02x", md[i]);
	assert_int_equal(pki_cert_fingerprint(cert, fp), 0);
	assert_string_equal(fp, want);

	/* mkpki.sh issues for 825 days; expired.pem ended the day before. */
	assert_int_equal(pki_cert_seconds_left(cert, &left), 0);
	assert_true(left > 0 && left <= 825LL * 86400);
	assert_int_equal(pki_cert_seconds_left(old, &left), 0);
	assert_true(left < 0);
	OPENSSL_free(der);
	X509_free(cert);
	X509_free(old);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_orgnr_from_organization_identifier),
		cmocka_unit_test(test_orgnr_rules),
		cmocka_unit_test(test_verify_good_expired_untrusted),
		cmocka_unit_test(test_verify_at_explicit_time),
		cmocka_unit_test(test_verify_without_time_check),
		cmocka_unit_test(test_verify_revoked_with_crl),
		cmocka_unit_test(test_crl_check_needs_crl_for_every_issuer),
		cmocka_unit_test(test_anchor_file_with_several_certs),
		cmocka_unit_test(test_trust_refuses_bad_files),
		cmocka_unit_test(test_key_permissions),
		cmocka_unit_test(test_fingerprint_and_seconds_left),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
