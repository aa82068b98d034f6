/*
 * offload: one background thread that runs one job at a time for an event
 * loop, so the loop goes on with other work meanwhile (the sender's intake
 * read-ahead: reading, parsing and signing the next chunk of spool files).
 * The job's `done` callback runs afterwards on the loop's thread.
 *
 * What the job may touch is the caller's business: while a job runs, the
 * loop must leave the job's data alone (hand it over, take it back in
 * `done`). The thread blocks every signal; errors inside the job travel in
 * the job's own data (the error store is per thread).
 */
#ifndef GW_OFFLOAD_H
#define GW_OFFLOAD_H

#include <stdbool.h>

struct event_base;

typedef struct offload offload;
typedef void (*offload_fn)(void *arg);

/* A thread attached to base. 0, or a negative gw_code with a message. */
int offload_new(offload **out, struct event_base *base);

/*
 * Run job(arg) on the thread; when it has returned, done(arg) runs on the
 * loop (from an event of base). GW_ETEMP when a job is still running.
 */
int offload_start(offload *o, offload_fn job, offload_fn done, void *arg);

/* A job has been started and its done() has not run yet. */
bool offload_busy(offload *o);

/* Block until the running job (if any) has returned, then run its done(). */
void offload_wait(offload *o);

/* offload_wait(), then stop and join the thread. NULL is fine. */
void offload_free(offload *o);

#endif
