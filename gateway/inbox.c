/*
 * inbox: the receiver's durable store and `gateway inbox` (see inbox.h).
 *
 * Write order (docs/RECEIVER.md explains each crash point). Steps 1-2 take
 * no lock, so workers fsync their items in parallel; SQLite's write lock
 * (BEGIN IMMEDIATE) covers steps 3-5 only, so two worker processes
 * receiving the same MessageId are still ordered. inbox_store_many() runs
 * step 2 per message and steps 3-6 once for all the messages a worker has
 * ready (group commit):
 *   1. (the receiver, before: inbox_lookup) a committed row is final ->
 *      duplicate/conflict, nothing is stored
 *   2. stage the item as an anonymous file in tmp/ (O_TMPFILE), written and
 *      fsynced; nobody else can see it
 *   3. BEGIN IMMEDIATE; per message look up again: known -> its staged file
 *      vanishes; else name it tmp/ID.xml (linkat) and INSERT its row (the
 *      received bytes and the receipt are columns of the row: the evidence)
 *   4. one fsync of tmp/ for every name made
 *   5. COMMIT (WAL, synchronous=FULL: durable on return)
 *   6. rename each tmp/ID.xml -> new/ID.xml, then one fsync of new/ and one
 *      of tmp/
 * Only after step 6 may the caller answer 200: per message one file fsync,
 * and three syncs shared by the batch. The row's PRIMARY KEY is the last
 * guard: a constraint violation is read as "already known".
 *
 * Relies on: SQLite 3 (WAL), fsutil's durable writes, ident's UUIDv4 check
 * (a MessageId only becomes part of a path once it passed that check).
 * Diagnostics: every failure leaves a sentence naming the file or the SQL
 * step in gw_error_last() (per message in inbox_put.error); nothing here
 * logs personal data.
 */
#include "inbox.h"
#include "config.h"
#include "daemons.h"
#include "err.h"
#include "fsutil.h"
#include "ident.h"
#include "log.h"
#include "receipt.h"
#include "receiver.h"
#include "verify.h"
#include "xmlread.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define INBOX_BUSY_TIMEOUT_MS 30000

/* Statements run per message, prepared once (db_cached). */
enum { SQL_LOOKUP, SQL_INSERT, SQL_UNRECORDED, SQL_CACHED };

struct inbox {
	sqlite3 *db;
	sqlite3_stmt *cached[SQL_CACHED];
	char dir[PATH_MAX];
	char tmp[PATH_MAX];
	char new_dir[PATH_MAX];
	char cur[PATH_MAX];
};

static const char *const schema_sql =
	"CREATE TABLE IF NOT EXISTS received ("
	" message_id TEXT PRIMARY KEY NOT NULL,"
	" digest TEXT NOT NULL,"
	" from_orgnr TEXT NOT NULL,"
	" peer_orgnr TEXT NOT NULL,"
	" to_orgnr TEXT NOT NULL,"
	" service TEXT NOT NULL,"
	" notice_id TEXT NOT NULL,"
	" revision INTEGER NOT NULL,"
	" kind TEXT NOT NULL,"
	" created TEXT NOT NULL,"
	" received TEXT NOT NULL,"
	" received_ms INTEGER NOT NULL,"
	" status TEXT NOT NULL,"
	" receipt BLOB NOT NULL,"
	" message BLOB NOT NULL"
	") WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS received_by_time ON received(received_ms);"
	/* Items in new/ or cur/ without a row, as the last recovery found them. */
	"CREATE TABLE IF NOT EXISTS unrecorded_items ("
	" message_id TEXT PRIMARY KEY NOT NULL"
	") WITHOUT ROWID;";

#define ENTRY_COLUMNS                                                                      \
	"message_id, digest, from_orgnr, peer_orgnr, to_orgnr, service, notice_id, revision," \
	" kind, created, received, received_ms, status, receipt"

/* ---- SQLite helpers ---------------------------------------------------- */

static int db_fail(inbox *ib, const char *what)
{
	return gw_error_set(GW_ERROR, "inbox database: %s failed: %s", what, sqlite3_errmsg(ib->db));
}

static int db_exec(inbox *ib, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(ib->db, sql, NULL, NULL, &msg) == SQLITE_OK)
		return 0;
	gw_error_set(GW_ERROR, "inbox database: '%.40s' failed: %s", sql, msg ? msg : "unknown error");
	sqlite3_free(msg);
	return GW_ERROR;
}

static int db_prepare(inbox *ib, const char *sql, sqlite3_stmt **stmt)
{
	if (sqlite3_prepare_v2(ib->db, sql, -1, stmt, NULL) != SQLITE_OK)
		return db_fail(ib, "preparing a statement");
	return 0;
}

static const char *const cached_sql[SQL_CACHED] = {
	[SQL_LOOKUP] = "SELECT " ENTRY_COLUMNS " FROM received WHERE message_id = ?1",
	[SQL_INSERT] = "INSERT INTO received (" ENTRY_COLUMNS ", message) VALUES"
		       " (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
	[SQL_UNRECORDED] = "SELECT 1 FROM unrecorded_items WHERE message_id = ?1",
};

/* A per-message statement, ready to bind; hand it back with db_done(). */
static int db_cached(inbox *ib, int which, sqlite3_stmt **stmt)
{
	if (!ib->cached[which] &&
	    sqlite3_prepare_v3(ib->db, cached_sql[which], -1, SQLITE_PREPARE_PERSISTENT,
			       &ib->cached[which], NULL) != SQLITE_OK)
		return db_fail(ib, "preparing a statement");
	*stmt = ib->cached[which];
	return 0;
}

static void db_done(sqlite3_stmt *stmt)
{
	sqlite3_reset(stmt);
	sqlite3_clear_bindings(stmt);
}

static void copy_column(sqlite3_stmt *stmt, int col, char *dst, size_t size)
{
	const unsigned char *text = sqlite3_column_text(stmt, col);

	snprintf(dst, size, "%s", text ? (const char *)text : "");
}

