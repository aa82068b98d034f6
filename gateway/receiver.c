/*
 * receiver: `gateway receive`, the partner's HTTPS endpoint (see receiver.h).
 *
 * Accept pipeline for one POST, in order (SPEC section 6); the first rule a
 * request breaks decides the answer:
 *   TLS client organisation in [receiver] allow  else 403, no body
 *   body within max_body                         else 413, no body
 *   well-formed XML, no DOCTYPE                  else 400 malformed
 *   message schema, header rules                 else 400 schema-invalid
 *   signature under the profile, From bound      else 400 bad-signature,
 *                                                     untrusted-signer,
 *                                                     sender-mismatch
 *   signer organisation = TLS organisation       else 400 sender-mismatch
 *   To/@orgnr = our organisation                 else 400 wrong-recipient
 *   MessageId known: same digest                 200 duplicate (new receipt)
 *                    other digest                409 message-id-conflict
 *   Created within window_days, <= 5 min ahead   else 400 stale
 *   an encrypted Body decrypts ([receiver]
 *     decrypt_key; after the signature)          else 400 malformed
 *   Body holds a Notice valid under its schema   else 400 schema-invalid
 *   item, evidence and row durable               200 accepted
 *   the store failed                             503 Retry-After, no body
 * A duplicate is recognised before the age check: a resend of a message we
 * accepted days ago is still delivered, not stale; before it is answered,
 * an item a crashed worker left in tmp/ is moved into new/.
 *
 * Bounds: every connection has a deadline of read_timeout for its TLS
 * handshake and request (and, after each request, for the next), however
 * slowly its bytes trickle; at max_connections the oldest connection
 * without a completed handshake is evicted for a newcomer, else the
 * newcomer is closed at once.
 *
 * Every receipt is signed; rejected request bytes are not kept (the log line
 * has their digest). Logs name organisations and MessageIds, never content.
 *
 * Processes: the parent loads and checks everything, binds one listening
 * socket per worker (SO_REUSEPORT: the kernel spreads connections over
 * them), recovers the inbox, then forks `workers` children that each run
 * their own event loop on their own socket and their own SQLite handle.
 * It restarts a child that dies and forwards SIGTERM/SIGINT; a child stops
 * accepting, lets open connections finish (bounded), and exits 0.
 */
#include "receiver.h"
#include "daemons.h"
#include "err.h"
#include "fsutil.h"
#include "ident.h"
#include "log.h"
#include "pki.h"
#include "tlsconn.h"
#include "message.h"
#include "offload.h"
#include "receipt.h"
#include "timeutil.h"
#include "xmlread.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#define FUTURE_SKEW_MS (5 * 60 * 1000LL)
#define DAY_MS (24 * 60 * 60 * 1000LL)
#define MAX_HEADERS_BYTES 16384
#define RETRY_AFTER_SECONDS "30"
#define DRAIN_TICK_MS 100
#define RESTART_DELAY_MS 1000
#define MAX_WORKERS 64

/* ======================================================================
 * Setup shared with `gateway inbox`
 * ====================================================================== */

static int trust_open(struct receiver_setup *rs)
{
	const struct config_identity *id = &rs->cfg->identity;
	const char *anchors[PKI_MAX_FILES], *crls[PKI_MAX_FILES];

	for (size_t i = 0; i < id->n_trust; i++)
		anchors[i] = id->trust[i];
	for (size_t i = 0; i < id->n_crl; i++)
		crls[i] = id->crl[i];
	if (pki_trust_new(&rs->trust, anchors, id->n_trust, crls, id->n_crl) < 0)
		return gw_error_wrap(GW_EINVALID, "[identity] trust");
	return verifier_new(&rs->verifier, rs->trust);
}

/*
 * Read the trust anchors and CRLs again (SIGHUP): on success the setup
 * verifies with the new trust; on failure it keeps the old.
 */
static int trust_reload(struct receiver_setup *rs)
{
	pki_trust *old_trust = rs->trust;
	verifier *old_verifier = rs->verifier;

	rs->trust = NULL;
	rs->verifier = NULL;
	if (trust_open(rs) < 0) {
		verifier_free(rs->verifier);
		pki_trust_free(rs->trust);
		rs->trust = old_trust;
		rs->verifier = old_verifier;
		return GW_EINVALID;
	}
	verifier_free(old_verifier);
	pki_trust_free(old_trust);
	return 0;
}

static int signer_load(struct receiver_setup *rs)
{
	const struct config_identity *id = &rs->cfg->identity;

	if (signer_open(&rs->signer, id->key, id->cert) < 0)
		return gw_error_wrap(GW_EINVALID, "[identity] key and cert");
	if (strcmp(signer_orgnr(rs->signer), id->orgnr) != 0)
		return gw_error_set(GW_EINVALID,
				    "[identity] cert belongs to organisation %s, but orgnr says %s",
				    signer_orgnr(rs->signer), id->orgnr);
	return 0;
}

static bool same_file(const char *a, const char *b)
{
	struct stat sa, sb;

	if (strcmp(a, b) == 0)
		return true;
	return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
	       sa.st_ino == sb.st_ino;
}

/* The certificate that names a decrypt_key (see receiver.h). */
static int decrypt_cert_for(const struct gw_config *cfg, const char *key, char *cert,
			    size_t len)
{
	static const char *const suffixes[] = { ".pem", ".crt" };
	size_t n = strlen(key);

	if (same_file(key, cfg->identity.key)) {
		snprintf(cert, len, "%s", cfg->identity.cert);
		return 0;
	}
	if (n < 4 || strcmp(key + n - 4, ".key") != 0)
		return gw_error_set(GW_EINVALID,
				    "[receiver] decrypt_key %s: a key other than [identity] key must "
				    "end in .key, with its certificate next to it as .pem or .crt",
				    key);
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		if ((size_t)snprintf(cert, len, "%.*s%s", (int)(n - 4), key, suffixes[i]) >= len)
			return gw_error_set(GW_EINVALID, "[receiver] decrypt_key %s: path too long",
					    key);
		if (access(cert, R_OK) == 0)
			return 0;
	}
	return gw_error_set(GW_EINVALID,
			    "[receiver] decrypt_key %s: no certificate next to it (%.*s.pem or .crt)",
			    key, (int)(n - 4), key);
}

static int decrypt_keys_load(struct receiver_setup *rs)
{
	const struct config_receiver *rc = &rs->cfg->receiver;
	char cert[PATH_MAX];
	int r;

	if (rc->n_decrypt_key == 0)
		return 0;
	if (xmlenc_keys_new(&rs->decrypt) < 0)
		return GW_ERROR;
	for (size_t i = 0; i < rc->n_decrypt_key; i++) {
		if ((r = decrypt_cert_for(rs->cfg, rc->decrypt_key[i], cert, sizeof(cert))) < 0)
			return r;
		if ((r = xmlenc_keys_add(rs->decrypt, rc->decrypt_key[i], cert)) < 0)
			return gw_error_wrap(r == GW_ENOMEM ? r : GW_EINVALID,
					     "[receiver] decrypt_key %s with certificate %s",
					     rc->decrypt_key[i], cert);
	}
	return 0;
}

static int schemas_open(struct receiver_setup *rs, const char *schemas_dir)
{
	const char *dir = schemas_dir ? schemas_dir : rs->cfg->identity.schemas;

	if (!dir || !*dir)
		return gw_error_set(GW_EINVALID, "no schema directory: set schemas in [identity] "
				    "or pass --schemas DIR (the directory with notice.xsd, message.xsd and "
				    "receipt.xsd)");
	if (xmlread_init() < 0)
		return GW_ERROR;
	rs->xml_ready = true;
	if (xmlread_schemas_load(dir) < 0)
		return gw_error_wrap(GW_EINVALID, "schemas in %s", dir);
	return 0;
}

