/*
 * store_sqlite: the SQLite backend of store.h.
 *
 * Durability. The connection runs journal_mode=WAL with synchronous=FULL:
 * when commit() returns, the transaction survives a crash or power loss.
 * Only a transaction begun with begin_relaxed() runs synchronous=NORMAL
 * and waits for the next durable commit or sync() to survive a power cut
 * ("Relaxed transactions" below). Transactions nest (SAVEPOINTs, "Nested
 * transactions" below).
 * foreign_keys=ON ties messages to notices and attempts/receipts to
 * messages. busy_timeout makes a second process wait instead of failing.
 *
 * Schema. Everything the database looks like is in schema_steps[] below,
 * one entry per version; PRAGMA user_version says how many steps a file
 * has had. A later change (the operator audit trail, for one) appends a
 * step; a released step is never edited.
 *
 * Scheduling. The sender asks for due messages (queued, next_attempt_ms <=
 * now) in release order: earliest event date first, undated last. A single
 * index cannot both select "due" and order by date, so messages_due() walks
 * the distinct event dates of queued messages through the partial index
 * idx_messages_due (event_date, next_attempt_ms, created_ms) WHERE queued:
 * one seek finds the next date, one range scan takes that date's due rows
 * in order. The cost is O(dates * log n + limit), flat in the number of
 * queued rows (release dates are days: a few hundred distinct at most).
 * Within one date, a message that has been due longest goes first
 * (next_attempt_ms), then by creation; for a fresh message both are equal.
 * next_due_ms() is a min() on idx_messages_wake (next_attempt_ms) WHERE
 * queued. These statements name their index (INDEXED BY): the planner
 * without statistics prefers idx_messages_state and would scan every
 * queued row, and a schema change that loses the index fails at open.
 *
 * State machine. message_update() is a compare-and-set on the current
 * state and allows only the transitions in allowed_transition();
 * messages_transition() checks its states against the same table.
 *
 * Text. A struct field has a fixed size; the database does not. A column
 * that identifies (ids, digests, dates, states) and does not fit its field
 * fails the read (copy_text): something wrote what the gateway never
 * writes. Free text (a message's reason, an attempt's error, a sender
 * unit) is cut to fit at a UTF-8 character boundary instead
 * (copy_free_text): one long text written by an older version must not
 * make every list of messages fail. Reasons are cut the same way when
 * written (bind_reason); an operator's cancel reason is refused instead.
 *
 * Audit trail (schema version 2). Every op that changes a state appends
 * its audit row (audit_add) with the change, in the caller's transaction
 * or, when none is open, in one of its own (tx_open/tx_close): the change
 * and its row commit together or not at all. The next row's number and
 * prev_hash come from the table's last row, read inside the write
 * transaction (BEGIN IMMEDIATE holds the write lock), so two processes
 * (the sender, an operator's retry) can never fork the chain. The table
 * refuses UPDATE and DELETE by trigger: a slip in a sqlite3 shell fails;
 * someone who drops the triggers is caught by `gateway audit verify`.
 *
 * Head. After a durable commit that added rows (or made relaxed ones
 * durable) the new head (seq, hash) goes to the log (event=audit-head) and
 * to <db>.audit-head: one fixed-size line, rewritten in place under
 * flock(2), only ever forward (a process that committed an older row does
 * not overwrite a newer head) and never over a head the table no longer
 * holds (truncation stays visible). It is not fsynced: after a power loss
 * it may lag the database by the last commits, which verify reports as a
 * note, never as a tamper.
 *
 * SQL. Every statement is prepared once at open and kept in the store;
 * values are only ever bound, never formatted into SQL text. State names in
 * the SQL are the constants of store.c, spelled out so the partial indexes
 * apply.
 */
#include "store.h"
#include "store_sqlite.h"
#include "audit.h"
#include "err.h"
#include "fsutil.h"
#include "log.h"
#include "timeutil.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define BUSY_TIMEOUT_MS 10000
#define NEST_MAX 8 /* nested transactions inside one (intake uses one level) */
#define STR_BUSY_TIMEOUT_S "10" /* BUSY_TIMEOUT_MS in seconds, for messages */

/* ---- schema: the one place the database layout is defined ---- */

static const char *const schema_steps[] = {
	/* version 1 */
	"CREATE TABLE notices ("
	"  notice_id TEXT NOT NULL,"
	"  revision INTEGER NOT NULL,"
	"  kind TEXT NOT NULL,"
	"  content_sha256 TEXT NOT NULL UNIQUE,"
	"  source_name TEXT NOT NULL,"
	"  sender_orgnr TEXT NOT NULL,"
	"  sender_unit TEXT NOT NULL,"
	"  event_date TEXT NOT NULL,"
	"  person_ref TEXT NOT NULL,"
	"  late_at_intake INTEGER NOT NULL,"
	"  weekend_release INTEGER NOT NULL,"
	"  received_ms INTEGER NOT NULL,"
	"  PRIMARY KEY (notice_id, revision)"
	");"
	"CREATE TABLE messages ("
	"  message_id TEXT PRIMARY KEY,"
	"  notice_id TEXT NOT NULL,"
	"  revision INTEGER NOT NULL,"
	"  kind TEXT NOT NULL,"
	"  service TEXT NOT NULL,"
	"  recipient_orgnr TEXT NOT NULL,"
	"  endpoint TEXT NOT NULL,"
	"  state TEXT NOT NULL CHECK (state IN ('queued','sending','delivered','failed',"
	"    'held','superseded','cancelled')),"
	"  reason TEXT NOT NULL,"
	"  event_date TEXT NOT NULL,"
	"  created_ms INTEGER NOT NULL,"
	"  next_attempt_ms INTEGER NOT NULL,"
	"  deadline_ms INTEGER NOT NULL,"
	"  attempts INTEGER NOT NULL,"
	"  digest_b64 TEXT NOT NULL,"
	"  signed_bytes BLOB,"
	"  FOREIGN KEY (notice_id, revision) REFERENCES notices (notice_id, revision)"
	");"
	"CREATE INDEX idx_messages_due ON messages (event_date, next_attempt_ms, created_ms)"
	"  WHERE state = 'queued';"
	"CREATE INDEX idx_messages_wake ON messages (next_attempt_ms) WHERE state = 'queued';"
	"CREATE INDEX idx_messages_notice ON messages (notice_id, revision);"
	"CREATE INDEX idx_messages_state ON messages (state, created_ms);"
	"CREATE TABLE attempts ("
	"  attempt_id INTEGER PRIMARY KEY,"
	"  message_id TEXT NOT NULL REFERENCES messages (message_id),"
	"  started_ms INTEGER NOT NULL,"
	"  duration_ms INTEGER NOT NULL,"
	"  http_status INTEGER NOT NULL,"
	"  error TEXT NOT NULL,"
	"  outcome TEXT NOT NULL"
	");"
	"CREATE INDEX idx_attempts_message ON attempts (message_id, started_ms);"
	"CREATE TABLE receipts ("
	"  receipt_id INTEGER PRIMARY KEY,"
	"  message_id TEXT NOT NULL REFERENCES messages (message_id),"
	"  status TEXT NOT NULL,"
	"  reason_code TEXT NOT NULL,"
	"  verified INTEGER NOT NULL,"
	"  received_ms INTEGER NOT NULL,"
	"  bytes BLOB NOT NULL"
	");"
	"CREATE INDEX idx_receipts_message ON receipts (message_id);"
	"PRAGMA user_version = 1;",
	/* version 2: the operator audit trail (audit.h). The chain starts at
	 * the first change after the upgrade: what happened before has no row. */
	"CREATE TABLE audit ("
	"  seq INTEGER PRIMARY KEY,"
	"  time_ms INTEGER NOT NULL,"
	"  event TEXT NOT NULL,"
	"  subject TEXT NOT NULL,"
	"  from_state TEXT NOT NULL,"
	"  to_state TEXT NOT NULL,"
	"  detail TEXT NOT NULL,"
	"  prev_hash TEXT NOT NULL,"
	"  hash TEXT NOT NULL"
	");"
	"CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit"
	"  BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;"
	"CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit"
	"  BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;"
	"CREATE INDEX idx_messages_endpoint ON messages (endpoint, state);"
	"PRAGMA user_version = 2;",
	/* version 3: whether an attempt may have put the message into the
	 * partner's hands (a withdrawal must then tell it). Rows from before
	 * cannot say: they count as reached. */
	"ALTER TABLE attempts ADD COLUMN reached INTEGER NOT NULL DEFAULT 1;"
	"PRAGMA user_version = 3;",
	/* version 4: the signed bytes in a table of their own, written once.
	 * In the messages row they were copied again (overflow pages and all)
	 * by every state change that altered the row's size: about four of the
	 * nine WAL pages a delivered message cost. */
	"CREATE TABLE message_bytes ("
	"  message_id TEXT PRIMARY KEY REFERENCES messages (message_id),"
	"  bytes BLOB NOT NULL"
	");"
	"INSERT INTO message_bytes (message_id, bytes)"
	"  SELECT message_id, signed_bytes FROM messages WHERE signed_bytes IS NOT NULL;"
	"ALTER TABLE messages DROP COLUMN signed_bytes;"
	"PRAGMA user_version = 4;",
};
#define SCHEMA_VERSION ((int)(sizeof(schema_steps) / sizeof(schema_steps[0])))

/* ---- prepared statements ---- */

#define MSG_COLS                                                                        \
	"message_id, notice_id, revision, kind, service, recipient_orgnr, endpoint, state, " \
	"reason, event_date, created_ms, next_attempt_ms, deadline_ms, attempts, digest_b64"
#define NOTICE_COLS                                                                   \
	"notice_id, revision, kind, content_sha256, source_name, sender_orgnr, "       \
	"sender_unit, event_date, person_ref, late_at_intake, weekend_release, received_ms"

