/*
 * test_metrics: the Prometheus exposition rendered against a store with
 * known content and a fixed clock: exact gauge, counter and histogram
 * lines, label escaping, bounded label sets, the lateness rule of SPEC
 * section 9, and a parser that checks every line of the text format 0.0.4
 * (promtool is not available here).
 */
#include "testutil.h"
#include "config.h"
#include "err.h"
#include "metrics.h"
#include "store.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOW INT64_C(1795305600000) /* 2026-11-22T00:00:00Z, 01:00 in Oslo */
#define HOUR INT64_C(3600000)

struct fixture {
	char dir[400];
	store *st;
	struct gw_config cfg;
};

static void add_notice(store *st, const char *id, const char *kind, const char *date)
{
	struct store_notice n;
	static int seq;

	memset(&n, 0, sizeof(n));
	snprintf(n.notice_id, sizeof(n.notice_id), "%s", id);
	n.revision = 1;
	snprintf(n.kind, sizeof(n.kind), "%s", kind);
	snprintf(n.content_sha256, sizeof(n.content_sha256), "%064d", ++seq);
	snprintf(n.source_name, sizeof(n.source_name), "%s.xml", id);
	snprintf(n.sender_orgnr, sizeof(n.sender_orgnr), "974760673");
	snprintf(n.event_date, sizeof(n.event_date), "%s", date);
	snprintf(n.person_ref, sizeof(n.person_ref), "0123456789abcdef");
	n.received_ms = NOW - 48 * HOUR;
	assert_int_equal(st->ops->notice_insert(st, &n), 0);
}

static void add_message(store *st, const char *mid, const char *nid, const char *kind,
			const char *endpoint, enum msg_state state, const char *date,
			int64_t created)
{
	struct store_message m;

	memset(&m, 0, sizeof(m));
	snprintf(m.message_id, sizeof(m.message_id), "%s", mid);
	snprintf(m.notice_id, sizeof(m.notice_id), "%s", nid);
	m.revision = 1;
	snprintf(m.kind, sizeof(m.kind), "%s", kind);
	snprintf(m.service, sizeof(m.service), "housing");
	snprintf(m.recipient_orgnr, sizeof(m.recipient_orgnr), "958935420");
	snprintf(m.endpoint, sizeof(m.endpoint), "%s", endpoint);
	m.state = state;
	snprintf(m.event_date, sizeof(m.event_date), "%s", date);
	m.created_ms = created;
	m.next_attempt_ms = created;
	m.deadline_ms = created + 14 * 24 * HOUR;
	snprintf(m.digest_b64, sizeof(m.digest_b64), "AAAA");
	if (state != MSG_HELD)
		assert_int_equal(gw_buf_puts(&m.signed_bytes, "<Message/>"), 0);
	assert_int_equal(st->ops->message_insert(st, &m), 0);
	store_message_clear(&m);
}

static void add_receipt(store *st, const char *mid, int64_t when)
{
	struct store_receipt r;

	memset(&r, 0, sizeof(r));
	snprintf(r.message_id, sizeof(r.message_id), "%s", mid);
	snprintf(r.status, sizeof(r.status), "accepted");
	r.verified = true;
	r.received_ms = when;
	assert_int_equal(gw_buf_puts(&r.bytes, "<Receipt/>"), 0);
	assert_int_equal(st->ops->receipt_insert(st, &r), 0);
	store_receipt_clear(&r);
}

/*
 * The store:
 *   N-SOON   release 2026-11-25 (3 days; lead 14): late. delivered (receipt
 *            now), queued (created 1 h ago), held.
 *   N-LATER  release 2027-06-01: not late. delivered, failed, sending
 *            (created 10 min ago).
 *   N-PAST   release 2026-11-10, queued 30 h ago: late, but released already,
 *            so not counted; it is the oldest undelivered.
 *   N-XFER   transfer 2026-11-23: transfers are never late.
 *   N-SLOW   release 2026-12-30 (38 days): reached now by endpoint "slow"
 *            (lead 60): late; by "nav" (lead 14): on time.
 */
