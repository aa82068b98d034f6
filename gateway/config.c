/*
 * config: reads the INI configuration described in config.h into a
 * struct gw_config, and answers which endpoint serves a recipient.
 *
 * libinih does the tokenising. We feed it one line at a time through our own
 * reader, which lets us count lines (the Debian build of inih does not pass
 * line numbers to handlers), see every [section] header even when the
 * section is empty, and strip leading blanks so an indented line is an
 * ordinary line rather than an inih continuation line.
 *
 * Every key of every section is in a table below (name, kind, where it
 * goes, limits). Validation is strict: an unknown section or key, a key
 * given twice, an empty value, or a value that breaks its rule fails with a
 * message naming the file, the line, the section and the key. The first
 * error stops the parse.
 *
 * Diagnostics look like:
 *   gateway.conf line 12: [endpoint nav-oslo] orgnr '123' is not a valid
 *   organisation number
 */
#include "config.h"
#include "err.h"
#include "fsutil.h"
#include "ident.h"
#include "log.h"

#include <ini.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_MAX_FILE_BYTES (1024 * 1024)
#define ENDPOINT_NAME_MAX 40 /* inih keeps section names below 50 characters */
#define MAX_KEYS_PER_SECTION 16

/* Service names in the order of enum gw_service (notice.h). */
static const char *const service_names[SVC_COUNT] = {
	"housing", "nav", "health", "school", "prison",
};

enum value_kind {
	V_ORGNR,          /* char[10] */
	V_ORGNRS,         /* list of char[10] */
	V_PATH,           /* char[PATH_MAX], resolved against the file's directory */
	V_PATHS,          /* list of char[PATH_MAX] */
	V_MUNICIPALITIES, /* list of char[5] */
	V_SERVICES,       /* unsigned, a bit per enum gw_service */
	V_INT,            /* int within [min, max] */
	V_SIZE,           /* size_t within [min, max] */
	V_BOOL,           /* bool: true/false, yes/no, on/off */
	V_LOG_LEVEL,      /* char[16]: debug, info, warn, error */
	V_URL,            /* char[512], https:// only */
	V_CONSENT,        /* bool consent_required: required / not-required */
	V_LISTEN,         /* host:port: host at offset, int port at count_offset */
};

struct key_def {
	const char *name;
	enum value_kind kind;
	size_t offset;       /* of the field in its section's struct */
	size_t size;         /* of the field, or of one element of a list */
	size_t count_offset; /* lists: of the size_t element count */
	size_t max_items;    /* lists: capacity */
	long long min, max;  /* numbers */
	bool required;
};