enum stmt_id {
	ST_BEGIN, ST_COMMIT, ST_ROLLBACK, ST_SAVEPOINT, ST_RELEASE, ST_ROLLBACK_TO,
	ST_SEEN, ST_NOTICE_LATEST, ST_NOTICE_INSERT, ST_NOTICE_GET,
	ST_MSG_INSERT, ST_BYTES_PUT, ST_MSG_TRANSITION,
	ST_DUE_NEXT_DATE, ST_DUE_IN_DATE, ST_DUE_IN_DATE_HEADS, ST_NEXT_DUE, ST_RECOVER,
	ST_MSG_GET, ST_MSG_STATE, ST_MSG_BYTES, ST_MSG_OUTDATED, ST_MSG_UPDATE, ST_MSG_RELEASE,
	ST_ATTEMPT_INSERT, ST_MSG_REACHED, ST_ATTEMPTS_LIST, ST_RECEIPT_INSERT, ST_RECEIPT_GET,
	ST_LIST_ALL, ST_LIST_STATE, ST_LIST_NOTICE, ST_LIST_NOTICE_STATE, ST_COUNTS,
	ST_MSG_RETRY, ST_EP_COUNTS, ST_EP_LAST_OK, ST_EP_LAST, ST_EP_FAILS, ST_FACTS,
	ST_AUDIT_TAIL, ST_AUDIT_INSERT, ST_AUDIT_WALK, ST_AUDIT_HASH_AT,
	ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	/* Nested transactions: one name, SQLite acts on the latest of that name. */
	[ST_SAVEPOINT] = "SAVEPOINT gw_nested",
	[ST_RELEASE] = "RELEASE gw_nested",
	[ST_ROLLBACK_TO] = "ROLLBACK TO gw_nested",
	[ST_SEEN] = "SELECT 1 FROM notices WHERE content_sha256 = ?1",
	[ST_NOTICE_LATEST] = "SELECT revision, content_sha256 FROM notices WHERE notice_id = ?1"
			     " ORDER BY revision DESC LIMIT 1",
	[ST_NOTICE_INSERT] = "INSERT INTO notices (" NOTICE_COLS ") VALUES"
			     " (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
	[ST_NOTICE_GET] = "SELECT " NOTICE_COLS " FROM notices WHERE notice_id = ?1 AND revision = ?2",
	[ST_MSG_INSERT] = "INSERT INTO messages (" MSG_COLS ") VALUES"
			  " (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
	[ST_BYTES_PUT] = "INSERT OR REPLACE INTO message_bytes (message_id, bytes) VALUES (?1, ?2)",
	/* A withdrawal message is never superseded: whoever it tells to delete
	 * a copy must be told, whatever revision came after (a partner applies
	 * revisions in order, so a later one is not undone by it). */
	[ST_MSG_TRANSITION] = "UPDATE messages SET state = ?1, reason = ?2"
			      " WHERE notice_id = ?3 AND revision < ?4 AND state = ?5"
			      " AND kind != 'withdrawal'"
			      " RETURNING message_id",
	[ST_DUE_NEXT_DATE] = "SELECT event_date FROM messages INDEXED BY idx_messages_due"
			     " WHERE state = 'queued'"
			     " AND event_date > ?1 ORDER BY event_date LIMIT 1",
	[ST_DUE_IN_DATE] = "SELECT " MSG_COLS ", bytes FROM messages"
			   " INDEXED BY idx_messages_due LEFT JOIN message_bytes USING (message_id)"
			   " WHERE state = 'queued' AND event_date = ?1 AND next_attempt_ms <= ?2"
			   " ORDER BY next_attempt_ms, created_ms LIMIT ?3",
	/* The same rows without their signed bytes (messages_due_heads). */
	[ST_DUE_IN_DATE_HEADS] = "SELECT " MSG_COLS ", NULL FROM messages"
				 " INDEXED BY idx_messages_due"
				 " WHERE state = 'queued' AND event_date = ?1 AND next_attempt_ms <= ?2"
				 " ORDER BY next_attempt_ms, created_ms LIMIT ?3",
	[ST_NEXT_DUE] = "SELECT min(next_attempt_ms) FROM messages INDEXED BY idx_messages_wake"
			" WHERE state = 'queued'",
	[ST_RECOVER] = "UPDATE messages SET state = 'queued',"
		       " reason = 'interrupted while sending; will be sent again',"
		       " attempts = attempts + 1" /* the interrupted one, recorded below */
		       " WHERE state = 'sending' RETURNING message_id",
	[ST_MSG_GET] = "SELECT " MSG_COLS ", bytes FROM messages"
		       " LEFT JOIN message_bytes USING (message_id) WHERE message_id = ?1",
	[ST_MSG_STATE] = "SELECT state FROM messages WHERE message_id = ?1",
	[ST_MSG_BYTES] = "SELECT bytes FROM messages LEFT JOIN message_bytes USING (message_id)"
			 " WHERE message_id = ?1",
	[ST_MSG_OUTDATED] = "SELECT"
			    " (SELECT min(n.revision) FROM notices n WHERE n.notice_id = m.notice_id"
			    "   AND n.revision > m.revision AND n.kind != 'withdrawal'"
			    "   AND m.kind != 'withdrawal'),"
			    " (SELECT min(w.revision) FROM messages w WHERE w.notice_id = m.notice_id"
			    "   AND w.revision > m.revision AND w.kind = 'withdrawal'"
			    "   AND w.service = m.service AND w.recipient_orgnr = m.recipient_orgnr)"
			    " FROM messages m WHERE m.message_id = ?1",
	[ST_MSG_UPDATE] = "UPDATE messages SET state = ?1, reason = coalesce(?2, reason),"
			  " next_attempt_ms = CASE WHEN ?3 < 0 THEN next_attempt_ms ELSE ?3 END,"
			  " attempts = attempts + ?4 WHERE message_id = ?5 AND state = ?6",
	[ST_MSG_RELEASE] = "UPDATE messages SET state = 'queued', reason = '', endpoint = ?1,"
			   " recipient_orgnr = ?2, digest_b64 = ?3,"
			   " next_attempt_ms = ?4, deadline_ms = ?5"
			   " WHERE message_id = ?6 AND state = 'held'",
	[ST_ATTEMPT_INSERT] = "INSERT INTO attempts (message_id, started_ms, duration_ms,"
			      " http_status, error, outcome, reached)"
			      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[ST_MSG_REACHED] = "SELECT EXISTS (SELECT 1 FROM attempts WHERE message_id = ?1"
			   " AND reached = 1)",
	[ST_ATTEMPTS_LIST] = "SELECT message_id, started_ms, duration_ms, http_status, error,"
			     " outcome FROM attempts WHERE message_id = ?1"
			     " ORDER BY attempt_id", /* as recorded, whatever the clocks said */
	[ST_RECEIPT_INSERT] = "INSERT INTO receipts (message_id, status, reason_code, verified,"
			      " received_ms, bytes) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[ST_RECEIPT_GET] = "SELECT message_id, status, reason_code, verified, received_ms, bytes"
			   " FROM receipts WHERE message_id = ?1 ORDER BY receipt_id DESC LIMIT 1",
	/* Lists leave signed_bytes out (NULL): message_get() has them. */
	[ST_LIST_ALL] = "SELECT " MSG_COLS ", NULL FROM messages ORDER BY created_ms, message_id",
	[ST_LIST_STATE] = "SELECT " MSG_COLS ", NULL FROM messages WHERE state = ?1"
			  " ORDER BY created_ms, message_id",
	[ST_LIST_NOTICE] = "SELECT " MSG_COLS ", NULL FROM messages WHERE notice_id = ?1"
			   " ORDER BY revision, created_ms, message_id",
	[ST_LIST_NOTICE_STATE] = "SELECT " MSG_COLS ", NULL FROM messages WHERE notice_id = ?1"
				 " AND state = ?2 ORDER BY revision, created_ms, message_id",
	[ST_COUNTS] = "SELECT state, count(*) FROM messages GROUP BY state",
	[ST_MSG_RETRY] = "UPDATE messages SET state = 'queued', reason = 'retried by an operator',"
			 " next_attempt_ms = ?1, deadline_ms = ?2"
			 " WHERE message_id = ?3 AND state = 'failed'",
	[ST_EP_COUNTS] = "SELECT state, count(*) FROM messages WHERE endpoint = ?1 GROUP BY state",
	[ST_EP_LAST_OK] = "SELECT max(a.started_ms) FROM attempts a"
			  " JOIN messages m ON m.message_id = a.message_id"
			  " WHERE m.endpoint = ?1 AND a.outcome = 'delivered'",
	[ST_EP_LAST] = "SELECT a.started_ms, a.outcome, a.error FROM attempts a"
		       " JOIN messages m ON m.message_id = a.message_id WHERE m.endpoint = ?1"
		       " ORDER BY a.started_ms DESC, a.attempt_id DESC LIMIT 1",
	[ST_EP_FAILS] = "SELECT count(*) FROM attempts a"
			" JOIN messages m ON m.message_id = a.message_id"
			" WHERE m.endpoint = ?1 AND a.started_ms > ?2 AND a.outcome <> 'delivered'",
	/* The latest revision of each notice, when it is a release, with the
	 * messages of that revision and the first receipt that proved arrival. */
	[ST_FACTS] = "SELECT n.notice_id, n.revision, n.sender_unit, n.event_date,"
		     " n.weekend_release, n.late_at_intake, m.message_id, m.service, m.endpoint,"
		     " m.state, m.reason,"
		     " (SELECT r.received_ms FROM receipts r WHERE r.message_id = m.message_id"
		     "   AND r.verified = 1 AND r.status IN ('accepted', 'duplicate')"
		     "   ORDER BY r.received_ms, r.receipt_id LIMIT 1)"
		     " FROM notices n LEFT JOIN messages m"
		     "   ON m.notice_id = n.notice_id AND m.revision = n.revision"
		     " WHERE n.kind = 'release' AND n.event_date >= ?1 AND n.event_date <= ?2"
		     " AND n.revision = (SELECT max(x.revision) FROM notices x"
		     "   WHERE x.notice_id = n.notice_id)"
		     " ORDER BY n.sender_unit, n.event_date, n.notice_id, m.message_id",
	[ST_AUDIT_TAIL] = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
	[ST_AUDIT_INSERT] = "INSERT INTO audit (seq, time_ms, event, subject, from_state, to_state,"
			    " detail, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
	[ST_AUDIT_WALK] = "SELECT seq, time_ms, event, subject, from_state, to_state, detail,"
			  " prev_hash, hash FROM audit ORDER BY seq",
	[ST_AUDIT_HASH_AT] = "SELECT hash FROM audit WHERE seq = ?1",
};

struct sqlite_store {
	store base; /* first: a store * is a struct sqlite_store * */
	sqlite3 *db;
	sqlite3_stmt *stmt[ST_COUNT];
	char path[PATH_MAX];
	char head_path[PATH_MAX + 16]; /* <path>.audit-head */
	struct audit_head head;        /* the last row the open transaction added */
	bool head_pending;             /* it added rows: publish head after a durable COMMIT */
	int depth;                     /* 0: none open; 1: BEGIN; 2 and more: SAVEPOINTs */
	bool relaxed;                  /* the open transaction runs synchronous=NORMAL */
	bool full_unset;               /* synchronous=FULL could not be restored: begin refuses */
	bool lost;                     /* SQLite rolled the open transaction back by itself */
	char lost_reason[512];         /* ... after this failure */
	struct nest_saved {            /* at each SAVEPOINT: head, head_pending as they were */
		struct audit_head head;
		bool pending;
	} saved[NEST_MAX];
	struct audit_head unsynced;    /* last audit row of relaxed commits not yet durable */
	bool unsynced_pending;
};

static struct sqlite_store *S(store *st)
{
	return (struct sqlite_store *)st;
}

/* ---- small helpers ---- */

/*
 * SQLite's cause in an operator's words, by primary result code; NULL when
 * SQLite's own text says enough. The caller says what becomes of the work.
 */
static const char *db_cause(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return "another process has held the database's write lock longer than the "
		       "busy timeout (" STR_BUSY_TIMEOUT_S " s)";
	case SQLITE_FULL:
		return "the disk holding the database is full";
	case SQLITE_READONLY:
		return "the database cannot be written (a read-only file or file system)";
	case SQLITE_IOERR:
		return "the disk holding the database reported an error (full, read-only or failing)";
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return "the database file is damaged; stop the gateway and restore the last backup "
		       "(docs/OPERATIONS.md, \"A damaged database\")";
	case SQLITE_CANTOPEN:
		return "the database file cannot be opened (missing directory or no permission)";
	default:
		return NULL;
	}
}

static int db_fail(struct sqlite_store *s, int rc, const char *what)
{
	int code = GW_ERROR;
	const char *cause = db_cause(rc);

	if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
		code = GW_ETEMP;
	else if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
		code = GW_EEXISTS;
	else if ((rc & 0xff) == SQLITE_CONSTRAINT)
		code = GW_EINVALID;
	else if ((rc & 0xff) == SQLITE_NOMEM)
		code = GW_ENOMEM;
	if (cause)
		gw_error_set(code, "store %s: cannot %s: %s (SQLite: %s)", s->path, what, cause,
			     sqlite3_errmsg(s->db));
	else
		gw_error_set(code, "store %s: cannot %s: %s", s->path, what, sqlite3_errmsg(s->db));
	/* Some failures (a full disk, an I/O error) make SQLite roll back the
	 * whole transaction, savepoints and all: nothing more may be added to it
	 * or committed (see "Nested transactions"). */
	if (s->depth > 0 && !s->lost && sqlite3_get_autocommit(s->db)) {
		s->lost = true;
		snprintf(s->lost_reason, sizeof(s->lost_reason), "%s", gw_error_last());
	}
	return code;
}

/* The cached statement, reset and with no bindings, ready to bind. */
static sqlite3_stmt *stmt(struct sqlite_store *s, enum stmt_id id)
{
	sqlite3_stmt *q = s->stmt[id];

	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	return q;
}

static int bind_text(sqlite3_stmt *q, int i, const char *text)
{
	return sqlite3_bind_text(q, i, text ? text : "", -1, SQLITE_TRANSIENT);
}

static int bind_blob(sqlite3_stmt *q, int i, const gw_buf *b)
{
	if (!b->len)
		return sqlite3_bind_null(q, i);
	return sqlite3_bind_blob(q, i, b->data, (int)b->len, SQLITE_TRANSIENT);
}

