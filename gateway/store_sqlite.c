/*
 * store_sqlite: the SQLite backend of store.h.
 *
 * Durability. The connection runs journal_mode=WAL with synchronous=FULL:
 * when commit() returns, the transaction survives a crash or power loss.
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
 * state and allows only the transitions in allowed_transition().
 *
 * SQL. Every statement is prepared once at open and kept in the store;
 * values are only ever bound, never formatted into SQL text. State names in
 * the SQL are the constants of store.c, spelled out so the partial indexes
 * apply.
 */
#include "store.h"
#include "store_sqlite.h"
#include "err.h"
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BUSY_TIMEOUT_MS 10000

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
	ST_BEGIN, ST_COMMIT, ST_ROLLBACK,
	ST_SEEN, ST_NOTICE_LATEST, ST_NOTICE_INSERT, ST_NOTICE_GET,
	ST_MSG_INSERT, ST_MSG_TRANSITION,
	ST_DUE_NEXT_DATE, ST_DUE_IN_DATE, ST_NEXT_DUE, ST_RECOVER,
	ST_MSG_GET, ST_MSG_STATE, ST_MSG_UPDATE, ST_MSG_RELEASE,
	ST_ATTEMPT_INSERT, ST_ATTEMPTS_LIST, ST_RECEIPT_INSERT, ST_RECEIPT_GET,
	ST_LIST_ALL, ST_LIST_STATE, ST_LIST_NOTICE, ST_LIST_NOTICE_STATE, ST_COUNTS,
	ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_SEEN] = "SELECT 1 FROM notices WHERE content_sha256 = ?1",
	[ST_NOTICE_LATEST] = "SELECT revision, content_sha256 FROM notices WHERE notice_id = ?1"
			     " ORDER BY revision DESC LIMIT 1",
	[ST_NOTICE_INSERT] = "INSERT INTO notices (" NOTICE_COLS ") VALUES"
			     " (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
	[ST_NOTICE_GET] = "SELECT " NOTICE_COLS " FROM notices WHERE notice_id = ?1 AND revision = ?2",
	[ST_MSG_INSERT] = "INSERT INTO messages (" MSG_COLS ", signed_bytes) VALUES"
			  " (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
	[ST_MSG_TRANSITION] = "UPDATE messages SET state = ?1, reason = ?2"
			      " WHERE notice_id = ?3 AND revision < ?4 AND state = ?5",
	[ST_DUE_NEXT_DATE] = "SELECT event_date FROM messages INDEXED BY idx_messages_due"
			     " WHERE state = 'queued'"
			     " AND event_date > ?1 ORDER BY event_date LIMIT 1",
	[ST_DUE_IN_DATE] = "SELECT " MSG_COLS ", signed_bytes FROM messages"
			   " INDEXED BY idx_messages_due"
			   " WHERE state = 'queued' AND event_date = ?1 AND next_attempt_ms <= ?2"
			   " ORDER BY next_attempt_ms, created_ms LIMIT ?3",
	[ST_NEXT_DUE] = "SELECT min(next_attempt_ms) FROM messages INDEXED BY idx_messages_wake"
			" WHERE state = 'queued'",
	[ST_RECOVER] = "UPDATE messages SET state = 'queued',"
		       " reason = 'interrupted while sending; will be sent again'"
		       " WHERE state = 'sending'",
	[ST_MSG_GET] = "SELECT " MSG_COLS ", signed_bytes FROM messages WHERE message_id = ?1",
	[ST_MSG_STATE] = "SELECT state FROM messages WHERE message_id = ?1",
	[ST_MSG_UPDATE] = "UPDATE messages SET state = ?1, reason = coalesce(?2, reason),"
			  " next_attempt_ms = CASE WHEN ?3 < 0 THEN next_attempt_ms ELSE ?3 END,"
			  " attempts = attempts + ?4 WHERE message_id = ?5 AND state = ?6",
	[ST_MSG_RELEASE] = "UPDATE messages SET state = 'queued', reason = '', endpoint = ?1,"
			   " recipient_orgnr = ?2, digest_b64 = ?3, signed_bytes = ?4,"
			   " next_attempt_ms = ?5, deadline_ms = ?6"
			   " WHERE message_id = ?7 AND state = 'held'",
	[ST_ATTEMPT_INSERT] = "INSERT INTO attempts (message_id, started_ms, duration_ms,"
			      " http_status, error, outcome) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[ST_ATTEMPTS_LIST] = "SELECT message_id, started_ms, duration_ms, http_status, error,"
			     " outcome FROM attempts WHERE message_id = ?1"
			     " ORDER BY started_ms, attempt_id",
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
};