#define FIELD_SIZE(type, field) sizeof(((struct type *)0)->field)
#define KEY(type, field, kind, req) \
	{ #field, kind, offsetof(struct type, field), FIELD_SIZE(type, field), 0, 0, 0, 0, req }
#define NUMBER(type, field, kind, lo, hi) \
	{ #field, kind, offsetof(struct type, field), FIELD_SIZE(type, field), 0, 0, lo, hi, false }
#define LIST(type, field, count, kind, req)                                              \
	{ #field, kind, offsetof(struct type, field), FIELD_SIZE(type, field[0]),          \
	  offsetof(struct type, count),                                                   \
	  FIELD_SIZE(type, field) / FIELD_SIZE(type, field[0]), 0, 0, req }

#define LISTEN(type, name, host, port, req) \
	{ #name, V_LISTEN, offsetof(struct type, host), FIELD_SIZE(type, host), \
	  offsetof(struct type, port), 0, 0, 0, req }

#define MIB (1024LL * 1024LL)

static const struct key_def identity_keys[] = {
	KEY(config_identity, orgnr, V_ORGNR, true),
	KEY(config_identity, key, V_PATH, true),
	KEY(config_identity, cert, V_PATH, true),
	LIST(config_identity, trust, n_trust, V_PATHS, false),
	LIST(config_identity, crl, n_crl, V_PATHS, false),
	KEY(config_identity, test_nins, V_BOOL, false),
	KEY(config_identity, log_level, V_LOG_LEVEL, false),
	KEY(config_identity, schemas, V_PATH, false),
};

static const struct key_def gateway_keys[] = {
	KEY(config_gateway, spool, V_PATH, true),
	KEY(config_gateway, db, V_PATH, true),
	KEY(config_gateway, pseudonym_key, V_PATH, true),
	NUMBER(config_gateway, max_notice_bytes, V_SIZE, 1024, 64 * MIB),
	NUMBER(config_gateway, retry_base, V_INT, 1, 86400),
	NUMBER(config_gateway, retry_cap, V_INT, 1, 7 * 86400),
	NUMBER(config_gateway, retry_horizon_days, V_INT, 1, 365),
	NUMBER(config_gateway, max_connections, V_INT, 1, 1024),
	NUMBER(config_gateway, processed_keep_days, V_INT, 0, 3650),
	LISTEN(config_gateway, operator_listen, operator_host, operator_port, false),
	KEY(config_gateway, operator_cert, V_PATH, false),
	KEY(config_gateway, operator_key, V_PATH, false),
	KEY(config_gateway, operator_client_ca, V_PATH, false),
	NUMBER(config_gateway, operator_timeout, V_INT, 1, 3600),
};

static const struct key_def endpoint_keys[] = {
	KEY(config_endpoint, orgnr, V_ORGNR, true),
	KEY(config_endpoint, services, V_SERVICES, true),
	LIST(config_endpoint, municipalities, n_municipalities, V_MUNICIPALITIES, false),
	KEY(config_endpoint, url, V_URL, true),
	LIST(config_endpoint, trust, n_trust, V_PATHS, false),
	KEY(config_endpoint, server_orgnr, V_ORGNR, false),
	{ "consent", V_CONSENT, offsetof(struct config_endpoint, consent_required),
	  FIELD_SIZE(config_endpoint, consent_required), 0, 0, 0, 0, false },
	LIST(config_endpoint, encrypt_cert, n_encrypt_cert, V_PATHS, false),
	NUMBER(config_endpoint, lead_days, V_INT, 0, 365),
	NUMBER(config_endpoint, max_connections, V_INT, 1, 256),
};

static const struct key_def receiver_keys[] = {
	LISTEN(config_receiver, listen, listen_host, listen_port, true),
	KEY(config_receiver, inbox, V_PATH, true),
	KEY(config_receiver, db, V_PATH, true),
	LIST(config_receiver, allow, n_allow, V_ORGNRS, true),
	LIST(config_receiver, decrypt_key, n_decrypt_key, V_PATHS, false),
	NUMBER(config_receiver, window_days, V_INT, 1, 365),
	NUMBER(config_receiver, max_body, V_SIZE, 1024, 64 * MIB),
	NUMBER(config_receiver, read_timeout, V_INT, 1, 3600),
	NUMBER(config_receiver, max_connections, V_INT, 1, 10000),
	NUMBER(config_receiver, workers, V_INT, 1, 64),
};

enum section_id { SEC_IDENTITY, SEC_GATEWAY, SEC_ENDPOINT, SEC_RECEIVER, SEC_COUNT };

struct section_def {
	const char *name;
	const struct key_def *keys;
	size_t n_keys;
};

#define SECTION(name, keys) { name, keys, sizeof(keys) / sizeof(keys[0]) }

static const struct section_def sections[SEC_COUNT] = {
	[SEC_IDENTITY] = SECTION("identity", identity_keys),
	[SEC_GATEWAY] = SECTION("gateway", gateway_keys),
	[SEC_ENDPOINT] = SECTION("endpoint", endpoint_keys),
	[SEC_RECEIVER] = SECTION("receiver", receiver_keys),
};

struct parse_ctx {
	struct gw_config *cfg;
	const char *file;     /* as named in messages */
	const char *base_dir; /* for relative paths; NULL keeps them as written */
	const char *text;
	size_t pos;
	int line;
	bool failed;
	int error_line;

	const struct section_def *section; /* NULL before the first header */
	struct config_endpoint *endpoint;  /* the current [endpoint NAME] */
	char label[64];                    /* "[endpoint nav-oslo]", for messages */
	int section_line;
	int seen[MAX_KEYS_PER_SECTION]; /* line each key of the section was set on */

	int section_lines[SEC_COUNT]; /* header line of identity, gateway, receiver */
	int endpoint_lines[CONFIG_MAX_ENDPOINTS];
};

/* Record the first error: "FILE line N: message" (or "FILE: message" for line 0). */
static void GW_PRINTF(3, 4) fail_at(struct parse_ctx *ctx, int line, const char *fmt, ...)
{
	char message[768];
	va_list ap;

	if (ctx->failed)
		return;
	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	if (line > 0)
		gw_error_set(GW_EINVALID, "%s line %d: %s", ctx->file, line, message);
	else
		gw_error_set(GW_EINVALID, "%s: %s", ctx->file, message);
	ctx->failed = true;
	ctx->error_line = line;
}

#define fail(ctx, ...) fail_at((ctx), (ctx)->line, __VA_ARGS__)

static bool copy_string(char *dst, size_t size, const char *src)
{
	size_t len = strlen(src);

	if (len >= size)
		return false;
	memcpy(dst, src, len + 1);
	return true;
}

/* ---- values ---------------------------------------------------------- */

static void set_orgnr(struct parse_ctx *ctx, const struct key_def *key, char *dst,
		      const char *value)
{
	if (!ident_orgnr_valid(value)) {
		fail(ctx, "%s %s '%s' is not a valid organisation number", ctx->label, key->name,
		     value);
		return;
	}
	copy_string(dst, IDENT_ORGNR_LEN + 1, value);
}

static void set_path(struct parse_ctx *ctx, const struct key_def *key, char *dst, size_t size,
		     const char *value)
{
	int n;

	if (value[0] == '/' || !ctx->base_dir || !ctx->base_dir[0])
		n = snprintf(dst, size, "%s", value);
	else
		n = snprintf(dst, size, "%s/%s", ctx->base_dir, value);
	if (n < 0 || (size_t)n >= size)
		fail(ctx, "%s %s: the path is too long", ctx->label, key->name);
}

static void set_municipality(struct parse_ctx *ctx, const struct key_def *key, char *dst,
			     const char *value)
{
	if (!ident_municipality_valid(value)) {
		fail(ctx, "%s %s '%s' is not a municipality number (4 digits, 0101 to 9999)",
		     ctx->label, key->name, value);
		return;
	}
	copy_string(dst, 5, value);
}

static int service_parse(const char *name, enum gw_service *out)
{
	for (int i = 0; i < SVC_COUNT; i++) {
		if (strcmp(name, service_names[i]) == 0) {
			*out = (enum gw_service)i;
			return 0;
		}
	}
	return GW_EINVALID;
}

static void add_service(struct parse_ctx *ctx, const struct key_def *key, unsigned *bits,
			const char *value)
{
	enum gw_service service;

	if (service_parse(value, &service) < 0) {
		fail(ctx, "%s %s '%s' is not a service (use housing, nav, health, school or "
		     "prison)", ctx->label, key->name, value);
		return;
	}
	*bits |= 1u << service;
}

/* A whole number made of digits only, no sign, no spaces; false if not. */
static bool parse_number(const char *value, long long *out)
{
	long long n = 0;
	size_t len = strlen(value);

	if (len == 0 || len > 15)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (value[i] < '0' || value[i] > '9')
			return false;
		n = n * 10 + (value[i] - '0');
	}
	*out = n;
	return true;
}

static void set_number(struct parse_ctx *ctx, const struct key_def *key, void *dst,
		       const char *value)
{
	long long n;

	if (!parse_number(value, &n) || n < key->min || n > key->max) {
		fail(ctx, "%s %s '%s' must be a whole number from %lld to %lld", ctx->label,
		     key->name, value, key->min, key->max);
		return;
	}
	if (key->kind == V_INT)
		*(int *)dst = (int)n;
	else
		*(size_t *)dst = (size_t)n;
}

static void set_bool(struct parse_ctx *ctx, const struct key_def *key, bool *dst,
		     const char *value)
{
	static const char *const yes[] = { "true", "yes", "on" };
	static const char *const no[] = { "false", "no", "off" };

	for (size_t i = 0; i < 3; i++) {
		if (strcmp(value, yes[i]) == 0) {
			*dst = true;
			return;
		}
		if (strcmp(value, no[i]) == 0) {
			*dst = false;
			return;
		}
	}
	fail(ctx, "%s %s '%s' must be true or false", ctx->label, key->name, value);
}

static void set_log_level(struct parse_ctx *ctx, const struct key_def *key, char *dst,
			  size_t size, const char *value)
{
	enum gw_log_level level;

	if (gw_log_parse_level(value, &level) < 0 || !copy_string(dst, size, value))
		fail(ctx, "%s %s '%s' is not a log level (use debug, info, warn or error)",
		     ctx->label, key->name, value);
}

static bool url_chars_ok(const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c <= ' ' || c >= 0x7f || c == '"' || c == '\'' || c == '<' || c == '>' ||
		    c == '\\')
			return false;
	}
	return true;
}

