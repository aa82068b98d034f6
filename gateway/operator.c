/*
 * operator: the read-mostly commands operators run against the gateway's
 * store: status (counts by state), list (messages, filterable, --json) and
 * show (a notice with each recipient's state, or a message with every
 * attempt and its receipt). Exit codes: 0 ok, 1 not found or failure,
 * 2 usage or configuration error.
 */
#include "config.h"
#include "daemons.h"
#include "err.h"
#include "store.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

struct operator_args {
	const char *config_path;
	const char *state;
	const char *notice_id;
	const char *target;
	int json;
};

static void operator_usage(const char *command, FILE *out)
{
	if (strcmp(command, "status") == 0)
		fprintf(out, "usage: gateway status --config FILE\n"
			     "  counts of messages by state\n");
	else if (strcmp(command, "list") == 0)
		fprintf(out, "usage: gateway list --config FILE [--state S] [--notice ID] [--json]\n"
			     "  one line per message: id, notice, revision, service, recipient, state, reason\n"
			     "  states: queued sending delivered failed held superseded cancelled\n");
	else
		fprintf(out, "usage: gateway show --config FILE ID\n"
			     "  ID is a notice id (each recipient's state) or a MessageId\n"
			     "  (the message, every attempt and its receipt)\n");
}

static int parse_args(const char *command, int argc, char **argv, struct operator_args *args)
{
	static const struct option options[] = {
		{ "config", required_argument, NULL, 'c' }, { "state", required_argument, NULL, 's' },
		{ "notice", required_argument, NULL, 'n' }, { "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },         { NULL, 0, NULL, 0 },
	};
	int opt;

	memset(args, 0, sizeof(*args));
	optind = 1;
	while ((opt = getopt_long(argc, argv, "c:s:n:jh", options, NULL)) != -1) {
		switch (opt) {
		case 'c': args->config_path = optarg; break;
		case 's': args->state = optarg; break;
		case 'n': args->notice_id = optarg; break;
		case 'j': args->json = 1; break;
		case 'h': operator_usage(command, stdout); return 1;
		default: operator_usage(command, stderr); return -1;
		}
	}
	if (optind < argc)
		args->target = argv[optind];
	if (!args->config_path) {
		fprintf(stderr, "gateway %s: --config FILE is required\n", command);
		return -1;
	}
	return 0;
}

static void print_json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void format_ms(int64_t ms, char *out, size_t len)
{
	time_t secs = (time_t)(ms / 1000);
	struct tm utc;

	if (ms <= 0) {
		snprintf(out, len, "-");
		return;
	}
	gmtime_r(&secs, &utc);
	strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &utc);
}

/* The words operators see: "held: no consent" rather than a bare state. */
static void state_label(const struct store_message *m, char *out, size_t len)
{
	if (m->state == MSG_HELD && m->reason[0])
		snprintf(out, len, "held: %s", m->reason);
	else
		snprintf(out, len, "%s", store_state_name(m->state));
}

struct list_ctx {
	int json;
	int rows;
};

static int print_message_row(const struct store_message *m, void *opaque)
{
	struct list_ctx *ctx = opaque;
	char label[300];

	state_label(m, label, sizeof(label));
	if (ctx->json) {
		printf("%s{\"message_id\":", ctx->rows ? ",\n " : "[");
		print_json_string(m->message_id);
		printf(",\"notice_id\":");
		print_json_string(m->notice_id);
		printf(",\"revision\":%d,\"kind\":", m->revision);
		print_json_string(m->kind);
		printf(",\"service\":");
		print_json_string(m->service);
		printf(",\"recipient_orgnr\":");
		print_json_string(m->recipient_orgnr);
		printf(",\"endpoint\":");
		print_json_string(m->endpoint);
		printf(",\"state\":");
		print_json_string(store_state_name(m->state));
		printf(",\"reason\":");
		print_json_string(m->reason);
		printf(",\"event_date\":");
		print_json_string(m->event_date);
		printf(",\"attempts\":%d}", m->attempts);
	} else {
		printf("%-36s  %-20s %3d  %-8s %-9s  %-22s %s\n", m->message_id, m->notice_id,
		       m->revision, m->service, m->recipient_orgnr[0] ? m->recipient_orgnr : "-",
		       label, m->state == MSG_HELD ? "" : m->reason);
	}
	ctx->rows++;
	return 0;
}

static int open_store(const char *config_path, store **st)
{
	static struct gw_config cfg;

	if (config_load(&cfg, config_path) < 0) {
		fprintf(stderr, "gateway: %s\n", gw_error_last());
		return 2;
	}
	if (store_sqlite_open(st, cfg.gateway.db) < 0) {
		fprintf(stderr, "gateway: %s\n", gw_error_last());
		return 1;
	}
	return 0;
}

