/*
 * test_opweb: the operator web view. Rendering without sockets
 * (opweb_handle): HTML escaping and nin masking, the routes and their
 * status codes, the gaps-first order of the overview, the drill-down pages,
 * that a message's signed bytes (which name the person) never reach a page,
 * the receipt shown escaped and downloadable byte for byte. Then the server:
 * the binding rules (loopback only without TLS, literal addresses only),
 * which Host headers are answered without TLS (DNS rebinding), and live
 * exchanges over loopback: the security headers on every answer, 405, 421
 * for another Host, and with TLS the 403 for a connection without a
 * verified client certificate, the handshake deadline, eviction at the
 * connection cap, and a connection still open when the server is freed.
 */
#include "testutil.h"
#include "config.h"
#include "err.h"
#include "metrics.h"
#include "opweb.h"
#include "store.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <strings.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define NOW INT64_C(1795305600000) /* 2026-11-22T00:00:00Z */
#define HOUR INT64_C(3600000)
#define NIN "02918510055"
#define HOSTILE "<script>alert('x')</script> & \"" NIN "\""
#define MSG_DELIVERED_ID "00000000-0000-4000-8000-00000000000d"
#define MSG_FAILED_ID "00000000-0000-4000-8000-00000000000f"
#define MSG_HELD_ID "00000000-0000-4000-8000-00000000000e"
#define MSG_LATE_ID "00000000-0000-4000-8000-00000000000a"
#define MSG_COLON_ID "00000000-0000-4000-8000-0000000000c1"
#define COLON_NOTICE "KDI:2026:7" /* the notice schema allows ':' in an id */
#define RECEIPT_XML "<?xml version=\"1.0\"?>\n<Receipt status=\"accepted\"><Note>a&amp;b <x/></Note></Receipt>\n"

struct fixture {
	char dir[400];
	store *st;
	struct gw_config cfg;
	struct opweb_view v;
};

static void add_notice_flagged(store *st, const char *id, const char *date, bool weekend)
{
	struct store_notice n;
	static int seq;

	memset(&n, 0, sizeof(n));
	snprintf(n.notice_id, sizeof(n.notice_id), "%s", id);
	n.revision = 1;
	snprintf(n.kind, sizeof(n.kind), "release");
	snprintf(n.content_sha256, sizeof(n.content_sha256), "%064d", ++seq);
	snprintf(n.source_name, sizeof(n.source_name), "Eirik-Solvang.xml"); /* never shown */
	snprintf(n.sender_orgnr, sizeof(n.sender_orgnr), "974760673");
	snprintf(n.sender_unit, sizeof(n.sender_unit), "Oslo fengsel <avd B>");
	snprintf(n.event_date, sizeof(n.event_date), "%s", date);
	snprintf(n.person_ref, sizeof(n.person_ref), "0123456789abcdef");
	n.received_ms = NOW - 2 * HOUR;
	n.weekend_release = weekend;
	assert_int_equal(st->ops->notice_insert(st, &n), 0);
}

static void add_notice(store *st, const char *id, const char *date)
{
	add_notice_flagged(st, id, date, false);
}

static void add_message(store *st, const char *mid, const char *nid, enum msg_state state,
			const char *date, const char *reason, int64_t created)
{
	struct store_message m;

	memset(&m, 0, sizeof(m));
	snprintf(m.message_id, sizeof(m.message_id), "%s", mid);
	snprintf(m.notice_id, sizeof(m.notice_id), "%s", nid);
	m.revision = 1;
	snprintf(m.kind, sizeof(m.kind), "release");
	snprintf(m.service, sizeof(m.service), "nav");
	snprintf(m.recipient_orgnr, sizeof(m.recipient_orgnr), "889960221");
	snprintf(m.endpoint, sizeof(m.endpoint), "%s", state == MSG_HELD ? "" : "nav");
	m.state = state;
	snprintf(m.reason, sizeof(m.reason), "%s", reason);
	snprintf(m.event_date, sizeof(m.event_date), "%s", date);
	m.created_ms = created;
	m.next_attempt_ms = created;
	m.deadline_ms = created + 14 * 24 * HOUR;
	snprintf(m.digest_b64, sizeof(m.digest_b64), "ZGlnZXN0");
	if (state != MSG_HELD)
		assert_int_equal(gw_buf_puts(&m.signed_bytes, "<Message><Person nin=\"" NIN
							       "\" givenName=\"Eirik\"/></Message>"), 0);
	assert_int_equal(st->ops->message_insert(st, &m), 0);
	store_message_clear(&m);
}

