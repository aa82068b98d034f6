/*
 * test_config: the INI configuration. A full file with every key, the
 * defaults, relative path resolution, each validation error with the exact
 * file/line/key message an operator sees, the shipped samples in docs/, and
 * the endpoint resolution rules.
 */
#include "testutil.h"
#include "config.h"
#include "err.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Lines 1-5 of most texts below. */
#define IDENTITY                 \
	"[identity]\n"           \
	"orgnr = 974760673\n"    \
	"key = gw.key\n"         \
	"cert = gw.pem\n"        \
	"trust = ca.pem\n"

/* A minimal valid endpoint, header on the line it is placed. */
#define ENDPOINT(name)                              \
	"[endpoint " name "]\n"                     \
	"orgnr = 964338531\n"                       \
	"services = nav\n"                          \
	"url = https://nav.example:8443/notices\n"

static struct gw_config *new_config(void)
{
	struct gw_config *cfg = calloc(1, sizeof(*cfg));

	assert_non_null(cfg);
	return cfg;
}

static struct gw_config *parse_ok(const char *text, const char *base_dir)
{
	struct gw_config *cfg = new_config();

	if (config_parse(cfg, text, base_dir) != 0)
		fail_msg("should parse: %s", gw_error_last());
	return cfg;
}

/* ---- a full file ------------------------------------------------------- */

static const char full_text[] =
	"; a full configuration with every key\n"           /* 1 */
	"[identity]\n"                                       /* 2 */
	"orgnr = 974760673\n"                                /* 3 */
	"key = keys/gateway.key      ; mode 0600\n"          /* 4 */
	"cert = /etc/ng/gateway.pem\n"                       /* 5 */
	"trust = ca-a.pem ca-b.pem\n"                        /* 6 */
	"trust = ca-c.pem\n"                                 /* 7 */
	"crl = a.crl\n"                                      /* 8 */
	"crl = b.crl, c.crl\n"                               /* 9 */
	"test_nins = yes\n"                                  /* 10 */
	"log_level = debug\n"                                /* 11 */
	"schemas = ../schemas\n"                             /* 12 */
	"\n"                                                 /* 13 */
	"[gateway]\n"                                        /* 14 */
	"spool = /var/spool/ng\n"                            /* 15 */
	"db = state/gateway.db\n"                            /* 16 */
	"pseudonym_key = secret.key\n"                       /* 17 */
	"max_notice_bytes = 2097152\n"                       /* 18 */
	"retry_base = 60\n"                                  /* 19 */
	"retry_cap = 7200\n"                                 /* 20 */
	"retry_horizon_days = 21\n"                          /* 21 */
	"max_connections = 32\n"                             /* 22 */
	"processed_keep_days = 90\n"                         /* 23 */
	"\n"                                                 /* 24 */
	"# NAV Oslo takes housing and nav for two municipalities\n"
	"[endpoint nav-oslo]\n"
	"    orgnr = 964338531\n"
	"    services = housing nav\n"
	"    municipalities = 0301 0302\n"
	"    url = https://nav.example:8443/notices\n"
	"    trust = partner-ca.pem\n"
	"    server_orgnr = 923609016\n"
	"    consent = required\n"
	"    encrypt_cert = nav-enc-old.pem nav-enc-new.pem\n"
	"    lead_days = 21\n"
	"    max_connections = 8\n"
	"\n"
	"[endpoint prison.bergen]\n"
	"orgnr = 971526920\n"
	"services = prison\n"
	"url = https://kdi.example/notices;v=1\n"
	"consent = not-required\n"
	"\n"
	"[receiver]\n"
	"listen = [::1]:9443\n"
	"inbox = inbox\n"
	"db = /var/lib/ng/receiver.db\n"
	"allow = 974760673 971526920\n"
	"allow = 889640782\n"
	"decrypt_key = old.key new.key\n"
	"window_days = 3\n"
	"max_body = 65536\n"
	"read_timeout = 5\n"
	"max_connections = 128\n"
	"workers = 4\n";

