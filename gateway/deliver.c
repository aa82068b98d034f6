/*
 * deliver: the transfer engine (see deliver.h).
 *
 * Three kinds of state, as in curl's hiperfifo.c: the engine (event base,
 * one timer event, the multi handle), one struct transfer per attempt
 * (CURLOPT_PRIVATE) and one struct sock per socket (curl_multi_assign).
 * Endpoint state (trust anchors, limits, failure counts) lives in a list
 * that only grows, so a configuration reload never frees what a transfer in
 * flight or an open TLS connection still points to.
 *
 * What it relies on: the store commits durably; receipt_verify() applies
 * SPEC section 7; pki_cert_orgnr() reads a certificate's organisation.
 * Diagnostics: one log line per state change (event=sending, delivered,
 * retry, failed), and event=store-error when an outcome cannot be written
 * (the message then stays in 'sending' until the next start).
 */
#include "deliver.h"
#include "config.h"
#include "err.h"
#include "fsutil.h"
#include "log.h"
#include "metrics.h"
#include "pki.h"
#include "receipt.h"
#include "timeutil.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_TRUST_FILE_BYTES (1024 * 1024)
#define MAX_RETRY_AFTER_SECONDS (7L * 24 * 3600)
#define PARKED_MAX 16384 /* message ids remembered per down endpoint */
/*
 * A dispatch pass commits relaxed (deliver_batch_begin); a durable commit
 * (an outcome) or, failing that, a store sync() follows within this time,
 * so its audit rows are published well inside the time `audit verify`
 * waits for a head being written.
 */
#define DURABLE_WITHIN_MS 50
/* How often messages whose outcome could not be recorded are tried again. */
#define UNRECORDED_RETRY_MS 5000
/*
 * A message whose stored bytes do not match their digest, and that the
 * store would not let fail, is looked at again after this long rather than
 * at every dispatch pass (refuse_corrupt).
 */
#define CORRUPT_RECHECK_MS (15 * 60 * 1000)
#define CORRUPT_RECHECK_TEXT "15 minutes"

/*
 * The messages parked for a down endpoint, so its recovery can release them
 * at once (an open-addressing set of MessageIds; power-of-two slots, never
 * more than half full). Beyond PARKED_MAX a parked message just waits for
 * its parked time, which is at most the retry cap.
 */
struct parked_set {
	char (*slot)[37];
	size_t n, cap;
};

struct endpoint_state {
	struct endpoint_state *next;
	char name[64];
	char orgnr[10];
	char server_orgnr[10];
	char url[512];
	size_t max_connections;
	bool configured;
	gw_buf anchors;              /* the endpoint's trust anchors, concatenated PEM */
	size_t in_flight;
	int consecutive_failures;
	unsigned identity_refusals;  /* handshakes refused for a wrong organisation */
	char identity_error[192];
	struct parked_set parked;    /* waiting for this endpoint to answer */
};

struct sock {
	struct sock *next, *prev;
	struct deliver *d;
	curl_socket_t fd;
	struct event *ev;
};

struct transfer {
	struct transfer *next, *prev;
	struct deliver *d;
	CURL *easy;
	struct curl_slist *headers;
	struct endpoint_state *ep;
	char message_id[37];
	char expected_orgnr[10]; /* who must have signed the receipt */
	char digest_b64[45];     /* of the bytes sent */
	int failed_before;
	int64_t deadline_ms;
	int64_t started_ms;  /* the scheduler's clock (attempt time) */
	int64_t started_mono; /* the monotonic clock (attempt duration) */
	unsigned identity_refusals_at_start;
	struct crl_bundle *crl;      /* the CRLs its connection is checked with, or NULL */
	struct transfer *batch_next; /* d->prepared (waiting for the commit) or d->finished */
	CURLcode result;             /* once finished */
	gw_buf body;
	gw_buf response;
	bool response_too_large;
	char curl_error[CURL_ERROR_SIZE];
};

/*
 * A message whose attempt ended but whose outcome could not be written
 * (the database's disk full, say): it is still 'sending' in the store with
 * no transfer behind it. It is queued again as soon as the store takes the
 * change, without waiting for a restart (recover_sending); the receiver
 * answers the resend 'duplicate' if the first attempt had reached it.
 */
struct unrecorded {
	struct unrecorded *next;
	char message_id[37];
};

struct deliver {
	bool resign_wanted; /* a message was held to be signed again */
	struct event_base *base;
	struct event *timer;
	CURLM *multi;
	int running;
	const struct gw_config *cfg;
	store *st;
	struct verifier *verifier;
	struct backoff_policy backoff;
	int64_t (*now_ms)(void);
	deliver_done_fn on_done;
	void *ctx;
	struct metrics *metrics;
	int probe_after;
	long connect_timeout_ms;
	long total_timeout_ms;
	size_t max_response;
	size_t max_total;
	struct endpoint_state *endpoints;
	struct transfer *transfers;
	size_t in_flight;
	bool batch;                 /* a dispatch pass's store transaction is open */
	struct transfer *prepared;  /* started in that pass, launched after its commit */
	struct transfer *finished;  /* finished, outcome not yet recorded */
	struct event *ev_finish;    /* records them, once per event-loop iteration */
	struct event *ev_sync;      /* a relaxed pass was committed: sync the store soon */
	struct unrecorded *unrecorded; /* 'sending' in the store, no transfer: to queue again */
	struct event *ev_unrecorded;   /* tries that every UNRECORDED_RETRY_MS */
	struct sock *socks;
	struct crl_bundle *crl;    /* the CRLs new transfers use; NULL: no CRL checks */
};

/*
 * The identity's CRLs copied into one private file per (re)load: curl takes
 * one CRL file and reads it when a connection is made. Each load has its own
 * name, so a connection made with older CRLs is never reused for a new
 * transfer (curl matches connections by CRL file name), and the file lives
 * until the last transfer that may still connect with it is freed.
 */
struct crl_bundle {
	char path[PATH_MAX];
	unsigned refs;
};

/* The facts one finished transfer leaves behind. */
struct attempt_facts {
	struct outcome_input in;
	struct outcome result;
	struct receipt_info receipt;
	char receipt_error[320];
	const char *receipt_reason; /* verification reason code when not verified */
	char transport_text[CURL_ERROR_SIZE + 64];
	int64_t retry_after_ms;
	int64_t next_attempt_ms;
	int64_t finished_ms;
	int64_t finished_mono;
	bool reached; /* the whole body went out, or the partner answered */
	enum msg_state to;
};

static int ssl_ex_index = -1;

/* Milliseconds of a clock that neither jumps nor is replaced by a test clock. */
static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the parked set ------------------------------------------------------ */

static size_t parked_hash(const char *id)
{
	size_t h = 1469598103934665603ULL & SIZE_MAX; /* FNV-1a */

	for (; *id; id++)
		h = (h ^ (unsigned char)*id) * (1099511628211ULL & SIZE_MAX);
	return h;
}

static bool parked_place(char (*slot)[37], size_t cap, const char *id)
{
	size_t i = parked_hash(id) & (cap - 1);

	while (slot[i][0]) {
		if (strcmp(slot[i], id) == 0)
			return false;
		i = (i + 1) & (cap - 1);
	}
	snprintf(slot[i], sizeof(slot[i]), "%s", id);
	return true;
}

/* Remember id; false when the set is full (or out of memory). */
static bool parked_add(struct parked_set *p, const char *id)
{
	if (p->n >= PARKED_MAX)
		return false;
	if ((p->n + 1) * 2 > p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 64;
		char (*slot)[37] = calloc(cap, sizeof(*slot));

		if (!slot)
			return false;
		for (size_t i = 0; i < p->cap; i++)
			if (p->slot[i][0])
				parked_place(slot, cap, p->slot[i]);
		free(p->slot);
		p->slot = slot;
		p->cap = cap;
	}
	if (parked_place(p->slot, p->cap, id))
		p->n++;
	return true;
}

static void parked_clear(struct parked_set *p)
{
	free(p->slot);
	memset(p, 0, sizeof(*p));
}

/* ---- endpoints ---------------------------------------------------------- */

static struct endpoint_state *endpoint_find(const deliver *d, const char *name)
{
	for (struct endpoint_state *ep = d->endpoints; ep; ep = ep->next)
		if (strcmp(ep->name, name) == 0)
			return ep;
	return NULL;
}