static void add_attempt(store *st, const char *mid, const char *outcome, const char *error)
{
	struct store_attempt a;

	memset(&a, 0, sizeof(a));
	snprintf(a.message_id, sizeof(a.message_id), "%s", mid);
	a.started_ms = NOW - HOUR;
	a.duration_ms = 42;
	a.http_status = strcmp(outcome, "delivered") ? 403 : 200;
	snprintf(a.outcome, sizeof(a.outcome), "%s", outcome);
	snprintf(a.error, sizeof(a.error), "%s", error);
	assert_int_equal(st->ops->attempt_insert(st, &a), 0);
}

/*
 * N-ONE (release 2027-06-01): delivered with a receipt, failed with a
 * hostile reason, held. N-LATE (release 2026-11-25, three days away): queued.
 */
static int setup(void **state)
{
	static struct fixture f;
	struct store_receipt r;
	char path[512];

	memset(&f, 0, sizeof(f));
	snprintf(f.dir, sizeof(f.dir), "%s", tu_tmpdir("opweb"));
	config_defaults(&f.cfg);
	snprintf(path, sizeof(path), "%s/gateway.db", f.dir);
	if (store_sqlite_open(&f.st, path) != 0)
		return -1;
	add_notice(f.st, "N-ONE", "2027-06-01");
	add_message(f.st, MSG_DELIVERED_ID, "N-ONE", MSG_DELIVERED, "2027-06-01", "", NOW - 2 * HOUR);
	add_message(f.st, MSG_FAILED_ID, "N-ONE", MSG_FAILED, "2027-06-01", HOSTILE, NOW - 2 * HOUR);
	add_message(f.st, MSG_HELD_ID, "N-ONE", MSG_HELD, "2027-06-01", "no consent", NOW - 2 * HOUR);
	add_attempt(f.st, MSG_DELIVERED_ID, "delivered", "");
	add_attempt(f.st, MSG_FAILED_ID, "failed", HOSTILE);
	memset(&r, 0, sizeof(r));
	snprintf(r.message_id, sizeof(r.message_id), MSG_DELIVERED_ID);
	snprintf(r.status, sizeof(r.status), "accepted");
	r.verified = true;
	r.received_ms = NOW - HOUR;
	assert_int_equal(gw_buf_puts(&r.bytes, RECEIPT_XML), 0);
	assert_int_equal(f.st->ops->receipt_insert(f.st, &r), 0);
	store_receipt_clear(&r);
	add_notice(f.st, "N-LATE", "2026-11-25");
	add_message(f.st, MSG_LATE_ID, "N-LATE", MSG_QUEUED, "2026-11-25", "", NOW - HOUR);
	f.v.st = f.st;
	f.v.cfg = &f.cfg;
	f.v.metrics = NULL;
	f.v.now_ms = NOW;
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

static const char *body(const struct opweb_response *r)
{
	return r->body.data ? (const char *)r->body.data : "";
}

static void get(struct fixture *f, const char *uri, struct opweb_response *r, int status)
{
	assert_int_equal(opweb_handle(&f->v, "GET", uri, r), 0);
	if (r->status != status)
		fprintf(stderr, "%s: status %d\n%s\n", uri, r->status, body(r));
	assert_int_equal(r->status, status);
}

/* No page may carry the nin, the person's name or raw markup from the store. */
static void assert_clean(const struct opweb_response *r)
{
	assert_null(strstr(body(r), NIN));
	assert_null(strstr(body(r), "Eirik"));
	assert_null(strstr(body(r), "Solvang"));
	assert_null(strstr(body(r), "<script"));
	assert_null(strstr(body(r), "<avd B>"));
}

/* ---- escaping ---------------------------------------------------------------- */

static void test_html_escape(void **state)
{
	gw_buf out = GW_BUF_INIT;
	const char *in = "<a href=\"x\">'&'</a>\x01\n";

	(void)state;
	assert_int_equal(opweb_html_escape(&out, in, strlen(in)), 0);
	assert_string_equal((const char *)out.data,
			    "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;&#xFFFD;\n");
	gw_buf_free(&out);
}

static void test_masking_only_nin_shaped_runs(void **state)
{
	gw_buf out = GW_BUF_INIT;
	const char *in = "nin " NIN ", orgnr 974760673, twelve 123456789012, end 02918510055";

	(void)state;
	assert_int_equal(opweb_html_escape_masked(&out, in, strlen(in)), 0);
	assert_string_equal((const char *)out.data, "nin ***********, orgnr 974760673, twelve "
						    "123456789012, end ***********");
	gw_buf_free(&out);
}

/* ---- pages ---------------------------------------------------------------------- */

static void test_overview_gaps_first(void **state)
{
	struct fixture *f = *state;
	struct opweb_response r;
	const char *held, *failed, *late, *states, *notices, *b;

	get(f, "/", &r, 200);
	b = body(&r);
	assert_string_equal(r.content_type, "text/html; charset=utf-8");
	held = strstr(b, "id=\"held\"");
	failed = strstr(b, "id=\"failed\"");
	late = strstr(b, "id=\"late\"");
	states = strstr(b, "id=\"states\"");
	notices = strstr(b, "id=\"notices\"");
	assert_true(held && failed && late && states && notices);
	assert_true(held < failed && failed < late && late < states && states < notices);
	/* each gap lists its message, and only there */
	assert_true(strstr(held, MSG_HELD_ID) < failed);
	assert_true(strstr(failed, MSG_FAILED_ID) < late);
	assert_true(strstr(late, MSG_LATE_ID) < states);
	assert_non_null(strstr(held, "held: no consent"));
	/* the hostile reason: escaped and masked */
	assert_non_null(strstr(b, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; "
				  "&quot;***********&quot;"));
	assert_non_null(strstr(b, "<link rel=\"stylesheet\" href=\"/style.css\">"));
	assert_clean(&r);
	opweb_response_clear(&r);
}

/* Weekend releases still to come, after the gaps; one already past is not listed. */
static void test_overview_weekend_releases(void **state)
{
	struct fixture *f = *state;
	struct opweb_response r;
	const char *late, *weekend, *states, *b;

	add_notice_flagged(f->st, "N-FRIDAY", "2026-11-27", true);
	add_message(f->st, "00000000-0000-4000-8000-0000000000f1", "N-FRIDAY", MSG_DELIVERED,
		    "2026-11-27", "", NOW - HOUR);
	add_notice_flagged(f->st, "N-PAST", "2026-11-20", true);
	add_message(f->st, "00000000-0000-4000-8000-0000000000f2", "N-PAST", MSG_DELIVERED,
		    "2026-11-20", "", NOW - 3 * 24 * HOUR);
	get(f, "/", &r, 200);
	b = body(&r);
	late = strstr(b, "id=\"late\"");
	weekend = strstr(b, "id=\"weekend\"");
	states = strstr(b, "id=\"states\"");
	assert_true(late && weekend && states && late < weekend && weekend < states);
	assert_non_null(strstr(weekend, "Weekend releases still to come (1)"));
	assert_true(strstr(weekend, "N-FRIDAY") && strstr(weekend, "N-FRIDAY") < states);
	assert_true(!strstr(weekend, "N-PAST") || strstr(weekend, "N-PAST") > states);
	assert_clean(&r);
	opweb_response_clear(&r);
}

static void test_notice_page(void **state)
{
	struct fixture *f = *state;
	struct opweb_response r;

	get(f, "/notice/N-ONE", &r, 200);
	assert_non_null(strstr(body(&r), "href=\"/message/" MSG_DELIVERED_ID "\""));
	assert_non_null(strstr(body(&r), "href=\"/message/" MSG_FAILED_ID "\""));
	assert_non_null(strstr(body(&r), "href=\"/message/" MSG_HELD_ID "\""));
	assert_non_null(strstr(body(&r), "Oslo fengsel &lt;avd B&gt;"));
	assert_null(strstr(body(&r), "0123456789abcdef")); /* the pseudonym is not shown */
	assert_clean(&r);
	opweb_response_clear(&r);
	get(f, "/notice/NO-SUCH", &r, 404);
	opweb_response_clear(&r);
}

static void test_message_page(void **state)
{
	struct fixture *f = *state;
	struct opweb_response r;

	get(f, "/message/" MSG_DELIVERED_ID, &r, 200);
	assert_non_null(strstr(body(&r), "<td>delivered</td>"));
	assert_non_null(strstr(body(&r), "Signature verified</dt><dd class=\"s-delivered\">yes"));
	assert_non_null(strstr(body(&r), "<pre id=\"receipt-xml\">&lt;?xml version=&quot;1.0&quot;?&gt;\n"
					 "&lt;Receipt status=&quot;accepted&quot;&gt;&lt;Note&gt;a&amp;amp;b"));
	assert_non_null(strstr(body(&r), "href=\"/message/" MSG_DELIVERED_ID "/receipt.xml\" download"));
	assert_non_null(strstr(body(&r), "href=\"/notice/N-ONE\""));
	assert_null(strstr(body(&r), "givenName")); /* the signed bytes stay out */
	assert_clean(&r);
	opweb_response_clear(&r);

	get(f, "/message/" MSG_FAILED_ID, &r, 200);
	assert_non_null(strstr(body(&r), "No receipt stored."));
	assert_non_null(strstr(body(&r), "<td class=\"num\">403</td>"));
	assert_clean(&r);
	opweb_response_clear(&r);

	get(f, "/message/" MSG_DELIVERED_ID "/receipt.xml", &r, 200);
	assert_string_equal(r.content_type, "application/octet-stream");
	assert_string_equal(r.disposition,
			    "attachment; filename=\"" MSG_DELIVERED_ID ".receipt.xml\"");
	assert_int_equal(r.body.len, strlen(RECEIPT_XML));
	assert_memory_equal(r.body.data, RECEIPT_XML, r.body.len);
	opweb_response_clear(&r);
	get(f, "/message/" MSG_FAILED_ID "/receipt.xml", &r, 404);
	opweb_response_clear(&r);
}

static void test_routes(void **state)
{
	struct fixture *f = *state;
	struct opweb_response r;
	static const char *const not_found[] = {
		"/nope", "/notice/", "/notice/a/b", "/message/../metrics", "/message/x/receipt.xmlx",
		"/notice/%3Cscript%3E", "/notice/<script>", "//", "/metrics/", "", "/message/..",
	};

	get(f, "/metrics", &r, 200);
	assert_string_equal(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
	assert_non_null(strstr(body(&r), "notice_gateway_messages{state=\"failed\"} 1\n"));
	assert_non_null(strstr(body(&r), "notice_gateway_late_notices 1\n"));
	opweb_response_clear(&r);
	get(f, "/healthz", &r, 200);
	assert_string_equal(body(&r), "ok\n");
	opweb_response_clear(&r);
	get(f, "/style.css", &r, 200);
	assert_string_equal(r.content_type, "text/css; charset=utf-8");
	opweb_response_clear(&r);
	get(f, "/?q=<b>", &r, 200); /* a query string is ignored */
	opweb_response_clear(&r);
	for (size_t i = 0; i < sizeof(not_found) / sizeof(not_found[0]); i++) {
		get(f, not_found[i], &r, 404);
		assert_null(strstr(body(&r), "<script"));
		opweb_response_clear(&r);
	}
	for (const char *const *m = (const char *const[]){ "POST", "HEAD", "PUT", "DELETE", NULL }; *m;
	     m++) {
		assert_int_equal(opweb_handle(&f->v, *m, "/", &r), 0);
		assert_int_equal(r.status, 405);
		opweb_response_clear(&r);
	}
}

/* Ids with ':' are linked and served; an id's %XX escapes are decoded, then checked. */
static void test_colon_ids(void **state)
{
	struct fixture *f = *state;
	struct opweb_response r;
	static const char *const not_found[] = {
		"/notice/KDI%2F2026", "/notice/%2E%2E", "/notice/%2e", "/notice/.hidden",
		"/notice/-x", "/notice/:x", "/notice/KDI%3", "/notice/KDI%zz", "/notice/KDI%",
		"/notice/KDI%00x", "/notice/KDI%3A2026%3A7%2F", "/notice/KDI:2026:7/",
	};

	add_notice(f->st, COLON_NOTICE, "2027-06-01");
	add_message(f->st, MSG_COLON_ID, COLON_NOTICE, MSG_FAILED, "2027-06-01", "refused",
		    NOW - HOUR);
	get(f, "/", &r, 200);
	assert_non_null(strstr(body(&r), "href=\"/notice/" COLON_NOTICE "\">" COLON_NOTICE "</a>"));
	opweb_response_clear(&r);
	get(f, "/notice/" COLON_NOTICE, &r, 200);
	assert_non_null(strstr(body(&r), "<h2>Notice " COLON_NOTICE "</h2>"));
	assert_non_null(strstr(body(&r), "href=\"/message/" MSG_COLON_ID "\""));
	opweb_response_clear(&r);
	get(f, "/notice/KDI%3a2026%3A7", &r, 200); /* a client that encodes ':' */
	assert_non_null(strstr(body(&r), "<h2>Notice " COLON_NOTICE "</h2>"));
	opweb_response_clear(&r);
	get(f, "/message/" MSG_COLON_ID, &r, 200);
	assert_non_null(strstr(body(&r), "href=\"/notice/" COLON_NOTICE "\""));
	opweb_response_clear(&r);
	for (size_t i = 0; i < sizeof(not_found) / sizeof(not_found[0]); i++) {
		get(f, not_found[i], &r, 404);
		opweb_response_clear(&r);
	}
}

/* ---- the server -------------------------------------------------------------------- */

static void test_binding_rules(void **state)
{
	struct fixture *f = *state;
	struct event_base *base = event_base_new();
	struct opweb_options o;
	opweb *w = NULL;

	memset(&o, 0, sizeof(o));
	o.st = f->st;
	o.host = "0.0.0.0";
	assert_int_equal(opweb_start(&w, base, &o), GW_EINVALID);
	assert_non_null(strstr(gw_error_last(), "not loopback"));
	o.host = "::";
	assert_int_equal(opweb_start(&w, base, &o), GW_EINVALID);
	o.host = "localhost";
	assert_int_equal(opweb_start(&w, base, &o), GW_EINVALID);
	o.host = "0.0.0.0";
	o.tls_cert = tu_pki("gateway.pem"); /* only part of the TLS settings */
	assert_int_equal(opweb_start(&w, base, &o), GW_EINVALID);
	assert_null(w);
	/* all of TLS: another address is allowed (bound on loopback here) */
	o.host = "127.0.0.2";
	o.port = 0;
	o.tls_key = tu_pki("gateway.key");
	o.client_ca = tu_pki("ca.pem");
	assert_int_equal(opweb_start(&w, base, &o), 0);
	assert_true(opweb_port(w) > 0);
	opweb_free(w);
	/* a key others can read is refused */
	o.tls_key = tu_pki("gateway.pem");
	assert_int_equal(opweb_start(&w, base, &o), GW_EINVALID);
	event_base_free(base);
}

/* Without TLS: which Host headers are answered (DNS rebinding). */
static void test_host_rules(void **state)
{
	static const struct {
		const char *host;
		bool ok;
	} cases[] = {
		{ NULL, true }, /* HTTP/1.0 without Host: no browser sends that */
		{ "127.0.0.1", true },
		{ "127.0.0.1:9464", true },
		{ "127.1.2.3:9464", true },
		{ "[::1]", true },
		{ "[::1]:9464", true },
		{ "[0:0:0:0:0:0:0:1]:9464", true },
		{ "localhost", true },
		{ "LocalHost:9464", true },
		{ "evil.example", false },
		{ "evil.example:9464", false },
		{ "127.0.0.1:9465", false }, /* another port */
		{ "127.0.0.1:09464", false },
		{ "127.0.0.1:", false },
		{ "localhost:9464:9464", false },
		{ "localhost.", false },
		{ "localhost.evil.example", false },
		{ "127.0.0.1.evil.example", false },
		{ "127.1", false }, /* not a dotted quad */
		{ "10.0.0.1", false },
		{ "0.0.0.0", false },
		{ "[::ffff:127.0.0.1]", false },
		{ "[::2]", false },
		{ "[::1", false },
		{ "[::1]x", false },
		{ "::1", false },
		{ "", false },
		{ " 127.0.0.1", false },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (opweb_host_ok(cases[i].host, 9464) != cases[i].ok)
			fail_msg("Host '%s': expected %s", cases[i].host ? cases[i].host : "(none)",
				 cases[i].ok ? "accepted" : "refused");
	}
}

/* One request of a live exchange and what came back. */
struct exchange {
	const char *path;
	const char *host; /* a Host header line ("Host: x"); NULL: curl's own */
	const char *raw;  /* instead: this request as it is, on a socket (curl sends one Host) */
	bool post;
	long status;
	char csp[256];
	bool nosniff, no_store, close;
	char body[64];
	size_t body_len;
};

struct client {
	int port;
	struct exchange *ex;
	size_t n;
	atomic_int done; /* set by the client thread; the loop polls it */
	struct event_base *base;
};

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
	struct exchange *x = arg;
	size_t len = size * n;

	if (len > 25 && !strncasecmp(data, "Content-Security-Policy: ", 25))
		snprintf(x->csp, sizeof(x->csp), "%.*s", (int)(len - 27), data + 25);
	if (!strncasecmp(data, "X-Content-Type-Options: nosniff\r\n", len))
		x->nosniff = true;
	if (!strncasecmp(data, "Cache-Control: no-store\r\n", len))
		x->no_store = true;
	if (!strncasecmp(data, "Connection: close\r\n", len))
		x->close = true;
	return len;
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
	struct exchange *x = arg;
	size_t len = size * n;

	if (x->body_len + len < sizeof(x->body)) {
		memcpy(x->body + x->body_len, data, len);
		x->body_len += len;
	}
	return len;
}

/* Each request on a connection of its own: a refusal closes its connection. */
static void client_one(int port, struct exchange *x)
{
	struct curl_slist *headers = NULL;
	char url[128];
	CURL *e = curl_easy_init();

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, x->path);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	if (x->host)
		headers = curl_slist_append(headers, x->host);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
	if (x->post)
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, "x=1");
	if (curl_easy_perform(e) == CURLE_OK)
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &x->status);
	curl_easy_cleanup(e);
	curl_slist_free_all(headers);
}