/* Run a statement that returns no rows; reset it afterwards. */
static int exec_stmt(struct sqlite_store *s, sqlite3_stmt *q, const char *what)
{
	int rc = sqlite3_step(q);

	sqlite3_reset(q);
	if (rc != SQLITE_DONE)
		return db_fail(s, rc, what);
	return 0;
}

/* A message's signed bytes, written when it is recorded or released from held. */
static int bytes_put(struct sqlite_store *s, const char *message_id, const gw_buf *bytes)
{
	sqlite3_stmt *q = stmt(s, ST_BYTES_PUT);

	bind_text(q, 1, message_id);
	bind_blob(q, 2, bytes);
	return exec_stmt(s, q, "record a message's signed bytes");
}

/*
 * The length of the longest start of text (len bytes) that has at most max
 * bytes and does not end inside a UTF-8 sequence: a cut backs up over the
 * continuation bytes (10xxxxxx) of the character it would split.
 */
static size_t utf8_fit(const unsigned char *text, size_t len, size_t max)
{
	if (len <= max)
		return len;
	while (max > 0 && (text[max] & 0xc0) == 0x80)
		max--;
	return max;
}

/* A message's reason, cut to what a reader keeps (STORE_REASON_MAX). */
static int bind_reason(sqlite3_stmt *q, int i, const char *reason)
{
	const char *text = reason ? reason : "";
	size_t len = utf8_fit((const unsigned char *)text, strlen(text), STORE_REASON_MAX);

	return sqlite3_bind_text(q, i, text, (int)len, SQLITE_TRANSIENT);
}

/* An identifier or a fixed-form column: one that does not fit fails the read. */
static int copy_text(char *dst, size_t dstlen, sqlite3_stmt *q, int col)
{
	const unsigned char *text = sqlite3_column_text(q, col);
	size_t len = (size_t)sqlite3_column_bytes(q, col);

	if (len >= dstlen)
		return gw_error_set(GW_ERROR, "store: column '%s' holds %zu bytes, more than %zu",
				    sqlite3_column_name(q, col), len, dstlen - 1);
	if (len)
		memcpy(dst, text, len);
	dst[len] = '\0';
	return 0;
}

/*
 * Free text (a reason, an attempt's error, a sender unit): cut to fit at a
 * UTF-8 character boundary, so a row written longer (by an older version,
 * or by hand) still reads: one long text must not hide the whole store
 * from operators, nor stop intake that lists a notice's messages.
 */
static void copy_free_text(char *dst, size_t dstlen, sqlite3_stmt *q, int col)
{
	const unsigned char *text = sqlite3_column_text(q, col);
	size_t len = utf8_fit(text, (size_t)sqlite3_column_bytes(q, col), dstlen - 1);

	if (len)
		memcpy(dst, text, len);
	dst[len] = '\0';
}

static int copy_blob(gw_buf *dst, sqlite3_stmt *q, int col)
{
	const void *data = sqlite3_column_blob(q, col);
	size_t len = (size_t)sqlite3_column_bytes(q, col);

	gw_buf_reset(dst);
	if (gw_buf_put(dst, data, len) < 0)
		return GW_ENOMEM;
	return 0;
}

/* ---- row readers ---- */

/*
 * Read a row selected with MSG_COLS followed by signed_bytes (or NULL).
 * Without with_bytes the last column is not copied (signed_bytes stays as
 * it is: empty for a fresh struct).
 */
static int read_message_cols(sqlite3_stmt *q, struct store_message *m, bool with_bytes)
{
	char state[16];

	if (copy_text(m->message_id, sizeof(m->message_id), q, 0) < 0 ||
	    copy_text(m->notice_id, sizeof(m->notice_id), q, 1) < 0 ||
	    copy_text(m->kind, sizeof(m->kind), q, 3) < 0 ||
	    copy_text(m->service, sizeof(m->service), q, 4) < 0 ||
	    copy_text(m->recipient_orgnr, sizeof(m->recipient_orgnr), q, 5) < 0 ||
	    copy_text(m->endpoint, sizeof(m->endpoint), q, 6) < 0 ||
	    copy_text(state, sizeof(state), q, 7) < 0 ||
	    copy_text(m->event_date, sizeof(m->event_date), q, 9) < 0 ||
	    copy_text(m->digest_b64, sizeof(m->digest_b64), q, 14) < 0)
		return GW_ERROR;
	copy_free_text(m->reason, sizeof(m->reason), q, 8);
	if (store_state_parse(state, &m->state) < 0)
		return gw_error_wrap(GW_ERROR, "store: message %s", m->message_id);
	m->revision = sqlite3_column_int(q, 2);
	m->created_ms = sqlite3_column_int64(q, 10);
	m->next_attempt_ms = sqlite3_column_int64(q, 11);
	m->deadline_ms = sqlite3_column_int64(q, 12);
	m->attempts = sqlite3_column_int(q, 13);
	return with_bytes ? copy_blob(&m->signed_bytes, q, 15) : 0;
}

static int read_message(sqlite3_stmt *q, struct store_message *m)
{
	return read_message_cols(q, m, true);
}

static int read_notice(sqlite3_stmt *q, struct store_notice *n)
{
	if (copy_text(n->notice_id, sizeof(n->notice_id), q, 0) < 0 ||
	    copy_text(n->kind, sizeof(n->kind), q, 2) < 0 ||
	    copy_text(n->content_sha256, sizeof(n->content_sha256), q, 3) < 0 ||
	    copy_text(n->source_name, sizeof(n->source_name), q, 4) < 0 ||
	    copy_text(n->sender_orgnr, sizeof(n->sender_orgnr), q, 5) < 0 ||
	    copy_text(n->event_date, sizeof(n->event_date), q, 7) < 0 ||
	    copy_text(n->person_ref, sizeof(n->person_ref), q, 8) < 0)
		return GW_ERROR;
	copy_free_text(n->sender_unit, sizeof(n->sender_unit), q, 6);
	n->revision = sqlite3_column_int(q, 1);
	n->late_at_intake = sqlite3_column_int(q, 9) != 0;
	n->weekend_release = sqlite3_column_int(q, 10) != 0;
	n->received_ms = sqlite3_column_int64(q, 11);
	return 0;
}

static int read_attempt(sqlite3_stmt *q, struct store_attempt *a)
{
	if (copy_text(a->message_id, sizeof(a->message_id), q, 0) < 0 ||
	    copy_text(a->outcome, sizeof(a->outcome), q, 5) < 0)
		return GW_ERROR;
	copy_free_text(a->error, sizeof(a->error), q, 4);
	a->started_ms = sqlite3_column_int64(q, 1);
	a->duration_ms = sqlite3_column_int64(q, 2);
	a->http_status = sqlite3_column_int(q, 3);
	return 0;
}

/* ---- the audit head outside the table ---- */

#define HEAD_LINE_LEN 86 /* "%020lld %64s\n" */

static int head_parse(const char *line, size_t len, struct audit_head *out)
{
	char text[HEAD_LINE_LEN + 1];

	if (len != HEAD_LINE_LEN || line[20] != ' ' || line[85] != '\n')
		return GW_EINVALID;
	memcpy(text, line, len);
	text[20] = ':';
	text[85] = '\0';
	return audit_head_parse(text, out) < 0 ? GW_EINVALID : 0;
}

/* The hash of row seq, "" when the table has no such row. */
static int hash_at(struct sqlite_store *s, int64_t seq, char out[AUDIT_HASH_HEX])
{
	sqlite3_stmt *q = stmt(s, ST_AUDIT_HASH_AT);
	int rc, err = 0;

	out[0] = '\0';
	sqlite3_bind_int64(q, 1, seq);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		audit_field_set(out, AUDIT_HASH_HEX, (const char *)sqlite3_column_text(q, 0));
	else if (rc != SQLITE_DONE)
		err = db_fail(s, rc, "read an audit row");
	sqlite3_reset(q);
	return err;
}

/*
 * Move the head file forward to head. Runs after a durable COMMIT (or
 * sync), so failures are logged, not returned: the change itself is durable.
 */
static void head_file_update(struct sqlite_store *s, const struct audit_head *head)
{
	char line[HEAD_LINE_LEN + 1], buf[HEAD_LINE_LEN + 8], have[AUDIT_HASH_HEX];
	struct audit_head recorded;
	ssize_t n;
	int fd = open(s->head_path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd < 0) {
		gw_log(GW_LOG_WARN, "audit-head-unwritten", "file", s->head_path, "error",
		       strerror(errno), NULL);
		return;
	}
	if (flock(fd, LOCK_EX) < 0)
		goto fail;
	n = pread(fd, buf, sizeof(buf), 0);
	if (n > 0 && head_parse(buf, (size_t)n, &recorded) == 0) {
		if (recorded.seq >= head->seq)
			goto done; /* another process recorded a newer head */
		if (hash_at(s, recorded.seq, have) < 0 || strcmp(have, recorded.hash) != 0) {
			char seq[24];
			snprintf(seq, sizeof(seq), "%" PRId64, recorded.seq);
			gw_log(GW_LOG_ERROR, "audit-trail-damaged", "file", s->head_path,
			       "recorded_seq", seq, "detail",
			       "the table no longer holds the recorded head; the head file is kept."
			       " Run gateway audit verify", NULL);
			goto done;
		}
	}
	snprintf(line, sizeof(line), "%020" PRId64 " %s\n", head->seq, head->hash);
	if (pwrite(fd, line, HEAD_LINE_LEN, 0) != HEAD_LINE_LEN || ftruncate(fd, HEAD_LINE_LEN) < 0)
		goto fail;
done:
	close(fd);
	return;
fail:
	gw_log(GW_LOG_WARN, "audit-head-unwritten", "file", s->head_path, "error", strerror(errno),
	       NULL);
	close(fd);
}

/* The head to the log and the file, once the rows up to it are durable. */
static void head_publish(struct sqlite_store *s, const struct audit_head *head)
{
	char seq[24];

	snprintf(seq, sizeof(seq), "%" PRId64, head->seq);
	gw_log(GW_LOG_INFO, "audit-head", "seq", seq, "hash", head->hash, NULL);
	head_file_update(s, head);
}

/* ---- transactions ----
 *
 * Nested transactions. Depth 1 is BEGIN IMMEDIATE ... COMMIT; a begin
 * inside it is SAVEPOINT gw_nested, its commit RELEASE, its rollback
 * ROLLBACK TO + RELEASE (one name: SQLite acts on the latest savepoint of
 * that name). audit_add() points s->head at the row it inserted and sets
 * head_pending; each SAVEPOINT saves both and ROLLBACK TO restores them, so
 * s->head never names a row that was rolled back, and a RELEASE keeps them
 * (the rows now belong to the enclosing transaction). Only the outermost
 * COMMIT publishes the head. When SQLite has rolled the whole transaction
 * back by itself (db_fail() notices: a full disk, an I/O error), s->lost
 * makes every further begin, write and commit inside it fail until the
 * caller's outermost rollback or commit ends it.
 *
 * Relaxed transactions. SQLite refuses to change PRAGMA synchronous inside
 * a transaction ("Safety level may not be changed inside a transaction"),
 * so the choice is made at BEGIN: synchronous=NORMAL, BEGIN ... COMMIT,
 * then synchronous=FULL again whatever happened (when that fails, every
 * later begin tries again and refuses until it works). In WAL mode NORMAL
 * leaves out the fsync of the WAL at COMMIT: the commit survives a crash of
 * the process (it is in the WAL, in the page cache) but not a power cut.
 * The next durable commit fsyncs the whole WAL file, which holds the
 * relaxed frames before its own (frames are appended in order; a
 * checkpoint syncs the WAL before it copies any frame and the database
 * after), so it makes them durable as well; so does sync() (an fdatasync
 * of the WAL without a commit). Checked with strace -f -e
 * trace=fsync,fdatasync on SQLite 3.40: no sync at a relaxed COMMIT, one
 * fdatasync of the WAL at the next FULL COMMIT.
 *
 * The audit head is published (log line and head file) only after a
 * durable commit or sync, never after a relaxed commit: the head file is
 * the witness against a truncated trail, and a head ahead of what survived
 * a power cut would make `audit verify` report rows missing. Until then the
 * relaxed rows' head waits in s->unsynced; a durable commit that adds rows
 * publishes its own head, which comes later in the same chain and so
 * covers them. The caller of begin_relaxed() must see to it that a durable
 * commit or sync() follows soon (deliver.c: within DURABLE_WITHIN_MS):
 * `audit verify` run meanwhile finds rows after the recorded head, waits a
 * little for it, and then reports them. close() syncs first.
 */