struct sqlite_store {
	store base; /* first: a store * is a struct sqlite_store * */
	sqlite3 *db;
	sqlite3_stmt *stmt[ST_COUNT];
	char path[PATH_MAX];
};

static struct sqlite_store *S(store *st)
{
	return (struct sqlite_store *)st;
}

/* ---- small helpers ---- */

static int db_fail(struct sqlite_store *s, int rc, const char *what)
{
	int code = GW_ERROR;

	if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
		code = GW_ETEMP;
	else if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
		code = GW_EEXISTS;
	else if ((rc & 0xff) == SQLITE_CONSTRAINT)
		code = GW_EINVALID;
	else if ((rc & 0xff) == SQLITE_NOMEM)
		code = GW_ENOMEM;
	return gw_error_set(code, "store %s: cannot %s: %s", s->path, what, sqlite3_errmsg(s->db));
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

/* Read a row selected with MSG_COLS followed by signed_bytes (or NULL). */
static int read_message(sqlite3_stmt *q, struct store_message *m)
{
	char state[16];

	if (copy_text(m->message_id, sizeof(m->message_id), q, 0) < 0 ||
	    copy_text(m->notice_id, sizeof(m->notice_id), q, 1) < 0 ||
	    copy_text(m->kind, sizeof(m->kind), q, 3) < 0 ||
	    copy_text(m->service, sizeof(m->service), q, 4) < 0 ||
	    copy_text(m->recipient_orgnr, sizeof(m->recipient_orgnr), q, 5) < 0 ||
	    copy_text(m->endpoint, sizeof(m->endpoint), q, 6) < 0 ||
	    copy_text(state, sizeof(state), q, 7) < 0 ||
	    copy_text(m->reason, sizeof(m->reason), q, 8) < 0 ||
	    copy_text(m->event_date, sizeof(m->event_date), q, 9) < 0 ||
	    copy_text(m->digest_b64, sizeof(m->digest_b64), q, 14) < 0)
		return GW_ERROR;
	if (store_state_parse(state, &m->state) < 0)
		return gw_error_wrap(GW_ERROR, "store: message %s", m->message_id);
	m->revision = sqlite3_column_int(q, 2);
	m->created_ms = sqlite3_column_int64(q, 10);
	m->next_attempt_ms = sqlite3_column_int64(q, 11);
	m->deadline_ms = sqlite3_column_int64(q, 12);
	m->attempts = sqlite3_column_int(q, 13);
	return copy_blob(&m->signed_bytes, q, 15);
}

static int read_notice(sqlite3_stmt *q, struct store_notice *n)
{
	if (copy_text(n->notice_id, sizeof(n->notice_id), q, 0) < 0 ||
	    copy_text(n->kind, sizeof(n->kind), q, 2) < 0 ||
	    copy_text(n->content_sha256, sizeof(n->content_sha256), q, 3) < 0 ||
	    copy_text(n->source_name, sizeof(n->source_name), q, 4) < 0 ||
	    copy_text(n->sender_orgnr, sizeof(n->sender_orgnr), q, 5) < 0 ||
	    copy_text(n->sender_unit, sizeof(n->sender_unit), q, 6) < 0 ||
	    copy_text(n->event_date, sizeof(n->event_date), q, 7) < 0 ||
	    copy_text(n->person_ref, sizeof(n->person_ref), q, 8) < 0)
		return GW_ERROR;
	n->revision = sqlite3_column_int(q, 1);
	n->late_at_intake = sqlite3_column_int(q, 9) != 0;
	n->weekend_release = sqlite3_column_int(q, 10) != 0;
	n->received_ms = sqlite3_column_int64(q, 11);
	return 0;
}

static int read_attempt(sqlite3_stmt *q, struct store_attempt *a)
{
	if (copy_text(a->message_id, sizeof(a->message_id), q, 0) < 0 ||
	    copy_text(a->error, sizeof(a->error), q, 4) < 0 ||
	    copy_text(a->outcome, sizeof(a->outcome), q, 5) < 0)
		return GW_ERROR;
	a->started_ms = sqlite3_column_int64(q, 1);
	a->duration_ms = sqlite3_column_int64(q, 2);
	a->http_status = sqlite3_column_int(q, 3);
	return 0;
}

/* ---- transactions ---- */

static int sq_begin(store *st)
{
	struct sqlite_store *s = S(st);

	if (!sqlite3_get_autocommit(s->db))
		return gw_error_set(GW_EINVALID, "store %s: a transaction is already open", s->path);
	return exec_stmt(s, stmt(s, ST_BEGIN), "begin a transaction");
}

static int sq_rollback(store *st)
{
	struct sqlite_store *s = S(st);

	if (sqlite3_get_autocommit(s->db))
		return 0; /* nothing open (SQLite may already have rolled back) */
	return exec_stmt(s, stmt(s, ST_ROLLBACK), "roll back a transaction");
}

static int sq_commit(store *st)
{
	struct sqlite_store *s = S(st);
	int rc;

	if (sqlite3_get_autocommit(s->db))
		return gw_error_set(GW_EINVALID, "store %s: commit without a transaction", s->path);
	rc = exec_stmt(s, stmt(s, ST_COMMIT), "commit");
	if (rc < 0) {
		char saved[512];
		snprintf(saved, sizeof(saved), "%s", gw_error_last());
		sq_rollback(st);
		return gw_error_set(rc, "%s", saved);
	}
	return 0;
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
	return exec_stmt(s, q, "record a notice");
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
	sqlite3_stmt *q = stmt(s, ST_MSG_INSERT);

	if ((int)m->state < 0 || m->state >= MSG_STATE_COUNT)
		return gw_error_set(GW_EINVALID, "message %s has no valid state", m->message_id);
	bind_text(q, 1, m->message_id);
	bind_text(q, 2, m->notice_id);
	sqlite3_bind_int(q, 3, m->revision);
	bind_text(q, 4, m->kind);
	bind_text(q, 5, m->service);
	bind_text(q, 6, m->recipient_orgnr);
	bind_text(q, 7, m->endpoint);
	bind_text(q, 8, store_state_name(m->state));
	bind_text(q, 9, m->reason);
	bind_text(q, 10, m->event_date);
	sqlite3_bind_int64(q, 11, m->created_ms);
	sqlite3_bind_int64(q, 12, m->next_attempt_ms);
	sqlite3_bind_int64(q, 13, m->deadline_ms);
	sqlite3_bind_int(q, 14, m->attempts);
	bind_text(q, 15, m->digest_b64);
	bind_blob(q, 16, &m->signed_bytes);
	return exec_stmt(s, q, "record a message");
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
	int total = 0;

	for (int from = 0; from < MSG_STATE_COUNT; from++) {
		sqlite3_stmt *q;
		int rc;

		if (!(from_mask & (1u << from)))
			continue;
		q = stmt(s, ST_MSG_TRANSITION);
		bind_text(q, 1, store_state_name(to));
		bind_text(q, 2, reason);
		bind_text(q, 3, notice_id);
		sqlite3_bind_int(q, 4, below_revision > 0 ? below_revision : INT_MAX);
		bind_text(q, 5, store_state_name((enum msg_state)from));
		if ((rc = exec_stmt(s, q, "change the state of a notice's messages")) < 0)
			return rc;
		total += sqlite3_changes(s->db);
	}
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

static int due_batch_add(struct due_batch *b, sqlite3_stmt *q)
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
	return read_message(q, m);
}

/* Add the due messages of one event date, at most `room`, to the batch. */
static int due_take_date(struct sqlite_store *s, const char *date, int64_t now_ms, size_t room,
			 struct due_batch *b)
{
	sqlite3_stmt *q = stmt(s, ST_DUE_IN_DATE);
	int rc, err = 0;

	bind_text(q, 1, date);
	sqlite3_bind_int64(q, 2, now_ms);
	sqlite3_bind_int64(q, 3, (sqlite3_int64)room);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		if ((err = due_batch_add(b, q)) < 0)
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

/*
 * Rows are collected first and handed to cb after every statement is
 * reset, so cb may update the store (queued -> sending) safely.
 */
static int sq_messages_due(store *st, int64_t now_ms, size_t limit, store_message_cb cb,
			   void *ctx)
{
	struct sqlite_store *s = S(st);
	struct due_batch b = { NULL, 0, 0 };
	char cursor[11] = "", date[11];
	int err = 0;

	while (b.n < limit) {
		if ((err = due_next_date(s, cursor, date)) < 0 || !date[0])
			break;
		if ((err = due_take_date(s, date, now_ms, limit - b.n, &b)) < 0)
			break;
		memcpy(cursor, date, sizeof(cursor));
	}
	if (!err && b.n < limit) /* undated messages go last */
		err = due_take_date(s, "", now_ms, limit - b.n, &b);
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

static int sq_recover_sending(store *st, int *recovered)
{
	struct sqlite_store *s = S(st);
	int rc = exec_stmt(s, stmt(s, ST_RECOVER), "requeue messages left in sending");

	if (rc == 0 && recovered)
		*recovered = sqlite3_changes(s->db);
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

/*
 * The state machine of store.h plus the operator's moves: retry a failed
 * message, cancel a failed or held one. held -> held and queued -> queued
 * change only the reason or the time. Nothing leaves delivered, superseded
 * or cancelled, and a message being sent cannot be pulled back.
 */
static bool allowed_transition(enum msg_state from, enum msg_state to)
{
	static const unsigned allowed[MSG_STATE_COUNT] = {
		[MSG_QUEUED] = 1u << MSG_SENDING | 1u << MSG_QUEUED | 1u << MSG_HELD |
			       1u << MSG_SUPERSEDED | 1u << MSG_CANCELLED,
		[MSG_SENDING] = 1u << MSG_DELIVERED | 1u << MSG_QUEUED | 1u << MSG_FAILED,
		[MSG_HELD] = 1u << MSG_QUEUED | 1u << MSG_HELD | 1u << MSG_SUPERSEDED |
			     1u << MSG_CANCELLED,
		[MSG_FAILED] = 1u << MSG_QUEUED | 1u << MSG_CANCELLED,
	};

	if ((int)from < 0 || from >= MSG_STATE_COUNT || (int)to < 0 || to >= MSG_STATE_COUNT)
		return false;
	return (allowed[from] & (1u << to)) != 0;
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
	sqlite3_stmt *q;
	int rc;

	if (!allowed_transition(expected, to))
		return gw_error_set(GW_EINVALID, "message %s: a message cannot go from %s to %s",
				    message_id, store_state_name(expected), store_state_name(to));
	q = stmt(s, ST_MSG_UPDATE);
	bind_text(q, 1, store_state_name(to));
	if (reason)
		bind_text(q, 2, reason);
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

static int sq_message_release_held(store *st, const struct store_message *m)
{
	struct sqlite_store *s = S(st);
	sqlite3_stmt *q;
	int rc;

	if (!m->signed_bytes.len || !m->endpoint[0] || !m->recipient_orgnr[0])
		return gw_error_set(GW_EINVALID,
				    "message %s: a held message is released only with an endpoint,"
				    " a recipient and signed bytes", m->message_id);
	q = stmt(s, ST_MSG_RELEASE);
	bind_text(q, 1, m->endpoint);
	bind_text(q, 2, m->recipient_orgnr);
	bind_text(q, 3, m->digest_b64);
	bind_blob(q, 4, &m->signed_bytes);
	sqlite3_bind_int64(q, 5, m->next_attempt_ms);
	sqlite3_bind_int64(q, 6, m->deadline_ms);
	bind_text(q, 7, m->message_id);
	if ((rc = exec_stmt(s, q, "release a held message")) < 0)
		return rc;
	if (sqlite3_changes(s->db) == 0)
		return update_refused(s, m->message_id, MSG_HELD, MSG_QUEUED);
	return 0;
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
	return exec_stmt(s, q, "record an attempt");
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

/* ---- open and close ---- */

static void sq_close(store *st)
{
	struct sqlite_store *s = S(st);

	if (!s)
		return;
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
	.commit = sq_commit,
	.rollback = sq_rollback,
	.intake_seen = sq_intake_seen,
	.notice_latest = sq_notice_latest,
	.notice_insert = sq_notice_insert,
	.notice_get = sq_notice_get,
	.message_insert = sq_message_insert,
	.messages_transition = sq_messages_transition,
	.messages_due = sq_messages_due,
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
};

/* Create the parent directory (0700) and the file itself with mode 0600. */
static int prepare_file(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	struct stat st;
	int fd;

	if (slash && slash != path) {
		size_t len = (size_t)(slash - path);
		if (len >= sizeof(dir))
			return gw_error_set(GW_EINVALID, "store path too long: %s", path);
		memcpy(dir, path, len);
		dir[len] = '\0';
		if (fsutil_mkdirs(dir, 0700) < 0)
			return gw_error_wrap(GW_ERROR, "store %s", path);
	}
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return gw_error_set(GW_ERROR, "store %s: cannot open: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return gw_error_set(GW_ERROR, "store %s is not a regular file", path);
	}
	if ((st.st_mode & 077) && fchmod(fd, 0600) < 0) {
		close(fd);
		return gw_error_set(GW_ERROR, "store %s: cannot make it mode 0600: %s", path,
				    strerror(errno));
	}
	close(fd);
	return 0;
}

static int pragma_text(struct sqlite_store *s, const char *sql, char *out, size_t outlen)
{
	sqlite3_stmt *q;
	int rc, err = 0;

	if ((rc = sqlite3_prepare_v2(s->db, sql, -1, &q, NULL)) != SQLITE_OK)
		return db_fail(s, rc, "read a setting");
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		err = copy_text(out, outlen, q, 0);
	else
		err = db_fail(s, rc, "read a setting");
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

/* Bring the schema to SCHEMA_VERSION in one transaction. */
static int migrate(struct sqlite_store *s)
{
	int version, rc;

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
	if ((rc = prepare_file(path)) < 0) {
		free(s);
		return rc;
	}
	rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK) {
		rc = s->db ? db_fail(s, rc, "open") : gw_error_set(GW_ENOMEM, "store %s: out of memory",
								     path);
		sq_close(&s->base);
		return rc;
	}
	if ((rc = configure(s)) < 0 || (rc = migrate(s)) < 0 || (rc = prepare_all(s)) < 0) {
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
	    pragma_int(s, "PRAGMA user_version", &out->schema_version) < 0)
		return GW_ERROR;
	return 0;
}
