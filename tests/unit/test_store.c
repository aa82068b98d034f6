/*
 * test_store: the SQLite store. Durability settings as the live connection
 * sees them, the message state machine's compare-and-set, earliest-release-
 * first scheduling, crash recovery of "sending", and that attempts and
 * receipts come back exactly as stored. The audit trail: every state
 * change has its row in the same transaction (a rollback leaves neither),
 * the chain verifies, the head file follows each commit, nested
 * transactions (savepoints) keep the chain and the head exact, a relaxed
 * commit's head waits for a durable commit or sync, the table refuses
 * UPDATE and DELETE, a version 1 database is upgraded; the operator moves
 * (retry, cancel) and the read functions for status and the timeliness
 * report.
 */
#include "testutil.h"
#include "store.h"
#include "store_sqlite.h"
#include "err.h"

#include <sqlite3.h>

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NOW INT64_C(1795392000000) /* 2026-11-22T00:00:00Z */

struct fixture {
	char dir[400]; /* a copy: tu_tmpdir's buffer is reused by other tu_ calls */
	char path[512];
	store *st;
};

static int setup(void **state)
{
	static struct fixture f;

	snprintf(f.dir, sizeof(f.dir), "%s", tu_tmpdir("store"));
	snprintf(f.path, sizeof(f.path), "%s/db/sub/gateway.db", f.dir);
	if (store_sqlite_open(&f.st, f.path) != 0) {
		fprintf(stderr, "%s\n", gw_error_last());
		return -1;
	}
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (f->st)
		f->st->ops->close(f->st);
	tu_rmrf(f->dir);
	return 0;
}

static void add_notice(store *st, const char *id, int revision, const char *sha)
{
	struct store_notice n;

	memset(&n, 0, sizeof(n));
	snprintf(n.notice_id, sizeof(n.notice_id), "%s", id);
	n.revision = revision;
	snprintf(n.kind, sizeof(n.kind), "release");
	snprintf(n.content_sha256, sizeof(n.content_sha256), "%s", sha);
	snprintf(n.source_name, sizeof(n.source_name), "%s-r%d.xml", id, revision);
	snprintf(n.sender_orgnr, sizeof(n.sender_orgnr), "974760673");
	snprintf(n.event_date, sizeof(n.event_date), "2026-12-04");
	snprintf(n.person_ref, sizeof(n.person_ref), "0123456789abcdef");
	n.weekend_release = true;
	n.received_ms = NOW;
	assert_int_equal(st->ops->notice_insert(st, &n), 0);
}

static void fill_message(struct store_message *m, const char *mid, const char *nid, int rev,
			 enum msg_state state, const char *date, int64_t created, int64_t next)
{
	memset(m, 0, sizeof(*m));
	snprintf(m->message_id, sizeof(m->message_id), "%s", mid);
	snprintf(m->notice_id, sizeof(m->notice_id), "%s", nid);
	m->revision = rev;
	snprintf(m->kind, sizeof(m->kind), "release");
	snprintf(m->service, sizeof(m->service), "housing");
	snprintf(m->recipient_orgnr, sizeof(m->recipient_orgnr), "958935420");
	snprintf(m->endpoint, sizeof(m->endpoint), "oslo-housing");
	m->state = state;
	snprintf(m->event_date, sizeof(m->event_date), "%s", date);
	m->created_ms = created;
	m->next_attempt_ms = next;
	m->deadline_ms = created + 14 * INT64_C(86400000);
	snprintf(m->digest_b64, sizeof(m->digest_b64), "AAAA");
}

static void add_message(store *st, const char *mid, const char *nid, int rev,
			enum msg_state state, const char *date, int64_t created, int64_t next)
{
	struct store_message m;

	fill_message(&m, mid, nid, rev, state, date, created, next);
	if (state != MSG_HELD)
		assert_int_equal(gw_buf_puts(&m.signed_bytes, "<Message/>"), 0);
	assert_int_equal(st->ops->message_insert(st, &m), 0);
	store_message_clear(&m);
}

static enum msg_state state_of(store *st, const char *mid)
{
	struct store_message m;

	memset(&m, 0, sizeof(m));
	assert_int_equal(st->ops->message_get(st, mid, &m), 0);
	store_message_clear(&m);
	return m.state;
}

/* ---- durability and set-up ---- */

