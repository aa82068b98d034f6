/*
 * test_notice: every sample in tests/data/notices gives the result its
 * "<!-- expect: CODE -->" comment names (ok or a reason code), rejection
 * texts name the file and line and never the nin or the person; the fields
 * of a good notice are read; and the consent-filtered copy keeps exactly the
 * granted Needs, drops Recipients and Consent, and still validates.
 */
#include "testutil.h"
#include "err.h"
#include "notice.h"
#include "timeutil.h"
#include "xmlread.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SAMPLE_NIN "14839110090"
#define SAMPLE_FAMILY "Testperson"

static int64_t instant(const char *text)
{
	int64_t ms = 0;

	if (timeutil_parse_datetime(text, &ms) < 0)
		fail_msg("bad instant %s", text);
	return ms;
}

/* Fixed "today", so the samples never rot: 2026-11-22 noon in Oslo. */
static struct notice_rules test_rules(void)
{
	struct notice_rules rules = { true, 0, 0 };

	rules.now_ms = instant("2026-11-22T12:00:00+01:00");
	return rules;
}

static void read_sample(const char *name, gw_buf *buf)
{
	char rel[300];

	snprintf(rel, sizeof(rel), "tests/data/notices/%s", name);
	tu_read(tu_src(rel), buf);
}

static int parse_sample(struct notice *n, const char *name, const struct notice_rules *rules,
			const char **reason)
{
	gw_buf buf = GW_BUF_INIT;
	int rc;

	read_sample(name, &buf);
	rc = notice_parse(n, buf.data, buf.len, rules, name, reason);
	gw_buf_free(&buf);
	return rc;
}

/* The expectation a sample carries in its "<!-- expect: CODE -->" comment. */
static void sample_expectation(const gw_buf *buf, char *code, size_t cap)
{
	const char *at = strstr((const char *)buf->data, "<!-- expect: ");
	size_t len;

	if (!at)
		fail_msg("sample has no expect comment");
	at += strlen("<!-- expect: ");
	len = strcspn(at, " ");
	if (len >= cap)
		fail_msg("expect comment too long");
	memcpy(code, at, len);
	code[len] = '\0';
}

static void check_sample(const char *name, const gw_buf *buf, const char *expect)
{
	struct notice_rules rules = test_rules();
	struct notice n;
	const char *reason = "unset";
	int rc = notice_parse(&n, buf->data, buf->len, &rules, name, &reason);

	if (!strcmp(expect, "ok")) {
		if (rc != 0)
			fail_msg("%s: expected ok, got %s: %s", name, reason, gw_error_last());
		assert_null(reason);
		notice_free(&n);
		return;
	}
	if (rc != GW_EINVALID || !reason || strcmp(reason, expect))
		fail_msg("%s: expected %s, got rc %d reason %s: %s", name, expect, rc,
			 reason ? reason : "(none)", gw_error_last());
	assert_null(n.doc);
	assert_non_null(strstr(gw_error_last(), name));
	assert_non_null(strstr(gw_error_last(), " line "));
	if (strstr(gw_error_last(), SAMPLE_NIN) || strstr(gw_error_last(), "1483911") ||
	    strstr(gw_error_last(), SAMPLE_FAMILY))
		fail_msg("%s: error text leaks personal data: %s", name, gw_error_last());
}

static void test_samples_table(void **state)
{
	static const char *const must_cover[] = {
		"ok", "malformed", "schema-invalid", "invalid-nin", "invalid-orgnr",
		"invalid-municipality", "date-in-past", "kind-mismatch", "missing-transfer-to",
		"grant-without-recipient", "duplicate-recipient", "missing-recipients", "nin-in-id",
	};
	bool covered[sizeof(must_cover) / sizeof(must_cover[0])] = { false };
	DIR *dir = opendir(tu_src("tests/data/notices"));
	struct dirent *entry;
	gw_buf buf = GW_BUF_INIT;
	char expect[64];
	size_t i, count = 0;

	assert_non_null(dir);
	while ((entry = readdir(dir)) != NULL) {
		size_t len = strlen(entry->d_name);
		if (len < 5 || strcmp(entry->d_name + len - 4, ".xml"))
			continue;
		read_sample(entry->d_name, &buf);
		sample_expectation(&buf, expect, sizeof(expect));
		check_sample(entry->d_name, &buf, expect);
		for (i = 0; i < sizeof(must_cover) / sizeof(must_cover[0]); i++)
			if (!strcmp(expect, must_cover[i]))
				covered[i] = true;
		count++;
	}
	closedir(dir);
	gw_buf_free(&buf);
	assert_true(count >= 20);
	for (i = 0; i < sizeof(must_cover) / sizeof(must_cover[0]); i++)
		if (!covered[i])
			fail_msg("no sample expects %s", must_cover[i]);
}

