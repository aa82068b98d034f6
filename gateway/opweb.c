/*
 * opweb: the operator HTTP port (metrics and a read-only web view). The
 * contract, routes and bounds are in opweb.h; docs/WEB.md is the operator's
 * page.
 *
 * Two halves: opweb_handle() turns (method, path) into a response from the
 * store alone, so every page is unit-tested without sockets; the evhttp
 * server around it adds TLS (bufferevent_openssl through evhttp_set_bevcb),
 * the security headers and the bounds.
 *
 * What it relies on: the store's read operations (messages_list may be read
 * from inside its callback), metrics.h for the exposition and lateness.
 * Diagnostics: event=opweb-listening, opweb-store-error, opweb-tls-refused,
 * opweb-host-refused (a Host header other than loopback without TLS: 421),
 * and with TLS opweb-connection-timeout, -evicted and -refused (the bounds).
 */
#include "opweb.h"
#include "config.h"
#include "err.h"
#include "log.h"
#include "metrics.h"
#include "pki.h"
#include "timeutil.h"
#include "tlsconn.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

struct opweb {
	struct event_base *base;
	struct evhttp *http;
	struct evhttp_bound_socket *bound;
	SSL_CTX *ssl_ctx;
	store *st;
	const struct gw_config *cfg;
	struct metrics *metrics;
	int64_t (*now_ms)(void);
	int port;
	int timeout; /* seconds: evhttp's idle timeout and the handshake deadline */
	struct tlsconn_set conns; /* TLS connections, at most OPWEB_MAX_CONNECTIONS */
};

/*
 * TLS connections (tlsconn.h): the handshake must complete within the
 * timeout however slowly the bytes trickle in; at the cap the oldest
 * connection without a completed handshake makes room for a newcomer, so
 * such connections can neither lock operators out nor take the sender's
 * file descriptors (this port runs on the delivery loop); only when every
 * place holds an operator is the newcomer refused.
 */

static const char stylesheet[] =
	"body{font-family:system-ui,sans-serif;margin:1.5em;color:#1b1b1b;background:#fff}\n"
	"h1{font-size:1.4em;margin:0}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ccc}\n"
	"h3{font-size:1em;margin:1em 0 .3em}\n"
	"header{display:flex;gap:2em;align-items:baseline}nav a{margin-right:1em}\n"
	"table{border-collapse:collapse;margin:.3em 0 1em;font-size:.9em}\n"
	"th,td{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top}\n"
	"th{background:#f3f3f3}td{white-space:nowrap}td.num{text-align:right}\n"
	"td.reason{white-space:normal;min-width:16em}\n"
	".gap h3{color:#8a1c1c}.none{color:#666;font-style:italic}\n"
	".s-held,.s-failed{color:#8a1c1c;font-weight:bold}.s-delivered{color:#1d6b2a}\n"
	".s-queued,.s-sending{color:#7a5b00}\n"
	"pre{background:#f7f7f7;border:1px solid #ddd;padding:.6em;overflow:auto;max-height:30em}\n"
	"dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}dt{font-weight:bold}\n"
	"dd{margin:0}.more{color:#666}\n";

/* ---- escaping -------------------------------------------------------------- */

static int escape(gw_buf *out, const char *s, size_t len, bool mask)
{
	int rc = 0;

	for (size_t i = 0; i < len && rc == 0; i++) {
		unsigned char c = (unsigned char)s[i];

		if (mask && c >= '0' && c <= '9') {
			size_t run = 0;

			while (i + run < len && s[i + run] >= '0' && s[i + run] <= '9')
				run++;
			if (run == 11)
				rc = gw_buf_puts(out, "***********");
			else
				rc = gw_buf_put(out, s + i, run);
			i += run - 1;
			continue;
		}
		switch (c) {
		case '&': rc = gw_buf_puts(out, "&amp;"); break;
		case '<': rc = gw_buf_puts(out, "&lt;"); break;
		case '>': rc = gw_buf_puts(out, "&gt;"); break;
		case '"': rc = gw_buf_puts(out, "&quot;"); break;
		case '\'': rc = gw_buf_puts(out, "&#39;"); break;
		default:
			if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f)
				rc = gw_buf_puts(out, "&#xFFFD;");
			else
				rc = gw_buf_put(out, &c, 1);
		}
	}
	return rc;
}

int opweb_html_escape(gw_buf *out, const char *s, size_t len)
{
	return escape(out, s ? s : "", s ? len : 0, false);
}

int opweb_html_escape_masked(gw_buf *out, const char *s, size_t len)
{
	return escape(out, s ? s : "", s ? len : 0, true);
}

/* Short helpers: text escaped, free text escaped and masked. */
static void put_text(gw_buf *out, const char *s)
{
	opweb_html_escape(out, s, s ? strlen(s) : 0);
}

static void put_free(gw_buf *out, const char *s)
{
	opweb_html_escape_masked(out, s, s ? strlen(s) : 0);
}

static void put_time(gw_buf *out, int64_t ms)
{
	char when[32];

	if (ms <= 0) {
		gw_buf_puts(out, "-");
		return;
	}
	timeutil_format_utc(ms, when, sizeof(when));
	put_text(out, when);
}

static bool alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/*
 * Identifiers in paths and links: the notice schema's NoticeIdType,
 * [A-Za-z0-9][A-Za-z0-9._:-]{0,63} (a MessageId, a UUID, is one too). None
 * of these characters needs percent-encoding in a path segment (RFC 3986
 * pchar: ':' included), and the first is never '.', so no id is a "." or
 * ".." segment.
 */
static bool id_ok(const char *s, size_t len)
{
	if (len == 0 || len > 64 || !alnum(s[0]))
		return false;
	for (size_t i = 1; i < len; i++) {
		char c = s[i];
		if (!(alnum(c) || c == '-' || c == '_' || c == '.' || c == ':'))
			return false;
	}
	return true;
}