/* A raw request; the answer read until the server closes (or 5 s), then parsed. */
static void raw_one(int port, struct exchange *x)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct timeval limit = { 5, 0 };
	char in[8192], *line, *end;
	size_t got = 0;
	ssize_t n;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit)) < 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    write(fd, x->raw, strlen(x->raw)) != (ssize_t)strlen(x->raw)) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while (got < sizeof(in) - 1 && (n = read(fd, in + got, sizeof(in) - 1 - got)) > 0)
		got += (size_t)n;
	close(fd);
	in[got] = '\0';
	if (strncmp(in, "HTTP/1.", 7) || got < 12 || !(end = strstr(in, "\r\n\r\n")))
		return;
	x->status = strtol(in + 9, NULL, 10);
	for (line = strstr(in, "\r\n") + 2; line < end + 2; line = strstr(line, "\r\n") + 2)
		on_header(line, 1, (size_t)(strstr(line, "\r\n") + 2 - line), x);
	on_body(end + 4, 1, got - (size_t)(end + 4 - in), x);
}

static void *client_run(void *arg)
{
	struct client *c = arg;

	for (size_t i = 0; i < c->n; i++) {
		if (c->ex[i].raw)
			raw_one(c->port, &c->ex[i]);
		else
			client_one(c->port, &c->ex[i]);
	}
	atomic_store(&c->done, 1);
	return NULL;
}

