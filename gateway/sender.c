/*
 * sender: `gateway send`, the prison side's daemon.
 *
 *   gateway send --config FILE [--schemas DIR] [--until-idle] [--max-seconds N]
 *
 * One libevent loop drives everything:
 *   - inotify on spool incoming/new (IN_MOVED_TO, IN_CLOSE_WRITE), a scan at
 *     start-up and a slow rescan every 60 s as a safety net -> a scan,
 *     taken one chunk of INTAKE_CHUNK_FILES files at a time
 *     (intake_scan_step): between chunks the loop runs (sockets, timers) and
 *     dispatch starts on what the last chunk committed, so the first
 *     transfers of a large drop begin after one chunk, not after all of it;
 *     the next chunk is a background event (the lowest priority), run only
 *     when nothing else is ready, so finished transfers are recorded and
 *     replaced, and curl has sent the new ones, before it takes the loop;
 *     the reader thread (offload.c) reads ahead: it reads, parses and signs
 *     the next chunk (intake_ahead_run, with a struct intake and a signer
 *     of its own, no store) while the loop records this one and delivers;
 *     a scan that left a file in incoming/new (disk full or read-only,
 *     database locked: each logged with its cause) is repeated after 5 s;
 *   - a timer armed for the store's next_due_ms() (re-armed after every
 *     change; the database is never polled on a fixed tick);
 *   - dispatch: store messages_due() (earliest release date first) into
 *     deliver_start() up to the global and per-endpoint limits;
 *   - SIGTERM/SIGINT: stop taking work, let transfers finish for up to
 *     10 s, abandon the rest (they stay 'sending' and are queued again at
 *     the next start by recover_sending()), exit 0;
 *   - SIGHUP: load the configuration into a new struct and swap it in when
 *     valid (endpoints, limits, retry schedule, log level, and the trust
 *     anchors and CRLs read again; encryption certificates are checked
 *     again at their next use); keep the old one on error. Identity key
 *     and certificate, database and spool changes need a restart.
 *   - SIGUSR1: look at the queue now (after an operator's retry, or a test
 *     that moved its clock).
 *
 * Test aids, read from the environment at start and never set in
 * production (the daemon logs event=test-clock / event=test-timeouts when
 * they are):
 *   GW_TEST_CLOCK_FILE=PATH       the scheduler's "now" is the number of ms
 *                                 since the epoch written in PATH, re-read at
 *                                 every use, so a test moves time forward
 *                                 and checks the retry schedule without
 *                                 sleeping (curl's timeouts and the grace
 *                                 period stay on real time);
 *   GW_TEST_TRANSFER_TIMEOUT_MS=N the whole-transfer timeout (default 60 s).
 *
 * --until-idle exits 0 once the spool is empty, nothing queued is due and
 * nothing is in flight (the demo and tests). --max-seconds N stops the same
 * way as SIGTERM after N seconds.
 *
 * One sender per database: before anything else touches the store, the
 * sender takes an exclusive lock on DB.lock beside the database (pidlock.h)
 * and holds it until it exits. A second `gateway send` on the same database
 * exits 1 at once, naming the database and the holder's pid, before it
 * could queue the running sender's 'sending' messages again
 * (recover_sending). The operator commands do not take the lock.
 *
 * At start-up the store gets PRAGMA quick_check (at most 3 s): a damaged
 * database stops the start with exit 1 and a sentence naming the file and
 * what to do, before anything in the spool is touched.
 *
 * Exit codes (daemons.h): 0 done, 1 operational failure, 2 usage or
 * configuration error.
 */
#include "daemons.h"
#include "backoff.h"
#include "config.h"
#include "deliver.h"
#include "err.h"
#include "fsutil.h"
#include "intake.h"
#include "log.h"
#include "metrics.h"
#include "offload.h"
#include "opweb.h"
#include "pidlock.h"
#include "pki.h"
#include "signer.h"
#include "spool.h"
#include "store.h"
#include "store_sqlite.h"
#include "timeutil.h"
#include "verify.h"
#include "xmlread.h"

#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <limits.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * Event priorities: libevent gives every new event the middle one of
 * PRIO_COUNT; only the scan's next chunk is put below it.
 */
#define PRIO_COUNT 3
#define PRIO_BACKGROUND 2
#define RESCAN_SECONDS 60
#define RESCAN_RETRY_SECONDS 5 /* after a scan that left files in incoming/new */
#define GRACE_SECONDS 10
#define EXPIRE_EVERY_MS (3600 * 1000)
#define DISPATCH_WINDOW 512  /* due messages looked at per dispatch, at most */
#define DISPATCH_FIRST_LOOK 16 /* ... and at first (see dispatch()) */
#define RETRY_SOON_MS 1000   /* when something due could not start for no limit */
#define PSEUDONYM_KEY_BYTES 32
#define PSEUDONYM_KEY_MIN 16
#define STORE_CHECK_BUDGET_MS 3000 /* PRAGMA quick_check at start-up, at most */

struct options {
	const char *config;
	const char *schemas;
	bool until_idle;
	long max_seconds;
};

struct sender {
	struct options opt;
	struct gw_config *cfg;
	int lock_fd; /* DB.lock, held from the start to the end of the process */
	struct event_base *base;
	store *st;
	signer *sig;
	pki_trust *trust;
	verifier *ver;
	deliver *dl;
	struct metrics *metrics;
	opweb *web;
	struct spool spool;
	struct intake intake;
	/* Intake read-ahead on the reader thread: its own struct intake and signer. */
	struct intake helper;
	signer *helper_sig;
	offload *reader;
	struct intake_ahead *ahead_running; /* the reader's, until on_ahead_done */
	struct intake_ahead *ahead_ready;   /* the next chunk, read */
	unsigned char pseudonym_key[64];
	size_t pseudonym_key_len;
	int inotify_fd;
	struct event *ev_inotify, *ev_rescan, *ev_due, *ev_work, *ev_grace, *ev_limit;
	struct event *ev_rescan_soon; /* a scan that left files behind: again in 5 s */
	struct event *ev_scan_next;   /* the scan's next chunk, once the loop has run */
	struct event *ev_signal[4];
	bool scan_wanted; /* incoming/new must be listed (again) */
	bool release_wanted; /* held messages to plan again (one refused as stale) */
	bool scan_more;   /* the listing being taken in has files left */
	bool scan_turn;   /* ev_scan_next fired: the next chunk's turn */
	bool stopping;
	int64_t last_expire_ms;
	int exit_code;
};

