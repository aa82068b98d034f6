/*
 * bench_sched: the cost of picking the next due message as the queue grows,
 * through the store API the sender uses (store.h, SQLite backend).
 *
 *   bench_sched fill DB N      create DB with N queued messages
 *   bench_sched time DB        time the scheduler's questions on DB
 *
 * fill: one notice per 4 messages, one transaction per 10,000 messages.
 * Messages spread over 365 release dates; next_attempt_ms uniform over
 * 30 days starting one day from now (so a daemon started on the file sees
 * nothing due); 256-byte signed_bytes with their real digest; 16 messages
 * left in `sending` for recover_sending to find. Prints "fill_s=".
 *
 * time: opens the store (timed with recover_sending and the first
 * next_due_ms: "restart_ms"), then, each repeated many times and the median
 * of 7 batches reported in microseconds per call:
 *   due_all_us   messages_due(limit 1) + next_due_ms with `now` past every
 *                next attempt (a backlog: everything due);
 *   due_none_us  the same with `now` before every next attempt (all waiting
 *                for a retry: messages_due walks every release date);
 *   window_us    messages_due(limit 512), all due: what the sender's
 *                dispatch asks for after every finished transfer;
 * and VmHWM of this process ("rss_kb").
 */
#include "buf.h"
#include "err.h"
#include "receipt.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PER_TXN 10000
#define PER_NOTICE 4
#define DATES 365
#define DAY_MS (86400 * 1000LL)
#define SPREAD_MS (30 * DAY_MS)
#define SENDING 16
#define BATCHES 7

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void fail(const char *what)
{
	fprintf(stderr, "bench_sched: %s: %s\n", what, gw_error_last());
	exit(1);
}

static void date_of(int i, char out[11])
{
	/* 2027-01-01 + (i % 365) days, without a calendar library: 12 months. */
	static const int mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int d = i % DATES, m = 0;

	while (d >= mdays[m]) {
		d -= mdays[m];
		m++;
	}
	snprintf(out, 11, "2027-%02u-%02u", (unsigned)(m + 1) % 100u, (unsigned)(d + 1) % 100u);
}

static int fill(const char *path, long n)
{
	store *st;
	struct store_notice no;
	struct store_message m;
	int64_t base = wall_ms() + DAY_MS;
	double t0 = now_ms();
	unsigned char blob[256];

	remove(path);
	if (store_sqlite_open(&st, path) < 0)
		fail("open");
	memset(&m, 0, sizeof(m));
	for (size_t i = 0; i < sizeof(blob); i++)
		blob[i] = (unsigned char)('a' + i % 26);
	if (gw_buf_put(&m.signed_bytes, blob, sizeof(blob)) < 0 ||
	    receipt_digest(blob, sizeof(blob), m.digest_b64) < 0)
		fail("blob");
	for (long i = 0; i < n; i++) {
		if (i % PER_TXN == 0 && st->ops->begin(st) < 0)
			fail("begin");
		if (i % PER_NOTICE == 0) {
			memset(&no, 0, sizeof(no));
			snprintf(no.notice_id, sizeof(no.notice_id), "KDI-2027-%06ld", i / PER_NOTICE);
			no.revision = 1;
			snprintf(no.kind, sizeof(no.kind), "release");
			snprintf(no.content_sha256, sizeof(no.content_sha256), "%064lx", i / PER_NOTICE);
			snprintf(no.source_name, sizeof(no.source_name), "%s.xml", no.notice_id);
			snprintf(no.sender_orgnr, sizeof(no.sender_orgnr), "974760673");
			snprintf(no.sender_unit, sizeof(no.sender_unit), "Oslo fengsel");
			date_of((int)(next_rand() % DATES), no.event_date);
			snprintf(no.person_ref, sizeof(no.person_ref), "%016lx", i);
			no.received_ms = base - DAY_MS;
			if (st->ops->notice_insert(st, &no) < 0)
				fail("notice_insert");
		}
		/* UUIDv4-shaped, sequential (keeps the fill fast; the scheduler
		 * never looks at the id). */
		snprintf(m.message_id, sizeof(m.message_id), "%08x-0000-4000-8000-%012x",
			 (unsigned)(i >> 20) & 0xffffffu, (unsigned)i & 0xfffffffu);
		snprintf(m.notice_id, sizeof(m.notice_id), "%s", no.notice_id);
		m.revision = 1;
		snprintf(m.kind, sizeof(m.kind), "release");
		snprintf(m.service, sizeof(m.service), "%s",
			 (const char *[]){ "housing", "nav", "health", "school" }[i % PER_NOTICE]);
		snprintf(m.recipient_orgnr, sizeof(m.recipient_orgnr), "958935420");
		snprintf(m.endpoint, sizeof(m.endpoint), "%s",
			 (const char *[]){ "housing", "nav", "health", "school" }[i % PER_NOTICE]);
		m.state = i < SENDING ? MSG_SENDING : MSG_QUEUED;
		snprintf(m.event_date, sizeof(m.event_date), "%s", no.event_date);
		m.created_ms = base - DAY_MS + i / 1000;
		m.next_attempt_ms = base + (int64_t)(next_rand() % (uint64_t)SPREAD_MS);
		m.deadline_ms = base + 60 * DAY_MS;
		if (st->ops->message_insert(st, &m) < 0)
			fail("message_insert");
		if ((i + 1) % PER_TXN == 0 || i + 1 == n)
			if (st->ops->commit(st) < 0)
				fail("commit");
	}
	st->ops->close(st);
	gw_buf_free(&m.signed_bytes);
	printf("fill_s=%.2f messages=%ld\n", (now_ms() - t0) / 1e3, n);
	return 0;
}

