/*
 * test_intake: end to end from a temporary spool to the store, with the real
 * parser, signer and verifier and a configuration built here (Oslo 0301:
 * housing 958935420, nav 889960221, health 987654325; a prison that needs
 * no consent; a school endpoint that asks for encryption). The clock is
 * fixed at 2026-11-22 12:00 in Oslo. Notices: tests/data/intake/.
 *
 * Proves: full consent gives three signed, verifiable messages whose bodies
 * carry only the granted Needs and never Recipients or Consent; a refusal
 * holds "no consent", an unknown municipality "no endpoint"; the same bytes
 * twice (or after a crash before the move) produce nothing; revision rules
 * (supersede, revision-conflict, stale-revision); withdrawal; hostile and
 * badly named files are rejected unread with a reason file; timeliness
 * flags; logs and reasons never hold the nin.
 *
 * Scans in chunks: one commit per chunk of INTAKE_CHUNK_FILES files, a
 * step at a time through one listing; a chunk whose COMMIT fails leaves
 * every file that waited for it in incoming/new (and stores nothing of
 * them); files of one chunk see each other (duplicate, revision rules),
 * carried out only after the COMMIT; a crash between the COMMIT and the
 * moves (a child process exits inside the commit) leaves the files to be
 * moved as duplicates by the next scan, with nothing new.
 *
 * Encryption: the school endpoint's copy is stored encrypted then signed
 * (xenc:EncryptedData, aes256-gcm, rsa-oaep-mgf1p, the recipient's
 * X509Certificate, no Need text in clear), the signature verifies, and both
 * our xmlenc and the `xmlsec1 --decrypt` command open it with school.key
 * into the filtered Notice. The school's certificates (organisation
 * 910000004) are issued once for the group by the development CA into a
 * temporary directory: school, school-next, school-expired, school-weak
 * (RSA 1024) and no-org. Rollover: two certificates, two EncryptedKeys; an
 * expired one beside a valid one is left out. An expired only, an EC, a
 * missing certificate, one of another organisation or of none, a weak one,
 * one that does not chain to the endpoint's anchors (the rogue CA's; the
 * development CA's when the endpoint trusts only the rogue CA), a revoked
 * one (ca.crl), or a pair with one of them, holds "encryption certificate
 * unusable: ..." instead, with nothing signed. After intake_forget_certs()
 * (a reload) a certificate used before is checked again under the new CRLs.
 *
 * Release of held messages (intake_release_held): nav held "no endpoint"
 * under a configuration without nav is queued with verifiable signed bytes
 * once the configuration has nav, read from processed/ (also under the .1
 * suffix spool_accept gives a taken name), checked by SHA-256; a missing or
 * altered original leaves it held; "no consent" stays held; a held
 * encryption message goes out once its certificate is usable. A withdrawal
 * goes to the organisation that got the earlier revision, also when its
 * endpoint name was pointed at another one (held "no endpoint" until that
 * organisation is configured again, under any name).
 *
 * Moves: a file a producer renames onto the name while intake has it (a
 * wrapped store op and the spool's staged_hook play the producer) is
 * neither rejected nor moved in the name of what was read; replaced twice,
 * it is kept aside in rejected/; a crash during a move (staged) is put
 * back and taken as a duplicate; a failed directory sync (this file's
 * fsync() fails for one directory) is logged with where the file is.
 */
#include "testutil.h"
#include "testutil_intake.h"
#include "config.h"
#include "err.h"
#include "audit.h"
#include "intake.h"
#include "message.h"
#include "pki.h"
#include "receipt.h"
#include "signer.h"
#include "spool.h"
#include "store.h"
#include "verify.h"
#include "xmlenc.h"
#include "xmlread.h"

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NOW INT64_C(1795345200000)      /* 2026-11-22T11:00:00Z, noon in Oslo */
#define DEADLINE INT64_C(1804287600000) /* 2027-03-06T00:00+01:00: release 03-04 + 1 day */
#define DAY INT64_C(86400000)
#define NIN "15859010099"
#define ORG_HOUSING "958935420"
#define ORG_NAV "889960221"
#define ORG_HEALTH "987654325"
#define ORG_PRISON "922222223"
#define ORG_SCHOOL "910000004"
#define ORG_GATEWAY "974760673"
#define ORG_OTHER "930000000" /* an organisation the notices never reached */

static const unsigned char pseudonym_key[] = "intake-test-pseudonym-key";

static struct tu_intake fx;
static pki_trust *trust;
static verifier *ver;

static int64_t fixed_now(void)
{
	return NOW;
}

/* ---- the school's encryption certificates, issued here by the development CA ---- */

static char issued_dir[PATH_MAX]; /* the group's: NAME.pem and NAME.key */

/* A path in issued_dir (one of 4 static slots, reused in turn). */
static const char *issued(const char *name)
{
	static char slots[4][PATH_MAX + 64];
	static size_t next;
	char *slot = slots[next++ % 4];

	if (snprintf(slot, sizeof(slots[0]), "%s/%s", issued_dir, name) >= (int)sizeof(slots[0]))
		fail_msg("path too long: %s/%s", issued_dir, name);
	return slot;
}

static void write_key(const char *path, EVP_PKEY *key)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;

	if (!f)
		fail_msg("cannot create %s", path);
	assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
	assert_int_equal(fclose(f), 0);
}

static void write_cert(const char *path, X509 *cert)
{
	FILE *f = fopen(path, "w");

	if (!f)
		fail_msg("cannot create %s", path);
	assert_int_equal(PEM_write_X509(f, cert), 1);
	assert_int_equal(fclose(f), 0);
}

/* A random serial, so none is the one ca.crl revokes. */
static void random_serial(X509 *cert)
{
	BIGNUM *bn = BN_new();

	assert_non_null(bn);
	assert_int_equal(BN_rand(bn, 64, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY), 1);
	assert_non_null(BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)));
	BN_free(bn);
}

/*
 * issued(NAME.pem) and issued(NAME.key): an RSA key of `bits`, the subject
 * naming orgnr as organizationIdentifier NTRNO-<orgnr> (NULL: no
 * organisation), valid from `from` to `to` days from now, issued by the
 * development CA (ca.pem, ca.key).
 */
static void issue(const char *name, const char *orgnr, int bits, long from, long to)
{
	EVP_PKEY *key = EVP_RSA_gen((unsigned)bits), *ca_key = NULL;
	X509 *ca = NULL, *cert = X509_new();
	X509_NAME *subject = X509_get_subject_name(cert);
	char file[128], org_id[16];

	assert_non_null(key);
	assert_non_null(cert);
	assert_ok(pki_cert_load(&ca, tu_pki("ca.pem")));
	assert_ok(pki_key_load(&ca_key, tu_pki("ca.key")));
	assert_int_equal(X509_set_version(cert, 2), 1);
	random_serial(cert);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(cert), from * 86400));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(cert), to * 86400));
	assert_int_equal(X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
						    (const unsigned char *)name, -1, -1, 0), 1);
	if (orgnr) {
		snprintf(org_id, sizeof(org_id), "NTRNO-%s", orgnr);
		assert_int_equal(X509_NAME_add_entry_by_NID(subject, NID_organizationIdentifier,
							    MBSTRING_UTF8,
							    (const unsigned char *)org_id,
							    -1, -1, 0), 1);
	}
	assert_int_equal(X509_set_issuer_name(cert, X509_get_subject_name(ca)), 1);
	assert_int_equal(X509_set_pubkey(cert, key), 1);
	assert_true(X509_sign(cert, ca_key, EVP_sha256()) > 0);
	snprintf(file, sizeof(file), "%s.pem", name);
	write_cert(issued(file), cert);
	snprintf(file, sizeof(file), "%s.key", name);
	write_key(issued(file), key);
	X509_free(cert);
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(key);
}

static int group_setup(void **state)
{
	const char *anchors[1];

	assert_int_equal(xmlread_init(), 0);
	assert_ok(xmlread_schemas_load(tu_src("schemas")));
	assert_int_equal(dsig_init(), 0);
	anchors[0] = tu_pki("ca.pem");
	assert_ok(pki_trust_new(&trust, anchors, 1, NULL, 0));
	assert_ok(verifier_new(&ver, trust));
	snprintf(issued_dir, sizeof(issued_dir), "%s", tu_tmpdir("intake-issued"));
	issue("school", ORG_SCHOOL, 2048, 0, 365);
	issue("school-next", ORG_SCHOOL, 2048, 0, 730); /* the rollover's new one */
	issue("school-expired", ORG_SCHOOL, 2048, -366, -1);
	issue("school-weak", ORG_SCHOOL, 1024, 0, 365);
	issue("no-org", NULL, 2048, 0, 365);
	return 0;
}

static int group_teardown(void **state)
{
	verifier_free(ver);
	pki_trust_free(trust);
	dsig_shutdown();
	xmlread_shutdown();
	tu_rmrf(issued_dir);
	return 0;
}

static void build_config(struct gw_config *cfg, const char *dir)
{
	gw_buf text = GW_BUF_INIT;

	assert_ok(gw_buf_printf(&text,
				"[identity]\norgnr = 974760673\nkey = %s\ncert = %s\n"
				"trust = %s\ntest_nins = true\n"
				"[gateway]\nspool = %s/spool\ndb = %s/gateway.db\n"
				"pseudonym_key = %s/pseudonym.key\nretry_horizon_days = 14\n",
				tu_pki("gateway.key"), tu_pki("gateway.pem"), tu_pki("ca.pem"), dir, dir,
				dir));
	assert_ok(gw_buf_printf(&text,
				"[endpoint oslo-housing]\norgnr = " ORG_HOUSING "\n"
				"services = housing\nmunicipalities = 0301\n"
				"url = https://127.0.0.1:9441/notices\nlead_days = 14\n"
				"[endpoint oslo-nav]\norgnr = " ORG_NAV "\nservices = nav\n"
				"municipalities = 0301\nurl = https://127.0.0.1:9442/notices\n"
				"[endpoint oslo-health]\norgnr = " ORG_HEALTH "\nservices = health\n"
				"municipalities = 0301\nurl = https://127.0.0.1:9443/notices\n"
				"[endpoint other-prison]\norgnr = " ORG_PRISON "\nservices = prison\n"
				"consent = not-required\nurl = https://127.0.0.1:9444/notices\n"
				"[endpoint oslo-school]\norgnr = " ORG_SCHOOL "\n"
				"services = school\n"
				"municipalities = 0301\nurl = https://127.0.0.1:9445/notices\n"
				"encrypt_cert = %s\n",
				issued("school.pem")));
	assert_ok(config_parse(cfg, (const char *)text.data, dir));
	gw_buf_free(&text);
}

static int setup(void **state)
{
	memset(&fx, 0, sizeof(fx));
	snprintf(fx.dir, sizeof(fx.dir), "%s", tu_tmpdir("intake"));
	build_config(&fx.cfg, fx.dir);
	tu_intake_open(&fx, pseudonym_key, sizeof(pseudonym_key) - 1, fixed_now);
	*state = &fx;
	return 0;
}

static int teardown(void **state)
{
	tu_intake_close(&fx);
	return 0;
}

/* ---- helpers ---- */

static void drop_bytes(const char *name, const void *data, size_t len)
{
	char path[PATH_MAX + 256];

	snprintf(path, sizeof(path), "%s/%s", fx.spool.new_dir, name);
	tu_write(path, data, len);
}

static void drop(const char *sample, const char *name)
{
	char rel[256];
	gw_buf b = GW_BUF_INIT;

	snprintf(rel, sizeof(rel), "tests/data/intake/%s", sample);
	tu_read(tu_src(rel), &b);
	drop_bytes(name, b.data, b.len);
	gw_buf_free(&b);
}

static void take(const char *name, enum intake_outcome expected)
{
	enum intake_outcome outcome;

	assert_ok(intake_file(&fx.in, name, &outcome));
	if (outcome != expected)
		fail_msg("%s: outcome %d, expected %d", name, (int)outcome, (int)expected);
}

static bool present(const char *dir, const char *name)
{
	char path[PATH_MAX + 256];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return lstat(path, &st) == 0;
}

static void read_in(const char *dir, const char *name, gw_buf *out)
{
	char path[PATH_MAX + 256];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	tu_read(path, out);
}

#define MAX_ROWS 16

struct rows {
	struct store_message m[MAX_ROWS];
	size_t n;
};

static int collect(const struct store_message *m, void *ctx)
{
	struct rows *r = ctx;

	if (r->n < MAX_ROWS) {
		r->m[r->n] = *m;
		memset(&r->m[r->n].signed_bytes, 0, sizeof(gw_buf)); /* not owned */
		r->n++;
	}
	return 0;
}

static void list(const char *notice_id, int revision, struct rows *out)
{
	struct store_filter f = { .state = -1, .notice_id = notice_id };
	struct rows all = { .n = 0 };

	assert_ok(fx.st->ops->messages_list(fx.st, &f, collect, &all));
	out->n = 0;
	for (size_t i = 0; i < all.n; i++)
		if (revision == 0 || all.m[i].revision == revision)
			out->m[out->n++] = all.m[i];
}

static const struct store_message *by_service(const struct rows *r, const char *service)
{
	for (size_t i = 0; i < r->n; i++)
		if (!strcmp(r->m[i].service, service))
			return &r->m[i];
	fail_msg("no message for %s", service);
	return NULL;
}