static void test_full_file(void **state)
{
	struct gw_config *cfg = parse_ok(full_text, "/etc/ng");
	const struct config_endpoint *nav, *prison;

	assert_string_equal(cfg->identity.orgnr, "974760673");
	assert_string_equal(cfg->identity.key, "/etc/ng/keys/gateway.key");
	assert_string_equal(cfg->identity.cert, "/etc/ng/gateway.pem");
	assert_int_equal(cfg->identity.n_trust, 3);
	assert_string_equal(cfg->identity.trust[0], "/etc/ng/ca-a.pem");
	assert_string_equal(cfg->identity.trust[1], "/etc/ng/ca-b.pem");
	assert_string_equal(cfg->identity.trust[2], "/etc/ng/ca-c.pem");
	assert_int_equal(cfg->identity.n_crl, 3);
	assert_string_equal(cfg->identity.crl[2], "/etc/ng/c.crl");
	assert_true(cfg->identity.test_nins);
	assert_string_equal(cfg->identity.log_level, "debug");
	assert_string_equal(cfg->identity.schemas, "/etc/ng/../schemas");

	assert_string_equal(cfg->gateway.spool, "/var/spool/ng");
	assert_string_equal(cfg->gateway.db, "/etc/ng/state/gateway.db");
	assert_string_equal(cfg->gateway.pseudonym_key, "/etc/ng/secret.key");
	assert_int_equal(cfg->gateway.max_notice_bytes, 2097152);
	assert_int_equal(cfg->gateway.retry_base, 60);
	assert_int_equal(cfg->gateway.retry_cap, 7200);
	assert_int_equal(cfg->gateway.retry_horizon_days, 21);
	assert_int_equal(cfg->gateway.max_connections, 32);
	assert_int_equal(cfg->gateway.processed_keep_days, 90);

	assert_int_equal(cfg->n_endpoints, 2);
	nav = config_endpoint_by_name(cfg, "nav-oslo");
	assert_ptr_equal(nav, &cfg->endpoints[0]);
	assert_string_equal(nav->orgnr, "964338531");
	assert_int_equal(nav->services, (1u << SVC_HOUSING) | (1u << SVC_NAV));
	assert_int_equal(nav->n_municipalities, 2);
	assert_string_equal(nav->municipalities[0], "0301");
	assert_string_equal(nav->municipalities[1], "0302");
	assert_string_equal(nav->url, "https://nav.example:8443/notices");
	assert_int_equal(nav->n_trust, 1);
	assert_string_equal(nav->trust[0], "/etc/ng/partner-ca.pem");
	assert_string_equal(nav->server_orgnr, "923609016");
	assert_true(nav->consent_required);
	assert_int_equal(nav->n_encrypt_cert, 2);
	assert_string_equal(nav->encrypt_cert[1], "/etc/ng/nav-enc-new.pem");
	assert_int_equal(nav->lead_days, 21);
	assert_int_equal(nav->max_connections, 8);

	prison = config_endpoint_by_name(cfg, "prison.bergen");
	assert_non_null(prison);
	assert_int_equal(prison->services, 1u << SVC_PRISON);
	assert_string_equal(prison->url, "https://kdi.example/notices;v=1");
	assert_false(prison->consent_required);
	/* Defaults after parse: server_orgnr from orgnr, trust from [identity]. */
	assert_string_equal(prison->server_orgnr, "971526920");
	assert_int_equal(prison->n_trust, 3);
	assert_string_equal(prison->trust[1], "/etc/ng/ca-b.pem");
	assert_int_equal(prison->n_municipalities, 0);
	assert_int_equal(prison->n_encrypt_cert, 0);
	assert_int_equal(prison->lead_days, 14);
	assert_int_equal(prison->max_connections, 16);

	assert_string_equal(cfg->receiver.listen_host, "::1");
	assert_int_equal(cfg->receiver.listen_port, 9443);
	assert_string_equal(cfg->receiver.inbox, "/etc/ng/inbox");
	assert_string_equal(cfg->receiver.db, "/var/lib/ng/receiver.db");
	assert_int_equal(cfg->receiver.n_allow, 3);
	assert_string_equal(cfg->receiver.allow[2], "889640782");
	assert_int_equal(cfg->receiver.n_decrypt_key, 2);
	assert_string_equal(cfg->receiver.decrypt_key[0], "/etc/ng/old.key");
	assert_int_equal(cfg->receiver.window_days, 3);
	assert_int_equal(cfg->receiver.max_body, 65536);
	assert_int_equal(cfg->receiver.read_timeout, 5);
	assert_int_equal(cfg->receiver.max_connections, 128);
	assert_int_equal(cfg->receiver.workers, 4);
	free(cfg);

	/* Port 0: an ephemeral port, as the test lab uses with --port-file. */
	cfg = parse_ok(IDENTITY "[receiver]\nlisten = 127.0.0.1:0\ninbox = i\ndb = d\n"
			"allow = 974760673\n", "/d");
	assert_string_equal(cfg->receiver.listen_host, "127.0.0.1");
	assert_int_equal(cfg->receiver.listen_port, 0);
	free(cfg);
}

