/*
 * test_consent: SPEC section 4's consent rules as a table. Each row is a
 * notice built here (Recipients, Grants, all eight Need categories present)
 * taken through intake with the real parser and signer into a store, and
 * the row says what each service must get: held "no consent", or queued
 * with exactly these Need categories in the signed copy (read back from the
 * signed bytes), never Recipients or Consent; or the whole notice rejected
 * with a reason code. Endpoints (Oslo 0301): housing, nav, health need
 * consent; prison does not; school needs consent.
 *
 * A second table drives notice_filtered_copy() directly: for every single
 * category, none, all, and mixed sets, the copy holds exactly those Needs
 * (Needs removed when none is left), no Recipients or Consent, no comment,
 * and validates.
 */
#include "testutil.h"
#include "testutil_intake.h"
#include "config.h"
#include "err.h"
#include "intake.h"
#include "message.h"
#include "notice.h"
#include "signer.h"
#include "spool.h"
#include "store.h"
#include "xmlread.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOW INT64_C(1795345200000) /* 2026-11-22T11:00:00Z */
#define NIN "05909710113"

static const unsigned char pseudonym_key[] = "consent-test-pseudonym-key";

static int64_t fixed_now(void)
{
	return NOW;
}

/* ---- the fixture ---- */

static struct tu_intake fx;

static int group_setup(void **state)
{
	assert_int_equal(xmlread_init(), 0);
	assert_ok(xmlread_schemas_load(tu_src("schemas")));
	assert_int_equal(dsig_init(), 0);
	return 0;
}

static int group_teardown(void **state)
{
	dsig_shutdown();
	xmlread_shutdown();
	return 0;
}

static int setup(void **state)
{
	gw_buf text = GW_BUF_INIT;

	memset(&fx, 0, sizeof(fx));
	snprintf(fx.dir, sizeof(fx.dir), "%s", tu_tmpdir("consent"));
	assert_ok(gw_buf_printf(&text,
				"[identity]\norgnr = 974760673\nkey = %s\ncert = %s\n"
				"trust = %s\ntest_nins = true\n"
				"[gateway]\nspool = %s/spool\ndb = %s/gateway.db\n"
				"pseudonym_key = %s/pseudonym.key\n",
				tu_pki("gateway.key"), tu_pki("gateway.pem"), tu_pki("ca.pem"), fx.dir,
				fx.dir, fx.dir));
	assert_ok(gw_buf_puts(&text,
			      "[endpoint housing]\norgnr = 958935420\nservices = housing\n"
			      "municipalities = 0301\nurl = https://127.0.0.1:9441/n\n"
			      "[endpoint nav]\norgnr = 889960221\nservices = nav\n"
			      "municipalities = 0301\nurl = https://127.0.0.1:9442/n\n"
			      "[endpoint health]\norgnr = 987654325\nservices = health\n"
			      "municipalities = 0301\nurl = https://127.0.0.1:9443/n\n"
			      "[endpoint prison]\norgnr = 922222223\nservices = prison\n"
			      "consent = not-required\nurl = https://127.0.0.1:9444/n\n"
			      "[endpoint school]\norgnr = 910000004\nservices = school\n"
			      "municipalities = 0301\nurl = https://127.0.0.1:9445/n\n"));
	assert_ok(config_parse(&fx.cfg, (const char *)text.data, fx.dir));
	gw_buf_free(&text);
	tu_intake_open(&fx, pseudonym_key, sizeof(pseudonym_key) - 1, fixed_now);
	return 0;
}

static int teardown(void **state)
{
	tu_intake_close(&fx);
	return 0;
}

/* ---- building a notice ---- */

static const char all_needs[] =
	"  <Needs>\n"
	"    <Need category=\"housing\">N-housing</Need>\n"
	"    <Need category=\"income\">N-income</Need>\n"
	"    <Need category=\"employment\">N-employment</Need>\n"
	"    <Need category=\"education\">N-education</Need>\n"
	"    <Need category=\"health\">N-health</Need>\n"
	"    <Need category=\"mental-health\">N-mental-health</Need>\n"
	"    <Need category=\"substance-use\">N-substance-use</Need>\n"
	"    <Need category=\"other\">N-other</Need>\n"
	"  </Needs>\n";

/*
 * recipients: services separated by spaces ("housing nav"); grants: entries
 * "service=cat,cat" separated by ';' ("housing=housing;nav=" for a Grant
 * without categories), NULL for no Consent element at all. A transfer when
 * recipients name prison only.
 */