static int row_to_entry(sqlite3_stmt *stmt, struct inbox_entry *e)
{
	struct msg_header *h = &e->header;
	const void *blob;
	int blob_len;

	copy_column(stmt, 0, h->message_id, sizeof(h->message_id));
	copy_column(stmt, 1, e->digest_b64, sizeof(e->digest_b64));
	copy_column(stmt, 2, h->from_orgnr, sizeof(h->from_orgnr));
	copy_column(stmt, 3, e->peer_orgnr, sizeof(e->peer_orgnr));
	copy_column(stmt, 4, h->to_orgnr, sizeof(h->to_orgnr));
	copy_column(stmt, 5, h->service, sizeof(h->service));
	copy_column(stmt, 6, h->notice_id, sizeof(h->notice_id));
	h->revision = sqlite3_column_int(stmt, 7);
	copy_column(stmt, 8, h->kind, sizeof(h->kind));
	copy_column(stmt, 9, h->created, sizeof(h->created));
	copy_column(stmt, 10, e->received, sizeof(e->received));
	e->received_ms = sqlite3_column_int64(stmt, 11);
	copy_column(stmt, 12, e->status, sizeof(e->status));
	blob = sqlite3_column_blob(stmt, 13);
	blob_len = sqlite3_column_bytes(stmt, 13);
	gw_buf_reset(&e->receipt);
	if (gw_buf_put(&e->receipt, blob ? blob : "", (size_t)blob_len) < 0)
		return GW_ENOMEM;
	return 0;
}

/*
 * Databases made by development builds before the received bytes moved
 * into the row (when they were evidence/ files) lack the message column;
 * say so instead of failing on the first INSERT.
 */
static int db_check_columns(inbox *ib)
{
	sqlite3_stmt *stmt = NULL;

	if (sqlite3_prepare_v2(ib->db, "SELECT message FROM received LIMIT 0", -1, &stmt, NULL) !=
	    SQLITE_OK) {
		sqlite3_finalize(stmt);
		return gw_error_set(GW_EINVALID, "the inbox database was made by an earlier "
				    "development build (its table has no received-bytes column); "
				    "move it and the inbox directory aside and start again");
	}
	sqlite3_finalize(stmt);
	return 0;
}

static int db_configure(inbox *ib)
{
	sqlite3_busy_timeout(ib->db, INBOX_BUSY_TIMEOUT_MS);
	if (db_exec(ib, "PRAGMA journal_mode=WAL;") < 0 ||
	    db_exec(ib, "PRAGMA synchronous=FULL;") < 0 || db_exec(ib, schema_sql) < 0)
		return GW_ERROR;
	return db_check_columns(ib);
}

/* ---- paths ------------------------------------------------------------- */

static int check_id(const char *message_id)
{
	if (!message_id || !ident_uuid4_valid(message_id))
		return gw_error_set(GW_EINVALID,
				    "'%.40s' is not a MessageId (a lower-case UUID version 4)",
				    message_id ? message_id : "");
	return 0;
}

static int item_name(const char *message_id, char *out, size_t len)
{
	int n = snprintf(out, len, "%s.xml", message_id);

	if (n < 0 || (size_t)n >= len)
		return gw_error_set(GW_EINVALID, "inbox item name too long");
	return 0;
}

static int make_dirs(inbox *ib, const char *dir)
{
	if (fsutil_path(ib->tmp, sizeof(ib->tmp), dir, "tmp") < 0 ||
	    fsutil_path(ib->new_dir, sizeof(ib->new_dir), dir, "new") < 0 ||
	    fsutil_path(ib->cur, sizeof(ib->cur), dir, "cur") < 0)
		return GW_EINVALID;
	snprintf(ib->dir, sizeof(ib->dir), "%s", dir);
	if (fsutil_mkdirs(ib->tmp, 0700) < 0 || fsutil_mkdirs(ib->new_dir, 0700) < 0 ||
	    fsutil_mkdirs(ib->cur, 0700) < 0)
		return GW_ERROR;
	return fsutil_sync_dir(dir);
}

/* ---- open / close ------------------------------------------------------ */

int inbox_open(inbox **out, const char *dir, const char *db_path)
{
	inbox *ib;

	*out = NULL;
	if (!dir || !*dir || !db_path || !*db_path)
		return gw_error_set(GW_EINVALID, "the receiver needs both an inbox directory and a database path");
	ib = calloc(1, sizeof(*ib));
	if (!ib)
		return gw_error_set(GW_ENOMEM, "out of memory opening the inbox");
	if (make_dirs(ib, dir) < 0)
		goto fail;
	/* The records and receipts are evidence: nobody else reads them. */
	if (fsutil_prepare_private_file(db_path) < 0) {
		gw_error_wrap(GW_ERROR, "inbox database");
		goto fail;
	}
	if (sqlite3_open_v2(db_path, &ib->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	    SQLITE_OK) {
		gw_error_set(GW_ERROR, "cannot open the inbox database %s: %s", db_path,
			     ib->db ? sqlite3_errmsg(ib->db) : "out of memory");
		goto fail;
	}
	if (db_configure(ib) < 0) {
		gw_error_wrap(GW_ERROR, "inbox database %s", db_path);
		goto fail;
	}
	*out = ib;
	return 0;
fail:
	inbox_close(ib);
	return GW_ERROR;
}

void inbox_close(inbox *ib)
{
	if (!ib)
		return;
	for (int i = 0; i < SQL_CACHED; i++)
		sqlite3_finalize(ib->cached[i]);
	sqlite3_close(ib->db);
	free(ib);
}

void inbox_entry_clear(struct inbox_entry *e)
{
	gw_buf_free(&e->receipt);
}

void inbox_fault_point(const char *name)
{
	const char *want = getenv("GW_FAULT_POINT");
	const char *once = getenv("GW_FAULT_ONCE");
	int fd;

	if (!want || strcmp(want, name) != 0)
		return;
	if (once && *once) {
		fd = open(once, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0)
			return; /* fired already */
		close(fd);
	}
	gw_log(GW_LOG_WARN, "fault-point", "point", name, "detail",
	       "GW_FAULT_POINT is set (tests only): killing this process with SIGKILL", NULL);
	raise(SIGKILL);
}

/* ---- reading ----------------------------------------------------------- */

int inbox_lookup(inbox *ib, const char *message_id, struct inbox_entry *out)
{
	sqlite3_stmt *stmt = NULL;
	int rc, step;

	if (check_id(message_id) < 0)
		return GW_EINVALID;
	if (db_cached(ib, SQL_LOOKUP, &stmt) < 0)
		return GW_ERROR;
	sqlite3_bind_text(stmt, 1, message_id, -1, SQLITE_STATIC);
	step = sqlite3_step(stmt);
	if (step == SQLITE_ROW)
		rc = row_to_entry(stmt, out);
	else if (step == SQLITE_DONE)
		rc = gw_error_set(GW_ENOTFOUND, "no message %s in the inbox", message_id);
	else
		rc = db_fail(ib, "looking up a MessageId");
	db_done(stmt);
	return rc;
}

int inbox_list(inbox *ib, inbox_entry_cb cb, void *ctx)
{
	struct inbox_entry e = { 0 };
	sqlite3_stmt *stmt = NULL;
	int rc = 0, step;

	if (db_prepare(ib, "SELECT " ENTRY_COLUMNS " FROM received ORDER BY received_ms, message_id",
		       &stmt) < 0)
		return GW_ERROR;
	while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
		if ((rc = row_to_entry(stmt, &e)) < 0 || cb(&e, ctx) != 0)
			break;
	}
	if (rc == 0 && step != SQLITE_ROW && step != SQLITE_DONE)
		rc = db_fail(ib, "listing the inbox");
	sqlite3_finalize(stmt);
	inbox_entry_clear(&e);
	return rc;
}