/* ---- the clock ----------------------------------------------------------- */

static char test_clock_file[PATH_MAX]; /* GW_TEST_CLOCK_FILE; empty: real time */

/* The test clock's value; the real time when its file cannot be read. */
static int64_t test_clock_read(void)
{
	char text[32];
	ssize_t n;
	char *end;
	long long v;
	int fd = open(test_clock_file, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return timeutil_now_ms();
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0)
		return timeutil_now_ms();
	text[n] = '\0';
	errno = 0;
	v = strtoll(text, &end, 10);
	if (errno || end == text || v <= 0)
		return timeutil_now_ms();
	return (int64_t)v;
}

/* The scheduler's clock: every due time, attempt time and intake stamp. */
static int64_t sender_now_ms(void)
{
	return test_clock_file[0] ? test_clock_read() : timeutil_now_ms();
}

static void test_aids_from_env(long *transfer_timeout_ms)
{
	const char *clock = getenv("GW_TEST_CLOCK_FILE");
	const char *timeout = getenv("GW_TEST_TRANSFER_TIMEOUT_MS");

	*transfer_timeout_ms = 0;
	if (clock && *clock) {
		snprintf(test_clock_file, sizeof(test_clock_file), "%s", clock);
		gw_log(GW_LOG_WARN, "test-clock", "file", test_clock_file, "reason",
		       "GW_TEST_CLOCK_FILE is set: the schedule follows that file, not real time",
		       NULL);
	}
	if (timeout && *timeout) {
		char *end;
		long v = strtol(timeout, &end, 10);
		if (*end == '\0' && v > 0 && v <= DELIVER_TOTAL_TIMEOUT_MS) {
			*transfer_timeout_ms = v;
			gw_log(GW_LOG_WARN, "test-timeouts", "transfer_ms", timeout, NULL);
		}
	}
}

/* ---- options ----------------------------------------------------------- */

static void usage(FILE *out)
{
	fprintf(out, "usage: gateway send --config FILE [--schemas DIR] [--until-idle]"
		     " [--max-seconds N]\n"
		     "  --config FILE     the gateway's configuration ([identity], [gateway],"
		     " [endpoint NAME])\n"
		     "  --schemas DIR     XSD directory (default: [identity] schemas)\n"
		     "  --until-idle      exit once the spool is empty and nothing is due or in"
		     " flight\n"
		     "  --max-seconds N   stop (as on SIGTERM) after N seconds\n");
}

static int parse_seconds(const char *text, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(text, &end, 10);
	if (errno || end == text || *end || v <= 0 || v > 365L * 86400)
		return gw_error_set(GW_EINVALID, "--max-seconds wants a positive number of seconds,"
				    " not '%s'", text);
	*out = v;
	return 0;
}

/* 0 to run, 1 when --help was asked, GW_EINVALID on a usage error. */
static int parse_options(int argc, char **argv, struct options *o)
{
	memset(o, 0, sizeof(*o));
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		bool has_value = i + 1 < argc;

		if (!strcmp(a, "--help") || !strcmp(a, "-h"))
			return 1;
		if (!strcmp(a, "--until-idle"))
			o->until_idle = true;
		else if (!strcmp(a, "--config") && has_value)
			o->config = argv[++i];
		else if (!strcmp(a, "--schemas") && has_value)
			o->schemas = argv[++i];
		else if (!strcmp(a, "--max-seconds") && has_value) {
			if (parse_seconds(argv[++i], &o->max_seconds) < 0)
				return GW_EINVALID;
		} else
			return gw_error_set(GW_EINVALID, "unknown or incomplete option '%s'", a);
	}
	if (!o->config)
		return gw_error_set(GW_EINVALID, "--config FILE is required");
	return 0;
}

/* ---- the pseudonym key ---------------------------------------------------- */

static int pseudonym_key_create(const char *path)
{
	unsigned char key[PSEUDONYM_KEY_BYTES];
	char dir[PATH_MAX];
	const char *name;
	char *slash;
	int rc;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash) {
		*slash = '\0';
		name = path + (slash - dir) + 1;
		if (!dir[0])
			snprintf(dir, sizeof(dir), "/");
	} else {
		snprintf(dir, sizeof(dir), ".");
		name = path;
	}
	if (RAND_bytes(key, sizeof(key)) != 1)
		return gw_error_set(GW_ERROR, "no random bytes for a new pseudonym key");
	rc = fsutil_write_durable(dir, name, key, sizeof(key), 0600);
	OPENSSL_cleanse(key, sizeof(key));
	if (rc == 0)
		gw_log(GW_LOG_INFO, "pseudonym-key-created", "file", path, NULL);
	return rc;
}

/* Read the key (creating it when missing); refuse one others can read. */
static int pseudonym_key_load(struct sender *s, const char *path)
{
	gw_buf buf = GW_BUF_INIT;
	int rc = fsutil_read_private(path, sizeof(s->pseudonym_key), &buf);

	if (rc == GW_ENOTFOUND) {
		if ((rc = pseudonym_key_create(path)) < 0)
			return gw_error_wrap(rc, "pseudonym key %s", path);
		rc = fsutil_read_private(path, sizeof(s->pseudonym_key), &buf);
	}
	if (rc == 0 && buf.len < PSEUDONYM_KEY_MIN)
		rc = gw_error_set(GW_EINVALID, "pseudonym key %s is shorter than %d bytes", path,
				  PSEUDONYM_KEY_MIN);
	else if (rc < 0)
		gw_error_wrap(rc, "pseudonym key");
	if (rc == 0) {
		memcpy(s->pseudonym_key, buf.data, buf.len);
		s->pseudonym_key_len = buf.len;
	}
	if (buf.data)
		OPENSSL_cleanse(buf.data, buf.cap);
	gw_buf_free(&buf);
	return rc;
}

