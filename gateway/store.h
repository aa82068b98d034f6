/*
 * store: the gateway's durable state behind a small interface (OpenSMTPD's
 * queue_backend.c): callers never know it is SQLite. store_sqlite.c is the
 * one backend; another (PostgreSQL) fills the same struct store_ops.
 *
 * Durability: every committed transaction is durable when commit returns
 * (SQLite WAL with synchronous=FULL). Acknowledge nothing (spool removal,
 * operator answer) before then.
 *
 * Message states (SPEC section 10):
 *   queued -> sending -> delivered | queued (retry) | failed
 *   held (no consent / no endpoint) -> queued when the cause goes away
 *   queued|sending|held -> superseded (newer revision) | cancelled
 */
#ifndef GW_STORE_H
#define GW_STORE_H

#include "buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
	char reason[256];         /* why held / failed / cancelled */
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

/* Called once per row by the list functions; return non-zero to stop. */
typedef int (*store_message_cb)(const struct store_message *m, void *ctx);
typedef int (*store_attempt_cb)(const struct store_attempt *a, void *ctx);

struct store_filter {
	int state;                /* -1: any */
	const char *notice_id;    /* NULL: any */
};

typedef struct store store;

struct store_ops {
	void (*close)(store *st);
	int (*begin)(store *st);
	int (*commit)(store *st);
	int (*rollback)(store *st);

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
	int (*next_due_ms)(store *st, int64_t *when_ms); /* GW_ENOTFOUND: nothing queued */
	int (*recover_sending)(store *st, int *recovered); /* sending -> queued at start */

	/* One message, its attempts, its receipt. */
	int (*message_get)(store *st, const char *message_id, struct store_message *out);
	/* Compare-and-set: GW_ENOTFOUND / GW_EINVALID when the message is not
	 * in `expected`. reason NULL keeps the current reason; next_attempt_ms
	 * below 0 keeps the current time. */
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
