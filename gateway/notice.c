/*
 * notice: reading a prison's Notice (SPEC section 4) and making the copy
 * each recipient may see.
 *
 * notice_parse() runs three gates in order, each with its own reason code:
 * xmlread (malformed, too-large), notice.xsd (schema-invalid), then the rules
 * XSD 1.0 cannot express (check digits, kind against content, dates, grants
 * against recipients). Every rejection sentence names the file, the line and
 * the element or attribute; a nin or a person's name never appears in it.
 *
 * notice_filtered_copy() builds a fresh document from the validated
 * original: no Recipients, no Consent, no comments or processing
 * instructions, and only the granted Need elements.
 */
#include "notice.h"
#include "err.h"
#include "ident.h"
#include "timeutil.h"
#include "xmlread.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SVC_ALL ((1u << SVC_COUNT) - 1)

static const char *const service_names[SVC_COUNT] = {
	"housing", "nav", "health", "school", "prison"
};

static const char *const need_names[NEED_COUNT] = {
	"housing", "income", "employment", "education",
	"health", "mental-health", "substance-use", "other"
};

const char *notice_service_name(enum gw_service s)
{
	return (unsigned)s < SVC_COUNT ? service_names[s] : "unknown";
}

int notice_service_parse(const char *name, enum gw_service *out)
{
	size_t i;

	for (i = 0; name && i < SVC_COUNT; i++) {
		if (!strcmp(name, service_names[i])) {
			*out = (enum gw_service)i;
			return 0;
		}
	}
	return gw_error_set(GW_EINVALID, "unknown service \"%s\"", name ? name : "");
}

const char *notice_need_name(enum gw_need n)
{
	return (unsigned)n < NEED_COUNT ? need_names[n] : "unknown";
}

int notice_need_parse(const char *name, enum gw_need *out)
{
	size_t i;

	for (i = 0; name && i < NEED_COUNT; i++) {
		if (!strcmp(name, need_names[i])) {
			*out = (enum gw_need)i;
			return 0;
		}
	}
	return gw_error_set(GW_EINVALID, "unknown need category \"%s\"", name ? name : "");
}

/* What a check needs to report a rejection. */
struct reader {
	struct notice *n;
	const struct notice_rules *rules;
	const char *what;
	const char **reason;
};

static int reject(struct reader *r, const char *code, xmlNodePtr node, const char *fmt, ...)
	GW_PRINTF(4, 5);