const char *inbox_item_state_name(enum inbox_item_state state)
{
	switch (state) {
	case INBOX_ITEM_TMP:
		return "pending";
	case INBOX_ITEM_NEW:
		return "new";
	case INBOX_ITEM_CUR:
		return "read";
	default:
		return "gone";
	}
}

static bool file_exists(const char *dir, const char *name, char *path, size_t pathlen)
{
	struct stat st;

	if (fsutil_path(path, pathlen, dir, name) < 0)
		return false;
	return lstat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Maildir readers rename new/NAME to cur/NAME:2,FLAGS. */
static bool cur_find(inbox *ib, const char *name, char *path, size_t pathlen)
{
	size_t len = strlen(name);
	DIR *d = opendir(ib->cur);
	struct dirent *de;
	bool found = false;

	if (!d)
		return false;
	while (!found && (de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, name, len) == 0 &&
		    (de->d_name[len] == '\0' || de->d_name[len] == ':'))
			found = file_exists(ib->cur, de->d_name, path, pathlen);
	}
	closedir(d);
	return found;
}

int inbox_item_locate(inbox *ib, const char *message_id, enum inbox_item_state *state,
		      char *path, size_t pathlen)
{
	char name[64];

	if (check_id(message_id) < 0 || item_name(message_id, name, sizeof(name)) < 0)
		return GW_EINVALID;
	if (file_exists(ib->new_dir, name, path, pathlen))
		*state = INBOX_ITEM_NEW;
	else if (cur_find(ib, name, path, pathlen))
		*state = INBOX_ITEM_CUR;
	else if (file_exists(ib->tmp, name, path, pathlen))
		*state = INBOX_ITEM_TMP;
	else {
		*state = INBOX_ITEM_MISSING;
		if (pathlen)
			path[0] = '\0';
	}
	return 0;
}

int inbox_received_bytes(inbox *ib, const char *message_id, gw_buf *out)
{
	sqlite3_stmt *stmt = NULL;
	int rc, step;

	if (check_id(message_id) < 0)
		return GW_EINVALID;
	if (db_prepare(ib, "SELECT message FROM received WHERE message_id = ?1", &stmt) < 0)
		return GW_ERROR;
	sqlite3_bind_text(stmt, 1, message_id, -1, SQLITE_STATIC);
	step = sqlite3_step(stmt);
	gw_buf_reset(out);
	if (step == SQLITE_ROW) {
		const void *blob = sqlite3_column_blob(stmt, 0);
		rc = gw_buf_put(out, blob ? blob : "", (size_t)sqlite3_column_bytes(stmt, 0));
		rc = rc < 0 ? gw_error_set(GW_ENOMEM, "out of memory reading message %s", message_id)
			    : 0;
	} else if (step == SQLITE_DONE) {
		rc = gw_error_set(GW_ENOTFOUND, "no message %s in the inbox", message_id);
	} else {
		rc = db_fail(ib, "reading the received bytes");
	}
	sqlite3_finalize(stmt);
	return rc;
}

/* ---- writing ----------------------------------------------------------- */

/*
 * Move a committed item from tmp/ into new/; the directories are synced by
 * the caller. 1 moved; 0 nothing to move: another process (a worker
 * answering a duplicate, or recovery) moved it first, or it was never
 * written because new/ already held the same bytes.
 */
static int item_move(inbox *ib, const char *message_id)
{
	char name[64], from[PATH_MAX], to[PATH_MAX];

	if (item_name(message_id, name, sizeof(name)) < 0 ||
	    fsutil_path(from, sizeof(from), ib->tmp, name) < 0 ||
	    fsutil_path(to, sizeof(to), ib->new_dir, name) < 0)
		return GW_EINVALID;
	if (rename(from, to) == 0)
		return 1;
	if (errno == ENOENT)
		return 0;
	return gw_error_set(GW_ERROR, "cannot move %s to %s: %s", from, to, strerror(errno));
}

/*
 * Make moves out of tmp/ durable: the names in new/, and their absence from
 * tmp/ (a name that came back into tmp/ after a power cut would be
 * published a second time by recovery, after the case system may already
 * have taken the first copy away). Also when another worker made the move
 * (ENOENT here): it may not have synced tmp/ yet, and this answer must not
 * run ahead of that.
 */
static int moves_sync(inbox *ib)
{
	if (fsutil_sync_dir(ib->new_dir) < 0)
		return GW_ERROR;
	return fsutil_sync_dir(ib->tmp);
}

static int item_publish(inbox *ib, const char *message_id)
{
	int moved = item_move(ib, message_id);

	return moved < 0 ? moved : moves_sync(ib);
}

static bool same_content(const char *path, const unsigned char *data, size_t len)
{
	gw_buf have = GW_BUF_INIT;
	bool same;

	same = fsutil_read_file(path, len + 1, &have) == 0 && have.len == len &&
	       memcmp(have.data, data, len) == 0;
	gw_buf_free(&have);
	gw_error_clear();
	return same;
}

/* 1 when the last recovery found an item of message_id without a row. */
static int unrecorded(inbox *ib, const char *message_id)
{
	sqlite3_stmt *stmt = NULL;
	int step;

	if (db_cached(ib, SQL_UNRECORDED, &stmt) < 0)
		return GW_ERROR;
	sqlite3_bind_text(stmt, 1, message_id, -1, SQLITE_STATIC);
	step = sqlite3_step(stmt);
	db_done(stmt);
	if (step != SQLITE_ROW && step != SQLITE_DONE)
		return db_fail(ib, "looking up unrecorded items");
	return step == SQLITE_ROW;
}

