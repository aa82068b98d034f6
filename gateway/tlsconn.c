/*
 * tlsconn: see tlsconn.h.
 */
#include "tlsconn.h"
#include "err.h"
#include "log.h"

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

/* Per process: the SSL ex_data slot that ties a connection to its tlsconn. */
static int tlsconn_slot = -1;

static void conn_log(const struct tlsconn_set *s, const char *what, const char *detail)
{
	char event[48];

	snprintf(event, sizeof(event), "%sconnection-%s", s->prefix, what);
	gw_log(GW_LOG_WARN, event, "detail", detail, NULL);
}

static void conn_unlink(struct tlsconn *c)
{
	struct tlsconn_set *s = c->set;

	if (c->prev)
		c->prev->next = c->next;
	else
		s->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		s->tail = c->prev;
	if (c->admitted)
		s->live--;
}

/* OpenSSL frees a connection's SSL: the connection is gone. */
static void conn_gone(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
		      void *argp)
{
	struct tlsconn *c = ptr;

	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	if (!c)
		return;
	if (c->set)
		conn_unlink(c);
	if (c->deadline)
		event_free(c->deadline);
	free(c);
}

int tlsconn_init(void)
{
	if (tlsconn_slot < 0)
		tlsconn_slot = SSL_get_ex_new_index(0, NULL, NULL, NULL, conn_gone);
	if (tlsconn_slot < 0)
		return gw_error_set(GW_ERROR, "cannot reserve OpenSSL connection data");
	return 0;
}

struct tlsconn *tlsconn_of(const SSL *ssl)
{
	return ssl && tlsconn_slot >= 0 ? SSL_get_ex_data(ssl, tlsconn_slot) : NULL;
}

void tlsconn_cut(struct tlsconn *c)
{
	evutil_socket_t fd = c->bev ? bufferevent_getfd(c->bev) : -1;

	if (fd >= 0)
		shutdown(fd, SHUT_RDWR);
}

void tlsconn_nodelay(struct tlsconn *c)
{
	evutil_socket_t fd;
	int one = 1;

	if (c->nodelay || !c->bev || (fd = bufferevent_getfd(c->bev)) < 0)
		return;
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0)
		c->nodelay = true;
}

static void conn_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct tlsconn *c = arg;

	(void)fd;
	(void)what;
	if (c->admitted && c->set)
		conn_log(c->set, "timeout",
			 c->handshaken ? "no complete request within the time allowed; closed"
				       : "the TLS handshake did not complete within the time allowed; "
					 "closed");
	tlsconn_cut(c);
}

void tlsconn_arm(struct tlsconn *c, int seconds)
{
	struct timeval tv = { seconds, 0 };

	if (c->deadline)
		event_add(c->deadline, &tv);
}

/* Past the cap a newcomer is refused before any crypto. */
static int client_hello(SSL *ssl, int *alert, void *arg)
{
	struct tlsconn *c = tlsconn_of(ssl);

	(void)arg;
	if (c && c->admitted) {
		tlsconn_nodelay(c);
		return SSL_CLIENT_HELLO_SUCCESS;
	}
	*alert = SSL_AD_INTERNAL_ERROR;
	return SSL_CLIENT_HELLO_ERROR;
}

/* A connection past its handshake can no longer be evicted for a newcomer. */
static void handshake_info(const SSL *ssl, int where, int ret)
{
	struct tlsconn *c;

	(void)ret;
	if (!(where & SSL_CB_HANDSHAKE_DONE) || !(c = tlsconn_of(ssl)))
		return;
	c->handshaken = true;
	if (c->set && c->set->handshake_ends_deadline && c->deadline)
		event_del(c->deadline);
}

void tlsconn_ctx_setup(SSL_CTX *ctx)
{
	SSL_CTX_set_client_hello_cb(ctx, client_hello, NULL);
	SSL_CTX_set_info_callback(ctx, handshake_info);
}

struct tlsconn *tlsconn_new(struct tlsconn_set *s, SSL *ssl)
{
	struct tlsconn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->deadline = evtimer_new(s->base, conn_deadline, c);
	if (!c->deadline || tlsconn_slot < 0 || !SSL_set_ex_data(ssl, tlsconn_slot, c)) {
		if (c->deadline)
			event_free(c->deadline);
		free(c);
		return NULL;
	}
	c->set = s;
	c->prev = s->tail;
	if (s->tail)
		s->tail->next = c;
	else
		s->head = c;
	s->tail = c;
	return c;
}

/* The oldest connection without a completed handshake gives its place up. */
static bool evict_one(struct tlsconn_set *s)
{
	for (struct tlsconn *c = s->head; c; c = c->next) {
		if (!c->admitted || c->handshaken)
			continue;
		c->admitted = false;
		s->live--;
		conn_log(s, "evicted", "the connection limit is reached; the oldest connection "
				       "without a completed TLS handshake was closed for a new one");
		tlsconn_cut(c);
		return true;
	}
	return false;
}

bool tlsconn_admit(struct tlsconn_set *s, struct tlsconn *c, bool closed)
{
	if (!closed && (s->live < s->max_live || evict_one(s))) {
		c->admitted = true;
		s->live++;
		return true;
	}
	conn_log(s, "refused", closed ? "the server is stopping"
				      : "the connection limit is reached, every place held by a "
					"client with a completed TLS handshake");
	return false;
}

void tlsconn_set_release(struct tlsconn_set *s)
{
	struct tlsconn *c = s->head, *next;

	for (; c; c = next) {
		next = c->next;
		if (c->deadline)
			event_free(c->deadline);
		c->deadline = NULL;
		c->set = NULL;
		c->admitted = false;
		c->prev = c->next = NULL;
	}
	s->head = s->tail = NULL;
	s->live = 0;
}