static void put_link(gw_buf *out, const char *kind, const char *id, const char *label)
{
	if (!id[0]) {
		gw_buf_puts(out, "-");
		return;
	}
	if (!id_ok(id, strlen(id))) { /* never expected from the store: no link */
		put_text(out, label);
		return;
	}
	gw_buf_printf(out, "<a href=\"/%s/", kind);
	put_text(out, id);
	gw_buf_puts(out, "\">");
	put_text(out, label);
	gw_buf_puts(out, "</a>");
}

/* ---- page frame -------------------------------------------------------------- */

static void page_start(gw_buf *out, const char *title)
{
	gw_buf_puts(out, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
			 "<meta name=\"viewport\" content=\"width=device-width\">"
			 "<meta name=\"referrer\" content=\"no-referrer\"><title>");
	put_text(out, title);
	gw_buf_puts(out, " - notice gateway</title><link rel=\"stylesheet\" href=\"/style.css\">"
			 "</head>\n<body><header><h1>Notice gateway</h1><nav>"
			 "<a href=\"/\">Overview</a><a href=\"/metrics\">Metrics</a></nav></header>\n"
			 "<main>\n");
}

static void page_end(gw_buf *out, int64_t now_ms)
{
	gw_buf_puts(out, "</main>\n<footer><p class=\"more\">Read-only view at ");
	put_time(out, now_ms);
	gw_buf_puts(out, " (UTC). Names and national identity numbers are never shown.</p>"
			 "</footer>\n</body></html>\n");
}

static void state_cell(gw_buf *out, const struct store_message *m)
{
	gw_buf_printf(out, "<td class=\"s-%s\">", store_state_name(m->state));
	put_text(out, store_state_name(m->state));
	if (m->state == MSG_HELD && m->reason[0]) {
		gw_buf_puts(out, ": ");
		put_free(out, m->reason);
	}
	gw_buf_puts(out, "</td>");
}

/* ---- message tables ------------------------------------------------------------ */

enum columns { COLS_GAP, COLS_NOTICE };

struct table {
	const struct opweb_view *v;
	gw_buf *out;
	enum columns cols;
	long long rows; /* all rows seen; at most OPWEB_MAX_ROWS written */
	const char *late_note;
};

static void table_head(struct table *t)
{
	if (t->cols == COLS_GAP)
		gw_buf_puts(t->out, "<table><thead><tr><th>Notice</th><th>Rev</th><th>Kind</th>"
				    "<th>Event date</th><th>Service</th><th>Recipient</th>"
				    "<th>Endpoint</th><th>State</th><th>Reason</th><th>Created</th>"
				    "<th>Message</th></tr></thead><tbody>\n");
	else
		gw_buf_puts(t->out, "<table><thead><tr><th>Message</th><th>Rev</th><th>Service</th>"
				    "<th>Recipient</th><th>Endpoint</th><th>State</th><th>Reason</th>"
				    "<th>Attempts</th><th>Created</th></tr></thead><tbody>\n");
}

static int table_row(const struct store_message *m, void *ctx)
{
	struct table *t = ctx;
	gw_buf *out = t->out;

	if (t->rows++ >= OPWEB_MAX_ROWS)
		return 0; /* keep counting */
	if (t->rows == 1)
		table_head(t);
	gw_buf_puts(out, "<tr>");
	if (t->cols == COLS_GAP) {
		gw_buf_puts(out, "<td>");
		put_link(out, "notice", m->notice_id, m->notice_id);
		gw_buf_printf(out, "</td><td class=\"num\">%d</td><td>", m->revision);
		put_text(out, m->kind);
		gw_buf_puts(out, "</td><td>");
		put_text(out, m->event_date[0] ? m->event_date : "-");
		gw_buf_puts(out, "</td>");
	} else {
		gw_buf_puts(out, "<td>");
		put_link(out, "message", m->message_id, m->message_id);
		gw_buf_printf(out, "</td><td class=\"num\">%d</td>", m->revision);
	}
	gw_buf_puts(out, "<td>");
	put_text(out, m->service);
	gw_buf_puts(out, "</td><td>");
	put_text(out, m->recipient_orgnr[0] ? m->recipient_orgnr : "-");
	gw_buf_puts(out, "</td><td>");
	put_text(out, m->endpoint[0] ? m->endpoint : "-");
	gw_buf_puts(out, "</td>");
	state_cell(out, m);
	gw_buf_puts(out, "<td class=\"reason\">");
	if (t->late_note)
		put_text(out, t->late_note);
	if (m->state != MSG_HELD && m->reason[0]) {
		if (t->late_note)
			gw_buf_puts(out, "; ");
		put_free(out, m->reason);
	}
	gw_buf_puts(out, "</td>");
	if (t->cols == COLS_NOTICE)
		gw_buf_printf(out, "<td class=\"num\">%d</td>", m->attempts);
	gw_buf_puts(out, "<td>");
	put_time(out, m->created_ms);
	gw_buf_puts(out, "</td>");
	if (t->cols == COLS_GAP) {
		gw_buf_puts(out, "<td>");
		put_link(out, "message", m->message_id, "attempts");
		gw_buf_puts(out, "</td>");
	}
	gw_buf_puts(out, "</tr>\n");
	return 0;
}

static void table_end(struct table *t, const char *empty, const char *more_hint)
{
	if (t->rows == 0) {
		gw_buf_puts(t->out, "<p class=\"none\">");
		put_text(t->out, empty);
		gw_buf_puts(t->out, "</p>\n");
		return;
	}
	gw_buf_puts(t->out, "</tbody></table>\n");
	if (t->rows > OPWEB_MAX_ROWS) {
		gw_buf_printf(t->out, "<p class=\"more\">%lld more not shown: ",
			      t->rows - OPWEB_MAX_ROWS);
		put_text(t->out, more_hint);
		gw_buf_puts(t->out, "</p>\n");
	}
}

/* ---- overview ---------------------------------------------------------------- */

