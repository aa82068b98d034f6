/*
 * intake: from a file in the spool to committed messages (see intake.h).
 *
 * A scan takes the files of incoming/new in name order, in chunks of up to
 * INTAKE_CHUNK_FILES (intake.h). A chunk is ONE store transaction (BEGIN
 * ... COMMIT, one sync of the database's log for all its files); each file
 * of it, in this order:
 *   1. spool_read(): symlinks, non-regular files, hard links and oversized
 *      files are rejected unread with fsutil's reason code (at once).
 *   2. SHA-256 of the bytes. Seen before (by the store, this chunk's
 *      transaction included): a duplicate, nothing produced; it waits for
 *      the COMMIT and is moved with the others (6). This comes before
 *      parsing so a file left behind by a crash after COMMIT is never
 *      judged again (its date may have passed).
 *   3. notice_parse(): a rejection carries notice.c's reason code (at once).
 *   4. A nested transaction (SAVEPOINT) of its own: revision rules
 *      (stale-revision, revision-conflict); the notice row; supersede older
 *      undelivered messages (release, transfer) or cancel them and tell
 *      those already reached (withdrawal); one message per recipient. Any
 *      failure rolls back this notice only; the file stays in incoming/new.
 *      A revision refusal was judged against the chunk's transaction, so it
 *      is rejected only after the COMMIT (6).
 * Then:
 *   5. COMMIT of the chunk. When it fails, nothing of the chunk was stored:
 *      every file waiting for it stays in incoming/new (intake-failed) and
 *      is taken again at the next scan.
 *   6. Only now do the chunk's files leave incoming/new: revision refusals
 *      to rejected/ (reason file, both directories synced), accepted files
 *      and duplicates renamed into processed/, then ONE fsync of processed/
 *      for all of them (spool_sync_processed: why incoming/new needs none);
 *      then each file's log line. Each move takes only the file that was
 *      read (its spool_id): spool.c renames it to a staging name first and
 *      compares it there, so a file a producer renamed onto the name
 *      meanwhile goes back to incoming/new unread (replaced-before-move),
 *      whenever the producer's rename came; the same for every rejection
 *      but a bad name's. Crash safety stays as it was: the COMMIT comes
 *      before any move, so a crash between 5 and 6, or during a move (the
 *      file staged: spool_recover puts it back before the next listing),
 *      leaves files whose bytes are recorded, and the next scan moves them
 *      as duplicates by their SHA-256.
 *
 * intake_file() is a chunk of one file.
 *
 * Read-ahead (intake_ahead_new/run/ready, intake.h): steps 1 and 3 and the
 * making of each release's or transfer's messages (build, encrypt, sign)
 * can be done before the step, on another thread, by a helper struct
 * intake with its own signer and certificate cache and no store. The step
 * still does step 2 first (a duplicate is a duplicate, however it parsed),
 * then the store work with the notice and messages made ahead; what it
 * logs and rejects is worded as without the read-ahead. A withdrawal's
 * messages depend on the store (which earlier messages reached whom), so
 * they are always made by the step.
 *
 * A recipient is held, not dropped, when it has no endpoint ("no
 * endpoint"), its endpoint needs consent and has no Grant ("no consent"),
 * or its endpoint wants encryption and one of its certificates is refused
 * when loaded (not RSA, too weak, another organisation, not trusted or
 * revoked) or none is valid now ("encryption certificate unusable: ..."):
 * never sent in clear.
 *
 * Per message: notice_filtered_copy() (core + granted Needs, no Recipients
 * or Consent, a Withdrawal naming the recipient's service only) -> message_build() -> intake_encrypt_body() when the
 * endpoint has encrypt_cert (xmlenc_encrypt_element on the Body's Notice)
 * -> signer_sign_to_bytes(). Encrypt, then sign.
 *
 * intake_release_held() runs the same steps later for messages held "no
 * endpoint" (or for an unusable certificate), from the original notice in
 * processed/, checked against the SHA-256 recorded at intake.
 *
 * Each file gives one log line: event=accepted|rejected|duplicate, or, when
 * it cannot be finished (disk full or read-only, database locked, full or
 * damaged), intake-failed|move-failed|reject-failed with the cause (error=)
 * and what becomes of the file (next=): where it is and what happens next.
 * Mostly it stays in incoming/new and the next scan takes it again (a file
 * whose messages were committed is then recognised by its SHA-256 and only
 * moved); a move whose directory sync failed leaves it in processed/ (or
 * rejected/), which the next scan syncs again; a failed way back leaves it
 * staged until the next scan puts it back. A person appears only as the
 * keyed pseudonym (person=); texts never hold a nin.
 */
#include "intake.h"
#include "backoff.h"
#include "err.h"
#include "fsutil.h"
#include "ident.h"
#include "log.h"
#include "message.h"
#include "notice.h"
#include "pki.h"
#include "receipt.h"
#include "timeutil.h"
#include "xmlenc.h"

#include <dirent.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DEFAULT_LEAD_DAYS 14    /* SPEC section 9, for recipients without an endpoint */
#define DEFAULT_MAX_BYTES (1024 * 1024)

/* One file on its way through intake. */
struct job {
	struct intake *in;
	const char *name;
	int64_t now;
	char sha256[65];
	struct notice n;
	char person[17];
	int older_revision;      /* latest accepted revision below this one; 0: none */
	const char *reject_code; /* set when the revision rules refuse the notice */
	bool late, weekend;
	int queued, held, superseded, cancelled;
	bool ahead;                /* run by intake_ahead_run(): nothing logged, no store */
	struct spool_id id;        /* the file read */
	struct store_message *made; /* one per recipient, made ahead; NULL: make them here */
};

/* ---- small helpers ---- */

static void copy_str(char *dst, size_t size, const char *src)
{
	size_t len = strlen(src);

	if (len >= size)
		len = size - 1;
	memcpy(dst, src, len);
	dst[len] = '\0';
}

static const char *itoa_buf(char *buf, size_t size, long long v)
{
	snprintf(buf, size, "%lld", v);
	return buf;
}

static int64_t clock_now(const struct intake *in)
{
	return in->now_ms ? in->now_ms() : timeutil_now_ms();
}

static size_t max_bytes(const struct intake *in)
{
	return in->cfg->gateway.max_notice_bytes ? in->cfg->gateway.max_notice_bytes
						 : DEFAULT_MAX_BYTES;
}

static int sha256_hex(const unsigned char *data, size_t len, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;

	if (!EVP_Digest(data, len, md, &md_len, EVP_sha256(), NULL) || md_len != 32)
		return gw_error_set(GW_ERROR, "cannot compute SHA-256 of a spool file");
	for (unsigned i = 0; i < md_len; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 0xf];
	}
	out[64] = '\0';
	return 0;
}

/* ---- the three outcomes ---- */

/*
 * What becomes of a file intake could not finish, for its log line (next=):
 * where it is and what happens to it next. One still in incoming/new is
 * taken again by the next scan; where spool.c left it elsewhere, next_text()
 * says where.
 */
#define NEXT_RETRY "nothing of it was stored; it stays in incoming/new and is taken again at the next scan"
#define NEXT_MOVE                                                                  \
	"its messages are committed; it stays in incoming/new and the next scan moves " \
	"it to processed/ as already taken, with no second set of messages"
#define NEXT_REJECT "it stays in incoming/new and is rejected again at the next scan"
#define READ_COMMITTED "what was read is committed"
#define READ_DROPPED "nothing of what was read is kept or rejected"
#define BAD_NAME "the file name does not match [A-Za-z0-9][A-Za-z0-9._-]{0,127}.xml"

/*
 * next= for a file whose move into processed/ (reject: rejected/) failed,
 * from where spool.c says it is (at); head opens the sentence for
 * processed/ ("its messages are committed; ").
 */
static const char *next_text(char *buf, size_t len, const struct spool_moved *at, bool reject,
			     const char *head)
{
	const char *dir = reject ? "rejected/" : "processed/";
	const char *again = reject ? "rejects it again"
				   : "moves it to processed/ as already taken, with no second "
				     "set of messages";

	if (at->place == SPOOL_IN_NEW)
		return reject ? NEXT_REJECT : NEXT_MOVE;
	if (at->place == SPOOL_STAGED)
		snprintf(buf, len, "%sit waits as %s%s until the next scan puts it back into "
			 "incoming/new and %s", head, dir, at->name, again);
	else if (at->place == SPOOL_KEPT)
		snprintf(buf, len, "%sa producer took its name in incoming/new meanwhile, so it is "
			 "kept as rejected/%s with reason " SPOOL_REPLACED "; nothing more happens "
			 "to it", head, at->name);
	else
		snprintf(buf, len, "%sit is in %s%s%s, but the move is not durable yet: the next "
			 "scan syncs %s again, and should a power cut undo the move first, the "
			 "file is back in incoming/new and the next scan %s", head, dir, at->name,
			 reject ? " with its reason" : "", dir, again);
	return buf;
}

/*
 * A producer put another file under the name after it was read: that file
 * was not moved in the name of what was read (spool.c took it back); at
 * says where it is. what_read: READ_COMMITTED or READ_DROPPED.
 */