/* The signed bytes of a message, checked: digest, schema, signature. */
static void signed_body(const char *message_id, gw_buf *out)
{
	struct store_message m;
	struct verify_result vr;
	char digest[45];
	xmlDocPtr doc;

	memset(&m, 0, sizeof(m));
	assert_ok(fx.st->ops->message_get(fx.st, message_id, &m));
	assert_true(m.signed_bytes.len > 0);
	assert_ok(receipt_digest(m.signed_bytes.data, m.signed_bytes.len, digest));
	assert_string_equal(digest, m.digest_b64);
	assert_ok(xmlread_parse_valid(&doc, m.signed_bytes.data, m.signed_bytes.len, 0,
				      XML_KIND_MESSAGE, "message"));
	memset(&vr, 0, sizeof(vr));
	assert_ok(verifier_check(ver, doc, "974760673", &vr));
	xmlFreeDoc(doc);
	gw_buf_reset(out);
	assert_ok(gw_buf_put(out, m.signed_bytes.data, m.signed_bytes.len));
	store_message_clear(&m);
}

static bool has(const gw_buf *b, const char *text)
{
	return strstr((const char *)b->data, text) != NULL;
}

/* ---- release ---- */

static void test_full_consent_gives_three_signed_messages(void **state)
{
	struct rows r;
	struct store_notice n;
	gw_buf body = GW_BUF_INIT;

	drop("release-r1.xml", "r1.xml");
	take("r1.xml", INTAKE_ACCEPTED);
	assert_false(present(fx.spool.new_dir, "r1.xml"));
	assert_true(present(fx.spool.processed, "r1.xml"));

	list("INTAKE-2027-000001", 0, &r);
	assert_int_equal(r.n, 3);
	for (size_t i = 0; i < r.n; i++) {
		assert_int_equal(r.m[i].state, MSG_QUEUED);
		assert_string_equal(r.m[i].event_date, "2027-03-04");
		assert_int_equal(r.m[i].next_attempt_ms, NOW);
		assert_int_equal(r.m[i].created_ms, NOW);
		assert_int_equal(r.m[i].deadline_ms, DEADLINE);
		signed_body(r.m[i].message_id, &body);
		assert_true(has(&body, r.m[i].message_id));
		assert_false(has(&body, "Recipients"));
		assert_false(has(&body, "Consent"));
		assert_true(has(&body, "<Created>2026-11-22T11:00:00Z</Created>"));
	}
	assert_string_equal(by_service(&r, "housing")->recipient_orgnr, ORG_HOUSING);
	assert_string_equal(by_service(&r, "housing")->endpoint, "oslo-housing");
	assert_string_equal(by_service(&r, "nav")->recipient_orgnr, ORG_NAV);
	assert_string_equal(by_service(&r, "health")->recipient_orgnr, ORG_HEALTH);

	/* The housing copy: only the housing Need. */
	signed_body(by_service(&r, "housing")->message_id, &body);
	assert_true(has(&body, "category=\"housing\""));
	assert_false(has(&body, "category=\"income\""));
	assert_false(has(&body, "category=\"employment\""));
	assert_false(has(&body, "category=\"mental-health\""));
	assert_true(has(&body, "<To orgnr=\"" ORG_HOUSING "\" service=\"housing\"/>"));
	/* The nav copy: income and employment only. */
	signed_body(by_service(&r, "nav")->message_id, &body);
	assert_true(has(&body, "category=\"income\""));
	assert_true(has(&body, "category=\"employment\""));
	assert_false(has(&body, "category=\"housing\""));

	assert_ok(fx.st->ops->notice_get(fx.st, "INTAKE-2027-000001", 1, &n));
	assert_string_equal(n.source_name, "r1.xml");
	assert_int_equal(strlen(n.person_ref), 16);
	assert_null(strstr(n.person_ref, NIN));
	assert_false(n.late_at_intake); /* 102 days ahead */
	assert_false(n.weekend_release); /* a Thursday */
	gw_buf_free(&body);
}

static void test_refusal_holds_health_no_consent(void **state)
{
	struct rows r;
	const struct store_message *health;
	struct store_message m;

	drop("refuse-health.xml", "refuse.xml");
	take("refuse.xml", INTAKE_ACCEPTED);
	list("INTAKE-2027-000002", 0, &r);
	assert_int_equal(r.n, 3);
	assert_int_equal(by_service(&r, "housing")->state, MSG_QUEUED);
	assert_int_equal(by_service(&r, "nav")->state, MSG_QUEUED);
	health = by_service(&r, "health");
	assert_int_equal(health->state, MSG_HELD);
	assert_string_equal(health->reason, "no consent");
	assert_string_equal(health->recipient_orgnr, ORG_HEALTH);
	memset(&m, 0, sizeof(m));
	assert_ok(fx.st->ops->message_get(fx.st, health->message_id, &m));
	assert_int_equal(m.signed_bytes.len, 0); /* nothing built for a refusal */
	store_message_clear(&m);
}

static void test_unknown_municipality_holds_no_endpoint(void **state)
{
	struct rows r;

	drop("unknown-municipality.xml", "stavanger.xml");
	take("stavanger.xml", INTAKE_ACCEPTED);
	list("INTAKE-2027-000003", 0, &r);
	assert_int_equal(r.n, 3);
	assert_int_equal(by_service(&r, "housing")->state, MSG_HELD);
	assert_string_equal(by_service(&r, "housing")->reason, "no endpoint");
	assert_string_equal(by_service(&r, "housing")->recipient_orgnr, "");
	assert_int_equal(by_service(&r, "nav")->state, MSG_HELD);
	/* A Recipient/@orgnr names the organisation directly. */
	assert_int_equal(by_service(&r, "health")->state, MSG_QUEUED);
	assert_string_equal(by_service(&r, "health")->recipient_orgnr, ORG_HEALTH);
}

static void test_same_bytes_twice_is_a_duplicate(void **state)
{
	struct store_counts before, after;

	drop("release-r1.xml", "first.xml");
	take("first.xml", INTAKE_ACCEPTED);
	assert_ok(fx.st->ops->counts(fx.st, &before));

	drop("release-r1.xml", "second.xml");
	take("second.xml", INTAKE_DUPLICATE);
	assert_true(present(fx.spool.processed, "second.xml"));

	/* A crash after COMMIT, before the move: the file is still in new. */
	drop("release-r1.xml", "first.xml");
	take("first.xml", INTAKE_DUPLICATE);
	assert_true(present(fx.spool.processed, "first.xml.1"));
	assert_false(present(fx.spool.new_dir, "first.xml"));

	assert_ok(fx.st->ops->counts(fx.st, &after));
	assert_memory_equal(&before, &after, sizeof(before));
}

/* ---- revisions ---- */

static void assert_reason_file(const char *name, const char *code)
{
	char reason_name[256], first[64];
	gw_buf b = GW_BUF_INIT;

	snprintf(reason_name, sizeof(reason_name), "%s.reason", name);
	read_in(fx.spool.rejected, reason_name, &b);
	snprintf(first, sizeof(first), "%s\n", code);
	if (strncmp((char *)b.data, first, strlen(first)) != 0)
		fail_msg("%s starts '%s', expected code %s", reason_name, (char *)b.data, code);
	assert_null(strstr((char *)b.data, NIN));
	assert_null(strstr((char *)b.data, "Intakeperson"));
	/* two lines: code, sentence */
	assert_non_null(strchr((char *)b.data + strlen(first), '\n'));
	assert_true(present(fx.spool.rejected, name));
	assert_false(present(fx.spool.new_dir, name));
	gw_buf_free(&b);
}

static void test_revision_rules(void **state)
{
	struct rows r1, r2;
	const struct store_message *nav;

	drop("release-r1.xml", "r1.xml");
	take("r1.xml", INTAKE_ACCEPTED);
	list("INTAKE-2027-000001", 1, &r1);
	/* nav received revision 1 already: it is not superseded. */
	nav = by_service(&r1, "nav");
	assert_ok(fx.st->ops->message_update(fx.st, nav->message_id, MSG_QUEUED, MSG_SENDING, NULL,
					     -1, 1));
	assert_ok(fx.st->ops->message_update(fx.st, nav->message_id, MSG_SENDING, MSG_DELIVERED,
					     NULL, -1, 0));

	drop("release-r1-conflict.xml", "conflict.xml");
	take("conflict.xml", INTAKE_REJECTED);
	assert_reason_file("conflict.xml", "revision-conflict");

	drop("release-r2.xml", "r2.xml");
	take("r2.xml", INTAKE_ACCEPTED);
	list("INTAKE-2027-000001", 1, &r1);
	assert_int_equal(by_service(&r1, "housing")->state, MSG_SUPERSEDED);
	assert_string_equal(by_service(&r1, "housing")->reason, "superseded by revision 2");
	assert_int_equal(by_service(&r1, "health")->state, MSG_SUPERSEDED);
	assert_int_equal(by_service(&r1, "nav")->state, MSG_DELIVERED);
	list("INTAKE-2027-000001", 2, &r2);
	assert_int_equal(r2.n, 3);
	for (size_t i = 0; i < r2.n; i++)
		assert_int_equal(r2.m[i].state, MSG_QUEUED);

	drop("release-r1-conflict.xml", "stale.xml");
	take("stale.xml", INTAKE_REJECTED);
	assert_reason_file("stale.xml", "stale-revision");
	list("INTAKE-2027-000001", 0, &r1);
	assert_int_equal(r1.n, 6);
}

/* Move a message along the state machine as deliver would. */
static void move(const struct store_message *m, enum msg_state from, enum msg_state to)
{
	assert_ok(fx.st->ops->message_update(fx.st, m->message_id, from, to, "test", -1,
					     to == MSG_SENDING ? 0 : 1));
}

static enum msg_state outdated(const struct store_message *m, char *reason, size_t len)
{
	enum msg_state to = MSG_QUEUED;
	int rc = fx.st->ops->message_outdated(fx.st, m->message_id, &to, reason, len);

	assert_true(rc >= 0);
	return rc == 1 ? to : MSG_QUEUED;
}

/* Revision 1 taken in; its release to NAV on its way, the one to health failed. */
static void r1_nav_sending_health_failed(struct rows *r1)
{
	drop("release-r1.xml", "r1.xml");
	take("r1.xml", INTAKE_ACCEPTED);
	list("INTAKE-2027-000001", 1, r1);
	move(by_service(r1, "nav"), MSG_QUEUED, MSG_SENDING);
	move(by_service(r1, "health"), MSG_QUEUED, MSG_SENDING);
	move(by_service(r1, "health"), MSG_SENDING, MSG_FAILED);
}

/*
 * A revision that arrives while an older one is on its way (sending) or
 * failed: the failed one is superseded at once; the one being sent cannot
 * be pulled back, but is stopped before any further attempt.
 */
static void test_newer_revision_stops_sending_and_failed(void **state)
{
	struct rows r1, r2;
	char reason[64];

	r1_nav_sending_health_failed(&r1);
	assert_int_equal(outdated(by_service(&r1, "nav"), reason, sizeof(reason)), MSG_QUEUED);

	drop("release-r2.xml", "r2.xml");
	take("r2.xml", INTAKE_ACCEPTED);
	list("INTAKE-2027-000001", 1, &r1);
	assert_int_equal(by_service(&r1, "health")->state, MSG_SUPERSEDED);
	assert_int_equal(by_service(&r1, "nav")->state, MSG_SENDING);
	/* Its attempt fails and it is queued again: it must not go out. */
	move(by_service(&r1, "nav"), MSG_SENDING, MSG_QUEUED);
	assert_int_equal(outdated(by_service(&r1, "nav"), reason, sizeof(reason)), MSG_SUPERSEDED);
	assert_string_equal(reason, "superseded by revision 2");
	list("INTAKE-2027-000001", 2, &r2);
	assert_int_equal(outdated(by_service(&r2, "nav"), reason, sizeof(reason)), MSG_QUEUED);
}

/* An attempt whose request went out whole may have left a copy at the partner. */
static void attempt(const struct store_message *m, bool reached)
{
	struct store_attempt a;

	memset(&a, 0, sizeof(a));
	snprintf(a.message_id, sizeof(a.message_id), "%s", m->message_id);
	snprintf(a.outcome, sizeof(a.outcome), "retry");
	a.reached = reached;
	assert_ok(fx.st->ops->attempt_insert(fx.st, &a));
}

/* Revision 1 taken in; its request to NAV went out whole, the answer was lost. */
static void r1_nav_answer_lost(struct rows *r1)
{
	drop("release-r1.xml", "r1.xml");
	take("r1.xml", INTAKE_ACCEPTED);
	list("INTAKE-2027-000001", 1, r1);
	move(by_service(r1, "nav"), MSG_QUEUED, MSG_SENDING);
	attempt(by_service(r1, "nav"), true);
	move(by_service(r1, "nav"), MSG_SENDING, MSG_QUEUED);
}

/*
 * Withdrawn after attempts: NAV's request went out whole and its answer was
 * lost (queued again), health's partner was never reached (connection
 * refused). NAV may hold a copy and is told; health is not.
 */
