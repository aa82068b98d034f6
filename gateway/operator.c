/*
 * operator: the commands operators run against the gateway's store, while
 * `gateway send` runs (SQLite WAL: readers never block the sender; the
 * writes here, retry and cancel, are compare-and-set and wait for the
 * write lock with the store's busy timeout).
 *
 *   status            counts by state, each endpoint's health, certificates
 *                     that expire within 60 days
 *   list              messages, by state and/or notice
 *   show ID           a notice (revisions, each recipient) or a message
 *                     (every attempt, its receipt)
 *   retry MSGID       failed -> queued now, attempts kept, a new horizon (never
 *                     shorter, never before the release date has passed)
 *   cancel MSGID      queued, held or failed -> cancelled
 *   verify FILE       a stored message or receipt, with the configured trust
 *   export MSGID      the exact bytes sent (--message) or received (--receipt)
 *   audit verify      the hash chain and its recorded head
 *   report timeliness per prison and month (report.h)
 *
 * Exit codes (docs/OPERATOR_CLI.md): 0 ok; 1 not found, refused,
 * verification failed, audit trail not intact, or a store error; 2 usage
 * or configuration error. --json output is documented there and stable:
 * fields are added, never renamed or removed.
 */
#include "audit.h"
#include "backoff.h"
#include "config.h"
#include "daemons.h"
#include "err.h"
#include "fsutil.h"
#include "log.h"
#include "message.h"
#include "metrics.h"
#include "pki.h"
#include "receipt.h"
#include "report.h"
#include "signer.h"
#include "store.h"
#include "timeutil.h"
#include "verify.h"
#include "xmlread.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CERT_WARN_DAYS 60
#define TEXT_OF_(x) #x
#define TEXT_OF(x) TEXT_OF_(x)
#define REASON_MAX_TEXT TEXT_OF(STORE_REASON_MAX) /* "255", for the usage text */

struct operator_args {
	const char *config_path;
	const char *state;
	const char *notice_id;
	const char *target;   /* first operand */
	const char *operand2; /* second operand (audit verify, report timeliness) */
	const char *head;
	const char *from, *to;
	const char *reason;
	int json;
	int want_message, want_receipt;
	int late, weekend_release;
};

struct usage {
	const char *command;
	const char *text;
};

static const struct usage usages[] = {
	{ "status", "usage: gateway status --config FILE [--json]\n"
		    "  counts of messages by state; each endpoint's health (last success,\n"
		    "  consecutive failures, backlog); certificates in use that expire within\n"
		    "  60 days (or are unreadable)\n" },
	{ "list", "usage: gateway list --config FILE [--state S] [--notice ID] [--late]\n"
		  "       [--weekend-release] [--json]\n"
		  "  one line per message: id, notice, revision, service, recipient, state, reason\n"
		  "  states: queued sending delivered failed held superseded cancelled\n"
		  "  --late: messages of release notices still to come that are late (inside\n"
		  "  the lead time, not reached before it); --weekend-release: messages of\n"
		  "  notices flagged weekend-release whose date is today or later (Oslo)\n" },
	{ "show", "usage: gateway show --config FILE ID [--json]\n"
		  "  ID is a notice id (its revisions and each recipient's state) or a\n"
		  "  MessageId (the message, every attempt and its receipt)\n" },
	{ "retry", "usage: gateway retry --config FILE MSGID\n"
		   "  a failed message is queued again, due now, with a fresh retry horizon\n"
		   "  (never before the day after its release date, never shorter than before);\n"
		   "  its attempts are kept. Refused (exit 1) for a message in any other state.\n" },
	{ "cancel", "usage: gateway cancel --config FILE MSGID [--reason TEXT]\n"
		    "  a queued, held or failed message is cancelled and never sent. A message\n"
		    "  being sent or delivered cannot be cancelled (exit 1). TEXT is kept in\n"
		    "  the store and the audit trail: no personal data, at most " REASON_MAX_TEXT
		    " bytes (a\n"
		    "  letter outside plain ASCII, such as a Norwegian one, takes 2 or more);\n"
		    "  a longer TEXT is refused (exit 2).\n" },
	{ "verify", "usage: gateway verify --config FILE FILE\n"
		    "  re-verify a stored Message or Receipt (e.g. from gateway export or a\n"
		    "  partner's evidence) under the signature profile with the configured\n"
		    "  trust; prints the signer's organisation. Exit 0 verified, 1 not.\n" },
	{ "export", "usage: gateway export --config FILE MSGID --message|--receipt\n"
		    "  write the exact bytes sent (--message) or the receipt received\n"
		    "  (--receipt) to standard output\n" },
	{ "audit", "usage: gateway audit verify --config FILE [--head SEQ:HASH] [--json]\n"
		   "  walk the hash-chained audit trail and compare its end with the head\n"
		   "  recorded next to the database (or SEQ:HASH from the log's audit-head\n"
		   "  lines). Exit 0 intact, 1 not: the first row changed, removed or\n"
		   "  inserted is named.\n" },
	{ "report", "usage: gateway report timeliness --config FILE [--from YYYY-MM-DD]\n"
		    "       [--to YYYY-MM-DD] [--json]\n"
		    "  per prison and month of release: notices, recipients, reached at least\n"
		    "  the lead time before release, late, held for no consent, failed,\n"
		    "  weekend releases, median lead time (docs/OPERATOR_CLI.md defines each)\n" },
};