static void test_open_durability_settings(void **state)
{
	struct fixture *f = *state;
	struct store_sqlite_settings s;
	struct stat sb;
	store *again;

	assert_int_equal(store_sqlite_settings(f->st, &s), 0);
	assert_string_equal(s.journal_mode, "wal");
	assert_int_equal(s.synchronous, 2); /* FULL */
	assert_int_equal(s.foreign_keys, 1);
	assert_true(s.busy_timeout_ms > 0);
	assert_int_equal(s.schema_version, 4);
	assert_int_equal(s.temp_store, 2); /* MEMORY */

	assert_int_equal(stat(f->path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);

	/* A second open of an existing file finds the schema and migrates nothing. */
	assert_int_equal(store_sqlite_open(&again, f->path), 0);
	assert_int_equal(store_sqlite_settings(again, &s), 0);
	assert_int_equal(s.schema_version, 4);
	again->ops->close(again);
}

static void test_notices_seen_latest_and_foreign_key(void **state)
{
	store *st = ((struct fixture *)*state)->st;
	struct store_notice n;
	struct store_message m;
	char sha[65];
	int rev = 0;
	bool seen = true;

	assert_int_equal(st->ops->intake_seen(st, "aa", &seen), 0);
	assert_false(seen);
	assert_int_equal(st->ops->notice_latest(st, "KDI-1", &rev, sha), GW_ENOTFOUND);
	add_notice(st, "KDI-1", 1, "aa");
	add_notice(st, "KDI-1", 2, "bb");
	assert_int_equal(st->ops->intake_seen(st, "aa", &seen), 0);
	assert_true(seen);
	assert_int_equal(st->ops->notice_latest(st, "KDI-1", &rev, sha), 0);
	assert_int_equal(rev, 2);
	assert_string_equal(sha, "bb");
	assert_int_equal(st->ops->notice_get(st, "KDI-1", 1, &n), 0);
	assert_string_equal(n.content_sha256, "aa");
	assert_string_equal(n.person_ref, "0123456789abcdef");
	assert_true(n.weekend_release);
	assert_false(n.late_at_intake);
	assert_int_equal(st->ops->notice_get(st, "KDI-1", 3, &n), GW_ENOTFOUND);

	/* Same content twice is refused by the database itself. */
	memset(&n, 0, sizeof(n));
	snprintf(n.notice_id, sizeof(n.notice_id), "KDI-2");
	n.revision = 1;
	snprintf(n.content_sha256, sizeof(n.content_sha256), "aa");
	assert_int_equal(st->ops->notice_insert(st, &n), GW_EEXISTS);

	/* A message needs its notice. */
	fill_message(&m, "m-orphan", "KDI-9", 1, MSG_QUEUED, "", NOW, NOW);
	assert_int_not_equal(st->ops->message_insert(st, &m), 0);
}

/* ---- state machine ---- */

static void test_update_is_compare_and_set(void **state)
{
	store *st = ((struct fixture *)*state)->st;
	struct store_message m;

	add_notice(st, "KDI-1", 1, "aa");
	add_message(st, "m1", "KDI-1", 1, MSG_QUEUED, "2026-12-04", NOW, NOW);

	assert_int_equal(st->ops->message_update(st, "m1", MSG_QUEUED, MSG_SENDING, NULL, -1, 1), 0);
	/* A second worker loses the race: it expected queued. */
	assert_int_equal(st->ops->message_update(st, "m1", MSG_QUEUED, MSG_SENDING, NULL, -1, 1),
			 GW_EINVALID);
	assert_non_null(strstr(gw_error_last(), "is sending, not queued"));
	assert_int_equal(st->ops->message_update(st, "nope", MSG_QUEUED, MSG_SENDING, NULL, -1, 1),
			 GW_ENOTFOUND);

	/* Retry: back to queued with a reason and a later time. */
	assert_int_equal(st->ops->message_update(st, "m1", MSG_SENDING, MSG_QUEUED, "HTTP 503",
						 NOW + 30000, 0),
			 0);
	memset(&m, 0, sizeof(m));
	assert_int_equal(st->ops->message_get(st, "m1", &m), 0);
	assert_int_equal(m.state, MSG_QUEUED);
	assert_string_equal(m.reason, "HTTP 503");
	assert_int_equal(m.next_attempt_ms, NOW + 30000);
	assert_int_equal(m.attempts, 1);
	assert_string_equal((char *)m.signed_bytes.data, "<Message/>");

	assert_int_equal(st->ops->message_update(st, "m1", MSG_QUEUED, MSG_SENDING, NULL, -1, 1), 0);
	assert_int_equal(st->ops->message_update(st, "m1", MSG_SENDING, MSG_DELIVERED, "", -1, 0), 0);
	assert_int_equal(st->ops->message_get(st, "m1", &m), 0);
	assert_int_equal(m.attempts, 2);
	assert_int_equal(m.next_attempt_ms, NOW + 30000); /* -1 kept it */
	assert_string_equal(m.reason, "");

	/* Nothing leaves delivered. */
	assert_int_equal(st->ops->message_update(st, "m1", MSG_DELIVERED, MSG_QUEUED, NULL, NOW, 0),
			 GW_EINVALID);
	assert_non_null(strstr(gw_error_last(), "cannot go from delivered to queued"));
	/* A message being sent cannot be cancelled. */
	assert_int_equal(st->ops->message_update(st, "m1", MSG_SENDING, MSG_CANCELLED, NULL, -1, 0),
			 GW_EINVALID);
	assert_int_equal(state_of(st, "m1"), MSG_DELIVERED);
	store_message_clear(&m);
}

static void test_transition_supersedes_older_revisions_only(void **state)
{
	store *st = ((struct fixture *)*state)->st;
	int changed = -1;

	add_notice(st, "KDI-1", 1, "aa");
	add_notice(st, "KDI-1", 2, "bb");
	add_message(st, "q1", "KDI-1", 1, MSG_QUEUED, "2026-12-04", NOW, NOW);
	add_message(st, "h1", "KDI-1", 1, MSG_HELD, "2026-12-04", NOW, NOW);
	add_message(st, "d1", "KDI-1", 1, MSG_DELIVERED, "2026-12-04", NOW, NOW);
	add_message(st, "q2", "KDI-1", 2, MSG_QUEUED, "2026-12-04", NOW, NOW);

	assert_int_equal(st->ops->begin(st), 0);
	assert_int_equal(st->ops->messages_transition(st, "KDI-1", 2,
						      1u << MSG_QUEUED | 1u << MSG_HELD,
						      MSG_SUPERSEDED, "superseded by revision 2",
						      &changed),
			 0);
	assert_int_equal(st->ops->commit(st), 0);
	assert_int_equal(changed, 2);
	assert_int_equal(state_of(st, "q1"), MSG_SUPERSEDED);
	assert_int_equal(state_of(st, "h1"), MSG_SUPERSEDED);
	assert_int_equal(state_of(st, "d1"), MSG_DELIVERED);
	assert_int_equal(state_of(st, "q2"), MSG_QUEUED);
}

static void test_release_held_attaches_bytes_and_queues(void **state)
{
	struct fixture *f = *state;
	store *st = f->st;
	struct store_message m, got;

	add_notice(st, "N-HELD", 1, "sha-held");
	fill_message(&m, "m-held", "N-HELD", 1, MSG_HELD, "2026-12-04", NOW, 0);
	m.endpoint[0] = m.recipient_orgnr[0] = '\0';
	snprintf(m.reason, sizeof(m.reason), "no endpoint");
	assert_int_equal(st->ops->message_insert(st, &m), 0);

	/* Without bytes or an endpoint a held message stays held. */
	assert_int_equal(st->ops->message_release_held(st, &m), GW_EINVALID);
	assert_int_equal(state_of(st, "m-held"), MSG_HELD);

	snprintf(m.endpoint, sizeof(m.endpoint), "oslo-housing");
	snprintf(m.recipient_orgnr, sizeof(m.recipient_orgnr), "958935420");
	snprintf(m.digest_b64, sizeof(m.digest_b64), "BBBB");
	assert_int_equal(gw_buf_puts(&m.signed_bytes, "<Message>signed</Message>"), 0);
	m.next_attempt_ms = NOW + 5;
	assert_int_equal(st->ops->message_release_held(st, &m), 0);

	memset(&got, 0, sizeof(got));
	assert_int_equal(st->ops->message_get(st, "m-held", &got), 0);
	assert_int_equal(got.state, MSG_QUEUED);
	assert_string_equal(got.reason, "");
	assert_string_equal(got.endpoint, "oslo-housing");
	assert_string_equal(got.recipient_orgnr, "958935420");
	assert_string_equal(got.digest_b64, "BBBB");
	assert_int_equal(got.next_attempt_ms, NOW + 5);
	assert_memory_equal(got.signed_bytes.data, "<Message>signed</Message>", 25);
	store_message_clear(&got);

	/* Only a held message can be released: the second call is refused. */
	assert_true(st->ops->message_release_held(st, &m) < 0);
	store_message_clear(&m);
}

static void test_rollback_discards(void **state)
{
	store *st = ((struct fixture *)*state)->st;
	bool seen = true;

	assert_int_equal(st->ops->begin(st), 0);
	add_notice(st, "KDI-1", 1, "aa");
	/* A begin inside is a nested transaction: its commit is not durable,
	 * the enclosing rollback takes it away too. */
	assert_int_equal(st->ops->begin(st), 0);
	add_notice(st, "KDI-2", 1, "bb");
	assert_int_equal(st->ops->commit(st), 0);
	assert_int_equal(st->ops->rollback(st), 0);
	assert_int_equal(st->ops->intake_seen(st, "aa", &seen), 0);
	assert_false(seen);
	assert_int_equal(st->ops->intake_seen(st, "bb", &seen), 0);
	assert_false(seen);
	assert_int_equal(st->ops->rollback(st), 0); /* harmless when nothing is open */
	assert_int_equal(st->ops->commit(st), GW_EINVALID); /* nothing to commit */
}

/* ---- scheduling ---- */

struct collected {
	char ids[16][37];
	size_t n;
};

static int collect(const struct store_message *m, void *ctx)
{
	struct collected *c = ctx;

	if (c->n < 16)
		snprintf(c->ids[c->n++], sizeof(c->ids[0]), "%s", m->message_id);
	return 0;
}

static void test_due_earliest_release_first(void **state)
{
	store *st = ((struct fixture *)*state)->st;
	struct collected c = { .n = 0 };
	int64_t when = 0;

	assert_int_equal(st->ops->next_due_ms(st, &when), GW_ENOTFOUND);
	add_notice(st, "KDI-1", 1, "aa");
	add_message(st, "late-date", "KDI-1", 1, MSG_QUEUED, "2026-12-10", NOW - 5000, NOW - 5000);
	add_message(st, "undated", "KDI-1", 1, MSG_QUEUED, "", NOW - 9000, NOW - 9000);
	add_message(st, "early-b", "KDI-1", 1, MSG_QUEUED, "2026-12-04", NOW - 1000, NOW - 1000);
	add_message(st, "early-a", "KDI-1", 1, MSG_QUEUED, "2026-12-04", NOW - 2000, NOW - 2000);
	add_message(st, "not-due", "KDI-1", 1, MSG_QUEUED, "2026-12-01", NOW - 8000, NOW + 60000);
	add_message(st, "held", "KDI-1", 1, MSG_HELD, "2026-11-30", NOW - 8000, NOW - 8000);
	add_message(st, "done", "KDI-1", 1, MSG_DELIVERED, "2026-11-30", NOW - 8000, NOW - 8000);

	assert_int_equal(st->ops->messages_due(st, NOW, 10, collect, &c), 0);
	assert_int_equal(c.n, 4);
	assert_string_equal(c.ids[0], "early-a");
	assert_string_equal(c.ids[1], "early-b");
	assert_string_equal(c.ids[2], "late-date");
	assert_string_equal(c.ids[3], "undated");

	c.n = 0;
	assert_int_equal(st->ops->messages_due(st, NOW, 2, collect, &c), 0);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.ids[1], "early-b");

	c.n = 0;
	assert_int_equal(st->ops->messages_due(st, NOW + 60000, 1, collect, &c), 0);
	assert_string_equal(c.ids[0], "not-due"); /* now due, and earliest date */

	assert_int_equal(st->ops->next_due_ms(st, &when), 0);
	assert_int_equal(when, NOW - 9000);
}

static int take_for_sending(const struct store_message *m, void *ctx)
{
	store *st = ctx;

	assert_int_equal(m->signed_bytes.len, strlen("<Message/>"));
	return st->ops->message_update(st, m->message_id, MSG_QUEUED, MSG_SENDING, NULL, -1, 1);
}