/* ---- start-up ------------------------------------------------------------ */

static int apply_log_level(const struct gw_config *cfg)
{
	enum gw_log_level level;

	if (!cfg->identity.log_level[0])
		return 0;
	if (gw_log_parse_level(cfg->identity.log_level, &level) < 0)
		return GW_EINVALID;
	gw_log_set_level(level);
	return 0;
}

static int load_config(struct gw_config **out, const char *path)
{
	struct gw_config *cfg = calloc(1, sizeof(*cfg));
	int rc;

	if (!cfg)
		return gw_error_set(GW_ENOMEM, "out of memory for the configuration");
	if ((rc = config_load(cfg, path)) < 0 || (rc = apply_log_level(cfg)) < 0) {
		free(cfg);
		return rc;
	}
	if (!cfg->gateway.db[0] || !cfg->gateway.spool[0] || !cfg->gateway.pseudonym_key[0]) {
		free(cfg);
		return gw_error_set(GW_EINVALID, "%s: [gateway] needs spool, db and pseudonym_key",
				    path);
	}
	*out = cfg;
	return 0;
}

/* The identity's trust anchors and CRLs, read now, and a receipt verifier over them. */
static int trust_read(const struct gw_config *cfg, pki_trust **trust, verifier **ver)
{
	const struct config_identity *id = &cfg->identity;
	const char *anchors[PKI_MAX_FILES], *crls[PKI_MAX_FILES];
	int rc;

	*trust = NULL;
	*ver = NULL;
	for (size_t i = 0; i < id->n_trust; i++)
		anchors[i] = id->trust[i];
	for (size_t i = 0; i < id->n_crl; i++)
		crls[i] = id->crl[i];
	if ((rc = pki_trust_new(trust, anchors, id->n_trust, crls, id->n_crl)) == 0 &&
	    (rc = verifier_new(ver, *trust)) == 0)
		return 0;
	pki_trust_free(*trust);
	*trust = NULL;
	return rc;
}

static int open_trust(struct sender *s)
{
	return trust_read(s->cfg, &s->trust, &s->ver);
}

/* Exit code 2 for what the operator must fix in the configuration. */
static int open_crypto(struct sender *s)
{
	const char *schemas = s->opt.schemas ? s->opt.schemas : s->cfg->identity.schemas;

	if (xmlread_init() < 0 || dsig_init() < 0)
		return 1;
	if (xmlread_schemas_load(schemas) < 0 ||
	    signer_open(&s->sig, s->cfg->identity.key, s->cfg->identity.cert) < 0 ||
	    signer_open(&s->helper_sig, s->cfg->identity.key, s->cfg->identity.cert) < 0 ||
	    open_trust(s) < 0)
		return 2;
	return 0;
}

/*
 * A damaged store is refused before anything is taken from the spool.
 * PRAGMA quick_check reads every page, so it gets a budget: a store of a
 * few hundred MiB is checked in full; beyond the budget the rest is left to
 * SQLite's checks as pages are read, and the log says so.
 */
static int check_store(struct sender *s)
{
	int64_t started = timeutil_now_ms();
	bool complete = false;
	char ms[24];

	if (store_sqlite_check(s->st, STORE_CHECK_BUDGET_MS, &complete) < 0)
		return GW_ERROR;
	snprintf(ms, sizeof(ms), "%lld", (long long)(timeutil_now_ms() - started));
	if (complete)
		gw_log(GW_LOG_INFO, "store-checked", "db", s->cfg->gateway.db, "ms", ms, NULL);
	else
		gw_log(GW_LOG_WARN, "store-check-incomplete", "db", s->cfg->gateway.db, "ms", ms,
		       "reason", "PRAGMA quick_check did not finish within its start-up budget; to "
		       "check the whole file, stop the gateway and run sqlite3 DB 'PRAGMA quick_check'",
		       NULL);
	return 0;
}

/*
 * One sender per database (DB.lock): recover_sending() would otherwise take
 * a running sender's messages out of 'sending', its outcomes would then be
 * refused and the messages sent again. Exit 1 when another holds it.
 */
/*
 * The lock file sits beside the database's real path, so a configuration
 * that names it through a symbolic link takes the same lock. (A hard link
 * is beyond any lock; SQLite's own locking does not survive one either.)
 */
static int lock_database(struct sender *s)
{
	const char *db = s->cfg->gateway.db;
	char real[PATH_MAX], path[PATH_MAX];
	int n = snprintf(path, sizeof(path), "%s.lock", realpath(db, real) ? real : db);
	int rc;

	if (n < 0 || (size_t)n >= sizeof(path)) {
		gw_error_set(GW_EINVALID, "database path too long for its lock file: %s", db);
		return 2;
	}
	rc = pidlock_take(&s->lock_fd, path);
	if (rc == GW_EEXISTS)
		gw_error_wrap(rc, "another gateway send is running on the database %s (one sender"
			      " per database; stop it first)", db);
	else if (rc < 0)
		gw_error_wrap(rc, "database %s", db);
	return rc < 0 ? 1 : 0;
}

static int open_state(struct sender *s)
{
	int recovered = 0;

	if (pseudonym_key_load(s, s->cfg->gateway.pseudonym_key) < 0)
		return 2;
	if (store_sqlite_open(&s->st, s->cfg->gateway.db) < 0 || check_store(s) < 0 ||
	    spool_open(&s->spool, s->cfg->gateway.spool) < 0)
		return 1;
	if (s->st->ops->recover_sending(s->st, &recovered) < 0)
		return 1;
	if (recovered > 0) {
		char n[16];
		snprintf(n, sizeof(n), "%d", recovered);
		gw_log(GW_LOG_WARN, "recovered", "messages", n, "reason",
		       "were sending when the gateway stopped; queued again", NULL);
	}
	return 0;
}

