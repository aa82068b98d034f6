/*
 * intake: turns files in the spool into notices and messages (SPEC
 * sections 3, 4 and 9).
 *
 * For each file in incoming/new: read it under the hostile-input rules,
 * recognise bytes seen before (a harmless duplicate), parse and check the
 * notice, apply the revision rules, then, in one store transaction, record
 * the notice and one message per recipient: queued with signed bytes, or
 * held with the reason (no endpoint, no consent, encryption certificate
 * unusable). A scan takes the files in chunks of up to INTAKE_CHUNK_FILES:
 * each notice's transaction is nested inside the chunk's, which commits
 * once for all of them; only after that COMMIT are the chunk's files moved
 * to processed/ (with one fsync of processed/). Rejections go to rejected/
 * with a reason file and touch nothing in the store.
 *
 * Encryption (SPEC section 5): for an endpoint with encrypt_cert, the
 * Body's Notice is replaced by xenc:EncryptedData for its certificates
 * before the message is signed (encrypt, then sign). The certificates are
 * loaded and checked once per endpoint (the endpoint's organisation, key
 * strength, chain to its trust anchors, not revoked) and kept in struct
 * intake, with the trust they were checked against, until their files
 * change or intake_forget_certs(); intake_close() frees them.
 *
 * Held messages go out when their cause is gone: intake_release_held()
 * (after a configuration reload and at start-up) builds, filters, encrypts
 * and signs those held for "no endpoint" (or an unusable encryption
 * certificate) whose recipient now resolves, from the original notice kept
 * in processed/.
 *
 * A file whose handling failed for an operational reason (store, signer,
 * disk) stays in incoming/new and is tried again on the next scan (or, when
 * only a move's directory sync failed, is in processed/ or rejected/, and
 * the next scan syncs that again: its log line says which). Only the file
 * that was read is moved or rejected in its name (spool.h).
 */
#ifndef GW_INTAKE_H
#define GW_INTAKE_H

#include "config.h"
#include "signer.h"
#include "spool.h"
#include "store.h"

#include <libxml/tree.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum intake_outcome { INTAKE_ACCEPTED, INTAKE_REJECTED, INTAKE_DUPLICATE };

/*
 * Files per chunk of a scan: one store COMMIT (one sync of the database's
 * log) and one fsync of processed/ serve up to this many files, instead of
 * a commit and two directory fsyncs each. The sender returns to its event
 * loop between chunks (intake_scan_step) and runs the next chunk only when
 * nothing else is ready, so a chunk is also how long finished transfers
 * wait to be recorded and replaced while a large drop is taken in: 16
 * files (8 to 15 ms of work) kept the transfers going and gave 5 to 15 %
 * more messages per second end to end than 64 (docs/BENCHMARKS.md), and
 * the syncs are still shared 16 ways.
 */
#define INTAKE_CHUNK_FILES 16

/* The reasons intake holds a message with (store_message.reason). */
#define INTAKE_HELD_NO_ENDPOINT "no endpoint"
#define INTAKE_HELD_NO_CONSENT "no consent"
#define INTAKE_HELD_CERT "encryption certificate unusable: " /* then the detail */

struct intake_certs; /* encryption certificates per endpoint (intake.c) */
struct intake_ahead; /* files read, parsed and signed ahead (intake.c) */

struct intake {
	const struct gw_config *cfg;
	store *st;
	signer *sig;
	const unsigned char *pseudonym_key; /* HMAC key for person pseudonyms in logs */
	size_t pseudonym_key_len;
	struct spool *spool;
	int64_t (*now_ms)(void); /* injectable clock; NULL: timeutil_now_ms */
	struct intake_certs *certs; /* NULL at first; filled on use, freed by intake_close */
	struct spool_list scan_list; /* the listing intake_scan_step works through */
	size_t scan_next;            /* its next well-named entry */
	bool scan_open;              /* scan_list holds a listing */
	uint64_t scan_gen;           /* which listing (counts them) */
	struct intake_ahead *ahead;  /* handed over by intake_ahead_ready() */
	bool spool_checked;          /* spool_recover() has run since the start or
				      * since a move failed (false: before the next
				      * listing) */
};

/* Free what intake keeps between calls (the certificate cache, a scan's listing). */
void intake_close(struct intake *in);

/*
 * Drop the cached encryption certificates and the trust they were checked
 * against, so the next message checks them again under in->cfg. For a
 * configuration reload: an endpoint's orgnr or trust anchors, or the
 * identity's CRLs (a file replaced under the same name), may have changed.
 */
void intake_forget_certs(struct intake *in);

/*
 * Take one file from incoming/new (a chunk of one: its own transaction).
 * 0 when the file was dealt with (see *outcome); a negative gw_code when it
 * could not be (a full or read-only disk, a locked or damaged database),
 * and it is still in incoming/new: one log line (intake-failed,
 * move-failed or reject-failed) names the file, the cause and what happens
 * next.
 */