static int gap_by_state(const struct opweb_view *v, gw_buf *out, enum msg_state state,
			const char *id, const char *title, const char *empty)
{
	struct store_filter f = { (int)state, NULL };
	struct table t = { v, NULL, COLS_GAP, 0, NULL };
	gw_buf rows = GW_BUF_INIT;
	char hint[64];
	int rc;

	t.out = &rows;
	rc = v->st->ops->messages_list(v->st, &f, table_row, &t);
	if (rc < 0) {
		gw_buf_free(&rows);
		return rc;
	}
	gw_buf_printf(out, "<h3 id=\"%s\">%s (%lld)</h3>\n", id, title, t.rows);
	snprintf(hint, sizeof(hint), "gateway list --state %s", store_state_name(state));
	t.out = out;
	if (rows.len)
		gw_buf_put(out, rows.data, rows.len);
	table_end(&t, empty, hint);
	gw_buf_free(&rows);
	return 0;
}

static int gap_late(const struct opweb_view *v, gw_buf *out)
{
	struct table t = { v, NULL, COLS_GAP, 0, "late" };
	gw_buf rows = GW_BUF_INIT;
	int rc;

	t.out = &rows;
	rc = metrics_late_messages(v->st, v->cfg, v->now_ms, table_row, &t);
	if (rc < 0) {
		gw_buf_free(&rows);
		return rc;
	}
	gw_buf_printf(out, "<h3 id=\"late\">Late: inside the lead time before release (%lld)</h3>\n",
		      t.rows);
	t.out = out;
	if (rows.len)
		gw_buf_put(out, rows.data, rows.len);
	table_end(&t, "No release notice still to come is late.", "gateway report timeliness");
	return (gw_buf_free(&rows), 0);
}

/* Not a gap, but what the partners must plan for: releases on a Friday, a weekend or before a holiday. */
static int coming_weekend(const struct opweb_view *v, gw_buf *out)
{
	struct table t = { v, NULL, COLS_GAP, 0, "weekend" };
	gw_buf rows = GW_BUF_INIT;
	int rc;

	t.out = &rows;
	rc = metrics_weekend_messages(v->st, NULL, v->now_ms, table_row, &t);
	if (rc < 0) {
		gw_buf_free(&rows);
		return rc;
	}
	gw_buf_printf(out, "<section id=\"weekend\"><h2>Weekend releases still to come (%lld)</h2>\n"
			   "<p>A release on a Friday, Saturday, Sunday or the day before a public "
			   "holiday (SPEC section 9).</p>\n",
		      t.rows);
	t.out = out;
	if (rows.len)
		gw_buf_put(out, rows.data, rows.len);
	table_end(&t, "No weekend release is coming.", "gateway list --weekend-release");
	gw_buf_puts(out, "</section>\n");
	return (gw_buf_free(&rows), 0);
}

static int counts_section(const struct opweb_view *v, gw_buf *out)
{
	struct store_counts c;
	int rc = v->st->ops->counts(v->st, &c);

	if (rc < 0)
		return rc;
	gw_buf_puts(out, "<section id=\"states\"><h2>Messages by state</h2>\n<table><thead><tr>"
			 "<th>State</th><th>Messages</th></tr></thead><tbody>\n");
	for (int s = 0; s < MSG_STATE_COUNT; s++)
		gw_buf_printf(out, "<tr><td class=\"s-%s\">%s</td><td class=\"num\">%lld</td></tr>\n",
			      store_state_name((enum msg_state)s), store_state_name((enum msg_state)s),
			      c.by_state[s]);
	gw_buf_puts(out, "</tbody></table></section>\n");
	return 0;
}

/* The newest OPWEB_MAX_ROWS notice revisions, kept in a ring while all rows pass. */
struct notice_row {
	char notice_id[65];
	int revision;
	char kind[16];
	char event_date[11];
	int64_t created_ms;
	int by_state[MSG_STATE_COUNT];
};

struct notice_ring {
	struct notice_row row[OPWEB_MAX_ROWS];
	long long n; /* groups seen */
};

static int notice_collect(const struct store_message *m, void *ctx)
{
	struct notice_ring *r = ctx;
	struct notice_row *last = r->n ? &r->row[(r->n - 1) % OPWEB_MAX_ROWS] : NULL;

	/* Rows come in creation order; a revision's messages are made together. */
	if (!last || strcmp(last->notice_id, m->notice_id) || last->revision != m->revision) {
		last = &r->row[r->n++ % OPWEB_MAX_ROWS];
		memset(last, 0, sizeof(*last));
		snprintf(last->notice_id, sizeof(last->notice_id), "%s", m->notice_id);
		last->revision = m->revision;
		snprintf(last->kind, sizeof(last->kind), "%s", m->kind);
		snprintf(last->event_date, sizeof(last->event_date), "%s", m->event_date);
		last->created_ms = m->created_ms;
	}
	if ((int)m->state >= 0 && m->state < MSG_STATE_COUNT)
		last->by_state[m->state]++;
	return 0;
}