static void set_url(struct parse_ctx *ctx, const struct key_def *key, char *dst, size_t size,
		    const char *value)
{
	const char *host = value + strlen("https://");

	if (strncmp(value, "https://", strlen("https://")) != 0) {
		fail(ctx, "%s %s '%s' must start with https://", ctx->label, key->name, value);
		return;
	}
	if (*host == '\0' || *host == '/' || *host == ':' || !url_chars_ok(value)) {
		fail(ctx, "%s %s '%s' is not a usable URL (https://host[:port]/path, no spaces "
		     "or quotes)", ctx->label, key->name, value);
		return;
	}
	if (!copy_string(dst, size, value))
		fail(ctx, "%s %s is longer than %zu characters", ctx->label, key->name, size - 1);
}

static void set_consent(struct parse_ctx *ctx, const struct key_def *key, bool *dst,
			const char *value)
{
	if (strcmp(value, "required") == 0)
		*dst = true;
	else if (strcmp(value, "not-required") == 0)
		*dst = false;
	else
		fail(ctx, "%s %s '%s' must be required or not-required", ctx->label, key->name,
		     value);
}

/*
 * "host:port" or "[v6-address]:port"; port 0 asks for an ephemeral port
 * (tests). "off" leaves the host empty: the listener is disabled (only
 * where the key is optional).
 */