/* The demo's notices (spool/demo) stay valid: the demo must not rot. */
static void test_demo_notices_are_valid(void **state)
{
	struct notice_rules rules = test_rules();
	DIR *dir = opendir(tu_src("spool/demo"));
	struct dirent *entry;
	gw_buf buf = GW_BUF_INIT;
	char rel[300];
	struct notice n;
	const char *reason;
	size_t count = 0;

	assert_non_null(dir);
	while ((entry = readdir(dir)) != NULL) {
		size_t len = strlen(entry->d_name);
		if (len < 5 || strcmp(entry->d_name + len - 4, ".xml"))
			continue;
		snprintf(rel, sizeof(rel), "spool/demo/%s", entry->d_name);
		tu_read(tu_src(rel), &buf);
		if (notice_parse(&n, buf.data, buf.len, &rules, entry->d_name, &reason) != 0)
			fail_msg("demo %s: %s", entry->d_name, gw_error_last());
		notice_free(&n);
		count++;
	}
	closedir(dir);
	gw_buf_free(&buf);
	assert_true(count >= 4);
}

static void test_release_fields(void **state)
{
	struct notice_rules rules = test_rules();
	struct notice n;
	const char *reason;

	assert_ok(parse_sample(&n, "ok-release-full-consent.xml", &rules, &reason));
	assert_string_equal(n.id, "TEST-2027-000001");
	assert_int_equal(n.revision, 1);
	assert_string_equal(n.kind, "release");
	assert_string_equal(n.issued, "2026-11-20T10:15:00+01:00");
	assert_string_equal(n.sender_orgnr, "974760673");
	assert_string_equal(n.sender_unit, "Testvik fengsel, avdeling A");
	assert_string_equal(n.nin, SAMPLE_NIN);
	assert_string_equal(n.event_date, "2027-03-04");
	assert_string_equal(n.municipality, "0301");
	assert_int_equal(n.needs_present, (1u << NEED_HOUSING) | (1u << NEED_INCOME) |
					  (1u << NEED_EMPLOYMENT) | (1u << NEED_MENTAL_HEALTH) |
					  (1u << NEED_SUBSTANCE_USE));
	assert_int_equal(n.n_recipients, 3);
	assert_int_equal(n.recipients[0].service, SVC_HOUSING);
	assert_string_equal(n.recipients[0].orgnr, "");
	assert_int_equal(n.recipients[2].service, SVC_HEALTH);
	assert_string_equal(n.recipients[2].orgnr, "987654325");
	assert_int_equal(n.n_grants, 3);
	assert_int_equal(notice_grant_for(&n, SVC_NAV)->categories,
			 (1u << NEED_INCOME) | (1u << NEED_EMPLOYMENT));
	assert_null(notice_grant_for(&n, SVC_SCHOOL));
	notice_free(&n);
	assert_null(n.doc);
	assert_string_equal(n.nin, "");
}

static void test_partial_consent_has_no_health_grant(void **state)
{
	struct notice_rules rules = test_rules();
	struct notice n;
	const char *reason;

	assert_ok(parse_sample(&n, "ok-release-partial-consent.xml", &rules, &reason));
	assert_int_equal(n.n_recipients, 3);
	assert_null(notice_grant_for(&n, SVC_HEALTH));
	assert_non_null(notice_grant_for(&n, SVC_HOUSING));
	notice_free(&n);
}

