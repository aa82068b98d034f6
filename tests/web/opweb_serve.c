/*
 * opweb_serve: the operator port (opweb.c) on its own, over an existing
 * gateway store, for tests/integration/it_web.sh and tests/web/browser_test.sh
 * until `gateway send` serves it. Test tool, not installed.
 *
 *   opweb_serve --config FILE [--db PATH] [--listen HOST:PORT] [--port-file F]
 *               [--tls-cert F --tls-key F --client-ca F] [--timeout S]
 *               [--max-seconds N]
 *
 * The configuration gives the store (unless --db), the endpoints (lead days)
 * and the certificates the metrics report on. Counters start at zero: no
 * delivery runs here. Stops on SIGTERM/SIGINT or after --max-seconds.
 */
#include "config.h"
#include "err.h"
#include "log.h"
#include "metrics.h"
#include "opweb.h"
#include "store.h"

#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

static int split_listen(char *text, const char **host, int *port)
{
	char *colon = strrchr(text, ':');
	char *end;
	long v;

	if (!colon)
		return -1;
	*colon = '\0';
	v = strtol(colon + 1, &end, 10);
	if (*end || v < 0 || v > 65535)
		return -1;
	*host = text;
	if (text[0] == '[' && colon > text && colon[-1] == ']') { /* [::1]:9464 */
		colon[-1] = '\0';
		*host = text + 1;
	}
	*port = (int)v;
	return 0;
}

int main(int argc, char **argv)
{
	static struct gw_config cfg;
	struct opweb_options o;
	const char *config = NULL, *db = NULL, *port_file = NULL;
	char listen[300] = "127.0.0.1:0";
	long max_seconds = 0;
	struct event_base *base = NULL;
	struct event *ev_term = NULL, *ev_int = NULL, *ev_limit = NULL;
	struct metrics *m = NULL;
	opweb *w = NULL;
	store *st = NULL;
	int rc = 1;

	memset(&o, 0, sizeof(o));
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v) {
			fprintf(stderr, "opweb_serve: %s needs a value\n", a);
			return 2;
		}
		i++;
		if (!strcmp(a, "--config")) config = v;
		else if (!strcmp(a, "--db")) db = v;
		else if (!strcmp(a, "--listen")) snprintf(listen, sizeof(listen), "%s", v);
		else if (!strcmp(a, "--port-file")) port_file = v;
		else if (!strcmp(a, "--tls-cert")) o.tls_cert = v;
		else if (!strcmp(a, "--tls-key")) o.tls_key = v;
		else if (!strcmp(a, "--client-ca")) o.client_ca = v;
		else if (!strcmp(a, "--timeout")) o.timeout_seconds = atoi(v);
		else if (!strcmp(a, "--max-seconds")) max_seconds = atol(v);
		else {
			fprintf(stderr, "opweb_serve: unknown option %s\n", a);
			return 2;
		}
	}
	if (!config || split_listen(listen, &o.host, &o.port) < 0) {
		fprintf(stderr, "usage: opweb_serve --config FILE [--db PATH] [--listen HOST:PORT]"
				" [--port-file F] [--tls-cert F --tls-key F --client-ca F]"
				" [--timeout S] [--max-seconds N]\n");
		return 2;
	}
	if (config_load(&cfg, config) < 0) {
		fprintf(stderr, "opweb_serve: %s\n", gw_error_last());
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (store_sqlite_open(&st, db ? db : cfg.gateway.db) < 0 || metrics_new(&m) < 0 ||
	    !(base = event_base_new())) {
		fprintf(stderr, "opweb_serve: %s\n", gw_error_last());
		goto out;
	}
	o.st = st;
	o.cfg = &cfg;
	o.metrics = m;
	if (opweb_start(&w, base, &o) < 0) {
		fprintf(stderr, "opweb_serve: %s\n", gw_error_last());
		rc = 2;
		goto out;
	}
	ev_term = evsignal_new(base, SIGTERM, on_stop, base);
	ev_int = evsignal_new(base, SIGINT, on_stop, base);
	ev_limit = evtimer_new(base, on_stop, base);
	if (!ev_term || !ev_int || !ev_limit || event_add(ev_term, NULL) < 0 ||
	    event_add(ev_int, NULL) < 0)
		goto out;
	if (max_seconds > 0) {
		struct timeval tv = { max_seconds, 0 };
		evtimer_add(ev_limit, &tv);
	}
	if (port_file) {
		char tmp[4096];
		FILE *f;

		snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
		if (!(f = fopen(tmp, "w")) || fprintf(f, "%d\n", opweb_port(w)) < 0 || fclose(f) != 0 ||
		    rename(tmp, port_file) != 0) {
			fprintf(stderr, "opweb_serve: cannot write %s\n", port_file);
			goto out;
		}
	}
	rc = event_base_dispatch(base) < 0 ? 1 : 0;
out:
	opweb_free(w);
	if (ev_term)
		event_free(ev_term);
	if (ev_int)
		event_free(ev_int);
	if (ev_limit)
		event_free(ev_limit);
	if (base)
		event_base_free(base);
	metrics_free(m);
	if (st)
		st->ops->close(st);
	return rc;
}