static void intake_setup(struct sender *s)
{
	memset(&s->intake, 0, sizeof(s->intake));
	s->intake.cfg = s->cfg;
	s->intake.st = s->st;
	s->intake.sig = s->sig;
	s->intake.pseudonym_key = s->pseudonym_key;
	s->intake.pseudonym_key_len = s->pseudonym_key_len;
	s->intake.spool = &s->spool;
	s->intake.now_ms = sender_now_ms;
	s->helper = s->intake;
	s->helper.st = NULL; /* the read-ahead never touches the store */
	s->helper.sig = s->helper_sig;
}

/* ---- the work: scan, dispatch, re-arm, idle ------------------------------- */

static void kick(struct sender *s)
{
	if (s->ev_work)
		event_active(s->ev_work, 0, 0);
}

static void expire_processed(struct sender *s, int64_t now)
{
	int removed = 0;

	if (now - s->last_expire_ms < EXPIRE_EVERY_MS)
		return;
	s->last_expire_ms = now;
	if (spool_expire_processed(&s->spool, s->cfg->gateway.processed_keep_days, now, &removed) < 0)
		gw_log(GW_LOG_WARN, "expire-failed", "reason", gw_error_last(), NULL);
}

static void arm_in(struct event *ev, int64_t ms);

/* On the reader thread. */
static void ahead_job(void *arg)
{
	struct sender *s = arg;

	intake_ahead_run(s->ahead_running);
}

/* The next chunk is read: its step may run (in its turn, a background event). */
static void on_ahead_done(void *arg)
{
	struct sender *s = arg;

	intake_ahead_free(s->ahead_ready);
	s->ahead_ready = s->ahead_running;
	s->ahead_running = NULL;
	if (s->scan_more && !s->stopping)
		arm_in(s->ev_scan_next, 0);
}

/* The reader takes the chunk after the next `skip` files; nothing when there is none. */
static void read_ahead(struct sender *s, size_t skip)
{
	struct intake_ahead *a = NULL;

	if (!s->reader || offload_busy(s->reader) ||
	    intake_ahead_new(&s->intake, &s->helper, skip, &a) < 0)
		return; /* the step reads those files itself */
	s->ahead_running = a;
	if (offload_start(s->reader, ahead_job, on_ahead_done, s) < 0) {
		s->ahead_running = NULL;
		intake_ahead_free(a);
	}
}

/* The reader's work thrown away (a reload changes what it used). */
static void read_ahead_drop(struct sender *s)
{
	if (s->reader)
		offload_wait(s->reader);
	intake_ahead_free(s->ahead_ready);
	s->ahead_ready = NULL;
}

/*
 * One chunk of a scan. A new listing is taken when the last one is done;
 * scan_wanted is cleared just before, so a file arriving while the listing
 * is worked through (inotify sets scan_wanted again) gets a listing of its
 * own afterwards. With files left, the next chunk runs from a zero timer:
 * libevent polls sockets before it runs expired timers, whereas an
 * event_active() from here would run the work again without polling.
 *
 * Read-ahead: while the loop records this chunk (store, COMMIT, moves) and
 * goes on delivering, the reader thread reads, parses and signs the next
 * one; a chunk whose reading is still under way waits for it (its end arms
 * the timer again). The first chunk of a listing is read here.
 */
static void scan(struct sender *s)
{
	int accepted = 0, rejected = 0, duplicates = 0, rc;
	char a[16], r[16], d[16];
	bool more = false;

	if (s->scan_more && s->reader && offload_busy(s->reader))
		return; /* on_ahead_done() brings the chunk back */
	if (!s->scan_more)
		s->scan_wanted = false;
	if (s->ahead_ready) {
		intake_ahead_ready(&s->intake, s->ahead_ready);
		s->ahead_ready = NULL;
		read_ahead(s, INTAKE_CHUNK_FILES); /* the chunk after this one */
	}
	rc = intake_scan_step(&s->intake, INTAKE_CHUNK_FILES, &accepted, &rejected, &duplicates,
			      &more);
	s->scan_more = more;
	if (more) {
		read_ahead(s, 0);
		arm_in(s->ev_scan_next, 0);
	}
	if (rc < 0) {
		/* A full or read-only disk, a locked database: try again soon,
		 * not only at the next 60 s rescan or the next file's arrival. */
		char soon[16];

		snprintf(soon, sizeof(soon), "%d", RESCAN_RETRY_SECONDS);
		gw_log(GW_LOG_WARN, "scan-incomplete", "reason", gw_error_last(), "next_scan_s", soon,
		       NULL);
		if (!evtimer_pending(s->ev_rescan_soon, NULL))
			arm_in(s->ev_rescan_soon, RESCAN_RETRY_SECONDS * 1000);
	}
	if (accepted + rejected + duplicates == 0)
		return;
	snprintf(a, sizeof(a), "%d", accepted);
	snprintf(r, sizeof(r), "%d", rejected);
	snprintf(d, sizeof(d), "%d", duplicates);
	gw_log(GW_LOG_INFO, "scanned", "accepted", a, "rejected", r, "duplicates", d, NULL);
}

/* A message whose endpoint left the configuration waits, visibly, for it. */
#define HELD_NO_ENDPOINT "no endpoint: "

/* Inside the dispatch pass's transaction (deliver_batch_begin). */
/*
 * deliver_start() found no endpoint that may carry m: held until one is.
 * When its endpoint's name now points at another organisation and no
 * attempt can have reached the recipient, it is held as intake holds a
 * recipient without an endpoint: intake builds and signs it again (same
 * MessageId) for an endpoint of that organisation, with that endpoint's
 * consent rule and encryption, at the next start or reload. Its bytes were
 * made for the endpoint it went through and must not simply move. When an
 * attempt may have reached it, new bytes under the same MessageId would be
 * a conflict there: it waits for that name to point at it again.
 */
