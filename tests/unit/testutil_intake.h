/*
 * testutil_intake: the intake fixture shared by test_intake.c and
 * test_consent.c (implemented in testutil.c). Kept out of testutil.h so
 * that the store and intake names do not reach every unit test.
 */
#ifndef GW_TESTUTIL_INTAKE_H
#define GW_TESTUTIL_INTAKE_H

#include "testutil.h"
#include "config.h"
#include "intake.h"
#include "signer.h"
#include "spool.h"
#include "store.h"

#include <limits.h>

/*
 * An intake over a real spool, SQLite store and the gateway's signer, as
 * the intake and consent tests use it. Fill dir and cfg, then
 * tu_intake_open opens the spool and store cfg names, the signer
 * (gateway.key) and wires the intake with that pseudonym key and clock;
 * fails the test on error. tu_intake_close closes all and removes dir.
 */
struct tu_intake {
	char dir[PATH_MAX]; /* a copy: tu_tmpdir's buffer is reused by tu_src and tu_pki */
	struct gw_config cfg;
	struct spool spool;
	store *st;
	signer *sig;
	struct intake in;
};
void tu_intake_open(struct tu_intake *fx, const unsigned char *pseudonym_key,
		    size_t pseudonym_key_len, int64_t (*now_ms)(void));
void tu_intake_close(struct tu_intake *fx);

#endif
