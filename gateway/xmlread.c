/*
 * xmlread: the one hardened XML reading path (see xmlread.h).
 *
 * Every document the gateway or the receiver reads comes through
 * xmlread_parse(): the size is capped before libxml2 sees a byte, the parser
 * runs with XML_PARSE_NONET and without any option that loads or expands
 * DTDs or entities, a DOCTYPE stops the parser the moment its name is read
 * (before an internal subset can declare an entity), and the finished tree
 * is walked for its depth. libxml2's own error printing is replaced by a
 * per-context handler that keeps the first error and its line.
 *
 * Error texts name elements, attributes and lines; values quoted by libxml2
 * (which could be a nin or a name) are cut out before a text is stored.
 *
 * The external entity loader is replaced process-wide by one that refuses
 * everything, except the three schema files while xmlread_schemas_load()
 * reads them (xs:import goes through that loader).
 */
#include "xmlread.h"
#include "err.h"

#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/xmlIO.h>
#include <libxml/xmlerror.h>
#include <libxml/xmlsave.h>
#include <libxml/xmlschemas.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Never NOENT, DTDLOAD, DTDATTR, DTDVALID, XINCLUDE or HUGE. */
#define XMLREAD_OPTIONS (XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING)

#define SCHEMA_COUNT 3
static const char *const schema_files[SCHEMA_COUNT] = {
	"notice.xsd", "message.xsd", "receipt.xsd"
};

static xmlSchemaPtr schemas[SCHEMA_COUNT];
/* Absolute paths the loader may open while schemas load; empty otherwise. */
static char schema_paths[SCHEMA_COUNT][PATH_MAX];
static bool schemas_loading;

/* The first error libxml2 reported, and whether a DOCTYPE was met. */
struct capture {
	bool seen;
	int line;
	char text[400];
	bool doctype;
};

/*
 * Copy a libxml2 message into dst, readable and free of values: "{ns}"
 * namespace prefixes are dropped, a quoted string that libxml2 presents as a
 * value becomes '...', and any run of six or more digits is blanked as well.
 *
 * Only the first line is kept: libxml2 puts excerpts of the document itself
 * (an unfinished comment or CDATA section, the bytes of bad UTF-8) on the
 * lines after it. A few messages quote the document on their first line;
 * only their head is kept (excerpt_heads).
 *
 * A value may itself hold a quote (O'Brien, "doesn't"): a value is closed by
 * the quote libxml2 follows with one of value_ends, never by the next quote,
 * and when none is found everything after the opening quote is dropped.
 */
static const char *const value_starts[] = { "value ", "Value ", "content ", ": ", "Entity " };
/* "has a length of '5000'": a number, closed by the next quote. */
static const char *const number_starts[] = { "of " };
static const char *const value_ends[] = { " is not a valid", " is not an element", " is not accepted",
					  " is not a value", " has a length", " has more",
					  " is greater", " is less", " does not", " not defined" };
static const char *const excerpt_heads[] = { "Double hyphen within comment",
					     "CData section not finished", "Comment not terminated",
					     "Input is not proper UTF-8", "input conversion failed",
					     "output conversion failed" };

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static bool preceded_by(const char *msg, const char *at, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(list[i]);
		if ((size_t)(at - msg) >= len && !strncmp(at - len, list[i], len))
			return true;
	}
	return false;
}

static bool followed_by(const char *at, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strncmp(at, list[i], strlen(list[i])))
			return true;
	return false;
}

/* The quote that closes the value opened at open; NULL when none does. */
static const char *value_close(const char *open)
{
	for (const char *q = strchr(open + 1, '\''); q; q = strchr(q + 1, '\''))
		if (followed_by(q + 1, value_ends, COUNT(value_ends)))
			return q;
	return NULL;
}

/* "{urn:x-notice-gateway:notice:1}" but not a pattern's "{2}". */
static bool is_namespace(const char *open, const char *close)
{
	const char *colon = memchr(open, ':', (size_t)(close - open));

	return colon != NULL && memchr(open, '\'', (size_t)(close - open)) == NULL;
}

static void put_char(char *dst, size_t cap, size_t *at, char c)
{
	if (*at + 1 < cap)
		dst[(*at)++] = c;
}