/*
 * True when an item with exactly these bytes is already visible to the
 * case system without a record (a database restored from an older backup,
 * or an item put there by hand): writing it again would hand the case
 * system a second copy. new/ is looked at directly; cur/, which a case
 * system may fill for years, only for the MessageIds the last recovery
 * found there without a row (everything published since has a row).
 */
static bool item_already_visible(inbox *ib, const char *message_id, const char *name,
				 const unsigned char *item, size_t item_len)
{
	char path[PATH_MAX];

	if (!file_exists(ib->new_dir, name, path, sizeof(path)) &&
	    !(unrecorded(ib, message_id) == 1 && cur_find(ib, name, path, sizeof(path)))) {
		gw_error_clear();
		return false;
	}
	if (same_content(path, item, item_len))
		return true;
	gw_log(GW_LOG_WARN, "inbox-item-replaced", "msg", message_id, "path", path,
	       "detail", "an item with this MessageId but other bytes had no record; replacing it",
	       NULL);
	return false;
}

/* 0 inserted; GW_EEXISTS on a PRIMARY KEY violation. */
static int row_insert(inbox *ib, const struct inbox_put *p)
{
	const struct inbox_entry *e = p->entry;
	const struct msg_header *h = &e->header;
	sqlite3_stmt *stmt = NULL;
	int step, rc = 0;

	if (p->message_len > INT_MAX || e->receipt.len > INT_MAX)
		return gw_error_set(GW_EINVALID, "message %s is too large to record", h->message_id);
	if (db_cached(ib, SQL_INSERT, &stmt) < 0)
		return GW_ERROR;
	sqlite3_bind_text(stmt, 1, h->message_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, e->digest_b64, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 3, h->from_orgnr, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 4, e->peer_orgnr, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 5, h->to_orgnr, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 6, h->service, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 7, h->notice_id, -1, SQLITE_STATIC);
	sqlite3_bind_int(stmt, 8, h->revision);
	sqlite3_bind_text(stmt, 9, h->kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 10, h->created, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 11, e->received, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 12, e->received_ms);
	sqlite3_bind_text(stmt, 13, e->status[0] ? e->status : "accepted", -1, SQLITE_STATIC);
	sqlite3_bind_blob(stmt, 14, e->receipt.data ? (const void *)e->receipt.data : "",
			  (int)e->receipt.len, SQLITE_STATIC);
	sqlite3_bind_blob(stmt, 15, p->message ? (const void *)p->message : "",
			  (int)p->message_len, SQLITE_STATIC);
	step = sqlite3_step(stmt);
	if (step == SQLITE_CONSTRAINT)
		rc = gw_error_set(GW_EEXISTS, "MessageId %s is already stored", h->message_id);
	else if (step != SQLITE_DONE)
		rc = db_fail(ib, "storing a message");
	db_done(stmt);
	return rc;
}

/* 1 when the row exists (copied into have), 0 when not. */
static int known_row(inbox *ib, const char *message_id, struct inbox_entry *have)
{
	int rc = inbox_lookup(ib, message_id, have);

	if (rc == GW_ENOTFOUND) {
		gw_error_clear();
		return 0;
	}
	return rc < 0 ? rc : 1;
}

/*
 * What inbox_store_many() keeps per message while it works. The item is
 * staged outside the write lock as an anonymous file in tmp/, written and
 * fsynced (fsutil_stage), so workers do that part in parallel and a crash
 * before it is named leaves nothing behind.
 */
enum put_step {
	PUT_ANSWERED, /* outcome (or rc) final; nothing more to do */
	PUT_STAGED,   /* item durable but anonymous; no row yet */
	PUT_STORED,   /* named in tmp/ and its row inserted: needs the commit */
	PUT_KNOWN,    /* a duplicate found under the lock: publish its item */
};

struct put_work {
	enum put_step step;
	int fd;      /* the anonymous item; -1: written by name when linked */
	bool wanted; /* false when new/ or cur/ already shows exactly these bytes */
	bool named;  /* tmp/<name> made by this batch (under the lock) */
	bool judged; /* duplicate or conflict found under the lock: maybe against a
		      * row this very batch inserted, so only as final as its commit */
	char name[64];
};

static void put_fail(struct inbox_put *p, int rc)
{
	p->rc = rc < 0 ? rc : GW_ERROR;
	snprintf(p->error, sizeof(p->error), "%s", gw_error_last());
}

/* The answer for a row that exists. */
static void put_known(struct inbox_put *p, const struct inbox_entry *have)
{
	p->outcome = strcmp(have->digest_b64, p->entry->digest_b64) == 0 ? INBOX_DUPLICATE
									  : INBOX_CONFLICT;
}

static void work_release(struct put_work *w, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (w[i].fd >= 0)
			close(w[i].fd);
		w[i].fd = -1;
	}
}

/*
 * Without the lock: stage the item. Whether the MessageId is known is
 * decided under the lock (put_store); the receiver has already answered
 * what it found committed before (check_known).
 */
static void put_prepare(inbox *ib, struct inbox_put *p, struct put_work *w)
{
	const char *id = p->entry->header.message_id;
	int rc;

	w->step = PUT_ANSWERED;
	w->fd = -1;
	p->rc = 0;
	p->error[0] = '\0';
	if ((rc = check_id(id)) < 0 || (rc = item_name(id, w->name, sizeof(w->name))) < 0) {
		put_fail(p, rc);
		return;
	}
	w->wanted = !item_already_visible(ib, id, w->name, p->item, p->item_len);
	if (w->wanted && (rc = fsutil_stage(ib->tmp, p->item, p->item_len, 0600, &w->fd)) < 0) {
		put_fail(p, rc);
		return;
	}
	w->step = PUT_STAGED;
}

/* Under the lock: name the staged item in tmp/ (not synced yet). */
static int item_link(inbox *ib, const struct inbox_put *p, const struct put_work *w)
{
	int rc;

	if (!w->wanted)
		return 0;
	if (w->fd >= 0) {
		rc = fsutil_stage_link(w->fd, ib->tmp, w->name);
		if (rc != GW_ETEMP)
			return rc;
		gw_error_clear();
	}
	/* No anonymous files on this system: the durable write by name, here. */
	return fsutil_write_durable(ib->tmp, w->name, p->item, p->item_len, 0600);
}