/*
 * The operand each command takes: none, one named (ID, MSGID, FILE), or one
 * fixed word (audit verify, report timeliness).
 */
struct operand_rule {
	const char *command;
	const char *name;  /* NULL: no operand */
	const char *word;  /* the operand must be this word */
};

static const struct operand_rule operand_rules[] = {
	{ "status", NULL, NULL },     { "list", NULL, NULL },
	{ "show", "ID", NULL },       { "retry", "MSGID", NULL },
	{ "cancel", "MSGID", NULL },  { "verify", "FILE", NULL },
	{ "export", "MSGID", NULL },  { "audit", "verify", "verify" },
	{ "report", "timeliness", "timeliness" },
};

/* What is wrong with the operands, said in one line; 0 when nothing. The
 * commands rely on it: each finds its operand there. */
static int check_operands(const char *command, const char *first, const char *second)
{
	for (size_t i = 0; i < sizeof(operand_rules) / sizeof(operand_rules[0]); i++) {
		const struct operand_rule *r = &operand_rules[i];

		if (strcmp(command, r->command) != 0)
			continue;
		if (!r->name && first) {
			fprintf(stderr, "gateway %s: unexpected argument '%s'\n", command, first);
			return -1;
		}
		if (r->name && !first) {
			fprintf(stderr, "gateway %s: %s is required\n", command, r->name);
			return -1;
		}
		if (r->word && strcmp(first, r->word) != 0) {
			fprintf(stderr, "gateway %s: '%s' is not known here (gateway %s %s)\n", command,
				first, command, r->word);
			return -1;
		}
		if (second) {
			fprintf(stderr, "gateway %s: unexpected argument '%s'\n", command, second);
			return -1;
		}
	}
	return 0;
}

static void operator_usage(const char *command, FILE *out)
{
	for (size_t i = 0; i < sizeof(usages) / sizeof(usages[0]); i++)
		if (strcmp(command, usages[i].command) == 0)
			fputs(usages[i].text, out);
}

static int parse_args(const char *command, int argc, char **argv, struct operator_args *args)
{
	static const struct option options[] = {
		{ "config", required_argument, NULL, 'c' }, { "state", required_argument, NULL, 's' },
		{ "notice", required_argument, NULL, 'n' }, { "json", no_argument, NULL, 'j' },
		{ "head", required_argument, NULL, 'H' },   { "from", required_argument, NULL, 'f' },
		{ "to", required_argument, NULL, 't' },     { "reason", required_argument, NULL, 'r' },
		{ "message", no_argument, NULL, 'm' },      { "receipt", no_argument, NULL, 'R' },
		{ "late", no_argument, NULL, 'L' },         { "weekend-release", no_argument, NULL, 'W' },
		{ "help", no_argument, NULL, 'h' },         { NULL, 0, NULL, 0 },
	};
	int opt;

	memset(args, 0, sizeof(*args));
	optind = 1;
	opterr = 1;
	while ((opt = getopt_long(argc, argv, "c:s:n:jh", options, NULL)) != -1) {
		switch (opt) {
		case 'c': args->config_path = optarg; break;
		case 's': args->state = optarg; break;
		case 'n': args->notice_id = optarg; break;
		case 'j': args->json = 1; break;
		case 'H': args->head = optarg; break;
		case 'f': args->from = optarg; break;
		case 't': args->to = optarg; break;
		case 'r': args->reason = optarg; break;
		case 'm': args->want_message = 1; break;
		case 'R': args->want_receipt = 1; break;
		case 'L': args->late = 1; break;
		case 'W': args->weekend_release = 1; break;
		case 'h': operator_usage(command, stdout); return 1;
		default: operator_usage(command, stderr); return -1;
		}
	}
	if (optind < argc)
		args->target = argv[optind++];
	if (optind < argc)
		args->operand2 = argv[optind++];
	if (optind < argc) {
		fprintf(stderr, "gateway %s: unexpected argument '%s'\n", command, argv[optind]);
		operator_usage(command, stderr);
		return -1;
	}
	if (check_operands(command, args->target, args->operand2) < 0) {
		operator_usage(command, stderr);
		return -1;
	}
	if (!args->config_path) {
		fprintf(stderr, "gateway %s: --config FILE is required\n", command);
		operator_usage(command, stderr);
		return -1;
	}
	return 0;
}

/* ---- output helpers ---- */

static void json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void json_key_string(const char *key, const char *value, bool comma)
{
	printf("%s\"%s\":", comma ? "," : "", key);
	json_string(value);
}

static void format_ms(int64_t ms, char *out, size_t len)
{
	if (ms <= 0) {
		snprintf(out, len, "-");
		return;
	}
	timeutil_format_utc(ms, out, len);
}

/* A time as JSON: "2026-11-20T09:15:02Z" or null. */
static void json_key_time(const char *key, int64_t ms, bool comma)
{
	char when[32];

	printf("%s\"%s\":", comma ? "," : "", key);
	if (ms <= 0) {
		printf("null");
		return;
	}
	timeutil_format_utc(ms, when, sizeof(when));
	json_string(when);
}

/* The words operators see: "held: no consent" rather than a bare state. */
static void state_label(enum msg_state state, const char *reason, char *out, size_t len)
{
	if (state == MSG_HELD && reason[0])
		snprintf(out, len, "held: %s", reason);
	else
		snprintf(out, len, "%s", store_state_name(state));
}

