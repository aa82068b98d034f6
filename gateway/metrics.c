/*
 * metrics: counters, a latency histogram and scrape-time gauges in the
 * Prometheus text format 0.0.4. See metrics.h for what is counted and how
 * labels stay bounded; docs/WEB.md for the list operators read.
 *
 * What it relies on: the store's counts() and messages_list() (rows in
 * creation order, without signed bytes, callbacks may read other things),
 * receipt_get(), the configuration's certificate files, pki_cert_seconds_left.
 */
#include "metrics.h"
#include "config.h"
#include "err.h"
#include "pki.h"
#include "report.h"
#include "timeutil.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const bucket_le[] = { "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
					 "1", "2.5", "5", "10", "30" };
static const double bucket_bound[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
				       1, 2.5, 5, 10, 30 };
#define N_BUCKETS (sizeof(bucket_bound) / sizeof(bucket_bound[0]))

struct counter {
	char label[3][METRICS_LABEL_MAX];
	unsigned long long value;
};

struct counter_family {
	struct counter series[METRICS_MAX_SERIES];
	size_t n;
};

struct histogram {
	char endpoint[METRICS_LABEL_MAX];
	unsigned long long bucket[N_BUCKETS]; /* non-cumulative; summed when rendered */
	unsigned long long count;
	double sum;
};

struct metrics {
	struct counter_family deliveries;       /* endpoint, outcome, reason */
	struct counter_family receipt_failures; /* reason */
	struct histogram latency[METRICS_MAX_SERIES];
	size_t n_latency;
};

int metrics_new(struct metrics **out)
{
	*out = calloc(1, sizeof(**out));
	if (!*out)
		return gw_error_set(GW_ENOMEM, "out of memory for the metrics");
	return 0;
}

void metrics_free(struct metrics *m)
{
	free(m);
}

/* ---- labels ---------------------------------------------------------------- */

/* Printable ASCII, at most METRICS_LABEL_MAX - 1 bytes; the rest is '?'. */
static void label_copy(char out[METRICS_LABEL_MAX], const char *s)
{
	size_t i = 0;

	for (; s && s[i] && i < METRICS_LABEL_MAX - 1; i++)
		out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	out[i] = '\0';
}

int metrics_label_escape(gw_buf *out, const char *s)
{
	int rc = 0;

	for (; s && *s && rc == 0; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '\\')
			rc = gw_buf_puts(out, "\\\\");
		else if (c == '"')
			rc = gw_buf_puts(out, "\\\"");
		else if (c == '\n')
			rc = gw_buf_puts(out, "\\n");
		else if (c < 0x20 || c >= 0x7f)
			rc = gw_buf_put(out, "?", 1);
		else
			rc = gw_buf_put(out, &c, 1);
	}
	return rc;
}

/*
 * Reason sentences (outcome.c) start with a fixed phrase; the class is the
 * phrase. Longest, most specific prefixes first.
 */
static const struct {
	const char *prefix, *cls;
} reason_classes[] = {
	{ "retry horizon reached", "retry-horizon" },
	{ "tls: wrong server organisation", "wrong-server-org" },
	{ "accepted", "accepted" },
	{ "duplicate", "duplicate" },
	{ "timeout", "timeout" },
	{ "connection", "connection" },
	{ "tls", "tls" },
	{ "response too large", "response-too-large" },
	{ "transfer", "transfer" },
	{ "HTTP 200 without a receipt", "no-receipt" },
	{ "receipt not verified", "receipt-not-verified" },
	{ "receipt status", "receipt-status-unknown" },
	{ "rejected by receiver", "rejected" },
	{ "rejected (HTTP", "rejected-unverified" },
	{ "rejected (receipt not verified", "rejected-unverified" },
	{ "refused: TLS client not allowed", "refused-403" },
	{ "refused: message too large", "refused-413" },
	{ "temporary: HTTP", "http-temporary" },
	{ "unexpected HTTP", "http-unexpected" },
	{ "no endpoint", "no-endpoint" },
	{ "no consent", "no-consent" },
	{ "abandoned", "abandoned" },
};