static void put_str(char *dst, size_t cap, size_t *at, const char *s)
{
	while (*s)
		put_char(dst, cap, at, *s++);
}

static void blank_digit_runs(char *s)
{
	size_t i = 0, run;

	while (s[i]) {
		for (run = 0; s[i + run] >= '0' && s[i + run] <= '9'; run++)
			;
		if (run >= 6)
			memset(s + i, '#', run);
		i += run ? run : 1;
	}
}

/* How much of msg may be shown at all: its first line, or a known head. */
static size_t shown_length(const char *msg)
{
	for (size_t i = 0; i < COUNT(excerpt_heads); i++)
		if (!strncmp(msg, excerpt_heads[i], strlen(excerpt_heads[i])))
			return strlen(excerpt_heads[i]);
	return strcspn(msg, "\r\n");
}

static void tidy_line(char *dst, size_t cap, const char *msg)
{
	const char *p = msg, *close;
	size_t at = 0;

	while (*p) {
		if (*p == '{' && (close = strchr(p, '}')) != NULL && is_namespace(p, close)) {
			p = close + 1;
		} else if (*p == '\'' && preceded_by(msg, p, value_starts, COUNT(value_starts))) {
			close = value_close(p);
			if (!close && !strchr(p + 1, '\'')) { /* a lone quote: AttValue: ' expected */
				put_char(dst, cap, &at, *p++);
				continue;
			}
			put_str(dst, cap, &at, "'...'");
			p = close ? close + 1 : p + strlen(p);
		} else if (*p == '\'' && (close = strchr(p + 1, '\'')) != NULL &&
			   (preceded_by(msg, p, number_starts, COUNT(number_starts)) ||
			    followed_by(close + 1, value_ends, COUNT(value_ends)))) {
			put_str(dst, cap, &at, "'...'");
			p = close + 1;
		} else {
			put_char(dst, cap, &at, *p++);
		}
	}
	while (at > 0 && (dst[at - 1] == ' ' || dst[at - 1] == '.'))
		at--;
	dst[at] = '\0';
	blank_digit_runs(dst);
}

static void tidy_message(char *dst, size_t cap, const char *msg)
{
	char *line = strndup(msg, shown_length(msg));

	if (!line) {
		snprintf(dst, cap, "XML error (no memory to describe it)");
		return;
	}
	tidy_line(dst, cap, line);
	free(line);
}

static void capture_error(struct capture *cap, const xmlError *error)
{
	if (cap->seen || !error || error->level < XML_ERR_ERROR)
		return;
	cap->seen = true;
	cap->line = error->line;
	tidy_message(cap->text, sizeof(cap->text),
		     error->message ? error->message : "unknown XML error");
}

static void on_parse_error(void *user, xmlErrorPtr error)
{
	xmlParserCtxtPtr ctxt = user;

	if (ctxt && ctxt->_private)
		capture_error(ctxt->_private, error);
}

static void on_schema_error(void *user, xmlErrorPtr error)
{
	capture_error(user, error);
}

/* Messages that have no context to go to are dropped, never printed. */
static void on_stray_error(void *user, xmlErrorPtr error)
{
	(void)user;
	(void)error;
}

/* Stop at the DOCTYPE's name: the internal subset is never read. */
static void refuse_doctype(void *user, const xmlChar *name, const xmlChar *external_id,
			   const xmlChar *system_id)
{
	xmlParserCtxtPtr ctxt = user;
	struct capture *cap = ctxt->_private;

	(void)name;
	(void)external_id;
	(void)system_id;
	cap->doctype = true;
	if (!cap->seen) {
		cap->seen = true;
		cap->line = ctxt->input ? ctxt->input->line : 0;
		snprintf(cap->text, sizeof(cap->text),
			 "a DOCTYPE is not allowed (no DTDs or entities are accepted)");
	}
	xmlStopParser(ctxt);
}

static bool path_is_schema(const char *url)
{
	char real[PATH_MAX];
	size_t i;

	if (!strncmp(url, "file://", 7))
		url += 7;
	if (!realpath(url, real))
		return false;
	for (i = 0; i < SCHEMA_COUNT; i++)
		if (schema_paths[i][0] && !strcmp(real, schema_paths[i]))
			return true;
	return false;
}