static void set_listen(struct parse_ctx *ctx, const struct key_def *key, char *base,
		       const char *value)
{
	char *host_field = base + key->offset;
	int *port_field = (int *)(base + key->count_offset);
	const char *colon, *host = value;
	size_t host_len;
	long long port;

	if (!key->required && strcmp(value, "off") == 0) {
		host_field[0] = '\0';
		*port_field = 0;
		return;
	}
	if (value[0] == '[') {
		const char *close = strchr(value, ']');

		colon = close && close[1] == ':' ? close + 1 : NULL;
		host = value + 1;
		host_len = close ? (size_t)(close - host) : 0;
	} else {
		colon = strrchr(value, ':');
		host_len = colon ? (size_t)(colon - value) : 0;
		if (colon && memchr(value, ':', host_len))
			colon = NULL; /* a bare IPv6 address needs brackets */
	}
	if (!colon || host_len == 0 || !parse_number(colon + 1, &port) || port > 65535) {
		fail(ctx, "%s %s '%s' must be host:port (for example 127.0.0.1:8443 or "
		     "[::1]:8443)", ctx->label, key->name, value);
		return;
	}
	if (host_len >= key->size) {
		fail(ctx, "%s %s: the host name is too long", ctx->label, key->name);
		return;
	}
	memcpy(host_field, host, host_len);
	host_field[host_len] = '\0';
	*port_field = (int)port;
}

/* Lists: append one item, skipping an exact repeat. */
static void add_list_item(struct parse_ctx *ctx, const struct key_def *key, char *base,
			  const char *item)
{
	size_t *count = (size_t *)(base + key->count_offset);
	char *items = base + key->offset;
	char value[PATH_MAX];

	if (key->kind == V_ORGNRS)
		set_orgnr(ctx, key, value, item);
	else if (key->kind == V_MUNICIPALITIES)
		set_municipality(ctx, key, value, item);
	else
		set_path(ctx, key, value, key->size, item);
	if (ctx->failed)
		return;
	for (size_t i = 0; i < *count; i++) {
		if (strcmp(items + i * key->size, value) == 0)
			return;
	}
	if (*count == key->max_items) {
		fail(ctx, "%s %s lists more than %zu entries", ctx->label, key->name,
		     key->max_items);
		return;
	}
	copy_string(items + *count * key->size, key->size, value);
	(*count)++;
}