static int notices_section(const struct opweb_view *v, gw_buf *out)
{
	struct store_filter all = { -1, NULL };
	struct notice_ring *r = calloc(1, sizeof(*r));
	long long shown;
	int rc;

	if (!r)
		return gw_error_set(GW_ENOMEM, "out of memory listing notices");
	if ((rc = v->st->ops->messages_list(v->st, &all, notice_collect, r)) < 0) {
		free(r);
		return rc;
	}
	shown = r->n < OPWEB_MAX_ROWS ? r->n : OPWEB_MAX_ROWS;
	gw_buf_printf(out, "<section id=\"notices\"><h2>Notices, newest first (%lld)</h2>\n", r->n);
	if (shown == 0)
		gw_buf_puts(out, "<p class=\"none\">No notices yet.</p>\n");
	else
		gw_buf_puts(out, "<table><thead><tr><th>Notice</th><th>Rev</th><th>Kind</th>"
				 "<th>Event date</th><th>Taken in</th><th>Recipients by state</th>"
				 "</tr></thead><tbody>\n");
	for (long long i = 0; i < shown; i++) {
		const struct notice_row *n = &r->row[(r->n - 1 - i) % OPWEB_MAX_ROWS];
		const char *sep = "";

		gw_buf_puts(out, "<tr><td>");
		put_link(out, "notice", n->notice_id, n->notice_id);
		gw_buf_printf(out, "</td><td class=\"num\">%d</td><td>", n->revision);
		put_text(out, n->kind);
		gw_buf_puts(out, "</td><td>");
		put_text(out, n->event_date[0] ? n->event_date : "-");
		gw_buf_puts(out, "</td><td>");
		put_time(out, n->created_ms);
		gw_buf_puts(out, "</td><td>");
		for (int s = 0; s < MSG_STATE_COUNT; s++) {
			if (!n->by_state[s])
				continue;
			gw_buf_printf(out, "%s<span class=\"s-%s\">%d %s</span>", sep,
				      store_state_name((enum msg_state)s), n->by_state[s],
				      store_state_name((enum msg_state)s));
			sep = ", ";
		}
		gw_buf_puts(out, "</td></tr>\n");
	}
	if (shown)
		gw_buf_puts(out, "</tbody></table>\n");
	if (r->n > shown)
		gw_buf_printf(out, "<p class=\"more\">%lld older not shown: gateway list</p>\n",
			      r->n - shown);
	gw_buf_puts(out, "</section>\n");
	free(r);
	return 0;
}

static int page_overview(const struct opweb_view *v, gw_buf *out)
{
	int rc;

	page_start(out, "Overview");
	gw_buf_puts(out, "<section id=\"gaps\" class=\"gap\"><h2>Gaps: who has not been reached"
			 "</h2>\n");
	if ((rc = gap_by_state(v, out, MSG_HELD, "held", "Held", "Nothing is held.")) < 0 ||
	    (rc = gap_by_state(v, out, MSG_FAILED, "failed", "Failed", "Nothing has failed.")) < 0 ||
	    (rc = gap_late(v, out)) < 0)
		return rc;
	gw_buf_puts(out, "</section>\n");
	if ((rc = coming_weekend(v, out)) < 0 || (rc = counts_section(v, out)) < 0 ||
	    (rc = notices_section(v, out)) < 0)
		return rc;
	page_end(out, v->now_ms);
	return 0;
}

/* ---- one notice ------------------------------------------------------------------ */

static void notice_facts(const struct opweb_view *v, gw_buf *out, const char *id, int revision)
{
	struct store_notice n;

	memset(&n, 0, sizeof(n));
	if (v->st->ops->notice_get(v->st, id, revision, &n) < 0) {
		gw_error_clear();
		return;
	}
	/* Not shown: person_ref (a pseudonym, still about a person) and the
	 * spool file name (chosen by the case system, may name someone). */
	gw_buf_puts(out, "<dl><dt>Revision</dt><dd>");
	gw_buf_printf(out, "%d", n.revision);
	gw_buf_puts(out, "</dd><dt>Kind</dt><dd>");
	put_text(out, n.kind);
	gw_buf_puts(out, "</dd><dt>Event date</dt><dd>");
	put_text(out, n.event_date[0] ? n.event_date : "-");
	gw_buf_puts(out, "</dd><dt>Sender</dt><dd>");
	put_text(out, n.sender_orgnr);
	gw_buf_puts(out, " ");
	put_free(out, n.sender_unit);
	gw_buf_puts(out, "</dd><dt>Received</dt><dd>");
	put_time(out, n.received_ms);
	gw_buf_printf(out, "</dd><dt>Late at intake</dt><dd>%s</dd><dt>Weekend release</dt><dd>%s"
			   "</dd><dt>Content SHA-256</dt><dd>",
		      n.late_at_intake ? "yes" : "no", n.weekend_release ? "yes" : "no");
	put_text(out, n.content_sha256);
	gw_buf_puts(out, "</dd></dl>\n");
}

struct latest {
	int revision;
};

static int latest_revision(const struct store_message *m, void *ctx)
{
	struct latest *l = ctx;

	if (m->revision > l->revision)
		l->revision = m->revision;
	return 0;
}

static int page_notice(const struct opweb_view *v, const char *id, gw_buf *out, int *status)
{
	struct store_filter f = { -1, id };
	struct table t = { v, NULL, COLS_NOTICE, 0, NULL };
	struct latest l = { 0 };
	gw_buf rows = GW_BUF_INIT;
	int rc;

	t.out = &rows;
	if ((rc = v->st->ops->messages_list(v->st, &f, latest_revision, &l)) < 0 ||
	    (rc = v->st->ops->messages_list(v->st, &f, table_row, &t)) < 0) {
		gw_buf_free(&rows);
		return rc;
	}
	if (t.rows == 0) {
		gw_buf_free(&rows);
		*status = 404;
		return 0;
	}
	page_start(out, "Notice");
	gw_buf_puts(out, "<section id=\"notice\"><h2>Notice ");
	put_text(out, id);
	gw_buf_puts(out, "</h2>\n");
	notice_facts(v, out, id, l.revision);
	gw_buf_printf(out, "<h3>Recipients (%lld messages, every revision)</h3>\n", t.rows);
	t.out = out;
	gw_buf_put(out, rows.data, rows.len);
	table_end(&t, "", "gateway list --notice ID");
	gw_buf_puts(out, "</section>\n");
	page_end(out, v->now_ms);
	gw_buf_free(&rows);
	return 0;
}

/* ---- one message ------------------------------------------------------------------ */

struct attempts {
	gw_buf *out;
	int n;
};