/* The process-wide loader: nothing from the network or files, ever, except
 * our own schema files while they load. */
static xmlParserInputPtr deny_loader(const char *url, const char *id, xmlParserCtxtPtr ctxt)
{
	(void)id;
	if (schemas_loading && url && ctxt && path_is_schema(url))
		return xmlNewInputFromFile(ctxt, url);
	return NULL;
}

int xmlread_init(void)
{
	xmlInitParser();
	xmlSetExternalEntityLoader(deny_loader);
	xmlSetStructuredErrorFunc(NULL, on_stray_error);
	xmlThrDefSetStructuredErrorFunc(NULL, on_stray_error);
	return 0;
}

void xmlread_shutdown(void)
{
	size_t i;

	for (i = 0; i < SCHEMA_COUNT; i++) {
		if (schemas[i])
			xmlSchemaFree(schemas[i]);
		schemas[i] = NULL;
		schema_paths[i][0] = '\0';
	}
	xmlCleanupParser();
}

static int depth_check(xmlNodePtr root, const char *what)
{
	xmlNodePtr node = root;
	int depth = 1;

	while (node) {
		if (node->type == XML_ELEMENT_NODE && depth > XMLREAD_MAX_DEPTH)
			return gw_error_set(GW_EINVALID,
					    "%s line %ld: elements nest deeper than %d levels",
					    what, xmlGetLineNo(node), XMLREAD_MAX_DEPTH);
		if (node->type == XML_ELEMENT_NODE && node->children) {
			node = node->children;
			depth++;
			continue;
		}
		while (node && !node->next && node != root) {
			node = node->parent;
			depth--;
		}
		if (!node || node == root)
			break;
		node = node->next;
	}
	return 0;
}

static int parse_failed(const struct capture *cap, const char *what)
{
	if (cap->seen)
		return gw_error_set(GW_EINVALID, "%s line %d: %s", what, cap->line, cap->text);
	return gw_error_set(GW_EINVALID, "%s is not well-formed XML", what);
}

static void parser_harden(xmlParserCtxtPtr ctxt, struct capture *cap)
{
	ctxt->_private = cap;
	ctxt->sax->internalSubset = refuse_doctype;
	ctxt->sax->externalSubset = NULL;
	ctxt->sax->resolveEntity = NULL;
	ctxt->sax->serror = on_parse_error;
	ctxt->sax->initialized = XML_SAX2_MAGIC;
}

int xmlread_parse(xmlDocPtr *out, const unsigned char *data, size_t len, size_t max_bytes,
		  const char *what)
{
	struct capture cap;
	xmlParserCtxtPtr ctxt;
	xmlDocPtr doc;
	int error;

	*out = NULL;
	what = what ? what : "document";
	if (max_bytes == 0)
		max_bytes = XMLREAD_DEFAULT_MAX_BYTES;
	if (len > max_bytes || len > INT_MAX)
		return gw_error_set(GW_EINVALID, "%s is %zu bytes, over the limit of %zu bytes",
				    what, len, max_bytes);
	if (len == 0)
		return gw_error_set(GW_EINVALID, "%s is empty", what);

	ctxt = xmlNewParserCtxt();
	if (!ctxt)
		return gw_error_set(GW_ENOMEM, "out of memory creating an XML parser");
	memset(&cap, 0, sizeof(cap));
	parser_harden(ctxt, &cap);
	doc = xmlCtxtReadMemory(ctxt, (const char *)data, (int)len, NULL, NULL,
				XMLREAD_OPTIONS);
	error = !doc || !ctxt->wellFormed || cap.doctype;
	xmlFreeParserCtxt(ctxt);

	if (error) {
		xmlFreeDoc(doc);
		return parse_failed(&cap, what);
	}
	if (doc->intSubset || doc->extSubset) {
		xmlFreeDoc(doc);
		return gw_error_set(GW_EINVALID, "%s: a DOCTYPE is not allowed", what);
	}
	if (!xmlDocGetRootElement(doc)) {
		xmlFreeDoc(doc);
		return gw_error_set(GW_EINVALID, "%s has no document element", what);
	}
	if (depth_check(xmlDocGetRootElement(doc), what) < 0) {
		xmlFreeDoc(doc);
		return GW_EINVALID;
	}
	*out = doc;
	return 0;
}

