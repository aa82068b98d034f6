/*
 * store: the gateway's durable state behind a small interface (OpenSMTPD's
 * queue_backend.c): callers never know it is SQLite. store_sqlite.c is the
 * one backend; another (PostgreSQL) fills the same struct store_ops.
 *
 * Durability: every committed transaction is durable when commit returns
 * (SQLite WAL with synchronous=FULL). Acknowledge nothing (spool removal,
 * operator answer) before then. The one exception is asked for by name:
 * a transaction opened with begin_relaxed() survives a crash of the process
 * when commit returns, but a power cut may lose it until the next durable
 * commit (or sync()) of the same store; only work that is redone anyway
 * when it is lost may use it (the dispatch pass's queued -> sending).
 *
 * Nesting: begin() inside an open transaction opens a nested one (an SQL
 * SAVEPOINT). Its commit() hands its changes to the enclosing transaction,
 * whose commit alone makes them durable; its rollback() undoes only its own
 * changes (and their audit rows). Should the backend have rolled back the
 * whole enclosing transaction (SQLite does after a full disk or an I/O
 * error), every further begin() and commit() inside it fails, and so does
 * the enclosing commit(): nothing of it was stored.
 *
 * Message states (SPEC section 10):
 *   queued -> sending -> delivered | queued (retry) | failed
 *   queued -> failed before any attempt (its stored bytes no longer match
 *     their digest: it is never sent)
 *   held (no consent / no endpoint) -> queued when the cause goes away
 *   queued|held|failed -> superseded (newer revision) | cancelled
 *   sending -> superseded | cancelled when its attempt ends without a
 *     delivery and a later revision stops it (message_outdated)
 */
#ifndef GW_STORE_H
#define GW_STORE_H

#include "audit.h"
#include "buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The held reason of a message the partner refused as stale (its Created
 * older than the partner's window, after a long outage): a verified
 * "stale" proves the partner does not have it (it answers duplicates
 * before it looks at the age), so deliver holds it and the sender signs it
 * again with a fresh Created under the same MessageId
 * (intake_release_held). A second "stale" in a row fails it: the
 * partner's clock, not the message, is wrong.
 */
#define STORE_HELD_STALE "stale at the partner: to be signed again with a fresh Created"

/*
 * The longest reason a message keeps (why held, failed, cancelled), in
 * bytes of UTF-8 without the terminating NUL. message_cancel refuses a
 * longer one (an operator's text: they are told); the other writers cut
 * theirs at a character boundary. Readers cut a longer one found in the
 * database the same way instead of failing (free text: reasons, attempt
 * errors); identifiers (message ids, digests, dates) that do not fit fail
 * the read.
 */
#define STORE_REASON_MAX 255

enum msg_state {
	MSG_QUEUED, MSG_SENDING, MSG_DELIVERED, MSG_FAILED, MSG_HELD, MSG_SUPERSEDED,
	MSG_CANCELLED, MSG_STATE_COUNT
};
const char *store_state_name(enum msg_state s);
int store_state_parse(const char *name, enum msg_state *out);

struct store_notice {
	char notice_id[65];
	int revision;
	char kind[16];
	char content_sha256[65]; /* hex SHA-256 of the spool file bytes */
	char source_name[160];   /* spool file name */
	char sender_orgnr[10];
	char sender_unit[128];
	char event_date[11];     /* release or transfer date; may be empty */
	char person_ref[17];     /* keyed pseudonym, never the nin */
	bool late_at_intake;
	bool weekend_release;
	int64_t received_ms;
};

struct store_message {
	char message_id[37];
	char notice_id[65];
	int revision;
	char kind[16];
	char service[16];
	char recipient_orgnr[10]; /* empty when held: no endpoint */
	char endpoint[64];        /* config endpoint name; empty when unresolved */
	enum msg_state state;
	char reason[STORE_REASON_MAX + 1]; /* why held / failed / cancelled */
	char event_date[11];      /* for earliest-release-first */
	int64_t created_ms;
	int64_t next_attempt_ms;
	int64_t deadline_ms;      /* retry horizon */
	int attempts;
	char digest_b64[45];      /* of signed_bytes */
	gw_buf signed_bytes;      /* exact bytes sent; empty while held */
};