int receiver_setup_open(struct receiver_setup *rs, const char *config_path,
			const char *schemas_dir, bool with_signer)
{
	enum gw_log_level level;
	int rc;

	memset(rs, 0, sizeof(*rs));
	rs->cfg = calloc(1, sizeof(*rs->cfg));
	if (!rs->cfg)
		return gw_error_set(GW_ENOMEM, "out of memory loading the configuration");
	if ((rc = config_load(rs->cfg, config_path)) < 0)
		return rc == GW_ENOMEM ? rc : GW_EINVALID;
	if (rs->cfg->identity.log_level[0] &&
	    gw_log_parse_level(rs->cfg->identity.log_level, &level) == 0)
		gw_log_set_level(level);
	if ((rc = schemas_open(rs, schemas_dir)) < 0)
		return rc;
	if (dsig_init() < 0)
		return GW_ERROR;
	rs->dsig_ready = true;
	if ((rc = trust_open(rs)) < 0)
		return rc;
	if (with_signer && ((rc = signer_load(rs)) < 0 || (rc = decrypt_keys_load(rs)) < 0))
		return rc;
	return 0;
}

void receiver_setup_close(struct receiver_setup *rs)
{
	if (rs->decrypt)
		xmlenc_keys_free(rs->decrypt);
	if (rs->signer)
		signer_close(rs->signer);
	if (rs->verifier)
		verifier_free(rs->verifier);
	if (rs->trust)
		pki_trust_free(rs->trust);
	if (rs->dsig_ready)
		dsig_shutdown();
	if (rs->xml_ready)
		xmlread_shutdown();
	free(rs->cfg);
	memset(rs, 0, sizeof(*rs));
}

bool receiver_peer_allowed(const struct gw_config *cfg, const char *orgnr)
{
	if (!orgnr || !*orgnr)
		return false;
	for (size_t i = 0; i < cfg->receiver.n_allow; i++)
		if (strcmp(cfg->receiver.allow[i], orgnr) == 0)
			return true;
	return false;
}

/* ======================================================================
 * The accept pipeline
 * ====================================================================== */

/* One request on its way through the pipeline. */
struct accept_run {
	struct receiver_setup *rs;
	inbox *ib;
	const char *peer_orgnr;
	const unsigned char *body;
	size_t len;
	int64_t now_ms;
	xmlDocPtr doc;
	struct msg_header header;
	gw_buf item; /* the Notice as its own document */
	struct receiver_answer *out;
};

void receiver_answer_clear(struct receiver_answer *a)
{
	gw_buf_free(&a->body);
}

/* A rule was broken: remember the reason; the caller signs the receipt. */
static int reject(struct accept_run *run, int http_status, const char *code, const char *text)
{
	run->out->http_status = http_status;
	run->out->status = "rejected";
	run->out->reason_code = code;
	snprintf(run->out->reason_text, sizeof(run->out->reason_text), "%s", text);
	return GW_EINVALID;
}

/* A status without a receipt (403, 413, 503). */
static int refuse(struct accept_run *run, int http_status, const char *text)
{
	run->out->http_status = http_status;
	run->out->status = NULL;
	snprintf(run->out->reason_text, sizeof(run->out->reason_text), "%s", text);
	return GW_EINVALID;
}

static int temporary(struct accept_run *run, const char *what)
{
	char text[256];

	snprintf(text, sizeof(text), "%s: %s", what, gw_error_last());
	refuse(run, 503, text);
	return GW_ETEMP;
}

/* The MessageId of a parsed document, when it is a valid one. */
static void remember_message_id(struct accept_run *run)
{
	xmlNodePtr root = xmlDocGetRootElement(run->doc);
	xmlNodePtr header = xmlread_child(root, NS_ENVELOPE, "Header");
	xmlNodePtr id = xmlread_child(header, NS_ENVELOPE, "MessageId");
	xmlChar *text = id ? xmlNodeGetContent(id) : NULL;

	if (text && ident_uuid4_valid((const char *)text))
		snprintf(run->out->message_id, sizeof(run->out->message_id), "%s",
			 (const char *)text);
	xmlFree(text);
}

static int check_peer_and_size(struct accept_run *run)
{
	if (!receiver_peer_allowed(run->rs->cfg, run->peer_orgnr))
		return refuse(run, 403, "the TLS client organisation is not allowed to send here");
	if (run->len > run->rs->cfg->receiver.max_body)
		return refuse(run, 413, "the request body is larger than max_body");
	return 0;
}

/* Only what is wrong with the message is a 400; our own trouble (memory) is a 503. */
static int check_document(struct accept_run *run)
{
	size_t max = run->rs->cfg->receiver.max_body;
	int rc;

	if ((rc = xmlread_parse(&run->doc, run->body, run->len, max, "request body")) < 0)
		return rc == GW_EINVALID ? reject(run, 400, "malformed", gw_error_last())
					 : temporary(run, "cannot parse the request");
	remember_message_id(run);
	if ((rc = xmlread_validate(run->doc, XML_KIND_MESSAGE)) < 0)
		return rc == GW_EINVALID ? reject(run, 400, "schema-invalid", gw_error_last())
					 : temporary(run, "cannot validate the request");
	if (message_read_header(run->doc, &run->header) < 0)
		return reject(run, 400, "schema-invalid", gw_error_last());
	return 0;
}

static int check_signature(struct accept_run *run)
{
	struct verify_result result = { { 0 }, NULL };
	int rc = verifier_check(run->rs->verifier, run->doc, run->header.from_orgnr, &result);

	if (rc == GW_EINVALID)
		return reject(run, 400, result.reason_code ? result.reason_code : "bad-signature",
			      gw_error_last());
	if (rc < 0)
		return temporary(run, "signature check failed");
	if (strcmp(result.signer_orgnr, run->peer_orgnr) != 0)
		return reject(run, 400, "sender-mismatch",
			      "the message is signed by another organisation than the TLS client");
	return 0;
}

static int check_recipient(struct accept_run *run)
{
	if (strcmp(run->header.to_orgnr, run->rs->cfg->identity.orgnr) != 0)
		return reject(run, 400, "wrong-recipient",
			      "To/@orgnr names another organisation than this receiver");
	return 0;
}

static int check_age(struct accept_run *run)
{
	int64_t created, window = (int64_t)run->rs->cfg->receiver.window_days * DAY_MS;

	if (timeutil_parse_datetime(run->header.created, &created) < 0)
		return reject(run, 400, "schema-invalid", gw_error_last());
	if (created < run->now_ms - window)
		return reject(run, 400, "stale", "Created is older than this receiver's window");
	if (created > run->now_ms + FUTURE_SKEW_MS)
		return reject(run, 400, "stale", "Created is more than 5 minutes in the future");
	return 0;
}

static bool node_is(xmlNodePtr node, const char *ns, const char *name)
{
	return node && node->ns && node->ns->href &&
	       strcmp((const char *)node->ns->href, ns) == 0 &&
	       strcmp((const char *)node->name, name) == 0;
}

/* Copy the Body's Notice into a document of its own and serialize it. */
static int notice_extract(xmlNodePtr notice, gw_buf *out)
{
	xmlDocPtr doc = xmlNewDoc(BAD_CAST "1.0");
	xmlNodePtr copy = doc ? xmlDocCopyNode(notice, doc, 1) : NULL;
	unsigned char *bytes = NULL;
	size_t len = 0;
	int rc = GW_ENOMEM;

	if (!copy) {
		xmlFreeDoc(doc);
		return gw_error_set(GW_ENOMEM, "out of memory copying the Notice");
	}
	xmlDocSetRootElement(doc, copy);
	/* The signature does not cover comments: none may reach the case system. */
	xmlread_strip_comments(copy->children);
	if ((rc = xmlread_validate(doc, XML_KIND_NOTICE)) == 0 &&
	    (rc = xmlread_serialize(doc, &bytes, &len)) == 0)
		rc = gw_buf_put(out, bytes, len);
	free(bytes);
	xmlFreeDoc(doc);
	return rc;
}

/*
 * Decrypt an encrypted Body in place (the signature was verified before:
 * encrypt, then sign). Only the parsed copy changes; the evidence keeps the
 * bytes as received.
 */