const char *metrics_reason_class(const char *reason)
{
	if (!reason || !reason[0])
		return "none";
	for (size_t i = 0; i < sizeof(reason_classes) / sizeof(reason_classes[0]); i++)
		if (strncmp(reason, reason_classes[i].prefix, strlen(reason_classes[i].prefix)) == 0)
			return reason_classes[i].cls;
	return "other";
}

/* receipt_verify() codes are short words; anything else is "other". */
static const char *receipt_reason_class(const char *reason)
{
	size_t n = 0;

	if (!reason || !reason[0])
		return "unknown";
	for (; reason[n]; n++) {
		char c = reason[n];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return "other";
	}
	return n < 32 ? reason : "other";
}

/* ---- counting -------------------------------------------------------------- */

static struct counter *counter_find(struct counter_family *f, const char *a, const char *b,
				    const char *c)
{
	char key[3][METRICS_LABEL_MAX];

	label_copy(key[0], a);
	label_copy(key[1], b);
	label_copy(key[2], c);
	for (size_t i = 0; i < f->n; i++)
		if (!strcmp(f->series[i].label[0], key[0]) && !strcmp(f->series[i].label[1], key[1]) &&
		    !strcmp(f->series[i].label[2], key[2]))
			return &f->series[i];
	if (f->n == METRICS_MAX_SERIES - 1) {
		/* The last slot collects everything that does not fit. */
		label_copy(key[0], a ? "other" : NULL);
		label_copy(key[1], b ? "other" : NULL);
		label_copy(key[2], c ? "other" : NULL);
		for (size_t i = 0; i < f->n; i++)
			if (!strcmp(f->series[i].label[0], key[0]) &&
			    !strcmp(f->series[i].label[1], key[1]) &&
			    !strcmp(f->series[i].label[2], key[2]))
				return &f->series[i];
	}
	if (f->n == METRICS_MAX_SERIES)
		return &f->series[METRICS_MAX_SERIES - 1];
	memcpy(f->series[f->n].label, key, sizeof(key));
	f->series[f->n].value = 0;
	return &f->series[f->n++];
}

void metrics_count_delivery(struct metrics *m, const char *endpoint, const char *outcome,
			    const char *reason)
{
	if (!m)
		return;
	counter_find(&m->deliveries, endpoint ? endpoint : "", outcome ? outcome : "unknown",
		     metrics_reason_class(reason))->value++;
}

void metrics_count_receipt_failure(struct metrics *m, const char *reason)
{
	if (!m)
		return;
	counter_find(&m->receipt_failures, receipt_reason_class(reason), NULL, NULL)->value++;
}

void metrics_observe_attempt(struct metrics *m, const char *endpoint, double seconds)
{
	char key[METRICS_LABEL_MAX];
	struct histogram *h = NULL;

	if (!m)
		return;
	if (!(seconds >= 0)) /* also NaN */
		seconds = 0;
	label_copy(key, endpoint ? endpoint : "");
	for (size_t i = 0; i < m->n_latency && !h; i++)
		if (!strcmp(m->latency[i].endpoint, key))
			h = &m->latency[i];
	if (!h && m->n_latency >= METRICS_MAX_SERIES - 1)
		label_copy(key, "other");
	for (size_t i = 0; i < m->n_latency && !h; i++)
		if (!strcmp(m->latency[i].endpoint, key))
			h = &m->latency[i];
	if (!h) {
		h = &m->latency[m->n_latency++];
		memset(h, 0, sizeof(*h));
		memcpy(h->endpoint, key, sizeof(key));
	}
	for (size_t b = 0; b < N_BUCKETS; b++) {
		if (seconds <= bucket_bound[b]) {
			h->bucket[b]++;
			break;
		}
	}
	h->count++;
	h->sum += seconds;
}