/*
 * PRAGMA synchronous, run afresh each time: SQLite applies this pragma when
 * the statement is prepared, not when it is stepped, so a kept prepared
 * statement would not set anything.
 */
static int set_synchronous(struct sqlite_store *s, bool full)
{
	const char *sql = full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL";
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		return db_fail(s, rc, full ? "set synchronous=FULL again" : "relax a transaction");
	return 0;
}

/* Back to synchronous=FULL after a relaxed transaction; the caller's error message is kept. */
static void full_again(struct sqlite_store *s)
{
	char reason[512];

	snprintf(reason, sizeof(reason), "%s", gw_error_last());
	s->full_unset = set_synchronous(s, true) < 0;
	if (s->full_unset)
		gw_log(GW_LOG_ERROR, "store-error", "reason", gw_error_last(), "next",
		       "no transaction begins until synchronous=FULL is set again", NULL);
	gw_error_set(GW_ERROR, "%s", reason);
}

/* The outermost transaction is over (committed or rolled back). */
static void tx_done(struct sqlite_store *s)
{
	s->depth = 0;
	s->lost = false;
	if (s->relaxed) {
		s->relaxed = false;
		full_again(s);
	}
}

/* The error of working on inside a transaction SQLite already rolled back. */
static int tx_lost(struct sqlite_store *s)
{
	if (!s->lost) {
		s->lost = true;
		snprintf(s->lost_reason, sizeof(s->lost_reason), "the database ended it");
	}
	s->head_pending = false;
	return gw_error_set(GW_ERROR, "store %s: the transaction was rolled back after an earlier "
			    "failure, so nothing of it was stored (%s)", s->path, s->lost_reason);
}

static int tx_begin(struct sqlite_store *s, bool relaxed)
{
	int rc;

	if (s->depth > 0) {
		if (s->lost || sqlite3_get_autocommit(s->db))
			return tx_lost(s);
		if (s->depth > NEST_MAX)
			return gw_error_set(GW_EINVALID, "store %s: transactions nested more "
					    "than %d deep", s->path, NEST_MAX);
		if ((rc = exec_stmt(s, stmt(s, ST_SAVEPOINT), "begin a nested transaction")) < 0)
			return rc;
		s->saved[s->depth - 1].head = s->head;
		s->saved[s->depth - 1].pending = s->head_pending;
		s->depth++;
		return 0;
	}
	if (!sqlite3_get_autocommit(s->db))
		return gw_error_set(GW_EINVALID, "store %s: a transaction is already open", s->path);
	if (s->full_unset && (s->full_unset = set_synchronous(s, true) < 0))
		return GW_ERROR;
	if (relaxed && (rc = set_synchronous(s, false)) < 0)
		return rc;
	s->relaxed = relaxed;
	s->lost = false;
	s->head_pending = false;
	if ((rc = exec_stmt(s, stmt(s, ST_BEGIN), "begin a transaction")) < 0) {
		tx_done(s);
		return rc;
	}
	s->depth = 1;
	return 0;
}

static int sq_begin(store *st)
{
	return tx_begin(S(st), false);
}

static int sq_begin_relaxed(store *st)
{
	return tx_begin(S(st), true);
}

/* Keeps the caller's error message (why it rolls back) unless it fails itself. */
static int sq_rollback(store *st)
{
	struct sqlite_store *s = S(st);
	char reason[512];
	int rc = 0;

	snprintf(reason, sizeof(reason), "%s", gw_error_last());
	if (s->depth > 1) {
		struct nest_saved *saved = &s->saved[s->depth - 2];

		s->depth--;
		if (s->lost || sqlite3_get_autocommit(s->db)) {
			tx_lost(s); /* the enclosing transaction's commit will fail */
		} else if ((rc = exec_stmt(s, stmt(s, ST_ROLLBACK_TO),
					   "roll back a nested transaction")) < 0 ||
			   (rc = exec_stmt(s, stmt(s, ST_RELEASE),
					   "end a nested transaction")) < 0) {
			/* Its changes may still be there: the enclosing one must not commit. */
			s->lost = true;
			snprintf(s->lost_reason, sizeof(s->lost_reason), "%s", gw_error_last());
			s->head_pending = false;
			return rc;
		} else {
			s->head = saved->head;
			s->head_pending = saved->pending;
		}
		gw_error_set(GW_ERROR, "%s", reason);
		return 0;
	}
	s->head_pending = false;
	if (!sqlite3_get_autocommit(s->db)) /* else nothing open (SQLite may have rolled back) */
		rc = exec_stmt(s, stmt(s, ST_ROLLBACK), "roll back a transaction");
	if (s->depth == 1)
		tx_done(s);
	if (rc == 0)
		gw_error_set(GW_ERROR, "%s", reason);
	return rc;
}

/*
 * Make the WAL durable without a commit: an fdatasync of the WAL file
 * (SQLite's own VFS call on its own handle), so every frame written to it
 * so far, the relaxed commits' included, survives a power cut.
 */
static int wal_sync(struct sqlite_store *s)
{
	sqlite3_file *wal = NULL;
	int rc = sqlite3_file_control(s->db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &wal);

	if (rc != SQLITE_OK || !wal || !wal->pMethods)
		return gw_error_set(GW_ERROR, "store %s: cannot reach the write-ahead log to "
				    "sync it", s->path);
	if ((rc = wal->pMethods->xSync(wal, SQLITE_SYNC_NORMAL)) != SQLITE_OK)
		return gw_error_set(GW_ERROR, "store %s: cannot sync the write-ahead log (%s): the "
				    "last commits may not survive a power cut", s->path,
				    sqlite3_errstr(rc));
	return 0;
}

static int sq_sync(store *st)
{
	struct sqlite_store *s = S(st);
	int rc;

	if (!s->unsynced_pending)
		return 0;
	if ((rc = wal_sync(s)) < 0)
		return rc;
	s->unsynced_pending = false;
	head_publish(s, &s->unsynced);
	return 0;
}

static int sq_commit(store *st)
{
	struct sqlite_store *s = S(st);
	bool relaxed;
	int rc;

	if (s->depth == 0)
		return gw_error_set(GW_EINVALID, "store %s: commit without a transaction", s->path);
	if (s->lost || sqlite3_get_autocommit(s->db)) {
		rc = tx_lost(s);
		sq_rollback(st);
		return rc;
	}
	if (s->depth > 1) { /* the enclosing transaction's commit makes it durable */
		if ((rc = exec_stmt(s, stmt(s, ST_RELEASE), "commit a nested transaction")) < 0) {
			sq_rollback(st);
			return rc;
		}
		s->depth--;
		return 0;
	}
	if ((rc = exec_stmt(s, stmt(s, ST_COMMIT), "commit")) < 0) {
		sq_rollback(st);
		return rc;
	}
	relaxed = s->relaxed;
	tx_done(s);
	if (relaxed) { /* not durable yet: its head waits (see "Relaxed transactions") */
		if (s->head_pending) {
			s->unsynced = s->head;
			s->unsynced_pending = true;
		}
		s->head_pending = false;
		return 0;
	}
	if (s->head_pending) { /* this commit wrote and synced the WAL: earlier frames too */
		s->head_pending = false;
		s->unsynced_pending = false;
		head_publish(s, &s->head);
	} else if (s->unsynced_pending && sq_sync(st) < 0) {
		/* A commit without audit rows may have written nothing to sync. */
		gw_log(GW_LOG_WARN, "audit-head-unwritten", "reason", gw_error_last(), "next",
		       "published after the next durable commit", NULL);
	}
	return 0;
}

/*
 * A state change and its audit row: in the caller's transaction (nested or
 * not), or in one of ours.
 */
static int tx_open(struct sqlite_store *s, bool *own)
{
	*own = s->depth == 0;
	if (*own)
		return tx_begin(s, false);
	if (s->lost || sqlite3_get_autocommit(s->db))
		return tx_lost(s);
	return 0;
}

static int tx_close(struct sqlite_store *s, bool own, int rc)
{
	if (!own)
		return rc;
	if (rc == 0)
		return sq_commit(&s->base);
	sq_rollback(&s->base);
	return rc;
}

/* Append one audit row; the caller holds a write transaction. */
static int audit_add(struct sqlite_store *s, const char *event, const char *subject,
		     const char *from, const char *to, const char *detail)
{
	struct audit_row r;
	sqlite3_stmt *q;
	int rc, err = 0;

	if (s->depth == 0 || sqlite3_get_autocommit(s->db))
		return gw_error_set(GW_ERROR, "store %s: an audit row outside a transaction",
				    s->path);
	memset(&r, 0, sizeof(r));
	q = stmt(s, ST_AUDIT_TAIL);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		r.seq = sqlite3_column_int64(q, 0) + 1;
		audit_field_set(r.prev_hash, sizeof(r.prev_hash),
				(const char *)sqlite3_column_text(q, 1));
	} else if (rc == SQLITE_DONE) {
		r.seq = 1;
		memcpy(r.prev_hash, audit_genesis, sizeof(r.prev_hash));
	} else {
		err = db_fail(s, rc, "read the end of the audit trail");
	}
	sqlite3_reset(q);
	if (err < 0)
		return err;
	r.time_ms = timeutil_now_ms();
	audit_field_set(r.event, sizeof(r.event), event);
	audit_field_set(r.subject, sizeof(r.subject), subject);
	audit_field_set(r.from_state, sizeof(r.from_state), from);
	audit_field_set(r.to_state, sizeof(r.to_state), to);
	audit_field_set(r.detail, sizeof(r.detail), detail);
	if ((err = audit_row_hash(&r, r.hash)) < 0)
		return err;
	q = stmt(s, ST_AUDIT_INSERT);
	sqlite3_bind_int64(q, 1, r.seq);
	sqlite3_bind_int64(q, 2, r.time_ms);
	bind_text(q, 3, r.event);
	bind_text(q, 4, r.subject);
	bind_text(q, 5, r.from_state);
	bind_text(q, 6, r.to_state);
	bind_text(q, 7, r.detail);
	bind_text(q, 8, r.prev_hash);
	bind_text(q, 9, r.hash);
	if ((err = exec_stmt(s, q, "append to the audit trail")) < 0)
		return err;
	s->head.seq = r.seq;
	memcpy(s->head.hash, r.hash, sizeof(s->head.hash));
	s->head_pending = true;
	return 0;
}

/* Message ids returned by an UPDATE ... RETURNING, collected so the
 * statement is reset before audit rows are written. */
struct id_list {
	char (*ids)[37];
	size_t n, cap;
};

static int collect_ids(struct sqlite_store *s, sqlite3_stmt *q, struct id_list *l,
		       const char *what)
{
	int rc, err = 0;

	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		if (l->n == l->cap) {
			size_t cap = l->cap ? l->cap * 2 : 16;
			char (*ids)[37] = realloc(l->ids, cap * sizeof(*ids));
			if (!ids) {
				err = gw_error_set(GW_ENOMEM, "out of memory to %s", what);
				break;
			}
			l->ids = ids;
			l->cap = cap;
		}
		if ((err = copy_text(l->ids[l->n], sizeof(l->ids[0]), q, 0)) < 0)
			break;
		l->n++;
	}
	if (!err && rc != SQLITE_DONE)
		err = db_fail(s, rc, what);
	sqlite3_reset(q);
	return err;
}

/* ---- the state machine ---- */

/*
 * The state machine of store.h plus the operator's moves: retry a failed
 * message, cancel a queued, held or failed one. held -> held and queued ->
 * queued change only the reason or the time. queued -> failed is a message
 * failed before any attempt (deliver: its stored bytes no longer match
 * their digest). Nothing leaves delivered, superseded or cancelled. A
 * message being sent cannot be pulled back: it leaves sending for
 * superseded or cancelled only when its attempt has ended.
 */