static int decrypt_body(struct accept_run *run, xmlNodePtr *content)
{
	char text[256];
	xmlNodePtr plain = NULL;
	int rc;

	if (!run->rs->decrypt)
		return reject(run, 400, "malformed",
			      "the Body is encrypted, but this receiver has no decrypt_key");
	rc = xmlenc_decrypt_element(run->rs->decrypt, *content, &plain);
	if (rc == GW_EINVALID) {
		snprintf(text, sizeof(text), "cannot decrypt the Body: %s", gw_error_last());
		return reject(run, 400, "malformed", text);
	}
	if (rc < 0)
		return temporary(run, "decryption failed");
	*content = plain;
	return 0;
}

/* The Notice must be the one the signed Header names: same id, revision and kind. */
static bool notice_matches_header(xmlNodePtr notice, const struct msg_header *h)
{
	char *id = xmlread_attr(notice, "id"), *revision = xmlread_attr(notice, "revision"),
	     *kind = xmlread_attr(notice, "kind");
	char want_revision[16];
	bool same;

	snprintf(want_revision, sizeof(want_revision), "%d", h->revision);
	same = id && revision && kind && strcmp(id, h->notice_id) == 0 &&
	       strcmp(revision, want_revision) == 0 && strcmp(kind, h->kind) == 0;
	xmlFree(id);
	xmlFree(revision);
	xmlFree(kind);
	return same;
}

static int check_body(struct accept_run *run)
{
	xmlNodePtr content = message_body_content(run->doc);
	int rc;

	if (node_is(content, NS_XENC, "EncryptedData") && (rc = decrypt_body(run, &content)) < 0)
		return rc;
	if (!node_is(content, NS_NOTICE, "Notice"))
		return reject(run, 400, "schema-invalid", "the Body does not hold a Notice");
	if (!notice_matches_header(content, &run->header))
		return reject(run, 400, "schema-invalid",
			      "the Notice's id, revision or kind differs from the Header's NoticeRef");
	rc = notice_extract(content, &run->item);
	if (rc == GW_EINVALID)
		return reject(run, 400, "schema-invalid", gw_error_last());
	return rc < 0 ? temporary(run, "cannot copy the Notice") : 0;
}

/* A duplicate or a conflict is known before anything is written. */
static int check_known(struct accept_run *run)
{
	struct inbox_entry have = { 0 };
	int rc = inbox_lookup(run->ib, run->header.message_id, &have);
	bool same = rc == 0 && strcmp(have.digest_b64, run->out->digest_b64) == 0;

	inbox_entry_clear(&have);
	if (rc == GW_ENOTFOUND) {
		gw_error_clear();
		return 0;
	}
	if (rc < 0)
		return temporary(run, "cannot look the MessageId up");
	if (!same)
		return reject(run, 409, "message-id-conflict",
			      "this MessageId was received before with other content");
	/* A worker that died between its commit and its move left the item in
	 * tmp/: finish the move before the sender is told it is delivered. */
	if (inbox_publish(run->ib, run->header.message_id) < 0)
		return temporary(run, "cannot move the stored item into new/");
	run->out->http_status = 200;
	run->out->status = "duplicate";
	return 1;
}

/* Build and sign the receipt for run->out's status and reason. */
static int receipt_sign(struct accept_run *run, gw_buf *out)
{
	struct receipt_info info;
	xmlDocPtr doc = NULL;
	int rc;

	memset(&info, 0, sizeof(info));
	snprintf(info.ref_message_id, sizeof(info.ref_message_id), "%s", run->out->message_id);
	memcpy(info.digest_b64, run->out->digest_b64, sizeof(info.digest_b64));
	timeutil_format_utc_ms(run->now_ms, info.received, sizeof(info.received));
	snprintf(info.receiver_orgnr, sizeof(info.receiver_orgnr), "%s", run->rs->cfg->identity.orgnr);
	snprintf(info.status, sizeof(info.status), "%s", run->out->status);
	if (run->out->reason_code) {
		snprintf(info.reason_code, sizeof(info.reason_code), "%s", run->out->reason_code);
		snprintf(info.reason_text, sizeof(info.reason_text), "%s", run->out->reason_text);
	}
	gw_buf_reset(out);
	if ((rc = receipt_build(&doc, &info)) == 0)
		rc = signer_sign_to_bytes(run->rs->signer, doc, out);
	xmlFreeDoc(doc);
	return rc;
}

static void entry_fill(struct accept_run *run, struct inbox_entry *e)
{
	e->header = run->header;
	memcpy(e->digest_b64, run->out->digest_b64, sizeof(e->digest_b64));
	snprintf(e->peer_orgnr, sizeof(e->peer_orgnr), "%s", run->peer_orgnr);
	timeutil_format_utc_ms(run->now_ms, e->received, sizeof(e->received));
	e->received_ms = run->now_ms;
	snprintf(e->status, sizeof(e->status), "accepted");
}

/*
 * A new message: sign the accepted receipt now (outside the inbox's write
 * lock, so workers sign in parallel) and leave it in pend (pend->out set);
 * the store comes later, together with the other messages ready at the
 * same time. When the same MessageId was stored meanwhile, the receipt
 * signed here is thrown away.
 */
static int pending_fill(struct accept_run *run, struct receiver_pending *pend)
{
	memset(pend, 0, sizeof(*pend));
	pend->rs = run->rs;
	pend->peer_orgnr = run->peer_orgnr;
	pend->body = run->body;
	pend->len = run->len;
	pend->now_ms = run->now_ms;
	pend->out = run->out;
	run->out->http_status = 200;
	run->out->status = "accepted";
	entry_fill(run, &pend->entry);
	if (receipt_sign(run, &pend->entry.receipt) < 0) {
		inbox_entry_clear(&pend->entry);
		pend->out = NULL;
		return temporary(run, "cannot sign the receipt");
	}
	pend->item = run->item; /* hand the buffer over */
	memset(&run->item, 0, sizeof(run->item));
	return 0;
}

static int pipeline(struct accept_run *run, struct receiver_pending *pend)
{
	int rc;

	if ((rc = check_peer_and_size(run)) < 0 || (rc = check_document(run)) < 0 ||
	    (rc = check_signature(run)) < 0 || (rc = check_recipient(run)) < 0 ||
	    (rc = check_known(run)) != 0 || (rc = check_age(run)) < 0 ||
	    (rc = check_body(run)) < 0)
		return rc;
	return pending_fill(run, pend);
}

static void run_init(struct accept_run *run, struct receiver_setup *rs, const char *peer_orgnr,
		     const unsigned char *body, size_t len, int64_t now_ms,
		     struct receiver_answer *out)
{
	memset(run, 0, sizeof(*run));
	run->rs = rs;
	run->peer_orgnr = peer_orgnr;
	run->body = body;
	run->len = len;
	run->now_ms = now_ms;
	run->out = out;
}

/* Every answer with a status carries a signed receipt. */
static int answer_sign(struct accept_run *run)
{
	if (run->out->status && run->out->body.len == 0 && receipt_sign(run, &run->out->body) < 0) {
		temporary(run, "cannot sign the receipt");
		return GW_ERROR;
	}
	return 0;
}

int receiver_accept_prepare(struct receiver_setup *rs, inbox *ib, const char *peer_orgnr,
			    const unsigned char *body, size_t len, struct receiver_answer *out,
			    struct receiver_pending *pend)
{
	struct accept_run run;
	int rc;

	run_init(&run, rs, peer_orgnr, body, len, timeutil_now_ms(), out);
	run.ib = ib;
	memset(out, 0, sizeof(*out));
	memset(pend, 0, sizeof(*pend));
	snprintf(out->message_id, sizeof(out->message_id), "%s", RECEIVER_UNKNOWN_MESSAGE_ID);
	if (receipt_digest(body, len, out->digest_b64) < 0) {
		temporary(&run, "cannot digest the request");
		rc = 0;
	} else {
		rc = pipeline(&run, pend);
	}
	xmlFreeDoc(run.doc);
	gw_buf_free(&run.item);
	if (rc == 0 && pend->out)
		return 1;
	/* out says everything: rejections and temporary failures alike */
	return answer_sign(&run) < 0 ? GW_ERROR : 0;
}

