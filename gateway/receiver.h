/*
 * receiver: the partner side, `gateway receive` (SPEC sections 6 to 8).
 *
 * Two layers. receiver_accept() is the accept pipeline for one request
 * body, independent of HTTP: allowed peer, size, digest, parse, schema,
 * signature, sender binding, recipient, MessageId de-duplication, age, and
 * the durable store, ending in the status and signed receipt to answer
 * with. receiver_main() (daemons.h) is the HTTPS server around it: libevent
 * evhttp over OpenSSL bufferevents, mutual TLS, bounds, and a parent that
 * supervises `workers` processes sharing one listening socket.
 *
 * receiver_setup_open() is what both `gateway receive` and `gateway inbox`
 * need from a configuration: libxml2 and xmlsec initialised, schemas
 * loaded, the trust and a verifier, and (for the server) our signer and
 * the decryption keys.
 *
 * Decryption keys: each [receiver] decrypt_key is a PEM private key whose
 * certificate (how an EncryptedKey names its recipient) is [identity] cert
 * when the key is the [identity] key, else the file next to the key with
 * ".key" replaced by ".pem" (or ".crt"). During a rollover both keys are
 * held; every key is tried, the one whose certificate the sender named
 * first.
 */
#ifndef GW_RECEIVER_H
#define GW_RECEIVER_H

#include "buf.h"
#include "config.h"
#include "inbox.h"
#include "pki.h"
#include "signer.h"
#include "verify.h"
#include "xmlenc.h"

#include <stdbool.h>
#include <stddef.h>

/* The MessageId a receipt names when the request's own could not be read. */
#define RECEIVER_UNKNOWN_MESSAGE_ID "00000000-0000-4000-8000-000000000000"

struct receiver_setup {
	struct gw_config *cfg; /* on the heap: the struct is large */
	pki_trust *trust;
	verifier *verifier;
	signer *signer;        /* NULL unless with_signer */
	xmlenc_keys *decrypt;  /* [receiver] decrypt_key; NULL when none or !with_signer */
	bool xml_ready, dsig_ready; /* what receiver_setup_close() shuts down */
};

/*
 * Load config_path and initialise everything above. schemas_dir, when not
 * NULL, overrides [identity] schemas; one of the two must name the
 * directory holding notice.xsd, message.xsd and receipt.xsd. GW_EINVALID
 * for configuration mistakes (exit 2), GW_ERROR otherwise.
 */
int receiver_setup_open(struct receiver_setup *rs, const char *config_path,
			const char *schemas_dir, bool with_signer);
void receiver_setup_close(struct receiver_setup *rs);

/* What to answer one request with. */
struct receiver_answer {
	int http_status;         /* 200, 400, 403, 409, 413, 503 */
	const char *status;      /* accepted, duplicate, rejected; NULL: no receipt */
	const char *reason_code; /* the SPEC reason when rejected */
	char reason_text[256];   /* a sentence for the log and the receipt */
	char message_id[37];     /* the request's MessageId, or the nil-like one */
	char digest_b64[45];     /* of the request body */
	gw_buf body;             /* the signed receipt; empty when none */
};

/*
 * Run the accept pipeline on one request body. peer_orgnr is the
 * organisation of the verified TLS client certificate (NULL when there is
 * none). Always fills `out`; returns 0, or a negative code only when not
 * even an answer could be produced (out->http_status is then 503).
 */
int receiver_accept(struct receiver_setup *rs, inbox *ib, const char *peer_orgnr,
		    const unsigned char *body, size_t len, struct receiver_answer *out);
void receiver_answer_clear(struct receiver_answer *a);

/*
 * The same pipeline in two halves, so a server can store the new messages
 * of several requests in one inbox_store_many() (group commit):
 * receiver_accept_prepare() returns 0 when `out` is final (a rejection, a
 * duplicate, a temporary failure), or 1 when the request is a new message
 * waiting in `pend`; then receiver_pending_put() describes it for
 * inbox_store_many() and receiver_accept_finish() turns what the store did
 * into `out` (and clears pend). body must stay valid until then.
 * receiver_accept() is prepare, a store of one, and finish.
 */
struct receiver_pending {
	struct receiver_setup *rs;
	const char *peer_orgnr;
	const unsigned char *body;
	size_t len;
	int64_t now_ms;
	struct receiver_answer *out;
	struct inbox_entry entry; /* with the signed accepted receipt */
	gw_buf item;              /* the inbox item */
};

int receiver_accept_prepare(struct receiver_setup *rs, inbox *ib, const char *peer_orgnr,
			    const unsigned char *body, size_t len, struct receiver_answer *out,
			    struct receiver_pending *pend);
void receiver_pending_put(const struct receiver_pending *pend, struct inbox_put *put);
int receiver_accept_finish(struct receiver_pending *pend, const struct inbox_put *put);
void receiver_pending_clear(struct receiver_pending *pend);

/* True when orgnr is listed in [receiver] allow. */
bool receiver_peer_allowed(const struct gw_config *cfg, const char *orgnr);

#endif