/* ---- set-up ---- */

struct session {
	struct gw_config *cfg;
	store *st;
};

static int open_session(const char *config_path, struct session *s)
{
	memset(s, 0, sizeof(*s));
	if (!(s->cfg = calloc(1, sizeof(*s->cfg)))) {
		fprintf(stderr, "gateway: out of memory\n");
		return 1;
	}
	if (config_load(s->cfg, config_path) < 0) {
		fprintf(stderr, "gateway: %s\n", gw_error_last());
		return 2;
	}
	if (!s->cfg->gateway.db[0]) {
		fprintf(stderr, "gateway: %s has no [gateway] db: the operator commands read the"
				" sender's store\n", config_path);
		return 2;
	}
	/* Opening would make an empty one, and an empty store says all is well. */
	if (access(s->cfg->gateway.db, F_OK) != 0) {
		fprintf(stderr, "gateway: no database at %s ([gateway] db in %s): has gateway send"
				" run with this configuration?\n", s->cfg->gateway.db, config_path);
		return 1;
	}
	if (store_sqlite_open(&s->st, s->cfg->gateway.db) < 0) {
		fprintf(stderr, "gateway: %s\n", gw_error_last());
		return 1;
	}
	return 0;
}

static void close_session(struct session *s)
{
	if (s->st)
		s->st->ops->close(s->st);
	free(s->cfg);
}

/* ---- list ---- */

struct list_ctx {
	int json;
	int rows;
};

static void json_message(const struct store_message *m)
{
	json_key_string("message_id", m->message_id, false);
	json_key_string("notice_id", m->notice_id, true);
	printf(",\"revision\":%d", m->revision);
	json_key_string("kind", m->kind, true);
	json_key_string("service", m->service, true);
	json_key_string("recipient_orgnr", m->recipient_orgnr, true);
	json_key_string("endpoint", m->endpoint, true);
	json_key_string("state", store_state_name(m->state), true);
	json_key_string("reason", m->reason, true);
	json_key_string("event_date", m->event_date, true);
	printf(",\"attempts\":%d", m->attempts);
	json_key_time("created", m->created_ms, true);
	json_key_time("next_attempt", m->state == MSG_QUEUED ? m->next_attempt_ms : 0, true);
	json_key_time("deadline", m->deadline_ms, true);
}

static int print_message_row(const struct store_message *m, void *opaque)
{
	struct list_ctx *ctx = opaque;
	char label[300];

	if (ctx->json) {
		printf("%s{", ctx->rows ? ",\n " : "[");
		json_message(m);
		printf("}");
	} else {
		state_label(m->state, m->reason, label, sizeof(label));
		printf("%-36s  %-20s %3d  %-8s %-9s  %-22s %s\n", m->message_id, m->notice_id,
		       m->revision, m->service, m->recipient_orgnr[0] ? m->recipient_orgnr : "-",
		       label, m->state == MSG_HELD ? "" : m->reason);
	}
	ctx->rows++;
	return 0;
}

/* --late (the metrics' rule) and --weekend-release narrow the rows further. */
struct flagged_ctx {
	const struct store_filter *filter;
	struct list_ctx *list;
};

static int print_late_row(const struct store_message *m, void *opaque)
{
	struct flagged_ctx *c = opaque;
	const struct store_filter *f = c->filter;

	if ((f->state >= 0 && (int)m->state != f->state) ||
	    (f->notice_id && strcmp(f->notice_id, m->notice_id) != 0))
		return 0;
	return print_message_row(m, c->list);
}

static int list_flagged(struct session *s, const struct operator_args *args,
			const struct store_filter *filter, struct list_ctx *list)
{
	struct flagged_ctx c = { filter, list };
	int64_t now = timeutil_now_ms();

	if (args->late)
		return metrics_late_messages(s->st, s->cfg, now, print_late_row, &c);
	return metrics_weekend_messages(s->st, filter, now, print_message_row, list);
}

static int cmd_list(struct session *s, const struct operator_args *args)
{
	struct store_filter filter = { -1, args->notice_id };
	struct list_ctx ctx = { args->json, 0 };
	enum msg_state state;
	int rc;

	if (args->state) {
		if (store_state_parse(args->state, &state) < 0) {
			fprintf(stderr, "gateway list: %s\n", gw_error_last());
			return 2;
		}
		filter.state = (int)state;
	}
	if (args->late && args->weekend_release) {
		fprintf(stderr, "gateway list: --late and --weekend-release go one at a time\n");
		return 2;
	}
	if (args->late || args->weekend_release)
		rc = list_flagged(s, args, &filter, &ctx);
	else
		rc = s->st->ops->messages_list(s->st, &filter, print_message_row, &ctx);
	if (rc < 0) {
		fprintf(stderr, "gateway list: %s\n", gw_error_last());
		return 1;
	}
	if (args->json)
		printf("%s\n", ctx.rows ? "]" : "[]");
	return 0;
}

/* ---- status ---- */