void receiver_pending_put(const struct receiver_pending *pend, struct inbox_put *put)
{
	memset(put, 0, sizeof(*put));
	put->entry = &pend->entry;
	put->message = pend->body;
	put->message_len = pend->len;
	put->item = pend->item.data;
	put->item_len = pend->item.len;
}

int receiver_accept_finish(struct receiver_pending *pend, const struct inbox_put *put)
{
	struct accept_run run;

	run_init(&run, pend->rs, pend->peer_orgnr, pend->body, pend->len, pend->now_ms, pend->out);
	if (put->rc < 0) {
		gw_error_set(put->rc, "%s", put->error);
		temporary(&run, "cannot store the message");
	} else if (put->outcome == INBOX_STORED) {
		gw_buf_free(&run.out->body);
		run.out->body = pend->entry.receipt; /* hand the buffer over */
		memset(&pend->entry.receipt, 0, sizeof(pend->entry.receipt));
	} else if (put->outcome == INBOX_CONFLICT) {
		reject(&run, 409, "message-id-conflict",
		       "this MessageId was received before with other content");
	} else {
		run.out->status = "duplicate";
	}
	receiver_pending_clear(pend);
	return answer_sign(&run);
}

void receiver_pending_clear(struct receiver_pending *pend)
{
	inbox_entry_clear(&pend->entry);
	gw_buf_free(&pend->item);
}

/* A new message stored on its own, now, and its answer made. */
static int store_alone(inbox *ib, struct receiver_pending *pend)
{
	struct inbox_put put;

	receiver_pending_put(pend, &put);
	inbox_store_many(ib, &put, 1); /* a failure is in put.rc and put.error */
	return receiver_accept_finish(pend, &put);
}

int receiver_accept(struct receiver_setup *rs, inbox *ib, const char *peer_orgnr,
		    const unsigned char *body, size_t len, struct receiver_answer *out)
{
	struct receiver_pending pend;
	int rc = receiver_accept_prepare(rs, ib, peer_orgnr, body, len, out, &pend);

	if (rc != 1)
		return rc;
	return store_alone(ib, &pend);
}

/* ======================================================================
 * TLS
 * ====================================================================== */

/*
 * Connections (tlsconn.h): each has a deadline of read_timeout seconds for
 * its TLS handshake and first request, and after each request for the
 * next, however slowly the bytes trickle in (evhttp's own timeout only
 * measures silence); a worker's cap is its share of max_connections.
 */

/*
 * A refused client certificate is logged with OpenSSL's reason and the
 * organisation it names, so that an operator can tell a partner why its
 * connections fail (an expired or too weak certificate, an unknown CA).
 */
static int verify_client(int preverify_ok, X509_STORE_CTX *xs)
{
	X509 *leaf = X509_STORE_CTX_get0_cert(xs);
	char org[10] = "-", detail[200];

	if (preverify_ok)
		return 1;
	if (leaf && pki_cert_orgnr(leaf, org) < 0)
		snprintf(org, sizeof(org), "-");
	snprintf(detail, sizeof(detail), "client certificate refused: %s (depth %d)",
		 X509_verify_cert_error_string(X509_STORE_CTX_get_error(xs)),
		 X509_STORE_CTX_get_error_depth(xs));
	gw_log(GW_LOG_WARN, "tls-refused", "peer_org", org, "detail", detail, NULL);
	return 0;
}

static int tls_client_cas(SSL_CTX *ctx, pki_trust *trust)
{
	STACK_OF(X509_NAME) *names = sk_X509_NAME_new_null();

	if (!names)
		return gw_error_set(GW_ENOMEM, "out of memory listing the trust anchors");
	for (size_t i = 0; i < pki_trust_anchor_count(trust); i++)
		SSL_add_file_cert_subjects_to_stack(names, pki_trust_anchor_file(trust, i));
	ERR_clear_error();
	SSL_CTX_set_client_CA_list(ctx, names);
	return 0;
}

/*
 * SIGHUP, in the parent and in each worker: the trust anchors and CRLs read
 * again, for client certificates (the next handshakes) and signatures
 * alike. A connection already open proves its certificate again at its
 * next request (peer_trusted_now).
 */
static int tls_trust_reload(SSL_CTX *ctx, struct receiver_setup *rs)
{
	if (trust_reload(rs) < 0)
		return GW_EINVALID;
	SSL_CTX_set1_cert_store(ctx, pki_trust_store(rs->trust));
	return tls_client_cas(ctx, rs->trust);
}

static void trust_reload_log(int rc)
{
	char pid[16];

	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	if (rc < 0)
		gw_log(GW_LOG_ERROR, "reload-failed", "pid", pid, "reason", gw_error_last(),
		       "action", "the trust read before stays in use", NULL);
	else
		gw_log(GW_LOG_INFO, "trust-reloaded", "pid", pid, NULL);
}

/* The key is read once, by pki_key_load(), from the file whose mode it checked. */
static int tls_identity(SSL_CTX *ctx, const struct config_identity *id)
{
	EVP_PKEY *key = NULL;
	int rc = 0;

	if (pki_key_load(&key, id->key) < 0)
		return gw_error_wrap(GW_EINVALID, "[identity] key");
	if (SSL_CTX_use_certificate_chain_file(ctx, id->cert) != 1)
		rc = gw_error_set(GW_EINVALID, "cannot use %s as the TLS server certificate: %s",
				  id->cert, pki_openssl_reason());
	else if (SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1)
		rc = gw_error_set(GW_EINVALID, "cannot use %s as the TLS server key: %s", id->key,
				  pki_openssl_reason());
	EVP_PKEY_free(key);
	return rc;
}

/*
 * The server context: TLS 1.2 or later at security level 2 (pki.h), a
 * client certificate required and verified against the same store (anchors,
 * CRLs and their flags) that signatures are verified with; no session
 * resumption, so every connection proves its certificate afresh.
 */
static int tls_context(SSL_CTX **out, struct receiver_setup *rs)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	*out = NULL;
	if (!ctx)
		return gw_error_set(GW_ERROR, "cannot create the TLS context: %s", pki_openssl_reason());
	if (tlsconn_init() < 0) {
		SSL_CTX_free(ctx);
		return GW_ERROR;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (SSL_CTX_get_security_level(ctx) < PKI_SECURITY_LEVEL)
		SSL_CTX_set_security_level(ctx, PKI_SECURITY_LEVEL);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION |
				 SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_client);
	SSL_CTX_set_verify_depth(ctx, 8);
	tlsconn_ctx_setup(ctx);
	SSL_CTX_set1_cert_store(ctx, pki_trust_store(rs->trust));
	if (tls_identity(ctx, &rs->cfg->identity) < 0 || tls_client_cas(ctx, rs->trust) < 0) {
		SSL_CTX_free(ctx);
		return GW_EINVALID;
	}
	*out = ctx;
	return 0;
}

/* ======================================================================
 * One worker process: an event loop serving HTTPS
 * ====================================================================== */

struct worker {
	struct receiver_setup *rs;
	SSL_CTX *ssl_ctx;
	inbox *ib;
	struct event_base *base;
	struct evhttp *http;
	struct evhttp_bound_socket *bound;
	struct event *on_term, *on_int, *on_hup, *drain;
	struct event *ev_commit;         /* hands the waiting requests to the committer */
	struct waiting *waiting, **waiting_tail;
	size_t n_waiting;
	offload *committer;              /* runs inbox_store_many() on store_ib */
	inbox *store_ib;                 /* the committer's own handle (SQLite connection) */
	struct waiting *committing;      /* the batch the committer has */
	struct inbox_put *puts;          /* its puts, in the same order */
	size_t n_committing;
	struct tlsconn_set conns;        /* every open connection; its cap: this worker's share */
	bool stopping;
	int64_t stop_deadline_ms;
	unsigned trust_generation; /* counts successful trust reloads */
};