static void test_withdrawal_tells_whom_an_attempt_may_have_reached(void **state)
{
	struct rows r1, r3;

	r1_nav_answer_lost(&r1);
	move(by_service(&r1, "health"), MSG_QUEUED, MSG_SENDING);
	attempt(by_service(&r1, "health"), false);
	move(by_service(&r1, "health"), MSG_SENDING, MSG_FAILED);

	drop("withdrawal-r3.xml", "withdraw.xml"); /* names nav and health */
	take("withdraw.xml", INTAKE_ACCEPTED);
	list("INTAKE-2027-000001", 1, &r1);
	assert_int_equal(by_service(&r1, "nav")->state, MSG_CANCELLED);
	assert_int_equal(by_service(&r1, "health")->state, MSG_CANCELLED);
	list("INTAKE-2027-000001", 3, &r3);
	assert_int_equal(r3.n, 1);
	assert_string_equal(r3.m[0].service, "nav");
	assert_string_equal(r3.m[0].kind, "withdrawal");
}

/* release-r2.xml as revision 4 */
static void drop_revision_4(const char *name)
{
	gw_buf b = GW_BUF_INIT;
	char *at;

	tu_read(tu_src("tests/data/intake/release-r2.xml"), &b);
	at = strstr((char *)b.data, "revision=\"2\"");
	assert_non_null(at);
	at[10] = '4';
	drop_bytes(name, b.data, b.len);
	gw_buf_free(&b);
}

/*
 * A release after a withdrawal does not undo the withdrawal message: NAV,
 * who got revision 1, is told to delete it whatever revision comes next.
 */
static void test_withdrawal_message_is_never_superseded(void **state)
{
	struct rows r1, r3;
	char reason[64];

	drop("release-r1.xml", "r1.xml");
	take("r1.xml", INTAKE_ACCEPTED);
	list("INTAKE-2027-000001", 1, &r1);
	move(by_service(&r1, "nav"), MSG_QUEUED, MSG_SENDING);
	move(by_service(&r1, "nav"), MSG_SENDING, MSG_DELIVERED);
	drop("withdrawal-r3.xml", "withdraw.xml");
	take("withdraw.xml", INTAKE_ACCEPTED);
	list("INTAKE-2027-000001", 3, &r3);
	assert_int_equal(r3.n, 1);
	/* its first attempt fails; then revision 4 comes in */
	move(&r3.m[0], MSG_QUEUED, MSG_SENDING);
	move(&r3.m[0], MSG_SENDING, MSG_QUEUED);
	drop_revision_4("r4.xml");
	take("r4.xml", INTAKE_ACCEPTED);
	list("INTAKE-2027-000001", 3, &r3);
	assert_int_equal(r3.m[0].state, MSG_QUEUED);
	assert_int_equal(outdated(&r3.m[0], reason, sizeof(reason)), MSG_QUEUED);
}

/*
 * Revision 1 to NAV went out whole and its answer was lost; revision 2
 * superseded it before it was sent again. A withdrawal must still tell NAV.
 */
static void test_withdrawal_tells_a_superseded_copy_that_may_have_arrived(void **state)
{
	struct rows r1, r3;

	r1_nav_answer_lost(&r1);
	drop("release-r2.xml", "r2.xml");
	take("r2.xml", INTAKE_ACCEPTED);
	list("INTAKE-2027-000001", 1, &r1);
	assert_int_equal(by_service(&r1, "nav")->state, MSG_SUPERSEDED);

	drop("withdrawal-r3.xml", "withdraw.xml");
	take("withdraw.xml", INTAKE_ACCEPTED);
	list("INTAKE-2027-000001", 3, &r3);
	assert_int_equal(r3.n, 1);
	assert_string_equal(r3.m[0].service, "nav");
}

/* Its request went out whole, then it was held (its endpoint left the configuration). */
static void test_withdrawal_tells_a_held_copy_that_may_have_arrived(void **state)
{
	struct rows r1, r3;

	r1_nav_answer_lost(&r1);
	assert_ok(fx.st->ops->message_update(fx.st, by_service(&r1, "nav")->message_id, MSG_QUEUED,
					     MSG_HELD, INTAKE_HELD_NO_ENDPOINT, -1, 0));
	drop("withdrawal-r3.xml", "withdraw.xml");
	take("withdraw.xml", INTAKE_ACCEPTED);
	list("INTAKE-2027-000001", 1, &r1);
	assert_int_equal(by_service(&r1, "nav")->state, MSG_CANCELLED);
	list("INTAKE-2027-000001", 3, &r3);
	assert_int_equal(r3.n, 1);
	assert_string_equal(r3.m[0].service, "nav");
}

/* Consent withdrawn while the release to NAV is on its way. */
static void test_withdrawal_stops_what_is_on_its_way(void **state)
{
	struct rows r1;
	char reason[64];

	r1_nav_sending_health_failed(&r1);

	drop("withdrawal-r3.xml", "withdraw.xml"); /* names nav and health */
	take("withdraw.xml", INTAKE_ACCEPTED);
	list("INTAKE-2027-000001", 1, &r1);
	assert_int_equal(by_service(&r1, "health")->state, MSG_CANCELLED);
	assert_int_equal(by_service(&r1, "housing")->state, MSG_QUEUED); /* not named */
	assert_int_equal(outdated(by_service(&r1, "housing"), reason, sizeof(reason)), MSG_QUEUED);
	/* NAV may have it: it is told, and the release is never tried again. */
	move(by_service(&r1, "nav"), MSG_SENDING, MSG_QUEUED);
	assert_int_equal(outdated(by_service(&r1, "nav"), reason, sizeof(reason)), MSG_CANCELLED);
	assert_string_equal(reason, "withdrawn by revision 3");
	list("INTAKE-2027-000001", 3, &r1);
	assert_int_equal(r1.n, 1);
	assert_string_equal(r1.m[0].service, "nav");
}

static void test_withdrawal_cancels_and_tells_those_reached(void **state)
{
	struct rows r1, r3;
	gw_buf body = GW_BUF_INIT;
	const struct store_message *nav;

	drop("release-r1.xml", "r1.xml");
	take("r1.xml", INTAKE_ACCEPTED);
	list("INTAKE-2027-000001", 1, &r1);
	nav = by_service(&r1, "nav");
	assert_ok(fx.st->ops->message_update(fx.st, nav->message_id, MSG_QUEUED, MSG_SENDING, NULL,
					     -1, 1));
	assert_ok(fx.st->ops->message_update(fx.st, nav->message_id, MSG_SENDING, MSG_DELIVERED,
					     NULL, -1, 0));

	drop("withdrawal-r3.xml", "withdraw.xml");
	take("withdraw.xml", INTAKE_ACCEPTED);
	list("INTAKE-2027-000001", 1, &r1);
	assert_int_equal(by_service(&r1, "housing")->state, MSG_QUEUED); /* not named */
	assert_int_equal(by_service(&r1, "health")->state, MSG_CANCELLED);
	assert_string_equal(by_service(&r1, "health")->reason, "withdrawn: consent-withdrawn");
	assert_int_equal(by_service(&r1, "nav")->state, MSG_DELIVERED);

	list("INTAKE-2027-000001", 3, &r3);
	assert_int_equal(r3.n, 1);
	assert_string_equal(r3.m[0].service, "nav");
	assert_string_equal(r3.m[0].kind, "withdrawal");
	assert_string_equal(r3.m[0].recipient_orgnr, ORG_NAV);
	assert_int_equal(r3.m[0].state, MSG_QUEUED);
	signed_body(r3.m[0].message_id, &body);
	assert_true(has(&body, "<Withdrawal"));
	assert_true(has(&body, "kind=\"withdrawal\""));
	/* The notice named nav and health: NAV is not told that health was. */
	assert_true(has(&body, "services=\"nav\""));
	assert_false(has(&body, "health"));
	assert_false(has(&body, NIN));
	gw_buf_free(&body);
}

/*
 * fx.cfg after an operator pointed the endpoint name oslo-nav at another
 * organisation (ORG_OTHER); with old_elsewhere, NAV (ORG_NAV) is
 * configured again under the name nav-old.
 */
static void config_nav_repointed(struct gw_config *out, bool old_elsewhere)
{
	*out = fx.cfg;
	for (size_t i = 0; i < out->n_endpoints; i++) {
		struct config_endpoint *ep = &out->endpoints[i];

		if (strcmp(ep->name, "oslo-nav") != 0)
			continue;
		if (old_elsewhere) {
			struct config_endpoint *old = &out->endpoints[out->n_endpoints++];

			assert_true(out->n_endpoints <= CONFIG_MAX_ENDPOINTS);
			*old = *ep;
			snprintf(old->name, sizeof(old->name), "nav-old");
		}
		snprintf(ep->orgnr, sizeof(ep->orgnr), ORG_OTHER);
		return;
	}
	fail_msg("no endpoint oslo-nav");
}

/* The withdrawal message of revision 3 (the only one): to NAV, and how it stands. */
static void expect_withdrawal_to_nav(struct rows *r3, enum msg_state state, const char *endpoint)
{
	list("INTAKE-2027-000001", 3, r3);
	assert_int_equal(r3->n, 1);
	assert_string_equal(r3->m[0].kind, "withdrawal");
	assert_string_equal(r3->m[0].service, "nav");
	assert_string_equal(r3->m[0].recipient_orgnr, ORG_NAV);
	assert_int_equal(r3->m[0].state, state);
	assert_string_equal(r3->m[0].endpoint, endpoint);
}

/*
 * NAV (ORG_NAV, endpoint oslo-nav) got revision 1, or is being sent it;
 * then an operator points the name oslo-nav at another organisation and
 * the withdrawal comes in. It goes to the organisation that got the
 * notice, never to the new one under the old name: held "no endpoint"
 * with ORG_NAV recorded, and the copy on its way is stopped (a withdrawal
 * for the same organisation exists); once NAV is configured again (under
 * another name) the withdrawal goes out to it.
 */
/* NAV configured again, under another name: release sends the withdrawal there, to NAV only. */
static void released_to_nav_old(struct rows *r3, int (*release)(struct intake *, int *))
{
	static struct gw_config with_old;
	gw_buf body = GW_BUF_INIT;
	int released = -1;

	config_nav_repointed(&with_old, true);
	fx.in.cfg = &with_old;
	assert_ok(release(&fx.in, &released));
	assert_int_equal(released, 1);
	expect_withdrawal_to_nav(r3, MSG_QUEUED, "nav-old");
	signed_body(r3->m[0].message_id, &body);
	assert_true(has(&body, "<To orgnr=\"" ORG_NAV "\" service=\"nav\"/>"));
	assert_true(has(&body, "<Withdrawal"));
	assert_false(has(&body, ORG_OTHER));
	fx.in.cfg = &fx.cfg;
	gw_buf_free(&body);
}

static void test_withdrawal_goes_to_the_organisation_not_the_endpoint_name(void **state)
{
	static struct gw_config repointed;
	struct rows r1, r3;
	char reason[64];
	int released = -1;

	r1_nav_sending_health_failed(&r1);
	config_nav_repointed(&repointed, false);
	fx.in.cfg = &repointed;
	drop("withdrawal-r3.xml", "withdraw.xml"); /* names nav and health */
	take("withdraw.xml", INTAKE_ACCEPTED);
	expect_withdrawal_to_nav(&r3, MSG_HELD, "");
	assert_string_equal(r3.m[0].reason, INTAKE_HELD_NO_ENDPOINT);
	/* The release on its way to NAV fails and is queued again: it must not go out. */
	move(by_service(&r1, "nav"), MSG_SENDING, MSG_QUEUED);
	assert_int_equal(outdated(by_service(&r1, "nav"), reason, sizeof(reason)), MSG_CANCELLED);
	assert_string_equal(reason, "withdrawn by revision 3");

	/* Still only the name: nothing is released. */
	assert_ok(intake_release_held(&fx.in, &released));
	assert_int_equal(released, 0);
	expect_withdrawal_to_nav(&r3, MSG_HELD, "");

	released_to_nav_old(&r3, intake_release_held);
}

/*
 * A withdrawal to NAV that NAV refused as stale waits to be signed again;
 * meanwhile the name oslo-nav was pointed at another organisation. It is
 * signed again only for NAV, the organisation it was for: not under the
 * name, and under the new name of NAV once there is one.
 */
static void test_held_withdrawal_is_released_to_its_organisation_only(void **state)
{
	static struct gw_config repointed;
	struct rows r1, r3;
	int released = -1;

	drop("release-r1.xml", "r1.xml");
	take("r1.xml", INTAKE_ACCEPTED);
	list("INTAKE-2027-000001", 1, &r1);
	move(by_service(&r1, "nav"), MSG_QUEUED, MSG_SENDING);
	move(by_service(&r1, "nav"), MSG_SENDING, MSG_DELIVERED);
	drop("withdrawal-r3.xml", "withdraw.xml");
	take("withdraw.xml", INTAKE_ACCEPTED);
	expect_withdrawal_to_nav(&r3, MSG_QUEUED, "oslo-nav");
	move(&r3.m[0], MSG_QUEUED, MSG_SENDING);
	assert_ok(fx.st->ops->message_update(fx.st, r3.m[0].message_id, MSG_SENDING, MSG_HELD,
					     STORE_HELD_STALE, -1, 1));

	config_nav_repointed(&repointed, false);
	fx.in.cfg = &repointed;
	assert_ok(intake_release_stale(&fx.in, &released));
	assert_int_equal(released, 0);
	expect_withdrawal_to_nav(&r3, MSG_HELD, "oslo-nav");

	released_to_nav_old(&r3, intake_release_stale);
}