static void test_defaults(void **state)
{
	struct gw_config *cfg = parse_ok(IDENTITY ENDPOINT("nav"), "/d");
	const struct config_endpoint *ep = &cfg->endpoints[0];

	assert_false(cfg->identity.test_nins);
	assert_string_equal(cfg->identity.log_level, "info");
	assert_string_equal(cfg->identity.schemas, ""); /* the caller decides */
	assert_int_equal(cfg->identity.n_crl, 0);
	assert_int_equal(cfg->gateway.max_notice_bytes, 1048576);
	assert_int_equal(cfg->gateway.retry_base, 30);
	assert_int_equal(cfg->gateway.retry_cap, 3600);
	assert_int_equal(cfg->gateway.retry_horizon_days, 14);
	assert_int_equal(cfg->gateway.max_connections, 64);
	assert_int_equal(cfg->gateway.processed_keep_days, 30);
	assert_string_equal(cfg->gateway.operator_host, "127.0.0.1"); /* loopback */
	assert_int_equal(cfg->gateway.operator_port, 9464);
	assert_int_equal(cfg->gateway.operator_timeout, 10);
	assert_string_equal(cfg->gateway.spool, ""); /* no [gateway] section */
	assert_true(ep->consent_required);
	assert_int_equal(ep->lead_days, 14);
	assert_int_equal(ep->max_connections, 16);
	assert_string_equal(ep->server_orgnr, "964338531");
	assert_int_equal(ep->n_trust, 1);
	assert_string_equal(ep->trust[0], "/d/ca.pem");
	assert_int_equal(cfg->receiver.window_days, 7);
	assert_int_equal(cfg->receiver.max_body, 1048576);
	assert_int_equal(cfg->receiver.read_timeout, 10);
	assert_int_equal(cfg->receiver.max_connections, 64);
	assert_int_equal(cfg->receiver.workers, 2);

	/* config_defaults alone gives the same numbers. */
	config_defaults(cfg);
	assert_int_equal(cfg->gateway.retry_cap, 3600);
	assert_int_equal(cfg->n_endpoints, 0);
	assert_string_equal(cfg->identity.log_level, "info");
	free(cfg);
}

#define GATEWAY_MIN "[gateway]\nspool = s\ndb = d\npseudonym_key = p\n"