/*
 * evhttp asks for a bufferevent per accepted connection (it sets the socket
 * right after). A connection refused at the cap (tlsconn_admit) is closed at
 * once: its deadline is now. Should SSL_new fail, evhttp falls back to a
 * plain socket; such a connection has no peer certificate and is answered
 * 403.
 */
static struct bufferevent *worker_new_connection(struct event_base *base, void *arg)
{
	struct worker *w = arg;
	SSL *ssl = SSL_new(w->ssl_ctx);
	struct bufferevent *bev;
	struct tlsconn *c;
	bool admitted = false;

	if (!ssl) {
		gw_log(GW_LOG_ERROR, "tls-failed", "detail", pki_openssl_reason(), NULL);
		return NULL;
	}
	if ((c = tlsconn_new(&w->conns, ssl)) != NULL) {
		c->trust_generation = w->trust_generation; /* its handshake will use this trust */
		admitted = tlsconn_admit(&w->conns, c, w->stopping);
	}
	bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
					     BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		SSL_free(ssl); /* frees c too */
		return NULL;
	}
	if (c) {
		c->bev = bev;
		tlsconn_arm(c, admitted ? w->rs->cfg->receiver.read_timeout : 0);
	}
	return bev;
}

/* The SSL of the request's connection; NULL for a plain one. */
static SSL *request_ssl(struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;

	return bev ? bufferevent_openssl_get_ssl(bev) : NULL;
}

static struct tlsconn *request_conn(struct evhttp_request *req)
{
	return tlsconn_of(request_ssl(req));
}

/* The worker a connection belongs to; NULL once the worker let go of it. */
static struct worker *conn_worker(const struct tlsconn *c)
{
	return c && c->set ? c->set->owner : NULL;
}

/* The verified client certificate's organisation; "" when there is none. */
static void request_peer_orgnr(struct evhttp_request *req, char org[10])
{
	SSL *ssl = request_ssl(req);
	X509 *cert = ssl ? SSL_get0_peer_certificate(ssl) : NULL;

	org[0] = '\0';
	if (!cert || SSL_get_verify_result(ssl) != X509_V_OK || pki_cert_orgnr(cert, org) < 0)
		org[0] = '\0';
	gw_error_clear();
}

/*
 * A connection whose client certificate passed under a trust since
 * reloaded is checked again under the new one before its next request is
 * read (a new CRL may revoke it): 0 when it passes, else the status to
 * answer (403, closing the connection, as "TLS client not allowed"; 503 when
 * the check itself could not run).
 */
static int peer_trusted_now(struct worker *w, struct tlsconn *c, struct evhttp_request *req)
{
	SSL *ssl = request_ssl(req);
	X509 *cert = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
	char org[10] = "-", detail[240];
	int rc;

	if (c->trust_generation == w->trust_generation)
		return 0;
	if (!cert)
		return 403;
	rc = pki_cert_verify(w->rs->trust, cert, SSL_get_peer_cert_chain(ssl), 0);
	if (rc == 0) {
		c->trust_generation = w->trust_generation;
		return 0;
	}
	if (rc != GW_EINVALID)
		return 503;
	if (pki_cert_orgnr(cert, org) < 0)
		snprintf(org, sizeof(org), "-");
	snprintf(detail, sizeof(detail), "client certificate refused after the trust was "
		 "reloaded, on a connection made before: %s", gw_error_last());
	gw_log(GW_LOG_WARN, "tls-refused", "peer_org", org, "detail", detail, NULL);
	gw_error_clear();
	return 403;
}

static const char *status_phrase(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	default: return "Service Unavailable";
	}
}

static void reply(struct evhttp_request *req, int status, const gw_buf *body)
{
	struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
	struct evbuffer *out = NULL;
	struct worker *w = conn_worker(request_conn(req));

	if (body && body->len) {
		out = evbuffer_new();
		if (out)
			evbuffer_add(out, body->data, body->len);
		evhttp_add_header(headers, "Content-Type", "application/xml");
	}
	if (status == 503)
		evhttp_add_header(headers, "Retry-After", RETRY_AFTER_SECONDS);
	if (status == 405)
		evhttp_add_header(headers, "Allow", "POST");
	/* A stopping worker closes each connection once it has answered on it. */
	if (status == 403 || status == 413 || (w && w->stopping))
		evhttp_add_header(headers, "Connection", "close");
	evhttp_send_reply(req, status, status_phrase(status), out);
	if (out)
		evbuffer_free(out);
}

static void log_answer(const struct receiver_answer *a, const char *peer_org)
{
	char status[8];

	snprintf(status, sizeof(status), "%d", a->http_status);
	if (a->status && strcmp(a->status, "rejected") != 0) {
		gw_log(GW_LOG_INFO, a->status, "msg", a->message_id, "peer_org", peer_org,
		       "status", status, "digest", a->digest_b64, NULL);
		return;
	}
	gw_log(a->http_status >= 500 ? GW_LOG_ERROR : GW_LOG_WARN,
	       a->http_status >= 500 ? "failed" : "rejected", "reason",
	       a->reason_code ? a->reason_code : status_phrase(a->http_status), "msg",
	       a->message_id, "peer_org", peer_org, "status", status, "digest", a->digest_b64,
	       "detail", a->reason_text, NULL);
}

static bool path_served(struct evhttp_request *req)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;

	return path && (strcmp(path, "/") == 0 || strcmp(path, "/notices") == 0);
}

/* 403 before anything else; then the path and the method. */
static int request_gate(struct worker *w, struct evhttp_request *req, const char *org)
{
	if (!receiver_peer_allowed(w->rs->cfg, org))
		return 403;
	if (!path_served(req))
		return 404;
	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST)
		return 405;
	return 0;
}

/*
 * A request whose new message waits for the worker's next group commit.
 * evhttp keeps an unanswered request alive even when its client goes
 * away (it is only detached from the connection), so req and its body
 * stay valid until reply() is called.
 */
struct waiting {
	struct waiting *next;
	struct evhttp_request *req;
	char org[10];
	struct receiver_answer answer;
	struct receiver_pending pend;
};

static void answer_send(struct evhttp_request *req, struct receiver_answer *answer, const char *org)
{
	struct tlsconn *c = request_conn(req);
	struct worker *w = conn_worker(c);

	if (answer->http_status == 200 && answer->status && strcmp(answer->status, "accepted") == 0)
		inbox_fault_point("before-answer");
	/* The next request's time starts now (a stored one's did not run meanwhile). */
	if (w)
		tlsconn_arm(c, w->rs->cfg->receiver.read_timeout);
	log_answer(answer, org);
	reply(req, answer->http_status, &answer->body);
	receiver_answer_clear(answer);
}

/* Each waiting request answered from its put (NULL: out of memory), then freed. */
static void answer_all(struct waiting *list, struct inbox_put *puts)
{
	struct waiting *next;

	for (size_t i = 0; list; list = next, i++) {
		struct inbox_put no_memory = { .rc = GW_ENOMEM, .error = "out of memory" };

		next = list->next;
		receiver_accept_finish(&list->pend, puts ? &puts[i] : &no_memory);
		answer_send(list->req, &list->answer, list->org);
		free(list);
	}
}

/* On the committer thread: store the batch (every put carries its own result). */
static void commit_job(void *arg)
{
	struct worker *w = arg;

	inbox_store_many(w->store_ib, w->puts, w->n_committing);
}

/* Back on the loop: answer the batch, then hand over what waited meanwhile. */
static void commit_done(void *arg)
{
	struct worker *w = arg;

	answer_all(w->committing, w->puts);
	free(w->puts);
	w->puts = NULL;
	w->committing = NULL;
	w->n_committing = 0;
	if (w->waiting)
		event_active(w->ev_commit, 0, 0);
}

/*
 * Group commit: the new messages of every request that became ready while
 * the previous batch was being stored go together to the committer thread
 * (one lock, one directory fsync each, one commit: inbox_store_many), and
 * each is answered when that returns. Meanwhile the loop reads, verifies
 * and signs the next requests, so their CPU work overlaps this batch's
 * waits on the disk. Runs as an event activated by the first waiting
 * request, so it comes after the other ready connections of that
 * iteration were read.
 */
