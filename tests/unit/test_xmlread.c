/*
 * test_xmlread: the hardened parse path refuses what it must (DOCTYPE,
 * entities, size, depth, broken XML) with a line in its message, never
 * loads anything from outside, and schema errors carry a line and no value.
 */
#include "testutil.h"
#include "err.h"
#include "xmlread.h"

#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Assert success, showing the error text when it fails. */
static int parse_text(xmlDocPtr *doc, const char *text)
{
	return xmlread_parse(doc, (const unsigned char *)text, strlen(text), 0, "t.xml");
}

static void read_notice(const char *name, gw_buf *buf)
{
	char rel[256];

	snprintf(rel, sizeof(rel), "tests/data/notices/%s", name);
	tu_read(tu_src(rel), buf);
}

static void test_plain_document_parses(void **state)
{
	xmlDocPtr doc;

	assert_int_equal(parse_text(&doc, "<?xml version='1.0'?>\n<a><b c='1'/><?pi ok?></a>"), 0);
	assert_non_null(doc);
	assert_non_null(xmlread_child(xmlDocGetRootElement(doc), NULL, "b"));
	xmlFreeDoc(doc);
}

static void test_doctype_refused(void **state)
{
	xmlDocPtr doc = (xmlDocPtr)1;

	assert_int_equal(parse_text(&doc, "<?xml version='1.0'?>\n\n<!DOCTYPE a>\n<a/>"),
			 GW_EINVALID);
	assert_null(doc);
	assert_non_null(strstr(gw_error_last(), "t.xml line 3"));
	assert_non_null(strstr(gw_error_last(), "DOCTYPE"));
}

/* A billion laughs would take gigabytes; refused at once, nothing expanded. */
static void test_billion_laughs_refused(void **state)
{
	gw_buf buf = GW_BUF_INIT;
	xmlDocPtr doc;

	read_notice("bad-doctype-billion-laughs.xml", &buf);
	assert_int_equal(xmlread_parse(&doc, buf.data, buf.len, 0, "laughs.xml"), GW_EINVALID);
	assert_null(doc);
	assert_non_null(strstr(gw_error_last(), "DOCTYPE"));
	gw_buf_free(&buf);
}

static int loader_calls;

static xmlParserInputPtr counting_loader(const char *url, const char *id, xmlParserCtxtPtr ctxt)
{
	loader_calls++;
	return NULL;
}

/* libxml2 never even asks to load the external entity or DTD. */
static void test_external_entity_refused_without_loading(void **state)
{
	static const char *const files[] = {
		"bad-doctype-external-entity.xml", "bad-doctype-external-dtd.xml",
		"bad-undeclared-entity.xml"
	};
	xmlExternalEntityLoader saved = xmlGetExternalEntityLoader();
	gw_buf buf = GW_BUF_INIT;
	xmlDocPtr doc;
	size_t i;

	loader_calls = 0;
	xmlSetExternalEntityLoader(counting_loader);
	for (i = 0; i < 3; i++) {
		read_notice(files[i], &buf);
		assert_int_equal(xmlread_parse(&doc, buf.data, buf.len, 0, files[i]), GW_EINVALID);
		assert_null(doc);
		assert_null(strstr(gw_error_last(), "root:"));
	}
	xmlSetExternalEntityLoader(saved);
	assert_int_equal(loader_calls, 0);
	gw_buf_free(&buf);
}

/* The process-wide loader refuses files and the network outright. */
static void test_global_loader_refuses_files(void **state)
{
	xmlParserCtxtPtr ctxt = xmlNewParserCtxt();

	assert_non_null(ctxt);
	assert_null(xmlLoadExternalEntity("/etc/hostname", NULL, ctxt));
	assert_null(xmlLoadExternalEntity("http://127.0.0.1:9/x.dtd", NULL, ctxt));
	assert_null(xmlLoadExternalEntity(tu_src("schemas/notice.xsd"), NULL, ctxt));
	xmlFreeParserCtxt(ctxt);
}

static void test_size_limit_checked_before_parsing(void **state)
{
	const char *text = "<a>0123456789</a>";
	xmlDocPtr doc;

	assert_int_equal(xmlread_parse(&doc, (const unsigned char *)text, strlen(text), 10,
				       "big.xml"), GW_EINVALID);
	assert_non_null(strstr(gw_error_last(), "over the limit"));
	assert_int_equal(xmlread_parse(&doc, (const unsigned char *)text, strlen(text),
				       strlen(text), "fits.xml"), 0);
	xmlFreeDoc(doc);
	assert_int_equal(xmlread_parse(&doc, (const unsigned char *)"", 0, 0, "e.xml"),
			 GW_EINVALID);
}