static int attempt_row(const struct store_attempt *a, void *ctx)
{
	struct attempts *at = ctx;
	gw_buf *out = at->out;

	if (at->n++ >= OPWEB_MAX_ROWS)
		return 0;
	if (at->n == 1)
		gw_buf_puts(out, "<table><thead><tr><th>Started</th><th>Duration ms</th><th>HTTP</th>"
				 "<th>Outcome</th><th>Error</th></tr></thead><tbody>\n");
	gw_buf_puts(out, "<tr><td>");
	put_time(out, a->started_ms);
	gw_buf_printf(out, "</td><td class=\"num\">%lld</td><td class=\"num\">%d</td><td>",
		      (long long)a->duration_ms, a->http_status);
	put_text(out, a->outcome);
	gw_buf_puts(out, "</td><td>");
	put_free(out, a->error[0] ? a->error : "-");
	gw_buf_puts(out, "</td></tr>\n");
	return 0;
}

static void receipt_section(const struct opweb_view *v, gw_buf *out, const char *id)
{
	struct store_receipt r;
	int rc;

	memset(&r, 0, sizeof(r));
	gw_buf_puts(out, "<h3 id=\"receipt\">Receipt</h3>\n");
	rc = v->st->ops->receipt_get(v->st, id, &r);
	if (rc < 0) {
		gw_error_clear();
		gw_buf_puts(out, "<p class=\"none\">No receipt stored.</p>\n");
		store_receipt_clear(&r);
		return;
	}
	gw_buf_puts(out, "<dl><dt>Status</dt><dd>");
	put_text(out, r.status[0] ? r.status : "-");
	gw_buf_puts(out, "</dd><dt>Reason code</dt><dd>");
	put_free(out, r.reason_code[0] ? r.reason_code : "-");
	gw_buf_printf(out, "</dd><dt>Signature verified</dt><dd class=\"%s\">%s</dd>"
			   "<dt>Received</dt><dd>",
		      r.verified ? "s-delivered" : "s-failed", r.verified ? "yes" : "NO");
	put_time(out, r.received_ms);
	/* id came through route_id() or the store: id_ok() holds, no encoding needed. */
	gw_buf_printf(out, "</dd><dt>Size</dt><dd>%zu bytes (<a href=\"/message/", r.bytes.len);
	put_text(out, id);
	gw_buf_puts(out, "/receipt.xml\" download>download the exact bytes</a>)</dd></dl>\n");
	gw_buf_puts(out, "<pre id=\"receipt-xml\">");
	if (r.bytes.len > OPWEB_MAX_RECEIPT_SHOWN) {
		opweb_html_escape_masked(out, (const char *)r.bytes.data, OPWEB_MAX_RECEIPT_SHOWN);
		gw_buf_puts(out, "\n[... cut; download for the rest]");
	} else {
		opweb_html_escape_masked(out, (const char *)r.bytes.data, r.bytes.len);
	}
	gw_buf_puts(out, "</pre>\n");
	store_receipt_clear(&r);
}

static int page_message(const struct opweb_view *v, const char *id, gw_buf *out, int *status)
{
	struct store_message m;
	struct attempts at = { out, 0 };
	int rc;

	memset(&m, 0, sizeof(m));
	rc = v->st->ops->message_get(v->st, id, &m);
	if (rc == GW_ENOTFOUND) {
		store_message_clear(&m);
		*status = 404;
		return 0;
	}
	if (rc < 0) {
		store_message_clear(&m);
		return rc;
	}
	page_start(out, "Message");
	gw_buf_puts(out, "<section id=\"message\"><h2>Message ");
	put_text(out, m.message_id);
	gw_buf_puts(out, "</h2>\n<dl><dt>Notice</dt><dd>");
	put_link(out, "notice", m.notice_id, m.notice_id);
	gw_buf_printf(out, " revision %d (", m.revision);
	put_text(out, m.kind);
	gw_buf_puts(out, ")</dd><dt>Recipient</dt><dd>");
	put_text(out, m.service);
	gw_buf_puts(out, " ");
	put_text(out, m.recipient_orgnr[0] ? m.recipient_orgnr : "-");
	gw_buf_puts(out, " (endpoint ");
	put_text(out, m.endpoint[0] ? m.endpoint : "-");
	gw_buf_printf(out, ")</dd><dt>State</dt><dd class=\"s-%s\">", store_state_name(m.state));
	put_text(out, store_state_name(m.state));
	gw_buf_puts(out, "</dd><dt>Reason</dt><dd>");
	put_free(out, m.reason[0] ? m.reason : "-");
	gw_buf_puts(out, "</dd><dt>Event date</dt><dd>");
	put_text(out, m.event_date[0] ? m.event_date : "-");
	gw_buf_puts(out, "</dd><dt>Created</dt><dd>");
	put_time(out, m.created_ms);
	gw_buf_puts(out, "</dd><dt>Next attempt</dt><dd>");
	put_time(out, m.state == MSG_QUEUED ? m.next_attempt_ms : 0);
	gw_buf_puts(out, "</dd><dt>Retry horizon</dt><dd>");
	put_time(out, m.deadline_ms);
	gw_buf_printf(out, "</dd><dt>Attempts</dt><dd>%d</dd><dt>Digest (SHA-256)</dt><dd>",
		      m.attempts);
	put_text(out, m.digest_b64[0] ? m.digest_b64 : "-");
	/* The signed bytes hold the person's identity: never shown here. */
	gw_buf_printf(out, "</dd><dt>Signed message</dt><dd>%zu bytes (not shown: it names the"
			   " person; gateway export)</dd></dl>\n",
		      m.signed_bytes.len);
	store_message_clear(&m);
	gw_buf_puts(out, "<h3 id=\"attempts\">Attempts</h3>\n");
	if ((rc = v->st->ops->attempts_list(v->st, id, attempt_row, &at)) < 0)
		return rc;
	if (at.n == 0)
		gw_buf_puts(out, "<p class=\"none\">No attempt yet.</p>\n");
	else
		gw_buf_puts(out, "</tbody></table>\n");
	if (at.n > OPWEB_MAX_ROWS)
		gw_buf_printf(out, "<p class=\"more\">%d more not shown: gateway show</p>\n",
			      at.n - OPWEB_MAX_ROWS);
	receipt_section(v, out, id);
	gw_buf_puts(out, "</section>\n");
	page_end(out, v->now_ms);
	return 0;
}

