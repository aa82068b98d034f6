/*
 * faultrecv: a partner's receiver that misbehaves on request, for testing
 * `gateway send` (SPEC sections 6 and 7). Test tool only; never deployed.
 *
 *   faultrecv --cert PEM --key KEY --trust CA --mode-file FILE --state-dir DIR
 *             [--port N] [--alt-cert PEM --alt-key KEY]
 *             [--untrusted-cert PEM --untrusted-key KEY]
 *
 * It serves HTTP/1.1 over mutual TLS (1.2 or later, client certificate
 * required and checked against --trust) on 127.0.0.1, keeps connections
 * alive, and answers each request as the first line of FILE says. FILE is
 * read again for every connection and every request, so a test changes the
 * behaviour by rewriting it; SIGHUP applies it at once (needed for `down`)
 * and then writes DIR/ack with the mode line, so the test knows it holds.
 *
 * Modes (first word; an optional argument follows):
 *   accept               200 + receipt accepted, signed with --key
 *   duplicate            200 + receipt duplicate
 *   down                 not listening (connection refused); open
 *                        connections are closed
 *   NNN [SECONDS]        status NNN without a body (503, 500, 429, 403,
 *                        413, 404, ...), with Retry-After: SECONDS if given
 *   reject [CODE]        400 + signed receipt rejected, Reason CODE
 *                        (default schema-invalid)
 *   conflict             409 + signed receipt rejected, message-id-conflict
 *   reset                read the headers and part of the body, then reset
 *                        the connection (TCP RST)
 *   hang                 read the request and never answer; the connection
 *                        stays open until the client gives up
 *   wrong-org            handshake with --alt-cert (another organisation's
 *                        valid certificate)
 *   untrusted            handshake with --untrusted-cert (no trusted chain)
 *   bad-signature        200 + receipt accepted, one signed byte altered
 *                        after signing (a digit of Received)
 *   other-message-id     200 + receipt accepted naming another MessageId
 *   wrong-digest         200 + receipt accepted with the digest of other bytes
 *   wrong-signer         200 + receipt accepted, signed with --alt-key
 *   no-receipt           200 without a body
 *   garbage              200 with a body that is not XML
 *
 * Files in DIR:
 *   port          the port listened on (written once, at start)
 *   stats         handshakes=N requests=N open=N max_open=N, one per line,
 *                 replaced atomically after every change
 *   requests.log  one line per request: MessageId, mode, status answered
 *   ack           the mode line applied on the last SIGHUP
 *
 * SIGTERM or SIGINT: exit 0. Diagnostics on stderr (key=value lines).
 */
#include "buf.h"
#include "err.h"
#include "log.h"
#include "receipt.h"
#include "signer.h"
#include "timeutil.h"
#include "xmlread.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_HEADERS (64 * 1024)
#define MAX_BODY (4 * 1024 * 1024)
#define OTHER_MESSAGE_ID "00000000-0000-4000-8000-000000000000"

struct mode {
	char word[32];
	char arg[64];
	char line[128];
};

struct conn {
	struct conn *next, *prev;
	struct fr *fr;
	struct bufferevent *bev;
	bool handshaken;
	bool have_headers;
	bool hanging;
	bool closing;
	size_t need; /* body bytes of the current request */
};

struct fr {
	const char *mode_file;
	const char *state_dir;
	struct event_base *base;
	struct evconnlistener *listener;
	SSL_CTX *ctx, *ctx_alt, *ctx_untrusted;
	signer *sig, *sig_alt;
	int port;
	struct conn *conns;
	unsigned long handshakes, requests;
	unsigned open, max_open;
};

struct opts {
	const char *cert, *key, *trust, *mode_file, *state_dir;
	const char *alt_cert, *alt_key, *untrusted_cert, *untrusted_key;
	int port;
};

/* ---- small files ---------------------------------------------------------- */

static void state_write(const struct fr *fr, const char *name, const char *text)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", fr->state_dir, name);
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", fr->state_dir, name);
	if (!(f = fopen(tmp, "w")))
		return;
	fputs(text, f);
	if (fclose(f) == 0)
		rename(tmp, path);
}

