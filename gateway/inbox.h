/*
 * inbox: the receiver's durable store (SPEC section 8).
 *
 * Two places, one entry per MessageId:
 *   DIR/tmp/ID.xml, DIR/new/ID.xml   the Maildir inbox item (the plaintext
 *                                    Notice) the partner's case system reads;
 *                                    it moves items on to DIR/cur/ itself
 *   DB (SQLite, WAL, synchronous=FULL) one row per accepted MessageId:
 *                                    digest, header fields, and the
 *                                    evidence: the exact bytes received and
 *                                    the signed receipt we answered with
 *
 * inbox_store_many() is the one way messages get in. It writes and fsyncs
 * each item as an unnamed file without a lock; under the database's write
 * lock it names the items in tmp/, makes the names durable with one fsync
 * and commits every row in one transaction; only then does it move the
 * items into new/: the case system never sees an item without its record,
 * and a crash at any point followed by a resend ends with exactly one item
 * and one row (docs/RECEIVER.md walks every point). Storing several
 * messages together shares the directory fsyncs and the commit between
 * them (group commit). inbox_recover() finishes what a crash interrupted;
 * call it at start-up, before serving.
 *
 * Every MessageId is checked to be a lower-case UUIDv4 before it becomes
 * part of a path. One inbox handle per process (SQLite handles do not survive
 * fork); several processes may share the same directory and database.
 */
#ifndef GW_INBOX_H
#define GW_INBOX_H

#include "buf.h"
#include "message.h"

#include <stddef.h>
#include <stdint.h>

typedef struct inbox inbox;

/* One accepted message: its header, its digest and the receipt we signed. */
struct inbox_entry {
	struct msg_header header;
	char digest_b64[45]; /* base64 SHA-256 of the received bytes */
	char peer_orgnr[10]; /* organisation of the TLS client certificate */
	char received[32];   /* the receipt's Received, 2026-11-20T09:15:02.123Z */
	int64_t received_ms;
	char status[16];     /* accepted */
	gw_buf receipt;      /* the signed accepted receipt, exactly as answered */
};

enum inbox_outcome {
	INBOX_STORED,    /* new: item and row (with the evidence) are durable */
	INBOX_DUPLICATE, /* same MessageId and digest already stored */
	INBOX_CONFLICT,  /* same MessageId, other digest */
};

/* Where an inbox item is now. */
enum inbox_item_state {
	INBOX_ITEM_MISSING, /* taken away by the case system (or lost) */
	INBOX_ITEM_TMP,     /* committed, not yet moved into new/ */
	INBOX_ITEM_NEW,     /* waiting for the case system */
	INBOX_ITEM_CUR,     /* seen by the case system (Maildir cur/) */
};

/* Open (creating directories and database when missing). */
int inbox_open(inbox **out, const char *dir, const char *db_path);
void inbox_close(inbox *ib);

/*
 * Finish what a crash interrupted: an item in tmp/ whose row is committed
 * is moved into new/; one without a row (never acknowledged) is removed,
 * the sender will send it again. Items in new/ or cur/ without a row (a
 * database older than the inbox) are noted, so a resend of the same bytes
 * is not handed to the case system a second time (one scan of cur/ here,
 * none per message). Holds the write lock while it works, so it is safe
 * while other processes serve.
 */
int inbox_recover(inbox *ib, int *published, int *discarded);

/* The row of message_id; GW_ENOTFOUND when none. Clear out afterwards. */
int inbox_lookup(inbox *ib, const char *message_id, struct inbox_entry *out);

/* One message to store, and what became of it. */
struct inbox_put {
	const struct inbox_entry *entry; /* header, digest, receipt */
	const unsigned char *message;    /* the exact bytes received */
	size_t message_len;
	const unsigned char *item;       /* the inbox item (the serialized Notice) */
	size_t item_len;
	enum inbox_outcome outcome;      /* out, when rc is 0 */
	int rc;                          /* out: 0, or why this one was not stored */
	char error[256];                 /* out: the sentence for a negative rc */
};

/*
 * Store messages, each new, a duplicate or a conflict (puts[i].outcome).
 * A duplicate also makes sure an item committed before a crash reaches
 * new/. A negative puts[i].rc means nothing was acknowledged for that one:
 * answer a temporary error. The same MessageId twice in one call is stored
 * once (the second is its duplicate). Returns 0, or a negative code when
 * nothing could be tried (out of memory; every rc says so too).
 */
int inbox_store_many(inbox *ib, struct inbox_put *puts, size_t n);

/* One message: inbox_store_many() of one; the error in gw_error_last(). */
int inbox_store(inbox *ib, const struct inbox_entry *entry, const unsigned char *message,
		size_t message_len, const unsigned char *item, size_t item_len,
		enum inbox_outcome *outcome);

/*
 * For a MessageId whose row is committed: make sure its item has left tmp/
 * for new/ (a crash between the commit and the move leaves it in tmp/).
 * Call before answering a duplicate found by inbox_lookup(); 0 when done or
 * when there was nothing to move.
 */
int inbox_publish(inbox *ib, const char *message_id);

/* Called per row, oldest first; return non-zero to stop. */
typedef int (*inbox_entry_cb)(const struct inbox_entry *e, void *ctx);
int inbox_list(inbox *ib, inbox_entry_cb cb, void *ctx);

/* Where the item of message_id is; path gets the file when not MISSING. */
int inbox_item_locate(inbox *ib, const char *message_id, enum inbox_item_state *state,
		      char *path, size_t pathlen);
const char *inbox_item_state_name(enum inbox_item_state state);

/* The exact bytes received for message_id (evidence); GW_ENOTFOUND when none. */
int inbox_received_bytes(inbox *ib, const char *message_id, gw_buf *out);

void inbox_entry_clear(struct inbox_entry *e);

/*
 * TEST ONLY. When the environment variable GW_FAULT_POINT equals `name`,
 * log event=fault-point and kill this process with SIGKILL, so a test can
 * prove what a crash at that step leaves behind. With GW_FAULT_ONCE=FILE as
 * well, only the process that manages to create FILE (O_EXCL) is killed:
 * the point fires once per test. Without GW_FAULT_POINT this does nothing;
 * it never skips or weakens a check. Points, in the order a new message
 * reaches them: after-lock, after-tmp-write, after-commit, after-rename
 * (inbox_store_many), before-answer
 * (the receiver, after the store and before the 200 is written).
 */
void inbox_fault_point(const char *name);

#endif