static int receipt_download(const struct opweb_view *v, const char *id,
			    struct opweb_response *resp)
{
	struct store_receipt r;
	int rc;

	memset(&r, 0, sizeof(r));
	rc = v->st->ops->receipt_get(v->st, id, &r);
	if (rc == GW_ENOTFOUND) {
		store_receipt_clear(&r);
		resp->status = 404;
		return 0;
	}
	if (rc == 0 && (rc = gw_buf_put(&resp->body, r.bytes.data, r.bytes.len)) == 0) {
		resp->content_type = "application/octet-stream";
		snprintf(resp->disposition, sizeof(resp->disposition),
			 "attachment; filename=\"%s.receipt.xml\"", id);
	}
	store_receipt_clear(&r);
	return rc;
}

/* ---- routing ------------------------------------------------------------------ */

static void simple_page(struct opweb_response *resp, int status, const char *title,
			const char *text, int64_t now_ms)
{
	gw_buf_reset(&resp->body);
	resp->status = status;
	resp->content_type = "text/html; charset=utf-8";
	resp->disposition[0] = '\0';
	page_start(&resp->body, title);
	gw_buf_puts(&resp->body, "<h2>");
	put_text(&resp->body, title);
	gw_buf_puts(&resp->body, "</h2><p>");
	put_text(&resp->body, text);
	gw_buf_puts(&resp->body, "</p>\n");
	page_end(&resp->body, now_ms);
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * An id's path segment into id (at most 64 bytes): %XX escapes decoded (a
 * client may write ':' as %3A), then checked with id_ok(), so nothing a
 * decoded escape brings (a '/', a '<') gets through. False when it fails.
 */
static bool id_decode(const char *seg, size_t len, char id[65])
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		int hi, lo;
		char c = seg[i];

		if (c == '%') {
			if (i + 2 >= len)
				return false;
			if ((hi = hex_digit(seg[i + 1])) < 0 || (lo = hex_digit(seg[i + 2])) < 0)
				return false;
			c = (char)(hi * 16 + lo);
			i += 2;
		}
		if (n == 64)
			return false;
		id[n++] = c;
	}
	id[n] = '\0';
	return id_ok(id, n);
}

/* "/kind/ID" or "/kind/ID/rest": ID (decoded and checked) and rest returned. */
static bool route_id(const char *path, size_t path_len, const char *prefix, char id[65],
		     const char **rest, size_t *rest_len)
{
	size_t plen = strlen(prefix), seglen;
	const char *start, *slash;

	if (path_len <= plen || strncmp(path, prefix, plen) != 0)
		return false;
	start = path + plen;
	slash = memchr(start, '/', path_len - plen);
	seglen = slash ? (size_t)(slash - start) : path_len - plen;
	if (!id_decode(start, seglen, id))
		return false;
	*rest = slash ? slash : "";
	*rest_len = slash ? path_len - plen - seglen : 0;
	return true;
}

void opweb_response_clear(struct opweb_response *resp)
{
	gw_buf_free(&resp->body);
}

int opweb_handle(const struct opweb_view *v, const char *method, const char *uri,
		 struct opweb_response *resp)
{
	size_t len = uri ? strcspn(uri, "?#") : 0;
	const char *rest = "";
	size_t rest_len = 0;
	char id[65];
	int status = 200, rc = 0;

	memset(resp, 0, sizeof(*resp));
	resp->status = 200;
	resp->content_type = "text/html; charset=utf-8";
	if (!method || strcmp(method, "GET") != 0) {
		simple_page(resp, 405, "Method not allowed", "This view is read-only: GET only.",
			    v->now_ms);
		return 0;
	}
	if (len == 1 && uri[0] == '/') {
		rc = page_overview(v, &resp->body);
	} else if (len == 8 && !strncmp(uri, "/metrics", 8)) {
		resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
		rc = metrics_render_at(v->metrics, v->st, v->cfg, v->now_ms, &resp->body);
	} else if (len == 8 && !strncmp(uri, "/healthz", 8)) {
		struct store_counts c;

		resp->content_type = "text/plain; charset=utf-8";
		if ((rc = v->st->ops->counts(v->st, &c)) == 0)
			gw_buf_puts(&resp->body, "ok\n");
	} else if (len == 10 && !strncmp(uri, "/style.css", 10)) {
		resp->content_type = "text/css; charset=utf-8";
		gw_buf_puts(&resp->body, stylesheet);
	} else if (route_id(uri, len, "/notice/", id, &rest, &rest_len) && rest_len == 0) {
		rc = page_notice(v, id, &resp->body, &status);
	} else if (route_id(uri, len, "/message/", id, &rest, &rest_len) &&
		   (rest_len == 0 || (rest_len == 12 && !strncmp(rest, "/receipt.xml", 12)))) {
		if (rest_len)
			rc = receipt_download(v, id, resp);
		else
			rc = page_message(v, id, &resp->body, &status);
		status = resp->status == 404 ? 404 : status;
	} else {
		status = 404;
	}
	if (rc < 0) {
		gw_log(GW_LOG_ERROR, "opweb-store-error", "reason", gw_error_last(), NULL);
		simple_page(resp, 500, "Store error",
			    "The store could not be read; the gateway's log says why.", v->now_ms);
		return rc;
	}
	if (status == 404)
		simple_page(resp, 404, "Not found", "No such page, notice or message.", v->now_ms);
	return 0;
}

/* ---- the server ---------------------------------------------------------------- */