/* libevent is not built thread-aware here: the loop polls the client's flag. */
static void on_poll(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;

	(void)fd;
	(void)what;
	if (atomic_load(&c->done))
		event_base_loopbreak(c->base);
}

/* Run the exchanges against w (on base) from a client thread. */
static void exchange_all(struct event_base *base, opweb *w, struct exchange *ex, size_t n)
{
	struct timeval tick = { 0, 10000 };
	struct event *poll;
	struct client c;
	pthread_t t;

	memset(&c, 0, sizeof(c));
	c.port = opweb_port(w);
	c.base = base;
	c.ex = ex;
	c.n = n;
	poll = event_new(base, -1, EV_PERSIST, on_poll, &c);
	assert_int_equal(event_add(poll, &tick), 0);
	assert_int_equal(pthread_create(&t, NULL, client_run, &c), 0);
	event_base_dispatch(base);
	pthread_join(t, NULL);
	event_free(poll);
}

/* Every answer, refusals included, carries the security headers. */
static void assert_headers(const struct exchange *x)
{
	assert_string_equal(x->csp, OPWEB_CSP);
	assert_true(x->nosniff);
	assert_true(x->no_store);
}

static void test_live_exchange(void **state)
{
	struct fixture *f = *state;
	struct event_base *base;
	struct opweb_options o;
	char localhost[64], other_port[64], ipv6[64], two_hosts[128];
	opweb *w = NULL;

	base = event_base_new();
	memset(&o, 0, sizeof(o));
	o.st = f->st;
	o.port = 0;
	o.timeout_seconds = 5;
	add_notice(f->st, COLON_NOTICE, "2027-06-01");
	add_message(f->st, MSG_COLON_ID, COLON_NOTICE, MSG_QUEUED, "2027-06-01", "", NOW - HOUR);
	assert_int_equal(opweb_start(&w, base, &o), 0);
	snprintf(localhost, sizeof(localhost), "Host: LOCALHOST:%d", opweb_port(w));
	snprintf(other_port, sizeof(other_port), "Host: 127.0.0.1:%d", opweb_port(w) + 1);
	snprintf(ipv6, sizeof(ipv6), "Host: [::1]:%d", opweb_port(w));
	snprintf(two_hosts, sizeof(two_hosts), "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
		 "Host: evil.example\r\nConnection: close\r\n\r\n", opweb_port(w));
	{
		struct exchange ex[] = {
			{ .path = "/healthz" },
			{ .path = "/healthz", .post = true },
			{ .path = "/healthz", .host = "Host: evil.example" },
			{ .path = "/healthz", .host = localhost },
			{ .path = "/healthz", .host = ipv6 },
			{ .path = "/healthz", .host = other_port },
			{ .raw = two_hosts },
			{ .raw = "GET /healthz HTTP/1.0\r\n\r\n" }, /* no Host: allowed */
			{ .path = "/notice/" COLON_NOTICE },
		};

		exchange_all(base, w, ex, sizeof(ex) / sizeof(ex[0]));
		assert_int_equal(ex[0].status, 200);
		assert_int_equal(ex[0].body_len, 3);
		assert_memory_equal(ex[0].body, "ok\n", 3);
		assert_headers(&ex[0]);
		assert_int_equal(ex[1].status, 405);
		assert_headers(&ex[1]);
		/* DNS rebinding: another name is misdirected, with the headers */
		assert_int_equal(ex[2].status, 421);
		assert_headers(&ex[2]);
		assert_true(ex[2].close);
		assert_null(strstr(ex[2].body, "ok"));
		assert_int_equal(ex[3].status, 200);
		assert_int_equal(ex[4].status, 200);
		assert_int_equal(ex[5].status, 421);
		assert_int_equal(ex[6].status, 421); /* two Host headers */
		assert_headers(&ex[6]);
		assert_int_equal(ex[7].status, 200);
		assert_memory_equal(ex[7].body, "ok\n", 3);
		assert_headers(&ex[7]);
		assert_int_equal(ex[8].status, 200);
	}
	opweb_free(w);
	event_base_free(base);
}