/* Split a list value on blanks and commas. */
static void set_list(struct parse_ctx *ctx, const struct key_def *key, char *base,
		     const char *value)
{
	char item[PATH_MAX];
	size_t items = 0;

	while (*value && !ctx->failed) {
		size_t len = strcspn(value, " \t,");

		if (len >= sizeof(item)) {
			fail(ctx, "%s %s has an entry that is too long", ctx->label, key->name);
			return;
		}
		if (len > 0) {
			memcpy(item, value, len);
			item[len] = '\0';
			if (key->kind == V_SERVICES)
				add_service(ctx, key, (unsigned *)(base + key->offset), item);
			else
				add_list_item(ctx, key, base, item);
			items++;
		}
		value += len;
		value += strspn(value, " \t,");
	}
	if (items == 0)
		fail(ctx, "%s %s has no value", ctx->label, key->name);
}

static void set_value(struct parse_ctx *ctx, const struct key_def *key, char *base,
		      const char *value)
{
	char *field = base + key->offset;

	switch (key->kind) {
	case V_ORGNR:
		set_orgnr(ctx, key, field, value);
		break;
	case V_PATH:
		set_path(ctx, key, field, key->size, value);
		break;
	case V_ORGNRS:
	case V_PATHS:
	case V_MUNICIPALITIES:
	case V_SERVICES:
		set_list(ctx, key, base, value);
		break;
	case V_INT:
	case V_SIZE:
		set_number(ctx, key, field, value);
		break;
	case V_BOOL:
		set_bool(ctx, key, (bool *)field, value);
		break;
	case V_LOG_LEVEL:
		set_log_level(ctx, key, field, key->size, value);
		break;
	case V_URL:
		set_url(ctx, key, field, key->size, value);
		break;
	case V_CONSENT:
		set_consent(ctx, key, (bool *)field, value);
		break;
	case V_LISTEN:
		set_listen(ctx, key, base, value);
		break;
	}
}

static bool is_list(enum value_kind kind)
{
	return kind == V_ORGNRS || kind == V_PATHS || kind == V_MUNICIPALITIES ||
	       kind == V_SERVICES;
}

/* ---- sections ---------------------------------------------------------- */

static char *section_base(struct parse_ctx *ctx)
{
	if (ctx->section == &sections[SEC_IDENTITY])
		return (char *)&ctx->cfg->identity;
	if (ctx->section == &sections[SEC_GATEWAY])
		return (char *)&ctx->cfg->gateway;
	if (ctx->section == &sections[SEC_RECEIVER])
		return (char *)&ctx->cfg->receiver;
	return (char *)ctx->endpoint;
}

/* The checks that need the whole section: required keys, cross-key rules. */
static void section_end(struct parse_ctx *ctx)
{
	const struct section_def *sec = ctx->section;

	if (!sec || ctx->failed)
		return;
	for (size_t i = 0; i < sec->n_keys; i++) {
		if (sec->keys[i].required && !ctx->seen[i]) {
			fail_at(ctx, ctx->section_line, "%s has no %s", ctx->label,
				sec->keys[i].name);
			return;
		}
	}
	if (sec == &sections[SEC_GATEWAY] &&
	    ctx->cfg->gateway.retry_cap < ctx->cfg->gateway.retry_base)
		fail_at(ctx, ctx->section_line, "%s retry_cap (%d) is smaller than retry_base (%d)",
			ctx->label, ctx->cfg->gateway.retry_cap, ctx->cfg->gateway.retry_base);
}

static bool endpoint_name_valid(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > ENDPOINT_NAME_MAX)
		return false;
	if (!((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z') ||
	      (name[0] >= '0' && name[0] <= '9')))
		return false;
	return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
	       len;
}

static void endpoint_defaults(struct config_endpoint *ep)
{
	memset(ep, 0, sizeof(*ep));
	ep->consent_required = true;
	ep->lead_days = 14;
	ep->max_connections = 16;
}