/*
 * Under the lock, for one staged message: look again (another worker, or an
 * earlier message of this batch, may have stored it since), else name the
 * item and insert the row. A negative return fails the whole batch.
 */
static int put_store(inbox *ib, struct inbox_put *p, struct put_work *w)
{
	struct inbox_entry have = { 0 };
	int rc = known_row(ib, p->entry->header.message_id, &have);

	if (rc == 1) {
		put_known(p, &have);
		w->step = p->outcome == INBOX_DUPLICATE ? PUT_KNOWN : PUT_ANSWERED;
		w->judged = true;
	}
	inbox_entry_clear(&have);
	if (rc != 0)
		return rc < 0 ? rc : 0;
	if ((rc = item_link(ib, p, w)) < 0)
		return rc;
	w->named = w->wanted;
	if ((rc = row_insert(ib, p)) < 0)
		return rc;
	w->step = PUT_STORED;
	return 0;
}

/*
 * Every message still waiting for the commit gets the batch's failure, and
 * so does every duplicate or conflict judged under the lock: the row it was
 * judged against may be one this batch inserted (the same MessageId twice
 * in one batch), gone with the rollback. A retry finds the truth.
 */
static void batch_fail(struct inbox_put *p, struct put_work *w, size_t n, int rc)
{
	for (size_t i = 0; i < n; i++) {
		if (w[i].step == PUT_STAGED || w[i].step == PUT_STORED || w[i].judged) {
			put_fail(&p[i], rc);
			w[i].step = PUT_ANSWERED;
		}
	}
}

/* Before a rollback: the names this batch gave its items in tmp/ go again. */
static void batch_unlink(inbox *ib, const struct put_work *w, size_t n)
{
	char path[PATH_MAX];

	for (size_t i = 0; i < n; i++) {
		if (!w[i].named)
			continue;
		if (fsutil_path(path, sizeof(path), ib->tmp, w[i].name) == 0)
			(void)unlink(path);
	}
}

/* Steps 3-5 for every staged message: one lock, one fsync of tmp/, one commit. */
static int batch_commit(inbox *ib, struct inbox_put *p, struct put_work *w, size_t n)
{
	bool linked = false;
	int rc = 0;

	if (db_exec(ib, "BEGIN IMMEDIATE;") < 0)
		return gw_error_wrap(GW_ETEMP, "cannot take the inbox write lock");
	inbox_fault_point("after-lock");
	for (size_t i = 0; rc == 0 && i < n; i++) {
		if (w[i].step != PUT_STAGED)
			continue;
		rc = put_store(ib, &p[i], &w[i]);
		linked |= rc == 0 && w[i].step == PUT_STORED && w[i].wanted;
	}
	if (rc == 0 && linked && (rc = fsutil_sync_dir(ib->tmp)) == 0)
		inbox_fault_point("after-tmp-write");
	if (rc < 0)
		batch_unlink(ib, w, n); /* still under the lock; no row of them exists */
	else if ((rc = db_exec(ib, "COMMIT;")) == 0) {
		inbox_fault_point("after-commit");
		return 0;
	}
	/* A failed COMMIT may still be durable (its frames are in the WAL): its
	 * names stay, and start-up recovery decides by the rows. */
	db_exec(ib, "ROLLBACK;");
	return rc;
}

/* Step 6: every committed or duplicate item into new/, both directories synced once. */
static void batch_publish(inbox *ib, struct inbox_put *p, struct put_work *w, size_t n)
{
	bool any = false;
	int rc = 0;

	for (size_t i = 0; i < n; i++) {
		if (w[i].step != PUT_STORED && w[i].step != PUT_KNOWN)
			continue;
		if (w[i].step == PUT_STORED)
			p[i].outcome = INBOX_STORED;
		any = true;
		if ((rc = item_move(ib, p[i].entry->header.message_id)) < 0)
			put_fail(&p[i], rc);
	}
	if (!any)
		return;
	if ((rc = moves_sync(ib)) < 0) {
		for (size_t i = 0; i < n; i++)
			if ((w[i].step == PUT_STORED || w[i].step == PUT_KNOWN) && p[i].rc == 0)
				put_fail(&p[i], rc);
		return;
	}
	inbox_fault_point("after-rename");
}

int inbox_store_many(inbox *ib, struct inbox_put *puts, size_t n)
{
	struct put_work *w;
	bool staged = false;
	int rc;

	if (n == 0)
		return 0;
	if (!(w = calloc(n, sizeof(*w)))) {
		rc = gw_error_set(GW_ENOMEM, "out of memory storing %zu messages", n);
		for (size_t i = 0; i < n; i++)
			put_fail(&puts[i], rc);
		return rc;
	}
	for (size_t i = 0; i < n; i++) {
		put_prepare(ib, &puts[i], &w[i]);
		staged |= w[i].step == PUT_STAGED;
	}
	if (staged && (rc = batch_commit(ib, puts, w, n)) < 0)
		batch_fail(puts, w, n, rc);
	work_release(w, n);
	batch_publish(ib, puts, w, n);
	free(w);
	return 0;
}

int inbox_store(inbox *ib, const struct inbox_entry *e, const unsigned char *message,
		size_t message_len, const unsigned char *item, size_t item_len,
		enum inbox_outcome *outcome)
{
	struct inbox_put p;

	memset(&p, 0, sizeof(p));
	p.entry = e;
	p.message = message;
	p.message_len = message_len;
	p.item = item;
	p.item_len = item_len;
	if (inbox_store_many(ib, &p, 1) < 0)
		return GW_ERROR;
	if (p.rc < 0)
		return gw_error_set(p.rc, "%s", p.error);
	*outcome = p.outcome;
	return 0;
}

int inbox_publish(inbox *ib, const char *message_id)
{
	if (check_id(message_id) < 0)
		return GW_EINVALID;
	return item_publish(ib, message_id);
}

/* ---- recovery ---------------------------------------------------------- */

/* An item nobody acknowledged: the sender will send it again. */
static int discard(const char *path, int *discarded)
{
	if (unlink(path) < 0 && errno != ENOENT)
		return gw_error_set(GW_ERROR, "cannot remove %s: %s", path, strerror(errno));
	(*discarded)++;
	return 0;
}

