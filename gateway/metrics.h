/*
 * metrics: the numbers operators scrape, in the Prometheus text exposition
 * format 0.0.4 (docs/WEB.md lists every metric).
 *
 * Two kinds of numbers:
 *   - counters and a histogram the delivery engine feeds as attempts end
 *     (metrics_count_delivery, metrics_count_receipt_failure,
 *     metrics_observe_attempt). They live in memory and start at zero with
 *     the process, as Prometheus counters do;
 *   - gauges read from the store and the configuration at scrape time
 *     (messages by state, oldest undelivered age, late notices, days until
 *     each certificate expires).
 *
 * Labels are bounded: reasons are reduced to a fixed vocabulary of classes
 * (metrics_reason_class), label values to printable ASCII of at most 63
 * bytes, and each family to METRICS_MAX_SERIES series; what does not fit is
 * counted under the value "other". Free text never becomes a label.
 *
 * Not thread-safe: everything runs on the sender's event loop.
 */
#ifndef GW_METRICS_H
#define GW_METRICS_H

#include "buf.h"
#include "store.h"

#include <stdbool.h>
#include <stdint.h>

struct gw_config;
struct metrics;

#define METRICS_MAX_SERIES 128
#define METRICS_LABEL_MAX 64

int metrics_new(struct metrics **out);
void metrics_free(struct metrics *m);

/*
 * One finished attempt: outcome is outcome_name() ("delivered", "retry",
 * "failed"); reason the outcome's reason sentence (reduced to its class
 * here; NULL or "" for a delivery). m may be NULL (metrics off).
 */
void metrics_count_delivery(struct metrics *m, const char *endpoint, const char *outcome,
			    const char *reason);
/* A receipt that did not verify; reason is receipt_verify()'s code. */
void metrics_count_receipt_failure(struct metrics *m, const char *reason);
/* How long one attempt took, from start to the answer (or error). */
void metrics_observe_attempt(struct metrics *m, const char *endpoint, double seconds);

/*
 * Append the whole exposition to out. m may be NULL (only the store and
 * certificate gauges). On a store error nothing is appended and the error
 * is returned. The store is read with messages by state (counts), the first
 * queued and sending rows, and one pass over all messages with a receipt
 * read per delivered release message whose date has not passed (the late
 * gauge): cost grows with the store, see docs/WEB.md.
 */
int metrics_render(struct metrics *m, store *st, const struct gw_config *cfg, gw_buf *out);
int metrics_render_at(struct metrics *m, store *st, const struct gw_config *cfg, int64_t now_ms,
		      gw_buf *out);

/*
 * The bounded class of an outcome reason: "accepted", "timeout",
 * "connection", "tls", "wrong-server-org", "no-receipt",
 * "receipt-not-verified", "rejected", "refused-403", "refused-413",
 * "http-temporary", "http-unexpected", "retry-horizon", ... or "other".
 */
const char *metrics_reason_class(const char *reason);

/* Append s as a label value: \ " and newline escaped, non-printable as '?'. */
int metrics_label_escape(gw_buf *out, const char *s);

/*
 * Lateness (SPEC section 9) of one message of a release notice: late when
 * the partner was reached (reached_ms > 0: the receipt's time) on an Oslo
 * date less than the endpoint's lead_days before the release date, or, not
 * reached yet, when today already is. Only queued, sending, held, failed
 * and delivered release messages can be late; superseded and cancelled
 * ones are not counted.
 */
bool metrics_message_late(const struct gw_config *cfg, const struct store_message *m,
			  int64_t reached_ms, int64_t now_ms);

/*
 * Call cb for each late message of a release whose date is today or later
 * in Oslo (the late notices an operator can still act on), in creation
 * order. Reads a receipt for each delivered candidate.
 */
int metrics_late_messages(store *st, const struct gw_config *cfg, int64_t now_ms,
			  store_message_cb cb, void *ctx);

/*
 * Call cb for each message (of filter f: state, notice; NULL for all) of a
 * notice flagged weekend-release (SPEC section 9) whose date is today or
 * later in Oslo, in creation order. Reads each notice revision's flag once.
 */
int metrics_weekend_messages(store *st, const struct store_filter *f, int64_t now_ms,
			     store_message_cb cb, void *ctx);

#endif