static void log_replaced(const char *name, const struct spool_moved *at, const char *what_read)
{
	char next[768], kept[SPOOL_MOVED_MAX + 16];

	if (at->place != SPOOL_KEPT) {
		snprintf(next, sizeof(next), "%s; the file now under that name is in incoming/new "
			 "and is read at the next scan", what_read);
		gw_log(GW_LOG_WARN, "replaced-before-move", "file", name, "error", gw_error_last(),
		       "next", next, NULL);
		return;
	}
	snprintf(kept, sizeof(kept), "rejected/%s", at->name);
	snprintf(next, sizeof(next), "%s; the file now under that name was never read: the name "
		 "was taken again before it could go back to incoming/new, so it is kept as %s "
		 "with reason " SPOOL_REPLACED "; deliver it again under a new name", what_read,
		 kept);
	gw_log(GW_LOG_WARN, "replaced-before-move", "file", name, "kept_as", kept, "error",
	       gw_error_last(), "next", next, NULL);
}

/* Reject a file; id: the file read or refused (NULL: a bad name, whatever bears it). */
static int reject_file(struct intake *in, const char *name, const struct spool_id *id,
		       const char *code, const char *sentence, const char *notice_id)
{
	char text[512], next[768];
	struct spool_moved at;
	int rc;

	copy_str(text, sizeof(text), sentence); /* spool_reject may overwrite the error */
	rc = spool_reject(in->spool, name, id, code, text, &at);
	if (rc == GW_ETEMP) {
		log_replaced(name, &at, READ_DROPPED);
		return rc;
	}
	if (rc < 0) {
		in->spool_checked = false; /* a staged file, or a sync to make again */
		gw_log(GW_LOG_ERROR, "reject-failed", "file", name, "reason", code, "error",
		       gw_error_last(), "next", next_text(next, sizeof(next), &at, true, ""), NULL);
		return rc;
	}
	gw_log(GW_LOG_WARN, "rejected", "file", name, "moved_to", at.name, "reason", code,
	       "notice", notice_id ? notice_id : "", "detail", text, NULL);
	return 0;
}

/*
 * A file whose fate was decided inside a chunk's transaction and which
 * leaves incoming/new only after that transaction's COMMIT: accepted (its
 * notice and messages are in the transaction), a duplicate (its bytes are
 * recorded, maybe by this very transaction), or refused by the revision
 * rules (judged against what the transaction holds, so that waits for the
 * COMMIT as well).
 */
struct taken {
	const char *name;
	enum intake_outcome outcome;
	char sha256[65];
	char notice_id[NOTICE_ID_MAX + 1];
	int revision;
	char kind[16];
	int queued, held, superseded, cancelled;
	bool late, weekend;
	char person[17];
	const char *reject_code;
	char reject_text[512];
	struct spool_moved at; /* where it is after the move (processed/NAME once moved) */
	struct spool_id id;    /* the file that was read under that name */
	bool moved;
};

/* One chunk of a scan: what waits for its COMMIT, and what happened. */
struct chunk {
	struct taken *v;
	size_t n, cap;
	int accepted, rejected, duplicates, failed;
	int first_error;
};

static int chunk_init(struct chunk *c, size_t cap)
{
	memset(c, 0, sizeof(*c));
	if (!(c->v = calloc(cap, sizeof(*c->v))))
		return gw_error_set(GW_ENOMEM, "out of memory taking in the spool");
	c->cap = cap;
	return 0;
}

/* A file that stays in incoming/new; its log line is written. */
static void chunk_failed(struct chunk *c, int rc)
{
	c->failed++;
	if (!c->first_error)
		c->first_error = rc;
}

static void note_taken(struct chunk *c, const struct job *j, enum intake_outcome outcome)
{
	struct taken *t = &c->v[c->n++];

	memset(t, 0, sizeof(*t));
	t->name = j->name;
	t->id = j->id;
	t->outcome = outcome;
	copy_str(t->sha256, sizeof(t->sha256), j->sha256);
	copy_str(t->notice_id, sizeof(t->notice_id), j->n.id);
	t->revision = j->n.revision;
	copy_str(t->kind, sizeof(t->kind), j->n.kind);
	t->queued = j->queued;
	t->held = j->held;
	t->superseded = j->superseded;
	t->cancelled = j->cancelled;
	t->late = j->late;
	t->weekend = j->weekend;
	copy_str(t->person, sizeof(t->person), j->person);
	if (outcome == INTAKE_REJECTED) {
		t->reject_code = j->reject_code;
		copy_str(t->reject_text, sizeof(t->reject_text), gw_error_last());
	}
}

static void reject_now(struct chunk *c, struct intake *in, const char *name,
		       const struct spool_id *id, const char *code, const char *sentence,
		       const char *notice_id)
{
	int rc = reject_file(in, name, id, code, sentence, notice_id);

	if (rc < 0)
		chunk_failed(c, rc);
	else
		c->rejected++;
}

static void log_accepted(const struct taken *t)
{
	char rev[16], queued[16], held[16], sup[16], can[16];

	gw_log(GW_LOG_INFO, "accepted", "file", t->name, "moved_to", t->at.name, "notice",
	       t->notice_id, "revision", itoa_buf(rev, sizeof(rev), t->revision), "kind", t->kind,
	       "messages", itoa_buf(queued, sizeof(queued), t->queued),
	       "held", itoa_buf(held, sizeof(held), t->held),
	       "superseded", itoa_buf(sup, sizeof(sup), t->superseded),
	       "cancelled", itoa_buf(can, sizeof(can), t->cancelled),
	       "late", t->late ? "true" : "false", "weekend", t->weekend ? "true" : "false",
	       "person", t->person[0] ? t->person : "-", NULL);
}

/*
 * A file whose move into processed/ failed or is not durable: t->at says
 * where it is (still in incoming/new, staged, or in processed/ unsynced).
 */
static void move_failed(struct intake *in, struct chunk *c, const struct taken *t, int rc)
{
	const char *head = t->outcome == INTAKE_ACCEPTED ? "its messages are committed; "
							 : "its bytes were taken in before; ";
	char buf[768];
	const char *next = next_text(buf, sizeof(buf), &t->at, false, head);

	in->spool_checked = false; /* a staged file, or processed/ to sync again */
	if (t->outcome == INTAKE_ACCEPTED)
		gw_log(GW_LOG_ERROR, "move-failed", "file", t->name, "notice", t->notice_id,
		       "error", gw_error_last(), "next", next, NULL);
	else
		gw_log(GW_LOG_ERROR, "move-failed", "file", t->name, "error", gw_error_last(),
		       "next", next, NULL);
	chunk_failed(c, rc);
}

/* ---- time ---- */

/*
 * Retry until the later of now + the horizon and the end of the day after
 * the event date (Oslo): a notice is never given up before its date passed.
 * The rule is backoff_horizon(), which `gateway retry` uses too.
 */
static int64_t deadline_for(const struct job *j, const char *event_date)
{
	return backoff_horizon(j->now, j->in->cfg->gateway.retry_horizon_days, event_date, 0);
}

/* ---- recipients ---- */

/* The endpoint of a recipient; *orgnr is the organisation asked for ("" if none). */
static const struct config_endpoint *resolve(const struct job *j,
					     const struct notice_recipient *r,
					     const char **orgnr)
{
	*orgnr = r->orgnr;
	if (!r->orgnr[0] && r->service == SVC_PRISON)
		*orgnr = j->n.transfer_to;
	return config_endpoint_resolve(j->in->cfg, r->service, *orgnr, j->n.municipality);
}

/* late_at_intake and weekend_release (SPEC section 9); releases only. */
static void flag_timeliness(struct job *j)
{
	struct gw_date release, today;
	int64_t days_left;

	if (strcmp(j->n.kind, "release") != 0 || timeutil_parse_date(j->n.event_date, &release) < 0)
		return;
	today = timeutil_oslo_date(j->now);
	days_left = timeutil_days_from_civil(release) - timeutil_days_from_civil(today);
	for (size_t i = 0; i < j->n.n_recipients; i++) {
		const char *orgnr;
		const struct config_endpoint *ep = resolve(j, &j->n.recipients[i], &orgnr);
		/* 0 (configured) is no lead time: never late here, as in report.c */
		int lead = ep ? ep->lead_days : DEFAULT_LEAD_DAYS;

		if (days_left < lead)
			j->late = true;
	}
	j->weekend = timeutil_is_weekend_release(release);
}

/* ---- messages ---- */

static int message_init(struct job *j, struct store_message *m, const char *service,
			const char *orgnr, const struct config_endpoint *ep, const char *event_date)
{
	memset(m, 0, sizeof(*m));
	if (ident_uuid4_new(m->message_id) < 0)
		return gw_error_wrap(GW_ERROR, "cannot make a MessageId");
	copy_str(m->notice_id, sizeof(m->notice_id), j->n.id);
	m->revision = j->n.revision;
	copy_str(m->kind, sizeof(m->kind), j->n.kind);
	copy_str(m->service, sizeof(m->service), service);
	copy_str(m->recipient_orgnr, sizeof(m->recipient_orgnr), ep ? ep->orgnr : orgnr);
	copy_str(m->endpoint, sizeof(m->endpoint), ep ? ep->name : "");
	m->state = MSG_QUEUED;
	copy_str(m->event_date, sizeof(m->event_date), event_date);
	m->created_ms = j->now;
	m->next_attempt_ms = j->now;
	m->deadline_ms = deadline_for(j, event_date);
	return 0;
}