static bool allowed_transition(enum msg_state from, enum msg_state to)
{
	static const unsigned allowed[MSG_STATE_COUNT] = {
		[MSG_QUEUED] = 1u << MSG_SENDING | 1u << MSG_QUEUED | 1u << MSG_FAILED |
			       1u << MSG_HELD | 1u << MSG_SUPERSEDED | 1u << MSG_CANCELLED,
		[MSG_SENDING] = 1u << MSG_DELIVERED | 1u << MSG_QUEUED | 1u << MSG_FAILED |
				1u << MSG_HELD | 1u << MSG_SUPERSEDED | 1u << MSG_CANCELLED,
		[MSG_HELD] = 1u << MSG_QUEUED | 1u << MSG_HELD | 1u << MSG_FAILED |
			     1u << MSG_SUPERSEDED | 1u << MSG_CANCELLED,
		[MSG_FAILED] = 1u << MSG_QUEUED | 1u << MSG_SUPERSEDED | 1u << MSG_CANCELLED,
	};

	if ((int)from < 0 || from >= MSG_STATE_COUNT || (int)to < 0 || to >= MSG_STATE_COUNT)
		return false;
	return (allowed[from] & (1u << to)) != 0;
}

/* whose: "message" or "notice", and its id. */
static int transition_refused(const char *whose, const char *id, enum msg_state from,
			      enum msg_state to)
{
	return gw_error_set(GW_EINVALID, "%s %s: a message cannot go from %s to %s", whose, id,
			    store_state_name(from), store_state_name(to));
}

/* ---- intake ---- */

static int sq_intake_seen(store *st, const char *content_sha256, bool *seen)
{
	struct sqlite_store *s = S(st);
	sqlite3_stmt *q = stmt(s, ST_SEEN);
	int rc;

	bind_text(q, 1, content_sha256);
	rc = sqlite3_step(q);
	sqlite3_reset(q);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_fail(s, rc, "look up a notice by content");
	*seen = rc == SQLITE_ROW;
	return 0;
}

static int sq_notice_latest(store *st, const char *notice_id, int *revision,
			    char content_sha256[65])
{
	struct sqlite_store *s = S(st);
	sqlite3_stmt *q = stmt(s, ST_NOTICE_LATEST);
	int rc, err = 0;

	bind_text(q, 1, notice_id);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		*revision = sqlite3_column_int(q, 0);
		err = copy_text(content_sha256, 65, q, 1);
	} else if (rc == SQLITE_DONE) {
		err = gw_error_set(GW_ENOTFOUND, "notice %s is not known", notice_id);
	} else {
		err = db_fail(s, rc, "look up the latest revision of a notice");
	}
	sqlite3_reset(q);
	return err;
}

static int sq_notice_insert(store *st, const struct store_notice *n)
{
	struct sqlite_store *s = S(st);
	sqlite3_stmt *q = stmt(s, ST_NOTICE_INSERT);
	char detail[160];
	bool own;
	int rc;

	bind_text(q, 1, n->notice_id);
	sqlite3_bind_int(q, 2, n->revision);
	bind_text(q, 3, n->kind);
	bind_text(q, 4, n->content_sha256);
	bind_text(q, 5, n->source_name);
	bind_text(q, 6, n->sender_orgnr);
	bind_text(q, 7, n->sender_unit);
	bind_text(q, 8, n->event_date);
	bind_text(q, 9, n->person_ref);
	sqlite3_bind_int(q, 10, n->late_at_intake);
	sqlite3_bind_int(q, 11, n->weekend_release);
	sqlite3_bind_int64(q, 12, n->received_ms);
	if ((rc = tx_open(s, &own)) < 0)
		return rc;
	snprintf(detail, sizeof(detail), "revision=%d kind=%s sha256=%s", n->revision, n->kind,
		 n->content_sha256);
	rc = exec_stmt(s, q, "record a notice");
	if (rc == 0)
		rc = audit_add(s, "notice", n->notice_id, "", "", detail);
	return tx_close(s, own, rc);
}

static int sq_notice_get(store *st, const char *notice_id, int revision,
			 struct store_notice *out)
{
	struct sqlite_store *s = S(st);
	sqlite3_stmt *q = stmt(s, ST_NOTICE_GET);
	int rc, err;

	bind_text(q, 1, notice_id);
	sqlite3_bind_int(q, 2, revision);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		err = read_notice(q, out);
	else if (rc == SQLITE_DONE)
		err = gw_error_set(GW_ENOTFOUND, "notice %s revision %d is not known", notice_id,
				   revision);
	else
		err = db_fail(s, rc, "read a notice");
	sqlite3_reset(q);
	return err;
}

static int sq_message_insert(store *st, const struct store_message *m)
{
	struct sqlite_store *s = S(st);
	sqlite3_stmt *q;
	char detail[512];
	bool own;
	int rc;

	if ((int)m->state < 0 || m->state >= MSG_STATE_COUNT)
		return gw_error_set(GW_EINVALID, "message %s has no valid state", m->message_id);
	if ((rc = tx_open(s, &own)) < 0)
		return rc;
	q = stmt(s, ST_MSG_INSERT);
	bind_text(q, 1, m->message_id);
	bind_text(q, 2, m->notice_id);
	sqlite3_bind_int(q, 3, m->revision);
	bind_text(q, 4, m->kind);
	bind_text(q, 5, m->service);
	bind_text(q, 6, m->recipient_orgnr);
	bind_text(q, 7, m->endpoint);
	bind_text(q, 8, store_state_name(m->state));
	bind_reason(q, 9, m->reason);
	bind_text(q, 10, m->event_date);
	sqlite3_bind_int64(q, 11, m->created_ms);
	sqlite3_bind_int64(q, 12, m->next_attempt_ms);
	sqlite3_bind_int64(q, 13, m->deadline_ms);
	sqlite3_bind_int(q, 14, m->attempts);
	bind_text(q, 15, m->digest_b64);
	rc = exec_stmt(s, q, "record a message");
	if (rc == 0 && m->signed_bytes.len)
		rc = bytes_put(s, m->message_id, &m->signed_bytes);
	if (rc == 0) {
		snprintf(detail, sizeof(detail), "notice=%s revision=%d service=%s endpoint=%s%s%s",
			 m->notice_id, m->revision, m->service, m->endpoint[0] ? m->endpoint : "-",
			 m->reason[0] ? " reason=" : "", m->reason);
		rc = audit_add(s, "created", m->message_id, "", store_state_name(m->state), detail);
	}
	return tx_close(s, own, rc);
}

/*
 * Set `to` on every message of notice_id below below_revision (every
 * revision when below_revision <= 0) whose state is in from_mask (bits
 * 1u << enum msg_state). One UPDATE per state keeps the SQL fixed.
 */
static int sq_messages_transition(store *st, const char *notice_id, int below_revision,
				  unsigned from_mask, enum msg_state to, const char *reason,
				  int *changed)
{
	struct sqlite_store *s = S(st);
	struct id_list l = { NULL, 0, 0 };
	int total = 0, rc;
	bool own;

	for (int from = 0; from < MSG_STATE_COUNT; from++)
		if ((from_mask & (1u << from)) && !allowed_transition((enum msg_state)from, to))
			return transition_refused("notice", notice_id, (enum msg_state)from, to);
	if ((rc = tx_open(s, &own)) < 0)
		return rc;
	for (int from = 0; rc == 0 && from < MSG_STATE_COUNT; from++) {
		sqlite3_stmt *q;

		if (!(from_mask & (1u << from)))
			continue;
		q = stmt(s, ST_MSG_TRANSITION);
		bind_text(q, 1, store_state_name(to));
		bind_reason(q, 2, reason);
		bind_text(q, 3, notice_id);
		sqlite3_bind_int(q, 4, below_revision > 0 ? below_revision : INT_MAX);
		bind_text(q, 5, store_state_name((enum msg_state)from));
		l.n = 0;
		rc = collect_ids(s, q, &l, "change the state of a notice's messages");
		for (size_t i = 0; rc == 0 && i < l.n; i++)
			rc = audit_add(s, "state", l.ids[i], store_state_name((enum msg_state)from),
				       store_state_name(to), reason);
		total += (int)l.n;
	}
	free(l.ids);
	if ((rc = tx_close(s, own, rc)) < 0)
		return rc;
	if (changed)
		*changed = total;
	return 0;
}

/* ---- scheduling ---- */

struct due_batch {
	struct store_message *rows;
	size_t n, cap;
};

static void due_batch_free(struct due_batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		store_message_clear(&b->rows[i]);
	free(b->rows);
}

static int due_batch_add(struct due_batch *b, sqlite3_stmt *q, bool with_bytes)
{
	struct store_message *m;

	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 16;
		struct store_message *rows = realloc(b->rows, cap * sizeof(*rows));
		if (!rows)
			return gw_error_set(GW_ENOMEM, "out of memory collecting due messages");
		b->rows = rows;
		b->cap = cap;
	}
	m = &b->rows[b->n];
	memset(m, 0, sizeof(*m));
	b->n++;
	return read_message_cols(q, m, with_bytes);
}

/* Add the due messages of one event date, at most `room`, to the batch. */
static int due_take_date(struct sqlite_store *s, const char *date, int64_t now_ms, size_t room,
			 struct due_batch *b, bool with_bytes)
{
	sqlite3_stmt *q = stmt(s, with_bytes ? ST_DUE_IN_DATE : ST_DUE_IN_DATE_HEADS);
	int rc, err = 0;

	bind_text(q, 1, date);
	sqlite3_bind_int64(q, 2, now_ms);
	sqlite3_bind_int64(q, 3, (sqlite3_int64)room);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		if ((err = due_batch_add(b, q, with_bytes)) < 0)
			break;
	}
	if (!err && rc != SQLITE_DONE)
		err = db_fail(s, rc, "read due messages");
	sqlite3_reset(q);
	return err;
}

/* The next event date after `after` among queued messages; "" when none. */
static int due_next_date(struct sqlite_store *s, const char *after, char date[11])
{
	sqlite3_stmt *q = stmt(s, ST_DUE_NEXT_DATE);
	int rc, err = 0;

	bind_text(q, 1, after);
	rc = sqlite3_step(q);
	date[0] = '\0';
	if (rc == SQLITE_ROW)
		err = copy_text(date, 11, q, 0);
	else if (rc != SQLITE_DONE)
		err = db_fail(s, rc, "find the next release date");
	sqlite3_reset(q);
	return err;
}

static int sq_next_due_ms(store *st, int64_t *when_ms);

/*
 * Rows are collected first and handed to cb after every statement is
 * reset, so cb may update the store (queued -> sending) safely. When the
 * earliest next attempt is still ahead, nothing is due: one index seek
 * answers that, instead of a walk over every release date.
 */
static int due_collect(store *st, int64_t now_ms, size_t limit, store_message_cb cb, void *ctx,
		       bool with_bytes)
{
	struct sqlite_store *s = S(st);
	struct due_batch b = { NULL, 0, 0 };
	char cursor[11] = "", date[11];
	int64_t first_due = 0;
	int err = sq_next_due_ms(st, &first_due);

	if (err == GW_ENOTFOUND) {
		gw_error_clear();
		return 0;
	}
	if (err < 0 || first_due > now_ms || limit == 0)
		return err;
	while (b.n < limit) {
		if ((err = due_next_date(s, cursor, date)) < 0 || !date[0])
			break;
		if ((err = due_take_date(s, date, now_ms, limit - b.n, &b, with_bytes)) < 0)
			break;
		memcpy(cursor, date, sizeof(cursor));
	}
	if (!err && b.n < limit) /* undated messages go last */
		err = due_take_date(s, "", now_ms, limit - b.n, &b, with_bytes);
	for (size_t i = 0; !err && i < b.n; i++) {
		int rc = cb(&b.rows[i], ctx);
		if (rc < 0)
			err = rc;
		if (rc)
			break;
	}
	due_batch_free(&b);
	return err;
}