static int tls_context(opweb *w, const struct opweb_options *o, EVP_PKEY *key)
{
	STACK_OF(X509_NAME) *names;
	SSL_CTX *ctx;

	if (!(ctx = SSL_CTX_new(TLS_server_method())))
		return gw_error_set(GW_ERROR, "cannot create the operator TLS context: %s",
				    pki_openssl_reason());
	w->ssl_ctx = ctx;
	if (tlsconn_init() < 0)
		return GW_ERROR;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (SSL_CTX_get_security_level(ctx) < PKI_SECURITY_LEVEL)
		SSL_CTX_set_security_level(ctx, PKI_SECURITY_LEVEL);
	tlsconn_ctx_setup(ctx);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION |
				 SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (SSL_CTX_use_certificate_chain_file(ctx, o->tls_cert) != 1)
		return gw_error_set(GW_EINVALID, "cannot use %s as the operator TLS certificate: %s",
				    o->tls_cert, pki_openssl_reason());
	if (SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1)
		return gw_error_set(GW_EINVALID, "cannot use %s as the operator TLS key: %s",
				    o->tls_key, pki_openssl_reason());
	if (SSL_CTX_load_verify_locations(ctx, o->client_ca, NULL) != 1 ||
	    !(names = SSL_load_client_CA_file(o->client_ca)))
		return gw_error_set(GW_EINVALID, "cannot use %s as the operator CA: %s",
				    o->client_ca, pki_openssl_reason());
	SSL_CTX_set_client_CA_list(ctx, names);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_verify_depth(ctx, 4);
	return 0;
}

static int tls_setup(opweb *w, const struct opweb_options *o)
{
	EVP_PKEY *key = NULL;
	int rc;

	/* Read once, by pki_key_load(), from the file whose mode it checked. */
	if (pki_key_load(&key, o->tls_key) < 0)
		return gw_error_wrap(GW_EINVALID, "operator TLS key");
	rc = tls_context(w, o, key);
	EVP_PKEY_free(key);
	return rc;
}

/*
 * evhttp asks for each accepted connection's bufferevent (and sets its
 * socket right after); NULL makes it plain, and on_request refuses it. A
 * newcomer refused at the cap is cut at the next loop iteration (its
 * deadline is now), or in the ClientHello callback should that come first.
 */
static struct bufferevent *new_tls_connection(struct event_base *base, void *arg)
{
	opweb *w = arg;
	SSL *ssl = SSL_new(w->ssl_ctx);
	struct tlsconn *c = ssl ? tlsconn_new(&w->conns, ssl) : NULL;
	struct bufferevent *bev;
	bool admitted;

	if (!c) {
		gw_log(GW_LOG_ERROR, "opweb-tls-refused", "detail",
		       ssl ? "out of memory" : pki_openssl_reason(), NULL);
		SSL_free(ssl);
		return NULL;
	}
	admitted = tlsconn_admit(&w->conns, c, false);
	bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
					     BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		SSL_free(ssl); /* frees c too */
		return NULL;
	}
	c->bev = bev;
	tlsconn_arm(c, admitted ? w->timeout : 0);
	return bev;
}

/* With TLS on, only a connection whose client certificate verified is served. */
static bool peer_verified(struct evhttp_request *req)
{
	struct evhttp_connection *conn = evhttp_request_get_connection(req);
	struct bufferevent *bev = conn ? evhttp_connection_get_bufferevent(conn) : NULL;
	SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;

	return ssl && SSL_get0_peer_certificate(ssl) && SSL_get_verify_result(ssl) == X509_V_OK;
}

static const char *method_name(enum evhttp_cmd_type t)
{
	switch (t) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_HEAD: return "HEAD";
	case EVHTTP_REQ_POST: return "POST";
	default: return "OTHER";
	}
}

/* Nothing, or ":PORT" with exactly the bound port's digits. */
static bool host_port_ok(const char *p, int port)
{
	char want[8];

	if (*p == '\0')
		return true;
	if (*p != ':')
		return false;
	snprintf(want, sizeof(want), "%d", port);
	return strcmp(p + 1, want) == 0;
}

bool opweb_host_ok(const char *host, int port)
{
	char name[INET6_ADDRSTRLEN];
	const char *end;
	struct in_addr a4;
	struct in6_addr a6;
	size_t len;

	if (!host)
		return true;
	if (host[0] == '[') { /* [IPv6]:port */
		if (!(end = strchr(host, ']')) || (len = (size_t)(end - host - 1)) >= sizeof(name))
			return false;
		memcpy(name, host + 1, len);
		name[len] = '\0';
		return inet_pton(AF_INET6, name, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6) &&
		       host_port_ok(end + 1, port);
	}
	len = strcspn(host, ":");
	if (len >= sizeof(name) || !host_port_ok(host + len, port))
		return false;
	memcpy(name, host, len);
	name[len] = '\0';
	if (!strcasecmp(name, "localhost"))
		return true;
	return inet_pton(AF_INET, name, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;
}

/* The request's Host header (NULL: none); false when it has more than one. */
static bool request_host(struct evhttp_request *req, const char **host)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	struct evkeyval *kv;
	int n = 0;

	*host = NULL;
	for (kv = in->tqh_first; kv; kv = kv->next.tqe_next) {
		if (strcasecmp(kv->key, "Host") == 0) {
			*host = kv->value;
			n++;
		}
	}
	return n <= 1;
}

static const char *status_phrase(int status)
{
	switch (status) {
	case 200: return "OK";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 421: return "Misdirected Request";
	default: return "Internal Server Error";
	}
}

/*
 * Every answer goes out here, with the security headers (evhttp_send_error
 * would clear them). closing: the connection ends after it (a refusal).
 */
static void send_answer(struct evhttp_request *req, const struct opweb_response *resp,
			bool closing)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct evbuffer *body = evbuffer_new();
	int status = resp->status;
	char code[8];

	evhttp_add_header(h, "Content-Security-Policy", OPWEB_CSP);
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(h, "X-Frame-Options", "DENY");
	evhttp_add_header(h, "Referrer-Policy", "no-referrer");
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "Content-Type", resp->content_type);
	if (resp->disposition[0])
		evhttp_add_header(h, "Content-Disposition", resp->disposition);
	if (status == 405)
		evhttp_add_header(h, "Allow", "GET");
	if (closing)
		evhttp_add_header(h, "Connection", "close");
	if (body && evbuffer_add(body, resp->body.data ? (void *)resp->body.data : (void *)"",
				 resp->body.len) < 0) {
		evbuffer_free(body);
		body = NULL;
	}
	if (!body)
		status = 500; /* out of memory: the headers still go, without a body */
	snprintf(code, sizeof(code), "%d", status);
	gw_log(GW_LOG_DEBUG, "opweb-request", "status", code, NULL);
	evhttp_send_reply(req, status, status_phrase(status), body);
	if (body)
		evbuffer_free(body);
}

