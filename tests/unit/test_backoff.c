/*
 * test_backoff: the retry schedule, exactly, with a fixed random source:
 * ceiling doubling to the cap, full jitter, the 1 s floor, Retry-After
 * taken when larger and bounded, and the horizon turning a retry into
 * "give up"; the horizon itself (backoff_horizon: the release date, a
 * horizon never shortened).
 */
#include "testutil.h"
#include "backoff.h"

#include <string.h>

#define S 1000LL
#define NOW (1800000000LL * S)

/* A fixed source: returns num/den of the range asked for, and records it. */
struct fixed {
	int64_t num, den;
	int64_t last_max;
	int calls;
};

static int64_t fixed_random(void *ctx, int64_t max_inclusive)
{
	struct fixed *f = ctx;

	f->last_max = max_inclusive;
	f->calls++;
	return max_inclusive * f->num / f->den;
}

static void policy(struct backoff_policy *p, struct fixed *f, int64_t num, int64_t den)
{
	memset(f, 0, sizeof(*f));
	f->num = num;
	f->den = den;
	backoff_policy_init(p, 30, 3600);
	p->random = fixed_random;
	p->random_ctx = f;
}

static void test_ceiling_doubles_to_cap(void **state)
{
	struct backoff_policy p;
	struct fixed f;
	static const int64_t want[] = { 30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600 };

	policy(&p, &f, 1, 1);
	for (int n = 0; n < (int)(sizeof(want) / sizeof(want[0])); n++)
		assert_int_equal(backoff_ceiling(&p, n), want[n] * S);
	/* far beyond any real count: no overflow, still the cap */
	assert_int_equal(backoff_ceiling(&p, 1000000), 3600 * S);
	assert_int_equal(backoff_ceiling(&p, -3), 30 * S);
}

static void test_schedule_at_full_jitter_top(void **state)
{
	struct backoff_policy p;
	struct fixed f;
	int64_t next;
	static const int64_t want[] = { 30, 60, 120, 240, 480, 960, 1920, 3600, 3600 };

	policy(&p, &f, 1, 1);
	for (int n = 0; n < (int)(sizeof(want) / sizeof(want[0])); n++) {
		assert_int_equal(backoff_next(&p, n, NOW, 0, 0, &next), BACKOFF_RETRY);
		assert_int_equal(f.last_max, want[n] * S);
		assert_int_equal(next, NOW + want[n] * S);
	}
}

static void test_schedule_at_half_jitter(void **state)
{
	struct backoff_policy p;
	struct fixed f;
	int64_t next;

	policy(&p, &f, 1, 2);
	assert_int_equal(backoff_next(&p, 0, NOW, 0, 0, &next), BACKOFF_RETRY);
	assert_int_equal(next, NOW + 15 * S);
	assert_int_equal(backoff_next(&p, 3, NOW, 0, 0, &next), BACKOFF_RETRY);
	assert_int_equal(next, NOW + 120 * S);
	assert_int_equal(backoff_next(&p, 20, NOW, 0, 0, &next), BACKOFF_RETRY);
	assert_int_equal(next, NOW + 1800 * S);
}

static void test_floor_of_one_second(void **state)
{
	struct backoff_policy p;
	struct fixed f;
	int64_t next;

	policy(&p, &f, 0, 1); /* the random source says "now" */
	assert_int_equal(backoff_next(&p, 0, NOW, 0, 0, &next), BACKOFF_RETRY);
	assert_int_equal(next, NOW + 1 * S);
	assert_int_equal(backoff_next(&p, 9, NOW, 0, 0, &next), BACKOFF_RETRY);
	assert_int_equal(next, NOW + 1 * S);
}

static void test_retry_after_taken_when_larger_and_bounded(void **state)
{
	struct backoff_policy p;
	struct fixed f;
	int64_t next;

	policy(&p, &f, 1, 2); /* jitter gives 15 s on the first retry */
	assert_int_equal(backoff_next(&p, 0, NOW, 0, 120 * S, &next), BACKOFF_RETRY);
	assert_int_equal(next, NOW + 120 * S);
	/* smaller than the drawn delay: the drawn delay stands */
	assert_int_equal(backoff_next(&p, 0, NOW, 0, 5 * S, &next), BACKOFF_RETRY);
	assert_int_equal(next, NOW + 15 * S);
	/* a partner asking for a week gets 24 hours */
	assert_int_equal(backoff_next(&p, 0, NOW, 0, 7 * 24 * 3600 * S, &next), BACKOFF_RETRY);
	assert_int_equal(next, NOW + 24 * 3600 * S);
}

