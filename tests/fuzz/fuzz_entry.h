/*
 * fuzz_entry: the code every fuzz target runs on one input, shared by the
 * libFuzzer programs (fuzz_*.c) and the regression replay in
 * tests/unit/test_fuzz_regressions.c, so a crash input replays through
 * exactly the path that found it.
 *
 * Targets and what they drive (the production order of calls):
 *   notice   xmlread_parse_valid(XML_KIND_NOTICE), then notice_parse; on an
 *            accepted notice, notice_filtered_copy for every grant and for
 *            all categories, each copy serialized and re-validated.
 *   message  xmlread_parse_valid(XML_KIND_MESSAGE), message_read_header,
 *            verifier_check bound to From/@orgnr under the dev CA trust,
 *            message_body_content (the receiver's order).
 *   receipt  receipt_verify against FUZZ_RECEIPT_* below (the gateway's
 *            acceptance of a receipt from the housing endpoint).
 *   config   config_parse on the bytes as text (cut at the first NUL), then
 *            endpoint resolution for every service.
 *
 * Besides memory errors (ASan) and leaks, the entry functions check a few
 * properties and return FUZZ_VIOLATION with a line on stderr when one breaks;
 * the fuzzers abort() on it so libFuzzer keeps the input:
 *   - notice_parse accepts only what xmlread_parse_valid accepts;
 *   - a filtered copy validates as a Notice (notice.h promises it);
 *   - a rejection text never carries the notice's nin (SPEC section 2);
 *   - every rejection (GW_EINVALID) comes with a reason code;
 *   - a verified message or receipt names a signer organisation that equals
 *     the claimed one.
 */
#ifndef GW_FUZZ_ENTRY_H
#define GW_FUZZ_ENTRY_H

#include <stddef.h>
#include <stdint.h>

#define FUZZ_OK 0
#define FUZZ_VIOLATION (-1)

/* The fixed message the receipt target's receipts must be about. */
#define FUZZ_RECEIPT_MESSAGE_ID "3f1c2a4e-9b7d-4c1e-8a2f-0123456789ab"
#define FUZZ_RECEIPT_ORGNR "958935420" /* housing in certs/mkpki.sh */
#define FUZZ_RECEIPT_SENT_BYTES "fuzz: the exact bytes the gateway sent"

/* The largest input the targets take (run.sh passes -max_len=65536). */
#define FUZZ_MAX_INPUT (1024 * 1024)

/*
 * Initialise once per process: libxml2 and the schemas from
 * source_dir/schemas, xmlsec, the trust (pki_dir/ca.pem) and a verifier.
 * Logging is turned down to errors. 0, or -1 with a line on stderr.
 * pki_dir may be NULL when only the notice and config targets run.
 */
int fuzz_entry_init(const char *pki_dir, const char *source_dir);
/* Free what fuzz_entry_init made (for the unit test; leak-free teardown). */
void fuzz_entry_shutdown(void);

/* Initialise from the environment (GW_PKI_DIR, GW_SOURCE_DIR); exits on failure. */
void fuzz_entry_init_from_env(int need_pki);

int fuzz_notice(const uint8_t *data, size_t size);
int fuzz_message(const uint8_t *data, size_t size);
int fuzz_receipt(const uint8_t *data, size_t size);
int fuzz_config(const uint8_t *data, size_t size);

/* The target by name ("notice", "message", "receipt", "config"), or NULL. */
typedef int (*fuzz_entry_fn)(const uint8_t *data, size_t size);
fuzz_entry_fn fuzz_entry_by_name(const char *name);

#endif