static void stats_write(const struct fr *fr)
{
	char text[256];

	snprintf(text, sizeof(text), "handshakes=%lu\nrequests=%lu\nopen=%u\nmax_open=%u\n",
		 fr->handshakes, fr->requests, fr->open, fr->max_open);
	state_write(fr, "stats", text);
}

static void request_log(const struct fr *fr, const char *id, const struct mode *m, int status)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/requests.log", fr->state_dir);
	if (!(f = fopen(path, "a")))
		return;
	fprintf(f, "%s %s %d\n", id[0] ? id : "-", m->word, status);
	fclose(f);
}

static void mode_read(const struct fr *fr, struct mode *m)
{
	FILE *f = fopen(fr->mode_file, "r");
	char *nl;

	memset(m, 0, sizeof(*m));
	snprintf(m->word, sizeof(m->word), "accept");
	if (!f)
		return;
	if (fgets(m->line, sizeof(m->line), f) && (nl = strchr(m->line, '\n')))
		*nl = '\0';
	fclose(f);
	if (sscanf(m->line, "%31s %63s", m->word, m->arg) < 1)
		snprintf(m->word, sizeof(m->word), "accept");
}

static bool mode_is(const struct mode *m, const char *word)
{
	return strcmp(m->word, word) == 0;
}

/* ---- connections ------------------------------------------------------------ */

static void conn_free(struct conn *c)
{
	struct fr *fr = c->fr;

	if (c->prev)
		c->prev->next = c->next;
	else
		fr->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->handshaken)
		fr->open--;
	bufferevent_free(c->bev);
	free(c);
	stats_write(fr);
}

/* A TCP reset, not a clean close: SO_LINGER 0, then close. */
static void conn_reset(struct conn *c)
{
	struct linger lin = { 1, 0 };
	evutil_socket_t fd = bufferevent_getfd(c->bev);

	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lin, sizeof(lin));
	conn_free(c);
}

static const char *phrase(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "Status";
	}
}

static void on_write_then_close(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		conn_free(c);
}

static void on_read(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);

static void respond(struct conn *c, int status, const char *retry_after, const gw_buf *body)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	bool close_after = status == 403 || status == 413;
	size_t len = body ? body->len : 0;

	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\n", status,
			    phrase(status), len);
	if (len)
		evbuffer_add_printf(out, "Content-Type: application/xml\r\n");
	if (retry_after && *retry_after)
		evbuffer_add_printf(out, "Retry-After: %s\r\n", retry_after);
	if (close_after)
		evbuffer_add_printf(out, "Connection: close\r\n");
	evbuffer_add(out, "\r\n", 2);
	if (len)
		evbuffer_add(out, body->data, len);
	if (close_after) {
		c->closing = true;
		bufferevent_setcb(c->bev, NULL, on_write_then_close, on_event, c);
	}
}

/* ---- receipts ---------------------------------------------------------------- */

static const char *find(const void *hay, size_t len, const char *needle)
{
	size_t n = strlen(needle);
	const char *h = hay;

	for (size_t i = 0; n <= len && i <= len - n; i++)
		if (memcmp(h + i, needle, n) == 0)
			return h + i;
	return NULL;
}

static void message_id_of(const unsigned char *body, size_t len, char out[37])
{
	static const char open_tag[] = "<MessageId>";
	const char *p = find(body, len, open_tag);

	out[0] = '\0';
	if (!p)
		return;
	p += sizeof(open_tag) - 1;
	if ((size_t)((const unsigned char *)p - body) + 36 <= len) {
		memcpy(out, p, 36);
		out[36] = '\0';
	}
}

/* Alter one signed byte: the last millisecond digit of Received. */
static void spoil(gw_buf *receipt)
{
	static const char tag[] = "Z</Received>";
	char *p = (char *)find(receipt->data, receipt->len, tag);

	if (p && p > (char *)receipt->data && p[-1] >= '0' && p[-1] <= '9')
		p[-1] = (char)('0' + (p[-1] - '0' + 1) % 10);
}