static int cmd_status(struct session *s, const struct operator_args *args)
{
	struct store_counts counts;
	struct report_cert *certs = NULL;
	size_t n_certs = 0;
	int shown = 0;

	if (s->st->ops->counts(s->st, &counts) < 0) {
		fprintf(stderr, "gateway status: %s\n", gw_error_last());
		return 1;
	}
	if (report_certificates(s->cfg, 0, &certs, &n_certs) < 0) {
		fprintf(stderr, "gateway status: %s\n", gw_error_last());
		return 1;
	}
	if (args->json) {
		printf("{\"counts\":{");
		for (int i = 0; i < MSG_STATE_COUNT; i++)
			printf("%s\"%s\":%lld", i ? "," : "", store_state_name((enum msg_state)i),
			       counts.by_state[i]);
		printf("},\n \"endpoints\":[");
	} else {
		printf("messages\n");
		for (int i = 0; i < MSG_STATE_COUNT; i++)
			printf("  %-11s %lld\n", store_state_name((enum msg_state)i), counts.by_state[i]);
		printf("endpoints\n");
	}
	for (size_t e = 0; e < s->cfg->n_endpoints; e++) {
		const struct config_endpoint *ep = &s->cfg->endpoints[e];
		struct store_endpoint_health h;
		char ok[32], last[32];

		if (s->st->ops->endpoint_health(s->st, ep->name, &h) < 0) {
			fprintf(stderr, "gateway status: %s\n", gw_error_last());
			free(certs);
			return 1;
		}
		if (args->json) {
			printf("%s{", e ? ",\n  " : "\n  ");
			json_key_string("name", ep->name, false);
			json_key_string("orgnr", ep->orgnr, true);
			printf(",\"queued\":%lld,\"sending\":%lld,\"failed\":%lld,\"held\":%lld", h.queued,
			       h.sending, h.failed, h.held);
			json_key_time("last_success", h.last_success_ms, true);
			json_key_time("last_attempt", h.last_attempt_ms, true);
			printf(",\"consecutive_failures\":%lld", h.consecutive_failures);
			json_key_string("last_error", h.last_error, true);
			printf("}");
			continue;
		}
		format_ms(h.last_success_ms, ok, sizeof(ok));
		format_ms(h.last_attempt_ms, last, sizeof(last));
		printf("  %-16s backlog %lld  last success %s  consecutive failures %lld"
		       "  failed %lld  held %lld\n",
		       ep->name, h.queued, h.last_success_ms ? ok : "never", h.consecutive_failures,
		       h.failed, h.held);
		if (h.consecutive_failures && h.last_error[0])
			printf("  %-16s last error (%s): %s\n", "", last, h.last_error);
	}
	if (args->json)
		printf("],\n \"certificates\":[");
	else
		printf("certificates expiring within %d days\n", CERT_WARN_DAYS);
	for (size_t i = 0; i < n_certs; i++) {
		const struct report_cert *c = &certs[i];

		if (!c->error[0] && c->days_left > CERT_WARN_DAYS)
			continue;
		if (args->json) {
			printf("%s{", shown ? ",\n  " : "\n  ");
			json_key_string("role", c->role, false);
			json_key_string("file", c->file, true);
			json_key_string("subject", c->subject, true);
			json_key_string("not_after", c->not_after, true);
			printf(",\"days_left\":%lld", c->days_left);
			json_key_string("error", c->error, true);
			printf("}");
		} else if (c->error[0]) {
			printf("  %-24s %s: %s\n", c->role, c->file, c->error);
		} else {
			printf("  %-24s %s  %s  %s, %lld days left\n", c->role, c->file, c->subject,
			       c->days_left < 0 ? "EXPIRED" : "expires", c->days_left);
		}
		shown++;
	}
	if (args->json)
		printf("]}\n");
	else if (!shown)
		printf("  none\n");
	free(certs);
	return 0;
}

/* ---- show ---- */

struct attempt_ctx {
	int json;
	int rows;
};

static int print_attempt(const struct store_attempt *a, void *opaque)
{
	struct attempt_ctx *ctx = opaque;
	char when[32];

	if (ctx->json) {
		printf("%s{", ctx->rows ? "," : "");
		json_key_time("started", a->started_ms, false);
		printf(",\"duration_ms\":%lld,\"http_status\":%d", (long long)a->duration_ms,
		       a->http_status);
		json_key_string("outcome", a->outcome, true);
		json_key_string("error", a->error, true);
		printf("}");
	} else {
		format_ms(a->started_ms, when, sizeof(when));
		printf("  attempt %s  %5lld ms  http %3d  %-9s %s\n", when,
		       (long long)a->duration_ms, a->http_status, a->outcome, a->error);
	}
	ctx->rows++;
	return 0;
}