static void test_operator_port_keys(void **state)
{
	struct gw_config *cfg;

	cfg = parse_ok(IDENTITY GATEWAY_MIN "operator_listen = [::1]:0\n"
		       "operator_cert = op.pem\noperator_key = op.key\n"
		       "operator_client_ca = ops-ca.pem\noperator_timeout = 30\n", "/d");
	assert_string_equal(cfg->gateway.operator_host, "::1");
	assert_int_equal(cfg->gateway.operator_port, 0);
	assert_string_equal(cfg->gateway.operator_cert, "/d/op.pem");
	assert_string_equal(cfg->gateway.operator_key, "/d/op.key");
	assert_string_equal(cfg->gateway.operator_client_ca, "/d/ops-ca.pem");
	assert_int_equal(cfg->gateway.operator_timeout, 30);
	free(cfg);

	cfg = parse_ok(IDENTITY GATEWAY_MIN "operator_listen = off\n", "/d");
	assert_string_equal(cfg->gateway.operator_host, ""); /* disabled */
	free(cfg);

	cfg = new_config();
	assert_int_equal(config_parse(cfg, IDENTITY GATEWAY_MIN "operator_listen = 9464\n", "/d"),
			 GW_EINVALID);
	assert_non_null(strstr(gw_error_last(),
			       "line 10: [gateway] operator_listen '9464' must be host:port"));
	/* "off" is for optional listeners only: a receiver must listen. */
	assert_int_equal(config_parse(cfg, IDENTITY "[receiver]\nlisten = off\n", "/d"), GW_EINVALID);
	assert_non_null(strstr(gw_error_last(), "listen 'off' must be host:port"));
	free(cfg);
}

static void test_syntax_conveniences(void **state)
{
	/* BOM, CRLF, indented keys, '#' and ';' comments, ':' as separator. */
	struct gw_config *cfg = parse_ok("\xef\xbb\xbf# comment\r\n"
					 "  [identity]  ; trailing comment\r\n"
					 "\torgnr = 974760673 ; the gateway\r\n"
					 "  key: gw.key\r\n"
					 "  cert = gw.pem\r\n"
					 "  trust = ca.pem\r\n"
					 "\r\n"
					 "; the end\r\n",
					 NULL);

	assert_string_equal(cfg->identity.orgnr, "974760673");
	assert_string_equal(cfg->identity.key, "gw.key"); /* no base: as written */
	assert_string_equal(cfg->identity.trust[0], "ca.pem");
	free(cfg);

	/* A repeated list entry is kept once. */
	cfg = parse_ok(IDENTITY "trust = ca.pem\n" ENDPOINT("a") "municipalities = 0301 0301\n",
		       "/d");
	assert_int_equal(cfg->identity.n_trust, 1);
	assert_int_equal(cfg->endpoints[0].n_municipalities, 1);
	free(cfg);
}

/* ---- errors ------------------------------------------------------------ */