static int setup(void **state)
{
	static struct fixture f;
	char text[2048];
	store *st;

	memset(&f, 0, sizeof(f));
	snprintf(f.dir, sizeof(f.dir), "%s", tu_tmpdir("metrics"));
	snprintf(text, sizeof(text),
		 "[identity]\norgnr = 974760673\nkey = %s\n", tu_pki("gateway.key"));
	snprintf(text + strlen(text), sizeof(text) - strlen(text), "cert = %s\n",
		 tu_pki("gateway.pem"));
	snprintf(text + strlen(text), sizeof(text) - strlen(text),
		 "trust = %s\n\n[endpoint nav]\norgnr = 889960221\nservices = nav\n"
		 "municipalities = 0301\nurl = https://127.0.0.1:1/n\n",
		 tu_pki("ca.pem"));
	snprintf(text + strlen(text), sizeof(text) - strlen(text),
		 "encrypt_cert = %s\nencrypt_cert = %s/missing.pem\n\n"
		 "[endpoint slow]\norgnr = 958935420\nservices = housing\nmunicipalities = 0302\n"
		 "url = https://127.0.0.1:1/s\nlead_days = 60\n",
		 tu_pki("nav.pem"), f.dir);
	if (config_parse(&f.cfg, text, f.dir) != 0) {
		fprintf(stderr, "config: %s\n", gw_error_last());
		return -1;
	}
	{
		char path[512];
		snprintf(path, sizeof(path), "%s/gateway.db", f.dir);
		if (store_sqlite_open(&f.st, path) != 0)
			return -1;
	}
	st = f.st;
	add_notice(st, "N-PAST", "release", "2026-11-10");
	add_message(st, "00000000-0000-4000-8000-000000000001", "N-PAST", "release", "nav",
		    MSG_QUEUED, "2026-11-10", NOW - 30 * HOUR);
	add_notice(st, "N-SOON", "release", "2026-11-25");
	add_message(st, "00000000-0000-4000-8000-000000000002", "N-SOON", "release", "nav",
		    MSG_DELIVERED, "2026-11-25", NOW - 2 * HOUR);
	add_receipt(st, "00000000-0000-4000-8000-000000000002", NOW);
	add_message(st, "00000000-0000-4000-8000-000000000003", "N-SOON", "release", "nav",
		    MSG_QUEUED, "2026-11-25", NOW - HOUR);
	add_message(st, "00000000-0000-4000-8000-000000000004", "N-SOON", "release", "",
		    MSG_HELD, "2026-11-25", NOW - HOUR);
	add_notice(st, "N-LATER", "release", "2027-06-01");
	add_message(st, "00000000-0000-4000-8000-000000000005", "N-LATER", "release", "nav",
		    MSG_DELIVERED, "2027-06-01", NOW - HOUR);
	add_receipt(st, "00000000-0000-4000-8000-000000000005", NOW);
	add_message(st, "00000000-0000-4000-8000-000000000006", "N-LATER", "release", "nav",
		    MSG_FAILED, "2027-06-01", NOW - HOUR);
	add_message(st, "00000000-0000-4000-8000-000000000007", "N-LATER", "release", "nav",
		    MSG_SENDING, "2027-06-01", NOW - 600000);
	add_notice(st, "N-XFER", "transfer", "2026-11-23");
	add_message(st, "00000000-0000-4000-8000-000000000008", "N-XFER", "transfer", "nav",
		    MSG_QUEUED, "2026-11-23", NOW - HOUR);
	add_notice(st, "N-SLOW", "release", "2026-12-30");
	add_message(st, "00000000-0000-4000-8000-000000000009", "N-SLOW", "release", "slow",
		    MSG_DELIVERED, "2026-12-30", NOW - HOUR);
	add_receipt(st, "00000000-0000-4000-8000-000000000009", NOW);
	add_message(st, "00000000-0000-4000-8000-000000000010", "N-SLOW", "release", "nav",
		    MSG_DELIVERED, "2026-12-30", NOW - HOUR);
	add_receipt(st, "00000000-0000-4000-8000-000000000010", NOW);
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	f->st->ops->close(f->st);
	tu_rmrf(f->dir);
	return 0;
}

