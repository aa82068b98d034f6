/*
 * test_report: the timeliness report on a crafted history whose numbers
 * were worked out by hand (the table in each test's comment), and the
 * certificates-in-use list.
 *
 * The history. Endpoints: housing (lead_days default 14), nav (lead_days
 * 21); health has no endpoint in the configuration (default 14). Receipt
 * times are UTC; the report compares Oslo dates (CET, UTC+1, in winter):
 *
 * Oslo fengsel, 2027-02
 *   A1 release 2027-02-01 (Mon)
 *      housing delivered, receipt 2027-01-17T22:30Z = 01-17 Oslo: lead 15 >= 14 reached
 *      nav     delivered, receipt 2027-01-10T23:30Z = 01-11 Oslo: lead 21 >= 21 reached
 *      health  held: no consent
 *   A2 release 2027-02-05 (Fri, weekend)
 *      housing delivered, receipt 2027-01-22T23:30Z = 01-23 Oslo: lead 13 < 14 late
 *              (by the UTC date it would be 14 and reached: Oslo dates matter)
 *      nav     failed
 *      health  queued (pending)
 *   A3 revision 1 release 2027-02-10: housing delivered 2027-01-01 (not counted:
 *      an older revision); revision 2 release 2027-02-20 (Sat, weekend):
 *      housing delivered, receipt 2027-02-01T10:00Z: lead 19 reached
 *      nav     held: no endpoint (held_other)
 *   A4 release 2027-02-15, then withdrawn (revision 2): not counted
 *   => notices 3, recipients 8, reached 3 (0.375), late 1, held_no_consent 1,
 *      held_other 1, failed 1, pending 1, cancelled 0, weekend 2,
 *      leads {13, 15, 19, 21}: median 17
 * Oslo fengsel, 2027-03
 *   A5 release 2027-03-03 (Wed): housing delivered 2027-02-10T12:00Z lead 21
 *      reached; nav cancelled
 *   => notices 1, recipients 2, reached 1 (0.5), cancelled 1, median 21
 * Bergen fengsel, 2027-02
 *   B1 release 2027-02-12 (Fri, weekend):
 *      housing delivered 2027-01-29T12:00Z lead 14 reached (the boundary)
 *      nav     delivered 2027-02-12T08:00Z lead 0 late
 *      health  delivered 2027-02-13T12:00Z lead -1 late (after the release)
 *   B2 a transfer: not a release, not counted
 *   => notices 1, recipients 3, reached 1, late 2, weekend 1, median 0
 */
#include "testutil.h"
#include "config.h"
#include "err.h"
#include "report.h"
#include "store.h"
#include "timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char config_text[] =
	"[identity]\n"
	"orgnr = 974760673\n"
	"key = gw.key\n"
	"cert = gw.pem\n"
	"trust = ca.pem\n"
	"[endpoint housing]\n"
	"orgnr = 964338531\n"
	"services = housing\n"
	"url = https://housing.example/notices\n"
	"[endpoint nav]\n"
	"orgnr = 964338531\n"
	"services = nav\n"
	"url = https://nav.example/notices\n"
	"lead_days = 21\n";

struct fixture {
	char dir[400];
	store *st;
	struct gw_config *cfg;
	int seq;
};

static int setup(void **state)
{
	static struct fixture f;
	char path[600];

	memset(&f, 0, sizeof(f));
	snprintf(f.dir, sizeof(f.dir), "%s", tu_tmpdir("report"));
	snprintf(path, sizeof(path), "%s/gateway.db", f.dir);
	if (store_sqlite_open(&f.st, path) != 0)
		return -1;
	f.cfg = calloc(1, sizeof(*f.cfg));
	if (!f.cfg || config_parse(f.cfg, config_text, "/d") != 0) {
		fprintf(stderr, "%s\n", gw_error_last());
		return -1;
	}
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	f->st->ops->close(f->st);
	free(f->cfg);
	tu_rmrf(f->dir);
	return 0;
}