static void worker_commit(struct worker *w)
{
	struct waiting *list = w->waiting;
	size_t n = w->n_waiting, i = 0;

	if (n == 0 || offload_busy(w->committer))
		return; /* commit_done() hands these over */
	w->waiting = NULL;
	w->waiting_tail = &w->waiting;
	w->n_waiting = 0;
	w->puts = calloc(n, sizeof(*w->puts));
	if (!w->puts) { /* nothing was acknowledged: each answer says so */
		answer_all(list, NULL);
		return;
	}
	for (struct waiting *q = list; q; q = q->next)
		receiver_pending_put(&q->pend, &w->puts[i++]);
	w->committing = list;
	w->n_committing = n;
	offload_start(w->committer, commit_job, commit_done, w); /* idle: cannot refuse */
}

static void worker_commit_event(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	worker_commit(arg);
}

/* Every waiting request stored and answered (stopping: nothing new comes). */
static void worker_commit_all(struct worker *w)
{
	if (!w->committer) { /* it never started: nothing can be stored */
		answer_all(w->waiting, NULL);
		w->waiting = NULL;
		w->waiting_tail = &w->waiting;
		w->n_waiting = 0;
		return;
	}
	do {
		offload_wait(w->committer);
		worker_commit(w);
	} while (offload_busy(w->committer));
}

/* 0 when the request now waits for the group commit; -1 to answer at once. */
static int wait_for_commit(struct worker *w, struct evhttp_request *req, const char *org,
			   struct receiver_answer *answer, struct receiver_pending *pend)
{
	struct waiting *q = calloc(1, sizeof(*q));

	if (!q)
		return -1;
	q->req = req;
	snprintf(q->org, sizeof(q->org), "%s", org);
	q->answer = *answer;
	q->pend = *pend;
	q->pend.out = &q->answer;
	*w->waiting_tail = q;
	w->waiting_tail = &q->next;
	w->n_waiting++;
	event_active(w->ev_commit, 0, 0);
	return 0;
}

static void worker_request(struct evhttp_request *req, void *arg)
{
	struct worker *w = arg;
	struct receiver_answer answer;
	struct receiver_pending pend;
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	const unsigned char *body;
	struct tlsconn *c;
	char org[10];
	int gate;

	/* This request is in; the answer and the next request get a new deadline. */
	if ((c = request_conn(req)) != NULL) {
		tlsconn_arm(c, w->rs->cfg->receiver.read_timeout);
		tlsconn_nodelay(c);
	}
	request_peer_orgnr(req, org);
	if (w->stopping) { /* nothing new now: the sender retries with the next worker */
		reply(req, 503, NULL);
		return;
	}
	if (c && (gate = peer_trusted_now(w, c, req)) != 0) {
		reply(req, gate, NULL);
		return;
	}
	if ((gate = request_gate(w, req, org)) != 0) {
		if (gate == 403)
			gw_log(GW_LOG_WARN, "rejected", "reason", "not-allowed", "peer_org",
			       org[0] ? org : "none", "status", "403", NULL);
		reply(req, gate, NULL);
		return;
	}
	body = len ? evbuffer_pullup(in, -1) : (const unsigned char *)"";
	if (!body) {
		gw_log(GW_LOG_ERROR, "failed", "peer_org", org, "detail",
		       "out of memory reading the request body", NULL);
		reply(req, 503, NULL);
		return;
	}
	if (receiver_accept_prepare(w->rs, w->ib, org, body, len, &answer, &pend) == 1 &&
	    wait_for_commit(w, req, org, &answer, &pend) == 0) {
		/* The client waits for our disk, not we for it: a slow commit
		 * must not cut the connection its answer goes back on. */
		if (c && c->deadline)
			event_del(c->deadline);
		return;
	}
	if (pend.out) /* a new message the queue had no memory for: alone, now */
		store_alone(w->ib, &pend);
	answer_send(req, &answer, org);
}

static void worker_drain_tick(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	(void)fd;
	(void)what;
	if ((w->conns.live <= 0 && w->n_waiting == 0 && !offload_busy(w->committer)) ||
	    timeutil_now_ms() >= w->stop_deadline_ms)
		event_base_loopbreak(w->base);
}

/* SIGTERM/SIGINT: stop accepting, let open connections finish, then leave. */
static void worker_signal(evutil_socket_t sig, short what, void *arg)
{
	struct worker *w = arg;
	struct timeval tick = { 0, DRAIN_TICK_MS * 1000 };

	(void)sig;
	(void)what;
	if (w->stopping)
		return;
	w->stopping = true;
	w->stop_deadline_ms = timeutil_now_ms() + (int64_t)w->rs->cfg->receiver.read_timeout * 1000;
	if (w->bound)
		evhttp_del_accept_socket(w->http, w->bound);
	w->bound = NULL;
	w->drain = event_new(w->base, -1, EV_PERSIST, worker_drain_tick, w);
	if (!w->drain || event_add(w->drain, &tick) < 0)
		event_base_loopbreak(w->base);
}

static int worker_http(struct worker *w, evutil_socket_t listen_fd)
{
	const struct config_receiver *rc = &w->rs->cfg->receiver;

	w->http = evhttp_new(w->base);
	if (!w->http)
		return gw_error_set(GW_ERROR, "cannot create the HTTP server");
	evhttp_set_bevcb(w->http, worker_new_connection, w);
	evhttp_set_gencb(w->http, worker_request, w);
	evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
						    EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
						    EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
	evhttp_set_max_body_size(w->http, (ev_ssize_t)rc->max_body);
	/* Drain an oversized body before answering 413: a sender still writing
	 * would otherwise see a reset instead of the answer, and take a
	 * permanent refusal for a temporary fault. The per-connection
	 * deadline bounds how long the draining may take. */
	if (evhttp_set_flags(w->http, EVHTTP_SERVER_LINGERING_CLOSE) != 0)
		return gw_error_set(GW_ERROR, "cannot set lingering close on the HTTP server");
	evhttp_set_max_headers_size(w->http, MAX_HEADERS_BYTES);
	evhttp_set_timeout(w->http, rc->read_timeout);
	w->bound = evhttp_accept_socket_with_handle(w->http, listen_fd);
	if (!w->bound)
		return gw_error_set(GW_ERROR, "cannot accept on the listening socket");
	return 0;
}

static int worker_base(struct worker *w)
{
	w->waiting_tail = &w->waiting;
	w->base = w->conns.base = event_base_new();
	if (w->base)
		w->ev_commit = event_new(w->base, -1, 0, worker_commit_event, w);
	if (!w->ev_commit)
		return gw_error_set(GW_ERROR, "cannot create an event loop");
	return offload_new(&w->committer, w->base);
}

static void worker_reload(evutil_socket_t sig, short what, void *arg)
{
	struct worker *w = arg;

	int rc;

	(void)sig;
	(void)what;
	rc = tls_trust_reload(w->ssl_ctx, w->rs);
	if (rc == 0)
		w->trust_generation++;
	trust_reload_log(rc);
}

static int worker_events(struct worker *w)
{
	w->on_term = evsignal_new(w->base, SIGTERM, worker_signal, w);
	w->on_int = evsignal_new(w->base, SIGINT, worker_signal, w);
	w->on_hup = evsignal_new(w->base, SIGHUP, worker_reload, w);
	if (!w->on_term || !w->on_int || !w->on_hup || evsignal_add(w->on_term, NULL) < 0 ||
	    evsignal_add(w->on_int, NULL) < 0 || evsignal_add(w->on_hup, NULL) < 0)
		return gw_error_set(GW_ERROR, "cannot watch for SIGTERM, SIGINT and SIGHUP");
	return 0;
}