struct store_attempt {
	char message_id[37];
	int64_t started_ms;
	int64_t duration_ms;
	int http_status;     /* 0 when no HTTP answer */
	char error[256];     /* curl/TLS/receipt error text; empty on success */
	char outcome[16];    /* delivered, retry, failed */
	bool reached;        /* the whole request went out (or the partner answered):
			      * the partner may have stored it */
};

struct store_receipt {
	char message_id[37];
	char status[16];     /* accepted, duplicate, rejected */
	char reason_code[32];
	bool verified;
	int64_t received_ms;
	gw_buf bytes;        /* exactly as received */
};

struct store_counts {
	long long by_state[MSG_STATE_COUNT];
};

/* One endpoint's health, from its messages and attempts. */
struct store_endpoint_health {
	long long queued;           /* backlog: messages waiting for it */
	long long sending;
	long long failed;
	long long held;
	int64_t last_success_ms;    /* last attempt with outcome delivered; 0: never */
	int64_t last_attempt_ms;    /* 0: never tried */
	char last_error[256];       /* of the last attempt when it did not deliver */
	long long consecutive_failures; /* attempts since the last success, none delivered */
};

/*
 * One recipient of a release notice, for the timeliness report: the notice
 * at its latest revision (only when that revision is a release) and each
 * message of that revision. A notice without messages comes once with an
 * empty message_id.
 */
struct store_release_fact {
	char notice_id[65];
	int revision;
	char sender_unit[128];
	char event_date[11];
	bool weekend_release;
	bool late_at_intake;
	char message_id[37];      /* empty: the notice has no message */
	char service[16];
	char endpoint[64];
	enum msg_state state;
	char reason[STORE_REASON_MAX + 1];
	int64_t reached_ms;       /* first verified accepted/duplicate receipt; 0: none */
};

/* Called once per row by the list functions; return non-zero to stop. */
typedef int (*store_message_cb)(const struct store_message *m, void *ctx);
typedef int (*store_attempt_cb)(const struct store_attempt *a, void *ctx);
typedef int (*store_audit_cb)(const struct audit_row *row, void *ctx);
typedef int (*store_fact_cb)(const struct store_release_fact *f, void *ctx);

struct store_filter {
	int state;                /* -1: any */
	const char *notice_id;    /* NULL: any */
};

typedef struct store store;

struct store_ops {
	void (*close)(store *st); /* makes relaxed commits durable first (sync) */
	int (*begin)(store *st);  /* nested inside an open transaction (see above) */
	/* A transaction whose commit need not be durable (see above); nested
	 * inside an open transaction it is an ordinary nested one. */
	int (*begin_relaxed)(store *st);
	int (*commit)(store *st);
	int (*rollback)(store *st); /* keeps the message of what failed */
	/* Make every relaxed commit durable now; 0 at once when there is none. */
	int (*sync)(store *st);

	/* Intake. GW_ENOTFOUND when no revision of the notice is known. */
	int (*intake_seen)(store *st, const char *content_sha256, bool *seen);
	int (*notice_latest)(store *st, const char *notice_id, int *revision,
			     char content_sha256[65]);
	int (*notice_insert)(store *st, const struct store_notice *n);
	int (*notice_get)(store *st, const char *notice_id, int revision, struct store_notice *out);
	int (*message_insert)(store *st, const struct store_message *m);

	/* Supersede/cancel: set state on every message of notice_id with a
	 * revision below `below_revision` that is currently in one of the
	 * states in `from_mask` (bit per enum msg_state). */
	int (*messages_transition)(store *st, const char *notice_id, int below_revision,
				   unsigned from_mask, enum msg_state to, const char *reason,
				   int *changed);

	/* Scheduling. */
	int (*messages_due)(store *st, int64_t now_ms, size_t limit, store_message_cb cb, void *ctx);
	/* The same rows with signed_bytes left empty (what a dispatch looks at);
	 * message_bytes() then reads the bytes of the ones it starts. */
	int (*messages_due_heads)(store *st, int64_t now_ms, size_t limit, store_message_cb cb,
				  void *ctx);
	int (*message_bytes)(store *st, const char *message_id, gw_buf *out);
	/* Whether a later revision of its notice stops the message before its
	 * next attempt: 1 with *to = superseded (a newer release or transfer;
	 * never for a withdrawal message) or cancelled (a withdrawal message to
	 * the same service and organisation) and why in reason; 0 when it may
	 * go. */
	int (*message_outdated)(store *st, const char *message_id, enum msg_state *to,
				char *reason, size_t reason_len);
	/* Whether any attempt of the message may have reached its partner. */
	int (*message_reached)(store *st, const char *message_id, bool *reached);
	int (*next_due_ms)(store *st, int64_t *when_ms); /* GW_ENOTFOUND: nothing queued */
	int (*recover_sending)(store *st, int *recovered); /* sending -> queued at start */