static void test_horizon_gives_up(void **state)
{
	struct backoff_policy p;
	struct fixed f;
	int64_t next = 0;

	policy(&p, &f, 1, 1); /* 30 s on the first retry */
	/* exactly at the deadline is still allowed */
	assert_int_equal(backoff_next(&p, 0, NOW, NOW + 30 * S, 0, &next), BACKOFF_RETRY);
	assert_int_equal(next, NOW + 30 * S);
	/* a draw past the deadline leaves one last attempt at it, not a failure
	 * before the horizon (which is never before the release date has passed) */
	assert_int_equal(backoff_next(&p, 0, NOW, NOW + 30 * S - 1, 0, &next), BACKOFF_RETRY);
	assert_int_equal(next, NOW + 30 * S - 1);
	/* so does a Retry-After that reaches past the deadline */
	assert_int_equal(backoff_next(&p, 0, NOW, NOW + 60 * S, 3600 * S, &next), BACKOFF_RETRY);
	assert_int_equal(next, NOW + 60 * S);
	/* an attempt that fails at the deadline, or after it, ends it */
	assert_int_equal(backoff_next(&p, 0, NOW, NOW, 0, &next), BACKOFF_GIVE_UP);
	assert_int_equal(next, NOW);
	assert_int_equal(backoff_next(&p, 0, NOW, NOW - 1, 0, &next), BACKOFF_GIVE_UP);
	/* no deadline recorded: never gives up */
	assert_int_equal(backoff_next(&p, 50, NOW, 0, 0, &next), BACKOFF_RETRY);
}

/*
 * The retry horizon (SPEC section 9), one rule for intake and `gateway
 * retry`: now + horizon_days, but never before the end of the day after
 * the event date in Oslo, and never shorter than the horizon a message has.
 */
static void test_horizon_rule(void **state)
{
	int64_t now = INT64_C(1795345200000);       /* 2026-11-22T11:00:00Z */
	int64_t after_dec4 = INT64_C(1796511600000); /* 2026-12-06T00:00+01:00 */
	int64_t after_jul1 = INT64_C(1814565600000); /* 2027-07-03T00:00+02:00 */
	int64_t day = 86400 * S;

	/* A date soon (or none, or not a date): now + the horizon. */
	assert_int_equal(backoff_horizon(now, 14, "2026-11-27", 0), now + 14 * day);
	assert_int_equal(backoff_horizon(now, 14, "", 0), now + 14 * day);
	assert_int_equal(backoff_horizon(now, 14, NULL, 0), now + 14 * day);
	assert_int_equal(backoff_horizon(now, 14, "2026-13-01", 0), now + 14 * day);
	/* <= 0 days: the default 14. */
	assert_int_equal(backoff_horizon(now, 0, "", 0), now + BACKOFF_DEFAULT_HORIZON_DAYS * day);
	/* A date beyond the horizon: the whole day after it, in Oslo (CET, CEST). */
	assert_int_equal(backoff_horizon(now, 3, "2026-12-04", 0), after_dec4);
	assert_int_equal(backoff_horizon(now, 14, "2027-07-01", 0), after_jul1);
	/* Never shorter than the horizon a message already has. */
	assert_int_equal(backoff_horizon(now, 14, "2026-11-27", after_jul1), after_jul1);
	assert_int_equal(backoff_horizon(now, 3, "2026-12-04", now + 5 * day), after_dec4);
	assert_int_equal(backoff_horizon(now, 14, "", now - day), now + 14 * day);
}

static void test_policy_defaults(void **state)
{
	struct backoff_policy p;

	backoff_policy_init(&p, 0, 0);
	assert_int_equal(p.base_ms, BACKOFF_DEFAULT_BASE_MS);
	assert_int_equal(p.cap_ms, BACKOFF_DEFAULT_CAP_MS);
	assert_int_equal(p.floor_ms, 1000);
	assert_int_equal(p.retry_after_max_ms, 24LL * 3600 * 1000);
	backoff_policy_init(&p, 600, 60); /* a cap below the base is raised to it */
	assert_int_equal(p.cap_ms, 600 * S);
}

static void test_system_random_in_range_and_spread(void **state)
{
	int seen[11] = { 0 };

	for (int i = 0; i < 2000; i++) {
		int64_t v = backoff_random_system(NULL, 10);
		assert_true(v >= 0 && v <= 10);
		seen[v]++;
	}
	for (int i = 0; i <= 10; i++)
		assert_true(seen[i] > 0);
	assert_int_equal(backoff_random_system(NULL, 0), 0);
}

static void test_default_source_stays_in_schedule(void **state)
{
	struct backoff_policy p;
	int64_t next;

	backoff_policy_init(&p, 30, 3600);
	for (int i = 0; i < 200; i++) {
		assert_int_equal(backoff_next(&p, 2, NOW, 0, 0, &next), BACKOFF_RETRY);
		assert_true(next >= NOW + 1 * S && next <= NOW + 120 * S);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ceiling_doubles_to_cap),
		cmocka_unit_test(test_schedule_at_full_jitter_top),
		cmocka_unit_test(test_schedule_at_half_jitter),
		cmocka_unit_test(test_floor_of_one_second),
		cmocka_unit_test(test_retry_after_taken_when_larger_and_bounded),
		cmocka_unit_test(test_horizon_gives_up),
		cmocka_unit_test(test_horizon_rule),
		cmocka_unit_test(test_policy_defaults),
		cmocka_unit_test(test_system_random_in_range_and_spread),
		cmocka_unit_test(test_default_source_stays_in_schedule),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