static int show_message(struct session *s, const char *message_id, int json)
{
	struct store_message m = { 0 };
	struct store_receipt r = { 0 };
	struct attempt_ctx actx = { json, 0 };
	char label[300], when[32];
	int rc;

	if ((rc = s->st->ops->message_get(s->st, message_id, &m)) < 0)
		return rc;
	if (json) {
		printf("{\"type\":\"message\",\"message\":{");
		json_message(&m);
		json_key_string("digest_sha256_b64", m.digest_b64, true);
		printf(",\"signed_bytes\":%zu},\"attempts\":[", m.signed_bytes.len);
	} else {
		state_label(m.state, m.reason, label, sizeof(label));
		format_ms(m.created_ms, when, sizeof(when));
		printf("message   %s\nnotice    %s revision %d (%s)\nrecipient %s %s (endpoint %s)\n"
		       "state     %s\n",
		       m.message_id, m.notice_id, m.revision, m.kind, m.service,
		       m.recipient_orgnr[0] ? m.recipient_orgnr : "-",
		       m.endpoint[0] ? m.endpoint : "-", label);
		if (m.reason[0] && m.state != MSG_HELD)
			printf("reason    %s\n", m.reason);
		printf("created   %s\nattempts  %d\ndigest    %s\n", when, m.attempts,
		       m.digest_b64[0] ? m.digest_b64 : "-");
	}
	rc = s->st->ops->attempts_list(s->st, m.message_id, print_attempt, &actx);
	if (rc == 0) {
		rc = s->st->ops->receipt_get(s->st, m.message_id, &r);
		if (json) {
			printf("],\"receipt\":");
			if (rc == 0) {
				printf("{");
				json_key_string("status", r.status, false);
				json_key_string("reason_code", r.reason_code, true);
				printf(",\"verified\":%s", r.verified ? "true" : "false");
				json_key_time("received", r.received_ms, true);
				printf(",\"bytes\":%zu}", r.bytes.len);
			} else {
				printf("null");
			}
			printf("}\n");
		} else if (rc == 0) {
			format_ms(r.received_ms, when, sizeof(when));
			printf("receipt   %s%s%s, %s, received %s, %zu bytes\n", r.status,
			       r.reason_code[0] ? " " : "", r.reason_code,
			       r.verified ? "signature verified" : "NOT verified", when, r.bytes.len);
		} else {
			printf("receipt   none\n");
		}
		rc = rc == GW_ENOTFOUND ? 0 : rc;
	}
	store_receipt_clear(&r);
	store_message_clear(&m);
	return rc < 0 ? GW_ERROR : 0;
}

static int show_notice(struct session *s, const char *notice_id, int json)
{
	struct store_filter filter = { -1, notice_id };
	struct list_ctx ctx = { json, 0 };
	char sha[65];
	int latest = 0, rc;

	rc = s->st->ops->notice_latest(s->st, notice_id, &latest, sha);
	if (rc < 0)
		return rc;
	if (json) {
		printf("{\"type\":\"notice\"");
		json_key_string("notice_id", notice_id, true);
		printf(",\"revisions\":[");
	} else {
		printf("notice    %s\n", notice_id);
	}
	for (int rev = 1, shown = 0; rev <= latest; rev++) {
		struct store_notice n;
		char when[32];

		memset(&n, 0, sizeof(n));
		rc = s->st->ops->notice_get(s->st, notice_id, rev, &n);
		if (rc == GW_ENOTFOUND)
			continue;
		if (rc < 0)
			return rc;
		if (json) {
			printf("%s{\"revision\":%d", shown ? "," : "", n.revision);
			json_key_string("kind", n.kind, true);
			json_key_string("sender_orgnr", n.sender_orgnr, true);
			json_key_string("sender_unit", n.sender_unit, true);
			json_key_string("event_date", n.event_date, true);
			printf(",\"late_at_intake\":%s,\"weekend_release\":%s",
			       n.late_at_intake ? "true" : "false", n.weekend_release ? "true" : "false");
			json_key_time("received", n.received_ms, true);
			printf("}");
		} else {
			format_ms(n.received_ms, when, sizeof(when));
			printf("revision  %d %s %s, %s, received %s%s%s\n", n.revision, n.kind,
			       n.event_date[0] ? n.event_date : "(no date)", n.sender_unit, when,
			       n.late_at_intake ? ", LATE at intake" : "",
			       n.weekend_release ? ", weekend release" : "");
		}
		shown++;
	}
	if (json)
		printf("],\"messages\":");
	else
		printf("recipients\n");
	ctx.json = json;
	if (s->st->ops->messages_list(s->st, &filter, print_message_row, &ctx) < 0)
		return GW_ERROR;
	if (json)
		printf("%s}\n", ctx.rows ? "]" : "[]");
	return 0;
}

static int cmd_show(struct session *s, const struct operator_args *args)
{
	int rc;

	rc = show_message(s, args->target, args->json);
	if (rc == GW_ENOTFOUND)
		rc = show_notice(s, args->target, args->json);
	if (rc == GW_ENOTFOUND) {
		fprintf(stderr, "gateway show: no notice or message with id '%s'\n", args->target);
		return 1;
	}
	if (rc < 0) {
		fprintf(stderr, "gateway show: %s\n", gw_error_last());
		return 1;
	}
	return 0;
}

/* ---- retry and cancel ---- */

static void operator_detail(char *out, size_t len)
{
	snprintf(out, len, "by operator uid=%ld", (long)getuid());
}

/*
 * The horizon a retried message gets: intake's rule (backoff_horizon: now +
 * retry_horizon_days, never before the day after its release date has
 * passed), and never less than the horizon it had.
 */
static int retry_deadline(struct session *s, const char *message_id, int64_t now,
			  int64_t *deadline)
{
	struct store_message m;
	int rc;

	memset(&m, 0, sizeof(m));
	if ((rc = s->st->ops->message_get(s->st, message_id, &m)) < 0)
		return rc;
	*deadline = backoff_horizon(now, s->cfg->gateway.retry_horizon_days, m.event_date,
				    m.deadline_ms);
	store_message_clear(&m);
	return 0;
}