static void hold(struct store_message *m, const char *reason)
{
	m->state = MSG_HELD;
	copy_str(m->reason, sizeof(m->reason), reason);
	m->digest_b64[0] = '\0';
	gw_buf_reset(&m->signed_bytes);
}

/* ---- encryption certificates, cached per endpoint ---- */

/* One certificate file as loaded, and how to tell it was replaced. */
struct cert_slot {
	char path[PATH_MAX];
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	X509 *cert;
};

struct cert_entry {
	char endpoint[64];
	size_t n; /* 0: nothing loaded */
	struct cert_slot slot[2];
	pki_trust *trust; /* what the slots were checked against (endpoint_trust) */
};

struct intake_certs {
	struct cert_entry *v;
	size_t n, cap;
};

static void entry_clear(struct cert_entry *e)
{
	for (size_t i = 0; i < e->n; i++)
		X509_free(e->slot[i].cert);
	e->n = 0;
	memset(e->slot, 0, sizeof(e->slot));
	pki_trust_free(e->trust);
	e->trust = NULL;
}

void intake_forget_certs(struct intake *in)
{
	if (!in->certs)
		return;
	for (size_t i = 0; i < in->certs->n; i++)
		entry_clear(&in->certs->v[i]);
	free(in->certs->v);
	free(in->certs);
	in->certs = NULL;
}

void intake_close(struct intake *in)
{
	if (!in)
		return;
	intake_ahead_ready(in, NULL);
	if (in->scan_open)
		spool_list_free(&in->scan_list);
	in->scan_open = false;
	in->scan_next = 0;
	intake_forget_certs(in);
}

static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

static bool same_file(const struct cert_slot *c, const char *path, const struct stat *st)
{
	return !strcmp(c->path, path) && c->dev == st->st_dev && c->ino == st->st_ino &&
	       c->size == st->st_size && c->mtime.tv_sec == st->st_mtim.tv_sec &&
	       c->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

static struct cert_entry *entry_for(struct intake *in, const char *endpoint)
{
	struct intake_certs *c = in->certs;
	struct cert_entry *e;

	if (!c && !(c = in->certs = calloc(1, sizeof(*c)))) {
		gw_error_set(GW_ENOMEM, "out of memory caching encryption certificates");
		return NULL;
	}
	for (size_t i = 0; i < c->n; i++)
		if (!strcmp(c->v[i].endpoint, endpoint))
			return &c->v[i];
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 4;
		struct cert_entry *v = realloc(c->v, cap * sizeof(*v));
		if (!v) {
			gw_error_set(GW_ENOMEM, "out of memory caching encryption certificates");
			return NULL;
		}
		c->v = v;
		c->cap = cap;
	}
	e = &c->v[c->n++];
	memset(e, 0, sizeof(*e));
	copy_str(e->endpoint, sizeof(e->endpoint), endpoint);
	return e;
}

/*
 * The trust a partner's encryption certificates must chain to: the
 * endpoint's anchors, or the identity's when it has none (as deliver.c
 * picks them for its TLS server and receipts), with the identity's CRLs.
 * An anchor or CRL that cannot be used holds the message like a bad
 * certificate: the operator sees why, and intake_release_held() retries.
 */
static int endpoint_trust(const struct gw_config *cfg, const struct config_endpoint *ep,
			  pki_trust **out)
{
	const struct config_identity *id = &cfg->identity;
	const char *anchors[PKI_MAX_FILES], *crls[PKI_MAX_FILES];
	size_t n = ep->n_trust > 0 ? ep->n_trust : id->n_trust;
	int rc;

	for (size_t i = 0; i < n && i < PKI_MAX_FILES; i++)
		anchors[i] = ep->n_trust > 0 ? ep->trust[i] : id->trust[i];
	for (size_t i = 0; i < id->n_crl && i < PKI_MAX_FILES; i++)
		crls[i] = id->crl[i];
	rc = pki_trust_new(out, anchors, n, crls, id->n_crl);
	if (rc < 0 && rc != GW_ENOMEM)
		return gw_error_wrap(GW_EINVALID, INTAKE_HELD_CERT "endpoint %s trust anchors and "
				     "CRLs", ep->name);
	return rc;
}

/* Hold for certificate i of ep: the common start of the sentence, then why. */
static int cert_refused(const struct config_endpoint *ep, size_t i, const char *fmt, ...)
	GW_PRINTF(3, 4);

