/*
 * test_audit: the audit chain's rules without a database (audit.h): the
 * row hash is the documented encoding (a known answer computed with
 * printf | sha256sum), and the judgement names the first row that was
 * changed, removed or inserted, and a tail cut off against the recorded
 * head. The same checks against a real store tampered through the sqlite3
 * command are in tests/integration/it_operator.sh; the store's side
 * (a row per change, in the same transaction) is in test_store.
 */
#include "testutil.h"
#include "audit.h"
#include "err.h"

#include <stdio.h>
#include <string.h>

/* printf '%s' "$(printf '0%.0s' {1..64})1:1,13:1795392000000,5:state,3:m-1,6:queued,7:sending,5:r=é!," | sha256sum */
#define KNOWN_HASH "0a3a37caa56c36831aabbe8600e8ebcba648bb4754e765f4c522050500ef492b"

static void row_init(struct audit_row *r, int64_t seq, const char *prev, const char *detail)
{
	memset(r, 0, sizeof(*r));
	r->seq = seq;
	r->time_ms = INT64_C(1795392000000);
	snprintf(r->event, sizeof(r->event), "state");
	snprintf(r->subject, sizeof(r->subject), "m-%lld", (long long)seq);
	snprintf(r->from_state, sizeof(r->from_state), "queued");
	snprintf(r->to_state, sizeof(r->to_state), "sending");
	snprintf(r->detail, sizeof(r->detail), "%s", detail);
	snprintf(r->prev_hash, sizeof(r->prev_hash), "%s", prev);
	assert_int_equal(audit_row_hash(r, r->hash), 0);
}

/* A valid chain of n rows. */
static void chain(struct audit_row *rows, int n)
{
	for (int i = 0; i < n; i++)
		row_init(&rows[i], i + 1, i ? rows[i - 1].hash : audit_genesis, "r=é!");
}

/* Judge rows (in order) against a head; returns audit_check_end's answer. */
static int judge(const struct audit_row *rows, int n, const struct audit_head *head,
		 struct audit_check *c)
{
	audit_check_init(c, head);
	for (int i = 0; i < n; i++)
		if (audit_check_row(c, &rows[i]))
			break;
	return audit_check_end(c, "the head file");
}

static struct audit_head head_of(const struct audit_row *r)
{
	struct audit_head h;

	h.seq = r->seq;
	memcpy(h.hash, r->hash, sizeof(h.hash));
	return h;
}

static void test_known_answer(void **state)
{
	struct audit_row r;
	char again[AUDIT_HASH_HEX];

	(void)state;
	row_init(&r, 1, audit_genesis, "r=é!");
	assert_string_equal(r.hash, KNOWN_HASH);
	/* every field is covered */
	r.time_ms++;
	assert_int_equal(audit_row_hash(&r, again), 0);
	assert_string_not_equal(again, KNOWN_HASH);
	r.time_ms--;
	snprintf(r.to_state, sizeof(r.to_state), "sendin");
	snprintf(r.detail, sizeof(r.detail), "gr=é!"); /* same bytes, told apart by the lengths */
	assert_int_equal(audit_row_hash(&r, again), 0);
	assert_string_not_equal(again, KNOWN_HASH);
}

static void test_intact_chain(void **state)
{
	struct audit_row rows[6];
	struct audit_check c;
	struct audit_head head;

	(void)state;
	chain(rows, 6);
	head = head_of(&rows[5]);
	assert_int_equal(judge(rows, 6, &head, &c), 0);
	assert_true(c.intact);
	assert_int_equal(c.rows, 6);
	assert_int_equal(c.last.seq, 6);
	/* an empty trail with no head is intact */
	assert_int_equal(judge(rows, 0, NULL, &c), 0);
}

static void test_altered_row_is_named(void **state)
{
	struct audit_row rows[6];
	struct audit_check c;
	struct audit_head head;

	(void)state;
	chain(rows, 6);
	head = head_of(&rows[5]);
	snprintf(rows[3].detail, sizeof(rows[3].detail), "nothing happened");
	assert_int_equal(judge(rows, 6, &head, &c), 1);
	assert_int_equal(c.bad_seq, 4);
	assert_string_equal(c.problem, "audit row 4 was altered (its hash does not match its content)");

	/* altered and re-hashed: the next row no longer chains */
	chain(rows, 6);
	snprintf(rows[3].detail, sizeof(rows[3].detail), "nothing happened");
	assert_int_equal(audit_row_hash(&rows[3], rows[3].hash), 0);
	assert_int_equal(judge(rows, 6, &head, &c), 1);
	assert_int_equal(c.bad_seq, 5);
	assert_non_null(strstr(c.problem, "audit row 5 was inserted or its predecessor 4 altered"));

	/* a malformed row (a field the gateway never writes) */
	chain(rows, 6);
	rows[1].malformed = true;
	assert_int_equal(judge(rows, 6, &head, &c), 1);
	assert_int_equal(c.bad_seq, 2);
}

