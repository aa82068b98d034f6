/*
 * fuzz_entry: one input through one target (see fuzz_entry.h).
 *
 * Relies on: the gateway modules xmlread, notice, message, verify, pki,
 * signer (dsig_init), receipt, config, log, err. State made once by
 * fuzz_entry_init() lives in `fx`; nothing else survives an input, so a
 * crash replays from the input alone.
 *
 * Diagnostics: a broken property prints "fuzz-entry: VIOLATION ..." on
 * stderr and returns FUZZ_VIOLATION. Rejections are the normal outcome and
 * print nothing.
 */
#include "fuzz_entry.h"

#include "config.h"
#include "err.h"
#include "log.h"
#include "message.h"
#include "notice.h"
#include "pki.h"
#include "receipt.h"
#include "signer.h"
#include "timeutil.h"
#include "verify.h"
#include "xmlread.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

/* Fixed "now" for the notice rules, so an input gives the same verdict every day. */
#define FUZZ_NOW "2026-11-22T12:00:00+01:00"
/* Relative config paths resolve against this; config_parse never opens them. */
#define FUZZ_CONFIG_BASE "/nonexistent/fuzz-config"

static struct {
	bool xml_ready;
	bool dsig_ready;
	pki_trust *trust;
	verifier *v;
	int64_t now_ms;
	char sent_digest[45];
	struct gw_config *cfg; /* large (several MiB): allocated once */
	bool verbose;          /* GW_FUZZ_VERBOSE set: one verdict line per input */
} fx;

/* With GW_FUZZ_VERBOSE, say what became of an input (for seeds and replays). */
static void verdict(const char *target, int rc, const char *reason)
{
	if (!fx.verbose)
		return;
	if (rc == 0)
		fprintf(stderr, "fuzz-entry: %s: accepted\n", target);
	else
		fprintf(stderr, "fuzz-entry: %s: refused (%s): %s\n", target,
			reason ? reason : "no reason code", gw_error_last());
}

static int violation(const char *target, const char *what)
{
	fprintf(stderr, "fuzz-entry: VIOLATION in %s: %s\n", target, what);
	return FUZZ_VIOLATION;
}

/* ---- set-up ------------------------------------------------------------ */

int fuzz_entry_init(const char *pki_dir, const char *source_dir)
{
	char path[PATH_MAX];
	const char *anchors[1];

	gw_log_set_level(GW_LOG_ERROR);
	fx.verbose = getenv("GW_FUZZ_VERBOSE") != NULL;
	if (timeutil_parse_datetime(FUZZ_NOW, &fx.now_ms) < 0) {
		fprintf(stderr, "fuzz-entry: cannot parse %s: %s\n", FUZZ_NOW, gw_error_last());
		return -1;
	}
	if (receipt_digest((const unsigned char *)FUZZ_RECEIPT_SENT_BYTES,
			   strlen(FUZZ_RECEIPT_SENT_BYTES), fx.sent_digest) < 0) {
		fprintf(stderr, "fuzz-entry: receipt_digest: %s\n", gw_error_last());
		return -1;
	}
	fx.cfg = calloc(1, sizeof(*fx.cfg));
	if (!fx.cfg) {
		fprintf(stderr, "fuzz-entry: out of memory\n");
		return -1;
	}
	if (xmlread_init() < 0) {
		fprintf(stderr, "fuzz-entry: xmlread_init: %s\n", gw_error_last());
		return -1;
	}
	fx.xml_ready = true;
	snprintf(path, sizeof(path), "%s/schemas", source_dir ? source_dir : ".");
	if (xmlread_schemas_load(path) < 0) {
		fprintf(stderr, "fuzz-entry: schemas from %s: %s\n", path, gw_error_last());
		return -1;
	}
	if (!pki_dir)
		return 0;
	if (dsig_init() < 0) {
		fprintf(stderr, "fuzz-entry: dsig_init: %s\n", gw_error_last());
		return -1;
	}
	fx.dsig_ready = true;
	snprintf(path, sizeof(path), "%s/ca.pem", pki_dir);
	anchors[0] = path;
	if (pki_trust_new(&fx.trust, anchors, 1, NULL, 0) < 0 ||
	    verifier_new(&fx.v, fx.trust) < 0) {
		fprintf(stderr, "fuzz-entry: trust %s: %s\n", path, gw_error_last());
		return -1;
	}
	gw_error_clear();
	return 0;
}

void fuzz_entry_shutdown(void)
{
	if (fx.v)
		verifier_free(fx.v);
	if (fx.trust)
		pki_trust_free(fx.trust);
	if (fx.dsig_ready)
		dsig_shutdown();
	if (fx.xml_ready)
		xmlread_shutdown();
	free(fx.cfg);
	memset(&fx, 0, sizeof(fx));
}