/* ---- lateness -------------------------------------------------------------- */

/* The same lead days as the timeliness report (report.h), so the two agree. */
static int lead_days_of(const struct gw_config *cfg, const struct store_message *m)
{
	return report_lead_days(cfg, m->endpoint);
}

static bool can_be_late(const struct store_message *m)
{
	return strcmp(m->kind, "release") == 0 &&
	       (m->state == MSG_QUEUED || m->state == MSG_SENDING || m->state == MSG_HELD ||
		m->state == MSG_FAILED || m->state == MSG_DELIVERED);
}

bool metrics_message_late(const struct gw_config *cfg, const struct store_message *m,
			  int64_t reached_ms, int64_t now_ms)
{
	struct gw_date release, when;

	if (!can_be_late(m) || timeutil_parse_date(m->event_date, &release) < 0)
		return false;
	if (m->state == MSG_DELIVERED && reached_ms <= 0)
		return false; /* delivered without a receipt time: nothing to judge by */
	when = timeutil_oslo_date(m->state == MSG_DELIVERED ? reached_ms : now_ms);
	return timeutil_days_from_civil(release) - timeutil_days_from_civil(when) <
	       lead_days_of(cfg, m);
}

struct late_scan {
	store *st;
	const struct gw_config *cfg;
	int64_t now_ms;
	int64_t today;
	store_message_cb cb;
	void *ctx;
	int err;
};

static int late_one(const struct store_message *m, void *opaque)
{
	struct late_scan *ls = opaque;
	struct store_receipt r;
	struct gw_date release;
	int64_t reached = 0;
	bool late;
	int rc;

	if (!can_be_late(m) || timeutil_parse_date(m->event_date, &release) < 0 ||
	    timeutil_days_from_civil(release) < ls->today)
		return 0;
	if (m->state == MSG_DELIVERED) {
		memset(&r, 0, sizeof(r));
		rc = ls->st->ops->receipt_get(ls->st, m->message_id, &r);
		if (rc == 0)
			reached = r.received_ms;
		store_receipt_clear(&r);
		if (rc < 0 && rc != GW_ENOTFOUND) {
			ls->err = rc;
			return 1;
		}
	}
	late = metrics_message_late(ls->cfg, m, reached, ls->now_ms);
	return late ? ls->cb(m, ls->ctx) : 0;
}

int metrics_late_messages(store *st, const struct gw_config *cfg, int64_t now_ms,
			  store_message_cb cb, void *ctx)
{
	struct store_filter all = { -1, NULL };
	struct late_scan ls = { st, cfg, now_ms, 0, cb, ctx, 0 };
	int rc;

	ls.today = timeutil_days_from_civil(timeutil_oslo_date(now_ms));
	rc = st->ops->messages_list(st, &all, late_one, &ls);
	return ls.err ? ls.err : rc;
}

struct weekend_scan {
	store *st;
	char today[11];
	char notice_id[128]; /* the notice revision whose flag is known */
	int revision;
	bool weekend;
	store_message_cb cb;
	void *ctx;
	int err;
};

static int weekend_one(const struct store_message *m, void *opaque)
{
	struct weekend_scan *ws = opaque;
	struct store_notice n;
	int rc;

	if (strcmp(m->event_date, ws->today) < 0)
		return 0;
	if (strcmp(m->notice_id, ws->notice_id) != 0 || m->revision != ws->revision) {
		if ((rc = ws->st->ops->notice_get(ws->st, m->notice_id, m->revision, &n)) < 0) {
			ws->err = rc;
			return 1;
		}
		snprintf(ws->notice_id, sizeof(ws->notice_id), "%s", m->notice_id);
		ws->revision = m->revision;
		ws->weekend = n.weekend_release;
	}
	return ws->weekend ? ws->cb(m, ws->ctx) : 0;
}