static int receipt_make(struct fr *fr, signer *sig, const char *id, const char *digest,
			const char *status, const char *code, gw_buf *out)
{
	struct receipt_info info;
	xmlDocPtr doc = NULL;
	int rc;

	memset(&info, 0, sizeof(info));
	snprintf(info.ref_message_id, sizeof(info.ref_message_id), "%s", id);
	snprintf(info.digest_b64, sizeof(info.digest_b64), "%s", digest);
	timeutil_format_utc_ms(timeutil_now_ms(), info.received, sizeof(info.received));
	snprintf(info.receiver_orgnr, sizeof(info.receiver_orgnr), "%s", signer_orgnr(sig));
	snprintf(info.status, sizeof(info.status), "%s", status);
	if (code) {
		snprintf(info.reason_code, sizeof(info.reason_code), "%.31s", code);
		snprintf(info.reason_text, sizeof(info.reason_text), "Rejected by the fault receiver.");
	}
	(void)fr;
	if ((rc = receipt_build(&doc, &info)) == 0)
		rc = signer_sign_to_bytes(sig, doc, out);
	xmlFreeDoc(doc);
	return rc;
}

/* ---- one request --------------------------------------------------------------- */

static void handle(struct conn *c, const unsigned char *body, size_t len)
{
	struct fr *fr = c->fr;
	struct mode m;
	gw_buf out = GW_BUF_INIT;
	char id[37], digest[45], other[45];
	const char *rid, *dig, *status = "accepted", *code = NULL;
	signer *sig = fr->sig;
	int http = 200;

	mode_read(fr, &m);
	message_id_of(body, len, id);
	fr->requests++;
	stats_write(fr);
	if (receipt_digest(body, len, digest) < 0 || receipt_digest((const unsigned char *)"x", 1, other) < 0) {
		respond(c, 500, NULL, NULL);
		return;
	}
	rid = id;
	dig = digest;
	if (mode_is(&m, "hang")) {
		c->hanging = true;
		request_log(fr, id, &m, 0);
		return;
	}
	if (m.word[0] >= '1' && m.word[0] <= '5') {
		http = atoi(m.word);
		request_log(fr, id, &m, http);
		respond(c, http, m.arg, NULL);
		return;
	}
	if (mode_is(&m, "no-receipt") || mode_is(&m, "garbage")) {
		if (mode_is(&m, "garbage"))
			gw_buf_puts(&out, "this is not a receipt");
		request_log(fr, id, &m, 200);
		respond(c, 200, NULL, &out);
		gw_buf_free(&out);
		return;
	}
	if (mode_is(&m, "duplicate"))
		status = "duplicate";
	else if (mode_is(&m, "other-message-id"))
		rid = OTHER_MESSAGE_ID;
	else if (mode_is(&m, "wrong-digest"))
		dig = other;
	else if (mode_is(&m, "wrong-signer") && fr->sig_alt)
		sig = fr->sig_alt;
	else if (mode_is(&m, "reject")) {
		http = 400;
		status = "rejected";
		code = m.arg[0] ? m.arg : "schema-invalid";
	} else if (mode_is(&m, "conflict")) {
		http = 409;
		status = "rejected";
		code = "message-id-conflict";
	}
	if (!id[0] || receipt_make(fr, sig, rid, dig, status, code, &out) < 0) {
		gw_log(GW_LOG_ERROR, "receipt-failed", "reason", gw_error_last(), NULL);
		request_log(fr, id, &m, 500);
		respond(c, 500, NULL, NULL);
		gw_buf_free(&out);
		return;
	}
	if (mode_is(&m, "bad-signature"))
		spoil(&out);
	request_log(fr, id, &m, http);
	respond(c, http, NULL, &out);
	gw_buf_free(&out);
}