static int recover_one(inbox *ib, const char *name, int *published, int *discarded)
{
	char id[IDENT_UUID_LEN + 1], path[PATH_MAX];
	struct inbox_entry have = { 0 };
	size_t len = strlen(name);
	int rc;

	if (fsutil_path(path, sizeof(path), ib->tmp, name) < 0)
		return GW_EINVALID;
	/* Our names are ID.xml; anything else in tmp/ is a half-written file. */
	if (len != IDENT_UUID_LEN + 4 || strcmp(name + IDENT_UUID_LEN, ".xml") != 0)
		return discard(path, discarded);
	memcpy(id, name, IDENT_UUID_LEN);
	id[IDENT_UUID_LEN] = '\0';
	rc = ident_uuid4_valid(id) ? inbox_lookup(ib, id, &have) : GW_ENOTFOUND;
	inbox_entry_clear(&have);
	if (rc == 0) {
		(*published)++;
		return item_publish(ib, id);
	}
	if (rc != GW_ENOTFOUND)
		return rc;
	gw_error_clear();
	return discard(path, discarded);
}

static int recover_scan(inbox *ib, int *published, int *discarded)
{
	DIR *d = opendir(ib->tmp);
	struct dirent *de;
	int rc = 0;

	if (!d)
		return gw_error_set(GW_ERROR, "cannot read %s: %s", ib->tmp, strerror(errno));
	while (rc == 0 && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		rc = recover_one(ib, de->d_name, published, discarded);
	}
	closedir(d);
	if (rc == 0 && *discarded > 0)
		rc = fsutil_sync_dir(ib->tmp);
	return rc;
}

/* The MessageId of an item name in new/ ("ID.xml") or cur/ ("ID.xml:2,FLAGS"). */
static bool item_id(const char *name, char id[IDENT_UUID_LEN + 1])
{
	size_t len = strlen(name);

	if (len < IDENT_UUID_LEN + 4 || memcmp(name + IDENT_UUID_LEN, ".xml", 4) != 0 ||
	    (len > IDENT_UUID_LEN + 4 && name[IDENT_UUID_LEN + 4] != ':'))
		return false;
	memcpy(id, name, IDENT_UUID_LEN);
	id[IDENT_UUID_LEN] = '\0';
	return ident_uuid4_valid(id);
}

/* Remember every item of dir that has no row (see item_already_visible). */
static int note_unrecorded(inbox *ib, const char *dir, int *found)
{
	char id[IDENT_UUID_LEN + 1];
	struct inbox_entry have = { 0 };
	sqlite3_stmt *add = NULL;
	struct dirent *de;
	DIR *d = opendir(dir);
	int rc = 0;

	if (!d)
		return gw_error_set(GW_ERROR, "cannot read %s: %s", dir, strerror(errno));
	if (db_prepare(ib, "INSERT OR IGNORE INTO unrecorded_items (message_id) VALUES (?1)",
		       &add) < 0) {
		closedir(d);
		return GW_ERROR;
	}
	while (rc == 0 && (de = readdir(d)) != NULL) {
		int known;

		if (!item_id(de->d_name, id) || (known = known_row(ib, id, &have)) == 1)
			continue;
		if ((rc = known) < 0)
			break;
		sqlite3_bind_text(add, 1, id, -1, SQLITE_TRANSIENT);
		if (sqlite3_step(add) != SQLITE_DONE)
			rc = db_fail(ib, "noting an unrecorded item");
		sqlite3_reset(add);
		(*found)++;
	}
	inbox_entry_clear(&have);
	sqlite3_finalize(add);
	closedir(d);
	return rc < 0 ? rc : 0;
}

int inbox_recover(inbox *ib, int *published, int *discarded)
{
	int rc, unrecorded_found = 0;

	*published = *discarded = 0;
	/* The write lock keeps every other writer outside its steps 1-5. */
	if (db_exec(ib, "BEGIN IMMEDIATE;") < 0)
		return gw_error_wrap(GW_ETEMP, "cannot take the inbox write lock for recovery");
	rc = recover_scan(ib, published, discarded);
	if (rc == 0)
		rc = db_exec(ib, "DELETE FROM unrecorded_items;");
	if (rc == 0)
		rc = note_unrecorded(ib, ib->new_dir, &unrecorded_found);
	if (rc == 0)
		rc = note_unrecorded(ib, ib->cur, &unrecorded_found);
	if (rc == 0 && (rc = db_exec(ib, "COMMIT;")) == 0 && unrecorded_found > 0) {
		char n[16];

		snprintf(n, sizeof(n), "%d", unrecorded_found);
		gw_log(GW_LOG_WARN, "inbox-unrecorded-items", "count", n, "detail",
		       "items in new/ or cur/ have no record (a database older than the inbox?);"
		       " a resend of the same bytes will not be delivered a second time", NULL);
	}
	if (rc < 0)
		db_exec(ib, "ROLLBACK;");
	return rc;
}

/* ======================================================================
 * gateway inbox list | show MSGID | verify MSGID --config FILE
 * ====================================================================== */

struct inbox_cli {
	const char *command;
	const char *message_id;
	const char *config;
	const char *schemas;
	const char *export_what; /* "message" or "receipt" */
	bool json;
};

static void cli_usage(FILE *out)
{
	fprintf(out, "usage: gateway inbox list --config FILE [--json]\n"
		     "       gateway inbox show MSGID --config FILE\n"
		     "       gateway inbox verify MSGID --config FILE [--schemas DIR]\n"
		     "       gateway inbox export MSGID --message|--receipt --config FILE\n");
}

static int cli_bad(const char *what, const char *arg)
{
	fprintf(stderr, "gateway inbox: %s '%s'\n", what, arg);
	return 2;
}

/* One argument at *i (advanced past an option's value): 0, or 2 on error. */
static int cli_arg(int argc, char **argv, int *i, struct inbox_cli *o)
{
	const char *a = argv[*i];
	const char *value = *i + 1 < argc ? argv[*i + 1] : NULL;

	if (strcmp(a, "--json") == 0) {
		o->json = true;
	} else if (strcmp(a, "--message") == 0 || strcmp(a, "--receipt") == 0) {
		o->export_what = a + 2;
	} else if (strcmp(a, "--config") == 0 && value) {
		o->config = value;
		(*i)++;
	} else if (strcmp(a, "--schemas") == 0 && value) {
		o->schemas = value;
		(*i)++;
	} else if (a[0] == '-') {
		return cli_bad("unknown or incomplete option", a);
	} else if (!o->command) {
		o->command = a;
	} else if (!o->message_id) {
		o->message_id = a;
	} else {
		return cli_bad("unexpected argument", a);
	}
	return 0;
}