static int read_anchors(gw_buf *out, const char *name, const char (*files)[PATH_MAX], size_t n)
{
	gw_buf one = GW_BUF_INIT;
	int rc = 0;

	if (n == 0)
		return gw_error_set(GW_EINVALID, "endpoint %s: no trust anchor configured", name);
	for (size_t i = 0; i < n && rc == 0; i++) {
		rc = fsutil_read_file(files[i], MAX_TRUST_FILE_BYTES, &one);
		if (rc < 0) {
			gw_error_wrap(GW_EINVALID, "endpoint %s: trust anchor %s", name, files[i]);
			break;
		}
		if (!strstr((const char *)one.data, "-----BEGIN CERTIFICATE-----")) {
			rc = gw_error_set(GW_EINVALID,
					  "endpoint %s: trust anchor %s holds no PEM certificate",
					  name, files[i]);
			break;
		}
		if (gw_buf_put(out, one.data, one.len) < 0 || gw_buf_puts(out, "\n") < 0)
			rc = GW_ENOMEM;
	}
	gw_buf_free(&one);
	return rc;
}

/* "https://host:port" parts of an endpoint URL, checked to be https. */
static int url_origin(const struct config_endpoint *e, char *out, size_t outlen)
{
	CURLU *u = curl_url();
	char *host = NULL, *port = NULL, *scheme = NULL;
	int rc = 0;

	if (!u)
		return gw_error_set(GW_ENOMEM, "out of memory parsing a URL");
	if (curl_url_set(u, CURLUPART_URL, e->url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK)
		rc = gw_error_set(GW_EINVALID, "endpoint %s: url '%s' cannot be parsed", e->name,
				  e->url);
	else if (strcmp(scheme, "https") != 0)
		rc = gw_error_set(GW_EINVALID, "endpoint %s: url must use https", e->name);
	else
		snprintf(out, outlen, "%s:%s", host, port);
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return rc;
}

static const char *endpoint_server_orgnr(const struct config_endpoint *e)
{
	return e->server_orgnr[0] ? e->server_orgnr : e->orgnr;
}

/*
 * Connections are reused by host and port. Two endpoints on one origin that
 * expect different server organisations could then skip the second check.
 */
static int check_origins(const struct gw_config *cfg)
{
	char a[600], b[600];
	int rc;

	for (size_t i = 0; i < cfg->n_endpoints; i++) {
		if ((rc = url_origin(&cfg->endpoints[i], a, sizeof(a))) < 0)
			return rc;
		for (size_t j = 0; j < i; j++) {
			if ((rc = url_origin(&cfg->endpoints[j], b, sizeof(b))) < 0)
				return rc;
			if (strcmp(a, b) == 0 &&
			    strcmp(endpoint_server_orgnr(&cfg->endpoints[i]),
				   endpoint_server_orgnr(&cfg->endpoints[j])) != 0)
				return gw_error_set(GW_EINVALID,
						    "endpoints %s and %s share %s but expect different "
						    "server organisations",
						    cfg->endpoints[j].name, cfg->endpoints[i].name, a);
		}
	}
	return 0;
}

static int endpoint_anchors(const struct gw_config *cfg, const struct config_endpoint *e,
			    gw_buf *out)
{
	if (e->n_trust > 0)
		return read_anchors(out, e->name, e->trust, e->n_trust);
	return read_anchors(out, e->name, cfg->identity.trust, cfg->identity.n_trust);
}

static void endpoint_apply(struct endpoint_state *ep, const struct config_endpoint *e,
			   gw_buf *anchors)
{
	gw_buf old = ep->anchors;

	snprintf(ep->name, sizeof(ep->name), "%s", e->name);
	snprintf(ep->orgnr, sizeof(ep->orgnr), "%s", e->orgnr);
	snprintf(ep->server_orgnr, sizeof(ep->server_orgnr), "%s", endpoint_server_orgnr(e));
	snprintf(ep->url, sizeof(ep->url), "%s", e->url);
	ep->max_connections = e->max_connections > 0 ? (size_t)e->max_connections : 1;
	ep->anchors = *anchors;
	ep->configured = true;
	*anchors = old;
}

/* ---- CRLs --------------------------------------------------------------- */

static struct crl_bundle *crl_hold(struct crl_bundle *b)
{
	if (b)
		b->refs++;
	return b;
}

static void crl_release(struct crl_bundle *b)
{
	if (!b || --b->refs > 0)
		return;
	unlink(b->path);
	free(b);
}

/*
 * Bundles live beside the database as DB.crl-XXXXXX (mkstemp's template):
 * one sender per database (its lock), so at start every such file is a
 * left-over of a sender that was killed, and goes.
 */
static void crl_bundles_sweep(const char *db)
{
	char dir[PATH_MAX] = ".", prefix[PATH_MAX];
	const char *slash = strrchr(db, '/');
	struct dirent *e;
	DIR *d;

	if (slash)
		snprintf(dir, sizeof(dir), "%.*s", slash == db ? 1 : (int)(slash - db), db);
	snprintf(prefix, sizeof(prefix), "%s.crl-", slash ? slash + 1 : db);
	if (!db[0] || !(d = opendir(dir)))
		return;
	while ((e = readdir(d)) != NULL)
		if (!strncmp(e->d_name, prefix, strlen(prefix)) &&
		    strlen(e->d_name) == strlen(prefix) + 6)
			unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
}

/* The identity's CRL files, one after another, in a new private file at path. */
static int crl_bundle_write(const struct gw_config *cfg, char *path, size_t pathlen)
{
	gw_buf all = GW_BUF_INIT;
	int fd, rc = 0;

	for (size_t i = 0; i < cfg->identity.n_crl && rc == 0; i++) {
		rc = fsutil_append_file(cfg->identity.crl[i], MAX_TRUST_FILE_BYTES, &all);
		if (rc < 0)
			gw_error_wrap(rc, "CRL %s", cfg->identity.crl[i]);
		else
			rc = gw_buf_puts(&all, "\n");
	}
	if (rc < 0) {
		gw_buf_free(&all);
		return rc;
	}
	if (snprintf(path, pathlen, "%s.crl-XXXXXX", cfg->gateway.db) >= (int)pathlen) {
		gw_buf_free(&all);
		return gw_error_set(GW_EINVALID, "database path too long for a CRL bundle beside it");
	}
	fd = mkstemp(path);
	if (fd < 0) {
		gw_buf_free(&all);
		return gw_error_set(GW_ERROR, "cannot create the CRL bundle %s: %s", path,
				    strerror(errno));
	}
	if (write(fd, all.data, all.len) != (ssize_t)all.len) {
		rc = gw_error_set(GW_ERROR, "cannot write the CRL bundle %s", path);
		unlink(path);
	}
	close(fd);
	gw_buf_free(&all);
	return rc;
}

static int crl_setup(deliver *d, const struct gw_config *cfg)
{
	struct crl_bundle *b = NULL;
	int rc;

	if (cfg->identity.n_crl > 0) {
		if (!(b = calloc(1, sizeof(*b))))
			return gw_error_set(GW_ENOMEM, "out of memory for the CRL bundle");
		if ((rc = crl_bundle_write(cfg, b->path, sizeof(b->path))) < 0) {
			free(b);
			return rc;
		}
		b->refs = 1;
	}
	crl_release(d->crl);
	d->crl = b;
	return 0;
}

/* ---- configuration ------------------------------------------------------ */

static void multi_limits(deliver *d, const struct gw_config *cfg)
{
	long per_host = 1;

	d->max_total = cfg->gateway.max_connections > 0 ? (size_t)cfg->gateway.max_connections : 16;
	for (size_t i = 0; i < cfg->n_endpoints; i++)
		if (cfg->endpoints[i].max_connections > per_host)
			per_host = cfg->endpoints[i].max_connections;
	curl_multi_setopt(d->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)d->max_total);
	curl_multi_setopt(d->multi, CURLMOPT_MAX_HOST_CONNECTIONS, per_host);
	curl_multi_setopt(d->multi, CURLMOPT_MAXCONNECTS, (long)d->max_total);
}

