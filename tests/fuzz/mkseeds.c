/*
 * mkseeds: signed seed inputs for the message and receipt fuzzers.
 *
 *   mkseeds PKI_DIR SOURCE_DIR OUT_DIR
 *
 * Writes into OUT_DIR/message (messages from the gateway organisation to
 * housing, built with message_build around a consent-filtered notice from
 * tests/data/notices and signed with the project's signer, RSA and EC) and
 * OUT_DIR/receipt (receipts from housing about FUZZ_RECEIPT_MESSAGE_ID and
 * the digest of FUZZ_RECEIPT_SENT_BYTES: accepted, duplicate and a signed
 * rejection, RSA and EC). Both directories must exist.
 *
 * The signatures only verify under the PKI_DIR they were made with. The
 * committed seeds in corpus/ come from one development PKI; run.sh runs
 * mkseeds again against the build tree's PKI so each fuzzing run also
 * starts from inputs that pass verification there. No key is written.
 */
#include "fuzz_entry.h"

#include "buf.h"
#include "err.h"
#include "message.h"
#include "notice.h"
#include "receipt.h"
#include "signer.h"
#include "timeutil.h"
#include "xmlread.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>

#define ORG_GATEWAY "974760673"
#define ORG_HOUSING "958935420"

static const char *pki_dir, *source_dir, *out_dir;

static int die(const char *what)
{
	fprintf(stderr, "mkseeds: %s: %s\n", what, gw_error_last());
	exit(1);
}

static const char *pki_path(char *dst, const char *name)
{
	snprintf(dst, PATH_MAX, "%s/%s", pki_dir, name);
	return dst;
}

static void read_file(const char *path, gw_buf *out)
{
	FILE *f = fopen(path, "rb");
	char chunk[8192];
	size_t n;

	if (!f) {
		fprintf(stderr, "mkseeds: cannot open %s: %s\n", path, strerror(errno));
		exit(1);
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (gw_buf_put(out, chunk, n) < 0)
			die("read");
	fclose(f);
}

static void write_file(const char *dir, const char *name, const gw_buf *bytes)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s/%s", out_dir, dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(bytes->data, 1, bytes->len, f) != bytes->len || fclose(f) != 0) {
		fprintf(stderr, "mkseeds: cannot write %s: %s\n", path, strerror(errno));
		exit(1);
	}
}

static signer *open_signer(const char *party)
{
	char key_name[64], cert_name[64], key[PATH_MAX], cert[PATH_MAX];
	signer *s;

	snprintf(key_name, sizeof(key_name), "%s.key", party);
	snprintf(cert_name, sizeof(cert_name), "%s.pem", party);
	if (signer_open(&s, pki_path(key, key_name), pki_path(cert, cert_name)) < 0)
		die(party);
	return s;
}

/* A message to housing around the notice sample, with the given categories. */
static void make_message(signer *s, const char *sample, unsigned categories,
			 const char *message_id, const char *out_name)
{
	struct notice_rules rules = { true, 0, 0 };
	struct msg_header h;
	struct notice n;
	char path[PATH_MAX];
	gw_buf in = GW_BUF_INIT, out = GW_BUF_INIT;
	xmlDocPtr body, msg;
	const char *reason;

	if (timeutil_parse_datetime("2026-11-22T12:00:00+01:00", &rules.now_ms) < 0)
		die("now");
	snprintf(path, sizeof(path), "%s/tests/data/notices/%s", source_dir, sample);
	read_file(path, &in);
	if (notice_parse(&n, in.data, in.len, &rules, sample, &reason) < 0)
		die(sample);
	if (notice_filtered_copy(&n, SVC_HOUSING, categories, &body) < 0)
		die("notice_filtered_copy");

	memset(&h, 0, sizeof(h));
	snprintf(h.message_id, sizeof(h.message_id), "%s", message_id);
	snprintf(h.created, sizeof(h.created), "2026-11-20T09:15:02Z");
	snprintf(h.from_orgnr, sizeof(h.from_orgnr), ORG_GATEWAY);
	snprintf(h.to_orgnr, sizeof(h.to_orgnr), ORG_HOUSING);
	snprintf(h.service, sizeof(h.service), "housing");
	snprintf(h.notice_id, sizeof(h.notice_id), "%s", n.id);
	h.revision = n.revision;
	snprintf(h.kind, sizeof(h.kind), "%s", n.kind);
	if (message_build(&msg, &h, xmlDocGetRootElement(body)) < 0)
		die("message_build");
	if (signer_sign_to_bytes(s, msg, &out) < 0)
		die("signer_sign_to_bytes");
	write_file("message", out_name, &out);
	xmlFreeDoc(msg);
	xmlFreeDoc(body);
	notice_free(&n);
	gw_buf_free(&in);
	gw_buf_free(&out);
}