static void hold_unknown_endpoint(struct sender *s, const struct store_message *m)
{
	const struct config_endpoint *ep = config_endpoint_by_name(s->cfg, m->endpoint);
	bool reached = true;
	char why[192];
	const char *reason = why;

	if (ep)
		snprintf(why, sizeof(why), HELD_NO_ENDPOINT "'%s' now names organisation %s, "
			 "not the recipient %s", m->endpoint, ep->orgnr, m->recipient_orgnr);
	else
		snprintf(why, sizeof(why), HELD_NO_ENDPOINT "'%s' is not configured", m->endpoint);
	if (ep && s->st->ops->message_reached(s->st, m->message_id, &reached) == 0 && !reached)
		reason = INTAKE_HELD_NO_ENDPOINT;
	if (s->st->ops->message_update(s->st, m->message_id, MSG_QUEUED, MSG_HELD, reason, -1, 0) < 0) {
		gw_log(GW_LOG_ERROR, "store-error", "msg", m->message_id, "reason", gw_error_last(), NULL);
		return;
	}
	gw_log(GW_LOG_WARN, "held", "msg", m->message_id, "endpoint", m->endpoint, "reason", why,
	       NULL);
}

struct dispatch_state {
	struct sender *s;
	int started;
	int stalled; /* due, not started, and no transfer in flight will free it */
	size_t seen;   /* rows handed over by the current look */
	size_t parked; /* of them, parked for a down endpoint */
};

static int dispatch_one(const struct store_message *m, void *ctx)
{
	struct dispatch_state *ds = ctx;
	struct sender *s = ds->s;
	int rc = deliver_start(s->dl, m);

	ds->seen++;
	if (rc == 0)
		ds->started++;
	else if (rc == GW_ETEMP) {
		/* a down endpoint's queue waits; a busy one's stays due */
		if (deliver_park(s->dl, m) == 0)
			ds->parked++;
	} else if (rc == GW_ENOTFOUND)
		hold_unknown_endpoint(s, m);
	else if (rc != GW_EEXISTS && rc != GW_EINVALID) {
		gw_log(GW_LOG_ERROR, "start-failed", "msg", m->message_id, "endpoint", m->endpoint,
		       "reason", gw_error_last(), NULL);
		ds->stalled++;
	}
	return deliver_full(s->dl) ? 1 : 0;
}

/*
 * One pass, one store transaction (deliver_batch_begin/end): every
 * queued -> sending of the pass commits together, then the transfers
 * begin. Nothing due (one index seek) or no room anywhere: no transaction.
 * The first look reads DISPATCH_FIRST_LOOK due rows without their signed
 * bytes; only when that many were seen and either an endpoint still has
 * room (the earliest rows belong to busy endpoints) or rows were parked (a
 * down endpoint's backlog, to be moved out of the way) does a second look
 * take the whole window. Rows the first look started or parked are no
 * longer due inside the transaction, so the second look does not see them.
 */
static void dispatch(struct sender *s, int64_t now, struct dispatch_state *ds)
{
	int64_t when = 0;
	int rc;

	memset(ds, 0, sizeof(*ds));
	ds->s = s;
	if (deliver_endpoints_with_room(s->dl) == 0)
		return;
	rc = s->st->ops->next_due_ms(s->st, &when);
	if (rc == GW_ENOTFOUND || (rc == 0 && when > now)) {
		gw_error_clear();
		return;
	}
	if (rc < 0 || deliver_batch_begin(s->dl) < 0) {
		gw_log(GW_LOG_ERROR, "store-error", "reason", gw_error_last(), NULL);
		ds->stalled++;
		return;
	}
	rc = s->st->ops->messages_due_heads(s->st, now, DISPATCH_FIRST_LOOK, dispatch_one, ds);
	if (rc == 0 && ds->seen == DISPATCH_FIRST_LOOK && !deliver_full(s->dl) &&
	    (ds->parked > 0 || deliver_endpoints_with_room(s->dl) > 0)) {
		ds->seen = 0;
		rc = s->st->ops->messages_due_heads(s->st, now, DISPATCH_WINDOW, dispatch_one, ds);
	}
	if (rc < 0)
		gw_log(GW_LOG_ERROR, "store-error", "reason", gw_error_last(), NULL);
	if (deliver_batch_end(s->dl) < 0) {
		gw_log(GW_LOG_ERROR, "store-error", "reason", gw_error_last(), NULL);
		ds->stalled++;
	}
}

static void arm_in(struct event *ev, int64_t ms)
{
	struct timeval tv;

	if (ms < 0)
		ms = 0;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
	evtimer_add(ev, &tv);
}

/*
 * One timer for the next due message. Something already due that could not
 * start waits for a transfer to finish (that kicks the work again); only
 * when nothing is in flight to do that is a short retry armed.
 */
static void arm_due(struct sender *s, int64_t now, const struct dispatch_state *ds)
{
	int64_t when;
	int rc = s->st->ops->next_due_ms(s->st, &when);

	evtimer_del(s->ev_due);
	if (rc == GW_ENOTFOUND)
		return;
	if (rc < 0) {
		gw_log(GW_LOG_ERROR, "store-error", "reason", gw_error_last(), NULL);
		arm_in(s->ev_due, RETRY_SOON_MS);
		return;
	}
	if (when > now)
		arm_in(s->ev_due, when - now);
	else if (deliver_in_flight(s->dl) == 0 || ds->stalled)
		arm_in(s->ev_due, RETRY_SOON_MS);
}

static bool spool_empty(struct sender *s)
{
	struct spool_list list;
	bool empty;

	memset(&list, 0, sizeof(list));
	if (spool_list_new(&s->spool, &list) < 0)
		return false;
	empty = list.n_names == 0 && list.n_bad == 0;
	spool_list_free(&list);
	return empty;
}

static bool idle(struct sender *s, int64_t now)
{
	int64_t when;
	int rc;

	if (s->scan_wanted || s->scan_more || deliver_unsettled(s->dl))
		return false;
	rc = s->st->ops->next_due_ms(s->st, &when);
	if (rc != GW_ENOTFOUND && (rc < 0 || when <= now))
		return false;
	return spool_empty(s);
}

