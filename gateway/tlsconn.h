/*
 * tlsconn: the TLS connections of one evhttp server (a receiver worker, the
 * operator port), each tied to its SSL and gone with it, counted against a
 * cap, with a deadline however slowly its bytes trickle in.
 *
 * evhttp asks the server for a bufferevent per accepted connection
 * (evhttp_set_bevcb) and sets its socket right after. The server makes an
 * SSL, tlsconn_new() ties a struct tlsconn to it (SSL ex_data: OpenSSL
 * frees it with the SSL, so a connection that never sends a request is
 * counted too), tlsconn_admit() counts it or refuses it, and the server
 * arms its deadline. At the cap, the oldest connection that has not
 * completed its TLS handshake gives its place to the newcomer (half-open
 * connections and trickled ClientHellos cannot lock clients out; they only
 * push each other out); when every place holds a completed handshake the
 * newcomer is refused: its ClientHello is refused (tlsconn_ctx_setup) and
 * its deadline should be 0. A deadline passing shuts the socket down;
 * evhttp reads end-of-file and frees the connection itself.
 *
 * Diagnostics: event=PREFIXconnection-timeout, PREFIXconnection-evicted,
 * PREFIXconnection-refused (PREFIX: the set's prefix, "" or "opweb-").
 */
#ifndef GW_TLSCONN_H
#define GW_TLSCONN_H

#include <openssl/ssl.h>
#include <stdbool.h>

struct bufferevent;
struct event;
struct event_base;
struct tlsconn_set;

struct tlsconn {
	struct tlsconn_set *set;     /* NULL once the set let go (tlsconn_set_release) */
	struct bufferevent *bev;     /* set by the server once made */
	struct event *deadline;
	struct tlsconn *prev, *next; /* set->head, oldest first */
	bool admitted;               /* counted in set->live */
	bool handshaken;             /* the TLS handshake completed */
	bool nodelay;                /* TCP_NODELAY is set (tlsconn_nodelay) */
	unsigned trust_generation;   /* the server's: of the trust its certificate last passed */
};

struct tlsconn_set {
	struct event_base *base;
	void *owner;               /* the server's, for its callbacks */
	struct tlsconn *head, *tail;
	int live, max_live;
	const char *prefix;        /* of the event names: "" or "opweb-" */
	bool handshake_ends_deadline; /* else the deadline also covers requests (rearmed) */
};

/* Once per process, before any tlsconn_new(): the SSL ex_data slot. */
int tlsconn_init(void);
/* The ClientHello refusal past the cap and the handshake-done hook, on ctx. */
void tlsconn_ctx_setup(SSL_CTX *ctx);

/* A new connection tied to ssl and listed in s; NULL when out of memory. */
struct tlsconn *tlsconn_new(struct tlsconn_set *s, SSL *ssl);
/* Count c (evicting one at the cap) unless closed; false: refused (logged). */
bool tlsconn_admit(struct tlsconn_set *s, struct tlsconn *c, bool closed);
/* (Re)start c's deadline: seconds from now (0: at the next loop iteration). */
void tlsconn_arm(struct tlsconn *c, int seconds);
/* Shut c's socket: evhttp reads end-of-file and frees the connection. */
void tlsconn_cut(struct tlsconn *c);
/* TCP_NODELAY on c's socket, once (answers are whole TLS records). */
void tlsconn_nodelay(struct tlsconn *c);
/* The connection of ssl, or NULL. */
struct tlsconn *tlsconn_of(const SSL *ssl);
/*
 * Before the server's event loop and set go: every connection lets go of s
 * and its timer goes now. libevent 2.1 frees a connection's SSL (and so its
 * tlsconn) only when the loop runs again or is freed.
 */
void tlsconn_set_release(struct tlsconn_set *s);

#endif