static void test_due_callback_may_update_and_recover_sending(void **state)
{
	store *st = ((struct fixture *)*state)->st;
	struct store_counts counts;
	struct store_message m;
	bool reached = false;
	int recovered = -1, before;

	add_notice(st, "KDI-1", 1, "aa");
	add_message(st, "a", "KDI-1", 1, MSG_QUEUED, "2026-12-04", NOW, NOW);
	add_message(st, "b", "KDI-1", 1, MSG_QUEUED, "2026-12-05", NOW, NOW);
	add_message(st, "c", "KDI-1", 1, MSG_HELD, "2026-12-05", NOW, NOW);
	assert_int_equal(st->ops->messages_due(st, NOW, 10, take_for_sending, st), 0);
	assert_int_equal(st->ops->counts(st, &counts), 0);
	assert_int_equal(counts.by_state[MSG_SENDING], 2);
	assert_int_equal(counts.by_state[MSG_HELD], 1);
	assert_int_equal(counts.by_state[MSG_QUEUED], 0);

	memset(&m, 0, sizeof(m));
	assert_int_equal(st->ops->message_get(st, "a", &m), 0);
	before = m.attempts;
	store_message_clear(&m);

	/* A crash while sending: at start, sending goes back to queued. */
	assert_int_equal(st->ops->recover_sending(st, &recovered), 0);
	assert_int_equal(recovered, 2);
	assert_int_equal(state_of(st, "a"), MSG_QUEUED);
	assert_int_equal(st->ops->counts(st, &counts), 0);
	assert_int_equal(counts.by_state[MSG_QUEUED], 2);
	/* The interrupted attempt counts, and may have reached the partner. */
	memset(&m, 0, sizeof(m));
	assert_int_equal(st->ops->message_get(st, "a", &m), 0);
	assert_int_equal(m.attempts, before + 1);
	store_message_clear(&m);
	assert_int_equal(st->ops->message_reached(st, "a", &reached), 0);
	assert_true(reached);
}

/* ---- attempts, receipts, lists ---- */

static int find_second_attempt(const struct store_attempt *a, void *ctx)
{
	struct store_attempt *seen = ctx;

	if (a->started_ms == NOW + 1)
		*seen = *a;
	return 0;
}

static void test_attempts_and_receipts_round_trip(void **state)
{
	store *st = ((struct fixture *)*state)->st;
	static const unsigned char bytes[] = { '<', 'R', 0, 0xff, '>', '\n' };
	struct store_attempt a, got;
	struct store_receipt r, back;
	bool reached = true;

	add_notice(st, "KDI-1", 1, "aa");
	add_message(st, "m1", "KDI-1", 1, MSG_QUEUED, "2026-12-04", NOW, NOW);

	memset(&a, 0, sizeof(a));
	snprintf(a.message_id, sizeof(a.message_id), "m1");
	a.started_ms = NOW;
	a.duration_ms = 120;
	a.http_status = 503;
	snprintf(a.error, sizeof(a.error), "service unavailable");
	snprintf(a.outcome, sizeof(a.outcome), "retry");
	assert_int_equal(st->ops->attempt_insert(st, &a), 0);
	/* A 503 reached nobody's inbox... */
	assert_int_equal(st->ops->message_reached(st, "m1", &reached), 0);
	assert_false(reached);
	a.reached = true; /* ...the next request went out whole */
	a.started_ms = NOW + 1;
	a.http_status = 200;
	a.error[0] = '\0';
	snprintf(a.outcome, sizeof(a.outcome), "delivered");
	assert_int_equal(st->ops->attempt_insert(st, &a), 0);
	assert_int_equal(st->ops->message_reached(st, "m1", &reached), 0);
	assert_true(reached);
	memset(&got, 0, sizeof(got));
	assert_int_equal(st->ops->attempts_list(st, "m1", find_second_attempt, &got), 0);
	assert_int_equal(got.http_status, 200);
	assert_string_equal(got.outcome, "delivered");
	assert_int_equal(got.duration_ms, 120);

	memset(&r, 0, sizeof(r));
	memset(&back, 0, sizeof(back));
	assert_int_equal(st->ops->receipt_get(st, "m1", &back), GW_ENOTFOUND);
	snprintf(r.message_id, sizeof(r.message_id), "m1");
	snprintf(r.status, sizeof(r.status), "accepted");
	r.verified = true;
	r.received_ms = NOW + 2;
	assert_int_equal(gw_buf_put(&r.bytes, bytes, sizeof(bytes)), 0);
	assert_int_equal(st->ops->receipt_insert(st, &r), 0);
	assert_int_equal(st->ops->receipt_get(st, "m1", &back), 0);
	assert_string_equal(back.status, "accepted");
	assert_true(back.verified);
	assert_int_equal(back.received_ms, NOW + 2);
	assert_int_equal(back.bytes.len, sizeof(bytes));
	assert_memory_equal(back.bytes.data, bytes, sizeof(bytes));
	store_receipt_clear(&r);
	store_receipt_clear(&back);
}

static void test_list_filters(void **state)
{
	store *st = ((struct fixture *)*state)->st;
	struct store_filter f = { .state = -1, .notice_id = NULL };
	struct collected c = { .n = 0 };

	add_notice(st, "KDI-1", 1, "aa");
	add_notice(st, "KDI-2", 1, "bb");
	add_message(st, "a", "KDI-1", 1, MSG_QUEUED, "2026-12-04", NOW, NOW);
	add_message(st, "b", "KDI-1", 1, MSG_HELD, "2026-12-04", NOW + 1, NOW);
	add_message(st, "c", "KDI-2", 1, MSG_HELD, "2026-12-04", NOW + 2, NOW);
	assert_int_equal(st->ops->messages_list(st, &f, collect, &c), 0);
	assert_int_equal(c.n, 3);
	c.n = 0;
	f.state = MSG_HELD;
	assert_int_equal(st->ops->messages_list(st, &f, collect, &c), 0);
	assert_int_equal(c.n, 2);
	c.n = 0;
	f.notice_id = "KDI-1";
	assert_int_equal(st->ops->messages_list(st, &f, collect, &c), 0);
	assert_int_equal(c.n, 1);
	assert_string_equal(c.ids[0], "b");
	c.n = 0;
	f.state = -1;
	assert_int_equal(st->ops->messages_list(st, &f, collect, &c), 0);
	assert_int_equal(c.n, 2);
}

/* ---- a large queue ---- */

struct order_check {
	char last_date[11];
	int64_t now;
	size_t n;
	bool ok;
};

static int check_order(const struct store_message *m, void *ctx)
{
	struct order_check *o = ctx;
	bool undated_last = o->last_date[0] == '\0' && o->n > 0;

	if (m->next_attempt_ms > o->now || m->state != MSG_QUEUED)
		o->ok = false;
	if (m->event_date[0] && (undated_last || strcmp(m->event_date, o->last_date) < 0))
		o->ok = false;
	snprintf(o->last_date, sizeof(o->last_date), "%s", m->event_date);
	o->n++;
	return 0;
}

static void test_scheduling_smoke_100k(void **state)
{
	store *st = ((struct fixture *)*state)->st;
	struct order_check o = { .last_date = "", .now = NOW, .n = 0, .ok = true };
	struct store_counts counts;
	int64_t when;

	add_notice(st, "KDI-BULK", 1, "aa");
	assert_int_equal(st->ops->begin(st), 0);
	for (int i = 0; i < 100000; i++) {
		char mid[37], date[11];
		/* 300 release dates; two in three messages are waiting for a retry. */
		int day = i % 300;
		int64_t next = i % 3 ? NOW + 1000 + i : NOW - i;
		snprintf(mid, sizeof(mid), "bulk-%06d", i);
		snprintf(date, sizeof(date), "2027-%02d-%02d", 1 + day / 28, 1 + day % 28);
		add_message(st, mid, "KDI-BULK", 1, MSG_QUEUED, i % 1000 == 999 ? "" : date,
			    NOW - 100000 + i, next);
	}
	assert_int_equal(st->ops->commit(st), 0);

	assert_int_equal(st->ops->messages_due(st, NOW, 500, check_order, &o), 0);
	assert_int_equal(o.n, 500);
	assert_true(o.ok);
	assert_true(strcmp(o.last_date, "2027-01-28") < 0); /* the earliest dates only */
	assert_int_equal(st->ops->next_due_ms(st, &when), 0);
	assert_int_equal(when, NOW - 99999);
	assert_int_equal(st->ops->counts(st, &counts), 0);
	assert_int_equal(counts.by_state[MSG_QUEUED], 100000);
}

/* ---- audit trail ---- */

struct rows {
	struct audit_row v[64];
	size_t n;
};