/* 0 to run, 1 for --help, 2 on a usage error. */
static int cli_parse(int argc, char **argv, struct inbox_cli *o)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return 1;
		if (cli_arg(argc, argv, &i, o) != 0)
			return 2;
	}
	if (!o->command || !o->config) {
		fprintf(stderr, "gateway inbox: a command and --config FILE are required\n");
		return 2;
	}
	return 0;
}

static void json_string(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(out, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(out, "\\u%04x", (unsigned)(unsigned char)*s);
		else
			fputc(*s, out);
	}
	fputc('"', out);
}

struct list_ctx {
	inbox *ib;
	bool json;
	size_t rows;
};

static int list_row(const struct inbox_entry *e, void *arg)
{
	struct list_ctx *c = arg;
	enum inbox_item_state state = INBOX_ITEM_MISSING;
	char path[PATH_MAX];

	inbox_item_locate(c->ib, e->header.message_id, &state, path, sizeof(path));
	if (!c->json) {
		printf("%-36s  %-24s  %-9s  %-9s  %s\n", e->header.message_id, e->received,
		       e->header.from_orgnr, e->status, inbox_item_state_name(state));
	} else {
		printf("%s\n  {\"message_id\": ", c->rows ? "," : "");
		json_string(stdout, e->header.message_id);
		printf(", \"received\": ");
		json_string(stdout, e->received);
		printf(", \"from\": ");
		json_string(stdout, e->header.from_orgnr);
		printf(", \"status\": ");
		json_string(stdout, e->status);
		printf(", \"item\": ");
		json_string(stdout, inbox_item_state_name(state));
		printf(", \"notice_id\": ");
		json_string(stdout, e->header.notice_id);
		printf(", \"revision\": %d}", e->header.revision);
	}
	c->rows++;
	return 0;
}

static int cmd_list(inbox *ib, const struct gw_config *cfg, const struct inbox_cli *o)
{
	struct list_ctx c = { ib, o->json, 0 };
	int rc;

	(void)cfg;
	if (o->json)
		printf("[");
	else
		printf("%-36s  %-24s  %-9s  %-9s  %s\n", "MESSAGE-ID", "RECEIVED", "FROM", "STATUS",
		       "ITEM");
	rc = inbox_list(ib, list_row, &c);
	if (o->json)
		printf("%s]\n", c.rows ? "\n" : "");
	if (rc < 0) {
		fprintf(stderr, "gateway inbox list: %s\n", gw_error_last());
		return 1;
	}
	return 0;
}

static int cmd_show(inbox *ib, const struct gw_config *cfg, const struct inbox_cli *o)
{
	struct inbox_entry e = { 0 };
	enum inbox_item_state state = INBOX_ITEM_MISSING;
	gw_buf bytes = GW_BUF_INIT;
	char item[PATH_MAX];

	(void)cfg;
	if (inbox_lookup(ib, o->message_id, &e) < 0 ||
	    inbox_item_locate(ib, o->message_id, &state, item, sizeof(item)) < 0 ||
	    inbox_received_bytes(ib, o->message_id, &bytes) < 0) {
		fprintf(stderr, "gateway inbox show: %s\n", gw_error_last());
		inbox_entry_clear(&e);
		gw_buf_free(&bytes);
		return 1;
	}
	printf("message_id:   %s\nstatus:       %s\nreceived:     %s\ncreated:      %s\n"
	       "from:         %s\ntls_peer:     %s\nto:           %s (%s)\n"
	       "notice:       %s revision %d (%s)\ndigest:       sha256 %s\n"
	       "item:         %s %s\nevidence:     message %zu bytes, receipt %zu bytes "
	       "(gateway inbox export %s --message | --receipt)\n",
	       e.header.message_id, e.status, e.received, e.header.created, e.header.from_orgnr,
	       e.peer_orgnr, e.header.to_orgnr, e.header.service, e.header.notice_id,
	       e.header.revision, e.header.kind, e.digest_b64, inbox_item_state_name(state),
	       state == INBOX_ITEM_MISSING ? "(taken by the case system)" : item, bytes.len,
	       e.receipt.len, e.header.message_id);
	inbox_entry_clear(&e);
	gw_buf_free(&bytes);
	return 0;
}

/* The evidence exactly as stored, to stdout: anyone can verify it again. */
static int cmd_export(inbox *ib, const struct gw_config *cfg, const struct inbox_cli *o)
{
	struct inbox_entry e = { 0 };
	gw_buf bytes = GW_BUF_INIT;
	const gw_buf *out = &bytes;
	int rc;

	(void)cfg;
	if (!o->export_what) {
		fprintf(stderr, "gateway inbox export: say --message or --receipt\n");
		return 2;
	}
	if (strcmp(o->export_what, "message") == 0) {
		rc = inbox_received_bytes(ib, o->message_id, &bytes);
	} else {
		rc = inbox_lookup(ib, o->message_id, &e);
		out = &e.receipt;
	}
	if (rc == 0 && (fwrite(out->data, 1, out->len, stdout) != out->len || fflush(stdout) != 0))
		rc = gw_error_set(GW_ERROR, "cannot write to standard output");
	if (rc < 0)
		fprintf(stderr, "gateway inbox export: %s\n", gw_error_last());
	inbox_entry_clear(&e);
	gw_buf_free(&bytes);
	return rc < 0 ? 1 : 0;
}

static int verify_fail(const char *what, const char *why)
{
	printf("%s: NOT verified: %s\n", what, why);
	return GW_EINVALID;
}

