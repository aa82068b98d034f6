/*
 * main: the single executable `gateway`. A table of subcommands to the
 * module that owns each (smtpctl.c style); nothing else lives here.
 */
#include "daemons.h"

#include <stdio.h>
#include <string.h>
#ifdef GW_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

struct command {
	const char *name;
	const char *summary;
	int (*run)(const char *name, int argc, char **argv);
};

static int run_send(const char *name, int argc, char **argv)
{
	(void)name;
	return sender_main(argc, argv);
}

static int run_receive(const char *name, int argc, char **argv)
{
	(void)name;
	return receiver_main(argc, argv);
}

static int run_inbox(const char *name, int argc, char **argv)
{
	(void)name;
	return inbox_main(argc, argv);
}

/* Which malloc this binary runs on (CMake's GW_JEMALLOC), read from the allocator itself. */
static const char *allocator_name(void)
{
#ifdef GW_JEMALLOC
	static char name[64];
	const char *version = NULL;
	size_t len = sizeof(version);

	if (mallctl("version", &version, &len, NULL, 0) == 0 && version) {
		snprintf(name, sizeof(name), "jemalloc %s", version);
		return name;
	}
	return "jemalloc";
#else
	return "the C library's malloc";
#endif
}

static int run_version(const char *name, int argc, char **argv)
{
	(void)name;
	(void)argc;
	(void)argv;
	printf("gateway %s\n", GW_VERSION);
	printf("allocator: %s\n", allocator_name());
	return 0;
}

static const struct command commands[] = {
	{ "send", "run the gateway: take notices from the spool and deliver them", run_send },
	{ "receive", "run a partner's receiver: accept messages into an inbox", run_receive },
	{ "status", "counts by state, endpoint health, certificates expiring", operator_main },
	{ "list", "list messages [--state S] [--notice ID] [--json]", operator_main },
	{ "show", "show a notice or a message with its attempts and receipt", operator_main },
	{ "retry", "queue a failed message again: retry MSGID", operator_main },
	{ "cancel", "cancel a queued, held or failed message: cancel MSGID", operator_main },
	{ "verify", "re-verify a stored message or receipt file: verify FILE", operator_main },
	{ "export", "the exact bytes: export MSGID --message|--receipt", operator_main },
	{ "audit", "check the audit trail: audit verify", operator_main },
	{ "report", "report timeliness [--from DATE] [--to DATE] [--json]", operator_main },
	{ "inbox", "receiver evidence: inbox list | show | verify | export MSGID", run_inbox },
	{ "version", "print the version", run_version },
};

static void usage(FILE *out)
{
	fprintf(out, "usage: gateway COMMAND [options]   (gateway COMMAND --help for more)\n\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(commands[i].name, argc - 1, argv + 1);
	fprintf(stderr, "gateway: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