static void assert_line(const gw_buf *out, const char *line)
{
	char needle[1024];

	snprintf(needle, sizeof(needle), "\n%s\n", line);
	if (!strstr((const char *)out->data, needle)) {
		fprintf(stderr, "missing line: %s\n--- output:\n%s", line, (const char *)out->data);
		fail();
	}
}

/* ---- a checker for the text format 0.0.4 ------------------------------------ */

struct family {
	char name[128];
	char type[16];
	int help, typed, samples;
};

static struct family *family_of(struct family *fams, size_t *n, const char *name)
{
	for (size_t i = 0; i < *n; i++)
		if (!strcmp(fams[i].name, name))
			return &fams[i];
	snprintf(fams[*n].name, sizeof(fams[0].name), "%s", name);
	return &fams[(*n)++];
}

static size_t metric_name(const char *s)
{
	size_t i = 0;

	if (!(isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == ':'))
		return 0;
	while (isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == ':')
		i++;
	return i;
}

/* Labels: {name="value",...}; returns the length or 0 when malformed. */
static size_t labels(const char *s, char *le, size_t le_len)
{
	size_t i = 1;

	if (s[0] != '{')
		return 0;
	le[0] = '\0';
	while (s[i] != '}') {
		size_t n = metric_name(s + i), v = 0;
		bool is_le = n == 2 && !strncmp(s + i, "le", 2);

		if (n == 0 || strchr(s + i, ':') == s + i)
			return 0;
		i += n;
		if (s[i++] != '=' || s[i++] != '"')
			return 0;
		while (s[i] != '"') {
			if (!s[i] || s[i] == '\n')
				return 0;
			if (s[i] == '\\') {
				if (s[i + 1] != '\\' && s[i + 1] != '"' && s[i + 1] != 'n')
					return 0;
				i++;
			}
			if (is_le && v + 1 < le_len)
				le[v++] = s[i];
			i++;
		}
		if (is_le)
			le[v] = '\0';
		i++;
		if (s[i] == ',')
			i++;
		else if (s[i] != '}')
			return 0;
	}
	return i + 1;
}

static bool value_ok(const char *s, double *out)
{
	char *end;

	if (!strcmp(s, "+Inf") || !strcmp(s, "-Inf") || !strcmp(s, "NaN")) {
		*out = s[0] == '-' ? -INFINITY : INFINITY;
		return true;
	}
	*out = strtod(s, &end);
	return end != s && *end == '\0';
}