static void notice(struct fixture *f, const char *unit, const char *id, int rev,
		   const char *kind, const char *date, bool weekend)
{
	struct store_notice n;

	memset(&n, 0, sizeof(n));
	snprintf(n.notice_id, sizeof(n.notice_id), "%s", id);
	n.revision = rev;
	snprintf(n.kind, sizeof(n.kind), "%s", kind);
	snprintf(n.content_sha256, sizeof(n.content_sha256), "sha-%s-%d", id, rev);
	snprintf(n.source_name, sizeof(n.source_name), "%s.xml", id);
	snprintf(n.sender_orgnr, sizeof(n.sender_orgnr), "974760673");
	snprintf(n.sender_unit, sizeof(n.sender_unit), "%s", unit);
	snprintf(n.event_date, sizeof(n.event_date), "%s", date);
	n.weekend_release = weekend;
	n.received_ms = 1;
	assert_int_equal(f->st->ops->notice_insert(f->st, &n), 0);
}

/* One recipient; receipt_utc (a delivered message's proof) may be NULL. */
static void recipient(struct fixture *f, const char *id, int rev, const char *date,
		      const char *service, const char *endpoint, enum msg_state state,
		      const char *reason, const char *receipt_utc)
{
	struct store_message m;
	struct store_receipt r;

	memset(&m, 0, sizeof(m));
	snprintf(m.message_id, sizeof(m.message_id), "msg-%03d", ++f->seq);
	snprintf(m.notice_id, sizeof(m.notice_id), "%s", id);
	m.revision = rev;
	snprintf(m.kind, sizeof(m.kind), "release");
	snprintf(m.service, sizeof(m.service), "%s", service);
	snprintf(m.endpoint, sizeof(m.endpoint), "%s", endpoint);
	m.state = state;
	snprintf(m.reason, sizeof(m.reason), "%s", reason);
	snprintf(m.event_date, sizeof(m.event_date), "%s", date);
	m.created_ms = f->seq;
	assert_int_equal(f->st->ops->message_insert(f->st, &m), 0);
	if (!receipt_utc)
		return;
	memset(&r, 0, sizeof(r));
	snprintf(r.message_id, sizeof(r.message_id), "%s", m.message_id);
	snprintf(r.status, sizeof(r.status), "accepted");
	r.verified = true;
	assert_int_equal(timeutil_parse_datetime(receipt_utc, &r.received_ms), 0);
	assert_int_equal(gw_buf_puts(&r.bytes, "<Receipt/>"), 0);
	assert_int_equal(f->st->ops->receipt_insert(f->st, &r), 0);
	store_receipt_clear(&r);
}

static void history(struct fixture *f)
{
	const char *O = "Oslo fengsel", *B = "Bergen fengsel";

	notice(f, O, "A1", 1, "release", "2027-02-01", false);
	recipient(f, "A1", 1, "2027-02-01", "housing", "housing", MSG_DELIVERED, "",
		  "2027-01-17T22:30:00Z");
	recipient(f, "A1", 1, "2027-02-01", "nav", "nav", MSG_DELIVERED, "",
		  "2027-01-10T23:30:00Z");
	recipient(f, "A1", 1, "2027-02-01", "health", "", MSG_HELD, "no consent", NULL);

	notice(f, O, "A2", 1, "release", "2027-02-05", true);
	recipient(f, "A2", 1, "2027-02-05", "housing", "housing", MSG_DELIVERED, "",
		  "2027-01-22T23:30:00Z");
	recipient(f, "A2", 1, "2027-02-05", "nav", "nav", MSG_FAILED, "refused: 403", NULL);
	recipient(f, "A2", 1, "2027-02-05", "health", "oslo-health", MSG_QUEUED, "", NULL);

	notice(f, O, "A3", 1, "release", "2027-02-10", false);
	recipient(f, "A3", 1, "2027-02-10", "housing", "housing", MSG_DELIVERED, "",
		  "2027-01-01T10:00:00Z");
	notice(f, O, "A3", 2, "release", "2027-02-20", true);
	recipient(f, "A3", 2, "2027-02-20", "housing", "housing", MSG_DELIVERED, "",
		  "2027-02-01T10:00:00Z");
	recipient(f, "A3", 2, "2027-02-20", "nav", "", MSG_HELD, "no endpoint", NULL);

	notice(f, O, "A4", 1, "release", "2027-02-15", false);
	recipient(f, "A4", 1, "2027-02-15", "housing", "housing", MSG_DELIVERED, "",
		  "2027-01-20T10:00:00Z");
	notice(f, O, "A4", 2, "withdrawal", "", false);

	notice(f, O, "A5", 1, "release", "2027-03-03", false);
	recipient(f, "A5", 1, "2027-03-03", "housing", "housing", MSG_DELIVERED, "",
		  "2027-02-10T12:00:00Z");
	recipient(f, "A5", 1, "2027-03-03", "nav", "nav", MSG_CANCELLED, "by an operator", NULL);

	notice(f, B, "B1", 1, "release", "2027-02-12", true);
	recipient(f, "B1", 1, "2027-02-12", "housing", "housing", MSG_DELIVERED, "",
		  "2027-01-29T12:00:00Z");
	recipient(f, "B1", 1, "2027-02-12", "nav", "nav", MSG_DELIVERED, "",
		  "2027-02-12T08:00:00Z");
	recipient(f, "B1", 1, "2027-02-12", "health", "oslo-health", MSG_DELIVERED, "",
		  "2027-02-13T12:00:00Z");
	notice(f, B, "B2", 1, "transfer", "2027-02-12", false);
	recipient(f, "B2", 1, "2027-02-12", "prison", "prison", MSG_DELIVERED, "",
		  "2027-02-01T12:00:00Z");
}