static int sq_messages_due(store *st, int64_t now_ms, size_t limit, store_message_cb cb,
			   void *ctx)
{
	return due_collect(st, now_ms, limit, cb, ctx, true);
}

static int sq_messages_due_heads(store *st, int64_t now_ms, size_t limit, store_message_cb cb,
				 void *ctx)
{
	return due_collect(st, now_ms, limit, cb, ctx, false);
}

static int sq_message_bytes(store *st, const char *message_id, gw_buf *out)
{
	struct sqlite_store *s = S(st);
	sqlite3_stmt *q = stmt(s, ST_MSG_BYTES);
	int rc, err = 0;

	bind_text(q, 1, message_id);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		err = copy_blob(out, q, 0);
	else if (rc == SQLITE_DONE)
		err = gw_error_set(GW_ENOTFOUND, "no message %s", message_id);
	else
		err = db_fail(s, rc, "read a message's signed bytes");
	sqlite3_reset(q);
	return err;
}

static int sq_message_outdated(store *st, const char *message_id, enum msg_state *to,
			       char *reason, size_t reason_len)
{
	struct sqlite_store *s = S(st);
	sqlite3_stmt *q = stmt(s, ST_MSG_OUTDATED);
	int rc, err = 0;

	bind_text(q, 1, message_id);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW && sqlite3_column_type(q, 0) != SQLITE_NULL) {
		*to = MSG_SUPERSEDED;
		snprintf(reason, reason_len, "superseded by revision %d", sqlite3_column_int(q, 0));
		err = 1;
	} else if (rc == SQLITE_ROW && sqlite3_column_type(q, 1) != SQLITE_NULL) {
		*to = MSG_CANCELLED;
		snprintf(reason, reason_len, "withdrawn by revision %d", sqlite3_column_int(q, 1));
		err = 1;
	} else if (rc == SQLITE_DONE) {
		err = gw_error_set(GW_ENOTFOUND, "no message %s", message_id);
	} else if (rc != SQLITE_ROW) {
		err = db_fail(s, rc, "look for a later revision of a message's notice");
	}
	sqlite3_reset(q);
	return err;
}

static int sq_next_due_ms(store *st, int64_t *when_ms)
{
	struct sqlite_store *s = S(st);
	sqlite3_stmt *q = stmt(s, ST_NEXT_DUE);
	int rc, err = 0;

	rc = sqlite3_step(q);
	if (rc != SQLITE_ROW)
		err = db_fail(s, rc, "find the next due message");
	else if (sqlite3_column_type(q, 0) == SQLITE_NULL)
		err = gw_error_set(GW_ENOTFOUND, "no message is queued");
	else
		*when_ms = sqlite3_column_int64(q, 0);
	sqlite3_reset(q);
	return err;
}

static int sq_attempt_insert(store *st, const struct store_attempt *a);

static int sq_recover_sending(store *st, int *recovered)
{
	struct sqlite_store *s = S(st);
	struct id_list l = { NULL, 0, 0 };
	bool own;
	int rc;

	if ((rc = tx_open(s, &own)) < 0)
		return rc;
	rc = collect_ids(s, stmt(s, ST_RECOVER), &l, "requeue messages left in sending");
	for (size_t i = 0; rc == 0 && i < l.n; i++) {
		/* Its attempt's answer is unknown: the partner may have it. */
		struct store_attempt a = { .started_ms = timeutil_now_ms(), .reached = true };

		snprintf(a.message_id, sizeof(a.message_id), "%s", l.ids[i]);
		snprintf(a.error, sizeof(a.error), "%s", "interrupted: the gateway stopped during "
			 "this attempt, its answer is unknown");
		snprintf(a.outcome, sizeof(a.outcome), "%s", "retry");
		rc = sq_attempt_insert(st, &a);
		if (rc == 0)
			rc = audit_add(s, "recovered", l.ids[i], "sending", "queued",
				       "interrupted while sending; will be sent again");
	}
	free(l.ids);
	if ((rc = tx_close(s, own, rc)) == 0 && recovered)
		*recovered = (int)l.n;
	return rc;
}

/* ---- one message ---- */

static int sq_message_get(store *st, const char *message_id, struct store_message *out)
{
	struct sqlite_store *s = S(st);
	sqlite3_stmt *q = stmt(s, ST_MSG_GET);
	int rc, err;

	bind_text(q, 1, message_id);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		err = read_message(q, out);
	else if (rc == SQLITE_DONE)
		err = gw_error_set(GW_ENOTFOUND, "message %s is not in the store", message_id);
	else
		err = db_fail(s, rc, "read a message");
	sqlite3_reset(q);
	return err;
}

/* After a compare-and-set changed nothing: say why. */
static int update_refused(struct sqlite_store *s, const char *message_id, enum msg_state expected,
			  enum msg_state to)
{
	sqlite3_stmt *q = stmt(s, ST_MSG_STATE);
	char current[16] = "";
	int rc, err;

	bind_text(q, 1, message_id);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		err = copy_text(current, sizeof(current), q, 0);
	else if (rc == SQLITE_DONE)
		err = gw_error_set(GW_ENOTFOUND, "message %s is not in the store", message_id);
	else
		err = db_fail(s, rc, "read a message's state");
	sqlite3_reset(q);
	if (err < 0)
		return err;
	return gw_error_set(GW_EINVALID, "message %s is %s, not %s, so it was not made %s",
			    message_id, current, store_state_name(expected), store_state_name(to));
}

/* The compare-and-set UPDATE of message_update, without its audit row. */
static int update_one(struct sqlite_store *s, const char *message_id, enum msg_state expected,
		      enum msg_state to, const char *reason, int64_t next_attempt_ms,
		      int attempts_delta)
{
	sqlite3_stmt *q;
	int rc;

	q = stmt(s, ST_MSG_UPDATE);
	bind_text(q, 1, store_state_name(to));
	if (reason)
		bind_reason(q, 2, reason);
	sqlite3_bind_int64(q, 3, next_attempt_ms);
	sqlite3_bind_int(q, 4, attempts_delta);
	bind_text(q, 5, message_id);
	bind_text(q, 6, store_state_name(expected));
	if ((rc = exec_stmt(s, q, "update a message")) < 0)
		return rc;
	if (sqlite3_changes(s->db) == 0)
		return update_refused(s, message_id, expected, to);
	return 0;
}

/*
 * Compare-and-set: move message_id from `expected` to `to`. reason NULL
 * keeps the current reason; next_attempt_ms < 0 keeps the current time;
 * attempts_delta is added to the attempt count.
 */
static int sq_message_update(store *st, const char *message_id, enum msg_state expected,
			     enum msg_state to, const char *reason, int64_t next_attempt_ms,
			     int attempts_delta)
{
	struct sqlite_store *s = S(st);
	bool own;
	int rc;

	if (!allowed_transition(expected, to))
		return transition_refused("message", message_id, expected, to);
	if ((rc = tx_open(s, &own)) < 0)
		return rc;
	rc = update_one(s, message_id, expected, to, reason, next_attempt_ms, attempts_delta);
	if (rc == 0 && (expected != to || to == MSG_HELD))
		rc = audit_add(s, "state", message_id, store_state_name(expected),
			       store_state_name(to), reason ? reason : "");
	return tx_close(s, own, rc);
}

static int sq_message_release_held(store *st, const struct store_message *m)
{
	struct sqlite_store *s = S(st);
	sqlite3_stmt *q;
	char detail[128];
	bool own;
	int rc;

	if (!m->signed_bytes.len || !m->endpoint[0] || !m->recipient_orgnr[0])
		return gw_error_set(GW_EINVALID,
				    "message %s: a held message is released only with an endpoint,"
				    " a recipient and signed bytes", m->message_id);
	if ((rc = tx_open(s, &own)) < 0)
		return rc;
	q = stmt(s, ST_MSG_RELEASE);
	bind_text(q, 1, m->endpoint);
	bind_text(q, 2, m->recipient_orgnr);
	bind_text(q, 3, m->digest_b64);
	sqlite3_bind_int64(q, 4, m->next_attempt_ms);
	sqlite3_bind_int64(q, 5, m->deadline_ms);
	bind_text(q, 6, m->message_id);
	rc = exec_stmt(s, q, "release a held message");
	if (rc == 0 && sqlite3_changes(s->db) == 0)
		rc = update_refused(s, m->message_id, MSG_HELD, MSG_QUEUED);
	if (rc == 0)
		rc = bytes_put(s, m->message_id, &m->signed_bytes);
	if (rc == 0) {
		snprintf(detail, sizeof(detail), "endpoint=%s recipient=%s", m->endpoint,
			 m->recipient_orgnr);
		rc = audit_add(s, "released", m->message_id, "held", "queued", detail);
	}
	return tx_close(s, own, rc);
}

static int sq_attempt_insert(store *st, const struct store_attempt *a)
{
	struct sqlite_store *s = S(st);
	sqlite3_stmt *q = stmt(s, ST_ATTEMPT_INSERT);

	bind_text(q, 1, a->message_id);
	sqlite3_bind_int64(q, 2, a->started_ms);
	sqlite3_bind_int64(q, 3, a->duration_ms);
	sqlite3_bind_int(q, 4, a->http_status);
	bind_text(q, 5, a->error);
	bind_text(q, 6, a->outcome);
	sqlite3_bind_int(q, 7, a->reached ? 1 : 0);
	return exec_stmt(s, q, "record an attempt");
}

static int sq_message_reached(store *st, const char *message_id, bool *reached)
{
	struct sqlite_store *s = S(st);
	sqlite3_stmt *q = stmt(s, ST_MSG_REACHED);
	int rc, err = 0;

	bind_text(q, 1, message_id);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		*reached = sqlite3_column_int(q, 0) != 0;
	else
		err = db_fail(s, rc, "read a message's attempts");
	sqlite3_reset(q);
	return err;
}

/* cb must not call attempts_list itself (the statement is shared). */
static int sq_attempts_list(store *st, const char *message_id, store_attempt_cb cb, void *ctx)
{
	struct sqlite_store *s = S(st);
	sqlite3_stmt *q = stmt(s, ST_ATTEMPTS_LIST);
	int rc, err = 0;

	bind_text(q, 1, message_id);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		struct store_attempt a;
		memset(&a, 0, sizeof(a));
		if ((err = read_attempt(q, &a)) < 0)
			break;
		if ((err = cb(&a, ctx)) != 0)
			break;
	}
	if (!err && rc != SQLITE_DONE)
		err = db_fail(s, rc, "list attempts");
	sqlite3_reset(q);
	return err < 0 ? err : 0;
}

static int sq_receipt_insert(store *st, const struct store_receipt *r)
{
	struct sqlite_store *s = S(st);
	sqlite3_stmt *q = stmt(s, ST_RECEIPT_INSERT);

	bind_text(q, 1, r->message_id);
	bind_text(q, 2, r->status);
	bind_text(q, 3, r->reason_code);
	sqlite3_bind_int(q, 4, r->verified);
	sqlite3_bind_int64(q, 5, r->received_ms);
	/* A receipt is kept exactly, even when empty: never NULL. */
	sqlite3_bind_blob(q, 6, r->bytes.len ? (const void *)r->bytes.data : "",
			  (int)r->bytes.len, SQLITE_TRANSIENT);
	return exec_stmt(s, q, "record a receipt");
}

/* The latest receipt stored for message_id. */
static int sq_receipt_get(store *st, const char *message_id, struct store_receipt *out)
{
	struct sqlite_store *s = S(st);
	sqlite3_stmt *q = stmt(s, ST_RECEIPT_GET);
	int rc, err = 0;

	bind_text(q, 1, message_id);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		if (copy_text(out->message_id, sizeof(out->message_id), q, 0) < 0 ||
		    copy_text(out->status, sizeof(out->status), q, 1) < 0 ||
		    copy_text(out->reason_code, sizeof(out->reason_code), q, 2) < 0)
			err = GW_ERROR;
		out->verified = sqlite3_column_int(q, 3) != 0;
		out->received_ms = sqlite3_column_int64(q, 4);
		if (!err)
			err = copy_blob(&out->bytes, q, 5);
	} else if (rc == SQLITE_DONE) {
		err = gw_error_set(GW_ENOTFOUND, "no receipt is stored for message %s", message_id);
	} else {
		err = db_fail(s, rc, "read a receipt");
	}
	sqlite3_reset(q);
	return err;
}