static void test_transfer_and_withdrawal_fields(void **state)
{
	struct notice_rules rules = test_rules();
	struct notice n;
	const char *reason;

	assert_ok(parse_sample(&n, "ok-transfer.xml", &rules, &reason));
	assert_string_equal(n.transfer_from, "974760673");
	assert_string_equal(n.transfer_to, "922222223");
	assert_string_equal(n.event_date, "2027-02-10");
	assert_string_equal(n.municipality, "");
	assert_int_equal(n.recipients[0].service, SVC_PRISON);
	notice_free(&n);

	assert_ok(parse_sample(&n, "ok-withdrawal.xml", &rules, &reason));
	assert_string_equal(n.kind, "withdrawal");
	assert_int_equal(n.revision, 2);
	assert_string_equal(n.withdrawal_reason, "consent-withdrawn");
	assert_int_equal(n.withdrawal_services, (1u << SVC_NAV) | (1u << SVC_HEALTH));
	assert_string_equal(n.event_date, "");
	assert_string_equal(n.nin, "");
	assert_int_equal(n.n_recipients, 0);
	notice_free(&n);

	assert_ok(parse_sample(&n, "ok-withdrawal-all-services.xml", &rules, &reason));
	assert_int_equal(n.withdrawal_services, (1u << SVC_COUNT) - 1);
	notice_free(&n);
}

static void test_synthetic_nin_needs_test_mode(void **state)
{
	struct notice_rules rules = test_rules();
	struct notice n;
	const char *reason;

	rules.allow_synthetic_nin = false;
	assert_int_equal(parse_sample(&n, "ok-release-full-consent.xml", &rules, &reason),
			 GW_EINVALID);
	assert_string_equal(reason, "invalid-nin");
	assert_non_null(strstr(gw_error_last(), "line 7"));
	assert_non_null(strstr(gw_error_last(), "Person/@nin"));
	assert_null(strstr(gw_error_last(), SAMPLE_NIN));
}

/* "Today" is the date in Oslo, not in UTC. */
static void test_release_date_against_oslo_today(void **state)
{
	static const struct {
		const char *now;
		int rc;
	} cases[] = {
		{ "2027-03-04T12:00:00+01:00", 0 },          /* release day itself */
		{ "2027-03-03T23:30:00Z", 0 },               /* 00:30 on the 4th in Oslo */
		{ "2027-03-04T22:59:59Z", 0 },               /* 23:59:59 on the 4th in Oslo */
		{ "2027-03-04T23:00:00Z", GW_EINVALID },     /* the 5th in Oslo */
		{ "2027-03-05T09:00:00+01:00", GW_EINVALID },
	};
	struct notice_rules rules = test_rules();
	struct notice n;
	const char *reason;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		rules.now_ms = instant(cases[i].now);
		if (parse_sample(&n, "ok-release-full-consent.xml", &rules, &reason) != cases[i].rc)
			fail_msg("now %s: %s", cases[i].now, gw_error_last());
		if (cases[i].rc == 0)
			notice_free(&n);
		else
			assert_string_equal(reason, "date-in-past");
	}
	/* A withdrawal has no date to be late for. */
	rules.now_ms = instant("2030-01-01T00:00:00Z");
	assert_ok(parse_sample(&n, "ok-withdrawal.xml", &rules, &reason));
	notice_free(&n);
}

static void test_size_limit_is_too_large(void **state)
{
	struct notice_rules rules = test_rules();
	struct notice n;
	const char *reason;

	rules.max_bytes = 100;
	assert_int_equal(parse_sample(&n, "ok-release-full-consent.xml", &rules, &reason),
			 GW_EINVALID);
	assert_string_equal(reason, "too-large");
}

static xmlNodePtr notice_child(xmlDocPtr doc, const char *name)
{
	return xmlread_child(xmlDocGetRootElement(doc), NS_NOTICE, name);
}

/* The categories of the Need elements in doc, as bits. */
static unsigned needs_in(xmlDocPtr doc)
{
	xmlNodePtr needs = notice_child(doc, "Needs"), node;
	unsigned bits = 0;
	enum gw_need need;
	char *category;

	for (node = needs ? needs->children : NULL; node; node = node->next) {
		if (node->type != XML_ELEMENT_NODE)
			continue;
		category = xmlread_attr(node, "category");
		assert_int_equal(notice_need_parse(category, &need), 0);
		assert_int_equal(bits & (1u << need), 0); /* each kept once */
		bits |= 1u << need;
		xmlFree(category);
	}
	return bits;
}