/* ---- rejections ---- */

static void test_invalid_notices_rejected_with_reason(void **state)
{
	static const char broken[] = "<Notice xmlns=\"urn:x-notice-gateway:notice:1\">";
	gw_buf b = GW_BUF_INIT, bad_nin = GW_BUF_INIT;
	struct rows r;
	char *at;

	drop_bytes("broken.xml", broken, strlen(broken));
	take("broken.xml", INTAKE_REJECTED);
	assert_reason_file("broken.xml", "malformed");
	read_in(fx.spool.rejected, "broken.xml", &b);
	assert_string_equal((char *)b.data, broken); /* kept as it came */

	/* A wrong check digit: rejected, and the number appears nowhere. */
	tu_read(tu_src("tests/data/intake/release-r1.xml"), &bad_nin);
	at = strstr((char *)bad_nin.data, NIN);
	assert_non_null(at);
	at[10] = at[10] == '9' ? '8' : '9';
	drop_bytes("badnin.xml", bad_nin.data, bad_nin.len);
	take("badnin.xml", INTAKE_REJECTED);
	read_in(fx.spool.rejected, "badnin.xml.reason", &b);
	assert_null(strstr((char *)b.data, "1585901009"));
	assert_reason_file("badnin.xml", "invalid-nin");

	list("INTAKE-2027-000001", 0, &r);
	assert_int_equal(r.n, 0); /* nothing of a rejected notice is stored */
	gw_buf_free(&b);
	gw_buf_free(&bad_nin);
}

static void test_scan_rejects_hostile_files_unread(void **state)
{
	char target[PATH_MAX + 256], other[PATH_MAX + 256], hard[PATH_MAX + 256];
	int accepted = -1, rejected = -1, duplicates = -1;

	drop("release-r1.xml", "a-good.xml");
	drop("release-r1.xml", "b-again.xml");
	drop_bytes("notes.txt", "hello", 5);
	drop_bytes(".producer-temp.xml", "<x", 2);
	snprintf(target, sizeof(target), "%s/outside.xml", fx.dir);
	tu_write(target, "<x/>", 4);
	snprintf(other, sizeof(other), "%s/c-link.xml", fx.spool.new_dir);
	assert_int_equal(symlink(target, other), 0);
	snprintf(hard, sizeof(hard), "%s/d-hard.xml", fx.spool.new_dir);
	assert_int_equal(link(target, hard), 0);

	assert_ok(intake_scan(&fx.in, &accepted, &rejected, &duplicates));
	assert_int_equal(accepted, 1);
	assert_int_equal(duplicates, 1);
	assert_int_equal(rejected, 3);
	assert_reason_file("notes.txt", "bad-name");
	assert_reason_file("c-link.xml", "symlink");
	assert_reason_file("d-hard.xml", "hard-linked");
	assert_true(present(fx.spool.new_dir, ".producer-temp.xml")); /* not ours */
	assert_true(present(fx.dir, "outside.xml"));
}

/* ---- timeliness, transfer, encryption ---- */

static void test_timeliness_flags(void **state)
{
	struct store_notice n;
	struct rows r;

	drop("friday-soon.xml", "soon.xml");
	take("soon.xml", INTAKE_ACCEPTED);
	assert_ok(fx.st->ops->notice_get(fx.st, "INTAKE-2027-000004", 1, &n));
	assert_true(n.late_at_intake);  /* 5 days ahead, lead time 14 */
	assert_true(n.weekend_release); /* 2026-11-27 is a Friday */
	list("INTAKE-2027-000004", 0, &r);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.m[0].deadline_ms, NOW + 14 * DAY); /* horizon beyond the date */
}

/* lead_days = 0 is no lead time (as in the timeliness report): 5 days ahead is not late. */
static void test_lead_days_zero_is_never_late_at_intake(void **state)
{
	static struct gw_config zero;
	struct store_notice n;

	zero = fx.cfg;
	for (size_t i = 0; i < zero.n_endpoints; i++)
		zero.endpoints[i].lead_days = 0;
	fx.in.cfg = &zero;
	drop("friday-soon.xml", "soon.xml");
	take("soon.xml", INTAKE_ACCEPTED);
	assert_ok(fx.st->ops->notice_get(fx.st, "INTAKE-2027-000004", 1, &n));
	assert_false(n.late_at_intake);
	assert_true(n.weekend_release);
	fx.in.cfg = &fx.cfg;
}

static void test_transfer_to_prison_without_consent_gets_all_needs(void **state)
{
	gw_buf body = GW_BUF_INIT;
	struct rows r;

	drop("transfer.xml", "transfer.xml");
	take("transfer.xml", INTAKE_ACCEPTED);
	list("INTAKE-2027-000005", 0, &r);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.m[0].service, "prison");
	assert_string_equal(r.m[0].recipient_orgnr, ORG_PRISON);
	assert_string_equal(r.m[0].event_date, "2027-02-10");
	signed_body(r.m[0].message_id, &body);
	assert_true(has(&body, "category=\"education\""));
	assert_true(has(&body, "category=\"health\""));
	gw_buf_free(&body);
}

/* ---- encryption ---- */

static struct config_endpoint *endpoint_named(struct gw_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_endpoints; i++)
		if (!strcmp(cfg->endpoints[i].name, name))
			return &cfg->endpoints[i];
	fail_msg("no endpoint %s", name);
	return NULL;
}

static void set_path(char *dst, size_t size, const char *src)
{
	size_t len = strlen(src);

	if (len >= size)
		fail_msg("path too long: %s", src);
	memcpy(dst, src, len + 1);
}

static void school_certs(const char *first, const char *second)
{
	struct config_endpoint *ep = endpoint_named(&fx.cfg, "oslo-school");

	set_path(ep->encrypt_cert[0], sizeof(ep->encrypt_cert[0]), first);
	ep->n_encrypt_cert = 1;
	if (second) {
		set_path(ep->encrypt_cert[1], sizeof(ep->encrypt_cert[1]), second);
		ep->n_encrypt_cert = 2;
	}
}

/* The certificate file's DER as one base64 line. */
static char *cert_base64(const char *path)
{
	X509 *c = NULL;
	unsigned char *der = NULL;
	int len;
	char *b64;

	assert_ok(pki_cert_load(&c, path));
	len = i2d_X509(c, &der);
	assert_true(len > 0);
	b64 = malloc((size_t)len * 2 + 4);
	assert_non_null(b64);
	EVP_EncodeBlock((unsigned char *)b64, der, len);
	OPENSSL_free(der);
	X509_free(c);
	return b64;
}

/* The bytes without whitespace, NUL-terminated (base64 may be wrapped). */
static char *squeezed(const gw_buf *b)
{
	char *out = malloc(b->len + 1), *w = out;

	assert_non_null(out);
	for (size_t i = 0; i < b->len; i++)
		if (!strchr(" \t\r\n", b->data[i]))
			*w++ = (char)b->data[i];
	*w = '\0';
	return out;
}

static size_t occurrences(const gw_buf *b, const char *text)
{
	size_t n = 0;

	for (const char *p = (const char *)b->data; (p = strstr(p, text)) != NULL; p++)
		n++;
	return n;
}

static int run(const char *cmd)
{
	int status = system(cmd);

	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The one message of the school notice: its signed bytes, verified. */
static const char *school_message(gw_buf *body)
{
	static char id[37];
	struct rows r;

	list("INTAKE-2027-000006", 0, &r);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.m[0].state, MSG_QUEUED);
	assert_string_equal(r.m[0].endpoint, "oslo-school");
	snprintf(id, sizeof(id), "%s", r.m[0].message_id);
	signed_body(id, body);
	return id;
}

static void assert_encrypted_for(const gw_buf *body, const char *const *certs, size_t n)
{
	char *flat = squeezed(body);

	assert_true(has(body, "<xenc:EncryptedData"));
	assert_true(has(body, "Type=\"http://www.w3.org/2001/04/xmlenc#Element\""));
	assert_true(has(body, "Algorithm=\"http://www.w3.org/2009/xmlenc11#aes256-gcm\""));
	assert_true(has(body, "Algorithm=\"http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p\""));
	assert_int_equal(occurrences(body, "<xenc:EncryptedKey"), n);
	for (size_t i = 0; i < n; i++) {
		char *b64 = cert_base64(certs[i]);
		if (!strstr(flat, b64))
			fail_msg("the EncryptedKey does not name certificate %s", certs[i]);
		free(b64);
	}
	/* Nothing of the notice in clear: not the Need, not the person. */
	assert_false(has(body, "Wants to finish school"));
	assert_false(has(body, "category="));
	assert_false(has(body, NIN));
	assert_false(has(body, "Intakeperson"));
	assert_false(has(body, "<Notice "));
	/* The signature comes after: encrypt, then sign. */
	assert_true(strstr((char *)body->data, "<xenc:EncryptedData") <
		    strstr((char *)body->data, "<ds:Signature"));
	free(flat);
}

/* Our own decryption (what the receiver uses) gives back the filtered Notice. */
static void we_decrypt(const gw_buf *body, const char *key, const char *cert)
{
	xmlenc_keys *k = NULL;
	xmlDocPtr doc;
	xmlNodePtr plain = NULL;
	xmlBufferPtr out = xmlBufferCreate();
	char cert_copy[PATH_MAX + 64], key_copy[PATH_MAX + 64];

	snprintf(key_copy, sizeof(key_copy), "%s", key);
	snprintf(cert_copy, sizeof(cert_copy), "%s", cert);
	assert_ok(xmlenc_keys_new(&k));
	assert_ok(xmlenc_keys_add(k, key_copy, cert_copy));
	assert_ok(xmlread_parse(&doc, body->data, body->len, 0, "message"));
	assert_ok(xmlenc_decrypt_element(k, message_body_content(doc), &plain));
	assert_true(xmlNodeDump(out, doc, plain, 0, 0) > 0);
	assert_non_null(strstr((const char *)xmlBufferContent(out), "Wants to finish school"));
	assert_null(strstr((const char *)xmlBufferContent(out), "Recipients"));
	assert_null(strstr((const char *)xmlBufferContent(out), "Consent"));
	xmlBufferFree(out);
	xmlFreeDoc(doc);
	xmlenc_keys_free(k);
}

static void test_encryption_then_signature_for_the_school(void **state)
{
	const char *certs[1];
	char cert[PATH_MAX + 64], path[PATH_MAX + 64], cmd[4 * PATH_MAX + 512];
	gw_buf body = GW_BUF_INIT, plain = GW_BUF_INIT;

	snprintf(cert, sizeof(cert), "%s", issued("school.pem"));
	certs[0] = cert;
	drop("encrypted-school.xml", "school.xml");
	take("school.xml", INTAKE_ACCEPTED);
	school_message(&body); /* signature verifies over the encrypted form */
	assert_encrypted_for(&body, certs, 1);
	assert_true(has(&body, "<To orgnr=\"" ORG_SCHOOL "\" service=\"school\"/>"));
	we_decrypt(&body, issued("school.key"), issued("school.pem"));

	/* Interop: the xmlsec1 command decrypts the message file we stored. */
	snprintf(path, sizeof(path), "%s/signed.xml", fx.dir);
	tu_write(path, body.data, body.len);
	snprintf(cmd, sizeof(cmd),
		 "xmlsec1 --decrypt --privkey-pem '%s' '%s' >'%s/plain.xml' 2>'%s/xmlsec1.err'",
		 issued("school.key"), path, fx.dir, fx.dir);
	assert_int_equal(run(cmd), 0);
	snprintf(path, sizeof(path), "%s/plain.xml", fx.dir);
	tu_read(path, &plain);
	assert_true(has(&plain, "<Notice"));
	assert_true(has(&plain, "<Need category=\"education\">Wants to finish school.</Need>"));
	assert_true(has(&plain, "nin=\"" NIN "\""));
	assert_false(has(&plain, "Recipients"));
	assert_false(has(&plain, "Consent"));
	assert_false(has(&plain, "EncryptedData"));

	/* The wrong key does not open it. */
	snprintf(path, sizeof(path), "%s/signed.xml", fx.dir);
	snprintf(cmd, sizeof(cmd), "xmlsec1 --decrypt --privkey-pem '%s' '%s' >/dev/null 2>&1",
		 tu_pki("nav.key"), path);
	assert_int_not_equal(run(cmd), 0);
	gw_buf_free(&body);
	gw_buf_free(&plain);
}

static void test_encryption_rollover_two_certificates(void **state)
{
	const char *certs[2];
	char a[PATH_MAX + 64], b[PATH_MAX + 64];
	gw_buf body = GW_BUF_INIT;

	snprintf(a, sizeof(a), "%s", issued("school.pem"));
	snprintf(b, sizeof(b), "%s", issued("school-next.pem"));
	certs[0] = a;
	certs[1] = b;
	school_certs(a, b);
	drop("encrypted-school.xml", "school.xml");
	take("school.xml", INTAKE_ACCEPTED);
	school_message(&body);
	assert_encrypted_for(&body, certs, 2);
	we_decrypt(&body, issued("school.key"), a); /* either key alone */
	we_decrypt(&body, issued("school-next.key"), b);
	gw_buf_free(&body);
}

