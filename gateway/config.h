/*
 * config: the configuration file, INI syntax read with libinih (Debian's
 * libinih-dev; see docs/DEPENDENCIES.md). One file per daemon. Relative
 * paths are taken relative to the file's directory.
 *
 *   [identity]            who we are (both daemons)
 *   orgnr = 974760673
 *   key = gateway.key     ; mode 0600 or stricter
 *   cert = gateway.pem
 *   trust = ca.pem        ; repeatable: trust anchors for signatures and TLS
 *   crl = ca.crl          ; repeatable: when given, revocation is checked
 *   test_nins = false     ; accept synthetic test nins (month + 80)
 *   log_level = info
 *   schemas = /usr/share/notice-gateway/schemas
 *
 *   [gateway]             the sender (gateway send)
 *   spool = /var/spool/notice-gateway
 *   db = /var/lib/notice-gateway/gateway.db
 *   pseudonym_key = secret.key  ; HMAC key for person pseudonyms in logs
 *   max_notice_bytes = 1048576
 *   retry_base = 30       ; seconds
 *   retry_cap = 3600
 *   retry_horizon_days = 14   ; never before the release date has passed
 *   max_connections = 16  ; global limit
 *   processed_keep_days = 30
 *   operator_listen = 127.0.0.1:9464  ; metrics + read-only web view; off disables
 *   operator_cert = op.pem    ; TLS for the operator port; required (with
 *   operator_key = op.key     ; operator_client_ca) when it listens off loopback
 *   operator_client_ca = operators-ca.pem
 *   operator_timeout = 10
 *
 *   [endpoint NAME]       one per partner organisation (repeatable)
 *   orgnr = 964338531
 *   services = housing nav
 *   municipalities = 0301 0302
 *   url = https://nav.example:8443/notices
 *   trust = partner-ca.pem   ; repeatable (rollover); default: identity trust
 *   server_orgnr = ...       ; expected TLS server organisation; default orgnr
 *   consent = required       ; or not-required
 *   encrypt_cert = nav-enc.pem  ; repeatable during rollover; absent: no encryption
 *   lead_days = 14
 *   max_connections = 4
 *
 *   [receiver]            the partner side (gateway receive)
 *   listen = 127.0.0.1:8443
 *   inbox = /var/lib/notice-gateway/inbox
 *   db = /var/lib/notice-gateway/receiver.db
 *   allow = 974760673 ...    ; sender organisations allowed (TLS and From)
 *   decrypt_key = old.key new.key ; keys to decrypt with (rollover)
 *   window_days = 7
 *   max_body = 1048576
 *   read_timeout = 10
 *   max_connections = 64
 *   workers = 2
 */
#ifndef GW_CONFIG_H
#define GW_CONFIG_H

#include "notice.h"
#include "pki.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#define CONFIG_MAX_ENDPOINTS 64
#define CONFIG_MAX_MUNICIPALITIES 32
#define CONFIG_MAX_ALLOW 64

struct config_identity {
	char orgnr[10];
	char key[PATH_MAX];
	char cert[PATH_MAX];
	char trust[PKI_MAX_FILES][PATH_MAX];
	size_t n_trust;
	char crl[PKI_MAX_FILES][PATH_MAX];
	size_t n_crl;
	bool test_nins;
	char log_level[16];
	char schemas[PATH_MAX];
};

struct config_endpoint {
	char name[64];
	char orgnr[10];
	unsigned services; /* bit per enum gw_service */
	char municipalities[CONFIG_MAX_MUNICIPALITIES][5];
	size_t n_municipalities;
	char url[512];
	char trust[PKI_MAX_FILES][PATH_MAX];
	size_t n_trust;
	char server_orgnr[10];
	bool consent_required;
	char encrypt_cert[2][PATH_MAX];
	size_t n_encrypt_cert;
	int lead_days;
	int max_connections;
};

struct config_gateway {
	char spool[PATH_MAX];
	char db[PATH_MAX];
	char pseudonym_key[PATH_MAX];
	size_t max_notice_bytes;
	int retry_base;
	int retry_cap;
	int retry_horizon_days;
	int max_connections;
	int processed_keep_days;
	char operator_host[256]; /* empty: the operator port is off */
	int operator_port;
	char operator_cert[PATH_MAX];
	char operator_key[PATH_MAX];
	char operator_client_ca[PATH_MAX];
	int operator_timeout;
};

struct config_receiver {
	char listen_host[256];
	int listen_port;
	char inbox[PATH_MAX];
	char db[PATH_MAX];
	char allow[CONFIG_MAX_ALLOW][10];
	size_t n_allow;
	char decrypt_key[2][PATH_MAX];
	size_t n_decrypt_key;
	int window_days;
	size_t max_body;
	int read_timeout;
	int max_connections;
	int workers;
};

struct gw_config {
	char path[PATH_MAX];
	struct config_identity identity;
	struct config_gateway gateway;
	struct config_endpoint endpoints[CONFIG_MAX_ENDPOINTS];
	size_t n_endpoints;
	struct config_receiver receiver;
};

/* Fill defaults, then read path. GW_EINVALID names file, line and key. */
int config_load(struct gw_config *cfg, const char *path);
/* Parse from a string (tests, fuzzing); base_dir resolves relative paths. */
int config_parse(struct gw_config *cfg, const char *text, const char *base_dir);
void config_defaults(struct gw_config *cfg);

/*
 * The endpoint for a recipient: by orgnr when given (and offering the
 * service), else by service and municipality. NULL when none.
 */
const struct config_endpoint *config_endpoint_resolve(const struct gw_config *cfg,
						      enum gw_service service,
						      const char *orgnr,
						      const char *municipality);
const struct config_endpoint *config_endpoint_by_name(const struct gw_config *cfg,
						      const char *name);
/*
 * The endpoint that may carry a message already addressed to organisation
 * orgnr for service: the one named name while it still has that orgnr, else
 * one with that orgnr offering the service; NULL when none. (An endpoint
 * name re-pointed at another organisation must not carry what was
 * addressed to the first.) An empty orgnr (rows from before recipients were
 * recorded) is matched by name alone.
 */
const struct config_endpoint *config_endpoint_for_recipient(const struct gw_config *cfg,
							    const char *service,
							    const char *orgnr,
							    const char *name);

#endif