static void release_held(struct sender *s, bool stale_only);

static void on_work(evutil_socket_t fd, short what, void *arg)
{
	struct sender *s = arg;
	struct dispatch_state ds;
	int64_t now;

	(void)fd;
	(void)what;
	if (s->stopping)
		return;
	now = sender_now_ms();
	/* A chunk only in its turn: a transfer finishing kicks a dispatch, not a chunk. */
	if ((s->scan_more && s->scan_turn) || (s->scan_wanted && !s->scan_more)) {
		s->scan_turn = false;
		scan(s);
		expire_processed(s, now);
		now = sender_now_ms(); /* what the scan queued is due by now, not before */
	}
	if (s->release_wanted) {
		s->release_wanted = false;
		release_held(s, true);
	}
	dispatch(s, now, &ds);
	arm_due(s, now, &ds);
	if (s->opt.until_idle && idle(s, sender_now_ms())) {
		gw_log(GW_LOG_INFO, "idle", "reason", "spool empty, nothing due, nothing in flight",
		       NULL);
		event_base_loopbreak(s->base);
	}
}

/* ---- events -------------------------------------------------------------- */

static void on_inotify(evutil_socket_t fd, short what, void *arg)
{
	struct sender *s = arg;
	_Alignas(struct inotify_event) char buf[4096];

	(void)what;
	while (read(fd, buf, sizeof(buf)) > 0)
		; /* the names do not matter: the scan reads the directory */
	s->scan_wanted = true;
	kick(s);
}

static void on_rescan(evutil_socket_t fd, short what, void *arg)
{
	struct sender *s = arg;

	(void)fd;
	(void)what;
	s->scan_wanted = true;
	kick(s);
}

/*
 * The scan's next chunk. Its event has the lowest priority (PRIO_BACKGROUND),
 * so it runs only when nothing else is ready: transfers that finished are
 * recorded and their slots given to the next messages, and curl has sent
 * those, before the chunk takes the loop for its files.
 */
static void on_scan_next(evutil_socket_t fd, short what, void *arg)
{
	struct sender *s = arg;

	s->scan_turn = true;
	on_work(fd, what, arg);
}

static void on_due(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	kick(arg);
}

static void on_delivered(void *ctx, const char *message_id, enum outcome_kind kind)
{
	struct sender *s = ctx;

	(void)message_id;
	(void)kind;
	if (s->stopping) {
		if (deliver_in_flight(s->dl) == 0)
			event_base_loopbreak(s->base);
		return;
	}
	s->release_wanted |= deliver_take_resign(s->dl); /* signed again in on_work */
	kick(s);
}

static void on_grace_over(evutil_socket_t fd, short what, void *arg)
{
	struct sender *s = arg;
	char n[16];

	(void)fd;
	(void)what;
	snprintf(n, sizeof(n), "%zu", deliver_in_flight(s->dl));
	gw_log(GW_LOG_WARN, "grace-over", "in_flight", n, "reason",
	       "abandoned; queued again at next start", NULL);
	event_base_loopbreak(s->base);
}

static void stop(struct sender *s, const char *why)
{
	char n[16];

	if (s->stopping)
		return;
	s->stopping = true;
	snprintf(n, sizeof(n), "%zu", deliver_in_flight(s->dl));
	gw_log(GW_LOG_INFO, "stopping", "reason", why, "in_flight", n, NULL);
	if (s->ev_inotify)
		event_del(s->ev_inotify);
	event_del(s->ev_rescan);
	event_del(s->ev_rescan_soon);
	event_del(s->ev_scan_next);
	event_del(s->ev_due);
	if (deliver_in_flight(s->dl) == 0) {
		event_base_loopbreak(s->base);
		return;
	}
	arm_in(s->ev_grace, GRACE_SECONDS * 1000);
}

static void on_limit(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	stop(arg, "--max-seconds reached");
}

/*
 * Held messages ("no endpoint: 'NAME' ...") go back to the queue, bytes
 * unchanged, once NAME is configured again and names their recipient.
 */
struct held_list {
	const struct gw_config *cfg;
	char (*ids)[37];
	size_t n, cap;
};

static int collect_requeue(const struct store_message *m, void *ctx)
{
	struct held_list *h = ctx;
	const struct config_endpoint *ep;

	if (!m->endpoint[0] || strncmp(m->reason, HELD_NO_ENDPOINT "'", strlen(HELD_NO_ENDPOINT) + 1))
		return 0;
	ep = config_endpoint_for_recipient(h->cfg, m->service, m->recipient_orgnr, m->endpoint);
	if (!ep || strcmp(ep->name, m->endpoint) != 0)
		return 0;
	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 16;
		char (*ids)[37] = realloc(h->ids, cap * sizeof(*ids));
		if (!ids)
			return gw_error_set(GW_ENOMEM, "out of memory listing held messages");
		h->ids = ids;
		h->cap = cap;
	}
	snprintf(h->ids[h->n++], sizeof(h->ids[0]), "%s", m->message_id);
	return 0;
}

/* The list runs a read statement: collect first, change after. */
static void requeue_held(struct sender *s)
{
	struct store_filter held = { MSG_HELD, NULL };
	struct held_list h = { s->cfg, NULL, 0, 0 };
	store *st = s->st;

	if (st->ops->messages_list(st, &held, collect_requeue, &h) < 0)
		gw_log(GW_LOG_ERROR, "store-error", "reason", gw_error_last(), NULL);
	for (size_t i = 0; i < h.n; i++) {
		if (st->ops->begin(st) < 0)
			break;
		if (st->ops->message_update(st, h.ids[i], MSG_HELD, MSG_QUEUED, "", 0, 0) < 0 ||
		    st->ops->commit(st) < 0) {
			st->ops->rollback(st);
			continue;
		}
		gw_log(GW_LOG_INFO, "requeued", "msg", h.ids[i], NULL);
	}
	free(h.ids);
}

/* Recipients held for no endpoint (or an unusable encryption certificate)
 * whose cause is gone are built, signed and queued. */