static void nest(gw_buf *buf, int depth)
{
	int i;

	gw_buf_reset(buf);
	for (i = 0; i < depth; i++)
		gw_buf_puts(buf, i == depth - 1 ? "\n<e>" : "<e>");
	for (i = 0; i < depth; i++)
		gw_buf_puts(buf, "</e>");
}

static void test_depth_limit(void **state)
{
	gw_buf buf = GW_BUF_INIT;
	xmlDocPtr doc;

	nest(&buf, XMLREAD_MAX_DEPTH);
	assert_int_equal(xmlread_parse(&doc, buf.data, buf.len, 0, "ok.xml"), 0);
	xmlFreeDoc(doc);
	nest(&buf, XMLREAD_MAX_DEPTH + 1);
	assert_int_equal(xmlread_parse(&doc, buf.data, buf.len, 0, "deep.xml"), GW_EINVALID);
	assert_non_null(strstr(gw_error_last(), "deep.xml line 2"));
	assert_non_null(strstr(gw_error_last(), "deeper than 32"));
	/* Far past libxml2's own limit: still a clean refusal. */
	nest(&buf, 5000);
	assert_int_equal(xmlread_parse(&doc, buf.data, buf.len, 0, "deeper.xml"), GW_EINVALID);
	gw_buf_free(&buf);
}

static void test_malformed_reports_line(void **state)
{
	xmlDocPtr doc;

	assert_int_equal(parse_text(&doc, "<a>\n<b>\n</a>\n"), GW_EINVALID);
	assert_null(doc);
	assert_non_null(strstr(gw_error_last(), "t.xml line 3: "));
	assert_int_equal(parse_text(&doc, "<a>\n\n\n\n\n\n<b x='1' x='2'/></a>"), GW_EINVALID);
	assert_non_null(strstr(gw_error_last(), "t.xml line 7: "));
	assert_int_equal(parse_text(&doc, "not xml at all"), GW_EINVALID);
	assert_non_null(strstr(gw_error_last(), "t.xml line 1"));
}

static void test_schema_error_has_line_and_no_value(void **state)
{
	gw_buf buf = GW_BUF_INIT;
	xmlDocPtr doc;
	char *at;

	read_notice("ok-release-full-consent.xml", &buf);
	at = strstr((char *)buf.data, "nin=\"");
	assert_non_null(at);
	memcpy(at + 5, "1234567890x", 11); /* 11 characters, not digits: pattern fails */
	assert_int_equal(xmlread_parse(&doc, buf.data, buf.len, 0, "n.xml"), 0);
	assert_int_equal(xmlread_validate(doc, XML_KIND_NOTICE), GW_EINVALID);
	assert_non_null(strstr(gw_error_last(), "line 7: "));
	assert_non_null(strstr(gw_error_last(), "nin"));
	assert_null(strstr(gw_error_last(), "1234567890x"));
	assert_null(strstr(gw_error_last(), "123456"));
	assert_null(strstr(gw_error_last(), "{urn:"));
	xmlFreeDoc(doc);

	read_notice("ok-release-full-consent.xml", &buf);
	at = strstr((char *)buf.data, "givenName=\"Test\"");
	assert_non_null(at);
	memcpy(at, "givenName=\"\"    ", 16); /* empty name: minLength */
	assert_int_equal(xmlread_parse_valid(&doc, buf.data, buf.len, 0, XML_KIND_NOTICE,
					     "g.xml"), GW_EINVALID);
	assert_null(doc);
	assert_non_null(strstr(gw_error_last(), "g.xml line 7: "));
	gw_buf_free(&buf);
}

/* The first error of a malformed document, in its tidied form. */
static const char *parse_error(const char *text)
{
	xmlDocPtr doc = NULL;

	assert_int_equal(parse_text(&doc, text), GW_EINVALID);
	assert_null(doc);
	return gw_error_last();
}

static void assert_hides(const char *error, const char *secret)
{
	if (strstr(error, secret))
		fail_msg("'%s' shows '%s' from the document", error, secret);
}

/*
 * libxml2 quotes the document itself in some parse errors (unfinished
 * comments and CDATA sections, undeclared entities, bad UTF-8 bytes): the
 * text that reaches logs, .reason files and receipts keeps the line and the
 * kind of error, never the content.
 */
static void test_parse_error_has_no_content(void **state)
{
	const char *e;

	e = parse_error("<a>\n<![CDATA[Kari Nordmann needs a flat from release day");
	assert_non_null(strstr(e, "t.xml line 2: "));
	assert_non_null(strstr(e, "CData"));
	assert_hides(e, "Kari");
	assert_hides(e, "flat");
	e = parse_error("<a>\n\n<!-- Kari Nordmann -- in treatment --></a>");
	assert_non_null(strstr(e, "t.xml line 3: "));
	assert_non_null(strstr(e, "comment"));
	assert_hides(e, "Kari");
	e = parse_error("<a>\n<!-- Kari Nordmann, never closed");
	assert_hides(e, "Kari");
	e = parse_error("<a>Ole &Nordmann;</a>");
	assert_non_null(strstr(e, "not defined"));
	assert_hides(e, "Nordmann");
	e = parse_error("<a>Kari\xc3\x28Nordmann</a>");
	assert_non_null(strstr(e, "UTF-8"));
	assert_hides(e, "0x4E"); /* 'N' */
	assert_hides(e, "Nordmann");
	e = parse_error("<a b='1>");
	assert_non_null(strstr(e, "t.xml line 1: "));
}