static int schema_load_one(size_t i, const char *schema_dir)
{
	struct capture cap;
	xmlSchemaParserCtxtPtr pctxt;

	pctxt = xmlSchemaNewParserCtxt(schema_paths[i]);
	if (!pctxt)
		return gw_error_set(GW_ENOMEM, "out of memory loading schema %s", schema_files[i]);
	memset(&cap, 0, sizeof(cap));
	xmlSchemaSetParserStructuredErrors(pctxt, on_schema_error, &cap);
	schemas[i] = xmlSchemaParse(pctxt);
	xmlSchemaFreeParserCtxt(pctxt);
	if (!schemas[i]) {
		if (cap.seen)
			return gw_error_set(GW_ERROR, "schema %s/%s line %d: %s", schema_dir,
					    schema_files[i], cap.line, cap.text);
		return gw_error_set(GW_ERROR, "cannot load schema %s/%s", schema_dir,
				    schema_files[i]);
	}
	return 0;
}

static int schema_paths_resolve(const char *schema_dir)
{
	char path[PATH_MAX];
	size_t i;

	for (i = 0; i < SCHEMA_COUNT; i++) {
		if (snprintf(path, sizeof(path), "%s/%s", schema_dir, schema_files[i]) >=
		    (int)sizeof(path))
			return gw_error_set(GW_ERROR, "schema directory path is too long");
		if (!realpath(path, schema_paths[i]))
			return gw_error_set(GW_ERROR, "schema %s is missing in %s",
					    schema_files[i], schema_dir);
	}
	return 0;
}

int xmlread_schemas_load(const char *schema_dir)
{
	size_t i;
	int error = 0;

	for (i = 0; i < SCHEMA_COUNT; i++) {
		if (schemas[i])
			xmlSchemaFree(schemas[i]);
		schemas[i] = NULL;
	}
	if ((error = schema_paths_resolve(schema_dir)) < 0)
		return error;
	schemas_loading = true;
	for (i = 0; i < SCHEMA_COUNT && error == 0; i++)
		error = schema_load_one(i, schema_dir);
	schemas_loading = false;
	return error;
}

static const char *kind_name(enum xml_kind kind)
{
	switch (kind) {
	case XML_KIND_NOTICE:
		return "Notice";
	case XML_KIND_MESSAGE:
		return "Message";
	case XML_KIND_RECEIPT:
		return "Receipt";
	}
	return "document";
}

static const char *kind_namespace(enum xml_kind kind)
{
	switch (kind) {
	case XML_KIND_NOTICE:
		return NS_NOTICE;
	case XML_KIND_MESSAGE:
		return NS_ENVELOPE;
	case XML_KIND_RECEIPT:
		return NS_RECEIPT;
	}
	return "";
}

/*
 * A schema also declares the global elements of the schemas it imports (the
 * message schema knows Notice), so the document element is checked first.
 */
static int root_check(xmlDocPtr doc, enum xml_kind kind)
{
	xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;

	if (!root)
		return gw_error_set(GW_EINVALID, "the document has no document element");
	if (!root->ns || strcmp((const char *)root->ns->href, kind_namespace(kind)) ||
	    strcmp((const char *)root->name, kind_name(kind)))
		return gw_error_set(GW_EINVALID, "line %ld: the document element is %s, not %s "
				    "in namespace %s", xmlGetLineNo(root),
				    (const char *)root->name, kind_name(kind),
				    kind_namespace(kind));
	return 0;
}

int xmlread_validate(xmlDocPtr doc, enum xml_kind kind)
{
	struct capture cap;
	xmlSchemaValidCtxtPtr vctxt;
	int rc;

	if ((unsigned)kind >= SCHEMA_COUNT || !schemas[kind])
		return gw_error_set(GW_ERROR, "the %s schema is not loaded", kind_name(kind));
	if ((rc = root_check(doc, kind)) < 0)
		return rc;
	vctxt = xmlSchemaNewValidCtxt(schemas[kind]);
	if (!vctxt)
		return gw_error_set(GW_ENOMEM, "out of memory validating a %s", kind_name(kind));
	memset(&cap, 0, sizeof(cap));
	xmlSchemaSetValidStructuredErrors(vctxt, on_schema_error, &cap);
	rc = xmlSchemaValidateDoc(vctxt, doc);
	xmlSchemaFreeValidCtxt(vctxt);
	if (rc == 0)
		return 0;
	if (rc < 0)
		return gw_error_set(GW_ERROR, "validating a %s failed inside libxml2",
				    kind_name(kind));
	if (cap.seen)
		return gw_error_set(GW_EINVALID, "line %d: %s", cap.line, cap.text);
	return gw_error_set(GW_EINVALID, "the document is not a valid %s", kind_name(kind));
}