static int reject(struct reader *r, const char *code, xmlNodePtr node, const char *fmt, ...)
{
	char sentence[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(sentence, sizeof(sentence), fmt, ap);
	va_end(ap);
	*r->reason = code;
	return gw_error_set(GW_EINVALID, "%s line %ld: %s", r->what,
			    node ? xmlGetLineNo(node) : 0L, sentence);
}

static xmlNodePtr child(xmlNodePtr parent, const char *name)
{
	return xmlread_child(parent, NS_NOTICE, name);
}

/*
 * Copy an attribute into a fixed buffer. Absent: empty string, 1. The
 * schema bounds every attribute we copy, so too long is a fault of ours.
 */
static int attr_copy(struct reader *r, xmlNodePtr node, const char *name, char *dst,
		     size_t cap)
{
	char *value = xmlread_attr(node, name);
	size_t len;

	dst[0] = '\0';
	if (!value)
		return 1;
	len = strlen(value);
	if (len >= cap) {
		xmlFree(value);
		return reject(r, "schema-invalid", node, "%s/@%s is longer than %zu characters",
			      (const char *)node->name, name, cap - 1);
	}
	memcpy(dst, value, len + 1);
	xmlFree(value);
	return 0;
}

/* Display text (Sender/@unit): cut at a character boundary to fit. */
static void attr_copy_cut(xmlNodePtr node, const char *name, char *dst, size_t cap)
{
	char *value = xmlread_attr(node, name);
	size_t len = value ? strlen(value) : 0;

	if (len >= cap) {
		len = cap - 1;
		while (len > 0 && ((unsigned char)value[len] & 0xC0) == 0x80)
			len--;
	}
	if (len)
		memcpy(dst, value, len);
	dst[len] = '\0';
	xmlFree(value);
}

/* A positive int, as the schema's RevisionType allows. */
static int parse_revision(const char *text, int *out)
{
	char *end;
	long value;

	errno = 0;
	value = strtol(text, &end, 10);
	if (errno || end == text || *end || value < 1 || value > INT_MAX)
		return GW_EINVALID;
	*out = (int)value;
	return 0;
}

/* Text content with XML Schema whitespace collapse at both ends. */
static int text_copy(struct reader *r, xmlNodePtr node, char *dst, size_t cap)
{
	xmlChar *text = xmlNodeGetContent(node);
	const char *start = (const char *)text;
	size_t len;

	dst[0] = '\0';
	if (!text)
		return 0;
	while (*start == ' ' || *start == '\t' || *start == '\n' || *start == '\r')
		start++;
	len = strlen(start);
	while (len > 0 && strchr(" \t\n\r", start[len - 1]))
		len--;
	if (len >= cap) {
		xmlFree(text);
		return reject(r, "schema-invalid", node, "%s is longer than %zu characters",
			      (const char *)node->name, cap - 1);
	}
	memcpy(dst, start, len);
	dst[len] = '\0';
	xmlFree(text);
	return 0;
}

static int check_orgnr(struct reader *r, xmlNodePtr node, const char *attr, const char *value)
{
	if (ident_orgnr_valid(value))
		return 0;
	return reject(r, "invalid-orgnr", node,
		      "%s/@%s \"%s\" is not a valid organisation number (check digit)",
		      (const char *)node->name, attr, value);
}

static int read_head(struct reader *r, xmlNodePtr root)
{
	struct notice *n = r->n;
	char revision[16];
	xmlNodePtr issued = child(root, "Issued"), sender = child(root, "Sender");
	int error;

	if ((error = attr_copy(r, root, "id", n->id, sizeof(n->id))) < 0 ||
	    (error = attr_copy(r, root, "revision", revision, sizeof(revision))) < 0 ||
	    (error = attr_copy(r, root, "kind", n->kind, sizeof(n->kind))) < 0 ||
	    (error = text_copy(r, issued, n->issued, sizeof(n->issued))) < 0 ||
	    (error = attr_copy(r, sender, "orgnr", n->sender_orgnr, sizeof(n->sender_orgnr))) < 0)
		return error;
	attr_copy_cut(sender, "unit", n->sender_unit, sizeof(n->sender_unit));
	/* The id goes to logs, the store, partners and operators' pages. */
	if (ident_has_nin(n->id))
		return reject(r, "nin-in-id", root, "Notice/@id holds 11 digits shaped like a "
			      "national identity number; an id must not identify a person");
	if (parse_revision(revision, &n->revision) < 0)
		return reject(r, "schema-invalid", root, "Notice/@revision must be a whole "
			      "number from 1 up");
	return check_orgnr(r, sender, "orgnr", n->sender_orgnr);
}

/* The kind attribute and the event element must agree. */
static int check_kind(struct reader *r, xmlNodePtr root)
{
	static const char *const pairs[3][2] = {
		{ "release", "Release" }, { "transfer", "Transfer" }, { "withdrawal", "Withdrawal" }
	};
	size_t i;

	for (i = 0; i < 3; i++) {
		if (strcmp(r->n->kind, pairs[i][0]))
			continue;
		if (child(root, pairs[i][1]))
			return 0;
		return reject(r, "kind-mismatch", root,
			      "Notice/@kind is \"%s\" but the notice has no %s element",
			      pairs[i][0], pairs[i][1]);
	}
	return reject(r, "schema-invalid", root, "Notice/@kind \"%s\" is unknown", r->n->kind);
}

static int check_person(struct reader *r, xmlNodePtr root)
{
	xmlNodePtr person = child(root, "Person");
	enum ident_nin_kind kind;
	int error;

	if (!person)
		return 0;
	if ((error = attr_copy(r, person, "nin", r->n->nin, sizeof(r->n->nin))) < 0)
		return error;
	if (ident_nin_check(r->n->nin, r->rules->allow_synthetic_nin, &kind) == 0)
		return 0;
	/* ident's text names the rule broken, never the number. */
	*r->reason = "invalid-nin";
	return gw_error_wrap(GW_EINVALID, "%s line %ld: Person/@nin is not a valid national "
			     "identity number", r->what, xmlGetLineNo(person));
}

static int check_not_past(struct reader *r, xmlNodePtr node)
{
	struct gw_date date, today;
	int64_t now = r->rules->now_ms ? r->rules->now_ms : timeutil_now_ms();

	if (timeutil_parse_date(r->n->event_date, &date) < 0)
		return reject(r, "schema-invalid", node, "%s/@date is not a calendar date",
			      (const char *)node->name);
	today = timeutil_oslo_date(now);
	if (timeutil_days_from_civil(date) >= timeutil_days_from_civil(today))
		return 0;
	return reject(r, "date-in-past", node,
		      "%s/@date %s is before today's date in Oslo (%04d-%02d-%02d)",
		      (const char *)node->name, r->n->event_date, today.year, today.month,
		      today.day);
}

static int read_release(struct reader *r, xmlNodePtr release)
{
	struct notice *n = r->n;
	int error;

	if ((error = attr_copy(r, release, "date", n->event_date, sizeof(n->event_date))) < 0 ||
	    (error = attr_copy(r, release, "municipality", n->municipality,
			       sizeof(n->municipality))) < 0)
		return error;
	if (!ident_municipality_valid(n->municipality))
		return reject(r, "invalid-municipality", release,
			      "Release/@municipality \"%s\" is not a municipality number",
			      n->municipality);
	return check_not_past(r, release);
}

static int read_transfer(struct reader *r, xmlNodePtr transfer)
{
	struct notice *n = r->n;
	int error;

	if ((error = attr_copy(r, transfer, "date", n->event_date, sizeof(n->event_date))) < 0 ||
	    (error = attr_copy(r, transfer, "from", n->transfer_from,
			       sizeof(n->transfer_from))) < 0 ||
	    (error = attr_copy(r, transfer, "to", n->transfer_to, sizeof(n->transfer_to))) < 0)
		return error;
	if (!n->transfer_to[0])
		return reject(r, "missing-transfer-to", transfer,
			      "Transfer has no \"to\" attribute naming the receiving prison");
	if ((error = check_orgnr(r, transfer, "from", n->transfer_from)) < 0 ||
	    (error = check_orgnr(r, transfer, "to", n->transfer_to)) < 0)
		return error;
	if (!strcmp(n->transfer_from, n->transfer_to))
		return reject(r, "transfer-to-self", transfer,
			      "Transfer/@to is the same organisation as Transfer/@from");
	return check_not_past(r, transfer);
}

/* Parse a space-separated list of names into bits; unknown names fail. */
static int parse_list(const char *list, bool services, unsigned *bits, char *bad, size_t bad_cap)
{
	char word[32];
	const char *p = list;
	size_t len;

	*bits = 0;
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
			p++;
		for (len = 0; p[len] && !strchr(" \t\n\r", p[len]); len++)
			;
		if (!len)
			break;
		if (len >= sizeof(word)) {
			snprintf(bad, bad_cap, "(too long)");
			return GW_EINVALID;
		}
		memcpy(word, p, len);
		word[len] = '\0';
		p += len;
		if (services) {
			enum gw_service s = SVC_HOUSING;
			if (notice_service_parse(word, &s) < 0)
				goto unknown;
			*bits |= 1u << s;
		} else {
			enum gw_need need = NEED_OTHER;
			if (notice_need_parse(word, &need) < 0)
				goto unknown;
			*bits |= 1u << need;
		}
	}
	return 0;
unknown:
	snprintf(bad, bad_cap, "%s", word);
	return GW_EINVALID;
}

