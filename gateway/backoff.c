/*
 * backoff: the retry schedule (see backoff.h). No I/O except the default
 * random source, which reads the kernel's getrandom().
 */
#include "backoff.h"
#include "timeutil.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/random.h>

void backoff_policy_init(struct backoff_policy *p, int base_seconds, int cap_seconds)
{
	memset(p, 0, sizeof(*p));
	p->base_ms = base_seconds > 0 ? (int64_t)base_seconds * 1000 : BACKOFF_DEFAULT_BASE_MS;
	p->cap_ms = cap_seconds > 0 ? (int64_t)cap_seconds * 1000 : BACKOFF_DEFAULT_CAP_MS;
	if (p->cap_ms < p->base_ms)
		p->cap_ms = p->base_ms;
	p->floor_ms = BACKOFF_DEFAULT_FLOOR_MS;
	p->retry_after_max_ms = BACKOFF_DEFAULT_RETRY_AFTER_MAX_MS;
	p->random = NULL;
	p->random_ctx = NULL;
}

int64_t backoff_ceiling(const struct backoff_policy *p, int failed_before)
{
	int64_t ceiling = p->base_ms > 0 ? p->base_ms : 0;

	/* Double until the cap; stopping there also keeps clear of overflow. */
	for (int i = 0; i < failed_before && ceiling < p->cap_ms; i++)
		ceiling *= 2;
	return ceiling < p->cap_ms ? ceiling : p->cap_ms;
}

int64_t backoff_horizon(int64_t now_ms, int horizon_days, const char *event_date,
			int64_t current_ms)
{
	int days = horizon_days > 0 ? horizon_days : BACKOFF_DEFAULT_HORIZON_DAYS;
	int64_t horizon = now_ms + (int64_t)days * 86400 * 1000;
	struct gw_date d;

	if (event_date && event_date[0] && timeutil_parse_date(event_date, &d) == 0) {
		int64_t two_days_on = timeutil_days_from_civil(d) + 2;
		int64_t end = timeutil_oslo_day_start(timeutil_civil_from_days(two_days_on));

		if (end > horizon)
			horizon = end;
	}
	return current_ms > horizon ? current_ms : horizon;
}

static int64_t draw(const struct backoff_policy *p, int64_t max_inclusive)
{
	backoff_random_fn fn = p->random ? p->random : backoff_random_system;
	int64_t r;

	if (max_inclusive <= 0)
		return 0;
	r = fn(p->random_ctx, max_inclusive);
	if (r < 0)
		return 0;
	return r > max_inclusive ? max_inclusive : r;
}

enum backoff_verdict backoff_next(const struct backoff_policy *p, int failed_before,
				  int64_t now_ms, int64_t deadline_ms, int64_t retry_after_ms,
				  int64_t *next_ms)
{
	int64_t delay = draw(p, backoff_ceiling(p, failed_before < 0 ? 0 : failed_before));

	if (delay < p->floor_ms)
		delay = p->floor_ms;
	if (retry_after_ms > p->retry_after_max_ms)
		retry_after_ms = p->retry_after_max_ms;
	if (retry_after_ms > delay)
		delay = retry_after_ms;

	*next_ms = now_ms;
	if (deadline_ms > 0 && now_ms >= deadline_ms)
		return BACKOFF_GIVE_UP;
	*next_ms = now_ms + delay;
	/* A draw that lands past the horizon still leaves one attempt at it. */
	if (deadline_ms > 0 && *next_ms > deadline_ms)
		*next_ms = deadline_ms;
	return BACKOFF_RETRY;
}

static uint64_t random_u64(void)
{
	uint64_t v = 0;
	unsigned char *p = (unsigned char *)&v;
	size_t got = 0;

	while (got < sizeof(v)) {
		ssize_t n = getrandom(p + got, sizeof(v) - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return 0; /* no entropy source: the floor still spaces retries */
		}
		got += (size_t)n;
	}
	return v;
}

int64_t backoff_random_system(void *ctx, int64_t max_inclusive)
{
	uint64_t span, limit, v;

	(void)ctx;
	if (max_inclusive <= 0)
		return 0;
	span = (uint64_t)max_inclusive + 1;
	/* Reject the top sliver so every value is equally likely. */
	limit = UINT64_MAX - (UINT64_MAX % span);
	do {
		v = random_u64();
	} while (v >= limit);
	return (int64_t)(v % span);
}