static void anchors_free(gw_buf *anchors, size_t n)
{
	for (size_t i = 0; i < n; i++)
		gw_buf_free(&anchors[i]);
	free(anchors);
}

/* Allocate first, then apply: a failure leaves the old configuration whole. */
static int endpoints_commit(deliver *d, const struct gw_config *cfg, gw_buf *anchors)
{
	for (size_t i = 0; i < cfg->n_endpoints; i++) {
		struct endpoint_state *ep = endpoint_find(d, cfg->endpoints[i].name);
		if (ep)
			continue;
		if (!(ep = calloc(1, sizeof(*ep))))
			return gw_error_set(GW_ENOMEM, "out of memory for endpoint state");
		snprintf(ep->name, sizeof(ep->name), "%s", cfg->endpoints[i].name);
		ep->next = d->endpoints;
		d->endpoints = ep;
	}
	for (struct endpoint_state *ep = d->endpoints; ep; ep = ep->next)
		ep->configured = false;
	for (size_t i = 0; i < cfg->n_endpoints; i++)
		endpoint_apply(endpoint_find(d, cfg->endpoints[i].name), &cfg->endpoints[i],
			       &anchors[i]);
	return 0;
}

bool deliver_take_resign(deliver *d)
{
	bool wanted = d->resign_wanted;

	d->resign_wanted = false;
	return wanted;
}

void deliver_set_verifier(deliver *d, struct verifier *v)
{
	d->verifier = v;
}

int deliver_reconfigure(deliver *d, const struct gw_config *cfg,
			const struct backoff_policy *backoff)
{
	gw_buf *anchors;
	int rc;

	if ((rc = check_origins(cfg)) < 0)
		return rc;
	anchors = calloc(cfg->n_endpoints + 1, sizeof(*anchors));
	if (!anchors)
		return gw_error_set(GW_ENOMEM, "out of memory reading trust anchors");
	for (size_t i = 0; i < cfg->n_endpoints && rc == 0; i++)
		rc = endpoint_anchors(cfg, &cfg->endpoints[i], &anchors[i]);
	if (rc == 0)
		rc = crl_setup(d, cfg);
	if (rc == 0)
		rc = endpoints_commit(d, cfg, anchors);
	anchors_free(anchors, cfg->n_endpoints);
	if (rc < 0)
		return rc;
	d->cfg = cfg;
	if (backoff)
		d->backoff = *backoff;
	multi_limits(d, cfg);
	return 0;
}

/* ---- TLS: the server's organisation --------------------------------------- */

static int verify_server_org(int preverify_ok, X509_STORE_CTX *xs)
{
	SSL *ssl;
	struct endpoint_state *ep;
	char org[10] = "";

	if (!preverify_ok || X509_STORE_CTX_get_error_depth(xs) != 0)
		return preverify_ok;
	ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	ep = ssl ? SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ssl_ex_index) : NULL;
	if (!ep)
		return 0;
	if (pki_cert_orgnr(X509_STORE_CTX_get_current_cert(xs), org) == 0 &&
	    strcmp(org, ep->server_orgnr) == 0)
		return 1;
	snprintf(ep->identity_error, sizeof(ep->identity_error),
		 "server certificate names organisation %s, expected %s",
		 org[0] ? org : "(none)", ep->server_orgnr);
	ep->identity_refusals++;
	X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
	return 0;
}

/*
 * CURLOPT_SSL_CTX_FUNCTION: libcurl 7.88 makes one SSL_CTX per connection
 * and calls this before the handshake. The endpoint state outlives every
 * connection (it is freed after the multi handle), so the pointer is safe.
 */
static CURLcode ssl_ctx_setup(CURL *easy, void *sslctx, void *userptr)
{
	SSL_CTX *ctx = sslctx;

	(void)easy;
	if (!SSL_CTX_set_ex_data(ctx, ssl_ex_index, userptr))
		return CURLE_SSL_CERTPROBLEM;
	if (SSL_CTX_get_security_level(ctx) < PKI_SECURITY_LEVEL)
		SSL_CTX_set_security_level(ctx, PKI_SECURITY_LEVEL);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_server_org);
	return CURLE_OK;
}

/* ---- libevent glue (hiperfifo.c shape) ----------------------------------- */

static void drain_finished(deliver *d);

static void on_socket_event(evutil_socket_t fd, short what, void *arg)
{
	deliver *d = arg;
	int flags = ((what & EV_READ) ? CURL_CSELECT_IN : 0) |
		    ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);

	curl_multi_socket_action(d->multi, fd, flags, &d->running);
	drain_finished(d);
}

static void on_timer_event(evutil_socket_t fd, short what, void *arg)
{
	deliver *d = arg;

	(void)fd;
	(void)what;
	curl_multi_socket_action(d->multi, CURL_SOCKET_TIMEOUT, 0, &d->running);
	drain_finished(d);
}

/* CURLMOPT_TIMERFUNCTION: only (re)arm our one timer; 0 ms is a prompt event. */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
	deliver *d = userp;
	struct timeval tv;

	(void)multi;
	if (timeout_ms < 0) {
		evtimer_del(d->timer);
		return 0;
	}
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	return evtimer_add(d->timer, &tv) == 0 ? 0 : -1;
}

static void sock_free(deliver *d, struct sock *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		d->socks = s->next;
	if (s->next)
		s->next->prev = s->prev;
	event_free(s->ev);
	free(s);
}

static struct sock *sock_new(deliver *d, curl_socket_t fd)
{
	struct sock *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->d = d;
	s->fd = fd;
	s->ev = event_new(d->base, fd, 0, on_socket_event, d);
	if (!s->ev) {
		free(s);
		return NULL;
	}
	s->next = d->socks;
	if (d->socks)
		d->socks->prev = s;
	d->socks = s;
	return s;
}

/* CURLMOPT_SOCKETFUNCTION: add, change or remove the socket's event. */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	deliver *d = userp;
	struct sock *s = socketp;
	short kind;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (s) {
			curl_multi_assign(d->multi, fd, NULL);
			sock_free(d, s);
		}
		return 0;
	}
	if (!s) {
		if (!(s = sock_new(d, fd)))
			return -1;
		curl_multi_assign(d->multi, fd, s);
	}
	kind = (short)(((what & CURL_POLL_IN) ? EV_READ : 0) |
		       ((what & CURL_POLL_OUT) ? EV_WRITE : 0) | EV_PERSIST);
	event_del(s->ev);
	if (event_assign(s->ev, d->base, fd, kind, on_socket_event, d) < 0 ||
	    event_add(s->ev, NULL) < 0)
		return -1;
	return 0;
}

/* ---- one transfer -------------------------------------------------------- */

static size_t on_response_data(char *ptr, size_t size, size_t nmemb, void *userp)
{
	struct transfer *t = userp;
	size_t n = size * nmemb;

	if (n > t->d->max_response - t->response.len) {
		t->response_too_large = true;
		return 0; /* ends the transfer with CURLE_WRITE_ERROR */
	}
	if (gw_buf_put(&t->response, ptr, n) < 0)
		return 0;
	return n;
}

static void transfer_free(struct transfer *t)
{
	if (!t)
		return;
	if (t->easy)
		curl_easy_cleanup(t->easy);
	curl_slist_free_all(t->headers);
	gw_buf_free(&t->body);
	gw_buf_free(&t->response);
	crl_release(t->crl);
	free(t);
}

static int transfer_headers(struct transfer *t)
{
	static const char *const lines[] = {
		"Content-Type: application/xml", "Accept: application/xml", "Expect:",
	};

	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		struct curl_slist *next = curl_slist_append(t->headers, lines[i]);
		if (!next)
			return gw_error_set(GW_ENOMEM, "out of memory for request headers");
		t->headers = next;
	}
	return 0;
}

#define SETOPT(opt, value)                                               \
	do {                                                             \
		if (rc == CURLE_OK)                                      \
			rc = curl_easy_setopt(t->easy, (opt), (value)); \
	} while (0)