/* The evidence bytes, their digest, their signature, their sender. */
static int verify_message(struct receiver_setup *rs, inbox *ib, const struct inbox_entry *e)
{
	struct verify_result vr = { { 0 }, NULL };
	const char *id = e->header.message_id;
	struct msg_header h;
	gw_buf bytes = GW_BUF_INIT;
	xmlDocPtr doc = NULL;
	char digest[45];
	int rc;

	if (inbox_received_bytes(ib, id, &bytes) < 0)
		rc = verify_fail("message", gw_error_last());
	else if (receipt_digest(bytes.data, bytes.len, digest) < 0 ||
		 strcmp(digest, e->digest_b64) != 0)
		rc = verify_fail("message", "the stored bytes do not match the recorded digest");
	else if (xmlread_parse_valid(&doc, bytes.data, bytes.len, bytes.len, XML_KIND_MESSAGE,
				     id) < 0 ||
		 message_read_header(doc, &h) < 0)
		rc = verify_fail("message", gw_error_last());
	else if (verifier_check(rs->verifier, doc, h.from_orgnr, &vr) < 0)
		rc = verify_fail("message", gw_error_last());
	else if (strcmp(vr.signer_orgnr, e->peer_orgnr) != 0)
		rc = verify_fail("message", "the signer is not the organisation that sent it over TLS");
	else
		rc = printf("message: verified: signed by organisation %s, bytes match the "
			    "recorded digest\n", vr.signer_orgnr) < 0 ? GW_ERROR : 0;
	xmlFreeDoc(doc);
	gw_buf_free(&bytes);
	return rc;
}

/* The receipt we answered with: ours, accepted, about exactly these bytes. */
static int verify_receipt(struct receiver_setup *rs, const struct inbox_entry *e)
{
	struct receipt_info info;
	const char *reason = NULL;
	int rc;

	if (receipt_verify(rs->verifier, e->receipt.data, e->receipt.len, rs->cfg->identity.orgnr,
			   e->header.message_id, e->digest_b64, &info, &reason) < 0)
		rc = verify_fail("receipt", gw_error_last());
	else if (strcmp(info.status, "accepted") != 0)
		rc = verify_fail("receipt", "the stored receipt is not an acceptance");
	else
		rc = printf("receipt: verified: signed by organisation %s, accepted, names this "
			    "MessageId and digest\n", rs->cfg->identity.orgnr) < 0 ? GW_ERROR : 0;
	return rc;
}

static int cmd_verify(inbox *ib, struct receiver_setup *rs, const struct inbox_cli *o)
{
	struct inbox_entry e = { 0 };
	int m, r;

	if (inbox_lookup(ib, o->message_id, &e) < 0) {
		fprintf(stderr, "gateway inbox verify: %s\n", gw_error_last());
		inbox_entry_clear(&e);
		return 1;
	}
	m = verify_message(rs, ib, &e);
	r = verify_receipt(rs, &e);
	inbox_entry_clear(&e);
	if (m == 0 && r == 0) {
		printf("%s: the stored message and our receipt both verify\n", o->message_id);
		return 0;
	}
	printf("%s: verification FAILED (see above); the evidence may have been altered, or a "
	       "certificate has expired or been revoked since\n", o->message_id);
	return 1;
}

static int cmd_list_rs(inbox *ib, struct receiver_setup *rs, const struct inbox_cli *o)
{
	return cmd_list(ib, rs->cfg, o);
}

static int cmd_show_rs(inbox *ib, struct receiver_setup *rs, const struct inbox_cli *o)
{
	return cmd_show(ib, rs->cfg, o);
}

static int cmd_export_rs(inbox *ib, struct receiver_setup *rs, const struct inbox_cli *o)
{
	return cmd_export(ib, rs->cfg, o);
}

static const struct inbox_command {
	const char *name;
	bool needs_id;
	bool needs_crypto; /* schemas, trust, verifier */
	int (*run)(inbox *ib, struct receiver_setup *rs, const struct inbox_cli *o);
} inbox_commands[] = {
	{ "list", false, false, cmd_list_rs },
	{ "show", true, false, cmd_show_rs },
	{ "verify", true, true, cmd_verify },
	{ "export", true, false, cmd_export_rs },
};

static const struct inbox_command *command_find(const struct inbox_cli *o)
{
	for (size_t i = 0; i < sizeof(inbox_commands) / sizeof(inbox_commands[0]); i++) {
		if (strcmp(inbox_commands[i].name, o->command) != 0)
			continue;
		if (inbox_commands[i].needs_id != (o->message_id != NULL)) {
			fprintf(stderr, "gateway inbox %s: %s\n", o->command,
				inbox_commands[i].needs_id ? "a MessageId is required"
							   : "takes no MessageId");
			return NULL;
		}
		return &inbox_commands[i];
	}
	fprintf(stderr, "gateway inbox: unknown command '%s'\n", o->command);
	return NULL;
}

/* Only what the command needs: the configuration, or everything to verify. */
static int cli_setup(struct receiver_setup *rs, const struct inbox_command *cmd,
		     const struct inbox_cli *o)
{
	if (cmd->needs_crypto)
		return receiver_setup_open(rs, o->config, o->schemas, false);
	memset(rs, 0, sizeof(*rs));
	rs->cfg = calloc(1, sizeof(*rs->cfg));
	if (!rs->cfg)
		return gw_error_set(GW_ENOMEM, "out of memory loading the configuration");
	return config_load(rs->cfg, o->config);
}

static int cli_inbox_open(inbox **ib, const struct config_receiver *rc)
{
	if (!rc->db[0] || access(rc->db, F_OK) != 0)
		return gw_error_set(GW_ENOTFOUND, "no inbox database at '%s' (has the receiver run "
				    "with this configuration?)", rc->db);
	return inbox_open(ib, rc->inbox, rc->db);
}

int inbox_main(int argc, char **argv)
{
	struct inbox_cli o = { NULL, NULL, NULL, NULL, NULL, false };
	const struct inbox_command *cmd;
	struct receiver_setup rs;
	inbox *ib = NULL;
	int code = cli_parse(argc, argv, &o);

	if (code != 0) {
		cli_usage(code == 1 ? stdout : stderr);
		return code == 1 ? 0 : 2;
	}
	if (!(cmd = command_find(&o)))
		return 2;
	if (cli_setup(&rs, cmd, &o) < 0) {
		fprintf(stderr, "gateway inbox: %s\n", gw_error_last());
		receiver_setup_close(&rs);
		return 2;
	}
	if (cli_inbox_open(&ib, &rs.cfg->receiver) < 0) {
		fprintf(stderr, "gateway inbox: %s\n", gw_error_last());
		code = 1;
	} else {
		code = cmd->run(ib, &rs, &o);
	}
	inbox_close(ib);
	receiver_setup_close(&rs);
	return code;
}
