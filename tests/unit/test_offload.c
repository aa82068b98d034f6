/*
 * test_offload: the job runs on the background thread while the loop is
 * free, its done() runs on the loop's thread exactly once (from the loop,
 * or from offload_wait()), a second job is refused while one runs, and
 * offload_free() finishes a running job before it returns.
 */
#include "testutil.h"
#include "offload.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct job_state {
	pthread_t job_thread;
	pthread_t done_thread;
	atomic_bool release; /* the job returns once this is set */
	atomic_int jobs_run;
	int dones;
	int wait_ms; /* the job sleeps this long before it looks at release */
};

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static void job(void *arg)
{
	struct job_state *js = arg;

	js->job_thread = pthread_self();
	sleep_ms(js->wait_ms);
	while (!atomic_load(&js->release))
		sleep_ms(1);
	atomic_fetch_add(&js->jobs_run, 1);
}

static void done(void *arg)
{
	struct job_state *js = arg;

	js->done_thread = pthread_self();
	js->dones++;
}

/* A loop and its thread, fresh for each test. */
struct fixture {
	struct event_base *base;
	offload *o;
	struct job_state js, other;
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	fx->base = event_base_new();
	assert_non_null(fx->base);
	assert_ok(offload_new(&fx->o, fx->base));
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	offload_free(fx->o); /* finishes a running job first */
	event_base_free(fx->base);
	free(fx);
	return 0;
}

/* One millisecond's turn of the loop. */
static void tick(struct event_base *base)
{
	struct timeval ms = { 0, 1000 };

	event_base_loopexit(base, &ms);
	event_base_dispatch(base);
}

/* Turns of the loop until done() ran, for at most about max_ms. */
static void loop_for(struct event_base *base, struct job_state *js, int max_ms)
{
	for (int i = 0; i < max_ms && js->dones == 0; i++)
		tick(base);
}

static void test_job_on_thread_done_on_loop(void **state)
{
	struct fixture *fx = *state;
	struct job_state *js = &fx->js;

	assert_false(offload_busy(fx->o));
	assert_ok(offload_start(fx->o, job, done, js));
	assert_true(offload_busy(fx->o));
	/* The loop is free while the job waits: it is still running. */
	loop_for(fx->base, js, 20);
	assert_int_equal(js->dones, 0);
	assert_int_equal(atomic_load(&js->jobs_run), 0);
	atomic_store(&js->release, true);
	loop_for(fx->base, js, 2000);
	assert_int_equal(js->dones, 1);
	assert_int_equal(atomic_load(&js->jobs_run), 1);
	assert_false(pthread_equal(js->job_thread, pthread_self()));
	assert_true(pthread_equal(js->done_thread, pthread_self()));
	assert_false(offload_busy(fx->o));
}

static void test_second_job_refused_while_busy(void **state)
{
	struct fixture *fx = *state;

	atomic_store(&fx->other.release, true);
	assert_ok(offload_start(fx->o, job, done, &fx->js));
	assert_int_equal(offload_start(fx->o, job, done, &fx->other), GW_ETEMP);
	atomic_store(&fx->js.release, true);
	loop_for(fx->base, &fx->js, 2000);
	/* Free again: the next job is taken. */
	assert_ok(offload_start(fx->o, job, done, &fx->other));
	loop_for(fx->base, &fx->other, 2000);
	assert_int_equal(fx->other.dones, 1);
	assert_int_equal(atomic_load(&fx->other.jobs_run), 1);
}

static void test_wait_runs_done_once(void **state)
{
	struct fixture *fx = *state;
	struct job_state *js = &fx->js;

	js->wait_ms = 20;
	atomic_store(&js->release, true);
	assert_ok(offload_start(fx->o, job, done, js));
	offload_wait(fx->o);
	assert_int_equal(atomic_load(&js->jobs_run), 1);
	assert_int_equal(js->dones, 1);
	assert_true(pthread_equal(js->done_thread, pthread_self()));
	assert_false(offload_busy(fx->o));
	/* The thread's wake-up is still pending on the loop: it runs nothing twice. */
	for (int i = 0; i < 20; i++)
		tick(fx->base);
	assert_int_equal(js->dones, 1);
}

static void test_free_finishes_running_job(void **state)
{
	struct fixture *fx = *state;
	struct job_state *js = &fx->js;

	js->wait_ms = 50;
	atomic_store(&js->release, true);
	assert_ok(offload_start(fx->o, job, done, js));
	offload_free(fx->o);
	fx->o = NULL;
	assert_int_equal(atomic_load(&js->jobs_run), 1);
	assert_int_equal(js->dones, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_job_on_thread_done_on_loop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_second_job_refused_while_busy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wait_runs_done_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_finishes_running_job, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