/* The request: exact bytes, https only, no redirects, TLS 1.2+, both sides checked. */
static int transfer_setup_easy(struct transfer *t)
{
	const deliver *d = t->d;
	const struct config_identity *id = &d->cfg->identity;
	struct curl_blob anchors = { t->ep->anchors.data, t->ep->anchors.len, CURL_BLOB_COPY };
	CURLcode rc = CURLE_OK;

	if (!(t->easy = curl_easy_init()))
		return gw_error_set(GW_ENOMEM, "cannot create a transfer handle");
	if (transfer_headers(t) < 0)
		return GW_ENOMEM;
	SETOPT(CURLOPT_PRIVATE, t);
	SETOPT(CURLOPT_ERRORBUFFER, t->curl_error);
	SETOPT(CURLOPT_NOSIGNAL, 1L);
	SETOPT(CURLOPT_URL, t->ep->url);
	SETOPT(CURLOPT_PROTOCOLS_STR, "https");
	SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "https");
	SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
	SETOPT(CURLOPT_PROXY, ""); /* never a proxy from the environment */
	SETOPT(CURLOPT_USERAGENT, "notice-gateway/" GW_VERSION);
	SETOPT(CURLOPT_POST, 1L);
	SETOPT(CURLOPT_POSTFIELDS, (const char *)t->body.data);
	SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)t->body.len);
	SETOPT(CURLOPT_HTTPHEADER, t->headers);
	SETOPT(CURLOPT_WRITEFUNCTION, on_response_data);
	SETOPT(CURLOPT_WRITEDATA, t);
	SETOPT(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
	SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
	SETOPT(CURLOPT_CAPATH, (const char *)NULL);
	SETOPT(CURLOPT_CAINFO_BLOB, &anchors);
	if (t->crl)
		SETOPT(CURLOPT_CRLFILE, t->crl->path);
	SETOPT(CURLOPT_SSLCERTTYPE, "PEM");
	SETOPT(CURLOPT_SSLCERT, id->cert);
	SETOPT(CURLOPT_SSLKEYTYPE, "PEM");
	SETOPT(CURLOPT_SSLKEY, id->key);
	SETOPT(CURLOPT_SSL_SESSIONID_CACHE, 0L);
	SETOPT(CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_setup);
	SETOPT(CURLOPT_SSL_CTX_DATA, t->ep);
	SETOPT(CURLOPT_CONNECTTIMEOUT_MS, d->connect_timeout_ms);
	SETOPT(CURLOPT_TIMEOUT_MS, d->total_timeout_ms);
	SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
	SETOPT(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS); /* h2 via ALPN when offered */
	if (rc != CURLE_OK)
		return gw_error_set(GW_ERROR, "cannot set up the transfer: %s",
				    curl_easy_strerror(rc));
	return 0;
}

#undef SETOPT

static int64_t message_deadline(const deliver *d, const struct store_message *m)
{
	int days = d->cfg->gateway.retry_horizon_days > 0 ? d->cfg->gateway.retry_horizon_days : 14;

	if (m->deadline_ms > 0)
		return m->deadline_ms;
	return m->created_ms + (int64_t)days * 86400 * 1000;
}

static int transfer_new(struct transfer **out, deliver *d, struct endpoint_state *ep,
			const struct store_message *m)
{
	struct transfer *t = calloc(1, sizeof(*t));
	int rc;

	if (!t)
		return gw_error_set(GW_ENOMEM, "out of memory for a transfer");
	t->d = d;
	t->ep = ep;
	snprintf(t->message_id, sizeof(t->message_id), "%s", m->message_id);
	snprintf(t->expected_orgnr, sizeof(t->expected_orgnr), "%s",
		 m->recipient_orgnr[0] ? m->recipient_orgnr : ep->orgnr);
	t->failed_before = m->attempts;
	t->deadline_ms = message_deadline(d, m);
	t->identity_refusals_at_start = ep->identity_refusals;
	t->crl = crl_hold(d->crl);
	/* A dispatch reads due rows without their bytes: only a started one's are read. */
	if (m->signed_bytes.len)
		rc = gw_buf_put(&t->body, m->signed_bytes.data, m->signed_bytes.len);
	else
		rc = d->st->ops->message_bytes(d->st, m->message_id, &t->body);
	if (rc == 0 && t->body.len == 0)
		rc = gw_error_set(GW_ERROR, "message %s has no signed bytes", m->message_id);
	if (rc < 0 || (rc = receipt_digest(t->body.data, t->body.len, t->digest_b64)) < 0 ||
	    (rc = transfer_setup_easy(t)) < 0) {
		transfer_free(t);
		return rc;
	}
	*out = t;
	return 0;
}

static void transfer_link(deliver *d, struct transfer *t)
{
	t->next = d->transfers;
	if (d->transfers)
		d->transfers->prev = t;
	d->transfers = t;
	d->in_flight++;
	t->ep->in_flight++;
}

static void transfer_unlink(deliver *d, struct transfer *t)
{
	if (t->prev)
		t->prev->next = t->next;
	else
		d->transfers = t->next;
	if (t->next)
		t->next->prev = t->prev;
	d->in_flight--;
	t->ep->in_flight--;
}

/* ---- the store ---------------------------------------------------------- */

/* Compare-and-set one message in its own transaction, or in the dispatch pass's. */
static int store_move(deliver *d, const char *id, enum msg_state from, enum msg_state to,
		      const char *reason, int64_t next_ms)
{
	store *st = d->st;
	int rc;

	if (d->batch) /* a refused compare-and-set changes nothing */
		return st->ops->message_update(st, id, from, to, reason, next_ms, 0);
	if ((rc = st->ops->begin(st)) < 0)
		return rc;
	rc = st->ops->message_update(st, id, from, to, reason, next_ms, 0);
	if (rc == 0)
		rc = st->ops->commit(st);
	if (rc < 0)
		st->ops->rollback(st); /* keeps the error message */
	return rc;
}

/* Whether a failed update means the message moved on (and where to). */
static bool state_moved_on(deliver *d, const char *id, enum msg_state expected)
{
	struct store_message now;
	bool moved;

	memset(&now, 0, sizeof(now));
	if (d->st->ops->message_get(d->st, id, &now) < 0) {
		store_message_clear(&now);
		return false;
	}
	moved = now.state != expected;
	store_message_clear(&now);
	return moved;
}

static void fill_attempt(const struct transfer *t, const struct attempt_facts *f,
			 struct store_attempt *a)
{
	memset(a, 0, sizeof(*a));
	snprintf(a->message_id, sizeof(a->message_id), "%s", t->message_id);
	a->started_ms = t->started_ms;
	a->duration_ms = f->finished_mono - t->started_mono;
	a->http_status = (int)f->in.http_status;
	a->reached = f->reached;
	if (f->result.kind != OUTCOME_DELIVERED)
		snprintf(a->error, sizeof(a->error), "%s", f->result.reason);
	snprintf(a->outcome, sizeof(a->outcome), "%s", outcome_name(f->result.kind));
}

static void fill_receipt(const struct transfer *t, const struct attempt_facts *f,
			 struct store_receipt *r)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->message_id, sizeof(r->message_id), "%s", t->message_id);
	r->verified = f->in.receipt_verified;
	if (r->verified) {
		snprintf(r->status, sizeof(r->status), "%s", f->receipt.status);
		snprintf(r->reason_code, sizeof(r->reason_code), "%s", f->receipt.reason_code);
	} else {
		snprintf(r->reason_code, sizeof(r->reason_code), "%s",
			 f->receipt_reason ? f->receipt_reason : "");
	}
	r->received_ms = f->finished_ms;
	r->bytes = t->response; /* borrowed: the store copies */
}

/*
 * The attempt, the receipt as received, the new state, in the open
 * transaction. When the message was moved on meanwhile (an operator
 * cancelled it), the evidence is still kept and the state is left alone.
 */
static int outcome_write(deliver *d, const struct transfer *t, const struct attempt_facts *f)
{
	store *st = d->st;
	struct store_attempt a;
	struct store_receipt r;
	int rc;

	fill_attempt(t, f, &a);
	rc = st->ops->attempt_insert(st, &a);
	if (rc == 0 && f->in.receipt_present) {
		fill_receipt(t, f, &r);
		rc = st->ops->receipt_insert(st, &r);
	}
	if (rc == 0) {
		/* A delivered message has no reason to show; the receipt says the rest. */
		const char *reason = f->to == MSG_DELIVERED ? "" : f->result.reason;
		rc = st->ops->message_update(st, t->message_id, MSG_SENDING, f->to, reason,
					     f->next_attempt_ms, 1);
		if (rc < 0 && state_moved_on(d, t->message_id, MSG_SENDING)) {
			gw_log(GW_LOG_WARN, "state-changed", "msg", t->message_id, "endpoint",
			       t->ep->name, "reason", "changed while sending; attempt kept", NULL);
			rc = 0;
		}
	}
	return rc;
}