static void build_notice(gw_buf *out, const char *id, const char *recipients,
			 const char *grants, const char *needs_xml)
{
	char list[256], *save = NULL, *tok;
	bool transfer = !strcmp(recipients, "prison");

	gw_buf_reset(out);
	assert_ok(gw_buf_printf(out,
				"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
				"<Notice xmlns=\"urn:x-notice-gateway:notice:1\" id=\"%s\" "
				"revision=\"1\" kind=\"%s\">\n"
				"  <Issued>2026-11-21T10:00:00+01:00</Issued>\n"
				"  <Sender orgnr=\"974760673\" unit=\"Tabell fengsel\"/>\n"
				"  <Person nin=\"" NIN "\" givenName=\"Tabell\" familyName=\"Personsen\"/>\n"
				"%s%s"
				"  <!-- a comment that must not travel -->\n"
				"  <FollowUp individualPlan=\"true\"/>\n"
				"  <Recipients>\n",
				id, transfer ? "transfer" : "release",
				transfer ? "  <Transfer date=\"2027-02-10\" from=\"974760673\" "
					   "to=\"922222223\"/>\n"
					 : "  <Release date=\"2027-03-04\" time=\"09:00\" "
					   "type=\"full-term\" municipality=\"0301\"/>\n",
				needs_xml));
	snprintf(list, sizeof(list), "%s", recipients);
	for (tok = strtok_r(list, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
		assert_ok(gw_buf_printf(out, "    <Recipient service=\"%s\"/>\n", tok));
	assert_ok(gw_buf_puts(out, "  </Recipients>\n"));
	if (grants) {
		assert_ok(gw_buf_puts(out, "  <Consent recorded=\"2026-11-18\">\n"));
		snprintf(list, sizeof(list), "%s", grants);
		for (tok = strtok_r(list, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
			char *eq = strchr(tok, '=');
			assert_non_null(eq);
			*eq = '\0';
			for (char *c = eq + 1; *c; c++)
				if (*c == ',')
					*c = ' ';
			assert_ok(gw_buf_printf(out, "    <Grant service=\"%s\" categories=\"%s\"/>\n",
						tok, eq + 1));
		}
		assert_ok(gw_buf_puts(out, "  </Consent>\n"));
	}
	assert_ok(gw_buf_puts(out, "</Notice>\n"));
}

/* ---- reading back what was stored ---- */

struct found {
	char service[16];
	enum msg_state state;
	char reason[256];
	char message_id[37];
};

struct found_list {
	struct found v[NOTICE_MAX_RECIPIENTS];
	size_t n;
};

static int collect(const struct store_message *m, void *ctx)
{
	struct found_list *l = ctx;
	struct found *f;

	if (l->n == NOTICE_MAX_RECIPIENTS)
		return 0;
	f = &l->v[l->n++];
	snprintf(f->service, sizeof(f->service), "%s", m->service);
	f->state = m->state;
	snprintf(f->reason, sizeof(f->reason), "%s", m->reason);
	snprintf(f->message_id, sizeof(f->message_id), "%s", m->message_id);
	return 0;
}

static bool is_el(xmlNodePtr n, const char *name)
{
	return n && n->type == XML_ELEMENT_NODE && !strcmp((const char *)n->name, name);
}

/* The Need categories of a Notice element as a mask; fails on Recipients/Consent/comments. */
static unsigned notice_categories(xmlNodePtr notice, const char *what)
{
	unsigned mask = 0;

	for (xmlNodePtr c = notice->children; c; c = c->next) {
		if (c->type == XML_COMMENT_NODE || c->type == XML_PI_NODE)
			fail_msg("%s: a comment or PI travelled", what);
		if (is_el(c, "Recipients") || is_el(c, "Consent"))
			fail_msg("%s: the copy holds %s", what, (const char *)c->name);
		if (!is_el(c, "Needs"))
			continue;
		if (!c->children || !xmlFirstElementChild(c))
			fail_msg("%s: an empty Needs element", what);
		for (xmlNodePtr need = c->children; need; need = need->next) {
			xmlChar *cat;
			enum gw_need nd;
			if (!is_el(need, "Need"))
				continue;
			cat = xmlGetProp(need, BAD_CAST "category");
			assert_non_null(cat);
			assert_ok(notice_need_parse((const char *)cat, &nd));
			xmlFree(cat);
			mask |= 1u << nd;
		}
	}
	return mask;
}

/* The Need categories in the signed bytes of a message. */
static unsigned signed_categories(const char *message_id, const char *what)
{
	struct store_message m;
	xmlDocPtr doc;
	xmlNodePtr notice;
	unsigned mask;

	memset(&m, 0, sizeof(m));
	assert_ok(fx.st->ops->message_get(fx.st, message_id, &m));
	assert_true(m.signed_bytes.len > 0);
	assert_ok(xmlread_parse_valid(&doc, m.signed_bytes.data, m.signed_bytes.len, 0,
				      XML_KIND_MESSAGE, what));
	notice = message_body_content(doc);
	assert_true(is_el(notice, "Notice"));
	mask = notice_categories(notice, what);
	xmlFreeDoc(doc);
	store_message_clear(&m);
	return mask;
}

static unsigned mask_of(const char *cats)
{
	char list[256], *save = NULL, *tok;
	unsigned mask = 0;
	enum gw_need n;

	if (!strcmp(cats, "ALL"))
		return NEED_ALL;
	snprintf(list, sizeof(list), "%s", cats);
	for (tok = strtok_r(list, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		assert_ok(notice_need_parse(tok, &n));
		mask |= 1u << n;
	}
	return mask;
}

/* ---- the table ---- */

#define HELD "held"

struct expect {
	const char *service;
	const char *cats; /* "housing income", "" (core only), "ALL", or HELD */
};

struct consent_case {
	const char *name;
	const char *recipients;
	const char *grants;
	const char *reject; /* reason code, or NULL when accepted */
	struct expect e[6];
};

static const struct consent_case cases[] = {
	{ "full consent", "housing nav health",
	  "housing=housing;nav=income,employment;health=health,mental-health,substance-use", NULL,
	  { { "housing", "housing" }, { "nav", "income employment" },
	    { "health", "health mental-health substance-use" } } },
	{ "partial consent: some categories, a Grant without any", "housing nav health school",
	  "housing=housing,income;nav=;health=health;school=education", NULL,
	  { { "housing", "housing income" }, { "nav", "" }, { "health", "health" },
	    { "school", "education" } } },
	{ "refusal for one service: health follow-up never to the municipality",
	  "housing nav health", "housing=housing;health=health,mental-health", NULL,
	  { { "housing", "housing" }, { "nav", HELD }, { "health", "health mental-health" } } },
	{ "no Consent element at all: every consent-bound recipient held", "housing nav", NULL,
	  NULL, { { "housing", HELD }, { "nav", HELD } } },
	{ "a Grant for every category", "nav",
	  "nav=housing,income,employment,education,health,mental-health,substance-use,other", NULL,
	  { { "nav", "ALL" } } },
	{ "Grant for a service that is not a Recipient", "housing", "housing=housing;nav=income",
	  "grant-without-recipient", { { NULL, NULL } } },
	{ "two Grants for one service", "housing", "housing=housing;housing=income",
	  "duplicate-grant", { { NULL, NULL } } },
	{ "unknown category in a Grant", "housing", "housing=housing,dental", "schema-invalid",
	  { { NULL, NULL } } },
	{ "transfer to another prison: no consent needed, all Needs", "prison", NULL, NULL,
	  { { "prison", "ALL" } } },
	{ "transfer: a Grant does not limit a no-consent endpoint", "prison", "prison=health",
	  NULL, { { "prison", "ALL" } } },
};

static void run_case(const struct consent_case *c, size_t i)
{
	char id[32], file[32];
	gw_buf xml = GW_BUF_INIT;
	struct store_filter f = { .state = -1 };
	struct found_list got = { .n = 0 };
	enum intake_outcome outcome;
	char path[PATH_MAX + 64];
	size_t n_expect = 0;

	snprintf(id, sizeof(id), "TABLE-%zu", i);
	snprintf(file, sizeof(file), "case-%zu.xml", i);
	build_notice(&xml, id, c->recipients, c->grants, all_needs);
	snprintf(path, sizeof(path), "%s/%s", fx.spool.new_dir, file);
	tu_write(path, xml.data, xml.len);
	gw_buf_free(&xml);
	assert_ok(intake_file(&fx.in, file, &outcome));
	f.notice_id = id;
	assert_ok(fx.st->ops->messages_list(fx.st, &f, collect, &got));

	if (c->reject) {
		gw_buf reason = GW_BUF_INIT;
		if (outcome != INTAKE_REJECTED)
			fail_msg("%s: accepted, expected rejection %s", c->name, c->reject);
		snprintf(path, sizeof(path), "%s/%s.reason", fx.spool.rejected, file);
		tu_read(path, &reason);
		if (strncmp((char *)reason.data, c->reject, strlen(c->reject)) ||
		    reason.data[strlen(c->reject)] != '\n')
			fail_msg("%s: reason %s, expected %s", c->name, (char *)reason.data, c->reject);
		assert_null(strstr((char *)reason.data, NIN));
		assert_null(strstr((char *)reason.data, "Personsen"));
		assert_int_equal(got.n, 0);
		gw_buf_free(&reason);
		return;
	}
	if (outcome != INTAKE_ACCEPTED)
		fail_msg("%s: not accepted: %s", c->name, gw_error_last());
	for (; n_expect < 6 && c->e[n_expect].service; n_expect++) {
		const struct expect *e = &c->e[n_expect];
		const struct found *m = NULL;
		char what[160];

		for (size_t k = 0; k < got.n; k++)
			if (!strcmp(got.v[k].service, e->service))
				m = &got.v[k];
		snprintf(what, sizeof(what), "%s / %s", c->name, e->service);
		if (!m)
			fail_msg("%s: no message", what);
		if (!strcmp(e->cats, HELD)) {
			if (m->state != MSG_HELD || strcmp(m->reason, "no consent"))
				fail_msg("%s: state %s (%s), expected held: no consent", what,
					 store_state_name(m->state), m->reason);
			continue;
		}
		if (m->state != MSG_QUEUED)
			fail_msg("%s: state %s (%s), expected queued", what,
				 store_state_name(m->state), m->reason);
		if (signed_categories(m->message_id, what) != mask_of(e->cats))
			fail_msg("%s: categories 0x%x, expected '%s'", what,
				 signed_categories(m->message_id, what), e->cats);
	}
	if (got.n != n_expect)
		fail_msg("%s: %zu messages, expected %zu", c->name, got.n, n_expect);
}

static void test_consent_table(void **state)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i], i);
}

static void test_unknown_need_category_rejected(void **state)
{
	static const char needs[] = "  <Needs>\n    <Need category=\"dental\">x</Need>\n  </Needs>\n";
	char path[PATH_MAX + 64];
	gw_buf xml = GW_BUF_INIT, reason = GW_BUF_INIT;
	enum intake_outcome outcome;

	build_notice(&xml, "TABLE-DENTAL", "housing", "housing=housing", needs);
	snprintf(path, sizeof(path), "%s/dental.xml", fx.spool.new_dir);
	tu_write(path, xml.data, xml.len);
	assert_ok(intake_file(&fx.in, "dental.xml", &outcome));
	assert_int_equal(outcome, INTAKE_REJECTED);
	snprintf(path, sizeof(path), "%s/dental.xml.reason", fx.spool.rejected);
	tu_read(path, &reason);
	assert_true(!strncmp((char *)reason.data, "schema-invalid\n", 15) ||
		    !strncmp((char *)reason.data, "unknown-category\n", 17));
	gw_buf_free(&xml);
	gw_buf_free(&reason);
}

/* ---- notice_filtered_copy on its own ---- */

static void test_filtered_copy_table(void **state)
{
	static const unsigned extra[] = {
		0, NEED_ALL,
		(1u << NEED_HOUSING) | (1u << NEED_INCOME),
		(1u << NEED_HEALTH) | (1u << NEED_MENTAL_HEALTH) | (1u << NEED_SUBSTANCE_USE),
		NEED_ALL & ~(1u << NEED_MENTAL_HEALTH),
	};
	struct notice_rules rules = { true, NOW, 0 };
	struct notice n;
	gw_buf xml = GW_BUF_INIT;
	const char *code = NULL;

	build_notice(&xml, "TABLE-COPY", "housing nav health school", "housing=housing", all_needs);
	memset(&n, 0, sizeof(n));
	assert_ok(notice_parse(&n, xml.data, xml.len, &rules, "copy.xml", &code));
	assert_int_equal(n.needs_present, NEED_ALL);
	for (size_t i = 0; i < NEED_COUNT + sizeof(extra) / sizeof(extra[0]); i++) {
		unsigned want = i < NEED_COUNT ? 1u << i : extra[i - NEED_COUNT];
		xmlDocPtr copy = NULL;
		xmlBufferPtr text = xmlBufferCreate();

		assert_ok(notice_filtered_copy(&n, SVC_HOUSING, want, &copy));
		assert_int_equal(notice_categories(xmlDocGetRootElement(copy), "copy"), want);
		assert_true(xmlNodeDump(text, copy, xmlDocGetRootElement(copy), 0, 0) > 0);
		/* The text of a withheld Need is gone, not just its element name. */
		for (unsigned k = 0; k < NEED_COUNT; k++) {
			char marker[32];
			snprintf(marker, sizeof(marker), "N-%s<", notice_need_name((enum gw_need)k));
			assert_int_equal(strstr((const char *)xmlBufferContent(text), marker) != NULL,
					 (want >> k) & 1);
		}
		assert_null(strstr((const char *)xmlBufferContent(text), "<Needs/>"));
		assert_null(strstr((const char *)xmlBufferContent(text), "must not travel"));
		assert_non_null(strstr((const char *)xmlBufferContent(text), "<FollowUp"));
		xmlBufferFree(text);
		xmlFreeDoc(copy);
	}
	notice_free(&n);
	gw_buf_free(&xml);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_consent_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_need_category_rejected, setup, teardown),
		cmocka_unit_test(test_filtered_copy_table),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
