/*
 * offload: a job thread for an event loop (see offload.h).
 *
 * The thread waits on a condition variable for a job; when the job has
 * returned it writes to an eventfd the loop watches, and the loop's read
 * event runs done(). offload_wait() takes the same path synchronously, so
 * done() runs exactly once per job either way: whoever first sees the job
 * finished while it is still marked started runs it.
 */
#include "offload.h"
#include "err.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct offload {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* a job was given, a job finished, or stop */
	struct event *ev_done;
	int efd;
	offload_fn job, done;
	void *arg;
	bool started;  /* a job was handed over; its done() has not run */
	bool finished; /* the thread has returned from the job */
	bool stop;
};

/* Waits for a job, runs it, says so; until stop. */
static void *thread_main(void *p)
{
	offload *o = p;
	uint64_t one = 1;

	pthread_mutex_lock(&o->lock);
	for (;;) {
		while (!o->stop && !o->job)
			pthread_cond_wait(&o->cond, &o->lock);
		if (o->stop)
			break;
		offload_fn job = o->job;
		void *arg = o->arg;

		o->job = NULL;
		pthread_mutex_unlock(&o->lock);
		job(arg);
		pthread_mutex_lock(&o->lock);
		o->finished = true;
		pthread_cond_broadcast(&o->cond);
		/* Wakes the loop (the counter cannot overflow at one write per job). */
		while (write(o->efd, &one, sizeof(one)) < 0 && errno == EINTR)
			;
	}
	pthread_mutex_unlock(&o->lock);
	return NULL;
}

/* The finished job's done(), once; called without the lock. */
static void run_done(offload *o)
{
	offload_fn done;
	void *arg;

	pthread_mutex_lock(&o->lock);
	if (!o->started || !o->finished) {
		pthread_mutex_unlock(&o->lock);
		return;
	}
	done = o->done;
	arg = o->arg;
	o->started = false;
	o->finished = false;
	pthread_mutex_unlock(&o->lock);
	if (done)
		done(arg);
}

static void on_done_event(evutil_socket_t fd, short what, void *p)
{
	uint64_t count;

	(void)what;
	while (read(fd, &count, sizeof(count)) < 0 && errno == EINTR)
		;
	run_done(p);
}

static int start_thread(offload *o)
{
	sigset_t all, old;
	int rc;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&o->thread, NULL, thread_main, o);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

static void offload_release(offload *o)
{
	if (o->ev_done)
		event_free(o->ev_done);
	if (o->efd >= 0)
		close(o->efd);
	pthread_cond_destroy(&o->cond);
	pthread_mutex_destroy(&o->lock);
	free(o);
}

int offload_new(offload **out, struct event_base *base)
{
	offload *o = calloc(1, sizeof(*o));
	int rc;

	*out = NULL;
	if (!o)
		return gw_error_set(GW_ENOMEM, "out of memory for a background thread");
	pthread_mutex_init(&o->lock, NULL);
	pthread_cond_init(&o->cond, NULL);
	o->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (o->efd >= 0)
		o->ev_done = event_new(base, o->efd, EV_READ | EV_PERSIST, on_done_event, o);
	if (o->efd < 0 || !o->ev_done || event_add(o->ev_done, NULL) < 0) {
		rc = gw_error_set(GW_ERROR, "cannot set up a background thread's wake-up: %s",
				  strerror(errno));
		offload_release(o);
		return rc;
	}
	if ((rc = start_thread(o)) != 0) {
		rc = gw_error_set(GW_ERROR, "cannot start a background thread: %s", strerror(rc));
		offload_release(o);
		return rc;
	}
	*out = o;
	return 0;
}

int offload_start(offload *o, offload_fn job, offload_fn done, void *arg)
{
	pthread_mutex_lock(&o->lock);
	if (o->started) {
		pthread_mutex_unlock(&o->lock);
		return gw_error_set(GW_ETEMP, "the background thread is still busy");
	}
	o->job = job;
	o->done = done;
	o->arg = arg;
	o->started = true;
	o->finished = false;
	pthread_cond_broadcast(&o->cond);
	pthread_mutex_unlock(&o->lock);
	return 0;
}

bool offload_busy(offload *o)
{
	bool busy;

	pthread_mutex_lock(&o->lock);
	busy = o->started;
	pthread_mutex_unlock(&o->lock);
	return busy;
}

void offload_wait(offload *o)
{
	pthread_mutex_lock(&o->lock);
	while (o->started && !o->finished)
		pthread_cond_wait(&o->cond, &o->lock);
	pthread_mutex_unlock(&o->lock);
	run_done(o);
}

void offload_free(offload *o)
{
	if (!o)
		return;
	offload_wait(o);
	pthread_mutex_lock(&o->lock);
	o->stop = true;
	pthread_cond_broadcast(&o->cond);
	pthread_mutex_unlock(&o->lock);
	pthread_join(o->thread, NULL);
	offload_release(o);
}
