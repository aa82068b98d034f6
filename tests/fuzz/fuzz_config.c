/*
 * fuzz_config: libFuzzer target for configuration: config_parse on arbitrary
 * text, then endpoint resolution.
 * The work is fuzz_config() in fuzz_entry.c, shared with the regression
 * replay.
 * Environment: GW_SOURCE_DIR (schemas/); tests/fuzz/run.sh sets them.
 */
#include "fuzz_entry.h"

#include <stdlib.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_entry_init_from_env(0);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (fuzz_config(data, size) != FUZZ_OK)
		abort(); /* a broken property: libFuzzer keeps the input */
	return 0;
}