/* One outcome in a transaction of its own. */
static int store_outcome(deliver *d, const struct transfer *t, const struct attempt_facts *f)
{
	store *st = d->st;
	int rc;

	if ((rc = st->ops->begin(st)) < 0)
		return rc;
	rc = outcome_write(d, t, f);
	if (rc == 0)
		rc = st->ops->commit(st);
	if (rc < 0)
		st->ops->rollback(st); /* keeps the error message */
	return rc;
}

/* ---- finishing an attempt ------------------------------------------------ */

static void check_receipt(deliver *d, const struct transfer *t, struct attempt_facts *f)
{
	long s = f->in.http_status;
	const char *reason = NULL;

	if ((s != 200 && s != 400 && s != 409) || t->response.len == 0)
		return;
	f->in.receipt_present = true;
	gw_error_clear();
	if (receipt_verify(d->verifier, t->response.data, t->response.len, t->expected_orgnr,
			   t->message_id, t->digest_b64, &f->receipt, &reason) == 0) {
		f->in.receipt_verified = true;
		f->in.receipt_status = f->receipt.status;
		f->in.receipt_reason_code = f->receipt.reason_code;
		return;
	}
	f->receipt_reason = reason ? reason : "malformed";
	metrics_count_receipt_failure(d->metrics, f->receipt_reason);
	snprintf(f->receipt_error, sizeof(f->receipt_error), "%s: %s", f->receipt_reason,
		 gw_error_last());
	f->in.receipt_error = f->receipt_error;
}

/* Whether curl sent the whole request body: only then can the partner have stored it. */
static bool body_sent(const struct transfer *t)
{
	curl_off_t uploaded = 0;

	if (curl_easy_getinfo(t->easy, CURLINFO_SIZE_UPLOAD_T, &uploaded) != CURLE_OK)
		return true; /* cannot tell: assume it may have */
	return uploaded >= (curl_off_t)t->body.len;
}

static void gather_transport(const struct transfer *t, CURLcode result, struct attempt_facts *f)
{
	curl_off_t retry_after = 0;
	long status = 0;

	f->in.transport = outcome_transport_from_curl((int)result);
	snprintf(f->transport_text, sizeof(f->transport_text), "%s",
		 t->curl_error[0] ? t->curl_error : curl_easy_strerror(result));
	if (t->response_too_large) {
		f->in.transport = TRANSPORT_TOO_LARGE;
		snprintf(f->transport_text, sizeof(f->transport_text),
			 "the answer exceeded %zu bytes", t->d->max_response);
	} else if (f->in.transport == TRANSPORT_TLS &&
		   t->ep->identity_refusals != t->identity_refusals_at_start) {
		f->in.transport = TRANSPORT_SERVER_ORG;
		snprintf(f->transport_text, sizeof(f->transport_text), "%s", t->ep->identity_error);
	}
	f->in.transport_text = f->transport_text;
	f->reached = body_sent(t);
	if (f->in.transport != TRANSPORT_OK)
		return;
	curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(t->easy, CURLINFO_RETRY_AFTER, &retry_after);
	f->in.http_status = status;
	f->reached |= status > 0;
	if (retry_after > MAX_RETRY_AFTER_SECONDS)
		retry_after = MAX_RETRY_AFTER_SECONDS;
	f->retry_after_ms = retry_after > 0 ? (int64_t)retry_after * 1000 : 0;
}

/* A verified refusal as stale: the partner proved it has no copy (STORE_HELD_STALE). */
static bool refused_as_stale(const struct outcome_input *in)
{
	return in->receipt_verified && in->receipt_status &&
	       strcmp(in->receipt_status, "rejected") == 0 && in->receipt_reason_code &&
	       strcmp(in->receipt_reason_code, "stale") == 0;
}

static int last_attempt_stale(const struct store_attempt *a, void *ctx)
{
	*(bool *)ctx = strcmp(a->error, STORE_HELD_STALE) == 0; /* the last row decides */
	return 0;
}

/*
 * Whether the attempt just before this one was a "stale" too: the message
 * was signed again and refused again at once, so the partner's clock, not
 * the message's age, is wrong. Attempts in between (the partner down
 * again) make it a new outage, signed again once more.
 */
static bool stale_before(deliver *d, const struct transfer *t)
{
	bool stale = false;

	if (d->st->ops->attempts_list(d->st, t->message_id, last_attempt_stale, &stale) < 0) {
		gw_error_clear();
		return false;
	}
	return stale;
}

/* Turn the classification into the next state, scheduling a retry or giving up. */
static void decide(deliver *d, const struct transfer *t, struct attempt_facts *f)
{
	char reason[sizeof(f->result.reason)];

	outcome_classify(&f->in, &f->result);
	f->next_attempt_ms = -1; /* keep */
	switch (f->result.kind) {
	case OUTCOME_DELIVERED:
		f->to = MSG_DELIVERED;
		return;
	case OUTCOME_FAILED:
		f->to = MSG_FAILED;
		if (!refused_as_stale(&f->in))
			return;
		if (stale_before(d, t)) {
			memcpy(reason, f->result.reason, sizeof(reason));
			snprintf(f->result.reason, sizeof(f->result.reason),
				 "%.180s; stale again after it was signed anew: check the "
				 "partner's clock", reason);
			return;
		}
		f->result.kind = OUTCOME_RETRY; /* signed again, then sent */
		f->to = MSG_HELD;
		snprintf(f->result.reason, sizeof(f->result.reason), "%s", STORE_HELD_STALE);
		return;
	case OUTCOME_RETRY:
		break;
	}
	if (backoff_next(&d->backoff, t->failed_before, f->finished_ms, t->deadline_ms,
			 f->retry_after_ms, &f->next_attempt_ms) == BACKOFF_RETRY) {
		f->to = MSG_QUEUED;
		return;
	}
	memcpy(reason, f->result.reason, sizeof(reason));
	snprintf(f->result.reason, sizeof(f->result.reason), "retry horizon reached: %.200s",
		 reason);
	f->result.kind = OUTCOME_FAILED;
	f->to = MSG_FAILED;
	f->next_attempt_ms = -1;
}

/*
 * The endpoint answers again: its parked messages are due now, in one
 * transaction, so dispatch sends the backlog at the endpoint's concurrency
 * limit instead of waiting for each parked time. A message that moved on
 * meanwhile (started, cancelled) is left alone.
 */
static void release_parked(deliver *d, struct endpoint_state *ep)
{
	store *st = d->st;
	int64_t now = d->now_ms();
	size_t released = 0;
	char n[24];

	if (ep->parked.n == 0)
		return;
	if (st->ops->begin(st) < 0) {
		gw_log(GW_LOG_ERROR, "store-error", "endpoint", ep->name, "reason", gw_error_last(),
		       NULL);
		parked_clear(&ep->parked);
		return;
	}
	for (size_t i = 0; i < ep->parked.cap; i++) {
		const char *id = ep->parked.slot[i];
		if (id[0] && st->ops->message_update(st, id, MSG_QUEUED, MSG_QUEUED, "", now, 0) == 0)
			released++;
	}
	gw_error_clear();
	if (st->ops->commit(st) < 0) {
		gw_log(GW_LOG_ERROR, "store-error", "endpoint", ep->name, "reason", gw_error_last(),
		       NULL);
		st->ops->rollback(st);
		released = 0;
	}
	parked_clear(&ep->parked);
	snprintf(n, sizeof(n), "%zu", released);
	gw_log(GW_LOG_INFO, "released", "endpoint", ep->name, "messages", n, NULL);
}

