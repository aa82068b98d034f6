/*
 * notice: the prison's Notice (SPEC section 4). Parses, validates (schema
 * and the rules a schema cannot express), and builds the consent-filtered
 * copy each recipient may see.
 */
#ifndef GW_NOTICE_H
#define GW_NOTICE_H

#include <libxml/tree.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum gw_service { SVC_HOUSING, SVC_NAV, SVC_HEALTH, SVC_SCHOOL, SVC_PRISON, SVC_COUNT };
enum gw_need {
	NEED_HOUSING, NEED_INCOME, NEED_EMPLOYMENT, NEED_EDUCATION, NEED_HEALTH,
	NEED_MENTAL_HEALTH, NEED_SUBSTANCE_USE, NEED_OTHER, NEED_COUNT
};
#define NEED_ALL ((1u << NEED_COUNT) - 1)

const char *notice_service_name(enum gw_service s);
int notice_service_parse(const char *name, enum gw_service *out);
const char *notice_need_name(enum gw_need n);
int notice_need_parse(const char *name, enum gw_need *out);

#define NOTICE_MAX_RECIPIENTS 32
#define NOTICE_ID_MAX 64

struct notice_recipient {
	enum gw_service service;
	char orgnr[10]; /* empty: resolve through the endpoint registry */
};

struct notice_grant {
	enum gw_service service;
	unsigned categories; /* bit per enum gw_need */
};

struct notice {
	xmlDocPtr doc; /* owned; the validated original */
	char id[NOTICE_ID_MAX + 1];
	int revision;
	char kind[16]; /* release, transfer, withdrawal */
	char issued[40];
	char sender_orgnr[10];
	char sender_unit[128];
	char nin[12]; /* personal data: never log, never put in an error */
	char event_date[11]; /* Release/@date or Transfer/@date; empty for withdrawal */
	char municipality[5]; /* Release/@municipality */
	char transfer_from[10], transfer_to[10];
	unsigned needs_present; /* categories of the Need elements present */
	struct notice_recipient recipients[NOTICE_MAX_RECIPIENTS];
	size_t n_recipients;
	struct notice_grant grants[SVC_COUNT];
	size_t n_grants;
	char withdrawal_reason[32];
	unsigned withdrawal_services; /* bit per enum gw_service; all when absent */
};

struct notice_rules {
	bool allow_synthetic_nin; /* accept test numbers (month + 80) */
	int64_t now_ms;           /* for "release date in the past"; 0 = now */
	size_t max_bytes;
};

/*
 * Parse, schema-validate and check a notice. On rejection returns
 * GW_EINVALID, sets *reason_code (malformed, schema-invalid, invalid-nin,
 * invalid-orgnr, invalid-municipality, date-in-past, grant-without-recipient,
 * missing-transfer-to, ...) and a sentence in gw_error_last() that names the
 * element and never contains a nin. `what` names the input (file name).
 */
int notice_parse(struct notice *out, const unsigned char *bytes, size_t len,
		 const struct notice_rules *rules, const char *what, const char **reason_code);
void notice_free(struct notice *n);

/* The grant for a service, or NULL (no consent). */
const struct notice_grant *notice_grant_for(const struct notice *n, enum gw_service s);

/*
 * The copy a recipient of service `recipient` sees: the original without
 * Recipients and Consent, with only the Need elements whose category bit is
 * in `categories` (Needs removed when none is left), and a Withdrawal's
 * services naming the recipient's service only (which other services were
 * told is not the recipient's to know, SPEC 4). The result validates as a
 * Notice.
 */
int notice_filtered_copy(const struct notice *n, enum gw_service recipient, unsigned categories,
			 xmlDocPtr *out);

#endif