static void worker_free(struct worker *w)
{
	bool answers = w->n_waiting > 0 || (w->committer && offload_busy(w->committer));

	/* Stored messages are answered before evhttp frees their requests, and
	 * the loop runs on (a second at most) to write those answers out: each
	 * closes its connection, and the drain tick ends the loop when none is
	 * left. */
	worker_commit_all(w);
	if (answers && w->base && w->drain) {
		struct timeval flush = { 1, 0 };

		event_base_loopexit(w->base, &flush);
		event_base_dispatch(w->base);
	}
	offload_free(w->committer);
	if (w->ev_commit)
		event_free(w->ev_commit);
	/* Connections are freed below, some only as the event loop is torn
	 * down: each lets go of w now, and its timer goes while the loop is whole. */
	tlsconn_set_release(&w->conns);
	if (w->http)
		evhttp_free(w->http);
	if (w->drain)
		event_free(w->drain);
	if (w->on_term)
		event_free(w->on_term);
	if (w->on_int)
		event_free(w->on_int);
	if (w->on_hup)
		event_free(w->on_hup);
	if (w->base)
		event_base_free(w->base);
	inbox_close(w->ib);
	inbox_close(w->store_ib);
}

/* The body of one worker process; returns its exit code. */
static int worker_run(struct receiver_setup *rs, SSL_CTX *ssl_ctx, evutil_socket_t listen_fd)
{
	const struct config_receiver *rc = &rs->cfg->receiver;
	struct worker w;
	int code = 0;

	memset(&w, 0, sizeof(w));
	w.rs = rs;
	w.ssl_ctx = ssl_ctx;
	w.conns.owner = &w;
	w.conns.prefix = "";
	w.conns.max_live = rc->max_connections / (rc->workers > 0 ? rc->workers : 1);
	if (w.conns.max_live < 1)
		w.conns.max_live = 1;
	if (inbox_open(&w.ib, rc->inbox, rc->db) < 0 ||
	    inbox_open(&w.store_ib, rc->inbox, rc->db) < 0 || worker_base(&w) < 0 ||
	    worker_http(&w, listen_fd) < 0 || worker_events(&w) < 0) {
		gw_log(GW_LOG_ERROR, "worker-failed", "detail", gw_error_last(), NULL);
		code = 1;
	} else {
		sigset_t hup;

		sigemptyset(&hup);
		sigaddset(&hup, SIGHUP);
		/* Only this thread takes SIGHUP (the committer started with it blocked). */
		pthread_sigmask(SIG_UNBLOCK, &hup, NULL);
		if (event_base_dispatch(w.base) < 0)
			code = 1;
	}
	worker_free(&w);
	return code;
}

/* ======================================================================
 * The parent: listening socket, supervision
 * ====================================================================== */

/*
 * One listening socket per worker, all bound to the same address with
 * SO_REUSEPORT, so the kernel spreads new connections over the workers by
 * their addresses. With one shared socket, the worker that woke first took
 * every connection waiting (libevent accepts until EAGAIN): one gateway's
 * keep-alive connections all landed on one worker and left the others idle.
 * Only a process of the same user can bind the port beside us (Linux).
 */
static int listen_one(const struct addrinfo *ai, int port, evutil_socket_t *out)
{
	struct sockaddr_storage addr;
	int fd, one = 1;

	memcpy(&addr, ai->ai_addr, ai->ai_addrlen);
	if (addr.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&addr)->sin6_port = htons((uint16_t)port);
	else
		((struct sockaddr_in *)&addr)->sin_port = htons((uint16_t)port);
	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&addr, ai->ai_addrlen) < 0 || listen(fd, 128) < 0 ||
	    evutil_make_socket_nonblocking(fd) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*out = fd;
	return 0;
}

static int bound_port_of(evutil_socket_t fd, int *port)
{
	struct sockaddr_storage addr;
	socklen_t addrlen = sizeof(addr);

	if (getsockname(fd, (struct sockaddr *)&addr, &addrlen) < 0)
		return -1;
	*port = ntohs(addr.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&addr)->sin6_port
						 : ((struct sockaddr_in *)&addr)->sin_port);
	return 0;
}

static void close_all(evutil_socket_t *fds, int n)
{
	for (int i = 0; i < n; i++)
		close(fds[i]);
}

/* n sockets on host:port (port 0: the first picks one, the others join it). */
static int listen_sockets(const char *host, int port, evutil_socket_t *fds, int n,
			  int *bound_port)
{
	struct addrinfo hints, *res = NULL;
	char service[16];
	int gai, i;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	snprintf(service, sizeof(service), "%d", port);
	if ((gai = getaddrinfo(host, service, &hints, &res)) != 0)
		return gw_error_set(GW_EINVALID, "cannot resolve listen address %s: %s", host,
				    gai_strerror(gai));
	*bound_port = port;
	for (i = 0; i < n; i++) {
		if (listen_one(res, *bound_port, &fds[i]) < 0)
			break;
		if (i == 0 && bound_port_of(fds[0], bound_port) < 0) {
			close(fds[0]);
			break;
		}
	}
	freeaddrinfo(res);
	if (i < n) {
		gw_error_set(GW_ERROR, "cannot listen on %s port %d: %s", host, port,
			     strerror(errno));
		close_all(fds, i);
		return GW_ERROR;
	}
	return 0;
}

static int port_file_write(const char *path, int port)
{
	char dir[PATH_MAX], base[PATH_MAX], text[16];
	int n = snprintf(text, sizeof(text), "%d\n", port);

	snprintf(dir, sizeof(dir), "%s", path);
	snprintf(base, sizeof(base), "%s", path);
	return fsutil_write_durable(dirname(dir), basename(base), text, (size_t)n, 0644);
}

struct supervisor {
	struct receiver_setup *rs;
	SSL_CTX *ssl_ctx;
	evutil_socket_t listen_fds[MAX_WORKERS]; /* one per slot */
	sigset_t old_mask;
	int n;
	pid_t pids[MAX_WORKERS];
	int64_t restart_at[MAX_WORKERS]; /* 0: running or never started */
};

static void noop_handler(int sig)
{
	(void)sig;
}

/* In the child: the parent's blocked signals back to normal, then serve. */
static int worker_child(struct supervisor *s, int slot)
{
	struct sigaction dfl;
	sigset_t mask;

	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigaction(SIGCHLD, &dfl, NULL);
	/* SIGHUP stays blocked until the worker watches for it (worker_run):
	 * a reload sent meanwhile waits instead of ending or missing it. */
	mask = s->old_mask;
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_SETMASK, &mask, NULL);
	/* Should the parent be killed outright, its workers stop too. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() == 1)
		raise(SIGTERM);
	for (int i = 0; i < s->n; i++)
		if (i != slot)
			close(s->listen_fds[i]);
	return worker_run(s->rs, s->ssl_ctx, s->listen_fds[slot]);
}

/* 1 in the child once it has finished serving (its exit code in *code). */
static int worker_start(struct supervisor *s, int slot, int *code)
{
	pid_t pid = fork();

	if (pid < 0) {
		s->restart_at[slot] = timeutil_now_ms() + RESTART_DELAY_MS;
		gw_log(GW_LOG_ERROR, "worker-fork-failed", "detail", strerror(errno), NULL);
		return 0;
	}
	if (pid == 0) {
		*code = worker_child(s, slot);
		return 1;
	}
	s->pids[slot] = pid;
	s->restart_at[slot] = 0;
	return 0;
}

static void worker_died_log(pid_t pid, int status)
{
	char id[16], how[48];

	snprintf(id, sizeof(id), "%ld", (long)pid);
	if (WIFSIGNALED(status))
		snprintf(how, sizeof(how), "killed by signal %d", WTERMSIG(status));
	else
		snprintf(how, sizeof(how), "exited with %d", WEXITSTATUS(status));
	gw_log(GW_LOG_ERROR, "worker-died", "pid", id, "detail", how, "action",
	       "restarting it in 1 s", NULL);
}

static void workers_reap(struct supervisor *s)
{
	pid_t pid;
	int status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (int i = 0; i < s->n; i++) {
			if (s->pids[i] != pid)
				continue;
			s->pids[i] = 0;
			s->restart_at[i] = timeutil_now_ms() + RESTART_DELAY_MS;
			worker_died_log(pid, status);
		}
	}
}