static void endpoint_record(deliver *d, struct endpoint_state *ep, const struct outcome *o)
{
	bool was_probing = ep->consecutive_failures >= d->probe_after;

	if (o->partner_answered) {
		if (was_probing)
			gw_log(GW_LOG_INFO, "endpoint-up", "endpoint", ep->name, NULL);
		ep->consecutive_failures = 0;
		release_parked(d, ep);
		return;
	}
	if (o->kind == OUTCOME_DELIVERED)
		return;
	ep->consecutive_failures++;
	if (!was_probing && ep->consecutive_failures >= d->probe_after)
		gw_log(GW_LOG_WARN, "endpoint-down", "endpoint", ep->name, "reason",
		       "consecutive failures; one transfer at a time until it answers", NULL);
}

static void log_outcome(const struct transfer *t, const struct attempt_facts *f)
{
	char status[16], ms[24], next[24];
	enum gw_log_level level = f->result.kind == OUTCOME_DELIVERED ? GW_LOG_INFO : GW_LOG_WARN;

	snprintf(status, sizeof(status), "%ld", f->in.http_status);
	snprintf(ms, sizeof(ms), "%lld", (long long)(f->finished_mono - t->started_mono));
	snprintf(next, sizeof(next), "%lld",
		 (long long)(f->next_attempt_ms > 0 ? (f->next_attempt_ms - f->finished_ms) / 1000 : 0));
	if (f->result.kind == OUTCOME_RETRY)
		gw_log(level, "retry", "msg", t->message_id, "endpoint", t->ep->name, "status", status,
		       "reason", f->result.reason, "ms", ms, "next_in_s", next, NULL);
	else
		gw_log(level, outcome_name(f->result.kind), "msg", t->message_id, "endpoint",
		       t->ep->name, "status", status, "reason", f->result.reason, "ms", ms, NULL);
}

/* What a finished transfer means: transport, receipt, next state. */
static void transfer_judge(deliver *d, struct transfer *t, struct attempt_facts *f)
{
	memset(f, 0, sizeof(*f));
	f->finished_ms = d->now_ms();
	f->finished_mono = mono_ms();
	gather_transport(t, t->result, f);
	if (f->in.transport == TRANSPORT_OK)
		check_receipt(d, t, f);
	decide(d, t, f);
}

/* After its outcome was recorded (stored = false: it could not be). */
static void unrecorded_arm(deliver *d)
{
	struct timeval later = { UNRECORDED_RETRY_MS / 1000, (UNRECORDED_RETRY_MS % 1000) * 1000 };

	if (d->ev_unrecorded && !evtimer_pending(d->ev_unrecorded, NULL))
		evtimer_add(d->ev_unrecorded, &later);
}

static void unrecorded_add(deliver *d, const char *message_id)
{
	struct unrecorded *u;

	for (u = d->unrecorded; u; u = u->next)
		if (strcmp(u->message_id, message_id) == 0)
			return;
	if (!(u = calloc(1, sizeof(*u)))) /* out of memory: the next start queues it */
		return;
	snprintf(u->message_id, sizeof(u->message_id), "%s", message_id);
	u->next = d->unrecorded;
	d->unrecorded = u;
	unrecorded_arm(d);
}

/* 'sending' -> 'queued' now; true when it is settled (done, or no longer sending). */
/*
 * The attempt happened: it gets its row (its answer is unknown here, so it
 * may have reached the partner: a withdrawal tells it) and is counted, so
 * the next one asks whether a later revision stopped the message meanwhile.
 */
static int unrecorded_write(deliver *d, const char *message_id)
{
	store *st = d->st;
	struct store_attempt a = { .started_ms = d->now_ms(), .reached = true };
	int rc;

	snprintf(a.message_id, sizeof(a.message_id), "%s", message_id);
	snprintf(a.error, sizeof(a.error), "%s", "the outcome of this attempt could not be recorded");
	snprintf(a.outcome, sizeof(a.outcome), "%s", "retry");
	if ((rc = st->ops->begin(st)) < 0)
		return rc;
	if ((rc = st->ops->message_update(st, message_id, MSG_SENDING, MSG_QUEUED,
					  "queued again: the outcome of its last attempt could "
					  "not be recorded", a.started_ms, 1)) == 0)
		rc = st->ops->attempt_insert(st, &a);
	if (rc == 0)
		rc = st->ops->commit(st);
	if (rc < 0)
		st->ops->rollback(st); /* keeps the error message */
	return rc;
}

static bool unrecorded_settle(deliver *d, const struct unrecorded *u)
{
	int rc = unrecorded_write(d, u->message_id);

	if (rc == 0) {
		gw_log(GW_LOG_INFO, "requeued", "msg", u->message_id, "reason",
		       "the outcome of its last attempt could not be recorded", NULL);
		if (d->on_done)
			d->on_done(d->ctx, u->message_id, OUTCOME_RETRY);
		return true;
	}
	if (rc == GW_EINVALID || rc == GW_ENOTFOUND) /* an operator moved it on meanwhile */
		return true;
	gw_log(GW_LOG_ERROR, "store-error", "msg", u->message_id, "reason", gw_error_last(),
	       "next", "tried again in 5 s; a restart queues it too", NULL);
	return false;
}

static void on_unrecorded_timer(evutil_socket_t fd, short what, void *arg)
{
	deliver *d = arg;
	struct unrecorded **link = &d->unrecorded;

	(void)fd;
	(void)what;
	while (*link) {
		struct unrecorded *u = *link;
		if (!unrecorded_settle(d, u)) {
			link = &u->next;
			continue;
		}
		*link = u->next;
		free(u);
	}
	if (d->unrecorded)
		unrecorded_arm(d);
}

static void transfer_act(deliver *d, struct transfer *t, const struct attempt_facts *f,
			 bool stored)
{
	enum outcome_kind kind = f->result.kind;

	if (!stored) {
		gw_log(GW_LOG_ERROR, "store-error", "msg", t->message_id, "endpoint", t->ep->name,
		       "reason", gw_error_last(), "next",
		       "queued again once the store takes it (tried every 5 s)", NULL);
		kind = OUTCOME_RETRY;
		unrecorded_add(d, t->message_id);
	} else {
		log_outcome(t, f);
		d->resign_wanted |= f->to == MSG_HELD;
	}
	metrics_count_delivery(d->metrics, t->ep->name, outcome_name(kind), f->result.reason);
	metrics_observe_attempt(d->metrics, t->ep->name,
				(double)(f->finished_mono - t->started_mono) / 1000.0);
	endpoint_record(d, t->ep, &f->result);
	if (d->on_done)
		d->on_done(d->ctx, t->message_id, kind);
}

/*
 * Every transfer finished since the last call: judged (receipts verified),
 * then ALL their outcomes written in ONE transaction, and only after its
 * commit acted on (logged, counted, endpoint state, on_done). Should that
 * transaction fail, each outcome is tried again in a transaction of its own,
 * so one bad row does not cost the others theirs. A transfer stays counted
 * in flight until its outcome is recorded.
 */
static void finish_all(deliver *d)
{
	struct transfer *list = d->finished, *t, *next;
	struct attempt_facts *facts;
	store *st = d->st;
	size_t n = 0, i;
	bool together;

	d->finished = NULL;
	for (t = list; t; t = t->batch_next)
		n++;
	if (n == 0)
		return;
	facts = calloc(n, sizeof(*facts));
	for (t = list, i = 0; t; t = t->batch_next, i++) {
		if (facts)
			transfer_judge(d, t, &facts[i]);
	}
	if (!facts) { /* out of memory: one at a time, as before */
		for (t = list; t; t = next) {
			struct attempt_facts f;
			next = t->batch_next;
			transfer_unlink(d, t);
			transfer_judge(d, t, &f);
			transfer_act(d, t, &f, store_outcome(d, t, &f) == 0);
			transfer_free(t);
		}
		return;
	}
	together = st->ops->begin(st) == 0;
	for (t = list, i = 0; together && t; t = t->batch_next, i++)
		together = outcome_write(d, t, &facts[i]) == 0;
	if (together)
		together = st->ops->commit(st) == 0; /* rolls back itself on failure */
	else
		st->ops->rollback(st);
	for (t = list, i = 0; t; t = next, i++) {
		bool stored = together || store_outcome(d, t, &facts[i]) == 0;
		next = t->batch_next;
		transfer_unlink(d, t);
		transfer_act(d, t, &facts[i], stored);
		transfer_free(t);
	}
	free(facts);
}

static void on_finish_event(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	finish_all(arg);
}