/* Fails the test at the first line that breaks the format. */
static void check_exposition(const char *text)
{
	struct family fams[64];
	size_t n_fams = 0;
	char line[2048], prev_bucket_series[1024] = "";
	double prev_bucket = -1;
	const char *p = text;

	memset(fams, 0, sizeof(fams));
	assert_true(text[0] != '\0' && text[strlen(text) - 1] == '\n');
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = (size_t)(nl - p);

		assert_non_null(nl);
		assert_true(len < sizeof(line));
		memcpy(line, p, len);
		line[len] = '\0';
		p = nl + 1;
		if (!strncmp(line, "# HELP ", 7) || !strncmp(line, "# TYPE ", 7)) {
			size_t n = metric_name(line + 7);
			char name[128];
			struct family *f;

			assert_true(n > 0 && line[7 + n] == ' ' && line[8 + n] != '\0');
			snprintf(name, sizeof(name), "%.*s", (int)n, line + 7);
			f = family_of(fams, &n_fams, name);
			assert_int_equal(f->samples, 0); /* HELP and TYPE come before samples */
			if (line[2] == 'H') {
				assert_int_equal(f->help++, 0);
			} else {
				const char *type = line + 8 + n;
				assert_int_equal(f->typed++, 0);
				assert_true(!strcmp(type, "counter") || !strcmp(type, "gauge") ||
					    !strcmp(type, "histogram") || !strcmp(type, "summary") ||
					    !strcmp(type, "untyped"));
				snprintf(f->type, sizeof(f->type), "%s", type);
			}
			continue;
		}
		assert_true(line[0] != '#' && line[0] != '\0');
		{
			size_t n = metric_name(line), l = 0;
			char name[128], fam[128], le[32] = "";
			struct family *f = NULL;
			double v;

			assert_true(n > 0);
			snprintf(name, sizeof(name), "%.*s", (int)n, line);
			if (line[n] == '{')
				assert_true((l = labels(line + n, le, sizeof(le))) > 0);
			assert_int_equal(line[n + l], ' ');
			assert_true(value_ok(line + n + l + 1, &v));
			for (size_t i = 0; i < n_fams && !f; i++)
				if (!strcmp(fams[i].name, name))
					f = &fams[i];
			if (!f) {
				snprintf(fam, sizeof(fam), "%s", name);
				for (const char *suffix = NULL; !f;) {
					char *u = strrchr(fam, '_');
					assert_non_null(u);
					suffix = u;
					assert_true(!strcmp(suffix, "_bucket") || !strcmp(suffix, "_sum") ||
						    !strcmp(suffix, "_count"));
					*u = '\0';
					for (size_t i = 0; i < n_fams && !f; i++)
						if (!strcmp(fams[i].name, fam))
							f = &fams[i];
					assert_non_null(f);
					assert_string_equal(f->type, "histogram");
				}
			}
			assert_int_equal(f->typed, 1); /* every sample's family is declared */
			f->samples++;
			if (!strcmp(f->type, "counter"))
				assert_true(v >= 0 && strstr(name, "_total"));
			if (strlen(name) > 7 && !strcmp(name + strlen(name) - 7, "_bucket")) {
				/* cumulative: non-decreasing within a series, ends at +Inf */
				char series[1024];
				double bound;
				const char *lep = strstr(line, ",le=\"");

				assert_non_null(lep);
				assert_true(le[0] && value_ok(le, &bound));
				snprintf(series, sizeof(series), "%.*s", (int)(lep - line), line);
				if (strcmp(series, prev_bucket_series) != 0) {
					snprintf(prev_bucket_series, sizeof(prev_bucket_series), "%s",
						 series);
					prev_bucket = -1;
				}
				assert_true(v >= prev_bucket);
				prev_bucket = v;
			}
		}
	}
}

/* ---- tests ---------------------------------------------------------------- */

static void test_store_gauges_exact(void **state)
{
	struct fixture *f = *state;
	gw_buf out = GW_BUF_INIT;

	assert_int_equal(gw_buf_puts(&out, "\n"), 0); /* so assert_line finds the first line */
	assert_int_equal(metrics_render_at(NULL, f->st, &f->cfg, NOW, &out), 0);
	assert_line(&out, "# HELP notice_gateway_messages Messages in the store by state.");
	assert_line(&out, "# TYPE notice_gateway_messages gauge");
	assert_line(&out, "notice_gateway_messages{state=\"queued\"} 3");
	assert_line(&out, "notice_gateway_messages{state=\"sending\"} 1");
	assert_line(&out, "notice_gateway_messages{state=\"delivered\"} 4");
	assert_line(&out, "notice_gateway_messages{state=\"failed\"} 1");
	assert_line(&out, "notice_gateway_messages{state=\"held\"} 1");
	assert_line(&out, "notice_gateway_messages{state=\"superseded\"} 0");
	assert_line(&out, "notice_gateway_messages{state=\"cancelled\"} 0");
	/* the oldest queued or sending: N-PAST, 30 hours */
	assert_line(&out, "notice_gateway_oldest_undelivered_age_seconds 108000.000");
	/* N-SOON (3 messages) and N-SLOW (the slow endpoint's one) */
	assert_line(&out, "notice_gateway_late_notices 2");
	assert_line(&out, "notice_gateway_late_messages 4");
	assert_line(&out, "# TYPE notice_gateway_deliveries_total counter");
	assert_line(&out, "# TYPE notice_gateway_attempt_duration_seconds histogram");
	check_exposition((const char *)out.data + 1);
	gw_buf_free(&out);
}

