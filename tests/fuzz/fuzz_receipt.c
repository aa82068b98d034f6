/*
 * fuzz_receipt: libFuzzer target for receipt verification: receipt_verify for
 * a fixed message id, digest and organisation (housing).
 * The work is fuzz_receipt() in fuzz_entry.c, shared with the regression
 * replay.
 * Environment: GW_SOURCE_DIR (schemas/) and GW_PKI_DIR (certs/mkpki.sh
 * output); tests/fuzz/run.sh sets them.
 */
#include "fuzz_entry.h"

#include <stdlib.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_entry_init_from_env(1);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (fuzz_receipt(data, size) != FUZZ_OK)
		abort(); /* a broken property: libFuzzer keeps the input */
	return 0;
}