static int collect_row(const struct audit_row *row, void *ctx)
{
	struct rows *r = ctx;

	if (r->n < 64)
		r->v[r->n++] = *row;
	return 0;
}

static void walk(store *st, struct rows *r)
{
	r->n = 0;
	assert_int_equal(st->ops->audit_walk(st, collect_row, r), 0);
}

static void expect_row(const struct audit_row *row, const char *event, const char *subject,
		       const char *from, const char *to)
{
	assert_string_equal(row->event, event);
	assert_string_equal(row->subject, subject);
	assert_string_equal(row->from_state, from);
	assert_string_equal(row->to_state, to);
	assert_false(row->malformed);
}

static void expect_intact(store *st, int64_t rows)
{
	struct audit_check c;
	char where[600];

	assert_int_equal(audit_verify(st, NULL, &c, where, sizeof(where)), 0);
	assert_true(c.intact);
	assert_int_equal(c.last.seq, rows);
}

static void test_audit_row_for_every_change(void **state)
{
	store *st = ((struct fixture *)*state)->st;
	struct store_message m;
	struct rows r;
	int n = 0;

	add_notice(st, "KDI-A", 1, "sha-a");              /* 1 notice */
	add_message(st, "a1", "KDI-A", 1, MSG_QUEUED, "2026-12-04", NOW, NOW); /* 2 */
	fill_message(&m, "a2", "KDI-A", 1, MSG_HELD, "2026-12-04", NOW, 0);
	snprintf(m.reason, sizeof(m.reason), "no consent");
	assert_int_equal(st->ops->message_insert(st, &m), 0); /* 3 */
	/* time only: no row */
	assert_int_equal(st->ops->message_update(st, "a1", MSG_QUEUED, MSG_QUEUED, "", NOW + 5, 0),
			 0);
	assert_int_equal(st->ops->message_update(st, "a1", MSG_QUEUED, MSG_SENDING, NULL, -1, 1),
			 0); /* 4 */
	/* a refused compare-and-set leaves no row */
	assert_int_equal(st->ops->message_update(st, "a1", MSG_QUEUED, MSG_SENDING, NULL, -1, 1),
			 GW_EINVALID);
	assert_int_equal(st->ops->recover_sending(st, &n), 0); /* 5 */
	assert_int_equal(n, 1);
	snprintf(m.endpoint, sizeof(m.endpoint), "oslo-housing");
	assert_int_equal(gw_buf_puts(&m.signed_bytes, "<Message/>"), 0);
	assert_int_equal(st->ops->message_release_held(st, &m), 0); /* 6 */
	store_message_clear(&m);
	add_notice(st, "KDI-A", 2, "sha-a2");              /* 7 */
	assert_int_equal(st->ops->messages_transition(st, "KDI-A", 2, 1u << MSG_QUEUED,
						      MSG_SUPERSEDED, "superseded by revision 2",
						      &n),
			 0); /* 8, 9 */
	assert_int_equal(n, 2);
	assert_int_equal(st->ops->audit_append(st, "config-reload", "", "file=gateway.conf"), 0);

	walk(st, &r);
	assert_int_equal(r.n, 10);
	expect_row(&r.v[0], "notice", "KDI-A", "", "");
	assert_string_equal(r.v[0].detail, "revision=1 kind=release sha256=sha-a");
	expect_row(&r.v[1], "created", "a1", "", "queued");
	expect_row(&r.v[2], "created", "a2", "", "held");
	assert_non_null(strstr(r.v[2].detail, "reason=no consent"));
	expect_row(&r.v[3], "state", "a1", "queued", "sending");
	expect_row(&r.v[4], "recovered", "a1", "sending", "queued");
	expect_row(&r.v[5], "released", "a2", "held", "queued");
	expect_row(&r.v[6], "notice", "KDI-A", "", "");
	expect_row(&r.v[7], "state", "a1", "queued", "superseded");
	expect_row(&r.v[8], "state", "a2", "queued", "superseded");
	assert_string_equal(r.v[8].detail, "superseded by revision 2");
	expect_row(&r.v[9], "config-reload", "", "", "");
	for (size_t i = 0; i < r.n; i++) {
		assert_int_equal(r.v[i].seq, (int64_t)i + 1);
		assert_string_equal(r.v[i].prev_hash, i ? r.v[i - 1].hash : audit_genesis);
	}
	expect_intact(st, 10);
}

static void test_audit_rolls_back_with_the_change(void **state)
{
	store *st = ((struct fixture *)*state)->st;
	struct audit_head head;
	struct rows r;
	char where[600];

	add_notice(st, "KDI-B", 1, "sha-b");
	assert_int_equal(st->ops->begin(st), 0);
	add_message(st, "b1", "KDI-B", 1, MSG_QUEUED, "2026-12-04", NOW, NOW);
	assert_int_equal(st->ops->audit_append(st, "retry", "b1", "uid=0"), 0);
	/* Inside a transaction, nothing is published yet. */
	assert_int_equal(st->ops->audit_recorded_head(st, &head, where, sizeof(where)), 0);
	assert_int_equal(head.seq, 1);
	assert_int_equal(st->ops->rollback(st), 0);
	walk(st, &r);
	assert_int_equal(r.n, 1);

	/* A committed transaction moves the recorded head to its last row. */
	assert_int_equal(st->ops->begin(st), 0);
	add_message(st, "b1", "KDI-B", 1, MSG_QUEUED, "2026-12-04", NOW, NOW);
	assert_int_equal(st->ops->message_update(st, "b1", MSG_QUEUED, MSG_SENDING, NULL, -1, 1), 0);
	assert_int_equal(st->ops->commit(st), 0);
	walk(st, &r);
	assert_int_equal(r.n, 3);
	assert_int_equal(st->ops->audit_recorded_head(st, &head, where, sizeof(where)), 0);
	assert_int_equal(head.seq, 3);
	assert_string_equal(head.hash, r.v[2].hash);
	assert_non_null(strstr(where, "gateway.db.audit-head"));
	expect_intact(st, 3);
}

static bool seen_sha(store *st, const char *sha)
{
	bool seen = false;

	assert_int_equal(st->ops->intake_seen(st, sha, &seen), 0);
	return seen;
}

static int64_t recorded_seq(store *st)
{
	struct audit_head head;
	char where[600];

	assert_int_equal(st->ops->audit_recorded_head(st, &head, where, sizeof(where)), 0);
	return head.seq;
}

/*
 * Nested transactions (intake's notice per file inside a chunk's
 * transaction): a nested commit keeps its rows for the enclosing commit, a
 * nested rollback takes away its own rows and nothing else, and the head
 * published after the enclosing commit is the last row that stayed, never
 * one rolled back, so the chain and the head file verify.
 */
static void test_nested_commit_and_rollback_keep_the_chain(void **state)
{
	store *st = ((struct fixture *)*state)->st;
	struct audit_head head;
	struct rows r;
	char where[600];

	add_notice(st, "KDI-N0", 1, "sha-n0"); /* row 1, own transaction */
	assert_int_equal(recorded_seq(st), 1);

	assert_int_equal(st->ops->begin(st), 0);
	add_notice(st, "KDI-NA", 1, "sha-na"); /* row 2 */
	assert_int_equal(st->ops->begin(st), 0);
	add_notice(st, "KDI-NB", 1, "sha-nb"); /* row 3, rolled back */
	add_message(st, "nb1", "KDI-NB", 1, MSG_QUEUED, "2026-12-04", NOW, NOW);
	assert_int_equal(st->ops->rollback(st), 0);
	assert_true(seen_sha(st, "sha-na"));
	assert_false(seen_sha(st, "sha-nb"));
	assert_int_equal(st->ops->begin(st), 0);
	add_notice(st, "KDI-NC", 1, "sha-nc"); /* row 3 again: follows row 2 */
	add_message(st, "nc1", "KDI-NC", 1, MSG_QUEUED, "2026-12-04", NOW, NOW); /* row 4 */
	assert_int_equal(st->ops->commit(st), 0);
	assert_int_equal(recorded_seq(st), 1); /* nothing published inside */
	/* The last nested transaction rolls back: the head stays at row 4. */
	assert_int_equal(st->ops->begin(st), 0);
	add_notice(st, "KDI-ND", 1, "sha-nd");
	assert_int_equal(st->ops->rollback(st), 0);
	assert_int_equal(st->ops->commit(st), 0);

	assert_false(seen_sha(st, "sha-nb"));
	assert_true(seen_sha(st, "sha-nc"));
	assert_false(seen_sha(st, "sha-nd"));
	walk(st, &r);
	assert_int_equal(r.n, 4);
	expect_row(&r.v[1], "notice", "KDI-NA", "", "");
	expect_row(&r.v[2], "notice", "KDI-NC", "", "");
	expect_row(&r.v[3], "created", "nc1", "", "queued");
	assert_int_equal(st->ops->audit_recorded_head(st, &head, where, sizeof(where)), 0);
	assert_int_equal(head.seq, 4);
	assert_string_equal(head.hash, r.v[3].hash);
	expect_intact(st, 4);

	/* Only a nested transaction added rows, and it rolled back: the
	 * enclosing commit publishes nothing and the head file stays right. */
	assert_int_equal(st->ops->begin(st), 0);
	assert_int_equal(st->ops->begin(st), 0);
	add_notice(st, "KDI-NE", 1, "sha-ne");
	assert_int_equal(st->ops->rollback(st), 0);
	assert_int_equal(st->ops->commit(st), 0);
	assert_int_equal(recorded_seq(st), 4);
	expect_intact(st, 4);

	/* Two levels deep, and the enclosing rollback takes everything. */
	assert_int_equal(st->ops->begin(st), 0);
	add_notice(st, "KDI-NF", 1, "sha-nf");
	assert_int_equal(st->ops->begin(st), 0);
	assert_int_equal(st->ops->begin(st), 0);
	add_notice(st, "KDI-NG", 1, "sha-ng");
	assert_int_equal(st->ops->commit(st), 0);
	assert_int_equal(st->ops->commit(st), 0);
	assert_int_equal(st->ops->rollback(st), 0);
	assert_false(seen_sha(st, "sha-nf"));
	assert_false(seen_sha(st, "sha-ng"));
	assert_int_equal(recorded_seq(st), 4);
	add_notice(st, "KDI-NH", 1, "sha-nh"); /* row 5 follows row 4 */
	assert_int_equal(recorded_seq(st), 5);
	expect_intact(st, 5);
}