static int count_cb(const struct store_message *m, void *ctx)
{
	(*(int *)ctx)++;
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Median over BATCHES of the mean cost of one (messages_due + next_due_ms). */
static double time_pick(store *st, int64_t now, size_t limit, int reps, int *found)
{
	double batch[BATCHES];

	for (int b = 0; b < BATCHES; b++) {
		double t0 = now_ms();
		for (int r = 0; r < reps; r++) {
			int64_t when;
			*found = 0;
			if (st->ops->messages_due(st, now, limit, count_cb, found) < 0)
				fail("messages_due");
			if (st->ops->next_due_ms(st, &when) < 0)
				fail("next_due_ms");
		}
		batch[b] = (now_ms() - t0) * 1e3 / reps;
	}
	qsort(batch, BATCHES, sizeof(batch[0]), cmp_double);
	return batch[BATCHES / 2];
}

static long vmhwm_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static int time_store(const char *path)
{
	store *st;
	int recovered = 0, found_all = 0, found_none = 0, found_window = 0;
	int64_t when;
	double t0 = now_ms(), restart, all, none, window;

	if (store_sqlite_open(&st, path) < 0)
		fail("open");
	if (st->ops->recover_sending(st, &recovered) < 0)
		fail("recover_sending");
	if (st->ops->next_due_ms(st, &when) < 0)
		fail("next_due_ms");
	restart = now_ms() - t0;
	time_pick(st, wall_ms() + 365 * DAY_MS, 1, 2000, &found_all); /* warm-up */
	all = time_pick(st, wall_ms() + 365 * DAY_MS, 1, 20000, &found_all);
	none = time_pick(st, 0, 1, 200, &found_none);
	window = time_pick(st, wall_ms() + 365 * DAY_MS, 512, 20, &found_window);
	printf("restart_ms=%.2f recovered=%d due_all_us=%.2f due_none_us=%.2f window_us=%.1f"
	       " rss_kb=%ld\n", restart, recovered, all, none, window, vmhwm_kb());
	if (found_all != 1 || found_none != 0 || found_window != 512) {
		fprintf(stderr, "bench_sched: unexpected due counts %d/%d/%d\n", found_all, found_none,
			found_window);
		return 1;
	}
	st->ops->close(st);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "fill") == 0)
		return fill(argv[2], atol(argv[3]));
	if (argc == 3 && strcmp(argv[1], "time") == 0)
		return time_store(argv[2]);
	fprintf(stderr, "usage: bench_sched fill DB N | bench_sched time DB\n");
	return 2;
}