/* The pair of a rollover: the old one expired, not refused, and left out. */
static void test_expired_certificate_left_out_beside_a_valid_one(void **state)
{
	const char *certs[1];
	char expired[PATH_MAX + 64], valid[PATH_MAX + 64];
	gw_buf body = GW_BUF_INIT;

	snprintf(expired, sizeof(expired), "%s", issued("school-expired.pem"));
	snprintf(valid, sizeof(valid), "%s", issued("school.pem"));
	certs[0] = valid;
	school_certs(expired, valid);
	drop("encrypted-school.xml", "school.xml");
	take("school.xml", INTAKE_ACCEPTED);
	school_message(&body);
	assert_encrypted_for(&body, certs, 1);
	gw_buf_free(&body);
}

/* The school's message with an unusable certificate: held with why, no bytes. */
static void assert_school_held(const char *reason)
{
	struct store_message m;
	struct rows r;

	list("INTAKE-2027-000006", 0, &r);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.m[0].state, MSG_HELD);
	assert_string_equal(r.m[0].reason, reason);
	assert_string_equal(r.m[0].endpoint, "oslo-school");
	memset(&m, 0, sizeof(m));
	assert_ok(fx.st->ops->message_get(fx.st, r.m[0].message_id, &m));
	assert_int_equal(m.signed_bytes.len, 0); /* never in clear */
	store_message_clear(&m);
}

static void test_unusable_certificate_holds_with_reason(void **state)
{
	char path[PATH_MAX + 64];

	snprintf(path, sizeof(path), "%s", issued("school-expired.pem"));
	school_certs(path, NULL);
	drop("encrypted-school.xml", "school.xml");
	take("school.xml", INTAKE_ACCEPTED);
	assert_school_held("encryption certificate unusable: endpoint oslo-school certificate 1 "
			   "(school-expired.pem) has expired");
}

static void test_ec_certificate_holds_with_reason(void **state)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s", tu_pki("nav-ec.pem"));
	school_certs(path, NULL);
	drop("encrypted-school.xml", "school.xml");
	take("school.xml", INTAKE_ACCEPTED);
	assert_school_held("encryption certificate unusable: endpoint oslo-school certificate 1 "
			   "(nav-ec.pem) is not an RSA certificate");
}

static void test_missing_certificate_holds_with_reason(void **state)
{
	char path[PATH_MAX + 32];

	snprintf(path, sizeof(path), "%s/gone.pem", fx.dir);
	school_certs(path, NULL);
	drop("encrypted-school.xml", "school.xml");
	take("school.xml", INTAKE_ACCEPTED);
	assert_school_held("encryption certificate unusable: endpoint oslo-school certificate 1 "
			   "(gone.pem): No such file or directory");
}

/* ---- checked when loaded: organisation, key strength, trust ---- */

#define HELD_SCHOOL "encryption certificate unusable: endpoint oslo-school certificate "
/* The reason for certificate 1 (FILE) refused by OpenSSL's chain check with WHY. */
#define NOT_TRUSTED(file, why)                                                         \
	HELD_SCHOOL "1 (" file ") does not pass the endpoint's trust anchors and CRLs: " \
		    "certificate not trusted: " why " (depth 0)"

static void school_orgnr(const char *orgnr)
{
	struct config_endpoint *ep = endpoint_named(&fx.cfg, "oslo-school");

	snprintf(ep->orgnr, sizeof(ep->orgnr), "%s", orgnr);
}

/* The school's notice with this one certificate: held with this reason, nothing signed. */
static void expect_school_held(const char *cert, const char *reason)
{
	char path[PATH_MAX + 64];

	snprintf(path, sizeof(path), "%s", cert);
	school_certs(path, NULL);
	drop("encrypted-school.xml", "school.xml");
	take("school.xml", INTAKE_ACCEPTED);
	assert_school_held(reason);
}

static void test_certificate_of_another_organisation_holds(void **state)
{
	expect_school_held(tu_pki("housing.pem"),
			   HELD_SCHOOL "1 (housing.pem) belongs to organisation " ORG_HOUSING
				       ", not the endpoint's " ORG_SCHOOL);
}

static void test_certificate_without_organisation_holds(void **state)
{
	expect_school_held(issued("no-org.pem"),
			   HELD_SCHOOL "1 (no-org.pem) names no organisation, not the endpoint's "
				       ORG_SCHOOL);
}

static void test_weak_certificate_holds(void **state)
{
	expect_school_held(issued("school-weak.pem"),
			   HELD_SCHOOL "1 (school-weak.pem) has too weak a key: RSA 1024, 80 bits "
				       "of security, at least 112 (RSA 2048) needed");
}

/* untrusted.pem names the gateway's organisation: the school endpoint is made its. */
static void test_untrusted_certificate_holds(void **state)
{
	school_orgnr(ORG_GATEWAY);
	expect_school_held(tu_pki("untrusted.pem"),
			   NOT_TRUSTED("untrusted.pem", "unable to get local issuer certificate"));
}

/* The endpoint's own anchors replace the identity's: the development CA is not among them. */
static void test_certificate_outside_the_endpoints_anchors_holds(void **state)
{
	struct config_endpoint *ep = endpoint_named(&fx.cfg, "oslo-school");

	set_path(ep->trust[0], sizeof(ep->trust[0]), tu_pki("untrusted-ca.pem"));
	ep->n_trust = 1;
	expect_school_held(issued("school.pem"),
			   NOT_TRUSTED("school.pem", "unable to get local issuer certificate"));
}

static void use_ca_crl(void)
{
	set_path(fx.cfg.identity.crl[0], sizeof(fx.cfg.identity.crl[0]), tu_pki("ca.crl"));
	fx.cfg.identity.n_crl = 1;
}

static void test_revoked_certificate_holds(void **state)
{
	school_orgnr(ORG_GATEWAY);
	use_ca_crl();
	expect_school_held(tu_pki("revoked.pem"),
			   NOT_TRUSTED("revoked.pem", "certificate revoked"));
}

/* One refused certificate of a pair holds the message: it is not left out in silence. */
static void test_refused_certificate_of_a_pair_holds(void **state)
{
	char good[PATH_MAX + 64], other[PATH_MAX + 64];

	snprintf(good, sizeof(good), "%s", issued("school.pem"));
	snprintf(other, sizeof(other), "%s", tu_pki("nav.pem"));
	school_certs(good, other);
	drop("encrypted-school.xml", "school.xml");
	take("school.xml", INTAKE_ACCEPTED);
	assert_school_held(HELD_SCHOOL "2 (nav.pem) belongs to organisation " ORG_NAV
				       ", not the endpoint's " ORG_SCHOOL);
}

/* After a reload (intake_forget_certs) the cached certificates meet the new CRLs. */
static void test_forgotten_certificates_are_checked_again(void **state)
{
	gw_buf b = GW_BUF_INIT;
	struct rows r;
	char *at;

	school_orgnr(ORG_GATEWAY);
	school_certs(tu_pki("revoked.pem"), NULL); /* no CRL configured yet */
	drop("encrypted-school.xml", "school.xml");
	take("school.xml", INTAKE_ACCEPTED);
	list("INTAKE-2027-000006", 1, &r);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.m[0].state, MSG_QUEUED);

	use_ca_crl();
	intake_forget_certs(&fx.in);
	tu_read(tu_src("tests/data/intake/encrypted-school.xml"), &b);
	at = strstr((char *)b.data, "revision=\"1\"");
	assert_non_null(at);
	at[10] = '2';
	drop_bytes("school-r2.xml", b.data, b.len);
	take("school-r2.xml", INTAKE_ACCEPTED);
	list("INTAKE-2027-000006", 2, &r);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.m[0].state, MSG_HELD);
	assert_string_equal(r.m[0].reason,
			    NOT_TRUSTED("revoked.pem", "certificate revoked"));
	gw_buf_free(&b);
}

/* A certificate file replaced in place is read again (the cache follows the file). */
static void test_certificate_cache_follows_the_file(void **state)
{
	char path[PATH_MAX + 32];
	gw_buf pem = GW_BUF_INIT, body = GW_BUF_INIT;
	const char *certs[1];
	struct rows r;
	int released = -1;

	snprintf(path, sizeof(path), "%s/school-enc.pem", fx.dir);
	tu_read(issued("school-expired.pem"), &pem);
	tu_write(path, pem.data, pem.len);
	school_certs(path, NULL);
	drop("encrypted-school.xml", "school.xml");
	take("school.xml", INTAKE_ACCEPTED);
	list("INTAKE-2027-000006", 0, &r);
	assert_int_equal(r.m[0].state, MSG_HELD);

	/* The operator installs the new certificate under the same name. */
	unlink(path);
	tu_read(issued("school.pem"), &pem);
	tu_write(path, pem.data, pem.len);
	assert_ok(intake_release_held(&fx.in, &released));
	assert_int_equal(released, 1);
	school_message(&body);
	certs[0] = path;
	assert_encrypted_for(&body, certs, 1);
	gw_buf_free(&pem);
	gw_buf_free(&body);
}

/* ---- held -> queued when the cause goes away ---- */

/* fx.cfg without the nav endpoint. */
static void config_without_nav(struct gw_config *out)
{
	size_t w = 0;

	*out = fx.cfg;
	for (size_t i = 0; i < fx.cfg.n_endpoints; i++)
		if (strcmp(fx.cfg.endpoints[i].name, "oslo-nav") != 0)
			out->endpoints[w++] = fx.cfg.endpoints[i];
	out->n_endpoints = w;
}

static void test_release_held_when_endpoint_appears(void **state)
{
	static struct gw_config without;
	struct rows r;
	const struct store_message *nav;
	gw_buf body = GW_BUF_INIT;
	char nav_id[37];
	int released = -1;

	config_without_nav(&without);
	fx.in.cfg = &without;
	/* Another notice took the name first: this one is kept as r1.xml.1. */
	drop("transfer.xml", "r1.xml");
	take("r1.xml", INTAKE_ACCEPTED);
	drop("release-r1.xml", "r1.xml");
	take("r1.xml", INTAKE_ACCEPTED);
	assert_true(present(fx.spool.processed, "r1.xml.1"));
	list("INTAKE-2027-000001", 0, &r);
	nav = by_service(&r, "nav");
	assert_int_equal(nav->state, MSG_HELD);
	assert_string_equal(nav->reason, "no endpoint");
	snprintf(nav_id, sizeof(nav_id), "%s", nav->message_id);

	/* Still no nav: nothing changes. */
	assert_ok(intake_release_held(&fx.in, &released));
	assert_int_equal(released, 0);

	/* The reload brings nav. */
	fx.in.cfg = &fx.cfg;
	assert_ok(intake_release_held(&fx.in, &released));
	assert_int_equal(released, 1);
	list("INTAKE-2027-000001", 0, &r);
	nav = by_service(&r, "nav");
	assert_string_equal(nav->message_id, nav_id);
	assert_int_equal(nav->state, MSG_QUEUED);
	assert_string_equal(nav->reason, "");
	assert_string_equal(nav->endpoint, "oslo-nav");
	assert_string_equal(nav->recipient_orgnr, ORG_NAV);
	assert_int_equal(nav->next_attempt_ms, NOW);
	assert_int_equal(nav->deadline_ms, DEADLINE);
	signed_body(nav_id, &body);
	assert_true(has(&body, nav_id));
	assert_true(has(&body, "<To orgnr=\"" ORG_NAV "\" service=\"nav\"/>"));
	assert_true(has(&body, "<NoticeRef id=\"INTAKE-2027-000001\" revision=\"1\" kind=\"release\"/>"));
	assert_true(has(&body, "category=\"income\""));
	assert_true(has(&body, "category=\"employment\""));
	assert_false(has(&body, "category=\"housing\""));
	assert_false(has(&body, "category=\"mental-health\""));
	assert_false(has(&body, "Recipients"));
	assert_false(has(&body, "Consent"));

	/* Done once: a second call finds nothing to release. */
	assert_ok(intake_release_held(&fx.in, &released));
	assert_int_equal(released, 0);
	gw_buf_free(&body);
}

static void test_release_needs_the_unaltered_original(void **state)
{
	static struct gw_config without;
	char path[PATH_MAX + 64];
	gw_buf b = GW_BUF_INIT;
	struct rows r;
	int released = -1;

	config_without_nav(&without);
	fx.in.cfg = &without;
	drop("release-r1.xml", "r1.xml");
	take("r1.xml", INTAKE_ACCEPTED);
	/* Someone edits the kept original: it is not used. */
	snprintf(path, sizeof(path), "%s/r1.xml", fx.spool.processed);
	tu_read(path, &b);
	b.data[b.len - 2] = ' ';
	unlink(path);
	tu_write(path, b.data, b.len);
	fx.in.cfg = &fx.cfg;
	assert_ok(intake_release_held(&fx.in, &released));
	assert_int_equal(released, 0);
	list("INTAKE-2027-000001", 0, &r);
	assert_int_equal(by_service(&r, "nav")->state, MSG_HELD);
	assert_string_equal(by_service(&r, "nav")->reason, "no endpoint");
	/* Gone (expired from processed/): still held. */
	unlink(path);
	assert_ok(intake_release_held(&fx.in, &released));
	assert_int_equal(released, 0);
	gw_buf_free(&b);
}

