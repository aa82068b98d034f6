/*
 * fuzz_message: libFuzzer target for message verification: the receiver's
 * parse, schema, header and verifier_check under the development CA.
 * The work is fuzz_message() in fuzz_entry.c, shared with the regression
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
	if (fuzz_message(data, size) != FUZZ_OK)
		abort(); /* a broken property: libFuzzer keeps the input */
	return 0;
}