void fuzz_entry_init_from_env(int need_pki)
{
	const char *pki = getenv("GW_PKI_DIR");
	const char *src = getenv("GW_SOURCE_DIR");

	if (!src || !*src) {
		fprintf(stderr, "fuzz-entry: set GW_SOURCE_DIR to the source tree (schemas/)\n");
		exit(2);
	}
	if (need_pki && (!pki || !*pki)) {
		fprintf(stderr, "fuzz-entry: set GW_PKI_DIR to a certs/mkpki.sh directory\n");
		exit(2);
	}
	if (fuzz_entry_init(need_pki ? pki : NULL, src) < 0)
		exit(2);
}

/* ---- notice ------------------------------------------------------------- */

/*
 * The nin of the input's first Person element, when it occurs exactly once
 * in the input: then any copy of those 11 digits in an error text came from
 * the nin itself and breaks SPEC section 2. nin_out is "" when not usable.
 */
static void find_nin(xmlNodePtr node, char nin_out[12])
{
	for (; node && !nin_out[0]; node = node->next) {
		if (node->type != XML_ELEMENT_NODE)
			continue;
		if (!strcmp((const char *)node->name, "Person")) {
			char *nin = xmlread_attr(node, "nin");
			size_t i;

			if (nin && strlen(nin) == 11) {
				for (i = 0; i < 11 && nin[i] >= '0' && nin[i] <= '9'; i++)
					;
				if (i == 11)
					memcpy(nin_out, nin, 12);
			}
			xmlFree(nin);
			return;
		}
		find_nin(node->children, nin_out);
	}
}

static size_t count_occurrences(const uint8_t *data, size_t size, const char *needle)
{
	size_t n = strlen(needle), count = 0, i;

	for (i = 0; i + n <= size; i++)
		if (!memcmp(data + i, needle, n))
			count++;
	return count;
}

/* Every filtered copy must serialize and validate as a Notice. */
static int check_filtered(const struct notice *n, unsigned categories)
{
	xmlDocPtr copy = NULL, again = NULL;
	unsigned char *bytes = NULL;
	size_t len = 0;
	int rc = FUZZ_OK;

	if (notice_filtered_copy(n, (enum gw_service)(categories % SVC_COUNT), categories, &copy) < 0)
		return FUZZ_OK; /* a refusal (out of memory) is not a property break */
	if (xmlread_serialize(copy, &bytes, &len) < 0)
		rc = FUZZ_OK;
	else if (xmlread_parse_valid(&again, bytes, len, 0, XML_KIND_NOTICE, "filtered") < 0) {
		fprintf(stderr, "fuzz-entry: categories 0x%x: %s\n", categories, gw_error_last());
		rc = violation("notice", "a filtered copy does not validate as a Notice");
	} else {
		xmlNodePtr root = xmlDocGetRootElement(again);

		if (xmlread_child(root, NS_NOTICE, "Recipients") ||
		    xmlread_child(root, NS_NOTICE, "Consent"))
			rc = violation("notice", "a filtered copy keeps Recipients or Consent");
	}
	xmlFreeDoc(again);
	free(bytes);
	xmlFreeDoc(copy);
	return rc;
}

int fuzz_notice(const uint8_t *data, size_t size)
{
	struct notice_rules rules = { true, fx.now_ms, 0 };
	struct notice n;
	xmlDocPtr doc = NULL;
	const char *reason = NULL;
	char nin[12] = "";
	int valid, parsed, rc = FUZZ_OK;
	size_t i;

	if (size > FUZZ_MAX_INPUT)
		return FUZZ_OK;
	valid = xmlread_parse_valid(&doc, data, size, 0, XML_KIND_NOTICE, "fuzz.xml");
	if (doc)
		find_nin(xmlDocGetRootElement(doc), nin);
	xmlFreeDoc(doc);
	if (!nin[0] && xmlread_parse(&doc, data, size, 0, "fuzz.xml") == 0) {
		find_nin(xmlDocGetRootElement(doc), nin);
		xmlFreeDoc(doc);
	}
	if (nin[0] && count_occurrences(data, size, nin) != 1)
		nin[0] = '\0';

	gw_error_clear();
	parsed = notice_parse(&n, data, size, &rules, "fuzz.xml", &reason);
	verdict("notice", parsed, reason);
	if (parsed == 0) {
		if (valid < 0)
			rc = violation("notice", "notice_parse accepted what xmlread_parse_valid "
				       "refused");
		for (i = 0; rc == FUZZ_OK && i < n.n_grants; i++)
			rc = check_filtered(&n, n.grants[i].categories);
		if (rc == FUZZ_OK)
			rc = check_filtered(&n, NEED_ALL);
		if (rc == FUZZ_OK)
			rc = check_filtered(&n, 0);
	} else {
		if (parsed == GW_EINVALID && !reason)
			rc = violation("notice", "a rejection without a reason code");
		if (nin[0] && strstr(gw_error_last(), nin))
			rc = violation("notice", "the rejection text contains the nin");
	}
	notice_free(&n);
	return rc;
}

