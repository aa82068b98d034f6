/*
 * test_inbox: the receiver's store. New, duplicate and conflicting
 * MessageIds; exactly one inbox item and one row after each crash point the
 * write order allows (simulated by putting files where a crash leaves them);
 * recovery; two processes storing the same MessageIds at once.
 */
#include "testutil.h"
#include "err.h"
#include "inbox.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define ID1 "3f1c2b7a-9d4e-4c1a-8b2f-0e6d5c4b3a21"
#define ID2 "a0b1c2d3-e4f5-4a6b-9c7d-8e9f0a1b2c3d"
#define ID3 "5e6f7a8b-1c2d-4e3f-a4b5-c6d7e8f90a1b"

struct fixture {
	const char *dir;
	char inbox_dir[512];
	char db[512];
	inbox *ib;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	f->dir = tu_tmpdir("inbox");
	snprintf(f->inbox_dir, sizeof(f->inbox_dir), "%s/inbox", f->dir);
	snprintf(f->db, sizeof(f->db), "%s/receiver.db", f->dir);
	assert_int_equal(inbox_open(&f->ib, f->inbox_dir, f->db), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	inbox_close(f->ib);
	tu_rmrf(f->dir);
	free(f);
	return 0;
}

static void entry_make(struct inbox_entry *e, const char *id, const char *digest)
{
	memset(e, 0, sizeof(*e));
	snprintf(e->header.message_id, sizeof(e->header.message_id), "%s", id);
	snprintf(e->header.created, sizeof(e->header.created), "2026-11-20T09:15:02Z");
	snprintf(e->header.from_orgnr, sizeof(e->header.from_orgnr), "974760673");
	snprintf(e->header.to_orgnr, sizeof(e->header.to_orgnr), "958935420");
	snprintf(e->header.service, sizeof(e->header.service), "housing");
	snprintf(e->header.notice_id, sizeof(e->header.notice_id), "KDI-2026-000123");
	e->header.revision = 1;
	snprintf(e->header.kind, sizeof(e->header.kind), "release");
	snprintf(e->digest_b64, sizeof(e->digest_b64), "%s", digest);
	snprintf(e->peer_orgnr, sizeof(e->peer_orgnr), "974760673");
	snprintf(e->received, sizeof(e->received), "2026-11-20T09:15:03.123Z");
	e->received_ms = 1795166103123LL;
	snprintf(e->status, sizeof(e->status), "accepted");
	assert_int_equal(gw_buf_printf(&e->receipt, "<Receipt digest=\"%s\"/>", digest), 0);
}

/* Store id with bytes derived from digest: message "M:digest", item "N:digest". */
static int store(inbox *ib, const char *id, const char *digest, enum inbox_outcome *outcome)
{
	struct inbox_entry e;
	char message[128], item[128];
	int rc;

	entry_make(&e, id, digest);
	snprintf(message, sizeof(message), "M:%s", digest);
	snprintf(item, sizeof(item), "N:%s", digest);
	rc = inbox_store(ib, &e, (const unsigned char *)message, strlen(message),
			 (const unsigned char *)item, strlen(item), outcome);
	inbox_entry_clear(&e);
	return rc;
}

static int count_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static int count_sub(struct fixture *f, const char *sub)
{
	char path[600];

	snprintf(path, sizeof(path), "%s/%s", f->inbox_dir, sub);
	return count_files(path);
}

static void read_sub(struct fixture *f, const char *sub, const char *name, gw_buf *out)
{
	char path[700];

	snprintf(path, sizeof(path), "%s/%s/%s", f->inbox_dir, sub, name);
	tu_read(path, out);
}

/* The received bytes kept as evidence in the row. */
static void read_message(struct fixture *f, const char *id, gw_buf *out)
{
	assert_int_equal(inbox_received_bytes(f->ib, id, out), 0);
}

static void move(struct fixture *f, const char *from, const char *to, const char *name)
{
	char a[700], b[700];

	snprintf(a, sizeof(a), "%s/%s/%s", f->inbox_dir, from, name);
	snprintf(b, sizeof(b), "%s/%s/%s", f->inbox_dir, to, name);
	assert_int_equal(rename(a, b), 0);
}

static void test_store_new_makes_item_evidence_and_row(void **state)
{
	struct fixture *f = *state;
	struct inbox_entry e = { 0 };
	enum inbox_outcome outcome;
	gw_buf buf = GW_BUF_INIT;

	assert_int_equal(store(f->ib, ID1, "digest-one", &outcome), 0);
	assert_int_equal(outcome, INBOX_STORED);
	assert_int_equal(count_sub(f, "new"), 1);
	assert_int_equal(count_sub(f, "tmp"), 0);
	read_sub(f, "new", ID1 ".xml", &buf);
	assert_string_equal((char *)buf.data, "N:digest-one");
	read_message(f, ID1, &buf);
	assert_int_equal(buf.len, 12);
	assert_memory_equal(buf.data, "M:digest-one", 12);

	assert_int_equal(inbox_lookup(f->ib, ID1, &e), 0);
	assert_string_equal(e.digest_b64, "digest-one");
	assert_string_equal(e.header.notice_id, "KDI-2026-000123");
	assert_string_equal(e.status, "accepted");
	assert_string_equal((char *)e.receipt.data, "<Receipt digest=\"digest-one\"/>");
	inbox_entry_clear(&e);
	gw_buf_free(&buf);

	/* The database holds evidence: nobody but the receiver reads it. */
	struct stat db_stat;
	assert_int_equal(stat(f->db, &db_stat), 0);
	assert_int_equal(db_stat.st_mode & 077, 0);
}

static void test_duplicate_stores_nothing_twice(void **state)
{
	struct fixture *f = *state;
	enum inbox_outcome outcome;
	struct inbox_entry e;
	gw_buf buf = GW_BUF_INIT;

	assert_int_equal(store(f->ib, ID1, "digest-one", &outcome), 0);
	/* A duplicate arrives with a receipt of its own: the first one stays. */
	entry_make(&e, ID1, "digest-one");
	gw_buf_reset(&e.receipt);
	gw_buf_puts(&e.receipt, "<Receipt second/>");
	assert_int_equal(inbox_store(f->ib, &e, (const unsigned char *)"M:digest-one", 12,
				     (const unsigned char *)"N:digest-one", 12, &outcome), 0);
	inbox_entry_clear(&e);
	assert_int_equal(outcome, INBOX_DUPLICATE);
	assert_int_equal(count_sub(f, "new"), 1);
	assert_int_equal(inbox_lookup(f->ib, ID1, &e), 0);
	assert_string_equal((char *)e.receipt.data, "<Receipt digest=\"digest-one\"/>");
	inbox_entry_clear(&e);
	read_message(f, ID1, &buf);
	assert_memory_equal(buf.data, "M:digest-one", 12);
	gw_buf_free(&buf);
}

static void test_other_digest_is_a_conflict(void **state)
{
	struct fixture *f = *state;
	enum inbox_outcome outcome;
	struct inbox_entry e = { 0 };
	gw_buf buf = GW_BUF_INIT;

	assert_int_equal(store(f->ib, ID1, "digest-one", &outcome), 0);
	assert_int_equal(store(f->ib, ID1, "digest-two", &outcome), 0);
	assert_int_equal(outcome, INBOX_CONFLICT);
	assert_int_equal(inbox_lookup(f->ib, ID1, &e), 0);
	assert_string_equal(e.digest_b64, "digest-one");
	inbox_entry_clear(&e);
	read_sub(f, "new", ID1 ".xml", &buf);
	assert_string_equal((char *)buf.data, "N:digest-one");
	read_message(f, ID1, &buf);
	assert_memory_equal(buf.data, "M:digest-one", 12);
	assert_int_equal(count_sub(f, "new"), 1);
	gw_buf_free(&buf);
}

/* Crash before COMMIT: files written, no row; the resend stores it once. */
static void test_crash_before_commit_then_resend(void **state)
{
	struct fixture *f = *state;
	enum inbox_outcome outcome;
	char path[700];

	snprintf(path, sizeof(path), "%s/tmp/%s.xml", f->inbox_dir, ID1);
	tu_write(path, "N:digest-one", 12);
	assert_int_equal(store(f->ib, ID1, "digest-one", &outcome), 0);
	assert_int_equal(outcome, INBOX_STORED);
	assert_int_equal(count_sub(f, "new"), 1);
	assert_int_equal(count_sub(f, "tmp"), 0);
}

/* An item already in new/ without a row (older write order, or by hand). */
static void test_item_in_new_without_row_is_not_duplicated(void **state)
{
	struct fixture *f = *state;
	int published, discarded;
	enum inbox_outcome outcome;
	struct inbox_entry e = { 0 };
	gw_buf buf = GW_BUF_INIT;
	char path[700];

	snprintf(path, sizeof(path), "%s/new/%s.xml", f->inbox_dir, ID1);
	tu_write(path, "N:digest-one", 12);
	assert_int_equal(store(f->ib, ID1, "digest-one", &outcome), 0);
	assert_int_equal(outcome, INBOX_STORED);
	assert_int_equal(count_sub(f, "new"), 1);
	assert_int_equal(count_sub(f, "tmp"), 0);
	assert_int_equal(inbox_lookup(f->ib, ID1, &e), 0);
	inbox_entry_clear(&e);

	/* Already read by the case system (in cur/, flags and all) when the
	 * receiver starts (its recovery notes it): still no second copy. */
	move(f, "new", "cur", ID1 ".xml");
	snprintf(path, sizeof(path), "%s/cur/%s.xml:2,S", f->inbox_dir, ID2);
	tu_write(path, "N:digest-two", 12);
	assert_int_equal(inbox_recover(f->ib, &published, &discarded), 0);
	assert_int_equal(store(f->ib, ID2, "digest-two", &outcome), 0);
	assert_int_equal(outcome, INBOX_STORED);
	assert_int_equal(count_sub(f, "new"), 0);
	assert_int_equal(count_sub(f, "cur"), 2);

	/* Other bytes under that name with no record: replaced by the real one. */
	snprintf(path, sizeof(path), "%s/new/%s.xml", f->inbox_dir, ID3);
	tu_write(path, "N:something-else", 16);
	assert_int_equal(store(f->ib, ID3, "digest-three", &outcome), 0);
	assert_int_equal(outcome, INBOX_STORED);
	assert_int_equal(count_sub(f, "new"), 1);
	read_sub(f, "new", ID3 ".xml", &buf);
	assert_string_equal((char *)buf.data, "N:digest-three");
	gw_buf_free(&buf);
}

/* Crash after COMMIT, before the move into new/. */
static void test_committed_item_left_in_tmp_is_published(void **state)
{
	struct fixture *f = *state;
	enum inbox_outcome outcome;
	enum inbox_item_state where;
	int published, discarded;
	char path[700];

	assert_int_equal(store(f->ib, ID1, "digest-one", &outcome), 0);
	move(f, "new", "tmp", ID1 ".xml");
	assert_int_equal(inbox_item_locate(f->ib, ID1, &where, path, sizeof(path)), 0);
	assert_int_equal(where, INBOX_ITEM_TMP);

	/* A resend answers duplicate and finishes the move itself. */
	assert_int_equal(store(f->ib, ID1, "digest-one", &outcome), 0);
	assert_int_equal(outcome, INBOX_DUPLICATE);
	assert_int_equal(count_sub(f, "new"), 1);
	assert_int_equal(count_sub(f, "tmp"), 0);

	/* The receiver finds duplicates with inbox_lookup() before it ever
	 * calls inbox_store(): inbox_publish() finishes the move there (a
	 * worker died after its commit; no restart, so no recovery). */
	move(f, "new", "tmp", ID1 ".xml");
	assert_int_equal(inbox_publish(f->ib, ID1), 0);
	assert_int_equal(count_sub(f, "new"), 1);
	assert_int_equal(count_sub(f, "tmp"), 0);
	assert_int_equal(inbox_publish(f->ib, ID1), 0); /* nothing left to move */
	assert_int_equal(count_sub(f, "new"), 1);
	assert_int_equal(inbox_publish(f->ib, "../../etc/passwd"), GW_EINVALID);

	/* Or start-up recovery does, without any resend. */
	move(f, "new", "tmp", ID1 ".xml");
	assert_int_equal(inbox_recover(f->ib, &published, &discarded), 0);
	assert_int_equal(published, 1);
	assert_int_equal(discarded, 0);
	assert_int_equal(count_sub(f, "new"), 1);
	assert_int_equal(count_sub(f, "tmp"), 0);
}

static void test_recover_discards_unacknowledged_leftovers(void **state)
{
	struct fixture *f = *state;
	int published, discarded;
	char path[700];

	snprintf(path, sizeof(path), "%s/tmp/%s.xml", f->inbox_dir, ID2);
	tu_write(path, "N:never-committed", 17);
	snprintf(path, sizeof(path), "%s/tmp/.tmp.999.%s.xml", f->inbox_dir, ID1);
	tu_write(path, "N:half", 6);
	assert_int_equal(inbox_recover(f->ib, &published, &discarded), 0);
	assert_int_equal(published, 0);
	assert_int_equal(discarded, 2);
	assert_int_equal(count_files(f->inbox_dir), 3); /* tmp new cur */
	snprintf(path, sizeof(path), "%s/tmp", f->inbox_dir);
	assert_int_equal(count_files(path), 0);
	assert_int_equal(access(path, F_OK), 0);
	assert_int_equal(count_sub(f, "new"), 0);
}

static void test_locate_follows_the_case_system(void **state)
{
	struct fixture *f = *state;
	enum inbox_outcome outcome;
	enum inbox_item_state where;
	char path[700], from[700], to[700];

	assert_int_equal(store(f->ib, ID1, "digest-one", &outcome), 0);
	assert_int_equal(inbox_item_locate(f->ib, ID1, &where, path, sizeof(path)), 0);
	assert_int_equal(where, INBOX_ITEM_NEW);
	snprintf(from, sizeof(from), "%s/new/%s.xml", f->inbox_dir, ID1);
	snprintf(to, sizeof(to), "%s/cur/%s.xml:2,S", f->inbox_dir, ID1);
	assert_int_equal(rename(from, to), 0);
	assert_int_equal(inbox_item_locate(f->ib, ID1, &where, path, sizeof(path)), 0);
	assert_int_equal(where, INBOX_ITEM_CUR);
	assert_string_equal(path, to);
	assert_string_equal(inbox_item_state_name(where), "read");
	/* A duplicate after the case system took the item does not bring it back. */
	assert_int_equal(store(f->ib, ID1, "digest-one", &outcome), 0);
	assert_int_equal(outcome, INBOX_DUPLICATE);
	assert_int_equal(count_sub(f, "new"), 0);
	assert_int_equal(unlink(to), 0);
	assert_int_equal(inbox_item_locate(f->ib, ID1, &where, path, sizeof(path)), 0);
	assert_int_equal(where, INBOX_ITEM_MISSING);
}

static void test_message_ids_are_checked_before_paths(void **state)
{
	struct fixture *f = *state;
	enum inbox_outcome outcome;
	struct inbox_entry e = { 0 };
	gw_buf buf = GW_BUF_INIT;

	assert_int_equal(store(f->ib, "../../etc/passwd", "d", &outcome), GW_EINVALID);
	assert_int_equal(store(f->ib, "3F1C2B7A-9D4E-4C1A-8B2F-0E6D5C4B3A21", "d", &outcome),
			 GW_EINVALID);
	assert_int_equal(inbox_lookup(f->ib, "x' OR 1=1 --", &e), GW_EINVALID);
	assert_int_equal(inbox_lookup(f->ib, ID2, &e), GW_ENOTFOUND);
	assert_int_equal(inbox_received_bytes(f->ib, "../x", &buf), GW_EINVALID);
	assert_int_equal(inbox_received_bytes(f->ib, ID2, &buf), GW_ENOTFOUND);
	gw_buf_free(&buf);
}

struct collect {
	int rows;
	char first[37];
};

static int collect_row(const struct inbox_entry *e, void *arg)
{
	struct collect *c = arg;

	if (c->rows++ == 0)
		snprintf(c->first, sizeof(c->first), "%s", e->header.message_id);
	return 0;
}

static void test_list_and_reopen(void **state)
{
	struct fixture *f = *state;
	enum inbox_outcome outcome;
	struct collect c = { 0, "" };

	assert_int_equal(store(f->ib, ID2, "digest-two", &outcome), 0);
	assert_int_equal(store(f->ib, ID1, "digest-one", &outcome), 0);
	inbox_close(f->ib);
	assert_int_equal(inbox_open(&f->ib, f->inbox_dir, f->db), 0);
	assert_int_equal(inbox_list(f->ib, collect_row, &c), 0);
	assert_int_equal(c.rows, 2);
	assert_string_equal(c.first, ID1); /* same time: ordered by MessageId */
}

/* ---- several messages in one group commit ------------------------------ */

struct put_data {
	struct inbox_entry e;
	char message[64], item[64];
};

static void put_make(struct put_data *d, struct inbox_put *p, const char *id, const char *digest)
{
	entry_make(&d->e, id, digest);
	snprintf(d->message, sizeof(d->message), "M:%s", digest);
	snprintf(d->item, sizeof(d->item), "N:%s", digest);
	memset(p, 0, sizeof(*p));
	p->entry = &d->e;
	p->message = (const unsigned char *)d->message;
	p->message_len = strlen(d->message);
	p->item = (const unsigned char *)d->item;
	p->item_len = strlen(d->item);
}

static void test_store_many_answers_each_message(void **state)
{
	struct fixture *f = *state;
	struct put_data d[6];
	struct inbox_put p[6];
	enum inbox_outcome outcome;
	struct collect c = { 0, "" };
	gw_buf buf = GW_BUF_INIT;

	/* ID3 was stored before with other bytes: a conflict, stays as it was. */
	assert_int_equal(store(f->ib, ID3, "digest-old", &outcome), 0);
	put_make(&d[0], &p[0], ID1, "digest-one");
	put_make(&d[1], &p[1], ID2, "digest-two");
	put_make(&d[2], &p[2], ID1, "digest-one");   /* same message twice at once */
	put_make(&d[3], &p[3], ID3, "digest-three"); /* conflict with the stored row */
	put_make(&d[4], &p[4], "not-an-id", "x");    /* refused alone */
	put_make(&d[5], &p[5], ID2, "digest-other"); /* conflict inside the batch */
	assert_int_equal(inbox_store_many(f->ib, p, 6), 0);

	assert_int_equal(p[0].rc, 0);
	assert_int_equal(p[0].outcome, INBOX_STORED);
	assert_int_equal(p[1].rc, 0);
	assert_int_equal(p[1].outcome, INBOX_STORED);
	assert_int_equal(p[2].rc, 0);
	assert_int_equal(p[2].outcome, INBOX_DUPLICATE);
	assert_int_equal(p[3].rc, 0);
	assert_int_equal(p[3].outcome, INBOX_CONFLICT);
	assert_int_equal(p[4].rc, GW_EINVALID);
	assert_non_null(strstr(p[4].error, "not a MessageId"));
	assert_int_equal(p[5].rc, 0);
	assert_int_equal(p[5].outcome, INBOX_CONFLICT);

	assert_int_equal(count_sub(f, "new"), 3);
	assert_int_equal(count_sub(f, "tmp"), 0);
	assert_int_equal(inbox_list(f->ib, collect_row, &c), 0);
	assert_int_equal(c.rows, 3);
	read_sub(f, "new", ID2 ".xml", &buf);
	assert_string_equal((char *)buf.data, "N:digest-two");
	read_message(f, ID3, &buf);
	assert_memory_equal(buf.data, "M:digest-old", 12);
	gw_buf_free(&buf);
	for (int i = 0; i < 6; i++)
		inbox_entry_clear(&d[i].e);
}

/*
 * A batch that rolls back takes its own rows with it, so a duplicate (or a
 * conflict) judged against one of them must not be answered as final: the
 * sender would count a message the receiver never recorded.
 */
static void test_rolled_back_batch_answers_nothing_as_final(void **state)
{
	struct fixture *f = *state;
	struct put_data d[4];
	struct inbox_put p[4];
	struct collect c = { 0, "" };

	put_make(&d[0], &p[0], ID1, "digest-one");
	put_make(&d[1], &p[1], ID1, "digest-one");   /* duplicate of an uncommitted row */
	put_make(&d[2], &p[2], ID1, "digest-other"); /* conflict with it */
	put_make(&d[3], &p[3], ID2, "digest-two");
	p[3].message_len = (size_t)INT_MAX + 1; /* its row cannot be written: rollback */
	assert_int_equal(inbox_store_many(f->ib, p, 4), 0);

	for (int i = 0; i < 4; i++)
		assert_true(p[i].rc < 0);
	assert_int_equal(count_sub(f, "new"), 0);
	assert_int_equal(inbox_list(f->ib, collect_row, &c), 0);
	assert_int_equal(c.rows, 0);

	/* The resend after the 503 is stored, once. */
	inbox_entry_clear(&d[0].e);
	put_make(&d[0], &p[0], ID1, "digest-one");
	assert_int_equal(inbox_store_many(f->ib, p, 1), 0);
	assert_int_equal(p[0].rc, 0);
	assert_int_equal(p[0].outcome, INBOX_STORED);
	assert_int_equal(count_sub(f, "new"), 1);
	assert_int_equal(count_sub(f, "tmp"), 0);
	for (int i = 0; i < 4; i++)
		inbox_entry_clear(&d[i].e);
}

/*
 * Rows in the database as another program sees it: the sqlite3 command, a
 * process of its own (a forked child would share SQLite's in-memory view of
 * the open files). Its close is where a last connection deletes the WAL.
 */
static int rows_seen_elsewhere(const char *db_path)
{
	char cmd[700];
	int n = -1;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "sqlite3 '%s' 'SELECT count(*) FROM received'", db_path);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_int_equal(fscanf(p, "%d", &n), 1);
	assert_int_equal(pclose(p), 0);
	return n;
}