/*
 * With TLS, a connection without a verified client certificate is answered
 * 403, with the security headers. The handshake requires a certificate, so
 * such a request arrives only on a plain connection evhttp made itself
 * when no TLS one could be made: SSL_new fails here (test_opweb links with
 * -Wl,--wrap=SSL_new, tests/CMake). The Host header is not checked with
 * TLS: any name is served to a verified operator.
 */
SSL *__real_SSL_new(SSL_CTX *ctx);
SSL *__wrap_SSL_new(SSL_CTX *ctx);
static atomic_int ssl_new_fails;

SSL *__wrap_SSL_new(SSL_CTX *ctx)
{
	return atomic_load(&ssl_new_fails) ? NULL : __real_SSL_new(ctx);
}

static void test_tls_refusal_has_headers(void **state)
{
	struct fixture *f = *state;
	struct event_base *base = event_base_new();
	struct opweb_options o;
	struct exchange ex[] = {
		{ .path = "/healthz" },
		{ .path = "/healthz", .host = "Host: evil.example" },
	};
	opweb *w = NULL;

	memset(&o, 0, sizeof(o));
	o.st = f->st;
	o.port = 0;
	o.timeout_seconds = 5;
	o.tls_cert = tu_pki("gateway.pem");
	o.tls_key = tu_pki("gateway.key");
	o.client_ca = tu_pki("ca.pem");
	assert_int_equal(opweb_start(&w, base, &o), 0);
	atomic_store(&ssl_new_fails, 1);
	exchange_all(base, w, ex, sizeof(ex) / sizeof(ex[0]));
	atomic_store(&ssl_new_fails, 0);
	for (size_t i = 0; i < sizeof(ex) / sizeof(ex[0]); i++) {
		assert_int_equal(ex[i].status, 403);
		assert_headers(&ex[i]);
		assert_true(ex[i].close);
		assert_null(strstr(ex[i].body, "ok"));
	}
	opweb_free(w);
	event_base_free(base);
}

