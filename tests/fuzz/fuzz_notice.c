/*
 * fuzz_notice: libFuzzer target for notice intake: xmlread_parse_valid and
 * notice_parse on arbitrary bytes, then the consent-filtered copies of an
 * accepted notice.
 * The work is fuzz_notice() in fuzz_entry.c, shared with the regression
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
	if (fuzz_notice(data, size) != FUZZ_OK)
		abort(); /* a broken property: libFuzzer keeps the input */
	return 0;
}