/* ---- message ------------------------------------------------------------- */

int fuzz_message(const uint8_t *data, size_t size)
{
	struct verify_result result;
	struct msg_header h;
	xmlDocPtr doc = NULL;
	int rc = FUZZ_OK, verified;

	if (size > FUZZ_MAX_INPUT || !fx.v)
		return FUZZ_OK;
	memset(&result, 0, sizeof(result));
	if (xmlread_parse_valid(&doc, data, size, 0, XML_KIND_MESSAGE, "request body") < 0 ||
	    message_read_header(doc, &h) < 0) {
		verdict("message", -1, "malformed or schema-invalid");
		goto out;
	}
	verified = verifier_check(fx.v, doc, h.from_orgnr, &result);
	verdict("message", verified, result.reason_code);
	if (verified == 0) {
		if (strcmp(result.signer_orgnr, h.from_orgnr) != 0)
			rc = violation("message", "verified, but the signer is not From/@orgnr");
		if (!message_body_content(doc))
			rc = violation("message", "verified, but the Body is empty");
	} else {
		if (verified == GW_EINVALID && !result.reason_code)
			rc = violation("message", "a rejection without a reason code");
		(void)message_body_content(doc);
	}
out:
	(void)dsig_take_error();
	xmlFreeDoc(doc);
	return rc;
}

/* ---- receipt ------------------------------------------------------------- */

int fuzz_receipt(const uint8_t *data, size_t size)
{
	struct receipt_info info;
	const char *reason = NULL;
	int rc = FUZZ_OK, verified;

	if (size > FUZZ_MAX_INPUT || !fx.v)
		return FUZZ_OK;
	memset(&info, 0, sizeof(info));
	verified = receipt_verify(fx.v, data, size, FUZZ_RECEIPT_ORGNR, FUZZ_RECEIPT_MESSAGE_ID,
				 fx.sent_digest, &info, &reason);
	verdict("receipt", verified, reason);
	if (verified == 0) {
		if (strcmp(info.receiver_orgnr, FUZZ_RECEIPT_ORGNR) ||
		    strcmp(info.ref_message_id, FUZZ_RECEIPT_MESSAGE_ID) ||
		    strcmp(info.digest_b64, fx.sent_digest))
			rc = violation("receipt", "accepted a receipt about another message, "
				       "digest or organisation");
		else if (strcmp(info.status, "accepted") && strcmp(info.status, "duplicate") &&
			 strcmp(info.status, "rejected"))
			rc = violation("receipt", "accepted a receipt with an unknown status");
	} else if (verified == GW_EINVALID && !reason) {
		rc = violation("receipt", "a rejection without a reason code");
	}
	(void)dsig_take_error();
	return rc;
}

/* ---- config -------------------------------------------------------------- */

int fuzz_config(const uint8_t *data, size_t size)
{
	static const char *const municipalities[] = { "0301", "0302", "4601", NULL };
	char *text;
	size_t i, s, m;
	int parsed;

	if (size > FUZZ_MAX_INPUT || !fx.cfg)
		return FUZZ_OK;
	text = malloc(size + 1);
	if (!text)
		return FUZZ_OK;
	memcpy(text, data, size);
	text[size] = '\0';
	parsed = config_parse(fx.cfg, text, FUZZ_CONFIG_BASE);
	verdict("config", parsed, NULL);
	if (parsed == 0) {
		for (s = 0; s < SVC_COUNT; s++) {
			for (m = 0; m < sizeof(municipalities) / sizeof(municipalities[0]); m++)
				(void)config_endpoint_resolve(fx.cfg, (enum gw_service)s, NULL,
							      municipalities[m]);
			for (i = 0; i < fx.cfg->n_endpoints; i++)
				(void)config_endpoint_resolve(fx.cfg, (enum gw_service)s,
							      fx.cfg->endpoints[i].orgnr, NULL);
		}
		for (i = 0; i < fx.cfg->n_endpoints; i++)
			if (config_endpoint_by_name(fx.cfg, fx.cfg->endpoints[i].name) !=
			    &fx.cfg->endpoints[i]) {
				free(text);
				return violation("config", "endpoint names are not unique");
			}
	}
	free(text);
	return FUZZ_OK;
}

fuzz_entry_fn fuzz_entry_by_name(const char *name)
{
	if (!strcmp(name, "notice"))
		return fuzz_notice;
	if (!strcmp(name, "message"))
		return fuzz_message;
	if (!strcmp(name, "receipt"))
		return fuzz_receipt;
	if (!strcmp(name, "config"))
		return fuzz_config;
	return NULL;
}