static void test_certificates(void **state)
{
	struct fixture *f = *state;
	gw_buf out = GW_BUF_INIT;
	char prefix[600];
	const char *p;

	assert_int_equal(metrics_render_at(NULL, f->st, &f->cfg, NOW, &out), 0);
	snprintf(prefix, sizeof(prefix),
		 "\nnotice_gateway_certificate_expiry_days{role=\"identity\",endpoint=\"\",file=\"%s\","
		 "sha256=\"", tu_pki("gateway.pem"));
	p = strstr((const char *)out.data, prefix);
	assert_non_null(p);
	p += strlen(prefix);
	assert_int_equal(strspn(p, "0123456789abcdef"), 16);
	/* 825 days issued by certs/mkpki.sh: some positive number of days */
	assert_true(strtod(strstr(p, "} ") + 2, NULL) > 700);
	snprintf(prefix, sizeof(prefix),
		 "\nnotice_gateway_certificate_expiry_days{role=\"encrypt\",endpoint=\"nav\",file=\"%s\"",
		 tu_pki("nav.pem"));
	assert_non_null(strstr((const char *)out.data, prefix));
	assert_non_null(strstr((const char *)out.data,
			       "\nnotice_gateway_certificate_expiry_days{role=\"trust\",endpoint=\"\""));
	/* the missing encrypt_cert */
	assert_non_null(strstr((const char *)out.data,
			       "\nnotice_gateway_certificate_files_unreadable 1\n"));
	check_exposition((const char *)out.data);
	gw_buf_free(&out);
}