/* A request refused before it is routed (403, 421): a short page, then close. */
static void refuse(opweb *w, struct evhttp_request *req, int status, const char *text)
{
	struct opweb_response resp;

	memset(&resp, 0, sizeof(resp));
	simple_page(&resp, status, status_phrase(status), text, w->now_ms());
	send_answer(req, &resp, true);
	opweb_response_clear(&resp);
}

static void on_request(struct evhttp_request *req, void *arg)
{
	opweb *w = arg;
	struct opweb_view v = { w->st, w->cfg, w->metrics, w->now_ms() };
	struct opweb_response resp;
	const char *host;

	if (w->ssl_ctx && !peer_verified(req)) {
		gw_log(GW_LOG_WARN, "opweb-tls-refused", "reason", "no verified client certificate",
		       NULL);
		refuse(w, req, 403, "A verified operator client certificate is required.");
		return;
	}
	if (!w->ssl_ctx && (!request_host(req, &host) || !opweb_host_ok(host, w->port))) {
		gw_log(GW_LOG_WARN, "opweb-host-refused", "reason",
		       "the Host header does not name a loopback address or localhost (a DNS"
		       " rebinding attempt, or a client that names this host otherwise)", NULL);
		refuse(w, req, 421, "This view answers only to a loopback address or localhost"
				    " (the request named another host).");
		return;
	}
	opweb_handle(&v, method_name(evhttp_request_get_command(req)),
		     evhttp_request_get_uri(req), &resp);
	send_answer(req, &resp, false);
	opweb_response_clear(&resp);
}

/* 1 loopback, 0 another address, GW_EINVALID not a literal address. */
static int host_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6) ? 1 : 0;
	return gw_error_set(GW_EINVALID, "operator listen address '%s' is not a literal IPv4 or"
			    " IPv6 address", host);
}

static int bound_port(struct evhttp_bound_socket *b)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	evutil_socket_t fd = evhttp_bound_socket_get_fd(b);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -1;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

int opweb_start(opweb **out, struct event_base *base, const struct opweb_options *o)
{
	const char *host = o->host && o->host[0] ? o->host : OPWEB_DEFAULT_HOST;
	int port = o->port < 0 ? OPWEB_DEFAULT_PORT : o->port;
	bool tls = o->tls_cert || o->tls_key || o->client_ca;
	int loopback, rc;
	opweb *w;
	char p[8];

	*out = NULL;
	if (!base || !o->st)
		return gw_error_set(GW_EINVALID, "opweb needs an event loop and a store");
	if (port > 65535)
		return gw_error_set(GW_EINVALID, "operator port %d is out of range", port);
	if ((loopback = host_loopback(host)) < 0)
		return loopback;
	if (tls && !(o->tls_cert && o->tls_key && o->client_ca))
		return gw_error_set(GW_EINVALID, "operator TLS needs a certificate, its key and an"
				    " operator CA, all three");
	if (!loopback && !tls)
		return gw_error_set(GW_EINVALID, "operator port on %s, which is not loopback, needs"
				    " TLS with operator client certificates (certificate, key and"
				    " operator CA)", host);
	if (!(w = calloc(1, sizeof(*w))))
		return gw_error_set(GW_ENOMEM, "out of memory for the operator port");
	w->base = base;
	w->st = o->st;
	w->cfg = o->cfg;
	w->metrics = o->metrics;
	w->now_ms = o->now_ms ? o->now_ms : timeutil_now_ms;
	w->timeout = o->timeout_seconds > 0 ? o->timeout_seconds : OPWEB_DEFAULT_TIMEOUT;
	w->conns = (struct tlsconn_set){ .base = base, .owner = w, .prefix = "opweb-",
					 .handshake_ends_deadline = true,
					 .max_live = OPWEB_MAX_CONNECTIONS };
	if (tls && (rc = tls_setup(w, o)) < 0) {
		opweb_free(w);
		return rc;
	}
	if (!(w->http = evhttp_new(base))) {
		opweb_free(w);
		return gw_error_set(GW_ERROR, "cannot create the operator HTTP server");
	}
	if (w->ssl_ctx)
		evhttp_set_bevcb(w->http, new_tls_connection, w);
	evhttp_set_gencb(w->http, on_request, w);
	/* Every method reaches on_request, which answers 405 (evhttp would say 501). */
	evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
						    EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
						    EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH |
						    EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT);
	evhttp_set_max_headers_size(w->http, OPWEB_MAX_HEADERS);
	evhttp_set_max_body_size(w->http, OPWEB_MAX_BODY);
	evhttp_set_timeout(w->http, w->timeout);
	if (!(w->bound = evhttp_bind_socket_with_handle(w->http, host, (ev_uint16_t)port))) {
		opweb_free(w);
		return gw_error_set(GW_ERROR, "cannot listen on %s port %d for operators", host, port);
	}
	w->port = bound_port(w->bound);
	snprintf(p, sizeof(p), "%d", w->port);
	gw_log(GW_LOG_INFO, "opweb-listening", "host", host, "port", p, "tls",
	       w->ssl_ctx ? "client-certificates" : "off", NULL);
	*out = w;
	return 0;
}

int opweb_port(const opweb *w)
{
	return w ? w->port : -1;
}

void opweb_set_config(opweb *w, const struct gw_config *cfg)
{
	if (w)
		w->cfg = cfg;
}

void opweb_free(opweb *w)
{
	if (!w)
		return;
	tlsconn_set_release(&w->conns);
	if (w->http)
		evhttp_free(w->http);
	SSL_CTX_free(w->ssl_ctx);
	free(w);
}