static bool headers_parse(struct conn *c, struct evbuffer *in)
{
	struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
	char *head, *cl;
	size_t hlen;

	if (end.pos < 0)
		return false;
	hlen = (size_t)end.pos + 4;
	if (!(head = malloc(hlen + 1)))
		return false;
	evbuffer_remove(in, head, hlen);
	head[hlen] = '\0';
	c->need = 0;
	for (cl = head; (cl = strchr(cl, '\n')); cl++) {
		if (strncasecmp(cl + 1, "content-length:", 15) == 0) {
			c->need = strtoul(cl + 16, NULL, 10);
			break;
		}
	}
	free(head);
	c->have_headers = true;
	return true;
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	while (!c->closing) {
		size_t have = evbuffer_get_length(in);
		unsigned char *body;
		struct mode m;

		if (c->hanging) {
			evbuffer_drain(in, have);
			return;
		}
		if (!c->have_headers) {
			if (!headers_parse(c, in)) {
				if (have > MAX_HEADERS)
					conn_reset(c);
				return;
			}
			have = evbuffer_get_length(in);
		}
		if (c->need > MAX_BODY) {
			conn_reset(c);
			return;
		}
		mode_read(c->fr, &m);
		if (mode_is(&m, "reset") && (have > 0 || c->need == 0)) {
			c->fr->requests++;
			request_log(c->fr, "", &m, 0);
			conn_reset(c); /* headers and part of the body read */
			return;
		}
		if (have < c->need)
			return;
		if (!(body = malloc(c->need + 1))) {
			conn_reset(c);
			return;
		}
		evbuffer_remove(in, body, c->need);
		body[c->need] = '\0';
		c->have_headers = false;
		handle(c, body, c->need);
		free(body);
	}
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	struct fr *fr = c->fr;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		c->handshaken = true;
		fr->handshakes++;
		if (++fr->open > fr->max_open)
			fr->max_open = fr->open;
		stats_write(fr);
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
		conn_free(c);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	struct fr *fr = arg;
	struct mode m;
	SSL_CTX *ctx = fr->ctx;
	SSL *ssl;
	struct conn *c;

	(void)l;
	(void)sa;
	(void)salen;
	mode_read(fr, &m);
	if (mode_is(&m, "down")) {
		evutil_closesocket(fd);
		return;
	}
	if (mode_is(&m, "wrong-org") && fr->ctx_alt)
		ctx = fr->ctx_alt;
	else if (mode_is(&m, "untrusted") && fr->ctx_untrusted)
		ctx = fr->ctx_untrusted;
	if (!(ssl = SSL_new(ctx)) || !(c = calloc(1, sizeof(*c)))) {
		SSL_free(ssl);
		evutil_closesocket(fd);
		return;
	}
	c->fr = fr;
	c->bev = bufferevent_openssl_socket_new(fr->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
						BEV_OPT_CLOSE_ON_FREE);
	if (!c->bev) {
		SSL_free(ssl);
		evutil_closesocket(fd);
		free(c);
		return;
	}
	c->next = fr->conns;
	if (fr->conns)
		fr->conns->prev = c;
	fr->conns = c;
	bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* ---- set-up ---------------------------------------------------------------------- */

static SSL_CTX *tls_context(const char *cert, const char *key, const char *trust)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (!ctx)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1 ||
	    SSL_CTX_load_verify_locations(ctx, trust, NULL) != 1) {
		fprintf(stderr, "faultrecv: cannot load %s / %s / %s\n", cert, key, trust);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

static int listen_on(struct fr *fr)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((unsigned short)fr->port);
	fr->listener = evconnlistener_new_bind(fr->base, on_accept, fr,
					       LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC |
						       LEV_OPT_REUSEABLE,
					       64, (struct sockaddr *)&sin, sizeof(sin));
	if (!fr->listener)
		return -1;
	if (getsockname(evconnlistener_get_fd(fr->listener), (struct sockaddr *)&sin, &len) == 0)
		fr->port = ntohs(sin.sin_port);
	return 0;
}

/* Apply the mode file now: down closes everything, anything else listens. */
static void apply_mode(struct fr *fr)
{
	struct mode m;
	char ack[160];

	mode_read(fr, &m);
	if (mode_is(&m, "down")) {
		if (fr->listener)
			evconnlistener_free(fr->listener);
		fr->listener = NULL;
		while (fr->conns)
			conn_free(fr->conns);
	} else if (!fr->listener && listen_on(fr) < 0) {
		fprintf(stderr, "faultrecv: cannot listen again on port %d: %s\n", fr->port,
			strerror(errno));
	}
	snprintf(ack, sizeof(ack), "%s\n", m.line);
	state_write(fr, "ack", ack);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct fr *fr = arg;

	(void)what;
	if (sig == SIGHUP)
		apply_mode(fr);
	else
		event_base_loopbreak(fr->base);
}