static void begin_endpoint(struct parse_ctx *ctx, const char *name)
{
	struct gw_config *cfg = ctx->cfg;
	const struct config_endpoint *other = config_endpoint_by_name(cfg, name);

	if (!endpoint_name_valid(name)) {
		fail(ctx, "[endpoint %s]: an endpoint name is 1 to %d letters, digits, '.', '_' "
		     "or '-', starting with a letter or digit", name, ENDPOINT_NAME_MAX);
		return;
	}
	if (other) {
		fail(ctx, "[endpoint %s] is defined twice (first at line %d)", name,
		     ctx->endpoint_lines[other - cfg->endpoints]);
		return;
	}
	if (cfg->n_endpoints == CONFIG_MAX_ENDPOINTS) {
		fail(ctx, "more than %d endpoints are configured", CONFIG_MAX_ENDPOINTS);
		return;
	}
	ctx->endpoint = &cfg->endpoints[cfg->n_endpoints];
	ctx->endpoint_lines[cfg->n_endpoints] = ctx->line;
	cfg->n_endpoints++;
	endpoint_defaults(ctx->endpoint);
	copy_string(ctx->endpoint->name, sizeof(ctx->endpoint->name), name);
	ctx->section = &sections[SEC_ENDPOINT];
	snprintf(ctx->label, sizeof(ctx->label), "[endpoint %s]", name);
}

static void begin_named_section(struct parse_ctx *ctx, enum section_id id)
{
	if (ctx->section_lines[id]) {
		fail(ctx, "[%s] appears twice (first at line %d)", sections[id].name,
		     ctx->section_lines[id]);
		return;
	}
	ctx->section_lines[id] = ctx->line;
	ctx->section = &sections[id];
	ctx->endpoint = NULL;
	snprintf(ctx->label, sizeof(ctx->label), "[%s]", sections[id].name);
}

/* A "[...]" line: close the previous section, open the next. */
static void section_begin(struct parse_ctx *ctx, const char *line)
{
	const char *close = strchr(line, ']');
	char name[128];
	size_t len;

	section_end(ctx);
	if (ctx->failed)
		return;
	if (!close) {
		fail(ctx, "a section header needs a closing ']'");
		return;
	}
	len = (size_t)(close - line - 1);
	if (len >= sizeof(name)) {
		fail(ctx, "the section name is too long");
		return;
	}
	memcpy(name, line + 1, len);
	name[len] = '\0';
	memset(ctx->seen, 0, sizeof(ctx->seen));
	ctx->section_line = ctx->line;

	if (strncmp(name, "endpoint", 8) == 0 && (name[8] == ' ' || name[8] == '\t'))
		begin_endpoint(ctx, name + 8 + strspn(name + 8, " \t"));
	else if (strcmp(name, "endpoint") == 0)
		fail(ctx, "[endpoint] needs a name: [endpoint NAME]");
	else if (strcmp(name, "identity") == 0)
		begin_named_section(ctx, SEC_IDENTITY);
	else if (strcmp(name, "gateway") == 0)
		begin_named_section(ctx, SEC_GATEWAY);
	else if (strcmp(name, "receiver") == 0)
		begin_named_section(ctx, SEC_RECEIVER);
	else
		fail(ctx, "unknown section [%s] (use [identity], [gateway], [endpoint NAME] or "
		     "[receiver])", name);
}

/* ---- inih glue ---------------------------------------------------------- */

/*
 * inih's reader: hand over one line, counting it. inih calls the handler for
 * a line before it asks for the next, so ctx->line is the handler's line.
 */
static char *read_line(char *dst, int size, void *stream)
{
	struct parse_ctx *ctx = stream;
	const char *start = ctx->text + ctx->pos;
	const char *newline;
	size_t len;

	if (ctx->failed || *start == '\0')
		return NULL;
	newline = strchr(start, '\n');
	len = newline ? (size_t)(newline - start) + 1 : strlen(start);
	ctx->pos += len;
	ctx->line++;
	if (ctx->line == 1 && len >= 3 && memcmp(start, "\xef\xbb\xbf", 3) == 0) {
		start += 3;
		len -= 3;
	}
	while (len > 0 && (*start == ' ' || *start == '\t')) {
		start++;
		len--;
	}
	if (size < 3 || len + 1 > (size_t)size) {
		fail(ctx, "the line is longer than %d characters", size - 2);
		return NULL;
	}
	memcpy(dst, start, len);
	dst[len] = '\0';
	if (dst[0] == '[')
		section_begin(ctx, dst);
	return ctx->failed ? NULL : dst;
}