	/* One message, its attempts, its receipt. */
	int (*message_get)(store *st, const char *message_id, struct store_message *out);
	/* Compare-and-set: GW_ENOTFOUND / GW_EINVALID when the message is not
	 * in `expected`, or when the move is not one of the state machine's
	 * (above). reason NULL keeps the current reason (one longer than
	 * STORE_REASON_MAX is cut at a character boundary, here and in
	 * messages_transition); next_attempt_ms below 0 keeps the current
	 * time. */
	int (*message_update)(store *st, const char *message_id, enum msg_state expected,
			      enum msg_state to, const char *reason, int64_t next_attempt_ms,
			      int attempts_delta);
	/* held -> queued once its cause is gone: m carries the resolved
	 * endpoint, recipient, signed bytes, digest, next attempt and deadline. */
	int (*message_release_held)(store *st, const struct store_message *m);
	int (*attempt_insert)(store *st, const struct store_attempt *a);
	int (*attempts_list)(store *st, const char *message_id, store_attempt_cb cb, void *ctx);
	int (*receipt_insert)(store *st, const struct store_receipt *r);
	int (*receipt_get)(store *st, const char *message_id, struct store_receipt *out);

	/* Operators. */
	int (*messages_list)(store *st, const struct store_filter *f, store_message_cb cb,
			     void *ctx);
	int (*counts)(store *st, struct store_counts *out);
	/* Health of the endpoint named `endpoint` (the config name); all zero
	 * when it has no messages. */
	int (*endpoint_health)(store *st, const char *endpoint, struct store_endpoint_health *out);
	/* Release notices whose date (latest revision) is within [from, to]
	 * (YYYY-MM-DD, inclusive; NULL or "": open), ordered by sender unit,
	 * date, notice id, message id. cb may read the store. */
	int (*release_facts)(store *st, const char *from_date, const char *to_date,
			     store_fact_cb cb, void *ctx);

	/* Operator moves, each with its own audit row (event retry / cancel)
	 * and detail (e.g. "uid=1000"). retry: failed -> queued, due at
	 * next_attempt_ms, retried until deadline_ms, attempts kept. cancel:
	 * queued, held or failed -> cancelled with reason (at most
	 * STORE_REASON_MAX bytes: GW_EINVALID for a longer one, nothing
	 * changed). Compare-and-set as message_update: GW_EINVALID with a
	 * sentence when the message is in another state, GW_ENOTFOUND when
	 * unknown. */
	int (*message_retry)(store *st, const char *message_id, int64_t next_attempt_ms,
			     int64_t deadline_ms, const char *detail);
	int (*message_cancel)(store *st, const char *message_id, const char *reason,
			      const char *detail);

	/* Audit trail. audit_append adds an event that is not a state change
	 * (e.g. "config-reload", subject "", detail "file=/etc/..."): no
	 * personal data in any field. In the caller's transaction, or its own. */
	int (*audit_append)(store *st, const char *event, const char *subject, const char *detail);
	/* Every row in seq order; malformed rows come with row->malformed. */
	int (*audit_walk)(store *st, store_audit_cb cb, void *ctx);
	/* The head recorded outside the table (the head file); GW_ENOTFOUND
	 * when there is none. where gets a name for it (the file's path). */
	int (*audit_recorded_head)(store *st, struct audit_head *out, char *where, size_t wherelen);
};

struct store {
	const struct store_ops *ops;
};

/* Open (create when missing) the SQLite store at path. */
int store_sqlite_open(store **out, const char *path);

/* Free the buffers a store_message or store_receipt owns. */
void store_message_clear(struct store_message *m);
void store_receipt_clear(struct store_receipt *r);

#endif