static void expect(const struct report_timeliness_row *r, const char *unit, const char *month,
		   long long notices, long long recipients, long long reached, long long late,
		   long long no_consent, long long held_other, long long failed, long long pending,
		   long long cancelled, long long weekend)
{
	assert_string_equal(r->sender_unit, unit);
	assert_string_equal(r->month, month);
	assert_int_equal(r->notices, notices);
	assert_int_equal(r->recipients, recipients);
	assert_int_equal(r->reached, reached);
	assert_int_equal(r->late, late);
	assert_int_equal(r->held_no_consent, no_consent);
	assert_int_equal(r->held_other, held_other);
	assert_int_equal(r->failed, failed);
	assert_int_equal(r->pending, pending);
	assert_int_equal(r->cancelled, cancelled);
	assert_int_equal(r->weekend_releases, weekend);
	assert_int_equal(r->recipients, r->reached + r->late + r->held_no_consent + r->held_other +
						r->failed + r->pending + r->cancelled);
}

static void test_crafted_history(void **state)
{
	struct fixture *f = *state;
	struct report_timeliness_row *rows;
	size_t n;

	history(f);
	assert_int_equal(report_timeliness(f->st, f->cfg, NULL, NULL, &rows, &n), 0);
	assert_int_equal(n, 3);

	expect(&rows[0], "Bergen fengsel", "2027-02", 1, 3, 1, 2, 0, 0, 0, 0, 0, 1);
	assert_true(rows[0].has_median);
	assert_int_equal(rows[0].delivered, 3);
	assert_true(rows[0].median_lead_days == 0.0);
	assert_true(rows[0].reached_share > 0.3333 && rows[0].reached_share < 0.3334);

	expect(&rows[1], "Oslo fengsel", "2027-02", 3, 8, 3, 1, 1, 1, 1, 1, 0, 2);
	assert_int_equal(rows[1].delivered, 4);
	assert_true(rows[1].median_lead_days == 17.0);
	assert_true(rows[1].reached_share == 0.375);

	expect(&rows[2], "Oslo fengsel", "2027-03", 1, 2, 1, 0, 0, 0, 0, 0, 1, 0);
	assert_int_equal(rows[2].delivered, 1);
	assert_true(rows[2].median_lead_days == 21.0);
	assert_true(rows[2].reached_share == 0.5);
	free(rows);
}

static void test_period_and_default_lead(void **state)
{
	struct fixture *f = *state;
	struct report_timeliness_row *rows;
	size_t n;

	history(f);
	/* 2027-02-06 .. 2027-02-28: A3 (02-20) and B1 (02-12); A1, A2 and A5 fall outside. */
	assert_int_equal(report_timeliness(f->st, f->cfg, "2027-02-06", "2027-02-28", &rows, &n), 0);
	assert_int_equal(n, 2);
	expect(&rows[0], "Bergen fengsel", "2027-02", 1, 3, 1, 2, 0, 0, 0, 0, 0, 1);
	expect(&rows[1], "Oslo fengsel", "2027-02", 1, 2, 1, 0, 0, 1, 0, 0, 0, 1);
	assert_true(rows[1].median_lead_days == 19.0);
	free(rows);

	/* Without a configuration every endpoint has 14 days: A1 (one day) is
	 * unchanged, its nav recipient (lead 21) reached either way. */
	assert_int_equal(report_timeliness(f->st, NULL, "2027-02-01", "2027-02-01", &rows, &n), 0);
	assert_int_equal(n, 1);
	expect(&rows[0], "Oslo fengsel", "2027-02", 1, 3, 2, 0, 1, 0, 0, 0, 0, 0);
	free(rows);
	assert_int_equal(report_lead_days(f->cfg, "nav"), 21);
	assert_int_equal(report_lead_days(f->cfg, "housing"), 14);
	assert_int_equal(report_lead_days(f->cfg, "oslo-health"), 14);

	assert_int_equal(report_timeliness(f->st, f->cfg, "2027-02-30", NULL, &rows, &n),
			 GW_EINVALID);
	assert_non_null(strstr(gw_error_last(), "--from date '2027-02-30'"));
	assert_int_equal(report_timeliness(f->st, f->cfg, "2028-01-01", NULL, &rows, &n), 0);
	assert_int_equal(n, 0);
	assert_null(rows);
}