static void test_no_consent_is_never_released(void **state)
{
	struct rows r;
	int released = -1;

	drop("refuse-health.xml", "refuse.xml");
	take("refuse.xml", INTAKE_ACCEPTED);
	assert_ok(intake_release_held(&fx.in, &released));
	assert_int_equal(released, 0);
	list("INTAKE-2027-000002", 0, &r);
	assert_int_equal(by_service(&r, "health")->state, MSG_HELD);
	assert_string_equal(by_service(&r, "health")->reason, "no consent");
}

/* ---- scans in chunks ---- */

/* stderr into a file while a test looks at the log lines (here and in "the log"). */
static int saved_stderr = -1;

static void capture_begin(const char *name)
{
	char path[PATH_MAX + 256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", fx.dir, name);
	fflush(stderr);
	saved_stderr = dup(STDERR_FILENO);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(saved_stderr >= 0 && fd >= 0);
	dup2(fd, STDERR_FILENO);
	close(fd);
}

static void capture_end(const char *name, gw_buf *out)
{
	char path[PATH_MAX + 256];

	fflush(stderr);
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	saved_stderr = -1;
	snprintf(path, sizeof(path), "%s/%s", fx.dir, name);
	tu_read(path, out);
}

/* release-r1.xml as notice INTAKE-2027-9NNNNN, dropped as NAME. */
static void drop_numbered(const char *name, int number)
{
	gw_buf b = GW_BUF_INIT;
	char id[32], *at;

	tu_read(tu_src("tests/data/intake/release-r1.xml"), &b);
	at = strstr((char *)b.data, "INTAKE-2027-000001");
	assert_non_null(at);
	snprintf(id, sizeof(id), "INTAKE-2027-9%05d", number);
	memcpy(at, id, strlen(id));
	drop_bytes(name, b.data, b.len);
	gw_buf_free(&b);
}

static long long queued_now(void)
{
	struct store_counts c;

	assert_ok(fx.st->ops->counts(fx.st, &c));
	return c.by_state[MSG_QUEUED];
}

static void expect_chain_intact(void)
{
	struct audit_check c;
	char where[PATH_MAX + 64];

	assert_int_equal(audit_verify(fx.st, NULL, &c, where, sizeof(where)), 0);
	assert_true(c.intact);
}

/*
 * A scan step takes at most one chunk of INTAKE_CHUNK_FILES files, in name
 * order, with ONE commit (one audit-head line) for the chunk; the files of
 * a committed chunk are in processed/, the rest still in incoming/new.
 * Further steps work through the same listing; a file dropped meanwhile
 * waits for the next listing.
 */
static void test_scan_steps_take_one_chunk_per_commit(void **state)
{
	int n = INTAKE_CHUNK_FILES + 6, accepted = -1, rejected = -1, duplicates = -1;
	char name[32];
	gw_buf log = GW_BUF_INIT;
	bool more = false;

	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "n%03d.xml", i);
		drop_numbered(name, i);
	}
	capture_begin("chunk1.log");
	assert_ok(intake_scan_step(&fx.in, INTAKE_CHUNK_FILES, &accepted, &rejected, &duplicates,
				   &more));
	capture_end("chunk1.log", &log);
	assert_int_equal(accepted, INTAKE_CHUNK_FILES);
	assert_int_equal(rejected + duplicates, 0);
	assert_true(more);
	assert_int_equal(occurrences(&log, "event=audit-head"), 1);
	assert_int_equal(occurrences(&log, "event=accepted"), INTAKE_CHUNK_FILES);
	assert_int_equal(queued_now(), 3 * INTAKE_CHUNK_FILES);
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "n%03d.xml", i);
		assert_true(present(i < INTAKE_CHUNK_FILES ? fx.spool.processed : fx.spool.new_dir,
				    name));
	}
	expect_chain_intact();

	/* Dropped after the listing was taken ("a" sorts first): next listing. */
	drop("refuse-health.xml", "a-late.xml");
	capture_begin("chunk2.log");
	assert_ok(intake_scan_step(&fx.in, INTAKE_CHUNK_FILES, &accepted, &rejected, &duplicates,
				   &more));
	capture_end("chunk2.log", &log);
	assert_int_equal(accepted, 6);
	assert_false(more);
	assert_int_equal(occurrences(&log, "event=audit-head"), 1);
	assert_true(present(fx.spool.new_dir, "a-late.xml"));
	assert_ok(intake_scan_step(&fx.in, INTAKE_CHUNK_FILES, &accepted, &rejected, &duplicates,
				   &more));
	assert_int_equal(accepted, 1);
	assert_false(more);
	assert_false(present(fx.spool.new_dir, "a-late.xml"));
	assert_int_equal(queued_now(), 3 * n + 2); /* a-late: health held, no consent */
	expect_chain_intact();
	gw_buf_free(&log);
}

/*
 * Read-ahead (the sender's reader thread): a helper intake with its own
 * signer and no store reads, parses and signs the next chunk on another
 * thread, and leaves the store, the spool and the log alone meanwhile; the
 * step then gives the same outcomes, log lines and rows as it would have
 * alone: a duplicate, a rejection, a recipient held for consent, and
 * messages whose signed bytes verify. A read-ahead of other files is not
 * used (and freed).
 */
static void *ahead_thread(void *a)
{
	intake_ahead_run(a);
	return NULL;
}

/* The reader thread's intake: the same configuration and spool, its own signer, no store. */
static void helper_open(struct intake *helper, signer **sig)
{
	memset(helper, 0, sizeof(*helper));
	assert_ok(signer_open(sig, tu_pki("gateway.key"), tu_pki("gateway.pem")));
	helper->cfg = fx.in.cfg;
	helper->sig = *sig;
	helper->pseudonym_key = fx.in.pseudonym_key;
	helper->pseudonym_key_len = fx.in.pseudonym_key_len;
	helper->spool = fx.in.spool;
	helper->now_ms = fx.in.now_ms;
}

/*
 * a.xml is taken; the reader reads n.xml ahead; then a producer renames
 * `sample` over n.xml (the Maildir way: written in tmp/, renamed) and the
 * step runs with the read-ahead. Its log in *log; its return code back.
 */
static int step_after_replacing_read_ahead(const char *sample, const char *log_name, gw_buf *log)
{
	struct intake helper;
	struct intake_ahead *ahead = NULL;
	signer *helper_sig = NULL;
	int accepted = 0, rejected = 0, duplicates = 0, rc;
	bool more = false;
	gw_buf b = GW_BUF_INIT;
	char from[PATH_MAX + 64], to[PATH_MAX + 64];

	drop("transfer.xml", "a.xml");
	assert_ok(intake_scan_step(&fx.in, 1, &accepted, &rejected, &duplicates, &more));
	assert_true(more); /* a.xml taken; the listing goes on with n.xml */
	helper_open(&helper, &helper_sig);
	assert_ok(intake_ahead_new(&fx.in, &helper, 0, &ahead));
	intake_ahead_run(ahead);
	snprintf(from, sizeof(from), "tests/data/intake/%s", sample);
	tu_read(tu_src(from), &b);
	snprintf(from, sizeof(from), "%s/n.xml", fx.spool.tmp);
	snprintf(to, sizeof(to), "%s/n.xml", fx.spool.new_dir);
	tu_write(from, b.data, b.len);
	assert_int_equal(rename(from, to), 0);
	intake_ahead_ready(&fx.in, ahead);
	capture_begin(log_name);
	rc = intake_scan_step(&fx.in, INTAKE_CHUNK_FILES, &accepted, &rejected, &duplicates, &more);
	capture_end(log_name, log);
	gw_buf_free(&b);
	intake_close(&helper);
	signer_close(helper_sig);
	return rc;
}

/*
 * A producer reuses a name: another notice renamed over n.xml after the
 * reader read it ahead. What was read is committed; the file now under the
 * name is neither moved nor rejected in its name, and the next scan takes it.
 */
static void test_file_replaced_after_read_ahead_stays(void **state)
{
	int accepted = 0, rejected = 0, duplicates = 0;
	gw_buf log = GW_BUF_INIT;
	struct rows r;

	drop("release-r1.xml", "n.xml");
	/* a file stays in incoming/new: the sender looks again soon */
	assert_int_equal(step_after_replacing_read_ahead("release-r2.xml", "replaced.log", &log),
			 GW_ETEMP);
	assert_int_equal(occurrences(&log, "event=replaced-before-move"), 1);
	assert_true(present(fx.spool.new_dir, "n.xml"));
	list("INTAKE-2027-000001", 1, &r);
	assert_int_equal(r.n, 3); /* what was read */

	assert_ok(intake_scan(&fx.in, &accepted, &rejected, &duplicates));
	assert_int_equal(accepted, 1);
	assert_false(present(fx.spool.new_dir, "n.xml"));
	list("INTAKE-2027-000001", 2, &r);
	assert_int_equal(r.n, 3); /* and what replaced it */
	gw_buf_free(&log);
}

/* The same when what was read ahead is refused: the new file is not rejected for it. */
static void test_replaced_after_a_refused_read_ahead_stays(void **state)
{
	int accepted = 0, rejected = 0, duplicates = 0;
	gw_buf log = GW_BUF_INIT;
	struct rows r;

	drop_bytes("n.xml", "<bad", 4);
	assert_int_equal(step_after_replacing_read_ahead("release-r1.xml", "replaced-bad.log", &log),
			 GW_ETEMP);
	assert_int_equal(occurrences(&log, "event=replaced-before-move"), 1);
	assert_int_equal(occurrences(&log, "event=rejected"), 0);
	assert_false(present(fx.spool.rejected, "n.xml"));

	assert_ok(intake_scan(&fx.in, &accepted, &rejected, &duplicates));
	assert_int_equal(accepted, 1);
	list("INTAKE-2027-000001", 1, &r);
	assert_int_equal(r.n, 3);
	gw_buf_free(&log);
}

/*
 * A message the partner refused as stale is signed again from its notice in
 * processed/, under the same MessageId and within its old horizon; with
 * the notice gone from processed/ it cannot be, and fails for operators.
 */
static void test_stale_is_signed_again_or_fails_without_its_notice(void **state)
{
	struct rows r1;
	char id[37], path[PATH_MAX + 64];
	int64_t deadline;
	int released = -1;

	drop("release-r1.xml", "r1.xml");
	take("r1.xml", INTAKE_ACCEPTED);
	list("INTAKE-2027-000001", 1, &r1);
	snprintf(id, sizeof(id), "%s", by_service(&r1, "nav")->message_id);
	deadline = by_service(&r1, "nav")->deadline_ms;
	assert_ok(fx.st->ops->message_update(fx.st, id, MSG_QUEUED, MSG_SENDING, NULL, -1, 0));
	assert_ok(fx.st->ops->message_update(fx.st, id, MSG_SENDING, MSG_HELD, STORE_HELD_STALE,
					     -1, 1));
	assert_ok(intake_release_stale(&fx.in, &released));
	assert_int_equal(released, 1);
	list("INTAKE-2027-000001", 1, &r1);
	assert_int_equal(by_service(&r1, "nav")->state, MSG_QUEUED);
	assert_string_equal(by_service(&r1, "nav")->message_id, id);
	assert_int_equal(by_service(&r1, "nav")->deadline_ms, deadline);

	assert_ok(fx.st->ops->message_update(fx.st, id, MSG_QUEUED, MSG_SENDING, NULL, -1, 0));
	assert_ok(fx.st->ops->message_update(fx.st, id, MSG_SENDING, MSG_HELD, STORE_HELD_STALE,
					     -1, 1));
	snprintf(path, sizeof(path), "%s/r1.xml", fx.spool.processed);
	assert_int_equal(unlink(path), 0);
	assert_ok(intake_release_stale(&fx.in, &released));
	assert_int_equal(released, 0);
	list("INTAKE-2027-000001", 1, &r1);
	assert_int_equal(by_service(&r1, "nav")->state, MSG_FAILED);
	assert_non_null(strstr(by_service(&r1, "nav")->reason, "cannot be signed again"));
}