/* Held messages whose cause is gone, planned again (stale_only: the ones a partner found stale). */
static void release_held(struct sender *s, bool stale_only)
{
	int released = 0;
	char n[16];
	int rc = stale_only ? intake_release_stale(&s->intake, &released)
			    : intake_release_held(&s->intake, &released);

	if (rc < 0) {
		gw_log(GW_LOG_ERROR, "release-failed", "reason", gw_error_last(), NULL);
		return;
	}
	if (released) {
		snprintf(n, sizeof(n), "%d", released);
		gw_log(GW_LOG_INFO, "released-held", "messages", n, NULL);
	}
}

static void audit_reload(struct sender *s)
{
	char detail[PATH_MAX + 8];

	snprintf(detail, sizeof(detail), "file=%s", s->opt.config);
	if (s->st->ops->audit_append(s->st, "config-reload", "", detail) < 0)
		gw_log(GW_LOG_ERROR, "audit-failed", "reason", gw_error_last(), NULL);
}

/*
 * SIGHUP. The trust anchors and CRLs are read again too (a CRL renewed
 * before its nextUpdate, a partner's certificate revoked): receipts are
 * checked against them from now on, and curl reads its CRL file on each
 * new connection.
 */
static void reload(struct sender *s)
{
	struct gw_config *fresh = NULL, *old = s->cfg;
	struct backoff_policy bp;
	pki_trust *trust = NULL;
	verifier *ver = NULL;

	read_ahead_drop(s); /* it uses the configuration, and logs at its level */
	if (load_config(&fresh, s->opt.config) < 0 || trust_read(fresh, &trust, &ver) < 0) {
		gw_log(GW_LOG_ERROR, "reload-failed", "reason", gw_error_last(), NULL);
		apply_log_level(old);
		free(fresh);
		return;
	}
	backoff_policy_init(&bp, fresh->gateway.retry_base, fresh->gateway.retry_cap);
	if (deliver_reconfigure(s->dl, fresh, &bp) < 0) {
		gw_log(GW_LOG_ERROR, "reload-failed", "reason", gw_error_last(), NULL);
		apply_log_level(old);
		verifier_free(ver);
		pki_trust_free(trust);
		free(fresh);
		return;
	}
	deliver_set_verifier(s->dl, ver);
	verifier_free(s->ver);
	pki_trust_free(s->trust);
	s->ver = ver;
	s->trust = trust;
	s->cfg = fresh;
	s->intake.cfg = fresh;
	intake_forget_certs(&s->intake); /* checked against the old endpoints, anchors, CRLs */
	intake_close(&s->helper); /* its certificate cache */
	s->helper.cfg = fresh;
	opweb_set_config(s->web, fresh);
	free(old);
	gw_log(GW_LOG_INFO, "reloaded", "file", s->opt.config, NULL);
	audit_reload(s);
	requeue_held(s);
	release_held(s, false);
	s->scan_wanted = true;
	kick(s);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct sender *s = arg;

	(void)what;
	if (sig == SIGHUP)
		reload(s);
	else if (sig == SIGUSR1)
		kick(s);
	else
		stop(s, sig == SIGTERM ? "SIGTERM" : "SIGINT");
}

static int watch_spool(struct sender *s)
{
	s->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (s->inotify_fd < 0 ||
	    inotify_add_watch(s->inotify_fd, s->spool.new_dir, IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
		/* The 60 s rescan still finds every file; only slower. */
		gw_log(GW_LOG_WARN, "inotify-unavailable", "reason", strerror(errno), NULL);
		if (s->inotify_fd >= 0)
			close(s->inotify_fd);
		s->inotify_fd = -1;
		return 0;
	}
	s->ev_inotify = event_new(s->base, s->inotify_fd, EV_READ | EV_PERSIST, on_inotify, s);
	if (!s->ev_inotify || event_add(s->ev_inotify, NULL) < 0)
		return gw_error_set(GW_ERROR, "cannot watch %s", s->spool.new_dir);
	return 0;
}

/*
 * SIGHUP's default action ends the process: a `systemctl reload` during
 * start-up (a CRL renewal hook, say) must wait for the loop instead.
 */
static void hangup_blocked(bool blocked)
{
	sigset_t hup;

	sigemptyset(&hup);
	sigaddset(&hup, SIGHUP);
	sigprocmask(blocked ? SIG_BLOCK : SIG_UNBLOCK, &hup, NULL);
}

static int setup_events(struct sender *s)
{
	static const int signals[4] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1 };
	struct timeval rescan = { RESCAN_SECONDS, 0 };

	s->ev_work = event_new(s->base, -1, 0, on_work, s);
	s->ev_rescan = event_new(s->base, -1, EV_PERSIST, on_rescan, s);
	s->ev_rescan_soon = evtimer_new(s->base, on_rescan, s);
	s->ev_scan_next = evtimer_new(s->base, on_scan_next, s);
	if (s->ev_scan_next)
		event_priority_set(s->ev_scan_next, PRIO_BACKGROUND);
	s->ev_due = evtimer_new(s->base, on_due, s);
	s->ev_grace = evtimer_new(s->base, on_grace_over, s);
	s->ev_limit = evtimer_new(s->base, on_limit, s);
	if (!s->ev_work || !s->ev_rescan || !s->ev_rescan_soon || !s->ev_scan_next || !s->ev_due ||
	    !s->ev_grace || !s->ev_limit)
		return gw_error_set(GW_ENOMEM, "cannot create the event loop's events");
	for (int i = 0; i < 4; i++) {
		s->ev_signal[i] = evsignal_new(s->base, signals[i], on_signal, s);
		if (!s->ev_signal[i] || event_add(s->ev_signal[i], NULL) < 0)
			return gw_error_set(GW_ERROR, "cannot handle signal %d", signals[i]);
	}
	hangup_blocked(false); /* a reload sent during start-up arrives now */
	if (event_add(s->ev_rescan, &rescan) < 0)
		return gw_error_set(GW_ERROR, "cannot arm the rescan timer");
	if (offload_new(&s->reader, s->base) < 0)
		return GW_ERROR;
	if (s->opt.max_seconds > 0)
		arm_in(s->ev_limit, (int64_t)s->opt.max_seconds * 1000);
	return watch_spool(s);
}

