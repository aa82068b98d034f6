/*
 * xmlread: the one hardened XML reading path used everywhere.
 *
 * No network, no DTD loading, no entity expansion (a DOCTYPE is refused as
 * soon as the parser meets it, before any entity is declared), a byte limit
 * checked before parsing and a depth limit. Schema validation against the
 * XSDs in schemas/ (loaded once, from a directory given at start-up).
 */
#ifndef GW_XMLREAD_H
#define GW_XMLREAD_H

#include <libxml/tree.h>
#include <stdbool.h>
#include <stddef.h>

#define NS_NOTICE "urn:x-notice-gateway:notice:1"
#define NS_ENVELOPE "urn:x-notice-gateway:envelope:1"
#define NS_RECEIPT "urn:x-notice-gateway:receipt:1"
#define NS_DSIG "http://www.w3.org/2000/09/xmldsig#"
#define NS_XENC "http://www.w3.org/2001/04/xmlenc#"

#define XMLREAD_DEFAULT_MAX_BYTES (1024 * 1024)
#define XMLREAD_MAX_DEPTH 32

enum xml_kind { XML_KIND_NOTICE, XML_KIND_MESSAGE, XML_KIND_RECEIPT };

/* Initialise libxml2 (and its global hardening) once per process. */
int xmlread_init(void);
void xmlread_shutdown(void);

/*
 * Parse bytes into a document. Fails with GW_EINVALID and a message naming
 * `what` (e.g. the file name) and the line when the bytes are too large, not
 * well-formed, carry a DOCTYPE, or nest deeper than XMLREAD_MAX_DEPTH.
 */
int xmlread_parse(xmlDocPtr *out, const unsigned char *data, size_t len, size_t max_bytes,
		  const char *what);

/* Load notice.xsd, message.xsd and receipt.xsd from a directory. */
int xmlread_schemas_load(const char *schema_dir);

/*
 * Validate against the schema of `kind` (the document element must be that
 * kind's: Notice, Message or Receipt in its namespace). GW_EINVALID with the first error's
 * line and text ("line 7: element Release: attribute 'date' ...") on failure.
 * Thread safe once loaded.
 */
int xmlread_validate(xmlDocPtr doc, enum xml_kind kind);

/*
 * Put `what` (a file name) in front of the last error: "notice.xml line 7:
 * ..." from "line 7: ...". Returns code.
 */
int xmlread_error_prefix(int code, const char *what);

/* Parse and validate in one step. */
int xmlread_parse_valid(xmlDocPtr *out, const unsigned char *data, size_t len,
			size_t max_bytes, enum xml_kind kind, const char *what);

/* An element with this namespace (NULL: none) and local name? NULL-safe. */
bool xmlread_is(xmlNodePtr node, const char *ns, const char *name);
/* The first element child, and the next element sibling (NULL when none). */
xmlNodePtr xmlread_first_element(xmlNodePtr parent);
xmlNodePtr xmlread_next_element(xmlNodePtr node);

/* First child element of parent with the given namespace and local name. */
xmlNodePtr xmlread_child(xmlNodePtr parent, const char *ns, const char *name);
/* Attribute value (a pointer into a static-per-call buffer is NOT used:
 * returns a malloc'd string from xmlGetNoNsProp, free with xmlFree). */
char *xmlread_attr(xmlNodePtr node, const char *name);

/*
 * Drop every comment and processing instruction among first and its
 * following siblings and their descendants, each with the blank text before
 * it. Comments are outside the signature (exclusive C14N without comments),
 * so nothing a reader relies on may travel in one.
 */
void xmlread_strip_comments(xmlNodePtr first);

/* Serialize a whole document without reformatting, UTF-8. *out is
 * malloc'd and NUL-terminated (not counted in *len): free it with free(). */
int xmlread_serialize(xmlDocPtr doc, unsigned char **out, size_t *len);

#endif