static const struct {
	const char *text;
	const char *message;
} error_cases[] = {
	{ "[identity]\norgnr = 123\n",
	  "configuration line 2: [identity] orgnr '123' is not a valid organisation number" },
	{ IDENTITY "[endpoint nav-oslo]\norgnr = 123\n",
	  "configuration line 7: [endpoint nav-oslo] orgnr '123' is not a valid organisation "
	  "number" },
	{ IDENTITY ENDPOINT("nav-oslo") "server_orgnr = 964338532\n",
	  "line 10: [endpoint nav-oslo] server_orgnr '964338532' is not a valid organisation "
	  "number" },
	{ IDENTITY "[gateway]\nspoool = /x\n", "line 7: [gateway] has no key 'spoool'" },
	{ IDENTITY "[sender]\n", "line 6: unknown section [sender] (use [identity], [gateway], "
				 "[endpoint NAME] or [receiver])" },
	{ IDENTITY "[Identity]\n", "line 6: unknown section [Identity]" },
	{ "orgnr = 974760673\n" IDENTITY, "line 1: 'orgnr' comes before any section" },
	{ IDENTITY ENDPOINT("nav-oslo") "municipalities = 0301 301\n",
	  "line 10: [endpoint nav-oslo] municipalities '301' is not a municipality number "
	  "(4 digits, 0101 to 9999)" },
	{ IDENTITY ENDPOINT("nav-oslo") "services = housing jail\n",
	  "line 10: [endpoint nav-oslo] services 'jail' is not a service (use housing, nav, "
	  "health, school or prison)" },
	{ IDENTITY "[endpoint nav-oslo]\norgnr = 964338531\nservices = nav\n"
		   "url = http://nav.example/notices\n",
	  "line 9: [endpoint nav-oslo] url 'http://nav.example/notices' must start with "
	  "https://" },
	{ IDENTITY "[endpoint a]\nurl = https:///notices\n",
	  "line 7: [endpoint a] url 'https:///notices' is not a usable URL" },
	{ IDENTITY "[endpoint a]\nurl = https://a b/\n", "is not a usable URL" },
	{ IDENTITY "[gateway]\nretry_base = 0\n",
	  "line 7: [gateway] retry_base '0' must be a whole number from 1 to 86400" },
	{ IDENTITY "[gateway]\nretry_base = 30s\n",
	  "[gateway] retry_base '30s' must be a whole number" },
	{ IDENTITY "[gateway]\nmax_connections = -1\n",
	  "[gateway] max_connections '-1' must be a whole number from 1 to 1024" },
	{ IDENTITY "[gateway]\nmax_notice_bytes = 99999999999999999999\n",
	  "[gateway] max_notice_bytes '99999999999999999999' must be a whole number from 1024 "
	  "to 67108864" },
	{ IDENTITY ENDPOINT("a") "lead_days = 366\n",
	  "line 10: [endpoint a] lead_days '366' must be a whole number from 0 to 365" },
	{ IDENTITY "[receiver]\nwindow_days = 0\n",
	  "[receiver] window_days '0' must be a whole number from 1 to 365" },
	{ IDENTITY "[receiver]\nmax_body = 100\n", "[receiver] max_body '100' must be" },
	{ IDENTITY "[receiver]\nworkers = 65\n", "[receiver] workers '65' must be" },
	{ IDENTITY "[gateway]\nspool = s\ndb = d\npseudonym_key = k\nretry_cap = 10\n",
	  "line 6: [gateway] retry_cap (10) is smaller than retry_base (30)" },
	{ IDENTITY ENDPOINT("nav-oslo") ENDPOINT("nav-oslo"),
	  "line 10: [endpoint nav-oslo] is defined twice (first at line 6)" },
	{ IDENTITY "[identity]\n", "line 6: [identity] appears twice (first at line 1)" },
	{ IDENTITY "cert = other.pem\n", "line 6: [identity] cert is given twice (first at line 4)" },
	{ "[identity]\norgnr = 974760673\nkey =\n", "line 3: [identity] key has no value" },
	{ IDENTITY "[receiver]\nallow = , ,\n", "line 7: [receiver] allow has no value" },
	{ IDENTITY "[endpoint nav-oslo]\norgnr = 964338531\nservices = nav\n[gateway]\n",
	  "line 6: [endpoint nav-oslo] has no url" },
	{ IDENTITY "[endpoint nav-oslo]\norgnr = 964338531\nservices = nav\n",
	  "line 6: [endpoint nav-oslo] has no url" },
	{ "[gateway]\nspool = s\ndb = d\npseudonym_key = k\n",
	  "configuration: the [identity] section is missing" },
	{ "[identity]\norgnr = 974760673\nkey = k\n", "line 1: [identity] has no cert" },
	{ IDENTITY "[gateway]\nspool = s\ndb = d\n", "line 6: [gateway] has no pseudonym_key" },
	{ IDENTITY "[endpoint]\n", "line 6: [endpoint] needs a name: [endpoint NAME]" },
	{ IDENTITY "[endpoint nav/oslo]\n", "line 6: [endpoint nav/oslo]: an endpoint name is" },
	{ IDENTITY "[endpoint -nav]\n", "an endpoint name is 1 to 40" },
	{ IDENTITY "[endpoint a234567890123456789012345678901234567890x]\n",
	  "an endpoint name is 1 to 40" },
	{ IDENTITY "just some words\n",
	  "line 6: expected 'key = value', a [section] header or a comment" },
	{ IDENTITY "[gateway\n", "line 6: a section header needs a closing ']'" },
	{ IDENTITY "test_nins = maybe\n", "line 6: [identity] test_nins 'maybe' must be true or false" },
	{ IDENTITY "log_level = loud\n", "[identity] log_level 'loud' is not a log level" },
	{ IDENTITY ENDPOINT("a") "consent = sometimes\n",
	  "line 10: [endpoint a] consent 'sometimes' must be required or not-required" },
	{ IDENTITY "[receiver]\nlisten = 8443\n", "line 7: [receiver] listen '8443' must be host:port" },
	{ IDENTITY "[receiver]\nlisten = localhost:\n", "listen 'localhost:' must be host:port" },
	{ IDENTITY "[receiver]\nlisten = localhost:70000\n", "must be host:port" },
	{ IDENTITY "[receiver]\nlisten = ::1:8443\n", "must be host:port" },
	{ IDENTITY "[receiver]\nlisten = :8443\n", "must be host:port" },
	{ IDENTITY "[receiver]\nlisten = localhost:-1\n", "must be host:port" },
	{ IDENTITY "[receiver]\nlisten = [::1:8443\n", "must be host:port" },
	{ IDENTITY "[receiver]\nlisten = 127.0.0.1:8443\ninbox = i\ndb = d\n",
	  "line 6: [receiver] has no allow" },
	{ IDENTITY "[receiver]\nallow = 974760673 12345\n",
	  "line 7: [receiver] allow '12345' is not a valid organisation number" },
	{ "[identity]\norgnr = 974760673\nkey = k\ncert = c\n"
	  "[receiver]\nlisten = 127.0.0.1:8443\ninbox = i\ndb = d\nallow = 974760673\n",
	  "line 5: [receiver] needs trust anchors" },
	{ "[identity]\norgnr = 974760673\nkey = k\ncert = c\n" ENDPOINT("nav"),
	  "line 5: [endpoint nav] has no trust anchor: give trust here or in [identity]" },
	{ IDENTITY "trust = 2 3 4 5 6 7 8 9\n", "line 6: [identity] trust lists more than 8 entries" },
	{ IDENTITY ENDPOINT("a") "encrypt_cert = a.pem b.pem c.pem\n",
	  "line 10: [endpoint a] encrypt_cert lists more than 2 entries" },
	{ IDENTITY "[receiver]\ndecrypt_key = a b\ndecrypt_key = c\n",
	  "line 8: [receiver] decrypt_key lists more than 2 entries" },
	{ IDENTITY "schemas = /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		   "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		   "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
	  "line 6: the line is longer than 198 characters" },
};