static int cert_refused(const struct config_endpoint *ep, size_t i, const char *fmt, ...)
{
	char why[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return gw_error_set(GW_EINVALID, INTAKE_HELD_CERT "endpoint %s certificate %zu (%s) %s",
			    ep->name, i + 1, base_name(ep->encrypt_cert[i]), why);
}

/* The certificate names the endpoint's organisation. */
static int check_org(const struct config_endpoint *ep, size_t i, X509 *cert)
{
	char orgnr[10];
	int rc = pki_cert_orgnr(cert, orgnr);

	if (rc == GW_ENOTFOUND)
		return cert_refused(ep, i, "names no organisation, not the endpoint's %s",
				    ep->orgnr);
	if (rc < 0)
		return cert_refused(ep, i, "has no readable organisation: %s", gw_error_last());
	if (strcmp(orgnr, ep->orgnr) != 0)
		return cert_refused(ep, i, "belongs to organisation %s, not the endpoint's %s",
				    orgnr, ep->orgnr);
	return 0;
}

/* RSA, with at least PKI_MIN_SECURITY_BITS of security (RSA 2048). */
static int check_key(const struct config_endpoint *ep, size_t i, X509 *cert)
{
	EVP_PKEY *pub = X509_get0_pubkey(cert);
	int bits;

	if (!pub || EVP_PKEY_base_id(pub) != EVP_PKEY_RSA)
		return cert_refused(ep, i, "is not an RSA certificate");
	bits = EVP_PKEY_get_security_bits(pub);
	if (bits < PKI_MIN_SECURITY_BITS)
		return cert_refused(ep, i, "has too weak a key: RSA %d, %d bits of security, at "
				    "least %d (RSA 2048) needed", EVP_PKEY_get_bits(pub), bits,
				    PKI_MIN_SECURITY_BITS);
	return 0;
}

/*
 * Chains to the trust, not revoked; time is left to cert_unusable() at each
 * use, so an expired certificate of a rollover pair is kept beside the good one.
 */
static int check_chain(const struct config_endpoint *ep, size_t i, X509 *cert,
		       pki_trust *trust)
{
	int rc = pki_cert_verify(trust, cert, NULL, PKI_NO_TIME_CHECK);

	if (rc == GW_EINVALID)
		return cert_refused(ep, i, "does not pass the endpoint's trust anchors and "
				    "CRLs: %s", gw_error_last());
	return rc;
}

/*
 * One certificate file into a slot: readable, a certificate, an RSA key
 * strong enough, the endpoint's organisation, trusted and not revoked.
 */
static int load_slot(const struct config_endpoint *ep, size_t i, const struct stat *st,
		     pki_trust *trust, struct cert_slot *slot)
{
	const char *path = ep->encrypt_cert[i];
	X509 *cert = NULL;
	int rc;

	if (pki_cert_load(&cert, path) < 0)
		return cert_refused(ep, i, "cannot be read as a PEM certificate");
	if ((rc = check_key(ep, i, cert)) < 0 || (rc = check_org(ep, i, cert)) < 0 ||
	    (rc = check_chain(ep, i, cert, trust)) < 0) {
		X509_free(cert);
		return rc;
	}
	copy_str(slot->path, sizeof(slot->path), path);
	slot->dev = st->st_dev;
	slot->ino = st->st_ino;
	slot->size = st->st_size;
	slot->mtime = st->st_mtim;
	slot->cert = cert;
	return 0;
}

/* e from ep's files (stat'ed as st), checked against a trust built for it. */
static int entry_fill(const struct gw_config *cfg, const struct config_endpoint *ep,
		      const struct stat *st, struct cert_entry *e)
{
	int rc;

	entry_clear(e);
	if ((rc = endpoint_trust(cfg, ep, &e->trust)) < 0)
		return rc;
	for (size_t i = 0; i < ep->n_encrypt_cert; i++) {
		if ((rc = load_slot(ep, i, &st[i], e->trust, &e->slot[i])) < 0) {
			entry_clear(e);
			return rc;
		}
		e->n = i + 1;
	}
	return 0;
}

/*
 * ep's certificates, from the cache while their files are unchanged (and
 * until intake_forget_certs()); checked once per fill, not per message.
 */
static int endpoint_certs(struct intake *in, const struct config_endpoint *ep,
			  struct cert_entry **out)
{
	struct cert_entry *e = entry_for(in, ep->name);
	struct stat st[2];
	bool fresh;
	int rc;

	if (!e)
		return GW_ENOMEM;
	if (ep->n_encrypt_cert < 1 || ep->n_encrypt_cert > 2)
		return gw_error_set(GW_EINVALID, INTAKE_HELD_CERT "endpoint %s has %zu encryption "
				    "certificates", ep->name, ep->n_encrypt_cert);
	for (size_t i = 0; i < ep->n_encrypt_cert; i++)
		if (stat(ep->encrypt_cert[i], &st[i]) < 0)
			return gw_error_set(GW_EINVALID, INTAKE_HELD_CERT "endpoint %s certificate "
					    "%zu (%s): %s", ep->name, i + 1,
					    base_name(ep->encrypt_cert[i]), strerror(errno));
	fresh = e->n == ep->n_encrypt_cert;
	for (size_t i = 0; fresh && i < e->n; i++)
		fresh = same_file(&e->slot[i], ep->encrypt_cert[i], &st[i]);
	if (!fresh && (rc = entry_fill(in->cfg, ep, st, e)) < 0)
		return rc;
	*out = e;
	return 0;
}

/* Why cert cannot be used now (wall clock), or NULL. */
static const char *cert_unusable(X509 *cert)
{
	if (X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0)
		return "has expired";
	if (X509_cmp_current_time(X509_get0_notBefore(cert)) >= 0)
		return "is not valid yet";
	return NULL;
}

int intake_encrypt_body(struct intake *in, const struct config_endpoint *ep, xmlDocPtr msg)
{
	struct cert_entry *e;
	X509 *usable[2];
	size_t n = 0;
	const char *why = NULL;
	size_t why_i = 0;
	xmlNodePtr body = message_body_content(msg);
	int rc;

	if ((rc = endpoint_certs(in, ep, &e)) < 0)
		return rc;
	for (size_t i = 0; i < e->n; i++) {
		const char *bad = cert_unusable(e->slot[i].cert);
		if (!bad) {
			usable[n++] = e->slot[i].cert;
		} else if (!why) {
			why = bad;
			why_i = i;
		}
	}
	if (n == 0)
		return gw_error_set(GW_EINVALID, INTAKE_HELD_CERT "endpoint %s certificate %zu "
				    "(%s) %s", ep->name, why_i + 1,
				    base_name(e->slot[why_i].path), why);
	if (why)
		gw_log(GW_LOG_WARN, "encryption-certificate-skipped", "endpoint", ep->name,
		       "certificate", base_name(e->slot[why_i].path), "reason", why, NULL);
	if (!body)
		return gw_error_set(GW_ERROR, "message for %s has no Body content to encrypt",
				    ep->name);
	rc = xmlenc_encrypt_element(body, usable, n);
	if (rc == GW_EINVALID)
		return gw_error_wrap(rc, INTAKE_HELD_CERT "endpoint %s", ep->name);
	return rc;
}

/*
 * The filtered copy for ep in a Message, its Body content encrypted when ep
 * asks for it, then signed: m gets the bytes and their digest, or is held
 * when no encryption certificate of ep can be used (never sent in clear).
 */
static void log_held(const struct store_message *m, const char *notice_id)
{
	gw_log(GW_LOG_WARN, "held", "msg", m->message_id, "notice", notice_id, "endpoint",
	       m->endpoint, "reason", m->reason, NULL);
}

static int seal(struct job *j, const struct config_endpoint *ep, unsigned categories,
		struct store_message *m)
{
	xmlDocPtr body = NULL, msg = NULL;
	struct msg_header h;
	enum gw_service service;
	int rc;

	if (notice_service_parse(m->service, &service) < 0)
		return gw_error_set(GW_EINVALID, "message %s names no known service", m->message_id);
	if ((rc = notice_filtered_copy(&j->n, service, categories, &body)) < 0)
		return rc;
	memset(&h, 0, sizeof(h));
	copy_str(h.message_id, sizeof(h.message_id), m->message_id);
	timeutil_format_utc(j->now, h.created, sizeof(h.created));
	copy_str(h.from_orgnr, sizeof(h.from_orgnr), j->in->cfg->identity.orgnr);
	copy_str(h.to_orgnr, sizeof(h.to_orgnr), ep->orgnr);
	copy_str(h.service, sizeof(h.service), m->service);
	copy_str(h.notice_id, sizeof(h.notice_id), j->n.id);
	h.revision = j->n.revision;
	copy_str(h.kind, sizeof(h.kind), j->n.kind);
	rc = message_build(&msg, &h, xmlDocGetRootElement(body));
	xmlFreeDoc(body);
	if (rc < 0)
		return gw_error_wrap(rc, "message to %s for %s", ep->name, m->service);
	if (ep->n_encrypt_cert > 0 && (rc = intake_encrypt_body(j->in, ep, msg)) < 0) {
		if (rc == GW_EINVALID) {
			hold(m, gw_error_last());
			if (!j->ahead) /* else logged when stored (plan_recipient) */
				log_held(m, j->n.id);
			rc = 0;
		} else {
			rc = gw_error_wrap(rc, "message to %s for %s", ep->name, m->service);
		}
	} else if ((rc = signer_sign_to_bytes(j->in->sig, msg, &m->signed_bytes)) < 0 ||
		   (rc = receipt_digest(m->signed_bytes.data, m->signed_bytes.len,
					m->digest_b64)) < 0) {
		rc = gw_error_wrap(rc, "message to %s for %s", ep->name, m->service);
	}
	xmlFreeDoc(msg);
	return rc;
}

static int insert_message(struct job *j, const struct store_message *m)
{
	int rc = j->in->st->ops->message_insert(j->in->st, m);

	if (rc < 0)
		return rc;
	if (m->state == MSG_HELD)
		j->held++;
	else
		j->queued++;
	return 0;
}

/* One recipient's message of a release or transfer: queued and sealed, or held. */
static int make_message(struct job *j, const struct notice_recipient *r, struct store_message *m)
{
	const struct notice_grant *grant = notice_grant_for(&j->n, r->service);
	const char *orgnr;
	const struct config_endpoint *ep = resolve(j, r, &orgnr);
	int rc;

	if ((rc = message_init(j, m, notice_service_name(r->service), orgnr, ep,
			       j->n.event_date)) < 0)
		return rc;
	if (!ep)
		hold(m, INTAKE_HELD_NO_ENDPOINT);
	else if (ep->consent_required && !grant)
		hold(m, INTAKE_HELD_NO_CONSENT);
	else
		rc = seal(j, ep, ep->consent_required ? grant->categories : NEED_ALL, m);
	return rc;
}

/* Recipient i's message into the store: made ahead, or made now. */
static int plan_recipient(struct job *j, size_t i)
{
	struct store_message m;
	int rc;

	if (j->made) {
		rc = insert_message(j, &j->made[i]);
		if (rc == 0 && j->made[i].state == MSG_HELD &&
		    !strncmp(j->made[i].reason, INTAKE_HELD_CERT, strlen(INTAKE_HELD_CERT)))
			log_held(&j->made[i], j->n.id);
		return rc;
	}
	memset(&m, 0, sizeof(m));
	rc = make_message(j, &j->n.recipients[i], &m);
	if (rc == 0)
		rc = insert_message(j, &m);
	store_message_clear(&m);
	return rc;
}

static int plan_delivery(struct job *j)
{
	store *st = j->in->st;
	char reason[64];
	int rc;

	if (j->older_revision > 0) {
		snprintf(reason, sizeof(reason), "superseded by revision %d", j->n.revision);
		rc = st->ops->messages_transition(st, j->n.id, j->n.revision,
						  1u << MSG_QUEUED | 1u << MSG_HELD | 1u << MSG_FAILED,
						  MSG_SUPERSEDED, reason, &j->superseded);
		if (rc < 0)
			return rc;
	}
	for (size_t i = 0; i < j->n.n_recipients; i++)
		if ((rc = plan_recipient(j, i)) < 0)
			return rc;
	return 0;
}

/* ---- withdrawal ---- */

/* What a withdrawal needs to know about an earlier message. */
struct prior {
	char message_id[37];
	char kind[16];
	char service[16];
	char orgnr[10];
	char endpoint[64];
	char event_date[11];
	enum msg_state state;
	bool notify; /* gets a withdrawal message */
};

struct priors {
	struct prior *v;
	size_t n, cap;
};

static int collect_prior(const struct store_message *m, void *ctx)
{
	struct priors *p = ctx;
	struct prior *e;

	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 16;
		struct prior *v = realloc(p->v, cap * sizeof(*v));
		if (!v)
			return gw_error_set(GW_ENOMEM, "out of memory reading a notice's messages");
		p->v = v;
		p->cap = cap;
	}
	e = &p->v[p->n++];
	memset(e, 0, sizeof(*e));
	copy_str(e->message_id, sizeof(e->message_id), m->message_id);
	copy_str(e->kind, sizeof(e->kind), m->kind);
	copy_str(e->service, sizeof(e->service), m->service);
	copy_str(e->orgnr, sizeof(e->orgnr), m->recipient_orgnr);
	copy_str(e->endpoint, sizeof(e->endpoint), m->endpoint);
	copy_str(e->event_date, sizeof(e->event_date), m->event_date);
	e->state = m->state;
	return 0;
}

static bool withdrawn_service(const struct job *j, const char *service)
{
	unsigned mask = j->n.withdrawal_services ? j->n.withdrawal_services : ~0u;
	enum gw_service s;

	return notice_service_parse(service, &s) == 0 && (mask & (1u << s));
}