int xmlread_error_prefix(int code, const char *what)
{
	char previous[1024];

	snprintf(previous, sizeof(previous), "%s", gw_error_last());
	return gw_error_set(code, "%s %s", what ? what : "document", previous);
}

int xmlread_parse_valid(xmlDocPtr *out, const unsigned char *data, size_t len,
			size_t max_bytes, enum xml_kind kind, const char *what)
{
	xmlDocPtr doc;
	int error;

	*out = NULL;
	if ((error = xmlread_parse(&doc, data, len, max_bytes, what)) < 0)
		return error;
	if ((error = xmlread_validate(doc, kind)) < 0) {
		xmlFreeDoc(doc);
		return xmlread_error_prefix(error, what);
	}
	*out = doc;
	return 0;
}

static bool node_is(xmlNodePtr node, const char *ns, const char *name)
{
	if (node->type != XML_ELEMENT_NODE || strcmp((const char *)node->name, name))
		return false;
	if (!ns)
		return node->ns == NULL;
	return node->ns && node->ns->href && !strcmp((const char *)node->ns->href, ns);
}

void xmlread_strip_comments(xmlNodePtr first)
{
	xmlNodePtr node, next, prev;

	for (node = first; node; node = next) {
		next = node->next;
		if (node->type == XML_ELEMENT_NODE) {
			xmlread_strip_comments(node->children);
			continue;
		}
		if (node->type != XML_COMMENT_NODE && node->type != XML_PI_NODE)
			continue;
		prev = node->prev;
		if (prev && prev->type == XML_TEXT_NODE && xmlIsBlankNode(prev)) {
			xmlUnlinkNode(prev);
			xmlFreeNode(prev);
		}
		xmlUnlinkNode(node);
		xmlFreeNode(node);
	}
}

bool xmlread_is(xmlNodePtr node, const char *ns, const char *name)
{
	return node && node_is(node, ns, name);
}

static xmlNodePtr element_from(xmlNodePtr n)
{
	while (n && n->type != XML_ELEMENT_NODE)
		n = n->next;
	return n;
}

xmlNodePtr xmlread_first_element(xmlNodePtr parent)
{
	return parent ? element_from(parent->children) : NULL;
}

xmlNodePtr xmlread_next_element(xmlNodePtr node)
{
	return node ? element_from(node->next) : NULL;
}

xmlNodePtr xmlread_child(xmlNodePtr parent, const char *ns, const char *name)
{
	xmlNodePtr child;

	if (!parent)
		return NULL;
	for (child = parent->children; child; child = child->next)
		if (node_is(child, ns, name))
			return child;
	return NULL;
}

char *xmlread_attr(xmlNodePtr node, const char *name)
{
	if (!node)
		return NULL;
	return (char *)xmlGetNoNsProp(node, (const xmlChar *)name);
}

int xmlread_serialize(xmlDocPtr doc, unsigned char **out, size_t *len)
{
	xmlChar *mem = NULL;
	int size = 0;

	*out = NULL;
	*len = 0;
	xmlDocDumpMemoryEnc(doc, &mem, &size, "UTF-8");
	if (!mem || size < 0) {
		xmlFree(mem);
		return gw_error_set(GW_ENOMEM, "cannot serialize an XML document");
	}
	*out = malloc((size_t)size + 1);
	if (!*out) {
		xmlFree(mem);
		return gw_error_set(GW_ENOMEM, "out of memory serializing an XML document");
	}
	memcpy(*out, mem, (size_t)size);
	(*out)[size] = '\0';
	*len = (size_t)size;
	xmlFree(mem);
	return 0;
}
