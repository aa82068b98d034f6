/*
 * pki: trust anchors and CRLs in one OpenSSL store, the certificate check
 * every verdict relies on, the organisation behind a certificate, and
 * private keys read only when nobody else can read them (see pki.h).
 *
 * The store is filled once in pki_trust_new() and only read afterwards, so
 * one trust may be shared by several threads: X509_verify_cert() works on a
 * per-call X509_STORE_CTX and OpenSSL locks the store's object list.
 */
#include "pki.h"
#include "err.h"
#include "ident.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

struct pki_trust {
	char *anchors[PKI_MAX_FILES];
	size_t n_anchors;
	char *crls[PKI_MAX_FILES];
	size_t n_crls;
	X509_STORE *store;
};

const char *pki_openssl_reason(void)
{
	static _Thread_local char text[256];
	unsigned long e = ERR_peek_last_error();

	if (e == 0)
		snprintf(text, sizeof(text), "no details from OpenSSL");
	else
		ERR_error_string_n(e, text, sizeof(text));
	ERR_clear_error();
	return text;
}

static BIO *open_pem(const char *path)
{
	BIO *bio = BIO_new_file(path, "r");

	if (!bio)
		gw_error_set(GW_ERROR, "cannot open %s: %s", path, pki_openssl_reason());
	return bio;
}

/* True when the last PEM read stopped because the file has no more objects. */
static int pem_at_end(void)
{
	unsigned long e = ERR_peek_last_error();
	int end = ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE;

	if (end)
		ERR_clear_error();
	return end;
}

static int add_anchor_file(X509_STORE *store, const char *path)
{
	BIO *bio = open_pem(path);
	X509 *cert;
	int count = 0;

	if (!bio)
		return GW_ERROR;
	while ((cert = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		int ok = X509_STORE_add_cert(store, cert);
		X509_free(cert);
		if (!ok) {
			BIO_free(bio);
			return gw_error_set(GW_ERROR, "cannot add a certificate from %s: %s",
					    path, pki_openssl_reason());
		}
		count++;
	}
	BIO_free(bio);
	if (!pem_at_end())
		return gw_error_set(GW_EINVALID, "trust anchor file %s has an unreadable "
				    "certificate: %s", path, pki_openssl_reason());
	if (count == 0)
		return gw_error_set(GW_EINVALID, "trust anchor file %s holds no PEM "
				    "certificate", path);
	return 0;
}

static int add_crl_file(X509_STORE *store, const char *path)
{
	BIO *bio = open_pem(path);
	X509_CRL *crl;
	int count = 0;

	if (!bio)
		return GW_ERROR;
	while ((crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL)) != NULL) {
		int ok = X509_STORE_add_crl(store, crl);
		X509_CRL_free(crl);
		if (!ok) {
			BIO_free(bio);
			return gw_error_set(GW_ERROR, "cannot add a CRL from %s: %s", path,
					    pki_openssl_reason());
		}
		count++;
	}
	BIO_free(bio);
	if (!pem_at_end())
		return gw_error_set(GW_EINVALID, "CRL file %s has an unreadable CRL: %s", path,
				    pki_openssl_reason());
	if (count == 0)
		return gw_error_set(GW_EINVALID, "CRL file %s holds no PEM CRL", path);
	return 0;
}

static int copy_paths(char **dst, const char *const *src, size_t n, const char *what)
{
	if (n > PKI_MAX_FILES)
		return gw_error_set(GW_EINVALID, "too many %s files: %zu (at most %d)", what, n,
				    PKI_MAX_FILES);
	for (size_t i = 0; i < n; i++) {
		if (!src[i] || !*src[i])
			return gw_error_set(GW_EINVALID, "empty %s file name", what);
		dst[i] = strdup(src[i]);
		if (!dst[i])
			return gw_error_set(GW_ENOMEM, "out of memory");
	}
	return 0;
}

static int trust_fill(pki_trust *t)
{
	int rc;

	t->store = X509_STORE_new();
	if (!t->store)
		return gw_error_set(GW_ENOMEM, "cannot create a certificate store");
	for (size_t i = 0; i < t->n_anchors; i++)
		if ((rc = add_anchor_file(t->store, t->anchors[i])) < 0)
			return rc;
	for (size_t i = 0; i < t->n_crls; i++)
		if ((rc = add_crl_file(t->store, t->crls[i])) < 0)
			return rc;
	if (t->n_crls > 0 &&
	    !X509_STORE_set_flags(t->store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL))
		return gw_error_set(GW_ERROR, "cannot turn on CRL checking: %s", pki_openssl_reason());
	/* Inherited by every verification on this store, signatures and TLS alike. */
	X509_VERIFY_PARAM_set_auth_level(X509_STORE_get0_param(t->store), PKI_SECURITY_LEVEL);
	return 0;
}