/* Notify each organisation once per service, even if it got several revisions. */
static bool already_notified(const struct priors *p, size_t upto, const struct prior *e)
{
	for (size_t i = 0; i < upto; i++)
		if (p->v[i].notify && !strcmp(p->v[i].service, e->service) &&
		    !strcmp(p->v[i].orgnr, e->orgnr))
			return true;
	return false;
}

/*
 * Cancel what has not gone out (queued, held, failed); mark for a withdrawal
 * message whoever got (delivered) or may have got an earlier revision: one
 * being sent (it cannot be pulled back; deliver stops it before any further
 * attempt), and any other after an attempt whose request went out whole
 * (its answer lost, or the gateway stopped meanwhile).
 */
static int cancel_or_mark(struct job *j, struct priors *p)
{
	store *st = j->in->st;
	char reason[64];

	snprintf(reason, sizeof(reason), "withdrawn: %s", j->n.withdrawal_reason);
	for (size_t i = 0; i < p->n; i++) {
		struct prior *e = &p->v[i];
		bool reached = e->state == MSG_DELIVERED || e->state == MSG_SENDING;
		int rc;

		if (!strcmp(e->kind, "withdrawal") || !withdrawn_service(j, e->service))
			continue;
		/* whatever became of it since (queued again, failed, held,
		 * superseded, cancelled): an attempt may have left a copy whose
		 * answer was lost */
		if (!reached && (rc = st->ops->message_reached(st, e->message_id, &reached)) < 0)
			return rc;
		if (e->state == MSG_QUEUED || e->state == MSG_HELD || e->state == MSG_FAILED) {
			rc = st->ops->message_update(st, e->message_id, e->state, MSG_CANCELLED,
						     reason, -1, 0);
			if (rc < 0)
				return rc;
			j->cancelled++;
		}
		if (reached && e->orgnr[0] && !already_notified(p, i, e))
			e->notify = true;
	}
	return 0;
}

/*
 * A withdrawal goes to the organisation that got (or may have got) the
 * earlier revision, e->orgnr, which may not change: the endpoint by the
 * name it went through only while that name still stands for it
 * (config_endpoint_for_recipient). An operator may have pointed the name at
 * another organisation since, which never saw the notice and must not get
 * its withdrawal. None: held "no endpoint" with orgnr recorded, to go out
 * once that organisation is configured.
 */
static int plan_withdrawal_message(struct job *j, const struct prior *e)
{
	const struct config_endpoint *ep =
		config_endpoint_for_recipient(j->in->cfg, e->service, e->orgnr, e->endpoint);
	struct store_message m;
	int rc;

	if ((rc = message_init(j, &m, e->service, e->orgnr, ep, e->event_date)) < 0)
		return rc;
	if (!ep)
		hold(&m, INTAKE_HELD_NO_ENDPOINT);
	else
		rc = seal(j, ep, 0, &m);
	if (rc == 0)
		rc = insert_message(j, &m);
	store_message_clear(&m);
	return rc;
}

static int plan_withdrawal(struct job *j)
{
	struct store_filter f = { .state = -1, .notice_id = j->n.id };
	struct priors p = { NULL, 0, 0 };
	int rc;

	rc = j->in->st->ops->messages_list(j->in->st, &f, collect_prior, &p);
	if (rc == 0)
		rc = cancel_or_mark(j, &p);
	for (size_t i = 0; rc == 0 && i < p.n; i++)
		if (p.v[i].notify)
			rc = plan_withdrawal_message(j, &p.v[i]);
	free(p.v);
	return rc;
}

/* ---- the transaction ---- */

/* SPEC section 4: a revision must be newer than every one accepted. */
static int check_revision(struct job *j)
{
	char sha[65];
	int latest = 0;
	int rc = j->in->st->ops->notice_latest(j->in->st, j->n.id, &latest, sha);

	if (rc == GW_ENOTFOUND)
		return 0;
	if (rc < 0)
		return rc;
	if (j->n.revision < latest) {
		j->reject_code = "stale-revision";
		return gw_error_set(GW_EINVALID,
				    "%s: notice %s revision %d is older than revision %d, which "
				    "was already accepted",
				    j->name, j->n.id, j->n.revision, latest);
	}
	if (j->n.revision == latest) {
		j->reject_code = "revision-conflict";
		return gw_error_set(GW_EINVALID,
				    "%s: notice %s revision %d was already accepted with other "
				    "content; send changes as a new revision",
				    j->name, j->n.id, j->n.revision);
	}
	j->older_revision = latest;
	return 0;
}

static int record_notice(struct job *j)
{
	struct store_notice sn;

	memset(&sn, 0, sizeof(sn));
	copy_str(sn.notice_id, sizeof(sn.notice_id), j->n.id);
	sn.revision = j->n.revision;
	copy_str(sn.kind, sizeof(sn.kind), j->n.kind);
	copy_str(sn.content_sha256, sizeof(sn.content_sha256), j->sha256);
	copy_str(sn.source_name, sizeof(sn.source_name), j->name);
	copy_str(sn.sender_orgnr, sizeof(sn.sender_orgnr), j->n.sender_orgnr);
	copy_str(sn.sender_unit, sizeof(sn.sender_unit), j->n.sender_unit);
	copy_str(sn.event_date, sizeof(sn.event_date), j->n.event_date);
	copy_str(sn.person_ref, sizeof(sn.person_ref), j->person);
	sn.late_at_intake = j->late;
	sn.weekend_release = j->weekend;
	sn.received_ms = j->now;
	return j->in->st->ops->notice_insert(j->in->st, &sn);
}

/*
 * Everything the notice produces, in one transaction: nested inside the
 * chunk's (intake_scan), so a failure takes back this notice's rows only.
 */
static int commit_notice(struct job *j)
{
	store *st = j->in->st;
	int rc;

	if ((rc = st->ops->begin(st)) < 0)
		return rc;
	if ((rc = check_revision(j)) < 0)
		goto fail;
	flag_timeliness(j);
	if ((rc = record_notice(j)) < 0)
		goto fail;
	if (!strcmp(j->n.kind, "withdrawal"))
		rc = plan_withdrawal(j);
	else
		rc = plan_delivery(j);
	if (rc < 0 || (rc = st->ops->commit(st)) < 0)
		goto fail;
	return 0;
fail:
	st->ops->rollback(st);
	return rc;
}

/* ---- one file, one chunk ---- */

static int parse(struct job *j, const gw_buf *bytes, const char **code)
{
	struct notice_rules rules;
	int rc;

	memset(&rules, 0, sizeof(rules));
	rules.allow_synthetic_nin = j->in->cfg->identity.test_nins;
	rules.now_ms = j->now;
	rules.max_bytes = max_bytes(j->in);
	rc = notice_parse(&j->n, bytes->data, bytes->len, &rules, j->name, code);
	if (rc < 0)
		return rc;
	if (j->n.nin[0])
		return ident_pseudonym(j->in->pseudonym_key, j->in->pseudonym_key_len, j->n.nin,
				       j->person);
	return 0;
}

/*
 * What intake_ahead_run() found for one file; the step does the rest. The
 * notice and the messages belong to it until take_file() moves them into
 * its job.
 */
struct ahead_file {
	char *name;
	int64_t now;
	int read_rc;             /* spool_read(): 0, or its code (with a reason: reject) */
	const char *read_reason;
	struct spool_id id;      /* the file read */
	int parse_rc;            /* parse(): 0, or its code (with a code: reject) */
	const char *parse_code;
	char error[512];         /* the sentence of a failed read or parse */
	char sha256[65];
	struct notice n;
	char person[17];
	struct store_message *made; /* per recipient; NULL: made by the step */
	size_t n_made;
};

struct intake_ahead {
	struct intake *helper; /* whose signer, certificates and configuration it uses */
	uint64_t gen;          /* the listing (intake.scan_gen) ... */
	size_t first, n;       /* ... and which of its files */
	struct ahead_file *files;
};

static void made_free(struct store_message *made, size_t n)
{
	for (size_t i = 0; made && i < n; i++)
		store_message_clear(&made[i]);
	free(made);
}

static void take_failed(struct chunk *c, struct job *j, int rc)
{
	if (j->n.id[0])
		gw_log(GW_LOG_ERROR, "intake-failed", "file", j->name, "notice", j->n.id, "error",
		       gw_error_last(), "next", NEXT_RETRY, NULL);
	else
		gw_log(GW_LOG_ERROR, "intake-failed", "file", j->name, "error", gw_error_last(),
		       "next", NEXT_RETRY, NULL);
	chunk_failed(c, rc);
}

/*
 * Steps 2 to 4 for the bytes of a file, inside the chunk's transaction.
 * With af (read ahead; bytes is NULL then), its hash, parse and messages
 * are taken instead of made here; the duplicate check still comes first.
 */