static void test_removed_and_inserted_rows(void **state)
{
	struct audit_row rows[6], gap[5], forged[7];
	struct audit_check c;
	struct audit_head head;

	(void)state;
	chain(rows, 6);
	head = head_of(&rows[5]);
	/* row 3 removed */
	memcpy(gap, rows, 2 * sizeof(rows[0]));
	memcpy(gap + 2, rows + 3, 3 * sizeof(rows[0]));
	assert_int_equal(judge(gap, 5, &head, &c), 1);
	assert_string_equal(c.problem, "audit row 3 is missing (chain gap between 2 and 4)");
	/* row 1 removed */
	assert_int_equal(judge(rows + 1, 5, &head, &c), 1);
	assert_string_equal(c.problem, "audit row 1 is missing (the trail starts at row 2)");
	/* a forged row 0 in front */
	memcpy(forged + 1, rows, 6 * sizeof(rows[0]));
	row_init(&forged[0], 0, audit_genesis, "forged");
	assert_int_equal(judge(forged, 7, &head, &c), 1);
	assert_int_equal(c.bad_seq, 0);
	assert_non_null(strstr(c.problem, "audit row 0 was inserted"));
	/* a forged row 7 after the recorded head, correctly hashed */
	memcpy(forged, rows, 6 * sizeof(rows[0]));
	row_init(&forged[6], 7, rows[5].hash, "forged");
	assert_int_equal(judge(forged, 7, &head, &c), 2);
	assert_int_equal(c.bad_seq, 7);
	assert_non_null(strstr(c.problem, "audit row 7 was inserted after the head recorded in"
					  " the head file (row 6)"));
}

static void test_tail_against_head(void **state)
{
	struct audit_row rows[6], other[6];
	struct audit_check c;
	struct audit_head head;

	(void)state;
	chain(rows, 6);
	head = head_of(&rows[5]);
	assert_int_equal(judge(rows, 4, &head, &c), 1);
	assert_string_equal(c.problem, "audit rows 5 to 6 are missing from the end (the trail ends"
				       " at row 4; the head file records row 6 as the head)");
	assert_int_equal(judge(rows, 5, &head, &c), 1);
	assert_non_null(strstr(c.problem, "audit row 6 is missing from the end"));
	/* no head recorded while rows exist */
	assert_int_equal(judge(rows, 6, NULL, &c), 1);
	assert_non_null(strstr(c.problem, "no head is recorded"));
	/* a consistent rewrite from row 3 on: caught by the head's hash */
	chain(other, 2);
	for (int i = 2; i < 6; i++)
		row_init(&other[i], i + 1, other[i - 1].hash, "rewritten");
	assert_int_equal(judge(other, 6, &head, &c), 1);
	assert_non_null(strstr(c.problem, "audit row 6 differs from the head recorded in the head"
					  " file"));
}

static void test_head_parse(void **state)
{
	struct audit_head h;

	(void)state;
	assert_int_equal(audit_head_parse("17:" KNOWN_HASH, &h), 0);
	assert_int_equal(h.seq, 17);
	assert_string_equal(h.hash, KNOWN_HASH);
	assert_int_equal(audit_head_parse("17 " KNOWN_HASH, &h), 0);
	assert_int_equal(audit_head_parse("17", &h), GW_EINVALID);
	assert_int_equal(audit_head_parse("x:" KNOWN_HASH, &h), GW_EINVALID);
	assert_int_equal(audit_head_parse("17:ABC", &h), GW_EINVALID);
	assert_int_equal(audit_head_parse("-1:" KNOWN_HASH, &h), GW_EINVALID);
}

static void test_field_set_keeps_utf8_whole(void **state)
{
	char small[5];

	(void)state;
	audit_field_set(small, sizeof(small), "abcé"); /* é is 2 bytes: 5 in all */
	assert_string_equal(small, "abc");
	audit_field_set(small, sizeof(small), NULL);
	assert_string_equal(small, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_answer),
		cmocka_unit_test(test_intact_chain),
		cmocka_unit_test(test_altered_row_is_named),
		cmocka_unit_test(test_removed_and_inserted_rows),
		cmocka_unit_test(test_tail_against_head),
		cmocka_unit_test(test_head_parse),
		cmocka_unit_test(test_field_set_keeps_utf8_whole),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