int metrics_weekend_messages(store *st, const struct store_filter *f, int64_t now_ms,
			     store_message_cb cb, void *ctx)
{
	struct store_filter all = { -1, NULL };
	struct gw_date d = timeutil_oslo_date(now_ms);
	struct weekend_scan ws = { st, "", "", 0, false, cb, ctx, 0 };
	int rc;

	snprintf(ws.today, sizeof(ws.today), "%04d-%02d-%02d", d.year, d.month, d.day);
	rc = st->ops->messages_list(st, f ? f : &all, weekend_one, &ws);
	return ws.err ? ws.err : rc;
}

/* ---- rendering: store gauges ---------------------------------------------- */

static void family(gw_buf *out, const char *name, const char *type, const char *help)
{
	gw_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static int first_row(const struct store_message *m, void *ctx)
{
	*(int64_t *)ctx = m->created_ms;
	return 1; /* rows come oldest first: one is enough */
}

static int oldest_undelivered(store *st, int64_t *oldest)
{
	static const enum msg_state waiting[] = { MSG_QUEUED, MSG_SENDING };
	int rc;

	*oldest = 0;
	for (size_t i = 0; i < 2; i++) {
		struct store_filter f = { (int)waiting[i], NULL };
		int64_t created = 0;

		if ((rc = st->ops->messages_list(st, &f, first_row, &created)) < 0)
			return rc;
		if (created > 0 && (*oldest == 0 || created < *oldest))
			*oldest = created;
	}
	return 0;
}

/* The late messages, and the distinct notice revisions among them. */
struct late_notices {
	struct late_key {
		char notice_id[65];
		int revision;
	} *keys;
	size_t n, cap;
	long long notices, messages;
	int err;
};

static int count_late(const struct store_message *m, void *ctx)
{
	struct late_notices *ln = ctx;

	ln->messages++;
	if (ln->n == ln->cap) {
		size_t cap = ln->cap ? ln->cap * 2 : 64;
		struct late_key *keys = realloc(ln->keys, cap * sizeof(*keys));

		if (!keys) {
			ln->err = gw_error_set(GW_ENOMEM, "out of memory counting late notices");
			return 1;
		}
		ln->keys = keys;
		ln->cap = cap;
	}
	snprintf(ln->keys[ln->n].notice_id, sizeof(ln->keys[0].notice_id), "%s", m->notice_id);
	ln->keys[ln->n++].revision = m->revision;
	return 0;
}

static int late_key_cmp(const void *a, const void *b)
{
	const struct late_key *x = a, *y = b;
	int c = strcmp(x->notice_id, y->notice_id);

	return c ? c : (x->revision > y->revision) - (x->revision < y->revision);
}

static void count_distinct(struct late_notices *ln)
{
	qsort(ln->keys, ln->n, sizeof(*ln->keys), late_key_cmp);
	for (size_t i = 0; i < ln->n; i++)
		if (i == 0 || late_key_cmp(&ln->keys[i - 1], &ln->keys[i]) != 0)
			ln->notices++;
}

static int render_store(store *st, const struct gw_config *cfg, int64_t now_ms, gw_buf *out)
{
	struct store_counts counts;
	struct late_notices ln;
	int64_t oldest;
	int rc;

	memset(&ln, 0, sizeof(ln));
	if ((rc = st->ops->counts(st, &counts)) < 0 || (rc = oldest_undelivered(st, &oldest)) < 0)
		return rc;
	rc = metrics_late_messages(st, cfg, now_ms, count_late, &ln);
	if (ln.err || rc < 0) {
		free(ln.keys);
		return ln.err ? ln.err : rc;
	}
	count_distinct(&ln);
	free(ln.keys);
	family(out, "notice_gateway_messages", "gauge", "Messages in the store by state.");
	for (int s = 0; s < MSG_STATE_COUNT; s++)
		gw_buf_printf(out, "notice_gateway_messages{state=\"%s\"} %lld\n",
			      store_state_name((enum msg_state)s), counts.by_state[s]);
	family(out, "notice_gateway_oldest_undelivered_age_seconds", "gauge",
	       "Age of the oldest queued or sending message; 0 when none.");
	gw_buf_printf(out, "notice_gateway_oldest_undelivered_age_seconds %.3f\n",
		      oldest > 0 && now_ms > oldest ? (double)(now_ms - oldest) / 1000.0 : 0.0);
	family(out, "notice_gateway_late_notices", "gauge",
	       "Release notices not yet released with a recipient reached, or still unreached,"
	       " inside the lead time.");
	gw_buf_printf(out, "notice_gateway_late_notices %lld\n", ln.notices);
	family(out, "notice_gateway_late_messages", "gauge",
	       "Messages of those notices that are late.");
	gw_buf_printf(out, "notice_gateway_late_messages %lld\n", ln.messages);
	return 0;
}

/* ---- rendering: certificates ----------------------------------------------- */

struct cert_render {
	gw_buf *out;
	int unreadable;
	char seen[64][PATH_MAX + 80]; /* role/endpoint/file already rendered */
	size_t n_seen;
};

static void cert_file(struct cert_render *cr, const char *role, const char *endpoint,
		      const char *path)
{
	char key[PATH_MAX + 80];
	BIO *bio;
	X509 *cert;
	int n = 0;

	snprintf(key, sizeof(key), "%s|%s|%s", role, endpoint, path);
	for (size_t i = 0; i < cr->n_seen; i++)
		if (!strcmp(cr->seen[i], key))
			return;
	if (cr->n_seen < sizeof(cr->seen) / sizeof(cr->seen[0]))
		snprintf(cr->seen[cr->n_seen++], sizeof(cr->seen[0]), "%s", key);
	if (!(bio = BIO_new_file(path, "r"))) {
		cr->unreadable++;
		return;
	}
	while ((cert = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		long long seconds;
		char fp[65];

		if (pki_cert_seconds_left(cert, &seconds) == 0 && pki_cert_fingerprint(cert, fp) == 0) {
			fp[16] = '\0';
			gw_buf_printf(cr->out, "notice_gateway_certificate_expiry_days{role=\"%s\","
				      "endpoint=\"", role);
			metrics_label_escape(cr->out, endpoint);
			gw_buf_puts(cr->out, "\",file=\"");
			metrics_label_escape(cr->out, path);
			gw_buf_printf(cr->out, "\",sha256=\"%s\"} %.3f\n", fp,
				      (double)seconds / 86400.0);
			n++;
		}
		X509_free(cert);
	}
	ERR_clear_error();
	BIO_free(bio);
	gw_error_clear();
	if (n == 0)
		cr->unreadable++;
}

static void render_certs(const struct gw_config *cfg, gw_buf *out)
{
	struct cert_render *cr = calloc(1, sizeof(*cr));

	if (!cr)
		return;
	cr->out = out;
	family(out, "notice_gateway_certificate_expiry_days", "gauge",
	       "Days until a certificate in use expires (negative when expired): role identity,"
	       " trust, endpoint-trust or encrypt.");
	if (cfg) {
		const struct config_identity *id = &cfg->identity;

		if (id->cert[0])
			cert_file(cr, "identity", "", id->cert);
		for (size_t i = 0; i < id->n_trust; i++)
			cert_file(cr, "trust", "", id->trust[i]);
		for (size_t e = 0; e < cfg->n_endpoints; e++) {
			const struct config_endpoint *ep = &cfg->endpoints[e];

			for (size_t i = 0; i < ep->n_trust; i++)
				cert_file(cr, "endpoint-trust", ep->name, ep->trust[i]);
			for (size_t i = 0; i < ep->n_encrypt_cert; i++)
				cert_file(cr, "encrypt", ep->name, ep->encrypt_cert[i]);
		}
	}
	family(out, "notice_gateway_certificate_files_unreadable", "gauge",
	       "Configured certificate files that could not be read at this scrape.");
	gw_buf_printf(out, "notice_gateway_certificate_files_unreadable %d\n", cr->unreadable);
	free(cr);
}

/* ---- rendering: counters --------------------------------------------------- */

static void render_counters(const struct metrics *m, gw_buf *out)
{
	family(out, "notice_gateway_deliveries_total", "counter",
	       "Finished delivery attempts by endpoint, outcome (delivered, retry, failed) and"
	       " reason class.");
	for (size_t i = 0; m && i < m->deliveries.n; i++) {
		const struct counter *c = &m->deliveries.series[i];

		gw_buf_puts(out, "notice_gateway_deliveries_total{endpoint=\"");
		metrics_label_escape(out, c->label[0]);
		gw_buf_puts(out, "\",outcome=\"");
		metrics_label_escape(out, c->label[1]);
		gw_buf_puts(out, "\",reason=\"");
		metrics_label_escape(out, c->label[2]);
		gw_buf_printf(out, "\"} %llu\n", c->value);
	}
	family(out, "notice_gateway_receipt_verification_failures_total", "counter",
	       "Receipts that came back but did not verify, by reason.");
	for (size_t i = 0; m && i < m->receipt_failures.n; i++) {
		const struct counter *c = &m->receipt_failures.series[i];

		gw_buf_puts(out, "notice_gateway_receipt_verification_failures_total{reason=\"");
		metrics_label_escape(out, c->label[0]);
		gw_buf_printf(out, "\"} %llu\n", c->value);
	}
	family(out, "notice_gateway_attempt_duration_seconds", "histogram",
	       "Duration of delivery attempts by endpoint.");
	for (size_t i = 0; m && i < m->n_latency; i++) {
		const struct histogram *h = &m->latency[i];
		unsigned long long cumulative = 0;

		for (size_t b = 0; b < N_BUCKETS; b++) {
			cumulative += h->bucket[b];
			gw_buf_puts(out, "notice_gateway_attempt_duration_seconds_bucket{endpoint=\"");
			metrics_label_escape(out, h->endpoint);
			gw_buf_printf(out, "\",le=\"%s\"} %llu\n", bucket_le[b], cumulative);
		}
		gw_buf_puts(out, "notice_gateway_attempt_duration_seconds_bucket{endpoint=\"");
		metrics_label_escape(out, h->endpoint);
		gw_buf_printf(out, "\",le=\"+Inf\"} %llu\n", h->count);
		gw_buf_puts(out, "notice_gateway_attempt_duration_seconds_sum{endpoint=\"");
		metrics_label_escape(out, h->endpoint);
		gw_buf_printf(out, "\"} %.6f\n", h->sum);
		gw_buf_puts(out, "notice_gateway_attempt_duration_seconds_count{endpoint=\"");
		metrics_label_escape(out, h->endpoint);
		gw_buf_printf(out, "\"} %llu\n", h->count);
	}
}

int metrics_render_at(struct metrics *m, store *st, const struct gw_config *cfg, int64_t now_ms,
		      gw_buf *out)
{
	gw_buf body = GW_BUF_INIT;
	int rc = 0;

	if (st && (rc = render_store(st, cfg, now_ms, &body)) < 0) {
		gw_buf_free(&body);
		return rc;
	}
	render_counters(m, &body);
	render_certs(cfg, &body);
	/*
	 * gw_buf_printf fails only when memory runs out; it is checked once,
	 * here. A failure mid-way followed by writes that succeed would go
	 * unnoticed; a scrape is repeated within seconds.
	 */
	if (!body.data || body.data[body.len - 1] != '\n' ||
	    gw_buf_put(out, body.data, body.len) < 0) {
		gw_buf_free(&body);
		return gw_error_set(GW_ENOMEM, "out of memory rendering the metrics");
	}
	gw_buf_free(&body);
	return 0;
}

int metrics_render(struct metrics *m, store *st, const struct gw_config *cfg, gw_buf *out)
{
	return metrics_render_at(m, st, cfg, timeutil_now_ms(), out);
}