int pki_trust_new(pki_trust **out, const char *const *anchor_files, size_t n_anchors,
		  const char *const *crl_files, size_t n_crls)
{
	pki_trust *t;
	int rc;

	*out = NULL;
	if (n_anchors == 0)
		return gw_error_set(GW_EINVALID, "no trust anchor configured: at least one CA "
				    "certificate file is needed");
	t = calloc(1, sizeof(*t));
	if (!t)
		return gw_error_set(GW_ENOMEM, "out of memory");
	t->n_anchors = n_anchors;
	t->n_crls = n_crls;
	rc = copy_paths(t->anchors, anchor_files, n_anchors, "trust anchor");
	if (rc == 0)
		rc = copy_paths(t->crls, crl_files, n_crls, "CRL");
	if (rc == 0)
		rc = trust_fill(t);
	if (rc < 0) {
		pki_trust_free(t);
		return rc;
	}
	*out = t;
	return 0;
}

void pki_trust_free(pki_trust *trust)
{
	if (!trust)
		return;
	for (size_t i = 0; i < PKI_MAX_FILES; i++) {
		free(trust->anchors[i]);
		free(trust->crls[i]);
	}
	X509_STORE_free(trust->store);
	free(trust);
}

size_t pki_trust_anchor_count(const pki_trust *trust)
{
	return trust->n_anchors;
}

const char *pki_trust_anchor_file(const pki_trust *trust, size_t i)
{
	return i < trust->n_anchors ? trust->anchors[i] : NULL;
}

size_t pki_trust_crl_count(const pki_trust *trust)
{
	return trust->n_crls;
}

const char *pki_trust_crl_file(const pki_trust *trust, size_t i)
{
	return i < trust->n_crls ? trust->crls[i] : NULL;
}

X509_STORE *pki_trust_store(pki_trust *trust)
{
	return trust->store;
}

int pki_cert_verify(pki_trust *trust, X509 *cert, STACK_OF(X509) *chain, time_t now)
{
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int rc = 0;

	if (!ctx)
		return gw_error_set(GW_ENOMEM, "out of memory");
	if (!X509_STORE_CTX_init(ctx, trust->store, cert, chain)) {
		X509_STORE_CTX_free(ctx);
		return gw_error_set(GW_ERROR, "cannot start certificate verification: %s",
				    pki_openssl_reason());
	}
	if (now == PKI_NO_TIME_CHECK)
		X509_VERIFY_PARAM_set_flags(X509_STORE_CTX_get0_param(ctx),
					    X509_V_FLAG_NO_CHECK_TIME);
	else if (now != 0)
		X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), now);
	if (X509_verify_cert(ctx) != 1) {
		int err = X509_STORE_CTX_get_error(ctx);
		rc = gw_error_set(GW_EINVALID, "certificate not trusted: %s (depth %d)",
				  X509_verify_cert_error_string(err),
				  X509_STORE_CTX_get_error_depth(ctx));
		ERR_clear_error();
	}
	X509_STORE_CTX_free(ctx);
	return rc;
}

/* Copy the one subject entry with nid into out as UTF-8; 1 found, 0 absent. */
static int subject_entry(X509 *cert, int nid, char *out, size_t outlen)
{
	X509_NAME *name = X509_get_subject_name(cert);
	int pos = X509_NAME_get_index_by_NID(name, nid, -1);
	unsigned char *utf8 = NULL;
	int len;

	if (pos < 0)
		return 0;
	if (X509_NAME_get_index_by_NID(name, nid, pos) >= 0)
		return gw_error_set(GW_EINVALID, "certificate subject names %s more than once",
				    OBJ_nid2ln(nid));
	len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, pos)));
	if (len < 0)
		return gw_error_set(GW_EINVALID, "certificate subject %s is not readable text",
				    OBJ_nid2ln(nid));
	if ((size_t)len >= outlen || memchr(utf8, '\0', (size_t)len)) {
		OPENSSL_free(utf8);
		out[0] = '\0';
		return 1;
	}
	memcpy(out, utf8, (size_t)len);
	out[len] = '\0';
	OPENSSL_free(utf8);
	return 1;
}