static int parse(int argc, char **argv, struct opts *o)
{
	memset(o, 0, sizeof(*o));
	for (int i = 1; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];

		if (!strcmp(k, "--cert")) o->cert = v;
		else if (!strcmp(k, "--key")) o->key = v;
		else if (!strcmp(k, "--trust")) o->trust = v;
		else if (!strcmp(k, "--mode-file")) o->mode_file = v;
		else if (!strcmp(k, "--state-dir")) o->state_dir = v;
		else if (!strcmp(k, "--alt-cert")) o->alt_cert = v;
		else if (!strcmp(k, "--alt-key")) o->alt_key = v;
		else if (!strcmp(k, "--untrusted-cert")) o->untrusted_cert = v;
		else if (!strcmp(k, "--untrusted-key")) o->untrusted_key = v;
		else if (!strcmp(k, "--port")) o->port = atoi(v);
		else return -1;
	}
	if (argc % 2 == 0 || !o->cert || !o->key || !o->trust || !o->mode_file || !o->state_dir)
		return -1;
	return 0;
}

static int setup(struct fr *fr, const struct opts *o)
{
	char port[16];

	if (xmlread_init() < 0 || dsig_init() < 0)
		return -1;
	if (signer_open(&fr->sig, o->key, o->cert) < 0 ||
	    (o->alt_key && signer_open(&fr->sig_alt, o->alt_key, o->alt_cert) < 0)) {
		fprintf(stderr, "faultrecv: %s\n", gw_error_last());
		return -1;
	}
	if (!(fr->ctx = tls_context(o->cert, o->key, o->trust)) ||
	    (o->alt_cert && !(fr->ctx_alt = tls_context(o->alt_cert, o->alt_key, o->trust))) ||
	    (o->untrusted_cert &&
	     !(fr->ctx_untrusted = tls_context(o->untrusted_cert, o->untrusted_key, o->trust))))
		return -1;
	if (!(fr->base = event_base_new()) || listen_on(fr) < 0) {
		fprintf(stderr, "faultrecv: cannot listen on 127.0.0.1:%d\n", o->port);
		return -1;
	}
	snprintf(port, sizeof(port), "%d\n", fr->port);
	stats_write(fr);
	apply_mode(fr);
	state_write(fr, "port", port);
	return 0;
}

int main(int argc, char **argv)
{
	struct fr fr;
	struct opts o;
	struct event *sigs[3] = { NULL, NULL, NULL };
	static const int signals[3] = { SIGHUP, SIGTERM, SIGINT };
	int rc = 1;

	signal(SIGPIPE, SIG_IGN);
	if (parse(argc, argv, &o) < 0) {
		fprintf(stderr, "usage: faultrecv --cert PEM --key KEY --trust CA --mode-file FILE"
				" --state-dir DIR [--port N] [--alt-cert PEM --alt-key KEY]"
				" [--untrusted-cert PEM --untrusted-key KEY]\n");
		return 2;
	}
	memset(&fr, 0, sizeof(fr));
	fr.mode_file = o.mode_file;
	fr.state_dir = o.state_dir;
	fr.port = o.port;
	if (setup(&fr, &o) == 0) {
		rc = 0;
		for (int i = 0; i < 3; i++) {
			sigs[i] = evsignal_new(fr.base, signals[i], on_signal, &fr);
			if (!sigs[i] || event_add(sigs[i], NULL) < 0)
				rc = 1;
		}
		if (rc == 0 && event_base_dispatch(fr.base) < 0)
			rc = 1;
	}
	while (fr.conns)
		conn_free(fr.conns);
	for (int i = 0; i < 3; i++)
		if (sigs[i])
			event_free(sigs[i]);
	if (fr.listener)
		evconnlistener_free(fr.listener);
	if (fr.base)
		event_base_free(fr.base);
	SSL_CTX_free(fr.ctx);
	SSL_CTX_free(fr.ctx_alt);
	SSL_CTX_free(fr.ctx_untrusted);
	signer_close(fr.sig);
	signer_close(fr.sig_alt);
	dsig_shutdown();
	xmlread_shutdown();
	return rc;
}