/* Start every slot that is due; 1 when this is a child done serving. */
static int workers_start_due(struct supervisor *s, int *code)
{
	int64_t now = timeutil_now_ms();

	for (int i = 0; i < s->n; i++)
		if (s->pids[i] == 0 && s->restart_at[i] <= now && worker_start(s, i, code))
			return 1;
	return 0;
}

/* SIGHUP: the parent's trust first (replacement workers start with it), then each worker's. */
static void workers_reload(struct supervisor *s)
{
	int rc = tls_trust_reload(s->ssl_ctx, s->rs);

	trust_reload_log(rc);
	if (rc < 0)
		return;
	for (int i = 0; i < s->n; i++)
		if (s->pids[i] > 0)
			kill(s->pids[i], SIGHUP);
}

static void workers_stop(struct supervisor *s)
{
	for (int i = 0; i < s->n; i++)
		if (s->pids[i] > 0)
			kill(s->pids[i], SIGTERM);
	for (int i = 0; i < s->n; i++)
		if (s->pids[i] > 0 && waitpid(s->pids[i], NULL, 0) == s->pids[i])
			s->pids[i] = 0;
}

/*
 * The parent's loop: signals arrive blocked and are taken with
 * sigtimedwait, so there is no handler to race with. Returns the exit code;
 * in a child, *is_child is set and the child's exit code returned.
 */
static int supervise(struct supervisor *s, bool *is_child)
{
	struct timespec tick = { 0, 200 * 1000 * 1000 };
	sigset_t set;
	int code = 0, sig;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGHUP);
	for (;;) {
		if (workers_start_due(s, &code)) {
			*is_child = true;
			return code;
		}
		sig = sigtimedwait(&set, NULL, &tick);
		if (sig == SIGTERM || sig == SIGINT)
			break;
		if (sig == SIGHUP)
			workers_reload(s);
		workers_reap(s);
	}
	gw_log(GW_LOG_INFO, "stopping", "detail", "signal received; workers finish their requests",
	       NULL);
	workers_stop(s);
	return 0;
}

static int supervisor_run(struct supervisor *s, bool *is_child)
{
	struct sigaction sa;
	sigset_t set;
	int code;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = noop_handler; /* SIGCHLD must not be ignored to be waited for */
	sigaction(SIGCHLD, &sa, NULL);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, &s->old_mask);
	code = supervise(s, is_child);
	if (!*is_child)
		sigprocmask(SIG_SETMASK, &s->old_mask, NULL);
	return code;
}

/* ======================================================================
 * gateway receive
 * ====================================================================== */

struct receive_options {
	const char *config;
	const char *schemas;
	const char *port_file;
	int port; /* -1: from the configuration */
};

static void receive_usage(FILE *out)
{
	fprintf(out, "usage: gateway receive --config FILE [--schemas DIR] [--port N] "
		     "[--port-file PATH]\n"
		     "  --config FILE     the receiver's configuration ([identity], [receiver])\n"
		     "  --schemas DIR     directory with notice.xsd, message.xsd and receipt.xsd\n"
		     "                    (default: [identity] schemas)\n"
		     "  --port N          listen on port N instead of the configured one (0: any)\n"
		     "  --port-file PATH  write the port actually bound to PATH\n");
}

static int parse_port(const char *text, int *port)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(text, &end, 10);
	if (errno || *end || end == text || v < 0 || v > 65535)
		return gw_error_set(GW_EINVALID, "--port '%s' is not a port number", text);
	*port = (int)v;
	return 0;
}

/* 0 to run, 1 when --help was asked, 2 on a usage error. */
static int receive_parse(int argc, char **argv, struct receive_options *o)
{
	o->port = -1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
			return 1;
		if (!v || (strcmp(a, "--config") && strcmp(a, "--schemas") &&
			   strcmp(a, "--port-file") && strcmp(a, "--port"))) {
			fprintf(stderr, "gateway receive: unknown or incomplete option '%s'\n", a);
			return 2;
		}
		i++;
		if (strcmp(a, "--config") == 0)
			o->config = v;
		else if (strcmp(a, "--schemas") == 0)
			o->schemas = v;
		else if (strcmp(a, "--port-file") == 0)
			o->port_file = v;
		else if (parse_port(v, &o->port) < 0) {
			fprintf(stderr, "gateway receive: %s\n", gw_error_last());
			return 2;
		}
	}
	if (!o->config) {
		fprintf(stderr, "gateway receive: --config FILE is required\n");
		return 2;
	}
	return 0;
}

/* Finish what a crash interrupted before any worker serves. */
static int inbox_prepare(const struct config_receiver *rc)
{
	inbox *ib = NULL;
	int published, discarded, rc2;
	char a[16], b[16];

	if ((rc2 = inbox_open(&ib, rc->inbox, rc->db)) == 0)
		rc2 = inbox_recover(ib, &published, &discarded);
	inbox_close(ib);
	if (rc2 < 0)
		return rc2;
	if (published || discarded) {
		snprintf(a, sizeof(a), "%d", published);
		snprintf(b, sizeof(b), "%d", discarded);
		gw_log(GW_LOG_INFO, "inbox-recovered", "published", a, "discarded", b, NULL);
	}
	return 0;
}

static int workers_wanted(const struct config_receiver *rc)
{
	if (rc->workers < 1)
		return 1;
	return rc->workers > MAX_WORKERS ? MAX_WORKERS : rc->workers;
}

static int serve(struct receiver_setup *rs, const struct receive_options *o, SSL_CTX *ctx)
{
	const struct config_receiver *rc = &rs->cfg->receiver;
	int port = o->port >= 0 ? o->port : rc->listen_port, bound_port = 0, code;
	struct supervisor s;
	bool is_child = false;
	char text[16];

	memset(&s, 0, sizeof(s));
	s.rs = rs;
	s.ssl_ctx = ctx;
	s.n = workers_wanted(rc);
	if (inbox_prepare(rc) < 0 ||
	    listen_sockets(rc->listen_host, port, s.listen_fds, s.n, &bound_port) < 0) {
		fprintf(stderr, "gateway receive: %s\n", gw_error_last());
		return 1;
	}
	if (o->port_file && port_file_write(o->port_file, bound_port) < 0) {
		fprintf(stderr, "gateway receive: --port-file: %s\n", gw_error_last());
		close_all(s.listen_fds, s.n);
		return 1;
	}
	snprintf(text, sizeof(text), "%d", bound_port);
	gw_log(GW_LOG_INFO, "listening", "host", rc->listen_host, "port", text, NULL);
	code = supervisor_run(&s, &is_child);
	if (!is_child)
		close_all(s.listen_fds, s.n);
	return code;
}

int receiver_main(int argc, char **argv)
{
	struct receive_options o = { NULL, NULL, NULL, -1 };
	struct receiver_setup rs;
	SSL_CTX *ctx = NULL;
	int code, rc;

	if ((code = receive_parse(argc, argv, &o)) != 0) {
		receive_usage(code == 1 ? stdout : stderr);
		return code == 1 ? 0 : 2;
	}
	signal(SIGPIPE, SIG_IGN);
	{
		/* A reload during start-up waits (the supervisor takes it, a
		 * worker once it watches for it) instead of ending the receiver. */
		sigset_t hup;

		sigemptyset(&hup);
		sigaddset(&hup, SIGHUP);
		sigprocmask(SIG_BLOCK, &hup, NULL);
	}
	rc = receiver_setup_open(&rs, o.config, o.schemas, true);
	if (rc == 0)
		rc = tls_context(&ctx, &rs);
	if (rc < 0) {
		fprintf(stderr, "gateway receive: %s\n", gw_error_last());
		code = rc == GW_EINVALID ? 2 : 1;
	} else {
		code = serve(&rs, &o, ctx);
	}
	SSL_CTX_free(ctx);
	receiver_setup_close(&rs);
	return code;
}