/* ---- operators ---- */

/*
 * Rows come without signed_bytes (message_get() has them). cb must not
 * call messages_list itself; it may read other things from the store.
 */
static int sq_messages_list(store *st, const struct store_filter *f, store_message_cb cb,
			    void *ctx)
{
	struct sqlite_store *s = S(st);
	bool by_state = f && f->state >= 0, by_notice = f && f->notice_id;
	struct store_message m;
	sqlite3_stmt *q;
	int rc, err = 0;

	if (by_state && f->state >= MSG_STATE_COUNT)
		return gw_error_set(GW_EINVALID, "no message state has the number %d", f->state);
	q = stmt(s, by_notice ? (by_state ? ST_LIST_NOTICE_STATE : ST_LIST_NOTICE)
			      : (by_state ? ST_LIST_STATE : ST_LIST_ALL));
	if (by_notice)
		bind_text(q, 1, f->notice_id);
	if (by_state)
		bind_text(q, by_notice ? 2 : 1, store_state_name((enum msg_state)f->state));
	memset(&m, 0, sizeof(m));
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		if ((err = read_message(q, &m)) < 0)
			break;
		if ((err = cb(&m, ctx)) != 0)
			break;
	}
	if (!err && rc != SQLITE_DONE)
		err = db_fail(s, rc, "list messages");
	sqlite3_reset(q);
	store_message_clear(&m);
	return err < 0 ? err : 0;
}

static int sq_counts(store *st, struct store_counts *out)
{
	struct sqlite_store *s = S(st);
	sqlite3_stmt *q = stmt(s, ST_COUNTS);
	int rc;

	memset(out, 0, sizeof(*out));
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		enum msg_state state;
		const char *name = (const char *)sqlite3_column_text(q, 0);
		if (name && store_state_parse(name, &state) == 0)
			out->by_state[state] = sqlite3_column_int64(q, 1);
	}
	sqlite3_reset(q);
	if (rc != SQLITE_DONE)
		return db_fail(s, rc, "count messages");
	return 0;
}

static int count_query(struct sqlite_store *s, sqlite3_stmt *q, long long *out, const char *what)
{
	int rc = sqlite3_step(q);

	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(q, 0);
	sqlite3_reset(q);
	return rc == SQLITE_ROW ? 0 : db_fail(s, rc, what);
}

static int sq_endpoint_health(store *st, const char *endpoint, struct store_endpoint_health *out)
{
	struct sqlite_store *s = S(st);
	sqlite3_stmt *q;
	long long last_ok = 0;
	int rc, err = 0;

	memset(out, 0, sizeof(*out));
	q = stmt(s, ST_EP_COUNTS);
	bind_text(q, 1, endpoint);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		enum msg_state state;
		const char *name = (const char *)sqlite3_column_text(q, 0);
		long long n = sqlite3_column_int64(q, 1);
		if (!name || store_state_parse(name, &state) < 0)
			continue;
		if (state == MSG_QUEUED)
			out->queued = n;
		else if (state == MSG_SENDING)
			out->sending = n;
		else if (state == MSG_FAILED)
			out->failed = n;
		else if (state == MSG_HELD)
			out->held = n;
	}
	sqlite3_reset(q);
	if (rc != SQLITE_DONE)
		return db_fail(s, rc, "count an endpoint's messages");

	q = stmt(s, ST_EP_LAST_OK);
	bind_text(q, 1, endpoint);
	if ((err = count_query(s, q, &last_ok, "find an endpoint's last delivery")) < 0)
		return err;
	out->last_success_ms = last_ok;

	q = stmt(s, ST_EP_LAST);
	bind_text(q, 1, endpoint);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		const char *outcome = (const char *)sqlite3_column_text(q, 1);
		out->last_attempt_ms = sqlite3_column_int64(q, 0);
		if (!outcome || strcmp(outcome, "delivered") != 0)
			copy_free_text(out->last_error, sizeof(out->last_error), q, 2);
	} else if (rc != SQLITE_DONE) {
		err = db_fail(s, rc, "find an endpoint's last attempt");
	}
	sqlite3_reset(q);
	if (err < 0)
		return err;

	q = stmt(s, ST_EP_FAILS);
	bind_text(q, 1, endpoint);
	sqlite3_bind_int64(q, 2, last_ok);
	return count_query(s, q, &out->consecutive_failures, "count an endpoint's failures");
}

static int read_fact(sqlite3_stmt *q, struct store_release_fact *f)
{
	memset(f, 0, sizeof(*f));
	if (copy_text(f->notice_id, sizeof(f->notice_id), q, 0) < 0 ||
	    copy_text(f->event_date, sizeof(f->event_date), q, 3) < 0)
		return GW_ERROR;
	copy_free_text(f->sender_unit, sizeof(f->sender_unit), q, 2);
	f->revision = sqlite3_column_int(q, 1);
	f->weekend_release = sqlite3_column_int(q, 4) != 0;
	f->late_at_intake = sqlite3_column_int(q, 5) != 0;
	if (sqlite3_column_type(q, 6) == SQLITE_NULL)
		return 0; /* a notice without messages */
	if (copy_text(f->message_id, sizeof(f->message_id), q, 6) < 0 ||
	    copy_text(f->service, sizeof(f->service), q, 7) < 0 ||
	    copy_text(f->endpoint, sizeof(f->endpoint), q, 8) < 0)
		return GW_ERROR;
	copy_free_text(f->reason, sizeof(f->reason), q, 10);
	if (store_state_parse((const char *)sqlite3_column_text(q, 9), &f->state) < 0)
		return gw_error_wrap(GW_ERROR, "store: message %s", f->message_id);
	f->reached_ms = sqlite3_column_int64(q, 11); /* NULL reads as 0 */
	return 0;
}

/* Rows are collected first so cb may read the store (receipts, ...). */
static int sq_release_facts(store *st, const char *from_date, const char *to_date,
			    store_fact_cb cb, void *ctx)
{
	struct sqlite_store *s = S(st);
	sqlite3_stmt *q = stmt(s, ST_FACTS);
	struct store_release_fact *rows = NULL;
	size_t n = 0, cap = 0;
	int rc, err = 0;

	bind_text(q, 1, from_date && *from_date ? from_date : "");
	bind_text(q, 2, to_date && *to_date ? to_date : "9999-99-99");
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			struct store_release_fact *more = realloc(rows, ncap * sizeof(*rows));
			if (!more) {
				err = gw_error_set(GW_ENOMEM, "out of memory reading release notices");
				break;
			}
			rows = more;
			cap = ncap;
		}
		if ((err = read_fact(q, &rows[n])) < 0)
			break;
		n++;
	}
	if (!err && rc != SQLITE_DONE)
		err = db_fail(s, rc, "read release notices");
	sqlite3_reset(q);
	for (size_t i = 0; !err && i < n; i++) {
		int r = cb(&rows[i], ctx);
		if (r < 0)
			err = r;
		if (r)
			break;
	}
	free(rows);
	return err < 0 ? err : 0;
}

/* ---- operator moves ---- */

static int sq_message_retry(store *st, const char *message_id, int64_t next_attempt_ms,
			    int64_t deadline_ms, const char *detail)
{
	struct sqlite_store *s = S(st);
	sqlite3_stmt *q;
	bool own;
	int rc;

	if ((rc = tx_open(s, &own)) < 0)
		return rc;
	q = stmt(s, ST_MSG_RETRY);
	sqlite3_bind_int64(q, 1, next_attempt_ms);
	sqlite3_bind_int64(q, 2, deadline_ms);
	bind_text(q, 3, message_id);
	rc = exec_stmt(s, q, "retry a message");
	if (rc == 0 && sqlite3_changes(s->db) == 0)
		rc = update_refused(s, message_id, MSG_FAILED, MSG_QUEUED);
	if (rc == 0)
		rc = audit_add(s, "retry", message_id, "failed", "queued", detail);
	return tx_close(s, own, rc);
}

/* An operator's reason is refused, not cut: they are there to say it shorter. */
static int cancel_reason_check(const char *message_id, const char *reason)
{
	size_t len = strlen(reason);

	if (len <= STORE_REASON_MAX)
		return 0;
	return gw_error_set(GW_EINVALID,
			    "message %s was not cancelled: the reason is %zu bytes long, and at"
			    " most %d are kept", message_id, len, STORE_REASON_MAX);
}

static int sq_message_cancel(store *st, const char *message_id, const char *reason,
			     const char *detail)
{
	struct sqlite_store *s = S(st);
	sqlite3_stmt *q;
	char current[16] = "", text[512];
	enum msg_state from = MSG_QUEUED;
	bool own;
	int rc;

	if (!reason)
		reason = "";
	if ((rc = cancel_reason_check(message_id, reason)) < 0 || (rc = tx_open(s, &own)) < 0)
		return rc;
	q = stmt(s, ST_MSG_STATE);
	bind_text(q, 1, message_id);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		rc = copy_text(current, sizeof(current), q, 0);
	else if (rc == SQLITE_DONE)
		rc = gw_error_set(GW_ENOTFOUND, "message %s is not in the store", message_id);
	else
		rc = db_fail(s, rc, "read a message's state");
	sqlite3_reset(q);
	if (rc == 0)
		rc = store_state_parse(current, &from);
	if (rc == 0 && from != MSG_QUEUED && from != MSG_HELD && from != MSG_FAILED)
		rc = gw_error_set(GW_EINVALID,
				  "message %s is %s; only a queued, held or failed message can be"
				  " cancelled%s",
				  message_id, current,
				  from == MSG_SENDING ? " (it is on its way; look again when the"
							" attempt has ended)"
				  : from == MSG_DELIVERED ? " (the partner has it and its receipt is"
							    " stored)"
							  : "");
	if (rc == 0)
		rc = update_one(s, message_id, from, MSG_CANCELLED, reason, -1, 0);
	if (rc == 0) {
		snprintf(text, sizeof(text), "%s reason=%s", detail ? detail : "", reason);
		rc = audit_add(s, "cancel", message_id, current, "cancelled", text);
	}
	return tx_close(s, own, rc);
}

/* ---- audit trail ---- */

static int sq_audit_append(store *st, const char *event, const char *subject,
			   const char *detail)
{
	struct sqlite_store *s = S(st);
	bool own;
	int rc;

	if (!event || !*event)
		return gw_error_set(GW_EINVALID, "an audit row needs an event name");
	if ((rc = tx_open(s, &own)) < 0)
		return rc;
	rc = audit_add(s, event, subject, "", "", detail);
	return tx_close(s, own, rc);
}

/* A text column into a row field; false when it is not text or too long. */
static bool audit_text(char *dst, size_t size, sqlite3_stmt *q, int col)
{
	const char *text = (const char *)sqlite3_column_text(q, col);
	int type = sqlite3_column_type(q, col);

	audit_field_set(dst, size, text);
	return type == SQLITE_TEXT && (size_t)sqlite3_column_bytes(q, col) < size &&
	       strlen(dst) == (size_t)sqlite3_column_bytes(q, col);
}

/*
 * Every row in one read transaction (a consistent snapshot while the
 * sender writes). cb must not write to the store.
 */
static int sq_audit_walk(store *st, store_audit_cb cb, void *ctx)
{
	struct sqlite_store *s = S(st);
	sqlite3_stmt *q = stmt(s, ST_AUDIT_WALK);
	struct audit_row r;
	int rc, err = 0;

	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		bool ok;
		memset(&r, 0, sizeof(r));
		r.seq = sqlite3_column_int64(q, 0);
		r.time_ms = sqlite3_column_int64(q, 1);
		ok = sqlite3_column_type(q, 0) == SQLITE_INTEGER &&
		     sqlite3_column_type(q, 1) == SQLITE_INTEGER;
		ok &= audit_text(r.event, sizeof(r.event), q, 2);
		ok &= audit_text(r.subject, sizeof(r.subject), q, 3);
		ok &= audit_text(r.from_state, sizeof(r.from_state), q, 4);
		ok &= audit_text(r.to_state, sizeof(r.to_state), q, 5);
		ok &= audit_text(r.detail, sizeof(r.detail), q, 6);
		ok &= audit_text(r.prev_hash, sizeof(r.prev_hash), q, 7);
		ok &= audit_text(r.hash, sizeof(r.hash), q, 8);
		r.malformed = !ok;
		if ((err = cb(&r, ctx)) != 0)
			break;
	}
	if (!err && rc != SQLITE_DONE)
		err = db_fail(s, rc, "read the audit trail");
	sqlite3_reset(q);
	return err < 0 ? err : 0;
}