/*
 * The one place finished transfers are collected. They are recorded by
 * on_finish_event, once per event-loop iteration: transfers that finish on
 * several sockets in the same iteration share one transaction.
 */
static void drain_finished(deliver *d)
{
	struct transfer **tail = &d->finished;
	CURLMsg *msg;
	int left;

	while (*tail)
		tail = &(*tail)->batch_next;
	while ((msg = curl_multi_info_read(d->multi, &left))) {
		struct transfer *t;
		char *priv = NULL;
		CURL *easy = msg->easy_handle;
		CURLcode result = msg->data.result;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
		curl_multi_remove_handle(d->multi, easy);
		if (!(t = (struct transfer *)(void *)priv))
			continue;
		t->result = result;
		t->batch_next = NULL;
		*tail = t;
		tail = &t->batch_next;
	}
	if (d->finished) {
		if (d->ev_finish)
			event_active(d->ev_finish, 0, 0);
		else
			finish_all(d);
	}
}

/* ---- public -------------------------------------------------------------- */

int deliver_admit(const deliver *d, const char *endpoint)
{
	const struct endpoint_state *ep = endpoint_find(d, endpoint);
	size_t limit;

	if (!ep || !ep->configured)
		return gw_error_set(GW_ENOTFOUND, "no endpoint named '%s' is configured", endpoint);
	if (d->in_flight >= d->max_total)
		return GW_ETEMP;
	limit = ep->consecutive_failures >= d->probe_after ? 1 : ep->max_connections;
	return ep->in_flight < limit ? 0 : GW_ETEMP;
}

size_t deliver_in_flight(const deliver *d)
{
	return d->in_flight;
}

bool deliver_unsettled(const deliver *d)
{
	return d->in_flight > 0 || d->unrecorded != NULL;
}

bool deliver_full(const deliver *d)
{
	return d->in_flight >= d->max_total;
}

int deliver_park(deliver *d, const struct store_message *m)
{
	struct endpoint_state *ep = endpoint_find(d, m->endpoint);
	int64_t now, next, deadline;
	char reason[160];
	int rc;

	if (!ep || !ep->configured)
		return gw_error_set(GW_ENOTFOUND, "no endpoint named '%s' is configured", m->endpoint);
	if (ep->consecutive_failures < d->probe_after)
		return GW_ETEMP;
	now = d->now_ms();
	deadline = message_deadline(d, m);
	if (deadline <= now + d->backoff.floor_ms)
		return GW_ETEMP;
	next = now + backoff_ceiling(&d->backoff, ep->consecutive_failures - d->probe_after);
	if (next > deadline)
		next = deadline;
	snprintf(reason, sizeof(reason), "waiting: endpoint %s is not answering (%d failures)",
		 ep->name, ep->consecutive_failures);
	if ((rc = store_move(d, m->message_id, MSG_QUEUED, MSG_QUEUED, reason, next)) < 0)
		return rc;
	parked_add(&ep->parked, m->message_id); /* when full: waits for its time */
	gw_log(GW_LOG_DEBUG, "parked", "msg", m->message_id, "endpoint", ep->name, NULL);
	return 0;
}

#define CORRUPT_REASON "stored bytes do not match their digest"

/*
 * The store would not fail a corrupt message (its error is the last one):
 * unless someone else moved it meanwhile, it is put off, so that dispatch
 * passes do not take it up, and log it, again and again (and `--until-idle`
 * can end). Should even that fail, the store is failing: the sender's
 * handling of store errors takes over.
 */
static void corrupt_put_off(deliver *d, const struct store_message *m)
{
	const char *why = CORRUPT_REASON "; it could not be failed, looked at again in "
			  CORRUPT_RECHECK_TEXT;

	gw_log(GW_LOG_ERROR, "store-error", "msg", m->message_id, "endpoint", m->endpoint,
	       "reason", gw_error_last(), "while", "failing it: " CORRUPT_REASON, NULL);
	if (state_moved_on(d, m->message_id, MSG_QUEUED))
		return;
	if (store_move(d, m->message_id, MSG_QUEUED, MSG_QUEUED, why,
		       d->now_ms() + CORRUPT_RECHECK_MS) < 0) {
		gw_log(GW_LOG_ERROR, "store-error", "msg", m->message_id, "reason", gw_error_last(),
		       NULL);
		return;
	}
	gw_log(GW_LOG_WARN, "deferred", "msg", m->message_id, "endpoint", m->endpoint, "reason",
	       why, NULL);
}

/*
 * A queued message whose stored bytes do not match their digest is never
 * sent: it fails before any attempt (queued -> failed, with its audit row).
 */
static int refuse_corrupt(deliver *d, const struct store_message *m, const struct transfer *t)
{
	if (!m->digest_b64[0] || strcmp(m->digest_b64, t->digest_b64) == 0)
		return 0;
	if (store_move(d, m->message_id, MSG_QUEUED, MSG_FAILED, CORRUPT_REASON, -1) == 0)
		gw_log(GW_LOG_ERROR, "failed", "msg", m->message_id, "endpoint", m->endpoint,
		       "reason", CORRUPT_REASON, NULL);
	else
		corrupt_put_off(d, m);
	return gw_error_set(GW_EINVALID, "message %s: " CORRUPT_REASON, m->message_id);
}

/*
 * A later revision may have come in while the message was on its way or
 * failed (intake leaves a message being sent alone): superseded or withdrawn
 * content is never sent again. GW_EEXISTS when it was stopped.
 */
static int refuse_outdated(deliver *d, const struct store_message *m)
{
	enum msg_state to;
	char reason[64];
	int rc = d->st->ops->message_outdated(d->st, m->message_id, &to, reason, sizeof(reason));

	if (rc <= 0)
		return rc;
	if ((rc = store_move(d, m->message_id, MSG_QUEUED, to, reason, -1)) < 0)
		return rc;
	gw_log(GW_LOG_INFO, store_state_name(to), "msg", m->message_id, "endpoint", m->endpoint,
	       "reason", reason, NULL);
	return gw_error_set(GW_EEXISTS, "message %s is %s", m->message_id, reason);
}

/* The message is 'sending' (committed): hand the transfer to curl. */
static int transfer_launch(deliver *d, struct transfer *t)
{
	t->started_ms = d->now_ms();
	t->started_mono = mono_ms();
	if (curl_multi_add_handle(d->multi, t->easy) != CURLM_OK) {
		/* Back to queued; should even that fail, the retry list settles it. */
		if (store_move(d, t->message_id, MSG_SENDING, MSG_QUEUED, NULL, -1) < 0)
			unrecorded_add(d, t->message_id);
		return gw_error_set(GW_ERROR, "cannot start the transfer of message %s", t->message_id);
	}
	gw_log(GW_LOG_INFO, "sending", "msg", t->message_id, "endpoint", t->ep->name, NULL);
	return 0;
}

int deliver_start(deliver *d, const struct store_message *m)
{
	struct endpoint_state *ep;
	struct transfer *t = NULL;
	int rc;

	if ((rc = deliver_admit(d, m->endpoint)) < 0)
		return rc;
	ep = endpoint_find(d, m->endpoint);
	/* The name may have been pointed at another organisation since the
	 * message was addressed: its bytes must not reach that one. */
	if (m->recipient_orgnr[0] && strcmp(ep->orgnr, m->recipient_orgnr) != 0)
		return gw_error_set(GW_ENOTFOUND, "endpoint '%s' now names organisation %s, not "
				    "the recipient %s", ep->name, ep->orgnr, m->recipient_orgnr);
	if ((rc = transfer_new(&t, d, ep, m)) < 0)
		return rc;
	/* Only a message tried before can have been overtaken while it was out
	 * (intake itself stops what is queued): no look-up for a first attempt. */
	if ((m->attempts > 0 && (rc = refuse_outdated(d, m)) < 0) ||
	    (rc = refuse_corrupt(d, m, t)) < 0)
		goto fail;
	if ((rc = store_move(d, m->message_id, MSG_QUEUED, MSG_SENDING, NULL, -1)) < 0) {
		if (state_moved_on(d, m->message_id, MSG_QUEUED))
			rc = gw_error_set(GW_EEXISTS, "message %s is no longer queued", m->message_id);
		goto fail;
	}
	if (d->batch) { /* counted now, launched after the pass commits */
		transfer_link(d, t);
		t->batch_next = d->prepared;
		d->prepared = t;
		return 0;
	}
	if ((rc = transfer_launch(d, t)) < 0)
		goto fail;
	transfer_link(d, t);
	return 0;
fail:
	transfer_free(t);
	return rc;
}