static int cmd_retry(struct session *s, const struct operator_args *args)
{
	int64_t now = timeutil_now_ms(), deadline = 0;
	char detail[64], until[32];
	int rc;

	operator_detail(detail, sizeof(detail));
	if ((rc = retry_deadline(s, args->target, now, &deadline)) == 0)
		rc = s->st->ops->message_retry(s->st, args->target, now, deadline, detail);
	if (rc < 0) {
		fprintf(stderr, "gateway retry: %s\n", gw_error_last());
		return 1;
	}
	timeutil_format_utc(deadline, until, sizeof(until));
	printf("message %s is queued again and due now; it will be retried until %s\n",
	       args->target, until);
	return 0;
}

/* A reason the store would refuse is a usage error: said before anything is touched. */
static bool cancel_reason_fits(const char *reason)
{
	size_t len = strlen(reason);

	if (len <= STORE_REASON_MAX)
		return true;
	fprintf(stderr,
		"gateway cancel: the reason is %zu bytes long, but at most %d bytes are kept (a"
		" letter outside plain ASCII, such as a Norwegian one, takes 2 or more). Shorten"
		" it; nothing was cancelled.\n",
		len, STORE_REASON_MAX);
	return false;
}

static int cmd_cancel(struct session *s, const struct operator_args *args)
{
	const char *reason = args->reason ? args->reason : "cancelled by an operator";
	char detail[64];

	if (!cancel_reason_fits(reason))
		return 2;
	operator_detail(detail, sizeof(detail));
	if (s->st->ops->message_cancel(s->st, args->target, reason, detail) < 0) {
		fprintf(stderr, "gateway cancel: %s\n", gw_error_last());
		return 1;
	}
	printf("message %s is cancelled and will not be sent\n", args->target);
	return 0;
}

/* ---- export ---- */

static int write_all(const unsigned char *data, size_t len)
{
	return fwrite(data, 1, len, stdout) == len && fflush(stdout) == 0 ? 0 : -1;
}

static int cmd_export(struct session *s, const struct operator_args *args)
{
	struct store_message m = { 0 };
	struct store_receipt r = { 0 };
	int rc = 0;

	if (args->want_message + args->want_receipt != 1) {
		fprintf(stderr, "gateway export: say which: --message or --receipt\n");
		operator_usage("export", stderr);
		return 2;
	}
	if (args->want_message) {
		if (s->st->ops->message_get(s->st, args->target, &m) < 0) {
			fprintf(stderr, "gateway export: %s\n", gw_error_last());
			rc = 1;
		} else if (!m.signed_bytes.len) {
			fprintf(stderr, "gateway export: message %s has no signed bytes (it is %s and"
					" was never signed)\n", args->target, store_state_name(m.state));
			rc = 1;
		} else if (write_all(m.signed_bytes.data, m.signed_bytes.len) < 0) {
			fprintf(stderr, "gateway export: cannot write to standard output\n");
			rc = 1;
		}
	} else {
		if (s->st->ops->receipt_get(s->st, args->target, &r) < 0) {
			fprintf(stderr, "gateway export: %s\n", gw_error_last());
			rc = 1;
		} else if (write_all(r.bytes.data, r.bytes.len) < 0) {
			fprintf(stderr, "gateway export: cannot write to standard output\n");
			rc = 1;
		}
	}
	store_message_clear(&m);
	store_receipt_clear(&r);
	return rc;
}

/* ---- verify ---- */

struct crypto {
	pki_trust *trust;
	verifier *ver;
};

static void crypto_close(struct crypto *c)
{
	verifier_free(c->ver);
	pki_trust_free(c->trust);
	memset(c, 0, sizeof(*c));
}

/*
 * A verifier over the anchors of an endpoint (NULL: the identity trust);
 * the identity CRLs always apply.
 */
static int crypto_open(struct crypto *c, const struct gw_config *cfg,
		       const struct config_endpoint *ep)
{
	const char *a[PKI_MAX_FILES], *crls[PKI_MAX_FILES];
	size_t n_anchors = ep ? ep->n_trust : cfg->identity.n_trust;

	for (size_t i = 0; i < n_anchors && i < PKI_MAX_FILES; i++)
		a[i] = ep ? ep->trust[i] : cfg->identity.trust[i];
	for (size_t i = 0; i < cfg->identity.n_crl; i++)
		crls[i] = cfg->identity.crl[i];
	if (pki_trust_new(&c->trust, a, n_anchors, crls, cfg->identity.n_crl) < 0 ||
	    verifier_new(&c->ver, c->trust) < 0)
		return GW_ERROR;
	return 0;
}

static int verify_message_doc(struct session *s, struct crypto *c, xmlDocPtr doc,
			      const gw_buf *bytes)
{
	struct verify_result vr = { { 0 }, NULL };
	struct store_message m = { 0 };
	struct msg_header h;
	char digest[45];
	int rc = 0;

	if (message_read_header(doc, &h) < 0 ||
	    crypto_open(c, s->cfg, NULL) < 0 ||
	    verifier_check(c->ver, doc, h.from_orgnr, &vr) < 0) {
		printf("message: NOT verified: %s\n", gw_error_last());
		return 1;
	}
	printf("message %s: verified: signed by organisation %s (from %s to %s, %s, notice %s"
	       " revision %d)\n",
	       h.message_id, vr.signer_orgnr, h.from_orgnr, h.to_orgnr, h.service, h.notice_id,
	       h.revision);
	if (receipt_digest(bytes->data, bytes->len, digest) == 0 &&
	    s->st->ops->message_get(s->st, h.message_id, &m) == 0) {
		if (strcmp(digest, m.digest_b64) == 0) {
			printf("store: these are the bytes stored and sent for message %s\n",
			       h.message_id);
		} else {
			printf("store: NOT the bytes stored for message %s (digest %s, stored %s)\n",
			       h.message_id, digest, m.digest_b64);
			rc = 1;
		}
	}
	store_message_clear(&m);
	return rc;
}