static int read_withdrawal(struct reader *r, xmlNodePtr withdrawal)
{
	struct notice *n = r->n;
	char services[128], bad[40];
	int error;

	if ((error = attr_copy(r, withdrawal, "reason", n->withdrawal_reason,
			       sizeof(n->withdrawal_reason))) < 0 ||
	    (error = attr_copy(r, withdrawal, "services", services, sizeof(services))) < 0)
		return error;
	if (error == 1) {
		n->withdrawal_services = SVC_ALL;
		return 0;
	}
	if (parse_list(services, true, &n->withdrawal_services, bad, sizeof(bad)) < 0)
		return reject(r, "schema-invalid", withdrawal,
			      "Withdrawal/@services names an unknown service \"%s\"", bad);
	return 0;
}

static int read_event(struct reader *r, xmlNodePtr root)
{
	xmlNodePtr node;

	if ((node = child(root, "Release")) != NULL)
		return read_release(r, node);
	if ((node = child(root, "Transfer")) != NULL)
		return read_transfer(r, node);
	if ((node = child(root, "Withdrawal")) != NULL)
		return read_withdrawal(r, node);
	return reject(r, "schema-invalid", root, "the notice has no Release, Transfer or "
			"Withdrawal element");
}

static bool is_element(xmlNodePtr node, const char *name)
{
	return node->type == XML_ELEMENT_NODE && node->ns &&
	       !strcmp((const char *)node->ns->href, NS_NOTICE) &&
	       !strcmp((const char *)node->name, name);
}