static int synchronous_now(store *st)
{
	struct store_sqlite_settings set;

	assert_int_equal(store_sqlite_settings(st, &set), 0);
	return set.synchronous;
}

/*
 * A relaxed transaction (the dispatch pass) commits with synchronous=NORMAL
 * and FULL is back afterwards; its audit rows are not published until a
 * durable commit or sync() has made them durable: a durable commit with
 * rows of its own, one without (the store syncs the log itself), sync(),
 * and close().
 */
static void test_relaxed_commit_publishes_after_a_durable_one(void **state)
{
	struct fixture *f = *state;
	store *st = f->st;
	struct rows r;

	add_notice(st, "KDI-R", 1, "sha-r"); /* row 1 */
	add_message(st, "r1", "KDI-R", 1, MSG_QUEUED, "2026-12-04", NOW, NOW); /* row 2 */
	add_message(st, "r2", "KDI-R", 1, MSG_QUEUED, "2026-12-04", NOW, NOW); /* row 3 */
	assert_int_equal(recorded_seq(st), 3);
	assert_int_equal(st->ops->sync(st), 0); /* nothing to do */

	/* Relaxed, then sync(). */
	assert_int_equal(st->ops->begin_relaxed(st), 0);
	assert_int_equal(synchronous_now(st), 1); /* NORMAL inside */
	assert_int_equal(st->ops->message_update(st, "r1", MSG_QUEUED, MSG_SENDING, NULL, -1, 0),
			 0); /* row 4 */
	assert_int_equal(st->ops->commit(st), 0);
	assert_int_equal(synchronous_now(st), 2); /* FULL again */
	assert_int_equal(state_of(st, "r1"), MSG_SENDING);
	assert_int_equal(recorded_seq(st), 3); /* not durable yet: not published */
	assert_int_equal(st->ops->sync(st), 0);
	assert_int_equal(recorded_seq(st), 4);
	expect_intact(st, 4);

	/* Relaxed, then a durable commit with rows of its own: its head covers both. */
	assert_int_equal(st->ops->begin_relaxed(st), 0);
	assert_int_equal(st->ops->message_update(st, "r2", MSG_QUEUED, MSG_SENDING, NULL, -1, 0),
			 0); /* row 5 */
	assert_int_equal(st->ops->commit(st), 0);
	assert_int_equal(recorded_seq(st), 4);
	assert_int_equal(st->ops->message_update(st, "r2", MSG_SENDING, MSG_QUEUED, "retry", NOW,
						 1),
			 0); /* row 6, durable */
	assert_int_equal(recorded_seq(st), 6);
	expect_intact(st, 6);

	/* Relaxed, then a durable commit that wrote nothing (so synced nothing):
	 * the store syncs the log itself before it publishes. */
	assert_int_equal(st->ops->begin_relaxed(st), 0);
	assert_int_equal(st->ops->message_update(st, "r2", MSG_QUEUED, MSG_SENDING, NULL, -1, 0),
			 0); /* row 7 */
	assert_int_equal(st->ops->commit(st), 0);
	assert_int_equal(recorded_seq(st), 6);
	assert_int_equal(st->ops->begin(st), 0);
	assert_int_equal(st->ops->commit(st), 0);
	assert_int_equal(recorded_seq(st), 7);
	expect_intact(st, 7);

	/* A relaxed rollback leaves FULL and nothing to publish. */
	assert_int_equal(st->ops->begin_relaxed(st), 0);
	assert_int_equal(st->ops->audit_append(st, "config-reload", "", "file=x"), 0);
	assert_int_equal(st->ops->rollback(st), 0);
	assert_int_equal(synchronous_now(st), 2);
	assert_int_equal(st->ops->sync(st), 0);
	assert_int_equal(recorded_seq(st), 7);

	/* Inside an open transaction begin_relaxed is nested: the enclosing
	 * durable commit publishes. */
	assert_int_equal(st->ops->begin(st), 0);
	assert_int_equal(st->ops->begin_relaxed(st), 0);
	assert_int_equal(synchronous_now(st), 2);
	assert_int_equal(st->ops->audit_append(st, "config-reload", "", "file=y"), 0); /* row 8 */
	assert_int_equal(st->ops->commit(st), 0);
	assert_int_equal(st->ops->commit(st), 0);
	assert_int_equal(recorded_seq(st), 8);

	/* Relaxed, nested inside it, then close: close makes it durable and publishes. */
	assert_int_equal(st->ops->begin_relaxed(st), 0);
	assert_int_equal(st->ops->begin(st), 0);
	assert_int_equal(st->ops->audit_append(st, "config-reload", "", "file=z"), 0); /* row 9 */
	assert_int_equal(st->ops->commit(st), 0);
	assert_int_equal(st->ops->commit(st), 0);
	assert_int_equal(recorded_seq(st), 8);
	st->ops->close(st);
	f->st = NULL;
	assert_int_equal(store_sqlite_open(&f->st, f->path), 0);
	st = f->st;
	assert_int_equal(recorded_seq(st), 9);
	walk(st, &r);
	assert_int_equal(r.n, 9);
	assert_string_equal(r.v[8].detail, "file=z");
	expect_intact(st, 9);
}

static int raw_exec(const char *path, const char *sql)
{
	sqlite3 *db;
	int rc;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	sqlite3_close(db);
	return rc;
}

/* The signed bytes back in the messages row, where versions 1 to 3 kept them. */
#define TO_VERSION_3                                                                      \
	"ALTER TABLE messages ADD COLUMN signed_bytes BLOB;"                              \
	" UPDATE messages SET signed_bytes ="                                             \
	"   (SELECT bytes FROM message_bytes b WHERE b.message_id = messages.message_id);" \
	" DROP TABLE message_bytes; PRAGMA user_version = 3;"

static void expect_bytes(store *st, const char *mid, const char *bytes)
{
	struct store_message m;
	gw_buf b = GW_BUF_INIT;

	memset(&m, 0, sizeof(m));
	assert_int_equal(st->ops->message_get(st, mid, &m), 0);
	assert_int_equal(st->ops->message_bytes(st, mid, &b), 0);
	assert_int_equal(m.signed_bytes.len, strlen(bytes));
	assert_int_equal(b.len, strlen(bytes));
	if (b.len) {
		assert_memory_equal(m.signed_bytes.data, bytes, b.len);
		assert_memory_equal(b.data, bytes, b.len);
	}
	store_message_clear(&m);
	gw_buf_free(&b);
}