static int verify_receipt_doc(struct session *s, struct crypto *c, xmlDocPtr doc)
{
	struct verify_result vr = { { 0 }, NULL };
	struct store_message m = { 0 };
	struct receipt_info info;
	const struct config_endpoint *ep = NULL;
	bool verified = false;
	size_t tried = 0;
	int rc = 0;

	if (receipt_read(doc, &info) < 0) {
		printf("receipt: NOT verified: %s\n", gw_error_last());
		return 1;
	}
	/* The receiver's trust: the anchors of an endpoint with its organisation
	 * (any of them, when several share it), else the identity trust. */
	for (size_t i = 0; i <= s->cfg->n_endpoints; i++) {
		if (i < s->cfg->n_endpoints) {
			ep = &s->cfg->endpoints[i];
			if (strcmp(ep->orgnr, info.receiver_orgnr) != 0)
				continue;
			tried++;
		} else if (tried) {
			break;
		} else {
			ep = NULL;
		}
		crypto_close(c);
		if (crypto_open(c, s->cfg, ep) == 0 &&
		    verifier_check(c->ver, doc, info.receiver_orgnr, &vr) == 0) {
			verified = true;
			break;
		}
	}
	if (!verified) {
		printf("receipt: NOT verified: %s\n", gw_error_last());
		return 1;
	}
	printf("receipt for message %s: verified: signed by organisation %s, status %s%s%s,"
	       " received %s\n",
	       info.ref_message_id, vr.signer_orgnr, info.status, info.reason_code[0] ? " " : "",
	       info.reason_code, info.received);
	if (s->st->ops->message_get(s->st, info.ref_message_id, &m) == 0) {
		if (strcmp(info.digest_b64, m.digest_b64) == 0) {
			printf("store: it acknowledges exactly the bytes sent for message %s\n",
			       info.ref_message_id);
		} else {
			printf("store: it does NOT acknowledge the bytes sent for message %s\n",
			       info.ref_message_id);
			rc = 1;
		}
	}
	store_message_clear(&m);
	return rc;
}

static int cmd_verify(struct session *s, const struct operator_args *args)
{
	struct crypto c = { NULL, NULL };
	const char *schemas = s->cfg->identity.schemas;
	gw_buf bytes = GW_BUF_INIT;
	xmlDocPtr doc = NULL;
	xmlNodePtr root;
	enum xml_kind kind;
	int rc;

	if (xmlread_init() < 0 || dsig_init() < 0) {
		fprintf(stderr, "gateway verify: %s\n", gw_error_last());
		return 1;
	}
	if (!schemas[0]) {
		fprintf(stderr, "gateway verify: %s has no [identity] schemas: set it to the directory"
				" with notice.xsd, message.xsd and receipt.xsd\n", args->config_path);
		dsig_shutdown();
		return 2;
	}
	if (xmlread_schemas_load(schemas) < 0) {
		fprintf(stderr, "gateway verify: %s\n", gw_error_last());
		dsig_shutdown();
		return 2;
	}
	if (fsutil_read_file(args->target, XMLREAD_DEFAULT_MAX_BYTES, &bytes) < 0 ||
	    xmlread_parse(&doc, bytes.data, bytes.len, XMLREAD_DEFAULT_MAX_BYTES, args->target) < 0) {
		printf("%s: NOT verified: %s\n", args->target, gw_error_last());
		rc = 1;
		goto done;
	}
	root = xmlDocGetRootElement(doc);
	if (root && root->ns && xmlStrEqual(root->ns->href, BAD_CAST NS_ENVELOPE) &&
	    xmlStrEqual(root->name, BAD_CAST "Message")) {
		kind = XML_KIND_MESSAGE;
	} else if (root && root->ns && xmlStrEqual(root->ns->href, BAD_CAST NS_RECEIPT) &&
		   xmlStrEqual(root->name, BAD_CAST "Receipt")) {
		kind = XML_KIND_RECEIPT;
	} else {
		printf("%s: NOT verified: neither a Message nor a Receipt\n", args->target);
		rc = 1;
		goto done;
	}
	if (xmlread_validate(doc, kind) < 0) {
		printf("%s: NOT verified: %s\n", args->target, gw_error_last());
		rc = 1;
		goto done;
	}
	rc = kind == XML_KIND_MESSAGE ? verify_message_doc(s, &c, doc, &bytes)
				      : verify_receipt_doc(s, &c, doc);
done:
	xmlFreeDoc(doc);
	gw_buf_free(&bytes);
	crypto_close(&c);
	dsig_shutdown();
	return rc;
}

/* ---- audit verify ---- */