/*
 * lead_days = 0 written in the configuration means no lead time (config
 * accepts 0 to 365; only an absent key means 14), as at intake: B1's nav
 * recipient, reached on the release day itself (lead 0), is reached, not
 * late, and the other rows keep their endpoints' lead days.
 */
static void test_lead_days_zero_means_zero(void **state)
{
	struct fixture *f = *state;
	struct report_timeliness_row *rows;
	struct gw_config *zero = calloc(1, sizeof(*zero));
	char text[sizeof(config_text) + 8];
	char *at;
	size_t n;

	assert_non_null(zero);
	snprintf(text, sizeof(text), "%s", config_text);
	at = strstr(text, "lead_days = 21");
	assert_non_null(at);
	memcpy(at, "lead_days = 0\n", strlen("lead_days = 0\n") + 1);
	assert_int_equal(config_parse(zero, text, "/d"), 0);
	assert_int_equal(report_lead_days(zero, "nav"), 0);
	assert_int_equal(report_lead_days(zero, "housing"), 14); /* the key absent */

	history(f);
	assert_int_equal(report_timeliness(f->st, zero, "2027-02-12", "2027-02-12", &rows, &n), 0);
	assert_int_equal(n, 1);
	/* Bergen 2027-02: housing reached (lead 14 >= 14), nav reached (0 >= 0), health late */
	expect(&rows[0], "Bergen fengsel", "2027-02", 1, 3, 2, 1, 0, 0, 0, 0, 0, 1);
	free(rows);
	free(zero);
}

static void test_certificates_in_use(void **state)
{
	struct gw_config *cfg = calloc(1, sizeof(*cfg));
	struct report_cert *rows;
	char text[4096];
	size_t n;
	int64_t now = timeutil_now_ms();

	assert_non_null(cfg);
	(void)state;
	snprintf(text, sizeof(text),
		 "[identity]\norgnr = 974760673\nkey = %s\n", tu_pki("gateway.key"));
	snprintf(text + strlen(text), sizeof(text) - strlen(text), "cert = %s\n",
		 tu_pki("gateway.pem"));
	snprintf(text + strlen(text), sizeof(text) - strlen(text), "trust = %s\n",
		 tu_pki("ca.pem"));
	snprintf(text + strlen(text), sizeof(text) - strlen(text),
		 "[endpoint nav]\norgnr = 964338531\nservices = nav\nurl = https://n/\n"
		 "trust = %s\n", tu_pki("ca.pem"));
	snprintf(text + strlen(text), sizeof(text) - strlen(text), "encrypt_cert = %s\n",
		 tu_pki("expired.pem"));
	assert_int_equal(config_parse(cfg, text, "/"), 0);
	assert_int_equal(report_certificates(cfg, now, &rows, &n), 0);
	/* identity, trust (ca.pem, listed once though nav names it too), nav encrypt */
	assert_int_equal(n, 3);
	assert_string_equal(rows[0].role, "identity");
	assert_true(rows[0].days_left > 60);
	assert_string_equal(rows[1].role, "trust");
	assert_string_equal(rows[2].role, "endpoint nav encrypt");
	assert_string_equal(rows[2].error, "");
	assert_true(rows[2].days_left < 0); /* expired.pem ended yesterday */
	assert_true(rows[2].days_left >= -2);
	free(rows);
	free(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_crafted_history, setup, teardown),
		cmocka_unit_test_setup_teardown(test_period_and_default_lead, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lead_days_zero_means_zero, setup, teardown),
		cmocka_unit_test(test_certificates_in_use),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