/* ---- TLS connections: the cap, the handshake deadline, shutdown ---------------- */

static opweb *tls_start(struct fixture *f, struct event_base *base, int timeout)
{
	struct opweb_options o;
	opweb *w = NULL;

	memset(&o, 0, sizeof(o));
	o.st = f->st;
	o.port = 0;
	o.timeout_seconds = timeout;
	o.tls_cert = tu_pki("gateway.pem");
	o.tls_key = tu_pki("gateway.key");
	o.client_ca = tu_pki("ca.pem");
	assert_int_equal(opweb_start(&w, base, &o), 0);
	return w;
}

/* Connected before the loop accepts it (the kernel completes the handshake). */
static int tcp_connect(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static void loop_for(struct event_base *base, long ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

/* The server closed fd (end-of-file or a reset); nothing was sent on it. */
static bool closed_by_server(int fd)
{
	char c;
	ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);

	return n == 0 || (n < 0 && errno == ECONNRESET);
}

/*
 * libevent 2.1 frees a connection's SSL only when the event loop is freed,
 * after opweb_free: the connection must not reach the freed server then
 * (ASan builds report it).
 */
static void test_tls_free_with_open_connection(void **state)
{
	struct event_base *base = event_base_new();
	opweb *w = tls_start(*state, base, 5);
	int fd = tcp_connect(opweb_port(w));

	loop_for(base, 100);
	opweb_free(w);
	event_base_free(base);
	close(fd);
}

/* A ClientHello trickled a byte at a time is cut at the timeout all the same. */
static void test_tls_handshake_deadline(void **state)
{
	struct event_base *base = event_base_new();
	opweb *w = tls_start(*state, base, 1);
	int fd = tcp_connect(opweb_port(w));
	const char hello[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
	int ticks = 0;

	while (ticks < 20 && !closed_by_server(fd)) {
		if (send(fd, hello + ticks % 10, 1, MSG_NOSIGNAL) != 1)
			break;
		loop_for(base, 200);
		ticks++;
	}
	assert_in_range(ticks, 4, 8); /* 1 s, not the 4 s it went on trickling */
	close(fd);
	opweb_free(w);
	event_base_free(base);
}

/* At the cap the oldest connection without a handshake makes room for a newcomer. */
static void test_tls_cap_evicts_oldest(void **state)
{
	struct event_base *base = event_base_new();
	opweb *w = tls_start(*state, base, 5);
	int fd[OPWEB_MAX_CONNECTIONS + 1];

	for (int i = 0; i < OPWEB_MAX_CONNECTIONS; i++)
		fd[i] = tcp_connect(opweb_port(w));
	loop_for(base, 200);
	fd[OPWEB_MAX_CONNECTIONS] = tcp_connect(opweb_port(w));
	loop_for(base, 200);
	assert_true(closed_by_server(fd[0]));
	for (int i = 1; i <= OPWEB_MAX_CONNECTIONS; i++)
		assert_false(closed_by_server(fd[i]));
	for (int i = 0; i <= OPWEB_MAX_CONNECTIONS; i++)
		close(fd[i]);
	opweb_free(w);
	event_base_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_html_escape),
		cmocka_unit_test(test_masking_only_nin_shaped_runs),
		cmocka_unit_test_setup_teardown(test_overview_gaps_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overview_weekend_releases, setup, teardown),
		cmocka_unit_test_setup_teardown(test_notice_page, setup, teardown),
		cmocka_unit_test_setup_teardown(test_message_page, setup, teardown),
		cmocka_unit_test_setup_teardown(test_routes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_colon_ids, setup, teardown),
		cmocka_unit_test_setup_teardown(test_binding_rules, setup, teardown),
		cmocka_unit_test(test_host_rules),
		cmocka_unit_test_setup_teardown(test_live_exchange, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_refusal_has_headers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_handshake_deadline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_cap_evicts_oldest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_free_with_open_connection, setup, teardown),
	};

	signal(SIGPIPE, SIG_IGN); /* as gateway send: a cut connection may still be written to */
	curl_global_init(CURL_GLOBAL_DEFAULT);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