static void test_counters_and_histogram_exact(void **state)
{
	struct fixture *f = *state;
	struct metrics *m;
	gw_buf out = GW_BUF_INIT;

	assert_int_equal(metrics_new(&m), 0);
	metrics_count_delivery(m, "nav", "delivered", "accepted");
	metrics_count_delivery(m, "nav", "retry", "connection: Failed to connect to 127.0.0.1 port 1");
	metrics_count_delivery(m, "nav", "retry", "connection: Connection reset by peer");
	metrics_count_delivery(m, "health", "failed", "refused: TLS client not allowed (HTTP 403)");
	metrics_count_delivery(m, "we\"ird\\na\nme", "failed", "retry horizon reached: timeout: x");
	metrics_count_receipt_failure(m, "bad-signature");
	metrics_count_receipt_failure(m, "bad-signature");
	metrics_count_receipt_failure(m, "Not A Code!");
	metrics_observe_attempt(m, "nav", 0.003);
	metrics_observe_attempt(m, "nav", 0.2);
	metrics_observe_attempt(m, "nav", 31);
	assert_int_equal(gw_buf_puts(&out, "\n"), 0);
	assert_int_equal(metrics_render_at(m, f->st, &f->cfg, NOW, &out), 0);
	assert_line(&out, "notice_gateway_deliveries_total{endpoint=\"nav\",outcome=\"delivered\","
			  "reason=\"accepted\"} 1");
	assert_line(&out, "notice_gateway_deliveries_total{endpoint=\"nav\",outcome=\"retry\","
			  "reason=\"connection\"} 2");
	assert_line(&out, "notice_gateway_deliveries_total{endpoint=\"health\",outcome=\"failed\","
			  "reason=\"refused-403\"} 1");
	assert_line(&out, "notice_gateway_deliveries_total{endpoint=\"we\\\"ird\\\\na?me\","
			  "outcome=\"failed\",reason=\"retry-horizon\"} 1");
	assert_line(&out, "notice_gateway_receipt_verification_failures_total{reason=\"bad-signature\"} 2");
	assert_line(&out, "notice_gateway_receipt_verification_failures_total{reason=\"other\"} 1");
	assert_line(&out, "notice_gateway_attempt_duration_seconds_bucket{endpoint=\"nav\",le=\"0.005\"} 1");
	assert_line(&out, "notice_gateway_attempt_duration_seconds_bucket{endpoint=\"nav\",le=\"0.1\"} 1");
	assert_line(&out, "notice_gateway_attempt_duration_seconds_bucket{endpoint=\"nav\",le=\"0.25\"} 2");
	assert_line(&out, "notice_gateway_attempt_duration_seconds_bucket{endpoint=\"nav\",le=\"30\"} 2");
	assert_line(&out, "notice_gateway_attempt_duration_seconds_bucket{endpoint=\"nav\",le=\"+Inf\"} 3");
	assert_line(&out, "notice_gateway_attempt_duration_seconds_sum{endpoint=\"nav\"} 31.203000");
	assert_line(&out, "notice_gateway_attempt_duration_seconds_count{endpoint=\"nav\"} 3");
	check_exposition((const char *)out.data + 1);
	gw_buf_free(&out);
	metrics_free(m);
}

static void test_label_sets_are_bounded(void **state)
{
	struct fixture *f = *state;
	struct metrics *m;
	gw_buf out = GW_BUF_INIT;
	char name[32];
	size_t series = 0;
	const char *p;

	assert_int_equal(metrics_new(&m), 0);
	for (int i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "ep%d", i);
		metrics_count_delivery(m, name, "retry", "some new sentence nobody classified");
		metrics_observe_attempt(m, name, 1);
	}
	assert_int_equal(metrics_render_at(m, f->st, &f->cfg, NOW, &out), 0);
	for (p = (const char *)out.data; (p = strstr(p, "\nnotice_gateway_deliveries_total{")); p++)
		series++;
	assert_int_equal(series, METRICS_MAX_SERIES);
	assert_non_null(strstr((const char *)out.data,
			       "\nnotice_gateway_deliveries_total{endpoint=\"other\",outcome=\"other\","
			       "reason=\"other\"} 873\n"));
	assert_non_null(strstr((const char *)out.data,
			       "\nnotice_gateway_attempt_duration_seconds_count{endpoint=\"other\"} 873\n"));
	check_exposition((const char *)out.data);
	gw_buf_free(&out);
	metrics_free(m);
}

static void test_reason_classes(void **state)
{
	(void)state;
	assert_string_equal(metrics_reason_class("accepted"), "accepted");
	assert_string_equal(metrics_reason_class("timeout: Operation timed out"), "timeout");
	assert_string_equal(metrics_reason_class("tls: wrong server organisation: 1"), "wrong-server-org");
	assert_string_equal(metrics_reason_class("tls: SSL certificate problem"), "tls");
	assert_string_equal(metrics_reason_class("HTTP 200 without a receipt"), "no-receipt");
	assert_string_equal(metrics_reason_class("receipt not verified: bad-signature: x"),
			    "receipt-not-verified");
	assert_string_equal(metrics_reason_class("rejected by receiver: schema-invalid"), "rejected");
	assert_string_equal(metrics_reason_class("rejected (HTTP 400 without a receipt)"),
			    "rejected-unverified");
	assert_string_equal(metrics_reason_class("temporary: HTTP 503"), "http-temporary");
	assert_string_equal(metrics_reason_class("unexpected HTTP 302"), "http-unexpected");
	assert_string_equal(metrics_reason_class("retry horizon reached: connection: x"),
			    "retry-horizon");
	assert_string_equal(metrics_reason_class("abandoned: the gateway stopped while sending"),
			    "abandoned");
	assert_string_equal(metrics_reason_class("<script>"), "other");
	assert_string_equal(metrics_reason_class(NULL), "none");
}