/*
 * The pass's transaction is relaxed (store.h): its commit is not synced to
 * disk. It only marks messages 'sending' before their POST (and parks or
 * holds some): should a power cut lose it, they are 'queued' again, which
 * is what recover_sending() makes of 'sending' at the next start anyway,
 * and the receiver answers the resend 'duplicate'. A crash of the process
 * alone loses nothing. The outcome of an attempt is always committed
 * durably, and that commit makes the pass before it durable too.
 */
int deliver_batch_begin(deliver *d)
{
	store *st = d->st;
	int rc;

	if (d->batch)
		return gw_error_set(GW_EINVALID, "a dispatch pass is already open");
	rc = st->ops->begin_relaxed ? st->ops->begin_relaxed(st) : st->ops->begin(st);
	if (rc == 0)
		d->batch = true;
	return rc;
}

/* A relaxed pass's rows not yet made durable by an outcome's commit: sync them now. */
static void on_sync_event(evutil_socket_t fd, short what, void *arg)
{
	deliver *d = arg;

	(void)fd;
	(void)what;
	if (d->st->ops->sync && d->st->ops->sync(d->st) < 0)
		gw_log(GW_LOG_ERROR, "store-error", "reason", gw_error_last(), "next",
		       "the next durable commit makes the dispatch pass durable", NULL);
}

int deliver_batch_end(deliver *d)
{
	struct transfer *t, *next;
	int rc;

	d->batch = false;
	rc = d->st->ops->commit(d->st); /* rolls back itself when it fails */
	if (rc == 0 && d->ev_sync && !evtimer_pending(d->ev_sync, NULL)) {
		struct timeval soon = { 0, DURABLE_WITHIN_MS * 1000 };
		evtimer_add(d->ev_sync, &soon);
	}
	for (t = d->prepared, d->prepared = NULL; t; t = next) {
		next = t->batch_next;
		t->batch_next = NULL;
		if (rc == 0 && transfer_launch(d, t) == 0)
			continue;
		if (rc == 0)
			gw_log(GW_LOG_ERROR, "start-failed", "msg", t->message_id, "endpoint",
			       t->ep->name, "reason", gw_error_last(), NULL);
		transfer_unlink(d, t); /* not committed, or queued again: not in flight */
		transfer_free(t);
	}
	return rc;
}

size_t deliver_endpoints_with_room(const deliver *d)
{
	size_t n = 0;

	if (d->in_flight >= d->max_total)
		return 0;
	for (const struct endpoint_state *ep = d->endpoints; ep; ep = ep->next) {
		size_t limit = ep->consecutive_failures >= d->probe_after ? 1 : ep->max_connections;
		if (ep->configured && ep->in_flight < limit)
			n++;
	}
	return n;
}

static int multi_setup(deliver *d)
{
	if (!(d->multi = curl_multi_init()))
		return gw_error_set(GW_ENOMEM, "cannot create the transfer engine");
	if (!(d->timer = evtimer_new(d->base, on_timer_event, d)))
		return gw_error_set(GW_ENOMEM, "cannot create the transfer timer");
	if (!(d->ev_finish = event_new(d->base, -1, 0, on_finish_event, d)))
		return gw_error_set(GW_ENOMEM, "cannot create the transfer engine's finish event");
	if (!(d->ev_sync = evtimer_new(d->base, on_sync_event, d)))
		return gw_error_set(GW_ENOMEM, "cannot create the transfer engine's sync timer");
	if (!(d->ev_unrecorded = evtimer_new(d->base, on_unrecorded_timer, d)))
		return gw_error_set(GW_ENOMEM, "cannot create the transfer engine's requeue timer");
	curl_multi_setopt(d->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
	curl_multi_setopt(d->multi, CURLMOPT_SOCKETDATA, d);
	curl_multi_setopt(d->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
	curl_multi_setopt(d->multi, CURLMOPT_TIMERDATA, d);
	curl_multi_setopt(d->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	return 0;
}

int deliver_new(deliver **out, const struct deliver_options *opt)
{
	deliver *d;
	int rc;

	*out = NULL;
	if (ssl_ex_index < 0)
		ssl_ex_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	if (ssl_ex_index < 0)
		return gw_error_set(GW_ERROR, "cannot reserve OpenSSL context data");
	if (!(d = calloc(1, sizeof(*d))))
		return gw_error_set(GW_ENOMEM, "out of memory for the transfer engine");
	d->base = opt->base;
	d->st = opt->st;
	d->verifier = opt->verifier;
	d->now_ms = opt->now_ms ? opt->now_ms : timeutil_now_ms;
	d->on_done = opt->on_done;
	d->ctx = opt->ctx;
	d->metrics = opt->metrics;
	d->probe_after = opt->probe_after_failures > 0 ? opt->probe_after_failures : DELIVER_PROBE_AFTER;
	d->connect_timeout_ms = opt->connect_timeout_ms > 0 ? opt->connect_timeout_ms
							     : DELIVER_CONNECT_TIMEOUT_MS;
	d->total_timeout_ms = opt->total_timeout_ms > 0 ? opt->total_timeout_ms
							 : DELIVER_TOTAL_TIMEOUT_MS;
	d->max_response = opt->max_response_bytes > 0 ? opt->max_response_bytes : DELIVER_MAX_RESPONSE;
	crl_bundles_sweep(opt->cfg->gateway.db);
	if ((rc = multi_setup(d)) < 0 || (rc = deliver_reconfigure(d, opt->cfg, &opt->backoff)) < 0) {
		deliver_free(d);
		return rc;
	}
	*out = d;
	return 0;
}

/*
 * A transfer given up at shutdown: the attempt is recorded and the message
 * is queued again, due at once, in one transaction. Should that fail, it
 * stays 'sending' and recover_sending() queues it at the next start. The
 * partner may have stored it: the resend is answered 'duplicate'.
 */
static void abandon(deliver *d, struct transfer *t)
{
	struct attempt_facts f;
	const char *how = "queued again";

	curl_multi_remove_handle(d->multi, t->easy);
	memset(&f, 0, sizeof(f));
	f.finished_ms = d->now_ms();
	f.finished_mono = mono_ms();
	f.result.kind = OUTCOME_RETRY;
	snprintf(f.result.reason, sizeof(f.result.reason),
		 "abandoned: the gateway stopped while sending");
	f.to = MSG_QUEUED;
	f.next_attempt_ms = f.finished_ms;
	f.reached = body_sent(t); /* the partner may have it: a withdrawal tells it */
	if (store_outcome(d, t, &f) < 0)
		how = "left sending; queued again at next start";
	metrics_count_delivery(d->metrics, t->ep->name, "retry", f.result.reason);
	gw_log(GW_LOG_WARN, "abandoned", "msg", t->message_id, "endpoint", t->ep->name, "reason",
	       "stopped while sending", "then", how, NULL);
}

void deliver_free(deliver *d)
{
	struct endpoint_state *ep;

	if (!d)
		return;
	d->on_done = NULL; /* being freed: record what finished, tell nobody */
	finish_all(d);
	while (d->transfers) {
		struct transfer *t = d->transfers;
		abandon(d, t);
		transfer_unlink(d, t);
		transfer_free(t);
	}
	if (d->multi)
		curl_multi_cleanup(d->multi);
	while (d->socks)
		sock_free(d, d->socks);
	if (d->timer)
		event_free(d->timer);
	if (d->ev_finish)
		event_free(d->ev_finish);
	if (d->ev_sync)
		event_free(d->ev_sync);
	if (d->ev_unrecorded)
		event_free(d->ev_unrecorded);
	while (d->unrecorded) { /* still 'sending': recover_sending queues them at start */
		struct unrecorded *u = d->unrecorded;
		d->unrecorded = u->next;
		free(u);
	}
	while ((ep = d->endpoints)) {
		d->endpoints = ep->next;
		gw_buf_free(&ep->anchors);
		parked_clear(&ep->parked);
		free(ep);
	}
	crl_release(d->crl);
	free(d);
}
