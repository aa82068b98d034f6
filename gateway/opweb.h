/*
 * opweb: the operator HTTP port of `gateway send`: Prometheus metrics and a
 * read-only web view of the store (SPEC section 10, docs/WEB.md).
 *
 *   GET /                  the gaps first (held, failed, late), then counts
 *                          by state, then the newest notices
 *   GET /notice/ID         each recipient's message: state and reason
 *   GET /message/ID        the message, every attempt, the stored receipt
 *   GET /message/ID/receipt.xml   the receipt's exact bytes (a download)
 *   GET /metrics           Prometheus text format 0.0.4 (metrics.h)
 *   GET /healthz           "ok" when the store answers
 *   GET /style.css         the one stylesheet
 * Every other method is answered 405 (Allow: GET); other paths 404. Ids
 * in paths are the notice schema's ([A-Za-z0-9][A-Za-z0-9._:-]{0,63}), an
 * id's %XX escapes decoded; nothing else is decoded.
 *
 * The view is server-rendered HTML without JavaScript; everything taken
 * from the store is HTML-escaped, free text (reasons, errors, receipt XML)
 * also has any run of exactly 11 digits masked (the shape of a nin). The
 * store holds no names or nins outside the signed message bytes, which are
 * never shown. Each answer carries Content-Security-Policy: default-src
 * 'none'; style-src 'self' (and nosniff, no-store, frame-ancestors 'none').
 *
 * Binding: loopback by default. On any other address the server refuses to
 * start unless TLS is configured with an operator CA: every connection must
 * then present a client certificate that chains to it (SSL_VERIFY_PEER |
 * SSL_VERIFY_FAIL_IF_NO_PEER_CERT, TLS 1.2 or later). Only literal
 * addresses are accepted, so "loopback" cannot depend on name resolution.
 * Without TLS a request whose Host header does not name the port by a
 * loopback address or localhost is answered 421 (opweb_host_ok: DNS
 * rebinding). Refusals (403 without a verified client certificate, 421)
 * carry the same security headers as every other answer.
 *
 * Bounds: request headers OPWEB_MAX_HEADERS bytes, body OPWEB_MAX_BODY,
 * a read/write timeout, at most OPWEB_MAX_ROWS rows per list on a page.
 * With TLS, each handshake must complete within the timeout however slowly
 * it trickles (event=opweb-connection-timeout), and at most
 * OPWEB_MAX_CONNECTIONS connections are open at once: at the cap the oldest
 * connection without a completed handshake is closed for a newcomer
 * (event=opweb-connection-evicted); when every place holds a completed
 * handshake the newcomer is closed at once (event=opweb-connection-refused).
 *
 * Runs on the caller's libevent loop; single-threaded.
 */
#ifndef GW_OPWEB_H
#define GW_OPWEB_H

#include "buf.h"
#include "store.h"

#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct gw_config;
struct metrics;

#define OPWEB_DEFAULT_HOST "127.0.0.1"
#define OPWEB_DEFAULT_PORT 9464
#define OPWEB_DEFAULT_TIMEOUT 10  /* seconds */
#define OPWEB_MAX_HEADERS 8192
#define OPWEB_MAX_BODY 1024
#define OPWEB_MAX_ROWS 200
#define OPWEB_MAX_CONNECTIONS 32
#define OPWEB_MAX_RECEIPT_SHOWN (64 * 1024)

typedef struct opweb opweb;

struct opweb_options {
	const char *host;             /* literal IPv4/IPv6 address; NULL: 127.0.0.1 */
	int port;                     /* 0: any free port (see opweb_port); -1: 9464 */
	store *st;                    /* read only; must outlive the server */
	const struct gw_config *cfg;  /* endpoints, lead days, certificates; may be NULL */
	struct metrics *metrics;      /* may be NULL: store gauges only */
	/* TLS: all three, or none (then only a loopback address is allowed). */
	const char *tls_cert;         /* server certificate chain (PEM) */
	const char *tls_key;          /* its key, mode 0600 */
	const char *client_ca;        /* operator CA: client certificates must chain to it */
	int timeout_seconds;          /* 0: OPWEB_DEFAULT_TIMEOUT */
	int64_t (*now_ms)(void);      /* NULL: timeutil_now_ms */
};

/*
 * Bind and start serving on base. GW_EINVALID (with the reason) for a
 * host that is not a literal address, a non-loopback address without TLS,
 * or TLS files that cannot be used; GW_ERROR when the port cannot be bound.
 */
int opweb_start(opweb **out, struct event_base *base, const struct opweb_options *opt);
/* The bound port (useful with port 0). */
int opweb_port(const opweb *w);
/* After a configuration reload (SIGHUP): cfg must outlive w or the next call. */
void opweb_set_config(opweb *w, const struct gw_config *cfg);
/* Stop listening and close every connection. NULL is fine. */
void opweb_free(opweb *w);

/* ---- rendering, without sockets (tests, opweb.c) -------------------------- */

struct opweb_view {
	store *st;
	const struct gw_config *cfg;
	struct metrics *metrics;
	int64_t now_ms;
};

struct opweb_response {
	int status;                /* 200, 404, 405, 500 */
	const char *content_type;
	char disposition[128];     /* Content-Disposition when not empty */
	gw_buf body;
};

/*
 * Answer one request: method ("GET", ...) and the request URI's path (a
 * query string is ignored). Always fills resp (free its body with
 * opweb_response_clear); returns 0, or the store's error after filling a
 * 500 page.
 */
int opweb_handle(const struct opweb_view *v, const char *method, const char *uri,
		 struct opweb_response *resp);

/*
 * Without TLS, whether a request's Host header may be answered: it names
 * this port by a loopback literal or localhost, so a page whose own name
 * was rebound to 127.0.0.1 (DNS rebinding) is refused, as it sends its own
 * name. Accepted: an IPv4 address in 127.0.0.0/8 (dotted quad), an IPv6
 * loopback address in brackets ([::1]), "localhost" in any case; each bare
 * or followed by ":PORT", the port bound. host NULL (no Host header: an
 * HTTP/1.0 client; browsers always send one) is accepted. The server
 * answers any other 421 (Misdirected Request), and also a request with more
 * than one Host header.
 */
bool opweb_host_ok(const char *host, int port);
void opweb_response_clear(struct opweb_response *resp);

/* Append s HTML-escaped (& < > " ' and control characters). */
int opweb_html_escape(gw_buf *out, const char *s, size_t len);
/* The same, with every run of exactly 11 digits replaced by "***********". */
int opweb_html_escape_masked(gw_buf *out, const char *s, size_t len);

/* The Content-Security-Policy every answer carries. */
#define OPWEB_CSP                                                                          \
	"default-src 'none'; style-src 'self'; base-uri 'none'; form-action 'none';"        \
	" frame-ancestors 'none'"

#endif