/* A version 3 database: its signed bytes move to their own table, none lost. */
static void test_upgrade_from_version_3_moves_signed_bytes(void **state)
{
	struct fixture *f = *state;
	struct store_sqlite_settings set;
	store *again;

	add_notice(f->st, "KDI-V3", 1, "sha-v3");
	add_message(f->st, "v3-queued", "KDI-V3", 1, MSG_QUEUED, "2026-12-04", NOW, NOW);
	add_message(f->st, "v3-held", "KDI-V3", 1, MSG_HELD, "2026-12-04", NOW, NOW);
	f->st->ops->close(f->st);
	f->st = NULL;
	assert_int_equal(raw_exec(f->path, TO_VERSION_3), SQLITE_OK);
	assert_int_equal(store_sqlite_open(&again, f->path), 0);
	f->st = again;
	assert_int_equal(store_sqlite_settings(again, &set), 0);
	assert_int_equal(set.schema_version, 4);
	expect_bytes(again, "v3-queued", "<Message/>");
	expect_bytes(again, "v3-held", "");
	assert_int_not_equal(raw_exec(f->path, "SELECT signed_bytes FROM messages"), SQLITE_OK);
}

static void test_audit_table_refuses_update_and_delete(void **state)
{
	struct fixture *f = *state;

	add_notice(f->st, "KDI-C", 1, "sha-c");
	assert_int_not_equal(raw_exec(f->path, "UPDATE audit SET detail = 'x' WHERE seq = 1"),
			     SQLITE_OK);
	assert_int_not_equal(raw_exec(f->path, "DELETE FROM audit"), SQLITE_OK);
	expect_intact(f->st, 1);
}

static void test_audit_upgrade_from_version_1(void **state)
{
	struct fixture *f = *state;
	struct store_sqlite_settings set;
	struct rows r;
	store *again;

	add_notice(f->st, "KDI-D", 1, "sha-d");
	add_message(f->st, "d1", "KDI-D", 1, MSG_QUEUED, "2026-12-04", NOW, NOW);
	if (f->st)
		f->st->ops->close(f->st);
	f->st = NULL;
	/* Make it a version 1 database with a message, as an old build left it. */
	assert_int_equal(raw_exec(f->path, TO_VERSION_3 " DROP TRIGGER audit_no_update;"
					   " DROP TRIGGER audit_no_delete; DROP TABLE audit;"
					   " DROP INDEX idx_messages_endpoint;"
					   " ALTER TABLE attempts DROP COLUMN reached;"
					   " PRAGMA user_version = 1;"),
			 SQLITE_OK);
	{
		char head[600];
		snprintf(head, sizeof(head), "%s.audit-head", f->path);
		unlink(head);
	}
	assert_int_equal(store_sqlite_open(&again, f->path), 0);
	f->st = again;
	assert_int_equal(store_sqlite_settings(again, &set), 0);
	assert_int_equal(set.schema_version, 4);
	expect_bytes(again, "d1", "<Message/>");
	walk(again, &r);
	assert_int_equal(r.n, 0);
	expect_intact(again, 0);
	/* The chain starts with the first change after the upgrade. */
	assert_int_equal(again->ops->message_update(again, "d1", MSG_QUEUED, MSG_SENDING, NULL, -1,
						    1),
			 0);
	walk(again, &r);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.v[0].seq, 1);
	assert_string_equal(r.v[0].prev_hash, audit_genesis);
	expect_intact(again, 1);
}

/* A version 2 database: its attempts cannot say whether they reached the partner. */
static void test_upgrade_from_version_2_counts_old_attempts_reached(void **state)
{
	struct fixture *f = *state;
	struct store_sqlite_settings set;
	struct store_attempt a;
	bool reached = false;
	store *again;

	add_notice(f->st, "KDI-V2", 1, "sha-v2");
	add_message(f->st, "v2", "KDI-V2", 1, MSG_QUEUED, "2026-12-04", NOW, NOW);
	memset(&a, 0, sizeof(a));
	snprintf(a.message_id, sizeof(a.message_id), "v2");
	snprintf(a.outcome, sizeof(a.outcome), "retry");
	assert_int_equal(f->st->ops->attempt_insert(f->st, &a), 0);
	f->st->ops->close(f->st);
	f->st = NULL;
	assert_int_equal(raw_exec(f->path, TO_VERSION_3 " ALTER TABLE attempts DROP COLUMN reached;"
					   " PRAGMA user_version = 2;"),
			 SQLITE_OK);
	assert_int_equal(store_sqlite_open(&again, f->path), 0);
	f->st = again;
	assert_int_equal(store_sqlite_settings(again, &set), 0);
	assert_int_equal(set.schema_version, 4);
	expect_bytes(again, "v2", "<Message/>");
	assert_int_equal(again->ops->message_reached(again, "v2", &reached), 0);
	assert_true(reached);
}

/* ---- operator moves ---- */

static void test_retry_and_cancel(void **state)
{
	store *st = ((struct fixture *)*state)->st;
	struct store_message m;
	struct rows r;

	add_notice(st, "KDI-E", 1, "sha-e");
	add_message(st, "e1", "KDI-E", 1, MSG_QUEUED, "2026-12-04", NOW, NOW);
	add_message(st, "e2", "KDI-E", 1, MSG_QUEUED, "2026-12-04", NOW, NOW);
	add_message(st, "e3", "KDI-E", 1, MSG_QUEUED, "2026-12-04", NOW, NOW);
	assert_int_equal(st->ops->message_update(st, "e1", MSG_QUEUED, MSG_SENDING, NULL, -1, 1), 0);
	assert_int_equal(st->ops->message_update(st, "e1", MSG_SENDING, MSG_FAILED, "refused: 403",
						 -1, 0),
			 0);
	assert_int_equal(st->ops->message_update(st, "e2", MSG_QUEUED, MSG_SENDING, NULL, -1, 1), 0);

	/* retry: failed -> queued, due now, attempts kept, a new horizon */
	assert_int_equal(st->ops->message_retry(st, "e1", NOW + 7, NOW + 99, "uid=1000"), 0);
	memset(&m, 0, sizeof(m));
	assert_int_equal(st->ops->message_get(st, "e1", &m), 0);
	assert_int_equal(m.state, MSG_QUEUED);
	assert_int_equal(m.attempts, 1);
	assert_int_equal(m.next_attempt_ms, NOW + 7);
	assert_int_equal(m.deadline_ms, NOW + 99);
	store_message_clear(&m);
	assert_int_equal(st->ops->message_retry(st, "e1", NOW, NOW, "uid=1000"), GW_EINVALID);
	assert_non_null(strstr(gw_error_last(), "is queued, not failed"));
	assert_int_equal(st->ops->message_retry(st, "nope", NOW, NOW, "uid=1000"), GW_ENOTFOUND);

	/* cancel: queued (or held, failed) only; sending and delivered are refused */
	assert_int_equal(st->ops->message_cancel(st, "e2", "by operator", "uid=1000"), GW_EINVALID);
	assert_non_null(strstr(gw_error_last(), "e2 is sending"));
	assert_int_equal(state_of(st, "e2"), MSG_SENDING);
	assert_int_equal(st->ops->message_update(st, "e2", MSG_SENDING, MSG_DELIVERED, "", -1, 0), 0);
	assert_int_equal(st->ops->message_cancel(st, "e2", "by operator", "uid=1000"), GW_EINVALID);
	assert_non_null(strstr(gw_error_last(), "e2 is delivered"));
	assert_int_equal(st->ops->message_cancel(st, "e3", "cancelled by an operator", "uid=1000"),
			 0);
	assert_int_equal(state_of(st, "e3"), MSG_CANCELLED);
	assert_int_equal(st->ops->message_cancel(st, "nope", "x", "uid=1000"), GW_ENOTFOUND);

	walk(st, &r);
	expect_row(&r.v[r.n - 1], "cancel", "e3", "queued", "cancelled");
	assert_string_equal(r.v[r.n - 1].detail, "uid=1000 reason=cancelled by an operator");
	expect_row(&r.v[r.n - 3], "retry", "e1", "failed", "queued");
	assert_string_equal(r.v[r.n - 3].detail, "uid=1000");
	expect_intact(st, (int64_t)r.n);
}

static void add_attempt(store *st, const char *mid, int64_t at, const char *outcome,
			const char *error)
{
	struct store_attempt a;

	memset(&a, 0, sizeof(a));
	snprintf(a.message_id, sizeof(a.message_id), "%s", mid);
	a.started_ms = at;
	snprintf(a.outcome, sizeof(a.outcome), "%s", outcome);
	snprintf(a.error, sizeof(a.error), "%s", error);
	assert_int_equal(st->ops->attempt_insert(st, &a), 0);
}

/* n times U+00F8, o with a stroke (2 bytes of UTF-8 each). */
static void oslash(char *out, size_t size, size_t n)
{
	size_t i;

	for (i = 0; i < n && 2 * i + 2 < size; i++)
		memcpy(out + 2 * i, "\xc3\xb8", 2);
	out[2 * i] = '\0';
}

