/*
 * message: building and reading the envelope on the wire (SPEC section 5).
 *
 * message_build() makes <Message xmlns="urn:x-notice-gateway:envelope:1">
 * with a Header and a Body holding a deep copy of one element (the
 * filtered Notice or an xenc:EncryptedData), which keeps its own namespace.
 * No Signature: signer_sign() appends it. message_read_header() reads a
 * document that already passed the message schema and checks what the
 * schema cannot: the UUID version bits and the organisation check digits.
 */
#include "message.h"
#include "err.h"
#include "ident.h"
#include "notice.h"
#include "timeutil.h"
#include "xmlread.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int header_check(const struct msg_header *h)
{
	enum gw_service service;
	int64_t created;

	if (!ident_uuid4_valid(h->message_id))
		return gw_error_set(GW_EINVALID, "MessageId is not a lower-case UUID version 4");
	if (timeutil_parse_datetime(h->created, &created) < 0)
		return gw_error_set(GW_EINVALID, "Created \"%s\" is not a timestamp with an "
				    "offset", h->created);
	if (!ident_orgnr_valid(h->from_orgnr))
		return gw_error_set(GW_EINVALID, "From/@orgnr \"%s\" is not a valid organisation "
				    "number", h->from_orgnr);
	if (!ident_orgnr_valid(h->to_orgnr))
		return gw_error_set(GW_EINVALID, "To/@orgnr \"%s\" is not a valid organisation "
				    "number", h->to_orgnr);
	if (notice_service_parse(h->service, &service) < 0)
		return gw_error_wrap(GW_EINVALID, "To/@service");
	if (!h->notice_id[0] || h->revision < 1 || !h->kind[0])
		return gw_error_set(GW_EINVALID, "NoticeRef needs an id, a revision of 1 or more "
				    "and a kind");
	return 0;
}

static xmlNodePtr add_element(xmlNodePtr parent, xmlNsPtr ns, const char *name,
			      const char *text)
{
	return xmlNewTextChild(parent, ns, BAD_CAST name, BAD_CAST text);
}

static int add_header(xmlNodePtr root, xmlNsPtr ns, const struct msg_header *h)
{
	xmlNodePtr header, from, to, ref;
	char revision[16];

	snprintf(revision, sizeof(revision), "%d", h->revision);
	if (!(header = add_element(root, ns, "Header", NULL)) ||
	    !add_element(header, ns, "MessageId", h->message_id) ||
	    !add_element(header, ns, "Created", h->created) ||
	    !(from = add_element(header, ns, "From", NULL)) ||
	    !(to = add_element(header, ns, "To", NULL)) ||
	    !(ref = add_element(header, ns, "NoticeRef", NULL)))
		return gw_error_set(GW_ENOMEM, "out of memory building a message header");
	if (!xmlNewProp(from, BAD_CAST "orgnr", BAD_CAST h->from_orgnr) ||
	    !xmlNewProp(to, BAD_CAST "orgnr", BAD_CAST h->to_orgnr) ||
	    !xmlNewProp(to, BAD_CAST "service", BAD_CAST h->service) ||
	    !xmlNewProp(ref, BAD_CAST "id", BAD_CAST h->notice_id) ||
	    !xmlNewProp(ref, BAD_CAST "revision", BAD_CAST revision) ||
	    !xmlNewProp(ref, BAD_CAST "kind", BAD_CAST h->kind))
		return gw_error_set(GW_ENOMEM, "out of memory building a message header");
	return 0;
}

static int add_body(xmlDocPtr doc, xmlNodePtr root, xmlNsPtr ns, xmlNodePtr body_root)
{
	xmlNodePtr body, copy;

	if (!(body = add_element(root, ns, "Body", NULL)))
		return gw_error_set(GW_ENOMEM, "out of memory building a message body");
	if (!(copy = xmlDocCopyNode(body_root, doc, 1)))
		return gw_error_set(GW_ENOMEM, "out of memory copying a message body");
	if (!xmlAddChild(body, copy)) {
		xmlFreeNode(copy);
		return gw_error_set(GW_ENOMEM, "out of memory copying a message body");
	}
	return 0;
}