static int cmd_audit(struct session *s, const struct operator_args *args)
{
	struct audit_head given;
	struct audit_check c;
	char where[PATH_MAX + 64];
	int rc;

	if (args->head && audit_head_parse(args->head, &given) < 0) {
		fprintf(stderr, "gateway audit verify: %s\n", gw_error_last());
		return 2;
	}
	rc = audit_verify(s->st, args->head ? &given : NULL, &c, where, sizeof(where));
	if (rc < 0) {
		fprintf(stderr, "gateway audit verify: %s\n", gw_error_last());
		return 1;
	}
	if (args->json) {
		printf("{\"intact\":%s,\"rows\":%" PRId64, c.intact ? "true" : "false", c.rows);
		printf(",\"head\":{\"seq\":%" PRId64, c.last.seq);
		json_key_string("hash", c.last.seq ? c.last.hash : "", true);
		printf("}");
		json_key_string("checked_against", where, true);
		printf(",\"rows_after_head\":%" PRId64, c.beyond);
		if (c.intact)
			printf(",\"bad_row\":null,\"problem\":null}\n");
		else {
			printf(",\"bad_row\":%" PRId64, c.bad_seq);
			json_key_string("problem", c.problem, true);
			printf("}\n");
		}
	} else if (c.intact) {
		printf("audit trail intact: %" PRId64 " rows", c.rows);
		if (c.rows)
			printf(", head %" PRId64 ":%s", c.last.seq, c.last.hash);
		printf(" (end checked against %s)\n", where);
		if (c.beyond)
			printf("%" PRId64 " rows after the given head are not covered by it\n",
			       c.beyond);
	} else {
		printf("audit trail NOT intact: %s\n", c.problem);
	}
	return c.intact ? 0 : 1;
}

/* ---- report timeliness ---- */

static int cmd_report(struct session *s, const struct operator_args *args)
{
	struct report_timeliness_row *rows = NULL;
	size_t n = 0;
	int rc;

	if ((rc = report_timeliness(s->st, s->cfg, args->from, args->to, &rows, &n)) < 0) {
		fprintf(stderr, "gateway report timeliness: %s\n", gw_error_last());
		return rc == GW_EINVALID ? 2 : 1;
	}
	if (args->json)
		printf("[");
	else
		printf("%-24s %-7s %7s %10s %7s %6s %5s %10s %11s %6s %7s %9s %7s %11s\n", "prison",
		       "month", "notices", "recipients", "reached", "share", "late", "no-consent",
		       "held-other", "failed", "pending", "cancelled", "weekend", "median-lead");
	for (size_t i = 0; i < n; i++) {
		const struct report_timeliness_row *r = &rows[i];
		if (args->json) {
			printf("%s{", i ? ",\n " : "");
			json_key_string("sender_unit", r->sender_unit, false);
			json_key_string("month", r->month, true);
			printf(",\"notices\":%lld,\"recipients\":%lld,\"reached\":%lld,"
			       "\"reached_share\":%.4f,\"late\":%lld,\"held_no_consent\":%lld,"
			       "\"held_other\":%lld,\"failed\":%lld,\"pending\":%lld,"
			       "\"cancelled\":%lld,\"weekend_releases\":%lld,\"delivered\":%lld,"
			       "\"median_lead_days\":",
			       r->notices, r->recipients, r->reached, r->reached_share, r->late,
			       r->held_no_consent, r->held_other, r->failed, r->pending, r->cancelled,
			       r->weekend_releases, r->delivered);
			if (r->has_median)
				printf("%.1f}", r->median_lead_days);
			else
				printf("null}");
			continue;
		}
		char median[16];
		if (r->has_median)
			snprintf(median, sizeof(median), "%.1f", r->median_lead_days);
		else
			snprintf(median, sizeof(median), "-");
		printf("%-24.24s %-7s %7lld %10lld %7lld %5.1f%% %5lld %10lld %11lld %6lld %7lld %9lld"
		       " %7lld %11s\n",
		       r->sender_unit, r->month, r->notices, r->recipients, r->reached,
		       100.0 * r->reached_share, r->late, r->held_no_consent, r->held_other, r->failed,
		       r->pending, r->cancelled, r->weekend_releases, median);
	}
	if (args->json)
		printf("]\n");
	else if (!n)
		printf("(no release notices in the period)\n");
	free(rows);
	return 0;
}

/* ---- entry ---- */

struct handler {
	const char *command;
	int (*run)(struct session *s, const struct operator_args *args);
};

static const struct handler handlers[] = {
	{ "status", cmd_status }, { "list", cmd_list },     { "show", cmd_show },
	{ "retry", cmd_retry },   { "cancel", cmd_cancel }, { "verify", cmd_verify },
	{ "export", cmd_export }, { "audit", cmd_audit },   { "report", cmd_report },
};

int operator_main(const char *command, int argc, char **argv)
{
	struct operator_args args;
	struct session s;
	const struct handler *h = NULL;
	int rc;

	for (size_t i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++)
		if (strcmp(command, handlers[i].command) == 0)
			h = &handlers[i];
	if (!h) {
		fprintf(stderr, "gateway: '%s' is not an operator command\n", command);
		return 2;
	}
	rc = parse_args(command, argc, argv, &args);
	if (rc != 0)
		return rc > 0 ? 0 : 2;
	/* The store's audit-head lines are for the daemons' journal, not a terminal. */
	gw_log_set_level(GW_LOG_WARN);
	rc = open_session(args.config_path, &s);
	if (rc == 0)
		rc = h->run(&s, &args);
	close_session(&s);
	return rc;
}