static void test_errors(void **state)
{
	struct gw_config *cfg = new_config();

	for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++) {
		int rc = config_parse(cfg, error_cases[i].text, "/d");

		if (rc != GW_EINVALID)
			fail_msg("case %zu should fail (rc %d) with: %s", i, rc,
				 error_cases[i].message);
		if (!strstr(gw_error_last(), error_cases[i].message))
			fail_msg("case %zu: got '%s'\n  expected it to contain '%s'", i,
				 gw_error_last(), error_cases[i].message);
	}
	free(cfg);
}

static void test_too_many_endpoints(void **state)
{
	struct gw_config *cfg = new_config();
	gw_buf text = GW_BUF_INIT;

	assert_int_equal(gw_buf_puts(&text, IDENTITY), 0);
	for (int i = 0; i <= CONFIG_MAX_ENDPOINTS; i++)
		assert_int_equal(gw_buf_printf(&text, "[endpoint e%d]\norgnr = 964338531\n"
						      "services = nav\nurl = https://e/\n", i), 0);
	assert_int_equal(config_parse(cfg, (char *)text.data, "/d"), GW_EINVALID);
	assert_non_null(strstr(gw_error_last(), "more than 64 endpoints"));
	gw_buf_free(&text);
	free(cfg);
}

/* ---- files ------------------------------------------------------------- */