int message_build(xmlDocPtr *out, const struct msg_header *h, xmlNodePtr body_root)
{
	xmlDocPtr doc;
	xmlNodePtr root;
	xmlNsPtr ns;
	int error;

	*out = NULL;
	if (!body_root || body_root->type != XML_ELEMENT_NODE)
		return gw_error_set(GW_EINVALID, "a message body must be one element");
	if ((error = header_check(h)) < 0)
		return gw_error_wrap(error, "cannot build message");
	if (!(doc = xmlNewDoc(BAD_CAST "1.0")) ||
	    !(root = xmlNewDocNode(doc, NULL, BAD_CAST "Message", NULL)) ||
	    !(ns = xmlNewNs(root, BAD_CAST NS_ENVELOPE, NULL))) {
		xmlFreeDoc(doc);
		return gw_error_set(GW_ENOMEM, "out of memory building a message");
	}
	xmlSetNs(root, ns);
	xmlDocSetRootElement(doc, root);
	if ((error = add_header(root, ns, h)) < 0 ||
	    (error = add_body(doc, root, ns, body_root)) < 0) {
		xmlFreeDoc(doc);
		return error;
	}
	*out = doc;
	return 0;
}

static int copy_attr(xmlNodePtr node, const char *name, char *dst, size_t cap)
{
	char *value = xmlread_attr(node, name);
	size_t len = value ? strlen(value) : 0;

	dst[0] = '\0';
	if (!value || len >= cap) {
		xmlFree(value);
		return gw_error_set(GW_EINVALID, "line %ld: %s/@%s is missing or too long",
				    node ? xmlGetLineNo(node) : 0L,
				    node ? (const char *)node->name : "?", name);
	}
	memcpy(dst, value, len + 1);
	xmlFree(value);
	return 0;
}

/* Text content, whitespace-trimmed at both ends as the schema collapses it. */
static int copy_text(xmlNodePtr node, const char *name, char *dst, size_t cap)
{
	xmlChar *text = node ? xmlNodeGetContent(node) : NULL;
	const char *start = (const char *)text;
	size_t len;

	dst[0] = '\0';
	if (!text)
		return gw_error_set(GW_EINVALID, "message header has no %s", name);
	while (*start && strchr(" \t\r\n", *start))
		start++;
	len = strlen(start);
	while (len > 0 && strchr(" \t\r\n", start[len - 1]))
		len--;
	if (len >= cap) {
		xmlFree(text);
		return gw_error_set(GW_EINVALID, "line %ld: %s is too long", xmlGetLineNo(node),
				    name);
	}
	memcpy(dst, start, len);
	dst[len] = '\0';
	xmlFree(text);
	return 0;
}

/* The schema has checked the form; 0 (refused later) when out of range. */
static int revision_value(const char *text)
{
	char *end;
	long value;

	errno = 0;
	value = strtol(text, &end, 10);
	if (errno || end == text || *end || value < 1 || value > INT_MAX)
		return 0;
	return (int)value;
}

static xmlNodePtr envelope_child(xmlNodePtr parent, const char *name)
{
	return xmlread_child(parent, NS_ENVELOPE, name);
}

int message_read_header(xmlDocPtr doc, struct msg_header *out)
{
	xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
	xmlNodePtr header, ref;
	char revision[16];
	int error;

	memset(out, 0, sizeof(*out));
	if (!root || !root->ns || strcmp((const char *)root->ns->href, NS_ENVELOPE) ||
	    strcmp((const char *)root->name, "Message") ||
	    !(header = envelope_child(root, "Header")))
		return gw_error_set(GW_EINVALID, "the document is not a Message with a Header");
	ref = envelope_child(header, "NoticeRef");
	if ((error = copy_text(envelope_child(header, "MessageId"), "MessageId",
			       out->message_id, sizeof(out->message_id))) < 0 ||
	    (error = copy_text(envelope_child(header, "Created"), "Created", out->created,
			       sizeof(out->created))) < 0 ||
	    (error = copy_attr(envelope_child(header, "From"), "orgnr", out->from_orgnr,
			       sizeof(out->from_orgnr))) < 0 ||
	    (error = copy_attr(envelope_child(header, "To"), "orgnr", out->to_orgnr,
			       sizeof(out->to_orgnr))) < 0 ||
	    (error = copy_attr(envelope_child(header, "To"), "service", out->service,
			       sizeof(out->service))) < 0 ||
	    (error = copy_attr(ref, "id", out->notice_id, sizeof(out->notice_id))) < 0 ||
	    (error = copy_attr(ref, "revision", revision, sizeof(revision))) < 0 ||
	    (error = copy_attr(ref, "kind", out->kind, sizeof(out->kind))) < 0)
		return error;
	out->revision = revision_value(revision);
	if ((error = header_check(out)) < 0)
		return gw_error_wrap(error, "message header line %ld", xmlGetLineNo(header));
	return 0;
}

xmlNodePtr message_body_content(xmlDocPtr doc)
{
	xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
	xmlNodePtr body = envelope_child(root, "Body"), node;

	for (node = body ? body->children : NULL; node; node = node->next)
		if (node->type == XML_ELEMENT_NODE)
			return node;
	return NULL;
}