static void make_receipt(signer *s, const char *status, const char *reason_code,
			 const char *out_name)
{
	struct receipt_info r;
	gw_buf out = GW_BUF_INIT;
	xmlDocPtr doc;

	memset(&r, 0, sizeof(r));
	snprintf(r.ref_message_id, sizeof(r.ref_message_id), FUZZ_RECEIPT_MESSAGE_ID);
	if (receipt_digest((const unsigned char *)FUZZ_RECEIPT_SENT_BYTES,
			   strlen(FUZZ_RECEIPT_SENT_BYTES), r.digest_b64) < 0)
		die("receipt_digest");
	snprintf(r.received, sizeof(r.received), "2026-11-20T09:15:02.123Z");
	snprintf(r.receiver_orgnr, sizeof(r.receiver_orgnr), ORG_HOUSING);
	snprintf(r.status, sizeof(r.status), "%s", status);
	if (reason_code) {
		snprintf(r.reason_code, sizeof(r.reason_code), "%s", reason_code);
		snprintf(r.reason_text, sizeof(r.reason_text), "Created is more than 7 days old.");
	}
	if (receipt_build(&doc, &r) < 0)
		die("receipt_build");
	if (signer_sign_to_bytes(s, doc, &out) < 0)
		die("signer_sign_to_bytes");
	write_file("receipt", out_name, &out);
	xmlFreeDoc(doc);
	gw_buf_free(&out);
}

int main(int argc, char **argv)
{
	char schemas[PATH_MAX];
	signer *gw_rsa, *gw_ec, *housing_rsa, *housing_ec;

	if (argc != 4) {
		fprintf(stderr, "usage: mkseeds PKI_DIR SOURCE_DIR OUT_DIR\n");
		return 2;
	}
	pki_dir = argv[1];
	source_dir = argv[2];
	out_dir = argv[3];
	snprintf(schemas, sizeof(schemas), "%s/schemas", source_dir);
	if (xmlread_init() < 0 || xmlread_schemas_load(schemas) < 0)
		die("schemas");
	if (dsig_init() < 0)
		die("dsig_init");
	gw_rsa = open_signer("gateway-rsa");
	gw_ec = open_signer("gateway-ec");
	housing_rsa = open_signer("housing-rsa");
	housing_ec = open_signer("housing-ec");

	make_message(gw_rsa, "ok-release-full-consent.xml", NEED_ALL,
		     "0b6f7e3a-1c2d-4e5f-8a9b-0c1d2e3f4a5b", "signed-release-rsa.xml");
	make_message(gw_ec, "ok-release-partial-consent.xml", 1u << NEED_HOUSING,
		     "1c7a8f4b-2d3e-4f60-9bac-1d2e3f4a5b6c", "signed-release-ec.xml");
	make_message(gw_rsa, "ok-transfer.xml", NEED_ALL,
		     "2d8b9a5c-3e4f-4071-acbd-2e3f4a5b6c7d", "signed-transfer-rsa.xml");
	make_message(gw_ec, "ok-withdrawal.xml", 0,
		     "3e9cab6d-4f50-4182-bdce-3f4a5b6c7d8e", "signed-withdrawal-ec.xml");

	make_receipt(housing_rsa, "accepted", NULL, "signed-accepted-rsa.xml");
	make_receipt(housing_ec, "duplicate", NULL, "signed-duplicate-ec.xml");
	make_receipt(housing_rsa, "rejected", "stale", "signed-rejected-rsa.xml");

	signer_close(gw_rsa);
	signer_close(gw_ec);
	signer_close(housing_rsa);
	signer_close(housing_ec);
	dsig_shutdown();
	xmlread_shutdown();
	return 0;
}