static int cmd_status(store *st, const struct operator_args *args)
{
	struct store_counts counts;

	if (st->ops->counts(st, &counts) < 0) {
		fprintf(stderr, "gateway status: %s\n", gw_error_last());
		return 1;
	}
	if (args->json) {
		printf("{");
		for (int s = 0; s < MSG_STATE_COUNT; s++)
			printf("%s\"%s\":%lld", s ? "," : "", store_state_name((enum msg_state)s),
			       counts.by_state[s]);
		printf("}\n");
		return 0;
	}
	for (int s = 0; s < MSG_STATE_COUNT; s++)
		printf("%-11s %lld\n", store_state_name((enum msg_state)s), counts.by_state[s]);
	return 0;
}

static int cmd_list(store *st, const struct operator_args *args)
{
	struct store_filter filter = { -1, args->notice_id };
	struct list_ctx ctx = { args->json, 0 };
	enum msg_state state;

	if (args->state) {
		if (store_state_parse(args->state, &state) < 0) {
			fprintf(stderr, "gateway list: unknown state '%s'\n", args->state);
			return 2;
		}
		filter.state = (int)state;
	}
	if (st->ops->messages_list(st, &filter, print_message_row, &ctx) < 0) {
		fprintf(stderr, "gateway list: %s\n", gw_error_last());
		return 1;
	}
	if (args->json)
		printf("%s\n", ctx.rows ? "]" : "[]");
	return 0;
}

static int print_attempt(const struct store_attempt *a, void *opaque)
{
	char when[32];

	(void)opaque;
	format_ms(a->started_ms, when, sizeof(when));
	printf("  attempt %s  %5lld ms  http %3d  %-9s %s\n", when, (long long)a->duration_ms,
	       a->http_status, a->outcome, a->error);
	return 0;
}

static int show_message(store *st, const char *message_id)
{
	struct store_message m = { 0 };
	struct store_receipt r = { 0 };
	char label[300], when[32];
	int rc;

	if (st->ops->message_get(st, message_id, &m) < 0)
		return GW_ENOTFOUND;
	state_label(&m, label, sizeof(label));
	format_ms(m.created_ms, when, sizeof(when));
	printf("message   %s\nnotice    %s revision %d (%s)\nrecipient %s %s (endpoint %s)\n"
	       "state     %s\n",
	       m.message_id, m.notice_id, m.revision, m.kind, m.service,
	       m.recipient_orgnr[0] ? m.recipient_orgnr : "-", m.endpoint[0] ? m.endpoint : "-",
	       label);
	if (m.reason[0] && m.state != MSG_HELD)
		printf("reason    %s\n", m.reason);
	printf("created   %s\nattempts  %d\ndigest    %s\n", when, m.attempts,
	       m.digest_b64[0] ? m.digest_b64 : "-");
	st->ops->attempts_list(st, m.message_id, print_attempt, NULL);
	rc = st->ops->receipt_get(st, m.message_id, &r);
	if (rc == 0) {
		format_ms(r.received_ms, when, sizeof(when));
		printf("receipt   %s%s%s, %s, received %s, %zu bytes\n", r.status,
		       r.reason_code[0] ? " " : "", r.reason_code,
		       r.verified ? "signature verified" : "NOT verified", when, r.bytes.len);
	} else {
		printf("receipt   none\n");
	}
	store_receipt_clear(&r);
	store_message_clear(&m);
	return 0;
}

static int show_notice(store *st, const char *notice_id)
{
	struct store_filter filter = { -1, notice_id };
	struct list_ctx ctx = { 0, 0 };

	if (st->ops->messages_list(st, &filter, print_message_row, &ctx) < 0)
		return GW_ERROR;
	return ctx.rows ? 0 : GW_ENOTFOUND;
}

static int cmd_show(store *st, const struct operator_args *args)
{
	int rc;

	if (!args->target) {
		operator_usage("show", stderr);
		return 2;
	}
	rc = show_message(st, args->target);
	if (rc == GW_ENOTFOUND)
		rc = show_notice(st, args->target);
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

int operator_main(const char *command, int argc, char **argv)
{
	struct operator_args args;
	store *st = NULL;
	int rc = parse_args(command, argc, argv, &args);

	if (rc != 0)
		return rc > 0 ? 0 : 2;
	rc = open_store(args.config_path, &st);
	if (rc != 0)
		return rc;
	if (strcmp(command, "status") == 0)
		rc = cmd_status(st, &args);
	else if (strcmp(command, "list") == 0)
		rc = cmd_list(st, &args);
	else
		rc = cmd_show(st, &args);
	st->ops->close(st);
	return rc;
}