/*
 * A second handle in the same process (a receiver worker has two: its loop
 * and its store thread) must not cost the first its locks: otherwise
 * another process closing its connection takes the database for unused,
 * deletes the WAL, and the commits after that are lost.
 */
static void test_second_handle_keeps_the_first_ones_commits(void **state)
{
	struct fixture *f = *state;
	enum inbox_outcome outcome;
	inbox *second = NULL;

	assert_int_equal(store(f->ib, ID1, "digest-one", &outcome), 0);
	assert_int_equal(inbox_open(&second, f->inbox_dir, f->db), 0);
	assert_int_equal(rows_seen_elsewhere(f->db), 1);
	assert_int_equal(store(f->ib, ID2, "digest-two", &outcome), 0);
	assert_int_equal(store(second, ID3, "digest-three", &outcome), 0);
	assert_int_equal(rows_seen_elsewhere(f->db), 3);
	inbox_close(second);
	assert_int_equal(rows_seen_elsewhere(f->db), 3);
}

/* ---- two processes at once --------------------------------------------- */

#define RACE_IDS 24

static void race_id(int i, char out[37])
{
	snprintf(out, 37, "00000000-0000-4000-8000-%012d", i);
}

/* A child: store every MessageId; exit status = how many it stored itself. */
static int race_child(struct fixture *f, const char *digest)
{
	enum inbox_outcome outcome;
	inbox *ib = NULL;
	char id[37];
	int stored = 0;

	if (inbox_open(&ib, f->inbox_dir, f->db) < 0)
		return 255;
	for (int i = 0; i < RACE_IDS; i++) {
		race_id(i, id);
		if (store(ib, id, digest, &outcome) < 0)
			return 254;
		stored += outcome == INBOX_STORED;
	}
	inbox_close(ib);
	return stored;
}