static void test_read_ahead_same_outcomes(void **state)
{
	int accepted = -1, rejected = -1, duplicates = -1;
	struct intake_ahead *ahead = NULL, *none = NULL;
	struct intake helper;
	signer *helper_sig = NULL;
	gw_buf log = GW_BUF_INIT, bytes = GW_BUF_INIT;
	struct rows r;
	bool more = false;
	pthread_t thread;
	char name[32];

	for (int i = 0; i < INTAKE_CHUNK_FILES; i++) {
		snprintf(name, sizeof(name), "a%03d.xml", i);
		drop_numbered(name, i);
	}
	drop_numbered("b000.xml", 0);              /* the bytes of a000: a duplicate */
	drop_bytes("b001.xml", "<Notice", 7);      /* not XML: rejected */
	drop("refuse-health.xml", "b002.xml");     /* health held: no consent */
	for (int i = 3; i < INTAKE_CHUNK_FILES; i++) {
		snprintf(name, sizeof(name), "b%03d.xml", i);
		drop_numbered(name, 100 + i);
	}
	assert_ok(intake_scan_step(&fx.in, INTAKE_CHUNK_FILES, &accepted, &rejected, &duplicates,
				   &more));
	assert_int_equal(accepted, INTAKE_CHUNK_FILES);
	assert_true(more);

	helper_open(&helper, &helper_sig);
	assert_int_equal(intake_ahead_new(&fx.in, &helper, INTAKE_CHUNK_FILES, &none),
			 GW_ENOTFOUND); /* nothing after the b files */
	assert_ok(intake_ahead_new(&fx.in, &helper, 0, &ahead));
	capture_begin("ahead.log");
	assert_int_equal(pthread_create(&thread, NULL, ahead_thread, ahead), 0);
	assert_int_equal(pthread_join(thread, NULL), 0);
	capture_end("ahead.log", &log);
	assert_int_equal(log.len, 0);
	assert_int_equal(queued_now(), 3 * INTAKE_CHUNK_FILES);
	assert_true(present(fx.spool.new_dir, "b000.xml"));
	assert_true(present(fx.spool.new_dir, "b001.xml"));

	intake_ahead_ready(&fx.in, ahead);
	capture_begin("ahead-step.log");
	assert_ok(intake_scan_step(&fx.in, INTAKE_CHUNK_FILES, &accepted, &rejected, &duplicates,
				   &more));
	capture_end("ahead-step.log", &log);
	assert_false(more);
	assert_int_equal(accepted, INTAKE_CHUNK_FILES - 2);
	assert_int_equal(rejected, 1);
	assert_int_equal(duplicates, 1);
	assert_int_equal(occurrences(&log, "event=accepted"), INTAKE_CHUNK_FILES - 2);
	assert_int_equal(occurrences(&log, "event=rejected"), 1);
	assert_int_equal(occurrences(&log, "event=duplicate"), 1);
	assert_int_equal(occurrences(&log, "event=audit-head"), 1);
	assert_true(present(fx.spool.rejected, "b001.xml"));
	assert_false(present(fx.spool.new_dir, "b000.xml"));
	assert_int_equal(queued_now(), 3 * INTAKE_CHUNK_FILES + 2 + 3 * (INTAKE_CHUNK_FILES - 3));
	list("INTAKE-2027-900105", 0, &r);
	assert_int_equal(r.n, 3);
	for (size_t i = 0; i < r.n; i++)
		signed_body(r.m[i].message_id, &bytes);
	expect_chain_intact();

	/* A read-ahead of files the step does not take next is not used: the
	 * step reads them itself (d002 was replaced after the read-ahead). */
	drop_numbered("d000.xml", 300);
	drop_numbered("d001.xml", 301);
	drop_numbered("d002.xml", 302);
	assert_ok(intake_scan_step(&fx.in, 1, &accepted, &rejected, &duplicates, &more));
	assert_true(more); /* d000 taken; d001 and d002 left */
	assert_ok(intake_ahead_new(&fx.in, &helper, 1, &ahead)); /* d002 alone */
	intake_ahead_run(ahead);
	drop_numbered("d002.xml", 402);
	intake_ahead_ready(&fx.in, ahead);
	assert_ok(intake_scan_step(&fx.in, INTAKE_CHUNK_FILES, &accepted, &rejected, &duplicates,
				   &more));
	assert_int_equal(accepted, 2);
	assert_false(more);
	list("INTAKE-2027-900402", 0, &r);
	assert_int_equal(r.n, 3);
	list("INTAKE-2027-900302", 0, &r);
	assert_int_equal(r.n, 0);
	expect_chain_intact();

	intake_close(&helper);
	signer_close(helper_sig);
	gw_buf_free(&bytes);
	gw_buf_free(&log);
}

/* The store with its outermost commit replaced (wrap_commit). */
static const struct store_ops *real_ops;
static struct store_ops wrapped_ops;
static int wrap_depth;
static bool wrap_crash; /* false: the outermost commit fails; true: commit, then _exit */

static int wrap_begin(store *st)
{
	int rc = real_ops->begin(st);

	if (rc == 0)
		wrap_depth++;
	return rc;
}

static int wrap_rollback(store *st)
{
	if (wrap_depth > 0)
		wrap_depth--;
	return real_ops->rollback(st);
}

static int wrap_commit(store *st)
{
	int rc;

	if (wrap_depth != 1) {
		if (wrap_depth > 0)
			wrap_depth--;
		return real_ops->commit(st);
	}
	wrap_depth = 0;
	if (!wrap_crash) {
		gw_error_set(GW_ERROR, "test: the database's disk failed at COMMIT");
		real_ops->rollback(st);
		return GW_ERROR;
	}
	rc = real_ops->commit(st);
	_exit(rc == 0 ? 0 : 3); /* a crash right after the COMMIT, before any move */
}

static void wrap_store(store *st, bool crash)
{
	real_ops = st->ops;
	wrapped_ops = *st->ops;
	wrapped_ops.begin = wrap_begin;
	wrapped_ops.commit = wrap_commit;
	wrapped_ops.rollback = wrap_rollback;
	wrap_depth = 0;
	wrap_crash = crash;
	st->ops = &wrapped_ops;
}

static void unwrap_store(store *st)
{
	st->ops = real_ops;
}

/*
 * The chunk's COMMIT fails: every file that waited for it (a new notice, a
 * duplicate of a committed one, a revision conflict judged against the
 * transaction) stays in incoming/new with its intake-failed line and
 * nothing of it is stored; a file rejected unread or unparsed is rejected
 * at once, as always. The next scan takes each exactly once.
 */
static void test_failed_chunk_commit_keeps_every_file(void **state)
{
	int accepted = -1, rejected = -1, duplicates = -1;
	struct store_notice n;
	gw_buf log = GW_BUF_INIT;
	struct rows r;

	drop("release-r1.xml", "a-first.xml");
	take("a-first.xml", INTAKE_ACCEPTED);
	drop("release-r1.xml", "b-dup.xml");
	drop("refuse-health.xml", "c-new.xml");
	drop("release-r1-conflict.xml", "d-conflict.xml");
	drop_bytes("e-broken.xml", "<x", 2);

	wrap_store(fx.st, false);
	capture_begin("failed.log");
	assert_true(intake_scan(&fx.in, &accepted, &rejected, &duplicates) < 0);
	capture_end("failed.log", &log);
	unwrap_store(fx.st);
	assert_non_null(strstr(gw_error_last(), "3 file(s) stay in incoming/new"));
	assert_int_equal(accepted, 0);
	assert_int_equal(duplicates, 0);
	assert_int_equal(rejected, 1);
	assert_reason_file("e-broken.xml", "malformed");
	assert_true(present(fx.spool.new_dir, "b-dup.xml"));
	assert_true(present(fx.spool.new_dir, "c-new.xml"));
	assert_true(present(fx.spool.new_dir, "d-conflict.xml"));
	assert_false(present(fx.spool.rejected, "d-conflict.xml"));
	assert_false(present(fx.spool.processed, "b-dup.xml"));
	assert_int_equal(fx.st->ops->notice_get(fx.st, "INTAKE-2027-000002", 1, &n),
			 GW_ENOTFOUND);
	assert_int_equal(occurrences(&log, "event=intake-failed"), 3);
	assert_int_equal(occurrences(&log, "the database's disk failed at COMMIT"), 3);
	assert_int_equal(occurrences(&log, "nothing of it was stored; it stays in incoming/new"),
			 3);
	assert_true(has(&log, "event=intake-failed file=c-new.xml notice=INTAKE-2027-000002"));
	assert_false(has(&log, "event=accepted"));
	assert_false(has(&log, "event=audit-head"));

	assert_ok(intake_scan(&fx.in, &accepted, &rejected, &duplicates));
	assert_int_equal(accepted, 1);
	assert_int_equal(duplicates, 1);
	assert_int_equal(rejected, 1);
	assert_true(present(fx.spool.processed, "b-dup.xml"));
	assert_true(present(fx.spool.processed, "c-new.xml"));
	assert_reason_file("d-conflict.xml", "revision-conflict");
	list("INTAKE-2027-000001", 0, &r);
	assert_int_equal(r.n, 3);
	list("INTAKE-2027-000002", 0, &r);
	assert_int_equal(r.n, 3);
	expect_chain_intact();
	gw_buf_free(&log);
}

/*
 * Inside one chunk the later files see the earlier ones' uncommitted rows:
 * the same bytes again are a duplicate, a conflicting revision is refused;
 * both are carried out only after the COMMIT (with a failed COMMIT, both
 * would have stayed, as above).
 */
static void test_chunk_sees_its_own_files(void **state)
{
	int accepted = -1, rejected = -1, duplicates = -1;
	struct rows r;

	drop("release-r1.xml", "a-r1.xml");
	drop("release-r1-conflict.xml", "b-conflict.xml");
	drop("release-r1.xml", "c-same.xml");
	drop("release-r2.xml", "d-r2.xml");
	assert_ok(intake_scan(&fx.in, &accepted, &rejected, &duplicates));
	assert_int_equal(accepted, 2);
	assert_int_equal(rejected, 1);
	assert_int_equal(duplicates, 1);
	assert_reason_file("b-conflict.xml", "revision-conflict");
	assert_true(present(fx.spool.processed, "c-same.xml"));
	list("INTAKE-2027-000001", 1, &r);
	assert_int_equal(r.n, 3);
	for (size_t i = 0; i < r.n; i++)
		assert_int_equal(r.m[i].state, MSG_SUPERSEDED); /* by d-r2, same chunk */
	list("INTAKE-2027-000001", 2, &r);
	assert_int_equal(r.n, 3);
	expect_chain_intact();
}

/*
 * body runs in a child process with its own store connection and must end
 * it from inside the code under test, as a crash there would (exit 0).
 */