static void take_bytes(struct chunk *c, struct job *j, const gw_buf *bytes, struct ahead_file *af)
{
	const char *code = NULL;
	bool seen = false;
	int rc;

	if (af)
		memcpy(j->sha256, af->sha256, sizeof(j->sha256));
	else if ((rc = sha256_hex(bytes->data, bytes->len, j->sha256)) < 0) {
		take_failed(c, j, rc);
		return;
	}
	if ((rc = j->in->st->ops->intake_seen(j->in->st, j->sha256, &seen)) < 0) {
		take_failed(c, j, rc);
		return;
	}
	if (seen) {
		note_taken(c, j, INTAKE_DUPLICATE);
		return;
	}
	if (af) {
		rc = af->parse_rc;
		code = af->parse_code;
		if (rc < 0)
			gw_error_set(rc, "%s", af->error);
		j->n = af->n; /* the job owns the notice and the messages now */
		memset(&af->n, 0, sizeof(af->n));
		memcpy(j->person, af->person, sizeof(j->person));
		j->made = af->made;
		af->made = NULL;
	} else {
		rc = parse(j, bytes, &code);
	}
	if (rc == GW_EINVALID && code) {
		char why[512];

		/* only the file that was parsed is rejected (spool_reject checks) */
		copy_str(why, sizeof(why), gw_error_last());
		reject_now(c, j->in, j->name, &j->id, code, why, NULL);
		return;
	}
	if (rc < 0) {
		take_failed(c, j, rc);
		return;
	}
	rc = commit_notice(j);
	if (rc < 0 && j->reject_code) {
		note_taken(c, j, INTAKE_REJECTED);
		return;
	}
	if (rc < 0) {
		take_failed(c, j, rc);
		return;
	}
	note_taken(c, j, INTAKE_ACCEPTED);
}

/* Steps 1 to 4 for one file (af: what the read-ahead found, or NULL). */
static void take_file(struct intake *in, const char *name, struct chunk *c, struct ahead_file *af)
{
	gw_buf bytes = GW_BUF_INIT;
	const char *reason = NULL;
	size_t n_made = af ? af->n_made : 0;
	struct job j;
	int rc;

	/* What the reader could not read is read again here: the name may hold
	 * another file by now, which must not be rejected for the first one. */
	if (af && af->read_rc < 0)
		af = NULL;
	memset(&j, 0, sizeof(j));
	j.in = in;
	j.name = name;
	j.now = af ? af->now : clock_now(in);
	if (af) {
		rc = af->read_rc;
		reason = af->read_reason;
		j.id = af->id;
		if (rc < 0)
			gw_error_set(rc, "%s", af->error);
	} else {
		rc = spool_read(in->spool, name, max_bytes(in), &bytes, &reason, &j.id);
	}
	if (rc == GW_EINVALID && reason) {
		reject_now(c, in, name, &j.id, reason, gw_error_last(), NULL);
	} else if (rc == 0) {
		take_bytes(c, &j, af ? NULL : &bytes, af);
	} else {
		gw_log(GW_LOG_ERROR, "intake-failed", "file", name, "error", gw_error_last(), "next",
		       NEXT_RETRY, NULL);
		chunk_failed(c, rc);
	}
	made_free(j.made, n_made);
	notice_free(&j.n);
	gw_buf_free(&bytes);
}

/*
 * Step 6, after the COMMIT: the revision refusals are rejected (durably,
 * with their reason files), then every accepted file and duplicate is
 * renamed into processed/ and processed/ is synced ONCE for all of them;
 * only then is each logged as accepted or duplicate.
 */
static void finish_chunk(struct intake *in, struct chunk *c)
{
	char cause[512];
	size_t moved = 0;
	int rc;

	for (size_t i = 0; i < c->n; i++) {
		struct taken *t = &c->v[i];

		if (t->outcome == INTAKE_REJECTED) {
			reject_now(c, in, t->name, &t->id, t->reject_code, t->reject_text,
				   t->notice_id);
		} else if ((rc = spool_move_processed(in->spool, t->name, &t->id, &t->at)) == 0) {
			t->moved = true;
		} else if (rc == GW_ETEMP) { /* not the file read: not moved in its name */
			log_replaced(t->name, &t->at, READ_COMMITTED);
			chunk_failed(c, rc);
		} else {
			move_failed(in, c, t, rc);
		}
		moved += t->moved;
	}
	if (!moved)
		return;
	rc = spool_sync_processed(in->spool);
	copy_str(cause, sizeof(cause), gw_error_last());
	for (size_t i = 0; i < c->n; i++) {
		struct taken *t = &c->v[i];

		if (!t->moved)
			continue;
		if (rc < 0) {
			gw_error_set(rc, "spool %s: %s was moved to processed/%s, but the move "
				     "may not survive a power cut: %s", in->spool->root, t->name,
				     t->at.name, cause);
			move_failed(in, c, t, rc); /* t->at: SPOOL_MOVED */
		} else if (t->outcome == INTAKE_ACCEPTED) {
			log_accepted(t);
			c->accepted++;
		} else {
			gw_log(GW_LOG_INFO, "duplicate", "file", t->name, "moved_to", t->at.name,
			       "sha256", t->sha256, NULL);
			c->duplicates++;
		}
	}
}

/*
 * One chunk: the files taken inside ONE store transaction (each notice in
 * a nested transaction of its own, so a file that fails takes nothing of
 * the others with it), one COMMIT, then the moves. When the COMMIT fails,
 * nothing of the chunk was stored: every file waiting for it stays in
 * incoming/new with its line and is taken again at the next scan.
 */
static void run_chunk(struct intake *in, const char *const *names, size_t n, struct chunk *c,
		      struct intake_ahead *ahead)
{
	store *st = in->st;
	int rc;

	c->n = 0;
	if ((rc = st->ops->begin(st)) < 0) {
		for (size_t i = 0; i < n; i++) {
			gw_log(GW_LOG_ERROR, "intake-failed", "file", names[i], "error",
			       gw_error_last(), "next", NEXT_RETRY, NULL);
			chunk_failed(c, rc);
		}
		return;
	}
	for (size_t i = 0; i < n; i++) /* n <= c->cap: each file notes at most one */
		take_file(in, names[i], c, ahead ? &ahead->files[i] : NULL);
	if ((rc = st->ops->commit(st)) < 0) { /* rolled back */
		for (size_t i = 0; i < c->n; i++) {
			const struct taken *t = &c->v[i];

			if (t->outcome == INTAKE_DUPLICATE)
				gw_log(GW_LOG_ERROR, "intake-failed", "file", t->name, "error",
				       gw_error_last(), "next", NEXT_RETRY, NULL);
			else
				gw_log(GW_LOG_ERROR, "intake-failed", "file", t->name, "notice",
				       t->notice_id, "error", gw_error_last(), "next", NEXT_RETRY,
				       NULL);
			chunk_failed(c, rc);
		}
		c->n = 0;
		return;
	}
	finish_chunk(in, c);
	c->n = 0;
}

int intake_file(struct intake *in, const char *name, enum intake_outcome *outcome)
{
	enum intake_outcome ignored;
	struct chunk c;
	int rc;

	outcome = outcome ? outcome : &ignored;
	*outcome = INTAKE_REJECTED;
	if (!in->pseudonym_key || !in->pseudonym_key_len)
		return gw_error_set(GW_EINVALID, "intake needs a pseudonym key for its log");
	if ((rc = chunk_init(&c, 1)) < 0)
		return rc;
	run_chunk(in, &name, 1, &c, NULL);
	rc = c.failed ? c.first_error : 0;
	if (c.accepted)
		*outcome = INTAKE_ACCEPTED;
	else if (c.duplicates)
		*outcome = INTAKE_DUPLICATE;
	free(c.v);
	return rc;
}

/* ---- read-ahead ---- */

void intake_ahead_free(struct intake_ahead *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->n; i++) {
		struct ahead_file *f = &a->files[i];

		free(f->name);
		notice_free(&f->n);
		made_free(f->made, f->n_made);
	}
	free(a->files);
	free(a);
}

int intake_ahead_new(struct intake *in, struct intake *helper, size_t skip,
		     struct intake_ahead **out)
{
	struct intake_ahead *a;
	size_t first = in->scan_next + skip, n;

	*out = NULL;
	if (!in->scan_open || first >= in->scan_list.n_names)
		return GW_ENOTFOUND;
	n = in->scan_list.n_names - first;
	if (n > INTAKE_CHUNK_FILES)
		n = INTAKE_CHUNK_FILES;
	if (!(a = calloc(1, sizeof(*a))) || !(a->files = calloc(n, sizeof(*a->files)))) {
		free(a);
		return gw_error_set(GW_ENOMEM, "out of memory reading the spool ahead");
	}
	a->helper = helper;
	a->gen = in->scan_gen;
	a->first = first;
	a->n = n;
	for (size_t i = 0; i < n; i++) {
		if (!(a->files[i].name = strdup(in->scan_list.names[first + i]))) {
			intake_ahead_free(a);
			return gw_error_set(GW_ENOMEM, "out of memory reading the spool ahead");
		}
	}
	*out = a;
	return 0;
}

/* A release's or transfer's messages, made and sealed; none when one fails. */
static void make_ahead(struct job *j, struct ahead_file *f)
{
	size_t n = j->n.n_recipients;

	if (!strcmp(j->n.kind, "withdrawal") || n == 0 ||
	    !(f->made = calloc(n, sizeof(*f->made))))
		return;
	f->n_made = n;
	for (size_t i = 0; i < n; i++) {
		if (make_message(j, &j->n.recipients[i], &f->made[i]) < 0) {
			made_free(f->made, n); /* the step tries again and says why */
			f->made = NULL;
			f->n_made = 0;
			return;
		}
	}
}