static void test_label_escape(void **state)
{
	gw_buf out = GW_BUF_INIT;

	(void)state;
	assert_int_equal(metrics_label_escape(&out, "a\\b\"c\nd\te\xc3\xa6"), 0);
	assert_string_equal((const char *)out.data, "a\\\\b\\\"c\\nd?e??");
	gw_buf_free(&out);
}

static void test_lateness_rule(void **state)
{
	struct fixture *f = *state;
	struct store_message m;

	memset(&m, 0, sizeof(m));
	snprintf(m.kind, sizeof(m.kind), "release");
	snprintf(m.endpoint, sizeof(m.endpoint), "nav"); /* lead 14 */
	snprintf(m.event_date, sizeof(m.event_date), "2026-12-06");
	m.state = MSG_QUEUED;
	/* 2026-11-22 in Oslo: 14 days before: on time, not late */
	assert_false(metrics_message_late(&f->cfg, &m, 0, NOW));
	/* a day later, still not reached: late */
	assert_true(metrics_message_late(&f->cfg, &m, 0, NOW + 24 * HOUR));
	/* 23:30 UTC on the 22nd is already the 23rd in Oslo */
	assert_true(metrics_message_late(&f->cfg, &m, 0, NOW + 23 * HOUR + 1800000));
	/* delivered: judged by the receipt's time, not now */
	m.state = MSG_DELIVERED;
	assert_false(metrics_message_late(&f->cfg, &m, NOW, NOW + 30 * 24 * HOUR));
	assert_true(metrics_message_late(&f->cfg, &m, NOW + 24 * HOUR, NOW));
	/* cancelled and superseded are never late; neither are transfers */
	m.state = MSG_CANCELLED;
	assert_false(metrics_message_late(&f->cfg, &m, 0, NOW + 24 * HOUR));
	m.state = MSG_QUEUED;
	snprintf(m.kind, sizeof(m.kind), "transfer");
	assert_false(metrics_message_late(&f->cfg, &m, 0, NOW + 24 * HOUR));
	/* no endpoint: the default 14 days */
	snprintf(m.kind, sizeof(m.kind), "release");
	m.endpoint[0] = '\0';
	assert_true(metrics_message_late(&f->cfg, &m, 0, NOW + 24 * HOUR));
	assert_true(metrics_message_late(NULL, &m, 0, NOW + 24 * HOUR));
}

static void test_without_store_or_config(void **state)
{
	gw_buf out = GW_BUF_INIT;
	struct metrics *m;

	(void)state;
	assert_int_equal(metrics_new(&m), 0);
	metrics_count_delivery(NULL, "x", "retry", "timeout");   /* metrics off: no-op */
	metrics_observe_attempt(NULL, "x", 1);
	metrics_count_receipt_failure(NULL, "malformed");
	assert_int_equal(metrics_render_at(m, NULL, NULL, NOW, &out), 0);
	check_exposition((const char *)out.data);
	assert_null(strstr((const char *)out.data, "notice_gateway_messages{"));
	gw_buf_free(&out);
	metrics_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_store_gauges_exact, setup, teardown),
		cmocka_unit_test_setup_teardown(test_certificates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_counters_and_histogram_exact, setup, teardown),
		cmocka_unit_test_setup_teardown(test_label_sets_are_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lateness_rule, setup, teardown),
		cmocka_unit_test(test_reason_classes),
		cmocka_unit_test(test_label_escape),
		cmocka_unit_test(test_without_store_or_config),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