static int race(struct fixture *f, const char *digest_a, const char *digest_b)
{
	pid_t pids[2];
	int total = 0, status;

	for (int c = 0; c < 2; c++) {
		pids[c] = fork();
		assert_true(pids[c] >= 0);
		if (pids[c] == 0)
			_exit(race_child(f, c ? digest_b : digest_a));
	}
	for (int c = 0; c < 2; c++) {
		assert_int_equal(waitpid(pids[c], &status, 0), pids[c]);
		assert_true(WIFEXITED(status));
		assert_true(WEXITSTATUS(status) <= RACE_IDS);
		total += WEXITSTATUS(status);
	}
	return total;
}

static void test_two_processes_store_each_message_once(void **state)
{
	struct fixture *f = *state;
	struct collect c = { 0, "" };

	assert_int_equal(race(f, "same", "same"), RACE_IDS);
	assert_int_equal(count_sub(f, "new"), RACE_IDS);
	assert_int_equal(count_sub(f, "tmp"), 0);
	assert_int_equal(inbox_list(f->ib, collect_row, &c), 0);
	assert_int_equal(c.rows, RACE_IDS);
}

static void test_two_processes_conflicting_keep_one_consistent_winner(void **state)
{
	struct fixture *f = *state;
	struct inbox_entry e = { 0 };
	gw_buf buf = GW_BUF_INIT;
	char id[37], name[64], want[64];

	assert_int_equal(race(f, "alpha", "bravo"), RACE_IDS);
	assert_int_equal(count_sub(f, "new"), RACE_IDS);
	for (int i = 0; i < RACE_IDS; i++) {
		race_id(i, id);
		assert_int_equal(inbox_lookup(f->ib, id, &e), 0);
		snprintf(name, sizeof(name), "%s.xml", id);
		read_sub(f, "new", name, &buf);
		snprintf(want, sizeof(want), "N:%s", e.digest_b64);
		assert_string_equal((char *)buf.data, want); /* item matches the row */
		read_message(f, id, &buf);
		snprintf(want, sizeof(want), "M:%s", e.digest_b64);
		assert_int_equal(buf.len, strlen(want));
		assert_memory_equal(buf.data, want, buf.len);
	}
	inbox_entry_clear(&e);
	gw_buf_free(&buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_store_new_makes_item_evidence_and_row, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicate_stores_nothing_twice, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rolled_back_batch_answers_nothing_as_final, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_store_many_answers_each_message, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_digest_is_a_conflict, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_before_commit_then_resend, setup, teardown),
		cmocka_unit_test_setup_teardown(test_item_in_new_without_row_is_not_duplicated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_committed_item_left_in_tmp_is_published, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_discards_unacknowledged_leftovers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_locate_follows_the_case_system, setup, teardown),
		cmocka_unit_test_setup_teardown(test_message_ids_are_checked_before_paths, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_and_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_second_handle_keeps_the_first_ones_commits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_processes_store_each_message_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_processes_conflicting_keep_one_consistent_winner, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