static int read_needs(struct reader *r, xmlNodePtr root)
{
	xmlNodePtr needs = child(root, "Needs"), node;
	char category[32];
	enum gw_need need = NEED_OTHER;
	int error;

	for (node = needs ? needs->children : NULL; node; node = node->next) {
		if (!is_element(node, "Need"))
			continue;
		if ((error = attr_copy(r, node, "category", category, sizeof(category))) < 0)
			return error;
		if (notice_need_parse(category, &need) < 0)
			return reject(r, "unknown-category", node,
				      "Need/@category \"%s\" is not a known category", category);
		r->n->needs_present |= 1u << need;
	}
	return 0;
}

static int add_recipient(struct reader *r, xmlNodePtr node)
{
	struct notice *n = r->n;
	struct notice_recipient *rec = &n->recipients[n->n_recipients];
	char service[16];
	size_t i;
	int error;

	if (n->n_recipients >= NOTICE_MAX_RECIPIENTS)
		return reject(r, "schema-invalid", node, "more than %d Recipient elements",
			      NOTICE_MAX_RECIPIENTS);
	if ((error = attr_copy(r, node, "service", service, sizeof(service))) < 0 ||
	    (error = attr_copy(r, node, "orgnr", rec->orgnr, sizeof(rec->orgnr))) < 0)
		return error;
	if (notice_service_parse(service, &rec->service) < 0)
		return reject(r, "schema-invalid", node,
			      "Recipient/@service \"%s\" is not a known service", service);
	if (rec->orgnr[0] && (error = check_orgnr(r, node, "orgnr", rec->orgnr)) < 0)
		return error;
	for (i = 0; i < n->n_recipients; i++)
		if (n->recipients[i].service == rec->service &&
		    !strcmp(n->recipients[i].orgnr, rec->orgnr))
			return reject(r, "duplicate-recipient", node,
				      "Recipient for service %s%s%s is listed twice", service,
				      rec->orgnr[0] ? " and organisation " : "", rec->orgnr);
	n->n_recipients++;
	return 0;
}