/* A value holding a quote (O'Brien) is hidden whole, not up to its quote. */
static void test_schema_error_hides_value_with_quote(void **state)
{
	static const struct {
		const char *from, *to, *secret;
	} cases[] = {
		{ "familyName=\"Testperson\"",
		  "familyName=\"O'Brien-Nordmann xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"",
		  "Nordmann" },
		{ "individualPlan=\"true\"", "individualPlan=\"Kari's plan with Nordmann\"", "Kari" },
		{ "category=\"housing\"", "category=\"Kari's flat\"", "flat" },
	};
	gw_buf buf = GW_BUF_INIT, doc_text = GW_BUF_INIT;
	xmlDocPtr doc;

	read_notice("ok-release-full-consent.xml", &buf);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *at = strstr((const char *)buf.data, cases[i].from);

		assert_non_null(at);
		gw_buf_reset(&doc_text);
		gw_buf_put(&doc_text, buf.data, (size_t)(at - (const char *)buf.data));
		gw_buf_puts(&doc_text, cases[i].to);
		gw_buf_puts(&doc_text, at + strlen(cases[i].from));
		assert_int_equal(xmlread_parse_valid(&doc, doc_text.data, doc_text.len, 0,
						     XML_KIND_NOTICE, "q.xml"), GW_EINVALID);
		assert_non_null(strstr(gw_error_last(), "q.xml line "));
		assert_non_null(strstr(gw_error_last(), "'...'"));
		assert_hides(gw_error_last(), cases[i].secret);
		assert_hides(gw_error_last(), "Brien");
	}
	gw_buf_free(&doc_text);
	gw_buf_free(&buf);
}

static void test_schema_picks_kind(void **state)
{
	gw_buf buf = GW_BUF_INIT;
	xmlDocPtr doc;

	read_notice("ok-release-full-consent.xml", &buf);
	assert_ok(xmlread_parse_valid(&doc, buf.data, buf.len, 0, XML_KIND_NOTICE, "x"));
	assert_int_equal(xmlread_validate(doc, XML_KIND_RECEIPT), GW_EINVALID);
	assert_int_equal(xmlread_validate(doc, XML_KIND_MESSAGE), GW_EINVALID);
	xmlFreeDoc(doc);
	gw_buf_free(&buf);
}

static void test_serialize_round_trip(void **state)
{
	const char *text = "<a xmlns=\"urn:x\">\n  <b>t&amp;u</b>\n</a>";
	unsigned char *out;
	size_t len;
	xmlDocPtr doc, again;

	assert_int_equal(parse_text(&doc, text), 0);
	assert_int_equal(xmlread_serialize(doc, &out, &len), 0);
	assert_non_null(strstr((char *)out, "<b>t&amp;u</b>\n</a>"));
	assert_int_equal(xmlread_parse(&again, out, len, 0, "again"), 0);
	xmlFreeDoc(again);
	xmlFreeDoc(doc);
	free(out);
}

static void test_missing_schema_dir(void **state)
{
	assert_int_equal(xmlread_schemas_load("/nonexistent/schemas"), GW_ERROR);
	assert_non_null(strstr(gw_error_last(), "notice.xsd"));
	/* Reload the real ones for the tests after this one. */
	assert_int_equal(xmlread_schemas_load(tu_src("schemas")), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_document_parses),
		cmocka_unit_test(test_doctype_refused),
		cmocka_unit_test(test_billion_laughs_refused),
		cmocka_unit_test(test_external_entity_refused_without_loading),
		cmocka_unit_test(test_global_loader_refuses_files),
		cmocka_unit_test(test_size_limit_checked_before_parsing),
		cmocka_unit_test(test_depth_limit),
		cmocka_unit_test(test_malformed_reports_line),
		cmocka_unit_test(test_schema_error_has_line_and_no_value),
		cmocka_unit_test(test_parse_error_has_no_content),
		cmocka_unit_test(test_schema_error_hides_value_with_quote),
		cmocka_unit_test(test_schema_picks_kind),
		cmocka_unit_test(test_serialize_round_trip),
		cmocka_unit_test(test_missing_schema_dir),
	};
	return cmocka_run_group_tests(tests, tu_xml_schemas_setup, tu_xml_schemas_teardown);
}