/* Steps 1 and 3 for one file, and its messages; the bytes are not kept. */
static void read_ahead(struct intake *helper, struct ahead_file *f)
{
	gw_buf bytes = GW_BUF_INIT;
	struct job j;

	memset(&j, 0, sizeof(j));
	j.in = helper;
	j.name = f->name;
	j.ahead = true;
	j.now = f->now = clock_now(helper);
	f->read_rc = spool_read(helper->spool, f->name, max_bytes(helper), &bytes,
				&f->read_reason, &f->id);
	if (f->read_rc == 0)
		f->read_rc = sha256_hex(bytes.data, bytes.len, f->sha256);
	if (f->read_rc < 0) {
		copy_str(f->error, sizeof(f->error), gw_error_last());
		gw_buf_free(&bytes);
		return;
	}
	f->parse_rc = parse(&j, &bytes, &f->parse_code);
	gw_buf_free(&bytes);
	if (f->parse_rc < 0)
		copy_str(f->error, sizeof(f->error), gw_error_last());
	else
		make_ahead(&j, f);
	f->n = j.n; /* handed to the step, or freed with the read-ahead */
	memcpy(f->person, j.person, sizeof(f->person));
}

void intake_ahead_run(void *arg)
{
	struct intake_ahead *a = arg;

	for (size_t i = 0; i < a->n; i++)
		read_ahead(a->helper, &a->files[i]);
}

void intake_ahead_ready(struct intake *in, struct intake_ahead *a)
{
	intake_ahead_free(in->ahead);
	in->ahead = a;
}

/* The read-ahead for the next n files of the listing, if it is that; else none. */
static struct intake_ahead *ahead_take(struct intake *in, size_t n)
{
	struct intake_ahead *a = in->ahead;

	if (a && a->gen == in->scan_gen && a->first == in->scan_next && a->n == n)
		return a;
	return NULL;
}

/* ---- scans ---- */

static void scan_drop(struct intake *in)
{
	if (in->scan_open)
		spool_list_free(&in->scan_list);
	in->scan_open = false;
	in->scan_next = 0;
}

static void set_count(int *counter, int value)
{
	if (counter)
		*counter = value;
}

/*
 * Before a listing, the first of this intake and the first after a move or
 * a directory sync failed: what a crash or a failed way back left under a
 * staging name in processed/ or rejected/ goes back to incoming/new
 * (spool_recover), so this listing takes it, and both directories are
 * synced again. A failure is logged and tried again before the next one.
 */
static void recover_spool(struct intake *in)
{
	char name[SPOOL_MOVED_MAX], kept[SPOOL_MOVED_MAX + 16];
	struct spool_moved at;
	int rc;

	if (in->spool_checked)
		return;
	while ((rc = spool_recover(in->spool, name, sizeof(name), &at)) == 1) {
		if (at.place != SPOOL_KEPT) {
			gw_log(GW_LOG_WARN, "spool-recovered", "file", name, "next",
			       "it was left half-way out of incoming/new (a crash or a failed move) "
			       "and is back there; this scan takes it (bytes taken before are "
			       "moved as a duplicate)", NULL);
			continue;
		}
		snprintf(kept, sizeof(kept), "rejected/%s", at.name);
		gw_log(GW_LOG_WARN, "spool-recovered", "file", name, "kept_as", kept, "next",
		       "it was left half-way out of incoming/new and another file has its name "
		       "there now, so it is kept with reason " SPOOL_REPLACED, NULL);
	}
	if (rc < 0) {
		gw_log(GW_LOG_ERROR, "spool-recover-failed", "error", gw_error_last(), "next",
		       "tried again before the next scan", NULL);
		return;
	}
	in->spool_checked = true;
}

int intake_scan_step(struct intake *in, size_t max_files, int *accepted, int *rejected,
		     int *duplicates, bool *more)
{
	struct chunk c;
	int rc;

	set_count(accepted, 0);
	set_count(rejected, 0);
	set_count(duplicates, 0);
	*more = false;
	if (!in->pseudonym_key || !in->pseudonym_key_len)
		return gw_error_set(GW_EINVALID, "intake needs a pseudonym key for its log");
	if ((rc = chunk_init(&c, INTAKE_CHUNK_FILES)) < 0)
		return rc;
	if (!in->scan_open) {
		recover_spool(in);
		if ((rc = spool_list_new(in->spool, &in->scan_list)) < 0) {
			free(c.v);
			return rc;
		}
		in->scan_open = true;
		in->scan_next = 0;
		in->scan_gen++;
		for (size_t i = 0; i < in->scan_list.n_bad; i++)
			reject_now(&c, in, in->scan_list.bad_names[i], NULL, "bad-name", BAD_NAME,
				   NULL);
	}
	while (max_files > 0 && in->scan_next < in->scan_list.n_names) {
		size_t n = in->scan_list.n_names - in->scan_next;

		if (n > INTAKE_CHUNK_FILES)
			n = INTAKE_CHUNK_FILES;
		if (n > max_files)
			n = max_files;
		run_chunk(in, (const char *const *)in->scan_list.names + in->scan_next, n, &c,
			  ahead_take(in, n));
		in->scan_next += n;
		max_files -= n;
	}
	*more = in->scan_next < in->scan_list.n_names;
	if (!*more)
		scan_drop(in);
	intake_ahead_ready(in, NULL); /* used, or about other files */
	set_count(accepted, c.accepted);
	set_count(rejected, c.rejected);
	set_count(duplicates, c.duplicates);
	free(c.v);
	if (c.failed) /* each one has its own log line already */
		return gw_error_set(c.first_error, "%d file(s) stay in incoming/new until the next "
				    "scan (each is named in its own log line)", c.failed);
	return 0;
}

int intake_scan(struct intake *in, int *accepted, int *rejected, int *duplicates)
{
	bool more;

	scan_drop(in);
	return intake_scan_step(in, SIZE_MAX, accepted, rejected, duplicates, &more);
}

/* ---- held messages whose cause went away ---- */

/* What release needs of a held message (the list runs a read statement). */
struct held {
	struct store_message m; /* signed_bytes unused (empty) */
	bool done;
};

struct held_rows {
	struct held *v;
	size_t n, cap;
	const char *only; /* this held reason only; NULL: every releasable one */
};

static bool releasable(const struct store_message *m)
{
	return m->state == MSG_HELD && (!strcmp(m->reason, INTAKE_HELD_NO_ENDPOINT) ||
					!strcmp(m->reason, STORE_HELD_STALE) ||
					!strncmp(m->reason, INTAKE_HELD_CERT,
						 strlen(INTAKE_HELD_CERT)));
}

static int collect_held(const struct store_message *m, void *ctx)
{
	struct held_rows *r = ctx;
	struct held *h;

	if (!releasable(m) || (r->only && strcmp(m->reason, r->only) != 0))
		return 0;
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		struct held *v = realloc(r->v, cap * sizeof(*v));
		if (!v)
			return gw_error_set(GW_ENOMEM, "out of memory listing held messages");
		r->v = v;
		r->cap = cap;
	}
	h = &r->v[r->n++];
	memset(h, 0, sizeof(*h));
	h->m = *m;
	memset(&h->m.signed_bytes, 0, sizeof(h->m.signed_bytes)); /* not ours */
	return 0;
}

/* processed/NAME or processed/NAME.<digits> (spool_accept's free name). */
static bool processed_name_of(const char *entry, const char *source)
{
	size_t len = strlen(source);
	const char *p;

	if (strncmp(entry, source, len) != 0)
		return false;
	if (entry[len] == '\0')
		return true;
	if (entry[len] != '.' || !entry[len + 1])
		return false;
	for (p = entry + len + 1; *p; p++)
		if (*p < '0' || *p > '9')
			return false;
	return true;
}

/*
 * The original bytes of a notice: a file in processed/ under its recorded
 * name (or that name with a suffix) whose SHA-256 is the recorded one.
 * GW_ENOTFOUND when there is none.
 */
static int read_original(struct intake *in, const struct store_notice *sn, gw_buf *out)
{
	DIR *d = opendir(in->spool->processed);
	struct dirent *de;
	char sha[65];
	int rc = GW_ENOTFOUND, read_rc;

	if (!d)
		return gw_error_set(GW_ERROR, "cannot open processed/: %s", strerror(errno));
	while (rc == GW_ENOTFOUND && (de = readdir(d)) != NULL) {
		const char *reason = NULL;

		if (!processed_name_of(de->d_name, sn->source_name))
			continue;
		gw_buf_reset(out);
		read_rc = fsutil_read_untrusted(in->spool->processed, de->d_name, max_bytes(in), out,
						&reason, NULL);
		if (read_rc < 0 && !reason) { /* could not read it now: not "gone" */
			closedir(d);
			return read_rc;
		}
		if (read_rc < 0)
			continue;
		if ((read_rc = sha256_hex(out->data, out->len, sha)) < 0) {
			closedir(d);
			return read_rc;
		}
		if (!strcmp(sha, sn->content_sha256))
			rc = 0;
	}
	closedir(d);
	if (rc < 0)
		return gw_error_set(GW_ENOTFOUND, "the original of notice %s revision %d (%s, "
				    "SHA-256 %.16s) is no longer in processed/", sn->notice_id,
				    sn->revision, sn->source_name, sn->content_sha256);
	return 0;
}