static void check_copy(const struct notice *n, unsigned categories, unsigned expect)
{
	unsigned char *bytes;
	size_t len;
	xmlDocPtr copy;

	assert_ok(notice_filtered_copy(n, SVC_NAV, categories, &copy));
	assert_int_equal(needs_in(copy), expect);
	if (!expect)
		assert_null(notice_child(copy, "Needs"));
	assert_null(notice_child(copy, "Recipients"));
	assert_null(notice_child(copy, "Consent"));
	assert_non_null(notice_child(copy, "Person"));
	assert_non_null(notice_child(copy, "FollowUp"));
	assert_ok(xmlread_validate(copy, XML_KIND_NOTICE));
	assert_ok(xmlread_serialize(copy, &bytes, &len));
	assert_null(strstr((char *)bytes, "Recipient"));
	assert_null(strstr((char *)bytes, "Grant"));
	assert_null(strstr((char *)bytes, "expect:")); /* comments are dropped */
	free(bytes);
	xmlFreeDoc(copy);
}

static void test_filtered_copy(void **state)
{
	struct notice_rules rules = test_rules();
	struct notice n;
	const char *reason;
	unsigned nav;

	assert_ok(parse_sample(&n, "ok-release-full-consent.xml", &rules, &reason));
	nav = notice_grant_for(&n, SVC_NAV)->categories;
	check_copy(&n, nav, (1u << NEED_INCOME) | (1u << NEED_EMPLOYMENT));
	check_copy(&n, 1u << NEED_HOUSING, 1u << NEED_HOUSING);
	/* Granted but not present: nothing to keep. */
	check_copy(&n, 1u << NEED_EDUCATION, 0);
	check_copy(&n, 0, 0);
	check_copy(&n, NEED_ALL, n.needs_present);
	/* The original is untouched. */
	assert_non_null(notice_child(n.doc, "Recipients"));
	assert_non_null(notice_child(n.doc, "Consent"));
	notice_free(&n);
}

static void assert_withdrawal_services(xmlDocPtr copy, const char *want)
{
	xmlChar *services = xmlGetProp(notice_child(copy, "Withdrawal"), BAD_CAST "services");

	assert_non_null(services);
	assert_string_equal((const char *)services, want);
	xmlFree(services);
}

static void test_filtered_copy_of_withdrawal(void **state)
{
	struct notice_rules rules = test_rules();
	struct notice n;
	const char *reason;
	xmlDocPtr copy;

	/* The notice names nav and health; each copy names its recipient only. */
	assert_ok(parse_sample(&n, "ok-withdrawal.xml", &rules, &reason));
	for (enum gw_service s = SVC_NAV; s <= SVC_HEALTH; s++) {
		assert_ok(notice_filtered_copy(&n, s, NEED_ALL, &copy));
		assert_withdrawal_services(copy, notice_service_name(s));
		assert_ok(xmlread_validate(copy, XML_KIND_NOTICE));
		xmlFreeDoc(copy);
	}
	notice_free(&n);

	/* "All services" (no attribute) becomes the recipient's own as well. */
	assert_ok(parse_sample(&n, "ok-withdrawal-all-services.xml", &rules, &reason));
	assert_ok(notice_filtered_copy(&n, SVC_SCHOOL, NEED_ALL, &copy));
	assert_withdrawal_services(copy, "school");
	xmlFreeDoc(copy);
	notice_free(&n);
}

static void test_names(void **state)
{
	enum gw_service s;
	enum gw_need need;

	assert_int_equal(notice_service_parse("nav", &s), 0);
	assert_int_equal(s, SVC_NAV);
	assert_string_equal(notice_service_name(SVC_PRISON), "prison");
	assert_int_equal(notice_service_parse("police", &s), GW_EINVALID);
	assert_int_equal(notice_need_parse("mental-health", &need), 0);
	assert_int_equal(need, NEED_MENTAL_HEALTH);
	assert_string_equal(notice_need_name(NEED_SUBSTANCE_USE), "substance-use");
	assert_int_equal(notice_need_parse("Housing", &need), GW_EINVALID);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_samples_table),
		cmocka_unit_test(test_demo_notices_are_valid),
		cmocka_unit_test(test_release_fields),
		cmocka_unit_test(test_partial_consent_has_no_health_grant),
		cmocka_unit_test(test_transfer_and_withdrawal_fields),
		cmocka_unit_test(test_synthetic_nin_needs_test_mode),
		cmocka_unit_test(test_release_date_against_oslo_today),
		cmocka_unit_test(test_size_limit_is_too_large),
		cmocka_unit_test(test_filtered_copy),
		cmocka_unit_test(test_filtered_copy_of_withdrawal),
		cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, tu_xml_schemas_setup, tu_xml_schemas_teardown);
}