static void test_load_resolves_against_file_directory(void **state)
{
	const char *dir = tu_tmpdir("config-load");
	char path[PATH_MAX], real[PATH_MAX], expect[PATH_MAX + 32];
	struct gw_config *cfg = new_config();
	static const char text[] = IDENTITY "crl = /abs/ca.crl\n" ENDPOINT("nav-oslo");

	snprintf(path, sizeof(path), "%s/gateway.conf", dir);
	tu_write(path, text, strlen(text));
	assert_int_equal(config_load(cfg, path), 0);
	assert_non_null(realpath(dir, real));
	snprintf(expect, sizeof(expect), "%s/gw.key", real);
	assert_string_equal(cfg->identity.key, expect);
	snprintf(expect, sizeof(expect), "%s/ca.pem", real);
	assert_string_equal(cfg->identity.trust[0], expect);
	assert_string_equal(cfg->endpoints[0].trust[0], expect);
	assert_string_equal(cfg->identity.crl[0], "/abs/ca.crl");
	assert_string_equal(cfg->path, path);
	free(cfg);
	tu_rmrf(dir);
}

static void test_load_errors_name_the_file(void **state)
{
	const char *dir = tu_tmpdir("config-errors");
	char path[PATH_MAX], expect[PATH_MAX + 128];
	struct gw_config *cfg = new_config();
	static const char text[] = IDENTITY "[endpoint nav-oslo]\norgnr = 123\n";
	static const char nul[] = "[identity]\0orgnr = 974760673\n";

	snprintf(path, sizeof(path), "%s/gateway.conf", dir);
	tu_write(path, text, strlen(text));
	assert_int_equal(config_load(cfg, path), GW_EINVALID);
	snprintf(expect, sizeof(expect),
		 "%s line 7: [endpoint nav-oslo] orgnr '123' is not a valid organisation number",
		 path);
	assert_string_equal(gw_error_last(), expect);

	tu_write(path, nul, sizeof(nul) - 1);
	assert_int_equal(config_load(cfg, path), GW_EINVALID);
	assert_non_null(strstr(gw_error_last(), "contains a NUL byte"));

	tu_write(path, "", 0);
	assert_int_equal(config_load(cfg, path), GW_EINVALID);

	snprintf(path, sizeof(path), "%s/missing.conf", dir);
	assert_true(config_load(cfg, path) < 0);
	assert_non_null(strstr(gw_error_last(), "missing.conf"));
	free(cfg);
	tu_rmrf(dir);
}

static void test_samples_in_docs_load(void **state)
{
	struct gw_config *cfg = new_config();
	char docs[PATH_MAX], expect[PATH_MAX + 32];

	assert_non_null(realpath(tu_src("docs"), docs));

	if (config_load(cfg, tu_src("docs/gateway.conf.sample")) != 0)
		fail_msg("gateway sample: %s", gw_error_last());
	assert_true(cfg->n_endpoints >= 3);
	assert_string_not_equal(cfg->gateway.spool, "");
	assert_string_not_equal(cfg->gateway.pseudonym_key, "");
	snprintf(expect, sizeof(expect), "%s/", docs);
	assert_memory_equal(cfg->identity.key, expect, strlen(expect)); /* resolved */

	if (config_load(cfg, tu_src("docs/receiver.conf.sample")) != 0)
		fail_msg("receiver sample: %s", gw_error_last());
	assert_true(cfg->receiver.listen_port > 0);
	assert_true(cfg->receiver.n_allow >= 1);
	free(cfg);
}