int intake_file(struct intake *in, const char *name, enum intake_outcome *outcome);

/*
 * Part of a scan: at most max_files (>= 1) files of incoming/new in name
 * order, in chunks of INTAKE_CHUNK_FILES. The first call lists the
 * directory (badly named entries are rejected as "bad-name" then); the
 * following calls work through that listing; *more says whether files of
 * it are left, and once none are the next call lists the directory again.
 * Counts what happened (any pointer may be NULL). Goes on past a file that
 * fails (its log line is written) and returns the first failure's code,
 * with a count of the files left in incoming/new as the message.
 */
int intake_scan_step(struct intake *in, size_t max_files, int *accepted, int *rejected,
		     int *duplicates, bool *more);

/*
 * Read-ahead, so that a scan's CPU work (reading, hashing, parsing, and for
 * releases and transfers building, encrypting and signing each message)
 * can run on another thread while the caller's loop goes on; the step then
 * does only what needs the store (the duplicate check, the revision rules,
 * the rows, the COMMIT, moving the files).
 *
 * intake_ahead_new() picks the files of the open listing that come after
 * the next `skip` ones, one chunk of them, to be prepared with `helper`:
 * a second struct intake with the same configuration, spool and pseudonym
 * key but its own signer and certificate cache and no store, which the
 * loop must not touch while intake_ahead_run() runs (a configuration
 * reload waits for it). GW_ENOTFOUND when no listing is open or no files
 * are left. intake_ahead_run(a) prepares them (any thread; it logs nothing
 * and touches no store). intake_ahead_ready() hands the result to `in`: the
 * next intake_scan_step() uses it when it takes exactly those files of the
 * same listing, and frees it either way. A held message's log line, a
 * rejection and every failure are still the step's, in the same words as
 * without the read-ahead.
 */
int intake_ahead_new(struct intake *in, struct intake *helper, size_t skip,
		     struct intake_ahead **out);
void intake_ahead_run(void *ahead);
void intake_ahead_ready(struct intake *in, struct intake_ahead *ahead);
void intake_ahead_free(struct intake_ahead *ahead);

/* A whole scan: a fresh listing, every file of it (intake_scan_step). */
int intake_scan(struct intake *in, int *accepted, int *rejected, int *duplicates);

/*
 * Replace the Body content of msg (an unsigned Message for ep, which has
 * encrypt_cert) by xenc:EncryptedData for ep's certificates (xmlenc.h),
 * before it is signed. When its files are loaded, every certificate must
 * be RSA with at least PKI_MIN_SECURITY_BITS of security (RSA 2048), name
 * ep's orgnr (pki_cert_orgnr), and chain to ep's trust anchors (the
 * identity's when ep has none) without being revoked by the identity's
 * CRLs, judged without time (PKI_NO_TIME_CHECK). Time is judged at each
 * use: certificates that have expired or are not yet valid (by the wall
 * clock) are left out when another one is usable, as during a rollover.
 * GW_EINVALID, msg unchanged, with a sentence beginning INTAKE_HELD_CERT
 * when a certificate fails a check made at loading (a file that cannot be
 * read, not RSA, too weak, another organisation, not trusted or revoked,
 * anchors or CRLs that cannot be read) or none is valid now: the caller
 * holds the message with that reason; it is never sent in clear. Other
 * negative codes are faults.
 */
int intake_encrypt_body(struct intake *in, const struct config_endpoint *ep, xmlDocPtr msg);

/*
 * Release held messages whose cause has gone away: those held "no endpoint"
 * whose recipient resolves now (the configuration was reloaded) and those
 * held INTAKE_HELD_CERT whose endpoint's certificates are usable now. Each
 * is built from the original notice, consent-filtered, encrypted when its
 * endpoint asks, signed, and set queued with store message_release_held,
 * one transaction each. The original is read from spool processed/ (the
 * recorded source name, or the name with the .N suffix spool_accept gave
 * it) and used only when its SHA-256 equals the recorded content_sha256;
 * when it is gone (expired from processed/) the message stays held and a
 * warning says why. A recipient that resolves to an endpoint needing
 * consent without a Grant gets "no consent" instead. "no consent" holds
 * are never released here: consent comes only with a new revision. A
 * withdrawal goes only to the organisation recorded as its recipient (the
 * one that got the earlier revision): through its recorded endpoint while
 * that name still has that orgnr, else the endpoint of that orgnr for the
 * service; with neither it stays held.
 * *released (may be NULL) counts the messages queued. 0, or the first
 * store or signer fault (the rest are still tried).
 */
int intake_release_held(struct intake *in, int *released);
/* The same for the messages held to be signed again after a "stale" only
 * (STORE_HELD_STALE); one whose notice is gone from processed/ fails. */
int intake_release_stale(struct intake *in, int *released);

#endif