static int sq_audit_recorded_head(store *st, struct audit_head *out, char *where,
				  size_t wherelen)
{
	struct sqlite_store *s = S(st);
	char buf[HEAD_LINE_LEN + 8];
	ssize_t n;
	int fd;

	if (where && wherelen)
		snprintf(where, wherelen, "%s", s->head_path);
	fd = open(s->head_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return gw_error_set(GW_ENOTFOUND, "%s does not exist", s->head_path);
		return gw_error_set(GW_ERROR, "cannot open %s: %s", s->head_path, strerror(errno));
	}
	if (flock(fd, LOCK_SH) < 0) {
		close(fd);
		return gw_error_set(GW_ERROR, "cannot lock %s: %s", s->head_path, strerror(errno));
	}
	n = pread(fd, buf, sizeof(buf), 0);
	close(fd);
	if (n <= 0)
		return gw_error_set(GW_ENOTFOUND, "%s is empty", s->head_path);
	if (head_parse(buf, (size_t)n, out) < 0)
		return gw_error_set(GW_EINVALID, "%s does not hold a head (SEQ HASH)", s->head_path);
	return 0;
}

/* ---- open and close ---- */

static void sq_close(store *st)
{
	struct sqlite_store *s = S(st);

	if (!s)
		return;
	while (s->depth > 0)
		sq_rollback(st);
	if (s->unsynced_pending && sq_sync(st) < 0) /* relaxed commits: durable before we go */
		gw_log(GW_LOG_WARN, "audit-head-unwritten", "reason", gw_error_last(), NULL);
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(s->stmt[i]);
	if (s->db) {
		if (!sqlite3_get_autocommit(s->db))
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		sqlite3_close(s->db);
	}
	free(s);
}

static const struct store_ops sqlite_ops = {
	.close = sq_close,
	.begin = sq_begin,
	.begin_relaxed = sq_begin_relaxed,
	.commit = sq_commit,
	.rollback = sq_rollback,
	.sync = sq_sync,
	.intake_seen = sq_intake_seen,
	.notice_latest = sq_notice_latest,
	.notice_insert = sq_notice_insert,
	.notice_get = sq_notice_get,
	.message_insert = sq_message_insert,
	.messages_transition = sq_messages_transition,
	.messages_due = sq_messages_due,
	.messages_due_heads = sq_messages_due_heads,
	.message_bytes = sq_message_bytes,
	.message_outdated = sq_message_outdated,
	.message_reached = sq_message_reached,
	.next_due_ms = sq_next_due_ms,
	.recover_sending = sq_recover_sending,
	.message_get = sq_message_get,
	.message_update = sq_message_update,
	.message_release_held = sq_message_release_held,
	.attempt_insert = sq_attempt_insert,
	.attempts_list = sq_attempts_list,
	.receipt_insert = sq_receipt_insert,
	.receipt_get = sq_receipt_get,
	.messages_list = sq_messages_list,
	.counts = sq_counts,
	.endpoint_health = sq_endpoint_health,
	.release_facts = sq_release_facts,
	.message_retry = sq_message_retry,
	.message_cancel = sq_message_cancel,
	.audit_append = sq_audit_append,
	.audit_walk = sq_audit_walk,
	.audit_recorded_head = sq_audit_recorded_head,
};


static int pragma_text(struct sqlite_store *s, const char *sql, char *out, size_t outlen)
{
	sqlite3_stmt *q;
	int rc, err = 0;

	if ((rc = sqlite3_prepare_v2(s->db, sql, -1, &q, NULL)) != SQLITE_OK)
		return db_fail(s, rc, "open");
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		err = copy_text(out, outlen, q, 0);
	else
		err = db_fail(s, rc, "open");
	sqlite3_finalize(q);
	return err;
}

static int pragma_int(struct sqlite_store *s, const char *sql, int *out)
{
	char text[32], *end;
	int rc = pragma_text(s, sql, text, sizeof(text));
	long v;

	if (rc < 0)
		return rc;
	errno = 0;
	v = strtol(text, &end, 10);
	if (errno || end == text || *end || v < INT_MIN || v > INT_MAX)
		return gw_error_set(GW_ERROR, "store %s: setting '%s' is not a number", s->path, sql);
	*out = (int)v;
	return 0;
}

static int configure(struct sqlite_store *s)
{
	char mode[16];
	int rc;

	sqlite3_extended_result_codes(s->db, 1);
	if ((rc = sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS)) != SQLITE_OK)
		return db_fail(s, rc, "set the busy timeout");
	if (pragma_text(s, "PRAGMA journal_mode = WAL", mode, sizeof(mode)) < 0)
		return GW_ERROR;
	if (strcmp(mode, "wal") != 0)
		return gw_error_set(GW_ERROR, "store %s: the database refused WAL mode (it is in %s mode)",
				    s->path, mode);
	rc = sqlite3_exec(s->db,
			  "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;"
			  " PRAGMA trusted_schema = OFF;",
			  NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return db_fail(s, rc, "apply the durability settings");
	return 0;
}

/*
 * Statement and savepoint journals past 64 KiB went to temporary files:
 * about 10 page writes per message that nobody reads. Only after migrate():
 * an upgrade that rewrites a table would keep all of it in memory.
 */
static int journals_in_memory(struct sqlite_store *s)
{
	int rc = sqlite3_exec(s->db, "PRAGMA temp_store = MEMORY", NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : db_fail(s, rc, "keep journals in memory");
}

/* Bring the schema to SCHEMA_VERSION in one transaction. */
static int migrate(struct sqlite_store *s)
{
	int version, rc;

	/* A file already at this version needs no write lock, so opening it
	 * works while another process holds that lock (an operator's status
	 * while the sender commits, or while something holds it far too long). */
	if (pragma_int(s, "PRAGMA user_version", &version) < 0)
		return GW_ERROR;
	if (version == SCHEMA_VERSION)
		return 0;
	if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return db_fail(s, sqlite3_extended_errcode(s->db), "lock the database for set-up");
	if (pragma_int(s, "PRAGMA user_version", &version) < 0)
		goto fail;
	if (version > SCHEMA_VERSION) {
		gw_error_set(GW_ERROR,
			     "store %s has schema version %d, newer than this build knows (%d)",
			     s->path, version, SCHEMA_VERSION);
		goto fail;
	}
	for (int v = version; v < SCHEMA_VERSION; v++) {
		if ((rc = sqlite3_exec(s->db, schema_steps[v], NULL, NULL, NULL)) != SQLITE_OK) {
			db_fail(s, rc, "create the schema");
			goto fail;
		}
	}
	if ((rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL)) != SQLITE_OK) {
		db_fail(s, rc, "commit the schema");
		goto fail;
	}
	return 0;
fail:
	sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return GW_ERROR;
}

static int prepare_all(struct sqlite_store *s)
{
	for (int i = 0; i < ST_COUNT; i++) {
		int rc = sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
					    &s->stmt[i], NULL);
		if (rc != SQLITE_OK)
			return db_fail(s, rc, "prepare a statement");
	}
	return 0;
}

int store_sqlite_open(store **out, const char *path)
{
	struct sqlite_store *s;
	int rc;

	*out = NULL;
	if (!path || !*path)
		return gw_error_set(GW_EINVALID, "no store path given");
	if (!(s = calloc(1, sizeof(*s))))
		return gw_error_set(GW_ENOMEM, "out of memory opening the store");
	s->base.ops = &sqlite_ops;
	if (strlen(path) >= sizeof(s->path)) {
		free(s);
		return gw_error_set(GW_EINVALID, "store path too long: %s", path);
	}
	memcpy(s->path, path, strlen(path) + 1);
	snprintf(s->head_path, sizeof(s->head_path), "%s.audit-head", path);
	if ((rc = fsutil_prepare_private_file(path)) < 0) {
		free(s);
		return gw_error_wrap(rc, "store");
	}
	rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK) {
		rc = s->db ? db_fail(s, rc, "open") : gw_error_set(GW_ENOMEM, "store %s: out of memory",
								     path);
		sq_close(&s->base);
		return rc;
	}
	if ((rc = configure(s)) < 0 || (rc = migrate(s)) < 0 || (rc = journals_in_memory(s)) < 0 ||
	    (rc = prepare_all(s)) < 0) {
		sq_close(&s->base);
		return rc;
	}
	*out = &s->base;
	return 0;
}

int store_sqlite_settings(store *st, struct store_sqlite_settings *out)
{
	struct sqlite_store *s = S(st);

	memset(out, 0, sizeof(*out));
	if (st->ops != &sqlite_ops)
		return gw_error_set(GW_EINVALID, "the store is not an SQLite store");
	if (pragma_text(s, "PRAGMA journal_mode", out->journal_mode, sizeof(out->journal_mode)) < 0 ||
	    pragma_int(s, "PRAGMA synchronous", &out->synchronous) < 0 ||
	    pragma_int(s, "PRAGMA foreign_keys", &out->foreign_keys) < 0 ||
	    pragma_int(s, "PRAGMA busy_timeout", &out->busy_timeout_ms) < 0 ||
	    pragma_int(s, "PRAGMA user_version", &out->schema_version) < 0 ||
	    pragma_int(s, "PRAGMA temp_store", &out->temp_store) < 0)
		return GW_ERROR;
	return 0;
}

/* A quick_check finding on one line, without its "*** in database main ***". */
static void check_line(char *out, size_t size, const char *line)
{
	static const char banner[] = "*** in database main ***";
	size_t n = 0;

	if (!strncmp(line, banner, sizeof(banner) - 1))
		line += sizeof(banner) - 1;
	while (*line == ' ' || *line == '\n')
		line++;
	for (; *line && n + 1 < size; line++)
		out[n++] = (unsigned char)*line < 0x20 ? ' ' : *line;
	out[n] = '\0';
}

/* Stops PRAGMA quick_check at its deadline (a non-zero return interrupts). */
static int check_progress(void *arg)
{
	const int64_t *deadline_ms = arg;

	return timeutil_now_ms() > *deadline_ms;
}

int store_sqlite_check(store *st, int budget_ms, bool *complete)
{
	struct sqlite_store *s = S(st);
	int64_t deadline_ms = timeutil_now_ms() + budget_ms;
	sqlite3_stmt *q = NULL;
	char first[256] = "";
	int rc, problems = 0, err = 0;

	*complete = false;
	if (st->ops != &sqlite_ops)
		return gw_error_set(GW_EINVALID, "the store is not an SQLite store");
	if ((rc = sqlite3_prepare_v2(s->db, "PRAGMA quick_check", -1, &q, NULL)) != SQLITE_OK)
		return db_fail(s, rc, "check the database");
	sqlite3_progress_handler(s->db, 1000, check_progress, &deadline_ms);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		const char *line = (const char *)sqlite3_column_text(q, 0);

		if (line && strcmp(line, "ok") != 0 && problems++ == 0)
			check_line(first, sizeof(first), line);
	}
	if (rc != SQLITE_DONE && (rc & 0xff) != SQLITE_INTERRUPT)
		err = db_fail(s, rc, "check the database");
	sqlite3_progress_handler(s->db, 0, NULL, NULL);
	sqlite3_finalize(q);
	if (err < 0)
		return err;
	if (problems)
		return gw_error_set(GW_ERROR, "store %s is damaged: PRAGMA quick_check found %d "
				    "problem%s, the first: %s. Stop the gateway and restore the last "
				    "backup (docs/OPERATIONS.md, \"A damaged database\")",
				    s->path, problems, problems == 1 ? "" : "s", first);
	*complete = (rc & 0xff) != SQLITE_INTERRUPT;
	return 0;
}