static int start_engine(struct sender *s)
{
	struct deliver_options o;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return gw_error_set(GW_ERROR, "libcurl failed to initialise");
	if (!(s->base = event_base_new()) || event_base_priority_init(s->base, PRIO_COUNT) < 0)
		return gw_error_set(GW_ERROR, "cannot create the event loop");
	memset(&o, 0, sizeof(o));
	o.base = s->base;
	o.cfg = s->cfg;
	o.st = s->st;
	o.verifier = s->ver;
	backoff_policy_init(&o.backoff, s->cfg->gateway.retry_base, s->cfg->gateway.retry_cap);
	o.on_done = on_delivered;
	o.ctx = s;
	if (metrics_new(&s->metrics) < 0)
		return GW_ENOMEM;
	o.metrics = s->metrics;
	o.now_ms = sender_now_ms;
	test_aids_from_env(&o.total_timeout_ms);
	return deliver_new(&s->dl, &o);
}

/* The operator port: metrics and the read-only web view (docs/WEB.md). */
static int start_operator_port(struct sender *s)
{
	const struct config_gateway *g = &s->cfg->gateway;
	struct opweb_options wo;
	char port[16];

	if (!g->operator_host[0])
		return 0;
	memset(&wo, 0, sizeof(wo));
	wo.host = g->operator_host;
	wo.port = g->operator_port;
	wo.st = s->st;
	wo.cfg = s->cfg;
	wo.metrics = s->metrics;
	wo.tls_cert = g->operator_cert[0] ? g->operator_cert : NULL;
	wo.tls_key = g->operator_key[0] ? g->operator_key : NULL;
	wo.client_ca = g->operator_client_ca[0] ? g->operator_client_ca : NULL;
	wo.timeout_seconds = g->operator_timeout;
	wo.now_ms = sender_now_ms;
	if (opweb_start(&s->web, s->base, &wo) < 0)
		return GW_ERROR;
	snprintf(port, sizeof(port), "%d", opweb_port(s->web));
	gw_log(GW_LOG_INFO, "operator-port", "host", g->operator_host, "port", port, NULL);
	return 0;
}

/* ---- shutdown ------------------------------------------------------------ */

static void free_event(struct event **ev)
{
	if (*ev)
		event_free(*ev);
	*ev = NULL;
}

static void sender_close(struct sender *s)
{
	offload_free(s->reader); /* its last done() may still arm a timer */
	intake_ahead_free(s->ahead_running);
	intake_ahead_free(s->ahead_ready);
	opweb_free(s->web);
	deliver_free(s->dl);
	metrics_free(s->metrics);
	free_event(&s->ev_inotify);
	free_event(&s->ev_rescan);
	free_event(&s->ev_rescan_soon);
	free_event(&s->ev_scan_next);
	free_event(&s->ev_due);
	free_event(&s->ev_work);
	free_event(&s->ev_grace);
	free_event(&s->ev_limit);
	for (int i = 0; i < 4; i++)
		free_event(&s->ev_signal[i]);
	if (s->inotify_fd >= 0)
		close(s->inotify_fd);
	if (s->base)
		event_base_free(s->base);
	if (s->st)
		s->st->ops->close(s->st);
	verifier_free(s->ver);
	pki_trust_free(s->trust);
	intake_close(&s->intake);
	intake_close(&s->helper);
	signer_close(s->sig);
	signer_close(s->helper_sig);
	OPENSSL_cleanse(s->pseudonym_key, sizeof(s->pseudonym_key));
	free(s->cfg);
	curl_global_cleanup();
	dsig_shutdown();
	xmlread_shutdown();
	pidlock_release(s->lock_fd); /* last: the store is closed */
	s->lock_fd = -1;
}

static int fail(int code, const char *what)
{
	gw_log(GW_LOG_ERROR, "start-failed", "step", what, "reason", gw_error_last(), NULL);
	fprintf(stderr, "gateway send: %s\n", gw_error_last());
	return code;
}

static int sender_run(struct sender *s)
{
	int rc;
	char n[16];

	if ((rc = lock_database(s)) != 0)
		return fail(rc, "lock");
	if ((rc = open_crypto(s)) != 0)
		return fail(rc, "crypto");
	if ((rc = open_state(s)) != 0)
		return fail(rc, "state");
	intake_setup(s);
	requeue_held(s);
	release_held(s, false);
	if (start_engine(s) < 0)
		return fail(2, "engine");
	if (start_operator_port(s) < 0)
		return fail(2, "operator port");
	if (setup_events(s) < 0)
		return fail(1, "events");
	snprintf(n, sizeof(n), "%zu", s->cfg->n_endpoints);
	gw_log(GW_LOG_INFO, "started", "endpoints", n, "spool", s->spool.root, NULL);
	s->scan_wanted = true;
	kick(s);
	if (event_base_dispatch(s->base) < 0)
		return fail(1, "loop");
	gw_log(GW_LOG_INFO, "stopped", NULL);
	return 0;
}

int sender_main(int argc, char **argv)
{
	struct sender s;
	struct sigaction ignore;
	int rc;

	memset(&s, 0, sizeof(s));
	s.inotify_fd = -1;
	s.lock_fd = -1;
	hangup_blocked(true);
	rc = parse_options(argc, argv, &s.opt);
	if (rc == 1) {
		usage(stdout);
		return 0;
	}
	if (rc < 0) {
		fprintf(stderr, "gateway send: %s\n", gw_error_last());
		usage(stderr);
		return 2;
	}
	if (load_config(&s.cfg, s.opt.config) < 0) {
		fprintf(stderr, "gateway send: %s\n", gw_error_last());
		return 2;
	}
	memset(&ignore, 0, sizeof(ignore));
	ignore.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &ignore, NULL);
	rc = sender_run(&s);
	sender_close(&s);
	return rc;
}