/* The notice of a held message, parsed as it was at intake. */
static int load_notice(struct job *j, const char *notice_id, int revision)
{
	struct store_notice sn;
	struct notice_rules rules;
	gw_buf bytes = GW_BUF_INIT;
	const char *code = NULL;
	int rc;

	memset(&sn, 0, sizeof(sn));
	if ((rc = j->in->st->ops->notice_get(j->in->st, notice_id, revision, &sn)) < 0)
		return rc;
	if ((rc = read_original(j->in, &sn, &bytes)) < 0)
		goto out;
	memset(&rules, 0, sizeof(rules));
	rules.allow_synthetic_nin = j->in->cfg->identity.test_nins;
	rules.now_ms = sn.received_ms; /* the verdict it had: its date may have passed since */
	rules.max_bytes = max_bytes(j->in);
	rc = notice_parse(&j->n, bytes.data, bytes.len, &rules, sn.source_name, &code);
	if (rc == 0 && (strcmp(j->n.id, notice_id) != 0 || j->n.revision != revision))
		rc = gw_error_set(GW_EINVALID, "%s does not hold notice %s revision %d",
				  sn.source_name, notice_id, revision);
	if (rc == 0)
		copy_str(j->person, sizeof(j->person), sn.person_ref);
out:
	gw_buf_free(&bytes);
	return rc;
}

/* The endpoint a held message goes to now, and the Need categories it may see. */
static const struct config_endpoint *route_held(const struct job *j, const struct store_message *m,
						unsigned *categories, bool *no_consent)
{
	const struct config_endpoint *ep;
	enum gw_service s;

	*categories = 0;
	*no_consent = false;
	if (notice_service_parse(m->service, &s) < 0)
		return NULL;
	if (!strcmp(m->kind, "withdrawal")) /* to whom the earlier revision went, only */
		return config_endpoint_for_recipient(j->in->cfg, m->service, m->recipient_orgnr,
						     m->endpoint);
	for (size_t i = 0; i < j->n.n_recipients; i++) {
		const struct notice_recipient *r = &j->n.recipients[i];
		const struct notice_grant *grant;
		const char *orgnr;

		if (r->service != s)
			continue;
		ep = resolve(j, r, &orgnr);
		/* Addressed to an organisation already: an endpoint of that one
		 * (the one serving the municipality may since name another). */
		if (m->recipient_orgnr[0] && (!orgnr[0] || !strcmp(orgnr, m->recipient_orgnr)) &&
		    !(ep && !strcmp(ep->orgnr, m->recipient_orgnr)))
			ep = config_endpoint_resolve(j->in->cfg, s, m->recipient_orgnr, NULL);
		if (strcmp(orgnr, m->recipient_orgnr) != 0 &&
		    !(ep && !strcmp(ep->orgnr, m->recipient_orgnr)))
			continue;
		if (!ep)
			return NULL;
		grant = notice_grant_for(&j->n, s);
		if (ep->consent_required && !grant) {
			*no_consent = true;
			return ep;
		}
		*categories = ep->consent_required ? grant->categories : NEED_ALL;
		return ep;
	}
	return NULL;
}

/* A held message gets a new reason (still held). */
static int rehold(struct intake *in, const struct store_message *m, const char *reason)
{
	store *st = in->st;
	int rc;

	if (!strcmp(m->reason, reason))
		return 0;
	if ((rc = st->ops->begin(st)) < 0)
		return rc;
	if ((rc = st->ops->message_update(st, m->message_id, MSG_HELD, MSG_HELD, reason, -1,
					  0)) < 0 ||
	    (rc = st->ops->commit(st)) < 0) {
		st->ops->rollback(st);
		return rc;
	}
	gw_log(GW_LOG_WARN, "held", "msg", m->message_id, "notice", m->notice_id, "reason", reason,
	       NULL);
	return 0;
}

/* One held message of the loaded notice: queued with signed bytes, or left held. */
static int release_one(struct job *j, const struct store_message *held, int *released)
{
	store *st = j->in->st;
	struct store_message m;
	unsigned categories;
	bool no_consent;
	const struct config_endpoint *ep = route_held(j, held, &categories, &no_consent);
	int rc;

	if (!ep)
		return 0; /* still no endpoint */
	if (no_consent)
		return rehold(j->in, held, INTAKE_HELD_NO_CONSENT);
	m = *held;
	memset(&m.signed_bytes, 0, sizeof(m.signed_bytes));
	m.state = MSG_QUEUED; /* seal() holds it again if it must */
	m.reason[0] = '\0';
	copy_str(m.endpoint, sizeof(m.endpoint), ep->name);
	copy_str(m.recipient_orgnr, sizeof(m.recipient_orgnr), ep->orgnr);
	m.next_attempt_ms = j->now;
	/* Signed again after a "stale": its retry horizon stays what it was. */
	if (strcmp(held->reason, STORE_HELD_STALE) != 0)
		m.deadline_ms = deadline_for(j, held->event_date);
	if ((rc = seal(j, ep, categories, &m)) < 0)
		goto out;
	if (m.state == MSG_HELD) { /* its certificates still cannot be used */
		rc = rehold(j->in, held, m.reason);
		goto out;
	}
	if ((rc = st->ops->begin(st)) < 0)
		goto out;
	if ((rc = st->ops->message_release_held(st, &m)) < 0 || (rc = st->ops->commit(st)) < 0) {
		st->ops->rollback(st);
		goto out;
	}
	(*released)++;
	gw_log(GW_LOG_INFO, "released", "msg", m.message_id, "notice", m.notice_id, "service",
	       m.service, "endpoint", ep->name, "was", held->reason, NULL);
out:
	store_message_clear(&m);
	return rc;
}

/*
 * A message to be signed again after a "stale" whose notice is no longer in
 * processed/ (processed_keep_days): it cannot be, so it fails, shown to
 * operators, instead of staying held for good.
 */
static void fail_unsignable(struct intake *in, const struct store_message *m, const char *why)
{
	store *st = in->st;
	char reason[256];

	snprintf(reason, sizeof(reason), "rejected by receiver: stale; cannot be signed again: %.180s",
		 why);
	if (st->ops->begin(st) < 0 ||
	    st->ops->message_update(st, m->message_id, MSG_HELD, MSG_FAILED, reason, -1, 0) < 0 ||
	    st->ops->commit(st) < 0) {
		st->ops->rollback(st);
		gw_log(GW_LOG_ERROR, "release-failed", "msg", m->message_id, "notice", m->notice_id,
		       "error", gw_error_last(), NULL);
		return;
	}
	gw_log(GW_LOG_WARN, "failed", "msg", m->message_id, "notice", m->notice_id, "reason",
	       reason, NULL);
}

static int release_held_where(struct intake *in, const char *only, int *released);

int intake_release_held(struct intake *in, int *released)
{
	return release_held_where(in, NULL, released);
}

int intake_release_stale(struct intake *in, int *released)
{
	return release_held_where(in, STORE_HELD_STALE, released);
}

static int release_held_where(struct intake *in, const char *only, int *released)
{
	struct store_filter f = { .state = MSG_HELD, .notice_id = NULL };
	struct held_rows rows = { NULL, 0, 0, only };
	int count = 0, first_error = 0, rc;

	if (released)
		*released = 0;
	rc = in->st->ops->messages_list(in->st, &f, collect_held, &rows);
	if (rc < 0) {
		free(rows.v);
		return rc;
	}
	for (size_t i = 0; i < rows.n; i++) {
		struct job j;
		int one;

		if (rows.v[i].done)
			continue;
		memset(&j, 0, sizeof(j));
		j.in = in;
		j.name = rows.v[i].m.notice_id;
		j.now = clock_now(in);
		rc = load_notice(&j, rows.v[i].m.notice_id, rows.v[i].m.revision);
		/* Every held message of this notice revision, with the notice read once. */
		for (size_t k = i; k < rows.n; k++) {
			struct held *h = &rows.v[k];

			if (h->done || strcmp(h->m.notice_id, rows.v[i].m.notice_id) != 0 ||
			    h->m.revision != rows.v[i].m.revision)
				continue;
			h->done = true;
			if (rc == GW_ENOTFOUND && !strcmp(h->m.reason, STORE_HELD_STALE)) {
				fail_unsignable(in, &h->m, gw_error_last());
				continue;
			}
			if (rc < 0) {
				gw_log(GW_LOG_WARN, "release-skipped", "msg", h->m.message_id,
				       "notice", h->m.notice_id, "reason", gw_error_last(), NULL);
				continue;
			}
			one = release_one(&j, &h->m, &count);
			if (one < 0) {
				gw_log(GW_LOG_ERROR, "release-failed", "msg", h->m.message_id,
				       "notice", h->m.notice_id, "error", gw_error_last(), NULL);
				if (!first_error)
					first_error = one;
			}
		}
		notice_free(&j.n);
	}
	free(rows.v);
	if (released)
		*released = count;
	return first_error;
}