static int read_recipients(struct reader *r, xmlNodePtr root)
{
	xmlNodePtr recipients = child(root, "Recipients"), node;
	int error;

	if (!recipients) {
		if (!strcmp(r->n->kind, "withdrawal"))
			return 0;
		return reject(r, "missing-recipients", root,
			      "a %s notice must have a Recipients element", r->n->kind);
	}
	for (node = recipients->children; node; node = node->next)
		if (is_element(node, "Recipient") && (error = add_recipient(r, node)) < 0)
			return error;
	return 0;
}

static bool has_recipient(const struct notice *n, enum gw_service s)
{
	size_t i;

	for (i = 0; i < n->n_recipients; i++)
		if (n->recipients[i].service == s)
			return true;
	return false;
}

static int add_grant(struct reader *r, xmlNodePtr node)
{
	struct notice *n = r->n;
	struct notice_grant *grant = &n->grants[n->n_grants];
	char service[16], categories[256], bad[40];
	int error;

	if ((error = attr_copy(r, node, "service", service, sizeof(service))) < 0 ||
	    (error = attr_copy(r, node, "categories", categories, sizeof(categories))) < 0)
		return error;
	if (notice_service_parse(service, &grant->service) < 0)
		return reject(r, "schema-invalid", node,
			      "Grant/@service \"%s\" is not a known service", service);
	if (notice_grant_for(n, grant->service))
		return reject(r, "duplicate-grant", node,
			      "Consent has two Grant elements for service %s", service);
	if (n->n_grants >= SVC_COUNT)
		return reject(r, "schema-invalid", node, "too many Grant elements");
	if (parse_list(categories, false, &grant->categories, bad, sizeof(bad)) < 0)
		return reject(r, "unknown-category", node,
			      "Grant/@categories names an unknown category \"%s\"", bad);
	if (!has_recipient(n, grant->service))
		return reject(r, "grant-without-recipient", node,
			      "Grant for service %s has no Recipient with that service", service);
	n->n_grants++;
	return 0;
}

static int read_consent(struct reader *r, xmlNodePtr root)
{
	xmlNodePtr consent = child(root, "Consent"), node;
	int error;

	for (node = consent ? consent->children : NULL; node; node = node->next)
		if (is_element(node, "Grant") && (error = add_grant(r, node)) < 0)
			return error;
	return 0;
}

static int notice_read(struct reader *r, xmlNodePtr root)
{
	int error;

	if ((error = read_head(r, root)) < 0 || (error = check_kind(r, root)) < 0 ||
	    (error = check_person(r, root)) < 0 || (error = read_event(r, root)) < 0 ||
	    (error = read_needs(r, root)) < 0 || (error = read_recipients(r, root)) < 0 ||
	    (error = read_consent(r, root)) < 0)
		return error;
	return 0;
}

int notice_parse(struct notice *out, const unsigned char *bytes, size_t len,
		 const struct notice_rules *rules, const char *what, const char **reason_code)
{
	static const struct notice_rules defaults = { false, 0, XMLREAD_DEFAULT_MAX_BYTES };
	const char *ignored;
	struct reader r;
	size_t max_bytes;
	int error;

	memset(out, 0, sizeof(*out));
	reason_code = reason_code ? reason_code : &ignored;
	*reason_code = NULL;
	rules = rules ? rules : &defaults;
	what = what ? what : "notice";
	max_bytes = rules->max_bytes ? rules->max_bytes : XMLREAD_DEFAULT_MAX_BYTES;
	if (len > max_bytes) {
		*reason_code = "too-large";
		return gw_error_set(GW_EINVALID, "%s is %zu bytes, over the limit of %zu bytes",
				    what, len, max_bytes);
	}
	if ((error = xmlread_parse(&out->doc, bytes, len, max_bytes, what)) < 0) {
		*reason_code = error == GW_EINVALID ? "malformed" : NULL;
		return error;
	}
	if ((error = xmlread_validate(out->doc, XML_KIND_NOTICE)) < 0) {
		*reason_code = error == GW_EINVALID ? "schema-invalid" : NULL;
		notice_free(out);
		return xmlread_error_prefix(error, what);
	}
	r.n = out;
	r.rules = rules;
	r.what = what;
	r.reason = reason_code;
	if ((error = notice_read(&r, xmlDocGetRootElement(out->doc))) < 0) {
		notice_free(out);
		return error;
	}
	return 0;
}