/* Whether text is whole UTF-8 characters (no sequence cut short at its end). */
static bool utf8_whole(const char *text)
{
	size_t len = strlen(text), i = len;

	while (i > 0 && ((unsigned char)text[i - 1] & 0xc0) == 0x80)
		i--;
	if (i == len)
		return i == 0 || ((unsigned char)text[i - 1] & 0x80) == 0;
	/* i - 1 is the lead byte of the last sequence: it needs len - i continuations */
	return i > 0 && ((((unsigned char)text[i - 1] & 0xe0) == 0xc0 && len - i == 1) ||
			 (((unsigned char)text[i - 1] & 0xf0) == 0xe0 && len - i == 2) ||
			 (((unsigned char)text[i - 1] & 0xf8) == 0xf0 && len - i == 3));
}

/* An integer read straight from the database file, beside the store. */
static long long raw_int(const char *path, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *q;
	long long v = -1;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
	if (sqlite3_step(q) == SQLITE_ROW)
		v = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	sqlite3_close(db);
	return v;
}

/* A message fails before any attempt (deliver: its stored bytes are corrupt). */
static void test_queued_to_failed_with_its_audit_row(void **state)
{
	store *st = ((struct fixture *)*state)->st;
	struct store_message m;
	struct rows r;

	add_notice(st, "KDI-Q", 1, "sha-q");
	add_message(st, "q1", "KDI-Q", 1, MSG_QUEUED, "2026-12-04", NOW, NOW);
	assert_int_equal(st->ops->message_update(st, "q1", MSG_QUEUED, MSG_FAILED,
						 "stored bytes do not match their digest", -1, 0),
			 0);
	memset(&m, 0, sizeof(m));
	assert_int_equal(st->ops->message_get(st, "q1", &m), 0);
	assert_int_equal(m.state, MSG_FAILED);
	assert_int_equal(m.attempts, 0);
	assert_string_equal(m.reason, "stored bytes do not match their digest");
	store_message_clear(&m);
	walk(st, &r);
	expect_row(&r.v[r.n - 1], "state", "q1", "queued", "failed");
	assert_string_equal(r.v[r.n - 1].detail, "stored bytes do not match their digest");
	expect_intact(st, (int64_t)r.n);
	/* It is nothing more than failed: an operator may retry it. */
	assert_int_equal(st->ops->message_retry(st, "q1", NOW, NOW + 1, "uid=1000"), 0);
	assert_int_equal(state_of(st, "q1"), MSG_QUEUED);
}

/* messages_transition keeps to the same table as message_update. */
static void test_transition_refuses_what_the_table_refuses(void **state)
{
	store *st = ((struct fixture *)*state)->st;
	int n = -1;

	add_notice(st, "KDI-T", 1, "sha-t1");
	add_message(st, "t1", "KDI-T", 1, MSG_QUEUED, "2026-12-04", NOW, NOW);
	assert_int_equal(st->ops->message_update(st, "t1", MSG_QUEUED, MSG_SENDING, NULL, -1, 1), 0);
	assert_int_equal(st->ops->message_update(st, "t1", MSG_SENDING, MSG_DELIVERED, "", -1, 0), 0);
	add_notice(st, "KDI-T", 2, "sha-t2");
	assert_int_equal(st->ops->messages_transition(st, "KDI-T", 2, 1u << MSG_DELIVERED,
						      MSG_SUPERSEDED, "superseded by revision 2",
						      &n),
			 GW_EINVALID);
	assert_non_null(strstr(gw_error_last(), "cannot go from delivered to superseded"));
	assert_int_equal(n, -1);
	assert_int_equal(state_of(st, "t1"), MSG_DELIVERED);
}

/* An operator's reason longer than a message keeps is refused, not stored. */
static void test_cancel_reason_limit(void **state)
{
	struct fixture *f = *state;
	store *st = f->st;
	char reason[STORE_REASON_MAX + 32];
	struct store_message m;
	struct rows r;
	size_t rows;

	add_notice(st, "KDI-R", 1, "sha-r");
	add_message(st, "r1", "KDI-R", 1, MSG_QUEUED, "2026-12-04", NOW, NOW);
	walk(st, &r);
	rows = r.n;
	memset(reason, 'x', 280);
	reason[280] = '\0';
	assert_int_equal(st->ops->message_cancel(st, "r1", reason, "uid=1000"), GW_EINVALID);
	assert_non_null(strstr(gw_error_last(), "280 bytes"));
	assert_non_null(strstr(gw_error_last(), "255"));
	assert_int_equal(state_of(st, "r1"), MSG_QUEUED);
	walk(st, &r);
	assert_int_equal(r.n, rows);

	/* 256 bytes is one too many; 255, in two-byte letters and one more, fits. */
	memset(reason, 'x', 256);
	reason[256] = '\0';
	assert_int_equal(st->ops->message_cancel(st, "r1", reason, "uid=1000"), GW_EINVALID);
	oslash(reason, sizeof(reason), 127);
	strcat(reason, "x");
	assert_int_equal(strlen(reason), STORE_REASON_MAX);
	assert_int_equal(st->ops->message_cancel(st, "r1", reason, "uid=1000"), 0);
	memset(&m, 0, sizeof(m));
	assert_int_equal(st->ops->message_get(st, "r1", &m), 0);
	assert_int_equal(m.state, MSG_CANCELLED);
	assert_string_equal(m.reason, reason);
	store_message_clear(&m);
	walk(st, &r);
	expect_row(&r.v[r.n - 1], "cancel", "r1", "queued", "cancelled");
	assert_non_null(strstr(r.v[r.n - 1].detail, reason));
}

/* Reasons from other writers are cut at a character boundary when stored. */
static void test_long_reason_cut_when_written(void **state)
{
	struct fixture *f = *state;
	store *st = f->st;
	char reason[400];
	struct store_message m;
	int n = 0;

	add_notice(st, "KDI-W", 1, "sha-w1");
	add_message(st, "w1", "KDI-W", 1, MSG_QUEUED, "2026-12-04", NOW, NOW);
	add_message(st, "w2", "KDI-W", 1, MSG_QUEUED, "2026-12-04", NOW, NOW);
	oslash(reason, sizeof(reason), 150); /* 300 bytes: byte 255 is inside a letter */
	assert_int_equal(st->ops->message_update(st, "w1", MSG_QUEUED, MSG_HELD, reason, -1, 0), 0);
	add_notice(st, "KDI-W", 2, "sha-w2");
	assert_int_equal(st->ops->messages_transition(st, "KDI-W", 2, 1u << MSG_QUEUED,
						      MSG_SUPERSEDED, reason, &n),
			 0);
	assert_int_equal(n, 1);
	assert_int_equal(raw_int(f->path, "SELECT length(CAST(reason AS BLOB)) FROM messages"
					  " WHERE message_id = 'w1'"),
			 254);
	assert_int_equal(raw_int(f->path, "SELECT length(CAST(reason AS BLOB)) FROM messages"
					  " WHERE message_id = 'w2'"),
			 254);
	memset(&m, 0, sizeof(m));
	assert_int_equal(st->ops->message_get(st, "w1", &m), 0);
	assert_int_equal(strlen(m.reason), 254);
	assert_memory_equal(m.reason, reason, 254);
	assert_true(utf8_whole(m.reason));
	store_message_clear(&m);
}

struct texts {
	char v[4][300];
	size_t n;
};

static int collect_reason(const struct store_message *m, void *ctx)
{
	struct texts *t = ctx;

	if (t->n < 4)
		snprintf(t->v[t->n++], sizeof(t->v[0]), "%s", m->reason);
	return 0;
}

static int collect_error(const struct store_attempt *a, void *ctx)
{
	struct texts *t = ctx;

	if (t->n < 4)
		snprintf(t->v[t->n++], sizeof(t->v[0]), "%s", a->error);
	return 0;
}

static int collect_fact_text(const struct store_release_fact *f, void *ctx)
{
	struct texts *t = ctx;

	if (t->n < 3) {
		snprintf(t->v[t->n++], sizeof(t->v[0]), "%s", f->reason);
		snprintf(t->v[t->n++], sizeof(t->v[0]), "%s", f->sender_unit);
	}
	return 0;
}

/* The start of a run of U+00F8 that fits size bytes with its NUL, cut between letters. */
static void expect_cut(const char *got, size_t size)
{
	char want[1024];

	oslash(want, sizeof(want), (size - 1) / 2);
	assert_string_equal(got, want);
	assert_true(utf8_whole(got));
}