int pki_cert_orgnr(X509 *cert, char out[10])
{
	char value[64];
	int rc;

	out[0] = '\0';
	rc = subject_entry(cert, NID_organizationIdentifier, value, sizeof(value));
	if (rc < 0)
		return rc;
	if (rc == 1 && strncmp(value, "NTRNO-", 6) == 0 && ident_orgnr_valid(value + 6)) {
		memcpy(out, value + 6, 10);
		return 0;
	}
	rc = subject_entry(cert, NID_serialNumber, value, sizeof(value));
	if (rc < 0)
		return rc;
	if (rc == 1 && ident_orgnr_valid(value)) {
		memcpy(out, value, 10);
		return 0;
	}
	return gw_error_set(GW_ENOTFOUND, "certificate names no organisation: its subject has "
			    "neither organizationIdentifier NTRNO-<orgnr> nor a serialNumber that "
			    "is an organisation number (9 digits, valid check digit)");
}

int pki_cert_load(X509 **out, const char *path)
{
	BIO *bio = open_pem(path);

	*out = NULL;
	if (!bio)
		return GW_ERROR;
	*out = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (!*out)
		return gw_error_set(GW_EINVALID, "%s holds no readable PEM certificate: %s", path,
				    pki_openssl_reason());
	return 0;
}

/* 0 when st describes a regular file without group/other permission bits. */
static int mode_private(const struct stat *st, const char *path)
{
	if (!S_ISREG(st->st_mode))
		return gw_error_set(GW_EINVALID, "private key %s is not a regular file", path);
	if (st->st_mode & (S_IRWXG | S_IRWXO))
		return gw_error_set(GW_EINVALID, "private key %s is readable or writable by "
				    "group or others (mode %04o); run chmod 600 on it",
				    path, (unsigned)(st->st_mode & 07777));
	return 0;
}

int pki_key_file_private(const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return gw_error_set(errno == ENOENT ? GW_ENOTFOUND : GW_ERROR,
				    "cannot read private key %s: %s", path, strerror(errno));
	return mode_private(&st, path);
}

/* Never prompt on a terminal: an encrypted key is refused instead. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return 0;
}

int pki_key_load(EVP_PKEY **out, const char *path)
{
	struct stat st;
	FILE *f;
	int fd, rc;

	*out = NULL;
	/* Check the permissions of the file actually opened, not of a name. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return gw_error_set(errno == ENOENT ? GW_ENOTFOUND : GW_ERROR,
				    "cannot open private key %s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		rc = gw_error_set(GW_ERROR, "cannot stat private key %s: %s", path,
				  strerror(errno));
		close(fd);
		return rc;
	}
	if ((rc = mode_private(&st, path)) < 0) {
		close(fd);
		return rc;
	}
	f = fdopen(fd, "r");
	if (!f) {
		rc = gw_error_set(GW_ERROR, "cannot read private key %s: %s", path,
				  strerror(errno));
		close(fd);
		return rc;
	}
	*out = PEM_read_PrivateKey(f, NULL, no_password, NULL);
	fclose(f);
	if (!*out)
		return gw_error_set(GW_EINVALID, "%s holds no readable unencrypted PEM private "
				    "key: %s", path, pki_openssl_reason());
	return 0;
}

int pki_cert_seconds_left(X509 *cert, long long *seconds)
{
	const ASN1_TIME *not_after = X509_get0_notAfter(cert);
	int days = 0, secs = 0;

	if (!not_after || !ASN1_TIME_diff(&days, &secs, NULL, not_after))
		return gw_error_set(GW_EINVALID, "certificate has an unreadable notAfter date");
	*seconds = (long long)days * 86400 + secs;
	return 0;
}

int pki_cert_fingerprint(X509 *cert, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	static const char hex[] = "0123456789abcdef";

	out[0] = '\0';
	if (!X509_digest(cert, EVP_sha256(), md, &len) || len != 32)
		return gw_error_set(GW_ERROR, "cannot compute a certificate fingerprint: %s",
				    pki_openssl_reason());
	for (unsigned int i = 0; i < len; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 0x0f];
	}
	out[64] = '\0';
	return 0;
}