void notice_free(struct notice *n)
{
	if (!n)
		return;
	if (n->doc)
		xmlFreeDoc(n->doc);
	/* The struct holds a nin: do not leave it behind in memory. */
	memset(n, 0, sizeof(*n));
}

const struct notice_grant *notice_grant_for(const struct notice *n, enum gw_service s)
{
	size_t i;

	for (i = 0; i < n->n_grants; i++)
		if (n->grants[i].service == s)
			return &n->grants[i];
	return NULL;
}

/* Remove a node and the indentation before it. */
static void remove_node(xmlNodePtr node)
{
	xmlNodePtr prev = node->prev;

	if (prev && prev->type == XML_TEXT_NODE && xmlIsBlankNode(prev)) {
		xmlUnlinkNode(prev);
		xmlFreeNode(prev);
	}
	xmlUnlinkNode(node);
	xmlFreeNode(node);
}

static void filter_needs(xmlNodePtr root, unsigned categories)
{
	xmlNodePtr needs = child(root, "Needs"), node, next;
	char *name;
	enum gw_need need = NEED_OTHER;
	bool keep, any = false;

	if (!needs)
		return;
	for (node = needs->children; node; node = next) {
		next = node->next;
		if (!is_element(node, "Need"))
			continue;
		name = xmlread_attr(node, "category");
		keep = name && notice_need_parse(name, &need) == 0 && (categories & (1u << need));
		xmlFree(name);
		if (keep)
			any = true;
		else
			remove_node(node);
	}
	if (!any)
		remove_node(needs);
}

/* A withdrawal tells each recipient about its own service, never the others'. */
static int narrow_withdrawal(xmlNodePtr root, enum gw_service recipient)
{
	xmlNodePtr withdrawal = child(root, "Withdrawal");

	if (!withdrawal)
		return 0;
	if (!xmlSetProp(withdrawal, BAD_CAST "services", BAD_CAST notice_service_name(recipient)))
		return gw_error_set(GW_ENOMEM, "out of memory copying a notice");
	return 0;
}

int notice_filtered_copy(const struct notice *n, enum gw_service recipient, unsigned categories,
			 xmlDocPtr *out)
{
	xmlDocPtr doc;
	xmlNodePtr root, node;
	int error;

	*out = NULL;
	if (!n->doc || !xmlDocGetRootElement(n->doc))
		return gw_error_set(GW_EINVALID, "notice has no document to copy");
	doc = xmlNewDoc(BAD_CAST "1.0");
	if (!doc)
		return gw_error_set(GW_ENOMEM, "out of memory copying a notice");
	root = xmlDocCopyNode(xmlDocGetRootElement(n->doc), doc, 1);
	if (!root) {
		xmlFreeDoc(doc);
		return gw_error_set(GW_ENOMEM, "out of memory copying a notice");
	}
	xmlDocSetRootElement(doc, root);
	if ((node = child(root, "Recipients")) != NULL)
		remove_node(node);
	if ((node = child(root, "Consent")) != NULL)
		remove_node(node);
	filter_needs(root, categories);
	xmlread_strip_comments(root->children); /* they could carry anything */
	if ((error = narrow_withdrawal(root, recipient)) < 0) {
		xmlFreeDoc(doc);
		return error;
	}
	if ((error = xmlread_validate(doc, XML_KIND_NOTICE)) < 0) {
		xmlFreeDoc(doc);
		return gw_error_wrap(error, "the filtered copy of notice %s is not valid", n->id);
	}
	*out = doc;
	return 0;
}