static const struct key_def *find_key(const struct section_def *sec, const char *name)
{
	for (size_t i = 0; i < sec->n_keys; i++) {
		if (strcmp(sec->keys[i].name, name) == 0)
			return &sec->keys[i];
	}
	return NULL;
}

/* inih's handler: always "success"; our own errors live in ctx. */
static int on_key(void *user, const char *section, const char *name, const char *value)
{
	struct parse_ctx *ctx = user;
	const struct key_def *key;
	size_t index;

	(void)section; /* we track sections ourselves, see read_line */
	if (ctx->failed)
		return 1;
	if (!ctx->section) {
		fail(ctx, "'%s' comes before any section; put it under [identity], [gateway], "
		     "[endpoint NAME] or [receiver]", name);
		return 1;
	}
	key = find_key(ctx->section, name);
	if (!key) {
		fail(ctx, "%s has no key '%s'", ctx->label, name);
		return 1;
	}
	index = (size_t)(key - ctx->section->keys);
	if (ctx->seen[index] && !is_list(key->kind)) {
		fail(ctx, "%s %s is given twice (first at line %d)", ctx->label, name,
		     ctx->seen[index]);
		return 1;
	}
	ctx->seen[index] = ctx->line;
	if (value[0] == '\0')
		fail(ctx, "%s %s has no value", ctx->label, name);
	else
		set_value(ctx, key, section_base(ctx), value);
	return 1;
}

/* ---- after the last line ------------------------------------------------ */

static void finish_endpoints(struct parse_ctx *ctx)
{
	struct gw_config *cfg = ctx->cfg;

	for (size_t i = 0; i < cfg->n_endpoints && !ctx->failed; i++) {
		struct config_endpoint *ep = &cfg->endpoints[i];

		if (!ep->server_orgnr[0])
			copy_string(ep->server_orgnr, sizeof(ep->server_orgnr), ep->orgnr);
		if (ep->n_trust == 0) {
			memcpy(ep->trust, cfg->identity.trust, sizeof(ep->trust));
			ep->n_trust = cfg->identity.n_trust;
		}
		if (ep->n_trust == 0)
			fail_at(ctx, ctx->endpoint_lines[i], "[endpoint %s] has no trust anchor: "
				"give trust here or in [identity]", ep->name);
	}
}

static void finish(struct parse_ctx *ctx)
{
	section_end(ctx);
	if (ctx->failed)
		return;
	if (!ctx->section_lines[SEC_IDENTITY]) {
		fail_at(ctx, 0, "the [identity] section is missing (it gives orgnr, key and cert)");
		return;
	}
	if (ctx->section_lines[SEC_RECEIVER] && ctx->cfg->identity.n_trust == 0) {
		fail_at(ctx, ctx->section_lines[SEC_RECEIVER], "[receiver] needs trust anchors: "
			"give trust in [identity] to verify senders");
		return;
	}
	finish_endpoints(ctx);
}

static int parse_text(struct gw_config *cfg, const char *text, const char *base_dir,
		      const char *file)
{
	struct parse_ctx ctx;
	int syntax_line;

	memset(&ctx, 0, sizeof(ctx));
	ctx.cfg = cfg;
	ctx.file = file;
	ctx.base_dir = base_dir;
	ctx.text = text;

	syntax_line = ini_parse_stream(read_line, &ctx, on_key, &ctx);
	if (syntax_line < 0)
		return gw_error_set(GW_ENOMEM, "%s: out of memory while reading it", file);
	if (syntax_line > 0 && (!ctx.failed || syntax_line < ctx.error_line)) {
		ctx.failed = false;
		fail_at(&ctx, syntax_line, "expected 'key = value', a [section] header or a "
			"comment");
	}
	if (!ctx.failed)
		finish(&ctx);
	return ctx.failed ? GW_EINVALID : 0;
}

/* ---- public ------------------------------------------------------------- */

