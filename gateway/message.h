/*
 * message: the envelope on the wire (SPEC section 5), without its
 * signature (signer adds it) and without transport.
 */
#ifndef GW_MESSAGE_H
#define GW_MESSAGE_H

#include <libxml/tree.h>

struct msg_header {
	char message_id[37];
	char created[32];
	char from_orgnr[10];
	char to_orgnr[10];
	char service[16];
	char notice_id[65];
	int revision;
	char kind[16];
};

/* Build <Message><Header/><Body>copy of body_root</Body></Message>. */
int message_build(xmlDocPtr *out, const struct msg_header *h, xmlNodePtr body_root);

/* Read and check the Header of a schema-valid message. */
int message_read_header(xmlDocPtr doc, struct msg_header *out);

/* The single element inside Body (a Notice or an xenc:EncryptedData). */
xmlNodePtr message_body_content(xmlDocPtr doc);

#endif
