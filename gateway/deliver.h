/*
 * deliver: the transfer engine of `gateway send` (SPEC section 6).
 *
 * One libcurl multi handle driven by the caller's libevent base, in the
 * shape of curl's hiperfifo.c: a socket callback keeps one libevent event
 * per socket, a timer callback keeps one timer, every event makes one
 * curl_multi_socket_action() call and then drains finished transfers in one
 * place. Connections are kept alive and shared by all transfers.
 *
 * deliver_start() moves a message queued -> sending (committed) and POSTs
 * its stored signed bytes over mutual TLS 1.2+ to its endpoint. When the
 * transfer ends, the receipt is verified (receipt_verify), the attempt is
 * classified (outcome.h), a retry is scheduled (backoff.h), and the attempt,
 * the receipt bytes as received and the new state (sending -> delivered |
 * queued | failed, compare-and-set) are committed in one transaction.
 *
 * Limits: a global number of transfers in flight (gateway.max_connections),
 * a per-endpoint number (endpoint.max_connections), and a probe rule: after
 * probe_after_failures consecutive temporary failures an endpoint gets one
 * transfer at a time until one attempt gets an answer from it. The messages
 * parked meanwhile (deliver_park) are remembered, and the answer makes them
 * due at once, so the backlog goes out at the endpoint's limit.
 *
 * Connections are kept alive and shared; HTTP/2 is asked for through ALPN
 * and transfers are multiplexed on it when the partner offers it (HTTP/1.1
 * otherwise).
 *
 * The server certificate must chain to the endpoint's trust anchors, match
 * the URL's host name, and name the endpoint's server_orgnr as its
 * organisation; the last is checked in the handshake, so a wrong server
 * never sees the message.
 *
 * Single-threaded: everything runs on the caller's event loop.
 */
#ifndef GW_DELIVER_H
#define GW_DELIVER_H

#include "backoff.h"
#include "outcome.h"
#include "store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct gw_config;
struct verifier;

#define DELIVER_PROBE_AFTER 3
#define DELIVER_CONNECT_TIMEOUT_MS 10000L
#define DELIVER_TOTAL_TIMEOUT_MS 60000L
#define DELIVER_MAX_RESPONSE (1024 * 1024)

typedef struct deliver deliver;

/*
 * Called once per finished attempt, after its outcome is committed (or
 * could not be: then kind is OUTCOME_RETRY and the message stays in
 * 'sending' until the next start). May call deliver_start(); must not
 * call deliver_free().
 */
typedef void (*deliver_done_fn)(void *ctx, const char *message_id, enum outcome_kind kind);

struct metrics;

struct deliver_options {
	struct event_base *base;
	const struct gw_config *cfg; /* must outlive d, or until deliver_reconfigure */
	store *st;
	struct verifier *verifier;   /* checks receipts */
	struct backoff_policy backoff;
	int64_t (*now_ms)(void);     /* the scheduler's clock; NULL: timeutil_now_ms.
	                              * Durations use the monotonic clock. */
	deliver_done_fn on_done;     /* may be NULL */
	void *ctx;
	struct metrics *metrics;     /* counters for the operator port; may be NULL */
	int probe_after_failures;    /* 0: DELIVER_PROBE_AFTER */
	long connect_timeout_ms;     /* 0: DELIVER_CONNECT_TIMEOUT_MS */
	long total_timeout_ms;       /* 0: DELIVER_TOTAL_TIMEOUT_MS */
	size_t max_response_bytes;   /* 0: DELIVER_MAX_RESPONSE */
};

/*
 * Create the engine: read every endpoint's trust anchors, build the CRL
 * bundle, set up the multi handle on opt->base. curl_global_init() must
 * have been called. GW_EINVALID names the endpoint whose configuration
 * cannot work (unreadable anchors, two endpoints on one host:port that
 * expect different server organisations).
 */
int deliver_new(deliver **out, const struct deliver_options *opt);

/*
 * Stop: transfers still in flight are abandoned. Each is recorded as an
 * attempt ("abandoned: the gateway stopped while sending") and its message
 * goes back to 'queued', due at once; should that write fail, it stays in
 * 'sending' and store recover_sending() queues it at the next start. The
 * receiver answers the resend with 'duplicate' if it had stored it.
 */
void deliver_free(deliver *d);

/*
 * Take a reloaded configuration (endpoints, limits, retry schedule).
 * Transfers in flight finish with the settings they started with. On error
 * d keeps the old configuration. cfg must outlive d or the next call.
 */
int deliver_reconfigure(deliver *d, const struct gw_config *cfg,
			const struct backoff_policy *backoff);

/* True once after an outcome held a message to be signed again. */
bool deliver_take_resign(deliver *d);

/* Receipts are checked with v from now on (a reload read the trust again). */
void deliver_set_verifier(deliver *d, struct verifier *v);

/*
 * Whether a message for the endpoint named may start now: 0 yes, GW_ETEMP
 * when a limit is reached (global, per endpoint, or probing), GW_ENOTFOUND
 * when no endpoint of that name is configured.
 */
int deliver_admit(const deliver *d, const char *endpoint);

/*
 * Start one attempt for a queued message (m->signed_bytes are sent exactly).
 * 0 when started; GW_ETEMP at a limit; GW_ENOTFOUND for an unknown
 * endpoint, or one that now names another organisation than the message's
 * recipient (nothing is sent); GW_EEXISTS when the message is no longer queued (someone else
 * changed it first); GW_ERROR otherwise. Nothing is left half-done: on
 * failure the message is still queued.
 */
int deliver_start(deliver *d, const struct store_message *m);

/*
 * For a message deliver_admit() refused because its endpoint is down (in
 * probe mode with its one probe in flight): move the message's next attempt
 * to when the endpoint will be probed again (queued -> queued, no attempt
 * counted), so a dead partner's queue does not crowd out the others'
 * (Postfix defers a dead destination's queue the same way). 0 when parked;
 * GW_ETEMP when the endpoint is only busy, or the message's horizon is too
 * near to wait: leave it due.
 */
int deliver_park(deliver *d, const struct store_message *m);

/* Transfers in flight, and whether the global limit is reached. */
size_t deliver_in_flight(const deliver *d);
/*
 * True while transfers are in flight or a message whose outcome could not
 * be recorded waits to be queued again (every 5 s; a restart does it too).
 */
bool deliver_unsettled(const deliver *d);
bool deliver_full(const deliver *d);
/* Configured endpoints that could take one more transfer now (0 when full). */
size_t deliver_endpoints_with_room(const deliver *d);

/*
 * One dispatch pass as ONE store transaction. After deliver_batch_begin(),
 * deliver_start() and deliver_park() write their changes (queued ->
 * sending, a parked time) into that transaction and a started transfer is
 * counted but not yet begun; m->signed_bytes may be empty (the bytes are
 * then read from the store for the messages actually started).
 * deliver_batch_end() commits, and only then begins the transfers: when the
 * commit fails, none begins and every message is still queued (the return
 * value says so). A crash after the commit leaves them 'sending';
 * recover_sending() queues them at the next start and the receiver answers
 * the resend 'duplicate'. The pass's transaction is relaxed (store.h
 * begin_relaxed): a power cut may lose it, which leaves them 'queued', the
 * same outcome; the next durable commit, or a store sync() at most 50 ms
 * later, makes it durable.
 */
int deliver_batch_begin(deliver *d);
int deliver_batch_end(deliver *d);

#endif