void config_defaults(struct gw_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->identity.log_level, sizeof(cfg->identity.log_level), "info");
	cfg->gateway.max_notice_bytes = 1048576;
	cfg->gateway.retry_base = 30;
	cfg->gateway.retry_cap = 3600;
	cfg->gateway.retry_horizon_days = 14;
	cfg->gateway.max_connections = 64;
	cfg->gateway.processed_keep_days = 30;
	snprintf(cfg->gateway.operator_host, sizeof(cfg->gateway.operator_host), "127.0.0.1");
	cfg->gateway.operator_port = 9464;
	cfg->gateway.operator_timeout = 10;
	cfg->receiver.window_days = 7;
	cfg->receiver.max_body = 1048576;
	cfg->receiver.read_timeout = 10;
	cfg->receiver.max_connections = 64;
	cfg->receiver.workers = 2;
}

int config_parse(struct gw_config *cfg, const char *text, const char *base_dir)
{
	config_defaults(cfg);
	return parse_text(cfg, text, base_dir, "configuration");
}

/* The directory holding path, made absolute so a later chdir cannot break it. */
static int config_dir(const char *path, char *out, size_t size)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');

	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	if (!realpath(dir, out))
		return gw_error_set(GW_ERROR, "cannot resolve the directory of %s", path);
	if (strlen(out) >= size)
		return gw_error_set(GW_ERROR, "the directory of %s is too long", path);
	return 0;
}

int config_load(struct gw_config *cfg, const char *path)
{
	gw_buf text = GW_BUF_INIT;
	char dir[PATH_MAX];
	int rc;

	config_defaults(cfg);
	if (!copy_string(cfg->path, sizeof(cfg->path), path))
		return gw_error_set(GW_EINVALID, "the configuration path is too long");
	if ((rc = fsutil_read_file(path, CONFIG_MAX_FILE_BYTES, &text)) < 0)
		return gw_error_wrap(rc, "cannot read the configuration");
	if (!text.data || strlen((char *)text.data) != text.len)
		rc = text.data ? gw_error_set(GW_EINVALID, "%s contains a NUL byte; it is not a "
					      "text file", path)
			       : gw_error_set(GW_EINVALID, "%s is empty", path);
	else if ((rc = config_dir(path, dir, sizeof(dir))) == 0)
		rc = parse_text(cfg, (char *)text.data, dir, path);
	gw_buf_free(&text);
	return rc;
}

static bool has_municipality(const struct config_endpoint *ep, const char *municipality)
{
	for (size_t i = 0; i < ep->n_municipalities; i++) {
		if (strcmp(ep->municipalities[i], municipality) == 0)
			return true;
	}
	return false;
}

const struct config_endpoint *config_endpoint_resolve(const struct gw_config *cfg,
						      enum gw_service service,
						      const char *orgnr,
						      const char *municipality)
{
	if ((int)service < 0 || service >= SVC_COUNT)
		return NULL;
	for (size_t i = 0; i < cfg->n_endpoints; i++) {
		const struct config_endpoint *ep = &cfg->endpoints[i];

		if (!(ep->services & (1u << service)))
			continue;
		if (orgnr && orgnr[0]) {
			if (strcmp(ep->orgnr, orgnr) == 0)
				return ep;
		} else if (municipality && municipality[0] && has_municipality(ep, municipality)) {
			return ep;
		}
	}
	return NULL;
}

const struct config_endpoint *config_endpoint_by_name(const struct gw_config *cfg,
						      const char *name)
{
	for (size_t i = 0; i < cfg->n_endpoints; i++) {
		if (strcmp(cfg->endpoints[i].name, name) == 0)
			return &cfg->endpoints[i];
	}
	return NULL;
}

const struct config_endpoint *config_endpoint_for_recipient(const struct gw_config *cfg,
							    const char *service,
							    const char *orgnr,
							    const char *name)
{
	const struct config_endpoint *ep = name[0] ? config_endpoint_by_name(cfg, name) : NULL;
	enum gw_service s;

	if (ep && (!orgnr[0] || !strcmp(ep->orgnr, orgnr)))
		return ep;
	if (!orgnr[0] || notice_service_parse(service, &s) < 0)
		return NULL;
	return config_endpoint_resolve(cfg, s, orgnr, NULL);
}
