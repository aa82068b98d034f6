/*
 * backoff: when to try a message again (SPEC section 9).
 *
 * Exponential backoff with full jitter: after a failed attempt, with n the
 * number of attempts that failed before this one,
 *
 *     ceiling = min(cap, base * 2^n)
 *     delay   = max(floor, uniform random in [0, ceiling])
 *
 * A Retry-After from the receiver is taken when it asks for more than that,
 * bounded by retry_after_max (a partner cannot park a message for a week).
 * The message's deadline (its retry horizon) bounds the schedule: a delay
 * that would land past it is cut short to one last attempt at the deadline
 * (a Retry-After too), and only an attempt that fails at or after the
 * deadline gets the verdict "give up": the caller fails the message with
 * "retry horizon reached". So a message is never failed before its
 * horizon, which is never before its release date has passed (SPEC 9).
 *
 * Pure: the random source and the clock are passed in, so the schedule is
 * exactly testable.
 */
#ifndef GW_BACKOFF_H
#define GW_BACKOFF_H

#include <stdint.h>

#define BACKOFF_DEFAULT_BASE_MS (30 * 1000)
#define BACKOFF_DEFAULT_CAP_MS (3600 * 1000)
#define BACKOFF_DEFAULT_FLOOR_MS 1000
#define BACKOFF_DEFAULT_RETRY_AFTER_MAX_MS (24LL * 3600 * 1000)

/*
 * A uniform random integer in [0, max_inclusive]. ctx is the policy's
 * random_ctx. Must not fail; a test passes a fixed source.
 */
typedef int64_t (*backoff_random_fn)(void *ctx, int64_t max_inclusive);

struct backoff_policy {
	int64_t base_ms;
	int64_t cap_ms;
	int64_t floor_ms;
	int64_t retry_after_max_ms;
	backoff_random_fn random; /* NULL: backoff_random_system */
	void *random_ctx;
};

enum backoff_verdict { BACKOFF_RETRY, BACKOFF_GIVE_UP };

/* Fill a policy from the configured base and cap (seconds; <= 0: default). */
void backoff_policy_init(struct backoff_policy *p, int base_seconds, int cap_seconds);

/*
 * The schedule after a failed attempt. failed_before is the number of
 * attempts that had failed before this one (0 after the first failure).
 * retry_after_ms is what the receiver asked for (0: nothing). deadline_ms is
 * the message's retry horizon (<= 0: none). On BACKOFF_RETRY *next_ms is
 * the time of the next attempt; on BACKOFF_GIVE_UP it is left at now_ms.
 */
enum backoff_verdict backoff_next(const struct backoff_policy *p, int failed_before,
				  int64_t now_ms, int64_t deadline_ms, int64_t retry_after_ms,
				  int64_t *next_ms);

/*
 * The retry horizon of a message, one rule for intake (a new message, a
 * held one released) and `gateway retry` (SPEC section 9: retries stop at
 * a configurable horizon, never before the release date has passed): the
 * latest of
 *   - now_ms + horizon_days (<= 0: BACKOFF_DEFAULT_HORIZON_DAYS) days,
 *   - the end of the day after event_date in Europe/Oslo (YYYY-MM-DD: the
 *     release or transfer date; "" or NULL or not a date: no such bound),
 *     so a partner has the whole day after the event to answer,
 *   - current_ms, the message's horizon as it stands (0: none): a horizon
 *     is never shortened.
 */
#define BACKOFF_DEFAULT_HORIZON_DAYS 14
int64_t backoff_horizon(int64_t now_ms, int horizon_days, const char *event_date,
			int64_t current_ms);

/* The ceiling min(cap, base * 2^n), without jitter or floor; for tests and docs. */
int64_t backoff_ceiling(const struct backoff_policy *p, int failed_before);

/* The default random source: the kernel's getrandom(), unbiased. */
int64_t backoff_random_system(void *ctx, int64_t max_inclusive);

#endif