/*
 * A database holding free text longer than its field (written by an older
 * version, or by hand) still reads, cut at a character boundary; an
 * identifier that does not fit still fails the read.
 */
static void test_long_free_text_still_reads(void **state)
{
	struct fixture *f = *state;
	store *st = f->st;
	struct store_message m;
	struct store_endpoint_health h;
	struct store_filter filter = { .state = -1, .notice_id = "KDI-L" };
	struct texts t = { .n = 0 };

	add_notice(st, "KDI-L", 1, "sha-l");
	add_message(st, "l1", "KDI-L", 1, MSG_QUEUED, "2026-12-04", NOW, NOW);
	add_attempt(st, "l1", NOW + 1, "retry", "timeout");
	/* 150, 200 and 300 letters of two bytes: each cut falls inside one */
	assert_int_equal(raw_exec(f->path,
				  "UPDATE messages SET state = 'cancelled', reason ="
				  "  replace(hex(zeroblob(150)), '00', CAST(X'C3B8' AS TEXT));"
				  "UPDATE attempts SET error ="
				  "  replace(hex(zeroblob(200)), '00', CAST(X'C3B8' AS TEXT));"
				  "UPDATE notices SET sender_unit ="
				  "  replace(hex(zeroblob(300)), '00', CAST(X'C3B8' AS TEXT));"),
			 SQLITE_OK);
	memset(&m, 0, sizeof(m));
	assert_int_equal(st->ops->message_get(st, "l1", &m), 0);
	expect_cut(m.reason, sizeof(m.reason));
	store_message_clear(&m);
	assert_int_equal(st->ops->messages_list(st, &filter, collect_reason, &t), 0);
	assert_int_equal(t.n, 1);
	expect_cut(t.v[0], sizeof(m.reason));
	t.n = 0;
	assert_int_equal(st->ops->attempts_list(st, "l1", collect_error, &t), 0);
	assert_int_equal(t.n, 1);
	expect_cut(t.v[0], sizeof(((struct store_attempt *)0)->error));
	assert_int_equal(st->ops->endpoint_health(st, "oslo-housing", &h), 0);
	expect_cut(h.last_error, sizeof(h.last_error));
	t.n = 0;
	assert_int_equal(st->ops->release_facts(st, NULL, NULL, collect_fact_text, &t), 0);
	assert_int_equal(t.n, 2);
	expect_cut(t.v[0], sizeof(((struct store_release_fact *)0)->reason));
	expect_cut(t.v[1], sizeof(((struct store_release_fact *)0)->sender_unit));

	/* An identifier is not free text: too long fails the read, loudly. */
	assert_int_equal(raw_exec(f->path, "UPDATE messages SET digest_b64 = hex(zeroblob(30))"),
			 SQLITE_OK);
	assert_int_equal(st->ops->message_get(st, "l1", &m), GW_ERROR);
	assert_non_null(strstr(gw_error_last(), "column 'digest_b64' holds 60 bytes"));
	store_message_clear(&m);
	t.n = 0;
	assert_int_equal(st->ops->messages_list(st, &filter, collect_reason, &t), GW_ERROR);
}

static void test_endpoint_health(void **state)
{
	store *st = ((struct fixture *)*state)->st;
	struct store_endpoint_health h;

	assert_int_equal(st->ops->endpoint_health(st, "oslo-housing", &h), 0);
	assert_int_equal(h.queued, 0);
	assert_int_equal(h.last_success_ms, 0);
	assert_int_equal(h.consecutive_failures, 0);

	add_notice(st, "KDI-F", 1, "sha-f");
	add_message(st, "f1", "KDI-F", 1, MSG_QUEUED, "2026-12-04", NOW, NOW);
	add_message(st, "f2", "KDI-F", 1, MSG_QUEUED, "2026-12-04", NOW, NOW);
	add_message(st, "f3", "KDI-F", 1, MSG_QUEUED, "2026-12-04", NOW, NOW);
	add_attempt(st, "f1", NOW + 1, "retry", "connect refused");
	add_attempt(st, "f1", NOW + 2, "delivered", "");
	add_attempt(st, "f2", NOW + 3, "retry", "timeout");
	add_attempt(st, "f3", NOW + 4, "retry", "connection reset");
	assert_int_equal(st->ops->endpoint_health(st, "oslo-housing", &h), 0);
	assert_int_equal(h.queued, 3);
	assert_int_equal(h.last_success_ms, NOW + 2);
	assert_int_equal(h.last_attempt_ms, NOW + 4);
	assert_int_equal(h.consecutive_failures, 2);
	assert_string_equal(h.last_error, "connection reset");
	assert_int_equal(st->ops->endpoint_health(st, "other", &h), 0);
	assert_int_equal(h.queued, 0);
}

struct facts {
	struct store_release_fact v[16];
	size_t n;
};

static int collect_fact(const struct store_release_fact *f, void *ctx)
{
	struct facts *c = ctx;

	if (c->n < 16)
		c->v[c->n++] = *f;
	return 0;
}

static void test_release_facts_latest_revision(void **state)
{
	store *st = ((struct fixture *)*state)->st;
	struct store_receipt rc;
	struct facts c = { .n = 0 };

	add_notice(st, "KDI-G", 1, "sha-g1");
	add_message(st, "g1", "KDI-G", 1, MSG_QUEUED, "2026-12-04", NOW, NOW);
	add_notice(st, "KDI-G", 2, "sha-g2");
	add_message(st, "g2", "KDI-G", 2, MSG_QUEUED, "2026-12-04", NOW, NOW);
	assert_int_equal(st->ops->message_update(st, "g2", MSG_QUEUED, MSG_SENDING, NULL, -1, 1), 0);
	assert_int_equal(st->ops->message_update(st, "g2", MSG_SENDING, MSG_DELIVERED, "", -1, 0),
			 0);
	memset(&rc, 0, sizeof(rc));
	snprintf(rc.message_id, sizeof(rc.message_id), "g2");
	snprintf(rc.status, sizeof(rc.status), "rejected"); /* not proof of arrival */
	rc.verified = true;
	rc.received_ms = NOW + 1;
	assert_int_equal(st->ops->receipt_insert(st, &rc), 0);
	snprintf(rc.status, sizeof(rc.status), "accepted");
	rc.received_ms = NOW + 2;
	assert_int_equal(st->ops->receipt_insert(st, &rc), 0);
	rc.received_ms = NOW + 3;
	assert_int_equal(st->ops->receipt_insert(st, &rc), 0);
	add_notice(st, "KDI-H", 1, "sha-h"); /* a notice without messages */

	assert_int_equal(st->ops->release_facts(st, NULL, NULL, collect_fact, &c), 0);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.v[0].notice_id, "KDI-G");
	assert_int_equal(c.v[0].revision, 2);
	assert_string_equal(c.v[0].message_id, "g2");
	assert_int_equal(c.v[0].state, MSG_DELIVERED);
	assert_int_equal(c.v[0].reached_ms, NOW + 2);
	assert_true(c.v[0].weekend_release);
	assert_string_equal(c.v[1].notice_id, "KDI-H");
	assert_string_equal(c.v[1].message_id, "");

	c.n = 0;
	assert_int_equal(st->ops->release_facts(st, "2026-12-05", "", collect_fact, &c), 0);
	assert_int_equal(c.n, 0);
	assert_int_equal(st->ops->release_facts(st, "2026-12-04", "2026-12-04", collect_fact, &c), 0);
	assert_int_equal(c.n, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_durability_settings, setup, teardown),
		cmocka_unit_test_setup_teardown(test_notices_seen_latest_and_foreign_key, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_update_is_compare_and_set, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transition_supersedes_older_revisions_only,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_release_held_attaches_bytes_and_queues, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rollback_discards, setup, teardown),
		cmocka_unit_test_setup_teardown(test_due_earliest_release_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_due_callback_may_update_and_recover_sending,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_attempts_and_receipts_round_trip, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_list_filters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scheduling_smoke_100k, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit_row_for_every_change, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit_rolls_back_with_the_change, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_nested_commit_and_rollback_keep_the_chain,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_relaxed_commit_publishes_after_a_durable_one,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit_table_refuses_update_and_delete, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_audit_upgrade_from_version_1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upgrade_from_version_3_moves_signed_bytes, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_upgrade_from_version_2_counts_old_attempts_reached,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_and_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queued_to_failed_with_its_audit_row, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_transition_refuses_what_the_table_refuses, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cancel_reason_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_reason_cut_when_written, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_free_text_still_reads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_endpoint_health, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release_facts_latest_revision, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