/* ---- resolution -------------------------------------------------------- */

static const char registry[] =
	IDENTITY
	"[endpoint nav-oslo]\norgnr = 964338531\nservices = housing nav\n"
	"municipalities = 0301\nurl = https://nav-oslo/\n"
	"[endpoint health-oslo]\norgnr = 923609016\nservices = health\n"
	"municipalities = 0301 0302\nurl = https://health-oslo/\n"
	"[endpoint nav-bergen]\norgnr = 889640782\nservices = nav\n"
	"municipalities = 4601\nurl = https://nav-bergen/\n"
	"[endpoint prison-bergen]\norgnr = 971526920\nservices = prison\n"
	"url = https://prison-bergen/\nconsent = not-required\n"
	"[endpoint housing-oslo-2]\norgnr = 974760673\nservices = housing\n"
	"municipalities = 0301\nurl = https://housing-oslo-2/\n";

static const char *resolved(const struct gw_config *cfg, enum gw_service s, const char *orgnr,
			    const char *municipality)
{
	const struct config_endpoint *ep = config_endpoint_resolve(cfg, s, orgnr, municipality);

	return ep ? ep->name : "(none)";
}

static void test_resolve(void **state)
{
	struct gw_config *cfg = parse_ok(registry, "/d");

	/* By service and municipality: the first endpoint that offers both. */
	assert_string_equal(resolved(cfg, SVC_NAV, NULL, "0301"), "nav-oslo");
	assert_string_equal(resolved(cfg, SVC_NAV, "", "0301"), "nav-oslo");
	assert_string_equal(resolved(cfg, SVC_NAV, NULL, "4601"), "nav-bergen");
	assert_string_equal(resolved(cfg, SVC_HOUSING, NULL, "0301"), "nav-oslo");
	assert_string_equal(resolved(cfg, SVC_HEALTH, NULL, "0302"), "health-oslo");
	assert_string_equal(resolved(cfg, SVC_NAV, NULL, "0302"), "(none)");
	assert_string_equal(resolved(cfg, SVC_SCHOOL, NULL, "0301"), "(none)");
	assert_string_equal(resolved(cfg, SVC_NAV, NULL, NULL), "(none)");
	/* Prison: the caller passes Transfer/@to as orgnr. */
	assert_string_equal(resolved(cfg, SVC_PRISON, "971526920", NULL), "prison-bergen");
	assert_string_equal(resolved(cfg, SVC_PRISON, NULL, "0301"), "(none)");
	/* By orgnr: only an endpoint with that orgnr that offers the service. */
	assert_string_equal(resolved(cfg, SVC_HOUSING, "974760673", "0301"), "housing-oslo-2");
	assert_string_equal(resolved(cfg, SVC_NAV, "964338531", "4601"), "nav-oslo");
	assert_string_equal(resolved(cfg, SVC_PRISON, "889640782", NULL), "(none)");
	assert_string_equal(resolved(cfg, SVC_HEALTH, "964338531", "0301"), "(none)");
	assert_string_equal(resolved(cfg, SVC_NAV, "999999999", "0301"), "(none)");
	assert_string_equal(resolved(cfg, SVC_COUNT, NULL, "0301"), "(none)");

	assert_non_null(config_endpoint_by_name(cfg, "nav-bergen"));
	assert_string_equal(config_endpoint_by_name(cfg, "nav-bergen")->orgnr, "889640782");
	assert_null(config_endpoint_by_name(cfg, "nav"));
	free(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_file),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_operator_port_keys),
		cmocka_unit_test(test_syntax_conveniences),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_too_many_endpoints),
		cmocka_unit_test(test_load_resolves_against_file_directory),
		cmocka_unit_test(test_load_errors_name_the_file),
		cmocka_unit_test(test_samples_in_docs_load),
		cmocka_unit_test(test_resolve),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
