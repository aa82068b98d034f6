/*
 * intake: turns files in the spool into notices and messages (SPEC
 * sections 3, 4 and 9).
 *
 * For each file in incoming/new: read it under the hostile-input rules,
 * recognise bytes seen before (a harmless duplicate), parse and check the
 * notice, apply the revision rules, then, in ONE store transaction, record
 * the notice and one message per recipient: queued with signed bytes, or
 * held with the reason (no endpoint, no consent, encryption unavailable).
 * Only after COMMIT is the file moved to processed/. Rejections go to
 * rejected/ with a reason file and touch nothing in the store.
 *
 * A file whose handling failed for an operational reason (store, signer,
 * disk) stays in incoming/new and is tried again on the next scan.
 */
#ifndef GW_INTAKE_H
#define GW_INTAKE_H

#include "config.h"
#include "signer.h"
#include "spool.h"
#include "store.h"

#include <libxml/tree.h>
#include <stddef.h>
#include <stdint.h>

enum intake_outcome { INTAKE_ACCEPTED, INTAKE_REJECTED, INTAKE_DUPLICATE };

struct intake {
	const struct gw_config *cfg;
	store *st;
	signer *sig;
	const unsigned char *pseudonym_key; /* HMAC key for person pseudonyms in logs */
	size_t pseudonym_key_len;
	struct spool *spool;
	int64_t (*now_ms)(void); /* injectable clock; NULL: timeutil_now_ms */
};

/*
 * Take one file from incoming/new. 0 when the file was dealt with (see
 * *outcome); a negative gw_code when it could not be, and it is still in
 * incoming/new.
 */
int intake_file(struct intake *in, const char *name, enum intake_outcome *outcome);

/*
 * Take every file in incoming/new in name order; badly named entries are
 * rejected as "bad-name". Counts what happened (any pointer may be NULL).
 * Goes on past a file that fails and returns the first failure's code.
 */
int intake_scan(struct intake *in, int *accepted, int *rejected, int *duplicates);

/*
 * The hook where the Body content of msg (an unsigned Message for ep, which
 * has encrypt_cert) is to be replaced by xenc:EncryptedData for ep's
 * certificates (SPEC section 5: encrypt, then sign; message_body_content()
 * and xmlenc_encrypt_element() fit here). This build does not encrypt: it
 * fails with "encryption is not supported by this build", and intake holds
 * the message with that reason instead of sending it in clear.
 */
int intake_encrypt_body(struct intake *in, const struct config_endpoint *ep, xmlDocPtr msg);

#endif