static void in_child_that_crashes(void (*body)(struct intake *child))
{
	int status = 0;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct intake child = fx.in;
		store *st;

		if (store_sqlite_open(&st, fx.cfg.gateway.db) < 0)
			_exit(2);
		child.st = st;
		child.certs = NULL;
		body(&child);
		_exit(4); /* not reached */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void scan_exiting_in_commit(struct intake *child)
{
	child->scan_open = false;
	wrap_store(child->st, true);
	intake_scan(child, NULL, NULL, NULL);
}

/*
 * A crash right after the chunk's COMMIT, before any file moved (a child
 * process with its own store connection exits inside the commit): every
 * file is still in incoming/new, its notice and messages committed. The
 * next scan recognises each by its SHA-256, moves it as a duplicate and
 * makes nothing new.
 */
static void test_crash_between_commit_and_moves(void **state)
{
	int accepted = -1, rejected = -1, duplicates = -1;
	struct store_counts before, after;
	struct store_notice n;

	drop("release-r1.xml", "a.xml");
	drop("refuse-health.xml", "b.xml");
	drop("transfer.xml", "c.xml");
	in_child_that_crashes(scan_exiting_in_commit);

	assert_true(present(fx.spool.new_dir, "a.xml"));
	assert_true(present(fx.spool.new_dir, "b.xml"));
	assert_true(present(fx.spool.new_dir, "c.xml"));
	assert_ok(fx.st->ops->notice_get(fx.st, "INTAKE-2027-000001", 1, &n));
	assert_ok(fx.st->ops->notice_get(fx.st, "INTAKE-2027-000002", 1, &n));
	assert_ok(fx.st->ops->notice_get(fx.st, "INTAKE-2027-000005", 1, &n));
	assert_ok(fx.st->ops->counts(fx.st, &before));
	assert_int_equal(before.by_state[MSG_QUEUED] + before.by_state[MSG_HELD], 7);

	assert_ok(intake_scan(&fx.in, &accepted, &rejected, &duplicates));
	assert_int_equal(accepted, 0);
	assert_int_equal(rejected, 0);
	assert_int_equal(duplicates, 3);
	assert_true(present(fx.spool.processed, "a.xml"));
	assert_true(present(fx.spool.processed, "b.xml"));
	assert_true(present(fx.spool.processed, "c.xml"));
	assert_false(present(fx.spool.new_dir, "a.xml"));
	assert_ok(fx.st->ops->counts(fx.st, &after));
	assert_memory_equal(&before, &after, sizeof(before));
	expect_chain_intact();
}

/* ---- moves: only the file read, and where it is when a move fails ---- */

/* A producer writes SAMPLE in incoming/tmp and renames it onto incoming/new/NAME. */
static void producer_renames(const char *sample, const char *name)
{
	char from[PATH_MAX + 64], to[PATH_MAX + 64];
	gw_buf b = GW_BUF_INIT;

	snprintf(from, sizeof(from), "tests/data/intake/%s", sample);
	tu_read(tu_src(from), &b);
	snprintf(from, sizeof(from), "%s/%s", fx.spool.tmp, name);
	snprintf(to, sizeof(to), "%s/%s", fx.spool.new_dir, name);
	tu_write(from, b.data, b.len);
	assert_int_equal(rename(from, to), 0);
	gw_buf_free(&b);
}

/*
 * The producer who reuses a name while intake has the file in hand: once
 * intake has read and hashed it (its duplicate check), SAMPLE is renamed
 * onto NAME.
 */
static const struct store_ops *seen_real;
static struct store_ops seen_ops;
static const char *seen_name, *seen_sample;

static int seen_then_replaced(store *st, const char *sha256, bool *seen)
{
	int rc = seen_real->intake_seen(st, sha256, seen);

	if (seen_name) {
		producer_renames(seen_sample, seen_name);
		seen_name = NULL;
	}
	return rc;
}

static void replace_when_seen(const char *name, const char *sample)
{
	seen_real = fx.st->ops;
	seen_ops = *fx.st->ops;
	seen_ops.intake_seen = seen_then_replaced;
	seen_name = name;
	seen_sample = sample;
	fx.st->ops = &seen_ops;
}

/* ... and again while intake has that one out of incoming/new to check it. */
static void take_name_again(const struct spool *sp, const char *name)
{
	(void)sp;
	producer_renames("refuse-health.xml", name);
}

/*
 * Without read-ahead, a notice refused when parsed: a producer renames a
 * good notice onto the name meanwhile. That one is neither rejected for
 * the broken one nor lost: it stays in incoming/new, and is taken.
 */
static void test_rejection_takes_only_the_file_read(void **state)
{
	enum intake_outcome outcome;
	gw_buf log = GW_BUF_INIT;
	struct rows r;

	drop_bytes("n.xml", "<bad", 4);
	replace_when_seen("n.xml", "release-r1.xml");
	capture_begin("only-read.log");
	assert_int_equal(intake_file(&fx.in, "n.xml", &outcome), GW_ETEMP);
	capture_end("only-read.log", &log);
	fx.st->ops = seen_real;
	assert_int_equal(occurrences(&log, "event=replaced-before-move file=n.xml"), 1);
	assert_true(has(&log, "next=\"nothing of what was read is kept or rejected; the file now "
			      "under that name is in incoming/new and is read at the next scan\""));
	assert_int_equal(occurrences(&log, "event=rejected"), 0);
	assert_false(present(fx.spool.rejected, "n.xml"));
	assert_false(present(fx.spool.rejected, "n.xml.reason"));
	take("n.xml", INTAKE_ACCEPTED);
	list("INTAKE-2027-000001", 1, &r);
	assert_int_equal(r.n, 3);
	gw_buf_free(&log);
}

/*
 * Accepted, then replaced before its move, and the name taken again while
 * the replacement was out to be checked: what was read is committed and in
 * no one's way; the replacement, unread, is kept as rejected/n.xml with
 * reason replaced-before-move (one log line says so); the newest file is
 * taken by the next scan.
 */
static void test_file_replaced_twice_is_kept_aside(void **state)
{
	int accepted = -1, rejected = -1, duplicates = -1;
	gw_buf log = GW_BUF_INIT, reason = GW_BUF_INIT;
	enum intake_outcome outcome;
	struct rows r;

	drop("release-r1.xml", "n.xml");
	replace_when_seen("n.xml", "release-r2.xml");
	fx.spool.staged_hook = take_name_again;
	capture_begin("kept.log");
	assert_int_equal(intake_file(&fx.in, "n.xml", &outcome), GW_ETEMP);
	capture_end("kept.log", &log);
	fx.spool.staged_hook = NULL;
	fx.st->ops = seen_real;
	assert_int_equal(occurrences(&log, "event=replaced-before-move file=n.xml "
				     "kept_as=rejected/n.xml"), 1);
	assert_true(has(&log, "what was read is committed"));
	list("INTAKE-2027-000001", 1, &r);
	assert_int_equal(r.n, 3);
	list("INTAKE-2027-000001", 2, &r);
	assert_int_equal(r.n, 0); /* never read */
	read_in(fx.spool.rejected, "n.xml.reason", &reason);
	assert_true(has(&reason, SPOOL_REPLACED "\n"));
	assert_false(present(fx.spool.processed, "n.xml"));

	assert_ok(intake_scan(&fx.in, &accepted, &rejected, &duplicates));
	assert_int_equal(accepted, 1);
	list("INTAKE-2027-000002", 1, &r);
	assert_int_equal(r.n, 3);
	gw_buf_free(&reason);
	gw_buf_free(&log);
}

static void crash_now(const struct spool *sp, const char *name)
{
	(void)sp;
	(void)name;
	_exit(0);
}

static void take_exiting_in_move(struct intake *child)
{
	fx.spool.staged_hook = crash_now;
	intake_file(child, "a.xml", NULL);
}

/*
 * A crash while a committed file is on its way to processed/, under its
 * staging name: the next start puts it back into incoming/new and takes
 * it as a duplicate (its SHA-256 was committed), with nothing new.
 */
static void test_crash_during_the_move(void **state)
{
	int accepted = -1, rejected = -1, duplicates = -1;
	struct store_counts before, after;
	gw_buf log = GW_BUF_INIT;

	drop("release-r1.xml", "a.xml");
	in_child_that_crashes(take_exiting_in_move);
	assert_false(present(fx.spool.new_dir, "a.xml"));
	assert_false(present(fx.spool.processed, "a.xml"));
	assert_true(present(fx.spool.processed, ".taking.a.xml"));
	assert_ok(fx.st->ops->counts(fx.st, &before));

	fx.in.spool_checked = false; /* a new start */
	capture_begin("recovered.log");
	assert_ok(intake_scan(&fx.in, &accepted, &rejected, &duplicates));
	capture_end("recovered.log", &log);
	assert_int_equal(occurrences(&log, "event=spool-recovered file=a.xml"), 1);
	assert_int_equal(accepted + rejected, 0);
	assert_int_equal(duplicates, 1);
	assert_true(present(fx.spool.processed, "a.xml"));
	assert_false(present(fx.spool.processed, ".taking.a.xml"));
	assert_ok(fx.st->ops->counts(fx.st, &after));
	assert_memory_equal(&before, &after, sizeof(before));
	gw_buf_free(&log);
}

/*
 * Fault injection: the fsync of one directory fails (EIO), as on a disk
 * that cannot write back. This fsync() is the one the gateway's code
 * linked into this test calls; every other descriptor goes to the kernel.
 */
static char fsync_fails_for[PATH_MAX];

int fsync(int fd)
{
	char link[64], path[PATH_MAX];
	ssize_t n;

	if (fsync_fails_for[0]) {
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		n = readlink(link, path, sizeof(path) - 1);
		if (n > 0 && (path[n] = '\0', !strcmp(path, fsync_fails_for))) {
			errno = EIO;
			return -1;
		}
	}
	return (int)syscall(SYS_fsync, fd);
}

static void fail_fsync_of(const char *dir)
{
	fsync_fails_for[0] = '\0';
	if (dir && !realpath(dir, fsync_fails_for))
		fail_msg("realpath %s", dir);
}

/*
 * The move into processed/ is made but processed/ cannot be synced: the
 * log line says where the file is (processed/, not incoming/new) and what
 * comes next; the next scan syncs processed/ again and takes nothing anew.
 */
static void test_unsynced_move_says_where_the_file_is(void **state)
{
	int accepted = -1, rejected = -1, duplicates = -1;
	enum intake_outcome outcome;
	gw_buf log = GW_BUF_INIT;

	drop("release-r1.xml", "r1.xml");
	fail_fsync_of(fx.spool.processed);
	capture_begin("unsynced.log");
	assert_int_equal(intake_file(&fx.in, "r1.xml", &outcome), GW_ERROR);
	capture_end("unsynced.log", &log);
	fail_fsync_of(NULL);
	assert_int_equal(occurrences(&log, "event=move-failed file=r1.xml"), 1);
	assert_true(has(&log, "was moved to processed/r1.xml, but the move may not survive a "
			      "power cut"));
	assert_true(has(&log, "next=\"its messages are committed; it is in processed/r1.xml, but "
			      "the move is not durable yet: the next scan syncs processed/ again"));
	assert_false(has(&log, "stays in incoming/new"));
	assert_true(present(fx.spool.processed, "r1.xml"));
	assert_false(present(fx.spool.new_dir, "r1.xml"));
	assert_false(fx.in.spool_checked);

	assert_ok(intake_scan(&fx.in, &accepted, &rejected, &duplicates));
	assert_int_equal(accepted + rejected + duplicates, 0);
	assert_true(fx.in.spool_checked); /* processed/ synced again */
	gw_buf_free(&log);
}

/* The same for a rejection whose directory sync failed after its rename. */
static void test_unsynced_rejection_says_where_the_file_is(void **state)
{
	enum intake_outcome outcome;
	gw_buf log = GW_BUF_INIT;

	drop_bytes("broken.xml", "<bad", 4);
	fail_fsync_of(fx.spool.new_dir);
	capture_begin("unsynced-reject.log");
	assert_int_equal(intake_file(&fx.in, "broken.xml", &outcome), GW_ERROR);
	capture_end("unsynced-reject.log", &log);
	fail_fsync_of(NULL);
	assert_int_equal(occurrences(&log, "event=reject-failed file=broken.xml"), 1);
	assert_true(has(&log, "next=\"it is in rejected/broken.xml with its reason, but the move "
			      "is not durable yet"));
	assert_false(has(&log, "stays in incoming/new"));
	assert_reason_file("broken.xml", "malformed");
	assert_false(present(fx.spool.new_dir, "broken.xml"));
	gw_buf_free(&log);
}

/* ---- the log ---- */

static void test_log_line_names_pseudonym_never_the_person(void **state)
{
	gw_buf log = GW_BUF_INIT;
	struct store_notice n;
	char person[32];

	capture_begin("stderr.log");
	drop("release-r1.xml", "logged.xml");
	take("logged.xml", INTAKE_ACCEPTED);
	drop_bytes("broken.xml", "<x", 2);
	take("broken.xml", INTAKE_REJECTED);
	capture_end("stderr.log", &log);
	assert_ok(fx.st->ops->notice_get(fx.st, "INTAKE-2027-000001", 1, &n));
	snprintf(person, sizeof(person), "person=%s", n.person_ref);
	assert_true(has(&log, "event=accepted"));
	assert_true(has(&log, "file=logged.xml"));
	assert_true(has(&log, "notice=INTAKE-2027-000001"));
	assert_true(has(&log, "messages=3"));
	assert_true(has(&log, person));
	assert_true(has(&log, "event=rejected"));
	assert_true(has(&log, "reason=malformed"));
	assert_false(has(&log, NIN));
	assert_false(has(&log, "Intakeperson"));
	gw_buf_free(&log);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_full_consent_gives_three_signed_messages),
		T(test_refusal_holds_health_no_consent),
		T(test_unknown_municipality_holds_no_endpoint),
		T(test_same_bytes_twice_is_a_duplicate),
		T(test_revision_rules),
		T(test_newer_revision_stops_sending_and_failed),
		T(test_withdrawal_stops_what_is_on_its_way),
		T(test_withdrawal_tells_whom_an_attempt_may_have_reached),
		T(test_withdrawal_message_is_never_superseded),
		T(test_withdrawal_tells_a_superseded_copy_that_may_have_arrived),
		T(test_withdrawal_tells_a_held_copy_that_may_have_arrived),
		T(test_withdrawal_cancels_and_tells_those_reached),
		T(test_withdrawal_goes_to_the_organisation_not_the_endpoint_name),
		T(test_held_withdrawal_is_released_to_its_organisation_only),
		T(test_invalid_notices_rejected_with_reason),
		T(test_scan_rejects_hostile_files_unread),
		T(test_timeliness_flags),
		T(test_lead_days_zero_is_never_late_at_intake),
		T(test_transfer_to_prison_without_consent_gets_all_needs),
		T(test_encryption_then_signature_for_the_school),
		T(test_encryption_rollover_two_certificates),
		T(test_expired_certificate_left_out_beside_a_valid_one),
		T(test_unusable_certificate_holds_with_reason),
		T(test_ec_certificate_holds_with_reason),
		T(test_missing_certificate_holds_with_reason),
		T(test_certificate_of_another_organisation_holds),
		T(test_certificate_without_organisation_holds),
		T(test_weak_certificate_holds),
		T(test_untrusted_certificate_holds),
		T(test_certificate_outside_the_endpoints_anchors_holds),
		T(test_revoked_certificate_holds),
		T(test_refused_certificate_of_a_pair_holds),
		T(test_forgotten_certificates_are_checked_again),
		T(test_certificate_cache_follows_the_file),
		T(test_release_held_when_endpoint_appears),
		T(test_release_needs_the_unaltered_original),
		T(test_no_consent_is_never_released),
		T(test_scan_steps_take_one_chunk_per_commit),
		T(test_read_ahead_same_outcomes),
		T(test_replaced_after_a_refused_read_ahead_stays),
		T(test_stale_is_signed_again_or_fails_without_its_notice),
		T(test_file_replaced_after_read_ahead_stays),
		T(test_failed_chunk_commit_keeps_every_file),
		T(test_chunk_sees_its_own_files),
		T(test_crash_between_commit_and_moves),
		T(test_rejection_takes_only_the_file_read),
		T(test_file_replaced_twice_is_kept_aside),
		T(test_crash_during_the_move),
		T(test_unsynced_move_says_where_the_file_is),
		T(test_unsynced_rejection_says_where_the_file_is),
		T(test_log_line_names_pseudonym_never_the_person),
#undef T
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
